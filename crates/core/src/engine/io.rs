//! Socket I/O: a worker as a connection ([`Link`]), its output buffer and the writes after
//! each update, and the I/O thread's tasks (channel reads, blocked writes, exit watches).

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice, Read as _, Write as _};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};

use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

use super::cycle::{lock, runtime, Shared};
use super::session::Peer;
use crate::frame::LineDecoder;
use crate::scheduler::WorkerId;
use crate::spawn::{self, ExitStatus};
use comrade_protocol::Attachments;

/// One worker as the engine sees it: a duplex byte stream, how it is stopped, and how it ends.
/// A local child process is one; a worker reached over a network would be another, plugging
/// into the same scheduler and session.
pub trait Link: Send + Sync + 'static {
    /// Reads what has arrived, without blocking (`WouldBlock` when nothing has). Any thread.
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what the stream takes now, without blocking. Any thread.
    fn write(&self, buf: &[u8]) -> io::Result<usize>;
    /// As [`write`](Self::write), from several buffers in order (one `writev` where the
    /// stream has it; by default only the first non-empty buffer is written).
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.write(b),
            None => Ok(0),
        }
    }
    /// The stream's descriptor, for readiness polls (the I/O thread's, or the host's).
    fn fd(&self) -> BorrowedFd<'_>;
    /// The worker's id in records and stats (a local worker's process id).
    fn pid(&self) -> i32;
    /// Asks the worker to stop (it may finish what it is doing).
    fn terminate(&self);
    /// Stops the worker now.
    fn kill(&self);
    /// Resolves once the worker is gone, with how it ended. Awaited once, on the I/O thread.
    fn ended(&self) -> Pin<Box<dyn Future<Output = ExitStatus> + Send + '_>>;
}

/// A worker that is a child process of this one, on a Unix socket pair, reaped through its
/// pidfd.
pub(crate) struct LocalProcess {
    pub pid: i32,
    sock: UnixStream,
    pidfd: AsyncFd<OwnedFd>,
    /// The keeper of its process group (see `spawn::start_keeper`), reaped once the group is
    /// killed.
    keeper: Option<i32>,
}

impl LocalProcess {
    /// Wraps a spawned child. Call within the runtime (the pidfd is registered with it).
    pub fn new(s: spawn::Spawned) -> io::Result<Self> {
        let sock = UnixStream::from(s.channel);
        sock.set_nonblocking(true)?;
        // SAFETY: the OwnedFd stays open and unchanged for the AsyncFd's whole life.
        let pidfd =
            unsafe { AsyncFd::register_with_interest(s.pidfd, tokio::io::Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?;
        Ok(LocalProcess {
            pid: s.pid,
            sock,
            pidfd,
            keeper: s.keeper,
        })
    }
}

impl Link for LocalProcess {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.sock).read(buf)
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        (&self.sock).write(buf)
    }

    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&self.sock).write_vectored(bufs)
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    fn pid(&self) -> i32 {
        self.pid
    }

    // The worker leads a process group of its own: stopping it stops the children it started
    // too (those that stayed in its group).
    fn terminate(&self) {
        spawn::kill_group(self.pid, libc::SIGTERM);
    }

    fn kill(&self) {
        spawn::kill_group(self.pid, libc::SIGKILL);
    }

    fn ended(&self) -> Pin<Box<dyn Future<Output = ExitStatus> + Send + '_>> {
        Box::pin(async move {
            loop {
                match self.pidfd.readable().await {
                    // The worker is gone, not yet reaped (so its pid, the group's id, cannot
                    // have been reused): what is left of its group goes with it, whatever
                    // ended it.
                    Ok(mut guard) => {
                        spawn::kill_group(self.pid, libc::SIGKILL);
                        match spawn::try_reap(self.pid) {
                            Ok(Some(status)) => {
                                if let Some(keeper) = self.keeper {
                                    // SIGKILLed with the group: it ends at once.
                                    tokio::task::spawn_blocking(move || spawn::reap(keeper));
                                }
                                return status;
                            }
                            Ok(None) => guard.clear_ready(),
                            Err(_) => return ExitStatus::Code(-1),
                        }
                    }
                    Err(_) => return ExitStatus::Code(-1),
                }
            }
        })
    }
}

