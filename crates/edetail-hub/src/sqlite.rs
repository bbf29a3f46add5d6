//! The SQLite `HubStore`: one file `hub.sqlite3` in the data directory, WAL with
//! synchronous=FULL (an acknowledged event survives power loss), numbered migrations under
//! `PRAGMA user_version`, one writer connection plus one reader connection.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use edetail_protocol::{ConsentRecord, Erasure, Revocation, Tracking, WireEvent};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::ingest::{IngestChanges, IngestFacts};
use crate::store::{
    AnalysisCommit, AnalysisStore, AuditStore, BatchOutcome, CheckedEvent, CredentialStore, CrmStore, DeviceRecord, DeviceStats, Doc,
    ErasureReport, FeedBundle, FeedConsent, FeedErasure, FeedPage, FeedPlan, FeedRevocation, FeedStore, HubStats, IngestStore,
    MAX_ANALYSIS_ATTEMPTS, MICROSITE_DEVICE, Microsite, NewBundleVersion, Prescription, PrivacyStore, PublishClaim, QueuedCall,
    StoredEvent, Territory,
};
use crate::store::{
    AuditEntry, Audited, Credential, DEFAULT_DEVICE_TOKEN_DAYS, DEFAULT_PUBLISHER_TOKEN_DAYS, NewAuditEntry, NewCredential, TokenRole,
};

/// Migrations in order; `MIGRATIONS[i]` upgrades from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/001_initial.sql"),
    include_str!("../migrations/002_territories.sql"),
    include_str!("../migrations/003_closed_loop.sql"),
    include_str!("../migrations/004_security.sql"),
    include_str!("../migrations/005_erasure_consent.sql"),
    include_str!("../migrations/006_publish_claims.sql"),
];
/// The schema version this code writes. Always `MIGRATIONS.len()`.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
/// File name of the database inside the data directory.
pub const DB_FILE: &str = "hub.sqlite3";

fn configure(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Brings a database to [`SCHEMA_VERSION`] inside one immediate transaction.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    edetail_sqlite::migrate(conn, MIGRATIONS).map_err(|e| match e {
        edetail_sqlite::MigrateError::TooNew { found, supported } => Error::SchemaTooNew { found, supported },
        edetail_sqlite::MigrateError::Sqlite(e) => Error::from(e),
    })
}

/// Times as stored: RFC 3339, UTC, lossless (sub-second digits as needed).
pub(crate) fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_time(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

/// Creates an empty database file readable by its owner only (0600) when none exists: SQLite
/// gives the `-wal` and `-shm` files it creates beside it the same mode. It holds call events
/// and HCP ids, so no other account on the machine may read it. An existing file keeps its mode
/// (an operator may have chosen another).
fn create_private_file(path: &Path) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(path)(e)),
    }
}

#[derive(Debug)]
pub struct SqliteStore {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave SQLite half-written (transactions roll back
    // on drop), so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SqliteStore {
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(DB_FILE);
        create_private_file(&path)?;
        let mut writer = Connection::open(&path)?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        reader.pragma_update(None, "busy_timeout", 5000)?;
        reader.pragma_update(None, "temp_store", "MEMORY")?;
        Ok(SqliteStore { writer: Mutex::new(writer), reader: Mutex::new(reader) })
    }

    /// Test support: caps the database at its current size plus `extra_pages` pages
    /// (`PRAGMA max_page_count`), so the next writes fail with SQLITE_FULL as on a full disk.
    #[cfg(feature = "testkit")]
    pub fn limit_growth(&self, extra_pages: i64) -> Result<()> {
        let conn = lock(&self.writer);
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        conn.pragma_update(None, "max_page_count", pages + extra_pages)?;
        Ok(())
    }

    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let v = f(&tx)?;
        tx.commit()?;
        Ok(v)
    }

    /// `write`, appending `audit` (with `f`'s outcome) in the same transaction.
    fn write_audited<T>(&self, audit: Option<&Audited<T>>, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.write(|tx| {
            let v = f(tx)?;
            if let Some(a) = audit {
                insert_audit(tx, &a.entry_for(&v))?;
            }
            Ok(v)
        })
    }

    /// Runs `f` in a read transaction (one consistent snapshot).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = lock(&self.reader);
        let tx = conn.unchecked_transaction()?;
        let v = f(&tx)?;
        tx.finish()?;
        Ok(v)
    }
}

fn json_text(v: &serde_json::Value) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(format!("serializing: {e}")))
}

fn json_value(s: &str) -> rusqlite::Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn microsite_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Microsite> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        serde_json::from_value(json_value(&r.get::<_, String>(i)?)?)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
    };
    Ok(Microsite {
        id: r.get(0)?,
        token_sha256: r.get(1)?,
        hcp_id: r.get(2)?,
        territory: r.get(3)?,
        bundle_id: r.get(4)?,
        bundle_version: r.get::<_, i64>(5)? as u64,
        slides: list(6)?,
        topics: list(7)?,
        reason: r.get(8)?,
        created_at: parse_time(&r.get::<_, String>(9)?)?,
        expires_at: parse_time(&r.get::<_, String>(10)?)?,
        views: r.get::<_, i64>(11)? as u64,
    })
}

const MICROSITE_COLUMNS: &str =
    "id, token_sha256, hcp_id, territory, bundle_id, bundle_version, slides, topics, reason, created_at, expires_at, views";

fn consent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FeedConsent> {
    let tracking: String = r.get(2)?;
    let tracking = Tracking::parse(&tracking).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, format!("tracking {tracking:?}").into())
    })?;
    Ok(FeedConsent {
        feed_seq: r.get(0)?,
        consent: ConsentRecord { hcp_id: r.get(1)?, tracking, updated_at: parse_time(&r.get::<_, String>(3)?)? },
    })
}

fn next_feed_seq(tx: &Transaction<'_>) -> Result<i64> {
    Ok(tx.query_row("UPDATE feed_counter SET value = value + 1 WHERE id = 1 RETURNING value", [], |r| r.get(0))?)
}

/// Times in the claim tables: Unix milliseconds.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// SQL condition: blob `?1` is referenced by a bundle version (a file or its zip).
const BLOB_REFERENCED: &str = "(EXISTS (SELECT 1 FROM bundle_files WHERE sha256 = ?1) \
     OR EXISTS (SELECT 1 FROM bundle_versions WHERE zip_sha256 = ?1))";
/// SQL condition: blob `?1` is leased by a claim other than `?2` unexpired at `?3` (ms).
const BLOB_LEASED_BY_OTHERS: &str = "EXISTS (SELECT 1 FROM blob_leases l JOIN publish_claims c ON c.claim_id = l.claim_id \
     WHERE l.sha256 = ?1 AND l.claim_id <> ?2 AND c.expires_at_ms > ?3)";

