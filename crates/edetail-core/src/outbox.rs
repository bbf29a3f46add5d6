//! The event outbox: every recorded interaction, append-only, durable before `record` returns.
//!
//! Each event carries a client UUID (the hub's idempotency key), a per-device sequence number
//! (`seq`, never reused), the call id, UTC wall-clock time, the process session and monotonic
//! offset, a type and a JSON payload. Nothing is deleted before the hub acknowledged it;
//! acknowledged events may be compacted after a retention period. An event the hub rejects
//! permanently is parked with its reason, never dropped.

use edetail_protocol::{EventKind, Payload};
use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::clock::Stamp;
use crate::clock::from_ms;
use crate::db::Databases;
use crate::error::{Error, Result};

/// The event contract's limits: the hub rejects what exceeds them, so refusing such events here
/// keeps every event uploadable and no sequence number is ever held back on the device.
pub use edetail_protocol::event::{MAX_PAYLOAD_BYTES, MAX_TYPE_BYTES};

/// An event as stored and uploaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: i64,
    pub uuid: String,
    pub call_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    pub session: i64,
    pub mono_ms: i64,
    pub payload: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_reason: Option<String>,
}

/// The hub's answer to one uploaded batch, by sequence number (the uploader knows each event's
/// seq; marking by seq walks the table in order instead of looking every uuid up in its index).
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchAnswer<'a> {
    /// Events the hub holds, stored now or before (accepted and duplicates).
    pub durable: &'a [i64],
    /// Events the hub rejected permanently, with its reasons: parked, never dropped.
    pub rejected: &'a [(i64, &'a str)],
}

/// Marks acknowledged and parks per `answer` inside an open write transaction; answers how many
/// events were newly acknowledged (acknowledging twice changes nothing).
pub fn settle_in(tx: &Transaction<'_>, answer: &BatchAnswer<'_>, now_ms: i64) -> Result<usize> {
    // A batch's events are usually consecutive: one statement per run of consecutive seqs.
    let mut ack = tx.prepare_cached("UPDATE events SET acked_at = ?3 WHERE seq BETWEEN ?1 AND ?2 AND acked_at IS NULL")?;
    let mut n = 0;
    for (first, last) in runs(answer.durable) {
        n += ack.execute(params![first, last, now_ms])?;
    }
    let mut park = tx.prepare_cached("UPDATE events SET parked_reason = ?2 WHERE seq = ?1")?;
    for (seq, reason) in answer.rejected {
        park.execute(params![seq, reason])?;
    }
    Ok(n)
}

/// `seqs` as runs of consecutive numbers `(first, last)`, after sorting and deduplicating.
fn runs(seqs: &[i64]) -> Vec<(i64, i64)> {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for s in sorted {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == s => *last = s,
            _ => runs.push((s, s)),
        }
    }
    runs
}

/// What to record; the outbox adds uuid, seq and times.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent<'a> {
    pub call_id: Option<&'a str>,
    pub kind: &'a str,
    pub payload: Value,
}

/// Appends one event inside an open write transaction; returns (seq, uuid). The payload is
/// checked against its kind's contract and stored as given (unknown fields kept): the public
/// `record` path. The core's own events go through [`append_typed`].
pub fn append(tx: &Transaction<'_>, e: &NewEvent<'_>, stamp: Stamp) -> Result<(i64, String)> {
    let kind = parse_kind(e.kind)?;
    // The hub checks the same contract: what it would reject is never recorded.
    Payload::parse(&kind, &e.payload).map_err(Error::Invalid)?;
    insert(tx, e.call_id, &kind, &e.payload, stamp)
}

/// Appends one event built as its kind's typed payload (`Payload::SlideExit(SlideExit {..})`)
/// inside an open write transaction; returns (seq, uuid). Typed payloads match the contract by
/// construction; an open map (vendor and app-defined kinds) is checked as `append` checks it.
pub fn append_typed(tx: &Transaction<'_>, call_id: Option<&str>, payload: &Payload, stamp: Stamp) -> Result<(i64, String)> {
    let kind = parse_kind(payload.kind().as_str())?;
    let value = payload.to_value();
    if let Payload::Open(..) = payload {
        Payload::parse(&kind, &value).map_err(Error::Invalid)?;
    }
    insert(tx, call_id, &kind, &value, stamp)
}

/// The kind of a type string, or `Error::Invalid` naming (a cut of) it.
fn parse_kind(kind: &str) -> Result<EventKind> {
    EventKind::parse(kind).map_err(|why| {
        let shown: String = kind.chars().take(64).collect();
        Error::Invalid(format!("event type `{}` refused: {why}", shown.escape_debug()))
    })
}

