//! Sigma correlation rules on a stream: event_count, value_count,
//! value_sum, value_avg, temporal and temporal_ordered, grouped by fields,
//! over a timespan of event time.
//!
//! Windows follow event time, not arrival time. The watermark is the newest
//! event time seen minus the configured allowance for late events: an event
//! older than the watermark is counted as late and not correlated, and
//! window state older than the watermark minus the timespan is dropped.
//! Every bound (groups per rule, entries per group) evicts the least
//! recently used state and counts it, so memory stays within the caps
//! whatever the input. The state can be exported and restored, so that a
//! restart does not forget open windows.

mod window;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use window::{DIGESTS_KEPT, Entry, Group, Spec, TEMPORAL_TIMES_KEPT, Verdict};

use super::alert::EventDigest;
use super::sigma::document::{CorrelationDoc, CorrelationType, Meta};
use super::sigma::field::FieldPath;

/// Bounds on correlation state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Groups kept per correlation rule; beyond it the least recently updated goes.
    pub max_groups: usize,
    /// Observations kept per group; beyond it the oldest go.
    pub max_entries: usize,
    /// How far behind the newest event time an event may be and still count, in ms.
    pub late_allowance_ms: i64,
    /// How far ahead of the clock an event time may move the newest event
    /// time, in ms: a record dated in the future must not make every later
    /// event "late".
    pub max_future_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_groups: 10_000,
            max_entries: 1_000,
            late_allowance_ms: 20 * 60 * 1000,
            max_future_ms: 5 * 60 * 1000,
        }
    }
}

/// Counters of what the bounds and the watermark did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Groups evicted because a rule had `max_groups` of them.
    pub evicted_groups: u64,
    /// Observations dropped because a group had `max_entries` of them.
    pub evicted_entries: u64,
    /// Events older than the watermark, not correlated.
    pub late_events: u64,
    /// Matches not correlated because a group-by field was missing.
    pub missing_group_field: u64,
    /// Matches of a value_count correlation without the counted field.
    pub missing_value: u64,
    /// Events dated further ahead of the clock than `max_future_ms`: their
    /// time did not move the newest event time past that.
    pub future_events: u64,
}

/// One rule a correlation refers to, as the correlation reads its events.
#[derive(Debug, Clone)]
pub struct Input {
    /// The fields that give the group, in `group-by` order (aliases resolved).
    pub group_fields: Vec<FieldPath>,
    /// The field whose values are counted, summed or averaged.
    pub value_field: Option<FieldPath>,
}

/// A compiled correlation rule.
#[derive(Debug, Clone)]
pub struct CorrelationRule {
    /// Title, level, tags, ... for its alerts.
    pub meta: Arc<Meta>,
    /// The type, timespan and condition.
    pub spec: Spec,
    /// The `group-by` names, for alerts.
    pub group_by: Vec<String>,
    /// One per referenced rule, in the order referenced.
    pub inputs: Vec<Input>,
    /// Whether it raises alerts itself (not when it only feeds another correlation).
    pub alerts: bool,
    /// The correlations that consume this one's results: (rule, input).
    pub consumers: Vec<(usize, usize)>,
    /// The file it came from.
    pub origin: String,
}

