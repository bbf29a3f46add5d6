//! One suite for every blob backend: the filesystem (`fs::NAME`) and S3-compatible object
//! storage (`s3::NAME`, a fresh bucket on the moto server `scripts/services` starts).

use std::sync::Arc;

use edetail_bundle::Sha256Digest;
use edetail_hub::Error;
use edetail_hub::blobs::fs::FsBlobs;
use edetail_hub::blobs::s3::S3Blobs;
use edetail_hub::blobs::{BlobBackend, BlobStore};
use edetail_hub::testkit::fresh_bucket;
use futures_util::StreamExt;

struct Subject {
    blobs: BlobStore,
    dir: tempfile::TempDir,
}

fn fs() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn BlobBackend> = Arc::new(FsBlobs::open(&dir.path().join("blobs")).unwrap());
    Subject { blobs: BlobStore::new(dir.path(), backend).unwrap(), dir }
}

fn s3() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn BlobBackend> = Arc::new(S3Blobs::new(fresh_bucket()).unwrap());
    Subject { blobs: BlobStore::new(dir.path(), backend).unwrap(), dir }
}

/// Deterministic, incompressible-looking bytes.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn read(blobs: &BlobStore, d: Sha256Digest, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut stream = blobs.read(d, offset, len).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.map_err(|e| Error::Internal(e.to_string()))?);
        }
        Ok(out)
    })
}

/// Files under `DATA/tmp` (in the staging directories of every store).
fn staged_files(s: &Subject) -> usize {
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).map(|p| if p.is_dir() { count(&p) } else { 1 }).sum()
    }
    count(&s.dir.path().join("tmp"))
}

fn store(s: &Subject, bytes: &[u8]) -> Sha256Digest {
    let d = Sha256Digest::of(bytes);
    let staged = s.blobs.stage(&mut &bytes[..], Some(&d)).unwrap();
    assert_eq!((staged.sha256, staged.size), (d, bytes.len() as u64));
    s.blobs.commit(vec![staged]).unwrap();
    d
}

fn small_blobs_round_trip_with_ranges(s: Subject) {
    let a = content(1000, 1);
    let d = Sha256Digest::of(&a);
    assert!(!s.blobs.contains(&d).unwrap());
    store(&s, &a);
    assert!(s.blobs.contains(&d).unwrap());
    assert_eq!(read(&s.blobs, d, 0, 1000).unwrap(), a);
    assert_eq!(read(&s.blobs, d, 10, 20).unwrap(), &a[10..30]);
    assert_eq!(read(&s.blobs, d, 999, 1).unwrap(), &a[999..]);
    assert!(read(&s.blobs, d, 0, 0).unwrap().is_empty());
    assert_eq!(s.blobs.backend().count().unwrap(), 1);
    assert_eq!(staged_files(&s), 0, "commit consumed the staged file");
}

fn storing_the_same_blob_again_is_success(s: Subject) {
    let a = content(5000, 2);
    store(&s, &a);
    store(&s, &a);
    assert_eq!(s.blobs.backend().count().unwrap(), 1);
    assert_eq!(staged_files(&s), 0);
}

/// Large blobs (multipart uploads on S3) stream in and out intact, ranges from the middle too.
fn large_blobs_stream_intact(s: Subject) {
    let big = content(21 * 1024 * 1024 + 17, 3);
    let d = store(&s, &big);
    let back = read(&s.blobs, d, 0, big.len() as u64).unwrap();
    assert_eq!(Sha256Digest::of(&back), d);
    let (off, len) = (9 * 1024 * 1024 + 5, 3 * 1024 * 1024);
    assert_eq!(read(&s.blobs, d, off as u64, len as u64).unwrap(), &big[off..off + len]);
}

fn wrong_content_is_refused_and_leaves_nothing(s: Subject) {
    let a = content(300, 4);
    let wrong = Sha256Digest::of(b"something else");
    let r = s.blobs.stage(&mut &a[..], Some(&wrong));
    assert!(matches!(r, Err(Error::InvalidBundle(_))), "{r:?}");
    assert_eq!(staged_files(&s), 0);
    assert_eq!(s.blobs.backend().count().unwrap(), 0);
}

fn a_missing_blob_is_an_internal_error_not_empty_bytes(s: Subject) {
    let d = Sha256Digest::of(b"never stored");
    let r = read(&s.blobs, d, 0, 10);
    assert!(matches!(r, Err(Error::Internal(ref m)) if m.contains("missing")), "{r:?}");
}

fn several_blobs_commit_together(s: Subject) {
    let parts: Vec<Vec<u8>> = (0..12).map(|i| content(100 + i * 37, 10 + i as u64)).collect();
    let staged: Vec<_> = parts.iter().map(|p| s.blobs.stage(&mut &p[..], None).unwrap()).collect();
    s.blobs.commit(staged).unwrap();
    assert_eq!(s.blobs.backend().count().unwrap(), 12);
    for p in &parts {
        assert_eq!(&read(&s.blobs, Sha256Digest::of(p), 0, p.len() as u64).unwrap(), p);
    }
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $( #[test] fn $name() { super::$name(super::fs()) } )*
        }
        mod s3 {
            $( #[test] fn $name() { super::$name(super::s3()) } )*
        }
    };
}

suite!(
    small_blobs_round_trip_with_ranges,
    storing_the_same_blob_again_is_success,
    large_blobs_stream_intact,
    wrong_content_is_refused_and_leaves_nothing,
    a_missing_blob_is_an_internal_error_not_empty_bytes,
    several_blobs_commit_together,
);
