//! Every message both ways: the pool's encoders read back by the worker's decoder, the
//! worker's encoders read back by the pool's, each checked byte for byte against the wire text
//! in `docs/PROTOCOL.md` (its message tables and its complete exchange), so a change to either
//! side or to the document fails here.

use comrade_protocol::{
    decode_pool_message, decode_worker_message, encode_ack, encode_ack_err, encode_call,
    encode_call_traced, encode_cancel, encode_err, encode_event, encode_fatal, encode_init,
    encode_message, encode_ok, encode_ok_empty, encode_progress, encode_ready, encode_retire,
    encode_stop, PoolMessage, WorkerMessage,
};
use serde_json::json;

const DOC: &str = include_str!("../../../docs/PROTOCOL.md");

/// The message templates of the document's tables (`| \`{"t":…}\` | meaning |`), in order.
fn templates() -> Vec<String> {
    DOC.lines()
        .filter_map(|l| l.strip_prefix("| `{"))
        .map(|rest| format!("{{{}", &rest[..rest.find('`').unwrap()]))
        .collect()
}

/// The lines of "A complete exchange": (true when the pool sends it, the message).
fn exchange() -> Vec<(bool, &'static str)> {
    let section = DOC.split("## A complete exchange").nth(1).unwrap();
    let block = section.split("```").nth(1).unwrap();
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            if let Some(m) = l.strip_prefix("pool → worker") {
                (true, m.trim())
            } else if let Some(m) = l.strip_prefix("worker → pool") {
                (false, m.trim())
            } else {
                panic!("not an exchange line: {l:?}")
            }
        })
        .collect()
}

/// A template with its placeholders (`N`, `V`, … after a colon) filled in.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = template.to_owned();
    for (placeholder, value) in values {
        text = text.replace(&format!(":{placeholder}"), &format!(":{value}"));
    }
    text
}

/// A worker's line as the pool decodes it: (t, id, v, e) with values as raw text.
fn at_pool(line: &[u8]) -> (String, Option<u64>, Option<String>, Option<String>) {
    let text = std::str::from_utf8(line.strip_suffix(b"\n").expect("a whole line")).unwrap();
    assert!(!text.contains('\n'));
    let WorkerMessage { t, id, v, e } = decode_worker_message(text).unwrap();
    (
        t.into_owned(),
        id,
        v.map(|v| v.get().to_owned()),
        e.map(|e| e.get().to_owned()),
    )
}

/// A pool's line as the worker decodes it.
fn at_worker(line: &[u8]) -> PoolMessage<'_> {
    assert!(!line.contains(&b'\n'));
    decode_pool_message(line).unwrap()
}

fn call_parts(m: PoolMessage<'_>) -> (u32, Option<String>, String) {
    match m {
        PoolMessage::Call {
            id, function, args, ..
        } => (id, function.map(|f| f.into_owned()), args.get().to_owned()),
        other => panic!("not a call: {other:?}"),
    }
}

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

