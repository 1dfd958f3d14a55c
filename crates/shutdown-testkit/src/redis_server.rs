//! A real `redis-server` for tests: its own unix socket (or TCP port) and data directory, killed on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test support: a panic is a failed test

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

pub struct RedisServer {
    child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub port: Option<u16>,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl RedisServer {
    /// A server on a unix socket.
    pub fn start() -> RedisServer {
        Self::spawn(&[], false)
    }

    /// A server on a TCP port with extra arguments (`--requirepass x`).
    pub fn start_tcp(extra: &[&str]) -> RedisServer {
        Self::spawn(extra, true)
    }

    fn spawn(extra: &[&str], tcp: bool) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let port = tcp.then(free_port);
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(port.unwrap_or(0).to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--dir")
            .arg(dir.path())
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.to_lowercase().contains("ready to accept connections") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("redis-server ready within 10 s");
        let url = match port {
            Some(p) => format!("redis://127.0.0.1:{p}/"),
            None => format!("redis+unix://{}", socket.display()),
        };
        RedisServer {
            child,
            dir,
            url,
            port,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn fallback_dir(&self) -> PathBuf {
        self.dir.path().join("fallback")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
