//! The N-API binding of the comrade engine. Thin on purpose: it converts options
//! (`options.rs`), hands payload text to the engine and batches of records back (their
//! numbers: `records.rs`), and manages the one threadsafe function that wakes the JS side
//! (and the direct reads of `direct.rs`). Public names, the validation of
//! user options and their errors live in `lib/`; the binding refuses only what the engine
//! cannot run.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use comrade_core::engine::{Engine, EngineConfig, JobBins, JobExtras};
use comrade_core::scheduler::JobOpts;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

mod direct;
mod options;
mod rawtext;
mod records;
mod redis;

use options::NativeOptions;
use records::rejections;

type Wake = ThreadsafeFunction<(), (), (), Status, false, true>;

/// What every entry point returns: a JS error's `code` is the status name of a napi error
/// (`InvalidArg`, ...) or `ERR_INTERNAL` for a panic caught at the boundary.
mod js {
    pub type Result<T> = std::result::Result<T, napi::Error<String>>;
}

/// The `code` of the JS error a panic in the binding or the engine becomes.
pub const ERR_INTERNAL: &str = "ERR_INTERNAL";

/// Runs the body of the `#[napi]` entry point `what`. A panic inside must never unwind into
/// Node (the process would abort): it becomes a JS error with code `ERR_INTERNAL` and the
/// panic's message. Every entry point goes through here.
fn entry<T>(what: &str, body: impl FnOnce() -> Result<T>) -> js::Result<T> {
    match guarded(what, body) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(napi::Error::new(e.status.as_ref().to_owned(), e.reason)),
        Err(message) => Err(napi::Error::new(ERR_INTERNAL.to_owned(), message)),
    }
}

/// Runs `body`, catching a panic: `Err` holds the message of the JS error it becomes.
fn guarded<R>(what: &str, body: impl FnOnce() -> R) -> std::result::Result<R, String> {
    catch_unwind(AssertUnwindSafe(body)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        format!("comrade: internal error in {what}: {message}")
    })
}

/// A worker's load ([`NativePool::worker_loads`]).
#[napi(object)]
pub struct WorkerLoadInfo {
    pub pid: i32,
    pub in_flight: u32,
    pub jobs_done: f64,
    /// The group of the job it was last given, while that group has live jobs.
    pub group: Option<String>,
}

#[napi]
pub struct NativePool {
    engine: Engine,
    /// The threadsafe function that wakes JS, holding a strong reference to the JS callback
    /// (the session's drain, which reaches this object): None once `release`d. The engine's
    /// waker holds it weakly, so dropping this one releases it.
    wake: Option<Arc<Wake>>,
    referenced: bool,
    direct: RefCell<Option<direct::Direct>>,
    /// The binary attachments of the batch `take` returned last, until `takeBins`.
    bins: RefCell<Vec<Vec<u8>>>,
}

#[napi]
impl NativePool {
    /// `wake` is called on the JS thread when records are waiting; call `take()` then.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        options: NativeOptions,
        #[napi(ts_arg_type = "() => void")] wake: Function<'_, (), ()>,
    ) -> js::Result<Self> {
        entry("new NativePool", || Self::make(env, options, wake))
    }
}

impl NativePool {
    fn make(env: Env, options: NativeOptions, wake: Function<'_, (), ()>) -> Result<Self> {
        let cfg = EngineConfig::try_from(options)?;
        // Direct reads call the same JS function as the wake.
        let direct = direct::Direct::new(env.raw(), wake.raw());
        let wake: Wake = wake
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        let wake = Arc::new(wake);
        let waker = Arc::downgrade(&wake);
        let engine = Engine::new(
            cfg,
            Box::new(move || {
                if let Some(wake) = waker.upgrade() {
                    wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
                }
            }),
        );
        Ok(NativePool {
            engine,
            wake: Some(wake),
            referenced: false,
            direct: RefCell::new(direct),
            bins: RefCell::new(Vec::new()),
        })
    }
}

