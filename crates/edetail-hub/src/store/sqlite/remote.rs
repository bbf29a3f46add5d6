//! The SQLite store: remote detailing sessions and their attendees (`RemoteStore`).

use super::*;
use crate::store::{NewRemoteSession, RemoteAttendee, RemoteJoin, RemoteSession, RemoteStore};

const SESSION_COLUMNS: &str = "id, device_id, call_id, territory, bundle_id, bundle_version, waiting_room, recorded, created_at, \
                               expires_at, ended_at, position, position_seq, presenter_id, presenter_seen_ms";

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RemoteSession> {
    Ok(RemoteSession {
        id: r.get(0)?,
        device_id: r.get(1)?,
        call_id: r.get(2)?,
        territory: r.get(3)?,
        bundle_id: r.get(4)?,
        bundle_version: r.get::<_, i64>(5)? as u64,
        waiting_room: r.get(6)?,
        recorded: r.get(7)?,
        created_at: parse_time(&r.get::<_, String>(8)?)?,
        expires_at: parse_time(&r.get::<_, String>(9)?)?,
        ended_at: r.get::<_, Option<String>>(10)?.map(|s| parse_time(&s)).transpose()?,
        position: r.get(11)?,
        position_seq: r.get(12)?,
        presenter_id: r.get(13)?,
        presenter_seen_ms: r.get(14)?,
    })
}

