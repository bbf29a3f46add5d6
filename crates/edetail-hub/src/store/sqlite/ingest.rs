//! The SQLite store: upload batches (the facts [`crate::ingest::plan`] needs, then its changes),
//! stored events and figures (`IngestStore`).

use super::*;
use crate::store::group_commit::Batch;

impl IngestStore for SqliteStore {
    /// Through the store's one group-commit lane (ADR 0017): a batch alone is written at once,
    /// batches that arrive while a group is written are committed together.
    fn apply_batch(&self, device_id: &str, events: &[CheckedEvent], skew_ms: i64, now: DateTime<Utc>) -> Result<BatchOutcome> {
        self.group.apply(
            "",
            || self.write(|tx| in_savepoint(tx, || apply_one(tx, device_id, events, skew_ms, now))).and_then(|outcome| outcome),
            || Batch { device_id: device_id.to_string(), events: events.to_vec(), skew_ms, now },
            |batches| {
                self.write(|tx| {
                    batches.iter().map(|b| in_savepoint(tx, || apply_one(tx, &b.device_id, &b.events, b.skew_ms, b.now))).collect()
                })
            },
        )
    }

    fn stats(&self) -> Result<HubStats> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, rep_id, territory, created_at, last_seen_at, watermark, skew_ms, events_received, duplicates, \
                 rejected, pruned_through_seq, events_pruned FROM devices WHERE id <> 'microsite' ORDER BY created_at, id",
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
                        pruned_through_seq: r.get(10)?,
                        events_pruned: r.get::<_, i64>(11)? as u64,
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
                events_pruned: devices.iter().map(|d| d.events_pruned).sum(),
                devices,
                store: "sqlite".into(),
            })
        })
    }

    fn prune_analysed_events(&self, recorded_before: DateTime<Utc>, audit: Option<&Audited<PruneReport>>) -> Result<PruneReport> {
        let cutoff = prune_cutoff(recorded_before);
        let devices: Vec<String> = self.read(|c| {
            let mut st = c.prepare("SELECT id FROM devices WHERE id <> 'microsite' ORDER BY id")?;
            Ok(st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
        })?;
        let mut total = PruneReport::default();
        let mut next = 0;
        while next < devices.len() {
            // One transaction (and audit entry, when it deleted anything) per chunk of about
            // PRUNE_CHUNK events.
            let (report, done) = self.write(|tx| {
                let mut report = PruneReport::default();
                let mut i = next;
                while i < devices.len() && report.events < PRUNE_CHUNK {
                    let n = prune_device(tx, &devices[i], &cutoff)?;
                    if n > 0 {
                        report.devices += 1;
                        report.events += n;
                    }
                    i += 1;
                }
                if let Some(a) = audit.filter(|_| report.events > 0) {
                    insert_audit(tx, &a.entry_for(&report))?;
                }
                Ok((report, i))
            })?;
            total.add(report);
            next = done;
        }
        Ok(total)
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

impl SqliteStore {
    /// Upload batches stored so far and the transactions that committed them (group commit
    /// writes several batches per transaction when they arrive together).
    pub fn ingest_commits(&self) -> (u64, u64) {
        self.group.figures()
    }
}

/// Runs `f` in a savepoint of `tx`: kept when it succeeds, rolled back alone when it fails.
/// The outer `Err` means the whole transaction is lost: the savepoint failed, or SQLite rolled
/// the transaction back itself (as it may on SQLITE_FULL or an I/O error), in which case it
/// carries `f`'s error.
fn in_savepoint<T>(tx: &Transaction<'_>, f: impl FnOnce() -> Result<T>) -> Result<Result<T>> {
    tx.execute_batch("SAVEPOINT upload_batch")?;
    match f() {
        Ok(v) => {
            tx.execute_batch("RELEASE upload_batch")?;
            Ok(Ok(v))
        }
        Err(e) => match tx.execute_batch("ROLLBACK TO upload_batch; RELEASE upload_batch") {
            Ok(()) => Ok(Err(e)),
            Err(_) => Err(e),
        },
    }
}

/// One upload batch: the facts it needs, the plan, the changes.
fn apply_one(tx: &Transaction<'_>, device_id: &str, events: &[CheckedEvent], skew_ms: i64, now: DateTime<Utc>) -> Result<BatchOutcome> {
    let facts = ingest_facts(tx, device_id, events)?;
    let changes = crate::ingest::plan(device_id, events, &facts);
    persist_ingest(tx, device_id, &changes, skew_ms, now)?;
    Ok(changes.outcome)
}

/// Reads what decides an upload batch of `device_id` ([`crate::ingest::IngestFacts`]).
fn ingest_facts(tx: &Transaction<'_>, device_id: &str, events: &[CheckedEvent]) -> Result<IngestFacts> {
    let (watermark, pruned_through): (i64, i64) = tx
        .query_row("SELECT watermark, pruned_through_seq FROM devices WHERE id = ?1", [device_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("device {device_id}")))?;
    let wanted = IngestFacts::wanted(events);
    let mut facts = IngestFacts { watermark, pruned_through, ..IngestFacts::default() };
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
    for ins in &ch.inserts {
        let (e, recorded_at_corrected) = (ins.event, &ins.recorded_at_corrected);
        let payload = ins.payload_text().map_err(|err| Error::Internal(err.to_string()))?;
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
    let mut call_hcp = tx.prepare_cached("INSERT OR IGNORE INTO call_hcps (hcp_id, device_id, call_id) VALUES (?1, ?2, ?3)")?;
    let mut hcp_territory =
        tx.prepare_cached("INSERT OR IGNORE INTO hcp_territories (territory, hcp_id) SELECT territory, ?2 FROM devices WHERE id = ?1")?;
    for (call_id, hcp_id) in &ch.call_hcps {
        call_hcp.execute(params![hcp_id, device_id, call_id])?;
        hcp_territory.execute(params![device_id, hcp_id])?;
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

/// The pruning cutoff as stored times compare: whole seconds, `YYYY-MM-DDTHH:MM:SS` (stored
/// times carry a variable fraction, so they are compared on their first 19 characters).
fn prune_cutoff(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// The first event of a device (`?1`) after its pruned prefix (`?2`) that must stay: recorded
/// at or after the cutoff (`?3`), or of a call whose analysis is not done. By `events_by_device`,
/// then the queue's `(device_id, call_id)` key.
pub(crate) const PRUNE_HOLD_SQL: &str = "SELECT MIN(e.seq) FROM events e WHERE e.device_id = ?1 AND e.seq > ?2 \
     AND (substr(e.recorded_at_corrected, 1, 19) >= ?3 OR (e.call_id IS NOT NULL AND NOT EXISTS \
     (SELECT 1 FROM analysis_queue q WHERE q.device_id = e.device_id AND q.call_id = e.call_id AND q.done_at IS NOT NULL)))";

/// Prunes one device's analysed events before the cutoff as a prefix of its sequence; returns
/// how many were deleted.
fn prune_device(tx: &Transaction<'_>, device_id: &str, cutoff: &str) -> Result<u64> {
    let (watermark, through): (i64, i64) =
        tx.query_row("SELECT watermark, pruned_through_seq FROM devices WHERE id = ?1", [device_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let hold: Option<i64> = tx.prepare_cached(PRUNE_HOLD_SQL)?.query_row(params![device_id, through, cutoff], |r| r.get(0))?;
    let end = hold.map_or(watermark, |h| watermark.min(h - 1));
    if end <= through {
        return Ok(0);
    }
    let n = tx.execute("DELETE FROM events WHERE device_id = ?1 AND seq > ?2 AND seq <= ?3", params![device_id, through, end])? as u64;
    tx.execute(
        "UPDATE devices SET pruned_through_seq = ?2, events_pruned = events_pruned + ?3 WHERE id = ?1",
        params![device_id, end, n as i64],
    )?;
    Ok(n)
}
