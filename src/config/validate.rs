//! Stage two: every raw leaf becomes a typed value, or a recorded problem.
//!
//! Each section is checked in full even when another one failed, and only
//! then combined, so the user sees every problem in one run.

use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::value::{Dict, Value};

use super::checker::Checker;
use super::formats;
use super::key_path::KeyPath;
use super::raw::{
    Leaf, RawAws, RawConfig, RawDaemon, RawDetection, RawLog, RawMetrics, RawPipeline, RawRules,
    RawState,
};
use super::{
    AwsConfig, Config, DaemonConfig, DetectionConfig, LogConfig, LogFormat, MetricsConfig,
    PipelineConfig, RulesConfig, StateConfig,
};

const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(86_400);

/// Validates the merged layers; `None` means problems were recorded in `c`.
pub(super) fn config(figment: &Figment, c: &mut Checker<'_>) -> Option<Config> {
    let root: Dict = match figment.extract() {
        Ok(root) => root,
        Err(errors) => {
            for error in errors {
                let key = error
                    .path
                    .iter()
                    .fold(KeyPath::default(), |path, k| path.key(k));
                c.report(&key, error.kind.to_string());
            }
            return None;
        }
    };
    let raw: RawConfig = c.section(&KeyPath::default(), Some(&Value::from(root)));
    let aws = aws(c, &raw);
    let state = state(c, &raw);
    let metrics = metrics(c, &raw);
    let log = log(c, &raw);
    let daemon = daemon(c, &raw);
    let pipeline = pipeline(c, &raw);
    let detection = detection(c, &raw);
    let rules = rules(c, &raw);
    let sources = super::sources::sources(c, raw.sources.as_ref());
    let alerts = super::alerts::alerts(c, raw.alerts.as_ref());
    let alarms = super::alarms::alarms(c, raw.alarms.as_ref());
    let posture = super::posture::posture(c, raw.posture.as_ref());
    let response = super::response::response(c, raw.response.as_ref());
    if let (Some(sources), Some(pipeline)) = (&sources, &pipeline) {
        lookbacks_within_dedup(c, sources, pipeline);
    }
    Some(Config {
        aws: aws?,
        state: state?,
        metrics: metrics?,
        log: log?,
        daemon: daemon?,
        pipeline: pipeline?,
        detection: detection?,
        rules: rules?,
        sources: sources?,
        alerts: alerts?,
        alarms: alarms?,
        posture: posture?,
        response: response?,
        ignored_env: Vec::new(),
    })
}

/// Sources re-read their lookback on every poll and rely on eventID dedup
/// to drop what they read before. Dedup keeps a polled source's ids until
/// its next poll no longer reaches them, but an id that another source
/// read first (EventBridge, a trail file) lives a dedup window of event
/// time: a lookback plus one poll interval must fit in it, or events read
/// again in the overlap would be processed twice.
fn lookbacks_within_dedup(
    c: &mut Checker<'_>,
    sources: &[super::SourceConfig],
    pipeline: &PipelineConfig,
) {
    for (i, source) in sources.iter().enumerate() {
        let lookback = match &source.kind {
            super::SourceKind::CloudTrailLookup { lookback, .. }
            | super::SourceKind::CloudWatchLogs { lookback, .. } => *lookback,
            _ => continue,
        };
        let interval = source.interval.unwrap_or(Duration::from_secs(60));
        if lookback + interval >= pipeline.dedup_window {
            c.report(
                &KeyPath::root("sources").index(i).key("lookback"),
                format!(
                    "{} plus the poll interval ({}) is not shorter than pipeline.dedup_window ({}): events read again in the overlap could be processed twice; raise pipeline.dedup_window or shorten the lookback",
                    humantime::format_duration(lookback),
                    humantime::format_duration(interval),
                    humantime::format_duration(pipeline.dedup_window)
                ),
            );
        }
    }
}