#[napi]
impl NativePool {
    /// Submits `count` jobs with ids `firstId, firstId + 1, …`, one JSON text per line of
    /// `payloads`. Returns the refused ones as flat triples `[index, reason, value, …]`, reason
    /// a `RejectReason`.
    ///
    /// `retries` and `timeouts` (milliseconds, 0 = none, at most `MAX_DURATION_MS`), when
    /// given, hold one value per job and replace the pool's defaults for this batch.
    #[napi]
    pub fn submit(
        &self,
        first_id: u32,
        payloads: String,
        count: u32,
        retries: Option<Uint32Array>,
        timeouts: Option<Float64Array>,
    ) -> js::Result<Vec<f64>> {
        entry("NativePool.submit", || {
            // ComputeCluster's jobs: long strings may come raw, as for submitNamed.
            let payloads =
                rawtext::expand(payloads).map_err(|e| Error::new(Status::InvalidArg, e))?;
            let opts = job_opts(
                count,
                JobArrays {
                    retries: retries.as_deref(),
                    timeouts: timeouts.as_deref(),
                    ..JobArrays::default()
                },
                self.engine.job_defaults(),
            )
            .map_err(|e| Error::new(Status::InvalidArg, e))?;
            let rejected =
                rejections(
                    self.engine
                        .submit_with(first_id, &payloads, count as usize, &opts),
                );
            self.sync_direct();
            Ok(rejected)
        })
    }

    /// `submitCalls` for a batch with no per-job options, side arrays or attachments (the pool's
    /// defaults for every job): the common case, without the conversion of ten absent
    /// arguments and the per-job options.
    #[napi]
    pub fn submit_named(
        &self,
        first_id: u32,
        args: String,
        fns: Option<String>,
        count: u32,
    ) -> js::Result<Vec<f64>> {
        entry("NativePool.submitNamed", || {
            let args = rawtext::expand(args).map_err(|e| Error::new(Status::InvalidArg, e))?;
            let rejected = rejections(self.engine.submit_calls(
                first_id,
                &args,
                fns.as_deref(),
                count as usize,
                &[],
            ));
            self.sync_direct();
            Ok(rejected)
        })
    }

    /// For the `lines` protocol: submits `count` calls with ids `firstId, firstId + 1, …`. Line i
    /// of `args` is call i's arguments as JSON without the enclosing brackets (`1,"a"`); line i
    /// of `fns`, when given, the JSON text of its function name (`null` for the default). The
    /// engine writes the frames.
    /// Returns and options as for `submit`; `priorities` (finite numbers), when given, one
    /// per job, replace the pool's default priority (left out: the pool's, for every job);
    /// `waits`, when given, holds two values per job, its queue timeout and its total timeout
    /// (milliseconds, 0 = none, as `timeouts`), replacing the pool's; `groups`, when given,
    /// each job's requestor group (empty: none); `pins`, when given, each job's preferred
    /// worker by pid (0: none; see `workerLoads`); `batches`, when given, each job's batch
    /// with a deadline (0: none; see `setBurst`).
    /// Line i of `traceparents`, when given, is call i's W3C traceparent (empty: none).
    #[napi]
    #[allow(clippy::too_many_arguments)] // the binding's positional arguments
    pub fn submit_calls(
        &self,
        first_id: u32,
        args: String,
        fns: Option<String>,
        count: u32,
        retries: Option<Uint32Array>,
        timeouts: Option<Float64Array>,
        priorities: Option<Float64Array>,
        waits: Option<Float64Array>,
        groups: Option<Vec<String>>,
        pins: Option<Int32Array>,
        batches: Option<Uint32Array>,
        bin_counts: Option<Uint32Array>,
        bins: Option<Vec<Buffer>>,
        traceparents: Option<String>,
    ) -> js::Result<Vec<f64>> {
        entry("NativePool.submitCalls", || {
            let args = rawtext::expand(args).map_err(|e| Error::new(Status::InvalidArg, e))?;
            let opts = job_opts(
                count,
                JobArrays {
                    retries: retries.as_deref(),
                    timeouts: timeouts.as_deref(),
                    priorities: priorities.as_deref(),
                    waits: waits.as_deref(),
                },
                self.engine.job_defaults(),
            )
            .map_err(|e| Error::new(Status::InvalidArg, e))?;
            let bin_slices: Vec<&[u8]> = bins.iter().flatten().map(|b| &b[..]).collect();
            let rejected = rejections(self.engine.submit_calls_in(
                first_id,
                &args,
                fns.as_deref(),
                traceparents.as_deref(),
                count as usize,
                &opts,
                JobExtras {
                    groups: groups.as_deref(),
                    pins: pins.as_deref(),
                    batches: batches.as_deref(),
                    bins: bin_counts.as_deref().map(|counts| JobBins {
                        counts,
                        data: &bin_slices,
                    }),
                },
            ));
            self.sync_direct();
            Ok(rejected)
        })
    }

