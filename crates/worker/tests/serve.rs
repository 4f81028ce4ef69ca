//! The serving loop driven through a real socket pair with real frames, the way the pool drives
//! it: the worker runs `serve` on its own thread; the test plays the pool.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use comrade_worker::protocol::FrameError;
use comrade_worker::{Ctx, Error, ServeError, Worker};
use serde_json::{json, Value};

struct Pool {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    worker: JoinHandle<Result<(), ServeError>>,
}

/// Starts `make()`'s worker serving one end of a socket pair on a new thread.
fn start(make: impl FnOnce() -> Worker + Send + 'static) -> Pool {
    let (pool_end, worker_end) = UnixStream::pair().unwrap();
    pool_end
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let worker = thread::spawn(move || make().serve(&worker_end, &worker_end));
    Pool {
        reader: BufReader::new(pool_end.try_clone().unwrap()),
        stream: pool_end,
        worker,
    }
}

/// A worker with the functions most tests use.
fn demo() -> Worker {
    Worker::new()
        .function("add", |(a, b): (f64, f64)| Ok::<_, Error>(a + b))
        .function("concat", |parts: Vec<String>| {
            Ok::<_, Error>(parts.concat())
        })
        .function("none", |(): ()| Ok::<_, Error>(()))
        .function("fail", |(message,): (String,)| {
            Err::<(), _>(
                Error::new(message)
                    .name("RangeError")
                    .code("E_FAIL")
                    .field("detail", 42)
                    .field("list", json!([1, "a"])),
            )
        })
        .function("io", |(path,): (String,)| {
            let text = std::fs::read_to_string(path)?;
            Ok::<_, Error>(text)
        })
        .function("boom", |(message,): (String,)| -> Result<(), Error> {
            panic!("{}", message)
        })
        .function("boom_any", |(): ()| -> Result<(), Error> {
            std::panic::panic_any(7u8)
        })
        .function("bad_value", |(): ()| {
            let map: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into_iter().collect();
            Ok::<_, Error>(map)
        })
        .function_ctx("count", |ctx: &mut Ctx, (n,): (u32,)| {
            for i in 1..=n {
                ctx.progress(json!({"done": i, "of": n}))?;
            }
            Ok::<_, Error>(n)
        })
        .function_ctx("emit", |ctx: &mut Ctx, (name, data): (String, Value)| {
            ctx.emit(&name, data)?;
            Ok::<_, Error>(ctx.id())
        })
        .function_ctx("retire", |ctx: &mut Ctx, (): ()| {
            ctx.retire()?;
            ctx.retire()?;
            Ok::<_, Error>("retiring")
        })
        .function_ctx(
            "progress_then_panic",
            |ctx: &mut Ctx, (): ()| -> Result<(), Error> {
                ctx.progress(1)?;
                panic!("after progress")
            },
        )
        .default_function(|(s,): (String,)| Ok::<_, Error>(s.to_uppercase()))
}

impl Pool {
    fn send(&mut self, message: Value) {
        self.send_raw(&format!("{message}\n"));
    }

    fn send_raw(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    fn call(&mut self, id: u32, function: Option<&str>, args: Value) {
        self.send(json!({"t": "call", "id": id, "fn": function, "args": args}));
    }

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("no reply in time");
        assert!(n > 0, "channel closed while waiting for a reply");
        assert!(line.ends_with('\n'), "unterminated line {line:?}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON from worker {line:?}: {e}"))
    }

    /// The worker's reply to one call.
    fn ask(&mut self, id: u32, function: Option<&str>, args: Value) -> Value {
        self.call(id, function, args);
        self.recv()
    }

    fn init(&mut self, data: Value) -> Value {
        self.send(json!({"t": "init", "data": data}));
        self.recv()
    }

    /// Closes the pool's end and returns what `serve` returned, checking nothing else was sent.
    fn finish(self) -> Result<(), ServeError> {
        let Pool {
            stream,
            mut reader,
            worker,
        } = self;
        // The worker may have closed its end already.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let result = worker.join().expect("serve panicked");
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "", "unexpected messages after the last one read");
        result
    }
}

