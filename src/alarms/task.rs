//! Reconciling in the daemon: at start and every `alarms.interval`.
//!
//! Each pass plans and applies. What it puts is one of three things: the
//! first creation of a declaration, a repair after the declaration changed
//! (both expected), or drift: a filter or alarm that cloudwarden had put
//! exactly as declared was changed or deleted by someone else. Drift is a
//! security event in itself (deleting a CIS alarm is how an intruder goes
//! quiet), so it raises an alert through the outbox as well as a repair.
//! Telling them apart needs a memory of what was put: a hash of each
//! declaration, kept in the state store.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use xxhash_rust::xxh3::xxh3_64;

use super::api::AlarmsApi;
use super::desired::Desired;
use super::reconcile::{self, Action, Change, Item};
use crate::alerts::outbox;
use crate::detection::Alert;
use crate::detection::Level;
use crate::detection::alert::{AlertKind, AlertRule};
use crate::state::StateStore;
use crate::telemetry::metrics::AlarmMetrics;

/// The state store namespace of the declarations last put, by name.
const NAMESPACE: &str = "alarm_applied";

/// The id of the drift alert's rule.
pub const DRIFT_RULE: &str = "cloudwarden-alarm-drift";

/// The id of the rule of alerts about wiring problems (a topic alarms cannot
/// publish to, nobody subscribed, no trail feeding the log group).
pub const WIRING_RULE: &str = "cloudwarden-alarm-wiring";

/// The state store namespace of the wiring problems already alerted, so
/// each raises one alert when it appears, not one per pass.
const FINDINGS_NAMESPACE: &str = "alarm_findings";

/// What the reconciler needs.
pub struct Reconciler<A> {
    /// AWS.
    pub api: A,
    /// What should exist.
    pub desired: Desired,
    /// Time between passes.
    pub interval: std::time::Duration,
    /// Where drift alerts and the memory of puts are committed.
    pub state: StateStore,
    /// Makes outbox keys.
    pub keys: Arc<outbox::Keys>,
    /// Wakes delivery.
    pub outbox: Arc<Notify>,
    /// Metrics.
    pub metrics: AlarmMetrics,
}

