//! comrade's queue across machines, on Redis Streams (docs/REDIS.md has the design).
//!
//! A [`Producer`] admits jobs into one queue and reads its own results back; a [`Host`] takes
//! exactly as many jobs as it has free slots, renews the leases of those it runs, and
//! completes them. Every step that must be atomic is a Lua script (`lua/`). Every key of a
//! queue shares the hash tag `{queue}`, so a Redis Cluster keeps one queue in one slot.
//!
//! No Node dependency: the binding (`src/redis.rs`) only converts.

use std::time::Duration;

mod broadcast;
pub use broadcast::{BroadcastState, Inbox, Incoming};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script, Value};
pub use redis::{RedisError, RedisResult};
use tokio::sync::Mutex;

/// The consumer group of a queue's hosts.
pub const GROUP: &str = "hosts";
/// The longest queue name (it is part of every key).
pub const MAX_QUEUE_NAME: usize = 200;
/// Replies read per XREAD.
const READ_COUNT: usize = 1000;
/// Jobs per admission script call: a larger batch is split, so that one call never holds
/// Redis long.
const ADMIT_CHUNK: usize = 500;
/// Results per [`Host::complete_many`] script call, for the same reason.
const COMPLETE_CHUNK: usize = 500;
/// Run times kept per list (`runs`, `runs:<function>`): the recent ones stats and
/// maxExpectedWait read.
pub const RUNS_KEPT: usize = 1000;
/// The newest run times maxExpectedWait's mean covers (the local estimator's history, too).
pub const MEAN_OVER: usize = 100;

/// Runs `f`, and once more when it failed because the connection had dropped: a connection
/// manager reports the drop on the first command after it, then reconnects. Only for commands
/// that may run twice (idempotent ones, or scripts written to be).
async fn again_if_dropped<T, F, Fut>(mut f: F) -> RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = RedisResult<T>>,
{
    match f().await {
        Err(e) if e.is_connection_dropped() || e.is_io_error() => f().await,
        r => r,
    }
}

/// A queue's key names: `comrade:{name}:…`.
#[derive(Clone, Debug)]
pub struct Keys {
    pub prefix: String,
}

impl Keys {
    /// The keys of queue `name`, or why the name cannot be one: empty, longer than
    /// [`MAX_QUEUE_NAME`], or holding a brace (it would break the hash tag).
    pub fn new(name: &str) -> Result<Keys, String> {
        if name.is_empty() || name.len() > MAX_QUEUE_NAME {
            return Err(format!(
                "the queue name must be 1 to {MAX_QUEUE_NAME} bytes long"
            ));
        }
        if name.contains(['{', '}']) || name.chars().any(char::is_control) {
            return Err("the queue name must not contain braces or control characters".into());
        }
        Ok(Keys {
            prefix: format!("comrade:{{{name}}}:"),
        })
    }
    pub fn waiting(&self) -> String {
        format!("{}wait", self.prefix)
    }
    pub fn stream(&self) -> String {
        format!("{}stream", self.prefix)
    }
    pub fn dead(&self) -> String {
        format!("{}dead", self.prefix)
    }
    pub fn wake(&self) -> String {
        format!("{}wake", self.prefix)
    }
    pub fn seq(&self) -> String {
        format!("{}seq", self.prefix)
    }
    pub fn job(&self, job: &str) -> String {
        format!("{}job:{job}", self.prefix)
    }
    pub fn producer(&self, id: &str) -> String {
        format!("{}producer:{id}", self.prefix)
    }
    pub fn reply(&self, id: &str) -> String {
        format!("{}reply:{id}", self.prefix)
    }
    /// The queue's priority policy (prioritySlots), set by its producers.
    pub fn policy(&self) -> String {
        format!("{}policy", self.prefix)
    }
    /// The live hosts' slots, for the policy's caps.
    pub fn hosts(&self) -> String {
        format!("{}hosts", self.prefix)
    }
    pub fn runs(&self) -> String {
        format!("{}runs", self.prefix)
    }
    pub fn runs_of(&self, function: &str) -> String {
        format!("{}runs:{function}", self.prefix)
    }
    pub fn functions(&self) -> String {
        format!("{}fns", self.prefix)
    }
}

/// The functions the scripts that settle jobs share (`lua/shared.lua`), put before each.
macro_rules! with_shared {
    ($file:literal) => {
        concat!(include_str!("../lua/shared.lua"), include_str!($file))
    };
}

