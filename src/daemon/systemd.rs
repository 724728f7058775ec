//! The systemd notify protocol: READY=1, WATCHDOG=1 while healthy, STOPPING=1.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Status;

/// Tells systemd the daemon is serving.
pub(super) fn ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// Tells systemd the daemon is stopping.
pub(super) fn stopping() {
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("draining the pipeline"),
    ]);
}

/// When the unit sets `WatchdogSec`, pings at half that interval while the
/// daemon is healthy. A daemon whose critical task died stops pinging, and
/// systemd restarts it.
pub(super) fn spawn_watchdog(status: Status, stop: CancellationToken) -> Option<JoinHandle<()>> {
    let timeout = sd_notify::watchdog_enabled()?;
    let every = timeout / 2;
    tracing::info!(every = %humantime::format_duration(every), "systemd watchdog enabled");
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match status.healthy() {
                Ok(()) => notify(&[NotifyState::Watchdog]),
                Err(failures) => {
                    tracing::error!(
                        ?failures,
                        "unhealthy: withholding the systemd watchdog ping"
                    );
                }
            }
        }
    }))
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!(error = %err, "cannot notify systemd");
    }
}
