//! Starting worker processes with a channel on fd 3, the way Node's `child_process.fork` does,
//! so Node workers get a working `process.send` / `process.on('message')`.
//!
//! Every spawn happens on one long-lived thread: Linux's parent-death signal fires when the
//! *thread* that forked exits, so forking from a short-lived thread would kill the child at once.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

/// What to run for one worker.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Variables added to (or replacing) the inherited environment.
    pub env: Vec<(OsString, OsString)>,
    /// Inherited variables to drop (e.g. Node `cluster` markers).
    pub env_remove: Vec<OsString>,
    pub cwd: Option<OsString>,
    /// Pin the worker to this CPU (Linux `sched_setaffinity`), if set.
    pub cpu: Option<usize>,
    /// Added to the worker's nice value (0..=19): a lower CPU priority than the parent's, so a
    /// saturated pool does not take the CPU from the parent's event loop.
    pub nice: i32,
}

/// A started worker: its pid, the parent's end of the channel, and a pidfd that becomes
/// readable when the process exits.
pub struct Spawned {
    pub pid: i32,
    pub channel: OwnedFd,
    pub pidfd: OwnedFd,
    /// The keeper of the worker's process group (see [`start_keeper`]), if it could be started.
    /// It ends when the group is killed; reap it then ([`reap`]).
    pub keeper: Option<i32>,
}

/// The fd number the child sees its channel on (Node's `NODE_CHANNEL_FD`).
pub const CHILD_CHANNEL_FD: RawFd = 3;

type Request = (SpawnSpec, mpsc::SyncSender<io::Result<Spawned>>);

fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    static TX: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("comrade-spawner".into())
            .spawn(move || {
                // Lives as long as the process: the children's parent-death signal is tied
                // to this thread.
                while let Ok((spec, reply)) = rx.recv() {
                    let _ = reply.send(spawn_here(&spec));
                }
            })
            .expect("start the comrade spawner thread");
        Mutex::new(tx)
    })
}

