//! Delivering committed alerts from the outbox to the sinks, oldest first.
//!
//! Each sink reads from its own position in the outbox: the entries it
//! routes and has not yet accepted, oldest first, so that a sink that is
//! down (or waiting for its rate limit) never holds back the others. Its
//! position moves past entries it is done with once they are a minute old
//! (so that an entry committed late under an older key is not skipped), and
//! starts over every few minutes. Each round hands each sink its entries
//! (in batches, within its rate limit), and then commits in one transaction: entries every routing sink is done with
//! leave the outbox, the others keep a record of which sinks took them, so
//! a retry never sends an alert to a sink twice.
//!
//! A sink that fails is left alone for a capped, jittered wait while the
//! others go on. An alert a sink refuses as such (SNS calls the message
//! invalid) is retried a few times, then given up for that sink, logged
//! with its id and counted; an error about the sink itself (access denied,
//! missing topic) is retried until someone fixes it, never given up.
//!
//! A kill between a sink accepting an alert and the commit sends that alert
//! again after the restart, with the same alert id; anything else is
//! delivered once.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::outbox::{self, Entry};
use super::rate::Allowance;
use super::sinks::{Outcome, Sink};
use crate::aws::retry::Backoff;
use crate::detection::Alert;
use crate::state::{StateError, StateStore};
use crate::telemetry::metrics::AlertMetrics;

/// Entries a sink takes from the outbox per round, at most.
const ROUND: usize = 500;

/// Outbox entries a sink looks through per round, at most: a bound on the
/// work of skipping what it is done with. At the bound the sink takes what
/// it found and looks further next round; nothing is dropped.
const SCAN: usize = 20 * ROUND;

/// A sink's position moves only past entries at least this old.
const POSITION_MARGIN_MS: i64 = 60_000;

/// A sink's position starts over from the oldest entry this often.
const POSITION_RESET: Duration = Duration::from_secs(300);

/// Alerts handed to a sink per call.
const SINK_BATCH: usize = 100;

/// Refusals of one alert by one sink before it is given up for that sink.
const REFUSALS: u32 = 3;

/// How often the outbox is looked at when nothing wakes the task.
const IDLE: Duration = Duration::from_secs(5);

/// After shutdown begins, delivery goes on this long at most; what is left
/// stays in the outbox for the next start.
const FINAL_PASS: Duration = Duration::from_secs(3);

/// The delivery task.
pub struct Delivery {
    /// The state store holding the outbox.
    pub state: StateStore,
    /// Alert metrics.
    pub metrics: AlertMetrics,
    /// Woken when alerts are committed.
    pub notify: Arc<Notify>,
    /// The sinks.
    pub sinks: Vec<Box<dyn Sink>>,
}

/// A sink's delivery state between rounds.
struct SinkState {
    allowance: Option<Allowance>,
    backoff: Backoff,
    retry_at: Option<Instant>,
    /// Every entry up to this key is done for the sink (or not routed to it).
    position: String,
    /// When `position` last started over.
    position_since: Instant,
}

/// What a round did.
struct Round {
    /// Something was delivered, given up or refused: go on at once.
    progress: bool,
    /// Otherwise, how long until a round may achieve something.
    wait: Duration,
}

impl Delivery {
    /// Delivers until `stop`, then makes a last, bounded pass over the outbox.
    pub async fn run(self, stop: CancellationToken) {
        let mut states = self.states();
        loop {
            let wait = self.drain(&mut states).await;
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.notify.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        let done = tokio::time::timeout(FINAL_PASS, self.drain(&mut states)).await;
        if done.is_err() {
            tracing::info!("alerts not yet delivered stay in the outbox for the next start");
        }
    }

    fn states(&self) -> Vec<SinkState> {
        self.sinks
            .iter()
            .map(|sink| SinkState {
                allowance: sink.per_minute().map(Allowance::per_minute),
                backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(120)),
                retry_at: None,
                position: String::new(),
                position_since: Instant::now(),
            })
            .collect()
    }

