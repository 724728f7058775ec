//! Delivery rounds against a real outbox and scripted sinks.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;
use crate::alerts::route::Route;
use crate::alerts::sinks::{Outcomes, SinkError};
use crate::alerts::testing::alert;
use crate::aws::retry::ErrorClass;
use crate::telemetry::Metrics;

/// A sink that answers from a script (then accepts), and records what it got.
struct Scripted {
    name: &'static str,
    route: Route,
    per_minute: Option<u32>,
    script: Mutex<VecDeque<Outcome>>,
    got: Mutex<Vec<String>>,
}

impl Scripted {
    fn new(name: &'static str, script: Vec<Outcome>) -> Scripted {
        Scripted {
            name,
            route: Route::all(),
            per_minute: None,
            script: Mutex::new(script.into()),
            got: Mutex::new(Vec::new()),
        }
    }
}

impl Sink for std::sync::Arc<Scripted> {
    fn name(&self) -> &str {
        self.name
    }
    fn route(&self) -> std::sync::Arc<Route> {
        std::sync::Arc::new(self.route.clone())
    }
    fn per_minute(&self) -> Option<u32> {
        self.per_minute
    }
    fn deliver<'a>(&'a self, alerts: &'a [&'a Alert]) -> Outcomes<'a> {
        Box::pin(async move {
            let mut out = Vec::new();
            for a in alerts {
                let outcome = self.script.lock().unwrap().pop_front().unwrap_or(Ok(()));
                if outcome.is_ok() {
                    self.got.lock().unwrap().push(a.id.clone().unwrap());
                }
                out.push(outcome);
            }
            out
        })
    }
}

fn transient() -> Outcome {
    Err(SinkError {
        message: "service unavailable".to_owned(),
        class: ErrorClass::Transient,
        refused: false,
    })
}

