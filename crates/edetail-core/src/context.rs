//! The opened data directory every part of the device works on: the databases, the content
//! store, the trusted clock and event stamps, and the configuration. Lower modules (calls,
//! outbox, plans, privacy, profile) take a `&Context`; the `Device` facade owns one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use edetail_bundle::{PublicKey, ReadOptions};
use rusqlite::{OptionalExtension, params};

use crate::blobs::BlobStore;
use crate::clock::{Clock, Stamp, SystemClock, from_ms, to_ms};
use crate::db::{Databases, DbKey};
use crate::error::{Error, Result};
use crate::observe::Observers;
use crate::store::ContentStore;
use crate::validity::{TimeState, TrustedClock, Unopenable, check_openable};

/// How a data directory is opened.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// The signed-in rep (an id, never a name).
    pub rep_id: String,
    /// Publisher keys whose signatures are trusted.
    pub trusted_keys: Vec<PublicKey>,
    /// Accept unsigned bundles (preview and authoring only; default false).
    pub allow_unsigned: bool,
    /// Refuse to open content when the last sync is older than this (None: no limit).
    pub max_offline: Option<Duration>,
    pub clock: Arc<dyn Clock>,
    /// The SQLCipher key of the database (from the platform keystore). `None`: a plain
    /// database. Never logged (`Debug` redacts it).
    pub db_key: Option<DbKey>,
}

impl DeviceConfig {
    pub fn new(rep_id: impl Into<String>) -> Self {
        DeviceConfig {
            rep_id: rep_id.into(),
            trusted_keys: Vec::new(),
            allow_unsigned: false,
            max_offline: None,
            clock: Arc::new(SystemClock::new()),
            db_key: None,
        }
    }
}

/// An opened data directory (see the module docs).
#[derive(Debug)]
pub struct Context {
    dir: PathBuf,
    db: Arc<Databases>,
    store: ContentStore,
    time: TrustedClock,
    session: i64,
    config: DeviceConfig,
    /// Live observers of calls (`observe`), told after a change committed.
    observers: Observers,
    /// Held for the context's lifetime: one at a time per data directory. Declared last so it
    /// is released only after the database connections have closed.
    _lock: std::fs::File,
}

const META_SESSION: &str = "session";
const META_TIME_FLOOR: &str = "time_floor_ms";
const META_LAST_HUB_SYNC: &str = "last_hub_sync_ms";
const META_DEVICE_ID: &str = "device_id";
const META_SYNC_HUB_DEVICE_ID: &str = "sync_hub_device_id";
const META_SYNC_CURSOR: &str = "sync_cursor";

/// Where this device's sync with its hub stands (stored in `meta`; read and written by
/// edetail-sync, opaque to core).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncCursor {
    /// The hub-issued device id the cursor belongs to.
    pub hub_device_id: Option<String>,
    /// Last fully applied change-feed cursor.
    pub cursor: Option<String>,
}
/// The database file inside a data directory.
pub const DB_FILE: &str = "edetail.sqlite3";

/// Takes the data directory's lock file (one `Device` at a time per directory).
fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    let lock_path = dir.join("lock");
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(Error::io(&lock_path))?;
    lock.try_lock().map_err(|_| Error::Locked(dir.to_path_buf()))?;
    Ok(lock)
}

