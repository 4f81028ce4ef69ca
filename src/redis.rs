//! The binding of the Redis queue (crates/redis-queue): a producer and a worker host, each an
//! object whose methods return Promises. Only converts; lib/remote/ is the JavaScript side.
//! Every call runs as a task of this module's tokio runtime, so that a panic becomes a rejected
//! Promise (ERR_INTERNAL), never an abort. The runtime (and its threads) is made by the first
//! call, not when the addon loads: a process that never uses Redis has none (a local pool's
//! throughput was measurably lower with two idle runtime threads and their wake-ups around).

// In the test build the napi macros register nothing: the entry points look unused there.
#![cfg_attr(test, allow(dead_code))]

use std::future::Future;
use std::sync::{Arc, OnceLock};

mod broadcast;

use comrade_redis_queue::{Completion, Host, NewJob, Producer, RedisResult, Take, Tls};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::runtime::Runtime;

/// The runtime of every Redis call, made on first use. One worker thread: a call's task, the
/// task that settles its Promise and the connection's driver then wake each other on one
/// thread, not across two (measured on a worker host in an echo burst: with the default of
/// one worker per core, a third of its CPU was in that runtime's threads, most of it task
/// switches).
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("comrade-redis")
            .build()
            .expect("comrade: cannot start the Redis runtime")
    })
}

/// A Redis error (connection, authentication, a script's error) as the rejection of its call,
/// with its message (lib/remote/ makes it a PoolError with code ERR_REDIS, the URL redacted).
fn redis_error(e: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, e.to_string())
}

/// Runs `fut` as its own task, and returns the Promise it settles: its value, its error, or a
/// rejection with a message starting "comrade: internal error" (ERR_INTERNAL) if it panicked.
fn promise<'e, T, F>(env: &'e Env, what: &'static str, fut: F) -> Result<PromiseRaw<'e, T>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    type Resolve<T> = Box<dyn FnOnce(Env) -> Result<T> + Send>;
    let (deferred, promise) = env.create_deferred::<T, Resolve<T>>()?;
    let rt = runtime();
    let task = rt.spawn(fut);
    rt.spawn(async move {
        match task.await {
            Ok(Ok(v)) => deferred.resolve(Box::new(move |_| Ok(v))),
            Ok(Err(e)) => deferred.reject(e),
            Err(e) => deferred.reject(Error::new(
                Status::GenericFailure,
                format!("comrade: internal error in {what}: {e}"),
            )),
        }
    });
    Ok(PromiseRaw::new(env.raw(), promise.raw()))
}

/// A crate call's result as the call's.
async fn redis<T>(fut: impl Future<Output = RedisResult<T>>) -> Result<T> {
    fut.await.map_err(redis_error)
}

/// What an admission did: jobs admitted, the local ids refused (the backlog was full), the
/// jobs waiting in the queue after it, the local ids that joined a shared job, and the
/// queue's priority policy when it differs from the producer's (nothing was admitted then).
#[napi(object)]
pub struct RemoteAdmitted {
    pub admitted: u32,
    pub refused: Vec<String>,
    pub waiting: f64,
    pub joined: Vec<String>,
    pub conflict: Option<String>,
}

/// What a cancel did: jobs withdrawn from the queue, jobs flagged for their host to abort.
#[napi(object)]
pub struct RemoteCancel {
    pub withdrawn: u32,
    pub flagged: u32,
}

/// What maxExpectedWait's estimate reads: jobs waiting, live hosts, their slots, the mean of
/// the newest run times (ms) and how many run times are kept.
#[napi(object)]
pub struct RemoteGauge {
    pub waiting: f64,
    pub hosts: u32,
    pub slots: f64,
    pub mean_ms: f64,
    pub samples: f64,
}

/// A queue's recent run times (ms, newest first): `all`, and `functions[i]` those of
/// `names[i]` ('' is the default function).
#[napi(object)]
pub struct RemoteRunTimes {
    pub all: Vec<f64>,
    pub names: Vec<String>,
    pub functions: Vec<Vec<f64>>,
}

