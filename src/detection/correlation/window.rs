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
    /// Another value of an event that already has an entry (a list field):
    /// counted as a value, not as an event.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

/// The state of one group of one correlation rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Observations, sorted by time.
    pub entries: Vec<Entry>,
    /// Events among the entries (entries that are not `more`).
    pub seen: u64,
    /// Event digests for the alert, sorted by time: the earliest few and
    /// the latest few.
    pub digests: Vec<EventDigest>,
    /// The event time of each digest, in step with `digests`, so that a
    /// digest leaves when its event's entries expire.
    #[serde(default)]
    pub digest_times: Vec<i64>,
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
    ///
    /// Counts and sums only grow as events come, so a lower bound that holds
    /// in some window stays true. An average does not: one large value in a
    /// window of small ones says nothing until the window is over, so
    /// `value_avg` is always judged on its whole window.
    pub fn fires_early(&self) -> bool {
        self.kind != CorrelationType::ValueAvg && self.bounds.iter().all(|b| b.monotone())
    }

    fn holds(&self, value: f64) -> bool {
        self.bounds.iter().all(|b| b.holds(value))
    }

    /// The largest count the condition asks for, for kinds that count
    /// entries (events, distinct values, referenced rules): a group that
    /// keeps fewer entries than this could never reach it.
    pub fn counted_threshold(&self) -> Option<f64> {
        match self.kind {
            CorrelationType::EventCount | CorrelationType::ValueCount => self
                .bounds
                .iter()
                .map(|b| b.threshold())
                .fold(None, |max, t| Some(max.map_or(t, |m: f64| m.max(t)))),
            _ => None,
        }
    }
}

