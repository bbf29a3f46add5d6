//! The content-addressed blob store: `objects/ab/cdef…` named by SHA-256, written to a temp
//! file while hashing, fsynced, then renamed into place (the write path is
//! `edetail_bundle::cas`, shared with the hub). A rename onto an existing blob of the same hash
//! is success. The SQLite `blobs` table, not the directory listing, says which blobs
//! exist; files without a row are leftovers of an interrupted write and are swept by GC.
//!
//! Reads for serving are integrity-checked ([`BlobStore::open_checked`]): a blob whose bytes no
//! longer hash to its name (tampered or corrupted on disk) is refused. Each blob is verified
//! once per process; blobs are approved public content, so they are checked, not encrypted
//! (docs/adr/0012-encryption-at-rest.md).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use edetail_bundle::Sha256Digest;
use edetail_bundle::cas::{self, CasDir, CasError, Expect};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct BlobStore {
    objects: CasDir,
    tmp: PathBuf,
    /// Blobs whose file hashed to their name in this process.
    verified: Arc<Mutex<HashSet<Sha256Digest>>>,
}

/// Blobs up to this size are read whole and checked before the first byte is served; larger
/// ones are checked while streaming (the read fails at the end on a mismatch) or, for a range,
/// hashed whole once before the range is served.
pub const VERIFY_IN_MEMORY_MAX: u64 = 1 << 20;

/// A blob written and verified, not yet registered in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenBlob {
    pub sha256: Sha256Digest,
    pub size: u64,
}

impl BlobStore {
    pub fn open(root: &Path) -> Result<Self> {
        let objects = CasDir::open(&root.join("objects")).map_err(cas_error)?;
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(Error::io(&tmp))?;
        Ok(BlobStore { objects, tmp, verified: Arc::default() })
    }

    pub fn path_of(&self, d: &Sha256Digest) -> PathBuf {
        self.objects.path_of(d)
    }

    pub fn exists(&self, d: &Sha256Digest) -> bool {
        self.objects.contains(d)
    }

    /// Streams `content` into the store. When `expected` is given the content must hash to it
    /// (and the temp file is discarded otherwise). Returns what was written.
    pub fn write(&self, content: &mut dyn Read, expected: Option<&Sha256Digest>) -> Result<WrittenBlob> {
        self.write_inner(content, expected.map_or(Expect::Any, Expect::Digest), true)
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
        self.write_inner(content, Expect::Verified(expected), false)
    }

    /// Makes a batch of blobs written by [`BlobStore::write_preverified`] durable: fsyncs each
    /// file, then each prefix folder once, then `objects/`.
    pub fn sync_batch(&self, blobs: &[WrittenBlob]) -> Result<()> {
        self.objects.sync(blobs.iter().map(|b| &b.sha256), true).map_err(cas_error)
    }

    /// Stages, renames into place and, when `durable`, fsyncs the file, its prefix folder and
    /// `objects/`.
    fn write_inner(&self, content: &mut dyn Read, expect: Expect<'_>, durable: bool) -> Result<WrittenBlob> {
        // Errors from `content` (e.g. a bundle entry failing verification) come back as
        // io::Errors; the temp file is removed when staging fails.
        let staged = cas::stage(&self.tmp, content, expect, durable).map_err(cas_error)?;
        let written = WrittenBlob { sha256: staged.sha256, size: staged.size };
        self.objects.place(staged.file, &written.sha256).map_err(cas_error)?;
        if durable {
            // The rename, and a new prefix folder, must survive power loss too.
            self.objects.sync([&written.sha256], false).map_err(cas_error)?;
        }
        Ok(written)
    }

    pub fn open_blob(&self, d: &Sha256Digest) -> Result<File> {
        let p = self.path_of(d);
        File::open(&p).map_err(Error::io(p))
    }

