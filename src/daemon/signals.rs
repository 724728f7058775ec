//! The signals the daemon answers: SIGTERM and SIGINT stop it, SIGHUP
//! reloads its configuration.

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::DaemonError;

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    /// Stop, for the named signal.
    Stop(&'static str),
    /// Re-read the configuration and rules.
    Reload,
}

/// The signals, listened to from start to stop so none is missed between
/// two waits.
pub(super) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers; from now on SIGHUP no longer ends the process.
    pub(super) fn install() -> Result<Signals, DaemonError> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(DaemonError::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?,
            hup: signal(SignalKind::hangup()).map_err(DaemonError::Signals)?,
        })
    }

    /// The next signal.
    pub(super) async fn next(&mut self) -> Asked {
        tokio::select! {
            _ = self.term.recv() => Asked::Stop("SIGTERM"),
            _ = self.int.recv() => Asked::Stop("SIGINT"),
            _ = self.hup.recv() => Asked::Reload,
        }
    }
}
