//! Content-addressed blob storage for the hub: every file of every published bundle (and the
//! published zip itself) stored once, named by its SHA-256. Publishing stages blobs into local
//! temp files (hashed while written, fsynced: `edetail_bundle::cas`, the device's write path
//! too) and commits them only when the whole bundle
//! verified, so a rejected bundle stores nothing; devices read them back with byte ranges.
//!
//! Two backends behind [`BlobBackend`]: the local filesystem ([`fs::FsBlobs`], the default,
//! `DATA/blobs/ab/cdef…`) and S3-compatible object storage ([`s3::S3Blobs`], through the
//! object_store crate) for several hub processes sharing the load.

pub mod fs;
pub mod s3;

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use edetail_bundle::Sha256Digest;
use edetail_bundle::cas::{self, CasError, Expect};
use futures_util::Stream;
use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// A blob's bytes as they stream out of a backend.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;
/// A boxed future returned by the async part of [`BlobBackend`].
pub type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Where blob bytes live. `contains` and `commit` are blocking (the hub calls them from its
/// blocking pool while publishing); `read` is async (it serves devices).
pub trait BlobBackend: Send + Sync + fmt::Debug + 'static {
    /// Whether a blob with this hash is stored.
    fn contains(&self, sha256: &Sha256Digest) -> Result<bool>;
    /// Makes staged blobs durable under their names. Storing an already stored blob again is
    /// success (same name, same bytes). A failure may leave some of them stored: unreferenced
    /// blobs are harmless and the next publish of the same content finds them.
    fn commit(&self, staged: Vec<StagedBlob>) -> Result<()>;
    /// Removes a blob; an absent blob is success. Only the collector of failed publishes calls
    /// it, under a deletion marker (ADR 0016): never for a blob a version references or a
    /// live publish leases.
    fn delete(&self, sha256: &Sha256Digest) -> Result<()>;
    /// Streams `len` bytes of a blob starting at `offset`.
    fn read(&self, sha256: Sha256Digest, offset: u64, len: u64) -> BoxFuture<'static, Result<ByteStream>>;
    /// For logs and `hub stats`: where blobs go (no credentials).
    fn describe(&self) -> String;
    /// How many blobs are stored. Walks everything: for tests and operators, not request paths.
    fn count(&self) -> Result<u64>;
}

/// A blob written to a local temp file and fsynced, not yet visible under its name.
#[derive(Debug)]
pub struct StagedBlob {
    pub sha256: Sha256Digest,
    pub size: u64,
    pub(crate) file: NamedTempFile,
}

/// The hub's blob storage: a local staging directory plus a backend.
#[derive(Debug, Clone)]
pub struct BlobStore {
    tmp: PathBuf,
    backend: Arc<dyn BlobBackend>,
    /// The staging directory, open and locked (`flock`) for as long as this store lives: a
    /// directory under `DATA/tmp` whose lock can be taken belongs to no live hub.
    _lock: Arc<std::fs::File>,
    /// This store's instance id (its staging directory's name after the prefix).
    instance: String,
    /// Instance ids of the dead hubs whose staging directories the start removed.
    dead_instances: Arc<Vec<String>>,
}

/// Prefix of the per-process staging directories under `DATA/tmp`.
const STAGING_PREFIX: &str = "staging-";

/// Removes what killed hub processes left in `root` (`DATA/tmp`): staging directories whose
/// lock nobody holds, and loose files (the layout before per-process directories). Returns how
/// many entries were removed and the instance ids of the dead hubs whose directories went.
/// Directories of live hubs sharing the data directory are locked and kept.
fn sweep_staging(root: &Path) -> Result<(usize, Vec<String>)> {
    let mut removed = 0;
    let mut dead = Vec::new();
    for entry in std::fs::read_dir(root).map_err(Error::io(root))? {
        let path = entry.map_err(Error::io(root))?.path();
        let is_staging = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(STAGING_PREFIX));
        if path.is_dir() {
            if !is_staging {
                continue;
            }
            let dir = std::fs::File::open(&path).map_err(Error::io(&path))?;
            match dir.try_lock() {
                Ok(()) => {
                    std::fs::remove_dir_all(&path).map_err(Error::io(&path))?;
                    removed += 1;
                    if let Some(id) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix(STAGING_PREFIX)) {
                        dead.push(id.to_string());
                    }
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path)(e)),
            }
        } else {
            std::fs::remove_file(&path).map_err(Error::io(&path))?;
            removed += 1;
        }
    }
    Ok((removed, dead))
}

