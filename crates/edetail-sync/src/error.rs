//! The crate's error type. Messages name ids, statuses and counts only: never tokens, never
//! personal data.

use crate::policy::FailureClass;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sync stopped on a failure the policy would not retry now.
    #[error("sync failed ({class}) after {attempts} failed attempt(s): {message}")]
    Failed { class: FailureClass, attempts: u32, message: String },
    /// Another sync of this data directory is running (this engine's or another's); this call
    /// did nothing (see `SyncEngine::sync_now`).
    #[error("a sync is already running")]
    AlreadyRunning,
    /// The app reported the device offline; nothing was attempted (or the sync was stopped).
    #[error("the device is offline")]
    Offline,
    /// The sync was interrupted during a backoff wait (the app went to the background, or
    /// connectivity flapped); sync again when appropriate.
    #[error("sync interrupted (app in the background or connectivity changed); sync again later")]
    Suspended,
    /// `sync_now` was called from inside an async runtime; use `sync().await` there.
    #[error("sync_now() blocks and cannot be called from an async context; use sync().await")]
    BlockingInAsync,
    /// The app cancelled the sync (`SyncEngine::cancel`); everything done so far is kept and the
    /// next sync continues from there.
    #[error("sync cancelled")]
    Cancelled,
    #[error("device: {0}")]
    Core(#[from] edetail_core::Error),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The sync configuration cannot work (a malformed hub URL or trust root, or none on
    /// Android); fix the configuration.
    #[error("sync configuration: {0}")]
    Config(String),
    #[error("sync engine: {0}")]
    Engine(String),
    /// A request the caller should not have made as it is (a remote session of 0 minutes, a
    /// pointer outside the slide).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The remote session ended (or another connection took it over): nothing more can be sent.
    #[error("the remote session has ended")]
    SessionEnded,
}

impl Error {
    /// The retry class when the sync failed on the network or at the hub.
    pub fn class(&self) -> Option<FailureClass> {
        match self {
            Error::Failed { class, .. } => Some(*class),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
