//! edetail-hub: the reference central hub. Device sync API (event ingestion, change feed,
//! blobs, bundle zips) and publishing API over one `HubStore` (SQLite by default, PostgreSQL
//! for several hub processes) and one content-addressed blob store (local files by default,
//! S3-compatible object storage when shared). See `docs/protocol.md` and this crate's README.
//!
//! Never depends on edetail-core, edetail-sync or edetail-ffi (they are device-side).

pub mod blobs;
pub mod dashboard;
pub mod error;
mod http;
pub mod postgres;
pub mod publish;
pub mod sqlite;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use edetail_bundle::{PublicKey, Sha256Digest};
use edetail_protocol::{PublishResult, WireEvent};

use crate::blobs::BlobStore;
pub use crate::error::{Error, Result};
use crate::sqlite::SqliteStore;
pub use crate::store::{DeviceStats, HubStats, HubStore, Territory};

/// Where the hub keeps its state and whose signatures it trusts.
#[derive(Debug, Clone, Default)]
pub struct HubConfig {
    /// Holds `hub.sqlite3` (the default store), `blobs/` (the default blob store) and `tmp/`
    /// (staging, always local); created when missing.
    pub data_dir: PathBuf,
    /// Bundles must be signed by one of these keys to be published. Empty: nothing can be published.
    pub publisher_keys: Vec<PublicKey>,
    /// `postgres://…` to keep metadata and events in PostgreSQL instead of `DATA/hub.sqlite3`.
    pub database: Option<String>,
    /// `s3://BUCKET[/PREFIX]?endpoint=…` (or `file:DIR`) to keep blobs elsewhere than `DATA/blobs`.
    pub blob_store: Option<String>,
}

impl HubConfig {
    /// The zero-setup configuration: SQLite and blobs under `data_dir`.
    pub fn local(data_dir: impl Into<PathBuf>, publisher_keys: Vec<PublicKey>) -> HubConfig {
        HubConfig { data_dir: data_dir.into(), publisher_keys, ..HubConfig::default() }
    }
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
    /// Opens (creating and migrating when needed) the hub's store and blob store as configured.
    pub fn open(config: HubConfig) -> Result<Hub> {
        std::fs::create_dir_all(&config.data_dir).map_err(Error::io(&config.data_dir))?;
        let store: Arc<dyn HubStore> = match &config.database {
            None => Arc::new(SqliteStore::open(&config.data_dir)?),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Arc::new(postgres::PgStore::connect(url, postgres::DEFAULT_POOL_SIZE)?)
            }
            Some(url) if url.starts_with("sqlite:") => {
                let dir = PathBuf::from(url.trim_start_matches("sqlite:"));
                std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
                Arc::new(SqliteStore::open(&dir)?)
            }
            Some(_) => return Err(Error::BadRequest("unsupported --database: use postgres://… or sqlite:DIR".into())),
        };
        let blobs = match &config.blob_store {
            None => BlobStore::open_local(&config.data_dir)?,
            Some(url) => BlobStore::new(&config.data_dir, blobs::backend_from_url(url)?)?,
        };
        Ok(Hub::with_store(store, blobs, config.publisher_keys))
    }

    /// A hub over any store and blob store.
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
        if rep_id.trim().is_empty() || territory == publish::ALL_TERRITORIES {
            return Err(Error::BadRequest("rep and territory must be non-empty (and the territory not \"*\")".into()));
        }
        publish::check_name("territory", territory)?;
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
    /// the territories listing the bundle's product, or every territory (`"*"`) when none does.
    pub fn publish_zip(&self, zip: &[u8], territories: &[String]) -> Result<PublishResult> {
        let file = publish::spool_bytes(&self.inner, zip)?;
        publish::publish(&self.inner, file, territories, None)
    }

    /// Creates or updates a territory with the products it sells (empty: every product).
    /// Applies to bundles published from now on without explicit territories.
    pub fn set_territory(&self, name: &str, products: &[String]) -> Result<()> {
        publish::check_name("territory", name)?;
        if name == publish::ALL_TERRITORIES {
            return Err(Error::BadRequest("\"*\" means every territory and cannot be configured".into()));
        }
        let mut products: Vec<String> = products.to_vec();
        products.sort();
        products.dedup();
        for p in &products {
            publish::check_name("product", p)?;
        }
        self.inner.store.set_territory(name, &products, Utc::now())
    }

    pub fn territories(&self) -> Result<Vec<Territory>> {
        self.inner.store.territories()
    }

    /// The metadata store (benchmarks compare HTTP ingest with the store's own rate).
    pub fn store(&self) -> &Arc<dyn HubStore> {
        &self.inner.store
    }

    /// Where blobs go (for operators; no credentials).
    pub fn blob_store_description(&self) -> String {
        self.inner.blobs.backend().describe()
    }

    /// The blob backend (tests count what it stores).
    pub fn blob_store_backend(&self) -> Arc<dyn blobs::BlobBackend> {
        self.inner.blobs.backend().clone()
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
    let (url, task) = serve_local(hub.clone()).await?;
    Ok((url, hub, task))
}

/// Test helper: serves `hub` on 127.0.0.1:0 in a background tokio task; returns its base URL
/// and the task.
pub async fn serve_local(hub: Hub) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Internal(format!("bind 127.0.0.1:0: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener: {e}")))?;
    let task = tokio::spawn(async move {
        if let Err(e) = hub.serve(listener, std::future::pending()).await {
            tracing::error!(error = %e, "local hub stopped");
        }
    });
    Ok((format!("http://{addr}"), task))
}
