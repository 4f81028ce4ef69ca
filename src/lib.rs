//! The N-API binding of the comrade engine. Thin on purpose: it converts options
//! (`options.rs`), hands payload text to the engine and batches of records back (their
//! numbers: `records.rs`), and manages the one threadsafe function that wakes the JS side
//! (and, under light load, the direct reads of `direct.rs`). Public names, the validation of
//! user options and their errors live in `lib/`; the binding refuses only what the engine
//! cannot run.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use comrade_core::engine::{Engine, EngineConfig};
use comrade_core::scheduler::JobOpts;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

mod direct;
mod options;
mod records;

use options::NativeOptions;
use records::rejections;

type Wake = ThreadsafeFunction<(), (), (), Status, false, true>;

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
        let cfg = EngineConfig::try_from(options)?;
        // Direct reads call the same JS function as the wake.
        let direct = direct::Direct::new(env.raw(), wake.raw());
        let wake: Wake = wake
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        let wake = Arc::new(wake);
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
    /// `payloads`. Returns the refused ones as flat triples `[index, reason, value, …]`, reason
    /// a `RejectReason`.
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
    /// triples (kind a `RecordKind`), or null.
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
            // A typed array has no "none": 0 (or anything not positive and finite) is.
            timeout: timeouts
                .and_then(|t| t.get(i).copied())
                .filter(|ms| ms.is_finite() && *ms > 0.0)
                .map(|ms| Duration::from_secs_f64(ms / 1000.0)),
        })
        .collect()
}