impl BlobStore {
    /// Stages into a directory of its own under `DATA/tmp` (created when missing) and commits
    /// into `backend`. First removes what killed hub processes left in `DATA/tmp` (a publish
    /// killed mid-upload leaves its spooled zip and staged files there).
    pub fn new(data_dir: &Path, backend: Arc<dyn BlobBackend>) -> Result<Self> {
        let root = data_dir.join("tmp");
        std::fs::create_dir_all(&root).map_err(Error::io(&root))?;
        let (removed, dead_instances) = sweep_staging(&root)?;
        if removed > 0 {
            tracing::info!(removed, dir = %root.display(), "removed staging files left by a stopped hub");
        }
        let instance = uuid::Uuid::new_v4().to_string();
        let tmp = root.join(format!("{STAGING_PREFIX}{instance}"));
        std::fs::create_dir(&tmp).map_err(Error::io(&tmp))?;
        let lock = std::fs::File::open(&tmp).map_err(Error::io(&tmp))?;
        lock.try_lock().map_err(|e| Error::Internal(format!("locking the staging directory {}: {e}", tmp.display())))?;
        Ok(BlobStore { tmp, backend, _lock: Arc::new(lock), instance, dead_instances: Arc::new(dead_instances) })
    }

    /// The default: blobs on the local filesystem under `DATA/blobs`.
    pub fn open_local(data_dir: &Path) -> Result<Self> {
        BlobStore::new(data_dir, Arc::new(fs::FsBlobs::open(&data_dir.join("blobs"))?))
    }

    pub fn backend(&self) -> &Arc<dyn BlobBackend> {
        &self.backend
    }

    /// This store's instance id: unique per process start; a publish's claim id starts with it.
    pub fn instance_id(&self) -> &str {
        &self.instance
    }

    /// Instance ids of hubs on this data directory that died (their staging directories were
    /// unlocked and removed when this store opened): their publishes are dead at once.
    pub fn dead_instances(&self) -> &[String] {
        &self.dead_instances
    }

    /// The local staging directory (also used for request bodies spooled to disk).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    pub fn contains(&self, d: &Sha256Digest) -> Result<bool> {
        self.backend.contains(d)
    }

    /// Streams `content` to a temp file, hashing it; fails (discarding the file) when the
    /// reader fails or the content does not hash to `expected`.
    pub fn stage(&self, content: &mut dyn Read, expected: Option<&Sha256Digest>) -> Result<StagedBlob> {
        let expect = expected.map_or(Expect::Any, Expect::Digest);
        let staged = cas::stage(&self.tmp, content, expect, true).map_err(|e| match e.problem() {
            // The verifying reader found the content wrong: the bundle's fault.
            Some(p) => Error::InvalidBundle(p.to_string()),
            None => match e {
                CasError::Io { path, source } => Error::io(path)(source),
                CasError::Mismatch { .. } => Error::InvalidBundle(e.to_string()),
            },
        })?;
        Ok(StagedBlob { sha256: staged.sha256, size: staged.size, file: staged.file })
    }

    /// Adopts a temp file already in the staging directory (a spooled request body) as a
    /// staged blob, hashing it.
    pub fn adopt(&self, file: NamedTempFile) -> Result<StagedBlob> {
        let mut f = file.reopen().map_err(Error::io(file.path()))?;
        let (sha256, size) = edetail_bundle::digest::hash_reader(&mut f).map_err(Error::io(file.path()))?;
        file.as_file().sync_all().map_err(Error::io(file.path()))?;
        Ok(StagedBlob { sha256, size, file })
    }

    pub fn commit(&self, staged: Vec<StagedBlob>) -> Result<()> {
        if staged.is_empty() {
            return Ok(());
        }
        self.backend.commit(staged)
    }

    /// Removes a blob from the backend (see [`BlobBackend::delete`]).
    pub fn delete(&self, d: &Sha256Digest) -> Result<()> {
        self.backend.delete(d)
    }

    pub fn read(&self, d: Sha256Digest, offset: u64, len: u64) -> BoxFuture<'static, Result<ByteStream>> {
        self.backend.read(d, offset, len)
    }
}

/// How operators name a blob backend on the command line: `file:DIR` (or a plain path) or
/// `s3://BUCKET[/PREFIX][?endpoint=URL&region=R&allow_http=true]`; S3 credentials come from
/// the usual `AWS_*` environment variables.
pub fn backend_from_url(url: &str) -> Result<Arc<dyn BlobBackend>> {
    if let Some(rest) = url.strip_prefix("s3://") {
        return Ok(Arc::new(s3::S3Blobs::from_url(rest)?));
    }
    let dir = url.strip_prefix("file:").unwrap_or(url);
    if dir.is_empty() || dir.contains("://") {
        return Err(Error::BadRequest(format!("unsupported blob store {url:?}: use file:DIR or s3://BUCKET")));
    }
    Ok(Arc::new(fs::FsBlobs::open(Path::new(dir))?))
}
