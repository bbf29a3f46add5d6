//! The ingest rules, written once: [`plan`] is a pure function from a checked upload batch and
//! what the store knows about it ([`IngestFacts`]) to the changes to persist
//! ([`IngestChanges`]): events to insert, duplicates, rejections with their reasons, finished
//! calls to queue for analysis, the sequence numbers to remember and the new watermark. Each
//! backend reads the facts and persists the changes in one transaction; neither decides
//! anything about an event itself.
//!
//! The rules:
//! - an event of an erased HCP (its uuid tombstoned, or its call erased on this device) is
//!   acknowledged as a duplicate and never stored again (ADR 0011);
//! - an event whose `(device, seq)` is held by another uuid, stored or earlier in the batch, is
//!   rejected ([`seq_reused`]);
//! - an event whose uuid another device's stored event carries is rejected ([`FOREIGN_UUID`]);
//!   one this device already stored (or stored earlier in the batch) is a duplicate;
//! - an event at or below the device's pruned prefix (its events pruned after analysis) is
//!   acknowledged as a duplicate and never stored again;
//! - a stored event that ends a call ([`is_call_end`]) queues the call for analysis;
//! - the watermark is the highest seq such that every seq from 1 up to it was stored, absorbed
//!   or rejected; seen seqs above it are remembered until the gap closes.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use edetail_protocol::{EventKind, RejectedEvent, WireEvent};

/// An event of an upload batch after validation: to store, or rejected permanently.
#[derive(Debug, Clone)]
pub enum CheckedEvent {
    Valid {
        event: WireEvent,
        recorded_at_corrected: DateTime<Utc>,
        /// The payload as the device sent it (JSON text), when the caller has it: stored as is.
        /// `None`: the store writes `event.payload` out.
        payload_json: Option<String>,
    },
    Rejected {
        uuid: String,
        seq: i64,
        reason: String,
    },
}

/// The outcome of applying one batch (one transaction).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutcome {
    pub accepted: Vec<String>,
    pub duplicates: Vec<String>,
    pub rejected: Vec<RejectedEvent>,
    pub watermark: i64,
}

/// Rejection reason for an event whose uuid another device's stored event already carries.
pub const FOREIGN_UUID: &str = "uuid already used by another device's event";

/// Rejection reason for an event whose `(device, seq)` another stored event (another uuid)
/// already holds: a device never reuses a sequence number, so one of the two is forged or the
/// device's outbox was reset; the first stays, the second is never stored.
pub fn seq_reused(seq: i64) -> String {
    format!("seq {seq} is already used by another event")
}

/// Event kinds that finish a call: the call is queued for analysis when one is stored.
pub fn is_call_end(kind: &str) -> bool {
    matches!(kind, "call_ended" | "call_interrupted")
}

/// The HCP a stored event's call is with, when it is a `call_started` naming her: the store
/// indexes the call under her id (`call_hcps`) for erasure. Every path that stores events uses
/// it (device batches, microsite visits).
pub fn call_hcp(kind: &str, payload: &serde_json::Value) -> Option<String> {
    if kind != EventKind::CallStarted.as_str() {
        return None;
    }
    // An id with a NUL is no HCP's (and PostgreSQL text cannot hold it).
    payload.get("hcp_id")?.as_str().filter(|h| !h.contains('\0')).map(str::to_string)
}

/// What the store knows that decides a batch, read in the batch's transaction (after locking
/// the device, so no other batch of the device changes it meanwhile).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestFacts {
    /// The device's watermark before the batch.
    pub watermark: i64,
    /// Every event of the device up to this seq was pruned after analysis (or never stored):
    /// a valid event at or below it is acknowledged as a duplicate.
    pub pruned_through: i64,
    /// For the seqs of the batch's valid events ([`IngestFacts::wanted`]): the uuids of this
    /// device's stored events at that seq (absent or empty: none).
    pub seq_holders: HashMap<i64, Vec<String>>,
    /// For the uuids of the batch's valid events: the device whose stored event carries it
    /// (absent: not stored).
    pub owners: HashMap<String, String>,
    /// Uuids of the batch whose events were erased (tombstones).
    pub erased_uuids: HashSet<String>,
    /// Call ids of the batch erased on this device.
    pub erased_calls: HashSet<String>,
    /// Seqs seen earlier above the watermark (remembered until the gap below them closes).
    pub seen_above: Vec<i64>,
}

