//! The pool's options as JS gives them, and their conversion into the engine's configuration.
//! An option left out takes the engine's default (`EngineConfig::new`), so each default is
//! named once, in `comrade_core`; the JS layer reads the ones it needs from the exported
//! constants below.

use std::collections::HashMap;
use std::time::Duration;

use comrade_core::engine::{self, EngineConfig, Protocol};
use comrade_core::scheduler::{Fairness, JobOpts, SchedConfig, Strategy};
use comrade_core::spawn::SpawnSpec;
use napi_derive::napi;

/// Longest message accepted from a worker, in bytes, when `maxMessage` is not given.
#[napi]
pub const DEFAULT_MAX_MESSAGE: u32 = engine::DEFAULT_MAX_MESSAGE as u32;
/// Milliseconds between SIGTERM and SIGKILL when stopping a worker, when `killGraceMs` is not
/// given.
#[napi]
pub const DEFAULT_KILL_GRACE_MS: u32 = engine::DEFAULT_KILL_GRACE.as_millis() as u32;

/// Longest finite span any option or job may give, in milliseconds (2^32 − 1, about 49.7 days):
/// a longer one is refused, never clamped. Infinity, where an option takes it, keeps its
/// meaning. The engine could hold longer spans, but one this long is surely a mistake (and an
/// `Instant` cannot hold them all: 1e22 ms used to abort the process).
#[napi]
pub const MAX_DURATION_MS: u32 = u32::MAX;

// The casts above must not truncate.
const _: () = assert!(engine::DEFAULT_MAX_MESSAGE <= u32::MAX as usize);
const _: () = assert!(engine::DEFAULT_KILL_GRACE.as_millis() <= u32::MAX as u128);

/// Engine options. Left out: the engine's default, or the feature is off.
#[napi(object)]
pub struct NativeOptions {
    /// Executable to run for each worker (for Node workers, `process.execPath`).
    pub program: String,
    pub args: Vec<String>,
    /// Variables set for the worker on top of the inherited environment.
    pub env: Option<HashMap<String, String>>,
    /// Inherited variables removed from the worker's environment.
    pub env_remove: Option<Vec<String>>,
    pub cwd: Option<String>,
    /// At least 1.
    pub max_workers: u32,
    /// Most workers while a batch with a deadline runs behind, at least `maxWorkers`.
    /// Default: `maxWorkers` (no growth past it).
    pub burst_workers: Option<u32>,
    /// Most jobs in flight on one worker; at least 1.
    pub concurrency: u32,
    /// Most queued jobs (>= 0). Default: unlimited.
    pub max_backlog: Option<i64>,
    /// Seconds (> 0): a job expected to complete later than this is refused. Default: no check.
    pub max_request_time: Option<f64>,
    /// Longest accepted worker message, in bytes. Default `DEFAULT_MAX_MESSAGE`.
    pub max_message: Option<u32>,
    /// Milliseconds between SIGTERM and SIGKILL when stopping a worker. Default
    /// `DEFAULT_KILL_GRACE_MS`.
    pub kill_grace_ms: Option<u32>,
    /// Milliseconds a worker has to answer a job cancelled while running (an abort, a
    /// timeout) before it is killed; 0 kills at once. Default `DEFAULT_CANCEL_GRACE`.
    pub cancel_grace_ms: Option<u32>,
    /// `"lines"`: comrade's protocol (docs/PROTOCOL.md); `"node-ipc"` (the default): Node's
    /// IPC, one job per message, as compute-cluster workers speak it.
    pub protocol: Option<String>,
    /// A line written to each new worker before any job (the protocol's `init` message).
    pub hello: Option<String>,
    /// Workers kept warm (started at once), at most `maxWorkers`. Default 0.
    pub min_workers: Option<u32>,
    /// Milliseconds (>= 0) between two growth spawns. Default 0.
    pub spawn_delay_ms: Option<f64>,
    /// Milliseconds (> 0) after which an idle worker above `minWorkers` is stopped. Default:
    /// never.
    pub idle_timeout_ms: Option<f64>,
    /// Jobs (>= 1) after which a worker is replaced. Default: no limit.
    pub max_jobs_per_worker: Option<f64>,
    /// Bytes (>= 1) of resident memory above which a worker is replaced. Default: no limit.
    pub max_rss: Option<f64>,
    /// Pin worker i to CPU i. Default false.
    pub affinity: Option<bool>,
    /// Added to each worker's nice value (0..=19): lower CPU priority than the parent. Default 0.
    pub nice: Option<i32>,
    /// Default retries of a job whose worker dies. Default 0.
    pub retries: Option<u32>,
    /// Default run timeout (> 0) of a job, in milliseconds. Default: none.
    pub timeout_ms: Option<f64>,
    /// Default priority of a job (finite; higher runs sooner). Default 0.
    pub priority: Option<f64>,
    /// Default queue timeout (> 0) of a job, in milliseconds: the longest it waits for a
    /// worker. Default: none.
    pub queue_timeout_ms: Option<f64>,
    /// Default total timeout (> 0) of a job, in milliseconds: from submission to settlement.
    /// Default: none.
    pub total_timeout_ms: Option<f64>,
    /// Guaranteed slots per priority range, as flat pairs `[from, slots, …]`: `from` a
    /// priority >= 0 (0 is the lowest range, which always has the slots the others leave),
    /// `slots` an integer >= 0. Their sum must not exceed `maxWorkers × concurrency`.
    /// Default: none (no caps).
    pub priority_slots: Option<Vec<f64>>,
    /// A range borrows only from the lowest range. Default false.
    pub sacred_guarantees: Option<bool>,
    /// How free slots are shared among requestor groups: `"fifo"` (the default) or
    /// `"round-robin"`.
    pub fairness: Option<String>,
    /// A worker takes the group it last served first. Default false.
    pub group_affinity: Option<bool>,
    /// Which worker with a free slot takes the next job: `"least-busy"` (the default),
    /// `"round-robin"` or `"random"`.
    pub strategy: Option<String>,
    /// Internal, for tests (lib/ passes it only from the `Symbol.for('comrade.limits')` option):
    /// the longest result, in bytes, the host takes (`EngineConfig::max_record`). JS gives V8's
    /// longest string; a test gives a small one, so that a too-large result needs no 512 MiB.
    pub max_record_bytes: Option<f64>,
    /// Internal, for tests (as `maxRecordBytes`): bytes of records waiting for the host above
    /// which the engine stops reading workers (`EngineConfig::max_waiting`).
    pub max_waiting_bytes: Option<f64>,
}

