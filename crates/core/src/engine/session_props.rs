//! Property tests of the session layer, with a real [`Scheduler`]: any line from any worker,
//! in any order, with any ids, interleaved with submissions, timeouts, spawn failures and
//! worker exits. Nothing panics; every batch of records is one JSON array; a reply settles
//! only a job in flight on the worker that sent it; every submitted job settles exactly once
//! by the time its workers are gone. Both protocols: comrade's lines and Node's IPC (the
//! ComputeCluster reply path, with `frame.rs`'s checks).
//!
//! A bounded number of cases, so they run in the ordinary `cargo test`. The same driver is
//! the cargo-fuzz target `session` (`fuzz/`), through [`fuzz_session`] (feature `fuzzing`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use super::outbox::{kind, Outbox};
use super::session::{Peer, Session};
use super::Protocol;
use crate::scheduler::{Action, JobId, JobOpts, SchedConfig, Scheduler, StopReason, WorkerId};
use crate::spawn::ExitStatus;

// ---------------------------------------------------------------------------------------------
// What happens to the pool.

#[derive(Debug, Clone)]
enum Op {
    /// A line from the live worker at this index (modulo their number).
    Line(usize, Vec<u8>),
    /// That worker exits.
    Exit(usize, ExitStatus),
    /// A new job, with this many retries.
    Submit(u32),
    /// A job in flight on that worker runs past its timeout.
    TimeOut(usize),
}

#[derive(Debug, Clone)]
struct Setup {
    max_workers: usize,
    concurrency: usize,
    jobs: u32,
    retries: u32,
    max_jobs_per_worker: Option<u64>,
    /// Whether each spawn, in turn, fails (cycled).
    spawn_fails: Vec<bool>,
    /// How the run ends: the pool shuts down without draining, or the workers keep dying
    /// until every job has run out of retries.
    close_at_end: bool,
}

// ---------------------------------------------------------------------------------------------
// The model: a scheduler and an outbox driven as the engine drives them, with every record
// checked as it comes out.

struct Run {
    protocol: Protocol,
    sched: Scheduler,
    outbox: Outbox,
    /// Live workers in spawn order, with the session's per-worker state.
    workers: Vec<(WorkerId, Peer)>,
    /// The worker each job was last written to.
    sent_to: HashMap<JobId, WorkerId>,
    /// Settling records seen per job.
    settled: HashMap<JobId, u32>,
    submitted: Vec<JobId>,
    next_id: JobId,
    next_pid: i32,
    spawn_fails: Vec<bool>,
    spawns: usize,
    retries: u32,
}

impl Run {
    fn new(protocol: Protocol, s: &Setup) -> Self {
        let cfg = SchedConfig {
            max_workers: s.max_workers,
            concurrency: if protocol == Protocol::NodeIpc {
                1
            } else {
                s.concurrency
            },
            max_jobs_per_worker: s.max_jobs_per_worker,
            ..SchedConfig::default()
        };
        let mut run = Run {
            protocol,
            sched: Scheduler::new_at(cfg, Instant::now()),
            outbox: Outbox::default(),
            workers: Vec::new(),
            sent_to: HashMap::new(),
            settled: HashMap::new(),
            submitted: Vec::new(),
            next_id: 1,
            next_pid: 1000,
            spawn_fails: s.spawn_fails.clone(),
            spawns: 0,
            retries: s.retries,
        };
        for _ in 0..s.jobs {
            run.submit(s.retries);
        }
        run
    }

