//! The scheduler: a pure state machine over the job queue and the worker slots. It performs no
//! I/O and reads no clock; the engine feeds it events (a job submitted, a worker spawned, a
//! reply read, a worker gone, the time) and carries out the actions it emits (spawn a worker,
//! send a job, stop a worker). That keeps every scheduling rule testable without processes.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::burst::{self, Burst, RecentRuns};
use crate::estimator::Estimator;
use crate::idhash::IdMap;

/// How long a worker may take to start before the run timeouts of the jobs sent to it count
/// anyway.
pub const STARTUP_ALLOWANCE: Duration = Duration::from_secs(30);

/// A job's id, chosen by the submitter and unique among live jobs.
pub type JobId = u32;
/// A worker slot's id, unique for the life of the scheduler.
pub type WorkerId = u64;
/// A requestor group's id ([`Scheduler::submit_in`]); 0 is the jobs without a group. Ids are
/// not reused: a group is forgotten once it has no live job.
pub type GroupId = u32;

/// Which worker with a free slot takes the next job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The one with the fewest jobs in flight (an idle one first).
    #[default]
    LeastBusy,
    /// The next one after the last chosen, in spawn order.
    RoundRobin,
    /// At random, weighted by free slots (proletariat's default).
    Random,
}

/// How free slots are shared among the waiting jobs' groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fairness {
    /// The queue's order: highest priority first, first come first served within it.
    #[default]
    Fifo,
    /// The groups whose best waiting job is at the highest waiting priority take turns (jobs
    /// without a group count as one group); within a group, the queue's order.
    RoundRobin,
}

#[derive(Debug, Clone)]
pub struct SchedConfig {
    /// Most worker processes at once (spawned as jobs need them).
    pub max_workers: usize,
    /// Workers kept running even when idle; also started at once.
    pub min_workers: usize,
    /// Most jobs in flight on one worker.
    pub concurrency: usize,
    /// Most jobs waiting for a worker; `None` is unlimited.
    pub max_backlog: Option<usize>,
    /// Reject a job whose expected completion is further away than this many seconds.
    pub max_request_time: Option<f64>,
    /// The pool grows by at most one worker per this interval (the first worker, and workers
    /// up to `min_workers`, start at once).
    pub spawn_delay: Duration,
    /// A worker idle this long is stopped, unless that leaves fewer than `min_workers`.
    pub idle_timeout: Option<Duration>,
    /// A worker that completed this many jobs takes no more and is replaced.
    pub max_jobs_per_worker: Option<u64>,
    /// Guaranteed slots per priority range (proletariat's `prioritySlots`): each entry is the
    /// lowest priority of a range (finite, > 0) and its slots. The range below the first entry
    /// (from 0, and every negative priority) has the rest of `max_workers × concurrency`.
    /// Empty: no caps.
    pub priority_slots: Vec<(f64, usize)>,
    /// proletariat's `SACRED_GUARANTEES`: a range borrows only from the lowest range.
    pub sacred_guarantees: bool,
    /// How free slots are shared among groups.
    pub fairness: Fairness,
    /// A worker that last served group G takes G's best waiting job first (unless the job it
    /// would take otherwise has a higher priority).
    pub group_affinity: bool,
    /// Which worker with a free slot takes the next job.
    pub strategy: Strategy,
    /// Seed of [`Strategy::Random`]'s generator (0: from the clock).
    pub seed: u64,
    /// Most workers while a batch with a deadline runs behind ([`Scheduler::set_burst`]);
    /// at most `max_workers` (0, the default): no growth past `max_workers`.
    pub burst_workers: usize,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            max_workers: 1,
            min_workers: 0,
            concurrency: 1,
            max_backlog: None,
            max_request_time: None,
            spawn_delay: Duration::ZERO,
            idle_timeout: None,
            max_jobs_per_worker: None,
            priority_slots: Vec::new(),
            sacred_guarantees: false,
            fairness: Fairness::Fifo,
            group_affinity: false,
            strategy: Strategy::LeastBusy,
            seed: 0,
            burst_workers: 0,
        }
    }
}

impl SchedConfig {
    /// The priority ranges and the most jobs of each in flight at once, lowest range first:
    /// `(from, cap)`, the lowest range's `from` being 0 (it also holds negative priorities).
    /// proletariat's rule: the lowest range has the slots the others do not guarantee; a
    /// range's cap is the sum of its slots and those of every range below it, or, with
    /// `sacred_guarantees`, its own slots and the lowest range's. `None` when the guarantees
    /// exceed the slots. Empty without `priority_slots`.
    pub fn priority_caps(&self) -> Option<Vec<(f64, usize)>> {
        if self.priority_slots.is_empty() {
            return Some(Vec::new());
        }
        let total = self.max_workers.saturating_mul(self.concurrency);
        let mut ranges: Vec<(f64, usize)> = self
            .priority_slots
            .iter()
            .copied()
            .filter(|&(from, _)| from != 0.0)
            .collect();
        ranges.sort_by(|a, b| a.0.total_cmp(&b.0));
        let guaranteed = ranges
            .iter()
            .try_fold(0usize, |sum, r| sum.checked_add(r.1))?;
        let rest = total.checked_sub(guaranteed)?;
        let mut caps = vec![(0.0, rest)];
        let mut sum = rest;
        for (from, n) in ranges {
            sum += n;
            caps.push((
                from,
                if self.sacred_guarantees {
                    rest + n
                } else {
                    sum
                },
            ));
        }
        Some(caps)
    }
}

/// Per-job options.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobOpts {
    /// Times the job is run again on another worker if its worker dies while holding it.
    pub retries: u32,
    /// Longest run time on a worker, from the moment it is written there.
    pub timeout: Option<Duration>,
    /// Higher runs sooner; equal priorities run in submission order. Must be finite.
    pub priority: f64,
    /// Longest wait in the queue before a worker takes the job (proletariat's EATO); past it
    /// the job is withdrawn ([`Overdue::Queue`]) and never runs. A retried job waits anew:
    /// this counts again from its return to the queue.
    pub queue_timeout: Option<Duration>,
    /// Longest time from submission to settlement (proletariat's ECSTO), retries included:
    /// past it the job is withdrawn, queued or running ([`Overdue::Total`]).
    pub total_timeout: Option<Duration>,
    /// The worker the job goes to when it is dispatched, if that worker takes work and has a
    /// free slot then (a custom `selectWorker`'s choice); otherwise the strategy's.
    pub prefer: Option<WorkerId>,
    /// The batch with a deadline it belongs to ([`Scheduler::set_burst`]; 0: none): its run
    /// time counts in that batch's estimate.
    pub batch: u32,
}

/// Why a job's own deadline withdrew it (see [`Scheduler::take_overdue`] and
/// [`Scheduler::overdue_running`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overdue {
    /// It waited longer than its `queue_timeout` (for this long) without a worker taking it.
    Queue { waited: Duration },
    /// Its `total_timeout` passed while it waited (a running one is reported by
    /// [`Scheduler::overdue_running`] instead).
    Total,
}

/// A finite priority, ordered (`-0.0` is taken as `0.0`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Prio(f64);

impl Eq for Prio {}

impl PartialOrd for Prio {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Prio {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A place in the queue: highest priority first, then by sequence (retried jobs get sequences
/// below every other, so they go to the head of their level).
type QKey = (Reverse<Prio>, i64);

/// The waiting jobs, in dispatch order. Every operation is O(log n).
#[derive(Default)]
struct Queue {
    map: BTreeMap<QKey, JobId>,
    /// Next sequence at the back (counts up) and at the front (counts down).
    back: i64,
    front: i64,
}

impl Queue {
    fn key(priority: f64, seq: i64) -> QKey {
        (Reverse(Prio(priority + 0.0)), seq)
    }

    fn push_back(&mut self, priority: f64, job: JobId) -> QKey {
        let k = Self::key(priority, self.back);
        self.back += 1;
        self.map.insert(k, job);
        k
    }

    fn push_front(&mut self, priority: f64, job: JobId) -> QKey {
        self.front -= 1;
        let k = Self::key(priority, self.front);
        self.map.insert(k, job);
        k
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn remove(&mut self, key: &QKey) -> bool {
        self.map.remove(key).is_some()
    }

    fn first(&self) -> Option<(QKey, JobId)> {
        self.map.first_key_value().map(|(k, j)| (*k, *j))
    }

    /// The first job at a priority below `from`.
    fn first_below(&self, from: f64) -> Option<(QKey, JobId)> {
        self.map
            .range((Bound::Excluded(Self::key(from, i64::MAX)), Bound::Unbounded))
            .next()
            .map(|(k, j)| (*k, *j))
    }

    fn drain(&mut self) -> Vec<JobId> {
        std::mem::take(&mut self.map).into_values().collect()
    }
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
    /// Stop this worker: it is idle and not needed, or it was recycled or retired and has
    /// answered everything. It takes no more work; report `worker_lost` when it is gone.
    Stop(WorkerId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    Spawning,
    Ready,
    /// Takes no new work (its channel closed, it asked to retire, or the pool is closing).
    Closing,
}

/// Why a worker was stopped, as its exit reports it (`workerExit`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Nobody asked: it died on its own (or its channel broke).
    Crash,
    /// Idle longer than `idle_timeout`, above `min_workers`.
    Idle,
    /// It completed `max_jobs_per_worker` jobs.
    Recycled,
    /// It asked to retire.
    Retired,
    /// Its resident memory passed `max_rss`.
    Memory,
    /// Killed: a job of it ran past its timeout.
    Timeout,
    /// Killed: a job of it was cancelled (its caller aborted).
    Aborted,
    /// Killed: it broke the protocol.
    Protocol,
    /// The pool shut down.
    Shutdown,
}

impl StopReason {
    /// The reason's name in the EXITED record.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Crash => "crash",
            StopReason::Idle => "idle",
            StopReason::Recycled => "recycled",
            StopReason::Retired => "retired",
            StopReason::Memory => "memory",
            StopReason::Timeout => "timeout",
            StopReason::Aborted => "aborted",
            StopReason::Protocol => "protocol",
            StopReason::Shutdown => "shutdown",
        }
    }

    /// Whether the pool ended the worker on purpose: anything but a crash.
    pub fn expected(self) -> bool {
        self != StopReason::Crash
    }
}

/// What `cancel` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The job was waiting; it is gone.
    Queued,
    /// The job runs on this worker; it is gone from the scheduler, and the worker, which
    /// cannot be told to stop one job safely, must be stopped by the caller.
    Running(WorkerId),
    /// No such live job.
    Unknown,
}

/// A job's bytes for the worker. A large one is shared ([`Scheduler::shared_payload`]), so
/// the engine writes it to the worker straight from here instead of copying it into the
/// channel's output buffer (the job keeps it for a retry).
enum Payload {
    Inline(Box<[u8]>),
    Shared(Arc<Box<[u8]>>),
}

/// Payloads of at least this many bytes are [`Payload::Shared`].
const SHARED_PAYLOAD: usize = 64 * 1024;

impl Payload {
    fn new(bytes: Box<[u8]>) -> Self {
        if bytes.len() >= SHARED_PAYLOAD {
            Payload::Shared(Arc::new(bytes))
        } else {
            Payload::Inline(bytes)
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Inline(b) => b,
            Payload::Shared(b) => b,
        }
    }
}

struct Job {
    payload: Payload,
    retries_left: u32,
    timeout: Option<Duration>,
    submitted: Instant,
    priority: f64,
    /// Its place in the queue while it waits.
    queued: Option<QKey>,
    group: GroupId,
    /// Its own deadlines and preferred worker, when it has any (boxed: most jobs have none,
    /// and a job without them stays small).
    extra: Option<Box<JobExtra>>,
}

struct JobExtra {
    queue_timeout: Option<Duration>,
    /// When its `total_timeout` ends (kept across retries; `None` once reported).
    total_deadline: Option<Instant>,
    /// While it waits: the deadline that withdraws it first, its entry in `waits` (and
    /// whether it is the total one), and since when it waits.
    wait_deadline: Option<(Instant, bool)>,
    waiting_since: Instant,
    prefer: Option<WorkerId>,
    batch: u32,
}

impl Job {
    fn total_deadline(&self) -> Option<Instant> {
        self.extra.as_ref().and_then(|x| x.total_deadline)
    }

    fn wait_deadline(&self) -> Option<(Instant, bool)> {
        self.extra.as_ref().and_then(|x| x.wait_deadline)
    }
}

/// A requestor group: its name, its live jobs, and (when jobs are chosen by group) its
/// waiting jobs in queue order.
struct Group {
    name: Box<str>,
    live: usize,
    waiting: BTreeMap<QKey, JobId>,
    /// Its entry in the round-robin rotation (an entry with another stamp is stale).
    turn: Option<u64>,
}

struct Slot {
    id: WorkerId,
    state: WorkerState,
    /// Jobs assigned to this worker with the instant they were sent (`None`: assigned, not
    /// yet written).
    inflight: VecDeque<(JobId, Option<Instant>)>,
    done: u64,
    /// Since when the worker has had nothing to do (a Ready worker with no job).
    idle_since: Option<Instant>,
    /// Stop the worker (emit `Stop`) once its last job is answered, for this reason.
    stop_when_idle: Option<StopReason>,
    /// Why the scheduler emitted `Stop` for this worker (see [`Scheduler::planned_stop`]).
    planned: Option<StopReason>,
    /// The worker said it is serving (its startup is over): run timeouts count from here.
    serving: bool,
    /// The group of the job it was last given.
    last_group: GroupId,
    /// The worker was told to stop (or killed), and why.
    stop: Option<StopReason>,
    /// Jobs cancelled while running here (see [`Scheduler::cancel_running`]): still in
    /// `inflight`, holding their place until the worker answers them, each with the instant
    /// after which the worker is killed (`None` once that was reported) and whether a timeout
    /// (rather than an abort) cancelled it.
    cancelled: Vec<(JobId, Option<Instant>, bool)>,
}

/// What a worker slot looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub id: WorkerId,
    pub state: WorkerState,
    pub inflight: usize,
    pub done: u64,
}

/// Recent samples, for percentiles, and every sample since the start in fixed buckets
/// (`pool.metrics()`). The buckets are counted lazily: a sample is only stored when it comes
/// (two per job, in the engine's hot path), and the samples not counted yet are counted in one
/// go before the ring overwrites them, or when the histogram is read.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    buf: Vec<f64>,
    next: usize,
    /// The newest samples not counted in `hist` yet (at most `SAMPLES`).
    unfolded: usize,
    hist: crate::metrics::Histogram,
}

const SAMPLES: usize = 2048;

impl Samples {
    #[inline]
    fn push(&mut self, v: f64) {
        if self.unfolded == SAMPLES {
            self.fold();
        }
        if self.buf.len() < SAMPLES {
            self.buf.push(v);
        } else {
            self.buf[self.next] = v;
        }
        self.next = (self.next + 1) % SAMPLES;
        self.unfolded += 1;
    }

