//! The engine: owns a scheduler, the worker processes and their channels, and carries out the
//! scheduler's actions. Channels are read on one I/O thread (a tokio runtime), or, while the
//! host asks for it under light load, by the host itself ([`Engine::set_direct`]); jobs are
//! written from whichever thread made them sendable (the submitting thread, or the reader that
//! just freed a worker), so a reply is followed by the next job's write without a trip
//! through JS.
//!
//! Everything the host must hear (results, failures, worker life events) is appended to an
//! outbox as one JSON array text plus parallel id/kind arrays; the host is woken once when the
//! outbox goes from empty to non-empty and takes the whole batch.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use tokio::io::unix::AsyncFd;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::frame::{is_node_internal, stray_payload, validate_json, LineDecoder};
use crate::scheduler::{
    Action, Cancelled, JobId, JobOpts, Reject, SchedConfig, Scheduler, WorkerId, WorkerState,
};
use crate::spawn::{self, ExitStatus, SpawnSpec};

/// Record kinds in a [`Batch`]: each record is `kind, id, value` in the batch's JSON array.
pub mod kind {
    /// A job's result. id = job; value = the worker's reply, verbatim.
    pub const RESULT: u8 = 0;
    /// A job failed without a reply. id = job; value = `{"reason": ..., ...}`.
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
    /// [`Protocol::Lines`]: a job returned nothing (`undefined`). id = job; value = null.
    pub const VOID: u8 = 10;
    /// [`Protocol::Lines`]: a job's function failed. id = job; value = the worker's error object.
    pub const JOB_ERROR: u8 = 11;
    /// [`Protocol::Lines`]: a worker event. id = pid; value = the whole message
    /// (`{"t":"event","name":…,"data":…}`).
    pub const EVENT: u8 = 12;
    /// [`Protocol::Lines`]: progress of a job in flight. id = job; value = the progress value.
    pub const PROGRESS: u8 = 13;
    /// [`Protocol::Lines`]: a worker asked to retire. id = pid; value = null.
    pub const RETIRING: u8 = 14;
}

/// Longest message accepted from a worker (and longest job arguments), by default.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;
/// Time between SIGTERM and SIGKILL when a worker is stopped, by default.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);

/// Longest a host wake is put off while queued jobs keep every worker busy.
const WAKE_DELAY: Duration = Duration::from_millis(1);
/// Records that wake the host even then.
const WAKE_BATCH: usize = 512;

/// How the engine talks to its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Node's IPC channel (json mode), one job at a time per worker: each message from the
    /// worker completes its job. This is compute-cluster's contract.
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
    /// How long a worker asked to stop may take before it is SIGKILLed.
    pub kill_grace: Duration,
    /// A line written to every new worker before any job ([`Protocol::Lines`]: the `init`
    /// message). Without the trailing newline.
    pub hello: Option<String>,
    /// Options of jobs submitted without their own.
    pub job_defaults: JobOpts,
    /// Retire a worker whose resident memory exceeds this many bytes (checked every second).
    pub max_rss: Option<u64>,
    /// Pin worker i to CPU i (modulo the CPUs this process may use).
    pub affinity: bool,
}

impl EngineConfig {
    /// A configuration with everything optional off.
    pub fn new(sched: SchedConfig, spawn: SpawnSpec, protocol: Protocol) -> Self {
        EngineConfig {
            sched,
            spawn,
            protocol,
            max_message: DEFAULT_MAX_MESSAGE,
            kill_grace: DEFAULT_KILL_GRACE,
            hello: None,
            job_defaults: JobOpts::default(),
            max_rss: None,
            affinity: false,
        }
    }
}

/// Totals since the engine started.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    completed: u64,
    errored: u64,
    failed: u64,
    rejected: u64,
}

/// Records taken by the host in one go: `text` is one flat JSON array of `kind, id, value`
/// triples, so the host parses a batch with a single `JSON.parse` and no side arrays.
#[derive(Debug, Default)]
pub struct Batch {
    pub count: usize,
    pub text: String,
}

#[derive(Default)]
struct Outbox {
    count: usize,
    text: String,
    /// The host has been woken and has not taken the batch yet.
    woken: bool,
    totals: Totals,
}

