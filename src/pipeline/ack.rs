//! End-to-end acknowledgements: a source learns when what it read is safe.
//!
//! A source reads a page (a LookupEvents page, a trail file, an SQS batch)
//! and gives every event of it a token from one [`Batch`]. Detection marks a
//! token done once the event's outcome (its alerts, or its rejection) is
//! committed to the state store, and drops it. When the last token is
//! dropped, the source's [`Pending`] resolves: done if every token was
//! marked, not done if any was dropped unmarked (the pipeline stopped, a
//! commit failed). Only a done batch moves the source's checkpoint or
//! deletes its SQS messages; anything else is read again after a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::oneshot;

/// Creates a batch and the receiver of its outcome.
pub fn batch() -> (Batch, Pending) {
    let (tx, rx) = oneshot::channel();
    let inner = Arc::new(Inner {
        failed: AtomicBool::new(false),
        tx: std::sync::Mutex::new(Some(tx)),
    });
    (Batch { inner }, Pending { rx })
}

struct Inner {
    failed: AtomicBool,
    tx: std::sync::Mutex<Option<oneshot::Sender<bool>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tx = self
            .tx
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(tx) = tx {
            // The source may have stopped waiting; nothing to tell then.
            let _ = tx.send(!self.failed.load(Ordering::Acquire));
        }
    }
}

/// The source's side of a batch: hands out one token per event.
#[derive(Clone)]
pub struct Batch {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batch")
    }
}

impl Batch {
    /// A token for one event of the batch.
    pub fn token(&self) -> Ack {
        Ack {
            inner: Some(Arc::clone(&self.inner)),
            done: false,
        }
    }
}

/// One event's acknowledgement. Dropped unmarked, it fails its batch.
pub struct Ack {
    inner: Option<Arc<Inner>>,
    done: bool,
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack").field("done", &self.done).finish()
    }
}

impl Ack {
    /// A token that belongs to no batch (tests, replay).
    pub fn none() -> Ack {
        Ack {
            inner: None,
            done: false,
        }
    }

    /// The event's outcome is committed.
    pub fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let (false, Some(inner)) = (self.done, &self.inner) {
            inner.failed.store(true, Ordering::Release);
        }
    }
}

/// Resolves once every token of the batch is dropped.
pub struct Pending {
    rx: oneshot::Receiver<bool>,
}

impl Pending {
    /// Whether every event of the batch was committed.
    pub async fn wait(self) -> bool {
        self.rx.await.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_is_done_when_every_token_is_done() {
        let (batch, pending) = batch();
        let tokens: Vec<Ack> = (0..3).map(|_| batch.token()).collect();
        drop(batch);
        for token in tokens {
            token.done();
        }
        assert!(pending.wait().await);
    }

    #[tokio::test]
    async fn one_token_dropped_unmarked_fails_the_batch() {
        let (batch, pending) = batch();
        let a = batch.token();
        let b = batch.token();
        drop(batch);
        a.done();
        drop(b);
        assert!(!pending.wait().await);
    }

    #[tokio::test]
    async fn an_empty_batch_is_done() {
        let (batch, pending) = batch();
        drop(batch);
        assert!(pending.wait().await);
    }
}
