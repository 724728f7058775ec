//! Telemetry: what cloudwarden tells operators about itself.
//!
//! [`metrics`] holds every Prometheus metric, [`status`] what `/healthz` and
//! `/readyz` answer, [`admin`] the HTTP server that serves them, and
//! [`logging`] the tracing subscriber. A logged warning or error about an
//! event, a source or a delivery is always paired with a metric, so that what
//! the logs say can be alerted on.

pub mod admin;
pub mod logging;
pub mod metrics;
pub mod status;

pub use metrics::Metrics;
pub use status::Status;
