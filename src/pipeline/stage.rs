//! The detection stage: the engine inside the daemon's pipeline.
//!
//! It takes events in batches from the channel, evaluates them, and commits
//! each batch's outcome in one state-store transaction: the alerts (into the
//! outbox), the eventIDs seen (for dedup after a restart) and the changed
//! correlation groups. Only then are the events acknowledged, so a source
//! never moves its checkpoint past an event whose alerts are not stored.
//! A commit that keeps failing stops the stage, and with it the daemon: the
//! engine's memory would otherwise disagree with the store, and a restart
//! re-reads from the checkpoints without losing anything.
//!
//! Shutdown relies on this: when the sources stop, their senders drop, the
//! channel closes, and this loop ends only after the last queued event is
//! handled, so nothing read is left behind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use super::{Event, EventReceiver};
use crate::alerts::noise::{NoiseControl, Verdict};
use crate::alerts::outbox;
use crate::detection::engine::{Engine, EventInput, Processed};
use crate::detection::event::{Reason, Rejection};
use crate::detection::{Alert, anomaly, correlation};
use crate::state::{StateError, StateStore, WriteTxn};
use crate::telemetry::metrics::DetectionMetrics;

/// Events evaluated per commit, at most.
const MAX_BATCH: usize = 512;

/// Commit attempts before the stage gives up.
const COMMIT_ATTEMPTS: u32 = 4;

/// Rejections logged per source and reason each minute; the rest are counted.
const REJECTION_LOGS_PER_MINUTE: u32 = 10;

/// State store namespace of the eventIDs seen.
pub const DEDUP_NAMESPACE: &str = "dedup";

/// State store namespace of correlation groups.
pub const CORRELATION_NAMESPACE: &str = "correlation";

/// State store namespace of anomaly groups.
pub const ANOMALY_NAMESPACE: &str = "anomaly";

/// Checkpoint of the newest event time correlations have seen.
pub const NEWEST_CHECKPOINT: &str = "correlation.newest";

/// What the stage needs besides its events and engine.
pub struct StageContext {
    /// Where outcomes are committed.
    pub state: StateStore,
    /// Detection metrics.
    pub metrics: DetectionMetrics,
    /// Woken when alerts were committed.
    pub outbox: Arc<Notify>,
    /// Outbox keys.
    pub keys: Arc<outbox::Keys>,
    /// Suppressions and dedup windows, decided in the commit.
    pub noise: Arc<NoiseControl>,
    /// The dedup window; a stored eventID lives at least this long (and at
    /// most 90 days) on the wall clock, as a backstop to forgetting by event time.
    pub dedup_window: Duration,
    /// How long a correlation group outlives its last event in the store.
    pub correlation_retention: Duration,
    /// An engine with reloaded rules, put in place before the next batch;
    /// a newer reload replaces one not yet taken.
    pub reload: Option<ReloadSlot>,
    /// Where events that touched a checked resource are offered to posture.
    pub touches: Option<crate::posture::Rechecks>,
    /// Response actions bound to rules, and the worker to wake when an
    /// intent is committed.
    pub response: Option<(Arc<crate::response::Bindings>, Arc<Notify>)>,
}

/// Where the daemon leaves a [`Reload`] for the stage: one at most.
pub type ReloadSlot = Arc<std::sync::Mutex<Option<Reload>>>;

/// Rules reloaded while the daemon runs: an engine built from them, and the
/// retention of correlation groups that goes with them.
pub struct Reload {
    /// The new engine, without state: the stage restores it from the store.
    pub engine: Engine,
    /// How long a correlation group outlives its last event in the store.
    pub correlation_retention: Duration,
}

/// What a run of the stage did, for shutdown logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageSummary {
    /// Events handled (processed, duplicates and rejected).
    pub events: u64,
    /// Alerts committed.
    pub alerts: u64,
}

