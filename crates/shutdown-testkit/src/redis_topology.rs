//! Real Redis deployments for tests: a Cluster of masters, a Sentinel-watched master with a replica
//! and three sentinels, and a TCP proxy that cuts a client's connection on demand. Every process
//! runs on loopback, on ports it chose, with its files in its own temp dir, killed on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test support: a panic is a failed test

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::redis_server::RedisServer;

/// `redis-cli -p PORT ARGS...`, its stdout (empty when it fails).
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli is installed (scripts/test.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Poll `check` every 50 ms until it holds or `limit` passes; panics with `what` on timeout.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Redis Cluster of `masters` masters (no replicas), created with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`
    pub url: String,
}

impl RedisCluster {
    pub fn start(masters: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| {
                RedisServer::start_tcp(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port.unwrap()))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for n in &nodes {
            let port = n.port.unwrap();
            wait_until("the cluster is ok", Duration::from_secs(20), || {
                cli(port, &["cluster", "info"]).contains("cluster_state:ok")
            });
        }
        RedisCluster {
            url: format!("redis+cluster://{}", addrs.join(",")),
            nodes,
        }
    }

    /// The port of the master that holds `key`.
    pub fn port_of(&self, key: &str) -> u16 {
        let slot: u16 = cli(self.nodes[0].port.unwrap(), &["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap();
        self.nodes
            .iter()
            .map(|n| n.port.unwrap())
            .find(|p| owns(*p, slot))
            .unwrap()
    }
}

/// Whether the node at `port` serves `slot` (its `cluster nodes` line, marked `myself`, lists its
/// slot ranges).
fn owns(port: u16, slot: u16) -> bool {
    cli(port, &["cluster", "nodes"])
        .lines()
        .find(|l| l.contains("myself"))
        .map(|l| {
            l.split_whitespace().skip(8).any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                match (a.parse::<u16>(), b.parse::<u16>()) {
                    (Ok(a), Ok(b)) => (a..=b).contains(&slot),
                    _ => false,
                }
            })
        })
        .unwrap_or(false)
}

/// One `redis-server --sentinel`.
struct SentinelProc {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for SentinelProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One master, one replica and three sentinels watching them as `main` (quorum 2, down after 1 s).
pub struct RedisSentinel {
    pub master: RedisServer,
    pub replica: RedisServer,
    sentinels: Vec<SentinelProc>,
    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/main`
    pub url: String,
}

pub const SERVICE: &str = "main";

fn field(text: &str, name: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .position(|l| *l == name)
        .and_then(|i| lines.get(i + 1))
        .map(|v| (*v).to_owned())
}

impl RedisSentinel {
    pub fn start() -> RedisSentinel {
        let master = RedisServer::start_tcp(&[]);
        let mport = master.port.unwrap().to_string();
        let replica = RedisServer::start_tcp(&["--replicaof", "127.0.0.1", &mport]);
        let rport = replica.port.unwrap();
        wait_until("the replica is in sync", Duration::from_secs(20), || {
            cli(rport, &["info", "replication"]).contains("master_link_status:up")
        });
        let sentinels: Vec<SentinelProc> = (0..3).map(|_| Self::sentinel(&mport)).collect();
        for s in &sentinels {
            wait_until(
                "each sentinel knows the replica and the other sentinels",
                Duration::from_secs(30),
                || {
                    let m = cli(s.port, &["sentinel", "master", SERVICE]);
                    field(&m, "num-slaves").as_deref() == Some("1")
                        && field(&m, "num-other-sentinels").as_deref() == Some("2")
                },
            );
        }
        let addrs: Vec<String> = sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        RedisSentinel {
            url: format!("redis+sentinel://{}/{SERVICE}", addrs.join(",")),
            master,
            replica,
            sentinels,
        }
    }

    /// A sentinel on a port it probed; when another process took that port before the sentinel
    /// bound it, another port (four tries).
    fn sentinel(master_port: &str) -> SentinelProc {
        let mut failures = Vec::new();
        loop {
            match Self::try_sentinel(master_port) {
                Ok(s) => return s,
                Err(e) if failures.len() < 4 => failures.push(e),
                Err(e) => panic!("sentinel did not start: {failures:?} {e}"),
            }
        }
    }

    fn try_sentinel(master_port: &str) -> Result<SentinelProc, String> {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("sentinel.conf");
        let mut f = std::fs::File::create(&conf).unwrap();
        write!(
            f,
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {SERVICE} 1000\n\
             sentinel failover-timeout {SERVICE} 5000\n\
             sentinel parallel-syncs {SERVICE} 1\n",
            dir.path().display()
        )
        .unwrap();
        let mut child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let out = child.stdout.take().unwrap();
        let child = crate::wait_ready(child, out, "+monitor master")
            .map_err(|e| format!("port {port}: {e}"))?;
        Ok(SentinelProc {
            child,
            port,
            _dir: dir,
        })
    }

    /// The master's port as the sentinel `i` names it.
    pub fn master_port(&self, i: usize) -> Option<u16> {
        let out = cli(
            self.sentinels[i].port,
            &["sentinel", "get-master-addr-by-name", SERVICE],
        );
        out.lines().nth(1)?.trim().parse().ok()
    }

    /// Kill the master (SIGKILL) and wait until the sentinels name the replica instead.
    pub fn fail_over(&mut self) {
        let old = self.master.port;
        self.master.kill();
        self.wait_failed_over(old);
    }

    /// Wait until every sentinel names a master other than the one at `old`, and it says it is one.
    pub fn wait_failed_over(&self, old: Option<u16>) {
        wait_until(
            "the sentinels promote the replica",
            Duration::from_secs(30),
            || {
                (0..self.sentinels.len()).all(|i| {
                    let port = self.master_port(i);
                    port.is_some() && port != old
                }) && self
                    .master_port(0)
                    .is_some_and(|p| cli(p, &["role"]).starts_with("master"))
            },
        );
    }
}

/// A TCP proxy to `127.0.0.1:upstream`: [`Proxy::cut`] closes every connection through it and
/// refuses new ones until [`Proxy::heal`] (a client partitioned from its Redis).
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                {
                    let mut open = o.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy { port, cut, open }
    }

    /// Close every connection and refuse new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Accept connections again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}
