//! The binding of the Redis queue (crates/redis-queue): a producer and a worker host, each an
//! object whose methods return Promises. Only converts; lib/remote/ is the JavaScript side.
//! Every call runs as a task of napi's tokio runtime, so that a panic becomes a rejected
//! Promise (ERR_INTERNAL), never an abort.

// In the test build the napi macros register nothing: the async entry points look unused there.
#![cfg_attr(test, allow(dead_code))]

use std::future::Future;
use std::sync::Arc;

use comrade_redis_queue::{Completion, Host, NewJob, Producer, RedisResult, Tls};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Runs `fut` as its own task. A Redis error (connection, authentication, a script's error)
/// rejects with its message (lib/remote/ makes it a PoolError with code ERR_REDIS, the URL
/// redacted); a panic rejects with a message starting "comrade: internal error" (ERR_INTERNAL).
async fn run<T, F>(what: &'static str, fut: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = RedisResult<T>> + Send + 'static,
{
    match tokio::spawn(fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::new(Status::GenericFailure, e.to_string())),
        Err(e) => Err(Error::new(
            Status::GenericFailure,
            format!("comrade: internal error in {what}: {e}"),
        )),
    }
}

/// A job to admit (lib/remote/producer.js builds them).
#[napi(object)]
pub struct RemoteJob {
    pub local: String,
    /// 'r' (run: one argument) or 'x' (exec/call: an array of arguments).
    pub kind: String,
    /// The function's name; '' for the default function.
    pub name: String,
    /// The arguments as JSON.
    pub args: String,
    pub retries: u32,
    /// Milliseconds; 0 for none.
    pub timeout: f64,
    pub priority: f64,
    /// The producer wants its progress reports.
    pub progress: bool,
}

/// A result for a producer: status 'o' (value: the result's JSON), 'e' (the error's JSON) or
/// 'f' (the job failed on the hosts' side: `{ host, deliveries, retries }`).
#[napi(object)]
pub struct RemoteReply {
    pub local: String,
    pub status: String,
    pub value: String,
}

/// What an admission did: jobs admitted, the local ids refused (the backlog was full), and
/// the jobs waiting in the queue after it.
#[napi(object)]
pub struct RemoteAdmitted {
    pub admitted: u32,
    pub refused: Vec<String>,
    pub waiting: f64,
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
pub async fn redis_producer(
    url: String,
    queue: String,
    ttl_ms: u32,
    tls: Option<RemoteTls>,
) -> Result<RedisProducer> {
    let tls = tls.map(Tls::from);
    let inner = run("redisProducer", async move {
        Producer::connect_tls(&url, tls.as_ref(), &queue, u64::from(ttl_ms)).await
    })
    .await?;
    Ok(RedisProducer {
        inner: Arc::new(inner),
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
    /// (none: no limit); resolves with how many were admitted and the local ids refused.
    #[napi]
    pub async fn admit(
        &self,
        jobs: Vec<RemoteJob>,
        max_backlog: Option<f64>,
    ) -> Result<RemoteAdmitted> {
        let p = self.inner.clone();
        let jobs: Vec<NewJob> = jobs
            .into_iter()
            .map(|j| NewJob {
                local: j.local,
                kind: j.kind,
                name: j.name,
                args: j.args,
                retries: j.retries,
                timeout_ms: j.timeout.max(0.0) as u64,
                priority: j.priority,
                progress: j.progress,
            })
            .collect();
        let limit = max_backlog.map(|m| m.max(0.0) as u64);
        let a = run(
            "RedisProducer.admit",
            async move { p.admit(&jobs, limit).await },
        )
        .await?;
        Ok(RemoteAdmitted {
            admitted: a.admitted as u32,
            refused: a.refused,
            waiting: a.waiting as f64,
        })
    }

    /// Cancels jobs by their local ids: those waiting leave the queue, those on a host are
    /// flagged for it to abort. Resolves with the counts.
    #[napi]
    pub async fn cancel(&self, locals: Vec<String>) -> Result<RemoteCancel> {
        let p = self.inner.clone();
        let (withdrawn, flagged) = run(
            "RedisProducer.cancel",
            async move { p.cancel(&locals).await },
        )
        .await?;
        Ok(RemoteCancel { withdrawn, flagged })
    }

    /// Refreshes the liveness key: false when Redis had lost it (the pending jobs are lost).
    #[napi]
    pub async fn heartbeat(&self) -> Result<bool> {
        let p = self.inner.clone();
        run(
            "RedisProducer.heartbeat",
            async move { p.heartbeat().await },
        )
        .await
    }

    /// The next results, waiting up to `blockMs` for one.
    #[napi]
    pub async fn read(&self, block_ms: u32) -> Result<Vec<RemoteReply>> {
        let p = self.inner.clone();
        let replies = run("RedisProducer.read", async move {
            p.read(u64::from(block_ms)).await
        })
        .await?;
        Ok(replies
            .into_iter()
            .map(|r| RemoteReply {
                local: r.local,
                status: r.status,
                value: r.value,
            })
            .collect())
    }

    /// The queue's jobs waiting, live hosts and slots, and recent mean run time, read at once.
    #[napi]
    pub async fn gauge(&self) -> Result<RemoteGauge> {
        let p = self.inner.clone();
        let g = run("RedisProducer.gauge", async move { p.gauge().await }).await?;
        Ok(RemoteGauge {
            waiting: g.waiting as f64,
            hosts: g.hosts,
            slots: g.slots as f64,
            mean_ms: g.mean_ms,
            samples: g.samples as f64,
        })
    }

    /// The queue's recent run times, the whole queue's and each function's.
    #[napi]
    pub async fn run_times(&self) -> Result<RemoteRunTimes> {
        let p = self.inner.clone();
        let r = run("RedisProducer.runTimes", async move { p.run_times().await }).await?;
        let (names, functions) = r.functions.into_iter().unzip();
        Ok(RemoteRunTimes {
            all: r.all,
            names,
            functions,
        })
    }

    /// Deletes the liveness key and the reply stream.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        let p = self.inner.clone();
        run("RedisProducer.close", async move { p.close().await }).await
    }
}

/// A job delivered to a host.
#[napi(object)]
pub struct RemoteDelivery {
    pub entry: String,
    pub job: String,
    pub kind: String,
    pub name: String,
    pub args: String,
    pub retries: u32,
    pub timeout: f64,
    pub deliveries: u32,
    /// Its producer wants its progress reports (`progress()`).
    pub progress: bool,
}

/// What one take did: the jobs, and the counts of jobs failed past their retries, dropped
/// (their producer is gone) and entries moved to the dead-letter stream.
#[napi(object)]
pub struct RemoteTake {
    pub jobs: Vec<RemoteDelivery>,
    pub failed: u32,
    pub dropped: u32,
    pub dead: u32,
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
pub async fn redis_host(
    url: String,
    queue: String,
    consumer: String,
    lease_ms: u32,
    tls: Option<RemoteTls>,
) -> Result<RedisHost> {
    let tls = tls.map(Tls::from);
    let inner = run("redisHost", async move {
        Host::connect_tls(&url, tls.as_ref(), &queue, &consumer, u64::from(lease_ms)).await
    })
    .await?;
    Ok(RedisHost {
        inner: Arc::new(inner),
    })
}

#[napi]
impl RedisHost {
    /// Takes up to `n` jobs (its free slots).
    #[napi]
    pub async fn take(&self, n: u32) -> Result<RemoteTake> {
        let h = self.inner.clone();
        let t = run("RedisHost.take", async move { h.take(n).await }).await?;
        Ok(RemoteTake {
            jobs: t
                .jobs
                .into_iter()
                .map(|d| RemoteDelivery {
                    entry: d.entry,
                    job: d.job,
                    kind: d.kind,
                    name: d.name,
                    args: d.args,
                    retries: d.retries,
                    timeout: d.timeout_ms as f64,
                    deliveries: d.deliveries,
                    progress: d.progress,
                })
                .collect(),
            failed: t.failed,
            dropped: t.dropped,
            dead: t.dead,
        })
    }

    /// Waits up to `timeoutMs` for a wake-up; true when one came.
    #[napi]
    pub async fn wait(&self, timeout_ms: u32) -> Result<bool> {
        let h = self.inner.clone();
        run("RedisHost.wait", async move {
            h.wait(u64::from(timeout_ms)).await
        })
        .await
    }

    /// Renews the leases of running jobs (`entries[i]` holds job `jobs[i]`); resolves with
    /// the entries another host took and those whose producer cancelled them.
    #[napi]
    pub async fn renew(&self, entries: Vec<String>, jobs: Vec<String>) -> Result<RemoteRenewal> {
        let h = self.inner.clone();
        let running: Vec<(String, String)> = entries.into_iter().zip(jobs).collect();
        let r = run("RedisHost.renew", async move { h.renew(&running).await }).await?;
        Ok(RemoteRenewal {
            lost: r.lost,
            cancelled: r.cancelled,
        })
    }

    /// Completes a job: status 'o' (value: the result's JSON) or 'e' (the error's JSON).
    /// Resolves false when the result was dropped (this host no longer owns the entry).
    #[napi]
    pub async fn complete(
        &self,
        entry: String,
        job: String,
        status: String,
        value: String,
    ) -> Result<bool> {
        let h = self.inner.clone();
        run("RedisHost.complete", async move {
            h.complete(&entry, &job, &status, &value).await
        })
        .await
    }

    /// Completes many jobs in one round trip: `entries[i]` holds job `jobs[i]`, with status
    /// `statuses[i]` ('o' or 'e'), `values[i]` (JSON) and `runMs[i]` (ms the function ran; < 0:
    /// it did not run). Resolves with one boolean per job: false when dropped.
    #[napi]
    pub async fn complete_many(
        &self,
        entries: Vec<String>,
        jobs: Vec<String>,
        statuses: Vec<String>,
        values: Vec<String>,
        run_ms: Vec<f64>,
    ) -> Result<Vec<bool>> {
        let h = self.inner.clone();
        let n = entries.len();
        if jobs.len() != n || statuses.len() != n || values.len() != n || run_ms.len() != n {
            return Err(Error::new(
                Status::InvalidArg,
                "completeMany: the arrays must have one item per job".to_owned(),
            ));
        }
        let done: Vec<Completion> = entries
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
            .collect();
        run("RedisHost.completeMany", async move {
            h.complete_many(&done).await
        })
        .await
    }

    /// Sends a running job's progress report (JSON) to its producer; resolves false when it
    /// was dropped (the entry is no longer this host's, or the producer is gone).
    #[napi]
    pub async fn progress(&self, entry: String, job: String, value: String) -> Result<bool> {
        let h = self.inner.clone();
        run("RedisHost.progress", async move {
            h.progress(&entry, &job, &value).await
        })
        .await
    }

    /// Says this host is alive with `slots` slots until its lease runs out (0: it leaves).
    #[napi]
    pub async fn beat(&self, slots: u32) -> Result<()> {
        let h = self.inner.clone();
        run("RedisHost.beat", async move { h.beat(slots).await }).await
    }

    /// Leaves the consumer group (once no entry is held).
    #[napi]
    pub async fn leave(&self) -> Result<()> {
        let h = self.inner.clone();
        run("RedisHost.leave", async move { h.leave().await }).await
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
pub async fn redis_queue_counts(
    url: String,
    queue: String,
    tls: Option<RemoteTls>,
) -> Result<RemoteCounts> {
    let tls = tls.map(Tls::from);
    let c = run("redisQueueCounts", async move {
        comrade_redis_queue::counts_tls(&url, tls.as_ref(), &queue).await
    })
    .await?;
    Ok(RemoteCounts {
        waiting: c.waiting as f64,
        running: c.running as f64,
        dead: c.dead as f64,
    })
}
