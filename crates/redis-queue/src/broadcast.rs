//! Broadcasts across hosts (`pool.broadcast(message)` on a producer; docs/REDIS.md): the live
//! hosts' set with their leases, each host's inbox, and a broadcast's record of the hosts it
//! waits for. Kept apart from the job scripts: its own keys and scripts.
//!
//! - A host says it is live with [`Host::beat`] (at start, then every `lease / 4`), and leaves
//!   the set with [`Host::leave_hosts`].
//! - [`Producer::broadcast`] pushes the message into the inbox of every live host and records
//!   them as pending; a host reads its inbox on a connection of its own ([`Inbox::next`]),
//!   broadcasts to its local workers, and answers with [`Host::broadcast_ack`], which nudges
//!   the producer through its reply stream (status `b`).
//! - [`Producer::broadcast_check`] says whether every host it was sent to answered or is no
//!   longer live (its lease ran out), and then hands over the answers.

use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

use crate::{again_if_dropped, client, Host, Keys, Producer, Tls};

struct Scripts {
    beat: Script,
    broadcast: Script,
    ack: Script,
    check: Script,
}

fn scripts() -> &'static Scripts {
    static S: OnceLock<Scripts> = OnceLock::new();
    S.get_or_init(|| Scripts {
        beat: Script::new(include_str!("../lua/host_beat.lua")),
        broadcast: Script::new(include_str!("../lua/broadcast.lua")),
        ack: Script::new(include_str!("../lua/broadcast_ack.lua")),
        check: Script::new(include_str!("../lua/broadcast_check.lua")),
    })
}

impl Keys {
    /// The live hosts: a sorted set, each host scored with the time its lease runs out (ms).
    pub fn live(&self) -> String {
        format!("{}live", self.prefix)
    }
    /// A host's inbox of broadcasts: a list of `<producer> <broadcast id> <message>`.
    pub fn inbox(&self, host: &str) -> String {
        format!("{}inbox:{host}", self.prefix)
    }
    /// A broadcast's record: a hash, host → its answer (`""` while it has not answered).
    pub fn broadcast(&self, producer: &str, id: u32) -> String {
        format!("{}bcast:{producer}:{id}", self.prefix)
    }
}

/// Where a broadcast stands ([`Producer::broadcast_check`]).
#[derive(Clone, Debug, PartialEq)]
pub enum BroadcastState {
    /// A live host has not answered yet.
    Waiting,
    /// Over: the answers of the hosts that answered (each a host's JSON result).
    Done(Vec<String>),
}

impl Producer {
    /// Sends broadcast `id` (`message`, JSON) to every live host; resolves with the number of
    /// hosts it went to (0: none is live, the broadcast is over).
    pub async fn broadcast(&self, id: u32, message: &str) -> RedisResult<u32> {
        let mut c = self.link.conn.clone();
        // Not sent again on a dropped connection: a second run would reset the answers.
        scripts()
            .broadcast
            .key(self.keys.live())
            .key(self.keys.broadcast(&self.id, id))
            .arg(&self.keys.prefix)
            .arg(&self.id)
            .arg(id)
            .arg(message)
            .arg(self.ttl_ms)
            .invoke_async(&mut c)
            .await
    }

    /// Whether broadcast `id` is over (see [`BroadcastState`]).
    pub async fn broadcast_check(&self, id: u32) -> RedisResult<BroadcastState> {
        let v: Vec<String> = again_if_dropped(|| {
            let mut c = self.link.conn.clone();
            async move {
                scripts()
                    .check
                    .key(self.keys.broadcast(&self.id, id))
                    .key(self.keys.live())
                    .arg(self.ttl_ms)
                    .invoke_async(&mut c)
                    .await
            }
        })
        .await?;
        Ok(match v.split_first() {
            Some((done, answers)) if done == "1" => BroadcastState::Done(answers.to_vec()),
            _ => BroadcastState::Waiting,
        })
    }
}