/// Stores a checked event: refuses a payload over the limit, records nothing of a call whose
/// consent is off.
fn insert(tx: &Transaction<'_>, call_id: Option<&str>, kind: &EventKind, payload: &Value, stamp: Stamp) -> Result<(i64, String)> {
    let payload = serde_json::to_string(payload).map_err(|x| Error::Invalid(x.to_string()))?;
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Error::Invalid(format!("event payload is {} bytes; at most {MAX_PAYLOAD_BYTES}", payload.len())));
    }
    if let Some(call_id) = call_id
        && crate::tracking::call_tracking(tx, call_id)? == edetail_protocol::Tracking::Off
    {
        // Consent off (ADR 0011): nothing of the call is recorded.
        return Ok((0, String::new()));
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    tx.prepare_cached(
        "INSERT INTO events (uuid, call_id, type, recorded_at, session, mono_ms, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![uuid, call_id, kind.as_str(), stamp.wall_ms, stamp.session, stamp.mono_ms, payload])
    .map_err(Error::from_sql)?;
    Ok((tx.last_insert_rowid(), uuid))
}

fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let payload: String = r.get(7)?;
    Ok(Event {
        seq: r.get(0)?,
        uuid: r.get(1)?,
        call_id: r.get(2)?,
        kind: r.get(3)?,
        recorded_at: from_ms(r.get(4)?),
        session: r.get(5)?,
        mono_ms: r.get(6)?,
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        acked_at: r.get::<_, Option<i64>>(8)?.map(from_ms),
        parked_reason: r.get(9)?,
    })
}

const COLUMNS: &str = "seq, uuid, call_id, type, recorded_at, session, mono_ms, payload, acked_at, parked_reason";

/// A pending event as the uploader encodes it: the payload as stored, JSON text that is checked
/// but never parsed into a map on its way out ([`PendingUpload::wire`]).
#[derive(Debug, Clone)]
pub struct PendingUpload {
    pub seq: i64,
    pub uuid: String,
    pub call_id: Option<String>,
    pub kind: String,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    pub session: i64,
    pub mono_ms: i64,
    /// The stored payload; `null` where the stored text is not JSON (as [`Event`] reads it: the
    /// hub rejects it with a reason and the event is parked, never lost).
    pub payload: Box<serde_json::value::RawValue>,
}

impl PendingUpload {
    /// The event as encoded on the wire (the same bytes as the [`edetail_protocol::WireEvent`]).
    pub fn wire(&self) -> edetail_protocol::WireEventRef<'_> {
        edetail_protocol::WireEventRef {
            uuid: &self.uuid,
            seq: self.seq,
            call_id: self.call_id.as_deref(),
            kind: &self.kind,
            recorded_at: self.recorded_at,
            session: self.session,
            mono_ms: self.mono_ms,
            payload: &self.payload,
        }
    }
}

fn row_to_upload(r: &rusqlite::Row<'_>) -> rusqlite::Result<PendingUpload> {
    let payload: String = r.get(7)?;
    Ok(PendingUpload {
        seq: r.get(0)?,
        uuid: r.get(1)?,
        call_id: r.get(2)?,
        kind: r.get(3)?,
        recorded_at: from_ms(r.get(4)?),
        session: r.get(5)?,
        mono_ms: r.get(6)?,
        payload: serde_json::value::RawValue::from_string(payload)
            .or_else(|_| serde_json::value::RawValue::from_string("null".into()))
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, Box::new(e)))?,
    })
}

/// Read and acknowledgement side of the outbox.
#[derive(Debug, Clone, Copy)]
pub struct Outbox<'a> {
    db: &'a Databases,
}

/// Counts for the app and support tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxStats {
    pub total: i64,
    pub pending: i64,
    pub acked: i64,
    pub parked: i64,
    pub last_seq: i64,
}

