//! SQLite: opening with fixed pragmas, numbered migrations under one version constant, and the
//! writer/reader split (one writer connection behind a mutex, one reader connection), and
//! SQLCipher keying: with a [`DbKey`] both connections are keyed before anything else touches
//! the file (see docs/adr/0012-encryption-at-rest.md).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// Migrations in order; `MIGRATIONS[i]` upgrades from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/001_initial.sql"),
    include_str!("../migrations/002_plans.sql"),
    include_str!("../migrations/003_privacy.sql"),
    include_str!("../migrations/004_event_kinds.sql"),
    include_str!("../migrations/005_sequences.sql"),
    include_str!("../migrations/006_remote_sessions.sql"),
];
/// The schema version this code writes. Always `MIGRATIONS.len()`.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Durability of the outbox: FULL makes a commit survive power loss, not just an app kill.
/// Detailing records are compliance data (see docs/adr/0004-outbox-durability.md).
pub const SYNCHRONOUS: &str = "FULL";

/// A raw 256-bit SQLCipher key, supplied by the app from the platform keystore. Applied as
/// `PRAGMA key = "x'HEX'"`: a raw key skips SQLCipher's PBKDF2 derivation on every open.
/// Never shown: `Debug` prints `DbKey(<redacted>)` and no error message contains it.
#[derive(Clone, PartialEq, Eq)]
pub struct DbKey([u8; 32]);

impl DbKey {
    pub const LEN: usize = 32;

    pub fn new(bytes: [u8; 32]) -> Self {
        DbKey(bytes)
    }

    /// A key from a byte slice; exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 32] =
            bytes.try_into().map_err(|_| Error::Invalid(format!("a database key is {} bytes, got {}", Self::LEN, bytes.len())))?;
        Ok(DbKey(arr))
    }

    /// SQLCipher's raw-key text: `x'<64 hex>'`, wiped when dropped.
    fn raw_key_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::with_capacity(3 + 2 * Self::LEN));
        text.push_str("x'");
        for b in self.0 {
            for nibble in [b >> 4, b & 0x0f] {
                text.push(char::from_digit(u32::from(nibble), 16).expect("a nibble is a hex digit"));
            }
        }
        text.push('\'');
        text
    }

    /// The statement that keys a connection: `PRAGMA key = "x'<64 hex>'";`, wiped when dropped.
    /// Built in a buffer of its final size, so no reallocation leaves a copy behind.
    fn pragma_statement(&self) -> Zeroizing<String> {
        let raw = self.raw_key_text();
        let mut sql = Zeroizing::new(String::with_capacity(raw.len() + 16));
        sql.push_str("PRAGMA key = \"");
        sql.push_str(&raw);
        sql.push_str("\";");
        sql
    }
}

/// The key bytes are wiped when a `DbKey` (or a clone of it) is dropped. SQLCipher keeps its
/// own copy while a connection is open; that one is out of our reach.
impl Drop for DbKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(<redacted>)")
    }
}

/// The first 16 bytes of every plain SQLite database file.
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Keys a fresh connection (first statement on it) and proves the key by reading the schema.
/// A wrong key, a key for a plain file and no key for an encrypted file are distinct errors;
/// none of them lets the caller go on to create an empty database over the data.
fn apply_key(conn: &Connection, path: &Path, key: Option<&DbKey>) -> Result<()> {
    // SQLCipher's own stderr log (a wrong key logs HMAC failures); errors come back as codes.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    // Another thread may still be setting SQLCipher up (see `edetail_sqlite::wait_for_cipher`);
    // keys below and `ATTACH ... KEY` in `encrypt_plain` need it done.
    edetail_sqlite::wait_for_cipher().map_err(Error::from_sql)?;
    if let Some(k) = key {
        // The error, if any, is replaced: it must not carry the statement (and so the key).
        conn.execute_batch(&k.pragma_statement()).map_err(|e| {
            // Only SQLite's result code is kept: the error text may quote the statement.
            let code = match &e {
                rusqlite::Error::SqliteFailure(f, _) => format!("SQLite code {}", f.extended_code),
                _ => "no SQLite code".to_string(),
            };
            Error::Invalid(format!("the database key could not be applied ({code}; is this SQLCipher?)"))
        })?;
    }
    match conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::NotADatabase => {
            let plain = std::fs::File::open(path)
                .and_then(|mut f| {
                    let mut h = [0u8; 16];
                    std::io::Read::read_exact(&mut f, &mut h).map(|_| &h == PLAIN_HEADER)
                })
                .unwrap_or(false);
            Err(match (key.is_some(), plain) {
                (true, true) => Error::NotEncrypted(path.to_path_buf()),
                (true, false) => Error::WrongKey(path.to_path_buf()),
                (false, _) => Error::KeyRequired(path.to_path_buf()),
            })
        }
        Err(e) => Err(Error::from_sql(e)),
    }
}

