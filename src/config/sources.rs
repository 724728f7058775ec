//! `[[sources]]`: the event sources, one entry per source, tagged by `kind`.

use std::collections::HashSet;
use std::time::Duration;

use figment::value::Value;

use super::checker::Checker;
use super::formats;
use super::key_path::KeyPath;
use super::raw::{Leaf, RawSource};
use crate::detection::sigma::document::LogSource;

/// One configured event source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// A unique name: the label on its metrics and the key of its checkpoint.
    pub name: String,
    /// Time between polls, for kinds that poll on a schedule.
    pub interval: Option<Duration>,
    /// What the source reads, with the settings of that kind.
    pub kind: SourceKind,
}

/// What a source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// CloudTrail `LookupEvents`: management events, per Region.
    CloudTrailLookup {
        /// Regions to query; empty means the home Region (`aws.region`).
        regions: Vec<String>,
        /// How far back each query reaches, because CloudTrail delivers late.
        lookback: Duration,
        /// Read IAM, STS and sign-in events in us-east-1 when it is not among `regions`.
        global_events: bool,
    },
    /// CloudWatch Logs `FilterLogEvents` on one or more log groups.
    CloudWatchLogs {
        /// Which log groups are read.
        log_group: LogGroupSelector,
        /// A CloudWatch Logs filter pattern applied by the service.
        filter_pattern: Option<String>,
        /// Only streams whose names start with this.
        stream_prefix: Option<String>,
        /// How each log line is read.
        format: RecordFormat,
        /// How far back each poll reaches, because log events can arrive late.
        lookback: Duration,
        /// The Region of the log groups; the home Region when unset.
        region: Option<String>,
        /// Which rules apply to the lines (by their `logsource`).
        logsource: Option<LogSource>,
    },
    /// CloudTrail files in S3, announced on an SQS queue.
    S3Sqs {
        /// The queue receiving S3 ObjectCreated notifications.
        queue_url: String,
        /// Receives a message may fail before it is set aside.
        max_attempts: u32,
        /// How long a received message stays hidden (extended while read).
        visibility_timeout: Duration,
        /// The buckets objects may be read from; empty allows any bucket
        /// owned by `bucket_owner`.
        buckets: Vec<String>,
        /// The account that must own every bucket read (S3's
        /// `ExpectedBucketOwner`); unset with no `buckets` means the
        /// watched account.
        bucket_owner: Option<String>,
        /// The most bytes an object may hold once decompressed.
        max_object_bytes: u64,
    },
    /// CloudTrail events sent by EventBridge rules to an SQS queue.
    EventBridgeSqs {
        /// The queue the EventBridge rule targets.
        queue_url: String,
        /// Receives a message may fail before it is set aside.
        max_attempts: u32,
        /// How long a received message stays hidden.
        visibility_timeout: Duration,
        /// The accounts whose events are accepted; empty accepts any.
        accounts: Vec<String>,
    },
}

impl SourceKind {
    /// Which rules apply to what this source reads, by their `logsource`:
    /// CloudTrail records, or a log group's lines as configured (every rule
    /// for JSON and text lines without a `logsource`).
    pub fn logsource(&self) -> LogSource {
        match self {
            SourceKind::CloudWatchLogs {
                logsource: Some(logsource),
                ..
            } => logsource.clone(),
            SourceKind::CloudWatchLogs {
                format: RecordFormat::CloudTrail,
                ..
            }
            | SourceKind::CloudTrailLookup { .. }
            | SourceKind::S3Sqs { .. }
            | SourceKind::EventBridgeSqs { .. } => LogSource::cloudtrail(),
            SourceKind::CloudWatchLogs { .. } => LogSource::default(),
        }
    }
}

impl SourceKind {
    /// The `kind` value that selects this source in configuration.
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::CloudTrailLookup { .. } => "cloudtrail_lookup",
            SourceKind::CloudWatchLogs { .. } => "cloudwatch_logs",
            SourceKind::S3Sqs { .. } => "s3_sqs",
            SourceKind::EventBridgeSqs { .. } => "eventbridge_sqs",
        }
    }
}

/// Which log groups a `cloudwatch_logs` source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogGroupSelector {
    /// Exactly this group.
    Name(String),
    /// Every group whose name starts with this.
    Prefix(String),
}

