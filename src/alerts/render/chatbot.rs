//! AWS Chatbot's custom-notification format (Amazon Q Developer in chat
//! applications): published as the plain message of a topic that a chat
//! channel is configured with, it shows in Slack, Teams or Chime as a card.

use serde_json::{Value, json};

use super::text::console_link;
use crate::detection::Alert;
use crate::detection::Level;

/// Chat cards are read at a glance: long text is cut.
const TITLE_CHARS: usize = 250;
const DESCRIPTION_CHARS: usize = 4000;
const STEP_CHARS: usize = 500;

/// The custom-notification JSON for `alert`.
pub fn chatbot(alert: &Alert) -> Value {
    let level = alert.rule.level;
    let icon = match level {
        Level::Critical | Level::High => ":rotating_light:",
        Level::Medium => ":warning:",
        Level::Low | Level::Informational => ":information_source:",
    };
    let title = match &alert.repeats {
        Some(r) => format!(
            "{icon} {} ({} repeats): {}",
            level.as_str().to_ascii_uppercase(),
            r.count,
            alert.rule.title
        ),
        None => format!(
            "{icon} {}: {}",
            level.as_str().to_ascii_uppercase(),
            alert.rule.title
        ),
    };
    let mut lines = Vec::new();
    let what = match (&alert.event_name, &alert.principal) {
        (Some(name), Some(who)) => Some(format!("*{name}* by `{who}`")),
        (Some(name), None) => Some(format!("*{name}*")),
        (None, Some(who)) => Some(format!("by `{who}`")),
        (None, None) => None,
    };
    lines.extend(what);
    let mut place = Vec::new();
    if let Some(ip) = &alert.source_ip {
        place.push(format!("from `{ip}`"));
    }
    if let Some(account) = &alert.account {
        place.push(format!("account `{account}`"));
    }
    if let Some(region) = &alert.region {
        place.push(format!("Region `{region}`"));
    }
    if let Some(time) = &alert.event_time {
        place.push(format!("at {time}"));
    }
    if !place.is_empty() {
        lines.push(place.join(", "));
    }
    if let Some(r) = &alert.repeats {
        lines.push(format!(
            "Repeated {} more times between {} and {}.",
            r.count, r.window_start, r.window_end
        ));
    }
    if let Some(description) = &alert.rule.description {
        lines.push(String::new());
        lines.push(description.trim().to_owned());
    }
    let mut steps = Vec::new();
    if let Some(link) = console_link(alert) {
        steps.push(format!("Open the event in the CloudTrail console: {link}"));
    }
    for fp in alert.rule.falsepositives.iter().take(3) {
        steps.push(cut(
            &format!("Rule out a known benign cause: {fp}"),
            STEP_CHARS,
        ));
    }
    let mut keywords = vec![level.as_str().to_owned()];
    keywords.extend(alert.account.as_deref().map(str::to_owned));
    keywords.extend(alert.region.as_deref().map(str::to_owned));
    keywords.extend(alert.rule.tags.iter().take(3).cloned());
    let mut context = serde_json::Map::new();
    context.insert("rule_id".to_owned(), json!(alert.rule.id));
    if let Some(id) = &alert.id {
        context.insert("alert_id".to_owned(), json!(id));
    }
    if let Some(id) = &alert.event_id {
        context.insert("event_id".to_owned(), json!(id));
    }
    json!({
        "version": "1.0",
        "source": "custom",
        "id": alert.id,
        "content": {
            "textType": "client-markdown",
            "title": cut(&title, TITLE_CHARS),
            "description": cut(&lines.join("\n"), DESCRIPTION_CHARS),
            "nextSteps": steps,
            "keywords": keywords,
        },
        "metadata": {
            // Repeats of one finding share a thread.
            "threadId": format!("{:016x}", xxhash_rust::xxh3::xxh3_64(alert.dedup_key.as_bytes())),
            "summary": cut(&alert.rule.title, TITLE_CHARS),
            "eventType": "cloudwarden alert",
            "relatedResources": alert.principal.as_deref().map(|p| vec![p.to_owned()]).unwrap_or_default(),
            "additionalContext": context,
        }
    })
}

fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(chars.saturating_sub(3)).collect();
    out.push_str("...");
    out
}
