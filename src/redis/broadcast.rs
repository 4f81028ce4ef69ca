//! The binding of broadcasts across hosts (crates/redis-queue's broadcast module): a
//! producer's `broadcast` and `broadcastCheck`, a host's `beat`, `leaveHosts` and
//! `broadcastAck`, and a host's inbox reader. Only converts, as the rest of `redis.rs`.

use comrade_redis_queue::{BroadcastState, Inbox, Tls};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Arc;

use super::{promise, redis, RedisHost, RedisProducer, RemoteTls};

/// Where a broadcast stands: `done` once every host it went to answered or is no longer
/// live; `answers`: each answering host's JSON result.
#[napi(object)]
pub struct RemoteBroadcastState {
    pub done: bool,
    pub answers: Vec<String>,
}

#[napi]
impl RedisProducer {
    /// Sends broadcast `id` (`message`, JSON) to every live host; resolves with their number.
    #[napi]
    pub fn broadcast<'e>(
        &self,
        env: &'e Env,
        id: u32,
        message: String,
    ) -> Result<PromiseRaw<'e, u32>> {
        let p = self.inner.clone();
        promise(env, "RedisProducer.broadcast", async move {
            redis(p.broadcast(id, &message)).await
        })
    }

    /// Whether broadcast `id` is over, and then the hosts' answers.
    #[napi]
    pub fn broadcast_check<'e>(
        &self,
        env: &'e Env,
        id: u32,
    ) -> Result<PromiseRaw<'e, RemoteBroadcastState>> {
        let p = self.inner.clone();
        promise(env, "RedisProducer.broadcastCheck", async move {
            Ok(match redis(p.broadcast_check(id)).await? {
                BroadcastState::Waiting => RemoteBroadcastState {
                    done: false,
                    answers: Vec::new(),
                },
                BroadcastState::Done(answers) => RemoteBroadcastState {
                    done: true,
                    answers,
                },
            })
        })
    }
}

#[napi]
impl RedisHost {
    /// This host is live for another lease.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn beat<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let h = self.inner.clone();
        promise(env, "RedisHost.beat", async move { redis(h.beat()).await })
    }

    /// Leaves the live hosts (a host that stops on purpose).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn leave_hosts<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, ()>> {
        let h = self.inner.clone();
        promise(env, "RedisHost.leaveHosts", async move {
            redis(h.leave_hosts()).await
        })
    }

    /// Answers broadcast `id` of `producer` with `result` (JSON); false when it no longer
    /// waits for this host.
    #[napi]
    pub fn broadcast_ack<'e>(
        &self,
        env: &'e Env,
        producer: String,
        id: u32,
        result: String,
    ) -> Result<PromiseRaw<'e, bool>> {
        let h = self.inner.clone();
        promise(env, "RedisHost.broadcastAck", async move {
            redis(h.broadcast_ack(&producer, id, &result)).await
        })
    }
}

/// A broadcast read from a host's inbox.
#[napi(object)]
pub struct RemoteIncoming {
    pub producer: String,
    pub id: u32,
    pub message: String,
}

/// A host's inbox reader, on its own connection.
#[napi]
pub struct RedisInbox {
    inner: Arc<Inbox>,
}

/// Connects the inbox reader of host `host` of queue `queue`.
#[napi]
pub fn redis_inbox(
    env: &Env,
    url: String,
    queue: String,
    host: String,
    tls: Option<RemoteTls>,
) -> Result<PromiseRaw<'_, RedisInbox>> {
    let tls = tls.map(Tls::from);
    promise(env, "redisInbox", async move {
        let inner = redis(Inbox::connect(&url, tls.as_ref(), &queue, &host)).await?;
        Ok(RedisInbox {
            inner: Arc::new(inner),
        })
    })
}

#[napi]
impl RedisInbox {
    /// The next broadcast, waiting up to `timeoutMs`; null when none came.
    #[napi]
    pub fn next<'e>(
        &self,
        env: &'e Env,
        timeout_ms: u32,
    ) -> Result<PromiseRaw<'e, Option<RemoteIncoming>>> {
        let i = self.inner.clone();
        promise(env, "RedisInbox.next", async move {
            let m = redis(i.next(u64::from(timeout_ms))).await?;
            Ok(m.map(|m| RemoteIncoming {
                producer: m.producer,
                id: m.id,
                message: m.message,
            }))
        })
    }
}
