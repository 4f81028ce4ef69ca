//! The engine: owns a scheduler, the worker processes and their channels, and carries out the
//! scheduler's actions. Channels are read on one I/O thread (a tokio runtime), or, while the
//! host asks for it (while it keeps up), by the host itself ([`Engine::set_direct`]); jobs are
//! written from whichever thread made them sendable (the submitting thread, or the reader that
//! just freed a worker), so a reply is followed by the next job's write without a trip
//! through JS.
//!
//! Everything the host must hear (results, failures, worker life events) is appended to an
//! outbox as one JSON array text; the host is woken once when the outbox goes from empty to
//! non-empty (or, under a deep queue, up to a millisecond later) and takes the whole batch.
//!
//! By concern:
//! - [`cycle`]: the lock → act → flush → wake cycle every event goes through, and the I/O thread;
//! - [`session`]: what a worker's lines and its end mean (no I/O), and the typed [`Failure`];
//! - [`lifecycle`]: carrying out the scheduler's actions (spawn, send, stop), reads, exits,
//!   time-driven work;
//! - [`outbox`]: the records for the host and when to wake it;
//! - [`io`]: a worker as a connection ([`Link`]), socket reads and writes;
//! - [`direct`]: the host reading channels on its own thread;
//! - [`stats`]: the `stats()` snapshot;
//! - [`metrics`]: the counters behind `metrics()`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::scheduler::{Cancelled, JobId, JobOpts, Reject, SchedConfig, Scheduler, StopReason};
use crate::spawn::SpawnSpec;

mod cycle;
mod direct;
mod io;
mod lifecycle;
mod metrics;
mod outbox;
mod session;
#[cfg(any(test, feature = "fuzzing"))]
mod session_props;
mod stats;

pub use cycle::{kill_all_workers, kill_env_workers, set_thread_env};
pub use io::Link;
pub use outbox::{kind, Batch, BATCH_BYTES, DEFAULT_MAX_RECORD, DEFAULT_MAX_WAITING};
pub use session::Failure;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use session_props::fuzz_session;

use cycle::{housekeeper, lock, runtime, Shared, State};
use outbox::reads_paused;
use session::{call_frame, traced_call_frame};

/// Longest message accepted from a worker (and longest job arguments), by default.
pub const DEFAULT_MAX_MESSAGE: usize = comrade_protocol::DEFAULT_MAX_MESSAGE;
/// Time between SIGTERM and SIGKILL when a worker is stopped, by default.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// Time a worker has to answer a cancelled job before it is killed, by default.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(1);

/// How the engine talks to its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Node's IPC channel (json mode), one job at a time per worker: each message from the
    /// worker completes its job. This is compute-cluster's contract. With
    /// [`EngineConfig::ipc_envelope`], jobs and replies travel in the envelopes of comrade's
    /// preload (`lib/compute-cluster-worker.js`), which carry the job's id (see `frame.rs`).
    NodeIpc,
    /// comrade's own protocol (docs/PROTOCOL.md): JSON lines with a type and a job id, so a
    /// worker may hold several jobs and answer in any order.
    Lines,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub sched: SchedConfig,
    pub spawn: SpawnSpec,
    pub protocol: Protocol,
    /// Longest message accepted from a worker, in bytes.
    pub max_message: usize,
    /// Longest record value the host can take, in bytes: a job whose result (or error) is
    /// longer fails with reason `too_large`. Default [`DEFAULT_MAX_RECORD`] (V8's longest
    /// string).
    pub max_record: usize,
    /// Bytes of records waiting for the host above which no worker channel is read until the
    /// host takes some (backpressure). Default [`DEFAULT_MAX_WAITING`].
    pub max_waiting: usize,
    /// How long a worker asked to stop may take before it is SIGKILLed.
    pub kill_grace: Duration,
    /// [`Protocol::Lines`]: how long a worker has to answer a job cancelled while running (its
    /// caller aborted, or it timed out) before it is killed. Zero: killed at once, without a
    /// `cancel` message.
    pub cancel_grace: Duration,
    /// A line written to every new worker before any job ([`Protocol::Lines`]: the `init`
    /// message). Without the trailing newline.
    pub hello: Option<String>,
    /// Options of jobs submitted without their own.
    pub job_defaults: JobOpts,
    /// Retire a worker whose resident memory exceeds this many bytes (checked every second).
    pub max_rss: Option<u64>,
    /// Pin worker i to CPU i (modulo the CPUs this process may use).
    pub affinity: bool,
    /// [`Protocol::NodeIpc`]: jobs go out in the envelope of ComputeCluster's worker preload
    /// (`lib/compute-cluster-worker.js`), which carries each job's id so that a reply can name
    /// its job (see `frame.rs`). Off: each job is written as its bare JSON text.
    pub ipc_envelope: bool,
}

