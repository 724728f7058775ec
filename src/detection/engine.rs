//! The detection engine: one event in, alerts out.
//!
//! For each event: parse it within the limits, add what enrichment reads
//! from its policy documents (`cloudwarden.*`), look up the rules its
//! logsource and field values allow (the index), evaluate those, apply
//! their filters, raise alerts for the rules that alert on their own and
//! feed the correlations that count them. The engine is pure computation:
//! it reads no files, calls no AWS API and writes no state; the daemon's
//! stage and `replay` wrap it with I/O.

use std::sync::Arc;

use serde_json::value::RawValue;

use super::alert::{Alert, AlertKind, AlertRule, CorrelationInfo, EventDigest, dedup_key};
use super::correlation::{self, Fire, Group, GroupChange, Observation, Runtime};
use super::dedup::Dedup;
use super::enrich;
use super::event::{self, EventFacts, Format, Rejection, format_time_ms};
use super::sigma::detection::EventView;
use super::sigma::document::{LogSource, Meta};
use super::sigma::field::{Doc, FieldPath, TopKeys};
use super::sigma::index::RuleIndex;
use super::sigma::ruleset::{CompiledRule, RuleSet};

/// The engine's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineConfig {
    /// Limits on one record.
    pub event: event::Limits,
    /// Limits on correlation state.
    pub correlation: correlation::Limits,
    /// Dropping duplicate eventIDs: (window in ms of event time, capacity); `None` keeps all.
    pub dedup: Option<(i64, usize)>,
}

/// What processing one record came to.
#[derive(Debug, Default)]
pub struct Processed {
    /// Alerts raised.
    pub alerts: Vec<Alert>,
    /// The record repeated an eventID seen within the dedup window and was dropped.
    pub duplicate: bool,
}

/// One record to evaluate and where it came from.
#[derive(Clone, Copy)]
pub struct EventInput<'a> {
    /// The record's text.
    pub raw: &'a str,
    /// How to read it.
    pub format: Format,
    /// Which rules apply (by their logsource).
    pub logsource: &'a LogSource,
    /// The configured source that read it.
    pub source: Option<&'a str>,
    /// Where exactly it was read; formatted only when an alert needs it.
    pub origin: Option<&'a dyn std::fmt::Display>,
    /// A time to use when the record has none of its own (ms since the epoch).
    pub time_hint_ms: Option<i64>,
    /// An id to drop repeats by when the record has no eventID (a log event's id).
    pub dedup_id: Option<&'a str>,
}

impl std::fmt::Debug for EventInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventInput")
            .field("format", &self.format)
            .field("source", &self.source)
            .field("origin", &self.origin.map(ToString::to_string))
            .finish_non_exhaustive()
    }
}

/// Counters over everything processed, for summaries and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Events parsed and evaluated.
    pub events: u64,
    /// Rule evaluations performed (what the index saves shows here).
    pub evaluations: u64,
    /// Rule matches, alerting or not.
    pub matches: u64,
}

/// Evaluates events against a rule set.
pub struct Engine {
    rules: Arc<RuleSet>,
    runtime: Runtime,
    indexes: Vec<(LogSource, RuleIndex)>,
    config: EngineConfig,
    scratch: String,
    candidates: Vec<u32>,
    stats: EngineStats,
    dedup: Option<Dedup>,
    top_keys: TopKeys,
    facts: FactPaths,
}

impl Engine {
    /// An engine for `rules`.
    pub fn new(rules: Arc<RuleSet>, config: EngineConfig) -> Engine {
        let correlations: Arc<[correlation::CorrelationRule]> = rules.correlations.clone().into();
        Engine {
            runtime: Runtime::new(correlations, config.correlation),
            rules,
            indexes: Vec::new(),
            config,
            scratch: String::new(),
            candidates: Vec::new(),
            stats: EngineStats::default(),
            dedup: config
                .dedup
                .map(|(window, capacity)| Dedup::new(window, capacity)),
            facts: FactPaths::new(),
            top_keys: TopKeys::default(),
        }
    }

