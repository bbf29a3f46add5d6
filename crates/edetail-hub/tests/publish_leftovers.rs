//! Issue 13, item 7 (ADR 0016): publishes leave no blob behind. Two concurrent publishes of
//! one version over real HTTP leave exactly the winner's blobs; a publish refused with 409
//! writes no blob; a start collects what a dead publish left (its unreferenced blobs) and
//! keeps what a version references or a live publish leases. Once over the local backends
//! (SQLite + blob files) and once over the shared ones (a real PostgreSQL and a real
//! S3-compatible server, started by `scripts/services`).

#[macro_use]
mod common;

use common::{SEED, error_of};

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::{SecretKey, Sha256Digest};
use edetail_hub::blobs::BlobStore;
use edetail_hub::blobs::s3::{S3Blobs, S3Config};
use edetail_hub::postgres::PgStore;
use edetail_hub::store::PublishClaim;
use edetail_hub::testkit::{TestDatabase, fresh_bucket};
use edetail_hub::{Hub, HubConfig, serve_local};
use edetail_protocol::{ErrorCode, PublishResult};
use reqwest::StatusCode;

#[derive(Debug, Clone, Copy)]
enum Backend {
    /// SQLite and blob files under the data directory.
    Local,
    /// PostgreSQL and S3-compatible object storage.
    Shared,
}

/// What a hub runs on; `start` opens another hub over the same store and blobs (a restart,
/// or a second hub process).
struct Place {
    backend: Backend,
    dir: tempfile::TempDir,
    db: Option<TestDatabase>,
    bucket: Option<S3Config>,
}

impl Place {
    fn new(backend: Backend) -> Place {
        let (db, bucket) = match backend {
            Backend::Local => (None, None),
            Backend::Shared => (Some(TestDatabase::new()), Some(fresh_bucket())),
        };
        Place { backend, dir: tempfile::tempdir().unwrap(), db, bucket }
    }

    /// Opens a hub here: everything a start does (the collection of dead publishes included).
    fn start(&self) -> Hub {
        let key = SecretKey::from_seed(&SEED);
        let data = self.dir.path().join("hub");
        match self.backend {
            Backend::Local => Hub::open(HubConfig::local(&data, vec![key.public()])).unwrap(),
            Backend::Shared => {
                let store = PgStore::connect(&self.db.as_ref().unwrap().url, 8).unwrap();
                let blobs = BlobStore::new(&data, Arc::new(S3Blobs::new(self.bucket.clone().unwrap()).unwrap())).unwrap();
                Hub::with_store(Arc::new(store), blobs, vec![key.public()], edetail_hub::AnalyzerConfig::generated().unwrap())
            }
        }
    }
}

/// Runs blocking hub calls off the async test's worker (the stores block their thread).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn blob_count(hub: &Hub) -> u64 {
    hub.blob_store_backend().count().unwrap()
}

fn stored(hub: &Hub, d: &Sha256Digest) -> bool {
    hub.blob_store_backend().contains(d).unwrap()
}

/// Pseudo-random bytes (xorshift), distinct per seed: content no other bundle shares.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A signed bundle of `version` with a few megabytes of content unique to `seed` (staging it
/// takes long enough for two publishes to overlap), and every blob it references.
fn bundle(version: u64, seed: u64) -> (Vec<u8>, BTreeSet<Sha256Digest>) {
    let mut b = SampleBundle::new();
    b.manifest.version = version;
    for i in 0..3 {
        b.files.insert(format!("shared/media-{i}.bin"), noise(seed * 10 + i, 3 << 20));
    }
    let zip = b.zip(Some(&SecretKey::from_seed(&SEED)));
    let mut blobs: BTreeSet<Sha256Digest> = b.computed_manifest().files.values().map(|e| e.sha256).collect();
    blobs.insert(Sha256Digest::of(&zip));
    (zip, blobs)
}

struct Served {
    hub: Hub,
    url: String,
    publisher: String,
    http: reqwest::Client,
    _task: tokio::task::JoinHandle<()>,
}

async fn serve(hub: Hub) -> Served {
    let (url, task) = serve_local(hub.clone()).await.unwrap();
    let h = hub.clone();
    let name = format!("content-{}", uuid::Uuid::new_v4().simple());
    let publisher = blocking(move || h.add_publisher(&name).unwrap()).await;
    Served { hub, url, publisher, http: reqwest::Client::new(), _task: task }
}