impl EngineConfig {
    /// A configuration with everything optional off.
    pub fn new(sched: SchedConfig, spawn: SpawnSpec, protocol: Protocol) -> Self {
        EngineConfig {
            sched,
            spawn,
            protocol,
            max_message: DEFAULT_MAX_MESSAGE,
            max_record: DEFAULT_MAX_RECORD,
            max_waiting: DEFAULT_MAX_WAITING,
            kill_grace: DEFAULT_KILL_GRACE,
            cancel_grace: DEFAULT_CANCEL_GRACE,
            hello: None,
            job_defaults: JobOpts::default(),
            max_rss: None,
            affinity: false,
            ipc_envelope: false,
        }
    }
}

/// Per-job extras of a batch of calls ([`Engine::submit_calls_in`]), each left out or one per
/// job.
#[derive(Debug, Default, Clone, Copy)]
pub struct JobExtras<'a> {
    /// Each job's requestor group (empty: none).
    pub groups: Option<&'a [String]>,
    /// Each job's preferred worker, by pid (0: none).
    pub pins: Option<&'a [i32]>,
    /// Each job's batch with a deadline (0: none; see [`Engine::set_burst`]).
    pub batches: Option<&'a [u32]>,
    /// Binary attachments (protocol version 3): `counts[i]` of them for job i, taken in order
    /// from `data`; a job with none is framed as before.
    pub bins: Option<JobBins<'a>>,
}

/// The binary attachments of a batch of calls ([`JobExtras::bins`]).
#[derive(Debug, Clone, Copy)]
pub struct JobBins<'a> {
    pub counts: &'a [u32],
    pub data: &'a [&'a [u8]],
}

/// A worker's load, for a custom worker selection ([`Engine::worker_loads`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLoad {
    pub pid: i32,
    pub in_flight: usize,
    pub jobs_done: u64,
    /// The group of the job it was last given, while that group has live jobs.
    pub group: Option<String>,
}

/// A submission refused by admission control, by its index in the submitted batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub index: usize,
    pub reason: Reject,
}

