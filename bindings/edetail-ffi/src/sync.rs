//! Sync at the FFI edge: the token provider and the progress listener the app implements (in
//! Kotlin, Swift or Python), adapted to edetail-sync's traits, and the records describing a
//! sync's state, progress and outcome.

use std::sync::Arc;

use edetail_sync::{SyncProgress, SyncReport, SyncState, TokenError};

/// Why the app could not supply a token.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum TokenProviderError {
    /// No token now (signed out, SSO unreachable): the sync stops as "authentication required".
    #[error("token unavailable: {reason}")]
    Unavailable { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for TokenProviderError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        TokenProviderError::Unavailable { reason: format!("token provider failed: {}", e.reason) }
    }
}

/// Supplies the device's bearer token; the app implements it so SSO can mint tokens.
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait TokenProvider: Send + Sync {
    /// The current token.
    async fn token(&self) -> Result<String, TokenProviderError>;
    /// The hub answered 401: obtain a fresh token (the next `token()` returns it).
    async fn refresh(&self);
}

/// Adapts the app's provider to the engine's trait.
pub(crate) struct ForeignTokens(pub Arc<dyn TokenProvider>);

#[async_trait::async_trait]
impl edetail_sync::TokenProvider for ForeignTokens {
    async fn token(&self) -> Result<String, TokenError> {
        self.0.token().await.map_err(|e| TokenError(e.to_string()))
    }
    async fn refresh(&self) {
        self.0.refresh().await
    }
}

/// What the engine is doing, for the app's sync indicator.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SyncStatus {
    Idle,
    Uploading,
    Downloading,
    /// Backing off after a failure; retries by itself within this sync.
    Waiting {
        retry_in_ms: u64,
    },
    Offline,
    Done,
}

pub(crate) fn status_of(s: SyncState, now_ms: u64) -> SyncStatus {
    match s {
        SyncState::Idle => SyncStatus::Idle,
        SyncState::Uploading => SyncStatus::Uploading,
        SyncState::Downloading => SyncStatus::Downloading,
        SyncState::Waiting { until_ms, .. } => SyncStatus::Waiting { retry_in_ms: until_ms.saturating_sub(now_ms) },
        SyncState::Offline => SyncStatus::Offline,
        SyncState::Done => SyncStatus::Done,
    }
}

/// Progress of a sync, as it happens.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SyncEvent {
    /// A batch of recorded events is durable on the hub.
    EventsUploaded { accepted: u64, duplicates: u64, parked: u64 },
    /// Bytes received for content (blobs or a whole bundle zip).
    BytesDownloaded { bytes: u64 },
    /// One content file verified and stored.
    FileStored { size: u64, resumed: bool },
    /// A new version is now what `open` presents.
    BundleActivated { bundle_id: String, version: u64 },
    /// The hub withdrew a bundle: it can no longer be opened.
    BundleRevoked { bundle_id: String },
}

/// Receives sync state and progress; the app implements it. Called on the engine's threads:
/// hop to the UI thread before touching views, and return quickly.
#[uniffi::export(with_foreign)]
pub trait SyncListener: Send + Sync {
    fn on_status(&self, status: SyncStatus);
    fn on_event(&self, event: SyncEvent);
}

/// Adapts the app's listener to the engine's.
pub(crate) struct ForeignListener {
    pub listener: Arc<dyn SyncListener>,
    pub clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl edetail_sync::SyncListener for ForeignListener {
    fn on_progress(&self, p: SyncProgress) {
        match p {
            SyncProgress::StateChanged { state } => self.listener.on_status(status_of(state, (self.clock)())),
            SyncProgress::EventsUploaded { accepted, duplicates, parked } => self.listener.on_event(SyncEvent::EventsUploaded {
                accepted: accepted as u64,
                duplicates: duplicates as u64,
                parked: parked as u64,
            }),
            SyncProgress::BytesDownloaded { bytes, .. } | SyncProgress::ZipBytesDownloaded { bytes, .. } => {
                self.listener.on_event(SyncEvent::BytesDownloaded { bytes })
            }
            SyncProgress::BlobStored { size, resumed, .. } => self.listener.on_event(SyncEvent::FileStored { size, resumed }),
            SyncProgress::BundleActivated { bundle_id, version } => {
                self.listener.on_event(SyncEvent::BundleActivated { bundle_id, version })
            }
            SyncProgress::BundleRevoked { bundle_id } => self.listener.on_event(SyncEvent::BundleRevoked { bundle_id }),
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SyncSummary {
    pub events_uploaded: u64,
    /// Already on the hub (a retry after a lost answer): acknowledged all the same.
    pub events_already_uploaded: u64,
    /// Refused by the hub for good; kept on the device with the reason.
    pub events_parked: u64,
    pub bundles_activated: Vec<String>,
    pub bundles_refused: Vec<String>,
    pub revocations: u64,
    /// Hub plans for HCPs verified and stored.
    pub plans_stored: u64,
    /// Hub plans refused (wrong or untrusted signature, unreadable); they never block a sync.
    pub plans_refused: u64,
    pub files_downloaded: u64,
    pub bytes_downloaded: u64,
    pub downloads_resumed: u64,
    /// Failed attempts retried within this sync.
    pub retries: u32,
}

impl From<SyncReport> for SyncSummary {
    fn from(r: SyncReport) -> Self {
        SyncSummary {
            events_uploaded: r.events_accepted as u64,
            events_already_uploaded: r.events_duplicates as u64,
            events_parked: r.events_parked as u64,
            bundles_activated: r.bundles_activated,
            bundles_refused: r.bundles_rejected,
            revocations: r.revocations as u64,
            plans_stored: r.plans_stored as u64,
            plans_refused: r.plans_refused as u64,
            files_downloaded: r.blobs_downloaded as u64,
            bytes_downloaded: r.bytes_downloaded,
            downloads_resumed: (r.blobs_resumed + r.zips_resumed) as u64,
            retries: r.failed_attempts,
        }
    }
}

/// App lifecycle, as the shell reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AppLifecycle {
    Foreground,
    Background,
}
