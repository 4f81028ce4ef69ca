//! Line framing for worker channels: one JSON value per `\n`-terminated line, as Node's IPC
//! channel speaks it in `json` serialization mode. The decoder is bounded: a line longer than
//! `max_len` is an error, never an unbounded buffer. It is comrade-protocol's, shared with the
//! Rust worker; the Node IPC helpers below are the engine's own.

pub use comrade_protocol::{LineDecoder, LineTooLong as FrameTooLarge};

/// The start of every message comrade's ComputeCluster preload (`lib/compute-cluster-worker.js`)
/// sends: `{"cmd":"NODE_COMRADE","id":ID,"m":MESSAGE}`, ID the id of the job the worker's script
/// last received (-1: none yet), MESSAGE what the script passed to `process.send`. Recognised by
/// this prefix, without parsing MESSAGE.
pub const IPC_REPLY_PREFIX: &[u8] = br#"{"cmd":"NODE_COMRADE","id":"#;

/// The start of every job the engine writes to a ComputeCluster worker:
/// `{"cmd":"NODE_COMRADE_JOB","id":ID,"m":ARGS}`. Node hands a `NODE_` command to the preload
/// (as an internal message), which notes ID and gives ARGS to the script as a `'message'`.
const IPC_JOB_PREFIX: &[u8] = br#"{"cmd":"NODE_COMRADE_JOB","id":"#;

/// Node's own message for `process.send(message, handle)`; Node builds it with `cmd` first.
const NODE_HANDLE_PREFIX: &[u8] = br#"{"cmd":"NODE_HANDLE","#;

/// A `NODE_` command written first, as `JSON.stringify` writes an object whose first key is
/// `cmd` (Node's own messages, and the script's, which the preload passes on as they are).
const NODE_CMD_PREFIX: &[u8] = br#"{"cmd":"NODE_"#;

/// The frame of a ComputeCluster job (see [`IPC_JOB_PREFIX`]): `args` is its JSON text.
pub fn ipc_job_frame(id: u32, args: &str) -> Box<[u8]> {
    let mut f = Vec::with_capacity(IPC_JOB_PREFIX.len() + args.len() + 16);
    f.extend_from_slice(IPC_JOB_PREFIX);
    comrade_protocol::push_u32(&mut f, id);
    f.extend_from_slice(br#","m":"#);
    f.extend_from_slice(args.as_bytes());
    f.push(b'}');
    f.into_boxed_slice()
}

/// What one line on a ComputeCluster worker's channel is.
#[derive(Debug, PartialEq, Eq)]
pub enum IpcLine<'a> {
    /// A message the script sent through the preload, sent while job `job` was the last the
    /// script had received (`None`: none yet, or an id no job can have). `payload` is the
    /// message's JSON text, not yet validated.
    Reply { job: Option<u32>, payload: &'a [u8] },
    /// Node's message for a message sent with a handle (`process.send(msg, handle)`).
    Handle,
    /// Another of Node's internal messages (`{"cmd":"NODE_..."}`): never a reply.
    Internal,
    /// Anything else: a message that did not pass through the preload.
    Plain,
}

/// Classifies a line from a ComputeCluster worker. The preload's envelope is recognised by its
/// prefix and its payload found without parsing it; `Err` for an envelope that is malformed.
/// Only a line that is none of the cheap prefixes and holds `NODE_` is parsed (as a value), to
/// find a `cmd` that is not the first key.
pub fn classify_ipc(line: &[u8]) -> Result<IpcLine<'_>, String> {
    if let Some(rest) = line.strip_prefix(IPC_REPLY_PREFIX) {
        return parse_envelope(rest);
    }
    if line.starts_with(NODE_HANDLE_PREFIX) {
        return Ok(IpcLine::Handle);
    }
    if is_node_internal(line) {
        return Ok(IpcLine::Internal);
    }
    Ok(IpcLine::Plain)
}

/// `ID,"m":PAYLOAD}` after the envelope's prefix.
fn parse_envelope(rest: &[u8]) -> Result<IpcLine<'_>, String> {
    let malformed = || "malformed comrade envelope".to_string();
    let digits_at = usize::from(rest.first() == Some(&b'-'));
    let digits = rest[digits_at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return Err(malformed());
    }
    let end = digits_at + digits;
    let job = if digits_at == 1 {
        None
    } else {
        // Too many digits for a job id: no job has it.
        std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|d| d.parse::<u32>().ok())
    };
    let payload = rest[end..]
        .strip_prefix(br#","m":"#)
        .and_then(|p| p.strip_suffix(b"}"))
        .ok_or_else(malformed)?;
    Ok(IpcLine::Reply { job, payload })
}

