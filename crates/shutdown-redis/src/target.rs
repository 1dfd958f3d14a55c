//! A Redis URL that never shows its password: in logs, errors, reports and `Debug` output.

use std::fmt;
use std::time::Duration;

use redis::IntoConnectionInfo;

/// Where to reach Redis, parsed from a URL (`redis://`, `rediss://`, `redis+unix://`, `unix://`).
#[derive(Clone)]
pub struct RedisTarget {
    client: redis::Client,
    shown: String,
    password: Option<String>,
}

/// A Redis error, with any password scrubbed from its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RedisError(pub String);

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
        let fail = |e: redis::RedisError| {
            let text = format!("invalid Redis URL {shown}: {e}");
            RedisError(match &secret {
                Some(p) if !p.is_empty() => text.replace(p.as_str(), "***"),
                _ => text,
            })
        };
        let info = url.into_connection_info().map_err(fail)?;
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
        .map_err(fail)?;
        Ok(Self {
            client,
            shown,
            password,
        })
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
        RedisError(self.scrub(&format!("{action} {}: {e}", self.shown)))
    }

    /// An async connection, with connect and response timeouts.
    pub async fn connect(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<redis::aio::MultiplexedConnection, RedisError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.error("cannot connect to", &e))
    }

    /// A pub/sub connection, within `timeout`.
    pub async fn pubsub(&self, timeout: Duration) -> Result<redis::aio::PubSub, RedisError> {
        match tokio::time::timeout(timeout, self.client.get_async_pubsub()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(self.error("cannot subscribe at", &e)),
            Err(_) => Err(RedisError(format!(
                "cannot subscribe at {}: no answer within {timeout:?}",
                self.shown
            ))),
        }
    }

    /// A blocking connection, with connect and read/write timeouts (for report sinks).
    pub fn connect_blocking(&self, timeout: Duration) -> Result<redis::Connection, RedisError> {
        let con = self
            .client
            .get_connection_with_timeout(timeout)
            .map_err(|e| self.error("cannot connect to", &e))?;
        con.set_read_timeout(Some(timeout))
            .map_err(|e| self.error("cannot configure", &e))?;
        con.set_write_timeout(Some(timeout))
            .map_err(|e| self.error("cannot configure", &e))?;
        Ok(con)
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
}
