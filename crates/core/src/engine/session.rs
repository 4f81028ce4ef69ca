//! The session layer: what a worker's messages and its end mean, with no I/O. Each line a
//! worker sent becomes scheduler calls and outbox records (both protocols: replies, progress,
//! events, `ready`, `retire`, `fatal`, broadcast acks, stray replies, protocol errors), and a worker's end
//! becomes the settlement or retry of what it held (the startup-failure rule). The engine
//! feeds it lines read from a worker's channel and carries out what it cannot do itself
//! (stopping a worker that broke the protocol).
//!
//! Job failures are a typed [`Failure`], serialized here and nowhere else.

use std::time::Instant;

use comrade_protocol::{decode_worker_message, encode_call};
use serde::Serialize;
use serde_json::value::RawValue;

use super::outbox::{kind, Outbox};
use super::Protocol;
use crate::frame::{classify_ipc, validate_json, IpcLine};
use crate::scheduler::{JobId, Overdue, Scheduler, StopReason, WorkerId};
use crate::spawn::{self, ExitStatus};
use comrade_protocol::Attachments;

/// Why a job failed without a reply: the value of its FAILED record, as JSON
/// (`{"reason": "...", ...}`).
#[derive(Debug, Serialize)]
#[serde(tag = "reason", rename_all = "lowercase")]
pub enum Failure<'a> {
    /// The pool shut down before the job ran.
    Closed,
    /// The job ran past its timeout; its worker was killed.
    Timeout { pid: i32 },
    /// No worker could be started.
    Spawn { message: &'a str },
    /// The worker failed to start (`fatal`, or an error exit before `ready`); `error` is the
    /// worker's error object, or null.
    Startup {
        pid: i32,
        code: Option<i32>,
        signal: Option<String>,
        error: &'a RawValue,
    },
    /// The worker died holding the job.
    Exit {
        pid: i32,
        code: Option<i32>,
        signal: Option<String>,
    },
    /// The job's outcome (its result or error, as JSON) is `bytes` long, more than the host can
    /// take (`limit`: a host such as Node cannot make a string of it).
    #[serde(rename = "too_large")]
    TooLarge { bytes: usize, limit: usize },
    /// The job waited longer than its `queue_timeout` (`waited_ms`) for a worker; it never ran.
    #[serde(rename = "queue_timeout")]
    QueueTimeout { waited_ms: u64 },
    /// The job's `total_timeout` passed: it was withdrawn from the queue (`pid` null), or
    /// cancelled on worker `pid` (a worker that does not stop it in time is killed).
    #[serde(rename = "total_timeout")]
    TotalTimeout { pid: Option<i32> },
}

impl Failure<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a failure always serializes")
    }
}

/// The value of an EXITED record. `reason`: why the worker ended (a [`StopReason`]'s name);
/// `expected`: anything but a crash.
#[derive(Serialize)]
struct Exited {
    code: Option<i32>,
    signal: Option<String>,
    expected: bool,
    reason: &'static str,
}

/// What the session keeps per worker beyond the scheduler's view of it.
#[derive(Debug)]
pub(crate) struct Peer {
    pub pid: i32,
    /// [`Protocol::Lines`]: the error of the worker's `fatal` message (JSON text).
    pub fatal: Option<String>,
    /// It broke the protocol ([`Session::broke`]): nothing more it sends is believed.
    pub broken: bool,
}

impl Peer {
    pub fn new(pid: i32) -> Self {
        Peer {
            pid,
            fatal: None,
            broken: false,
        }
    }
}

/// The session's view of the engine for one event: the scheduler, the outbox, and how.
pub(crate) struct Session<'a> {
    pub sched: &'a mut Scheduler,
    pub outbox: &'a mut Outbox,
    pub protocol: Protocol,
    /// Per-job DISPATCHED/COMPLETED records.
    pub debug: bool,
    /// Per-job RAN records.
    pub trace: bool,
}

/// A protocol violation: the worker must be stopped.
#[derive(Debug, PartialEq)]
pub(crate) struct ProtocolError(pub String);

