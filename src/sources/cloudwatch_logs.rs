//! `cloudwatch_logs`: FilterLogEvents on one log group or every group under
//! a prefix. This is how CloudTrail delivered to CloudWatch Logs is read, and
//! how application and VPC Flow Log streams are watched.
//!
//! Like LookupEvents, each poll re-reads a window reaching `lookback` behind
//! the end of the last committed one, because log events can be ingested
//! late; detection drops repeats by each log event's id. FilterLogEvents
//! selects by event time, while events are ingested later, sometimes by
//! more than the lookback: the source measures each event's ingestion
//! delay and reaches back past it (plus a quarter, at most a day), so what
//! arrives that late is still read. A page can be empty and still carry a
//! next token: the source follows it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::api::{LogQuery, LogsApi};
use super::context::{Polled, SourceContext, SourceError, unix_millis};
use super::reread::IngestionDelays;
use crate::config::{LogGroupSelector, RecordFormat};
use crate::detection::event::Format;
use crate::detection::sigma::document::LogSource;
use crate::pipeline;

/// Log groups read under one prefix, at most; more are left out with a warning.
const MAX_GROUPS: usize = 1000;

/// The furthest a window reaches back for late ingestion, ms.
const MAX_REACH_MS: i64 = 86_400_000;

/// Ingestion delays per log group (at most `MAX_GROUPS` of them).
type Delays = Mutex<HashMap<String, IngestionDelays>>;

/// How a `cloudwatch_logs` source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The Region of the log groups.
    pub region: String,
    /// Which groups.
    pub groups: LogGroupSelector,
    /// A CloudWatch Logs filter pattern applied by the service.
    pub filter_pattern: Option<String>,
    /// Only streams whose names start with this.
    pub stream_prefix: Option<String>,
    /// How lines are read.
    pub format: RecordFormat,
    /// Which rules apply to the lines.
    pub logsource: LogSource,
    /// How far back each window reaches behind the last one.
    pub lookback: Duration,
    /// Time between polls.
    pub interval: Duration,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Covered {
    /// Every log event up to this time (ms) was committed.
    until_ms: i64,
}

/// Polls until shutdown.
pub async fn run<A: LogsApi>(ctx: SourceContext, api: Arc<A>, settings: Settings) {
    let logsource = Arc::new(settings.logsource.clone());
    let delays: Delays = Mutex::default();
    ctx.poll_every(settings.interval, || async {
        let groups = groups(&ctx, api.as_ref(), &settings).await?;
        lock(&delays).retain(|group, _| groups.contains(group));
        let mut failure = None;
        for group in &groups {
            match poll(&ctx, api.as_ref(), group, &settings, &logsource, &delays).await {
                Ok(()) => {}
                Err(err @ (SourceError::Stopped | SourceError::Pipeline(_))) => return Err(err),
                Err(err) => {
                    tracing::warn!(source = %ctx.name, group, error = %err, "FilterLogEvents poll failed");
                    failure = Some(err);
                }
            }
        }
        failure.map_or(Ok(Polled::Done), Err)
    })
    .await;
}

async fn groups<A: LogsApi>(
    ctx: &SourceContext,
    api: &A,
    settings: &Settings,
) -> Result<Vec<String>, SourceError> {
    let prefix = match &settings.groups {
        LogGroupSelector::Name(name) => return Ok(vec![name.clone()]),
        LogGroupSelector::Prefix(prefix) => prefix,
    };
    let mut groups = Vec::new();
    let mut token = None;
    loop {
        let (names, next) = api.log_groups(&settings.region, prefix, token).await?;
        groups.extend(names);
        if groups.len() >= MAX_GROUPS {
            tracing::warn!(source = %ctx.name, prefix, limit = MAX_GROUPS, "more log groups under the prefix than are read; narrow log_group_prefix");
            groups.truncate(MAX_GROUPS);
            break;
        }
        match next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    Ok(groups)
}

async fn poll<A: LogsApi>(
    ctx: &SourceContext,
    api: &A,
    group: &str,
    settings: &Settings,
    logsource: &Arc<LogSource>,
    delays: &Delays,
) -> Result<(), SourceError> {
    let now = unix_millis();
    let configured = i64::try_from(settings.lookback.as_millis()).unwrap_or(i64::MAX);
    let (lookback, seen) = {
        let delays = lock(delays);
        let group_delays = delays.get(group);
        (
            group_delays.map_or(configured, |d| d.reach(configured, MAX_REACH_MS)),
            group_delays.map_or(0, IngestionDelays::seen),
        )
    };
    ctx.metrics
        .reread_seconds
        .with_label_values(&[&*ctx.name, group])
        .set(lookback / 1000);
    ctx.metrics
        .lateness_seconds
        .with_label_values(&[&*ctx.name, group])
        .set(seen / 1000);
    let covered: Option<Covered> = ctx.checkpoint(group).await?;
    let start = covered
        .map_or(now - lookback, |c| {
            (c.until_ms - lookback).min(now - lookback)
        })
        .max(0);
    let mut query = LogQuery {
        group: group.to_owned(),
        start,
        end: now,
        filter_pattern: settings.filter_pattern.clone(),
        stream_prefix: settings.stream_prefix.clone(),
        next_token: None,
    };
    let format = match settings.format {
        RecordFormat::CloudTrail => Format::CloudTrail,
        RecordFormat::Json => Format::Json,
        RecordFormat::Text => Format::Text,
    };
    let (batch, pending) = pipeline::batch();
    let mut newest = None;
    // Everything from here on may be read again by the next poll.
    let reread_from: (Arc<str>, i64) = (Arc::from(group), start);
    loop {
        if ctx.stop.is_cancelled() {
            return Err(SourceError::Stopped);
        }
        let page = api.filter_log_events(&settings.region, &query).await?;
        for event in page.events {
            newest = newest.max(Some(event.timestamp));
            if let Some(ingested) = event.ingestion_time {
                lock(delays)
                    .entry(group.to_owned())
                    .or_default()
                    .observe(ingested - event.timestamp);
            }
            let origin = format!("{group} {} {}", event.stream, event.event_id);
            let mut e = ctx.event(event.message, origin, format, logsource, batch.token());
            e.time_hint_ms = Some(event.timestamp);
            e.dedup_id = Some(format!("{group}/{}", event.event_id));
            e.reread_from = Some(reread_from.clone());
            ctx.send(e).await?;
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
    ctx.set_checkpoint(
        group,
        Covered {
            until_ms: query.end,
        },
    )
    .await?;
    lock(delays).entry(group.to_owned()).or_default().end();
    if let Some(newest) = newest {
        ctx.lag(newest);
    }
    Ok(())
}

/// The delays, whatever a panicking holder left: they are only measurements.
fn lock(delays: &Delays) -> std::sync::MutexGuard<'_, HashMap<String, IngestionDelays>> {
    delays.lock().unwrap_or_else(PoisonError::into_inner)
}
