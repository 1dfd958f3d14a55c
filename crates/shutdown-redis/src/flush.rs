//! `flush`: one atomic snapshot of the node's state to Redis, or to a local fallback file.

use shutdown_core::StepDefaults;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use shutdown_core::errors::{MissingRole, OptionError};
use shutdown_core::node::StateSource;
use shutdown_core::out_of_range;
use shutdown_core::retry::{Backoff, Retryable, retry};
use shutdown_core::{
    DryRunDir, Node, ShutdownStep, StepConfig, StepContext, StepError, StepOutput,
};
use tokio::time::Instant;

use crate::keys::Keys;
use crate::snapshot::{Snapshot, now_rfc3339};
use crate::store::{WriteOptions, write_snapshot};
use crate::target::RedisTarget;

shutdown_core::step_options! {
    /// Options of `flush`.
    pub struct FlushConfig {
        /// Redis URL: one server (redis://, rediss://, redis+unix://), a Cluster
        /// (redis+cluster://HOST:PORT,HOST:PORT) or the master Sentinel names
        /// (redis+sentinel://HOST:PORT,HOST:PORT/SERVICE). Prefer url_env for URLs with a password.
        pub url: String = String::new(),
        /// Environment variable holding the Redis URL; it wins over `url` when set. With no URL at
        /// all, the snapshot goes to the file in fallback_dir as its destination.
        pub url_env: String = "REDIS_URL".into(),
        /// PEM file of the CA that signed the server's certificate, for a rediss:// URL to one
        /// server; the system trust store otherwise.
        pub tls_ca_file: Option<PathBuf> = None,
        /// Keys are `{key_prefix}:...`: the braces are a hash tag, so one transaction stays in one
        /// Redis Cluster slot. Empty: the trader id.
        pub key_prefix: String = String::new(),
        /// Connect timeout of each attempt.
        pub connect_timeout_ms: u64 = 1000,
        /// Response timeout of each command (a large snapshot needs more than the redis crate's
        /// 500 ms).
        pub response_timeout_ms: u64 = 5000,
        /// Attempts after the first, with doubling backoff, within the step's budget.
        pub retries: u32 = 3,
        /// First retry delay.
        pub backoff_ms: u64 = 100,
        /// Entries per HSET while staging.
        pub chunk_size: usize = 1000,
        /// Replicas that must acknowledge (WAIT); fewer is reported as a problem. 0 skips WAIT.
        pub wait_replicas: u32 = 0,
        /// How long WAIT may take.
        pub wait_timeout_ms: u64 = 500,
        /// Read every entry back and check the digest, not only counts and the stored digest.
        pub verify_full: bool = false,
        /// Directory of the fallback file `<trader_id>-snapshot.json`, written when Redis cannot
        /// take the snapshot.
        pub fallback_dir: PathBuf = PathBuf::from("shutdown-fallback"),
    }
}