/// A worker's connection: its link, the session's view of it, and the I/O state.
pub(crate) struct Conn {
    pub link: Arc<dyn Link>,
    pub peer: Peer,
    pub decoder: LineDecoder,
    /// Bytes for the worker, written after the state lock is released (under this lock of
    /// its own, which keeps writes from different threads in order).
    pub out: Arc<Mutex<OutBuf>>,
    /// The I/O thread's read task, unless the host reads this channel itself.
    pub reader: Option<JoinHandle<()>>,
    /// The CPU it is pinned to.
    pub cpu: Option<usize>,
    /// Its messages may carry binary attachments (comrade's protocol, not Node IPC).
    pub attachments: bool,
}

impl Conn {
    pub fn new(link: Arc<dyn Link>, max_message: usize, cpu: Option<usize>) -> Self {
        Conn {
            peer: Peer::new(link.pid()),
            link,
            decoder: LineDecoder::new(max_message),
            out: Arc::new(Mutex::new(OutBuf::default())),
            reader: None,
            cpu,
            attachments: false,
        }
    }
}

/// A connection with bytes to write at the end of the update.
pub(crate) type Dirty = (Arc<dyn Link>, Arc<Mutex<OutBuf>>);

/// A large payload written straight from the job that holds it
/// ([`crate::scheduler::Scheduler::shared_payload`]).
pub(crate) type SharedFrame = Arc<Box<[u8]>>;

#[derive(Default)]
pub(crate) struct OutBuf {
    /// Bytes for the worker; those before `written` are written already.
    buf: Vec<u8>,
    /// How much of `buf` the socket has taken. A partial write only advances it (moving the
    /// rest to the front after every write made sending a large job's arguments quadratic);
    /// the front is reclaimed when everything is written, or by `reclaim` before appending.
    written: usize,
    /// Large frames, not copied into `buf`: each goes out after `buf[..at]` and before
    /// `buf[at..]` (`at` in increasing order), written from where it is with `writev`.
    frames: VecDeque<(usize, SharedFrame)>,
    /// How much of the first of `frames` the socket has taken.
    frame_written: usize,
    /// A flush task owns the writing until the socket drains.
    flushing: bool,
    /// Listed in the update's dirty list already.
    queued: bool,
}

/// At most this many pieces per `writev` (a frame, and the lines around it, make 3).
const MAX_IOV: usize = 16;

impl OutBuf {
    /// Writes what the socket takes now. Returns false when the rest must wait for the socket
    /// to become writable.
    fn write_now(&mut self, link: &dyn Link) -> bool {
        while !self.is_empty() {
            // A plain non-blocking write: any thread may write, whatever the runtime has seen.
            let result = if self.frames.is_empty() {
                link.write(&self.buf[self.written..])
            } else {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let n = self.pieces(&mut iov);
                link.write_vectored(&iov[..n])
            };
            match result {
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The worker is going away; its exit settles its jobs.
                    self.clear();
                }
            }
        }
        self.clear();
        true
    }

    fn is_empty(&self) -> bool {
        self.written == self.buf.len() && self.frames.is_empty()
    }

    /// The unwritten bytes in order, as up to `iov.len()` pieces; returns how many.
    fn pieces<'a>(&'a self, iov: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let mut pos = self.written;
        let mut skip = self.frame_written;
        for (at, frame) in &self.frames {
            if n + 2 > iov.len() {
                return n;
            }
            if pos < *at {
                iov[n] = IoSlice::new(&self.buf[pos..*at]);
                n += 1;
            }
            iov[n] = IoSlice::new(&frame[skip..]);
            n += 1;
            skip = 0;
            pos = *at;
        }
        if pos < self.buf.len() && n < iov.len() {
            iov[n] = IoSlice::new(&self.buf[pos..]);
            n += 1;
        }
        n
    }

    /// Records that the socket took the first `n` unwritten bytes.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            match self.frames.front() {
                Some((at, frame)) if self.written == *at => {
                    let k = n.min(frame.len() - self.frame_written);
                    self.frame_written += k;
                    n -= k;
                    if self.frame_written == frame.len() {
                        self.frames.pop_front();
                        self.frame_written = 0;
                    }
                }
                Some((at, _)) => {
                    let k = n.min(at - self.written);
                    self.written += k;
                    n -= k;
                }
                None => {
                    self.written += n;
                    n = 0;
                }
            }
        }
        debug_assert!(self.written <= self.buf.len());
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.written = 0;
        self.frames.clear();
        self.frame_written = 0;
    }

    /// Before appending: drops the written front once it is at least half of the buffer, so
    /// the buffer stays within twice what is unwritten and each byte moves at most once on
    /// average.
    fn reclaim(&mut self) {
        if self.written > 0 && self.written * 2 >= self.buf.len() {
            self.buf.drain(..self.written);
            // Frames still waiting all go at or after the unwritten front.
            for (at, _) in &mut self.frames {
                *at -= self.written;
            }
            self.written = 0;
        }
    }
}

