//! Pool → worker: `init`, `call`, `cancel`, `message` and `stop`. The pool encodes them
//! ([`encode_init`], [`encode_call`], [`encode_cancel`], [`encode_message`], [`encode_stop`]);
//! the worker decodes them ([`decode_pool_message`]).
//!
//! Decoding borrows from the line: a call's `args` stay a [`RawValue`] slice of the input until
//! the function's own argument type is deserialized from them, and its `fn` is only copied when
//! it contains JSON escapes.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::json::push_u32;
use crate::line::LineTooLong;

/// A message from the pool, borrowing from its line.
#[derive(Debug, Clone)]
pub enum PoolMessage<'a> {
    /// `{"t":"init","data":D}`; a missing `data` reads as `null`.
    Init {
        /// The pool's `initData`.
        data: &'a RawValue,
    },
    /// `{"t":"call","id":N,"fn":F,"args":A}`, and `"traceparent":T` when the caller's trace
    /// context has one.
    Call {
        /// Matches the reply to the call.
        id: u32,
        /// The function's name; `None` for the default function (`"fn":null` or no `fn`).
        /// Copied only when it contains JSON escapes.
        function: Option<Cow<'a, str>>,
        /// The positional arguments: always a JSON array.
        args: &'a RawValue,
        /// The caller's W3C trace context (`00-<trace id>-<parent id>-<flags>`), when it has
        /// one: a worker's spans for this call continue the caller's trace. Anything but a
        /// string without escapes reads as none.
        traceparent: Option<&'a str>,
    },
    /// `{"t":"cancel","id":N}`: the caller of call `N` gave up on it (an abort or a timeout).
    /// The worker should stop that call soon and answer it as it likes (its answer is not
    /// delivered); a cancel for a call already answered, or unknown, is ignored.
    Cancel {
        /// The call to stop.
        id: u32,
    },
    /// `{"t":"stop"}`: the pool is stopping this worker on purpose (it holds no call). The
    /// worker runs its teardown and exits with code 0.
    Stop,
    /// `{"t":"message","id":N,"data":D}`: a broadcast (`pool.broadcast(D)`). The worker hands
    /// `D` to its message handler, if it has one, then answers `{"t":"ack","id":N}` (with
    /// `"e"` when the handler failed); a missing `data` reads as `null`.
    Message {
        /// The broadcast's id, echoed in the ack.
        id: u32,
        /// The message.
        data: &'a RawValue,
    },
}

/// Why a line from the pool is not a valid message. The pool never sends one, so each of these
/// means a bug on the other side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A line grew past the limit without a newline.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Not a JSON text (or not UTF-8, or a field repeated).
    InvalidJson(String),
    /// Valid JSON, but not an object.
    NotAnObject,
    /// No `"t"` (or `"t":null`).
    MissingType,
    /// A `"t"` the worker does not know; holds its JSON text.
    UnknownType(String),
    /// A call or cancel without a numeric `"id"`.
    MissingId,
    /// A call whose `"id"` is not an integer in 0…2³²−1; holds its JSON text.
    InvalidId(String),
    /// A call whose `"fn"` is neither a string nor `null`; holds its JSON text.
    InvalidFunction(String),
    /// A call without `"args"` (or `"args":null`).
    MissingArgs,
    /// A call whose `"args"` is not an array; holds its JSON text.
    ArgsNotArray(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { limit } => {
                write!(f, "message longer than the limit of {limit} bytes")
            }
            FrameError::InvalidJson(e) => write!(f, "invalid JSON: {e}"),
            FrameError::NotAnObject => f.write_str("message is not a JSON object"),
            FrameError::MissingType => f.write_str("message has no \"t\""),
            FrameError::UnknownType(t) => write!(f, "unknown message type \"t\":{t}"),
            FrameError::MissingId => f.write_str("call, cancel or message has no \"id\""),
            FrameError::InvalidId(id) => {
                write!(
                    f,
                    "call \"id\" must be an integer in 0..=4294967295, got {id}"
                )
            }
            FrameError::InvalidFunction(v) => {
                write!(f, "call \"fn\" must be a string or null, got {v}")
            }
            FrameError::MissingArgs => f.write_str("call has no \"args\" array"),
            FrameError::ArgsNotArray(v) => write!(f, "call \"args\" must be an array, got {v}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// At most this much of an offending value is quoted in an error message.
const QUOTE_LIMIT: usize = 80;

fn shorten(raw: &str) -> String {
    if raw.len() <= QUOTE_LIMIT {
        return raw.to_owned();
    }
    let mut end = QUOTE_LIMIT;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &raw[..end], raw.len())
}

/// Every top-level member is kept raw, so each kind of mistake gets its own error and unknown
/// members are skipped without being built.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    t: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow, rename = "fn")]
    function: Option<&'a RawValue>,
    #[serde(borrow)]
    args: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    traceparent: Option<&'a RawValue>,
}

