//! Privacy on the device (ADR 0011): the hub's erasures and tracking consents, as they arrive
//! in the change feed.
//!
//! * Erasure: every call with the HCP goes (an open one is dropped), with its slide state,
//!   plans and the reps' saved call sequences (the local profile is derived from calls, so it
//!   goes too). Outbox events already
//!   acknowledged are deleted; events not yet uploaded are *blanked* in place (type
//!   [`ERASED_EVENT`], no call, empty payload): their seq and uuid stay, so the hub's
//!   contiguous watermark keeps advancing and nothing of the HCP is ever uploaded.
//! * Consent: `full` as before; `anonymous` calls record no HCP id (`call_started.hcp_id` null,
//!   no plan, no local profile); `off` calls record nothing at all, navigation still works.
//!   Switching an HCP to anonymous (or off) strips the HCP id from their queued events and from
//!   their local calls before anything else is uploaded, and the plan from their `call_plan`
//!   events (plan id, arm, sequence id, planned, kept, dropped) and saved sequences.

use chrono::{DateTime, Utc};
use edetail_protocol::{ConsentRecord, Erasure, EventKind, Tracking};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::context::Context;
use crate::error::Result;

/// Type of an outbox event blanked by an erasure before it was uploaded.
pub const ERASED_EVENT: &str = EventKind::Erased.as_str();

/// What an erasure removed here (counts only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LocalErasure {
    pub calls: usize,
    /// Acknowledged (or parked) events deleted.
    pub events_deleted: usize,
    /// Queued events blanked (uploaded as content-free placeholders).
    pub events_blanked: usize,
    pub plans: usize,
    /// Saved call sequences deleted.
    pub sequences: usize,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Ids of the local calls with this HCP.
