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

mod analysis;
mod audit;
mod credentials;
mod crm;
mod feed;
mod ingest;
mod insight;
mod privacy;
mod remote;

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
use crate::store::sqlite::time_text;
use crate::store::{
    AnalysisCommit, AnalysisStore, AuditStore, BatchOutcome, CheckedEvent, CredentialStore, CrmStore, DeviceRecord, DeviceStats, Doc,
    ErasureReport, FeedBundle, FeedConsent, FeedErasure, FeedPage, FeedPlan, FeedRevocation, FeedStore, HubStats, IngestStore,
    MAX_ANALYSIS_ATTEMPTS, MICROSITE_DEVICE, Microsite, NewBundleVersion, PRUNE_CHUNK, Prescription, PrivacyStore, PruneReport,
    PublishClaim, QueuedCall, StoredEvent, TargetImport, Territory, target_lists,
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
    include_str!("../../../migrations/postgres/001_initial.sql"),
    include_str!("../../../migrations/postgres/002_closed_loop.sql"),
    include_str!("../../../migrations/postgres/003_security.sql"),
    include_str!("../../../migrations/postgres/004_erasure_consent.sql"),
    include_str!("../../../migrations/postgres/005_publish_claims.sql"),
    include_str!("../../../migrations/postgres/006_hot_path_indexes.sql"),
    include_str!("../../../migrations/postgres/007_queue_claims.sql"),
    include_str!("../../../migrations/postgres/008_hcp_summaries.sql"),
    include_str!("../../../migrations/postgres/009_rep_targets.sql"),
    include_str!("../../../migrations/postgres/010_event_retention.sql"),
    include_str!("../../../migrations/postgres/011_hcp_list_indexes.sql"),
    include_str!("../../../migrations/postgres/012_lz4_documents.sql"),
    include_str!("../../../migrations/postgres/013_experiment_units.sql"),
    include_str!("../../../migrations/postgres/014_remote_sessions.sql"),
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
    // The SQLSTATE names the failure without the server's message (which can quote values).
    let what = match e.code() {
        Some(c) => format!("database: {e} (SQLSTATE {})", c.code()),
        None => format!("database: {e}"),
    };
    if e.code() == Some(&SqlState::DISK_FULL) {
        return Error::StorageFull(what);
    }
    if transient { Error::Unavailable(what) } else { Error::Internal(what) }
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
    /// Upload batches of one device waiting to be committed together (`store::group_commit`).
    group: crate::store::group_commit::GroupCommit,
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
        let store = PgStore { pool, runtime: Some(runtime), group: Default::default() };
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

fn json_text(v: &serde_json::Value) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(format!("serializing: {e}")))
}

