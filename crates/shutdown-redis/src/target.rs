//! Where Redis is: one server, a Cluster or a Sentinel-watched master, from one URL that never
//! shows its password (in logs, errors, reports and `Debug` output).
//!
//! - `redis://`, `rediss://`, `redis+unix://`, `unix://`: one server;
//! - `redis+cluster://[user:pass@]HOST:PORT[,HOST:PORT...]` (or `rediss+cluster://`): a Redis
//!   Cluster, discovered from any of the seed nodes;
//! - `redis+sentinel://[user:pass@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]`: the master that the
//!   sentinels name for SERVICE, asked again at every connect (a failover is followed at the next
//!   connection); the credentials are the master's, the sentinels are reached without.

use std::fmt;
use std::time::Duration;

use redis::IntoConnectionInfo;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};

/// Where to reach Redis, parsed from a URL (see the [module docs](self)).
#[derive(Clone)]
pub struct RedisTarget {
    mode: Mode,
    shown: String,
    password: Option<String>,
}

#[derive(Clone)]
enum Mode {
    Single(redis::Client),
    Cluster(Cluster),
    Sentinel(Sentinel),
}

/// A Redis Cluster's seed nodes.
#[derive(Clone)]
struct Cluster {
    nodes: Vec<redis::ConnectionInfo>,
    tls: bool,
}

impl Cluster {
    fn client(
        &self,
        connect: Duration,
        response: Duration,
    ) -> redis::RedisResult<redis::cluster::ClusterClient> {
        let mut builder = redis::cluster::ClusterClientBuilder::new(self.nodes.clone())
            .connection_timeout(connect)
            .response_timeout(response)
            .retries(2);
        if self.tls {
            builder = builder.tls(redis::TlsMode::Secure);
        }
        builder.build()
    }
}

/// The sentinels, and the master they watch.
#[derive(Clone)]
struct Sentinel {
    sentinels: Vec<redis::ConnectionAddr>,
    service: String,
    username: Option<String>,
    password: Option<String>,
    db: i64,
}

impl Sentinel {
    /// A fresh sentinel client, so that every connection asks the sentinels again (a failover is
    /// followed at the next connect).
    fn client(&self) -> redis::RedisResult<redis::sentinel::SentinelClient> {
        let mut builder = SentinelClientBuilder::new(
            self.sentinels.clone(),
            &self.service,
            SentinelServerType::Master,
        )?
        .set_client_to_redis_db(self.db);
        if let Some(user) = &self.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = &self.password {
            builder = builder.set_client_to_redis_password(password);
        }
        builder.build()
    }
}

/// What kind of deployment a [`RedisTarget`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    /// One server.
    Standalone,
    /// A Redis Cluster.
    Cluster,
    /// A master found through Redis Sentinel.
    Sentinel,
}

/// A Redis error, with any password scrubbed from its text, and whether it may heal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RedisError(pub String, pub(crate) Healing);

/// Whether retrying a failed Redis call may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Healing {
    /// A refused connection, a timeout, a failover, a lease held by another node: try again.
    MayHeal,
    /// A refused password, a malformed URL, a missing permission: the same call fails again.
    Lasting,
}

impl RedisError {
    /// An error that may pass on retry.
    pub(crate) fn may_heal(text: String) -> Self {
        Self(text, Healing::MayHeal)
    }

    /// Whether retrying cannot help: the password was refused, the URL is malformed or the user
    /// lacks a permission. Say so once and stop; retry only what may heal.
    pub fn is_lasting(&self) -> bool {
        self.1 == Healing::Lasting
    }
}

/// Whether the Redis client's error is one no retry heals.
fn healing(e: &redis::RedisError) -> Healing {
    let lasting_kind = matches!(
        e.kind(),
        redis::ErrorKind::AuthenticationFailed | redis::ErrorKind::InvalidClientConfig
    );
    let lasting_code = matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"));
    match lasting_kind || lasting_code {
        true => Healing::Lasting,
        false => Healing::MayHeal,
    }
}

impl RedisTarget {
    /// Parse a URL. The error never contains the password.
    pub fn parse(url: &str) -> Result<Self, RedisError> {
        Self::parse_with_ca(url, None)
    }

    /// Parse a URL; for `rediss://`, trust the CA certificates in `ca_pem` (PEM) instead of the
    /// system's trust store.
    pub fn parse_with_ca(url: &str, ca_pem: Option<Vec<u8>>) -> Result<Self, RedisError> {
        install_crypto_provider();
        let shown = redact(url);
        let secret = shutdown_core::redact::password_in(url);
        let fail = |e: &dyn fmt::Display| {
            let text = format!("invalid Redis URL {shown}: {e}");
            let text = match &secret {
                Some(p) if !p.is_empty() => text.replace(p.as_str(), "***"),
                _ => text,
            };
            RedisError(text, Healing::Lasting)
        };
        if let Some((scheme, rest)) = url.split_once("://")
            && let Some(base) = scheme
                .strip_suffix("+cluster")
                .or_else(|| scheme.strip_suffix("+sentinel"))
        {
            let mode =
                multi_node(base, scheme.ends_with("+cluster"), rest).map_err(|e| fail(&e))?;
            let password = match &mode {
                Mode::Cluster(c) => c.nodes[0].redis_settings().password().map(str::to_owned),
                Mode::Sentinel(s) => s.password.clone(),
                Mode::Single(_) => None,
            };
            return Ok(Self {
                mode,
                shown,
                password,
            });
        }
        let info = url.into_connection_info().map_err(|e| fail(&e))?;
        let password = info.redis_settings().password().map(str::to_owned);
        let client = match ca_pem {
            Some(root_cert) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| fail(&e))?;
        Ok(Self {
            mode: Mode::Single(client),
            shown,
            password,
        })
    }