fn err_of(reply: &Value) -> &Value {
    assert_eq!(reply["t"], "err", "not an error: {reply}");
    &reply["e"]
}

#[test]
fn init_answers_ready_and_calls_are_answered_in_order() {
    let mut pool = start(demo);
    assert_eq!(pool.init(json!({"salt": "x"})), json!({"t": "ready"}));
    pool.call(1, Some("add"), json!([2, 3]));
    pool.call(2, None, json!(["hi"]));
    pool.call(3, Some("concat"), json!(["a", "b", "c"]));
    pool.call(4, Some("none"), json!([]));
    assert_eq!(pool.recv(), json!({"t": "ok", "id": 1, "v": 5.0}));
    assert_eq!(pool.recv(), json!({"t": "ok", "id": 2, "v": "HI"}));
    assert_eq!(pool.recv(), json!({"t": "ok", "id": 3, "v": "abc"}));
    assert_eq!(pool.recv(), json!({"t": "ok", "id": 4, "v": null}));
    pool.finish().unwrap();
}

#[test]
fn init_function_gets_the_data_and_runs_before_calls() {
    let mut pool = start(|| {
        let salt = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
        let s2 = salt.clone();
        Worker::new()
            .init(move |data: Value| {
                *s2.borrow_mut() = data["salt"].as_str().unwrap_or("none").to_owned();
                Ok(())
            })
            .default_function(move |(s,): (String,)| {
                Ok::<_, Error>(format!("{}{s}", salt.borrow()))
            })
    });
    assert_eq!(pool.init(json!({"salt": "pepper:"})), json!({"t": "ready"}));
    assert_eq!(
        pool.ask(7, None, json!(["x"])),
        json!({"t": "ok", "id": 7, "v": "pepper:x"})
    );
    pool.finish().unwrap();
}

#[test]
fn messages_reach_the_handler_in_order_with_calls_and_are_acknowledged() {
    let mut pool = start(|| {
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<i64>::new()));
        let s2 = seen.clone();
        Worker::new()
            .on_message(move |(n, fail): (i64, bool)| {
                if fail {
                    return Err(Error::new(format!("refused {n}")).code("E_MSG"));
                }
                s2.borrow_mut().push(n);
                Ok(())
            })
            .function("seen", move |(): ()| Ok::<_, Error>(seen.borrow().clone()))
    });
    pool.init(Value::Null);
    pool.send(json!({"t": "message", "id": 1, "data": [5, false]}));
    assert_eq!(pool.recv(), json!({"t": "ack", "id": 1}));
    pool.send(json!({"t": "message", "id": 2, "data": [6, true]}));
    let ack = pool.recv();
    assert_eq!(ack["t"], "ack");
    assert_eq!(ack["id"], 2);
    assert_eq!(ack["e"]["message"], "refused 6");
    assert_eq!(ack["e"]["code"], "E_MSG");
    // A message that does not fit the handler's type: acknowledged with a TypeError.
    pool.send(json!({"t": "message", "id": 3, "data": "nope"}));
    let ack = pool.recv();
    assert_eq!(
        (ack["id"].clone(), ack["e"]["code"].clone()),
        (json!(3), json!("ERR_INVALID_MESSAGE"))
    );
    assert_eq!(ack["e"]["name"], "TypeError");
    assert_eq!(
        pool.ask(4, Some("seen"), json!([])),
        json!({"t": "ok", "id": 4, "v": [5]})
    );
    pool.finish().unwrap();
}

#[test]
fn without_a_message_handler_messages_are_acknowledged() {
    let mut pool = start(demo);
    pool.init(Value::Null);
    pool.send(json!({"t": "message", "id": 7, "data": {"any": 1}}));
    assert_eq!(pool.recv(), json!({"t": "ack", "id": 7}));
    pool.finish().unwrap();
}

#[test]
fn without_init_function_any_init_data_is_accepted() {
    let mut pool = start(demo);
    pool.send_raw("{\"t\":\"init\"}\n");
    assert_eq!(pool.recv(), json!({"t": "ready"}));
    pool.finish().unwrap();
}

