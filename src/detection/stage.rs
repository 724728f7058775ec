//! The detection stage: consumes events until every source has stopped.
//!
//! Shutdown relies on this: when the sources stop, their senders drop, the
//! channel closes, and this loop ends only after the last queued event is
//! handled, so nothing read is left behind.

use crate::pipeline::EventReceiver;

/// The stage between sources and alert delivery.
#[derive(Debug)]
pub struct DetectionStage {
    events: EventReceiver,
}

/// What a stage run handled, for shutdown logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageSummary {
    /// Events handled.
    pub events: u64,
}

impl DetectionStage {
    /// A stage reading from `events`.
    pub fn new(events: EventReceiver) -> Self {
        DetectionStage { events }
    }

    /// Handles events until the channel is closed and drained.
    pub async fn run(mut self) -> StageSummary {
        let mut summary = StageSummary::default();
        while let Some(event) = self.events.recv().await {
            // Rule evaluation plugs in here; until then an event is done once
            // it has been accounted for.
            self.events
                .metrics()
                .events_processed
                .with_label_values(&[&event.source])
                .inc();
            summary.events += 1;
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pipeline::{Event, channel};
    use crate::telemetry::Metrics;

    #[tokio::test]
    async fn drains_every_queued_event_after_the_senders_are_gone() {
        let metrics = Metrics::new().unwrap();
        let (tx, rx) = channel(4, metrics.pipeline.clone());
        let stage = tokio::spawn(DetectionStage::new(rx).run());
        let source: Arc<str> = Arc::from("s");
        for i in 0..100 {
            let event = Event {
                source: Arc::clone(&source),
                origin: format!("test#{i}"),
                raw: "{}".into(),
            };
            tx.send(event).await.unwrap();
        }
        drop(tx);
        assert_eq!(stage.await.unwrap().events, 100);
        let processed = metrics
            .pipeline
            .events_processed
            .with_label_values(&["s"])
            .get();
        assert_eq!(processed, 100);
        assert_eq!(metrics.pipeline.queued.get(), 0);
    }
}
