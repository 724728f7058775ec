//! The bounded channel from sources to detection.
//!
//! The channel is bounded, so a slow detection stage slows the sources
//! instead of growing memory; each send that finds it full is counted in
//! `cloudwarden_pipeline_channel_full_total`.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::Ack;
use crate::detection::event::Format;
use crate::detection::sigma::document::LogSource;
use crate::telemetry::metrics::PipelineMetrics;

/// One record read by a source, not yet parsed: detection parses it.
#[derive(Debug)]
pub struct Event {
    /// The configured name of the source that read it.
    pub source: Arc<str>,
    /// Where it was read, precise enough to find it again (an S3 key and
    /// record index, a log stream and event id), for logs about this event.
    pub origin: String,
    /// The record as JSON text (or a plain line, for text log sources).
    pub raw: String,
    /// How the record is read.
    pub format: Format,
    /// Which rules apply to it.
    pub logsource: Arc<LogSource>,
    /// A time for records that carry none (a log event's timestamp), ms since the epoch.
    pub time_hint_ms: Option<i64>,
    /// An id to drop repeats by, for records without an eventID (a log event id).
    pub dedup_id: Option<String>,
    /// Marked done once the event's outcome is committed.
    pub ack: Ack,
}

/// The pipeline stopped before the event could be handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline has stopped")]
pub struct PipelineClosed;

/// Creates the channel from sources to detection.
pub fn channel(capacity: usize, metrics: PipelineMetrics) -> (EventSender, EventReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        EventSender {
            tx,
            metrics: metrics.clone(),
        },
        EventReceiver { rx, metrics },
    )
}

/// The sending half, cloned once per source.
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: mpsc::Sender<Event>,
    metrics: PipelineMetrics,
}

impl EventSender {
    /// Hands `event` to detection, waiting while the channel is full.
    pub async fn send(&self, event: Event) -> Result<(), PipelineClosed> {
        let source = Arc::clone(&event.source);
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => return Err(PipelineClosed),
            Err(TrySendError::Full(event)) => {
                self.metrics
                    .channel_full
                    .with_label_values(&[&source])
                    .inc();
                self.tx.send(event).await.map_err(|_| PipelineClosed)?;
            }
        }
        self.metrics.events_in.with_label_values(&[&source]).inc();
        self.metrics.queued.inc();
        Ok(())
    }
}

impl EventSender {
    /// Hands `event` to detection from a blocking thread (an S3 object being
    /// read), waiting while the channel is full.
    pub fn blocking_send(&self, event: Event) -> Result<(), PipelineClosed> {
        let source = Arc::clone(&event.source);
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => return Err(PipelineClosed),
            Err(TrySendError::Full(event)) => {
                self.metrics
                    .channel_full
                    .with_label_values(&[&source])
                    .inc();
                self.tx.blocking_send(event).map_err(|_| PipelineClosed)?;
            }
        }
        self.metrics.events_in.with_label_values(&[&source]).inc();
        self.metrics.queued.inc();
        Ok(())
    }
}

/// The receiving half, owned by detection.
#[derive(Debug)]
pub struct EventReceiver {
    rx: mpsc::Receiver<Event>,
    metrics: PipelineMetrics,
}

impl EventReceiver {
    /// The next event; `None` once every sender is gone and the channel is empty.
    pub async fn recv(&mut self) -> Option<Event> {
        let event = self.rx.recv().await?;
        self.metrics.queued.dec();
        Some(event)
    }

    /// The next event, waiting on the calling (non-async) thread.
    pub fn blocking_recv(&mut self) -> Option<Event> {
        let event = self.rx.blocking_recv()?;
        self.metrics.queued.dec();
        Some(event)
    }

    /// An event that is already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        let event = self.rx.try_recv().ok()?;
        self.metrics.queued.dec();
        Some(event)
    }

    /// The metrics this channel reports to.
    pub fn metrics(&self) -> &PipelineMetrics {
        &self.metrics
    }
}
