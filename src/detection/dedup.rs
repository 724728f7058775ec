//! Dropping duplicate events by eventID, within a window and a bound.
//!
//! CloudTrail delivers some events more than once, always with the same
//! eventID, and cloudwarden's CloudTrail sources overlap (LookupEvents,
//! trail files, EventBridge). An eventID seen within the window is a
//! duplicate. The window follows event time; at most `capacity` ids are
//! remembered, the oldest forgotten first, and each forgotten-early id is
//! counted so the bound shows in the metrics.

use std::collections::{HashSet, VecDeque};

use xxhash_rust::xxh3::xxh3_128;

/// Remembered eventIDs, as 128-bit hashes: no allocation per event, and a
/// collision between two real ids is far less likely than a disk error.
#[derive(Debug)]
pub struct Dedup {
    window_ms: i64,
    capacity: usize,
    seen: HashSet<u128, IdHasher>,
    order: VecDeque<(u128, i64)>,
    newest: i64,
    evicted: u64,
    /// Ids first seen since the last [`Dedup::take_new`], when tracked.
    new: Option<Vec<(u128, i64)>>,
}

/// The keys are already hashes: use their low bits as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher;

impl std::hash::BuildHasher for IdHasher {
    type Hasher = PassThrough;

    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

/// A hasher that keeps the last integer written.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        // Truncation keeps the low 64 bits, which are as random as the rest.
        self.0 = n as u64;
    }
}

impl Dedup {
    /// Remembers ids for `window_ms` of event time, at most `capacity` of them.
    pub fn new(window_ms: i64, capacity: usize) -> Dedup {
        Dedup {
            window_ms,
            capacity: capacity.max(1),
            seen: HashSet::with_hasher(IdHasher),
            order: VecDeque::new(),
            newest: i64::MIN,
            evicted: 0,
            new: None,
        }
    }

    /// Starts remembering newly seen ids for [`Dedup::take_new`] (to persist them).
    pub fn track_new(&mut self) {
        self.new.get_or_insert_with(Vec::new);
    }

    /// The ids first seen since the last call.
    pub fn take_new(&mut self) -> Vec<(u128, i64)> {
        self.new.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Records `id` seen at `time_ms`; returns false when it is a duplicate.
    /// Event time moves the window on at most to `ceiling` (the clock plus
    /// an allowance), so one record dated in the future cannot expire
    /// every id at once.
    pub fn first_sighting(&mut self, id: &str, time_ms: i64, ceiling: i64) -> bool {
        let key = xxh3_128(id.as_bytes());
        if !self.seen.insert(key) {
            return false;
        }
        self.newest = self.newest.max(time_ms.min(ceiling));
        self.order.push_back((key, time_ms));
        if let Some(new) = &mut self.new {
            new.push((key, time_ms));
        }
        self.expire();
        true
    }

    fn expire(&mut self) {
        let horizon = self.newest.saturating_sub(self.window_ms);
        while let Some(&(key, time)) = self.order.front() {
            let over = self.order.len() > self.capacity;
            if !over && time >= horizon {
                break;
            }
            if over && time >= horizon {
                self.evicted += 1;
            }
            self.seen.remove(&key);
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

    /// The remembered id hashes with their event times, oldest first (to persist them).
    pub fn entries(&self) -> impl Iterator<Item = (u128, i64)> + '_ {
        self.order.iter().copied()
    }

    /// Remembers an id hash saved by [`Dedup::entries`].
    pub fn restore(&mut self, key: u128, time_ms: i64) {
        if self.seen.insert(key) {
            self.newest = self.newest.max(time_ms);
            self.order.push_back((key, time_ms));
            self.expire();
        }
    }

    /// The hash an id is remembered by.
    pub fn key_of(id: &str) -> u128 {
        xxh3_128(id.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_within_the_window_are_dropped() {
        let mut d = Dedup::new(60_000, 100);
        assert!(d.first_sighting("a", 0, i64::MAX));
        assert!(!d.first_sighting("a", 0, i64::MAX));
        assert!(d.first_sighting("b", 30_000, i64::MAX));
        // a is forgotten once event time moves a window past it.
        assert!(d.first_sighting("c", 61_000, i64::MAX));
        assert!(d.first_sighting("a", 61_000, i64::MAX));
        assert_eq!(d.evicted(), 0);
    }

    #[test]
    fn the_capacity_bounds_memory_and_counts_early_forgetting() {
        let mut d = Dedup::new(i64::MAX / 4, 10);
        for i in 0..25 {
            assert!(d.first_sighting(&format!("id{i}"), i, i64::MAX));
        }
        assert_eq!(d.len(), 10);
        assert_eq!(d.evicted(), 15);
        assert!(!d.first_sighting("id24", 24, i64::MAX));
        assert!(d.first_sighting("id0", 25, i64::MAX));
    }

    #[test]
    fn a_record_dated_in_the_future_cannot_expire_every_id() {
        let mut d = Dedup::new(3_600_000, 100);
        let now = 10_000_000;
        let ceiling = now + 300_000;
        assert!(d.first_sighting("a", now, ceiling));
        // Year 2099: without the ceiling its time would push the window
        // decades ahead and "a" would be forgotten at the next sighting.
        assert!(d.first_sighting("future", 4_070_908_800_000, ceiling));
        assert!(!d.first_sighting("a", now, ceiling));
    }
}
