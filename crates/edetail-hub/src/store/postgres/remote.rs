//! The PostgreSQL store: remote detailing sessions and their attendees (`RemoteStore`).

use super::*;
use crate::store::{NewRemoteSession, RemoteAttendee, RemoteJoin, RemoteSession, RemoteStore};

const SESSION_COLUMNS: &str = "id, device_id, call_id, territory, bundle_id, bundle_version, waiting_room, recorded, created_at, \
                               expires_at, ended_at, position, position_seq, presenter_id, presenter_seen_ms";

fn session_row(r: &tokio_postgres::Row) -> RemoteSession {
    RemoteSession {
        id: r.get(0),
        device_id: r.get(1),
        call_id: r.get(2),
        territory: r.get(3),
        bundle_id: r.get(4),
        bundle_version: r.get::<_, i64>(5) as u64,
        waiting_room: r.get(6),
        recorded: r.get(7),
        created_at: r.get(8),
        expires_at: r.get(9),
        ended_at: r.get(10),
        position: r.get(11),
        position_seq: r.get(12),
        presenter_id: r.get(13),
        presenter_seen_ms: r.get(14),
    }
}

impl PgStore {
    fn remote_session_where(&self, column: &'static str, value: &str) -> Result<Option<RemoteSession>> {
        let value = value.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let row = c
                .query_opt(&format!("SELECT {SESSION_COLUMNS} FROM remote_sessions WHERE {column} = $1"), &[&value])
                .await
                .map_err(pg_err)?;
            Ok(row.as_ref().map(session_row))
        })
    }
}

