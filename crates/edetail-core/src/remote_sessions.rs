//! The remote sessions this device opened on its hub (remote detailing, issue 17, ADR 0023),
//! remembered in its own database so that a session outlives the app: edetail-sync's presenter
//! asks here before opening a new one, and presents the remembered session again (same id, same
//! join link) while it lives. A row holds the call id and what the hub answered (session id,
//! join link, expiry), the bundle version the hub pinned and whether the doctor is told she is
//! recorded; no HCP data. It goes when the session ends (ended here or by the hub) and is pruned
//! once expired. The join link carries the session's secret: it stays on the device (encrypted
//! at rest when the database is keyed) and is never logged.
//!
//! A call a crash left open is recovered as interrupted when the directory is opened again (see
//! `calls`), so the rep continues in a new call: [`RemoteSessions::left_for`] finds the live
//! session of an interrupted call on the same bundle with the same HCP (or both without one),
//! which the new call may take over ([`RemoteSessions::move_to`]).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use crate::clock::{from_ms, to_ms};
use crate::context::Context;
use crate::error::Result;

/// A remote session this device opened and has not seen end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSessionRecord {
    /// The hub's session id.
    pub session_id: String,
    /// The call it presents.
    pub call_id: String,
    pub bundle_id: String,
    /// The bundle version the hub pinned the session to.
    pub bundle_version: u64,
    /// The link the doctors open (carries the session's secret token).
    pub join_url: String,
    /// When the hub stops the session.
    pub expires_at: DateTime<Utc>,
    /// Whether the doctor was told she is recorded.
    pub recorded: bool,
}

const COLUMNS: &str = "session_id, call_id, bundle_id, bundle_version, join_url, expires_at, recorded";

fn record(r: &Row<'_>) -> rusqlite::Result<RemoteSessionRecord> {
    Ok(RemoteSessionRecord {
        session_id: r.get(0)?,
        call_id: r.get(1)?,
        bundle_id: r.get(2)?,
        bundle_version: r.get::<_, i64>(3)? as u64,
        join_url: r.get(4)?,
        expires_at: from_ms(r.get(5)?),
        recorded: r.get::<_, i64>(6)? != 0,
    })
}

/// The remote sessions view of a device (`Device::remote_sessions`).
#[derive(Debug, Clone, Copy)]
pub struct RemoteSessions<'a> {
    ctx: &'a Context,
}

impl<'a> RemoteSessions<'a> {
    pub(crate) fn new(ctx: &'a Context) -> RemoteSessions<'a> {
        RemoteSessions { ctx }
    }

    /// Remembers a session just opened: it replaces any other remembered for its call (one
    /// session per call). Rows of expired sessions are pruned meanwhile.
    pub fn remember(&self, s: &RemoteSessionRecord) -> Result<()> {
        let now = to_ms(self.ctx.trusted_now()?);
        self.ctx.databases().write(|tx| {
            tx.execute("DELETE FROM remote_sessions WHERE expires_at <= ?1", [now])?;
            tx.execute("DELETE FROM remote_sessions WHERE call_id = ?1 OR session_id = ?2", params![s.call_id, s.session_id])?;
            tx.execute(
                &format!("INSERT INTO remote_sessions ({COLUMNS}, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    s.session_id,
                    s.call_id,
                    s.bundle_id,
                    s.bundle_version as i64,
                    s.join_url,
                    to_ms(s.expires_at),
                    i64::from(s.recorded),
                    now
                ],
            )?;
            Ok(())
        })
    }

    /// The remembered session of `call_id`, unless it expired (by the trusted clock).
    pub fn live_for(&self, call_id: &str) -> Result<Option<RemoteSessionRecord>> {
        let now = to_ms(self.ctx.trusted_now()?);
        self.ctx.databases().read(|c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM remote_sessions WHERE call_id = ?1 AND expires_at > ?2"),
                params![call_id, now],
                record,
            )
            .optional()?)
        })
    }

    /// The live session an interrupted call left (a crash or a killed app during a remote call)
    /// that the open call `call_id` may take over: the interrupted call presented the same
    /// bundle to the same HCP (or both to none). The most recently opened when several.
    pub fn left_for(&self, call_id: &str) -> Result<Option<RemoteSessionRecord>> {
        let now = to_ms(self.ctx.trusted_now()?);
        let columns: String = COLUMNS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ");
        self.ctx.databases().read(|c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {columns} FROM remote_sessions r
                     JOIN calls old ON old.id = r.call_id
                     JOIN calls new ON new.id = ?1
                     WHERE old.status = 'interrupted' AND new.status = 'open' AND r.expires_at > ?2
                       AND old.bundle_id = new.bundle_id AND r.bundle_id = new.bundle_id AND old.hcp_id IS new.hcp_id
                     ORDER BY r.created_at DESC, r.session_id LIMIT 1"
                ),
                params![call_id, now],
                record,
            )
            .optional()?)
        })
    }

    /// Moves a remembered session to `call_id` (which continues the call it presented); any
    /// other row of `call_id` goes. False when the session is not remembered.
    pub fn move_to(&self, session_id: &str, call_id: &str) -> Result<bool> {
        self.ctx.databases().write(|tx| {
            tx.execute("DELETE FROM remote_sessions WHERE call_id = ?1 AND session_id <> ?2", params![call_id, session_id])?;
            Ok(tx.execute("UPDATE remote_sessions SET call_id = ?2 WHERE session_id = ?1", params![session_id, call_id])? > 0)
        })
    }

    /// The session's link was replaced (`relink`): the new link and expiry. False when the
    /// session is not remembered.
    pub fn relinked(&self, session_id: &str, join_url: &str, expires_at: DateTime<Utc>) -> Result<bool> {
        self.ctx.databases().write(|tx| {
            Ok(tx.execute(
                "UPDATE remote_sessions SET join_url = ?2, expires_at = ?3 WHERE session_id = ?1",
                params![session_id, join_url, to_ms(expires_at)],
            )? > 0)
        })
    }

    /// Forgets a session (it ended). False when it was not remembered.
    pub fn forget(&self, session_id: &str) -> Result<bool> {
        self.ctx.databases().write(|tx| Ok(tx.execute("DELETE FROM remote_sessions WHERE session_id = ?1", [session_id])? > 0))
    }

    /// Every remembered session, expired ones included (not yet pruned), oldest first.
    pub fn list(&self) -> Result<Vec<RemoteSessionRecord>> {
        self.ctx.databases().read(|c| {
            let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM remote_sessions ORDER BY created_at, session_id"))?;
            let rows = st.query_map([], record)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}
