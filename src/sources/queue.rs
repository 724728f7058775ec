//! The SQS loop both queue sources share: long-poll for messages, hand each
//! to the source's handler, and only then delete it.
//!
//! Messages are received with a short visibility (`visibility_timeout`,
//! 20 s by default), and every message of the batch not yet settled is
//! extended on a heartbeat every third of it, so a large trail file is not
//! handed to a second reader meanwhile, while a message whose reader died
//! (kill -9, a lost connection) comes back within the visibility timeout.
//! What happens when handling does not finish depends on why, and only
//! failures of the message itself count:
//!
//! - **Transient** (throttling, 5xx, timeouts, connection failures): the
//!   message and the rest of its batch come back after a capped, jittered
//!   backoff (2 s up to 20 s), and the source waits as long before it
//!   receives again, for as long as it takes; the source is not ready, with
//!   a short reason, until a message is handled again. Never counted. The
//!   cap keeps the end of an outage noticed within seconds.
//! - **Interrupted** (shutdown in the middle of a file): the message is made
//!   visible again at once for the next process. Never counted.
//! - **Permanent** (a malformed file, access denied to that object, no such
//!   key): counted in the state store (namespace `queue-attempts`, keyed by
//!   source and message id), so the count survives restarts.
//! - **Crash**: before handling a message its id is written to the
//!   checkpoint `source:NAME:in-hand`, and cleared when it is settled. A
//!   marker found at start means the process died handling that message
//!   (abort, out of memory, kill -9), which counts as an attempt.
//!
//! The count is checked *before* handling: a message with `max_attempts`
//! counted failures is set aside (kept in the state store with why, counted,
//! logged, and deleted from the queue) without being handled again, so an
//! input that kills the process cannot crash-loop it, and one poison message
//! cannot block the rest. SQS's ApproximateReceiveCount is not used for
//! this: it grows with every receive, transient failures included.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::api::{Message, QueueApi};
use super::context::{SourceContext, blocking, unix_seconds};
use crate::aws::retry::Backoff;
use crate::state::StateError;

/// State store namespace of messages set aside.
pub const SET_ASIDE_NAMESPACE: &str = "set-aside";

/// State store namespace of the failures counted against each message.
pub const ATTEMPTS_NAMESPACE: &str = "queue-attempts";

/// Checkpoint part (`source:NAME:in-hand`) naming the message being handled.
pub const IN_HAND: &str = "in-hand";

/// Set-aside messages are kept this long for someone to look at.
const SET_ASIDE_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// Messages kept set aside at most, over all sources; past it the oldest go.
pub const MAX_SET_ASIDE: usize = 1_000;

/// Bytes of message bodies kept set aside at most; past it the oldest go.
pub const MAX_SET_ASIDE_BYTES: usize = 64 * 1024 * 1024;

/// A message's failure count is kept as long as SQS can keep the message.
const ATTEMPTS_RETENTION: Duration = Duration::from_secs(14 * 86_400);

/// The first wait before a transiently failed message is seen again.
const TRANSIENT_FIRST: Duration = Duration::from_secs(2);

/// The longest wait before a transiently failed message is seen again:
/// short, so that the end of an outage is noticed within seconds.
const TRANSIENT_CAP: Duration = Duration::from_secs(20);

/// What the log says a crash was.
const CRASHED: &str = "the process ended while handling it (abort, out of memory or kill)";

/// How a queue source receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// The queue.
    pub queue_url: String,
    /// Counted failures (permanent ones and crashes) before a message is set aside.
    pub max_attempts: u32,
    /// How long a received message stays hidden, extended while it is handled.
    pub visibility: Duration,
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every record it led to is committed: delete it.
    Done,
    /// Nothing to do with it (a test event, a digest file): delete it.
    Skip(&'static str),
    /// A failure that passes (throttling, 5xx, timeout, connection): retry
    /// later, as long as it takes; not an attempt.
    Transient {
        /// Short, for `/readyz`: no AWS message text, no ARNs.
        reason: String,
        /// The whole error, for the log.
        detail: String,
    },
    /// Shutdown began (or the pipeline stopped) while it was handled: let
    /// the next reader have it at once; not an attempt.
    Interrupted(String),
    /// A failure of this message that retrying is unlikely to fix (a
    /// malformed file, access denied to the object, no such key): counts
    /// towards `max_attempts`.
    Failed(String),
    /// It can never be handled: set it aside now.
    SetAside(String),
}

