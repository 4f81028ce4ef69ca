//! The engine against real processes: small shell workers speaking JSON lines on fd 3.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use comrade_core::engine::{kind, Batch, Engine, EngineConfig, Protocol};
use comrade_core::scheduler::{JobOpts, Reject, SchedConfig};
use comrade_core::spawn::SpawnSpec;

/// An engine over `program args`, waking `rx` when records are waiting.
fn start(
    program: &str,
    args: &[&str],
    protocol: Protocol,
    sched: SchedConfig,
    hello: Option<&str>,
) -> (Engine, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let mut cfg = EngineConfig::new(
        sched,
        SpawnSpec {
            program: program.into(),
            args: args.iter().map(Into::into).collect(),
            env: vec![],
            env_remove: vec![],
            cwd: None,
            cpu: None,
            nice: 0,
        },
        protocol,
    );
    cfg.max_message = 1 << 20;
    cfg.kill_grace = Duration::from_millis(500);
    cfg.hello = hello.map(Into::into);
    let engine = Engine::new(
        cfg,
        Box::new(move || {
            let _ = tx.send(());
        }),
    );
    (engine, rx)
}

fn sh_worker(
    script: &str,
    max_workers: usize,
    backlog: Option<usize>,
) -> (Engine, mpsc::Receiver<()>) {
    let sched = SchedConfig {
        max_workers,
        max_backlog: backlog,
        ..SchedConfig::default()
    };
    start("/bin/sh", &["-c", script], Protocol::NodeIpc, sched, None)
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
        while let Some(Batch { count, text, .. }) = engine.take() {
            let values: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
            assert_eq!(values.len(), 3 * count);
            for t in values.chunks(3) {
                let k = t[0].as_u64().unwrap() as u8;
                let id = t[1].as_u64().unwrap() as u32;
                all.push((k, id, t[2].clone()));
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
fn results_put_off_behind_a_deep_queue_still_wake_the_host() {
    // One worker answers three jobs, then hangs with the fourth: 16 stay queued, so the wake
    // for the three results is put off, and only the engine's timer can deliver it. Waits on
    // the wake channel alone (no polling): a lost wake fails the test.
    let (engine, rx) = sh_worker(
        r#"i=0; while [ $i -lt 3 ]; do IFS= read -r l <&3; printf '%s\n' "$l" >&3; i=$((i+1)); done; exec sleep 1000"#,
        1,
        None,
    );
    let payloads: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert!(engine.submit(0, &payloads.join("\n"), 20).is_empty());
    let mut got = Vec::new();
    while got.len() < 3 {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the host is woken for the results");
        while let Some(Batch { text, .. }) = engine.take() {
            let v: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
            for t in v.chunks(3) {
                if t[0] == kind::RESULT {
                    got.push((t[1].as_u64().unwrap(), t[2].clone()));
                }
            }
        }
    }
    assert_eq!(
        got,
        vec![
            (0, serde_json::json!(0)),
            (1, serde_json::json!(1)),
            (2, serde_json::json!(2))
        ]
    );
    assert_eq!(engine.queued(), 16);
    engine.shutdown(false);
    collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
}

#[test]
fn a_job_larger_than_the_socket_buffer_is_written_in_pieces_as_the_worker_reads() {
    // The worker reads nothing for a while: the write blocks part way, and the rest goes out
    // once the socket drains (the blocked-write path), in order with the jobs behind it.
    let (engine, rx) = sh_worker("sleep 0.3; exec cat <&3 >&3", 1, None);
    let big = format!("\"{}\"", "x".repeat(600_000));
    let text = format!("{big}\n1\n\"after\"");
    assert!(engine.submit(0, &text, 3).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 3);
    let got: Vec<(u32, serde_json::Value)> = recs
        .into_iter()
        .filter(|r| r.0 == kind::RESULT)
        .map(|r| (r.1, r.2))
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].0, 0);
    assert_eq!(got[0].1.as_str().map(str::len), Some(600_000));
    assert_eq!(got[1], (1, serde_json::json!(1)));
    assert_eq!(got[2], (2, serde_json::json!("after")));
    engine.shutdown(false);
    collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
}

/// Blocks until `fd` is readable (or 10 s pass).
fn wait_readable(fd: &std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, 10_000) };
    assert_eq!(n, 1, "the channel became readable");
}