/// Starts a worker (on the spawner thread) and waits for the result.
pub fn spawn(spec: SpawnSpec) -> io::Result<Spawned> {
    let (tx, rx) = mpsc::sync_channel(1);
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((spec, tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A connected pair of stream sockets, both close-on-exec.
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints for socketpair to fill.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded, so both fds are open and owned by nobody else.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&pair.0, &pair.1] {
        set_send_buffer(fd.as_raw_fd(), CHANNEL_SNDBUF);
    }
    Ok(pair)
}

/// The send buffer asked for on each end of a channel. A Unix socket holds about 208 KiB by
/// default: a 1 MiB binary argument or result then takes several writes, each waiting for
/// the reader to wake and drain, where 4 MiB takes a few jobs' worth in one write each way.
/// Memory is charged only for bytes in flight. The kernel caps it at `net.core.wmem_max`.
const CHANNEL_SNDBUF: libc::c_int = 4 * 1024 * 1024;

/// Best effort: a smaller buffer only costs more writes.
fn set_send_buffer(fd: RawFd, bytes: libc::c_int) {
    // SAFETY: setsockopt reads an int from a valid pointer, on a socket the caller owns.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on an fd the caller owns.
    unsafe {
        let flags = cvt(libc::fcntl(fd, libc::F_GETFL))?;
        cvt(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn spawn_here(spec: &SpawnSpec) -> io::Result<Spawned> {
    let (parent_end, child_end) = socket_pair()?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    for k in &spec.env_remove {
        cmd.env_remove(k);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let child_fd = child_end.as_raw_fd();
    let parent_pid = std::process::id() as libc::pid_t;
    let cpu = spec.cpu;
    let nice = spec.nice.clamp(0, 19);
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (dup2, fcntl, setpgid, prctl, getppid, sched_setaffinity,
    // setpriority, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if child_fd == CHILD_CHANNEL_FD {
                let flags = cvt(libc::fcntl(child_fd, libc::F_GETFD))?;
                cvt(libc::fcntl(
                    child_fd,
                    libc::F_SETFD,
                    flags & !libc::FD_CLOEXEC,
                ))?;
            } else {
                cvt(libc::dup2(child_fd, CHILD_CHANNEL_FD))?;
            }
            // The inherited stdio must survive exec even if the parent marked it close-on-exec
            // (Node's child_process dups it for the same reason).
            for fd in 0..3 {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 && flags & libc::FD_CLOEXEC != 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
            }
            // The leader of a process group of its own, which its children join: the pool
            // stops the whole group (`kill_group`), so a worker's children go with it.
            cvt(libc::setpgid(0, 0))?;
            // Die with the parent, even when it is SIGKILLed; SIGKILL also stops a worker
            // stuck in a loop or one that handles SIGTERM.
            cvt(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent_pid {
                libc::_exit(1);
            }
            if let Some(cpu) = cpu {
                // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET bounds-checks.
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                cvt(libc::sched_setaffinity(
                    0,
                    std::mem::size_of::<libc::cpu_set_t>(),
                    &set,
                ))?;
            }
            if nice > 0 {
                // Raising the nice value needs no privilege; threads the program starts inherit it.
                let now = libc::getpriority(libc::PRIO_PROCESS, 0);
                cvt(libc::setpriority(
                    libc::PRIO_PROCESS,
                    0,
                    (now + nice).min(19),
                ))?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(child_end);
    let pid = child.id() as i32;
    // The pool reaps the child itself (through the pidfd), so the std handle is not kept.
    drop(child);
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            kill(pid, libc::SIGKILL);
            return Err(e);
        }
    };
    set_nonblocking(parent_end.as_raw_fd())?;
    // The worker has exec'd (spawn returns only then), so its group exists.
    let keeper = start_keeper(pid, parent_pid).ok();
    Ok(Spawned {
        pid,
        channel: parent_end,
        pidfd,
        keeper,
    })
}

/// Starts the keeper of worker `pgid`'s process group: a process (a fork of this one that
/// never returns to Rust code) that joins the group, closes every descriptor, and waits for
/// this process (`parent`) to die (its parent-death signal, from the spawner thread like the
/// workers'). Then it SIGKILLs the whole group, itself included: the worker's children die
/// with the host even when the host is SIGKILLed (the worker itself dies of its own
/// parent-death signal, and nothing else is left to stop its children). Children that left the
/// group (`setsid`, `detached: true`) are beyond its reach. The group is killed with the worker
/// while the host lives, and the keeper with it.
fn start_keeper(pgid: i32, parent: libc::pid_t) -> io::Result<i32> {
    // SAFETY: fork() in a multi-threaded process; the child runs `keeper`, which makes only
    // async-signal-safe system calls and never returns.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        // SAFETY: see above; this is the child.
        0 => unsafe { keeper(pgid, parent) },
        pid => Ok(pid),
    }
}

/// The keeper's whole life (see [`start_keeper`]).
///
/// # Safety
/// Only in the child of a fork: it closes every descriptor and exits.
unsafe fn keeper(pgid: i32, parent: libc::pid_t) -> ! {
    // Every signal blocked: a SIGTERM to the group (the pool stopping its worker) or a SIGINT
    // does not end the keeper before the worker; SIGKILL does, and the parent-death signal is
    // taken by sigwaitinfo.
    let mut all: libc::sigset_t = std::mem::zeroed();
    libc::sigfillset(&mut all);
    libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    // No copy of the host's descriptors (sockets, pipes) may outlive the host here.
    if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
        for fd in 0..65_536 {
            libc::close(fd);
        }
    }
    if libc::setpgid(0, pgid) != 0 {
        // The worker is gone already.
        libc::_exit(0);
    }
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1, 0, 0, 0);
    let mut wake: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut wake);
    libc::sigaddset(&mut wake, libc::SIGUSR1);
    loop {
        // Also when the parent died before the prctl.
        if libc::getppid() != parent {
            libc::kill(0, libc::SIGKILL);
            libc::_exit(0);
        }
        libc::sigwaitinfo(&wake, std::ptr::null_mut());
    }
}

/// Waits for child `pid` to end and reaps it (for a group keeper, once its group was killed).
pub fn reap(pid: i32) {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid on our own child with a valid status pointer.
    while unsafe { libc::waitpid(pid, &mut status, 0) } == -1
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

/// Resident memory of a process in bytes (Linux `/proc/<pid>/statm`), if it can be read.
pub fn rss_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}

/// Physical cores and logical CPUs (execution units) of the machine.
pub fn ncpu() -> (usize, usize) {
    (num_cpus::get_physical(), num_cpus::get())
}

/// The CPUs this process may run on (its affinity mask), in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Sends a signal; errors (already gone) are ignored on purpose.
pub fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a pid we spawned and have not reaped yet, so it cannot be reused.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Sends a signal to worker `pid` and its process group (the worker leads one: see
/// `spawn_here`), so that the children it started, unless they left the group, get it too.
/// Falls back to the worker alone if the group is gone. Errors (already gone) are ignored.
pub fn kill_group(pid: i32, signal: i32) {
    // SAFETY: kill(2) on the group a worker we spawned leads. While the worker is not reaped
    // its pid (and so its group id) cannot be reused; after that, the group id stays taken as
    // long as a member lives.
    unsafe {
        if libc::kill(-pid, signal) != 0 {
            libc::kill(pid, signal);
        }
    }
}

/// How a process ended, as Node reports it: an exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    pub fn code(&self) -> Option<i32> {
        match self {
            ExitStatus::Code(c) => Some(*c),
            ExitStatus::Signal(_) => None,
        }
    }

    pub fn signal(&self) -> Option<i32> {
        match self {
            ExitStatus::Signal(s) => Some(*s),
            ExitStatus::Code(_) => None,
        }
    }
}