/// The failures counted against one message, across receives and restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attempts {
    /// Permanent failures and crashes so far.
    pub counted: u32,
    /// The last of them.
    pub last: String,
}

/// A message kept after failing, for an operator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetAside {
    /// The source.
    pub source: String,
    /// The SQS message id.
    pub message_id: String,
    /// Why it was set aside.
    pub reason: String,
    /// How many times it was received.
    pub receive_count: u32,
    /// When, Unix seconds.
    pub at: i64,
    /// The message body.
    pub body: String,
}

/// Receives and handles messages until shutdown.
pub async fn run<Q, H, Fut>(ctx: SourceContext, queue: Arc<Q>, settings: QueueSettings, handle: H)
where
    Q: QueueApi,
    H: Fn(SourceContext, Message) -> Fut,
    Fut: Future<Output = Outcome>,
{
    ctx.starting();
    let visibility = i32::try_from(settings.visibility.as_secs())
        .unwrap_or(43_200)
        .clamp(10, 43_200);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut settler = Settler {
        ctx: &ctx,
        queue: &*queue,
        settings: &settings,
        transient: Backoff::new(TRANSIENT_FIRST, TRANSIENT_CAP),
        degraded: false,
    };
    if let Err(err) = settler.count_crash().await {
        tracing::error!(source = %ctx.name, error = %err, "cannot read or count the message an earlier process was handling");
    }
    loop {
        let received = tokio::select! {
            () = ctx.stop.cancelled() => return,
            r = queue.receive(&settings.queue_url, 10, 20, visibility) => r,
        };
        let messages = match received {
            Ok(messages) => {
                if !settler.degraded {
                    ctx.succeeded();
                }
                backoff.reset();
                messages
            }
            Err(err) => {
                let wait = backoff.next_delay();
                tracing::warn!(source = %ctx.name, error = %err, "ReceiveMessage failed");
                ctx.failed(err.short());
                tokio::select! {
                    () = ctx.stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
        };
        // Every message of the batch stays hidden until it is settled, not
        // only the one being handled: the visibility is short so that a
        // message whose reader died comes back soon.
        let unsettled = std::sync::Mutex::new(
            messages
                .iter()
                .map(|m| (m.id.clone(), m.receipt.clone()))
                .collect::<Vec<_>>(),
        );
        let work = handle_batch(&ctx, &mut settler, &messages, &unsettled, &handle);
        let pause =
            with_heartbeat(&*queue, &settings.queue_url, &unsettled, visibility, work).await;
        match pause {
            Batch::Handled => {}
            Batch::Stopped => return,
            Batch::Pause(wait) => tokio::select! {
                () = ctx.stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            },
        }
    }
}

/// How a batch ended.
enum Batch {
    /// Every message settled.
    Handled,
    /// Shutdown: the rest were released to the next reader.
    Stopped,
    /// A passing failure: the rest were put back for this long, and the
    /// source waits as long before it receives again, so an outage costs
    /// one attempt per wait rather than one per message.
    Pause(Duration),
}

async fn handle_batch<Q, H, Fut>(
    ctx: &SourceContext,
    settler: &mut Settler<'_, Q>,
    messages: &[Message],
    unsettled: &std::sync::Mutex<Vec<(String, String)>>,
    handle: &H,
) -> Batch
where
    Q: QueueApi,
    H: Fn(SourceContext, Message) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let settled = |message: &Message| {
        unsettled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(id, _)| *id != message.id);
    };
    for (n, message) in messages.iter().enumerate() {
        if ctx.stop.is_cancelled() {
            // Not handled, so not an attempt: the next reader gets them at once.
            for message in &messages[n..] {
                settled(message);
                settler.release(message).await;
            }
            return Batch::Stopped;
        }
        let attempts = match settler.begin(message).await {
            Ok(Some(attempts)) => attempts,
            Ok(None) => {
                settled(message);
                continue;
            }
            Err(err) => {
                // Without the marker a crash would go uncounted: do not handle it yet.
                settled(message);
                let wait = settler
                    .settle(
                        message,
                        Attempts::default(),
                        Outcome::Transient {
                            reason: "the state store cannot be written".to_owned(),
                            detail: err.to_string(),
                        },
                    )
                    .await;
                if let Some(wait) = wait {
                    return settler.put_back(&messages[n + 1..], wait, &settled).await;
                }
                continue;
            }
        };
        let outcome = handle(ctx.clone(), message.clone()).await;
        settled(message);
        if let Some(wait) = settler.settle(message, attempts, outcome).await {
            return settler.put_back(&messages[n + 1..], wait, &settled).await;
        }
    }
    Batch::Handled
}