/// TLS material, PEM text, for a rediss:// URL (lib/remote/common.js checks it).
#[napi(object)]
pub struct RemoteTls {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

impl From<RemoteTls> for Tls {
    fn from(t: RemoteTls) -> Tls {
        Tls {
            ca: t.ca.map(String::into_bytes),
            cert: t.cert.map(String::into_bytes),
            key: t.key.map(String::into_bytes),
        }
    }
}

#[napi]
pub struct RedisProducer {
    inner: Arc<Producer>,
}

/// Connects a producer to queue `queue`; its liveness key expires `ttlMs` after its last
/// heartbeat.
#[napi]
pub fn redis_producer(
    env: &Env,
    url: String,
    queue: String,
    ttl_ms: u32,
    tls: Option<RemoteTls>,
) -> Result<PromiseRaw<'_, RedisProducer>> {
    let tls = tls.map(Tls::from);
    promise(env, "redisProducer", async move {
        let inner = redis(Producer::connect_tls(
            &url,
            tls.as_ref(),
            &queue,
            u64::from(ttl_ms),
        ))
        .await?;
        Ok(RedisProducer {
            inner: Arc::new(inner),
        })
    })
}

#[napi]
impl RedisProducer {
    /// This producer's id (its jobs are `<id>:<local>`).
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.inner.id().to_owned()
    }

    /// Admits the jobs, in order, while the queue holds fewer than `maxBacklog` jobs waiting
    /// (none: no limit), under the priority `policy` (none: the producer has none); resolves
    /// with how many were admitted, the local ids refused and those that joined a shared job.
    /// The jobs are flat (lib/remote/producer.js builds them; no object per job to read):
    /// `strings` holds five per job: its local id, its kind ('r' run: one argument; 'x'
    /// exec/call: an array of arguments), its function's name ('' for the default), its
    /// arguments as JSON and its coalescing key ('': not shared); `numbers` six: its retries,
    /// its timeout, queue timeout and total timeout (ms, 0: none), its priority, and 1 when
    /// its producer wants its progress reports.
    #[napi]
    pub fn admit<'e>(
        &self,
        env: &'e Env,
        strings: Vec<String>,
        numbers: Vec<f64>,
        max_backlog: Option<f64>,
        policy: Option<String>,
    ) -> Result<PromiseRaw<'e, RemoteAdmitted>> {
        let p = self.inner.clone();
        let n = strings.len() / 5;
        if strings.len() != n * 5 || numbers.len() != n * 6 {
            return Err(Error::new(
                Status::InvalidArg,
                "admit: five strings and six numbers per job".to_owned(),
            ));
        }
        let ms = |v: f64| v.max(0.0).ceil() as u64;
        let mut strings = strings.into_iter();
        let mut next = || strings.next().unwrap_or_default();
        let jobs: Vec<NewJob> = numbers
            .chunks_exact(6)
            .map(|x| NewJob {
                local: next(),
                kind: next(),
                name: next(),
                args: next(),
                key: next(),
                retries: x[0].max(0.0) as u32,
                timeout_ms: x[1].max(0.0) as u64,
                queue_timeout_ms: ms(x[2]),
                total_timeout_ms: ms(x[3]),
                priority: x[4],
                progress: x[5] == 1.0,
            })
            .collect();
        let limit = max_backlog.map(|m| m.max(0.0) as u64);
        let policy = policy.unwrap_or_default();
        promise(env, "RedisProducer.admit", async move {
            let a = redis(p.admit_with(&jobs, limit, &policy)).await?;
            Ok(RemoteAdmitted {
                admitted: a.admitted as u32,
                refused: a.refused,
                waiting: a.waiting as f64,
                joined: a.joined,
                conflict: a.conflict,
            })
        })
    }

    /// Withdraws jobs by their local ids: with `queueOnly`, only those still waiting (their
    /// queue timeout passed); otherwise as cancel(). Resolves with a status per id: 'w'
    /// withdrawn (it never ran), 'r:<host>' delivered to that host (flagged for it to abort,
    /// unless `queueOnly`), 'j' left a shared job, '' unknown (settled already).
    #[napi]
    pub fn withdraw<'e>(
        &self,
        env: &'e Env,
        locals: Vec<String>,
        queue_only: bool,
    ) -> Result<PromiseRaw<'e, Vec<String>>> {
        let p = self.inner.clone();
        promise(env, "RedisProducer.withdraw", async move {
            let (_, _, statuses) = redis(p.withdraw(&locals, queue_only)).await?;
            Ok(statuses)
        })
    }

    /// Keeps the queue's priority policy from expiring; false when the queue holds another.
    #[napi]
    pub fn keep_policy<'e>(&self, env: &'e Env, policy: String) -> Result<PromiseRaw<'e, bool>> {
        let p = self.inner.clone();
        promise(env, "RedisProducer.keepPolicy", async move {
            redis(p.keep_policy(&policy)).await
        })
    }

    /// Cancels jobs by their local ids: those waiting leave the queue, those on a host are
    /// flagged for it to abort. Resolves with the counts.
    #[napi]
    pub fn cancel<'e>(
        &self,
        env: &'e Env,
        locals: Vec<String>,
    ) -> Result<PromiseRaw<'e, RemoteCancel>> {
        let p = self.inner.clone();
        promise(env, "RedisProducer.cancel", async move {
            let (withdrawn, flagged) = redis(p.cancel(&locals)).await?;
            Ok(RemoteCancel { withdrawn, flagged })
        })
    }

    /// Refreshes the liveness key: false when Redis had lost it (the pending jobs are lost).
    #[napi]
    pub fn heartbeat<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, bool>> {
        let p = self.inner.clone();
        promise(env, "RedisProducer.heartbeat", async move {
            redis(p.heartbeat()).await
        })
    }

    /// The next results, waiting up to `blockMs` for one: three strings per reply, flat (no
    /// object per reply to make): its local id, its status and its value. Status 'o' (value:
    /// the result's JSON), 'e' (the error's JSON), 'f' (the job failed on the hosts' side:
    /// `{ host, deliveries, retries }`), and the others lib/remote/producer.js reads.
    #[napi]
    pub fn read<'e>(&self, env: &'e Env, block_ms: u32) -> Result<PromiseRaw<'e, Vec<String>>> {
        let p = self.inner.clone();
        promise(env, "RedisProducer.read", async move {
            let replies = redis(p.read(u64::from(block_ms))).await?;
            let mut flat = Vec::with_capacity(replies.len() * 3);
            for r in replies {
                flat.push(r.local);
                flat.push(r.status);
                flat.push(r.value);
            }
            Ok(flat)
        })
    }

    /// The queue's jobs waiting, live hosts and slots, and recent mean run time, read at once.
    #[napi]
    pub fn gauge<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, RemoteGauge>> {
        let p = self.inner.clone();
        promise(env, "RedisProducer.gauge", async move {
            let g = redis(p.gauge()).await?;
            Ok(RemoteGauge {
                waiting: g.waiting as f64,
                hosts: g.hosts,
                slots: g.slots as f64,
                mean_ms: g.mean_ms,
                samples: g.samples as f64,
            })
        })
    }

    /// The queue's recent run times, the whole queue's and each function's.
    #[napi]
    pub fn run_times<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, RemoteRunTimes>> {
        let p = self.inner.clone();
        promise(env, "RedisProducer.runTimes", async move {
            let r = redis(p.run_times()).await?;
            let (names, functions) = r.functions.into_iter().unzip();
            Ok(RemoteRunTimes {
                all: r.all,
                names,
                functions,
            })
        })
    }

    /// Deletes the liveness key and the reply stream.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let p = self.inner.clone();
        promise(
            env,
            "RedisProducer.close",
            async move { redis(p.close()).await },
        )
    }
}

