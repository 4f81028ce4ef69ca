//! Line framing: one message per `\n`-terminated line. The decoder is bounded: a line longer
//! than the limit is an error, never an unbounded buffer.

use std::borrow::Cow;
use std::fmt;

use crate::bin::{attachment_lens, total_within, Attachments, BinError};

/// A line that grew past the decoder's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTooLong {
    /// The limit, in bytes (not counting the `\n`).
    pub limit: usize,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool reports this text as the reason of a protocol error.
        write!(f, "message larger than the limit of {} bytes", self.limit)
    }
}

impl std::error::Error for LineTooLong {}

/// Splits a byte stream into lines. Reads go straight into its buffer ([`spare`](Self::spare)
/// then [`filled`](Self::filled)), and lines come out as slices of it, so a read costs no extra
/// copy.
pub struct LineDecoder {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte.
    head: usize,
    /// End of the bytes read.
    tail: usize,
    /// Where the newline search resumes, so a long line is scanned once.
    scanned: usize,
    initial: usize,
    max_len: usize,
    /// A message with attachments is being read ([`next_message`](Self::next_message)): the
    /// bytes it takes from `head`, line and attachments; 0 otherwise.
    want: usize,
    /// The most of the buffer used since it was last empty.
    peak: usize,
    /// Times in a row the buffer, grown past [`KEEP`], emptied without having needed it.
    quiet: u32,
    /// Large attachments are read into an allocation of their own
    /// ([`own_attachments`](Self::own_attachments)).
    own: bool,
    /// The attachments of the message being read, when read into their own allocation.
    side: Option<Side>,
}

/// Attachments read into their own allocation: the line stays in the buffer (from `head` to
/// `end`, its `\n`), the bytes go to `bytes`, the closing `\n` after the line.
struct Side {
    bytes: Vec<u8>,
    filled: usize,
    lens: Vec<usize>,
    end: usize,
}

/// Attachments together at least this long are read into their own allocation, when asked.
const OWN_MIN: usize = 64 * 1024;

/// A buffer grown to at most this many bytes is kept while messages keep needing it (a stream
/// of 1 MiB messages is read without reallocating and zeroing it for each one); it shrinks back
/// after [`QUIET_TIMES`] emptyings in a row that did not need it. A larger one shrinks at once.
const KEEP: usize = 4 * 1024 * 1024;
/// See [`KEEP`].
const QUIET_TIMES: u32 = 8;

/// One message from [`LineDecoder::next_message`]: its line, and its attachments if it has any.
#[derive(Debug)]
pub struct Message<'a> {
    /// The line, without its `\n`.
    pub line: &'a [u8],
    /// Its attachments (protocol version 3), when the line declares them.
    pub attachments: Option<Attachments<'a>>,
}

