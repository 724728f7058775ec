//! Detection: what turns events into alerts.
//!
//! - [`sigma`] loads and compiles Sigma rules, the open format the security
//!   community writes detections in, and evaluates them on one event.
//! - [`correlation`] runs Sigma correlation rules (counts, distinct values,
//!   sequences) over event time, with bounded state.
//! - [`anomaly`] learns what is usual for each principal (the values it
//!   uses, its rate of events) and says what is not, with bounded state.
//! - [`engine`] ties them together: one record in, alerts out. It is pure
//!   computation, so it can be tested, benchmarked and fuzzed alone.
//! - [`event`] parses records within limits and says why one is rejected.
//! - [`enrich`] adds fields computed from an event before rules read it
//!   (`cloudwarden.policy`: the policy documents in its request, parsed).
//! - [`touch`] says which checked resource an event changed (posture's
//!   event-driven re-checks).
//! - [`alert`] is the Alert model every later stage shares.
//! - [`level`] is Sigma's severity scale.

pub mod alert;
pub mod anomaly;
pub mod correlation;
pub mod dedup;
pub mod engine;
pub mod enrich;
pub mod event;
pub mod level;
pub mod ruletest;
pub mod sigma;
pub mod touch;

pub use alert::Alert;
pub use engine::{Engine, EngineConfig, EventInput};
pub use level::Level;
