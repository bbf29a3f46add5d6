//! The hub's HTTP API end to end: a real server on 127.0.0.1 driven with reqwest, once over the
//! local backends (SQLite + blob files) and once over the shared ones (a real PostgreSQL and a
//! real S3-compatible server, started by `scripts/services`).

#[macro_use]
mod common;

use common::{SEED, error_of, event};

use std::io::Write;

use chrono::Utc;
use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::{SecretKey, Sha256Digest};
use std::sync::Arc;

use edetail_hub::blobs::BlobStore;
use edetail_hub::blobs::s3::S3Blobs;
use edetail_hub::postgres::PgStore;
use edetail_hub::testkit::{TestDatabase, fresh_bucket};
use edetail_hub::{DeviceCredentials, Hub, HubConfig, serve_local};
use edetail_protocol::{ChangePage, ErrorCode, PublishResult, UploadAck, UploadBatch, WireEvent};
use reqwest::StatusCode;
use serde_json::json;

#[derive(Debug, Clone, Copy)]
enum Backend {
    /// SQLite and blob files under the data directory.
    Local,
    /// PostgreSQL and S3-compatible object storage.
    Shared,
}

struct Fixture {
    dir: tempfile::TempDir,
    url: String,
    hub: Hub,
    http: reqwest::Client,
    dev: DeviceCredentials,
    publisher: String,
    _task: tokio::task::JoinHandle<()>,
    _db: Option<TestDatabase>,
}

async fn fixture(backend: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(&SEED);
    let data = dir.path().join("hub");
    let (hub, db) = match backend {
        Backend::Local => (Hub::open(HubConfig::local(&data, vec![key.public()])).unwrap(), None),
        Backend::Shared => {
            let db = TestDatabase::new();
            let store = PgStore::connect(&db.url, 8).unwrap();
            let blobs = BlobStore::new(&data, Arc::new(S3Blobs::new(fresh_bucket()).unwrap())).unwrap();
            (Hub::with_store(Arc::new(store), blobs, vec![key.public()], edetail_hub::AnalyzerConfig::generated().unwrap()), Some(db))
        }
    };
    let (url, task) = serve_local(hub.clone()).await.unwrap();
    let dev = hub.add_device("rep-1", "north").unwrap();
    let publisher = hub.add_publisher("content-team").unwrap();
    Fixture { dir, url, hub, http: reqwest::Client::new(), dev, publisher, _task: task, _db: db }
}

impl Fixture {
    /// Blobs stored by the hub, whatever the backend.
    fn blob_count(&self) -> usize {
        let backend = self.hub.blob_store_backend();
        std::thread::scope(|s| s.spawn(|| backend.count().unwrap()).join().unwrap()) as usize
    }

