//! When a host on an event loop should read the worker channels itself ("direct reads",
//! [`Engine::set_direct`](crate::engine::Engine::set_direct)) rather than leave them to the
//! engine's I/O thread, and when the I/O thread takes them back.
//!
//! A direct read saves a thread wake-up per reply: the worker wakes the host's thread only, as
//! Node's own IPC does, instead of the I/O thread and then the host. With several jobs per
//! worker (`concurrency` > 1) that pays at every load (measured on 2 cores, 2 workers, closed
//! loops of 20 to 64 callers: 10-30% more jobs/s than with the I/O thread reading): a worker
//! has its other jobs to run while its reply waits for the host. So the host reads whenever it
//! is responsive. The risk is a host busy with its own work: a worker's reply then waits, and
//! the worker's next queued job with it. So while jobs are queued the I/O thread checks every
//! [`STALL`]: a host that has not read for that long, with replies waiting, is *stalled*; the
//! I/O thread reads them, hands the worker its next job, and keeps reading from then on. The
//! host starts reading again no sooner than [`REENTER_AFTER`] later, so a host that stalls
//! often spends most of its time with the I/O thread reading.
//!
//! With one job per worker, a worker idles from its reply until its next job arrives, and the
//! I/O thread, idle itself, answers sooner than a host busy settling the results before it
//! (ComputeCluster, 64 callers: 17% fewer jobs/s with direct reads). There the host reads
//! only under light load: nothing queued, at most one job per worker; once more than one and
//! a half jobs per worker are live, the I/O thread reads again. The gap between the two lines
//! keeps a load that hovers at a line from switching back and forth.

use std::time::{Duration, Instant};

/// How long the host may go without reading, while jobs are queued and replies wait, before the
/// I/O thread takes the reads back. Also how often it checks: each check wakes the I/O thread,
/// which costs the host's throughput a few per cent at 250 checks a second on 2 cores (4 ms),
/// about nothing measurable at 100.
pub const STALL: Duration = Duration::from_millis(10);

/// After direct reads stopped, how long before they may start again.
pub const REENTER_AFTER: Duration = Duration::from_millis(100);

/// The load that decides who reads the channels of a pool with one job per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Jobs queued, not yet given to a worker.
    pub queued: usize,
    /// Jobs queued or in flight.
    pub live: usize,
    /// The most workers.
    pub workers: usize,
}

/// Whether direct reads should be on, given the pool's load (`None`: several jobs per worker,
/// where the load does not matter), whether they are on now, when they last stopped (`None`:
/// never), and the current time.
pub fn wanted(load: Option<Load>, on: bool, stopped_at: Option<Instant>, now: Instant) -> bool {
    let rested = stopped_at.is_none_or(|t| now.saturating_duration_since(t) >= REENTER_AFTER);
    match load {
        None => on || rested,
        Some(Load {
            queued,
            live,
            workers,
        }) => {
            if on {
                live <= workers + workers.div_ceil(2)
            } else {
                queued == 0 && live <= workers && rested
            }
        }
    }
}

/// Whether a host that last read at `host_read_at` has gone quiet by `now`: only then does
/// the I/O thread look at the channels (reading them while the host keeps up would only take
/// replies from under it).
pub fn quiet(host_read_at: Instant, now: Instant) -> bool {
    now.saturating_duration_since(host_read_at) >= STALL
}

/// Whether a quiet host is stalled, given that the I/O thread just found replies it had not
/// read (`unread`).
pub fn stalled(host_read_at: Instant, now: Instant, unread: bool) -> bool {
    unread && quiet(host_read_at, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(queued: usize, live: usize, workers: usize) -> Option<Load> {
        Some(Load {
            queued,
            live,
            workers,
        })
    }

    #[test]
    fn several_jobs_per_worker_on_from_the_start_and_while_on() {
        let now = Instant::now();
        assert!(wanted(None, false, None, now));
        assert!(wanted(None, true, None, now));
        assert!(wanted(None, true, Some(now), now));
    }

    #[test]
    fn starts_again_no_sooner_than_the_reentry_delay_after_a_stop() {
        let stopped = Instant::now();
        for l in [None, load(0, 1, 2)] {
            assert!(!wanted(l, false, Some(stopped), stopped));
            let early = stopped + REENTER_AFTER - Duration::from_millis(1);
            assert!(!wanted(l, false, Some(stopped), early));
            assert!(wanted(l, false, Some(stopped), stopped + REENTER_AFTER));
            // A clock reading older than the stop counts as no time passed.
            assert!(!wanted(l, false, Some(stopped + REENTER_AFTER), stopped));
        }
    }

    #[test]
    fn one_job_per_worker_starts_only_with_nothing_queued_and_one_job_per_worker_at_most() {
        let now = Instant::now();
        assert!(wanted(load(0, 0, 2), false, None, now));
        assert!(wanted(load(0, 2, 2), false, None, now));
        assert!(!wanted(load(1, 3, 2), false, None, now));
        assert!(!wanted(load(0, 3, 2), false, None, now));
        // Queued jobs with idle slots (workers still starting) are load too.
        assert!(!wanted(load(1, 1, 2), false, None, now));
    }

    #[test]
    fn one_job_per_worker_stops_only_above_one_and_a_half_jobs_per_worker() {
        let now = Instant::now();
        assert!(wanted(load(1, 3, 2), true, None, now));
        assert!(!wanted(load(2, 4, 2), true, None, now));
        assert!(!wanted(load(0, 4, 2), true, None, now));
        assert!(wanted(load(0, 2, 1), true, None, now));
        assert!(!wanted(load(2, 3, 1), true, None, now));
        // 4 workers: starts up to 4 live, stops above 6; between the lines the state holds.
        for live in 5..=6 {
            assert!(wanted(load(live - 4, live, 4), true, None, now));
            assert!(!wanted(load(live - 4, live, 4), false, None, now));
        }
        assert!(!wanted(load(3, 7, 4), true, None, now));
        assert!(wanted(load(0, 4, 4), false, None, now));
    }

    #[test]
    fn stalled_only_with_unread_replies_past_the_stall_time() {
        let read = Instant::now();
        assert!(!quiet(read, read + STALL - Duration::from_micros(1)));
        assert!(quiet(read, read + STALL));
        assert!(
            !stalled(read, read + STALL, false),
            "nothing waited for the host"
        );
        assert!(!stalled(
            read,
            read + STALL - Duration::from_micros(1),
            true
        ));
        assert!(stalled(read, read + STALL, true));
        assert!(stalled(read, read + 10 * STALL, true));
        // A clock reading older than the host's last read counts as no time passed.
        assert!(!stalled(read + STALL, read, true));
    }
}
