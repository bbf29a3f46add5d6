//! The SQLite `HubStore`: one file `hub.sqlite3` in the data directory, WAL with
//! synchronous=FULL (an acknowledged event survives power loss), numbered migrations under
//! `PRAGMA user_version`, one writer connection plus a pool of reader connections; upload batches
//! that arrive together are committed together (`store::group_commit`).

mod analysis;
mod audit;
mod credentials;
mod crm;
mod feed;
mod ingest;
mod insight;
mod privacy;
mod remote;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use edetail_protocol::{ConsentRecord, Erasure, Revocation, Tracking, WireEvent};
use edetail_sqlite::{ReaderPool, lock};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::ingest::{IngestChanges, IngestFacts};
use crate::store::{
    AnalysisCommit, AnalysisStore, AuditStore, BatchOutcome, CheckedEvent, CredentialStore, CrmStore, DeviceRecord, DeviceStats, Doc,
    DocText, ErasureReport, FeedBundle, FeedConsent, FeedErasure, FeedPage, FeedPlan, FeedRevocation, FeedStore, HubStats, IngestStore,
    MAX_ANALYSIS_ATTEMPTS, MICROSITE_DEVICE, Microsite, NewBundleVersion, PRUNE_CHUNK, Prescription, PrivacyStore, PruneReport,
    PublishClaim, QueuedCall, StoredEvent, TargetImport, Territory, target_lists,
};
use crate::store::{
    AuditEntry, Audited, Credential, DEFAULT_DEVICE_TOKEN_DAYS, DEFAULT_PUBLISHER_TOKEN_DAYS, NewAuditEntry, NewCredential, TokenRole,
};

/// Migrations in order; `MIGRATIONS[i]` upgrades from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/001_initial.sql"),
    include_str!("../../../migrations/002_territories.sql"),
    include_str!("../../../migrations/003_closed_loop.sql"),
    include_str!("../../../migrations/004_security.sql"),
    include_str!("../../../migrations/005_erasure_consent.sql"),
    include_str!("../../../migrations/006_publish_claims.sql"),
    include_str!("../../../migrations/007_hot_path_indexes.sql"),
    include_str!("../../../migrations/008_queue_claims.sql"),
    include_str!("../../../migrations/009_hcp_summaries.sql"),
    include_str!("../../../migrations/010_rep_targets.sql"),
    include_str!("../../../migrations/011_event_retention.sql"),
    include_str!("../../../migrations/012_hcp_list_indexes.sql"),
    include_str!("../../../migrations/013_experiment_units.sql"),
    include_str!("../../../migrations/014_remote_sessions.sql"),
];
/// The schema version this code writes. Always `MIGRATIONS.len()`.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
/// File name of the database inside the data directory.
pub const DB_FILE: &str = "hub.sqlite3";

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

/// Times in the claim and lease columns: Unix milliseconds.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
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

/// Reader connections at most: reads beyond this many at once wait for one to come back. Each
/// keeps a page cache of up to 2 MiB.
pub const READERS: usize = 8;

#[derive(Debug)]
pub struct SqliteStore {
    writer: Mutex<Connection>,
    /// Read-only connections, one per concurrent read ([`READERS`] at most): a dashboard page
    /// reading for seconds never makes a device's request wait.
    readers: ReaderPool,
    /// Upload batches waiting to be written together ([`ingest::GroupCommit`]).
    group: crate::store::group_commit::GroupCommit,
}

