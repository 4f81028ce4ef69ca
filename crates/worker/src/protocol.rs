//! The pure parts of the wire protocol (`docs/PROTOCOL.md`): splitting the byte stream into
//! lines, decoding the pool's messages, and encoding the worker's. No I/O happens here.
//!
//! Decoding borrows from the line: a call's `args` stay a [`RawValue`] slice of the input until
//! the function's own argument type is deserialized from them, and its `fn` is only copied when
//! it contains JSON escapes. Encoders append whole lines (with the trailing `\n`) to a caller's
//! buffer, so many replies can leave in one `write`.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::Error;

/// The pool's default `maxMessage`: the longest line accepted unless configured otherwise.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// A message from the pool, borrowing from its line.
#[derive(Debug, Clone)]
pub enum Message<'a> {
    /// `{"t":"init","data":D}`; a missing `data` reads as `null`.
    Init {
        /// The pool's `initData`.
        data: &'a RawValue,
    },
    /// `{"t":"call","id":N,"fn":F,"args":A}`.
    Call {
        /// Matches the reply to the call.
        id: u32,
        /// The function's name; `None` for the default function (`"fn":null` or no `fn`).
        /// Copied only when it contains JSON escapes.
        function: Option<Cow<'a, str>>,
        /// The positional arguments: always a JSON array.
        args: &'a RawValue,
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
    /// A call without a numeric `"id"`.
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
            FrameError::MissingId => f.write_str("call has no \"id\""),
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

fn quote(raw: &str) -> String {
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
pub fn decode(line: &[u8]) -> Result<Message<'_>, FrameError> {
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
        _ => match json_str(t).as_deref() {
            Some("call") => "call",
            Some("init") => "init",
            _ => return Err(FrameError::UnknownType(quote(t.get()))),
        },
    };
    if kind == "init" {
        return Ok(Message::Init {
            data: frame.data.unwrap_or(RawValue::NULL),
        });
    }
    let id = frame.id.ok_or(FrameError::MissingId)?;
    let id = match id.get().parse::<u32>() {
        // `parse` also takes a leading `+`, which JSON does not have.
        Ok(n) if !id.get().starts_with('+') => n,
        _ => return Err(FrameError::InvalidId(quote(id.get()))),
    };
    let function = match frame.function {
        None => None,
        Some(raw) => {
            Some(json_str(raw).ok_or_else(|| FrameError::InvalidFunction(quote(raw.get())))?)
        }
    };
    let args = frame.args.ok_or(FrameError::MissingArgs)?;
    if !args.get().starts_with('[') {
        return Err(FrameError::ArgsNotArray(quote(args.get())));
    }
    Ok(Message::Call { id, function, args })
}

/// Splits a byte stream into lines. Reads go straight into its buffer ([`spare`](Self::spare)
/// then [`filled`](Self::filled)); lines come out as slices of it, with no copy.
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte.
    head: usize,
    /// End of the bytes read.
    tail: usize,
    /// Where the newline search resumes, so a long line is scanned once.
    scanned: usize,
    initial: usize,
    max_line: usize,
}

impl LineBuffer {
    /// A buffer that starts at `initial` bytes, grows for longer lines, and refuses lines longer
    /// than `max_line` bytes (not counting the `\n`).
    pub fn new(initial: usize, max_line: usize) -> Self {
        let initial = initial.max(16);
        LineBuffer {
            buf: vec![0; initial],
            head: 0,
            tail: 0,
            scanned: 0,
            initial,
            max_line,
        }
    }

