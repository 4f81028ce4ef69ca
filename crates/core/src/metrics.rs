//! Counters for `pool.metrics()` (Prometheus exposition): fixed-bucket histograms of the wait
//! and run times, and worker exits by reason. Counting is a few integer increments per job, in
//! the stats path the scheduler already takes; the text itself is built by the host.

use crate::scheduler::StopReason;

/// Upper bounds of the histogram buckets, in seconds (Prometheus `le`, inclusive), from half a
/// millisecond (a tiny job's round trip) to a minute; `+Inf` is implied.
pub const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Observations per bucket (not cumulative; the last one is `+Inf`), and their sum.
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, secs: f64) {
        // The first bound >= secs; a NaN (never produced here) would land in +Inf.
        let i = BUCKETS.partition_point(|b| *b < secs);
        self.counts[i] += 1;
        self.sum += secs;
    }

    /// Cumulative counts per bucket, `+Inf` last (which is the total count).
    pub fn cumulative(&self) -> [u64; BUCKETS.len() + 1] {
        let mut out = self.counts;
        for i in 1..out.len() {
            out[i] += out[i - 1];
        }
        out
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Every [`StopReason`], in the order of [`Exits`]' counts.
pub const REASONS: [StopReason; 9] = [
    StopReason::Crash,
    StopReason::Idle,
    StopReason::Recycled,
    StopReason::Retired,
    StopReason::Memory,
    StopReason::Timeout,
    StopReason::Aborted,
    StopReason::Protocol,
    StopReason::Shutdown,
];

/// Worker exits by reason since the start.
#[derive(Debug, Default, Clone, Copy)]
pub struct Exits([u64; REASONS.len()]);

impl Exits {
    pub fn count(&mut self, reason: StopReason) {
        // A match, so that a new reason cannot be forgotten here.
        let i = match reason {
            StopReason::Crash => 0,
            StopReason::Idle => 1,
            StopReason::Recycled => 2,
            StopReason::Retired => 3,
            StopReason::Memory => 4,
            StopReason::Timeout => 5,
            StopReason::Aborted => 6,
            StopReason::Protocol => 7,
            StopReason::Shutdown => 8,
        };
        self.0[i] += 1;
    }

    /// `(reason, exits)` for every reason, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (StopReason, u64)> + '_ {
        REASONS.iter().copied().zip(self.0.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds_and_cumulative() {
        let mut h = Histogram::default();
        for v in [0.0, 0.0005, 0.0006, 0.001, 61.0, 7.0] {
            h.observe(v);
        }
        let c = h.cumulative();
        assert_eq!(c[0], 2, "0 and 0.0005 are <= 0.0005");
        assert_eq!(c[1], 4);
        assert_eq!(c[BUCKETS.len() - 1], 5, "all but 61 are <= 60");
        assert_eq!(c[BUCKETS.len()], 6);
        assert_eq!(h.count(), 6);
        assert!((h.sum() - 68.0021).abs() < 1e-9);
        assert!(BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn exits_are_counted_by_reason() {
        let mut e = Exits::default();
        e.count(StopReason::Crash);
        e.count(StopReason::Crash);
        e.count(StopReason::Shutdown);
        let v: Vec<_> = e.iter().filter(|x| x.1 > 0).collect();
        assert_eq!(v, vec![(StopReason::Crash, 2), (StopReason::Shutdown, 1)]);
        assert_eq!(e.iter().count(), REASONS.len());
        for (i, r) in REASONS.iter().enumerate() {
            let mut e = Exits::default();
            e.count(*r);
            assert_eq!(e.0[i], 1, "{r:?} counts at its place in REASONS");
        }
    }
}
