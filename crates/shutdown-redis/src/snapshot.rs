//! The state snapshot: what it holds, how it is encoded into hash entries, and its digest.

use std::hash::Hasher;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shutdown_core::domain::{Account, Order, Position, StrategyState};

use crate::keys::COLLECTIONS;

/// Everything the node must find again at its next start.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Strategy state, shared with the node that handed it over.
    pub strategies: Arc<Vec<StrategyState>>,
    /// The shutdown receipt as it stood when the snapshot was taken (JSON text).
    pub receipt: Box<RawValue>,
}

/// One collection encoded as hash entries, sorted by id, packed in one buffer (no allocation per entry:
/// a book of 100k entries costs its bytes plus 12 bytes an entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collection {
    bytes: Vec<u8>,
    /// (start of the id, start of the value, end of the value) in `bytes`.
    spans: Vec<(u32, u32, u32)>,
}

impl Collection {
    /// Entries as `(id, JSON)`, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans.iter().map(|&(i, v, e)| {
            let (i, v, e) = (i as usize, v as usize, e as usize);
            (&self.bytes[i..v], &self.bytes[v..e])
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes of ids and values.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    fn push(
        &mut self,
        id: &[u8],
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
        let too_big = |_| "the snapshot is larger than 4 GiB".to_owned();
        let start = u32::try_from(self.bytes.len()).map_err(too_big)?;
        self.bytes.extend_from_slice(id);
        let value = u32::try_from(self.bytes.len()).map_err(too_big)?;
        write(&mut self.bytes)?;
        let end = u32::try_from(self.bytes.len()).map_err(too_big)?;
        self.spans.push((start, value, end));
        Ok(())
    }

    /// Entries read back from Redis, in any order.
    pub fn from_pairs(mut pairs: Vec<(String, Vec<u8>)>) -> Result<Self, String> {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut c = Collection::default();
        for (k, v) in pairs {
            c.push(k.as_bytes(), |buf| {
                buf.extend_from_slice(&v);
                Ok(())
            })?;
        }
        Ok(c)
    }
}

fn encode_collection<T: Serialize>(
    items: &[T],
    id: impl Fn(&T) -> &str,
) -> Result<Collection, String> {
    let mut c = Collection::default();
    let order = sorted_by_id(items, &id)?;
    for item in (0..order.len()).map(|k| order.get(k)) {
        c.push(id(item).as_bytes(), |buf| {
            serde_json::to_writer(buf, item).map_err(|e| e.to_string())
        })?;
    }
    Ok(c)
}

/// A snapshot encoded as hash entries, with its digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Each collection, in [`COLLECTIONS`] order.
    pub collections: [Collection; 4],
    /// Digest over every collection's entries.
    pub digest: String,
    /// Bytes of all entries.
    pub bytes: usize,
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.trader_id == other.trader_id
            && self.taken_at == other.taken_at
            && self.orders == other.orders
            && self.positions == other.positions
            && self.accounts == other.accounts
            && self.strategies == other.strategies
            && self.receipt.get() == other.receipt.get()
    }
}

impl Snapshot {
    /// The receipt as a JSON value.
    pub fn receipt_json(&self) -> serde_json::Value {
        serde_json::from_str(self.receipt.get()).unwrap_or(serde_json::Value::Null)
    }

    /// Encode as sorted hash entries with their digest.
    pub fn encode(&self) -> Result<Encoded, String> {
        let collections = [
            encode_collection(&self.orders, |o| &o.client_id)?,
            encode_collection(&self.positions, |p| &p.id)?,
            encode_collection(&self.accounts, |a| &a.id)?,
            encode_collection(&self.strategies, |s| &s.strategy_id)?,
        ];
        let digest = digest(&collections);
        let bytes = collections.iter().map(Collection::bytes).sum();
        Ok(Encoded {
            collections,
            digest,
            bytes,
        })
    }

