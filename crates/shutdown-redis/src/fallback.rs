//! The local fallback file: the whole snapshot, written atomically, when Redis cannot take it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::snapshot::Snapshot;

/// The fallback file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FallbackFile {
    /// Why Redis did not take the snapshot.
    pub redis_error: String,
    /// The snapshot.
    pub snapshot: Snapshot,
}

/// Where the snapshot of `trader_id` goes under `dir`.
pub fn snapshot_path(dir: &Path, trader_id: &str) -> PathBuf {
    dir.join(format!("{trader_id}-snapshot.json"))
}

/// Where the final report of `trader_id` goes under `dir` when Redis cannot take it.
pub fn report_path(dir: &Path, trader_id: &str) -> PathBuf {
    dir.join(format!("{trader_id}-report.json"))
}

/// Write the fallback file (temp file, fsync, rename); creates `dir`.
pub fn write(dir: &Path, snapshot: &Snapshot, redis_error: &str) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = snapshot_path(dir, &snapshot.trader_id);
    let file = FallbackFile {
        redis_error: redis_error.to_owned(),
        snapshot: snapshot.clone(),
    };
    let bytes = serde_json::to_vec(&file).map_err(|e| e.to_string())?;
    shutdown_core::write_atomic(&path, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Read the fallback file of `trader_id`, if there is one.
pub fn read(dir: &Path, trader_id: &str) -> Result<Option<FallbackFile>, String> {
    let path = snapshot_path(dir, trader_id);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: not a snapshot: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}
