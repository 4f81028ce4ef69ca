//! The N-API binding of the comrade engine. Thin on purpose: it converts options, hands
//! payload text to the engine and batches of records back, and manages the one threadsafe
//! function that wakes the JS side (and, under light load, the direct reads of `direct.rs`).
//! Public names, validation and errors live in `lib/`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use comrade_core::engine::{Engine, EngineConfig, Protocol, Rejection};
use comrade_core::scheduler::{JobOpts, Reject, SchedConfig};
use comrade_core::spawn::SpawnSpec;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

mod direct;

type Wake = ThreadsafeFunction<(), (), (), Status, false, true>;

/// Engine options, already validated and defaulted by the JS layer.
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
    pub max_workers: u32,
    pub concurrency: u32,
    /// Most queued jobs; negative means unlimited.
    pub max_backlog: i64,
    /// Seconds; 0 turns the expected-duration check off.
    pub max_request_time: f64,
    /// Longest accepted worker message, in bytes.
    pub max_message: u32,
    /// Milliseconds between SIGTERM and SIGKILL when stopping a worker.
    pub kill_grace_ms: u32,
    /// `"lines"`: comrade's protocol (docs/PROTOCOL.md); otherwise Node's IPC, one job per
    /// message, as compute-cluster workers speak it.
    pub protocol: Option<String>,
    /// A line written to each new worker before any job (the protocol's `init` message).
    pub hello: Option<String>,
    /// Workers kept warm (started at once). Default 0.
    pub min_workers: Option<u32>,
    /// Milliseconds between two growth spawns. Default 0.
    pub spawn_delay_ms: Option<f64>,
    /// Milliseconds after which an idle worker above `minWorkers` is stopped.
    pub idle_timeout_ms: Option<f64>,
    /// Jobs after which a worker is replaced.
    pub max_jobs_per_worker: Option<f64>,
    /// Bytes of resident memory above which a worker is replaced.
    pub max_rss: Option<f64>,
    /// Pin worker i to CPU i.
    pub affinity: Option<bool>,
    /// Added to each worker's nice value (0..=19): lower CPU priority than the parent.
    pub nice: Option<i32>,
    /// Default retries of a job whose worker dies.
    pub retries: Option<u32>,
    /// Default run timeout of a job, in milliseconds.
    pub timeout_ms: Option<f64>,
}

#[napi]
pub struct NativePool {
    engine: Engine,
    wake: Arc<Wake>,
    referenced: bool,
    direct: RefCell<Option<direct::Direct>>,
}

