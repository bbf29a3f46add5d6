//! The PostgreSQL `HubStore`, for operators who outgrow one machine: several hub processes may
//! share one database. Numbered migrations (`migrations/postgres/`) under an advisory lock, so
//! hubs starting together migrate once. Concurrency rests on row locks: the single
//! `feed_counter` row orders publishes and revocations (feed numbers become visible in commit
//! order, so a device's cursor can never skip one), and each device row serializes that device's
//! batches (watermark and dedupe stay exact when retries land on different hub processes).
//!
//! tokio-postgres on a small runtime owned by the store: the trait is synchronous (handlers
//! call it from the blocking pool), each call runs on the store's runtime and its result comes
//! back over a channel, so no runtime is ever nested. A bounded pool hands out connections;
//! waiting too long for one, or losing the server, answers `Unavailable` (503, retried).

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use edetail_protocol::{ConsentRecord, Erasure, Revocation, Tracking, WireEvent};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, IsolationLevel, NoTls, Transaction};

use crate::error::{Error, Result};
use crate::ingest::{IngestChanges, IngestFacts};
use crate::sqlite::time_text;
use crate::store::{
    AnalysisCommit, AnalysisStore, AuditStore, BatchOutcome, CheckedEvent, CredentialStore, CrmStore, DeviceRecord, DeviceStats, Doc,
    ErasureReport, FeedBundle, FeedConsent, FeedErasure, FeedPage, FeedPlan, FeedRevocation, FeedStore, HubStats, IngestStore,
    MAX_ANALYSIS_ATTEMPTS, MICROSITE_DEVICE, Microsite, NewBundleVersion, Prescription, PrivacyStore, PublishClaim, QueuedCall,
    StoredEvent, Territory,
};
use crate::store::{
    AuditEntry, Audited, Credential, DEFAULT_DEVICE_TOKEN_DAYS, DEFAULT_PUBLISHER_TOKEN_DAYS, NewAuditEntry, NewCredential, TokenRole,
};

/// Connections a hub process keeps at most.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Waiting longer than this for a free connection answers 503.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(20);
/// Worker threads of the store's runtime.
const RUNTIME_WORKERS: usize = 2;
/// Migrations in order; `MIGRATIONS[i]` upgrades from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/001_initial.sql"),
    include_str!("../migrations/postgres/002_closed_loop.sql"),
    include_str!("../migrations/postgres/003_security.sql"),
    include_str!("../migrations/postgres/004_erasure_consent.sql"),
    include_str!("../migrations/postgres/005_publish_claims.sql"),
];
/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
/// Advisory lock key held while migrating ("edetail" in ASCII).
const MIGRATION_LOCK: i64 = 0x0065_6465_7461_696c;
/// Advisory lock key ("erasure" in ASCII) ordering erasures against event writes: every
/// transaction that stores events (an upload batch, a microsite visit) holds it shared, an
/// erasure holds it exclusively, each as its first statement. Without it, on read committed, a
/// batch in flight when an erasure starts (its events not yet visible to the erasure, the
/// erasure's tombstones not yet visible to it) would commit the erased HCP's events after the
/// erasure. Shared holders do not wait for each other, so concurrent ingest is unaffected.
pub const ERASURE_LOCK: i64 = 0x0065_7261_7375_7265;
/// First key ("blob" in ASCII) of the per-blob transaction advisory locks (the two-key form;
/// the second key is the hash's first 32 bits). A blob lease and a deletion marker are only
/// written under the blob's lock, so a publish never leases a blob whose deletion was decided
/// and a deletion is never decided while a lease is being taken (ADR 0016).
pub const BLOB_LOCK_CLASS: i32 = 0x626c_6f62;

/// Takes the advisory lock of each hash (sorted and deduplicated by the caller, so two
/// transactions always lock in the same order and cannot deadlock), held until the end of `tx`.
async fn lock_blob(tx: &Transaction<'_>, sha256: &str) -> Result<()> {
    let key = u32::from_str_radix(sha256.get(..8).unwrap_or(sha256), 16).unwrap_or(0) as i32;
    tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&BLOB_LOCK_CLASS, &key]).await.map_err(pg_err)?;
    Ok(())
}

/// SQL condition: blob `$1` is referenced by a bundle version (a file or its zip).
const BLOB_REFERENCED: &str = "(EXISTS (SELECT 1 FROM bundle_files WHERE sha256 = $1) \
     OR EXISTS (SELECT 1 FROM bundle_versions WHERE zip_sha256 = $1))";
/// SQL condition: blob `$1` is leased by a claim other than `$2` unexpired at `$3`.
const BLOB_LEASED_BY_OTHERS: &str = "EXISTS (SELECT 1 FROM blob_leases l JOIN publish_claims c ON c.claim_id = l.claim_id \
     WHERE l.sha256 = $1 AND l.claim_id <> $2 AND c.expires_at > $3)";

/// The claim expired or was taken over: the publish must start again.
fn claim_lost() -> Error {
    Error::Unavailable("the publish claim expired or was taken over: publish again".into())
}

/// Maps a PostgreSQL failure: lost connections, deadlocks and serialization failures are
/// transient (503, the device retries); anything else is an internal error (details logged,
/// never sent).
fn pg_err(e: tokio_postgres::Error) -> Error {
    use tokio_postgres::error::SqlState;
    let transient = e.is_closed()
        || e.code().is_some_and(|c| {
            *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS
        })
        || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.code() == Some(&SqlState::DISK_FULL) {
        return Error::StorageFull(format!("database: {e}"));
    }
    if transient { Error::Unavailable(format!("database: {e}")) } else { Error::Internal(format!("database: {e}")) }
}

struct Pool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

/// A connection borrowed from the pool; returned on drop unless it broke.
struct Conn<'a> {
    pool: &'a Pool,
    client: Option<Client>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take()
            && !c.is_closed()
        {
            self.pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        }
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("client present until drop")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("client present until drop")
    }
}

impl Pool {
    async fn get(&self) -> Result<Conn<'_>> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Error::Unavailable("all database connections are busy".into()))?
            .map_err(|_| Error::Unavailable("database pool closed".into()))?;
        loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match idle {
                Some(c) if c.is_closed() => continue,
                Some(c) => return Ok(Conn { pool: self, client: Some(c), _permit: permit }),
                None => break,
            }
        }
        let (client, connection) = self.config.connect(NoTls).await.map_err(|e| Error::Unavailable(format!("database: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "database connection ended");
            }
        });
        Ok(Conn { pool: self, client: Some(client), _permit: permit })
    }
}

pub struct PgStore {
    pool: Arc<Pool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may carry a password.
        let c = &self.pool.config;
        f.debug_struct("PgStore").field("hosts", &c.get_hosts()).field("dbname", &c.get_dbname()).finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), migrates the schema (under an
    /// advisory lock) and keeps at most `pool_size` connections.
    pub fn connect(url: &str, pool_size: usize) -> Result<PgStore> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| Error::BadRequest(format!("invalid PostgreSQL URL: {e}")))?;
        config.application_name("edetail-hub");
        config.connect_timeout(Duration::from_secs(10));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_WORKERS)
            .thread_name("edetail-hub-pg")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("runtime: {e}")))?;
        let pool = Arc::new(Pool { config, idle: Mutex::new(Vec::new()), permits: Arc::new(Semaphore::new(pool_size.max(1))) });
        let store = PgStore { pool, runtime: Some(runtime) };
        store.run(|pool| async move {
            let mut c = pool.get().await?;
            migrate(&mut c).await
        })?;
        Ok(store)
    }

    /// Runs `f` on the store's runtime and blocks the calling thread for its result. Works
    /// from plain threads and from another runtime's blocking pool (no nested `block_on`).
    fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Pool>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let pool = self.pool.clone();
        self.runtime.as_ref().expect("runtime lives until drop").spawn(async move {
            let _ = tx.send(f(pool).await);
        });
        rx.recv().map_err(|_| Error::Internal("database task lost".into()))?
    }

    /// Runs `f` in a read-committed transaction on a pooled connection, committing on success.
    fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t Transaction<'t>) -> BoxFut<'t, T> + Send + 'static,
    {
        self.run(|pool| async move {
            let mut c = pool.get().await?;
            let tx = c.transaction().await.map_err(pg_err)?;
            let v = f(&tx).await?;
            tx.commit().await.map_err(pg_err)?;
            Ok(v)
        })
    }

    /// `write`, appending `audit` (with `f`'s outcome) in the same transaction.
    fn write_audited<T, F>(&self, audit: Option<&Audited<T>>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t Transaction<'t>) -> BoxFut<'t, T> + Send + 'static,
    {
        let audit = audit.cloned();
        self.write(move |tx| {
            Box::pin(async move {
                let v = f(tx).await?;
                if let Some(a) = audit {
                    insert_audit(tx, &a.entry_for(&v)).await?;
                }
                Ok(v)
            })
        })
    }

    /// Runs `f` in a read-only repeatable-read transaction (one consistent snapshot).
    fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t Transaction<'t>) -> BoxFut<'t, T> + Send + 'static,
    {
        self.run(|pool| async move {
            let mut c = pool.get().await?;
            let tx = c.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await.map_err(pg_err)?;
            let v = f(&tx).await?;
            tx.commit().await.map_err(pg_err)?;
            Ok(v)
        })
    }
}

