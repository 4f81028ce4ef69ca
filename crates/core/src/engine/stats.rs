//! `pool.stats()`: a snapshot of the workers, the queue, totals and percentiles, as JSON.

use std::time::Instant;

use super::cycle::lock;
use super::Engine;
use crate::scheduler::{Samples, SlotInfo, WorkerState};
use crate::spawn;

impl Engine {
    /// A snapshot for `pool.stats()`, as JSON text.
    pub fn stats_json(&self) -> String {
        let st = lock(&self.shared.state);
        let mut workers = Vec::new();
        for (w, conn) in &st.conns {
            let info = st.sched.slot(*w);
            let state = worker_state(info.as_ref());
            workers.push(serde_json::json!({
                "pid": conn.peer.pid,
                "state": state,
                "jobsDone": info.as_ref().map_or(0, |i| i.done),
                "jobsInFlight": info.as_ref().map_or(0, |i| i.inflight),
                "rss": spawn::rss_bytes(conn.peer.pid),
                "cpu": conn.cpu,
            }));
        }
        workers.sort_by_key(|w| w["pid"].as_i64());
        let ss = st.sched.stats();
        let pct = |s: &Samples| {
            s.percentiles(&[50.0, 90.0, 99.0]).map(|v| {
                serde_json::json!({
                    "p50": v[0] * 1000.0, "p90": v[1] * 1000.0, "p99": v[2] * 1000.0,
                    "samples": s.len(),
                })
            })
        };
        let t = st.outbox.totals;
        serde_json::json!({
            "workers": workers,
            "queued": st.sched.queued(),
            "inFlight": st.sched.live_jobs() - st.sched.queued(),
            "completed": t.completed,
            "errored": t.errored,
            "failed": t.failed,
            "retried": ss.retried,
            "rejected": t.rejected,
            "throughput": ss.throughput(st.sched.uptime_at(Instant::now())),
            "waitTime": pct(&ss.wait),
            "runTime": pct(&ss.run),
        })
        .to_string()
    }
}

/// A worker's state as `stats()` and `metrics()` name it.
pub(super) fn worker_state(info: Option<&SlotInfo>) -> &'static str {
    match info.map(|i| i.state) {
        Some(WorkerState::Spawning) => "starting",
        Some(WorkerState::Ready) if info.is_some_and(|i| i.inflight > 0) => "busy",
        Some(WorkerState::Ready) => "idle",
        Some(WorkerState::Closing) | None => "stopping",
    }
}
