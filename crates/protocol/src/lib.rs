//! The comrade wire protocol (`docs/PROTOCOL.md`), shared by the pool's engine and the Rust
//! worker: one JSON object per `\n`-terminated line.
//!
//! - [`LineDecoder`]: splits a byte stream into lines, bounded by a maximum line length.
//! - Pool → worker: [`encode_init`], [`encode_call`], [`encode_cancel`], [`encode_message`]
//!   and [`encode_stop`]
//!   write the pool's messages,
//!   [`decode_pool_message`] reads them on the worker's side.
//! - Worker → pool: `encode_ready` … `encode_fatal` write the worker's messages,
//!   [`decode_worker_message`] reads them on the pool's side.
//! - [`itoa`], [`push_u32`], [`push_json_str`] and [`json_plain`]: the number and string
//!   formatting the encoders use.
//!
//! - Binary attachments (version 3): [`LineDecoder::next_message`] reads a message with its
//!   attachments, [`push_bin_prefix`] starts one.
//!
//! No I/O happens here. The pool's encoders write a line without its `\n` (the engine queues
//! lines and adds it when it writes them); the worker's encoders append whole lines, `\n`
//! included, so many replies can leave in one `write`.

#![deny(missing_docs)]

mod bin;
mod json;
mod line;
mod to_pool;
mod to_worker;

pub use bin::{
    attachment_lens, push_bin_prefix, Attachments, BinError, BIN_PREFIX, PROTOCOL_VERSION,
};
pub use json::{itoa, json_plain, push_json_str, push_u32};
pub use line::{DecodeError, LineDecoder, LineTooLong, Message};
pub use to_pool::{
    decode_worker_message, encode_ack, encode_ack_err, encode_err, encode_event, encode_fatal,
    encode_ok, encode_ok_empty, encode_progress, encode_ready, encode_retire, WorkerMessage,
    WorkerMessageError,
};
pub use to_worker::{
    decode_pool_message, encode_call, encode_call_traced, encode_cancel, encode_init,
    encode_message, encode_stop, valid_traceparent, FrameError, PoolMessage,
};

/// The pool's default `maxMessage`: the longest line accepted unless configured otherwise.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;
