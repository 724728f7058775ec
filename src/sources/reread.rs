//! How far back a polled source re-reads: as far as events still arrive
//! late, not the whole `lookback` every time.
//!
//! CloudTrail makes an event visible to LookupEvents some time after it
//! happened (typically seconds to minutes). A poll that re-read the whole
//! `lookback` (15 minutes by default) every 30 seconds would read each event
//! about 30 times, and at a few events a second it would need more requests
//! than LookupEvents allows (2 a second). So the source measures how late
//! events really are and re-reads that much, plus a margin.
//!
//! An event seen for the first time at a poll was not visible at the one
//! before, so it became visible after that poll's end: its lateness is at
//! least `previous end - event time`. The largest such lower bound over the
//! recent polls, plus a quarter (at least [`MIN_MARGIN_SECONDS`]), is how
//! far behind the last committed end the next window starts, never more
//! than `lookback`. Until the source has watched for a whole `lookback`
//! (after a start, say) it re-reads all of it.

use std::collections::{HashSet, VecDeque};

use xxhash_rust::xxh3::xxh3_64;

use crate::records::string_field;

/// The smallest margin added to the lateness seen, in seconds.
pub const MIN_MARGIN_SECONDS: i64 = 5;

/// Polls whose lateness is remembered.
const POLLS_KEPT: usize = 64;

/// Event ids remembered to tell first sightings from repeats.
const IDS_KEPT: usize = 200_000;

/// What one scope (a Region) of a polled source has seen.
#[derive(Debug, Default)]
pub struct Lateness {
    ids: HashSet<u64>,
    order: VecDeque<u64>,
    /// Per recent poll: its end and the largest lateness first seen in it.
    polls: VecDeque<(i64, i64)>,
    /// The end of the previous poll and of the current one (Unix seconds).
    previous_end: Option<i64>,
    current_end: Option<i64>,
    current_max: i64,
    /// When the source started watching.
    since: Option<i64>,
}

impl Lateness {
    /// Starts a poll that reads up to `end`.
    pub fn begin(&mut self, end: i64) {
        self.since.get_or_insert(end);
        self.current_end = Some(end);
        self.current_max = 0;
    }

    /// Records an event of the current poll; returns its lateness (a lower
    /// bound, seconds) when it is seen for the first time after an earlier poll.
    pub fn observe(&mut self, id: &str, event_time: i64) -> Option<i64> {
        let key = xxh3_64(id.as_bytes());
        if !self.ids.insert(key) {
            return None;
        }
        self.order.push_back(key);
        if self.order.len() > IDS_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        let previous = self.previous_end?;
        let late = (previous - event_time).max(0);
        self.current_max = self.current_max.max(late);
        Some(late)
    }

    /// Ends the current poll (its events are committed).
    pub fn end(&mut self) {
        if let Some(end) = self.current_end.take() {
            self.polls.push_back((end, self.current_max));
            if self.polls.len() > POLLS_KEPT {
                self.polls.pop_front();
            }
            self.previous_end = Some(end);
        }
    }

    /// The largest lateness seen over the remembered polls, in seconds.
    pub fn seen(&self) -> i64 {
        self.polls.iter().map(|(_, late)| *late).max().unwrap_or(0)
    }

    /// How far behind the last committed end the next window should start,
    /// in seconds, at most `lookback`.
    pub fn reach(&self, lookback: i64, now: i64) -> i64 {
        let watched = self.since.map_or(0, |since| now - since);
        // The polls remembered must cover the lookback too: otherwise an
        // event later than any of them could have been missed.
        let covered = self.polls.front().map_or(0, |(first, _)| now - first);
        if watched < lookback || covered < lookback {
            return lookback;
        }
        let seen = self.seen();
        let margin = (seen / 4).max(MIN_MARGIN_SECONDS);
        (seen + margin).min(lookback)
    }
}

/// How late a log group's events were ingested, per recent poll: CloudWatch
/// Logs reports each event's ingestion time, and FilterLogEvents selects by
/// event time, so a window must reach back as far as events are ingested
/// late, or they are never read.
#[derive(Debug, Default)]
pub struct IngestionDelays {
    polls: VecDeque<i64>,
    current: i64,
}

impl IngestionDelays {
    /// Records one event's delay (ms) in the current poll.
    pub fn observe(&mut self, delay_ms: i64) {
        self.current = self.current.max(delay_ms);
    }

    /// Ends the current poll.
    pub fn end(&mut self) {
        self.polls.push_back(self.current);
        self.current = 0;
        if self.polls.len() > POLLS_KEPT {
            self.polls.pop_front();
        }
    }

    /// The largest delay seen over the recent polls, ms.
    pub fn seen(&self) -> i64 {
        self.polls.iter().copied().max().unwrap_or(0)
    }

    /// How far behind the last committed end the next window starts (ms):
    /// at least `lookback`, and past the largest delay seen plus a quarter,
    /// up to `max`.
    pub fn reach(&self, lookback: i64, max: i64) -> i64 {
        let seen = self.seen();
        let wanted = seen + (seen / 4).max(MIN_MARGIN_SECONDS * 1000);
        lookback.max(wanted.min(max))
    }
}