impl Context {
    /// Opens (creating if needed) a data directory: takes its lock, opens and migrates the
    /// database, clears blob staging, starts a new session and loads the trusted time.
    pub(crate) fn open(dir: &Path, config: DeviceConfig) -> Result<Context> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let lock = lock_dir(dir)?;
        let db = Arc::new(Databases::open(&dir.join(DB_FILE), config.db_key.as_ref())?);
        let blobs = BlobStore::open(dir)?;
        blobs.clear_tmp()?;
        let (session, state) = db.write(|tx| {
            let get = |k: &str| -> Result<Option<String>> {
                Ok(tx.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0)).optional()?)
            };
            let session = get(META_SESSION)?.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) + 1;
            let floor = get(META_TIME_FLOOR)?.and_then(|v| v.parse().ok()).unwrap_or(0);
            let hub = get(META_LAST_HUB_SYNC)?.and_then(|v| v.parse().ok()).unwrap_or(0);
            if get(META_DEVICE_ID)?.is_none() {
                set_meta(tx, META_DEVICE_ID, &uuid::Uuid::new_v4().to_string())?;
            }
            set_meta(tx, META_SESSION, &session.to_string())?;
            Ok((session, TimeState { floor_ms: floor, last_hub_sync_ms: hub }))
        })?;
        let time = TrustedClock::new(config.clock.clone(), state);
        let read_opts =
            ReadOptions { trusted_keys: config.trusted_keys.clone(), require_signature: !config.allow_unsigned, ..Default::default() };
        let store = ContentStore::new(db.clone(), blobs, read_opts);
        Ok(Context { dir: dir.to_path_buf(), db, store, time, session, config, observers: Observers::default(), _lock: lock })
    }

    /// Encrypts the plain database of a data directory that is not open (see
    /// `Device::encrypt_existing`).
    pub(crate) fn encrypt_existing(dir: &Path, key: &DbKey) -> Result<()> {
        let _lock = lock_dir(dir)?;
        crate::db::encrypt_plain(&dir.join(DB_FILE), key)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    pub fn rep_id(&self) -> &str {
        &self.config.rep_id
    }

    pub fn databases(&self) -> &Databases {
        &self.db
    }

    pub fn content(&self) -> &ContentStore {
        &self.store
    }

    /// The observers of this device's calls.
    pub(crate) fn observers(&self) -> &Observers {
        &self.observers
    }

    /// This device's stable id (created with the data directory).
    pub fn device_id(&self) -> Result<String> {
        self.db.read(|c| Ok(c.query_row("SELECT value FROM meta WHERE key = ?1", [META_DEVICE_ID], |r| r.get(0))?))
    }

    /// The stored sync cursor (empty when this device never synced).
    pub fn sync_cursor(&self) -> Result<SyncCursor> {
        self.db.read(|c| {
            let get = |k: &str| -> Result<Option<String>> {
                Ok(c.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0)).optional()?)
            };
            Ok(SyncCursor { hub_device_id: get(META_SYNC_HUB_DEVICE_ID)?, cursor: get(META_SYNC_CURSOR)? })
        })
    }

    /// Replaces the stored sync cursor (a `None` field is removed), in one transaction.
    pub fn set_sync_cursor(&self, s: &SyncCursor) -> Result<()> {
        self.db.write(|tx| {
            for (k, v) in [(META_SYNC_HUB_DEVICE_ID, &s.hub_device_id), (META_SYNC_CURSOR, &s.cursor)] {
                match v {
                    Some(v) => set_meta(tx, k, v)?,
                    None => {
                        tx.execute("DELETE FROM meta WHERE key = ?1", [k])?;
                    }
                }
            }
            Ok(())
        })
    }

    /// When an event happens: the device's own wall clock (raw: the hub estimates the skew at
    /// upload and stores corrected times beside it), this process's session and monotonic time.
    pub(crate) fn stamp(&self) -> Stamp {
        let clock = self.time.clock();
        Stamp { wall_ms: to_ms(clock.now_utc()), session: self.session, mono_ms: clock.monotonic().as_millis() as i64 }
    }

    /// Trusted time (never runs backwards; see `validity`). Persists the floor.
    pub fn trusted_now(&self) -> Result<DateTime<Utc>> {
        let (now, state) = self.time.now();
        self.persist_time(state)?;
        Ok(now)
    }

    fn persist_time(&self, s: TimeState) -> Result<()> {
        self.db.write(|tx| {
            set_meta(tx, META_TIME_FLOOR, &s.floor_ms.to_string())?;
            set_meta(tx, META_LAST_HUB_SYNC, &s.last_hub_sync_ms.to_string())
        })
    }

    /// Applies the hub's answer to an uploaded batch and records its clock, in one transaction
    /// (one commit per batch on the device, not two).
    pub fn settle_upload(&self, answer: &crate::outbox::BatchAnswer<'_>, now_ms: i64, hub_now: DateTime<Utc>) -> Result<usize> {
        let s = self.time.observe_hub_time(hub_now);
        self.db.write(|tx| {
            let n = crate::outbox::settle_in(tx, answer, now_ms)?;
            set_meta(tx, META_TIME_FLOOR, &s.floor_ms.to_string())?;
            set_meta(tx, META_LAST_HUB_SYNC, &s.last_hub_sync_ms.to_string())?;
            Ok(n)
        })
    }

    /// The hub's clock at a successful sync.
    pub fn observe_hub_time(&self, hub_now: DateTime<Utc>) -> Result<()> {
        let s = self.time.observe_hub_time(hub_now);
        self.persist_time(s)
    }

    /// Whether a bundle may be opened now; the reason when not.
    pub fn check_openable(&self, bundle_id: &str) -> Result<()> {
        let active = self.store.active(bundle_id)?;
        let now = self.trusted_now()?;
        let s = self.time.state();
        let last_sync = (s.last_hub_sync_ms > 0).then(|| from_ms(s.last_hub_sync_ms));
        let m = &active.manifest;
        check_openable(now, m.valid_from, m.valid_until, active.revoked, last_sync, self.config.max_offline)
            .map_err(|reason| Error::NotOpenable { bundle_id: bundle_id.into(), reason })
    }

    /// Why a bundle cannot be opened now, if it cannot (for the app's content list).
    pub fn unopenable_reason(&self, bundle_id: &str) -> Result<Option<Unopenable>> {
        match self.check_openable(bundle_id) {
            Ok(()) => Ok(None),
            Err(Error::NotOpenable { reason, .. }) => Ok(Some(reason)),
            Err(e) => Err(e),
        }
    }
}

fn set_meta(tx: &rusqlite::Transaction<'_>, k: &str, v: &str) -> Result<()> {
    tx.execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", params![k, v])?;
    Ok(())
}
