//! Posture: whether the account's trails, security groups and IAM are in
//! a safe state, known at every moment, and the settings cloudwarden is
//! told to keep put in place.
//!
//! The layout follows `alarms`:
//! - [`catalog`] is the table of checks (id, severity, CIS control, remediation);
//! - [`facts`] is what a sweep reads, [`api`] the narrow AWS interface that
//!   reads it (and makes the few changes declared settings need);
//! - [`checks`] are pure functions from facts to findings;
//! - [`sweep`] runs the checks over targets and says which scopes it read
//!   completely; [`findings`] keeps the open/resolved lifecycle in the
//!   state store and stages alerts in the outbox;
//! - [`desired`] and [`ensure`] are desired state → plan → apply, with
//!   ownership by tag or `adopt`;
//! - [`task`] is the daemon loop: full sweeps on an interval, re-checks
//!   seconds after an event touches a checked resource ([`Rechecks`] is
//!   how detection tells it).

pub mod api;
pub mod catalog;
pub mod checks;
pub mod desired;
pub mod ensure;
pub mod facts;
pub mod findings;
pub mod sweep;
pub mod task;
#[cfg(test)]
mod testing;

use prometheus::IntCounter;
use tokio::sync::mpsc;

use crate::detection::touch::Touch;

/// Events queued for a re-check at most; beyond it they are dropped and
/// counted (the next full sweep sees the change anyway).
pub const RECHECK_CAPACITY: usize = 1024;

/// Detection's side of the re-check queue.
#[derive(Debug, Clone)]
pub struct Rechecks {
    tx: mpsc::Sender<Touch>,
    dropped: IntCounter,
}

impl Rechecks {
    /// A bounded queue: detection offers, the posture task receives.
    pub fn channel(dropped: IntCounter) -> (Rechecks, mpsc::Receiver<Touch>) {
        let (tx, rx) = mpsc::channel(RECHECK_CAPACITY);
        (Rechecks { tx, dropped }, rx)
    }

    /// Offers `touch` without waiting: detection never blocks on posture.
    pub fn offer(&self, touch: Touch) {
        if self.tx.try_send(touch).is_err() {
            self.dropped.inc();
        }
    }
}