impl RemoteStore for SqliteStore {
    fn open_remote_session(&self, s: &NewRemoteSession) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO remote_sessions (id, device_id, call_id, territory, bundle_id, bundle_version, token_sha256, waiting_room, \
                 recorded, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    s.id,
                    s.device_id,
                    s.call_id,
                    s.territory,
                    s.bundle_id,
                    s.bundle_version as i64,
                    s.token_sha256,
                    s.waiting_room,
                    s.recorded,
                    time_text(s.created_at),
                    time_text(s.expires_at)
                ],
            )?;
            Ok(())
        })
    }

    fn remote_session(&self, id: &str) -> Result<Option<RemoteSession>> {
        self.read(|c| {
            Ok(c.query_row(&format!("SELECT {SESSION_COLUMNS} FROM remote_sessions WHERE id = ?1"), [id], session_row).optional()?)
        })
    }

    fn remote_session_by_token(&self, token_sha256: &str) -> Result<Option<RemoteSession>> {
        self.read(|c| {
            Ok(c.query_row(&format!("SELECT {SESSION_COLUMNS} FROM remote_sessions WHERE token_sha256 = ?1"), [token_sha256], session_row)
                .optional()?)
        })
    }

    fn relink_remote_session(&self, id: &str, token_sha256: &str) -> Result<bool> {
        self.write(|tx| Ok(tx.execute("UPDATE remote_sessions SET token_sha256 = ?2 WHERE id = ?1", params![id, token_sha256])? == 1))
    }

    fn end_remote_session(&self, id: &str, at: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        self.write(|tx| {
            tx.execute("UPDATE remote_sessions SET ended_at = COALESCE(ended_at, ?2) WHERE id = ?1", params![id, time_text(at)])?;
            let ended: Option<Option<String>> =
                tx.query_row("SELECT ended_at FROM remote_sessions WHERE id = ?1", [id], |r| r.get(0)).optional()?;
            Ok(ended.flatten().map(|s| parse_time(&s)).transpose()?)
        })
    }

    fn set_remote_position(&self, id: &str, position: &str, seq: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE remote_sessions SET position = ?2, position_seq = ?3 WHERE id = ?1 AND position_seq <= ?3",
                params![id, position, seq],
            )?;
            Ok(())
        })
    }

    fn join_remote_session(
        &self,
        id: &str,
        attendee: &str,
        waiting_room: bool,
        max: usize,
        now_ms: i64,
        live_since_ms: i64,
    ) -> Result<RemoteJoin> {
        self.write(|tx| {
            let live: i64 = tx.query_row(
                "SELECT count(*) FROM remote_attendees WHERE session_id = ?1 AND attendee_id <> ?2 AND connected = 1 AND last_seen_ms >= ?3",
                params![id, attendee, live_since_ms],
                |r| r.get(0),
            )?;
            if live as usize >= max {
                return Ok(RemoteJoin::Full);
            }
            let before: Option<bool> = tx
                .query_row("SELECT admitted FROM remote_attendees WHERE session_id = ?1 AND attendee_id = ?2", params![id, attendee], |r| {
                    r.get(0)
                })
                .optional()?;
            let admitted = before.unwrap_or(!waiting_room);
            tx.execute(
                "INSERT INTO remote_attendees (session_id, attendee_id, admitted, connected, last_seen_ms) VALUES (?1, ?2, ?3, 1, ?4) \
                 ON CONFLICT (session_id, attendee_id) DO UPDATE SET connected = 1, last_seen_ms = excluded.last_seen_ms",
                params![id, attendee, admitted, now_ms],
            )?;
            Ok(if admitted { RemoteJoin::Admitted } else { RemoteJoin::Waiting })
        })
    }

    fn admit_remote_attendee(&self, id: &str, attendee: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.execute("UPDATE remote_attendees SET admitted = 1 WHERE session_id = ?1 AND attendee_id = ?2", params![id, attendee])?
                == 1)
        })
    }

    fn touch_remote_attendees(&self, id: &str, attendees: &[String], now_ms: i64) -> Result<()> {
        self.write(|tx| {
            let mut st = tx.prepare_cached("UPDATE remote_attendees SET last_seen_ms = ?3 WHERE session_id = ?1 AND attendee_id = ?2")?;
            for a in attendees {
                st.execute(params![id, a, now_ms])?;
            }
            Ok(())
        })
    }

    fn leave_remote_session(&self, id: &str, attendee: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("UPDATE remote_attendees SET connected = 0 WHERE session_id = ?1 AND attendee_id = ?2", params![id, attendee])?;
            Ok(())
        })
    }

    fn remote_attendees(&self, id: &str, live_since_ms: i64) -> Result<Vec<RemoteAttendee>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT attendee_id, admitted FROM remote_attendees WHERE session_id = ?1 AND connected = 1 AND last_seen_ms >= ?2 \
                 ORDER BY attendee_id",
            )?;
            let rows = st
                .query_map(params![id, live_since_ms], |r| Ok(RemoteAttendee { attendee_id: r.get(0)?, admitted: r.get(1)? }))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn prune_remote_sessions(&self, before: DateTime<Utc>) -> Result<u64> {
        let before = time_text(before);
        self.write(|tx| {
            let gone = "SELECT id FROM remote_sessions WHERE expires_at < ?1 OR ended_at < ?1";
            tx.execute(&format!("DELETE FROM remote_attendees WHERE session_id IN ({gone})"), [&before])?;
            Ok(tx.execute(&format!("DELETE FROM remote_sessions WHERE id IN ({gone})"), [&before])? as u64)
        })
    }

    fn claim_remote_presenter(&self, id: &str, presenter: &str, now_ms: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE remote_sessions SET presenter_id = ?2, presenter_seen_ms = ?3 WHERE id = ?1",
                params![id, presenter, now_ms],
            )?;
            Ok(())
        })
    }

    fn touch_remote_presenter(&self, id: &str, presenter: &str, now_ms: i64) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE remote_sessions SET presenter_seen_ms = ?3 WHERE id = ?1 AND presenter_id = ?2",
                params![id, presenter, now_ms],
            )? == 1)
        })
    }

    fn release_remote_presenter(&self, id: &str, presenter: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE remote_sessions SET presenter_id = NULL, presenter_seen_ms = 0 WHERE id = ?1 AND presenter_id = ?2",
                params![id, presenter],
            )?;
            Ok(())
        })
    }
}