impl CorrelationRule {
    /// Builds the rule; `input_names` are the `name`s of the referenced rules
    /// (for aliases), in the order of `doc.rules`.
    pub fn compile(doc: &CorrelationDoc, input_names: &[Option<String>]) -> Result<Self, String> {
        let mut inputs = Vec::new();
        for name in input_names {
            let mut group_fields = Vec::new();
            for group in &doc.group_by {
                let alias = doc.aliases.iter().find(|(alias, _)| alias == group);
                let field = match alias {
                    None => group.clone(),
                    Some((alias, per_rule)) => {
                        let mapped = name
                            .as_ref()
                            .and_then(|n| per_rule.iter().find(|(rule, _)| rule == n));
                        match mapped {
                            Some((_, field)) => field.clone(),
                            None => {
                                return Err(format!(
                                    "alias {alias} does not say which field of rule {} to use",
                                    name.as_deref().unwrap_or("(without a name)")
                                ));
                            }
                        }
                    }
                };
                group_fields.push(FieldPath::new(&field));
            }
            inputs.push(Input {
                group_fields,
                value_field: doc.field.as_deref().map(FieldPath::new),
            });
        }
        let timespan = i64::try_from(doc.timespan.as_millis()).unwrap_or(i64::MAX);
        Ok(CorrelationRule {
            meta: Arc::new(doc.meta.clone()),
            spec: Spec {
                kind: doc.kind,
                timespan,
                bounds: doc.bounds.clone(),
                inputs: doc.rules.len(),
            },
            group_by: doc.group_by.clone(),
            inputs,
            alerts: true,
            consumers: Vec::new(),
            origin: String::new(),
        })
    }
}

/// What a correlation saw of one event.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The event time, ms since the epoch.
    pub time: i64,
    /// The group-by values, in order.
    pub group: Vec<String>,
    /// The `condition.field` values (a field may hold a list).
    pub values: Vec<String>,
    /// A summary of the event for the alert.
    pub digest: EventDigest,
    /// The result of another correlation rather than an event: it comes
    /// when that correlation's window closes, after the watermark passed
    /// it, so it is never late.
    pub derived: bool,
}

/// A correlation that fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    /// Index of the correlation rule.
    pub rule: usize,
    /// The group-by values.
    pub group: Vec<String>,
    /// What the condition measured, and when.
    pub verdict: Verdict,
    /// Events of the group between the first and the last that made the verdict.
    pub seen: u64,
    /// Some of those events.
    pub digests: Vec<EventDigest>,
    /// Whether an arriving event made the condition hold (else its window
    /// closed as event time moved on, and no event of the group was at hand).
    pub early: bool,
}

/// A change to persist: a group's state, or its removal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupChange {
    /// The correlation rule's id.
    pub rule_id: String,
    /// The group's values as a JSON array string.
    pub key: String,
    /// The state, or `None` when the group is gone.
    pub group: Option<Group>,
}

/// A group's values, shared by the maps that refer to the group.
type Key = Arc<[String]>;

#[derive(Default)]
struct RuleState {
    groups: HashMap<Key, (u64, Group), foldhash::fast::RandomState>,
    /// (window end, sequence) → group, for windows judged at their end.
    closing: BTreeMap<(i64, u64), Key>,
}

/// The live state of every correlation rule.
pub struct Runtime {
    rules: Arc<[CorrelationRule]>,
    states: Vec<RuleState>,
    limits: Limits,
    newest: i64,
    /// The clock plus `max_future_ms`, as the caller last said.
    ceiling: i64,
    seq: u64,
    stats: Stats,
    /// Groups changed since the last [`Runtime::take_changes`], when tracked.
    dirty: HashSet<(usize, Key)>,
    tracking: bool,
}

impl Runtime {
    /// An empty runtime for `rules`.
    pub fn new(rules: Arc<[CorrelationRule]>, limits: Limits) -> Runtime {
        let states = rules.iter().map(|_| RuleState::default()).collect();
        Runtime {
            rules,
            states,
            limits,
            newest: i64::MIN,
            ceiling: i64::MAX,
            seq: 0,
            stats: Stats::default(),
            dirty: HashSet::new(),
            tracking: false,
        }
    }

    /// Remembers which groups change, for [`Runtime::take_changes`]; off by
    /// default, because only a persisting caller collects them.
    pub fn track_changes(&mut self, on: bool) {
        self.tracking = on;
        if !on {
            self.dirty.clear();
        }
    }