/// Reads a JSON string value, borrowing when it has no escapes.
fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    let inner = &text[1..text.len() - 1];
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

/// Decodes one line (without its `\n`) from the pool.
pub fn decode_pool_message(line: &[u8]) -> Result<PoolMessage<'_>, FrameError> {
    let first = line
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    if first != Some(&b'{') {
        // Tell a value that is not an object from text that is not JSON at all.
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
                Ok(_) => FrameError::NotAnObject,
                Err(e) => FrameError::InvalidJson(e.to_string()),
            },
        );
    }
    let frame: Frame =
        serde_json::from_slice(line).map_err(|e| FrameError::InvalidJson(e.to_string()))?;
    let t = frame.t.ok_or(FrameError::MissingType)?;
    let kind = match t.get() {
        "\"call\"" => "call",
        "\"init\"" => "init",
        "\"cancel\"" => "cancel",
        "\"stop\"" => "stop",
        "\"message\"" => "message",
        _ => match json_str(t).as_deref() {
            Some("call") => "call",
            Some("init") => "init",
            Some("cancel") => "cancel",
            Some("stop") => "stop",
            Some("message") => "message",
            _ => return Err(FrameError::UnknownType(shorten(t.get()))),
        },
    };
    if kind == "init" {
        return Ok(PoolMessage::Init {
            data: frame.data.unwrap_or(RawValue::NULL),
        });
    }
    if kind == "stop" {
        return Ok(PoolMessage::Stop);
    }
    let id = frame.id.ok_or(FrameError::MissingId)?;
    let id = match id.get().parse::<u32>() {
        // `parse` also takes a leading `+`, which JSON does not have.
        Ok(n) if !id.get().starts_with('+') => n,
        _ => return Err(FrameError::InvalidId(shorten(id.get()))),
    };
    if kind == "cancel" {
        return Ok(PoolMessage::Cancel { id });
    }
    if kind == "message" {
        return Ok(PoolMessage::Message {
            id,
            data: frame.data.unwrap_or(RawValue::NULL),
        });
    }
    let function = match frame.function {
        None => None,
        Some(raw) => {
            Some(json_str(raw).ok_or_else(|| FrameError::InvalidFunction(shorten(raw.get())))?)
        }
    };
    let args = frame.args.ok_or(FrameError::MissingArgs)?;
    if !args.get().starts_with('[') {
        return Err(FrameError::ArgsNotArray(shorten(args.get())));
    }
    // Optional metadata: a value that is not a plain string is ignored, not an error.
    let traceparent = frame.traceparent.and_then(|raw| {
        let t = raw.get();
        let inner = t.strip_prefix('"')?.strip_suffix('"')?;
        (!inner.contains('\\')).then_some(inner)
    });
    Ok(PoolMessage::Call {
        id,
        function,
        args,
        traceparent,
    })
}

impl From<LineTooLong> for FrameError {
    fn from(e: LineTooLong) -> Self {
        FrameError::TooLarge { limit: e.limit }
    }
}