impl<A: AlarmsApi> Reconciler<A> {
    /// Passes until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            self.pass().await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// The names (`kind:name`) cloudwarden has put before: they stay its own
    /// whatever their description says.
    async fn owned(&self) -> std::collections::BTreeSet<String> {
        let state = self.state.clone();
        let read = tokio::task::spawn_blocking(move || {
            state.records::<u64>(NAMESPACE, SystemTime::now(), usize::MAX)
        })
        .await;
        match read {
            Ok(Ok(records)) => records.into_iter().map(|(key, _)| key).collect(),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cannot read which alarms cloudwarden put; ownership goes by name alone this pass");
                std::collections::BTreeSet::new()
            }
            Err(err) => {
                tracing::warn!(error = %err, "alarm bookkeeping task failed");
                std::collections::BTreeSet::new()
            }
        }
    }

    /// Alerts about wiring problems that appeared since the last pass, and
    /// forgets those that are gone (so one that comes back alerts again).
    async fn alert_findings(&self, findings: &[reconcile::Finding]) {
        let state = self.state.clone();
        let keys = Arc::clone(&self.keys);
        // Only definite problems alert: a check that failed (throttling, a
        // passing error) is logged and counted, and would come and go.
        let findings: Vec<reconcile::Finding> =
            findings.iter().filter(|f| f.certain).cloned().collect();
        let raised = tokio::task::spawn_blocking(move || {
            state.write(|txn| {
                let now_ms = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let current: Vec<(String, &reconcile::Finding)> = findings
                    .iter()
                    .map(|f| (format!("{:016x}", xxh3_64(f.to_string().as_bytes())), f))
                    .collect();
                let known: Vec<(String, String)> = txn.records(FINDINGS_NAMESPACE, usize::MAX)?;
                for (key, _) in &known {
                    if !current.iter().any(|(k, _)| k == key) {
                        txn.remove_record(FINDINGS_NAMESPACE, key)?;
                    }
                }
                let mut raised = 0;
                for (key, finding) in &current {
                    if known.iter().any(|(k, _)| k == key) {
                        continue;
                    }
                    outbox::stage(txn, &keys.next(now_ms), &wiring_alert(finding), now_ms)?;
                    txn.put_record(FINDINGS_NAMESPACE, key, &finding.to_string(), None)?;
                    raised += 1;
                }
                Ok(raised)
            })
        })
        .await;
        match raised {
            Ok(Ok(0)) => {}
            Ok(Ok(_)) => self.outbox.notify_one(),
            Ok(Err(err)) => tracing::warn!(error = %err, "cannot record the alarm wiring problems"),
            Err(err) => tracing::warn!(error = %err, "alarm bookkeeping task failed"),
        }
    }

    /// One plan and apply.
    pub async fn pass(&self) {
        let owned = self.owned().await;
        let plan = match reconcile::plan(&self.api, &self.desired, &owned).await {
            Ok(plan) => plan,
            Err(err) => {
                self.metrics.failures.inc();
                tracing::warn!(error = %err, "cannot read the current alarms; trying again next pass");
                return;
            }
        };
        for finding in &plan.findings {
            tracing::warn!(subject = %finding.subject, problem = %finding.message, "alarm wiring");
        }
        self.metrics
            .findings
            .set(i64::try_from(plan.findings.len()).unwrap_or(i64::MAX));
        self.alert_findings(&plan.findings).await;
        let applied = reconcile::apply(&self.api, &plan).await;
        for (change, err) in &applied.failed {
            self.metrics.failures.inc();
            tracing::warn!(change = %change, error = %err, "alarm change failed; trying again next pass");
        }
        let state = self.state.clone();
        let keys = Arc::clone(&self.keys);
        let done = applied.done.clone();
        // Everything now as declared is remembered, whoever put it there
        // (`cloudwarden alarms apply` too), so that a later change is drift.
        let failed: Vec<Item> = applied.failed.iter().map(|(c, _)| c.item.clone()).collect();
        let in_place: Vec<Item> = self
            .desired
            .filters
            .iter()
            .cloned()
            .map(Item::Filter)
            .chain(self.desired.alarms.iter().cloned().map(Item::Alarm))
            .filter(|item| !failed.contains(item))
            .filter(|item| {
                !plan
                    .foreign
                    .iter()
                    .any(|(kind, name)| *kind == item.kind() && name == item.name())
            })
            .collect();
        let recorded = tokio::task::spawn_blocking(move || {
            state.write(|txn| {
                let now = SystemTime::now();
                let now_ms = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let mut kinds = Vec::with_capacity(done.len());
                for change in &done {
                    let key = format!("{}:{}", change.item.kind(), change.item.name());
                    let hash = declaration_hash(&change.item);
                    let before = txn.record::<u64>(NAMESPACE, &key)?.map(|(h, _)| h);
                    let kind = match (before, change.action) {
                        (Some(h), _) if h == hash => {
                            outbox::stage(txn, &keys.next(now_ms), &drift_alert(change), now_ms)?;
                            "drift"
                        }
                        (_, Action::Create) => "created",
                        (_, Action::Repair) => "repaired",
                    };
                    kinds.push(kind);
                }
                for item in &in_place {
                    let key = format!("{}:{}", item.kind(), item.name());
                    txn.put_record(NAMESPACE, &key, &declaration_hash(item), None)?;
                }
                Ok(kinds)
            })
        })
        .await;
        let kinds = match recorded {
            Ok(Ok(kinds)) => kinds,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cannot record the alarm changes");
                Vec::new()
            }
            Err(err) => {
                tracing::warn!(error = %err, "alarm bookkeeping task failed");
                Vec::new()
            }
        };
        for (change, kind) in applied.done.iter().zip(&kinds) {
            self.metrics.changes.with_label_values(&[kind]).inc();
            if *kind == "drift" {
                tracing::warn!(change = %change, "alarm drift repaired: it was changed outside cloudwarden");
            } else {
                tracing::info!(change = %change, "alarm change made");
            }
        }
        if kinds.contains(&"drift") {
            self.outbox.notify_one();
        }
        let in_place = plan
            .declared
            .saturating_sub(applied.failed.len() + plan.foreign.len());
        self.metrics
            .managed
            .set(i64::try_from(in_place).unwrap_or(i64::MAX));
        if applied.failed.is_empty() {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            self.metrics.last_success.set(now);
        }
        tracing::info!(
            declared = plan.declared,
            changed = applied.done.len(),
            failed = applied.failed.len(),
            findings = plan.findings.len(),
            "alarms reconciled"
        );
    }
}