    /// Batch `batch` (an id of the host's, not 0) must finish by `finishBy` (ms since the
    /// epoch); `remaining` of its jobs are not settled. The pool grows past `maxWorkers`, up
    /// to `burstWorkers`, while the batch's recent run times say it would finish late;
    /// `speculate`: its stragglers may run again near the deadline. Call again as `remaining`
    /// changes, and `endBurst` when the batch is over.
    #[napi]
    pub fn set_burst(
        &self,
        batch: u32,
        finish_by: f64,
        remaining: f64,
        speculate: bool,
    ) -> js::Result<()> {
        entry("NativePool.setBurst", || {
            let remaining = if remaining > 0.0 {
                remaining.min(usize::MAX as f64) as usize
            } else {
                0
            };
            self.engine
                .set_burst(batch, finish_by, remaining, speculate);
            Ok(())
        })
    }

    /// Batch `batch` is over (see `setBurst`).
    #[napi]
    pub fn end_burst(&self, batch: u32) -> js::Result<()> {
        entry("NativePool.endBurst", || {
            self.engine.end_burst(batch);
            Ok(())
        })
    }

    /// Every record produced since the last call, as one JSON array of `kind, id, value`
    /// triples (kind a `RecordKind`), or null.
    #[napi]
    pub fn take(&self) -> js::Result<Option<String>> {
        entry("NativePool.take", || {
            let batch = self.engine.take().map(|b| {
                *self.bins.borrow_mut() = b.bins;
                b.text
            });
            if batch.is_none() {
                // The last take of a drain: the load it leaves decides who reads replies next.
                self.sync_direct();
            }
            Ok(batch)
        })
    }

    /// The binary attachments of the batch `take` returned last (its RESULT_BIN records'), in
    /// order, handed over without a copy; null for an empty one (JS makes its own).
    #[napi]
    pub fn take_bins(&self) -> js::Result<Vec<Option<Buffer>>> {
        entry("NativePool.takeBins", || {
            let bins = std::mem::take(&mut *self.bins.borrow_mut());
            Ok(bins
                .into_iter()
                .map(|b| (!b.is_empty()).then(|| Buffer::from(b)))
                .collect())
        })
    }

    fn sync_direct(&self) {
        if let Some(d) = self.direct.borrow_mut().as_mut() {
            d.sync(&self.engine);
        }
    }

    /// Whether pending work keeps the Node event loop alive. The JS layer turns this on while
    /// any job is unsettled (or a shutdown is in progress) and off when idle.
    #[napi]
    pub fn set_ref(&mut self, env: Env, on: bool) -> js::Result<()> {
        entry("NativePool.setRef", || self.set_ref_now(env, on))
    }

    /// Per-job SENT/RAN records (worker pid, wait and run times), for Pool's tracing.
    #[napi]
    pub fn set_trace(&self, on: bool) -> js::Result<()> {
        entry("NativePool.setTrace", || {
            self.engine.set_trace(on);
            Ok(())
        })
    }

    /// Per-job dispatch/completion records, for compute-cluster's 'debug' event.
    #[napi]
    pub fn set_debug(&self, on: bool) -> js::Result<()> {
        entry("NativePool.setDebug", || {
            self.engine.set_debug(on);
            Ok(())
        })
    }

    /// Stops the pool: with `drain`, queued jobs run first; without, they fail with reason
    /// "closed". Workers get SIGTERM, then SIGKILL after the grace period.
    #[napi]
    pub fn shutdown(&self, drain: bool) -> js::Result<()> {
        entry("NativePool.shutdown", || {
            self.engine.shutdown(drain);
            Ok(())
        })
    }

    /// Pids of the live workers.
    #[napi]
    pub fn pids(&self) -> js::Result<Vec<i32>> {
        entry("NativePool.pids", || Ok(self.engine.pids()))
    }

