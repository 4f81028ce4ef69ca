//! The outbox: every record the host must hear (results, failures, worker life events), kept
//! as JSON array texts of a bounded size, and the policies that decide when the host is woken
//! to take them and when the engine stops reading workers until it does.
//!
//! Sizes. A host such as Node turns a batch into one string, and a string has a longest length
//! (V8: 2^29 − 24 UTF-16 units): a batch is at most [`BATCH_BYTES`] (one record longer than
//! that crosses alone), and a job's result longer than the host can take
//! ([`EngineConfig::max_record`](super::EngineConfig::max_record)) fails that job with reason
//! `too_large` instead of killing the host. Memory. While the records waiting for the host
//! pass [`EngineConfig::max_waiting`](super::EngineConfig::max_waiting) bytes, the engine reads
//! no worker channel (a worker blocks on its full socket) until the host takes some: however
//! fast a worker writes, the outbox stays within that bound plus one read.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::session::Failure;
use crate::broadcast::Broadcasts;
use crate::scheduler::WorkerId;

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
    /// A job was written to a worker (tracing only). id = job; value = `[pid, wait seconds]`.
    pub const SENT: u8 = 15;
    /// `Lines`: a worker answered a job (tracing only), just before the job's RESULT, VOID or
    /// JOB_ERROR. id = job; value = its run time in seconds.
    pub const RAN: u8 = 16;
    /// `Lines`: a job's result with binary attachments (protocol version 3). id = job; value
    /// = `[n, v]`, `n` the number of attachments (the next `n` of the batch's
    /// [`Batch::bins`](super::Batch::bins)), `v` the reply's value with `{"$b":i}` for
    /// attachment `i`.
    pub const RESULT_BIN: u8 = 17;
    /// `Lines`: a broadcast is over: every worker it was written to acknowledged it or is no
    /// longer live. id = the broadcast; value = `[reached, [[pid, error], …]]`, the workers
    /// that acknowledged it and the errors of the handlers that failed.
    pub const BROADCAST: u8 = 18;
}

/// Longest a host wake is put off while queued jobs keep every worker busy.
pub(crate) const WAKE_DELAY: Duration = Duration::from_millis(1);
/// Records that wake the host even then.
pub(crate) const WAKE_BATCH: usize = 512;
/// Most bytes of one batch, unless a single record is longer (it then crosses alone).
pub const BATCH_BYTES: usize = 8 << 20;
/// The longest record value a host can take by default: V8's longest string, 2^29 − 24 UTF-16
/// units (a UTF-8 text has no more units than bytes), less room for the record's framing.
pub const DEFAULT_MAX_RECORD: usize = (1 << 29) - 24 - FRAMING;
/// Bytes of records waiting for the host above which the engine stops reading workers, by
/// default.
pub const DEFAULT_MAX_WAITING: usize = 32 << 20;
/// Most bytes a record adds to a batch besides its value: `[` or `,`, the kind, the id, two
/// commas, and the closing `]`.
const FRAMING: usize = 16;

/// Totals since the engine started.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Totals {
    pub completed: u64,
    pub errored: u64,
    pub failed: u64,
    pub rejected: u64,
    /// Worker exits by reason.
    pub exits: crate::metrics::Exits,
}

/// Records taken by the host in one go: `text` is one flat JSON array of `kind, id, value`
/// triples, so the host parses a batch with a single `JSON.parse` and no side arrays.
#[derive(Debug, Default)]
pub struct Batch {
    pub count: usize,
    pub text: String,
    /// The binary attachments of its RESULT_BIN records, in order.
    pub bins: Vec<Vec<u8>>,
}

pub(crate) struct Outbox {
    /// Records waiting, in every batch.
    pub count: usize,
    /// The batch being filled, and its records.
    text: String,
    open: usize,
    /// The attachments of the batch being filled, and their bytes.
    bins: Vec<Vec<u8>>,
    bin_bytes: usize,
    /// Batches filled up to [`BATCH_BYTES`], oldest first, and their bytes.
    full: VecDeque<Batch>,
    full_bytes: usize,
    /// The host has been woken (or is reading on its own thread) and has not taken every
    /// batch yet: no wake is due.
    pub woken: bool,
    pub totals: Totals,
    /// The longest record value the host can take; a longer job outcome fails the job with
    /// reason `too_large`, and any other longer record is dropped.
    pub max_record: usize,
    /// The broadcasts waiting for acks: their BROADCAST records are due here
    /// ([`Outbox::settle_broadcasts`]).
    pub broadcasts: Broadcasts,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new(DEFAULT_MAX_RECORD)
    }
}

impl Outbox {
    pub fn new(max_record: usize) -> Self {
        Outbox {
            count: 0,
            text: String::new(),
            open: 0,
            bins: Vec::new(),
            bin_bytes: 0,
            full: VecDeque::new(),
            full_bytes: 0,
            woken: false,
            totals: Totals::default(),
            max_record,
            broadcasts: Broadcasts::default(),
        }
    }

