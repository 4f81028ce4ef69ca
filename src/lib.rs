//! The N-API binding of the comrade engine. Thin on purpose: it converts options, hands
//! payload text to the engine and batches of records back, and manages the one threadsafe
//! function that wakes the JS side. Public names, validation and errors live in `lib/`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use comrade_core::engine::{Engine, EngineConfig, Protocol};
use comrade_core::scheduler::{Reject, SchedConfig};
use comrade_core::spawn::SpawnSpec;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

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
}

/// Records taken from the engine: `text` is a JSON array with one value per record.
#[napi(object)]
pub struct NativeBatch {
    pub ids: Uint32Array,
    pub kinds: Uint8Array,
    pub text: String,
}

#[napi]
pub struct NativePool {
    engine: Engine,
    wake: Arc<Wake>,
    referenced: bool,
}

#[napi]
impl NativePool {
    /// `wake` is called on the JS thread when records are waiting; call `take()` then.
    #[napi(constructor)]
    pub fn new(
        options: NativeOptions,
        #[napi(ts_arg_type = "() => void")] wake: Function<'_, (), ()>,
    ) -> Result<Self> {
        if options.max_workers == 0 || options.concurrency == 0 {
            return Err(Error::new(
                Status::InvalidArg,
                "maxWorkers and concurrency must be at least 1",
            ));
        }
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
        };
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
        })
    }

    /// Submits `count` jobs with ids `firstId, firstId + 1, …`, one JSON text per line of
    /// `payloads`. Returns the refused ones as flat triples `[index, reason, value, …]`:
    /// reason 0 = closed, 1 = backlog full (value = limit), 2 = expected duration too long
    /// (value = seconds).
    #[napi]
    pub fn submit(&self, first_id: u32, payloads: String, count: u32) -> Vec<f64> {
        let mut out = Vec::new();
        for r in self.engine.submit(first_id, &payloads, count as usize) {
            let (reason, value) = match r.reason {
                Reject::Closed => (0.0, 0.0),
                Reject::Backlog(n) => (1.0, n as f64),
                Reject::Duration(s) => (2.0, s),
            };
            out.extend_from_slice(&[r.index as f64, reason, value]);
        }
        out
    }

    /// Every record produced since the last call, or null.
    #[napi]
    pub fn take(&self) -> Option<NativeBatch> {
        self.engine.take().map(|b| NativeBatch {
            ids: Uint32Array::new(b.ids),
            kinds: Uint8Array::new(b.kinds),
            text: b.text,
        })
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
