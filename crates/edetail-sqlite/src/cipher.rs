//! SQLCipher's process-wide set-up, waited for before a connection is keyed.
//!
//! SQLite marks itself initialised (`sqlite3_initialize`) before it runs SQLCipher's own
//! set-up (`SQLITE_EXTRA_INIT`: private heap, crypto provider, random seed), and a second
//! thread that opens a connection in that gap sees "initialised" and goes on. If it keys that
//! connection before the set-up ends, `PRAGMA key` fails (SQLCipher logs "sqlcipher not
//! initialized") and a device open fails for no reason of its own. CI hit this once, with
//! several tests opening encrypted devices at a test binary's first SQLite use. The window is a
//! few instructions wide on an idle machine, so no test provokes it on demand; the wait below
//! closes it by construction: keying starts only once SQLCipher answers a key on a scratch
//! in-memory connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// How long [`wait_for_cipher`] waits for another thread's SQLCipher set-up to end.
pub const CIPHER_READY_WAIT: Duration = Duration::from_secs(5);

static READY: AtomicBool = AtomicBool::new(false);

/// Returns once SQLCipher accepts keys in this process (at once after the first success).
/// An error after [`CIPHER_READY_WAIT`] is SQLCipher's own (its set-up failed, or this is not
/// SQLCipher).
pub fn wait_for_cipher() -> rusqlite::Result<()> {
    if READY.load(Ordering::Acquire) {
        return Ok(());
    }
    let deadline = Instant::now() + CIPHER_READY_WAIT;
    loop {
        // A raw key (no key derivation); a scratch in-memory database, nothing is written.
        let probe = Connection::open_in_memory()?.execute_batch("PRAGMA cipher_log_level = NONE; PRAGMA key = \"x'00'\";");
        match probe {
            Ok(()) => {
                READY.store(true, Ordering::Release);
                return Ok(());
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_sqlcipher_keys_a_connection_afterwards() {
        wait_for_cipher().unwrap();
        assert!(READY.load(Ordering::Acquire));
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA key = \"x'0102'\"; CREATE TABLE t(x); INSERT INTO t VALUES (1);").unwrap();
        assert_eq!(conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 1);
    }
}
