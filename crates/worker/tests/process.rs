//! `Worker::run` in a real process: the channel on fd 3, exit codes, and the `md5_worker`
//! example. The worker process is this test binary itself, started again with
//! `COMRADE_WORKER_TEST_CHILD` set so that only [`child_worker`] runs, and it calls `run()`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use comrade_worker::{Ctx, Error, Worker};
use serde_json::{json, Value};

const CHILD_ENV: &str = "COMRADE_WORKER_TEST_CHILD";

/// Not a test of its own: the body of the worker processes the other tests start (run with
/// `--ignored` and `COMRADE_WORKER_TEST_CHILD` set). Ignored in a normal run, so it is not
/// counted as a test that passed; run by hand without the variable, it fails.
#[test]
#[ignore = "the body of the worker processes the other tests start"]
fn child_worker() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "child_worker is the worker process of the other tests, not a test of its own"
    );
    Worker::new()
        .init(
            |data: Value| match data.get("fail").and_then(Value::as_str) {
                Some(why) => Err(Error::new(why).code("E_INIT")),
                None => Ok(()),
            },
        )
        .function("add", |(a, b): (i64, i64)| Ok::<_, Error>(a + b))
        .function_ctx("emit", |ctx: &mut Ctx, (): ()| {
            ctx.emit("hello", json!({"pid": std::process::id()}))?;
            Ok::<_, Error>(())
        })
        .run();
}

fn child_command() -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_worker",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(CHILD_ENV, "1")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

struct Proc {
    child: Child,
    channel: UnixStream,
    reader: BufReader<UnixStream>,
}

/// Starts `cmd` with one end of a socket pair on fd 3, as the pool does.
fn spawn_worker(mut cmd: Command) -> Proc {
    let (parent, child_end) = UnixStream::pair().unwrap();
    let fd = child_end.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.env("COMRADE_CHANNEL_FD", "3");
    let child = cmd.spawn().unwrap();
    drop(child_end);
    parent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    Proc {
        reader: BufReader::new(parent.try_clone().unwrap()),
        channel: parent,
        child,
    }
}

impl Proc {
    fn send(&mut self, message: Value) {
        self.channel
            .write_all(format!("{message}\n").as_bytes())
            .unwrap();
    }

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        assert!(
            self.reader.read_line(&mut line).unwrap() > 0,
            "worker closed the channel"
        );
        serde_json::from_str(&line).unwrap()
    }

    fn ask(&mut self, id: u32, function: Option<&str>, args: Value) -> Value {
        self.send(json!({"t": "call", "id": id, "fn": function, "args": args}));
        self.recv()
    }

    /// Closes the channel and returns the exit code and stderr.
    fn finish(self) -> (i32, String) {
        let Proc {
            mut child,
            channel,
            reader,
        } = self;
        drop(reader);
        drop(channel);
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        (status.code().expect("killed by a signal"), stderr)
    }
}

/// Runs `cmd` with no channel and returns its exit code and stderr.
fn run_without_channel(mut cmd: Command) -> (i32, String) {
    let out = cmd.stderr(Stdio::piped()).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn serves_over_fd_3_and_exits_0_at_end_of_file() {
    let mut w = spawn_worker(child_command());
    w.send(json!({"t": "init", "data": null}));
    assert_eq!(w.recv(), json!({"t": "ready"}));
    assert_eq!(
        w.ask(1, Some("add"), json!([40, 2])),
        json!({"t": "ok", "id": 1, "v": 42})
    );
    let pid = w.child.id();
    assert_eq!(
        w.ask(2, Some("emit"), json!([])),
        json!({"t": "event", "name": "hello", "data": {"pid": pid}})
    );
    assert_eq!(w.recv(), json!({"t": "ok", "id": 2, "v": null}));
    let (code, stderr) = w.finish();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn init_failure_sends_fatal_and_exits_1() {
    let mut w = spawn_worker(child_command());
    w.send(json!({"t": "init", "data": {"fail": "no database"}}));
    assert_eq!(
        w.recv(),
        json!({"t": "fatal", "e": {"name": "Error", "message": "no database", "code": "E_INIT"}})
    );
    let (code, stderr) = w.finish();
    assert_eq!(code, 1);
    assert!(stderr.contains("no database"), "{stderr}");
}

#[test]
fn a_malformed_frame_exits_3() {
    let mut w = spawn_worker(child_command());
    w.send(json!({"t": "init", "data": null}));
    assert_eq!(w.recv(), json!({"t": "ready"}));
    w.channel
        .write_all(b"{\"t\":\"call\",\"id\":-5,\"args\":[]}\n")
        .unwrap();
    let (code, stderr) = w.finish();
    assert_eq!(code, 3);
    assert!(
        stderr.contains("protocol error") && stderr.contains("\"id\""),
        "{stderr}"
    );
}

#[test]
fn without_a_channel_it_says_how_to_start_it_and_exits_2() {
    let hint = "this program is a comrade pool worker; start it with new Pool({ command: [...] })";
    for value in ["987", "abc", "-1"] {
        let mut cmd = child_command();
        cmd.env("COMRADE_CHANNEL_FD", value);
        let (code, stderr) = run_without_channel(cmd);
        assert_eq!(code, 2, "{value}: {stderr}");
        assert!(stderr.contains(hint), "{stderr}");
    }
    // No variable, and nothing on fd 3.
    let mut cmd = child_command();
    cmd.env_remove("COMRADE_CHANNEL_FD");
    // SAFETY: close is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(3);
            Ok(())
        });
    }
    let (code, stderr) = run_without_channel(cmd);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(hint) && stderr.contains("file descriptor 3 is not open"),
        "{stderr}"
    );
}

