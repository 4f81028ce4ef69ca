//! Worker → pool: `ready`, `ok`, `err`, `progress`, `event`, `retire`, `fatal`, `ack`. The worker
//! encodes them (`encode_*`, each appending a whole line, `\n` included); the pool decodes
//! them ([`decode_worker_message`]).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::json::{push_json_str, push_u32};

/// A message from a worker, as the pool reads it. Borrowed: values stay raw JSON text, to be
/// passed on as they are. Only the members the pool acts on are read; `event`'s `name` and
/// `data` travel inside the whole line.
#[derive(Debug, Deserialize)]
pub struct WorkerMessage<'a> {
    /// The message type (`"ok"`, `"err"`, …). Copied only when it contains JSON escapes.
    #[serde(borrow)]
    pub t: Cow<'a, str>,
    /// The call's id; `None` when absent or `null`. Wider than a call id so an id out of range
    /// can be reported as such.
    pub id: Option<u64>,
    /// The value of `ok` or `progress`. A `"v":null` that is present is `Some`: an `ok` without
    /// `v` means `undefined`, with `"v":null` it means `null`.
    #[serde(default, borrow, deserialize_with = "present")]
    pub v: Option<&'a RawValue>,
    /// The error object of `err` or `fatal`; present `null` is `Some`, as for `v`.
    #[serde(default, borrow, deserialize_with = "present")]
    pub e: Option<&'a RawValue>,
}

/// A member that is present, even as `null`, is `Some` (a plain `Option` maps `null` to `None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Why a worker's line is not a message.
#[derive(Debug)]
pub enum WorkerMessageError {
    /// The line is not a JSON object (checked first: serde would read a struct from an array).
    NotAnObject,
    /// Invalid JSON, or a member of the wrong type (a non-string `t`, an `id` that is not an
    /// unsigned integer, a member given twice).
    Invalid(serde_json::Error),
}

impl fmt::Display for WorkerMessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerMessageError::NotAnObject => f.write_str("message is not a JSON object"),
            WorkerMessageError::Invalid(e) => write!(f, "invalid message ({e})"),
        }
    }
}

impl std::error::Error for WorkerMessageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WorkerMessageError::NotAnObject => None,
            WorkerMessageError::Invalid(e) => Some(e),
        }
    }
}

/// Decodes one line (without its `\n`) from a worker. The type in `t` is not checked here: the
/// caller acts on the ones it knows.
pub fn decode_worker_message(text: &str) -> Result<WorkerMessage<'_>, WorkerMessageError> {
    if !text.trim_start().starts_with('{') {
        return Err(WorkerMessageError::NotAnObject);
    }
    serde_json::from_str(text).map_err(WorkerMessageError::Invalid)
}

/// Runs `body`, which appends one message to `out`; on failure removes what it appended.
fn line<E>(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
    let start = out.len();
    match body(out) {
        Ok(()) => {
            out.extend_from_slice(b"}\n");
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Appends `{"t":"ready"}`.
pub fn encode_ready(out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"t\":\"ready\"}\n");
}

/// Appends `{"t":"retire"}`.
pub fn encode_retire(out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"t\":\"retire\"}\n");
}

/// Appends `{"t":"ok","id":N,"v":V}`. On a serialization error nothing is appended.
pub fn encode_ok<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    id: u32,
    value: &T,
) -> serde_json::Result<()> {
    line(out, |out| {
        out.extend_from_slice(b"{\"t\":\"ok\",\"id\":");
        push_u32(out, id);
        out.extend_from_slice(b",\"v\":");
        serde_json::to_writer(&mut *out, value)
    })
}

/// Appends `{"t":"ok","id":N}`: the call returned nothing (`undefined` in JS).
pub fn encode_ok_empty(out: &mut Vec<u8>, id: u32) {
    out.extend_from_slice(b"{\"t\":\"ok\",\"id\":");
    push_u32(out, id);
    out.extend_from_slice(b"}\n");
}

