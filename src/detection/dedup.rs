//! Dropping duplicate events by eventID, within a window and a bound.
//!
//! CloudTrail delivers some events more than once, always with the same
//! eventID, and cloudwarden's CloudTrail sources overlap (LookupEvents,
//! trail files, EventBridge) and re-read windows. An eventID seen before is
//! a duplicate, whichever source saw it first.
//!
//! Each source remembers its own ids, at most `capacity` of them, so a busy
//! source cannot push a quiet one's ids out. A source forgets an id once
//! it is a window of event time behind the newest it read, and, for a
//! source that re-reads (a polled one), only once the source has said it
//! will not read that far back again (`reread_from`): after downtime a
//! poll reads its newest events first, and the re-read overlap comes last.
//! Forgotten ids are reported ([`Dedup::take_removed`]) so that the state
//! store forgets them too: stored ids follow event time, not the wall
//! clock, and downtime forgets nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_128;

/// One sighting of an id.
#[derive(Debug, Clone, Copy)]
pub struct Sighting<'a> {
    /// The configured source that read it.
    pub source: &'a str,
    /// The eventID (or the source's own id for the record).
    pub id: &'a str,
    /// Its event time, ms since the epoch.
    pub time_ms: i64,
    /// The latest event time that may move the window on (the clock plus
    /// an allowance), so one record dated in the future cannot expire
    /// every id at once.
    pub ceiling: i64,
    /// For a source that re-reads: the part it read (a Region, a log group)
    /// and the earliest event time it may read again there.
    pub reread_from: Option<(&'a str, i64)>,
}

/// Remembered eventIDs, as 128-bit hashes: no allocation per event, and a
/// collision between two real ids is far less likely than a disk error.
#[derive(Debug)]
pub struct Dedup {
    window_ms: i64,
    capacity: usize,
    /// Every remembered id, with the source that remembers it.
    seen: HashMap<u128, u32, IdHasher>,
    rings: Vec<Ring>,
    ring_of: HashMap<Arc<str>, u32>,
    last_ring: Option<u32>,
    evicted: u64,
    /// Ids first seen since the last [`Dedup::take_new`], when tracked.
    new: Option<Vec<(Arc<str>, u128, i64)>>,
    /// Ids forgotten since the last [`Dedup::take_removed`], when tracked.
    removed: Option<Vec<(Arc<str>, u128)>>,
}

/// One source's ids, in the order first seen.
#[derive(Debug)]
struct Ring {
    source: Arc<str>,
    order: VecDeque<(u128, i64)>,
    newest: i64,
    /// Per part, the earliest event time the source may read again.
    floors: BTreeMap<Box<str>, i64>,
}

impl Ring {
    fn horizon(&self, window_ms: i64) -> i64 {
        let by_window = self.newest.saturating_sub(window_ms);
        match self.floors.values().min() {
            Some(&floor) => by_window.min(floor),
            None => by_window,
        }
    }
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

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write_u128(&mut self, n: u128) {
        // Truncation keeps the low 64 bits, which are as random as the rest.
        self.0 = n as u64;
    }
}

impl Dedup {
    /// Remembers ids for `window_ms` of event time, at most `capacity` of
    /// them per source.
    pub fn new(window_ms: i64, capacity: usize) -> Dedup {
        Dedup {
            window_ms,
            capacity: capacity.max(1),
            seen: HashMap::with_hasher(IdHasher),
            rings: Vec::new(),
            ring_of: HashMap::new(),
            last_ring: None,
            evicted: 0,
            new: None,
            removed: None,
        }
    }

    /// Starts remembering newly seen and forgotten ids for
    /// [`Dedup::take_new`] and [`Dedup::take_removed`] (to persist them).
    pub fn track_new(&mut self) {
        self.new.get_or_insert_with(Vec::new);
        self.removed.get_or_insert_with(Vec::new);
    }

