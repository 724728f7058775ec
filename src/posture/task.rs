//! Posture in the daemon: a full sweep at start and every
//! `posture.interval`, and a re-check of what an event touched within
//! `posture.recheck_delay` of it arriving (events that arrive meanwhile join
//! the same re-check). Declared settings are put in place before each
//! sweep, and before a re-check of trails or groups, when `posture.mode` is
//! `enforce`; in `dry_run` they are only logged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::api::PostureApi;
use super::checks::Settings;
use super::ensure::{self, Change};
use super::findings::{self, Context, Settled};
use super::sweep::{self, Sweep, Target};
use crate::alerts::noise::NoiseControl;
use crate::alerts::outbox;
use crate::aws::retry::Backoff;
use crate::config::PostureConfig;
use crate::detection::alert::{AlertKind, AlertRule};
use crate::detection::touch::Touch;
use crate::detection::{Alert, Level};
use crate::state::StateStore;
use crate::telemetry::metrics::PostureMetrics;

/// The state store namespace of the changes made: the journal.
pub const JOURNAL: &str = "posture_journal";

/// How long the journal keeps a change.
const JOURNAL_DAYS: u64 = 90;

/// The rule id of the alert about a declared setting put in place.
pub const CHANGE_RULE: &str = "cloudwarden-posture-change";

/// The most distinct targets one re-check takes; more wait for the next.
const MAX_TARGETS: usize = 256;

/// What the posture task needs.
pub struct PostureTask<A> {
    /// AWS.
    pub api: A,
    /// `[posture]`.
    pub config: PostureConfig,
    /// Whether the CIS alarms are enabled.
    pub cis_alarms: bool,
    /// The daemon's home Region.
    pub home_region: String,
    /// Where findings, the journal and alerts are committed.
    pub state: StateStore,
    /// Makes outbox keys.
    pub keys: Arc<outbox::Keys>,
    /// Wakes delivery.
    pub outbox: Arc<Notify>,
    /// Noise control, for the suppressions in force (reloads included):
    /// by check id as rule, and resource pattern.
    pub noise: Arc<NoiseControl>,
    /// Metrics.
    pub metrics: PostureMetrics,
    /// Events that touched checked resources.
    pub touches: mpsc::Receiver<Touch>,
    /// Response actions bound to posture checks, and the worker to wake.
    pub response: Option<(Arc<crate::response::Bindings>, Arc<Notify>)>,
}

