//! The queue loop against an in-memory queue that behaves like SQS (receive
//! counts, visibility), on paused time: transient failures never set a
//! message aside, permanent ones do at `max_attempts`, and a message that
//! killed the process is set aside before it is handled again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::aws::AwsError;
use crate::state::StateStore;
use crate::telemetry::{Metrics, Status};

struct Stored {
    id: String,
    body: String,
    receives: u32,
    visible_at: Instant,
    deleted: bool,
}

/// SQS in memory: a received message is hidden for its visibility timeout.
#[derive(Default)]
struct FakeQueue {
    messages: Mutex<Vec<Stored>>,
}

impl FakeQueue {
    fn with(ids: &[&str]) -> Arc<FakeQueue> {
        let queue = FakeQueue::default();
        for id in ids {
            queue.messages.lock().unwrap().push(Stored {
                id: (*id).to_owned(),
                body: format!("body of {id}"),
                receives: 0,
                visible_at: Instant::now(),
                deleted: false,
            });
        }
        Arc::new(queue)
    }

    /// The visibility timeouts of every message run out now, as after a crash.
    fn expire(&self) {
        for m in self.messages.lock().unwrap().iter_mut() {
            m.visible_at = Instant::now();
        }
    }

    fn deleted(&self, id: &str) -> bool {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.id == id && m.deleted)
    }
}

impl QueueApi for FakeQueue {
    async fn receive(
        &self,
        _queue_url: &str,
        max: i32,
        wait_seconds: i32,
        visibility_seconds: i32,
    ) -> Result<Vec<Message>, AwsError> {
        let until = Instant::now() + Duration::from_secs(u64::try_from(wait_seconds).unwrap());
        loop {
            let next = {
                let mut messages = self.messages.lock().unwrap();
                let now = Instant::now();
                let mut out = Vec::new();
                for m in messages.iter_mut().filter(|m| !m.deleted) {
                    if m.visible_at <= now && out.len() < usize::try_from(max).unwrap() {
                        m.receives += 1;
                        m.visible_at =
                            now + Duration::from_secs(u64::try_from(visibility_seconds).unwrap());
                        out.push(Message {
                            id: m.id.clone(),
                            receipt: m.id.clone(),
                            body: m.body.clone(),
                            receive_count: m.receives,
                        });
                    }
                }
                if !out.is_empty() {
                    return Ok(out);
                }
                messages
                    .iter()
                    .filter(|m| !m.deleted)
                    .map(|m| m.visible_at)
                    .min()
                    .map_or(until, |t| t.min(until))
            };
            if Instant::now() >= until {
                return Ok(Vec::new());
            }
            tokio::time::sleep_until(next.max(Instant::now() + Duration::from_millis(1))).await;
        }
    }

    async fn delete(&self, _queue_url: &str, receipt: &str) -> Result<(), AwsError> {
        for m in self.messages.lock().unwrap().iter_mut() {
            if m.id == receipt {
                m.deleted = true;
            }
        }
        Ok(())
    }

    async fn extend_visibility(
        &self,
        _queue_url: &str,
        receipt: &str,
        seconds: i32,
    ) -> Result<(), AwsError> {
        for m in self.messages.lock().unwrap().iter_mut() {
            if m.id == receipt {
                m.visible_at =
                    Instant::now() + Duration::from_secs(u64::try_from(seconds).unwrap());
            }
        }
        Ok(())
    }
}

struct Harness {
    ctx: SourceContext,
    metrics: Metrics,
    _dir: tempfile::TempDir,
}

fn harness(dir: tempfile::TempDir) -> Harness {
    let metrics = Metrics::new().unwrap();
    let state = StateStore::open(&dir.path().join("state.redb")).unwrap();
    // Nothing is sent in these tests; the receiver is dropped.
    let (events, _receiver) = crate::pipeline::channel(8, 1 << 20, metrics.pipeline.clone());
    let ctx = SourceContext {
        name: Arc::from("q"),
        kind: "s3_sqs",
        events,
        state,
        metrics: metrics.sources.clone(),
        rejected: metrics.detection.rejected.clone(),
        status: Status::new(metrics.ready.clone()),
        stop: CancellationToken::new(),
    };
    Harness {
        ctx,
        metrics,
        _dir: dir,
    }
}

