//! Publishing: validate a bundle zip fully (signature by a trusted publisher key required),
//! refuse a version not higher than the current one, stage every new blob, commit the blobs,
//! then record the version in the store. A rejected bundle stores nothing.

use std::collections::BTreeSet;
use std::io::{self, Cursor};

use chrono::Utc;
use edetail_bundle::{BundleArchive, ReadOptions, Sha256Digest};
use edetail_protocol::PublishResult;

use crate::blobs::StagedBlob;
use crate::error::{Error, Result};
use crate::store::NewBundleVersion;
use crate::HubInner;

/// The territory value meaning "every territory".
pub const ALL_TERRITORIES: &str = "*";
/// Largest bundle zip accepted by `POST /v1/publish` (held in memory while validated).
pub const MAX_PUBLISH_BYTES: usize = 1024 * 1024 * 1024;

fn rejected(e: edetail_bundle::Error) -> Error {
    Error::InvalidBundle(e.to_string())
}

/// Normalizes the requested territories: empty means every territory (`"*"`).
pub fn territories_or_all(territories: &[String]) -> Result<Vec<String>> {
    let set: BTreeSet<String> = territories.iter().map(|t| t.trim().to_string()).collect();
    if set.iter().any(|t| t.is_empty() || t.len() > 64) {
        return Err(Error::BadRequest("territory names must be 1 to 64 characters".into()));
    }
    if set.is_empty() || set.contains(ALL_TERRITORIES) {
        return Ok(vec![ALL_TERRITORIES.to_string()]);
    }
    Ok(set.into_iter().collect())
}

pub(crate) fn publish(hub: &HubInner, zip: &[u8], territories: &[String], publisher: Option<&str>) -> Result<PublishResult> {
    let territories = territories_or_all(territories)?;
    let opts = ReadOptions::signed_by(hub.publisher_keys.clone());
    let mut archive = BundleArchive::open(Cursor::new(zip), &opts).map_err(rejected)?;
    let manifest = archive.manifest().clone();
    let signature = archive
        .signature_bytes()
        .ok_or_else(|| Error::InvalidBundle("manifest.sig is missing".into()))?
        .to_vec();
    if let Some(current) = hub.store.current_version(&manifest.id)?
        && current >= manifest.version
    {
        return Err(Error::VersionConflict { bundle_id: manifest.id.clone(), current, offered: manifest.version });
    }

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
        if hub.blobs.exists(&entry.sha256) {
            io::copy(&mut reader, &mut io::sink()).map_err(|e| Error::InvalidBundle(format!("{path}: {e}")))?;
            blobs_existing += 1;
        } else {
            staged.push(hub.blobs.stage(&mut reader, Some(&entry.sha256))?);
            blobs_new += 1;
        }
    }
    let zip_sha = Sha256Digest::of(zip);
    if !hub.blobs.exists(&zip_sha) {
        staged.push(hub.blobs.stage(&mut &zip[..], Some(&zip_sha))?);
    }
    hub.blobs.commit(staged)?;
    let v = NewBundleVersion {
        bundle_id: manifest.id.clone(),
        version: manifest.version,
        product: manifest.product.clone(),
        manifest: archive.manifest_bytes().to_vec(),
        signature,
        files,
        zip_sha256: zip_sha.to_hex(),
        zip_size: zip.len() as u64,
        territories: territories.clone(),
        publisher: publisher.map(str::to_string),
        published_at: Utc::now(),
    };
    hub.store.insert_bundle_version(&v)?;
    tracing::info!(bundle = %manifest.id, version = manifest.version, blobs_new, blobs_existing, "published");
    Ok(PublishResult { bundle_id: manifest.id, version: manifest.version, blobs_new, blobs_existing, territories })
}
