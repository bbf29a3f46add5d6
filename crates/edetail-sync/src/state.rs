//! Sync state: the change-feed cursor and the hub-issued device id, kept in the device
//! database's `meta` table through core's [`SyncCursor`] API (written in a transaction like
//! everything else of the device).
//!
//! Earlier versions kept it in `DIR/sync-state.json` ([`SyncStateFile`]). [`migrate_file`] moves
//! such a file into the database once, when the engine starts: store, then remove the file. A
//! crash between the two leaves the file beside a database that already has the state; the next
//! start sees that the database has a state (which wins: it may have moved on) and only removes
//! the file.

use std::path::{Path, PathBuf};

use edetail_core::{Device, SyncCursor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The file earlier versions kept the state in, beside the database.
pub const STATE_FILE: &str = "sync-state.json";

/// The state as earlier versions stored it in [`STATE_FILE`]: read only to migrate it.
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

    /// Reads the file: `None` when there is none; an unreadable one reads as empty (re-reading
    /// the feed from the start is idempotent).
    pub fn read(dir: &Path) -> Option<SyncStateFile> {
        let bytes = std::fs::read(Self::path(dir)).ok()?;
        Some(serde_json::from_slice(&bytes).unwrap_or_default())
    }

    /// Writes the file as earlier versions did (for migration tests).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Engine(e.to_string()))?;
        std::fs::write(&path, bytes).map_err(io(&path))
    }
}

/// The stored state.
pub fn load(device: &Device) -> Result<SyncCursor> {
    Ok(device.sync_cursor()?)
}

/// Replaces the stored state.
pub fn store(device: &Device, state: &SyncCursor) -> Result<()> {
    Ok(device.set_sync_cursor(state)?)
}

/// Moves an earlier version's [`STATE_FILE`] into the database (unless the database already has
/// a state), then removes the file and syncs the folder. Answers whether a file was found.
pub fn migrate_file(device: &Device) -> Result<bool> {
    let dir = device.dir();
    let Some(old) = SyncStateFile::read(dir) else { return Ok(false) };
    if load(device)? == SyncCursor::default() {
        store(device, &SyncCursor { hub_device_id: old.hub_device_id, cursor: old.cursor })?;
    }
    let path = SyncStateFile::path(dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&path)(e)),
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    tracing::info!("moved the sync cursor from its file into the device database");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edetail_core::DeviceConfig;

    fn device(dir: &Path) -> Device {
        Device::open(dir, DeviceConfig::new("rep-1")).expect("device")
    }

    fn state(id: &str, cursor: &str) -> SyncCursor {
        SyncCursor { hub_device_id: Some(id.into()), cursor: Some(cursor.into()) }
    }

    #[test]
    fn an_old_file_moves_into_the_database_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = device(dir.path());
        assert!(!migrate_file(&d).expect("nothing to migrate"));
        SyncStateFile { hub_device_id: Some("d1".into()), cursor: Some("c9".into()) }.write(dir.path()).expect("old file");
        assert!(migrate_file(&d).expect("migrate"));
        assert_eq!(load(&d).expect("load"), state("d1", "c9"));
        assert!(!SyncStateFile::path(dir.path()).exists(), "the file is removed");
        assert!(!migrate_file(&d).expect("again"), "once");
        assert_eq!(load(&d).expect("load"), state("d1", "c9"));
    }

    /// A crash after the state was stored and before the file was removed: the next start keeps
    /// the database's state (which may have moved on since) and removes the file.
    #[test]
    fn a_file_left_by_a_crash_after_storing_is_harmless() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = device(dir.path());
        store(&d, &state("d1", "c12")).expect("stored before the crash, then synced on");
        SyncStateFile { hub_device_id: Some("d1".into()), cursor: Some("c9".into()) }.write(dir.path()).expect("file left behind");
        assert!(migrate_file(&d).expect("migrate"));
        assert_eq!(load(&d).expect("load"), state("d1", "c12"), "the database wins");
        assert!(!SyncStateFile::path(dir.path()).exists());
    }

    #[test]
    fn a_torn_file_reads_as_empty_and_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = device(dir.path());
        std::fs::write(SyncStateFile::path(dir.path()), b"{torn").expect("write");
        assert_eq!(SyncStateFile::read(dir.path()), Some(SyncStateFile::default()));
        assert!(migrate_file(&d).expect("migrate"));
        assert_eq!(load(&d).expect("load"), SyncCursor::default());
        assert!(!SyncStateFile::path(dir.path()).exists());
    }
}