type BoxFut<'t, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 't>>;

/// Appends one audit entry inside `tx`.
async fn insert_audit(tx: &Transaction<'_>, e: &NewAuditEntry) -> Result<i64> {
    let details = json_text(&e.details)?;
    let row = tx
        .query_one(
            "INSERT INTO audit_log (at, actor, action, subject, details) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&e.at, &e.actor, &e.action, &e.subject, &details],
        )
        .await
        .map_err(pg_err)?;
    Ok(row.get(0))
}

/// Brings the database to [`SCHEMA_VERSION`]; concurrent hubs wait on the advisory lock.
async fn migrate(c: &mut Client) -> Result<()> {
    let tx = c.transaction().await.map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg_err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS edetail_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)")
        .await
        .map_err(pg_err)?;
    let current: i64 =
        tx.query_opt("SELECT version FROM edetail_schema WHERE id = 1", &[]).await.map_err(pg_err)?.map(|r| r.get(0)).unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew { found: current, supported: SCHEMA_VERSION });
    }
    for sql in MIGRATIONS.iter().skip(current as usize) {
        tx.batch_execute(sql).await.map_err(pg_err)?;
    }
    tx.execute(
        "INSERT INTO edetail_schema (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(pg_err)?;
    tx.commit().await.map_err(pg_err)?;
    Ok(())
}

/// SQL condition: version `v` is offered to territory `$1`.
const ENTITLED: &str = "EXISTS (SELECT 1 FROM bundle_territories t WHERE t.bundle_id = v.bundle_id \
     AND t.version = v.version AND t.territory IN ($1, '*'))";
/// SQL condition: version `v` was revoked after it was published.
const REVOKED: &str = "EXISTS (SELECT 1 FROM revocations r WHERE r.bundle_id = v.bundle_id AND r.feed_seq > v.feed_seq)";

fn json_text(v: &serde_json::Value) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(format!("serializing: {e}")))
}

fn json_value(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| Error::Internal(format!("stored JSON: {e}")))
}

const MICROSITE_COLUMNS: &str =
    "id, token_sha256, hcp_id, territory, bundle_id, bundle_version, slides, topics, reason, created_at, expires_at, views";

fn microsite_row(r: &tokio_postgres::Row) -> Result<Microsite> {
    let list = |s: String| -> Result<Vec<String>> { serde_json::from_str(&s).map_err(|e| Error::Internal(format!("stored JSON: {e}"))) };
    Ok(Microsite {
        id: r.get(0),
        token_sha256: r.get(1),
        hcp_id: r.get(2),
        territory: r.get(3),
        bundle_id: r.get(4),
        bundle_version: r.get::<_, i64>(5) as u64,
        slides: list(r.get(6))?,
        topics: list(r.get(7))?,
        reason: r.get(8),
        created_at: r.get(9),
        expires_at: r.get(10),
        views: r.get::<_, i64>(11) as u64,
    })
}

fn consent_row(r: &tokio_postgres::Row) -> Result<FeedConsent> {
    let tracking: String = r.get(2);
    let tracking = Tracking::parse(&tracking).ok_or_else(|| Error::Internal(format!("stored tracking {tracking:?}")))?;
    Ok(FeedConsent { feed_seq: r.get(0), consent: ConsentRecord { hcp_id: r.get(1), tracking, updated_at: r.get(3) } })
}

async fn next_feed_seq(tx: &Transaction<'_>) -> Result<i64> {
    // Taking this row's lock first orders every publish and revocation.
    Ok(tx.query_one("UPDATE feed_counter SET value = value + 1 WHERE id = 1 RETURNING value", &[]).await.map_err(pg_err)?.get(0))
}

impl CredentialStore for PgStore {
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
        let (id, rep, ter, tok) = (device_id.to_string(), rep_id.to_string(), territory.to_string(), token_sha256.to_string());
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                tx.execute("INSERT INTO territories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&ter, &now])
                    .await
                    .map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO devices (id, rep_id, territory, token_sha256, created_at) VALUES ($1, $2, $3, $4, $5)",
                    &[&id, &rep, &ter, &tok, &now],
                )
                .await
                .map_err(pg_err)?;
                let expires = token_expires_at.unwrap_or(now + chrono::Duration::days(DEFAULT_DEVICE_TOKEN_DAYS));
                tx.execute(
                    "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES ($1, 'device', $2, $3, $4)",
                    &[&tok, &id, &now, &expires],
                )
                .await
                .map_err(pg_err)?;
                Ok(())
            })
        })
    }

    fn add_publisher(&self, name: &str, token_sha256: &str, now: DateTime<Utc>, audit: Option<&Audited<()>>) -> Result<()> {
        let (name, tok) = (name.to_string(), token_sha256.to_string());
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute(
                        "INSERT INTO publishers (name, token_sha256, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                        &[&name, &tok, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                if n == 0 {
                    return Err(Error::BadRequest(format!("publisher {name:?} already exists")));
                }
                let expires = now + chrono::Duration::days(DEFAULT_PUBLISHER_TOKEN_DAYS);
                tx.execute(
                    "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES ($1, 'publisher', $2, $3, $4)",
                    &[&tok, &name, &now, &expires],
                )
                .await
                .map_err(pg_err)?;
                Ok(())
            })
        })
    }

    fn device_by_token(&self, token_sha256: &str) -> Result<Option<DeviceRecord>> {
        let tok = token_sha256.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let row = c
                .query_opt(
                    "SELECT id, rep_id, territory, watermark, skew_ms, last_seen_at FROM devices WHERE token_sha256 = $1 \
                     OR id = (SELECT subject FROM credentials WHERE token_sha256 = $1 AND role = 'device')",
                    &[&tok],
                )
                .await
                .map_err(pg_err)?;
            Ok(row.map(|r| DeviceRecord {
                id: r.get(0),
                rep_id: r.get(1),
                territory: r.get(2),
                watermark: r.get(3),
                skew_ms: r.get(4),
                last_seen_at: r.get(5),
            }))
        })
    }

    fn publisher_by_token(&self, token_sha256: &str) -> Result<Option<String>> {
        let tok = token_sha256.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let row = c
                .query_opt(
                    "SELECT name FROM publishers WHERE token_sha256 = $1 \
                     OR name = (SELECT subject FROM credentials WHERE token_sha256 = $1 AND role = 'publisher')",
                    &[&tok],
                )
                .await
                .map_err(pg_err)?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn touch_device(&self, device_id: &str, now: DateTime<Utc>, skew_ms: Option<i64>) -> Result<()> {
        let id = device_id.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            c.execute("UPDATE devices SET last_seen_at = $2, skew_ms = COALESCE($3, skew_ms) WHERE id = $1", &[&id, &now, &skew_ms])
                .await
                .map_err(pg_err)?;
            Ok(())
        })
    }

    fn credential(&self, token_sha256: &str) -> Result<Option<Credential>> {
        let tok = token_sha256.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let row = c
                .query_opt(&format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE token_sha256 = $1"), &[&tok])
                .await
                .map_err(pg_err)?;
            row.as_ref().map(credential_row).transpose()
        })
    }

    fn credentials_of(&self, role: TokenRole, subject: &str) -> Result<Vec<Credential>> {
        let subject = subject.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let rows = c
                .query(
                    &format!(
                        "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE role = $1 AND subject = $2 ORDER BY created_at, token_sha256"
                    ),
                    &[&role.as_str(), &subject],
                )
                .await
                .map_err(pg_err)?;
            rows.iter().map(credential_row).collect()
        })
    }

    fn issue_credential(&self, n: &NewCredential, audit: Option<&Audited<()>>) -> Result<()> {
        let n = n.clone();
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let exists_sql = match n.role {
                    TokenRole::Device => "SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1 FOR UPDATE)",
                    TokenRole::Publisher => "SELECT EXISTS (SELECT 1 FROM publishers WHERE name = $1 FOR UPDATE)",
                    TokenRole::Operator | TokenRole::Session => "SELECT EXISTS (SELECT 1 FROM operators WHERE name = $1)",
                };
                let exists: bool = tx.query_one(exists_sql, &[&n.subject]).await.map_err(pg_err)?.get(0);
                if !exists || n.subject == MICROSITE_DEVICE && n.role == TokenRole::Device {
                    return Err(Error::NotFound(format!("{} {}", n.role.as_str(), n.subject)));
                }
                if let Some(by) = n.others_expire_by {
                    tx.execute(
                        // An operator's rotation ends its dashboard sessions by the grace end too.
                        "UPDATE credentials SET expires_at = $3 WHERE subject = $2 AND revoked_at IS NULL \
                         AND (role = $1 OR ($1 = 'operator' AND role = 'session')) \
                         AND (expires_at IS NULL OR expires_at > $3)",
                        &[&n.role.as_str(), &n.subject, &by],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                tx.execute(
                    "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                    &[&n.token_sha256, &n.role.as_str(), &n.subject, &n.created_at, &n.expires_at],
                )
                .await
                .map_err(pg_err)?;
                let update = match n.role {
                    TokenRole::Device => Some("UPDATE devices SET token_sha256 = $2 WHERE id = $1"),
                    TokenRole::Publisher => Some("UPDATE publishers SET token_sha256 = $2 WHERE name = $1"),
                    TokenRole::Operator | TokenRole::Session => None,
                };
                if let Some(sql) = update {
                    tx.execute(sql, &[&n.subject, &n.token_sha256]).await.map_err(pg_err)?;
                }
                Ok(())
            })
        })
    }

    fn set_credential_expiry(&self, token_sha256: &str, expires_at: Option<DateTime<Utc>>) -> Result<()> {
        let tok = token_sha256.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute("UPDATE credentials SET expires_at = $2 WHERE token_sha256 = $1", &[&tok, &expires_at])
                    .await
                    .map_err(pg_err)?;
                if n == 0 {
                    return Err(Error::NotFound("token".into()));
                }
                Ok(())
            })
        })
    }

    fn revoke_credentials(&self, role: TokenRole, subject: &str, now: DateTime<Utc>, audit: Option<&Audited<u64>>) -> Result<u64> {
        let subject = subject.to_string();
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let held: i64 = tx
                    .query_one("SELECT COUNT(*) FROM credentials WHERE role = $1 AND subject = $2", &[&role.as_str(), &subject])
                    .await
                    .map_err(pg_err)?
                    .get(0);
                if held == 0 {
                    return Err(Error::NotFound(format!("{} {subject}", role.as_str())));
                }
                let n = tx
                    .execute(
                        "UPDATE credentials SET revoked_at = $3 WHERE subject = $2 AND revoked_at IS NULL \
                         AND (role = $1 OR ($1 = 'operator' AND role = 'session'))",
                        &[&role.as_str(), &subject, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(n)
            })
        })
    }

    fn revoke_credential(&self, token_sha256: &str, now: DateTime<Utc>) -> Result<()> {
        let tok = token_sha256.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute("UPDATE credentials SET revoked_at = $2 WHERE token_sha256 = $1 AND revoked_at IS NULL", &[&tok, &now])
                    .await
                    .map_err(pg_err)?;
                Ok(())
            })
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
        let (name, tok) = (name.to_string(), token_sha256.to_string());
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute("INSERT INTO operators (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", &[&name, &now])
                    .await
                    .map_err(pg_err)?;
                if n == 0 {
                    return Err(Error::BadRequest(format!("operator {name:?} already exists")));
                }
                tx.execute(
                    "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES ($1, 'operator', $2, $3, $4)",
                    &[&tok, &name, &now, &expires_at],
                )
                .await
                .map_err(pg_err)?;
                Ok(())
            })
        })
    }
}

