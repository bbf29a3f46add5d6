//! Issue 13, item 5: a full disk is reported as such. The hub's SQLite database is capped
//! (`PRAGMA max_page_count`, a real SQLITE_FULL from the real write path); uploads then get
//! 507 Insufficient Storage with a message saying the hub's storage is full and a Retry-After,
//! so devices keep their events and retry, instead of a bare 500 "internal error".

mod common;

use std::sync::Arc;

use edetail_bundle::SecretKey;
use edetail_hub::blobs::BlobStore;
use edetail_hub::sqlite::SqliteStore;
use edetail_hub::{AnalyzerConfig, Hub, serve_local};
use edetail_protocol::{ErrorBody, ErrorCode, UploadBatch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_to_a_full_database_get_507_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    std::fs::create_dir_all(&data).unwrap();
    let (hub, store) = {
        let store = Arc::new(SqliteStore::open(&data).unwrap());
        let blobs = BlobStore::open_local(&data).unwrap();
        let analysis = AnalyzerConfig { plan_key: SecretKey::from_seed(&[3; 32]), rules: Default::default() };
        (Hub::with_store(store.clone(), blobs, vec![SecretKey::from_seed(&common::SEED).public()], analysis), store)
    };
    let dev = hub.add_device("rep-1", "north").unwrap();
    store.limit_growth(2).unwrap();
    let (url, _task) = serve_local(hub.clone()).await.unwrap();
    let http = reqwest::Client::new();

    let mut seq = 0;
    let mut full = None;
    for _ in 0..50 {
        let events: Vec<_> = (0..100)
            .map(|_| {
                seq += 1;
                let mut e = common::event(seq);
                e.payload = serde_json::json!({"slide": "intro", "dwell_ms": 1200, "pad": "x".repeat(2000)});
                e
            })
            .collect();
        let batch = UploadBatch {
            device_id: dev.device_id.clone(),
            batch_id: uuid::Uuid::new_v4().to_string(),
            device_time: chrono::Utc::now(),
            events,
        };
        let r = http.post(format!("{url}/v1/events")).bearer_auth(&dev.token).json(&batch).send().await.unwrap();
        if !r.status().is_success() {
            full = Some(r);
            break;
        }
    }
    let r = full.expect("the capped database filled up");
    assert_eq!(r.status().as_u16(), 507, "Insufficient Storage");
    assert!(r.headers().get("retry-after").is_some(), "devices are told when to retry");
    assert!(r.headers().get("x-request-id").is_some());
    let body: ErrorBody = r.json().await.unwrap();
    assert_eq!(body.code, ErrorCode::Unavailable);
    assert!(body.message.contains("storage is full"), "{}", body.message);
    assert!(body.retry_after_ms.is_some_and(|ms| ms > 0));
}

#[test]
fn enospc_on_a_blob_or_temp_file_is_storage_full() {
    let e = edetail_hub::Error::io("/data/tmp/.tmpX")(std::io::Error::from_raw_os_error(28));
    assert!(e.is_storage_full());
    assert_eq!(e.status_and_code().0.as_u16(), 507);
    let other = edetail_hub::Error::io("/data/tmp/.tmpX")(std::io::Error::from_raw_os_error(13));
    assert_eq!(other.status_and_code().0.as_u16(), 500);
}