/// Runs `work`, keeping every unsettled message of the batch hidden
/// meanwhile: each is extended to `visibility` every third of it.
async fn with_heartbeat<Q: QueueApi, T>(
    queue: &Q,
    url: &str,
    unsettled: &std::sync::Mutex<Vec<(String, String)>>,
    visibility: i32,
    work: impl Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let every = Duration::from_secs(u64::try_from(visibility / 3).unwrap_or(10).max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            outcome = &mut work => return outcome,
            _ = tick.tick() => {
                let held = unsettled
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                // A slow SQS must not hold the batch's work for long: a tick
                // gets a third of the timeout, and what it did not extend the
                // next tick does, still within the timeout.
                let extend = async {
                    for (id, receipt) in held {
                        if let Err(err) = queue.extend_visibility(url, &receipt, visibility).await {
                            tracing::warn!(message = %id, error = %err, "cannot extend the message's visibility; another reader may get it (its records are dropped as duplicates)");
                        }
                    }
                };
                if tokio::time::timeout(every, extend).await.is_err() {
                    tracing::warn!("extending the batch's visibility took longer than a heartbeat; going on");
                }
            }
        }
    }
}

/// Decides what becomes of each message, and keeps the counts that decide it.
struct Settler<'a, Q> {
    ctx: &'a SourceContext,
    queue: &'a Q,
    settings: &'a QueueSettings,
    /// Waits before transiently failed messages come back.
    transient: Backoff,
    /// Whether transient failures are going on (the source is not ready).
    degraded: bool,
}

