//! Turning a record's text into something rules can read, or a reason not to.
//!
//! Every record a source reads ends up either processed or rejected with
//! one of the reasons below, which label the rejection metrics. Limits on
//! size and nesting keep one hostile record from costing the daemon its
//! memory or its stack.

use std::sync::Arc;

use sonic_rs::{JsonType, JsonValueTrait, Value};

/// How a record's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A CloudTrail record: a JSON object with eventName, eventSource and eventTime.
    CloudTrail,
    /// Any JSON object.
    Json,
    /// A line of text, matched by keywords only.
    Text,
}

/// Size and nesting limits for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Larger records are rejected (CloudTrail's own limit is 256 KB).
    pub max_bytes: usize,
    /// Deeper nesting is rejected.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Twice CloudTrail's own 256 KB limit.
            max_bytes: 512 * 1024,
            max_depth: 128,
        }
    }
}

/// Why a record was not processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Larger than the limit.
    TooLarge,
    /// Nested deeper than the limit.
    TooDeep,
    /// Not valid JSON.
    InvalidJson,
    /// JSON, but not an object.
    NotAnObject,
    /// A JSON object without CloudTrail's fields, from a CloudTrail source.
    NotCloudTrail,
    /// Part of a file or object that could not be read (truncated gzip, bad JSON framing).
    Unreadable,
}

impl Reason {
    /// Every reason, for metrics and summaries.
    pub const ALL: [Reason; 7] = [
        Reason::InvalidUtf8,
        Reason::TooLarge,
        Reason::TooDeep,
        Reason::InvalidJson,
        Reason::NotAnObject,
        Reason::NotCloudTrail,
        Reason::Unreadable,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::TooLarge => "too_large",
            Reason::TooDeep => "too_deep",
            Reason::InvalidJson => "invalid_json",
            Reason::NotAnObject => "not_an_object",
            Reason::NotCloudTrail => "not_cloudtrail",
            Reason::Unreadable => "unreadable",
        }
    }
}

/// A rejected record: the reason, and a detail for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The reason (a metric label).
    pub reason: Reason,
    /// What exactly was wrong, without the record's content.
    pub detail: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail, self.reason.as_str())
    }
}

/// Parses `raw` as `format` within `limits`. Text records have no JSON root.
pub fn parse(raw: &str, format: Format, limits: &Limits) -> Result<Option<Value>, Rejection> {
    let reject = |reason, detail: String| Err(Rejection { reason, detail });
    if raw.len() > limits.max_bytes {
        return reject(
            Reason::TooLarge,
            format!(
                "{} bytes, more than the limit of {}",
                raw.len(),
                limits.max_bytes
            ),
        );
    }
    if format == Format::Text {
        return Ok(None);
    }
    if exceeds_depth(raw.as_bytes(), limits.max_depth) {
        return reject(
            Reason::TooDeep,
            format!("nested deeper than {} levels", limits.max_depth),
        );
    }
    let root: Value = match sonic_rs::from_str(raw) {
        Ok(root) => root,
        Err(err) => return reject(Reason::InvalidJson, format!("invalid JSON: {err}")),
    };
    if root.get_type() != JsonType::Object {
        return reject(
            Reason::NotAnObject,
            "a JSON value that is not an object".to_owned(),
        );
    }
    if format == Format::CloudTrail {
        for field in ["eventName", "eventSource", "eventTime"] {
            if root.get(field).and_then(|v| v.as_str()).is_none() {
                return reject(
                    Reason::NotCloudTrail,
                    format!("not a CloudTrail record: no {field}"),
                );
            }
        }
    }
    Ok(Some(root))
}

