//! The content-addressed blob store: `objects/ab/cdef…` named by SHA-256, written to a temp
//! file while hashing, fsynced, then renamed into place. A rename onto an existing blob of the
//! same hash is success. The SQLite `blobs` table, not the directory listing, says which blobs
//! exist; files without a row are leftovers of an interrupted write and are swept by GC.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use edetail_bundle::Sha256Digest;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct BlobStore {
    objects: PathBuf,
    tmp: PathBuf,
}

/// A blob written and verified, not yet registered in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenBlob {
    pub sha256: Sha256Digest,
    pub size: u64,
}

impl BlobStore {
    pub fn open(root: &Path) -> Result<Self> {
        let objects = root.join("objects");
        let tmp = root.join("tmp");
        fs::create_dir_all(&objects).map_err(Error::io(&objects))?;
        fs::create_dir_all(&tmp).map_err(Error::io(&tmp))?;
        Ok(BlobStore { objects, tmp })
    }

    pub fn path_of(&self, d: &Sha256Digest) -> PathBuf {
        let hex = d.to_hex();
        self.objects.join(&hex[..2]).join(&hex[2..])
    }

    pub fn exists(&self, d: &Sha256Digest) -> bool {
        self.path_of(d).is_file()
    }

    /// Streams `content` into the store. When `expected` is given the content must hash to it
    /// (and the temp file is discarded otherwise). Returns what was written.
    pub fn write(&self, content: &mut dyn Read, expected: Option<&Sha256Digest>) -> Result<WrittenBlob> {
        self.write_inner(content, expected, true, true)
    }

    /// Like [`BlobStore::write`] for a reader that verifies the content itself and fails at end
    /// of stream on a mismatch (a bundle's `VerifyingReader`): hashing twice would only cost
    /// time. `expected` is the digest the reader verifies against.
    ///
    /// The blob is renamed into place but **not yet durable**: the caller must pass every blob
    /// of the batch to [`BlobStore::sync_batch`] before registering any of them. Deferring the
    /// fsyncs to the end of a bundle install lets the file system write back in bulk instead of
    /// waiting on one flush per file.
    pub fn write_preverified(&self, content: &mut dyn Read, expected: &Sha256Digest) -> Result<WrittenBlob> {
        self.write_inner(content, Some(expected), false, false)
    }

