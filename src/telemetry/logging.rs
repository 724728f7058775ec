//! Structured logs through `tracing`: JSON for machines, text for people.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `RUST_LOG` holds a directive tracing cannot parse.
    #[error("RUST_LOG is invalid: {0}")]
    InvalidRustLog(String),
    /// A global subscriber was installed already (only in tests).
    #[error("logging was already initialised")]
    AlreadyInitialised,
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(config: &LogConfig) -> Result<(), LoggingError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::builder()
            .parse(&directives)
            .map_err(|err| LoggingError::InvalidRustLog(err.to_string()))?,
        // log.level was parsed during validation, so this cannot fail; "info" is the fallback.
        _ => EnvFilter::builder()
            .parse(&config.level)
            .unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init()
    };
    result.map_err(|_| LoggingError::AlreadyInitialised)
}
