//! Key names. Every key of a trader carries the same hash tag, so one transaction stays in one slot
//! on Redis Cluster.

/// A key prefix that cannot be a hash tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key prefix {0:?} must be non-empty and without braces")]
pub struct InvalidKeyPrefix(pub String);

/// The keys of one trader: `{prefix}:orders`, `{prefix}:shutdown:last`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    tag: String,
}

/// The collections of a snapshot, each a hash of id -> encoded entry.
pub const COLLECTIONS: [&str; 4] = ["orders", "positions", "accounts", "strategies"];

impl Keys {
    /// Keys under the hash tag `{prefix}`; the prefix may not contain braces.
    pub fn new(prefix: &str) -> Result<Self, InvalidKeyPrefix> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(InvalidKeyPrefix(prefix.to_owned()));
        }
        Ok(Self {
            tag: format!("{{{prefix}}}"),
        })
    }

    /// The hash of one collection.
    pub fn collection(&self, name: &str) -> String {
        format!("{}:{name}", self.tag)
    }

    /// A staging copy of a collection, for one flush attempt.
    pub fn staging(&self, attempt: &str, name: &str) -> String {
        format!("{}:staging:{attempt}:{name}", self.tag)
    }

    /// The snapshot's metadata hash (taken_at, counts, digest, encoding).
    pub fn meta(&self) -> String {
        format!("{}:snapshot", self.tag)
    }

    /// The shutdown receipt as it stood when the snapshot was taken.
    pub fn receipt(&self) -> String {
        format!("{}:shutdown:receipt", self.tag)
    }

    /// `true` once a snapshot is complete (set in the snapshot's own transaction).
    pub fn clean(&self) -> String {
        format!("{}:shutdown:clean", self.tag)
    }

    /// The lease: which node may trade for this trader id.
    pub fn lease(&self) -> String {
        format!("{}:lease", self.tag)
    }

    /// The run marker: set while a node runs, cleared when its shutdown report is final.
    pub fn running(&self) -> String {
        format!("{}:shutdown:running", self.tag)
    }

    /// The final report of the last shutdown.
    pub fn last_report(&self) -> String {
        format!("{}:shutdown:last", self.tag)
    }

    /// Earlier final reports, newest first, capped.
    pub fn history(&self) -> String {
        format!("{}:shutdown:history", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_the_hash_tag() {
        let k = Keys::new("trader-001").unwrap();
        for key in [
            k.collection("orders"),
            k.staging("a1", "orders"),
            k.meta(),
            k.receipt(),
            k.clean(),
            k.running(),
            k.lease(),
            k.last_report(),
            k.history(),
        ] {
            assert!(key.starts_with("{trader-001}:"), "{key}");
        }
        assert!(Keys::new("a{b").is_err());
        assert!(Keys::new("").is_err());
    }
}
