//! Delivering committed alerts from the outbox to the sinks, oldest first.
//!
//! An entry leaves the outbox only once every sink has accepted it; a sink
//! that fails is retried on the next round with a capped, jittered wait,
//! and the sinks that already accepted the alert are not sent it again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::outbox::{self, Entry};
use crate::aws::retry::Backoff;
use crate::detection::Alert;
use crate::state::{StateError, StateStore};
use crate::telemetry::metrics::AlertMetrics;

/// Entries read from the outbox per round.
const ROUND: usize = 100;

/// How often the outbox is looked at when nothing wakes the task.
const IDLE: Duration = Duration::from_secs(5);

/// Where alerts go.
#[derive(Debug, Clone)]
pub enum Sink {
    /// A log line per alert (at info, without the event itself).
    Log,
    /// One JSON object per line, appended to a file (`-`: standard output).
    JsonLines(PathBuf),
}

impl Sink {
    /// The sink's name in metrics and in an entry's delivery record.
    pub fn name(&self) -> &str {
        match self {
            Sink::Log => "log",
            Sink::JsonLines(_) => "file",
        }
    }

    async fn deliver(&self, alert: &Alert) -> Result<(), String> {
        match self {
            Sink::JsonLines(path) => {
                let mut line = alert.to_json_line();
                line.push('\n');
                let path = path.clone();
                tokio::task::spawn_blocking(move || append(&path, line.as_bytes()))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("cannot append to the alerts file: {e}"))
            }
            Sink::Log => {
                tracing::info!(
                    rule = %alert.rule.id,
                    title = %alert.rule.title,
                    level = alert.rule.level.as_str(),
                    principal = alert.principal.as_deref().unwrap_or("-"),
                    account = alert.account.as_deref().unwrap_or("-"),
                    region = alert.region.as_deref().unwrap_or("-"),
                    event = alert.event_name.as_deref().unwrap_or("-"),
                    event_time = alert.event_time.as_deref().unwrap_or("-"),
                    "alert"
                );
                Ok(())
            }
        }
    }
}

/// Appends one line, flushed to the file before the alert leaves the outbox.
fn append(path: &std::path::Path, line: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(line)?;
        return out.flush();
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(line)?;
    file.sync_data()
}

/// The delivery task.
pub struct Delivery {
    /// The state store holding the outbox.
    pub state: StateStore,
    /// Alert metrics.
    pub metrics: AlertMetrics,
    /// Woken when detection commits alerts.
    pub notify: Arc<Notify>,
    /// The sinks.
    pub sinks: Vec<Sink>,
}

impl Delivery {
    /// Delivers until `stop`, then makes one last pass over the outbox.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut wait = Duration::ZERO;
        loop {
            let stopping = tokio::select! {
                () = stop.cancelled() => true,
                () = self.notify.notified(), if wait.is_zero() => false,
                () = tokio::time::sleep(if wait.is_zero() { IDLE } else { wait }) => false,
            };
            match self.drain().await {
                Ok(true) => {
                    backoff.reset();
                    wait = Duration::ZERO;
                }
                Ok(false) => wait = backoff.next_delay(),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the alert outbox");
                    wait = backoff.next_delay();
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// Delivers what is pending; `Ok(false)` when some delivery failed.
    async fn drain(&self) -> Result<bool, StateError> {
        let mut clean = true;
        loop {
            let state = self.state.clone();
            let pending = tokio::task::spawn_blocking(move || outbox::pending(&state, ROUND))
                .await
                .map_err(|e| StateError::Io {
                    path: self.state.path().to_owned(),
                    source: std::io::Error::other(e.to_string()),
                })??;
            self.update_gauges(&pending);
            if pending.is_empty() {
                return Ok(clean);
            }
            let mut done = Vec::new();
            let mut retry: Vec<(String, Entry)> = Vec::new();
            for (key, mut entry) in pending {
                let mut failed = false;
                for sink in &self.sinks {
                    if entry.delivered_to.iter().any(|s| s == sink.name()) {
                        continue;
                    }
                    match sink.deliver(&entry.alert).await {
                        Ok(()) => {
                            self.metrics
                                .delivered
                                .with_label_values(&[sink.name()])
                                .inc();
                            entry.delivered_to.push(sink.name().to_owned());
                        }
                        Err(err) => {
                            self.metrics.failed.with_label_values(&[sink.name()]).inc();
                            tracing::warn!(sink = sink.name(), rule = %entry.alert.rule.id, error = %err, "alert delivery failed; it stays in the outbox");
                            failed = true;
                        }
                    }
                }
                if failed {
                    entry.attempts += 1;
                    retry.push((key, entry));
                } else {
                    done.push(key);
                }
            }
            let progress = !done.is_empty();
            let state = self.state.clone();
            let retry_len = retry.len();
            tokio::task::spawn_blocking(move || {
                state.write(|txn| {
                    for key in &done {
                        txn.remove_record(outbox::NAMESPACE, key)?;
                    }
                    for (key, entry) in &retry {
                        txn.put_record(outbox::NAMESPACE, key, entry, None)?;
                    }
                    Ok(())
                })
            })
            .await
            .map_err(|e| StateError::Io {
                path: self.state.path().to_owned(),
                source: std::io::Error::other(e.to_string()),
            })??;
            if retry_len > 0 {
                clean = false;
            }
            // Stop when a round made no progress: what failed waits for the backoff.
            if !progress {
                return Ok(clean);
            }
        }
    }

    fn update_gauges(&self, pending: &[(String, Entry)]) {
        let count = self.state.count(outbox::NAMESPACE).unwrap_or(pending.len());
        self.metrics
            .outbox_depth
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let oldest = pending
            .first()
            .map_or(0, |(_, e)| (now - e.committed_ms).max(0) / 1000);
        self.metrics.outbox_oldest_seconds.set(oldest);
    }
}