/// Whether JSON text nests deeper than `limit`. Counting every bracket is an
/// upper bound on depth and costs little, so only records with many
/// brackets pay for an exact scan.
pub fn exceeds_depth(raw: &[u8], limit: usize) -> bool {
    if raw.len() <= limit {
        return false;
    }
    if count_openers(raw) <= limit {
        return false;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in raw {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// How many `[` and `{` bytes `raw` holds. They differ only in bit 0x20, so
/// one comparison per byte does; counting into a `u8` per 255-byte chunk
/// lets the loop run on SIMD lanes.
fn count_openers(raw: &[u8]) -> usize {
    raw.chunks(255)
        .map(|chunk| {
            let n = chunk
                .iter()
                .fold(0u8, |n, &b| n.wrapping_add(u8::from(b | 0x20 == b'{')));
            usize::from(n)
        })
        .sum()
}

/// Fields of an event that alerts, dedup and correlations read. Shared
/// strings: a correlation keeps them in its digests without copying.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFacts {
    /// `eventTime` (or `@timestamp`, `timestamp`, `time`), as written.
    pub time_text: Option<Arc<str>>,
    /// The event time in ms since the epoch, when it could be read.
    pub time_ms: Option<i64>,
    /// `eventID`.
    pub event_id: Option<Arc<str>>,
    /// `eventSource`.
    pub event_source: Option<Arc<str>>,
    /// `eventName`.
    pub event_name: Option<Arc<str>>,
    /// Who acted.
    pub principal: Option<Arc<str>>,
    /// `recipientAccountId`, else `userIdentity.accountId`.
    pub account: Option<Arc<str>>,
    /// `awsRegion`.
    pub region: Option<Arc<str>>,
    /// `sourceIPAddress`.
    pub source_ip: Option<Arc<str>>,
    /// `userAgent`.
    pub user_agent: Option<Arc<str>>,
}

/// Milliseconds since the epoch of an RFC 3339 time such as
/// `2024-07-31T13:06:24Z`. CloudTrail's own form is read by hand, because
/// every event has one; anything else goes through a full parser.
pub fn parse_time_ms(text: &str) -> Option<i64> {
    if let Some(ms) = cloudtrail_time_ms(text.as_bytes()) {
        return Some(ms);
    }
    let time: jiff::Timestamp = text.trim().parse().ok()?;
    Some(time.as_millisecond())
}

/// `YYYY-MM-DDTHH:MM:SSZ` exactly.
fn cloudtrail_time_ms(b: &[u8]) -> Option<i64> {
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        m0,
        m1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        n0,
        n1,
        b':',
        s0,
        s1,
        b'Z',
    ] = *b
    else {
        return None;
    };
    let digit = |c: u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
    let two = |a: u8, b: u8| Some(digit(a)? * 10 + digit(b)?);
    let year = two(y0, y1)? * 100 + two(y2, y3)?;
    let (month, day) = (two(m0, m1)?, two(d0, d1)?);
    let (hour, minute, second) = (two(h0, h1)?, two(n0, n1)?, two(s0, s1)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

/// RFC 3339 text of a time in ms since the epoch.
pub fn format_time_ms(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{"eventVersion":"1.08","eventTime":"2024-07-31T13:06:24Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.7","userAgent":"aws-cli/2","eventID":"e-1","recipientAccountId":"111122223333","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333"}}"#;

    #[test]
    fn parses_cloudtrail_and_formats_times() {
        let root = parse(RECORD, Format::CloudTrail, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            root.get("eventName").and_then(|v| v.as_str()),
            Some("CreateUser")
        );
        assert_eq!(
            parse_time_ms("2024-07-31T13:06:24Z"),
            Some(1_722_431_184_000)
        );
        assert_eq!(
            format_time_ms(1_722_431_184_000).as_deref(),
            Some("2024-07-31T13:06:24Z")
        );
    }

    #[test]
    fn the_fast_time_path_agrees_with_the_full_parser() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2024-07-31T13:06:24Z",
            "2099-12-31T00:00:01Z",
        ] {
            let full: jiff::Timestamp = text.parse().unwrap();
            assert_eq!(
                cloudtrail_time_ms(text.as_bytes()),
                Some(full.as_millisecond()),
                "{text}"
            );
        }
        assert_eq!(
            parse_time_ms("2024-07-31T13:06:24.123Z"),
            Some(1_722_431_184_123)
        );
        assert_eq!(
            parse_time_ms("2024-07-31T15:06:24+02:00"),
            Some(1_722_431_184_000)
        );
        assert_eq!(cloudtrail_time_ms(b"2024-13-31T13:06:24Z"), None);
        assert_eq!(parse_time_ms("yesterday"), None);
    }

    #[test]
    fn rejects_with_a_reason() {
        let limits = Limits {
            max_bytes: 1000,
            max_depth: 16,
        };
        let reason = |raw: &str, format| parse(raw, format, &limits).unwrap_err().reason;
        assert_eq!(reason("{\"a\":", Format::Json), Reason::InvalidJson);
        assert_eq!(reason("[1,2]", Format::Json), Reason::NotAnObject);
        assert_eq!(
            reason("{\"a\":1}", Format::CloudTrail),
            Reason::NotCloudTrail
        );
        assert_eq!(reason(&"x".repeat(1001), Format::Text), Reason::TooLarge);
        let deep = format!("{}1{}", "[".repeat(17), "]".repeat(17));
        assert_eq!(reason(&deep, Format::Json), Reason::TooDeep);
        assert!(parse("{\"a\":1}", Format::Json, &limits).unwrap().is_some());
        assert!(
            parse("plain text", Format::Text, &limits)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn openers_are_counted_exactly() {
        let text: Vec<u8> = (0..2000u32)
            .map(|i| [b'[', b'{', b'a', b'}', b'{'][(i % 5) as usize])
            .collect();
        let expected = text.iter().filter(|&&b| b == b'[' || b == b'{').count();
        assert_eq!(count_openers(&text), expected);
        // Only the two opening brackets count, not their closing partners.
        assert_eq!(count_openers(b"[{]} ;[ \x5b \x7b \x5d \x7d"), 5);
    }

    #[test]
    fn depth_scan_ignores_brackets_in_strings() {
        let many = format!("{{\"s\":\"{}\"}}", "[".repeat(500));
        assert!(!exceeds_depth(many.as_bytes(), 4));
        let escaped = r#"{"s":"\"[[[[[["}"#;
        assert!(!exceeds_depth(escaped.as_bytes(), 4));
        let deep = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        assert!(exceeds_depth(deep.as_bytes(), 128));
    }
}