/// Appends a line to a connection's output and lists the connection for the write at the end
/// of the update.
pub(crate) fn push_line(dirty: &mut Vec<Dirty>, conn: &Conn, line: &[u8]) {
    let mut out = lock(&conn.out);
    out.reclaim();
    out.buf.extend_from_slice(line);
    out.buf.push(b'\n');
    listed(dirty, conn, &mut out);
}

/// As [`push_line`], for a large payload the job keeps: it is written from where it is, not
/// copied into the output buffer.
pub(crate) fn push_frame(dirty: &mut Vec<Dirty>, conn: &Conn, frame: SharedFrame) {
    let mut out = lock(&conn.out);
    out.reclaim();
    let at = out.buf.len();
    out.frames.push_back((at, frame));
    out.buf.push(b'\n');
    listed(dirty, conn, &mut out);
}

fn listed(dirty: &mut Vec<Dirty>, conn: &Conn, out: &mut OutBuf) {
    if !out.queued && !out.flushing {
        out.queued = true;
        dirty.push((conn.link.clone(), conn.out.clone()));
    }
}

/// Writes a worker's pending output; what the socket cannot take now is left to a flush task
/// that waits for the socket to become writable.
pub(crate) fn flush_out((link, out): Dirty) {
    let mut o = lock(&out);
    o.queued = false;
    if o.flushing || o.write_now(&*link) {
        return;
    }
    o.flushing = true;
    drop(o);
    runtime().spawn(flush_loop(link, out));
}

async fn flush_loop(link: Arc<dyn Link>, out: Arc<Mutex<OutBuf>>) {
    // Writability is watched on a duplicate of the descriptor, registered only while a write
    // is blocked (channels keep no write interest otherwise).
    let Ok(writable) = register_dup(link.fd(), tokio::io::Interest::WRITABLE) else {
        // Out of descriptors: the bytes cannot be written; the worker's exit settles its jobs.
        let mut o = lock(&out);
        o.clear();
        o.flushing = false;
        return;
    };
    loop {
        let Ok(mut ready) = writable.writable().await else {
            lock(&out).flushing = false;
            return;
        };
        let mut o = lock(&out);
        if o.write_now(&*link) {
            o.flushing = false;
            return;
        }
        ready.clear_ready();
    }
}

/// A duplicate of a channel's descriptor, registered with the runtime for `interest` (the
/// registration, and the duplicate, go when it is dropped). Call within the runtime.
pub(crate) fn register_dup(
    fd: BorrowedFd<'_>,
    interest: tokio::io::Interest,
) -> io::Result<AsyncFd<OwnedFd>> {
    let dup = fd.try_clone_to_owned()?;
    // SAFETY: the AsyncFd owns the duplicate it watches, open for its whole life.
    unsafe { AsyncFd::register_with_interest(dup, interest) }.map_err(|e| e.into_parts().1)
}

