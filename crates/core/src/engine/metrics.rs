//! `pool.metrics()`: the engine's counters as JSON, which the host renders as Prometheus text
//! (it adds the counts only it knows: aborts, rejections before submission, per-function
//! outcomes).

use serde_json::{json, Value};

use super::cycle::lock;
use super::stats::worker_state;
use super::Engine;
use crate::metrics::{Histogram, BUCKETS};

impl Engine {
    /// Counters since the start, gauges now, and the wait/run histograms, as JSON text:
    /// `{"queued", "inFlight", "workers": {state: n}, "completed", "errored", "failed",
    /// "rejected", "retried", "exits": {reason: n}, "buckets": [le...], "wait", "run"}`, each
    /// histogram `{"counts": [cumulative per bucket, +Inf last], "sum"}`.
    pub fn metrics_json(&self) -> String {
        let st = lock(&self.shared.state);
        let mut workers = serde_json::Map::new();
        for s in ["starting", "idle", "busy", "stopping"] {
            workers.insert(s.into(), json!(0));
        }
        for w in st.conns.keys() {
            let state = worker_state(st.sched.slot(*w).as_ref());
            if let Some(Value::Number(n)) = workers.get_mut(state) {
                *n = (n.as_u64().unwrap_or(0) + 1).into();
            }
        }
        let t = st.outbox.totals;
        let exits: serde_json::Map<String, Value> = t
            .exits
            .iter()
            .map(|(r, n)| (r.as_str().to_string(), json!(n)))
            .collect();
        let ss = st.sched.stats();
        let hist = |h: &Histogram| json!({ "counts": h.cumulative().to_vec(), "sum": h.sum() });
        json!({
            "queued": st.sched.queued(),
            "inFlight": st.sched.live_jobs() - st.sched.queued(),
            "workers": workers,
            "completed": t.completed,
            "errored": t.errored,
            "failed": t.failed,
            "rejected": t.rejected,
            "retried": ss.retried,
            "exits": exits,
            "buckets": BUCKETS.to_vec(),
            "wait": hist(&ss.wait.histogram()),
            "run": hist(&ss.run.histogram()),
        })
        .to_string()
    }
}
