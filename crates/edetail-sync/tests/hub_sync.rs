//! End-to-end sync against the real reference hub (`edetail_hub::spawn_local`) on loopback:
//! exactly-once upload, nothing re-sent, install, delta download, resume with Range, revoke,
//! wrong token, one sync at a time per data directory.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::{SecretKey, Sha256Digest};
use edetail_core::{Device, DeviceConfig};
use edetail_hub::{DeviceCredentials, Hub, HubConfig};
use edetail_sync::engine::TMP_DIR;
use edetail_sync::{Error, FailureClass, StaticToken, SyncConfig, SyncEngine, SyncListener, SyncProgress, SyncState};
use serde_json::json;

mod common;

const TERRITORY: &str = "north";

/// A hub on loopback, kept alive by its own runtime (the engine under test must be driven
/// from plain threads, as the apps do).
struct TestHub {
    url: String,
    hub: Hub,
    key: SecretKey,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl TestHub {
    fn start() -> TestHub {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SecretKey::from_seed(&[7u8; 32]);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let (url, hub, _task) =
            rt.block_on(edetail_hub::spawn_local(HubConfig::local(dir.path().join("hub"), vec![key.public()]))).expect("hub starts");
        TestHub { url, hub, key, _rt: rt, _dir: dir }
    }

    fn device(&self) -> DeviceCredentials {
        self.hub.add_device("rep-1", TERRITORY).expect("device added")
    }

    fn publish(&self, b: &SampleBundle) {
        self.hub.publish_zip(&b.zip(Some(&self.key)), &[TERRITORY.to_string()]).expect("published");
    }
}

struct TestDevice {
    device: Arc<Device>,
    dir: tempfile::TempDir,
}

fn open_device(key: &SecretKey) -> TestDevice {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DeviceConfig { trusted_keys: vec![key.public()], ..DeviceConfig::new("rep-1") };
    let device = Arc::new(Device::open(&dir.path().join("device"), config).expect("device opens"));
    TestDevice { device, dir }
}

#[derive(Default)]
struct Recorder {
    bytes: AtomicU64,
    uploaded: AtomicUsize,
    states: Mutex<Vec<SyncState>>,
}

impl SyncListener for Recorder {
    fn on_progress(&self, p: SyncProgress) {
        match p {
            SyncProgress::BytesDownloaded { bytes, .. } => {
                self.bytes.fetch_add(bytes, Ordering::SeqCst);
            }
            SyncProgress::EventsUploaded { accepted, .. } => {
                self.uploaded.fetch_add(accepted, Ordering::SeqCst);
            }
            SyncProgress::StateChanged { state } => self.states.lock().expect("lock").push(state),
            _ => {}
        }
    }
}

fn engine(hub: &TestHub, dev: &TestDevice, creds: &DeviceCredentials, token: &str) -> (SyncEngine, Arc<Recorder>) {
    let e = SyncEngine::new(
        dev.device.clone(),
        SyncConfig::new(hub.url.clone(), creds.device_id.clone(), Arc::new(StaticToken(token.to_string()))),
    )
    .expect("engine");
    let rec = Arc::new(Recorder::default());
    e.set_listener(rec.clone());
    (e, rec)
}

/// Sample bundle with a larger media file so that downloads and resumes are measurable.
fn bundle_v1() -> SampleBundle {
    let mut b = SampleBundle::new();
    let video: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    b.files.insert("shared/video.mp4".into(), video);
    b
}

#[test]
fn uploads_every_event_exactly_once_and_resends_nothing() {
    let hub = TestHub::start();
    let creds = hub.device();
    let dev = open_device(&hub.key);
    let mut uuids = Vec::new();
    for i in 0..1_200 {
        uuids.push(dev.device.calls().record(None, "custom", json!({"n": i})).expect("recorded").1);
    }
    // The core refuses a payload the hub would reject; an older app's outbox may hold one.
    assert!(dev.device.calls().record(None, "custom", json!([1, 2, 3])).is_err(), "the core refuses a non-object payload");
    let (bad_seq, bad_uuid) = {
        let conn = rusqlite::Connection::open(dev.device.dir().join("edetail.sqlite3")).expect("device db");
        conn.busy_timeout(std::time::Duration::from_secs(5)).expect("busy timeout");
        let uuid = uuid::Uuid::new_v4().to_string();
        conn.execute(
            "INSERT INTO events (uuid, call_id, type, recorded_at, session, mono_ms, payload) VALUES (?1, NULL, 'custom', ?2, 1, 0, '[1,2,3]')",
            rusqlite::params![uuid, chrono::Utc::now().timestamp_millis()],
        )
        .expect("raw insert");
        (conn.last_insert_rowid(), uuid)
    };
    let (engine, rec) = engine(&hub, &dev, &creds, &creds.token);

    let report = engine.sync_now().expect("sync succeeds");
    assert_eq!(report.events_accepted, 1_200);
    assert_eq!(report.events_parked, 1);
    assert!(report.batches >= 3, "1201 events need at least 3 batches of 500, got {}", report.batches);
    assert_eq!(rec.uploaded.load(Ordering::SeqCst), 1_200);
    assert_eq!(engine.state(), SyncState::Done);

    let stored = hub.hub.events_for_device(&creds.device_id).expect("events");
    let mut stored_uuids: Vec<String> = stored.iter().map(|e| e.uuid.clone()).collect();
    stored_uuids.sort();
    let mut expected = uuids.clone();
    expected.sort();
    assert_eq!(stored_uuids, expected, "the hub holds exactly the recorded events, once");

    let stats = dev.device.outbox().stats().expect("stats");
    assert_eq!((stats.pending, stats.acked, stats.parked), (0, 1_200, 1));
    let parked = dev.device.outbox().parked().expect("parked");
    assert_eq!((parked[0].seq, parked[0].uuid.as_str()), (bad_seq, bad_uuid.as_str()));
    assert!(parked[0].parked_reason.as_deref().is_some_and(|r| r.contains("object")));

    // Again: nothing to send.
    let again = engine.sync_now().expect("second sync");
    assert_eq!((again.batches, again.events_accepted, again.events_duplicates), (0, 0, 0));
    assert_eq!(hub.hub.events_for_device(&creds.device_id).expect("events").len(), 1_200);
    assert_eq!(hub.hub.rate_limited_total(), 0, "a full upload never hits the rate limits");
}

#[test]
fn installs_v1_then_downloads_only_the_changed_blob_of_v2_then_revocation_closes_it() {
    let hub = TestHub::start();
    let creds = hub.device();
    let dev = open_device(&hub.key);
    let (engine, rec) = engine(&hub, &dev, &creds, &creds.token);

    let v1 = bundle_v1();
    hub.publish(&v1);
    let r1 = engine.sync_now().expect("sync v1");
    assert_eq!(r1.bundles_activated, vec!["com.example.sample@1".to_string()]);
    let total: u64 = v1.files.values().map(|f| f.len() as u64).sum();
    assert_eq!(r1.bytes_downloaded, total);
    assert_eq!(rec.bytes.load(Ordering::SeqCst), total);
    assert_eq!(dev.device.content().active_version("com.example.sample").expect("active"), Some(1));
    dev.device.check_openable("com.example.sample").expect("v1 opens");

    let mut v2 = v1.clone();
    v2.manifest.version = 2;
    let changed = b"<!doctype html><title>Efficacy</title><h1>HR 0.71</h1>".to_vec();
    v2.files.insert("slides/efficacy/index.html".into(), changed.clone());
    hub.publish(&v2);
    let before = rec.bytes.load(Ordering::SeqCst);
    let r2 = engine.sync_now().expect("sync v2");
    assert_eq!(r2.bundles_activated, vec!["com.example.sample@2".to_string()]);
    assert_eq!(r2.blobs_downloaded, 1, "only the changed file is fetched");
    assert_eq!(rec.bytes.load(Ordering::SeqCst) - before, changed.len() as u64);
    assert_eq!(dev.device.content().active_version("com.example.sample").expect("active"), Some(2));

    // Nothing new: an empty page, nothing downloaded.
    let r3 = engine.sync_now().expect("sync idle");
    assert!(r3.bundles_activated.is_empty());
    assert_eq!(r3.bytes_downloaded, 0);

    hub.hub.revoke("com.example.sample", "withdrawn by medical").expect("revoked");
    let r4 = engine.sync_now().expect("sync revocation");
    assert_eq!(r4.revocations, 1);
    assert!(dev.device.check_openable("com.example.sample").is_err(), "revoked content does not open");
    assert_eq!(hub.hub.rate_limited_total(), 0, "full content installs never hit the rate limits");
}

#[test]
fn resumes_a_partial_download_with_range_and_verifies_it() {
    let hub = TestHub::start();
    let creds = hub.device();
    let dev = open_device(&hub.key);
    let v1 = bundle_v1();
    hub.publish(&v1);
    let video = v1.files["shared/video.mp4"].clone();
    let sha = Sha256Digest::of(&video).to_hex();
    // An interrupted earlier download left the first half on disk.
    let tmp = dev.device.dir().join(TMP_DIR);
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let half = video.len() / 2;
    std::fs::write(tmp.join(format!("{sha}.partial")), &video[..half]).expect("partial");

    let (engine, rec) = engine(&hub, &dev, &creds, &creds.token);
    let r = engine.sync_now().expect("sync");
    assert_eq!(r.blobs_resumed, 1);
    let total: u64 = v1.files.values().map(|f| f.len() as u64).sum();
    assert_eq!(r.bytes_downloaded, total - half as u64, "the first half is not fetched again");
    assert_eq!(rec.bytes.load(Ordering::SeqCst), total - half as u64);
    assert!(!tmp.join(format!("{sha}.partial")).exists(), "the partial is consumed");
    dev.device.check_openable("com.example.sample").expect("installed");
    assert!(dev.device.content().blobs().exists(&Sha256Digest::of(&video)));
    drop(dev.dir);
}

#[test]
fn a_corrupt_partial_is_discarded_and_the_blob_fetched_again() {
    let hub = TestHub::start();
    let creds = hub.device();
    let dev = open_device(&hub.key);
    let v1 = bundle_v1();
    hub.publish(&v1);
    let video = v1.files["shared/video.mp4"].clone();
    let sha = Sha256Digest::of(&video).to_hex();
    let tmp = dev.device.dir().join(TMP_DIR);
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let half = video.len() / 2;
    let mut garbage = video[..half].to_vec();
    garbage[10] ^= 0xff;
    std::fs::write(tmp.join(format!("{sha}.partial")), &garbage).expect("partial");

    let (engine, _rec) = engine(&hub, &dev, &creds, &creds.token);
    let r = engine.sync_now().expect("sync recovers after one transient failure");
    assert_eq!(r.failed_attempts, 1, "the hash mismatch costs one retry");
    assert_eq!(dev.device.content().active_version("com.example.sample").expect("active"), Some(1));
    assert!(dev.device.content().blobs().exists(&Sha256Digest::of(&video)));
}

#[test]
fn a_wrong_token_is_an_auth_failure_and_acknowledges_nothing() {
    let hub = TestHub::start();
    let creds = hub.device();
    let dev = open_device(&hub.key);
    for i in 0..10 {
        dev.device.calls().record(None, "custom", json!({"n": i})).expect("recorded");
    }
    let (engine, _rec) = engine(&hub, &dev, &creds, "not-the-token");
    let err = engine.sync_now().expect_err("must fail");
    assert_eq!(err.class(), Some(FailureClass::Auth), "{err}");
    assert!(matches!(err, Error::Failed { attempts: 1, .. }));
    assert_eq!(engine.state(), SyncState::Idle);
    assert!(engine.next_sync_at_ms().is_some(), "a failed sync schedules its retry");
    assert_eq!(dev.device.outbox().stats().expect("stats").pending, 10);
    assert!(hub.hub.events_for_device(&creds.device_id).expect("events").is_empty());
}

#[test]
fn offline_attempts_nothing_and_concurrent_syncs_are_refused() {
    let hub = TestHub::start();
    let creds = hub.device();
    let dev = open_device(&hub.key);
    dev.device.calls().record(None, "custom", json!({"n": 1})).expect("recorded");
    let (engine, _rec) = engine(&hub, &dev, &creds, &creds.token);
    engine.set_online(false);
    assert_eq!(engine.state(), SyncState::Offline);
    assert!(matches!(engine.sync_now(), Err(Error::Offline)));
    assert_eq!(dev.device.outbox().stats().expect("stats").pending, 1);
    engine.set_online(true);

    // Two threads at once: one runs, the other is refused (or runs after; both fine), and the
    // hub still holds the event once.
    let engine = Arc::new(engine);
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let e = engine.clone();
            std::thread::spawn(move || e.sync_now())
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().expect("thread")).collect();
    assert!(results.iter().any(|r| r.is_ok()));
    assert!(results.iter().all(|r| r.is_ok() || matches!(r, Err(Error::AlreadyRunning))));
    assert_eq!(hub.hub.events_for_device(&creds.device_id).expect("events").len(), 1);
}

