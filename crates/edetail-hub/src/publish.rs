//! Publishing: validate a bundle zip fully (signature by a trusted publisher key required),
//! claim the bundle version (refusing one not higher than the current one, or claimed by a
//! publish in progress), lease every blob it will reference, stage every new blob, commit the
//! blobs, then record the version in the store (which ends the claim). A rejected bundle stores
//! nothing; a publish that fails after committing blobs deletes those no version references
//! and no live publish leases, and a hub collects what dead publishes left at start (ADR 0016).
//! The zip arrives as a temp file in the staging directory (request bodies are spooled to disk,
//! never held whole in memory) and becomes a blob itself, served for first installs.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::time::Duration;

use chrono::{DateTime, Utc};
use edetail_bundle::{BundleArchive, ReadOptions, Sha256Digest};
use edetail_protocol::PublishResult;
use tempfile::NamedTempFile;

use crate::blobs::{BlobStore, StagedBlob};
use crate::error::{Error, Result};
use crate::store::{HubStore, NewBundleVersion, PublishClaim};

/// The territory value meaning "every territory".
pub const ALL_TERRITORIES: &str = "*";
/// Largest bundle zip accepted by `POST /v1/publish` (spooled to disk while validated).
pub const MAX_PUBLISH_BYTES: usize = 2 * 1024 * 1024 * 1024;
/// Longest territory or product name.
pub const MAX_NAME_LEN: usize = 64;
/// How long a publish claim (and every blob lease under it) holds: far longer than a publish
/// takes, so only a dead publisher's claim expires. `Hub::set_publish_claim_lease` changes it
/// (tests).
pub const CLAIM_LEASE: Duration = Duration::from_secs(60 * 60);
/// A blob deletion marker older than this was left by a collector that died between marking
/// and deleting; a starting hub finishes it.
pub const STALE_DELETION: Duration = Duration::from_secs(10 * 60);
/// How long a publish waits for a deletion in progress of a blob it needs before answering
/// 503 (retry later).
pub const LEASE_WAIT: Duration = Duration::from_secs(30);
/// Pause between attempts to lease a blob that is being deleted.
const LEASE_RETRY: Duration = Duration::from_millis(50);

fn rejected(e: edetail_bundle::Error) -> Error {
    Error::InvalidBundle(e.to_string())
}

/// Checks an operator-supplied territory or product name.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > MAX_NAME_LEN || name != name.trim() || name.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!("{kind} names must be 1 to {MAX_NAME_LEN} characters without surrounding spaces")));
    }
    Ok(())
}

/// Normalizes explicitly requested territories: sorted, deduplicated; `*` alone when present.
pub fn normalize_territories(territories: &[String]) -> Result<Vec<String>> {
    let set: BTreeSet<String> = territories.iter().map(|t| t.trim().to_string()).collect();
    for t in &set {
        check_name("territory", t)?;
    }
    if set.contains(ALL_TERRITORIES) {
        return Ok(vec![ALL_TERRITORIES.to_string()]);
    }
    Ok(set.into_iter().collect())
}

/// What publishing needs of a hub: its metadata store, blob store, trusted publisher keys and
/// the lifetime of a claim (`HubInner::publishing`).
pub(crate) struct Publishing<'a> {
    pub(crate) store: &'a dyn HubStore,
    pub(crate) blobs: &'a BlobStore,
    pub(crate) publisher_keys: &'a [edetail_bundle::PublicKey],
    pub(crate) claim_lease: chrono::TimeDelta,
}

/// Writes an in-memory zip to a temp file in the staging directory.
pub(crate) fn spool_bytes(hub: &Publishing<'_>, zip: &[u8]) -> Result<NamedTempFile> {
    let tmp = hub.blobs.tmp_dir();
    let mut f = NamedTempFile::new_in(tmp).map_err(Error::io(tmp))?;
    f.write_all(zip).map_err(Error::io(tmp))?;
    Ok(f)
}

