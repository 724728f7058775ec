//! Noise control against a real state store: windows, summaries, suppressions.

use std::time::{Duration, SystemTime};

use super::*;
use crate::alerts::testing::alert;
use crate::config::{AlertsConfig, SuppressionConfig};
use crate::state::StateStore;
use crate::telemetry::Metrics;

fn config(window: Duration, aggregate: bool, max_windows: usize) -> AlertsConfig {
    AlertsConfig {
        dedup_window: window,
        aggregate,
        max_windows,
        file: None,
        sns: Vec::new(),
        suppress: Vec::new(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    state: StateStore,
    keys: outbox::Keys,
    metrics: Metrics,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let state = StateStore::open(&dir.path().join("state.redb")).unwrap();
    Fixture {
        _dir: dir,
        state,
        keys: outbox::Keys::default(),
        metrics: Metrics::new().unwrap(),
    }
}

fn admit(f: &Fixture, noise: &NoiseControl, a: &Alert, now: SystemTime) -> Verdict {
    let verdict = f
        .state
        .write(|txn| {
            let verdict = noise.admit(txn, a, now, &f.keys)?;
            if let Verdict::Deliver { .. } = verdict {
                outbox::stage(txn, &f.keys.next(millis(now)), a, millis(now))?;
            }
            Ok(verdict)
        })
        .unwrap();
    noise.count(a, verdict);
    verdict
}

fn staged(f: &Fixture) -> Vec<Alert> {
    outbox::pending(&f.state, 1000)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.alert)
        .collect()
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

#[test]
fn repeats_in_a_window_become_one_summary_with_their_count() {
    let f = fixture();
    let noise = NoiseControl::new(
        &config(Duration::from_secs(60), true, 100),
        f.metrics.alerts.clone(),
    );
    let first = alert("r1");
    assert_eq!(
        admit(&f, &noise, &first, at(0)),
        Verdict::Deliver { summarised: false }
    );
    for (i, ip) in ["10.0.0.1", "10.0.0.2", "10.0.0.1"].iter().enumerate() {
        let mut repeat = alert("r1");
        repeat.source_ip = Some((*ip).into());
        repeat.event_id = Some(format!("e-{}", i + 2).into());
        assert_eq!(
            admit(&f, &noise, &repeat, at(10 + i as u64)),
            Verdict::Repeat
        );
    }
    assert_eq!(staged(&f).len(), 1, "repeats stay out of the outbox");

    let early = f
        .state
        .write(|txn| noise.close_due(txn, at(59), &f.keys))
        .unwrap();
    assert_eq!(early.windows, 0, "a window stays open until its time");
    let closed = f
        .state
        .write(|txn| noise.close_due(txn, at(61), &f.keys))
        .unwrap();
    noise.count_closed(&closed);
    assert_eq!(closed.windows, 1);
    assert_eq!(closed.summaries, vec!["r1".to_owned()]);
    assert_eq!(closed.open, 0);

    let alerts = staged(&f);
    assert_eq!(alerts.len(), 2);
    let summary = &alerts[1];
    assert_eq!(summary.kind, AlertKind::Summary);
    let repeats = summary.repeats.as_ref().unwrap();
    assert_eq!(repeats.count, 3);
    assert_eq!(
        repeats.source_ips,
        vec!["10.0.0.1".to_owned(), "10.0.0.2".to_owned()]
    );
    assert_eq!(repeats.last_event_id.as_deref(), Some("e-4"));
    assert_eq!(f.metrics.alerts.repeats.with_label_values(&["r1"]).get(), 3);
    assert_eq!(
        f.metrics.alerts.summaries.with_label_values(&["r1"]).get(),
        1
    );

    // The next alert opens a fresh window and is delivered.
    assert_eq!(
        admit(&f, &noise, &alert("r1"), at(62)),
        Verdict::Deliver { summarised: false }
    );
}

#[test]
fn a_window_without_repeats_closes_silently_and_aggregate_off_sends_no_summary() {
    let f = fixture();
    let quiet = NoiseControl::new(
        &config(Duration::from_secs(60), false, 100),
        f.metrics.alerts.clone(),
    );
    admit(&f, &quiet, &alert("r1"), at(0));
    admit(&f, &quiet, &alert("r1"), at(1));
    admit(&f, &quiet, &alert("r2"), at(2));
    let closed = f
        .state
        .write(|txn| quiet.close_due(txn, at(100), &f.keys))
        .unwrap();
    assert_eq!(closed.windows, 2);
    assert!(closed.summaries.is_empty());
    assert_eq!(staged(&f).len(), 2, "one alert of each rule, no summary");
}

#[test]
fn an_expired_window_found_by_the_next_alert_is_summarised_first() {
    let f = fixture();
    let noise = NoiseControl::new(
        &config(Duration::from_secs(60), true, 100),
        f.metrics.alerts.clone(),
    );
    admit(&f, &noise, &alert("r1"), at(0));
    admit(&f, &noise, &alert("r1"), at(1));
    assert_eq!(
        admit(&f, &noise, &alert("r1"), at(70)),
        Verdict::Deliver { summarised: true }
    );
    let kinds: Vec<AlertKind> = staged(&f).iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        vec![AlertKind::Match, AlertKind::Summary, AlertKind::Match]
    );
    // The replaced window's due entry went with it: only the new one is left.
    let closed = f
        .state
        .write(|txn| noise.close_due(txn, at(200), &f.keys))
        .unwrap();
    assert_eq!((closed.windows, closed.open), (1, 0));
}

#[test]
fn past_max_windows_the_oldest_close_early_and_are_counted() {
    let f = fixture();
    let noise = NoiseControl::new(
        &config(Duration::from_secs(600), true, 2),
        f.metrics.alerts.clone(),
    );
    for (i, rule) in ["a", "b", "c", "d"].iter().enumerate() {
        admit(&f, &noise, &alert(rule), at(i as u64));
        admit(&f, &noise, &alert(rule), at(i as u64));
    }
    let closed = f
        .state
        .write(|txn| noise.close_due(txn, at(10), &f.keys))
        .unwrap();
    noise.count_closed(&closed);
    assert_eq!(closed.early, 2);
    assert_eq!(closed.summaries, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(closed.open, 2);
    assert_eq!(f.metrics.alerts.windows_closed_early.get(), 2);
    assert_eq!(f.metrics.alerts.windows.get(), 2);
}

#[test]
fn a_zero_window_delivers_everything_and_keeps_no_windows() {
    let f = fixture();
    let noise = NoiseControl::new(&config(Duration::ZERO, true, 100), f.metrics.alerts.clone());
    for i in 0..3 {
        assert_eq!(
            admit(&f, &noise, &alert("r1"), at(i)),
            Verdict::Deliver { summarised: false }
        );
    }
    assert_eq!(f.state.count(NAMESPACE).unwrap(), 0);
}

#[test]
fn suppressions_drop_alerts_until_they_expire_and_count_by_rule() {
    let f = fixture();
    let mut c = config(Duration::ZERO, true, 100);
    c.suppress.push(SuppressionConfig {
        reason: "CI creates users".to_owned(),
        rule: Some("r1".to_owned()),
        principal: Some("arn:aws:iam::*:role/ci-*".to_owned()),
        source_ip: None,
        account: None,
        user_agent: None,
        resource: None,
        expires: Some(jiff::Timestamp::try_from(at(100)).unwrap()),
    });
    let noise = NoiseControl::new(&c, f.metrics.alerts.clone());
    assert_eq!(
        admit(&f, &noise, &alert("r1"), at(0)),
        Verdict::Suppressed(0)
    );
    assert_eq!(
        admit(&f, &noise, &alert("r2"), at(0)),
        Verdict::Deliver { summarised: false }
    );
    let mut human = alert("r1");
    human.principal = Some("arn:aws:iam::123456789012:user/alice".into());
    assert_eq!(
        admit(&f, &noise, &human, at(0)),
        Verdict::Deliver { summarised: false }
    );
    assert_eq!(
        admit(&f, &noise, &alert("r1"), at(101)),
        Verdict::Deliver { summarised: false }
    );
    assert_eq!(
        f.metrics.alerts.suppressed.with_label_values(&["r1"]).get(),
        1
    );
}
