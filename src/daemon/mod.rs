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

use crate::config::{Config, ConfigLocation};

/// Runs the daemon until SIGTERM or SIGINT, then shuts down within the
/// grace period. SIGHUP re-reads the configuration at `location`: a valid
/// one is put in place (see [`Daemon::reload`]), an invalid one is refused
/// with every problem logged, and the running configuration stays.
pub async fn run(config: Config, location: ConfigLocation) -> Result<(), DaemonError> {
    let grace = config.daemon.shutdown_grace;
    let mut signals = signals::Signals::install()?;
    let daemon = Daemon::start(config).await?;
    systemd::ready();
    let watchdog = systemd::spawn_watchdog(daemon.status().clone(), daemon.stop_token());
    let reason = loop {
        let asked = tokio::select! {
            asked = signals.next() => asked,
            () = daemon.stopped_by_failure() => break "a critical task failed",
        };
        match asked {
            signals::Asked::Stop(signal) => break signal,
            // Reading and compiling rules blocks: let the other workers go on.
            signals::Asked::Reload => {
                let multi = tokio::runtime::Handle::current().runtime_flavor()
                    == tokio::runtime::RuntimeFlavor::MultiThread;
                if multi {
                    tokio::task::block_in_place(|| reload(&daemon, &location));
                } else {
                    reload(&daemon, &location);
                }
            }
        }
    };
    tracing::info!(reason, grace = %humantime::format_duration(grace), "shutting down");
    systemd::stopping();
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    daemon.shutdown().await
}

/// Re-reads the configuration for a SIGHUP and puts it in place, or says
/// why not.
fn reload(daemon: &Daemon, location: &ConfigLocation) {
    tracing::info!(path = %location.path.display(), "SIGHUP: reloading the configuration");
    match crate::config::load(location) {
        Ok(config) => {
            if !daemon.reload(&config, location) {
                tracing::error!(
                    "configuration not reloaded: the running configuration stays in place"
                );
                daemon.reloaded(false);
            }
        }
        Err(errors) => {
            for problem in &errors.problems {
                tracing::error!(problem = %problem, "configuration problem");
            }
            tracing::error!(
                problems = errors.problems.len(),
                "configuration not reloaded: the running configuration stays in place"
            );
            daemon.reloaded(false);
        }
    }
}
