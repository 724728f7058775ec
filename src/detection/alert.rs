//! The one Alert model every later stage shares: outbox, SNS, JSON lines.
//!
//! An alert names its rule (id, title, level, tags, and what to do about
//! it), says who did what where and when, carries the matched event (or a
//! summary of a correlation's events), and has a stable dedup key: by
//! default the rule id, the principal and the account, so that repeats of
//! one finding can be recognised downstream.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Level;

/// The rule behind an alert, with what a responder needs to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// The rule's id.
    pub id: String,
    /// The rule's title.
    pub title: String,
    /// Severity.
    pub level: Level,
    /// Tags such as `attack.t1078`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Why it matters and what to check first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Known benign causes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub falsepositives: Vec<String>,
    /// Further reading.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

/// Whether one event matched or a correlation fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A detection rule matched one event.
    Match,
    /// A correlation rule's condition held over several events.
    Correlation,
    /// The repeats of one alert that noise control held back in a window,
    /// sent as one message when the window closed.
    Summary,
    /// A posture finding opened or resolved: about a resource's settings,
    /// not one event.
    Posture,
    /// A response action's outcome: what was (or would be) done, to what,
    /// why, and how to undo it.
    Response,
    /// An anomaly rule found something unusual for this account: a value
    /// new to a principal, or a burst over its own baseline.
    Anomaly,
}

/// For an anomaly alert: what was unusual, and against what history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyInfo {
    /// `first_seen` or `rate`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The group-by fields and their values (such as the principal).
    pub group: BTreeMap<String, String>,
    /// For first_seen: the watched fields and their new values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub new_value: BTreeMap<String, String>,
    /// When the group's history (as far as cloudwarden knows it) began, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_since: Option<String>,
    /// How long a value stays known (first_seen), or the baseline's memory (rate), in seconds.
    pub history_seconds: u64,
    /// For rate: events in the bucket when it alerted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// For rate: the group's mean events per active bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_mean: Option<f64>,
    /// For rate: their standard deviation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_spread: Option<f64>,
    /// For rate: the count the bucket had to reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// For rate: the bucket's length in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_seconds: Option<u64>,
    /// For rate: when the bucket began, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_start: Option<String>,
}

/// For a response alert: the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseInfo {
    /// The journal id (`cloudwarden response undo ID`).
    pub id: String,
    /// The action's name.
    pub action: String,
    /// `enforce` or `dry_run`.
    pub mode: String,
    /// `done`, `already`, `dry_run`, `refused` or `failed`.
    pub outcome: String,
    /// What it acted on.
    pub target: String,
    /// The call made, or that would be made, or why none.
    pub detail: String,
    /// How to put it back, when something changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<String>,
    /// The rule or posture check that caused it.
    pub cause: String,
}

/// For a posture alert: the finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostureInfo {
    /// The check's id (also the alert's rule id).
    pub check: String,
    /// `opened` or `resolved`.
    pub status: String,
    /// The resource's ARN.
    pub resource: String,
    /// The CIS AWS Foundations control, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cis: Option<String>,
    /// The finding, for people.
    pub message: String,
    /// What to do.
    pub remediation: String,
    /// The severity of the finding (a resolved alert is itself `low`).
    pub severity: Level,
}

/// For a summary: how often the alert repeated while its window was open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeats {
    /// Repeats held back (the first alert was delivered on its own).
    pub count: u64,
    /// When the window opened and closed, RFC 3339.
    pub window_start: String,
    /// See `window_start`.
    pub window_end: String,
    /// Event time of the first and the last repeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_event_time: Option<String>,
    /// See `first_event_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_time: Option<String>,
    /// `eventID` of the last repeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_id: Option<String>,
    /// Source IPs of the repeats, the first few distinct ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
}

/// What a correlation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationInfo {
    /// The correlation type, such as `event_count`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The group-by fields and their values.
    pub group: BTreeMap<String, String>,
    /// The measured value (a count, a sum, an average).
    pub value: f64,
    /// The rule's timespan in seconds.
    pub timespan_seconds: u64,
    /// Time of the first and the last event that made the value.
    pub first_event_time: Option<String>,
    /// See `first_event_time`.
    pub last_event_time: Option<String>,
    /// Events the group saw in its window.
    pub events_seen: u64,
}

/// A short summary of an event, kept for correlations instead of the whole event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDigest {
    /// `eventID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Arc<str>>,
    /// `eventTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<Arc<str>>,
    /// `eventName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<Arc<str>>,
    /// The acting principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Arc<str>>,
    /// `sourceIPAddress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<Arc<str>>,
    /// `eventSource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source: Option<Arc<str>>,
    /// The account the event happened in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Arc<str>>,
    /// `awsRegion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Arc<str>>,
}

/// A detection: what was found, about whom, and the evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alert {
    /// Unique per alert, set when it is committed to the outbox: a sink that
    /// receives one id twice got a redelivery, not a second detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The rule that fired.
    pub rule: AlertRule,
    /// A match or a correlation.
    pub kind: AlertKind,
    /// For correlations: what was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<CorrelationInfo>,
    /// When the (last) event happened, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<Arc<str>>,
    /// `eventID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Arc<str>>,
    /// `eventSource`, such as `iam.amazonaws.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source: Option<Arc<str>>,
    /// `eventName`, such as `CreateUser`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<Arc<str>>,
    /// Who acted: an ARN, or the service or principal id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Arc<str>>,
    /// The AWS account the event belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Arc<str>>,
    /// The Region of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Arc<str>>,
    /// Where the call came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<Arc<str>>,
    /// The caller's user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<Arc<str>>,
    /// The configured source that read the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Where the event was read (file and line, S3 key, log stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Identifies repeats of one finding: rule id, principal and account
    /// unless the rule names other fields.
    pub dedup_key: String,
    /// The matched event as it was read (empty for correlations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Box<RawValue>>,
    /// A summary of the events a correlation counted (the first and last few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub correlated_events: Vec<EventDigest>,
    /// For a summary: the repeats it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<Repeats>,
    /// For a posture alert: the finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<PostureInfo>,
    /// For a response alert: the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseInfo>,
    /// For an anomaly alert: what was unusual.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<AnomalyInfo>,
    /// What was cut to fit a message limit (`events`, `correlated_events`,
    /// `description`); the essentials never are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trimmed: Vec<String>,
}

impl Alert {
    /// The alert as one line of JSON.
    pub fn to_json_line(&self) -> String {
        // Every field serialises infallibly (strings, numbers, raw JSON).
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Builds a dedup key from its parts; empty parts are kept so that keys
/// with missing values stay distinct from keys with other values.
pub fn dedup_key(rule_id: &str, parts: &[Option<&str>]) -> String {
    let mut key = String::from(rule_id);
    for part in parts {
        key.push('|');
        key.push_str(part.unwrap_or(""));
    }
    key
}
