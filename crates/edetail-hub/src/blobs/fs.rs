//! The filesystem blob backend: `ROOT/ab/cdef…` named by SHA-256 (`edetail_bundle::cas::CasDir`,
//! the device's layout too). Staged temp files are renamed into place (a rename onto an
//! existing blob of the same hash is success) and the folders fsynced; reads stream from the
//! file, never loading it into memory.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use edetail_bundle::Sha256Digest;
use edetail_bundle::cas::{CasDir, CasError};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{BlobBackend, BoxFuture, ByteStream, StagedBlob};
use crate::error::{Error, Result};

/// Read buffer for streaming a blob to a device.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct FsBlobs {
    dir: CasDir,
}

impl FsBlobs {
    pub fn open(root: &Path) -> Result<Self> {
        Ok(FsBlobs { dir: CasDir::open(root).map_err(cas_error)? })
    }

    pub fn path_of(&self, d: &Sha256Digest) -> PathBuf {
        self.dir.path_of(d)
    }
}

fn cas_error(e: CasError) -> Error {
    match e {
        CasError::Io { path, source } => Error::io(path)(source),
        CasError::Mismatch { .. } => Error::Internal(e.to_string()),
    }
}

impl BlobBackend for FsBlobs {
    fn contains(&self, d: &Sha256Digest) -> Result<bool> {
        Ok(self.dir.contains(d))
    }

    fn commit(&self, staged: Vec<StagedBlob>) -> Result<()> {
        // Staged files are fsynced already; their names (folders, root) are synced here.
        let names: Vec<Sha256Digest> = staged.iter().map(|b| b.sha256).collect();
        for b in staged {
            self.dir.place(b.file, &b.sha256).map_err(cas_error)?;
        }
        self.dir.sync(&names, false).map_err(cas_error)
    }

    fn delete(&self, d: &Sha256Digest) -> Result<()> {
        self.dir.remove(d, true).map(|_| ()).map_err(cas_error)
    }

    fn read(&self, d: Sha256Digest, offset: u64, len: u64) -> BoxFuture<'static, Result<ByteStream>> {
        let path = self.path_of(&d);
        Box::pin(async move {
            let mut file = tokio::fs::File::open(&path).await.map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::Internal(format!("blob {d} is recorded but missing from the blob store")),
                _ => Error::io(&path)(e),
            })?;
            let size = file.metadata().await.map_err(Error::io(&path))?.len();
            if offset.saturating_add(len) > size {
                return Err(Error::Internal(format!("blob {d} is {size} bytes on disk, shorter than recorded")));
            }
            if offset > 0 {
                file.seek(SeekFrom::Start(offset)).await.map_err(Error::io(&path))?;
            }
            let stream: ByteStream = Box::pin(ReaderStream::with_capacity(file.take(len), READ_CHUNK));
            Ok(stream)
        })
    }

    fn describe(&self) -> String {
        format!("file:{}", self.dir.root().display())
    }

    fn count(&self) -> Result<u64> {
        Ok(self.dir.list().map_err(cas_error)?.len() as u64)
    }
}
