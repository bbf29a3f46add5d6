//! The SQLite store: the analysis queue, derived documents, plans and microsites (`AnalysisStore`).

use super::*;

/// A call's events in order (analysis, per call): by `events_by_call`.
pub(crate) const CALL_EVENTS_SQL: &str =
    "SELECT uuid, seq, type, recorded_at_corrected, payload FROM events WHERE device_id = ?1 AND call_id = ?2 ORDER BY seq";
/// Calls waiting for analysis per device (the sync dashboard): by `analysis_pending_by_device`.
pub(crate) const PENDING_BY_DEVICE_SQL: &str =
    "SELECT device_id, COUNT(*) FROM analysis_queue WHERE done_at IS NULL GROUP BY device_id ORDER BY device_id";

fn read_call_events(c: &rusqlite::Connection, device_id: &str, call_id: &str) -> Result<Vec<StoredEvent>> {
    let mut st = c.prepare_cached(CALL_EVENTS_SQL)?;
    let rows = st
        .query_map(params![device_id, call_id], |r| {
            Ok(StoredEvent {
                uuid: r.get(0)?,
                seq: r.get(1)?,
                kind: r.get(2)?,
                recorded_at_corrected: parse_time(&r.get::<_, String>(3)?)?,
                payload: json_value(&r.get::<_, String>(4)?)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// A queued call and the territory it is analysed for (the microsite's for a visit, else the
/// device's); `?2` is the microsite pseudo-device.
const QUEUED_CALL_COLUMNS: &str = "q.id, q.device_id, q.call_id, \
   CASE WHEN q.device_id = ?2 THEN COALESCE((SELECT m.territory FROM microsites m \
        JOIN events e ON e.device_id = q.device_id AND e.call_id = q.call_id AND e.type = 'call_started' \
        WHERE m.id = json_extract(e.payload, '$.microsite_id')), '*') \
   ELSE COALESCE((SELECT d.territory FROM devices d WHERE d.id = q.device_id), '') END, \
   q.attempts";

fn queued_call(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedCall> {
    Ok(QueuedCall { queue_id: r.get(0)?, device_id: r.get(1)?, call_id: r.get(2)?, territory: r.get(3)?, attempts: r.get(4)? })
}

impl AnalysisStore for SqliteStore {
    fn pending_calls(&self, limit: usize) -> Result<Vec<QueuedCall>> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {QUEUED_CALL_COLUMNS} FROM analysis_queue q WHERE q.done_at IS NULL AND q.attempts < ?3 ORDER BY q.id LIMIT ?1"
            ))?;
            let rows = st
                .query_map(params![limit as i64, MICROSITE_DEVICE, MAX_ANALYSIS_ATTEMPTS], queued_call)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn claim_calls(&self, limit: usize, owner: &str, now: DateTime<Utc>, lease: chrono::Duration) -> Result<Vec<QueuedCall>> {
        // One writer: the claim is atomic without row locks.
        self.write(|tx| {
            let ids: Vec<i64> = tx
                .prepare_cached(
                    "SELECT id FROM analysis_queue WHERE done_at IS NULL AND attempts < ?2 \
                     AND (claimed_until_ms IS NULL OR claimed_until_ms <= ?3 OR claimed_by = ?4) ORDER BY id LIMIT ?1",
                )?
                .query_map(params![limit as i64, MAX_ANALYSIS_ATTEMPTS, ms(now), owner], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut claim = tx.prepare_cached("UPDATE analysis_queue SET claimed_by = ?2, claimed_until_ms = ?3 WHERE id = ?1")?;
            for id in &ids {
                claim.execute(params![id, owner, ms(now + lease)])?;
            }
            let mut read = tx.prepare_cached(&format!("SELECT {QUEUED_CALL_COLUMNS} FROM analysis_queue q WHERE q.id = ?1"))?;
            ids.iter().map(|id| Ok(read.query_row(params![id, MICROSITE_DEVICE], queued_call)?)).collect()
        })
    }

    fn pending_call_count(&self) -> Result<u64> {
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM analysis_queue WHERE done_at IS NULL", [], |r| r.get::<_, i64>(0))? as u64))
    }

    fn parked_calls(&self) -> Result<Vec<crate::store::ParkedCall>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT device_id, call_id, attempts, COALESCE(last_error, '') FROM analysis_queue \
                 WHERE done_at IS NULL AND attempts >= ?1 ORDER BY id",
            )?;
            let rows = st.query_map([MAX_ANALYSIS_ATTEMPTS], |r| {
                Ok(crate::store::ParkedCall { device_id: r.get(0)?, call_id: r.get(1)?, attempts: r.get(2)?, reason: r.get(3)? })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn pending_calls_by_device(&self) -> Result<Vec<(String, u64)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(PENDING_BY_DEVICE_SQL)?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn call_events(&self, device_id: &str, call_id: &str) -> Result<Vec<StoredEvent>> {
        self.read(|c| read_call_events(c, device_id, call_id))
    }

    fn calls_events(&self, calls: &[(String, String)]) -> Result<Vec<Vec<StoredEvent>>> {
        // One read transaction, one indexed lookup per call (no round trips in SQLite).
        self.read(|c| calls.iter().map(|(d, call)| read_call_events(c, d, call)).collect())
    }

    fn load_doc_texts(&self, keys: &[(String, String)]) -> Result<Vec<Option<DocText>>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT doc, version FROM analytics_docs WHERE kind = ?1 AND key = ?2")?;
            keys.iter()
                .map(|(kind, key)| {
                    Ok(st.query_row(params![kind, key], |r| Ok(DocText { text: r.get(0)?, version: r.get(1)? })).optional()?)
                })
                .collect()
        })
    }

    fn list_docs(&self, kind: &str) -> Result<Vec<Doc>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT key, doc, version FROM analytics_docs WHERE kind = ?1 ORDER BY key")?;
            let rows = st
                .query_map([kind], |r| {
                    Ok(Doc { kind: kind.to_string(), key: r.get(0)?, doc: json_value(&r.get::<_, String>(1)?)?, version: r.get(2)? })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn commit_analysis(&self, commit: &AnalysisCommit) -> Result<bool> {
        let now = time_text(commit.now);
        self.write(|tx| {
            let mut st = tx.prepare_cached("UPDATE analysis_queue SET done_at = ?2 WHERE id = ?1 AND done_at IS NULL")?;
            for id in &commit.queue_ids {
                if st.execute(params![id, now])? != 1 {
                    return Err(Error::Conflict);
                }
            }
            for d in &commit.docs {
                let text = d.doc.as_str();
                let n = if d.expected_version == 0 {
                    tx.execute(
                        "INSERT OR IGNORE INTO analytics_docs (kind, key, doc, version, updated_at) VALUES (?1, ?2, ?3, 1, ?4)",
                        params![d.kind, d.key, text, now],
                    )?
                } else {
                    tx.execute(
                        "UPDATE analytics_docs SET doc = ?3, version = version + 1, updated_at = ?5 \
                         WHERE kind = ?1 AND key = ?2 AND version = ?4",
                        params![d.kind, d.key, text, d.expected_version, now],
                    )?
                };
                if n != 1 {
                    return Err(Error::Conflict);
                }
            }
            for p in &commit.plans {
                let seq = next_feed_seq(tx)?;
                // The new plan replaces the HCP's current one for this deck in the feed.
                tx.execute(
                    "DELETE FROM plans WHERE territory = ?1 AND hcp_id = ?2 AND bundle_id = ?3",
                    params![p.territory, p.hcp_id, p.bundle_id],
                )?;
                tx.execute(
                    "INSERT INTO plans (feed_seq, territory, hcp_id, bundle_id, plan_id, stage, plan, signature, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![seq, p.territory, p.hcp_id, p.bundle_id, p.plan_id, p.stage, p.plan, p.signature, now],
                )?;
            }
            for s in &commit.summaries {
                super::insight::put_summary(tx, s)?;
            }
            for m in &commit.microsites {
                tx.execute(
                    &format!("INSERT INTO microsites ({MICROSITE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0)"),
                    params![
                        m.id,
                        m.token_sha256,
                        m.hcp_id,
                        m.territory,
                        m.bundle_id,
                        m.bundle_version as i64,
                        json_text(&serde_json::json!(m.slides))?,
                        json_text(&serde_json::json!(m.topics))?,
                        m.reason,
                        time_text(m.created_at),
                        time_text(m.expires_at)
                    ],
                )?;
            }
            // Merged documents last (one writer in SQLite: the read below is current).
            for m in &commit.merges {
                let stored: Option<String> = tx
                    .query_row("SELECT doc FROM analytics_docs WHERE kind = ?1 AND key = ?2", params![m.kind, m.key], |r| r.get(0))
                    .optional()?;
                let stored = stored.as_deref().map(json_value).transpose()?;
                let text = json_text(&(m.merge)(stored.as_ref(), &m.delta)?)?;
                tx.execute(
                    "INSERT INTO analytics_docs (kind, key, doc, version, updated_at) VALUES (?1, ?2, ?3, 1, ?4) \
                     ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc, version = version + 1, updated_at = excluded.updated_at",
                    params![m.kind, m.key, text, now],
                )?;
            }
            Ok(())
        })
        .map(|()| true)
        .or_else(|e| if matches!(e, Error::Conflict) { Ok(false) } else { Err(e) })
    }

    fn analysis_failed(&self, queue_id: i64, error: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE analysis_queue SET attempts = attempts + 1, last_error = ?2, claimed_by = NULL, claimed_until_ms = NULL WHERE id = ?1",
                params![queue_id, error],
            )?;
            Ok(())
        })
    }

    fn latest_plan(&self, hcp_id: &str, bundle_id: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT plan, signature FROM plans WHERE hcp_id = ?1 AND bundle_id = ?2 ORDER BY feed_seq DESC LIMIT 1",
                params![hcp_id, bundle_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
    }

    fn newest_plan_of_hcp(&self, hcp_id: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.read(|c| {
            Ok(c.query_row("SELECT plan, signature FROM plans WHERE hcp_id = ?1 ORDER BY feed_seq DESC LIMIT 1", params![hcp_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
        })
    }

    fn microsite_by_token(&self, token_sha256: &str) -> Result<Option<Microsite>> {
        self.read(|c| {
            Ok(c.query_row(&format!("SELECT {MICROSITE_COLUMNS} FROM microsites WHERE token_sha256 = ?1"), [token_sha256], microsite_row)
                .optional()?)
        })
    }

    fn microsites_for(&self, hcp_id: &str) -> Result<Vec<Microsite>> {
        self.read(|c| {
            let mut st = c.prepare(&format!("SELECT {MICROSITE_COLUMNS} FROM microsites WHERE hcp_id = ?1 ORDER BY created_at, id"))?;
            let rows = st.query_map([hcp_id], microsite_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn record_microsite_visit(
        &self,
        microsite_id: &str,
        call_id: &str,
        events: &[(String, serde_json::Value)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let at = time_text(now);
        self.write(|tx| {
            let n = tx.execute("UPDATE microsites SET views = views + 1 WHERE id = ?1", [microsite_id])?;
            if n != 1 {
                return Err(Error::NotFound("microsite".into()));
            }
            let mut seq: i64 = tx.query_row("SELECT watermark FROM devices WHERE id = ?1", [MICROSITE_DEVICE], |r| r.get(0))?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (uuid, device_id, seq, call_id, type, recorded_at, recorded_at_corrected, \
                 session, mono_ms, payload, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 0, 0, ?7, ?6)",
            )?;
            for (kind, payload) in events {
                seq += 1;
                let uuid = uuid::Uuid::new_v4().to_string();
                insert.execute(params![uuid, MICROSITE_DEVICE, seq, call_id, kind, at, json_text(payload)?])?;
                if let Some(hcp) = crate::ingest::call_hcp(kind, payload) {
                    tx.execute(
                        "INSERT OR IGNORE INTO call_hcps (hcp_id, device_id, call_id) VALUES (?1, ?2, ?3)",
                        params![hcp, MICROSITE_DEVICE, call_id],
                    )?;
                }
            }
            tx.execute(
                "UPDATE devices SET watermark = ?2, last_seen_at = ?3, events_received = events_received + ?4 WHERE id = ?1",
                params![MICROSITE_DEVICE, seq, at, events.len() as i64],
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO analysis_queue (device_id, call_id, queued_at) VALUES (?1, ?2, ?3)",
                params![MICROSITE_DEVICE, call_id, at],
            )?;
            Ok(())
        })
    }
}

fn microsite_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Microsite> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        serde_json::from_value(json_value(&r.get::<_, String>(i)?)?)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
    };
    Ok(Microsite {
        id: r.get(0)?,
        token_sha256: r.get(1)?,
        hcp_id: r.get(2)?,
        territory: r.get(3)?,
        bundle_id: r.get(4)?,
        bundle_version: r.get::<_, i64>(5)? as u64,
        slides: list(6)?,
        topics: list(7)?,
        reason: r.get(8)?,
        created_at: parse_time(&r.get::<_, String>(9)?)?,
        expires_at: parse_time(&r.get::<_, String>(10)?)?,
        views: r.get::<_, i64>(11)? as u64,
    })
}

const MICROSITE_COLUMNS: &str =
    "id, token_sha256, hcp_id, territory, bundle_id, bundle_version, slides, topics, reason, created_at, expires_at, views";