/// Why [`LineDecoder::next_message`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A line over the limit.
    Line(LineTooLong),
    /// Attachments declared wrongly, over the limit, or not ended as declared.
    Bin(BinError),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Line(e) => e.fmt(f),
            DecodeError::Bin(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<LineTooLong> for DecodeError {
    fn from(e: LineTooLong) -> Self {
        DecodeError::Line(e)
    }
}

impl LineDecoder {
    /// The buffer size [`new`](Self::new) starts with.
    pub const DEFAULT_CAPACITY: usize = 64 * 1024;

    /// A decoder that refuses lines longer than `max_len` bytes (not counting the `\n`),
    /// starting with a buffer of [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY).
    pub fn new(max_len: usize) -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY, max_len)
    }

    /// Like [`new`](Self::new), with a buffer that starts at `initial` bytes (at least 16). It
    /// grows for longer lines and shrinks back to `initial` once such a line is consumed.
    pub fn with_capacity(initial: usize, max_len: usize) -> Self {
        let initial = initial.max(16);
        LineDecoder {
            buf: vec![0; initial],
            head: 0,
            tail: 0,
            scanned: 0,
            initial,
            max_len,
            want: 0,
            peak: 0,
            quiet: 0,
            own: false,
            side: None,
        }
    }

    /// Reads the attachments of a message, when they are 64 KiB or more together and had not
    /// all arrived with its line, straight into an allocation of their own (the message's
    /// [`Attachments::bytes`](crate::Attachments) is then `Cow::Owned`), not into this
    /// buffer: a reader that keeps them (the pool, handing a result's bytes to JS) takes them
    /// without a copy. Off by default: a reader that copies them anyway is better served by
    /// the reused buffer.
    pub fn own_attachments(&mut self, on: bool) {
        self.own = on;
    }

    /// Room to read into: compacts, grows (for a line longer than the buffer) or shrinks back
    /// (after one) as needed. Errors when the partial line held is already over the limit.
    pub fn spare(&mut self) -> Result<&mut [u8], LineTooLong> {
        if self.side.as_ref().is_some_and(|s| s.filled < s.bytes.len()) {
            let side = self.side.as_mut().expect("checked");
            return Ok(&mut side.bytes[side.filled..]);
        }
        if self.want > 0 && self.tail < self.head + self.want {
            // A message with attachments: room for all of it, made once (its length is known
            // and within the limits), not by doubling.
            if self.head + self.want > self.buf.len() {
                if self.head > 0 {
                    self.buf.copy_within(self.head..self.tail, 0);
                    self.tail -= self.head;
                    self.scanned -= self.head;
                    self.head = 0;
                }
                if self.want > self.buf.len() {
                    self.buf.reserve_exact(self.want - self.buf.len());
                    self.buf.resize(self.want, 0);
                }
            }
            return Ok(&mut self.buf[self.tail..self.head + self.want]);
        }
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
            self.scanned = 0;
            // One long line must not pin its buffer for the life of the channel.
            if self.buf.len() > 4 * self.initial {
                let small = self.peak <= 4 * self.initial;
                self.quiet = if small { self.quiet + 1 } else { 0 };
                if self.buf.len() > KEEP || self.quiet >= QUIET_TIMES {
                    self.buf.truncate(self.initial);
                    self.buf.shrink_to_fit();
                    self.quiet = 0;
                }
            }
            self.peak = 0;
        }
        if self.tail == self.buf.len() {
            if self.head > 0 {
                self.buf.copy_within(self.head..self.tail, 0);
                self.tail -= self.head;
                self.scanned -= self.head;
                if let Some(side) = &mut self.side {
                    side.end -= self.head;
                }
                self.head = 0;
            } else {
                // Complete lines held but not taken yet (`push` without `next_line` in
                // between): not an over-long line, so the buffer grows to hold them.
                let complete = self.scanned.max(self.head) < self.tail
                    && memchr::memchr(b'\n', &self.buf[self.scanned.max(self.head)..self.tail])
                        .is_some();
                if self.tail > self.max_len && !complete {
                    return Err(LineTooLong {
                        limit: self.max_len,
                    });
                }
                // Room for the longest allowed line plus its newline, and no more.
                let cap = if complete {
                    usize::MAX
                } else {
                    self.max_len.saturating_add(1)
                };
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
        if let Some(side) = self.side.as_mut().filter(|s| s.filled < s.bytes.len()) {
            side.filled += n;
            debug_assert!(side.filled <= side.bytes.len());
            return;
        }
        self.tail += n;
        self.peak = self.peak.max(self.tail);
        debug_assert!(self.tail <= self.buf.len());
    }

    /// Copies `data` in (for tests and callers that already hold the bytes). Lines not taken
    /// with [`next_line`](Self::next_line) stay in the buffer, which grows to hold them; only
    /// a line over the limit is an error.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), LineTooLong> {
        while !data.is_empty() {
            let spare = self.spare()?;
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            self.filled(n);
            data = &data[n..];
        }
        Ok(())
    }

    /// The next complete line, without its `\n`, if one is held. Errors when that line, or
    /// the partial line held, is over the limit.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, LineTooLong> {
        let from = self.scanned.max(self.head);
        match memchr::memchr(b'\n', &self.buf[from..self.tail]) {
            Some(off) => {
                let end = from + off;
                let start = self.head;
                self.head = end + 1;
                self.scanned = self.head;
                if end - start > self.max_len {
                    return Err(LineTooLong {
                        limit: self.max_len,
                    });
                }
                Ok(Some(&self.buf[start..end]))
            }
            None => {
                self.scanned = self.tail;
                if self.tail - self.head > self.max_len {
                    return Err(LineTooLong {
                        limit: self.max_len,
                    });
                }
                Ok(None)
            }
        }
    }

    /// The next complete message, if one is held: a line, and for a line that declares
    /// attachments (protocol version 3, see [`crate::BIN_PREFIX`]) their bytes too, once all
    /// have arrived. The line is bounded by the limit, and so are its attachments together.
    /// Use it or [`next_line`](Self::next_line) on one stream, not both.
    pub fn next_message(&mut self) -> Result<Option<Message<'_>>, DecodeError> {
        if let Some(side) = &self.side {
            // The closing `\n` goes right after the line, once the attachments are all in.
            if side.filled < side.bytes.len() || self.tail <= side.end + 1 {
                return Ok(None);
            }
            let side = self.side.take().expect("checked");
            let start = self.head;
            self.head = side.end + 2;
            self.scanned = self.head;
            if self.buf[side.end + 1] != b'\n' {
                return Err(DecodeError::Bin(BinError::Unterminated));
            }
            return Ok(Some(Message {
                line: &self.buf[start..side.end],
                attachments: Some(Attachments {
                    lens: side.lens,
                    bytes: Cow::Owned(side.bytes),
                }),
            }));
        }
        let from = self.scanned.max(self.head);
        let Some(off) = memchr::memchr(b'\n', &self.buf[from..self.tail]) else {
            self.scanned = self.tail;
            if self.tail - self.head > self.max_len {
                return Err(LineTooLong {
                    limit: self.max_len,
                }
                .into());
            }
            return Ok(None);
        };
        let start = self.head;
        let end = from + off;
        if end - start > self.max_len {
            self.head = end + 1;
            self.scanned = self.head;
            return Err(LineTooLong {
                limit: self.max_len,
            }
            .into());
        }
        let Some(lens) = attachment_lens(&self.buf[start..end]).map_err(DecodeError::Bin)? else {
            self.head = end + 1;
            self.scanned = self.head;
            return Ok(Some(Message {
                line: &self.buf[start..end],
                attachments: None,
            }));
        };
        let total = total_within(&lens, self.max_len).map_err(DecodeError::Bin)?;
        let stop = end + 1 + total + 1;
        if stop > self.tail && self.own && total >= OWN_MIN {
            // What arrived of them moves to their own allocation; the rest is read there.
            let mut bytes = vec![0; total];
            let have = self.tail - (end + 1);
            bytes[..have].copy_from_slice(&self.buf[end + 1..self.tail]);
            self.tail = end + 1;
            // The line's own `\n` counts as found: a buffer the line fills grows for the
            // closing one instead of taking the line for an overlong one.
            self.scanned = end;
            self.want = 0;
            self.side = Some(Side {
                bytes,
                filled: have,
                lens,
                end,
            });
            return Ok(None);
        }
        if stop > self.tail {
            // Not all here yet: the line is read again (found at once) when more is.
            self.scanned = end;
            self.want = stop - start;
            return Ok(None);
        }
        self.want = 0;
        self.head = stop;
        self.scanned = stop;
        if self.buf[stop - 1] != b'\n' {
            return Err(DecodeError::Bin(BinError::Unterminated));
        }
        Ok(Some(Message {
            line: &self.buf[start..end],
            attachments: Some(Attachments {
                lens,
                bytes: Cow::Borrowed(&self.buf[end + 1..stop - 1]),
            }),
        }))
    }

    /// Bytes held that do not form a complete line yet.
    pub fn pending(&self) -> usize {
        self.tail - self.head
    }

    /// The bytes read and not yet consumed by [`next_line`](Self::next_line): complete lines
    /// still to come, then the start of an incomplete one. A worker looks ahead in them (a
    /// `cancel` for the call it is running) without consuming them.
    pub fn unconsumed(&self) -> &[u8] {
        &self.buf[self.head..self.tail]
    }

    /// The buffer's current size.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

