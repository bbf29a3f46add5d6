//! The SQLite store: upload batches (the facts [`crate::ingest::plan`] needs, then its changes),
//! stored events and figures (`IngestStore`).

use super::*;

impl IngestStore for SqliteStore {
    fn apply_batch(&self, device_id: &str, events: &[CheckedEvent], skew_ms: i64, now: DateTime<Utc>) -> Result<BatchOutcome> {
        self.write(|tx| {
            let facts = ingest_facts(tx, device_id, events)?;
            let changes = crate::ingest::plan(device_id, events, &facts);
            persist_ingest(tx, device_id, &changes, skew_ms, now)?;
            Ok(changes.outcome)
        })
    }

    fn stats(&self) -> Result<HubStats> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, rep_id, territory, created_at, last_seen_at, watermark, skew_ms, events_received, duplicates, \
                 rejected FROM devices WHERE id <> 'microsite' ORDER BY created_at, id",
            )?;
            let devices = st
                .query_map([], |r| {
                    Ok(DeviceStats {
                        device_id: r.get(0)?,
                        rep_id: r.get(1)?,
                        territory: r.get(2)?,
                        created_at: r.get(3)?,
                        last_seen_at: r.get(4)?,
                        watermark: r.get(5)?,
                        skew_ms: r.get(6)?,
                        events_received: r.get::<_, i64>(7)? as u64,
                        duplicates_absorbed: r.get::<_, i64>(8)? as u64,
                        rejected: r.get::<_, i64>(9)? as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let count = |sql: &str| -> Result<u64> { Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64) };
            Ok(HubStats {
                publishers: count("SELECT COUNT(*) FROM publishers")?,
                bundles: count("SELECT COUNT(*) FROM bundles")?,
                bundle_versions: count("SELECT COUNT(*) FROM bundle_versions")?,
                revocations: count("SELECT COUNT(*) FROM revocations")?,
                events_received: devices.iter().map(|d| d.events_received).sum(),
                duplicates_absorbed: devices.iter().map(|d| d.duplicates_absorbed).sum(),
                rejected: devices.iter().map(|d| d.rejected).sum(),
                devices,
                store: "sqlite".into(),
            })
        })
    }

    fn events_for_device(&self, device_id: &str) -> Result<Vec<WireEvent>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT uuid, seq, call_id, type, recorded_at, session, mono_ms, payload FROM events \
                 WHERE device_id = ?1 ORDER BY seq, uuid",
            )?;
            let rows = st
                .query_map([device_id], |r| {
                    let payload: String = r.get(7)?;
                    Ok(WireEvent {
                        uuid: r.get(0)?,
                        seq: r.get(1)?,
                        call_id: r.get(2)?,
                        kind: r.get(3)?,
                        recorded_at: parse_time(&r.get::<_, String>(4)?)?,
                        session: r.get(5)?,
                        mono_ms: r.get(6)?,
                        payload: serde_json::from_str(&payload)
                            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, Box::new(e)))?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}

/// Reads what decides an upload batch of `device_id` ([`crate::ingest::IngestFacts`]).
fn ingest_facts(tx: &Transaction<'_>, device_id: &str, events: &[CheckedEvent]) -> Result<IngestFacts> {
    let watermark: i64 = tx
        .query_row("SELECT watermark FROM devices WHERE id = ?1", [device_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("device {device_id}")))?;
    let wanted = IngestFacts::wanted(events);
    let mut facts = IngestFacts { watermark, ..IngestFacts::default() };
    let mut holders = tx.prepare_cached("SELECT uuid FROM events WHERE device_id = ?1 AND seq = ?2")?;
    for seq in &wanted.seqs {
        let uuids = holders.query_map(params![device_id, seq], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
        if !uuids.is_empty() {
            facts.seq_holders.insert(*seq, uuids);
        }
    }
    let mut known =
        tx.prepare_cached("SELECT (SELECT device_id FROM events WHERE uuid = ?1), EXISTS (SELECT 1 FROM erased_events WHERE uuid = ?1)")?;
    for uuid in wanted.uuids {
        let (owner, erased): (Option<String>, bool) = known.query_row([&uuid], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if erased {
            facts.erased_uuids.insert(uuid.clone());
        }
        if let Some(owner) = owner {
            facts.owners.insert(uuid, owner);
        }
    }
    let mut erased_call = tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM erased_calls WHERE device_id = ?1 AND call_id = ?2)")?;
    for call_id in wanted.call_ids {
        if erased_call.query_row(params![device_id, call_id], |r| r.get::<_, bool>(0))? {
            facts.erased_calls.insert(call_id);
        }
    }
    let mut seen = tx.prepare_cached("SELECT seq FROM device_seqs WHERE device_id = ?1 AND seq > ?2 ORDER BY seq")?;
    facts.seen_above = seen.query_map(params![device_id, watermark], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(facts)
}

/// Persists a planned upload batch ([`crate::ingest::plan`]) and the device's counters.
fn persist_ingest(tx: &Transaction<'_>, device_id: &str, ch: &IngestChanges<'_>, skew_ms: i64, now: DateTime<Utc>) -> Result<()> {
    let received_at = time_text(now);
    let mut insert_event = tx.prepare_cached(
        "INSERT INTO events (uuid, device_id, seq, call_id, type, recorded_at, recorded_at_corrected, \
         session, mono_ms, payload, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for (e, recorded_at_corrected) in &ch.inserts {
        let payload = serde_json::to_string(&e.payload).map_err(|err| Error::Internal(err.to_string()))?;
        insert_event.execute(params![
            e.uuid,
            device_id,
            e.seq,
            e.call_id,
            e.kind,
            time_text(e.recorded_at),
            time_text(*recorded_at_corrected),
            e.session,
            e.mono_ms,
            payload,
            received_at
        ])?;
    }
    let mut enqueue = tx.prepare_cached("INSERT OR IGNORE INTO analysis_queue (device_id, call_id, queued_at) VALUES (?1, ?2, ?3)")?;
    for call_id in &ch.enqueue_calls {
        enqueue.execute(params![device_id, call_id, received_at])?;
    }
    let mut insert_rejected =
        tx.prepare_cached("INSERT OR IGNORE INTO rejected_events (uuid, device_id, seq, reason, received_at) VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let mut new_rejections = 0i64;
    for r in &ch.rejections {
        new_rejections += insert_rejected.execute(params![r.uuid, device_id, r.seq, r.reason, received_at])? as i64;
    }
    let mut insert_seq = tx.prepare_cached("INSERT OR IGNORE INTO device_seqs (device_id, seq) VALUES (?1, ?2)")?;
    for seq in &ch.remember_seqs {
        insert_seq.execute(params![device_id, seq])?;
    }
    let watermark = ch.outcome.watermark;
    if watermark > ch.old_watermark {
        tx.execute("DELETE FROM device_seqs WHERE device_id = ?1 AND seq <= ?2", params![device_id, watermark])?;
    }
    tx.execute(
        "UPDATE devices SET watermark = ?2, skew_ms = ?3, last_seen_at = ?4, events_received = events_received + ?5, \
         duplicates = duplicates + ?6, rejected = rejected + ?7 WHERE id = ?1",
        params![
            device_id,
            watermark,
            skew_ms,
            received_at,
            ch.outcome.accepted.len() as i64,
            ch.outcome.duplicates.len() as i64,
            new_rejections
        ],
    )?;
    Ok(())
}
