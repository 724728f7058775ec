//! Configuration: built-in defaults < TOML file < `CLOUDWARDEN_*` environment.
//!
//! Loading runs in two stages. Stage one ([`raw`]) merges the layers with
//! figment into raw sections whose leaves are still untyped, so nothing stops
//! at the first wrong type. Stage two ([`validate`]) converts every leaf into
//! the typed [`Config`] below and collects every [`Problem`] — unknown keys,
//! wrong types, bad durations and addresses, missing keys — each with the
//! file, key and line it came from. Nothing starts until the whole
//! configuration is valid.

mod alarms;
mod alerts;
mod checker;
mod field_names;
mod file;
mod formats;
mod key_path;
mod load;
mod posture;
mod problems;
mod raw;
mod response;
mod show;
mod sources;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) use key_path::KeyPath;
pub(crate) use load::problems_at;
pub use load::{ConfigLocation, DEFAULT_CONFIG_PATH, DEFAULTS_VAR, load};
pub use posture::{PasswordPolicyConfig, PostureConfig};
pub use problems::{ConfigErrors, Origin, Problem};
pub use response::{ActionConfig, ResponseConfig};
pub use show::show;
pub use sources::{LogGroupSelector, RecordFormat, SourceConfig, SourceKind};

use crate::detection::Level;

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "CLOUDWARDEN_";

/// The embedded defaults, the lowest configuration layer.
pub const DEFAULTS_TOML: &str = include_str!("defaults.toml");

/// A complete, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where and as whom to reach AWS.
    pub aws: AwsConfig,
    /// The embedded state store.
    pub state: StateConfig,
    /// The admin HTTP server (metrics and health).
    pub metrics: MetricsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Process lifecycle.
    pub daemon: DaemonConfig,
    /// The channels between pipeline stages.
    pub pipeline: PipelineConfig,
    /// Limits of the detection engine.
    pub detection: DetectionConfig,
    /// Which detection rules are loaded.
    pub rules: RulesConfig,
    /// The event sources, in configuration order.
    pub sources: Vec<SourceConfig>,
    /// Alert delivery.
    pub alerts: AlertsConfig,
    /// Reconciled CloudWatch alarms.
    pub alarms: AlarmsConfig,
    /// Posture checks and declared settings.
    pub posture: PostureConfig,
    /// Response actions.
    pub response: ResponseConfig,
    /// `CLOUDWARDEN_*` variables ignored as Kubernetes service links, for
    /// a warning once logging is set up.
    pub ignored_env: Vec<String>,
}

/// `[aws]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AwsConfig {
    /// The home Region; unset means AWS's own chain (`AWS_REGION`, the profile, IMDS).
    pub region: Option<String>,
    /// A named profile from the shared AWS config files.
    pub profile: Option<String>,
    /// An endpoint every client uses instead of AWS's, such as a local emulator.
    pub endpoint_url: Option<String>,
    /// Endpoints of single services (`cloudtrail`, `logs`, `sqs`, ...), over `endpoint_url`.
    pub endpoints: std::collections::BTreeMap<String, String>,
}

/// `[state]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// The redb file holding checkpoints, windows and the alert outbox.
    pub path: PathBuf,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` are served; loopback by default.
    pub listen: SocketAddr,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A tracing filter directive such as `info` or `info,cloudwarden=debug`.
    pub level: String,
    /// How log lines are written.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, text when it is.
    Auto,
    /// One JSON object per line.
    Json,
    /// Lines for people.
    Text,
}

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// How long shutdown may take to drain the pipeline and flush state.
    pub shutdown_grace: Duration,
}

/// `[pipeline]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Capacity of the channel from sources to detection; a full channel slows sources.
    pub channel_capacity: usize,
    /// Bytes of record text the channel holds at most; a full channel slows sources.
    pub channel_bytes: usize,
    /// An event whose eventID was seen within this window is a duplicate.
    pub dedup_window: Duration,
    /// At most this many eventIDs are remembered; the oldest go first.
    pub dedup_capacity: usize,
}

/// `[detection]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectionConfig {
    /// Larger records are rejected.
    pub max_event_bytes: usize,
    /// Deeper nesting is rejected.
    pub max_event_depth: usize,
    /// How late (in event time) an event may arrive and still be correlated.
    pub late_allowance: Duration,
    /// How far ahead of the clock an event's time may move event time on.
    pub max_future_skew: Duration,
    /// Groups kept per correlation rule.
    pub max_groups: usize,
    /// Events kept per correlation group.
    pub max_group_entries: usize,
    /// Groups kept per anomaly rule.
    pub anomaly_max_groups: usize,
    /// Values a first-seen anomaly group keeps.
    pub anomaly_max_values: usize,
}

impl Config {
    /// The detection engine's limits: `[detection]`, and dedup from `[pipeline]`.
    pub fn engine(&self) -> crate::detection::EngineConfig {
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let d = &self.detection;
        crate::detection::EngineConfig {
            event: crate::detection::event::Limits {
                max_bytes: d.max_event_bytes,
                max_depth: d.max_event_depth,
            },
            correlation: crate::detection::correlation::Limits {
                max_groups: d.max_groups,
                max_entries: d.max_group_entries,
                late_allowance_ms: millis(d.late_allowance),
                max_future_ms: millis(d.max_future_skew),
            },
            anomaly: crate::detection::anomaly::Limits {
                max_groups: d.anomaly_max_groups,
                max_values: d.anomaly_max_values,
            },
            dedup: Some((
                millis(self.pipeline.dedup_window),
                self.pipeline.dedup_capacity,
            )),
            touches: self.posture.enabled,
        }
    }
}

