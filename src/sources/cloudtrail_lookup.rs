//! `cloudtrail_lookup`: CloudTrail's LookupEvents, management events of the
//! last 90 days, Region by Region.
//!
//! CloudTrail delivers events minutes late and out of order, so a watermark
//! at the newest event seen would lose the late ones. Each poll instead
//! re-reads a window that reaches `lookback` behind the end of the last
//! window fully committed (or behind now, the first time), and detection
//! drops what it has seen by eventID. The checkpoint is that end, moved
//! only after every event of the window is committed; after downtime the
//! next window reaches back over the gap. Once the source has watched for
//! a whole `lookback`, the re-read shrinks to the lateness it measures
//! (`reread`), so each event is read a few times, not `lookback / interval`.
//!
//! IAM, STS and console sign-in events are recorded in us-east-1 whatever
//! Region they concern. Unless us-east-1 is among the Regions read anyway,
//! `global_events` reads it for those event sources alone.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::api::{CloudTrailApi, LOOKUP_EVENTS_PER_SECOND, LookupQuery};
use super::context::{Polled, SourceContext, SourceError, unix_seconds};
use super::reread::{Lateness, observe_record};
use crate::detection::event::Format;
use crate::detection::sigma::document::LogSource;
use crate::pipeline;

/// LookupEvents reaches 90 days back.
const RETENTION_SECONDS: i64 = 90 * 86_400;

/// The Region that records global-service events.
pub const GLOBAL_REGION: &str = "us-east-1";

/// The global services whose events are recorded in us-east-1.
pub const GLOBAL_EVENT_SOURCES: [&str; 3] = [
    "iam.amazonaws.com",
    "sts.amazonaws.com",
    "signin.amazonaws.com",
];

/// How a `cloudtrail_lookup` source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Regions read in full.
    pub regions: Vec<String>,
    /// How far back each window reaches behind the last one.
    pub lookback: Duration,
    /// Time between polls.
    pub interval: Duration,
    /// Read global-service events in us-east-1 when it is not among `regions`.
    pub global_events: bool,
}

/// What one query reads: a Region, in full or for one event source.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    region: String,
    event_source: Option<&'static str>,
}

impl Scope {
    fn checkpoint_part(&self) -> String {
        match self.event_source {
            None => self.region.clone(),
            Some(source) => format!("{}:{source}", self.region),
        }
    }
}

/// The checkpoint of one scope.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct Covered {
    /// Every event up to this time (Unix seconds) was committed, as far as
    /// CloudTrail had delivered it when read.
    until: i64,
}

fn scopes(settings: &Settings) -> Vec<Scope> {
    let mut scopes: Vec<Scope> = settings
        .regions
        .iter()
        .map(|r| Scope {
            region: r.clone(),
            event_source: None,
        })
        .collect();
    if settings.global_events && !settings.regions.iter().any(|r| r == GLOBAL_REGION) {
        scopes.extend(GLOBAL_EVENT_SOURCES.iter().map(|source| Scope {
            region: GLOBAL_REGION.to_owned(),
            event_source: Some(source),
        }));
    }
    scopes
}

/// What a scope keeps between polls.
#[derive(Debug, Default)]
struct ScopeState {
    lateness: Mutex<Lateness>,
    /// Where a window that failed part-way goes on.
    resume: Mutex<Option<Resume>>,
}

/// A window read in part: its pages so far are committed, and the next
/// poll goes on from the page that failed instead of starting over, so a
/// window whose later pages keep being throttled still gets through.
#[derive(Debug, Clone)]
struct Resume {
    /// The window's query, with the token of the page that failed.
    query: LookupQuery,
    /// Records read so far, for origins.
    index: u64,
    /// The newest event time read so far.
    newest: Option<i64>,
}

/// Polls until shutdown.
pub async fn run<A: CloudTrailApi>(ctx: SourceContext, api: Arc<A>, settings: Settings) {
    let scopes = scopes(&settings);
    let logsource = Arc::new(LogSource::cloudtrail());
    let states: Vec<ScopeState> = scopes.iter().map(|_| ScopeState::default()).collect();
    ctx.poll_every(settings.interval, || async {
        let mut failure = None;
        let mut requests: Vec<(&str, u64)> = Vec::new();
        for (scope, state) in scopes.iter().zip(&states) {
            match poll(&ctx, api.as_ref(), scope, &settings, &logsource, state).await {
                Ok(n) => match requests.iter_mut().find(|(r, _)| *r == scope.region) {
                    Some((_, total)) => *total += n,
                    None => requests.push((&scope.region, n)),
                },
                Err(err @ (SourceError::Stopped | SourceError::Pipeline(_))) => return Err(err),
                // One Region failing does not hold the others back.
                Err(err) => {
                    tracing::warn!(source = %ctx.name, region = %scope.region, error = %err, "LookupEvents poll failed");
                    failure = Some(err);
                }
            }
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(budget(&ctx, settings.interval, &requests)),
        }
    })
    .await;
}

/// Compares the requests a poll needed in each Region with what the
/// interval allows under LookupEvents' limit: a source that needs more
/// polls less often than configured and falls further behind each time.
fn budget(ctx: &SourceContext, interval: Duration, requests: &[(&str, u64)]) -> Polled {
    let allowed = (interval.as_secs_f64() * f64::from(LOOKUP_EVENTS_PER_SECOND)).max(1.0);
    let mut behind = Polled::Done;
    for (region, needed) in requests {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let percent = (*needed as f64 / allowed * 100.0).round() as i64;
        ctx.metrics
            .request_budget_percent
            .with_label_values(&[&*ctx.name, region])
            .set(percent);
        if percent > 100 {
            let reason = format!(
                "falling behind: LookupEvents needs {needed} requests a poll in {region}, more than the {allowed} its interval allows; raise interval or shorten lookback"
            );
            tracing::warn!(source = %ctx.name, region, needed, allowed, "{reason}");
            behind = Polled::Behind(reason);
        }
    }
    behind
}