    /// One server, a Cluster, or a master found through Sentinel.
    pub fn mode(&self) -> RedisMode {
        match self.mode {
            Mode::Single(_) => RedisMode::Standalone,
            Mode::Cluster(_) => RedisMode::Cluster,
            Mode::Sentinel(_) => RedisMode::Sentinel,
        }
    }

    /// The URL with its password replaced by `***`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Replace the password by `***` wherever it appears in `text`.
    pub fn scrub(&self, text: &str) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => text.replace(p.as_str(), "***"),
            _ => text.to_owned(),
        }
    }

    /// An error about this target: the action, the URL (redacted) and the cause (scrubbed).
    pub fn error(&self, action: &str, e: &redis::RedisError) -> RedisError {
        RedisError(
            self.scrub(&format!("{action} {}: {e}", self.shown)),
            healing(e),
        )
    }

    /// An async connection, with connect and response timeouts.
    pub async fn connect(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Connection, RedisError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout));
        let connecting = async {
            match &self.mode {
                Mode::Single(client) => client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Connection::Single),
                Mode::Cluster(cluster) => cluster
                    .client(connect_timeout, response_timeout)?
                    .get_async_connection()
                    .await
                    .map(|c| Connection::Cluster(Box::new(c))),
                Mode::Sentinel(sentinel) => {
                    // Mid-failover, the sentinels may name no valid master for a moment: ask
                    // again, for up to the connect timeout.
                    let give_up = tokio::time::Instant::now() + connect_timeout;
                    loop {
                        let found = match sentinel.client() {
                            Ok(mut s) => s.async_get_client().await,
                            Err(e) => Err(e),
                        };
                        match found {
                            Ok(client) => {
                                break client
                                    .get_multiplexed_async_connection_with_config(&config)
                                    .await
                                    .map(Connection::Single);
                            }
                            Err(e) if tokio::time::Instant::now() >= give_up => break Err(e),
                            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                    }
                }
            }
        };
        // Discovery (cluster slots, sentinel queries) is bounded too: by both timeouts together.
        match tokio::time::timeout(connect_timeout + response_timeout, connecting).await {
            Ok(connected) => connected.map_err(|e| self.error("cannot connect to", &e)),
            Err(_) => Err(RedisError::may_heal(format!(
                "cannot connect to {}: no answer within {}",
                self.shown,
                shutdown_core::secs(connect_timeout + response_timeout)
            ))),
        }
    }

    /// A blocking connection, with connect and read/write timeouts (for report sinks).
    pub fn connect_blocking(&self, timeout: Duration) -> Result<BlockingConnection, RedisError> {
        let single = |client: &redis::Client| -> redis::RedisResult<redis::Connection> {
            let con = client.get_connection_with_timeout(timeout)?;
            con.set_read_timeout(Some(timeout))?;
            con.set_write_timeout(Some(timeout))?;
            Ok(con)
        };
        match &self.mode {
            Mode::Single(client) => single(client).map(BlockingConnection::Single),
            Mode::Cluster(cluster) => cluster
                .client(timeout, timeout)
                .and_then(|c| c.get_connection())
                .map(|c| BlockingConnection::Cluster(Box::new(c))),
            Mode::Sentinel(sentinel) => sentinel
                .client()
                .and_then(|mut s| s.get_client())
                .and_then(|c| single(&c))
                .map(BlockingConnection::Single),
        }
        .map_err(|e| self.error("cannot connect to", &e))
    }
}

