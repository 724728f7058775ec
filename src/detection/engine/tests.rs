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
        reread_from: None,
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
            reread_from: None,
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

/// A CloudTrail record with the fields the tests below vary.
fn ct(id: &str, time: &str, name: &str, extra: &str) -> String {
    format!(
        r#"{{"eventTime":"{time}","eventSource":"iam.amazonaws.com","eventName":"{name}","eventID":"{id}","awsRegion":"eu-west-1","recipientAccountId":"111122223333","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/u"}}{extra}}}"#
    )
}

fn alert_ids(e: &mut Engine, raw: &str) -> Vec<String> {
    run(e, raw)
        .unwrap()
        .alerts
        .into_iter()
        .map(|a| a.rule.id)
        .collect()
}

#[test]
fn events_out_of_order_within_the_allowance_still_correlate() {
    // Trail files of two Regions: one file's events arrive 18 minutes after
    // the other's, which the default allowance (20 minutes) puts back in order.
    let base = "title: Denied\nid: denied\nname: denied\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    errorCode: AccessDenied\n  condition: selection\n";
    let corr = "title: Denied burst\nid: burst\ncorrelation:\n  type: event_count\n  rules: [denied]\n  group-by: [recipientAccountId]\n  timespan: 5m\n  condition: {gte: 3}\n";
    let mut e = engine(&[base, corr]);
    let denied = r#","errorCode":"AccessDenied""#;
    assert!(alert_ids(&mut e, &ct("a", "2026-11-01T10:20:00Z", "GetUser", "")).is_empty());
    assert!(alert_ids(&mut e, &ct("b", "2026-11-01T10:02:00Z", "GetUser", denied)).is_empty());
    assert!(alert_ids(&mut e, &ct("c", "2026-11-01T10:03:00Z", "GetUser", denied)).is_empty());
    assert_eq!(
        alert_ids(&mut e, &ct("d", "2026-11-01T10:04:00Z", "GetUser", denied)),
        ["burst"]
    );
    assert_eq!(e.correlation_stats().late_events, 0);
}

#[test]
fn group_by_reads_numbers_and_booleans() {
    let base = "title: Port opened\nid: port\nname: port\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventName: AuthorizeSecurityGroupIngress\n  condition: selection\n";
    let corr = "title: Same port many times\nid: same-port\ncorrelation:\n  type: event_count\n  rules: [port]\n  group-by: [requestParameters.fromPort, requestParameters.public]\n  timespan: 10m\n  condition: {gte: 2}\n";
    let mut e = engine(&[base, corr]);
    let extra = r#","requestParameters":{"fromPort":22,"public":true}"#;
    assert!(
        alert_ids(
            &mut e,
            &ct(
                "a",
                "2026-11-01T10:00:00Z",
                "AuthorizeSecurityGroupIngress",
                extra
            )
        )
        .is_empty()
    );
    let alerts = run(
        &mut e,
        &ct(
            "b",
            "2026-11-01T10:01:00Z",
            "AuthorizeSecurityGroupIngress",
            extra,
        ),
    )
    .unwrap()
    .alerts;
    assert_eq!(alerts.len(), 1);
    let group = &alerts[0].correlation.as_ref().unwrap().group;
    assert_eq!(group["requestParameters.fromPort"], "22");
    assert_eq!(group["requestParameters.public"], "true");
    assert_eq!(e.correlation_stats().missing_group_field, 0);
}

#[test]
fn a_window_closed_by_time_speaks_of_its_own_events() {
    let base = "title: Login\nid: login\nname: login\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventName: ConsoleLogin\n  condition: selection\n";
    let rare = "title: Rare login\nid: rare\ncorrelation:\n  type: event_count\n  rules: [login]\n  group-by: [sourceIPAddress]\n  timespan: 10m\n  condition: {lt: 2}\n";
    let config = EngineConfig {
        correlation: correlation::Limits {
            late_allowance_ms: 0,
            ..correlation::Limits::default()
        },
        ..EngineConfig::default()
    };
    let mut e = engine_with(&[base, rare], config);
    let login = r#"{"eventTime":"2026-11-01T10:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","sourceIPAddress":"198.51.100.4","eventID":"login-1","awsRegion":"us-east-1","recipientAccountId":"111122223333","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/alice"}}"#;
    assert!(run(&mut e, login).unwrap().alerts.is_empty());
    // An unrelated event of another account and Region, an hour later,
    // moves time on and closes the login's window.
    let other = r#"{"eventTime":"2026-11-01T11:00:00Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","sourceIPAddress":"192.0.2.1","eventID":"other","awsRegion":"ap-south-1","recipientAccountId":"999999999999","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999999999999:user/mallory"}}"#;
    let alerts = run(&mut e, other).unwrap().alerts;
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.rule.id, "rare");
    assert_eq!(a.event_id.as_deref(), Some("login-1"));
    assert_eq!(a.account.as_deref(), Some("111122223333"));
    assert_eq!(a.region.as_deref(), Some("us-east-1"));
    assert_eq!(
        a.principal.as_deref(),
        Some("arn:aws:iam::111122223333:user/alice")
    );
    assert_eq!(a.source_ip.as_deref(), Some("198.51.100.4"));
    assert_eq!(a.origin, None, "not the place of the unrelated event");
}