#[test]
fn errors_carry_name_code_message_and_fields() {
    let mut pool = start(demo);
    pool.init(Value::Null);
    let reply = pool.ask(5, Some("fail"), json!(["too big"]));
    assert_eq!(
        reply,
        json!({"t": "err", "id": 5, "e": {"name": "RangeError", "message": "too big", "code": "E_FAIL",
            "detail": 42, "list": [1, "a"]}})
    );
    // `?` on a std error.
    let reply = pool.ask(6, Some("io"), json!(["/definitely/not/here"]));
    let e = err_of(&reply);
    assert_eq!(e["name"], "Error");
    assert!(
        e["message"].as_str().unwrap().contains("No such file"),
        "{e}"
    );
    pool.finish().unwrap();
}

#[test]
fn a_panic_is_answered_and_the_worker_goes_on() {
    let mut pool = start(demo);
    pool.init(Value::Null);
    let reply = pool.ask(1, Some("boom"), json!(["it broke"]));
    assert_eq!(
        reply,
        json!({"t": "err", "id": 1, "e": {"name": "Error", "message": "it broke", "code": "ERR_PANIC"}})
    );
    let reply = pool.ask(2, Some("boom_any"), json!([]));
    assert_eq!(err_of(&reply)["code"], "ERR_PANIC");
    assert_eq!(
        pool.ask(3, Some("add"), json!([1, 1])),
        json!({"t": "ok", "id": 3, "v": 2.0})
    );
    // Progress sent before the panic stays sent; the panic is still answered.
    pool.call(4, Some("progress_then_panic"), json!([]));
    assert_eq!(pool.recv(), json!({"t": "progress", "id": 4, "v": 1}));
    assert_eq!(err_of(&pool.recv())["message"], "after progress");
    pool.finish().unwrap();
}

#[test]
fn arguments_that_do_not_fit_are_a_type_error() {
    let mut pool = start(demo);
    pool.init(Value::Null);
    let cases = [
        (json!(["a", 2]), "invalid type: string \"a\", expected f64"),
        (json!([1]), "invalid length 1"),
        (json!([1, 2, 3]), "too many arguments (3 given)"),
        (json!([]), "invalid length 0"),
    ];
    for (i, (args, expected)) in cases.into_iter().enumerate() {
        let reply = pool.ask(i as u32, Some("add"), args.clone());
        let e = err_of(&reply);
        assert_eq!(e["name"], "TypeError", "{args}");
        assert_eq!(e["code"], "ERR_INVALID_ARGS");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.starts_with("invalid arguments for \"add\": "),
            "{message}"
        );
        assert!(message.contains(expected), "{args}: {message}");
        assert!(!message.contains("line 1 column"), "{message}");
    }
    let reply = pool.ask(9, None, json!([5]));
    assert!(err_of(&reply)["message"]
        .as_str()
        .unwrap()
        .starts_with("invalid arguments for the default function: invalid type: integer `5`"));
    let reply = pool.ask(10, Some("none"), json!([1]));
    assert_eq!(err_of(&reply)["code"], "ERR_INVALID_ARGS");
    pool.finish().unwrap();
}

#[test]
fn unknown_functions_are_answered() {
    let mut pool = start(demo);
    pool.init(Value::Null);
    assert_eq!(
        pool.ask(3, Some("nope"), json!([])),
        json!({"t": "err", "id": 3, "e": {"name": "Error", "message": "no function named \"nope\"",
            "code": "ERR_UNKNOWN_FUNCTION"}})
    );
    pool.finish().unwrap();

    let mut pool = start(|| Worker::new().function("f", |(): ()| Ok::<_, Error>(1)));
    pool.init(Value::Null);
    let reply = pool.ask(1, None, json!([]));
    assert_eq!(err_of(&reply)["code"], "ERR_UNKNOWN_FUNCTION");
    assert_eq!(
        err_of(&reply)["message"],
        "this worker has no default function"
    );
    pool.finish().unwrap();
}

