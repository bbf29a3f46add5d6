//! The PostgreSQL store: upload batches (the facts [`crate::ingest::plan`] needs, then its
//! changes), stored events and figures (`IngestStore`).

use super::*;
use chrono::Timelike as _;

use crate::store::group_commit::Batch;

impl IngestStore for PgStore {
    /// Through the device's group-commit lane (ADR 0021): a device's batches are serialised by
    /// its row lock, so the ones that arrive while another of the same device is written wait
    /// in this process and are then committed together, each in a savepoint.
    fn apply_batch(&self, device_id: &str, events: &[CheckedEvent], skew_ms: i64, now: DateTime<Utc>) -> Result<BatchOutcome> {
        self.group.apply(
            device_id,
            || {
                let (device_id, events) = (device_id.to_string(), events.to_vec());
                self.write(move |tx| Box::pin(async move { apply_batch(tx, device_id, events, skew_ms, now).await }))
            },
            || Batch { device_id: device_id.to_string(), events: events.to_vec(), skew_ms, now },
            |batches| self.write(move |tx| Box::pin(async move { apply_group(tx, batches).await })),
        )
    }

    fn stats(&self) -> Result<HubStats> {
        self.read(|tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT id, rep_id, territory, created_at, last_seen_at, watermark, skew_ms, events_received, duplicates, \
                         rejected, pruned_through_seq, events_pruned FROM devices WHERE id <> 'microsite' ORDER BY created_at, id",
                        &[],
                    )
                    .await
                    .map_err(pg_err)?;
                let devices: Vec<DeviceStats> = rows
                    .iter()
                    .map(|r| DeviceStats {
                        device_id: r.get(0),
                        rep_id: r.get(1),
                        territory: r.get(2),
                        created_at: time_text(r.get(3)),
                        last_seen_at: r.get::<_, Option<DateTime<Utc>>>(4).map(time_text),
                        watermark: r.get(5),
                        skew_ms: r.get(6),
                        events_received: r.get::<_, i64>(7) as u64,
                        duplicates_absorbed: r.get::<_, i64>(8) as u64,
                        rejected: r.get::<_, i64>(9) as u64,
                        pruned_through_seq: r.get(10),
                        events_pruned: r.get::<_, i64>(11) as u64,
                    })
                    .collect();
                let r = tx
                    .query_one(
                        "SELECT (SELECT COUNT(*) FROM publishers), (SELECT COUNT(*) FROM bundles), \
                         (SELECT COUNT(*) FROM bundle_versions), (SELECT COUNT(*) FROM revocations)",
                        &[],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(HubStats {
                    publishers: r.get::<_, i64>(0) as u64,
                    bundles: r.get::<_, i64>(1) as u64,
                    bundle_versions: r.get::<_, i64>(2) as u64,
                    revocations: r.get::<_, i64>(3) as u64,
                    events_received: devices.iter().map(|d| d.events_received).sum(),
                    duplicates_absorbed: devices.iter().map(|d| d.duplicates_absorbed).sum(),
                    rejected: devices.iter().map(|d| d.rejected).sum(),
                    events_pruned: devices.iter().map(|d| d.events_pruned).sum(),
                    devices,
                    store: "postgres".into(),
                })
            })
        })
    }

    fn prune_analysed_events(&self, recorded_before: DateTime<Utc>, audit: Option<&Audited<PruneReport>>) -> Result<PruneReport> {
        // Whole seconds, as on SQLite.
        let cutoff = recorded_before.with_nanosecond(0).unwrap_or(recorded_before);
        let devices: Vec<String> = self.read(|tx| {
            Box::pin(async move {
                let rows = tx.query("SELECT id FROM devices WHERE id <> 'microsite' ORDER BY id", &[]).await.map_err(pg_err)?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })?;
        let devices = std::sync::Arc::new(devices);
        let mut total = PruneReport::default();
        let mut next = 0;
        while next < devices.len() {
            // One transaction (and audit entry, when it deleted anything) per chunk of about
            // PRUNE_CHUNK events.
            let (devs, audit) = (devices.clone(), audit.cloned());
            let (report, done) = self.write(move |tx| {
                Box::pin(async move {
                    let mut report = PruneReport::default();
                    let mut i = next;
                    while i < devs.len() && report.events < PRUNE_CHUNK {
                        let n = prune_device(tx, &devs[i], cutoff).await?;
                        if n > 0 {
                            report.devices += 1;
                            report.events += n;
                        }
                        i += 1;
                    }
                    if let Some(a) = audit.filter(|_| report.events > 0) {
                        insert_audit(tx, &a.entry_for(&report)).await?;
                    }
                    Ok((report, i))
                })
            })?;
            total.add(report);
            next = done;
        }
        Ok(total)
    }

    fn events_for_device(&self, device_id: &str) -> Result<Vec<WireEvent>> {
        let id = device_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT uuid, seq, call_id, type, recorded_at, session, mono_ms, payload FROM events \
                         WHERE device_id = $1 ORDER BY seq, uuid",
                        &[&id],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter()
                    .map(|r| {
                        let payload: String = r.get(7);
                        Ok(WireEvent {
                            uuid: r.get(0),
                            seq: r.get(1),
                            call_id: r.get(2),
                            kind: r.get(3),
                            recorded_at: r.get(4),
                            session: r.get(5),
                            mono_ms: r.get(6),
                            payload: serde_json::from_str(&payload).map_err(|e| Error::Internal(format!("stored payload: {e}")))?,
                        })
                    })
                    .collect()
            })
        })
    }
}

