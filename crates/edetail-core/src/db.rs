//! SQLite: opening with fixed pragmas, numbered migrations under one version constant, and the
//! writer/reader split (one writer connection behind a mutex, one reader connection).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// Migrations in order; `MIGRATIONS[i]` upgrades from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/001_initial.sql"),
    include_str!("../migrations/002_plans.sql"),
    include_str!("../migrations/003_privacy.sql"),
];
/// The schema version this code writes. Always `MIGRATIONS.len()`.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Durability of the outbox: FULL makes a commit survive power loss, not just an app kill.
/// Detailing records are compliance data (see docs/adr/0004-outbox-durability.md).
pub const SYNCHRONOUS: &str = "FULL";

fn configure(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", SYNCHRONOUS)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Brings a database to [`SCHEMA_VERSION`] inside one immediate transaction.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew { found: current, supported: SCHEMA_VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

/// The writer and reader connections of one data directory.
#[derive(Debug)]
pub struct Databases {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl Databases {
    pub fn open(path: &Path) -> Result<Self> {
        let mut writer = Connection::open(path).map_err(Error::from_sql)?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let reader = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        reader.pragma_update(None, "busy_timeout", 5000)?;
        reader.pragma_update(None, "temp_store", "MEMORY")?;
        Ok(Databases { writer: Mutex::new(writer), reader: Mutex::new(reader) })
    }

    fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back on drop), so a poisoned lock is still safe to use.
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in an immediate write transaction, committed when `f` succeeds.
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = Self::lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(Error::from_sql)?;
        let v = f(&tx)?;
        tx.commit().map_err(Error::from_sql)?;
        Ok(v)
    }

    /// Runs `f` on the reader connection (sees the last committed state).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = Self::lock(&self.reader);
        f(&conn)
    }

    /// Direct access to the writer for maintenance (tests, integrity checks).
    pub fn with_writer<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = Self::lock(&self.writer);
        f(&mut conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(conn: &Connection) -> Vec<(String, String)> {
        let mut st = conn
            .prepare("SELECT name, COALESCE(sql, '') FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect()
    }

    /// A database migrated step by step from every older version equals a fresh one.
    #[test]
    fn migrated_database_equals_fresh_database() {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh).unwrap();
        for start in 0..SCHEMA_VERSION {
            let mut old = Connection::open_in_memory().unwrap();
            for (i, sql) in MIGRATIONS.iter().enumerate().take(start as usize) {
                old.execute_batch(sql).unwrap();
                old.pragma_update(None, "user_version", (i + 1) as i64).unwrap();
            }
            migrate(&mut old).unwrap();
            assert_eq!(schema(&old), schema(&fresh), "from version {start}");
            let v: i64 = old.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(v, SCHEMA_VERSION);
        }
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        assert!(matches!(migrate(&mut c), Err(Error::SchemaTooNew { .. })));
    }
}
