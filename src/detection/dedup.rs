//! Dropping duplicate events by eventID, within a window and a bound.
//!
//! CloudTrail delivers some events more than once, always with the same
//! eventID, and cloudwarden's CloudTrail sources overlap (LookupEvents,
//! trail files, EventBridge). An eventID seen within the window is a
//! duplicate. The window follows event time; at most `capacity` ids are
//! remembered, the oldest forgotten first, and each forgotten-early id is
//! counted so the bound shows in the metrics.

use std::collections::{HashMap, VecDeque};

/// Remembered eventIDs.
#[derive(Debug)]
pub struct Dedup {
    window_ms: i64,
    capacity: usize,
    seen: HashMap<String, i64>,
    order: VecDeque<(String, i64)>,
    newest: i64,
    evicted: u64,
}

impl Dedup {
    /// Remembers ids for `window_ms` of event time, at most `capacity` of them.
    pub fn new(window_ms: i64, capacity: usize) -> Dedup {
        Dedup {
            window_ms,
            capacity: capacity.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
            newest: i64::MIN,
            evicted: 0,
        }
    }

    /// Records `id` seen at `time_ms`; returns false when it is a duplicate.
    pub fn first_sighting(&mut self, id: &str, time_ms: i64) -> bool {
        if self.seen.contains_key(id) {
            return false;
        }
        self.newest = self.newest.max(time_ms);
        self.seen.insert(id.to_owned(), time_ms);
        self.order.push_back((id.to_owned(), time_ms));
        self.expire();
        true
    }

    fn expire(&mut self) {
        let horizon = self.newest.saturating_sub(self.window_ms);
        while let Some((id, time)) = self.order.front() {
            let over = self.order.len() > self.capacity;
            if !over && *time >= horizon {
                break;
            }
            if over && *time >= horizon {
                self.evicted += 1;
            }
            self.seen.remove(id);
            self.order.pop_front();
        }
    }

    /// Ids forgotten before their window ended because of the capacity.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The remembered ids with their event times, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (&str, i64)> {
        self.order.iter().map(|(id, t)| (id.as_str(), *t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_within_the_window_are_dropped() {
        let mut d = Dedup::new(60_000, 100);
        assert!(d.first_sighting("a", 0));
        assert!(!d.first_sighting("a", 0));
        assert!(d.first_sighting("b", 30_000));
        // a is forgotten once event time moves a window past it.
        assert!(d.first_sighting("c", 61_000));
        assert!(d.first_sighting("a", 61_000));
        assert_eq!(d.evicted(), 0);
    }

    #[test]
    fn the_capacity_bounds_memory_and_counts_early_forgetting() {
        let mut d = Dedup::new(i64::MAX / 4, 10);
        for i in 0..25 {
            assert!(d.first_sighting(&format!("id{i}"), i));
        }
        assert_eq!(d.len(), 10);
        assert_eq!(d.evicted(), 15);
        assert!(!d.first_sighting("id24", 24));
        assert!(d.first_sighting("id0", 25));
    }
}