/// Rewrites the plain database at `path` encrypted with `key` (see
/// [`crate::Device::encrypt_existing`]): checkpoint, `sqlcipher_export` into `<path>.encrypting`,
/// verify it opens with the key, then rename over the original. A crash before the rename
/// leaves the plain database intact (the partial file is removed on the next attempt).
pub fn encrypt_plain(path: &Path, key: &DbKey) -> Result<()> {
    let tmp = path.with_extension("sqlite3.encrypting");
    let _ = std::fs::remove_file(&tmp);
    {
        if !path.is_file() {
            return Err(Error::Invalid(format!("no database at {} to encrypt", path.display())));
        }
        // CREATE: ATTACH creates the encrypted copy with the main connection's flags.
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)?;
        apply_key(&conn, path, None)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let tmp_str = tmp.to_str().ok_or_else(|| Error::Invalid("the data directory path is not UTF-8".into()))?;
        // The key is a bound parameter: it never appears in SQL text.
        conn.execute("ATTACH DATABASE ?1 AS encrypted KEY ?2", [tmp_str, key.raw_key_text().as_str()])
            .map_err(|_| Error::Invalid("the encrypted copy could not be attached".into()))?;
        conn.query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(()))?;
        conn.execute_batch(&format!("PRAGMA encrypted.user_version = {version}; DETACH DATABASE encrypted;"))?;
    }
    {
        let check = Connection::open(&tmp)?;
        apply_key(&check, &tmp, Some(key))?;
    }
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(Error::io(&tmp))?;
    for ext in ["sqlite3-wal", "sqlite3-shm"] {
        let _ = std::fs::remove_file(path.with_extension(ext));
    }
    std::fs::rename(&tmp, path).map_err(Error::io(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io(dir))?;
    }
    Ok(())
}

fn configure(conn: &Connection) -> Result<()> {
    Ok(edetail_sqlite::configure_writer(conn, SYNCHRONOUS)?)
}

/// Brings a database to [`SCHEMA_VERSION`] inside one immediate transaction.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    edetail_sqlite::migrate(conn, MIGRATIONS).map_err(|e| match e {
        edetail_sqlite::MigrateError::TooNew { found, supported } => Error::SchemaTooNew { found, supported },
        edetail_sqlite::MigrateError::Sqlite(e) => Error::from_sql(e),
    })
}

/// The writer and reader connections of one data directory.
#[derive(Debug)]
pub struct Databases {
    // Dropped in declaration order: the reader first, so the writer is the last connection to
    // close and checkpoints the WAL into the main file (a clean close leaves one file).
    reader: Mutex<Connection>,
    writer: Mutex<Connection>,
}

impl Databases {
    /// Opens (creating if missing) the database at `path`, keyed with `key` when given.
    pub fn open(path: &Path, key: Option<&DbKey>) -> Result<Self> {
        let mut writer = Connection::open(path).map_err(Error::from_sql)?;
        apply_key(&writer, path, key)?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let reader = edetail_sqlite::open_reader(path)?;
        apply_key(&reader, path, key)?;
        edetail_sqlite::configure_reader(&reader)?;
        Ok(Databases { writer: Mutex::new(writer), reader: Mutex::new(reader) })
    }

    fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
        edetail_sqlite::lock(m)
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

