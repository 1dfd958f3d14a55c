//! Reading and writing snapshots in Redis: staged in chunks, switched in one MULTI/EXEC, read back.

use std::collections::HashMap;
use std::time::Duration;

use crate::target::Connection;
use serde::Serialize;
use tokio::task::JoinSet;

use serde_json::value::RawValue;
use shutdown_core::domain::{Account, Order, Position, StrategyState};

use crate::keys::{COLLECTIONS, Keys};
use crate::snapshot::{Collection, Digest, Meta, Snapshot, digest, sorted_by_id};

/// Bytes of entries sent per pipeline round trip while staging: small enough that the batches being
/// built and on the wire cost about 1.5 MB (1 MiB batches cost 6 MB, for the same throughput).
const BATCH_BYTES: usize = 1 << 18;
/// Staging batches on the wire at once.
const IN_FLIGHT: usize = 2;

fn joined(
    r: Option<Result<redis::RedisResult<()>, tokio::task::JoinError>>,
) -> Result<(), StoreError> {
    match r {
        Some(Ok(Ok(()))) | None => Ok(()),
        Some(Ok(Err(e))) => Err(e.into()),
        Some(Err(e)) => Err(StoreError::Redis(format!("staging task failed: {e}"))),
    }
}

/// How a snapshot is written.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Fields per HSET while staging (keeps each command short, so Redis never stalls for long).
    pub chunk_size: usize,
    /// Replicas that must acknowledge the transaction (`WAIT`); 0 to skip.
    pub wait_replicas: u32,
    /// How long `WAIT` may take.
    pub wait_timeout: Duration,
    /// Read every entry back and check the digest (not only counts and the stored digest).
    pub verify_full: bool,
    /// Staging keys of an attempt that never committed expire after this.
    pub staging_ttl: Duration,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            chunk_size: 1000,
            wait_replicas: 0,
            wait_timeout: Duration::from_millis(500),
            verify_full: false,
            staging_ttl: Duration::from_secs(600),
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Written {
    /// Entries per collection.
    pub counts: [usize; 4],
    /// Digest of the entries.
    pub digest: String,
    /// Bytes of the entries.
    pub bytes: usize,
    /// Replicas that acknowledged, when `WAIT` was asked for.
    pub replicas_acked: Option<i64>,
}

/// A problem with a write or a read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Redis answered with an error or did not answer.
    #[error("{0}")]
    Redis(String),
    /// The snapshot cannot be encoded (two entries with one id, say).
    #[error("cannot encode the snapshot: {0}")]
    Encode(String),
    /// The data read back is not what was written.
    #[error("read-back check failed: {0}")]
    Mismatch(String),
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Redis(e.to_string())
    }
}

/// Stage one collection under `staging`, encoding entry by entry in id order, in batches of about
/// `BATCH_BYTES` per round trip, feeding `digest`. Returns (entries, bytes).
async fn stage<T: Serialize>(
    con: &mut Connection,
    staging: &str,
    items: &[T],
    id: impl Fn(&T) -> &str,
    digest: &mut Digest,
    options: &WriteOptions,
) -> Result<(usize, usize), StoreError> {
    let order = sorted_by_id(items, &id).map_err(StoreError::Encode)?;
    if order.len() == 0 {
        return Ok((0, 0));
    }
    let ttl = options.staging_ttl.as_secs().max(1);
    redis::cmd("DEL")
        .arg(staging)
        .query_async::<()>(con)
        .await?;
    // Encode the next batch while the previous ones travel: up to `IN_FLIGHT` batches on the wire.
    let mut sending: JoinSet<redis::RedisResult<()>> = JoinSet::new();
    fn send(
        sending: &mut JoinSet<redis::RedisResult<()>>,
        pipe: redis::Pipeline,
        con: &Connection,
    ) {
        let mut con = con.clone();
        sending.spawn(async move { pipe.query_async::<()>(&mut con).await });
    }
    let mut pipe = redis::pipe();
    let (mut total, mut batch) = (0, 0);
    let mut value = Vec::new();
    let (n, chunk) = (order.len(), options.chunk_size.max(1));
    let mut next = 0;
    while next < n {
        let end = (next + chunk).min(n);
        let mut cmd = redis::cmd("HSET");
        cmd.arg(staging);
        for item in (next..end).map(|k| order.get(k)) {
            value.clear();
            serde_json::to_writer(&mut value, item)
                .map_err(|e| StoreError::Encode(e.to_string()))?;
            let key = id(item);
            digest.eat(key.as_bytes());
            digest.eat(&value);
            cmd.arg(key).arg(value.as_slice());
            batch += key.len() + value.len();
        }
        next = end;
        pipe.add_command(cmd).ignore();
        if batch >= BATCH_BYTES {
            // Every batch sets the expiry, so staging left by an attempt that dies midway goes away.
            pipe.cmd("EXPIRE").arg(staging).arg(ttl).ignore();
            send(
                &mut sending,
                std::mem::replace(&mut pipe, redis::pipe()),
                con,
            );
            total += batch;
            batch = 0;
            while sending.len() >= IN_FLIGHT {
                joined(sending.join_next().await)?;
            }
        }
    }
    pipe.cmd("EXPIRE").arg(staging).arg(ttl).ignore();
    send(&mut sending, pipe, con);
    while let Some(r) = sending.join_next().await {
        joined(Some(r))?;
    }
    Ok((order.len(), total + batch))
}