/// Writes `{"t":"init","data":<data_json>}`, without the `\n`. `data_json` is the JSON text of
/// the pool's `initData` (`null` when there is none).
pub fn encode_init(out: &mut Vec<u8>, data_json: &[u8]) {
    out.reserve(data_json.len() + 22);
    out.extend_from_slice(br#"{"t":"init","data":"#);
    out.extend_from_slice(data_json);
    out.push(b'}');
}

/// Writes `{"t":"call","id":<id>,"fn":<fn_json>,"args":[<args_inner>]}`, without the `\n`.
/// `fn_json` is the JSON text of the function's name (`null` for the default function);
/// `args_inner` the arguments as JSON, comma-separated without the brackets (empty for none).
pub fn encode_call(out: &mut Vec<u8>, id: u32, fn_json: &[u8], args_inner: &[u8]) {
    out.reserve(fn_json.len() + args_inner.len() + 44);
    out.extend_from_slice(br#"{"t":"call","id":"#);
    push_u32(out, id);
    out.extend_from_slice(br#","fn":"#);
    out.extend_from_slice(fn_json);
    out.extend_from_slice(br#","args":["#);
    out.extend_from_slice(args_inner);
    out.extend_from_slice(b"]}");
}

/// As [`encode_call`], with `"traceparent":"<traceparent>"` after the arguments, or without it
/// when `traceparent` is not a valid W3C traceparent (see [`valid_traceparent`]).
pub fn encode_call_traced(
    out: &mut Vec<u8>,
    id: u32,
    fn_json: &[u8],
    args_inner: &[u8],
    traceparent: &str,
) {
    encode_call(out, id, fn_json, args_inner);
    if valid_traceparent(traceparent) {
        out.pop();
        out.extend_from_slice(br#","traceparent":""#);
        out.extend_from_slice(traceparent.as_bytes());
        out.extend_from_slice(b"\"}");
    }
}

/// Whether `t` is a W3C traceparent of version 00 as the pool sends it:
/// `00-<32 hex>-<16 hex>-<2 hex>`, lowercase, trace and parent ids not all zeros.
pub fn valid_traceparent(t: &str) -> bool {
    let b = t.as_bytes();
    let hex = |s: &[u8]| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |s: &[u8]| s.iter().any(|c| *c != b'0');
    b.len() == 55
        && &b[..3] == b"00-"
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(&b[3..35])
        && hex(&b[36..52])
        && hex(&b[53..55])
        && nonzero(&b[3..35])
        && nonzero(&b[36..52])
}

/// Writes `{"t":"cancel","id":<id>}`, without the `\n`.
pub fn encode_cancel(out: &mut Vec<u8>, id: u32) {
    out.reserve(32);
    out.extend_from_slice(br#"{"t":"cancel","id":"#);
    push_u32(out, id);
    out.push(b'}');
}

/// Writes `{"t":"message","id":<id>,"data":<data_json>}`, without the `\n`: broadcast `id`
/// with the message's JSON text.
pub fn encode_message(out: &mut Vec<u8>, id: u32, data_json: &[u8]) {
    out.reserve(data_json.len() + 40);
    out.extend_from_slice(br#"{"t":"message","id":"#);
    push_u32(out, id);
    out.extend_from_slice(br#","data":"#);
    out.extend_from_slice(data_json);
    out.push(b'}');
}

/// Writes `{"t":"stop"}`, without the `\n`.
pub fn encode_stop(out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"t":"stop"}"#);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(line: &str) -> (u32, Option<String>, String) {
        match decode_pool_message(line.as_bytes()).unwrap() {
            PoolMessage::Call {
                id,
                function,
                args,
                traceparent: None,
            } => (id, function.map(|f| f.into_owned()), args.get().to_owned()),
            other => panic!("not a call (or one with a traceparent): {other:?}"),
        }
    }

    fn traceparent(line: &[u8]) -> Option<&str> {
        match decode_pool_message(line).unwrap() {
            PoolMessage::Call { traceparent, .. } => traceparent,
            other => panic!("not a call: {other:?}"),
        }
    }

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_call_carries_a_valid_traceparent_and_decoding_reads_it_back() {
        let mut out = Vec::new();
        encode_call_traced(&mut out, 7, br#""f""#, b"1", TP);
        assert_eq!(
            out,
            format!(r#"{{"t":"call","id":7,"fn":"f","args":[1],"traceparent":"{TP}"}}"#)
                .into_bytes()
        );
        assert_eq!(traceparent(&out), Some(TP));
        // An invalid one is left out: the call is the plain call.
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e473\"-00f067aa0ba902b7-01",
        ] {
            let mut traced = Vec::new();
            encode_call_traced(&mut traced, 7, b"null", b"", bad);
            let mut plain = Vec::new();
            encode_call(&mut plain, 7, b"null", b"");
            assert_eq!(traced, plain, "{bad}");
        }
        // A worker reads what is there, and ignores what is not a plain string.
        assert_eq!(
            traceparent(br#"{"t":"call","id":1,"args":[],"traceparent":5}"#),
            None
        );
        assert_eq!(
            traceparent(br#"{"t":"call","id":1,"args":[],"traceparent":"a\u0062"}"#),
            None
        );
        assert_eq!(traceparent(br#"{"t":"call","id":1,"args":[]}"#), None);
    }

    fn err(line: &[u8]) -> FrameError {
        decode_pool_message(line).unwrap_err()
    }

    #[test]
    fn decodes_init() {
        match decode_pool_message(br#"{"t":"init","data":{"salt":"x"}}"#).unwrap() {
            PoolMessage::Init { data } => assert_eq!(data.get(), r#"{"salt":"x"}"#),
            other => panic!("{other:?}"),
        }
        for line in [&br#"{"t":"init","data":null}"#[..], br#"{"t":"init"}"#] {
            match decode_pool_message(line).unwrap() {
                PoolMessage::Init { data } => assert_eq!(data.get(), "null"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn decodes_calls_borrowing_args_and_name() {
        assert_eq!(
            call(r#"{"t":"call","id":1,"fn":"add","args":[2,3]}"#),
            (1, Some("add".into()), "[2,3]".into())
        );
        assert_eq!(
            call(r#"{"t":"call","id":2,"fn":null,"args":["hi"]}"#),
            (2, None, r#"["hi"]"#.into())
        );
        // Member order does not matter; unknown members are ignored; whitespace is allowed.
        assert_eq!(
            call(" {\"args\" : [ ] , \"x\":{\"y\":[1]}, \"id\":4294967295,\"t\":\"call\"}\r"),
            (u32::MAX, None, "[ ]".into())
        );
        let line = br#"{"t":"call","id":0,"fn":"f","args":[1]}"#;
        match decode_pool_message(line).unwrap() {
            PoolMessage::Call {
                function: Some(Cow::Borrowed(_)),
                ..
            } => {}
            other => panic!("name was copied: {other:?}"),
        }
    }

    #[test]
    fn decodes_cancel_and_stop() {
        match decode_pool_message(br#"{"t":"cancel","id":4294967295}"#).unwrap() {
            PoolMessage::Cancel { id } => assert_eq!(id, u32::MAX),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_pool_message(br#"{"t":"stop","x":1}"#).unwrap(),
            PoolMessage::Stop
        ));
        assert_eq!(err(br#"{"t":"cancel"}"#), FrameError::MissingId);
        assert_eq!(
            err(br#"{"t":"cancel","id":-1}"#),
            FrameError::InvalidId("-1".into())
        );
        let mut out = Vec::new();
        encode_cancel(&mut out, 12);
        encode_stop(&mut out);
        assert_eq!(out, br#"{"t":"cancel","id":12}{"t":"stop"}"#);
    }

    #[test]
    fn encodes_and_decodes_a_message() {
        let mut out = Vec::new();
        encode_message(&mut out, 9, br#"{"reload":[1,"a"]}"#);
        assert_eq!(out, br#"{"t":"message","id":9,"data":{"reload":[1,"a"]}}"#);
        match decode_pool_message(&out).unwrap() {
            PoolMessage::Message { id, data } => {
                assert_eq!((id, data.get()), (9, r#"{"reload":[1,"a"]}"#))
            }
            other => panic!("{other:?}"),
        }
        // No data: null. No id: an error.
        match decode_pool_message(br#"{"t":"message","id":0}"#).unwrap() {
            PoolMessage::Message { id: 0, data } => assert_eq!(data.get(), "null"),
            other => panic!("{other:?}"),
        }
        assert_eq!(err(br#"{"t":"message"}"#), FrameError::MissingId);
    }

    #[test]
    fn escaped_names_and_types_are_unescaped() {
        assert_eq!(
            call(r#"{"t":"\u0063all","id":7,"fn":"a\"b\u00e9","args":[]}"#),
            (7, Some("a\"bé".into()), "[]".into())
        );
    }

    #[test]
    fn invalid_json_is_an_error() {
        for line in [
            &b"{\"t\":\"call\""[..],
            b"",
            b"   ",
            b"hello",
            b"{\"t\":\"init\"} x",
            b"{\"t\":\"init\",}",
        ] {
            assert!(
                matches!(err(line), FrameError::InvalidJson(_)),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        // Not UTF-8.
        assert!(matches!(
            err(b"{\"t\":\"call\",\"id\":1,\"args\":[\"\xff\"]}"),
            FrameError::InvalidJson(_)
        ));
        // A member given twice.
        assert!(matches!(
            err(br#"{"t":"init","t":"call"}"#),
            FrameError::InvalidJson(_)
        ));
    }

    #[test]
    fn non_objects_are_an_error() {
        for line in [
            &b"[\"call\",1,null,[]]"[..],
            b"1",
            b"\"call\"",
            b"null",
            b" true ",
        ] {
            assert_eq!(err(line), FrameError::NotAnObject);
        }
    }

    #[test]
    fn missing_or_unknown_type_is_an_error() {
        assert_eq!(err(br#"{"id":1,"args":[]}"#), FrameError::MissingType);
        assert_eq!(err(br#"{"t":null}"#), FrameError::MissingType);
        assert_eq!(
            err(br#"{"t":"ok","id":1}"#),
            FrameError::UnknownType("\"ok\"".into())
        );
        assert_eq!(err(br#"{"t":5}"#), FrameError::UnknownType("5".into()));
        assert_eq!(
            err(br#"{"t":"CALL","id":1,"args":[]}"#),
            FrameError::UnknownType("\"CALL\"".into())
        );
    }

    #[test]
    fn bad_ids_are_an_error() {
        assert_eq!(
            err(br#"{"t":"call","fn":"f","args":[]}"#),
            FrameError::MissingId
        );
        assert_eq!(
            err(br#"{"t":"call","id":null,"args":[]}"#),
            FrameError::MissingId
        );
        for id in [
            "4294967296",
            "-1",
            "1.5",
            "1e3",
            "\"1\"",
            "[1]",
            "99999999999999999999999",
        ] {
            let line = format!(r#"{{"t":"call","id":{id},"args":[]}}"#);
            assert_eq!(
                err(line.as_bytes()),
                FrameError::InvalidId(id.into()),
                "{id}"
            );
        }
    }

    #[test]
    fn bad_fn_is_an_error() {
        assert_eq!(
            err(br#"{"t":"call","id":1,"fn":5,"args":[]}"#),
            FrameError::InvalidFunction("5".into())
        );
        assert_eq!(
            err(br#"{"t":"call","id":1,"fn":["f"],"args":[]}"#),
            FrameError::InvalidFunction("[\"f\"]".into())
        );
    }

    #[test]
    fn args_must_be_an_array() {
        assert_eq!(
            err(br#"{"t":"call","id":1,"fn":"f"}"#),
            FrameError::MissingArgs
        );
        assert_eq!(
            err(br#"{"t":"call","id":1,"args":null}"#),
            FrameError::MissingArgs
        );
        assert_eq!(
            err(br#"{"t":"call","id":1,"args":{"0":1}}"#),
            FrameError::ArgsNotArray("{\"0\":1}".into())
        );
        assert_eq!(
            err(br#"{"t":"call","id":1,"args":"ab"}"#),
            FrameError::ArgsNotArray("\"ab\"".into())
        );
        // Long values are quoted shortened.
        let line = format!(r#"{{"t":"call","id":1,"args":"{}"}}"#, "é".repeat(100));
        let FrameError::ArgsNotArray(q) = err(line.as_bytes()) else {
            panic!()
        };
        assert!(q.len() < 120 && q.ends_with("(202 bytes)"), "{q}");
    }

    #[test]
    fn errors_have_readable_messages() {
        assert_eq!(
            FrameError::InvalidId("-1".into()).to_string(),
            "call \"id\" must be an integer in 0..=4294967295, got -1"
        );
        assert_eq!(
            FrameError::TooLarge { limit: 10 }.to_string(),
            "message longer than the limit of 10 bytes"
        );
        assert!(err(b"nope").to_string().starts_with("invalid JSON: "));
    }

    #[test]
    fn decode_never_panics_on_garbage() {
        // Every prefix of valid frames, and a few byte soups.
        let frames = [
            &br#"{"t":"call","id":12,"fn":"a\u00e9","args":[1,{"x":"\n"}]}"#[..],
            br#"{"t":"init","data":[1,2,{"a":null}]}"#,
        ];
        for f in frames {
            for n in 0..=f.len() {
                let _ = decode_pool_message(&f[..n]);
            }
        }
        for soup in [
            &b"\x00\x01{"[..],
            b"{\"t\":\"",
            b"{\"t\":\"\\",
            b"{\"t\":\"\xc3",
            b"}}}",
            b"{{{",
        ] {
            assert!(decode_pool_message(soup).is_err());
        }
    }

    #[test]
    fn a_line_too_long_is_a_frame_error() {
        assert_eq!(
            FrameError::from(LineTooLong { limit: 7 }),
            FrameError::TooLarge { limit: 7 }
        );
    }

    #[test]
    fn encodes_init_and_calls_without_the_newline() {
        let mut out = Vec::new();
        encode_init(&mut out, br#"{"salt":"x"}"#);
        assert_eq!(out, br#"{"t":"init","data":{"salt":"x"}}"#);
        out.clear();
        encode_init(&mut out, b"null");
        assert_eq!(out, br#"{"t":"init","data":null}"#);
        out.clear();
        encode_call(&mut out, u32::MAX, br#""add""#, b"2,3");
        assert_eq!(
            out,
            br#"{"t":"call","id":4294967295,"fn":"add","args":[2,3]}"#
        );
        out.clear();
        encode_call(&mut out, 0, b"null", b"");
        assert_eq!(out, br#"{"t":"call","id":0,"fn":null,"args":[]}"#);
        // Appends: several frames can share a buffer.
        encode_call(&mut out, 1, b"null", b"1");
        assert_eq!(
            out,
            br#"{"t":"call","id":0,"fn":null,"args":[]}{"t":"call","id":1,"fn":null,"args":[1]}"#
        );
    }
}
