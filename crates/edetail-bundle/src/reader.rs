//! Reading a bundle zip without trusting it.
//!
//! [`BundleArchive::open`] checks the archive's structure, verifies the signature over the exact
//! manifest bytes *before* parsing the manifest, validates the manifest and cross-checks it with
//! the archive's entries. File contents are then read through [`BundleArchive::read_file`], which
//! enforces the size limits on the bytes actually inflated and fails at the end of the stream
//! unless size and SHA-256 match the (signed) manifest. [`check`] does all of it and collects
//! every problem instead of stopping at the first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use sha2::{Digest as _, Sha256};
use zip::ZipArchive;

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::manifest::{MANIFEST_NAME, MAX_MANIFEST_BYTES, Manifest, ManifestError, SIGNATURE_NAME};
use crate::path::BundlePath;
use crate::problem::{Problem, ProblemKind, Problems};
use crate::sign::{PublicKey, signature_key_id, verify_manifest};
use crate::validate;
use crate::zipscan;

/// Largest `manifest.sig` accepted.
const MAX_SIGNATURE_BYTES: u64 = 64 * 1024;
/// Copy buffer for streaming verification.
const COPY_BUFFER: usize = 256 * 1024;

/// How a bundle is read: limits and signature policy.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub limits: Limits,
    /// Keys whose signatures are accepted.
    pub trusted_keys: Vec<PublicKey>,
    /// Refuse bundles without a valid signature by a trusted key. When false, an unsigned bundle
    /// is accepted with a warning, but a signature that is present and wrong is still an error.
    pub require_signature: bool,
}

impl ReadOptions {
    /// Signature required, by one of `keys`. The policy devices and the hub use.
    pub fn signed_by(keys: Vec<PublicKey>) -> Self {
        ReadOptions { trusted_keys: keys, require_signature: true, ..Default::default() }
    }

    /// Unsigned bundles accepted (authoring, preview).
    pub fn allow_unsigned() -> Self {
        ReadOptions::default()
    }
}

/// What is known about the bundle's signature.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureStatus {
    /// No `manifest.sig`.
    Unsigned,
    /// Verified with the trusted key of this id.
    Verified { key_id: String },
    /// Signed, but no trusted keys were given to verify it against.
    NotChecked { key_id: Option<String> },
    /// Present and not valid (see the problems).
    Invalid,
}

/// An error carried inside an `io::Error` by [`VerifyingReader`], so callers that copy the
/// stream (into a blob store, say) get the exact problem back.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProblemError(pub Problem);

/// The problem inside an I/O error produced while reading a bundle file, if any.
pub fn problem_of(e: &io::Error) -> Option<&Problem> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<ProblemError>()).map(|p| &p.0)
}

fn problem_io(entry: &str, kind: ProblemKind) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, ProblemError(Problem::error(Some(entry), kind)))
}

/// A structurally checked bundle whose manifest is verified and parsed. File contents are
/// verified as they are read.
pub struct BundleArchive<R> {
    zip: ZipArchive<R>,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    signature_bytes: Option<Vec<u8>>,
    signature: SignatureStatus,
    /// Manifest path -> zip index.
    index: BTreeMap<BundlePath, usize>,
    limits: Limits,
    warnings: Vec<Problem>,
    /// Uncompressed bytes produced so far across all reads, for the total limit.
    total_read: u64,
}

impl<R> std::fmt::Debug for BundleArchive<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleArchive")
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

impl BundleArchive<BufReader<File>> {
    /// Opens a bundle file; see [`BundleArchive::open`].
    pub fn open_path(path: &Path, opts: &ReadOptions) -> Result<Self> {
        let f = File::open(path).map_err(Error::io(path))?;
        Self::open(BufReader::with_capacity(COPY_BUFFER, f), opts)
    }
}