    /// Forgets the workers `live` says are gone from the broadcasts waiting, and records the
    /// broadcasts that wait for nobody any more.
    pub fn settle_broadcasts(&mut self, live: impl Fn(WorkerId) -> bool) {
        if self.broadcasts.is_empty() {
            return;
        }
        self.broadcasts.retain_live(live);
        for (id, reached, v) in self.broadcasts.take_done() {
            if v.len() > self.max_record {
                // Never dropped (its caller would wait for ever): the count, without the errors.
                let short = format!(
                    r#"[{reached},[[0,{{"message":"the errors of the message handlers are too long to report ({} bytes)"}}]]]"#,
                    v.len()
                );
                self.append(kind::BROADCAST, id, &short);
            } else {
                self.append(kind::BROADCAST, id, &v);
            }
        }
    }

    pub fn push(&mut self, kind: u8, id: u32, value: &str) {
        if value.len() > self.max_record {
            match kind {
                // A job's outcome the host could not hold: the job fails on its own.
                kind::RESULT | kind::VOID | kind::JOB_ERROR | kind::FAILED | kind::RESULT_BIN => {
                    let f = Failure::TooLarge {
                        bytes: value.len(),
                        limit: self.max_record,
                    };
                    // Short whatever the limit: never refused itself.
                    return self.append(kind::FAILED, id, &f.to_json());
                }
                // Anything else (an event, progress, a stray reply): not delivered.
                _ => return,
            }
        }
        self.append(kind, id, value);
    }

    /// A RESULT_BIN record: `value` the reply's value, `bins` its attachments.
    pub fn push_bin(&mut self, kind: u8, id: u32, value: &str, bins: Vec<Vec<u8>>) {
        let text = format!("[{},{value}]", bins.len());
        if text.len() > self.max_record {
            return self.push(kind, id, &text);
        }
        self.append(kind, id, &text);
        self.bin_bytes += bins.iter().map(Vec::len).sum::<usize>();
        self.bins.extend(bins);
    }

    fn append(&mut self, kind: u8, id: u32, value: &str) {
        match kind {
            kind::RESULT | kind::VOID | kind::RESULT_BIN => self.totals.completed += 1,
            kind::JOB_ERROR => self.totals.errored += 1,
            kind::FAILED => self.totals.failed += 1,
            _ => {}
        }
        if !self.text.is_empty() && self.text.len() + value.len() + FRAMING > BATCH_BYTES {
            self.seal();
        }
        use std::fmt::Write;
        self.text.push(if self.text.is_empty() { '[' } else { ',' });
        let _ = write!(self.text, "{kind},{id},");
        self.text.push_str(value);
        self.open += 1;
        self.count += 1;
    }

    /// Closes the batch being filled; the next record starts a new one.
    fn seal(&mut self) {
        let mut text = std::mem::take(&mut self.text);
        text.push(']');
        self.full_bytes += text.len() + std::mem::take(&mut self.bin_bytes);
        self.full.push_back(Batch {
            count: std::mem::take(&mut self.open),
            text,
            bins: std::mem::take(&mut self.bins),
        });
    }

    /// The oldest batch: at most [`BATCH_BYTES`], unless it is one longer record. The host
    /// takes until `None` (it stays woken while batches are left).
    pub fn take(&mut self) -> Option<Batch> {
        let batch = match self.full.pop_front() {
            Some(b) => {
                self.full_bytes -= b.text.len() + b.bins.iter().map(Vec::len).sum::<usize>();
                b
            }
            None if self.open > 0 => {
                // The next batch starts from a buffer of the same size, not from empty (unless
                // one long record made it large).
                let cap = self.text.capacity().min(BATCH_BYTES);
                let mut text = std::mem::replace(&mut self.text, String::with_capacity(cap));
                text.push(']');
                self.bin_bytes = 0;
                Batch {
                    count: std::mem::take(&mut self.open),
                    text,
                    bins: std::mem::take(&mut self.bins),
                }
            }
            None => {
                self.woken = false;
                return None;
            }
        };
        self.count -= batch.count;
        self.woken = self.count > 0;
        Some(batch)
    }

    /// Bytes of the records waiting for the host: the length of the batches `take` would
    /// hand over.
    pub fn bytes(&self) -> usize {
        self.full_bytes + self.text.len() + self.bin_bytes + usize::from(self.open > 0)
    }
}

