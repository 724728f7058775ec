//! `[response]`: actions taken on alerts and posture findings, dry run by
//! default. Which rules an action may be bound to is checked once the
//! rules are loaded (`rules::unknown_ids`); everything else here.

use std::time::Duration;

use figment::value::Value;
use serde::Deserialize;

use super::checker::Checker;
use super::formats;
use super::key_path::KeyPath;
use super::raw::Leaf;
use crate::detection::Level;
use crate::response::actions::Action;

/// `[response]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseConfig {
    /// Whether actions are made (`enforce`) or only described (`dry_run`),
    /// unless an action says otherwise.
    pub enforce: bool,
    /// Actions made in any hour at most; beyond, a high alert says so.
    pub max_actions_per_hour: u32,
    /// Events older than this when detection saw them are never acted on.
    pub max_event_age: Duration,
    /// Principals and resources never touched (`*` and `?` wildcards).
    pub protect: Vec<String>,
    /// The actions and what they are bound to.
    pub actions: Vec<ActionConfig>,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            enforce: false,
            max_actions_per_hour: 20,
            max_event_age: Duration::from_secs(900),
            protect: Vec::new(),
            actions: Vec::new(),
        }
    }
}

/// One `[[response.actions]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionConfig {
    /// What to do.
    pub action: Action,
    /// Rule ids whose alerts trigger it.
    pub rules: Vec<String>,
    /// Posture check ids whose opened findings trigger it.
    pub posture: Vec<String>,
    /// Alerts below this level do not trigger it.
    pub min_level: Level,
    /// This action's mode; the section's when not given.
    pub enforce: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawResponse {
    mode: Leaf,
    max_actions_per_hour: Leaf,
    max_event_age: Leaf,
    protect: Leaf,
    actions: Option<Vec<Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAction {
    action: Leaf,
    rules: Leaf,
    posture: Leaf,
    min_level: Leaf,
    mode: Leaf,
}

fn mode(text: &str) -> Result<bool, String> {
    formats::one_of(text, &[("dry_run", false), ("enforce", true)])
}

/// Validates `[response]`; `None` means problems were recorded in `c`.
pub(super) fn response(c: &mut Checker<'_>, raw: Option<&Value>) -> Option<ResponseConfig> {
    let k = KeyPath::root("response");
    let r: RawResponse = c.section(&k, raw);
    let defaults = ResponseConfig::default();
    let enforce = c.parsed(&k.key("mode"), &r.mode, mode);
    let per_hour = c.count(
        &k.key("max_actions_per_hour"),
        &r.max_actions_per_hour,
        1,
        10_000,
    );
    let max_age = c.duration(
        &k.key("max_event_age"),
        &r.max_event_age,
        Duration::from_secs(60),
        Duration::from_secs(86_400),
    );
    let protect: Option<Vec<String>> = c.value(&k.key("protect"), &r.protect);
    let mut actions = Some(Vec::new());
    for (i, entry) in r.actions.iter().flatten().enumerate() {
        let key = k.key("actions").index(i);
        let action = action(c, &key, entry, enforce.unwrap_or(defaults.enforce));
        match (actions.as_mut(), action) {
            (Some(list), Some(action)) => list.push(action),
            _ => actions = None,
        }
    }
    if (r.mode.is_some() && enforce.is_none())
        || (r.max_actions_per_hour.is_some() && per_hour.is_none())
        || (r.max_event_age.is_some() && max_age.is_none())
        || (r.protect.is_some() && protect.is_none())
    {
        return None;
    }
    Some(ResponseConfig {
        enforce: enforce.unwrap_or(defaults.enforce),
        max_actions_per_hour: per_hour
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(defaults.max_actions_per_hour),
        max_event_age: max_age.unwrap_or(defaults.max_event_age),
        protect: protect.unwrap_or_default(),
        actions: actions?,
    })
}

fn action(
    c: &mut Checker<'_>,
    k: &KeyPath,
    raw: &Value,
    section_enforce: bool,
) -> Option<ActionConfig> {
    let r: RawAction = c.section(k, Some(raw));
    let action = c.parsed(&k.key("action"), &r.action, |t| {
        Action::parse(t).ok_or_else(|| {
            format!(
                "unknown action \"{t}\" (expected one of: {})",
                Action::ALL
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    });
    let action = c.required(&k.key("action"), action, &r.action);
    let rules: Option<Vec<String>> = c.value(&k.key("rules"), &r.rules);
    let posture: Option<Vec<String>> = c.value(&k.key("posture"), &r.posture);
    let min_level = c.parsed(&k.key("min_level"), &r.min_level, |t| t.parse::<Level>());
    let enforce = c.parsed(&k.key("mode"), &r.mode, mode);
    let mut bad = (r.rules.is_some() && rules.is_none())
        || (r.posture.is_some() && posture.is_none())
        || (r.min_level.is_some() && min_level.is_none())
        || (r.mode.is_some() && enforce.is_none());
    let action = action?;
    for (i, check) in posture.iter().flatten().enumerate() {
        match crate::posture::catalog::find(check) {
            None => {
                c.report(
                    &k.key("posture").index(i),
                    format!("unknown posture check \"{check}\""),
                );
                bad = true;
            }
            Some(found) if !action.serves_check(found.id) => {
                c.report(
                    &k.key("posture").index(i),
                    format!(
                        "{} cannot act on {check} findings (it acts on: {})",
                        action.name(),
                        match action.checks() {
                            [] => "no posture findings".to_owned(),
                            list => list.join(", "),
                        }
                    ),
                );
                bad = true;
            }
            Some(_) => {}
        }
    }
    let bound = rules.as_ref().is_some_and(|r| !r.is_empty())
        || posture.as_ref().is_some_and(|p| !p.is_empty());
    if enforce.unwrap_or(section_enforce) && !bound {
        c.report(
            k,
            "an action in enforce mode needs at least one binding: `rules` or `posture`",
        );
        bad = true;
    }
    if bad {
        return None;
    }
    Some(ActionConfig {
        action,
        rules: rules.unwrap_or_default(),
        posture: posture.unwrap_or_default(),
        min_level: min_level.unwrap_or(Level::High),
        enforce,
    })
}
