//! The engine against real processes: small shell workers speaking JSON lines on fd 3.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use comrade_core::engine::{kind, Batch, Engine, EngineConfig, Protocol};
use comrade_core::scheduler::{Reject, SchedConfig};
use comrade_core::spawn::SpawnSpec;

fn sh_worker(
    script: &str,
    max_workers: usize,
    backlog: Option<usize>,
) -> (Engine, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let cfg = EngineConfig {
        sched: SchedConfig {
            max_workers,
            concurrency: 1,
            max_backlog: backlog,
            max_request_time: None,
        },
        spawn: SpawnSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![],
            env_remove: vec![],
            cwd: None,
        },
        protocol: Protocol::NodeIpc,
        max_message: 1 << 20,
        kill_grace: Duration::from_millis(500),
    };
    let engine = Engine::new(
        cfg,
        Box::new(move || {
            let _ = tx.send(());
        }),
    );
    (engine, rx)
}

const ECHO: &str = r#"while IFS= read -r l <&3; do printf '%s\n' "$l" >&3; done"#;

/// Collects records until `done` says stop, or fails after 20 s.
fn collect(
    engine: &Engine,
    rx: &mpsc::Receiver<()>,
    mut done: impl FnMut(&[(u8, u32, serde_json::Value)]) -> bool,
) -> Vec<(u8, u32, serde_json::Value)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut all = Vec::new();
    loop {
        while let Some(Batch { ids, kinds, text }) = engine.take() {
            let values: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
            assert_eq!(values.len(), ids.len());
            for ((k, id), v) in kinds.into_iter().zip(ids).zip(values) {
                all.push((k, id, v));
            }
        }
        if done(&all) {
            return all;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; got {all:?}");
        let _ = rx.recv_timeout(left.min(Duration::from_millis(200)));
    }
}

fn results(recs: &[(u8, u32, serde_json::Value)]) -> usize {
    recs.iter()
        .filter(|r| r.0 == kind::RESULT || r.0 == kind::FAILED)
        .count()
}

#[test]
fn echoes_many_jobs_through_two_workers_in_batches() {
    let (engine, rx) = sh_worker(ECHO, 2, None);
    let n = 300;
    let payloads: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"i":{i},"s":"é\u2028"}}"#))
        .collect();
    assert!(engine.submit(1, &payloads.join("\n"), n).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == n);
    for (k, id, v) in &recs {
        if *k == kind::RESULT {
            assert_eq!(v["i"].as_u64().unwrap() + 1, *id as u64);
            assert_eq!(v["s"], "é\u{2028}");
        }
    }
    let spawned = recs.iter().filter(|r| r.0 == kind::SPAWNED).count();
    assert_eq!(spawned, 2);
    engine.shutdown(false);
    collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
    assert!(engine.pids().is_empty());
}

#[test]
fn a_killed_worker_fails_its_job_and_the_queue_goes_on() {
    // The worker answers only jobs other than "hang".
    let script = r#"while IFS= read -r l <&3; do [ "$l" = '"hang"' ] && sleep 60; printf '%s\n' "$l" >&3; done"#;
    let (engine, rx) = sh_worker(script, 1, None);
    assert!(engine.submit(1, "\"hang\"\n2\n3", 3).is_empty());
    // Wait for the worker, then kill it while it holds job 1.
    let recs = collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::SPAWNED));
    let pid = recs.iter().find(|r| r.0 == kind::SPAWNED).unwrap().1 as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let recs = collect(&engine, &rx, |r| results(r) == 3);
    let failed: Vec<_> = recs.iter().filter(|r| r.0 == kind::FAILED).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1, 1);
    assert_eq!(failed[0].2["reason"], "exit");
    assert_eq!(failed[0].2["signal"], "SIGKILL");
    assert_eq!(failed[0].2["code"], serde_json::Value::Null);
    let exited = recs.iter().find(|r| r.0 == kind::EXITED).unwrap();
    assert_eq!(exited.1 as i32, pid);
    assert_eq!(exited.2["expected"], false);
    let ok: Vec<u32> = recs
        .iter()
        .filter(|r| r.0 == kind::RESULT)
        .map(|r| r.1)
        .collect();
    assert_eq!(ok, vec![2, 3]);
    engine.shutdown(false);
}

