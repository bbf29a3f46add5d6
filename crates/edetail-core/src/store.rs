//! The content catalogue: installing bundle versions (from a zip, or manifest first and then
//! blob by blob as sync receives them), atomic activation, rollback, revocation and GC.
//!
//! Activation is one SQLite transaction that flips `bundles.active_version`; it only runs when
//! every blob of the version is registered (and blobs are only registered after they were
//! hashed, fsynced and renamed into place). A crash at any point therefore leaves the old
//! version or the new one active, never a mix.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use edetail_bundle::{BundleArchive, Manifest, ReadOptions, Sha256Digest, SignatureStatus, verify_detached_manifest};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::blobs::{BlobStore, WrittenBlob};
use crate::clock::{from_ms, to_ms};
use crate::db::Databases;
use crate::error::{Error, Result};

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallOutcome {
    pub bundle_id: String,
    pub version: u64,
    /// False when this exact version was already active (nothing changed).
    pub activated: bool,
    pub blobs_written: usize,
    pub blobs_reused: usize,
    pub bytes_written: u64,
}

/// A blob a staged version still needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingBlob {
    pub sha256: Sha256Digest,
    pub size: u64,
}

/// A bundle version the device has accepted (manifest verified) but not yet activated: a
/// download in progress or interrupted, resumed by the next sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingDownload {
    pub bundle_id: String,
    pub version: u64,
    pub title: String,
    /// The version currently presented, if any (None: a first install).
    pub active_version: Option<u64>,
    pub missing_files: u64,
    pub missing_bytes: u64,
    pub total_size: u64,
}

/// One installed bundle as the app lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstalledBundle {
    pub bundle_id: String,
    pub active_version: u64,
    pub previous_version: Option<u64>,
    pub title: String,
    pub product: String,
    pub valid_from: chrono::DateTime<chrono::Utc>,
    pub valid_until: chrono::DateTime<chrono::Utc>,
    pub key_id: Option<String>,
    pub revoked: bool,
    pub total_size: u64,
}

/// What GC removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub versions_removed: usize,
    pub blobs_removed: usize,
    pub bytes_freed: u64,
}

/// An active bundle's manifest, parsed once and shared.
#[derive(Debug)]
pub struct ActiveBundle {
    pub version: u64,
    pub manifest: Manifest,
    pub revoked: bool,
}

#[derive(Debug)]
pub struct ContentStore {
    db: Arc<Databases>,
    blobs: BlobStore,
    read_opts: ReadOptions,
    cache: Mutex<BTreeMap<String, Arc<ActiveBundle>>>,
    /// Serializes content changes (install, blob add, activation, GC) among themselves, so GC
    /// never sweeps a blob an install is registering. Presenting and recording never take it.
    content_lock: Mutex<()>,
}

impl ContentStore {
    pub fn new(db: Arc<Databases>, blobs: BlobStore, read_opts: ReadOptions) -> Self {
        ContentStore { db, blobs, read_opts, cache: Mutex::new(BTreeMap::new()), content_lock: Mutex::new(()) }
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    fn serialize(&self) -> std::sync::MutexGuard<'_, ()> {
        self.content_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn invalidate(&self, bundle_id: &str) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(bundle_id);
    }

