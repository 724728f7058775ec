//! The pipeline's plumbing: events, acknowledgements, the bounded channel
//! from sources to detection, and the stage that runs the detection engine
//! and commits what it decided.
//!
//! ```text
//! sources ──EventSender──▶ [bounded channel] ──EventReceiver──▶ detection ──▶ outbox ──▶ sinks
//!    ▲                                                              │
//!    └──────────── Ack: the event's outcome is committed ───────────┘
//! ```

mod ack;
mod channel;
pub mod stage;

pub use ack::{Ack, Batch, Pending, batch};
pub use channel::{Event, EventReceiver, EventSender, PipelineClosed, channel};