impl FeedStore for PgStore {
    fn set_territory(&self, name: &str, products: &[String], now: DateTime<Utc>) -> Result<()> {
        let (name, products) = (name.to_string(), products.to_vec());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute("INSERT INTO territories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&name, &now])
                    .await
                    .map_err(pg_err)?;
                tx.execute("DELETE FROM territory_products WHERE territory = $1", &[&name]).await.map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO territory_products (territory, product) SELECT $1, p FROM UNNEST($2::text[]) AS p ON CONFLICT DO NOTHING",
                    &[&name, &products],
                )
                .await
                .map_err(pg_err)?;
                Ok(())
            })
        })
    }

    fn territories(&self) -> Result<Vec<Territory>> {
        self.read(|tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT t.name, (SELECT COUNT(*) FROM devices d WHERE d.territory = t.name), \
                         COALESCE((SELECT array_agg(p.product ORDER BY p.product) FROM territory_products p WHERE p.territory = t.name), '{}') \
                         FROM territories t ORDER BY t.name",
                        &[],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(rows
                    .iter()
                    .map(|r| Territory { name: r.get(0), devices: r.get::<_, i64>(1) as u64, products: r.get(2) })
                    .collect())
            })
        })
    }

    fn territories_for_product(&self, product: &str) -> Result<Vec<String>> {
        let product = product.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query("SELECT territory FROM territory_products WHERE product = $1 ORDER BY territory", &[&product])
                    .await
                    .map_err(pg_err)?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
    }

    fn current_version(&self, bundle_id: &str) -> Result<Option<u64>> {
        let id = bundle_id.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let v: Option<i64> =
                c.query_one("SELECT MAX(version) FROM bundle_versions WHERE bundle_id = $1", &[&id]).await.map_err(pg_err)?.get(0);
            Ok(v.map(|v| v as u64))
        })
    }

    fn insert_bundle_version(&self, v: &NewBundleVersion, audit: Option<&Audited<i64>>) -> Result<i64> {
        let version = i64::try_from(v.version).map_err(|_| Error::InvalidBundle("version out of range".into()))?;
        let v = v.clone();
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let seq = next_feed_seq(tx).await?;
                let current: Option<i64> = tx
                    .query_one("SELECT MAX(version) FROM bundle_versions WHERE bundle_id = $1", &[&v.bundle_id])
                    .await
                    .map_err(pg_err)?
                    .get(0);
                if let Some(cur) = current
                    && cur >= version
                {
                    return Err(Error::VersionConflict { bundle_id: v.bundle_id.clone(), current: cur as u64, offered: v.version });
                }
                if let Some(claim) = &v.claim_id {
                    let held = tx
                        .execute("DELETE FROM publish_claims WHERE claim_id = $1 AND expires_at > $2", &[claim, &v.published_at])
                        .await
                        .map_err(pg_err)?;
                    if held == 0 {
                        return Err(claim_lost());
                    }
                    tx.execute("DELETE FROM blob_leases WHERE claim_id = $1", &[claim]).await.map_err(pg_err)?;
                }
                tx.execute(
                    "INSERT INTO bundles (id, product) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET product = excluded.product",
                    &[&v.bundle_id, &v.product],
                )
                .await
                .map_err(pg_err)?;
                let total: i64 = v.files.iter().map(|(_, s)| *s as i64).sum();
                tx.execute(
                    "INSERT INTO bundle_versions (bundle_id, version, manifest, signature, product, total_size, zip_sha256, \
                     zip_size, publisher, published_at, feed_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    &[
                        &v.bundle_id,
                        &version,
                        &v.manifest,
                        &v.signature,
                        &v.product,
                        &total,
                        &v.zip_sha256,
                        &(v.zip_size as i64),
                        &v.publisher,
                        &v.published_at,
                        &seq,
                    ],
                )
                .await
                .map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO bundle_territories (bundle_id, version, territory) SELECT $1, $2, t FROM UNNEST($3::text[]) AS t \
                     ON CONFLICT DO NOTHING",
                    &[&v.bundle_id, &version, &v.territories],
                )
                .await
                .map_err(pg_err)?;
                let (shas, sizes): (Vec<String>, Vec<i64>) = v.files.iter().map(|(s, n)| (s.clone(), *n as i64)).unzip();
                tx.execute(
                    "INSERT INTO bundle_files (bundle_id, version, sha256, size) SELECT $1, $2, f.sha, f.size \
                     FROM UNNEST($3::text[], $4::bigint[]) AS f(sha, size) ON CONFLICT DO NOTHING",
                    &[&v.bundle_id, &version, &shas, &sizes],
                )
                .await
                .map_err(pg_err)?;
                Ok(seq)
            })
        })
    }

    fn claim_publish(&self, claim: &PublishClaim, now: DateTime<Utc>) -> Result<()> {
        let version = i64::try_from(claim.version).map_err(|_| Error::InvalidBundle("version out of range".into()))?;
        let claim = claim.clone();
        self.write(move |tx| {
            Box::pin(async move {
                // The claim first, the version check after: a statement sees what committed
                // before it started, so a version recorded while the claim waited on the row
                // of the claim it ended is seen by the check.
                let claimed = tx
                    .query_opt(
                        "INSERT INTO publish_claims (bundle_id, version, claim_id, expires_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (bundle_id, version) DO UPDATE SET claim_id = excluded.claim_id, expires_at = excluded.expires_at \
                         WHERE publish_claims.expires_at <= $5 RETURNING claim_id",
                        &[&claim.bundle_id, &version, &claim.claim_id, &claim.expires_at, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                let current: Option<i64> = tx
                    .query_one("SELECT MAX(version) FROM bundle_versions WHERE bundle_id = $1", &[&claim.bundle_id])
                    .await
                    .map_err(pg_err)?
                    .get(0);
                if let Some(cur) = current
                    && cur >= version
                {
                    return Err(Error::VersionConflict { bundle_id: claim.bundle_id.clone(), current: cur as u64, offered: claim.version });
                }
                if claimed.is_none() {
                    return Err(Error::PublishInProgress { bundle_id: claim.bundle_id.clone(), version: claim.version });
                }
                Ok(())
            })
        })
    }

    fn lease_blobs(&self, claim_id: &str, hashes: &[String], now: DateTime<Utc>) -> Result<Vec<String>> {
        let claim = claim_id.to_string();
        let mut hashes = hashes.to_vec();
        hashes.sort();
        hashes.dedup();
        self.write(move |tx| {
            Box::pin(async move {
                let live = tx
                    .query_opt("SELECT 1 FROM publish_claims WHERE claim_id = $1 AND expires_at > $2 FOR SHARE", &[&claim, &now])
                    .await
                    .map_err(pg_err)?;
                if live.is_none() {
                    return Err(claim_lost());
                }
                let mut blocked = Vec::new();
                for h in hashes {
                    lock_blob(tx, &h).await?;
                    if tx.query_opt("SELECT 1 FROM blob_deletions WHERE sha256 = $1", &[&h]).await.map_err(pg_err)?.is_some() {
                        blocked.push(h);
                        continue;
                    }
                    tx.execute("INSERT INTO blob_leases (claim_id, sha256) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&claim, &h])
                        .await
                        .map_err(pg_err)?;
                }
                Ok(blocked)
            })
        })
    }

    fn release_claim(&self, claim_id: &str, owner: &str, now: DateTime<Utc>) -> Result<Vec<String>> {
        let (claim, owner) = (claim_id.to_string(), owner.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                let rows =
                    tx.query("SELECT sha256 FROM blob_leases WHERE claim_id = $1 ORDER BY sha256", &[&claim]).await.map_err(pg_err)?;
                let mut marked = Vec::new();
                for h in rows.iter().map(|r| r.get::<_, String>(0)) {
                    lock_blob(tx, &h).await?;
                    let row = tx
                        .query_opt(
                            &format!(
                                "INSERT INTO blob_deletions (sha256, owner, marked_at) SELECT $1, $4, $3 \
                                 WHERE NOT {BLOB_REFERENCED} AND NOT {BLOB_LEASED_BY_OTHERS} ON CONFLICT (sha256) DO NOTHING \
                                 RETURNING sha256"
                            ),
                            &[&h, &claim, &now, &owner],
                        )
                        .await
                        .map_err(pg_err)?;
                    if row.is_some() {
                        marked.push(h);
                    }
                }
                tx.execute("DELETE FROM blob_leases WHERE claim_id = $1", &[&claim]).await.map_err(pg_err)?;
                tx.execute("DELETE FROM publish_claims WHERE claim_id = $1", &[&claim]).await.map_err(pg_err)?;
                Ok(marked)
            })
        })
    }

    fn dead_claims(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT claim_id FROM publish_claims WHERE expires_at <= $1 \
                         UNION SELECT claim_id FROM blob_leases WHERE claim_id NOT IN (SELECT claim_id FROM publish_claims) ORDER BY 1",
                        &[&now],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
    }

    fn take_stale_blob_deletions(&self, owner: &str, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<Vec<String>> {
        let owner = owner.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                let rows =
                    tx.query("SELECT sha256 FROM blob_deletions WHERE marked_at < $1 ORDER BY sha256", &[&before]).await.map_err(pg_err)?;
                let mut taken = Vec::new();
                for h in rows.iter().map(|r| r.get::<_, String>(0)) {
                    lock_blob(tx, &h).await?;
                    let keep: bool = tx
                        .query_one(&format!("SELECT {BLOB_REFERENCED} OR {BLOB_LEASED_BY_OTHERS}"), &[&h, &"", &now])
                        .await
                        .map_err(pg_err)?
                        .get(0);
                    if keep {
                        tx.execute("DELETE FROM blob_deletions WHERE sha256 = $1", &[&h]).await.map_err(pg_err)?;
                        continue;
                    }
                    let n = tx
                        .execute(
                            "UPDATE blob_deletions SET owner = $2, marked_at = $3 WHERE sha256 = $1 AND marked_at < $4",
                            &[&h, &owner, &now, &before],
                        )
                        .await
                        .map_err(pg_err)?;
                    if n > 0 {
                        taken.push(h);
                    }
                }
                Ok(taken)
            })
        })
    }

    fn finish_blob_deletion(&self, sha256: &str, owner: &str) -> Result<()> {
        let (h, owner) = (sha256.to_string(), owner.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute("DELETE FROM blob_deletions WHERE sha256 = $1 AND owner = $2", &[&h, &owner]).await.map_err(pg_err)?;
                Ok(())
            })
        })
    }

    fn revoke(&self, bundle_id: &str, reason: &str, now: DateTime<Utc>, audit: Option<&Audited<i64>>) -> Result<i64> {
        let (id, reason) = (bundle_id.to_string(), reason.to_string());
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let seq = next_feed_seq(tx).await?;
                if tx.query_opt("SELECT id FROM bundles WHERE id = $1", &[&id]).await.map_err(pg_err)?.is_none() {
                    return Err(Error::NotFound(format!("bundle {id}")));
                }
                tx.execute(
                    "INSERT INTO revocations (bundle_id, reason, revoked_at, feed_seq) VALUES ($1, $2, $3, $4)",
                    &[&id, &reason, &now, &seq],
                )
                .await
                .map_err(pg_err)?;
                Ok(seq)
            })
        })
    }

    fn changes(&self, territory: &str, since: i64, limit: usize) -> Result<FeedPage> {
        let territory = territory.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let fetch = (limit + 1) as i64;
                let sql = format!(
                    "SELECT v.feed_seq, v.bundle_id, v.version, v.manifest, v.signature, v.total_size FROM bundle_versions v \
                     WHERE v.feed_seq > $2 AND {ENTITLED} AND NOT {REVOKED} \
                     AND NOT EXISTS (SELECT 1 FROM bundle_versions w JOIN bundle_territories t2 \
                         ON t2.bundle_id = w.bundle_id AND t2.version = w.version AND t2.territory IN ($1, '*') \
                         WHERE w.bundle_id = v.bundle_id AND w.version > v.version) \
                     ORDER BY v.feed_seq LIMIT $3"
                );
                let bundles = tx
                    .query(&sql, &[&territory, &since, &fetch])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| FeedBundle {
                        feed_seq: r.get(0),
                        bundle_id: r.get(1),
                        version: r.get::<_, i64>(2) as u64,
                        manifest: r.get(3),
                        signature: r.get(4),
                        total_size: r.get::<_, i64>(5) as u64,
                    })
                    .collect();
                let sql = format!(
                    "SELECT r.feed_seq, r.bundle_id, r.reason, r.revoked_at FROM revocations r WHERE r.feed_seq > $2 \
                     AND EXISTS (SELECT 1 FROM bundle_versions v WHERE v.bundle_id = r.bundle_id AND {ENTITLED}) \
                     ORDER BY r.feed_seq LIMIT $3"
                );
                let revocations = tx
                    .query(&sql, &[&territory, &since, &fetch])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| FeedRevocation {
                        feed_seq: r.get(0),
                        revocation: Revocation { bundle_id: r.get(1), reason: r.get(2), revoked_at: r.get(3) },
                    })
                    .collect();
                let plans = tx
                    .query(
                        "SELECT feed_seq, plan, signature FROM plans WHERE territory = $1 AND feed_seq > $2 ORDER BY feed_seq LIMIT $3",
                        &[&territory, &since, &fetch],
                    )
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| FeedPlan { feed_seq: r.get(0), plan: r.get(1), signature: r.get(2) })
                    .collect();
                // Erasures and consents concern HCPs, not territories: every device gets them.
                let erasures = tx
                    .query(
                        "SELECT feed_seq, hcp_id, erased_at FROM erasures WHERE feed_seq > $1 ORDER BY feed_seq LIMIT $2",
                        &[&since, &fetch],
                    )
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| FeedErasure { feed_seq: r.get(0), erasure: Erasure { hcp_id: r.get(1), erased_at: r.get(2) } })
                    .collect();
                let consents = tx
                    .query(
                        "SELECT feed_seq, hcp_id, tracking, updated_at FROM consents WHERE feed_seq > $1 ORDER BY feed_seq LIMIT $2",
                        &[&since, &fetch],
                    )
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(consent_row)
                    .collect::<Result<Vec<_>>>()?;
                let head: i64 = tx.query_one("SELECT value FROM feed_counter WHERE id = 1", &[]).await.map_err(pg_err)?.get(0);
                let items = FeedPage { bundles, revocations, plans, erasures, consents, ..FeedPage::default() };
                Ok(crate::store::merge_page(items, since, head, limit))
            })
        })
    }

    fn blob_entitled(&self, territory: &str, sha256: &str) -> Result<Option<u64>> {
        let (territory, sha) = (territory.to_string(), sha256.to_string());
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let sql = format!(
                "SELECT f.size FROM bundle_files f JOIN bundle_versions v ON v.bundle_id = f.bundle_id AND v.version = f.version \
                 WHERE f.sha256 = $2 AND {ENTITLED} AND NOT {REVOKED} LIMIT 1"
            );
            let row = c.query_opt(&sql, &[&territory, &sha]).await.map_err(pg_err)?;
            Ok(row.map(|r| r.get::<_, i64>(0) as u64))
        })
    }

    fn bundle_zip(&self, territory: &str, bundle_id: &str, version: u64) -> Result<Option<(String, u64)>> {
        let (territory, id) = (territory.to_string(), bundle_id.to_string());
        let version = version as i64;
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let sql = format!(
                "SELECT v.zip_sha256, v.zip_size FROM bundle_versions v \
                 WHERE v.bundle_id = $2 AND v.version = $3 AND {ENTITLED} AND NOT {REVOKED}"
            );
            let row = c.query_opt(&sql, &[&territory, &id, &version]).await.map_err(pg_err)?;
            Ok(row.map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64)))
        })
    }

    fn latest_entitled_version(&self, territory: &str, bundle_id: &str) -> Result<Option<u64>> {
        let (territory, id) = (territory.to_string(), bundle_id.to_string());
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let sql = format!("SELECT MAX(v.version) FROM bundle_versions v WHERE v.bundle_id = $2 AND {ENTITLED} AND NOT {REVOKED}");
            let row = c.query_one(&sql, &[&territory, &id]).await.map_err(pg_err)?;
            Ok(row.get::<_, Option<i64>>(0).map(|v| v as u64))
        })
    }

    fn bundle_manifest(&self, bundle_id: &str, version: u64) -> Result<Option<Vec<u8>>> {
        let b = bundle_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .query_opt("SELECT manifest FROM bundle_versions WHERE bundle_id = $1 AND version = $2", &[&b, &(version as i64)])
                    .await
                    .map_err(pg_err)?
                    .map(|r| r.get(0)))
            })
        })
    }
}

