//! One live node per trader id: an exclusive lock file on the host (`flock`), and, when Redis is
//! configured, a lease in Redis (`SET NX PX`, renewed). A second node with the same trader id waits,
//! bounded, for the first to let go (its shutdown report is final, or it died and the lease
//! expired), then takes over; it never trades while the first holds the lease.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shutdown_core::errors::SinkError;
use shutdown_core::{Report, ReportSink};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::keys::Keys;
use crate::target::RedisTarget;

/// Renew the lease if this node holds it, take it if nobody does; 0 when another node holds it.
const RENEW: &str = "local v = redis.call('GET', KEYS[1]) \
    if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
    if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
    return 0";
/// Delete the lease if this node holds it.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) end return 0";

/// How a lease is taken and kept.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// Where the lock file goes (`<trader_id>.lock`): the node's fallback directory.
    pub dir: PathBuf,
    /// The trader id the lease is for.
    pub trader_id: String,
    /// Key prefix (the trader id when `None`).
    pub key_prefix: Option<String>,
    /// Where Redis is; `None` for the lock file alone (one node per host).
    pub redis: Option<RedisTarget>,
    /// How long the lease lives without renewal: a node that dies lets it go after this.
    pub ttl: Duration,
    /// How long to wait for another node to let go.
    pub wait: Duration,
    /// Connect and response timeout of each Redis call.
    pub timeout: Duration,
}

/// The lease could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// Another node held it for the whole wait.
    #[error("another node holds the lease of {trader_id} ({place}); waited {}", shutdown_core::secs(*waited))]
    Held {
        /// The trader id.
        trader_id: String,
        /// Where: the lock file, or Redis (with the holder it names).
        place: String,
        /// How long this node waited.
        waited: Duration,
    },
    /// The lock file or Redis could not be used.
    #[error("{0}")]
    Unavailable(String),
    /// Redis refused in a way no retry heals (a wrong password, a malformed URL): said at once.
    #[error("{0} (not retried: a refused password or a malformed URL does not heal)")]
    Refused(String),
}

/// A lease this node holds. It is renewed in the background; [`Lease::lost`] resolves if it is
/// lost (another node took it after Redis forgot it, or it could not be renewed within its time to
/// live): the node must stop trading at once. Add it to the shutdown as a report sink: it lets go
/// once the report is final, so a waiting node takes over.
#[derive(Debug)]
pub struct Lease {
    _file: File,
    redis: Option<(RedisTarget, String, String)>,
    lost: watch::Receiver<Option<String>>,
    renewal: Option<JoinHandle<()>>,
    timeout: Duration,
}