struct Scripts {
    admit: Script,
    cancel: Script,
    progress: Script,
    take: Script,
    complete: Script,
    renew: Script,
    heartbeat: Script,
    policy: Script,
    complete_many: Script,
    gauge: Script,
    cycle: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            admit: Script::new(with_shared!("../lua/admit.lua")),
            cancel: Script::new(with_shared!("../lua/cancel.lua")),
            progress: Script::new(with_shared!("../lua/progress.lua")),
            take: Script::new(with_shared!("../lua/take.lua")),
            complete: Script::new(with_shared!("../lua/complete.lua")),
            renew: Script::new(include_str!("../lua/renew.lua")),
            heartbeat: Script::new(include_str!("../lua/heartbeat.lua")),
            policy: Script::new(include_str!("../lua/policy.lua")),
            complete_many: Script::new(with_shared!("../lua/complete_many.lua")),
            gauge: Script::new(include_str!("../lua/gauge.lua")),
            // complete_many then take in one call: each script's text as a function of its
            // own KEYS and ARGV, called by cycle.lua.
            cycle: Script::new(concat!(
                include_str!("../lua/shared.lua"),
                "local function complete_part(KEYS, ARGV)\n",
                include_str!("../lua/complete_many.lua"),
                "\nend\nlocal function take_part(KEYS, ARGV)\n",
                include_str!("../lua/take.lua"),
                "\nend\n",
                include_str!("../lua/cycle.lua"),
            )),
        }
    }
}

/// TLS material, PEM, for a `rediss://` URL: the CA that signed the server's certificate
/// (none: the system's roots), and a client certificate with its key when the server asks
/// for one.
#[derive(Clone, Default)]
pub struct Tls {
    pub ca: Option<Vec<u8>>,
    pub cert: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
}

fn invalid(what: &str) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "tls",
        what.to_owned(),
    ))
}

/// A client for `url`, with `tls` for a `rediss://` one.
fn client(url: &str, tls: Option<&Tls>) -> RedisResult<redis::Client> {
    let tls = tls.filter(|t| t.ca.is_some() || t.cert.is_some() || t.key.is_some());
    if url.starts_with("rediss://") {
        // rustls needs its crypto provider chosen once per process (a second call is a no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();
    } else if tls.is_some() {
        return Err(invalid("TLS options need a rediss:// URL"));
    }
    let Some(t) = tls else {
        return redis::Client::open(url);
    };
    let client_tls = match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.clone(),
        }),
        (None, None) => None,
        _ => return Err(invalid("a client certificate and its key go together")),
    };
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls,
            root_cert: t.ca.clone(),
        },
    )
}

/// Two connections to one Redis, each reconnecting by itself: one for commands, one for the
/// blocking reads (BLPOP, XREAD BLOCK), which would hold up every command queued behind them.
struct Link {
    conn: ConnectionManager,
    block: ConnectionManager,
}

impl Link {
    async fn open(url: &str, tls: Option<&Tls>) -> RedisResult<Link> {
        let client = client(url, tls)?;
        let retry = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = client
            .get_connection_manager_with_config(
                retry
                    .clone()
                    .set_response_timeout(Some(Duration::from_secs(30))),
            )
            .await?;
        // A blocking read waits as long as it was told to: no response timeout.
        let block = client
            .get_connection_manager_with_config(retry.set_response_timeout(None))
            .await?;
        Ok(Link { conn, block })
    }
}

/// A job to admit.
#[derive(Clone, Debug, Default)]
pub struct NewJob {
    /// The producer's own id for it: results name it.
    pub local: String,
    /// `r`: the function (or the default one) with the arguments as its one argument; `x`:
    /// the arguments (a JSON array) as its positional arguments.
    pub kind: String,
    /// The function's name; empty for the default function.
    pub name: String,
    /// JSON text.
    pub args: String,
    pub retries: u32,
    /// Milliseconds, 0 for none.
    pub timeout_ms: u64,
    pub priority: f64,
    /// The producer wants the job's progress reports.
    pub progress: bool,
    /// Longest wait in the queue (ms, 0: none): past it, in Redis's clock, no host takes it.
    pub queue_timeout_ms: u64,
    /// Longest from admission to settlement (ms, 0: none): past it no host takes it.
    pub total_timeout_ms: u64,
    /// Coalescing key (empty: none): a job of the same function and key waiting or running
    /// anywhere is joined instead of run again.
    pub key: String,
}

/// What an admission did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Admitted {
    pub admitted: usize,
    /// The local ids of the jobs refused: the queue held `max_backlog` jobs waiting.
    pub refused: Vec<String>,
    /// Jobs waiting in the queue after this admission.
    pub waiting: u64,
    /// The local ids of the jobs that joined a shared job (same function and key).
    pub joined: Vec<String>,
    /// The queue's policy when it differs from the producer's: nothing was admitted.
    pub conflict: Option<String>,
}

/// A result read by a producer.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The job's local id.
    pub local: String,
    /// `o`: a result (JSON); `e`: the function's error (JSON); `f`: the job failed on the
    /// hosts' side (JSON `{ host, deliveries, retries }`): its delivery count passed its
    /// retries; `p`: a progress report (JSON), before the job's result.
    pub status: String,
    pub value: String,
}

/// What maxExpectedWait's estimate reads ([`Producer::gauge`]), at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gauge {
    /// Jobs waiting in the queue.
    pub waiting: u64,
    /// Hosts alive (heard from within their lease).
    pub hosts: u32,
    /// Their slots, summed.
    pub slots: u64,
    /// The mean of the newest [`MEAN_OVER`] run times, in ms (0 when none).
    pub mean_ms: f64,
    /// Run times kept for the whole queue (at most [`RUNS_KEPT`]).
    pub samples: u64,
}

