//! edetail-ffi: the one library the iPad (Swift) and Android (Kotlin) apps link, through
//! uniffi proc-macros. A thin facade: every exported method delegates to edetail-core
//! (content, assets, calls, the slide bridge) or edetail-sync (sync); no logic lives here.
//! Errors cross as [`ApiError`], converted in one place (`error.rs`).
//!
//! Threading: every object is `Send + Sync` and may be called from any thread. Methods
//! documented "I/O" touch storage; keep them off the UI thread. Sync is `async` (Kotlin
//! `suspend`, Swift `async`, Python `async`) and cancelled through `cancel_sync`, because a
//! foreign future cannot cancel Rust work.

uniffi::setup_scaffolding!();

mod assets;
mod device;
mod error;
mod remote;
mod sync;
mod types;

pub use assets::{AssetResponse, HttpHeader};
pub use device::EdetailDevice;
pub use error::{ApiError, ApiResult};
pub use remote::{RemoteAttendee, RemoteConnection, RemoteControl, RemoteEvent, RemotePoint, RemoteRefusal, RemoteSession, RemoteStatus};
pub use sync::{AppLifecycle, SyncEvent, SyncListener, SyncStatus, SyncSummary, TokenProvider, TokenProviderError};
pub use types::*;

/// The library's version, for the app's about screen and support logs.
#[uniffi::export]
pub fn edetail_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
