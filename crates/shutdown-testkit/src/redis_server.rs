//! A real `redis-server` for tests: its own unix socket (or TCP port) and data directory, killed on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test support: a panic is a failed test

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct RedisServer {
    child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub port: Option<u16>,
    /// The extra arguments it was started with (for [`RedisServer::restart`]).
    extra: Vec<String>,
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

    /// A TLS-only server (`rediss://127.0.0.1:PORT`) with a certificate from a throwaway CA, whose PEM
    /// is `dir/ca.crt`.
    pub fn start_tls() -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl is installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        let port = free_port();
        let tls = [
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            d.join("server.crt").display().to_string(),
            "--tls-key-file".to_owned(),
            d.join("server.key").display().to_string(),
            "--tls-ca-cert-file".to_owned(),
            d.join("ca.crt").display().to_string(),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        let args: Vec<&str> = tls.iter().map(String::as_str).collect();
        let mut server = Self::spawn_in(dir, &args, None);
        server.url = format!("rediss://127.0.0.1:{port}/");
        server.port = Some(port);
        server
    }

    /// A server on a TCP port with extra arguments (`--requirepass x`).
    pub fn start_tcp(extra: &[&str]) -> RedisServer {
        Self::spawn(extra, true)
    }

    fn spawn(extra: &[&str], tcp: bool) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        Self::spawn_in(dir, extra, tcp.then(free_port))
    }

    /// Start in `dir`; on a TCP port, a port another process took between the probe and the start
    /// makes this child exit before it is ready, and it tries again on another port.
    fn spawn_in(dir: tempfile::TempDir, extra: &[&str], port: Option<u16>) -> RedisServer {
        let mut failures = Vec::new();
        let mut port = port;
        let child = loop {
            match Self::launch(dir.path(), extra, port) {
                Ok(child) => break child,
                Err(e) if port.is_some() && failures.len() < 4 => {
                    failures.push(e);
                    port = Some(free_port());
                }
                Err(e) => panic!("redis-server did not start: {failures:?} {e}"),
            }
        };
        let socket = dir.path().join("redis.sock");
        let url = match port {
            Some(p) => format!("redis://127.0.0.1:{p}/"),
            None => format!("redis+unix://{}", socket.display()),
        };
        RedisServer {
            child,
            dir,
            url,
            port,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// Kill the server and start a fresh one (empty) at the same address: what clients see when
    /// Redis restarts.
    pub fn restart(&mut self) {
        self.kill();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.child = Self::launch(self.dir.path(), &extra, self.port)
            .unwrap_or_else(|e| panic!("redis-server did not restart: {e}"));
    }

    /// Start redis-server in `dir` (its data, its socket, no saving) and wait until this child
    /// accepts connections.
    fn launch(dir: &std::path::Path, extra: &[&str], port: Option<u16>) -> Result<Child, String> {
        let socket = dir.join("redis.sock");
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
            .arg(dir)
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
        crate::wait_ready(child, out, "ready to accept connections")
            .map_err(|e| format!("port {port:?}: {e}"))
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
