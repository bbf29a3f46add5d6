//! SQLite support shared by the device runtime and the hub: the connection plumbing (the
//! writer's and the reader's pragmas, the read-only reader, a pool of readers, the
//! poison-tolerant lock), the wait for SQLCipher's set-up before keying, and
//! schema migrations: numbered SQL scripts applied in order under `PRAGMA user_version`, and
//! the check that a migrated database equals a fresh one.

mod cipher;
mod pool;

pub use cipher::{CIPHER_READY_WAIT, wait_for_cipher};
pub use pool::{PooledReader, READER_WAIT, ReaderPool};

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

/// How long a connection waits for another one's lock before answering `SQLITE_BUSY`.
pub const BUSY_TIMEOUT_MS: i64 = 5000;

/// Configures the writer connection: WAL (readers never block the writer), `synchronous`
/// (`FULL`: a commit survives power loss), foreign keys, the busy timeout, temp tables in memory.
pub fn configure_writer(conn: &Connection, synchronous: &str) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "busy_timeout", BUSY_TIMEOUT_MS)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Opens the reader connection of the database at `path`: read-only, without SQLite's own
/// mutex (the caller keeps it behind a `Mutex`). Configure it with [`configure_reader`] (after
/// keying it, where the database is encrypted).
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
}

/// Configures the reader connection: the busy timeout, temp tables in memory.
pub fn configure_reader(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "busy_timeout", BUSY_TIMEOUT_MS)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Locks a connection. A panic while holding the lock cannot leave SQLite half-written
/// (transactions roll back on drop), so a poisoned lock is still safe to use.
pub fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why `migrate` failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database was written by newer code; opening it here could lose data.
    #[error("the database schema is version {found}, newer than this build supports ({supported})")]
    TooNew { found: i64, supported: i64 },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Brings the database to version `migrations.len()`: `migrations[i]` upgrades version `i` to
/// `i + 1`. All steps run in one immediate transaction (another process migrating the same
/// file waits, then finds nothing left to do); a failure leaves the database as it was.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<(), MigrateError> {
    let supported = migrations.len() as i64;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > supported {
        return Err(MigrateError::TooNew { found: current, supported });
    }
    for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

/// Every table, index, trigger and view with its SQL, by name.
fn schema(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut st = conn.prepare("SELECT name, COALESCE(sql, '') FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name")?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

/// For tests: every script applies, from a fresh database and from every older version (the
/// earlier steps applied one by one, as past builds did), and each path ends with exactly the
/// schema and version of a fresh database. `Err` says which start version failed and how.
pub fn check_migrations(migrations: &[&str]) -> Result<(), String> {
    let mut fresh = Connection::open_in_memory().map_err(|e| e.to_string())?;
    migrate(&mut fresh, migrations).map_err(|e| format!("fresh database: {e}"))?;
    let want = schema(&fresh).map_err(|e| e.to_string())?;
    for start in 0..migrations.len() {
        let mut old = Connection::open_in_memory().map_err(|e| e.to_string())?;
        for (i, sql) in migrations.iter().enumerate().take(start) {
            old.execute_batch(sql).map_err(|e| format!("migration {}: {e}", i + 1))?;
            old.pragma_update(None, "user_version", (i + 1) as i64).map_err(|e| e.to_string())?;
        }
        migrate(&mut old, migrations).map_err(|e| format!("from version {start}: {e}"))?;
        let got = schema(&old).map_err(|e| e.to_string())?;
        if got != want {
            let differs: Vec<&str> = want
                .iter()
                .chain(&got)
                .filter(|item| !(want.contains(item) && got.contains(item)))
                .map(|(name, _)| name.as_str())
                .collect();
            return Err(format!("from version {start}: the schema differs from a fresh database in {differs:?}"));
        }
        let version: i64 = old.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| e.to_string())?;
        if version != migrations.len() as i64 {
            return Err(format!("from version {start}: ends at version {version}"));
        }
    }
    Ok(())
}

/// SHA-256 (hex) of a migration script, as `check_frozen` records it.
pub fn script_hash(sql: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(sql.as_bytes()))
}