/// What was restored from the store at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// eventIDs remembered for dedup.
    pub seen: usize,
    /// Correlation groups.
    pub groups: usize,
    /// Anomaly groups.
    pub anomaly_groups: usize,
}

/// The stage could not commit an outcome and stopped.
#[derive(Debug, thiserror::Error)]
#[error("detection cannot commit to the state store after {COMMIT_ATTEMPTS} attempts: {0}")]
pub struct CommitFailed(pub StateError);

/// The stage between sources and alert delivery.
pub struct DetectionStage {
    events: EventReceiver,
    engine: Engine,
    ctx: StageContext,
    last_stats: correlation::Stats,
    last_anomaly: anomaly::Stats,
    last_dedup_evictions: u64,
    rejection_log: HashMap<(Arc<str>, Reason), (Instant, u32, u64)>,
}

impl DetectionStage {
    /// A stage reading from `events` with `engine`.
    pub fn new(events: EventReceiver, mut engine: Engine, ctx: StageContext) -> Self {
        engine.track_for_persistence();
        DetectionStage {
            events,
            engine,
            ctx,
            last_stats: correlation::Stats::default(),
            last_anomaly: anomaly::Stats::default(),
            last_dedup_evictions: 0,
            rejection_log: HashMap::new(),
        }
    }

    /// Loads the dedup and correlation state of earlier runs.
    pub fn restore(&mut self) -> Result<Restored, StateError> {
        let now = SystemTime::now();
        let mut seen: Vec<(String, i64)> =
            self.ctx.state.records(DEDUP_NAMESPACE, now, usize::MAX)?;
        // Oldest first, so that past a (lowered) capacity the oldest go.
        seen.sort_by_key(|(_, time)| *time);
        let mut restored = Restored::default();
        for (key, time) in seen {
            // `SOURCE<US>HASH`; ids saved by an older version have no source.
            let (source, hash) = key.split_once('\u{1f}').unwrap_or(("", &key));
            if let Ok(hash) = u128::from_str_radix(hash, 16) {
                self.engine.restore_seen(source, hash, time);
                restored.seen += 1;
            }
        }
        if let Some(newest) = self.ctx.state.checkpoint::<i64>(NEWEST_CHECKPOINT)? {
            self.engine.restore_newest_event_time(newest);
        }
        let groups: Vec<(String, correlation::Group)> =
            self.ctx
                .state
                .records(CORRELATION_NAMESPACE, now, usize::MAX)?;
        for (key, group) in groups {
            if let Some((rule, group_key)) = key.split_once('\u{1f}') {
                if self.engine.restore_group(rule, group_key, group) {
                    restored.groups += 1;
                }
            }
        }
        let anomalies: Vec<(String, anomaly::State)> =
            self.ctx.state.records(ANOMALY_NAMESPACE, now, usize::MAX)?;
        for (key, state) in anomalies {
            let group = key
                .split_once('\u{1f}')
                .and_then(|(rule, hash)| Some((rule, u64::from_str_radix(hash, 16).ok()?)));
            if let Some((rule, group)) = group {
                if self.engine.restore_anomaly(rule, group, state) {
                    restored.anomaly_groups += 1;
                }
            }
        }
        // What was restored is stored already.
        let _ = self.engine.take_seen();
        let _ = self.engine.take_state_changes();
        let _ = self.engine.take_anomaly_changes();
        self.update_gauges();
        Ok(restored)
    }