    /// Room to read into: compacts, grows (for a line longer than the buffer) or shrinks back
    /// (after one) as needed. Errors when the partial line held is already over the limit.
    pub fn spare(&mut self) -> Result<&mut [u8], FrameError> {
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
            self.scanned = 0;
            if self.buf.len() > 4 * self.initial {
                self.buf.truncate(self.initial);
                self.buf.shrink_to_fit();
            }
        }
        if self.tail == self.buf.len() {
            if self.head > 0 {
                self.buf.copy_within(self.head..self.tail, 0);
                self.tail -= self.head;
                self.scanned -= self.head;
                self.head = 0;
            } else {
                if self.tail > self.max_line {
                    return Err(FrameError::TooLarge {
                        limit: self.max_line,
                    });
                }
                // Room for the longest allowed line plus its newline, and no more.
                let cap = self.max_line.saturating_add(1);
                let new_len = self
                    .buf
                    .len()
                    .saturating_mul(2)
                    .min(cap)
                    .max(self.buf.len() + 1);
                self.buf.resize(new_len, 0);
            }
        }
        Ok(&mut self.buf[self.tail..])
    }

    /// Records that `n` bytes were read into the slice [`spare`](Self::spare) returned.
    pub fn filled(&mut self, n: usize) {
        self.tail += n;
        debug_assert!(self.tail <= self.buf.len());
    }

    /// Copies `data` in (for tests and callers that already hold the bytes).
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), FrameError> {
        while !data.is_empty() {
            let spare = self.spare()?;
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            self.filled(n);
            data = &data[n..];
        }
        Ok(())
    }

    /// The next complete line, without its `\n`, if one is held.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let from = self.scanned.max(self.head);
        match memchr::memchr(b'\n', &self.buf[from..self.tail]) {
            Some(off) => {
                let end = from + off;
                let start = self.head;
                self.head = end + 1;
                self.scanned = self.head;
                if end - start > self.max_line {
                    return Err(FrameError::TooLarge {
                        limit: self.max_line,
                    });
                }
                Ok(Some(&self.buf[start..end]))
            }
            None => {
                self.scanned = self.tail;
                if self.tail - self.head > self.max_line {
                    return Err(FrameError::TooLarge {
                        limit: self.max_line,
                    });
                }
                Ok(None)
            }
        }
    }

    /// Bytes held that do not form a complete line yet.
    pub fn pending(&self) -> usize {
        self.tail - self.head
    }

    /// The buffer's current size.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

fn push_u32(out: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
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

/// Appends `{"t":"err","id":N,"e":E}`.
pub fn encode_err(out: &mut Vec<u8>, id: u32, error: &Error) {
    out.extend_from_slice(b"{\"t\":\"err\",\"id\":");
    push_u32(out, id);
    out.extend_from_slice(b",\"e\":");
    error.write_json(out);
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
        serde_json::to_writer(&mut *out, name)?;
        out.extend_from_slice(b",\"data\":");
        serde_json::to_writer(&mut *out, data)
    })
}

