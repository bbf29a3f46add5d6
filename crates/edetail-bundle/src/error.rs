//! The crate's error type.

use std::path::PathBuf;

use crate::problem::Problems;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("I/O error: {0}")]
    Stream(#[from] std::io::Error),
    /// The bundle was read and is not acceptable; every problem found is listed.
    #[error("bundle rejected: {0}")]
    Rejected(Problems),
    #[error("invalid source manifest {}: {detail}", path.display())]
    Source { path: PathBuf, detail: String },
    #[error("key file {}: {detail}", path.display())]
    Key { path: PathBuf, detail: String },
    #[error("zip write failed: {0}")]
    ZipWrite(String),
    #[error("{0}")]
    Import(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
