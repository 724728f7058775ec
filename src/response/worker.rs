//! The worker: carries out committed intents, one at a time, and commits
//! each outcome with its journal entry and its alert in one transaction.
//!
//! Exactly once across crashes: an intent leaves the store only in the
//! transaction that records its outcome. A crash between the AWS call and
//! that commit leaves the intent, and the next start carries it out again;
//! every action reads before it writes, so the repeat finds it done
//! (`already`) and one outcome alert is delivered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wildmatch::WildMatch;

use super::actions::Target;
use super::api::ResponseApi;
use super::intent::{INTENTS, Intent};
use super::perform::{self, Outcome, Performed, Undo};
use crate::alerts::outbox;
use crate::aws::retry::Backoff;
use crate::config::ResponseConfig;
use crate::detection::alert::{AlertKind, AlertRule, ResponseInfo};
use crate::detection::{Alert, Level};
use crate::state::{StateError, StateStore, WriteTxn};
use crate::telemetry::metrics::ResponseMetrics;

/// The state store namespace of outcomes: the journal.
pub const JOURNAL: &str = "response_journal";

/// Enforced changes of the last hour, for the rate limit (each expires
/// after an hour).
const RECENT: &str = "response_recent";

/// How long the journal keeps an entry.
const JOURNAL_DAYS: u64 = 90;

/// Transient failures an intent may meet before it is reported as failed.
const MAX_ATTEMPTS: u32 = 6;

/// Intents read per round.
const BATCH: usize = 100;

/// A test fault: abort the process right after an action's AWS call and
/// before its outcome is committed, as a kill -9 at the worst moment.
pub const ABORT_AFTER_CALL: &str = "CLOUDWARDEN_TEST_RESPONSE_ABORT_AFTER_CALL";

/// The rule id of response alerts.
pub const RESPONSE_RULE: &str = "cloudwarden-response";

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The intent.
    pub intent: Intent,
    /// What came of it.
    pub performed: Performed,
    /// Why a guard refused it, or AWS's error, when it did not happen.
    pub reason: Option<String>,
    /// When the outcome was committed, ms since the epoch.
    pub done_ms: i64,
    /// When it was undone, ms since the epoch.
    pub undone_ms: Option<i64>,
}

/// What the worker needs.
pub struct ResponseTask<A> {
    /// AWS.
    pub api: A,
    /// `[response]`.
    pub config: ResponseConfig,
    /// Ports a finding's revoke leaves open (`posture.world_open_allowed_ports`).
    pub allowed_ports: Vec<u16>,
    /// Where intents wait and outcomes go.
    pub state: StateStore,
    /// Makes outbox keys.
    pub keys: Arc<outbox::Keys>,
    /// Wakes delivery.
    pub outbox: Arc<Notify>,
    /// Woken when intents are committed.
    pub wake: Arc<Notify>,
    /// Metrics.
    pub metrics: ResponseMetrics,
}