fn calls_of(tx: &Transaction<'_>, hcp_id: &str) -> Result<Vec<String>> {
    let mut st = tx.prepare_cached("SELECT id FROM calls WHERE hcp_id = ?1")?;
    let rows = st.query_map([hcp_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// Erases an HCP inside a write transaction. Idempotent.
pub(crate) fn erase(tx: &Transaction<'_>, hcp_id: &str) -> Result<LocalErasure> {
    let calls = calls_of(tx, hcp_id)?;
    let mut out = LocalErasure { calls: calls.len(), ..LocalErasure::default() };
    for id in &calls {
        out.events_blanked += tx.execute(
            "UPDATE events SET type = ?2, call_id = NULL, payload = '{}' \
             WHERE call_id = ?1 AND acked_at IS NULL AND parked_reason IS NULL",
            params![id, ERASED_EVENT],
        )?;
        out.events_deleted += tx.execute("DELETE FROM events WHERE call_id = ?1", [id])?;
        tx.execute("DELETE FROM call_state WHERE call_id = ?1", [id])?;
        tx.execute("DELETE FROM calls WHERE id = ?1", [id])?;
    }
    out.plans = tx.execute("DELETE FROM plans WHERE hcp_id = ?1", [hcp_id])?;
    out.sequences = tx.execute("DELETE FROM sequences WHERE hcp_id = ?1", [hcp_id])?;
    tx.execute("DELETE FROM consents WHERE hcp_id = ?1", [hcp_id])?;
    Ok(out)
}

/// Stores a consent record when it is newer than the one held; anonymises the HCP's local
/// calls and queued events when it is not `full`. Returns whether it was applied.
pub(crate) fn apply_consent(tx: &Transaction<'_>, c: &ConsentRecord) -> Result<bool> {
    let held: Option<i64> = tx.query_row("SELECT updated_at FROM consents WHERE hcp_id = ?1", [&c.hcp_id], |r| r.get(0)).optional()?;
    if held.is_some_and(|h| h > ms(c.updated_at)) {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO consents (hcp_id, tracking, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (hcp_id) DO UPDATE SET tracking = excluded.tracking, updated_at = excluded.updated_at",
        params![c.hcp_id, c.tracking.as_str(), ms(c.updated_at)],
    )?;
    if c.tracking != Tracking::Full {
        anonymise(tx, &c.hcp_id, c.tracking)?;
    }
    Ok(true)
}

/// Strips the HCP id from the HCP's local calls, plans and outbox events (queued ones before
/// upload; acknowledged ones too, they only serve local history now). Her calls record at
/// `level` from now on (a call open now included), never more than they did: consent `off`
/// stops an open call recording, and an `off` call stays off under consent `anonymous`.
fn anonymise(tx: &Transaction<'_>, hcp_id: &str, level: Tracking) -> Result<()> {
    use serde_json::{Value, json};
    let strip = [
        (EventKind::CallStarted, &[("hcp_id", Value::Null), ("plan_id", Value::Null)][..]),
        (
            EventKind::CallPlan,
            &[
                ("plan_id", Value::Null),
                ("arm", Value::Null),
                ("sequence_id", Value::Null),
                ("planned", json!([])),
                ("kept", json!([])),
                ("dropped", json!([])),
            ][..],
        ),
    ];
    for id in calls_of(tx, hcp_id)? {
        for (kind, fields) in &strip {
            let mut st = tx.prepare_cached("SELECT seq, payload FROM events WHERE call_id = ?1 AND type = ?2")?;
            let rows: Vec<(i64, String)> =
                st.query_map(params![&id, kind.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
            for (seq, payload) in rows {
                let mut v: Value = serde_json::from_str(&payload).unwrap_or_else(|_| json!({}));
                if let Some(o) = v.as_object_mut() {
                    for (field, blank) in fields.iter() {
                        o.insert((*field).into(), blank.clone());
                    }
                }
                tx.execute("UPDATE events SET payload = ?2 WHERE seq = ?1", params![seq, v.to_string()])?;
            }
        }
        // Also the link to her saved sequence (keyed by her id); the order the call follows stays.
        tx.execute(
            "UPDATE calls SET hcp_id = NULL, sequence_id = NULL, \
             tracking = CASE WHEN tracking = 'off' OR ?2 = 'off' THEN 'off' ELSE 'anonymous' END WHERE id = ?1",
            params![&id, level.as_str()],
        )?;
    }
    tx.execute("DELETE FROM plans WHERE hcp_id = ?1", [hcp_id])?;
    // Saved sequences keep the rep's order, without the plan behind it.
    tx.execute("UPDATE sequences SET plan_id = NULL, arm = NULL, planned = '[]' WHERE hcp_id = ?1", [hcp_id])?;
    Ok(())
}

/// The privacy view of a device (`Device::privacy`).
#[derive(Debug, Clone, Copy)]
pub struct Privacy<'a> {
    ctx: &'a Context,
}

impl<'a> Privacy<'a> {
    pub(crate) fn new(ctx: &'a Context) -> Privacy<'a> {
        Privacy { ctx }
    }

    /// Erases everything this device holds about an HCP (an erasure from the hub's feed):
    /// calls (an open one is dropped), slide state, plans, profile, and outbox events, those
    /// not yet uploaded included (blanked, never uploaded with content). Idempotent.
    pub fn erase_hcp(&self, hcp_id: &str) -> Result<LocalErasure> {
        let out = self.ctx.databases().write(|tx| erase(tx, hcp_id))?;
        tracing::info!(calls = out.calls, events_blanked = out.events_blanked, "hcp erased on device");
        Ok(out)
    }

    /// Applies the erasures of a change-feed page.
    pub fn apply_erasures(&self, erasures: &[Erasure]) -> Result<usize> {
        for e in erasures {
            self.erase_hcp(&e.hcp_id)?;
        }
        Ok(erasures.len())
    }

    /// Applies consent records (newest `updated_at` per HCP wins); returns how many changed.
    pub fn apply_consents(&self, consents: &[ConsentRecord]) -> Result<usize> {
        self.ctx.databases().write(|tx| {
            let mut n = 0;
            for c in consents {
                n += usize::from(apply_consent(tx, c)?);
            }
            Ok(n)
        })
    }

    /// The tracking level for calls with this HCP ([`Tracking::DEFAULT`], full, without a
    /// consent record).
    pub fn consent_for(&self, hcp_id: &str) -> Result<Tracking> {
        self.ctx.databases().read(|c| crate::tracking::consent_for(c, hcp_id))
    }
}
