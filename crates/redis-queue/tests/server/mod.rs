//! A real redis-server (Debian's `redis-server`) for the crate's tests: started on a free
//! loopback port without persistence, stopped when dropped. No mock of Redis.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    pub async fn start(extra: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut args = vec!["--port".to_string(), port.to_string()];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::start_on(port, &args).await
    }

    /// A server with `args` (which give its port), waited for on `port`.
    #[allow(dead_code)] // not every test file starts one on a port of its own
    pub async fn start_on(port: u16, args: &[&str]) -> Server {
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        let url = format!("redis://127.0.0.1:{port}");
        // Up to a minute for the server to listen (a loaded machine).
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Server { child, url };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on port {port}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