fn results_in(engine: &Engine) -> Vec<(u32, serde_json::Value)> {
    let mut out = Vec::new();
    while let Some(Batch { text, .. }) = engine.take() {
        let v: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        for t in v.chunks(3) {
            if t[0] == kind::RESULT {
                out.push((t[1].as_u64().unwrap() as u32, t[2].clone()));
            }
        }
    }
    out
}

#[test]
fn in_direct_mode_the_host_reads_replies_and_switching_back_loses_none() {
    let (engine, rx) = sh_worker(ECHO, 1, None);
    // A worker started while the I/O thread reads, then handed over to the host.
    assert!(engine.submit(0, "10", 1).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 1);
    assert!(recs.iter().any(|r| r.0 == kind::RESULT && r.1 == 0));
    engine.set_direct(true);
    let (live, fresh) = engine.channels(&Default::default());
    assert_eq!(live.len(), 1);
    let (w, fd) = fresh
        .into_iter()
        .next()
        .expect("a duplicate of the channel");
    assert!(engine.submit(1, "11", 1).is_empty());
    // The reply waits in the socket: the I/O thread no longer reads it.
    wait_readable(&fd);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(results_in(&engine), vec![], "nobody read the reply");
    // The host reads it.
    assert_eq!(engine.read_direct(w), (true, true));
    assert_eq!(results_in(&engine), vec![(1, serde_json::json!(11))]);
    // A reply already waiting when the I/O thread takes over again is not lost.
    assert!(engine.submit(2, "12", 1).is_empty());
    wait_readable(&fd);
    engine.set_direct(false);
    let recs = collect(&engine, &rx, |r| results(r) == 1);
    assert!(recs.iter().any(|r| r.0 == kind::RESULT && r.1 == 2));
    // And from then on it reads as always.
    assert!(engine.submit(3, "13\n14", 2).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 2);
    assert_eq!(results(&recs), 2);
    // In direct mode the end of the channel is seen by the host once; the exit follows.
    engine.set_direct(true);
    engine.shutdown(false);
    let recs = collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
    assert_eq!(recs.iter().filter(|r| r.0 == kind::EXITED).count(), 1);
    assert_eq!(engine.read_direct(w), (false, false));
}

#[test]
fn a_stalled_host_loses_the_reads_to_the_io_thread_and_no_reply_waits_for_it() {
    let (engine, rx) = sh_worker(ECHO, 1, None);
    assert!(engine.submit(0, "10", 1).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 1);
    assert_eq!(results(&recs), 1);
    engine.set_direct(true);
    assert!(!engine.direct_revoked());
    // The host never reads: with 19 jobs queued behind the first, the I/O thread finds the
    // reply unread, hands the worker its next job, and reads from then on.
    let payloads: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    assert!(engine.submit(1, &payloads.join("\n"), 20).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 20);
    let mut ids: Vec<u32> = recs
        .iter()
        .filter(|r| r.0 == kind::RESULT)
        .map(|r| r.1)
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=20).collect::<Vec<u32>>());
    assert!(engine.direct_revoked(), "the host is told once");
    assert!(!engine.direct_revoked());
    // The host reads again: with nothing queued, a reply it leaves unread stays unread (the
    // I/O thread checks only while jobs wait for a worker), and it reads it itself.
    engine.set_direct(true);
    let (_, fresh) = engine.channels(&Default::default());
    let (w, fd) = fresh
        .into_iter()
        .next()
        .expect("a duplicate of the channel");
    assert!(engine.submit(21, "21", 1).is_empty());
    wait_readable(&fd);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(results_in(&engine), vec![], "nobody read the reply");
    assert_eq!(engine.read_direct(w), (true, true));
    assert_eq!(results_in(&engine), vec![(21, serde_json::json!(21))]);
    assert!(!engine.direct_revoked());
    engine.shutdown(false);
    collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
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
    let sched = SchedConfig {
        max_workers: 2,
        ..SchedConfig::default()
    };
    let (engine, rx) = start(
        "/nonexistent/comrade-worker",
        &[],
        Protocol::NodeIpc,
        sched,
        None,
    );
    assert!(engine.submit(1, "1\n2", 2).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 2);
    assert!(recs
        .iter()
        .all(|r| r.0 != kind::FAILED || r.2["reason"] == "spawn"));
    assert!(recs.iter().any(|r| r.0 == kind::SPAWN_FAILED));
}

