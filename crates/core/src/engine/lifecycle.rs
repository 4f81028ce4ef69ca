//! Worker lifecycle and dispatch: the engine carries out the scheduler's actions (spawn,
//! send, stop), reads channels into the session layer, and handles exits and time-driven
//! work. Worker state lives in the scheduler's slots; a connection holds only I/O.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cycle::{forget_pid, remember_pid, runtime, Shared, State};
use super::io::{
    exit_watch, push_frame, push_line, read_lines, read_loop, register_dup, Conn, LocalProcess,
    Read,
};
use super::outbox::{kind, reads_paused};
use super::session::ProtocolError;
use super::Protocol;
use crate::scheduler::{Action, JobId, StopReason, WorkerId};
use crate::spawn::{self, ExitStatus};

impl State {
    /// Carries out the scheduler's actions until none are left, and cancels the losing
    /// copies of speculated jobs.
    pub fn run_actions(&mut self, shared: &Arc<Shared>) {
        loop {
            while let Some(action) = self.sched.next_action() {
                match action {
                    Action::Spawn(w) => self.spawn_worker(shared, w),
                    Action::Send { worker, job } => self.send(shared, worker, job),
                    Action::Stop(w) => {
                        let why = self.sched.planned_stop(w);
                        self.stop_worker(shared, w, why);
                    }
                }
            }
            if !self.sched.has_losers() {
                break;
            }
            self.cancel_losers(shared);
        }
    }

    /// The other copy of a speculated job settled it (or the job was cancelled): each losing
    /// copy is cancelled as after an abort (the worker is asked to stop it, and killed if it
    /// has not within the grace), or its worker is killed at once.
    fn cancel_losers(&mut self, shared: &Arc<Shared>) {
        let cooperative =
            shared.cfg.protocol == Protocol::Lines && !shared.cfg.cancel_grace.is_zero();
        for (w, job) in self.sched.take_losers() {
            if cooperative {
                let kill_at = Instant::now().checked_add(shared.cfg.cancel_grace);
                self.sched.set_cancel_deadline(w, job, kill_at);
                self.send_cancel(w, job);
            } else {
                self.kill_worker(w, StopReason::Aborted);
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
            LocalProcess::new(s)
        });
        match spawned {
            Ok(local) => {
                let pid = local.pid;
                remember_pid(pid, shared.env);
                let link: Arc<dyn super::Link> = Arc::new(local);
                runtime().spawn(exit_watch(Arc::downgrade(shared), w, link.clone()));
                let mut conn = Conn::new(link, shared.cfg.max_message, cpu);
                conn.attachments = shared.cfg.protocol == Protocol::Lines;
                // A result's large binaries go to JS in the allocation they were read into.
                conn.decoder.own_attachments(conn.attachments);
                self.conns.insert(w, conn);
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
                let program = &shared.cfg.spawn.program;
                let msg = match &shared.cfg.spawn.cwd {
                    // The OS says only "No such file or directory", as if the program were
                    // missing.
                    Some(cwd) if !std::path::Path::new(cwd).is_dir() => format!(
                        "cannot start worker {program:?}: its working directory (cwd) {cwd:?} \
                         does not exist or is not a directory"
                    ),
                    _ => format!("cannot start worker {program:?}: {e}"),
                };
                self.session(shared).spawn_failed(w, &msg);
                self.check_all_exited();
            }
        }
    }

    fn send(&mut self, shared: &Arc<Shared>, w: WorkerId, job: JobId) {
        let now = Instant::now();
        let trace = shared.trace.load(Ordering::Relaxed);
        let waited = if trace {
            self.sched.waited(job, now)
        } else {
            None
        };
        self.sched.mark_sent(w, job, now);
        if self.sched.payload(job).is_none() {
            return;
        }
        let Some(conn) = self.conns.get(&w) else {
            return;
        };
        if shared.debug.load(Ordering::Relaxed) {
            self.outbox
                .push(kind::DISPATCHED, job, &conn.peer.pid.to_string());
        }
        if trace {
            let v = format!("[{},{}]", conn.peer.pid, waited.unwrap_or(0.0));
            self.outbox.push(kind::SENT, job, &v);
        }
        match self.sched.shared_payload(job) {
            Some(frame) => push_frame(&mut self.dirty, conn, frame),
            None => {
                if let Some(payload) = self.sched.payload(job) {
                    push_line(&mut self.dirty, conn, payload);
                }
            }
        }
    }

