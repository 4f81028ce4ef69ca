//! The binding of broadcasts across hosts (crates/redis-queue's broadcast module): a
//! producer's `broadcast` and `broadcastCheck`, a host's `beat`, `leaveHosts` and
//! `broadcastAck`, and a host's inbox reader. Only converts, as the rest of `redis.rs`.

use comrade_redis_queue::{BroadcastState, Inbox, Tls};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Arc;

use super::{run, RedisHost, RedisProducer, RemoteTls};

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
    pub async fn broadcast(&self, id: u32, message: String) -> Result<u32> {
        let p = self.inner.clone();
        run("RedisProducer.broadcast", async move {
            p.broadcast(id, &message).await
        })
        .await
    }

    /// Whether broadcast `id` is over, and then the hosts' answers.
    #[napi]
    pub async fn broadcast_check(&self, id: u32) -> Result<RemoteBroadcastState> {
        let p = self.inner.clone();
        let s = run("RedisProducer.broadcastCheck", async move {
            p.broadcast_check(id).await
        })
        .await?;
        Ok(match s {
            BroadcastState::Waiting => RemoteBroadcastState {
                done: false,
                answers: Vec::new(),
            },
            BroadcastState::Done(answers) => RemoteBroadcastState {
                done: true,
                answers,
            },
        })
    }
}

#[napi]
impl RedisHost {
    /// This host is live for another lease.
    #[napi]
    pub async fn beat(&self) -> Result<()> {
        let h = self.inner.clone();
        run("RedisHost.beat", async move { h.beat().await }).await
    }

    /// Leaves the live hosts (a host that stops on purpose).
    #[napi]
    pub async fn leave_hosts(&self) -> Result<()> {
        let h = self.inner.clone();
        run("RedisHost.leaveHosts", async move { h.leave_hosts().await }).await
    }

    /// Answers broadcast `id` of `producer` with `result` (JSON); false when it no longer
    /// waits for this host.
    #[napi]
    pub async fn broadcast_ack(&self, producer: String, id: u32, result: String) -> Result<bool> {
        let h = self.inner.clone();
        run("RedisHost.broadcastAck", async move {
            h.broadcast_ack(&producer, id, &result).await
        })
        .await
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
pub async fn redis_inbox(
    url: String,
    queue: String,
    host: String,
    tls: Option<RemoteTls>,
) -> Result<RedisInbox> {
    let tls = tls.map(Tls::from);
    let inner = run("redisInbox", async move {
        Inbox::connect(&url, tls.as_ref(), &queue, &host).await
    })
    .await?;
    Ok(RedisInbox {
        inner: Arc::new(inner),
    })
}

#[napi]
impl RedisInbox {
    /// The next broadcast, waiting up to `timeoutMs`; null when none came.
    #[napi]
    pub async fn next(&self, timeout_ms: u32) -> Result<Option<RemoteIncoming>> {
        let i = self.inner.clone();
        let m = run("RedisInbox.next", async move {
            i.next(u64::from(timeout_ms)).await
        })
        .await?;
        Ok(m.map(|m| RemoteIncoming {
            producer: m.producer,
            id: m.id,
            message: m.message,
        }))
    }
}