/// Options the engine cannot run with; thrown to JS as an `InvalidArg` error with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOption(pub String);

impl From<InvalidOption> for napi::Error {
    fn from(e: InvalidOption) -> Self {
        napi::Error::new(napi::Status::InvalidArg, e.0)
    }
}

impl TryFrom<NativeOptions> for EngineConfig {
    type Error = InvalidOption;

    fn try_from(o: NativeOptions) -> Result<Self, InvalidOption> {
        if o.max_workers == 0 || o.concurrency == 0 {
            return Err(invalid("maxWorkers and concurrency must be at least 1"));
        }
        let min_workers = o.min_workers.unwrap_or(0);
        if min_workers > o.max_workers {
            return Err(invalid("minWorkers cannot exceed maxWorkers"));
        }
        let burst_workers = o.burst_workers.unwrap_or(o.max_workers);
        if burst_workers < o.max_workers {
            return Err(invalid("burstWorkers cannot be below maxWorkers"));
        }
        let protocol = match o.protocol.as_deref() {
            Some("lines") => Protocol::Lines,
            None | Some("node-ipc") => Protocol::NodeIpc,
            Some(other) => {
                return Err(invalid(format!(
                    "unknown protocol {other:?} (expected \"lines\" or \"node-ipc\")"
                )))
            }
        };
        let max_backlog = o
            .max_backlog
            .map(|n| usize::try_from(n).map_err(|_| invalid("maxBacklog must be >= 0")))
            .transpose()?;
        let max_request_time = o
            .max_request_time
            .map(|s| {
                (s > 0.0)
                    .then_some(s)
                    .ok_or_else(|| invalid("maxRequestTime must be a number of seconds > 0"))
            })
            .transpose()?;
        // An infinite delay has always meant none: `Duration` cannot hold it.
        let spawn_delay = match o.spawn_delay_ms {
            None => Duration::ZERO,
            Some(ms) => millis("spawnDelayMs", ms)?.unwrap_or(Duration::ZERO),
        };
        let idle_timeout = positive_millis("idleTimeoutMs", o.idle_timeout_ms)?;
        let timeout = positive_millis("timeoutMs", o.timeout_ms)?;
        let queue_timeout = positive_millis("queueTimeoutMs", o.queue_timeout_ms)?;
        let total_timeout = positive_millis("totalTimeoutMs", o.total_timeout_ms)?;
        let max_jobs_per_worker = count("maxJobsPerWorker", o.max_jobs_per_worker)?;
        let max_rss = count("maxRss", o.max_rss)?;
        let nice = o.nice.unwrap_or(0);
        if !(0..=19).contains(&nice) {
            return Err(invalid("nice must be from 0 to 19"));
        }
        if o.max_message == Some(0) {
            return Err(invalid("maxMessage must be at least 1"));
        }

        let priority = o.priority.unwrap_or(0.0);
        if !priority.is_finite() {
            return Err(invalid("priority must be a finite number"));
        }
        let pairs = o.priority_slots.unwrap_or_default();
        if !pairs.len().is_multiple_of(2) {
            return Err(invalid("prioritySlots must be pairs [from, slots, …]"));
        }
        let mut priority_slots = Vec::with_capacity(pairs.len() / 2);
        for pair in pairs.chunks(2) {
            let (from, n) = (pair[0], pair[1]);
            if !from.is_finite() || from < 0.0 {
                return Err(invalid(format!(
                    "prioritySlots: {from} is not a priority >= 0"
                )));
            }
            if !(n >= 0.0 && n.fract() == 0.0 && n <= f64::from(u32::MAX)) {
                return Err(invalid(format!(
                    "prioritySlots: the slots of priority {from} must be an integer >= 0, got {n}"
                )));
            }
            priority_slots.push((from, n as usize));
        }
        let sched = SchedConfig {
            max_workers: o.max_workers as usize,
            min_workers: min_workers as usize,
            concurrency: o.concurrency as usize,
            max_backlog,
            max_request_time,
            spawn_delay,
            idle_timeout,
            max_jobs_per_worker,
            priority_slots,
            sacred_guarantees: o.sacred_guarantees.unwrap_or(false),
            fairness: match o.fairness.as_deref() {
                None | Some("fifo") => Fairness::Fifo,
                Some("round-robin") => Fairness::RoundRobin,
                Some(other) => {
                    return Err(invalid(format!(
                        "unknown fairness {other:?} (expected \"fifo\" or \"round-robin\")"
                    )))
                }
            },
            group_affinity: o.group_affinity.unwrap_or(false),
            strategy: match o.strategy.as_deref() {
                None | Some("least-busy") => Strategy::LeastBusy,
                Some("round-robin") => Strategy::RoundRobin,
                Some("random") => Strategy::Random,
                Some(other) => {
                    return Err(invalid(format!(
                        "unknown strategy {other:?} (expected \"least-busy\", \"round-robin\" or \"random\")"
                    )))
                }
            },
            seed: 0,
            burst_workers: burst_workers as usize,
        };
        if sched.priority_caps().is_none() {
            return Err(invalid(format!(
                "prioritySlots guarantee more slots than the pool has (maxWorkers × concurrency = {})",
                sched.max_workers * sched.concurrency
            )));
        }
        let spawn = SpawnSpec {
            program: o.program.into(),
            args: o.args.into_iter().map(Into::into).collect(),
            env: o
                .env
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            env_remove: o
                .env_remove
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            cwd: o.cwd.map(Into::into),
            cpu: None,
            nice,
        };
        let mut cfg = EngineConfig::new(sched, spawn, protocol);
        if let Some(bytes) = o.max_message {
            cfg.max_message = bytes as usize;
        }
        if let Some(ms) = o.kill_grace_ms {
            cfg.kill_grace = Duration::from_millis(ms.into());
        }
        if let Some(ms) = o.cancel_grace_ms {
            cfg.cancel_grace = Duration::from_millis(ms.into());
        }
        cfg.hello = o.hello;
        // Every node-ipc pool is a ComputeCluster, whose workers run the preload.
        cfg.ipc_envelope = protocol == Protocol::NodeIpc;
        cfg.job_defaults = JobOpts {
            retries: o.retries.unwrap_or(0),
            timeout,
            priority,
            queue_timeout,
            total_timeout,
            prefer: None,
            batch: 0,
        };
        cfg.max_rss = max_rss;
        cfg.affinity = o.affinity.unwrap_or(false);
        if let Some(n) = count("maxRecordBytes", o.max_record_bytes)? {
            cfg.max_record = (n as usize).min(engine::DEFAULT_MAX_RECORD);
        }
        if let Some(n) = count("maxWaitingBytes", o.max_waiting_bytes)? {
            cfg.max_waiting = n as usize;
        }
        Ok(cfg)
    }
}