impl StepConfig for FlushConfig {
    fn validate(&self) -> Vec<OptionError> {
        const DAY_MS: u64 = 86_400_000;
        [
            out_of_range("connect_timeout_ms", self.connect_timeout_ms, 1, DAY_MS),
            out_of_range("response_timeout_ms", self.response_timeout_ms, 1, DAY_MS),
            out_of_range("retries", self.retries, 0, 100),
            out_of_range("backoff_ms", self.backoff_ms, 1, 60_000),
            out_of_range("chunk_size", self.chunk_size, 1, 1_000_000),
            out_of_range("wait_replicas", self.wait_replicas, 0, 100),
            out_of_range("wait_timeout_ms", self.wait_timeout_ms, 0, DAY_MS),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn build(&self, node: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole> {
        Ok(Box::new(Flush {
            config: self.clone(),
            state: node.state()?,
        }))
    }
}

/// The `flush` step.
pub struct Flush {
    config: FlushConfig,
    state: Arc<dyn StateSource>,
}

impl FlushConfig {
    /// Where Redis is: a [`RedisTarget`] handed to the steps at run time
    /// ([`shutdown_core::Shutdown::with_extension`]), else the URL in the environment variable or in
    /// `url`; `None` when none is configured.
    fn target(&self, ctx: &StepContext) -> Option<Result<RedisTarget, String>> {
        if let Some(target) = ctx.extension::<RedisTarget>() {
            return Some(Ok(target.clone()));
        }
        let url = std::env::var(&self.url_env)
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| (!self.url.is_empty()).then(|| self.url.clone()))?;
        let ca = self
            .tls_ca_file
            .as_ref()
            .map(|path| {
                std::fs::read(path)
                    .map_err(|e| format!("cannot read tls_ca_file {}: {e}", path.display()))
            })
            .transpose();
        Some(ca.and_then(|ca| RedisTarget::parse_with_ca(&url, ca).map_err(|e| e.0)))
    }

    fn write_options(&self) -> WriteOptions {
        WriteOptions {
            chunk_size: self.chunk_size,
            wait_replicas: self.wait_replicas,
            wait_timeout: Duration::from_millis(self.wait_timeout_ms),
            verify_full: self.verify_full,
            ..WriteOptions::default()
        }
    }
}

impl Flush {
    async fn gather(&self, ctx: &StepContext) -> Result<Snapshot, StepError> {
        let fail = |what: &str, e: shutdown_core::errors::RoleError| {
            StepError::new(format!("cannot read {what} from the node: {e}"))
        };
        Ok(Snapshot {
            trader_id: ctx.trader_id.clone(),
            taken_at: now_rfc3339(),
            orders: self.state.orders().await.map_err(|e| fail("orders", e))?,
            positions: self
                .state
                .positions()
                .await
                .map_err(|e| fail("positions", e))?,
            accounts: self
                .state
                .accounts()
                .await
                .map_err(|e| fail("accounts", e))?,
            strategies: self
                .state
                .strategies()
                .await
                .map_err(|e| fail("strategies", e))?,
            receipt: ctx.receipt.to_raw(),
        })
    }

    /// Try Redis until it takes the snapshot or `deadline` comes; the last error otherwise.
    async fn to_redis(
        &self,
        target: &RedisTarget,
        keys: &Keys,
        snapshot: &Snapshot,
        deadline: Instant,
    ) -> (Result<crate::store::Written, String>, u32) {
        let options = self.config.write_options();
        let backoff = Backoff {
            retries: self.config.retries,
            initial: Duration::from_millis(self.config.backoff_ms.max(1)),
            max: Duration::from_secs(2),
        };
        let mut attempt = 0;
        let (written, attempts) = retry("flush", backoff, deadline, || {
            attempt += 1;
            let tag = format!("{}-{attempt}", snapshot.taken_at.replace([':', '.'], ""));
            let options = &options;
            async move {
                let mut con = target
                    .connect(
                        Duration::from_millis(self.config.connect_timeout_ms),
                        Duration::from_millis(self.config.response_timeout_ms),
                    )
                    .await
                    .map_err(|e| Attempt(e.0.clone(), e.is_lasting()))?;
                let written = write_snapshot(&mut con, keys, snapshot, &tag, options).await;
                written.map_err(|e| {
                    let e = Attempt(target.scrub(&format!("{}: {e}", target.shown())), false);
                    tracing::warn!(attempt, error = %e.0, "flush attempt failed");
                    e
                })
            }
        })
        .await;
        (written.map_err(|Attempt(e, _)| e), attempts)
    }
}

/// A failed attempt to write the snapshot, and whether no retry can heal it (a refused password,
/// a malformed URL): every other failure is worth another try while time is left.
struct Attempt(String, bool);

impl Retryable for Attempt {
    fn is_retryable(&self) -> bool {
        !self.1
    }

    fn timed_out() -> Self {
        Attempt("no answer before the step's deadline".into(), false)
    }
}

#[async_trait]
impl ShutdownStep for Flush {
    fn kind(&self) -> &'static str {
        "flush"
    }

    fn defaults(&self) -> StepDefaults {
        DEFAULTS
    }

    fn if_not_done(&self) -> Option<String> {
        Some("the state snapshot was not saved: the next start must rebuild its state from the venue".into())
    }

    fn plan(&self) -> Vec<String> {
        vec![
            "read orders, positions, accounts and strategy state from the node".into(),
            format!(
                "stage them in Redis in chunks of {}, then switch them in one MULTI/EXEC with the receipt and the clean marker{}",
                self.config.chunk_size,
                if self.config.wait_replicas > 0 {
                    format!("; WAIT for {} replica(s)", self.config.wait_replicas)
                } else {
                    String::new()
                }
            ),
            format!(
                "read back ({}); {} retries",
                if self.config.verify_full {
                    "every entry"
                } else {
                    "counts and digest"
                },
                self.config.retries
            ),
            format!(
                "if Redis cannot take it: write {}/<trader_id>-snapshot.json",
                self.config.fallback_dir.display()
            ),
        ]
    }

    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        let snapshot = self.gather(&ctx).await?;
        // A dry run writes no file outside the directory it was given.
        let fallback_dir = match ctx.dry_run {
            true => DryRunDir::of(&ctx),
            false => self.config.fallback_dir.clone(),
        };
        if ctx.dry_run && ctx.extension::<RedisTarget>().is_none() {
            let bytes = snapshot.encode().map(|e| e.bytes).map_err(StepError::new)?;
            return Ok(StepOutput::new()
                .summary(format!(
                    "dry run: a snapshot of {bytes} bytes ({}) written nowhere",
                    held(&snapshot)
                ))
                .detail("dry_run", true)
                .detail("counts", snapshot.counts())
                .detail("bytes", bytes)
                .detail("written_to", "nowhere (dry run)"));
        }
        let prefix = if self.config.key_prefix.is_empty() {
            ctx.trader_id.clone()
        } else {
            self.config.key_prefix.clone()
        };
        let keys = Keys::new(&prefix).map_err(|e| StepError::new(e.to_string()))?;
        let start = Instant::now();
        // Leave time to write the fallback file if Redis never answers.
        let budget = ctx.deadline.saturating_duration_since(start);
        let redis_deadline = start
            + budget
                .mul_f64(0.8)
                .min(budget.saturating_sub(Duration::from_millis(300)));
        let Some(target) = self.config.target(&ctx) else {
            // No Redis configured: the file is the destination, not a fallback.
            return crate::fallback::write(&fallback_dir, &snapshot, "no Redis URL configured")
                .map(|path| {
                    StepOutput::new()
                        .summary(format!(
                            "snapshot ({}) to file {}",
                            held(&snapshot),
                            path.display()
                        ))
                        .detail("counts", snapshot.counts())
                        .detail("taken_at", &snapshot.taken_at)
                        .detail("written_to", format!("file {}", path.display()))
                })
                .map_err(|e| {
                    StepError::new(format!(
                        "the snapshot was NOT saved: no Redis URL configured and {e}"
                    ))
                });
        };
        let (redis, attempts) = match target {
            Ok(target) => {
                let (r, n) = self
                    .to_redis(&target, &keys, &snapshot, redis_deadline)
                    .await;
                (r.map(|w| (w, target.shown().to_owned())), n)
            }
            Err(e) => (Err(e), 0),
        };
        let out = StepOutput::new()
            .attempts(attempts.max(1))
            .detail("counts", snapshot.counts())
            .detail("taken_at", &snapshot.taken_at);
        match redis {
            Ok((written, shown)) => {
                let mut out = out
                    .summary(format!(
                        "snapshot of {} bytes ({}) to redis {shown} in {:.3}s",
                        written.bytes,
                        held(&snapshot),
                        start.elapsed().as_secs_f64()
                    ))
                    .detail("written_to", format!("redis {shown}"))
                    .detail("keys", format!("{{{prefix}}}:*"))
                    .detail("digest", &written.digest)
                    .detail("bytes", written.bytes)
                    .detail("seconds", start.elapsed().as_secs_f64());
                if let Some(acked) = written.replicas_acked {
                    out = out.detail("replicas_acked", acked);
                    if acked < i64::from(self.config.wait_replicas) {
                        out = out.problem(format!(
                            "only {acked} of {} replicas acknowledged the snapshot",
                            self.config.wait_replicas
                        ));
                    }
                }
                Ok(out)
            }
            Err(redis_error) => {
                match crate::fallback::write(&fallback_dir, &snapshot, &redis_error) {
                    Ok(path) => Ok(out
                        .summary(format!(
                            "Redis did not take it: snapshot ({}) to fallback file {}",
                            held(&snapshot),
                            path.display()
                        ))
                        .detail("written_to", format!("file {}", path.display()))
                        .detail("fallback_file", path.display().to_string())
                        .detail("redis_error", &redis_error)
                        .problem(format!(
                            "Redis did not take the snapshot ({redis_error}); it is in {}",
                            path.display()
                        ))),
                    Err(file_error) => {
                        // Last resort: the temp directory, so the state is still somewhere on disk.
                        let tmp = std::env::temp_dir();
                        match crate::fallback::write(&tmp, &snapshot, &redis_error) {
                        Ok(path) => Ok(out
                            .summary(format!("Redis and the fallback directory failed: snapshot ({}) to {}", held(&snapshot), path.display()))
                            .detail("fallback_file", path.display().to_string())
                            .detail("redis_error", &redis_error)
                            .problem(format!("Redis did not take the snapshot ({redis_error}) and {file_error}; it is in {}", path.display()))),
                        Err(tmp_error) => Err(StepError::new(format!(
                            "the snapshot was NOT saved: Redis: {redis_error}; fallback: {file_error}; temp dir: {tmp_error}"
                        ))
                        .with_output(out)),
                    }
                    }
                }
            }
        }
    }
}

/// What a snapshot holds, in words.
fn held(snapshot: &Snapshot) -> String {
    let [orders, positions, accounts, strategies] = snapshot.counts();
    format!("{orders} orders, {positions} positions, {accounts} accounts, {strategies} strategies")
}

/// Its timeout and criticality, for its registration and for a step built in code alike.
const DEFAULTS: StepDefaults = StepDefaults::new(5.0, true);

shutdown_core::register_step! {
    kind: "flush",
    summary: "Snapshot orders, positions, accounts and strategy state to Redis in one transaction, or to a fallback file.",
    config: FlushConfig,
    requires: [StateSource],
    defaults: DEFAULTS,
}
