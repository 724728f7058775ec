//! The lifecycle of findings, kept in the state store: a finding
//! **opened** raises one alert; while it stays **open** nothing more; when
//! a sweep that covered its scope no longer finds it, it is **resolved** and
//! raises a `low` alert. Settling a sweep and staging its alerts is one
//! transaction, so a crash never loses an alert nor raises one twice.

use serde::{Deserialize, Serialize};

use super::catalog;
use super::checks::Finding;
use super::sweep::Sweep;
use crate::alerts::outbox;
use crate::alerts::suppression::Suppression;
use crate::detection::alert::{AlertKind, AlertRule, PostureInfo};
use crate::detection::touch::Touch;
use crate::detection::{Alert, Level};
use crate::state::{StateError, WriteTxn};

/// The state store namespace of open findings, keyed by check and resource.
pub const NAMESPACE: &str = "posture_findings";

/// Most findings kept open; beyond it new ones are counted, not kept.
pub const MAX_OPEN: usize = 100_000;

/// An open finding as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Open {
    /// The check's id.
    pub check: String,
    /// The resource's ARN.
    pub resource: String,
    /// Its Region.
    pub region: String,
    /// Its scope's key.
    pub scope: String,
    /// What was wrong when it opened.
    pub message: String,
    /// The check's severity.
    pub severity: Level,
    /// When it opened, ms since the epoch.
    pub opened_ms: i64,
    /// Whether a suppression matched when it opened (no alerts either way).
    pub suppressed: bool,
}

/// What settling a sweep changed.
#[derive(Debug, Default)]
pub struct Settled {
    /// Findings that opened (suppressed ones included).
    pub opened: Vec<Open>,
    /// Findings that were resolved.
    pub resolved: Vec<Open>,
    /// Alerts staged.
    pub staged: usize,
    /// Findings not kept because `MAX_OPEN` were open.
    pub dropped: usize,
    /// Every finding open afterwards.
    pub open: Vec<Open>,
    /// Response intents committed for findings that opened.
    pub intents: usize,
}

/// What settling needs besides the sweep.
pub struct Context<'a> {
    /// The account swept.
    pub account: &'a str,
    /// The event that caused a re-check, when one did.
    pub cause: Option<&'a Touch>,
    /// Suppressions in force.
    pub suppressions: &'a [Suppression],
    /// Makes outbox keys.
    pub keys: &'a outbox::Keys,
    /// Now, ms since the epoch.
    pub now_ms: i64,
    /// Response actions bound to posture checks.
    pub response: Option<&'a crate::response::Bindings>,
}

/// Settles `sweep` in `txn`: opens what is new, resolves what a covered
/// scope no longer has, and stages an alert for each (unless suppressed).
pub fn settle(txn: &mut WriteTxn, sweep: &Sweep, ctx: &Context<'_>) -> Result<Settled, StateError> {
    let known: Vec<(String, Open)> = txn.records(NAMESPACE, MAX_OPEN + 1)?;
    let now = jiff::Timestamp::from_millisecond(ctx.now_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let mut out = Settled::default();
    let mut count = known.len();
    for finding in &sweep.findings {
        let key = finding.key();
        if known.iter().any(|(k, _)| *k == key) {
            continue;
        }
        if count >= MAX_OPEN {
            out.dropped += 1;
            continue;
        }
        let Some(alert) = alert(ctx, &Subject::Opened(finding)) else {
            continue;
        };
        let suppressed = ctx.suppressions.iter().any(|s| s.matches(&alert, now));
        if !suppressed {
            outbox::stage(txn, &ctx.keys.next(ctx.now_ms), &alert, ctx.now_ms)?;
            out.staged += 1;
            if let Some(bindings) = ctx.response {
                let wanted = bindings.for_finding(&alert, ctx.now_ms);
                out.intents += crate::response::intent::stage(txn, &wanted, ctx.keys, ctx.now_ms)?;
            }
        }
        let open = Open {
            check: finding.check.id.to_owned(),
            resource: finding.resource.clone(),
            region: finding.region.clone(),
            scope: finding.scope.key(),
            message: finding.message.clone(),
            severity: finding.check.severity,
            opened_ms: ctx.now_ms,
            suppressed,
        };
        txn.put_record(NAMESPACE, &key, &open, None)?;
        count += 1;
        out.opened.push(open);
    }
    for (key, open) in known {
        let covered = sweep.covered.iter().any(|c| c.covers(&open.scope));
        let still = sweep.findings.iter().any(|f| f.key() == key);
        if !covered || still {
            out.open.push(open);
            continue;
        }
        txn.remove_record(NAMESPACE, &key)?;
        // A check retired by an upgrade closes its findings quietly.
        if let (false, Some(alert)) = (open.suppressed, alert(ctx, &Subject::Resolved(&open))) {
            outbox::stage(txn, &ctx.keys.next(ctx.now_ms), &alert, ctx.now_ms)?;
            out.staged += 1;
        }
        out.resolved.push(open);
    }
    out.open.extend(out.opened.iter().cloned());
    Ok(out)
}

enum Subject<'a> {
    Opened(&'a Finding),
    Resolved(&'a Open),
}

/// The alert for a finding that opened or was resolved.
fn alert(ctx: &Context<'_>, subject: &Subject<'_>) -> Option<Alert> {
    let (check, resource, region, message, status) = match subject {
        Subject::Opened(f) => (
            f.check,
            f.resource.as_str(),
            f.region.as_str(),
            f.message.clone(),
            "opened",
        ),
        Subject::Resolved(o) => (
            catalog::find(&o.check)?,
            o.resource.as_str(),
            o.region.as_str(),
            format!("Resolved: {}", o.message),
            "resolved",
        ),
    };
    let (title, level) = match status {
        "opened" => (check.title.to_owned(), check.severity),
        _ => (format!("Resolved: {}", check.title), Level::Low),
    };
    let mut tags = vec!["posture".to_owned(), format!("posture.{status}")];
    if let Some(cis) = check.cis {
        tags.push(format!("cis.{cis}"));
    }
    let cause = ctx.cause;
    Some(Alert {
        id: None,
        rule: AlertRule {
            id: check.id.to_owned(),
            title,
            level,
            tags,
            description: Some(check.remediation.to_owned()),
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
        account: Some(ctx.account.into()),
        region: Some(region.into()),
        source_ip: None,
        user_agent: None,
        source: Some("posture".to_owned()),
        origin: Some(resource.to_owned()),
        dedup_key: format!("posture|{}|{resource}|{status}", check.id),
        events: vec![],
        correlated_events: vec![],
        repeats: None,
        posture: Some(PostureInfo {
            check: check.id.to_owned(),
            status: status.to_owned(),
            resource: resource.to_owned(),
            cis: check.cis.map(str::to_owned),
            message,
            remediation: check.remediation.to_owned(),
            severity: check.severity,
        }),
        response: None,
        anomaly: None,
        trimmed: vec![],
    })
}