    fn staged_count(&self) -> usize {
        count_files(&self.dir.path().join("hub/tmp"))
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.dev.token).header("x-edetail-device-time", Utc::now().to_rfc3339())
    }

    async fn publish(&self, zip: Vec<u8>, query: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/publish{query}", self.url))
            .bearer_auth(&self.publisher)
            .header("content-type", "application/zip")
            .body(zip)
            .send()
            .await
            .unwrap()
    }

    async fn changes(&self, since: &str) -> ChangePage {
        let r = self.get(&format!("/v1/changes?since={since}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn upload(&self, batch: &UploadBatch) -> reqwest::Response {
        self.http.post(format!("{}/v1/events", self.url)).bearer_auth(&self.dev.token).json(batch).send().await.unwrap()
    }
}

fn signed_sample(version: u64) -> Vec<u8> {
    let mut b = SampleBundle::new();
    b.manifest.version = version;
    b.zip(Some(&SecretKey::from_seed(&SEED)))
}

fn batch(dev: &DeviceCredentials, events: Vec<WireEvent>) -> UploadBatch {
    UploadBatch { device_id: dev.device_id.clone(), batch_id: "b1".into(), device_time: Utc::now(), events }
}

async fn published_bundle_reaches_the_device_with_every_blob_and_the_zip(backend: Backend) {
    let f = fixture(backend).await;
    let zip = signed_sample(1);
    let r = f.publish(zip.clone(), "?territory=north").await;
    assert_eq!(r.status(), StatusCode::OK);
    let res: PublishResult = r.json().await.unwrap();
    assert_eq!((res.bundle_id.as_str(), res.version, res.blobs_new, res.blobs_existing), ("com.example.sample", 1, 5, 0));
    assert_eq!(res.territories, vec!["north".to_string()]);

    let page = f.changes("").await;
    assert_eq!(page.bundles.len(), 1);
    assert!(!page.has_more);
    let offer = &page.bundles[0];
    let manifest: edetail_bundle::Manifest = serde_json::from_slice(&offer.manifest.0).unwrap();
    assert!(!offer.signature.0.is_empty());
    for entry in manifest.files.values() {
        let r = f.get(&format!("/v1/blobs/{}", entry.sha256)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = r.bytes().await.unwrap();
        assert_eq!(Sha256Digest::of(&body), entry.sha256);
    }
    let r = f.get(&offer.zip_path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/zip");
    assert_eq!(r.bytes().await.unwrap().as_ref(), zip.as_slice());

    // Nothing new after the cursor.
    let again = f.changes(&page.next_cursor).await;
    assert!(again.bundles.is_empty() && again.revocations.is_empty());
    assert_eq!(again.next_cursor, page.next_cursor);

    // Publishing the same content as version 2 stores no new file blob.
    let res: PublishResult = f.publish(signed_sample(2), "").await.json().await.unwrap();
    assert_eq!((res.blobs_new, res.blobs_existing), (0, 5));
    assert_eq!(res.territories, vec!["*".to_string()]);
    let page2 = f.changes(&page.next_cursor).await;
    assert_eq!(page2.bundles.iter().map(|b| b.version).collect::<Vec<_>>(), vec![2]);
}

async fn range_requests_resume_and_out_of_range_is_416(backend: Backend) {
    let f = fixture(backend).await;
    let zip = signed_sample(1);
    assert_eq!(f.publish(zip.clone(), "").await.status(), StatusCode::OK);
    let path = f.changes("").await.bundles[0].zip_path.clone();
    let half = zip.len() / 2;
    let r = f.get(&path).header("range", format!("bytes={half}-")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], format!("bytes {half}-{}/{}", zip.len() - 1, zip.len()).as_str());
    let tail = r.bytes().await.unwrap();
    let mut resumed = zip[..half].to_vec();
    resumed.extend_from_slice(&tail);
    assert_eq!(Sha256Digest::of(&resumed), Sha256Digest::of(&zip));

    let r = f.get(&path).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &zip[10..20]);

    let r = f.get(&path).header("range", format!("bytes={}-", zip.len())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], format!("bytes */{}", zip.len()).as_str());
}

async fn upload_is_idempotent_and_duplicates_are_counted(backend: Backend) {
    let f = fixture(backend).await;
    let b = batch(&f.dev, (1..=3).map(event).collect());
    let r = f.upload(&b).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ack: UploadAck = r.json().await.unwrap();
    assert_eq!((ack.accepted.len(), ack.duplicates.len(), ack.rejected.len(), ack.watermark), (3, 0, 0, 3));

    let ack: UploadAck = f.upload(&b).await.json().await.unwrap();
    assert_eq!((ack.accepted.len(), ack.duplicates.len(), ack.watermark), (0, 3, 3));

    let stats = f.hub.stats().unwrap();
    assert_eq!((stats.events_received, stats.duplicates_absorbed, stats.rejected), (3, 3, 0));
    assert_eq!(stats.devices[0].watermark, 3);
    let stored = f.hub.events_for_device(&f.dev.device_id).unwrap();
    assert_eq!(stored, b.events);
}

async fn gzip_batches_are_accepted_and_skew_is_measured(backend: Backend) {
    let f = fixture(backend).await;
    let mut b = batch(&f.dev, vec![event(1)]);
    b.device_time = Utc::now() + chrono::Duration::minutes(10);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&serde_json::to_vec(&b).unwrap()).unwrap();
    let r = f
        .http
        .post(format!("{}/v1/events", f.url))
        .bearer_auth(&f.dev.token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ack: UploadAck = r.json().await.unwrap();
    assert_eq!(ack.accepted.len(), 1);
    assert!((590_000..=610_000).contains(&ack.skew_ms), "skew {}", ack.skew_ms);
    let stored = f.hub.events_for_device(&f.dev.device_id).unwrap();
    assert_eq!(stored.len(), 1);

    // A small gzip body that inflates past MAX_BATCH_BYTES is refused, not inflated in full.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 4 * edetail_protocol::MAX_BATCH_BYTES]).unwrap();
    let r = f
        .http
        .post(format!("{}/v1/events", f.url))
        .bearer_auth(&f.dev.token)
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    error_of(r, StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge).await;
}

