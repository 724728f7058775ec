//! Detection: what turns events into alerts.
//!
//! Today this holds the pieces other stages already share (severity levels)
//! and the pipeline stage that consumes events ([`stage`]). The Sigma engine,
//! correlations and anomaly detectors plug in behind [`stage::DetectionStage`].

pub mod level;
pub mod stage;

pub use level::Level;