    /// Asks worker `w` to stop job `job`, cancelled while it runs there (`{"t":"cancel"}`).
    pub fn send_cancel(&mut self, w: WorkerId, job: JobId) {
        let mut line = Vec::with_capacity(32);
        comrade_protocol::encode_cancel(&mut line, job);
        self.queue_line(w, &line);
    }

    /// Appends one line to a worker's output, written when the update ends.
    pub(crate) fn queue_line(&mut self, w: WorkerId, line: &[u8]) {
        if let Some(conn) = self.conns.get(&w) {
            push_line(&mut self.dirty, conn, line);
        }
    }

    /// Stops a worker now (a run timeout, a cancelled running job, a protocol error, a
    /// channel that cannot be read: `why`); its exit settles or retries the jobs it still
    /// holds.
    pub fn kill_worker(&mut self, w: WorkerId, why: StopReason) {
        self.sched.stop_worker(w, why);
        if let Some(conn) = self.conns.get(&w) {
            conn.link.kill();
        }
    }

    pub fn check_all_exited(&mut self) {
        if self.shutting_down
            && !self.all_exited_sent
            && self.conns.is_empty()
            && self.sched.workers() == 0
        {
            self.all_exited_sent = true;
            self.outbox.push(kind::ALL_EXITED, 0, "null");
        }
    }

    /// Asks every worker to stop.
    pub fn stop_all(&mut self, shared: &Arc<Shared>) {
        let ids: Vec<WorkerId> = self.conns.keys().copied().collect();
        for w in ids {
            self.stop_worker(shared, w, StopReason::Shutdown);
        }
    }

    /// Asks a worker to stop, with a SIGKILL after the grace period. `why`: what its exit will
    /// report ([`StopReason::Crash`] after its channel broke). A [`Protocol::Lines`] worker
    /// stopped on purpose with nothing left to do (idle, recycled, retired, over its memory
    /// limit, a draining shutdown) is sent `{"t":"stop"}`, so it can run its teardown and exit
    /// by itself; any other is sent SIGTERM. `terminate()` (a shutdown without draining) sends
    /// SIGTERM to a worker that was sent `stop` and is still tearing down.
    fn stop_worker(&mut self, shared: &Arc<Shared>, w: WorkerId, why: StopReason) {
        let Some(conn) = self.conns.get(&w) else {
            return;
        };
        if !self.sched.stop_worker(w, why) {
            if self.stopping_now && self.tearing_down.remove(&w) {
                conn.link.terminate();
            }
            return;
        }
        let planned = matches!(
            why,
            StopReason::Idle | StopReason::Recycled | StopReason::Retired | StopReason::Memory
        ) || (why == StopReason::Shutdown && !self.stopping_now);
        if shared.cfg.kill_grace.is_zero() {
            // No time for a teardown: killed at once.
            conn.link.kill();
            return;
        }
        if shared.cfg.protocol == Protocol::Lines && planned {
            self.tearing_down.insert(w);
            let mut line = Vec::with_capacity(16);
            comrade_protocol::encode_stop(&mut line);
            self.queue_line(w, &line);
        } else {
            conn.link.terminate();
        }
        let Some(conn) = self.conns.get(&w) else {
            return;
        };
        let link = Arc::downgrade(&conn.link);
        let grace = shared.cfg.kill_grace;
        runtime().spawn(async move {
            tokio::time::sleep(grace).await;
            // The link lives until the worker's exit is handled.
            if let Some(link) = link.upgrade() {
                link.kill();
            }
        });
    }