/// Records one LookupEvents record: its eventID and eventTime are read
/// from the text; a record without them is not measured.
pub fn observe_record(lateness: &mut Lateness, record: &str) -> Option<i64> {
    let id = string_field(record, "\"eventID\"")?;
    let time = crate::detection::event::parse_time_ms(string_field(record, "\"eventTime\"")?)?;
    lateness.observe(id, time.div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A steady stream: `rate` events a second, each visible `delay(i)`
    /// seconds after it happened.
    struct Stream {
        rate: i64,
        delays: Vec<i64>,
    }

    impl Stream {
        fn events(&self, until: i64) -> Vec<(i64, i64, String)> {
            let mut out = Vec::new();
            for t in 0..until {
                for k in 0..self.rate {
                    let i = (t * self.rate + k) as usize;
                    let delay = self.delays[i % self.delays.len()];
                    out.push((t, t + delay, format!("e{i}")));
                }
            }
            out
        }
    }

    #[test]
    fn re_reads_what_is_still_late_and_misses_nothing() {
        // The issue's case: 10 events/s, each visible 15 to 60 s late,
        // polled every 30 s with lookback 300 s, pages of 50.
        let delays: Vec<i64> = (0..97).map(|i| 15 + (i * 37) % 46).collect();
        let stream = Stream { rate: 10, delays };
        let (interval, lookback, page) = (30, 300, 50);
        let horizon = 3_600;
        let events = stream.events(horizon);
        let mut lateness = Lateness::default();
        let mut committed_until: Option<i64> = None;
        let mut seen: HashSet<String> = HashSet::new();
        let (mut calls_after_warmup, mut new_after_warmup) = (0u64, 0u64);
        let mut now = 1_000;
        while now <= horizon {
            let start = match committed_until {
                None => now - lookback,
                Some(until) => until - lateness.reach(lookback, now),
            };
            lateness.begin(now);
            // LookupEvents returns what is visible now within [start, now].
            let window: Vec<&(i64, i64, String)> = events
                .iter()
                .filter(|(time, visible, _)| *time >= start && *time <= now && *visible <= now)
                .collect();
            let calls = window.len().div_ceil(page).max(1) as u64;
            let mut new = 0;
            for (time, _, id) in &window {
                lateness.observe(id, *time);
                if seen.insert(id.clone()) {
                    new += 1;
                }
            }
            lateness.end();
            committed_until = Some(now);
            if now >= 1_000 + 2 * lookback {
                calls_after_warmup += calls;
                new_after_warmup += new;
            }
            now += interval;
        }
        // Nothing missed: every event visible by the last poll was read.
        let visible = events
            .iter()
            .filter(|(_, visible, _)| *visible <= now - interval)
            .filter(|(time, _, _)| *time >= 1_000 - lookback)
            .count();
        assert_eq!(seen.len(), visible);
        let per_thousand = calls_after_warmup as f64 * 1000.0 / new_after_warmup as f64;
        assert!(
            per_thousand <= 75.0,
            "{per_thousand:.1} LookupEvents calls per 1,000 new events"
        );
        // The largest lateness is 60 s; a lower bound measured at 30 s polls
        // comes within a poll of it.
        assert!((30..=60).contains(&lateness.seen()), "{}", lateness.seen());
    }

    #[test]
    fn records_are_measured_by_their_own_fields() {
        let mut lateness = Lateness::default();
        lateness.begin(100);
        lateness.end();
        lateness.begin(130);
        let record =
            r#"{"eventVersion":"1.08","eventTime":"1970-01-01T00:01:00Z","eventID":"x-1"}"#;
        assert_eq!(observe_record(&mut lateness, record), Some(40));
        assert_eq!(observe_record(&mut lateness, record), None, "seen before");
        assert_eq!(observe_record(&mut lateness, "not json"), None);
    }

    #[test]
    fn log_windows_reach_past_the_lookback_when_events_are_ingested_later() {
        let mut delays = IngestionDelays::default();
        assert_eq!(delays.reach(300_000, 86_400_000), 300_000);
        delays.observe(10_000);
        delays.observe(270_000);
        delays.end();
        assert_eq!(delays.seen(), 270_000);
        assert_eq!(delays.reach(300_000, 86_400_000), 337_500);
        assert_eq!(delays.reach(300_000, 320_000), 320_000);
    }

    #[test]
    fn after_a_start_the_whole_lookback_is_read_until_lateness_is_known() {
        let mut lateness = Lateness::default();
        lateness.begin(1_000);
        lateness.observe("a", 990);
        lateness.end();
        assert_eq!(lateness.reach(300, 1_030), 300);
        // A later event than any seen widens the window again.
        let mut now = 1_030;
        while now < 1_400 {
            lateness.begin(now);
            lateness.observe(&format!("e{now}"), now - 40);
            lateness.end();
            now += 30;
        }
        let short = lateness.reach(300, now);
        assert!(short < 100, "{short}");
        lateness.begin(now);
        lateness.observe("very-late", now - 30 - 200);
        lateness.end();
        assert!(lateness.reach(300, now + 30) >= 250);
    }
}