impl Session<'_> {
    /// Handles one complete line from worker `w`. A worker that broke the protocol is not
    /// believed any more: its lines are dropped.
    #[cfg(test)]
    pub fn line(
        &mut self,
        w: WorkerId,
        peer: &mut Peer,
        line: &[u8],
        now: Instant,
    ) -> Result<(), ProtocolError> {
        self.line_with(w, peer, line, None, now)
    }

    /// As [`line`](Self::line), for a message that may have binary attachments (protocol
    /// version 3: only an `ok` may).
    pub fn line_with(
        &mut self,
        w: WorkerId,
        peer: &mut Peer,
        line: &[u8],
        bins: Option<Attachments<'_>>,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        if peer.broken {
            return Ok(());
        }
        match self.protocol {
            Protocol::Lines => self.lines_message(w, peer, line, bins, now),
            Protocol::NodeIpc => self.ipc_message(w, peer.pid, line, now),
        }
    }

    /// Node's IPC (ComputeCluster). A message the preload wrapped names the job the script had
    /// last received when it sent it: it completes that job if it is still in flight there,
    /// and is stray otherwise (a second answer, or one sent before any job). A handle cannot
    /// be passed on: a protocol error. Node's own messages are ignored; any other message
    /// (one that bypassed the preload) completes the oldest job sent there.
    fn ipc_message(
        &mut self,
        w: WorkerId,
        pid: i32,
        line: &[u8],
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let invalid = |e: String| ProtocolError(format!("invalid JSON message: {e}"));
        let (text, done) = match classify_ipc(line).map_err(invalid)? {
            IpcLine::Reply { job, payload } => {
                let text = validate_json(payload).map_err(invalid)?;
                let done = job.and_then(|j| self.sched.complete(w, j, now).map(|s| (j, s)));
                (text, done)
            }
            IpcLine::Handle => {
                return Err(ProtocolError(
                    "sent a handle with process.send, which ComputeCluster cannot pass on".into(),
                ))
            }
            IpcLine::Internal => return Ok(()),
            IpcLine::Plain => (
                validate_json(line).map_err(invalid)?,
                self.sched.complete_oldest(w, now),
            ),
        };
        match done {
            Some((job, secs)) => {
                self.outbox.push(kind::RESULT, job, text);
                if self.debug {
                    self.outbox
                        .push(kind::COMPLETED, pid as u32, &format!("{secs}"));
                }
            }
            None => self.outbox.push(kind::STRAY, pid as u32, text),
        }
        Ok(())
    }

    /// comrade's protocol (docs/PROTOCOL.md).
    fn lines_message(
        &mut self,
        w: WorkerId,
        peer: &mut Peer,
        line: &[u8],
        bins: Option<Attachments<'_>>,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let pid = peer.pid;
        let text = std::str::from_utf8(line)
            .map_err(|_| ProtocolError("message is not UTF-8".to_string()))?;
        let msg = decode_worker_message(text)
            .map_err(|e| ProtocolError(format!("{e}: {}", excerpt(text))))?;
        let job_id = || -> Result<JobId, ProtocolError> {
            match msg.id {
                Some(id) => JobId::try_from(id)
                    .map_err(|_| ProtocolError(format!("job id {id} out of range"))),
                None => Err(ProtocolError(format!(
                    "\"{}\" message without an id",
                    msg.t
                ))),
            }
        };
        if bins.is_some() && msg.t != "ok" {
            return Err(ProtocolError(format!(
                "attachments on a \"{}\" message (only \"ok\" may carry them)",
                excerpt(&msg.t)
            )));
        }
        match &*msg.t {
            "ok" | "err" => {
                let job = job_id()?;
                if self.sched.answer_cancelled(w, job) {
                    // A cancelled job's answer: its caller was settled at the cancel; the
                    // worker's place is free again.
                    return Ok(());
                }
                match self.sched.complete(w, job, now) {
                    Some(secs) => {
                        if self.trace {
                            self.outbox.push(kind::RAN, job, &format!("{secs}"));
                        }
                        match (&*msg.t, msg.v, msg.e) {
                            ("ok", Some(v), _) if bins.is_some() => {
                                // Large ones read into their own allocation are not copied.
                                let bins = bins.map(Attachments::into_vecs).unwrap_or_default();
                                self.outbox.push_bin(kind::RESULT_BIN, job, v.get(), bins);
                            }
                            ("ok", Some(v), _) => self.outbox.push(kind::RESULT, job, v.get()),
                            ("ok", None, _) => self.outbox.push(kind::VOID, job, "null"),
                            (_, _, Some(e)) => self.outbox.push(kind::JOB_ERROR, job, e.get()),
                            (_, _, None) => self.outbox.push(kind::JOB_ERROR, job, "null"),
                        }
                        if self.debug {
                            self.outbox
                                .push(kind::COMPLETED, pid as u32, &format!("{secs}"));
                        }
                    }
                    // Not in flight there (cancelled, or already settled): dropped.
                    None => self.outbox.push(kind::STRAY, pid as u32, text),
                }
            }
            "progress" => {
                let job = job_id()?;
                if self.sched.inflight_on(w, job) {
                    let v = msg.v.map_or("null", |v| v.get());
                    self.outbox.push(kind::PROGRESS, job, v);
                }
            }
            "event" => self.outbox.push(kind::EVENT, pid as u32, text),
            "ready" => self.sched.worker_serving(w, now),
            // At once: a reply later in this read must not hand the retiring worker another
            // job. The scheduler asks for its stop once its jobs are answered.
            "retire" => self.retire(w, pid, StopReason::Retired),
            "fatal" => {
                peer.fatal = Some(msg.e.map_or_else(|| "null".into(), |e| e.get().to_string()));
            }
            // A broadcast reached this worker (`e`: its message handler failed). An ack for a
            // broadcast that no longer waits for it is dropped.
            "ack" => {
                let id = match msg.id {
                    Some(id) => u32::try_from(id)
                        .map_err(|_| ProtocolError(format!("broadcast id {id} out of range")))?,
                    None => return Err(ProtocolError("\"ack\" message without an id".into())),
                };
                let e = msg.e.map(|e| e.get());
                self.outbox.broadcasts.ack(id, w, pid, e);
            }
            other => {
                return Err(ProtocolError(format!(
                    "unknown message type \"{}\"",
                    excerpt(other)
                )))
            }
        }
        Ok(())
    }

    /// The worker takes no more work and is stopped once its jobs are answered. `why`:
    /// [`StopReason::Retired`] (it asked; the RETIRING record's value is null) or
    /// [`StopReason::Memory`] (over the memory limit; `"rss"`).
    pub fn retire(&mut self, w: WorkerId, pid: i32, why: StopReason) {
        let v = if why == StopReason::Memory {
            r#""rss""#
        } else {
            "null"
        };
        self.outbox.push(kind::RETIRING, pid as u32, v);
        self.sched.retire(w, why);
    }

    /// The worker broke the protocol: reported once, and from now on nothing it sends is
    /// believed (its lines are dropped, the engine stops reading it). The caller kills it; its
    /// exit settles what it held, as after any crash: a reply that arrives after the violation,
    /// even in the same read, settles nothing.
    pub fn broke(&mut self, peer: &mut Peer, e: &ProtocolError) {
        if peer.broken {
            return;
        }
        peer.broken = true;
        self.protocol_error(peer.pid, e);
    }

    /// The PROTOCOL_ERROR record of worker `pid` (see [`Session::broke`], which also marks the
    /// worker as not to be believed).
    pub fn protocol_error(&mut self, pid: i32, e: &ProtocolError) {
        self.outbox
            .push(kind::PROTOCOL_ERROR, pid as u32, &json_string(&e.0));
    }

    /// Job `job` on worker `w` ran past its timeout: it fails now, and the worker, still busy
    /// with it, takes no more work (the caller kills it).
    pub fn timed_out(&mut self, w: WorkerId, pid: i32, job: JobId) {
        self.outbox
            .push(kind::FAILED, job, &Failure::Timeout { pid }.to_json());
        self.sched.abandon(w, job);
    }

    /// Job `job` on worker `w` ran past its timeout: it fails now, and the worker is asked to
    /// stop it (the caller sends `cancel`): the job keeps its place there until the worker
    /// answers, or until `kill_at`, when the caller kills the worker.
    pub fn timed_out_cooperative(
        &mut self,
        w: WorkerId,
        pid: i32,
        job: JobId,
        kill_at: Option<Instant>,
    ) {
        self.outbox
            .push(kind::FAILED, job, &Failure::Timeout { pid }.to_json());
        self.sched.cancel_running(w, job, kill_at, true);
    }

    /// Worker `w` is gone (`shutting_down`: the pool is stopping it with all the others). Its
    /// jobs are retried or fail, and the exit is reported.
    ///
    /// The startup-failure rule: with [`Protocol::Lines`], a worker that never said `ready`
    /// and said `fatal`, exited with an error code, or exited with code 0 when the pool had
    /// not asked it to stop could not start. Its jobs fail with reason `startup`, and so do the
    /// queued ones unless another worker serves (they would only wait for a worker that fails
    /// the same way); no worker starts again until new work comes. A signal (a chaos kill) is
    /// an ordinary crash.
    pub fn exited(&mut self, w: WorkerId, peer: Peer, status: ExitStatus, shutting_down: bool) {
        let pid = peer.pid;
        let code = status.code();
        let signal = status.signal().map(spawn::signal_name);
        // Why it ended: the reason it was stopped for; a worker that ended unasked (or whose
        // channel broke) while the pool shuts down counts as stopped by the shutdown.
        let reason = match self.sched.stop_reason(w) {
            Some(r) if r != StopReason::Crash => r,
            _ if shutting_down => StopReason::Shutdown,
            _ => StopReason::Crash,
        };
        let expected = reason.expected();
        self.outbox.totals.exits.count(reason);
        let startup_failure = self.protocol == Protocol::Lines
            && !self.sched.is_serving(w)
            && (peer.fatal.is_some() || code.is_some_and(|c| c != 0 || !expected));
        if startup_failure {
            let error_text = peer.fatal.unwrap_or_else(|| "null".into());
            let error: &RawValue = serde_json::from_str(&error_text)
                .unwrap_or_else(|_| serde_json::from_str("null").expect("null is JSON"));
            let v = Failure::Startup {
                pid,
                code,
                signal: signal.clone(),
                error,
            }
            .to_json();
            // Before the slot is released, so that no replacement is started for them.
            self.sched.startup_failed();
            let queued = if self.sched.another_serving(w) {
                Vec::new()
            } else {
                self.sched.fail_queued()
            };
            let lost = self.sched.worker_lost(w);
            for job in lost.into_iter().chain(queued) {
                self.outbox.push(kind::FAILED, job, &v);
            }
        } else {
            let lost = self.sched.worker_lost(w);
            if !lost.is_empty() {
                let v = Failure::Exit {
                    pid,
                    code,
                    signal: signal.clone(),
                }
                .to_json();
                for job in lost {
                    self.outbox.push(kind::FAILED, job, &v);
                }
            }
        }
        let v = Exited {
            code,
            signal,
            expected,
            reason: reason.as_str(),
        };
        let v = serde_json::to_string(&v).expect("an exit always serializes");
        self.outbox.push(kind::EXITED, pid as u32, &v);
    }

    /// A worker could not be spawned: the jobs that only it could have run fail.
    pub fn spawn_failed(&mut self, w: WorkerId, message: &str) {
        let jobs = self.sched.spawn_failed(w);
        if !jobs.is_empty() {
            let v = Failure::Spawn { message }.to_json();
            for job in jobs {
                self.outbox.push(kind::FAILED, job, &v);
            }
        }
        self.outbox
            .push(kind::SPAWN_FAILED, 0, &json_string(message));
    }

    /// Waiting jobs their own deadline withdrew (see [`Scheduler::take_overdue`]): each fails
    /// with its reason. Returns whether there were any.
    pub fn overdue(&mut self) -> bool {
        let jobs = self.sched.take_overdue();
        for &(job, why) in &jobs {
            let v = match why {
                Overdue::Queue { waited } => Failure::QueueTimeout {
                    waited_ms: waited.as_millis().try_into().unwrap_or(u64::MAX),
                },
                Overdue::Total => Failure::TotalTimeout { pid: None },
            };
            self.outbox.push(kind::FAILED, job, &v.to_json());
        }
        !jobs.is_empty()
    }

    /// Job `job` on worker `w` ran past its total timeout: it fails now. `kill_at`: the worker
    /// is asked to stop it (the caller sends `cancel`) and keeps the job's place until it
    /// answers, or until then, when the caller kills it. `None`: the worker takes no more work
    /// (the caller kills it now).
    pub fn total_timed_out(
        &mut self,
        w: WorkerId,
        pid: i32,
        job: JobId,
        kill_at: Option<Option<Instant>>,
    ) {
        self.outbox.push(
            kind::FAILED,
            job,
            &Failure::TotalTimeout { pid: Some(pid) }.to_json(),
        );
        match kill_at {
            Some(at) => self.sched.cancel_running(w, job, at, true),
            None => self.sched.abandon(w, job),
        }
    }

    /// Jobs the pool dropped when it shut down without draining.
    pub fn closed(&mut self, jobs: Vec<JobId>) {
        if jobs.is_empty() {
            return;
        }
        let v = Failure::Closed.to_json();
        for job in jobs {
            self.outbox.push(kind::FAILED, job, &v);
        }
    }
}