impl<A: PostureApi> PostureTask<A> {
    /// Sweeps until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        // The series exist from the start, so that the first one counts.
        for kind in ["full", "recheck"] {
            for outcome in ["ok", "partial"] {
                self.metrics.sweeps.with_label_values(&[kind, outcome]);
            }
        }
        let Some(account) = self.account(&stop).await else {
            return;
        };
        let mut regions = self.regions().await;
        let mut next_full = tokio::time::Instant::now();
        loop {
            // A full sweep that is due goes before re-checks, so a stream of
            // events cannot hold it back. (A timer already past is not ready
            // on its first poll, so the clock is read here.)
            if tokio::time::Instant::now() >= next_full {
                if self.config.regions.is_empty() {
                    regions = self.regions().await.or(regions);
                }
                let in_scope = regions
                    .clone()
                    .unwrap_or_else(|| vec![self.home_region.clone()]);
                self.ensure(None).await;
                let sweep = self
                    .sweep(&account, &in_scope, &Target::all(&in_scope), None, "full")
                    .await;
                if sweep.failed.is_empty() && regions.is_some() {
                    self.metrics.last_success.set(unix_now());
                }
                next_full = tokio::time::Instant::now() + self.config.interval;
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(next_full) => {}
                touch = self.touches.recv() => {
                    let Some(touch) = touch else { return };
                    let touched = self.gather(touch, &stop).await;
                    let in_scope = regions.clone().unwrap_or_else(|| vec![self.home_region.clone()]);
                    self.recheck(&account, &in_scope, touched).await;
                }
            }
        }
    }

    /// The account, asked until STS answers.
    async fn account(&self, stop: &CancellationToken) -> Option<String> {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
        loop {
            match self.api.account().await {
                Ok(account) => return Some(account),
                Err(err) => {
                    self.metrics
                        .failures
                        .with_label_values(&[err.service, &err.code])
                        .inc();
                    tracing::warn!(error = %err, "posture cannot learn the account it sweeps; trying again");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// The Regions in scope: configured, or those the account has enabled.
    async fn regions(&self) -> Option<Vec<String>> {
        if !self.config.regions.is_empty() {
            return Some(self.config.regions.clone());
        }
        match self.api.regions().await {
            Ok(regions) if !regions.is_empty() => Some(regions),
            Ok(_) => None,
            Err(err) => {
                self.metrics
                    .failures
                    .with_label_values(&[err.service, &err.code])
                    .inc();
                tracing::warn!(error = %err, "posture cannot list the account's Regions; sweeping the home Region until it can");
                None
            }
        }
    }

    /// Waits `recheck_delay` for more events, and returns each target with
    /// the latest event that touched it.
    async fn gather(&mut self, first: Touch, stop: &CancellationToken) -> BTreeMap<Target, Touch> {
        let mut touched = BTreeMap::new();
        touched.insert(Target::of(&first.what), first);
        let deadline = tokio::time::Instant::now() + self.config.recheck_delay;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(deadline) => break,
                more = self.touches.recv() => match more {
                    Some(touch) if touched.len() < MAX_TARGETS || touched.contains_key(&Target::of(&touch.what)) => {
                        touched.insert(Target::of(&touch.what), touch);
                    }
                    Some(_) => self.metrics.rechecks_dropped.inc(),
                    None => break,
                },
            }
        }
        touched
    }

    async fn recheck(&self, account: &str, regions: &[String], touched: BTreeMap<Target, Touch>) {
        // A user named in one target is covered by an all-users one.
        let all_users = touched.contains_key(&Target::Users);
        for (target, touch) in &touched {
            if all_users && matches!(target, Target::User(_)) {
                continue;
            }
            let declared_here = match target {
                Target::Trails => self.config.cloudtrail_ensure.is_some(),
                Target::Groups(region) => self
                    .config
                    .security_groups
                    .iter()
                    .any(|g| g.region.as_deref().unwrap_or(&self.home_region) == region),
                _ => false,
            };
            if declared_here {
                self.ensure(Some(touch)).await;
            }
            tracing::info!(event = %touch.event_name, target = ?target, "re-checking what an event changed");
            self.sweep(
                account,
                regions,
                std::slice::from_ref(target),
                Some(touch),
                "recheck",
            )
            .await;
        }
    }

    async fn sweep(
        &self,
        account: &str,
        regions: &[String],
        targets: &[Target],
        cause: Option<&Touch>,
        kind: &'static str,
    ) -> Sweep {
        let started = Instant::now();
        let settings = Settings {
            account: account.to_owned(),
            home_region: self.home_region.clone(),
            config: self.config.clone(),
            cis_alarms: self.cis_alarms,
            now: unix_now(),
        };
        let result = sweep::sweep(&self.api, &settings, regions, targets).await;
        for (part, err) in &result.failed {
            self.metrics
                .failures
                .with_label_values(&[err.service, &err.code])
                .inc();
            tracing::warn!(part = %part, error = %err, "posture could not read this part; its findings stay as they were until the next sweep");
        }
        let outcome = if result.failed.is_empty() {
            "ok"
        } else {
            "partial"
        };
        self.metrics
            .sweeps
            .with_label_values(&[kind, outcome])
            .inc();
        self.settle(account, &result, cause).await;
        self.metrics
            .sweep_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            kind,
            findings = result.findings.len(),
            failed = result.failed.len(),
            seconds = started.elapsed().as_secs_f64(),
            "posture swept"
        );
        result
    }

    async fn settle(&self, account: &str, sweep: &Sweep, cause: Option<&Touch>) {
        let state = self.state.clone();
        let keys = Arc::clone(&self.keys);
        let suppressions = self.noise.suppressions();
        let account = account.to_owned();
        let cause = cause.cloned();
        let bindings = self.response.as_ref().map(|(b, _)| Arc::clone(b));
        let sweep = Sweep {
            findings: sweep.findings.clone(),
            covered: sweep.covered.clone(),
            failed: Vec::new(),
        };
        let settled = tokio::task::spawn_blocking(move || {
            state.write(|txn| {
                findings::settle(
                    txn,
                    &sweep,
                    &Context {
                        account: &account,
                        cause: cause.as_ref(),
                        suppressions: &suppressions,
                        keys: &keys,
                        now_ms: unix_now_ms(),
                        response: bindings.as_deref(),
                    },
                )
            })
        })
        .await;
        let settled: Settled = match settled {
            Ok(Ok(settled)) => settled,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cannot record posture findings; the next sweep tries again");
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "posture bookkeeping task failed");
                return;
            }
        };
        for open in &settled.opened {
            let status = if open.suppressed {
                "suppressed"
            } else {
                "opened"
            };
            self.metrics
                .changes
                .with_label_values(&[&open.check, status])
                .inc();
            tracing::warn!(check = %open.check, resource = %open.resource, severity = open.severity.as_str(), suppressed = open.suppressed, "posture finding opened: {}", open.message);
        }
        for open in &settled.resolved {
            self.metrics
                .changes
                .with_label_values(&[&open.check, "resolved"])
                .inc();
            tracing::info!(check = %open.check, resource = %open.resource, "posture finding resolved");
        }
        if settled.dropped > 0 {
            self.metrics
                .changes
                .with_label_values(&["", "dropped"])
                .inc_by(settled.dropped as u64);
            tracing::warn!(
                dropped = settled.dropped,
                limit = findings::MAX_OPEN,
                "too many open posture findings; new ones are counted, not kept"
            );
        }
        self.metrics.findings.reset();
        for check in super::catalog::CHECKS {
            self.metrics
                .findings
                .with_label_values(&[check.id, check.severity.as_str()]);
        }
        for open in settled.open.iter().filter(|o| !o.suppressed) {
            self.metrics
                .findings
                .with_label_values(&[&open.check, open.severity.as_str()])
                .inc();
        }
        if settled.staged > 0 {
            self.outbox.notify_one();
        }
        if let (true, Some((_, wake))) = (settled.intents > 0, &self.response) {
            wake.notify_one();
        }
    }

    /// Puts declared settings in place (or, in dry run, says what it would do).
    async fn ensure(&self, cause: Option<&Touch>) {
        if !self.config.declares() {
            return;
        }
        let plan = ensure::plan(&self.api, &self.config, &self.home_region).await;
        for (what, err) in &plan.failed {
            self.metrics
                .failures
                .with_label_values(&[err.service, &err.code])
                .inc();
            tracing::warn!(what = %what, error = %err, "cannot read a declared setting's current state");
        }
        for foreign in &plan.foreign {
            tracing::warn!("posture: {foreign}");
        }
        if plan.changes.is_empty() {
            return;
        }
        if !self.config.enforce {
            for change in &plan.changes {
                self.metrics
                    .applied
                    .with_label_values(&[change.kind(), "dry_run"])
                    .inc();
                tracing::warn!(change = %change, "posture dry run: would make this change (set posture.mode = \"enforce\" to make it)");
            }
            return;
        }
        let applied = ensure::apply(&self.api, &plan).await;
        for (change, err) in &applied.failed {
            self.metrics
                .applied
                .with_label_values(&[change.kind(), "failed"])
                .inc();
            tracing::warn!(change = %change, error = %err, "posture change failed; trying again next sweep");
        }
        let mut alerts = Vec::new();
        for change in &applied.done {
            self.metrics
                .applied
                .with_label_values(&[change.kind(), "done"])
                .inc();
            tracing::warn!(change = %change, "posture change made");
            alerts.push((change.to_string(), change_alert(change, cause)));
        }
        for (change, err) in &applied.failed {
            alerts.push((
                format!("FAILED ({}): {change}", err.code),
                change_alert(change, cause),
            ));
        }
        self.journal(alerts).await;
    }

    /// Journals each change with its alert, in one transaction.
    async fn journal(&self, entries: Vec<(String, Alert)>) {
        if entries.is_empty() {
            return;
        }
        let state = self.state.clone();
        let keys = Arc::clone(&self.keys);
        let written = tokio::task::spawn_blocking(move || {
            state.write(|txn| {
                let now_ms = unix_now_ms();
                let expires = SystemTime::now() + Duration::from_secs(JOURNAL_DAYS * 86_400);
                for (line, alert) in &entries {
                    let key = keys.next(now_ms);
                    txn.put_record(JOURNAL, &key, line, Some(expires))?;
                    outbox::stage(txn, &key, alert, now_ms)?;
                }
                Ok(())
            })
        })
        .await;
        match written {
            Ok(Ok(())) => self.outbox.notify_one(),
            Ok(Err(err)) => tracing::warn!(error = %err, "cannot journal posture changes"),
            Err(err) => tracing::warn!(error = %err, "posture bookkeeping task failed"),
        }
    }
}