impl Group {
    /// Adds an observation, keeping entries sorted and at most `max_entries`
    /// (the oldest go first); returns how many were dropped for the bound.
    /// With a digest the entry is an event's first, and the digest is kept
    /// for the alert. For distinct-value counts an entry identical to one
    /// already kept (same value at the same time) adds nothing to any
    /// window and is skipped; other repeats are kept, because which window
    /// a value falls in depends on each of its times.
    pub fn insert(
        &mut self,
        mut entry: Entry,
        digest: Option<EventDigest>,
        max_entries: usize,
        distinct: bool,
        per_input: Option<usize>,
    ) -> usize {
        if distinct {
            let from = self.entries.partition_point(|e| e.time < entry.time);
            let same = self.entries[from..]
                .iter()
                .take_while(|e| e.time == entry.time)
                .any(|e| e.value == entry.value);
            if same {
                return 0;
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
        entry.more = digest.is_none();
        if let Some(digest) = digest {
            self.keep_digest(entry.time, digest);
        }
        let at = self.entries.partition_point(|e| e.time <= entry.time);
        self.entries.insert(at, entry);
        let excess = self.entries.len().saturating_sub(max_entries.max(1));
        self.entries.drain(..excess);
        self.recount();
        excess
    }

    fn recount(&mut self) {
        self.seen = self.entries.iter().filter(|e| !e.more).count() as u64;
    }

    /// Keeps the digests in time order: the earliest half stays, and a new
    /// digest pushes out the one in the middle, so the alert shows how the
    /// group began and how it ended.
    fn keep_digest(&mut self, time: i64, digest: EventDigest) {
        self.align_digest_times();
        let at = self.digest_times.partition_point(|t| *t <= time);
        self.digests.insert(at, digest);
        self.digest_times.insert(at, time);
        if self.digests.len() > DIGESTS_KEPT {
            self.digests.remove(DIGESTS_KEPT / 2);
            self.digest_times.remove(DIGESTS_KEPT / 2);
        }
    }

    /// State saved before digests had times gets times of "long ago", so
    /// that they leave at the next expiry rather than stay forever.
    fn align_digest_times(&mut self) {
        if self.digest_times.len() != self.digests.len() {
            self.digest_times = vec![i64::MIN; self.digests.len()];
        }
    }

    /// Drops entries older than `horizon`, with their events' digests: no
    /// window that an acceptable event could still complete reaches them.
    pub fn expire(&mut self, horizon: i64) {
        let cut = self.entries.partition_point(|e| e.time < horizon);
        if cut == 0 {
            return;
        }
        self.entries.drain(..cut);
        self.recount();
        self.align_digest_times();
        let cut = self.digest_times.partition_point(|t| *t < horizon);
        self.digests.drain(..cut);
        self.digest_times.drain(..cut);
    }

    /// Events and digests of the events between `from` and `to` (inclusive):
    /// what an alert about that span may claim.
    pub fn evidence(&self, from: i64, to: i64) -> (u64, Vec<EventDigest>) {
        let seen = self
            .entries
            .iter()
            .filter(|e| !e.more && e.time >= from && e.time <= to)
            .count() as u64;
        let digests = if self.digest_times.len() == self.digests.len() {
            self.digests
                .iter()
                .zip(&self.digest_times)
                .filter(|(_, t)| **t >= from && **t <= to)
                .map(|(d, _)| d.clone())
                .collect()
        } else {
            self.digests.clone()
        };
        (seen, digests)
    }

    /// Whether any window of the timespan satisfies the condition now.
    pub fn check_early(&self, spec: &Spec) -> Option<Verdict> {
        match spec.kind {
            CorrelationType::EventCount => self.sliding(spec, |w| w.count),
            CorrelationType::ValueCount => self.sliding_distinct(spec),
            CorrelationType::ValueSum => self.sliding(spec, |w| w.sum),
            // Judged at window end (see `Spec::fires_early`); here for completeness.
            CorrelationType::ValueAvg => self.check_window(spec, i64::MIN, i64::MAX),
            CorrelationType::Temporal => self.temporal(spec),
            CorrelationType::TemporalOrdered => self.ordered(spec),
        }
    }

    /// The value of the entries from `start` up to (not including) `end`,
    /// for conditions judged once a window is over.
    pub fn check_window(&self, spec: &Spec, start: i64, end: i64) -> Option<Verdict> {
        let from = self.entries.partition_point(|e| e.time < start);
        let to = self.entries.partition_point(|e| e.time < end);
        let window = &self.entries[from..to];
        let first = window.first()?.time;
        let last = window.last()?.time;
        let value = match spec.kind {
            CorrelationType::EventCount => window.iter().filter(|e| !e.more).count() as f64,
            CorrelationType::ValueCount => window
                .iter()
                .filter_map(|e| e.value.as_deref())
                .collect::<BTreeSet<_>>()
                .len() as f64,
            CorrelationType::ValueSum => sum(window),
            CorrelationType::ValueAvg => avg(window),
            CorrelationType::Temporal | CorrelationType::TemporalOrdered => window
                .iter()
                .map(|e| e.input)
                .collect::<BTreeSet<_>>()
                .len()
                as f64,
        };
        spec.holds(value).then_some(Verdict {
            value,
            span: (first, last),
        })
    }

    /// Removes the entries before `end` with their digests; returns whether
    /// entries remain (events of a later window that arrived early).
    pub fn drain_until(&mut self, end: i64) -> bool {
        let cut = self.entries.partition_point(|e| e.time < end);
        self.entries.drain(..cut);
        self.recount();
        self.align_digest_times();
        let cut = self.digest_times.partition_point(|t| *t < end);
        self.digests.drain(..cut);
        self.digest_times.drain(..cut);
        self.window_start = self.entries.first().map(|e| e.time);
        !self.entries.is_empty()
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

    /// Like [`Group::sliding`], counting the distinct values in each window;
    /// an entry without a value (the field was missing) is never a value.
    fn sliding_distinct(&self, spec: &Spec) -> Option<Verdict> {
        let entries = &self.entries;
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut end = 0;
        for start in 0..entries.len() {
            while end < entries.len() && entries[end].time - entries[start].time <= spec.timespan {
                if let Some(value) = entries[end].value.as_deref() {
                    *counts.entry(value).or_default() += 1;
                }
                end += 1;
            }
            let value = counts.len() as f64;
            if spec.holds(value) {
                return Some(Verdict {
                    value,
                    span: (entries[start].time, entries[end - 1].time),
                });
            }
            if let Some(value) = entries[start].value.as_deref() {
                if let Some(n) = counts.get_mut(value) {
                    *n -= 1;
                    if *n == 0 {
                        counts.remove(value);
                    }
                }
            }
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
    use std::sync::Arc;

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
                    more: false,
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
                .check_window(&s, i64::MIN, i64::MAX)
                .unwrap()
                .value,
            2.0
        );
        assert!(
            group(&[(0, 0, None), (1, 0, None), (2, 0, None)])
                .check_window(&s, i64::MIN, i64::MAX)
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
                    more: false,
                },
                Some(digest),
                20,
                false,
                None,
            );
        }
        // `seen` counts the events the group holds, so it never claims more
        // than the kept entries can show.
        assert_eq!((g.entries.len(), dropped, g.seen), (20, 30, 20));
        assert_eq!(g.digests.len(), DIGESTS_KEPT);
        assert_eq!(g.digests[0].event_id.as_deref(), Some("0"));
        assert_eq!(g.digests[DIGESTS_KEPT - 1].event_id.as_deref(), Some("49"));
        g.expire(45);
        assert_eq!(g.entries.first().unwrap().time, 45);
        assert_eq!(g.seen, 5);
        // The first events' digests went with their entries.
        assert!(
            g.digests
                .iter()
                .all(|d| d.event_id.as_deref().unwrap().parse::<i64>().unwrap() >= 45),
            "{:?}",
            g.digests
        );
    }

    #[test]
    fn digests_stay_in_time_order_when_events_arrive_out_of_order() {
        let mut g = Group::default();
        for t in [30, 10, 20] {
            g.insert(
                Entry {
                    time: t,
                    input: 0,
                    value: None,
                    more: false,
                },
                Some(EventDigest {
                    event_id: Some(t.to_string().into()),
                    ..EventDigest::default()
                }),
                100,
                false,
                None,
            );
        }
        let ids: Vec<_> = g
            .digests
            .iter()
            .map(|d| d.event_id.clone().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["10".into(), "20".into(), "30".into()] as [Arc<str>; 3]
        );
        let (seen, digests) = g.evidence(15, 30);
        assert_eq!((seen, digests.len()), (2, 2));
    }

    #[test]
    fn value_avg_is_judged_on_the_whole_window_not_on_its_newest_value() {
        let s = spec(CorrelationType::ValueAvg, vec![Bound::Gt(100.0)], 1);
        assert!(!s.fires_early());
        let mut items: Vec<(i64, u16, Option<&str>)> = (0..9).map(|t| (t, 0, Some("1"))).collect();
        items.push((9, 0, Some("500")));
        let g = group(&items);
        // (9 + 500) / 10 = 50.9: not over 100, although the newest value is.
        assert!(g.check_window(&s, 0, 10_000).is_none());
        assert!(g.check_early(&s).is_none());
        items.push((10, 0, Some("2000")));
        let g = group(&items);
        assert_eq!(g.check_window(&s, 0, 10_000).unwrap().value, 2509.0 / 11.0);
    }

    #[test]
    fn value_count_judges_each_value_by_its_own_event_time() {
        let s = spec(CorrelationType::ValueCount, vec![Bound::Gte(3.0)], 1);
        // "a" first arrives at 50 s, then its earlier sighting at 0 s; "b"
        // and "c" are at 5 s and 8 s. The window from 0 s holds a, b and c.
        let g = distinct(&[
            (50_000, 0, Some("a")),
            (5_000, 0, Some("b")),
            (8_000, 0, Some("c")),
            (0, 0, Some("a")),
        ]);
        let verdict = g.check_early(&s).expect("three values within 10 s");
        assert_eq!((verdict.value, verdict.span), (3.0, (0, 8_000)));
        // An entry without a value is never counted as one.
        let g = distinct(&[(0, 0, Some("a")), (1, 0, None), (2, 0, Some("b"))]);
        assert!(g.check_early(&s).is_none());
        assert_eq!(g.check_window(&s, 0, 10_000), None);
    }
}
