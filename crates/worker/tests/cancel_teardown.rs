//! `cancel` and `stop` (docs/PROTOCOL.md; issue 14, points 2 and 11): a call cancelled before it
//! started (its cancel was in the same read) is answered without running, and `stop` runs the
//! teardown and ends serving. (`Ctx::cancelled` seeing a cancel while the call runs needs a
//! real channel to peek at: `__test__/pool.cancel-native.test.mjs`.)

use std::cell::Cell;
use std::rc::Rc;

use comrade_worker::{Ctx, Error, Worker};
use serde_json::Value;

fn replies(out: &[u8]) -> Vec<Value> {
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

const INIT: &str = "{\"t\":\"init\",\"data\":null}\n";

#[test]
fn calls_cancelled_before_they_started_are_answered_without_running() {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let input = format!(
        "{INIT}{{\"t\":\"call\",\"id\":1,\"fn\":\"watch\",\"args\":[]}}\n\
         {{\"t\":\"call\",\"id\":2,\"fn\":\"watch\",\"args\":[]}}\n\
         {{\"t\":\"cancel\",\"id\":1}}\n{{\"t\":\"cancel\",\"id\":2}}\n\
         {{\"t\":\"call\",\"id\":3,\"fn\":\"watch\",\"args\":[]}}\n"
    );
    let mut out = Vec::new();
    Worker::new()
        .function_ctx("watch", move |ctx: &mut Ctx, (): ()| {
            r.set(r.get() + 1);
            if ctx.cancelled() {
                return Err(Error::aborted());
            }
            Ok::<_, Error>("done")
        })
        .serve(input.as_bytes(), &mut out)
        .unwrap();
    let r = replies(&out);
    assert_eq!(r.len(), 4, "{r:?}");
    assert_eq!(r[1]["id"], 1);
    assert_eq!(r[1]["e"]["name"], "AbortError");
    assert_eq!(r[1]["e"]["code"], "ABORT_ERR");
    assert_eq!(r[2]["id"], 2);
    assert_eq!(r[2]["e"]["name"], "AbortError");
    // Call 3 was not cancelled (the cancels read before it were forgotten once handled).
    assert_eq!(r[3], serde_json::json!({"t": "ok", "id": 3, "v": "done"}));
    assert_eq!(runs.get(), 1, "calls 1 and 2 never ran");
}

#[test]
fn stop_runs_the_teardown_after_the_answers_and_ends_serving() {
    let torn = Rc::new(Cell::new(0));
    let t = torn.clone();
    let input = format!(
        "{INIT}{{\"t\":\"call\",\"id\":1,\"fn\":\"f\",\"args\":[]}}\n{{\"t\":\"stop\"}}\n\
         {{\"t\":\"call\",\"id\":2,\"fn\":\"f\",\"args\":[]}}\n"
    );
    let mut out = Vec::new();
    Worker::new()
        .function("f", |(): ()| Ok::<_, Error>(1))
        .teardown(move || t.set(t.get() + 1))
        .serve(input.as_bytes(), &mut out)
        .unwrap();
    assert_eq!(torn.get(), 1);
    let r = replies(&out);
    assert_eq!(r.len(), 2, "nothing is served after stop: {r:?}");
    assert_eq!(r[1]["id"], 1);
}

#[test]
fn a_panicking_teardown_still_ends_serving_cleanly() {
    let input = format!("{INIT}{{\"t\":\"stop\"}}\n");
    let mut out = Vec::new();
    let result = Worker::new()
        .function("f", |(): ()| Ok::<_, Error>(1))
        .teardown(|| panic!("teardown failed"))
        .serve(input.as_bytes(), &mut out);
    assert!(result.is_ok());
}