impl IngestStore for PgStore {
    fn apply_batch(&self, device_id: &str, events: &[CheckedEvent], skew_ms: i64, now: DateTime<Utc>) -> Result<BatchOutcome> {
        let device_id = device_id.to_string();
        let events = events.to_vec();
        self.write(move |tx| Box::pin(async move { apply_batch(tx, device_id, events, skew_ms, now).await }))
    }

    fn stats(&self) -> Result<HubStats> {
        self.read(|tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT id, rep_id, territory, created_at, last_seen_at, watermark, skew_ms, events_received, duplicates, \
                         rejected FROM devices WHERE id <> 'microsite' ORDER BY created_at, id",
                        &[],
                    )
                    .await
                    .map_err(pg_err)?;
                let devices: Vec<DeviceStats> = rows
                    .iter()
                    .map(|r| DeviceStats {
                        device_id: r.get(0),
                        rep_id: r.get(1),
                        territory: r.get(2),
                        created_at: time_text(r.get(3)),
                        last_seen_at: r.get::<_, Option<DateTime<Utc>>>(4).map(time_text),
                        watermark: r.get(5),
                        skew_ms: r.get(6),
                        events_received: r.get::<_, i64>(7) as u64,
                        duplicates_absorbed: r.get::<_, i64>(8) as u64,
                        rejected: r.get::<_, i64>(9) as u64,
                    })
                    .collect();
                let r = tx
                    .query_one(
                        "SELECT (SELECT COUNT(*) FROM publishers), (SELECT COUNT(*) FROM bundles), \
                         (SELECT COUNT(*) FROM bundle_versions), (SELECT COUNT(*) FROM revocations)",
                        &[],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(HubStats {
                    publishers: r.get::<_, i64>(0) as u64,
                    bundles: r.get::<_, i64>(1) as u64,
                    bundle_versions: r.get::<_, i64>(2) as u64,
                    revocations: r.get::<_, i64>(3) as u64,
                    events_received: devices.iter().map(|d| d.events_received).sum(),
                    duplicates_absorbed: devices.iter().map(|d| d.duplicates_absorbed).sum(),
                    rejected: devices.iter().map(|d| d.rejected).sum(),
                    devices,
                    store: "postgres".into(),
                })
            })
        })
    }

    fn events_for_device(&self, device_id: &str) -> Result<Vec<WireEvent>> {
        let id = device_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT uuid, seq, call_id, type, recorded_at, session, mono_ms, payload FROM events \
                         WHERE device_id = $1 ORDER BY seq, uuid",
                        &[&id],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter()
                    .map(|r| {
                        let payload: String = r.get(7);
                        Ok(WireEvent {
                            uuid: r.get(0),
                            seq: r.get(1),
                            call_id: r.get(2),
                            kind: r.get(3),
                            recorded_at: r.get(4),
                            session: r.get(5),
                            mono_ms: r.get(6),
                            payload: serde_json::from_str(&payload).map_err(|e| Error::Internal(format!("stored payload: {e}")))?,
                        })
                    })
                    .collect()
            })
        })
    }
}