#[test]
fn escaped_function_names_are_found() {
    let mut pool = start(demo);
    pool.init(Value::Null);
    pool.send_raw("{\"t\":\"call\",\"id\":1,\"fn\":\"\\u0061dd\",\"args\":[1,2]}\n");
    assert_eq!(pool.recv(), json!({"t": "ok", "id": 1, "v": 3.0}));
    pool.finish().unwrap();
}

#[test]
fn progress_events_and_retire_are_sent() {
    let mut pool = start(demo);
    pool.init(Value::Null);
    pool.call(8, Some("count"), json!([3]));
    for i in 1..=3 {
        assert_eq!(
            pool.recv(),
            json!({"t": "progress", "id": 8, "v": {"done": i, "of": 3}})
        );
    }
    assert_eq!(pool.recv(), json!({"t": "ok", "id": 8, "v": 3}));

    pool.call(9, Some("emit"), json!(["cache", {"size": 12}]));
    assert_eq!(
        pool.recv(),
        json!({"t": "event", "name": "cache", "data": {"size": 12}})
    );
    assert_eq!(pool.recv(), json!({"t": "ok", "id": 9, "v": 9}));

    // Retire is sent once, however often it is asked for; the worker keeps serving.
    assert_eq!(
        pool.ask(10, Some("retire"), json!([])),
        json!({"t": "retire"})
    );
    assert_eq!(pool.recv(), json!({"t": "ok", "id": 10, "v": "retiring"}));
    pool.call(11, Some("retire"), json!([]));
    assert_eq!(pool.recv(), json!({"t": "ok", "id": 11, "v": "retiring"}));
    pool.finish().unwrap();
}

#[test]
fn progress_reaches_the_pool_while_the_call_runs() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Mutex::new(rx);
    let mut pool = start(move || {
        Worker::new().function_ctx("wait", move |ctx: &mut Ctx, (): ()| {
            ctx.progress("started")?;
            rx.lock().unwrap().recv().unwrap();
            Ok::<_, Error>("done")
        })
    });
    pool.init(Value::Null);
    pool.call(1, Some("wait"), json!([]));
    assert_eq!(
        pool.recv(),
        json!({"t": "progress", "id": 1, "v": "started"})
    );
    tx.send(()).unwrap();
    assert_eq!(pool.recv(), json!({"t": "ok", "id": 1, "v": "done"}));
    pool.finish().unwrap();
}

#[test]
fn a_return_value_that_does_not_serialize_is_an_error() {
    let mut pool = start(demo);
    pool.init(Value::Null);
    let reply = pool.ask(1, Some("bad_value"), json!([]));
    assert_eq!(err_of(&reply)["code"], "ERR_SERIALIZE");
    assert_eq!(
        pool.ask(2, None, json!(["ok"])),
        json!({"t": "ok", "id": 2, "v": "OK"})
    );
    pool.finish().unwrap();
}

