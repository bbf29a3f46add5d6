//! The crate's internal error type. No personal data (HCP names, notes, answers) ever goes into
//! an error message: errors name ids, paths and counts only.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {} is in use by another Device (one open at a time per directory)", .0.display())]
    Locked(PathBuf),
    #[error("database {} cannot be decrypted with this key (wrong key); nothing was changed", .0.display())]
    WrongKey(PathBuf),
    #[error("database {} is encrypted (or not a database); a key is required to open it", .0.display())]
    KeyRequired(PathBuf),
    #[error("database {} is not encrypted but a key was given; migrate it with Device::encrypt_existing", .0.display())]
    NotEncrypted(PathBuf),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the device is out of storage space; free space and try again (nothing already recorded was lost)")]
    StorageFull,
    #[error("database schema version {found} is newer than this app supports ({supported}); update the app")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("bundle rejected: {0}")]
    Bundle(#[from] edetail_bundle::Error),
    #[error("bundle {bundle_id} version {version} is older than the installed version {installed}; refusing a rollback")]
    Rollback { bundle_id: String, version: u64, installed: u64 },
    #[error("bundle {0} is not installed")]
    UnknownBundle(String),
    #[error("bundle {bundle_id} version {version} is not staged")]
    UnknownVersion { bundle_id: String, version: u64 },
    #[error("bundle {bundle_id} version {version} still lacks {missing} blobs")]
    Incomplete { bundle_id: String, version: u64, missing: usize },
    #[error("blob {expected} does not match its content (got {actual}, {size} bytes)")]
    BlobMismatch { expected: String, actual: String, size: u64 },
    #[error("blob {sha256} on disk no longer matches its digest (tampered or corrupted); reinstall the bundle")]
    BlobCorrupt { sha256: String },
    #[error("bundle {bundle_id} cannot be opened: {reason}")]
    NotOpenable { bundle_id: String, reason: crate::validity::Unopenable },
    #[error("{path:?} is not part of bundle {bundle_id}")]
    AssetNotFound { bundle_id: String, path: String },
    #[error("invalid range for {path:?}: {detail}")]
    BadRange { path: String, detail: String },
    #[error("call {0} is not open")]
    CallNotOpen(String),
    #[error("unknown call {0}")]
    UnknownCall(String),
    #[error("unknown slide {slide:?} in bundle {bundle_id}")]
    UnknownSlide { bundle_id: String, slide: String },
    #[error("unknown call sequence {0}")]
    UnknownSequence(String),
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| {
            if is_disk_full(&source) { Error::StorageFull } else { Error::Io { path, source } }
        }
    }

    /// SQLite errors mapped so that "disk full" is recognizable by callers.
    pub fn from_sql(e: rusqlite::Error) -> Error {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => Error::StorageFull,
            _ => Error::Sql(e),
        }
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
