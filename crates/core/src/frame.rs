//! Line framing for worker channels: one JSON value per `\n`-terminated line, as Node's IPC
//! channel speaks it in `json` serialization mode. The decoder is bounded: a line longer than
//! `max_len` is an error, never an unbounded buffer.

use std::fmt;

/// A line that grew past the configured limit without a newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTooLarge {
    pub limit: usize,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message larger than the limit of {} bytes", self.limit)
    }
}

impl std::error::Error for FrameTooLarge {}

/// Accumulates bytes read from a stream and yields complete lines (without the `\n`).
///
/// Reads go straight into the decoder's own buffer (`spare()` then `filled(n)`), so a read
/// costs no extra copy.
pub struct LineDecoder {
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    /// Where the newline search resumes, so a long line is scanned once.
    scanned: usize,
    max_len: usize,
}

impl LineDecoder {
    pub fn new(max_len: usize) -> Self {
        LineDecoder {
            buf: vec![0; 64 * 1024],
            head: 0,
            tail: 0,
            scanned: 0,
            max_len,
        }
    }

    /// Space to read into. Compacts or grows the buffer as needed; errors when a partial line
    /// already exceeds the limit.
    pub fn spare(&mut self) -> Result<&mut [u8], FrameTooLarge> {
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
            self.scanned = 0;
        }
        if self.tail == self.buf.len() {
            if self.head > 0 {
                self.buf.copy_within(self.head..self.tail, 0);
                self.tail -= self.head;
                self.scanned -= self.head;
                self.head = 0;
            } else {
                let pending = self.tail - self.head;
                if pending > self.max_len {
                    return Err(FrameTooLarge {
                        limit: self.max_len,
                    });
                }
                let new_len = (self.buf.len() * 2).min(self.max_len.saturating_add(1));
                let new_len = new_len.max(self.buf.len() + 1);
                self.buf.resize(new_len, 0);
            }
        }
        Ok(&mut self.buf[self.tail..])
    }

    /// Records that `n` bytes were read into the slice returned by `spare()`.
    pub fn filled(&mut self, n: usize) {
        self.tail += n;
        debug_assert!(self.tail <= self.buf.len());
    }

    /// Convenience for tests and non-streaming callers: copies `data` in.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), FrameTooLarge> {
        while !data.is_empty() {
            let spare = self.spare()?;
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            self.filled(n);
            data = &data[n..];
        }
        Ok(())
    }

    /// The next complete line, if any. Errors when the pending partial line is over the limit.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, FrameTooLarge> {
        let start = self.scanned.max(self.head);
        match memchr::memchr(b'\n', &self.buf[start..self.tail]) {
            Some(off) => {
                let end = start + off;
                let line_start = self.head;
                self.head = end + 1;
                self.scanned = self.head;
                if end - line_start > self.max_len {
                    return Err(FrameTooLarge {
                        limit: self.max_len,
                    });
                }
                Ok(Some(&self.buf[line_start..end]))
            }
            None => {
                self.scanned = self.tail;
                if self.tail - self.head > self.max_len {
                    return Err(FrameTooLarge {
                        limit: self.max_len,
                    });
                }
                Ok(None)
            }
        }
    }

    /// Bytes held that do not yet form a complete line.
    pub fn pending(&self) -> usize {
        self.tail - self.head
    }
}

/// True for Node's internal IPC messages (`{"cmd":"NODE_..."}`), which Node itself swallows and
/// which must never reach user code. Parses only when the cheap substring test hits, so the
/// common path costs one `memmem`.
pub fn is_node_internal(line: &[u8]) -> bool {
    if memchr::memmem::find(line, b"NODE_").is_none() {
        return false;
    }
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(map)) => matches!(
            map.get("cmd"),
            Some(serde_json::Value::String(s)) if s.starts_with("NODE_")
        ),
        _ => false,
    }
}

/// A stray message, as marked by comrade's Node worker preload: `{"cmd":"NODE_COMRADE_STRAY",
/// "msg": …}`. Returns the original message's JSON text.
pub fn stray_payload(line: &[u8]) -> Option<&str> {
    #[derive(serde::Deserialize)]
    struct Stray<'a> {
        cmd: &'a str,
        #[serde(borrow)]
        msg: Option<&'a serde_json::value::RawValue>,
    }
    let s: Stray = serde_json::from_slice(line).ok()?;
    (s.cmd == "NODE_COMRADE_STRAY").then(|| s.msg.map_or("null", |m| m.get()))
}

