//! A per-sink rate limit in alerts per minute. Alerts over the limit are
//! not dropped: they wait in the outbox for their turn.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket holding up to a minute's allowance.
#[derive(Debug)]
pub struct Allowance {
    per_minute: f64,
    tokens: f64,
    at: Instant,
}

impl Allowance {
    /// Up to `per_minute` alerts a minute, a full minute's worth available at once.
    pub fn per_minute(per_minute: u32) -> Allowance {
        Allowance {
            per_minute: f64::from(per_minute.max(1)),
            tokens: f64::from(per_minute.max(1)),
            at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_minute / 60.0).min(self.per_minute);
        self.at = now;
    }

    /// Takes up to `wanted` alerts' worth; returns how many were granted.
    pub fn take(&mut self, wanted: usize) -> usize {
        self.refill();
        let granted = (self.tokens.floor() as usize).min(wanted);
        self.tokens -= granted as f64;
        granted
    }

    /// Hands back `n` alerts' worth that were granted and not used.
    pub fn give_back(&mut self, n: usize) {
        self.tokens = (self.tokens + n as f64).min(self.per_minute);
    }

    /// How long until the next alert's worth is available.
    pub fn until_next(&mut self) -> Duration {
        self.refill();
        if self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) * 60.0 / self.per_minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn grants_a_minutes_worth_then_refills_steadily() {
        let mut allowance = Allowance::per_minute(60);
        assert_eq!(allowance.take(100), 60);
        assert_eq!(allowance.take(1), 0);
        assert_eq!(allowance.until_next(), Duration::from_secs(1));
        tokio::time::advance(Duration::from_millis(2500)).await;
        assert_eq!(allowance.take(10), 2);
        allowance.give_back(1);
        assert_eq!(allowance.take(10), 1);
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(allowance.take(1000), 60, "never more than a minute's worth");
    }
}
