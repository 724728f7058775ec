//! The stage with a real state store: outcomes committed before events are
//! acknowledged, and state that survives a restart.

use std::sync::Arc;

use super::*;
use crate::detection::EngineConfig;
use crate::detection::event::Format;
use crate::detection::sigma::document::LogSource;
use crate::detection::sigma::ruleset::{LoadOptions, RuleFile, RuleSet};
use crate::pipeline::{Ack, batch, channel};
use crate::telemetry::Metrics;

const RULES: &str = "title: User created\nid: create-user\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventName: CreateUser\n  condition: selection\nlevel: high\n---\ntitle: Failed login\nid: fail\nname: failed\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventName: ConsoleLogin\n  condition: selection\n---\ntitle: Three failed logins\nid: three\ncorrelation:\n  type: event_count\n  rules: [failed]\n  group-by: [sourceIPAddress]\n  timespan: 1h\n  condition: {gte: 3}\nlevel: high\n";

fn stage(state: &StateStore, metrics: &Metrics) -> (DetectionStage, crate::pipeline::EventSender) {
    let set = RuleSet::load(
        &[RuleFile {
            origin: "r.yml".to_owned(),
            text: RULES.to_owned(),
            builtin: false,
        }],
        &LoadOptions::default(),
    );
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let engine = Engine::new(
        Arc::new(set),
        EngineConfig {
            dedup: Some((3_600_000, 10_000)),
            ..EngineConfig::default()
        },
    );
    let (tx, rx) = channel(64, 64 * 1024 * 1024, metrics.pipeline.clone());
    let ctx = StageContext {
        state: state.clone(),
        metrics: metrics.detection.clone(),
        outbox: Arc::new(Notify::new()),
        keys: Arc::new(outbox::Keys::default()),
        // Every alert its own window: these tests count what detection raised.
        noise: Arc::new(NoiseControl::new(
            &crate::config::AlertsConfig {
                dedup_window: Duration::ZERO,
                aggregate: false,
                max_windows: 1000,
                file: None,
                sns: Vec::new(),
                suppress: Vec::new(),
            },
            metrics.alerts.clone(),
        )),
        dedup_window: Duration::from_secs(3600),
        correlation_retention: Duration::from_secs(7200),
        reload: None,
        touches: None,
        response: None,
    };
    (DetectionStage::new(rx, engine, ctx), tx)
}

fn event(raw: String, ack: Ack) -> Event {
    Event {
        source: Arc::from("test"),
        origin: "test#1".to_owned(),
        raw,
        format: Format::CloudTrail,
        logsource: Arc::new(LogSource::cloudtrail()),
        time_hint_ms: None,
        dedup_id: None,
        reread_from: None,
        ack,
    }
}

fn record(id: &str, name: &str, minute: u32) -> String {
    format!(
        r#"{{"eventTime":"2026-11-01T10:{minute:02}:00Z","eventSource":"x.amazonaws.com","eventName":"{name}","sourceIPAddress":"198.51.100.7","eventID":"{id}","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::1:user/u"}}}}"#
    )
}

fn run_batch(state: &StateStore, metrics: &Metrics, events: Vec<String>) -> (bool, StageSummary) {
    run_events(state, metrics, events, event)
}

/// Restores a stage from `state`, runs `events` (made into pipeline events
/// by `make`) through it to the end, and says whether all were acknowledged.
fn run_events(
    state: &StateStore,
    metrics: &Metrics,
    events: Vec<String>,
    make: impl Fn(String, Ack) -> Event,
) -> (bool, StageSummary) {
    let (mut stage, tx) = stage(state, metrics);
    stage.restore().unwrap();
    let (batch, pending) = batch();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        for raw in events {
            tx.send(make(raw, batch.token())).await.unwrap();
        }
    });
    drop(batch);
    drop(tx);
    let summary = stage.run().unwrap();
    (runtime.block_on(pending.wait()), summary)
}

#[test]
fn alerts_are_in_the_outbox_before_the_events_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateStore::open(&dir.path().join("s.redb")).unwrap();
    let metrics = Metrics::new().unwrap();
    let (done, summary) = run_batch(
        &state,
        &metrics,
        vec![
            record("a", "CreateUser", 0),
            "{broken".to_owned(),
            record("b", "ListUsers", 1),
        ],
    );
    assert!(done, "every event of the batch was acknowledged");
    assert_eq!(
        summary,
        StageSummary {
            events: 3,
            alerts: 1
        }
    );
    let pending = outbox::pending(&state, 10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.alert.rule.id, "create-user");
    let rejected = metrics
        .detection
        .rejected
        .with_label_values(&["test", "invalid_json"])
        .get();
    assert_eq!(rejected, 1);
    assert_eq!(
        metrics
            .detection
            .alerts
            .with_label_values(&["create-user", "high"])
            .get(),
        1
    );
}

#[test]
fn dedup_and_correlation_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let metrics = Metrics::new().unwrap();
    {
        let state = StateStore::open(&path).unwrap();
        let (done, _) = run_batch(
            &state,
            &metrics,
            vec![
                record("l1", "ConsoleLogin", 0),
                record("l2", "ConsoleLogin", 1),
                record("u1", "CreateUser", 2),
            ],
        );
        assert!(done);
    }
    let state = StateStore::open(&path).unwrap();
    let before = outbox::pending(&state, 10).unwrap().len();
    // A replayed event is a duplicate; a third login completes the correlation.
    let (done, summary) = run_batch(
        &state,
        &metrics,
        vec![
            record("u1", "CreateUser", 2),
            record("l3", "ConsoleLogin", 3),
        ],
    );
    assert!(done);
    assert_eq!(summary.alerts, 1);
    let pending = outbox::pending(&state, 10).unwrap();
    assert_eq!(pending.len(), before + 1);
    assert!(pending.iter().any(|(_, e)| e.alert.rule.id == "three"));
    assert_eq!(
        metrics
            .detection
            .duplicates
            .with_label_values(&["test"])
            .get(),
        1
    );
}

#[test]
fn after_downtime_the_re_read_overlap_is_still_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let metrics = Metrics::new().unwrap();
    let at = |id: &str, name: &str, time: &str| {
        format!(
            r#"{{"eventTime":"{time}","eventSource":"iam.amazonaws.com","eventName":"{name}","eventID":"{id}","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::1:user/u"}}}}"#
        )
    };
    // A polled source read from 09:45; the next poll, whenever it comes,
    // reads from 09:45 again (its checkpoint minus the lookback).
    let from = jiff::Timestamp::from_second(1_761_990_300).unwrap(); // 2025-11-01T09:45:00Z
    let polled = |raw: String, ack: Ack| {
        let mut e = event(raw, ack);
        e.reread_from = Some((Arc::from("us-east-1"), from.as_millisecond()));
        e
    };
    let run = |events: Vec<String>| {
        let state = StateStore::open(&path).unwrap();
        let (done, summary) = run_events(&state, &metrics, events, polled);
        assert!(done);
        summary
    };
    let first = run(vec![at("u1", "CreateUser", "2025-11-01T10:00:00Z")]);
    assert_eq!(first.alerts, 1);
    // Three hours later: LookupEvents returns the newest first, so event
    // time jumps past the dedup window before the overlap comes.
    let second = run(vec![
        at("n1", "ListUsers", "2025-11-01T13:00:00Z"),
        at("u1", "CreateUser", "2025-11-01T10:00:00Z"),
    ]);
    assert_eq!(second.alerts, 0, "the overlap alerted again");
    assert_eq!(
        metrics
            .detection
            .duplicates
            .with_label_values(&["test"])
            .get(),
        1
    );
}