/// The keys a store reads [`IngestFacts`] for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Seqs of valid events, deduplicated, in batch order.
    pub seqs: Vec<i64>,
    /// Uuids of valid events, deduplicated, in batch order.
    pub uuids: Vec<String>,
    /// Call ids of valid events, deduplicated, in batch order.
    pub call_ids: Vec<String>,
}

impl IngestFacts {
    /// What to read for `events` (only valid events are looked up).
    pub fn wanted(events: &[CheckedEvent]) -> Wanted {
        let (mut seqs, mut uuids, mut calls) = (HashSet::new(), HashSet::new(), HashSet::new());
        let mut w = Wanted::default();
        for ev in events {
            if let CheckedEvent::Valid { event: e, .. } = ev {
                if seqs.insert(e.seq) {
                    w.seqs.push(e.seq);
                }
                if uuids.insert(e.uuid.as_str()) {
                    w.uuids.push(e.uuid.clone());
                }
                if let Some(c) = &e.call_id
                    && calls.insert(c.as_str())
                {
                    w.call_ids.push(c.clone());
                }
            }
        }
        w
    }
}

/// A rejected event, to record in `rejected_events` (the store counts the rows it adds: a
/// rejection already recorded for the device and uuid is not counted again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub uuid: String,
    pub seq: i64,
    pub reason: String,
}

/// What one batch changes, for the store to persist in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestChanges<'a> {
    /// Events to store, in batch order, with their corrected times. None is stored yet, none
    /// is erased, and no two share a uuid.
    pub inserts: Vec<Insert<'a>>,
    /// Calls of this device to queue for analysis (their end is among `inserts`), in order,
    /// deduplicated.
    pub enqueue_calls: Vec<String>,
    /// `(call_id, hcp_id)` of each stored `call_started` that names its HCP: the index by which
    /// an erasure finds an HCP's calls without reading every call's first event.
    pub call_hcps: Vec<(String, String)>,
    /// Rejections to record, in batch order.
    pub rejections: Vec<Rejection>,
    /// Seqs seen by this batch above the new watermark, ascending: kept until the gap closes.
    pub remember_seqs: Vec<i64>,
    /// The watermark before the batch: remembered seqs up to the new one are forgotten.
    pub old_watermark: i64,
    /// The answer to the device: accepted (= `inserts`), duplicates, rejected, new watermark.
    pub outcome: BatchOutcome,
}

/// An event to store, with its corrected time and its payload text when the device's is at hand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Insert<'a> {
    pub event: &'a WireEvent,
    pub recorded_at_corrected: DateTime<Utc>,
    pub payload_json: Option<&'a str>,
}

impl Insert<'_> {
    /// The payload text to store: the device's as sent, else `event.payload` written out.
    pub fn payload_text(&self) -> Result<std::borrow::Cow<'_, str>, serde_json::Error> {
        match self.payload_json {
            Some(text) => Ok(std::borrow::Cow::Borrowed(text)),
            None => serde_json::to_string(&self.event.payload).map(std::borrow::Cow::Owned),
        }
    }
}

