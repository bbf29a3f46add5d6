//! Content-addressed files on disk, shared by the device's blob store and the hub's filesystem
//! blob backend: `ROOT/ab/cdef…` named by SHA-256. Content is staged into a temp file (hashed
//! while written, optionally fsynced), renamed into place (a rename onto an existing blob of the
//! same hash is success), and made durable by fsyncing the files not yet synced, each prefix
//! folder once and the root. What is registered where (a catalogue table, a publish) is the
//! callers' business; they map [`CasError`] to their own errors.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::digest::{HashingWriter, Sha256Digest};
use crate::problem::Problem;

/// Write buffer between the content reader and a staged file.
const STAGE_BUFFER: usize = 256 * 1024;

/// A failure staging or storing content.
#[derive(Debug, thiserror::Error)]
pub enum CasError {
    /// Reading the content or writing the file system failed. When the content reader failed
    /// its own check (a bundle's verifying reader), [`CasError::problem`] says why.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The content does not hash to the digest it was expected to have.
    #[error("content hashes to {actual}, expected {expected}")]
    Mismatch { expected: Sha256Digest, actual: Sha256Digest, size: u64 },
}

impl CasError {
    /// The bundle problem the content reader failed with, if that is why staging failed.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            CasError::Io { source, .. } => crate::reader::problem_of(source),
            CasError::Mismatch { .. } => None,
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> CasError + '_ {
    move |source| CasError::Io { path: path.to_path_buf(), source }
}

