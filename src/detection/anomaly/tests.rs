//! Anomaly rules end to end through the engine: rule text and records in,
//! alerts out, with the scenarios the detectors exist for.

use std::sync::Arc;

use crate::detection::alert::{Alert, AlertKind};
use crate::detection::engine::{Engine, EngineConfig, EventInput};
use crate::detection::event::{Format, format_time_ms, parse_time_ms};
use crate::detection::sigma::document::LogSource;
use crate::detection::sigma::ruleset::{LoadOptions, RuleFile, RuleSet};

const ANY_CALL: &str = "title: Any call\nname: any_call\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventSource|exists: true\n  condition: selection\n";

const NEW_REGION: &str = "title: Principal in a new Region\nid: new-region\nlevel: medium\nanomaly:\n  type: first_seen\n  rules: [any_call]\n  group-by: [userIdentity|principal]\n  fields: [awsRegion]\n  history: 30d\n  learning: 7d\n";

const DELETES: &str = "title: Deletes\nname: deletes\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventName: DeleteObject\n  condition: selection\n";

const DELETE_BURST: &str = "title: Burst of deletions\nid: delete-burst\nlevel: high\nanomaly:\n  type: rate\n  rules: [deletes]\n  group-by: [userIdentity|principal]\n  bucket: 10m\n  history: 14d\n  learning: 7d\n  threshold: {factor: 10, min: 200}\n";

fn rules(texts: &[&str]) -> Arc<RuleSet> {
    let files: Vec<RuleFile> = texts
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
    Arc::new(set)
}

fn engine(texts: &[&str]) -> Engine {
    Engine::new(rules(texts), EngineConfig::default())
}

/// A call by `who` (a user, or `role/NAME` for a role session) at `time` ms.
fn call(who: &str, name: &str, region: &str, time: i64, id: u64) -> String {
    let identity = match who.strip_prefix("role/") {
        Some(role) => format!(
            r#"{{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/{role}/session-{id}","principalId":"AROAEXAMPLE:session-{id}","sessionContext":{{"sessionIssuer":{{"type":"Role","arn":"arn:aws:iam::111122223333:role/{role}"}}}}}}"#
        ),
        None => format!(
            r#"{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/{who}","principalId":"AIDA{who}"}}"#
        ),
    };
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{identity},"eventTime":"{}","eventSource":"s3.amazonaws.com","eventName":"{name}","awsRegion":"{region}","sourceIPAddress":"203.0.113.9","userAgent":"aws-cli/2","eventID":"e-{id}","recipientAccountId":"111122223333"}}"#,
        format_time_ms(time).unwrap()
    )
}

fn feed(engine: &mut Engine, raw: &str) -> Vec<Alert> {
    let logsource = LogSource::cloudtrail();
    engine
        .process(&EventInput {
            raw,
            format: Format::CloudTrail,
            logsource: &logsource,
            source: Some("test"),
            origin: None,
            time_hint_ms: None,
            dedup_id: None,
            reread_from: None,
        })
        .unwrap()
        .alerts
}