fn aws(c: &mut Checker<'_>, raw: &RawConfig) -> Option<AwsConfig> {
    let k = KeyPath::root("aws");
    let r: RawAws = c.section(&k, raw.aws.as_ref());
    let table: Option<std::collections::BTreeMap<String, String>> =
        c.value(&k.key("endpoints"), &r.endpoints);
    let mut endpoints = std::collections::BTreeMap::new();
    for (service, url) in table.iter().flatten() {
        let key = k.key("endpoints").key(service);
        if !crate::aws::SERVICES.contains(&service.as_str()) {
            c.report(
                &key,
                format!(
                    "unknown service \"{service}\" (expected one of: {})",
                    crate::aws::SERVICES.join(", ")
                ),
            );
            continue;
        }
        match formats::http_url(url) {
            Ok(url) => {
                endpoints.insert(service.clone(), url);
            }
            Err(message) => c.report(&key, message),
        }
    }
    Some(AwsConfig {
        region: c.parsed(&k.key("region"), &r.region, formats::region),
        profile: c.parsed(&k.key("profile"), &r.profile, formats::non_empty),
        endpoint_url: c.parsed(&k.key("endpoint_url"), &r.endpoint_url, formats::http_url),
        endpoints,
    })
}

fn state(c: &mut Checker<'_>, raw: &RawConfig) -> Option<StateConfig> {
    let k = KeyPath::root("state");
    let r: RawState = c.section(&k, raw.state.as_ref());
    let key = k.key("path");
    let path = c.parsed(&key, &r.path, formats::non_empty);
    let path = c.required(&key, path, &r.path)?;
    Some(StateConfig {
        path: PathBuf::from(path),
    })
}

fn metrics(c: &mut Checker<'_>, raw: &RawConfig) -> Option<MetricsConfig> {
    let k = KeyPath::root("metrics");
    let r: RawMetrics = c.section(&k, raw.metrics.as_ref());
    let key = k.key("listen");
    let listen = c.parsed(&key, &r.listen, formats::socket_addr);
    Some(MetricsConfig {
        listen: c.required(&key, listen, &r.listen)?,
    })
}

fn log(c: &mut Checker<'_>, raw: &RawConfig) -> Option<LogConfig> {
    let k = KeyPath::root("log");
    let r: RawLog = c.section(&k, raw.log.as_ref());
    let level = c.parsed(&k.key("level"), &r.level, log_level);
    let formats_allowed = [
        ("auto", LogFormat::Auto),
        ("json", LogFormat::Json),
        ("text", LogFormat::Text),
    ];
    let format = c.parsed(&k.key("format"), &r.format, |text| {
        formats::one_of(text, &formats_allowed)
    });
    Some(LogConfig {
        level: c.required(&k.key("level"), level, &r.level)?,
        format: c.required(&k.key("format"), format, &r.format)?,
    })
}

fn daemon(c: &mut Checker<'_>, raw: &RawConfig) -> Option<DaemonConfig> {
    let k = KeyPath::root("daemon");
    let r: RawDaemon = c.section(&k, raw.daemon.as_ref());
    let key = k.key("shutdown_grace");
    let grace = c.duration(&key, &r.shutdown_grace, SECOND, 5 * 60 * SECOND);
    Some(DaemonConfig {
        shutdown_grace: c.required(&key, grace, &r.shutdown_grace)?,
    })
}

fn pipeline(c: &mut Checker<'_>, raw: &RawConfig) -> Option<PipelineConfig> {
    let k = KeyPath::root("pipeline");
    let r: RawPipeline = c.section(&k, raw.pipeline.as_ref());
    let key = k.key("channel_capacity");
    let capacity = c.count(&key, &r.channel_capacity, 1, 1_000_000);
    let capacity = c.required(&key, capacity, &r.channel_capacity);
    let key = k.key("channel_bytes");
    // At least one CloudTrail record's worth; at most what a 32-bit count holds.
    let bytes = c.count(
        &key,
        &r.channel_bytes,
        1024 * 1024,
        4 * 1024 * 1024 * 1024 - 1,
    );
    let bytes = c.required(&key, bytes, &r.channel_bytes);
    let key = k.key("dedup_window");
    let window = c.duration(&key, &r.dedup_window, SECOND, 7 * DAY);
    let window = c.required(&key, window, &r.dedup_window);
    let key = k.key("dedup_capacity");
    let dedup = c.count(&key, &r.dedup_capacity, 1_000, 100_000_000);
    let dedup = c.required(&key, dedup, &r.dedup_capacity);
    Some(PipelineConfig {
        channel_capacity: usize::try_from(capacity?).ok()?,
        channel_bytes: usize::try_from(bytes?).ok()?,
        dedup_window: window?,
        dedup_capacity: usize::try_from(dedup?).ok()?,
    })
}

