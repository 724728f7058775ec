//! Noise control, decided inside detection's commit transaction.
//!
//! A suppression drops an alert people said they do not want. A dedup
//! window lets the first alert of a dedup key through and holds back its
//! repeats; when the window closes, the repeats become one summary alert
//! with their count (unless `alerts.aggregate` is off). The windows live in
//! the state store next to the outbox, so a crash can neither deliver a
//! repeat nor lose a count: the decision commits with the alert, or not at all.
//!
//! Windows follow the wall clock, not event time: they are about what
//! reaches people's inboxes, and a replayed backlog should not flood them.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use super::outbox;
use super::suppression::Suppression;
use crate::config::{AlertsConfig, SuppressionConfig};
use crate::detection::Alert;
use crate::detection::alert::{AlertKind, Repeats};
use crate::state::{StateError, WriteTxn};
use crate::telemetry::metrics::AlertMetrics;

/// The state store namespace of dedup windows.
pub const NAMESPACE: &str = "alert_window";

/// The windows again, keyed by closing time then window key, so the sweep
/// reads only what is due.
const DUE: &str = "alert_window_due";

/// Due entries read per sweep beyond those closed early.
const SWEEP: usize = 1000;

/// Distinct source IPs kept per window for its summary.
const SAMPLE_IPS: usize = 5;

/// What noise control decided about one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Into the outbox; `summarised` when a closed window of the same
    /// dedup key was found and its summary staged first.
    Deliver {
        /// A summary was staged for the previous window.
        summarised: bool,
    },
    /// Dropped by the suppression at this index.
    Suppressed(usize),
    /// A repeat within its dedup window: counted for the summary.
    Repeat,
}

/// One open dedup window.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Window {
    opened_ms: i64,
    closes_ms: i64,
    repeats: u64,
    first_event_time: Option<String>,
    last_event_time: Option<String>,
    last_event_id: Option<String>,
    source_ips: Vec<String>,
    /// The alert that opened the window, without its events: the summary's model.
    alert: Alert,
}

/// Suppressions, dedup windows and aggregation.
pub struct NoiseControl {
    /// Replaced whole by a configuration reload.
    suppressions: RwLock<Arc<[Suppression]>>,
    window: Duration,
    aggregate: bool,
    max_windows: usize,
    metrics: AlertMetrics,
}

/// What closing windows did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closed {
    /// Windows closed.
    pub windows: usize,
    /// The rule ids of the summaries staged in the outbox.
    pub summaries: Vec<String>,
    /// Windows still open.
    pub open: usize,
    /// Of the windows closed, those closed before their time.
    pub early: u64,
}

impl NoiseControl {
    /// Noise control as `[alerts]` configures it.
    pub fn new(config: &AlertsConfig, metrics: AlertMetrics) -> NoiseControl {
        NoiseControl {
            suppressions: RwLock::new(
                config
                    .suppress
                    .iter()
                    .cloned()
                    .map(Suppression::new)
                    .collect(),
            ),
            window: config.dedup_window,
            aggregate: config.aggregate,
            max_windows: config.max_windows,
            metrics,
        }
    }