    /// Jobs queued and not yet given to a worker (for `needsDrain` and its `'drain'` event:
    /// cheaper than `stats()`).
    #[napi]
    pub fn queued(&self) -> js::Result<u32> {
        entry("NativePool.queued", || Ok(self.engine.queued() as u32))
    }

    /// Withdraws a job (its caller aborted): 0 = not found, 1 = was queued, 2 = was running
    /// (its worker is killed and replaced). No record follows for it.
    #[napi]
    pub fn cancel(&self, id: u32) -> js::Result<u32> {
        entry("NativePool.cancel", || Ok(self.engine.cancel(id) as u32))
    }

    /// Broadcast `id`: writes `message` (JSON text) to every live worker; a `Broadcast` record
    /// with id `id` follows once each has acknowledged it or is gone. Returns the number of
    /// workers it was written to.
    #[napi]
    pub fn broadcast(&self, id: u32, message: String) -> js::Result<u32> {
        entry("NativePool.broadcast", || {
            Ok(self.engine.broadcast(id, &message) as u32)
        })
    }

    /// The workers that take work (spawn order), each with its jobs in flight, jobs done and
    /// the group it last served: what a custom `selectWorker` is shown.
    #[napi]
    pub fn worker_loads(&self) -> js::Result<Vec<WorkerLoadInfo>> {
        entry("NativePool.workerLoads", || {
            Ok(self
                .engine
                .worker_loads()
                .into_iter()
                .map(|l| WorkerLoadInfo {
                    pid: l.pid,
                    in_flight: l.in_flight as u32,
                    jobs_done: l.jobs_done as f64,
                    group: l.group,
                })
                .collect())
        })
    }

    /// Workers, queue, totals and percentiles, as JSON text.
    #[napi]
    pub fn stats(&self) -> js::Result<String> {
        entry("NativePool.stats", || Ok(self.engine.stats_json()))
    }

    /// Counters, gauges and wait/run histograms for `pool.metrics()`, as JSON text.
    #[napi]
    pub fn metrics(&self) -> js::Result<String> {
        entry("NativePool.metrics", || Ok(self.engine.metrics_json()))
    }

    /// Bytes of records waiting for `take()` (for tests and diagnostics: the engine stops
    /// reading workers while they pass `maxWaitingBytes`).
    #[napi]
    pub fn waiting_bytes(&self) -> js::Result<f64> {
        entry("NativePool.waitingBytes", || {
            Ok(self.engine.waiting_bytes() as f64)
        })
    }

    /// Lets go of the JS callback, for a pool that has shut down with every worker reaped
    /// (after `ALL_EXITED`), so that the pool can be garbage-collected: the threadsafe function
    /// and the direct reads' reference hold the callback strongly, and the callback reaches
    /// this object, a cycle through native references that the GC cannot see. No wake comes
    /// after this; `take()`, `pids()` and `stats()` still work. Call it outside the callback
    /// (the direct reads' async context is destroyed here).
    #[napi]
    pub fn release(&mut self) -> js::Result<()> {
        entry("NativePool.release", || {
            self.engine.set_direct(false);
            // Closes the polls, deletes the callback's reference.
            self.direct.get_mut().take();
            // The last strong handle: napi_release_threadsafe_function, whose finalizer deletes
            // its reference to the callback (and no longer keeps the loop alive, if it did).
            self.wake = None;
            self.referenced = false;
            Ok(())
        })
    }
}

