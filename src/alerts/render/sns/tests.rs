//! The SNS message: protocol bodies, attributes, limits.

use serde_json::Value;

use super::*;
use crate::alerts::testing::alert;

#[test]
fn the_standard_message_has_a_body_per_protocol_and_filterable_attributes() {
    let mut a = alert("new-user");
    a.id = Some("000001-0000000001-abcd".to_owned());
    let m = sns_message(&a, MessageFormat::Standard);
    assert!(m.structured);
    assert_eq!(m.subject.as_deref(), Some("[HIGH] Something Worth Knowing"));
    let body: Value = serde_json::from_str(&m.body).unwrap();
    let default = body["default"].as_str().unwrap();
    assert!(
        default.starts_with(
            "HIGH: Something Worth Knowing - CreateUser by arn:aws:iam::123456789012:role/ci-deploy"
        ),
        "{default}"
    );
    let email = body["email"].as_str().unwrap();
    assert!(
        email.contains("10.1.2.3") && email.contains("Check who did it."),
        "{email}"
    );
    let sqs: Value = serde_json::from_str(body["sqs"].as_str().unwrap()).unwrap();
    assert_eq!(sqs["rule"]["id"], "new-user");
    assert_eq!(sqs["id"], "000001-0000000001-abcd");
    assert_eq!(body["sqs"], body["https"]);
    assert_eq!(body["sqs"], body["lambda"]);
    assert_eq!(
        m.attributes,
        vec![
            ("level", "high".to_owned()),
            ("rule_id", "new-user".to_owned()),
            ("kind", "match".to_owned()),
            ("account", "123456789012".to_owned()),
            ("region", "us-east-1".to_owned()),
        ]
    );
}

#[test]
fn subjects_are_short_ascii_without_line_breaks() {
    let mut a = alert("r");
    a.rule.title = format!("Zugriff über\nKonsole {}", "x".repeat(200));
    let s = sns_message(&a, MessageFormat::Standard).subject.unwrap();
    assert!(s.len() < 100, "{}", s.len());
    assert!(s.is_ascii() && !s.contains('\n'), "{s}");
    assert!(s.starts_with("[HIGH] Zugriff ?ber Konsole x"), "{s}");
    assert!(s.ends_with("..."));
}

#[test]
fn an_oversized_alert_is_trimmed_to_fit_and_says_what_was_cut() {
    let mut a = alert("big");
    let event = format!(
        r#"{{"eventName":"PutObject","padding":"{}"}}"#,
        "p".repeat(100_000)
    );
    for _ in 0..3 {
        a.events
            .push(serde_json::value::RawValue::from_string(event.clone()).unwrap());
    }
    a.rule.description = Some("d".repeat(50_000));
    for format in [MessageFormat::Standard, MessageFormat::Chatbot] {
        let m = sns_message(&a, format);
        assert!(m.size() <= MAX_MESSAGE_BYTES, "{format:?}: {}", m.size());
        let body: Value = serde_json::from_str(&m.body).unwrap();
        if format == MessageFormat::Standard {
            let sqs: Value = serde_json::from_str(body["sqs"].as_str().unwrap()).unwrap();
            assert_eq!(sqs["rule"]["id"], "big");
            assert_eq!(sqs["principal"], "arn:aws:iam::123456789012:role/ci-deploy");
            assert!(
                sqs["trimmed"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t == "events"),
                "{sqs}"
            );
        }
    }
    let small = sns_message(&alert("small"), MessageFormat::Standard);
    let sqs: Value = serde_json::from_str(
        serde_json::from_str::<Value>(&small.body).unwrap()["sqs"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        sqs.get("trimmed").is_none(),
        "nothing cut from a small alert"
    );
}

#[test]
fn the_chatbot_format_is_a_custom_notification() {
    let m = sns_message(&alert("r"), MessageFormat::Chatbot);
    assert!(!m.structured);
    assert!(m.subject.is_none());
    let card: Value = serde_json::from_str(&m.body).unwrap();
    assert_eq!(card["version"], "1.0");
    assert_eq!(card["source"], "custom");
    assert!(
        card["content"]["title"]
            .as_str()
            .unwrap()
            .contains("HIGH: Something Worth Knowing")
    );
    assert!(
        card["content"]["description"]
            .as_str()
            .unwrap()
            .contains("CreateUser")
    );
}

#[test]
fn a_summary_says_how_many_repeats_it_stands_for() {
    let mut a = alert("r");
    a.kind = AlertKind::Summary;
    a.repeats = Some(crate::detection::alert::Repeats {
        count: 41,
        window_start: "2026-11-22T12:00:00Z".to_owned(),
        window_end: "2026-11-22T13:00:00Z".to_owned(),
        first_event_time: None,
        last_event_time: None,
        last_event_id: None,
        source_ips: vec![],
    });
    let m = sns_message(&a, MessageFormat::Standard);
    assert_eq!(
        m.subject.as_deref(),
        Some("[HIGH] 41 repeats: Something Worth Knowing")
    );
    assert!(m.attributes.contains(&("kind", "summary".to_owned())));
    let body: Value = serde_json::from_str(&m.body).unwrap();
    assert!(
        body["default"]
            .as_str()
            .unwrap()
            .contains("repeated 41 more times")
    );
}