impl fmt::Debug for LineDecoder {
    // Not the buffer: it is mostly stale bytes, and can be megabytes long.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineDecoder")
            .field("pending", &self.pending())
            .field("capacity", &self.capacity())
            .field("max_len", &self.max_len)
            .finish()
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
    fn a_message_with_attachments_comes_whole_however_the_bytes_arrive() {
        let stream = b"{\"t\":\"ok\",\"id\":1}\n{\"b\":[3,0,2],\"t\":\"ok\",\"id\":2}\na\nc\n\n\n{\"t\":\"x\"}\n";
        // Every split of the stream into two reads gives the same messages.
        for split in 0..stream.len() {
            let mut d = LineDecoder::with_capacity(16, 64);
            let mut got = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                d.push(part).unwrap();
                while let Some(m) = d.next_message().unwrap() {
                    let bins = m
                        .attachments
                        .map(|a| a.iter().map(<[u8]>::to_vec).collect::<Vec<_>>());
                    got.push((String::from_utf8(m.line.to_vec()).unwrap(), bins));
                }
            }
            assert_eq!(got.len(), 3, "split at {split}");
            assert_eq!(got[0], (r#"{"t":"ok","id":1}"#.to_string(), None));
            assert_eq!(
                got[1].1,
                Some(vec![b"a\nc".to_vec(), vec![], b"\n\n".to_vec()])
            );
            assert_eq!(got[2].0, r#"{"t":"x"}"#);
        }
    }

    #[test]
    fn large_attachments_read_into_their_own_allocation_arrive_whole_however_split() {
        let big: Vec<u8> = (0..OWN_MIN + 5).map(|i| (i * 7) as u8).collect();
        let mut stream = Vec::new();
        stream.extend_from_slice(b"{\"t\":\"ok\",\"id\":1}\n");
        stream.extend_from_slice(
            format!("{{\"b\":[{}],\"t\":\"ok\",\"id\":2}}\n", big.len()).as_bytes(),
        );
        stream.extend_from_slice(&big);
        stream.extend_from_slice(b"\n{\"b\":[2,3],\"t\":\"ok\",\"id\":3}\nabcde\n");
        let two = (OWN_MIN / 2, OWN_MIN / 2 + 1);
        stream.extend_from_slice(
            format!("{{\"b\":[{},{}],\"t\":\"ok\"}}\n", two.0, two.1).as_bytes(),
        );
        stream.extend_from_slice(&big[..two.0 + two.1]);
        stream.extend_from_slice(b"\n{\"t\":\"x\"}\n");
        let want_two = vec![big[..two.0].to_vec(), big[two.0..two.0 + two.1].to_vec()];
        // Reads of every size from 1 byte up, each split at a few places, with a buffer
        // smaller than the line and one larger than everything.
        for (capacity, chunk) in [
            (16, 1),
            (16, 7),
            (64, 4096),
            (1 << 20, 50_000),
            (1 << 20, 1 << 20),
        ] {
            let mut d = LineDecoder::with_capacity(capacity, 1 << 20);
            d.own_attachments(true);
            let mut got = Vec::new();
            let mut owned = 0;
            let mut at = 0;
            while at < stream.len() {
                let spare = d.spare().unwrap();
                let n = spare.len().min(chunk).min(stream.len() - at);
                spare[..n].copy_from_slice(&stream[at..at + n]);
                d.filled(n);
                at += n;
                while let Some(m) = d.next_message().unwrap() {
                    let line = String::from_utf8(m.line.to_vec()).unwrap();
                    let bins = m.attachments.map(|a| {
                        owned += usize::from(matches!(a.bytes, Cow::Owned(_)));
                        a.into_vecs()
                    });
                    got.push((line, bins));
                }
            }
            let case = format!("capacity {capacity}, reads of {chunk}");
            assert_eq!(got.len(), 5, "{case}");
            assert_eq!(got[0], (r#"{"t":"ok","id":1}"#.to_string(), None), "{case}");
            assert_eq!(got[1].1, Some(vec![big.clone()]), "{case}");
            assert_eq!(
                got[2].1,
                Some(vec![b"ab".to_vec(), b"cde".to_vec()]),
                "{case}"
            );
            assert_eq!(got[3].1, Some(want_two.clone()), "{case}");
            assert_eq!(got[4].0, r#"{"t":"x"}"#, "{case}");
            if chunk < OWN_MIN {
                assert_eq!(owned, 2, "{case}: both large ones read on their own");
            }
        }
        // Off (the default), or all there with the line: in the buffer.
        let mut d = LineDecoder::with_capacity(1 << 20, 1 << 20);
        d.push(&stream).unwrap();
        d.own_attachments(true);
        d.next_message().unwrap();
        let m = d.next_message().unwrap().unwrap();
        assert!(matches!(m.attachments.unwrap().bytes, Cow::Borrowed(_)));
        // A wrong closing byte after owned attachments is the framing error it always was.
        let mut d = LineDecoder::with_capacity(64, 1 << 20);
        d.own_attachments(true);
        d.push(format!("{{\"b\":[{OWN_MIN}],\"t\":\"ok\"}}\n").as_bytes())
            .unwrap();
        assert!(d.next_message().unwrap().is_none());
        let n = d.spare().unwrap().len();
        assert_eq!(n, OWN_MIN, "read straight into the attachment");
        d.filled(n);
        assert!(d.next_message().unwrap().is_none());
        d.push(b"x").unwrap();
        assert_eq!(
            d.next_message().unwrap_err(),
            DecodeError::Bin(BinError::Unterminated)
        );
    }

    #[test]
    fn attachments_over_the_limit_or_misframed_are_errors_before_any_buffer_grows() {
        let mut d = LineDecoder::with_capacity(16, 100);
        d.push(b"{\"b\":[60,41],\"t\":\"ok\"}\n").unwrap();
        assert_eq!(
            d.next_message().unwrap_err().to_string(),
            "attachments of 101 bytes, more than the limit of 100 bytes"
        );
        assert!(d.capacity() < 100);
        let mut d = LineDecoder::with_capacity(16, 100);
        d.push(b"{\"b\":[2],\"t\":\"ok\"}\nabc\n").unwrap();
        assert_eq!(
            d.next_message().unwrap_err(),
            DecodeError::Bin(BinError::Unterminated)
        );
        let mut d = LineDecoder::with_capacity(16, 100);
        d.push(b"{\"b\":[x],\"t\":\"ok\"}\n").unwrap();
        assert_eq!(
            d.next_message().unwrap_err(),
            DecodeError::Bin(BinError::Malformed)
        );
        // A large attachment: the buffer is sized once for the whole message, then shrinks.
        let mut d = LineDecoder::with_capacity(16, 1 << 20);
        let head = b"{\"b\":[1000000],\"t\":\"ok\"}\n";
        d.push(head).unwrap();
        assert!(d.next_message().unwrap().is_none());
        assert_eq!(d.spare().unwrap().len(), 1_000_001);
        d.filled(1_000_001);
        assert_eq!(d.capacity(), head.len() + 1_000_001);
        d.buf[head.len() + 1_000_000] = b'\n';
        let m = d.next_message().unwrap().unwrap();
        assert_eq!(m.attachments.unwrap().bytes.len(), 1_000_000);
        d.spare().unwrap();
        // Kept for the next large message, then given back once small ones no longer need it.
        let grown = d.capacity();
        assert_eq!(grown, head.len() + 1_000_001);
        d.push(head).unwrap();
        assert!(d.next_message().unwrap().is_none());
        let n = d.spare().unwrap().len();
        d.filled(n);
        assert_eq!(d.capacity(), grown, "not reallocated");
        d.buf[head.len() + 1_000_000] = b'\n';
        let m = d.next_message().unwrap().unwrap();
        assert_eq!(m.attachments.unwrap().bytes.len(), 1_000_000);
        quiet(&mut d);
        assert_eq!(d.capacity(), 16);
    }

    // Small messages, enough of them for a grown buffer to shrink back.
    fn quiet(d: &mut LineDecoder) {
        for _ in 0..QUIET_TIMES {
            d.push(b"1\n").unwrap();
            assert_eq!(d.next_message().unwrap().unwrap().line, b"1");
        }
        d.spare().unwrap();
    }

    #[test]
    fn a_buffer_over_the_keep_size_shrinks_at_once() {
        let mut d = LineDecoder::with_capacity(16, 8 << 20);
        d.push(format!("{}\n", "x".repeat(KEEP)).as_bytes())
            .unwrap();
        assert_eq!(d.next_line().unwrap().unwrap().len(), KEEP);
        d.spare().unwrap();
        assert_eq!(d.capacity(), 16);
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
    fn splits_lines_across_reads() {
        let mut b = LineDecoder::with_capacity(16, 1024);
        b.push(b"a\nbb\nc").unwrap();
        assert_eq!(lines(&mut b), ["a", "bb"]);
        assert_eq!(b.pending(), 1);
        b.push(b"cc\n\n").unwrap();
        assert_eq!(lines(&mut b), ["ccc", ""]);
        assert_eq!(b.pending(), 0);
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
    fn grows_for_a_long_line_and_shrinks_back() {
        let mut b = LineDecoder::with_capacity(64, 1 << 20);
        let long = "x".repeat(100_000);
        for chunk in long.as_bytes().chunks(999) {
            b.push(chunk).unwrap();
            assert!(b.next_line().unwrap().is_none());
        }
        b.push(b"\nshort\n").unwrap();
        assert_eq!(lines(&mut b), [long.as_str(), "short"]);
        assert!(b.capacity() >= 100_001);
        quiet(&mut b);
        assert_eq!(b.capacity(), 64);
    }

    #[test]
    fn the_default_buffer_shrinks_back_too() {
        let mut d = LineDecoder::new(1 << 20);
        d.push(format!("{}\n", "x".repeat(500_000)).as_bytes())
            .unwrap();
        assert_eq!(d.next_line().unwrap().unwrap().len(), 500_000);
        assert!(d.capacity() > 4 * LineDecoder::DEFAULT_CAPACITY);
        quiet(&mut d);
        assert_eq!(d.capacity(), LineDecoder::DEFAULT_CAPACITY);
    }

    #[test]
    fn compacts_instead_of_growing_when_lines_are_consumed() {
        let mut d = LineDecoder::new(1 << 20);
        for i in 0..100_000 {
            d.push(format!("{i}\n").as_bytes()).unwrap();
            assert_eq!(d.next_line().unwrap().unwrap(), i.to_string().as_bytes());
        }
        assert_eq!(d.capacity(), 64 * 1024);
        let mut b = LineDecoder::with_capacity(64, 1 << 20);
        for i in 0..10_000 {
            b.push(format!("{i}\n").as_bytes()).unwrap();
            assert_eq!(b.next_line().unwrap().unwrap(), i.to_string().as_bytes());
        }
        assert_eq!(b.capacity(), 64);
    }

    #[test]
    fn rejects_a_line_over_the_limit() {
        let mut d = LineDecoder::new(100);
        let r = d.push(&[b'x'; 300]).and_then(|_| d.next_line().map(|_| ()));
        assert_eq!(r, Err(LineTooLong { limit: 100 }));
    }

    #[test]
    fn rejects_a_complete_line_over_the_limit() {
        let mut d = LineDecoder::new(10);
        d.push(b"\"0123456789abc\"\n").unwrap();
        assert_eq!(d.next_line(), Err(LineTooLong { limit: 10 }));
    }

    #[test]
    fn a_huge_line_is_an_error_not_an_allocation() {
        let mut b = LineDecoder::with_capacity(16, 100);
        let r = b
            .push(&[b'x'; 10_000])
            .and_then(|_| b.next_line().map(|_| ()));
        assert_eq!(r, Err(LineTooLong { limit: 100 }));
        assert!(b.capacity() <= 101);
        // A complete line just over the limit, already in the buffer.
        let mut b = LineDecoder::with_capacity(1024, 10);
        b.push(b"0123456789a\n").unwrap();
        assert_eq!(b.next_line(), Err(LineTooLong { limit: 10 }));
        // Exactly at the limit is fine.
        let mut b = LineDecoder::with_capacity(4, 10);
        b.push(b"0123456789\n").unwrap();
        assert_eq!(lines(&mut b), ["0123456789"]);
    }

    #[test]
    fn the_error_reads_as_the_pool_reports_it() {
        assert_eq!(
            LineTooLong { limit: 100 }.to_string(),
            "message larger than the limit of 100 bytes"
        );
    }
}
