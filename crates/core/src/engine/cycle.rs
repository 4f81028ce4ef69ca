//! The engine's cycle: every event (a submission, a readable channel, an exit, a deadline)
//! locks the state, acts on it, then, with the lock released, flushes the writes it queued
//! and wakes the host if records are due. Also the I/O thread, and the process-wide list of
//! live workers for the last-resort kill.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use tokio::runtime::Handle;

use super::io::{flush_out, Conn, Dirty};
use super::outbox::{wake_now, Outbox};
use super::session::Session;
use super::EngineConfig;
use crate::scheduler::{Scheduler, WorkerId};
use crate::spawn;

pub(crate) struct State {
    pub sched: Scheduler,
    pub conns: crate::idhash::IdMap<WorkerId, Conn>,
    pub outbox: Outbox,
    pub shutting_down: bool,
    /// `shutdown(false)` was called: nothing more runs.
    pub stopping_now: bool,
    pub all_exited_sent: bool,
    /// Output buffers that got bytes in this update; written when the update ends (after the
    /// state lock is released), so many jobs for one worker go out in one syscall and a reply
    /// read on the I/O thread never waits for a write on the JS thread.
    pub dirty: Vec<Dirty>,
    /// When the housekeeping task will next run (`None`: it waits to be notified).
    pub timer_at: Option<Instant>,
    /// Next resident-memory check, when `max_rss` is set.
    pub rss_check_at: Option<Instant>,
    /// A host wake put off while the queue keeps every worker busy (see `take_wake`).
    pub wake_at: Option<Instant>,
    /// The host watches the channels itself ([`Engine::set_direct`](super::Engine::set_direct));
    /// the I/O thread does not.
    pub direct: bool,
    /// When the host last read a channel directly (or took the reads over).
    pub host_read_at: Instant,
    /// While direct and jobs are queued: when the I/O thread next checks that the host is
    /// reading (see [`crate::direct_policy`]).
    pub direct_check_at: Option<Instant>,
    /// A read was refused because the records waiting passed `max_waiting`: the host's take
    /// that brings them back within it wakes the paused readers ([`Shared::resume`]).
    pub reads_paused: bool,
    /// Workers sent `{"t":"stop"}` and not yet gone (they may be running their teardown).
    pub tearing_down: std::collections::HashSet<WorkerId>,
}

impl State {
    pub fn new(sched: Scheduler, outbox: Outbox) -> Self {
        State {
            sched,
            conns: crate::idhash::IdMap::default(),
            outbox,
            shutting_down: false,
            stopping_now: false,
            all_exited_sent: false,
            dirty: Vec::new(),
            timer_at: None,
            rss_check_at: None,
            wake_at: None,
            direct: false,
            host_read_at: Instant::now(),
            direct_check_at: None,
            reads_paused: false,
            tearing_down: std::collections::HashSet::new(),
        }
    }

