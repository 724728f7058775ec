//! The subject, the short text and the email body of an alert.

use std::fmt::Write as _;

use crate::detection::Alert;
use crate::detection::alert::AlertKind;

/// SNS subjects must be shorter than 100 characters.
const SUBJECT_CHARS: usize = 99;

/// `[HIGH] Title`, ASCII without control characters, under 100 characters.
pub fn subject(alert: &Alert) -> String {
    let level = alert.rule.level.as_str().to_ascii_uppercase();
    let text = match &alert.repeats {
        Some(r) => format!("[{level}] {} repeats: {}", r.count, alert.rule.title),
        None => format!("[{level}] {}", alert.rule.title),
    };
    let mut ascii = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_ascii() { c } else { '?' };
        if c.is_ascii_control() || c.is_whitespace() {
            if !ascii.ends_with(' ') {
                ascii.push(' ');
            }
        } else {
            ascii.push(c);
        }
    }
    let ascii = ascii.trim_end();
    if ascii.len() <= SUBJECT_CHARS {
        return ascii.to_owned();
    }
    format!("{}...", ascii[..SUBJECT_CHARS - 3].trim_end())
}

/// One line for SMS, chat and the subscribers without a body of their own.
pub fn short_text(alert: &Alert) -> String {
    let mut text = format!(
        "{}: {}",
        alert.rule.level.as_str().to_ascii_uppercase(),
        alert.rule.title
    );
    if let Some(r) = &alert.repeats {
        let _ = write!(
            text,
            " repeated {} more times between {} and {}",
            r.count, r.window_start, r.window_end
        );
    }
    if let Some(p) = &alert.posture {
        let _ = write!(text, " - {} {}", p.status, p.resource);
    }
    if let Some(name) = &alert.event_name {
        let _ = write!(text, " - {name}");
    }
    if let Some(principal) = &alert.principal {
        let _ = write!(text, " by {principal}");
    }
    if let Some(account) = &alert.account {
        let _ = write!(text, " in {account}");
        if let Some(region) = &alert.region {
            let _ = write!(text, "/{region}");
        }
    }
    if let Some(time) = &alert.event_time {
        let _ = write!(text, " at {time}");
    }
    let _ = write!(text, " (rule {}", alert.rule.id);
    if let Some(id) = &alert.id {
        let _ = write!(text, ", alert {id}");
    }
    text.push(')');
    text
}

/// The email body: what happened, who, from where, in which account and
/// Region, why it matters and what to do, and where to see the event.
pub fn email(alert: &Alert) -> String {
    let mut out = String::new();
    let level = alert.rule.level.as_str().to_ascii_uppercase();
    let _ = writeln!(out, "{level}: {}\n", alert.rule.title);
    if let Some(r) = &alert.repeats {
        let _ = writeln!(
            out,
            "This alert repeated {} more times between {} and {} after the first one was sent.",
            r.count, r.window_start, r.window_end
        );
        if !r.source_ips.is_empty() {
            let _ = writeln!(
                out,
                "Source IPs of the repeats: {}",
                r.source_ips.join(", ")
            );
        }
        out.push('\n');
    }
    if let Some(p) = &alert.posture {
        let mut text = format!(
            "{} ({}, {})\nResource: {}",
            p.message,
            p.status,
            p.severity.as_str(),
            p.resource
        );
        if let Some(cis) = &p.cis {
            let _ = write!(text, "\nCIS AWS Foundations Benchmark control {cis}");
        }
        section(&mut out, "Finding", &text);
    }
    if alert.posture.is_none() || alert.event_name.is_some() {
        let heading = if alert.posture.is_some() {
            "The event that caused it"
        } else {
            "What happened"
        };
        section(&mut out, heading, &what(alert));
    }
    if let Some(principal) = &alert.principal {
        section(&mut out, "Who", principal);
    }
    let from = match (&alert.source_ip, &alert.user_agent) {
        (Some(ip), Some(agent)) => Some(format!("{ip}, using {agent}")),
        (Some(ip), None) => Some(ip.to_string()),
        (None, Some(agent)) => Some(format!("using {agent}")),
        (None, None) => None,
    };
    if let Some(from) = from {
        section(&mut out, "From", &from);
    }
    let place = match (&alert.account, &alert.region) {
        (Some(a), Some(r)) => Some(format!("account {a}, Region {r}")),
        (Some(a), None) => Some(format!("account {a}")),
        (None, Some(r)) => Some(format!("Region {r}")),
        (None, None) => None,
    };
    if let Some(place) = place {
        section(&mut out, "Where", &place);
    }
    if let Some(c) = &alert.correlation {
        let group: Vec<String> = c.group.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let mut text = format!(
            "{} reached {} within {} s",
            c.kind, c.value, c.timespan_seconds
        );
        if !group.is_empty() {
            let _ = write!(text, " for {}", group.join(", "));
        }
        if let (Some(first), Some(last)) = (&c.first_event_time, &c.last_event_time) {
            let _ = write!(text, ", from {first} to {last}");
        }
        section(&mut out, "Measured", &text);
    }
    if let Some(a) = &alert.anomaly {
        section(&mut out, "Unusual because", &anomaly_text(a));
    }
    if let Some(description) = &alert.rule.description {
        section(
            &mut out,
            "Why it matters and what to do",
            description.trim(),
        );
    }
    if !alert.rule.falsepositives.is_empty() {
        section(
            &mut out,
            "Known benign causes",
            &bullets(&alert.rule.falsepositives),
        );
    }
    if !alert.rule.references.is_empty() {
        section(&mut out, "References", &bullets(&alert.rule.references));
    }
    if let Some(link) = console_link(alert) {
        section(&mut out, "The event in the CloudTrail console", &link);
    }
    let mut footer = format!("Rule {}", alert.rule.id);
    if let Some(id) = &alert.id {
        let _ = write!(footer, ", alert {id}");
    }
    if let Some(event) = &alert.event_id {
        let _ = write!(footer, ", event {event}");
    }
    if let Some(source) = &alert.source {
        let _ = write!(footer, ", read by source {source}");
    }
    if let Some(origin) = &alert.origin {
        let _ = write!(footer, " from {origin}");
    }
    if !alert.trimmed.is_empty() {
        let _ = write!(
            footer,
            ". Cut to fit SNS's size limit: {}",
            alert.trimmed.join(", ")
        );
    }
    let _ = writeln!(out, "--\n{footer}.\nSent by cloudwarden.");
    out
}

