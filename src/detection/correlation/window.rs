//! The state of one correlation group and the checks that decide when it fires.
//!
//! Times are event times in milliseconds. Entries are kept sorted by time,
//! so events that arrive out of order (CloudTrail's normal behaviour) are
//! judged by when they happened. Counting conditions that only grow true
//! (`gt`, `gte`) fire as soon as some window of the timespan satisfies them;
//! conditions with an upper bound (`lt`, `lte`, `eq`, `neq`) can only be
//! judged once a window is over, so those groups keep a tumbling window that
//! is evaluated when the watermark passes its end.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::detection::alert::EventDigest;
use crate::detection::sigma::document::{Bound, CorrelationType};

/// How many contributing events an alert shows (the first and the last ones).
pub const DIGESTS_KEPT: usize = 10;

/// Times kept per referenced rule in temporal correlations: whether each
/// rule matched within a window needs only its latest few matches, however
/// many events a busy group sees.
pub const TEMPORAL_TIMES_KEPT: usize = 16;

/// One observed event in a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Event time, ms since the epoch.
    pub time: i64,
    /// Which of the correlation's rules matched it.
    pub input: u16,
    /// The `condition.field` value (value_count, value_sum, value_avg).
    pub value: Option<String>,
}

/// The state of one group of one correlation rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Observations, sorted by time.
    pub entries: Vec<Entry>,
    /// Events seen in the current window, for the alert.
    pub seen: u64,
    /// Event digests for the alert: the first few and the newest few.
    pub digests: Vec<EventDigest>,
    /// For conditions judged at window end: when the current window started.
    pub window_start: Option<i64>,
}

/// What a check decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The aggregated value (a count, a sum, an average).
    pub value: f64,
    /// Earliest and latest time of the events that made it.
    pub span: (i64, i64),
}

/// The correlation's type and parameters, as the checks need them.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The type.
    pub kind: CorrelationType,
    /// The timespan in ms.
    pub timespan: i64,
    /// Condition bounds, AND-ed.
    pub bounds: Vec<Bound>,
    /// How many different rules the correlation refers to.
    pub inputs: usize,
}

impl Spec {
    /// Whether the condition is judged as events arrive (else at window end).
    pub fn fires_early(&self) -> bool {
        self.bounds.iter().all(|b| b.monotone())
    }

    fn holds(&self, value: f64) -> bool {
        self.bounds.iter().all(|b| b.holds(value))
    }
}

