//! Binary attachments (protocol version 3) through the serving loop: arguments whose type asks
//! for bytes get the attachments' bytes, results that serialize bytes send them as attachments,
//! and calls without attachments are read and answered as before.

use std::collections::{BTreeMap, HashMap};

use comrade_protocol::{push_bin_prefix, LineDecoder};
use comrade_worker::serde_bytes::{self, ByteBuf};
use comrade_worker::{BinError, Ctx, Error, ServeError, Worker};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A call line with these attachments, as the pool writes it.
fn call(id: u32, function: &str, args: &str, bins: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    push_bin_prefix(&mut out, bins.iter().map(|b| b.len()));
    out.extend_from_slice(
        format!(r#""t":"call","id":{id},"fn":"{function}","args":{args}}}"#).as_bytes(),
    );
    out.push(b'\n');
    for b in bins {
        out.extend_from_slice(b);
    }
    out.push(b'\n');
    out
}

fn plain_call(id: u32, function: &str, args: &str) -> Vec<u8> {
    format!("{{\"t\":\"call\",\"id\":{id},\"fn\":\"{function}\",\"args\":{args}}}\n").into_bytes()
}

/// The replies in `output`: each line as JSON with its attachments (after `ready`).
fn replies(output: &[u8]) -> Vec<(Value, Vec<Vec<u8>>)> {
    let mut d = LineDecoder::new(1 << 30);
    d.push(output).unwrap();
    let mut got = Vec::new();
    while let Some(m) = d.next_message().unwrap() {
        let v: Value = serde_json::from_slice(m.line).unwrap();
        let bins = m
            .attachments
            .map(|a| a.iter().map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        got.push((v, bins));
    }
    assert_eq!(d.pending(), 0, "a message was cut short");
    assert_eq!(got[0].0, json!({"t": "ready"}));
    got.remove(0);
    got
}

fn serve(worker: Worker, calls: &[Vec<u8>]) -> Result<Vec<u8>, ServeError> {
    let mut input = b"{\"t\":\"init\",\"data\":null}\n".to_vec();
    for c in calls {
        input.extend_from_slice(c);
    }
    let mut output = Vec::new();
    worker.serve(&input[..], &mut output).map(|()| output)
}

#[derive(Deserialize, Serialize)]
struct Packet {
    name: String,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    parts: Vec<ByteBuf>,
    maybe: Option<ByteBuf>,
}

#[derive(Deserialize, Serialize)]
enum Shape {
    Blob(ByteBuf),
    Pair { left: ByteBuf, right: u8 },
}

fn worker() -> Worker {
    Worker::new()
        .function("echo", |(b,): (ByteBuf,)| Ok::<_, Error>(b))
        .function("len", |(b,): (ByteBuf,)| Ok::<_, Error>(b.len()))
        .function("plain_vec", |(v,): (Vec<u8>,)| Ok::<_, Error>(v.len()))
        .function("packet", |(p,): (Packet,)| {
            Ok::<_, Error>(Packet {
                name: p.name.to_uppercase(),
                body: p.body.iter().rev().copied().collect(),
                parts: p.parts,
                maybe: p.maybe,
            })
        })
        .function("shape", |(s,): (Shape,)| Ok::<_, Error>(s))
        .function("keys", |(m,): (HashMap<u32, ByteBuf>,)| {
            Ok::<_, Error>(m.into_iter().collect::<BTreeMap<_, _>>())
        })
        .function("value", |(v,): (Value,)| Ok::<_, Error>(v))
        .function("make", |(n, fill): (usize, u8)| {
            Ok::<_, Error>(json_with_bytes(ByteBuf::from(vec![fill; n])))
        })
        .function_ctx("progress_bytes", |ctx: &mut Ctx, (): ()| {
            ctx.progress(ByteBuf::from(vec![1u8]))?;
            Ok::<_, Error>(())
        })
        .function("add", |(a, b): (f64, f64)| Ok::<_, Error>(a + b))
}

#[derive(Serialize)]
struct Made {
    deep: Vec<BTreeMap<&'static str, ByteBuf>>,
    empty: ByteBuf,
}

fn json_with_bytes(b: ByteBuf) -> Made {
    Made {
        deep: vec![BTreeMap::from([("data", b)])],
        empty: ByteBuf::new(),
    }
}

#[test]
fn bytes_arrive_at_any_depth_and_go_back_as_attachments() {
    let binary = [0u8, 10, 255, b'\n', 13];
    let out = serve(
        worker(),
        &[
            call(1, "echo", r#"[{"$b":0}]"#, &[&binary]),
            call(2, "echo", r#"[{"$b":0}]"#, &[b""]),
            call(3, "len", r#"[{"$b":1}]"#, &[b"skip", b"abc"]),
            call(4, "plain_vec", r#"[{"$b":0}]"#, &[b"four"]),
            call(
                5,
                "packet",
                r#"[{"name":"p","body":{"$b":0},"parts":[{"$b":1},{"$b":2}],"maybe":{"$b":3}}]"#,
                &[b"xyz", b"1", b"", b"m"],
            ),
            call(6, "shape", r#"[{"Blob":{"$b":0}}]"#, &[b"b"]),
            call(
                7,
                "shape",
                r#"[{"Pair":{"left":{"$b":0},"right":2}}]"#,
                &[b"l"],
            ),
            call(
                8,
                "keys",
                r#"[{"7":{"$b":0},"3":{"$b":1}}]"#,
                &[b"seven", b"three"],
            ),
        ],
    )
    .unwrap();
    let got = replies(&out);
    let ok = |id: u32, v: Value| json!({"b": null, "t": "ok", "id": id, "v": v});
    let strip = |(mut v, b): (Value, Vec<Vec<u8>>)| {
        if v.get("b").is_some() {
            v["b"] = Value::Null;
        }
        (v, b)
    };
    let got: Vec<_> = got.into_iter().map(strip).collect();
    assert_eq!(got[0], (ok(1, json!({"$b": 0})), vec![binary.to_vec()]));
    assert_eq!(got[1], (ok(2, json!({"$b": 0})), vec![vec![]]));
    assert_eq!(got[2], (json!({"t": "ok", "id": 3, "v": 3}), vec![]));
    assert_eq!(got[3], (json!({"t": "ok", "id": 4, "v": 4}), vec![]));
    assert_eq!(
        got[4],
        (
            ok(
                5,
                json!({"name": "P", "body": {"$b": 0}, "parts": [{"$b": 1}, {"$b": 2}], "maybe": {"$b": 3}})
            ),
            vec![b"zyx".to_vec(), b"1".to_vec(), vec![], b"m".to_vec()]
        )
    );
    assert_eq!(
        got[5],
        (ok(6, json!({"Blob": {"$b": 0}})), vec![b"b".to_vec()])
    );
    assert_eq!(
        got[6],
        (
            ok(7, json!({"Pair": {"left": {"$b": 0}, "right": 2}})),
            vec![b"l".to_vec()]
        )
    );
    assert_eq!(
        got[7],
        (
            ok(8, json!({"3": {"$b": 0}, "7": {"$b": 1}})),
            vec![b"three".to_vec(), b"seven".to_vec()]
        )
    );
}

#[test]
fn the_line_declares_its_attachments_first() {
    let out = serve(worker(), &[call(1, "echo", r#"[{"$b":0}]"#, &[b"hi"])]).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(
        text,
        "{\"t\":\"ready\"}\n{\"b\":[2],\"t\":\"ok\",\"id\":1,\"v\":{\"$b\":0}}\nhi\n"
    );
}

#[test]
fn large_results_go_out_whole_and_in_order() {
    // Over the size that is written apart from the batch, between two small replies.
    let n = 3 << 20;
    let out = serve(
        worker(),
        &[
            plain_call(1, "add", "[1,2]"),
            plain_call(2, "make", &format!("[{n},7]")),
            plain_call(3, "make", "[5,1]"),
            plain_call(4, "add", "[2,2]"),
        ],
    )
    .unwrap();
    let got = replies(&out);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].0["v"], json!(3.0));
    assert_eq!(
        got[1].0["v"],
        json!({"deep": [{"data": {"$b": 0}}], "empty": {"$b": 1}})
    );
    assert_eq!(got[1].1.len(), 2);
    assert_eq!(got[1].1[0].len(), n);
    assert!(got[1].1[0].iter().all(|&b| b == 7));
    assert!(got[1].1[1].is_empty());
    assert_eq!(got[2].1, vec![vec![1u8; 5], vec![]]);
    assert_eq!(got[3].0["v"], json!(4.0));
}

#[test]
fn a_result_with_more_bytes_than_the_pool_accepts_fails_its_call() {
    let out = serve(
        worker().max_message(1000),
        &[
            plain_call(1, "make", "[1001,0]"),
            plain_call(2, "make", "[1000,0]"),
        ],
    )
    .unwrap();
    let got = replies(&out);
    assert_eq!(got[0].0["t"], "err");
    assert_eq!(got[0].0["e"]["code"], "ERR_MESSAGE_TOO_LARGE");
    assert_eq!(got[0].0["e"]["bytes"], 1001);
    assert_eq!(got[1].0["t"], "ok");
    assert_eq!(got[1].1[0].len(), 1000);
}

#[test]
fn bytes_where_they_do_not_fit_are_clear_errors() {
    let out = serve(
        worker(),
        &[
            // A `Value` cannot hold bytes.
            call(1, "value", r#"[{"$b":0}]"#, &[b"x"]),
            // Not references: an index out of range, a second member, a string index.
            call(
                2,
                "value",
                r#"[[{"$b":1},{"$b":0,"n":1},{"$b":"0"}]]"#,
                &[b"x"],
            ),
            // A number where bytes are wanted, in a call with attachments.
            call(3, "echo", r#"[5]"#, &[b"x"]),
            plain_call(4, "progress_bytes", "[]"),
        ],
    )
    .unwrap();
    let got = replies(&out);
    assert_eq!(got[0].0["e"]["code"], "ERR_INVALID_ARGS");
    assert!(
        got[0].0["e"]["message"]
            .as_str()
            .unwrap()
            .contains("byte array"),
        "{}",
        got[0].0
    );
    assert_eq!(
        got[1].0["v"],
        json!([{"$b": 1}, {"$b": 0, "n": 1}, {"$b": "0"}])
    );
    assert_eq!(got[2].0["e"]["code"], "ERR_INVALID_ARGS");
    assert_eq!(got[3].0["e"]["code"], "ERR_SERIALIZE");
    assert!(got[3].0["e"]["message"]
        .as_str()
        .unwrap()
        .contains("a progress value cannot carry binary data"));
}

#[test]
fn misframed_attachments_from_the_pool_stop_the_worker() {
    let mut bad = call(1, "echo", r#"[{"$b":0}]"#, &[b"abc"]);
    // One byte more than declared: the byte after the attachments is not `\n`.
    bad.insert(bad.len() - 1, b'!');
    match serve(worker(), &[bad]) {
        Err(e @ ServeError::Attachments(_)) => {
            assert!(e.is_protocol_error());
            assert!(matches!(e, ServeError::Attachments(b) if *b == BinError::Unterminated));
        }
        other => panic!("{other:?}"),
    }
    let mut stop = Vec::new();
    push_bin_prefix(&mut stop, [1]);
    stop.extend_from_slice(b"\"t\":\"stop\"}\nx\n");
    match serve(worker(), &[stop]) {
        Err(e @ ServeError::MisplacedAttachments) => assert!(e.is_protocol_error()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn calls_without_attachments_read_and_answer_as_before() {
    let out = serve(
        worker(),
        &[
            plain_call(1, "value", r#"[{"$b":0}]"#),
            plain_call(2, "add", "[1,2]"),
        ],
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"t\":\"ready\"}\n{\"t\":\"ok\",\"id\":1,\"v\":{\"$b\":0}}\n{\"t\":\"ok\",\"id\":2,\"v\":3.0}\n"
    );
}