    /// The session layer over this state.
    pub fn session(&mut self, shared: &Shared) -> Session<'_> {
        Session {
            sched: &mut self.sched,
            outbox: &mut self.outbox,
            protocol: shared.cfg.protocol,
            debug: shared.debug.load(std::sync::atomic::Ordering::Relaxed),
            trace: shared.trace.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Broadcasts stop waiting for workers that are gone or stopping (a worker retired, killed
    /// or exited before its ack is not counted); those left waiting for nobody are recorded.
    pub fn settle_broadcasts(&mut self) {
        let State {
            sched,
            conns,
            outbox,
            ..
        } = self;
        outbox.settle_broadcasts(|w| conns.contains_key(&w) && sched.takes_work(w));
    }

    /// Whether to wake the host now for what the outbox holds (see `wake_may_wait`).
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

    /// While the host reads the channels and jobs are queued, the I/O thread checks every
    /// `STALL` that it keeps reading. The housekeeper re-arms the check itself while jobs are
    /// live (see `housekeeping`), so the host's updates seldom have to notify it.
    fn plan_direct_check(&mut self) {
        if self.direct && self.direct_check_at.is_none() && self.sched.queued() > 0 {
            self.direct_check_at = Some(self.sched.now() + crate::direct_policy::STALL);
        }
    }

    /// When the housekeeping task must next run.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.sched.next_deadline(),
            self.rss_check_at,
            self.wake_at,
            self.direct_check_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

pub(crate) struct Shared {
    pub cfg: EngineConfig,
    pub state: Mutex<State>,
    pub wake: Box<dyn Fn() + Send + Sync>,
    pub debug: AtomicBool,
    /// Per-job SENT/RAN records, for the host's tracing.
    pub trace: AtomicBool,
    /// Wakes the housekeeping task when an earlier deadline appears.
    pub timer: Arc<tokio::sync::Notify>,
    /// Wakes the I/O thread's readers paused while the records waiting for the host passed
    /// `max_waiting` (see [`State::reads_paused`]).
    pub resume: Arc<tokio::sync::Notify>,
    /// Set when the I/O thread took the reads back from a stalled host; the host's next
    /// [`Engine::direct_revoked`](super::Engine::direct_revoked) sees it.
    pub direct_revoked: AtomicBool,
    /// Bumped when a worker channel opens or closes (see [`Engine::channels`](super::Engine::channels)).
    pub channels_gen: AtomicU64,
    /// The host environment this engine belongs to (see [`set_thread_env`]).
    pub env: u64,
}

impl Shared {
    /// Runs `f` on the locked state, then (after unlocking) writes what it queued and wakes
    /// the host if `f` left records due.
    pub fn update<R>(self: &Arc<Self>, f: impl FnOnce(&mut State, &Arc<Shared>) -> R) -> R {
        self.update_inner(false, f)
    }

    /// As [`Shared::update`], for the host's own thread taking records right after: it is
    /// not woken for them (it would find the batch already taken). The host calls this from
    /// its event loop's own callbacks (a direct read), where no JS can catch an error: a panic
    /// (a bug) must not unwind into the event loop, which would abort the process. It is
    /// caught here and the result is `R::default()`.
    pub fn update_on_host<R: Default>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut State, &Arc<Shared>) -> R,
    ) -> R {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.update_inner(true, f)))
            .unwrap_or_default()
    }

    fn update_inner<R>(
        self: &Arc<Self>,
        on_host: bool,
        f: impl FnOnce(&mut State, &Arc<Shared>) -> R,
    ) -> R {
        let mut st = lock(&self.state);
        st.sched.set_now(Instant::now());
        let r = f(&mut st, self);
        st.settle_overdue(self);
        st.plan_direct_check();
        st.settle_broadcasts();
        let writes = std::mem::take(&mut st.dirty);
        if on_host && st.outbox.count > 0 {
            // The host takes the records before it returns to its event loop.
            st.outbox.woken = true;
            st.wake_at = None;
        }
        let wake = st.take_wake();
        if let Some(next) = st.next_deadline() {
            if st.timer_at.is_none_or(|t| next < t) {
                st.timer_at = Some(next);
                self.timer.notify_one();
            }
        }
        drop(st);
        for w in writes {
            flush_out(w);
        }
        if wake {
            (self.wake)();
        }
        r
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The housekeeping task and paused readers hold only weak references: let them see
        // that and end.
        self.timer.notify_one();
        self.resume.notify_waiters();
        // The host dropped the engine: no worker may outlive it.
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut live = lock(live_pids());
        for conn in st.conns.values() {
            conn.link.kill();
            live.remove(&conn.link.pid());
        }
    }
}

/// Runs the engine's time-driven work at the deadlines the scheduler names.
pub(crate) async fn housekeeper(shared: Weak<Shared>, timer: Arc<tokio::sync::Notify>) {
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

/// Pids of every live local worker of every engine in this process, each with the host
/// environment its engine belongs to (see [`set_thread_env`]), for the last-resort kill when
/// the host, or one of its environments, goes away.
fn live_pids() -> &'static Mutex<HashMap<i32, u64>> {
    static LIVE: OnceLock<Mutex<HashMap<i32, u64>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashMap::new()))
}

thread_local! {
    static THREAD_ENV: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Allocates a new host environment id and makes it this thread's: engines created on this
/// thread from now on belong to it. For a host with several environments in one process
/// (Node's worker threads, one environment each), so that an environment going away stops
/// only its own workers ([`kill_env_workers`]). Engines of a thread that never called this
/// belong to environment 0.
pub fn set_thread_env() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    THREAD_ENV.with(|e| e.set(id));
    id
}

/// The environment engines created on this thread belong to.
pub(crate) fn thread_env() -> u64 {
    THREAD_ENV.with(|e| e.get())
}

pub(crate) fn remember_pid(pid: i32, env: u64) {
    lock(live_pids()).insert(pid, env);
}

pub(crate) fn forget_pid(pid: i32) {
    lock(live_pids()).remove(&pid);
}

/// SIGKILLs every worker this process started and has not reaped, with its process group.
/// For `process.exit()` and the host's teardown, when nothing asynchronous can run any more.
pub fn kill_all_workers() {
    let pids = lock(live_pids());
    for &pid in pids.keys() {
        spawn::kill_group(pid, libc::SIGKILL);
    }
}

/// SIGKILLs the live workers (with their process groups) of the engines of environment `env`
/// only: for the teardown of one environment (a worker thread) while the others live on.
pub fn kill_env_workers(env: u64) {
    let pids = lock(live_pids());
    for (&pid, _) in pids.iter().filter(|(_, &e)| e == env) {
        spawn::kill_group(pid, libc::SIGKILL);
    }
}

pub(crate) fn runtime() -> &'static Handle {
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock must not take the whole pool down with poison errors.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