#[test]
fn stray_replies_are_reported_not_delivered() {
    // Two replies per job: the second must not complete the next job.
    let script =
        r#"while IFS= read -r l <&3; do printf '%s\n"extra"\n' "$l" >&3; sleep 0.05; done"#;
    let (engine, rx) = sh_worker(script, 1, None);
    assert!(engine.submit(1, "1\n2", 2).is_empty());
    let recs = collect(&engine, &rx, |r| {
        results(r) == 2 && r.iter().filter(|r| r.0 == kind::STRAY).count() == 2
    });
    let ok: Vec<(u32, serde_json::Value)> = recs
        .iter()
        .filter(|r| r.0 == kind::RESULT)
        .map(|r| (r.1, r.2.clone()))
        .collect();
    assert_eq!(ok, vec![(1, 1.into()), (2, 2.into())]);
    engine.shutdown(false);
}

#[test]
fn garbage_on_the_channel_kills_the_worker_and_fails_its_job() {
    let script = r#"read -r l <&3; printf 'this is not json\n' >&3; sleep 60"#;
    let (engine, rx) = sh_worker(script, 1, None);
    assert!(engine.submit(7, "1", 1).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 1);
    assert!(recs.iter().any(|r| r.0 == kind::PROTOCOL_ERROR));
    let failed = recs.iter().find(|r| r.0 == kind::FAILED).unwrap();
    assert_eq!(failed.1, 7);
    assert_eq!(failed.2["signal"], "SIGKILL");
    engine.shutdown(false);
}

#[test]
fn node_internal_messages_are_swallowed() {
    let script =
        r#"read -r l <&3; printf '{"cmd":"NODE_CLUSTER","act":"online"}\n%s\n' "$l" >&3; sleep 60"#;
    let (engine, rx) = sh_worker(script, 1, None);
    assert!(engine.submit(1, r#"{"x":1}"#, 1).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 1);
    let r = recs.iter().find(|r| r.0 == kind::RESULT).unwrap();
    assert_eq!(r.2, serde_json::json!({"x": 1}));
    assert!(!recs.iter().any(|r| r.0 == kind::STRAY));
    engine.shutdown(false);
}

#[test]
fn backlog_and_shutdown_settle_every_job_once() {
    let (engine, rx) = sh_worker("sleep 60", 1, Some(2));
    let rejected = engine.submit(1, "1\n2\n3\n4", 4);
    // Job 1 is in flight, 2 and 3 wait, 4 is over the backlog.
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].index, 3);
    assert_eq!(rejected[0].reason, Reject::Backlog(2));
    engine.shutdown(false);
    let recs = collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
    let mut settled: Vec<u32> = recs
        .iter()
        .filter(|r| r.0 == kind::FAILED)
        .map(|r| r.1)
        .collect();
    settled.sort();
    assert_eq!(settled, vec![1, 2, 3]);
    let closed = recs
        .iter()
        .filter(|r| r.0 == kind::FAILED && r.2["reason"] == "closed")
        .count();
    assert_eq!(closed, 2);
    let exited = recs.iter().find(|r| r.0 == kind::EXITED).unwrap();
    assert_eq!(exited.2["expected"], true);
    assert_eq!(engine.submit(9, "1", 1)[0].reason, Reject::Closed);
}

#[test]
fn a_worker_ignoring_sigterm_is_killed_after_the_grace_period() {
    let script =
        r#"trap '' TERM; read -r l <&3; printf '%s\n' "$l" >&3; while :; do sleep 0.05; done"#;
    let (engine, rx) = sh_worker(script, 1, None);
    assert!(engine.submit(1, "1", 1).is_empty());
    // The reply proves the trap is set.
    collect(&engine, &rx, |r| results(r) == 1);
    engine.shutdown(false);
    let recs = collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
    let exited = recs.iter().find(|r| r.0 == kind::EXITED).unwrap();
    assert_eq!(exited.2["signal"], "SIGKILL");
}

#[test]
fn a_worker_that_cannot_start_fails_the_queue() {
    let (tx, rx) = mpsc::channel();
    let cfg = EngineConfig {
        sched: SchedConfig {
            max_workers: 2,
            concurrency: 1,
            max_backlog: None,
            max_request_time: None,
        },
        spawn: SpawnSpec {
            program: "/nonexistent/comrade-worker".into(),
            args: vec![],
            env: vec![],
            env_remove: vec![],
            cwd: None,
        },
        protocol: Protocol::NodeIpc,
        max_message: 1024,
        kill_grace: Duration::from_millis(100),
    };
    let engine = Engine::new(
        cfg,
        Box::new(move || {
            let _ = tx.send(());
        }),
    );
    assert!(engine.submit(1, "1\n2", 2).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 2);
    assert!(recs
        .iter()
        .all(|r| r.0 != kind::FAILED || r.2["reason"] == "spawn"));
    assert!(recs.iter().any(|r| r.0 == kind::SPAWN_FAILED));
}