    /// The eventID dedup, when enabled.
    pub fn dedup(&self) -> Option<&Dedup> {
        self.dedup.as_ref()
    }

    /// Remembers an id hash saved from an earlier run's dedup.
    pub fn restore_seen(&mut self, key: u128, time_ms: i64) {
        if let Some(dedup) = &mut self.dedup {
            dedup.restore(key, time_ms);
        }
    }

    /// Starts collecting newly seen ids and correlation changes, for a
    /// caller that persists them ([`Engine::take_seen`], [`Engine::take_state_changes`]).
    pub fn track_for_persistence(&mut self) {
        if let Some(dedup) = &mut self.dedup {
            dedup.track_new();
        }
        self.runtime.track_changes(true);
    }

    /// Ids first seen since the last call, as hashes with their event times.
    pub fn take_seen(&mut self) -> Vec<(u128, i64)> {
        self.dedup.as_mut().map(Dedup::take_new).unwrap_or_default()
    }

    /// The rule set.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Counters so far.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// What the correlation bounds did so far.
    pub fn correlation_stats(&self) -> correlation::Stats {
        self.runtime.stats()
    }

    /// Correlation groups held now.
    pub fn correlation_groups(&self) -> usize {
        self.runtime.group_count()
    }

    /// Starts (or stops) collecting correlation state changes for
    /// [`Engine::take_state_changes`]; a caller that persists state turns it on.
    pub fn track_state_changes(&mut self, on: bool) {
        self.runtime.track_changes(on);
    }

    /// Correlation state changed since the last call, to persist.
    pub fn take_state_changes(&mut self) -> Vec<GroupChange> {
        self.runtime.take_changes()
    }

    /// The newest event time the correlations have seen.
    pub fn newest_event_time(&self) -> Option<i64> {
        self.runtime.newest_event_time()
    }

    /// Restores a persisted correlation group; false when its rule is gone.
    pub fn restore_group(&mut self, rule_id: &str, key: &str, group: Group) -> bool {
        self.runtime.restore(rule_id, key, group)
    }

    /// Restores the newest event time the correlations had seen.
    pub fn restore_newest_event_time(&mut self, newest: i64) {
        self.runtime.restore_newest(newest);
    }

    /// Evaluates one record.
    pub fn process(&mut self, input: &EventInput<'_>) -> Result<Processed, Rejection> {
        let mut root = event::parse(input.raw, input.format, &self.config.event)?;
        // Before the top-level table: the fields it adds are looked up through it.
        if let Some(root) = root.as_mut() {
            enrich::apply(root, &self.config.event);
        }
        let slot = self.index_for(input.logsource);
        if self.top_keys.is_stale() {
            self.top_keys = TopKeys::current();
        }
        let table = root
            .as_ref()
            .map(|r| self.top_keys.table(r))
            .unwrap_or_default();
        let doc = root.as_ref().map(|r| Doc::new(r, &table));
        if let Some(dedup) = &mut self.dedup {
            // The record's eventID, else the id its source gave it.
            let id = doc
                .and_then(|d| self.facts.event_id.first_text(d))
                .or(input.dedup_id);
            if let Some(id) = id {
                let time = doc
                    .and_then(|d| self.facts.time.first_text(d))
                    .and_then(event::parse_time_ms)
                    .or(input.time_hint_ms)
                    .unwrap_or(0);
                if !dedup.first_sighting(id, time) {
                    return Ok(Processed {
                        alerts: Vec::new(),
                        duplicate: true,
                    });
                }
            }
        }
        self.stats.events += 1;
        let mut candidates = std::mem::take(&mut self.candidates);
        self.indexes[slot]
            .1
            .candidates(doc, &mut candidates, &mut self.scratch);
        let view = EventView {
            root: doc,
            raw: input.raw,
        };
        let mut alerts = Vec::new();
        let mut facts: Option<EventFacts> = None;
        let rules = Arc::clone(&self.rules);
        for &candidate in &candidates {
            let Some(rule) = rules.rules.get(candidate as usize) else {
                continue;
            };
            self.stats.evaluations += 1;
            if !rule.detection.matches(&view, &mut self.scratch)
                || !rule
                    .filters
                    .iter()
                    .all(|f| f.matches(&view, &mut self.scratch))
            {
                continue;
            }
            self.stats.matches += 1;
            let facts = facts.get_or_insert_with(|| self.facts.read(doc));
            if rule.alerts {
                let full = self.facts.complete(facts, doc);
                alerts.push(match_alert(rule, &full, doc, input));
            }
            for &(corr, slot) in &rule.consumers {
                self.feed(corr, slot, doc, facts, input, &mut alerts);
            }
        }
        self.candidates = candidates;
        // Windows judged at their end close as event time moves on.
        let fires = self.runtime.advance();
        if !fires.is_empty() {
            let facts = facts.unwrap_or_else(|| self.facts.read(doc));
            self.handle_fires(fires, doc, &facts, input, &mut alerts);
        }
        Ok(Processed {
            alerts,
            duplicate: false,
        })
    }

