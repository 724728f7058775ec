//! Anomaly detectors: what is unusual for this account, learned from its
//! own events (cloudwarden's extension to Sigma, declared by `anomaly:`
//! documents beside correlations).
//!
//! - `first_seen`: a group (a principal, an account) uses a value (a
//!   Region, a service, a user agent family, a network) it has not used
//!   within `history`, once it has `learning` of history of its own.
//! - `rate`: a group's events in a bucket go far over its own baseline.
//!
//! Time is event time, so a replay of old trail files learns as the daemon
//! would have. Groups and values are kept as 64-bit hashes: an alert takes
//! the group's and the value's text from the event that raised it, so
//! state holds no strings. Every bound evicts what was least recently used
//! and counts it; the state can be exported and restored across restarts.

pub mod derive;
pub mod first_seen;
pub mod rate;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use self::derive::FieldSpec;
use self::first_seen::{FirstSeen, FirstSeenSpec};
use self::rate::{Burst, Rate, RateSpec};
use super::dedup::IdHasher;
use super::sigma::document::{AnomalyDoc, AnomalyType, Meta};

/// Bounds on anomaly state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Groups kept per anomaly rule; beyond it the least recently active go.
    pub max_groups: usize,
    /// Values a first-seen group keeps; beyond it the least recently used goes.
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_groups: 50_000,
            max_values: 256,
        }
    }
}

/// Counters of what the bounds did and what could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Groups evicted because a rule had `max_groups` of them.
    pub evicted_groups: u64,
    /// Values forgotten because a group had `max_values` of them.
    pub evicted_values: u64,
    /// Matches not judged because a group-by or watched field was missing.
    pub missing_field: u64,
}

/// A compiled anomaly rule.
#[derive(Debug, Clone)]
pub struct AnomalyRule {
    /// Title, level, tags, ... for its alerts.
    pub meta: Arc<Meta>,
    /// The detector.
    pub kind: AnomalyType,
    /// What makes a group.
    pub group_by: Vec<FieldSpec>,
    /// The watched value (first_seen).
    pub fields: Vec<FieldSpec>,
    /// `history`, ms.
    pub history: i64,
    /// `learning`, ms.
    pub learning: i64,
    /// `bucket`, ms (rate).
    pub bucket: i64,
    /// `threshold.factor` (rate).
    pub factor: f64,
    /// `threshold.min` (rate).
    pub min: u32,
    /// Whether it raises alerts (not when its status says it is not for use).
    pub alerts: bool,
    /// The file it came from.
    pub origin: String,
}

impl AnomalyRule {
    /// Compiles the document.
    pub fn compile(doc: &AnomalyDoc) -> Result<AnomalyRule, String> {
        let specs = |names: &[String]| -> Result<Vec<FieldSpec>, String> {
            names.iter().map(|n| FieldSpec::parse(n)).collect()
        };
        let millis = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Ok(AnomalyRule {
            meta: Arc::new(doc.meta.clone()),
            kind: doc.kind,
            group_by: specs(&doc.group_by)?,
            fields: specs(&doc.fields)?,
            history: millis(doc.history),
            learning: millis(doc.learning),
            bucket: millis(doc.bucket),
            factor: doc.factor,
            min: doc.min,
            alerts: true,
            origin: String::new(),
        })
    }

    fn rate_spec(&self) -> RateSpec {
        RateSpec {
            bucket: self.bucket,
            history: self.history,
            learning: self.learning,
            factor: self.factor,
            min: self.min,
        }
    }
}

/// One group's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Of a first_seen rule.
    FirstSeen(FirstSeen),
    /// Of a rate rule.
    Rate(Rate),
}

impl State {
    /// The newest event time the group was active.
    fn last_active(&self) -> i64 {
        match self {
            State::FirstSeen(f) => f.last_used(),
            State::Rate(r) => r.bucket,
        }
    }
}

/// What an anomaly rule found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Finding {
    /// A value new to the group; its history began then (ms).
    New {
        /// When the group's history began, ms since the epoch.
        since: i64,
    },
    /// A bucket far over the group's baseline.
    Burst(Burst),
}

/// A change to persist: a group's state, or its removal.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The anomaly rule's id.
    pub rule_id: String,
    /// The group's hash.
    pub group: u64,
    /// How long the stored group is worth keeping after this change: the
    /// rule's history (and learning), in ms.
    pub keep_ms: i64,
    /// The state, or `None` when the group is gone.
    pub state: Option<State>,
}

type Groups = HashMap<u64, State, IdHasher>;

/// The live state of every anomaly rule.
pub struct Runtime {
    rules: Arc<[AnomalyRule]>,
    states: Vec<Groups>,
    limits: Limits,
    stats: Stats,
    dirty: HashSet<(usize, u64)>,
    tracking: bool,
}