impl<R: Read + Seek> BundleArchive<R> {
    /// Checks structure, signature and manifest. Fails with [`Error::Rejected`] listing the
    /// problems found up to the first stage that failed; a signature failure stops before the
    /// manifest is even parsed.
    pub fn open(reader: R, opts: &ReadOptions) -> Result<Self> {
        let mut problems = Vec::new();
        match inspect(reader, opts, Mode::Strict, &mut problems) {
            Some(mut archive) if !problems.iter().any(Problem::is_error) => {
                archive.warnings = problems;
                Ok(archive)
            }
            _ => Err(Error::Rejected(Problems(problems))),
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The exact manifest bytes (what the signature covers).
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    pub fn signature_bytes(&self) -> Option<&[u8]> {
        self.signature_bytes.as_deref()
    }

    pub fn signature(&self) -> &SignatureStatus {
        &self.signature
    }

    /// Warnings found while opening (errors make `open` fail).
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// Streams one file. The reader fails (with a [`ProblemError`] inside the `io::Error`) as
    /// soon as the content exceeds a limit or its manifest size, and at end of stream unless
    /// size and SHA-256 match the manifest. Callers must read to the end before using the data.
    pub fn read_file(&mut self, path: &BundlePath) -> Result<VerifyingReader<'_, R>> {
        let expected = self
            .manifest
            .files
            .get(path)
            .ok_or_else(|| Error::Rejected(Problems(vec![Problem::error(Some(path.as_str()), ProblemKind::MissingFile)])))?;
        let idx = *self
            .index
            .get(path)
            .ok_or_else(|| Error::Rejected(Problems(vec![Problem::error(Some(path.as_str()), ProblemKind::MissingFile)])))?;
        let zf = self.zip.by_index(idx).map_err(|e| {
            Error::Rejected(Problems(vec![Problem::error(Some(path.as_str()), ProblemKind::CorruptEntry { detail: e.to_string() })]))
        })?;
        let declared = zf.size();
        let ceiling = self.limits.ratio_ceiling(zf.compressed_size());
        Ok(VerifyingReader {
            inner: zf,
            entry: path.as_str().to_string(),
            expected_sha256: expected.sha256,
            expected_size: expected.size,
            declared,
            ratio_ceiling: ceiling,
            limits: self.limits,
            total_read: &mut self.total_read,
            produced: 0,
            hasher: Sha256::new(),
            done: false,
        })
    }

    /// Reads a whole file into memory, verified. For small files (HTML, thumbnails).
    pub fn read_file_to_vec(&mut self, path: &BundlePath) -> Result<Vec<u8>> {
        let mut r = self.read_file(path)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| io_to_error(path.as_str(), e))?;
        Ok(out)
    }

    /// Reads and verifies every file, calling `progress` with the bytes done so far.
    /// Returns the problems found (empty when the bundle is intact).
    pub fn verify_all(&mut self, progress: &mut dyn FnMut(u64)) -> Vec<Problem> {
        let paths: Vec<BundlePath> = self.manifest.files.keys().filter(|p| self.index.contains_key(*p)).cloned().collect();
        let mut problems = Vec::new();
        let mut done = 0u64;
        let mut buf = vec![0u8; COPY_BUFFER];
        for path in paths {
            let res = self.read_file(&path).map_err(|e| match e {
                Error::Rejected(p) => p.0,
                other => vec![Problem::error(Some(path.as_str()), ProblemKind::CorruptEntry { detail: other.to_string() })],
            });
            let mut reader = match res {
                Ok(r) => r,
                Err(mut ps) => {
                    problems.append(&mut ps);
                    continue;
                }
            };
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        done += n as u64;
                        progress(done);
                    }
                    Err(e) => {
                        problems.push(io_problem(path.as_str(), e));
                        break;
                    }
                }
            }
            let stop = problems.last().is_some_and(|p| matches!(p.kind, ProblemKind::TotalTooLarge { .. }));
            if stop {
                break;
            }
        }
        problems
    }
}

fn io_problem(entry: &str, e: io::Error) -> Problem {
    match problem_of(&e) {
        Some(p) => p.clone(),
        None => Problem::error(Some(entry), ProblemKind::CorruptEntry { detail: e.to_string() }),
    }
}