    /// Judges every open window as if time had run out: the end of a replay.
    pub fn finish(&mut self) -> Vec<Alert> {
        self.runtime.restore_newest(i64::MAX / 2);
        let fires = self.runtime.advance();
        let mut alerts = Vec::new();
        let logsource = LogSource::default();
        let input = EventInput {
            raw: "{}",
            format: Format::Json,
            logsource: &logsource,
            source: None,
            origin: None,
            time_hint_ms: None,
            dedup_id: None,
        };
        self.handle_fires(fires, None, &EventFacts::default(), &input, &mut alerts);
        alerts
    }

    fn index_for(&mut self, logsource: &LogSource) -> usize {
        if let Some(i) = self.indexes.iter().position(|(l, _)| l == logsource) {
            return i;
        }
        let members: Vec<_> = self
            .rules
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.meta.logsource.admits(logsource))
            .filter_map(|(i, r)| Some((u32::try_from(i).ok()?, r.detection.required_values())))
            .collect();
        self.indexes
            .push((logsource.clone(), RuleIndex::build(&members)));
        self.indexes.len() - 1
    }

    /// Feeds a match to input `slot` of correlation `corr`, and what fires onwards.
    fn feed(
        &mut self,
        corr: usize,
        slot: usize,
        root: Option<Doc<'_>>,
        facts: &EventFacts,
        input: &EventInput<'_>,
        alerts: &mut Vec<Alert>,
    ) {
        let rules = Arc::clone(&self.rules);
        let Some(rule) = rules.correlations.get(corr) else {
            return;
        };
        let Some(spec) = rule.inputs.get(slot) else {
            return;
        };
        let Some(root) = root else {
            return;
        };
        let mut group = Vec::with_capacity(spec.group_fields.len());
        for field in &spec.group_fields {
            match field.first_text(root) {
                Some(value) => group.push(value.to_owned()),
                None => {
                    self.runtime_missing_group_field();
                    return;
                }
            }
        }
        let mut values = Vec::new();
        if let Some(field) = &spec.value_field {
            field.any(root, &mut |v| {
                if let Some(text) = super::sigma::field::text_of(v, &mut self.scratch) {
                    values.push(text.to_owned());
                }
                // A list field is bounded by the record's size limit.
                false
            });
        }
        let time = facts.time_ms.or(input.time_hint_ms).unwrap_or_else(now_ms);
        let observation = Observation {
            time,
            group,
            values,
            digest: digest(facts),
        };
        let fires = self.runtime.observe(corr, slot, observation);
        self.handle_fires(fires, Some(root), facts, input, alerts);
    }

    fn runtime_missing_group_field(&mut self) {
        // Counted on the runtime so that stats stay in one place.
        self.runtime.count_missing_group_field();
    }

    fn handle_fires(
        &mut self,
        fires: Vec<Fire>,
        root: Option<Doc<'_>>,
        facts: &EventFacts,
        input: &EventInput<'_>,
        alerts: &mut Vec<Alert>,
    ) {
        let rules = Arc::clone(&self.rules);
        for fire in fires {
            let Some(rule) = rules.correlations.get(fire.rule) else {
                continue;
            };
            if rule.alerts {
                let full = self.facts.complete(facts, root);
                alerts.push(correlation_alert(rule, &fire, &full, input));
            }
            for &(outer, slot) in &rule.consumers {
                self.feed(outer, slot, root, facts, input, alerts);
            }
        }
    }
}

