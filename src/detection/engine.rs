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

use super::alert::{
    Alert, AlertKind, AlertRule, AnomalyInfo, CorrelationInfo, EventDigest, dedup_key,
};
use super::anomaly::{self, AnomalyRule, Finding};
use super::correlation::{self, Fire, Group, GroupChange, Observation, Runtime};
use super::dedup::{Dedup, Sighting};
use super::enrich;
use super::event::{self, EventFacts, Format, Rejection, format_time_ms};
use super::sigma::detection::EventView;
use super::sigma::document::{LogSource, Meta};
use super::sigma::field::{Doc, FieldPath, TopKeys};
use super::sigma::index::RuleIndex;
use super::sigma::ruleset::{CompiledRule, RuleSet};
use super::touch::{Touch, TouchPaths};

/// The engine's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineConfig {
    /// Limits on one record.
    pub event: event::Limits,
    /// Limits on correlation state.
    pub correlation: correlation::Limits,
    /// Limits on anomaly state.
    pub anomaly: anomaly::Limits,
    /// Dropping duplicate eventIDs: (window in ms of event time, capacity); `None` keeps all.
    pub dedup: Option<(i64, usize)>,
    /// Whether to report which checked resources events touched (posture's
    /// re-checks); off, it costs nothing.
    pub touches: bool,
}

/// What processing one record came to.
#[derive(Debug, Default)]
pub struct Processed {
    /// Alerts raised.
    pub alerts: Vec<Alert>,
    /// The record repeated an eventID seen within the dedup window and was dropped.
    pub duplicate: bool,
    /// The record's event time (ms since the epoch), when it has one.
    pub time_ms: Option<i64>,
    /// The checked resource it changed, when `touches` is on.
    pub touch: Option<Touch>,
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
    /// For a source that re-reads a window: the part it read (a Region, a
    /// log group) and the earliest event time it may read there again, so
    /// that dedup remembers ids as long as they may come back.
    pub reread_from: Option<(&'a str, i64)>,
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
    anomalies: anomaly::Runtime,
    /// The group and value text of the anomaly being fed, reused.
    anomaly_text: (String, String),
    indexes: Vec<(LogSource, RuleIndex)>,
    config: EngineConfig,
    scratch: String,
    candidates: Vec<u32>,
    stats: EngineStats,
    dedup: Option<Dedup>,
    top_keys: TopKeys,
    facts: FactPaths,
    /// Whether some rule reads the fields enrichment adds.
    enrich: bool,
    touch_paths: TouchPaths,
}

impl Engine {
    /// An engine for `rules`.
    pub fn new(rules: Arc<RuleSet>, config: EngineConfig) -> Engine {
        let enrich = reads_enriched_fields(&rules);
        let correlations: Arc<[correlation::CorrelationRule]> = rules.correlations.clone().into();
        let anomalies: Arc<[AnomalyRule]> = rules.anomalies.clone().into();
        Engine {
            runtime: Runtime::new(correlations, config.correlation),
            anomalies: anomaly::Runtime::new(anomalies, config.anomaly),
            anomaly_text: (String::new(), String::new()),
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
            enrich,
            top_keys: TopKeys::default(),
            touch_paths: TouchPaths::default(),
        }
    }

    /// The eventID dedup, when enabled.
    pub fn dedup(&self) -> Option<&Dedup> {
        self.dedup.as_ref()
    }

    /// Remembers an id hash a source saw in an earlier run (restore each
    /// source's oldest first).
    pub fn restore_seen(&mut self, source: &str, key: u128, time_ms: i64) {
        if let Some(dedup) = &mut self.dedup {
            dedup.restore(source, key, time_ms);
        }
    }

    /// Starts collecting newly seen ids and correlation changes, for a
    /// caller that persists them ([`Engine::take_seen`], [`Engine::take_state_changes`]).
    pub fn track_for_persistence(&mut self) {
        if let Some(dedup) = &mut self.dedup {
            dedup.track_new();
        }
        self.runtime.track_changes(true);
        self.anomalies.track_changes(true);
    }

    /// Ids first seen since the last call: source, hash, event time.
    pub fn take_seen(&mut self) -> Vec<(Arc<str>, u128, i64)> {
        self.dedup.as_mut().map(Dedup::take_new).unwrap_or_default()
    }

