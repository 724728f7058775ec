//! Alerts after detection: noise control, the durable outbox, and delivery.
//!
//! Detection hands each alert to [`noise`] inside its commit transaction:
//! suppressed alerts stop there, repeats within a dedup window are counted
//! for a later summary, and the rest are committed to the [`outbox`] with
//! the batch's other state. [`delivery`] reads the outbox oldest first and
//! hands alerts to the [`sinks`] (log, JSON lines, SNS topics), each
//! through its [`route`] and rate limit, removing an entry only once every
//! sink that routes it has accepted it. [`render`] turns an alert into the
//! words people read; [`topics`] checks the SNS topics before anything runs.

pub mod delivery;
pub mod noise;
pub mod outbox;
pub mod rate;
pub mod render;
pub mod route;
pub mod sinks;
pub mod suppression;
pub mod topics;

#[cfg(test)]
pub(crate) mod testing;
