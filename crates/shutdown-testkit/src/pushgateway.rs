//! A real `prometheus-pushgateway` for tests, on its own port, killed on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test support: a panic is a failed test

use std::process::{Child, Command, Stdio};

pub struct Pushgateway {
    child: Child,
    /// Its persistence file lives here (Debian's default is one file shared by every Pushgateway).
    _dir: tempfile::TempDir,
    pub url: String,
}

impl Pushgateway {
    /// Start one on a free port. Another process may take the port between the probe and the
    /// start: then this child fails to listen, and it tries again on another port. The server is
    /// ready when this child says it listens, so the one the test talks to is the one it started.
    pub fn start() -> Pushgateway {
        let dir = tempfile::tempdir().unwrap();
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            match Self::launch(&dir, port) {
                Ok(child) => {
                    return Pushgateway {
                        child,
                        _dir: dir,
                        url: format!("http://127.0.0.1:{port}"),
                    };
                }
                Err(e) => failures.push(e),
            }
        }
        panic!("pushgateway did not start: {failures:?}");
    }

    fn launch(dir: &tempfile::TempDir, port: u16) -> Result<Child, String> {
        let mut child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--persistence.file={}",
                dir.path().join("pushgateway.data").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prometheus-pushgateway is installed (scripts/test.sh installs it)");
        let err = child.stderr.take().unwrap();
        crate::wait_ready(child, err, "listening on").map_err(|e| format!("port {port}: {e}"))
    }

    /// The metric group pushed under these grouping labels (from `/api/v1/metrics`), if any.
    pub fn group(&self, labels: &[(&str, &str)]) -> Option<serde_json::Value> {
        let api: serde_json::Value = ureq::get(&format!("{}/api/v1/metrics", self.url))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        let groups = api["data"].as_array()?;
        groups
            .iter()
            .find(|g| labels.iter().all(|(k, v)| g["labels"][*k] == *v))
            .cloned()
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `promtool check metrics` on `text`; returns its exit success and output.
pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/test.sh installs prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