/// Write `snapshot` so that readers see the previous snapshot or this one, never a mix, and no entry of
/// the previous one survives. `attempt` keeps the staging keys of concurrent or retried writes apart.
/// Entries are encoded as they are sent: the snapshot is never held twice in memory.
pub async fn write_snapshot(
    con: &mut Connection,
    keys: &Keys,
    snapshot: &Snapshot,
    attempt: &str,
    options: &WriteOptions,
) -> Result<Written, StoreError> {
    // 1. Stage each collection, digesting in the same order as `snapshot::digest`.
    let mut digest = Digest::default();
    let mut staged = [(0, 0); 4];
    macro_rules! stage_collection {
        ($i:expr, $items:expr, $id:expr) => {{
            digest.eat(COLLECTIONS[$i].as_bytes());
            let staging = keys.staging(attempt, COLLECTIONS[$i]);
            staged[$i] = stage(con, &staging, $items, $id, &mut digest, options).await?;
        }};
    }
    stage_collection!(0, &snapshot.orders, |o: &Order| &o.client_id);
    stage_collection!(1, &snapshot.positions, |p: &Position| &p.id);
    stage_collection!(2, &snapshot.accounts, |a: &Account| &a.id);
    stage_collection!(3, &snapshot.strategies, |s: &StrategyState| &s.strategy_id);
    let counts = staged.map(|(n, _)| n);
    let bytes = staged.iter().map(|(_, b)| b).sum();
    let digest = digest.finish();
    // 2. Switch everything at once; the clean marker goes last.
    let meta = Meta {
        trader_id: snapshot.trader_id.clone(),
        taken_at: snapshot.taken_at.clone(),
        counts,
        digest: digest.clone(),
        encoding: "json".into(),
    };
    let meta_json = serde_json::to_string(&meta).map_err(|e| StoreError::Redis(e.to_string()))?;
    let receipt = snapshot.receipt.get();
    let mut tx = redis::pipe();
    tx.atomic();
    for (name, count) in COLLECTIONS.iter().zip(counts) {
        // UNLINK frees the previous snapshot in the background: RENAME over a large hash would free it
        // inside the transaction and stall Redis for the time it takes.
        tx.cmd("UNLINK").arg(keys.collection(name)).ignore();
        if count > 0 {
            tx.cmd("RENAME")
                .arg(keys.staging(attempt, name))
                .arg(keys.collection(name))
                .ignore();
            tx.cmd("PERSIST").arg(keys.collection(name)).ignore();
        }
    }
    tx.cmd("SET").arg(keys.meta()).arg(&meta_json).ignore();
    tx.cmd("SET").arg(keys.receipt()).arg(receipt).ignore();
    tx.cmd("SET").arg(keys.clean()).arg("true").ignore();
    tx.query_async::<()>(con).await?;
    // 3. Replicas, when asked.
    let replicas_acked = if options.wait_replicas > 0 {
        let timeout_ms = u64::try_from(options.wait_timeout.as_millis()).unwrap_or(u64::MAX);
        Some(
            redis::cmd("WAIT")
                .arg(options.wait_replicas)
                .arg(timeout_ms)
                .query_async::<i64>(con)
                .await?,
        )
    } else {
        None
    };
    // 4. Read back.
    verify(con, keys, &meta, options.verify_full).await?;
    Ok(Written {
        counts: meta.counts,
        digest: meta.digest,
        bytes,
        replicas_acked,
    })
}

