//! Client-side rate limits that AWS enforces per account and Region:
//! LookupEvents 2 requests/s, FilterLogEvents 5 requests/s. Every caller of
//! an API in a Region shares one limiter, so several sources together stay
//! under the limit.
//!
//! Calls are spaced evenly, without bursts: at N per second no window of one
//! second ever holds more than N calls, so throttling is avoided rather than
//! recovered from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus::IntCounterVec;
use tokio::time::Instant;

/// Spaces calls at least `interval` apart.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// At most `per_second` calls in any second.
    pub fn per_second(per_second: u32) -> RateLimiter {
        RateLimiter {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: Mutex::new(None),
        }
    }

    /// Waits for this caller's turn; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let now = Instant::now();
        let at = {
            // The lock guards one Option; a panic cannot leave it half-written.
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.interval);
            at
        };
        let wait = at.saturating_duration_since(now);
        if !wait.is_zero() {
            tokio::time::sleep_until(at).await;
        }
        wait
    }
}

/// Limiters by (operation, Region).
type Limiters = HashMap<(&'static str, String), Arc<RateLimiter>>;

/// The limiters of the process, one per (operation, Region).
#[derive(Clone)]
pub struct RateLimits {
    limiters: Arc<Mutex<Limiters>>,
    waits: IntCounterVec,
}

impl RateLimits {
    /// No limiter yet; waits are counted in `waits` by operation.
    pub fn new(waits: IntCounterVec) -> RateLimits {
        RateLimits {
            limiters: Arc::default(),
            waits,
        }
    }

    /// Waits for a turn to call `operation` in `region`, limited to `per_second`.
    pub async fn acquire(&self, operation: &'static str, region: &str, per_second: u32) {
        let limiter = {
            let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                limiters
                    .entry((operation, region.to_owned()))
                    .or_insert_with(|| Arc::new(RateLimiter::per_second(per_second))),
            )
        };
        if !limiter.acquire().await.is_zero() {
            self.waits.with_label_values(&[operation]).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_so_no_second_holds_more_than_the_limit() {
        let limiter = Arc::new(RateLimiter::per_second(2));
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..7 {
            let limiter = Arc::clone(&limiter);
            handles.push(tokio::spawn(async move {
                limiter.acquire().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for h in handles {
            times.push(h.await.unwrap().duration_since(start));
        }
        times.sort();
        assert_eq!(times[0], Duration::ZERO);
        assert_eq!(times[6], Duration::from_millis(3000));
        for window in times.windows(3) {
            // Any three calls span at least one second: never three in a second.
            assert!(window[2] - window[0] >= Duration::from_secs(1), "{times:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn limiters_are_shared_per_operation_and_region() {
        let waits = IntCounterVec::new(prometheus::Opts::new("w", "w"), &["operation"]).unwrap();
        let limits = RateLimits::new(waits.clone());
        limits.acquire("LookupEvents", "us-east-1", 2).await;
        limits.acquire("LookupEvents", "eu-west-1", 2).await;
        assert_eq!(waits.with_label_values(&["LookupEvents"]).get(), 0);
        limits.acquire("LookupEvents", "us-east-1", 2).await;
        assert_eq!(waits.with_label_values(&["LookupEvents"]).get(), 1);
    }
}