/// The call frame of job `id` ([`Protocol::Lines`]): `fn_json` is the JSON text of its
/// function name (`null`: the default function), `args` its arguments as JSON without the
/// enclosing brackets.
pub(crate) fn call_frame(id: JobId, fn_json: &str, args: &str) -> Box<[u8]> {
    let mut frame = Vec::with_capacity(args.len() + fn_json.len() + 40);
    encode_call(&mut frame, id, fn_json.as_bytes(), args.as_bytes());
    frame.into_boxed_slice()
}

/// [`call_frame`] with the caller's `traceparent` (left out unless valid).
pub(crate) fn traced_call_frame(id: JobId, fn_json: &str, args: &str, tp: &str) -> Box<[u8]> {
    let mut frame = Vec::with_capacity(args.len() + fn_json.len() + 100);
    comrade_protocol::encode_call_traced(&mut frame, id, fn_json.as_bytes(), args.as_bytes(), tp);
    frame.into_boxed_slice()
}

/// The call frame of a job with binary attachments (protocol version 3): the call's line
/// (with the caller's `traceparent`, when given and valid), its `\n`, then the attachments'
/// bytes (the engine adds the `\n` that ends them when it writes the frame). Made in one
/// allocation of its exact size: the attachments' only copy besides the write buffer's.
pub(crate) fn call_frame_bin(
    id: JobId,
    fn_json: &str,
    args: &str,
    tp: Option<&str>,
    bins: &[&[u8]],
) -> Box<[u8]> {
    let total: usize = bins.iter().map(|b| b.len()).sum();
    let mut head = Vec::with_capacity(16 + 21 * bins.len());
    comrade_protocol::push_bin_prefix(&mut head, bins.iter().map(|b| b.len()));
    let mut call = Vec::with_capacity(args.len() + fn_json.len() + 44);
    match tp {
        Some(tp) => comrade_protocol::encode_call_traced(
            &mut call,
            id,
            fn_json.as_bytes(),
            args.as_bytes(),
            tp,
        ),
        None => encode_call(&mut call, id, fn_json.as_bytes(), args.as_bytes()),
    }
    // encode_call's own `{` goes: the prefix opened the object already.
    let mut frame = Vec::with_capacity(head.len() + call.len() + total);
    frame.extend_from_slice(&head);
    frame.extend_from_slice(&call[1..]);
    frame.push(b'\n');
    for b in bins {
        frame.extend_from_slice(b);
    }
    frame.into_boxed_slice()
}