/// A queue's recent run times, in ms, newest first: the whole queue's, and each function's
/// (`""`: the default function).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunTimes {
    pub all: Vec<f64>,
    pub functions: Vec<(String, Vec<f64>)>,
}

fn random_id() -> String {
    // Unique enough per process and start: time, pid, a counter, the address of a stack slot.
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

/// One producer of a queue: it admits jobs, and reads the results of its own jobs only.
pub struct Producer {
    keys: Keys,
    id: String,
    token: String,
    ttl_ms: u64,
    link: Link,
    scripts: Scripts,
    /// The id of the last reply read.
    last: Mutex<String>,
}

impl Producer {
    /// Connects and registers: the producer lives while its liveness key does, refreshed by
    /// [`Producer::heartbeat`] and expiring `ttl_ms` after the last one.
    pub async fn connect(url: &str, queue: &str, ttl_ms: u64) -> RedisResult<Producer> {
        Self::connect_tls(url, None, queue, ttl_ms).await
    }

    /// [`Producer::connect`] with TLS material for a `rediss://` URL.
    pub async fn connect_tls(
        url: &str,
        tls: Option<&Tls>,
        queue: &str,
        ttl_ms: u64,
    ) -> RedisResult<Producer> {
        let keys = Keys::new(queue).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "queue", e))
        })?;
        let link = Link::open(url, tls).await?;
        let p = Producer {
            keys,
            id: random_id(),
            token: random_id(),
            ttl_ms: ttl_ms.max(1),
            link,
            scripts: Scripts::new(),
            last: Mutex::new("0-0".into()),
        };
        p.register().await?;
        Ok(p)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    async fn register(&self) -> RedisResult<()> {
        again_if_dropped(|| {
            let mut c = self.link.conn.clone();
            async move {
                redis::cmd("SET")
                    .arg(self.keys.producer(&self.id))
                    .arg(&self.token)
                    .arg("PX")
                    .arg(self.ttl_ms)
                    .query_async::<()>(&mut c)
                    .await
            }
        })
        .await
    }

    /// Admits `jobs`, in order. `max_backlog`: the most jobs the whole queue may hold waiting
    /// (for a host to take them); a job beyond it is refused. Returns how many were admitted
    /// (those whose local id was not admitted before) and the local ids refused.
    pub async fn admit(&self, jobs: &[NewJob], max_backlog: Option<u64>) -> RedisResult<Admitted> {
        self.admit_with(jobs, max_backlog, "").await
    }

    /// [`Producer::admit`] under a priority `policy` (`<sacred 0|1>;<from>:<slots>;…`, empty
    /// for none), which becomes the queue's; a queue that holds another refuses the whole
    /// batch ([`Admitted::conflict`]).
    pub async fn admit_with(
        &self,
        jobs: &[NewJob],
        max_backlog: Option<u64>,
        policy: &str,
    ) -> RedisResult<Admitted> {
        self.admit_inner(jobs, max_backlog, policy, false).await
    }

    /// [`Producer::admit`] of a batch sent before, whose answer was lost: the jobs its first
    /// sending admitted are skipped (each job's record is checked, which a first sending does
    /// not pay for: a local id is in one batch only). A dropped connection does this itself.
    pub async fn admit_again(
        &self,
        jobs: &[NewJob],
        max_backlog: Option<u64>,
    ) -> RedisResult<Admitted> {
        self.admit_inner(jobs, max_backlog, "", true).await
    }

    async fn admit_inner(
        &self,
        jobs: &[NewJob],
        max_backlog: Option<u64>,
        policy: &str,
        resent: bool,
    ) -> RedisResult<Admitted> {
        let mut out = Admitted::default();
        let limit = max_backlog.map_or(-1, |m| m.min(i64::MAX as u64) as i64);
        for chunk in jobs.chunks(ADMIT_CHUNK) {
            let invocation = |again: bool| {
                let mut inv = self.scripts.admit.prepare_invoke();
                inv.key(self.keys.waiting())
                    .key(self.keys.wake())
                    .key(self.keys.seq())
                    .arg(&self.keys.prefix)
                    .arg(&self.id)
                    .arg(limit)
                    .arg(policy)
                    .arg(self.ttl_ms)
                    .arg(if again { "1" } else { "0" });
                for j in chunk {
                    inv.arg(&j.local)
                        .arg(&j.kind)
                        .arg(&j.name)
                        .arg(&j.args)
                        .arg(j.retries)
                        .arg(j.timeout_ms)
                        .arg(score(j.priority))
                        .arg(if j.progress { "1" } else { "0" })
                        .arg(j.queue_timeout_ms)
                        .arg(j.total_timeout_ms)
                        .arg(&j.key);
                }
                inv
            };
            // Sent again, the script skips the jobs the first sending admitted (it checks each
            // record then, not on the first sending): sending it again is safe.
            type Answer = (usize, Vec<String>, u64, Vec<String>, String);
            let mut sent = resent;
            let (admitted, refused, waiting, joined, conflict): Answer = again_if_dropped(|| {
                let mut c = self.link.conn.clone();
                let inv = invocation(sent);
                sent = true;
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
            out.admitted += admitted;
            out.refused.extend(refused);
            out.joined.extend(joined);
            out.waiting = waiting;
            if !conflict.is_empty() {
                // The queue's policy differs: this chunk and the rest are refused.
                out.conflict = Some(conflict);
                break;
            }
        }
        Ok(out)
    }

    /// Cancels jobs by their local ids: those still waiting leave the queue; those on a host
    /// are flagged, and the host aborts them when it next renews their lease (a caller of a
    /// shared job leaves it; the job is cancelled once every caller has). Returns
    /// (withdrawn, flagged).
    pub async fn cancel(&self, locals: &[String]) -> RedisResult<(u32, u32)> {
        let (w, f, _) = self.withdraw(locals, false).await?;
        Ok((w, f))
    }

    /// [`Producer::cancel`] (`queue_only` false), or, with `queue_only`, withdraws only the
    /// jobs still waiting (their queue timeout passed). Returns (withdrawn, flagged, a status
    /// per local id: `w` withdrawn, `r:<host>` delivered to that host, `j` left a shared job,
    /// empty when no such job is known: settled already).
    pub async fn withdraw(
        &self,
        locals: &[String],
        queue_only: bool,
    ) -> RedisResult<(u32, u32, Vec<String>)> {
        if locals.is_empty() {
            return Ok((0, 0, Vec::new()));
        }
        let mut inv = self.scripts.cancel.prepare_invoke();
        inv.key(self.keys.waiting())
            .arg(&self.keys.prefix)
            .arg(&self.id)
            .arg(if queue_only { "q" } else { "c" });
        for l in locals {
            inv.arg(l);
        }
        again_if_dropped(|| {
            let mut c = self.link.conn.clone();
            let inv = &inv;
            async move { inv.invoke_async(&mut c).await }
        })
        .await
    }

    /// Keeps the queue's priority `policy` from expiring; `false` when the queue holds another
    /// one (set by another producer).
    pub async fn keep_policy(&self, policy: &str) -> RedisResult<bool> {
        let kept: i64 = again_if_dropped(|| {
            let mut c = self.link.conn.clone();
            async move {
                self.scripts
                    .policy
                    .key(self.keys.policy())
                    .arg(policy)
                    .arg(self.ttl_ms)
                    .invoke_async(&mut c)
                    .await
            }
        })
        .await?;
        Ok(kept == 1)
    }

    /// Refreshes the liveness key and the reply stream. `false`: the key was gone (Redis lost
    /// its state, or this producer was silent past its ttl), so its jobs are lost; it is
    /// registered again.
    pub async fn heartbeat(&self) -> RedisResult<bool> {
        let alive: i64 = again_if_dropped(|| {
            let mut c = self.link.conn.clone();
            async move {
                self.scripts
                    .heartbeat
                    .key(self.keys.producer(&self.id))
                    .key(self.keys.reply(&self.id))
                    .arg(&self.token)
                    .arg(self.ttl_ms)
                    .invoke_async(&mut c)
                    .await
            }
        })
        .await?;
        if alive == 1 {
            return Ok(true);
        }
        self.register().await?;
        Ok(false)
    }

    /// The next results, waiting up to `block_ms` for one; each is deleted once read.
    pub async fn read(&self, block_ms: u64) -> RedisResult<Vec<Reply>> {
        let mut last = self.last.lock().await;
        let from = last.clone();
        let v: Value = again_if_dropped(|| {
            let mut b = self.link.block.clone();
            let from = &from;
            async move {
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(READ_COUNT)
                    .arg("BLOCK")
                    .arg(block_ms)
                    .arg("STREAMS")
                    .arg(self.keys.reply(&self.id))
                    .arg(from)
                    .query_async(&mut b)
                    .await
            }
        })
        .await?;
        let entries = stream_entries(v);
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(entries.len());
        let mut ids = Vec::with_capacity(entries.len());
        for (id, fields) in entries {
            replies_of(fields, &mut out);
            ids.push(id);
        }
        *last = ids.last().cloned().unwrap_or_default();
        // The replies are this call's result whatever happens to their deletion: one that
        // fails leaves them in the stream, past `last` (never read twice), until the producer
        // closes or its stream expires.
        let _ = again_if_dropped(|| {
            let mut c = self.link.conn.clone();
            let ids = &ids;
            async move { c.xdel::<_, _, i64>(self.keys.reply(&self.id), ids).await }
        })
        .await;
        Ok(out)
    }

    /// The queue's jobs waiting, live hosts, their slots and recent mean run time, read at once.
    pub async fn gauge(&self) -> RedisResult<Gauge> {
        let (waiting, hosts, slots, mean, samples): (u64, u32, u64, String, u64) =
            again_if_dropped(|| {
                let mut c = self.link.conn.clone();
                async move {
                    self.scripts
                        .gauge
                        .key(self.keys.waiting())
                        .key(self.keys.hosts())
                        .key(self.keys.runs())
                        .arg(MEAN_OVER)
                        .invoke_async(&mut c)
                        .await
                }
            })
            .await?;
        Ok(Gauge {
            waiting,
            hosts,
            slots,
            mean_ms: mean.parse().unwrap_or(0.0),
            samples,
        })
    }

    /// The queue's recent run times (at most [`RUNS_KEPT`] per list), in one round trip after
    /// the functions' names.
    pub async fn run_times(&self) -> RedisResult<RunTimes> {
        let mut c = self.link.conn.clone();
        let mut names: Vec<String> = c.smembers(self.keys.functions()).await?;
        names.sort();
        let mut pipe = redis::pipe();
        pipe.lrange(self.keys.runs(), 0, -1);
        for n in &names {
            pipe.lrange(self.keys.runs_of(n), 0, -1);
        }
        let lists: Vec<Vec<String>> = pipe.query_async(&mut c).await?;
        let parse =
            |l: &Vec<String>| -> Vec<f64> { l.iter().filter_map(|v| v.parse().ok()).collect() };
        let mut it = lists.iter();
        let all = it.next().map(parse).unwrap_or_default();
        let functions = names
            .into_iter()
            .zip(it)
            .map(|(n, l)| (n, parse(l)))
            .filter(|(_, l)| !l.is_empty())
            .collect();
        Ok(RunTimes { all, functions })
    }

    /// Leaves: the liveness key and the reply stream are deleted (jobs still waiting are
    /// dropped by the hosts that find them).
    pub async fn close(&self) -> RedisResult<()> {
        let mut c = self.link.conn.clone();
        let _: i64 = c
            .del(&[self.keys.producer(&self.id), self.keys.reply(&self.id)])
            .await?;
        Ok(())
    }
}

/// The score of a job of `priority` in the waiting set: the lowest is taken first.
fn score(priority: f64) -> String {
    let s = -priority;
    if s == 0.0 {
        "0".into()
    } else {
        format!("{s:e}")
    }
}

/// A job delivered to a host.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub entry: String,
    pub job: String,
    pub kind: String,
    pub name: String,
    pub args: String,
    pub retries: u32,
    pub timeout_ms: u64,
    /// 1 on the first delivery; more once its lease ran out on other hosts.
    pub deliveries: u32,
    /// Its producer wants its progress reports ([`Host::progress`]).
    pub progress: bool,
}