fn refused() -> Outcome {
    Err(SinkError {
        message: "invalid parameter".to_owned(),
        class: ErrorClass::Permanent,
        refused: true,
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    delivery: Delivery,
    metrics: Metrics,
}

fn fixture(sinks: Vec<Box<dyn Sink>>, alerts: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let state = StateStore::open(&dir.path().join("state.redb")).unwrap();
    let keys = outbox::Keys::default();
    state
        .write(|txn| {
            for i in 0..alerts {
                outbox::stage(txn, &keys.next(1), &alert(&format!("r{i}")), 1)?;
            }
            Ok(())
        })
        .unwrap();
    let metrics = Metrics::new().unwrap();
    Fixture {
        _dir: dir,
        delivery: Delivery {
            state,
            metrics: metrics.alerts.clone(),
            notify: Arc::new(Notify::new()),
            sinks,
        },
        metrics,
    }
}

fn pending(f: &Fixture) -> usize {
    outbox::pending(&f.delivery.state, 1000).unwrap().len()
}

#[tokio::test]
async fn a_failing_sink_does_not_make_the_others_send_twice() {
    let good = Arc::new(Scripted::new("good", vec![]));
    let flaky = Arc::new(Scripted::new("flaky", vec![transient(), transient()]));
    let f = fixture(vec![Box::new(good.clone()), Box::new(flaky.clone())], 2);
    let mut states = f.delivery.states();

    f.delivery.round(&mut states).await.unwrap();
    assert_eq!(good.got.lock().unwrap().len(), 2);
    assert!(flaky.got.lock().unwrap().is_empty());
    assert_eq!(pending(&f), 2, "kept until every sink has them");
    assert!(states[1].retry_at.is_some(), "the failing sink backs off");

    // Its wait is not over: nothing is tried.
    f.delivery.round(&mut states).await.unwrap();
    assert!(flaky.got.lock().unwrap().is_empty());

    states[1].retry_at = None;
    f.delivery.round(&mut states).await.unwrap();
    assert_eq!(
        good.got.lock().unwrap().len(),
        2,
        "never twice to the sink that took them"
    );
    assert_eq!(flaky.got.lock().unwrap().len(), 2);
    assert_eq!(pending(&f), 0);
    assert_eq!(
        f.metrics
            .alerts
            .delivered
            .with_label_values(&["good"])
            .get(),
        2
    );
    assert_eq!(
        f.metrics
            .alerts
            .delivered
            .with_label_values(&["flaky"])
            .get(),
        2
    );
    assert_eq!(
        f.metrics.alerts.failed.with_label_values(&["flaky"]).get(),
        2
    );
    assert_eq!(f.metrics.alerts.outbox_depth.get(), 0);
}

#[tokio::test]
async fn an_alert_refused_three_times_is_given_up_for_that_sink_and_counted() {
    let picky = Arc::new(Scripted::new(
        "picky",
        vec![refused(), refused(), refused()],
    ));
    let f = fixture(vec![Box::new(picky.clone())], 1);
    let mut states = f.delivery.states();
    for expected in [1, 1, 0] {
        f.delivery.round(&mut states).await.unwrap();
        assert_eq!(pending(&f), expected);
    }
    assert!(picky.got.lock().unwrap().is_empty());
    assert_eq!(
        f.metrics
            .alerts
            .undeliverable
            .with_label_values(&["picky"])
            .get(),
        1
    );
    assert!(
        states[0].retry_at.is_none(),
        "a refusal is about the alert, not the sink"
    );
}

#[tokio::test]
async fn over_the_rate_limit_alerts_wait_in_the_outbox() {
    let mut slow = Scripted::new("slow", vec![]);
    slow.per_minute = Some(2);
    let slow = Arc::new(slow);
    let f = fixture(vec![Box::new(slow.clone())], 5);
    let mut states = f.delivery.states();
    f.delivery.round(&mut states).await.unwrap();
    assert_eq!(slow.got.lock().unwrap().len(), 2);
    assert_eq!(pending(&f), 3);
    assert_eq!(
        f.metrics
            .alerts
            .rate_limited
            .with_label_values(&["slow"])
            .get(),
        3
    );
    // Right away there is no allowance left: the next round sends nothing.
    let round = f.delivery.round(&mut states).await.unwrap();
    assert!(!round.progress);
    assert_eq!(slow.got.lock().unwrap().len(), 2);
    assert_eq!(pending(&f), 3);
}

#[tokio::test]
async fn a_sink_that_is_down_never_holds_back_the_others_and_catches_up_with_none_twice() {
    let healthy = Arc::new(Scripted::new("healthy", vec![]));
    // Denied for as long as the test wants: every call fails.
    let denied = Arc::new(Scripted::new("denied", vec![transient(); 100_000]));
    let f = fixture(
        vec![Box::new(healthy.clone()), Box::new(denied.clone())],
        2_000,
    );
    let mut states = f.delivery.states();
    for _ in 0..10 {
        // The denied sink's wait is over each round; it fails again.
        states[1].retry_at = None;
        f.delivery.round(&mut states).await.unwrap();
    }
    assert_eq!(
        healthy.got.lock().unwrap().len(),
        2_000,
        "the healthy topic got every alert while the other was down"
    );
    assert!(denied.got.lock().unwrap().is_empty());
    assert_eq!(pending_all(&f), 2_000, "kept for the denied sink");
    // It comes back and catches up.
    denied.script.lock().unwrap().clear();
    for _ in 0..10 {
        states[1].retry_at = None;
        f.delivery.round(&mut states).await.unwrap();
    }
    assert_eq!(pending_all(&f), 0);
    for sink in [&healthy, &denied] {
        let got = sink.got.lock().unwrap();
        let unique: std::collections::BTreeSet<_> = got.iter().collect();
        assert_eq!((got.len(), unique.len()), (2_000, 2_000), "{}", sink.name);
    }
}

fn pending_all(f: &Fixture) -> usize {
    outbox::pending(&f.delivery.state, usize::MAX)
        .unwrap()
        .len()
}