    /// The ids first seen since the last call: source, hash, event time.
    pub fn take_new(&mut self) -> Vec<(Arc<str>, u128, i64)> {
        self.new.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The ids forgotten since the last call: source and hash.
    pub fn take_removed(&mut self) -> Vec<(Arc<str>, u128)> {
        self.removed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn ring(&mut self, source: &str) -> u32 {
        // Batches come from one source at a time: try the last one first.
        if let Some(ring) = self.last_ring {
            if &*self.rings[ring as usize].source == source {
                return ring;
            }
        }
        if let Some(&ring) = self.ring_of.get(source) {
            self.last_ring = Some(ring);
            return ring;
        }
        let ring = u32::try_from(self.rings.len()).unwrap_or(u32::MAX);
        let source: Arc<str> = Arc::from(source);
        self.rings.push(Ring {
            source: Arc::clone(&source),
            order: VecDeque::new(),
            newest: i64::MIN,
            floors: BTreeMap::new(),
        });
        self.ring_of.insert(source, ring);
        self.last_ring = Some(ring);
        ring
    }

    /// Records a sighting; returns false when the id was seen before.
    pub fn first_sighting(&mut self, sighting: Sighting<'_>) -> bool {
        let key = xxh3_128(sighting.id.as_bytes());
        let ring = self.ring(sighting.source);
        if let Some((part, from)) = sighting.reread_from {
            let r = &mut self.rings[ring as usize];
            match r.floors.get_mut(part) {
                Some(floor) => *floor = (*floor).max(from),
                None => {
                    r.floors.insert(part.into(), from);
                }
            }
        }
        if self.seen.contains_key(&key) {
            return false;
        }
        self.seen.insert(key, ring);
        let r = &mut self.rings[ring as usize];
        r.newest = r.newest.max(sighting.time_ms.min(sighting.ceiling));
        r.order.push_back((key, sighting.time_ms));
        if let Some(new) = &mut self.new {
            new.push((Arc::clone(&r.source), key, sighting.time_ms));
        }
        self.expire(ring);
        true
    }

    fn expire(&mut self, ring: u32) {
        let r = &mut self.rings[ring as usize];
        let horizon = r.horizon(self.window_ms);
        while let Some(&(key, time)) = r.order.front() {
            let over = r.order.len() > self.capacity;
            if !over && time >= horizon {
                break;
            }
            if over && time >= horizon {
                self.evicted += 1;
            }
            if self.seen.get(&key) == Some(&ring) {
                self.seen.remove(&key);
            }
            r.order.pop_front();
            if let Some(removed) = &mut self.removed {
                removed.push((Arc::clone(&r.source), key));
            }
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

    /// Remembers an id hash saved from an earlier run. Restore a source's
    /// ids oldest first: past the capacity the oldest go, as they would have.
    pub fn restore(&mut self, source: &str, key: u128, time_ms: i64) {
        let ring = self.ring(source);
        if self.seen.contains_key(&key) {
            return;
        }
        self.seen.insert(key, ring);
        let r = &mut self.rings[ring as usize];
        r.newest = r.newest.max(time_ms);
        r.order.push_back((key, time_ms));
        // Only the capacity applies: the re-read floors are not known yet,
        // and the ids a source may re-read after downtime must survive it.
        while r.order.len() > self.capacity {
            if let Some((old, _)) = r.order.pop_front() {
                if self.seen.get(&old) == Some(&ring) {
                    self.seen.remove(&old);
                }
                self.evicted += 1;
                if let Some(removed) = &mut self.removed {
                    removed.push((Arc::clone(&r.source), old));
                }
            }
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

    fn saw(d: &mut Dedup, source: &str, id: &str, time_ms: i64) -> bool {
        d.first_sighting(Sighting {
            source,
            id,
            time_ms,
            ceiling: i64::MAX,
            reread_from: None,
        })
    }

    #[test]
    fn duplicates_within_the_window_are_dropped() {
        let mut d = Dedup::new(60_000, 100);
        assert!(saw(&mut d, "s", "a", 0));
        assert!(!saw(&mut d, "s", "a", 0));
        assert!(saw(&mut d, "s", "b", 30_000));
        // a is forgotten once event time moves a window past it.
        assert!(saw(&mut d, "s", "c", 61_000));
        assert!(saw(&mut d, "s", "a", 61_000));
        assert_eq!(d.evicted(), 0);
    }

    #[test]
    fn one_source_seeing_what_another_saw_is_a_duplicate() {
        let mut d = Dedup::new(60_000, 100);
        assert!(saw(&mut d, "eventbridge", "a", 0));
        assert!(!saw(&mut d, "lookup", "a", 0));
    }

    #[test]
    fn the_capacity_bounds_memory_per_source_and_counts_early_forgetting() {
        let mut d = Dedup::new(i64::MAX / 4, 10);
        d.track_new();
        assert!(saw(&mut d, "quiet", "q1", 0));
        for i in 0..25 {
            assert!(saw(&mut d, "busy", &format!("id{i}"), i));
        }
        assert_eq!(d.len(), 11);
        assert_eq!(d.evicted(), 15);
        assert!(!saw(&mut d, "busy", "id24", 24));
        assert!(saw(&mut d, "busy", "id0", 25));
        // The busy source did not push out the quiet one's id.
        assert!(!saw(&mut d, "quiet", "q1", 0));
        let removed = d.take_removed();
        assert_eq!(removed.len(), 16);
        assert!(removed.iter().all(|(source, _)| &**source == "busy"));
    }

    #[test]
    fn a_source_that_re_reads_keeps_its_ids_until_it_will_not_read_them_again() {
        let mut d = Dedup::new(3_600_000, 1000);
        let hour = 3_600_000;
        let poll = |d: &mut Dedup, id: &str, time_ms: i64, from: i64| {
            d.first_sighting(Sighting {
                source: "lookup",
                id,
                time_ms,
                ceiling: i64::MAX,
                reread_from: Some(("us-east-1", from)),
            })
        };
        // Before downtime: events up to 10:00, the window read from 09:45.
        let ten = 10 * hour;
        assert!(poll(&mut d, "old", ten - 60_000, ten - hour / 4));
        // Three hours later the next poll reads from 09:45 again (the
        // checkpoint minus the lookback), newest events first.
        assert!(poll(&mut d, "new", ten + 3 * hour, ten - hour / 4));
        assert!(
            !poll(&mut d, "old", ten - 60_000, ten - hour / 4),
            "the overlap is still a duplicate after downtime"
        );
        // Once the source reads only from 13:00 on, the old id may go.
        assert!(poll(&mut d, "newer", ten + 3 * hour + 1, ten + 3 * hour));
        assert!(poll(&mut d, "old", ten - 60_000, ten + 3 * hour));
    }

    #[test]
    fn a_record_dated_in_the_future_cannot_expire_every_id() {
        let mut d = Dedup::new(3_600_000, 100);
        let now = 10_000_000;
        let at = |id: &'static str, time_ms: i64| Sighting {
            source: "s",
            id,
            time_ms,
            ceiling: now + 300_000,
            reread_from: None,
        };
        assert!(d.first_sighting(at("a", now)));
        // Year 2099: without the ceiling its time would push the window
        // decades ahead and "a" would be forgotten at the next sighting.
        assert!(d.first_sighting(at("future", 4_070_908_800_000)));
        assert!(!d.first_sighting(at("a", now)));
    }

    #[test]
    fn restoring_more_than_the_capacity_keeps_the_newest() {
        let mut d = Dedup::new(i64::MAX / 4, 3);
        for (i, time) in [10, 20, 30, 40, 50].iter().enumerate() {
            d.restore("s", i as u128, *time);
        }
        assert_eq!(d.len(), 3);
        let kept: Vec<i64> = d.rings[0].order.iter().map(|(_, t)| *t).collect();
        assert_eq!(kept, [30, 40, 50]);
    }
}
