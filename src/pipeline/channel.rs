//! The bounded channel from sources to detection.
//!
//! The channel is bounded in events and in bytes of record text, so a slow
//! detection stage slows the sources instead of growing memory, also when
//! the records are large; each send that finds it full is counted in
//! `cloudwarden_pipeline_channel_full_total`.

use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

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
    /// For a source that re-reads a window (a polled one): the part it
    /// read (a Region, a log group) and where that window starts, ms since
    /// the epoch. Dedup keeps ids from there on, however long the daemon
    /// was down.
    pub reread_from: Option<(Arc<str>, i64)>,
    /// Marked done once the event's outcome is committed.
    pub ack: Ack,
}

/// The pipeline stopped before the event could be handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline has stopped")]
pub struct PipelineClosed;

/// An event and its share of the byte budget, released when detection takes it.
type Queued = (Event, OwnedSemaphorePermit);

/// Creates the channel from sources to detection: at most `capacity`
/// events and `bytes` bytes of record text wait in it.
pub fn channel(
    capacity: usize,
    bytes: usize,
    metrics: PipelineMetrics,
) -> (EventSender, EventReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let budget = bytes.clamp(1, Semaphore::MAX_PERMITS);
    (
        EventSender {
            tx,
            bytes: Arc::new(Semaphore::new(budget)),
            budget,
            metrics: metrics.clone(),
        },
        EventReceiver { rx, metrics },
    )
}

/// The sending half, cloned once per source.
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: mpsc::Sender<Queued>,
    bytes: Arc<Semaphore>,
    budget: usize,
    metrics: PipelineMetrics,
}

impl EventSender {
    /// Bytes an event takes of the budget: its text, but never more than
    /// the whole budget, so that one record larger than it still passes alone.
    fn cost(&self, event: &Event) -> u32 {
        u32::try_from(event.raw.len().clamp(1, self.budget)).unwrap_or(u32::MAX)
    }

    fn full(&self, source: &str) {
        self.metrics.channel_full.with_label_values(&[source]).inc();
    }

    /// Hands `event` to detection, waiting while the channel is full.
    pub async fn send(&self, event: Event) -> Result<(), PipelineClosed> {
        let source = Arc::clone(&event.source);
        let cost = self.cost(&event);
        let permit = match Arc::clone(&self.bytes).try_acquire_many_owned(cost) {
            Ok(permit) => permit,
            Err(_) => {
                self.full(&source);
                Arc::clone(&self.bytes)
                    .acquire_many_owned(cost)
                    .await
                    .map_err(|_| PipelineClosed)?
            }
        };
        match self.tx.try_send((event, permit)) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => return Err(PipelineClosed),
            Err(TrySendError::Full(queued)) => {
                self.full(&source);
                self.tx.send(queued).await.map_err(|_| PipelineClosed)?;
            }
        }
        self.queued(&source, cost);
        Ok(())
    }

    /// Hands `event` to detection from a blocking thread (an S3 object being
    /// read), waiting while the channel is full.
    pub fn blocking_send(&self, event: Event) -> Result<(), PipelineClosed> {
        let source = Arc::clone(&event.source);
        let cost = self.cost(&event);
        let permit = match Arc::clone(&self.bytes).try_acquire_many_owned(cost) {
            Ok(permit) => permit,
            Err(_) => {
                self.full(&source);
                let wait = Arc::clone(&self.bytes).acquire_many_owned(cost);
                // Blocking threads of the runtime may wait on it.
                let handle = tokio::runtime::Handle::try_current().map_err(|_| PipelineClosed)?;
                handle.block_on(wait).map_err(|_| PipelineClosed)?
            }
        };
        match self.tx.try_send((event, permit)) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => return Err(PipelineClosed),
            Err(TrySendError::Full(queued)) => {
                self.full(&source);
                self.tx.blocking_send(queued).map_err(|_| PipelineClosed)?;
            }
        }
        self.queued(&source, cost);
        Ok(())
    }

    fn queued(&self, source: &str, cost: u32) {
        self.metrics.events_in.with_label_values(&[source]).inc();
        self.metrics.queued.inc();
        self.metrics.queued_bytes.add(i64::from(cost));
    }
}

/// The receiving half, owned by detection.
#[derive(Debug)]
pub struct EventReceiver {
    rx: mpsc::Receiver<Queued>,
    metrics: PipelineMetrics,
}

impl EventReceiver {
    /// The next event; `None` once every sender is gone and the channel is empty.
    pub async fn recv(&mut self) -> Option<Event> {
        let queued = self.rx.recv().await?;
        Some(self.taken(queued))
    }

    /// The next event, waiting on the calling (non-async) thread.
    pub fn blocking_recv(&mut self) -> Option<Event> {
        let queued = self.rx.blocking_recv()?;
        Some(self.taken(queued))
    }

    /// An event that is already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        let queued = self.rx.try_recv().ok()?;
        Some(self.taken(queued))
    }

    /// Releases the event's bytes: it is detection's now.
    fn taken(&self, (event, permit): Queued) -> Event {
        self.metrics.queued.dec();
        self.metrics
            .queued_bytes
            .sub(i64::try_from(permit.num_permits()).unwrap_or(0));
        drop(permit);
        event
    }

    /// The metrics this channel reports to.
    pub fn metrics(&self) -> &PipelineMetrics {
        &self.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::batch;
    use crate::telemetry::Metrics;

    fn event(raw: &str, ack: Ack) -> Event {
        Event {
            source: Arc::from("s"),
            origin: String::new(),
            raw: raw.to_owned(),
            format: Format::CloudTrail,
            logsource: Arc::new(LogSource::cloudtrail()),
            time_hint_ms: None,
            dedup_id: None,
            reread_from: None,
            ack,
        }
    }

    #[tokio::test]
    async fn the_channel_is_bounded_in_bytes_as_well_as_events() {
        let metrics = Metrics::new().unwrap();
        let (tx, mut rx) = channel(100, 1000, metrics.pipeline.clone());
        let (acks, _pending) = batch();
        tx.send(event(&"a".repeat(600), acks.token()))
            .await
            .unwrap();
        assert_eq!(metrics.pipeline.queued_bytes.get(), 600);
        // 600 more bytes do not fit in 1,000: the send waits for detection.
        let second = tx.send(event(&"b".repeat(600), acks.token()));
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), &mut second)
                .await
                .is_err()
        );
        assert_eq!(
            metrics
                .pipeline
                .channel_full
                .with_label_values(&["s"])
                .get(),
            1
        );
        assert_eq!(rx.recv().await.unwrap().raw.len(), 600);
        second.await.unwrap();
        assert_eq!(metrics.pipeline.queued_bytes.get(), 600);
        // A record larger than the whole budget still passes, alone.
        rx.recv().await.unwrap();
        tx.send(event(&"c".repeat(5000), acks.token()))
            .await
            .unwrap();
        assert_eq!(rx.recv().await.unwrap().raw.len(), 5000);
        assert_eq!(metrics.pipeline.queued_bytes.get(), 0);
    }
}