fn settings(max_attempts: u32) -> QueueSettings {
    QueueSettings {
        queue_url: "q".to_owned(),
        max_attempts,
        visibility: Duration::from_secs(30),
    }
}

fn set_aside(ctx: &SourceContext) -> Vec<(String, SetAside)> {
    ctx.state
        .records(SET_ASIDE_NAMESPACE, SystemTime::now(), usize::MAX)
        .unwrap()
}

fn failures(h: &Harness, outcome: &str) -> u64 {
    h.metrics
        .sources
        .message_failures
        .with_label_values(&["q", outcome])
        .get()
}

fn transient() -> Outcome {
    Outcome::Transient {
        reason: "s3 GetObject failing (ServiceUnavailable, transient)".to_owned(),
        detail: "s3 GetObject failed (ServiceUnavailable, transient): arn:aws:... is down"
            .to_owned(),
    }
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_for_as_long_as_they_last_and_never_set_aside() {
    let h = harness(tempfile::tempdir().unwrap());
    let queue = FakeQueue::with(&["m1"]);
    let calls = Arc::new(AtomicU32::new(0));
    let seen_reason = Arc::new(Mutex::new(None));
    let (c, r) = (Arc::clone(&calls), Arc::clone(&seen_reason));
    // A 50-receive outage, far more than max_attempts, then S3 is back.
    run(
        h.ctx.clone(),
        Arc::clone(&queue),
        settings(2),
        move |ctx, _| {
            let (c, r) = (Arc::clone(&c), Arc::clone(&r));
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                if n == 10 {
                    *r.lock().unwrap() = ctx.status.readiness().waiting.get("source q").cloned();
                }
                if n <= 50 {
                    transient()
                } else {
                    ctx.stop.cancel();
                    Outcome::Done
                }
            }
        },
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 51);
    assert!(queue.deleted("m1"), "handled and deleted once S3 is back");
    assert!(
        set_aside(&h.ctx).is_empty(),
        "a passing failure never sets aside"
    );
    assert_eq!(failures(&h, "transient"), 50);
    assert_eq!(failures(&h, "permanent"), 0);
    assert_eq!(
        seen_reason.lock().unwrap().as_deref(),
        Some("retrying: s3 GetObject failing (ServiceUnavailable, transient)"),
        "not ready while it lasts, with a short reason and no AWS message"
    );
    assert!(h.ctx.status.readiness().ready, "ready again once handled");
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_message_is_not_an_attempt_and_permanent_failures_set_aside_at_max_attempts()
{
    let h = harness(tempfile::tempdir().unwrap());
    let queue = FakeQueue::with(&["m1"]);
    let script = Arc::new(Mutex::new(VecDeque::from([
        Outcome::Interrupted("stopping".to_owned()),
        Outcome::Failed("s3://b/k#3: truncated gzip".to_owned()),
        Outcome::Interrupted("stopping".to_owned()),
        transient(),
        Outcome::Failed("s3://b/k#3: truncated gzip".to_owned()),
        Outcome::Failed("s3://b/k#3: truncated gzip".to_owned()),
    ])));
    let s = Arc::clone(&script);
    run(
        h.ctx.clone(),
        Arc::clone(&queue),
        settings(3),
        move |ctx, _| {
            let s = Arc::clone(&s);
            async move {
                let mut s = s.lock().unwrap();
                let outcome = s.pop_front().expect("handled no more than scripted");
                if s.is_empty() {
                    ctx.stop.cancel();
                }
                outcome
            }
        },
    )
    .await;
    let aside = set_aside(&h.ctx);
    assert_eq!(aside.len(), 1);
    assert_eq!(aside[0].0, "q/m1");
    assert_eq!(
        aside[0].1.reason,
        "failed 3 times; last: s3://b/k#3: truncated gzip"
    );
    assert_eq!(aside[0].1.receive_count, 6, "SQS counted every receive");
    assert!(queue.deleted("m1"));
    assert_eq!(failures(&h, "permanent"), 3);
    assert_eq!(failures(&h, "interrupted"), 2);
    let left: Vec<(String, Attempts)> = h
        .ctx
        .state
        .records(ATTEMPTS_NAMESPACE, SystemTime::now(), usize::MAX)
        .unwrap();
    assert!(left.is_empty(), "the count leaves with the message");
}

#[tokio::test(start_paused = true)]
async fn a_message_that_killed_the_process_is_set_aside_before_it_is_handled_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    // "m1" kills the process whenever it is handled; "m2" arrives in the same batch.
    let queue = FakeQueue::with(&["m1", "m2"]);
    let handled: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut dir = Some(dir);
    for _crash in 0..2 {
        let h = harness(dir.take().unwrap_or_else(|| tempfile::tempdir().unwrap()));
        let started = Arc::new(tokio::sync::Notify::new());
        let (st, hd) = (Arc::clone(&started), Arc::clone(&handled));
        let task = tokio::spawn(run(
            h.ctx.clone(),
            Arc::clone(&queue),
            settings(2),
            move |_, message| {
                let (st, hd) = (Arc::clone(&st), Arc::clone(&hd));
                async move {
                    hd.lock().unwrap().push(message.id.clone());
                    st.notify_one();
                    std::future::pending::<Outcome>().await
                }
            },
        ));
        started.notified().await;
        // The process dies: nothing is settled, the file lock goes with it.
        task.abort();
        let _ = task.await;
        let Harness { ctx, _dir, .. } = h;
        drop(ctx);
        dir = Some(_dir);
        queue.expire();
    }
    assert_eq!(*handled.lock().unwrap(), ["m1", "m1"]);
    // The next start: m1 is set aside unhandled, m2 is handled.
    let h = harness(dir.take().unwrap());
    assert_eq!(h.ctx.state.path(), path.join("state.redb"));
    let hd = Arc::clone(&handled);
    run(
        h.ctx.clone(),
        Arc::clone(&queue),
        settings(2),
        move |ctx, message| {
            let hd = Arc::clone(&hd);
            async move {
                hd.lock().unwrap().push(message.id.clone());
                ctx.stop.cancel();
                Outcome::Done
            }
        },
    )
    .await;
    assert_eq!(*handled.lock().unwrap(), ["m1", "m1", "m2"]);
    let aside = set_aside(&h.ctx);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(aside[0].0, "q/m1");
    assert!(
        aside[0].1.reason.contains("failed 2 times"),
        "{}",
        aside[0].1.reason
    );
    assert!(
        aside[0]
            .1
            .reason
            .contains("the process ended while handling it")
    );
    assert!(queue.deleted("m1") && queue.deleted("m2"));
    assert_eq!(
        failures(&h, "crash"),
        1,
        "this process counted the last crash"
    );
}