    /// Handles events until the channel is closed and drained. Blocks: run it
    /// on a thread of its own (`spawn_blocking`).
    pub fn run(mut self) -> Result<StageSummary, CommitFailed> {
        let mut summary = StageSummary::default();
        while let Some(first) = self.events.blocking_recv() {
            self.take_reload().map_err(CommitFailed)?;
            let mut batch = Vec::with_capacity(MAX_BATCH);
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match self.events.try_recv() {
                    Some(event) => batch.push(event),
                    None => break,
                }
            }
            summary.events += batch.len() as u64;
            summary.alerts += self.handle(batch)? as u64;
        }
        Ok(summary)
    }

    /// Puts the newest reloaded engine in place, if one came. Every batch so
    /// far is committed, so the store holds all of the old engine's state
    /// (eventIDs seen, correlation groups): the new one restores it, as at a
    /// start, and nothing read is evaluated twice or lost.
    fn take_reload(&mut self) -> Result<(), StateError> {
        let Some(slot) = &self.ctx.reload else {
            return Ok(());
        };
        let taken = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(reload) = taken else {
            return Ok(());
        };
        self.engine = reload.engine;
        self.engine.track_for_persistence();
        self.ctx.correlation_retention = reload.correlation_retention;
        self.last_stats = correlation::Stats::default();
        self.last_anomaly = anomaly::Stats::default();
        self.last_dedup_evictions = 0;
        let restored = self.restore()?;
        tracing::info!(
            seen_ids = restored.seen,
            correlation_groups = restored.groups,
            anomaly_groups = restored.anomaly_groups,
            "reloaded rules in place; detection state carried over"
        );
        Ok(())
    }

    fn handle(&mut self, batch: Vec<Event>) -> Result<usize, CommitFailed> {
        let started = Instant::now();
        let mut alerts: Vec<Alert> = Vec::new();
        let mut acks = Vec::with_capacity(batch.len());
        // The newest event time of each source in the batch, for freshness.
        let mut freshest: Vec<(Arc<str>, i64)> = Vec::new();
        for event in batch {
            let origin = &event.origin;
            let input = EventInput {
                raw: &event.raw,
                format: event.format,
                logsource: &event.logsource,
                source: Some(&event.source),
                origin: Some(origin),
                time_hint_ms: event.time_hint_ms,
                dedup_id: event.dedup_id.as_deref(),
                reread_from: event
                    .reread_from
                    .as_ref()
                    .map(|(part, from)| (&**part, *from)),
            };
            let processed = self.engine.process(&input);
            if let Ok(Processed {
                time_ms: Some(time),
                ..
            }) = &processed
            {
                match freshest.iter_mut().find(|(s, _)| *s == event.source) {
                    Some((_, t)) => *t = (*t).max(*time),
                    None => freshest.push((Arc::clone(&event.source), *time)),
                }
            }
            match processed {
                Ok(processed) if processed.duplicate => {
                    self.ctx
                        .metrics
                        .duplicates
                        .with_label_values(&[&event.source])
                        .inc();
                }
                Ok(processed) => {
                    if let (Some(touch), Some(rechecks)) = (processed.touch, &self.ctx.touches) {
                        rechecks.offer(touch);
                    }
                    alerts.extend(processed.alerts);
                }
                Err(rejection) => self.reject(&event, &rejection),
            }
            acks.push((event.source, event.ack));
        }
        let processed = self.events.metrics().events_processed.clone();
        let now = SystemTime::now();
        let now_ms = millis(now);
        let seen = Seen {
            new: self.engine.take_seen(),
            forgotten: self.engine.take_forgotten(),
        };
        let changes = Changes {
            correlation: self.engine.take_state_changes(),
            anomaly: self.engine.take_anomaly_changes(),
        };
        let newest = self.engine.newest_event_time();
        let mut attempt = 0;
        let (verdicts, intents) = loop {
            attempt += 1;
            let result = self.ctx.state.write(|txn| {
                let mut verdicts = Vec::with_capacity(alerts.len());
                let mut intents = 0;
                for alert in &alerts {
                    let verdict = self.ctx.noise.admit(txn, alert, now, &self.ctx.keys)?;
                    if let Verdict::Deliver { .. } = verdict {
                        outbox::stage(txn, &self.ctx.keys.next(now_ms), alert, now_ms)?;
                    }
                    // A repeat held back by its window is still an event
                    // to act on; a suppressed alert is not.
                    if let (Some((bindings, _)), false) = (
                        &self.ctx.response,
                        matches!(verdict, Verdict::Suppressed(_)),
                    ) {
                        let wanted = bindings.for_alert(alert, now_ms);
                        intents +=
                            crate::response::intent::stage(txn, &wanted, &self.ctx.keys, now_ms)?;
                    }
                    verdicts.push(verdict);
                }
                persist(txn, &seen, &changes, newest, now, &self.ctx)?;
                Ok((verdicts, intents))
            });
            match result {
                Ok(done) => break done,
                Err(err) if attempt < COMMIT_ATTEMPTS => {
                    self.ctx.metrics.commit_retries.inc();
                    tracing::warn!(error = %err, attempt, "detection commit failed; retrying");
                    std::thread::sleep(Duration::from_millis(100 * u64::from(attempt * attempt)));
                }
                Err(err) => return Err(CommitFailed(err)),
            }
        };
        // Only once committed: a worker woken earlier would not see them.
        if let (true, Some((_, wake))) = (intents > 0, &self.ctx.response) {
            wake.notify_one();
        }
        for (source, ack) in acks {
            processed.with_label_values(&[&source]).inc();
            ack.done();
        }
        // A time past the clock (poisoned or skewed) must not make a stalled
        // source look fresh.
        let now_s = now_ms / 1000;
        for (source, time) in freshest {
            let gauge = self.ctx.metrics.newest_event.with_label_values(&[&source]);
            gauge.set(gauge.get().max((time / 1000).min(now_s)));
        }
        let mut staged = false;
        for (alert, verdict) in alerts.iter().zip(&verdicts) {
            self.ctx
                .metrics
                .alerts
                .with_label_values(&[&alert.rule.id, alert.rule.level.as_str()])
                .inc();
            self.ctx.noise.count(alert, *verdict);
            staged |= matches!(verdict, Verdict::Deliver { .. });
        }
        if staged {
            self.ctx.outbox.notify_one();
        }
        self.update_gauges();
        self.ctx
            .metrics
            .batch_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(alerts.len())
    }

    /// Counts a rejection and logs it, at most a few times a minute per
    /// source and reason, with where it came from but not its content.
    fn reject(&mut self, event: &Event, rejection: &Rejection) {
        self.ctx
            .metrics
            .rejected
            .with_label_values(&[&event.source, rejection.reason.as_str()])
            .inc();
        let slot = self
            .rejection_log
            .entry((Arc::clone(&event.source), rejection.reason))
            .or_insert((Instant::now(), 0, 0));
        if slot.0.elapsed() >= Duration::from_secs(60) {
            if slot.2 > 0 {
                tracing::warn!(source = %event.source, reason = rejection.reason.as_str(), count = slot.2, "more records rejected for the same reason (not logged one by one)");
            }
            *slot = (Instant::now(), 0, 0);
        }
        if slot.1 < REJECTION_LOGS_PER_MINUTE {
            slot.1 += 1;
            tracing::warn!(source = %event.source, origin = %event.origin, reason = rejection.reason.as_str(), detail = %rejection.detail, "record rejected and skipped");
        } else {
            slot.2 += 1;
        }
    }

    fn update_gauges(&mut self) {
        let m = &self.ctx.metrics;
        let stats = self.engine.correlation_stats();
        m.correlation_groups
            .set(i64::try_from(self.engine.correlation_groups()).unwrap_or(i64::MAX));
        m.correlation_evictions
            .with_label_values(&["groups"])
            .inc_by(stats.evicted_groups - self.last_stats.evicted_groups);
        m.correlation_evictions
            .with_label_values(&["entries"])
            .inc_by(stats.evicted_entries - self.last_stats.evicted_entries);
        m.correlation_late
            .inc_by(stats.late_events - self.last_stats.late_events);
        let future = stats.future_events - self.last_stats.future_events;
        if future > 0 {
            // Logged per batch, not per event: a clock or a source gone wrong
            // would otherwise flood the log.
            tracing::warn!(
                events = future,
                "events dated further ahead of the clock than detection.max_future_skew; their time was clamped"
            );
            m.events_future.inc_by(future);
        }
        self.last_stats = stats;
        let anomaly = self.engine.anomaly_stats();
        m.anomaly_groups
            .set(i64::try_from(self.engine.anomaly_groups()).unwrap_or(i64::MAX));
        m.anomaly_evictions
            .with_label_values(&["groups"])
            .inc_by(anomaly.evicted_groups - self.last_anomaly.evicted_groups);
        m.anomaly_evictions
            .with_label_values(&["values"])
            .inc_by(anomaly.evicted_values - self.last_anomaly.evicted_values);
        m.anomaly_missing_field
            .inc_by(anomaly.missing_field - self.last_anomaly.missing_field);
        self.last_anomaly = anomaly;
        if let Some(dedup) = self.engine.dedup() {
            m.dedup_ids
                .set(i64::try_from(dedup.len()).unwrap_or(i64::MAX));
            m.dedup_evictions
                .inc_by(dedup.evicted() - self.last_dedup_evictions);
            self.last_dedup_evictions = dedup.evicted();
        }
    }
}

