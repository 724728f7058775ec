//! Comparing what should exist with what does, and repairing the difference.
//!
//! Filter patterns are compared by meaning, so a pattern someone rewrote in
//! another order, quoting or spacing is not drift.
//!
//! Ownership goes by name, not by what the object says about itself: a
//! name under [`OWNED_PREFIX`] or one cloudwarden has put before (the
//! caller's `owned` set) stays cloudwarden's, so overwriting such an alarm
//! with a description that lacks the [`MARKER`] is drift, repaired, not a
//! way to take it over. Any other alarm or filter of a declared name is
//! reported and left alone: it may be another team's, unless its
//! description carries the marker (an alarm cloudwarden created before).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::api::{AlarmsApi, ExistingAlarm, ExistingFilter};
use super::desired::{Alarm, CIS_PREFIX, Desired, Filter, MARKER};
use super::pattern;
use crate::aws::AwsError;

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The filter or alarm is missing.
    Create,
    /// It exists and differs from its declaration.
    Repair,
}

/// One filter or alarm to put.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A metric filter.
    Filter(Filter),
    /// An alarm.
    Alarm(Alarm),
}

impl Item {
    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Item::Filter(f) => &f.name,
            Item::Alarm(a) => &a.name,
        }
    }

    /// "metric filter" or "alarm".
    pub fn kind(&self) -> &'static str {
        match self {
            Item::Filter(_) => "metric filter",
            Item::Alarm(_) => "alarm",
        }
    }
}

/// One change of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Create or repair.
    pub action: Action,
    /// What to put.
    pub item: Item,
    /// For a repair, what differs.
    pub reasons: Vec<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.action {
            Action::Create => write!(f, "create {} {}", self.item.kind(), self.item.name()),
            Action::Repair => write!(
                f,
                "repair {} {}: {}",
                self.item.kind(),
                self.item.name(),
                self.reasons.join("; ")
            ),
        }
    }
}

/// Something wrong that a change cannot fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether it is a definite wiring problem (alerted when it appears),
    /// not a failure to check or a name taken by someone else's object.
    pub certain: bool,
    /// What it is about.
    pub subject: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// What would change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Puts to make.
    pub changes: Vec<Change>,
    /// Problems to report.
    pub findings: Vec<Finding>,
    /// Filters and alarms declared.
    pub declared: usize,
    /// Declared names taken by filters or alarms that are not cloudwarden's,
    /// as `(kind, name)`: left alone and not counted as managed.
    pub foreign: Vec<(&'static str, String)>,
}

/// What applying a plan did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Changes made.
    pub done: Vec<Change>,
    /// Changes that failed, with why.
    pub failed: Vec<(Change, AwsError)>,
}

/// Names under this prefix are cloudwarden's whatever they say (the IAM
/// policy lets it write only these).
pub const OWNED_PREFIX: &str = "cloudwarden-";

/// Whether the `kind` (`alarm`, `metric filter`) named `name` is
/// cloudwarden's by name: under [`OWNED_PREFIX`], or in `owned` (as
/// `kind:name`, what it has put before).
fn owned_name(owned: &BTreeSet<String>, kind: &str, name: &str) -> bool {
    name.starts_with(OWNED_PREFIX) || owned.contains(&format!("{kind}:{name}"))
}