/// For tests: released migration scripts never change. A device or hub that already applied
/// script `i` will never run it again, so editing it would make those databases differ from
/// fresh ones without any error. `released[i]` is the recorded `script_hash` of `migrations[i]`;
/// a changed script, a removed one, or a new one not yet recorded is an `Err` saying which and
/// what to do (a new script's hash is appended to the list when it is added).
pub fn check_frozen(migrations: &[&str], released: &[&str]) -> Result<(), String> {
    if migrations.len() < released.len() {
        return Err(format!(
            "{} migrations recorded but only {} present: a released migration was removed",
            released.len(),
            migrations.len()
        ));
    }
    for (i, sql) in migrations.iter().enumerate() {
        let hash = script_hash(sql);
        match released.get(i) {
            Some(want) if *want == hash => {}
            Some(_) => {
                return Err(format!(
                    "migration {} was changed after release (hash {hash}); restore it and put the change in a new migration",
                    i + 1
                ));
            }
            None => return Err(format!("migration {} is new: record its hash {hash:?} in the released list", i + 1)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_is_durable_wal_and_the_reader_cannot_write() {
        let dir = std::env::temp_dir().join(format!("edetail-sqlite-plumbing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.sqlite3");
        let _ = std::fs::remove_file(&path);
        let writer = Connection::open(&path).unwrap();
        configure_writer(&writer, "FULL").unwrap();
        let mode: String = writer.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        let sync: i64 = writer.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
        let fk: i64 = writer.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert_eq!((mode.as_str(), sync, fk), ("wal", 2, 1), "WAL, synchronous=FULL, foreign keys on");
        writer.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);").unwrap();
        let reader = open_reader(&path).unwrap();
        configure_reader(&reader).unwrap();
        let busy: i64 = reader.pragma_query_value(None, "busy_timeout", |r| r.get(0)).unwrap();
        assert_eq!(busy, BUSY_TIMEOUT_MS);
        assert_eq!(reader.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 1);
        assert!(reader.execute("INSERT INTO t VALUES (2)", []).is_err(), "the reader is read-only");
        let m = Mutex::new(reader);
        let _ = std::panic::catch_unwind(|| {
            let _g = m.lock().unwrap();
            panic!("poison the lock");
        });
        assert!(m.is_poisoned());
        assert_eq!(lock(&m).query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 1);
        drop((writer, m));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    const GOOD: &[&str] = &["CREATE TABLE a (x INTEGER);", "ALTER TABLE a ADD COLUMN y TEXT; CREATE INDEX a_y ON a(y);"];

    #[test]
    fn migrates_in_order_and_only_once() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, &GOOD[..1]).unwrap();
        migrate(&mut c, GOOD).unwrap();
        migrate(&mut c, GOOD).unwrap();
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, 2);
        c.execute("INSERT INTO a (x, y) VALUES (1, 'z')", []).unwrap();
    }

    #[test]
    fn a_newer_database_is_refused_and_untouched() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, GOOD).unwrap();
        assert!(matches!(migrate(&mut c, &GOOD[..1]), Err(MigrateError::TooNew { found: 2, supported: 1 })));
    }

    #[test]
    fn a_failing_step_leaves_the_database_as_it_was() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, &GOOD[..1]).unwrap();
        let broken = [GOOD[0], "ALTER TABLE a ADD COLUMN y TEXT; THIS IS NOT SQL;"];
        assert!(matches!(migrate(&mut c, &broken), Err(MigrateError::Sqlite(_))));
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, 1);
        assert!(c.execute("INSERT INTO a (x, y) VALUES (1, 'z')", []).is_err(), "column y rolled back");
    }

    #[test]
    fn frozen_scripts_must_keep_their_hashes() {
        let released: Vec<String> = GOOD.iter().map(|s| script_hash(s)).collect();
        let released: Vec<&str> = released.iter().map(String::as_str).collect();
        assert_eq!(check_frozen(GOOD, &released), Ok(()));
        let edited = [GOOD[0], "ALTER TABLE a ADD COLUMN y INTEGER; CREATE INDEX a_y ON a(y);"];
        assert!(check_frozen(&edited, &released).unwrap_err().contains("migration 2 was changed"));
        assert!(check_frozen(&GOOD[..1], &released).unwrap_err().contains("removed"));
        let added = [GOOD[0], GOOD[1], "CREATE TABLE c (z);"];
        assert!(check_frozen(&added, &released).unwrap_err().contains("migration 3 is new"));
    }

    #[test]
    fn the_check_accepts_consistent_migrations_and_names_a_failing_step() {
        assert_eq!(check_migrations(GOOD), Ok(()));
        let broken = [GOOD[0], "ALTER TABLE missing ADD COLUMN y TEXT;"];
        let e = check_migrations(&broken).unwrap_err();
        assert!(e.contains("fresh database") && e.contains("missing"), "{e}");
    }
}