impl SqliteStore {
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(DB_FILE);
        create_private_file(&path)?;
        let mut writer = Connection::open(&path)?;
        edetail_sqlite::configure_writer(&writer, "FULL")?;
        migrate(&mut writer)?;
        let readers = ReaderPool::open(&path, READERS)?;
        Ok(SqliteStore { writer: Mutex::new(writer), readers, group: Default::default() })
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
        let conn = self.readers.get()?;
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

/// Appends one audit entry inside `tx`.
fn insert_audit(tx: &Transaction<'_>, e: &NewAuditEntry) -> Result<i64> {
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, subject, details) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![time_text(e.at), e.actor, e.action, e.subject, json_text(&e.details)?],
    )?;
    Ok(tx.last_insert_rowid())
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
            "1d144e9cb2e352e66e6fa76d9c0822a7366618af850aab908b99d367ef957ee2", // 007_hot_path_indexes.sql
            "c960690ef7551a60c3fd3cc7f262532d4a5f1ab308f9c32d5f3cbe72787c84dd", // 008_queue_claims.sql
            "8cb077940bc82f971c6e142f0cfd46119fe93ea9d7a3879904011a443bff2acc", // 009_hcp_summaries.sql
            "4197b42f49eb736d27f9e5ea11967dea734dbea7743c97f04616fe9987f31e82", // 010_rep_targets.sql
            "6440cdfef1067ec2a86e441877aa3604442e5de9a1252e8d9873bcd15f9d56de", // 011_event_retention.sql
            "1e42a457a45d0fb00fb1f1dffcef353fa2cf62d5b62a87ad426048aef9a8785d", // 012_hcp_list_indexes.sql
            "a9cad16cee27a152f5441d5df888978bfc48444a120fa360605ab1c4a45587f4", // 013_experiment_units.sql
            "edc34ad2ebd506ecdec0139d65f288a1f7a18a6503f7077d98bc73228f25ff07", // 014_remote_sessions.sql
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

    /// Issue 15: a device authenticating while an operator's page holds a read (for as long as
    /// it likes) is answered at once, from another reader connection.
    #[test]
    fn a_long_dashboard_read_does_not_make_device_requests_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.add_device("dev-1", "rep-1", "north", "tok-hash-1", Utc::now(), None, None).unwrap();
        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            let store = &store;
            let page = s.spawn(move || {
                store.read(|c| {
                    let n: i64 = c.query_row("SELECT COUNT(*) FROM devices", [], |r| r.get(0))?;
                    held_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    Ok(n)
                })
            });
            held_rx.recv().unwrap();
            let t = std::time::Instant::now();
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            s.spawn(move || done_tx.send(store.device_by_token("tok-hash-1").map(|d| d.map(|d| d.id))).unwrap());
            let answer = done_rx.recv_timeout(std::time::Duration::from_secs(5));
            release_tx.send(()).unwrap();
            assert_eq!(answer.expect("the device was answered while the page read").unwrap(), Some("dev-1".to_string()));
            assert!(t.elapsed() < std::time::Duration::from_secs(5));
            assert!(page.join().unwrap().unwrap() >= 1);
        });
    }

    /// Issue 15: the hot-path queries are served by their indexes (`EXPLAIN QUERY PLAN`), never
    /// by a scan of a whole table.
    #[test]
    fn hot_path_queries_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let cases = [
            ("call events", analysis::CALL_EVENTS_SQL, "INDEX events_by_call (device_id=? AND call_id=?)"),
            ("pending calls by device", analysis::PENDING_BY_DEVICE_SQL, "USING INDEX analysis_pending_by_device"),
            ("an HCP's calls", privacy::ERASE_CALLS_SQL, "SEARCH call_hcps USING PRIMARY KEY (hcp_id=?)"),
            ("erasing a call's events", privacy::ERASE_EVENTS_SQL, "INDEX events_by_call (device_id=? AND call_id=?)"),
            ("a rep's plan feed", feed::PLAN_FEED_SQL, "SEARCH p USING INDEX plans_by_territory (territory=? AND feed_seq>?)"),
            ("a rep's plan feed: her list", feed::PLAN_FEED_SQL, "SEARCH t USING PRIMARY KEY (rep_id=? AND hcp_id=?)"),
            ("a rep's plan feed: her calls", feed::PLAN_FEED_SQL, "SEARCH ch USING PRIMARY KEY (hcp_id=?)"),
            ("pruning: a device's events", ingest::PRUNE_HOLD_SQL, "SEARCH e USING INDEX events_by_device (device_id=? AND seq>?)"),
            (
                "pruning: their calls' analysis",
                ingest::PRUNE_HOLD_SQL,
                "SEARCH q USING INDEX sqlite_autoindex_analysis_queue_1 (device_id=? AND call_id=?)",
            ),
        ];
        let c = lock(&store.writer);
        for (what, sql, expected) in cases {
            let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let nulls = std::iter::repeat_n(rusqlite::types::Null, st.parameter_count());
            let plan: Vec<String> = st.query_map(rusqlite::params_from_iter(nulls), |r| r.get(3)).unwrap().map(|r| r.unwrap()).collect();
            assert!(plan.iter().any(|p| p.contains(expected)), "{what}: {expected} not in the plan {plan:?}");
            assert!(!plan.iter().any(|p| p.starts_with("SCAN ") && !p.contains(" USING ")), "{what}: a table is scanned whole: {plan:?}");
        }
    }

    /// Issue 15: the dashboard's queries are served by indexes: a filter many HCPs match walks
    /// the page's order and probes each summary by key (no sort of the matches), one few match
    /// drives by its own index, counts drive by the filters' indexes, and the overview's and
    /// channel page's counts read covering indexes.
    #[test]
    fn dashboard_queries_use_their_indexes() {
        use crate::store::{CHANNEL_REACH_SQL, HcpQuery, HcpSort, STAGE_COUNTS_SQL, SqlDialect, hcp_count_sql, hcp_page_sql};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let q = |f: &dyn Fn(&mut HcpQuery)| {
            let mut q = HcpQuery::default();
            f(&mut q);
            q
        };
        let stage = q(&|q| q.stage = Some("aware".into()));
        let territory = q(&|q| q.territory = Some("north".into()));
        let page = |q: HcpQuery, matches: u64| hcp_page_sql(&q, SqlDialect::Sqlite, matches).0;
        let count = |q: &HcpQuery| hcp_count_sql(q, SqlDialect::Sqlite).0;
        // (what, SQL, expected in the plan, sorted by an index: no temporary sort)
        let cases: Vec<(&str, String, Vec<&str>, bool)> = vec![
            (
                "many at a stage, by latest call",
                page(HcpQuery { sort: HcpSort::LastCall, ..stage.clone() }, 5_000),
                vec!["SCAN s USING INDEX hcp_summaries_by_last_call", "SEARCH t USING PRIMARY KEY (hcp_id=?)"],
                true,
            ),
            ("many at a stage, by id", page(stage.clone(), 5_000), vec!["SEARCH t USING PRIMARY KEY (hcp_id=?)"], true),
            ("few at a stage", page(stage.clone(), 10), vec!["SEARCH t USING COVERING INDEX hcp_stages_by_stage (stage=?)"], false),
            ("counting a stage", count(&stage), vec!["SEARCH t USING COVERING INDEX hcp_stages_by_stage (stage=?)"], true),
            (
                "many in a territory, by calls",
                page(HcpQuery { sort: HcpSort::Calls, ..territory.clone() }, 5_000),
                vec!["SCAN s USING INDEX hcp_summaries_by_calls", "SEARCH ht USING PRIMARY KEY (territory=? AND hcp_id=?)"],
                true,
            ),
            ("few in a territory", page(territory.clone(), 10), vec!["SEARCH ht USING PRIMARY KEY (territory=?)"], true),
            ("counting a territory", count(&territory), vec!["SEARCH ht USING PRIMARY KEY (territory=?)"], true),
            ("few in a segment", page(q(&|q| q.segment = Some("gp".into())), 10), vec!["hcps_by_segment (segment=?)"], false),
            ("counting a segment", count(&q(&|q| q.segment = Some("gp".into()))), vec!["hcps_by_segment (segment=?)"], true),
            ("everyone by latest call", page(q(&|q| q.sort = HcpSort::LastCall), 100_000), vec!["hcp_summaries_by_last_call"], true),
            ("an id prefix", page(q(&|q| q.id_prefix = Some("hcp-1".into())), 100), vec!["(hcp_id>? AND hcp_id<?)"], true),
            ("the stage funnel", STAGE_COUNTS_SQL.to_string(), vec!["COVERING INDEX hcp_stages_by_stage"], true),
            ("channel reach", CHANNEL_REACH_SQL.to_string(), vec!["COVERING INDEX hcp_channels_by_channel"], true),
            ("an HCP's territories", insight::HCP_TERRITORIES_SQL.to_string(), vec!["hcp_territories_by_hcp (hcp_id=?)"], true),
            (
                "the experiment's sums by arm",
                crate::store::experiment_sums_sql(SqlDialect::Sqlite),
                vec!["SEARCH experiment_units USING PRIMARY KEY (product=?)"],
                true,
            ),
            (
                "refreshing an HCP's prescription sums",
                crate::store::experiment_rx_refresh_sql(SqlDialect::Sqlite),
                vec![
                    "SEARCH experiment_units USING INDEX experiment_units_by_hcp (hcp_id=?)",
                    "SEARCH r USING INDEX sqlite_autoindex_prescriptions_1",
                ],
                true,
            ),
        ];
        let c = lock(&store.writer);
        for (what, sql, expected, sorted) in cases {
            let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let nulls = std::iter::repeat_n(rusqlite::types::Null, st.parameter_count());
            let plan: Vec<String> = st.query_map(rusqlite::params_from_iter(nulls), |r| r.get(3)).unwrap().map(|r| r.unwrap()).collect();
            for e in expected {
                assert!(plan.iter().any(|p| p.contains(e)), "{what}: {e} not in the plan {plan:?}");
            }
            assert!(!sorted || !plan.iter().any(|p| p.contains("TEMP B-TREE")), "{what}: sorted in a temporary tree: {plan:?}");
            // Only the list itself is walked (a page stops at its end); other tables by key. A
            // subquery's own rows (a co-routine) are walked as they are made.
            let coroutines: Vec<String> = plan.iter().filter_map(|p| p.strip_prefix("CO-ROUTINE ")).map(|n| format!("SCAN {n}")).collect();
            assert!(
                !plan.iter().any(|p| p.starts_with("SCAN ")
                    && !p.starts_with("SCAN s ")
                    && !p.contains("COVERING INDEX")
                    && !coroutines.iter().any(|c| p == c)),
                "{what}: a table is scanned whole: {plan:?}"
            );
        }
    }

    /// Migration 007 indexes the calls already stored: after the upgrade, erasing an HCP finds
    /// her calls recorded before it (and only hers: another id, a prefix of hers, a payload
    /// without an id are left alone).
    #[test]
    fn the_upgrade_indexes_stored_calls_for_erasure() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut c = Connection::open(dir.path().join(DB_FILE)).unwrap();
            edetail_sqlite::migrate(&mut c, &MIGRATIONS[..6]).unwrap();
            c.execute_batch(
                "INSERT INTO devices (id, rep_id, territory, token_sha256, created_at) VALUES ('dev-1', 'rep', 'north', 'h', '2026-01-01T00:00:00Z'); \
                 INSERT INTO plans (feed_seq, territory, hcp_id, bundle_id, plan_id, stage, plan, signature, created_at) VALUES \
                   (1, 'north', 'hcp-2', 'deck', 'p1', 'aware', x'00', x'00', '2026-01-01T00:00:00Z'), \
                   (2, 'north', 'hcp-2', 'deck', 'p2', 'aware', x'00', x'00', '2026-01-01T00:00:00Z'), \
                   (3, 'south', 'hcp-2', 'deck', 'p3', 'aware', x'00', x'00', '2026-01-01T00:00:00Z');",
            )
            .unwrap();
            let mut seq = 0;
            for (call, payload) in [
                ("c1", r#"{"hcp_id":"hcp-1","bundle_id":"deck"}"#),
                ("c2", r#"{"hcp_id":"hcp-10","bundle_id":"deck"}"#),
                ("c3", r#"{"bundle_id":"deck"}"#),
                ("c4", r#"{"hcp_id":"hcp-1"}"#),
            ] {
                for (kind, payload) in [("call_started", payload), ("slide_enter", r#"{"slide":"s1"}"#)] {
                    seq += 1;
                    c.execute(
                        "INSERT INTO events (uuid, device_id, seq, call_id, type, recorded_at, recorded_at_corrected, session, mono_ms, \
                         payload, received_at) VALUES (?1, 'dev-1', ?2, ?3, ?4, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 1, 0, ?5, \
                         '2026-01-01T00:00:00Z')",
                        params![format!("u{seq}"), seq, call, kind, payload],
                    )
                    .unwrap();
                }
            }
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let plans: Vec<String> = store
            .read(|c| {
                Ok(c.prepare("SELECT plan_id FROM plans ORDER BY feed_seq")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?)
            })
            .unwrap();
        assert_eq!(plans, ["p2", "p3"], "the upgrade keeps each HCP's current plan per territory and deck");
        let report = store.erase_hcp("hcp-1", Utc::now(), None).unwrap();
        assert_eq!((report.calls, report.events), (2, 4), "calls c1 and c4, two events each");
        let left: Vec<Option<String>> = store.events_for_device("dev-1").unwrap().into_iter().map(|e| e.call_id).collect();
        assert_eq!(left, [Some("c2".to_string()), Some("c2".into()), Some("c3".into()), Some("c3".into())]);
    }

    /// Migration 012 puts the HCPs called on before it in their callers' territories (microsite
    /// visits aside), so the HCP list's territory filter covers history.
    #[test]
    fn the_upgrade_places_called_hcps_in_territories() {
        use crate::store::InsightStore as _;
        let dir = tempfile::tempdir().unwrap();
        {
            let mut c = Connection::open(dir.path().join(DB_FILE)).unwrap();
            edetail_sqlite::migrate(&mut c, &MIGRATIONS[..11]).unwrap();
            c.execute_batch(
                "INSERT INTO devices (id, rep_id, territory, token_sha256, created_at) VALUES \
                   ('dev-n', 'rep', 'north', 'h1', '2026-01-01T00:00:00Z'), ('dev-s', 'rep2', 'south', 'h2', '2026-01-01T00:00:00Z'); \
                 INSERT INTO call_hcps (hcp_id, device_id, call_id) VALUES \
                   ('hcp-1', 'dev-n', 'c1'), ('hcp-1', 'dev-n', 'c2'), ('hcp-1', 'dev-s', 'c3'), ('hcp-2', 'microsite', 'v1'), ('hcp-3', 'dev-s', 'c4');",
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let t = store.hcp_territories(&["hcp-1".into(), "hcp-2".into(), "hcp-3".into()]).unwrap();
        assert_eq!(t.get("hcp-1").map(Vec::as_slice), Some(&["north".to_string(), "south".to_string()][..]));
        assert!(!t.contains_key("hcp-2"), "a microsite visit places no one in a territory");
        assert_eq!(t.get("hcp-3").map(Vec::as_slice), Some(&["south".to_string()][..]));
    }
}