impl Outbox {
    fn push(&mut self, kind: u8, id: u32, value: &str) {
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
}

#[derive(Default)]
struct OutBuf {
    buf: Vec<u8>,
    /// A flush task owns the writing until the socket drains.
    flushing: bool,
    /// Listed in `State::dirty` already.
    queued: bool,
}

impl OutBuf {
    /// Writes what the socket takes now. Returns false when the rest must wait for the socket
    /// to become writable.
    fn write_now(&mut self, stream: &Sock) -> bool {
        while !self.buf.is_empty() {
            // A plain non-blocking write: any thread may write, whatever the runtime has seen.
            match (&*stream).write(&self.buf) {
                Ok(n) => {
                    self.buf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The worker is going away; its exit settles its jobs.
                    self.buf.clear();
                }
            }
        }
        true
    }
}

/// A worker's end of the channel, read and written with plain non-blocking calls from either
/// thread. The I/O thread learns of readability through a registration of its own on a
/// duplicate descriptor ([`State::start_reading`]), which exists unless the host watches the
/// channel itself ([`Engine::set_direct`]); writability is watched only while a write is blocked.
type Sock = std::os::unix::net::UnixStream;

struct Conn {
    pid: i32,
    stream: Arc<Sock>,
    decoder: LineDecoder,
    /// Bytes for the worker, written after the state lock is released (under this lock of
    /// its own, which keeps writes from different threads in order).
    out: Arc<Mutex<OutBuf>>,
    reader: Option<JoinHandle<()>>,
    /// The worker was told to stop (or killed); it gets no more work.
    stopping: bool,
    /// [`Protocol::Lines`]: the worker said `ready`.
    ready: bool,
    /// [`Protocol::Lines`]: the worker asked to retire; it is stopped once its jobs are done.
    retiring: bool,
    /// [`Protocol::Lines`]: the error of the worker's `fatal` message (JSON text).
    fatal: Option<String>,
    /// The CPU it is pinned to.
    cpu: Option<usize>,
    /// The pool stopped it on purpose (idle, recycled, retired, shutdown), as opposed to a
    /// crash, a protocol error or a kill for a timeout.
    stop_expected: bool,
}

struct State {
    sched: Scheduler,
    conns: HashMap<WorkerId, Conn>,
    outbox: Outbox,
    shutting_down: bool,
    /// `shutdown(false)` was called: nothing more runs.
    stopping_now: bool,
    all_exited_sent: bool,
    /// Output buffers that got bytes in this update; written when the update ends (after the
    /// state lock is released), so many jobs for one worker go out in one syscall and a reply
    /// read on the I/O thread never waits for a write on the JS thread.
    dirty: Vec<(Arc<Sock>, Arc<Mutex<OutBuf>>)>,
    /// When the housekeeping task will next run (`None`: it waits to be notified).
    timer_at: Option<Instant>,
    /// Next resident-memory check, when `max_rss` is set.
    rss_check_at: Option<Instant>,
    /// A host wake put off while the queue keeps every worker busy (see `take_wake`).
    wake_at: Option<Instant>,
    /// The host watches the channels itself ([`Engine::set_direct`]); the I/O thread does not.
    direct: bool,
}

struct Shared {
    cfg: EngineConfig,
    state: Mutex<State>,
    wake: Box<dyn Fn() + Send + Sync>,
    debug: AtomicBool,
    /// Wakes the housekeeping task when an earlier deadline appears.
    timer: Arc<tokio::sync::Notify>,
    /// Bumped when a worker channel opens or closes (see [`Engine::channels`]).
    channels_gen: AtomicU64,
}

impl Shared {
    /// Runs `f` on the locked state, then wakes the host (after unlocking) if `f` left the
    /// outbox newly non-empty.
    fn update<R>(self: &Arc<Self>, f: impl FnOnce(&mut State, &Arc<Shared>) -> R) -> R {
        let mut st = lock(&self.state);
        st.sched.set_now(Instant::now());
        let r = f(&mut st, self);
        let writes = std::mem::take(&mut st.dirty);
        let wake = st.take_wake();
        if let Some(next) = st.next_deadline() {
            if st.timer_at.is_none_or(|t| next < t) {
                st.timer_at = Some(next);
                self.timer.notify_one();
            }
        }
        drop(st);
        for (stream, out) in writes {
            flush_out(stream, out);
        }
        if wake {
            (self.wake)();
        }
        r
    }
}

/// Pids of every live worker of every engine in this process, for the last-resort kill when
/// the host exits.
fn live_pids() -> &'static Mutex<HashSet<i32>> {
    static LIVE: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashSet::new()))
}

/// SIGKILLs every worker this process started and has not reaped. For `process.exit()` and
/// environment teardown, when nothing asynchronous can run any more.
pub fn kill_all_workers() {
    let pids = lock(live_pids());
    for &pid in pids.iter() {
        spawn::kill(pid, libc::SIGKILL);
    }
}

