//! The sync engine against the real reference hub over HTTPS on loopback (`serve_local_tls`,
//! a CA made in the test and given as the device's only trust root): events upload exactly
//! once and a published bundle installs, as over plain HTTP.

use std::sync::Arc;

use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_core::{Device, DeviceConfig};
use edetail_hub::testkit::TestCa;
use edetail_hub::{Hub, HubConfig};
use edetail_sync::{StaticToken, SyncConfig, SyncEngine, SyncState};
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
    let mut uuids: Vec<String> = (0..25).map(|i| device.record(None, "custom", json!({"n": i})).expect("recorded").1).collect();

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
