//! Property tests of the line decoder: any bytes, read in any chunks, give the lines that
//! splitting the whole input at once gives; a line over the limit is an error (after exactly
//! the lines before it); the buffer never grows past the limit plus its newline. A bounded
//! number of cases, so they run in the ordinary `cargo test`.

use comrade_protocol::{LineDecoder, LineTooLong};
use proptest::prelude::*;

/// Bytes with many newlines (a quarter of them), so lines are short and numerous, and any
/// other byte (invalid UTF-8 included: the decoder does not care).
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![1 => Just(b'\n'), 3 => any::<u8>()], 0..max)
}

/// What the decoder must produce: the complete lines up to the first one over `max_len`,
/// and whether such a line (complete, or the unterminated tail) exists.
fn expected(data: &[u8], max_len: usize) -> (Vec<Vec<u8>>, bool) {
    let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let tail = parts.pop().unwrap_or_default();
    let mut out = Vec::new();
    for p in parts {
        if p.len() > max_len {
            return (out, true);
        }
        out.push(p.to_vec());
    }
    (out, tail.len() > max_len)
}

/// Feeds `data` the way the engine reads a socket: a read of at most the next chunk size
/// into `spare()`, `filled(n)`, then every complete line drained. Stops at the first error.
/// Checks the capacity bound after every step.
fn read_like_a_socket(
    dec: &mut LineDecoder,
    data: &[u8],
    chunks: &[usize],
    bound: usize,
) -> (Vec<Vec<u8>>, Option<LineTooLong>) {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    loop {
        let spare = match dec.spare() {
            Ok(s) => s,
            Err(e) => return (out, Some(e)),
        };
        assert!(spare.len() <= bound, "spare {} > {bound}", spare.len());
        if at == data.len() {
            return (out, None);
        }
        let n = chunks[i % chunks.len()]
            .min(spare.len())
            .min(data.len() - at);
        assert!(n > 0, "spare() gave no room");
        spare[..n].copy_from_slice(&data[at..at + n]);
        dec.filled(n);
        at += n;
        i += 1;
        assert!(
            dec.capacity() <= bound,
            "capacity {} > {bound}",
            dec.capacity()
        );
        loop {
            match dec.next_line() {
                Ok(Some(l)) => out.push(l.to_vec()),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Reads of any size (as the engine and the worker read): the same lines as splitting at
    /// once, or an error exactly at the first over-long line; capacity within the bound.
    #[test]
    fn any_chunking_gives_the_lines_of_splitting_at_once(
        data in bytes(3000),
        chunks in prop::collection::vec(1usize..400, 1..20),
        max_len in 0usize..80,
        initial in 0usize..100,
    ) {
        let mut dec = LineDecoder::with_capacity(initial, max_len);
        let bound = initial.max(16).max(max_len + 1);
        let (want, too_long) = expected(&data, max_len);
        let (got, err) = read_like_a_socket(&mut dec, &data, &chunks, bound);
        prop_assert_eq!(&got, &want);
        if too_long {
            prop_assert_eq!(err, Some(LineTooLong { limit: max_len }));
        } else {
            prop_assert_eq!(err, None);
            let tail = data.len() - data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            prop_assert_eq!(dec.pending(), tail);
        }
        prop_assert!(dec.capacity() <= bound);
    }

    /// Lines under a generous limit: every line comes out intact whatever the chunking, and
    /// after a long line is consumed the buffer shrinks back (memory does not stay pinned).
    #[test]
    fn long_lines_under_the_limit_pass_and_the_buffer_shrinks_back(
        lens in prop::collection::vec(0usize..5000, 1..12),
        chunks in prop::collection::vec(1usize..3000, 1..8),
    ) {
        let max_len = 5000;
        let initial = 64;
        let mut data = Vec::new();
        for (i, len) in lens.iter().enumerate() {
            data.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, *len));
            data.push(b'\n');
        }
        let mut dec = LineDecoder::with_capacity(initial, max_len);
        let (got, err) = read_like_a_socket(&mut dec, &data, &chunks, max_len + 1);
        prop_assert_eq!(err, None);
        prop_assert_eq!(got.len(), lens.len());
        for (line, len) in got.iter().zip(&lens) {
            prop_assert_eq!(line.len(), *len);
        }
        // A grown buffer is kept while lines need it, and given back after a few short ones.
        for _ in 0..16 {
            dec.push(b"x\n").unwrap();
            prop_assert_eq!(dec.next_line().unwrap(), Some(&b"x"[..]));
        }
        dec.spare().unwrap();
        prop_assert!(dec.capacity() <= 4 * initial, "capacity {} after draining", dec.capacity());
    }

    /// `push` (bytes already held) in chunks no longer than the limit, draining after each:
    /// the same lines as splitting at once.
    #[test]
    fn push_in_any_chunks_gives_the_same_lines(
        data in bytes(2000),
        chunks in prop::collection::vec(1usize..200, 1..10),
        max_len in 1usize..300,
    ) {
        let mut dec = LineDecoder::with_capacity(16, max_len);
        let (want, too_long) = expected(&data, max_len);
        let mut got = Vec::new();
        let mut err = None;
        let mut rest = &data[..];
        let mut i = 0;
        'feed: while !rest.is_empty() {
            let n = chunks[i % chunks.len()].min(max_len).min(rest.len());
            i += 1;
            if let Err(e) = dec.push(&rest[..n]) {
                err = Some(e);
                break;
            }
            rest = &rest[n..];
            loop {
                match dec.next_line() {
                    Ok(Some(l)) => got.push(l.to_vec()),
                    Ok(None) => break,
                    Err(e) => {
                        err = Some(e);
                        break 'feed;
                    }
                }
            }
        }
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(err.is_some(), too_long);
        // What is held is at most a partial line and one chunk, both within the limit: the
        // buffer stays within a few times the limit.
        prop_assert!(dec.capacity() <= 4 * 16usize.max(max_len + 1), "capacity {}", dec.capacity());
    }
}

/// Found by `push_in_any_chunks_gives_the_same_lines`: one push holding more bytes than the
/// limit, all in short lines, was refused as an over-long line.
#[test]
fn one_push_of_many_short_lines_longer_than_the_limit_in_total() {
    let mut dec = LineDecoder::with_capacity(16, 10);
    dec.push(&b"a\n".repeat(100)).unwrap();
    let mut n = 0;
    while let Some(l) = dec.next_line().unwrap() {
        assert_eq!(l, b"a");
        n += 1;
    }
    assert_eq!(n, 100);
}