fn io_to_error(entry: &str, e: io::Error) -> Error {
    Error::Rejected(Problems(vec![io_problem(entry, e)]))
}

/// A reader over one bundle file that enforces limits while inflating and verifies size and
/// SHA-256 against the manifest at end of stream.
pub struct VerifyingReader<'a, R: Read> {
    inner: zip::read::ZipFile<'a, R>,
    entry: String,
    expected_sha256: Sha256Digest,
    expected_size: u64,
    declared: u64,
    ratio_ceiling: u64,
    limits: Limits,
    total_read: &'a mut u64,
    produced: u64,
    hasher: Sha256,
    done: bool,
}

impl<R: Read> std::fmt::Debug for VerifyingReader<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingReader").field("entry", &self.entry).field("produced", &self.produced).finish()
    }
}

impl<R: Read> VerifyingReader<'_, R> {
    /// The size the manifest promises.
    pub fn expected_size(&self) -> u64 {
        self.expected_size
    }

    pub fn expected_sha256(&self) -> Sha256Digest {
        self.expected_sha256
    }

    fn fail(&mut self, kind: ProblemKind) -> io::Error {
        self.done = true;
        problem_io(&self.entry, kind)
    }
}

impl<R: Read> Read for VerifyingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => return Err(self.fail(ProblemKind::CorruptEntry { detail: e.to_string() })),
        };
        if n == 0 {
            // End of stream: everything must match before the caller may use the data.
            if self.produced != self.expected_size {
                let k = ProblemKind::SizeMismatch { expected: self.expected_size, actual: self.produced };
                return Err(self.fail(k));
            }
            if self.produced != self.declared {
                let k = ProblemKind::HeaderSizeMismatch { declared: self.declared, actual: self.produced };
                return Err(self.fail(k));
            }
            let actual = Sha256Digest(std::mem::take(&mut self.hasher).finalize().into());
            if actual != self.expected_sha256 {
                let k = ProblemKind::HashMismatch { expected: self.expected_sha256.to_hex(), actual: actual.to_hex() };
                return Err(self.fail(k));
            }
            self.done = true;
            return Ok(0);
        }
        self.produced += n as u64;
        *self.total_read += n as u64;
        if self.produced > self.limits.max_entry_size {
            return Err(self.fail(ProblemKind::EntryTooLarge { limit: self.limits.max_entry_size }));
        }
        if self.produced > self.ratio_ceiling {
            return Err(self.fail(ProblemKind::CompressionRatio { limit: self.limits.max_ratio }));
        }
        if *self.total_read > self.limits.max_total_size {
            return Err(self.fail(ProblemKind::TotalTooLarge { limit: self.limits.max_total_size }));
        }
        if self.produced > self.expected_size {
            // Stop at once: header sizes are not trusted, the signed manifest size is.
            let k = ProblemKind::SizeMismatch { expected: self.expected_size, actual: self.produced };
            return Err(self.fail(k));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The outcome of [`check`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// Present when the manifest could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    pub signature: SignatureStatus,
    pub problems: Vec<Problem>,
    /// Uncompressed bytes verified.
    pub bytes_verified: u64,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        !self.problems.iter().any(Problem::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_error())
    }
}

/// Fully verifies a bundle and reports every problem found.
pub fn check<R: Read + Seek>(reader: R, opts: &ReadOptions, progress: &mut dyn FnMut(u64)) -> CheckReport {
    let mut problems = Vec::new();
    let Some(mut archive) = inspect(reader, opts, Mode::Collect, &mut problems) else {
        return CheckReport { manifest: None, signature: SignatureStatus::Invalid, problems, bytes_verified: 0 };
    };
    // Contents are verified even after a signature problem: an author fixing a bundle wants
    // every finding at once. (Strict opening never gets this far.)
    let mut found = archive.verify_all(progress);
    problems.append(&mut found);
    CheckReport { bytes_verified: archive.total_read, manifest: Some(archive.manifest), signature: archive.signature, problems }
}

