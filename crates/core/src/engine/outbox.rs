//! The outbox: every record the host must hear (results, failures, worker life events), kept
//! as one JSON array text, and the policy that decides when the host is woken to take it.

use std::time::{Duration, Instant};

/// Record kinds in a [`Batch`]: each record is `kind, id, value` in the batch's JSON array.
pub mod kind {
    /// A job's result. id = job; value = the worker's reply, verbatim.
    pub const RESULT: u8 = 0;
    /// A job failed without a reply. id = job; value = a [`Failure`](super::super::Failure).
    pub const FAILED: u8 = 1;
    /// A worker started. id = pid; value = `[workers, max_workers]`.
    pub const SPAWNED: u8 = 2;
    /// A worker exited. id = pid; value = `{"code", "signal", "expected"}`.
    pub const EXITED: u8 = 3;
    /// A reply with no job in flight, dropped. id = pid; value = the message.
    pub const STRAY: u8 = 4;
    /// A job was written to a worker (debug only). id = job; value = pid.
    pub const DISPATCHED: u8 = 5;
    /// A worker replied (debug only). id = pid; value = service time in seconds.
    pub const COMPLETED: u8 = 6;
    /// A worker broke the protocol and is being killed. id = pid; value = message.
    pub const PROTOCOL_ERROR: u8 = 7;
    /// A worker could not be started. id = 0; value = message.
    pub const SPAWN_FAILED: u8 = 8;
    /// After `shutdown`, every worker has exited. id = 0; value = null.
    pub const ALL_EXITED: u8 = 9;
    /// [`Protocol::Lines`](super::super::Protocol::Lines): a job returned nothing
    /// (`undefined`). id = job; value = null.
    pub const VOID: u8 = 10;
    /// `Lines`: a job's function failed. id = job; value = the worker's error object.
    pub const JOB_ERROR: u8 = 11;
    /// `Lines`: a worker event. id = pid; value = the whole message
    /// (`{"t":"event","name":…,"data":…}`).
    pub const EVENT: u8 = 12;
    /// `Lines`: progress of a job in flight. id = job; value = the progress value.
    pub const PROGRESS: u8 = 13;
    /// A worker is retiring. id = pid; value = null (it asked), or `"rss"` (over `max_rss`).
    pub const RETIRING: u8 = 14;
}

/// Longest a host wake is put off while queued jobs keep every worker busy.
pub(crate) const WAKE_DELAY: Duration = Duration::from_millis(1);
/// Records that wake the host even then.
pub(crate) const WAKE_BATCH: usize = 512;

/// Totals since the engine started.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Totals {
    pub completed: u64,
    pub errored: u64,
    pub failed: u64,
    pub rejected: u64,
}

/// Records taken by the host in one go: `text` is one flat JSON array of `kind, id, value`
/// triples, so the host parses a batch with a single `JSON.parse` and no side arrays.
#[derive(Debug, Default)]
pub struct Batch {
    pub count: usize,
    pub text: String,
}

#[derive(Default)]
pub(crate) struct Outbox {
    pub count: usize,
    text: String,
    /// The host has been woken (or is reading on its own thread) and has not taken the batch
    /// yet: no wake is due.
    pub woken: bool,
    pub totals: Totals,
}

impl Outbox {
    pub fn push(&mut self, kind: u8, id: u32, value: &str) {
        match kind {
            kind::RESULT | kind::VOID => self.totals.completed += 1,
            kind::JOB_ERROR => self.totals.errored += 1,
            kind::FAILED => self.totals.failed += 1,
            _ => {}
        }
        use std::fmt::Write;
        self.text.push(if self.text.is_empty() { '[' } else { ',' });
        let _ = write!(self.text, "{kind},{id},");
        self.text.push_str(value);
        self.count += 1;
    }

    /// Everything recorded since the last take, as one batch.
    pub fn take(&mut self) -> Option<Batch> {
        self.woken = false;
        if self.count == 0 {
            return None;
        }
        // The next batch starts from a buffer of the same size, not from empty.
        let cap = self.text.capacity();
        let mut text = std::mem::replace(&mut self.text, String::with_capacity(cap));
        text.push(']');
        Some(Batch {
            count: std::mem::take(&mut self.count),
            text,
        })
    }
}