/// Compares `desired` with what exists; `owned` names (`kind:name`) what
/// cloudwarden has put before.
pub async fn plan<A: AlarmsApi>(
    api: &A,
    desired: &Desired,
    owned: &BTreeSet<String>,
) -> Result<Plan, AwsError> {
    let mut plan = Plan {
        declared: desired.filters.len() + desired.alarms.len(),
        ..Plan::default()
    };
    let mut by_group: BTreeMap<&str, Vec<&Filter>> = BTreeMap::new();
    for filter in &desired.filters {
        by_group.entry(&filter.log_group).or_default().push(filter);
    }
    for (group, filters) in by_group {
        let existing = api.filters(group).await?;
        for filter in filters {
            // A name is unique in a log group; should a listing repeat one
            // (moto appends on replace), the last is the current one.
            match existing.iter().rev().find(|e| e.name == filter.name) {
                None => plan.changes.push(Change {
                    action: Action::Create,
                    item: Item::Filter(filter.clone()),
                    reasons: Vec::new(),
                }),
                Some(e)
                    if !e.name.starts_with(CIS_PREFIX)
                        && !owned_name(owned, "metric filter", &e.name) =>
                {
                    plan.foreign.push(("metric filter", e.name.clone()));
                    plan.findings.push(Finding {
                        certain: false,
                        subject: format!("metric filter {}", e.name),
                        message: "exists and is not cloudwarden's; left alone".to_owned(),
                    });
                }
                Some(e) => {
                    let reasons = filter_drift(filter, e);
                    if !reasons.is_empty() {
                        plan.changes.push(Change {
                            action: Action::Repair,
                            item: Item::Filter(filter.clone()),
                            reasons,
                        });
                    }
                }
            }
        }
    }
    let names: Vec<String> = desired.alarms.iter().map(|a| a.name.clone()).collect();
    let existing = api.alarms(&names).await?;
    for alarm in &desired.alarms {
        match existing.iter().find(|e| e.alarm.name == alarm.name) {
            None => plan.changes.push(Change {
                action: Action::Create,
                item: Item::Alarm(alarm.clone()),
                reasons: Vec::new(),
            }),
            Some(e)
                if !e.alarm.description.contains(MARKER)
                    && !owned_name(owned, "alarm", &e.alarm.name) =>
            {
                plan.foreign.push(("alarm", e.alarm.name.clone()));
                plan.findings.push(Finding {
                    certain: false,
                    subject: format!("alarm {}", e.alarm.name),
                    message: "exists and is not cloudwarden's (its description lacks the marker); left alone; rename the declared alarm or delete this one".to_owned(),
                });
            }
            Some(e) => {
                let reasons = alarm_drift(alarm, e);
                if !reasons.is_empty() {
                    plan.changes.push(Change {
                        action: Action::Repair,
                        item: Item::Alarm(alarm.clone()),
                        reasons,
                    });
                }
            }
        }
    }
    if let Some((group, topic)) = &desired.cis {
        plan.findings.extend(wiring(api, group, topic).await);
    }
    Ok(plan)
}

/// Makes the changes of `plan`, going on past failures.
pub async fn apply<A: AlarmsApi>(api: &A, plan: &Plan) -> Applied {
    let mut applied = Applied::default();
    for change in &plan.changes {
        let result = match &change.item {
            Item::Filter(f) => api.put_filter(f).await,
            Item::Alarm(a) => api.put_alarm(a).await,
        };
        match result {
            Ok(()) => applied.done.push(change.clone()),
            Err(err) => applied.failed.push((change.clone(), err)),
        }
    }
    applied
}

fn filter_drift(want: &Filter, have: &ExistingFilter) -> Vec<String> {
    let mut reasons = Vec::new();
    let same_pattern = match (pattern::parse(&want.pattern), pattern::parse(&have.pattern)) {
        (Ok(a), Ok(b)) => a.equivalent(&b),
        _ => squash(&want.pattern) == squash(&have.pattern),
    };
    if !same_pattern {
        reasons.push(format!("pattern is {:?}", have.pattern));
    }
    let metric = (
        want.namespace.clone(),
        want.metric_name.clone(),
        "1".to_owned(),
    );
    match &have.metric {
        Some(m) if *m == metric => {}
        Some((ns, name, value)) => {
            reasons.push(format!("metric is {ns}/{name} with value {value}"))
        }
        None => reasons.push("no metric transformation".to_owned()),
    }
    reasons
}

fn alarm_drift(want: &Alarm, have: &ExistingAlarm) -> Vec<String> {
    let h = &have.alarm;
    let mut reasons = Vec::new();
    let mut differs = |what: &str, want: String, have: String| {
        if want != have {
            reasons.push(format!("{what} is {have}, declared {want}"));
        }
    };
    differs(
        "metric",
        format!("{}/{}", want.namespace, want.metric_name),
        format!("{}/{}", h.namespace, h.metric_name),
    );
    differs(
        "dimensions",
        format!("{:?}", want.dimensions),
        format!("{:?}", h.dimensions),
    );
    differs("statistic", want.statistic.clone(), h.statistic.clone());
    differs("comparison", want.comparison.clone(), h.comparison.clone());
    differs(
        "threshold",
        want.threshold.to_string(),
        h.threshold.to_string(),
    );
    differs("period", want.period.to_string(), h.period.to_string());
    differs(
        "evaluation periods",
        want.evaluation_periods.to_string(),
        h.evaluation_periods.to_string(),
    );
    let datapoints = |a: &Alarm| a.datapoints_to_alarm.unwrap_or(a.evaluation_periods);
    differs(
        "datapoints to alarm",
        datapoints(want).to_string(),
        datapoints(h).to_string(),
    );
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    };
    differs(
        "actions",
        format!("{:?}", sorted(&want.actions)),
        format!("{:?}", sorted(&h.actions)),
    );
    let missing = |a: &Alarm| {
        a.treat_missing_data
            .clone()
            .unwrap_or_else(|| "missing".to_owned())
    };
    differs("missing data treatment", missing(want), missing(h));
    differs(
        "description",
        want.description.clone(),
        h.description.clone(),
    );
    if !have.actions_enabled {
        reasons.push("actions are disabled".to_owned());
    }
    reasons
}