/// What one read of a worker's channel found.
pub(crate) enum Read {
    /// End of stream, an error, or a protocol violation: the channel is done.
    Closed,
    /// Everything available was read.
    Drained,
    /// The read stopped early (one worker must not starve the others); more may be waiting.
    More,
    /// Nothing was read: the records waiting for the host passed its bound. Read again once
    /// [`Shared::resume`] is notified.
    Paused,
}

/// Reads a worker's channel into its decoder: at most 16 reads, so one chatty worker cannot
/// starve the others. `on_line` gets each complete line and may stop the read with an error
/// text (a protocol violation), as may an overlong line.
pub(crate) fn read_lines(
    conn: &mut Conn,
    mut on_line: impl FnMut(&mut Peer, &[u8], Option<Attachments<'_>>) -> Result<(), String>,
) -> (Read, Option<String>) {
    for _ in 0..16 {
        let spare = match conn.decoder.spare() {
            Ok(s) => s,
            Err(e) => return (Read::Closed, Some(e.to_string())),
        };
        match conn.link.read(spare) {
            Ok(0) => return (Read::Closed, None),
            Ok(n) => conn.decoder.filled(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (Read::Drained, None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return (Read::Closed, None),
        }
        loop {
            // Attachments (protocol version 3) only on comrade's own protocol: a Node IPC line
            // may start like one.
            let msg = if conn.attachments {
                match conn.decoder.next_message() {
                    Ok(Some(m)) => (m.line, m.attachments),
                    Ok(None) => break,
                    Err(e) => return (Read::Closed, Some(e.to_string())),
                }
            } else {
                match conn.decoder.next_line() {
                    Ok(Some(line)) => (line, None),
                    Ok(None) => break,
                    Err(e) => return (Read::Closed, Some(e.to_string())),
                }
            };
            if let Err(e) = on_line(&mut conn.peer, msg.0, msg.1) {
                return (Read::Closed, Some(e));
            }
        }
    }
    (Read::More, None)
}

/// The I/O thread's reader of one channel: reads whenever it is readable, except while paused
/// for the host (`resume` ends a pause).
pub(crate) async fn read_loop(
    shared: Weak<Shared>,
    w: WorkerId,
    fd: AsyncFd<OwnedFd>,
    resume: Arc<tokio::sync::Notify>,
) {
    loop {
        let Ok(mut ready) = fd.readable().await else {
            break;
        };
        let Some(strong) = shared.upgrade() else {
            break;
        };
        // Listening before the read looks at the outbox: a take in between is not missed.
        let resumed = resume.notified();
        tokio::pin!(resumed);
        resumed.as_mut().enable();
        let read = strong.update(|st, shared| st.read_channel(shared, w));
        drop(strong);
        match read {
            Read::Closed => break,
            // Wait for the next readiness event only once the socket said it is empty.
            Read::Drained => ready.clear_ready(),
            Read::More => ready.retain_ready(),
            Read::Paused => {
                ready.retain_ready();
                resumed.await;
            }
        }
    }
}

/// Waits for a worker's end and reports it.
pub(crate) async fn exit_watch(shared: Weak<Shared>, w: WorkerId, link: Arc<dyn Link>) {
    let status = link.ended().await;
    let pid = link.pid();
    let Some(shared) = shared.upgrade() else {
        super::cycle::forget_pid(pid);
        return;
    };
    shared.update(|st, shared| st.worker_exited(shared, w, pid, status));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link that takes at most `chunk` bytes per write and refuses every other write
    /// (`WouldBlock`), recording what it took.
    struct Sink {
        took: Mutex<Vec<u8>>,
        chunk: usize,
        calls: Mutex<usize>,
        vectored: bool,
        fd: OwnedFd,
    }

    impl Sink {
        fn new(chunk: usize, vectored: bool) -> Self {
            Sink {
                took: Mutex::new(Vec::new()),
                chunk,
                calls: Mutex::new(0),
                vectored,
                fd: std::fs::File::open("/dev/null").unwrap().into(),
            }
        }

        fn take(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            if calls.is_multiple_of(2) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut left = self.chunk;
            let mut took = self.took.lock().unwrap();
            for b in bufs {
                let k = left.min(b.len());
                took.extend_from_slice(&b[..k]);
                left -= k;
            }
            Ok(self.chunk - left)
        }
    }

    impl Link for Sink {
        fn read(&self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
        fn write(&self, buf: &[u8]) -> io::Result<usize> {
            self.take(&[IoSlice::new(buf)])
        }
        fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.vectored {
                self.take(bufs)
            } else {
                match bufs.iter().find(|b| !b.is_empty()) {
                    Some(b) => self.write(b),
                    None => Ok(0),
                }
            }
        }
        fn fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
        fn pid(&self) -> i32 {
            1
        }
        fn terminate(&self) {}
        fn kill(&self) {}
        fn ended(&self) -> Pin<Box<dyn Future<Output = ExitStatus> + Send + '_>> {
            Box::pin(std::future::pending())
        }
    }

    fn frame(byte: u8, len: usize) -> SharedFrame {
        Arc::new(vec![byte; len].into_boxed_slice())
    }

    #[test]
    fn shared_frames_go_out_in_order_between_the_lines_however_the_writes_split() {
        for vectored in [true, false] {
            for chunk in [1, 3, 7, 64, 1000, 1 << 20] {
                let sink = Arc::new(Sink::new(chunk, vectored));
                let mut conn = Conn::new(sink.clone(), 1 << 20, None);
                conn.attachments = true;
                let mut dirty = Vec::new();
                let mut want = Vec::new();
                // Lines and frames interleaved, some frames back to back, written while
                // more is appended (so the front is reclaimed with frames waiting).
                for round in 0..4u8 {
                    push_line(&mut dirty, &conn, b"{\"a\":1}");
                    want.extend_from_slice(b"{\"a\":1}\n");
                    for k in 0..3u8 {
                        let len = [0, 1, 5000][usize::from(k)] + usize::from(round);
                        push_frame(&mut dirty, &conn, frame(b'a' + k, len));
                        want.extend(std::iter::repeat_n(b'a' + k, len));
                        want.push(b'\n');
                    }
                    push_line(&mut dirty, &conn, b"tail");
                    want.extend_from_slice(b"tail\n");
                    // A few writes' worth, not necessarily all.
                    let mut o = lock(&conn.out);
                    for _ in 0..5 {
                        o.write_now(&*sink);
                    }
                }
                let mut o = lock(&conn.out);
                while !o.write_now(&*sink) {}
                assert!(o.is_empty());
                assert_eq!(o.buf.len(), 0);
                assert_eq!(
                    *sink.took.lock().unwrap(),
                    want,
                    "chunk {chunk} vectored {vectored}"
                );
            }
        }
    }

    #[test]
    fn a_failed_write_drops_the_rest_frames_and_all() {
        struct Broken(OwnedFd);
        impl Link for Broken {
            fn read(&self, _: &mut [u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn write(&self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn fd(&self) -> BorrowedFd<'_> {
                self.0.as_fd()
            }
            fn pid(&self) -> i32 {
                1
            }
            fn terminate(&self) {}
            fn kill(&self) {}
            fn ended(&self) -> Pin<Box<dyn Future<Output = ExitStatus> + Send + '_>> {
                Box::pin(std::future::pending())
            }
        }
        let link = Arc::new(Broken(std::fs::File::open("/dev/null").unwrap().into()));
        let conn = Conn::new(link.clone(), 1 << 20, None);
        let mut dirty = Vec::new();
        push_line(&mut dirty, &conn, b"x");
        push_frame(&mut dirty, &conn, frame(b'f', 100_000));
        let mut o = lock(&conn.out);
        assert!(o.write_now(&*link));
        assert!(o.is_empty());
        assert!(o.frames.is_empty());
    }
}
