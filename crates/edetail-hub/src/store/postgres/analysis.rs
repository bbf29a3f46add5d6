//! The PostgreSQL store: the analysis queue, derived documents, plans and microsites
//! (`AnalysisStore`).

use super::*;
use crate::store::{DocText, DocWrite, NewPlan};

/// A call's events in order (analysis, per call): by `events_by_call`.
pub(crate) const CALL_EVENTS_SQL: &str =
    "SELECT uuid, seq, type, recorded_at_corrected, payload FROM events WHERE device_id = $1 AND call_id = $2 ORDER BY seq";
/// Calls waiting for analysis per device (the sync dashboard): by `analysis_pending_by_device`.
pub(crate) const PENDING_BY_DEVICE_SQL: &str =
    "SELECT device_id, COUNT(*) FROM analysis_queue WHERE done_at IS NULL GROUP BY device_id ORDER BY device_id";

/// A queued call and the territory it is analysed for (the microsite's for a visit, else the
/// device's); `$2` is the microsite pseudo-device.
const QUEUED_CALL_COLUMNS: &str = "q.id, q.device_id, q.call_id, \
   CASE WHEN q.device_id = $2 THEN COALESCE((SELECT m.territory FROM microsites m \
        JOIN events e ON e.device_id = q.device_id AND e.call_id = q.call_id AND e.type = 'call_started' \
        WHERE m.id = (e.payload::jsonb ->> 'microsite_id') LIMIT 1), '*') \
   ELSE COALESCE((SELECT d.territory FROM devices d WHERE d.id = q.device_id), '') END, \
   q.attempts";

/// Puts new plans in the feed, each replacing its HCP's current plan for the deck in that
/// territory: one feed-counter update for all of them, then two statements.
async fn insert_plans(tx: &Transaction<'_>, plans: &[NewPlan], now: DateTime<Utc>) -> Result<()> {
    if plans.is_empty() {
        return Ok(());
    }
    let last: i64 = tx
        .query_one("UPDATE feed_counter SET value = value + $1 WHERE id = 1 RETURNING value", &[&(plans.len() as i64)])
        .await
        .map_err(pg_err)?
        .get(0);
    let first = last - plans.len() as i64 + 1;
    let seqs: Vec<i64> = (first..=last).collect();
    let col = |f: fn(&NewPlan) -> &String| plans.iter().map(f).cloned().collect::<Vec<String>>();
    let (territories, hcps, bundles) = (col(|p| &p.territory), col(|p| &p.hcp_id), col(|p| &p.bundle_id));
    let (ids, stages) = (col(|p| &p.plan_id), col(|p| &p.stage));
    let bodies: Vec<&[u8]> = plans.iter().map(|p| p.plan.as_slice()).collect();
    let signatures: Vec<&[u8]> = plans.iter().map(|p| p.signature.as_slice()).collect();
    tx.execute(
        "DELETE FROM plans p USING UNNEST($1::text[], $2::text[], $3::text[]) AS x(t, h, b) \
         WHERE p.territory = x.t AND p.hcp_id = x.h AND p.bundle_id = x.b",
        &[&territories, &hcps, &bundles],
    )
    .await
    .map_err(pg_err)?;
    tx.execute(
        "INSERT INTO plans (feed_seq, territory, hcp_id, bundle_id, plan_id, stage, plan, signature, created_at) \
         SELECT s, t, h, b, i, st, pl, sg, $9 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::bytea[], $8::bytea[]) AS x(s, t, h, b, i, st, pl, sg)",
        &[&seqs, &territories, &hcps, &bundles, &ids, &stages, &bodies, &signatures, &now],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// The versioned documents of an analysis commit, in two statements whatever their number:
/// the new ones inserted, the others updated where their version is still the one read
/// (`Error::Conflict` otherwise: nothing of the commit is written). Rows are locked in key
/// order first, as the one-by-one writes did, so two hubs writing overlapping documents wait
/// for each other instead of deadlocking.
async fn write_docs(tx: &Transaction<'_>, docs: &[DocWrite], now: DateTime<Utc>) -> Result<()> {
    let (new, old): (Vec<&DocWrite>, Vec<&DocWrite>) = docs.iter().partition(|d| d.expected_version == 0);
    fn columns<'a>(ds: &[&'a DocWrite]) -> (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>, Vec<i64>) {
        (
            ds.iter().map(|d| d.kind.as_str()).collect(),
            ds.iter().map(|d| d.key.as_str()).collect(),
            ds.iter().map(|d| d.doc.as_str()).collect(),
            ds.iter().map(|d| d.expected_version).collect(),
        )
    }
    if !old.is_empty() {
        let (kinds, keys, texts, versions) = columns(&old);
        tx.execute(
            "SELECT 1 FROM analytics_docs WHERE (kind, key) IN (SELECT * FROM UNNEST($1::text[], $2::text[])) \
             ORDER BY kind, key FOR UPDATE",
            &[&kinds, &keys],
        )
        .await
        .map_err(pg_err)?;
        let n = tx
            .execute(
                "UPDATE analytics_docs a SET doc = x.d, version = a.version + 1, updated_at = $5 \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[]) AS x(k, n, d, v) \
                 WHERE a.kind = x.k AND a.key = x.n AND a.version = x.v",
                &[&kinds, &keys, &texts, &versions, &now],
            )
            .await
            .map_err(pg_err)?;
        if n != old.len() as u64 {
            return Err(Error::Conflict);
        }
    }
    if !new.is_empty() {
        let (kinds, keys, texts, _) = columns(&new);
        let n = tx
            .execute(
                "INSERT INTO analytics_docs (kind, key, doc, version, updated_at) \
                 SELECT k, n, d, 1, $4 FROM UNNEST($1::text[], $2::text[], $3::text[]) AS x(k, n, d) ORDER BY k, n \
                 ON CONFLICT (kind, key) DO NOTHING",
                &[&kinds, &keys, &texts, &now],
            )
            .await
            .map_err(pg_err)?;
        if n != new.len() as u64 {
            return Err(Error::Conflict);
        }
    }
    Ok(())
}