    /// Released migrations never change (a database that applied one never runs it again):
    /// a new migration appends its hash here, an edit of a released one fails.
    #[test]
    fn released_migrations_are_frozen() {
        let released = [
            "dcf04ea5726017b78118ca7cd209acfee5aee308d67672a9cc2c685534a402da", // 001_initial.sql
            "928b726207a2f23f56d90eee96626ab1e4e175827c3894dfa122b78ec1536a54", // 002_plans.sql
            "34a34e6ecaa7c0b0572acea30a81018919cff539b1a7e70ddf29e55ccc81f6ea", // 003_privacy.sql
            "4f4852ef98253f1fc1c74f561d3a8a7f079a260cecccac66676f78e2ac3a9dba", // 004_event_kinds.sql
            "5a4bbf201daa10eb9e3ec24b0968b1b680ae356bfc9298d1a9ce7298c1121f6c", // 005_sequences.sql (not yet released: sequence_order added)
            "3518a9c1ee04c228dc0082bfe80a4db154a814718d8f7c351dcded04a9cca2a1", // 006_remote_sessions.sql
        ];
        edetail_sqlite::check_frozen(MIGRATIONS, &released).unwrap();
    }

    #[test]
    fn the_key_statement_is_the_raw_key_in_hex() {
        let key = DbKey::new(std::array::from_fn(|i| (i as u8) * 8 + 7));
        let hex: String = (0..32u8).map(|i| format!("{:02x}", i * 8 + 7)).collect();
        assert_eq!(key.raw_key_text().as_str(), format!("x'{hex}'"));
        assert_eq!(key.pragma_statement().as_str(), format!("PRAGMA key = \"x'{hex}'\";"));
        let statement = key.pragma_statement();
        assert_eq!(statement.capacity(), statement.len(), "built in place: no reallocation left a copy");
    }

    /// Every migration applies from every past version and ends at the fresh schema.
    #[test]
    fn migrated_database_equals_fresh_database() {
        edetail_sqlite::check_migrations(MIGRATIONS).unwrap();
    }

    /// Types an app recorded before kinds were checked move into `app.` when not yet uploaded;
    /// built-in kinds, uploaded and parked events stay as they were.
    #[test]
    fn legacy_app_event_types_move_into_the_app_namespace() {
        let mut c = Connection::open_in_memory().unwrap();
        edetail_sqlite::migrate(&mut c, &MIGRATIONS[..3]).unwrap();
        let insert = |c: &Connection, uuid: &str, kind: &str, acked: Option<i64>, parked: Option<&str>| {
            c.execute(
                "INSERT INTO events (uuid, type, recorded_at, session, mono_ms, payload, acked_at, parked_reason)
                 VALUES (?1, ?2, 0, 1, 0, '{}', ?3, ?4)",
                rusqlite::params![uuid, kind, acked, parked],
            )
            .unwrap();
        };
        insert(&c, "a", "sample_request", None, None);
        insert(&c, "b", "slide_enter", None, None);
        insert(&c, "c", "app_opened", Some(5), None);
        insert(&c, "d", "app.already", None, None);
        insert(&c, "e", "odd kind", None, Some("rejected"));
        insert(&c, "f", "app_background", None, None);
        edetail_sqlite::migrate(&mut c, MIGRATIONS).unwrap();
        let kinds: Vec<String> =
            c.prepare("SELECT type FROM events ORDER BY uuid").unwrap().query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(kinds, ["app.sample_request", "slide_enter", "app_opened", "app.already", "odd kind", "app_background"]);
        // The frozen list holds the 24 built-in kinds this version had, each a built-in kind.
        let listed: Vec<&str> = MIGRATIONS[3].split("NOT IN (").nth(1).unwrap().split('\'').skip(1).step_by(2).collect();
        assert_eq!(listed.len(), 24);
        for k in listed {
            let kind = edetail_protocol::EventKind::parse(k).unwrap();
            assert!(edetail_protocol::EventKind::BUILT_IN.contains(&kind), "{k}");
        }
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        assert!(matches!(migrate(&mut c), Err(Error::SchemaTooNew { .. })));
    }
}
