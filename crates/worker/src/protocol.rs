//! The pure parts of the wire protocol (`docs/PROTOCOL.md`), from the `comrade-protocol`
//! crate: splitting the byte stream into lines, decoding the pool's messages, and encoding the
//! worker's. No I/O happens here.
//!
//! Encoders append whole lines (with the trailing `\n`) to a caller's buffer, so many replies
//! can leave in one `write`.

pub use comrade_protocol::{
    decode_pool_message as decode, encode_event, encode_ok, encode_ok_empty, encode_progress,
    encode_ready, encode_retire, FrameError, LineDecoder, LineTooLong, PoolMessage as Message,
    DEFAULT_MAX_MESSAGE,
};

use crate::error::Error;

/// Appends `{"t":"err","id":N,"e":E}`.
pub fn encode_err(out: &mut Vec<u8>, id: u32, error: &Error) {
    comrade_protocol::encode_err(out, id, &error.to_wire());
}

/// Appends `{"t":"fatal","e":E}`.
pub fn encode_fatal(out: &mut Vec<u8>, error: &Error) {
    comrade_protocol::encode_fatal(out, &error.to_wire());
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
}
