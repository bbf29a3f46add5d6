//! A pool of read-only connections to one database: each read borrows one, so a long read (a
//! dashboard page) never makes a short one (a device authenticating) wait. WAL lets every
//! reader see the last committed state while the writer writes.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

/// How long a read waits for a connection when all are lent before it fails (`SQLITE_BUSY`
/// class: the caller answers "unavailable, retry").
pub const READER_WAIT: Duration = Duration::from_secs(30);

/// Read-only connections to the database at `path`, opened on demand up to `max` and kept
/// idle between reads (each keeps its page cache and statement cache).
#[derive(Debug)]
pub struct ReaderPool {
    path: PathBuf,
    max: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

#[derive(Debug, Default)]
struct PoolState {
    idle: Vec<Connection>,
    /// Connections lent out or idle.
    open: usize,
}

/// A connection lent by a [`ReaderPool`]; back to the pool when dropped.
#[derive(Debug)]
pub struct PooledReader<'a> {
    pool: &'a ReaderPool,
    conn: Option<Connection>,
}

impl Deref for PooledReader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("a lent connection is present until dropped")
    }
}

impl Drop for PooledReader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A reader left inside a transaction (a panic mid-read) is not lent again.
            let mut st = self.pool.state();
            if conn.is_autocommit() {
                st.idle.push(conn);
            } else {
                st.open -= 1;
            }
            drop(st);
            self.pool.returned.notify_one();
        }
    }
}

impl ReaderPool {
    /// A pool for the database at `path` (which must exist) with at most `max` connections
    /// (at least one). Opens one connection now, so a wrong path fails here.
    pub fn open(path: &Path, max: usize) -> rusqlite::Result<Self> {
        let first = open_configured(path)?;
        Ok(ReaderPool {
            path: path.to_path_buf(),
            max: max.max(1),
            state: Mutex::new(PoolState { idle: vec![first], open: 1 }),
            returned: Condvar::new(),
        })
    }

    /// Borrows a connection: an idle one, a new one while fewer than `max` are open, else the
    /// next one returned (waiting at most [`READER_WAIT`]).
    pub fn get(&self) -> rusqlite::Result<PooledReader<'_>> {
        let mut st = self.state();
        loop {
            if let Some(conn) = st.idle.pop() {
                return Ok(PooledReader { pool: self, conn: Some(conn) });
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return match open_configured(&self.path) {
                    Ok(conn) => Ok(PooledReader { pool: self, conn: Some(conn) }),
                    Err(e) => {
                        self.state().open -= 1;
                        Err(e)
                    }
                };
            }
            let (next, timeout) = self.returned.wait_timeout(st, READER_WAIT).unwrap_or_else(|p| p.into_inner());
            st = next;
            if timeout.timed_out() && st.idle.is_empty() && st.open >= self.max {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some(format!("all {} reader connections stayed busy for {READER_WAIT:?}", self.max)),
                ));
            }
        }
    }

    /// Connections open now (lent or idle).
    pub fn open_connections(&self) -> usize {
        self.state().open
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn open_configured(path: &Path) -> rusqlite::Result<Connection> {
    let conn = crate::open_reader(path)?;
    crate::configure_reader(&conn)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn db() -> (PathBuf, Connection) {
        let dir = std::env::temp_dir().join(format!("edetail-sqlite-pool-{}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.sqlite3");
        let _ = std::fs::remove_file(&path);
        let writer = Connection::open(&path).unwrap();
        crate::configure_writer(&writer, "FULL").unwrap();
        writer.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);").unwrap();
        (path, writer)
    }

    /// A read held open does not stop another read; a third waits only for a connection to come
    /// back, and the pool never opens more than `max`.
    #[test]
    fn a_long_read_does_not_block_a_short_one() {
        let (path, writer) = db();
        let pool = ReaderPool::open(&path, 2).unwrap();
        let ((held_tx, held_rx), (release_tx, release_rx)) = (mpsc::channel::<()>(), mpsc::channel::<()>());
        std::thread::scope(|s| {
            let pool = &pool;
            let long = s.spawn(move || {
                let r = pool.get().unwrap();
                let tx = r.unchecked_transaction().unwrap();
                let n: i64 = tx.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap();
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                // The snapshot taken before the writer's insert.
                let again: i64 = tx.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap();
                (n, again)
            });
            held_rx.recv().unwrap();
            writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
            let short = pool.get().unwrap();
            assert_eq!(short.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 2, "sees the last commit");
            drop(short);
            release_tx.send(()).unwrap();
            assert_eq!(long.join().unwrap(), (1, 1), "the long read keeps its snapshot");
        });
        assert_eq!(pool.open_connections(), 2);
        let (a, b) = (pool.get().unwrap(), pool.get().unwrap());
        std::thread::scope(|s| {
            let third = s.spawn(|| pool.get().map(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).unwrap()));
            std::thread::sleep(Duration::from_millis(50));
            drop(a);
            assert_eq!(third.join().unwrap().unwrap(), 1, "the third read got the returned connection");
        });
        drop(b);
        assert_eq!(pool.open_connections(), 2, "never more than max");
        assert!(pool.get().unwrap().execute("INSERT INTO t VALUES (3)", []).is_err(), "pooled readers are read-only");
    }
}