fn json_value(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| Error::Internal(format!("stored JSON: {e}")))
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
            "424b6f208e4ea9fdd264e2b89cf9e364ae15069112f6831677ecd8ed1413f21c", // 006_hot_path_indexes.sql
            "16769fa93224642bda0e8327bb73b1d3c66760ad46a82f1d75bcc66070a63fe7", // 007_queue_claims.sql
            "5288ac5ceb5c60e3fa487f5c7034a04338c86ec38ff70aac5a5dfba3cf11fd6c", // 008_hcp_summaries.sql
            "890d5311c439ebe28b4e57e9bd5ee9eaae7960b65513a8abfb5fed66a1aa5d6d", // 009_rep_targets.sql
            "3da69f6c60b003f599815fe031946186d247289895fe29d709c30c2e429fc61f", // 010_event_retention.sql
            "71d977e1e44ec8f4963c46d1caa376fd2dda8b454fb9a0737ade804f7692290a", // 011_hcp_list_indexes.sql
            "0022f0d23cae7d76aab0cfed71d7429e1949b670ef194057d2b03c5d22de8b76", // 012_lz4_documents.sql
            "d5a3da521d35b9f485114ca5bef90535e0a69d13109a876a26d11e1b3a3e8129", // 013_experiment_units.sql
            "2c3d2d74aaaa38e194d9c54b8a0c180d43e0dba36223790c5b741b78e92e5cb0", // 014_remote_sessions.sql
        ];
        edetail_sqlite::check_frozen(MIGRATIONS, &released).unwrap();
    }

    /// `EXPLAIN` of `sql` (parameters as literals) with sequential scans disabled: a plan still
    /// showing one has no usable index.
    #[cfg(feature = "testkit")]
    fn explain_without_seq_scans(store: &PgStore, sql: String) -> String {
        store
            .write(move |tx| {
                Box::pin(async move {
                    tx.batch_execute("SET LOCAL enable_seqscan = off").await.map_err(pg_err)?;
                    let rows = tx.query(&format!("EXPLAIN {sql}"), &[]).await.map_err(pg_err)?;
                    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n"))
                })
            })
            .unwrap()
    }

    /// Migration 012: analysis documents are written LZ4-compressed where the server has LZ4
    /// (this test's cluster does: a cluster without it must keep pglz and still migrate).
    #[cfg(feature = "testkit")]
    #[test]
    fn analysis_documents_are_lz4_compressed_where_the_server_has_lz4() {
        let db = crate::testkit::TestDatabase::new();
        let store = PgStore::connect(&db.url, 1).unwrap();
        let (has_lz4, method, stored) = store
            .write(|tx| {
                Box::pin(async move {
                    let has_lz4 = tx.batch_execute("SAVEPOINT probe; CREATE TEMP TABLE lz4_probe (x TEXT COMPRESSION lz4)").await.is_ok();
                    tx.batch_execute("ROLLBACK TO SAVEPOINT probe").await.map_err(pg_err)?;
                    let method: String = tx
                        .query_one(
                            "SELECT attcompression::text FROM pg_attribute WHERE attrelid = 'analytics_docs'::regclass AND attname = 'doc'",
                            &[],
                        )
                        .await
                        .map_err(pg_err)?
                        .get(0);
                    // A document large enough to be compressed, and how it was stored.
                    let doc = format!("{{\"evidence\": \"{}\"}}", "slide s-1 viewed 4200 ms; ".repeat(400));
                    tx.execute(
                        "INSERT INTO analytics_docs (kind, key, doc, version, updated_at) VALUES ('hcp', 'h-lz4', $1, 1, now())",
                        &[&doc],
                    )
                    .await
                    .map_err(pg_err)?;
                    let stored: Option<String> = tx
                        .query_one("SELECT pg_column_compression(doc) FROM analytics_docs WHERE key = 'h-lz4'", &[])
                        .await
                        .map_err(pg_err)?
                        .get(0);
                    Ok((has_lz4, method, stored))
                })
            })
            .unwrap();
        if has_lz4 {
            assert_eq!((method.as_str(), stored.as_deref()), ("l", Some("lz4")));
        } else {
            assert_eq!(stored.as_deref(), Some("pglz"));
        }
    }

    /// Issue 15: the hot-path queries can be served by their indexes (`EXPLAIN` with sequential
    /// scans disabled: without a usable index the plan still shows one).
    #[cfg(feature = "testkit")]
    #[test]
    fn hot_path_queries_use_their_indexes() {
        let db = crate::testkit::TestDatabase::new();
        let store = PgStore::connect(&db.url, 1).unwrap();
        let cases = [
            ("call events", analysis::CALL_EVENTS_SQL, "events_by_call"),
            ("pending calls by device", analysis::PENDING_BY_DEVICE_SQL, "analysis_pending_by_device"),
            ("an HCP's calls", privacy::ERASE_CALLS_SQL, "call_hcps_pkey"),
            ("erasing calls' events", privacy::ERASE_EVENTS_SQL, "events_by_call"),
            ("a rep's plan feed", feed::PLAN_FEED_SQL, "plans_by_territory"),
            ("a rep's plan feed: her list", feed::PLAN_FEED_SQL, "rep_targets_pkey"),
            ("a rep's plan feed: her calls", feed::PLAN_FEED_SQL, "call_hcps_pkey"),
            ("pruning: a device's events", ingest::PRUNE_HOLD_SQL, "events_by_device"),
            ("pruning: their calls' analysis", ingest::PRUNE_HOLD_SQL, "analysis_queue_device_id_call_id_key"),
        ];
        for (what, sql, index) in cases {
            // The pruning cutoff is a time.
            let sql = sql.replace(">= $3", ">= now()");
            // Parameters as literals (EXPLAIN of a statement with `$n` needs their types).
            let sql = sql.replace("$4::text", "'r'::text").replace("$4", "'r'").replace("> $2", "> 0").replace("$3", "100");
            let sql = sql.replace("$1::text[]", "ARRAY['d']::text[]").replace("$2::text[]", "ARRAY['c']::text[]");
            let sql = sql.replace("$1", "'d'").replace("$2", "'c'");
            let plan = explain_without_seq_scans(&store, sql);
            assert!(plan.contains(index), "{what}: {index} not in the plan:\n{plan}");
            let scanned = ["events", "analysis_queue", "call_hcps", "plans", "rep_targets"]
                .iter()
                .any(|t| plan.contains(&format!("Seq Scan on {t}")));
            assert!(!scanned, "{what}: a table is scanned whole:\n{plan}");
        }
    }

    /// Issue 15: the dashboard's queries can be served by indexes on PostgreSQL too (`EXPLAIN`
    /// with sequential scans disabled: without a usable index the plan still shows one).
    #[cfg(feature = "testkit")]
    #[test]
    fn dashboard_queries_use_their_indexes() {
        use crate::store::{CHANNEL_REACH_SQL, HcpQuery, HcpSort, STAGE_COUNTS_SQL, SqlDialect, hcp_count_sql, hcp_page_sql};
        let db = crate::testkit::TestDatabase::new();
        let store = PgStore::connect(&db.url, 1).unwrap();
        let stage = HcpQuery { stage: Some("aware".into()), ..HcpQuery::default() };
        let territory = HcpQuery { territory: Some("north".into()), ..HcpQuery::default() };
        let segment = HcpQuery { segment: Some("gp".into()), ..HcpQuery::default() };
        let page = |q: &HcpQuery, matches: u64| hcp_page_sql(q, SqlDialect::Postgres, matches);
        let count = |q: &HcpQuery| hcp_count_sql(q, SqlDialect::Postgres);
        // (what, (SQL, parameters), indexes of which the plan uses one at least)
        type Case<'a> = (&'a str, (String, Vec<String>), &'a [&'a str]);
        let cases: Vec<Case<'_>> = vec![
            // PostgreSQL plans by its statistics: probing by key or driving by the stage index.
            (
                "many at a stage, by latest call",
                page(&HcpQuery { sort: HcpSort::LastCall, ..stage.clone() }, 5_000),
                &["hcp_stages_pkey", "hcp_stages_by_stage"],
            ),
            ("few at a stage", page(&stage, 10), &["hcp_stages_by_stage"]),
            ("counting a stage", count(&stage), &["hcp_stages_by_stage"]),
            (
                "many in a territory, by calls",
                page(&HcpQuery { sort: HcpSort::Calls, ..territory.clone() }, 5_000),
                &["hcp_territories_pkey"],
            ),
            ("counting a territory", count(&territory), &["hcp_territories_pkey"]),
            ("counting a segment", count(&segment), &["hcps_by_segment"]),
            ("everyone by calls", page(&HcpQuery { sort: HcpSort::Calls, ..HcpQuery::default() }, 100_000), &["hcp_summaries_by_calls"]),
            // Counts over every row of a narrow table: any of its indexes serves them.
            ("the stage funnel", (STAGE_COUNTS_SQL.to_string(), vec![]), &["hcp_stages_by_stage", "hcp_stages_pkey"]),
            ("channel reach", (CHANNEL_REACH_SQL.to_string(), vec![]), &["hcp_channels_by_channel", "hcp_channels_pkey"]),
            (
                "an HCP's territories",
                (insight::HCP_TERRITORIES_SQL.replace("$1", "ARRAY['h']::text[]"), vec![]),
                &["hcp_territories_by_hcp"],
            ),
            (
                "the experiment's sums by arm",
                (crate::store::experiment_sums_sql(SqlDialect::Postgres).replace("$2::float8", "0::float8"), vec!["cardiozen".into()]),
                &["experiment_units_pkey"],
            ),
            (
                "refreshing an HCP's prescription sums",
                (crate::store::experiment_rx_refresh_sql(SqlDialect::Postgres).replace("$1", "ARRAY['h']::text[]"), vec![]),
                &["prescriptions_pkey"],
            ),
        ];
        for (what, (sql, args), indexes) in cases {
            // Parameters as literals, the highest number first ($10 before $1).
            let mut sql = sql;
            for (i, a) in args.iter().enumerate().rev() {
                sql = sql.replace(&format!("${}", i + 1), &format!("'{}'", a.replace('\'', "''")));
            }
            let plan = explain_without_seq_scans(&store, sql);
            assert!(indexes.iter().any(|i| plan.contains(i)), "{what}: none of {indexes:?} in the plan:\n{plan}");
            let scanned = ["hcp_summaries", "hcp_stages", "hcp_channels", "hcp_territories", "hcps", "experiment_units", "prescriptions"]
                .iter()
                .any(|t| plan.contains(&format!("Seq Scan on {t} ")));
            assert!(!scanned, "{what}: a table is scanned whole:\n{plan}");
        }
    }

    /// Migration 006 indexes the calls already stored: after the upgrade, erasing an HCP finds
    /// her calls recorded before it, also one whose payload holds a `\u0000` escape (which
    /// PostgreSQL's jsonb refuses), and only hers.
    #[cfg(feature = "testkit")]
    #[test]
    fn the_upgrade_indexes_stored_calls_for_erasure() {
        let db = crate::testkit::TestDatabase::new();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
            let conn = tokio::spawn(conn);
            for sql in &MIGRATIONS[..5] {
                client.batch_execute(sql).await.unwrap();
            }
            client
                .batch_execute(
                    "CREATE TABLE edetail_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL); \
                     INSERT INTO edetail_schema VALUES (1, 5); \
                     INSERT INTO devices (id, rep_id, territory, token_sha256, created_at) VALUES ('dev-1', 'rep', 'north', 'h', now()); \
                     INSERT INTO plans (feed_seq, territory, hcp_id, bundle_id, plan_id, stage, plan, signature, created_at) VALUES \
                       (1, 'north', 'hcp-2', 'deck', 'p1', 'aware', '\\x00', '\\x00', now()), \
                       (2, 'north', 'hcp-2', 'deck', 'p2', 'aware', '\\x00', '\\x00', now()), \
                       (3, 'south', 'hcp-2', 'deck', 'p3', 'aware', '\\x00', '\\x00', now());",
                )
                .await
                .unwrap();
            let mut seq = 0i64;
            for (call, payload) in [
                ("c1", r#"{"hcp_id":"hcp-1","bundle_id":"deck"}"#),
                ("c2", r#"{"hcp_id":"hcp-10","bundle_id":"deck"}"#),
                ("c3", r#"{"bundle_id":"deck"}"#),
                ("c4", r#"{"hcp_id":"hcp-1","note":"a\u0000b \\u0000"}"#),
            ] {
                for (kind, payload) in [("call_started", payload), ("slide_enter", r#"{"slide":"s1"}"#)] {
                    seq += 1;
                    client
                        .execute(
                            "INSERT INTO events (uuid, device_id, seq, call_id, type, recorded_at, recorded_at_corrected, session, mono_ms, \
                             payload, received_at) VALUES ($1, 'dev-1', $2, $3, $4, now(), now(), 1, 0, $5, now())",
                            &[&format!("u{seq}"), &seq, &call, &kind, &payload],
                        )
                        .await
                        .unwrap();
                }
            }
            drop(client);
            let _ = conn.await;
        });
        let store = PgStore::connect(&db.url, 1).unwrap();
        let plans: Vec<String> = store
            .read(|tx| {
                Box::pin(async move {
                    let rows = tx.query("SELECT plan_id FROM plans ORDER BY feed_seq", &[]).await.map_err(pg_err)?;
                    Ok(rows.iter().map(|r| r.get(0)).collect())
                })
            })
            .unwrap();
        assert_eq!(plans, ["p2", "p3"], "the upgrade keeps each HCP's current plan per territory and deck");
        let report = store.erase_hcp("hcp-1", Utc::now(), None).unwrap();
        assert_eq!((report.calls, report.events), (2, 4), "calls c1 and c4, two events each");
        let left: Vec<Option<String>> = store.events_for_device("dev-1").unwrap().into_iter().map(|e| e.call_id).collect();
        assert_eq!(left, [Some("c2".to_string()), Some("c2".into()), Some("c3".into()), Some("c3".into())]);
    }
}