// --- Protocol::Lines (docs/PROTOCOL.md), with small Python workers ---

fn py_worker(script: &str, max_workers: usize, concurrency: usize) -> (Engine, mpsc::Receiver<()>) {
    py_worker_min(script, 0, max_workers, concurrency)
}

fn py_worker_min(
    script: &str,
    min_workers: usize,
    max_workers: usize,
    concurrency: usize,
) -> (Engine, mpsc::Receiver<()>) {
    let sched = SchedConfig {
        min_workers,
        max_workers,
        concurrency,
        ..SchedConfig::default()
    };
    start(
        "python3",
        &["-c", script],
        Protocol::Lines,
        sched,
        Some(r#"{"t":"init","data":{"k":7}}"#),
    )
}

/// A worker that reads `batch` calls, then answers them in reverse order; `fn` picks the reply.
const PY_PREAMBLE: &str = r#"
import json, os, sys
rd = os.fdopen(os.dup(3), "rb")
def send(o): os.write(3, (json.dumps(o) + "\n").encode())
init = json.loads(rd.readline())
"#;

fn calls(first: u32, n: usize, f: &str, args: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"t":"call","id":{},"fn":"{f}","args":{args}}}"#,
                first + i as u32
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn lines_replies_match_by_id_in_any_order_with_concurrency() {
    let script = format!(
        "{PY_PREAMBLE}{}",
        r#"
assert init == {"t": "init", "data": {"k": 7}}, init
send({"t": "ready"})
while True:
    batch = []
    for _ in range(4):
        line = rd.readline()
        if not line: sys.exit(0)
        batch.append(json.loads(line))
    for c in reversed(batch):
        if c["fn"] == "void": send({"t": "ok", "id": c["id"]})
        elif c["fn"] == "fail": send({"t": "err", "id": c["id"], "e": {"message": "no", "code": "E"}})
        else: send({"t": "ok", "id": c["id"], "v": [c["id"], c["args"], init["data"]["k"]]})
"#
    );
    // One worker, four calls in flight at once: the worker only answers after reading four.
    let (engine, rx) = py_worker(&script, 1, 4);
    let mut text = calls(0, 6, "echo", "[1]");
    text.push('\n');
    text.push_str(&calls(6, 1, "void", "[]"));
    text.push('\n');
    text.push_str(&calls(7, 1, "fail", "[]"));
    assert!(engine.submit(0, &text, 8).is_empty());
    let recs = collect(&engine, &rx, |r| {
        r.iter()
            .filter(|r| matches!(r.0, kind::RESULT | kind::VOID | kind::JOB_ERROR))
            .count()
            == 8
    });
    let order: Vec<u32> = recs
        .iter()
        .filter(|r| matches!(r.0, kind::RESULT | kind::VOID | kind::JOB_ERROR))
        .map(|r| r.1)
        .collect();
    assert_eq!(
        order,
        vec![3, 2, 1, 0, 7, 6, 5, 4],
        "answered in reverse per batch of 4"
    );
    for r in &recs {
        match r.0 {
            kind::RESULT => assert_eq!(r.2, serde_json::json!([r.1, [1], 7])),
            kind::VOID => assert_eq!(r.1, 6),
            kind::JOB_ERROR => assert_eq!(r.2, serde_json::json!({"message": "no", "code": "E"})),
            _ => {}
        }
    }
    assert_eq!(
        engine.pids().len(),
        1,
        "concurrency 4 needs one worker only"
    );
    engine.shutdown(true);
    collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
}