/// [`check`] on a file path. Fails only when the file cannot be opened.
pub fn check_path(path: &Path, opts: &ReadOptions, progress: &mut dyn FnMut(u64)) -> Result<CheckReport> {
    let f = File::open(path).map_err(Error::io(path))?;
    Ok(check(BufReader::with_capacity(COPY_BUFFER, f), opts, progress))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Stop at the first stage with an error; never parse an unverified manifest.
    Strict,
    /// Go as far as possible and collect everything (for `check`).
    Collect,
}

fn display_name(raw: &[u8]) -> String {
    // Escape control characters so a hostile name cannot rewrite the author's terminal.
    String::from_utf8_lossy(raw).chars().flat_map(char::escape_default).collect::<String>()
}

fn err(problems: &mut Vec<Problem>, entry: Option<&str>, kind: ProblemKind) {
    problems.push(Problem::error(entry, kind));
}

/// The shared inspection behind `open` and `check`. Returns `None` when it could not get as far
/// as a parsed manifest.
fn inspect<R: Read + Seek>(mut reader: R, opts: &ReadOptions, mode: Mode, problems: &mut Vec<Problem>) -> Option<BundleArchive<R>> {
    let limits = opts.limits;
    let stop = |problems: &Vec<Problem>| mode == Mode::Strict && problems.iter().any(Problem::is_error);

    // 1. Raw names, to find duplicates by name and refuse huge directories before allocating.
    let raw_names = match zipscan::central_directory_names(&mut reader, limits.max_entries + 1) {
        Ok(n) => n,
        Err(e) => {
            err(problems, None, ProblemKind::CorruptArchive { detail: e.to_string() });
            return None;
        }
    };
    if raw_names.len() > limits.max_entries {
        err(problems, None, ProblemKind::TooManyEntries { limit: limits.max_entries });
        return None;
    }
    let mut counts: BTreeMap<&[u8], usize> = BTreeMap::new();
    for n in &raw_names {
        *counts.entry(n.as_slice()).or_default() += 1;
    }
    for (name, count) in counts.iter().filter(|(_, c)| **c > 1) {
        err(problems, Some(&display_name(name)), ProblemKind::DuplicateEntry { count: *count });
    }
    if stop(problems) {
        return None;
    }
    if reader.rewind().is_err() {
        err(problems, None, ProblemKind::CorruptArchive { detail: "cannot seek".into() });
        return None;
    }

    // 2. The zip crate's view, plus its consistency checks (local vs central headers, overlap).
    let mut zip = match ZipArchive::new(reader) {
        Ok(z) => z,
        Err(e) => {
            err(problems, None, ProblemKind::CorruptArchive { detail: e.to_string() });
            return None;
        }
    };
    match zip.has_overlapping_entries() {
        Ok(false) => {}
        Ok(true) => err(problems, None, ProblemKind::OverlappingEntries),
        Err(e) => err(problems, None, ProblemKind::CorruptArchive { detail: e.to_string() }),
    }
    if !zip.has_duplicate_names()
        && let Err(e) = zip.validate_header_consistency()
    {
        err(problems, None, ProblemKind::CorruptArchive { detail: e.to_string() });
    }
    if stop(problems) {
        return None;
    }

    // 3. Every entry: name, type, method, sizes by header.
    let mut entries: BTreeMap<BundlePath, usize> = BTreeMap::new();
    let mut folded: HashMap<String, String> = HashMap::new();
    let mut manifest_idx = None;
    let mut signature_idx = None;
    let mut header_total: u64 = 0;
    for i in 0..zip.len() {
        let Ok(e) = zip.by_index_data(i) else {
            err(problems, None, ProblemKind::CorruptArchive { detail: format!("entry {i} unreadable") });
            continue;
        };
        let raw = e.name_raw();
        let shown = display_name(raw);
        let is_dir_entry = raw.ends_with(b"/");
        let name_bytes = if is_dir_entry { &raw[..raw.len() - 1] } else { raw };
        let path = match BundlePath::from_bytes(name_bytes) {
            Ok(p) => p,
            Err(reason) => {
                err(problems, Some(&shown), ProblemKind::UnsafePath { reason });
                continue;
            }
        };
        if e.is_symlink() {
            err(problems, Some(&shown), ProblemKind::Symlink);
            continue;
        }
        if is_dir_entry {
            if e.size() > 0 {
                err(problems, Some(&shown), ProblemKind::CorruptEntry { detail: "folder entry carries data".into() });
            }
            continue;
        }
        if let Some(other) = folded.insert(path.case_fold_key(), path.to_string())
            && other != path.as_str()
        {
            err(problems, Some(&shown), ProblemKind::CaseCollision { other });
        }
        if e.encrypted() {
            err(problems, Some(&shown), ProblemKind::Encrypted);
            continue;
        }
        match e.compression() {
            zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated => {}
            other => {
                err(problems, Some(&shown), ProblemKind::UnsupportedCompression { method: format!("{other:?}") });
                continue;
            }
        }
        if e.size() > limits.max_entry_size {
            err(problems, Some(&shown), ProblemKind::EntryTooLarge { limit: limits.max_entry_size });
            continue;
        }
        if e.size() > limits.ratio_ceiling(e.compressed_size()) {
            err(problems, Some(&shown), ProblemKind::CompressionRatio { limit: limits.max_ratio });
            continue;
        }
        header_total = header_total.saturating_add(e.size());
        match path.as_str() {
            MANIFEST_NAME => manifest_idx = Some(i),
            SIGNATURE_NAME => signature_idx = Some(i),
            _ => {
                entries.insert(path, i);
            }
        }
    }
    if header_total > limits.max_total_size {
        err(problems, None, ProblemKind::TotalTooLarge { limit: limits.max_total_size });
    }
    let Some(manifest_idx) = manifest_idx else {
        err(problems, Some(MANIFEST_NAME), ProblemKind::ManifestMissing);
        return None;
    };
    if stop(problems) {
        return None;
    }

    // 4. Signature over the exact manifest bytes, before the manifest is parsed.
    let manifest_bytes = match read_small(&mut zip, manifest_idx, MAX_MANIFEST_BYTES) {
        Ok(b) => b,
        Err(detail) => {
            err(problems, Some(MANIFEST_NAME), ProblemKind::ManifestInvalid { detail });
            return None;
        }
    };
    let signature_bytes = match signature_idx.map(|i| read_small(&mut zip, i, MAX_SIGNATURE_BYTES)) {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(detail)) => {
            err(problems, Some(SIGNATURE_NAME), ProblemKind::SignatureMalformed { detail });
            return None;
        }
    };
    let (manifest, signature) = verify_and_parse(&manifest_bytes, signature_bytes.as_deref(), opts, mode, problems)?;

    // 6. Archive entries and manifest files must be the same set, with matching header sizes.
    let listed: BTreeSet<&BundlePath> = manifest.files.keys().collect();
    for (path, &i) in &entries {
        match manifest.files.get(path) {
            None => err(problems, Some(path.as_str()), ProblemKind::NotInManifest),
            Some(f) => {
                if let Ok(e) = zip.by_index_data(i)
                    && e.size() != f.size
                {
                    let k = ProblemKind::SizeMismatch { expected: f.size, actual: e.size() };
                    err(problems, Some(path.as_str()), k);
                }
            }
        }
    }
    for path in listed.iter().filter(|p| !entries.contains_key(**p)) {
        // Entries already reported as unsafe or refused are not "missing" a second time.
        if !problems.iter().any(|p| p.entry.as_deref() == Some(path.as_str())) {
            err(problems, Some(path.as_str()), ProblemKind::MissingFile);
        }
    }
    if stop(problems) {
        return None;
    }
    entries.retain(|p, _| manifest.files.contains_key(p));
    Some(BundleArchive {
        zip,
        manifest,
        manifest_bytes,
        signature_bytes,
        signature,
        index: entries,
        limits,
        warnings: Vec::new(),
        total_read: 0,
    })
}