impl<'a> Outbox<'a> {
    pub(crate) fn new(db: &'a Databases) -> Outbox<'a> {
        Outbox { db }
    }

    /// Events not yet acknowledged and not parked, oldest first.
    pub fn pending(&self, limit: usize) -> Result<Vec<Event>> {
        self.db.read(|c| {
            let sql = format!("SELECT {COLUMNS} FROM events WHERE acked_at IS NULL AND parked_reason IS NULL ORDER BY seq LIMIT ?1");
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map([limit as i64], row_to_event)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Pending events after `after_seq` (all pending ones: `None`), oldest first, as the uploader
    /// encodes them.
    pub fn pending_uploads(&self, after_seq: Option<i64>, limit: usize) -> Result<Vec<PendingUpload>> {
        self.db.read(|c| {
            let sql =
                format!("SELECT {COLUMNS} FROM events WHERE acked_at IS NULL AND parked_reason IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2");
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(params![after_seq.unwrap_or(0), limit as i64], row_to_upload)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// All events in sequence order (support tools, tests).
    pub fn all(&self, after_seq: i64, limit: usize) -> Result<Vec<Event>> {
        self.db.read(|c| {
            let sql = format!("SELECT {COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2");
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(params![after_seq, limit as i64], row_to_event)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Events of one call, in order.
    pub fn for_call(&self, call_id: &str) -> Result<Vec<Event>> {
        self.db.read(|c| {
            let sql = format!("SELECT {COLUMNS} FROM events WHERE call_id = ?1 ORDER BY seq");
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map([call_id], row_to_event)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Marks events acknowledged by the hub (idempotent: acking twice changes nothing).
    pub fn ack(&self, uuids: &[String], now_ms: i64) -> Result<usize> {
        self.db.write(|tx| {
            let mut st = tx.prepare_cached("UPDATE events SET acked_at = ?2 WHERE uuid = ?1 AND acked_at IS NULL")?;
            let mut n = 0;
            for u in uuids {
                n += st.execute(params![u, now_ms])?;
            }
            Ok(n)
        })
    }

    /// Applies the hub's answer to one uploaded batch ([`settle_in`]) in a transaction of its
    /// own; [`crate::Device::settle_upload`] also records the hub's clock in the same one.
    pub fn settle(&self, answer: &BatchAnswer<'_>, now_ms: i64) -> Result<usize> {
        self.db.write(|tx| settle_in(tx, answer, now_ms))
    }

    /// Parks an event the hub rejected permanently, with the hub's reason. It stays visible.
    pub fn park(&self, uuid: &str, reason: &str) -> Result<()> {
        self.db.write(|tx| {
            tx.execute("UPDATE events SET parked_reason = ?2 WHERE uuid = ?1", params![uuid, reason])?;
            Ok(())
        })
    }

    /// Parked events with their reasons.
    pub fn parked(&self) -> Result<Vec<Event>> {
        self.db.read(|c| {
            let sql = format!("SELECT {COLUMNS} FROM events WHERE parked_reason IS NOT NULL ORDER BY seq");
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map([], row_to_event)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Deletes events acknowledged before `acked_before_ms`. Never touches unacknowledged or
    /// parked events.
    pub fn compact(&self, acked_before_ms: i64) -> Result<usize> {
        self.db.write(|tx| {
            Ok(tx.execute("DELETE FROM events WHERE acked_at IS NOT NULL AND acked_at < ?1 AND parked_reason IS NULL", [acked_before_ms])?)
        })
    }

    pub fn stats(&self) -> Result<OutboxStats> {
        self.db.read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*),
                        COALESCE(SUM(acked_at IS NULL AND parked_reason IS NULL), 0),
                        COALESCE(SUM(acked_at IS NOT NULL), 0),
                        COALESCE(SUM(parked_reason IS NOT NULL), 0),
                        COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)
                 FROM events",
                [],
                |r| Ok(OutboxStats { total: r.get(0)?, pending: r.get(1)?, acked: r.get(2)?, parked: r.get(3)?, last_seq: r.get(4)? }),
            )?)
        })
    }
}

impl edetail_protocol::views::ViewEvent for Event {
    fn uuid(&self) -> &str {
        &self.uuid
    }
    fn seq(&self) -> Option<i64> {
        Some(self.seq)
    }
    fn kind(&self) -> &str {
        &self.kind
    }
    fn at(&self) -> chrono::DateTime<chrono::Utc> {
        self.recorded_at
    }
    fn payload(&self) -> &Value {
        &self.payload
    }
}

/// The outbox row as uploaded: the wire form carries everything but the device's own
/// bookkeeping (acknowledged, parked).
impl From<Event> for edetail_protocol::WireEvent {
    fn from(e: Event) -> edetail_protocol::WireEvent {
        edetail_protocol::WireEvent {
            uuid: e.uuid,
            seq: e.seq,
            call_id: e.call_id,
            kind: e.kind,
            recorded_at: e.recorded_at,
            session: e.session,
            mono_ms: e.mono_ms,
            payload: e.payload,
        }
    }
}
