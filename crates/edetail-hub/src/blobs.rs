//! The hub's content-addressed blob directory: `DIR/blobs/ab/cdef…` named by SHA-256, written
//! to a temp file under `DIR/tmp` while hashing, fsynced, then renamed into place. A rename onto
//! an existing blob of the same hash is success. Publishing stages every new blob first and
//! commits them only when the whole bundle verified, so a rejected bundle leaves nothing behind.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use edetail_bundle::Sha256Digest;
use edetail_bundle::digest::HashingWriter;
use tempfile::NamedTempFile;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

/// A blob written to a temp file and fsynced, not yet visible under its name.
#[derive(Debug)]
pub struct StagedBlob {
    pub sha256: Sha256Digest,
    pub size: u64,
    file: NamedTempFile,
}

impl BlobStore {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let root = data_dir.join("blobs");
        let tmp = data_dir.join("tmp");
        fs::create_dir_all(&root).map_err(Error::io(&root))?;
        fs::create_dir_all(&tmp).map_err(Error::io(&tmp))?;
        Ok(BlobStore { root, tmp })
    }

    pub fn path_of(&self, d: &Sha256Digest) -> PathBuf {
        let hex = d.to_hex();
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    pub fn exists(&self, d: &Sha256Digest) -> bool {
        self.path_of(d).is_file()
    }

    /// Streams `content` to a temp file, hashing it; fails (discarding the file) when the
    /// reader fails or the content does not hash to `expected`.
    pub fn stage(&self, content: &mut dyn Read, expected: Option<&Sha256Digest>) -> Result<StagedBlob> {
        let file = NamedTempFile::new_in(&self.tmp).map_err(Error::io(&self.tmp))?;
        let mut w = HashingWriter::new(BufWriter::new(file));
        io::copy(content, &mut w).map_err(|e| match edetail_bundle::reader::problem_of(&e) {
            // The verifying reader found the content wrong: the bundle's fault.
            Some(p) => Error::InvalidBundle(p.to_string()),
            None => Error::io(&self.tmp)(e),
        })?;
        let (buf, sha256, size) = w.finish();
        let file = buf.into_inner().map_err(|e| Error::io(&self.tmp)(e.into_error()))?;
        if let Some(exp) = expected
            && *exp != sha256
        {
            return Err(Error::InvalidBundle(format!("content hashes to {sha256}, expected {exp}")));
        }
        file.as_file().sync_all().map_err(Error::io(file.path()))?;
        Ok(StagedBlob { sha256, size, file })
    }

    /// Renames staged blobs into place and fsyncs the folders.
    pub fn commit(&self, staged: Vec<StagedBlob>) -> Result<()> {
        let mut dirs = std::collections::BTreeSet::new();
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

    /// Stores a whole in-memory blob (the published zip itself).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(Sha256Digest, bool)> {
        let d = Sha256Digest::of(bytes);
        if self.exists(&d) {
            return Ok((d, false));
        }
        let staged = self.stage(&mut &bytes[..], Some(&d))?;
        self.commit(vec![staged])?;
        Ok((d, true))
    }
}

fn sync_dir(d: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(d).and_then(|f| f.sync_all()).map_err(Error::io(d))?;
    #[cfg(not(unix))]
    let _ = d;
    Ok(())
}