    /// Ids dedup forgot since the last call: source and hash.
    pub fn take_forgotten(&mut self) -> Vec<(Arc<str>, u128)> {
        self.dedup
            .as_mut()
            .map(Dedup::take_removed)
            .unwrap_or_default()
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

    /// Anomaly state changed since the last call, to persist.
    pub fn take_anomaly_changes(&mut self) -> Vec<anomaly::Change> {
        self.anomalies.take_changes()
    }

    /// Restores a persisted anomaly group; false when its rule is gone.
    pub fn restore_anomaly(&mut self, rule_id: &str, group: u64, state: anomaly::State) -> bool {
        self.anomalies.restore(rule_id, group, state)
    }

    /// What the anomaly bounds did so far.
    pub fn anomaly_stats(&self) -> anomaly::Stats {
        self.anomalies.stats()
    }

    /// Anomaly groups held now.
    pub fn anomaly_groups(&self) -> usize {
        self.anomalies.group_count()
    }

    /// The newest event time the correlations have seen.
    pub fn newest_event_time(&self) -> Option<i64> {
        self.runtime.newest_event_time()
    }

    /// Restores a persisted correlation group; false when its rule is gone.
    pub fn restore_group(&mut self, rule_id: &str, key: &str, group: Group) -> bool {
        self.runtime.set_clock(now_ms());
        self.runtime.restore(rule_id, key, group)
    }

    /// Restores the newest event time the correlations had seen.
    pub fn restore_newest_event_time(&mut self, newest: i64) {
        self.runtime.set_clock(now_ms());
        self.runtime.restore_newest(newest);
    }

    /// Evaluates one record.
    pub fn process(&mut self, input: &EventInput<'_>) -> Result<Processed, Rejection> {
        let mut root = event::parse(input.raw, input.format, &self.config.event)?;
        // Before the top-level table: the fields it adds are looked up
        // through it. Only when some rule reads them: it costs every event.
        if let (Some(root), true) = (root.as_mut(), self.enrich) {
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
        // Every event moves event time on, matching or not, so windows
        // close as time passes; a time far ahead of the clock is clamped.
        let time = doc
            .and_then(|d| self.facts.time.first_text(d))
            .and_then(event::parse_time_ms)
            .or(input.time_hint_ms);
        self.runtime.set_clock(now_ms());
        if let Some(time) = time {
            self.runtime.note_time(time);
        }
        if let Some(dedup) = &mut self.dedup {
            // The record's eventID, else the id its source gave it.
            let id = doc
                .and_then(|d| self.facts.event_id.first_text(d))
                .or(input.dedup_id);
            if let Some(id) = id {
                let sighting = Sighting {
                    source: input.source.unwrap_or_default(),
                    id,
                    time_ms: time.unwrap_or(0),
                    ceiling: self.runtime.ceiling(),
                    reread_from: input.reread_from,
                };
                if !dedup.first_sighting(sighting) {
                    return Ok(Processed {
                        alerts: Vec::new(),
                        duplicate: true,
                        time_ms: time,
                        touch: None,
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
        let mut event_digest: Option<EventDigest> = None;
        let rules = Arc::clone(&self.rules);
        let from_trail = input.logsource.service.as_deref() == Some("cloudtrail");
        for &candidate in &candidates {
            let Some(rule) = rules.rules.get(candidate as usize) else {
                continue;
            };
            if let (Some(sources), Some(doc), true) = (&rule.event_sources, doc, from_trail) {
                // A rule about one service's events reads only that service's.
                let source = self.facts.event_source.first_text(doc).unwrap_or_default();
                if !sources.iter().any(|s| s.eq_ignore_ascii_case(source)) {
                    continue;
                }
            }
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
            if let (Some(doc), false) = (doc, rule.consumers.is_empty()) {
                let time = facts.time_ms.or(input.time_hint_ms).unwrap_or_else(now_ms);
                // One digest per event, however many rules it feeds.
                let digest = &*event_digest.get_or_insert_with(|| digest(facts));
                for &target in &rule.consumers {
                    self.feed(target, doc, (time, false), digest, input, &mut alerts);
                }
            }
            if let (Some(doc), false) = (doc, rule.anomalies.is_empty()) {
                // Event time, clamped as for correlations: a record dated
                // in the future must not age every value at once.
                let time = facts
                    .time_ms
                    .or(input.time_hint_ms)
                    .unwrap_or_else(now_ms)
                    .min(self.runtime.ceiling());
                for &target in &rule.anomalies {
                    if let Some(alert) = self.feed_anomaly(target, doc, time, facts, input) {
                        alerts.push(alert);
                    }
                }
            }
        }
        self.candidates = candidates;
        // Windows judged at their end close as event time moves on; what
        // they say is about their own events, not this one.
        let fires = self.runtime.advance();
        self.handle_fires(fires, input, &mut alerts);
        let touch = match (self.config.touches, doc) {
            (true, Some(doc)) => self.touch_paths.touch(doc),
            _ => None,
        };
        Ok(Processed {
            alerts,
            duplicate: false,
            time_ms: time,
            touch,
        })
    }

    /// Judges every open window as if time had run out: the end of a replay.
    pub fn finish(&mut self) -> Vec<Alert> {
        let fires = self.runtime.finish();
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
            reread_from: None,
        };
        self.handle_fires(fires, &input, &mut alerts);
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
            .filter(|(_, r)| r.skipped.is_none() && r.meta.logsource.admits(logsource))
            .filter_map(|(i, r)| Some((u32::try_from(i).ok()?, r.detection.required_values())))
            .collect();
        self.indexes
            .push((logsource.clone(), RuleIndex::build(&members)));
        self.indexes.len() - 1
    }

    /// Feeds a match to input `slot` of correlation `corr`, and what fires
    /// onwards. `doc` is the matching event, or for a correlation that
    /// consumes another, the group values of the inner one's result.
    fn feed(
        &mut self,
        (corr, slot): (usize, usize),
        doc: Doc<'_>,
        (time, derived): (i64, bool),
        digest: &EventDigest,
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
        let mut group = Vec::with_capacity(spec.group_fields.len());
        for field in &spec.group_fields {
            // Numbers and booleans group as JSON writes them.
            let mut value = None;
            field.any(doc, &mut |v| {
                value = super::sigma::field::text_of(v, &mut self.scratch).map(str::to_owned);
                value.is_some()
            });
            match value {
                Some(value) => group.push(value),
                None => {
                    self.runtime.count_missing_group_field();
                    return;
                }
            }
        }
        let mut values = Vec::new();
        if let Some(field) = &spec.value_field {
            field.any(doc, &mut |v| {
                if let Some(text) = super::sigma::field::text_of(v, &mut self.scratch) {
                    values.push(text.to_owned());
                }
                // A list field is bounded by the record's size limit.
                false
            });
        }
        let observation = Observation {
            time,
            group,
            values,
            digest: digest.clone(),
            derived,
        };
        let fires = self.runtime.observe(corr, slot, observation);
        self.handle_fires(fires, input, alerts);
    }

    /// Feeds a match to anomaly rule `index`; an alert when it found something.
    fn feed_anomaly(
        &mut self,
        index: usize,
        doc: Doc<'_>,
        time: i64,
        facts: &EventFacts,
        input: &EventInput<'_>,
    ) -> Option<Alert> {
        let rules = Arc::clone(&self.rules);
        let rule = rules.anomalies.get(index)?;
        let (group, value) = &mut self.anomaly_text;
        group.clear();
        value.clear();
        let read = |specs: &[anomaly::derive::FieldSpec], out: &mut String| {
            specs.iter().enumerate().all(|(i, spec)| {
                if i > 0 {
                    out.push(SEPARATOR);
                }
                spec.read(doc, out)
            })
        };
        if !read(&rule.group_by, group) || !read(&rule.fields, value) {
            self.anomalies.count_missing_field();
            return None;
        }
        let finding =
            self.anomalies
                .observe(index, anomaly::hash(group), anomaly::hash(value), time)?;
        if !rule.alerts {
            return None;
        }
        let full = self.facts.complete(facts, Some(doc));
        let (group, value) = &self.anomaly_text;
        Some(anomaly_alert(
            rule,
            finding,
            (group, value),
            &full,
            doc,
            input,
        ))
    }

    fn handle_fires(&mut self, fires: Vec<Fire>, input: &EventInput<'_>, alerts: &mut Vec<Alert>) {
        let rules = Arc::clone(&self.rules);
        for fire in fires {
            let Some(rule) = rules.correlations.get(fire.rule) else {
                continue;
            };
            if rule.alerts {
                alerts.push(correlation_alert(rule, &fire, input));
            }
            if rule.consumers.is_empty() {
                continue;
            }
            // An outer correlation groups by the inner one's group-by fields,
            // whose values are the fired group's, whichever event is at hand.
            let values = group_object(&rule.group_by, &fire.group);
            let last = fire.digests.last().cloned().unwrap_or_default();
            for &target in &rule.consumers {
                self.feed(
                    target,
                    Doc::plain(&values),
                    (fire.verdict.span.1, true),
                    &last,
                    input,
                    alerts,
                );
            }
        }
    }
}

/// Whether any rule or filter reads a field under `cloudwarden.`, the
/// object enrichment adds.
fn reads_enriched_fields(rules: &RuleSet) -> bool {
    let prefix = format!("{}.", enrich::ROOT_KEY);
    let reads =
        |d: &super::sigma::detection::Detection| d.fields().iter().any(|f| f.starts_with(&prefix));
    rules
        .rules
        .iter()
        .any(|r| reads(&r.detection) || r.filters.iter().any(reads))
}

/// `{"field": "value", ...}` of a correlation's group, for the correlations
/// that consume its results.
fn group_object(names: &[String], values: &[String]) -> sonic_rs::Value {
    let mut object = sonic_rs::Object::new();
    for (name, value) in names.iter().zip(values) {
        object.insert(name, value.as_str());
    }
    sonic_rs::Value::from(object)
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
    /// principal, source address, service, account and Region.
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
            event_source: text(&self.event_source),
            account: text(&self.account).or_else(|| text(&self.identity_account)),
            region: text(&self.region),
            user_agent: None,
        }
    }

    /// The rest, which only alerts show.
    fn complete(&self, facts: &EventFacts, doc: Option<Doc<'_>>) -> EventFacts {
        let Some(doc) = doc else {
            return facts.clone();
        };
        let text = |p: &FieldPath| p.first_text(doc).map(Arc::from);
        EventFacts {
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
        event_source: facts.event_source.clone(),
        account: facts.account.clone(),
        region: facts.region.clone(),
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
        posture: None,
        response: None,
        anomaly: None,
        trimmed: Vec::new(),
    }
}

/// Joins the values of an anomaly's group (or watched fields) into one text.
const SEPARATOR: char = '\u{1f}';

fn anomaly_alert(
    rule: &AnomalyRule,
    finding: Finding,
    (group, value): (&str, &str),
    facts: &EventFacts,
    doc: Doc<'_>,
    input: &EventInput<'_>,
) -> Alert {
    let named = |specs: &[anomaly::derive::FieldSpec], text: &str| {
        specs
            .iter()
            .map(|s| s.name.clone())
            .zip(text.split(SEPARATOR).map(str::to_owned))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let mut parts: Vec<Option<&str>> = group.split(SEPARATOR).map(Some).collect();
    let history_seconds = u64::try_from(rule.history / 1000).unwrap_or(0);
    let info = match finding {
        Finding::New { since } => {
            // Each new value is its own finding.
            parts.extend(value.split(SEPARATOR).map(Some));
            AnomalyInfo {
                kind: rule.kind.as_str().to_owned(),
                group: named(&rule.group_by, group),
                new_value: named(&rule.fields, value),
                history_since: format_time_ms(since),
                history_seconds,
                count: None,
                baseline_mean: None,
                baseline_spread: None,
                threshold: None,
                bucket_seconds: None,
                bucket_start: None,
            }
        }
        Finding::Burst(burst) => AnomalyInfo {
            kind: rule.kind.as_str().to_owned(),
            group: named(&rule.group_by, group),
            new_value: std::collections::BTreeMap::new(),
            history_since: format_time_ms(burst.since),
            history_seconds,
            count: Some(burst.count),
            baseline_mean: Some((burst.mean * 100.0).round() / 100.0),
            baseline_spread: Some((burst.spread * 100.0).round() / 100.0),
            threshold: Some(burst.threshold),
            bucket_seconds: u64::try_from(rule.bucket / 1000).ok(),
            bucket_start: format_time_ms(burst.bucket_start),
        },
    };
    Alert {
        id: None,
        rule: alert_rule(&rule.meta),
        kind: AlertKind::Anomaly,
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
        dedup_key: dedup_key(&rule.meta.id, &parts),
        events: raw_event(input.raw, Some(doc)).into_iter().collect(),
        correlated_events: Vec::new(),
        repeats: None,
        posture: None,
        response: None,
        anomaly: Some(info),
        trimmed: Vec::new(),
    }
}

fn correlation_alert(
    rule: &correlation::CorrelationRule,
    fire: &Fire,
    input: &EventInput<'_>,
) -> Alert {
    let group = rule
        .group_by
        .iter()
        .cloned()
        .zip(fire.group.iter().cloned())
        .collect();
    let parts: Vec<Option<&str>> = fire.group.iter().map(|g| Some(g.as_str())).collect();
    // Everything the alert says about the events comes from the group's own
    // digests: a window that closed as time moved on was closed by some
    // other event, which says nothing about this group.
    let last = fire.digests.last();
    let from_last = |f: fn(&EventDigest) -> &Option<Arc<str>>| last.and_then(|d| f(d).clone());
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
        event_time: from_last(|d| &d.event_time)
            .or_else(|| format_time_ms(fire.verdict.span.1).map(Arc::from)),
        event_id: from_last(|d| &d.event_id),
        event_source: from_last(|d| &d.event_source),
        event_name: from_last(|d| &d.event_name),
        principal: from_last(|d| &d.principal),
        account: from_last(|d| &d.account),
        region: from_last(|d| &d.region),
        source_ip: from_last(|d| &d.source_ip),
        user_agent: None,
        // The source and place are the triggering event's only when an
        // arriving event made the condition hold.
        source: input.source.filter(|_| fire.early).map(str::to_owned),
        origin: input.origin.filter(|_| fire.early).map(ToString::to_string),
        dedup_key: dedup_key(&rule.meta.id, &parts),
        events: Vec::new(),
        correlated_events: fire.digests.clone(),
        repeats: None,
        posture: None,
        response: None,
        anomaly: None,
        trimmed: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
