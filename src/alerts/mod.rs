//! Alerts after detection: the durable outbox and delivery to sinks.
//!
//! Detection commits each alert to the [`outbox`] in the same transaction
//! as its other state; [`delivery`] reads the outbox oldest first and hands
//! alerts to the configured sinks, removing an entry only once every sink
//! has accepted it.

pub mod delivery;
pub mod outbox;