/// `[rules]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesConfig {
    /// Whether the built-in AWS rule pack is loaded.
    pub builtin: bool,
    /// Extra Sigma rule files or folders.
    pub paths: Vec<PathBuf>,
    /// Rule ids that are not loaded.
    pub disabled: Vec<String>,
    /// Values of `%name%` placeholders in rules (the `expand` modifier).
    pub placeholders: std::collections::HashMap<String, Vec<String>>,
}

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertsConfig {
    /// How long an alert's dedup key holds back repeats.
    pub dedup_window: Duration,
    /// Whether the repeats held back in a window are sent as one summary
    /// with their count when the window closes.
    pub aggregate: bool,
    /// Open dedup windows kept at most; past it the oldest closes early.
    pub max_windows: usize,
    /// Alerts appended as JSON lines to this file (`-`: standard output).
    pub file: Option<PathBuf>,
    /// SNS topics alerts are published to.
    pub sns: Vec<SnsSinkConfig>,
    /// Alerts that are not raised at all, and why.
    pub suppress: Vec<SuppressionConfig>,
}

/// How an SNS topic's messages are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageFormat {
    /// Per-protocol bodies (`MessageStructure=json`): short text by
    /// default, a readable email, the alert's JSON for sqs, lambda and https.
    Standard,
    /// The custom-notification format AWS Chatbot (Amazon Q Developer in
    /// chat applications) renders in Slack, Teams and Chime.
    Chatbot,
}

/// One `[[alerts.sns]]` topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsSinkConfig {
    /// The topic's ARN.
    pub topic_arn: String,
    /// Alerts below this level are not published to this topic.
    pub min_level: Level,
    /// Only alerts of these rule ids (all when empty).
    pub rules: Vec<String>,
    /// Only alerts whose rule has one of these tags, or a tag under one of
    /// them (`attack.persistence`, or `attack` for every ATT&CK tag); all when empty.
    pub tags: Vec<String>,
    /// How messages are written.
    pub format: MessageFormat,
    /// Messages published per minute at most; the rest wait their turn in the outbox.
    pub max_per_minute: u32,
}

/// One `[[alerts.suppress]]` entry: alerts matching every criterion it sets
/// are dropped (and counted) until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionConfig {
    /// Why; shown in the metric and the log.
    pub reason: String,
    /// A rule id.
    pub rule: Option<String>,
    /// A principal ARN pattern (`*` and `?` wildcards).
    pub principal: Option<String>,
    /// A source IP address or CIDR range.
    pub source_ip: Option<ipnet::IpNet>,
    /// An AWS account id.
    pub account: Option<String>,
    /// A user agent pattern (`*` and `?` wildcards).
    pub user_agent: Option<String>,
    /// A resource ARN pattern (`*` and `?` wildcards), for posture findings.
    pub resource: Option<String>,
    /// When it stops applying.
    pub expires: Option<jiff::Timestamp>,
}

/// `[alarms]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlarmsConfig {
    /// How often the alarms are reconciled.
    pub interval: Duration,
    /// The CIS AWS Foundations monitoring set.
    pub cis: CisConfig,
    /// Alarms the user declares.
    pub custom: Vec<CustomAlarmConfig>,
}

impl AlarmsConfig {
    /// Whether there is anything to reconcile.
    pub fn any(&self) -> bool {
        self.cis.enabled || !self.custom.is_empty()
    }
}

/// `[alarms.cis]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CisConfig {
    /// Whether cloudwarden manages the CIS metric filters and alarms.
    pub enabled: bool,
    /// The log group CloudTrail delivers to; required when enabled.
    pub log_group: Option<String>,
    /// The topic the alarms notify; required when enabled.
    pub topic_arn: Option<String>,
    /// The metric namespace of the filters and alarms.
    pub namespace: String,
    /// Which text of the benchmark the filter patterns follow.
    pub benchmark: crate::alarms::cis::Benchmark,
    /// The control ids managed; empty for all.
    pub controls: Vec<String>,
    /// Thresholds by control id, where the benchmark's 1 is not wanted.
    pub thresholds: std::collections::BTreeMap<String, f64>,
}

impl Default for CisConfig {
    fn default() -> Self {
        CisConfig {
            enabled: false,
            log_group: None,
            topic_arn: None,
            namespace: crate::alarms::cis::DEFAULT_NAMESPACE.to_owned(),
            benchmark: crate::alarms::cis::Benchmark::V4,
            controls: Vec::new(),
            thresholds: std::collections::BTreeMap::new(),
        }
    }
}

/// One `[[alarms.custom]]` metric alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomAlarmConfig {
    /// The alarm's name.
    pub name: String,
    /// What it is for, shown with the alarm.
    pub description: Option<String>,
    /// The metric's namespace, e.g. `AWS/EC2`.
    pub namespace: String,
    /// The metric's name, e.g. `CPUUtilization`.
    pub metric_name: String,
    /// The metric's dimensions.
    pub dimensions: std::collections::BTreeMap<String, String>,
    /// `Average`, `Sum`, `Minimum`, `Maximum` or `SampleCount`.
    pub statistic: String,
    /// A CloudWatch comparison operator, e.g. `GreaterThanThreshold`.
    pub comparison: String,
    /// The threshold.
    pub threshold: f64,
    /// The period in seconds.
    pub period: i32,
    /// Periods evaluated.
    pub evaluation_periods: i32,
    /// Breaching periods that raise the alarm (default: all evaluated).
    pub datapoints_to_alarm: Option<i32>,
    /// Alarm actions (SNS topic ARNs and the like), at most 5.
    pub actions: Vec<String>,
    /// `missing`, `notBreaching`, `breaching` or `ignore`.
    pub treat_missing_data: Option<String>,
}

#[cfg(test)]
mod tests;
