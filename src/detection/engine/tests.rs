//! The engine end to end: rule text and records in, alerts out.

use super::*;
use crate::detection::event::Reason;
use crate::detection::sigma::ruleset::{LoadOptions, RuleFile};

fn engine_with(rules: &[&str], config: EngineConfig) -> Engine {
    let files: Vec<RuleFile> = rules
        .iter()
        .enumerate()
        .map(|(i, text)| RuleFile {
            origin: format!("r{i}.yml"),
            text: (*text).to_owned(),
            builtin: false,
        })
        .collect();
    let set = RuleSet::load(&files, &LoadOptions::default());
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    Engine::new(Arc::new(set), config)
}

fn engine(rules: &[&str]) -> Engine {
    engine_with(rules, EngineConfig::default())
}

fn run(engine: &mut Engine, raw: &str) -> Result<Processed, Rejection> {
    let logsource = LogSource::cloudtrail();
    engine.process(&EventInput {
        raw,
        format: Format::CloudTrail,
        logsource: &logsource,
        source: Some("test"),
        origin: Some(&"file.json:record 3"),
        time_hint_ms: None,
        dedup_id: None,
    })
}

const CREATE_USER: &str = "title: User created\nid: create-user\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventSource: iam.amazonaws.com\n    eventName: CreateUser\n  condition: selection\nlevel: high\ntags: [attack.persistence]\n";

fn record(id: &str, name: &str, user: &str, time: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/{user}","accountId":"111122223333"}},"eventTime":"{time}","eventSource":"iam.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.9","userAgent":"aws-cli/2","eventID":"{id}","recipientAccountId":"111122223333"}}"#
    )
}

#[test]
fn a_match_becomes_an_alert_with_who_what_where() {
    let mut e = engine(&[CREATE_USER]);
    let processed = run(
        &mut e,
        &record("e1", "CreateUser", "alice", "2026-11-01T10:00:00Z"),
    )
    .unwrap();
    assert_eq!(processed.alerts.len(), 1);
    let a = &processed.alerts[0];
    assert_eq!(a.rule.id, "create-user");
    assert_eq!(a.rule.level, crate::detection::Level::High);
    assert_eq!(a.kind, crate::detection::alert::AlertKind::Match);
    assert_eq!(
        a.principal.as_deref(),
        Some("arn:aws:iam::111122223333:user/alice")
    );
    assert_eq!(a.account.as_deref(), Some("111122223333"));
    assert_eq!(a.region.as_deref(), Some("us-east-1"));
    assert_eq!(a.event_name.as_deref(), Some("CreateUser"));
    assert_eq!(a.origin.as_deref(), Some("file.json:record 3"));
    assert_eq!(
        a.dedup_key,
        "create-user|arn:aws:iam::111122223333:user/alice|111122223333"
    );
    assert_eq!(a.events.len(), 1);
    let json: serde_json::Value = serde_json::from_str(&a.to_json_line()).unwrap();
    assert_eq!(json["events"][0]["eventID"], "e1");
    assert!(
        run(
            &mut e,
            &record("e2", "DeleteUser", "alice", "2026-11-01T10:00:00Z")
        )
        .unwrap()
        .alerts
        .is_empty()
    );
}

#[test]
fn pretty_printed_records_become_one_line_alerts() {
    let mut e = engine(&[CREATE_USER]);
    let pretty = serde_json::to_string_pretty(
        &serde_json::from_str::<serde_json::Value>(&record(
            "e1",
            "CreateUser",
            "a b",
            "2026-11-01T10:00:00Z",
        ))
        .unwrap(),
    )
    .unwrap();
    let line = run(&mut e, &pretty).unwrap().alerts[0].to_json_line();
    assert!(!line.contains('\n'));
    let json: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        json["events"][0]["userIdentity"]["arn"],
        "arn:aws:iam::111122223333:user/a b"
    );
}

#[test]
fn duplicates_by_event_id_are_dropped_when_dedup_is_on() {
    let config = EngineConfig {
        dedup: Some((3_600_000, 1000)),
        ..EngineConfig::default()
    };
    let mut e = engine_with(&[CREATE_USER], config);
    let raw = record("same", "CreateUser", "alice", "2026-11-01T10:00:00Z");
    assert_eq!(run(&mut e, &raw).unwrap().alerts.len(), 1);
    let again = run(&mut e, &raw).unwrap();
    assert!(again.duplicate && again.alerts.is_empty());
}

