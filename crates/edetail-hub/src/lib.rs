//! edetail-hub: the reference central hub. Device sync API (event ingestion, change feed,
//! blobs, bundle zips) and publishing API over one `HubStore` (SQLite today) and one
//! content-addressed blob directory. See `docs/protocol.md` and this crate's README.
//!
//! Never depends on edetail-core, edetail-sync or edetail-ffi (they are device-side).

pub mod blobs;
pub mod error;
mod http;
pub mod publish;
pub mod sqlite;
pub mod store;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use edetail_bundle::{PublicKey, Sha256Digest};
use edetail_protocol::{PublishResult, WireEvent};

use crate::blobs::BlobStore;
pub use crate::error::{Error, Result};
use crate::sqlite::SqliteStore;
pub use crate::store::{DeviceStats, HubStats, HubStore};

/// Where the hub keeps its state and whose signatures it trusts.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Holds `hub.sqlite3`, `blobs/` and `tmp/`; created when missing.
    pub data_dir: PathBuf,
    /// Bundles must be signed by one of these keys to be published. Empty: nothing can be published.
    pub publisher_keys: Vec<PublicKey>,
}

/// A device registered by an operator. The token is shown once; the hub keeps only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceCredentials {
    pub device_id: String,
    pub token: String,
}

/// A running hub's shared state; cheap to clone.
#[derive(Clone, Debug)]
pub struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
pub(crate) struct HubInner {
    pub(crate) store: Arc<dyn HubStore>,
    pub(crate) blobs: BlobStore,
    pub(crate) publisher_keys: Vec<PublicKey>,
}

/// A new random token: 32 bytes from the OS, hex.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// What the hub stores for a token.
pub(crate) fn token_hash(token: &str) -> String {
    Sha256Digest::of(token.as_bytes()).to_hex()
}

impl Hub {
    /// Opens (creating and migrating when needed) the SQLite hub in `config.data_dir`.
    pub fn open(config: HubConfig) -> Result<Hub> {
        std::fs::create_dir_all(&config.data_dir).map_err(Error::io(&config.data_dir))?;
        let store = SqliteStore::open(&config.data_dir)?;
        let blobs = BlobStore::open(&config.data_dir)?;
        Ok(Hub::with_store(Arc::new(store), blobs, config.publisher_keys))
    }

    /// A hub over any store (PostgreSQL later) and blob directory.
    pub fn with_store(store: Arc<dyn HubStore>, blobs: BlobStore, publisher_keys: Vec<PublicKey>) -> Hub {
        Hub { inner: Arc::new(HubInner { store, blobs, publisher_keys }) }
    }

    pub(crate) fn inner(&self) -> &HubInner {
        &self.inner
    }

    /// Every `/v1` route, with this hub as state.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener: {e}")))?;
        tracing::info!(%addr, "hub listening");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| Error::Internal(format!("server: {e}")))
    }

    /// Registers a device for a rep and territory; returns its id and (only now) its token.
    pub fn add_device(&self, rep_id: &str, territory: &str) -> Result<DeviceCredentials> {
        if rep_id.trim().is_empty() || territory.trim().is_empty() || territory == publish::ALL_TERRITORIES {
            return Err(Error::BadRequest("rep and territory must be non-empty (and the territory not \"*\")".into()));
        }
        let device_id = format!("dev-{}", uuid::Uuid::new_v4().simple());
        let token = new_token()?;
        self.inner.store.add_device(&device_id, rep_id, territory, &token_hash(&token), Utc::now())?;
        Ok(DeviceCredentials { device_id, token })
    }

    /// Registers a publisher; returns its token (shown once).
    pub fn add_publisher(&self, name: &str) -> Result<String> {
        if name.trim().is_empty() {
            return Err(Error::BadRequest("publisher name must be non-empty".into()));
        }
        let token = new_token()?;
        self.inner.store.add_publisher(name, &token_hash(&token), Utc::now())?;
        Ok(token)
    }

    /// Publishes a bundle zip exactly as `POST /v1/publish` does. Empty `territories` means
    /// every territory (`"*"`).
    pub fn publish_zip(&self, zip: &[u8], territories: &[String]) -> Result<PublishResult> {
        publish::publish(&self.inner, zip, territories, None)
    }

    /// Withdraws every published version of a bundle; devices see it in their change feed.
    pub fn revoke(&self, bundle_id: &str, reason: &str) -> Result<()> {
        self.inner.store.revoke(bundle_id, reason, Utc::now()).map(|_| ())
    }

    pub fn stats(&self) -> Result<HubStats> {
        self.inner.store.stats()
    }

    /// Stored events of one device, by sequence number (tests and analytics).
    pub fn events_for_device(&self, device_id: &str) -> Result<Vec<WireEvent>> {
        self.inner.store.events_for_device(device_id)
    }
}

/// Test helper: a hub on 127.0.0.1:0 in a background tokio task; returns its base URL
/// (`"http://127.0.0.1:PORT"`), the hub, and the task (abort it to stop the server).
pub async fn spawn_local(config: HubConfig) -> Result<(String, Hub, tokio::task::JoinHandle<()>)> {
    let hub = Hub::open(config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Internal(format!("bind 127.0.0.1:0: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener: {e}")))?;
    let server = hub.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = server.serve(listener, std::future::pending()).await {
            tracing::error!(error = %e, "local hub stopped");
        }
    });
    Ok((format!("http://{addr}"), hub, task))
}