fn at(text: &str) -> i64 {
    parse_time_ms(text).unwrap()
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

#[test]
fn a_new_region_alerts_once_after_learning_and_again_after_history() {
    let mut e = engine(&[ANY_CALL, NEW_REGION]);
    let start = at("2026-09-01T00:00:00Z");
    let mut id = 0;
    // Ten days in us-east-1, hourly.
    for hour in 0..240 {
        id += 1;
        let alerts = feed(
            &mut e,
            &call("alice", "ListBuckets", "us-east-1", start + hour * HOUR, id),
        );
        assert!(alerts.is_empty(), "its own Region never alerts");
    }
    let first = feed(
        &mut e,
        &call("alice", "ListBuckets", "eu-west-3", start + 10 * DAY, 1000),
    );
    assert_eq!(first.len(), 1);
    let alert = &first[0];
    assert_eq!(alert.kind, AlertKind::Anomaly);
    let info = alert.anomaly.as_ref().unwrap();
    assert_eq!(info.kind, "first_seen");
    assert_eq!(info.new_value["awsRegion"], "eu-west-3");
    assert_eq!(
        info.group["userIdentity|principal"],
        "arn:aws:iam::111122223333:user/alice"
    );
    assert_eq!(info.history_since.as_deref(), Some("2026-09-01T00:00:00Z"));
    assert!(alert.dedup_key.contains("eu-west-3"), "{}", alert.dedup_key);
    assert!(alert.rule.id == "new-region" && !alert.events.is_empty());
    let second = feed(
        &mut e,
        &call(
            "alice",
            "ListBuckets",
            "eu-west-3",
            start + 10 * DAY + HOUR,
            1001,
        ),
    );
    assert!(second.is_empty(), "the value is known now");
    // Thirty-one days later, still busy in us-east-1, eu-west-3 is new again.
    for day in 11..42 {
        id += 1;
        feed(
            &mut e,
            &call("alice", "ListBuckets", "us-east-1", start + day * DAY, id),
        );
    }
    let again = feed(
        &mut e,
        &call("alice", "ListBuckets", "eu-west-3", start + 42 * DAY, 2000),
    );
    assert_eq!(
        again.len(),
        1,
        "unused for longer than history, it is new again"
    );
}

#[test]
fn a_principal_younger_than_learning_does_not_alert() {
    let mut e = engine(&[ANY_CALL, NEW_REGION]);
    let start = at("2026-09-01T00:00:00Z");
    for hour in 0..48 {
        feed(
            &mut e,
            &call(
                "bob",
                "ListBuckets",
                "us-east-1",
                start + hour * HOUR,
                hour as u64,
            ),
        );
    }
    let alerts = feed(
        &mut e,
        &call("bob", "ListBuckets", "eu-west-3", start + 2 * DAY, 500),
    );
    assert!(alerts.is_empty(), "two days of history are not enough");
    // Sessions of one role are one principal: their history adds up.
    for day in 0..8 {
        feed(
            &mut e,
            &call(
                "role/deployer",
                "ListBuckets",
                "us-east-1",
                start + day * DAY,
                600 + day as u64,
            ),
        );
    }
    let role = feed(
        &mut e,
        &call(
            "role/deployer",
            "ListBuckets",
            "ap-south-1",
            start + 8 * DAY,
            700,
        ),
    );
    assert_eq!(role.len(), 1);
    assert_eq!(
        role[0].anomaly.as_ref().unwrap().group["userIdentity|principal"],
        "arn:aws:iam::111122223333:role/deployer"
    );
}

/// Steady `per_bucket` deletions every 10 minutes for 14 days, from `start`.
fn steady(e: &mut Engine, who: &str, per_bucket: i64, start: i64, id: &mut u64) -> usize {
    let mut alerts = 0;
    let bucket = 10 * 60_000;
    for b in 0..(14 * DAY / bucket) {
        for i in 0..per_bucket {
            *id += 1;
            let time = start + b * bucket + i * (bucket / per_bucket);
            alerts += feed(e, &call(who, "DeleteObject", "us-east-1", time, *id)).len();
        }
    }
    alerts
}

#[test]
fn a_burst_over_the_baseline_alerts_once_and_a_busy_principal_does_not() {
    let mut e = engine(&[DELETES, DELETE_BURST]);
    let start = at("2026-09-01T00:00:00Z");
    let mut id = 0;
    assert_eq!(steady(&mut e, "carol", 5, start, &mut id), 0);
    // 2,000 deletions within ten minutes, across two buckets.
    let burst = start + 14 * DAY + 5 * 60_000;
    let mut alerts = Vec::new();
    for i in 0..2000 {
        id += 1;
        alerts.extend(feed(
            &mut e,
            &call("carol", "DeleteObject", "us-east-1", burst + i * 300, id),
        ));
    }
    assert_eq!(
        alerts.len(),
        1,
        "one alert for the burst, not one per bucket"
    );
    let info = alerts[0].anomaly.as_ref().unwrap();
    assert_eq!(info.kind, "rate");
    assert_eq!(
        info.count,
        Some(200),
        "it alerts as the bucket reaches the floor"
    );
    assert!((info.baseline_mean.unwrap() - 5.0).abs() < 0.01, "{info:?}");
    assert_eq!(info.bucket_seconds, Some(600));
    // After a quiet bucket, a new burst alerts again.
    let later = burst + DAY;
    let mut again = 0;
    for i in 0..300 {
        id += 1;
        again += feed(
            &mut e,
            &call("carol", "DeleteObject", "us-east-1", later + i * 100, id),
        )
        .len();
    }
    assert_eq!(again, 1);

    // A principal whose normal is 3,000 a bucket: 2,000 is nothing.
    let mut busy = engine(&[DELETES, DELETE_BURST]);
    let mut id = 0;
    let bucket = 10 * 60_000;
    // A busy bucket twice a day for eight days (enough to learn), then the same burst.
    let mut quiet = 0;
    for h in (0..(8 * 24)).step_by(12) {
        for i in 0..3000 {
            id += 1;
            quiet += feed(
                &mut busy,
                &call(
                    "dave",
                    "DeleteObject",
                    "us-east-1",
                    start + h * HOUR + i * (bucket / 3000),
                    id,
                ),
            )
            .len();
        }
    }
    assert_eq!(quiet, 0);
    let mut loud = 0;
    for i in 0..2000 {
        id += 1;
        loud += feed(
            &mut busy,
            &call("dave", "DeleteObject", "us-east-1", burst + i * 300, id),
        )
        .len();
    }
    assert_eq!(loud, 0);
}

#[test]
fn a_burst_from_a_principal_younger_than_learning_does_not_alert() {
    let mut e = engine(&[DELETES, DELETE_BURST]);
    let start = at("2026-09-01T00:00:00Z");
    let mut alerts = 0;
    for i in 0..2000 {
        alerts += feed(
            &mut e,
            &call(
                "erin",
                "DeleteObject",
                "us-east-1",
                start + i * 300,
                i as u64,
            ),
        )
        .len();
    }
    assert_eq!(alerts, 0);
}

#[test]
fn state_saved_between_history_and_burst_gives_the_same_alerts() {
    let set = rules(&[ANY_CALL, NEW_REGION, DELETES, DELETE_BURST]);
    let start = at("2026-09-01T00:00:00Z");
    let history: Vec<String> = (0..(14 * 24 * 6))
        .map(|b| {
            call(
                "frank",
                "DeleteObject",
                "us-east-1",
                start + b * 600_000,
                b as u64,
            )
        })
        .collect();
    let attack: Vec<String> = (0..400)
        .map(|i| {
            call(
                "frank",
                "DeleteObject",
                "eu-west-3",
                start + 14 * DAY + i * 100,
                100_000 + i as u64,
            )
        })
        .collect();
    let keys =
        |alerts: Vec<Alert>| -> Vec<String> { alerts.into_iter().map(|a| a.dedup_key).collect() };

    let mut straight = Engine::new(Arc::clone(&set), EngineConfig::default());
    for raw in &history {
        feed(&mut straight, raw);
    }
    let expected: Vec<String> = attack
        .iter()
        .flat_map(|raw| keys(feed(&mut straight, raw)))
        .collect();
    assert_eq!(expected.len(), 2, "a new Region and a burst: {expected:?}");

    let mut before = Engine::new(Arc::clone(&set), EngineConfig::default());
    before.track_for_persistence();
    for raw in &history {
        feed(&mut before, raw);
    }
    // Through JSON, as the state store keeps it.
    let saved: Vec<(String, u64, String)> = before
        .take_anomaly_changes()
        .into_iter()
        .map(|c| {
            (
                c.rule_id,
                c.group,
                serde_json::to_string(&c.state.unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(saved.len(), 2);
    let mut after = Engine::new(Arc::clone(&set), EngineConfig::default());
    for (rule, group, state) in saved {
        assert!(after.restore_anomaly(&rule, group, serde_json::from_str(&state).unwrap()));
    }
    let restarted: Vec<String> = attack
        .iter()
        .flat_map(|raw| keys(feed(&mut after, raw)))
        .collect();
    assert_eq!(restarted, expected);
}

#[test]
fn bounds_evict_and_count() {
    let set = rules(&[ANY_CALL, NEW_REGION]);
    let limits = super::Limits {
        max_groups: 100,
        max_values: 3,
    };
    let mut e = Engine::new(
        set,
        EngineConfig {
            anomaly: limits,
            ..EngineConfig::default()
        },
    );
    let start = at("2026-09-01T00:00:00Z");
    for user in 0..250 {
        feed(
            &mut e,
            &call(
                &format!("u{user}"),
                "ListBuckets",
                "us-east-1",
                start + user,
                user as u64,
            ),
        );
    }
    assert!(e.anomaly_groups() <= 100, "{}", e.anomaly_groups());
    assert!(e.anomaly_stats().evicted_groups >= 150);
    for (i, region) in ["eu-west-1", "eu-west-2", "eu-west-3", "eu-north-1"]
        .iter()
        .enumerate()
    {
        feed(
            &mut e,
            &call(
                "u249",
                "ListBuckets",
                region,
                start + DAY + i as i64,
                1000 + i as u64,
            ),
        );
    }
    assert_eq!(
        e.anomaly_stats().evicted_values,
        2,
        "five Regions, three kept"
    );
}

#[test]
fn anomaly_documents_are_checked_when_loaded() {
    let bad = [
        (
            "anomaly:\n  type: sometimes\n  rules: [any_call]\n  group-by: [a]\n  history: 1d\n",
            "unknown anomaly type",
        ),
        (
            "anomaly:\n  type: first_seen\n  rules: [any_call]\n  group-by: [a]\n  history: 1d\n",
            "needs fields",
        ),
        (
            "anomaly:\n  type: rate\n  rules: [any_call]\n  group-by: [a]\n  bucket: 10m\n  history: 1d\n",
            "needs threshold",
        ),
        (
            "anomaly:\n  type: rate\n  rules: [any_call]\n  group-by: [a]\n  bucket: 10m\n  history: 5m\n  threshold: {factor: 2, min: 1}\n",
            "longer than anomaly.bucket",
        ),
        (
            "anomaly:\n  type: first_seen\n  rules: [nothing]\n  group-by: [a]\n  fields: [b]\n  history: 1d\n",
            "not loaded",
        ),
        (
            "anomaly:\n  type: first_seen\n  rules: [any_call]\n  group-by: [a|shape]\n  fields: [b]\n  history: 1d\n",
            "unknown transform",
        ),
        (
            "anomaly:\n  type: first_seen\n  rules: [any_call]\n  group-by: [a]\n  fields: [b]\n  history: 1d\n  windows: 3\n",
            "unknown key anomaly.windows",
        ),
    ];
    for (body, expected) in bad {
        let text = format!("title: T\nid: t\n{body}");
        let files = [
            RuleFile {
                origin: "a.yml".into(),
                text: ANY_CALL.into(),
                builtin: false,
            },
            RuleFile {
                origin: "b.yml".into(),
                text,
                builtin: false,
            },
        ];
        let set = RuleSet::load(&files, &LoadOptions::default());
        assert_eq!(set.errors.len(), 1, "{body}");
        assert!(
            set.errors[0].message.contains(expected),
            "{}",
            set.errors[0]
        );
        assert!(
            set.errors[0].to_string().starts_with("b.yml:"),
            "{}",
            set.errors[0]
        );
    }
    let set = rules(&[ANY_CALL, NEW_REGION]);
    assert!(
        !set.rules[0].alerts,
        "a base rule feeds the anomaly, it does not alert"
    );
    let infos = set.infos();
    assert!(
        infos
            .iter()
            .any(|i| i.id == "new-region" && i.kind == "first_seen")
    );
}
