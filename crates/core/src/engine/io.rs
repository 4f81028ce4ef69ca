//! Socket I/O: a worker as a connection ([`Link`]), its output buffer and the writes after
//! each update, and the I/O thread's tasks (channel reads, blocked writes, exit watches).

use std::future::Future;
use std::io::{self, Read as _, Write as _};
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

#[derive(Default)]
pub(crate) struct OutBuf {
    /// Bytes for the worker; those before `written` are written already.
    buf: Vec<u8>,
    /// How much of `buf` the socket has taken. A partial write only advances it (moving the
    /// rest to the front after every write made sending a large job's arguments quadratic);
    /// the front is reclaimed when everything is written, or by `reclaim` before appending.
    written: usize,
    /// A flush task owns the writing until the socket drains.
    flushing: bool,
    /// Listed in the update's dirty list already.
    queued: bool,
}

impl OutBuf {
    /// Writes what the socket takes now. Returns false when the rest must wait for the socket
    /// to become writable.
    fn write_now(&mut self, link: &dyn Link) -> bool {
        while self.written < self.buf.len() {
            // A plain non-blocking write: any thread may write, whatever the runtime has seen.
            match link.write(&self.buf[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The worker is going away; its exit settles its jobs.
                    self.written = self.buf.len();
                }
            }
        }
        self.clear();
        true
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.written = 0;
    }

    /// Before appending: drops the written front once it is at least half of the buffer, so
    /// the buffer stays within twice what is unwritten and each byte moves at most once on
    /// average.
    fn reclaim(&mut self) {
        if self.written > 0 && self.written * 2 >= self.buf.len() {
            self.buf.drain(..self.written);
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
