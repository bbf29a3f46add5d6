//! `ApiError`: the one error the apps see, with only actionable variants, and the single place
//! where internal errors (edetail-core, edetail-sync) are converted and logged. Messages carry
//! ids, counts and reasons, never personal data (HCP names, notes, answers).

use edetail_sync::FailureClass;

/// What went wrong, as an app can act on it. In Kotlin each variant is an `ApiException`
/// subclass; in Swift an `ApiError` case; in Python an `ApiError` subclass.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ApiError {
    /// The device is out of storage: free space and try again. Nothing recorded was lost.
    #[error("storage full: {reason}")]
    StorageFull { reason: String },
    /// The data directory is open elsewhere (another `EdetailDevice` in this or another process).
    #[error("data directory in use: {reason}")]
    InUse { reason: String },
    /// The database cannot be opened with the key given: a wrong key, no key for an encrypted
    /// database, or a key for one not yet encrypted (`reason` says which). Nothing was changed:
    /// do not delete the data directory; fetch the rep's key from the keystore and open again.
    #[error("database key problem: {reason}")]
    DatabaseKey { reason: String },
    /// The content cannot be presented now (expired, not yet valid, revoked, or the device must
    /// sync first). Show the reason; syncing may fix it.
    #[error("content not openable: {reason}")]
    NotOpenable { bundle_id: String, reason: String },
    /// A bundle, slide, call, call sequence or asset that does not exist (or a call or remote
    /// session already ended).
    #[error("not found: {reason}")]
    NotFound { reason: String },
    /// The arguments are wrong (an unknown channel, an empty id, malformed JSON).
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    /// Content refused: bad signature, failed validation, or older than what is installed.
    #[error("bundle rejected: {reason}")]
    BundleRejected { reason: String },
    /// The app said the device is offline: nothing was attempted.
    #[error("offline")]
    Offline,
    /// A sync of this data directory is already running.
    #[error("a sync is already running")]
    AlreadySyncing,
    /// The sync was cancelled (`cancel_sync`) or interrupted by going to the background.
    #[error("sync cancelled: {reason}")]
    SyncCancelled { reason: String },
    /// The hub refused the device's credentials even after a token refresh: sign in again.
    #[error("authentication required: {reason}")]
    AuthRequired { reason: String },
    /// The sync failed and will be retried (`retryable`), or needs attention (not retryable).
    #[error("sync failed: {reason}")]
    SyncFailed { retryable: bool, reason: String },
    /// `configure_sync` was not called.
    #[error("sync is not configured")]
    SyncNotConfigured,
    /// A bug or an unexpected local failure; details are in the log.
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<edetail_core::Error> for ApiError {
    fn from(e: edetail_core::Error) -> Self {
        use edetail_core::Error as E;
        let reason = e.to_string();
        let api = match e {
            E::StorageFull => ApiError::StorageFull { reason },
            E::Locked(_) => ApiError::InUse { reason },
            E::NotOpenable { bundle_id, reason: why } => ApiError::NotOpenable { bundle_id, reason: why.to_string() },
            E::UnknownBundle(_)
            | E::UnknownVersion { .. }
            | E::AssetNotFound { .. }
            | E::CallNotOpen(_)
            | E::UnknownCall(_)
            | E::UnknownSlide { .. }
            | E::UnknownSequence(_) => ApiError::NotFound { reason },
            E::Invalid(_) | E::BadRange { .. } => ApiError::InvalidInput { reason },
            E::WrongKey(_) | E::KeyRequired(_) | E::NotEncrypted(_) => ApiError::DatabaseKey { reason },
            E::Bundle(_) | E::Rollback { .. } | E::BlobMismatch { .. } | E::BlobCorrupt { .. } | E::Incomplete { .. } => {
                ApiError::BundleRejected { reason }
            }
            E::Io { .. } | E::Sql(_) | E::SchemaTooNew { .. } => ApiError::Internal { reason },
        };
        if matches!(api, ApiError::Internal { .. } | ApiError::StorageFull { .. }) {
            tracing::error!(error = %api, "device error");
        }
        api
    }
}

impl From<edetail_sync::Error> for ApiError {
    fn from(e: edetail_sync::Error) -> Self {
        use edetail_sync::Error as E;
        let reason = e.to_string();
        let api = match e {
            E::Failed { class: FailureClass::Auth, .. } => ApiError::AuthRequired { reason },
            E::Failed { class, .. } => {
                ApiError::SyncFailed { retryable: matches!(class, FailureClass::Transient | FailureClass::Network), reason }
            }
            E::AlreadyRunning => ApiError::AlreadySyncing,
            E::Offline => ApiError::Offline,
            E::Suspended | E::Cancelled => ApiError::SyncCancelled { reason },
            E::Core(c) => return c.into(),
            E::Config(_) | E::Invalid(_) => ApiError::InvalidInput { reason },
            // A remote session that ended is gone like an ended call.
            E::SessionEnded => ApiError::NotFound { reason },
            E::BlockingInAsync | E::Io { .. } | E::Engine(_) => ApiError::Internal { reason },
        };
        if matches!(api, ApiError::Internal { .. }) {
            tracing::error!(error = %api, "sync error");
        }
        api
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::InvalidInput { reason: format!("not valid JSON: {e}") }
    }
}