    /// Makes a batch of blobs written by [`BlobStore::write_preverified`] durable: fsyncs each
    /// file, then each prefix folder once, then `objects/`.
    pub fn sync_batch(&self, blobs: &[WrittenBlob]) -> Result<()> {
        let mut dirs = std::collections::BTreeSet::new();
        for b in blobs {
            let p = self.path_of(&b.sha256);
            File::open(&p).and_then(|f| f.sync_all()).map_err(Error::io(&p))?;
            if let Some(d) = p.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        if !dirs.is_empty() {
            sync_dir(&self.objects)?;
        }
        Ok(())
    }

    fn write_inner(&self, content: &mut dyn Read, expected: Option<&Sha256Digest>, hash: bool, durable: bool) -> Result<WrittenBlob> {
        let tmp = tempfile::Builder::new().prefix("blob-").suffix(".partial").tempfile_in(&self.tmp).map_err(Error::io(&self.tmp))?;
        let (file, tmp_path) = tmp.into_parts();
        let mut w = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file), hash);
        // Errors from `content` (e.g. a bundle entry failing verification) come back as
        // io::Errors; the temp file is removed when `tmp_path` drops.
        let copied = io::copy(content, &mut w);
        let (buf, digest, size) = w.finish();
        copied.map_err(|e| match edetail_bundle::problem_of(&e) {
            Some(p) => Error::Bundle(edetail_bundle::Error::Rejected(edetail_bundle::Problems(vec![p.clone()]))),
            None => Error::io(tmp_path.to_path_buf())(e),
        })?;
        let file = buf.into_inner().map_err(|e| Error::io(tmp_path.to_path_buf())(e.into_error()))?;
        let sha256 = match (digest, expected) {
            (Some(actual), Some(exp)) if actual != *exp => {
                return Err(Error::BlobMismatch { expected: exp.to_hex(), actual: actual.to_hex(), size });
            }
            (Some(actual), _) => actual,
            (None, Some(exp)) => *exp,
            (None, None) => return Err(Error::Invalid("an unhashed blob write needs its expected digest".into())),
        };
        if durable {
            file.sync_all().map_err(Error::io(tmp_path.to_path_buf()))?;
        }
        drop(file);
        let dest = self.path_of(&sha256);
        let dir = dest.parent().expect("objects/xx");
        let new_dir = !dir.is_dir();
        if new_dir {
            fs::create_dir_all(dir).map_err(Error::io(dir))?;
        }
        tmp_path.persist(&dest).map_err(|e| Error::io(&dest)(e.error))?;
        if durable {
            // The rename, and a new prefix folder, must survive power loss too.
            sync_dir(dir)?;
            if new_dir {
                sync_dir(&self.objects)?;
            }
        }
        Ok(WrittenBlob { sha256, size })
    }

    pub fn open_blob(&self, d: &Sha256Digest) -> Result<File> {
        let p = self.path_of(d);
        File::open(&p).map_err(Error::io(p))
    }

    pub fn remove(&self, d: &Sha256Digest) -> Result<()> {
        let p = self.path_of(d);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(p)(e)),
        }
    }

    /// Every blob file on disk (for GC sweeps).
    pub fn list(&self) -> Result<Vec<Sha256Digest>> {
        let mut out = Vec::new();
        for dir in fs::read_dir(&self.objects).map_err(Error::io(&self.objects))? {
            let dir = dir.map_err(Error::io(&self.objects))?.path();
            let Some(prefix) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
            if !dir.is_dir() {
                continue;
            }
            for f in fs::read_dir(&dir).map_err(Error::io(&dir))? {
                let name = f.map_err(Error::io(&dir))?.file_name();
                if let Ok(d) = Sha256Digest::from_hex(&format!("{prefix}{}", name.to_string_lossy())) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Removes temp files left by writes interrupted by a crash. Call only when no write is in
    /// progress (at open).
    pub fn clear_tmp(&self) -> Result<usize> {
        let mut n = 0;
        for f in fs::read_dir(&self.tmp).map_err(Error::io(&self.tmp))? {
            let p = f.map_err(Error::io(&self.tmp))?.path();
            if fs::remove_file(&p).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io(dir))
}

/// Counts (and optionally hashes) what is written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Option<sha2::Sha256>,
    count: u64,
}

impl<W: io::Write> HashingWriter<W> {
    fn new(inner: W, hash: bool) -> Self {
        use sha2::Digest as _;
        HashingWriter { inner, hasher: hash.then(sha2::Sha256::new), count: 0 }
    }

    fn finish(self) -> (W, Option<Sha256Digest>, u64) {
        use sha2::Digest as _;
        (self.inner, self.hasher.map(|h| Sha256Digest(h.finalize().into())), self.count)
    }
}

impl<W: io::Write> io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_is_content_addressed_idempotent_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let a = s.write(&mut &b"hello"[..], None).unwrap();
        assert_eq!(a.sha256, Sha256Digest::of(b"hello"));
        assert!(s.path_of(&a.sha256).to_string_lossy().contains("/objects/2c/f24dba"));
        let again = s.write(&mut &b"hello"[..], Some(&a.sha256)).unwrap();
        assert_eq!(again, a);
        let wrong = s.write(&mut &b"hellO"[..], Some(&a.sha256));
        assert!(matches!(wrong, Err(Error::BlobMismatch { .. })));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "no temp file left behind");
        assert_eq!(s.list().unwrap(), vec![a.sha256]);
    }
}
