//! When a host on an event loop should read the worker channels itself ("direct reads",
//! [`Engine::set_direct`](crate::engine::Engine::set_direct)) rather than leave them to the
//! engine's I/O thread, and when the I/O thread takes them back.
//!
//! A direct read saves a thread wake-up per reply: the worker wakes the host's thread only, as
//! Node's own IPC does, instead of the I/O thread and then the host. That pays at every load
//! (measured on 2 cores, 2 workers, closed loops of 20 to 64 callers: 15-30% more jobs/s than
//! with the I/O thread reading), so the host reads whenever it is responsive. The risk is a
//! host busy with its own work: a worker's reply then waits, and the worker's next queued job
//! with it. So while jobs are queued the I/O thread checks every [`STALL`]: a host that has not
//! read for that long, with replies waiting, is *stalled*; the I/O thread reads them, hands the
//! worker its next job, and keeps reading from then on. The host starts reading again no
//! sooner than [`REENTER_AFTER`] later, so a host that stalls often spends most of its time
//! with the I/O thread reading.

use std::time::{Duration, Instant};

/// How long the host may go without reading, while jobs are queued and replies wait, before the
/// I/O thread takes the reads back. Also how often it checks: each check wakes the I/O thread,
/// which costs the host's throughput a few per cent at 250 checks a second on 2 cores (4 ms),
/// about nothing measurable at 100.
pub const STALL: Duration = Duration::from_millis(10);

/// After direct reads stopped, how long before they may start again.
pub const REENTER_AFTER: Duration = Duration::from_millis(100);

/// Whether direct reads should be on, given whether they are on now, when they last stopped
/// (`None`: never), and the current time.
pub fn wanted(on: bool, stopped_at: Option<Instant>, now: Instant) -> bool {
    on || stopped_at.is_none_or(|t| now.saturating_duration_since(t) >= REENTER_AFTER)
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

    #[test]
    fn on_from_the_start_and_while_on() {
        let now = Instant::now();
        assert!(wanted(false, None, now));
        assert!(wanted(true, None, now));
        assert!(wanted(true, Some(now), now));
    }

    #[test]
    fn starts_again_no_sooner_than_the_reentry_delay_after_a_stop() {
        let stopped = Instant::now();
        assert!(!wanted(false, Some(stopped), stopped));
        let early = stopped + REENTER_AFTER - Duration::from_millis(1);
        assert!(!wanted(false, Some(stopped), early));
        assert!(wanted(false, Some(stopped), stopped + REENTER_AFTER));
        // A clock reading older than the stop counts as no time passed.
        assert!(!wanted(false, Some(stopped + REENTER_AFTER), stopped));
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
