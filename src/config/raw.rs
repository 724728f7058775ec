//! Stage one of configuration: the layered tree as the user wrote it.
//!
//! Every leaf is kept as an untyped figment [`Value`] so that reading the raw
//! sections never stops at the first wrong type: stage two
//! ([`super::validate`]) converts each leaf on its own and collects every
//! problem. Keys that no raw struct names are reported as unknown.

use figment::value::Value;
use serde::Deserialize;

/// One leaf as written: any TOML or environment value, converted later.
pub(super) type Leaf = Option<Value>;

/// `[aws]`: where and as whom cloudwarden talks to AWS.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawAws {
    pub region: Leaf,
    pub profile: Leaf,
    pub endpoint_url: Leaf,
    pub endpoints: Leaf,
}

/// `[state]`: the embedded store.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawState {
    pub path: Leaf,
}

/// `[metrics]`: the admin HTTP server.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawMetrics {
    pub listen: Leaf,
}

/// `[log]`: structured logging.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawLog {
    pub level: Leaf,
    pub format: Leaf,
}

/// `[daemon]`: process lifecycle.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawDaemon {
    pub shutdown_grace: Leaf,
}

/// `[pipeline]`: the channels between stages.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawPipeline {
    pub channel_capacity: Leaf,
    pub channel_bytes: Leaf,
    pub dedup_window: Leaf,
    pub dedup_capacity: Leaf,
}

/// `[detection]`: limits of the detection engine.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawDetection {
    pub max_event_bytes: Leaf,
    pub max_event_depth: Leaf,
    pub late_allowance: Leaf,
    pub max_future_skew: Leaf,
    pub max_groups: Leaf,
    pub max_group_entries: Leaf,
    pub anomaly_max_groups: Leaf,
    pub anomaly_max_values: Leaf,
}

/// `[rules]`: which Sigma rules are loaded.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawRules {
    pub builtin: Leaf,
    pub paths: Leaf,
    pub disabled: Leaf,
    pub placeholders: Leaf,
}

/// One `[[sources]]` entry. Keys of every kind are listed here; which of them
/// apply to the entry's `kind` is checked in stage two.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawSource {
    pub kind: Leaf,
    pub name: Leaf,
    pub interval: Leaf,
    pub regions: Leaf,
    pub accounts: Leaf,
    pub lookback: Leaf,
    pub log_group: Leaf,
    pub log_group_prefix: Leaf,
    pub filter_pattern: Leaf,
    pub stream_prefix: Leaf,
    pub format: Leaf,
    pub region: Leaf,
    pub logsource: Leaf,
    pub global_events: Leaf,
    pub queue_url: Leaf,
    pub max_attempts: Leaf,
    pub visibility_timeout: Leaf,
    pub buckets: Leaf,
    pub bucket_owner: Leaf,
    pub max_object_bytes: Leaf,
}

/// `[alerts]`: delivery settings.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawAlerts {
    pub dedup_window: Leaf,
    pub aggregate: Leaf,
    pub max_windows: Leaf,
    pub file: Leaf,
    pub sns: Option<Vec<Value>>,
    pub suppress: Option<Vec<Value>>,
}

/// One `[[alerts.sns]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawSnsSink {
    pub topic_arn: Leaf,
    pub min_level: Leaf,
    pub rules: Leaf,
    pub tags: Leaf,
    pub format: Leaf,
    pub max_per_minute: Leaf,
}

/// One `[[alerts.suppress]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawSuppression {
    pub reason: Leaf,
    pub rule: Leaf,
    pub principal: Leaf,
    pub source_ip: Leaf,
    pub account: Leaf,
    pub user_agent: Leaf,
    pub resource: Leaf,
    pub expires: Leaf,
}

/// `[alarms]`: reconciled CloudWatch alarms.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawAlarms {
    pub interval: Leaf,
    pub cis: Option<Value>,
    pub custom: Option<Vec<Value>>,
}

/// One `[[alarms.custom]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawCustomAlarm {
    pub name: Leaf,
    pub description: Leaf,
    pub namespace: Leaf,
    pub metric_name: Leaf,
    pub dimensions: Leaf,
    pub statistic: Leaf,
    pub comparison: Leaf,
    pub threshold: Leaf,
    pub period: Leaf,
    pub evaluation_periods: Leaf,
    pub datapoints_to_alarm: Leaf,
    pub actions: Leaf,
    pub treat_missing_data: Leaf,
}

/// `[alarms.cis]`: the CIS AWS Foundations monitoring set.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawCis {
    pub enabled: Leaf,
    pub log_group: Leaf,
    pub topic_arn: Leaf,
    pub namespace: Leaf,
    pub benchmark: Leaf,
    pub controls: Leaf,
    pub thresholds: Leaf,
}

/// The top level: each section is read on its own so one broken section does
/// not hide problems in the others.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawConfig {
    pub aws: Option<Value>,
    pub state: Option<Value>,
    pub metrics: Option<Value>,
    pub log: Option<Value>,
    pub daemon: Option<Value>,
    pub pipeline: Option<Value>,
    pub detection: Option<Value>,
    pub rules: Option<Value>,
    pub sources: Option<Value>,
    pub alerts: Option<Value>,
    pub alarms: Option<Value>,
    pub posture: Option<Value>,
    pub response: Option<Value>,
}