/// One upload batch in one transaction: the device row is locked first (so the same device's
/// batches arriving at several hub processes apply one after the other), the facts are read,
/// [`crate::ingest::plan`] decides, and the changes go in with one multi-row insert per table.
async fn apply_batch(
    tx: &Transaction<'_>,
    device_id: String,
    events: Vec<CheckedEvent>,
    skew_ms: i64,
    now: DateTime<Utc>,
) -> Result<BatchOutcome> {
    let facts = ingest_facts(tx, &device_id, &events).await?;
    let changes = crate::ingest::plan(&device_id, &events, &facts);
    persist_ingest(tx, &device_id, &changes, skew_ms, now).await?;
    Ok(changes.outcome)
}

impl PgStore {
    /// Upload batches stored so far by this process and the transactions that committed them
    /// (a device's batches that arrive together share one).
    pub fn ingest_commits(&self) -> (u64, u64) {
        self.group.figures()
    }
}

/// Several upload batches of one device in one transaction, each in a savepoint: a batch that
/// fails rolls back alone. The outer `Err`: the transaction is lost (a savepoint could not be
/// rolled back), and carries the failing batch's error.
async fn apply_group(tx: &Transaction<'_>, batches: Vec<Batch>) -> Result<Vec<Result<BatchOutcome>>> {
    let mut outcomes = Vec::with_capacity(batches.len());
    for b in batches {
        tx.batch_execute("SAVEPOINT upload_batch").await.map_err(pg_err)?;
        match apply_batch(tx, b.device_id, b.events, b.skew_ms, b.now).await {
            Ok(o) => {
                tx.batch_execute("RELEASE upload_batch").await.map_err(pg_err)?;
                outcomes.push(Ok(o));
            }
            Err(e) => {
                if tx.batch_execute("ROLLBACK TO upload_batch; RELEASE upload_batch").await.is_err() {
                    return Err(e);
                }
                outcomes.push(Err(e));
            }
        }
    }
    Ok(outcomes)
}

/// Reads what decides an upload batch ([`crate::ingest::IngestFacts`]): the erasure lock
/// (shared) and the device row (locked: the device's batches are serialized), then the stored
/// facts in one pipelined round of queries.
async fn ingest_facts(tx: &Transaction<'_>, device_id: &str, events: &[CheckedEvent]) -> Result<IngestFacts> {
    let (_, device) = futures_util::future::try_join(
        tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&ERASURE_LOCK]),
        tx.query_opt("SELECT watermark, pruned_through_seq FROM devices WHERE id = $1 FOR UPDATE", &[&device_id]),
    )
    .await
    .map_err(pg_err)?;
    let device = device.ok_or_else(|| Error::NotFound(format!("device {device_id}")))?;
    let (watermark, pruned_through): (i64, i64) = (device.get(0), device.get(1));
    let w = IngestFacts::wanted(events);
    let (holders, known, seen) = futures_util::future::try_join3(
        tx.query("SELECT seq, uuid FROM events WHERE device_id = $1 AND seq = ANY($2)", &[&device_id, &w.seqs]),
        tx.query(
            "SELECT 'o', uuid, device_id FROM events WHERE uuid = ANY($1) \
             UNION ALL SELECT 'u', uuid, '' FROM erased_events WHERE uuid = ANY($1) \
             UNION ALL SELECT 'c', call_id, '' FROM erased_calls WHERE device_id = $2 AND call_id = ANY($3)",
            &[&w.uuids, &device_id, &w.call_ids],
        ),
        tx.query("SELECT seq FROM device_seqs WHERE device_id = $1 AND seq > $2 ORDER BY seq", &[&device_id, &watermark]),
    )
    .await
    .map_err(pg_err)?;
    let mut facts = IngestFacts { watermark, pruned_through, ..IngestFacts::default() };
    for r in holders {
        facts.seq_holders.entry(r.get(0)).or_default().push(r.get(1));
    }
    for r in known {
        match r.get::<_, &str>(0) {
            "o" => {
                facts.owners.insert(r.get(1), r.get(2));
            }
            "u" => {
                facts.erased_uuids.insert(r.get(1));
            }
            _ => {
                facts.erased_calls.insert(r.get(1));
            }
        }
    }
    facts.seen_above = seen.iter().map(|r| r.get(0)).collect();
    Ok(facts)
}