/// Publishes the zip in `zip_file` (a temp file in the staging directory, consumed).
/// Territories: the explicit ones; none given, the territories that list the bundle's product;
/// none lists it, every territory (`*`).
/// The audit entry (bundle id, version, territories and the feed number; no content) is
/// written in the same transaction as the version, as `actor`.
pub(crate) fn publish(
    hub: &Publishing<'_>,
    zip_file: NamedTempFile,
    territories: &[String],
    publisher: Option<&str>,
    actor: &str,
) -> Result<PublishResult> {
    let explicit = normalize_territories(territories)?;
    let opts = ReadOptions::signed_by(hub.publisher_keys.to_vec());
    // Opened and its signature checked once; the same archive is then read under the claim.
    let file = zip_file.reopen().map_err(Error::io(zip_file.path()))?;
    let archive = BundleArchive::open(file, &opts).map_err(rejected)?;
    let manifest = archive.manifest().clone();
    // Checked before anything is staged or committed: the stores keep versions as signed
    // 64-bit integers, and a refusal after the blobs were committed would leave them behind.
    if i64::try_from(manifest.version).is_err() {
        return Err(Error::InvalidBundle(format!("version {} is over the largest storable version {}", manifest.version, i64::MAX)));
    }
    // The claim: 409 at once when the version exists or another publish holds it, before
    // anything is staged or committed.
    let now = Utc::now();
    let claim = PublishClaim {
        bundle_id: manifest.id.clone(),
        version: manifest.version,
        // Prefixed with this process's blob-store instance: when the process dies, the next
        // start on this data directory knows the claim is dead without waiting for it to expire.
        claim_id: format!("{}.{}", hub.blobs.instance_id(), uuid::Uuid::new_v4()),
        expires_at: now + hub.claim_lease,
    };
    hub.store.claim_publish(&claim, now)?;
    let result = publish_claimed(hub, &claim.claim_id, archive, zip_file, explicit, publisher, actor);
    if result.is_err() {
        // Best effort: a claim left here expires, and the next start collects it.
        let collected = collect_claim(hub, &claim.claim_id);
        tracing::info!(bundle = %claim.bundle_id, version = claim.version, collected, "publish failed; its blobs collected");
    }
    result
}

/// The rest of `publish`, under the claim `claim_id`.
fn publish_claimed(
    hub: &Publishing<'_>,
    claim_id: &str,
    mut archive: BundleArchive<std::fs::File>,
    zip_file: NamedTempFile,
    explicit: Vec<String>,
    publisher: Option<&str>,
    actor: &str,
) -> Result<PublishResult> {
    let manifest = archive.manifest().clone();
    let signature = archive.signature_bytes().ok_or_else(|| Error::InvalidBundle("manifest.sig is missing".into()))?.to_vec();
    let territories = if !explicit.is_empty() {
        explicit
    } else {
        let listed = hub.store.territories_for_product(&manifest.product)?;
        if listed.is_empty() { vec![ALL_TERRITORIES.to_string()] } else { listed }
    };

    // Every blob the version will reference is leased before the blob store is asked about
    // it: from then on no collector deletes it (ADR 0016).
    let hashes: BTreeSet<String> = manifest.files.values().map(|e| e.sha256.to_hex()).collect();
    lease(hub, claim_id, hashes.into_iter().collect())?;

    // Every file is read through the verifying reader, even when its blob is already stored:
    // the zip itself is served to devices and must be intact.
    let mut staged: Vec<StagedBlob> = Vec::new();
    let mut seen: BTreeSet<Sha256Digest> = BTreeSet::new();
    let (mut blobs_new, mut blobs_existing) = (0usize, 0usize);
    let mut files = Vec::new();
    for (path, entry) in &manifest.files {
        let mut reader = archive.read_file(path).map_err(rejected)?;
        if !seen.insert(entry.sha256) {
            io::copy(&mut reader, &mut io::sink()).map_err(|e| Error::InvalidBundle(format!("{path}: {e}")))?;
            continue;
        }
        files.push((entry.sha256.to_hex(), entry.size));
        if hub.blobs.contains(&entry.sha256)? {
            io::copy(&mut reader, &mut io::sink()).map_err(|e| Error::InvalidBundle(format!("{path}: {e}")))?;
            blobs_existing += 1;
        } else {
            staged.push(hub.blobs.stage(&mut reader, Some(&entry.sha256))?);
            blobs_new += 1;
        }
    }
    let manifest_bytes = archive.manifest_bytes().to_vec();
    drop(archive);
    let zip = hub.blobs.adopt(zip_file)?;
    let (zip_sha, zip_size) = (zip.sha256, zip.size);
    lease(hub, claim_id, vec![zip_sha.to_hex()])?;
    if !hub.blobs.contains(&zip_sha)? {
        staged.push(zip);
    }
    hub.blobs.commit(staged)?;
    let v = NewBundleVersion {
        bundle_id: manifest.id.clone(),
        version: manifest.version,
        product: manifest.product.clone(),
        manifest: manifest_bytes,
        signature,
        files,
        zip_sha256: zip_sha.to_hex(),
        zip_size,
        territories: territories.clone(),
        publisher: publisher.map(str::to_string),
        published_at: Utc::now(),
        claim_id: Some(claim_id.to_string()),
    };
    let audit = crate::store::Audited {
        entry: crate::audit::audit_entry(
            actor,
            "bundle.publish",
            &v.bundle_id,
            serde_json::json!({"version": v.version, "territories": v.territories}),
        ),
        outcome: |seq| serde_json::json!({"feed_seq": seq}),
    };
    hub.store.insert_bundle_version(&v, Some(&audit))?;
    tracing::info!(bundle = %manifest.id, version = manifest.version, blobs_new, blobs_existing, "published");
    Ok(PublishResult { bundle_id: manifest.id, version: manifest.version, blobs_new, blobs_existing, territories })
}

