//! Make a Rust program a worker of a comrade `Pool`.
//!
//! A worker registers functions, then serves calls from the pool over the channel the pool
//! started it with (a Unix socket on file descriptor 3). The wire protocol is
//! `docs/PROTOCOL.md`; this crate speaks all of it, so a worker is a few lines:
//!
//! ```no_run
//! use comrade_worker::{Error, Worker};
//!
//! fn main() {
//!     Worker::new()
//!         .function("add", |(a, b): (f64, f64)| Ok::<_, Error>(a + b))
//!         .default_function(|(s,): (String,)| Ok::<_, Error>(s.to_uppercase()))
//!         .init(|_data: serde_json::Value| -> Result<(), Error> { Ok(()) })
//!         .run();
//! }
//! ```
//!
//! and from JavaScript: `new Pool({ command: ['./target/release/my-worker'] })`, then
//! `pool.call('add', 2, 3)` or `pool.run('hi')`.
//!
//! # Functions
//!
//! A function takes its positional arguments (the call's JSON `args` array) as one value of
//! any type that implements [`serde::de::DeserializeOwned`]: a tuple for a fixed list of
//! arguments (`(f64, f64)`, or `(String,)` for one), a `Vec<T>` for any number of the same
//! type, `()` for none, a struct (filled positionally), or [`serde_json::Value`] for anything.
//! Arguments that do not fit answer a `TypeError` with code `ERR_INVALID_ARGS` saying what
//! did not fit, and the function is not called.
//!
//! It returns `Result<R, Error>` for any `R:` [`serde::Serialize`]; the value is serialized
//! straight into the reply (`()` is sent as `null`). An [`Error`] reaches the caller as a JS
//! error with the same `name`, `message`, `code` and extra fields. A panic is caught and
//! answered as an error with code `ERR_PANIC` and the panic's message; the worker goes on
//! serving (build with the default `panic = "unwind"` for this).
//!
//! A function that wants to report progress, emit events or retire the worker takes a
//! [`Ctx`] first: see [`Worker::function_ctx`].
//!
//! # Binary data
//!
//! A `Buffer` (or any typed array or `ArrayBuffer`) in a call's arguments travels as raw bytes,
//! an attachment of protocol version 3 (`docs/PROTOCOL.md`, "Binary attachments"), and reaches
//! an argument whose type asks serde for bytes: [`ByteBuf`] (from the `serde_bytes` crate,
//! re-exported as [`serde_bytes`]), a `Vec<u8>` field with `#[serde(with = "serde_bytes")]`, or
//! a plain `Vec<u8>` (read byte by byte: slower for large data). The bytes are copied once, from
//! the read buffer into the value. A type that reads anything (`deserialize_any`) gets them
//! through `visit_bytes`; [`serde_json::Value`] cannot hold bytes, so a binary where a `Value`
//! is expected answers `ERR_INVALID_ARGS`.
//!
//! A result that serializes bytes (`serialize_bytes`: [`ByteBuf`], `serde_bytes::Bytes`, a field
//! with `serde_bytes`) sends them as an attachment, at any depth; the caller gets a `Buffer`.
//! They are copied once, while the result is serialized, and written from there. Progress
//! values and events cannot carry bytes (the protocol allows attachments only on a result):
//! [`Ctx::progress`] and [`Ctx::emit`] return an `ERR_SERIALIZE` error for them.
//!
//! ```
//! use comrade_worker::{ByteBuf, Error, Worker};
//!
//! // A call with one attachment of 3 bytes, `{"$b":0}` in its arguments.
//! let input = b"{\"t\":\"init\",\"data\":null}\n{\"b\":[3],\"t\":\"call\",\"id\":1,\"fn\":\"reverse\",\"args\":[{\"$b\":0}]}\nabc\n";
//! let mut output = Vec::new();
//! Worker::new()
//!     .function("reverse", |(mut b,): (ByteBuf,)| {
//!         b.reverse();
//!         Ok::<_, Error>(b)
//!     })
//!     .serve(&input[..], &mut output)
//!     .unwrap();
//! assert_eq!(
//!     output,
//!     b"{\"t\":\"ready\"}\n{\"b\":[3],\"t\":\"ok\",\"id\":1,\"v\":{\"$b\":0}}\ncba\n"
//! );
//! ```
//!
//! Calls without attachments, and results without bytes, are read and written as in version 2,
//! at the same speed.
//!
//! # How it runs
//!
//! [`Worker::run`] serves on a blocking loop in the calling thread, one call at a time in the
//! order they arrive. It reads the channel in large chunks, answers every complete call in what
//! it read, and sends all those replies in a single `write` before it blocks for more, so a
//! pool that pipelines calls gets them back in batches. [`Worker::serve`] is the same loop over
//! any reader and writer, for tests:
//!
//! ```
//! use comrade_worker::{Error, Worker};
//!
//! let input = b"{\"t\":\"init\",\"data\":null}\n{\"t\":\"call\",\"id\":1,\"fn\":\"add\",\"args\":[2,3]}\n";
//! let mut output = Vec::new();
//! Worker::new()
//!     .function("add", |(a, b): (i64, i64)| Ok::<_, Error>(a + b))
//!     .serve(&input[..], &mut output)
//!     .unwrap();
//! assert_eq!(output, b"{\"t\":\"ready\"}\n{\"t\":\"ok\",\"id\":1,\"v\":5}\n");
//! ```

#![deny(missing_docs)]

