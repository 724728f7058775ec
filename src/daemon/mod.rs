//! The daemon's lifecycle: start everything in order, run, and stop along one path.
//!
//! [`Daemon::start`] opens the state store, binds the admin server and
//! spawns the pipeline; [`Daemon::shutdown`] is the one way down: stop the
//! sources, let detection drain what they queued, close the state store,
//! stop the admin server — all within the configured grace period.
//! [`run`] wraps both for the binary with signals and systemd notifications;
//! when a critical task failed, it returns that failure after the shutdown,
//! so the process exits non-zero and a supervisor restarts it.

mod error;
mod lifecycle;
mod signals;
mod systemd;

pub use error::DaemonError;
pub use lifecycle::{Daemon, FAIL_STATE_WRITES};

use crate::config::Config;

/// Runs the daemon until SIGTERM or SIGINT, then shuts down within the grace period.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let grace = config.daemon.shutdown_grace;
    let daemon = Daemon::start(config).await?;
    systemd::ready();
    let watchdog = systemd::spawn_watchdog(daemon.status().clone(), daemon.stop_token());
    let reason = tokio::select! {
        signal = signals::terminated() => signal?,
        () = daemon.stopped_by_failure() => "a critical task failed",
    };
    tracing::info!(reason, grace = %humantime::format_duration(grace), "shutting down");
    systemd::stopping();
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    daemon.shutdown().await
}