/// The start of a message, for error texts.
fn excerpt(s: &str) -> &str {
    match s.char_indices().nth(120) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub(crate) fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{Action, SchedConfig};
    use serde_json::{json, Value};

    const PID: i32 = 4242;

    /// The session over `sched` and `outbox`, for comrade's protocol.
    fn lines_session<'a>(sched: &'a mut Scheduler, outbox: &'a mut Outbox) -> Session<'a> {
        Session {
            sched,
            outbox,
            protocol: Protocol::Lines,
            debug: false,
            trace: false,
        }
    }

    /// A scheduler with `workers` slots; jobs 1..=jobs submitted and every action carried
    /// out as the engine would (spawns succeed, sends are written). Returns the stops asked.
    fn pool(workers: usize, jobs: u32) -> (Scheduler, Vec<WorkerId>) {
        let cfg = SchedConfig {
            max_workers: workers,
            concurrency: 1,
            ..SchedConfig::default()
        };
        let mut s = Scheduler::new_at(cfg, Instant::now());
        for id in 1..=jobs {
            s.submit(id, b"null".to_vec().into()).unwrap();
        }
        let stops = drive(&mut s);
        (s, stops)
    }

    fn drive(s: &mut Scheduler) -> Vec<WorkerId> {
        let mut stops = Vec::new();
        while let Some(a) = s.next_action() {
            match a {
                Action::Spawn(w) => s.spawned(w),
                Action::Send { worker, job } => s.mark_sent(worker, job, s.now()),
                Action::Stop(w) => stops.push(w),
            }
        }
        stops
    }

    /// The records in the outbox, as (kind, id, value).
    fn records(outbox: &mut Outbox) -> Vec<(u8, u32, Value)> {
        let Some(b) = outbox.take() else {
            return Vec::new();
        };
        let v: Vec<Value> = serde_json::from_str(&b.text).unwrap();
        v.chunks(3)
            .map(|c| {
                (
                    c[0].as_u64().unwrap() as u8,
                    c[1].as_u64().unwrap() as u32,
                    c[2].clone(),
                )
            })
            .collect()
    }

    fn feed(
        sched: &mut Scheduler,
        outbox: &mut Outbox,
        protocol: Protocol,
        peer: &mut Peer,
        line: &str,
    ) -> Result<(), ProtocolError> {
        let now = sched.now();
        Session {
            sched,
            outbox,
            protocol,
            debug: false,
            trace: false,
        }
        .line(1, peer, line.as_bytes(), now)
    }

    fn lines(sched: &mut Scheduler, outbox: &mut Outbox, peer: &mut Peer, line: &str) {
        feed(sched, outbox, Protocol::Lines, peer, line).unwrap();
    }

    #[test]
    fn traced_a_reply_is_preceded_by_its_run_time_and_untraced_by_nothing() {
        let (mut s, _) = pool(1, 1);
        let mut ob = Outbox::default();
        let mut peer = Peer::new(PID);
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ready"}"#);
        let now = s.now();
        let mut traced = lines_session(&mut s, &mut ob);
        traced.trace = true;
        traced
            .line(
                1,
                &mut peer,
                br#"{"t":"err","id":1,"e":{"message":"no"}}"#,
                now,
            )
            .unwrap();
        let r = records(&mut ob);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!((r[0].0, r[0].1), (kind::RAN, 1));
        assert!(r[0].2.as_f64().is_some_and(|secs| secs >= 0.0), "{r:?}");
        assert_eq!(r[1], (kind::JOB_ERROR, 1, json!({"message": "no"})));
        s.submit(2, b"null".to_vec().into()).unwrap();
        drive(&mut s);
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ok","id":2}"#);
        assert_eq!(records(&mut ob), vec![(kind::VOID, 2, Value::Null)]);
    }

    #[test]
    fn replies_become_results_void_and_errors_verbatim() {
        let (mut s, _) = pool(1, 1);
        let mut ob = Outbox::default();
        let mut peer = Peer::new(PID);
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ready"}"#);
        lines(
            &mut s,
            &mut ob,
            &mut peer,
            r#"{"t":"ok","id":1,"v":{"a": [1, 2]}}"#,
        );
        s.submit(2, b"null".to_vec().into()).unwrap();
        s.submit(3, b"null".to_vec().into()).unwrap();
        drive(&mut s);
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ok","id":2}"#);
        drive(&mut s);
        lines(
            &mut s,
            &mut ob,
            &mut peer,
            r#"{"t":"err","id":3,"e":{"message":"no"}}"#,
        );
        let r = records(&mut ob);
        assert_eq!(
            r,
            vec![
                (kind::RESULT, 1, json!({"a": [1, 2]})),
                (kind::VOID, 2, Value::Null),
                (kind::JOB_ERROR, 3, json!({"message": "no"})),
            ]
        );
        assert_eq!((ob.totals.completed, ob.totals.errored), (2, 1));
        assert_eq!(s.live_jobs(), 0);
    }

    #[test]
    fn the_raw_value_text_passes_through_unparsed() {
        let (mut s, _) = pool(1, 1);
        let mut ob = Outbox::default();
        let mut peer = Peer::new(PID);
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ok","id":1,"v":1.50}"#);
        assert_eq!(ob.take().unwrap().text, "[0,1,1.50]");
    }

    #[test]
    fn a_reply_to_a_job_not_in_flight_is_stray_and_settles_nothing() {
        let (mut s, _) = pool(1, 1);
        let mut ob = Outbox::default();
        let mut peer = Peer::new(PID);
        let stray = r#"{"t":"ok","id":99,"v":1}"#;
        lines(&mut s, &mut ob, &mut peer, stray);
        // A second answer to the same job is stray too.
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ok","id":1,"v":1}"#);
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ok","id":1,"v":2}"#);
        let r = records(&mut ob);
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].0, r[0].1), (kind::STRAY, PID as u32));
        assert_eq!(r[0].2, json!({"t": "ok", "id": 99, "v": 1}));
        assert_eq!((r[1].0, r[1].1), (kind::RESULT, 1));
        assert_eq!((r[2].0, r[2].1), (kind::STRAY, PID as u32));
    }

    #[test]
    fn progress_counts_only_for_a_job_in_flight_on_that_worker() {
        let (mut s, _) = pool(1, 1);
        let mut ob = Outbox::default();
        let mut peer = Peer::new(PID);
        lines(
            &mut s,
            &mut ob,
            &mut peer,
            r#"{"t":"progress","id":1,"v":50}"#,
        );
        lines(
            &mut s,
            &mut ob,
            &mut peer,
            r#"{"t":"progress","id":7,"v":50}"#,
        );
        lines(
            &mut s,
            &mut ob,
            &mut peer,
            r#"{"t":"event","name":"x","data":[1]}"#,
        );
        let r = records(&mut ob);
        assert_eq!(
            r,
            vec![
                (kind::PROGRESS, 1, json!(50)),
                (
                    kind::EVENT,
                    PID as u32,
                    json!({"t": "event", "name": "x", "data": [1]})
                ),
            ]
        );
    }

    #[test]
    fn ready_starts_serving_and_retire_takes_the_worker_out_of_dispatch() {
        let (mut s, _) = pool(1, 2);
        let mut ob = Outbox::default();
        let mut peer = Peer::new(PID);
        assert!(!s.is_serving(1));
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ready"}"#);
        assert!(s.is_serving(1));
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"retire"}"#);
        assert!(!s.takes_work(1));
        // Its job is answered: job 2 is not sent there, and the worker is stopped.
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ok","id":1,"v":1}"#);
        let mut sent = Vec::new();
        let mut stops = Vec::new();
        while let Some(a) = s.next_action() {
            match a {
                Action::Send { worker, job } => sent.push((worker, job)),
                Action::Stop(w) => stops.push(w),
                Action::Spawn(_) => {}
            }
        }
        assert!(
            sent.iter().all(|(w, _)| *w != 1),
            "sent to a retiring worker: {sent:?}"
        );
        assert_eq!(stops, vec![1]);
        let r = records(&mut ob);
        assert_eq!(r[0], (kind::RETIRING, PID as u32, Value::Null));
        assert_eq!((r[1].0, r[1].1), (kind::RESULT, 1));
    }

    #[test]
    fn protocol_violations_are_errors_with_a_clear_text() {
        let cases = [
            ("[1,2]", "message is not a JSON object"),
            ("{\"t\":", "invalid message"),
            (r#"{"t":"ok"}"#, "\"ok\" message without an id"),
            (
                r#"{"t":"ok","id":5000000000}"#,
                "job id 5000000000 out of range",
            ),
            (r#"{"t":"hello"}"#, "unknown message type \"hello\""),
            (r#"{"id":1}"#, "invalid message"),
        ];
        for (line, want) in cases {
            let (mut s, _) = pool(1, 1);
            let mut ob = Outbox::default();
            let mut peer = Peer::new(PID);
            let e = feed(&mut s, &mut ob, Protocol::Lines, &mut peer, line).unwrap_err();
            assert!(e.0.contains(want), "{line}: {e:?}");
            // Nothing settled.
            assert_eq!(s.live_jobs(), 1, "{line}");
        }
        let (mut s, _) = pool(1, 1);
        let e = lines_session(&mut s, &mut Outbox::default())
            .line(1, &mut Peer::new(PID), b"\xff\xfe", Instant::now())
            .unwrap_err();
        assert_eq!(e.0, "message is not UTF-8");
    }

    #[test]
    fn an_ack_counts_its_worker_once_and_one_without_an_id_is_a_violation() {
        let (mut s, _) = pool(1, 0);
        let mut ob = Outbox::default();
        ob.broadcasts.start(3, [1]);
        let mut peer = Peer::new(PID);
        // An ack for a broadcast that does not wait for this worker: dropped.
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ack","id":9}"#);
        lines(
            &mut s,
            &mut ob,
            &mut peer,
            r#"{"t":"ack","id":3,"e":{"message":"bad"}}"#,
        );
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ack","id":3}"#);
        ob.settle_broadcasts(|_| true);
        assert_eq!(
            records(&mut ob),
            [(kind::BROADCAST, 3, json!([1, [[PID, {"message": "bad"}]]]))]
        );
        for (line, want) in [
            (r#"{"t":"ack"}"#, "\"ack\" message without an id"),
            (
                r#"{"t":"ack","id":4294967296}"#,
                "broadcast id 4294967296 out of range",
            ),
        ] {
            let e = feed(&mut s, &mut ob, Protocol::Lines, &mut peer, line).unwrap_err();
            assert_eq!(e.0, want);
        }
    }

    #[test]
    fn a_protocol_error_is_reported_as_a_record() {
        let mut s = pool(1, 0).0;
        let mut ob = Outbox::default();
        lines_session(&mut s, &mut ob).protocol_error(PID, &ProtocolError("bad \"x\"".into()));
        assert_eq!(
            records(&mut ob),
            vec![(kind::PROTOCOL_ERROR, PID as u32, json!("bad \"x\""))]
        );
    }

    fn exit(s: &mut Scheduler, ob: &mut Outbox, w: WorkerId, peer: Peer, status: ExitStatus) {
        lines_session(s, ob).exited(w, peer, status, false);
    }

    #[test]
    fn fatal_before_ready_fails_held_and_queued_jobs_with_the_error() {
        let (mut s, _) = pool(1, 3);
        let mut ob = Outbox::default();
        let mut peer = Peer::new(PID);
        lines(
            &mut s,
            &mut ob,
            &mut peer,
            r#"{"t":"fatal","e":{"name":"Error","message":"init threw"}}"#,
        );
        assert!(records(&mut ob).is_empty());
        exit(&mut s, &mut ob, 1, peer, ExitStatus::Code(1));
        let r = records(&mut ob);
        let failed: Vec<_> = r.iter().filter(|x| x.0 == kind::FAILED).collect();
        assert_eq!(failed.len(), 3);
        for f in &failed {
            assert_eq!(
                f.2,
                json!({"reason": "startup", "pid": PID, "code": 1, "signal": null,
                       "error": {"name": "Error", "message": "init threw"}})
            );
        }
        assert_eq!(
            r.last().unwrap(),
            &(
                kind::EXITED,
                PID as u32,
                json!({"code": 1, "signal": null, "expected": false, "reason": "crash"})
            )
        );
        // No respawn loop: nothing is started for the failed wave.
        assert_eq!(s.live_jobs(), 0);
        assert!(drive(&mut s).is_empty());
        assert_eq!(s.workers(), 0);
    }

    #[test]
    fn an_error_exit_before_ready_spares_the_queue_while_another_worker_serves() {
        let (mut s, _) = pool(2, 4);
        let mut ob = Outbox::default();
        let mut serving = Peer::new(PID + 1);
        // Worker 2 serves; worker 1 exits with code 3 before ready, holding job 1.
        let now = s.now();
        lines_session(&mut s, &mut ob)
            .line(2, &mut serving, br#"{"t":"ready"}"#, now)
            .unwrap();
        exit(&mut s, &mut ob, 1, Peer::new(PID), ExitStatus::Code(3));
        let r = records(&mut ob);
        let failed: Vec<u32> = r
            .iter()
            .filter(|x| x.0 == kind::FAILED)
            .map(|x| x.1)
            .collect();
        assert_eq!(failed, vec![1], "only the job it held fails");
        assert_eq!(r[0].2["reason"], "startup");
        assert_eq!(r[0].2["error"], Value::Null);
        assert_eq!(s.queued(), 2);
    }

    #[test]
    fn a_signal_before_ready_is_an_ordinary_crash_and_jobs_with_retries_run_again() {
        let cfg = SchedConfig {
            max_workers: 1,
            ..SchedConfig::default()
        };
        let mut s = Scheduler::new_at(cfg, Instant::now());
        let retry = crate::scheduler::JobOpts {
            retries: 1,
            timeout: None,
            ..Default::default()
        };
        s.submit_with(1, b"null".to_vec().into(), retry).unwrap();
        s.submit(2, b"null".to_vec().into()).unwrap();
        drive(&mut s);
        let mut ob = Outbox::default();
        exit(
            &mut s,
            &mut ob,
            1,
            Peer::new(PID),
            ExitStatus::Signal(libc::SIGKILL),
        );
        let r = records(&mut ob);
        // Job 1 goes back to the queue; only the exit is reported.
        assert_eq!(
            r,
            vec![(
                kind::EXITED,
                PID as u32,
                json!({"code": null, "signal": "SIGKILL", "expected": false, "reason": "crash"})
            )]
        );
        assert_eq!(s.live_jobs(), 2);
        assert_eq!(s.stats().retried, 1);
    }

    #[test]
    fn a_crash_after_ready_fails_its_job_with_the_exit_and_an_expected_stop_says_so() {
        let (mut s, _) = pool(1, 1);
        let mut ob = Outbox::default();
        let mut peer = Peer::new(PID);
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ready"}"#);
        exit(&mut s, &mut ob, 1, peer, ExitStatus::Code(7));
        assert_eq!(
            records(&mut ob),
            vec![
                (
                    kind::FAILED,
                    1,
                    json!({"reason": "exit", "pid": PID, "code": 7, "signal": null})
                ),
                (
                    kind::EXITED,
                    PID as u32,
                    json!({"code": 7, "signal": null, "expected": false, "reason": "crash"})
                ),
            ]
        );
        // A worker the pool stopped on purpose exits "expected".
        let (mut s, _) = pool(1, 0);
        s.submit(1, b"null".to_vec().into()).unwrap();
        drive(&mut s);
        let mut peer = Peer::new(PID);
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ready"}"#);
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ok","id":1}"#);
        assert!(s.stop_worker(1, StopReason::Idle));
        assert!(
            !s.stop_worker(1, StopReason::Crash),
            "a worker is told to stop once"
        );
        records(&mut ob);
        exit(&mut s, &mut ob, 1, peer, ExitStatus::Code(0));
        let r = records(&mut ob);
        assert_eq!(r[0].2["expected"], true);
        assert_eq!(r[0].2["reason"], "idle", "the first reason stays");
    }

    #[test]
    fn a_timed_out_job_fails_and_leaves_its_worker() {
        let (mut s, _) = pool(1, 1);
        let mut ob = Outbox::default();
        lines_session(&mut s, &mut ob).timed_out(1, PID, 1);
        assert_eq!(
            records(&mut ob),
            vec![(kind::FAILED, 1, json!({"reason": "timeout", "pid": PID}))]
        );
        assert!(!s.takes_work(1));
        assert_eq!(s.live_jobs(), 0);
    }

    #[test]
    fn node_ipc_replies_complete_the_oldest_job_and_internal_messages_are_not_replies() {
        let (mut s, _) = pool(1, 2);
        let mut ob = Outbox::default();
        let mut peer = Peer::new(PID);
        let ipc = |s: &mut Scheduler, ob: &mut Outbox, peer: &mut Peer, l: &str| {
            feed(s, ob, Protocol::NodeIpc, peer, l)
        };
        // Node's own messages are not replies.
        ipc(&mut s, &mut ob, &mut peer, r#"{"cmd":"NODE_HANDLE_ACK"}"#).unwrap();
        ipc(&mut s, &mut ob, &mut peer, r#""r1""#).unwrap();
        drive(&mut s);
        ipc(&mut s, &mut ob, &mut peer, r#"{"x": 2}"#).unwrap();
        // Nothing in flight: stray.
        ipc(&mut s, &mut ob, &mut peer, "3").unwrap();
        let r = records(&mut ob);
        assert_eq!(
            r,
            vec![
                (kind::RESULT, 1, json!("r1")),
                (kind::RESULT, 2, json!({"x": 2})),
                (kind::STRAY, PID as u32, json!(3)),
            ]
        );
        let e = ipc(&mut s, &mut ob, &mut peer, "{nope").unwrap_err();
        assert!(e.0.starts_with("invalid JSON message"), "{e:?}");
    }

    #[test]
    fn node_ipc_envelopes_complete_only_the_job_they_name_if_it_is_in_flight() {
        let (mut s, _) = pool(1, 2);
        let mut ob = Outbox::default();
        let mut peer = Peer::new(PID);
        let ipc = |s: &mut Scheduler, ob: &mut Outbox, peer: &mut Peer, l: &str| {
            feed(s, ob, Protocol::NodeIpc, peer, l)
        };
        let env = |id: &str, m: &str| format!(r#"{{"cmd":"NODE_COMRADE","id":{id},"m":{m}}}"#);
        // Job 1 is in flight, job 2 queued. Sent before any job reached the script: stray.
        ipc(&mut s, &mut ob, &mut peer, &env("-1", "0")).unwrap();
        // Naming a job that is not in flight there: stray, whatever the payload holds
        // (serde's Value refuses both of these).
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        ipc(&mut s, &mut ob, &mut peer, &env("2", r#""\ud800""#)).unwrap();
        ipc(&mut s, &mut ob, &mut peer, &env("2", &deep)).unwrap();
        assert_eq!(s.live_jobs(), 2);
        ipc(&mut s, &mut ob, &mut peer, &env("1", r#"{"r":1}"#)).unwrap();
        drive(&mut s);
        // A second answer to job 1 after job 2 was sent: stray, job 2 stays in flight.
        ipc(&mut s, &mut ob, &mut peer, &env("1", r#""\ud800""#)).unwrap();
        ipc(&mut s, &mut ob, &mut peer, &env("1", &deep)).unwrap();
        assert_eq!(s.live_jobs(), 1);
        ipc(&mut s, &mut ob, &mut peer, &env("2", &deep)).unwrap();
        assert_eq!(s.live_jobs(), 0);
        let batch = ob.take().unwrap().text;
        // The batch holds the payloads as sent (JSON.parse takes them, serde's Value would not).
        let want = format!(
            "[{},{PID},0,{},{PID},\"\\ud800\",{},{PID},{deep},{},1,{{\"r\":1}},{},{PID},\"\\ud800\",{},{PID},{deep},{},2,{deep}]",
            kind::STRAY,
            kind::STRAY,
            kind::STRAY,
            kind::RESULT,
            kind::STRAY,
            kind::STRAY,
            kind::RESULT,
        );
        assert_eq!(batch, want);
    }

    #[test]
    fn node_ipc_a_handle_or_a_broken_envelope_is_a_protocol_error() {
        let (mut s, _) = pool(1, 1);
        let mut ob = Outbox::default();
        let mut peer = Peer::new(PID);
        let e = feed(
            &mut s,
            &mut ob,
            Protocol::NodeIpc,
            &mut peer,
            r#"{"cmd":"NODE_HANDLE","type":"net.Server","msg":{"cmd":"NODE_COMRADE","id":1,"m":1}}"#,
        )
        .unwrap_err();
        assert!(e.0.contains("sent a handle"), "{e:?}");
        for bad in [
            r#"{"cmd":"NODE_COMRADE","id":1}"#,
            r#"{"cmd":"NODE_COMRADE","id":1,"m":nope}"#,
        ] {
            let e = feed(&mut s, &mut ob, Protocol::NodeIpc, &mut Peer::new(PID), bad).unwrap_err();
            assert!(e.0.starts_with("invalid JSON message"), "{bad}: {e:?}");
        }
        assert_eq!(s.live_jobs(), 1, "nothing settled");
    }

    #[test]
    fn failures_serialize_as_the_host_decodes_them() {
        assert_eq!(Failure::Closed.to_json(), r#"{"reason":"closed"}"#);
        assert_eq!(
            Failure::Timeout { pid: 3 }.to_json(),
            r#"{"reason":"timeout","pid":3}"#
        );
        assert_eq!(
            Failure::Spawn {
                message: "no \"x\""
            }
            .to_json(),
            r#"{"reason":"spawn","message":"no \"x\""}"#
        );
        assert_eq!(
            Failure::Exit {
                pid: 3,
                code: None,
                signal: Some("SIGKILL".into())
            }
            .to_json(),
            r#"{"reason":"exit","pid":3,"code":null,"signal":"SIGKILL"}"#
        );
        let e: &RawValue = serde_json::from_str(r#"{"message":"m"}"#).unwrap();
        assert_eq!(
            Failure::Startup {
                pid: 3,
                code: Some(1),
                signal: None,
                error: e
            }
            .to_json(),
            r#"{"reason":"startup","pid":3,"code":1,"signal":null,"error":{"message":"m"}}"#
        );
    }

    #[test]
    fn a_spawn_failure_fails_the_jobs_no_worker_can_run() {
        let cfg = SchedConfig {
            max_workers: 1,
            ..SchedConfig::default()
        };
        let mut s = Scheduler::new_at(cfg, Instant::now());
        s.submit(1, b"null".to_vec().into()).unwrap();
        let Some(Action::Spawn(w)) = s.next_action() else {
            panic!("a spawn is asked for");
        };
        let mut ob = Outbox::default();
        lines_session(&mut s, &mut ob).spawn_failed(w, "cannot start worker \"x\": No such file");
        assert_eq!(
            records(&mut ob),
            vec![
                (
                    kind::FAILED,
                    1,
                    json!({"reason": "spawn", "message": "cannot start worker \"x\": No such file"})
                ),
                (
                    kind::SPAWN_FAILED,
                    0,
                    json!("cannot start worker \"x\": No such file")
                ),
            ]
        );
    }

    #[test]
    fn after_a_protocol_error_nothing_from_that_worker_is_believed_and_it_is_reported_once() {
        // Issue 15, points 13 and 12: a reply after the violation (even in the same read) was
        // delivered, and a second violation was reported again.
        let (mut s, _) = pool(1, 2);
        let mut ob = Outbox::default();
        let mut peer = Peer::new(PID);
        lines(&mut s, &mut ob, &mut peer, r#"{"t":"ready"}"#);
        let e = feed(&mut s, &mut ob, Protocol::Lines, &mut peer, "garbage").unwrap_err();
        let mut session = lines_session(&mut s, &mut ob);
        session.broke(&mut peer, &e);
        // The rest of the read, and anything after it: dropped, not even a stray.
        for line in [
            r#"{"t":"ok","id":1,"v":"late"}"#,
            r#"{"t":"progress","id":1,"v":1}"#,
            r#"{"t":"event","name":"x","data":1}"#,
            r#"{"t":"retire"}"#,
            "more garbage",
        ] {
            lines(&mut s, &mut ob, &mut peer, line);
        }
        let mut session = lines_session(&mut s, &mut ob);
        session.broke(&mut peer, &ProtocolError("again".into()));
        let r = records(&mut ob);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!((r[0].0, r[0].1), (kind::PROTOCOL_ERROR, PID as u32));
        assert!(r[0].2.as_str().unwrap().ends_with(": garbage"), "{r:?}");
        assert!(
            s.inflight_on(1, 1),
            "job 1 is settled by the worker's exit only"
        );
        // Its exit (it is killed) settles job 1 as after any crash.
        exit(&mut s, &mut ob, 1, peer, ExitStatus::Signal(libc::SIGKILL));
        let r = records(&mut ob);
        assert_eq!(
            r[0],
            (
                kind::FAILED,
                1,
                json!({"reason": "exit", "pid": PID, "code": null, "signal": "SIGKILL"})
            )
        );
    }

    #[test]
    fn an_unasked_exit_with_code_0_before_ready_is_a_startup_failure() {
        // Issue 15, point 12: reported as "exited with code 0 while running this job".
        let (mut s, _) = pool(1, 2);
        let mut ob = Outbox::default();
        exit(&mut s, &mut ob, 1, Peer::new(PID), ExitStatus::Code(0));
        let r = records(&mut ob);
        let failed: Vec<_> = r.iter().filter(|x| x.0 == kind::FAILED).collect();
        assert_eq!(failed.len(), 2, "the job it held and the queued one: {r:?}");
        for f in failed {
            assert_eq!(
                f.2,
                json!({"reason": "startup", "pid": PID, "code": 0, "signal": null, "error": null})
            );
        }
        // Asked to stop (an idle stop, a shutdown) before ready, code 0 is a clean exit.
        let (mut s, _) = pool(1, 1);
        assert!(s.stop_worker(1, StopReason::Shutdown));
        let mut ob = Outbox::default();
        exit(&mut s, &mut ob, 1, Peer::new(PID), ExitStatus::Code(0));
        let r = records(&mut ob);
        assert!(
            r.iter()
                .all(|x| x.0 != kind::FAILED || x.2["reason"] != "startup"),
            "{r:?}"
        );
    }

    #[test]
    fn call_frames_are_the_protocols_call_message() {
        let f = call_frame(4_096, r#""hash""#, r#""text",2"#);
        assert_eq!(
            &*f,
            br#"{"t":"call","id":4096,"fn":"hash","args":["text",2]}"#
        );
        let f = call_frame(0, "null", "");
        assert_eq!(&*f, br#"{"t":"call","id":0,"fn":null,"args":[]}"#);
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let f = traced_call_frame(5, "null", "1", tp);
        assert_eq!(
            &*f,
            format!(r#"{{"t":"call","id":5,"fn":null,"args":[1],"traceparent":"{tp}"}}"#)
                .as_bytes()
        );
        assert_eq!(
            &*traced_call_frame(5, "null", "1", "bogus"),
            &*call_frame(5, "null", "1")
        );
        // With attachments: `"b"` first, the traceparent among the other members (issue 12).
        let f = call_frame_bin(6, "null", r#"{"$b":0}"#, Some(tp), &[b"ab"]);
        assert_eq!(
            &*f,
            format!(
                "{{\"b\":[2],\"t\":\"call\",\"id\":6,\"fn\":null,\"args\":[{{\"$b\":0}}],\"traceparent\":\"{tp}\"}}\nab"
            )
            .as_bytes()
        );
        assert_eq!(
            &*call_frame_bin(6, "null", "1", Some("bogus"), &[]),
            &*call_frame_bin(6, "null", "1", None, &[])
        );
        assert_eq!(
            &*call_frame_bin(6, "null", "1", None, &[b""]),
            br#"{"b":[0],"t":"call","id":6,"fn":null,"args":[1]}"#
                .iter()
                .chain(b"\n")
                .copied()
                .collect::<Vec<u8>>()
        );
    }
}
