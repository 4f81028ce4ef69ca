//! Long string arguments sent raw (issue 10): lib/json.js writes a well-formed string of at
//! least 256 UTF-16 units as `\x01<units>:<the string itself>` instead of its JSON text, which
//! saves the parent's JS thread the scan for characters to escape (about 1 ns per character).
//! The scan costs a fraction of that here, over the UTF-8 napi makes of the batch anyway.
//! JSON text never holds a raw control character, so a `\x01` outside a raw string is always a
//! marker. The output is JSON.stringify's text for the string, byte for byte (lone surrogates,
//! which UTF-8 cannot carry, never come raw: lib/json.js sends those strings as JSON).

use std::borrow::Cow;

pub const MARK: u8 = 1;

/// `text` with every raw string replaced by its JSON text; `Err` for a malformed marker.
pub fn expand(text: String) -> Result<String, String> {
    match memchr::memchr(MARK, text.as_bytes()) {
        None => Ok(text),
        Some(first) => expand_from(&text, first).map(Cow::into_owned),
    }
}

fn expand_from(text: &str, first: usize) -> Result<Cow<'_, str>, String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len() + 64);
    let mut pos = 0;
    let mut at = first;
    loop {
        out.push_str(&text[pos..at]);
        let mut i = at + 1;
        let mut units: usize = 0;
        let mut digits = 0;
        while i < b.len() && b[i].is_ascii_digit() && digits < 12 {
            units = units * 10 + usize::from(b[i] - b'0');
            i += 1;
            digits += 1;
        }
        if digits == 0 || i >= b.len() || b[i] != b':' {
            return Err(format!("malformed raw string marker at byte {at}"));
        }
        i += 1;
        let end = utf16_end(text, i, units)
            .ok_or_else(|| format!("raw string at byte {at} is shorter than {units} units"))?;
        quote(&text[i..end], &mut out);
        pos = end;
        match memchr::memchr(MARK, &b[pos..]) {
            Some(k) => at = pos + k,
            None => {
                out.push_str(&text[pos..]);
                return Ok(Cow::Owned(out));
            }
        }
    }
}

/// The byte index after `units` UTF-16 units of `text` from byte `start`, if it has them.
fn utf16_end(text: &str, start: usize, units: usize) -> Option<usize> {
    let b = text.as_bytes();
    // Mostly ASCII: one byte per unit.
    if let Some(end) = start.checked_add(units) {
        if end <= b.len() && b[start..end].is_ascii() {
            return Some(end);
        }
    }
    let mut left = units;
    for (k, c) in text.get(start..)?.char_indices() {
        if left == 0 {
            return Some(start + k);
        }
        left = left.checked_sub(c.len_utf16())?;
    }
    (left == 0).then_some(text.len())
}

/// Appends `s` as JSON.stringify writes it (well-formed `s`), which is byte for byte what
/// serde_json writes: quoted, with `"` `\\` and control characters escaped (\b \f \n \r \t,
/// the others as \u00xx in lowercase hex).
pub fn quote(s: &str, out: &mut String) {
    // SAFETY: push_json_str appends `s`'s own bytes and ASCII escapes: valid UTF-8.
    comrade_protocol::push_json_str(unsafe { out.as_mut_vec() }, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> String {
        format!("\x01{}:{}", s.encode_utf16().count(), s)
    }

    #[test]
    fn plain_text_is_untouched() {
        assert_eq!(expand("1,\"a\"\n2".to_owned()).unwrap(), "1,\"a\"\n2");
    }

    #[test]
    fn escapes_as_json_stringify() {
        let s = "a\"b\\c\u{8}\u{c}\n\r\t\u{0}\u{1}\u{1f}\u{7f}é€😀\u{2028}:\x01";
        let text = format!("1,{},[{}]\n{}", raw(s), raw(s), raw("x"));
        let q = "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0000\\u0001\\u001f\u{7f}é€😀\u{2028}:\\u0001\"";
        assert_eq!(expand(text).unwrap(), format!("1,{q},[{q}]\n\"x\""));
    }

    #[test]
    fn malformed_markers_are_errors() {
        assert!(expand("\x01".to_owned()).is_err());
        assert!(expand("\x01x:a".to_owned()).is_err());
        assert!(expand("\x015:abcd".to_owned()).is_err());
        assert!(expand("\x012:😀".to_owned()).is_ok());
        assert!(expand("\x011:😀".to_owned()).is_err());
    }
}