#[test]
fn init_failure_sends_fatal_and_stops() {
    let mut pool = start(|| {
        Worker::new()
            .init(|_: Value| Err(Error::new("no config").code("E_CONFIG")))
            .default_function(|(): ()| Ok::<_, Error>(()))
    });
    // One write: the worker may close its end as soon as it has read the init.
    pool.send_raw(
        "{\"t\":\"init\",\"data\":null}\n{\"t\":\"call\",\"id\":1,\"fn\":null,\"args\":[]}\n",
    );
    assert_eq!(
        pool.recv(),
        json!({"t": "fatal", "e": {"name": "Error", "message": "no config", "code": "E_CONFIG"}})
    );
    match pool.finish() {
        Err(ServeError::InitFailed(e)) => assert_eq!(e.to_json()["code"], "E_CONFIG"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn init_panic_or_bad_data_is_fatal_too() {
    let mut pool =
        start(|| Worker::new().init(|_: Value| -> Result<(), Error> { panic!("init exploded") }));
    let reply = pool.init(Value::Null);
    assert_eq!(reply["t"], "fatal");
    assert_eq!(reply["e"]["code"], "ERR_PANIC");
    assert_eq!(reply["e"]["message"], "init exploded");
    assert!(matches!(pool.finish(), Err(ServeError::InitFailed(_))));

    let mut pool = start(|| Worker::new().init(|(_n,): (u32,)| Ok(())));
    let reply = pool.init(json!("text"));
    assert_eq!(reply["t"], "fatal");
    assert_eq!(reply["e"]["name"], "TypeError");
    assert_eq!(reply["e"]["code"], "ERR_INVALID_INIT_DATA");
    assert!(matches!(pool.finish(), Err(ServeError::InitFailed(_))));
}

#[test]
fn end_of_input_is_a_clean_return() {
    // Before init, after init, and in the middle of a line.
    let pool = start(demo);
    pool.finish().unwrap();
    let mut pool = start(demo);
    pool.init(Value::Null);
    pool.finish().unwrap();
    let mut pool = start(demo);
    pool.init(Value::Null);
    pool.send_raw("{\"t\":\"call\",\"id\":1,");
    pool.finish().unwrap();
}

#[test]
fn the_pool_going_away_ends_serving_quietly() {
    let mut pool = start(|| {
        Worker::new().function("slow", |(): ()| {
            thread::sleep(Duration::from_millis(100));
            Ok::<_, Error>(1)
        })
    });
    pool.init(Value::Null);
    pool.call(1, Some("slow"), json!([]));
    let Pool {
        stream,
        reader,
        worker,
    } = pool;
    drop(reader);
    drop(stream);
    // The reply's write fails with EPIPE (or the next read sees EOF): both are a clean end.
    worker.join().unwrap().unwrap();
}

#[test]
fn a_pipelined_batch_of_1000_calls_gets_1000_replies() {
    let mut pool = start(demo);
    pool.init(Value::Null);
    let mut batch = String::new();
    for id in 0..1000u32 {
        let function = if id % 2 == 0 { "\"add\"" } else { "null" };
        let args = if id % 2 == 0 {
            format!("[{id},1]")
        } else {
            format!("[\"w{id}\"]")
        };
        batch.push_str(&format!(
            "{{\"t\":\"call\",\"id\":{id},\"fn\":{function},\"args\":{args}}}\n"
        ));
    }
    // Written from another thread, as the pool does, so neither side's socket buffer stalls
    // the other.
    let mut writer = pool.stream.try_clone().unwrap();
    let feeder = thread::spawn(move || writer.write_all(batch.as_bytes()).unwrap());
    for id in 0..1000u32 {
        let reply = pool.recv();
        let expected = if id % 2 == 0 {
            json!(f64::from(id + 1))
        } else {
            json!(format!("W{id}"))
        };
        assert_eq!(reply, json!({"t": "ok", "id": id, "v": expected}));
    }
    feeder.join().unwrap();
    pool.finish().unwrap();
}

/// Counts the `write` calls the worker makes.
struct CountingWriter {
    data: Vec<u8>,
    writes: usize,
}

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writes += 1;
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Hands out its input in reads of at most `chunk` bytes.
struct ChunkedReader<'a> {
    data: &'a [u8],
    chunk: usize,
    reads: usize,
}

impl Read for ChunkedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reads += 1;
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn replies_to_one_read_leave_in_one_write() {
    let mut input = b"{\"t\":\"init\",\"data\":null}\n".to_vec();
    for id in 0..1000 {
        input.extend_from_slice(
            format!("{{\"t\":\"call\",\"id\":{id},\"fn\":\"add\",\"args\":[{id},{id}]}}\n")
                .as_bytes(),
        );
    }
    let mut out = CountingWriter {
        data: Vec::new(),
        writes: 0,
    };
    demo().serve(&input[..], &mut out).unwrap();
    assert_eq!(
        out.writes, 2,
        "`ready` goes out at once; then one read of the whole batch gives one write"
    );
    let text = String::from_utf8(out.data).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1001);
    assert_eq!(lines[0], "{\"t\":\"ready\"}");
    assert_eq!(lines[1000], "{\"t\":\"ok\",\"id\":999,\"v\":1998.0}");
}

#[test]
fn lines_split_across_many_small_reads_are_joined() {
    let mut input = b"{\"t\":\"init\",\"data\":null}\n".to_vec();
    for id in 0..50 {
        input.extend_from_slice(
            format!("{{\"t\":\"call\",\"id\":{id},\"fn\":null,\"args\":[\"é{id}\"]}}\n").as_bytes(),
        );
    }
    let mut reader = ChunkedReader {
        data: &input,
        chunk: 7,
        reads: 0,
    };
    let mut out = CountingWriter {
        data: Vec::new(),
        writes: 0,
    };
    demo().serve(&mut reader, &mut out).unwrap();
    let text = String::from_utf8(out.data).unwrap();
    let replies: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), 51);
    assert_eq!(replies[50], json!({"t": "ok", "id": 49, "v": "É49"}));
}