impl<Q: QueueApi> Settler<'_, Q> {
    fn key(&self, message_id: &str) -> String {
        format!("{}/{message_id}", self.ctx.name)
    }

    fn count(&self, outcome: &str) {
        self.ctx
            .metrics
            .message_failures
            .with_label_values(&[&self.ctx.name, outcome])
            .inc();
    }

    /// Counts a crash against the message an earlier process left in hand.
    async fn count_crash(&self) -> Result<(), StateError> {
        let Some(Some(id)) = self.ctx.checkpoint::<Option<String>>(IN_HAND).await? else {
            return Ok(());
        };
        let (state, key, scope) = (
            self.ctx.state.clone(),
            self.key(&id),
            format!("source:{}:{IN_HAND}", self.ctx.name),
        );
        let counted = blocking(move || {
            state.write(|txn| {
                let mut attempts: Attempts = txn
                    .record(ATTEMPTS_NAMESPACE, &key)?
                    .map(|(attempts, _)| attempts)
                    .unwrap_or_default();
                attempts.counted += 1;
                CRASHED.clone_into(&mut attempts.last);
                txn.put_record(
                    ATTEMPTS_NAMESPACE,
                    &key,
                    &attempts,
                    Some(SystemTime::now() + ATTEMPTS_RETENTION),
                )?;
                txn.set_checkpoint(&scope, &None::<String>)?;
                Ok(attempts.counted)
            })
        })
        .await?;
        self.count("crash");
        tracing::error!(source = %self.ctx.name, message = %id, attempts = counted, max_attempts = self.settings.max_attempts, "the process ended while handling this message; counted as a failed attempt");
        Ok(())
    }

    /// Before handling: sets the message aside if its failures reached
    /// `max_attempts` (and answers `None`), else marks it in hand and
    /// answers its count.
    async fn begin(&mut self, message: &Message) -> Result<Option<Attempts>, StateError> {
        let (state, key) = (self.ctx.state.clone(), self.key(&message.id));
        let attempts: Attempts =
            blocking(move || state.record(ATTEMPTS_NAMESPACE, &key, SystemTime::now()))
                .await?
                .unwrap_or_default();
        if attempts.counted >= self.settings.max_attempts {
            let reason = format!("failed {} times; last: {}", attempts.counted, attempts.last);
            self.set_aside(message, reason).await;
            return Ok(None);
        }
        self.ctx
            .set_checkpoint(IN_HAND, Some(message.id.clone()))
            .await?;
        Ok(Some(attempts))
    }

    /// Clears the in-hand marker and writes (or, with `None`, removes) the
    /// message's count, in one transaction.
    async fn record(
        &self,
        message: &Message,
        attempts: Option<Attempts>,
    ) -> Result<(), StateError> {
        let (state, key) = (self.ctx.state.clone(), self.key(&message.id));
        let scope = format!("source:{}:{IN_HAND}", self.ctx.name);
        blocking(move || {
            state.write(|txn| {
                match &attempts {
                    Some(attempts) => txn.put_record(
                        ATTEMPTS_NAMESPACE,
                        &key,
                        attempts,
                        Some(SystemTime::now() + ATTEMPTS_RETENTION),
                    )?,
                    None => {
                        txn.remove_record(ATTEMPTS_NAMESPACE, &key)?;
                    }
                }
                txn.set_checkpoint(&scope, &None::<String>)
            })
        })
        .await
    }

    /// Makes a message visible again after `seconds`.
    async fn delay(&self, message: &Message, seconds: i32) {
        if let Err(err) = self
            .queue
            .extend_visibility(&self.settings.queue_url, &message.receipt, seconds)
            .await
        {
            tracing::debug!(source = %self.ctx.name, message = %message.id, error = %err, "cannot change when the message is seen again");
        }
    }

    /// A message received but not handled: the next reader gets it at once.
    async fn release(&self, message: &Message) {
        self.delay(message, 0).await;
    }

    /// Puts back the batch's messages not yet handled, to be seen again
    /// after `wait`; not attempts.
    async fn put_back(
        &self,
        rest: &[Message],
        wait: Duration,
        settled: &impl Fn(&Message),
    ) -> Batch {
        let seconds = i32::try_from(wait.as_secs()).unwrap_or(i32::MAX).max(1);
        for message in rest {
            settled(message);
            self.delay(message, seconds).await;
        }
        Batch::Pause(wait)
    }

    /// Settles a message by its outcome; after a passing failure, answers
    /// how long the source should wait before it goes on.
    async fn settle(
        &mut self,
        message: &Message,
        attempts: Attempts,
        outcome: Outcome,
    ) -> Option<Duration> {
        let ctx = self.ctx;
        match outcome {
            Outcome::Done | Outcome::Skip(_) => {
                if let Outcome::Skip(reason) = outcome {
                    ctx.metrics
                        .skipped
                        .with_label_values(&[&ctx.name, reason])
                        .inc();
                }
                if let Err(err) = self.record(message, None).await {
                    tracing::warn!(source = %ctx.name, message = %message.id, error = %err, "cannot clear the message's attempts");
                }
                self.transient.reset();
                if self.degraded {
                    self.degraded = false;
                    ctx.succeeded();
                }
                self.delete(message).await;
            }
            Outcome::SetAside(why) => self.set_aside(message, why).await,
            Outcome::Failed(why) => {
                self.count("permanent");
                let attempts = Attempts {
                    counted: attempts.counted + 1,
                    last: why.clone(),
                };
                if attempts.counted >= self.settings.max_attempts {
                    let reason = format!("failed {} times; last: {why}", attempts.counted);
                    self.set_aside(message, reason).await;
                    return None;
                }
                // Each counted failure waits longer before the message is seen again.
                let wait = 30i32
                    .saturating_mul(1 << attempts.counted.min(9))
                    .min(43_200);
                tracing::warn!(source = %ctx.name, message = %message.id, attempt = attempts.counted, max_attempts = self.settings.max_attempts, retry_in_seconds = wait, error = %why, "message not handled; it will be retried");
                if let Err(err) = self.record(message, Some(attempts)).await {
                    tracing::warn!(source = %ctx.name, message = %message.id, error = %err, "cannot count the failed attempt");
                }
                self.delay(message, wait).await;
            }
            Outcome::Transient { reason, detail } => {
                self.count("transient");
                let wait = self.transient.next_delay();
                let seconds = i32::try_from(wait.as_secs()).unwrap_or(300).max(1);
                tracing::warn!(source = %ctx.name, message = %message.id, retry_in_seconds = seconds, error = %detail, "message not handled for a passing reason; it will be retried, not counted");
                self.degraded = true;
                ctx.degraded(format!("retrying: {reason}"));
                if let Err(err) = self
                    .record(message, Some(attempts).filter(|a| a.counted > 0))
                    .await
                {
                    tracing::warn!(source = %ctx.name, message = %message.id, error = %err, "cannot clear the in-hand marker");
                }
                self.delay(message, seconds).await;
                return Some(wait);
            }
            Outcome::Interrupted(why) => {
                self.count("interrupted");
                tracing::info!(source = %ctx.name, message = %message.id, reason = why, "message left for the next reader; not counted");
                if let Err(err) = self
                    .record(message, Some(attempts).filter(|a| a.counted > 0))
                    .await
                {
                    tracing::warn!(source = %ctx.name, message = %message.id, error = %err, "cannot clear the in-hand marker");
                }
                self.release(message).await;
            }
        }
        None
    }

    async fn set_aside(&self, message: &Message, reason: String) {
        let ctx = self.ctx;
        let record = SetAside {
            source: ctx.name.to_string(),
            message_id: message.id.clone(),
            reason: reason.clone(),
            receive_count: message.receive_count,
            at: unix_seconds(),
            body: message.body.clone(),
        };
        let (state, key) = (ctx.state.clone(), self.key(&message.id));
        let scope = format!("source:{}:{IN_HAND}", ctx.name);
        let expires = SystemTime::now() + SET_ASIDE_RETENTION;
        let stored = blocking(move || {
            state.write(|txn| {
                let bounds = (MAX_SET_ASIDE, MAX_SET_ASIDE_BYTES);
                let dropped = make_room(txn, record.body.len(), bounds)?;
                txn.put_record(SET_ASIDE_NAMESPACE, &key, &record, Some(expires))?;
                txn.remove_record(ATTEMPTS_NAMESPACE, &key)?;
                txn.set_checkpoint(&scope, &None::<String>)?;
                Ok(dropped)
            })
        })
        .await;
        let dropped = match stored {
            Ok(dropped) => dropped,
            Err(err) => {
                // Without the record the message must stay in the queue.
                tracing::error!(source = %ctx.name, message = %message.id, error = %err, "cannot set the message aside; it stays in the queue");
                return;
            }
        };
        if !dropped.is_empty() {
            ctx.metrics
                .set_aside_dropped
                .with_label_values(&[&ctx.name])
                .inc_by(dropped.len() as u64);
            tracing::error!(source = %ctx.name, dropped = ?dropped, limit = MAX_SET_ASIDE, limit_bytes = MAX_SET_ASIDE_BYTES, "set-aside store full: the oldest set-aside messages were dropped; redrive or remove them (cloudwarden queue)");
        }
        ctx.metrics.set_aside.with_label_values(&[&ctx.name]).inc();
        tracing::error!(source = %ctx.name, message = %message.id, reason, "message set aside in the state store and deleted from the queue");
        self.delete(message).await;
    }

    /// Deletes a settled message: what it led to is committed (or set aside).
    async fn delete(&self, message: &Message) {
        self.ctx.progressed("queue");
        if let Err(err) = self
            .queue
            .delete(&self.settings.queue_url, &message.receipt)
            .await
        {
            tracing::warn!(source = %self.ctx.name, message = %message.id, error = %err, "cannot delete the handled message; when it comes back its records are dropped as duplicates");
        }
    }
}

/// Drops the oldest set-aside messages until one more of `bytes` fits
/// within `(max_count, max_bytes)` ([`MAX_SET_ASIDE`], [`MAX_SET_ASIDE_BYTES`]);
/// returns their keys. Setting aside is rare, so reading the whole
/// (bounded) store here is cheap.
fn make_room(
    txn: &mut crate::state::WriteTxn,
    bytes: usize,
    (max_count, max_bytes): (usize, usize),
) -> Result<Vec<String>, crate::state::StateError> {
    let mut kept: Vec<(String, SetAside)> = txn.records(SET_ASIDE_NAMESPACE, usize::MAX)?;
    kept.sort_by_key(|(_, m)| m.at);
    let mut total: usize = kept.iter().map(|(_, m)| m.body.len()).sum();
    let mut dropped = Vec::new();
    let mut oldest = kept.into_iter();
    let mut count = oldest.len();
    while count >= max_count || (count > 0 && total + bytes > max_bytes) {
        let Some((key, message)) = oldest.next() else {
            break;
        };
        txn.remove_record(SET_ASIDE_NAMESPACE, &key)?;
        total -= message.body.len();
        count -= 1;
        dropped.push(key);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests;