/// A result for [`Host::complete_many`].
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub entry: String,
    pub job: String,
    /// `o` result, `e` error.
    pub status: String,
    /// JSON.
    pub value: String,
    /// How long the function ran, in ms; `None` when it did not run (refused before it).
    pub run_ms: Option<f64>,
}

/// What one [`Host::take`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Take {
    pub jobs: Vec<Delivery>,
    /// Jobs failed for their producer: delivered more than their retries allow.
    pub failed: u32,
    /// Jobs dropped: their producer is gone.
    pub dropped: u32,
    /// Malformed entries moved to the dead-letter stream.
    pub dead: u32,
}

/// What one [`Host::renew`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Renewal {
    /// Entries another host took: this one was silent past its lease.
    pub lost: Vec<String>,
    /// Entries whose producer cancelled the job: abort it, then complete it.
    pub cancelled: Vec<String>,
}

/// A worker host of a queue: a consumer of its group.
pub struct Host {
    keys: Keys,
    consumer: String,
    lease_ms: u64,
    link: Link,
    scripts: Scripts,
    /// The slots it registered last ([`Host::register`]): each beat registers them again.
    slots: std::sync::atomic::AtomicU32,
    /// Set once it leaves the live hosts ([`Host::leave_hosts`]): its beats then keep only its
    /// slots registered, while it finishes its jobs.
    pub(crate) leaving: std::sync::atomic::AtomicBool,
    /// When a take last looked for entries idle past their lease (XAUTOCLAIM).
    reclaimed: std::sync::Mutex<Option<std::time::Instant>>,
    /// What complete_many needs of each job this host took, from its take: entry id -> its
    /// record's settling fields. It spares the script a read of each record; an entry missing
    /// here (taken by another Host value, or forgotten) has its record read instead.
    taken: std::sync::Mutex<std::collections::HashMap<String, Settling>>,
}