/// Whether the engine must stop reading workers: the records waiting for the host passed
/// `max_waiting` bytes. It reads again once the host's takes bring them back within it.
pub(crate) fn reads_paused(outbox: &Outbox, max_waiting: usize) -> bool {
    outbox.bytes() > max_waiting
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
    fn a_batch_is_bounded_in_bytes_and_one_long_record_crosses_alone() {
        // Issue 15, point 2: twelve 50 MB results crossed as one string over V8's limit.
        let mut ob = Outbox::default();
        let big = format!("\"{}\"", "x".repeat(BATCH_BYTES / 3));
        let huge = format!("\"{}\"", "y".repeat(BATCH_BYTES * 2));
        for id in 1..=4 {
            ob.push(kind::RESULT, id, &big);
        }
        ob.push(kind::RESULT, 5, &huge);
        ob.push(kind::RESULT, 6, "6");
        assert_eq!(ob.count, 6);
        let mut ids = Vec::new();
        let mut waiting = ob.bytes();
        while let Some(b) = ob.take() {
            assert!(
                b.text.len() <= BATCH_BYTES || b.count == 1,
                "{}",
                b.text.len()
            );
            let v: Vec<serde_json::Value> = serde_json::from_str(&b.text).unwrap();
            assert_eq!(v.len(), 3 * b.count);
            ids.push(
                v.chunks(3)
                    .map(|r| r[1].as_u64().unwrap())
                    .collect::<Vec<_>>(),
            );
            waiting -= b.text.len();
            assert_eq!(ob.bytes(), waiting);
            // Woken while batches are left: the host takes until None.
            assert_eq!(ob.woken, ob.count > 0);
        }
        assert_eq!(ids, vec![vec![1, 2], vec![3, 4], vec![5], vec![6]]);
        assert_eq!((ob.count, ob.bytes()), (0, 0));
        assert_eq!(ob.totals.completed, 6);
    }

    #[test]
    fn an_outcome_too_long_for_the_host_fails_its_job_and_other_records_are_dropped() {
        let mut ob = Outbox::new(10);
        ob.push(kind::RESULT, 1, "\"123456789\"");
        ob.push(kind::JOB_ERROR, 2, r#"{"message":"0123456789"}"#);
        ob.push(kind::EVENT, 77, r#"{"t":"event","name":"big"}"#);
        ob.push(kind::PROGRESS, 3, "12345678901");
        ob.push(kind::RESULT, 3, "12345678");
        let b = ob.take().unwrap();
        assert_eq!(
            b.text,
            concat!(
                r#"[1,1,{"reason":"too_large","bytes":11,"limit":10},"#,
                r#"1,2,{"reason":"too_large","bytes":24,"limit":10},0,3,12345678]"#
            )
        );
        assert_eq!((ob.totals.completed, ob.totals.failed), (1, 2));
    }

    #[test]
    fn reads_pause_while_the_waiting_records_pass_the_bound_and_resume_as_the_host_takes() {
        // Issue 15, point 7: a chatty worker was read into an unbounded outbox.
        let mut ob = Outbox::default();
        let event = format!(
            r#"{{"t":"event","name":"e","data":"{}"}}"#,
            "z".repeat(1000)
        );
        let limit = 3 * BATCH_BYTES;
        let mut pushed = 0;
        // The engine reads while not paused: one read's records at a time.
        while !reads_paused(&ob, limit) {
            for _ in 0..64 {
                ob.push(kind::EVENT, 9, &event);
                pushed += 1;
            }
        }
        assert!(ob.bytes() <= limit + 64 * (event.len() + FRAMING));
        // Each take brings the waiting bytes down; reads resume once within the bound.
        let mut taken = 0;
        while reads_paused(&ob, limit) {
            taken += ob.take().unwrap().count;
        }
        assert!(ob.bytes() <= limit);
        while let Some(b) = ob.take() {
            taken += b.count;
        }
        assert_eq!(taken, pushed, "nothing lost");
    }

    #[test]
    fn binary_results_carry_their_attachments_in_the_batch_and_count_as_waiting_bytes() {
        let mut ob = Outbox::default();
        ob.push(kind::RESULT, 1, "1");
        ob.push_bin(kind::RESULT_BIN, 2, r#"{"$b":0}"#, vec![vec![7; 100]]);
        ob.push_bin(
            kind::RESULT_BIN,
            3,
            r#"[{"$b":1},{"$b":0}]"#,
            vec![vec![1], vec![]],
        );
        assert_eq!(ob.bytes(), ob.text.len() + 1 + 101);
        let b = ob.take().unwrap();
        assert_eq!(
            b.text,
            r#"[0,1,1,17,2,[1,{"$b":0}],17,3,[2,[{"$b":1},{"$b":0}]]]"#
        );
        assert_eq!(b.bins, vec![vec![7; 100], vec![1], vec![]]);
        assert_eq!((ob.bytes(), ob.totals.completed), (0, 3));
        // Sealed batches keep theirs.
        let big = vec![0; BATCH_BYTES];
        ob.push_bin(kind::RESULT_BIN, 4, "1", vec![big]);
        ob.push(kind::RESULT, 5, &format!("\"{}\"", "x".repeat(BATCH_BYTES)));
        // `[17,4,[1,1]]` and the bytes, then `[0,5,"x…"` and its closing `]`.
        assert_eq!(ob.bytes(), 12 + BATCH_BYTES + 5 + BATCH_BYTES + 2 + 1);
        let b = ob.take().unwrap();
        assert_eq!((b.count, b.bins.len()), (1, 1));
        let b = ob.take().unwrap();
        assert_eq!((b.count, b.bins.len()), (1, 0));
        assert_eq!(ob.bytes(), 0);
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