async fn verify(
    con: &mut Connection,
    keys: &Keys,
    meta: &Meta,
    full: bool,
) -> Result<(), StoreError> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for name in COLLECTIONS {
        pipe.cmd("HLEN").arg(keys.collection(name));
    }
    pipe.cmd("GET")
        .arg(keys.meta())
        .cmd("GET")
        .arg(keys.clean());
    let (o, p, a, s, stored, clean): (usize, usize, usize, usize, Option<String>, Option<String>) =
        pipe.query_async(con).await?;
    if [o, p, a, s] != meta.counts {
        return Err(StoreError::Mismatch(format!(
            "counts {:?} in Redis, {:?} written",
            [o, p, a, s],
            meta.counts
        )));
    }
    let stored: Option<Meta> = stored.and_then(|m| serde_json::from_str(&m).ok());
    if stored.as_ref() != Some(meta) {
        return Err(StoreError::Mismatch(
            "the stored snapshot metadata is not the one written".into(),
        ));
    }
    if clean.as_deref() != Some("true") {
        return Err(StoreError::Mismatch("the clean marker is not set".into()));
    }
    if full {
        let (_, collections, _, _) = read_raw(con, keys).await?;
        let actual = digest(&collections);
        if actual != meta.digest {
            return Err(StoreError::Mismatch(format!(
                "digest {actual} in Redis, {} written",
                meta.digest
            )));
        }
    }
    Ok(())
}

type Raw = (
    Option<Meta>,
    [Collection; 4],
    Option<Box<RawValue>>,
    Option<String>,
);

async fn read_raw(con: &mut Connection, keys: &Keys) -> Result<Raw, StoreError> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for name in COLLECTIONS {
        pipe.cmd("HGETALL").arg(keys.collection(name));
    }
    pipe.cmd("GET")
        .arg(keys.meta())
        .cmd("GET")
        .arg(keys.receipt())
        .cmd("GET")
        .arg(keys.clean());
    type Entries = HashMap<String, Vec<u8>>;
    let (o, p, a, s, meta, receipt, clean): (
        Entries,
        Entries,
        Entries,
        Entries,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = pipe.query_async(con).await?;
    let meta = match meta {
        Some(m) => Some(
            serde_json::from_str::<Meta>(&m)
                .map_err(|e| StoreError::Mismatch(format!("snapshot metadata: {e}")))?,
        ),
        None => None,
    };
    let receipt = receipt.and_then(|r| RawValue::from_string(r).ok());
    let pack =
        |m: Entries| Collection::from_pairs(m.into_iter().collect()).map_err(StoreError::Mismatch);
    let collections = [pack(o)?, pack(p)?, pack(a)?, pack(s)?];
    Ok((meta, collections, receipt, clean))
}

/// The last snapshot in Redis (checked against its digest) and the clean marker.
pub async fn read_snapshot(
    con: &mut Connection,
    keys: &Keys,
) -> Result<(Option<Snapshot>, Option<bool>), StoreError> {
    let (meta, collections, receipt, clean) = read_raw(con, keys).await?;
    let clean = clean.map(|c| c == "true");
    let Some(meta) = meta else {
        return Ok((None, clean));
    };
    let actual = digest(&collections);
    if actual != meta.digest {
        return Err(StoreError::Mismatch(format!(
            "digest {actual} in Redis, {} recorded",
            meta.digest
        )));
    }
    let snapshot = Snapshot::decode(
        meta,
        receipt.unwrap_or_else(|| RawValue::NULL.to_owned()),
        &collections,
    )
    .map_err(StoreError::Mismatch)?;
    Ok((Some(snapshot), clean))
}
