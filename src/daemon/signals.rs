//! Waiting for the signals that ask the daemon to stop.

use tokio::signal::unix::{SignalKind, signal};

use super::DaemonError;

/// Resolves with the signal's name on SIGTERM or SIGINT.
pub(super) async fn terminated() -> Result<&'static str, DaemonError> {
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        _ = int.recv() => Ok("SIGINT"),
    }
}