/// The fields of a job's record that settling it needs, fixed once it is delivered: its
/// function (for its run time), the priority range it is counted in (`q`, empty: none) and
/// its coalescing mapping (`K`, empty: not shared).
#[derive(Clone, Debug, Default)]
struct Settling {
    name: String,
    range: String,
    shared: String,
}

/// Entries remembered in [`Host::taken`] at most: a host holds its slots' worth, and entries
/// whose completion never came (Redis unreachable past a lease) must not pile up.
const TAKEN_KEPT: usize = 100_000;

impl Host {
    pub async fn connect(
        url: &str,
        queue: &str,
        consumer: &str,
        lease_ms: u64,
    ) -> RedisResult<Host> {
        Self::connect_tls(url, None, queue, consumer, lease_ms).await
    }

    /// [`Host::connect`] with TLS material for a `rediss://` URL.
    pub async fn connect_tls(
        url: &str,
        tls: Option<&Tls>,
        queue: &str,
        consumer: &str,
        lease_ms: u64,
    ) -> RedisResult<Host> {
        let keys = Keys::new(queue).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "queue", e))
        })?;
        let link = Link::open(url, tls).await?;
        let mut c = link.conn.clone();
        // A cheap round trip, so that a wrong password or an unreachable server is told now.
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(Host {
            keys,
            consumer: consumer.to_owned(),
            lease_ms: lease_ms.max(1),
            link,
            scripts: Scripts::new(),
            slots: std::sync::atomic::AtomicU32::new(0),
            leaving: std::sync::atomic::AtomicBool::new(false),
            reclaimed: std::sync::Mutex::new(None),
            taken: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Takes up to `n` jobs (n > 0): entries whose lease ran out first, then waiting ones.
    /// Entries idle past their lease are looked for at most once per `lease / 4` (the first
    /// take included): a lease runs out `lease` after its last renewal, so a dead host's
    /// entries wait at most a quarter lease more, and the scan of the group's pending entries
    /// is not paid on every take.
    pub async fn take(&self, n: u32) -> RedisResult<Take> {
        let reclaim = self.reclaim_due();
        let mut c = self.link.conn.clone();
        let mut inv = self.scripts.take.prepare_invoke();
        self.take_args(&mut inv, n, reclaim);
        let (flat, failed, dropped, dead): (Vec<String>, u32, u32, u32) =
            inv.invoke_async(&mut c).await?;
        Ok(self.took(reclaim, flat, failed, dropped, dead))
    }

    /// The keys and arguments of a take (take.lua, and the second part of cycle.lua).
    fn take_args(&self, inv: &mut redis::ScriptInvocation<'_>, n: u32, reclaim: bool) {
        inv.key(self.keys.waiting())
            .key(self.keys.stream())
            .key(self.keys.dead())
            .key(self.keys.wake())
            .arg(&self.keys.prefix)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(n.max(1))
            .arg(self.lease_ms)
            .arg(if reclaim { "1" } else { "0" });
    }

    /// Whether a take now looks for entries idle past their lease (see [`Host::take`]).
    fn reclaim_due(&self) -> bool {
        let last = self.reclaimed.lock().unwrap_or_else(|e| e.into_inner());
        last.is_none_or(|t| t.elapsed() >= Duration::from_millis(self.lease_ms / 4))
    }

    /// What take.lua answered, as a [`Take`]; each delivery's settling fields are kept for its
    /// completion.
    fn took(&self, reclaim: bool, flat: Vec<String>, failed: u32, dropped: u32, dead: u32) -> Take {
        if reclaim {
            *self.reclaimed.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(std::time::Instant::now());
        }
        {
            let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
            if taken.len() > TAKEN_KEPT {
                taken.clear();
            }
            for d in flat.chunks_exact(11) {
                taken.insert(
                    d[0].clone(),
                    Settling {
                        name: d[3].clone(),
                        range: d[9].clone(),
                        shared: d[10].clone(),
                    },
                );
            }
        }
        let jobs = flat
            .chunks_exact(11)
            .map(|d| Delivery {
                entry: d[0].clone(),
                job: d[1].clone(),
                kind: d[2].clone(),
                name: d[3].clone(),
                args: d[4].clone(),
                retries: d[5].parse().unwrap_or(0),
                timeout_ms: d[6].parse().unwrap_or(0),
                deliveries: d[7].parse().unwrap_or(1),
                progress: d[8] == "1",
            })
            .collect();
        Take {
            jobs,
            failed,
            dropped,
            dead,
        }
    }

    /// A host's wave in one script call and one round trip: completes `done` (as
    /// [`Host::complete_many`]), then takes up to `n` jobs (as [`Host::take`]; `n` counts the
    /// slots `done` frees). The take's own failure is the second value's: the results were
    /// written all the same. More results than one call carries: complete_many, then take.
    pub async fn cycle(
        &self,
        n: u32,
        done: &[Completion],
    ) -> RedisResult<(Vec<bool>, RedisResult<Take>)> {
        if done.len() > COMPLETE_CHUNK {
            let accepted = self.complete_many(done).await?;
            return Ok((accepted, self.take(n).await));
        }
        let reclaim = self.reclaim_due();
        let mut c = self.link.conn.clone();
        let mut inv = self.scripts.cycle.prepare_invoke();
        self.take_args(&mut inv, n, reclaim);
        inv.arg(RUNS_KEPT);
        self.completion_args(&mut inv, done);
        type Answer = (Vec<i64>, (Vec<String>, u32, u32, u32), String);
        let (accepted, (flat, failed, dropped, dead), err): Answer =
            inv.invoke_async(&mut c).await?;
        self.forget(done);
        let accepted = accepted.into_iter().map(|t| t == 1).collect();
        if !err.is_empty() {
            return Ok((
                accepted,
                Err(redis::RedisError::from((
                    redis::ErrorKind::Extension,
                    "take",
                    err,
                ))),
            ));
        }
        Ok((
            accepted,
            Ok(self.took(reclaim, flat, failed, dropped, dead)),
        ))
    }

    /// Waits up to `timeout_ms` for a producer's wake-up: `true` when one came.
    pub async fn wait(&self, timeout_ms: u64) -> RedisResult<bool> {
        let secs = (timeout_ms as f64 / 1000.0).max(0.001);
        let v: Option<(String, String)> = again_if_dropped(|| {
            let mut b = self.link.block.clone();
            async move {
                redis::cmd("BLPOP")
                    .arg(self.keys.wake())
                    .arg(secs)
                    .query_async(&mut b)
                    .await
            }
        })
        .await?;
        Ok(v.is_some())
    }

    /// Renews the leases of the running jobs, `(entry, job)` pairs. Returns the entries
    /// another host took already, and those whose producer cancelled them.
    pub async fn renew(&self, running: &[(String, String)]) -> RedisResult<Renewal> {
        if running.is_empty() {
            return Ok(Renewal::default());
        }
        let mut inv = self.scripts.renew.prepare_invoke();
        inv.key(self.keys.stream())
            .arg(&self.keys.prefix)
            .arg(GROUP)
            .arg(&self.consumer);
        for (entry, job) in running {
            inv.arg(entry).arg(job);
        }
        let (lost, cancelled) = again_if_dropped(|| {
            let mut c = self.link.conn.clone();
            let inv = &inv;
            async move { inv.invoke_async(&mut c).await }
        })
        .await?;
        Ok(Renewal { lost, cancelled })
    }

    /// Completes a delivered job with `status` (`o` result, `e` error) and its JSON `value`.
    /// `false`: dropped, because this host no longer owns the entry (its lease ran out and
    /// another host took it, or the job was completed already).
    pub async fn complete(
        &self,
        entry: &str,
        job: &str,
        status: &str,
        value: &str,
    ) -> RedisResult<bool> {
        let took = self
            .as_owner(&self.scripts.complete, entry, job, &[status, value])
            .await?;
        self.taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(entry);
        Ok(took)
    }

    /// Completes many delivered jobs in one round trip per [`COMPLETE_CHUNK`] (as
    /// [`Host::complete`] each), and records their run times in the queue's recent run times.
    /// One `bool` per completion: `false` when it was dropped.
    pub async fn complete_many(&self, done: &[Completion]) -> RedisResult<Vec<bool>> {
        let mut out = Vec::with_capacity(done.len());
        for chunk in done.chunks(COMPLETE_CHUNK) {
            let mut c = self.link.conn.clone();
            let mut inv = self.scripts.complete_many.prepare_invoke();
            inv.key(self.keys.stream())
                .arg(&self.keys.prefix)
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(RUNS_KEPT);
            self.completion_args(&mut inv, chunk);
            let took: Vec<i64> = inv.invoke_async(&mut c).await?;
            // Settled or dropped: either way this host is done with those entries.
            self.forget(chunk);
            out.extend(took.into_iter().map(|t| t == 1));
        }
        Ok(out)
    }

    /// complete_many.lua's nine arguments per result, with the settling fields its take kept.
    fn completion_args(&self, inv: &mut redis::ScriptInvocation<'_>, done: &[Completion]) {
        let taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        for d in done {
            let known = taken.get(&d.entry);
            inv.arg(&d.entry)
                .arg(&d.job)
                .arg(&d.status)
                .arg(&d.value)
                .arg(
                    d.run_ms
                        .map_or(String::new(), |ms| format!("{:.3}", ms.max(0.0))),
                )
                .arg(if known.is_some() { "1" } else { "0" });
            let k = known.cloned().unwrap_or_default();
            inv.arg(k.name).arg(k.range).arg(k.shared);
        }
    }

    /// Forgets the settling fields of completed entries (settled or dropped: either way this
    /// host is done with them).
    fn forget(&self, done: &[Completion]) {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        for d in done {
            taken.remove(&d.entry);
        }
    }

    /// Sends a progress report (JSON `value`) of a running job to its producer. `false`:
    /// dropped (this host no longer owns the entry, or the producer is gone).
    pub async fn progress(&self, entry: &str, job: &str, value: &str) -> RedisResult<bool> {
        self.as_owner(&self.scripts.progress, entry, job, &[value])
            .await
    }

    /// Runs a script that acts for the entry's owner (this consumer) on `job`, with `rest` as
    /// its last arguments; `true` when the script took it (it answers 1).
    async fn as_owner(
        &self,
        script: &redis::Script,
        entry: &str,
        job: &str,
        rest: &[&str],
    ) -> RedisResult<bool> {
        let mut c = self.link.conn.clone();
        let mut call = script.key(self.keys.stream());
        call.arg(&self.keys.prefix)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(entry)
            .arg(job);
        for a in rest {
            call.arg(*a);
        }
        let took: i64 = call.invoke_async(&mut c).await?;
        Ok(took == 1)
    }

    /// Registers this host's `slots` (0: unregisters) and beats ([`Host::beat`]): its slots
    /// count for prioritySlots' caps and maxExpectedWait until its lease runs out, and each beat
    /// registers them again.
    pub async fn register(&self, slots: u32) -> RedisResult<()> {
        self.slots
            .store(slots, std::sync::atomic::Ordering::Relaxed);
        self.beat().await
    }

    /// Leaves the group (once it holds no entry: its pending ones would be lost with it).
    pub async fn leave(&self) -> RedisResult<()> {
        let mut c = self.link.conn.clone();
        let r: RedisResult<i64> = redis::cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(self.keys.stream())
            .arg(GROUP)
            .arg(&self.consumer)
            .query_async(&mut c)
            .await;
        match r {
            Ok(_) => Ok(()),
            // No group (nothing was ever queued, or Redis lost its state): nothing to leave.
            Err(e) if e.code() == Some("NOGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A queue's counts, from any connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueCounts {
    /// Jobs admitted and not taken yet.
    pub waiting: u64,
    /// Entries delivered to a host and not completed.
    pub running: u64,
    /// Entries in the dead-letter stream.
    pub dead: u64,
}

/// Reads a queue's counts.
pub async fn counts(url: &str, queue: &str) -> RedisResult<QueueCounts> {
    counts_tls(url, None, queue).await
}

/// [`counts`] with TLS material for a `rediss://` URL.
pub async fn counts_tls(url: &str, tls: Option<&Tls>, queue: &str) -> RedisResult<QueueCounts> {
    let keys = Keys::new(queue).map_err(|e| {
        redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "queue", e))
    })?;
    let client = client(url, tls)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    let waiting: u64 = c.zcard(keys.waiting()).await?;
    let dead: u64 = c.xlen(keys.dead()).await?;
    let pending: RedisResult<Value> = redis::cmd("XPENDING")
        .arg(keys.stream())
        .arg(GROUP)
        .query_async(&mut c)
        .await;
    let running = match pending {
        Ok(Value::Array(v)) => match v.first() {
            Some(Value::Int(n)) => *n as u64,
            _ => 0,
        },
        _ => 0,
    };
    Ok(QueueCounts {
        waiting,
        running,
        dead,
    })
}

/// The entries of an XREAD reply for one stream: (id, [(field, value)]).
type Entries = Vec<(String, Vec<(String, String)>)>;
fn stream_entries(v: Value) -> Entries {
    // RESP2: [[stream, [[id, [f, v, ...]], ...]]]; nil when nothing came.
    let streams = match v {
        Value::Array(s) => s,
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for s in streams {
        let Value::Array(mut pair) = s else { continue };
        if pair.len() != 2 {
            continue;
        }
        let Value::Array(entries) = pair.pop().unwrap_or(Value::Nil) else {
            continue;
        };
        for e in entries {
            let Value::Array(mut idf) = e else { continue };
            if idf.len() != 2 {
                continue;
            }
            let f = idf.pop().unwrap_or(Value::Nil);
            let id = text(idf.pop().unwrap_or(Value::Nil));
            let Some(id) = id else { continue };
            let mut fields = Vec::new();
            if let Value::Array(flat) = f {
                let mut it = flat.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    if let (Some(k), Some(v)) = (text(k), text(v)) {
                        fields.push((k, v));
                    }
                }
            }
            out.push((id, fields));
        }
    }
    out
}

/// The replies of one reply-stream entry: a script writes a call's replies to one producer as
/// one entry, each reply its `l`, `s` and `v` fields in that order. Anything else written into
/// the reply stream is skipped.
fn replies_of(fields: Vec<(String, String)>, out: &mut Vec<Reply>) {
    let mut local: Option<String> = None;
    let mut status: Option<String> = None;
    for (k, v) in fields {
        match k.as_str() {
            "l" => {
                local = Some(v);
                status = None;
            }
            "s" => status = Some(v),
            "v" => {
                if let (Some(local), Some(status)) = (local.take(), status.take()) {
                    out.push(Reply {
                        local,
                        status,
                        value: v,
                    });
                }
            }
            _ => {}
        }
    }
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names() {
        assert_eq!(Keys::new("jobs").unwrap().stream(), "comrade:{jobs}:stream");
        assert!(Keys::new("").is_err());
        assert!(Keys::new("a{b").is_err());
        assert!(Keys::new(&"x".repeat(MAX_QUEUE_NAME + 1)).is_err());
    }

    #[test]
    fn reply_entries_carry_many_replies() {
        let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut out = Vec::new();
        replies_of(
            f(&[
                ("l", "1"),
                ("s", "o"),
                ("v", "10"),
                ("x", "?"),
                ("l", "2"),
                ("s", "e"),
                ("v", "{}"),
                // Incomplete: skipped.
                ("l", "3"),
                ("v", "30"),
            ]),
            &mut out,
        );
        let got: Vec<_> = out
            .iter()
            .map(|r| (r.local.as_str(), r.status.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(got, vec![("1", "o", "10"), ("2", "e", "{}")]);
    }

    #[test]
    fn scores_order_priorities() {
        assert_eq!(score(0.0), "0");
        assert_eq!(score(-0.0), "0");
        let hi: f64 = score(5.0).parse().unwrap();
        let lo: f64 = score(-2.5).parse().unwrap();
        assert!(hi < lo);
        assert_eq!(score(1e300).parse::<f64>().unwrap(), -1e300);
    }
}
