//! The complete exchange in `docs/PROTOCOL.md`, served by a real `Worker`: the pool's lines
//! of the document go in, and the worker's lines of the document come out (in the order this
//! one-call-at-a-time worker writes them), byte for byte, error object included; its `stop`
//! ends serving.

use comrade_worker::{Ctx, Error, Worker};
use serde_json::json;

const DOC: &str = include_str!("../../../docs/PROTOCOL.md");

/// The exchange's lines sent by the pool and by the worker.
fn exchange() -> (Vec<&'static str>, Vec<&'static str>) {
    let section = DOC.split("## A complete exchange").nth(1).unwrap();
    let block = section.split("```").nth(1).unwrap();
    let (mut pool, mut worker) = (Vec::new(), Vec::new());
    for l in block.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(m) = l.strip_prefix("pool → worker") {
            pool.push(m.trim());
        } else if let Some(m) = l.strip_prefix("worker → pool") {
            worker.push(m.trim());
        } else {
            panic!("not an exchange line: {l:?}");
        }
    }
    (pool, worker)
}

#[test]
fn the_documented_exchange_is_what_the_worker_speaks() {
    let (pool, worker) = exchange();
    let input: String = pool.iter().map(|l| format!("{l}\n")).collect();
    let mut output = Vec::new();
    Worker::new()
        .init(|data: serde_json::Value| {
            assert_eq!(data, json!({"salt": "x"}));
            Ok(())
        })
        .function_ctx("add", |ctx: &mut Ctx, (a, b): (i64, i64)| {
            ctx.progress(0.5)?;
            ctx.emit("cache", json!({"size": 12}))?;
            Ok::<_, Error>(a + b)
        })
        .default_function(|(s,): (String,)| Ok::<_, Error>(s.to_uppercase()))
        .on_message(|message: serde_json::Value| {
            assert_eq!(message, json!({"reload": "v2"}));
            Ok(())
        })
        .serve(input.as_bytes(), &mut output)
        .unwrap();
    let output = String::from_utf8(output).unwrap();
    assert!(output.ends_with('\n'));
    let written: Vec<&str> = output.lines().collect();
    assert_eq!(
        written,
        [
            worker[0], // ready
            worker[2], // progress of call 1
            worker[5], // the event call 1 emits
            worker[3], // ok 1
            worker[1], // ok 2
            worker[4], // err 3
            worker[6], // err 4: cancelled before it started (the cancel came in the same read)
            worker[7], // ack of message 1
        ]
    );
    assert_eq!(worker.len(), 8);
}