#[napi]
impl NativePool {
    /// `wake` is called on the JS thread when records are waiting; call `take()` then.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        options: NativeOptions,
        #[napi(ts_arg_type = "() => void")] wake: Function<'_, (), ()>,
    ) -> Result<Self> {
        if options.max_workers == 0 || options.concurrency == 0 {
            return Err(Error::new(
                Status::InvalidArg,
                "maxWorkers and concurrency must be at least 1",
            ));
        }
        // Direct reads call the same JS function as the wake.
        let direct = direct::Direct::new(env.raw(), wake.raw());
        let wake: Wake = wake
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        let wake = Arc::new(wake);
        let cfg = EngineConfig {
            sched: SchedConfig {
                max_workers: options.max_workers as usize,
                concurrency: options.concurrency as usize,
                max_backlog: usize::try_from(options.max_backlog).ok(),
                max_request_time: (options.max_request_time > 0.0)
                    .then_some(options.max_request_time),
                min_workers: options.min_workers.unwrap_or(0) as usize,
                spawn_delay: millis(options.spawn_delay_ms).unwrap_or(Duration::ZERO),
                idle_timeout: millis(options.idle_timeout_ms),
                max_jobs_per_worker: options
                    .max_jobs_per_worker
                    .filter(|n| *n >= 1.0)
                    .map(|n| n as u64),
            },
            spawn: SpawnSpec {
                program: options.program.into(),
                args: options.args.into_iter().map(Into::into).collect(),
                env: options
                    .env
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
                env_remove: options
                    .env_remove
                    .unwrap_or_default()
                    .into_iter()
                    .map(Into::into)
                    .collect(),
                cwd: options.cwd.map(Into::into),
                cpu: None,
                nice: options.nice.unwrap_or(0).clamp(0, 19),
            },
            protocol: match options.protocol.as_deref() {
                Some("lines") => Protocol::Lines,
                None | Some("node-ipc") => Protocol::NodeIpc,
                Some(other) => {
                    return Err(Error::new(
                        Status::InvalidArg,
                        format!("unknown protocol {other:?}"),
                    ))
                }
            },
            max_message: options.max_message as usize,
            kill_grace: Duration::from_millis(options.kill_grace_ms as u64),
            hello: options.hello,
            job_defaults: JobOpts {
                retries: options.retries.unwrap_or(0),
                timeout: millis(options.timeout_ms),
            },
            max_rss: options.max_rss.filter(|n| *n >= 1.0).map(|n| n as u64),
            affinity: options.affinity.unwrap_or(false),
        };
        if cfg.sched.min_workers > cfg.sched.max_workers {
            return Err(Error::new(
                Status::InvalidArg,
                "minWorkers cannot exceed maxWorkers",
            ));
        }
        let waker = wake.clone();
        let engine = Engine::new(
            cfg,
            Box::new(move || {
                waker.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }),
        );
        Ok(NativePool {
            engine,
            wake,
            referenced: false,
            direct: RefCell::new(direct),
        })
    }

    /// Submits `count` jobs with ids `firstId, firstId + 1, …`, one JSON text per line of
    /// `payloads`. Returns the refused ones as flat triples `[index, reason, value, …]`:
    /// reason 0 = closed, 1 = backlog full (value = limit), 2 = expected duration too long
    /// (value = seconds).
    ///
    /// `retries` and `timeouts` (milliseconds, 0 = none), when given, hold one value per job
    /// and replace the pool's defaults for this batch.
    #[napi]
    pub fn submit(
        &self,
        first_id: u32,
        payloads: String,
        count: u32,
        retries: Option<Uint32Array>,
        timeouts: Option<Float64Array>,
    ) -> Vec<f64> {
        let opts = job_opts(count, retries.as_deref(), timeouts.as_deref());
        let rejected =
            rejections(
                self.engine
                    .submit_with(first_id, &payloads, count as usize, &opts),
            );
        self.sync_direct();
        rejected
    }

    /// For the `lines` protocol: submits `count` calls with ids `firstId, firstId + 1, …`. Line i
    /// of `args` is call i's arguments as JSON without the enclosing brackets (`1,"a"`); line i
    /// of `fns`, when given, the JSON text of its function name (`null` for the default). The
    /// engine writes the frames.
    /// Returns and options as for `submit`.
    #[napi]
    pub fn submit_calls(
        &self,
        first_id: u32,
        args: String,
        fns: Option<String>,
        count: u32,
        retries: Option<Uint32Array>,
        timeouts: Option<Float64Array>,
    ) -> Vec<f64> {
        let opts = job_opts(count, retries.as_deref(), timeouts.as_deref());
        let rejected = rejections(self.engine.submit_calls(
            first_id,
            &args,
            fns.as_deref(),
            count as usize,
            &opts,
        ));
        self.sync_direct();
        rejected
    }

    /// Every record produced since the last call, as one JSON array of `kind, id, value`
    /// triples, or null.
    #[napi]
    pub fn take(&self) -> Option<String> {
        let batch = self.engine.take().map(|b| b.text);
        if batch.is_none() {
            // The last take of a drain: the load it leaves decides who reads replies next.
            self.sync_direct();
        }
        batch
    }

    fn sync_direct(&self) {
        if let Some(d) = self.direct.borrow_mut().as_mut() {
            d.sync(&self.engine);
        }
    }

    /// Whether pending work keeps the Node event loop alive. The JS layer turns this on while
    /// any job is unsettled (or a shutdown is in progress) and off when idle.
    #[napi]
    pub fn set_ref(&mut self, env: Env, on: bool) -> Result<()> {
        if on == self.referenced {
            return Ok(());
        }
        let raw = self.wake.raw();
        // SAFETY: called on the JS thread with the live env and our own threadsafe function.
        let status = unsafe {
            if on {
                napi::sys::napi_ref_threadsafe_function(env.raw(), raw)
            } else {
                napi::sys::napi_unref_threadsafe_function(env.raw(), raw)
            }
        };
        if status != napi::sys::Status::napi_ok {
            return Err(Error::new(
                Status::GenericFailure,
                "cannot (un)ref the pool",
            ));
        }
        self.referenced = on;
        Ok(())
    }

    /// Per-job dispatch/completion records, for compute-cluster's 'debug' event.
    #[napi]
    pub fn set_debug(&self, on: bool) {
        self.engine.set_debug(on);
    }

    /// Stops the pool: with `drain`, queued jobs run first; without, they fail with reason
    /// "closed". Workers get SIGTERM, then SIGKILL after the grace period.
    #[napi]
    pub fn shutdown(&self, drain: bool) {
        self.engine.shutdown(drain);
    }

    /// Pids of the live workers.
    #[napi]
    pub fn pids(&self) -> Vec<i32> {
        self.engine.pids()
    }

    /// Withdraws a job (its caller aborted): 0 = not found, 1 = was queued, 2 = was running
    /// (its worker is killed and replaced). No record follows for it.
    #[napi]
    pub fn cancel(&self, id: u32) -> u32 {
        self.engine.cancel(id) as u32
    }

    /// Workers, queue, totals and percentiles, as JSON text.
    #[napi]
    pub fn stats(&self) -> String {
        self.engine.stats_json()
    }
}