impl AnalysisStore for PgStore {
    fn pending_calls(&self, limit: usize) -> Result<Vec<QueuedCall>> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT q.id, q.device_id, q.call_id, \
                           CASE WHEN q.device_id = $2 THEN COALESCE((SELECT m.territory FROM microsites m \
                                JOIN events e ON e.device_id = q.device_id AND e.call_id = q.call_id AND e.type = 'call_started' \
                                WHERE m.id = (e.payload::jsonb ->> 'microsite_id') LIMIT 1), '*') \
                           ELSE COALESCE((SELECT d.territory FROM devices d WHERE d.id = q.device_id), '') END, \
                           q.attempts \
                         FROM analysis_queue q WHERE q.done_at IS NULL AND q.attempts < $3 ORDER BY q.id LIMIT $1",
                        &[&(limit as i64), &MICROSITE_DEVICE, &MAX_ANALYSIS_ATTEMPTS],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(rows
                    .iter()
                    .map(|r| QueuedCall {
                        queue_id: r.get(0),
                        device_id: r.get(1),
                        call_id: r.get(2),
                        territory: r.get(3),
                        attempts: r.get(4),
                    })
                    .collect())
            })
        })
    }

    fn pending_call_count(&self) -> Result<u64> {
        self.read(move |tx| {
            Box::pin(async move {
                let n: i64 = tx.query_one("SELECT COUNT(*) FROM analysis_queue WHERE done_at IS NULL", &[]).await.map_err(pg_err)?.get(0);
                Ok(n as u64)
            })
        })
    }

    fn parked_calls(&self) -> Result<Vec<crate::store::ParkedCall>> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT device_id, call_id, attempts::bigint, COALESCE(last_error, '') FROM analysis_queue \
                         WHERE done_at IS NULL AND attempts >= $1 ORDER BY id",
                        &[&MAX_ANALYSIS_ATTEMPTS],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(rows
                    .iter()
                    .map(|r| crate::store::ParkedCall { device_id: r.get(0), call_id: r.get(1), attempts: r.get(2), reason: r.get(3) })
                    .collect())
            })
        })
    }

    fn pending_calls_by_device(&self) -> Result<Vec<(String, u64)>> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT device_id, COUNT(*) FROM analysis_queue WHERE done_at IS NULL GROUP BY device_id ORDER BY device_id",
                        &[],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64)).collect())
            })
        })
    }

    fn call_events(&self, device_id: &str, call_id: &str) -> Result<Vec<StoredEvent>> {
        let (d, c) = (device_id.to_string(), call_id.to_string());
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT uuid, seq, type, recorded_at_corrected, payload FROM events WHERE device_id = $1 AND call_id = $2 ORDER BY seq",
                        &[&d, &c],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter()
                    .map(|r| {
                        Ok(StoredEvent {
                            uuid: r.get(0),
                            seq: r.get(1),
                            kind: r.get(2),
                            recorded_at_corrected: r.get(3),
                            payload: json_value(r.get(4))?,
                        })
                    })
                    .collect()
            })
        })
    }

    fn load_docs(&self, keys: &[(String, String)]) -> Result<Vec<Option<Doc>>> {
        let keys = keys.to_vec();
        self.read(move |tx| {
            Box::pin(async move {
                let mut out = Vec::with_capacity(keys.len());
                for (kind, key) in keys {
                    let row = tx
                        .query_opt("SELECT doc, version FROM analytics_docs WHERE kind = $1 AND key = $2", &[&kind, &key])
                        .await
                        .map_err(pg_err)?;
                    out.push(match row {
                        Some(r) => Some(Doc { doc: json_value(r.get(0))?, version: r.get(1), kind, key }),
                        None => None,
                    });
                }
                Ok(out)
            })
        })
    }

    fn list_docs(&self, kind: &str) -> Result<Vec<Doc>> {
        let kind = kind.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query("SELECT key, doc, version FROM analytics_docs WHERE kind = $1 ORDER BY key", &[&kind])
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(|r| Ok(Doc { kind: kind.clone(), key: r.get(0), doc: json_value(r.get(1))?, version: r.get(2) })).collect()
            })
        })
    }

    fn commit_analysis(&self, commit: &AnalysisCommit) -> Result<bool> {
        let commit = commit.clone();
        let r = self.write(move |tx| {
            Box::pin(async move {
                let now = commit.now;
                let n = tx
                    .execute("UPDATE analysis_queue SET done_at = $2 WHERE id = $1 AND done_at IS NULL", &[&commit.queue_id, &now])
                    .await
                    .map_err(pg_err)?;
                if n != 1 {
                    return Err(Error::Conflict);
                }
                for d in &commit.docs {
                    let text = json_text(&d.doc)?;
                    let n = if d.expected_version == 0 {
                        tx.execute(
                            "INSERT INTO analytics_docs (kind, key, doc, version, updated_at) VALUES ($1, $2, $3, 1, $4) \
                             ON CONFLICT (kind, key) DO NOTHING",
                            &[&d.kind, &d.key, &text, &now],
                        )
                        .await
                    } else {
                        tx.execute(
                            "UPDATE analytics_docs SET doc = $3, version = version + 1, updated_at = $5 \
                             WHERE kind = $1 AND key = $2 AND version = $4",
                            &[&d.kind, &d.key, &text, &d.expected_version, &now],
                        )
                        .await
                    }
                    .map_err(pg_err)?;
                    if n != 1 {
                        return Err(Error::Conflict);
                    }
                }
                for p in &commit.plans {
                    let seq = next_feed_seq(tx).await?;
                    tx.execute(
                        "INSERT INTO plans (feed_seq, territory, hcp_id, bundle_id, plan_id, stage, plan, signature, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        &[&seq, &p.territory, &p.hcp_id, &p.bundle_id, &p.plan_id, &p.stage, &p.plan, &p.signature, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                for m in &commit.microsites {
                    tx.execute(
                        &format!("INSERT INTO microsites ({MICROSITE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0)"),
                        &[
                            &m.id,
                            &m.token_sha256,
                            &m.hcp_id,
                            &m.territory,
                            &m.bundle_id,
                            &(m.bundle_version as i64),
                            &json_text(&serde_json::json!(m.slides))?,
                            &json_text(&serde_json::json!(m.topics))?,
                            &m.reason,
                            &m.created_at,
                            &m.expires_at,
                        ],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                Ok(())
            })
        });
        match r {
            Ok(()) => Ok(true),
            Err(Error::Conflict) => Ok(false),
            // Two workers inserting the same new document: the loser's unique violation.
            Err(e) => Err(e),
        }
    }

    fn analysis_failed(&self, queue_id: i64, error: &str) -> Result<()> {
        let error = error.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute("UPDATE analysis_queue SET attempts = attempts + 1, last_error = $2 WHERE id = $1", &[&queue_id, &error])
                    .await
                    .map_err(pg_err)?;
                Ok(())
            })
        })
    }

    fn latest_plan(&self, hcp_id: &str, bundle_id: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let (h, b) = (hcp_id.to_string(), bundle_id.to_string());
        self.read(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .query_opt(
                        "SELECT plan, signature FROM plans WHERE hcp_id = $1 AND bundle_id = $2 ORDER BY feed_seq DESC LIMIT 1",
                        &[&h, &b],
                    )
                    .await
                    .map_err(pg_err)?
                    .map(|r| (r.get(0), r.get(1))))
            })
        })
    }

    fn newest_plan_of_hcp(&self, hcp_id: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let h = hcp_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .query_opt("SELECT plan, signature FROM plans WHERE hcp_id = $1 ORDER BY feed_seq DESC LIMIT 1", &[&h])
                    .await
                    .map_err(pg_err)?
                    .map(|r| (r.get(0), r.get(1))))
            })
        })
    }

    fn microsite_by_token(&self, token_sha256: &str) -> Result<Option<Microsite>> {
        let t = token_sha256.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt(&format!("SELECT {MICROSITE_COLUMNS} FROM microsites WHERE token_sha256 = $1"), &[&t])
                    .await
                    .map_err(pg_err)?
                    .map(|r| microsite_row(&r))
                    .transpose()
            })
        })
    }

    fn microsites_for(&self, hcp_id: &str) -> Result<Vec<Microsite>> {
        let h = hcp_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query(&format!("SELECT {MICROSITE_COLUMNS} FROM microsites WHERE hcp_id = $1 ORDER BY created_at, id"), &[&h])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(microsite_row)
                    .collect()
            })
        })
    }

    fn record_microsite_visit(
        &self,
        microsite_id: &str,
        call_id: &str,
        events: &[(String, serde_json::Value)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (m, c, events) = (microsite_id.to_string(), call_id.to_string(), events.to_vec());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&ERASURE_LOCK]).await.map_err(pg_err)?;
                let n = tx.execute("UPDATE microsites SET views = views + 1 WHERE id = $1", &[&m]).await.map_err(pg_err)?;
                if n != 1 {
                    return Err(Error::NotFound("microsite".into()));
                }
                let mut seq: i64 = tx
                    .query_one("SELECT watermark FROM devices WHERE id = $1 FOR UPDATE", &[&MICROSITE_DEVICE])
                    .await
                    .map_err(pg_err)?
                    .get(0);
                for (kind, payload) in &events {
                    seq += 1;
                    let uuid = uuid::Uuid::new_v4().to_string();
                    tx.execute(
                        "INSERT INTO events (uuid, device_id, seq, call_id, type, recorded_at, recorded_at_corrected, session, mono_ms, \
                         payload, received_at) VALUES ($1, $2, $3, $4, $5, $6, $6, 0, 0, $7, $6)",
                        &[&uuid, &MICROSITE_DEVICE, &seq, &c, kind, &now, &json_text(payload)?],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                tx.execute(
                    "UPDATE devices SET watermark = $2, last_seen_at = $3, events_received = events_received + $4 WHERE id = $1",
                    &[&MICROSITE_DEVICE, &seq, &now, &(events.len() as i64)],
                )
                .await
                .map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO analysis_queue (device_id, call_id, queued_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&MICROSITE_DEVICE, &c, &now],
                )
                .await
                .map_err(pg_err)?;
                Ok(())
            })
        })
    }
}