fn queued_call(r: &tokio_postgres::Row) -> QueuedCall {
    QueuedCall { queue_id: r.get(0), device_id: r.get(1), call_id: r.get(2), territory: r.get(3), attempts: r.get(4) }
}

impl AnalysisStore for PgStore {
    fn pending_calls(&self, limit: usize) -> Result<Vec<QueuedCall>> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        &format!(
                            "SELECT {QUEUED_CALL_COLUMNS} FROM analysis_queue q WHERE q.done_at IS NULL AND q.attempts < $3 \
                             ORDER BY q.id LIMIT $1"
                        ),
                        &[&(limit as i64), &MICROSITE_DEVICE, &MAX_ANALYSIS_ATTEMPTS],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(rows.iter().map(queued_call).collect())
            })
        })
    }

    fn claim_calls(&self, limit: usize, owner: &str, now: DateTime<Utc>, lease: chrono::Duration) -> Result<Vec<QueuedCall>> {
        let (owner, until) = (owner.to_string(), now + lease);
        self.write(move |tx| {
            Box::pin(async move {
                // SKIP LOCKED: rows another hub process is claiming right now are passed over,
                // not waited for; each call goes to one claimer.
                let rows = tx
                    .query(
                        "WITH c AS (SELECT id FROM analysis_queue WHERE done_at IS NULL AND attempts < $2 \
                                    AND (claimed_until IS NULL OR claimed_until <= $3 OR claimed_by = $4) ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
                         UPDATE analysis_queue q SET claimed_by = $4, claimed_until = $5 FROM c WHERE q.id = c.id RETURNING q.id",
                        &[&(limit as i64), &MAX_ANALYSIS_ATTEMPTS, &now, &owner, &until],
                    )
                    .await
                    .map_err(pg_err)?;
                let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                let rows = tx
                    .query(
                        &format!("SELECT {QUEUED_CALL_COLUMNS} FROM analysis_queue q WHERE q.id = ANY($1) ORDER BY q.id"),
                        &[&ids, &MICROSITE_DEVICE],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(rows.iter().map(queued_call).collect())
            })
        })
    }

    fn pending_call_count(&self) -> Result<u64> {
        self.read(move |tx| {
            Box::pin(async move {
                let n: i64 = tx.query_one("SELECT COUNT(*) FROM analysis_queue WHERE done_at IS NULL", &[]).await.map_err(pg_err)?.get(0);
                Ok(n as u64)
            })
        })
    }

    fn parked_calls(&self) -> Result<Vec<crate::store::ParkedCall>> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT device_id, call_id, attempts::bigint, COALESCE(last_error, '') FROM analysis_queue \
                         WHERE done_at IS NULL AND attempts >= $1 ORDER BY id",
                        &[&MAX_ANALYSIS_ATTEMPTS],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(rows
                    .iter()
                    .map(|r| crate::store::ParkedCall { device_id: r.get(0), call_id: r.get(1), attempts: r.get(2), reason: r.get(3) })
                    .collect())
            })
        })
    }

    fn pending_calls_by_device(&self) -> Result<Vec<(String, u64)>> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx.query(PENDING_BY_DEVICE_SQL, &[]).await.map_err(pg_err)?;
                Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64)).collect())
            })
        })
    }

    fn call_events(&self, device_id: &str, call_id: &str) -> Result<Vec<StoredEvent>> {
        let (d, c) = (device_id.to_string(), call_id.to_string());
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx.query(CALL_EVENTS_SQL, &[&d, &c]).await.map_err(pg_err)?;
                rows.iter()
                    .map(|r| {
                        Ok(StoredEvent {
                            uuid: r.get(0),
                            seq: r.get(1),
                            kind: r.get(2),
                            recorded_at_corrected: r.get(3),
                            payload: json_value(r.get(4))?,
                        })
                    })
                    .collect()
            })
        })
    }

    fn calls_events(&self, calls: &[(String, String)]) -> Result<Vec<Vec<StoredEvent>>> {
        let (devices, call_ids): (Vec<String>, Vec<String>) = calls.iter().cloned().unzip();
        let n = calls.len();
        self.read(move |tx| {
            Box::pin(async move {
                // One query for the batch: each (device, call) looked up by `events_by_call`.
                let rows = tx
                    .query(
                        "SELECT e.uuid, e.seq, e.type, e.recorded_at_corrected, e.payload, x.i \
                         FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS x(d, c, i) \
                         JOIN events e ON e.device_id = x.d AND e.call_id = x.c ORDER BY x.i, e.seq",
                        &[&devices, &call_ids],
                    )
                    .await
                    .map_err(pg_err)?;
                let mut out: Vec<Vec<StoredEvent>> = (0..n).map(|_| Vec::new()).collect();
                for r in &rows {
                    let i: i64 = r.get(5);
                    out[(i - 1) as usize].push(StoredEvent {
                        uuid: r.get(0),
                        seq: r.get(1),
                        kind: r.get(2),
                        recorded_at_corrected: r.get(3),
                        payload: json_value(r.get(4))?,
                    });
                }
                Ok(out)
            })
        })
    }

    fn load_doc_texts(&self, keys: &[(String, String)]) -> Result<Vec<Option<DocText>>> {
        let keys = keys.to_vec();
        self.read(move |tx| {
            Box::pin(async move {
                let (kinds, names): (Vec<&str>, Vec<&str>) = keys.iter().map(|(k, n)| (k.as_str(), n.as_str())).unzip();
                // One query for all of them, by the primary key.
                let rows = tx
                    .query(
                        "SELECT x.i, d.doc, d.version FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS x(k, n, i) \
                         JOIN analytics_docs d ON d.kind = x.k AND d.key = x.n",
                        &[&kinds, &names],
                    )
                    .await
                    .map_err(pg_err)?;
                let mut out: Vec<Option<DocText>> = vec![None; keys.len()];
                for r in &rows {
                    let i = (r.get::<_, i64>(0) - 1) as usize;
                    out[i] = Some(DocText { text: r.get(1), version: r.get(2) });
                }
                Ok(out)
            })
        })
    }

    fn list_docs(&self, kind: &str) -> Result<Vec<Doc>> {
        let kind = kind.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query("SELECT key, doc, version FROM analytics_docs WHERE kind = $1 ORDER BY key", &[&kind])
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(|r| Ok(Doc { kind: kind.clone(), key: r.get(0), doc: json_value(r.get(1))?, version: r.get(2) })).collect()
            })
        })
    }

    fn commit_analysis(&self, commit: &AnalysisCommit) -> Result<bool> {
        let commit = commit.clone();
        let r = self.write(move |tx| {
            Box::pin(async move {
                let now = commit.now;
                let n = tx
                    .execute("UPDATE analysis_queue SET done_at = $2 WHERE id = ANY($1) AND done_at IS NULL", &[&commit.queue_ids, &now])
                    .await
                    .map_err(pg_err)?;
                if n != commit.queue_ids.len() as u64 {
                    return Err(Error::Conflict);
                }
                write_docs(tx, &commit.docs, now).await?;
                super::insight::put_summaries(tx, &commit.summaries).await?;
                for m in &commit.microsites {
                    tx.execute(
                        &format!("INSERT INTO microsites ({MICROSITE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0)"),
                        &[
                            &m.id,
                            &m.token_sha256,
                            &m.hcp_id,
                            &m.territory,
                            &m.bundle_id,
                            &(m.bundle_version as i64),
                            &json_text(&serde_json::json!(m.slides))?,
                            &json_text(&serde_json::json!(m.topics))?,
                            &m.reason,
                            &m.created_at,
                            &m.expires_at,
                        ],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                // The rows other commits wait for come last, so they are held briefly: the feed
                // counter (plans) and the merged documents (deck statistics).
                insert_plans(tx, &commit.plans, now).await?;
                for m in &commit.merges {
                    // A new document is created empty (version 0) first: a commit creating it at
                    // the same time waits here for this one and then adds to what it wrote.
                    tx.execute(
                        "INSERT INTO analytics_docs (kind, key, doc, version, updated_at) VALUES ($1, $2, '{}', 0, $3) \
                         ON CONFLICT (kind, key) DO NOTHING",
                        &[&m.kind, &m.key, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                    let row = tx
                        .query_one("SELECT doc, version FROM analytics_docs WHERE kind = $1 AND key = $2 FOR UPDATE", &[&m.kind, &m.key])
                        .await
                        .map_err(pg_err)?;
                    let stored = if row.get::<_, i64>(1) == 0 { None } else { Some(json_value(row.get(0))?) };
                    let text = json_text(&(m.merge)(stored.as_ref(), &m.delta)?)?;
                    tx.execute(
                        "UPDATE analytics_docs SET doc = $3, version = version + 1, updated_at = $4 WHERE kind = $1 AND key = $2",
                        &[&m.kind, &m.key, &text, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                Ok(())
            })
        });
        match r {
            Ok(()) => Ok(true),
            Err(Error::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn analysis_failed(&self, queue_id: i64, error: &str) -> Result<()> {
        let error = error.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE analysis_queue SET attempts = attempts + 1, last_error = $2, claimed_by = NULL, claimed_until = NULL WHERE id = $1",
                    &[&queue_id, &error],
                )
                    .await
                    .map_err(pg_err)?;
                Ok(())
            })
        })
    }

    fn latest_plan(&self, hcp_id: &str, bundle_id: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let (h, b) = (hcp_id.to_string(), bundle_id.to_string());
        self.read(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .query_opt(
                        "SELECT plan, signature FROM plans WHERE hcp_id = $1 AND bundle_id = $2 ORDER BY feed_seq DESC LIMIT 1",
                        &[&h, &b],
                    )
                    .await
                    .map_err(pg_err)?
                    .map(|r| (r.get(0), r.get(1))))
            })
        })
    }

    fn newest_plan_of_hcp(&self, hcp_id: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let h = hcp_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .query_opt("SELECT plan, signature FROM plans WHERE hcp_id = $1 ORDER BY feed_seq DESC LIMIT 1", &[&h])
                    .await
                    .map_err(pg_err)?
                    .map(|r| (r.get(0), r.get(1))))
            })
        })
    }

    fn microsite_by_token(&self, token_sha256: &str) -> Result<Option<Microsite>> {
        let t = token_sha256.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt(&format!("SELECT {MICROSITE_COLUMNS} FROM microsites WHERE token_sha256 = $1"), &[&t])
                    .await
                    .map_err(pg_err)?
                    .map(|r| microsite_row(&r))
                    .transpose()
            })
        })
    }

    fn microsites_for(&self, hcp_id: &str) -> Result<Vec<Microsite>> {
        let h = hcp_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query(&format!("SELECT {MICROSITE_COLUMNS} FROM microsites WHERE hcp_id = $1 ORDER BY created_at, id"), &[&h])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(microsite_row)
                    .collect()
            })
        })
    }

    fn record_microsite_visit(
        &self,
        microsite_id: &str,
        call_id: &str,
        events: &[(String, serde_json::Value)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (m, c, events) = (microsite_id.to_string(), call_id.to_string(), events.to_vec());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&ERASURE_LOCK]).await.map_err(pg_err)?;
                let n = tx.execute("UPDATE microsites SET views = views + 1 WHERE id = $1", &[&m]).await.map_err(pg_err)?;
                if n != 1 {
                    return Err(Error::NotFound("microsite".into()));
                }
                let mut seq: i64 = tx
                    .query_one("SELECT watermark FROM devices WHERE id = $1 FOR UPDATE", &[&MICROSITE_DEVICE])
                    .await
                    .map_err(pg_err)?
                    .get(0);
                for (kind, payload) in &events {
                    seq += 1;
                    let uuid = uuid::Uuid::new_v4().to_string();
                    tx.execute(
                        "INSERT INTO events (uuid, device_id, seq, call_id, type, recorded_at, recorded_at_corrected, session, mono_ms, \
                         payload, received_at) VALUES ($1, $2, $3, $4, $5, $6, $6, 0, 0, $7, $6)",
                        &[&uuid, &MICROSITE_DEVICE, &seq, &c, kind, &now, &json_text(payload)?],
                    )
                    .await
                    .map_err(pg_err)?;
                    if let Some(hcp) = crate::ingest::call_hcp(kind, payload) {
                        tx.execute(
                            "INSERT INTO call_hcps (hcp_id, device_id, call_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                            &[&hcp, &MICROSITE_DEVICE, &c],
                        )
                        .await
                        .map_err(pg_err)?;
                    }
                }
                tx.execute(
                    "UPDATE devices SET watermark = $2, last_seen_at = $3, events_received = events_received + $4 WHERE id = $1",
                    &[&MICROSITE_DEVICE, &seq, &now, &(events.len() as i64)],
                )
                .await
                .map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO analysis_queue (device_id, call_id, queued_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&MICROSITE_DEVICE, &c, &now],
                )
                .await
                .map_err(pg_err)?;
                Ok(())
            })
        })
    }
}

const MICROSITE_COLUMNS: &str =
    "id, token_sha256, hcp_id, territory, bundle_id, bundle_version, slides, topics, reason, created_at, expires_at, views";

fn microsite_row(r: &tokio_postgres::Row) -> Result<Microsite> {
    let list = |s: String| -> Result<Vec<String>> { serde_json::from_str(&s).map_err(|e| Error::Internal(format!("stored JSON: {e}"))) };
    Ok(Microsite {
        id: r.get(0),
        token_sha256: r.get(1),
        hcp_id: r.get(2),
        territory: r.get(3),
        bundle_id: r.get(4),
        bundle_version: r.get::<_, i64>(5) as u64,
        slides: list(r.get(6))?,
        topics: list(r.get(7))?,
        reason: r.get(8),
        created_at: r.get(9),
        expires_at: r.get(10),
        views: r.get::<_, i64>(11) as u64,
    })
}