/// What the staged content must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect<'a> {
    /// Anything: the content is hashed and named by what it hashes to.
    Any,
    /// This digest: the content is hashed and refused ([`CasError::Mismatch`]) otherwise.
    Digest(&'a Sha256Digest),
    /// This digest, checked by the reader itself (it fails at end of stream on a mismatch, as a
    /// bundle's `VerifyingReader` does): hashing twice would only cost time.
    Verified(&'a Sha256Digest),
}

/// Content written to a temp file, not yet under its name. Dropping it removes the file.
#[derive(Debug)]
pub struct Staged {
    pub sha256: Sha256Digest,
    pub size: u64,
    pub file: NamedTempFile,
}

/// Streams `content` into a new temp file in `dir` (`blob-….partial`), hashing it as `expect`
/// says, fsyncing the file when `fsync`. On any failure the temp file is removed.
pub fn stage(dir: &Path, content: &mut dyn Read, expect: Expect<'_>, fsync: bool) -> Result<Staged, CasError> {
    let tmp = tempfile::Builder::new().prefix("blob-").suffix(".partial").tempfile_in(dir).map_err(io_at(dir))?;
    let (file, path) = tmp.into_parts();
    let buf = BufWriter::with_capacity(STAGE_BUFFER, file);
    let (buf, sha256, size) = match expect {
        Expect::Verified(d) => {
            let mut w = buf;
            let n = io::copy(content, &mut w).map_err(io_at(&path))?;
            (w, *d, n)
        }
        Expect::Any | Expect::Digest(_) => {
            let mut w = HashingWriter::new(buf);
            io::copy(content, &mut w).map_err(io_at(&path))?;
            w.finish()
        }
    };
    let file = buf.into_inner().map_err(|e| io_at(&path)(e.into_error()))?;
    if let Expect::Digest(expected) = expect
        && *expected != sha256
    {
        return Err(CasError::Mismatch { expected: *expected, actual: sha256, size });
    }
    if fsync {
        file.sync_all().map_err(io_at(&path))?;
    }
    Ok(Staged { sha256, size, file: NamedTempFile::from_parts(file, path) })
}

/// A folder of content-addressed files, `ROOT/ab/cdef…`.
#[derive(Debug, Clone)]
pub struct CasDir {
    root: PathBuf,
}

impl CasDir {
    /// Opens (creating when missing) the folder.
    pub fn open(root: &Path) -> Result<Self, CasError> {
        fs::create_dir_all(root).map_err(io_at(root))?;
        Ok(CasDir { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob named `d` lives (whether or not it does).
    pub fn path_of(&self, d: &Sha256Digest) -> PathBuf {
        let hex = d.to_hex();
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    pub fn contains(&self, d: &Sha256Digest) -> bool {
        self.path_of(d).is_file()
    }

    /// Renames a staged file to the name `d` (creating its prefix folder). Not durable until
    /// [`CasDir::sync`] ran for it.
    pub fn place(&self, file: NamedTempFile, d: &Sha256Digest) -> Result<(), CasError> {
        let dest = self.path_of(d);
        let dir = dest.parent().expect("a blob path has a prefix folder");
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(io_at(dir))?;
        }
        file.persist(&dest).map_err(|e| io_at(&dest)(e.error))?;
        Ok(())
    }

    /// Makes placed blobs durable: fsyncs each file when `files` (blobs staged without fsync),
    /// then each prefix folder once, then the root (a new prefix folder must survive power loss
    /// too).
    pub fn sync<'a>(&self, digests: impl IntoIterator<Item = &'a Sha256Digest>, files: bool) -> Result<(), CasError> {
        let mut dirs = BTreeSet::new();
        for d in digests {
            let p = self.path_of(d);
            if files {
                File::open(&p).and_then(|f| f.sync_all()).map_err(io_at(&p))?;
            }
            if let Some(dir) = p.parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        if !dirs.is_empty() {
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// Removes a blob; an absent one is success. With `durable`, the removal is fsynced
    /// (its prefix folder). Answers whether a file was removed.
    pub fn remove(&self, d: &Sha256Digest, durable: bool) -> Result<bool, CasError> {
        let p = self.path_of(d);
        match fs::remove_file(&p) {
            Ok(()) if durable => sync_dir(p.parent().expect("a blob path has a prefix folder")).map(|()| true),
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_at(&p)(e)),
        }
    }

    /// Every blob file stored (names that are not a digest are skipped). Walks everything.
    pub fn list(&self) -> Result<Vec<Sha256Digest>, CasError> {
        let mut out = Vec::new();
        for dir in fs::read_dir(&self.root).map_err(io_at(&self.root))? {
            let dir = dir.map_err(io_at(&self.root))?.path();
            let Some(prefix) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
            if !dir.is_dir() {
                continue;
            }
            for f in fs::read_dir(&dir).map_err(io_at(&dir))? {
                let name = f.map_err(io_at(&dir))?.file_name();
                if let Ok(d) = Sha256Digest::from_hex(&format!("{prefix}{}", name.to_string_lossy())) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}

/// Fsyncs a folder, so that renames and removals in it survive power loss (a no-op where
/// folders cannot be opened as files).
pub fn sync_dir(dir: &Path) -> Result<(), CasError> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_at(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, CasDir) {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let cas = CasDir::open(&dir.path().join("objects")).unwrap();
        (dir, tmp, cas)
    }

    fn leftovers(tmp: &Path) -> usize {
        fs::read_dir(tmp).unwrap().count()
    }

    #[test]
    fn staged_content_is_named_by_its_hash() {
        let (_d, tmp, cas) = setup();
        let s = stage(&tmp, &mut &b"hello"[..], Expect::Any, true).unwrap();
        assert_eq!((s.sha256, s.size), (Sha256Digest::of(b"hello"), 5));
        assert!(s.file.path().file_name().unwrap().to_string_lossy().starts_with("blob-"));
        let d = s.sha256;
        cas.place(s.file, &d).unwrap();
        cas.sync([&d], true).unwrap();
        assert!(cas.path_of(&d).ends_with("objects/2c/f24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"));
        assert_eq!(fs::read(cas.path_of(&d)).unwrap(), b"hello");
        assert!(cas.contains(&d));
        assert_eq!(cas.list().unwrap(), vec![d]);
        assert_eq!(leftovers(&tmp), 0, "the temp file became the blob");
    }

    #[test]
    fn placing_the_same_blob_again_is_success() {
        let (_d, tmp, cas) = setup();
        for _ in 0..2 {
            let s = stage(&tmp, &mut &b"same"[..], Expect::Digest(&Sha256Digest::of(b"same")), false).unwrap();
            let d = s.sha256;
            cas.place(s.file, &d).unwrap();
            cas.sync([&d], true).unwrap();
        }
        assert_eq!(cas.list().unwrap().len(), 1);
    }

    #[test]
    fn a_mismatch_is_refused_and_leaves_nothing() {
        let (_d, tmp, _cas) = setup();
        let want = Sha256Digest::of(b"hello");
        match stage(&tmp, &mut &b"hellO"[..], Expect::Digest(&want), true) {
            Err(CasError::Mismatch { expected, actual, size }) => {
                assert_eq!((expected, actual, size), (want, Sha256Digest::of(b"hellO"), 5));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(leftovers(&tmp), 0);
    }

    #[test]
    fn verified_content_is_not_hashed_again() {
        let (_d, tmp, _cas) = setup();
        // The reader vouches for the digest: staging takes it as given and only counts.
        let claimed = Sha256Digest::of(b"something else");
        let s = stage(&tmp, &mut &b"abc"[..], Expect::Verified(&claimed), false).unwrap();
        assert_eq!((s.sha256, s.size), (claimed, 3));
    }

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("reader broke"))
        }
    }

    #[test]
    fn a_failing_reader_leaves_nothing() {
        let (_d, tmp, _cas) = setup();
        let e = stage(&tmp, &mut Failing, Expect::Any, true).unwrap_err();
        assert!(matches!(&e, CasError::Io { source, .. } if source.to_string() == "reader broke"), "{e:?}");
        assert!(e.problem().is_none());
        assert_eq!(leftovers(&tmp), 0);
    }

    #[test]
    fn remove_and_list() {
        let (_d, tmp, cas) = setup();
        let mut names = Vec::new();
        for body in [&b"a"[..], b"b", b"c"] {
            let s = stage(&tmp, &mut &body[..], Expect::Any, false).unwrap();
            names.push(s.sha256);
            cas.place(s.file, &names[names.len() - 1]).unwrap();
        }
        cas.sync(&names, true).unwrap();
        let prefix = cas.path_of(&names[0]).parent().unwrap().to_path_buf();
        fs::write(prefix.join("not-a-digest"), b"x").unwrap();
        assert_eq!(cas.list().unwrap().len(), 3, "only digest names are blobs");
        assert!(cas.remove(&names[0], true).unwrap());
        assert!(!cas.remove(&names[0], false).unwrap(), "absent is success");
        let mut left = cas.list().unwrap();
        left.sort();
        let mut want = names[1..].to_vec();
        want.sort();
        assert_eq!(left, want);
    }
}
