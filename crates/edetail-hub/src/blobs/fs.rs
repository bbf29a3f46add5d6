//! The filesystem blob backend: `ROOT/ab/cdef…` named by SHA-256. Staged temp files are
//! renamed into place (a rename onto an existing blob of the same hash is success) and the
//! folders fsynced; reads stream from the file, never loading it into memory.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use edetail_bundle::Sha256Digest;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{BlobBackend, BoxFuture, ByteStream, StagedBlob};
use crate::error::{Error, Result};

/// Read buffer for streaming a blob to a device.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct FsBlobs {
    root: PathBuf,
}

impl FsBlobs {
    pub fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root).map_err(Error::io(root))?;
        Ok(FsBlobs { root: root.to_path_buf() })
    }

    pub fn path_of(&self, d: &Sha256Digest) -> PathBuf {
        let hex = d.to_hex();
        self.root.join(&hex[..2]).join(&hex[2..])
    }
}

impl BlobBackend for FsBlobs {
    fn contains(&self, d: &Sha256Digest) -> Result<bool> {
        Ok(self.path_of(d).is_file())
    }

    fn commit(&self, staged: Vec<StagedBlob>) -> Result<()> {
        let mut dirs = BTreeSet::new();
        for b in staged {
            let dest = self.path_of(&b.sha256);
            let dir = dest.parent().expect("blob path has a parent").to_path_buf();
            fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
            b.file.persist(&dest).map_err(|e| Error::io(&dest)(e.error))?;
            dirs.insert(dir);
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        if !dirs.is_empty() {
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    fn delete(&self, d: &Sha256Digest) -> Result<()> {
        let path = self.path_of(d);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().expect("blob path has a parent")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path)(e)),
        }
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
        format!("file:{}", self.root.display())
    }

    fn count(&self) -> Result<u64> {
        let mut n = 0;
        for prefix in fs::read_dir(&self.root).map_err(Error::io(&self.root))? {
            let prefix = prefix.map_err(Error::io(&self.root))?.path();
            if prefix.is_dir() {
                n += fs::read_dir(&prefix).map_err(Error::io(&prefix))?.count() as u64;
            }
        }
        Ok(n)
    }
}

fn sync_dir(d: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(d).and_then(|f| f.sync_all()).map_err(Error::io(d))?;
    #[cfg(not(unix))]
    let _ = d;
    Ok(())
}