/// Whether to wake the host now, and when to at the latest if not (`wake_at`, kept across
/// updates). Nothing waiting, or a wake already given: no deadline either, or the housekeeper
/// would keep waking for a batch the host has already taken.
pub(crate) fn wake_now(
    outbox: &Outbox,
    queued: usize,
    slots: usize,
    wake_at: Option<Instant>,
    now: Instant,
) -> (bool, Option<Instant>) {
    if outbox.count == 0 || outbox.woken {
        return (false, None);
    }
    match wake_at {
        Some(at) if now >= at => (true, None),
        _ if wake_may_wait(queued, slots, outbox.count) => {
            (false, Some(wake_at.unwrap_or(now + WAKE_DELAY)))
        }
        _ => (true, None),
    }
}

/// Whether the host's wake for `records` waiting records may be put off (by up to
/// `WAKE_DELAY`). Each wake costs the host a callback (tens of µs in Node), so while the queue
/// keeps every worker slot busy without the host, records gather and cross in one batch. The
/// queue must also outlast the wait: a host that answers each result with a new job (a closed
/// loop) refills it only when woken, so the wake comes before the results waiting outnumber
/// half of what is queued beyond the slots. An idle or shallow queue wakes the host at once, so
/// latency is untouched.
pub(crate) fn wake_may_wait(queued: usize, slots: usize, records: usize) -> bool {
    records < WAKE_BATCH && queued >= slots + 2 * records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_waits_only_while_the_queue_outlasts_it() {
        // Idle pool, or a queue no deeper than the worker slots: at once.
        assert!(!wake_may_wait(0, 2, 1));
        assert!(!wake_may_wait(2, 2, 1));
        // 62 queued over 2 slots (64 callers): records gather until 30 wait.
        assert!(wake_may_wait(62, 2, 1));
        assert!(wake_may_wait(62, 2, 30));
        assert!(!wake_may_wait(62, 2, 31));
        // However deep the queue, a full batch goes at once.
        assert!(wake_may_wait(1 << 20, 64, WAKE_BATCH - 1));
        assert!(!wake_may_wait(1 << 20, 64, WAKE_BATCH));
    }

    #[test]
    fn a_put_off_wake_comes_by_its_deadline_and_is_dropped_once_nothing_waits() {
        let t0 = Instant::now();
        let mut ob = Outbox::default();
        // Nothing waiting: no wake, no deadline (an old one is dropped).
        assert_eq!(wake_now(&ob, 100, 2, Some(t0), t0), (false, None));
        ob.push(kind::RESULT, 1, "1");
        // Deep queue: put off until WAKE_DELAY from now, and not moved by later records.
        assert_eq!(
            wake_now(&ob, 100, 2, None, t0),
            (false, Some(t0 + WAKE_DELAY))
        );
        let later = t0 + WAKE_DELAY / 2;
        assert_eq!(
            wake_now(&ob, 100, 2, Some(t0 + WAKE_DELAY), later),
            (false, Some(t0 + WAKE_DELAY))
        );
        // The deadline passes: wake.
        assert_eq!(
            wake_now(&ob, 100, 2, Some(t0), t0 + WAKE_DELAY),
            (true, None)
        );
        // A shallow queue: at once.
        assert_eq!(wake_now(&ob, 1, 2, None, t0), (true, None));
        // Already woken (the host will take the batch): no deadline kept.
        ob.woken = true;
        assert_eq!(wake_now(&ob, 100, 2, Some(t0), t0), (false, None));
    }

    #[test]
    fn a_batch_is_one_flat_array_and_counts_outcomes() {
        let mut ob = Outbox::default();
        assert!(ob.take().is_none());
        ob.push(kind::RESULT, 7, "\"a\"");
        ob.push(kind::FAILED, 8, r#"{"reason":"closed"}"#);
        ob.push(kind::SPAWNED, 123, "[1,2]");
        let b = ob.take().unwrap();
        assert_eq!(b.count, 3);
        assert_eq!(b.text, r#"[0,7,"a",1,8,{"reason":"closed"},2,123,[1,2]]"#);
        assert_eq!((ob.totals.completed, ob.totals.failed), (1, 1));
        assert!(ob.take().is_none());
    }
}
