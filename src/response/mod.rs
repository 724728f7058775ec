//! Response: acting on an alert or a posture finding, safely. Dry run by
//! default, guarded (protected resources, a rate limit, the event's age,
//! never cloudwarden's own principal), exactly once across crashes, and
//! journaled with an alert that says how to undo it.
//!
//! - [`actions`]: the actions and the targets they work out from events
//!   and findings (pure);
//! - [`intent`]: intents, committed with the alert that caused them;
//! - [`api`]: the narrow AWS interface, [`perform`]: one action carried
//!   out idempotently (read, then change), and its undo; [`selectors`]:
//!   a trail's event selectors, kept for undo;
//! - [`worker`]: the daemon task that turns intents into outcomes, each
//!   committed with its journal entry and its alert.

pub mod actions;
pub mod api;
pub mod intent;
pub mod perform;
pub mod selectors;
pub mod worker;

pub use intent::Bindings;