#[test]
fn the_message_tables_are_what_the_encoders_write() {
    let mut t = templates();
    assert_eq!(t.len(), 14, "{t:?}");
    let mut out = Vec::new();

    // The call with the caller's traceparent, right after the plain call in the table.
    let traced = t.remove(2);
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    encode_call_traced(&mut out, 7, br#""add""#, b"2,3", tp);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        fill(
            &traced,
            &[
                ("N", "7"),
                ("F", r#""add""#),
                ("A", "[2,3]"),
                ("T", &format!("\"{tp}\""))
            ]
        )
    );
    match at_worker(&out) {
        PoolMessage::Call { traceparent, .. } => assert_eq!(traceparent, Some(tp)),
        other => panic!("{other:?}"),
    }
    out.clear();

    // Pool → worker: no `\n` (the engine adds it when it writes the line).
    encode_init(&mut out, br#"{"salt":"x"}"#);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        fill(&t[0], &[("D", r#"{"salt":"x"}"#)])
    );
    match at_worker(&out) {
        PoolMessage::Init { data } => assert_eq!(data.get(), r#"{"salt":"x"}"#),
        other => panic!("{other:?}"),
    }

    out.clear();
    encode_call(&mut out, 7, br#""add""#, b"2,3");
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        fill(&t[1], &[("N", "7"), ("F", r#""add""#), ("A", "[2,3]")])
    );
    assert_eq!(
        call_parts(at_worker(&out)),
        (7, s("add"), "[2,3]".to_owned())
    );

    out.clear();
    encode_cancel(&mut out, 7);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        fill(&t[2], &[("N", "7")])
    );
    assert!(matches!(at_worker(&out), PoolMessage::Cancel { id: 7 }));

    out.clear();
    encode_message(&mut out, 7, br#"{"reload":1}"#);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        fill(&t[3], &[("N", "7"), ("D", r#"{"reload":1}"#)])
    );
    match at_worker(&out) {
        PoolMessage::Message { id, data } => assert_eq!((id, data.get()), (7, r#"{"reload":1}"#)),
        other => panic!("{other:?}"),
    }

    out.clear();
    encode_stop(&mut out);
    assert_eq!(String::from_utf8(out.clone()).unwrap(), t[4]);
    assert!(matches!(at_worker(&out), PoolMessage::Stop));

    // Worker → pool: whole lines.
    let line = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        f(&mut out);
        out
    };
    let text = |line: &[u8]| String::from_utf8(line.to_vec()).unwrap();

    let ready = line(&|o| encode_ready(o));
    assert_eq!(text(&ready), format!("{}\n", t[5]));
    assert_eq!(at_pool(&ready), ("ready".into(), None, None, None));

    let ok = line(&|o| encode_ok(o, 7, &json!([1, "two"])).unwrap());
    assert_eq!(
        text(&ok),
        format!("{}\n", fill(&t[6], &[("N", "7"), ("V", r#"[1,"two"]"#)]))
    );
    assert_eq!(
        at_pool(&ok),
        ("ok".into(), Some(7), s(r#"[1,"two"]"#), None)
    );

    // `ok` without `v`: the call returned nothing; with `"v":null` it returned null.
    let empty = line(&|o| encode_ok_empty(o, 9));
    assert_eq!(text(&empty), "{\"t\":\"ok\",\"id\":9}\n");
    assert_eq!(at_pool(&empty), ("ok".into(), Some(9), None, None));
    let null = line(&|o| encode_ok(o, 9, &()).unwrap());
    assert_eq!(at_pool(&null), ("ok".into(), Some(9), s("null"), None));

    let e = r#"{"name":"TypeError","message":"bad input","code":"E_BAD"}"#;
    let err = line(&|o| encode_err(o, 3, e.as_bytes()));
    assert_eq!(
        text(&err),
        format!("{}\n", fill(&t[7], &[("N", "3"), ("E", e)]))
    );
    assert_eq!(at_pool(&err), ("err".into(), Some(3), None, s(e)));

    let progress = line(&|o| encode_progress(o, 1, &0.5).unwrap());
    assert_eq!(
        text(&progress),
        format!("{}\n", fill(&t[8], &[("N", "1"), ("V", "0.5")]))
    );
    assert_eq!(
        at_pool(&progress),
        ("progress".into(), Some(1), s("0.5"), None)
    );

    let event = line(&|o| encode_event(o, "cache", &json!({"size": 12})).unwrap());
    assert_eq!(
        text(&event),
        format!(
            "{}\n",
            fill(&t[9], &[("S", r#""cache""#), ("V", r#"{"size":12}"#)])
        )
    );
    // The pool passes an event on as its whole line.
    assert_eq!(at_pool(&event), ("event".into(), None, None, None));

    let retire = line(&|o| encode_retire(o));
    assert_eq!(text(&retire), format!("{}\n", t[10]));
    assert_eq!(at_pool(&retire), ("retire".into(), None, None, None));

    let e = r#"{"name":"Error","message":"init threw"}"#;
    let fatal = line(&|o| encode_fatal(o, e.as_bytes()));
    assert_eq!(text(&fatal), format!("{}\n", fill(&t[11], &[("E", e)])));
    assert_eq!(at_pool(&fatal), ("fatal".into(), None, None, s(e)));

    let ack = line(&|o| encode_ack(o, 7));
    assert_eq!(text(&ack), format!("{}\n", fill(&t[12], &[("N", "7")])));
    assert_eq!(at_pool(&ack), ("ack".into(), Some(7), None, None));
    let failed = line(&|o| encode_ack_err(o, 7, br#"{"message":"no"}"#));
    assert_eq!(
        at_pool(&failed),
        ("ack".into(), Some(7), None, s(r#"{"message":"no"}"#))
    );
}

#[test]
fn the_complete_exchange_is_what_the_encoders_write() {
    let unknown =
        r#"{"name":"Error","message":"no function named \"nope\"","code":"ERR_UNKNOWN_FUNCTION"}"#;
    let cancelled = r#"{"name":"AbortError","message":"the call was cancelled by the pool","code":"ABORT_ERR"}"#;
    // What each side encodes, in the document's order, and what the other side reads.
    type Encode = Box<dyn Fn(&mut Vec<u8>)>;
    let steps: Vec<(bool, Encode)> = vec![
        (true, Box::new(|o| encode_init(o, br#"{"salt":"x"}"#))),
        (false, Box::new(encode_ready)),
        (true, Box::new(|o| encode_call(o, 1, br#""add""#, b"2,3"))),
        (true, Box::new(|o| encode_call(o, 2, b"null", br#""hi""#))),
        (false, Box::new(|o| encode_ok(o, 2, "HI").unwrap())),
        (false, Box::new(|o| encode_progress(o, 1, &0.5).unwrap())),
        (false, Box::new(|o| encode_ok(o, 1, &5).unwrap())),
        (true, Box::new(|o| encode_call(o, 3, br#""nope""#, b""))),
        (
            false,
            Box::new(move |o| encode_err(o, 3, unknown.as_bytes())),
        ),
        (
            false,
            Box::new(|o| encode_event(o, "cache", &json!({"size": 12})).unwrap()),
        ),
        (true, Box::new(|o| encode_call(o, 4, br#""slow""#, b""))),
        (true, Box::new(|o| encode_cancel(o, 4))),
        (
            false,
            Box::new(move |o| encode_err(o, 4, cancelled.as_bytes())),
        ),
        (
            true,
            Box::new(|o| encode_message(o, 1, br#"{"reload":"v2"}"#)),
        ),
        (false, Box::new(|o| encode_ack(o, 1))),
        (true, Box::new(encode_stop)),
    ];
    let doc = exchange();
    assert_eq!(doc.len(), steps.len(), "{doc:?}");
    let mut read = Vec::new();
    for ((by_pool, encode), (doc_by_pool, doc_line)) in steps.iter().zip(&doc) {
        assert_eq!(by_pool, doc_by_pool, "{doc_line}");
        let mut out = Vec::new();
        encode(&mut out);
        if *by_pool {
            assert_eq!(std::str::from_utf8(&out).unwrap(), *doc_line);
            read.push(match at_worker(&out) {
                PoolMessage::Init { data } => format!("init {}", data.get()),
                PoolMessage::Cancel { id } => format!("cancel {id}"),
                PoolMessage::Stop => "stop".to_owned(),
                PoolMessage::Message { id, data } => format!("message {id} {}", data.get()),
                call => format!("{:?}", call_parts(call)),
            });
        } else {
            assert_eq!(std::str::from_utf8(&out).unwrap(), format!("{doc_line}\n"));
            read.push(format!("{:?}", at_pool(&out)));
        }
    }
    let unknown = unknown.to_owned();
    assert_eq!(
        read,
        [
            r#"init {"salt":"x"}"#.to_owned(),
            format!(
                "{:?}",
                (
                    "ready".to_owned(),
                    None::<u64>,
                    None::<String>,
                    None::<String>
                )
            ),
            format!("{:?}", (1u32, s("add"), "[2,3]".to_owned())),
            format!("{:?}", (2u32, None::<String>, r#"["hi"]"#.to_owned())),
            format!(
                "{:?}",
                ("ok".to_owned(), Some(2u64), s(r#""HI""#), None::<String>)
            ),
            format!(
                "{:?}",
                ("progress".to_owned(), Some(1u64), s("0.5"), None::<String>)
            ),
            format!(
                "{:?}",
                ("ok".to_owned(), Some(1u64), s("5"), None::<String>)
            ),
            format!("{:?}", (3u32, s("nope"), "[]".to_owned())),
            format!(
                "{:?}",
                ("err".to_owned(), Some(3u64), None::<String>, Some(unknown))
            ),
            format!(
                "{:?}",
                (
                    "event".to_owned(),
                    None::<u64>,
                    None::<String>,
                    None::<String>
                )
            ),
            format!("{:?}", (4u32, s("slow"), "[]".to_owned())),
            "cancel 4".to_owned(),
            format!(
                "{:?}",
                (
                    "err".to_owned(),
                    Some(4u64),
                    None::<String>,
                    Some(cancelled.to_owned())
                )
            ),
            r#"message 1 {"reload":"v2"}"#.to_owned(),
            format!(
                "{:?}",
                ("ack".to_owned(), Some(1u64), None::<String>, None::<String>)
            ),
            "stop".to_owned(),
        ]
    );
}

/// The example of "Binary attachments": the pool's call frame is what `push_bin_prefix` and
/// `encode_call` write, and both messages read back whole with their attachments.
#[test]
fn the_binary_attachment_example_is_what_the_encoders_write_and_the_decoder_reads() {
    use comrade_protocol::{push_bin_prefix, LineDecoder};
    let section = DOC.split("## Binary attachments").nth(1).unwrap();
    let block = section.split("```").nth(3).unwrap();
    let wire: Vec<Vec<u8>> = block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let m = l.split_once("   ").unwrap().1.trim();
            m.replace("\\n", "\n").into_bytes()
        })
        .collect();
    assert_eq!(wire.len(), 2);
    // The pool's call, as the engine frames it (the final `\n` is added when it is written).
    let mut call = Vec::new();
    encode_call(&mut call, 7, br#""pack""#, br#""x",{"$b":0}"#);
    let mut frame = Vec::new();
    push_bin_prefix(&mut frame, [2]);
    frame.extend_from_slice(&call[1..]);
    frame.extend_from_slice(b"\nhi\n");
    assert_eq!(frame, wire[0]);
    let mut d = LineDecoder::new(1 << 20);
    d.push(&wire[0]).unwrap();
    d.push(&wire[1]).unwrap();
    let m = d.next_message().unwrap().unwrap();
    assert!(decode_pool_message(m.line).is_ok());
    assert_eq!(m.attachments.unwrap().iter().collect::<Vec<_>>(), [b"hi"]);
    let m = d.next_message().unwrap().unwrap();
    let text = std::str::from_utf8(m.line).unwrap();
    let msg = decode_worker_message(text).unwrap();
    assert_eq!((&*msg.t, msg.id), ("ok", Some(7)));
    assert_eq!(msg.v.unwrap().get(), r#"{"out":{"$b":0},"none":{"$b":1}}"#);
    assert_eq!(
        m.attachments.unwrap().iter().collect::<Vec<_>>(),
        [&b"abc"[..], b""]
    );
    assert!(d.next_message().unwrap().is_none());
}
