//! Intents: an action decided about one alert or finding, committed in the
//! transaction that commits the alert (detection's, or posture's), so a
//! crash keeps both or neither. The worker turns each into an outcome.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::actions::{self, Action, Target};
use crate::alerts::outbox;
use crate::config::{ActionConfig, ResponseConfig};
use crate::detection::{Alert, Level};
use crate::state::{StateError, WriteTxn};

/// The state store namespace of intents not yet carried out.
pub const INTENTS: &str = "response_intents";

/// An action to carry out, with what caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// What to do.
    pub action: Action,
    /// Make the change (else describe it).
    pub enforce: bool,
    /// What to do it to, or why that could not be worked out.
    pub target: Result<Target, String>,
    /// The rule (or posture check) that caused it.
    pub rule: String,
    /// Its title.
    pub title: String,
    /// The alert's level.
    pub level: Level,
    /// The event's id, name, time and actor, when an event caused it.
    pub event_id: Option<String>,
    /// See `event_id`.
    pub event_name: Option<String>,
    /// See `event_id`.
    pub event_time: Option<String>,
    /// See `event_id`.
    pub principal: Option<String>,
    /// The account.
    pub account: Option<String>,
    /// How old the event was when detection saw it, in seconds.
    pub event_age_seconds: Option<i64>,
    /// When the intent was committed, ms since the epoch.
    pub created_ms: i64,
}

/// The configured actions, ready to match alerts.
#[derive(Debug)]
pub struct Bindings {
    actions: Vec<ActionConfig>,
    enforce: bool,
}

impl Bindings {
    /// The bindings of `config`; `None` when no action is configured.
    pub fn new(config: &ResponseConfig) -> Option<Arc<Bindings>> {
        if config.actions.is_empty() {
            return None;
        }
        Some(Arc::new(Bindings {
            actions: config.actions.clone(),
            enforce: config.enforce,
        }))
    }

    /// The intents an alert of detection calls for.
    pub fn for_alert(&self, alert: &Alert, now_ms: i64) -> Vec<Intent> {
        let bound: Vec<&ActionConfig> = self
            .actions
            .iter()
            .filter(|a| a.rules.contains(&alert.rule.id) && alert.rule.level >= a.min_level)
            .collect();
        if bound.is_empty() {
            return Vec::new();
        }
        let event = alert
            .events
            .first()
            .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok());
        let event_ms = alert
            .event_time
            .as_deref()
            .and_then(crate::detection::event::parse_time_ms);
        bound
            .into_iter()
            .map(|a| {
                let target = match &event {
                    Some(event) => actions::from_event(a.action, event),
                    None => Err(
                        "the alert carries no event (a correlation): nothing to act on".to_owned(),
                    ),
                };
                self.intent(
                    a,
                    target,
                    alert,
                    event_ms.map(|t| (now_ms - t) / 1000),
                    now_ms,
                )
            })
            .collect()
    }

    /// The intents a posture finding that opened calls for.
    pub fn for_finding(&self, alert: &Alert, now_ms: i64) -> Vec<Intent> {
        let Some(posture) = &alert.posture else {
            return Vec::new();
        };
        self.actions
            .iter()
            .filter(|a| a.posture.contains(&posture.check) && posture.severity >= a.min_level)
            .map(|a| {
                let target = actions::from_finding(a.action, &posture.check, &posture.resource);
                let age = alert
                    .event_time
                    .as_deref()
                    .and_then(crate::detection::event::parse_time_ms)
                    .map(|t| (now_ms - t) / 1000);
                self.intent(a, target, alert, age, now_ms)
            })
            .collect()
    }

    fn intent(
        &self,
        a: &ActionConfig,
        target: Result<Target, String>,
        alert: &Alert,
        event_age_seconds: Option<i64>,
        now_ms: i64,
    ) -> Intent {
        Intent {
            action: a.action,
            enforce: a.enforce.unwrap_or(self.enforce),
            target,
            rule: alert.rule.id.clone(),
            title: alert.rule.title.clone(),
            level: alert.rule.level,
            event_id: alert.event_id.as_deref().map(str::to_owned),
            event_name: alert.event_name.as_deref().map(str::to_owned),
            event_time: alert.event_time.as_deref().map(str::to_owned),
            principal: alert.principal.as_deref().map(str::to_owned),
            account: alert.account.as_deref().map(str::to_owned),
            event_age_seconds,
            created_ms: now_ms,
        }
    }
}

/// Commits `intents` in `txn`; returns how many.
pub fn stage(
    txn: &mut WriteTxn,
    intents: &[Intent],
    keys: &outbox::Keys,
    now_ms: i64,
) -> Result<usize, StateError> {
    for intent in intents {
        txn.put_record(INTENTS, &keys.next(now_ms), intent, None)?;
    }
    Ok(intents.len())
}