/// Checks that `line` is exactly one well-formed JSON value (and so valid UTF-8), so it can be
/// spliced into a JSON array for JS without risking the whole batch's `JSON.parse`.
pub fn validate_json(line: &[u8]) -> Result<&str, String> {
    match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
        Ok(_) => std::str::from_utf8(line).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(dec: &mut LineDecoder) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = dec.next_line().unwrap() {
            out.push(String::from_utf8(l.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn splits_several_messages_in_one_read() {
        let mut d = LineDecoder::new(1024);
        d.push(b"1\n\"two\"\n{\"a\":3}\n").unwrap();
        assert_eq!(lines(&mut d), vec!["1", "\"two\"", "{\"a\":3}"]);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn joins_a_message_split_across_reads() {
        let mut d = LineDecoder::new(1024);
        d.push(b"{\"a\":").unwrap();
        assert!(lines(&mut d).is_empty());
        d.push(b"[1,2]}\n{\"b\"").unwrap();
        assert_eq!(lines(&mut d), vec!["{\"a\":[1,2]}"]);
        d.push(b":1}\n").unwrap();
        assert_eq!(lines(&mut d), vec!["{\"b\":1}"]);
    }

    #[test]
    fn grows_for_large_messages_byte_by_byte() {
        let big = format!("\"{}\"\n", "x".repeat(200_000));
        let mut d = LineDecoder::new(1 << 20);
        for b in big.as_bytes() {
            d.push(std::slice::from_ref(b)).unwrap();
        }
        let got = lines(&mut d);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), 200_002);
    }

    #[test]
    fn rejects_a_line_over_the_limit() {
        let mut d = LineDecoder::new(100);
        let r = d.push(&[b'x'; 300]).and_then(|_| d.next_line().map(|_| ()));
        assert_eq!(r, Err(FrameTooLarge { limit: 100 }));
    }

    #[test]
    fn rejects_a_complete_line_over_the_limit() {
        let mut d = LineDecoder::new(10);
        d.push(b"\"0123456789abc\"\n").unwrap();
        assert_eq!(d.next_line(), Err(FrameTooLarge { limit: 10 }));
    }

    #[test]
    fn compacts_instead_of_growing_when_lines_are_consumed() {
        let mut d = LineDecoder::new(1 << 20);
        for i in 0..100_000 {
            d.push(format!("{i}\n").as_bytes()).unwrap();
            assert_eq!(d.next_line().unwrap().unwrap(), i.to_string().as_bytes());
        }
        assert_eq!(d.buf.len(), 64 * 1024);
    }

    #[test]
    fn node_internal_messages_are_recognised_by_value_not_text() {
        assert!(is_node_internal(
            br#"{"cmd":"NODE_CLUSTER","act":"online","seq":0}"#
        ));
        assert!(is_node_internal(
            br#"{"act":"online","cmd":"NODE_HANDLE_NACK"}"#
        ));
        assert!(!is_node_internal(br#"{"cmd":"NOT_NODE_"}"#));
        assert!(!is_node_internal(br#""NODE_CLUSTER""#));
        assert!(!is_node_internal(br#"{"text":"NODE_X"}"#));
        assert!(!is_node_internal(br#"{"cmd":"NODE_"#));
    }

    #[test]
    fn stray_markers_carry_the_original_message() {
        let line = br#"{"cmd":"NODE_COMRADE_STRAY","msg":{"a":[1,2]}}"#;
        assert!(is_node_internal(line));
        assert_eq!(stray_payload(line), Some(r#"{"a":[1,2]}"#));
        assert_eq!(
            stray_payload(br#"{"cmd":"NODE_COMRADE_STRAY"}"#),
            Some("null")
        );
        assert_eq!(stray_payload(br#"{"cmd":"NODE_CLUSTER","msg":1}"#), None);
        assert_eq!(stray_payload(b"[1]"), None);
    }

    #[test]
    fn validates_json() {
        assert_eq!(
            validate_json(b"{\"a\":[1,\"\xe2\x80\xa8\"]}")
                .unwrap()
                .len(),
            15
        );
        assert!(validate_json(b"{\"a\":").is_err());
        assert!(validate_json(b"hello").is_err());
        assert!(validate_json(b"1 2").is_err());
        assert!(validate_json(b"\"\xff\"").is_err());
        assert!(validate_json(b"").is_err());
    }
}
