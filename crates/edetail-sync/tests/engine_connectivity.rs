//! Engine behaviour under failures and connectivity changes, against a scripted server on
//! loopback: a backoff wait honours `Retry-After` and is cut short by going offline or to the
//! background; nothing is acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edetail_core::{Device, DeviceConfig};
use edetail_sync::policy::Phase;
use edetail_sync::{Error, Lifecycle, StaticToken, SyncConfig, SyncEngine, SyncState};
use serde_json::json;

mod common;
use common::{answer, scripted};

fn setup() -> (tokio::runtime::Runtime, tempfile::TempDir, Arc<Device>, Arc<SyncEngine>) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let body = r#"{"code":"unavailable","message":"maintenance","retry_after_ms":60000}"#;
    let (url, _, _) = rt.block_on(scripted(answer("503 Service Unavailable", "", body)));
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Arc::new(Device::open(dir.path(), DeviceConfig::new("rep-1")).expect("device"));
    device.calls().record(None, "custom", json!({"n": 1})).expect("recorded");
    let engine = SyncEngine::new(device.clone(), SyncConfig::new(url, "d1", Arc::new(StaticToken("t".into())))).expect("engine");
    (rt, dir, device, Arc::new(engine))
}

fn wait_for_waiting(engine: &SyncEngine) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let SyncState::Waiting { until_ms, resume } = engine.state() {
            assert_eq!(resume, Phase::Upload);
            return until_ms;
        }
        assert!(Instant::now() < deadline, "never reached Waiting: {:?}", engine.state());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn going_offline_ends_a_retry_after_wait_at_once() {
    let (_rt, _dir, device, engine) = setup();
    let e = engine.clone();
    let t = std::thread::spawn(move || e.sync_now());
    let until_ms = wait_for_waiting(&engine);
    assert!(until_ms >= 60_000, "Retry-After honoured: {until_ms}");
    let asked = Instant::now();
    engine.set_online(false);
    let res = t.join().expect("thread");
    assert!(matches!(res, Err(Error::Offline)), "{res:?}");
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert_eq!(engine.state(), SyncState::Offline);
    assert_eq!(device.outbox().stats().expect("stats").pending, 1, "nothing acknowledged");
}

#[test]
fn going_to_the_background_abandons_the_wait() {
    let (_rt, _dir, _device, engine) = setup();
    let e = engine.clone();
    let t = std::thread::spawn(move || e.sync_now());
    wait_for_waiting(&engine);
    assert!(matches!(engine.sync_now(), Err(Error::AlreadyRunning)));
    engine.set_lifecycle(Lifecycle::Background);
    let res = t.join().expect("thread");
    assert!(matches!(res, Err(Error::Suspended)), "{res:?}");
    assert_eq!(engine.state(), SyncState::Idle);
}