impl Served {
    async fn publish(&self, zip: Vec<u8>) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/publish?territory=north", self.url))
            .bearer_auth(&self.publisher)
            .header("content-type", "application/zip")
            .body(zip)
            .send()
            .await
            .unwrap()
    }
}

/// (a) Two publishes of the same bundle version with different content, sent together over
/// HTTP (round after round): one is recorded, the other refused with 409, and the blob store
/// then holds exactly the winners' blobs: the losers' own blobs were never written or are gone.
async fn concurrent_same_version_publishes_leave_only_the_winners_blobs(backend: Backend) {
    let place = Place::new(backend);
    let s = serve(place.start()).await;
    let mut expected: BTreeSet<Sha256Digest> = BTreeSet::new();
    for version in 1..=3u64 {
        let (zip_a, blobs_a) = bundle(version, 2 * version);
        let (zip_b, blobs_b) = bundle(version, 2 * version + 1);
        let (ra, rb) = tokio::join!(s.publish(zip_a), s.publish(zip_b));
        let (winner, loser) = match (ra.status(), rb.status()) {
            (StatusCode::OK, StatusCode::CONFLICT) => (blobs_a, (rb, blobs_b)),
            (StatusCode::CONFLICT, StatusCode::OK) => (blobs_b, (ra, blobs_a)),
            other => panic!("round {version}: expected one 200 and one 409, got {other:?}"),
        };
        let (loser_response, loser_blobs) = loser;
        let body = error_of(loser_response, StatusCode::CONFLICT, ErrorCode::VersionConflict).await;
        assert!(body.message.contains("in progress") || body.message.contains("not higher"), "{}", body.message);
        expected.extend(winner);
        let (h, want) = (s.hub.clone(), expected.clone());
        let (count, missing, left) = blocking(move || {
            let missing = want.iter().filter(|d| !stored(&h, d)).count();
            let left = loser_blobs.iter().filter(|d| !want.contains(d) && stored(&h, d)).count();
            (blob_count(&h), missing, left)
        })
        .await;
        assert_eq!(missing, 0, "round {version}: a blob of the recorded version is missing");
        assert_eq!(left, 0, "round {version}: the refused publish left blob(s) behind");
        assert_eq!(count, expected.len() as u64, "round {version}: the blob store holds other blobs than the winners'");
    }
}

/// (b) A publish refused with 409, because the version exists or because another publish
/// holds a live claim on it, writes no blob (the claim is checked before anything is staged).
async fn a_publish_refused_with_409_writes_no_blob(backend: Backend) {
    let place = Place::new(backend);
    let s = serve(place.start()).await;
    let (first, first_blobs) = bundle(1, 1);
    assert_eq!(s.publish(first).await.status(), StatusCode::OK);
    let h = s.hub.clone();
    let before = blocking(move || blob_count(&h)).await;

    // The version exists.
    let (again, again_blobs) = bundle(1, 2);
    let body = error_of(s.publish(again).await, StatusCode::CONFLICT, ErrorCode::VersionConflict).await;
    assert!(body.message.contains("not higher"), "{}", body.message);
    // Another publish (a live claim, as a second hub process would hold it) has version 2.
    let store = s.hub.store().clone();
    let claim = PublishClaim {
        bundle_id: "com.example.sample".into(),
        version: 2,
        claim_id: "other-hub-publish".into(),
        expires_at: Utc::now() + TimeDelta::hours(1),
    };
    blocking(move || store.claim_publish(&claim, Utc::now()).unwrap()).await;
    let (second, second_blobs) = bundle(2, 3);
    let body = error_of(s.publish(second).await, StatusCode::CONFLICT, ErrorCode::VersionConflict).await;
    assert!(body.message.contains("in progress"), "{}", body.message);

    let h = s.hub.clone();
    let (after, written) = blocking(move || {
        let written = again_blobs.iter().chain(&second_blobs).filter(|d| !first_blobs.contains(d) && stored(&h, d)).count();
        (blob_count(&h), written)
    })
    .await;
    assert_eq!(after, before, "a publish refused with 409 wrote blobs");
    assert_eq!(written, 0, "a publish refused with 409 wrote blobs");
}

/// Stores `content` in the hub's blob store directly (as a publish does before recording).
fn put_blob(place: &Place, hub: &Hub, content: &[u8]) -> Sha256Digest {
    let data = place.dir.path().join("hub");
    let blobs = BlobStore::new(&data, hub.blob_store_backend()).unwrap();
    let staged = blobs.stage(&mut &content[..], None).unwrap();
    let d = staged.sha256;
    blobs.commit(vec![staged]).unwrap();
    d
}