async fn invalid_events_are_rejected_with_a_reason_and_still_advance_the_watermark(backend: Backend) {
    let f = fixture(backend).await;
    let mut bad_payload = event(2);
    bad_payload.payload = json!([1, 2]);
    let mut bad_uuid = event(3);
    bad_uuid.uuid = "not-a-uuid".into();
    let mut empty_type = event(4);
    empty_type.kind = String::new();
    let mut huge = event(5);
    huge.payload = json!({"blob": "x".repeat(70 * 1024)});
    // Types outside the event contract: unknown, an app type without its namespace, a bad app name.
    let kinded = |seq: i64, kind: &str| {
        let mut e = event(seq);
        e.kind = kind.into();
        e
    };
    let events = vec![
        event(1),
        bad_payload,
        bad_uuid,
        empty_type,
        huge,
        event(6),
        kinded(7, "tap"),
        kinded(8, "sample_request"),
        kinded(9, "app.sample request"),
        kinded(10, "app.sample_request"),
        kinded(11, "veeva_clickstream"),
        {
            let mut e = event(12);
            e.payload = json!({"slide": "intro", "dwell_ms": "1200"});
            e
        },
    ];
    let ack: UploadAck = f.upload(&batch(&f.dev, events)).await.json().await.unwrap();
    assert_eq!(ack.accepted.len(), 4);
    let reasons: Vec<&str> = ack.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons.len(), 8, "{reasons:?}");
    assert!(reasons[0].contains("not a JSON object"), "{reasons:?}");
    assert!(reasons[1].contains("UUID"), "{reasons:?}");
    assert!(reasons[2].contains("type"), "{reasons:?}");
    assert!(reasons[3].contains("payload over"), "{reasons:?}");
    assert!(reasons[4].contains("not a known event kind") && reasons[4].contains("app."), "{reasons:?}");
    assert!(reasons[5].contains("not a known event kind"), "{reasons:?}");
    assert!(reasons[6].contains("printable ASCII"), "{reasons:?}");
    assert!(reasons[7].starts_with("slide_exit payload does not match the event contract"), "{reasons:?}");
    assert_eq!(ack.watermark, 12);
    let stats = f.hub.stats().unwrap();
    assert_eq!((stats.events_received, stats.rejected), (4, 8));
    let kinds: Vec<String> = f.hub.events_for_device(&f.dev.device_id).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["slide_exit", "slide_exit", "app.sample_request", "veeva_clickstream"]);
}