/// The fields alerts, dedup and correlations read from every record,
/// compiled once so that their top-level keys have table slots.
struct FactPaths {
    event_id: FieldPath,
    time: FieldPath,
    alt_times: [FieldPath; 3],
    event_source: FieldPath,
    event_name: FieldPath,
    account: FieldPath,
    identity_account: FieldPath,
    region: FieldPath,
    source_ip: FieldPath,
    user_agent: FieldPath,
    principal: [FieldPath; 4],
}

impl FactPaths {
    fn new() -> FactPaths {
        FactPaths {
            event_id: FieldPath::new("eventID"),
            time: FieldPath::new("eventTime"),
            alt_times: [
                FieldPath::new("@timestamp"),
                FieldPath::new("timestamp"),
                FieldPath::new("time"),
            ],
            event_source: FieldPath::new("eventSource"),
            event_name: FieldPath::new("eventName"),
            account: FieldPath::new("recipientAccountId"),
            identity_account: FieldPath::new("userIdentity.accountId"),
            region: FieldPath::new("awsRegion"),
            source_ip: FieldPath::new("sourceIPAddress"),
            user_agent: FieldPath::new("userAgent"),
            // Who acted: the ARN when there is one (users, role sessions,
            // root), else the service acting for it, else ids.
            principal: [
                FieldPath::new("userIdentity.arn"),
                FieldPath::new("userIdentity.invokedBy"),
                FieldPath::new("userIdentity.principalId"),
                FieldPath::new("userIdentity.userName"),
            ],
        }
    }

    /// What correlations need of every matching event: id, time, name,
    /// principal and source address.
    fn read(&self, doc: Option<Doc<'_>>) -> EventFacts {
        let Some(doc) = doc else {
            return EventFacts::default();
        };
        let text = |p: &FieldPath| p.first_text(doc).map(Arc::from);
        let time_text = text(&self.time).or_else(|| self.alt_times.iter().find_map(text));
        EventFacts {
            time_ms: time_text.as_deref().and_then(event::parse_time_ms),
            time_text,
            event_id: text(&self.event_id),
            event_name: text(&self.event_name),
            principal: self
                .principal
                .iter()
                .find_map(|p| p.first_text(doc).filter(|s| !s.is_empty()))
                .map(Arc::from),
            source_ip: text(&self.source_ip),
            ..EventFacts::default()
        }
    }

    /// The rest, which only alerts show.
    fn complete(&self, facts: &EventFacts, doc: Option<Doc<'_>>) -> EventFacts {
        let Some(doc) = doc else {
            return facts.clone();
        };
        let text = |p: &FieldPath| p.first_text(doc).map(Arc::from);
        EventFacts {
            event_source: text(&self.event_source),
            account: text(&self.account).or_else(|| text(&self.identity_account)),
            region: text(&self.region),
            user_agent: text(&self.user_agent),
            ..facts.clone()
        }
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn alert_rule(meta: &Meta) -> AlertRule {
    AlertRule {
        id: meta.id.clone(),
        title: meta.title.clone(),
        level: meta.level,
        tags: meta.tags.clone(),
        description: meta.description.clone(),
        falsepositives: meta.falsepositives.clone(),
        references: meta.references.clone(),
    }
}

fn digest(facts: &EventFacts) -> EventDigest {
    EventDigest {
        event_id: facts.event_id.clone(),
        event_time: facts.time_text.clone(),
        event_name: facts.event_name.clone(),
        principal: facts.principal.clone(),
        source_ip: facts.source_ip.clone(),
    }
}

fn raw_event(raw: &str, root: Option<Doc<'_>>) -> Option<Box<RawValue>> {
    match root {
        // Alerts are JSON lines: a pretty-printed record is compacted first.
        Some(_) if raw.contains(['\n', '\r']) => RawValue::from_string(compact_json(raw)).ok(),
        Some(_) => RawValue::from_string(raw.to_owned()).ok(),
        // A text record travels as a JSON string.
        None => RawValue::from_string(serde_json::to_string(raw).ok()?).ok(),
    }
}

/// Valid JSON without the whitespace between tokens.
fn compact_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            out.push(c);
        }
    }
    out
}

