//! The scheduler: a pure state machine over the job queue and the worker slots. It performs no
//! I/O and reads no clock; the engine feeds it events (a job submitted, a worker spawned, a
//! reply read, a worker gone) with the current time, and carries out the actions it emits
//! (spawn a worker, send a job). That keeps every scheduling rule testable without processes.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::estimator::Estimator;

/// A job's id, chosen by the submitter and unique among live jobs.
pub type JobId = u32;
/// A worker slot's id, unique for the life of the scheduler.
pub type WorkerId = u64;

#[derive(Debug, Clone)]
pub struct SchedConfig {
    /// Most worker processes at once (spawned lazily, as jobs need them).
    pub max_workers: usize,
    /// Most jobs in flight on one worker.
    pub concurrency: usize,
    /// Most jobs waiting for a worker; `None` is unlimited.
    pub max_backlog: Option<usize>,
    /// Reject a job whose expected completion is further away than this many seconds.
    pub max_request_time: Option<f64>,
}

/// Why a submission was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Reject {
    /// The pool is closing or closed.
    Closed,
    /// The queue holds `max_backlog` jobs already.
    Backlog(usize),
    /// The expected time to complete (seconds) exceeds `max_request_time`.
    Duration(f64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a worker process for this slot, then report `spawned` or `spawn_failed`.
    Spawn(WorkerId),
    /// Write the job's payload to the worker.
    Send { worker: WorkerId, job: JobId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    Spawning,
    Ready,
    /// Takes no new work (its channel closed, it asked to retire, or the pool is closing).
    Closing,
}

struct Job {
    payload: Box<[u8]>,
}

struct Slot {
    id: WorkerId,
    state: WorkerState,
    /// Jobs assigned to this worker with the instant they were sent (`None`: assigned, not
    /// yet written).
    inflight: VecDeque<(JobId, Option<Instant>)>,
    done: u64,
}

/// What a worker slot looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub id: WorkerId,
    pub state: WorkerState,
    pub inflight: usize,
    pub done: u64,
}

pub struct Scheduler {
    cfg: SchedConfig,
    jobs: HashMap<JobId, Job>,
    queue: VecDeque<JobId>,
    slots: Vec<Slot>,
    next_worker: WorkerId,
    actions: VecDeque<Action>,
    estimator: Estimator,
    closing: bool,
    /// A spawn failed while other workers lived: stop growing the pool ahead of need until a
    /// spawn succeeds again, so a failing executable is not retried in a loop.
    grow_failed: bool,
}

impl Scheduler {
    pub fn new(cfg: SchedConfig) -> Self {
        assert!(cfg.max_workers >= 1 && cfg.concurrency >= 1);
        let warmup = 2 * cfg.max_workers as u64;
        Scheduler {
            cfg,
            jobs: HashMap::new(),
            queue: VecDeque::new(),
            slots: Vec::new(),
            next_worker: 1,
            actions: VecDeque::new(),
            estimator: Estimator::new(warmup),
            closing: false,
            grow_failed: false,
        }
    }

    pub fn config(&self) -> &SchedConfig {
        &self.cfg
    }

    /// Admits a job or says why not. An admitted job is queued and dispatched at once when a
    /// worker is free (or one may be spawned).
    pub fn submit(&mut self, id: JobId, payload: Box<[u8]>) -> Result<(), Reject> {
        if self.closing {
            return Err(Reject::Closed);
        }
        if let Some(limit) = self.cfg.max_request_time {
            if let Some(expected) = self.estimator.expected(self.queue.len(), self.slots.len()) {
                if expected > limit {
                    return Err(Reject::Duration(expected));
                }
            }
        }
        if let Some(max) = self.cfg.max_backlog {
            if self.queue.len() >= max {
                return Err(Reject::Backlog(max));
            }
        }
        debug_assert!(
            !self.jobs.contains_key(&id),
            "job id {id} reused while live"
        );
        self.jobs.insert(id, Job { payload });
        self.queue.push_back(id);
        self.pump();
        Ok(())
    }

    /// The next thing the engine must do.
    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The bytes to send for a job (while it is live).
    pub fn payload(&self, job: JobId) -> Option<&[u8]> {
        self.jobs.get(&job).map(|j| &*j.payload)
    }

    /// A `Spawn` succeeded: the slot takes work from now on.
    pub fn spawned(&mut self, worker: WorkerId) {
        if let Some(s) = self.slot_mut(worker) {
            if s.state == WorkerState::Spawning {
                s.state = WorkerState::Ready;
            }
        }
        self.grow_failed = false;
        self.pump();
    }

