//! Where alerts go. Every sink takes a batch of alerts and answers for each
//! one; delivery removes an alert from the outbox once every sink that
//! routes it has accepted it.

mod file;
mod log;
mod sns;
pub mod sns_api;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use file::FileSink;
pub use log::LogSink;
pub use sns::{RouteHandle, SnsSink};

use super::route::Route;
use crate::aws::retry::ErrorClass;
use crate::detection::Alert;

/// What a sink answers for one alert.
pub type Outcome = Result<(), SinkError>;

/// A batch's outcomes, in the order of its alerts.
pub type Outcomes<'a> = Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'a>>;

/// Why a sink did not accept an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError {
    /// For the log.
    pub message: String,
    /// Whether trying again may help.
    pub class: ErrorClass,
    /// The sink refuses this alert as such (not the sink's own failure):
    /// after a few tries it is given up for this sink.
    pub refused: bool,
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.class)
    }
}

/// A destination for alerts.
pub trait Sink: Send + Sync {
    /// Its name in metrics, logs and outbox entries.
    fn name(&self) -> &str;

    /// Which alerts it takes now (a configuration reload may change it).
    fn route(&self) -> Arc<Route>;

    /// Alerts per minute at most, if limited.
    fn per_minute(&self) -> Option<u32> {
        None
    }

    /// Delivers `alerts`, answering for each in order.
    fn deliver<'a>(&'a self, alerts: &'a [&'a Alert]) -> Outcomes<'a>;
}