    fn session(&mut self) -> Session<'_> {
        Session {
            sched: &mut self.sched,
            outbox: &mut self.outbox,
            protocol: self.protocol,
            debug: true,
            trace: true,
        }
    }

    fn submit(&mut self, retries: u32) {
        let id = self.next_id;
        self.next_id += 1;
        let opts = JobOpts {
            retries,
            timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        self.sched
            .submit_with(id, b"null".to_vec().into(), opts)
            .expect("no backlog limit");
        self.submitted.push(id);
        self.drive();
    }

    /// Carries out the scheduler's actions as the engine does: spawns (some fail), writes,
    /// stops (the worker exits later, in an `Exit` op or at the end).
    fn drive(&mut self) {
        while let Some(a) = self.sched.next_action() {
            match a {
                Action::Spawn(w) => {
                    let fails = self.spawn_fails[self.spawns % self.spawn_fails.len()];
                    self.spawns += 1;
                    if fails {
                        self.session().spawn_failed(w, "cannot start worker");
                    } else {
                        self.next_pid += 1;
                        self.workers.push((w, Peer::new(self.next_pid)));
                        self.sched.spawned(w);
                        if self.protocol == Protocol::NodeIpc {
                            let now = self.sched.now();
                            self.sched.worker_serving(w, now);
                        }
                    }
                }
                Action::Send { worker, job } => {
                    let now = self.sched.now();
                    self.sched.mark_sent(worker, job, now);
                    self.sent_to.insert(job, worker);
                }
                Action::Stop(w) => {
                    let why = self.sched.planned_stop(w);
                    self.sched.stop_worker(w, why);
                }
            }
        }
        self.check_records(None, None);
    }

    /// Takes the outbox and checks every record. `from`: the worker whose line produced
    /// them, if any.
    /// `reply_id`: with comrade's protocol, the id the line carried (a reply settles only the
    /// job it names).
    fn check_records(&mut self, from: Option<WorkerId>, reply_id: Option<u64>) {
        let Some(batch) = self.outbox.take() else {
            return;
        };
        // The host parses a batch with one JSON.parse: it must be one JSON array.
        let items: Vec<&RawValue> = serde_json::from_str(&batch.text)
            .unwrap_or_else(|e| panic!("a batch is not one JSON array ({e}): {}", batch.text));
        assert_eq!(items.len() % 3, 0, "records are triples: {}", batch.text);
        assert_eq!(items.len() / 3, batch.count);
        for r in items.chunks(3) {
            let k: u8 = r[0].get().parse().expect("a kind is a small integer");
            let id: u32 = r[1].get().parse().expect("an id is a u32");
            if !matches!(
                k,
                kind::RESULT | kind::FAILED | kind::VOID | kind::JOB_ERROR
            ) {
                continue;
            }
            assert!(
                self.submitted.contains(&id),
                "job {id} was never submitted: {}",
                batch.text
            );
            let n = self.settled.entry(id).or_default();
            *n += 1;
            assert_eq!(*n, 1, "job {id} settled twice: {}", batch.text);
            if k != kind::FAILED {
                // A reply settles only a job written to the worker that sent it.
                let w = from.expect("a reply comes from a worker's line");
                assert_eq!(
                    self.sent_to.get(&id),
                    Some(&w),
                    "job {id}'s reply came from worker {w}: {}",
                    batch.text
                );
                if self.protocol == Protocol::Lines {
                    assert_eq!(
                        reply_id,
                        Some(u64::from(id)),
                        "job {id} was settled by a reply naming another job: {}",
                        batch.text
                    );
                }
            }
        }
    }

    fn pick(&self, i: usize) -> Option<usize> {
        (!self.workers.is_empty()).then(|| i % self.workers.len())
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Line(i, line) => {
                let Some(i) = self.pick(i) else { return };
                let now = self.sched.now() + Duration::from_millis(1);
                let (w, mut peer) = self.workers.remove(i);
                let r = self.session().line(w, &mut peer, &line, now);
                if let Err(e) = r {
                    // As the engine does: reported, and the worker is killed (its exit comes
                    // later, and lines read before it are still handed over).
                    let pid = peer.pid;
                    self.session().protocol_error(pid, &e);
                    self.sched.stop_worker(w, StopReason::Protocol);
                }
                self.workers.insert(i, (w, peer));
                let reply_id = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|t| comrade_protocol::decode_worker_message(t).ok())
                    .and_then(|m| m.id);
                self.check_records(Some(w), reply_id);
                self.drive();
            }
            Op::Exit(i, status) => {
                let Some(i) = self.pick(i) else { return };
                self.exit(i, status, false);
            }
            Op::Submit(retries) => self.submit(retries.min(self.retries)),
            Op::TimeOut(i) => {
                let Some(i) = self.pick(i) else { return };
                let (w, pid) = (self.workers[i].0, self.workers[i].1.pid);
                let held = self
                    .sent_to
                    .iter()
                    .filter(|(j, sw)| **sw == w && self.sched.inflight_on(w, **j))
                    .map(|(j, _)| *j)
                    .min();
                if let Some(job) = held {
                    self.session().timed_out(w, pid, job);
                    self.sched.stop_worker(w, StopReason::Timeout);
                    self.drive();
                }
            }
        }
    }

    fn exit(&mut self, i: usize, status: ExitStatus, shutting_down: bool) {
        let (w, peer) = self.workers.remove(i);
        self.session().exited(w, peer, status, shutting_down);
        self.drive();
    }

    /// Ends the run: every job must have settled exactly once once the workers are gone.
    fn finish(&mut self, close: bool) {
        if close {
            let dropped = self.sched.close(false);
            self.session().closed(dropped);
            self.drive();
        }
        // Workers keep dying (and are replaced while work is left) until every job has run
        // out of retries; bounded, as every job runs at most retries + 1 times.
        for _ in 0..200 {
            if self.workers.is_empty() {
                break;
            }
            while !self.workers.is_empty() {
                self.exit(0, ExitStatus::Signal(libc::SIGKILL), close);
            }
        }
        assert!(self.workers.is_empty(), "workers keep being started");
        assert_eq!(self.sched.live_jobs(), 0, "jobs left in the scheduler");
        for id in &self.submitted {
            assert_eq!(
                self.settled.get(id),
                Some(&1),
                "job {id} settled {:?} times",
                self.settled.get(id)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The fuzzing entry point.

/// Runs the session driver on operations decoded from `data` (cargo-fuzz's `session`
/// target): any panic, or a job settled twice, never or by another worker's reply, is a
/// finding. The first byte picks the protocol and the pool's shape.
#[cfg(feature = "fuzzing")]
pub fn fuzz_session(data: &[u8]) {
    let Some((&head, mut data)) = data.split_first() else {
        return;
    };
    let protocol = if head & 1 == 0 {
        Protocol::Lines
    } else {
        Protocol::NodeIpc
    };
    let s = Setup {
        max_workers: 1 + (head as usize >> 1) % 3,
        concurrency: 1 + (head as usize >> 3) % 3,
        jobs: u32::from(head >> 5),
        retries: u32::from(head >> 5) % 3,
        max_jobs_per_worker: None,
        spawn_fails: vec![false, false, false, head & 0x10 != 0],
        close_at_end: head & 0x80 != 0,
    };
    let mut run = Run::new(protocol, &s);
    let mut n = 0;
    while let Some((&tag, rest)) = data.split_first() {
        n += 1;
        if n > 200 {
            break;
        }
        let w = usize::from(tag >> 3);
        data = rest;
        let op = match tag & 7 {
            0 => Op::Exit(w, ExitStatus::Code(i32::from(tag >> 6))),
            1 => Op::Exit(w, ExitStatus::Signal(libc::SIGKILL)),
            2 => Op::Submit(u32::from(tag >> 6)),
            3 => Op::TimeOut(w),
            _ => {
                // A line: up to the next newline (or the end).
                let end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
                let line = data[..end].to_vec();
                data = data.get(end + 1..).unwrap_or_default();
                Op::Line(w, line)
            }
        };
        run.apply(op);
    }
    run.finish(s.close_at_end);
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    // ---------------------------------------------------------------------------------------------
    // Lines a worker may send.

    /// Small JSON values, lone surrogates and deep nesting included (the host's `JSON.parse`
    /// takes both; serde's `Value` refuses them).
    fn json_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("1.5e300".to_string()),
            "[a-z\"\\\\]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just(r#""\ud800""#.to_string()),
            Just(r#""\udc00\ud800x""#.to_string()),
            Just("\"\u{2028}\"".to_string()),
            (1usize..200).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
        ];
        leaf.prop_recursive(3, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z_]{0,4}", inner), 0..4).prop_map(|v| {
                    let fields: Vec<String> = v
                        .into_iter()
                        .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
    }

    /// Ids as a worker might send them: mostly the jobs in play, and out-of-range or wrong types.
    fn id_text() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            6 => (0u32..12).prop_map(|i| Some(i.to_string())),
            1 => Just(None),
            1 => prop_oneof![
                Just("-1"), Just("4294967296"), Just("1.0"), Just("1e2"), Just("\"1\""),
                Just("null"), Just("18446744073709551616"),
            ]
            .prop_map(|s| Some(s.to_string())),
        ]
    }

    /// A line of comrade's protocol: mostly well-formed messages of every type, some broken.
    fn protocol_line() -> impl Strategy<Value = Vec<u8>> {
        let typ = prop_oneof![
            Just("ok"),
            Just("ok"),
            Just("err"),
            Just("progress"),
            Just("event"),
            Just("ready"),
            Just("retire"),
            Just("fatal"),
            Just("call"),
            Just("nope"),
        ];
        let message = (
            typ,
            id_text(),
            prop::option::of(json_value()),
            any::<bool>(),
        )
            .prop_map(|(t, id, val, as_error)| {
                let mut s = format!("{{\"t\":\"{t}\"");
                if let Some(id) = id {
                    s.push_str(&format!(",\"id\":{id}"));
                }
                if let Some(v) = val {
                    let key = if as_error { "e" } else { "v" };
                    s.push_str(&format!(",\"{key}\":{v}"));
                }
                if t == "event" {
                    s.push_str(",\"name\":\"x\",\"data\":1");
                }
                s.push('}');
                s.into_bytes()
            });
        prop_oneof![
            8 => message,
            1 => json_value().prop_map(String::into_bytes),
            1 => garbage(),
        ]
    }

    /// A message on Node's IPC channel (one JSON value per line): replies of any shape, Node's
    /// own messages, stray markers of comrade's preload, and garbage.
    fn ipc_line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => json_value().prop_map(String::into_bytes),
            1 => json_value().prop_map(|v| stray_marked(&v)),
            1 => json_value().prop_map(|v| format!(r#"{{"cmd":"NODE_HANDLE","msg":{v}}}"#).into_bytes()),
            1 => json_value().prop_map(|v| format!(r#"{{"text":"NODE_X","v":{v}}}"#).into_bytes()),
            1 => garbage(),
        ]
    }

    /// Any bytes but the newline (a line never holds one).
    fn garbage() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
            0..40,
        )
    }

    /// A message the Node worker's preload sent before any job reached the script (the
    /// envelope of `lib/compute-cluster-worker.js`, with no job id), so no job's reply.
    fn stray_marked(payload: &str) -> Vec<u8> {
        format!(r#"{{"cmd":"NODE_COMRADE","id":-1,"m":{payload}}}"#).into_bytes()
    }

    fn status() -> impl Strategy<Value = ExitStatus> {
        prop_oneof![
            Just(ExitStatus::Code(0)),
            (1i32..3).prop_map(ExitStatus::Code),
            Just(ExitStatus::Signal(libc::SIGKILL)),
            Just(ExitStatus::Signal(libc::SIGTERM)),
        ]
    }

    fn ops(line: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            10 => (any::<usize>(), line).prop_map(|(w, l)| Op::Line(w, l)),
            2 => (any::<usize>(), status()).prop_map(|(w, s)| Op::Exit(w, s)),
            2 => (0u32..3).prop_map(Op::Submit),
            1 => any::<usize>().prop_map(Op::TimeOut),
        ];
        prop::collection::vec(op, 0..60)
    }

    fn setup() -> impl Strategy<Value = Setup> {
        (
            1usize..4,
            1usize..4,
            0u32..8,
            0u32..3,
            prop::option::of(1u64..4),
            prop::collection::vec(prop::bool::weighted(0.1), 1..8),
            any::<bool>(),
        )
            .prop_map(
                |(
                    max_workers,
                    concurrency,
                    jobs,
                    retries,
                    max_jobs_per_worker,
                    spawn_fails,
                    close,
                )| {
                    Setup {
                        max_workers,
                        concurrency,
                        jobs,
                        retries,
                        max_jobs_per_worker,
                        spawn_fails,
                        close_at_end: close,
                    }
                },
            )
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 384,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// comrade's protocol: any line, any order, any ids.
        #[test]
        fn lines_protocol_any_message_never_panics_and_every_job_settles_once(
            s in setup(),
            ops in ops(protocol_line()),
        ) {
            let mut run = Run::new(Protocol::Lines, &s);
            for op in ops {
                run.apply(op);
            }
            run.finish(s.close_at_end);
        }

        /// Node's IPC (ComputeCluster): any message, Node's own and stray markers included. A
        /// reply goes to at most one job, the one in flight on the worker that sent it.
        #[test]
        fn node_ipc_any_message_never_panics_and_a_reply_settles_at_most_one_job(
            s in setup(),
            ops in ops(ipc_line()),
        ) {
            let mut run = Run::new(Protocol::NodeIpc, &s);
            for op in ops {
                run.apply(op);
            }
            run.finish(s.close_at_end);
        }

        /// A message marked stray by the preload never completes a job, whatever its payload
        /// (a lone-surrogate escape or nesting deeper than 128 included: issue 15, point 5).
        #[test]
        fn a_stray_marked_message_never_completes_a_job(payload in json_value()) {
            let s = Setup {
                max_workers: 1,
                concurrency: 1,
                jobs: 1,
                retries: 0,
                max_jobs_per_worker: None,
                spawn_fails: vec![false],
                close_at_end: true,
            };
            let mut run = Run::new(Protocol::NodeIpc, &s);
            run.apply(Op::Line(0, stray_marked(&payload)));
            prop_assert_eq!(run.sched.live_jobs(), 1, "the job in flight was settled by a stray");
            run.finish(true);
        }

        /// Bytes of any kind on either protocol never panic.
        #[test]
        fn any_bytes_never_panic(
            lines in prop::collection::vec(garbage(), 0..20),
            ipc in any::<bool>(),
        ) {
            let protocol = if ipc { Protocol::NodeIpc } else { Protocol::Lines };
            let s = Setup {
                max_workers: 2,
                concurrency: 2,
                jobs: 3,
                retries: 0,
                max_jobs_per_worker: None,
                spawn_fails: vec![false],
                close_at_end: false,
            };
            let mut run = Run::new(protocol, &s);
            for (i, l) in lines.into_iter().enumerate() {
                run.apply(Op::Line(i, l));
            }
            run.finish(false);
        }
    }
}