    /// The suppressions in force.
    pub fn suppressions(&self) -> Arc<[Suppression]> {
        Arc::clone(
            &self
                .suppressions
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Puts `suppress` in force in place of the suppressions before (a
    /// configuration reload); alerts decided from now on follow them.
    pub fn set_suppressions(&self, suppress: &[SuppressionConfig]) {
        let list: Arc<[Suppression]> = suppress.iter().cloned().map(Suppression::new).collect();
        *self
            .suppressions
            .write()
            .unwrap_or_else(PoisonError::into_inner) = list;
    }

    /// How often windows should be looked at to close them close to their time.
    pub fn tick(&self) -> Duration {
        (self.window / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// Decides about `alert` in `txn`. A window that had closed but was not
    /// yet swept is closed here first, its summary staged before the alert.
    pub fn admit(
        &self,
        txn: &mut WriteTxn,
        alert: &Alert,
        now: SystemTime,
        keys: &outbox::Keys,
    ) -> Result<Verdict, StateError> {
        let moment = jiff::Timestamp::try_from(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        if let Some(i) = self
            .suppressions()
            .iter()
            .position(|s| s.matches(alert, moment))
        {
            return Ok(Verdict::Suppressed(i));
        }
        if self.window.is_zero() {
            return Ok(Verdict::Deliver { summarised: false });
        }
        let now_ms = millis(now);
        let key = window_key(&alert.dedup_key);
        match txn.record::<Window>(NAMESPACE, &key)? {
            Some((mut open, _)) if open.closes_ms > now_ms => {
                open.repeats += 1;
                let time = alert.event_time.as_deref().map(str::to_owned);
                if open.first_event_time.is_none() {
                    open.first_event_time.clone_from(&time);
                }
                open.last_event_time = time;
                open.last_event_id = alert.event_id.as_deref().map(str::to_owned);
                if let Some(ip) = alert.source_ip.as_deref() {
                    if open.source_ips.len() < SAMPLE_IPS
                        && !open.source_ips.iter().any(|s| s == ip)
                    {
                        open.source_ips.push(ip.to_owned());
                    }
                }
                txn.put_record(NAMESPACE, &key, &open, None)?;
                Ok(Verdict::Repeat)
            }
            previous => {
                let mut summarised = false;
                if let Some((closed, _)) = previous {
                    txn.remove_record(DUE, &due_key(closed.closes_ms, &key))?;
                    summarised = self.close(txn, &closed, now_ms, keys)?;
                }
                let mut model = alert.clone();
                model.events.clear();
                let window = Window {
                    opened_ms: now_ms,
                    closes_ms: now_ms
                        + i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX / 2),
                    repeats: 0,
                    first_event_time: None,
                    last_event_time: None,
                    last_event_id: None,
                    source_ips: Vec::new(),
                    alert: model,
                };
                txn.put_record(DUE, &due_key(window.closes_ms, &key), &key, None)?;
                txn.put_record(NAMESPACE, &key, &window, None)?;
                Ok(Verdict::Deliver { summarised })
            }
        }
    }

    /// Counts what [`NoiseControl::admit`] decided, once its transaction committed.
    pub fn count(&self, alert: &Alert, verdict: Verdict) {
        match verdict {
            Verdict::Deliver { summarised } => {
                if summarised {
                    self.count_summary(&alert.rule.id);
                }
            }
            Verdict::Suppressed(i) => {
                let suppressions = self.suppressions();
                let label = suppressions.get(i).map_or("", Suppression::label);
                self.metrics
                    .suppressed
                    .with_label_values(&[&alert.rule.id])
                    .inc();
                tracing::debug!(rule = %alert.rule.id, reason = label, "alert suppressed");
            }
            Verdict::Repeat => {
                self.metrics
                    .repeats
                    .with_label_values(&[&alert.rule.id])
                    .inc();
            }
        }
    }

    /// Counts a summary staged for `rule`, once its transaction committed.
    pub fn count_summary(&self, rule: &str) {
        self.metrics.summaries.with_label_values(&[rule]).inc();
    }

    /// Counts what [`NoiseControl::close_due`] did, once its transaction committed.
    pub fn count_closed(&self, closed: &Closed) {
        for rule in &closed.summaries {
            self.count_summary(rule);
        }
        self.metrics
            .windows
            .set(i64::try_from(closed.open).unwrap_or(i64::MAX));
        self.metrics.windows_closed_early.inc_by(closed.early);
    }

    /// Closes the windows whose time has come, and the oldest ones past
    /// `max_windows`, staging a summary for each that held repeats.
    pub fn close_due(
        &self,
        txn: &mut WriteTxn,
        now: SystemTime,
        keys: &outbox::Keys,
    ) -> Result<Closed, StateError> {
        let now_ms = millis(now);
        let open = txn.count(DUE)?;
        let over = open.saturating_sub(self.max_windows);
        let due: Vec<(String, String)> = txn.records(DUE, over + SWEEP)?;
        let mut closed = Closed::default();
        for (i, (index, key)) in due.iter().enumerate() {
            let closes_ms = index
                .split_once(':')
                .and_then(|(ms, _)| ms.parse::<i64>().ok())
                .unwrap_or(0);
            let early = i < over;
            if closes_ms > now_ms && !early {
                break;
            }
            if closes_ms > now_ms {
                closed.early += 1;
            }
            txn.remove_record(DUE, index)?;
            closed.windows += 1;
            let Some((window, _)) = txn.record::<Window>(NAMESPACE, key)? else {
                continue;
            };
            txn.remove_record(NAMESPACE, key)?;
            if self.close(txn, &window, now_ms, keys)? {
                closed.summaries.push(window.alert.rule.id.clone());
            }
        }
        closed.open = open - closed.windows;
        Ok(closed)
    }

    /// Stages `window`'s summary when it held repeats; whether it did.
    fn close(
        &self,
        txn: &mut WriteTxn,
        window: &Window,
        now_ms: i64,
        keys: &outbox::Keys,
    ) -> Result<bool, StateError> {
        if window.repeats == 0 || !self.aggregate {
            return Ok(false);
        }
        outbox::stage(txn, &keys.next(now_ms), &summary(window), now_ms)?;
        Ok(true)
    }
}

/// The summary alert of a window's repeats.
fn summary(window: &Window) -> Alert {
    let mut alert = window.alert.clone();
    alert.id = None;
    alert.kind = AlertKind::Summary;
    alert.events.clear();
    alert.correlated_events.clear();
    alert.event_time = window
        .last_event_time
        .as_deref()
        .map(std::sync::Arc::from)
        .or(alert.event_time);
    alert.event_id = window
        .last_event_id
        .as_deref()
        .map(std::sync::Arc::from)
        .or(alert.event_id);
    alert.repeats = Some(Repeats {
        count: window.repeats,
        window_start: format_ms(window.opened_ms),
        window_end: format_ms(window.closes_ms),
        first_event_time: window.first_event_time.clone(),
        last_event_time: window.last_event_time.clone(),
        last_event_id: window.last_event_id.clone(),
        source_ips: window.source_ips.clone(),
    });
    alert
}

/// The due-index key: closing time, zero-padded so that key order is time order.
fn due_key(closes_ms: i64, key: &str) -> String {
    format!("{:020}:{key}", closes_ms.max(0))
}

/// Dedup keys can be long and hold anything; their hash keys the window.
fn window_key(dedup_key: &str) -> String {
    format!("{:032x}", xxh3_128(dedup_key.as_bytes()))
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn format_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