fn detection(c: &mut Checker<'_>, raw: &RawConfig) -> Option<DetectionConfig> {
    let k = KeyPath::root("detection");
    let r: RawDetection = c.section(&k, raw.detection.as_ref());
    let count = |c: &mut Checker<'_>, name: &str, leaf: &Leaf, min: u64, max: u64| {
        let key = k.key(name);
        let n = c.count(&key, leaf, min, max);
        c.required(&key, n, leaf)
            .and_then(|n| usize::try_from(n).ok())
    };
    // CloudTrail events are at most 256 KB; anything beyond 64 MiB is not an event.
    let max_event_bytes = count(
        c,
        "max_event_bytes",
        &r.max_event_bytes,
        1024,
        64 * 1024 * 1024,
    );
    let max_event_depth = count(c, "max_event_depth", &r.max_event_depth, 8, 512);
    let max_groups = count(c, "max_groups", &r.max_groups, 1, 10_000_000);
    let max_group_entries = count(c, "max_group_entries", &r.max_group_entries, 1, 1_000_000);
    let anomaly_max_groups = count(
        c,
        "anomaly_max_groups",
        &r.anomaly_max_groups,
        1,
        10_000_000,
    );
    let anomaly_max_values = count(c, "anomaly_max_values", &r.anomaly_max_values, 1, 100_000);
    let key = k.key("late_allowance");
    let late = c.duration(&key, &r.late_allowance, Duration::ZERO, DAY);
    let late = c.required(&key, late, &r.late_allowance);
    let key = k.key("max_future_skew");
    let skew = c.duration(&key, &r.max_future_skew, Duration::ZERO, DAY);
    let skew = c.required(&key, skew, &r.max_future_skew);
    Some(DetectionConfig {
        max_event_bytes: max_event_bytes?,
        max_event_depth: max_event_depth?,
        late_allowance: late?,
        max_future_skew: skew?,
        max_groups: max_groups?,
        max_group_entries: max_group_entries?,
        anomaly_max_groups: anomaly_max_groups?,
        anomaly_max_values: anomaly_max_values?,
    })
}

fn rules(c: &mut Checker<'_>, raw: &RawConfig) -> Option<RulesConfig> {
    let k = KeyPath::root("rules");
    let r: RawRules = c.section(&k, raw.rules.as_ref());
    let builtin: Option<bool> = c.value(&k.key("builtin"), &r.builtin);
    let paths: Option<Vec<String>> = c.value(&k.key("paths"), &r.paths);
    let mut all_exist = true;
    for (i, path) in paths.iter().flatten().enumerate() {
        if !std::path::Path::new(path).exists() {
            c.report(
                &k.key("paths").index(i),
                format!("no such rule file or folder \"{path}\""),
            );
            all_exist = false;
        }
    }
    let disabled: Option<Vec<String>> = c.value(&k.key("disabled"), &r.disabled);
    let placeholders: Option<std::collections::HashMap<String, Vec<String>>> =
        c.value(&k.key("placeholders"), &r.placeholders);
    if r.placeholders.is_some() && placeholders.is_none() {
        return None;
    }
    Some(RulesConfig {
        builtin: c.required(&k.key("builtin"), builtin, &r.builtin)?,
        paths: paths
            .filter(|_| all_exist)?
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        disabled: disabled.unwrap_or_default(),
        placeholders: placeholders.unwrap_or_default(),
    })
}

/// A level (`info`) or tracing directives (`info,cloudwarden=debug`). A bare
/// word that is not a level is refused even though tracing would read it as
/// a target name, because here it is almost always a misspelt level.
fn log_level(text: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let help = "expected trace, debug, info, warn, error or off, or directives such as \"info,cloudwarden=debug\"";
    for directive in text.split(',').map(str::trim) {
        if !directive.contains('=') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!("invalid log level \"{text}\" ({help})"));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(|err| format!("invalid log level \"{text}\": {err} ({help})"))
}