#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl Engine {
    /// `wake` is called (from any thread) when the outbox becomes non-empty; the host then
    /// calls [`Engine::take`].
    pub fn new(cfg: EngineConfig, wake: Box<dyn Fn() + Send + Sync>) -> Engine {
        let sched = Scheduler::new(cfg.sched.clone());
        let timer = Arc::new(tokio::sync::Notify::new());
        let outbox = outbox::Outbox::new(cfg.max_record);
        let shared = Arc::new(Shared {
            cfg,
            state: Mutex::new(State::new(sched, outbox)),
            resume: Arc::new(tokio::sync::Notify::new()),
            wake,
            debug: AtomicBool::new(false),
            trace: AtomicBool::new(false),
            timer: timer.clone(),
            direct_revoked: AtomicBool::new(false),
            channels_gen: AtomicU64::new(0),
            env: cycle::thread_env(),
        });
        runtime().spawn(housekeeper(Arc::downgrade(&shared), timer));
        // `min_workers` start now.
        shared.update(|st, shared| st.run_actions(shared));
        Engine { shared }
    }

    /// Turns the per-job DISPATCHED/COMPLETED records on or off.
    pub fn set_debug(&self, on: bool) {
        self.shared.debug.store(on, Ordering::Relaxed);
    }

    /// Turns the per-job SENT/RAN records (worker, wait and run time of each job) on or off.
    pub fn set_trace(&self, on: bool) {
        self.shared.trace.store(on, Ordering::Relaxed);
    }

    /// Submits jobs with consecutive ids starting at `first_id`, one per `\n`-separated line of
    /// `payloads` (each line one JSON value), with the configured job defaults. Returns the
    /// refused ones; the rest are accepted and will each produce exactly one RESULT or FAILED
    /// record (or, with [`Protocol::Lines`], VOID or JOB_ERROR), unless cancelled.
    pub fn submit(&self, first_id: JobId, payloads: &str, count: usize) -> Vec<Rejection> {
        self.submit_with(first_id, payloads, count, &[])
    }

    /// As [`Engine::submit`], with options per job (`opts[i]` for job i; missing ones take the
    /// defaults).
    pub fn submit_with(
        &self,
        first_id: JobId,
        payloads: &str,
        count: usize,
        opts: &[JobOpts],
    ) -> Vec<Rejection> {
        let mut lines = payloads.split('\n');
        // A ComputeCluster job carries its id to the worker's preload (see `frame.rs`).
        let ipc = self.shared.cfg.protocol == Protocol::NodeIpc && self.shared.cfg.ipc_envelope;
        self.submit_each(first_id, count, opts, JobExtras::default(), |id| {
            let args = lines.next().unwrap_or("null");
            if ipc {
                crate::frame::ipc_job_frame(id, args)
            } else {
                args.as_bytes().into()
            }
        })
    }

    /// Submits [`Protocol::Lines`] calls with consecutive ids from `first_id`: line i of `args`
    /// is job i's arguments as JSON, comma-separated without the enclosing brackets (`1,"a"`;
    /// empty for none), line i of `fns` (when given) the JSON text of its function name
    /// (`null`: the default function). The engine writes the call frames itself, so the host
    /// builds no per-job frame text and no array for a single argument.
    pub fn submit_calls(
        &self,
        first_id: JobId,
        args: &str,
        fns: Option<&str>,
        count: usize,
        opts: &[JobOpts],
    ) -> Vec<Rejection> {
        self.submit_calls_in(first_id, args, fns, None, count, opts, JobExtras::default())
    }

    /// As [`Engine::submit_calls`], with each job's requestor group, preferred worker and
    /// batch; line i of `traceparents` (when given) is job i's W3C `traceparent`, sent with its
    /// call (empty, or not a valid traceparent: none).
    #[allow(clippy::too_many_arguments)]
    pub fn submit_calls_in(
        &self,
        first_id: JobId,
        args: &str,
        fns: Option<&str>,
        traceparents: Option<&str>,
        count: usize,
        opts: &[JobOpts],
        extras: JobExtras<'_>,
    ) -> Vec<Rejection> {
        let mut args = args.split('\n');
        let mut fns = fns.map(|f| f.split('\n'));
        let mut tps = traceparents.map(|t| t.split('\n'));
        let mut index = 0;
        let mut bin_at = 0;
        self.submit_each(first_id, count, opts, extras, |id| {
            let a = args.next().unwrap_or("");
            let f = fns.as_mut().and_then(|f| f.next()).unwrap_or("null");
            let tp = tps.as_mut().and_then(|t| t.next());
            let n = extras
                .bins
                .and_then(|b| b.counts.get(index))
                .map_or(0, |&n| n as usize);
            index += 1;
            if n == 0 {
                return match tp {
                    Some(tp) if !tp.is_empty() => traced_call_frame(id, f, a, tp),
                    _ => call_frame(id, f, a),
                };
            }
            let data = extras.bins.map_or(&[][..], |b| b.data);
            let end = (bin_at + n).min(data.len());
            let tp = tp.filter(|tp| !tp.is_empty());
            let frame = session::call_frame_bin(id, f, a, tp, &data[bin_at..end]);
            bin_at = end;
            frame
        })
    }

    fn submit_each(
        &self,
        first_id: JobId,
        count: usize,
        opts: &[JobOpts],
        extras: JobExtras<'_>,
        mut payload: impl FnMut(JobId) -> Box<[u8]>,
    ) -> Vec<Rejection> {
        let defaults = self.shared.cfg.job_defaults;
        self.shared.update(|st, shared| {
            let mut rejected = Vec::new();
            for index in 0..count {
                let id = first_id.wrapping_add(index as u32);
                let mut o = opts.get(index).copied().unwrap_or(defaults);
                let group = extras.groups.and_then(|g| g.get(index)).map(String::as_str);
                if let Some(&pid) = extras.pins.and_then(|p| p.get(index)) {
                    // A worker gone since its pid was chosen: none (the strategy decides).
                    o.prefer = st
                        .conns
                        .iter()
                        .find(|(_, c)| pid != 0 && c.peer.pid == pid)
                        .map(|(w, _)| *w);
                }
                if let Some(&b) = extras.batches.and_then(|b| b.get(index)) {
                    o.batch = b;
                }
                if let Err(reason) = st.sched.submit_in(id, payload(id), o, group) {
                    st.outbox.totals.rejected += 1;
                    rejected.push(Rejection { index, reason });
                }
                // Spawn and send before the next admission check, as compute-cluster does per
                // enqueue: the backlog counts only jobs no worker could take.
                st.run_actions(shared);
            }
            rejected
        })
    }

    /// Withdraws a job the host gave up on (its caller aborted). A queued job is dropped. A
    /// running one ([`Protocol::Lines`], a nonzero [`EngineConfig::cancel_grace`]) is sent
    /// `cancel` and keeps its place on its worker until the worker answers it; a worker that
    /// has not answered within the grace is killed (SIGKILL) and replaced, and only then are
    /// its other jobs retried or failed, as after any crash. Otherwise the worker is killed at
    /// once. No record follows for the job itself. Returns what was found: 0 nothing,
    /// 1 queued, 2 running.
    pub fn cancel(&self, job: JobId) -> u8 {
        self.shared.update(|st, shared| {
            let cooperative =
                shared.cfg.protocol == Protocol::Lines && !shared.cfg.cancel_grace.is_zero();
            let r = if cooperative {
                let kill_at = st.sched.now().checked_add(shared.cfg.cancel_grace);
                match st.sched.cancel_cooperative(job, kill_at) {
                    Cancelled::Unknown => 0,
                    Cancelled::Queued => 1,
                    Cancelled::Running(w) => {
                        st.send_cancel(w, job);
                        2
                    }
                }
            } else {
                match st.sched.cancel(job) {
                    Cancelled::Unknown => 0,
                    Cancelled::Queued => 1,
                    Cancelled::Running(w) => {
                        st.kill_worker(w, StopReason::Aborted);
                        2
                    }
                }
            };
            st.run_actions(shared);
            r
        })
    }

    /// Broadcast `id` ([`Protocol::Lines`]): writes `{"t":"message","id":id,"data":data_json}`
    /// to every live worker (started, or starting, and neither retired nor being stopped).
    /// Once each has acknowledged it or is no longer live, a BROADCAST record says how many
    /// it reached (at once when there is none). A worker started later does not get it.
    /// Returns the number of workers it was written to.
    pub fn broadcast(&self, id: u32, data_json: &str) -> usize {
        self.shared.update(|st, shared| {
            let live: Vec<_> = if shared.cfg.protocol == Protocol::Lines {
                let mut live: Vec<_> = st
                    .conns
                    .keys()
                    .copied()
                    .filter(|w| st.sched.takes_work(*w))
                    .collect();
                live.sort_unstable();
                live
            } else {
                Vec::new()
            };
            let mut line = Vec::with_capacity(data_json.len() + 40);
            comrade_protocol::encode_message(&mut line, id, data_json.as_bytes());
            for w in &live {
                st.queue_line(*w, &line);
            }
            st.outbox.broadcasts.start(id, live.iter().copied());
            live.len()
        })
    }

    /// Registers (or updates) batch `batch`'s deadline, `finish_by_ms` in ms since the Unix
    /// epoch, with `remaining` of its jobs not settled: the pool grows past `max_workers`
    /// (up to `burst_workers`) while the batch runs behind it; `speculate`: its stragglers
    /// may run again near it. See [`Scheduler::set_burst`].
    pub fn set_burst(&self, batch: u32, finish_by_ms: f64, remaining: usize, speculate: bool) {
        self.shared.update(|st, shared| {
            let now = std::time::Instant::now();
            st.sched.set_now(now);
            let epoch_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            let ahead = finish_by_ms - epoch_ms;
            let finish_by = if ahead > 0.0 && ahead.is_finite() {
                Duration::try_from_secs_f64(ahead / 1000.0)
                    .ok()
                    .and_then(|d| now.checked_add(d))
            } else if ahead.is_nan() || ahead == f64::INFINITY {
                None
            } else {
                Some(now)
            };
            st.sched.set_burst(batch, finish_by, remaining, speculate);
            st.run_actions(shared);
        })
    }

    /// Batch `batch` is over: its deadline no longer counts.
    pub fn end_burst(&self, batch: u32) {
        self.shared.update(|st, shared| {
            st.sched.end_burst(batch);
            st.run_actions(shared);
        })
    }

    /// Takes the oldest batch of records (at most [`BATCH_BYTES`], unless it is one longer
    /// record); call until `None`. Once the records still waiting are within
    /// [`EngineConfig::max_waiting`], channels paused for them are read again.
    pub fn take(&self) -> Option<Batch> {
        let mut st = lock(&self.shared.state);
        let batch = st.outbox.take();
        if st.reads_paused && !reads_paused(&st.outbox, self.shared.cfg.max_waiting) {
            st.reads_paused = false;
            self.shared.resume.notify_waiters();
        }
        batch
    }

    /// Bytes of the records waiting for the host (see [`EngineConfig::max_waiting`]).
    pub fn waiting_bytes(&self) -> usize {
        lock(&self.shared.state).outbox.bytes()
    }

    /// Stops the pool. Queued jobs fail with reason `"closed"` unless `drain`, in which case
    /// they run first; then every worker is asked to stop (SIGTERM), and SIGKILLed after the
    /// grace period. An ALL_EXITED record follows the last exit.
    pub fn shutdown(&self, drain: bool) {
        self.shared.update(|st, shared| {
            // A second call may only escalate: a draining shutdown can become an immediate one.
            if st.shutting_down && (drain || st.stopping_now) {
                return;
            }
            st.shutting_down = true;
            st.stopping_now = !drain;
            let failed = st.sched.close(drain);
            st.session(shared).closed(failed);
            if !drain || st.sched.live_jobs() == 0 {
                st.stop_all(shared);
            }
            st.run_actions(shared);
            st.check_all_exited();
        })
    }

    /// Pids of the live workers.
    pub fn pids(&self) -> Vec<i32> {
        lock(&self.shared.state)
            .conns
            .values()
            .map(|c| c.peer.pid)
            .collect()
    }

    /// The load that decides who reads the channels of a pool with one job per worker (see
    /// [`crate::direct_policy`]); `None` for several jobs per worker, without taking the lock.
    pub fn direct_load(&self) -> Option<crate::direct_policy::Load> {
        if self.shared.cfg.sched.concurrency > 1 {
            return None;
        }
        let st = lock(&self.shared.state);
        Some(crate::direct_policy::Load {
            queued: st.sched.queued(),
            live: st.sched.live_jobs(),
            workers: st.sched.config().max_workers,
        })
    }

    /// The options of a job submitted without its own.
    pub fn job_defaults(&self) -> JobOpts {
        self.shared.cfg.job_defaults
    }

    pub fn queued(&self) -> usize {
        lock(&self.shared.state).sched.queued()
    }

    /// The workers that take work, with their loads (spawn order).
    pub fn worker_loads(&self) -> Vec<WorkerLoad> {
        let st = lock(&self.shared.state);
        st.sched
            .loads()
            .into_iter()
            .filter_map(|(w, in_flight, jobs_done, group)| {
                Some(WorkerLoad {
                    pid: st.conns.get(&w)?.peer.pid,
                    in_flight,
                    jobs_done,
                    group: group.map(str::to_owned),
                })
            })
            .collect()
    }
}