/// Steps shared by zip reading and detached manifests: verify the signature over the exact
/// bytes, then (unless strict mode already failed) parse and validate the manifest.
fn verify_and_parse(
    manifest_bytes: &[u8],
    signature_bytes: Option<&[u8]>,
    opts: &ReadOptions,
    mode: Mode,
    problems: &mut Vec<Problem>,
) -> Option<(Manifest, SignatureStatus)> {
    let signature = match signature_bytes {
        None => {
            problems.push(Problem::new_for_signature(opts.require_signature, ProblemKind::Unsigned));
            SignatureStatus::Unsigned
        }
        Some(sig) if opts.trusted_keys.is_empty() && !opts.require_signature => {
            SignatureStatus::NotChecked { key_id: signature_key_id(sig) }
        }
        Some(sig) => match verify_manifest(manifest_bytes, sig, &opts.trusted_keys) {
            Ok(key_id) => SignatureStatus::Verified { key_id },
            Err(kind) => {
                err(problems, Some(SIGNATURE_NAME), kind);
                SignatureStatus::Invalid
            }
        },
    };
    if mode == Mode::Strict && problems.iter().any(Problem::is_error) {
        return None;
    }
    let manifest = match Manifest::from_slice(manifest_bytes) {
        Ok(m) => m,
        Err(e @ ManifestError::UnsupportedFormat { .. }) => {
            err(problems, Some(MANIFEST_NAME), ProblemKind::UnsupportedFormat { detail: e.to_string() });
            return None;
        }
        Err(e) => {
            err(problems, Some(MANIFEST_NAME), ProblemKind::ManifestInvalid { detail: e.to_string() });
            return None;
        }
    };
    problems.extend(validate::manifest(&manifest));
    Some((manifest, signature))
}

