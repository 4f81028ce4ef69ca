//! The ComputeCluster reply path: Node IPC lines through `frame.rs`'s checks (Node's own
//! messages, the preload's envelope, validation) and the session (an odd first byte selects Node's
//! IPC). A reply is delivered to at most one job, the one on the worker that sent it.
#![no_main]

use comrade_core::frame::{classify_ipc, is_node_internal, validate_json, IpcLine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The helpers alone: never panic.
    let _ = is_node_internal(data);
    if let Ok(IpcLine::Reply { payload, .. }) = classify_ipc(data) {
        let _ = validate_json(payload);
    }
    if let Ok(text) = validate_json(data) {
        assert_eq!(text.len(), data.len());
    }
    // The whole path, on Node's IPC.
    let mut input = Vec::with_capacity(data.len() + 1);
    input.push(1 | data.first().copied().unwrap_or(0));
    input.extend_from_slice(data);
    comrade_core::engine::fuzz_session(&input);
});