/// Plans one batch of `device_id` (pure: reads nothing but its arguments).
pub fn plan<'a>(device_id: &str, events: &'a [CheckedEvent], facts: &IngestFacts) -> IngestChanges<'a> {
    let mut taken: HashMap<i64, Vec<&str>> = HashMap::new();
    let mut stored_here: HashSet<&str> = HashSet::new();
    let mut enqueued: HashSet<&str> = HashSet::new();
    let mut seen: BTreeSet<i64> = facts.seen_above.iter().copied().filter(|s| *s > facts.watermark).collect();
    let mut batch_seen: BTreeSet<i64> = BTreeSet::new();
    let mut ch = IngestChanges {
        inserts: Vec::new(),
        enqueue_calls: Vec::new(),
        call_hcps: Vec::new(),
        rejections: Vec::new(),
        remember_seqs: Vec::new(),
        old_watermark: facts.watermark,
        outcome: BatchOutcome::default(),
    };
    let reject = |ch: &mut IngestChanges<'a>, uuid: &str, seq: i64, reason: String| {
        ch.outcome.rejected.push(RejectedEvent { uuid: uuid.to_string(), reason: reason.clone() });
        ch.rejections.push(Rejection { uuid: uuid.to_string(), seq, reason });
    };
    for ev in events {
        let seq = match ev {
            CheckedEvent::Rejected { uuid, seq, reason } => {
                reject(&mut ch, uuid, *seq, reason.clone());
                *seq
            }
            CheckedEvent::Valid { event: e, recorded_at_corrected, payload_json } => {
                // A seq already held by another uuid (stored, or earlier in this batch).
                if e.seq <= facts.pruned_through {
                    // Pruned after analysis (or settled before): never stored again. The
                    // prefix never passes the watermark, so the seq is settled already.
                    ch.outcome.duplicates.push(e.uuid.clone());
                    continue;
                }
                let holders = taken
                    .entry(e.seq)
                    .or_insert_with(|| facts.seq_holders.get(&e.seq).map(|h| h.iter().map(String::as_str).collect()).unwrap_or_default());
                if !holders.is_empty() && !holders.contains(&e.uuid.as_str()) {
                    reject(&mut ch, &e.uuid, e.seq, seq_reused(e.seq));
                } else {
                    if holders.is_empty() {
                        holders.push(&e.uuid);
                    }
                    let erased = facts.erased_uuids.contains(&e.uuid) || e.call_id.as_ref().is_some_and(|c| facts.erased_calls.contains(c));
                    if erased {
                        // Erased (ADR 0011): acknowledged like a duplicate, never stored again.
                        ch.outcome.duplicates.push(e.uuid.clone());
                    } else if let Some(owner) = facts.owners.get(&e.uuid) {
                        if owner == device_id {
                            ch.outcome.duplicates.push(e.uuid.clone());
                        } else {
                            reject(&mut ch, &e.uuid, e.seq, FOREIGN_UUID.to_string());
                        }
                    } else if !stored_here.insert(&e.uuid) {
                        ch.outcome.duplicates.push(e.uuid.clone());
                    } else {
                        ch.inserts.push(Insert {
                            event: e,
                            recorded_at_corrected: *recorded_at_corrected,
                            payload_json: payload_json.as_deref(),
                        });
                        ch.outcome.accepted.push(e.uuid.clone());
                        if let Some(call_id) = &e.call_id
                            && is_call_end(&e.kind)
                            && enqueued.insert(call_id)
                        {
                            ch.enqueue_calls.push(call_id.clone());
                        }
                        if let Some(hcp) = call_hcp(&e.kind, &e.payload)
                            && let Some(call_id) = &e.call_id
                        {
                            ch.call_hcps.push((call_id.clone(), hcp));
                        }
                    }
                }
                e.seq
            }
        };
        if seq > facts.watermark {
            seen.insert(seq);
            batch_seen.insert(seq);
        }
    }
    // Advance over the contiguous run of seen sequence numbers.
    let mut watermark = facts.watermark;
    for s in &seen {
        if *s != watermark + 1 {
            break;
        }
        watermark = *s;
    }
    ch.remember_seqs = batch_seen.into_iter().filter(|s| *s > watermark).collect();
    ch.outcome.watermark = watermark;
    ch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(uuid: &str, seq: i64, call: Option<&str>, kind: &str) -> CheckedEvent {
        let t = DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z").unwrap().with_timezone(&Utc);
        CheckedEvent::Valid {
            event: WireEvent {
                uuid: uuid.into(),
                seq,
                call_id: call.map(str::to_string),
                kind: kind.into(),
                recorded_at: t,
                session: 1,
                mono_ms: 0,
                payload: serde_json::json!({}),
            },
            recorded_at_corrected: t,
            payload_json: None,
        }
    }

    fn bad(uuid: &str, seq: i64, reason: &str) -> CheckedEvent {
        CheckedEvent::Rejected { uuid: uuid.into(), seq, reason: reason.into() }
    }

    fn inserted(ch: &IngestChanges<'_>) -> Vec<String> {
        ch.inserts.iter().map(|i| i.event.uuid.clone()).collect()
    }

    fn reasons(ch: &IngestChanges<'_>) -> Vec<(String, String)> {
        ch.rejections.iter().map(|r| (r.uuid.clone(), r.reason.clone())).collect()
    }

    /// Stored `call_started` events that name an HCP index the call under her id; a duplicate,
    /// an erased call or a call_started without an HCP adds nothing.
    #[test]
    fn stored_call_starts_index_their_hcp() {
        let with_hcp = |uuid: &str, seq: i64, call: &str, hcp: serde_json::Value| {
            let mut e = ev(uuid, seq, Some(call), "call_started");
            if let CheckedEvent::Valid { event, .. } = &mut e {
                event.payload = serde_json::json!({"hcp_id": hcp, "bundle_id": "deck"});
            }
            e
        };
        let events = vec![
            with_hcp("a", 1, "c1", serde_json::json!("hcp-1")),
            with_hcp("b", 2, "c2", serde_json::json!(null)),
            with_hcp("c", 3, "c3", serde_json::json!("hcp-3")),
            with_hcp("d", 4, "c4", serde_json::json!("hcp-4")),
            ev("e", 5, Some("c5"), "slide_enter"),
        ];
        let facts = IngestFacts {
            owners: [("c".to_string(), "d1".to_string())].into(),
            erased_calls: ["c4".to_string()].into(),
            ..IngestFacts::default()
        };
        let ch = plan("d1", &events, &facts);
        assert_eq!(ch.call_hcps, [("c1".to_string(), "hcp-1".to_string())]);
    }

    #[test]
    fn fresh_events_are_inserted_and_advance_the_watermark() {
        let events = vec![ev("a", 1, Some("c1"), "slide_enter"), ev("b", 2, Some("c1"), "call_ended"), ev("c", 3, None, "app")];
        let ch = plan("d1", &events, &IngestFacts::default());
        assert_eq!(inserted(&ch), ["a", "b", "c"]);
        assert_eq!(ch.outcome.accepted, ["a", "b", "c"]);
        assert_eq!(ch.enqueue_calls, ["c1"]);
        assert_eq!(ch.outcome.watermark, 3);
        assert!(ch.remember_seqs.is_empty());
    }

    #[test]
    fn events_in_the_pruned_prefix_are_duplicates_never_stored_or_queued_again() {
        // Seqs 1-2 were analysed and pruned; the device re-sends them with a new one.
        let events =
            vec![ev("a", 1, Some("c1"), "slide_enter"), ev("b", 2, Some("c1"), "call_ended"), ev("c", 3, Some("c2"), "call_ended")];
        let facts = IngestFacts { watermark: 2, pruned_through: 2, ..IngestFacts::default() };
        let ch = plan("d1", &events, &facts);
        assert_eq!(inserted(&ch), ["c"]);
        assert_eq!(ch.outcome.duplicates, ["a", "b"]);
        assert_eq!(ch.enqueue_calls, ["c2"]);
        assert_eq!(ch.outcome.watermark, 3);
    }

    #[test]
    fn stored_and_repeated_uuids_are_duplicates() {
        let events = vec![ev("a", 1, None, "x"), ev("b", 2, None, "x"), ev("b", 2, None, "x")];
        let facts = IngestFacts { owners: HashMap::from([("a".into(), "d1".into())]), ..IngestFacts::default() };
        let ch = plan("d1", &events, &facts);
        assert_eq!(inserted(&ch), ["b"]);
        assert_eq!(ch.outcome.duplicates, ["a", "b"]);
        assert_eq!(ch.outcome.watermark, 2);
    }

    #[test]
    fn a_uuid_of_another_device_is_rejected_not_absorbed() {
        let events = vec![ev("a", 1, Some("c"), "call_ended")];
        let facts = IngestFacts { owners: HashMap::from([("a".into(), "d2".into())]), ..IngestFacts::default() };
        let ch = plan("d1", &events, &facts);
        assert!(ch.inserts.is_empty() && ch.outcome.duplicates.is_empty() && ch.enqueue_calls.is_empty());
        assert_eq!(reasons(&ch), [("a".to_string(), FOREIGN_UUID.to_string())]);
        assert_eq!(ch.outcome.rejected, [RejectedEvent { uuid: "a".into(), reason: FOREIGN_UUID.into() }]);
        assert_eq!(ch.rejections[0].seq, 1);
        assert_eq!(ch.outcome.watermark, 1, "a rejected event counts for the watermark");
    }

    #[test]
    fn a_seq_reused_within_the_batch_or_against_stored_events_is_rejected() {
        let events = vec![
            ev("a", 1, None, "x"),
            ev("b", 1, None, "x"), // reuses seq 1 of "a", earlier in the batch
            ev("c", 2, None, "x"), // seq 2 is stored under "z"
            ev("z", 2, None, "x"), // the holder itself: a duplicate, not a reuse
            ev("a", 1, None, "x"), // the same event again: a duplicate
        ];
        let facts = IngestFacts {
            seq_holders: HashMap::from([(2, vec!["z".to_string()])]),
            owners: HashMap::from([("z".into(), "d1".into())]),
            ..IngestFacts::default()
        };
        let ch = plan("d1", &events, &facts);
        assert_eq!(inserted(&ch), ["a"]);
        assert_eq!(reasons(&ch), [("b".to_string(), seq_reused(1)), ("c".to_string(), seq_reused(2))]);
        assert_eq!(ch.outcome.duplicates, ["z", "a"]);
        assert_eq!(ch.outcome.watermark, 2);
    }

    #[test]
    fn events_of_an_erased_hcp_are_absorbed_as_duplicates() {
        let events = vec![
            ev("tomb", 1, Some("other"), "slide_enter"),
            ev("in-call", 2, Some("gone"), "call_ended"),
            ev("live", 3, Some("kept"), "call_ended"),
        ];
        let facts = IngestFacts {
            erased_uuids: HashSet::from(["tomb".to_string()]),
            erased_calls: HashSet::from(["gone".to_string()]),
            // An erased uuid counts as erased even if another device's event carries it.
            owners: HashMap::from([("tomb".into(), "d2".into())]),
            ..IngestFacts::default()
        };
        let ch = plan("d1", &events, &facts);
        assert_eq!(ch.outcome.duplicates, ["tomb", "in-call"]);
        assert_eq!(inserted(&ch), ["live"]);
        assert_eq!(ch.enqueue_calls, ["kept"], "an erased call is never queued");
        assert!(ch.rejections.is_empty());
        assert_eq!(ch.outcome.watermark, 3);
    }

    #[test]
    fn the_watermark_stops_at_gaps_and_counts_rejections_and_remembered_seqs() {
        // Watermark 2; seqs 4 and 7 were seen before. The batch brings 3 (rejected by the
        // hub's checks), 5, 8 and 2 (below the watermark: a duplicate, not remembered).
        let events = vec![bad("r", 3, "too old"), ev("e5", 5, None, "x"), ev("e8", 8, None, "x"), ev("old", 2, None, "x")];
        let facts = IngestFacts {
            watermark: 2,
            owners: HashMap::from([("old".into(), "d1".into())]),
            seen_above: vec![4, 7],
            ..IngestFacts::default()
        };
        let ch = plan("d1", &events, &facts);
        assert_eq!(ch.outcome.watermark, 5, "3 (rejected), 4 (seen before) and 5 close the gap; 6 is missing");
        assert_eq!(ch.remember_seqs, [8], "only this batch's seqs above the new watermark are new to remember");
        assert_eq!(ch.old_watermark, 2);
        assert_eq!(reasons(&ch), [("r".to_string(), "too old".to_string())]);
        assert_eq!(inserted(&ch), ["e5", "e8"]);

        // Nothing fills the gap: the watermark stays and every seq above it is remembered.
        let events = vec![ev("e6", 6, None, "x"), ev("e9", 9, None, "x")];
        let ch = plan("d1", &events, &IngestFacts { watermark: 2, seen_above: vec![4], ..IngestFacts::default() });
        assert_eq!(ch.outcome.watermark, 2);
        assert_eq!(ch.remember_seqs, [6, 9]);
    }

    #[test]
    fn a_call_ending_twice_is_queued_once() {
        let events = vec![ev("a", 1, Some("c"), "call_interrupted"), ev("b", 2, Some("c"), "call_ended"), ev("n", 3, None, "call_ended")];
        let ch = plan("d1", &events, &IngestFacts::default());
        assert_eq!(ch.enqueue_calls, ["c"], "queued once; an event without a call queues nothing");
    }

    #[test]
    fn wanted_lists_the_keys_of_valid_events_once() {
        let events = vec![ev("a", 1, Some("c"), "x"), ev("a", 1, Some("c"), "x"), bad("r", 2, "no"), ev("b", 3, None, "x")];
        let w = IngestFacts::wanted(&events);
        assert_eq!(w.seqs, [1, 3]);
        assert_eq!(w.uuids, ["a", "b"]);
        assert_eq!(w.call_ids, ["c"]);
    }
}