/// SQL condition: version `v` is offered to territory `?1`.
const ENTITLED: &str = "EXISTS (SELECT 1 FROM bundle_territories t WHERE t.bundle_id = v.bundle_id \
     AND t.version = v.version AND t.territory IN (?1, '*'))";
/// SQL condition: version `v` was revoked after it was published.
const REVOKED: &str = "EXISTS (SELECT 1 FROM revocations r WHERE r.bundle_id = v.bundle_id AND r.feed_seq > v.feed_seq)";

/// Reads what decides an upload batch of `device_id` ([`crate::ingest::IngestFacts`]).
fn ingest_facts(tx: &Transaction<'_>, device_id: &str, events: &[CheckedEvent]) -> Result<IngestFacts> {
    let watermark: i64 = tx
        .query_row("SELECT watermark FROM devices WHERE id = ?1", [device_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("device {device_id}")))?;
    let wanted = IngestFacts::wanted(events);
    let mut facts = IngestFacts { watermark, ..IngestFacts::default() };
    let mut holders = tx.prepare_cached("SELECT uuid FROM events WHERE device_id = ?1 AND seq = ?2")?;
    for seq in &wanted.seqs {
        let uuids = holders.query_map(params![device_id, seq], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
        if !uuids.is_empty() {
            facts.seq_holders.insert(*seq, uuids);
        }
    }
    let mut known =
        tx.prepare_cached("SELECT (SELECT device_id FROM events WHERE uuid = ?1), EXISTS (SELECT 1 FROM erased_events WHERE uuid = ?1)")?;
    for uuid in wanted.uuids {
        let (owner, erased): (Option<String>, bool) = known.query_row([&uuid], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if erased {
            facts.erased_uuids.insert(uuid.clone());
        }
        if let Some(owner) = owner {
            facts.owners.insert(uuid, owner);
        }
    }
    let mut erased_call = tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM erased_calls WHERE device_id = ?1 AND call_id = ?2)")?;
    for call_id in wanted.call_ids {
        if erased_call.query_row(params![device_id, call_id], |r| r.get::<_, bool>(0))? {
            facts.erased_calls.insert(call_id);
        }
    }
    let mut seen = tx.prepare_cached("SELECT seq FROM device_seqs WHERE device_id = ?1 AND seq > ?2 ORDER BY seq")?;
    facts.seen_above = seen.query_map(params![device_id, watermark], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(facts)
}

/// Persists a planned upload batch ([`crate::ingest::plan`]) and the device's counters.
fn persist_ingest(tx: &Transaction<'_>, device_id: &str, ch: &IngestChanges<'_>, skew_ms: i64, now: DateTime<Utc>) -> Result<()> {
    let received_at = time_text(now);
    let mut insert_event = tx.prepare_cached(
        "INSERT INTO events (uuid, device_id, seq, call_id, type, recorded_at, recorded_at_corrected, \
         session, mono_ms, payload, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for (e, recorded_at_corrected) in &ch.inserts {
        let payload = serde_json::to_string(&e.payload).map_err(|err| Error::Internal(err.to_string()))?;
        insert_event.execute(params![
            e.uuid,
            device_id,
            e.seq,
            e.call_id,
            e.kind,
            time_text(e.recorded_at),
            time_text(*recorded_at_corrected),
            e.session,
            e.mono_ms,
            payload,
            received_at
        ])?;
    }
    let mut enqueue = tx.prepare_cached("INSERT OR IGNORE INTO analysis_queue (device_id, call_id, queued_at) VALUES (?1, ?2, ?3)")?;
    for call_id in &ch.enqueue_calls {
        enqueue.execute(params![device_id, call_id, received_at])?;
    }
    let mut insert_rejected =
        tx.prepare_cached("INSERT OR IGNORE INTO rejected_events (uuid, device_id, seq, reason, received_at) VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let mut new_rejections = 0i64;
    for r in &ch.rejections {
        new_rejections += insert_rejected.execute(params![r.uuid, device_id, r.seq, r.reason, received_at])? as i64;
    }
    let mut insert_seq = tx.prepare_cached("INSERT OR IGNORE INTO device_seqs (device_id, seq) VALUES (?1, ?2)")?;
    for seq in &ch.remember_seqs {
        insert_seq.execute(params![device_id, seq])?;
    }
    let watermark = ch.outcome.watermark;
    if watermark > ch.old_watermark {
        tx.execute("DELETE FROM device_seqs WHERE device_id = ?1 AND seq <= ?2", params![device_id, watermark])?;
    }
    tx.execute(
        "UPDATE devices SET watermark = ?2, skew_ms = ?3, last_seen_at = ?4, events_received = events_received + ?5, \
         duplicates = duplicates + ?6, rejected = rejected + ?7 WHERE id = ?1",
        params![
            device_id,
            watermark,
            skew_ms,
            received_at,
            ch.outcome.accepted.len() as i64,
            ch.outcome.duplicates.len() as i64,
            new_rejections
        ],
    )?;
    Ok(())
}

impl CredentialStore for SqliteStore {
    fn add_device(
        &self,
        device_id: &str,
        rep_id: &str,
        territory: &str,
        token_sha256: &str,
        now: DateTime<Utc>,
        token_expires_at: Option<DateTime<Utc>>,
        audit: Option<&Audited<()>>,
    ) -> Result<()> {
        self.write_audited(audit, |tx| {
            tx.execute("INSERT OR IGNORE INTO territories (name, created_at) VALUES (?1, ?2)", params![territory, time_text(now)])?;
            tx.execute(
                "INSERT INTO devices (id, rep_id, territory, token_sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![device_id, rep_id, territory, token_sha256, time_text(now)],
            )?;
            let expires = token_expires_at.unwrap_or(now + chrono::Duration::days(DEFAULT_DEVICE_TOKEN_DAYS));
            tx.execute(
                "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES (?1, 'device', ?2, ?3, ?4)",
                params![token_sha256, device_id, time_text(now), time_text(expires)],
            )?;
            Ok(())
        })
    }

    fn add_publisher(&self, name: &str, token_sha256: &str, now: DateTime<Utc>, audit: Option<&Audited<()>>) -> Result<()> {
        self.write_audited(audit, |tx| {
            let n = tx.execute(
                "INSERT OR IGNORE INTO publishers (name, token_sha256, created_at) VALUES (?1, ?2, ?3)",
                params![name, token_sha256, time_text(now)],
            )?;
            if n == 0 {
                return Err(Error::BadRequest(format!("publisher {name:?} already exists")));
            }
            let expires = now + chrono::Duration::days(DEFAULT_PUBLISHER_TOKEN_DAYS);
            tx.execute(
                "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES (?1, 'publisher', ?2, ?3, ?4)",
                params![token_sha256, name, time_text(now), time_text(expires)],
            )?;
            Ok(())
        })
    }

    fn device_by_token(&self, token_sha256: &str) -> Result<Option<DeviceRecord>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT id, rep_id, territory, watermark, skew_ms, last_seen_at FROM devices WHERE token_sha256 = ?1 \
                 OR id = (SELECT subject FROM credentials WHERE token_sha256 = ?1 AND role = 'device')",
                [token_sha256],
                |r| {
                    Ok(DeviceRecord {
                        id: r.get(0)?,
                        rep_id: r.get(1)?,
                        territory: r.get(2)?,
                        watermark: r.get(3)?,
                        skew_ms: r.get(4)?,
                        last_seen_at: r.get::<_, Option<String>>(5)?.map(|t| parse_time(&t)).transpose()?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn publisher_by_token(&self, token_sha256: &str) -> Result<Option<String>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT name FROM publishers WHERE token_sha256 = ?1 \
                 OR name = (SELECT subject FROM credentials WHERE token_sha256 = ?1 AND role = 'publisher')",
                [token_sha256],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    fn touch_device(&self, device_id: &str, now: DateTime<Utc>, skew_ms: Option<i64>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE devices SET last_seen_at = ?2, skew_ms = COALESCE(?3, skew_ms) WHERE id = ?1",
                params![device_id, time_text(now), skew_ms],
            )?;
            Ok(())
        })
    }

    fn credential(&self, token_sha256: &str) -> Result<Option<Credential>> {
        self.read(|c| {
            Ok(c.query_row(
                &format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE token_sha256 = ?1"),
                [token_sha256],
                credential_row,
            )
            .optional()?)
        })
    }

    fn credentials_of(&self, role: TokenRole, subject: &str) -> Result<Vec<Credential>> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE role = ?1 AND subject = ?2 ORDER BY created_at, rowid"
            ))?;
            Ok(st.query_map(params![role.as_str(), subject], credential_row)?.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn issue_credential(&self, n: &NewCredential, audit: Option<&Audited<()>>) -> Result<()> {
        self.write_audited(audit, |tx| {
            let exists: bool = match n.role {
                TokenRole::Device => tx.query_row("SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?1)", [&n.subject], |r| r.get(0))?,
                TokenRole::Publisher => {
                    tx.query_row("SELECT EXISTS (SELECT 1 FROM publishers WHERE name = ?1)", [&n.subject], |r| r.get(0))?
                }
                TokenRole::Operator | TokenRole::Session => {
                    tx.query_row("SELECT EXISTS (SELECT 1 FROM operators WHERE name = ?1)", [&n.subject], |r| r.get(0))?
                }
            };
            if !exists || n.subject == crate::store::MICROSITE_DEVICE && n.role == TokenRole::Device {
                return Err(Error::NotFound(format!("{} {}", n.role.as_str(), n.subject)));
            }
            if let Some(by) = n.others_expire_by {
                // An operator's rotation ends its dashboard sessions by the grace end too.
                let mut st = tx.prepare(
                    "SELECT token_sha256, expires_at FROM credentials WHERE subject = ?2 AND revoked_at IS NULL \
                     AND (role = ?1 OR (?1 = 'operator' AND role = 'session'))",
                )?;
                let rows = st
                    .query_map(params![n.role.as_str(), n.subject], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for (hash, expires) in rows {
                    let expires = expires.map(|t| parse_time(&t)).transpose()?;
                    if expires.is_none_or(|t| t > by) {
                        tx.execute("UPDATE credentials SET expires_at = ?2 WHERE token_sha256 = ?1", params![hash, time_text(by)])?;
                    }
                }
            }
            tx.execute(
                "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![n.token_sha256, n.role.as_str(), n.subject, time_text(n.created_at), n.expires_at.map(time_text)],
            )?;
            match n.role {
                TokenRole::Device => {
                    tx.execute("UPDATE devices SET token_sha256 = ?2 WHERE id = ?1", params![n.subject, n.token_sha256])?;
                }
                TokenRole::Publisher => {
                    tx.execute("UPDATE publishers SET token_sha256 = ?2 WHERE name = ?1", params![n.subject, n.token_sha256])?;
                }
                TokenRole::Operator | TokenRole::Session => {}
            }
            Ok(())
        })
    }

    fn set_credential_expiry(&self, token_sha256: &str, expires_at: Option<DateTime<Utc>>) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE credentials SET expires_at = ?2 WHERE token_sha256 = ?1",
                params![token_sha256, expires_at.map(time_text)],
            )?;
            if n == 0 {
                return Err(Error::NotFound("token".into()));
            }
            Ok(())
        })
    }

    fn revoke_credentials(&self, role: TokenRole, subject: &str, now: DateTime<Utc>, audit: Option<&Audited<u64>>) -> Result<u64> {
        self.write_audited(audit, |tx| {
            let held: i64 =
                tx.query_row("SELECT COUNT(*) FROM credentials WHERE role = ?1 AND subject = ?2", params![role.as_str(), subject], |r| {
                    r.get(0)
                })?;
            if held == 0 {
                return Err(Error::NotFound(format!("{} {subject}", role.as_str())));
            }
            let n = tx.execute(
                "UPDATE credentials SET revoked_at = ?3 WHERE subject = ?2 AND revoked_at IS NULL \
                 AND (role = ?1 OR (?1 = 'operator' AND role = 'session'))",
                params![role.as_str(), subject, time_text(now)],
            )?;
            Ok(n as u64)
        })
    }

    fn revoke_credential(&self, token_sha256: &str, now: DateTime<Utc>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE credentials SET revoked_at = ?2 WHERE token_sha256 = ?1 AND revoked_at IS NULL",
                params![token_sha256, time_text(now)],
            )?;
            Ok(())
        })
    }

    fn add_operator(
        &self,
        name: &str,
        token_sha256: &str,
        now: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
        audit: Option<&Audited<()>>,
    ) -> Result<()> {
        self.write_audited(audit, |tx| {
            let n = tx.execute("INSERT OR IGNORE INTO operators (name, created_at) VALUES (?1, ?2)", params![name, time_text(now)])?;
            if n == 0 {
                return Err(Error::BadRequest(format!("operator {name:?} already exists")));
            }
            tx.execute(
                "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES (?1, 'operator', ?2, ?3, ?4)",
                params![token_sha256, name, time_text(now), expires_at.map(time_text)],
            )?;
            Ok(())
        })
    }
}