#[test]
fn submit_calls_writes_each_call_frame_with_its_id_name_and_arguments() {
    let script = format!(
        "{PY_PREAMBLE}{}",
        r#"
send({"t": "ready"})
for line in rd:
    c = json.loads(line)
    send({"t": "ok", "id": c["id"], "v": line.decode().rstrip("\n")})
"#
    );
    let (engine, rx) = py_worker(&script, 1, 1);
    // Ids wrap past u32::MAX; without `fns` every call is to the default function.
    let first = u32::MAX - 1;
    assert!(engine
        .submit_calls(first, "1\n\"a\",{\"b\":[]}\n", None, 3, &[])
        .is_empty());
    assert!(engine
        .submit_calls(7, "2\n3", Some("\"md5\"\nnull"), 2, &[])
        .is_empty());
    let recs = collect(&engine, &rx, |r| {
        r.iter().filter(|r| r.0 == kind::RESULT).count() == 5
    });
    let mut frames: Vec<(u32, String)> = recs
        .iter()
        .filter(|r| r.0 == kind::RESULT)
        .map(|r| (r.1, r.2.as_str().unwrap().to_string()))
        .collect();
    frames.sort_by_key(|f| f.0);
    assert_eq!(
        frames,
        vec![
            (0, r#"{"t":"call","id":0,"fn":null,"args":[]}"#.to_string()),
            (
                7,
                r#"{"t":"call","id":7,"fn":"md5","args":[2]}"#.to_string()
            ),
            (8, r#"{"t":"call","id":8,"fn":null,"args":[3]}"#.to_string()),
            (
                u32::MAX - 1,
                r#"{"t":"call","id":4294967294,"fn":null,"args":[1]}"#.to_string()
            ),
            (
                u32::MAX,
                r#"{"t":"call","id":4294967295,"fn":null,"args":["a",{"b":[]}]}"#.to_string()
            ),
        ]
    );
    engine.shutdown(true);
    collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
}

#[test]
fn lines_progress_events_and_strays_reach_the_host() {
    let script = format!(
        "{PY_PREAMBLE}{}",
        r#"
send({"t": "ready"})
for line in rd:
    c = json.loads(line)
    send({"t": "progress", "id": c["id"], "v": 0.5})
    send({"t": "event", "name": "seen", "data": c["id"]})
    send({"t": "ok", "id": c["id"], "v": None})
    send({"t": "ok", "id": c["id"], "v": "again"})
    send({"t": "progress", "id": c["id"], "v": 1})
"#
    );
    let (engine, rx) = py_worker(&script, 1, 1);
    assert!(engine.submit(5, &calls(5, 1, "x", "[]"), 1).is_empty());
    let recs = collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::STRAY));
    let kinds: Vec<u8> = recs.iter().map(|r| r.0).collect();
    assert_eq!(
        kinds,
        vec![
            kind::SPAWNED,
            kind::PROGRESS,
            kind::EVENT,
            kind::RESULT,
            kind::STRAY
        ]
    );
    assert_eq!(recs[1].1, 5);
    assert_eq!(recs[1].2, serde_json::json!(0.5));
    assert_eq!(recs[2].2["name"], "seen");
    assert_eq!(recs[2].2["data"], 5);
    assert_eq!(
        recs[3].2,
        serde_json::Value::Null,
        "a null result is a result, not void"
    );
    engine.shutdown(false);
    let recs = collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
    assert!(
        !recs.iter().any(|r| r.0 == kind::PROGRESS),
        "no progress after the reply"
    );
}

#[test]
fn lines_fatal_at_startup_fails_the_queue_once_without_respawning() {
    let script = format!(
        "{PY_PREAMBLE}{}",
        r#"
send({"t": "fatal", "e": {"name": "SyntaxError", "message": "bad module"}})
sys.exit(1)
"#
    );
    let (engine, rx) = py_worker(&script, 2, 1);
    assert!(engine.submit(0, &calls(0, 5, "x", "[]"), 5).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 5);
    let failed: Vec<_> = recs.iter().filter(|r| r.0 == kind::FAILED).collect();
    assert_eq!(failed.len(), 5);
    for f in &failed {
        assert_eq!(f.2["reason"], "startup");
        assert_eq!(f.2["error"]["message"], "bad module");
    }
    // Let every started worker exit; none more is started for the failed queue.
    std::thread::sleep(Duration::from_millis(300));
    let recs = collect(&engine, &rx, |_| true);
    let spawned_later = recs.iter().filter(|r| r.0 == kind::SPAWNED).count();
    assert_eq!(spawned_later, 0, "no respawn loop: {recs:?}");
    assert_eq!(engine.queued(), 0);
}