/// What one take did: the jobs, and the counts of jobs failed past their retries, dropped
/// (their producer is gone) and entries moved to the dead-letter stream. The jobs are flat,
/// no object per job to make: `strings` holds five per job (entry, job, kind, function name,
/// arguments as JSON), `numbers` four (retries, timeout in ms, delivery count, 1 when its
/// producer wants its progress reports).
#[napi(object)]
pub struct RemoteTake {
    pub strings: Vec<String>,
    pub numbers: Vec<f64>,
    pub failed: u32,
    pub dropped: u32,
    pub dead: u32,
}

fn remote_take(t: Take) -> RemoteTake {
    let mut strings = Vec::with_capacity(t.jobs.len() * 5);
    let mut numbers = Vec::with_capacity(t.jobs.len() * 4);
    for d in t.jobs {
        strings.extend([d.entry, d.job, d.kind, d.name, d.args]);
        numbers.extend([
            f64::from(d.retries),
            d.timeout_ms as f64,
            f64::from(d.deliveries),
            f64::from(u8::from(d.progress)),
        ]);
    }
    RemoteTake {
        strings,
        numbers,
        failed: t.failed,
        dropped: t.dropped,
        dead: t.dead,
    }
}

/// What a host's wave did (`RedisHost.cycle`): one boolean per result written (false:
/// dropped), and the jobs taken, or why the take failed (the results were written).
#[napi(object)]
pub struct RemoteCycle {
    pub accepted: Vec<bool>,
    pub take: Option<RemoteTake>,
    pub take_error: Option<String>,
}

