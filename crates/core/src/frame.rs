//! Line framing for worker channels: one JSON value per `\n`-terminated line, as Node's IPC
//! channel speaks it in `json` serialization mode. The decoder is bounded: a line longer than
//! `max_len` is an error, never an unbounded buffer. It is comrade-protocol's, shared with the
//! Rust worker; the Node IPC helpers below are the engine's own.

pub use comrade_protocol::{LineDecoder, LineTooLong as FrameTooLarge};

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

    #[test]
    fn the_decoder_keeps_its_names_here() {
        let mut d = LineDecoder::new(10);
        d.push(b"0123456789abc\n").unwrap();
        let e: FrameTooLarge = d.next_line().unwrap_err();
        assert_eq!(e, FrameTooLarge { limit: 10 });
        assert_eq!(e.to_string(), "message larger than the limit of 10 bytes");
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