mod binary;
mod error;
pub mod protocol;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::binary::Staged;
pub use crate::error::Error;
use crate::protocol::{FrameError, LineDecoder, LineTooLong, Message};
pub use comrade_protocol::BinError;
use comrade_protocol::DecodeError;
/// The `serde_bytes` crate, for functions that take or return binary data (see the
/// [crate docs](crate#binary-data)).
pub use serde_bytes;
pub use serde_bytes::ByteBuf;

/// Attachments shorter than this are copied after their reply's line and leave with the
/// batch; longer ones are written from where the serializer put them, at once.
const SMALL_ATTACHMENTS: usize = 64 * 1024;

/// Bytes asked for by each read of the channel.
const READ_BUFFER: usize = 256 * 1024;

/// Replies are sent early, before every line read is handled, once this many bytes wait.
const WRITE_HIGH_WATER: usize = 4 * 1024 * 1024;

/// A call's attachments, in order (empty when it has none).
type Bins<'a> = [&'a [u8]];
type Handler = Box<dyn FnMut(&mut Ctx<'_>, &RawValue, &Bins<'_>) -> Result<(), Error>>;
type InitFn = Box<dyn FnOnce(&RawValue) -> Result<(), Error>>;
type TeardownFn = Box<dyn FnOnce()>;
type MessageFn = Box<dyn FnMut(&RawValue) -> Result<(), Error>>;

/// A worker: the functions it serves and how it starts. Build one with the methods below, then
/// call [`run`](Worker::run).
pub struct Worker {
    functions: HashMap<String, Handler>,
    default: Option<Handler>,
    init: Option<InitFn>,
    teardown: Option<TeardownFn>,
    on_message: Option<MessageFn>,
    /// The channel's descriptor when serving it ([`Worker::run`]): [`Ctx::cancelled`] peeks
    /// at it for a `cancel` not read yet.
    peek_fd: Option<RawFd>,
    max_message: usize,
    /// The longest line this worker sends (the pool's `maxMessage`).
    max_send: usize,
}

impl Default for Worker {
    fn default() -> Self {
        Worker::new()
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.functions.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Worker")
            .field("functions", &names)
            .field("default_function", &self.default.is_some())
            .field("init", &self.init.is_some())
            .field("on_message", &self.on_message.is_some())
            .field("max_message", &self.max_message)
            .field("max_send", &self.max_send)
            .finish()
    }
}

/// What a function may do besides returning: report progress, emit events, retire the
/// worker. Handed to functions registered with [`Worker::function_ctx`] and
/// [`Worker::default_function_ctx`].
///
/// Each of these messages is written to the pool at once (together with any replies still
/// waiting to be sent), so the pool sees them while the function is still running. That costs
/// one `write` each: report progress at a human pace, not in a tight loop.
///
/// The methods fail only when the message cannot be serialized or the channel to the pool is
/// gone; a function may pass that on with `?` (the pool will not see its reply in the second
/// case anyway).
pub struct Ctx<'a> {
    id: u32,
    out: &'a mut Vec<u8>,
    writer: &'a mut dyn Write,
    state: &'a mut ChannelState,
    /// Length of `out` holding only complete messages; the rest is dropped if the function
    /// panics half-way through appending one.
    committed: usize,
    /// The longest line the pool accepts (its `maxMessage`).
    max_send: usize,
    /// Calls the pool cancelled, as far as this worker has read (see [`Ctx::cancelled`]).
    cancels: &'a HashSet<u32>,
    /// See [`Worker::peek_fd`].
    peek_fd: Option<RawFd>,
    /// The call was found cancelled.
    cancelled: bool,
    /// The caller's W3C `traceparent`, when the call carries one.
    traceparent: Option<&'a str>,
}

#[derive(Default)]
struct ChannelState {
    retired: bool,
    /// A write to the pool failed; the loop stops after the current call.
    failed: Option<io::Error>,
}

