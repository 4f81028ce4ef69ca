//! The pure parts of the wire protocol (`docs/PROTOCOL.md`), from the `comrade-protocol`
//! crate: splitting the byte stream into lines, decoding the pool's messages, and encoding the
//! worker's. No I/O happens here.
//!
//! Encoders append whole lines (with the trailing `\n`) to a caller's buffer, so many replies
//! can leave in one `write`.

pub use comrade_protocol::{
    decode_pool_message as decode, encode_ack, encode_event, encode_ok, encode_ok_empty,
    encode_progress, encode_ready, encode_retire, FrameError, LineDecoder, LineTooLong,
    PoolMessage as Message, DEFAULT_MAX_MESSAGE,
};

use crate::error::Error;

/// Appends `{"t":"err","id":N,"e":E}`.
pub fn encode_err(out: &mut Vec<u8>, id: u32, error: &Error) {
    comrade_protocol::encode_err(out, id, &error.to_wire());
}

/// Appends `{"t":"ack","id":N,"e":E}`: the message handler failed with `error`.
pub fn encode_ack_err(out: &mut Vec<u8>, id: u32, error: &Error) {
    comrade_protocol::encode_ack_err(out, id, &error.to_wire());
}

/// Appends `{"t":"fatal","e":E}`.
pub fn encode_fatal(out: &mut Vec<u8>, error: &Error) {
    comrade_protocol::encode_fatal(out, &error.to_wire());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    // The protocol crate tests every encoder; here, only what the worker adds: its `Error`
    // as the wire's error object.
    #[test]
    fn errors_go_out_as_the_wire_error_object() {
        let mut out = Vec::new();
        encode_err(
            &mut out,
            3,
            &Error::new("no").name("RangeError").code("E").field("n", 1),
        );
        encode_fatal(&mut out, &Error::new("init threw"));
        let lines: Vec<Value> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                json!({"t": "err", "id": 3, "e": {"name": "RangeError", "message": "no", "code": "E", "n": 1}}),
                json!({"t": "fatal", "e": {"name": "Error", "message": "init threw"}}),
            ]
        );
        assert!(out.ends_with(b"\n"));
    }
}
