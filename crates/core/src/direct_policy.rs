//! When a host on an event loop should read the worker channels itself ("direct reads",
//! [`Engine::set_direct`](crate::engine::Engine::set_direct)) rather than leave them to the
//! engine's I/O thread.
//!
//! Under light load (nothing queued, at most one job per worker) each reply's latency counts,
//! and a direct read saves a thread wake-up. Once more than one and a half jobs per worker are
//! live, the I/O thread reads again, so that a worker gets its next job whatever the host is
//! doing. The gap between the two lines, and a pause before starting again after a stop, keep
//! a load that hovers at a line from switching back and forth: each switch registers every
//! channel again.

use std::time::{Duration, Instant};

use crate::engine::Load;

/// After direct reads stopped, how long before they may start again.
pub const REENTER_AFTER: Duration = Duration::from_millis(100);

/// Whether direct reads should be on, given the engine's `load`, whether they are on now, when
/// they last stopped (`None`: never), and the current time.
pub fn wanted(load: Load, on: bool, stopped_at: Option<Instant>, now: Instant) -> bool {
    let Load {
        queued,
        live,
        workers,
    } = load;
    if on {
        live <= workers + workers.div_ceil(2)
    } else {
        queued == 0
            && live <= workers
            && stopped_at.is_none_or(|t| now.saturating_duration_since(t) >= REENTER_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(queued: usize, live: usize, workers: usize) -> Load {
        Load {
            queued,
            live,
            workers,
        }
    }

    #[test]
    fn starts_only_with_nothing_queued_and_one_job_per_worker_at_most() {
        let now = Instant::now();
        assert!(wanted(load(0, 0, 2), false, None, now));
        assert!(wanted(load(0, 2, 2), false, None, now));
        assert!(!wanted(load(1, 3, 2), false, None, now));
        assert!(!wanted(load(0, 3, 2), false, None, now));
        // Queued jobs with idle slots (workers still starting) are load too.
        assert!(!wanted(load(1, 1, 2), false, None, now));
    }

    #[test]
    fn stops_only_above_one_and_a_half_jobs_per_worker() {
        let now = Instant::now();
        assert!(wanted(load(1, 3, 2), true, None, now));
        assert!(!wanted(load(2, 4, 2), true, None, now));
        assert!(!wanted(load(0, 4, 2), true, None, now));
        assert!(wanted(load(0, 2, 1), true, None, now));
        assert!(!wanted(load(2, 3, 1), true, None, now));
    }

    #[test]
    fn between_the_lines_the_current_state_holds() {
        // 4 workers: starts up to 4 live, stops above 6.
        let now = Instant::now();
        for live in 5..=6 {
            assert!(wanted(load(live - 4, live, 4), true, None, now));
            assert!(!wanted(load(live - 4, live, 4), false, None, now));
        }
        assert!(!wanted(load(3, 7, 4), true, None, now));
        assert!(wanted(load(0, 4, 4), false, None, now));
    }

    #[test]
    fn starts_again_no_sooner_than_the_reentry_delay_after_a_stop() {
        let stopped = Instant::now();
        let light = load(0, 1, 2);
        assert!(!wanted(light, false, Some(stopped), stopped));
        let early = stopped + REENTER_AFTER - Duration::from_millis(1);
        assert!(!wanted(light, false, Some(stopped), early));
        assert!(wanted(light, false, Some(stopped), stopped + REENTER_AFTER));
        // A clock reading older than the stop counts as no time passed.
        assert!(!wanted(
            light,
            false,
            Some(stopped + REENTER_AFTER),
            stopped
        ));
        // While on, the last stop does not matter.
        assert!(wanted(light, true, Some(stopped), stopped));
    }
}