    fn is_verified(&self, d: &Sha256Digest) -> bool {
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).contains(d)
    }

    fn mark_verified(verified: &Mutex<HashSet<Sha256Digest>>, d: Sha256Digest) {
        verified.lock().unwrap_or_else(|p| p.into_inner()).insert(d);
    }

    /// Opens `size` bytes of a blob (or the inclusive byte `range` of them) for serving, checked
    /// against its digest: a blob that no longer matches is never served whole
    /// ([`Error::BlobCorrupt`]). See [`VERIFY_IN_MEMORY_MAX`] for how.
    pub fn open_checked(&self, d: &Sha256Digest, size: u64, range: Option<(u64, u64)>) -> Result<Box<dyn Read + Send>> {
        let p = self.path_of(d);
        let (start, len) = match range {
            Some((a, b)) => (a, b - a + 1),
            None => (0, size),
        };
        let corrupt = || Error::BlobCorrupt { sha256: d.to_hex() };
        if self.is_verified(d) {
            let mut f = self.open_blob(d)?;
            if start > 0 {
                f.seek(SeekFrom::Start(start)).map_err(Error::io(&p))?;
            }
            return Ok(Box::new(f.take(len)));
        }
        if size <= VERIFY_IN_MEMORY_MAX {
            let mut bytes = Vec::with_capacity(size as usize);
            self.open_blob(d)?.take(size + 1).read_to_end(&mut bytes).map_err(Error::io(&p))?;
            if bytes.len() as u64 != size || Sha256Digest::of(&bytes) != *d {
                return Err(corrupt());
            }
            Self::mark_verified(&self.verified, *d);
            let mut c = io::Cursor::new(bytes);
            c.set_position(start);
            return Ok(Box::new(c.take(len)));
        }
        if range.is_none() {
            return Ok(Box::new(VerifyingReader::new(self.open_blob(d)?, *d, size, self.verified.clone())));
        }
        // A range of a large blob not yet verified: hash the whole file once, then serve.
        let mut whole = VerifyingReader::new(self.open_blob(d)?, *d, size, self.verified.clone());
        io::copy(&mut whole, &mut io::sink()).map_err(|_| corrupt())?;
        let mut f = self.open_blob(d)?;
        f.seek(SeekFrom::Start(start)).map_err(Error::io(&p))?;
        Ok(Box::new(f.take(len)))
    }

    pub fn remove(&self, d: &Sha256Digest) -> Result<()> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).remove(d);
        self.objects.remove(d, false).map(|_| ()).map_err(cas_error)
    }

    /// Every blob file on disk (for GC sweeps).
    pub fn list(&self) -> Result<Vec<Sha256Digest>> {
        self.objects.list().map_err(cas_error)
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

/// The device's error for a failed blob write: a content reader's bundle problem stays a
/// bundle rejection, a digest mismatch is [`Error::BlobMismatch`].
fn cas_error(e: CasError) -> Error {
    if let Some(p) = e.problem() {
        return Error::Bundle(edetail_bundle::Error::Rejected(edetail_bundle::Problems(vec![p.clone()])));
    }
    match e {
        CasError::Io { path, source } => Error::io(path)(source),
        CasError::Mismatch { expected, actual, size } => Error::BlobMismatch { expected: expected.to_hex(), actual: actual.to_hex(), size },
    }
}

/// Streams a whole blob, hashing it; at the end of the stream a mismatch (or a wrong length)
/// is an `InvalidData` error instead of EOF, so the consumer never sees a clean end of a
/// tampered blob. A match marks the blob verified for this process.
struct VerifyingReader {
    inner: io::Take<File>,
    hasher: sha2::Sha256,
    expected: Sha256Digest,
    size: u64,
    seen: u64,
    verified: Arc<Mutex<HashSet<Sha256Digest>>>,
}

impl VerifyingReader {
    fn new(file: File, expected: Sha256Digest, size: u64, verified: Arc<Mutex<HashSet<Sha256Digest>>>) -> Self {
        use sha2::Digest as _;
        // One byte more than expected, so a grown file is noticed too.
        VerifyingReader { inner: file.take(size + 1), hasher: sha2::Sha256::new(), expected, size, seen: 0, verified }
    }
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.read(buf)?;
        self.seen += n as u64;
        if self.seen > self.size {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "blob is longer than recorded"));
        }
        if n > 0 {
            self.hasher.update(&buf[..n]);
            return Ok(n);
        }
        let actual = Sha256Digest(std::mem::take(&mut self.hasher).finalize().into());
        if self.seen != self.size || actual != self.expected {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("blob {} does not match its digest", self.expected.to_hex())));
        }
        BlobStore::mark_verified(&self.verified, self.expected);
        Ok(0)
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

    fn read_all(r: Result<Box<dyn Read + Send>>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.expect("open").read_to_end(&mut out)?;
        Ok(out)
    }

    /// A blob whose bytes were changed on disk is refused, small (before any byte) or large
    /// (the stream fails at its end; a range hashes the whole blob first).
    #[test]
    fn tampered_blob_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let small = s.write(&mut &b"body { color: red }"[..], None).unwrap();
        fs::write(s.path_of(&small.sha256), b"body { color: RED }").unwrap();
        assert!(matches!(s.open_checked(&small.sha256, small.size, None), Err(Error::BlobCorrupt { .. })));
        assert!(matches!(s.open_checked(&small.sha256, small.size, Some((0, 3))), Err(Error::BlobCorrupt { .. })));

        let big: Vec<u8> = (0..(VERIFY_IN_MEMORY_MAX as usize + 4096)).map(|i| (i * 7 % 251) as u8).collect();
        let b = s.write(&mut &big[..], None).unwrap();
        assert_eq!(read_all(s.open_checked(&b.sha256, b.size, None)).unwrap(), big, "intact blob served");
        let fresh = BlobStore::open(dir.path()).unwrap(); // a new process: nothing verified yet
        let mut bad = big.clone();
        bad[10] ^= 1;
        fs::write(s.path_of(&b.sha256), &bad).unwrap();
        let e = read_all(fresh.open_checked(&b.sha256, b.size, None)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(fresh.open_checked(&b.sha256, b.size, Some((100, 200))), Err(Error::BlobCorrupt { .. })));
        // Truncated or grown files are refused too.
        fs::write(s.path_of(&b.sha256), &big[..big.len() - 1]).unwrap();
        assert!(read_all(fresh.open_checked(&b.sha256, b.size, None)).is_err());
        fs::write(s.path_of(&small.sha256), b"body { color: red }!").unwrap();
        assert!(fresh.open_checked(&small.sha256, small.size, None).is_err());
    }

    #[test]
    fn intact_small_blob_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let a = s.write(&mut &b"0123456789"[..], None).unwrap();
        assert_eq!(read_all(s.open_checked(&a.sha256, a.size, Some((2, 4)))).unwrap(), b"234");
        assert_eq!(read_all(s.open_checked(&a.sha256, a.size, Some((5, 9)))).unwrap(), b"56789", "verified path");
    }
}