/// `target/<profile>/examples/md5_worker`, built by `cargo test` (which builds examples); if
/// it is missing (a filtered `cargo test`), it is built here. Never skipped: a worker that
/// cannot be built fails the test.
fn md5_worker() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join("md5_worker");
    if !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "comrade-worker", "--example", "md5_worker"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "cannot build the md5_worker example");
    }
    assert!(
        path.exists(),
        "md5_worker is not at {} (cargo build -p comrade-worker --examples)",
        path.display()
    );
    path
}

#[test]
fn the_md5_example_worker_answers_every_function() {
    let path = md5_worker();
    let mut cmd = Command::new(path);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut w = spawn_worker(cmd);
    w.send(json!({"t": "init", "data": null}));
    assert_eq!(w.recv(), json!({"t": "ready"}));
    let pid = w.child.id();
    let payload = "x".repeat(3000);
    assert_eq!(
        w.ask(1, Some("md5"), json!([payload])),
        json!({"t": "ok", "id": 1, "v": [payload, "33d7ac42e3aa0f3146843833c23e4365"]})
    );
    assert_eq!(
        w.ask(2, Some("md5"), json!([""])),
        json!({"t": "ok", "id": 2, "v": ["", "d41d8cd98f00b204e9800998ecf8427e"]})
    );
    assert_eq!(
        w.ask(3, None, json!([{"a": [1, null]}, 2])),
        json!({"t": "ok", "id": 3, "v": {"a": [1, null]}})
    );
    assert_eq!(
        w.ask(4, None, json!([])),
        json!({"t": "ok", "id": 4, "v": null})
    );
    assert_eq!(
        w.ask(5, Some("add"), json!([2, 3.5])),
        json!({"t": "ok", "id": 5, "v": 5.5})
    );
    assert_eq!(
        w.ask(6, Some("fail"), json!(["bad"])),
        json!({"t": "err", "id": 6, "e": {"name": "RangeError", "message": "bad", "code": "E_FAIL", "detail": 42}})
    );
    let reply = w.ask(7, Some("panic"), json!(["oops"]));
    assert_eq!(
        reply["e"],
        json!({"name": "Error", "message": "oops", "code": "ERR_PANIC"})
    );
    assert_eq!(
        w.ask(8, Some("progress"), json!([2])),
        json!({"t": "progress", "id": 8, "v": 1})
    );
    assert_eq!(w.recv(), json!({"t": "progress", "id": 8, "v": 2}));
    assert_eq!(w.recv(), json!({"t": "ok", "id": 8, "v": 2}));
    assert_eq!(
        w.ask(9, Some("emit"), json!(["e", [1]])),
        json!({"t": "event", "name": "e", "data": [1]})
    );
    assert_eq!(w.recv(), json!({"t": "ok", "id": 9, "v": null}));
    assert_eq!(
        w.ask(10, Some("pid"), json!([])),
        json!({"t": "ok", "id": 10, "v": pid})
    );
    assert_eq!(
        w.ask(11, Some("sleep_ms"), json!([5])),
        json!({"t": "ok", "id": 11, "v": 5})
    );
    assert_eq!(w.ask(12, Some("retire"), json!([])), json!({"t": "retire"}));
    assert_eq!(w.recv(), json!({"t": "ok", "id": 12, "v": pid}));
    let reply = w.ask(13, Some("md5"), json!([1]));
    assert_eq!(reply["e"]["code"], "ERR_INVALID_ARGS");
    let reply = w.ask(14, Some("nope"), json!([]));
    assert_eq!(reply["e"]["code"], "ERR_UNKNOWN_FUNCTION");
    let (code, stderr) = w.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("oops"),
        "the panic is reported on stderr: {stderr}"
    );
}