#[test]
fn lines_retire_finishes_jobs_then_stops_and_a_replacement_serves() {
    let script = format!(
        "{PY_PREAMBLE}{}",
        r#"
send({"t": "ready"})
n = 0
for line in rd:
    c = json.loads(line)
    n += 1
    if n == 2: send({"t": "retire"})
    send({"t": "ok", "id": c["id"], "v": os.getpid()})
"#
    );
    let (engine, rx) = py_worker(&script, 1, 1);
    assert!(engine.submit(0, &calls(0, 6, "x", "[]"), 6).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 6);
    let pids: Vec<i64> = recs
        .iter()
        .filter(|r| r.0 == kind::RESULT)
        .map(|r| r.2.as_i64().unwrap())
        .collect();
    assert_eq!(pids.len(), 6, "every job answered: {recs:?}");
    assert_eq!(pids[0], pids[1]);
    assert_ne!(
        pids[1], pids[2],
        "no job after retire goes to the retiring worker"
    );
    assert_eq!(pids[2], pids[3]);
    assert!(recs.iter().any(|r| r.0 == kind::RETIRING));
    let exited: Vec<_> = recs.iter().filter(|r| r.0 == kind::EXITED).collect();
    assert!(exited.iter().all(|e| e.2["expected"] == true), "{exited:?}");
    engine.shutdown(true);
    collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
}

#[test]
fn lines_protocol_errors_kill_only_that_worker() {
    for bad in [
        r#"send({"t": "ok", "v": 1})"#,
        r#"send({"t": "warp", "id": 0})"#,
        r#"send([1, 2])"#,
        r#"os.write(3, b"{nope\n")"#,
        r#"send({"t": "ok", "id": 99999999999, "v": 1})"#,
    ] {
        let script = format!(
            "{PY_PREAMBLE}send({{\"t\": \"ready\"}})\nc = json.loads(rd.readline())\n{bad}\nimport time\ntime.sleep(30)\n"
        );
        let (engine, rx) = py_worker(&script, 1, 1);
        assert!(engine.submit(0, &calls(0, 1, "x", "[]"), 1).is_empty());
        let recs = collect(&engine, &rx, |r| results(r) == 1);
        let pe = recs.iter().find(|r| r.0 == kind::PROTOCOL_ERROR);
        assert!(pe.is_some(), "{bad}: {recs:?}");
        let failed = recs.iter().find(|r| r.0 == kind::FAILED).unwrap();
        assert_eq!(failed.2["reason"], "exit", "{bad}");
        assert_eq!(failed.2["signal"], "SIGKILL", "{bad}");
    }
}

// --- timeouts, cancellation, retries, stats ---

const SLOW_OR_CRASH: &str = r#"while IFS= read -r l <&3; do case "$l" in *slow*) sleep 30;; *crash*) kill -9 $$;; esac; printf '%s\n' "$l" >&3; done"#;

