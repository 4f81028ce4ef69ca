//! The line decoder: any bytes read in any chunks give the lines of splitting at once, an
//! over-long line is an error after exactly the lines before it, and the buffer stays within
//! the limit (the property test `crates/protocol/tests/line_props.rs`, unbounded).
#![no_main]

use comrade_protocol::LineDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, u8, Vec<u8>, Vec<u8>)| {
    let (max_len, initial, chunks, data) = input;
    let (max_len, initial) = (usize::from(max_len), usize::from(initial));
    let chunks: Vec<usize> = chunks.iter().map(|&c| usize::from(c) + 1).collect();
    let chunks = if chunks.is_empty() { vec![7] } else { chunks };

    // What splitting at once gives, up to the first over-long line.
    let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let tail = parts.pop().unwrap_or_default();
    let mut want = Vec::new();
    let mut too_long = tail.len() > max_len;
    for p in parts {
        if p.len() > max_len {
            too_long = true;
            break;
        }
        want.push(p.to_vec());
    }

    // Reads as a socket gives them: at most a chunk into spare(), then every line drained.
    let bound = initial.max(16).max(max_len + 1);
    let mut dec = LineDecoder::with_capacity(initial, max_len);
    let mut got = Vec::new();
    let mut failed = false;
    let (mut at, mut i) = (0, 0);
    'read: loop {
        let spare = match dec.spare() {
            Ok(s) => s,
            Err(_) => {
                failed = true;
                break;
            }
        };
        if at == data.len() {
            break;
        }
        let n = chunks[i % chunks.len()]
            .min(spare.len())
            .min(data.len() - at);
        assert!(n > 0);
        spare[..n].copy_from_slice(&data[at..at + n]);
        dec.filled(n);
        at += n;
        i += 1;
        assert!(dec.capacity() <= bound);
        loop {
            match dec.next_line() {
                Ok(Some(l)) => got.push(l.to_vec()),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'read;
                }
            }
        }
    }
    assert_eq!(got, want);
    assert_eq!(failed, too_long);
});