fn invalid(message: impl Into<String>) -> InvalidOption {
    InvalidOption(message.into())
}

/// Milliseconds (>= 0, at most `MAX_DURATION_MS`) as a Duration; None when infinite.
fn millis(name: &str, ms: f64) -> Result<Option<Duration>, InvalidOption> {
    if ms.is_nan() || ms < 0.0 {
        return Err(invalid(format!(
            "{name} must be a number of milliseconds >= 0"
        )));
    }
    span(ms).map_err(|()| {
        invalid(format!(
            "{name} must be at most {MAX_DURATION_MS} ms (about 49.7 days), or Infinity"
        ))
    })
}

/// A span of `ms` milliseconds (not NaN, >= 0): None when infinite, an error when finite and
/// over `MAX_DURATION_MS`.
pub fn span(ms: f64) -> Result<Option<Duration>, ()> {
    if ms == f64::INFINITY {
        return Ok(None);
    }
    if ms > f64::from(MAX_DURATION_MS) {
        return Err(());
    }
    Ok(Duration::try_from_secs_f64(ms / 1000.0).ok())
}

/// An optional span that must be positive when given; infinite is the same as none.
fn positive_millis(name: &str, ms: Option<f64>) -> Result<Option<Duration>, InvalidOption> {
    match ms {
        None => Ok(None),
        Some(ms) if ms > 0.0 => millis(name, ms),
        Some(_) => Err(invalid(format!(
            "{name} must be a number of milliseconds > 0"
        ))),
    }
}