    /// Reads the worker's channel and handles each complete message; a channel found closed
    /// or broken is closed on this side too. Nothing is read while the records waiting for the
    /// host pass `max_waiting` (the worker blocks on its full socket until the host takes).
    pub fn read_channel(&mut self, shared: &Arc<Shared>, w: WorkerId) -> Read {
        if reads_paused(&self.outbox, shared.cfg.max_waiting) && self.conns.contains_key(&w) {
            self.reads_paused = true;
            return Read::Paused;
        }
        let read = self.read_worker(shared, w);
        if let Read::Closed = read {
            self.channel_closed(shared, w);
        }
        // Now, not only when the update ends: a direct read tells the host whether records
        // wait before that.
        self.settle_broadcasts();
        read
    }

    /// Reads whatever the worker has sent into the session layer, and says what the read
    /// found.
    fn read_worker(&mut self, shared: &Arc<Shared>, w: WorkerId) -> Read {
        let now = Instant::now();
        let debug = shared.debug.load(Ordering::Relaxed);
        let trace = shared.trace.load(Ordering::Relaxed);
        let State {
            sched,
            outbox,
            conns,
            ..
        } = self;
        let Some(conn) = conns.get_mut(&w) else {
            return Read::Closed;
        };
        if conn.peer.broken {
            // It broke the protocol: nothing more it sends is believed, not even what was
            // read with the violation; it is being killed.
            return Read::Closed;
        }
        let mut session = super::session::Session {
            sched,
            outbox,
            protocol: shared.cfg.protocol,
            debug,
            trace,
        };
        let (read, error) = read_lines(conn, |peer, line, bins| {
            session.line_with(w, peer, line, bins, now).map_err(|e| e.0)
        });
        if let Some(msg) = error {
            session.broke(&mut conn.peer, &ProtocolError(msg));
            self.kill_worker(w, StopReason::Protocol);
        }
        self.run_actions(shared);
        self.maybe_finish_drain(shared);
        read
    }

    /// Has the I/O thread watch worker `w`'s channel for replies: a registration of its own on
    /// a duplicate descriptor, and a task that reads whenever it is readable.
    pub fn start_reading(&mut self, shared: &Arc<Shared>, w: WorkerId) {
        let Some(conn) = self.conns.get_mut(&w) else {
            return;
        };
        if conn.reader.is_some() {
            return;
        }
        let _guard = runtime().enter();
        match register_dup(conn.link.fd(), tokio::io::Interest::READABLE) {
            Ok(fd) => {
                let resume = shared.resume.clone();
                let reader = read_loop(Arc::downgrade(shared), w, fd, resume);
                conn.reader = Some(runtime().spawn(reader));
            }
            // Out of descriptors: a worker that cannot be read is of no use (its channel is as
            // good as broken).
            Err(_) => self.kill_worker(w, StopReason::Crash),
        }
    }

    /// The channel closed while the process may live on: it can take no more work, so it is
    /// stopped; its exit settles what it held.
    fn channel_closed(&mut self, shared: &Arc<Shared>, w: WorkerId) {
        self.stop_worker(shared, w, StopReason::Crash);
        self.run_actions(shared);
    }

    pub fn worker_exited(
        &mut self,
        shared: &Arc<Shared>,
        w: WorkerId,
        pid: i32,
        status: ExitStatus,
    ) {
        // Replies written just before the exit are still in the socket: deliver them first.
        if self.conns.contains_key(&w) {
            self.read_worker(shared, w);
        }
        let peer = match self.conns.remove(&w) {
            Some(mut conn) => {
                shared.channels_gen.fetch_add(1, Ordering::Release);
                if let Some(r) = conn.reader.take() {
                    r.abort();
                }
                conn.peer
            }
            None => super::session::Peer::new(pid),
        };
        forget_pid(pid);
        self.tearing_down.remove(&w);
        let shutting_down = self.shutting_down;
        self.session(shared).exited(w, peer, status, shutting_down);
        self.run_actions(shared);
        self.maybe_finish_drain(shared);
        self.check_all_exited();
    }

