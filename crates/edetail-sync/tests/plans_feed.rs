//! Plans in the change feed, against a scripted server on loopback serving one page: the engine
//! stores the hub-signed plans through core before the cursor advances, counts refused ones
//! (wrong or untrusted signature) without blocking the page, and re-applying the page is
//! harmless. The end-to-end test against the real hub comes with the hub side.

use std::sync::Arc;

use chrono::Utc;
use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_core::{Device, DeviceConfig};
use edetail_protocol::{Base64Bytes, ChangePage, Plan, PlanItem, SignedPlan};
use edetail_sync::{StaticToken, SyncConfig, SyncEngine};

mod common;
use common::{answer, scripted};

const BUNDLE: &str = "com.example.sample";

fn publisher() -> SecretKey {
    SecretKey::from_seed(&[11; 32])
}

fn hub_key() -> SecretKey {
    SecretKey::from_seed(&[42; 32])
}

fn signed(id: &str, hcp: &str, key: &SecretKey) -> SignedPlan {
    let now = Utc::now();
    let plan = Plan {
        plan_id: id.into(),
        hcp_id: hcp.into(),
        territory: "t-1".into(),
        product: "Sample".into(),
        bundle_id: BUNDLE.into(),
        bundle_version: 1,
        stage: "aware".into(),
        generated_at: now,
        valid_until: now + chrono::Duration::days(14),
        items: vec![PlanItem {
            slide_id: "efficacy".into(),
            presentation_id: "main".into(),
            reason: "interest".into(),
            evidence: vec![],
            mandatory: false,
        }],
        skipped: vec![],
        reasons: vec!["stage aware".into()],
        objective: Some("educated".into()),
        arm: None,
    };
    let bytes = serde_json::to_vec(&plan).expect("json");
    SignedPlan { signature: Base64Bytes(key.sign_manifest(&bytes)), plan: Base64Bytes(bytes) }
}

#[test]
fn a_page_with_plans_stores_the_good_ones_counts_the_refused_and_advances_the_cursor() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let mut tampered = signed("p-tampered", "hcp-3", &hub_key());
    tampered.plan.0.extend_from_slice(b" ");
    let page = ChangePage {
        next_cursor: "c-1".into(),
        has_more: false,
        bundles: vec![],
        revocations: vec![],
        plans: vec![signed("p-good", "hcp-1", &hub_key()), signed("p-untrusted", "hcp-2", &SecretKey::from_seed(&[99; 32])), tampered],
        erasures: vec![],
        consents: vec![],
        hub_time: Utc::now(),
    };
    let body = serde_json::to_string(&page).expect("json");
    let (url, count, _) = rt.block_on(scripted(answer("200 OK", "", &body)));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = DeviceConfig { trusted_keys: vec![publisher().public(), hub_key().public()], ..DeviceConfig::new("rep-1") };
    let device = Arc::new(Device::open(&dir.path().join("data"), config).expect("device"));
    let zip = dir.path().join("deck.zip");
    std::fs::write(&zip, SampleBundle::new().zip(Some(&publisher()))).expect("zip");
    device.install_zip(&zip).expect("installed");
    let engine = SyncEngine::new(device.clone(), SyncConfig::new(url, "d1", Arc::new(StaticToken("t".into())))).expect("engine");

    let report = rt.block_on(engine.sync()).expect("sync");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1, "one page, no upload");
    assert_eq!((report.plans_stored, report.plans_refused), (1, 2), "{report:?}");
    assert_eq!(report.cursor.as_deref(), Some("c-1"));
    assert_eq!(device.plans().plan_for("hcp-1", BUNDLE).expect("read").expect("offered").plan_id, "p-good");
    assert!(device.plans().plan_for("hcp-2", BUNDLE).expect("read").is_none());
    assert!(device.plans().plan_for("hcp-3", BUNDLE).expect("read").is_none());

    // The same page again (e.g. a lost cursor): nothing new, nothing broken.
    device.set_sync_cursor(&edetail_core::SyncCursor { hub_device_id: Some("d1".into()), cursor: None }).expect("cursor lost");
    let again = rt.block_on(engine.sync()).expect("sync again");
    assert_eq!((again.plans_stored, again.plans_refused), (0, 2), "{again:?}");
    assert_eq!(device.plans().plan_for("hcp-1", BUNDLE).expect("read").expect("offered").plan_id, "p-good");
}

/// A data directory from before the cursor moved into the device database: the engine moves
/// its `sync-state.json` in, and the first sync asks the feed from that cursor, not from zero.
#[test]
fn an_old_cursor_file_is_moved_into_the_database_and_the_feed_resumes_from_it() {
    use edetail_sync::state::{STATE_FILE, SyncStateFile};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let page = ChangePage {
        next_cursor: "c-8".into(),
        has_more: false,
        bundles: vec![],
        revocations: vec![],
        plans: vec![],
        erasures: vec![],
        consents: vec![],
        hub_time: Utc::now(),
    };
    let body = serde_json::to_string(&page).expect("json");
    let (url, count, seen) = rt.block_on(scripted(answer("200 OK", "", &body)));

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    drop(Device::open(&data, DeviceConfig::new("rep-1")).expect("an existing device"));
    SyncStateFile { hub_device_id: Some("d1".into()), cursor: Some("c-7".into()) }.write(&data).expect("old state file");

    let device = Arc::new(Device::open(&data, DeviceConfig::new("rep-1")).expect("device"));
    let engine = SyncEngine::new(device.clone(), SyncConfig::new(url, "d1", Arc::new(StaticToken("t".into())))).expect("engine");
    assert!(!data.join(STATE_FILE).exists(), "the file is gone once moved");
    assert_eq!(device.sync_cursor().expect("cursor").cursor.as_deref(), Some("c-7"));

    let report = rt.block_on(engine.sync()).expect("sync");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    let request = String::from_utf8_lossy(&seen.lock().expect("lock")[0]).to_string();
    let line = request.lines().next().unwrap_or_default().to_string();
    assert!(line.starts_with("GET ") && line.contains("/changes?since=c-7 "), "resumed from the stored cursor: {line}");
    assert_eq!(report.cursor.as_deref(), Some("c-8"));
    assert_eq!(device.sync_cursor().expect("cursor").cursor.as_deref(), Some("c-8"), "stored in the database");
    assert!(!data.join(STATE_FILE).exists(), "no file comes back");
}