impl Runtime {
    /// An empty runtime for `rules`.
    pub fn new(rules: Arc<[AnomalyRule]>, limits: Limits) -> Runtime {
        let states = rules
            .iter()
            .map(|_| HashMap::with_hasher(IdHasher))
            .collect();
        Runtime {
            rules,
            states,
            limits,
            stats: Stats::default(),
            dirty: HashSet::new(),
            tracking: false,
        }
    }

    /// Remembers which groups change, for [`Runtime::take_changes`].
    pub fn track_changes(&mut self, on: bool) {
        self.tracking = on;
        if !on {
            self.dirty.clear();
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[AnomalyRule] {
        &self.rules
    }

    /// What the bounds did so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Groups currently held, over all rules.
    pub fn group_count(&self) -> usize {
        self.states.iter().map(HashMap::len).sum()
    }

    /// Counts a match that had no value for a group-by or watched field.
    pub fn count_missing_field(&mut self) {
        self.stats.missing_field += 1;
    }

    /// Feeds one event of `group` (and, for first_seen, its `value`) at
    /// event `time` to rule `rule`.
    pub fn observe(&mut self, rule: usize, group: u64, value: u64, time: i64) -> Option<Finding> {
        let rules = Arc::clone(&self.rules);
        let spec = rules.get(rule)?;
        let max_groups = self.limits.max_groups.max(1);
        if !self.states[rule].contains_key(&group) && self.states[rule].len() >= max_groups {
            self.evict(rule, max_groups);
        }
        let state = self.states[rule]
            .entry(group)
            .or_insert_with(|| match spec.kind {
                AnomalyType::FirstSeen => State::FirstSeen(FirstSeen::new(time)),
                AnomalyType::Rate => State::Rate(Rate::new(time, spec.rate_spec())),
            });
        let finding = match state {
            State::FirstSeen(f) => {
                let judge = FirstSeenSpec {
                    history: spec.history,
                    learning: spec.learning,
                    max_values: self.limits.max_values,
                };
                f.observe(value, time, judge, &mut self.stats)
                    .map(|since| Finding::New { since })
            }
            State::Rate(r) => r.observe(time, spec.rate_spec()).map(Finding::Burst),
        };
        if self.tracking {
            self.dirty.insert((rule, group));
        }
        finding
    }

    /// Evicts the least recently active tenth of a rule's groups at once,
    /// so that a rule at its bound pays one pass per many new groups.
    fn evict(&mut self, rule: usize, limit: usize) {
        let groups = &mut self.states[rule];
        let mut ages: Vec<(i64, u64)> = groups.iter().map(|(k, s)| (s.last_active(), *k)).collect();
        if ages.is_empty() {
            return;
        }
        let count = (limit / 10).clamp(1, ages.len());
        ages.select_nth_unstable_by_key(count - 1, |(age, _)| *age);
        for (_, victim) in ages.into_iter().take(count) {
            groups.remove(&victim);
            self.stats.evicted_groups += 1;
            if self.tracking {
                self.dirty.insert((rule, victim));
            }
        }
    }

    /// The groups changed since the last call, for the state store.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut changes: Vec<Change> = dirty
            .into_iter()
            .filter_map(|(rule, group)| {
                let spec = self.rules.get(rule)?;
                Some(Change {
                    rule_id: spec.meta.id.clone(),
                    group,
                    keep_ms: spec.history.saturating_add(spec.learning),
                    state: self.states[rule].get(&group).cloned(),
                })
            })
            .collect();
        changes.sort_by(|a, b| (&a.rule_id, a.group).cmp(&(&b.rule_id, b.group)));
        changes
    }

    /// Puts back a group saved by [`Runtime::take_changes`]; groups of
    /// rules that no longer exist, or whose kind changed, are ignored.
    pub fn restore(&mut self, rule_id: &str, group: u64, state: State) -> bool {
        let Some(rule) = self.rules.iter().position(|r| r.meta.id == rule_id) else {
            return false;
        };
        let fits = matches!(
            (self.rules[rule].kind, &state),
            (AnomalyType::FirstSeen, State::FirstSeen(_)) | (AnomalyType::Rate, State::Rate(_))
        );
        if !fits {
            return false;
        }
        let max_groups = self.limits.max_groups.max(1);
        if !self.states[rule].contains_key(&group) && self.states[rule].len() >= max_groups {
            self.evict(rule, max_groups);
        }
        self.states[rule].insert(group, state);
        true
    }
}

/// The hash state keys and values are kept as.
pub fn hash(text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

#[cfg(test)]
mod tests;