#[test]
fn rejections_say_why() {
    let mut e = engine(&[CREATE_USER]);
    assert_eq!(
        run(&mut e, "{not json").unwrap_err().reason,
        Reason::InvalidJson
    );
    assert_eq!(
        run(&mut e, r#"{"a":1}"#).unwrap_err().reason,
        Reason::NotCloudTrail
    );
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(run(&mut e, &deep).unwrap_err().reason, Reason::TooDeep);
    let big = format!(r#"{{"eventName":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    assert_eq!(run(&mut e, &big).unwrap_err().reason, Reason::TooLarge);
    // The engine goes on afterwards.
    assert_eq!(
        run(
            &mut e,
            &record("ok", "CreateUser", "a", "2026-11-01T10:00:00Z")
        )
        .unwrap()
        .alerts
        .len(),
        1
    );
}

#[test]
fn rules_apply_only_to_their_logsource() {
    let windows = "title: Windows only\nid: win\nlogsource: {product: windows}\ndetection:\n  selection:\n    eventName: CreateUser\n  condition: selection\n";
    let mut e = engine(&[windows, CREATE_USER]);
    let alerts = run(
        &mut e,
        &record("e1", "CreateUser", "a", "2026-11-01T10:00:00Z"),
    )
    .unwrap()
    .alerts;
    let ids: Vec<&str> = alerts.iter().map(|a| a.rule.id.as_str()).collect();
    assert_eq!(ids, ["create-user"]);
}

#[test]
fn text_records_meet_keyword_rules() {
    let rule = "title: Failed root password\nid: ssh\ndetection:\n  keywords:\n    - 'failed password for root'\n  condition: keywords\n";
    let mut e = engine(&[rule]);
    let logsource = LogSource::default();
    let line = "Nov  1 10:00:00 host sshd[42]: Failed password for root from 203.0.113.5";
    let processed = e
        .process(&EventInput {
            raw: line,
            format: Format::Text,
            logsource: &logsource,
            source: Some("syslog"),
            origin: None,
            time_hint_ms: Some(1_000),
            dedup_id: None,
        })
        .unwrap();
    assert_eq!(processed.alerts.len(), 1);
    assert_eq!(
        processed.alerts[0].events[0].get(),
        serde_json::to_string(line).unwrap()
    );
}

#[test]
fn a_correlation_alert_names_its_group_and_events() {
    let base = "title: Failed login\nid: fail\nname: failed_login\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventName: ConsoleLogin\n    responseElements.ConsoleLogin: Failure\n  condition: selection\nlevel: low\n";
    let corr = "title: Many failed logins\nid: many\ncorrelation:\n  type: event_count\n  rules: [failed_login]\n  group-by: [sourceIPAddress]\n  timespan: 10m\n  condition: {gte: 3}\nlevel: high\n";
    let mut e = engine(&[base, corr]);
    let login = |id: &str, minute: u32| {
        format!(
            r#"{{"eventTime":"2026-11-01T10:{minute:02}:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","sourceIPAddress":"198.51.100.4","eventID":"{id}","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::1:user/u"}},"responseElements":{{"ConsoleLogin":"Failure"}}}}"#
        )
    };
    let mut alerts = Vec::new();
    for (i, minute) in [0u32, 2, 4].iter().enumerate() {
        alerts.extend(
            run(&mut e, &login(&format!("f{i}"), *minute))
                .unwrap()
                .alerts,
        );
    }
    assert_eq!(
        alerts.len(),
        1,
        "the base rule is a building block: only the correlation alerts"
    );
    let a = &alerts[0];
    assert_eq!(a.rule.id, "many");
    let info = a.correlation.as_ref().unwrap();
    assert_eq!(info.kind, "event_count");
    assert_eq!(info.group["sourceIPAddress"], "198.51.100.4");
    assert_eq!(info.value, 3.0);
    assert_eq!(
        info.first_event_time.as_deref(),
        Some("2026-11-01T10:00:00Z")
    );
    assert_eq!(a.correlated_events.len(), 3);
    assert_eq!(a.dedup_key, "many|198.51.100.4");
}

#[test]
fn finish_judges_windows_still_open() {
    let base = "title: Login\nid: login\nname: login\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventName: ConsoleLogin\n  condition: selection\n";
    let few = "title: Rare login\nid: rare\ncorrelation:\n  type: event_count\n  rules: [login]\n  group-by: [sourceIPAddress]\n  timespan: 1h\n  condition: {lt: 2}\n";
    let mut e = engine(&[base, few]);
    let raw = r#"{"eventTime":"2026-11-01T10:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","sourceIPAddress":"198.51.100.4","eventID":"x"}"#;
    assert!(run(&mut e, raw).unwrap().alerts.is_empty());
    let end = e.finish();
    assert_eq!(end.len(), 1);
    assert_eq!(end[0].rule.id, "rare");
}
