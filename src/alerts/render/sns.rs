//! The SNS message of an alert, within SNS's size limit.

use serde_json::json;

use super::chatbot::chatbot;
use super::text::{email, short_text, subject};
use super::trim::trim_step;
use crate::config::MessageFormat;
use crate::detection::Alert;
use crate::detection::alert::AlertKind;

/// SNS's limit for one message, attributes included; PublishBatch's for a whole batch.
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// Room left for what SNS may count that we do not (and for safety).
const MARGIN_BYTES: usize = 1024;

/// One message ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    /// The subject (email subscribers see it).
    pub subject: Option<String>,
    /// The message: per-protocol bodies as JSON when `structured`.
    pub body: String,
    /// Whether `body` is a `MessageStructure=json` document.
    pub structured: bool,
    /// String message attributes, for subscription filter policies.
    pub attributes: Vec<(&'static str, String)>,
    /// For a FIFO topic: the message group and deduplication ids.
    pub fifo: Option<Fifo>,
}

/// What a FIFO topic requires of each message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fifo {
    /// `MessageGroupId`: the rule id, so one rule's alerts stay in order.
    pub group_id: String,
    /// `MessageDeduplicationId`: the alert id, so a resend after a kill is
    /// dropped by SNS within its 5-minute deduplication interval.
    pub dedup_id: String,
}

impl Fifo {
    /// The ids for `alert`, within SNS's rules (at most 128 characters of
    /// letters, digits and punctuation).
    pub fn for_alert(alert: &Alert) -> Fifo {
        let clean = |text: &str| -> String {
            let cleaned: String = text
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(128)
                .collect();
            if cleaned.is_empty() {
                "cloudwarden".to_owned()
            } else {
                cleaned
            }
        };
        Fifo {
            group_id: clean(&alert.rule.id),
            dedup_id: clean(alert.id.as_deref().unwrap_or(&alert.rule.id)),
        }
    }
}

impl SnsMessage {
    /// The bytes SNS counts against its limit: body, subject and attributes.
    pub fn size(&self) -> usize {
        self.body.len()
            + self.subject.as_ref().map_or(0, String::len)
            + self
                .attributes
                .iter()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>()
    }
}

/// The message for `alert` in `format`, trimmed until it fits.
pub fn sns_message(alert: &Alert, format: MessageFormat) -> SnsMessage {
    let fits = |m: &SnsMessage| m.size() + MARGIN_BYTES <= MAX_MESSAGE_BYTES;
    let message = render(alert, format);
    if fits(&message) {
        return message;
    }
    // Only an alert too large is copied, to be cut down step by step.
    let mut alert = alert.clone();
    let mut step = 0;
    while trim_step(&mut alert, step) {
        let message = render(&alert, format);
        if fits(&message) {
            return message;
        }
        step += 1;
    }
    render(&alert, format)
}

fn render(alert: &Alert, format: MessageFormat) -> SnsMessage {
    let attributes = attributes(alert);
    match format {
        MessageFormat::Standard => {
            let json = alert.to_json_line();
            let body = json!({
                "default": short_text(alert),
                "email": email(alert),
                "sqs": json,
                "lambda": json,
                "https": json,
            });
            SnsMessage {
                subject: Some(subject(alert)),
                body: body.to_string(),
                structured: true,
                attributes,
                fifo: None,
            }
        }
        MessageFormat::Chatbot => SnsMessage {
            subject: None,
            body: chatbot(alert).to_string(),
            structured: false,
            attributes,
            fifo: None,
        },
    }
}

/// `level`, `rule_id`, `kind`, `account` and `region`, the ones a
/// subscription filter policy is likely to select on; empty values are left
/// out because SNS refuses them.
fn attributes(alert: &Alert) -> Vec<(&'static str, String)> {
    let kind = match alert.kind {
        AlertKind::Match => "match",
        AlertKind::Correlation => "correlation",
        AlertKind::Summary => "summary",
        AlertKind::Posture => "posture",
        AlertKind::Response => "response",
        AlertKind::Anomaly => "anomaly",
    };
    let mut out = vec![
        ("level", alert.rule.level.as_str().to_owned()),
        ("rule_id", alert.rule.id.clone()),
        ("kind", kind.to_owned()),
    ];
    for (name, value) in [("account", &alert.account), ("region", &alert.region)] {
        if let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            out.push((name, value.chars().take(256).collect()));
        }
    }
    out.retain(|(_, v)| !v.trim().is_empty());
    out
}

#[cfg(test)]
mod tests;
