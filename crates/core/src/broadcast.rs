//! Broadcasts (`pool.broadcast(message)`): one message written to every live worker, settled
//! once each of them has acknowledged it or stopped being live. No I/O: the engine writes the
//! `message` lines, feeds the acks in, and says which workers are still live.
//!
//! The rule:
//! - the workers a broadcast waits for are those live when it starts (a worker started later
//!   never gets it);
//! - an ack counts its worker as reached, whether or not its handler failed (a failure is kept
//!   with the worker's pid, for the host to report);
//! - a worker that stops being live before it acked (it died, was retired, or is being
//!   stopped) is not waited for and not counted;
//! - an ack for a broadcast that is over, that does not wait for that worker, or that the
//!   worker acked already, changes nothing;
//! - a broadcast is done once it waits for no worker (at once, with none live).

use std::collections::HashSet;

use crate::scheduler::WorkerId;

/// One broadcast still waiting for acks.
#[derive(Debug)]
struct Open {
    id: u32,
    pending: HashSet<WorkerId>,
    reached: u32,
    /// `(pid, error JSON)` of each worker whose handler failed.
    errors: Vec<(i32, String)>,
}

/// The broadcasts in progress.
#[derive(Debug, Default)]
pub struct Broadcasts {
    open: Vec<Open>,
}

impl Broadcasts {
    /// Whether no broadcast waits.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Broadcast `id` was written to `workers`.
    pub fn start(&mut self, id: u32, workers: impl IntoIterator<Item = WorkerId>) {
        self.open.push(Open {
            id,
            pending: workers.into_iter().collect(),
            reached: 0,
            errors: Vec::new(),
        });
    }

    /// Worker `w` (process `pid`) acknowledged broadcast `id`; `error`: its handler's error
    /// object (JSON text), when it failed. Returns whether the ack counted.
    pub fn ack(&mut self, id: u32, w: WorkerId, pid: i32, error: Option<&str>) -> bool {
        let Some(b) = self.open.iter_mut().find(|b| b.id == id) else {
            return false;
        };
        if !b.pending.remove(&w) {
            return false;
        }
        b.reached += 1;
        if let Some(e) = error {
            b.errors.push((pid, e.to_owned()));
        }
        true
    }

    /// Forgets, in every broadcast, the workers `live` says are no longer live.
    pub fn retain_live(&mut self, live: impl Fn(WorkerId) -> bool) {
        for b in &mut self.open {
            b.pending.retain(|w| live(*w));
        }
    }

    /// Takes the broadcasts that wait for no worker any more, each as its id, the workers it
    /// reached, and the value of its record: `[reached, [[pid, error], …]]`.
    pub fn take_done(&mut self) -> Vec<(u32, u32, String)> {
        let mut done = Vec::new();
        self.open.retain_mut(|b| {
            if !b.pending.is_empty() {
                return true;
            }
            let mut v = format!("[{},[", b.reached);
            for (i, (pid, e)) in b.errors.iter().enumerate() {
                if i > 0 {
                    v.push(',');
                }
                v.push_str(&format!("[{pid},{e}]"));
            }
            v.push_str("]]");
            done.push((b.id, b.reached, v));
            false
        });
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_once_every_worker_acked_counting_each_once() {
        let mut b = Broadcasts::default();
        b.start(1, [10, 11, 12]);
        assert!(b.ack(1, 10, 100, None));
        assert!(!b.ack(1, 10, 100, None), "a second ack does not count");
        assert!(b.ack(1, 11, 101, None));
        assert!(b.take_done().is_empty());
        assert!(b.ack(1, 12, 102, None));
        assert_eq!(b.take_done(), [(1, 3, "[3,[]]".to_string())]);
        assert!(b.is_empty());
        assert!(
            !b.ack(1, 12, 102, None),
            "an ack after the end changes nothing"
        );
    }

    #[test]
    fn a_worker_gone_before_its_ack_is_not_waited_for_nor_counted() {
        let mut b = Broadcasts::default();
        b.start(7, [1, 2, 3]);
        assert!(b.ack(7, 1, 41, None));
        // Worker 2 died (or was retired) before it acked.
        b.retain_live(|w| w != 2);
        assert!(b.take_done().is_empty());
        assert!(!b.ack(7, 2, 42, None), "its late ack does not count");
        assert!(b.ack(7, 3, 43, None));
        assert_eq!(b.take_done(), [(7, 2, "[2,[]]".to_string())]);
    }

    #[test]
    fn no_live_worker_is_done_at_once_with_zero() {
        let mut b = Broadcasts::default();
        b.start(3, []);
        assert_eq!(b.take_done(), [(3, 0, "[0,[]]".to_string())]);
        // Every worker gone: done with what was reached.
        b.start(4, [1, 2]);
        b.retain_live(|_| false);
        assert_eq!(b.take_done(), [(4, 0, "[0,[]]".to_string())]);
    }

    #[test]
    fn a_failed_handler_counts_as_reached_and_its_error_is_kept() {
        let mut b = Broadcasts::default();
        b.start(5, [1, 2]);
        assert!(b.ack(5, 1, 11, Some(r#"{"message":"bad"}"#)));
        assert!(b.ack(5, 2, 12, None));
        assert_eq!(
            b.take_done(),
            [(5, 2, r#"[2,[[11,{"message":"bad"}]]]"#.to_string())]
        );
    }

    #[test]
    fn broadcasts_are_independent_and_acks_name_theirs() {
        let mut b = Broadcasts::default();
        b.start(1, [1, 2]);
        // Worker 3 started after broadcast 1: only broadcast 2 waits for it.
        b.start(2, [1, 2, 3]);
        assert!(!b.ack(1, 3, 33, None));
        assert!(!b.ack(9, 1, 31, None), "an unknown broadcast");
        for w in [1, 2] {
            assert!(b.ack(2, w, 30 + w as i32, None));
        }
        assert!(b.take_done().is_empty());
        b.ack(1, 1, 31, None);
        b.ack(1, 2, 32, None);
        assert_eq!(b.take_done(), [(1, 2, "[2,[]]".to_string())]);
        b.ack(2, 3, 33, None);
        assert_eq!(b.take_done(), [(2, 3, "[3,[]]".to_string())]);
    }
}