    /// A `Spawn` failed. When no worker is left to run them, every queued job is returned, to
    /// be failed, rather than left waiting for a worker that may never start.
    pub fn spawn_failed(&mut self, worker: WorkerId) -> Vec<JobId> {
        self.slots.retain(|s| s.id != worker);
        if self.slots.is_empty() {
            let failed: Vec<JobId> = self.queue.drain(..).collect();
            for j in &failed {
                self.jobs.remove(j);
            }
            failed
        } else {
            self.grow_failed = true;
            // A live worker with room can take the job now; no new spawn is asked for here.
            if self.slots.iter().any(|s| s.state == WorkerState::Ready) {
                self.pump();
            }
            Vec::new()
        }
    }

    /// Removes every queued job and returns them, to be failed (a worker could not start, so
    /// they would only wait for a worker that fails the same way).
    pub fn fail_queued(&mut self) -> Vec<JobId> {
        let failed: Vec<JobId> = self.queue.drain(..).collect();
        for j in &failed {
            self.jobs.remove(j);
        }
        failed
    }

    /// Whether a job is in flight on a worker.
    pub fn inflight_on(&self, worker: WorkerId, job: JobId) -> bool {
        self.slots
            .iter()
            .find(|s| s.id == worker)
            .is_some_and(|s| s.inflight.iter().any(|(j, _)| *j == job))
    }

    /// Jobs in flight (sent or assigned) on a worker.
    pub fn inflight(&self, worker: WorkerId) -> usize {
        self.slots
            .iter()
            .find(|s| s.id == worker)
            .map_or(0, |s| s.inflight.len())
    }

    /// The engine wrote the job to its worker; service time counts from here.
    pub fn mark_sent(&mut self, worker: WorkerId, job: JobId, now: Instant) {
        if let Some(s) = self.slot_mut(worker) {
            if let Some(e) = s.inflight.iter_mut().find(|e| e.0 == job) {
                e.1 = Some(now);
            }
        }
    }

    /// A reply arrived on a worker that runs one job at a time: it completes the oldest job
    /// sent there. Returns the job and its service time in seconds, or `None` for a reply with
    /// no job sent (a stray message, which must not be delivered anywhere: a job assigned but
    /// not yet written cannot have been answered).
    pub fn complete_oldest(&mut self, worker: WorkerId, now: Instant) -> Option<(JobId, f64)> {
        let slot = self.slots.iter_mut().find(|s| s.id == worker)?;
        let (_, Some(_)) = slot.inflight.front()? else {
            return None;
        };
        let (job, started) = slot.inflight.pop_front()?;
        Some(self.finish(worker, job, started.unwrap_or(now), now))
    }

    /// A reply for a given job id arrived on a worker. `None` if that job is not in flight there.
    pub fn complete(&mut self, worker: WorkerId, job: JobId, now: Instant) -> Option<f64> {
        let slot = self.slots.iter_mut().find(|s| s.id == worker)?;
        let pos = slot.inflight.iter().position(|(j, _)| *j == job)?;
        let (job, started) = slot.inflight.remove(pos)?;
        Some(self.finish(worker, job, started.unwrap_or(now), now).1)
    }

    fn finish(
        &mut self,
        worker: WorkerId,
        job: JobId,
        started: Instant,
        now: Instant,
    ) -> (JobId, f64) {
        let secs = now.saturating_duration_since(started).as_secs_f64();
        self.jobs.remove(&job);
        self.estimator.record(secs);
        if let Some(s) = self.slot_mut(worker) {
            s.done += 1;
        }
        self.pump_to(worker);
        (job, secs)
    }

    /// The worker will take no new work (its channel closed, or it asked to retire).
    pub fn worker_closing(&mut self, worker: WorkerId) {
        if let Some(s) = self.slot_mut(worker) {
            s.state = WorkerState::Closing;
        }
        self.pump();
    }

    /// The worker is gone. Returns the jobs it had in flight, which the caller settles (they
    /// are not retried here). Queued work moves on to other workers, or to a replacement.
    pub fn worker_lost(&mut self, worker: WorkerId) -> Vec<JobId> {
        let Some(pos) = self.slots.iter().position(|s| s.id == worker) else {
            return Vec::new();
        };
        let slot = self.slots.remove(pos);
        let lost: Vec<JobId> = slot.inflight.into_iter().map(|(j, _)| j).collect();
        for j in &lost {
            self.jobs.remove(j);
        }
        self.pump();
        lost
    }