/// (c) A publish that died after committing blobs (its claim expired, its leases in place) is
/// collected when a hub starts: its blob that no version references is deleted, the one a
/// version references is kept, and the claim and its leases are gone.
async fn a_start_collects_a_dead_publish(backend: Backend) {
    let place = Place::new(backend);
    let s = serve(place.start()).await;
    let (zip, published) = bundle(1, 1);
    let result: PublishResult = s.publish(zip).await.json().await.unwrap();
    assert_eq!(result.version, 1);
    let referenced = *published.iter().next().unwrap();

    let hub = s.hub.clone();
    let (orphan, restarted, _place) = blocking(move || {
        let orphan = put_blob(&place, &hub, b"committed by a publish that died before recording its version");
        let store = hub.store().clone();
        let long_ago = Utc::now() - TimeDelta::hours(3);
        let claim = PublishClaim {
            bundle_id: "com.example.sample".into(),
            version: 2,
            claim_id: "dead-publish".into(),
            expires_at: long_ago + TimeDelta::hours(1),
        };
        store.claim_publish(&claim, long_ago).unwrap();
        let blocked = store.lease_blobs("dead-publish", &[orphan.to_hex(), referenced.to_hex()], long_ago).unwrap();
        assert!(blocked.is_empty());
        assert!(stored(&hub, &orphan));
        assert_eq!(store.dead_claims(Utc::now()).unwrap(), vec!["dead-publish".to_string()]);

        let restarted = place.start();
        assert!(!stored(&restarted, &orphan), "the dead publish's unreferenced blob survived a start");
        assert!(stored(&restarted, &referenced), "a blob a version references was deleted");
        assert_eq!(blob_count(&restarted), published.len() as u64);
        assert!(restarted.store().dead_claims(Utc::now()).unwrap().is_empty(), "the dead claim is still there");
        (orphan, restarted, place)
    })
    .await;
    // The version the dead publish held is free again, and its blob is stored anew when needed.
    let s2 = serve(restarted).await;
    let (second, second_blobs) = bundle(2, 2);
    assert_eq!(s2.publish(second).await.status(), StatusCode::OK);
    let h = s2.hub.clone();
    blocking(move || {
        assert!(second_blobs.iter().all(|d| stored(&h, d)));
        assert!(!stored(&h, &orphan));
    })
    .await;
}

/// (f) A hub killed mid-publish: its claim has not expired, but the hub that starts next on the
/// same data directory finds the dead process's staging directory unlocked and collects the
/// claim at once. While the first hub lives, a second start leaves its claim alone.
async fn a_start_collects_the_publish_of_a_killed_hub_at_once(backend: Backend) {
    let place = Place::new(backend);
    blocking(move || {
        let first = place.start();
        let orphan = put_blob(&place, &first, b"committed by a publish whose hub was killed");
        let now = Utc::now();
        let claim_id = format!("{}.publish-1", first.instance_id());
        let claim = PublishClaim {
            bundle_id: "com.example.sample".into(),
            version: 1,
            claim_id: claim_id.clone(),
            expires_at: now + TimeDelta::hours(1),
        };
        first.store().claim_publish(&claim, now).unwrap();
        assert!(first.store().lease_blobs(&claim_id, &[orphan.to_hex()], now).unwrap().is_empty());

        let second = place.start();
        assert!(stored(&second, &orphan), "a start collected the claim of a hub that is still running");
        drop(second);

        // The process dies: the kernel drops its staging directory's lock with it.
        drop(first);
        let restarted = place.start();
        assert!(!stored(&restarted, &orphan), "the killed hub's publish was not collected at the next start");
        let far = Utc::now() + TimeDelta::days(3650);
        assert!(!restarted.store().dead_claims(far).unwrap().contains(&claim_id), "the killed hub's claim is still there");
        // The version it claimed is free again.
        let again = PublishClaim { claim_id: format!("{}.publish-2", restarted.instance_id()), ..claim };
        restarted.store().claim_publish(&again, Utc::now()).unwrap();
    })
    .await;
}