/// `HOST:PORT[,HOST:PORT...][/SERVICE[/DB]]` after `redis+cluster://` or `redis+sentinel://`.
fn multi_node(base: &str, cluster: bool, rest: &str) -> Result<Mode, String> {
    let tls = match base {
        "redis" => false,
        "rediss" => true,
        other => return Err(format!("unknown scheme {other:?}")),
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        Some(u) => {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            (
                (!user.is_empty()).then(|| user.to_owned()),
                (!pass.is_empty()).then(|| pass.to_owned()),
            )
        }
        None => (None, None),
    };
    let mut addrs = Vec::new();
    for host in hosts.split(',') {
        let (name, port) = host
            .rsplit_once(':')
            .ok_or_else(|| format!("{host:?} is not HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{host:?} has no valid port"))?;
        if name.is_empty() {
            return Err(format!("{host:?} has no host"));
        }
        addrs.push((name.trim_matches(['[', ']']).to_owned(), port));
    }
    if cluster {
        if !path.is_empty() {
            return Err("a cluster URL has no path (a cluster has one database)".into());
        }
        let mut settings = redis::RedisConnectionInfo::default();
        if let Some(user) = &username {
            settings = settings.set_username(user);
        }
        if let Some(pass) = &password {
            settings = settings.set_password(pass);
        }
        let nodes = addrs
            .into_iter()
            .map(|(host, port)| {
                let addr = if tls {
                    redis::ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    redis::ConnectionAddr::Tcp(host, port)
                };
                addr.into_connection_info()
                    .map(|i| i.set_redis_settings(settings.clone()))
            })
            .collect::<redis::RedisResult<Vec<_>>>()
            .map_err(|e| e.to_string())?;
        return Ok(Mode::Cluster(Cluster { nodes, tls }));
    }
    if tls {
        return Err("TLS to sentinels is not supported; use redis+sentinel://".into());
    }
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let service = parts
        .next()
        .ok_or("a sentinel URL names its service: redis+sentinel://HOST:PORT/SERVICE")?
        .to_owned();
    let db = match parts.next() {
        Some(db) => db
            .parse()
            .map_err(|_| format!("database {db:?} is not a number"))?,
        None => 0,
    };
    Ok(Mode::Sentinel(Sentinel {
        sentinels: addrs
            .into_iter()
            .map(|(host, port)| redis::ConnectionAddr::Tcp(host, port))
            .collect(),
        service,
        username,
        password,
        db,
    }))
}

/// An async connection to a [`RedisTarget`]: one server's, or a cluster's (commands routed by slot).
#[derive(Clone)]
pub enum Connection {
    /// One server (standalone, or the master Sentinel named).
    Single(redis::aio::MultiplexedConnection),
    /// A Redis Cluster.
    Cluster(Box<redis::cluster_async::ClusterConnection>),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(cmd, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// A blocking connection to a [`RedisTarget`] (report sinks, exit paths).
pub enum BlockingConnection {
    /// One server.
    Single(redis::Connection),
    /// A Redis Cluster.
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl redis::ConnectionLike for BlockingConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        match self {
            BlockingConnection::Single(c) => c.req_packed_command(cmd),
            BlockingConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        match self {
            BlockingConnection::Single(c) => c.req_packed_commands(cmd, offset, count),
            BlockingConnection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
        match self {
            BlockingConnection::Single(c) => c.req_command(cmd),
            BlockingConnection::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            BlockingConnection::Single(c) => c.get_db(),
            BlockingConnection::Cluster(c) => c.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            BlockingConnection::Single(c) => c.check_connection(),
            BlockingConnection::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            BlockingConnection::Single(c) => c.is_open(),
            BlockingConnection::Cluster(c) => c.is_open(),
        }
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisTarget").field(&self.shown).finish()
    }
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// TLS (`rediss://`) needs a process-wide rustls crypto provider; install ring's once, unless the
/// program installed one already.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `redis://user:secret@host/0` -> `redis://user:***@host/0` (the one redaction of
/// [`shutdown_core::redact`]).
pub fn redact(url: &str) -> String {
    shutdown_core::redact::redact_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("rediss://app:s3cret@cache:6380"),
            "rediss://app:***@cache:6380"
        );
        assert_eq!(redact("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(
            redact("redis+unix:///tmp/r.sock?db=1&pass=s3cret"),
            "redis+unix:///tmp/r.sock?db=1&pass=***"
        );
        let t = RedisTarget::parse("redis://app:s3cret@127.0.0.1:1/").unwrap();
        assert!(!format!("{t:?} {t}").contains("s3cret"));
        assert_eq!(t.scrub("auth s3cret failed"), "auth *** failed");
        let err = RedisTarget::parse("redis://app:s3cret@[bad/").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn cluster_and_sentinel_urls_name_their_mode_and_hide_their_password() {
        let c =
            RedisTarget::parse("redis+cluster://:s3cret@127.0.0.1:7000,127.0.0.1:7001").unwrap();
        assert_eq!(c.mode(), RedisMode::Cluster);
        assert!(!c.to_string().contains("s3cret"), "{c}");
        let s =
            RedisTarget::parse("redis+sentinel://:s3cret@127.0.0.1:26379,h:26380/main/2").unwrap();
        assert_eq!(s.mode(), RedisMode::Sentinel);
        assert_eq!(s.scrub("auth s3cret"), "auth ***");
        assert_eq!(
            RedisTarget::parse("redis://127.0.0.1:1").unwrap().mode(),
            RedisMode::Standalone
        );
        for (bad, why) in [
            ("redis+sentinel://127.0.0.1:26379", "names its service"),
            ("redis+sentinel://127.0.0.1:26379/main/x", "not a number"),
            ("redis+cluster://127.0.0.1", "not HOST:PORT"),
            ("redis+cluster://127.0.0.1:x", "no valid port"),
            ("redis+cluster://127.0.0.1:7000/0", "no path"),
            ("http+cluster://:s3cret@127.0.0.1:7000", "unknown scheme"),
        ] {
            let err = RedisTarget::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why) && !err.contains("s3cret"), "{bad}: {err}");
        }
    }
}
