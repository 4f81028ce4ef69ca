//! Broadcasts across hosts against a real redis-server (Debian's `redis-server`), started on a
//! free loopback port without persistence and stopped afterwards. No mock of Redis.

use std::time::Duration;

use comrade_redis_queue::{BroadcastState, Host, Inbox, Incoming, Producer};

mod server;
use server::Server;

async fn host(url: &str, name: &str, lease_ms: u64) -> (Host, Inbox) {
    let h = Host::connect(url, "bq", name, lease_ms).await.unwrap();
    h.beat().await.unwrap();
    let i = Inbox::connect(url, None, "bq", name).await.unwrap();
    (h, i)
}

fn done(s: BroadcastState) -> Vec<String> {
    match s {
        BroadcastState::Done(mut a) => {
            a.sort();
            a
        }
        BroadcastState::Waiting => panic!("still waiting"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_waits_for_every_live_host_and_gathers_their_answers() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "bq", 30_000).await.unwrap();
    assert_eq!(p.broadcast(1, "null").await.unwrap(), 0, "no live host");
    let (a, ia) = host(&s.url, "a", 30_000).await;
    let (b, ib) = host(&s.url, "b", 30_000).await;
    assert_eq!(p.broadcast(2, r#"{"m":"x y"}"#).await.unwrap(), 2);
    // A host started later does not get it, and its answer is not taken.
    let (c, ic) = host(&s.url, "c", 30_000).await;
    for inbox in [&ia, &ib] {
        assert_eq!(
            inbox.next(5000).await.unwrap(),
            Some(Incoming {
                producer: p.id().to_owned(),
                id: 2,
                message: r#"{"m":"x y"}"#.into()
            })
        );
    }
    assert_eq!(ic.next(10).await.unwrap(), None);
    assert!(!c.broadcast_ack(p.id(), 2, "{}").await.unwrap());
    assert!(a
        .broadcast_ack(p.id(), 2, r#"{"reached":2}"#)
        .await
        .unwrap());
    assert!(
        !a.broadcast_ack(p.id(), 2, r#"{"reached":9}"#)
            .await
            .unwrap(),
        "answered once"
    );
    assert_eq!(p.broadcast_check(2).await.unwrap(), BroadcastState::Waiting);
    assert!(b
        .broadcast_ack(p.id(), 2, r#"{"reached":3}"#)
        .await
        .unwrap());
    assert_eq!(
        done(p.broadcast_check(2).await.unwrap()),
        [r#"{"reached":2}"#, r#"{"reached":3}"#]
    );
    // Each answer nudged the producer: status `b`, local id the broadcast's.
    let nudges = p.read(1000).await.unwrap();
    assert_eq!(nudges.len(), 2);
    assert!(nudges.iter().all(|r| r.status == "b" && r.local == "2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_lease_ran_out_or_that_left_is_not_waited_for() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "bq", 30_000).await.unwrap();
    let (a, _ia) = host(&s.url, "a", 30_000).await;
    // `b` says it is live for 300 ms, then never again (it died).
    let (_b, _ib) = host(&s.url, "b", 300).await;
    let (c, _ic) = host(&s.url, "c", 30_000).await;
    assert_eq!(p.broadcast(7, "1").await.unwrap(), 3);
    assert!(a
        .broadcast_ack(p.id(), 7, r#"{"reached":1}"#)
        .await
        .unwrap());
    // `c` stops on purpose: it leaves the live hosts.
    c.leave_hosts().await.unwrap();
    // Past b's lease (a lower bound, not a timing claim: the lease must have run out).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        done(p.broadcast_check(7).await.unwrap()),
        [r#"{"reached":1}"#]
    );
    // And a new broadcast goes to `a` alone.
    assert_eq!(p.broadcast(8, "2").await.unwrap(), 1);
}