/// (d) A live claim of another publisher (a publish in progress on another hub process) is not
/// collected by a start: its leased blobs stay, unreferenced as they are, and its claim holds.
async fn a_start_keeps_a_live_publish_and_its_blobs(backend: Backend) {
    let place = Place::new(backend);
    let hub = place.start();
    blocking(move || {
        let in_flight = put_blob(&place, &hub, b"committed by a publish still uploading on another hub");
        let store = hub.store().clone();
        let claim = PublishClaim {
            bundle_id: "com.example.sample".into(),
            version: 1,
            claim_id: "live-publish".into(),
            expires_at: Utc::now() + TimeDelta::hours(1),
        };
        store.claim_publish(&claim, Utc::now()).unwrap();
        assert!(store.lease_blobs("live-publish", &[in_flight.to_hex()], Utc::now()).unwrap().is_empty());

        let restarted = place.start();
        assert!(stored(&restarted, &in_flight), "a start deleted the blob of a publish in progress");
        assert_eq!(blob_count(&restarted), 1);
        assert!(restarted.store().dead_claims(Utc::now()).unwrap().is_empty());
        // The claim still holds its version.
        let again = PublishClaim { claim_id: "another".into(), ..claim.clone() };
        assert!(matches!(restarted.store().claim_publish(&again, Utc::now()), Err(edetail_hub::Error::PublishInProgress { .. })));
        drop(hub);
    })
    .await;
}

/// (e) The store's side of collecting, on both stores: releasing a claim marks for deletion
/// only the hashes it leased that no version references and no other live claim leases; no
/// lease is granted on a marked hash until its owner finishes the deletion; a marker is taken
/// over only once stale.
async fn releasing_a_claim_marks_only_what_nobody_else_needs(backend: Backend) {
    let place = Place::new(backend);
    let hub = place.start();
    blocking(move || {
        let (zip, published) = bundle(1, 1);
        hub.publish_zip(&zip, &[]).unwrap();
        let store = hub.store().clone();
        let now = Utc::now();
        let claim = |version: u64, id: &str| PublishClaim {
            bundle_id: "com.example.sample".into(),
            version,
            claim_id: id.into(),
            expires_at: now + TimeDelta::hours(1),
        };
        let hex = |n: u8| format!("{n:02x}").repeat(32);
        let referenced = published.iter().next().unwrap().to_hex();
        let (own, shared, later) = (hex(0xa1), hex(0xb2), hex(0xc3));
        store.claim_publish(&claim(2, "a"), now).unwrap();
        store.claim_publish(&claim(3, "b"), now).unwrap();
        assert!(store.lease_blobs("a", &[own.clone(), shared.clone(), referenced.clone()], now).unwrap().is_empty());
        assert!(store.lease_blobs("b", std::slice::from_ref(&shared), now).unwrap().is_empty());

        assert_eq!(store.release_claim("a", "collector", now).unwrap(), vec![own.clone()]);
        assert!(store.dead_claims(now).unwrap().is_empty(), "the released claim and its leases are gone");
        // Marked: no lease until the owner removes the marker.
        assert_eq!(store.lease_blobs("b", std::slice::from_ref(&own), now).unwrap(), vec![own.clone()]);
        store.finish_blob_deletion(&own, "someone-else").unwrap();
        assert_eq!(store.lease_blobs("b", std::slice::from_ref(&own), now).unwrap(), vec![own.clone()]);
        store.finish_blob_deletion(&own, "collector").unwrap();
        assert!(store.lease_blobs("b", std::slice::from_ref(&own), now).unwrap().is_empty());

        // A collector that died after marking: its marker is taken over only once stale.
        store.claim_publish(&claim(4, "c"), now).unwrap();
        assert!(store.lease_blobs("c", std::slice::from_ref(&later), now).unwrap().is_empty());
        assert_eq!(store.release_claim("c", "dead-collector", now).unwrap(), vec![later.clone()]);
        assert!(store.take_stale_blob_deletions("starter", now - TimeDelta::minutes(1), now).unwrap().is_empty());
        assert_eq!(store.take_stale_blob_deletions("starter", now + TimeDelta::minutes(1), now).unwrap(), vec![later.clone()]);
        store.finish_blob_deletion(&later, "dead-collector").unwrap();
        assert_eq!(store.lease_blobs("b", std::slice::from_ref(&later), now).unwrap(), vec![later.clone()]);
        store.finish_blob_deletion(&later, "starter").unwrap();
        assert!(store.lease_blobs("b", std::slice::from_ref(&later), now).unwrap().is_empty());
        drop(place);
    })
    .await;
}

on_both_backends!(
    concurrent_same_version_publishes_leave_only_the_winners_blobs,
    a_publish_refused_with_409_writes_no_blob,
    a_start_collects_a_dead_publish,
    a_start_collects_the_publish_of_a_killed_hub_at_once,
    a_start_keeps_a_live_publish_and_its_blobs,
    releasing_a_claim_marks_only_what_nobody_else_needs,
);