/// What a renewal found: entries another host took, entries their producer cancelled.
#[napi(object)]
pub struct RemoteRenewal {
    pub lost: Vec<String>,
    pub cancelled: Vec<String>,
}

#[napi]
pub struct RedisHost {
    inner: Arc<Host>,
}

/// Connects a worker host (consumer `consumer`) to queue `queue`, with leases of `leaseMs`.
#[napi]
pub fn redis_host(
    env: &Env,
    url: String,
    queue: String,
    consumer: String,
    lease_ms: u32,
    tls: Option<RemoteTls>,
) -> Result<PromiseRaw<'_, RedisHost>> {
    let tls = tls.map(Tls::from);
    promise(env, "redisHost", async move {
        let inner = redis(Host::connect_tls(
            &url,
            tls.as_ref(),
            &queue,
            &consumer,
            u64::from(lease_ms),
        ))
        .await?;
        Ok(RedisHost {
            inner: Arc::new(inner),
        })
    })
}

#[napi]
impl RedisHost {
    /// Takes up to `n` jobs (its free slots).
    #[napi]
    pub fn take<'e>(&self, env: &'e Env, n: u32) -> Result<PromiseRaw<'e, RemoteTake>> {
        let h = self.inner.clone();
        promise(env, "RedisHost.take", async move {
            Ok(remote_take(redis(h.take(n)).await?))
        })
    }

    /// Waits up to `timeoutMs` for a wake-up; true when one came.
    #[napi]
    pub fn wait<'e>(&self, env: &'e Env, timeout_ms: u32) -> Result<PromiseRaw<'e, bool>> {
        let h = self.inner.clone();
        promise(env, "RedisHost.wait", async move {
            redis(h.wait(u64::from(timeout_ms))).await
        })
    }

    /// Renews the leases of running jobs (`entries[i]` holds job `jobs[i]`); resolves with
    /// the entries another host took and those whose producer cancelled them.
    #[napi]
    pub fn renew<'e>(
        &self,
        env: &'e Env,
        entries: Vec<String>,
        jobs: Vec<String>,
    ) -> Result<PromiseRaw<'e, RemoteRenewal>> {
        let h = self.inner.clone();
        let running: Vec<(String, String)> = entries.into_iter().zip(jobs).collect();
        promise(env, "RedisHost.renew", async move {
            let r = redis(h.renew(&running)).await?;
            Ok(RemoteRenewal {
                lost: r.lost,
                cancelled: r.cancelled,
            })
        })
    }

    /// Completes a job: status 'o' (value: the result's JSON) or 'e' (the error's JSON).
    /// Resolves false when the result was dropped (this host no longer owns the entry).
    #[napi]
    pub fn complete<'e>(
        &self,
        env: &'e Env,
        entry: String,
        job: String,
        status: String,
        value: String,
    ) -> Result<PromiseRaw<'e, bool>> {
        let h = self.inner.clone();
        promise(env, "RedisHost.complete", async move {
            redis(h.complete(&entry, &job, &status, &value)).await
        })
    }

    /// Completes many jobs in one round trip: `entries[i]` holds job `jobs[i]`, with status
    /// `statuses[i]` ('o' or 'e'), `values[i]` (JSON) and `runMs[i]` (ms the function ran; < 0:
    /// it did not run). Resolves with one boolean per job: false when dropped.
    #[napi]
    pub fn complete_many<'e>(
        &self,
        env: &'e Env,
        entries: Vec<String>,
        jobs: Vec<String>,
        statuses: Vec<String>,
        values: Vec<String>,
        run_ms: Vec<f64>,
    ) -> Result<PromiseRaw<'e, Vec<bool>>> {
        let h = self.inner.clone();
        let done = completions("completeMany", entries, jobs, statuses, values, run_ms)?;
        promise(env, "RedisHost.completeMany", async move {
            redis(h.complete_many(&done)).await
        })
    }

    /// A wave in one round trip: completes the jobs as `completeMany` does, then takes up to
    /// `n` jobs as `take` does (`n` counts the slots those results free). Resolves with the
    /// results' booleans and the jobs taken, or `takeError` when only the take failed.
    #[napi]
    #[allow(clippy::too_many_arguments)] // the binding's positional arguments
    pub fn cycle<'e>(
        &self,
        env: &'e Env,
        n: u32,
        entries: Vec<String>,
        jobs: Vec<String>,
        statuses: Vec<String>,
        values: Vec<String>,
        run_ms: Vec<f64>,
    ) -> Result<PromiseRaw<'e, RemoteCycle>> {
        let h = self.inner.clone();
        let done = completions("cycle", entries, jobs, statuses, values, run_ms)?;
        promise(env, "RedisHost.cycle", async move {
            let (accepted, took) = redis(h.cycle(n, &done)).await?;
            Ok(match took {
                Ok(t) => RemoteCycle {
                    accepted,
                    take: Some(remote_take(t)),
                    take_error: None,
                },
                Err(e) => RemoteCycle {
                    accepted,
                    take: None,
                    take_error: Some(e.to_string()),
                },
            })
        })
    }

    /// Sends a running job's progress report (JSON) to its producer; resolves false when it
    /// was dropped (the entry is no longer this host's, or the producer is gone).
    #[napi]
    pub fn progress<'e>(
        &self,
        env: &'e Env,
        entry: String,
        job: String,
        value: String,
    ) -> Result<PromiseRaw<'e, bool>> {
        let h = self.inner.clone();
        promise(env, "RedisHost.progress", async move {
            redis(h.progress(&entry, &job, &value)).await
        })
    }

    /// Registers this host's slots for a lease (0: unregisters), for prioritySlots' caps.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn register<'e>(&self, env: &'e Env, slots: u32) -> Result<PromiseRaw<'e, ()>> {
        let h = self.inner.clone();
        promise(env, "RedisHost.register", async move {
            redis(h.register(slots)).await
        })
    }

    /// Leaves the consumer group (once no entry is held).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn leave<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let h = self.inner.clone();
        promise(
            env,
            "RedisHost.leave",
            async move { redis(h.leave()).await },
        )
    }
}