/// Leases `hashes` to the claim, waiting (at most `LEASE_WAIT`) while a deletion of one of
/// them is in progress: once the marker is gone the blob is absent and this publish stores it
/// again. Waiting, rather than leasing a blob marked for deletion and uploading it anyway,
/// keeps the collector's delete from removing the fresh upload.
fn lease(hub: &Publishing<'_>, claim_id: &str, mut hashes: Vec<String>) -> Result<()> {
    let deadline = std::time::Instant::now() + LEASE_WAIT;
    loop {
        hashes = hub.store.lease_blobs(claim_id, &hashes, Utc::now())?;
        if hashes.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Unavailable(format!("{} blob(s) of this bundle are being deleted: publish again", hashes.len())));
        }
        std::thread::sleep(LEASE_RETRY);
    }
}

/// Deletes from the blob store the hashes the store just marked for `owner`, then removes
/// their markers. Returns how many were deleted; a failure is logged and leaves the marker
/// (a later start finishes it).
fn delete_marked(hub: &Publishing<'_>, owner: &str, marked: Vec<String>) -> usize {
    let mut deleted = 0;
    for hex in marked {
        let done = Sha256Digest::from_hex(&hex)
            .map_err(|e| Error::Internal(format!("stored blob hash: {e}")))
            .and_then(|d| hub.blobs.delete(&d))
            .and_then(|()| hub.store.finish_blob_deletion(&hex, owner));
        match done {
            Ok(()) => deleted += 1,
            Err(e) => tracing::warn!(error = %e, "deleting an unreferenced blob failed; a later start retries"),
        }
    }
    deleted
}

/// Ends a claim that recorded no version and deletes the blobs only it needed. Returns how
/// many blobs were deleted; failures are logged (the claim expires, a later start collects).
pub(crate) fn collect_claim(hub: &Publishing<'_>, claim_id: &str) -> usize {
    match hub.store.release_claim(claim_id, claim_id, Utc::now()) {
        Ok(marked) => delete_marked(hub, claim_id, marked),
        Err(e) => {
            tracing::warn!(error = %e, "releasing a publish claim failed; it expires and a later start collects it");
            0
        }
    }
}

/// What a start collected of dead publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Dead claims ended (expired, or leases whose claim was taken over).
    pub claims: usize,
    /// Blobs deleted from the blob store.
    pub blobs: usize,
}

/// At start: finishes deletion markers older than `STALE_DELETION` (their collector died),
/// then ends every dead claim at `now`, deleting the blobs no version references and no live
/// claim leases.
pub(crate) fn collect_dead_publishes(hub: &Publishing<'_>, now: DateTime<Utc>) -> Result<Collected> {
    let owner = uuid::Uuid::new_v4().to_string();
    let stale_before = now - STALE_DELETION;
    let mut report = Collected::default();
    let taken = hub.store.take_stale_blob_deletions(&owner, stale_before, now)?;
    report.blobs += delete_marked(hub, &owner, taken);
    let mut dead = hub.store.dead_claims(now)?;
    // Claims of hub processes on this data directory that died (killed mid-publish): dead now,
    // expired or not.
    let of_dead_instance =
        |c: &String| hub.blobs.dead_instances().iter().any(|i| c.strip_prefix(i.as_str()).is_some_and(|r| r.starts_with('.')));
    if !hub.blobs.dead_instances().is_empty() {
        dead.extend(hub.store.all_claims()?.into_iter().filter(of_dead_instance));
        dead.sort();
        dead.dedup();
    }
    for claim in dead {
        let marked = hub.store.release_claim(&claim, &owner, now)?;
        report.blobs += delete_marked(hub, &owner, marked);
        report.claims += 1;
    }
    Ok(report)
}