    /// Fails the waiting jobs their own deadline withdrew (whatever event's dispatch found
    /// them); a draining shutdown may have nothing left to wait for then.
    pub fn settle_overdue(&mut self, shared: &Arc<Shared>) {
        if self.sched.has_overdue() && self.session(shared).overdue() {
            self.maybe_finish_drain(shared);
            self.run_actions(shared);
        }
    }

    /// When draining and the last job settled, stop the workers.
    pub fn maybe_finish_drain(&mut self, shared: &Arc<Shared>) {
        if self.shutting_down && self.sched.live_jobs() == 0 && self.sched.any_not_stopping() {
            self.stop_all(shared);
        }
    }

    /// Time-driven work: run timeouts, idle workers, held-back spawns, memory limits.
    pub fn housekeeping(&mut self, shared: &Arc<Shared>) {
        if self.direct {
            // The host reads the channels, and it may be busy: a reply written in time must
            // count before anything is timed out, and a worker waiting on a host that has not
            // read for a while gets its next queued job (and the I/O thread the reads).
            let now = self.sched.now();
            let check = self.direct_check_at.is_some_and(|t| t <= now);
            let quiet = crate::direct_policy::quiet(self.host_read_at, now);
            if (check && quiet) || self.sched.next_deadline().is_some_and(|t| t <= now) {
                let before = self.outbox.count;
                let ws: Vec<WorkerId> = self.conns.keys().copied().collect();
                for w in ws {
                    self.read_channel(shared, w);
                }
                let unread = self.outbox.count > before;
                if check && crate::direct_policy::stalled(self.host_read_at, now, unread) {
                    self.revoke_direct(shared);
                }
            }
            if check && self.direct {
                self.direct_check_at =
                    (self.sched.live_jobs() > 0).then_some(now + crate::direct_policy::STALL);
            }
        }
        let now = Instant::now();
        let cooperative =
            shared.cfg.protocol == Protocol::Lines && !shared.cfg.cancel_grace.is_zero();
        for (w, job) in self.sched.expired(now) {
            let pid = self.conns.get(&w).map_or(0, |c| c.peer.pid);
            if cooperative {
                // The worker is asked to stop the job, and killed if it has not answered
                // within the grace (below, at a later run).
                let kill_at = now.checked_add(shared.cfg.cancel_grace);
                self.session(shared)
                    .timed_out_cooperative(w, pid, job, kill_at);
                self.send_cancel(w, job);
            } else {
                self.session(shared).timed_out(w, pid, job);
                // The replacement is started by the scheduler as work needs it.
                self.kill_worker(w, StopReason::Timeout);
            }
        }
        // Jobs past their total timeout on a worker: cancelled as after an abort (the worker
        // is asked to stop the job, then killed), or the worker is killed now.
        for (w, job) in self.sched.overdue_running(now) {
            let pid = self.conns.get(&w).map_or(0, |c| c.peer.pid);
            if cooperative {
                let kill_at = now.checked_add(shared.cfg.cancel_grace);
                self.session(shared)
                    .total_timed_out(w, pid, job, Some(kill_at));
                self.send_cancel(w, job);
            } else {
                self.session(shared).total_timed_out(w, pid, job, None);
                self.kill_worker(w, StopReason::Timeout);
            }
        }
        // Workers that did not stop a cancelled job in time: runaway code cannot be stopped
        // any other way. Their other jobs are retried or fail when their exit is handled.
        for (w, _job, timeout) in self.sched.cancel_overdue(now) {
            let why = if timeout {
                StopReason::Timeout
            } else {
                StopReason::Aborted
            };
            self.kill_worker(w, why);
        }
        self.sched.housekeeping(now);
        if let Some(limit) = shared.cfg.max_rss {
            if self.rss_check_at.is_none_or(|t| now >= t) {
                let over: Vec<(WorkerId, i32)> = self
                    .conns
                    .iter()
                    .filter(|(w, _)| self.sched.takes_work(**w))
                    .filter(|(_, c)| spawn::rss_bytes(c.peer.pid).is_some_and(|r| r > limit))
                    .map(|(w, c)| (*w, c.peer.pid))
                    .collect();
                for (w, pid) in over {
                    self.session(shared).retire(w, pid, StopReason::Memory);
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
}