#[test]
fn chained_correlations_group_by_the_inner_groups_also_at_finish() {
    let base = "title: Login\nid: login\nname: login\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventName: ConsoleLogin\n  condition: selection\n";
    let rare = "title: Rare login\nid: rare\nname: rare\ncorrelation:\n  type: event_count\n  rules: [login]\n  group-by: [sourceIPAddress]\n  timespan: 10m\n  condition: {lt: 2}\n";
    let outer = "title: Rare logins again\nid: outer\ncorrelation:\n  type: event_count\n  rules: [rare]\n  group-by: [sourceIPAddress]\n  timespan: 1h\n  condition: {gte: 1}\n";
    let mut e = engine(&[base, rare, outer]);
    let login = r#"{"eventTime":"2026-11-01T10:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","sourceIPAddress":"198.51.100.4","eventID":"login-1"}"#;
    assert!(run(&mut e, login).unwrap().alerts.is_empty());
    let end = e.finish();
    let outer_alert = end
        .iter()
        .find(|a| a.rule.id == "outer")
        .expect("the outer correlation is fed at finish too");
    assert_eq!(
        outer_alert.correlation.as_ref().unwrap().group["sourceIPAddress"],
        "198.51.100.4"
    );
}

#[test]
fn a_correlation_that_fails_to_load_leaves_its_rules_alerting() {
    let base = "title: Login\nid: login\nname: login\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventName: ConsoleLogin\n  condition: selection\n";
    let broken = "title: Broken\nid: broken\ncorrelation:\n  type: event_count\n  rules: [login]\n  group-by: [sourceIPAddress]\n  timespan: 10m\n  condition: {gte: 5000}\n";
    let files: Vec<RuleFile> = [base, broken]
        .iter()
        .enumerate()
        .map(|(i, text)| RuleFile {
            origin: format!("r{i}.yml"),
            text: (*text).to_owned(),
            builtin: false,
        })
        .collect();
    let options = LoadOptions {
        max_group_entries: 1000,
        ..LoadOptions::default()
    };
    let set = RuleSet::load(&files, &options);
    assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
    assert!(
        set.errors[0].message.contains("max_group_entries"),
        "{}",
        set.errors[0]
    );
    let mut e = Engine::new(Arc::new(set), EngineConfig::default());
    let login = r#"{"eventTime":"2026-11-01T10:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","sourceIPAddress":"198.51.100.4","eventID":"login-1"}"#;
    assert_eq!(alert_ids(&mut e, login), ["login"]);
}

#[test]
fn long_indexed_values_reach_their_rule() {
    let long = format!("arn:aws:iam::111122223333:role/{}", "x".repeat(200));
    let rule = format!(
        "title: Long\nid: long\nlogsource: {{product: aws, service: cloudtrail}}\ndetection:\n  selection:\n    userIdentity.arn: '{long}'\n  condition: selection\n"
    );
    let mut e = engine(&[&rule]);
    let raw = format!(
        r#"{{"eventTime":"2026-11-01T10:00:00Z","eventSource":"iam.amazonaws.com","eventName":"GetUser","eventID":"a","userIdentity":{{"arn":"{long}"}}}}"#
    );
    assert_eq!(alert_ids(&mut e, &raw), ["long"]);
}

#[test]
fn and_across_selections_on_an_array_field_still_matches() {
    let rule = "title: Both types\nid: both\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  a:\n    resources.type: AWS::IAM::Role\n  b:\n    resources.type: AWS::IAM::Policy\n  condition: a and b\n";
    let mut e = engine(&[rule]);
    let raw = ct(
        "a",
        "2026-11-01T10:00:00Z",
        "AttachRolePolicy",
        r#","resources":[{"type":"AWS::IAM::Role"},{"type":"AWS::IAM::Policy"}]"#,
    );
    assert_eq!(alert_ids(&mut e, &raw), ["both"]);
}