/// Whitespace removed, for patterns that cannot be parsed.
fn squash(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The wiring people get wrong: a topic CloudWatch may publish to, with a
/// subscriber, and a log group a trail delivers to.
async fn wiring<A: AlarmsApi>(api: &A, group: &str, topic: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let subject = format!("topic {topic}");
    match api.confirmed_subscriptions(topic).await {
        Ok(0) => findings.push(Finding {
            certain: true,
            subject: subject.clone(),
            message: "has no confirmed subscription: alarms notify nobody".to_owned(),
        }),
        Ok(_) => {}
        Err(err) => findings.push(Finding {
            certain: false,
            subject: subject.clone(),
            message: format!("its subscriptions cannot be listed: {err}"),
        }),
    }
    match api.topic_attributes(topic).await {
        Ok(attributes) => {
            let policy = attributes
                .get("Policy")
                .and_then(|p| serde_json::from_str::<Value>(p).ok());
            if !policy.as_ref().is_some_and(allows_cloudwatch) {
                findings.push(Finding {
                    certain: true,
                    subject,
                    message: "its access policy does not let cloudwatch.amazonaws.com publish (sns:Publish): alarms cannot notify".to_owned(),
                });
            }
        }
        Err(err) => findings.push(Finding {
            certain: false,
            subject,
            message: format!("cannot be read: {err}"),
        }),
    }
    match api.trail_log_groups().await {
        Ok(trails) => {
            let needle = format!(":log-group:{group}");
            let delivers = |arn: &String| {
                arn.find(&needle).is_some_and(|at| {
                    matches!(arn[at + needle.len()..].chars().next(), None | Some(':'))
                })
            };
            let feeding: Vec<&String> = trails
                .iter()
                .filter(|(_, log_group)| delivers(log_group))
                .map(|(trail, _)| trail)
                .collect();
            if feeding.is_empty() {
                findings.push(Finding {
                    certain: true,
                    subject: format!("log group {group}"),
                    message: "no trail delivers to it: the metric filters count nothing (set the trail's CloudWatch Logs log group)".to_owned(),
                });
            }
            // A trail that delivers here but stopped logging feeds nothing
            // either: stopping the trail is how an intruder goes quiet.
            for trail in &feeding {
                match api.trail_logging(trail).await {
                    Ok(true) => {}
                    Ok(false) => findings.push(Finding {
                        certain: true,
                        subject: format!("trail {trail}"),
                        message: format!("delivers to log group {group} but is not logging (GetTrailStatus): the metric filters count nothing until it is started again"),
                    }),
                    Err(err) => findings.push(Finding {
                        certain: false,
                        subject: format!("trail {trail}"),
                        message: format!("cannot tell whether it is logging: {err}"),
                    }),
                }
            }
        }
        Err(err) => findings.push(Finding {
            certain: false,
            subject: format!("log group {group}"),
            message: format!("cannot tell whether a trail delivers to it: {err}"),
        }),
    }
    findings
}

/// Whether a topic policy lets CloudWatch publish: a statement allowing
/// sns:Publish to `*`, to any AWS principal, or to the CloudWatch service.
fn allows_cloudwatch(policy: &Value) -> bool {
    let statements = match &policy["Statement"] {
        Value::Array(list) => list.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => return false,
    };
    statements.iter().any(|s| {
        let allow = s["Effect"] == "Allow";
        let publish = strings(&s["Action"])
            .iter()
            .any(|a| ["sns:publish", "sns:*", "*"].contains(&a.to_ascii_lowercase().as_str()));
        let principal = &s["Principal"];
        let who = principal == "*"
            || strings(&principal["AWS"]).iter().any(|p| p == "*")
            || strings(&principal["Service"])
                .iter()
                .any(|p| p == "cloudwatch.amazonaws.com");
        allow && publish && who
    })
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(list) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}