    /// Stops admitting work. With `drain` false, the queued jobs are removed and returned (to
    /// be failed); with `drain` true they still run. No worker is spawned after this unless
    /// draining needs one.
    pub fn close(&mut self, drain: bool) -> Vec<JobId> {
        self.closing = true;
        if drain {
            self.pump();
            return Vec::new();
        }
        let failed: Vec<JobId> = self.queue.drain(..).collect();
        for j in &failed {
            self.jobs.remove(j);
        }
        failed
    }

    pub fn is_closing(&self) -> bool {
        self.closing
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Jobs accepted and not yet finished (queued or in flight).
    pub fn live_jobs(&self) -> usize {
        self.jobs.len()
    }

    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    pub fn worker_ids(&self) -> Vec<WorkerId> {
        self.slots.iter().map(|s| s.id).collect()
    }

    pub fn slot(&self, worker: WorkerId) -> Option<SlotInfo> {
        self.slots
            .iter()
            .find(|s| s.id == worker)
            .map(|s| SlotInfo {
                id: s.id,
                state: s.state,
                inflight: s.inflight.len(),
                done: s.done,
            })
    }

    fn slot_mut(&mut self, worker: WorkerId) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.id == worker)
    }

    /// Fast path after a reply: the worker that just freed a slot takes the queue's head.
    fn pump_to(&mut self, worker: WorkerId) {
        let conc = self.cfg.concurrency;
        if let Some(pos) = self.slots.iter().position(|s| s.id == worker) {
            while self.slots[pos].state == WorkerState::Ready
                && self.slots[pos].inflight.len() < conc
            {
                let Some(job) = self.queue.pop_front() else {
                    return;
                };
                self.slots[pos].inflight.push_back((job, None));
                self.actions.push_back(Action::Send { worker, job });
            }
        }
        self.pump();
    }

    /// Assigns queued jobs to the least-loaded ready workers, and asks for a new worker while
    /// jobs wait and the pool is below its maximum.
    fn pump(&mut self) {
        let conc = self.cfg.concurrency;
        while let Some(&job) = self.queue.front() {
            let mut best: Option<usize> = None;
            for (i, s) in self.slots.iter().enumerate() {
                if s.state == WorkerState::Ready
                    && s.inflight.len() < conc
                    && best.is_none_or(|b| s.inflight.len() < self.slots[b].inflight.len())
                {
                    best = Some(i);
                    if s.inflight.is_empty() {
                        break;
                    }
                }
            }
            let spawning = self
                .slots
                .iter()
                .filter(|s| s.state == WorkerState::Spawning)
                .count();
            if let Some(i) = best {
                // Every worker is busy and the pool may grow: start a worker rather than stack
                // this job behind another, so CPU-bound work spreads over processes before
                // concurrency lets one worker hold several jobs.
                if !self.slots[i].inflight.is_empty()
                    && self.slots.len() < self.cfg.max_workers
                    && spawning == 0
                    && !self.closing
                    && !self.grow_failed
                {
                    self.push_spawn();
                    break;
                }
                self.queue.pop_front();
                let worker = self.slots[i].id;
                self.slots[i].inflight.push_back((job, None));
                self.actions.push_back(Action::Send { worker, job });
                continue;
            }
            if self.slots.len() < self.cfg.max_workers
                && spawning * conc < self.queue.len()
                && !(self.closing && self.slots.iter().any(|s| s.state != WorkerState::Closing))
                && !(self.grow_failed && self.slots.iter().any(|s| s.state == WorkerState::Ready))
            {
                self.push_spawn();
            }
            break;
        }
    }

    fn push_spawn(&mut self) {
        let id = self.next_worker;
        self.next_worker += 1;
        self.slots.push(Slot {
            id,
            state: WorkerState::Spawning,
            inflight: VecDeque::new(),
            done: 0,
        });
        self.actions.push_back(Action::Spawn(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(max: usize, backlog: Option<usize>) -> SchedConfig {
        SchedConfig {
            max_workers: max,
            concurrency: 1,
            max_backlog: backlog,
            max_request_time: None,
        }
    }

    fn p(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    /// Carries out actions like an engine whose spawns always succeed; returns the sends.
    fn run(s: &mut Scheduler, now: Instant) -> Vec<(WorkerId, JobId)> {
        let mut sends = Vec::new();
        while let Some(a) = s.next_action() {
            match a {
                Action::Spawn(w) => s.spawned(w),
                Action::Send { worker, job } => {
                    s.mark_sent(worker, job, now);
                    sends.push((worker, job))
                }
            }
        }
        sends
    }

    #[test]
    fn spawns_lazily_up_to_max_and_one_job_per_worker() {
        let t = Instant::now();
        let mut s = Scheduler::new(cfg(2, None));
        s.submit(1, p("1")).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        assert_eq!(s.workers(), 1);
        for j in 2..=5 {
            s.submit(j, p("x")).unwrap();
        }
        assert_eq!(run(&mut s, t), vec![(2, 2)]);
        assert_eq!(s.workers(), 2);
        assert_eq!(s.queued(), 3);
    }

    fn conc(max: usize, c: usize) -> SchedConfig {
        SchedConfig {
            concurrency: c,
            ..cfg(max, None)
        }
    }

    #[test]
    fn with_concurrency_the_pool_grows_to_max_before_stacking_jobs() {
        let t = Instant::now();
        let mut s = Scheduler::new(conc(2, 3));
        for j in 1..=7 {
            s.submit(j, p("x")).unwrap();
        }
        let sends = run(&mut s, t);
        assert_eq!(s.workers(), 2);
        // Two workers, three jobs each, the seventh waits.
        assert_eq!(sends.iter().filter(|(w, _)| *w == 1).count(), 3);
        assert_eq!(sends.iter().filter(|(w, _)| *w == 2).count(), 3);
        assert_eq!(s.queued(), 1);
        // Replies may come in any order; each frees one slot on its worker.
        assert!(s.complete(2, 5, t).is_some());
        assert_eq!(run(&mut s, t), vec![(2, 7)]);
        assert_eq!(s.complete(2, 5, t), None, "a job completes once");
        assert_eq!(s.complete(1, 6, t), None, "not on the worker that holds it");
    }

    #[test]
    fn a_failed_spawn_beside_live_workers_stops_eager_growth() {
        let t = Instant::now();
        let mut s = Scheduler::new(conc(3, 4));
        s.submit(1, p("x")).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        s.submit(2, p("x")).unwrap();
        assert_eq!(s.next_action(), Some(Action::Spawn(2)));
        assert!(
            s.spawn_failed(2).is_empty(),
            "worker 1 can still run the job"
        );
        // No new spawn; the job stacks on worker 1 instead.
        assert_eq!(run(&mut s, t), vec![(1, 2)]);
        assert_eq!(s.workers(), 1);
        // Even a full worker does not restart the spawn loop; the queue waits for it.
        for j in 3..=6 {
            s.submit(j, p("x")).unwrap();
        }
        assert_eq!(run(&mut s, t), vec![(1, 3), (1, 4)]);
        assert_eq!(s.workers(), 1);
        assert_eq!(s.queued(), 2);
    }

    #[test]
    fn fail_queued_empties_the_queue_only() {
        let t = Instant::now();
        let mut s = Scheduler::new(cfg(1, None));
        for j in 1..=3 {
            s.submit(j, p("x")).unwrap();
        }
        run(&mut s, t);
        assert_eq!(s.fail_queued(), vec![2, 3]);
        assert_eq!(s.queued(), 0);
        assert_eq!(s.live_jobs(), 1);
        assert_eq!(s.inflight(1), 1);
        assert_eq!(s.payload(2), None);
    }

    #[test]
    fn a_reply_hands_the_queue_head_to_the_same_worker() {
        let t = Instant::now();
        let mut s = Scheduler::new(cfg(1, None));
        for j in 1..=3 {
            s.submit(j, p("x")).unwrap();
        }
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        assert_eq!(s.complete_oldest(1, t), Some((1, 0.0)));
        assert_eq!(run(&mut s, t), vec![(1, 2)]);
        assert_eq!(s.payload(2), Some(&b"x"[..]));
        assert_eq!(s.payload(1), None);
    }

    #[test]
    fn a_stray_reply_completes_nothing() {
        let t = Instant::now();
        let mut s = Scheduler::new(cfg(1, None));
        s.submit(1, p("x")).unwrap();
        run(&mut s, t);
        assert!(s.complete_oldest(1, t).is_some());
        assert_eq!(s.complete_oldest(1, t), None);
        assert_eq!(s.live_jobs(), 0);
    }

    #[test]
    fn backlog_counts_only_waiting_jobs() {
        let t = Instant::now();
        let mut s = Scheduler::new(cfg(1, Some(2)));
        s.submit(1, p("x")).unwrap();
        run(&mut s, t);
        s.submit(2, p("x")).unwrap();
        s.submit(3, p("x")).unwrap();
        assert_eq!(s.submit(4, p("x")), Err(Reject::Backlog(2)));
        assert_eq!(s.live_jobs(), 3);
    }

    #[test]
    fn a_lost_worker_returns_its_job_and_the_queue_moves_to_a_replacement() {
        let t = Instant::now();
        let mut s = Scheduler::new(cfg(1, None));
        for j in 1..=3 {
            s.submit(j, p("x")).unwrap();
        }
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        assert_eq!(s.worker_lost(1), vec![1]);
        // No stall: a replacement is spawned for the queued work at once.
        assert_eq!(run(&mut s, t), vec![(2, 2)]);
        assert_eq!(s.live_jobs(), 2);
    }

    #[test]
    fn a_closing_worker_gets_no_new_work() {
        let t = Instant::now();
        let mut s = Scheduler::new(cfg(2, None));
        s.submit(1, p("x")).unwrap();
        run(&mut s, t);
        s.worker_closing(1);
        assert_eq!(s.complete_oldest(1, t).map(|c| c.0), Some(1));
        s.submit(2, p("x")).unwrap();
        assert_eq!(run(&mut s, t), vec![(2, 2)]);
    }

    #[test]
    fn failed_spawns_fail_the_queue_when_no_worker_is_left() {
        let mut s = Scheduler::new(cfg(2, None));
        s.submit(1, p("x")).unwrap();
        s.submit(2, p("x")).unwrap();
        // Two queued jobs ask for two workers; the queue fails only when the last one fails.
        assert_eq!(s.next_action(), Some(Action::Spawn(1)));
        assert_eq!(s.next_action(), Some(Action::Spawn(2)));
        assert_eq!(s.spawn_failed(1), Vec::<JobId>::new());
        assert_eq!(s.spawn_failed(2), vec![1, 2]);
        assert_eq!(s.live_jobs(), 0);
    }

    #[test]
    fn close_without_drain_returns_the_queue_and_refuses_work() {
        let t = Instant::now();
        let mut s = Scheduler::new(cfg(1, None));
        for j in 1..=3 {
            s.submit(j, p("x")).unwrap();
        }
        run(&mut s, t);
        assert_eq!(s.close(false), vec![2, 3]);
        assert_eq!(s.submit(9, p("x")), Err(Reject::Closed));
        assert_eq!(s.complete_oldest(1, t).map(|c| c.0), Some(1));
        assert!(run(&mut s, t).is_empty());
    }

    #[test]
    fn close_with_drain_keeps_running_the_queue() {
        let t = Instant::now();
        let mut s = Scheduler::new(cfg(1, None));
        for j in 1..=2 {
            s.submit(j, p("x")).unwrap();
        }
        run(&mut s, t);
        assert!(s.close(true).is_empty());
        s.complete_oldest(1, t);
        assert_eq!(run(&mut s, t), vec![(1, 2)]);
    }

    #[test]
    fn expected_duration_rejects_after_warmup() {
        let t = Instant::now();
        let mut s = Scheduler::new(SchedConfig {
            max_request_time: Some(0.5),
            ..cfg(1, None)
        });
        // warm-up is 2 × max_workers = 2 jobs; then one sample of 0.2 s.
        for j in 1..=3 {
            s.submit(j, p("x")).unwrap();
            run(&mut s, t);
            s.complete_oldest(1, t + Duration::from_millis(200))
                .unwrap();
        }
        // Two queued behind one worker: (2/1) × 0.2 + 0.2 = 0.6 > 0.5.
        s.submit(4, p("x")).unwrap();
        run(&mut s, t);
        s.submit(5, p("x")).unwrap();
        s.submit(6, p("x")).unwrap();
        match s.submit(7, p("x")) {
            Err(Reject::Duration(x)) => assert!((x - 0.6).abs() < 1e-6, "{x}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn concurrency_fills_least_loaded_workers_and_completes_by_id() {
        let t = Instant::now();
        let mut s = Scheduler::new(SchedConfig {
            concurrency: 3,
            ..cfg(2, None)
        });
        for j in 1..=7 {
            s.submit(j, p("x")).unwrap();
        }
        let sends = run(&mut s, t);
        assert_eq!(sends.len(), 6);
        assert_eq!(sends.iter().filter(|(w, _)| *w == 1).count(), 3);
        assert_eq!(sends.iter().filter(|(w, _)| *w == 2).count(), 3);
        let (w, j) = sends[1];
        assert!(s.complete(w, j, t).is_some());
        assert!(s.complete(w, j, t).is_none());
        assert_eq!(run(&mut s, t), vec![(w, 7)]);
    }
}
