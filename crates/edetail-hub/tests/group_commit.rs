//! Group commit of upload batches (ADR 0017, ADR 0021): batches that arrive while another is
//! written are committed together, each in its own savepoint: on SQLite all devices' batches,
//! on PostgreSQL one device's. Every batch gets exactly its own answer, a failing batch fails
//! alone, and when the group's commit fails (a full database) every batch of the group fails
//! and none of it is stored; sent again, all are taken once.

mod common;

use std::sync::Arc;

use chrono::Utc;
use edetail_hub::Error;
use edetail_hub::postgres::PgStore;
use edetail_hub::sqlite::SqliteStore;
use edetail_hub::store::{CheckedEvent, CredentialStore, IngestStore};
use edetail_hub::testkit::TestDatabase;

const DEVICES: usize = 6;
const BATCHES: usize = 30;
const EVENTS: usize = 40;

fn batch(first_seq: i64, n: usize, pad: usize) -> Vec<CheckedEvent> {
    (0..n as i64)
        .map(|i| {
            let mut event = common::event(first_seq + i);
            if pad > 0 {
                event.payload = serde_json::json!({"slide": "intro", "dwell_ms": 1200, "pad": "x".repeat(pad)});
            }
            CheckedEvent::Valid { recorded_at_corrected: event.recorded_at, event, payload_json: None }
        })
        .collect()
}

fn uuids(events: &[CheckedEvent]) -> Vec<&str> {
    events.iter().map(|e| if let CheckedEvent::Valid { event, .. } = e { event.uuid.as_str() } else { "" }).collect()
}

/// A batch for a device that does not exist fails alone, in the middle of groups.
fn unknown_device_fails_alone(store: &dyn IngestStore) {
    let err = store.apply_batch("no-such-device", &batch(1, 3, 0), 0, Utc::now()).unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
}

fn store_with_devices(dir: &std::path::Path) -> Arc<SqliteStore> {
    let store = Arc::new(SqliteStore::open(dir).unwrap());
    for d in 0..DEVICES {
        store.add_device(&format!("dev-{d}"), "rep", "north", &format!("tok-{d}"), Utc::now(), None, None).unwrap();
    }
    store
}

#[test]
fn concurrent_batches_share_commits_and_each_gets_its_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_devices(dir.path());
    let threads: Vec<_> = (0..DEVICES)
        .map(|d| {
            let store = store.clone();
            std::thread::spawn(move || {
                let device = format!("dev-{d}");
                for b in 0..BATCHES {
                    let events = batch((b * EVENTS) as i64 + 1, EVENTS, 0);
                    let o = store.apply_batch(&device, &events, 0, Utc::now()).unwrap();
                    assert_eq!(o.accepted, uuids(&events), "each batch is answered with its own events");
                    assert_eq!(o.watermark, ((b + 1) * EVENTS) as i64, "the device's own watermark");
                    if b % 7 == 3 {
                        unknown_device_fails_alone(&*store);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = store.stats().unwrap();
    assert_eq!(stats.events_received, (DEVICES * BATCHES * EVENTS) as u64, "every event stored once");
    for d in 0..DEVICES {
        let stored = store.events_for_device(&format!("dev-{d}")).unwrap();
        assert_eq!(stored.len(), BATCHES * EVENTS);
    }
    let (batches, commits) = store.ingest_commits();
    assert_eq!(batches, (DEVICES * BATCHES) as u64, "failed batches are not counted as written");
    assert!(commits < batches, "concurrent batches shared commits: {batches} batches in {commits} commits");
    eprintln!("group commit: {batches} batches in {commits} commits");
}

#[test]
fn a_failed_group_commit_fails_every_batch_of_the_group_and_stores_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_devices(dir.path());
    store.limit_growth(4).unwrap();
    // Big batches from every device at once: the database fills up mid-group.
    let batches: Arc<Vec<Vec<Vec<CheckedEvent>>>> =
        Arc::new((0..DEVICES).map(|_| (0..4).map(|b| batch(b * 20 + 1, 20, 4000)).collect()).collect());
    let send_all = |store: &Arc<SqliteStore>| -> Vec<Result<usize, Error>> {
        let threads: Vec<_> = (0..DEVICES)
            .map(|d| {
                let (store, batches) = (store.clone(), batches.clone());
                std::thread::spawn(move || {
                    let device = format!("dev-{d}");
                    batches[d].iter().map(|b| store.apply_batch(&device, b, 0, Utc::now()).map(|o| o.accepted.len())).collect::<Vec<_>>()
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    };
    let first = send_all(&store);
    let failed = first.iter().filter(|r| r.is_err()).count();
    assert!(failed > 0, "the capped database filled up");
    for r in first.iter().filter_map(|r| r.as_ref().err()) {
        assert!(r.is_storage_full(), "a failed group answers storage full to each of its batches: {r}");
    }
    let taken: usize = first.iter().filter_map(|r| r.as_ref().ok()).sum();
    assert_eq!(store.stats().unwrap().events_received, taken as u64, "only answered batches were stored");
    // Space again: everything sent again is taken exactly once (the answered ones as duplicates).
    store.limit_growth(1_000_000).unwrap();
    let again = send_all(&store);
    assert!(again.iter().all(|r| r.is_ok()), "{again:?}");
    assert_eq!(store.stats().unwrap().events_received, (DEVICES * 4 * 20) as u64);
}

/// PostgreSQL groups one device's batches (its row lock serialises them anyway): a device with
/// several batches in flight at once, as the sync engine sends them, shares commits; each batch
/// is answered with its own events, every event is stored once, and an unknown device's
/// batches each fail alone.
#[test]
fn postgres_groups_one_devices_concurrent_batches() {
    const SENDERS: usize = 4;
    let db = TestDatabase::new();
    let store = Arc::new(PgStore::connect(&db.url, 8).unwrap());
    store.add_device("dev-0", "rep", "north", "tok-0", Utc::now(), None, None).unwrap();
    let threads: Vec<_> = (0..SENDERS)
        .map(|s| {
            let store = store.clone();
            std::thread::spawn(move || {
                for b in 0..BATCHES {
                    // Sender s sends every SENDERS-th batch of the device's sequence.
                    let first = ((b * SENDERS + s) * EVENTS) as i64 + 1;
                    let events = batch(first, EVENTS, 0);
                    let o = store.apply_batch("dev-0", &events, 0, Utc::now()).unwrap();
                    assert_eq!(o.accepted, uuids(&events), "each batch is answered with its own events");
                    if b % 7 == 3 {
                        unknown_device_fails_alone(&*store);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total = SENDERS * BATCHES * EVENTS;
    let stats = store.stats().unwrap();
    assert_eq!(stats.events_received, total as u64, "every event stored once");
    assert_eq!(stats.devices[0].watermark, total as i64, "no gap left: the watermark is the last seq");
    assert_eq!(store.events_for_device("dev-0").unwrap().len(), total);
    let (batches, commits) = store.ingest_commits();
    assert_eq!(batches, (SENDERS * BATCHES) as u64, "failed batches are not counted as written");
    assert!(commits < batches, "a device's concurrent batches shared commits: {batches} batches in {commits} commits");
    eprintln!("group commit (PostgreSQL, one device, {SENDERS} senders): {batches} batches in {commits} commits");
}
