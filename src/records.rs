//! The numbers the engine hands to JS: record kinds (in `take()`'s triples) and rejection
//! reasons (in `submit()`'s triples), as enums so that `binding.d.ts` carries them and JS
//! need not copy them.

use comrade_core::engine::{kind, Rejection};
use comrade_core::scheduler::Reject;
use napi_derive::napi;

/// The kind of a record from `take()`: the first of each `kind, id, value` triple. See
/// `comrade_core::engine::kind` for what id and value hold.
#[napi]
pub enum RecordKind {
    Result = 0,
    Failed = 1,
    Spawned = 2,
    Exited = 3,
    Stray = 4,
    Dispatched = 5,
    Completed = 6,
    ProtocolError = 7,
    SpawnFailed = 8,
    AllExited = 9,
    Void = 10,
    JobError = 11,
    Event = 12,
    Progress = 13,
    Retiring = 14,
    Sent = 15,
    Ran = 16,
    ResultBin = 17,
    Broadcast = 18,
}

// #[napi] enums take literal values only: these tie each to the engine's number, so a mismatch
// does not compile.
const _: () = {
    assert!(RecordKind::Result as u8 == kind::RESULT);
    assert!(RecordKind::Failed as u8 == kind::FAILED);
    assert!(RecordKind::Spawned as u8 == kind::SPAWNED);
    assert!(RecordKind::Exited as u8 == kind::EXITED);
    assert!(RecordKind::Stray as u8 == kind::STRAY);
    assert!(RecordKind::Dispatched as u8 == kind::DISPATCHED);
    assert!(RecordKind::Completed as u8 == kind::COMPLETED);
    assert!(RecordKind::ProtocolError as u8 == kind::PROTOCOL_ERROR);
    assert!(RecordKind::SpawnFailed as u8 == kind::SPAWN_FAILED);
    assert!(RecordKind::AllExited as u8 == kind::ALL_EXITED);
    assert!(RecordKind::Void as u8 == kind::VOID);
    assert!(RecordKind::JobError as u8 == kind::JOB_ERROR);
    assert!(RecordKind::Event as u8 == kind::EVENT);
    assert!(RecordKind::Progress as u8 == kind::PROGRESS);
    assert!(RecordKind::Retiring as u8 == kind::RETIRING);
    assert!(RecordKind::Sent as u8 == kind::SENT);
    assert!(RecordKind::Ran as u8 == kind::RAN);
    assert!(RecordKind::ResultBin as u8 == kind::RESULT_BIN);
    assert!(RecordKind::Broadcast as u8 == kind::BROADCAST);
};

/// Why `submit()` refused a job: the second of each `index, reason, value` triple.
#[napi]
pub enum RejectReason {
    /// The pool is closing or closed. Value 0.
    Closed = 0,
    /// The queue is full. Value: `maxBacklog`.
    Backlog = 1,
    /// The job would complete too late. Value: the expected time, in seconds.
    Duration = 2,
}

impl RejectReason {
    /// The reason and its value (see the variants).
    fn of(reject: &Reject) -> (Self, f64) {
        match *reject {
            Reject::Closed => (RejectReason::Closed, 0.0),
            Reject::Backlog(limit) => (RejectReason::Backlog, limit as f64),
            Reject::Duration(secs) => (RejectReason::Duration, secs),
        }
    }
}

/// Refused jobs as flat `[index, reason, value, …]` triples.
pub fn rejections(rejected: Vec<Rejection>) -> Vec<f64> {
    let mut out = Vec::with_capacity(rejected.len() * 3);
    for r in rejected {
        let (reason, value) = RejectReason::of(&r.reason);
        out.extend_from_slice(&[r.index as f64, reason as u8 as f64, value]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_flat_triples_with_the_js_reason_numbers() {
        let rejected = vec![
            Rejection {
                index: 0,
                reason: Reject::Closed,
            },
            Rejection {
                index: 3,
                reason: Reject::Backlog(20),
            },
            Rejection {
                index: 7,
                reason: Reject::Duration(2.5),
            },
        ];
        assert_eq!(
            rejections(rejected),
            [0.0, 0.0, 0.0, 3.0, 1.0, 20.0, 7.0, 2.0, 2.5]
        );
    }
}