impl NativePool {
    fn set_ref_now(&mut self, env: Env, on: bool) -> Result<()> {
        if on == self.referenced {
            return Ok(());
        }
        // Released: nothing keeps the loop alive any more.
        let Some(wake) = &self.wake else {
            return Ok(());
        };
        let raw = wake.raw();
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
}

/// Physical cores and execution units (logical CPUs) of this machine.
#[napi(object)]
pub struct CpuCount {
    pub physical: u32,
    pub logical: u32,
}

#[napi]
pub fn ncpu() -> js::Result<CpuCount> {
    entry("ncpu", || {
        let (physical, logical) = comrade_core::spawn::ncpu();
        Ok(CpuCount {
            physical: physical as u32,
            logical: logical as u32,
        })
    })
}

/// SIGKILLs every worker of every pool in this process. For `process.on('exit')`.
#[napi]
pub fn kill_all_workers() -> js::Result<()> {
    entry("killAllWorkers", || {
        comrade_core::engine::kill_all_workers();
        Ok(())
    })
}

/// SIGKILLs the workers of the pools of this environment (this thread) only. For
/// `process.on('exit')` in a worker thread, whose end must not stop the other threads' pools.
#[napi]
pub fn kill_env_workers() -> js::Result<()> {
    entry("killEnvWorkers", || {
        ENV_ID.with(|id| {
            if let Some(id) = id.get() {
                comrade_core::engine::kill_env_workers(id);
            }
        });
        Ok(())
    })
}

thread_local! {
    /// The engine's id of the environment on this thread (Node runs one per thread).
    static ENV_ID: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Gives this environment an id of its own (pools created on this thread belong to it) and
/// registers its teardown hook, which kills the workers left: every worker of the process when
/// `main_thread` (the process is going away), only this environment's otherwise (a worker
/// thread ends while the process lives on).
#[napi]
pub fn install_cleanup(env: Env, main_thread: bool) -> js::Result<()> {
    entry("installCleanup", || {
        let id = comrade_core::engine::set_thread_env();
        ENV_ID.with(|e| e.set(Some(id)));
        env.add_env_cleanup_hook(id, move |id| {
            // Called by Node with no JS to throw to: a panic is dropped, never unwound into it.
            let _ = catch_unwind(|| {
                if main_thread {
                    comrade_core::engine::kill_all_workers();
                } else {
                    comrade_core::engine::kill_env_workers(id);
                }
            });
        })?;
        Ok(())
    })
}

/// The per-job arrays of a batch (see `submitCalls`); each may be left out.
#[derive(Default, Clone, Copy)]
struct JobArrays<'a> {
    retries: Option<&'a [u32]>,
    timeouts: Option<&'a [f64]>,
    priorities: Option<&'a [f64]>,
    /// Two per job: queue timeout, total timeout.
    waits: Option<&'a [f64]>,
}

/// A per-job span in milliseconds (`what[i]`): 0 (or anything not positive, or infinite) is
/// none; a finite one over `MAX_DURATION_MS` is refused, as the options are; missing, the
/// pool's `default`.
fn job_span(
    ms: Option<f64>,
    default: Option<std::time::Duration>,
    what: &str,
    i: usize,
) -> std::result::Result<Option<std::time::Duration>, String> {
    match ms {
        None => Ok(default),
        Some(ms) if ms > 0.0 => options::span(ms).map_err(|()| {
            format!(
                "{what}[{i}] must be at most {} ms (about 49.7 days), or Infinity",
                options::MAX_DURATION_MS
            )
        }),
        Some(_) => Ok(None),
    }
}

/// Per-job options for a batch: none when the pool's defaults apply to every job. Spans as
/// [`job_span`]. A priority must be finite. An array left out (or too short) gives the pool's
/// `defaults`.
fn job_opts(
    count: u32,
    a: JobArrays<'_>,
    defaults: JobOpts,
) -> std::result::Result<Vec<JobOpts>, String> {
    let JobArrays {
        retries,
        timeouts,
        priorities,
        waits,
    } = a;
    if retries.is_none() && timeouts.is_none() && priorities.is_none() && waits.is_none() {
        return Ok(Vec::new());
    }
    (0..count as usize)
        .map(|i| {
            let timeout = job_span(
                timeouts.and_then(|t| t.get(i).copied()),
                defaults.timeout,
                "timeouts",
                i,
            )?;
            let wait = |k: usize| waits.and_then(|w| w.get(2 * i + k).copied());
            let queue_timeout = job_span(wait(0), defaults.queue_timeout, "queue timeouts", i)?;
            let total_timeout = job_span(wait(1), defaults.total_timeout, "total timeouts", i)?;
            let priority = priorities
                .and_then(|p| p.get(i).copied())
                .unwrap_or(defaults.priority);
            if !priority.is_finite() {
                return Err(format!("priorities[{i}] must be a finite number"));
            }
            Ok(JobOpts {
                retries: retries
                    .and_then(|r| r.get(i).copied())
                    .unwrap_or(defaults.retries),
                timeout,
                priority,
                queue_timeout,
                total_timeout,
                prefer: None,
                batch: 0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn jo(
        count: u32,
        retries: Option<&[u32]>,
        timeouts: Option<&[f64]>,
        priorities: Option<&[f64]>,
        defaults: JobOpts,
    ) -> std::result::Result<Vec<JobOpts>, String> {
        let a = JobArrays {
            retries,
            timeouts,
            priorities,
            waits: None,
        };
        job_opts(count, a, defaults)
    }

    #[test]
    fn per_job_queue_and_total_timeouts_replace_the_pools_and_are_bounded() {
        let defaults = JobOpts {
            queue_timeout: Some(Duration::from_millis(50)),
            total_timeout: Some(Duration::from_millis(70)),
            ..JobOpts::default()
        };
        let a = JobArrays {
            waits: Some(&[10.0, 0.0, f64::INFINITY, 20.0]),
            ..JobArrays::default()
        };
        let o = job_opts(3, a, defaults).unwrap();
        let w: Vec<_> = o
            .iter()
            .map(|o| (o.queue_timeout, o.total_timeout))
            .collect();
        let ms = |n| Some(Duration::from_millis(n));
        // 0 and Infinity: none for this job; past the array: the pool's.
        assert_eq!(w, [(ms(10), None), (None, ms(20)), (ms(50), ms(70))]);
        let a = JobArrays {
            waits: Some(&[1.0, 1e22]),
            ..JobArrays::default()
        };
        assert_eq!(
            job_opts(1, a, defaults).unwrap_err(),
            "total timeouts[0] must be at most 4294967295 ms (about 49.7 days), or Infinity"
        );
    }

    #[test]
    fn a_panic_in_an_entry_point_is_caught_with_a_clear_message() {
        let e = guarded("NativePool.take", || -> u8 { panic!("boom {}", 1) }).unwrap_err();
        assert_eq!(e, "comrade: internal error in NativePool.take: boom 1");
        let e = guarded("ncpu", || std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(
            e,
            "comrade: internal error in ncpu: a panic without a message"
        );
        assert_eq!(guarded("x", || 5), Ok(5));
    }

    #[test]
    fn per_job_timeouts_over_the_bound_are_refused_and_none_is_zero_or_infinite() {
        // Issue 15, point 1: a per-job 1e22 ms used to panic converting to a Duration.
        let e = jo(2, None, Some(&[5.0, 1e22]), None, JobOpts::default()).unwrap_err();
        assert_eq!(
            e,
            "timeouts[1] must be at most 4294967295 ms (about 49.7 days), or Infinity"
        );
        let o = jo(
            4,
            Some(&[1, 2]),
            Some(&[0.0, f64::INFINITY, -1.0, 1500.0]),
            None,
            JobOpts::default(),
        )
        .unwrap();
        let t: Vec<_> = o.iter().map(|o| o.timeout).collect();
        assert_eq!(
            t,
            [
                None,
                None,
                None,
                Some(std::time::Duration::from_millis(1500))
            ]
        );
        assert_eq!(
            o.iter().map(|o| o.retries).collect::<Vec<_>>(),
            [1, 2, 0, 0]
        );
        assert!(jo(3, None, None, None, JobOpts::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn per_job_priorities_must_be_finite_and_missing_arrays_give_the_pools_defaults() {
        let defaults = JobOpts {
            retries: 2,
            timeout: Some(std::time::Duration::from_millis(900)),
            priority: 7.0,
            ..JobOpts::default()
        };
        let o = jo(3, None, None, Some(&[2.5, -1.0]), defaults).unwrap();
        assert_eq!(
            o.iter().map(|o| o.priority).collect::<Vec<_>>(),
            [2.5, -1.0, 7.0]
        );
        assert!(o
            .iter()
            .all(|o| o.retries == 2 && o.timeout == defaults.timeout));
        let o = jo(2, Some(&[1, 1]), Some(&[0.0, 5.0]), None, defaults).unwrap();
        assert_eq!(o.iter().map(|o| o.priority).collect::<Vec<_>>(), [7.0, 7.0]);
        assert_eq!(o[0].timeout, None);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = jo(2, None, None, Some(&[0.0, bad]), defaults).unwrap_err();
            assert_eq!(e, "priorities[1] must be a finite number");
        }
    }
}