/// How a log line is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// A CloudTrail record, as CloudTrail delivers it to CloudWatch Logs.
    CloudTrail,
    /// Any JSON object.
    Json,
    /// Plain text, matched by Sigma keywords.
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lookup,
    Logs,
    S3Sqs,
    EventBridgeSqs,
}

const KINDS: [(&str, Kind); 4] = [
    ("cloudtrail_lookup", Kind::Lookup),
    ("cloudwatch_logs", Kind::Logs),
    ("s3_sqs", Kind::S3Sqs),
    ("eventbridge_sqs", Kind::EventBridgeSqs),
];

impl Kind {
    /// The keys that apply to this kind besides `kind` and `name`.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Lookup => &["interval", "regions", "lookback", "global_events"],
            Kind::Logs => &[
                "interval",
                "log_group",
                "log_group_prefix",
                "filter_pattern",
                "stream_prefix",
                "format",
                "lookback",
                "region",
                "logsource",
            ],
            // SQS sources long-poll continuously, so they have no interval.
            Kind::S3Sqs => &[
                "queue_url",
                "max_attempts",
                "visibility_timeout",
                "buckets",
                "bucket_owner",
                "max_object_bytes",
            ],
            Kind::EventBridgeSqs => &[
                "queue_url",
                "max_attempts",
                "visibility_timeout",
                "accounts",
            ],
        }
    }

    fn default_interval(self) -> Option<Duration> {
        match self {
            Kind::Lookup => Some(Duration::from_secs(60)),
            Kind::Logs => Some(Duration::from_secs(30)),
            Kind::S3Sqs | Kind::EventBridgeSqs => None,
        }
    }
}

/// Validates every `[[sources]]` entry and that their names are unique.
pub(super) fn sources(c: &mut Checker<'_>, value: Option<&Value>) -> Option<Vec<SourceConfig>> {
    let k = KeyPath::root("sources");
    let Some(value) = value else {
        return Some(Vec::new());
    };
    let Some(entries) = value.as_array() else {
        c.report(&k, "expected an array of tables, written [[sources]]");
        return None;
    };
    let mut names = HashSet::new();
    let mut all = Some(Vec::new());
    for (i, entry) in entries.iter().enumerate() {
        let ek = k.index(i);
        let source = source(c, &ek, entry);
        if let Some(source) = &source {
            if !names.insert(source.name.clone()) {
                c.report(
                    &ek.key("name"),
                    format!("duplicate source name \"{}\"", source.name),
                );
            }
        }
        match (all.as_mut(), source) {
            (Some(list), Some(source)) => list.push(source),
            _ => all = None,
        }
    }
    all
}

fn source(c: &mut Checker<'_>, k: &KeyPath, entry: &Value) -> Option<SourceConfig> {
    let r: RawSource = c.section(k, Some(entry));
    let kind = c.parsed(&k.key("kind"), &r.kind, |text| {
        formats::one_of(text, &KINDS)
    });
    let kind = c.required(&k.key("kind"), kind, &r.kind);
    let name = c.parsed(&k.key("name"), &r.name, formats::component_name);
    let name = c.required(&k.key("name"), name, &r.name);
    let kind = kind?;
    for (key, leaf) in leaves(&r) {
        if leaf.is_some() && !kind.keys().contains(&key) {
            c.report(
                &k.key(key),
                format!(
                    "does not apply to sources of kind {} (keys for it: {})",
                    KINDS
                        .iter()
                        .find(|(_, x)| *x == kind)
                        .map_or("?", |(n, _)| n),
                    kind.keys().join(", ")
                ),
            );
        }
    }
    let interval = match kind.default_interval() {
        Some(default) => c
            .duration(
                &k.key("interval"),
                &r.interval,
                Duration::from_secs(1),
                Duration::from_secs(86_400),
            )
            .or(r.interval.is_none().then_some(default)),
        None => None,
    };
    let kind = match kind {
        Kind::Lookup => lookup(c, k, &r),
        Kind::Logs => logs(c, k, &r),
        Kind::S3Sqs => {
            let objects = objects(c, k, &r);
            queue(c, k, &r).zip(objects).map(
                |((queue_url, max_attempts, visibility_timeout), objects)| SourceKind::S3Sqs {
                    queue_url,
                    max_attempts,
                    visibility_timeout,
                    buckets: objects.0,
                    bucket_owner: objects.1,
                    max_object_bytes: objects.2,
                },
            )
        }
        Kind::EventBridgeSqs => {
            let accounts = accounts(c, k, &r);
            queue(c, k, &r).map(|(queue_url, max_attempts, visibility_timeout)| {
                SourceKind::EventBridgeSqs {
                    queue_url,
                    max_attempts,
                    visibility_timeout,
                    accounts,
                }
            })
        }
    };
    Some(SourceConfig {
        name: name?,
        interval,
        kind: kind?,
    })
}