/// The alert about a declared setting cloudwarden put in place.
fn change_alert(change: &Change, cause: Option<&Touch>) -> Alert {
    let (level, what) = if change.is_repair() {
        (Level::Medium, "was not as declared and has been put back")
    } else {
        (Level::Low, "was missing and has been created")
    };
    Alert {
        id: None,
        rule: AlertRule {
            id: CHANGE_RULE.to_owned(),
            title: "cloudwarden Put A Declared Setting In Place".to_owned(),
            level,
            tags: vec!["posture".to_owned(), "posture.change".to_owned()],
            description: Some(format!(
                "A setting declared in cloudwarden's [posture] configuration {what}: {change}. A repair means someone changed it outside cloudwarden: check who in CloudTrail. To undo, change the declaration (cloudwarden never deletes what it did not create)."
            )),
            falsepositives: vec![],
            references: vec![],
        },
        kind: AlertKind::Posture,
        correlation: None,
        event_time: cause.and_then(|c| c.event_time.as_deref()).map(Into::into),
        event_id: cause.and_then(|c| c.event_id.as_deref()).map(Into::into),
        event_source: None,
        event_name: cause.map(|c| c.event_name.as_str().into()),
        principal: cause.and_then(|c| c.principal.as_deref()).map(Into::into),
        account: None,
        region: None,
        source_ip: None,
        user_agent: None,
        source: Some("posture".to_owned()),
        origin: Some(change.call()),
        dedup_key: format!("{CHANGE_RULE}|{}", change.call()),
        events: vec![],
        correlated_events: vec![],
        repeats: None,
        posture: None,
        response: None,
        anomaly: None,
        trimmed: vec![],
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
