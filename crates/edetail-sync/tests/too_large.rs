//! 413 `too_large` against the real hub (`edetail_hub::spawn_local`) with its real limits, alone
//! and behind an `edetail_faultproxy::FaultProxy` acting as a reverse proxy with a smaller body
//! limit: batches are halved until they pass, an event over the protocol's batch limit is parked
//! with its reason (never dropped, never blocking the rest), and an event refused by a limit below
//! the protocol's is neither parked nor acknowledged.

use std::collections::BTreeSet;
use std::sync::Arc;

use edetail_bundle::SecretKey;
use edetail_core::{Device, DeviceConfig};
use edetail_faultproxy::{FaultKind, FaultPlan, FaultProxy};
use edetail_hub::{DeviceCredentials, Hub, HubConfig};
use edetail_protocol::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use edetail_sync::{Error, FailureClass, StaticToken, SyncConfig, SyncEngine};
use serde_json::json;

/// A hub on loopback with a fault proxy in front, both on their own runtime.
struct Setup {
    hub: Hub,
    hub_url: String,
    proxy: FaultProxy,
    creds: DeviceCredentials,
    device: Arc<Device>,
    _rt: tokio::runtime::Runtime,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn setup() -> Setup {
    let hub_dir = tempfile::tempdir().expect("tempdir");
    let key = SecretKey::from_seed(&[7u8; 32]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (hub_url, hub, _task) =
        rt.block_on(edetail_hub::spawn_local(HubConfig::local(hub_dir.path().join("hub"), vec![key.public()]))).expect("hub starts");
    let upstream = hub_url.trim_start_matches("http://").parse().expect("hub address");
    let proxy = rt.block_on(FaultProxy::start(upstream, FaultPlan::default())).expect("proxy");
    let creds = hub.add_device("rep-1", "north").expect("device added");
    let dev_dir = tempfile::tempdir().expect("tempdir");
    let config = DeviceConfig { trusted_keys: vec![key.public()], ..DeviceConfig::new("rep-1") };
    let device = Arc::new(Device::open(dev_dir.path(), config).expect("device opens"));
    Setup { hub, hub_url, proxy, creds, device, _rt: rt, _dirs: (hub_dir, dev_dir) }
}

impl Setup {
    fn engine(&self, url: &str) -> SyncEngine {
        let config = SyncConfig::new(url, self.creds.device_id.clone(), Arc::new(StaticToken(self.creds.token.clone())));
        SyncEngine::new(self.device.clone(), config).expect("engine")
    }

    /// Appends an event to the device's outbox with plain SQL, as an older app version could
    /// have; returns (seq, uuid).
    fn insert_raw_event(&self, kind: &str) -> (i64, String) {
        let conn = rusqlite::Connection::open(self.device.dir().join("edetail.sqlite3")).expect("device db");
        conn.busy_timeout(std::time::Duration::from_secs(5)).expect("busy timeout");
        let uuid = uuid::Uuid::new_v4().to_string();
        conn.execute(
            "INSERT INTO events (uuid, call_id, type, recorded_at, session, mono_ms, payload) VALUES (?1, NULL, ?2, ?3, 1, 0, '{}')",
            rusqlite::params![uuid, kind, chrono::Utc::now().timestamp_millis()],
        )
        .expect("raw insert");
        (conn.last_insert_rowid(), uuid)
    }

    fn stored_uuids(&self) -> Vec<String> {
        self.hub.events_for_device(&self.creds.device_id).expect("events").into_iter().map(|e| e.uuid).collect()
    }
}

/// `len` hex digits from a seeded xorshift: compresses about 2:1, like real payload entropy.
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x % 16) as u32, 16).expect("hex digit")
        })
        .collect()
}