fn runtime() -> &'static Handle {
    static RT: OnceLock<Handle> = OnceLock::new();
    RT.get_or_init(|| {
        // One thread that only does channel I/O: a current-thread runtime parked in epoll, so
        // a readable worker wakes exactly this thread and nothing else.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("start the comrade I/O runtime");
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("comrade-io".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .expect("start the comrade I/O thread");
        handle
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock must not take the whole pool down with poison errors.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// See [`Engine::load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub queued: usize,
    pub live: usize,
    pub workers: usize,
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
        let shared = Arc::new(Shared {
            cfg,
            state: Mutex::new(State {
                sched,
                conns: HashMap::new(),
                outbox: Outbox::default(),
                shutting_down: false,
                stopping_now: false,
                all_exited_sent: false,
                dirty: Vec::new(),
                timer_at: None,
                rss_check_at: None,
                wake_at: None,
                direct: false,
            }),
            wake,
            debug: AtomicBool::new(false),
            timer: timer.clone(),
            channels_gen: AtomicU64::new(0),
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
        self.submit_each(first_id, count, opts, |_| {
            lines.next().unwrap_or("null").as_bytes().into()
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
        let mut args = args.split('\n');
        let mut fns = fns.map(|f| f.split('\n'));
        self.submit_each(first_id, count, opts, |id| {
            let a = args.next().unwrap_or("");
            let f = fns.as_mut().and_then(|f| f.next()).unwrap_or("null");
            let mut frame = Vec::with_capacity(a.len() + f.len() + 40);
            frame.extend_from_slice(br#"{"t":"call","id":"#);
            frame.extend_from_slice(itoa(id, &mut [0; 10]));
            frame.extend_from_slice(br#","fn":"#);
            frame.extend_from_slice(f.as_bytes());
            frame.extend_from_slice(br#","args":["#);
            frame.extend_from_slice(a.as_bytes());
            frame.extend_from_slice(b"]}");
            frame.into_boxed_slice()
        })
    }

    fn submit_each(
        &self,
        first_id: JobId,
        count: usize,
        opts: &[JobOpts],
        mut payload: impl FnMut(JobId) -> Box<[u8]>,
    ) -> Vec<Rejection> {
        let defaults = self.shared.cfg.job_defaults;
        self.shared.update(|st, shared| {
            let mut rejected = Vec::new();
            for index in 0..count {
                let id = first_id.wrapping_add(index as u32);
                let o = opts.get(index).copied().unwrap_or(defaults);
                if let Err(reason) = st.sched.submit_with(id, payload(id), o) {
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

    /// Withdraws a job the host gave up on (its caller aborted). A queued job is dropped; a
    /// running one is dropped and its worker, which cannot be told to stop one job safely, is
    /// killed (SIGKILL) and replaced; its other jobs are retried or fail as after any crash.
    /// No record follows for the job itself. Returns what was found: 0 nothing, 1 queued,
    /// 2 running.
    pub fn cancel(&self, job: JobId) -> u8 {
        self.shared.update(|st, shared| {
            let r = match st.sched.cancel(job) {
                Cancelled::Unknown => 0,
                Cancelled::Queued => 1,
                Cancelled::Running(w) => {
                    st.kill_worker(w);
                    2
                }
            };
            st.run_actions(shared);
            r
        })
    }

    /// A snapshot for `pool.stats()`, as JSON text.
    pub fn stats_json(&self) -> String {
        let st = lock(&self.shared.state);
        let mut workers = Vec::new();
        for (w, conn) in &st.conns {
            let info = st.sched.slot(*w);
            let state = match info.as_ref().map(|i| i.state) {
                Some(WorkerState::Spawning) => "starting",
                Some(WorkerState::Ready) if info.as_ref().is_some_and(|i| i.inflight > 0) => "busy",
                Some(WorkerState::Ready) => "idle",
                Some(WorkerState::Closing) | None => "stopping",
            };
            workers.push(serde_json::json!({
                "pid": conn.pid,
                "state": state,
                "jobsDone": info.as_ref().map_or(0, |i| i.done),
                "jobsInFlight": info.as_ref().map_or(0, |i| i.inflight),
                "rss": spawn::rss_bytes(conn.pid),
                "cpu": conn.cpu,
            }));
        }
        workers.sort_by_key(|w| w["pid"].as_i64());
        let ss = st.sched.stats();
        let pct = |s: &crate::scheduler::Samples| {
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
            "throughput": ss.throughput(st.sched.uptime_secs()),
            "waitTime": pct(&ss.wait),
            "runTime": pct(&ss.run),
        })
        .to_string()
    }

    /// Takes every record produced since the last call.
    pub fn take(&self) -> Option<Batch> {
        let mut st = lock(&self.shared.state);
        let ob = &mut st.outbox;
        ob.woken = false;
        if ob.count == 0 {
            return None;
        }
        // The next batch starts from a buffer of the same size, not from empty.
        let cap = ob.text.capacity();
        let mut text = std::mem::replace(&mut ob.text, String::with_capacity(cap));
        text.push(']');
        Some(Batch {
            count: std::mem::take(&mut ob.count),
            text,
        })
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
            for job in failed {
                st.outbox.push(kind::FAILED, job, r#"{"reason":"closed"}"#);
            }
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
            .map(|c| c.pid)
            .collect()
    }

    /// The load that decides who reads the channels: jobs queued, jobs live (queued or in
    /// flight), and the most workers.
    pub fn load(&self) -> Load {
        let st = lock(&self.shared.state);
        Load {
            queued: st.sched.queued(),
            live: st.sched.live_jobs(),
            workers: st.sched.config().max_workers,
        }
    }

    /// Whether a host on an event loop should watch the channels itself
    /// ([`Engine::set_direct`]), given whether it does now. See [`direct_wanted`].
    pub fn direct_wanted(&self, now: bool) -> bool {
        let st = lock(&self.shared.state);
        direct_wanted(
            now,
            st.sched.queued(),
            st.sched.live_jobs(),
            st.sched.config().max_workers,
        )
    }

    /// With `on`, the I/O thread stops watching the worker channels for replies: the host
    /// watches them (the descriptors from [`Engine::channels`]) and calls
    /// [`Engine::read_direct`] when one is readable, so a reply wakes only the host's thread.
    /// Exits, timers and blocked writes stay with the I/O thread. Meant for light load: with
    /// jobs queued, the I/O thread should read (`off`), so that a reply's worker gets its next
    /// job whatever the host is doing.
    pub fn set_direct(&self, on: bool) {
        self.shared.update(|st, shared| {
            if st.direct == on {
                return;
            }
            st.direct = on;
            let ws: Vec<WorkerId> = st.conns.keys().copied().collect();
            for w in ws {
                if on {
                    if let Some(r) = st.conns.get_mut(&w).and_then(|c| c.reader.take()) {
                        r.abort();
                    }
                } else {
                    // Registration reports a channel that is readable already.
                    st.start_reading(shared, w);
                }
            }
        });
    }

    /// Changes whenever a worker channel opens or closes.
    pub fn channels_generation(&self) -> u64 {
        self.shared.channels_gen.load(Ordering::Acquire)
    }

    /// The open worker channels: every worker's id, and a duplicate descriptor of the channel
    /// of each worker not in `known` (the caller owns it).
    pub fn channels(&self, known: &HashSet<WorkerId>) -> (Vec<WorkerId>, Vec<(WorkerId, OwnedFd)>) {
        let st = lock(&self.shared.state);
        let mut live = Vec::with_capacity(st.conns.len());
        let mut fresh = Vec::new();
        for (w, conn) in &st.conns {
            live.push(*w);
            if !known.contains(w) {
                // Duplicated under the lock: the channel cannot close meanwhile.
                if let Ok(fd) = conn.stream.as_fd().try_clone_to_owned() {
                    fresh.push((*w, fd));
                }
            }
        }
        (live, fresh)
    }

    /// Reads worker `w`'s channel now, on the calling thread, as the I/O thread would: replies
    /// are matched and the next queued jobs written. Returns whether records are waiting (the
    /// host takes them at once rather than waiting for its wake, which may still come) and
    /// whether the channel is still open (a closed one needs no more watching).
    pub fn read_direct(&self, w: WorkerId) -> (bool, bool) {
        self.shared.update(|st, shared| {
            let open =
                st.conns.contains_key(&w) && !matches!(st.read_channel(shared, w), Read::Closed);
            (st.outbox.count > 0, open)
        })
    }

    /// Jobs queued and not yet given to a worker.
    pub fn queued(&self) -> usize {
        lock(&self.shared.state).sched.queued()
    }
}

impl State {
    /// Whether to wake the host now for what the outbox holds (see [`wake_may_wait`]).
    fn take_wake(&mut self) -> bool {
        let cfg = self.sched.config();
        let (wake, wake_at) = wake_now(
            &self.outbox,
            self.sched.queued(),
            cfg.max_workers * cfg.concurrency,
            self.wake_at,
            self.sched.now(),
        );
        self.wake_at = wake_at;
        if wake {
            self.outbox.woken = true;
        }
        wake
    }

    /// When the housekeeping task must next run.
    fn next_deadline(&self) -> Option<Instant> {
        [self.sched.next_deadline(), self.rss_check_at, self.wake_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time-driven work: run timeouts, idle workers, held-back spawns, memory limits.
    fn housekeeping(&mut self, shared: &Arc<Shared>) {
        if self.direct {
            // The host reads the channels, and it may be busy: a reply written in time must
            // count before anything is timed out.
            let ws: Vec<WorkerId> = self.conns.keys().copied().collect();
            for w in ws {
                self.read_channel(shared, w);
            }
        }
        let now = Instant::now();
        for (w, job) in self.sched.expired(now) {
            let pid = self.conns.get(&w).map_or(0, |c| c.pid);
            let v = format!(r#"{{"reason":"timeout","pid":{pid}}}"#);
            self.outbox.push(kind::FAILED, job, &v);
            self.sched.abandon(w, job);
            // Runaway code cannot be stopped any other way; the replacement is started by
            // the scheduler as work needs it.
            self.kill_worker(w);
        }
        self.sched.housekeeping(now);
        if let Some(limit) = shared.cfg.max_rss {
            if self.rss_check_at.is_none_or(|t| now >= t) {
                let over: Vec<WorkerId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| !c.stopping && !c.retiring)
                    .filter(|(_, c)| spawn::rss_bytes(c.pid).is_some_and(|r| r > limit))
                    .map(|(w, _)| *w)
                    .collect();
                for w in over {
                    if let Some(c) = self.conns.get_mut(&w) {
                        c.retiring = true;
                    }
                    self.outbox.push(
                        kind::RETIRING,
                        self.conns.get(&w).map_or(0, |c| c.pid as u32),
                        r#""rss""#,
                    );
                    self.sched.retire(w);
                }
                self.rss_check_at = if self.conns.is_empty() {
                    None
                } else {
                    Some(now + Duration::from_secs(1))
                };
            }
        }
        self.run_actions(shared);
        self.maybe_finish_drain(shared);
    }

    /// SIGKILLs a worker at once (a run timeout, a cancelled running job); its exit settles
    /// or retries the jobs it still holds.
    fn kill_worker(&mut self, w: WorkerId) {
        if let Some(conn) = self.conns.get_mut(&w) {
            conn.stopping = true;
            spawn::kill(conn.pid, libc::SIGKILL);
        }
        self.sched.worker_closing(w);
    }

    fn check_all_exited(&mut self) {
        if self.shutting_down
            && !self.all_exited_sent
            && self.conns.is_empty()
            && self.sched.workers() == 0
        {
            self.all_exited_sent = true;
            self.outbox.push(kind::ALL_EXITED, 0, "null");
        }
    }

    /// Asks every worker to stop: half-close its channel (a Node worker sees 'disconnect') and
    /// SIGTERM it, with a SIGKILL after the grace period.
    fn stop_all(&mut self, shared: &Arc<Shared>) {
        let ids: Vec<WorkerId> = self.conns.keys().copied().collect();
        for w in ids {
            self.stop_worker(shared, w, true);
        }
    }

    /// `expected`: the pool stops it on purpose (not after its channel broke).
    fn stop_worker(&mut self, shared: &Arc<Shared>, w: WorkerId, expected: bool) {
        let Some(conn) = self.conns.get_mut(&w) else {
            return;
        };
        if conn.stopping {
            return;
        }
        conn.stopping = true;
        conn.stop_expected = expected;
        let pid = conn.pid;
        spawn::kill(pid, libc::SIGTERM);
        let weak = Arc::downgrade(shared);
        let grace = shared.cfg.kill_grace;
        runtime().spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(shared) = weak.upgrade() {
                let st = lock(&shared.state);
                if st.conns.get(&w).is_some_and(|c| c.pid == pid) {
                    spawn::kill(pid, libc::SIGKILL);
                }
            }
        });
        self.sched.worker_closing(w);
    }

    /// Carries out the scheduler's actions until none are left.
    fn run_actions(&mut self, shared: &Arc<Shared>) {
        while let Some(action) = self.sched.next_action() {
            match action {
                Action::Spawn(w) => self.spawn_worker(shared, w),
                Action::Send { worker, job } => self.send(shared, worker, job),
                Action::Stop(w) => self.stop_worker(shared, w, true),
            }
        }
    }

    fn spawn_worker(&mut self, shared: &Arc<Shared>, w: WorkerId) {
        let mut spec = shared.cfg.spawn.clone();
        if shared.cfg.affinity {
            // The lowest CPU not taken by a live worker, among those this process may use.
            let cpus = spawn::allowed_cpus();
            if !cpus.is_empty() {
                let taken: HashSet<usize> = self.conns.values().filter_map(|c| c.cpu).collect();
                let n = self.conns.len();
                spec.cpu = cpus
                    .iter()
                    .copied()
                    .find(|c| !taken.contains(c))
                    .or(Some(cpus[n % cpus.len()]));
            }
        }
        let cpu = spec.cpu;
        let spawned = spawn::spawn(spec).and_then(|s| {
            let _guard = runtime().enter();
            let stream = Sock::from(s.channel);
            stream.set_nonblocking(true)?;
            // SAFETY: the OwnedFd stays open and unchanged for the AsyncFd's whole life.
            let pidfd =
                unsafe { AsyncFd::register_with_interest(s.pidfd, tokio::io::Interest::READABLE) }
                    .map_err(|e| e.into_parts().1)?;
            Ok((s.pid, stream, pidfd))
        });
        match spawned {
            Ok((pid, stream, pidfd)) => {
                lock(live_pids()).insert(pid);
                let stream = Arc::new(stream);
                runtime().spawn(exit_watch(Arc::downgrade(shared), w, pid, pidfd));
                self.conns.insert(
                    w,
                    Conn {
                        pid,
                        stream,
                        decoder: LineDecoder::new(shared.cfg.max_message),
                        out: Arc::new(Mutex::new(OutBuf::default())),
                        reader: None,
                        stopping: false,
                        ready: false,
                        retiring: false,
                        fatal: None,
                        cpu,
                        stop_expected: false,
                    },
                );
                shared.channels_gen.fetch_add(1, Ordering::Release);
                if !self.direct {
                    self.start_reading(shared, w);
                }
                if shared.cfg.max_rss.is_some() && self.rss_check_at.is_none() {
                    self.rss_check_at = Some(Instant::now() + Duration::from_secs(1));
                }
                if let Some(hello) = &shared.cfg.hello {
                    self.queue_line(w, hello.as_bytes());
                }
                self.sched.spawned(w);
                if shared.cfg.protocol == Protocol::NodeIpc {
                    // No startup handshake in Node's IPC: it serves from the start.
                    self.sched.worker_serving(w, Instant::now());
                }
                let n = self.sched.workers();
                let v = format!("[{},{}]", n, self.sched.config().max_workers);
                self.outbox.push(kind::SPAWNED, pid as u32, &v);
            }
            Err(e) => {
                let msg = json_string(&format!(
                    "cannot start worker {:?}: {e}",
                    shared.cfg.spawn.program
                ));
                for job in self.sched.spawn_failed(w) {
                    let v = format!(r#"{{"reason":"spawn","message":{msg}}}"#);
                    self.outbox.push(kind::FAILED, job, &v);
                }
                self.outbox.push(kind::SPAWN_FAILED, 0, &msg);
                self.check_all_exited();
            }
        }
    }

    fn send(&mut self, shared: &Arc<Shared>, w: WorkerId, job: JobId) {
        self.sched.mark_sent(w, job, Instant::now());
        let Some(payload) = self.sched.payload(job) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&w) else {
            return;
        };
        if shared.debug.load(Ordering::Relaxed) {
            self.outbox
                .push(kind::DISPATCHED, job, &conn.pid.to_string());
        }
        push_line(&mut self.dirty, conn, payload);
    }

    /// Appends one line to a worker's output, written when the update ends.
    fn queue_line(&mut self, w: WorkerId, line: &[u8]) {
        if let Some(conn) = self.conns.get(&w) {
            push_line(&mut self.dirty, conn, line);
        }
    }

    /// Reads the worker's channel as [`State::read_worker`] does; a channel found closed or
    /// broken is closed on this side too.
    fn read_channel(&mut self, shared: &Arc<Shared>, w: WorkerId) -> Read {
        let read = self.read_worker(shared, w);
        if let Read::Closed = read {
            self.channel_closed(shared, w);
        }
        read
    }

    /// Reads whatever the worker has sent and handles each complete message, and says what the
    /// read found.
    fn read_worker(&mut self, shared: &Arc<Shared>, w: WorkerId) -> Read {
        let debug = shared.debug.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut open = true;
        let mut drained = false;
        let mut protocol_error: Option<String> = None;
        {
            let Some(conn) = self.conns.get_mut(&w) else {
                return Read::Closed;
            };
            let pid = conn.pid;
            // Bounded so one chatty worker cannot starve the others.
            for _ in 0..16 {
                let spare = match conn.decoder.spare() {
                    Ok(s) => s,
                    Err(e) => {
                        protocol_error = Some(e.to_string());
                        break;
                    }
                };
                match (&*conn.stream).read(spare) {
                    Ok(0) => {
                        open = false;
                        break;
                    }
                    Ok(n) => conn.decoder.filled(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        drained = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        open = false;
                        break;
                    }
                }
                loop {
                    let line = match conn.decoder.next_line() {
                        Ok(Some(line)) => line,
                        Ok(None) => break,
                        Err(e) => {
                            protocol_error = Some(e.to_string());
                            break;
                        }
                    };
                    match shared.cfg.protocol {
                        Protocol::Lines => {
                            match handle_line(
                                &mut self.sched,
                                &mut self.outbox,
                                w,
                                pid,
                                line,
                                now,
                                debug,
                            ) {
                                Ok(Effect::None) => {}
                                Ok(Effect::Ready) => {
                                    conn.ready = true;
                                    self.sched.worker_serving(w, now);
                                }
                                Ok(Effect::Retire) => {
                                    // At once: a reply later in this read must not hand the
                                    // retiring worker another job. The scheduler asks for
                                    // its stop once its jobs are answered.
                                    conn.retiring = true;
                                    self.sched.retire(w);
                                }
                                Ok(Effect::Fatal(e)) => conn.fatal = Some(e),
                                Err(e) => {
                                    protocol_error = Some(e);
                                    break;
                                }
                            }
                        }
                        Protocol::NodeIpc => {
                            if is_node_internal(line) {
                                if let Some(msg) = stray_payload(line) {
                                    self.outbox.push(kind::STRAY, pid as u32, msg);
                                }
                                continue;
                            }
                            let text = match validate_json(line) {
                                Ok(t) => t,
                                Err(e) => {
                                    protocol_error = Some(format!("invalid JSON message: {e}"));
                                    break;
                                }
                            };
                            match self.sched.complete_oldest(w, now) {
                                Some((job, secs)) => {
                                    self.outbox.push(kind::RESULT, job, text);
                                    if debug {
                                        self.outbox.push(
                                            kind::COMPLETED,
                                            pid as u32,
                                            &format!("{secs}"),
                                        );
                                    }
                                }
                                None => self.outbox.push(kind::STRAY, pid as u32, text),
                            }
                        }
                    }
                }
                if protocol_error.is_some() {
                    break;
                }
            }
        }
        if let Some(msg) = protocol_error {
            if let Some(conn) = self.conns.get_mut(&w) {
                let pid = conn.pid;
                self.outbox
                    .push(kind::PROTOCOL_ERROR, pid as u32, &json_string(&msg));
                conn.stopping = true;
                spawn::kill(pid, libc::SIGKILL);
                self.sched.worker_closing(w);
            }
            open = false;
        }
        self.run_actions(shared);
        self.maybe_finish_drain(shared);
        match (open, drained) {
            (false, _) => Read::Closed,
            (true, true) => Read::Drained,
            (true, false) => Read::More,
        }
    }

    /// Has the I/O thread watch worker `w`'s channel for replies: a registration of its own on
    /// a duplicate descriptor, and a task that reads whenever it is readable.
    fn start_reading(&mut self, shared: &Arc<Shared>, w: WorkerId) {
        let Some(conn) = self.conns.get_mut(&w) else {
            return;
        };
        if conn.reader.is_some() {
            return;
        }
        let _guard = runtime().enter();
        match register_dup(&conn.stream, tokio::io::Interest::READABLE) {
            Ok(fd) => {
                conn.reader = Some(runtime().spawn(read_loop(Arc::downgrade(shared), w, fd)));
            }
            Err(_) => {
                // Out of descriptors: a worker that cannot be read is of no use.
                conn.stopping = true;
                spawn::kill(conn.pid, libc::SIGKILL);
                self.sched.worker_closing(w);
            }
        }
    }

    /// The channel closed while the process may live on: it can take no more work, so it is
    /// stopped; its exit settles what it held.
    fn channel_closed(&mut self, shared: &Arc<Shared>, w: WorkerId) {
        self.stop_worker(shared, w, false);
        self.run_actions(shared);
    }

    fn worker_exited(&mut self, shared: &Arc<Shared>, w: WorkerId, pid: i32, status: ExitStatus) {
        // Replies written just before the exit are still in the socket: deliver them first.
        if self.conns.contains_key(&w) {
            self.read_worker(shared, w);
        }
        let mut startup_failure: Option<String> = None;
        let mut expected = false;
        if let Some(mut conn) = self.conns.remove(&w) {
            shared.channels_gen.fetch_add(1, Ordering::Release);
            if let Some(r) = conn.reader.take() {
                r.abort();
            }
            expected = conn.stop_expected;
            // A worker that could not start: it said `fatal`, or exited with an error code
            // before `ready` (a signal, as from a chaos kill, is an ordinary crash).
            if shared.cfg.protocol == Protocol::Lines
                && !conn.ready
                && (conn.fatal.is_some() || status.code().is_some_and(|c| c != 0))
            {
                startup_failure = Some(conn.fatal.take().unwrap_or_else(|| "null".into()));
            }
        }
        lock(live_pids()).remove(&pid);
        let code = status
            .code()
            .map_or_else(|| "null".to_string(), |c| c.to_string());
        let signal = status.signal().map_or_else(
            || "null".to_string(),
            |s| json_string(&spawn::signal_name(s)),
        );
        if let Some(error) = startup_failure {
            let v = format!(
                r#"{{"reason":"startup","pid":{pid},"code":{code},"signal":{signal},"error":{error}}}"#
            );
            // Queued jobs would only wait for a worker that fails the same way; unless another
            // worker is serving, they fail too (before the slot is released, so that no
            // replacement is started for them), and no worker starts until new work comes.
            self.sched.startup_failed();
            let serving = self.conns.values().any(|c| c.ready && !c.stopping);
            let queued = if serving {
                Vec::new()
            } else {
                self.sched.fail_queued()
            };
            let lost = self.sched.worker_lost(w);
            for job in lost.into_iter().chain(queued) {
                self.outbox.push(kind::FAILED, job, &v);
            }
        } else {
            for job in self.sched.worker_lost(w) {
                let v =
                    format!(r#"{{"reason":"exit","pid":{pid},"code":{code},"signal":{signal}}}"#);
                self.outbox.push(kind::FAILED, job, &v);
            }
        }
        let v = format!(
            r#"{{"code":{code},"signal":{signal},"expected":{}}}"#,
            self.shutting_down || expected
        );
        self.outbox.push(kind::EXITED, pid as u32, &v);
        self.run_actions(shared);
        self.maybe_finish_drain(shared);
        self.check_all_exited();
    }

    /// When draining and the last job settled, stop the workers.
    fn maybe_finish_drain(&mut self, shared: &Arc<Shared>) {
        if self.shutting_down && self.sched.live_jobs() == 0 {
            let running = self.conns.values().any(|c| !c.stopping);
            if running {
                self.stop_all(shared);
            }
        }
    }
}

/// What one read of a worker's channel found.
enum Read {
    /// End of stream, an error, or a protocol violation: the channel is done.
    Closed,
    /// Everything available was read.
    Drained,
    /// The read stopped early (one worker must not starve the others); more may be waiting.
    More,
}

async fn read_loop(shared: std::sync::Weak<Shared>, w: WorkerId, fd: AsyncFd<OwnedFd>) {
    loop {
        let Ok(mut ready) = fd.readable().await else {
            break;
        };
        let Some(shared) = shared.upgrade() else {
            break;
        };
        let read = shared.update(|st, shared| st.read_channel(shared, w));
        match read {
            Read::Closed => break,
            // Wait for the next readiness event only once the socket said it is empty.
            Read::Drained => ready.clear_ready(),
            Read::More => ready.retain_ready(),
        }
    }
}

/// Runs the engine's time-driven work at the deadlines the scheduler names.
async fn housekeeper(shared: std::sync::Weak<Shared>, timer: Arc<tokio::sync::Notify>) {
    loop {
        let next = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            shared.update(|st, shared| {
                st.housekeeping(shared);
                st.timer_at = st.next_deadline();
                st.timer_at
            })
        };
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = timer.notified() => {}
                }
            }
            None => timer.notified().await,
        }
    }
}

/// Whether the host should read the channels itself: under light load (nothing queued, at most
/// one job per worker) each reply's latency counts, and a direct read saves a thread wake-up.
/// Once more than one and a half jobs per worker are live, the I/O thread reads again, so that
/// a worker gets its next job whatever the host is doing. The gap between the two keeps a load
/// that hovers at one line from switching back and forth (each switch registers every
/// channel).
pub fn direct_wanted(now: bool, queued: usize, live: usize, workers: usize) -> bool {
    if now {
        live <= workers + workers.div_ceil(2)
    } else {
        queued == 0 && live <= workers
    }
}

/// Whether to wake the host now, and when to at the latest if not (`wake_at`, kept across
/// updates). Nothing waiting, or a wake already given: no deadline either, or the housekeeper
/// would keep waking for a batch the host has already taken.
fn wake_now(
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
fn wake_may_wait(queued: usize, slots: usize, records: usize) -> bool {
    records < WAKE_BATCH && queued >= slots + 2 * records
}

/// The decimal digits of `n`, written into `buf`.
fn itoa(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// A duplicate of a channel's descriptor, registered with the runtime for `interest` (the
/// registration, and the duplicate, go when it is dropped). Call within the runtime.
fn register_dup(sock: &Sock, interest: tokio::io::Interest) -> io::Result<AsyncFd<OwnedFd>> {
    let dup = sock.as_fd().try_clone_to_owned()?;
    // SAFETY: the AsyncFd owns the duplicate it watches, open for its whole life.
    unsafe { AsyncFd::register_with_interest(dup, interest) }.map_err(|e| e.into_parts().1)
}

/// Appends a line to a connection's output and lists the connection for the write at the end
/// of the update.
fn push_line(dirty: &mut Vec<(Arc<Sock>, Arc<Mutex<OutBuf>>)>, conn: &Conn, line: &[u8]) {
    let mut out = lock(&conn.out);
    out.buf.extend_from_slice(line);
    out.buf.push(b'\n');
    if !out.queued && !out.flushing {
        out.queued = true;
        dirty.push((conn.stream.clone(), conn.out.clone()));
    }
}

/// Writes a worker's pending output; what the socket cannot take now is left to a flush task
/// that waits for the socket to become writable.
fn flush_out(stream: Arc<Sock>, out: Arc<Mutex<OutBuf>>) {
    let mut o = lock(&out);
    o.queued = false;
    if o.flushing || o.write_now(&stream) {
        return;
    }
    o.flushing = true;
    drop(o);
    runtime().spawn(flush_loop(stream, out));
}

async fn flush_loop(stream: Arc<Sock>, out: Arc<Mutex<OutBuf>>) {
    // Writability is watched on a duplicate of the descriptor, registered only while a write
    // is blocked.
    let Ok(writable) = register_dup(&stream, tokio::io::Interest::WRITABLE) else {
        // Out of descriptors: the bytes cannot be written; the worker's exit settles its jobs.
        let mut o = lock(&out);
        o.buf.clear();
        o.flushing = false;
        return;
    };
    loop {
        let Ok(mut ready) = writable.writable().await else {
            lock(&out).flushing = false;
            return;
        };
        let mut o = lock(&out);
        if o.write_now(&stream) {
            o.flushing = false;
            return;
        }
        ready.clear_ready();
    }
}

async fn exit_watch(
    shared: std::sync::Weak<Shared>,
    w: WorkerId,
    pid: i32,
    pidfd: AsyncFd<OwnedFd>,
) {
    let status = loop {
        match pidfd.readable().await {
            Ok(mut guard) => match spawn::try_reap(pid) {
                Ok(Some(status)) => break status,
                Ok(None) => guard.clear_ready(),
                Err(_) => break ExitStatus::Code(-1),
            },
            Err(_) => break ExitStatus::Code(-1),
        }
    };
    let Some(shared) = shared.upgrade() else {
        lock(live_pids()).remove(&pid);
        return;
    };
    shared.update(|st, shared| st.worker_exited(shared, w, pid, status));
}

/// What a [`Protocol::Lines`] message changes about its connection.
enum Effect {
    None,
    Ready,
    Retire,
    /// The worker cannot serve; the error object as JSON text.
    Fatal(String),
}

/// A message from a [`Protocol::Lines`] worker. Borrowed: values are passed on as raw text.
#[derive(Deserialize)]
struct WireMsg<'a> {
    #[serde(borrow)]
    t: Cow<'a, str>,
    id: Option<u64>,
    #[serde(default, borrow, deserialize_with = "present")]
    v: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    e: Option<&'a RawValue>,
}

/// A field that is present, even as `null`, is `Some` (a plain `Option` maps `null` to `None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Handles one message of a [`Protocol::Lines`] worker. `Err` is a protocol violation.
fn handle_line(
    sched: &mut Scheduler,
    outbox: &mut Outbox,
    w: WorkerId,
    pid: i32,
    line: &[u8],
    now: Instant,
    debug: bool,
) -> Result<Effect, String> {
    let text = std::str::from_utf8(line).map_err(|_| "message is not UTF-8".to_string())?;
    if !text.trim_start().starts_with('{') {
        return Err(format!("message is not a JSON object: {}", excerpt(text)));
    }
    let msg: WireMsg<'_> = serde_json::from_str(text)
        .map_err(|e| format!("invalid message ({e}): {}", excerpt(text)))?;
    let job_id = || -> Result<JobId, String> {
        match msg.id {
            Some(id) => JobId::try_from(id).map_err(|_| format!("job id {id} out of range")),
            None => Err(format!("\"{}\" message without an id", msg.t)),
        }
    };
    match &*msg.t {
        "ok" | "err" => {
            let job = job_id()?;
            match sched.complete(w, job, now) {
                Some(secs) => {
                    match (&*msg.t, msg.v, msg.e) {
                        ("ok", Some(v), _) => outbox.push(kind::RESULT, job, v.get()),
                        ("ok", None, _) => outbox.push(kind::VOID, job, "null"),
                        (_, _, Some(e)) => outbox.push(kind::JOB_ERROR, job, e.get()),
                        (_, _, None) => outbox.push(kind::JOB_ERROR, job, "null"),
                    }
                    if debug {
                        outbox.push(kind::COMPLETED, pid as u32, &format!("{secs}"));
                    }
                }
                // Not in flight there (cancelled, or already settled): dropped.
                None => outbox.push(kind::STRAY, pid as u32, text),
            }
            Ok(Effect::None)
        }
        "progress" => {
            let job = job_id()?;
            if sched.inflight_on(w, job) {
                outbox.push(kind::PROGRESS, job, msg.v.map_or("null", |v| v.get()));
            }
            Ok(Effect::None)
        }
        "event" => {
            outbox.push(kind::EVENT, pid as u32, text);
            Ok(Effect::None)
        }
        "ready" => Ok(Effect::Ready),
        "retire" => {
            outbox.push(kind::RETIRING, pid as u32, "null");
            Ok(Effect::Retire)
        }
        "fatal" => Ok(Effect::Fatal(
            msg.e
                .map_or_else(|| "null".to_string(), |e| e.get().to_string()),
        )),
        other => Err(format!("unknown message type \"{}\"", excerpt(other))),
    }
}

/// The start of a message, for error texts.
fn excerpt(s: &str) -> &str {
    match s.char_indices().nth(120) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The housekeeping task holds only a weak reference: let it see that and end.
        self.timer.notify_one();
        // The host dropped the engine: no worker may outlive it.
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut live = lock(live_pids());
        for conn in st.conns.values() {
            spawn::kill(conn.pid, libc::SIGKILL);
            live.remove(&conn.pid);
        }
    }
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
    fn direct_reads_start_under_light_load_and_stop_only_well_above_it() {
        // 2 workers. Off: starts only with nothing queued and one job per worker at most.
        assert!(direct_wanted(false, 0, 0, 2));
        assert!(direct_wanted(false, 0, 2, 2));
        assert!(!direct_wanted(false, 1, 3, 2));
        assert!(!direct_wanted(false, 0, 3, 2));
        // On: stays up to one and a half jobs per worker, queued or not, and stops beyond.
        assert!(direct_wanted(true, 1, 3, 2));
        assert!(!direct_wanted(true, 2, 4, 2));
        assert!(!direct_wanted(true, 0, 4, 2));
        assert!(direct_wanted(true, 0, 2, 1));
        assert!(!direct_wanted(true, 2, 3, 1));
    }

    #[test]
    fn itoa_writes_decimal_digits() {
        for n in [0, 7, 10, 4_096, 1_000_000, u32::MAX] {
            assert_eq!(itoa(n, &mut [0; 10]), n.to_string().as_bytes());
        }
    }
}