impl CrmStore for PgStore {
    fn set_hcp_segments(&self, rows: &[(String, String)], now: DateTime<Utc>) -> Result<usize> {
        let rows = rows.to_vec();
        self.write(move |tx| {
            Box::pin(async move {
                for (id, segment) in &rows {
                    tx.execute(
                        "INSERT INTO hcps (id, segment, updated_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (id) DO UPDATE SET segment = excluded.segment, updated_at = excluded.updated_at",
                        &[id, segment, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                Ok(rows.len())
            })
        })
    }

    fn hcp_segment(&self, hcp_id: &str) -> Result<Option<String>> {
        let h = hcp_id.to_string();
        self.read(move |tx| {
            Box::pin(
                async move { Ok(tx.query_opt("SELECT segment FROM hcps WHERE id = $1", &[&h]).await.map_err(pg_err)?.map(|r| r.get(0))) },
            )
        })
    }

    fn import_prescriptions(&self, rows: &[Prescription]) -> Result<usize> {
        let rows = rows.to_vec();
        self.write(move |tx| {
            Box::pin(async move {
                for p in &rows {
                    tx.execute(
                        "INSERT INTO prescriptions (hcp_id, product, period, count) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (hcp_id, product, period) DO UPDATE SET count = excluded.count",
                        &[&p.hcp_id, &p.product, &p.period, &(p.count as i64)],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                Ok(rows.len())
            })
        })
    }

    fn prescriptions(&self, hcp_id: &str) -> Result<Vec<Prescription>> {
        let h = hcp_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .query("SELECT hcp_id, product, period, count FROM prescriptions WHERE hcp_id = $1 ORDER BY product, period", &[&h])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| Prescription { hcp_id: r.get(0), product: r.get(1), period: r.get(2), count: r.get::<_, i64>(3) as u64 })
                    .collect())
            })
        })
    }
}