#[test]
fn the_set_aside_store_is_bounded_and_drops_the_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateStore::open(&dir.path().join("s.redb")).unwrap();
    let message = |i: usize, bytes: usize| SetAside {
        source: "q".to_owned(),
        message_id: format!("m{i}"),
        reason: "poison".to_owned(),
        receive_count: 1,
        at: i as i64,
        body: "x".repeat(bytes),
    };
    let put = |key: &str, m: SetAside| {
        state
            .write(|txn| txn.put_record(SET_ASIDE_NAMESPACE, key, &m, None))
            .unwrap();
    };
    // Bounds of 5 messages and 1,000 bytes work as the real ones do.
    let bounds = (5, 1_000);
    for i in 0..5 {
        put(&format!("q/m{i}"), message(i, 10));
    }
    // At the count bound, one more drops the oldest.
    let dropped = state.write(|txn| make_room(txn, 10, bounds)).unwrap();
    assert_eq!(dropped, ["q/m0"]);
    // Past the byte bound, as many of the oldest go as make room.
    put("q/big", message(100, 600));
    let dropped = state.write(|txn| make_room(txn, 500, bounds)).unwrap();
    assert_eq!(dropped, ["q/m1", "q/m2", "q/m3", "q/m4", "q/big"]);
    let dropped = state.write(|txn| make_room(txn, 10, bounds)).unwrap();
    assert!(dropped.is_empty());
}