/// True for Node's internal IPC messages (`{"cmd":"NODE_..."}`, the command longer than
/// `NODE_`), which Node itself swallows and which must never reach user code. A command written
/// first is found by its prefix; otherwise the line is parsed only when the cheap substring
/// test hits, so the common path costs one `memmem`. A line found by its prefix must still be
/// valid JSON.
pub fn is_node_internal(line: &[u8]) -> bool {
    if let Some(rest) = line.strip_prefix(NODE_CMD_PREFIX) {
        if rest.first().is_some_and(|&b| b != b'"') && validate_json(line).is_ok() {
            return true;
        }
    }
    if memchr::memmem::find(line, b"NODE_").is_none() {
        return false;
    }
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(map)) => matches!(
            map.get("cmd"),
            Some(serde_json::Value::String(s)) if s.len() > 5 && s.starts_with("NODE_")
        ),
        _ => false,
    }
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
        // Node wants more than the prefix.
        assert!(!is_node_internal(br#"{"cmd":"NODE_"}"#));
        assert!(!is_node_internal(br#"{"cmd":"NODE_X" garbage"#));
    }

    #[test]
    fn an_internal_command_written_first_is_found_whatever_the_rest_holds() {
        // serde's Value refuses both; Node (and JSON.parse) take them.
        let deep = format!(
            r#"{{"cmd":"NODE_X","v":{}1{}}}"#,
            "[".repeat(300),
            "]".repeat(300)
        );
        assert!(is_node_internal(deep.as_bytes()));
        assert!(is_node_internal(br#"{"cmd":"NODE_X","v":"\ud800"}"#));
        assert_eq!(classify_ipc(deep.as_bytes()), Ok(IpcLine::Internal));
    }

    #[test]
    fn the_preloads_envelope_is_found_without_parsing_its_payload() {
        let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
        for payload in [
            r#"{"a":[1,2]}"#,
            r#""\ud800""#,
            "null",
            &deep,
            r#"{"cmd":"NODE_X"}"#,
        ] {
            let line = format!(r#"{{"cmd":"NODE_COMRADE","id":7,"m":{payload}}}"#);
            assert_eq!(
                classify_ipc(line.as_bytes()),
                Ok(IpcLine::Reply {
                    job: Some(7),
                    payload: payload.as_bytes()
                }),
                "{line}"
            );
            assert!(validate_json(payload.as_bytes()).is_ok(), "{payload}");
        }
        // Sent before any job arrived, or with an id no job has.
        for id in ["-1", "4294967296", "99999999999999999999"] {
            let line = format!(r#"{{"cmd":"NODE_COMRADE","id":{id},"m":1}}"#);
            assert_eq!(
                classify_ipc(line.as_bytes()),
                Ok(IpcLine::Reply {
                    job: None,
                    payload: b"1"
                })
            );
        }
        assert_eq!(
            classify_ipc(br#"{"cmd":"NODE_COMRADE","id":4294967295,"m":1}"#),
            Ok(IpcLine::Reply {
                job: Some(u32::MAX),
                payload: b"1"
            })
        );
        for bad in [
            &br#"{"cmd":"NODE_COMRADE","id":7}"#[..],
            br#"{"cmd":"NODE_COMRADE","id":,"m":1}"#,
            br#"{"cmd":"NODE_COMRADE","id":-,"m":1}"#,
            br#"{"cmd":"NODE_COMRADE","id":7,"m":1"#,
            br#"{"cmd":"NODE_COMRADE","id":"#,
        ] {
            assert!(
                classify_ipc(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_handle_is_told_from_other_lines() {
        assert_eq!(
            classify_ipc(br#"{"cmd":"NODE_HANDLE","type":"net.Server","msg":{"cmd":"NODE_COMRADE","id":1,"m":2}}"#),
            Ok(IpcLine::Handle)
        );
        assert_eq!(
            classify_ipc(br#"{"cmd":"NODE_CLUSTER","act":"x"}"#),
            Ok(IpcLine::Internal)
        );
        assert_eq!(classify_ipc(br#"{"x":1}"#), Ok(IpcLine::Plain));
        assert_eq!(classify_ipc(b"nope"), Ok(IpcLine::Plain));
    }

    #[test]
    fn job_frames_wrap_the_arguments_for_the_preload() {
        assert_eq!(
            &*ipc_job_frame(4_096, r#"{"n":1}"#),
            br#"{"cmd":"NODE_COMRADE_JOB","id":4096,"m":{"n":1}}"#
        );
        assert_eq!(
            &*ipc_job_frame(u32::MAX, "null"),
            br#"{"cmd":"NODE_COMRADE_JOB","id":4294967295,"m":null}"#
        );
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
        // What JSON.parse takes, serde's Value does not: both must pass.
        assert!(validate_json(br#"["\ud800","\udfff\ud800"]"#).is_ok());
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(validate_json(deep.as_bytes()).is_ok());
    }
}