impl Lease {
    /// Take the lease, waiting at most `options.wait` for another node to let go.
    pub async fn acquire(options: &LeaseOptions) -> Result<Lease, LeaseError> {
        let start = Instant::now();
        let deadline = start + options.wait;
        let file = lock_file(&options.dir, &options.trader_id, deadline).await?;
        let Some(target) = options.redis.clone() else {
            let (_, lost) = watch::channel(None);
            return Ok(Lease {
                _file: file,
                redis: None,
                lost,
                renewal: None,
                timeout: options.timeout,
            });
        };
        let prefix = options.key_prefix.as_deref().unwrap_or(&options.trader_id);
        let key = Keys::new(prefix)
            .map_err(|e| LeaseError::Unavailable(e.to_string()))?
            .lease();
        let holder = format!(
            "pid {} at {}",
            std::process::id(),
            crate::snapshot::now_rfc3339()
        );
        let ttl_ms = options.ttl.as_millis().max(1).to_string();
        loop {
            let taken = async {
                let mut con = target.connect(options.timeout, options.timeout).await?;
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&holder)
                    .arg("NX")
                    .arg("PX")
                    .arg(&ttl_ms)
                    .query_async(&mut con)
                    .await
                    .map_err(|e| target.error("cannot take the lease at", &e))?;
                let current: Option<String> = match set {
                    Some(_) => None,
                    None => redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut con)
                        .await
                        .map_err(|e| target.error("cannot read the lease at", &e))?,
                };
                Ok::<_, crate::target::RedisError>((set.is_some(), current))
            };
            match taken.await {
                Ok((true, _)) => break,
                Ok((false, holder)) if Instant::now() + RETRY > deadline => {
                    return Err(LeaseError::Held {
                        trader_id: options.trader_id.clone(),
                        place: format!(
                            "in Redis, held by {}",
                            holder.unwrap_or_else(|| "another node".into())
                        ),
                        waited: start.elapsed(),
                    });
                }
                Ok((false, _)) => {}
                Err(e) if e.is_lasting() => return Err(LeaseError::Refused(e.0)),
                Err(e) if Instant::now() + RETRY > deadline => {
                    return Err(LeaseError::Unavailable(e.0));
                }
                Err(e) => tracing::warn!(error = %e, "cannot take the lease yet; retrying"),
            }
            tokio::time::sleep(RETRY).await;
        }
        let (tell, lost) = watch::channel(None);
        let renewal = tokio::spawn(renew(
            target.clone(),
            key.clone(),
            holder.clone(),
            options.ttl,
            options.timeout,
            tell,
        ));
        Ok(Lease {
            _file: file,
            redis: Some((target, key, holder)),
            lost,
            renewal: Some(renewal),
            timeout: options.timeout,
        })
    }

    /// Resolves with the reason when the lease is lost (never, for a lock file alone).
    pub async fn lost(&self) -> String {
        let mut lost = self.lost.clone();
        loop {
            if let Some(why) = lost.borrow_and_update().clone() {
                return why;
            }
            if lost.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// How often a waiting node tries again.
const RETRY: Duration = Duration::from_millis(200);

/// Take the exclusive lock on `<dir>/<trader_id>.lock`, waiting until `deadline`.
async fn lock_file(dir: &Path, trader_id: &str, deadline: Instant) -> Result<File, LeaseError> {
    let unavailable = |e: String| LeaseError::Unavailable(e);
    std::fs::create_dir_all(dir)
        .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(format!("{trader_id}.lock"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() + RETRY > deadline => {
                return Err(LeaseError::Held {
                    trader_id: trader_id.to_owned(),
                    place: format!("the lock file {} on this host", path.display()),
                    waited: start.elapsed(),
                });
            }
            Err(std::fs::TryLockError::WouldBlock) => tokio::time::sleep(RETRY).await,
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(unavailable(format!("cannot lock {}: {e}", path.display())));
            }
        }
    }
}

/// Renew the lease every third of its time to live; tell `lost` why when it is lost: another node
/// holds it, or no renewal succeeded for a whole time to live (this node can no longer prove it holds
/// it).
async fn renew(
    target: RedisTarget,
    key: String,
    holder: String,
    ttl: Duration,
    timeout: Duration,
    lost: watch::Sender<Option<String>>,
) {
    let ttl_ms = ttl.as_millis().max(1).to_string();
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        let answer = async {
            let mut con = target.connect(timeout, timeout).await?;
            redis::cmd("EVAL")
                .arg(RENEW)
                .arg(1)
                .arg(&key)
                .arg(&holder)
                .arg(&ttl_ms)
                .query_async::<i64>(&mut con)
                .await
                .map_err(|e| target.error("cannot renew the lease at", &e))
        };
        let why = match answer.await {
            Ok(0) => "another node holds the lease".to_owned(),
            Ok(_) => {
                renewed = Instant::now();
                continue;
            }
            Err(e) if renewed.elapsed() < ttl => {
                tracing::warn!(error = %e, "cannot renew the lease; retrying");
                continue;
            }
            Err(e) => format!(
                "the lease could not be renewed within its {} ({e})",
                shutdown_core::secs(ttl)
            ),
        };
        tracing::error!(why = %why, "lease lost");
        let _ = lost.send(Some(why));
        return;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(task) = &self.renewal {
            task.abort();
        }
    }
}

impl ReportSink for Lease {
    fn name(&self) -> String {
        match &self.redis {
            Some((target, _, _)) => format!("lease at {target}"),
            None => "lease lock file".into(),
        }
    }

    /// The report is final: let the lease go, so a waiting node takes over now rather than when it
    /// expires. The lock file goes with the process.
    fn write(&self, _report: &Report) -> Result<(), SinkError> {
        if let Some(task) = &self.renewal {
            task.abort();
        }
        let Some((target, key, holder)) = &self.redis else {
            return Ok(());
        };
        let mut con = target
            .connect_blocking(self.timeout)
            .map_err(|e| SinkError::Remote(e.0))?;
        redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(key)
            .arg(holder)
            .query::<i64>(&mut con)
            .map(|_| ())
            .map_err(|e| SinkError::Remote(target.error("cannot release the lease at", &e).0))
    }

    fn timeout(&self) -> Duration {
        self.timeout * 2 + Duration::from_millis(500)
    }
}
