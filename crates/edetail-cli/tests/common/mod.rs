//! Shared by the kill tests (`sync_kill.rs`, `hub_kill.rs`): a seeded generator, child processes
//! killed when dropped, signed sample bundles with large media, recording events and checking
//! what a device holds afterwards.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Child;

use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::{SecretKey, Sha256Digest};
use edetail_core::Device;
use serde_json::json;

pub const TERRITORY: &str = "north";
/// The id of `SampleBundle`.
pub const BUNDLE: &str = "com.example.sample";

/// Where a kill test keeps its data directories: tmpfs (`/dev/shm`) when there is one, else the
/// default temp directory. A SIGKILL leaves the page cache intact, so what these tests check does
/// not depend on fsync; on tmpfs the thousands of FULL-synchronous commits of recording and
/// uploading cost no disk flushes, and the tests keep their pace on a machine whose disk is busy.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new().prefix("edetail-kill-").tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("tempdir")
}

/// The test's seed: `var` from the environment when set (to replay a run), else the clock.
pub fn seed(var: &str) -> u64 {
    match std::env::var(var) {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("{var} is a u64")),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64,
    }
}

/// xorshift64*, seeded.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A child process that is SIGKILLed (`Child::kill`) and reaped when dropped, so that a failed
/// assertion never leaves it running.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// SIGKILL now and reap; false when it had already exited by itself.
    pub fn kill(mut self) -> bool {
        let running = matches!(self.0.try_wait(), Ok(None));
        let _ = self.0.kill();
        let _ = self.0.wait();
        running
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The publisher key the tests sign with, and its public half written to `dir/publisher.pub`.
pub fn publisher_key(dir: &Path) -> (SecretKey, PathBuf) {
    let key = SecretKey::from_seed(&[7u8; 32]);
    let path = dir.join("publisher.pub");
    std::fs::write(&path, key.public().to_file_text()).expect("public key written");
    (key, path)
}

/// The sample bundle plus `files` media files of `bytes` pseudo-random bytes each (incompressible,
/// like real video).
pub fn bundle_with_media(files: usize, bytes: usize, seed: u64) -> SampleBundle {
    let mut b = SampleBundle::new();
    let mut rng = Rng::new(seed);
    for i in 0..files {
        let mut media = Vec::with_capacity(bytes + 8);
        while media.len() < bytes {
            media.extend_from_slice(&rng.next().to_le_bytes());
        }
        media.truncate(bytes);
        b.files.insert(format!("shared/video-{i}.mp4"), media);
    }
    b
}

/// Total bytes of a bundle's files (what a device without it downloads).
pub fn files_bytes(b: &SampleBundle) -> u64 {
    b.files.values().map(|f| f.len() as u64).sum()
}

/// Records `n` custom events; answers their uuids.
pub fn record_events(device: &Device, n: usize) -> BTreeSet<String> {
    (0..n).map(|i| device.calls().record(None, "custom", json!({"i": i, "y": (i * 7919) % 1000})).expect("recorded").1).collect()
}

/// Asserts that `bundle` is the active version on `device` and every file resolves to the
/// published bytes.
pub fn assert_installed(device: &Device, bundle: &SampleBundle) {
    assert_eq!(device.content().active_version(BUNDLE).expect("active version"), Some(bundle.manifest.version));
    device.check_openable(BUNDLE).expect("the bundle opens");
    for (path, bytes) in &bundle.files {
        let mut asset = device.assets().resolve(BUNDLE, path, None).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut got = Vec::new();
        asset.reader.read_to_end(&mut got).expect("asset reads");
        assert_eq!(Sha256Digest::of(&got), Sha256Digest::of(bytes), "{path} has the wrong sha256");
    }
}