impl RemoteStore for PgStore {
    fn open_remote_session(&self, s: &NewRemoteSession) -> Result<()> {
        let s = s.clone();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO remote_sessions (id, device_id, call_id, territory, bundle_id, bundle_version, token_sha256, \
                     waiting_room, recorded, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    &[
                        &s.id,
                        &s.device_id,
                        &s.call_id,
                        &s.territory,
                        &s.bundle_id,
                        &(s.bundle_version as i64),
                        &s.token_sha256,
                        &s.waiting_room,
                        &s.recorded,
                        &s.created_at,
                        &s.expires_at,
                    ],
                )
                .await
                .map_err(pg_err)?;
                Ok(())
            })
        })
    }

    fn remote_session(&self, id: &str) -> Result<Option<RemoteSession>> {
        self.remote_session_where("id", id)
    }

    fn remote_session_by_token(&self, token_sha256: &str) -> Result<Option<RemoteSession>> {
        self.remote_session_where("token_sha256", token_sha256)
    }

    fn relink_remote_session(&self, id: &str, token_sha256: &str) -> Result<bool> {
        let (id, token) = (id.to_string(), token_sha256.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                let n = tx.execute("UPDATE remote_sessions SET token_sha256 = $2 WHERE id = $1", &[&id, &token]).await.map_err(pg_err)?;
                Ok(n == 1)
            })
        })
    }

    fn end_remote_session(&self, id: &str, at: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let id = id.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_opt("UPDATE remote_sessions SET ended_at = COALESCE(ended_at, $2) WHERE id = $1 RETURNING ended_at", &[&id, &at])
                    .await
                    .map_err(pg_err)?;
                Ok(row.map(|r| r.get::<_, DateTime<Utc>>(0)))
            })
        })
    }

    fn set_remote_position(&self, id: &str, position: &str, seq: i64) -> Result<()> {
        let (id, position) = (id.to_string(), position.to_string());
        self.run(move |pool| async move {
            let c = pool.get().await?;
            c.execute(
                "UPDATE remote_sessions SET position = $2, position_seq = $3 WHERE id = $1 AND position_seq <= $3",
                &[&id, &position, &seq],
            )
            .await
            .map_err(pg_err)?;
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
        let (id, attendee) = (id.to_string(), attendee.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                // Joins of one session wait for each other (on any hub process): the count
                // below is then the truth when the row is written.
                let found = tx.query_opt("SELECT 1 FROM remote_sessions WHERE id = $1 FOR UPDATE", &[&id]).await.map_err(pg_err)?;
                if found.is_none() {
                    return Err(Error::NotFound("remote session".into()));
                }
                let live: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM remote_attendees WHERE session_id = $1 AND attendee_id <> $2 AND connected \
                         AND last_seen_ms >= $3",
                        &[&id, &attendee, &live_since_ms],
                    )
                    .await
                    .map_err(pg_err)?
                    .get(0);
                if live as usize >= max {
                    return Ok(RemoteJoin::Full);
                }
                let admitted: bool = tx
                    .query_one(
                        "INSERT INTO remote_attendees (session_id, attendee_id, admitted, connected, last_seen_ms) \
                         VALUES ($1, $2, $3, TRUE, $4) ON CONFLICT (session_id, attendee_id) \
                         DO UPDATE SET connected = TRUE, last_seen_ms = EXCLUDED.last_seen_ms RETURNING admitted",
                        &[&id, &attendee, &!waiting_room, &now_ms],
                    )
                    .await
                    .map_err(pg_err)?
                    .get(0);
                Ok(if admitted { RemoteJoin::Admitted } else { RemoteJoin::Waiting })
            })
        })
    }

    fn admit_remote_attendee(&self, id: &str, attendee: &str) -> Result<bool> {
        let (id, attendee) = (id.to_string(), attendee.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute("UPDATE remote_attendees SET admitted = TRUE WHERE session_id = $1 AND attendee_id = $2", &[&id, &attendee])
                    .await
                    .map_err(pg_err)?;
                Ok(n == 1)
            })
        })
    }

    fn touch_remote_attendees(&self, id: &str, attendees: &[String], now_ms: i64) -> Result<()> {
        let (id, attendees) = (id.to_string(), attendees.to_vec());
        self.run(move |pool| async move {
            let c = pool.get().await?;
            c.execute(
                "UPDATE remote_attendees SET last_seen_ms = $3 WHERE session_id = $1 AND attendee_id = ANY($2)",
                &[&id, &attendees, &now_ms],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn leave_remote_session(&self, id: &str, attendee: &str) -> Result<()> {
        let (id, attendee) = (id.to_string(), attendee.to_string());
        self.run(move |pool| async move {
            let c = pool.get().await?;
            c.execute("UPDATE remote_attendees SET connected = FALSE WHERE session_id = $1 AND attendee_id = $2", &[&id, &attendee])
                .await
                .map_err(pg_err)?;
            Ok(())
        })
    }

    fn remote_attendees(&self, id: &str, live_since_ms: i64) -> Result<Vec<RemoteAttendee>> {
        let id = id.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let rows = c
                .query(
                    "SELECT attendee_id, admitted FROM remote_attendees WHERE session_id = $1 AND connected AND last_seen_ms >= $2 \
                     ORDER BY attendee_id",
                    &[&id, &live_since_ms],
                )
                .await
                .map_err(pg_err)?;
            Ok(rows.iter().map(|r| RemoteAttendee { attendee_id: r.get(0), admitted: r.get(1) }).collect())
        })
    }

    fn prune_remote_sessions(&self, before: DateTime<Utc>) -> Result<u64> {
        self.write(move |tx| {
            Box::pin(async move {
                // Attendees go with their session (ON DELETE CASCADE).
                tx.execute("DELETE FROM remote_sessions WHERE expires_at < $1 OR ended_at < $1", &[&before]).await.map_err(pg_err)
            })
        })
    }

    fn claim_remote_presenter(&self, id: &str, presenter: &str, now_ms: i64) -> Result<()> {
        let (id, presenter) = (id.to_string(), presenter.to_string());
        self.run(move |pool| async move {
            let c = pool.get().await?;
            c.execute("UPDATE remote_sessions SET presenter_id = $2, presenter_seen_ms = $3 WHERE id = $1", &[&id, &presenter, &now_ms])
                .await
                .map_err(pg_err)?;
            Ok(())
        })
    }

    fn touch_remote_presenter(&self, id: &str, presenter: &str, now_ms: i64) -> Result<bool> {
        let (id, presenter) = (id.to_string(), presenter.to_string());
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let n = c
                .execute(
                    "UPDATE remote_sessions SET presenter_seen_ms = $3 WHERE id = $1 AND presenter_id = $2",
                    &[&id, &presenter, &now_ms],
                )
                .await
                .map_err(pg_err)?;
            Ok(n == 1)
        })
    }

    fn release_remote_presenter(&self, id: &str, presenter: &str) -> Result<()> {
        let (id, presenter) = (id.to_string(), presenter.to_string());
        self.run(move |pool| async move {
            let c = pool.get().await?;
            c.execute(
                "UPDATE remote_sessions SET presenter_id = NULL, presenter_seen_ms = 0 WHERE id = $1 AND presenter_id = $2",
                &[&id, &presenter],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }
}