#[test]
fn dotted_keys_are_found_beside_an_object_of_their_first_part() {
    let rule = "title: Errors\nid: errors\ndetection:\n  selection:\n    log.level: error\n  condition: selection\n";
    let mut e = engine(&[rule]);
    let logsource = LogSource::default();
    let raw = r#"{"@timestamp":"2026-11-01T10:00:00Z","log":{"logger":"app"},"log.level":"error","message":"x"}"#;
    let processed = e
        .process(&EventInput {
            raw,
            format: Format::Json,
            logsource: &logsource,
            source: Some("app"),
            origin: None,
            time_hint_ms: None,
            dedup_id: None,
            reread_from: None,
        })
        .unwrap();
    assert_eq!(processed.alerts.len(), 1);
}

#[test]
fn keywords_match_values_unescaped_and_never_keys() {
    let temp =
        "title: Temp\nid: temp\ndetection:\n  keywords:\n    - 'C:\\Temp'\n  condition: keywords\n";
    let key =
        "title: Key\nid: key\ndetection:\n  keywords:\n    - userName\n  condition: keywords\n";
    let mut e = engine(&[temp, key]);
    let logsource = LogSource::default();
    let mut ids = |raw: &str| -> Vec<String> {
        e.process(&EventInput {
            raw,
            format: Format::Json,
            logsource: &logsource,
            source: Some("app"),
            origin: None,
            time_hint_ms: None,
            dedup_id: None,
            reread_from: None,
        })
        .unwrap()
        .alerts
        .into_iter()
        .map(|a| a.rule.id)
        .collect()
    };
    assert_eq!(
        ids(r#"{"path":"C:\\Temp\\x.exe","userName":"bob"}"#),
        ["temp"]
    );
    assert_eq!(ids(r#"{"note":"the userName field"}"#), ["key"]);
}

#[test]
fn rules_for_one_aws_service_read_that_services_cloudtrail_events() {
    let rule = "title: Access key made\nid: key-made\nlogsource: {product: aws, service: iam}\ndetection:\n  selection:\n    eventName: CreateAccessKey\n  condition: selection\n";
    let mut e = engine(&[rule]);
    let iam = ct("a", "2026-11-01T10:00:00Z", "CreateAccessKey", "");
    assert_eq!(alert_ids(&mut e, &iam), ["key-made"]);
    // The same event name from another service is not the rule's.
    let other = iam
        .replace("iam.amazonaws.com", "lightsail.amazonaws.com")
        .replace(r#""eventID":"a""#, r#""eventID":"b""#);
    assert!(alert_ids(&mut e, &other).is_empty());
}

#[test]
fn deprecated_and_unsupported_rules_are_listed_but_not_evaluated() {
    let old = "title: Old\nid: old\nstatus: deprecated\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventName: CreateAccessKey\n  condition: selection\n";
    let files = [RuleFile {
        origin: "old.yml".to_owned(),
        text: old.to_owned(),
        builtin: false,
    }];
    let set = RuleSet::load(&files, &LoadOptions::default());
    assert!(set.errors.is_empty());
    assert!(
        set.warnings
            .iter()
            .any(|w| w.message.contains("deprecated"))
    );
    let infos = set.infos();
    assert_eq!(infos[0].skipped.as_deref(), Some("status deprecated"));
    let mut e = Engine::new(Arc::new(set), EngineConfig::default());
    assert!(
        alert_ids(
            &mut e,
            &ct("a", "2026-11-01T10:00:00Z", "CreateAccessKey", "")
        )
        .is_empty()
    );
}

#[test]
fn a_record_dated_in_the_future_cannot_blind_correlations() {
    let base = "title: Denied\nid: denied\nname: denied\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    errorCode: AccessDenied\n  condition: selection\n";
    let corr = "title: Denied burst\nid: burst\ncorrelation:\n  type: event_count\n  rules: [denied]\n  group-by: [recipientAccountId]\n  timespan: 5m\n  condition: {gte: 12}\n";
    let mut e = engine_with(
        &[base, corr],
        EngineConfig {
            dedup: Some((3_600_000, 10_000)),
            ..EngineConfig::default()
        },
    );
    assert!(alert_ids(&mut e, &ct("future", "2099-01-01T00:00:00Z", "GetUser", "")).is_empty());
    let now = jiff::Timestamp::now();
    let mut alerts = Vec::new();
    for i in 0..12 {
        let time = (now - jiff::SignedDuration::from_secs(60 - i)).to_string();
        alerts.extend(alert_ids(
            &mut e,
            &ct(
                &format!("d{i}"),
                &time,
                "GetUser",
                r#","errorCode":"AccessDenied""#,
            ),
        ));
    }
    assert_eq!(alerts, ["burst"]);
    assert_eq!(e.correlation_stats().future_events, 1);
    assert_eq!(e.correlation_stats().late_events, 0);
}