impl Host {
    /// This host's one registration per beat (at start and every `lease / 4`): it is live for
    /// another lease (broadcasts wait for it until then), and its slots ([`Host::register`])
    /// count until then. Once it left the live hosts ([`Host::leave_hosts`]) only its slots
    /// are kept registered, while it finishes its jobs.
    pub async fn beat(&self) -> RedisResult<()> {
        let slots = self.slots.load(std::sync::atomic::Ordering::Relaxed);
        let live = !self.leaving.load(std::sync::atomic::Ordering::Relaxed);
        again_if_dropped(|| {
            let mut c = self.link.conn.clone();
            async move {
                let _: i64 = scripts()
                    .beat
                    .key(self.keys.live())
                    .key(self.keys.hosts())
                    .arg(&self.consumer)
                    .arg(self.lease_ms)
                    .arg(slots)
                    .arg(if live { "1" } else { "0" })
                    .invoke_async(&mut c)
                    .await?;
                Ok(())
            }
        })
        .await
    }

    /// Leaves the live hosts (it stops on purpose): broadcasts stop waiting for it, and its
    /// beats from now on keep only its slots registered.
    pub async fn leave_hosts(&self) -> RedisResult<()> {
        self.leaving
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut c = self.link.conn.clone();
        let _: () = redis::pipe()
            .zrem(self.keys.live(), &self.consumer)
            .ignore()
            .del(self.keys.inbox(&self.consumer))
            .ignore()
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// Answers broadcast `id` of `producer` with `result` (JSON); `false`: the broadcast no
    /// longer waits for this host (it is over, or this host was not live when it started).
    pub async fn broadcast_ack(&self, producer: &str, id: u32, result: &str) -> RedisResult<bool> {
        let took: i64 = again_if_dropped(|| {
            let mut c = self.link.conn.clone();
            async move {
                scripts()
                    .ack
                    .key(self.keys.broadcast(producer, id))
                    .arg(&self.keys.prefix)
                    .arg(producer)
                    .arg(id)
                    .arg(&self.consumer)
                    .arg(result)
                    .invoke_async(&mut c)
                    .await
            }
        })
        .await?;
        Ok(took == 1)
    }
}

/// A broadcast read from a host's inbox.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    pub producer: String,
    pub id: u32,
    /// JSON text.
    pub message: String,
}

/// A host's inbox reader, on a connection of its own (its blocking read would hold up the
/// host's other blocking reads).
pub struct Inbox {
    keys: Keys,
    host: String,
    conn: ConnectionManager,
}

impl Inbox {
    /// Connects the inbox reader of host `host` of queue `queue`.
    pub async fn connect(
        url: &str,
        tls: Option<&Tls>,
        queue: &str,
        host: &str,
    ) -> RedisResult<Inbox> {
        let keys = Keys::new(queue).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "queue", e))
        })?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1))
            .set_response_timeout(None);
        let conn = client(url, tls)?
            .get_connection_manager_with_config(cfg)
            .await?;
        Ok(Inbox {
            keys,
            host: host.to_owned(),
            conn,
        })
    }

    /// The next broadcast, waiting up to `timeout_ms` for one (`None`: none came, or the
    /// entry was not one: it is skipped).
    pub async fn next(&self, timeout_ms: u64) -> RedisResult<Option<Incoming>> {
        let secs = (timeout_ms as f64 / 1000.0).max(0.001);
        let v: Option<(String, String)> = again_if_dropped(|| {
            let mut b = self.conn.clone();
            async move {
                redis::cmd("BLPOP")
                    .arg(self.keys.inbox(&self.host))
                    .arg(secs)
                    .query_async(&mut b)
                    .await
            }
        })
        .await?;
        Ok(v.and_then(|(_, entry)| parse_incoming(&entry)))
    }
}

/// `<producer> <id> <message>`.
fn parse_incoming(entry: &str) -> Option<Incoming> {
    let (producer, rest) = entry.split_once(' ')?;
    let (id, message) = rest.split_once(' ')?;
    Some(Incoming {
        producer: producer.to_owned(),
        id: id.parse().ok()?,
        message: message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_entries_parse_and_keys_share_the_hash_tag() {
        assert_eq!(
            parse_incoming(r#"abc 7 {"a":"x y"}"#),
            Some(Incoming {
                producer: "abc".into(),
                id: 7,
                message: r#"{"a":"x y"}"#.into()
            })
        );
        assert_eq!(parse_incoming("abc 7"), None);
        assert_eq!(parse_incoming("abc x 1"), None);
        let k = Keys::new("q").unwrap();
        assert_eq!(k.live(), "comrade:{q}:live");
        assert_eq!(k.inbox("h:1"), "comrade:{q}:inbox:h:1");
        assert_eq!(k.broadcast("p", 3), "comrade:{q}:bcast:p:3");
    }
}