/// Reaps `pid` if it has exited (non-blocking).
pub fn try_reap(pid: i32) -> io::Result<Option<ExitStatus>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid on our own child with a valid status pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    if r == 0 {
        return Ok(None);
    }
    Ok(Some(if libc::WIFSIGNALED(status) {
        ExitStatus::Signal(libc::WTERMSIG(status))
    } else {
        ExitStatus::Code(libc::WEXITSTATUS(status))
    }))
}

/// Node's name for a signal number, for messages.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("SIG{sig}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn sh(script: &str) -> SpawnSpec {
        SpawnSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("COMRADE_TEST".into(), "yes".into())],
            env_remove: vec!["HOME".into()],
            cwd: None,
            cpu: None,
            nice: 0,
        }
    }

    fn wait(pid: i32) -> ExitStatus {
        loop {
            if let Some(s) = try_reap(pid).unwrap() {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn child_talks_on_fd_3_and_sees_env() {
        let s = spawn(sh(
            r#"read line <&3; printf '%s|%s|%s\n' "$line" "$COMRADE_TEST" "${HOME-unset}" >&3"#,
        ))
        .unwrap();
        let mut ch = UnixStream::from(s.channel);
        ch.set_nonblocking(false).unwrap();
        ch.write_all(b"hello\n").unwrap();
        let mut out = String::new();
        ch.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello|yes|unset\n");
        assert_eq!(wait(s.pid), ExitStatus::Code(0));
    }

    #[test]
    fn reports_exit_codes_and_signals() {
        let s = spawn(sh("exit 7")).unwrap();
        assert_eq!(wait(s.pid), ExitStatus::Code(7));
        let s = spawn(sh("sleep 30")).unwrap();
        kill(s.pid, libc::SIGKILL);
        assert_eq!(wait(s.pid), ExitStatus::Signal(libc::SIGKILL));
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
    }

    #[test]
    fn nice_lowers_the_child_priority_by_the_increment() {
        // SAFETY: getpriority has no preconditions.
        let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let mut spec = sh(r#"printf '%s\n' "$(nice)" >&3"#);
        spec.nice = 5;
        let s = spawn(spec).unwrap();
        let mut ch = UnixStream::from(s.channel);
        ch.set_nonblocking(false).unwrap();
        let mut out = String::new();
        ch.read_to_string(&mut out).unwrap();
        assert_eq!(out.trim(), (ours + 5).min(19).to_string());
        assert_eq!(wait(s.pid), ExitStatus::Code(0));
    }

    #[test]
    fn a_worker_leads_its_own_process_group_and_kill_group_stops_its_children() {
        // The worker starts a child (in its group) and reports the child's pid and its own pgid.
        let s = spawn(sh(
            r#"sleep 300 & printf '%s %s\n' "$!" "$(ps -o pgid= -p $$)" >&3; wait"#,
        ))
        .unwrap();
        let mut ch = UnixStream::from(s.channel);
        ch.set_nonblocking(false).unwrap();
        let mut line = String::new();
        let mut byte = [0u8; 1];
        while ch.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
        let mut parts = line.split_whitespace().map(|p| p.parse::<i32>().unwrap());
        let (child, pgid) = (parts.next().unwrap(), parts.next().unwrap());
        assert_eq!(pgid, s.pid, "the worker leads its own group");
        // SAFETY: getpgid has no preconditions.
        assert_ne!(unsafe { libc::getpgid(0) }, s.pid);
        kill_group(s.pid, libc::SIGKILL);
        assert_eq!(wait(s.pid), ExitStatus::Signal(libc::SIGKILL));
        // The grandchild (reparented, reaped by someone else) is gone too.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // SAFETY: kill with signal 0 only checks for existence.
        while unsafe { libc::kill(child, 0) } == 0 && !is_zombie(child) {
            assert!(
                std::time::Instant::now() < deadline,
                "grandchild {child} survived"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn is_zombie(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true)
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let mut spec = sh("");
        spec.program = "/nonexistent/comrade-test".into();
        assert!(spawn(spec).is_err());
    }
}