#[test]
fn async_callers_on_another_runtime_can_sync() {
    let hub = TestHub::start();
    let creds = hub.device();
    let dev = open_device(&hub.key);
    dev.device.calls().record(None, "custom", json!({"n": 1})).expect("recorded");
    let (engine, _rec) = engine(&hub, &dev, &creds, &creds.token);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let report = rt.block_on(async {
        assert!(matches!(engine.sync_now(), Err(Error::BlockingInAsync)));
        engine.sync().await
    });
    assert_eq!(report.expect("sync").events_accepted, 1);
    // Dropping the engine inside an async context must not panic.
    rt.block_on(async move { drop(engine) });
}

/// A provider whose first token is stale: the 401 triggers one refresh, then the sync works.
#[derive(Default)]
struct RotatingToken {
    good: String,
    refreshed: AtomicUsize,
}

#[async_trait::async_trait]
impl edetail_sync::TokenProvider for RotatingToken {
    async fn token(&self) -> Result<String, edetail_sync::TokenError> {
        Ok(if self.refreshed.load(Ordering::SeqCst) > 0 { self.good.clone() } else { "stale".into() })
    }
    async fn refresh(&self) {
        self.refreshed.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_401_refreshes_the_token_once_and_retries() {
    let hub = TestHub::start();
    let creds = hub.device();
    let dev = open_device(&hub.key);
    dev.device.calls().record(None, "custom", json!({"n": 1})).expect("recorded");
    let tokens = Arc::new(RotatingToken { good: creds.token.clone(), refreshed: AtomicUsize::new(0) });
    let engine =
        SyncEngine::new(dev.device.clone(), SyncConfig::new(hub.url.clone(), creds.device_id.clone(), tokens.clone())).expect("engine");
    let r = engine.sync_now().expect("sync after refresh");
    assert_eq!(r.events_accepted, 1);
    assert_eq!(tokens.refreshed.load(Ordering::SeqCst), 1);
}

#[test]
fn two_engines_on_one_data_directory_never_sync_at_once() {
    let hub = TestHub::start();
    let creds = hub.device();
    let dev = open_device(&hub.key);
    dev.device.calls().record(None, "custom", json!({"n": 1})).expect("recorded");
    // The first engine talks to a hub in maintenance (503, retry in 60 s): its sync stays running,
    // waiting, until it is told the device went offline.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let body = r#"{"code":"unavailable","message":"maintenance","retry_after_ms":60000}"#;
    let (maintenance_url, _, _) = rt.block_on(common::scripted(common::answer("503 Service Unavailable", "", body)));
    let first = Arc::new(
        SyncEngine::new(
            dev.device.clone(),
            SyncConfig::new(maintenance_url, creds.device_id.clone(), Arc::new(StaticToken(creds.token.clone()))),
        )
        .expect("engine"),
    );
    let (second, _rec) = engine(&hub, &dev, &creds, &creds.token);
    let running = {
        let first = first.clone();
        std::thread::spawn(move || first.sync_now())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(first.state(), SyncState::Waiting { .. }) {
        assert!(Instant::now() < deadline, "the first sync never reached its wait: {:?}", first.state());
        std::thread::sleep(Duration::from_millis(10));
    }

    // Another engine over the same Device is refused at once, and so is the first engine itself.
    let asked = Instant::now();
    assert!(matches!(second.sync_now(), Err(Error::AlreadyRunning)));
    assert!(matches!(first.sync_now(), Err(Error::AlreadyRunning)));
    assert!(asked.elapsed() < Duration::from_secs(1), "refused without waiting: {:?}", asked.elapsed());
    assert_eq!(second.state(), SyncState::Idle, "the refused sync changed nothing");
    assert!(hub.hub.events_for_device(&creds.device_id).expect("events").is_empty());

    // Once the first sync has stopped, the second engine syncs.
    first.set_online(false);
    assert!(matches!(running.join().expect("thread"), Err(Error::Offline)));
    let r = second.sync_now().expect("the data directory is free again");
    assert_eq!(r.events_accepted, 1);
    assert_eq!(hub.hub.events_for_device(&creds.device_id).expect("events").len(), 1);
    assert!(dev.device.dir().join(edetail_sync::engine::SYNC_LOCK_FILE).exists());
}

/// A deck of many files (a first install of it goes through the whole zip).
fn many_file_bundle() -> SampleBundle {
    let mut b = SampleBundle::new();
    for i in 0..40u32 {
        let body: Vec<u8> = (0..20_000u32).map(|j| (j.wrapping_mul(2_654_435_761).wrapping_add(i * 97) >> 11) as u8).collect();
        b.files.insert(format!("shared/media/clip-{i:02}.bin"), body);
    }
    b
}

/// A first install of a deck of many files fetches the signed zip in one resumable request
/// and installs it in one batch; a partial zip left by an interrupted sync is resumed with
/// Range, not fetched again.
#[test]
fn a_first_install_uses_the_whole_zip_and_resumes_it() {
    let hub = TestHub::start();
    let creds = hub.device();
    let dev = open_device(&hub.key);
    let b = many_file_bundle();
    let zip = b.zip(Some(&hub.key));
    hub.hub.publish_zip(&zip, &[TERRITORY.to_string()]).expect("published");
    let tmp = dev.device.dir().join(TMP_DIR);
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let third = zip.len() / 3;
    let partial = tmp.join("com.example.sample-1.zip.partial");
    std::fs::write(&partial, &zip[..third]).expect("partial");

    let (engine, rec) = engine(&hub, &dev, &creds, &creds.token);
    let r = engine.sync_now().expect("sync");
    assert_eq!((r.bundles_from_zip, r.zips_resumed, r.blobs_downloaded), (1, 1, 0), "{r:?}");
    assert_eq!(r.bundles_activated, vec!["com.example.sample@1".to_string()]);
    assert_eq!(r.bytes_downloaded, (zip.len() - third) as u64, "the first third is not fetched again");
    assert_eq!(rec.bytes.load(Ordering::SeqCst), 0, "zip bytes are reported as zip progress, not blob progress");
    assert!(!partial.exists(), "the partial zip is consumed");
    dev.device.check_openable("com.example.sample").expect("installed");
    for (path, body) in &b.files {
        assert!(dev.device.content().blobs().exists(&Sha256Digest::of(body)), "{path} stored");
    }
    // The next version changes one file: a delta, blob by blob.
    let mut v2 = b.clone();
    v2.manifest.version = 2;
    v2.files.insert("shared/media/clip-07.bin".into(), b"changed".to_vec());
    hub.publish(&v2);
    let r = engine.sync_now().expect("delta");
    assert_eq!((r.bundles_from_zip, r.blobs_downloaded, r.bytes_downloaded), (0, 1, 7), "{r:?}");
}

/// A partial zip that does not belong to the offered bundle (corrupt, or another version's)
/// fails the core's verification: it is discarded and the version is fetched blob by blob.
#[test]
fn a_corrupt_partial_zip_falls_back_to_blobs() {
    let hub = TestHub::start();
    let creds = hub.device();
    let dev = open_device(&hub.key);
    let b = many_file_bundle();
    let zip = b.zip(Some(&hub.key));
    hub.hub.publish_zip(&zip, &[TERRITORY.to_string()]).expect("published");
    let tmp = dev.device.dir().join(TMP_DIR);
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let mut garbage = zip[..zip.len() / 2].to_vec();
    for x in garbage.iter_mut().step_by(7) {
        *x ^= 0x5a;
    }
    std::fs::write(tmp.join("com.example.sample-1.zip.partial"), &garbage).expect("partial");

    let (engine, _rec) = engine(&hub, &dev, &creds, &creds.token);
    let r = engine.sync_now().expect("sync completes after the fallback");
    assert_eq!(r.bundles_from_zip, 0, "{r:?}");
    assert_eq!(r.blobs_downloaded, b.files.len(), "{r:?}");
    assert!(r.failed_attempts >= 1, "the refused zip counted as a failed attempt: {r:?}");
    dev.device.check_openable("com.example.sample").expect("installed");
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0, "nothing left behind");
}

/// `cancel` stops a sync stuck on a hub that never answers: the caller gets `Cancelled` at
/// once, the policy and the data directory's sync lock are free again, and the next sync runs.
#[test]
fn cancel_stops_a_stuck_sync_and_the_next_one_runs() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for c in silent.incoming().flatten() {
            keep.lock().expect("held").push(c); // accept, never answer
        }
    });
    let key = SecretKey::from_seed(&[7u8; 32]);
    let dev = open_device(&key);
    dev.device.calls().record(None, "custom", json!({"n": 1})).expect("recorded");
    let engine =
        Arc::new(SyncEngine::new(dev.device.clone(), SyncConfig::new(url, "dev-x", Arc::new(StaticToken("t".into())))).expect("engine"));
    for round in 0..2 {
        let e = engine.clone();
        let t0 = Instant::now();
        let worker = std::thread::spawn(move || e.sync_now());
        while !engine.state().is_active() {
            assert!(t0.elapsed() < Duration::from_secs(5), "the sync never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        engine.cancel();
        let r = worker.join().expect("worker");
        assert!(matches!(r, Err(Error::Cancelled)), "round {round}: {r:?}");
        assert!(t0.elapsed() < Duration::from_secs(5), "cancel took {:?}", t0.elapsed());
        assert!(!engine.state().is_active(), "round {round}: {:?}", engine.state());
    }
    assert_eq!(dev.device.outbox().stats().expect("stats").pending, 1, "nothing acknowledged without an answer");
}
