//! The bits of JSON the encoders write by hand: integers and strings.

/// The decimal digits of `n`, written into the end of `buf`.
pub fn itoa(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Appends the decimal digits of `n`.
pub fn push_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(itoa(n, &mut [0; 10]));
}

/// Whether `b` holds nothing JSON escapes: no `"`, `\\` or control character below 0x20
/// (what serde_json and JSON.stringify escape in well-formed text). A branch-free pass per
/// chunk, which the compiler vectorizes: long strings are checked at memory speed.
pub fn json_plain(b: &[u8]) -> bool {
    let hit = |c: &u8| (*c < 0x20) | (*c == b'"') | (*c == b'\\');
    let mut chunks = b.chunks_exact(32);
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |acc, c| acc | hit(c)) {
            return false;
        }
    }
    !chunks.remainder().iter().any(hit)
}

/// Appends `s` as a JSON string, byte for byte what `serde_json` writes (and JSON.stringify,
/// for well-formed text). Most strings need no escapes, so those are copied between quotes
/// without going through serde.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if json_plain(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itoa_writes_decimal_digits() {
        for n in [0, 7, 10, 4_096, 1_000_000, u32::MAX] {
            assert_eq!(itoa(n, &mut [0; 10]), n.to_string().as_bytes());
        }
    }

    #[test]
    fn push_u32_appends() {
        let mut out = b"id:".to_vec();
        push_u32(&mut out, 0);
        out.push(b',');
        push_u32(&mut out, u32::MAX);
        assert_eq!(out, b"id:0,4294967295");
    }

    #[test]
    fn strings_are_quoted_as_serde_json_quotes_them() {
        for s in [
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "line\nbreak\r\t",
            "\u{0}\u{1f}",
            "\u{7f} del is not escaped",
            "é € 𝄞",
            "\u{2028}\u{2029}",
            "ends with a quote\"",
        ] {
            let mut out = b"x".to_vec();
            push_json_str(&mut out, s);
            assert_eq!(out[1..], serde_json::to_vec(s).unwrap()[..], "{s:?}");
        }
        let mut out = Vec::new();
        push_json_str(&mut out, "cache");
        assert_eq!(out, b"\"cache\"");
    }
}
