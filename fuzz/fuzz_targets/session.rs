//! The session layer with a real scheduler, both protocols: any line, any order of messages,
//! any ids, with submissions, timeouts and exits. Panics on a job settled twice, never, or by
//! a reply from a worker that did not hold it (`crates/core/src/engine/session_props.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    comrade_core::engine::fuzz_session(data);
});