impl FeedStore for SqliteStore {
    fn set_territory(&self, name: &str, products: &[String], now: DateTime<Utc>) -> Result<()> {
        self.write(|tx| {
            tx.execute("INSERT OR IGNORE INTO territories (name, created_at) VALUES (?1, ?2)", params![name, time_text(now)])?;
            tx.execute("DELETE FROM territory_products WHERE territory = ?1", [name])?;
            for p in products {
                tx.execute("INSERT OR IGNORE INTO territory_products (territory, product) VALUES (?1, ?2)", params![name, p])?;
            }
            Ok(())
        })
    }

    fn territories(&self) -> Result<Vec<Territory>> {
        self.read(|c| {
            let mut st =
                c.prepare("SELECT t.name, (SELECT COUNT(*) FROM devices d WHERE d.territory = t.name) FROM territories t ORDER BY t.name")?;
            let mut out = st
                .query_map([], |r| Ok(Territory { name: r.get(0)?, products: Vec::new(), devices: r.get::<_, i64>(1)? as u64 }))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut st = c.prepare("SELECT product FROM territory_products WHERE territory = ?1 ORDER BY product")?;
            for t in &mut out {
                t.products = st.query_map([&t.name], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
            }
            Ok(out)
        })
    }

    fn territories_for_product(&self, product: &str) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT territory FROM territory_products WHERE product = ?1 ORDER BY territory")?;
            Ok(st.query_map([product], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn current_version(&self, bundle_id: &str) -> Result<Option<u64>> {
        self.read(|c| {
            let v: Option<i64> = c.query_row("SELECT MAX(version) FROM bundle_versions WHERE bundle_id = ?1", [bundle_id], |r| r.get(0))?;
            Ok(v.map(|v| v as u64))
        })
    }

    fn insert_bundle_version(&self, v: &NewBundleVersion, audit: Option<&Audited<i64>>) -> Result<i64> {
        let version = i64::try_from(v.version).map_err(|_| Error::InvalidBundle("version out of range".into()))?;
        self.write_audited(audit, |tx| {
            let current: Option<i64> =
                tx.query_row("SELECT MAX(version) FROM bundle_versions WHERE bundle_id = ?1", [&v.bundle_id], |r| r.get(0))?;
            if let Some(cur) = current
                && cur >= version
            {
                return Err(Error::VersionConflict { bundle_id: v.bundle_id.clone(), current: cur as u64, offered: v.version });
            }
            if let Some(claim) = &v.claim_id {
                let held = tx
                    .execute("DELETE FROM publish_claims WHERE claim_id = ?1 AND expires_at_ms > ?2", params![claim, ms(v.published_at)])?;
                if held == 0 {
                    return Err(Error::Unavailable("the publish claim expired or was taken over: publish again".into()));
                }
                tx.execute("DELETE FROM blob_leases WHERE claim_id = ?1", [claim])?;
            }
            let seq = next_feed_seq(tx)?;
            tx.execute(
                "INSERT INTO bundles (id, product) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET product = excluded.product",
                params![v.bundle_id, v.product],
            )?;
            let total: u64 = v.files.iter().map(|(_, s)| s).sum();
            tx.execute(
                "INSERT INTO bundle_versions (bundle_id, version, manifest, signature, product, total_size, zip_sha256, \
                 zip_size, publisher, published_at, feed_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    v.bundle_id,
                    version,
                    v.manifest,
                    v.signature,
                    v.product,
                    total as i64,
                    v.zip_sha256,
                    v.zip_size as i64,
                    v.publisher,
                    time_text(v.published_at),
                    seq
                ],
            )?;
            for t in &v.territories {
                tx.execute(
                    "INSERT OR IGNORE INTO bundle_territories (bundle_id, version, territory) VALUES (?1, ?2, ?3)",
                    params![v.bundle_id, version, t],
                )?;
            }
            for (sha, size) in &v.files {
                tx.execute(
                    "INSERT OR IGNORE INTO bundle_files (bundle_id, version, sha256, size) VALUES (?1, ?2, ?3, ?4)",
                    params![v.bundle_id, version, sha, *size as i64],
                )?;
            }
            Ok(seq)
        })
    }

    // The single writer connection serialises every claim, lease and marker transaction
    // (immediate transactions), so no further locking is needed on SQLite.
    fn claim_publish(&self, claim: &PublishClaim, now: DateTime<Utc>) -> Result<()> {
        let version = i64::try_from(claim.version).map_err(|_| Error::InvalidBundle("version out of range".into()))?;
        self.write(|tx| {
            let current: Option<i64> =
                tx.query_row("SELECT MAX(version) FROM bundle_versions WHERE bundle_id = ?1", [&claim.bundle_id], |r| r.get(0))?;
            if let Some(cur) = current
                && cur >= version
            {
                return Err(Error::VersionConflict { bundle_id: claim.bundle_id.clone(), current: cur as u64, offered: claim.version });
            }
            let live: Option<String> = tx
                .query_row(
                    "SELECT claim_id FROM publish_claims WHERE bundle_id = ?1 AND version = ?2 AND expires_at_ms > ?3",
                    params![claim.bundle_id, version, ms(now)],
                    |r| r.get(0),
                )
                .optional()?;
            if live.is_some() {
                return Err(Error::PublishInProgress { bundle_id: claim.bundle_id.clone(), version: claim.version });
            }
            tx.execute(
                "INSERT INTO publish_claims (bundle_id, version, claim_id, expires_at_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (bundle_id, version) DO UPDATE SET claim_id = excluded.claim_id, expires_at_ms = excluded.expires_at_ms",
                params![claim.bundle_id, version, claim.claim_id, ms(claim.expires_at)],
            )?;
            Ok(())
        })
    }

    fn lease_blobs(&self, claim_id: &str, hashes: &[String], now: DateTime<Utc>) -> Result<Vec<String>> {
        self.write(|tx| {
            let live: Option<String> = tx
                .query_row(
                    "SELECT claim_id FROM publish_claims WHERE claim_id = ?1 AND expires_at_ms > ?2",
                    params![claim_id, ms(now)],
                    |r| r.get(0),
                )
                .optional()?;
            if live.is_none() {
                return Err(Error::Unavailable("the publish claim expired or was taken over: publish again".into()));
            }
            let mut blocked = Vec::new();
            for h in hashes {
                let marked: Option<String> =
                    tx.query_row("SELECT sha256 FROM blob_deletions WHERE sha256 = ?1", [h], |r| r.get(0)).optional()?;
                if marked.is_some() {
                    blocked.push(h.clone());
                    continue;
                }
                tx.execute("INSERT OR IGNORE INTO blob_leases (claim_id, sha256) VALUES (?1, ?2)", params![claim_id, h])?;
            }
            Ok(blocked)
        })
    }

    fn release_claim(&self, claim_id: &str, owner: &str, now: DateTime<Utc>) -> Result<Vec<String>> {
        self.write(|tx| {
            let hashes: Vec<String> = {
                let mut st = tx.prepare("SELECT sha256 FROM blob_leases WHERE claim_id = ?1 ORDER BY sha256")?;
                st.query_map([claim_id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
            };
            let mut marked = Vec::new();
            for h in hashes {
                let n = tx.execute(
                    &format!(
                        "INSERT INTO blob_deletions (sha256, owner, marked_at_ms) SELECT ?1, ?4, ?3 \
                         WHERE NOT {BLOB_REFERENCED} AND NOT {BLOB_LEASED_BY_OTHERS} ON CONFLICT (sha256) DO NOTHING"
                    ),
                    params![h, claim_id, ms(now), owner],
                )?;
                if n > 0 {
                    marked.push(h);
                }
            }
            tx.execute("DELETE FROM blob_leases WHERE claim_id = ?1", [claim_id])?;
            tx.execute("DELETE FROM publish_claims WHERE claim_id = ?1", [claim_id])?;
            Ok(marked)
        })
    }

    fn dead_claims(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT claim_id FROM publish_claims WHERE expires_at_ms <= ?1 \
                 UNION SELECT claim_id FROM blob_leases WHERE claim_id NOT IN (SELECT claim_id FROM publish_claims) ORDER BY 1",
            )?;
            Ok(st.query_map([ms(now)], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn take_stale_blob_deletions(&self, owner: &str, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<Vec<String>> {
        self.write(|tx| {
            let hashes: Vec<String> = {
                let mut st = tx.prepare("SELECT sha256 FROM blob_deletions WHERE marked_at_ms < ?1 ORDER BY sha256")?;
                st.query_map([ms(before)], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
            };
            let mut taken = Vec::new();
            for h in hashes {
                let keep: bool =
                    tx.query_row(&format!("SELECT {BLOB_REFERENCED} OR {BLOB_LEASED_BY_OTHERS}"), params![h, "", ms(now)], |r| r.get(0))?;
                if keep {
                    tx.execute("DELETE FROM blob_deletions WHERE sha256 = ?1", [&h])?;
                } else {
                    tx.execute("UPDATE blob_deletions SET owner = ?2, marked_at_ms = ?3 WHERE sha256 = ?1", params![h, owner, ms(now)])?;
                    taken.push(h);
                }
            }
            Ok(taken)
        })
    }

    fn finish_blob_deletion(&self, sha256: &str, owner: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM blob_deletions WHERE sha256 = ?1 AND owner = ?2", params![sha256, owner])?;
            Ok(())
        })
    }

    fn revoke(&self, bundle_id: &str, reason: &str, now: DateTime<Utc>, audit: Option<&Audited<i64>>) -> Result<i64> {
        self.write_audited(audit, |tx| {
            let known: Option<String> = tx.query_row("SELECT id FROM bundles WHERE id = ?1", [bundle_id], |r| r.get(0)).optional()?;
            if known.is_none() {
                return Err(Error::NotFound(format!("bundle {bundle_id}")));
            }
            let seq = next_feed_seq(tx)?;
            tx.execute(
                "INSERT INTO revocations (bundle_id, reason, revoked_at, feed_seq) VALUES (?1, ?2, ?3, ?4)",
                params![bundle_id, reason, time_text(now), seq],
            )?;
            Ok(seq)
        })
    }

    fn changes(&self, territory: &str, since: i64, limit: usize) -> Result<FeedPage> {
        self.read(|c| {
            let fetch = (limit + 1) as i64;
            // Offered: entitled, not revoked since, and no higher entitled version exists.
            let sql = format!(
                "SELECT v.feed_seq, v.bundle_id, v.version, v.manifest, v.signature, v.total_size FROM bundle_versions v \
                 WHERE v.feed_seq > ?2 AND {ENTITLED} AND NOT {REVOKED} \
                 AND NOT EXISTS (SELECT 1 FROM bundle_versions w JOIN bundle_territories t2 \
                     ON t2.bundle_id = w.bundle_id AND t2.version = w.version AND t2.territory IN (?1, '*') \
                     WHERE w.bundle_id = v.bundle_id AND w.version > v.version) \
                 ORDER BY v.feed_seq LIMIT ?3"
            );
            let mut st = c.prepare(&sql)?;
            let bundles = st
                .query_map(params![territory, since, fetch], |r| {
                    Ok(FeedBundle {
                        feed_seq: r.get(0)?,
                        bundle_id: r.get(1)?,
                        version: r.get::<_, i64>(2)? as u64,
                        manifest: r.get(3)?,
                        signature: r.get(4)?,
                        total_size: r.get::<_, i64>(5)? as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let sql = format!(
                "SELECT r.feed_seq, r.bundle_id, r.reason, r.revoked_at FROM revocations r WHERE r.feed_seq > ?2 \
                 AND EXISTS (SELECT 1 FROM bundle_versions v WHERE v.bundle_id = r.bundle_id AND {ENTITLED}) \
                 ORDER BY r.feed_seq LIMIT ?3"
            );
            let mut st = c.prepare(&sql)?;
            let revocations = st
                .query_map(params![territory, since, fetch], |r| {
                    Ok(FeedRevocation {
                        feed_seq: r.get(0)?,
                        revocation: Revocation {
                            bundle_id: r.get(1)?,
                            reason: r.get(2)?,
                            revoked_at: parse_time(&r.get::<_, String>(3)?)?,
                        },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut st =
                c.prepare("SELECT feed_seq, plan, signature FROM plans WHERE territory = ?1 AND feed_seq > ?2 ORDER BY feed_seq LIMIT ?3")?;
            let plans = st
                .query_map(params![territory, since, fetch], |r| {
                    Ok(FeedPlan { feed_seq: r.get(0)?, plan: r.get(1)?, signature: r.get(2)? })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // Erasures and consents concern HCPs, who are not bound to a territory: every
            // territory's devices receive them.
            let mut st =
                c.prepare_cached("SELECT feed_seq, hcp_id, erased_at FROM erasures WHERE feed_seq > ?1 ORDER BY feed_seq LIMIT ?2")?;
            let erasures = st
                .query_map(params![since, fetch], |r| {
                    Ok(FeedErasure {
                        feed_seq: r.get(0)?,
                        erasure: Erasure { hcp_id: r.get(1)?, erased_at: parse_time(&r.get::<_, String>(2)?)? },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut st = c.prepare_cached(
                "SELECT feed_seq, hcp_id, tracking, updated_at FROM consents WHERE feed_seq > ?1 ORDER BY feed_seq LIMIT ?2",
            )?;
            let consents = st.query_map(params![since, fetch], consent_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            let head: i64 = c.query_row("SELECT value FROM feed_counter WHERE id = 1", [], |r| r.get(0))?;
            let items = FeedPage { bundles, revocations, plans, erasures, consents, ..FeedPage::default() };
            Ok(crate::store::merge_page(items, since, head, limit))
        })
    }

    fn blob_entitled(&self, territory: &str, sha256: &str) -> Result<Option<u64>> {
        self.read(|c| {
            let sql = format!(
                "SELECT f.size FROM bundle_files f JOIN bundle_versions v \
                   ON v.bundle_id = f.bundle_id AND v.version = f.version \
                 WHERE f.sha256 = ?2 AND {ENTITLED} AND NOT {REVOKED} LIMIT 1"
            );
            Ok(c.query_row(&sql, params![territory, sha256], |r| r.get::<_, i64>(0)).optional()?.map(|s| s as u64))
        })
    }

    fn bundle_zip(&self, territory: &str, bundle_id: &str, version: u64) -> Result<Option<(String, u64)>> {
        self.read(|c| {
            let sql = format!(
                "SELECT v.zip_sha256, v.zip_size FROM bundle_versions v \
                 WHERE v.bundle_id = ?2 AND v.version = ?3 AND {ENTITLED} AND NOT {REVOKED}"
            );
            Ok(c.query_row(&sql, params![territory, bundle_id, version as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .optional()?)
        })
    }

    fn latest_entitled_version(&self, territory: &str, bundle_id: &str) -> Result<Option<u64>> {
        self.read(|c| {
            let sql = format!("SELECT MAX(v.version) FROM bundle_versions v WHERE v.bundle_id = ?2 AND {ENTITLED} AND NOT {REVOKED}");
            Ok(c.query_row(&sql, params![territory, bundle_id], |r| r.get::<_, Option<i64>>(0))?.map(|v| v as u64))
        })
    }

    fn bundle_manifest(&self, bundle_id: &str, version: u64) -> Result<Option<Vec<u8>>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT manifest FROM bundle_versions WHERE bundle_id = ?1 AND version = ?2",
                params![bundle_id, version as i64],
                |r| r.get(0),
            )
            .optional()?)
        })
    }
}

impl IngestStore for SqliteStore {
    fn apply_batch(&self, device_id: &str, events: &[CheckedEvent], skew_ms: i64, now: DateTime<Utc>) -> Result<BatchOutcome> {
        self.write(|tx| {
            let facts = ingest_facts(tx, device_id, events)?;
            let changes = crate::ingest::plan(device_id, events, &facts);
            persist_ingest(tx, device_id, &changes, skew_ms, now)?;
            Ok(changes.outcome)
        })
    }

    fn stats(&self) -> Result<HubStats> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, rep_id, territory, created_at, last_seen_at, watermark, skew_ms, events_received, duplicates, \
                 rejected FROM devices WHERE id <> 'microsite' ORDER BY created_at, id",
            )?;
            let devices = st
                .query_map([], |r| {
                    Ok(DeviceStats {
                        device_id: r.get(0)?,
                        rep_id: r.get(1)?,
                        territory: r.get(2)?,
                        created_at: r.get(3)?,
                        last_seen_at: r.get(4)?,
                        watermark: r.get(5)?,
                        skew_ms: r.get(6)?,
                        events_received: r.get::<_, i64>(7)? as u64,
                        duplicates_absorbed: r.get::<_, i64>(8)? as u64,
                        rejected: r.get::<_, i64>(9)? as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let count = |sql: &str| -> Result<u64> { Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64) };
            Ok(HubStats {
                publishers: count("SELECT COUNT(*) FROM publishers")?,
                bundles: count("SELECT COUNT(*) FROM bundles")?,
                bundle_versions: count("SELECT COUNT(*) FROM bundle_versions")?,
                revocations: count("SELECT COUNT(*) FROM revocations")?,
                events_received: devices.iter().map(|d| d.events_received).sum(),
                duplicates_absorbed: devices.iter().map(|d| d.duplicates_absorbed).sum(),
                rejected: devices.iter().map(|d| d.rejected).sum(),
                devices,
                store: "sqlite".into(),
            })
        })
    }

    fn events_for_device(&self, device_id: &str) -> Result<Vec<WireEvent>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT uuid, seq, call_id, type, recorded_at, session, mono_ms, payload FROM events \
                 WHERE device_id = ?1 ORDER BY seq, uuid",
            )?;
            let rows = st
                .query_map([device_id], |r| {
                    let payload: String = r.get(7)?;
                    Ok(WireEvent {
                        uuid: r.get(0)?,
                        seq: r.get(1)?,
                        call_id: r.get(2)?,
                        kind: r.get(3)?,
                        recorded_at: parse_time(&r.get::<_, String>(4)?)?,
                        session: r.get(5)?,
                        mono_ms: r.get(6)?,
                        payload: serde_json::from_str(&payload)
                            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, Box::new(e)))?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}

impl AnalysisStore for SqliteStore {
    fn pending_calls(&self, limit: usize) -> Result<Vec<QueuedCall>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT q.id, q.device_id, q.call_id, \
                   CASE WHEN q.device_id = ?2 THEN COALESCE((SELECT m.territory FROM microsites m \
                        JOIN events e ON e.device_id = q.device_id AND e.call_id = q.call_id AND e.type = 'call_started' \
                        WHERE m.id = json_extract(e.payload, '$.microsite_id')), '*') \
                   ELSE COALESCE((SELECT d.territory FROM devices d WHERE d.id = q.device_id), '') END, \
                   q.attempts \
                 FROM analysis_queue q WHERE q.done_at IS NULL AND q.attempts < ?3 ORDER BY q.id LIMIT ?1",
            )?;
            let rows = st
                .query_map(params![limit as i64, MICROSITE_DEVICE, MAX_ANALYSIS_ATTEMPTS], |r| {
                    Ok(QueuedCall {
                        queue_id: r.get(0)?,
                        device_id: r.get(1)?,
                        call_id: r.get(2)?,
                        territory: r.get(3)?,
                        attempts: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn pending_call_count(&self) -> Result<u64> {
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM analysis_queue WHERE done_at IS NULL", [], |r| r.get::<_, i64>(0))? as u64))
    }

    fn parked_calls(&self) -> Result<Vec<crate::store::ParkedCall>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT device_id, call_id, attempts, COALESCE(last_error, '') FROM analysis_queue \
                 WHERE done_at IS NULL AND attempts >= ?1 ORDER BY id",
            )?;
            let rows = st.query_map([MAX_ANALYSIS_ATTEMPTS], |r| {
                Ok(crate::store::ParkedCall { device_id: r.get(0)?, call_id: r.get(1)?, attempts: r.get(2)?, reason: r.get(3)? })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn pending_calls_by_device(&self) -> Result<Vec<(String, u64)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT device_id, COUNT(*) FROM analysis_queue WHERE done_at IS NULL GROUP BY device_id ORDER BY device_id",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn call_events(&self, device_id: &str, call_id: &str) -> Result<Vec<StoredEvent>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT uuid, seq, type, recorded_at_corrected, payload FROM events WHERE device_id = ?1 AND call_id = ?2 ORDER BY seq",
            )?;
            let rows = st
                .query_map(params![device_id, call_id], |r| {
                    Ok(StoredEvent {
                        uuid: r.get(0)?,
                        seq: r.get(1)?,
                        kind: r.get(2)?,
                        recorded_at_corrected: parse_time(&r.get::<_, String>(3)?)?,
                        payload: json_value(&r.get::<_, String>(4)?)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn load_docs(&self, keys: &[(String, String)]) -> Result<Vec<Option<Doc>>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT doc, version FROM analytics_docs WHERE kind = ?1 AND key = ?2")?;
            keys.iter()
                .map(|(kind, key)| {
                    Ok(st
                        .query_row(params![kind, key], |r| {
                            Ok(Doc { kind: kind.clone(), key: key.clone(), doc: json_value(&r.get::<_, String>(0)?)?, version: r.get(1)? })
                        })
                        .optional()?)
                })
                .collect()
        })
    }

    fn list_docs(&self, kind: &str) -> Result<Vec<Doc>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT key, doc, version FROM analytics_docs WHERE kind = ?1 ORDER BY key")?;
            let rows = st
                .query_map([kind], |r| {
                    Ok(Doc { kind: kind.to_string(), key: r.get(0)?, doc: json_value(&r.get::<_, String>(1)?)?, version: r.get(2)? })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn commit_analysis(&self, commit: &AnalysisCommit) -> Result<bool> {
        let now = time_text(commit.now);
        self.write(|tx| {
            let n =
                tx.execute("UPDATE analysis_queue SET done_at = ?2 WHERE id = ?1 AND done_at IS NULL", params![commit.queue_id, now])?;
            if n != 1 {
                return Err(Error::Conflict);
            }
            for d in &commit.docs {
                let text = json_text(&d.doc)?;
                let n = if d.expected_version == 0 {
                    tx.execute(
                        "INSERT OR IGNORE INTO analytics_docs (kind, key, doc, version, updated_at) VALUES (?1, ?2, ?3, 1, ?4)",
                        params![d.kind, d.key, text, now],
                    )?
                } else {
                    tx.execute(
                        "UPDATE analytics_docs SET doc = ?3, version = version + 1, updated_at = ?5 \
                         WHERE kind = ?1 AND key = ?2 AND version = ?4",
                        params![d.kind, d.key, text, d.expected_version, now],
                    )?
                };
                if n != 1 {
                    return Err(Error::Conflict);
                }
            }
            for p in &commit.plans {
                let seq = next_feed_seq(tx)?;
                tx.execute(
                    "INSERT INTO plans (feed_seq, territory, hcp_id, bundle_id, plan_id, stage, plan, signature, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![seq, p.territory, p.hcp_id, p.bundle_id, p.plan_id, p.stage, p.plan, p.signature, now],
                )?;
            }
            for m in &commit.microsites {
                tx.execute(
                    &format!("INSERT INTO microsites ({MICROSITE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0)"),
                    params![
                        m.id,
                        m.token_sha256,
                        m.hcp_id,
                        m.territory,
                        m.bundle_id,
                        m.bundle_version as i64,
                        json_text(&serde_json::json!(m.slides))?,
                        json_text(&serde_json::json!(m.topics))?,
                        m.reason,
                        time_text(m.created_at),
                        time_text(m.expires_at)
                    ],
                )?;
            }
            Ok(())
        })
        .map(|()| true)
        .or_else(|e| if matches!(e, Error::Conflict) { Ok(false) } else { Err(e) })
    }

    fn analysis_failed(&self, queue_id: i64, error: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("UPDATE analysis_queue SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1", params![queue_id, error])?;
            Ok(())
        })
    }

    fn latest_plan(&self, hcp_id: &str, bundle_id: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT plan, signature FROM plans WHERE hcp_id = ?1 AND bundle_id = ?2 ORDER BY feed_seq DESC LIMIT 1",
                params![hcp_id, bundle_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
    }

    fn newest_plan_of_hcp(&self, hcp_id: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.read(|c| {
            Ok(c.query_row("SELECT plan, signature FROM plans WHERE hcp_id = ?1 ORDER BY feed_seq DESC LIMIT 1", params![hcp_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
        })
    }

    fn microsite_by_token(&self, token_sha256: &str) -> Result<Option<Microsite>> {
        self.read(|c| {
            Ok(c.query_row(&format!("SELECT {MICROSITE_COLUMNS} FROM microsites WHERE token_sha256 = ?1"), [token_sha256], microsite_row)
                .optional()?)
        })
    }

    fn microsites_for(&self, hcp_id: &str) -> Result<Vec<Microsite>> {
        self.read(|c| {
            let mut st = c.prepare(&format!("SELECT {MICROSITE_COLUMNS} FROM microsites WHERE hcp_id = ?1 ORDER BY created_at, id"))?;
            let rows = st.query_map([hcp_id], microsite_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn record_microsite_visit(
        &self,
        microsite_id: &str,
        call_id: &str,
        events: &[(String, serde_json::Value)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let at = time_text(now);
        self.write(|tx| {
            let n = tx.execute("UPDATE microsites SET views = views + 1 WHERE id = ?1", [microsite_id])?;
            if n != 1 {
                return Err(Error::NotFound("microsite".into()));
            }
            let mut seq: i64 = tx.query_row("SELECT watermark FROM devices WHERE id = ?1", [MICROSITE_DEVICE], |r| r.get(0))?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (uuid, device_id, seq, call_id, type, recorded_at, recorded_at_corrected, \
                 session, mono_ms, payload, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 0, 0, ?7, ?6)",
            )?;
            for (kind, payload) in events {
                seq += 1;
                let uuid = uuid::Uuid::new_v4().to_string();
                insert.execute(params![uuid, MICROSITE_DEVICE, seq, call_id, kind, at, json_text(payload)?])?;
            }
            tx.execute(
                "UPDATE devices SET watermark = ?2, last_seen_at = ?3, events_received = events_received + ?4 WHERE id = ?1",
                params![MICROSITE_DEVICE, seq, at, events.len() as i64],
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO analysis_queue (device_id, call_id, queued_at) VALUES (?1, ?2, ?3)",
                params![MICROSITE_DEVICE, call_id, at],
            )?;
            Ok(())
        })
    }
}

impl CrmStore for SqliteStore {
    fn set_hcp_segments(&self, rows: &[(String, String)], now: DateTime<Utc>) -> Result<usize> {
        let now = time_text(now);
        self.write(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO hcps (id, segment, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET segment = excluded.segment, updated_at = excluded.updated_at",
            )?;
            for (id, segment) in rows {
                st.execute(params![id, segment, now])?;
            }
            Ok(rows.len())
        })
    }

    fn hcp_segment(&self, hcp_id: &str) -> Result<Option<String>> {
        self.read(|c| Ok(c.query_row("SELECT segment FROM hcps WHERE id = ?1", [hcp_id], |r| r.get(0)).optional()?))
    }

    fn import_prescriptions(&self, rows: &[Prescription]) -> Result<usize> {
        self.write(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO prescriptions (hcp_id, product, period, count) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (hcp_id, product, period) DO UPDATE SET count = excluded.count",
            )?;
            for p in rows {
                st.execute(params![p.hcp_id, p.product, p.period, p.count as i64])?;
            }
            Ok(rows.len())
        })
    }

    fn prescriptions(&self, hcp_id: &str) -> Result<Vec<Prescription>> {
        self.read(|c| {
            let mut st =
                c.prepare("SELECT hcp_id, product, period, count FROM prescriptions WHERE hcp_id = ?1 ORDER BY product, period")?;
            let rows = st
                .query_map([hcp_id], |r| {
                    Ok(Prescription { hcp_id: r.get(0)?, product: r.get(1)?, period: r.get(2)?, count: r.get::<_, i64>(3)? as u64 })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}

impl PrivacyStore for SqliteStore {
    fn erase_hcp(&self, hcp_id: &str, now: DateTime<Utc>, audit: Option<&Audited<ErasureReport>>) -> Result<ErasureReport> {
        self.write_audited(audit, |tx| {
            // The hub keeps payloads as JSON text: collect the calls first (parsed in Rust, the
            // same on both backends), then delete by (device, call).
            let mut calls = Vec::new();
            {
                let mut st =
                    tx.prepare("SELECT device_id, call_id, payload FROM events WHERE type = 'call_started' AND call_id IS NOT NULL")?;
                let mut rows = st.query([])?;
                while let Some(r) = rows.next()? {
                    let payload: String = r.get(2)?;
                    if crate::store::payload_names_hcp(&payload, hcp_id) {
                        calls.push((r.get::<_, String>(0)?, r.get::<_, String>(1)?));
                    }
                }
            }
            let mut report = ErasureReport { calls: calls.len() as u64, ..ErasureReport::default() };
            for (device, call) in &calls {
                tx.execute(
                    "INSERT OR IGNORE INTO erased_events (uuid, device_id) SELECT uuid, device_id FROM events \
                     WHERE device_id = ?1 AND call_id = ?2",
                    params![device, call],
                )?;
                tx.execute("INSERT OR IGNORE INTO erased_calls (device_id, call_id) VALUES (?1, ?2)", params![device, call])?;
                report.events += tx.execute("DELETE FROM events WHERE device_id = ?1 AND call_id = ?2", params![device, call])? as u64;
                tx.execute("DELETE FROM analysis_queue WHERE device_id = ?1 AND call_id = ?2", params![device, call])?;
            }
            report.docs = tx.execute("DELETE FROM analytics_docs WHERE kind = 'hcp' AND key = ?1", [hcp_id])? as u64;
            report.plans = tx.execute("DELETE FROM plans WHERE hcp_id = ?1", [hcp_id])? as u64;
            report.microsites = tx.execute("DELETE FROM microsites WHERE hcp_id = ?1", [hcp_id])? as u64;
            report.segments = tx.execute("DELETE FROM hcps WHERE id = ?1", [hcp_id])? as u64;
            report.prescriptions = tx.execute("DELETE FROM prescriptions WHERE hcp_id = ?1", [hcp_id])? as u64;
            tx.execute("DELETE FROM consents WHERE hcp_id = ?1", [hcp_id])?;
            let already: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM erasures WHERE hcp_id = ?1)", [hcp_id], |r| r.get(0))?;
            if report.removed_anything() || !already {
                let seq = next_feed_seq(tx)?;
                tx.execute("INSERT INTO erasures (feed_seq, hcp_id, erased_at) VALUES (?1, ?2, ?3)", params![seq, hcp_id, time_text(now)])?;
                report.fed = true;
            }
            Ok(report)
        })
    }

    fn set_consent(&self, hcp_id: &str, tracking: Tracking, now: DateTime<Utc>, audit: Option<&Audited<i64>>) -> Result<i64> {
        self.write_audited(audit, |tx| {
            let seq = next_feed_seq(tx)?;
            tx.execute(
                "INSERT INTO consents (hcp_id, tracking, updated_at, feed_seq) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (hcp_id) DO UPDATE SET tracking = excluded.tracking, updated_at = excluded.updated_at, \
                 feed_seq = excluded.feed_seq",
                params![hcp_id, tracking.as_str(), time_text(now), seq],
            )?;
            Ok(seq)
        })
    }

    fn consent(&self, hcp_id: &str) -> Result<Option<ConsentRecord>> {
        self.read(|c| {
            Ok(c.query_row("SELECT feed_seq, hcp_id, tracking, updated_at FROM consents WHERE hcp_id = ?1", [hcp_id], consent_row)
                .optional()?
                .map(|f| f.consent))
        })
    }
}

impl AuditStore for SqliteStore {
    fn append_audit(&self, e: &NewAuditEntry) -> Result<i64> {
        self.write(|tx| insert_audit(tx, e))
    }

    fn audit_log(&self) -> Result<Vec<AuditEntry>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT id, at, actor, action, subject, details FROM audit_log ORDER BY id")?;
            Ok(st
                .query_map([], |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        at: parse_time(&r.get::<_, String>(1)?)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        subject: r.get(4)?,
                        details: json_value(&r.get::<_, String>(5)?)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}

/// Appends one audit entry inside `tx`.
fn insert_audit(tx: &Transaction<'_>, e: &NewAuditEntry) -> Result<i64> {
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, subject, details) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![time_text(e.at), e.actor, e.action, e.subject, json_text(&e.details)?],
    )?;
    Ok(tx.last_insert_rowid())
}

const CREDENTIAL_COLUMNS: &str = "role, subject, created_at, expires_at, revoked_at";

fn credential_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Credential> {
    let role: String = r.get(0)?;
    let time = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> { r.get::<_, Option<String>>(i)?.map(|t| parse_time(&t)).transpose() };
    Ok(Credential {
        role: TokenRole::parse(&role).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, format!("unknown role {role:?}").into())
        })?,
        subject: r.get(1)?,
        created_at: parse_time(&r.get::<_, String>(2)?)?,
        expires_at: time(3)?,
        revoked_at: time(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Released migrations never change (a database that applied one never runs it again):
    /// a new migration appends its hash here, an edit of a released one fails.
    #[test]
    fn released_migrations_are_frozen() {
        let released = [
            "77934b6466f40930d70b787a5f3e2d1fe0a414e55d18da9827f4c63bfe49ea47", // 001_initial.sql
            "f0657903947ec5c68699f675080c67d89e18b69e984c12bae88c20a436daae6a", // 002_territories.sql
            "83643e58801481b22de923de66a9b2eb1b607be4dbbacde7d4da406fe5faee1a", // 003_closed_loop.sql
            "116ed4af9a530a85708773bae9c1ae750a6fdf7ef70c1baaf7e19b3a49386a33", // 004_security.sql
            "81c52fc0919716c6788582b75112c344416921759956ec3b273e37a3d644f1de", // 005_erasure_consent.sql
            "a386049402ffb93563f77568c84033e4730876b5de97a31acbc28bf828cfd6dd", // 006_publish_claims.sql
        ];
        edetail_sqlite::check_frozen(MIGRATIONS, &released).unwrap();
    }

    /// Every migration applies from every past version and ends at the fresh schema.
    #[test]
    fn migrated_database_equals_fresh_database() {
        edetail_sqlite::check_migrations(MIGRATIONS).unwrap();
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        assert!(matches!(migrate(&mut c), Err(Error::SchemaTooNew { .. })));
    }
}
