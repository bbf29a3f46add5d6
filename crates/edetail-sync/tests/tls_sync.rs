//! The sync engine against the real reference hub over HTTPS on loopback (`serve_local_tls`,
//! a CA made in the test and given as the device's only trust root): events upload exactly
//! once and a published bundle installs, as over plain HTTP; a device trusting another CA
//! sends nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_core::{Device, DeviceConfig};
use edetail_hub::testkit::TestCa;
use edetail_hub::{Hub, HubConfig};
use edetail_sync::{Error, StaticToken, SyncConfig, SyncEngine, SyncState};
use serde_json::json;

const TERRITORY: &str = "north";

#[test]
fn a_device_syncs_end_to_end_over_https_trusting_the_hubs_ca() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SecretKey::from_seed(&[7u8; 32]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let hub = Hub::open(HubConfig::local(dir.path().join("hub"), vec![key.public()])).expect("hub opens");
    let (url, _task) = rt.block_on(edetail_hub::serve_local_tls(hub.clone(), ca.files.load().expect("TLS files"))).expect("hub serves");
    assert!(url.starts_with("https://"), "{url}");

    let creds = hub.add_device("rep-1", TERRITORY).expect("device added");
    let bundle = SampleBundle::new();
    hub.publish_zip(&bundle.zip(Some(&key)), &[TERRITORY.to_string()]).expect("published");

    let config = DeviceConfig { trusted_keys: vec![key.public()], ..DeviceConfig::new("rep-1") };
    let device = Arc::new(Device::open(&dir.path().join("device"), config).expect("device opens"));
    let mut uuids: Vec<String> = (0..25).map(|i| device.calls().record(None, "custom", json!({"n": i})).expect("recorded").1).collect();

    let mut sync = SyncConfig::new(url, creds.device_id.clone(), Arc::new(StaticToken(creds.token.clone())));
    sync.trust_roots = vec![ca.ca_der.clone()];
    let engine = SyncEngine::new(device.clone(), sync).expect("engine");
    let report = engine.sync_now().expect("sync over https");
    assert_eq!(engine.state(), SyncState::Done);

    assert_eq!(report.events_accepted, 25);
    let mut stored: Vec<String> = hub.events_for_device(&creds.device_id).expect("events").into_iter().map(|e| e.uuid).collect();
    stored.sort();
    uuids.sort();
    assert_eq!(stored, uuids, "the hub holds exactly the recorded events, once");
    assert_eq!(device.outbox().stats().expect("stats").pending, 0);

    let id = bundle.manifest.id.clone();
    assert_eq!(report.bundles_activated, vec![format!("{id}@{}", bundle.manifest.version)]);
    assert_eq!(device.content().active_version(&id).expect("active"), Some(bundle.manifest.version));
    device.check_openable(&id).expect("the installed bundle opens");

    let again = engine.sync_now().expect("second sync");
    assert_eq!((again.events_accepted, again.bytes_downloaded), (0, 0));
}

/// A hub whose certificate the device does not trust is a network failure (retried with
/// backoff, as on a captive portal): no request reaches the hub, nothing is acknowledged.
#[test]
fn a_device_trusting_another_ca_sends_nothing() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let hub = Hub::open(HubConfig::local(dir.path().join("hub"), vec![])).expect("hub opens");
    let (url, _task) = rt.block_on(edetail_hub::serve_local_tls(hub.clone(), ca.files.load().expect("TLS files"))).expect("hub serves");
    let creds = hub.add_device("rep-1", TERRITORY).expect("device added");
    let device = Arc::new(Device::open(&dir.path().join("device"), DeviceConfig::new("rep-1")).expect("device opens"));
    device.calls().record(None, "custom", json!({"n": 1})).expect("recorded");

    let mut sync = SyncConfig::new(url, creds.device_id.clone(), Arc::new(StaticToken(creds.token.clone())));
    sync.trust_roots = vec![other.ca_der.clone()];
    let engine = Arc::new(SyncEngine::new(device.clone(), sync).expect("engine"));
    let e = engine.clone();
    let t = std::thread::spawn(move || e.sync_now());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(engine.state(), SyncState::Waiting { .. }) {
        assert!(Instant::now() < deadline, "never backed off: {:?}", engine.state());
        std::thread::sleep(Duration::from_millis(10));
    }
    engine.set_online(false);
    let res = t.join().expect("thread");
    assert!(matches!(res, Err(Error::Offline)), "{res:?}");
    assert_eq!(device.outbox().stats().expect("stats").pending, 1, "nothing acknowledged");
    assert!(hub.events_for_device(&creds.device_id).expect("events").is_empty());
    let stats = hub.stats().expect("stats");
    assert_eq!(stats.devices[0].last_seen_at, None, "no request reached the hub");
}