impl Ctx<'_> {
    /// The id of the call being served.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The caller's W3C trace context (`00-<trace id>-<parent id>-<flags>`), when the call
    /// carries one (a `comrade:job` tracing subscriber in the parent set it): the worker's
    /// own spans for this call continue the caller's trace with it as their parent.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent
    }

    /// Whether the pool cancelled this call (`{"t":"cancel"}`: its caller aborted it, or it ran
    /// past its `timeout`). A function that loops or waits should check it now and then and
    /// return early (with an error, say [`Error::aborted`]): the answer is not delivered, but it
    /// frees this worker's place for the next call, and a worker that has not answered within
    /// the pool's `cancelGraceMs` is killed.
    ///
    /// The serving loop is single-threaded and reads the channel only between calls, so this
    /// looks at what was already read and, under [`Worker::run`], peeks at the channel without
    /// consuming it (one non-blocking `recv` of up to 64 KiB: call it at a human pace, not in
    /// a tight loop). A function that never checks it cannot see the cancel at all; its
    /// worker is killed after the grace if it runs that long.
    pub fn cancelled(&mut self) -> bool {
        if self.cancelled || self.cancels.contains(&self.id) {
            self.cancelled = true;
            return true;
        }
        if let Some(fd) = self.peek_fd {
            let mut buf = vec![0u8; 64 * 1024];
            // SAFETY: recv into a buffer we own, with its length; MSG_PEEK leaves the bytes in
            // the socket for the serving loop.
            let n = unsafe {
                libc::recv(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                let needle = cancel_line(self.id);
                self.cancelled = find(&buf[..n as usize], &needle);
            }
        }
        self.cancelled
    }

    /// Reports progress of this call to the caller (`{"t":"progress"}`): any serializable value.
    /// A value whose message would be longer than the pool's `maxMessage` is not sent: the
    /// error has code `ERR_MESSAGE_TOO_LARGE`.
    pub fn progress<T: Serialize>(&mut self, value: T) -> Result<(), Error> {
        self.check_open()?;
        let start = self.out.len();
        self.out.extend_from_slice(b"{\"t\":\"progress\",\"id\":");
        comrade_protocol::push_u32(self.out, self.id);
        self.out.extend_from_slice(b",\"v\":");
        let staged = RefCell::new(Staged::refusing("a progress value"));
        binary::finish_line(self.out, start, &value, &staged).map_err(serialize_error)?;
        self.check_size(start, "the progress value")?;
        self.send()
    }

    /// Emits an event for the pool's `'event'` listeners (`{"t":"event"}`), not tied to this
    /// call. Data whose message would be longer than the pool's `maxMessage` is not sent: the
    /// error has code `ERR_MESSAGE_TOO_LARGE`.
    pub fn emit<T: Serialize>(&mut self, name: &str, data: T) -> Result<(), Error> {
        self.check_open()?;
        let start = self.out.len();
        self.out.extend_from_slice(b"{\"t\":\"event\",\"name\":");
        comrade_protocol::push_json_str(self.out, name);
        self.out.extend_from_slice(b",\"data\":");
        let staged = RefCell::new(Staged::refusing("an event"));
        binary::finish_line(self.out, start, &data, &staged).map_err(serialize_error)?;
        self.check_size(start, "the event")?;
        self.send()
    }

    /// Drops the message appended from `start` when it is longer than the pool accepts.
    fn check_size(&mut self, start: usize, what: &str) -> Result<(), Error> {
        match oversize(self.out, start, self.max_send) {
            None => Ok(()),
            Some(bytes) => {
                self.out.truncate(start);
                Err(too_large(what, bytes, self.max_send))
            }
        }
    }

    /// Asks the pool to send this worker no more calls (`{"t":"retire"}`). The worker keeps
    /// serving the calls already sent; the pool stops it (`SIGTERM`) once they are answered and
    /// starts a replacement if work needs one. Only the first request is sent.
    pub fn retire(&mut self) -> Result<(), Error> {
        self.check_open()?;
        if self.state.retired {
            return Ok(());
        }
        self.state.retired = true;
        protocol::encode_retire(self.out);
        self.send()
    }

    /// Appends the `ok` reply carrying `value`. Bytes in it (`serialize_bytes`) go out as
    /// attachments: copied once while serializing, then written after the line (small ones
    /// with the batch, large ones at once, from where they were copied).
    fn reply_ok<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let start = self.out.len();
        self.out.extend_from_slice(b"{\"t\":\"ok\",\"id\":");
        comrade_protocol::push_u32(self.out, self.id);
        self.out.extend_from_slice(b",\"v\":");
        let staged = RefCell::new(Staged::default());
        binary::finish_line(self.out, start, value, &staged).map_err(|e| {
            Error::new(format!("could not serialize the return value: {e}")).code("ERR_SERIALIZE")
        })?;
        let staged = staged.into_inner();
        if staged.lens.is_empty() {
            // Checked by the serving loop, as any reply.
            return Ok(());
        }
        // `{"b":[…],` replaces the line's `{`: only the line moves, not the attachments.
        let mut prefix = Vec::with_capacity(8 + 8 * staged.lens.len());
        comrade_protocol::push_bin_prefix(&mut prefix, staged.lens.iter().copied());
        self.out.splice(start..start + 1, prefix);
        let total = staged.bytes.len();
        let line = self.out.len() - start - 1;
        if line > self.max_send || total > self.max_send {
            self.out.truncate(start);
            let bytes = line.max(total);
            let what = if total > self.max_send {
                "the function's result has binary data that"
            } else {
                "the function's result"
            };
            return Err(too_large(what, bytes, self.max_send));
        }
        if total < SMALL_ATTACHMENTS {
            self.out.extend_from_slice(&staged.bytes);
            self.out.push(b'\n');
            self.committed = self.out.len();
            return Ok(());
        }
        self.send()?;
        if let Err(e) = self.writer.write_all(&staged.bytes) {
            return Err(self.failed(e));
        }
        // The attachments' closing newline leaves with the next batch.
        self.out.push(b'\n');
        self.committed = self.out.len();
        Ok(())
    }

    fn check_open(&self) -> Result<(), Error> {
        match &self.state.failed {
            None => Ok(()),
            Some(e) => Err(
                Error::new(format!("the channel to the pool is closed: {e}"))
                    .code("ERR_CHANNEL_CLOSED"),
            ),
        }
    }

    fn send(&mut self) -> Result<(), Error> {
        self.committed = self.out.len();
        let result = flush(self.out, self.writer);
        self.committed = self.out.len();
        result.map_err(|e| self.failed(e))
    }

    /// Records that the channel failed; the error for the function.
    fn failed(&mut self, e: io::Error) -> Error {
        let err = Error::new(format!("the channel to the pool is closed: {e}"))
            .code("ERR_CHANNEL_CLOSED");
        self.state.failed = Some(e);
        err
    }
}

impl fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx").field("id", &self.id).finish()
    }
}