#[test]
fn a_run_timeout_fails_the_job_kills_its_worker_and_the_queue_goes_on() {
    let (engine, rx) = sh_worker(SLOW_OR_CRASH, 1, None);
    let quick = JobOpts {
        retries: 0,
        timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    assert!(engine
        .submit_with(1, "\"slow\"\n\"fast\"", 2, &[quick, JobOpts::default()])
        .is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 2);
    let failed = recs.iter().find(|r| r.0 == kind::FAILED).unwrap();
    assert_eq!(failed.1, 1);
    assert_eq!(failed.2["reason"], "timeout");
    let ok = recs.iter().find(|r| r.0 == kind::RESULT).unwrap();
    assert_eq!((ok.1, ok.2.as_str()), (2, Some("fast")));
    let exits: Vec<_> = recs.iter().filter(|r| r.0 == kind::EXITED).collect();
    assert_eq!(exits.len(), 1);
    assert_eq!(exits[0].2["signal"], "SIGKILL");
    engine.shutdown(false);
    collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
}

#[test]
fn cancel_drops_queued_jobs_and_kills_the_worker_of_a_running_one() {
    let (engine, rx) = sh_worker(SLOW_OR_CRASH, 1, None);
    assert!(engine
        .submit(1, "\"slow\"\n\"queued\"\n\"fast\"", 3)
        .is_empty());
    assert_eq!(engine.cancel(2), 1, "job 2 was queued");
    assert_eq!(engine.cancel(1), 2, "job 1 was running");
    assert_eq!(engine.cancel(1), 0, "once");
    let recs = collect(&engine, &rx, |r| results(r) == 1);
    let ok: Vec<_> = recs
        .iter()
        .filter(|r| r.0 == kind::RESULT || r.0 == kind::FAILED)
        .collect();
    assert_eq!(ok.len(), 1);
    assert_eq!((ok[0].0, ok[0].1), (kind::RESULT, 3));
    engine.shutdown(false);
    let recs = collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
    assert!(
        !recs
            .iter()
            .any(|r| r.0 == kind::FAILED || r.0 == kind::RESULT),
        "no record for cancelled jobs: {recs:?}"
    );
}

#[test]
fn a_job_that_kills_every_worker_is_retried_then_fails_and_stats_count_it() {
    let (engine, rx) = sh_worker(SLOW_OR_CRASH, 2, None);
    let twice = JobOpts {
        retries: 2,
        timeout: None,
        ..Default::default()
    };
    assert!(engine
        .submit_with(1, "\"crash\"\n\"fine\"", 2, &[twice, twice])
        .is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 2);
    let failed = recs.iter().find(|r| r.0 == kind::FAILED).unwrap();
    assert_eq!(failed.1, 1);
    assert_eq!(failed.2["reason"], "exit");
    assert_eq!(failed.2["signal"], "SIGKILL");
    let exits = recs.iter().filter(|r| r.0 == kind::EXITED).count();
    assert_eq!(exits, 3, "first run plus two retries");
    let stats: serde_json::Value = serde_json::from_str(&engine.stats_json()).unwrap();
    assert_eq!(stats["retried"], 2);
    assert_eq!(stats["completed"], 1);
    assert_eq!(stats["failed"], 1);
    assert_eq!(stats["queued"], 0);
    assert_eq!(stats["runTime"]["samples"], 1);
    engine.shutdown(false);
    collect(&engine, &rx, |r| r.iter().any(|r| r.0 == kind::ALL_EXITED));
}

#[test]
fn lines_a_broken_worker_is_not_restarted_to_keep_min_workers() {
    let script = format!(
        "{PY_PREAMBLE}{}",
        r#"
send({"t": "fatal", "e": {"message": "broken"}})
sys.exit(1)
"#
    );
    // Two warm workers start with the engine and both fail to start.
    let (engine, rx) = py_worker_min(&script, 2, 2, 1);
    collect(&engine, &rx, |r| {
        r.iter().filter(|r| r.0 == kind::EXITED).count() == 2
    });
    std::thread::sleep(Duration::from_millis(500));
    let later = collect(&engine, &rx, |_| true);
    assert!(
        !later.iter().any(|r| r.0 == kind::SPAWNED),
        "no restart loop: {later:?}"
    );
    // New work tries again (and fails the same way, once).
    assert!(engine.submit(1, &calls(1, 1, "x", "[]"), 1).is_empty());
    let recs = collect(&engine, &rx, |r| results(r) == 1);
    let failed = recs.iter().find(|r| r.0 == kind::FAILED).unwrap();
    assert_eq!(failed.2["reason"], "startup");
    std::thread::sleep(Duration::from_millis(500));
    let spawned = recs.iter().filter(|r| r.0 == kind::SPAWNED).count()
        + collect(&engine, &rx, |_| true)
            .iter()
            .filter(|r| r.0 == kind::SPAWNED)
            .count();
    assert!(spawned <= 2, "one wave of spawns, got {spawned}");
}