/// Persists a planned upload batch ([`crate::ingest::plan`]) and the device's counters: one
/// `UNNEST` insert per table, sent together (pipelined).
async fn persist_ingest(tx: &Transaction<'_>, device_id: &str, ch: &IngestChanges<'_>, skew_ms: i64, now: DateTime<Utc>) -> Result<()> {
    let mut cols = EventColumns::default();
    for ins in &ch.inserts {
        cols.push(ins)?;
    }
    // Kept for support; a hostile "uuid" may hold NUL, which text columns refuse.
    let rej_uuid: Vec<String> = ch.rejections.iter().map(|r| r.uuid.replace('\0', "\u{fffd}")).collect();
    let rej_seq: Vec<i64> = ch.rejections.iter().map(|r| r.seq).collect();
    let rej_reason: Vec<String> = ch.rejections.iter().map(|r| r.reason.clone()).collect();
    let watermark = ch.outcome.watermark;
    let (accepted, duplicates) = (ch.outcome.accepted.len() as i64, ch.outcome.duplicates.len() as i64);
    let event_params: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
        &device_id,
        &now,
        &cols.uuid,
        &cols.seq,
        &cols.call_id,
        &cols.kind,
        &cols.recorded_at,
        &cols.corrected,
        &cols.session,
        &cols.mono_ms,
        &cols.payload,
    ];
    let queue_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&device_id, &ch.enqueue_calls, &now];
    let (hcp_calls, hcp_ids): (Vec<&str>, Vec<&str>) = ch.call_hcps.iter().map(|(c, h)| (c.as_str(), h.as_str())).unzip();
    let call_hcp_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&device_id, &hcp_calls, &hcp_ids];
    let hcp_territory_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&device_id, &hcp_ids];
    let seq_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&device_id, &ch.remember_seqs];
    let forget_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&device_id, &watermark];
    let device_params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] =
        [&device_id, &watermark, &skew_ms, &now, &accepted, &duplicates, &rej_uuid, &rej_seq, &rej_reason];
    let mut writes: Vec<PgFut<'_>> = Vec::new();
    if !ch.inserts.is_empty() {
        writes.push(Box::pin(tx.execute(
            "INSERT INTO events (uuid, device_id, seq, call_id, type, recorded_at, recorded_at_corrected, session, mono_ms, \
             payload, received_at) \
             SELECT u.uuid, $1, u.seq, u.call_id, u.type, u.recorded_at, u.corrected, u.session, u.mono_ms, u.payload, $2 \
             FROM UNNEST($3::text[], $4::bigint[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::bigint[], \
                         $10::bigint[], $11::text[]) \
               AS u(uuid, seq, call_id, type, recorded_at, corrected, session, mono_ms, payload) \
             ON CONFLICT (uuid) DO NOTHING",
            &event_params,
        )));
    }
    if !ch.enqueue_calls.is_empty() {
        writes.push(Box::pin(tx.execute(
            "INSERT INTO analysis_queue (device_id, call_id, queued_at) SELECT $1, c, $3 FROM UNNEST($2::text[]) AS q(c) \
             ON CONFLICT (device_id, call_id) DO NOTHING",
            &queue_params,
        )));
    }
    if !ch.call_hcps.is_empty() {
        writes.push(Box::pin(tx.execute(
            "INSERT INTO call_hcps (hcp_id, device_id, call_id) SELECT h, $1, c FROM UNNEST($2::text[], $3::text[]) AS x(c, h) \
             ON CONFLICT DO NOTHING",
            &call_hcp_params,
        )));
        writes.push(Box::pin(tx.execute(
            "INSERT INTO hcp_territories (territory, hcp_id) SELECT DISTINCT d.territory, h FROM devices d, UNNEST($2::text[]) AS x(h) \
             WHERE d.id = $1 ON CONFLICT DO NOTHING",
            &hcp_territory_params,
        )));
    }
    if !ch.remember_seqs.is_empty() {
        writes.push(Box::pin(tx.execute(
            "INSERT INTO device_seqs (device_id, seq) SELECT $1, s FROM UNNEST($2::bigint[]) AS s ON CONFLICT DO NOTHING",
            &seq_params,
        )));
    }
    if watermark > ch.old_watermark {
        writes.push(Box::pin(tx.execute("DELETE FROM device_seqs WHERE device_id = $1 AND seq <= $2", &forget_params)));
    }
    // The rejections and the device's counters in one statement (only new rejection rows count).
    writes.push(Box::pin(tx.execute(
        "WITH r AS (INSERT INTO rejected_events (uuid, device_id, seq, reason, received_at) \
             SELECT r.uuid, $1, r.seq, r.reason, $4 FROM UNNEST($7::text[], $8::bigint[], $9::text[]) AS r(uuid, seq, reason) \
             ON CONFLICT DO NOTHING RETURNING 1) \
         UPDATE devices SET watermark = $2, skew_ms = $3, last_seen_at = $4, events_received = events_received + $5, \
         duplicates = duplicates + $6, rejected = rejected + (SELECT COUNT(*) FROM r) WHERE id = $1",
        &device_params,
    )));
    let done = futures_util::future::try_join_all(writes).await.map_err(pg_err)?;
    if !ch.inserts.is_empty() && done[0] != ch.inserts.len() as u64 {
        // Another device's batch stored one of these uuids since the facts were read: retry,
        // and the event is then classified against it.
        return Err(Error::Unavailable("a concurrent upload stored some of these events first: retry".into()));
    }
    Ok(())
}