/// A hash of what was declared, to recognise a declaration put before.
fn declaration_hash(item: &Item) -> u64 {
    xxh3_64(format!("{item:?}").as_bytes())
}

/// The alert about a wiring problem that appeared: the alarms exist but
/// would not notify anyone, or count nothing.
fn wiring_alert(finding: &reconcile::Finding) -> Alert {
    OwnAlert {
        rule: AlertRule {
            id: WIRING_RULE.to_owned(),
            title: "CloudWatch Alarms Cannot Do Their Job".to_owned(),
            level: Level::Medium,
            tags: vec![
                "attack.defense-evasion".to_owned(),
                "attack.t1562".to_owned(),
            ],
            description: Some(format!(
                "{finding}. The monitoring alarms cloudwarden keeps would stay silent while this lasts. Check who changed the topic's policy or subscriptions, or the trail (cloudtrail StopLogging, UpdateTrail, DeleteTrail; sns SetTopicAttributes, Unsubscribe) in CloudTrail."
            )),
            falsepositives: vec![
                "A new account whose alarm topic has no subscriber yet".to_owned(),
            ],
            references: vec![],
        },
        origin: finding.subject.clone(),
        dedup_key: format!("{WIRING_RULE}|{}", finding.subject),
        event_source: "monitoring.amazonaws.com",
    }
    .alert()
}

/// The alert about a filter or alarm changed or deleted outside cloudwarden.
fn drift_alert(change: &Change) -> Alert {
    let what = match change.action {
        Action::Create => format!(
            "The {} {} was deleted.",
            change.item.kind(),
            change.item.name()
        ),
        Action::Repair => format!(
            "The {} {} was changed: {}.",
            change.item.kind(),
            change.item.name(),
            change.reasons.join("; ")
        ),
    };
    OwnAlert {
        rule: AlertRule {
            id: DRIFT_RULE.to_owned(),
            title: "CloudWatch Alarm Or Metric Filter Changed Outside cloudwarden".to_owned(),
            level: Level::High,
            tags: vec!["attack.defense-evasion".to_owned(), "attack.t1562".to_owned()],
            description: Some(format!(
                "{what} cloudwarden has put it back as declared. Deleting or weakening a monitoring alarm is how an intruder goes quiet: find who changed it in CloudTrail (cloudwatch DeleteAlarms, PutMetricAlarm, DisableAlarmActions; logs PutMetricFilter, DeleteMetricFilter) and whether it was agreed."
            )),
            falsepositives: vec!["An administrator editing a managed alarm by hand instead of in cloudwarden's configuration".to_owned()],
            references: vec![],
        },
        origin: format!("{} {}", change.item.kind(), change.item.name()),
        dedup_key: format!("{DRIFT_RULE}|{}|{}", change.item.kind(), change.item.name()),
        event_source: match change.item {
            Item::Filter(_) => "logs.amazonaws.com",
            Item::Alarm(_) => "monitoring.amazonaws.com",
        },
    }
    .alert()
}

/// An alert cloudwarden raises about the alarms it keeps, not about an
/// event: what differs between drift and wiring alerts, the rest shared.
struct OwnAlert {
    rule: AlertRule,
    origin: String,
    dedup_key: String,
    event_source: &'static str,
}

impl OwnAlert {
    fn alert(self) -> Alert {
        Alert {
            id: None,
            rule: self.rule,
            kind: AlertKind::Match,
            correlation: None,
            event_time: None,
            event_id: None,
            event_source: Some(self.event_source.into()),
            event_name: None,
            principal: None,
            account: None,
            region: None,
            source_ip: None,
            user_agent: None,
            source: Some("alarms".to_owned()),
            origin: Some(self.origin),
            dedup_key: self.dedup_key,
            events: vec![],
            correlated_events: vec![],
            repeats: None,
            posture: None,
            response: None,
            anomaly: None,
            trimmed: vec![],
        }
    }
}
