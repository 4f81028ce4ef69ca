//! How many `md5` calls per second the release `md5_worker` example answers when a driver
//! pipelines calls to it as fast as it takes them: the worker's own ceiling, with no pool in
//! between. Ignored by default; run it with
//!
//! ```text
//! cargo build --release -p comrade-worker --examples
//! cargo test --release -p comrade-worker --test throughput -- --ignored --nocapture
//! ```
//!
//! The driver is this test: one thread writes the calls in 200 KB chunks, the other reads the
//! replies and counts lines. `COMRADE_BENCH_CALLS` sets the
//! number of calls (default 300000), `COMRADE_BENCH_PAYLOAD` the payload size in bytes (default
//! 3000, the luafan workload).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn md5_calls_per_second() {
    let calls = env_usize("COMRADE_BENCH_CALLS", 300_000);
    let payload_len = env_usize("COMRADE_BENCH_PAYLOAD", 3000);
    let exe = std::env::current_exe().unwrap();
    let worker = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/md5_worker");
    assert!(
        worker.exists(),
        "{} is not built: cargo build --release -p comrade-worker --examples",
        worker.display()
    );

    let (pool, child_end) = UnixStream::pair().unwrap();
    let fd = child_end.as_raw_fd();
    let mut cmd = Command::new(&worker);
    cmd.env("COMRADE_CHANNEL_FD", "3").stdout(Stdio::null());
    // SAFETY: dup2 is async-signal-safe; fd is not 3 (the pair was made after std's fds).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(child_end);

    // Printable payload with no characters that JSON escapes, like the benchmark's.
    let payload: String = (0..payload_len)
        .map(|i| (b'a' + (i * 7 % 26) as u8) as char)
        .collect();
    let mut writer = pool.try_clone().unwrap();
    writer
        .write_all(b"{\"t\":\"init\",\"data\":null}\n")
        .unwrap();
    // The calls are built once, in blocks of BLOCK calls (ids repeat from block to block,
    // which the worker does not mind), so the feeder costs little more than the kernel's copy.
    const BLOCK: usize = 1000;
    let mut block = Vec::new();
    for id in 0..BLOCK {
        block.extend_from_slice(b"{\"t\":\"call\",\"id\":");
        block.extend_from_slice(id.to_string().as_bytes());
        block.extend_from_slice(b",\"fn\":\"md5\",\"args\":[\"");
        block.extend_from_slice(payload.as_bytes());
        block.extend_from_slice(b"\"]}\n");
    }
    let feeder = std::thread::spawn(move || {
        let mut left = calls;
        while left > 0 {
            let n = left.min(BLOCK);
            let end = if n == BLOCK {
                block.len()
            } else {
                // The first n lines of the block.
                memchr::memchr_iter(b'\n', &block).nth(n - 1).unwrap() + 1
            };
            writer.write_all(&block[..end]).unwrap();
            left -= n;
        }
    });

    let start = Instant::now();
    let mut reader = pool;
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0usize;
    let mut bytes = 0usize;
    let mut last = Vec::new();
    while lines < calls + 1 {
        let n = reader.read(&mut buf).unwrap();
        assert!(n > 0, "worker closed the channel after {lines} lines");
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count();
        bytes += n;
        // Keep the end of the stream, enough to hold the last reply whole.
        last.extend_from_slice(&buf[..n]);
        let keep = 2 * payload_len + 200;
        if last.len() > 2 * keep {
            last.drain(..last.len() - keep);
        }
    }
    let elapsed = start.elapsed();
    feeder.join().unwrap();
    let text = String::from_utf8_lossy(&last);
    let final_line = text.trim_end().rsplit('\n').next().unwrap();
    assert!(
        final_line.starts_with(&format!(
            "{{\"t\":\"ok\",\"id\":{},\"v\":[\"",
            (calls - 1) % BLOCK
        )),
        "{}",
        &final_line[..final_line.len().min(200)]
    );
    drop(reader);
    assert!(child.wait().unwrap().success());
    let rate = calls as f64 / elapsed.as_secs_f64();
    println!(
        "md5_worker: {calls} calls of {payload_len} B in {:.3} s = {rate:.0} calls/s ({:.0} MB/s of replies)",
        elapsed.as_secs_f64(),
        bytes as f64 / elapsed.as_secs_f64() / 1e6
    );
}