/// Physical cores and execution units (logical CPUs) of this machine.
#[napi(object)]
pub struct CpuCount {
    pub physical: u32,
    pub logical: u32,
}

#[napi]
pub fn ncpu() -> CpuCount {
    let (physical, logical) = comrade_core::spawn::ncpu();
    CpuCount {
        physical: physical as u32,
        logical: logical as u32,
    }
}

/// Milliseconds (positive and finite) as a Duration.
fn millis(ms: Option<f64>) -> Option<Duration> {
    ms.filter(|v| v.is_finite() && *v > 0.0)
        .map(|v| Duration::from_secs_f64(v / 1000.0))
}

/// SIGKILLs every worker of every pool in this process. For `process.on('exit')`.
#[napi]
pub fn kill_all_workers() {
    comrade_core::engine::kill_all_workers();
}

/// Registers the environment teardown hook that kills leftover workers.
#[napi]
pub fn install_cleanup(env: Env) -> Result<()> {
    env.add_env_cleanup_hook((), |_| comrade_core::engine::kill_all_workers())?;
    Ok(())
}

/// Per-job options for a batch: none when the pool's defaults apply to every job.
fn job_opts(count: u32, retries: Option<&[u32]>, timeouts: Option<&[f64]>) -> Vec<JobOpts> {
    if retries.is_none() && timeouts.is_none() {
        return Vec::new();
    }
    (0..count as usize)
        .map(|i| JobOpts {
            retries: retries.and_then(|r| r.get(i).copied()).unwrap_or(0),
            timeout: timeouts
                .and_then(|t| t.get(i).copied())
                .and_then(|ms| millis(Some(ms))),
        })
        .collect()
}

/// Refused jobs as flat `[index, reason, value, …]` triples.
fn rejections(rejected: Vec<Rejection>) -> Vec<f64> {
    let mut out = Vec::with_capacity(rejected.len() * 3);
    for r in rejected {
        let (reason, value) = match r.reason {
            Reject::Closed => (0.0, 0.0),
            Reject::Backlog(n) => (1.0, n as f64),
            Reject::Duration(s) => (2.0, s),
        };
        out.extend_from_slice(&[r.index as f64, reason, value]);
    }
    out
}