    /// The samples not counted yet: the `unfolded` ones before `next`, oldest first.
    fn pending(&self) -> impl Iterator<Item = f64> + '_ {
        let len = self.buf.len();
        (0..self.unfolded).map(move |k| self.buf[(self.next + len - self.unfolded + k) % len])
    }

    #[cold]
    fn fold(&mut self) {
        let mut hist = std::mem::take(&mut self.hist);
        for v in self.pending() {
            hist.observe(v);
        }
        self.hist = hist;
        self.unfolded = 0;
    }

    /// Every sample since the start, in fixed buckets.
    pub fn histogram(&self) -> crate::metrics::Histogram {
        let mut hist = self.hist.clone();
        for v in self.pending() {
            hist.observe(v);
        }
        hist
    }

    /// The given percentiles (0..=100) of the recent samples, or `None` without samples.
    pub fn percentiles(&self, ps: &[f64]) -> Option<Vec<f64>> {
        if self.buf.is_empty() {
            return None;
        }
        let mut v = self.buf.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        Some(
            ps.iter()
                .map(|p| {
                    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
                    v[rank.min(v.len() - 1)]
                })
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Counters and samples for `stats`.
#[derive(Debug, Default, Clone)]
pub struct SchedStats {
    /// Jobs put back in the queue after their worker died.
    pub retried: u64,
    /// Seconds from submission to being written to a worker.
    pub wait: Samples,
    /// Seconds from being written to a worker to its reply.
    pub run: Samples,
    /// Completions per second over the last few seconds.
    buckets: [(u64, u64); 10],
}

impl SchedStats {
    fn completed_at(&mut self, secs: u64) {
        let b = &mut self.buckets[(secs % 10) as usize];
        if b.0 != secs {
            *b = (secs, 0);
        }
        b.1 += 1;
    }

    /// Completions per second over the last ten seconds, `uptime` after the start: the
    /// completions of the current second and of the nine before it, over the time they span
    /// (the time since the start while that is shorter), counted as at least one second so
    /// that a first job does not read as thousands per second.
    pub fn throughput(&self, uptime: Duration) -> f64 {
        let now_secs = uptime.as_secs();
        let total: u64 = self
            .buckets
            .iter()
            .filter(|b| b.0 <= now_secs && b.0 + 10 > now_secs)
            .map(|b| b.1)
            .sum();
        let from = now_secs.saturating_sub(9) as f64;
        let span = uptime.as_secs_f64() - from;
        total as f64 / span.max(1.0)
    }
}

pub struct Scheduler {
    cfg: SchedConfig,
    jobs: IdMap<JobId, Job>,
    queue: Queue,
    /// `(from, cap)` per priority range, lowest first (see [`SchedConfig::priority_caps`]);
    /// empty without `priority_slots`.
    caps: Vec<(f64, usize)>,
    /// Jobs of each range on workers (only with caps).
    range_inflight: Vec<usize>,
    /// The range of each job on a worker (only with caps).
    running_range: IdMap<JobId, usize>,
    slots: Vec<Slot>,
    next_worker: WorkerId,
    actions: VecDeque<Action>,
    estimator: Estimator,
    closing: bool,
    /// A spawn failed while other workers lived: stop growing the pool ahead of need until a
    /// spawn succeeds again, so a failing executable is not retried in a loop.
    grow_failed: bool,
    /// The clock, as last told by the engine.
    now: Instant,
    /// When the pool started its latest worker (for `spawn_delay`).
    last_spawn: Option<Instant>,
    /// A spawn was held back by `spawn_delay`.
    spawn_held: bool,
    /// Run deadlines of jobs in flight (lazily cleaned: an entry whose job is gone is skipped).
    deadlines: BinaryHeap<Reverse<(Instant, JobId)>>,
    /// Run deadline of each job in flight that has one.
    job_deadline: IdMap<JobId, Instant>,
    /// The deadlines of waiting jobs that have one (the earlier of their queue and total
    /// deadlines), soonest first: an entry goes when its job leaves the queue, so expiry and
    /// dispatch stay O(log n) and nothing stale piles up.
    waits: BTreeSet<(Instant, JobId)>,
    /// The total deadlines of jobs on workers.
    running_totals: BTreeSet<(Instant, JobId)>,
    /// Waiting jobs withdrawn by their deadline, for the engine to fail
    /// ([`Scheduler::take_overdue`]).
    overdue: Vec<(JobId, Overdue)>,
    /// Groups with live jobs (and group 0 when jobs are chosen by group), by id and by name.
    groups: IdMap<GroupId, Group>,
    group_ids: HashMap<Box<str>, GroupId>,
    next_group: GroupId,
    /// Jobs are chosen by group (round-robin fairness or group affinity): each group keeps
    /// its waiting jobs. Off, groups cost nothing per dispatch.
    by_group: bool,
    /// Round-robin: the groups with waiting jobs, next turn first, each with the stamp of its
    /// turn (lazily cleaned: an entry whose stamp is not its group's is skipped and dropped).
    rotation: VecDeque<(GroupId, u64)>,
    turns: u64,
    /// Some job named a preferred worker (jobs are then looked up at dispatch).
    prefers: bool,
    /// [`Strategy::RoundRobin`]: the slot index to look from next.
    rr_next: usize,
    /// [`Strategy::Random`]: xorshift64* state (never 0).
    rng: u64,
    started: Instant,
    stats: SchedStats,
    /// `close(false)`: nothing runs any more, so nothing is retried.
    no_more_runs: bool,
    /// A worker failed to start: `min_workers` is not restored until new work is submitted
    /// (or a worker serves), or a broken worker would be restarted in a loop.
    min_held: bool,
    /// Batches with a deadline, by the host's id (see [`Scheduler::set_burst`]).
    bursts: HashMap<u32, Burst>,
    /// The most workers now: `max_workers`, or more while a batch runs behind its deadline.
    limit: usize,
    /// Jobs running twice (speculation): the worker of the first copy and of the second.
    copies: IdMap<JobId, (WorkerId, WorkerId)>,
    /// Copies that lost (the other copy settled the job, or the job was cancelled), marked
    /// cancelled on their workers, for the engine to cancel there ([`Scheduler::take_losers`]).
    losers: Vec<(WorkerId, JobId)>,
}

impl Scheduler {
    pub fn new(cfg: SchedConfig) -> Self {
        Self::new_at(cfg, Instant::now())
    }

    /// A scheduler whose clock starts at `now`. Starts `min_workers` at once.
    pub fn new_at(cfg: SchedConfig, now: Instant) -> Self {
        assert!(cfg.max_workers >= 1 && cfg.concurrency >= 1);
        assert!(cfg.min_workers <= cfg.max_workers);
        let warmup = 2 * cfg.max_workers as u64;
        let caps = cfg
            .priority_caps()
            .expect("priority_slots guarantee more than the slots");
        let by_group = cfg.fairness == Fairness::RoundRobin || cfg.group_affinity;
        let mut s = Scheduler {
            cfg,
            jobs: IdMap::default(),
            queue: Queue::default(),
            range_inflight: vec![0; caps.len()],
            caps,
            running_range: IdMap::default(),
            slots: Vec::new(),
            next_worker: 1,
            actions: VecDeque::new(),
            estimator: Estimator::new(warmup),
            closing: false,
            grow_failed: false,
            now,
            last_spawn: None,
            spawn_held: false,
            deadlines: BinaryHeap::new(),
            job_deadline: IdMap::default(),
            waits: BTreeSet::new(),
            running_totals: BTreeSet::new(),
            overdue: Vec::new(),
            groups: IdMap::default(),
            group_ids: HashMap::new(),
            next_group: 1,
            by_group: false,
            rotation: VecDeque::new(),
            turns: 0,
            prefers: false,
            rr_next: 0,
            rng: 0,
            started: now,
            stats: SchedStats::default(),
            no_more_runs: false,
            min_held: false,
            bursts: HashMap::new(),
            limit: 0,
            copies: IdMap::default(),
            losers: Vec::new(),
        };
        s.limit = s.cfg.max_workers;
        s.by_group = by_group;
        s.rng = match s.cfg.seed {
            0 => {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64);
                t | 1
            }
            seed => seed,
        };
        s.pump();
        s
    }

    pub fn config(&self) -> &SchedConfig {
        &self.cfg
    }

    /// The clock as last set.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Sets the clock. The engine calls this before each batch of events.
    pub fn set_now(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Admits a job or says why not. An admitted job is queued and dispatched at once when a
    /// worker is free (or one may be spawned).
    pub fn submit(&mut self, id: JobId, payload: Box<[u8]>) -> Result<(), Reject> {
        self.submit_with(id, payload, JobOpts::default())
    }

    pub fn submit_with(
        &mut self,
        id: JobId,
        payload: Box<[u8]>,
        opts: JobOpts,
    ) -> Result<(), Reject> {
        self.submit_in(id, payload, opts, None)
    }

    /// As [`Scheduler::submit_with`], for requestor group `group` (`None` or empty: none).
    pub fn submit_in(
        &mut self,
        id: JobId,
        payload: Box<[u8]>,
        opts: JobOpts,
        group: Option<&str>,
    ) -> Result<(), Reject> {
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
        debug_assert!(
            !self.jobs.contains_key(&id),
            "job id {id} reused while live"
        );
        let group = match group {
            Some(name) if !name.is_empty() => self.join_group(name),
            _ => 0,
        };
        self.prefers |= opts.prefer.is_some();
        self.jobs.insert(
            id,
            Job {
                payload: Payload::new(payload),
                retries_left: opts.retries,
                timeout: opts.timeout,
                submitted: self.now,
                priority: opts.priority,
                queued: None,
                group,
                extra: (opts.queue_timeout.is_some()
                    || opts.total_timeout.is_some()
                    || opts.prefer.is_some()
                    || opts.batch != 0)
                    .then(|| {
                        Box::new(JobExtra {
                            queue_timeout: opts.queue_timeout,
                            total_deadline: opts
                                .total_timeout
                                .and_then(|t| self.now.checked_add(t)),
                            wait_deadline: None,
                            waiting_since: self.now,
                            prefer: opts.prefer,
                            batch: opts.batch,
                        })
                    }),
            },
        );
        self.enqueue(id, false);
        self.min_held = false;
        self.pump();
        if let Some(max) = self.cfg.max_backlog {
            // The backlog counts only jobs that must wait: not those a worker took, nor those a
            // worker being started will take.
            // (A pool still growing, at `spawn_delay`'s pace, will take as many as its missing
            // workers hold: they do not count either.)
            let spawning = self.spawning();
            let missing = self.cfg.max_workers.saturating_sub(self.slots.len());
            let starting = (spawning + missing) * self.cfg.concurrency;
            if self.queue.len() > max + starting
                && self.jobs.get(&id).is_some_and(|j| j.queued.is_some())
            {
                self.forget(id);
                return Err(Reject::Backlog(max));
            }
        }
        Ok(())
    }

    /// The next thing the engine must do.
    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The bytes to send for a job (while it is live).
    pub fn payload(&self, job: JobId) -> Option<&[u8]> {
        self.jobs.get(&job).map(|j| j.payload.bytes())
    }

    /// Job `job`'s payload when it is large enough to be shared rather than copied on its way
    /// to the worker (at least 64 KiB); `None` for a smaller one (use [`payload`](Self::payload)).
    pub fn shared_payload(&self, job: JobId) -> Option<Arc<Box<[u8]>>> {
        match &self.jobs.get(&job)?.payload {
            Payload::Shared(b) => Some(b.clone()),
            Payload::Inline(_) => None,
        }
    }

    /// A `Spawn` succeeded: the slot takes work from now on.
    pub fn spawned(&mut self, worker: WorkerId) {
        let now = self.now;
        if let Some(s) = self.slot_mut(worker) {
            if s.state == WorkerState::Spawning {
                s.state = WorkerState::Ready;
                s.idle_since = Some(now);
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
            self.fail_queued()
        } else {
            self.grow_failed = true;
            // A live worker with room can take the job now; no new spawn is asked for here.
            if self.slots.iter().any(|s| s.state == WorkerState::Ready) {
                self.pump();
            }
            Vec::new()
        }
    }

    /// A worker failed to start (its module or init failed): stop keeping `min_workers` until
    /// new work comes, so that the pool does not restart a broken worker forever.
    pub fn startup_failed(&mut self) {
        self.min_held = true;
    }

    /// Removes every queued job and returns them, to be failed (a worker could not start, so
    /// they would only wait for a worker that fails the same way).
    pub fn fail_queued(&mut self) -> Vec<JobId> {
        let failed: Vec<JobId> = self.queue.drain();
        for j in &failed {
            if let Some(job) = self.jobs.remove(j) {
                self.leave_group(job.group);
            }
        }
        // Only waiting jobs have entries there.
        self.waits.clear();
        for g in self.groups.values_mut() {
            g.waiting.clear();
            g.turn = None;
        }
        self.rotation.clear();
        failed
    }

    /// Whether a job is in flight on a worker.
    pub fn inflight_on(&self, worker: WorkerId, job: JobId) -> bool {
        self.slots.iter().find(|s| s.id == worker).is_some_and(|s| {
            s.inflight.iter().any(|(j, _)| *j == job) && !s.cancelled.iter().any(|c| c.0 == job)
        })
    }

    /// The engine wrote the job to its worker; service time counts from here, and so does its
    /// run timeout once the worker is serving (a worker still starting up does not eat into
    /// the jobs' time).
    pub fn mark_sent(&mut self, worker: WorkerId, job: JobId, now: Instant) {
        self.set_now(now);
        let mut serving = false;
        if let Some(s) = self.slots.iter_mut().find(|s| s.id == worker) {
            serving = s.serving;
            if let Some(e) = s.inflight.iter_mut().find(|e| e.0 == job) {
                e.1 = Some(now);
            }
        }
        if let Some(j) = self
            .jobs
            .get(&job)
            .filter(|_| self.copies.is_empty() || !self.copies.contains_key(&job))
        {
            self.stats
                .wait
                .push(now.saturating_duration_since(j.submitted).as_secs_f64());
        }
        if serving {
            self.arm(job, Some(now));
        } else {
            // Armed for real when the worker says it serves; until then a worker that never
            // finishes starting still cannot hold the job forever.
            self.arm(job, now.checked_add(STARTUP_ALLOWANCE));
        }
    }

    /// Seconds from a live job's submission to `now`.
    pub fn waited(&self, job: JobId, now: Instant) -> Option<f64> {
        let j = self.jobs.get(&job)?;
        Some(now.saturating_duration_since(j.submitted).as_secs_f64())
    }

    /// Arms job `job`'s run deadline `from` then (`None`: a start beyond what an `Instant`
    /// holds). A deadline past the end of time is none: the job never times out.
    fn arm(&mut self, job: JobId, from: Option<Instant>) {
        if let Some(t) = self.jobs.get(&job).and_then(|j| j.timeout) {
            let Some(at) = from.and_then(|f| f.checked_add(t)) else {
                self.job_deadline.remove(&job);
                return;
            };
            self.job_deadline.insert(job, at);
            self.deadlines.push(Reverse((at, job)));
        }
    }

    /// The worker finished starting (it said `ready`; a worker without that message serves
    /// as soon as it is spawned). Run timeouts of the jobs already sent to it start now.
    pub fn worker_serving(&mut self, worker: WorkerId, now: Instant) {
        self.set_now(now);
        let Some(s) = self.slots.iter_mut().find(|s| s.id == worker) else {
            return;
        };
        if s.serving {
            return;
        }
        s.serving = true;
        self.min_held = false;
        let sent: Vec<JobId> = s
            .inflight
            .iter()
            .filter(|(_, at)| at.is_some())
            .map(|(j, _)| *j)
            .collect();
        for job in sent {
            self.arm(job, Some(now));
        }
    }

    /// A reply arrived on a worker that runs one job at a time: it completes the oldest job
    /// sent there. Returns the job and its service time in seconds, or `None` for a reply with
    /// no job sent (a stray message, which must not be delivered anywhere: a job assigned but
    /// not yet written cannot have been answered).
    pub fn complete_oldest(&mut self, worker: WorkerId, now: Instant) -> Option<(JobId, f64)> {
        self.set_now(now);
        let slot = self.slots.iter_mut().find(|s| s.id == worker)?;
        let (_, Some(_)) = slot.inflight.front()? else {
            return None;
        };
        let (job, started) = slot.inflight.pop_front()?;
        Some(self.finish(worker, job, started.unwrap_or(now), now))
    }

    /// A reply for a given job id arrived on a worker. `None` if that job is not in flight there.
    pub fn complete(&mut self, worker: WorkerId, job: JobId, now: Instant) -> Option<f64> {
        self.set_now(now);
        let slot = self.slots.iter_mut().find(|s| s.id == worker)?;
        if slot.cancelled.iter().any(|c| c.0 == job) {
            return None;
        }
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
        self.left_worker(job);
        if !self.bursts.is_empty() {
            self.burst_sample(job, secs);
        }
        self.forget(job);
        if !self.copies.is_empty() {
            self.other_copy_loses(worker, job, None);
        }
        self.job_deadline.remove(&job);
        self.estimator.record(secs);
        self.stats.run.push(secs);
        let epoch = now.saturating_duration_since(self.started).as_secs();
        self.stats.completed_at(epoch);
        let max_jobs = self.cfg.max_jobs_per_worker;
        if let Some(s) = self.slot_mut(worker) {
            s.done += 1;
            if max_jobs.is_some_and(|m| s.done >= m) && s.state != WorkerState::Closing {
                // Recycled: it finishes what it holds, then stops; pump() finds a replacement.
                s.state = WorkerState::Closing;
                s.stop_when_idle = Some(StopReason::Recycled);
            }
        }
        self.after_job_left(worker);
        self.pump_to(worker);
        (job, secs)
    }

    /// Bookkeeping when a job leaves a worker: idleness, and the stop of a worker that was
    /// waiting for its last job.
    fn after_job_left(&mut self, worker: WorkerId) {
        let now = self.now;
        let mut stop = false;
        if let Some(s) = self.slot_mut(worker) {
            if s.inflight.is_empty() {
                if s.state == WorkerState::Ready {
                    s.idle_since = Some(now);
                } else if s.state == WorkerState::Closing && s.stop_when_idle.is_some() {
                    s.planned = s.stop_when_idle.take();
                    stop = true;
                }
            }
        }
        if stop {
            self.actions.push_back(Action::Stop(worker));
        }
    }

    /// The worker will take no new work (its channel closed, or it is being stopped).
    pub fn worker_closing(&mut self, worker: WorkerId) {
        if let Some(s) = self.slot_mut(worker) {
            s.state = WorkerState::Closing;
            s.stop_when_idle = None;
        }
        self.pump();
    }

    /// The worker is being stopped, for `reason`. Returns false if it was already: the caller
    /// signals it only once (and the first reason stays).
    pub fn stop_worker(&mut self, worker: WorkerId, reason: StopReason) -> bool {
        match self.slot_mut(worker) {
            Some(s) if s.stop.is_none() => s.stop = Some(reason),
            _ => return false,
        }
        self.worker_closing(worker);
        true
    }

    /// Whether the worker finished starting.
    pub fn is_serving(&self, worker: WorkerId) -> bool {
        self.slot_ref(worker).is_some_and(|s| s.serving)
    }

    /// Whether the worker was told to stop.
    pub fn is_stopping(&self, worker: WorkerId) -> bool {
        self.slot_ref(worker).is_some_and(|s| s.stop.is_some())
    }

    /// Why the worker was stopped (see [`Scheduler::stop_worker`]), if it was.
    pub fn stop_reason(&self, worker: WorkerId) -> Option<StopReason> {
        self.slot_ref(worker).and_then(|s| s.stop)
    }

    /// Why the scheduler emitted `Stop` for the worker: idle, recycled, retired or memory.
    pub fn planned_stop(&self, worker: WorkerId) -> StopReason {
        self.slot_ref(worker)
            .and_then(|s| s.planned)
            .unwrap_or(StopReason::Idle)
    }

    /// Whether the worker takes new work (it is not retiring or stopping).
    pub fn takes_work(&self, worker: WorkerId) -> bool {
        self.slot_ref(worker)
            .is_some_and(|s| s.state != WorkerState::Closing)
    }

    /// Whether some worker other than `except` has started and is not being stopped.
    pub fn another_serving(&self, except: WorkerId) -> bool {
        self.slots
            .iter()
            .any(|s| s.id != except && s.serving && s.stop.is_none())
    }

    /// Whether some worker is not being stopped.
    pub fn any_not_stopping(&self) -> bool {
        self.slots.iter().any(|s| s.stop.is_none())
    }

    /// The worker is retired (`why`: it asked, [`StopReason::Retired`], or it is over the
    /// memory limit, [`StopReason::Memory`]): no new work; a `Stop` follows once its jobs are
    /// answered.
    pub fn retire(&mut self, worker: WorkerId, why: StopReason) {
        let Some(s) = self.slot_mut(worker) else {
            return;
        };
        if s.state == WorkerState::Closing {
            return;
        }
        s.state = WorkerState::Closing;
        s.stop_when_idle = Some(why);
        self.after_job_left(worker);
        self.pump();
    }

    /// The worker is gone. Jobs it held that may be retried go back to the head of the queue;
    /// the others are returned, for the caller to fail.
    pub fn worker_lost(&mut self, worker: WorkerId) -> Vec<JobId> {
        let Some(pos) = self.slots.iter().position(|s| s.id == worker) else {
            return Vec::new();
        };
        let slot = self.slots.remove(pos);
        let mut lost = Vec::new();
        let mut retry = Vec::new();
        let no_more_runs = self.no_more_runs;
        for (j, _) in slot.inflight {
            if self.copies.contains_key(&j) && !slot.cancelled.iter().any(|c| c.0 == j) {
                // The other copy goes on, as the job: nothing is retried or lost.
                self.copies.remove(&j);
                continue;
            }
            self.left_worker(j);
            if slot.cancelled.iter().any(|c| c.0 == j) {
                // Settled when it was cancelled.
                continue;
            }
            self.job_deadline.remove(&j);
            match self.jobs.get_mut(&j) {
                Some(job) if job.retries_left > 0 && !no_more_runs => {
                    job.retries_left -= 1;
                    if let Some(at) = job.total_deadline() {
                        // Back to waiting: `enqueue` gives it a waiting deadline.
                        self.running_totals.remove(&(at, j));
                    }
                    retry.push(j);
                }
                _ => {
                    self.forget(j);
                    lost.push(j);
                }
            }
        }
        self.stats.retried += retry.len() as u64;
        for j in retry.into_iter().rev() {
            self.enqueue(j, true);
        }
        self.pump();
        lost
    }

    /// Removes a live job: a queued one simply goes; a running one leaves its worker, which
    /// takes no more work (the caller stops it).
    pub fn cancel(&mut self, job: JobId) -> Cancelled {
        let found = self.withdraw(job);
        if let Cancelled::Running(worker) = found {
            self.abandon(worker, job);
        }
        found
    }

    /// Where a live job is: a queued one is removed at once; a running one is only found (the
    /// caller abandons or cancels it there).
    fn withdraw(&mut self, job: JobId) -> Cancelled {
        if !self.jobs.contains_key(&job) {
            return Cancelled::Unknown;
        }
        if self.jobs.get(&job).is_some_and(|j| j.queued.is_some()) {
            self.forget(job);
            return Cancelled::Queued;
        }
        match self
            .slots
            .iter()
            .find(|s| s.inflight.iter().any(|(j, _)| *j == job))
        {
            Some(s) => Cancelled::Running(s.id),
            None => {
                self.forget(job);
                Cancelled::Unknown
            }
        }
    }

    /// Cancels job `job`, running on `worker` (its caller aborted, or it timed out:
    /// `timeout`): it is settled by the caller now, but keeps its place on the worker until the
    /// worker answers it ([`Scheduler::answer_cancelled`]), so that the worker's concurrency
    /// is not exceeded while it is still stopping the job. A worker that has not answered by
    /// `kill_at` is returned by [`Scheduler::cancel_overdue`], to be killed (`None`: never).
    /// The worker goes on taking work in its other places.
    pub fn cancel_running(
        &mut self,
        worker: WorkerId,
        job: JobId,
        kill_at: Option<Instant>,
        timeout: bool,
    ) {
        self.forget(job);
        self.job_deadline.remove(&job);
        if let Some(s) = self.slot_mut(worker) {
            if s.inflight.iter().any(|(j, _)| *j == job) && !s.cancelled.iter().any(|c| c.0 == job)
            {
                s.cancelled.push((job, kill_at, timeout));
            }
        }
        if !self.copies.is_empty() {
            self.other_copy_loses(worker, job, kill_at);
        }
    }

    /// Job `job` settled, or was cancelled, on `worker`: if it runs twice, the copy on the
    /// other worker is cancelled there (it keeps its place until answered, or until
    /// `kill_at`, which the engine may set later: [`Scheduler::set_cancel_deadline`]).
    fn other_copy_loses(&mut self, worker: WorkerId, job: JobId, kill_at: Option<Instant>) {
        let Some((a, b)) = self.copies.remove(&job) else {
            return;
        };
        let other = if a == worker { b } else { a };
        if let Some(s) = self.slot_mut(other) {
            if s.inflight.iter().any(|(j, _)| *j == job) && !s.cancelled.iter().any(|c| c.0 == job)
            {
                s.cancelled.push((job, kill_at, false));
                self.losers.push((other, job));
            }
        }
    }

    /// The losing copies of speculated jobs since the last call, each marked cancelled on its
    /// worker: the engine asks the worker to stop it (and sets when it is killed otherwise,
    /// [`Scheduler::set_cancel_deadline`]), or kills the worker.
    pub fn take_losers(&mut self) -> Vec<(WorkerId, JobId)> {
        std::mem::take(&mut self.losers)
    }

    /// Whether losing copies wait for [`Scheduler::take_losers`].
    pub fn has_losers(&self) -> bool {
        !self.losers.is_empty()
    }

    /// A job cancelled on `worker` must be answered by `at`, or the worker is killed
    /// ([`Scheduler::cancel_overdue`]).
    pub fn set_cancel_deadline(&mut self, worker: WorkerId, job: JobId, at: Option<Instant>) {
        if let Some(c) = self
            .slot_mut(worker)
            .and_then(|s| s.cancelled.iter_mut().find(|c| c.0 == job))
        {
            c.1 = at;
        }
    }

    /// Removes a live job like [`Scheduler::cancel`], except that a running one is cancelled
    /// with [`Scheduler::cancel_running`] (it stays on its worker until answered, or until
    /// `kill_at`) instead of abandoned.
    pub fn cancel_cooperative(&mut self, job: JobId, kill_at: Option<Instant>) -> Cancelled {
        let found = self.withdraw(job);
        if let Cancelled::Running(worker) = found {
            self.cancel_running(worker, job, kill_at, false);
        }
        found
    }

    /// A reply for job `job` arrived on `worker`: if that job was cancelled there, it leaves
    /// the worker now (its place is free; nothing is delivered: the caller was settled when it
    /// was cancelled) and this returns true.
    pub fn answer_cancelled(&mut self, worker: WorkerId, job: JobId) -> bool {
        let Some(s) = self.slot_mut(worker) else {
            return false;
        };
        let Some(pos) = s.cancelled.iter().position(|c| c.0 == job) else {
            return false;
        };
        s.cancelled.remove(pos);
        s.inflight.retain(|(j, _)| *j != job);
        self.left_worker(job);
        self.after_job_left(worker);
        self.pump_to(worker);
        true
    }

    /// Workers holding a cancelled job unanswered past its kill time, with that job and
    /// whether a timeout cancelled it. Each is returned once; the caller kills the worker.
    pub fn cancel_overdue(&mut self, now: Instant) -> Vec<(WorkerId, JobId, bool)> {
        self.set_now(now);
        let mut out = Vec::new();
        for s in &mut self.slots {
            for c in &mut s.cancelled {
                if c.1.is_some_and(|at| at <= now) {
                    c.1 = None;
                    out.push((s.id, c.0, c.2));
                }
            }
        }
        out
    }

    /// Jobs cancelled on `worker` and not answered yet.
    pub fn cancelled_on(&self, worker: WorkerId) -> usize {
        self.slot_ref(worker).map_or(0, |s| s.cancelled.len())
    }

    /// Drops a job from its worker (it timed out or was cancelled): the job is settled by the
    /// caller, and the worker, still busy with it, takes no more work.
    pub fn abandon(&mut self, worker: WorkerId, job: JobId) {
        self.forget(job);
        self.job_deadline.remove(&job);
        if !self.copies.is_empty() {
            self.other_copy_loses(worker, job, None);
        }
        if let Some(s) = self.slot_mut(worker) {
            let before = s.inflight.len();
            s.inflight.retain(|(j, _)| *j != job);
            if s.inflight.len() != before {
                self.left_worker(job);
            }
        }
        self.worker_closing(worker);
    }

    /// Jobs in flight whose run deadline has passed, with their workers. They stay in flight
    /// until the caller abandons them.
    pub fn expired(&mut self, now: Instant) -> Vec<(WorkerId, JobId)> {
        self.set_now(now);
        let mut out = Vec::new();
        while let Some(Reverse((at, job))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if self.job_deadline.get(&job) != Some(&at) {
                continue; // settled, or re-sent with a new deadline
            }
            self.job_deadline.remove(&job);
            if let Some(s) = self
                .slots
                .iter()
                .find(|s| s.inflight.iter().any(|(j, _)| *j == job))
            {
                out.push((s.id, job));
            }
        }
        out
    }

    /// Time-driven work: idle workers above `min_workers` are stopped, a held-back spawn is
    /// started. Call at `next_deadline()`.
    ///
    /// Workers above the current limit (a burst is over) go the same way once idle for
    /// `idle_timeout`, or, without one, as soon as they are idle.
    pub fn housekeeping(&mut self, now: Instant) {
        self.set_now(now);
        if !self.bursts.is_empty() {
            self.update_limit();
        }
        let idle = self.cfg.idle_timeout;
        let mut active = self.active();
        if idle.is_some() || active > self.limit {
            let mut stops = Vec::new();
            for s in &mut self.slots {
                if active <= self.cfg.min_workers {
                    break;
                }
                let due = match idle {
                    Some(idle) => s
                        .idle_since
                        .is_some_and(|t| t.checked_add(idle).is_some_and(|at| now >= at)),
                    None => active > self.limit,
                };
                if s.state == WorkerState::Ready && s.inflight.is_empty() && due {
                    s.state = WorkerState::Closing;
                    s.planned = Some(StopReason::Idle);
                    active -= 1;
                    stops.push(s.id);
                }
            }
            for w in stops {
                self.actions.push_back(Action::Stop(w));
            }
        }
        self.pump();
    }

    /// Registers (or updates) batch `batch`'s deadline: `remaining` of its jobs are not
    /// settled yet (those not submitted yet included, when known), and it must finish by
    /// `finish_by` (`None`: beyond what an `Instant` holds). While the batch's recent run
    /// times say the remaining work would end after its deadline, the pool grows past
    /// `max_workers`, up to `burst_workers` ([`burst::target_workers`]). `speculate`: its
    /// stragglers may be started again near the deadline. Jobs join it with
    /// [`JobOpts::batch`].
    pub fn set_burst(
        &mut self,
        batch: u32,
        finish_by: Option<Instant>,
        remaining: usize,
        speculate: bool,
    ) {
        let now = self.now;
        let b = self.bursts.entry(batch).or_insert_with(|| Burst {
            since: now,
            finish_by,
            remaining,
            speculate,
            runs: RecentRuns::default(),
        });
        b.finish_by = finish_by;
        b.remaining = remaining;
        b.speculate = speculate;
        self.update_limit();
        self.pump();
    }

    /// Batch `batch` is over (settled, failed or cancelled): it no longer counts.
    pub fn end_burst(&mut self, batch: u32) {
        if self.bursts.remove(&batch).is_some() {
            self.update_limit();
            self.pump();
        }
    }

    /// The most workers the pool may run now: `max_workers`, or more during a burst.
    pub fn worker_limit(&self) -> usize {
        self.limit
    }

    /// A job of a batch with a deadline finished in `secs`: a sample of that batch.
    fn burst_sample(&mut self, job: JobId, secs: f64) {
        let batch = self
            .jobs
            .get(&job)
            .and_then(|j| j.extra.as_ref())
            .map_or(0, |x| x.batch);
        if let Some(b) = self.bursts.get_mut(&batch) {
            b.runs.push(secs);
            self.update_limit();
        }
    }

    /// Speculation: while no job waits, each idle worker starts the longest-running straggler
    /// of a batch with `speculate` near its deadline ([`burst::near_from`]) again: a job that
    /// has run longer than twice its batch's recent p90 ([`burst::is_straggler`]), running
    /// once. The first copy to answer settles the job; the other is cancelled
    /// ([`Scheduler::take_losers`]).
    fn speculate(&mut self) {
        if self.closing || !self.bursts.values().any(|b| b.speculate) {
            return;
        }
        let now = self.now;
        while let Some(i) = self
            .slots
            .iter()
            .position(|s| s.state == WorkerState::Ready && s.inflight.is_empty())
        {
            let mut best: Option<(Instant, JobId, WorkerId)> = None;
            for s in &self.slots {
                for &(j, sent) in &s.inflight {
                    let Some(sent) = sent else {
                        continue;
                    };
                    if best.is_some_and(|(t, ..)| t <= sent)
                        || self.copies.contains_key(&j)
                        || s.cancelled.iter().any(|c| c.0 == j)
                    {
                        continue;
                    }
                    let Some(b) = self
                        .jobs
                        .get(&j)
                        .and_then(|job| job.extra.as_ref())
                        .and_then(|x| self.bursts.get(&x.batch))
                    else {
                        continue;
                    };
                    if b.speculate
                        && burst::near_from(b.since, b.finish_by).is_some_and(|n| now >= n)
                        && burst::is_straggler(&b.runs, now.saturating_duration_since(sent))
                    {
                        best = Some((sent, j, s.id));
                    }
                }
            }
            let Some((_, job, first)) = best else {
                return;
            };
            let copy = self.slots[i].id;
            self.copies.insert(job, (first, copy));
            self.slots[i].inflight.push_back((job, None));
            self.slots[i].idle_since = None;
            self.actions.push_back(Action::Send { worker: copy, job });
        }
    }

    /// When speculation may have something to do next (a batch comes near its deadline, a
    /// running job becomes a straggler), after now.
    fn next_speculation(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let now = self.now;
        let mut consider = |t: Instant| {
            if t > now && next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        for b in self.bursts.values().filter(|b| b.speculate) {
            if let Some(n) = burst::near_from(b.since, b.finish_by) {
                consider(n);
            }
        }
        for s in &self.slots {
            for &(j, sent) in &s.inflight {
                let Some(sent) = sent else {
                    continue;
                };
                let Some(b) = self
                    .jobs
                    .get(&j)
                    .and_then(|job| job.extra.as_ref())
                    .and_then(|x| self.bursts.get(&x.batch))
                    .filter(|b| b.speculate)
                else {
                    continue;
                };
                // A straggler counts only once its batch is near its deadline.
                let near = burst::near_from(b.since, b.finish_by);
                if let (Some(at), Some(near)) = (burst::straggler_at(&b.runs, sent), near) {
                    consider(at.max(near));
                }
            }
        }
        next
    }

    /// The limit the batches with a deadline ask for now: the largest of their targets.
    fn update_limit(&mut self) {
        let max = self.cfg.max_workers;
        let cap = self.cfg.burst_workers;
        let now = self.now;
        let conc = self.cfg.concurrency;
        self.limit = self
            .bursts
            .values()
            .map(|b| {
                // A deadline out of reach leaves all the time there is: no growth.
                let Some(end) = b.finish_by else {
                    return max;
                };
                let left = end.saturating_duration_since(now);
                burst::target_workers(left, b.remaining, b.runs.mean(), conc, max, cap)
            })
            .fold(max, usize::max);
    }

    /// The next instant at which `expired`/`housekeeping` have something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| {
            if next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        if let Some(Reverse((at, _))) = self.deadlines.peek() {
            consider(*at);
        }
        if let Some((at, _)) = self.waits.first() {
            consider(*at);
        }
        if let Some((at, _)) = self.running_totals.first() {
            consider(*at);
        }
        for s in &self.slots {
            for c in &s.cancelled {
                if let Some(at) = c.1 {
                    consider(at);
                }
            }
        }
        if self.spawn_held {
            if let Some(at) = self
                .last_spawn
                .and_then(|t| t.checked_add(self.cfg.spawn_delay))
            {
                consider(at);
            }
        }
        for b in self.bursts.values() {
            // Past its deadline the batch may use every worker it can keep busy.
            if let Some(end) = b.finish_by.filter(|&e| e > self.now && b.remaining > 0) {
                consider(end);
            }
        }
        if self.bursts.values().any(|b| b.speculate) {
            if let Some(at) = self.next_speculation() {
                consider(at);
            }
        }
        if self.cfg.idle_timeout.is_none() && self.active() > self.limit {
            // Workers above the limit leave as soon as they are idle.
            if self
                .slots
                .iter()
                .any(|s| s.state == WorkerState::Ready && s.inflight.is_empty())
            {
                consider(self.now);
            }
        }
        if let Some(idle) = self.cfg.idle_timeout {
            let active = self.active();
            if active > self.cfg.min_workers {
                for s in &self.slots {
                    if s.state == WorkerState::Ready && s.inflight.is_empty() {
                        if let Some(at) = s.idle_since.and_then(|t| t.checked_add(idle)) {
                            consider(at);
                        }
                    }
                }
            }
        }
        next
    }

    /// Stops admitting work. With `drain` false, the queued jobs are removed and returned (to
    /// be failed), and nothing is retried any more; with `drain` true they still run. No
    /// worker is spawned after this unless draining needs one.
    pub fn close(&mut self, drain: bool) -> Vec<JobId> {
        self.closing = true;
        if drain {
            self.pump();
            return Vec::new();
        }
        self.no_more_runs = true;
        self.fail_queued()
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

    pub fn stats(&self) -> &SchedStats {
        &self.stats
    }

    /// Time since the scheduler started, at `now` (the scheduler's own clock if that is
    /// later: it never runs backwards).
    pub fn uptime_at(&self, now: Instant) -> Duration {
        now.max(self.now).saturating_duration_since(self.started)
    }

    /// Workers that take work or will (not those being stopped).
    fn active(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state != WorkerState::Closing)
            .count()
    }

    fn spawning(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state == WorkerState::Spawning)
            .count()
    }

    fn slot_ref(&self, worker: WorkerId) -> Option<&Slot> {
        self.slots.iter().find(|s| s.id == worker)
    }

    fn slot_mut(&mut self, worker: WorkerId) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.id == worker)
    }

    /// Queues a job at the back of its priority level, or at its head (`front`: a retry).
    fn enqueue(&mut self, id: JobId, front: bool) {
        let now = self.now;
        if let Some(job) = self.jobs.get_mut(&id) {
            let k = if front {
                self.queue.push_front(job.priority, id)
            } else {
                self.queue.push_back(job.priority, id)
            };
            job.queued = Some(k);
            if self.by_group {
                let g = job.group;
                let grp = self.groups.entry(g).or_insert_with(|| Group {
                    name: "".into(),
                    live: 0,
                    waiting: BTreeMap::new(),
                    turn: None,
                });
                grp.waiting.insert(k, id);
                if self.cfg.fairness == Fairness::RoundRobin && grp.turn.is_none() {
                    // A group that starts waiting takes the last turn.
                    self.turns += 1;
                    grp.turn = Some(self.turns);
                    self.rotation.push_back((g, self.turns));
                }
            }
            if let Some(x) = job.extra.as_mut() {
                x.waiting_since = now;
                // A queue deadline past the end of time is none.
                let queue_at = x.queue_timeout.and_then(|t| now.checked_add(t));
                x.wait_deadline = match (queue_at, x.total_deadline) {
                    (Some(q), Some(t)) if t <= q => Some((t, true)),
                    (Some(q), _) => Some((q, false)),
                    (None, Some(t)) => Some((t, true)),
                    (None, None) => None,
                };
                if let Some((at, _)) = x.wait_deadline {
                    self.waits.insert((at, id));
                }
            }
        }
    }

    /// Removes a live job from the scheduler's books (its queue place and deadlines
    /// included; not from its worker).
    fn forget(&mut self, id: JobId) {
        let Some(job) = self.jobs.remove(&id) else {
            return;
        };
        if let Some(k) = job.queued {
            self.queue.remove(&k);
            self.unwait_group(job.group, &k);
            if let Some((at, _)) = job.wait_deadline() {
                self.waits.remove(&(at, id));
            }
        } else if let Some(at) = job.total_deadline() {
            self.running_totals.remove(&(at, id));
        }
        self.leave_group(job.group);
    }

    /// The id of group `name`, which gets one more live job.
    fn join_group(&mut self, name: &str) -> GroupId {
        if let Some(&g) = self.group_ids.get(name) {
            if let Some(grp) = self.groups.get_mut(&g) {
                grp.live += 1;
            }
            return g;
        }
        let g = self.next_group;
        self.next_group = self.next_group.checked_add(1).unwrap_or(1);
        self.group_ids.insert(name.into(), g);
        self.groups.insert(
            g,
            Group {
                name: name.into(),
                live: 1,
                waiting: BTreeMap::new(),
                turn: None,
            },
        );
        g
    }

    /// A job of group `g` is gone: a named group without live jobs is forgotten.
    fn leave_group(&mut self, g: GroupId) {
        if g == 0 {
            return;
        }
        let Some(grp) = self.groups.get_mut(&g) else {
            return;
        };
        grp.live -= 1;
        if grp.live == 0 {
            if let Some(grp) = self.groups.remove(&g) {
                self.group_ids.remove(&grp.name);
            }
        }
    }

    /// A waiting job of group `g` (at `k`) left the queue.
    fn unwait_group(&mut self, g: GroupId, k: &QKey) {
        if self.by_group {
            if let Some(grp) = self.groups.get_mut(&g) {
                grp.waiting.remove(k);
                if grp.waiting.is_empty() {
                    // Its entry in the rotation is stale now.
                    grp.turn = None;
                }
            }
        }
    }

    /// The name of group `g`, while it has live jobs.
    pub fn group_name(&self, g: GroupId) -> Option<&str> {
        self.groups
            .get(&g)
            .map(|grp| &*grp.name)
            .filter(|n| !n.is_empty())
    }

    /// Withdraws the waiting jobs whose deadline has passed (before anything is dispatched:
    /// a job past its deadline never runs). O(log n) per job withdrawn; nothing without
    /// deadlines.
    fn expire_waiting(&mut self) {
        while let Some(&(at, id)) = self.waits.first() {
            if at > self.now {
                break;
            }
            self.waits.pop_first();
            let Some(job) = self.jobs.remove(&id) else {
                continue;
            };
            if let Some(k) = job.queued {
                self.queue.remove(&k);
                self.unwait_group(job.group, &k);
            }
            self.leave_group(job.group);
            let why = match job.extra.as_deref() {
                Some(JobExtra {
                    wait_deadline: Some((_, true)),
                    ..
                }) => Overdue::Total,
                x => Overdue::Queue {
                    waited: x.map_or(Duration::ZERO, |x| {
                        self.now.saturating_duration_since(x.waiting_since)
                    }),
                },
            };
            self.overdue.push((id, why));
        }
    }

    /// Waiting jobs withdrawn by their queue or total deadline since the last call: each is
    /// gone from the scheduler, for the caller to fail.
    pub fn take_overdue(&mut self) -> Vec<(JobId, Overdue)> {
        std::mem::take(&mut self.overdue)
    }

    /// Whether waiting jobs were withdrawn by their deadline and not yet taken.
    pub fn has_overdue(&self) -> bool {
        !self.overdue.is_empty()
    }

    /// Jobs on workers whose total deadline has passed, with their workers. They stay on
    /// their workers until the caller cancels or abandons them; each is returned once.
    pub fn overdue_running(&mut self, now: Instant) -> Vec<(WorkerId, JobId)> {
        self.set_now(now);
        let mut out = Vec::new();
        while let Some(&(at, id)) = self.running_totals.first() {
            if at > now {
                break;
            }
            self.running_totals.pop_first();
            if let Some(x) = self.jobs.get_mut(&id).and_then(|j| j.extra.as_mut()) {
                // Returned once: the caller settles it.
                x.total_deadline = None;
            }
            if let Some(s) = self
                .slots
                .iter()
                .find(|s| s.inflight.iter().any(|(j, _)| *j == id))
            {
                out.push((s.id, id));
            }
        }
        out
    }

    /// The priority range of a job of priority `p`: the highest whose `from` is at most `p`
    /// (the lowest for negative priorities).
    fn range_of(&self, p: f64) -> usize {
        self.caps
            .iter()
            .rposition(|&(from, _)| from <= p)
            .unwrap_or(0)
    }

    /// The waiting job to dispatch next: the highest-priority one (first come first) whose
    /// range is under its cap.
    fn next_job(&self) -> Option<(QKey, JobId)> {
        let mut next = self.queue.first();
        if self.caps.is_empty() {
            return next;
        }
        while let Some((k, _)) = next {
            let r = self.range_of(k.0 .0 .0);
            if self.range_inflight[r] < self.caps[r].1 {
                return next;
            }
            if r == 0 {
                return None;
            }
            next = self.queue.first_below(self.caps[r].0);
        }
        None
    }

    /// Takes the job off the queue (it goes to a worker); returns its group.
    fn dequeue(&mut self, key: QKey, id: JobId) -> GroupId {
        self.queue.remove(&key);
        let mut group = 0;
        if let Some(job) = self.jobs.get_mut(&id) {
            group = job.group;
            job.queued = None;
            if let Some(x) = job.extra.as_mut() {
                if let Some((at, _)) = x.wait_deadline.take() {
                    self.waits.remove(&(at, id));
                }
                if let Some(at) = x.total_deadline {
                    self.running_totals.insert((at, id));
                }
            }
        }
        self.unwait_group(group, &key);
        if !self.caps.is_empty() {
            let r = self.range_of(key.0 .0 .0);
            self.range_inflight[r] += 1;
            self.running_range.insert(id, r);
        }
        group
    }

    /// Group `g` was served: it takes the last turn (its current entry goes stale).
    fn next_turn(&mut self, g: GroupId) {
        if self.cfg.fairness == Fairness::RoundRobin
            && self.groups.get(&g).is_some_and(|grp| grp.turn.is_some())
        {
            self.push_turn(g);
        }
    }

    fn push_turn(&mut self, g: GroupId) {
        self.turns += 1;
        if let Some(grp) = self.groups.get_mut(&g) {
            grp.turn = Some(self.turns);
            self.rotation.push_back((g, self.turns));
        }
    }

    /// Whether a job at `k` may go to a worker now: its priority range is under its cap.
    fn under_cap(&self, k: &QKey) -> bool {
        if self.caps.is_empty() {
            return true;
        }
        let r = self.range_of(k.0 .0 .0);
        self.range_inflight[r] < self.caps[r].1
    }

    /// The waiting job worker `i` takes next: the queue's choice ([`Scheduler::next_job`]),
    /// unless jobs are chosen by group. Then, with group affinity, the best waiting job of the
    /// group the worker last served, if its priority is not below the queue's choice (and its
    /// range is under its cap); otherwise, with round-robin fairness, the best job of the next
    /// group in turn whose best job has the queue's choice's priority (O(groups) at worst, the
    /// first group in turn qualifying when priorities are equal); otherwise the queue's choice.
    fn job_for(&mut self, i: usize) -> Option<(QKey, JobId)> {
        let head = self.next_job()?;
        if !self.by_group {
            return Some(head);
        }
        if self.cfg.group_affinity {
            let g = self.slots[i].last_group;
            let mine = self
                .groups
                .get(&g)
                .and_then(|grp| grp.waiting.first_key_value())
                .map(|(k, j)| (*k, *j));
            if let Some((k, j)) = mine {
                if k.0 <= head.0 .0 && self.under_cap(&k) {
                    // That group's turn is used.
                    self.next_turn(g);
                    return Some((k, j));
                }
            }
        }
        let mut pick = None;
        if self.cfg.fairness == Fairness::RoundRobin {
            let mut at = 0;
            while at < self.rotation.len() {
                let (g, stamp) = self.rotation[at];
                let first = self
                    .groups
                    .get(&g)
                    .filter(|grp| grp.turn == Some(stamp))
                    .and_then(|grp| grp.waiting.first_key_value())
                    .map(|(k, j)| (*k, *j));
                let Some((k, j)) = first else {
                    // Stale: the group waits no more, or has a later turn.
                    self.rotation.remove(at);
                    continue;
                };
                if k.0 == head.0 .0 {
                    self.rotation.remove(at);
                    self.push_turn(g);
                    pick = Some((k, j));
                    break;
                }
                at += 1;
            }
        }
        Some(pick.unwrap_or(head))
    }

    /// Bookkeeping of the priority caps when a job leaves its worker.
    fn left_worker(&mut self, id: JobId) {
        if !self.caps.is_empty() {
            if let Some(r) = self.running_range.remove(&id) {
                self.range_inflight[r] -= 1;
            }
        }
    }

    /// Jobs on workers per priority range, lowest range first (empty without caps).
    pub fn inflight_per_range(&self) -> &[usize] {
        &self.range_inflight
    }

    fn assign(&mut self, i: usize, job: JobId, group: GroupId) {
        let worker = self.slots[i].id;
        self.slots[i].last_group = group;
        self.slots[i].inflight.push_back((job, None));
        self.slots[i].idle_since = None;
        self.actions.push_back(Action::Send { worker, job });
    }

    /// Fast path after a reply: the worker that just freed a slot takes the queue's head.
    fn pump_to(&mut self, worker: WorkerId) {
        self.expire_waiting();
        let conc = self.cfg.concurrency;
        // Another strategy, or a preferred worker, decides in `pump`.
        let fast = self.cfg.strategy == Strategy::LeastBusy && !self.prefers;
        if let Some(pos) = self
            .slots
            .iter()
            .position(|s| s.id == worker)
            .filter(|_| fast)
        {
            while self.slots[pos].state == WorkerState::Ready
                && self.slots[pos].inflight.len() < conc
            {
                let Some((k, job)) = self.job_for(pos) else {
                    break;
                };
                let g = self.dequeue(k, job);
                self.assign(pos, job, g);
            }
        }
        self.pump();
    }

    /// Whether a new worker may start now, given `spawn_delay`. Workers up to `min_workers`
    /// and the first one always may.
    fn may_spawn_now(&mut self) -> bool {
        let active = self.active();
        if active == 0 || active < self.cfg.min_workers || self.cfg.spawn_delay.is_zero() {
            return true;
        }
        match self.last_spawn {
            // A delay past the end of time: no growth spawn again.
            Some(t)
                if t.checked_add(self.cfg.spawn_delay)
                    .is_none_or(|at| self.now < at) =>
            {
                self.spawn_held = true;
                false
            }
            _ => true,
        }
    }

    /// Assigns queued jobs to the least-loaded ready workers, asks for a new worker while
    /// jobs wait and the pool is below its maximum, and keeps `min_workers` running.
    fn pump(&mut self) {
        self.expire_waiting();
        self.spawn_held = false;
        let conc = self.cfg.concurrency;
        while let Some((key, job)) = self.next_job() {
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
            let spawning = self.spawning();
            if let Some(i) = best {
                // Every worker is busy and the pool may grow: start a worker rather than stack
                // this job behind another, so CPU-bound work spreads over processes before
                // concurrency lets one worker hold several jobs. (If spawn_delay holds the new
                // worker back, the job stacks now rather than wait.)
                if !self.slots[i].inflight.is_empty()
                    && self.slots.len() < self.limit
                    && spawning == 0
                    && !self.closing
                    && !self.grow_failed
                    && self.may_spawn_now()
                {
                    self.push_spawn();
                    break;
                }
                let i = match self.cfg.strategy {
                    Strategy::LeastBusy => i,
                    other => self.pick_slot(other).unwrap_or(i),
                };
                let (key, job) = if self.by_group {
                    self.job_for(i).unwrap_or((key, job))
                } else {
                    (key, job)
                };
                let i = if self.prefers {
                    self.preferred_slot(job).unwrap_or(i)
                } else {
                    i
                };
                let g = self.dequeue(key, job);
                self.assign(i, job, g);
                continue;
            }
            if self.slots.len() < self.limit
                && spawning * conc < self.queue.len()
                && !(self.closing && self.slots.iter().any(|s| s.state != WorkerState::Closing))
                && !(self.grow_failed && self.slots.iter().any(|s| s.state == WorkerState::Ready))
                && self.may_spawn_now()
            {
                self.push_spawn();
            }
            break;
        }
        if !self.bursts.is_empty() && self.queue.len() == 0 {
            self.speculate();
        }
        // Keep the warm minimum (not while closing, nor right after a failed startup).
        if !self.closing && !self.min_held {
            let active = self.active();
            for _ in active..self.cfg.min_workers.min(self.cfg.max_workers) {
                if self.slots.len() >= self.cfg.max_workers {
                    break;
                }
                self.push_spawn();
            }
        }
    }

    /// A slot that takes a job now (ready, with room), by `strategy` (round-robin or random).
    fn pick_slot(&mut self, strategy: Strategy) -> Option<usize> {
        let conc = self.cfg.concurrency;
        let free = |s: &Slot| {
            if s.state == WorkerState::Ready {
                conc.saturating_sub(s.inflight.len())
            } else {
                0
            }
        };
        let n = self.slots.len();
        match strategy {
            Strategy::RoundRobin => {
                let i = (0..n)
                    .map(|k| (self.rr_next + k) % n)
                    .find(|&i| free(&self.slots[i]) > 0)?;
                self.rr_next = i + 1;
                Some(i)
            }
            Strategy::Random => {
                let total: usize = self.slots.iter().map(free).sum();
                if total == 0 {
                    return None;
                }
                let mut r = (self.next_random() % total as u64) as usize;
                for (i, s) in self.slots.iter().enumerate() {
                    let f = free(s);
                    if r < f {
                        return Some(i);
                    }
                    r -= f;
                }
                None
            }
            Strategy::LeastBusy => None,
        }
    }

    /// xorshift64*: enough to spread jobs, cheap, and reproducible from a seed.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The slot job `job` prefers, if it takes a job now.
    fn preferred_slot(&self, job: JobId) -> Option<usize> {
        let w = self.jobs.get(&job)?.extra.as_ref()?.prefer?;
        let conc = self.cfg.concurrency;
        self.slots
            .iter()
            .position(|s| s.id == w && s.state == WorkerState::Ready && s.inflight.len() < conc)
    }

    /// Each worker's id, jobs in flight, jobs done and the group it last served (for a custom
    /// worker selection).
    pub fn loads(&self) -> Vec<(WorkerId, usize, u64, Option<&str>)> {
        self.slots
            .iter()
            .filter(|s| s.state != WorkerState::Closing)
            .map(|s| {
                (
                    s.id,
                    s.inflight.len(),
                    s.done,
                    self.group_name(s.last_group),
                )
            })
            .collect()
    }

    fn push_spawn(&mut self) {
        let id = self.next_worker;
        self.next_worker += 1;
        self.last_spawn = Some(self.now);
        self.slots.push(Slot {
            id,
            state: WorkerState::Spawning,
            inflight: VecDeque::new(),
            done: 0,
            idle_since: None,
            stop_when_idle: None,
            planned: None,
            serving: false,
            last_group: 0,
            stop: None,
            cancelled: Vec::new(),
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
            ..SchedConfig::default()
        }
    }

    fn p(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    #[test]
    fn samples_count_every_sample_in_the_histogram_lazily_and_keep_the_recent_ones() {
        let mut s = Samples::default();
        let mut direct = crate::metrics::Histogram::default();
        // Across several wraps of the ring, checked before, at and after each fold.
        for i in 0..(3 * SAMPLES + 100) {
            let v = (i % 97) as f64 * 0.0007;
            s.push(v);
            direct.observe(v);
            if i % 511 == 0 || i % SAMPLES == SAMPLES - 1 || i % SAMPLES == 0 {
                let h = s.histogram();
                assert_eq!(
                    h.cumulative(),
                    direct.cumulative(),
                    "after {} samples",
                    i + 1
                );
                assert!((h.sum() - direct.sum()).abs() < 1e-9);
            }
        }
        assert_eq!(s.len(), SAMPLES, "the ring keeps the recent ones");
        assert!(s.unfolded <= SAMPLES);
        assert_eq!(s.histogram().count(), (3 * SAMPLES + 100) as u64);
    }

    /// Carries out actions like an engine whose spawns always succeed; returns the sends.
    fn run(s: &mut Scheduler, now: Instant) -> Vec<(WorkerId, JobId)> {
        let mut sends = Vec::new();
        while let Some(a) = s.next_action() {
            match a {
                Action::Spawn(w) => {
                    s.spawned(w);
                    s.worker_serving(w, now);
                }
                Action::Send { worker, job } => {
                    s.mark_sent(worker, job, now);
                    sends.push((worker, job))
                }
                // The worker stops at once.
                Action::Stop(w) => {
                    assert!(s.worker_lost(w).is_empty(), "stopped with jobs");
                }
            }
        }
        sends
    }

    /// Like `run`, but reports the stops instead of carrying them out.
    fn run_stops(s: &mut Scheduler, now: Instant) -> (Vec<(WorkerId, JobId)>, Vec<WorkerId>) {
        let mut sends = Vec::new();
        let mut stops = Vec::new();
        while let Some(a) = s.next_action() {
            match a {
                Action::Spawn(w) => s.spawned(w),
                Action::Send { worker, job } => {
                    s.mark_sent(worker, job, now);
                    sends.push((worker, job))
                }
                Action::Stop(w) => stops.push(w),
            }
        }
        (sends, stops)
    }

    /// One worker: job 1 running, jobs 2 and 3 queued.
    fn one_running_two_queued(t: Instant) -> Scheduler {
        let mut s = Scheduler::new(cfg(1, None));
        for j in 1..=3 {
            s.submit(j, p("x")).unwrap();
        }
        run(&mut s, t);
        s
    }

    /// One job (id 1, with `opts`) sent at `t` to worker 1, which is still starting.
    fn sent_to_a_starting_worker(t: Instant, opts: JobOpts) -> Scheduler {
        let mut s = Scheduler::new_at(cfg(1, None), t);
        s.submit_with(1, p("x"), opts).unwrap();
        assert_eq!(s.next_action(), Some(Action::Spawn(1)));
        s.spawned(1);
        assert_eq!(s.next_action(), Some(Action::Send { worker: 1, job: 1 }));
        s.mark_sent(1, 1, t);
        s
    }

    fn timeout_100ms() -> JobOpts {
        JobOpts {
            retries: 0,
            timeout: Some(ms(100)),
            ..Default::default()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn burst_cfg(max: usize, burst: usize, idle: Option<Duration>) -> SchedConfig {
        SchedConfig {
            max_workers: max,
            burst_workers: burst,
            idle_timeout: idle,
            ..SchedConfig::default()
        }
    }

    fn in_batch(batch: u32) -> JobOpts {
        JobOpts {
            batch,
            ..JobOpts::default()
        }
    }

    #[test]
    fn a_batch_behind_its_deadline_grows_the_pool_up_to_burst_workers() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(burst_cfg(1, 3, None), t);
        s.set_burst(7, Some(t + ms(1000)), 10, false);
        for j in 1..=10 {
            s.submit_with(j, p("x"), in_batch(7)).unwrap();
        }
        // No estimate yet: the pool's own maximum.
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        assert_eq!(s.worker_limit(), 1);
        // One job took 0.4 s: 9 left in 0.6 s need 6 workers; burst_workers caps at 3.
        let t1 = t + ms(400);
        s.complete(1, 1, t1).unwrap();
        s.set_burst(7, Some(t + ms(1000)), 9, false);
        assert_eq!(s.worker_limit(), 3);
        let sends = run(&mut s, t1);
        assert_eq!(s.workers(), 3);
        assert_eq!(sends.len(), 3, "{sends:?}");
        // The batch ends: back to max_workers (the extra workers go when idle).
        s.end_burst(7);
        assert_eq!(s.worker_limit(), 1);
    }

    #[test]
    fn a_batch_on_schedule_and_jobs_without_a_deadline_do_not_grow_the_pool() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(burst_cfg(1, 4, None), t);
        for j in 1..=10 {
            s.submit(j, p("x")).unwrap();
        }
        run(&mut s, t);
        s.complete(1, 1, t + ms(100)).unwrap();
        run(&mut s, t + ms(100));
        assert_eq!(
            (s.workers(), s.worker_limit()),
            (1, 1),
            "no batch with a deadline"
        );
        // 2 jobs of 0.1 s with 10 s left: on schedule.
        s.set_burst(1, Some(t + ms(10_100)), 2, false);
        s.submit_with(20, p("x"), in_batch(1)).unwrap();
        s.complete(1, 2, t + ms(200)).unwrap();
        run(&mut s, t + ms(200));
        s.set_burst(1, Some(t + ms(10_100)), 2, false);
        let mut dummy = 0;
        while let Some(a) = s.next_action() {
            dummy += matches!(a, Action::Spawn(_)) as u32;
        }
        assert_eq!(dummy, 0);
        assert_eq!(s.worker_limit(), 1);
    }

    #[test]
    fn past_the_deadline_a_late_batch_uses_every_worker_it_can() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(burst_cfg(1, 8, None), t);
        s.set_burst(1, Some(t + ms(10_000)), 4, false);
        for j in 1..=4 {
            s.submit_with(j, p("x"), in_batch(1)).unwrap();
        }
        run(&mut s, t);
        s.complete(1, 1, t + ms(1)).unwrap();
        s.set_burst(1, Some(t + ms(10_000)), 3, false);
        run(&mut s, t + ms(1));
        assert_eq!(s.workers(), 1, "3 jobs of 1 ms have time");
        // The housekeeper wakes at the deadline.
        assert_eq!(s.next_deadline(), Some(t + ms(10_000)));
        s.housekeeping(t + ms(10_000));
        run(&mut s, t + ms(10_000));
        // Three jobs left (one running): three workers, not eight.
        assert_eq!(s.worker_limit(), 3);
        assert_eq!(s.workers(), 3);
    }

    #[test]
    fn workers_above_max_leave_once_idle_after_the_burst() {
        let t = Instant::now();
        for idle in [Some(ms(500)), None] {
            let mut c = burst_cfg(1, 3, idle);
            c.min_workers = 1;
            let mut s = Scheduler::new_at(c, t);
            run(&mut s, t);
            s.set_burst(1, Some(t + ms(100)), 6, false);
            for j in 1..=6 {
                s.submit_with(j, p("x"), in_batch(1)).unwrap();
            }
            run(&mut s, t);
            s.complete(1, 1, t + ms(50)).unwrap();
            s.set_burst(1, Some(t + ms(100)), 5, false);
            run(&mut s, t + ms(50));
            assert_eq!(s.workers(), 3);
            let t2 = t + ms(60);
            let mut left = 5;
            while left > 0 {
                for w in 1..=3 {
                    if s.slot(w).is_some_and(|i| i.inflight > 0) {
                        s.complete_oldest(w, t2).unwrap();
                        left -= 1;
                    }
                }
                run(&mut s, t2);
            }
            s.end_burst(1);
            let stopped = match idle {
                Some(idle) => {
                    assert_eq!(s.next_deadline(), Some(t2 + idle));
                    s.housekeeping(t2 + idle - ms(1));
                    assert!(run_stops(&mut s, t2).1.is_empty());
                    s.housekeeping(t2 + idle);
                    run_stops(&mut s, t2).1
                }
                None => {
                    // Without an idle timeout, at once.
                    assert_eq!(s.next_deadline(), Some(t2));
                    s.housekeeping(t2);
                    run_stops(&mut s, t2).1
                }
            };
            assert_eq!(
                stopped.len(),
                2,
                "{idle:?}: down to max_workers (and min_workers)"
            );
            for w in stopped {
                assert_eq!(s.planned_stop(w), StopReason::Idle);
                s.worker_lost(w);
            }
            assert_eq!(s.workers(), 1);
            assert_eq!(s.next_deadline(), None);
        }
    }

    /// Two workers, a speculating batch due at t+4s (near from t+3s): jobs 1..=3 took 100 ms
    /// each, job 4 runs on worker 1 since t, worker 2 is idle. Returns the scheduler.
    fn straggling(speculate: bool) -> (Scheduler, Instant) {
        let t = Instant::now();
        let mut c = burst_cfg(2, 2, None);
        c.min_workers = 2;
        let mut s = Scheduler::new_at(c, t);
        run(&mut s, t);
        s.set_burst(1, Some(t + ms(4000)), 4, speculate);
        for j in 1..=4 {
            s.submit_with(j, p("x"), in_batch(1)).unwrap();
        }
        // Worker 1 takes 1 and 3; worker 2 takes 2 and 4 is left for worker 1.
        assert_eq!(run(&mut s, t), vec![(1, 1), (2, 2)]);
        s.complete(1, 1, t + ms(100)).unwrap();
        assert_eq!(run(&mut s, t + ms(100)), vec![(1, 3)]);
        s.complete(2, 2, t + ms(100)).unwrap();
        assert_eq!(run(&mut s, t + ms(100)), vec![(2, 4)]);
        s.complete(1, 3, t + ms(200)).unwrap();
        assert!(run(&mut s, t + ms(200)).is_empty());
        (s, t)
    }

    #[test]
    fn near_the_deadline_an_idle_worker_starts_a_straggler_again_and_the_first_answer_wins() {
        let (mut s, t) = straggling(true);
        // Job 4 is a straggler (p90 100 ms, running 100 ms on worker 2) only after 200 ms, and
        // the batch is near its deadline only from t+3s: the housekeeper wakes then.
        assert_eq!(s.next_deadline(), Some(t + ms(3000)));
        s.housekeeping(t + ms(2999));
        assert!(run(&mut s, t + ms(2999)).is_empty());
        s.housekeeping(t + ms(3000));
        assert_eq!(
            run(&mut s, t + ms(3000)),
            vec![(1, 4)],
            "the copy on the idle worker"
        );
        // Each job runs at most twice.
        s.housekeeping(t + ms(3500));
        assert!(run(&mut s, t + ms(3500)).is_empty());
        // The copy answers first: the job is done, the first copy is cancelled on worker 2.
        s.complete(1, 4, t + ms(3100)).unwrap();
        assert_eq!(s.take_losers(), vec![(2, 4)]);
        assert_eq!(s.live_jobs(), 0);
        assert!(!s.inflight_on(2, 4));
        assert_eq!(
            s.complete(2, 4, t + ms(3200)),
            None,
            "its answer settles nothing"
        );
        assert!(s.answer_cancelled(2, 4));
        assert_eq!(s.slot(2).unwrap().inflight, 0);
        assert_eq!(s.stats().wait.len(), 4, "one wait sample per job");
    }

    #[test]
    fn when_the_first_copy_answers_first_the_second_is_cancelled() {
        let (mut s, t) = straggling(true);
        s.housekeeping(t + ms(3000));
        assert_eq!(run(&mut s, t + ms(3000)), vec![(1, 4)]);
        s.complete(2, 4, t + ms(3001)).unwrap();
        assert_eq!(s.take_losers(), vec![(1, 4)]);
        s.end_burst(1);
        // Its kill deadline is the engine's to set; then it is overdue like any cancel.
        s.set_cancel_deadline(1, 4, Some(t + ms(4001)));
        assert_eq!(s.next_deadline(), Some(t + ms(4001)));
        assert_eq!(s.cancel_overdue(t + ms(4001)), vec![(1, 4, false)]);
    }

    #[test]
    fn without_speculate_or_before_enough_samples_nothing_runs_twice() {
        let (mut s, t) = straggling(false);
        // Only the deadline itself (for full throttle).
        assert_eq!(s.next_deadline(), Some(t + ms(4000)));
        s.housekeeping(t + ms(3900));
        assert!(run(&mut s, t + ms(3900)).is_empty());
        // Speculating, but with two samples only.
        let mut c = burst_cfg(2, 2, None);
        c.min_workers = 2;
        let mut s = Scheduler::new_at(c, t);
        run(&mut s, t);
        s.set_burst(1, Some(t + ms(100)), 3, true);
        for j in 1..=3 {
            s.submit_with(j, p("x"), in_batch(1)).unwrap();
        }
        run(&mut s, t);
        s.complete(1, 1, t + ms(1)).unwrap();
        run(&mut s, t + ms(1));
        s.complete(1, 3, t + ms(2)).unwrap();
        s.housekeeping(t + ms(5000));
        assert!(run(&mut s, t + ms(5000)).is_empty());
    }

    #[test]
    fn a_copys_worker_dying_loses_nothing_and_a_cancel_stops_both_copies() {
        let (mut s, t) = straggling(true);
        s.housekeeping(t + ms(3000));
        assert_eq!(run(&mut s, t + ms(3000)), vec![(1, 4)]);
        // Worker 2 (the first copy) dies: job 4 is neither failed nor retried; it runs on.
        assert!(s.worker_lost(2).is_empty());
        assert_eq!(s.stats().retried, 0);
        assert!(s.inflight_on(1, 4));
        s.complete(1, 4, t + ms(3100)).unwrap();
        assert!(s.take_losers().is_empty());
        assert_eq!(s.live_jobs(), 0);

        let (mut s, t) = straggling(true);
        s.housekeeping(t + ms(3000));
        run(&mut s, t + ms(3000));
        // The caller aborts: the copy found is cancelled by the caller, the other is a loser.
        let kill = Some(t + ms(4000));
        let Cancelled::Running(w) = s.cancel_cooperative(4, kill) else {
            panic!("job 4 runs");
        };
        assert_eq!(s.take_losers(), vec![(3 - w, 4)]);
        assert!(s.answer_cancelled(1, 4) && s.answer_cancelled(2, 4));
        assert_eq!(s.live_jobs(), 0);
    }

    #[test]
    fn min_workers_start_at_once_and_stay() {
        let t = Instant::now();
        let c = SchedConfig {
            max_workers: 4,
            min_workers: 2,
            idle_timeout: Some(ms(100)),
            ..SchedConfig::default()
        };
        let mut s = Scheduler::new_at(c, t);
        assert!(run(&mut s, t).is_empty());
        assert_eq!(s.workers(), 2);
        s.housekeeping(t + ms(1000));
        assert_eq!(
            run_stops(&mut s, t).1,
            Vec::<WorkerId>::new(),
            "never below min"
        );
        assert_eq!(s.next_deadline(), None, "nothing to wait for at min");
    }

    #[test]
    fn growth_is_spaced_by_spawn_delay_and_idle_workers_shrink_to_min() {
        let t = Instant::now();
        let c = SchedConfig {
            max_workers: 3,
            min_workers: 1,
            spawn_delay: ms(100),
            idle_timeout: Some(ms(500)),
            ..SchedConfig::default()
        };
        let mut s = Scheduler::new_at(c, t);
        run(&mut s, t);
        for j in 1..=6 {
            s.submit(j, p("x")).unwrap();
        }
        // The minimum worker, started at t, took a job; the next may start at t+100ms.
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        assert_eq!(s.workers(), 1);
        assert_eq!(s.next_deadline(), Some(t + ms(100)));
        s.housekeeping(t + ms(100));
        assert_eq!(run(&mut s, t + ms(100)), vec![(2, 2)]);
        assert_eq!(s.workers(), 2);
        s.housekeeping(t + ms(150));
        assert!(run(&mut s, t + ms(150)).is_empty(), "still spaced");
        s.housekeeping(t + ms(200));
        assert_eq!(run(&mut s, t + ms(200)), vec![(3, 3)]);
        assert_eq!(s.workers(), 3);
        // Finish everything at t+300.
        let t3 = t + ms(300);
        let mut left = 6;
        while left > 0 {
            for w in 1..=3 {
                if let Some(info) = s.slot(w) {
                    if info.inflight > 0 {
                        let (job, _) = s.complete_oldest(w, t3).unwrap();
                        assert!(job >= 1);
                        left -= 1;
                    }
                }
            }
            run(&mut s, t3);
        }
        assert_eq!(s.next_deadline(), Some(t3 + ms(500)));
        s.housekeeping(t3 + ms(499));
        assert!(run_stops(&mut s, t3).1.is_empty());
        s.housekeeping(t3 + ms(500));
        let (_, stops) = run_stops(&mut s, t3);
        assert_eq!(stops.len(), 2, "down to min_workers = 1");
        for w in stops {
            assert_eq!(s.planned_stop(w), StopReason::Idle);
        }
    }

    #[test]
    fn a_worker_is_recycled_after_max_jobs_once_its_jobs_are_done() {
        let t = Instant::now();
        let c = SchedConfig {
            max_workers: 1,
            concurrency: 2,
            max_jobs_per_worker: Some(3),
            ..SchedConfig::default()
        };
        let mut s = Scheduler::new_at(c, t);
        for j in 1..=5 {
            s.submit(j, p("x")).unwrap();
        }
        assert_eq!(run(&mut s, t), vec![(1, 1), (1, 2)]);
        s.complete(1, 1, t).unwrap();
        s.complete(1, 2, t).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 3), (1, 4)]);
        s.complete(1, 3, t).unwrap();
        // Three done: no more work for worker 1, and it still holds job 4.
        let (sends, stops) = run_stops(&mut s, t);
        assert!(sends.is_empty() && stops.is_empty());
        s.complete(1, 4, t).unwrap();
        let (_, stops) = run_stops(&mut s, t);
        assert_eq!(stops, vec![1]);
        assert_eq!(s.planned_stop(1), StopReason::Recycled);
        assert!(s.worker_lost(1).is_empty());
        assert_eq!(run(&mut s, t), vec![(2, 5)], "a replacement takes the rest");
    }

    #[test]
    fn retire_stops_the_worker_after_its_last_job() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 2), t);
        for j in 1..=3 {
            s.submit(j, p("x")).unwrap();
        }
        assert_eq!(run(&mut s, t), vec![(1, 1), (1, 2)]);
        s.retire(1, StopReason::Retired);
        assert_eq!(run_stops(&mut s, t), (vec![], vec![]));
        s.complete(1, 1, t).unwrap();
        s.complete(1, 2, t).unwrap();
        assert_eq!(run_stops(&mut s, t).1, vec![1]);
        assert_eq!(s.planned_stop(1), StopReason::Retired);
        // Over the memory limit: the same, with its own reason.
        let mut s = Scheduler::new_at(conc(1, 1), t);
        s.submit(1, p("x")).unwrap();
        run(&mut s, t);
        s.retire(1, StopReason::Memory);
        s.complete(1, 1, t).unwrap();
        assert_eq!(run_stops(&mut s, t).1, vec![1]);
        assert_eq!(s.planned_stop(1), StopReason::Memory);
        // The stop carries the reason; the first one stays.
        assert!(s.stop_worker(1, StopReason::Memory));
        assert!(!s.stop_worker(1, StopReason::Shutdown));
        assert_eq!(s.stop_reason(1), Some(StopReason::Memory));
        assert!(StopReason::Memory.expected() && !StopReason::Crash.expected());
    }

    #[test]
    fn a_large_payload_is_shared_and_kept_for_a_retry() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 2), t);
        let big: Box<[u8]> = vec![7; SHARED_PAYLOAD].into();
        let once = JobOpts {
            retries: 1,
            ..JobOpts::default()
        };
        s.submit_with(1, big.clone(), once).unwrap();
        s.submit(2, vec![1; SHARED_PAYLOAD - 1].into()).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1), (1, 2)]);
        let shared = s.shared_payload(1).expect("64 KiB is shared");
        assert_eq!(&**shared, &*big);
        assert_eq!(s.payload(1), Some(&*big));
        assert!(s.shared_payload(2).is_none(), "smaller: copied");
        assert_eq!(s.payload(2).map(<[u8]>::len), Some(SHARED_PAYLOAD - 1));
        // The write still holds its share when the worker dies; the retry sends the same bytes.
        s.worker_lost(1);
        assert_eq!(run(&mut s, t), vec![(2, 1)]);
        assert_eq!(s.payload(1), Some(&*big));
        drop(shared);
        assert!(s.shared_payload(3).is_none());
    }

    #[test]
    fn jobs_of_a_dead_worker_are_retried_up_to_their_count() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 2), t);
        let once = JobOpts {
            retries: 1,
            ..JobOpts::default()
        };
        s.submit_with(1, p("a"), once).unwrap();
        s.submit(2, p("b")).unwrap();
        s.submit(3, p("c")).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1), (1, 2)]);
        assert_eq!(s.worker_lost(1), vec![2], "job 2 has no retries");
        assert_eq!(s.stats().retried, 1);
        // Job 1 goes first again, ahead of job 3.
        assert_eq!(run(&mut s, t), vec![(2, 1), (2, 3)]);
        assert_eq!(s.payload(1), Some(&b"a"[..]));
        assert_eq!(s.worker_lost(2), vec![1, 3], "no retries left");
        assert_eq!(s.live_jobs(), 0);
    }

    fn prio(priority: f64) -> JobOpts {
        JobOpts {
            priority,
            ..JobOpts::default()
        }
    }

    fn slots(max: usize, c: usize, ranges: &[(f64, usize)], sacred: bool) -> SchedConfig {
        SchedConfig {
            priority_slots: ranges.to_vec(),
            sacred_guarantees: sacred,
            ..conc(max, c)
        }
    }

    #[test]
    fn higher_priority_runs_sooner_and_equal_priorities_run_fifo() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 1), t);
        s.submit(1, p("busy")).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        for (id, pr) in [
            (2, 0.0),
            (3, 5.0),
            (4, -1.0),
            (5, 5.0),
            (6, 0.5),
            (7, -0.0),
            (8, 1e300),
        ] {
            s.submit_with(id, p("x"), prio(pr)).unwrap();
        }
        let mut order = Vec::new();
        let mut last = 1;
        for _ in 0..7 {
            s.complete(1, last, t).unwrap();
            let sent = run(&mut s, t);
            assert_eq!(sent.len(), 1);
            last = sent[0].1;
            order.push(last);
        }
        // -0.0 is 0: after job 2, submitted first at that level.
        assert_eq!(order, vec![8, 3, 5, 6, 2, 7, 4]);
    }

    #[test]
    fn a_retried_job_goes_back_to_the_head_of_its_level() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 1), t);
        let retried = JobOpts {
            retries: 1,
            priority: 1.0,
            ..JobOpts::default()
        };
        s.submit_with(1, p("a"), retried).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        s.submit_with(2, p("b"), prio(1.0)).unwrap();
        s.submit_with(3, p("c"), prio(2.0)).unwrap();
        s.submit_with(4, p("d"), prio(0.0)).unwrap();
        assert!(s.worker_lost(1).is_empty());
        // Level 2 first, then job 1 ahead of job 2 (same level), then level 0.
        let mut order = Vec::new();
        for _ in 0..4 {
            let sent = run(&mut s, t);
            assert_eq!(sent.len(), 1);
            let (w, j) = sent[0];
            order.push(j);
            s.complete(w, j, t).unwrap();
        }
        assert_eq!(order, vec![3, 1, 2, 4]);
    }

    #[test]
    fn cancel_and_backlog_remove_a_queued_job_by_its_key() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(cfg(1, Some(2)), t);
        s.submit(1, p("busy")).unwrap();
        run(&mut s, t);
        s.submit_with(2, p("x"), prio(3.0)).unwrap();
        s.submit_with(3, p("x"), prio(1.0)).unwrap();
        // The backlog refuses the newcomer, whatever its priority, and keeps the others.
        assert_eq!(s.submit_with(4, p("x"), prio(9.0)), Err(Reject::Backlog(2)));
        assert_eq!(s.queued(), 2);
        assert_eq!(s.cancel(2), Cancelled::Queued);
        assert_eq!(s.cancel(2), Cancelled::Unknown);
        assert_eq!(s.queued(), 1);
        s.complete(1, 1, t).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 3)]);
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn queue_operations_stay_logarithmic_with_a_million_jobs_queued() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 1), t);
        s.submit(0, p("busy")).unwrap();
        run(&mut s, t);
        let n = 1_000_000u32;
        for id in 1..=n {
            s.submit_with(id, p(""), prio((id % 8) as f64)).unwrap();
        }
        // Cancelling queued jobs anywhere in the queue, and dispatching, do not scan it: a
        // linear scan per cancel would take minutes here.
        for id in (1..=n).step_by(3) {
            assert_eq!(s.cancel(id), Cancelled::Queued);
        }
        assert_eq!(s.queued(), (n - n.div_ceil(3)) as usize);
        let mut last = 0;
        let mut prev: Option<(u32, u32)> = None;
        for _ in 0..10_000 {
            s.complete(1, last, t).unwrap();
            let sent = run(&mut s, t);
            last = sent[0].1;
            let key = (7 - last % 8, last);
            assert!(
                prev.is_none_or(|p| p < key),
                "priority order, FIFO within a level"
            );
            prev = Some(key);
        }
    }

    #[test]
    fn caps_follow_proletariats_readme_example() {
        let c = slots(10, 10, &[(1.0, 30), (2.0, 20)], false);
        assert_eq!(
            c.priority_caps(),
            Some(vec![(0.0, 50), (1.0, 80), (2.0, 100)])
        );
        let sacred = slots(10, 10, &[(2.0, 20), (1.0, 30)], true);
        assert_eq!(
            sacred.priority_caps(),
            Some(vec![(0.0, 50), (1.0, 80), (2.0, 70)])
        );
        // A key 0 is the lowest range, which always has the rest.
        let zero = slots(10, 10, &[(0.0, 7), (1.0, 30)], false);
        assert_eq!(zero.priority_caps(), Some(vec![(0.0, 70), (1.0, 100)]));
        assert_eq!(SchedConfig::default().priority_caps(), Some(Vec::new()));
        // Guarantees beyond the slots are refused; exactly the slots is fine.
        assert_eq!(
            slots(10, 10, &[(1.0, 60), (2.0, 41)], false).priority_caps(),
            None
        );
        assert_eq!(
            slots(10, 10, &[(1.0, 60), (2.0, 40)], true).priority_caps(),
            Some(vec![(0.0, 0), (1.0, 60), (2.0, 40)])
        );
    }

    /// A 100-slot pool (10 workers × 10) with `{1: 30, 2: 20}` given 100 jobs of each of
    /// these priorities, in this order: the jobs in flight per range, lowest range first.
    fn fill_readme_pool(sacred: bool, order: &[f64]) -> Vec<usize> {
        let t = Instant::now();
        let mut s = Scheduler::new_at(slots(10, 10, &[(1.0, 30), (2.0, 20)], sacred), t);
        let mut id = 0;
        for &pr in order {
            for _ in 0..100 {
                id += 1;
                s.submit_with(id, p("x"), prio(pr)).unwrap();
            }
            run(&mut s, t);
        }
        let sent = s.slots.iter().map(|w| w.inflight.len()).sum::<usize>();
        assert_eq!(sent, 100, "every slot is taken");
        let counts = s.inflight_per_range().to_vec();
        assert_eq!(counts.iter().sum::<usize>(), sent);
        counts
    }

    #[test]
    fn in_flight_jobs_per_range_stay_under_the_readme_caps() {
        // Highest first: without sacred guarantees the top range takes all 100 slots; with
        // them 70, and the 30 left are kept for [1, 2) (the lowest range gets none: its 50
        // were borrowed).
        let high_first = [7.0, 2.0, 1.5, 1.0, 0.5, 0.0, -3.0];
        assert_eq!(fill_readme_pool(false, &high_first), vec![0, 0, 100]);
        assert_eq!(fill_readme_pool(true, &high_first), vec![0, 30, 70]);
        // Lowest first (negative priorities are in the lowest range): 50 of it, then [1, 2)
        // up to the slots (its cap, 80, is not reached).
        let low_first = [-3.0, 0.0, 0.5, 1.0, 1.5, 2.0, 7.0];
        assert_eq!(fill_readme_pool(false, &low_first), vec![50, 50, 0]);
        assert_eq!(fill_readme_pool(true, &low_first), vec![50, 50, 0]);
        // [1, 2) first: 80, then the top range the 20 left.
        let mid_first = [1.0, 1.5, 2.0, 7.0, -3.0, 0.0];
        assert_eq!(fill_readme_pool(false, &mid_first), vec![0, 80, 20]);
        assert_eq!(fill_readme_pool(true, &mid_first), vec![0, 80, 20]);
    }

    #[test]
    fn a_job_over_its_cap_waits_while_slots_are_free_and_lower_ranges_pass_it() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(slots(10, 10, &[(1.0, 30), (2.0, 20)], false), t);
        for id in 1..=60 {
            s.submit_with(id, p("x"), prio(0.0)).unwrap();
        }
        assert_eq!(run(&mut s, t).len(), 50);
        assert_eq!(s.inflight_per_range(), &[50, 0, 0]);
        assert_eq!(
            s.queued(),
            10,
            "50 slots are free, yet range [0, 1) is at its cap"
        );
        // A higher job is taken at once, ahead of the waiting ones.
        s.submit_with(100, p("x"), prio(1.0)).unwrap();
        assert_eq!(run(&mut s, t).len(), 1);
        // Range [1, 2) may hold 80 on its own, and takes the 40 (91 slots used).
        for id in 101..=140 {
            s.submit_with(id, p("x"), prio(1.5)).unwrap();
        }
        assert_eq!(run(&mut s, t).len(), 40);
        assert_eq!(s.inflight_per_range(), &[50, 41, 0]);
        assert_eq!(s.queued(), 10);
        // The top range takes the 9 slots left; then every slot is taken.
        for id in 200..=230 {
            s.submit_with(id, p("x"), prio(2.0)).unwrap();
        }
        assert_eq!(run(&mut s, t).len(), 9);
        assert_eq!(s.inflight_per_range(), &[50, 41, 9]);
        // A [0, 1) job that finishes frees a slot: the top range takes it, the waiting [0, 1)
        // jobs being lower.
        let (j, _) = s.slots[0].inflight[0];
        assert!(j <= 60);
        let w = s.slots[0].id;
        s.complete(w, j, t).unwrap();
        let sent = run(&mut s, t);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1 >= 200, "{sent:?}");
        assert_eq!(s.inflight_per_range(), &[49, 41, 10]);
        // The [0, 1) jobs wait while the top range has jobs queued, the slots all taken.
        assert_eq!(s.queued(), 10 + 21);
    }

    #[test]
    fn the_dispatcher_looks_past_a_capped_range_to_lower_jobs() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(slots(10, 10, &[(1.0, 30), (2.0, 20)], true), t);
        for id in 1..=80 {
            s.submit_with(id, p("x"), prio(3.0)).unwrap();
        }
        assert_eq!(run(&mut s, t).len(), 70);
        // Ten >= 2 jobs wait at the head of the queue; lower jobs behind them still run.
        for id in 100..=110 {
            s.submit_with(id, p("x"), prio(-5.0)).unwrap();
        }
        let sent = run(&mut s, t);
        assert_eq!(sent.len(), 11);
        assert!(sent.iter().all(|x| x.1 >= 100));
        assert_eq!(s.inflight_per_range(), &[11, 0, 70]);
        assert_eq!(s.queued(), 10);
    }

    #[test]
    fn with_sacred_guarantees_a_higher_range_borrows_only_from_the_lowest() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(slots(10, 10, &[(1.0, 30), (2.0, 20)], true), t);
        for id in 1..=100 {
            s.submit_with(id, p("x"), prio(5.0)).unwrap();
        }
        assert_eq!(run(&mut s, t).len(), 70);
        assert_eq!(s.inflight_per_range(), &[0, 0, 70]);
        // 30 slots stay for [1, 2) even with range >= 2 waiting.
        for id in 101..=140 {
            s.submit_with(id, p("x"), prio(1.0)).unwrap();
        }
        assert_eq!(run(&mut s, t).len(), 30);
        assert_eq!(s.inflight_per_range(), &[0, 30, 70]);
        // Without sacred guarantees the top range takes all 100.
        let mut s = Scheduler::new_at(slots(10, 10, &[(1.0, 30), (2.0, 20)], false), t);
        for id in 1..=120 {
            s.submit_with(id, p("x"), prio(2.0)).unwrap();
        }
        assert_eq!(run(&mut s, t).len(), 100);
        assert_eq!(s.inflight_per_range(), &[0, 0, 100]);
    }

    #[test]
    fn caps_count_jobs_until_they_leave_their_worker() {
        let t = Instant::now();
        // 2 slots: range [0, 1) gets 1, range >= 1 gets 1 more (cap 2).
        let mut s = Scheduler::new_at(slots(1, 2, &[(1.0, 1)], false), t);
        let once = JobOpts {
            retries: 1,
            ..JobOpts::default()
        };
        s.submit_with(1, p("a"), once).unwrap();
        s.submit(2, p("b")).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        assert_eq!(s.inflight_per_range(), &[1, 0]);
        // Cancelled cooperatively: it still holds its place until answered.
        s.cancel_cooperative(1, None);
        assert_eq!(run(&mut s, t), vec![]);
        assert!(s.answer_cancelled(1, 1));
        assert_eq!(run(&mut s, t), vec![(1, 2)]);
        // Abandoned: it leaves (and its worker closes; a new one takes the next job).
        s.submit(3, p("c")).unwrap();
        s.abandon(1, 2);
        assert_eq!(s.inflight_per_range(), &[0, 0]);
        assert!(s.worker_lost(1).is_empty());
        let sent = run(&mut s, t);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1, 3);
        // A lost worker's jobs leave too, and a retried one is counted again when re-sent.
        let (w, _) = sent[0];
        s.submit_with(
            4,
            p("d"),
            JobOpts {
                priority: 1.0,
                retries: 1,
                ..JobOpts::default()
            },
        )
        .unwrap();
        let sent = run(&mut s, t);
        assert_eq!(sent.iter().map(|x| x.1).collect::<Vec<_>>(), vec![4]);
        assert_eq!(s.inflight_per_range(), &[1, 1]);
        assert_eq!(s.worker_lost(w), vec![3]);
        assert_eq!(s.inflight_per_range(), &[0, 0]);
        let sent = run(&mut s, t);
        assert_eq!(sent.iter().map(|x| x.1).collect::<Vec<_>>(), vec![4]);
        assert_eq!(s.inflight_per_range(), &[0, 1]);
        s.complete(sent[0].0, 4, t).unwrap();
        assert_eq!(s.inflight_per_range(), &[0, 0]);
    }

    #[test]
    fn terminate_retries_nothing() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(cfg(1, None), t);
        let opts = JobOpts {
            retries: 5,
            timeout: None,
            ..Default::default()
        };
        s.submit_with(1, p("a"), opts).unwrap();
        run(&mut s, t);
        assert!(s.close(false).is_empty());
        assert_eq!(s.worker_lost(1), vec![1]);
        assert_eq!(s.workers(), 0);
        assert!(run(&mut s, t).is_empty());
    }

    #[test]
    fn cancel_removes_queued_and_running_jobs() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(cfg(1, None), t);
        for j in 1..=3 {
            s.submit(j, p("x")).unwrap();
        }
        run(&mut s, t);
        assert_eq!(s.cancel(2), Cancelled::Queued);
        assert_eq!(s.queued(), 1);
        assert_eq!(s.cancel(1), Cancelled::Running(1));
        assert_eq!(s.cancel(1), Cancelled::Unknown);
        assert_eq!(s.slot(1).unwrap().state, WorkerState::Closing);
        // Its worker is killed; job 3 goes to a replacement.
        assert!(s.worker_lost(1).is_empty());
        assert_eq!(run(&mut s, t), vec![(2, 3)]);
    }

    #[test]
    fn a_cancelled_running_job_keeps_its_place_until_answered_or_overdue() {
        let t0 = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 2), t0);
        for id in 1..=3 {
            s.submit(id, p("x")).unwrap();
        }
        let sent = run(&mut s, t0);
        assert_eq!(sent, vec![(1, 1), (1, 2)]);
        assert_eq!(
            s.cancel_cooperative(1, Some(t0 + ms(100))),
            Cancelled::Running(1)
        );
        // Settled for the caller, but the worker still holds it: job 3 waits.
        assert_eq!(s.live_jobs(), 2);
        assert!(run(&mut s, t0).is_empty());
        assert!(!s.inflight_on(1, 1), "its progress is dropped");
        assert_eq!(s.complete(1, 1, t0), None, "its answer completes nothing");
        assert_eq!(s.next_deadline(), Some(t0 + ms(100)));
        assert!(s.cancel_overdue(t0 + ms(99)).is_empty());
        // The worker answers: its place goes to job 3.
        assert!(s.answer_cancelled(1, 1));
        assert!(!s.answer_cancelled(1, 1));
        assert_eq!(run(&mut s, t0), vec![(1, 3)]);
        // Cancelled again (a timeout), never answered: overdue once; the worker's loss fails
        // only the job not cancelled.
        s.cancel_running(1, 3, Some(t0 + ms(50)), true);
        assert_eq!(s.cancel_overdue(t0 + ms(60)), vec![(1, 3, true)]);
        assert!(s.cancel_overdue(t0 + ms(70)).is_empty());
        assert_eq!(s.worker_lost(1), vec![2]);
    }

    #[test]
    fn run_deadlines_count_from_the_send() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 2), t);
        let opts = JobOpts {
            retries: 0,
            timeout: Some(ms(100)),
            ..Default::default()
        };
        for j in 1..=3 {
            s.submit_with(j, p("x"), opts).unwrap();
        }
        assert_eq!(run(&mut s, t), vec![(1, 1), (1, 2)]);
        assert_eq!(s.next_deadline(), Some(t + ms(100)));
        s.complete(1, 1, t + ms(50)).unwrap();
        // Job 3 is sent at t+50: its deadline is t+150.
        assert_eq!(run(&mut s, t + ms(50)), vec![(1, 3)]);
        assert!(s.expired(t + ms(99)).is_empty());
        assert_eq!(s.expired(t + ms(100)), vec![(1, 2)]);
        s.abandon(1, 2);
        assert_eq!(s.expired(t + ms(150)), vec![(1, 3)]);
        assert!(s.expired(t + ms(1000)).is_empty(), "reported once");
    }

    #[test]
    fn spans_past_the_end_of_time_mean_never_and_do_not_panic() {
        // Issue 15, point 1: an Instant plus a span beyond what it holds used to panic
        // ("overflow when adding duration to instant").
        let t = Instant::now();
        let c = SchedConfig {
            max_workers: 2,
            spawn_delay: Duration::MAX,
            idle_timeout: Some(Duration::MAX),
            ..SchedConfig::default()
        };
        let mut s = Scheduler::new_at(c, t);
        let opts = JobOpts {
            retries: 0,
            timeout: Some(Duration::MAX),
            ..Default::default()
        };
        for j in 1..=3 {
            s.submit_with(j, p("x"), opts).unwrap();
        }
        // The first worker starts at once and serves; the second waits for a delay that
        // never ends.
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        assert_eq!(s.workers(), 1);
        // The run deadline (armed at the send, then again when serving) is none.
        assert_eq!(s.next_deadline(), None);
        assert!(s.expired(t + ms(1_000_000)).is_empty());
        s.complete(1, 1, t + ms(10)).unwrap();
        assert_eq!(run(&mut s, t + ms(10)), vec![(1, 2)]);
        s.complete(1, 2, t + ms(20)).unwrap();
        assert_eq!(run(&mut s, t + ms(20)), vec![(1, 3)]);
        s.complete(1, 3, t + ms(30)).unwrap();
        // Idle, with an idle timeout past the end of time: never stopped, no deadline.
        s.housekeeping(t + ms(1_000_000));
        assert!(run_stops(&mut s, t + ms(1_000_000)).1.is_empty());
        assert_eq!(s.next_deadline(), None);
        // A job sent to a worker still starting: its startup allowance plus a huge timeout.
        let mut s = sent_to_a_starting_worker(t, opts);
        assert_eq!(s.next_deadline(), None);
        s.worker_serving(1, t + ms(5));
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn run_deadlines_wait_for_a_starting_worker() {
        let t = Instant::now();
        // Spawned and sent, but the worker is still starting: no deadline yet.
        let mut s = sent_to_a_starting_worker(t, timeout_100ms());
        assert!(s.expired(t + ms(500)).is_empty());
        s.worker_serving(1, t + ms(500));
        assert_eq!(s.next_deadline(), Some(t + ms(600)));
        assert_eq!(s.expired(t + ms(600)), vec![(1, 1)]);
    }

    #[test]
    fn a_worker_that_never_finishes_starting_cannot_hold_a_job_forever() {
        let t = Instant::now();
        let mut s = sent_to_a_starting_worker(t, timeout_100ms());
        let late = t + STARTUP_ALLOWANCE + ms(100);
        assert_eq!(s.next_deadline(), Some(late));
        assert!(s.expired(late - ms(1)).is_empty());
        assert_eq!(s.expired(late), vec![(1, 1)]);
    }

    #[test]
    fn stats_count_wait_and_run_times() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(cfg(1, None), t);
        s.submit(1, p("x")).unwrap();
        s.submit(2, p("x")).unwrap();
        run(&mut s, t);
        s.complete_oldest(1, t + ms(10)).unwrap();
        run(&mut s, t + ms(10));
        s.complete_oldest(1, t + ms(30)).unwrap();
        let st = s.stats();
        assert_eq!(st.run.len(), 2);
        let run_p = st.run.percentiles(&[0.0, 100.0]).unwrap();
        assert!((run_p[0] - 0.010).abs() < 1e-9 && (run_p[1] - 0.020).abs() < 1e-9);
        let wait_p = st.wait.percentiles(&[100.0]).unwrap();
        assert!((wait_p[0] - 0.010).abs() < 1e-9, "job 2 waited 10 ms");
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
        let mut s = one_running_two_queued(t);
        assert_eq!(s.fail_queued(), vec![2, 3]);
        assert_eq!(s.queued(), 0);
        assert_eq!(s.live_jobs(), 1);
        assert_eq!(s.slot(1).unwrap().inflight, 1);
        assert_eq!(s.payload(2), None);
    }

    #[test]
    fn a_zero_backlog_refuses_only_jobs_that_would_wait() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(cfg(2, Some(0)), t);
        s.submit(1, p("x")).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        s.submit(2, p("x")).unwrap();
        assert_eq!(run(&mut s, t), vec![(2, 2)]);
        assert_eq!(s.submit(3, p("x")), Err(Reject::Backlog(0)));
        assert_eq!(s.live_jobs(), 2);
        assert!(run(&mut s, t).is_empty());
        s.complete_oldest(1, t).unwrap();
        s.submit(4, p("x")).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 4)]);
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
        let mut s = one_running_two_queued(t);
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
    fn throughput_counts_the_current_second_from_the_first_completion() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(cfg(1, None), t);
        assert_eq!(s.stats().throughput(s.uptime_at(t)), 0.0);
        s.submit(1, p("x")).unwrap();
        run(&mut s, t);
        s.complete(1, 1, t + ms(200)).unwrap();
        // The first job, 0.2 s after the start: one completion in the (at least one second
        // long) window, not zero until the next whole second.
        assert_eq!(s.stats().throughput(s.uptime_at(t + ms(200))), 1.0);
        // Four more within the first two seconds: five over two seconds.
        for j in 2..=5 {
            s.submit(j, p("x")).unwrap();
            run(&mut s, t + ms(1500));
            s.complete(1, j, t + ms(1500)).unwrap();
        }
        assert_eq!(s.stats().throughput(s.uptime_at(t + ms(2000))), 2.5);
        // The window is the last ten seconds: at 10.5 s it spans 1.0..10.5 s, so the
        // completion at 0.2 s is out of it and the four at 1.5 s are in.
        let r = s.stats().throughput(s.uptime_at(t + ms(10_500)));
        assert!((r - 4.0 / 9.5).abs() < 1e-9, "{r}");
        // Long after: nothing recent.
        assert_eq!(s.stats().throughput(s.uptime_at(t + ms(60_000))), 0.0);
        // The engine's clock read earlier than the scheduler's never runs backwards.
        assert_eq!(s.uptime_at(t), ms(1500));
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

    fn waits(queue: Option<u64>, total: Option<u64>, retries: u32) -> JobOpts {
        JobOpts {
            retries,
            queue_timeout: queue.map(ms),
            total_timeout: total.map(ms),
            ..JobOpts::default()
        }
    }

    #[test]
    fn a_job_past_its_queue_timeout_is_withdrawn_and_never_runs() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 1), t);
        s.submit(1, p("busy")).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        s.submit_with(2, p("late"), waits(Some(100), None, 0))
            .unwrap();
        s.submit_with(3, p("patient"), JobOpts::default()).unwrap();
        assert_eq!(s.next_deadline(), Some(t + ms(100)));
        s.housekeeping(t + ms(99));
        assert!(s.take_overdue().is_empty());
        s.housekeeping(t + ms(100));
        assert_eq!(
            s.take_overdue(),
            vec![(2, Overdue::Queue { waited: ms(100) })]
        );
        assert_eq!((s.queued(), s.live_jobs()), (1, 2));
        assert_eq!(s.next_deadline(), None, "nothing left to time");
        // The worker frees up: the patient job runs, the withdrawn one never does.
        s.complete(1, 1, t + ms(120)).unwrap();
        assert_eq!(run(&mut s, t + ms(120)), vec![(1, 3)]);
    }

    #[test]
    fn a_job_taken_in_time_keeps_no_queue_deadline_and_a_late_dispatch_finds_it_withdrawn() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 1), t);
        s.submit_with(1, p("a"), waits(Some(50), None, 0)).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        assert_eq!(s.next_deadline(), None, "taken: its queue deadline went");
        s.submit_with(2, p("b"), waits(Some(50), None, 0)).unwrap();
        s.submit_with(3, p("c"), waits(Some(500), None, 0)).unwrap();
        // The reply comes after job 2's deadline, before any housekeeping: the freed worker
        // takes job 3, and job 2 is withdrawn rather than run late.
        s.complete(1, 1, t + ms(60)).unwrap();
        assert_eq!(run(&mut s, t + ms(60)), vec![(1, 3)]);
        assert_eq!(
            s.take_overdue(),
            vec![(2, Overdue::Queue { waited: ms(60) })]
        );
        assert_eq!(s.live_jobs(), 1);
    }

    #[test]
    fn a_waiting_job_past_its_total_timeout_is_withdrawn_as_total() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 1), t);
        s.submit(1, p("busy")).unwrap();
        run(&mut s, t);
        // The total deadline (80) comes before the queue deadline (200): it decides.
        s.submit_with(2, p("x"), waits(Some(200), Some(80), 0))
            .unwrap();
        assert_eq!(s.next_deadline(), Some(t + ms(80)));
        s.housekeeping(t + ms(80));
        assert_eq!(s.take_overdue(), vec![(2, Overdue::Total)]);
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn a_running_job_past_its_total_timeout_is_reported_once_with_its_worker() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 2), t);
        s.submit_with(1, p("a"), waits(None, Some(100), 0)).unwrap();
        s.submit_with(2, p("b"), waits(None, Some(100), 0)).unwrap();
        // Queued 30 ms before a worker took them: the total deadline still counts from the
        // submission.
        assert_eq!(run(&mut s, t + ms(30)), vec![(1, 1), (1, 2)]);
        assert_eq!(s.next_deadline(), Some(t + ms(100)));
        s.complete(1, 2, t + ms(50)).unwrap();
        assert!(s.overdue_running(t + ms(99)).is_empty());
        assert_eq!(s.overdue_running(t + ms(100)), vec![(1, 1)]);
        assert!(s.overdue_running(t + ms(500)).is_empty(), "reported once");
        // Cancelled like an abort: it keeps its place until answered.
        s.cancel_running(1, 1, Some(t + ms(1100)), true);
        assert_eq!(s.live_jobs(), 0);
        assert_eq!(s.next_deadline(), Some(t + ms(1100)));
        assert!(s.answer_cancelled(1, 1));
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn a_retried_job_waits_anew_for_its_queue_timeout_but_keeps_its_total_deadline() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 1), t);
        s.submit_with(2, p("b"), waits(Some(100), Some(1000), 1))
            .unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 2)]);
        // Its worker dies at 500: back to the queue, waiting for a replacement not started
        // yet. Its queue timeout counts from 500 again.
        s.set_now(t + ms(500));
        assert!(s.worker_lost(1).is_empty());
        assert_eq!(s.next_deadline(), Some(t + ms(600)));
        s.housekeeping(t + ms(600));
        assert_eq!(
            s.take_overdue(),
            vec![(2, Overdue::Queue { waited: ms(100) })]
        );
        // Lost at 950: its total deadline (1000) comes before a new queue deadline (1050).
        let mut s = Scheduler::new_at(conc(1, 1), t);
        s.submit_with(2, p("b"), waits(Some(100), Some(1000), 1))
            .unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 2)]);
        s.set_now(t + ms(950));
        assert!(s.worker_lost(1).is_empty());
        assert_eq!(s.next_deadline(), Some(t + ms(1000)));
        s.housekeeping(t + ms(1000));
        assert_eq!(s.take_overdue(), vec![(2, Overdue::Total)]);
    }

    #[test]
    fn cancels_and_completions_drop_a_jobs_deadlines() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 1), t);
        s.submit_with(1, p("a"), waits(Some(10), Some(20), 0))
            .unwrap();
        s.submit_with(2, p("b"), waits(Some(10), Some(20), 0))
            .unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        assert_eq!(s.cancel(2), Cancelled::Queued);
        assert_eq!(
            s.next_deadline(),
            Some(t + ms(20)),
            "job 1's total deadline"
        );
        s.complete(1, 1, t + ms(5)).unwrap();
        assert_eq!(s.next_deadline(), None);
        s.housekeeping(t + ms(100));
        assert!(s.take_overdue().is_empty());
        assert!(s.overdue_running(t + ms(100)).is_empty());
        // close() without draining fails the queue: no deadline stays behind.
        s.submit(3, p("c")).unwrap();
        s.submit_with(4, p("d"), waits(Some(10), None, 0)).unwrap();
        run(&mut s, t + ms(100));
        assert_eq!(s.close(false), vec![4]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn queue_timeouts_expire_in_logarithmic_time_with_a_million_jobs_queued() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(conc(1, 1), t);
        s.submit(0, p("busy")).unwrap();
        run(&mut s, t);
        let n = 1_000_000u32;
        // Deadlines from 1 s to 1000 s, in an order unrelated to the queue's.
        for id in 1..=n {
            let q = 1000 + u64::from(id.wrapping_mul(7919) % 1_000_000);
            s.submit_with(id, p(""), waits(Some(q), None, 0)).unwrap();
        }
        // 1000 clock steps, each withdrawing about 1000 jobs: a scan of the queue per step
        // would take minutes here.
        let mut withdrawn = 0;
        for step in 1..=1000u64 {
            s.housekeeping(t + ms(1000 + step * 1000));
            let o = s.take_overdue();
            assert!(o.iter().all(
                |(_, w)| matches!(w, Overdue::Queue { waited } if *waited <= ms(1000 + step * 1000))
            ));
            withdrawn += o.len();
        }
        assert_eq!(withdrawn, n as usize);
        assert_eq!((s.queued(), s.live_jobs()), (0, 1));
        assert_eq!(s.next_deadline(), None);
    }

    fn fair(max: usize, fairness: Fairness, affinity: bool) -> SchedConfig {
        SchedConfig {
            fairness,
            group_affinity: affinity,
            ..conc(max, 1)
        }
    }

    /// Runs the queue through worker 1 alone, one job at a time (job 0 holds it at first):
    /// the order in which jobs are sent.
    fn drain_order(s: &mut Scheduler, t: Instant) -> Vec<JobId> {
        let mut order = Vec::new();
        let mut last = 0;
        loop {
            s.complete(1, last, t).unwrap();
            let sent = run(s, t);
            if sent.is_empty() {
                return order;
            }
            last = sent[0].1;
            order.push(last);
        }
    }

    #[test]
    fn round_robin_fairness_gives_free_slots_to_the_waiting_groups_in_turn() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(fair(1, Fairness::RoundRobin, false), t);
        s.submit(0, p("busy")).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 0)]);
        let o = JobOpts::default();
        for id in 10..15 {
            s.submit_in(id, p(""), o, Some("A")).unwrap();
        }
        s.submit_in(20, p(""), o, Some("B")).unwrap();
        s.submit_in(30, p(""), o, None).unwrap();
        s.submit_in(31, p(""), o, Some("")).unwrap();
        // A's batch does not hold B's single job back; jobs without a group are one group.
        assert_eq!(drain_order(&mut s, t), vec![10, 20, 30, 11, 31, 12, 13, 14]);
        assert!(s.group_ids.is_empty(), "settled groups are forgotten");
        // FIFO (the default): the queue's order, groups or not.
        let mut s = Scheduler::new_at(fair(1, Fairness::Fifo, false), t);
        s.submit(0, p("busy")).unwrap();
        run(&mut s, t);
        for id in 10..13 {
            s.submit_in(id, p(""), o, Some("A")).unwrap();
        }
        s.submit_in(20, p(""), o, Some("B")).unwrap();
        assert_eq!(drain_order(&mut s, t), vec![10, 11, 12, 20]);
    }

    #[test]
    fn round_robin_takes_turns_among_the_groups_at_the_highest_waiting_priority() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(fair(1, Fairness::RoundRobin, false), t);
        s.submit(0, p("busy")).unwrap();
        run(&mut s, t);
        s.submit_in(10, p(""), prio(0.0), Some("A")).unwrap();
        s.submit_in(11, p(""), prio(5.0), Some("A")).unwrap();
        s.submit_in(12, p(""), prio(5.0), Some("A")).unwrap();
        s.submit_in(20, p(""), prio(0.0), Some("B")).unwrap();
        s.submit_in(30, p(""), prio(5.0), Some("C")).unwrap();
        // Priority 5 first (A and C in turn), then priority 0 (A's turn came last: B first).
        assert_eq!(drain_order(&mut s, t), vec![11, 30, 12, 20, 10]);
    }

    #[test]
    fn a_lost_worker_returns_its_job_to_its_group() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(fair(1, Fairness::RoundRobin, false), t);
        let retried = JobOpts {
            retries: 1,
            ..JobOpts::default()
        };
        s.submit_in(1, p(""), retried, Some("A")).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1)]);
        s.submit_in(2, p(""), JobOpts::default(), Some("B"))
            .unwrap();
        assert!(s.worker_lost(1).is_empty());
        // Back at the head of A's queue: A's turn (it was served, B waits too).
        let sent = run(&mut s, t);
        assert_eq!(sent.len(), 1);
        let (w, j) = sent[0];
        s.complete(w, j, t).unwrap();
        let next = run(&mut s, t);
        assert_eq!(
            [j, next[0].1].iter().copied().collect::<BTreeSet<_>>(),
            [1, 2].into()
        );
        s.complete(w, next[0].1, t).unwrap();
        assert!(s.group_ids.is_empty());
    }

    /// Two warm workers; 1 serves group G (job 1), 2 serves H (job 2); then job 3 (H, priority
    /// `h`) and job 4 (G) wait. Worker 1 frees up: the job it takes.
    fn affinity_pick(affinity: bool, h: f64) -> JobId {
        let t = Instant::now();
        let mut s = Scheduler::new_at(fair(2, Fairness::Fifo, affinity), t);
        let o = JobOpts::default();
        s.submit_in(1, p(""), o, Some("G")).unwrap();
        s.submit_in(2, p(""), o, Some("H")).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 1), (2, 2)]);
        s.submit_in(3, p(""), prio(h), Some("H")).unwrap();
        s.submit_in(4, p(""), o, Some("G")).unwrap();
        s.complete(1, 1, t).unwrap();
        let sent = run(&mut s, t);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, 1);
        sent[0].1
    }

    #[test]
    fn with_group_affinity_a_worker_takes_its_last_groups_job_first() {
        assert_eq!(
            affinity_pick(false, 0.0),
            3,
            "without: the head of the queue"
        );
        assert_eq!(
            affinity_pick(true, 0.0),
            4,
            "with: G's job, though H's came first"
        );
        assert_eq!(
            affinity_pick(true, 1.0),
            3,
            "a higher priority still goes first"
        );
    }

    #[test]
    fn deadlines_and_close_leave_no_group_behind() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(fair(1, Fairness::RoundRobin, true), t);
        s.submit(0, p("busy")).unwrap();
        run(&mut s, t);
        s.submit_in(1, p(""), waits(Some(10), None, 0), Some("A"))
            .unwrap();
        s.submit_in(2, p(""), JobOpts::default(), Some("B"))
            .unwrap();
        s.submit_in(3, p(""), JobOpts::default(), Some("C"))
            .unwrap();
        assert_eq!(s.cancel(3), Cancelled::Queued);
        s.housekeeping(t + ms(10));
        assert_eq!(s.take_overdue().len(), 1);
        assert_eq!(s.close(false), vec![2]);
        assert!(s.groups.values().all(|g| g.waiting.is_empty()));
        assert_eq!(s.group_ids.len(), 0);
    }

    fn strat(strategy: Strategy, c: usize) -> SchedConfig {
        SchedConfig {
            strategy,
            seed: 42,
            min_workers: 2,
            ..conc(2, c)
        }
    }

    /// One job at a time (each answered before the next): the workers that take them.
    fn one_by_one(s: &mut Scheduler, t: Instant, ids: std::ops::Range<u32>) -> Vec<WorkerId> {
        let mut out = Vec::new();
        for id in ids {
            s.submit(id, p("")).unwrap();
            let sent = run(s, t);
            assert_eq!(sent.len(), 1);
            s.complete(sent[0].0, id, t).unwrap();
            run(s, t);
            out.push(sent[0].0);
        }
        out
    }

    #[test]
    fn least_busy_takes_the_first_idle_worker_and_round_robin_takes_turns() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(strat(Strategy::LeastBusy, 2), t);
        run(&mut s, t);
        assert_eq!(s.workers(), 2);
        assert_eq!(one_by_one(&mut s, t, 1..7), vec![1; 6]);
        let mut s = Scheduler::new_at(strat(Strategy::RoundRobin, 2), t);
        run(&mut s, t);
        assert_eq!(one_by_one(&mut s, t, 1..7), vec![1, 2, 1, 2, 1, 2]);
    }

    #[test]
    fn random_is_weighted_by_free_slots_and_reproducible_from_its_seed() {
        let t = Instant::now();
        let picks = |seed: u64| {
            let mut s = Scheduler::new_at(
                SchedConfig {
                    seed,
                    ..strat(Strategy::Random, 4)
                },
                t,
            );
            run(&mut s, t);
            // Worker 1 holds three jobs (one slot free), worker 2 none (four free).
            let on1 = JobOpts {
                prefer: Some(1),
                ..JobOpts::default()
            };
            for id in 1..=3 {
                s.submit_with(id, p(""), on1).unwrap();
            }
            assert_eq!(run(&mut s, t), vec![(1, 1), (1, 2), (1, 3)]);
            one_by_one(&mut s, t, 100..1100)
        };
        let a = picks(42);
        let on2 = a.iter().filter(|&&w| w == 2).count();
        // 4 free slots of 5: about 800 of 1000.
        assert!((740..=860).contains(&on2), "{on2} of 1000 on worker 2");
        assert_eq!(a, picks(42), "the same seed, the same picks");
        assert_ne!(a, picks(7));
    }

    #[test]
    fn a_preferred_worker_takes_its_job_when_it_has_room_else_the_strategy_decides() {
        let t = Instant::now();
        let mut s = Scheduler::new_at(strat(Strategy::LeastBusy, 1), t);
        run(&mut s, t);
        let on2 = JobOpts {
            prefer: Some(2),
            ..JobOpts::default()
        };
        // Worker 1 is idle and first, but job 1 prefers worker 2.
        s.submit_with(1, p(""), on2).unwrap();
        assert_eq!(run(&mut s, t), vec![(2, 1)]);
        // Worker 2 is full: job 2 goes to worker 1 rather than wait.
        s.submit_with(2, p(""), on2).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 2)]);
        // An unknown worker: the strategy's choice.
        s.complete(1, 2, t).unwrap();
        let gone = JobOpts {
            prefer: Some(99),
            ..JobOpts::default()
        };
        s.submit_with(3, p(""), gone).unwrap();
        assert_eq!(run(&mut s, t), vec![(1, 3)]);
        let loads: Vec<_> = s.loads().into_iter().map(|l| (l.0, l.1, l.2)).collect();
        assert_eq!(loads, vec![(1, 1, 1), (2, 1, 0)]);
    }
}