/// Appends `{"t":"err","id":N,"e":E}`; `error_json` is the error object's JSON text.
pub fn encode_err(out: &mut Vec<u8>, id: u32, error_json: &[u8]) {
    out.extend_from_slice(b"{\"t\":\"err\",\"id\":");
    push_u32(out, id);
    out.extend_from_slice(b",\"e\":");
    out.extend_from_slice(error_json);
    out.extend_from_slice(b"}\n");
}

/// Appends `{"t":"progress","id":N,"v":V}`. On a serialization error nothing is appended.
pub fn encode_progress<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    id: u32,
    value: &T,
) -> serde_json::Result<()> {
    line(out, |out| {
        out.extend_from_slice(b"{\"t\":\"progress\",\"id\":");
        push_u32(out, id);
        out.extend_from_slice(b",\"v\":");
        serde_json::to_writer(&mut *out, value)
    })
}

/// Appends `{"t":"event","name":S,"data":V}`. On a serialization error nothing is appended.
pub fn encode_event<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    name: &str,
    data: &T,
) -> serde_json::Result<()> {
    line(out, |out| {
        out.extend_from_slice(b"{\"t\":\"event\",\"name\":");
        push_json_str(out, name);
        out.extend_from_slice(b",\"data\":");
        serde_json::to_writer(&mut *out, data)
    })
}

/// Appends `{"t":"ack","id":N}`: broadcast `N` reached this worker (its handler, if any, is
/// done).
pub fn encode_ack(out: &mut Vec<u8>, id: u32) {
    out.extend_from_slice(b"{\"t\":\"ack\",\"id\":");
    push_u32(out, id);
    out.extend_from_slice(b"}\n");
}

/// Appends `{"t":"ack","id":N,"e":E}`: broadcast `N` reached this worker, whose message handler
/// failed with `E` (`error_json`, the error object's JSON text).
pub fn encode_ack_err(out: &mut Vec<u8>, id: u32, error_json: &[u8]) {
    out.extend_from_slice(b"{\"t\":\"ack\",\"id\":");
    push_u32(out, id);
    out.extend_from_slice(b",\"e\":");
    out.extend_from_slice(error_json);
    out.extend_from_slice(b"}\n");
}

