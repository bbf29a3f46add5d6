//! The SQLite store: upload batches (the facts [`crate::ingest::plan`] needs, then its changes),
//! stored events and figures (`IngestStore`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, MutexGuard};

use super::*;

/// Group commit (ADR 0017): upload batches that arrive while another group is being written
/// wait, then are written together by one of them, each in its own savepoint (a batch that
/// fails rolls back alone), with one commit and one fsync for the group. No batch is answered
/// before its group's commit; when the commit fails, every batch of the group fails (nothing of
/// any was stored, the devices send them again).
#[derive(Debug, Default)]
pub(super) struct GroupCommit {
    state: Mutex<GroupState>,
    done: Condvar,
    /// Batches written and transactions committed for them (figures: batches per commit).
    batches: AtomicU64,
    commits: AtomicU64,
}

#[derive(Debug, Default)]
struct GroupState {
    /// Batches waiting for the next group, oldest first.
    queue: Vec<Arc<Job>>,
    /// A group is being written.
    writing: bool,
}

/// A batch waiting for a group: its own copy of the events (the caller's borrow cannot cross
/// to the writing thread).
#[derive(Debug)]
struct Job {
    batch: Batch,
    outcome: Mutex<Option<Result<BatchOutcome>>>,
}

#[derive(Debug)]
struct Batch {
    device_id: String,
    events: Vec<CheckedEvent>,
    skew_ms: i64,
    now: DateTime<Utc>,
}

/// Batches written in one transaction at most (a group's commit answers all of them).
const MAX_GROUP: usize = 16;

impl GroupCommit {
    fn state(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends a writing turn: lets the next group go, and fails the batches of a turn that panicked.
struct Turn<'a> {
    group: &'a GroupCommit,
    jobs: &'a [Arc<Job>],
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        for job in self.jobs {
            let mut slot = job.outcome.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(Err(Error::Internal("writing the upload batch failed".into())));
            }
        }
        self.group.state().writing = false;
        self.group.done.notify_all();
    }
}

impl IngestStore for SqliteStore {
    fn apply_batch(&self, device_id: &str, events: &[CheckedEvent], skew_ms: i64, now: DateTime<Utc>) -> Result<BatchOutcome> {
        let group = &self.group;
        let mut st = group.state();
        if !st.writing && st.queue.is_empty() {
            // Nobody writing: this batch is a group of one, written from the caller's borrow.
            st.writing = true;
            drop(st);
            let _turn = Turn { group, jobs: &[] };
            let own = (device_id, events, skew_ms, now);
            return self.write_group(Some(own), &[]).unwrap_or_else(Err);
        }
        let job = Arc::new(Job {
            batch: Batch { device_id: device_id.to_string(), events: events.to_vec(), skew_ms, now },
            outcome: Mutex::new(None),
        });
        st.queue.push(job.clone());
        loop {
            if let Some(outcome) = job.outcome.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return outcome;
            }
            if st.writing {
                st = group.done.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // This thread writes the next group (its own batch is in it, or in a later one).
            st.writing = true;
            let n = st.queue.len().min(MAX_GROUP);
            let jobs: Vec<Arc<Job>> = st.queue.drain(..n).collect();
            drop(st);
            {
                let _turn = Turn { group, jobs: &jobs };
                if let Err(e) = self.write_group(None, &jobs) {
                    tracing::warn!(batches = jobs.len(), error = %e, "a group of upload batches failed to commit");
                }
            }
            st = group.state();
        }
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
        (self.group.batches.load(Ordering::Relaxed), self.group.commits.load(Ordering::Relaxed))
    }

    /// Writes `own` (the caller's batch) and then `jobs` in one transaction, each batch in a
    /// savepoint; sets each job's outcome once the transaction committed (or failed). Answers
    /// `own`'s outcome; `Err` when the commit failed.
    #[allow(clippy::type_complexity)]
    fn write_group(&self, own: Option<(&str, &[CheckedEvent], i64, DateTime<Utc>)>, jobs: &[Arc<Job>]) -> Result<Result<BatchOutcome>> {
        let mut own_outcome = None;
        let mut outcomes: Vec<Result<BatchOutcome>> = Vec::with_capacity(jobs.len());
        let committed = self.write(|tx| {
            if let Some((device_id, events, skew_ms, now)) = own {
                own_outcome = Some(in_savepoint(tx, || apply_one(tx, device_id, events, skew_ms, now))?);
            }
            for job in jobs {
                let b = &job.batch;
                outcomes.push(in_savepoint(tx, || apply_one(tx, &b.device_id, &b.events, b.skew_ms, b.now))?);
            }
            Ok(())
        });
        match committed {
            Ok(()) => {
                self.group.commits.fetch_add(1, Ordering::Relaxed);
                let written = outcomes.iter().chain(&own_outcome).filter(|o| o.is_ok()).count();
                self.group.batches.fetch_add(written as u64, Ordering::Relaxed);
                for (job, outcome) in jobs.iter().zip(outcomes) {
                    *job.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                }
                Ok(own_outcome.unwrap_or_else(|| Err(Error::Internal("no batch of the caller's".into()))))
            }
            Err(e) => {
                for job in jobs {
                    *job.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(Err(group_failure(&e)));
                }
                Err(e)
            }
        }
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

/// What each other batch of a group whose commit failed answers: the same class of failure
/// (storage full stays 507), retryable; nothing of the group was stored.
fn group_failure(e: &Error) -> Error {
    if e.is_storage_full() {
        Error::StorageFull(format!("committing a group of upload batches: {e}"))
    } else {
        Error::Unavailable("committing a group of upload batches failed: send the batch again".into())
    }
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
