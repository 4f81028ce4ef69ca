//! Expected-wait admission control (compute-cluster's `max_request_time`).
//!
//! After a warm-up of `warmup` completed jobs the estimator keeps a moving average of job
//! service time, favouring history over the newest sample by up to 100:1. Unlike
//! compute-cluster, the first sample sets the average instead of being diluted from zero.

const MAX_HISTORY: u64 = 100;

#[derive(Debug, Clone)]
pub struct Estimator {
    warmup: u64,
    jobs_run: u64,
    samples: u64,
    avg_secs: f64,
}

impl Estimator {
    pub fn new(warmup: u64) -> Self {
        Estimator {
            warmup,
            jobs_run: 0,
            samples: 0,
            avg_secs: 0.0,
        }
    }

    /// Records one completed job's service time (send to reply).
    pub fn record(&mut self, secs: f64) {
        if self.jobs_run >= self.warmup {
            let history = self.samples.min(MAX_HISTORY) as f64;
            self.avg_secs = (self.avg_secs * history + secs) / (history + 1.0);
            self.samples += 1;
        }
        self.jobs_run += 1;
    }

    /// The expected time, in seconds, for a job enqueued behind `queued` others on `workers`
    /// workers, once warmed up.
    pub fn expected(&self, queued: usize, workers: usize) -> Option<f64> {
        if self.jobs_run <= self.warmup || workers == 0 || self.samples == 0 {
            return None;
        }
        Some((queued as f64 / workers as f64) * self.avg_secs + self.avg_secs)
    }

    pub fn average(&self) -> f64 {
        self.avg_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_during_warmup() {
        let mut e = Estimator::new(4);
        for _ in 0..4 {
            e.record(1.0);
            assert_eq!(e.expected(10, 2), None);
        }
        e.record(1.0);
        assert_eq!(e.expected(10, 2), Some(6.0));
    }

    #[test]
    fn first_sample_sets_the_average() {
        let mut e = Estimator::new(0);
        e.record(0.5);
        assert_eq!(e.average(), 0.5);
        e.record(1.5);
        assert_eq!(e.average(), 1.0);
    }

    #[test]
    fn history_weight_caps_at_one_hundred() {
        let mut e = Estimator::new(0);
        for _ in 0..1000 {
            e.record(1.0);
        }
        e.record(102.0);
        // (1 * 100 + 102) / 101 = 2
        assert!((e.average() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn expected_scales_with_queue_per_worker() {
        let mut e = Estimator::new(0);
        e.record(0.1);
        e.record(0.1);
        let x = e.expected(40, 4).unwrap();
        assert!((x - 1.1).abs() < 1e-9, "{x}");
        assert_eq!(e.expected(5, 0), None);
    }
}