impl<A: ResponseApi> ResponseTask<A> {
    /// Carries out intents until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        for action in super::actions::Action::ALL {
            for outcome in ["done", "already", "dry_run", "refused", "failed"] {
                self.metrics
                    .actions
                    .with_label_values(&[action.name(), outcome]);
            }
        }
        let own = self.own_principal(&stop).await;
        let mut attempts: BTreeMap<String, u32> = BTreeMap::new();
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
        loop {
            let retry_later = self.round(own.as_deref(), &mut attempts).await;
            let wait = if retry_later {
                backoff.next_delay()
            } else {
                backoff.reset();
                Duration::from_secs(30)
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn own_principal(&self, stop: &CancellationToken) -> Option<String> {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
        loop {
            match self.api.caller().await {
                Ok(arn) => return Some(arn),
                Err(err) => {
                    tracing::warn!(error = %err, "response cannot learn its own principal; actions wait until it can")
                }
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// Carries out what is pending; true when something waits for a retry.
    async fn round(&self, own: Option<&str>, attempts: &mut BTreeMap<String, u32>) -> bool {
        let state = self.state.clone();
        let pending = tokio::task::spawn_blocking(move || {
            state.records::<Intent>(INTENTS, SystemTime::now(), BATCH)
        })
        .await;
        let pending = match pending {
            Ok(Ok(pending)) => pending,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cannot read response intents");
                return true;
            }
            Err(_) => return true,
        };
        self.metrics
            .pending
            .set(i64::try_from(pending.len()).unwrap_or(i64::MAX));
        let mut retry_later = false;
        for (key, intent) in pending {
            let (performed, reason) = match self.guard(&intent, own).await {
                Some(refusal) => (
                    Performed {
                        outcome: Outcome::Refused,
                        call: refusal.clone(),
                        undo: None,
                    },
                    Some(refusal),
                ),
                None => match &intent.target {
                    Err(why) => (
                        Performed {
                            outcome: Outcome::Failed,
                            call: why.clone(),
                            undo: None,
                        },
                        Some(why.clone()),
                    ),
                    Ok(target) => {
                        match perform::perform(
                            &self.api,
                            intent.action,
                            target,
                            intent.enforce,
                            &self.allowed_ports,
                        )
                        .await
                        {
                            Ok(performed) => (performed, None),
                            Err(err)
                                if err.class.is_retriable()
                                    && attempts.get(&key).copied().unwrap_or(0) + 1
                                        < MAX_ATTEMPTS =>
                            {
                                *attempts.entry(key.clone()).or_default() += 1;
                                tracing::warn!(action = intent.action.name(), error = %err, "response action failed; trying again");
                                retry_later = true;
                                continue;
                            }
                            Err(err) => (
                                Performed {
                                    outcome: Outcome::Failed,
                                    call: format!(
                                        "{} on {target} failed: {} ({})",
                                        intent.action.name(),
                                        err.code,
                                        err.message
                                    ),
                                    undo: None,
                                },
                                Some(err.code.clone()),
                            ),
                        }
                    }
                },
            };
            attempts.remove(&key);
            if performed.outcome == Outcome::Done && std::env::var_os(ABORT_AFTER_CALL).is_some() {
                tracing::warn!(
                    "test fault: aborting after the action's call, before its outcome is committed"
                );
                std::process::abort();
            }
            self.commit(key, intent, performed, reason).await;
        }
        retry_later
    }

    /// Why the intent must not be carried out, if it must not.
    async fn guard(&self, intent: &Intent, own: Option<&str>) -> Option<String> {
        let refuse = |guard: &str, why: String| {
            self.metrics.refused.with_label_values(&[guard]).inc();
            Some(why)
        };
        let max_age = i64::try_from(self.config.max_event_age.as_secs()).unwrap_or(i64::MAX);
        if let Some(age) = intent.event_age_seconds.filter(|a| *a > max_age) {
            return refuse(
                "event_age",
                format!(
                    "the event was {age} s old when detected, more than response.max_event_age ({max_age} s): replays and catch-up never act"
                ),
            );
        }
        let target = intent.target.as_ref().ok();
        let mut identifiers: Vec<String> = target.map(Target::identifiers).unwrap_or_default();
        identifiers.extend(intent.principal.clone());
        if let Some(pattern) = self
            .config
            .protect
            .iter()
            .find(|p| identifiers.iter().any(|id| WildMatch::new(p).matches(id)))
        {
            return refuse(
                "protected",
                format!("protected by response.protect \"{pattern}\""),
            );
        }
        if let (Some(own), Some(target)) = (own, target) {
            if is_own(own, target) {
                return refuse(
                    "own_principal",
                    format!("{target} is cloudwarden's own principal"),
                );
            }
        }
        if intent.enforce {
            let state = self.state.clone();
            let max = self.config.max_actions_per_hour as usize;
            // Expired records wait for the purge; read only the live ones.
            let recent = tokio::task::spawn_blocking(move || {
                state
                    .records::<()>(RECENT, SystemTime::now(), max)
                    .map(|r| r.len())
            })
            .await;
            match recent {
                Ok(Ok(n)) if n < max => {}
                Ok(Ok(_)) => {
                    return refuse(
                        "rate_limit",
                        format!(
                            "{max} actions were made in the last hour, response.max_actions_per_hour"
                        ),
                    );
                }
                // A guard that cannot be checked refuses.
                _ => {
                    return refuse(
                        "rate_limit",
                        "the count of actions in the last hour cannot be read from the state store"
                            .to_owned(),
                    );
                }
            }
        }
        None
    }

    async fn commit(
        &self,
        key: String,
        intent: Intent,
        performed: Performed,
        reason: Option<String>,
    ) {
        let outcome = performed.outcome;
        let alert = outcome_alert(&key, &intent, &performed, reason.as_deref());
        let entry = Entry {
            intent: intent.clone(),
            performed,
            reason,
            done_ms: now_ms(),
            undone_ms: None,
        };
        let state = self.state.clone();
        let keys = Arc::clone(&self.keys);
        let committed = tokio::task::spawn_blocking(move || {
            state.write(|txn| record(txn, &key, &entry, &alert, &keys))
        })
        .await;
        match committed {
            Ok(Ok(())) => {
                self.metrics
                    .actions
                    .with_label_values(&[intent.action.name(), outcome.as_str()])
                    .inc();
                let target = intent
                    .target
                    .as_ref()
                    .map_or_else(Clone::clone, ToString::to_string);
                tracing::warn!(action = intent.action.name(), outcome = outcome.as_str(), target = %target, rule = %intent.rule, "response action");
                self.outbox.notify_one();
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cannot commit a response outcome; it will be carried out again")
            }
            Err(err) => tracing::warn!(error = %err, "response bookkeeping task failed"),
        }
    }
}

/// Records an outcome: the intent leaves, the journal entry and the alert
/// are committed, and an enforced change counts for the rate limit.
fn record(
    txn: &mut WriteTxn,
    key: &str,
    entry: &Entry,
    alert: &Alert,
    keys: &outbox::Keys,
) -> Result<(), StateError> {
    let now = SystemTime::now();
    txn.remove_record(INTENTS, key)?;
    txn.put_record(
        JOURNAL,
        key,
        entry,
        Some(now + Duration::from_secs(JOURNAL_DAYS * 86_400)),
    )?;
    if entry.performed.outcome == Outcome::Done {
        txn.put_record(RECENT, key, &(), Some(now + Duration::from_secs(3600)))?;
    }
    outbox::stage(txn, &keys.next(now_ms()), alert, now_ms())
}

/// Whether `target` is the principal cloudwarden runs as.
fn is_own(own: &str, target: &Target) -> bool {
    // arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION or arn:aws:iam::ACCOUNT:user/NAME
    let resource = own.rsplit(':').next().unwrap_or_default();
    let mut parts = resource.split('/');
    let (kind, name) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    match target {
        Target::Role { name: role, .. } => kind == "assumed-role" && role == name,
        Target::User { name: user, .. }
        | Target::AccessKey { user, .. }
        | Target::UserPolicy { user, .. } => kind == "user" && user == name,
        _ => false,
    }
}

/// The alert that reports an outcome.
pub fn outcome_alert(
    key: &str,
    intent: &Intent,
    performed: &Performed,
    reason: Option<&str>,
) -> Alert {
    let target = intent
        .target
        .as_ref()
        .map_or_else(|_| "nothing".to_owned(), ToString::to_string);
    let mode = if intent.enforce { "enforce" } else { "dry_run" };
    let (level, title) = match performed.outcome {
        Outcome::Done => (
            Level::Medium,
            format!("Response: {} Done", intent.action.name()),
        ),
        Outcome::Already => (
            Level::Low,
            format!("Response: {} Not Needed", intent.action.name()),
        ),
        Outcome::DryRun => (
            Level::Low,
            format!("Response (Dry Run): Would {}", intent.action.name()),
        ),
        Outcome::Refused if reason.is_some_and(|r| r.contains("max_actions_per_hour")) => (
            Level::High,
            format!(
                "Response: {} Refused By The Rate Limit",
                intent.action.name()
            ),
        ),
        Outcome::Refused => (
            Level::Low,
            format!("Response: {} Refused By A Guard", intent.action.name()),
        ),
        Outcome::Failed => (
            Level::High,
            format!("Response: {} Failed", intent.action.name()),
        ),
    };
    let undo = performed.undo.as_ref().map(Undo::to_string);
    let description = format!(
        "Because of {} ({}): {}.{}{}",
        intent.title,
        intent.rule,
        performed.call,
        undo.as_ref()
            .map(|u| format!(" To undo: cloudwarden response undo {key} (it calls {u})."))
            .unwrap_or_default(),
        reason.map(|r| format!(" Reason: {r}.")).unwrap_or_default(),
    );
    Alert {
        id: None,
        rule: AlertRule {
            id: RESPONSE_RULE.to_owned(),
            title,
            level,
            tags: vec![
                "response".to_owned(),
                format!("response.{}", performed.outcome.as_str()),
            ],
            description: Some(description),
            falsepositives: vec![],
            references: vec![],
        },
        kind: AlertKind::Response,
        correlation: None,
        event_time: intent.event_time.as_deref().map(Into::into),
        event_id: intent.event_id.as_deref().map(Into::into),
        event_source: None,
        event_name: intent.event_name.as_deref().map(Into::into),
        principal: intent.principal.as_deref().map(Into::into),
        account: intent.account.as_deref().map(Into::into),
        region: None,
        source_ip: None,
        user_agent: None,
        source: Some("response".to_owned()),
        origin: Some(target.clone()),
        dedup_key: format!("{RESPONSE_RULE}|{key}"),
        events: vec![],
        correlated_events: vec![],
        repeats: None,
        posture: None,
        response: Some(ResponseInfo {
            id: key.to_owned(),
            action: intent.action.name().to_owned(),
            mode: mode.to_owned(),
            outcome: performed.outcome.as_str().to_owned(),
            target,
            detail: performed.call.clone(),
            undo,
            cause: intent.rule.clone(),
        }),
        anomaly: None,
        trimmed: vec![],
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