impl PrivacyStore for PgStore {
    fn erase_hcp(&self, hcp_id: &str, now: DateTime<Utc>, audit: Option<&Audited<ErasureReport>>) -> Result<ErasureReport> {
        let hcp = hcp_id.to_string();
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                // Wait for event writes in flight and keep new ones out until this commits
                // (`ERASURE_LOCK`), then order the feed item on the feed counter row.
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ERASURE_LOCK]).await.map_err(pg_err)?;
                let seq = next_feed_seq(tx).await?;
                let calls: Vec<(String, String)> = tx
                    .query("SELECT device_id, call_id, payload FROM events WHERE type = 'call_started' AND call_id IS NOT NULL", &[])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .filter(|r| crate::store::payload_names_hcp(r.get(2), &hcp))
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                let mut report = ErasureReport { calls: calls.len() as u64, ..ErasureReport::default() };
                if !calls.is_empty() {
                    let devices: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
                    let ids: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
                    const SEL: &str = "FROM events e JOIN UNNEST($1::text[], $2::text[]) AS c(d, i) ON e.device_id = c.d AND e.call_id = c.i";
                    tx.execute(
                        &format!("INSERT INTO erased_events (uuid, device_id) SELECT e.uuid, e.device_id {SEL} ON CONFLICT DO NOTHING"),
                        &[&devices, &ids],
                    )
                    .await
                    .map_err(pg_err)?;
                    tx.execute(
                        "INSERT INTO erased_calls (device_id, call_id) SELECT d, i FROM UNNEST($1::text[], $2::text[]) AS c(d, i) \
                         ON CONFLICT DO NOTHING",
                        &[&devices, &ids],
                    )
                    .await
                    .map_err(pg_err)?;
                    report.events = tx
                        .execute(
                            "DELETE FROM events e USING UNNEST($1::text[], $2::text[]) AS c(d, i) WHERE e.device_id = c.d AND e.call_id = c.i",
                            &[&devices, &ids],
                        )
                        .await
                        .map_err(pg_err)?;
                    tx.execute(
                        "DELETE FROM analysis_queue q USING UNNEST($1::text[], $2::text[]) AS c(d, i) WHERE q.device_id = c.d AND q.call_id = c.i",
                        &[&devices, &ids],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                let del = |sql: &'static str| {
                    let hcp = hcp.clone();
                    async move { tx.execute(sql, &[&hcp]).await.map_err(pg_err) }
                };
                report.docs = del("DELETE FROM analytics_docs WHERE kind = 'hcp' AND key = $1").await?;
                report.plans = del("DELETE FROM plans WHERE hcp_id = $1").await?;
                report.microsites = del("DELETE FROM microsites WHERE hcp_id = $1").await?;
                report.segments = del("DELETE FROM hcps WHERE id = $1").await?;
                report.prescriptions = del("DELETE FROM prescriptions WHERE hcp_id = $1").await?;
                del("DELETE FROM consents WHERE hcp_id = $1").await?;
                let already: bool = tx
                    .query_one("SELECT EXISTS (SELECT 1 FROM erasures WHERE hcp_id = $1)", &[&hcp])
                    .await
                    .map_err(pg_err)?
                    .get(0);
                if report.removed_anything() || !already {
                    tx.execute("INSERT INTO erasures (feed_seq, hcp_id, erased_at) VALUES ($1, $2, $3)", &[&seq, &hcp, &now])
                        .await
                        .map_err(pg_err)?;
                    report.fed = true;
                }
                // Otherwise the taken feed number stays unused: the feed tolerates gaps.
                Ok(report)
            })
        })
    }

    fn set_consent(&self, hcp_id: &str, tracking: Tracking, now: DateTime<Utc>, audit: Option<&Audited<i64>>) -> Result<i64> {
        let hcp = hcp_id.to_string();
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let seq = next_feed_seq(tx).await?;
                tx.execute(
                    "INSERT INTO consents (hcp_id, tracking, updated_at, feed_seq) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (hcp_id) DO UPDATE SET tracking = excluded.tracking, updated_at = excluded.updated_at, \
                     feed_seq = excluded.feed_seq",
                    &[&hcp, &tracking.as_str(), &now, &seq],
                )
                .await
                .map_err(pg_err)?;
                Ok(seq)
            })
        })
    }

    fn consent(&self, hcp_id: &str) -> Result<Option<ConsentRecord>> {
        let hcp = hcp_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt("SELECT feed_seq, hcp_id, tracking, updated_at FROM consents WHERE hcp_id = $1", &[&hcp])
                    .await
                    .map_err(pg_err)?
                    .map(|r| consent_row(&r).map(|f| f.consent))
                    .transpose()
            })
        })
    }
}

impl AuditStore for PgStore {
    fn append_audit(&self, e: &NewAuditEntry) -> Result<i64> {
        let e = e.clone();
        self.write(move |tx| Box::pin(async move { insert_audit(tx, &e).await }))
    }

    fn audit_log(&self) -> Result<Vec<AuditEntry>> {
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let rows = c.query("SELECT id, at, actor, action, subject, details FROM audit_log ORDER BY id", &[]).await.map_err(pg_err)?;
            rows.iter()
                .map(|r| {
                    Ok(AuditEntry {
                        id: r.get(0),
                        at: r.get(1),
                        actor: r.get(2),
                        action: r.get(3),
                        subject: r.get(4),
                        details: json_value(r.get(5))?,
                    })
                })
                .collect()
        })
    }
}

const CREDENTIAL_COLUMNS: &str = "role, subject, created_at, expires_at, revoked_at";

fn credential_row(r: &tokio_postgres::Row) -> Result<Credential> {
    let role: String = r.get(0);
    Ok(Credential {
        role: TokenRole::parse(&role).ok_or_else(|| Error::Internal(format!("unknown credential role {role:?}")))?,
        subject: r.get(1),
        created_at: r.get(2),
        expires_at: r.get(3),
        revoked_at: r.get(4),
    })
}

/// One upload batch in one transaction: the device row is locked first (so the same device's
/// batches arriving at several hub processes apply one after the other), the facts are read,
/// [`crate::ingest::plan`] decides, and the changes go in with one multi-row insert per table.
async fn apply_batch(
    tx: &Transaction<'_>,
    device_id: String,
    events: Vec<CheckedEvent>,
    skew_ms: i64,
    now: DateTime<Utc>,
) -> Result<BatchOutcome> {
    let facts = ingest_facts(tx, &device_id, &events).await?;
    let changes = crate::ingest::plan(&device_id, &events, &facts);
    persist_ingest(tx, &device_id, &changes, skew_ms, now).await?;
    Ok(changes.outcome)
}