#[test]
fn an_event_over_the_protocols_batch_limit_is_parked_and_the_rest_uploaded() {
    let s = setup();
    let mut small = Vec::new();
    for i in 0..30 {
        small.push(s.device.calls().record(None, "custom", json!({"n": i})).expect("recorded").1);
    }
    // The core refuses such an event today (type <= 128 bytes, payload <= 64 KiB), but an outbox
    // written by an older app may hold one that no batch can carry: write it as such an app did.
    // The real hub answers its batch of one with 413.
    let huge_type = format!("custom.{}", noise(1, MAX_BATCH_BYTES + 1_000));
    assert!(s.device.calls().record(None, &huge_type, json!({})).is_err(), "the core refuses an oversized type");
    let (huge_seq, huge_uuid) = s.insert_raw_event(&huge_type);
    for i in 30..60 {
        small.push(s.device.calls().record(None, "custom", json!({"n": i})).expect("recorded").1);
    }

    let engine = s.engine(&s.hub_url);
    let r = engine.sync_now().expect("the sync completes: the huge event does not block the outbox");
    eprintln!("huge event: {r:?}");
    assert_eq!((r.events_accepted, r.events_parked, r.batches_split, r.failed_attempts), (60, 1, 0, 0), "{r:?}");
    let parked = s.device.outbox().parked().expect("parked");
    assert_eq!(parked.len(), 1);
    assert_eq!((parked[0].seq, parked[0].uuid.as_str()), (huge_seq, huge_uuid.as_str()));
    let reason = parked[0].parked_reason.as_deref().expect("a reason");
    assert!(reason.contains("too large") && reason.contains("413"), "{reason}");
    assert!(reason.len() < 200, "the reason names sizes, not content: {reason}");

    // The hub holds every small event once, and a stub (same uuid and seq, no content) for the
    // huge one, so its watermark for this device is not held back.
    let events = s.hub.events_for_device(&s.creds.device_id).expect("events");
    let stub = events.iter().find(|e| e.uuid == huge_uuid).expect("a stub for the huge event");
    assert_eq!((stub.seq, stub.kind.as_str()), (huge_seq, edetail_sync::engine::OVERSIZED_STUB_TYPE));
    let stored: BTreeSet<String> = events.iter().filter(|e| e.uuid != huge_uuid).map(|e| e.uuid.clone()).collect();
    assert_eq!(stored, small.iter().cloned().collect(), "the hub holds every small event once");
    let watermark = s.hub.stats().expect("stats").devices[0].watermark;
    assert_eq!(watermark, 61, "the hub's watermark passes the parked event");
    let stats = s.device.outbox().stats().expect("stats");
    assert_eq!((stats.pending, stats.acked, stats.parked), (0, 60, 1));

    // Parked stays parked: the next sync sends nothing.
    let again = engine.sync_now().expect("second sync");
    assert_eq!((again.batches, again.events_parked, again.batches_split), (0, 0, 0));
}

#[test]
fn a_smaller_limit_in_front_of_the_hub_halves_batches_until_they_pass() {
    let s = setup();
    /// Body limit of the "reverse proxy", on gzipped bodies: a full batch is several times over.
    const LIMIT: usize = 32 * 1024;
    s.proxy.set_request_body_limit(Some(LIMIT));
    let mut recorded = BTreeSet::new();
    for i in 0..1_200u64 {
        recorded.insert(s.device.calls().record(None, "custom", json!({"n": i, "trace": noise(i + 1, 600)})).expect("recorded").1);
    }

    let engine = s.engine(&s.proxy.url());
    let r = engine.sync_now().expect("the sync completes through the limit");
    let refused = s.proxy.stats().injected(FaultKind::BodyTooLarge);
    eprintln!("limit {LIMIT} B: {} batches, {} splits, {refused} refused with 413", r.batches, r.batches_split);
    assert!(r.batches_split >= 1, "the limit was hit: {r:?}");
    assert_eq!(r.batches_split as u64, refused, "every 413 halved the batch, none was a failed attempt");
    // Halved sizes are kept for the rest of the sync: at most log2(500) splits, not one per batch.
    assert!(r.batches_split <= MAX_BATCH_EVENTS.ilog2() as usize, "{r:?}");
    assert_eq!((r.events_accepted, r.events_duplicates, r.events_parked, r.failed_attempts), (1_200, 0, 0, 0), "{r:?}");
    let stored = s.stored_uuids();
    assert_eq!(stored.len(), 1_200, "no duplicates at the hub");
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), recorded);
    assert_eq!(s.device.outbox().stats().expect("stats").pending, 0);
}

#[test]
fn an_ordinary_event_refused_as_too_large_stops_the_sync_without_parking_it() {
    let s = setup();
    // A misconfigured limit far below the protocol's: even one ordinary event is refused.
    s.proxy.set_request_body_limit(Some(100));
    for i in 0..40 {
        s.device.calls().record(None, "custom", json!({"n": i})).expect("recorded");
    }
    let engine = s.engine(&s.proxy.url());
    let err = engine.sync_now().expect_err("the sync stops");
    eprintln!("misconfigured limit: {err}");
    assert_eq!(err.class(), Some(FailureClass::Permanent), "{err}");
    assert!(matches!(err, Error::Failed { attempts: 1, .. }), "{err}");
    assert!(err.to_string().contains("limit in front of the hub"), "{err}");
    let stats = s.device.outbox().stats().expect("stats");
    assert_eq!((stats.pending, stats.parked, stats.acked), (40, 0, 0), "compliance data is not parked for a proxy's limit");
    // 40 -> 20 -> 10 -> 5 -> 2 -> 1 event: five splits, then the batch of one refused.
    assert_eq!(s.proxy.stats().injected(FaultKind::BodyTooLarge), 6);
    assert!(s.stored_uuids().is_empty());

    // Once the limit is fixed, everything goes through.
    s.proxy.set_request_body_limit(None);
    let r = engine.sync_now().expect("sync after the fix");
    assert_eq!((r.events_accepted, r.events_parked), (40, 0));
}