#[test]
fn messages_larger_than_the_read_buffer_work() {
    let mut pool = start(demo);
    pool.init(Value::Null);
    let big = "ab\"\n\u{2028}é".repeat(300_000); // ~3 MB of text, more with escapes
    let mut writer = pool.stream.try_clone().unwrap();
    let line = format!(
        "{}\n",
        json!({"t": "call", "id": 1, "fn": "concat", "args": [big, "!"]})
    );
    let feeder = thread::spawn(move || writer.write_all(line.as_bytes()).unwrap());
    let reply = pool.recv();
    feeder.join().unwrap();
    assert_eq!(reply["v"].as_str().unwrap(), format!("{big}!"));
    assert_eq!(
        pool.ask(2, Some("add"), json!([1, 2])),
        json!({"t": "ok", "id": 2, "v": 3.0})
    );
    pool.finish().unwrap();
}

#[test]
fn a_line_over_max_message_is_a_protocol_error() {
    let input = format!("{{\"t\":\"init\",\"data\":\"{}\"}}\n", "x".repeat(2000));
    let result = Worker::new()
        .max_message(1000)
        .serve(input.as_bytes(), Vec::new());
    match result {
        Err(ServeError::Frame(FrameError::TooLarge { limit: 1000 })) => {}
        other => panic!("{other:?}"),
    }
}

fn serve_text(input: &str) -> (Result<(), ServeError>, String) {
    let mut out = Vec::new();
    let result = demo().serve(input.as_bytes(), &mut out);
    (result, String::from_utf8(out).unwrap())
}

#[test]
fn malformed_frames_stop_serving_with_a_protocol_error() {
    let init = "{\"t\":\"init\",\"data\":null}\n";
    type Check = fn(&ServeError) -> bool;
    let cases: [(&str, Check); 8] = [
        ("not json\n", |e| {
            matches!(e, ServeError::Frame(FrameError::InvalidJson(_)))
        }),
        ("[1,2]\n", |e| {
            matches!(e, ServeError::Frame(FrameError::NotAnObject))
        }),
        ("{\"id\":1}\n", |e| {
            matches!(e, ServeError::Frame(FrameError::MissingType))
        }),
        ("{\"t\":\"hello\"}\n", |e| {
            matches!(e, ServeError::Frame(FrameError::UnknownType(_)))
        }),
        ("{\"t\":\"call\",\"args\":[]}\n", |e| {
            matches!(e, ServeError::Frame(FrameError::MissingId))
        }),
        ("{\"t\":\"call\",\"id\":4294967296,\"args\":[]}\n", |e| {
            matches!(e, ServeError::Frame(FrameError::InvalidId(_)))
        }),
        ("{\"t\":\"call\",\"id\":1,\"args\":{}}\n", |e| {
            matches!(e, ServeError::Frame(FrameError::ArgsNotArray(_)))
        }),
        (init, |e| matches!(e, ServeError::DuplicateInit)),
    ];
    for (line, check) in cases {
        // A valid call before the bad line is still answered.
        let input =
            format!("{init}{{\"t\":\"call\",\"id\":1,\"fn\":null,\"args\":[\"a\"]}}\n{line}");
        let (result, out) = serve_text(&input);
        let e = result.expect_err(line);
        assert!(check(&e), "{line:?} gave {e:?}");
        assert!(e.is_protocol_error());
        assert!(!e.to_string().is_empty());
        // The loop stopped at the bad line, after sending the replies it had made.
        assert_eq!(
            out, "{\"t\":\"ready\"}\n{\"t\":\"ok\",\"id\":1,\"v\":\"A\"}\n",
            "{line:?}"
        );
    }
    let (result, _) = serve_text("{\"t\":\"call\",\"id\":1,\"fn\":null,\"args\":[\"a\"]}\n");
    assert!(matches!(result, Err(ServeError::CallBeforeInit)));
}

