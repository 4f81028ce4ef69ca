//! Binary attachments (protocol version 3): a message whose first member is `"b"`, the byte
//! lengths of its attachments, is followed on the stream by their bytes, back to back, and one
//! `\n`. In the message's values, `{"$b":i}` stands for attachment `i`. A message without
//! `"b"` is exactly a version 2 message, so nothing changes for workers that send no binary.

use std::borrow::Cow;
use std::fmt;

/// How a message with attachments starts: `"b"` is its first member, so a line is told apart
/// by its first bytes, without parsing it.
pub const BIN_PREFIX: &[u8] = br#"{"b":["#;

/// The protocol version these encoders and decoders speak (the pool tells workers in
/// `COMRADE_PROTOCOL`).
pub const PROTOCOL_VERSION: u32 = 3;

/// The attachments of one message: their bytes, back to back, and each one's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachments<'a> {
    /// Each attachment's length, in order.
    pub lens: Vec<usize>,
    /// Their bytes, back to back: in the decoder's buffer, or in an allocation of their own
    /// (large ones, with [`crate::LineDecoder::own_attachments`]).
    pub bytes: Cow<'a, [u8]>,
}

impl Attachments<'_> {
    /// Each attachment's bytes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        split(&self.lens, &self.bytes)
    }

    /// Each attachment as a `Vec` of its own: a single attachment read into its own allocation
    /// is handed over as it is, the others are copied.
    pub fn into_vecs(self) -> Vec<Vec<u8>> {
        match self.bytes {
            Cow::Owned(v) if self.lens.len() == 1 => vec![v],
            bytes => split(&self.lens, &bytes).map(<[u8]>::to_vec).collect(),
        }
    }
}

fn split<'b>(lens: &'b [usize], bytes: &'b [u8]) -> impl Iterator<Item = &'b [u8]> + 'b {
    let mut at = 0;
    lens.iter().map(move |&n| {
        let s = &bytes[at..at + n];
        at += n;
        s
    })
}

/// A message that breaks the attachment framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinError {
    /// The `"b"` member is not a list of lengths (`{"b":[N,…],`).
    Malformed,
    /// The attachments together are longer than the limit.
    TooLong {
        /// Their total length.
        bytes: u128,
        /// The limit.
        limit: usize,
    },
    /// The byte after the attachments is not the `\n` that ends them.
    Unterminated,
}

impl fmt::Display for BinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinError::Malformed => f.write_str(r#"malformed attachment list (want {"b":[N,…],…)"#),
            BinError::TooLong { bytes, limit } => write!(
                f,
                "attachments of {bytes} bytes, more than the limit of {limit} bytes"
            ),
            BinError::Unterminated => {
                f.write_str("attachments not followed by a newline (a length is wrong)")
            }
        }
    }
}

impl std::error::Error for BinError {}

/// The attachment lengths a message line declares: `None` for a line that does not start with
/// [`BIN_PREFIX`] (a message without attachments).
pub fn attachment_lens(line: &[u8]) -> Result<Option<Vec<usize>>, BinError> {
    let Some(mut rest) = line.strip_prefix(BIN_PREFIX) else {
        return Ok(None);
    };
    let mut lens = Vec::new();
    if let Some(r) = rest.strip_prefix(b"]") {
        rest = r;
    } else {
        loop {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            // No leading zeros (JSON), at most 19 digits (fits u64).
            if digits == 0 || digits > 19 || (digits > 1 && rest[0] == b'0') {
                return Err(BinError::Malformed);
            }
            let n: u64 = std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or(BinError::Malformed)?;
            lens.push(usize::try_from(n).unwrap_or(usize::MAX));
            rest = &rest[digits..];
            match rest.split_first() {
                Some((b',', r)) => rest = r,
                Some((b']', r)) => {
                    rest = r;
                    break;
                }
                _ => return Err(BinError::Malformed),
            }
        }
    }
    // More members follow (`t` at least).
    if rest.first() != Some(&b',') {
        return Err(BinError::Malformed);
    }
    Ok(Some(lens))
}

/// Total length of attachments, checked against `limit`.
pub(crate) fn total_within(lens: &[usize], limit: usize) -> Result<usize, BinError> {
    let total: u128 = lens.iter().map(|&n| n as u128).sum();
    if total > limit as u128 {
        return Err(BinError::TooLong {
            bytes: total,
            limit,
        });
    }
    Ok(total as usize)
}

/// Writes the start of a message with attachments of these lengths: `{"b":[N,…],`. The rest of
/// the message (its other members and `}`) follows, then `\n`, the attachments and `\n`.
pub fn push_bin_prefix(out: &mut Vec<u8>, lens: impl IntoIterator<Item = usize>) {
    out.extend_from_slice(BIN_PREFIX);
    let mut first = true;
    for n in lens {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(n.to_string().as_bytes());
    }
    out.extend_from_slice(b"],");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_read_from_the_first_member_only() {
        assert_eq!(attachment_lens(br#"{"t":"ok","id":1}"#), Ok(None));
        assert_eq!(attachment_lens(br#"{"b":[],"t":"ok"}"#), Ok(Some(vec![])));
        assert_eq!(
            attachment_lens(br#"{"b":[5,0,1048576],"t":"ok"}"#),
            Ok(Some(vec![5, 0, 1 << 20]))
        );
        for bad in [
            &br#"{"b":[5"#[..],
            br#"{"b":[5]}"#,
            br#"{"b":[-1],"t":"ok"}"#,
            br#"{"b":[01],"t":"ok"}"#,
            br#"{"b":[1,],"t":"ok"}"#,
            br#"{"b":[1.5],"t":"ok"}"#,
            br#"{"b":[99999999999999999999],"t":"ok"}"#,
        ] {
            assert_eq!(
                attachment_lens(bad),
                Err(BinError::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_prefix_is_what_the_reader_looks_for() {
        let mut out = Vec::new();
        push_bin_prefix(&mut out, [3, 0]);
        out.extend_from_slice(br#""t":"ok","id":1}"#);
        assert_eq!(out, br#"{"b":[3,0],"t":"ok","id":1}"#);
        assert_eq!(attachment_lens(&out), Ok(Some(vec![3, 0])));
        let a = Attachments {
            lens: vec![3, 0, 2],
            bytes: Cow::Borrowed(b"abcde"),
        };
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![&b"abc"[..], b"", b"de"]);
        assert_eq!(a.into_vecs(), vec![b"abc".to_vec(), vec![], b"de".to_vec()]);
        let own = Attachments {
            lens: vec![5],
            bytes: Cow::Owned(b"abcde".to_vec()),
        };
        let at = own.bytes.as_ptr();
        let v = own.into_vecs();
        assert_eq!(v, vec![b"abcde".to_vec()]);
        assert_eq!(v[0].as_ptr(), at, "handed over, not copied");
        assert!(total_within(&[usize::MAX, 2], usize::MAX).is_err());
        assert_eq!(total_within(&[3, 4], 7), Ok(7));
    }
}
