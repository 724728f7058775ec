//! Stage two for `[alerts]`: delivery, topics, noise control.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::value::Value;

use super::checker::Checker;
use super::formats;
use super::key_path::KeyPath;
use super::raw::{RawAlerts, RawSnsSink, RawSuppression};
use super::{AlertsConfig, MessageFormat, SnsSinkConfig, SuppressionConfig};
use crate::detection::Level;

const DAY: Duration = Duration::from_secs(86_400);

/// Topics' default rate limit: a person can read a message a second.
const DEFAULT_PER_MINUTE: u64 = 60;

/// Validates `[alerts]`; `None` means problems were recorded in `c`.
pub(super) fn alerts(c: &mut Checker<'_>, raw: Option<&Value>) -> Option<AlertsConfig> {
    let k = KeyPath::root("alerts");
    let r: RawAlerts = c.section(&k, raw);
    let key = k.key("dedup_window");
    let dedup_window = c.duration(&key, &r.dedup_window, Duration::ZERO, 30 * DAY);
    let dedup_window = c.required(&key, dedup_window, &r.dedup_window);
    let aggregate: Option<bool> = c.value(&k.key("aggregate"), &r.aggregate);
    let aggregate = c.required(&k.key("aggregate"), aggregate, &r.aggregate);
    let key = k.key("max_windows");
    let max_windows = c.count(&key, &r.max_windows, 100, 10_000_000);
    let max_windows = c.required(&key, max_windows, &r.max_windows);
    let mut sns = Some(Vec::new());
    for (i, entry) in r.sns.iter().flatten().enumerate() {
        let topic = topic(c, &k.key("sns").index(i), entry);
        match (sns.as_mut(), topic) {
            (Some(list), Some(topic)) => list.push(topic),
            _ => sns = None,
        }
    }
    let mut suppress = Some(Vec::new());
    for (i, entry) in r.suppress.iter().flatten().enumerate() {
        let rule = suppression(c, &k.key("suppress").index(i), entry);
        match (suppress.as_mut(), rule) {
            (Some(list), Some(rule)) => list.push(rule),
            _ => suppress = None,
        }
    }
    let file = c
        .parsed(&k.key("file"), &r.file, formats::non_empty)
        .map(PathBuf::from);
    if r.file.is_some() && file.is_none() {
        return None;
    }
    Some(AlertsConfig {
        dedup_window: dedup_window?,
        aggregate: aggregate?,
        max_windows: usize::try_from(max_windows?).ok()?,
        file,
        sns: sns?,
        suppress: suppress?,
    })
}

fn topic(c: &mut Checker<'_>, k: &KeyPath, entry: &Value) -> Option<SnsSinkConfig> {
    let e: RawSnsSink = c.section(k, Some(entry));
    let topic_arn = c.parsed(&k.key("topic_arn"), &e.topic_arn, formats::topic_arn);
    let topic_arn = c.required(&k.key("topic_arn"), topic_arn, &e.topic_arn);
    let min_level = c.parsed(&k.key("min_level"), &e.min_level, |t| t.parse::<Level>());
    let rules: Option<Vec<String>> = c.value(&k.key("rules"), &e.rules);
    let tags: Option<Vec<String>> = c.value(&k.key("tags"), &e.tags);
    let format = c.parsed(&k.key("format"), &e.format, |t| {
        formats::one_of(
            t,
            &[
                ("standard", MessageFormat::Standard),
                ("chatbot", MessageFormat::Chatbot),
            ],
        )
    });
    let per_minute = c.count(&k.key("max_per_minute"), &e.max_per_minute, 1, 100_000);
    let failed = (e.min_level.is_some() && min_level.is_none())
        || (e.rules.is_some() && rules.is_none())
        || (e.tags.is_some() && tags.is_none())
        || (e.format.is_some() && format.is_none())
        || (e.max_per_minute.is_some() && per_minute.is_none());
    if failed {
        return None;
    }
    Some(SnsSinkConfig {
        topic_arn: topic_arn?,
        min_level: min_level.unwrap_or(Level::Medium),
        rules: rules.unwrap_or_default(),
        tags: tags.unwrap_or_default(),
        format: format.unwrap_or(MessageFormat::Standard),
        max_per_minute: u32::try_from(per_minute.unwrap_or(DEFAULT_PER_MINUTE)).ok()?,
    })
}

fn suppression(c: &mut Checker<'_>, k: &KeyPath, entry: &Value) -> Option<SuppressionConfig> {
    let e: RawSuppression = c.section(k, Some(entry));
    let reason = c.parsed(&k.key("reason"), &e.reason, formats::non_empty);
    let reason = c.required(&k.key("reason"), reason, &e.reason);
    let rule = c.parsed(&k.key("rule"), &e.rule, formats::non_empty);
    let principal = c.parsed(&k.key("principal"), &e.principal, formats::non_empty);
    let source_ip = c.parsed(&k.key("source_ip"), &e.source_ip, ip_or_cidr);
    let account = c.parsed(&k.key("account"), &e.account, formats::account_id);
    let user_agent = c.parsed(&k.key("user_agent"), &e.user_agent, formats::non_empty);
    let resource = c.parsed(&k.key("resource"), &e.resource, formats::non_empty);
    let expires = c.parsed(&k.key("expires"), &e.expires, expiry);
    let criteria = [
        &e.rule,
        &e.principal,
        &e.source_ip,
        &e.account,
        &e.user_agent,
        &e.resource,
    ];
    if criteria.iter().all(|leaf| leaf.is_none()) {
        c.report(
            k,
            "a suppression needs at least one of rule, principal, source_ip, account, user_agent or resource",
        );
        return None;
    }
    let failed = (e.rule.is_some() && rule.is_none())
        || (e.principal.is_some() && principal.is_none())
        || (e.source_ip.is_some() && source_ip.is_none())
        || (e.account.is_some() && account.is_none())
        || (e.user_agent.is_some() && user_agent.is_none())
        || (e.resource.is_some() && resource.is_none())
        || (e.expires.is_some() && expires.is_none());
    if failed {
        return None;
    }
    Some(SuppressionConfig {
        reason: reason?,
        rule,
        principal,
        source_ip,
        account,
        user_agent,
        resource,
        expires,
    })
}

/// An address (`203.0.113.7`) or a range (`10.0.0.0/8`).
fn ip_or_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(ipnet::IpNet::from).map_err(|_| {
        format!(
            "invalid IP address or CIDR range \"{text}\" (try \"203.0.113.7\" or \"10.0.0.0/8\")"
        )
    })
}

/// A moment (`2026-12-31T18:00:00Z`) or a day (`2026-12-31`, from its start, UTC).
fn expiry(text: &str) -> Result<jiff::Timestamp, String> {
    if let Ok(time) = text.parse::<jiff::Timestamp>() {
        return Ok(time);
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|date| date.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|zoned| zoned.timestamp())
        .ok_or_else(|| {
            format!("invalid expiry \"{text}\" (expected a date such as \"2026-12-31\" or a time such as \"2026-12-31T18:00:00Z\")")
        })
}
