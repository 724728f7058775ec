//! The pipeline's plumbing: events, acknowledgements, and the bounded
//! channel from sources to detection.
//!
//! ```text
//! sources ──EventSender──▶ [bounded channel] ──EventReceiver──▶ detection ──▶ outbox ──▶ sinks
//!    ▲                                                              │
//!    └──────────── Ack: the event's outcome is committed ───────────┘
//! ```

mod ack;
mod channel;

pub use ack::{Ack, Batch, Pending, batch};
pub use channel::{Event, EventReceiver, EventSender, PipelineClosed, channel};