/// Every key of a raw source, for the check that each applies to its kind.
fn leaves(r: &RawSource) -> [(&'static str, &Leaf); 18] {
    [
        ("interval", &r.interval),
        ("regions", &r.regions),
        ("accounts", &r.accounts),
        ("lookback", &r.lookback),
        ("global_events", &r.global_events),
        ("log_group", &r.log_group),
        ("log_group_prefix", &r.log_group_prefix),
        ("filter_pattern", &r.filter_pattern),
        ("stream_prefix", &r.stream_prefix),
        ("format", &r.format),
        ("region", &r.region),
        ("logsource", &r.logsource),
        ("queue_url", &r.queue_url),
        ("max_attempts", &r.max_attempts),
        ("visibility_timeout", &r.visibility_timeout),
        ("buckets", &r.buckets),
        ("bucket_owner", &r.bucket_owner),
        ("max_object_bytes", &r.max_object_bytes),
    ]
}

/// An object may inflate to 1 GiB by default: trail files are written every
/// five minutes per Region and stay far below that.
const MAX_OBJECT_BYTES: u64 = 1 << 30;

/// `buckets`, `bucket_owner` and `max_object_bytes` of an `s3_sqs` source.
fn objects(
    c: &mut Checker<'_>,
    k: &KeyPath,
    r: &RawSource,
) -> Option<(Vec<String>, Option<String>, u64)> {
    let names: Option<Vec<String>> = c.value(&k.key("buckets"), &r.buckets);
    let mut ok = r.buckets.is_none() || names.is_some();
    let names = names.unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        if let Some(why) = crate::sources::s3_sqs::bucket_refusal(name) {
            c.report(&k.key("buckets").index(i), why);
            ok = false;
        }
    }
    let owner = c.parsed(&k.key("bucket_owner"), &r.bucket_owner, formats::account_id);
    ok &= r.bucket_owner.is_none() || owner.is_some();
    let max = c.count(
        &k.key("max_object_bytes"),
        &r.max_object_bytes,
        1 << 20,
        1 << 40,
    );
    ok &= r.max_object_bytes.is_none() || max.is_some();
    ok.then(|| (names, owner, max.unwrap_or(MAX_OBJECT_BYTES)))
}

/// `accounts`: 12-digit account ids, each checked.
fn accounts(c: &mut Checker<'_>, k: &KeyPath, r: &RawSource) -> Vec<String> {
    let ids: Vec<String> = c.value(&k.key("accounts"), &r.accounts).unwrap_or_default();
    let mut accounts = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match formats::account_id(id) {
            Ok(id) => accounts.push(id),
            Err(message) => c.report(&k.key("accounts").index(i), message),
        }
    }
    accounts
}

fn lookup(c: &mut Checker<'_>, k: &KeyPath, r: &RawSource) -> Option<SourceKind> {
    let names: Vec<String> = c.value(&k.key("regions"), &r.regions).unwrap_or_default();
    let mut regions = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match formats::region(name) {
            Ok(region) => regions.push(region),
            Err(message) => c.report(&k.key("regions").index(i), message),
        }
    }
    // LookupEvents only reaches 90 days back.
    let lookback = c.duration(
        &k.key("lookback"),
        &r.lookback,
        Duration::from_secs(60),
        Duration::from_secs(90 * 86_400),
    );
    let lookback = match (&r.lookback, lookback) {
        (None, _) => Duration::from_secs(15 * 60),
        (Some(_), lookback) => lookback?,
    };
    let global_events: Option<bool> = c.value(&k.key("global_events"), &r.global_events);
    if r.global_events.is_some() && global_events.is_none() {
        return None;
    }
    Some(SourceKind::CloudTrailLookup {
        regions,
        lookback,
        global_events: global_events.unwrap_or(true),
    })
}

