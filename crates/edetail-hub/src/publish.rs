//! Publishing: validate a bundle zip fully (signature by a trusted publisher key required),
//! refuse a version not higher than the current one, stage every new blob, commit the blobs,
//! then record the version in the store. A rejected bundle stores nothing. The zip arrives as
//! a temp file in the staging directory (request bodies are spooled to disk, never held whole
//! in memory) and becomes a blob itself, served for first installs.

use std::collections::BTreeSet;
use std::io::{self, Write};

use chrono::Utc;
use edetail_bundle::{BundleArchive, ReadOptions, Sha256Digest};
use edetail_protocol::PublishResult;
use tempfile::NamedTempFile;

use crate::HubInner;
use crate::blobs::StagedBlob;
use crate::error::{Error, Result};
use crate::store::NewBundleVersion;

/// The territory value meaning "every territory".
pub const ALL_TERRITORIES: &str = "*";
/// Largest bundle zip accepted by `POST /v1/publish` (spooled to disk while validated).
pub const MAX_PUBLISH_BYTES: usize = 2 * 1024 * 1024 * 1024;
/// Longest territory or product name.
pub const MAX_NAME_LEN: usize = 64;

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

/// Writes an in-memory zip to a temp file in the staging directory.
pub(crate) fn spool_bytes(hub: &HubInner, zip: &[u8]) -> Result<NamedTempFile> {
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
    hub: &HubInner,
    zip_file: NamedTempFile,
    territories: &[String],
    publisher: Option<&str>,
    actor: &str,
) -> Result<PublishResult> {
    let explicit = normalize_territories(territories)?;
    let opts = ReadOptions::signed_by(hub.publisher_keys.clone());
    let mut file = zip_file.reopen().map_err(Error::io(zip_file.path()))?;
    let mut archive = BundleArchive::open(&mut file, &opts).map_err(rejected)?;
    let manifest = archive.manifest().clone();
    let signature = archive.signature_bytes().ok_or_else(|| Error::InvalidBundle("manifest.sig is missing".into()))?.to_vec();
    // Checked before anything is staged or committed: the stores keep versions as signed
    // 64-bit integers, and a refusal after the blobs were committed would leave them behind.
    if i64::try_from(manifest.version).is_err() {
        return Err(Error::InvalidBundle(format!("version {} is over the largest storable version {}", manifest.version, i64::MAX)));
    }
    if let Some(current) = hub.store.current_version(&manifest.id)?
        && current >= manifest.version
    {
        return Err(Error::VersionConflict { bundle_id: manifest.id.clone(), current, offered: manifest.version });
    }
    let territories = if !explicit.is_empty() {
        explicit
    } else {
        let listed = hub.store.territories_for_product(&manifest.product)?;
        if listed.is_empty() { vec![ALL_TERRITORIES.to_string()] } else { listed }
    };

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
    drop(file);
    let zip = hub.blobs.adopt(zip_file)?;
    let (zip_sha, zip_size) = (zip.sha256, zip.size);
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
    };
    let audit = crate::store::Audited {
        entry: crate::audit_entry(
            actor,
            "bundle.publish",
            &v.bundle_id,
            serde_json::json!({"version": v.version, "territories": v.territories}),
        ),
        outcome: |seq| serde_json::json!({"feed_seq": seq}),
    };
    hub.store.insert_bundle_version_audited(&v, Some(&audit))?;
    tracing::info!(bundle = %manifest.id, version = manifest.version, blobs_new, blobs_existing, "published");
    Ok(PublishResult { bundle_id: manifest.id, version: manifest.version, blobs_new, blobs_existing, territories })
}