/// Detection state changed in a batch.
struct Changes {
    correlation: Vec<correlation::GroupChange>,
    anomaly: Vec<anomaly::Change>,
}

/// What dedup learned and forgot in a batch.
struct Seen {
    new: Vec<(Arc<str>, u128, i64)>,
    forgotten: Vec<(Arc<str>, u128)>,
}

/// How long a stored eventID outlives its last write at most: LookupEvents'
/// 90 days, the furthest back a source can re-read after downtime.
const DEDUP_BACKSTOP: Duration = Duration::from_secs(90 * 24 * 3600);

/// Stages the seen eventIDs, the changed correlation groups and the newest
/// event time.
fn persist(
    txn: &mut WriteTxn,
    seen: &Seen,
    changes: &Changes,
    newest: Option<i64>,
    now: SystemTime,
    ctx: &StageContext,
) -> Result<(), StateError> {
    // Stored ids leave when dedup forgets them, by event time; the wall
    // clock expiry is only a backstop for sources taken out of the
    // configuration, and outlasts any downtime LookupEvents can re-read.
    let dedup_expiry = now + ctx.dedup_window.max(DEDUP_BACKSTOP);
    for (source, hash, time) in &seen.new {
        txn.put_record(
            DEDUP_NAMESPACE,
            &format!("{source}\u{1f}{hash:032x}"),
            time,
            Some(dedup_expiry),
        )?;
    }
    for (source, hash) in &seen.forgotten {
        txn.remove_record(DEDUP_NAMESPACE, &format!("{source}\u{1f}{hash:032x}"))?;
        // An id restored from an older version's record, without a source.
        if source.is_empty() {
            txn.remove_record(DEDUP_NAMESPACE, &format!("{hash:032x}"))?;
        }
    }
    let group_expiry = now + ctx.correlation_retention;
    for change in &changes.anomaly {
        let key = format!("{}\u{1f}{:016x}", change.rule_id, change.group);
        match &change.state {
            Some(state) => {
                let keep = Duration::from_millis(u64::try_from(change.keep_ms).unwrap_or(0));
                txn.put_record(ANOMALY_NAMESPACE, &key, state, Some(now + keep))?;
            }
            None => {
                txn.remove_record(ANOMALY_NAMESPACE, &key)?;
            }
        }
    }
    for change in &changes.correlation {
        let key = format!("{}\u{1f}{}", change.rule_id, change.key);
        match &change.group {
            Some(group) => {
                txn.put_record(CORRELATION_NAMESPACE, &key, group, Some(group_expiry))?
            }
            None => {
                txn.remove_record(CORRELATION_NAMESPACE, &key)?;
            }
        }
    }
    if let Some(newest) = newest {
        txn.set_checkpoint(NEWEST_CHECKPOINT, &newest)?;
    }
    Ok(())
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