fn logs(c: &mut Checker<'_>, k: &KeyPath, r: &RawSource) -> Option<SourceKind> {
    let name = c.parsed(&k.key("log_group"), &r.log_group, formats::log_group);
    let prefix = c.parsed(
        &k.key("log_group_prefix"),
        &r.log_group_prefix,
        formats::log_group,
    );
    let log_group = match (&r.log_group, &r.log_group_prefix) {
        (Some(_), Some(_)) => {
            c.report(
                &k.key("log_group_prefix"),
                "set either log_group or log_group_prefix, not both",
            );
            None
        }
        (None, None) => {
            c.report(
                &k.key("log_group"),
                "missing: a cloudwatch_logs source needs log_group or log_group_prefix",
            );
            None
        }
        (Some(_), None) => name.map(LogGroupSelector::Name),
        (None, Some(_)) => prefix.map(LogGroupSelector::Prefix),
    };
    let filter_pattern: Option<String> = c.value(&k.key("filter_pattern"), &r.filter_pattern);
    let stream_prefix: Option<String> = c.value(&k.key("stream_prefix"), &r.stream_prefix);
    let formats_allowed = [
        ("cloudtrail", RecordFormat::CloudTrail),
        ("json", RecordFormat::Json),
        ("text", RecordFormat::Text),
    ];
    let format = c.parsed(&k.key("format"), &r.format, |t| {
        formats::one_of(t, &formats_allowed)
    });
    let lookback = c.duration(
        &k.key("lookback"),
        &r.lookback,
        Duration::ZERO,
        Duration::from_secs(86_400),
    );
    if r.lookback.is_some() && lookback.is_none() {
        return None;
    }
    let region = c.parsed(&k.key("region"), &r.region, formats::region);
    if r.region.is_some() && region.is_none() {
        return None;
    }
    let logsource = match &r.logsource {
        None => None,
        Some(_) => {
            let table: Option<std::collections::BTreeMap<String, String>> =
                c.value(&k.key("logsource"), &r.logsource);
            let table = table?;
            let mut logsource = LogSource::default();
            for (key, value) in table {
                let value = Some(value.to_lowercase());
                match key.as_str() {
                    "product" => logsource.product = value,
                    "service" => logsource.service = value,
                    "category" => logsource.category = value,
                    other => {
                        c.report(
                            &k.key("logsource").key(other),
                            "unknown key (expected product, service or category)",
                        );
                        return None;
                    }
                }
            }
            Some(logsource)
        }
    };
    Some(SourceKind::CloudWatchLogs {
        log_group: log_group?,
        filter_pattern,
        stream_prefix,
        format: format.unwrap_or(RecordFormat::CloudTrail),
        lookback: lookback.unwrap_or(Duration::from_secs(300)),
        region,
        logsource,
    })
}

fn queue(c: &mut Checker<'_>, k: &KeyPath, r: &RawSource) -> Option<(String, u32, Duration)> {
    let url = c.parsed(&k.key("queue_url"), &r.queue_url, formats::http_url);
    let url = c.required(&k.key("queue_url"), url, &r.queue_url);
    let attempts = c.count(&k.key("max_attempts"), &r.max_attempts, 1, 100);
    let visibility = c.duration(
        &k.key("visibility_timeout"),
        &r.visibility_timeout,
        Duration::from_secs(10),
        Duration::from_secs(12 * 3600),
    );
    let bad = (r.max_attempts.is_some() && attempts.is_none())
        || (r.visibility_timeout.is_some() && visibility.is_none());
    if bad {
        return None;
    }
    Some((
        url?,
        attempts.map_or(5, |n| u32::try_from(n).unwrap_or(5)),
        // Short, so that a message whose reader died comes back soon; the
        // heartbeat extends it while it is read.
        visibility.unwrap_or(Duration::from_secs(20)),
    ))
}