fn match_alert(
    rule: &CompiledRule,
    facts: &EventFacts,
    root: Option<Doc<'_>>,
    input: &EventInput<'_>,
) -> Alert {
    let key = if rule.dedup_fields.is_empty() {
        dedup_key(
            &rule.meta.id,
            &[facts.principal.as_deref(), facts.account.as_deref()],
        )
    } else {
        let values: Vec<Option<&str>> = rule
            .dedup_fields
            .iter()
            .map(|f| root.and_then(|r| f.first_text(r)))
            .collect();
        dedup_key(&rule.meta.id, &values)
    };
    Alert {
        id: None,
        rule: alert_rule(&rule.meta),
        kind: AlertKind::Match,
        correlation: None,
        event_time: facts.time_text.clone(),
        event_id: facts.event_id.clone(),
        event_source: facts.event_source.clone(),
        event_name: facts.event_name.clone(),
        principal: facts.principal.clone(),
        account: facts.account.clone(),
        region: facts.region.clone(),
        source_ip: facts.source_ip.clone(),
        user_agent: facts.user_agent.clone(),
        source: input.source.map(str::to_owned),
        origin: input.origin.map(ToString::to_string),
        dedup_key: key,
        events: raw_event(input.raw, root).into_iter().collect(),
        correlated_events: Vec::new(),
        repeats: None,
        trimmed: Vec::new(),
    }
}

fn correlation_alert(
    rule: &correlation::CorrelationRule,
    fire: &Fire,
    facts: &EventFacts,
    input: &EventInput<'_>,
) -> Alert {
    let group = rule
        .group_by
        .iter()
        .cloned()
        .zip(fire.group.iter().cloned())
        .collect();
    let parts: Vec<Option<&str>> = fire.group.iter().map(|g| Some(g.as_str())).collect();
    let last = fire.digests.last();
    Alert {
        id: None,
        rule: alert_rule(&rule.meta),
        kind: AlertKind::Correlation,
        correlation: Some(CorrelationInfo {
            kind: rule.spec.kind.as_str().to_owned(),
            group,
            value: fire.verdict.value,
            timespan_seconds: u64::try_from(rule.spec.timespan / 1000).unwrap_or(0),
            first_event_time: format_time_ms(fire.verdict.span.0),
            last_event_time: format_time_ms(fire.verdict.span.1),
            events_seen: fire.seen,
        }),
        event_time: last
            .and_then(|d| d.event_time.clone())
            .or_else(|| facts.time_text.clone()),
        event_id: last.and_then(|d| d.event_id.clone()),
        event_source: facts.event_source.clone(),
        event_name: last.and_then(|d| d.event_name.clone()),
        principal: last.and_then(|d| d.principal.clone()),
        account: facts.account.clone(),
        region: facts.region.clone(),
        source_ip: last.and_then(|d| d.source_ip.clone()),
        user_agent: facts.user_agent.clone(),
        source: input.source.map(str::to_owned),
        origin: input.origin.map(ToString::to_string),
        dedup_key: dedup_key(&rule.meta.id, &parts),
        events: Vec::new(),
        correlated_events: fire.digests.clone(),
        repeats: None,
        trimmed: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