/// What an anomaly measured, in a sentence or two.
fn anomaly_text(a: &crate::detection::alert::AnomalyInfo) -> String {
    let pairs = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let days = a.history_seconds / 86_400;
    let since = a
        .history_since
        .as_deref()
        .map(|s| format!(" cloudwarden has known this group since {s}."))
        .unwrap_or_default();
    match a.count {
        None => format!(
            "{} used {} for the first time in {days} days.{since}",
            pairs(&a.group),
            pairs(&a.new_value)
        ),
        Some(count) => format!(
            "{} made {count} matching calls in the {} s from {}, at least {} were needed to alert; \
             its usual busy bucket holds {} (mean) with a spread of {}.{since}",
            pairs(&a.group),
            a.bucket_seconds.unwrap_or(0),
            a.bucket_start.as_deref().unwrap_or("?"),
            a.threshold.unwrap_or(0.0),
            a.baseline_mean.unwrap_or(0.0),
            a.baseline_spread.unwrap_or(0.0),
        ),
    }
}

fn what(alert: &Alert) -> String {
    let mut text = match (&alert.event_name, &alert.event_source) {
        (Some(n), Some(s)) => format!("{n} ({s})"),
        (Some(n), None) => n.to_string(),
        (None, Some(s)) => s.to_string(),
        (None, None) => match alert.kind {
            AlertKind::Correlation => "several events together".to_owned(),
            _ => "an event".to_owned(),
        },
    };
    if let Some(time) = &alert.event_time {
        let _ = write!(text, " at {time}");
    }
    text
}

fn section(out: &mut String, heading: &str, body: &str) {
    let _ = writeln!(out, "{heading}");
    for line in body.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out.push('\n');
}

fn bullets(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("- {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A link to the event in the CloudTrail console, for CloudTrail events
/// (other log sources have no page there).
pub fn console_link(alert: &Alert) -> Option<String> {
    let id = alert.event_id.as_deref()?;
    let region = alert.region.as_deref()?;
    let is_cloudtrail = alert
        .event_source
        .as_deref()
        .is_some_and(|s| s.ends_with(".amazonaws.com"));
    let plausible =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !is_cloudtrail || !plausible(id) || !plausible(region) {
        return None;
    }
    let host = if region.starts_with("cn-") {
        format!("{region}.console.amazonaws.cn")
    } else if region.starts_with("us-gov-") {
        format!("{region}.console.amazonaws-us-gov.com")
    } else {
        format!("{region}.console.aws.amazon.com")
    };
    Some(format!(
        "https://{host}/cloudtrail/home?region={region}#/events/{id}"
    ))
}
