//! The queue against a real redis-server (Debian's `redis-server`), started on a free loopback
//! port without persistence and stopped afterwards. No mock of Redis.

use std::process::Command;
use std::time::Duration;

use comrade_redis_queue::{
    counts, counts_tls, Completion, Host, NewJob, Producer, Reply, Tls, GROUP,
};

mod server;
use server::Server;

fn job(local: u32, priority: f64) -> NewJob {
    NewJob {
        local: local.to_string(),
        kind: "r".into(),
        name: String::new(),
        args: local.to_string(),
        retries: 0,
        timeout_ms: 0,
        priority,
        progress: false,
        ..Default::default()
    }
}

async fn read_all(p: &Producer, n: usize) -> Vec<Reply> {
    let mut out = Vec::new();
    for _ in 0..200 {
        if out.len() >= n {
            break;
        }
        out.extend(p.read(500).await.unwrap());
    }
    out
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_goes_round_trip_and_results_reach_only_their_producer() {
    let s = Server::start(&[]).await;
    let p1 = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let p2 = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let h = Host::connect(&s.url, "q", "h1", 30_000).await.unwrap();
    assert_eq!(
        p1.admit(&[job(1, 0.0), job(2, 0.0)], None)
            .await
            .unwrap()
            .admitted,
        2
    );
    assert_eq!(p2.admit(&[job(1, 0.0)], None).await.unwrap().admitted, 1);
    let t = h.take(10).await.unwrap();
    assert_eq!(t.jobs.len(), 3);
    assert_eq!(t.jobs[0].deliveries, 1);
    for d in &t.jobs {
        let v = format!("{}0", d.args);
        assert!(h.complete(&d.entry, &d.job, "o", &v).await.unwrap());
    }
    let mut r1 = read_all(&p1, 2).await;
    r1.sort_by(|a, b| a.local.cmp(&b.local));
    assert_eq!(
        r1.iter()
            .map(|r| (r.local.as_str(), r.value.as_str()))
            .collect::<Vec<_>>(),
        vec![("1", "10"), ("2", "20")]
    );
    let r2 = read_all(&p2, 1).await;
    assert_eq!(r2.len(), 1);
    assert_eq!((r2[0].local.as_str(), r2[0].status.as_str()), ("1", "o"));
    // Nothing left behind: no record, no entry, no waiting job; replies deleted once read.
    let c = counts(&s.url, "q").await.unwrap();
    assert_eq!((c.waiting, c.running, c.dead), (0, 0, 0));
    let mut r = raw(&s.url).await;
    let jobs: Vec<String> = redis::cmd("KEYS")
        .arg("comrade:{q}:job:*")
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
    let len: u64 = redis::cmd("XLEN")
        .arg(p1.keys().reply(p1.id()))
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(len, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_takes_exactly_its_free_slots_highest_priority_first() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let h = Host::connect(&s.url, "q", "h1", 30_000).await.unwrap();
    let jobs: Vec<NewJob> = (0..10)
        .map(|i| job(i, if i == 7 { 5.0 } else { 0.0 }))
        .collect();
    p.admit(&jobs, None).await.unwrap();
    let t = h.take(3).await.unwrap();
    let got: Vec<&str> = t.jobs.iter().map(|d| d.args.as_str()).collect();
    assert_eq!(got, vec!["7", "0", "1"]);
    let c = counts(&s.url, "q").await.unwrap();
    assert_eq!((c.waiting, c.running), (7, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_token_ends_a_hosts_wait() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let h = Host::connect(&s.url, "q", "h1", 30_000).await.unwrap();
    p.admit(&[job(1, 0.0)], None).await.unwrap();
    assert!(h.wait(10_000).await.unwrap());
    assert_eq!(h.take(5).await.unwrap().jobs.len(), 1);
    // The queue is empty: the wait runs to its timeout.
    assert!(!h.wait(50).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_moves_the_job_and_the_late_result_is_dropped() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let a = Host::connect(&s.url, "q", "a", 100).await.unwrap();
    let b = Host::connect(&s.url, "q", "b", 100).await.unwrap();
    p.admit(
        &[NewJob {
            retries: 3,
            ..job(1, 0.0)
        }],
        None,
    )
    .await
    .unwrap();
    let da = a.take(1).await.unwrap().jobs.remove(0);
    // b finds nothing until a's lease runs out.
    let mut db = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut t = b.take(1).await.unwrap();
        if !t.jobs.is_empty() {
            db = Some(t.jobs.remove(0));
            break;
        }
    }
    let db = db.expect("b takes the job once a's lease ran out");
    assert_eq!(db.entry, da.entry);
    assert_eq!(db.deliveries, 2);
    // a's renewal does not take it back; a's late result is dropped; b's is delivered.
    assert_eq!(
        a.renew(&[(da.entry.clone(), da.job.clone())])
            .await
            .unwrap()
            .lost,
        vec![da.entry.clone()]
    );
    assert!(!a.complete(&da.entry, &da.job, "o", "\"a\"").await.unwrap());
    assert!(b.complete(&db.entry, &db.job, "o", "\"b\"").await.unwrap());
    assert!(!b.complete(&db.entry, &db.job, "o", "\"b\"").await.unwrap());
    let r = read_all(&p, 1).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].value, "\"b\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_keeps_a_running_job_with_its_host() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let a = Host::connect(&s.url, "q", "a", 300).await.unwrap();
    let b = Host::connect(&s.url, "q", "b", 300).await.unwrap();
    p.admit(&[job(1, 0.0)], None).await.unwrap();
    let d = a.take(1).await.unwrap().jobs.remove(0);
    for _ in 0..10 {
        let r = a.renew(&[(d.entry.clone(), d.job.clone())]).await.unwrap();
        assert!(r.lost.is_empty() && r.cancelled.is_empty());
        // Right after a renewal the entry is idle for far less than the lease.
        assert!(b.take(1).await.unwrap().jobs.is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(a.complete(&d.entry, &d.job, "o", "1").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_retries_a_job_fails_naming_the_host() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let a = Host::connect(&s.url, "q", "host-a", 50).await.unwrap();
    let b = Host::connect(&s.url, "q", "host-b", 50).await.unwrap();
    p.admit(&[job(1, 0.0)], None).await.unwrap(); // retries: 0
    assert_eq!(a.take(1).await.unwrap().jobs.len(), 1);
    let mut failed = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = b.take(1).await.unwrap();
        assert!(t.jobs.is_empty());
        failed += t.failed;
        if failed > 0 {
            break;
        }
    }
    assert_eq!(failed, 1);
    let r = read_all(&p, 1).await;
    assert_eq!(r[0].status, "f");
    assert!(r[0].value.contains("\"host\":\"host-a\""), "{}", r[0].value);
    assert!(r[0].value.contains("\"deliveries\":2"), "{}", r[0].value);
    assert_eq!(counts(&s.url, "q").await.unwrap().running, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_entries_go_to_the_dead_letter_stream() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let h = Host::connect(&s.url, "q", "h", 30_000).await.unwrap();
    let mut r = raw(&s.url).await;
    let stream = p.keys().stream();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("junk")
        .arg("1")
        .query_async(&mut r)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("j")
        .arg("nobody:1")
        .query_async(&mut r)
        .await
        .unwrap();
    p.admit(&[job(1, 0.0)], None).await.unwrap();
    let mut jobs = Vec::new();
    let mut dead = 0;
    for _ in 0..5 {
        let t = h.take(2).await.unwrap();
        dead += t.dead;
        jobs.extend(t.jobs);
    }
    assert_eq!(dead, 2);
    assert_eq!(jobs.len(), 1);
    let reasons: Vec<(String, Vec<(String, String)>)> = {
        let v: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(p.keys().dead())
            .arg("-")
            .arg("+")
            .query_async(&mut r)
            .await
            .unwrap();
        v.into_iter()
            .map(|(id, f)| {
                let pairs = f.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect();
                (id, pairs)
            })
            .collect()
    };
    let texts: Vec<&str> = reasons
        .iter()
        .map(|(_, f)| f.iter().find(|(k, _)| k == "reason").unwrap().1.as_str())
        .collect();
    assert!(texts[0].contains("no field j"), "{texts:?}");
    assert!(texts[1].contains("no job record"), "{texts:?}");
    let c = counts(&s.url, "q").await.unwrap();
    assert_eq!((c.dead, c.running), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_producer_leaves_nothing_behind() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 200).await.unwrap();
    let h = Host::connect(&s.url, "q", "h", 30_000).await.unwrap();
    p.admit(&[job(1, 0.0), job(2, 0.0), job(3, 0.0)], None)
        .await
        .unwrap();
    let d = h.take(1).await.unwrap().jobs.remove(0);
    // One result written while it lives: its reply stream expires with it.
    assert!(h.complete(&d.entry, &d.job, "o", "1").await.unwrap());
    let mut r = raw(&s.url).await;
    let reply = p.keys().reply(p.id());
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&reply)
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 200, "{ttl}");
    // The producer stops its heartbeat (it died): its liveness key and reply stream expire,
    // and the jobs still waiting are dropped by the next take.
    drop(p);
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n: i64 = redis::cmd("EXISTS")
            .arg(&reply)
            .query_async(&mut r)
            .await
            .unwrap();
        if n == 0 {
            gone = true;
            break;
        }
    }
    assert!(gone);
    let t = h.take(5).await.unwrap();
    assert_eq!((t.jobs.len(), t.dropped), (0, 2));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("comrade:{q}:*")
        .query_async(&mut r)
        .await
        .unwrap();
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.sort();
    // What stays is the queue itself: the stream (with its group) and the sequence.
    assert_eq!(keys, vec!["comrade:{q}:seq", "comrade:{q}:stream"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_tells_when_redis_lost_the_producers_state() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    assert!(p.heartbeat().await.unwrap());
    let mut r = raw(&s.url).await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut r).await.unwrap();
    assert!(!p.heartbeat().await.unwrap());
    // Registered again.
    assert!(p.heartbeat().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_clearly() {
    let s = Server::start(&["--requirepass", "s3cret-pw"]).await;
    let bad = s.url.replace("redis://", "redis://:wrong-pw@");
    let e = match Host::connect(&bad, "q", "h", 1000).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("connected with a wrong password"),
    };
    assert!(e.to_lowercase().contains("authentication failed"), "{e}");
    assert!(!e.contains("wrong-pw") && !e.contains("s3cret-pw"), "{e}");
    let good = s.url.replace("redis://", "redis://:s3cret-pw@");
    let h = Host::connect(&good, "q", "h", 1000).await.unwrap();
    assert!(h.take(1).await.unwrap().jobs.is_empty());
    h.leave().await.unwrap();
    let mut r = raw(&good).await;
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg("comrade:{q}:stream")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1, "{GROUP}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosts_own_late_renewal_is_not_a_retry() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let a = Host::connect(&s.url, "q", "a", 50).await.unwrap();
    let b = Host::connect(&s.url, "q", "b", 50).await.unwrap();
    p.admit(&[job(1, 0.0)], None).await.unwrap(); // retries: 0
    let first = a.take(1).await.unwrap().jobs.remove(0);
    // a renews too late: it takes its own entry back, still its first delivery.
    let mut again = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut t = a.take(1).await.unwrap();
        if !t.jobs.is_empty() {
            again = Some(t.jobs.remove(0));
            break;
        }
    }
    let again = again.expect("a takes its own idle entry");
    assert_eq!(
        (again.entry.as_str(), again.deliveries),
        (first.entry.as_str(), 1)
    );
    // Another host taking it is a re-delivery: past retries 0, the job fails, naming a.
    let mut failed = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        failed += b.take(1).await.unwrap().failed;
        if failed > 0 {
            break;
        }
    }
    assert_eq!(failed, 1);
    let r = read_all(&p, 1).await;
    assert!(r[0].value.contains("\"host\":\"a\""), "{}", r[0].value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sent_again_queues_nothing_twice() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    assert_eq!(
        p.admit(&[job(1, 0.0), job(2, 0.0)], None)
            .await
            .unwrap()
            .admitted,
        2
    );
    assert_eq!(
        p.admit_again(&[job(1, 0.0), job(3, 0.0)], None)
            .await
            .unwrap()
            .admitted,
        1
    );
    assert_eq!(counts(&s.url, "q").await.unwrap().waiting, 3);
    // Sent again past a backlog limit: what was admitted stays admitted, not refused.
    let again = p
        .admit_again(&[job(3, 0.0), job(4, 0.0)], Some(3))
        .await
        .unwrap();
    assert_eq!((again.admitted, again.refused), (0, vec!["4".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_lose_no_result() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let h = Host::connect(&s.url, "q", "h", 30_000).await.unwrap();
    p.admit(&[job(1, 0.0), job(2, 0.0)], None).await.unwrap();
    let t = h.take(2).await.unwrap();
    let mut r = raw(&s.url).await;
    let kill = || {
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .clone()
    };
    let killed: i64 = kill().query_async(&mut r).await.unwrap();
    assert!(killed >= 4, "{killed}");
    // The host's completion is its first command since the drop: its error makes the host
    // retry (as lib/remote/host.js does); the producer's reads and deletions retry by
    // themselves.
    for d in &t.jobs {
        let mut done = false;
        for _ in 0..3 {
            if let Ok(accepted) = h.complete(&d.entry, &d.job, "o", &d.args).await {
                assert!(accepted);
                done = true;
                break;
            }
        }
        assert!(done);
    }
    let _: i64 = kill().query_async(&mut r).await.unwrap();
    let mut got = read_all(&p, 2).await;
    got.sort_by(|a, b| a.local.cmp(&b.local));
    let values: Vec<&str> = got.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(values, vec!["1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_limit_holds_across_producers() {
    let s = Server::start(&[]).await;
    let p1 = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let p2 = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let a = p1
        .admit(&[job(1, 0.0), job(2, 0.0)], Some(3))
        .await
        .unwrap();
    assert_eq!((a.admitted, a.refused.len(), a.waiting), (2, 0, 2));
    let b = p2
        .admit(&[job(1, 0.0), job(2, 0.0), job(3, 0.0)], Some(3))
        .await
        .unwrap();
    assert_eq!(
        (b.admitted, b.refused, b.waiting),
        (1, vec!["2".to_string(), "3".to_string()], 3)
    );
    // Taken jobs no longer wait: room again.
    let h = Host::connect(&s.url, "q", "h", 30_000).await.unwrap();
    assert_eq!(h.take(2).await.unwrap().jobs.len(), 2);
    let c = p2.admit(&[job(4, 0.0)], Some(3)).await.unwrap();
    assert_eq!((c.admitted, c.waiting), (1, 2));
    // No limit for a producer that sets none.
    let d = p1.admit(&[job(5, 0.0), job(6, 0.0)], None).await.unwrap();
    assert_eq!((d.admitted, d.waiting), (2, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_withdraws_a_waiting_job_and_flags_a_running_one() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let h = Host::connect(&s.url, "q", "h", 30_000).await.unwrap();
    p.admit(&[job(1, 0.0), job(2, 0.0), job(3, 0.0)], None)
        .await
        .unwrap();
    let d = h.take(1).await.unwrap().jobs.remove(0);
    assert_eq!(d.args, "1");
    let locals = ["1".to_string(), "2".to_string(), "9".to_string()];
    assert_eq!(p.cancel(&locals).await.unwrap(), (1, 1));
    assert_eq!(counts(&s.url, "q").await.unwrap().waiting, 1);
    // The host learns it at its next renewal, and still owns the entry.
    let r = h.renew(&[(d.entry.clone(), d.job.clone())]).await.unwrap();
    assert_eq!((r.lost.len(), r.cancelled), (0, vec![d.entry.clone()]));
    assert!(h.complete(&d.entry, &d.job, "e", "{}").await.unwrap());
    // Job 3 still runs.
    let t = h.take(5).await.unwrap();
    assert_eq!(
        t.jobs.iter().map(|d| d.args.as_str()).collect::<Vec<_>>(),
        vec!["3"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_whose_host_died_is_not_run_again() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let a = Host::connect(&s.url, "q", "a", 50).await.unwrap();
    let b = Host::connect(&s.url, "q", "b", 50).await.unwrap();
    p.admit(
        &[NewJob {
            retries: 5,
            ..job(1, 0.0)
        }],
        None,
    )
    .await
    .unwrap();
    assert_eq!(a.take(1).await.unwrap().jobs.len(), 1);
    assert_eq!(p.cancel(&["1".to_string()]).await.unwrap(), (0, 1));
    // a dies; once its lease ran out, b drops the job instead of running it.
    let mut dropped = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = b.take(1).await.unwrap();
        assert!(t.jobs.is_empty());
        dropped += t.dropped;
        if dropped > 0 {
            break;
        }
    }
    assert_eq!(dropped, 1);
    assert_eq!(counts(&s.url, "q").await.unwrap().running, 0);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl in
/// `dir` (EC P-256 keys: quick to make).
fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=comrade test CA",
    ]);
    run(&ca);
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"),
        )
        .unwrap();
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"]);
        run(&req);
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_ca_and_a_client_certificate() {
    let dir = std::env::temp_dir().join(format!("comrade-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certs(&dir);
    let file = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
    let s = Server::start_on(
        port,
        &[
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "yes",
        ],
    )
    .await;
    let url = format!("rediss://127.0.0.1:{port}");
    let read = |n: &str| Some(std::fs::read(dir.join(n)).unwrap());
    let tls = Tls {
        ca: read("ca.crt"),
        cert: read("client.crt"),
        key: read("client.key"),
    };
    let p = Producer::connect_tls(&url, Some(&tls), "q", 30_000)
        .await
        .unwrap();
    let h = Host::connect_tls(&url, Some(&tls), "q", "h", 30_000)
        .await
        .unwrap();
    p.admit(&[job(1, 0.0)], None).await.unwrap();
    let d = h.take(1).await.unwrap().jobs.remove(0);
    assert!(h.complete(&d.entry, &d.job, "o", "2").await.unwrap());
    assert_eq!(read_all(&p, 1).await[0].value, "2");
    assert_eq!(counts_tls(&url, Some(&tls), "q").await.unwrap().running, 0);
    // Without the client certificate the server refuses; with no CA the server's certificate
    // is not trusted; TLS material with a redis:// URL is refused.
    let no_client = Tls {
        cert: None,
        key: None,
        ..tls.clone()
    };
    assert!(Host::connect_tls(&url, Some(&no_client), "q", "x", 1000)
        .await
        .is_err());
    assert!(Host::connect(&url, "q", "x", 1000).await.is_err());
    let e = match Host::connect_tls(&s.url, Some(&tls), "q", "x", 1000).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("TLS material accepted for redis://"),
    };
    assert!(e.contains("need a rediss:// URL"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reports_reach_the_producer_before_the_result() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let a = Host::connect(&s.url, "q", "a", 30_000).await.unwrap();
    p.admit(
        &[
            NewJob {
                progress: true,
                ..job(1, 0.0)
            },
            job(2, 0.0),
        ],
        None,
    )
    .await
    .unwrap();
    let t = a.take(2).await.unwrap();
    assert_eq!(
        t.jobs.iter().map(|d| d.progress).collect::<Vec<_>>(),
        vec![true, false]
    );
    let d = &t.jobs[0];
    assert!(a.progress(&d.entry, &d.job, "0.5").await.unwrap());
    assert!(a.complete(&d.entry, &d.job, "o", "1").await.unwrap());
    // After completion the entry is gone: a late report is dropped.
    assert!(!a.progress(&d.entry, &d.job, "0.9").await.unwrap());
    let r = read_all(&p, 2).await;
    let seen: Vec<(&str, &str)> = r
        .iter()
        .map(|r| (r.status.as_str(), r.value.as_str()))
        .collect();
    assert_eq!(seen, vec![("p", "0.5"), ("o", "1")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_host_takes_a_job_past_its_deadlines_in_redis_clock() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let h = Host::connect(&s.url, "q", "h1", 30_000).await.unwrap();
    let jobs = [
        NewJob {
            queue_timeout_ms: 1,
            ..job(1, 0.0)
        },
        NewJob {
            total_timeout_ms: 1,
            ..job(2, 0.0)
        },
        NewJob {
            queue_timeout_ms: 600_000,
            total_timeout_ms: 600_000,
            ..job(3, 0.0)
        },
    ];
    p.admit(&jobs, None).await.unwrap();
    // Past the first two deadlines (Redis's clock moves on with the wall clock).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t = h.take(3).await.unwrap();
    assert_eq!(
        t.jobs.iter().map(|d| d.args.as_str()).collect::<Vec<_>>(),
        vec!["3"]
    );
    assert_eq!(t.failed, 2);
    let mut r = read_all(&p, 2).await;
    r.sort_by(|a, b| a.local.cmp(&b.local));
    assert_eq!(
        r.iter()
            .map(|r| (r.local.as_str(), r.status.as_str()))
            .collect::<Vec<_>>(),
        vec![("1", "q"), ("2", "t")]
    );
    assert!(r[0].value.contains("waitedMs"));
    // The producer's own withdrawal of a job still waiting, or of one a host took.
    p.admit(&[job(4, 0.0)], None).await.unwrap();
    let (w, f, st) = p
        .withdraw(&["4".into(), "3".into(), "9".into()], true)
        .await
        .unwrap();
    assert_eq!((w, f), (1, 0));
    assert_eq!(st, vec!["w".to_string(), "r:h1".into(), String::new()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_caps_follow_the_registered_slots() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let a = Host::connect(&s.url, "q", "a", 30_000).await.unwrap();
    let b = Host::connect(&s.url, "q", "b", 30_000).await.unwrap();
    a.register(2).await.unwrap();
    // {1: 1}: with a's 2 slots the lowest range may hold 1 job in flight.
    let jobs: Vec<NewJob> = (0..4).map(|i| job(i, 0.0)).collect();
    let admitted = p.admit_with(&jobs, None, "0;1:1").await.unwrap();
    assert_eq!((admitted.admitted, admitted.conflict), (4, None));
    assert_eq!(a.take(2).await.unwrap().jobs.len(), 1);
    assert_eq!(a.take(1).await.unwrap().jobs.len(), 0);
    // A higher job passes; then b registers 2 more slots (at its take): the lowest range has 3.
    p.admit_with(&[job(10, 1.0)], None, "0;1:1").await.unwrap();
    let t = a.take(1).await.unwrap();
    assert_eq!(t.jobs[0].args, "10");
    b.register(2).await.unwrap();
    let t = b.take(4).await.unwrap();
    assert_eq!(t.jobs.len(), 2);
    // Another policy is refused whole; none shares the queue's.
    let other = p.admit_with(&[job(20, 0.0)], None, "1;1:1").await.unwrap();
    assert_eq!(
        (other.admitted, other.conflict.as_deref()),
        (0, Some("0;1:1"))
    );
    assert!(p.keep_policy("0;1:1").await.unwrap());
    assert!(!p.keep_policy("0;1:2").await.unwrap());
    // Completing uncounts: the last waiting job may go.
    assert!(b
        .complete(&t.jobs[0].entry, &t.jobs[0].job, "o", "1")
        .await
        .unwrap());
    assert_eq!(b.take(1).await.unwrap().jobs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_with_one_key_share_one_run_across_producers() {
    let s = Server::start(&[]).await;
    let p1 = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let p2 = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let h = Host::connect(&s.url, "q", "h", 30_000).await.unwrap();
    let keyed = |local: u32, key: &str| NewJob {
        key: key.into(),
        ..job(local, 0.0)
    };
    assert!(p1
        .admit(&[keyed(1, "k")], None)
        .await
        .unwrap()
        .joined
        .is_empty());
    let a = p2
        .admit(&[keyed(1, "k"), keyed(2, "k"), keyed(3, "other")], None)
        .await
        .unwrap();
    assert_eq!(
        (a.admitted, a.joined),
        (1, vec!["1".to_string(), "2".into()])
    );
    // p2's second caller leaves alone.
    assert_eq!(
        p2.withdraw(&["2".into()], false).await.unwrap().2,
        vec!["j".to_string()]
    );
    let t = h.take(5).await.unwrap();
    assert_eq!(t.jobs.len(), 2);
    for d in &t.jobs {
        assert!(h.complete(&d.entry, &d.job, "o", "\"done\"").await.unwrap());
    }
    assert_eq!(read_all(&p1, 1).await.len(), 1);
    let mut r2 = read_all(&p2, 2).await;
    r2.sort_by(|a, b| a.local.cmp(&b.local));
    assert_eq!(
        r2.iter().map(|r| r.local.as_str()).collect::<Vec<_>>(),
        vec!["1", "3"]
    );
    // Nothing of the shared job is left: no record, mapping or callers hash.
    let mut r = raw(&s.url).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("comrade:{q}:*")
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(
        keys.iter()
            .all(|k| !k.contains(":job:") && !k.contains(":key:") && !k.contains(":callers:")),
        "{keys:?}"
    );
    // Every caller gone: the shared job is withdrawn.
    p1.admit(&[keyed(5, "z")], None).await.unwrap();
    p2.admit(&[keyed(6, "z")], None).await.unwrap();
    assert_eq!(
        p1.withdraw(&["5".into()], false).await.unwrap().2,
        vec!["j".to_string()]
    );
    assert_eq!(
        p2.withdraw(&["6".into()], false).await.unwrap().2,
        vec!["j".to_string()]
    );
    assert_eq!(counts(&s.url, "q").await.unwrap().waiting, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_many_writes_results_once_and_records_run_times_and_slots() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let a = Host::connect(&s.url, "q", "a", 30_000).await.unwrap();
    let b = Host::connect(&s.url, "q", "b", 30_000).await.unwrap();
    // Nothing recorded yet: no host, no run time.
    assert_eq!(
        p.gauge().await.unwrap(),
        comrade_redis_queue::Gauge::default()
    );
    a.register(4).await.unwrap();
    b.register(2).await.unwrap();
    let mut jobs: Vec<NewJob> = (1..=3).map(|i| job(i, 0.0)).collect();
    jobs[2].name = "other".into();
    p.admit(&jobs, None).await.unwrap();
    let t = a.take(3).await.unwrap();
    assert_eq!(t.jobs.len(), 3);
    let done: Vec<Completion> = t
        .jobs
        .iter()
        .enumerate()
        .map(|(i, d)| Completion {
            entry: d.entry.clone(),
            job: d.job.clone(),
            status: "o".into(),
            value: format!("{}0", d.args),
            // The third did not run (refused on the host): no run time.
            run_ms: (i < 2).then_some(10.0 * (i + 1) as f64),
        })
        .collect();
    assert_eq!(a.complete_many(&done).await.unwrap(), vec![true; 3]);
    // A second write of the same results, or one from a host that does not own them: dropped.
    assert_eq!(a.complete_many(&done).await.unwrap(), vec![false; 3]);
    assert_eq!(b.complete_many(&done[..1]).await.unwrap(), vec![false]);
    let mut r = read_all(&p, 3).await;
    r.sort_by(|x, y| x.local.cmp(&y.local));
    assert_eq!(
        r.iter().map(|x| x.value.as_str()).collect::<Vec<_>>(),
        vec!["10", "20", "30"]
    );
    let g = p.gauge().await.unwrap();
    assert_eq!((g.waiting, g.hosts, g.slots, g.samples), (0, 2, 6, 2));
    assert!((g.mean_ms - 15.0).abs() < 1e-9, "{g:?}");
    let rt = p.run_times().await.unwrap();
    let mut all = rt.all.clone();
    all.sort_by(f64::total_cmp);
    assert_eq!(all, vec![10.0, 20.0]);
    // Jobs 1 and 2 ran the default function (""); job 3 ("other") recorded none.
    assert_eq!(rt.functions, vec![(String::new(), rt.all.clone())]);
    // A host that leaves is no longer counted.
    b.register(0).await.unwrap();
    assert_eq!(p.gauge().await.unwrap().slots, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_looks_for_expired_leases_at_its_first_take_then_once_per_quarter_lease() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let a = Host::connect(&s.url, "q", "a", 60_000).await.unwrap();
    let b = Host::connect(&s.url, "q", "b", 60_000).await.unwrap();
    p.admit(
        &[NewJob {
            retries: 3,
            ..job(1, 0.0)
        }],
        None,
    )
    .await
    .unwrap();
    let da = a.take(1).await.unwrap().jobs.remove(0);
    // b's first take looks (nothing has expired yet).
    assert!(b.take(1).await.unwrap().jobs.is_empty());
    // a's entry made idle past the lease (XCLAIM's IDLE, instead of waiting a minute).
    let mut c = raw(&s.url).await;
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg("comrade:{q}:stream")
        .arg(GROUP)
        .arg("a")
        .arg(0)
        .arg(&da.entry)
        .arg("IDLE")
        .arg(120_000)
        .arg("JUSTID")
        .query_async(&mut c)
        .await
        .unwrap();
    // b looked a moment ago: not before a quarter lease (15 s) has passed.
    assert!(b.take(1).await.unwrap().jobs.is_empty());
    // Another host's first take does look, and counts the delivery.
    let h = Host::connect(&s.url, "q", "c", 60_000).await.unwrap();
    let t = h.take(1).await.unwrap();
    assert_eq!(t.jobs.len(), 1);
    assert_eq!(
        (t.jobs[0].entry.as_str(), t.jobs[0].deliveries),
        (da.entry.as_str(), 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reply_entry_carries_a_batchs_results_in_order() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let h = Host::connect(&s.url, "q", "h", 30_000).await.unwrap();
    let jobs: Vec<NewJob> = (1..=5).map(|i| job(i, 0.0)).collect();
    p.admit(&jobs, None).await.unwrap();
    let t = h.take(5).await.unwrap();
    let done: Vec<Completion> = t
        .jobs
        .iter()
        .map(|d| Completion {
            entry: d.entry.clone(),
            job: d.job.clone(),
            status: "o".into(),
            value: format!("{}0", d.args),
            run_ms: Some(1.0),
        })
        .collect();
    assert_eq!(h.complete_many(&done).await.unwrap(), vec![true; 5]);
    let mut c = raw(&s.url).await;
    let len: u64 = redis::cmd("XLEN")
        .arg(format!("comrade:{{q}}:reply:{}", p.id()))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(len, 1);
    let r = read_all(&p, 5).await;
    assert_eq!(
        r.iter()
            .map(|x| (x.local.as_str(), x.value.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("1", "10"),
            ("2", "20"),
            ("3", "30"),
            ("4", "40"),
            ("5", "50")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_writes_results_once_then_takes_the_slots_they_free() {
    let s = Server::start(&[]).await;
    let p = Producer::connect(&s.url, "q", 30_000).await.unwrap();
    let a = Host::connect(&s.url, "q", "a", 30_000).await.unwrap();
    let b = Host::connect(&s.url, "q", "b", 30_000).await.unwrap();
    let jobs: Vec<NewJob> = (1..=5).map(|i| job(i, 0.0)).collect();
    p.admit(&jobs, None).await.unwrap();
    let t = a.take(2).await.unwrap();
    assert_eq!(t.jobs.len(), 2);
    let done = |t: &comrade_redis_queue::Take| -> Vec<Completion> {
        t.jobs
            .iter()
            .map(|d| Completion {
                entry: d.entry.clone(),
                job: d.job.clone(),
                status: "o".into(),
                value: format!("{}0", d.args),
                run_ms: Some(1.0),
            })
            .collect()
    };
    // Two results written, and exactly the two slots they free taken, in one call.
    let (accepted, took) = a.cycle(2, &done(&t)).await.unwrap();
    assert_eq!(accepted, vec![true; 2]);
    let t2 = took.unwrap();
    assert_eq!(
        t2.jobs.iter().map(|d| d.args.as_str()).collect::<Vec<_>>(),
        vec!["3", "4"]
    );
    // The same results again, or from a host that does not own them: dropped; the take
    // still takes (the last job), and only once.
    let (accepted, took) = b.cycle(3, &done(&t)).await.unwrap();
    assert_eq!(accepted, vec![false; 2]);
    let t3 = took.unwrap();
    assert_eq!(t3.jobs.len(), 1);
    assert_eq!(t3.jobs[0].args, "5");
    let (accepted, took) = a.cycle(2, &done(&t2)).await.unwrap();
    assert_eq!(accepted, vec![true; 2]);
    assert!(took.unwrap().jobs.is_empty());
    assert!(b.complete_many(&done(&t3)).await.unwrap()[0]);
    let mut r = read_all(&p, 5).await;
    r.sort_by(|x, y| x.local.cmp(&y.local));
    assert_eq!(
        r.iter().map(|x| x.value.as_str()).collect::<Vec<_>>(),
        vec!["10", "20", "30", "40", "50"]
    );
    let c = counts(&s.url, "q").await.unwrap();
    assert_eq!((c.waiting, c.running, c.dead), (0, 0, 0));
    assert_eq!(p.run_times().await.unwrap().all.len(), 5);
}