/// Appends `{"t":"fatal","e":E}`; `error_json` is the error object's JSON text.
pub fn encode_fatal(out: &mut Vec<u8>, error_json: &[u8]) {
    out.extend_from_slice(b"{\"t\":\"fatal\",\"e\":");
    out.extend_from_slice(error_json);
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse_lines(out: &[u8]) -> Vec<Value> {
        assert!(out.ends_with(b"\n"));
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn encodes_every_worker_message() {
        let mut out = Vec::new();
        encode_ready(&mut out);
        encode_ok(&mut out, 4_000_000_000, &json!({"a": [1, "two"]})).unwrap();
        encode_ok(&mut out, 0, &()).unwrap();
        encode_ok_empty(&mut out, 9);
        encode_err(&mut out, 3, br#"{"name":"RangeError","message":"no"}"#);
        encode_progress(&mut out, 1, &0.5).unwrap();
        encode_event(&mut out, "ca\"che", &json!({"size": 12})).unwrap();
        encode_retire(&mut out);
        encode_fatal(&mut out, br#"{"name":"Error","message":"init threw"}"#);
        encode_ack(&mut out, 5);
        encode_ack_err(&mut out, 6, br#"{"message":"no"}"#);
        assert_eq!(
            parse_lines(&out),
            [
                json!({"t": "ready"}),
                json!({"t": "ok", "id": 4_000_000_000u32, "v": {"a": [1, "two"]}}),
                json!({"t": "ok", "id": 0, "v": null}),
                json!({"t": "ok", "id": 9}),
                json!({"t": "err", "id": 3, "e": {"name": "RangeError", "message": "no"}}),
                json!({"t": "progress", "id": 1, "v": 0.5}),
                json!({"t": "event", "name": "ca\"che", "data": {"size": 12}}),
                json!({"t": "retire"}),
                json!({"t": "fatal", "e": {"name": "Error", "message": "init threw"}}),
                json!({"t": "ack", "id": 5}),
                json!({"t": "ack", "id": 6, "e": {"message": "no"}}),
            ]
        );
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 11);
        // Byte for byte, too: no spaces, members in the documented order.
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(r#"{"t":"ready"}"#));
        assert_eq!(
            lines.next(),
            Some(r#"{"t":"ok","id":4000000000,"v":{"a":[1,"two"]}}"#)
        );
        assert_eq!(
            lines.nth(2),
            Some(r#"{"t":"err","id":3,"e":{"name":"RangeError","message":"no"}}"#)
        );
        assert_eq!(
            lines.nth(1),
            Some(r#"{"t":"event","name":"ca\"che","data":{"size":12}}"#)
        );
    }

    #[test]
    fn a_value_that_fails_to_serialize_leaves_the_buffer_as_it_was() {
        use std::collections::HashMap;
        let bad: HashMap<Vec<u8>, u8> = [(vec![1u8], 1u8)].into_iter().collect();
        let mut out = b"{\"t\":\"ready\"}\n".to_vec();
        assert!(encode_ok(&mut out, 1, &bad).is_err());
        assert!(encode_progress(&mut out, 1, &bad).is_err());
        assert!(encode_event(&mut out, "e", &bad).is_err());
        assert_eq!(out, b"{\"t\":\"ready\"}\n");
    }

    fn decode(text: &str) -> WorkerMessage<'_> {
        decode_worker_message(text).unwrap()
    }

    #[test]
    fn decodes_replies_keeping_values_raw() {
        let m = decode(r#"{"t":"ok","id":7,"v":{"a": [1, 2]}}"#);
        assert_eq!(
            (&*m.t, m.id, m.v.map(|v| v.get()), m.e.is_none()),
            ("ok", Some(7), Some(r#"{"a": [1, 2]}"#), true)
        );
        assert!(matches!(m.t, Cow::Borrowed(_)));
        let m = decode(r#"{"t":"err","id":1,"e":{"message":"x"}}"#);
        assert_eq!(m.e.map(|e| e.get()), Some(r#"{"message":"x"}"#));
        // Unknown members are ignored; order does not matter; whitespace is allowed.
        let m = decode(r#"  {"x":[1,{"y":2}], "id" : 4294967296 , "t":"progress"}"#);
        assert_eq!(
            (&*m.t, m.id, m.v.is_none()),
            ("progress", Some(1 << 32), true)
        );
    }

    #[test]
    fn a_present_null_is_some_and_an_absent_member_none() {
        let m = decode(r#"{"t":"ok","id":1,"v":null}"#);
        assert_eq!(m.v.map(|v| v.get()), Some("null"));
        let m = decode(r#"{"t":"ok","id":1}"#);
        assert!(m.v.is_none());
        let m = decode(r#"{"t":"fatal","e":null}"#);
        assert_eq!(m.e.map(|e| e.get()), Some("null"));
        // A null id is no id.
        assert_eq!(decode(r#"{"t":"ok","id":null}"#).id, None);
    }

    #[test]
    fn an_escaped_type_is_unescaped() {
        let m = decode(r#"{"t":"\u006fk","id":1}"#);
        assert_eq!(&*m.t, "ok");
    }

    #[test]
    fn non_objects_and_bad_members_are_errors() {
        for text in ["[\"ok\",1]", "1", "\"ok\"", "", "  ", "null"] {
            assert!(
                matches!(
                    decode_worker_message(text),
                    Err(WorkerMessageError::NotAnObject)
                ),
                "{text:?}"
            );
        }
        for text in [
            r#"{"t":"ok""#,
            r#"{"id":1}"#,
            r#"{"t":5}"#,
            r#"{"t":"ok","id":-1}"#,
            r#"{"t":"ok","id":1.5}"#,
            r#"{"t":"ok","id":"1"}"#,
            r#"{"t":"ok","t":"err"}"#,
            r#"{"t":"ok"} x"#,
        ] {
            assert!(
                matches!(
                    decode_worker_message(text),
                    Err(WorkerMessageError::Invalid(_))
                ),
                "{text:?}"
            );
        }
        assert_eq!(
            WorkerMessageError::NotAnObject.to_string(),
            "message is not a JSON object"
        );
        let e = decode_worker_message("{").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid message (") && e.ends_with(')'),
            "{e}"
        );
    }
}
