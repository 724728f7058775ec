//! What every source shares: the pipeline, the state store, metrics,
//! readiness, and the polling loop that backs off when AWS fails.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::IntCounterVec;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::aws::AwsError;
use crate::aws::retry::Backoff;
use crate::detection::event::{Format, Reason};
use crate::detection::sigma::document::LogSource;
use crate::pipeline::{Ack, Event, EventSender, PipelineClosed};
use crate::state::{StateError, StateStore};
use crate::telemetry::Status;
use crate::telemetry::metrics::SourceMetrics;

/// Longest wait between attempts when a source keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Why a poll did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An AWS call failed.
    #[error("{0}")]
    Aws(#[from] AwsError),
    /// The pipeline stopped (shutdown).
    #[error("the pipeline has stopped")]
    Pipeline(#[from] PipelineClosed),
    /// Detection did not commit every event of the page (shutdown, or a failed commit).
    #[error("detection did not acknowledge every event read; they will be read again")]
    NotAcknowledged,
    /// The state store failed.
    #[error("{0}")]
    State(#[from] StateError),
    /// Shutdown began during the poll.
    #[error("stopping")]
    Stopped,
}

/// One running source's handles.
#[derive(Clone)]
pub struct SourceContext {
    /// The configured name.
    pub name: Arc<str>,
    /// The kind, for metric labels.
    pub kind: &'static str,
    /// To detection.
    pub events: EventSender,
    /// Checkpoints and set-aside messages.
    pub state: StateStore,
    /// Source metrics.
    pub metrics: SourceMetrics,
    /// `cloudwarden_events_rejected_total`, for records a source cannot even read.
    pub rejected: IntCounterVec,
    /// Readiness.
    pub status: Status,
    /// Cancelled when shutdown begins.
    pub stop: CancellationToken,
}

impl SourceContext {
    fn component(&self) -> String {
        format!("source {}", self.name)
    }

    /// Marks the source as waiting for its first poll.
    pub fn starting(&self) {
        self.status
            .waiting(&self.component(), "no poll has completed yet");
        self.metrics
            .ready
            .with_label_values(&[&self.name, self.kind])
            .set(0);
    }

    /// A poll succeeded.
    pub fn succeeded(&self) {
        self.status.ready(&self.component());
        self.metrics
            .ready
            .with_label_values(&[&self.name, self.kind])
            .set(1);
        self.metrics
            .polls
            .with_label_values(&[&self.name, "ok"])
            .inc();
        self.metrics
            .last_success
            .with_label_values(&[&self.name])
            .set(unix_seconds());
    }

    /// A poll failed; `/readyz` says why until one succeeds.
    pub fn failed(&self, why: impl Display) {
        let why = why.to_string();
        self.status
            .waiting(&self.component(), format!("last poll failed: {why}"));
        self.metrics
            .ready
            .with_label_values(&[&self.name, self.kind])
            .set(0);
        self.metrics
            .polls
            .with_label_values(&[&self.name, "error"])
            .inc();
    }

    /// Something that passes is failing (S3 unreachable, throttling): the
    /// source is not ready, with `reason`, until [`SourceContext::succeeded`].
    /// `reason` is short and carries no AWS message text.
    pub fn degraded(&self, reason: impl Into<String>) {
        self.status.waiting(&self.component(), reason);
        self.metrics
            .ready
            .with_label_values(&[&self.name, self.kind])
            .set(0);
    }

    /// An event for detection.
    pub fn event(
        &self,
        raw: String,
        origin: String,
        format: Format,
        logsource: &Arc<LogSource>,
        ack: Ack,
    ) -> Event {
        Event {
            source: Arc::clone(&self.name),
            origin,
            raw,
            format,
            logsource: Arc::clone(logsource),
            time_hint_ms: None,
            dedup_id: None,
            reread_from: None,
            ack,
        }
    }

    /// Hands an event to detection and counts it as read.
    pub async fn send(&self, event: Event) -> Result<(), PipelineClosed> {
        self.events.send(event).await?;
        self.metrics.read.with_label_values(&[&self.name]).inc();
        Ok(())
    }

    /// The same from a blocking thread.
    pub fn blocking_send(&self, event: Event) -> Result<(), PipelineClosed> {
        self.events.blocking_send(event)?;
        self.metrics.read.with_label_values(&[&self.name]).inc();
        Ok(())
    }

    /// A record the source could not read at all: counted and logged with where it was.
    pub fn reject(&self, reason: Reason, origin: &str, detail: &str) {
        self.rejected
            .with_label_values(&[&self.name, reason.as_str()])
            .inc();
        tracing::warn!(source = %self.name, origin, reason = reason.as_str(), detail, "record rejected and skipped");
    }

    /// Records how far behind the newest event read is.
    pub fn lag(&self, newest_event_ms: i64) {
        let lag = (unix_millis() - newest_event_ms).max(0) / 1000;
        self.metrics
            .lag_seconds
            .with_label_values(&[&self.name])
            .set(lag);
    }

    fn scope(&self, part: &str) -> String {
        if part.is_empty() {
            format!("source:{}", self.name)
        } else {
            format!("source:{}:{part}", self.name)
        }
    }

    /// The checkpoint of this source (or of one `part` of it, such as a Region).
    pub async fn checkpoint<T: DeserializeOwned + Send + 'static>(
        &self,
        part: &str,
    ) -> Result<Option<T>, StateError> {
        let (state, scope) = (self.state.clone(), self.scope(part));
        blocking(move || state.checkpoint(&scope)).await
    }

    /// Moves the checkpoint, once what it covers is committed.
    pub async fn set_checkpoint<T: Serialize + Send + Sync + 'static>(
        &self,
        part: &str,
        value: T,
    ) -> Result<(), StateError> {
        let (state, scope) = (self.state.clone(), self.scope(part));
        blocking(move || state.set_checkpoint(&scope, &value)).await?;
        if part != super::queue::IN_HAND {
            self.progressed(part);
        }
        Ok(())
    }

    /// Records that progress was committed for `part` now (a checkpoint
    /// moved, a handled message deleted), for freshness metrics.
    pub fn progressed(&self, part: &str) {
        self.metrics
            .checkpoint_time
            .with_label_values(&[&self.name, part])
            .set(unix_seconds());
    }

    /// Polls with `poll` every `interval` until shutdown. A failed poll is
    /// retried after a capped, jittered backoff, and meanwhile `/readyz`
    /// says what failed; a poll that succeeded but shows the source falling
    /// behind makes it not ready with the reason it gives.
    pub async fn poll_every<F, Fut>(&self, interval: Duration, mut poll: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Polled, SourceError>>,
    {
        self.starting();
        let mut backoff = Backoff::new(
            Duration::from_secs(1),
            MAX_BACKOFF.min(interval.max(Duration::from_secs(30))),
        );
        loop {
            let wait = match poll().await {
                Ok(polled) => {
                    self.succeeded();
                    if let Polled::Behind(reason) = polled {
                        self.degraded(reason);
                    }
                    backoff.reset();
                    interval
                }
                Err(SourceError::Stopped | SourceError::Pipeline(_)) => return,
                Err(err) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(source = %self.name, error = %err, retry_in = %humantime::format_duration(round(wait)), "poll failed");
                    self.failed(match &err {
                        // AWS's message can name ARNs and accounts: not for /readyz.
                        SourceError::Aws(aws) => aws.short(),
                        other => other.to_string(),
                    });
                    wait
                }
            };
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// How a poll that succeeded went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// Everything due was read.
    Done,
    /// Everything was read, but the source cannot keep up (why, short).
    Behind(String),
}

/// A duration to whole milliseconds, for logs.
fn round(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs a state store call off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StateError::Io {
            path: std::path::PathBuf::from("state"),
            source: std::io::Error::other(e.to_string()),
        })?
}

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