type PgFut<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<u64, tokio_postgres::Error>> + Send + 'a>>;

#[derive(Default)]
struct EventColumns {
    uuid: Vec<String>,
    seq: Vec<i64>,
    call_id: Vec<Option<String>>,
    kind: Vec<String>,
    recorded_at: Vec<DateTime<Utc>>,
    corrected: Vec<DateTime<Utc>>,
    session: Vec<i64>,
    mono_ms: Vec<i64>,
    payload: Vec<String>,
}

impl EventColumns {
    fn push(&mut self, ins: &crate::ingest::Insert<'_>) -> Result<()> {
        let (e, corrected) = (ins.event, ins.recorded_at_corrected);
        self.uuid.push(e.uuid.clone());
        self.seq.push(e.seq);
        self.call_id.push(e.call_id.clone());
        self.kind.push(e.kind.clone());
        self.recorded_at.push(e.recorded_at);
        self.corrected.push(corrected);
        self.session.push(e.session);
        self.mono_ms.push(e.mono_ms);
        self.payload.push(ins.payload_text().map_err(|err| Error::Internal(err.to_string()))?.into_owned());
        Ok(())
    }
}

/// The first event of a device (`$1`) after its pruned prefix (`$2`) that must stay: recorded
/// at or after the cutoff (`$3`), or of a call whose analysis is not done. By
/// `events_by_device`, then the queue's `(device_id, call_id)` key.
pub(crate) const PRUNE_HOLD_SQL: &str = "SELECT MIN(e.seq) FROM events e WHERE e.device_id = $1 AND e.seq > $2 \
     AND (e.recorded_at_corrected >= $3 OR (e.call_id IS NOT NULL AND NOT EXISTS \
     (SELECT 1 FROM analysis_queue q WHERE q.device_id = e.device_id AND q.call_id = e.call_id AND q.done_at IS NOT NULL)))";

/// Prunes one device's analysed events before the cutoff as a prefix of its sequence, under
/// its row lock (its upload batches wait); returns how many were deleted.
async fn prune_device(tx: &Transaction<'_>, device_id: &str, cutoff: DateTime<Utc>) -> Result<u64> {
    let row =
        tx.query_one("SELECT watermark, pruned_through_seq FROM devices WHERE id = $1 FOR UPDATE", &[&device_id]).await.map_err(pg_err)?;
    let (watermark, through): (i64, i64) = (row.get(0), row.get(1));
    let hold: Option<i64> = tx.query_one(PRUNE_HOLD_SQL, &[&device_id, &through, &cutoff]).await.map_err(pg_err)?.get(0);
    let end = hold.map_or(watermark, |h| watermark.min(h - 1));
    if end <= through {
        return Ok(0);
    }
    let n = tx
        .execute("DELETE FROM events WHERE device_id = $1 AND seq > $2 AND seq <= $3", &[&device_id, &through, &end])
        .await
        .map_err(pg_err)?;
    tx.execute(
        "UPDATE devices SET pruned_through_seq = $2, events_pruned = events_pruned + $3 WHERE id = $1",
        &[&device_id, &end, &(n as i64)],
    )
    .await
    .map_err(pg_err)?;
    Ok(n)
}