    /// Installs a bundle zip: verifies it under the device's policy, stores only the blobs the
    /// device lacks (each verified while streamed), then activates it atomically.
    pub fn install_zip(&self, path: &Path, now_ms: i64) -> Result<InstallOutcome> {
        let mut archive = BundleArchive::open_path(path, &self.read_opts)?;
        let serial = self.serialize();
        let manifest = archive.manifest().clone();
        let key_id = key_id_of(archive.signature());
        let (manifest_bytes, sig) = (archive.manifest_bytes().to_vec(), archive.signature_bytes().map(<[u8]>::to_vec));
        if let Some(done) = self.already_active(&manifest)? {
            return Ok(done);
        }
        self.stage(&manifest, &manifest_bytes, sig.as_deref(), key_id.as_deref(), now_ms)?;
        let (mut reused, mut bytes) = (0, 0);
        let mut written = Vec::new();
        let present = self.registered_blobs(&manifest)?;
        for (path, entry) in &manifest.files {
            if present.contains(&entry.sha256) || written.iter().any(|b: &WrittenBlob| b.sha256 == entry.sha256) {
                reused += 1;
                continue;
            }
            // The archive's reader verifies size and SHA-256 against the signed manifest and
            // fails at end of stream otherwise; the blob store need not hash again.
            let mut reader = archive.read_file(path)?;
            let blob = self.blobs.write_preverified(&mut reader, &entry.sha256)?;
            bytes += blob.size;
            written.push(blob);
        }
        self.blobs.sync_batch(&written)?;
        // One transaction for all new blobs, after they are all durable (a crash before this
        // commit leaves unregistered files, which a retry rewrites and GC sweeps).
        self.db.write(|tx| {
            let mut st = tx.prepare_cached("INSERT OR IGNORE INTO blobs (sha256, size, added_at) VALUES (?1, ?2, ?3)")?;
            for b in &written {
                st.execute(params![b.sha256.to_hex(), b.size as i64, now_ms])?;
            }
            Ok(())
        })?;
        let written = written.len();
        drop(serial);
        self.activate(&manifest.id, manifest.version, now_ms)?;
        Ok(InstallOutcome {
            bundle_id: manifest.id,
            version: manifest.version,
            activated: true,
            blobs_written: written,
            blobs_reused: reused,
            bytes_written: bytes,
        })
    }

    fn already_active(&self, m: &Manifest) -> Result<Option<InstallOutcome>> {
        let active = self.active_version(&m.id)?;
        match active {
            Some(v) if v > m.version => Err(Error::Rollback { bundle_id: m.id.clone(), version: m.version, installed: v }),
            Some(v) if v == m.version => Ok(Some(InstallOutcome {
                bundle_id: m.id.clone(),
                version: v,
                activated: false,
                blobs_written: 0,
                blobs_reused: m.files.len(),
                bytes_written: 0,
            })),
            _ => Ok(None),
        }
    }

    /// Verifies a manifest received on its own (sync) and records the version as staged.
    /// Returns the blobs still missing.
    pub fn stage_manifest(&self, manifest_bytes: &[u8], signature: Option<&[u8]>, now_ms: i64) -> Result<(Manifest, Vec<MissingBlob>)> {
        let v = verify_detached_manifest(manifest_bytes, signature, &self.read_opts)?;
        let _serial = self.serialize();
        if self.already_active(&v.manifest)?.is_none() {
            self.stage(&v.manifest, manifest_bytes, signature, key_id_of(&v.signature).as_deref(), now_ms)?;
        }
        let missing = self.missing_blobs(&v.manifest.id, v.manifest.version)?;
        Ok((v.manifest, missing))
    }

    fn stage(&self, m: &Manifest, bytes: &[u8], sig: Option<&[u8]>, key_id: Option<&str>, now_ms: i64) -> Result<()> {
        self.db.write(|tx| {
            tx.execute(
                "DELETE FROM bundle_versions WHERE bundle_id = ?1 AND version = ?2 AND state = 'staged'",
                params![m.id, m.version as i64],
            )?;
            tx.execute(
                "INSERT INTO bundle_versions (bundle_id, version, state, manifest, signature, key_id, title, product,
                    valid_from, valid_until, total_size, staged_at)
                 VALUES (?1, ?2, 'staged', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (bundle_id, version) DO NOTHING",
                params![
                    m.id,
                    m.version as i64,
                    bytes,
                    sig,
                    key_id,
                    m.title,
                    m.product,
                    to_ms(m.valid_from),
                    to_ms(m.valid_until),
                    m.total_size() as i64,
                    now_ms
                ],
            )?;
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO bundle_files (bundle_id, version, path, sha256, size, mime) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (path, f) in &m.files {
                ins.execute(params![m.id, m.version as i64, path.as_str(), f.sha256.to_hex(), f.size as i64, f.mime])?;
            }
            Ok(())
        })
    }

