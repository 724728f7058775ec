//! Cutting an alert down to fit a message limit, least essential first:
//! the embedded events, then the correlated events' list, then the rule's
//! long texts, and last any overlong field. What the alert is (rule, level,
//! who, what, where, when, ids) survives every step, and each step that
//! cut something is named in `Alert::trimmed`.

use std::sync::Arc;

use crate::detection::Alert;

/// Correlated events kept at each end of the list.
const KEEP_DIGESTS: usize = 3;

/// Applies trimming step `step` (0, 1, 2, ...); false when there is none left.
pub fn trim_step(alert: &mut Alert, step: usize) -> bool {
    let (name, cut) = match step {
        0 => ("events", trim_events(alert)),
        1 => ("correlated_events", trim_digests(alert)),
        2 => ("description", trim_rule_texts(alert)),
        3 => ("fields", trim_fields(alert, 1024)),
        4 => ("fields", trim_fields(alert, 128)),
        _ => return false,
    };
    if cut && !alert.trimmed.iter().any(|t| t == name) {
        alert.trimmed.push(name.to_owned());
    }
    true
}

fn trim_events(alert: &mut Alert) -> bool {
    let cut = !alert.events.is_empty();
    alert.events.clear();
    cut
}

fn trim_digests(alert: &mut Alert) -> bool {
    let n = alert.correlated_events.len();
    if n <= 2 * KEEP_DIGESTS {
        return false;
    }
    alert
        .correlated_events
        .drain(KEEP_DIGESTS..n - KEEP_DIGESTS);
    true
}

fn trim_rule_texts(alert: &mut Alert) -> bool {
    let rule = &mut alert.rule;
    let mut cut = false;
    if let Some(d) = rule.description.as_mut() {
        cut |= shorten(d, 2000);
    }
    cut |= rule.falsepositives.len() > 5 || rule.references.len() > 5;
    rule.falsepositives.truncate(5);
    rule.references.truncate(5);
    for text in rule
        .falsepositives
        .iter_mut()
        .chain(rule.references.iter_mut())
    {
        cut |= shorten(text, 300);
    }
    cut
}

fn trim_fields(alert: &mut Alert, chars: usize) -> bool {
    let mut cut = shorten(&mut alert.rule.title, chars);
    for field in [
        &mut alert.event_name,
        &mut alert.event_source,
        &mut alert.principal,
        &mut alert.source_ip,
        &mut alert.user_agent,
        &mut alert.account,
        &mut alert.region,
        &mut alert.event_time,
        &mut alert.event_id,
    ] {
        if let Some(value) = field.as_mut() {
            let mut text = value.to_string();
            if shorten(&mut text, chars) {
                *value = Arc::from(text);
                cut = true;
            }
        }
    }
    for text in [&mut alert.origin, &mut alert.source].into_iter().flatten() {
        cut |= shorten(text, chars);
    }
    cut |= shorten(&mut alert.dedup_key, chars);
    if let Some(c) = alert.correlation.as_mut() {
        for value in c.group.values_mut() {
            cut |= shorten(value, chars);
        }
    }
    if let Some(r) = alert.repeats.as_mut() {
        for ip in &mut r.source_ips {
            cut |= shorten(ip, chars);
        }
    }
    for d in &mut alert.correlated_events {
        for field in [
            &mut d.event_id,
            &mut d.event_time,
            &mut d.event_name,
            &mut d.principal,
            &mut d.source_ip,
        ] {
            if let Some(value) = field.as_mut() {
                let mut text = value.to_string();
                if shorten(&mut text, chars) {
                    *value = Arc::from(text);
                    cut = true;
                }
            }
        }
    }
    if let Some(d) = alert.rule.description.as_mut() {
        cut |= shorten(d, chars * 4);
    }
    cut
}

/// Cuts `text` to `chars` characters, marking the cut; whether it cut.
fn shorten(text: &mut String, chars: usize) -> bool {
    match text.char_indices().nth(chars) {
        Some((at, _)) => {
            text.truncate(at);
            text.push_str("...");
            true
        }
        None => false,
    }
}
