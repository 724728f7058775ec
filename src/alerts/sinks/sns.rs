//! Publishing alerts to an SNS topic: each alert rendered in the topic's
//! format, packed into PublishBatch calls of at most 10 messages and
//! 262,144 bytes.

use std::sync::{Arc, PoisonError, RwLock};

use super::sns_api::SnsApi;
use super::{Outcome, Outcomes, Sink, SinkError};
use crate::alerts::render::{Fifo, MAX_MESSAGE_BYTES, SnsMessage, sns_message};
use crate::alerts::route::Route;
use crate::config::SnsSinkConfig;
use crate::detection::Alert;

/// PublishBatch takes at most this many entries.
const BATCH_ENTRIES: usize = 10;

/// Error codes SNS gives for a message it will never take: retrying the
/// same message fails the same way. Other errors (access denied, a missing
/// topic, KMS trouble) are about the topic and are retried until fixed.
const REFUSAL_CODES: &[&str] = &[
    "InvalidParameter",
    "InvalidParameterValue",
    "ParameterValueInvalid",
    "ValidationError",
    "construction",
];

/// A batch's bytes at most: SNS's limit, less room for what it may count that we do not.
const BATCH_BYTES: usize = MAX_MESSAGE_BYTES - 4096;

/// A topic's route, shared with whoever may replace it (a configuration
/// reload): the sink reads the current one for each decision.
pub type RouteHandle = Arc<RwLock<Arc<Route>>>;

/// One topic.
pub struct SnsSink<A> {
    api: Arc<A>,
    topic: SnsSinkConfig,
    route: RouteHandle,
}

impl<A: SnsApi> SnsSink<A> {
    /// Publishes to `topic` through `api`.
    pub fn new(api: Arc<A>, topic: SnsSinkConfig) -> SnsSink<A> {
        SnsSink {
            api,
            route: Arc::new(RwLock::new(Arc::new(Route::of_topic(&topic)))),
            topic,
        }
    }

    /// Where its route can be replaced while it runs.
    pub fn route_handle(&self) -> RouteHandle {
        Arc::clone(&self.route)
    }
}

/// Consecutive runs of `messages` that fit one PublishBatch each.
pub fn batches(messages: &[SnsMessage]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, message) in messages.iter().enumerate() {
        let size = message.size();
        if i > start && (i - start == BATCH_ENTRIES || bytes + size > BATCH_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < messages.len() {
        out.push(start..messages.len());
    }
    out
}

impl<A: SnsApi> Sink for SnsSink<A> {
    fn name(&self) -> &str {
        &self.topic.topic_arn
    }

    fn route(&self) -> Arc<Route> {
        Arc::clone(&self.route.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn per_minute(&self) -> Option<u32> {
        Some(self.topic.max_per_minute)
    }

    fn deliver<'a>(&'a self, alerts: &'a [&'a Alert]) -> Outcomes<'a> {
        Box::pin(async move {
            // A FIFO topic refuses messages without a group id.
            let fifo = self.topic.topic_arn.ends_with(".fifo");
            let messages: Vec<SnsMessage> = alerts
                .iter()
                .map(|a| {
                    let mut message = sns_message(a, self.topic.format);
                    if fifo {
                        message.fifo = Some(Fifo::for_alert(a));
                    }
                    message
                })
                .collect();
            let mut outcomes: Vec<Outcome> = Vec::with_capacity(messages.len());
            for range in batches(&messages) {
                let results = self
                    .api
                    .publish(&self.topic.topic_arn, &messages[range])
                    .await;
                outcomes.extend(results.into_iter().map(|r| {
                    r.map_err(|err| SinkError {
                        class: err.class,
                        refused: REFUSAL_CODES.contains(&err.code.as_str()),
                        message: err.to_string(),
                    })
                }));
            }
            outcomes
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: usize) -> SnsMessage {
        SnsMessage {
            subject: None,
            body: "x".repeat(bytes),
            structured: false,
            attributes: Vec::new(),
            fifo: None,
        }
    }

    #[test]
    fn batches_hold_ten_messages_and_the_size_limit_at_most() {
        let small: Vec<SnsMessage> = (0..23).map(|_| message(100)).collect();
        assert_eq!(batches(&small), vec![0..10, 10..20, 20..23]);
        let big: Vec<SnsMessage> = (0..3).map(|_| message(100_000)).collect();
        assert_eq!(batches(&big), vec![0..2, 2..3]);
        let huge = vec![message(200_000), message(200_000)];
        assert_eq!(batches(&huge), vec![0..1, 1..2]);
        assert!(batches(&[]).is_empty());
    }
}