impl Group {
    /// Adds an observation, keeping entries sorted and at most `max_entries`
    /// (the oldest go first); returns how many were dropped for the bound.
    /// For distinct-value counts only the latest time of each value
    /// matters, so an earlier entry with the same value is replaced.
    pub fn insert(
        &mut self,
        entry: Entry,
        digest: Option<EventDigest>,
        max_entries: usize,
        distinct: bool,
        per_input: Option<usize>,
    ) -> usize {
        if let Some(digest) = digest {
            self.seen += 1;
            self.keep_digest(digest);
        }
        if distinct {
            if let Some(i) = self.entries.iter().position(|e| e.value == entry.value) {
                if self.entries[i].time >= entry.time {
                    return 0;
                }
                self.entries.remove(i);
            }
        }
        if let Some(cap) = per_input {
            let same: Vec<usize> = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.input == entry.input)
                .map(|(i, _)| i)
                .collect();
            if same.len() >= cap {
                // The oldest match of this rule goes (entries are sorted by time).
                if entry.time < self.entries[same[0]].time {
                    return 0;
                }
                self.entries.remove(same[0]);
            }
        }
        let at = self.entries.partition_point(|e| e.time <= entry.time);
        self.entries.insert(at, entry);
        let excess = self.entries.len().saturating_sub(max_entries.max(1));
        self.entries.drain(..excess);
        excess
    }

    fn keep_digest(&mut self, digest: EventDigest) {
        if self.digests.len() < DIGESTS_KEPT {
            self.digests.push(digest);
        } else {
            // Keep the first half as they were; the second half rolls.
            self.digests.remove(DIGESTS_KEPT / 2);
            self.digests.push(digest);
        }
    }

    /// Drops entries older than `horizon`: no window that an acceptable
    /// event could still complete reaches them.
    pub fn expire(&mut self, horizon: i64) {
        let cut = self.entries.partition_point(|e| e.time < horizon);
        self.entries.drain(..cut);
    }

    /// Whether any window of the timespan satisfies the condition now.
    pub fn check_early(&self, spec: &Spec) -> Option<Verdict> {
        match spec.kind {
            // Entries of value_count are distinct by value (see insert), so
            // counting entries counts values.
            CorrelationType::EventCount | CorrelationType::ValueCount => {
                self.sliding(spec, |w| w.count)
            }
            CorrelationType::ValueSum => self.sliding(spec, |w| w.sum),
            CorrelationType::ValueAvg => self.sliding(spec, |w| {
                if w.numbers == 0.0 {
                    0.0
                } else {
                    w.sum / w.numbers
                }
            }),
            CorrelationType::Temporal => self.temporal(spec),
            CorrelationType::TemporalOrdered => self.ordered(spec),
        }
    }

    /// The value of the whole current window, for conditions judged at its end.
    pub fn check_window(&self, spec: &Spec) -> Option<Verdict> {
        let first = self.entries.first()?.time;
        let last = self.entries.last()?.time;
        let value = match spec.kind {
            CorrelationType::EventCount => self.entries.len() as f64,
            CorrelationType::ValueCount => self
                .entries
                .iter()
                .filter_map(|e| e.value.as_deref())
                .collect::<BTreeSet<_>>()
                .len() as f64,
            CorrelationType::ValueSum => sum(&self.entries),
            CorrelationType::ValueAvg => avg(&self.entries),
            CorrelationType::Temporal | CorrelationType::TemporalOrdered => {
                self.entries
                    .iter()
                    .map(|e| e.input)
                    .collect::<BTreeSet<_>>()
                    .len() as f64
            }
        };
        spec.holds(value).then_some(Verdict {
            value,
            span: (first, last),
        })
    }

    /// Every window that starts at an entry and lasts the timespan, with
    /// running totals, so a check costs one pass over the entries.
    fn sliding(&self, spec: &Spec, measure: impl Fn(&Totals) -> f64) -> Option<Verdict> {
        let entries = &self.entries;
        let mut totals = Totals::default();
        let mut end = 0;
        for start in 0..entries.len() {
            while end < entries.len() && entries[end].time - entries[start].time <= spec.timespan {
                totals.add(&entries[end], 1.0);
                end += 1;
            }
            let value = measure(&totals);
            if spec.holds(value) {
                return Some(Verdict {
                    value,
                    span: (entries[start].time, entries[end - 1].time),
                });
            }
            totals.add(&entries[start], -1.0);
        }
        None
    }

    /// Some window of the timespan holds events of enough different rules
    /// (all of them unless the condition says otherwise).
    fn temporal(&self, spec: &Spec) -> Option<Verdict> {
        let entries = &self.entries;
        let mut counts: HashMap<u16, usize> = HashMap::new();
        let mut end = 0;
        for start in 0..entries.len() {
            while end < entries.len() && entries[end].time - entries[start].time <= spec.timespan {
                *counts.entry(entries[end].input).or_default() += 1;
                end += 1;
            }
            let distinct = counts.len() as f64;
            let enough = if spec.bounds.is_empty() {
                counts.len() >= spec.inputs
            } else {
                spec.holds(distinct)
            };
            if enough {
                return Some(Verdict {
                    value: distinct,
                    span: (entries[start].time, entries[end - 1].time),
                });
            }
            if let Some(n) = counts.get_mut(&entries[start].input) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&entries[start].input);
                }
            }
        }
        None
    }

    /// The rules' events occur in the listed order within the timespan.
    /// Times are to the second, so events with equal times count as in
    /// order whichever arrived first.
    fn ordered(&self, spec: &Spec) -> Option<Verdict> {
        let entries = &self.entries;
        let steps = spec.inputs;
        for first in entries.iter().filter(|e| e.input == 0) {
            let deadline = first.time.saturating_add(spec.timespan);
            let mut last = first.time;
            let mut complete = true;
            for step in 1..steps {
                let from = entries.partition_point(|e| e.time < last);
                let next = entries[from..]
                    .iter()
                    .take_while(|e| e.time <= deadline)
                    .find(|e| usize::from(e.input) == step);
                match next {
                    Some(e) => last = e.time,
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
            if complete {
                return Some(Verdict {
                    value: steps as f64,
                    span: (first.time, last),
                });
            }
        }
        None
    }
}

/// Running totals of a window.
#[derive(Debug, Default)]
struct Totals {
    count: f64,
    sum: f64,
    numbers: f64,
}

impl Totals {
    fn add(&mut self, entry: &Entry, sign: f64) {
        self.count += sign;
        if let Some(n) = entry
            .value
            .as_deref()
            .and_then(|v| v.trim().parse::<f64>().ok())
        {
            self.sum += sign * n;
            self.numbers += sign;
        }
    }
}

fn sum(entries: &[Entry]) -> f64 {
    entries
        .iter()
        .filter_map(|e| e.value.as_deref()?.trim().parse::<f64>().ok())
        .sum()
}

fn avg(entries: &[Entry]) -> f64 {
    let values: Vec<f64> = entries
        .iter()
        .filter_map(|e| e.value.as_deref()?.trim().parse::<f64>().ok())
        .collect();
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: CorrelationType, bounds: Vec<Bound>, inputs: usize) -> Spec {
        Spec {
            kind,
            timespan: 10_000,
            bounds,
            inputs,
        }
    }

    fn group(items: &[(i64, u16, Option<&str>)]) -> Group {
        build(items, false)
    }

    fn distinct(items: &[(i64, u16, Option<&str>)]) -> Group {
        build(items, true)
    }

    fn build(items: &[(i64, u16, Option<&str>)], distinct: bool) -> Group {
        let mut g = Group::default();
        for (time, input, value) in items {
            g.insert(
                Entry {
                    time: *time,
                    input: *input,
                    value: value.map(str::to_owned),
                },
                Some(EventDigest::default()),
                1000,
                distinct,
                None,
            );
        }
        g
    }

    #[test]
    fn event_count_finds_a_window_even_when_events_arrive_out_of_order() {
        let s = spec(CorrelationType::EventCount, vec![Bound::Gte(3.0)], 1);
        assert!(
            group(&[(0, 0, None), (1_000, 0, None), (100_000, 0, None)])
                .check_early(&s)
                .is_none()
        );
        let late = group(&[
            (0, 0, None),
            (1_000, 0, None),
            (100_000, 0, None),
            (2_000, 0, None),
        ]);
        let verdict = late.check_early(&s).unwrap();
        assert_eq!(verdict.value, 3.0);
        assert_eq!(verdict.span, (0, 2_000));
        // 10 s is the timespan: events 10.001 s apart are not in one window.
        assert!(
            group(&[(0, 0, None), (5_000, 0, None), (10_001, 0, None)])
                .check_early(&s)
                .is_none()
        );
    }

    #[test]
    fn value_count_counts_distinct_values_and_sum_adds_them() {
        let s = spec(CorrelationType::ValueCount, vec![Bound::Gt(2.0)], 1);
        let g = distinct(&[
            (0, 0, Some("a")),
            (1, 0, Some("a")),
            (2, 0, Some("b")),
            (3, 0, Some("c")),
        ]);
        assert_eq!(g.check_early(&s).unwrap().value, 3.0);
        let s = spec(CorrelationType::ValueSum, vec![Bound::Gte(10.0)], 1);
        assert!(
            group(&[(0, 0, Some("4")), (1, 0, Some("5"))])
                .check_early(&s)
                .is_none()
        );
        assert_eq!(
            group(&[(0, 0, Some("4")), (1, 0, Some("6.5"))])
                .check_early(&s)
                .unwrap()
                .value,
            10.5
        );
        let s = spec(CorrelationType::ValueAvg, vec![Bound::Gt(5.0)], 1);
        assert!(
            group(&[(0, 0, Some("4")), (1, 0, Some("5"))])
                .check_early(&s)
                .is_none()
        );
    }

    #[test]
    fn temporal_needs_every_rule_within_the_timespan() {
        let s = spec(CorrelationType::Temporal, vec![], 3);
        assert!(
            group(&[(0, 0, None), (1_000, 1, None), (20_000, 2, None)])
                .check_early(&s)
                .is_none()
        );
        assert!(
            group(&[(0, 0, None), (9_000, 2, None), (1_000, 1, None)])
                .check_early(&s)
                .is_some()
        );
    }

    #[test]
    fn temporal_ordered_needs_the_order_too() {
        let s = spec(CorrelationType::TemporalOrdered, vec![], 2);
        assert!(
            group(&[(0, 1, None), (1_000, 0, None)])
                .check_early(&s)
                .is_none()
        );
        assert!(
            group(&[(0, 1, None), (1_000, 0, None), (2_000, 1, None)])
                .check_early(&s)
                .is_some()
        );
        assert!(
            group(&[(0, 0, None), (10_500, 1, None)])
                .check_early(&s)
                .is_none()
        );
        // Equal times: in order whichever arrived first.
        assert!(
            group(&[(5_000, 1, None), (5_000, 0, None)])
                .check_early(&s)
                .is_some()
        );
        let three = spec(CorrelationType::TemporalOrdered, vec![], 3);
        assert!(
            group(&[(0, 0, None), (2_000, 2, None), (1_000, 1, None)])
                .check_early(&three)
                .is_some()
        );
        assert!(
            group(&[(0, 0, None), (1_000, 2, None), (2_000, 1, None)])
                .check_early(&three)
                .is_none()
        );
    }

    #[test]
    fn upper_bounds_are_judged_on_the_whole_window() {
        let s = spec(CorrelationType::EventCount, vec![Bound::Lt(3.0)], 1);
        assert!(!s.fires_early());
        assert_eq!(
            group(&[(0, 0, None), (1, 0, None)])
                .check_window(&s)
                .unwrap()
                .value,
            2.0
        );
        assert!(
            group(&[(0, 0, None), (1, 0, None), (2, 0, None)])
                .check_window(&s)
                .is_none()
        );
    }

    #[test]
    fn entries_and_digests_are_bounded() {
        let mut g = Group::default();
        let mut dropped = 0;
        for t in 0..50 {
            let digest = EventDigest {
                event_id: Some(t.to_string().into()),
                ..EventDigest::default()
            };
            dropped += g.insert(
                Entry {
                    time: t,
                    input: 0,
                    value: None,
                },
                Some(digest),
                20,
                false,
                None,
            );
        }
        assert_eq!((g.entries.len(), dropped, g.seen), (20, 30, 50));
        assert_eq!(g.digests.len(), DIGESTS_KEPT);
        assert_eq!(g.digests[0].event_id.as_deref(), Some("0"));
        assert_eq!(g.digests[DIGESTS_KEPT - 1].event_id.as_deref(), Some("49"));
        g.expire(45);
        assert_eq!(g.entries.first().unwrap().time, 45);
    }
}