/// Reads one scope's window (or the rest of one that failed part-way);
/// answers the LookupEvents requests it made.
async fn poll<A: CloudTrailApi>(
    ctx: &SourceContext,
    api: &A,
    scope: &Scope,
    settings: &Settings,
    logsource: &Arc<LogSource>,
    state: &ScopeState,
) -> Result<u64, SourceError> {
    let part = scope.checkpoint_part();
    let lateness = &state.lateness;
    let resumed = lock(&state.resume).take();
    let (mut query, mut index, mut newest) = match resumed {
        Some(resume) => {
            tracing::info!(source = %ctx.name, region = %scope.region, read = resume.index, "going on with the window that failed part-way");
            lock(lateness).begin(resume.query.end);
            (resume.query, resume.index, resume.newest)
        }
        None => {
            let query = window(ctx, scope, settings, lateness, &part).await?;
            (query, 0, None)
        }
    };
    let (batch, pending) = pipeline::batch();
    let mut requests = 0u64;
    // Everything from here on may be read again by the next poll.
    let reread_from: (Arc<str>, i64) = (Arc::from(part.as_str()), query.start.saturating_mul(1000));
    loop {
        if ctx.stop.is_cancelled() {
            return Err(SourceError::Stopped);
        }
        requests += 1;
        let page = match api.lookup_events(&scope.region, &query).await {
            Ok(page) => page,
            Err(err) => {
                // Keep the pages read: once they are committed, the next
                // poll goes on from this one (a token that no longer works
                // is a permanent error, and the window starts over).
                if query.next_token.is_some() && err.class.is_retriable() {
                    drop(batch);
                    if pending.wait().await {
                        *lock(&state.resume) = Some(Resume {
                            query,
                            index,
                            newest,
                        });
                    }
                }
                return Err(err.into());
            }
        };
        newest = newest.max(page.newest_ms);
        for record in page.records {
            observe_record(&mut lock(lateness), &record);
            let origin = format!(
                "LookupEvents {} {}..{} #{index}",
                scope.region, query.start, query.end
            );
            index += 1;
            let mut event = ctx.event(record, origin, Format::CloudTrail, logsource, batch.token());
            event.reread_from = Some(reread_from.clone());
            ctx.send(event).await?;
        }
        match page.next_token {
            Some(token) => query.next_token = Some(token),
            None => break,
        }
    }
    drop(batch);
    if !pending.wait().await {
        return Err(SourceError::NotAcknowledged);
    }
    ctx.set_checkpoint(&part, Covered { until: query.end })
        .await?;
    lock(lateness).end();
    if let Some(newest) = newest {
        ctx.lag(newest);
    }
    tracing::debug!(source = %ctx.name, region = %scope.region, events = index, requests, "LookupEvents window read");
    Ok(requests)
}

/// The next window of a scope: from the end of the last committed one, less
/// the lateness measured (see `reread`), to now.
async fn window(
    ctx: &SourceContext,
    scope: &Scope,
    settings: &Settings,
    lateness: &Mutex<Lateness>,
    part: &str,
) -> Result<LookupQuery, SourceError> {
    let now = unix_seconds();
    let lookback = i64::try_from(settings.lookback.as_secs()).unwrap_or(RETENTION_SECONDS);
    let reach = {
        let mut lateness = lock(lateness);
        let reach = lateness.reach(lookback, now);
        lateness.begin(now);
        ctx.metrics
            .reread_seconds
            .with_label_values(&[&*ctx.name, part])
            .set(reach);
        ctx.metrics
            .lateness_seconds
            .with_label_values(&[&*ctx.name, part])
            .set(lateness.seen());
        reach
    };
    let covered: Option<Covered> = ctx.checkpoint(part).await?;
    let start = covered
        .map_or(now - lookback, |c| (c.until - reach).min(now - reach))
        .max(now - RETENTION_SECONDS);
    Ok(LookupQuery {
        start,
        end: now,
        event_source: scope.event_source.map(str::to_owned),
        next_token: None,
    })
}

/// The state of a scope, whatever a panicking holder left: it holds only
/// measurements and a place to go on from.
fn lock<T>(held: &Mutex<T>) -> MutexGuard<'_, T> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_events_are_read_in_us_east_1_only_when_it_is_not_read_anyway() {
        let settings = |regions: &[&str], global| Settings {
            regions: regions.iter().map(|r| (*r).to_owned()).collect(),
            lookback: Duration::from_secs(900),
            interval: Duration::from_secs(60),
            global_events: global,
        };
        let s = scopes(&settings(&["eu-west-1"], true));
        assert_eq!(s.len(), 4);
        assert!(
            s[1..]
                .iter()
                .all(|s| s.region == "us-east-1" && s.event_source.is_some())
        );
        assert_eq!(s[1].checkpoint_part(), "us-east-1:iam.amazonaws.com");
        assert_eq!(
            scopes(&settings(&["eu-west-1", "us-east-1"], true)).len(),
            2
        );
        assert_eq!(scopes(&settings(&["eu-west-1"], false)).len(), 1);
    }
}