async fn hostile_requests_get_the_right_error_and_store_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let b = batch(&f.dev, vec![event(1)]);

    let r = f.http.post(format!("{}/v1/events", f.url)).bearer_auth("wrong").json(&b).send().await.unwrap();
    error_of(r, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    let r = f.http.get(format!("{}/v1/changes", f.url)).send().await.unwrap();
    error_of(r, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;

    let other = f.hub.add_device("rep-2", "south").unwrap();
    let r = f.upload(&batch(&other, vec![event(1)])).await;
    error_of(r, StatusCode::FORBIDDEN, ErrorCode::Forbidden).await;

    let big = batch(&f.dev, (1..=501).map(event).collect());
    error_of(f.upload(&big).await, StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge).await;
    let mut fat = vec![];
    for seq in 1..=40 {
        let mut e = event(seq);
        e.payload = json!({"text": "y".repeat(30 * 1024)});
        fat.push(e);
    }
    error_of(f.upload(&batch(&f.dev, fat)).await, StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge).await;

    let r = f
        .http
        .post(format!("{}/v1/events", f.url))
        .bearer_auth(&f.dev.token)
        .header("content-type", "application/json")
        .body("{\"device_id\": ")
        .send()
        .await
        .unwrap();
    error_of(r, StatusCode::BAD_REQUEST, ErrorCode::BadRequest).await;

    let stats = f.hub.stats().unwrap();
    assert_eq!((stats.events_received, stats.duplicates_absorbed, stats.rejected), (0, 0, 0));
    assert!(stats.devices.iter().all(|d| d.watermark == 0));

    // Publishing: unsigned 422, wrong publisher token 401, device token 401, lower version 409.
    let unsigned = SampleBundle::new().zip(None);
    error_of(f.publish(unsigned, "").await, StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidBundle).await;
    let mut b2 = SampleBundle::new();
    b2.manifest.version = 3;
    let wrong_key = b2.zip(Some(&SecretKey::from_seed(&[9; 32])));
    error_of(f.publish(wrong_key, "").await, StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidBundle).await;
    let r = f.http.post(format!("{}/v1/publish", f.url)).bearer_auth(&f.dev.token).body(signed_sample(1)).send().await.unwrap();
    error_of(r, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    assert_eq!(f.hub.stats().unwrap().bundle_versions, 0);
    assert_eq!(f.blob_count(), 0, "a rejected bundle leaves no blob");

    assert_eq!(f.publish(signed_sample(2), "").await.status(), StatusCode::OK);
    let blobs_before = f.blob_count();
    error_of(f.publish(signed_sample(1), "").await, StatusCode::CONFLICT, ErrorCode::VersionConflict).await;
    error_of(f.publish(signed_sample(2), "").await, StatusCode::CONFLICT, ErrorCode::VersionConflict).await;
    assert_eq!(f.hub.stats().unwrap().bundle_versions, 1);
    assert_eq!(f.blob_count(), blobs_before);

    // Blobs of unknown content are 404, a malformed hash 400.
    let r = f.get(&format!("/v1/blobs/{}", Sha256Digest::of(b"nope"))).send().await.unwrap();
    error_of(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    let r = f.get("/v1/blobs/xyz").send().await.unwrap();
    error_of(r, StatusCode::BAD_REQUEST, ErrorCode::BadRequest).await;
    let r = f.get("/v1/changes?since=abc").send().await.unwrap();
    error_of(r, StatusCode::BAD_REQUEST, ErrorCode::BadRequest).await;
}

fn count_files(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.map(|e| e.unwrap().path()).map(|p| if p.is_dir() { count_files(&p) } else { 1 }).sum()
}

async fn territories_entitle_devices_and_revocation_appears_in_the_feed(backend: Backend) {
    let f = fixture(backend).await;
    assert_eq!(f.publish(signed_sample(1), "?territory=south").await.status(), StatusCode::OK);
    let page = f.changes("").await;
    assert!(page.bundles.is_empty(), "north is not entitled to a south bundle");
    let south = f.hub.add_device("rep-2", "south").unwrap();
    let south_get = |path: &str| f.http.get(format!("{}{path}", f.url)).bearer_auth(&south.token);
    let page: ChangePage = south_get("/v1/changes").send().await.unwrap().json().await.unwrap();
    assert_eq!(page.bundles.len(), 1);
    let manifest: edetail_bundle::Manifest = serde_json::from_slice(&page.bundles[0].manifest.0).unwrap();
    let sha = manifest.files.values().next().unwrap().sha256;
    // north may not fetch south's blobs or zip.
    let r = f.get(&format!("/v1/blobs/{sha}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = f.get(&page.bundles[0].zip_path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    f.hub.revoke("com.example.sample", "withdrawn by MLR").unwrap();
    let after: ChangePage = south_get(&format!("/v1/changes?since={}", page.next_cursor)).send().await.unwrap().json().await.unwrap();
    assert_eq!(after.revocations.len(), 1);
    assert_eq!(after.revocations[0].reason, "withdrawn by MLR");
    assert!(after.bundles.is_empty());
    // From the beginning: the revoked version is no longer offered, the revocation is.
    let fresh: ChangePage = south_get("/v1/changes").send().await.unwrap().json().await.unwrap();
    assert!(fresh.bundles.is_empty());
    assert_eq!(fresh.revocations.len(), 1);
    let r = south_get(&format!("/v1/blobs/{sha}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(f.hub.revoke("com.example.unknown", "x").is_err());
}

async fn change_feed_pages_through_many_bundles(backend: Backend) {
    let f = fixture(backend).await;
    let key = SecretKey::from_seed(&SEED);
    for i in 0..(edetail_protocol::MAX_PAGE_ITEMS + 5) {
        let mut b = SampleBundle::new();
        b.manifest.id = format!("com.example.deck{i}");
        f.hub.publish_zip(&b.zip(Some(&key)), &[]).unwrap();
    }
    let first = f.changes("").await;
    assert!(first.has_more);
    assert_eq!(first.bundles.len(), edetail_protocol::MAX_PAGE_ITEMS);
    let second = f.changes(&first.next_cursor).await;
    assert!(!second.has_more);
    assert_eq!(second.bundles.len(), 5);
}

async fn concurrent_deliveries_of_one_batch_are_stored_exactly_once(backend: Backend) {
    let f = fixture(backend).await;
    let b = batch(&f.dev, (1..=20).map(event).collect());
    let sends = (0..8).map(|_| {
        let (http, url, token, b) = (f.http.clone(), f.url.clone(), f.dev.token.clone(), b.clone());
        tokio::spawn(async move {
            let r = http.post(format!("{url}/v1/events")).bearer_auth(token).json(&b).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<UploadAck>().await.unwrap()
        })
    });
    let acks: Vec<UploadAck> = futures_util::future::join_all(sends).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(acks.iter().map(|a| a.accepted.len()).sum::<usize>(), 20);
    assert_eq!(acks.iter().map(|a| a.duplicates.len()).sum::<usize>(), 7 * 20);
    assert!(acks.iter().all(|a| a.watermark == 20));
    assert_eq!(f.hub.events_for_device(&f.dev.device_id).unwrap().len(), 20);
}

async fn tampered_content_under_a_valid_signature_is_refused_and_stores_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let mut b = SampleBundle::new();
    let manifest = b.computed_manifest().to_bytes();
    b.files.insert("slides/pi/index.html".into(), b"<p>altered after approval</p>".to_vec());
    let zip = b.raw_with_manifest(&manifest, Some(&SecretKey::from_seed(&SEED))).build();
    let body = error_of(f.publish(zip, "").await, StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidBundle).await;
    assert!(body.message.contains("slides/pi/index.html"), "{}", body.message);
    assert_eq!(f.hub.stats().unwrap().bundle_versions, 0);
    assert_eq!(f.blob_count(), 0);
    assert_eq!(f.staged_count(), 0, "staged files are removed");
}

async fn change_feed_is_gzipped_for_clients_that_accept_it(backend: Backend) {
    let f = fixture(backend).await;
    assert_eq!(f.publish(signed_sample(1), "").await.status(), StatusCode::OK);
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let plain = raw.get(format!("{}/v1/changes", f.url)).bearer_auth(&f.dev.token).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain: ChangePage = plain.json().await.unwrap();
    let r = raw.get(format!("{}/v1/changes", f.url)).bearer_auth(&f.dev.token).header("accept-encoding", "br, gzip").send().await.unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let gz = r.bytes().await.unwrap();
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut json).unwrap();
    assert!(gz.len() * 4 < json.len() * 3, "{} gzipped vs {} plain", gz.len(), json.len());
    let page: ChangePage = serde_json::from_slice(&json).unwrap();
    assert_eq!(page.bundles, plain.bundles);
    let refused =
        raw.get(format!("{}/v1/changes", f.url)).bearer_auth(&f.dev.token).header("accept-encoding", "gzip;q=0").send().await.unwrap();
    assert!(refused.headers().get("content-encoding").is_none());
}

/// A finished call of `hcp` on the sample bundle (version 1) with a follow-up request: seqs
/// `first..first + 3`.
fn sample_call(first: i64, call: &str, hcp: &str) -> Vec<WireEvent> {
    let mut evs: Vec<WireEvent> = (first..first + 3).map(event).collect();
    for e in &mut evs {
        e.call_id = Some(call.into());
    }
    evs[0].kind = "call_started".into();
    evs[0].payload =
        json!({"hcp_id": hcp, "channel": "face_to_face", "bundle_id": "com.example.sample", "bundle_version": 1, "rep_id": "rep"});
    evs[1].kind = "follow_up_request".into();
    evs[1].payload = json!({"slide": "intro", "topic": "awareness"});
    evs[2].kind = "call_ended".into();
    evs[2].payload = json!({});
    evs
}

async fn analyse(hub: &Hub) {
    let h = hub.clone();
    tokio::task::spawn_blocking(move || h.analyze_pending().unwrap()).await.unwrap();
}

/// Issue 13, item 4: a south device recording a call on a north-only bundle gets no plan in
/// south's feed and no south microsite; the same call in north gets both.
async fn a_call_on_content_the_territory_is_not_entitled_to_yields_no_plan_or_microsite(backend: Backend) {
    let f = fixture(backend).await;
    assert_eq!(f.publish(signed_sample(1), "?territory=north").await.status(), StatusCode::OK);
    let south = f.hub.add_device("rep-2", "south").unwrap();
    let ack: UploadAck = f
        .http
        .post(format!("{}/v1/events", f.url))
        .bearer_auth(&south.token)
        .json(&batch(&south, sample_call(1, "call-south", "hcp-south")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ack.accepted.len(), 3, "{ack:?}");
    analyse(&f.hub).await;
    let south_page: ChangePage =
        f.http.get(format!("{}/v1/changes", f.url)).bearer_auth(&south.token).send().await.unwrap().json().await.unwrap();
    assert!(south_page.plans.is_empty(), "south received a plan on north-only content");
    assert!(f.hub.microsites_for("hcp-south").unwrap().is_empty(), "a south microsite serves north-only slides");
    // Still analysed: the HCP's profile knows the call.
    assert_eq!(f.hub.store().pending_call_count().unwrap(), 0);
    assert!(f.hub.hcp_profile("hcp-south").unwrap().is_some());

    // The entitled territory gets its plan and microsite, which serves.
    let ack: UploadAck = f.upload(&batch(&f.dev, sample_call(1, "call-north", "hcp-north"))).await.json().await.unwrap();
    assert_eq!(ack.accepted.len(), 3, "{ack:?}");
    analyse(&f.hub).await;
    assert_eq!(f.changes("").await.plans.len(), 1);
    let [m] = f.hub.microsites_for("hcp-north").unwrap().try_into().unwrap();
    assert_eq!(m.territory, "north");
    let page = f.http.get(format!("{}{}", f.url, f.hub.microsite_path(&m.id))).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let slide = f.http.get(format!("{}{}/a/slides/intro/index.html", f.url, f.hub.microsite_path(&m.id))).send().await.unwrap();
    assert_eq!(slide.status(), StatusCode::OK);

    // A microsite whose territory is not entitled to its version (made before entitlement was
    // enforced, or by a bad restore) serves nothing: moved to south in the database.
    let sql = format!("UPDATE microsites SET territory = 'south' WHERE id = '{}'", m.id);
    match &f._db {
        None => {
            let c = rusqlite::Connection::open(f.dir.path().join("hub/hub.sqlite3")).unwrap();
            assert_eq!(c.execute(&sql, []).unwrap(), 1);
        }
        Some(db) => {
            let (c, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            assert_eq!(c.execute(&sql, &[]).await.unwrap(), 1);
        }
    }
    let page = f.http.get(format!("{}{}", f.url, f.hub.microsite_path(&m.id))).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let slide = f.http.get(format!("{}{}/a/slides/intro/index.html", f.url, f.hub.microsite_path(&m.id))).send().await.unwrap();
    assert_eq!(slide.status(), StatusCode::NOT_FOUND);
}

/// Issue 13, item 8: event times outside 2000-01-01 .. hub now + 1 day are rejected with a
/// reason (and advance the watermark); times at the edges are accepted.
async fn event_times_outside_the_window_are_rejected_and_the_edges_accepted(backend: Backend) {
    let f = fixture(backend).await;
    let at = |seq: i64, t: &str| {
        let mut e = event(seq);
        e.recorded_at = chrono::DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        e
    };
    let soon = (Utc::now() + chrono::Duration::hours(23)).to_rfc3339();
    let later = (Utc::now() + chrono::Duration::hours(25)).to_rfc3339();
    let events = vec![
        at(1, "9999-12-31T23:59:59-23:59"),
        // A second either side of the edges: the batch's device_time lags the hub's clock by
        // some milliseconds, and the corrected time moves by that skew.
        at(2, "1999-12-31T23:59:59Z"),
        at(3, "2000-01-01T00:00:01Z"),
        at(4, &soon),
        at(5, &later),
    ];
    let uuids: Vec<String> = events.iter().map(|e| e.uuid.clone()).collect();
    let ack: UploadAck = f.upload(&batch(&f.dev, events)).await.json().await.unwrap();
    assert_eq!(ack.accepted, vec![uuids[2].clone(), uuids[3].clone()]);
    let rejected: Vec<&str> = ack.rejected.iter().map(|r| r.uuid.as_str()).collect();
    assert_eq!(rejected, [uuids[0].as_str(), uuids[1].as_str(), uuids[4].as_str()]);
    assert!(ack.rejected.iter().all(|r| r.reason.contains("recorded_at outside the accepted window")), "{:?}", ack.rejected);
    assert_eq!(ack.watermark, 5);
    // What was stored reads back.
    assert_eq!(f.hub.store().events_for_device(&f.dev.device_id).unwrap().len(), 2);
}

/// Issue 13, item 9: a second event with a used (device, seq) and another uuid is rejected; the
/// first stays; an exact resend stays a duplicate.
async fn a_reused_seq_with_another_uuid_is_rejected(backend: Backend) {
    let f = fixture(backend).await;
    let first = event(1);
    let ack: UploadAck = f.upload(&batch(&f.dev, vec![first.clone()])).await.json().await.unwrap();
    assert_eq!(ack.accepted, vec![first.uuid.clone()]);
    let (again, twin_a, twin_b) = (event(1), event(2), event(2));
    let ack: UploadAck =
        f.upload(&batch(&f.dev, vec![first.clone(), again.clone(), twin_a.clone(), twin_b.clone()])).await.json().await.unwrap();
    assert_eq!(ack.duplicates, vec![first.uuid.clone()]);
    assert_eq!(ack.accepted, vec![twin_a.uuid.clone()]);
    let rejected: Vec<(&str, &str)> = ack.rejected.iter().map(|r| (r.uuid.as_str(), r.reason.as_str())).collect();
    assert_eq!(
        rejected,
        [(again.uuid.as_str(), "seq 1 is already used by another event"), (twin_b.uuid.as_str(), "seq 2 is already used by another event")]
    );
    let stored: Vec<String> = f.hub.store().events_for_device(&f.dev.device_id).unwrap().into_iter().map(|e| e.uuid).collect();
    assert_eq!(stored, [first.uuid, twin_a.uuid]);
    assert_eq!(ack.watermark, 2);
}

/// Issue 13, item 9: the data directory the hub creates is 0700, its database files 0600.
#[cfg(unix)]
#[test]
fn the_data_directory_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new/hub");
    let hub = Hub::open(HubConfig::local(&data, vec![SecretKey::from_seed(&SEED).public()])).unwrap();
    hub.add_device("rep-1", "north").unwrap();
    let mode = |p: std::path::PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.clone()), 0o700);
    for f in ["hub.sqlite3", "hub.sqlite3-wal", "hub.sqlite3-shm"] {
        assert_eq!(mode(data.join(f)), 0o600, "{f}");
    }
}

/// Overwrites a stored event's payload with text no reader can parse, straight in the database
/// (what a bug or a bad restore could leave behind).
async fn corrupt_payload(f: &Fixture, uuid: &str) {
    match &f._db {
        None => {
            let c = rusqlite::Connection::open(f.dir.path().join("hub/hub.sqlite3")).unwrap();
            assert_eq!(c.execute("UPDATE events SET payload = '{not json' WHERE uuid = ?1", [uuid]).unwrap(), 1);
        }
        Some(db) => {
            let (c, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            assert_eq!(c.execute("UPDATE events SET payload = '{not json' WHERE uuid = $1", &[&uuid]).await.unwrap(), 1);
        }
    }
}

/// Issue 13, item 8: a call the analyser cannot read is parked after `MAX_ANALYSIS_ATTEMPTS`
/// failures with its reason, shown on the sync page, and the next call is analysed.
async fn an_unanalysable_call_is_parked_and_shown_and_others_are_analysed(backend: Backend) {
    let f = fixture(backend).await;
    assert_eq!(f.publish(signed_sample(1), "?territory=north").await.status(), StatusCode::OK);
    let mut bad = sample_call(1, "call-bad", "hcp-a");
    let bad_uuid = bad[1].uuid.clone();
    // The call's end comes after the corruption: a stored end wakes the serving hub's worker.
    let mut rest = vec![bad.pop().unwrap()];
    let ack: UploadAck = f.upload(&batch(&f.dev, bad)).await.json().await.unwrap();
    assert_eq!(ack.accepted.len(), 2, "{ack:?}");
    corrupt_payload(&f, &bad_uuid).await;
    rest.extend(sample_call(4, "call-good", "hcp-b"));
    let ack: UploadAck = f.upload(&batch(&f.dev, rest)).await.json().await.unwrap();
    assert_eq!(ack.accepted.len(), 4, "{ack:?}");
    analyse(&f.hub).await;
    analyse(&f.hub).await;

    let parked = f.hub.store().parked_calls().unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    // The serving hub's own worker may have failed on it concurrently: at least the limit.
    assert_eq!(parked[0].call_id, "call-bad");
    assert!(parked[0].attempts >= edetail_hub::store::MAX_ANALYSIS_ATTEMPTS, "{parked:?}");
    assert!(!parked[0].reason.is_empty());
    assert!(f.hub.hcp_profile("hcp-b").unwrap().is_some(), "the next call was not analysed");
    assert!(f.hub.hcp_profile("hcp-a").unwrap().is_none());

    let h = f.hub.clone();
    let operator = tokio::task::spawn_blocking(move || h.add_operator("ops", 90, "cli:test")).await.unwrap().unwrap();
    let page = f.http.get(format!("{}/dashboard/sync", f.url)).bearer_auth(&operator).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"data-stat="parked" data-value="1""#), "{html}");
    assert!(html.contains(r#"data-parked-call="call-bad""#), "{html}");
    assert!(!html.contains("hcp-a"), "the sync page names no HCP");
}

/// Issue 13, item 7 (in part): a version the stores cannot hold (2^63) is refused with 422
/// before any blob is committed: the blob store and the staging directory stay as they were.
async fn an_unstorable_version_is_refused_and_leaves_no_blob(backend: Backend) {
    let f = fixture(backend).await;
    let before = f.blob_count();
    let r = f.publish(signed_sample(1 << 63), "?territory=north").await;
    let body = error_of(r, StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidBundle).await;
    assert_eq!(f.blob_count(), before, "a refused publish left blobs");
    assert!(body.message.contains("largest storable version"), "{}", body.message);
    assert_eq!(f.staged_count(), 0);
}

/// Issue 13, item 7 (in part): what a killed hub left in `DATA/tmp` (its unlocked staging
/// directory, loose files of the older layout) is removed when a hub starts on that data
/// directory; the staging directory of a hub still running there is kept.
#[test]
fn a_start_removes_staging_files_of_stopped_hubs_and_keeps_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tmp");
    let live = BlobStore::open_local(dir.path()).unwrap();
    std::fs::write(live.tmp_dir().join("upload-in-flight"), b"live").unwrap();
    let dead = root.join("staging-killed");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join("spooled.zip"), vec![0u8; 1 << 20]).unwrap();
    std::fs::write(root.join(".tmpLOOSE"), b"older layout").unwrap();

    let restarted = BlobStore::open_local(dir.path()).unwrap();
    assert!(!dead.exists() && !root.join(".tmpLOOSE").exists(), "a stopped hub's staging files survived a start");
    assert!(live.tmp_dir().join("upload-in-flight").exists(), "a running hub's staging file was removed");
    assert_eq!(count_files(&root), 1);
    drop(live);
    drop(restarted);
    // Both stopped now: the next start leaves DATA/tmp holding only its own empty directory.
    let again = BlobStore::open_local(dir.path()).unwrap();
    assert_eq!(count_files(&root), 0);
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
    drop(again);
}

on_both_backends!(
    published_bundle_reaches_the_device_with_every_blob_and_the_zip,
    range_requests_resume_and_out_of_range_is_416,
    upload_is_idempotent_and_duplicates_are_counted,
    gzip_batches_are_accepted_and_skew_is_measured,
    invalid_events_are_rejected_with_a_reason_and_still_advance_the_watermark,
    hostile_requests_get_the_right_error_and_store_nothing,
    territories_entitle_devices_and_revocation_appears_in_the_feed,
    change_feed_pages_through_many_bundles,
    concurrent_deliveries_of_one_batch_are_stored_exactly_once,
    tampered_content_under_a_valid_signature_is_refused_and_stores_nothing,
    change_feed_is_gzipped_for_clients_that_accept_it,
    a_call_on_content_the_territory_is_not_entitled_to_yields_no_plan_or_microsite,
    event_times_outside_the_window_are_rejected_and_the_edges_accepted,
    a_reused_seq_with_another_uuid_is_rejected,
    an_unanalysable_call_is_parked_and_shown_and_others_are_analysed,
    an_unstorable_version_is_refused_and_leaves_no_blob,
);