#[test]
fn a_reply_over_max_message_fails_its_own_call_and_the_worker_goes_on() {
    const MAX: usize = 4096;
    let mut pool = start(|| {
        Worker::new()
            .max_message(MAX)
            .function("big", |(n,): (usize,)| Ok::<_, Error>("b".repeat(n)))
            .function("fail_big", |(n,): (usize,)| {
                Err::<(), _>(Error::new("m".repeat(n)).code("E_HUGE"))
            })
            .function_ctx("progress_big", |ctx: &mut Ctx, (n,): (usize,)| {
                let e = ctx.progress("p".repeat(n)).unwrap_err();
                ctx.progress("small")?;
                let e2 = ctx.emit("big", "e".repeat(n)).unwrap_err();
                Ok::<_, Error>(json!([e.to_json(), e2.to_json()]))
            })
    });
    pool.init(Value::Null);
    // {"t":"ok","id":1,"v":"…"}: 24 bytes around the characters.
    let fits = MAX - 24;
    let reply = pool.ask(1, Some("big"), json!([fits]));
    assert_eq!(reply["v"].as_str().map(str::len), Some(fits));
    let reply = pool.ask(1, Some("big"), json!([fits + 1]));
    let e = err_of(&reply);
    assert_eq!(e["code"], "ERR_MESSAGE_TOO_LARGE");
    // The pool rebuilds it as a PoolError, as its own ERR_MESSAGE_TOO_LARGE for arguments.
    assert_eq!(e["name"], "PoolError");
    assert_eq!(e["bytes"], json!(MAX + 1));
    assert_eq!(e["maxMessage"], json!(MAX));
    // An error too large to send: replaced, with the start of its message.
    let reply = pool.ask(2, Some("fail_big"), json!([MAX]));
    let e = err_of(&reply);
    assert_eq!(e["code"], "ERR_MESSAGE_TOO_LARGE");
    assert!(e["message"].as_str().unwrap().contains(": mmmm"), "{e}");
    let reply = pool.ask(3, Some("fail_big"), json!([10]));
    assert_eq!(err_of(&reply)["code"], "E_HUGE");
    // Progress and events over the limit are not sent; the call goes on.
    pool.call(4, Some("progress_big"), json!([MAX]));
    assert_eq!(pool.recv(), json!({"t": "progress", "id": 4, "v": "small"}));
    let reply = pool.recv();
    assert_eq!(reply["t"], "ok");
    assert_eq!(reply["v"][0]["code"], "ERR_MESSAGE_TOO_LARGE");
    assert_eq!(reply["v"][1]["code"], "ERR_MESSAGE_TOO_LARGE");
    // Still serving.
    let reply = pool.ask(5, Some("big"), json!([3]));
    assert_eq!(reply, json!({"t": "ok", "id": 5, "v": "bbb"}));
    pool.finish().unwrap();
}

#[test]
fn a_call_with_a_traceparent_shows_it_in_ctx_and_one_without_shows_none() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut pool = start(|| {
        Worker::new().function_ctx("tp", |ctx: &mut Ctx, (): ()| {
            Ok::<_, Error>(ctx.traceparent().map(str::to_owned))
        })
    });
    assert_eq!(pool.init(json!(null)), json!({"t": "ready"}));
    pool.send(json!({"t": "call", "id": 1, "fn": "tp", "args": [], "traceparent": tp}));
    pool.call(2, Some("tp"), json!([]));
    assert_eq!(pool.recv(), json!({"t": "ok", "id": 1, "v": tp}));
    assert_eq!(pool.recv(), json!({"t": "ok", "id": 2, "v": null}));
    pool.finish().unwrap();
}
