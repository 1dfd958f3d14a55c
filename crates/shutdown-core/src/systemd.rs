//! The systemd notify protocol, spoken to the socket `NOTIFY_SOCKET` names (a path, or `@name` for an
//! abstract socket): `READY=1` once the node is up, `STOPPING=1` when its shutdown starts, a `STATUS=`
//! line per step and as it goes, and `EXTEND_TIMEOUT_USEC=` only while a critical step is making
//! progress, so `TimeoutStopSec` does not cut a cancel short that is still confirming orders, and a
//! stalled step is still bounded by it. Without `NOTIFY_SOCKET` nothing is sent.
//!
//! A [`crate::Shutdown`] finds the socket by itself; a node says it is up with [`ready`].

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use crate::pipeline::Pipeline;
use crate::trigger::Reason;

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    socket: Socket,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Socket {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// The socket `NOTIFY_SOCKET` names, if it names one.
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = value.as_encoded_bytes();
        let socket = match bytes.split_first() {
            None => return None,
            Some((b'@', name)) => Socket::Abstract(name.to_vec()),
            Some(_) => Socket::Path(PathBuf::from(value)),
        };
        Some(Notifier { socket })
    }

    /// Notifications to the datagram socket at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Notifier {
        Notifier {
            socket: Socket::Path(path.into()),
        }
    }

    /// Send one notification (`KEY=VALUE` lines). Never waits: when the service manager's queue is
    /// full (it is not reading), the notification is refused (`WouldBlock`) rather than holding up
    /// the shutdown.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        match &self.socket {
            Socket::Path(path) => socket.send_to(state.as_bytes(), path).map(|_| ()),
            Socket::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &addr).map(|_| ())
            }
        }
    }

    /// Send, logging a failure instead of returning it: the service manager not hearing is no
    /// reason to change what the node does.
    pub(crate) fn tell(&self, state: &str) {
        if let Err(e) = self.notify(state) {
            tracing::warn!(error = %e, "cannot notify the service manager");
        }
    }
}

/// Tell the service manager the node is up (`READY=1`), when it is listening; `Ok(false)` when it
/// is not.
pub fn ready() -> io::Result<bool> {
    match Notifier::from_env() {
        Some(n) => n.notify("READY=1").map(|()| true),
        None => Ok(false),
    }
}

/// A shutdown (or a start gate) of `steps` steps begins: `STOPPING=1` and a status. A start gate is
/// no stop: the unit hears its progress, not `STOPPING`.
pub(crate) fn begins(notifier: Option<&Notifier>, reason: &Reason, steps: usize) {
    if let Some(n) = notifier {
        n.tell(&match reason {
            Reason::Start => format!("STATUS=start gate: {steps} steps"),
            _ => format!("STOPPING=1\nSTATUS=shutting down ({reason}): {steps} steps"),
        });
    }
}

/// Step `index` of `pipeline` starts: `STATUS=step 2/5 cancel: started` at once, then, while the
/// returned future is polled, every `progress_interval` its status (its summary, or `running`), and
/// for a critical step whose counts or summary moved since the last look, more time from the service
/// manager. A stalled step gets none, so the unit's own stop timeout still bounds it. The future
/// never ends (and says nothing without a notifier); the step's end drops it.
pub(crate) fn step_progress<'a>(
    notifier: Option<&'a Notifier>,
    pipeline: &Pipeline,
    index: usize,
    partial: &'a crate::step::Partial,
) -> impl std::future::Future<Output = std::convert::Infallible> + 'a {
    let settings = &pipeline.steps[index].settings;
    let label = format!(
        "step {}/{} {}",
        index + 1,
        pipeline.steps.len(),
        settings.name
    );
    let every = pipeline.settings.systemd.progress_interval;
    let critical = settings.critical;
    if let Some(n) = notifier {
        n.tell(&format!("STATUS={label}: started"));
    }
    async move {
        let Some(notifier) = notifier else {
            return std::future::pending().await;
        };
        let mut seen = partial.progress();
        loop {
            tokio::time::sleep(every).await;
            let now = partial.progress();
            let what = now.1.as_deref().unwrap_or("running");
            let mut state = format!("STATUS={label}: {what}");
            if critical && now != seen {
                let more = (every * 2).as_micros();
                state.push_str(&format!("\nEXTEND_TIMEOUT_USEC={more}"));
            }
            notifier.tell(&state);
            seen = now;
        }
    }
}

/// The report is written: `STATUS=shutdown clean (exit 0)`.
pub(crate) fn ends(notifier: Option<&Notifier>, reason: &Reason, report: &crate::Report) {
    if let Some(n) = notifier {
        let what = match reason {
            Reason::Start => "start gate",
            _ => "shutdown",
        };
        let (outcome, code) = (report.outcome, report.exit_code);
        n.tell(&format!("STATUS={what} {outcome} (exit {code})"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_reaches_the_socket_and_a_missing_socket_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        Notifier::at(&path).notify("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        assert!(
            Notifier::at(dir.path().join("gone.sock"))
                .notify("X=1")
                .is_err()
        );
    }

    #[test]
    fn a_listener_that_never_reads_costs_refused_notifications_never_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let _listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::at(&path);
        // The kernel queues a few datagrams (net.unix.max_dgram_qlen); then each send is refused.
        let refused = (0..1000)
            .map(|i| notifier.notify(&format!("STATUS={i}")))
            .filter(|r| {
                r.as_ref()
                    .is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock)
            })
            .count();
        assert!(refused > 0, "a full queue must refuse, not wait");
    }

    #[test]
    fn an_abstract_socket_is_reached_by_its_name() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("shutdown-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let notifier = Notifier {
            socket: Socket::Abstract(name.into_bytes()),
        };
        notifier.notify("STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
