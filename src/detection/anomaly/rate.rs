//! Rate state of one group: the open bucket's count and the group's
//! baseline, kept as three exponentially weighted sums instead of every
//! past bucket, so a group costs the same whatever its history.

use serde::{Deserialize, Serialize};

/// What a rate group knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// The event time its history began, ms since the epoch.
    pub first: i64,
    /// The open bucket: its index (event time / bucket).
    pub bucket: i64,
    /// Events counted in the open bucket.
    pub count: u32,
    /// The index of the last bucket folded into the baseline.
    pub folded: i64,
    /// Decayed weight, sum and sum of squares of the closed active buckets.
    pub sums: [f64; 3],
    /// Whether the current burst has alerted: the group alerts again only
    /// after a bucket that stayed under the threshold.
    pub alerted: bool,
}

/// How a rate detector judges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSpec {
    /// Bucket length, ms.
    pub bucket: i64,
    /// The baseline's memory, ms: a bucket's weight falls by e over it.
    pub history: i64,
    /// A group alerts only with this much history of its own, ms.
    pub learning: i64,
    /// The count must be more than this many times the baseline...
    pub factor: f64,
    /// ...and at least this.
    pub min: u32,
}

/// A bucket over the group's baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    /// Events in the bucket so far.
    pub count: u32,
    /// Mean events per active bucket.
    pub mean: f64,
    /// Their standard deviation.
    pub spread: f64,
    /// The count it had to reach.
    pub threshold: f64,
    /// When the bucket began, ms since the epoch.
    pub bucket_start: i64,
    /// When the group's history began, ms since the epoch.
    pub since: i64,
}

impl Rate {
    /// A group whose history begins at `time`.
    pub fn new(time: i64, spec: RateSpec) -> Rate {
        let bucket = time.div_euclid(spec.bucket.max(1));
        Rate {
            first: time,
            bucket,
            count: 0,
            folded: bucket,
            sums: [0.0; 3],
            alerted: false,
        }
    }

    /// Mean and standard deviation of the group's active buckets.
    pub fn baseline(&self) -> (f64, f64) {
        let [weight, sum, squares] = self.sums;
        if weight <= 0.0 {
            return (0.0, 0.0);
        }
        let mean = sum / weight;
        let variance = (squares / weight - mean * mean).max(0.0);
        (mean, variance.sqrt())
    }

    /// The count a bucket must reach to alert: at least `min`, and more
    /// than `factor` times the mean plus two standard deviations.
    pub fn threshold(&self, spec: RateSpec) -> f64 {
        let (mean, spread) = self.baseline();
        (spec.factor * (mean + 2.0 * spread)).max(f64::from(spec.min) - 1.0)
    }

    /// Counts one event at `time`; a burst when the bucket just went over.
    pub fn observe(&mut self, time: i64, spec: RateSpec) -> Option<Burst> {
        let width = spec.bucket.max(1);
        let bucket = time.div_euclid(width);
        self.first = self.first.min(time);
        if bucket > self.bucket {
            self.close(spec);
            if bucket > self.bucket + 1 {
                // The empty buckets between were under any threshold.
                self.alerted = false;
            }
            self.bucket = bucket;
            self.count = 0;
        }
        // An event whose bucket already closed counts toward the open one.
        self.count = self.count.saturating_add(1);
        let learned = time.saturating_sub(self.first) >= spec.learning;
        let threshold = self.threshold(spec);
        if self.alerted || !learned || f64::from(self.count) <= threshold {
            return None;
        }
        self.alerted = true;
        let (mean, spread) = self.baseline();
        Some(Burst {
            count: self.count,
            mean,
            spread,
            threshold: threshold.floor() + 1.0,
            bucket_start: self.bucket.saturating_mul(width),
            since: self.first,
        })
    }

    /// Folds the open bucket into the baseline; a bucket under the
    /// threshold (or the empty ones after it) ends the burst.
    fn close(&mut self, spec: RateSpec) {
        let threshold = self.threshold(spec);
        if f64::from(self.count) <= threshold {
            self.alerted = false;
        }
        if self.count == 0 {
            return;
        }
        let [weight, sum, squares] = self.sums;
        let elapsed = (self.bucket - self.folded).max(0) as f64 * spec.bucket as f64;
        let decay = (-elapsed / spec.history.max(1) as f64).exp();
        // Once the group has learned, a bucket counts at most `factor`
        // times the baseline it was judged against (not the `min` floor):
        // one burst, even one under the floor, must not teach the baseline
        // that bursts are normal, while steady growth still raises it
        // bucket by bucket. While learning, every bucket counts as it is.
        let (mean, spread) = self.baseline();
        let learned = self
            .bucket
            .saturating_mul(spec.bucket.max(1))
            .saturating_sub(self.first)
            >= spec.learning;
        let cap = if learned {
            (spec.factor * (mean + 2.0 * spread)).max(1.0)
        } else {
            f64::INFINITY
        };
        let c = f64::from(self.count).min(cap);
        self.sums = [
            weight * decay + 1.0,
            sum * decay + c,
            squares * decay + c * c,
        ];
        self.folded = self.bucket;
    }
}
