//! The durable outbox: alerts are committed here, in the same transaction as
//! the rest of detection's state, before anything tries to deliver them, and
//! leave only once every sink has accepted them.
//!
//! Keys sort by the time the alert was committed, so delivery goes oldest
//! first and the age of the oldest entry is easy to see.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::detection::Alert;
use crate::state::{StateError, StateStore, WriteTxn};

/// The state store namespace of the outbox.
pub const NAMESPACE: &str = "outbox";

/// An alert waiting for delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The alert.
    pub alert: Alert,
    /// When it was committed, ms since the epoch.
    pub committed_ms: i64,
    /// Delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Sinks that have accepted it already (by name), so that a retry
    /// after a partial failure does not send it to them twice.
    #[serde(default)]
    pub delivered_to: Vec<String>,
    /// Sinks that refused it for good; it is logged and counted for each,
    /// and leaves the outbox once no sink is left to try.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given_up: Vec<String>,
    /// Consecutive permanent refusals by sink, reset by any other outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<(String, u32)>,
}

impl Entry {
    /// Whether `sink` is done with it: accepted, or given up on.
    pub fn done_for(&self, sink: &str) -> bool {
        self.delivered_to.iter().any(|s| s == sink) || self.given_up.iter().any(|s| s == sink)
    }
}

/// Makes outbox keys: commit time, then a process-wide counter, then a
/// random part so that two daemon runs within one millisecond cannot collide.
#[derive(Debug)]
pub struct Keys {
    counter: AtomicU64,
    salt: u32,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            counter: AtomicU64::new(0),
            salt: fastrand::u32(..),
        }
    }
}

impl Keys {
    /// A fresh key for an alert committed at `now_ms`.
    pub fn next(&self, now_ms: i64) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{now_ms:015}-{n:010}-{:08x}", self.salt)
    }
}

/// Stages `alert` in `txn`.
pub fn stage(txn: &mut WriteTxn, key: &str, alert: &Alert, now_ms: i64) -> Result<(), StateError> {
    let mut alert = alert.clone();
    alert.id = Some(key.to_owned());
    let entry = Entry {
        alert,
        committed_ms: now_ms,
        attempts: 0,
        delivered_to: Vec::new(),
        given_up: Vec::new(),
        refusals: Vec::new(),
    };
    txn.put_record(NAMESPACE, key, &entry, None)
}

/// The oldest `limit` entries waiting for delivery.
pub fn pending(store: &StateStore, limit: usize) -> Result<Vec<(String, Entry)>, StateError> {
    store.records(NAMESPACE, SystemTime::now(), limit)
}

/// Up to `limit` entries whose key sorts after `after` (`""`: the oldest), oldest first.
pub fn pending_after(
    store: &StateStore,
    after: &str,
    limit: usize,
) -> Result<Vec<(String, Entry)>, StateError> {
    store.records_after(NAMESPACE, after, SystemTime::now(), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time_then_order() {
        let keys = Keys::default();
        let a = keys.next(1_700_000_000_000);
        let b = keys.next(1_700_000_000_000);
        let c = keys.next(1_700_000_000_001);
        assert!(a < b && b < c, "{a} {b} {c}");
    }
}