    /// The manifest's blobs that are registered and present on disk.
    fn registered_blobs(&self, m: &Manifest) -> Result<HashSet<Sha256Digest>> {
        let known: HashSet<String> = self.db.read(|c| {
            let mut st = c.prepare_cached("SELECT 1 FROM blobs WHERE sha256 = ?1")?;
            let mut out = HashSet::new();
            for f in m.files.values() {
                let h = f.sha256.to_hex();
                if st.exists([&h])? {
                    out.insert(h);
                }
            }
            Ok(out)
        })?;
        Ok(m.files.values().map(|f| f.sha256).filter(|d| known.contains(&d.to_hex()) && self.blobs.exists(d)).collect())
    }

    fn register_blob(&self, d: &Sha256Digest, size: u64, now_ms: i64) -> Result<()> {
        self.db.write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO blobs (sha256, size, added_at) VALUES (?1, ?2, ?3)",
                params![d.to_hex(), size as i64, now_ms],
            )?;
            Ok(())
        })
    }

    /// Blobs a staged version still needs (what sync should download): never registered, or
    /// registered but gone from disk (storage cleared by the OS).
    pub fn missing_blobs(&self, bundle_id: &str, version: u64) -> Result<Vec<MissingBlob>> {
        let rows: Vec<(String, i64, bool)> = self.db.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT f.sha256, f.size, b.sha256 IS NOT NULL FROM bundle_files f LEFT JOIN blobs b ON b.sha256 = f.sha256
                 WHERE f.bundle_id = ?1 AND f.version = ?2 ORDER BY f.sha256",
            )?;
            let rows = st.query_map(params![bundle_id, version as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        let mut out = Vec::new();
        for (h, size, registered) in rows {
            let sha256 = Sha256Digest::from_hex(&h).map_err(Error::Invalid)?;
            if !registered || !self.blobs.exists(&sha256) {
                out.push(MissingBlob { sha256, size: size as u64 });
            }
        }
        Ok(out)
    }

    /// Adds one blob received from the network; it must hash to `expected`.
    pub fn add_blob(&self, expected: &Sha256Digest, content: &mut dyn Read, now_ms: i64) -> Result<u64> {
        let _serial = self.serialize();
        let b = self.blobs.write(content, Some(expected))?;
        self.register_blob(&b.sha256, b.size, now_ms)?;
        Ok(b.size)
    }

    /// Makes a staged version active once all its blobs are present. Atomic.
    pub fn activate(&self, bundle_id: &str, version: u64, now_ms: i64) -> Result<()> {
        let _serial = self.serialize();
        let missing = self.missing_blobs(bundle_id, version)?;
        if !missing.is_empty() {
            return Err(Error::Incomplete { bundle_id: bundle_id.into(), version, missing: missing.len() });
        }
        self.db.write(|tx| {
            let n = tx.execute(
                "UPDATE bundle_versions SET state = 'ready' WHERE bundle_id = ?1 AND version = ?2",
                params![bundle_id, version as i64],
            )?;
            if n == 0 {
                return Err(Error::UnknownVersion { bundle_id: bundle_id.into(), version });
            }
            let current: Option<i64> =
                tx.query_row("SELECT active_version FROM bundles WHERE bundle_id = ?1", [bundle_id], |r| r.get(0)).optional()?;
            match current {
                Some(v) if v as u64 > version => {
                    return Err(Error::Rollback { bundle_id: bundle_id.into(), version, installed: v as u64 });
                }
                Some(v) if v as u64 == version => {}
                Some(v) => {
                    tx.execute(
                        "UPDATE bundles SET active_version = ?2, previous_version = ?3, activated_at = ?4 WHERE bundle_id = ?1",
                        params![bundle_id, version as i64, v, now_ms],
                    )?;
                }
                None => {
                    tx.execute(
                        "INSERT INTO bundles (bundle_id, active_version, activated_at) VALUES (?1, ?2, ?3)",
                        params![bundle_id, version as i64, now_ms],
                    )?;
                }
            }
            Ok(())
        })?;
        self.invalidate(bundle_id);
        Ok(())
    }

    /// Switches back to the previous version (kept for this purpose).
    pub fn rollback(&self, bundle_id: &str, now_ms: i64) -> Result<u64> {
        let v = self.db.write(|tx| {
            let (active, prev): (i64, Option<i64>) = tx
                .query_row("SELECT active_version, previous_version FROM bundles WHERE bundle_id = ?1", [bundle_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?
                .ok_or_else(|| Error::UnknownBundle(bundle_id.into()))?;
            let prev = prev.ok_or_else(|| Error::Invalid(format!("bundle {bundle_id} has no previous version")))?;
            tx.execute(
                "UPDATE bundles SET active_version = ?2, previous_version = ?3, activated_at = ?4 WHERE bundle_id = ?1",
                params![bundle_id, prev, active, now_ms],
            )?;
            Ok(prev as u64)
        })?;
        self.invalidate(bundle_id);
        Ok(v)
    }

    /// Marks a bundle revoked (from the hub's change feed): it stops opening at once.
    pub fn revoke(&self, bundle_id: &str, reason: &str, now_ms: i64) -> Result<()> {
        self.db.write(|tx| {
            let n = tx.execute(
                "UPDATE bundles SET revoked_at = ?2, revoked_reason = ?3 WHERE bundle_id = ?1",
                params![bundle_id, now_ms, reason],
            )?;
            if n == 0 {
                return Err(Error::UnknownBundle(bundle_id.into()));
            }
            Ok(())
        })?;
        self.invalidate(bundle_id);
        Ok(())
    }

    pub fn active_version(&self, bundle_id: &str) -> Result<Option<u64>> {
        self.db.read(|c| {
            Ok(c.prepare_cached("SELECT active_version FROM bundles WHERE bundle_id = ?1")?
                .query_row([bundle_id], |r| r.get::<_, i64>(0))
                .optional()?
                .map(|v| v as u64))
        })
    }

    /// The active version's parsed manifest (cached until the next activation).
    pub fn active(&self, bundle_id: &str) -> Result<Arc<ActiveBundle>> {
        if let Some(a) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(bundle_id) {
            return Ok(a.clone());
        }
        let (version, bytes, revoked): (i64, Vec<u8>, bool) = self
            .db
            .read(|c| {
                Ok(c.prepare_cached(
                    "SELECT b.active_version, v.manifest, b.revoked_at IS NOT NULL FROM bundles b
                     JOIN bundle_versions v ON v.bundle_id = b.bundle_id AND v.version = b.active_version
                     WHERE b.bundle_id = ?1",
                )?
                .query_row([bundle_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?)
            })?
            .ok_or_else(|| Error::UnknownBundle(bundle_id.into()))?;
        // The bytes were verified (signature and schema) before they were stored.
        let manifest = Manifest::from_slice(&bytes).map_err(|e| Error::Invalid(e.to_string()))?;
        let a = Arc::new(ActiveBundle { version: version as u64, manifest, revoked });
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(bundle_id.into(), a.clone());
        Ok(a)
    }

    /// Looks up a file of the active version: (sha256, size, mime). Served from the cached
    /// active manifest, so the hot path of asset serving does no SQL.
    pub fn active_file(&self, bundle_id: &str, path: &edetail_bundle::BundlePath) -> Result<Option<(Sha256Digest, u64, String)>> {
        let active = match self.active(bundle_id) {
            Ok(a) => a,
            Err(Error::UnknownBundle(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(active.manifest.files.get(path).map(|f| (f.sha256, f.size, f.mime.clone())))
    }

    pub fn list(&self) -> Result<Vec<InstalledBundle>> {
        self.db.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT b.bundle_id, b.active_version, b.previous_version, v.title, v.product, v.valid_from, v.valid_until,
                        v.key_id, b.revoked_at IS NOT NULL, v.total_size
                 FROM bundles b JOIN bundle_versions v ON v.bundle_id = b.bundle_id AND v.version = b.active_version
                 ORDER BY b.bundle_id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(InstalledBundle {
                    bundle_id: r.get(0)?,
                    active_version: r.get::<_, i64>(1)? as u64,
                    previous_version: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                    title: r.get(3)?,
                    product: r.get(4)?,
                    valid_from: from_ms(r.get(5)?),
                    valid_until: from_ms(r.get(6)?),
                    key_id: r.get(7)?,
                    revoked: r.get(8)?,
                    total_size: r.get::<_, i64>(9)? as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Staged versions above the active one (or of bundles not installed yet), with what they
    /// still lack: the app's "downloading" state.
    pub fn pending_downloads(&self) -> Result<Vec<PendingDownload>> {
        self.db.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT v.bundle_id, v.version, v.title, b.active_version, v.total_size,
                        (SELECT COUNT(*) FROM (SELECT DISTINCT f.sha256 FROM bundle_files f LEFT JOIN blobs x ON x.sha256 = f.sha256
                          WHERE f.bundle_id = v.bundle_id AND f.version = v.version AND x.sha256 IS NULL)),
                        (SELECT COALESCE(SUM(size), 0) FROM (SELECT DISTINCT f.sha256, f.size FROM bundle_files f
                          LEFT JOIN blobs x ON x.sha256 = f.sha256
                          WHERE f.bundle_id = v.bundle_id AND f.version = v.version AND x.sha256 IS NULL))
                 FROM bundle_versions v LEFT JOIN bundles b ON b.bundle_id = v.bundle_id
                 WHERE b.active_version IS NULL OR v.version > b.active_version
                 ORDER BY v.bundle_id, v.version",
            )?;
            let rows = st.query_map([], |r| {
                Ok(PendingDownload {
                    bundle_id: r.get(0)?,
                    version: r.get::<_, i64>(1)? as u64,
                    title: r.get(2)?,
                    active_version: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                    total_size: r.get::<_, i64>(4)? as u64,
                    missing_files: r.get::<_, i64>(5)? as u64,
                    missing_bytes: r.get::<_, i64>(6)? as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Removes versions that are neither active, previous, nor staged above the active one,
    /// then blobs no remaining version references, then stray blob files.
    pub fn gc(&self) -> Result<GcReport> {
        let _serial = self.serialize();
        let mut report = GcReport::default();
        let doomed: Vec<(String, i64)> = self.db.write(|tx| {
            let doomed: Vec<(String, i64)> = {
                let mut st = tx.prepare(
                    "SELECT v.bundle_id, v.version FROM bundle_versions v LEFT JOIN bundles b ON b.bundle_id = v.bundle_id
                     WHERE b.bundle_id IS NOT NULL
                       AND v.version != b.active_version
                       AND v.version IS NOT b.previous_version
                       AND NOT (v.state = 'staged' AND v.version > b.active_version)",
                )?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            for (id, v) in &doomed {
                tx.execute("DELETE FROM bundle_versions WHERE bundle_id = ?1 AND version = ?2", params![id, v])?;
            }
            Ok(doomed)
        })?;
        report.versions_removed = doomed.len();
        // Blobs unreferenced by any version: delete rows, then files. Holding the writer while
        // deleting rows keeps a concurrent install from registering a blob we then remove.
        let unreferenced: Vec<(String, i64)> = self.db.write(|tx| {
            let rows: Vec<(String, i64)> = {
                let mut st = tx.prepare(
                    "SELECT b.sha256, b.size FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM bundle_files f WHERE f.sha256 = b.sha256)",
                )?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            for (h, _) in &rows {
                tx.execute("DELETE FROM blobs WHERE sha256 = ?1", [h])?;
            }
            Ok(rows)
        })?;
        for (h, size) in &unreferenced {
            if let Ok(d) = Sha256Digest::from_hex(h) {
                self.blobs.remove(&d)?;
                report.blobs_removed += 1;
                report.bytes_freed += *size as u64;
            }
        }
        // Stray files: written by an install that crashed before registering them.
        let known: HashSet<String> = self.db.read(|c| {
            let mut st = c.prepare("SELECT sha256 FROM blobs")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<HashSet<_>>>()?)
        })?;
        for d in self.blobs.list()? {
            if !known.contains(&d.to_hex()) {
                let size = std::fs::metadata(self.blobs.path_of(&d)).map(|m| m.len()).unwrap_or(0);
                self.blobs.remove(&d)?;
                report.blobs_removed += 1;
                report.bytes_freed += size;
            }
        }
        Ok(report)
    }
}

fn key_id_of(s: &SignatureStatus) -> Option<String> {
    match s {
        SignatureStatus::Verified { key_id } => Some(key_id.clone()),
        SignatureStatus::NotChecked { key_id } => key_id.clone(),
        _ => None,
    }
}
