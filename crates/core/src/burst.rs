//! Deadline-driven growth and speculation (the swarm seed's sprint with a target time): the
//! rules, pure, on an explicit clock. The scheduler keeps one [`Burst`] per batch with a
//! deadline (`finishBy`) and asks these rules how many workers it may run and which straggler
//! to start again.

use std::time::{Duration, Instant};

/// Run times kept per batch (a ring of the most recent).
const RECENT: usize = 64;
/// Fewest run times of a batch before its p90 decides that a job is a straggler.
pub const MIN_SPECULATION_SAMPLES: usize = 3;

/// The most recent run times (seconds) of one batch's jobs: their mean and p90.
#[derive(Debug, Default, Clone)]
pub struct RecentRuns {
    buf: Vec<f64>,
    next: usize,
    sum: f64,
}

impl RecentRuns {
    pub fn push(&mut self, secs: f64) {
        if self.buf.len() < RECENT {
            self.buf.push(secs);
        } else {
            self.sum -= self.buf[self.next];
            self.buf[self.next] = secs;
        }
        self.sum += secs;
        self.next = (self.next + 1) % RECENT;
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The mean run time, or `None` without samples.
    pub fn mean(&self) -> Option<f64> {
        (!self.buf.is_empty()).then(|| (self.sum / self.buf.len() as f64).max(0.0))
    }

    /// The 90th percentile (nearest rank), or `None` without samples.
    pub fn p90(&self) -> Option<f64> {
        if self.buf.is_empty() {
            return None;
        }
        let mut v = self.buf.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let rank = ((0.9 * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1])
    }
}

/// A batch with a deadline, as the host last described it.
#[derive(Debug, Clone)]
pub struct Burst {
    /// When it was registered (the start of its span, for speculation's window).
    pub since: Instant,
    /// Its deadline; `None`: beyond what an `Instant` holds (never near).
    pub finish_by: Option<Instant>,
    /// Its jobs not settled yet (queued, running, and not yet submitted when known).
    pub remaining: usize,
    /// Its jobs may be started again near the deadline (idempotent functions).
    pub speculate: bool,
    pub runs: RecentRuns,
}

/// How many workers a batch needs to finish `remaining` jobs of about `run_secs` seconds each
/// by its deadline, `left` from now (zero: the deadline has passed), `concurrency` jobs per
/// worker: never below `max` (the pool's own maximum), never above `burst` (the most it may
/// grow to), nor above what the remaining jobs can keep busy.
///
/// - No estimate yet (no job of the batch finished), no job left, or `burst <= max`: `max`.
/// - The deadline passed: every worker the remaining jobs can use (the swarm seed's "full
///   throttle").
/// - Otherwise the remaining work spread over the time left: `ceil(remaining × run_secs /
///   (left × concurrency))`.
pub fn target_workers(
    left: Duration,
    remaining: usize,
    run_secs: Option<f64>,
    concurrency: usize,
    max: usize,
    burst: usize,
) -> usize {
    if burst <= max || remaining == 0 {
        return max;
    }
    let concurrency = concurrency.max(1);
    let busy = remaining.div_ceil(concurrency);
    let Some(run) = run_secs.filter(|r| r.is_finite() && *r >= 0.0) else {
        return max;
    };
    let needed = if left.is_zero() {
        busy
    } else {
        let w = (remaining as f64 * run) / (left.as_secs_f64() * concurrency as f64);
        if w >= burst as f64 {
            burst
        } else {
            w.ceil() as usize
        }
    };
    needed.min(busy).clamp(max, burst)
}

/// The instant from which a batch is near its deadline, for speculation: the last quarter of
/// the time from its registration to its deadline. `None`: never (no deadline in reach).
pub fn near_from(since: Instant, finish_by: Option<Instant>) -> Option<Instant> {
    let end = finish_by?;
    let span = end.saturating_duration_since(since);
    Some(end.checked_sub(span / 4).unwrap_or(end).max(since))
}

/// Whether a job of a batch with these recent run times, running for `ran`, is a straggler:
/// it has run longer than twice the batch's p90 (with enough samples to tell).
pub fn is_straggler(runs: &RecentRuns, ran: Duration) -> bool {
    if runs.len() < MIN_SPECULATION_SAMPLES {
        return false;
    }
    runs.p90().is_some_and(|p| ran.as_secs_f64() > 2.0 * p)
}

/// When a job sent at `sent` becomes a straggler ([`is_straggler`]), if it can.
pub fn straggler_at(runs: &RecentRuns, sent: Instant) -> Option<Instant> {
    if runs.len() < MIN_SPECULATION_SAMPLES {
        return None;
    }
    let p = runs.p90()?;
    // Just past twice the p90 (a microsecond: "longer than").
    sent.checked_add(Duration::from_secs_f64((2.0 * p).min(1e9)) + Duration::from_micros(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn off_without_room_above_max_or_without_an_estimate_or_work() {
        assert_eq!(target_workers(ms(100), 100, Some(1.0), 1, 4, 4), 4);
        assert_eq!(target_workers(ms(100), 100, Some(1.0), 1, 4, 2), 4);
        assert_eq!(target_workers(ms(100), 100, None, 1, 4, 16), 4);
        assert_eq!(target_workers(ms(100), 0, Some(1.0), 1, 4, 16), 4);
        assert_eq!(target_workers(ms(100), 10, Some(f64::NAN), 1, 4, 16), 4);
    }

    #[test]
    fn the_remaining_work_over_the_time_left_gives_the_workers() {
        // 20 jobs of 0.5 s in 2 s: 5 workers.
        assert_eq!(target_workers(ms(2000), 20, Some(0.5), 1, 2, 16), 5);
        // A hair more work: 6.
        assert_eq!(target_workers(ms(2000), 21, Some(0.5), 1, 2, 16), 6);
        // On schedule with the pool's own workers: no growth.
        assert_eq!(target_workers(ms(2000), 4, Some(0.5), 1, 2, 16), 2);
        // With concurrency 2, half the workers.
        assert_eq!(target_workers(ms(2000), 20, Some(0.5), 2, 2, 16), 3);
        // Capped at burst.
        assert_eq!(target_workers(ms(100), 1000, Some(0.5), 1, 2, 8), 8);
        // Never more workers than remaining jobs can keep busy.
        assert_eq!(target_workers(ms(10), 5, Some(10.0), 1, 2, 8), 5);
        assert_eq!(target_workers(ms(10), 5, Some(10.0), 2, 2, 8), 3);
        // A near-zero time left does not overflow.
        assert_eq!(
            target_workers(Duration::from_nanos(1), 5, Some(1e300), 1, 1, 3),
            3
        );
    }

    #[test]
    fn past_the_deadline_the_remaining_jobs_get_every_worker_up_to_burst() {
        assert_eq!(target_workers(Duration::ZERO, 3, Some(0.001), 1, 1, 8), 3);
        assert_eq!(target_workers(Duration::ZERO, 100, Some(0.001), 1, 1, 8), 8);
        // Still no estimate: nothing to go on, no growth.
        assert_eq!(target_workers(Duration::ZERO, 100, None, 1, 1, 8), 1);
    }

    #[test]
    fn recent_runs_keep_the_last_64_with_mean_and_p90() {
        let mut r = RecentRuns::default();
        assert_eq!(r.mean(), None);
        assert_eq!(r.p90(), None);
        for i in 1..=10 {
            r.push(i as f64);
        }
        assert_eq!(r.mean(), Some(5.5));
        assert_eq!(r.p90(), Some(9.0));
        for _ in 0..64 {
            r.push(2.0);
        }
        assert_eq!(r.len(), 64);
        assert!((r.mean().unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(r.p90(), Some(2.0));
    }

    #[test]
    fn near_is_the_last_quarter_of_the_span() {
        let t = Instant::now();
        assert_eq!(near_from(t, Some(t + ms(4000))), Some(t + ms(3000)));
        assert_eq!(near_from(t, Some(t)), Some(t));
        assert_eq!(near_from(t, None), None);
    }

    #[test]
    fn a_straggler_ran_longer_than_twice_the_p90_once_there_are_samples() {
        let mut r = RecentRuns::default();
        r.push(0.1);
        r.push(0.1);
        assert!(!is_straggler(&r, ms(10_000)), "too few samples");
        assert_eq!(straggler_at(&r, Instant::now()), None);
        r.push(0.1);
        assert!(!is_straggler(&r, ms(200)));
        assert!(is_straggler(&r, ms(201)));
        let t = Instant::now();
        let at = straggler_at(&r, t).unwrap();
        assert!(at > t + ms(199) && at < t + ms(201));
    }
}