    /// Runs rounds while they make progress; returns how long to wait then.
    async fn drain(&self, states: &mut [SinkState]) -> Duration {
        loop {
            match self.round(states).await {
                Ok(round) if round.progress => {}
                Ok(round) => return round.wait,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read or update the alert outbox");
                    return IDLE;
                }
            }
        }
    }

    /// Reads the sink's next entries from its position: up to [`ROUND`] it
    /// routes and is not done with, looking through at most [`SCAN`], and
    /// moves its position past the old entries it is done with.
    async fn window(
        &self,
        sink: &dyn Sink,
        state: &mut SinkState,
        into: &mut std::collections::BTreeMap<String, Entry>,
    ) -> Result<(), StateError> {
        if state.position_since.elapsed() >= POSITION_RESET {
            state.position.clear();
            state.position_since = Instant::now();
        }
        let settled_before = millis_now() - POSITION_MARGIN_MS;
        let (mut scanned, mut taken, mut moving) = (0, 0, true);
        let mut after = state.position.clone();
        while scanned < SCAN && taken < ROUND {
            let from = after.clone();
            let page = self
                .blocking(move |store| outbox::pending_after(&store, &from, ROUND))
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            scanned += page.len();
            let full = page.len() == ROUND;
            for (key, entry) in page {
                let todo = sink.route().accepts(&entry.alert) && !entry.done_for(sink.name());
                if todo {
                    moving = false;
                    taken += 1;
                    into.entry(key).or_insert(entry);
                } else if moving && entry.committed_ms < settled_before {
                    state.position = key;
                } else {
                    moving = false;
                }
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    async fn round(&self, states: &mut [SinkState]) -> Result<Round, StateError> {
        let oldest = self.blocking(|state| outbox::pending(&state, 1)).await?;
        self.update_oldest(&oldest);
        let mut window = std::collections::BTreeMap::new();
        for (sink, state) in self.sinks.iter().zip(states.iter_mut()) {
            if state.retry_at.is_some_and(|at| at > Instant::now()) {
                continue;
            }
            self.window(sink.as_ref(), state, &mut window).await?;
        }
        let mut entries: Vec<(String, Entry)> = window.into_iter().collect();
        if oldest.is_empty() {
            self.metrics.outbox_depth.set(0);
            return Ok(Round {
                progress: false,
                wait: IDLE,
            });
        }
        let mut changed = vec![false; entries.len()];
        let mut progress = false;
        let mut wait = IDLE;
        for (sink, state) in self.sinks.iter().zip(states.iter_mut()) {
            let now = Instant::now();
            if let Some(at) = state.retry_at.filter(|at| *at > now) {
                wait = wait.min(at - now);
                continue;
            }
            let mut todo: Vec<usize> = (0..entries.len())
                .filter(|&i| {
                    let entry = &entries[i].1;
                    sink.route().accepts(&entry.alert) && !entry.done_for(sink.name())
                })
                .collect();
            if todo.is_empty() {
                continue;
            }
            if let Some(allowance) = state.allowance.as_mut() {
                let granted = allowance.take(todo.len());
                if granted < todo.len() {
                    let waiting = todo.len() - granted;
                    self.metrics
                        .rate_limited
                        .with_label_values(&[sink.name()])
                        .inc_by(waiting as u64);
                    wait = wait.min(allowance.until_next().max(Duration::from_millis(100)));
                    todo.truncate(granted);
                }
            }
            let mut sent = 0;
            for chunk in todo.chunks(SINK_BATCH) {
                let alerts: Vec<&Alert> = chunk.iter().map(|&i| &entries[i].1.alert).collect();
                let outcomes = sink.deliver(&alerts).await;
                sent += chunk.len();
                let mut failure = None;
                for (n, &i) in chunk.iter().enumerate() {
                    // A sink answering for fewer alerts than it was given failed the rest.
                    let outcome = outcomes.get(n).cloned().unwrap_or_else(|| {
                        Err(super::sinks::SinkError {
                            message: "the sink did not answer for this alert".to_owned(),
                            class: crate::aws::retry::ErrorClass::Transient,
                            refused: false,
                        })
                    });
                    changed[i] = true;
                    let (key, entry) = &mut entries[i];
                    match self.settle(sink.as_ref(), key, entry, outcome) {
                        Settled::Progress => progress = true,
                        Settled::Failed(message) => failure = Some(message),
                    }
                }
                if let Some(message) = failure {
                    let delay = state.backoff.next_delay();
                    state.retry_at = Some(Instant::now() + delay);
                    wait = wait.min(delay);
                    if let Some(allowance) = state.allowance.as_mut() {
                        allowance.give_back(todo.len() - sent);
                    }
                    tracing::warn!(
                        sink = sink.name(),
                        error = %message,
                        retry_in = %humantime::format_duration(Duration::from_millis(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))),
                        "alert delivery failed; the alerts stay in the outbox"
                    );
                    break;
                }
                state.backoff.reset();
                state.retry_at = None;
            }
        }
        let sinks = &self.sinks;
        let is_done = |entry: &Entry| {
            sinks
                .iter()
                .all(|s| !s.route().accepts(&entry.alert) || entry.done_for(s.name()))
        };
        let mut done = Vec::new();
        let mut kept = Vec::new();
        for ((key, entry), changed) in entries.into_iter().zip(changed) {
            if is_done(&entry) {
                done.push(key);
            } else if changed {
                kept.push((key, entry));
            }
        }
        let remaining = self
            .blocking(move |state| {
                state.write(|txn| {
                    for key in &done {
                        txn.remove_record(outbox::NAMESPACE, key)?;
                    }
                    for (key, entry) in &kept {
                        txn.put_record(outbox::NAMESPACE, key, entry, None)?;
                    }
                    Ok(())
                })?;
                state.count(outbox::NAMESPACE)
            })
            .await?;
        self.metrics
            .outbox_depth
            .set(i64::try_from(remaining).unwrap_or(i64::MAX));
        Ok(Round { progress, wait })
    }

    /// Records `outcome` of `sink` for the entry under `key`.
    fn settle(&self, sink: &dyn Sink, key: &str, entry: &mut Entry, outcome: Outcome) -> Settled {
        let name = sink.name();
        let refusals = entry.refusals.iter().position(|(s, _)| s == name);
        match outcome {
            Ok(()) => {
                self.metrics.delivered.with_label_values(&[name]).inc();
                entry.delivered_to.push(name.to_owned());
                if let Some(i) = refusals {
                    entry.refusals.remove(i);
                }
                Settled::Progress
            }
            Err(err) if err.refused => {
                self.metrics.failed.with_label_values(&[name]).inc();
                let count = match refusals {
                    Some(i) => {
                        entry.refusals[i].1 += 1;
                        entry.refusals[i].1
                    }
                    None => {
                        entry.refusals.push((name.to_owned(), 1));
                        1
                    }
                };
                if count >= REFUSALS {
                    entry.given_up.push(name.to_owned());
                    self.metrics.undeliverable.with_label_values(&[name]).inc();
                    tracing::error!(sink = name, alert = key, rule = %entry.alert.rule.id, error = %err, "the sink refused this alert {REFUSALS} times; it is given up for this sink");
                }
                Settled::Progress
            }
            Err(err) => {
                self.metrics.failed.with_label_values(&[name]).inc();
                entry.attempts += 1;
                Settled::Failed(err.to_string())
            }
        }
    }

    /// Runs `work` on the state store off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(StateStore) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || work(state))
            .await
            .map_err(|e| StateError::Io {
                path: self.state.path().to_owned(),
                source: std::io::Error::other(e.to_string()),
            })?
    }

    fn update_oldest(&self, pending: &[(String, Entry)]) {
        let now = millis_now();
        let oldest = pending
            .first()
            .map_or(0, |(_, e)| (now - e.committed_ms).max(0) / 1000);
        self.metrics.outbox_oldest_seconds.set(oldest);
    }
}

#[cfg(test)]
mod tests;

/// Now, in milliseconds since the epoch.
fn millis_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What one outcome meant for the round.
enum Settled {
    Progress,
    Failed(String),
}