/// Reads what decides an upload batch ([`crate::ingest::IngestFacts`]): the erasure lock
/// (shared) and the device row (locked: the device's batches are serialized), then the stored
/// facts in one pipelined round of queries.
async fn ingest_facts(tx: &Transaction<'_>, device_id: &str, events: &[CheckedEvent]) -> Result<IngestFacts> {
    let (_, device) = futures_util::future::try_join(
        tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&ERASURE_LOCK]),
        tx.query_opt("SELECT watermark FROM devices WHERE id = $1 FOR UPDATE", &[&device_id]),
    )
    .await
    .map_err(pg_err)?;
    let watermark: i64 = device.ok_or_else(|| Error::NotFound(format!("device {device_id}")))?.get(0);
    let w = IngestFacts::wanted(events);
    let (holders, known, seen) = futures_util::future::try_join3(
        tx.query("SELECT seq, uuid FROM events WHERE device_id = $1 AND seq = ANY($2)", &[&device_id, &w.seqs]),
        tx.query(
            "SELECT 'o', uuid, device_id FROM events WHERE uuid = ANY($1) \
             UNION ALL SELECT 'u', uuid, '' FROM erased_events WHERE uuid = ANY($1) \
             UNION ALL SELECT 'c', call_id, '' FROM erased_calls WHERE device_id = $2 AND call_id = ANY($3)",
            &[&w.uuids, &device_id, &w.call_ids],
        ),
        tx.query("SELECT seq FROM device_seqs WHERE device_id = $1 AND seq > $2 ORDER BY seq", &[&device_id, &watermark]),
    )
    .await
    .map_err(pg_err)?;
    let mut facts = IngestFacts { watermark, ..IngestFacts::default() };
    for r in holders {
        facts.seq_holders.entry(r.get(0)).or_default().push(r.get(1));
    }
    for r in known {
        match r.get::<_, &str>(0) {
            "o" => {
                facts.owners.insert(r.get(1), r.get(2));
            }
            "u" => {
                facts.erased_uuids.insert(r.get(1));
            }
            _ => {
                facts.erased_calls.insert(r.get(1));
            }
        }
    }
    facts.seen_above = seen.iter().map(|r| r.get(0)).collect();
    Ok(facts)
}

type PgFut<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<u64, tokio_postgres::Error>> + Send + 'a>>;

/// Persists a planned upload batch ([`crate::ingest::plan`]) and the device's counters: one
/// `UNNEST` insert per table, sent together (pipelined).
async fn persist_ingest(tx: &Transaction<'_>, device_id: &str, ch: &IngestChanges<'_>, skew_ms: i64, now: DateTime<Utc>) -> Result<()> {
    let mut cols = EventColumns::default();
    for (e, corrected) in &ch.inserts {
        cols.push(e, *corrected)?;
    }
    // Kept for support; a hostile "uuid" may hold NUL, which text columns refuse.
    let rej_uuid: Vec<String> = ch.rejections.iter().map(|r| r.uuid.replace('\0', "\u{fffd}")).collect();
    let rej_seq: Vec<i64> = ch.rejections.iter().map(|r| r.seq).collect();
    let rej_reason: Vec<String> = ch.rejections.iter().map(|r| r.reason.clone()).collect();
    let watermark = ch.outcome.watermark;
    let (accepted, duplicates) = (ch.outcome.accepted.len() as i64, ch.outcome.duplicates.len() as i64);
    let event_params: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
        &device_id,
        &now,
        &cols.uuid,
        &cols.seq,
        &cols.call_id,
        &cols.kind,
        &cols.recorded_at,
        &cols.corrected,
        &cols.session,
        &cols.mono_ms,
        &cols.payload,
    ];
    let queue_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&device_id, &ch.enqueue_calls, &now];
    let seq_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&device_id, &ch.remember_seqs];
    let forget_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&device_id, &watermark];
    let device_params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] =
        [&device_id, &watermark, &skew_ms, &now, &accepted, &duplicates, &rej_uuid, &rej_seq, &rej_reason];
    let mut writes: Vec<PgFut<'_>> = Vec::new();
    if !ch.inserts.is_empty() {
        writes.push(Box::pin(tx.execute(
            "INSERT INTO events (uuid, device_id, seq, call_id, type, recorded_at, recorded_at_corrected, session, mono_ms, \
             payload, received_at) \
             SELECT u.uuid, $1, u.seq, u.call_id, u.type, u.recorded_at, u.corrected, u.session, u.mono_ms, u.payload, $2 \
             FROM UNNEST($3::text[], $4::bigint[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::bigint[], \
                         $10::bigint[], $11::text[]) \
               AS u(uuid, seq, call_id, type, recorded_at, corrected, session, mono_ms, payload) \
             ON CONFLICT (uuid) DO NOTHING",
            &event_params,
        )));
    }
    if !ch.enqueue_calls.is_empty() {
        writes.push(Box::pin(tx.execute(
            "INSERT INTO analysis_queue (device_id, call_id, queued_at) SELECT $1, c, $3 FROM UNNEST($2::text[]) AS q(c) \
             ON CONFLICT (device_id, call_id) DO NOTHING",
            &queue_params,
        )));
    }
    if !ch.remember_seqs.is_empty() {
        writes.push(Box::pin(tx.execute(
            "INSERT INTO device_seqs (device_id, seq) SELECT $1, s FROM UNNEST($2::bigint[]) AS s ON CONFLICT DO NOTHING",
            &seq_params,
        )));
    }
    if watermark > ch.old_watermark {
        writes.push(Box::pin(tx.execute("DELETE FROM device_seqs WHERE device_id = $1 AND seq <= $2", &forget_params)));
    }
    // The rejections and the device's counters in one statement (only new rejection rows count).
    writes.push(Box::pin(tx.execute(
        "WITH r AS (INSERT INTO rejected_events (uuid, device_id, seq, reason, received_at) \
             SELECT r.uuid, $1, r.seq, r.reason, $4 FROM UNNEST($7::text[], $8::bigint[], $9::text[]) AS r(uuid, seq, reason) \
             ON CONFLICT DO NOTHING RETURNING 1) \
         UPDATE devices SET watermark = $2, skew_ms = $3, last_seen_at = $4, events_received = events_received + $5, \
         duplicates = duplicates + $6, rejected = rejected + (SELECT COUNT(*) FROM r) WHERE id = $1",
        &device_params,
    )));
    let done = futures_util::future::try_join_all(writes).await.map_err(pg_err)?;
    if !ch.inserts.is_empty() && done[0] != ch.inserts.len() as u64 {
        // Another device's batch stored one of these uuids since the facts were read: retry,
        // and the event is then classified against it.
        return Err(Error::Unavailable("a concurrent upload stored some of these events first: retry".into()));
    }
    Ok(())
}

#[derive(Default)]
struct EventColumns {
    uuid: Vec<String>,
    seq: Vec<i64>,
    call_id: Vec<Option<String>>,
    kind: Vec<String>,
    recorded_at: Vec<DateTime<Utc>>,
    corrected: Vec<DateTime<Utc>>,
    session: Vec<i64>,
    mono_ms: Vec<i64>,
    payload: Vec<String>,
}

impl EventColumns {
    fn push(&mut self, e: &WireEvent, corrected: DateTime<Utc>) -> Result<()> {
        self.uuid.push(e.uuid.clone());
        self.seq.push(e.seq);
        self.call_id.push(e.call_id.clone());
        self.kind.push(e.kind.clone());
        self.recorded_at.push(e.recorded_at);
        self.corrected.push(corrected);
        self.session.push(e.session);
        self.mono_ms.push(e.mono_ms);
        self.payload.push(serde_json::to_string(&e.payload).map_err(|err| Error::Internal(err.to_string()))?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Released migrations never change (a database that applied one never runs it again):
    /// a new migration appends its hash here, an edit of a released one fails.
    #[test]
    fn released_migrations_are_frozen() {
        let released = [
            "a141f21794d8137daa404306cc5715399e802ff5ed58db499b1da847ed0e67eb", // 001_initial.sql
            "1a00d32160b54398b9b4f5914450ea79e7ef54e44543b806b39d0a861071043b", // 002_closed_loop.sql
            "a069cfaac2766339d29dc3c5aae721a0803e09385ba2ab3d7a93fa8e5aab894b", // 003_security.sql
            "0b23d20b2afc31bfc137728a305c7faca7b274612a99a707fed67c882d654f06", // 004_erasure_consent.sql
            "a58bc8a52a7cc52735e4afa28c61e5a7c4077909e759bd315dfa6cd70d668b39", // 005_publish_claims.sql
        ];
        edetail_sqlite::check_frozen(MIGRATIONS, &released).unwrap();
    }
}