/// A manifest received on its own (the sync engine fetches manifests and blobs separately),
/// verified under the same policy as a bundle zip: signature first, then parse and validate.
#[derive(Debug, Clone)]
pub struct VerifiedManifest {
    pub manifest: Manifest,
    pub signature: SignatureStatus,
    pub warnings: Vec<Problem>,
}

/// Verifies detached `manifest.json` bytes and optional `manifest.sig` bytes.
pub fn verify_detached_manifest(manifest_bytes: &[u8], signature_bytes: Option<&[u8]>, opts: &ReadOptions) -> Result<VerifiedManifest> {
    if manifest_bytes.len() as u64 > MAX_MANIFEST_BYTES {
        let p =
            Problem::error(Some(MANIFEST_NAME), ProblemKind::ManifestInvalid { detail: format!("larger than {MAX_MANIFEST_BYTES} bytes") });
        return Err(Error::Rejected(Problems(vec![p])));
    }
    let mut problems = Vec::new();
    match verify_and_parse(manifest_bytes, signature_bytes, opts, Mode::Strict, &mut problems) {
        Some((manifest, signature)) if !problems.iter().any(Problem::is_error) => {
            Ok(VerifiedManifest { manifest, signature, warnings: problems })
        }
        _ => Err(Error::Rejected(Problems(problems))),
    }
}

impl Problem {
    fn new_for_signature(required: bool, kind: ProblemKind) -> Problem {
        if required { Problem::error(Some(SIGNATURE_NAME), kind) } else { Problem::warning(Some(SIGNATURE_NAME), kind) }
    }
}

/// Reads a small entry fully, refusing more than `max` bytes (counted while inflating).
fn read_small<R: Read + Seek>(zip: &mut ZipArchive<R>, idx: usize, max: u64) -> std::result::Result<Vec<u8>, String> {
    let f = zip.by_index(idx).map_err(|e| e.to_string())?;
    if f.size() > max {
        return Err(format!("larger than {max} bytes"));
    }
    let mut out = Vec::new();
    f.take(max + 1).read_to_end(&mut out).map_err(|e| e.to_string())?;
    if out.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(out)
}