    /// Decode from hash entries.
    pub fn decode(
        meta: Meta,
        receipt: Box<RawValue>,
        collections: &[Collection; 4],
    ) -> Result<Snapshot, String> {
        fn parse<T: for<'de> Deserialize<'de>>(
            name: &str,
            c: &Collection,
        ) -> Result<Vec<T>, String> {
            c.iter()
                .map(|(k, v)| {
                    serde_json::from_slice(v)
                        .map_err(|e| format!("{name} entry {}: {e}", String::from_utf8_lossy(k)))
                })
                .collect()
        }
        let [o, p, a, s] = collections;
        Ok(Snapshot {
            trader_id: meta.trader_id,
            taken_at: meta.taken_at,
            orders: parse("orders", o)?,
            positions: parse("positions", p)?,
            accounts: parse("accounts", a)?,
            strategies: Arc::new(parse("strategies", s)?),
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

/// FNV-1a (64-bit) over every collection name, id and value, in id order: cheap, stable, and enough
/// to catch a partial or mixed snapshot (it is not a cryptographic hash). Fed incrementally, so a
/// snapshot can be digested while it streams.
#[derive(Default)]
pub struct Digest(fnv::FnvHasher);

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Digest").field(&self.finish()).finish()
    }
}

impl Digest {
    /// Feed one field (a collection name, an id or a value).
    pub fn eat(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
        // A separator, so ("ab","c") and ("a","bc") differ.
        self.0.write(&[0xff]);
    }

    /// The digest as text.
    pub fn finish(&self) -> String {
        format!("fnv1a64:{:016x}", self.0.finish())
    }
}

/// The digest of encoded collections.
pub fn digest(collections: &[Collection; 4]) -> String {
    let mut d = Digest::default();
    for (name, c) in COLLECTIONS.iter().zip(collections) {
        d.eat(name.as_bytes());
        for (k, v) in c.iter() {
            d.eat(k);
            d.eat(v);
        }
    }
    d.finish()
}

/// Items in id order; two items with one id would silently collapse into one hash field. Items that
/// already come in id order (a node keeping them in a sorted map, say) are used as they are, without
/// an index of references beside them.
pub(crate) fn sorted_by_id<'a, T>(
    items: &'a [T],
    id: &impl Fn(&T) -> &str,
) -> Result<InIdOrder<'a, T>, String> {
    if items.windows(2).all(|w| id(&w[0]) < id(&w[1])) {
        return Ok(InIdOrder::Already(items));
    }
    let mut order: Vec<&T> = items.iter().collect();
    order.sort_by(|a, b| id(a).cmp(id(b)));
    if let Some(w) = order.windows(2).find(|w| id(w[0]) == id(w[1])) {
        return Err(format!("two entries share the id {:?}", id(w[0])));
    }
    Ok(InIdOrder::Sorted(order))
}

/// A collection's items in id order: as given, or through a sorted index.
pub(crate) enum InIdOrder<'a, T> {
    /// The items came in id order.
    Already(&'a [T]),
    /// References sorted by id.
    Sorted(Vec<&'a T>),
}

impl<'a, T> InIdOrder<'a, T> {
    /// Number of items.
    pub(crate) fn len(&self) -> usize {
        match self {
            InIdOrder::Already(items) => items.len(),
            InIdOrder::Sorted(order) => order.len(),
        }
    }

    /// The `k`th item in id order.
    pub(crate) fn get(&self, k: usize) -> &'a T {
        match self {
            InIdOrder::Already(items) => &items[k],
            InIdOrder::Sorted(order) => order[k],
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(c: &Collection) -> Vec<String> {
        c.iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn entries_are_encoded_in_id_order_whatever_order_they_come_in() {
        let state = |id: &str| StrategyState::new(id, &serde_json::json!({ "id": id })).unwrap();
        let sorted = [state("a"), state("b"), state("c")];
        let shuffled = [state("c"), state("a"), state("b")];
        let from_sorted = encode_collection(&sorted, |s| &s.strategy_id).unwrap();
        let from_shuffled = encode_collection(&shuffled, |s| &s.strategy_id).unwrap();
        assert_eq!(ids(&from_sorted), ["a", "b", "c"]);
        assert_eq!(from_sorted, from_shuffled);
        assert_eq!(
            digest(&[
                from_sorted,
                Collection::default(),
                Collection::default(),
                Collection::default()
            ]),
            digest(&[
                from_shuffled,
                Collection::default(),
                Collection::default(),
                Collection::default()
            ])
        );
    }

    #[test]
    fn items_already_in_id_order_need_no_index() {
        let items = ["a", "b", "c"];
        assert!(matches!(
            sorted_by_id(&items, &|s: &&str| *s),
            Ok(InIdOrder::Already(_))
        ));
        let items = ["b", "a", "c"];
        let order = sorted_by_id(&items, &|s: &&str| *s).unwrap();
        assert!(matches!(order, InIdOrder::Sorted(_)));
        assert_eq!(
            (0..order.len()).map(|k| *order.get(k)).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn two_entries_with_one_id_are_refused_sorted_or_not() {
        for items in [["a", "b", "b"], ["b", "a", "b"]] {
            let err = sorted_by_id(&items, &|s: &&str| *s).err().unwrap();
            assert!(err.contains("two entries share the id \"b\""), "{err}");
        }
    }
}
