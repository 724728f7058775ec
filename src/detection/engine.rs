//! The detection engine: one event in, alerts out.
//!
//! For each event: parse it within the limits, look up the rules its
//! logsource and field values allow (the index), evaluate those, apply
//! their filters, raise alerts for the rules that alert on their own and
//! feed the correlations that count them. The engine is pure computation:
//! it reads no files, calls no AWS API and writes no state; the daemon's
//! stage and `replay` wrap it with I/O.

use std::sync::Arc;

use serde_json::value::RawValue;
use sonic_rs::{JsonValueTrait, Value};

use super::alert::{Alert, AlertKind, AlertRule, CorrelationInfo, EventDigest, dedup_key};
use super::correlation::{self, Fire, Group, GroupChange, Observation, Runtime};
use super::dedup::Dedup;
use super::event::{self, EventFacts, Format, Rejection, format_time_ms};
use super::sigma::detection::EventView;
use super::sigma::document::{LogSource, Meta};
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
#[derive(Debug, Clone, Copy)]
pub struct EventInput<'a> {
    /// The record's text.
    pub raw: &'a str,
    /// How to read it.
    pub format: Format,
    /// Which rules apply (by their logsource).
    pub logsource: &'a LogSource,
    /// The configured source that read it.
    pub source: Option<&'a str>,
    /// Where exactly it was read.
    pub origin: Option<&'a str>,
    /// A time to use when the record has none of its own (ms since the epoch).
    pub time_hint_ms: Option<i64>,
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
        }
    }

    /// The eventID dedup, when enabled.
    pub fn dedup(&self) -> Option<&Dedup> {
        self.dedup.as_ref()
    }

    /// Marks an eventID as seen (restoring the daemon's dedup state).
    pub fn remember_event_id(&mut self, id: &str, time_ms: i64) {
        if let Some(dedup) = &mut self.dedup {
            dedup.first_sighting(id, time_ms);
        }
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
        let root = event::parse(input.raw, input.format, &self.config.event)?;
        if let (Some(dedup), Some(root)) = (&mut self.dedup, &root) {
            if let Some(id) = root.get("eventID").and_then(|v| v.as_str()) {
                let time = root
                    .get("eventTime")
                    .and_then(|v| v.as_str())
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
        let slot = self.index_for(input.logsource);
        let mut candidates = std::mem::take(&mut self.candidates);
        self.indexes[slot]
            .1
            .candidates(root.as_ref(), &mut candidates, &mut self.scratch);
        let view = EventView {
            root: root.as_ref(),
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
            let facts = facts.get_or_insert_with(|| EventFacts::of(root.as_ref()));
            if rule.alerts {
                alerts.push(match_alert(rule, facts, root.as_ref(), input));
            }
            for &(corr, slot) in &rule.consumers {
                self.feed(corr, slot, root.as_ref(), facts, input, &mut alerts);
            }
        }
        self.candidates = candidates;
        // Windows judged at their end close as event time moves on.
        let fires = self.runtime.advance();
        let facts = facts.unwrap_or_else(|| EventFacts::of(root.as_ref()));
        self.handle_fires(fires, root.as_ref(), &facts, input, &mut alerts);
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
        root: Option<&Value>,
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
        let value = spec.value_field.as_ref().and_then(|f| {
            let mut found = None;
            f.any(root, &mut |v| {
                found = super::sigma::field::text_of(v, &mut self.scratch).map(str::to_owned);
                found.is_some()
            });
            found
        });
        let time = facts.time_ms.or(input.time_hint_ms).unwrap_or_else(now_ms);
        let observation = Observation {
            time,
            group,
            value,
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
        root: Option<&Value>,
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
                alerts.push(correlation_alert(rule, &fire, facts, input));
            }
            for &(outer, slot) in &rule.consumers {
                self.feed(outer, slot, root, facts, input, alerts);
            }
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

fn raw_event(raw: &str, root: Option<&Value>) -> Option<Box<RawValue>> {
    match root {
        Some(_) => RawValue::from_string(raw.to_owned()).ok(),
        // A text record travels as a JSON string.
        None => RawValue::from_string(serde_json::to_string(raw).ok()?).ok(),
    }
}

fn match_alert(
    rule: &CompiledRule,
    facts: &EventFacts,
    root: Option<&Value>,
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
        origin: input.origin.map(str::to_owned),
        dedup_key: key,
        events: raw_event(input.raw, root).into_iter().collect(),
        correlated_events: Vec::new(),
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
        origin: input.origin.map(str::to_owned),
        dedup_key: dedup_key(&rule.meta.id, &parts),
        events: Vec::new(),
        correlated_events: fire.digests.clone(),
    }
}

#[cfg(test)]
mod tests;
