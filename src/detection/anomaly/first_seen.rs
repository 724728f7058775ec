//! First-seen state of one group: when its history began and the values
//! it used, each with the event time it last used it.

use serde::{Deserialize, Serialize};

use super::Stats;

/// What a first-seen group knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstSeen {
    /// The event time its history began, ms since the epoch.
    pub first: i64,
    /// (value hash, event time it was last used), unordered: a group uses
    /// a few dozen values, and a scan of them is faster than a map.
    pub values: Vec<(u64, i64)>,
}

/// How a first-seen detector judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstSeenSpec {
    /// A value unused for longer than this is new again, ms.
    pub history: i64,
    /// A group alerts only with this much history of its own, ms.
    pub learning: i64,
    /// Values kept per group; beyond it the least recently used goes.
    pub max_values: usize,
}

impl FirstSeen {
    /// A group whose history begins at `time`.
    pub fn new(time: i64) -> FirstSeen {
        FirstSeen {
            first: time,
            values: Vec::new(),
        }
    }

    /// The newest event time the group used any value.
    pub fn last_used(&self) -> i64 {
        self.values
            .iter()
            .map(|(_, t)| *t)
            .max()
            .unwrap_or(self.first)
    }

    /// Notes `value` used at `time`. Returns when the group's history
    /// began if the value is new and the group has learned enough to say so.
    pub fn observe(
        &mut self,
        value: u64,
        time: i64,
        spec: FirstSeenSpec,
        stats: &mut Stats,
    ) -> Option<i64> {
        if time.saturating_sub(self.last_used()) > spec.history {
            // Silent for longer than its history: it starts over, learning
            // again, rather than alerting on everything it does.
            self.values.clear();
            self.first = time;
        }
        self.first = self.first.min(time);
        let learned = time.saturating_sub(self.first) >= spec.learning;
        if let Some(known) = self.values.iter_mut().find(|(v, _)| *v == value) {
            // A late event of a value used since is known all the same.
            let fresh = time.saturating_sub(known.1) <= spec.history;
            known.1 = known.1.max(time);
            return (!fresh && learned).then_some(self.first);
        }
        if self.values.len() >= spec.max_values.max(1) {
            if let Some(oldest) = self
                .values
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(i, _)| i)
            {
                self.values.swap_remove(oldest);
                stats.evicted_values += 1;
            }
        }
        self.values.push((value, time));
        learned.then_some(self.first)
    }
}