#[tokio::test(start_paused = true)]
async fn every_message_of_a_batch_stays_hidden_until_it_is_settled() {
    let h = harness(tempfile::tempdir().unwrap());
    let queue = FakeQueue::with(&["m1", "m2", "m3", "m4", "m5"]);
    let handled = Arc::new(AtomicU32::new(0));
    let n = Arc::clone(&handled);
    let loop_ = run(
        h.ctx.clone(),
        Arc::clone(&queue),
        settings(3),
        move |ctx, message| {
            let n = Arc::clone(&n);
            async move {
                // The first message takes ten visibility timeouts to read.
                if message.id == "m1" {
                    tokio::time::sleep(Duration::from_secs(300)).await;
                }
                if n.fetch_add(1, Ordering::SeqCst) + 1 == 5 {
                    ctx.stop.cancel();
                }
                Outcome::Done
            }
        },
    );
    // Another reader of the same queue, looking while m1 is read.
    let spy = async {
        let mut seen = Vec::new();
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(29)).await;
            let got = queue.receive("q", 10, 0, 30).await.unwrap();
            seen.extend(got.into_iter().map(|m| m.id));
        }
        seen
    };
    let ((), seen) = tokio::join!(loop_, spy);
    assert_eq!(handled.load(Ordering::SeqCst), 5);
    assert!(
        seen.is_empty(),
        "messages waiting in the batch were handed to another reader: {seen:?}"
    );
    for id in ["m1", "m2", "m3", "m4", "m5"] {
        assert!(queue.deleted(id), "{id}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_end_of_a_two_hour_outage_is_noticed_within_twenty_seconds() {
    let h = harness(tempfile::tempdir().unwrap());
    let ids: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let queue = FakeQueue::with(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    let outage_ends = Instant::now() + Duration::from_secs(2 * 3600);
    let calls = Arc::new(AtomicU32::new(0));
    let first_done: Arc<Mutex<Option<Instant>>> = Arc::default();
    let done = Arc::new(AtomicU32::new(0));
    let (c, f, d) = (
        Arc::clone(&calls),
        Arc::clone(&first_done),
        Arc::clone(&done),
    );
    run(
        h.ctx.clone(),
        Arc::clone(&queue),
        settings(2),
        move |ctx, _| {
            let (c, f, d) = (Arc::clone(&c), Arc::clone(&f), Arc::clone(&d));
            async move {
                if Instant::now() < outage_ends {
                    c.fetch_add(1, Ordering::SeqCst);
                    return transient();
                }
                f.lock().unwrap().get_or_insert_with(Instant::now);
                if d.fetch_add(1, Ordering::SeqCst) + 1 == 10 {
                    ctx.stop.cancel();
                }
                Outcome::Done
            }
        },
    )
    .await;
    let recovered = first_done
        .lock()
        .unwrap()
        .expect("handled after the outage")
        - outage_ends;
    assert!(
        recovered <= Duration::from_secs(20),
        "handled {recovered:?} after the outage ended"
    );
    // One attempt per wait (10 to 20 s), not one per message of the batch.
    let attempts = calls.load(Ordering::SeqCst);
    assert!(
        attempts <= 2 * 3600 / 10 + 10,
        "{attempts} attempts in the outage"
    );
    assert!(set_aside(&h.ctx).is_empty());
    assert!(ids.iter().all(|id| queue.deleted(id)));
}
