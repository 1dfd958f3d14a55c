//! The state snapshot: what it holds, how it is encoded into hash entries, and its digest.

use serde::{Deserialize, Serialize};
use shutdown_core::domain::{Account, Order, Position, StrategyState};

use crate::keys::COLLECTIONS;

/// Everything the node must find again at its next start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Trader id.
    pub trader_id: String,
    /// When it was taken (RFC 3339, UTC, nanoseconds).
    pub taken_at: String,
    /// Orders.
    pub orders: Vec<Order>,
    /// Positions.
    pub positions: Vec<Position>,
    /// Account balances.
    pub accounts: Vec<Account>,
    /// Strategy state.
    pub strategies: Vec<StrategyState>,
    /// The shutdown receipt as it stood when the snapshot was taken.
    pub receipt: serde_json::Value,
}

/// A snapshot encoded as hash entries: per collection, sorted `(id, JSON)` pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Entries of each collection, in [`COLLECTIONS`] order.
    pub collections: [Vec<(String, Vec<u8>)>; 4],
    /// Digest over every collection's entries.
    pub digest: String,
    /// Bytes of all entries.
    pub bytes: usize,
}

fn entries<T: Serialize>(
    items: &[T],
    id: impl Fn(&T) -> &str,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out: Vec<(String, Vec<u8>)> = items
        .iter()
        .map(|i| {
            serde_json::to_vec(i)
                .map(|v| (id(i).to_owned(), v))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    // Two entries with one id would silently collapse into one hash field.
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("two entries share the id {:?}", w[0].0));
    }
    Ok(out)
}

impl Snapshot {
    /// Encode as sorted hash entries with their digest.
    pub fn encode(&self) -> Result<Encoded, String> {
        let collections = [
            entries(&self.orders, |o| &o.client_id)?,
            entries(&self.positions, |p| &p.id)?,
            entries(&self.accounts, |a| &a.id)?,
            entries(&self.strategies, |s| &s.strategy_id)?,
        ];
        let digest = digest(&collections);
        let bytes = collections
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        Ok(Encoded {
            collections,
            digest,
            bytes,
        })
    }

    /// Decode from hash entries (any order).
    pub fn decode(
        meta: Meta,
        receipt: serde_json::Value,
        collections: [Vec<(String, Vec<u8>)>; 4],
    ) -> Result<Snapshot, String> {
        fn parse<T: for<'de> Deserialize<'de>>(
            name: &str,
            entries: &[(String, Vec<u8>)],
        ) -> Result<Vec<T>, String> {
            entries
                .iter()
                .map(|(k, v)| {
                    serde_json::from_slice(v).map_err(|e| format!("{name} entry {k}: {e}"))
                })
                .collect()
        }
        let [o, p, a, s] = &collections;
        Ok(Snapshot {
            trader_id: meta.trader_id,
            taken_at: meta.taken_at,
            orders: parse("orders", o)?,
            positions: parse("positions", p)?,
            accounts: parse("accounts", a)?,
            strategies: parse("strategies", s)?,
            receipt,
        })
    }

    /// Counts per collection, in [`COLLECTIONS`] order.
    pub fn counts(&self) -> [usize; 4] {
        [
            self.orders.len(),
            self.positions.len(),
            self.accounts.len(),
            self.strategies.len(),
        ]
    }
}

/// The snapshot's metadata as stored beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Trader id.
    pub trader_id: String,
    /// When the snapshot was taken.
    pub taken_at: String,
    /// Entries per collection, in [`COLLECTIONS`] order.
    pub counts: [usize; 4],
    /// Digest of the entries.
    pub digest: String,
    /// Entry encoding (`json`).
    pub encoding: String,
}

/// FNV-1a (64-bit) over every collection name, id and value, in sorted order: cheap, stable, and
/// enough to catch a partial or mixed snapshot (it is not a cryptographic hash).
pub fn digest(collections: &[Vec<(String, Vec<u8>)>; 4]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    for (name, entries) in COLLECTIONS.iter().zip(collections) {
        eat(name.as_bytes());
        let mut sorted: Vec<&(String, Vec<u8>)> = entries.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in sorted {
            eat(k.as_bytes());
            eat(v);
        }
    }
    format!("fnv1a64:{h:016x}")
}

/// Now, as RFC 3339 with nanoseconds.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Parse an RFC 3339 time for comparison.
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}
