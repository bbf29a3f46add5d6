//! Sync state persisted beside the device's data: the change-feed cursor and the hub-issued
//! device id, in `DIR/sync-state.json` (edetail-core's `Device` has no key-value API for them).
//! Written atomically: temp file, fsync, rename, fsync of the directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const STATE_FILE: &str = "sync-state.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStateFile {
    /// The hub-issued device id the cursor belongs to.
    #[serde(default)]
    pub hub_device_id: Option<String>,
    /// Last fully applied change-feed cursor.
    #[serde(default)]
    pub cursor: Option<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

impl SyncStateFile {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Loads the state; a missing or unreadable file means "start from the beginning"
    /// (re-reading the feed is idempotent).
    pub fn load(dir: &Path) -> SyncStateFile {
        std::fs::read(Self::path(dir)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    pub fn store(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Engine(e.to_string()))?;
        {
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(SyncStateFile::load(dir.path()), SyncStateFile::default());
        let s = SyncStateFile { hub_device_id: Some("d1".into()), cursor: Some("c9".into()) };
        s.store(dir.path()).expect("store");
        assert_eq!(SyncStateFile::load(dir.path()), s);
        std::fs::write(SyncStateFile::path(dir.path()), b"{torn").expect("write");
        assert_eq!(SyncStateFile::load(dir.path()), SyncStateFile::default());
    }
}