    fn mark(&mut self, rule: usize, key: Key) {
        if self.tracking {
            self.dirty.insert((rule, key));
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[CorrelationRule] {
        &self.rules
    }

    /// What the bounds and the watermark did so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The newest event time seen (ms), for persisting with the state.
    pub fn newest_event_time(&self) -> Option<i64> {
        (self.newest != i64::MIN).then_some(self.newest)
    }

    /// Groups currently held, over all rules.
    pub fn group_count(&self) -> usize {
        self.states.iter().map(|s| s.groups.len()).sum()
    }

    fn watermark(&self) -> i64 {
        self.newest.saturating_sub(self.limits.late_allowance_ms)
    }

    /// Tells the runtime the clock (ms), which bounds how far a record dated
    /// in the future can move event time.
    pub fn set_clock(&mut self, now: i64) {
        self.ceiling = now.saturating_add(self.limits.max_future_ms);
    }

    /// The latest event time that may move time on (the clock plus
    /// `max_future_ms`), for other state that follows event time.
    pub fn ceiling(&self) -> i64 {
        self.ceiling
    }

    /// Moves event time on to `time`, the time of an event that may match
    /// nothing: windows close as time passes, whichever events show it.
    /// Returns false (and counts it) when the time is beyond the clock's
    /// allowance and was clamped.
    pub fn note_time(&mut self, time: i64) -> bool {
        let clamped = time.min(self.ceiling);
        if clamped > self.newest {
            self.newest = clamped;
        }
        if time > self.ceiling {
            self.stats.future_events += 1;
            return false;
        }
        true
    }

    /// Feeds one event matched by input `input` of correlation `rule`.
    pub fn observe(&mut self, rule: usize, input: usize, obs: Observation) -> Vec<Fire> {
        let mut fires = Vec::new();
        let rules = Arc::clone(&self.rules);
        let Some(spec) = rules.get(rule).map(|r| &r.spec) else {
            return fires;
        };
        if !obs.derived && obs.time < self.watermark() {
            self.stats.late_events += 1;
            return fires;
        }
        let clamped = obs.time.min(self.ceiling);
        if clamped > self.newest {
            self.newest = clamped;
        }
        if spec.kind == CorrelationType::ValueCount && obs.values.is_empty() {
            // A missing field is no value: it can neither add to a distinct
            // count nor, by its absence, be counted as one.
            self.stats.missing_value += 1;
            fires.extend(self.advance());
            return fires;
        }
        let key: &[String] = &obs.group;
        let input = u16::try_from(input).unwrap_or(u16::MAX);
        // Each value of a list field counts on its own (value_count,
        // value_sum, value_avg); without a value field an event is one entry.
        let mut entries: Vec<Entry> = obs
            .values
            .into_iter()
            .map(|value| Entry {
                time: obs.time,
                input,
                value: Some(value),
                more: false,
            })
            .collect();
        if entries.is_empty() {
            entries.push(Entry {
                time: obs.time,
                input,
                value: None,
                more: false,
            });
        }
        let early = spec.fires_early();
        if !early {
            // The group's closing slot moves with its sequence number (and
            // with its start, when an earlier event arrives late).
            if let Some((
                seq,
                Group {
                    window_start: Some(start),
                    ..
                },
            )) = self.states[rule].groups.get(key)
            {
                let slot = (start.saturating_add(spec.timespan), *seq);
                self.states[rule].closing.remove(&slot);
            }
        }
        // A derived observation comes after the watermark passed its time:
        // entries are kept from its own time back, not the watermark's.
        let horizon = if obs.derived {
            obs.time.min(self.watermark())
        } else {
            self.watermark()
        }
        .saturating_sub(spec.timespan);
        let max_entries = self.limits.max_entries;
        let (shared, group) = self.touch(rule, key);
        let distinct = spec.kind == CorrelationType::ValueCount;
        let per_input = matches!(
            spec.kind,
            CorrelationType::Temporal | CorrelationType::TemporalOrdered
        )
        .then_some(TEMPORAL_TIMES_KEPT);
        let mut dropped = 0;
        let mut digest = Some(obs.digest);
        for entry in entries {
            // One event, one digest and one count in `seen`.
            dropped += group.insert(entry, digest.take(), max_entries, distinct, per_input);
        }
        let verdict = if early {
            group.expire(horizon);
            group.check_early(spec)
        } else {
            // A window starts at the earliest event it holds.
            let start = group.window_start.map_or(obs.time, |s| s.min(obs.time));
            group.window_start = Some(start);
            None
        };
        self.stats.evicted_entries += dropped as u64;
        if !early {
            let (seq, start) = self.states[rule]
                .groups
                .get(key)
                .map_or((0, None), |(s, g)| (*s, g.window_start));
            if let Some(start) = start {
                self.states[rule].closing.insert(
                    (start.saturating_add(spec.timespan), seq),
                    Arc::clone(&shared),
                );
            }
        }
        if let Some(verdict) = verdict {
            fires.push(self.fire(rule, key, verdict));
        }
        self.mark(rule, shared);
        fires.extend(self.advance());
        fires
    }

    /// Judges every window whose end the watermark has passed.
    pub fn advance(&mut self) -> Vec<Fire> {
        let watermark = self.watermark();
        let mut fires = Vec::new();
        for rule in 0..self.states.len() {
            loop {
                let due = match self.states[rule].closing.first_key_value() {
                    Some((&(end, seq), key)) if end <= watermark => Some(((end, seq), key.clone())),
                    _ => None,
                };
                let Some((slot, key)) = due else { break };
                self.states[rule].closing.remove(&slot);
                // Only the group's current window counts; older slots are stale.
                let current = self.states[rule]
                    .groups
                    .get(&key)
                    .is_some_and(|(seq, g)| *seq == slot.1 && g.window_start.is_some());
                if current {
                    fires.extend(self.close(rule, &key));
                }
            }
        }
        fires
    }

    /// Judges a group's window on the events in it, and keeps the events
    /// of later windows that arrived before this one closed.
    fn close(&mut self, rule: usize, key: &Key) -> Option<Fire> {
        let rules = Arc::clone(&self.rules);
        let spec = &rules.get(rule)?.spec;
        let (seq, group) = self.states[rule].groups.get_mut(key)?;
        let seq = *seq;
        let start = group.window_start?;
        let end = start.saturating_add(spec.timespan);
        let verdict = group.check_window(spec, start, end);
        let evidence = verdict.as_ref().map(|v| group.evidence(v.span.0, v.span.1));
        let next = group
            .drain_until(end)
            .then_some(group.window_start)
            .flatten();
        match next {
            Some(next) => {
                self.states[rule]
                    .closing
                    .insert((next.saturating_add(spec.timespan), seq), Arc::clone(key));
                self.mark(rule, Arc::clone(key));
            }
            None => {
                self.remove(rule, key);
            }
        }
        let (verdict, (seen, digests)) = verdict.zip(evidence)?;
        Some(Fire {
            rule,
            group: key.to_vec(),
            verdict,
            seen,
            digests,
            early: false,
        })
    }

    /// A condition that held as an event arrived: the group starts over.
    fn fire(&mut self, rule: usize, key: &[String], verdict: Verdict) -> Fire {
        let group = self.remove(rule, key).unwrap_or_default();
        let (seen, digests) = group.evidence(verdict.span.0, verdict.span.1);
        Fire {
            rule,
            group: key.to_vec(),
            verdict,
            seen,
            digests,
            early: true,
        }
    }

    fn remove(&mut self, rule: usize, key: &[String]) -> Option<Group> {
        let (shared, (_, group)) = self.states[rule].groups.remove_entry(key)?;
        self.mark(rule, shared);
        Some(group)
    }

    /// The group, created if new, marked as most recently used; with the
    /// shared copy of its key.
    fn touch(&mut self, rule: usize, key: &[String]) -> (Key, &mut Group) {
        self.seq += 1;
        let seq = self.seq;
        let limit = self.limits.max_groups.max(1);
        let existing = self.states[rule]
            .groups
            .get_key_value(key)
            .map(|(k, _)| Arc::clone(k));
        let shared = match existing {
            Some(shared) => shared,
            None => {
                if self.states[rule].groups.len() >= limit {
                    self.evict_oldest(rule, limit);
                }
                Arc::from(key)
            }
        };
        let slot = self.states[rule]
            .groups
            .entry(Arc::clone(&shared))
            .or_insert((seq, Group::default()));
        slot.0 = seq;
        (shared, &mut slot.1)
    }

    /// Evicts the least recently updated tenth of a rule's groups at once,
    /// so that a rule at its bound pays one pass per many new groups.
    fn evict_oldest(&mut self, rule: usize, limit: usize) {
        let state = &mut self.states[rule];
        let mut ages: Vec<(u64, Key)> = state
            .groups
            .iter()
            .map(|(k, (seq, _))| (*seq, Arc::clone(k)))
            .collect();
        let count = (limit / 10).clamp(1, ages.len());
        ages.select_nth_unstable_by_key(count - 1, |(seq, _)| *seq);
        for (_, victim) in ages.into_iter().take(count) {
            state.groups.remove(&victim);
            self.stats.evicted_groups += 1;
            if self.tracking {
                self.dirty.insert((rule, victim));
            }
        }
    }

    /// The groups changed since the last call, for the state store.
    pub fn take_changes(&mut self) -> Vec<GroupChange> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut changes: Vec<GroupChange> = dirty
            .into_iter()
            .filter_map(|(rule, key)| {
                let rule_id = self.rules.get(rule)?.meta.id.clone();
                let group = self.states[rule].groups.get(&key).map(|(_, g)| g.clone());
                Some(GroupChange {
                    rule_id,
                    key: serde_json::to_string(&key).ok()?,
                    group,
                })
            })
            .collect();
        changes.sort_by(|a, b| (&a.rule_id, &a.key).cmp(&(&b.rule_id, &b.key)));
        changes
    }

    /// Puts back a group saved by [`Runtime::take_changes`]; groups of rules
    /// that no longer exist are ignored. Returns whether it was restored.
    pub fn restore(&mut self, rule_id: &str, key: &str, group: Group) -> bool {
        let Some(rule) = self.rules.iter().position(|r| r.meta.id == rule_id) else {
            return false;
        };
        let Ok(key) = serde_json::from_str::<Vec<String>>(key) else {
            return false;
        };
        if let Some(last) = group.entries.last() {
            self.newest = self.newest.max(last.time.min(self.ceiling));
        }
        let start = group.window_start;
        let timespan = self.rules[rule].spec.timespan;
        let (shared, slot) = self.touch(rule, &key);
        *slot = group;
        if let Some(start) = start {
            let seq = self.states[rule]
                .groups
                .get(&*shared)
                .map_or(0, |(s, _)| *s);
            self.states[rule]
                .closing
                .insert((start.saturating_add(timespan), seq), shared);
        }
        true
    }

    /// Counts a match that could not be grouped because a group-by field was missing.
    pub fn count_missing_group_field(&mut self) {
        self.stats.missing_group_field += 1;
    }

    /// Sets the newest event time seen, restored from the state store;
    /// a time beyond the clock's allowance (saved by an older version, or
    /// under a wrong clock) is clamped.
    pub fn restore_newest(&mut self, newest: i64) {
        self.newest = self.newest.max(newest.min(self.ceiling));
    }

    /// Judges every open window as if time had run out: the end of a replay.
    pub fn finish(&mut self) -> Vec<Fire> {
        self.newest = i64::MAX / 2;
        self.advance()
    }
}

#[cfg(test)]
mod tests;