/// Appends `{"t":"fatal","e":E}`.
pub fn encode_fatal(out: &mut Vec<u8>, error: &Error) {
    out.extend_from_slice(b"{\"t\":\"fatal\",\"e\":");
    error.write_json(out);
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn call(line: &str) -> (u32, Option<String>, String) {
        match decode(line.as_bytes()).unwrap() {
            Message::Call { id, function, args } => {
                (id, function.map(|f| f.into_owned()), args.get().to_owned())
            }
            other => panic!("not a call: {other:?}"),
        }
    }

    fn err(line: &[u8]) -> FrameError {
        decode(line).unwrap_err()
    }

    fn parse_lines(out: &[u8]) -> Vec<Value> {
        assert!(out.ends_with(b"\n"));
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn decodes_init() {
        match decode(br#"{"t":"init","data":{"salt":"x"}}"#).unwrap() {
            Message::Init { data } => assert_eq!(data.get(), r#"{"salt":"x"}"#),
            other => panic!("{other:?}"),
        }
        for line in [&br#"{"t":"init","data":null}"#[..], br#"{"t":"init"}"#] {
            match decode(line).unwrap() {
                Message::Init { data } => assert_eq!(data.get(), "null"),
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
        match decode(line).unwrap() {
            Message::Call {
                function: Some(Cow::Borrowed(_)),
                ..
            } => {}
            other => panic!("name was copied: {other:?}"),
        }
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

    fn lines(buf: &mut LineBuffer) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = buf.next_line().unwrap() {
            out.push(String::from_utf8(l.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn splits_lines_across_reads() {
        let mut b = LineBuffer::new(16, 1024);
        b.push(b"a\nbb\nc").unwrap();
        assert_eq!(lines(&mut b), ["a", "bb"]);
        assert_eq!(b.pending(), 1);
        b.push(b"cc\n\n").unwrap();
        assert_eq!(lines(&mut b), ["ccc", ""]);
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn grows_for_a_long_line_and_shrinks_back() {
        let mut b = LineBuffer::new(64, 1 << 20);
        let long = "x".repeat(100_000);
        for chunk in long.as_bytes().chunks(999) {
            b.push(chunk).unwrap();
            assert!(b.next_line().unwrap().is_none());
        }
        b.push(b"\nshort\n").unwrap();
        assert_eq!(lines(&mut b), [long.as_str(), "short"]);
        assert!(b.capacity() >= 100_001);
        b.spare().unwrap();
        assert_eq!(b.capacity(), 64);
    }

    #[test]
    fn compacts_instead_of_growing() {
        let mut b = LineBuffer::new(64, 1 << 20);
        for i in 0..10_000 {
            b.push(format!("{i}\n").as_bytes()).unwrap();
            assert_eq!(b.next_line().unwrap().unwrap(), i.to_string().as_bytes());
        }
        assert_eq!(b.capacity(), 64);
    }

    #[test]
    fn a_huge_line_is_an_error_not_an_allocation() {
        let mut b = LineBuffer::new(16, 100);
        let r = b
            .push(&[b'x'; 10_000])
            .and_then(|_| b.next_line().map(|_| ()));
        assert_eq!(r, Err(FrameError::TooLarge { limit: 100 }));
        assert!(b.capacity() <= 101);
        // A complete line just over the limit, already in the buffer.
        let mut b = LineBuffer::new(1024, 10);
        b.push(b"0123456789a\n").unwrap();
        assert_eq!(b.next_line(), Err(FrameError::TooLarge { limit: 10 }));
        // Exactly at the limit is fine.
        let mut b = LineBuffer::new(4, 10);
        b.push(b"0123456789\n").unwrap();
        assert_eq!(lines(&mut b), ["0123456789"]);
    }

    #[test]
    fn encodes_every_worker_message() {
        let mut out = Vec::new();
        encode_ready(&mut out);
        encode_ok(&mut out, 4_000_000_000, &json!({"a": [1, "two"]})).unwrap();
        encode_ok(&mut out, 0, &()).unwrap();
        encode_ok_empty(&mut out, 9);
        encode_err(
            &mut out,
            3,
            &Error::new("no").name("RangeError").code("E").field("n", 1),
        );
        encode_progress(&mut out, 1, &0.5).unwrap();
        encode_event(&mut out, "ca\"che", &json!({"size": 12})).unwrap();
        encode_retire(&mut out);
        encode_fatal(&mut out, &Error::new("init threw"));
        assert_eq!(
            parse_lines(&out),
            [
                json!({"t": "ready"}),
                json!({"t": "ok", "id": 4_000_000_000u32, "v": {"a": [1, "two"]}}),
                json!({"t": "ok", "id": 0, "v": null}),
                json!({"t": "ok", "id": 9}),
                json!({"t": "err", "id": 3, "e": {"name": "RangeError", "message": "no", "code": "E", "n": 1}}),
                json!({"t": "progress", "id": 1, "v": 0.5}),
                json!({"t": "event", "name": "ca\"che", "data": {"size": 12}}),
                json!({"t": "retire"}),
                json!({"t": "fatal", "e": {"name": "Error", "message": "init threw"}}),
            ]
        );
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 9);
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

    #[test]
    fn decode_never_panics_on_garbage() {
        // Every prefix of valid frames, and a few byte soups.
        let frames = [
            &br#"{"t":"call","id":12,"fn":"a\u00e9","args":[1,{"x":"\n"}]}"#[..],
            br#"{"t":"init","data":[1,2,{"a":null}]}"#,
        ];
        for f in frames {
            for n in 0..=f.len() {
                let _ = decode(&f[..n]);
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
            assert!(decode(soup).is_err());
        }
    }
}
