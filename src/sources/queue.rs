//! The SQS loop both queue sources share: long-poll for messages, hand each
//! to the source's handler, and only then delete it.
//!
//! A message stays hidden while it is handled: its visibility is extended
//! every half timeout, so a large trail file is not handed to a second
//! reader meanwhile. A message whose handling fails becomes visible again
//! later (each failure waits longer) and is retried; after `max_attempts`
//! it is set aside: kept in the state store with why, counted, logged, and
//! deleted from the queue, so one poison message cannot block the rest.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::api::{Message, QueueApi};
use super::context::{SourceContext, blocking, unix_seconds};
use crate::aws::retry::Backoff;

/// State store namespace of messages set aside.
pub const SET_ASIDE_NAMESPACE: &str = "set-aside";

/// Set-aside messages are kept this long for someone to look at.
const SET_ASIDE_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// How a queue source receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// The queue.
    pub queue_url: String,
    /// Receives a message may fail before it is set aside.
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
    /// It could not be handled now: let it come back later.
    Retry(String),
    /// It can never be handled: set it aside now.
    SetAside(String),
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
        .clamp(30, 43_200);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let received = tokio::select! {
            () = ctx.stop.cancelled() => return,
            r = queue.receive(&settings.queue_url, 10, 20, visibility) => r,
        };
        let messages = match received {
            Ok(messages) => {
                ctx.succeeded();
                backoff.reset();
                messages
            }
            Err(err) => {
                let wait = backoff.next_delay();
                tracing::warn!(source = %ctx.name, error = %err, "ReceiveMessage failed");
                ctx.failed(&err);
                tokio::select! {
                    () = ctx.stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
        };
        for message in messages {
            if ctx.stop.is_cancelled() {
                // Unhandled messages become visible again and are read next time.
                return;
            }
            let outcome = with_heartbeat(
                &*queue,
                &settings.queue_url,
                &message,
                visibility,
                handle(ctx.clone(), message.clone()),
            )
            .await;
            settle(&ctx, &*queue, &settings, &message, outcome).await;
        }
    }
}

/// Runs `work`, keeping the message hidden meanwhile.
async fn with_heartbeat<Q: QueueApi>(
    queue: &Q,
    url: &str,
    message: &Message,
    visibility: i32,
    work: impl Future<Output = Outcome>,
) -> Outcome {
    tokio::pin!(work);
    let half = Duration::from_secs(u64::try_from(visibility / 2).unwrap_or(15).max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + half, half);
    loop {
        tokio::select! {
            outcome = &mut work => return outcome,
            _ = tick.tick() => {
                if let Err(err) = queue.extend_visibility(url, &message.receipt, visibility).await {
                    tracing::warn!(message = %message.id, error = %err, "cannot extend the message's visibility; another reader may get it (its records are dropped as duplicates)");
                }
            }
        }
    }
}

async fn settle<Q: QueueApi>(
    ctx: &SourceContext,
    queue: &Q,
    settings: &QueueSettings,
    message: &Message,
    outcome: Outcome,
) {
    let aside = match outcome {
        Outcome::Done => None,
        Outcome::Skip(reason) => {
            ctx.metrics
                .skipped
                .with_label_values(&[&ctx.name, reason])
                .inc();
            None
        }
        Outcome::SetAside(why) => Some(why),
        Outcome::Retry(why) if message.receive_count >= settings.max_attempts => Some(format!(
            "failed {} times; last: {why}",
            message.receive_count
        )),
        Outcome::Retry(why) => {
            // Each failure waits longer before the message is seen again.
            let wait = 30i32
                .saturating_mul(1 << message.receive_count.min(9))
                .min(43_200);
            tracing::warn!(source = %ctx.name, message = %message.id, attempt = message.receive_count, retry_in_seconds = wait, error = %why, "message not handled; it will be retried");
            if let Err(err) = queue
                .extend_visibility(&settings.queue_url, &message.receipt, wait)
                .await
            {
                tracing::debug!(error = %err, "cannot delay the retry");
            }
            return;
        }
    };
    if let Some(reason) = aside {
        let record = SetAside {
            source: ctx.name.to_string(),
            message_id: message.id.clone(),
            reason: reason.clone(),
            receive_count: message.receive_count,
            at: unix_seconds(),
            body: message.body.clone(),
        };
        let (state, key) = (ctx.state.clone(), format!("{}/{}", ctx.name, message.id));
        let expires = SystemTime::now() + SET_ASIDE_RETENTION;
        if let Err(err) =
            blocking(move || state.put_record(SET_ASIDE_NAMESPACE, &key, &record, Some(expires)))
                .await
        {
            // Without the record the message must stay in the queue.
            tracing::error!(source = %ctx.name, message = %message.id, error = %err, "cannot set the message aside; it stays in the queue");
            return;
        }
        ctx.metrics.set_aside.with_label_values(&[&ctx.name]).inc();
        tracing::error!(source = %ctx.name, message = %message.id, reason, "message set aside in the state store and deleted from the queue");
    }
    if let Err(err) = queue.delete(&settings.queue_url, &message.receipt).await {
        tracing::warn!(source = %ctx.name, message = %message.id, error = %err, "cannot delete the handled message; when it comes back its records are dropped as duplicates");
    }
}