/// A queue's counts: jobs waiting, entries running (delivered, not completed), dead letters.
#[napi(object)]
pub struct RemoteCounts {
    pub waiting: f64,
    pub running: f64,
    pub dead: f64,
}

#[napi]
pub fn redis_queue_counts(
    env: &Env,
    url: String,
    queue: String,
    tls: Option<RemoteTls>,
) -> Result<PromiseRaw<'_, RemoteCounts>> {
    let tls = tls.map(Tls::from);
    promise(env, "redisQueueCounts", async move {
        let c = redis(comrade_redis_queue::counts_tls(&url, tls.as_ref(), &queue)).await?;
        Ok(RemoteCounts {
            waiting: c.waiting as f64,
            running: c.running as f64,
            dead: c.dead as f64,
        })
    })
}

/// The completions of `completeMany` and `cycle`: item i of each array is job i's.
fn completions(
    what: &str,
    entries: Vec<String>,
    jobs: Vec<String>,
    statuses: Vec<String>,
    values: Vec<String>,
    run_ms: Vec<f64>,
) -> Result<Vec<Completion>> {
    let n = entries.len();
    if jobs.len() != n || statuses.len() != n || values.len() != n || run_ms.len() != n {
        return Err(Error::new(
            Status::InvalidArg,
            format!("{what}: the arrays must have one item per job"),
        ));
    }
    Ok(entries
        .into_iter()
        .zip(jobs)
        .zip(statuses)
        .zip(values)
        .zip(run_ms)
        .map(|((((entry, job), status), value), ms)| Completion {
            entry,
            job,
            status,
            value,
            run_ms: (ms >= 0.0 && ms.is_finite()).then_some(ms),
        })
        .collect())
}