/// The line the pool sends to cancel call `id`.
fn cancel_line(id: u32) -> Vec<u8> {
    let mut line = Vec::with_capacity(32);
    comrade_protocol::encode_cancel(&mut line, id);
    line
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// How a cancel line starts; its id and `}` follow.
const CANCEL_PREFIX: &[u8] = br#"{"t":"cancel","id":"#;
/// The longest cancel line: the prefix, 10 digits and `}`.
const CANCEL_MAX: usize = CANCEL_PREFIX.len() + 11;

/// Adds to `cancels` the calls cancelled by lines in `bytes` (a read of the channel; `carry`
/// holds the last bytes before it, so a cancel split between reads is found too). The read is
/// searched where it lies, not copied: only a cancel that starts in `carry` is looked for in a
/// copy, of `carry` and the read's first bytes.
fn scan_cancels(carry: &mut Vec<u8>, bytes: &[u8], cancels: &mut HashSet<u32>) {
    let finder = memchr::memmem::Finder::new(CANCEL_PREFIX);
    let old = carry.len();
    carry.extend_from_slice(&bytes[..bytes.len().min(CANCEL_MAX)]);
    if old > 0 {
        // Only a line that ends in this read: one wholly in `carry` was found before (and may
        // have been handled since).
        find_cancels(&finder, carry, old, cancels);
    }
    // What the next read's search starts with: the last bytes of the stream so far, too few
    // to hold a whole cancel line.
    let keep = CANCEL_MAX - 1;
    if bytes.len() >= keep {
        carry.clear();
        carry.extend_from_slice(&bytes[bytes.len() - keep..]);
    } else {
        // `carry` already ends with all of this read.
        let drop = carry.len().saturating_sub(keep);
        carry.drain(..drop);
    }
    find_cancels(&finder, bytes, 0, cancels);
}

/// Adds the ids of the whole cancel lines in `hay` that end at `from` or later to `cancels` (one
/// cut off by its end is left for the next search, which starts with those bytes).
fn find_cancels(
    finder: &memchr::memmem::Finder<'_>,
    hay: &[u8],
    from: usize,
    cancels: &mut HashSet<u32>,
) {
    for pos in finder.find_iter(hay) {
        let start = pos + CANCEL_PREFIX.len();
        let mut id: u64 = 0;
        let mut end = start;
        while end < hay.len() && end - start <= 10 && hay[end].is_ascii_digit() {
            id = id * 10 + u64::from(hay[end] - b'0');
            end += 1;
        }
        if end > start && end < hay.len() && end >= from && hay[end] == b'}' {
            if let Ok(id) = u32::try_from(id) {
                cancels.insert(id);
            }
        }
    }
}

/// The length of the line appended to `out` from `start` (its `\n` not counted) when that is
/// longer than `max`.
fn oversize(out: &[u8], start: usize, max: usize) -> Option<usize> {
    let bytes = out.len().saturating_sub(start).saturating_sub(1);
    (bytes > max).then_some(bytes)
}

/// The error of a message longer than the pool's `maxMessage`: it fails its call (a result or
/// an error) or its `Ctx` method (progress, event) instead of breaking the protocol. Named
/// `PoolError`: the pool rebuilds it as one, as its own ERR_MESSAGE_TOO_LARGE for arguments.
fn too_large(what: &str, bytes: usize, max: usize) -> Error {
    Error::new(format!(
        "{what} is {bytes} bytes of JSON as a message to the pool, more than maxMessage ({max})"
    ))
    .name("PoolError")
    .code("ERR_MESSAGE_TOO_LARGE")
    .field("bytes", bytes as u64)
    .field("maxMessage", max as u64)
}

fn serialize_error(e: serde_json::Error) -> Error {
    Error::new(format!("could not serialize the value: {e}")).code("ERR_SERIALIZE")
}

/// Writes all of `out` (looping on partial writes and `EINTR`) and empties it.
fn flush(out: &mut Vec<u8>, writer: &mut dyn Write) -> io::Result<()> {
    let result = writer.write_all(out).and_then(|()| writer.flush());
    out.clear();
    result
}

/// Why [`Worker::serve`] stopped other than at the end of the input.
#[derive(Debug)]
pub enum ServeError {
    /// The pool sent a line that is not a valid message. The pool never does: a bug signal.
    Frame(FrameError),
    /// A `call` (or a `message`) arrived before `init`.
    CallBeforeInit,
    /// A second `init` arrived.
    DuplicateInit,
    /// The pool sent attachments framed wrongly (protocol version 3).
    Attachments(Box<BinError>),
    /// The pool sent attachments on a message other than a call.
    MisplacedAttachments,
    /// The init function failed (or panicked, or its data did not fit); `fatal` was sent.
    InitFailed(Error),
    /// Reading or writing the channel failed (other than the pool going away, which ends
    /// serving normally).
    Io(io::Error),
}

impl ServeError {
    /// True for the errors that mean the pool broke the protocol.
    pub fn is_protocol_error(&self) -> bool {
        matches!(
            self,
            ServeError::Frame(_)
                | ServeError::Attachments(_)
                | ServeError::MisplacedAttachments
                | ServeError::CallBeforeInit
                | ServeError::DuplicateInit
        )
    }
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Frame(e) => write!(f, "malformed message from the pool: {e}"),
            ServeError::Attachments(e) => write!(f, "malformed attachments from the pool: {e}"),
            ServeError::MisplacedAttachments => {
                f.write_str("the pool sent attachments on a message that is not a call")
            }
            ServeError::CallBeforeInit => {
                f.write_str("the pool sent a call or a message before init")
            }
            ServeError::DuplicateInit => f.write_str("the pool sent init twice"),
            ServeError::InitFailed(e) => write!(f, "init failed: {e}"),
            ServeError::Io(e) => write!(f, "channel to the pool failed: {e}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Frame(e) => Some(e),
            ServeError::Attachments(e) => Some(&**e),
            ServeError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<FrameError> for ServeError {
    fn from(e: FrameError) -> Self {
        ServeError::Frame(e)
    }
}

impl From<LineTooLong> for ServeError {
    fn from(e: LineTooLong) -> Self {
        ServeError::Frame(e.into())
    }
}

/// The pool going away shows as end of file, or as these on a write.
fn pool_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

fn channel_failed(e: io::Error) -> Result<(), ServeError> {
    if pool_gone(&e) {
        Ok(())
    } else {
        Err(ServeError::Io(e))
    }
}

/// Ends serving on a protocol error, first sending the replies already made: the calls they
/// answer did complete.
fn stop(out: &mut Vec<u8>, writer: &mut dyn Write, e: ServeError) -> Result<(), ServeError> {
    if !out.is_empty() {
        let _ = flush(out, writer);
    }
    Err(e)
}

fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked with a value that is not a string".to_owned()
    };
    Error::new(message).code("ERR_PANIC")
}

/// `serde_json`'s messages end in " at line 1 column 9", which means nothing to the caller.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Deserializes a call's arguments into the function's argument type.
fn decode_args<A: DeserializeOwned>(
    label: &str,
    args: &RawValue,
    bins: &Bins<'_>,
) -> Result<A, Error> {
    let text = args.get();
    // Calls without attachments (all of them, for a worker that takes no bytes) read the JSON
    // as they always did; the adapter only runs when there are references to resolve.
    let decoded = if bins.is_empty() {
        serde_json::from_str::<A>(text)
    } else {
        binary::from_args::<A>(text, bins)
    };
    match decoded {
        Ok(a) => Ok(a),
        Err(e) => {
            // `[]` for a function that takes `()` (or an `Option`): serde reads those from null.
            if text[1..text.len() - 1].trim().is_empty() {
                if let Ok(a) = serde_json::from_str::<A>("null") {
                    return Ok(a);
                }
            }
            let why = if e.to_string().starts_with("trailing characters") {
                let given =
                    serde_json::from_str::<Vec<serde::de::IgnoredAny>>(text).map_or(0, |v| v.len());
                format!("too many arguments ({given} given)")
            } else {
                without_position(&e)
            };
            Err(Error::invalid_args(format!(
                "invalid arguments for {label}: {why}"
            )))
        }
    }
}

fn erase<A, R, F>(label: String, mut f: F) -> Handler
where
    A: DeserializeOwned,
    R: Serialize,
    F: FnMut(&mut Ctx<'_>, A) -> Result<R, Error> + 'static,
{
    Box::new(move |ctx: &mut Ctx<'_>, args: &RawValue, bins: &Bins<'_>| {
        let args = decode_args::<A>(&label, args, bins)?;
        let value = f(ctx, args)?;
        ctx.reply_ok(&value)
    })
}

impl Worker {
    /// A worker with no functions yet.
    pub fn new() -> Self {
        Worker {
            functions: HashMap::new(),
            default: None,
            init: None,
            teardown: None,
            on_message: None,
            peek_fd: None,
            max_message: protocol::DEFAULT_MAX_MESSAGE,
            max_send: protocol::DEFAULT_MAX_MESSAGE,
        }
    }

    /// Registers the function called by `pool.call(name, ...args)`.
    ///
    /// `f` takes the arguments as one deserializable value (see the [crate docs](crate)) and
    /// returns `Ok(value)` or `Err(`[`Error`]`)`. Registering a name again replaces it.
    pub fn function<A, R, F>(self, name: impl Into<String>, mut f: F) -> Self
    where
        A: DeserializeOwned,
        R: Serialize,
        F: FnMut(A) -> Result<R, Error> + 'static,
    {
        self.function_ctx(name, move |_: &mut Ctx<'_>, args: A| f(args))
    }

    /// Like [`function`](Worker::function), for a function that also takes a [`Ctx`] to
    /// report progress, emit events or retire the worker:
    ///
    /// ```
    /// use comrade_worker::{Ctx, Error, Worker};
    /// let worker = Worker::new().function_ctx("count", |ctx: &mut Ctx, (n,): (u32,)| {
    ///     for i in 1..=n {
    ///         ctx.progress(i)?;
    ///     }
    ///     ctx.emit("counted", n)?;
    ///     Ok::<_, Error>(n)
    /// });
    /// ```
    pub fn function_ctx<A, R, F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        A: DeserializeOwned,
        R: Serialize,
        F: FnMut(&mut Ctx<'_>, A) -> Result<R, Error> + 'static,
    {
        let name = name.into();
        let label = format!("\"{name}\"");
        self.functions.insert(name, erase(label, f));
        self
    }

    /// Registers the default function, called by `pool.run(...args)` (`"fn":null`).
    pub fn default_function<A, R, F>(self, mut f: F) -> Self
    where
        A: DeserializeOwned,
        R: Serialize,
        F: FnMut(A) -> Result<R, Error> + 'static,
    {
        self.default_function_ctx(move |_: &mut Ctx<'_>, args: A| f(args))
    }

    /// Like [`default_function`](Worker::default_function), with a [`Ctx`].
    pub fn default_function_ctx<A, R, F>(mut self, f: F) -> Self
    where
        A: DeserializeOwned,
        R: Serialize,
        F: FnMut(&mut Ctx<'_>, A) -> Result<R, Error> + 'static,
    {
        self.default = Some(erase("the default function".to_owned(), f));
        self
    }

    /// Sets the function run once with the pool's `initData` (JSON `null` when there is none)
    /// before any call. On `Err`, a panic, or data that does not deserialize into `D`, the
    /// worker sends `fatal` instead of `ready` and [`run`](Worker::run) exits with code 1;
    /// the pool then fails the queued calls with `WORKER_INIT_FAILED`.
    pub fn init<D, F>(mut self, f: F) -> Self
    where
        D: DeserializeOwned,
        F: FnOnce(D) -> Result<(), Error> + 'static,
    {
        self.init = Some(Box::new(move |data: &RawValue| {
            let data = serde_json::from_str::<D>(data.get()).map_err(|e| {
                Error::new(format!("invalid init data: {}", without_position(&e)))
                    .name("TypeError")
                    .code("ERR_INVALID_INIT_DATA")
            })?;
            f(data)
        }));
        self
    }

    /// Sets the function run when the pool stops this worker on purpose (`{"t":"stop"}`: the
    /// pool closes, or the worker was idle, recycled or retired). It runs once, after the last
    /// call was answered; then serving ends ([`run`](Worker::run) returns, so `main` exits with
    /// code 0). A panic in it is caught and reported on stderr. The pool SIGKILLs a worker
    /// still alive `killGraceMs` after the stop. A worker stopped otherwise (`terminate()`, a
    /// signal) does not run it.
    pub fn teardown<F>(mut self, f: F) -> Self
    where
        F: FnOnce() + 'static,
    {
        self.teardown = Some(Box::new(f));
        self
    }

    /// Sets the handler of the pool's broadcasts (`pool.broadcast(message)`): `f` gets each
    /// message, deserialized into `D`, in the order they arrive between calls. The worker
    /// acknowledges a message once `f` returned, which counts it as reached in the pool's
    /// broadcast. An `Err`, a panic, or a message that does not deserialize into `D` (a
    /// `TypeError` with code `ERR_INVALID_MESSAGE`) is sent with the acknowledgement: the
    /// broadcast then rejects with code `ERR_BROADCAST_FAILED`, naming this worker. Without a
    /// handler, messages are acknowledged and ignored. Registering again replaces it.
    pub fn on_message<D, F>(mut self, mut f: F) -> Self
    where
        D: DeserializeOwned,
        F: FnMut(D) -> Result<(), Error> + 'static,
    {
        self.on_message = Some(Box::new(move |data: &RawValue| {
            let data = serde_json::from_str::<D>(data.get()).map_err(|e| {
                Error::new(format!("invalid message: {}", without_position(&e)))
                    .name("TypeError")
                    .code("ERR_INVALID_MESSAGE")
            })?;
            f(data)
        }));
        self
    }

    /// The pool's `maxMessage`, in bytes (default 64 MiB, the pool's default): the longest line
    /// accepted from the pool (a longer one is a protocol error), and the longest this worker
    /// sends. A result (or error) that would make a longer reply fails its own call with code
    /// `ERR_MESSAGE_TOO_LARGE` instead, before anything is sent, and the worker goes on;
    /// [`Ctx::progress`] and [`Ctx::emit`] return that error. [`run`](Worker::run) takes the
    /// limit on what it sends from the pool itself (the environment variable
    /// `COMRADE_MAX_MESSAGE`) when the pool gives it.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self.max_send = bytes;
        self
    }

    /// Serves the pool on the channel it started this process with, until the pool closes it.
    ///
    /// The channel is the file descriptor named by the environment variable
    /// `COMRADE_CHANNEL_FD` (3 if unset). Returns when the channel reaches end of file (the
    /// pool is gone or dropped this worker), so `main` can end with exit code 0. Otherwise it
    /// exits the process:
    ///
    /// - code 2, with a message on stderr, when there is no channel (the program was not
    ///   started by a pool);
    /// - code 1 when init failed (after sending `fatal`) or the channel failed;
    /// - code 3, with a message on stderr, when the pool broke the protocol.
    ///
    /// The pool's `maxMessage` (the environment variable `COMRADE_MAX_MESSAGE`, when set) is
    /// the longest message sent, and the longest accepted when it is above
    /// [`max_message`](Worker::max_message).
    ///
    /// With glibc's malloc, it sets `M_MMAP_THRESHOLD` to 16 MiB and `M_TRIM_THRESHOLD` to
    /// 32 MiB for the process, so that buffers of a binary's size are reused rather than
    /// faulted in afresh for every call (the process may keep up to 32 MiB it freed).
    pub fn run(mut self) {
        if let Some(max) = std::env::var("COMRADE_MAX_MESSAGE")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
        {
            self.max_send = max;
            // The pool sends no more than its own limit: a limit above this worker's default
            // (for large binary arguments) is taken too.
            self.max_message = self.max_message.max(max);
        }
        keep_freed_memory();
        let fd = match channel_fd() {
            Ok(fd) => fd,
            Err(why) => {
                eprintln!(
                    "this program is a comrade pool worker; start it with new Pool({{ command: [...] }}) ({why})"
                );
                std::process::exit(2);
            }
        };
        // SAFETY: `channel_fd` checked that the descriptor is open; it is the channel, which
        // nothing else in this process uses, so the File may own and close it.
        let channel = unsafe { File::from_raw_fd(fd) };
        self.peek_fd = Some(fd);
        let result = self.serve(&channel, &channel);
        drop(channel);
        match result {
            Ok(()) => {}
            Err(ServeError::InitFailed(e)) => {
                eprintln!("comrade worker: init failed: {e}");
                std::process::exit(1);
            }
            Err(e @ ServeError::Io(_)) => {
                eprintln!("comrade worker: {e}");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("comrade worker: protocol error: {e}");
                std::process::exit(3);
            }
        }
    }

    /// The serving loop of [`run`](Worker::run), over any byte streams: reads messages from
    /// `reader`, writes replies to `writer`. Returns `Ok(())` at end of input, or when a write
    /// finds the other side gone.
    ///
    /// Replies are collected in one buffer and written in one `write_all` when no complete
    /// message is left in what was read, just before blocking on the next read. A peer that
    /// writes many calls without reading replies must therefore do it from another thread (as
    /// with any socket).
    pub fn serve<R: Read, W: Write>(
        mut self,
        mut reader: R,
        mut writer: W,
    ) -> Result<(), ServeError> {
        let mut lines = LineDecoder::with_capacity(READ_BUFFER, self.max_message);
        let max_send = self.max_send;
        let peek_fd = self.peek_fd;
        let mut cancels: HashSet<u32> = HashSet::new();
        let mut carry: Vec<u8> = Vec::new();
        let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut state = ChannelState::default();
        let mut initialized = false;
        loop {
            loop {
                let (line, attachments) = match lines.next_message() {
                    Ok(Some(m)) => (m.line, m.attachments),
                    Ok(None) => break,
                    Err(DecodeError::Line(e)) => return stop(&mut out, &mut writer, e.into()),
                    Err(DecodeError::Bin(e)) => {
                        return stop(&mut out, &mut writer, ServeError::Attachments(Box::new(e)))
                    }
                };
                let message = match protocol::decode(line) {
                    Ok(message) => message,
                    Err(e) => return stop(&mut out, &mut writer, e.into()),
                };
                // Only a call carries attachments (its arguments).
                let bins: Vec<&[u8]> = match &attachments {
                    None => Vec::new(),
                    Some(_) if !matches!(message, Message::Call { .. }) => {
                        return stop(&mut out, &mut writer, ServeError::MisplacedAttachments)
                    }
                    Some(a) => a.iter().collect(),
                };
                match message {
                    Message::Init { data } => {
                        if initialized {
                            return stop(&mut out, &mut writer, ServeError::DuplicateInit);
                        }
                        initialized = true;
                        let result = match self.init.take() {
                            None => Ok(()),
                            Some(f) => catch_unwind(AssertUnwindSafe(|| f(data)))
                                .unwrap_or_else(|p| Err(panic_error(p))),
                        };
                        if let Err(e) = result {
                            protocol::encode_fatal(&mut out, &e);
                            // Sent as well as it can be; the worker stops either way.
                            let _ = flush(&mut out, &mut writer);
                            return Err(ServeError::InitFailed(e));
                        }
                        protocol::encode_ready(&mut out);
                        // At once, not with the next batch: the pool starts the run timeouts
                        // of this worker's calls when it reads `ready`, and a long first call
                        // must not hold it back.
                        if let Err(e) = flush(&mut out, &mut writer) {
                            return channel_failed(e);
                        }
                    }
                    Message::Cancel { id } => {
                        // The call it names came before it, so it was answered already.
                        cancels.remove(&id);
                    }
                    Message::Stop => {
                        if !out.is_empty() {
                            if let Err(e) = flush(&mut out, &mut writer) {
                                return channel_failed(e);
                            }
                        }
                        if let Some(f) = self.teardown.take() {
                            if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
                                eprintln!("comrade worker: teardown panicked: {}", panic_error(p));
                            }
                        }
                        return Ok(());
                    }
                    Message::Message { id, data } => {
                        if !initialized {
                            return stop(&mut out, &mut writer, ServeError::CallBeforeInit);
                        }
                        let result = match self.on_message.as_mut() {
                            None => Ok(()),
                            Some(f) => catch_unwind(AssertUnwindSafe(|| f(data)))
                                .unwrap_or_else(|p| Err(panic_error(p))),
                        };
                        match result {
                            Ok(()) => protocol::encode_ack(&mut out, id),
                            Err(e) => {
                                let committed = out.len();
                                protocol::encode_ack_err(&mut out, id, &e);
                                // An error too long to send: its start, within the limit.
                                if oversize(&out, committed, max_send).is_some() {
                                    out.truncate(committed);
                                    let start: String = e.message.chars().take(200).collect();
                                    let short = Error::new(start).code("ERR_MESSAGE_TOO_LARGE");
                                    protocol::encode_ack_err(&mut out, id, &short);
                                }
                            }
                        }
                    }
                    Message::Call {
                        id,
                        function,
                        args,
                        traceparent,
                    } => {
                        if !initialized {
                            return stop(&mut out, &mut writer, ServeError::CallBeforeInit);
                        }
                        if cancels.contains(&id) {
                            // Cancelled before it started: answered without running it.
                            protocol::encode_err(&mut out, id, &Error::aborted());
                            continue;
                        }
                        let handler = match &function {
                            Some(name) => self.functions.get_mut(name.as_ref()),
                            None => self.default.as_mut(),
                        };
                        let Some(handler) = handler else {
                            let message = match &function {
                                Some(name) => format!("no function named \"{name}\""),
                                None => "this worker has no default function".to_owned(),
                            };
                            let e = Error::new(message).code("ERR_UNKNOWN_FUNCTION");
                            protocol::encode_err(&mut out, id, &e);
                            continue;
                        };
                        let committed = out.len();
                        let mut ctx = Ctx {
                            id,
                            out: &mut out,
                            writer: &mut writer,
                            state: &mut state,
                            committed,
                            max_send,
                            cancels: &cancels,
                            peek_fd,
                            cancelled: false,
                            traceparent,
                        };
                        let result =
                            catch_unwind(AssertUnwindSafe(|| handler(&mut ctx, args, &bins)));
                        let committed = ctx.committed;
                        let mut error = match result {
                            Ok(Ok(())) => None,
                            Ok(Err(e)) => Some(e),
                            Err(panic) => Some(panic_error(panic)),
                        };
                        // A reply longer than the pool accepts fails its own call.
                        if error.is_none() {
                            if let Some(bytes) = oversize(&out, committed, max_send) {
                                error = Some(too_large("the function's result", bytes, max_send));
                            }
                        }
                        if let Some(e) = error {
                            out.truncate(committed);
                            protocol::encode_err(&mut out, id, &e);
                            if let Some(bytes) = oversize(&out, committed, max_send) {
                                out.truncate(committed);
                                let start: String = e.message.chars().take(200).collect();
                                let mut why = too_large("the function's error", bytes, max_send);
                                why.message = format!("{}: {start}", why.message);
                                protocol::encode_err(&mut out, id, &why);
                            }
                        }
                        if let Some(e) = state.failed.take() {
                            return channel_failed(e);
                        }
                    }
                }
                if out.len() >= WRITE_HIGH_WATER {
                    if let Err(e) = flush(&mut out, &mut writer) {
                        return channel_failed(e);
                    }
                }
            }
            if !out.is_empty() {
                if let Err(e) = flush(&mut out, &mut writer) {
                    return channel_failed(e);
                }
            }
            // `out` is empty here: a limit error has nothing left to send.
            let spare = lines.spare()?;
            let n = loop {
                match reader.read(spare) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return channel_failed(e),
                }
            };
            if n == 0 {
                return Ok(());
            }
            scan_cancels(&mut carry, &spare[..n], &mut cancels);
            lines.filled(n);
        }
    }
}

/// Keeps glibc's malloc from handing large blocks back to the kernel at every free. By
/// default a block of 1 MiB, a binary argument or result, comes from fresh pages and goes back
/// when freed (mmap, or a heap trimmed at once): every call then pays a page fault per 4 KiB
/// of it, twice (the argument's bytes and the result's), which cost the 1 MiB echo benchmark
/// more CPU than the copies themselves. Blocks under 16 MiB now come from the heap, which keeps
/// up to 32 MiB free before it shrinks. `run` owns the process, so it may set this; a worker
/// with another global allocator is unaffected.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before the serving loop
    // allocates anything large.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 * 1024 * 1024);
    }
}

/// The channel's descriptor, checked to be open, made blocking and close-on-exec (so programs
/// the worker starts do not hold the pool's socket open).
fn channel_fd() -> Result<RawFd, String> {
    let fd = match std::env::var_os("COMRADE_CHANNEL_FD") {
        None => 3,
        Some(v) => v
            .to_str()
            .and_then(|s| s.trim().parse::<RawFd>().ok())
            .filter(|fd| *fd >= 0)
            .ok_or_else(|| format!("COMRADE_CHANNEL_FD={v:?} is not a file descriptor number"))?,
    };
    // SAFETY: fstat and fcntl on a descriptor number only read or set its flags; a closed one
    // fails with EBADF.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return Err(format!("file descriptor {fd} is not open"));
        }
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFREG || kind == libc::S_IFDIR {
            return Err(format!("file descriptor {fd} is a file, not a channel"));
        }
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 && flags & libc::O_NONBLOCK != 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
        let fd_flags = libc::fcntl(fd, libc::F_GETFD);
        if fd_flags >= 0 && fd_flags & libc::FD_CLOEXEC == 0 {
            libc::fcntl(fd, libc::F_SETFD, fd_flags | libc::FD_CLOEXEC);
        }
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(stream: &[u8], split: &[usize]) -> Vec<u32> {
        let mut carry = Vec::new();
        let mut cancels = HashSet::new();
        let mut from = 0;
        for &at in split.iter().chain(std::iter::once(&stream.len())) {
            scan_cancels(&mut carry, &stream[from..at], &mut cancels);
            from = at;
        }
        let mut ids: Vec<u32> = cancels.into_iter().collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn cancels_are_found_however_the_reads_split_them() {
        let stream = b"{\"t\":\"call\",\"id\":1,\"args\":[\"{\\\"t\\\":\\\"cancel\\\"\"]}\n\
{\"t\":\"cancel\",\"id\":4294967295}\n{\"t\":\"cancel\",\"id\":4294967296}\n\
{\"t\":\"cancel\",\"id\":7}\n{\"t\":\"cancel\",\"id\":}\n{\"t\":\"cancel\",\"id\":12}\n";
        let want = vec![7, 12, 4294967295];
        assert_eq!(scan_all(stream, &[]), want);
        // Every split into two reads, and reads of one, two and three bytes.
        for at in 0..=stream.len() {
            assert_eq!(scan_all(stream, &[at]), want, "split at {at}");
        }
        for step in 1..=3 {
            let split: Vec<usize> = (step..stream.len()).step_by(step).collect();
            assert_eq!(scan_all(stream, &split), want, "reads of {step}");
        }
    }

    #[test]
    fn a_cancel_is_found_once_however_many_reads_follow() {
        let mut carry = Vec::new();
        let mut cancels = HashSet::new();
        scan_cancels(&mut carry, b"x{\"t\":\"cancel\",\"id\":5}\n", &mut cancels);
        // Handled by the serving loop.
        assert!(cancels.remove(&5));
        for read in [&b"{"[..], b"\"t\"", b":", b"1}\n"] {
            scan_cancels(&mut carry, read, &mut cancels);
        }
        assert!(cancels.is_empty(), "{cancels:?}");
    }
}