/// An optional limit that must be at least 1 when given (JS numbers: fractions truncate).
fn count(name: &str, n: Option<f64>) -> Result<Option<u64>, InvalidOption> {
    match n {
        None => Ok(None),
        Some(n) if n >= 1.0 => Ok(Some(n as u64)),
        Some(_) => Err(invalid(format!("{name} must be at least 1"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> NativeOptions {
        NativeOptions {
            program: "node".into(),
            args: vec!["w.js".into()],
            env: None,
            env_remove: None,
            cwd: None,
            max_workers: 4,
            burst_workers: None,
            concurrency: 2,
            max_backlog: None,
            max_request_time: None,
            max_message: None,
            kill_grace_ms: None,
            cancel_grace_ms: None,
            protocol: None,
            hello: None,
            min_workers: None,
            spawn_delay_ms: None,
            idle_timeout_ms: None,
            max_jobs_per_worker: None,
            max_rss: None,
            affinity: None,
            nice: None,
            retries: None,
            timeout_ms: None,
            priority: None,
            queue_timeout_ms: None,
            total_timeout_ms: None,
            fairness: None,
            group_affinity: None,
            strategy: None,
            priority_slots: None,
            sacred_guarantees: None,
            max_record_bytes: None,
            max_waiting_bytes: None,
        }
    }

    type Case = (fn(&mut NativeOptions), &'static str);

    fn convert(edit: impl FnOnce(&mut NativeOptions)) -> Result<EngineConfig, String> {
        let mut o = minimal();
        edit(&mut o);
        EngineConfig::try_from(o).map_err(|e| e.0)
    }

    #[test]
    fn left_out_options_take_the_engine_defaults() {
        let cfg = convert(|_| {}).unwrap();
        assert_eq!(cfg.max_message, engine::DEFAULT_MAX_MESSAGE);
        assert_eq!(cfg.kill_grace, engine::DEFAULT_KILL_GRACE);
        assert_eq!(DEFAULT_MAX_MESSAGE as usize, engine::DEFAULT_MAX_MESSAGE);
        assert_eq!(
            Duration::from_millis(DEFAULT_KILL_GRACE_MS.into()),
            engine::DEFAULT_KILL_GRACE
        );
        assert_eq!(cfg.protocol, Protocol::NodeIpc);
        let s = &cfg.sched;
        assert_eq!((s.max_workers, s.concurrency, s.min_workers), (4, 2, 0));
        assert_eq!(s.max_backlog, None);
        assert_eq!(s.max_request_time, None);
        assert_eq!(s.spawn_delay, Duration::ZERO);
        assert_eq!(s.idle_timeout, None);
        assert_eq!(s.max_jobs_per_worker, None);
        assert_eq!(cfg.max_rss, None);
        assert_eq!(cfg.spawn.nice, 0);
        assert!(!cfg.affinity);
        assert_eq!(cfg.job_defaults.retries, 0);
        assert_eq!(cfg.job_defaults.timeout, None);
        assert_eq!(cfg.hello, None);
    }

    #[test]
    fn burst_workers_default_to_max_workers_and_cannot_be_below() {
        assert_eq!(convert(|_| {}).unwrap().sched.burst_workers, 4);
        assert_eq!(
            convert(|o| o.burst_workers = Some(9))
                .unwrap()
                .sched
                .burst_workers,
            9
        );
        assert_eq!(
            convert(|o| o.burst_workers = Some(3)).unwrap_err(),
            "burstWorkers cannot be below maxWorkers"
        );
    }

    #[test]
    fn given_options_reach_the_engine() {
        let cfg = convert(|o| {
            o.max_backlog = Some(0);
            o.max_request_time = Some(1.5);
            o.max_message = Some(1024);
            o.kill_grace_ms = Some(0);
            o.protocol = Some("lines".into());
            o.hello = Some("{}".into());
            o.min_workers = Some(4);
            o.spawn_delay_ms = Some(100.0);
            o.idle_timeout_ms = Some(250.0);
            o.max_jobs_per_worker = Some(10.0);
            o.max_rss = Some(1e9);
            o.affinity = Some(true);
            o.nice = Some(19);
            o.retries = Some(3);
            o.timeout_ms = Some(2000.0);
            o.queue_timeout_ms = Some(300.0);
            o.fairness = Some("round-robin".into());
            o.group_affinity = Some(true);
            o.strategy = Some("random".into());
            o.total_timeout_ms = Some(f64::INFINITY);
        })
        .unwrap();
        let s = &cfg.sched;
        assert_eq!(
            cfg.job_defaults.queue_timeout,
            Some(Duration::from_millis(300))
        );
        assert_eq!(cfg.job_defaults.total_timeout, None, "Infinity: none");
        assert_eq!(s.fairness, Fairness::RoundRobin);
        assert!(s.group_affinity);
        assert_eq!(s.strategy, Strategy::Random);
        assert_eq!(s.max_backlog, Some(0));
        assert_eq!(s.max_request_time, Some(1.5));
        assert_eq!(s.min_workers, 4);
        assert_eq!(s.spawn_delay, Duration::from_millis(100));
        assert_eq!(s.idle_timeout, Some(Duration::from_millis(250)));
        assert_eq!(s.max_jobs_per_worker, Some(10));
        assert_eq!(cfg.max_message, 1024);
        assert_eq!(cfg.kill_grace, Duration::ZERO);
        assert_eq!(cfg.protocol, Protocol::Lines);
        assert_eq!(cfg.hello.as_deref(), Some("{}"));
        assert_eq!(cfg.max_rss, Some(1_000_000_000));
        assert!(cfg.affinity);
        assert_eq!(cfg.spawn.nice, 19);
        assert_eq!(cfg.job_defaults.retries, 3);
        assert_eq!(cfg.job_defaults.timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn infinite_spans_and_limits() {
        let cfg = convert(|o| {
            o.max_request_time = Some(f64::INFINITY);
            o.spawn_delay_ms = Some(f64::INFINITY);
            o.idle_timeout_ms = Some(f64::INFINITY);
            o.timeout_ms = Some(f64::INFINITY);
        })
        .unwrap();
        assert_eq!(cfg.sched.max_request_time, Some(f64::INFINITY));
        assert_eq!(cfg.sched.spawn_delay, Duration::ZERO);
        assert_eq!(cfg.sched.idle_timeout, None);
        assert_eq!(cfg.job_defaults.timeout, None);
    }

    #[test]
    fn what_the_engine_cannot_run_is_refused_with_the_reason() {
        let cases: [Case; 16] = [
            (
                |o| o.max_workers = 0,
                "maxWorkers and concurrency must be at least 1",
            ),
            (
                |o| o.concurrency = 0,
                "maxWorkers and concurrency must be at least 1",
            ),
            (
                |o| o.min_workers = Some(5),
                "minWorkers cannot exceed maxWorkers",
            ),
            (
                |o| o.protocol = Some("http".into()),
                "unknown protocol \"http\" (expected \"lines\" or \"node-ipc\")",
            ),
            (
                |o| o.fairness = Some("fair".into()),
                "unknown fairness \"fair\" (expected \"fifo\" or \"round-robin\")",
            ),
            (|o| o.max_backlog = Some(-1), "maxBacklog must be >= 0"),
            (
                |o| o.max_request_time = Some(0.0),
                "maxRequestTime must be a number of seconds > 0",
            ),
            (
                |o| o.max_request_time = Some(f64::NAN),
                "maxRequestTime must be a number of seconds > 0",
            ),
            (
                |o| o.spawn_delay_ms = Some(-1.0),
                "spawnDelayMs must be a number of milliseconds >= 0",
            ),
            (
                |o| o.idle_timeout_ms = Some(0.0),
                "idleTimeoutMs must be a number of milliseconds > 0",
            ),
            (
                |o| o.timeout_ms = Some(f64::NAN),
                "timeoutMs must be a number of milliseconds > 0",
            ),
            (
                |o| o.queue_timeout_ms = Some(-1.0),
                "queueTimeoutMs must be a number of milliseconds > 0",
            ),
            (
                |o| o.total_timeout_ms = Some(0.0),
                "totalTimeoutMs must be a number of milliseconds > 0",
            ),
            (
                |o| o.max_jobs_per_worker = Some(0.0),
                "maxJobsPerWorker must be at least 1",
            ),
            (|o| o.nice = Some(20), "nice must be from 0 to 19"),
            (|o| o.max_message = Some(0), "maxMessage must be at least 1"),
        ];
        for (edit, message) in cases {
            assert_eq!(convert(edit).err().as_deref(), Some(message));
        }
        assert_eq!(
            convert(|o| o.max_rss = Some(0.5)).err().as_deref(),
            Some("maxRss must be at least 1")
        );
    }

    #[test]
    fn priorities_and_priority_slots_reach_the_scheduler_or_are_refused() {
        // 4 workers × 2 = 8 slots.
        let cfg = convert(|o| {
            o.priority = Some(-2.5);
            o.priority_slots = Some(vec![1.0, 3.0, 2.0, 5.0]);
            o.sacred_guarantees = Some(true);
        })
        .unwrap();
        assert_eq!(cfg.job_defaults.priority, -2.5);
        assert!(cfg.sched.sacred_guarantees);
        assert_eq!(
            cfg.sched.priority_caps(),
            Some(vec![(0.0, 0), (1.0, 3), (2.0, 5)])
        );
        let cases: [Case; 6] = [
            (
                |o| o.priority = Some(f64::NAN),
                "priority must be a finite number",
            ),
            (
                |o| o.priority = Some(f64::INFINITY),
                "priority must be a finite number",
            ),
            (
                |o| o.priority_slots = Some(vec![1.0]),
                "prioritySlots must be pairs [from, slots, …]",
            ),
            (
                |o| o.priority_slots = Some(vec![-1.0, 1.0]),
                "prioritySlots: -1 is not a priority >= 0",
            ),
            (
                |o| o.priority_slots = Some(vec![1.0, 1.5]),
                "prioritySlots: the slots of priority 1 must be an integer >= 0, got 1.5",
            ),
            (
                |o| o.priority_slots = Some(vec![1.0, 4.0, 2.0, 5.0]),
                "prioritySlots guarantee more slots than the pool has (maxWorkers × concurrency = 8)",
            ),
        ];
        for (edit, message) in cases {
            assert_eq!(convert(edit).err().as_deref(), Some(message));
        }
    }

    #[test]
    fn finite_spans_over_the_bound_are_refused_and_the_bound_itself_is_taken() {
        // Issue 15, point 1: 1e22 ms used to reach the engine and abort the process.
        let cases: [Case; 3] = [
            (|o| o.spawn_delay_ms = Some(1e22), "spawnDelayMs"),
            (|o| o.idle_timeout_ms = Some(1e22), "idleTimeoutMs"),
            (|o| o.timeout_ms = Some(f64::MAX), "timeoutMs"),
        ];
        for (edit, name) in cases {
            assert_eq!(
                convert(edit).err(),
                Some(format!(
                    "{name} must be at most 4294967295 ms (about 49.7 days), or Infinity"
                ))
            );
        }
        let max = f64::from(MAX_DURATION_MS);
        let cfg = convert(|o| {
            o.spawn_delay_ms = Some(max);
            o.idle_timeout_ms = Some(max);
            o.timeout_ms = Some(max);
        })
        .unwrap();
        let d = Duration::from_millis(MAX_DURATION_MS.into());
        assert_eq!(cfg.sched.spawn_delay, d);
        assert_eq!(cfg.sched.idle_timeout, Some(d));
        assert_eq!(cfg.job_defaults.timeout, Some(d));
    }
}
