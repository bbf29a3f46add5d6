//! edetail-hub: the reference central hub. Device sync API (event ingestion, change feed,
//! blobs, bundle zips) and publishing API over one `HubStore` (SQLite by default, PostgreSQL
//! for several hub processes) and one content-addressed blob store (local files by default,
//! S3-compatible object storage when shared). See `docs/protocol.md` and this crate's README.
//!
//! Never depends on edetail-core, edetail-sync or edetail-ffi (they are device-side).

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod blobs;
pub mod client;
pub mod closed_loop;
pub mod dashboard;
pub mod error;
mod front;
mod http;
pub mod ingest;
pub mod insights;
pub mod microsite;
pub mod publish;
pub mod ratelimit;
pub mod reqlog;
pub mod server;
pub mod store;
pub use store::{postgres, sqlite};
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tls;
mod web;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use edetail_bundle::{PublicKey, SecretKey, Sha256Digest};
use edetail_protocol::{PublishResult, WireEvent};

use crate::analytics::StageRules;
use crate::blobs::BlobStore;
pub use crate::closed_loop::{AnalysisReport, Analyzer, AnalyzerConfig};
pub use crate::error::{Error, Result};
pub use crate::server::ServerLimits;
use crate::sqlite::SqliteStore;
pub use crate::store::{DeviceStats, ErasureReport, HubStats, HubStore, Territory};

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
    /// The key that signs plans (and derives microsite links). Default `DATA/plan.key`, created
    /// on first start; hub processes sharing one database must share this file.
    pub plan_key: Option<PathBuf>,
    /// Adoption-stage rules (JSON, `analytics::StageRules`); the built-in rules when absent.
    pub stage_rules: Option<PathBuf>,
    /// Connection timeouts and bounds when serving (`Hub::set_server_limits` changes them later).
    pub server_limits: ServerLimits,
    /// Reverse proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` the hub believes (`client`).
    pub trusted_proxies: Vec<client::TrustedProxy>,
}

/// File name of the plan key inside the data directory (its public half: `plan.pub`).
pub const PLAN_KEY_FILE: &str = "plan.key";

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
    pub(crate) analyzer: Analyzer,
    /// Wakes the analysis worker (a call ended, a microsite visit arrived).
    pub(crate) analysis_wake: tokio::sync::Notify,
    /// Request rate limits of this process (`ratelimit`).
    pub(crate) limits: ratelimit::RateLimiter,
    /// Dashboard session cookies carry `Secure` (set when the hub is reached over TLS).
    pub(crate) secure_cookies: std::sync::atomic::AtomicBool,
    /// Timeouts and connection bounds `serve`/`serve_tls` start with.
    pub(crate) server_limits: std::sync::Mutex<ServerLimits>,
    /// Reverse proxies whose forwarded headers count (`client::resolve`).
    pub(crate) trusted_proxies: std::sync::RwLock<Vec<client::TrustedProxy>>,
    /// Lifetime of a publish claim in milliseconds (`publish::CLAIM_LEASE` unless changed).
    pub(crate) claim_lease_ms: std::sync::atomic::AtomicU64,
}

impl HubInner {
    /// How long a publish claim holds.
    pub(crate) fn claim_lease(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::milliseconds(self.claim_lease_ms.load(std::sync::atomic::Ordering::Relaxed) as i64)
    }
}

/// Loads the plan key, creating it (and `plan.pub` beside it) when missing.
fn load_or_create_plan_key(path: &std::path::Path) -> Result<SecretKey> {
    if path.exists() {
        return SecretKey::load(path).map_err(|e| Error::BadRequest(format!("plan key: {e}")));
    }
    let key = SecretKey::generate().map_err(|e| Error::Internal(format!("generating the plan key: {e}")))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(Error::io(path))?;
    std::io::Write::write_all(&mut f, key.to_file_text().as_bytes()).map_err(Error::io(path))?;
    f.sync_all().map_err(Error::io(path))?;
    let public = path.with_extension("pub");
    std::fs::write(&public, key.public().to_file_text()).map_err(Error::io(&public))?;
    Ok(key)
}

/// A new random token: 32 bytes from the OS, hex.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// What the hub stores for a token.
pub fn token_hash(token: &str) -> String {
    Sha256Digest::of(token.as_bytes()).to_hex()
}

/// Creates a directory (and missing parents) accessible to its owner only (0700): the data
/// directory holds the database, the plan key and staged uploads. A directory that exists
/// keeps its mode.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(Error::io(dir))
}

impl Hub {
    /// Opens (creating and migrating when needed) the hub's store and blob store as configured.
    pub fn open(config: HubConfig) -> Result<Hub> {
        create_private_dir(&config.data_dir)?;
        let store: Arc<dyn HubStore> = match &config.database {
            None => Arc::new(SqliteStore::open(&config.data_dir)?),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Arc::new(postgres::PgStore::connect(url, postgres::DEFAULT_POOL_SIZE)?)
            }
            Some(url) if url.starts_with("sqlite:") => {
                let dir = PathBuf::from(url.trim_start_matches("sqlite:"));
                create_private_dir(&dir)?;
                Arc::new(SqliteStore::open(&dir)?)
            }
            Some(_) => return Err(Error::BadRequest("unsupported --database: use postgres://… or sqlite:DIR".into())),
        };
        let blobs = match &config.blob_store {
            None => BlobStore::open_local(&config.data_dir)?,
            Some(url) => BlobStore::new(&config.data_dir, blobs::backend_from_url(url)?)?,
        };
        let plan_key = load_or_create_plan_key(&config.plan_key.clone().unwrap_or_else(|| config.data_dir.join(PLAN_KEY_FILE)))?;
        let rules = match &config.stage_rules {
            None => StageRules::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(Error::io(p))?;
                StageRules::from_json(&text).map_err(|e| Error::BadRequest(format!("stage rules {}: {e}", p.display())))?
            }
        };
        config.server_limits.validate().map_err(Error::BadRequest)?;
        let hub = Hub::with_store(store, blobs, config.publisher_keys, AnalyzerConfig { plan_key, rules });
        hub.set_server_limits(config.server_limits)?;
        hub.set_trusted_proxies(config.trusted_proxies);
        Ok(hub)
    }

    /// A hub over any store and blob store. Like every start, collects what dead publishes
    /// left first (`publish::collect_dead_publishes`; store and blob calls, so blocking).
    pub fn with_store(store: Arc<dyn HubStore>, blobs: BlobStore, publisher_keys: Vec<PublicKey>, analysis: AnalyzerConfig) -> Hub {
        let analyzer = Analyzer::new(store.clone(), analysis);
        let hub = Hub {
            inner: Arc::new(HubInner {
                store,
                blobs,
                publisher_keys,
                analyzer,
                analysis_wake: tokio::sync::Notify::new(),
                limits: ratelimit::RateLimiter::default(),
                secure_cookies: std::sync::atomic::AtomicBool::new(false),
                server_limits: std::sync::Mutex::new(ServerLimits::default()),
                trusted_proxies: std::sync::RwLock::new(Vec::new()),
                claim_lease_ms: std::sync::atomic::AtomicU64::new(publish::CLAIM_LEASE.as_millis() as u64),
            }),
        };
        // What dead publishes left (expired claims, their unreferenced blobs, unfinished
        // deletions). A failure does not stop the hub: the next start collects again.
        match publish::collect_dead_publishes(&hub.inner, chrono::Utc::now()) {
            Ok(c) if c.claims + c.blobs > 0 => {
                tracing::info!(claims = c.claims, blobs = c.blobs, "collected what dead publishes left");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "collecting what dead publishes left failed; the next start retries"),
        }
        hub
    }

    /// Changes how long a publish claim (and its blob leases) holds before a dead publisher's
    /// claim may be taken over and collected (default `publish::CLAIM_LEASE`). For tests.
    pub fn set_publish_claim_lease(&self, lease: std::time::Duration) {
        self.inner.claim_lease_ms.store(lease.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Collects what dead publishes left now, as a start does: finishes stale deletion
    /// markers, ends expired claims and deletes the blobs only they needed. Blocking.
    pub fn collect_dead_publishes(&self) -> Result<publish::Collected> {
        publish::collect_dead_publishes(&self.inner, chrono::Utc::now())
    }

    /// Asks the analysis worker to look at the queue now.
    pub(crate) fn wake_analysis(&self) {
        self.inner.analysis_wake.notify_one();
    }

    /// Analyses every queued finished call now, on this thread (the serving hub also does it
    /// in the background). Blocking: call it from a plain thread or `spawn_blocking`.
    pub fn analyze_pending(&self) -> Result<AnalysisReport> {
        self.inner.analyzer.run()
    }

    /// The public key devices must trust for this hub's plans.
    pub fn plan_public_key(&self) -> PublicKey {
        self.inner.analyzer.plan_public_key()
    }

    /// The path of a microsite's link (`/m/TOKEN`), for operators who send it.
    pub fn microsite_path(&self, microsite_id: &str) -> String {
        format!("/m/{}", self.inner.analyzer.microsite_token(microsite_id))
    }

    /// An HCP's analysed profile (interest with evidence, stages per product), if any call
    /// with them was analysed.
    pub fn hcp_profile(&self, hcp_id: &str) -> Result<Option<analytics::HcpProfile>> {
        let docs = self.inner.store.load_docs(&[(closed_loop::DOC_HCP.to_string(), hcp_id.to_string())])?;
        docs.into_iter()
            .flatten()
            .next()
            .map(|d| serde_json::from_value(d.doc).map_err(|e| Error::Internal(format!("stored profile: {e}"))))
            .transpose()
    }

    /// A deck's statistics (views, dwell, drop-off, reactions by segment).
    pub fn deck_stats(&self, bundle_id: &str) -> Result<Option<analytics::DeckStats>> {
        let docs = self.inner.store.load_docs(&[(closed_loop::DOC_DECK.to_string(), bundle_id.to_string())])?;
        docs.into_iter()
            .flatten()
            .next()
            .map(|d| serde_json::from_value(d.doc).map_err(|e| Error::Internal(format!("stored deck statistics: {e}"))))
            .transpose()
    }

    /// The latest plan made for an HCP on a bundle, as devices receive it.
    pub fn latest_plan(&self, hcp_id: &str, bundle_id: &str) -> Result<Option<edetail_protocol::Plan>> {
        self.inner
            .store
            .latest_plan(hcp_id, bundle_id)?
            .map(|(bytes, _)| serde_json::from_slice(&bytes).map_err(|e| Error::Internal(format!("stored plan: {e}"))))
            .transpose()
    }

    /// The newest plan of an HCP on any bundle.
    pub fn newest_plan(&self, hcp_id: &str) -> Result<Option<edetail_protocol::Plan>> {
        self.inner
            .store
            .newest_plan_of_hcp(hcp_id)?
            .map(|(bytes, _)| serde_json::from_slice(&bytes).map_err(|e| Error::Internal(format!("stored plan: {e}"))))
            .transpose()
    }

    /// An HCP's microsites, oldest first.
    pub fn microsites_for(&self, hcp_id: &str) -> Result<Vec<store::Microsite>> {
        self.inner.store.microsites_for(hcp_id)
    }

    /// Imports HCP segments from CSV with a header `hcp_id,segment`. Returns the row count.
    /// Rejects the whole file on the first bad line, naming the line (never its content).
    pub fn import_hcp_segments(&self, csv: &str) -> Result<usize> {
        let rows = parse_csv(csv, &["hcp_id", "segment"])?
            .into_iter()
            .map(|mut r| (std::mem::take(&mut r[0]), std::mem::take(&mut r[1])))
            .collect::<Vec<_>>();
        self.inner.store.set_hcp_segments(&rows, Utc::now())
    }

    /// Imports prescriptions from CSV with a header `hcp_id,product,period,count` (period
    /// `YYYY-MM`). Returns the row count; the whole file or nothing.
    pub fn import_prescriptions(&self, csv: &str) -> Result<usize> {
        let mut rows = Vec::new();
        for (i, r) in parse_csv(csv, &["hcp_id", "product", "period", "count"])?.into_iter().enumerate() {
            let line = i + 2;
            let p = &r[2];
            let valid_period = p.len() == 7
                && p.as_bytes()[4] == b'-'
                && p[..4].bytes().all(|b| b.is_ascii_digit())
                && matches!(p[5..].parse::<u32>(), Ok(1..=12));
            if !valid_period {
                return Err(Error::BadRequest(format!("line {line}: period must be YYYY-MM")));
            }
            let count = r[3].parse::<u64>().map_err(|_| Error::BadRequest(format!("line {line}: count must be a whole number")))?;
            rows.push(store::Prescription { hcp_id: r[0].clone(), product: r[1].clone(), period: r[2].clone(), count });
        }
        self.inner.store.import_prescriptions(&rows)
    }

    pub(crate) fn inner(&self) -> &HubInner {
        &self.inner
    }

    /// Every `/v1` route, the microsite pages (`/m/…`) and the dashboard (`/dashboard`).
    /// The dashboard needs an operator (bearer operator token or a login session, `auth`).
    pub fn router(&self) -> axum::Router {
        let insights: Arc<dyn dashboard::DashboardSource> = Arc::new(insights::HubInsights::new(self.clone()));
        self.with_client(http::router(self.clone()))
            .merge(self.microsite_router())
            .merge(self.dashboard_router(insights))
            .layer(axum::middleware::from_fn(reqlog::request_log))
    }

    /// The follow-up microsites (`/m/…`) alone (the browser test's fixture serves them beside
    /// its dashboard).
    pub fn microsite_router(&self) -> axum::Router {
        self.with_client(microsite::router(self.clone()))
    }

    /// `routes` behind the client middleware (client address, bad-credential brake, default CSP).
    fn with_client(&self, routes: axum::Router) -> axum::Router {
        routes.layer(axum::middleware::from_fn_with_state(self.clone(), front::middleware))
    }

    /// The dashboard over any source, behind this hub's operator login (`/dashboard/login`,
    /// bearer operator tokens or a session cookie). The browser test's fixture uses it.
    pub fn dashboard_router(&self, source: Arc<dyn dashboard::DashboardSource>) -> axum::Router {
        self.with_client(
            dashboard::router(source)
                .merge(auth::login_router(self.clone()))
                .layer(axum::middleware::from_fn_with_state(self.clone(), auth::dashboard_gate)),
        )
    }

    /// The background analysis loop: runs when woken and at least every `ANALYSIS_INTERVAL`.
    pub async fn analysis_worker(self) {
        loop {
            let hub = self.clone();
            match tokio::task::spawn_blocking(move || hub.analyze_pending()).await {
                Ok(Ok(r)) if r != AnalysisReport::default() => tracing::info!(?r, "analysis"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "analysis run failed; retrying later"),
                Err(e) => tracing::error!(error = %e, "analysis task failed"),
            }
            tokio::select! {
                _ = self.inner.analysis_wake.notified() => {}
                _ = tokio::time::sleep(ANALYSIS_INTERVAL) => {}
            }
        }
    }

    /// Serves plain HTTP until `shutdown` completes, then finishes in-flight requests.
    /// Meant for loopback (or behind a TLS-terminating proxy): see [`Hub::serve_tls`].
    /// Connections are bounded by [`Hub::server_limits`] (timeouts, connection caps).
    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        self.serve_on(listener, None, shutdown).await
    }

    /// Serves HTTPS (HTTP/1.1 over rustls, `tls` from [`tls::TlsFiles::load`]) until
    /// `shutdown` completes, then finishes in-flight requests. Same routes, limits and
    /// background analysis as [`Hub::serve`], plus the TLS handshake timeout.
    pub async fn serve_tls(
        self,
        listener: tokio::net::TcpListener,
        tls: Arc<tls::ServerConfig>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        self.serve_on(listener, Some(tokio_rustls::TlsAcceptor::from(tls)), shutdown).await
    }

    async fn serve_on(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener: {e}")))?;
        let limits = self.server_limits();
        tracing::info!(%addr, ?limits, "hub listening");
        let worker = tokio::spawn(self.clone().analysis_worker());
        server::serve(listener, tls, self.router(), limits, shutdown).await;
        worker.abort();
        Ok(())
    }

    /// The connection timeouts and bounds `serve`/`serve_tls` use.
    pub fn server_limits(&self) -> ServerLimits {
        *self.inner.server_limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the connection timeouts and bounds for servers started from now on.
    pub fn set_server_limits(&self, limits: ServerLimits) -> Result<()> {
        limits.validate().map_err(Error::BadRequest)?;
        *self.inner.server_limits.lock().unwrap_or_else(|p| p.into_inner()) = limits;
        Ok(())
    }

    /// Registers a device for a rep and territory; returns its id and (only now) its token,
    /// valid for `DEFAULT_DEVICE_TOKEN_DAYS`. Audited as the CLI user.
    pub fn add_device(&self, rep_id: &str, territory: &str) -> Result<DeviceCredentials> {
        self.add_device_with(rep_id, territory, store::DEFAULT_DEVICE_TOKEN_DAYS, &cli_actor())
    }

    /// Registers a device whose token expires after `token_days` days; audited as `actor`.
    pub fn add_device_with(&self, rep_id: &str, territory: &str, token_days: i64, actor: &str) -> Result<DeviceCredentials> {
        if rep_id.trim().is_empty() || territory == publish::ALL_TERRITORIES {
            return Err(Error::BadRequest("rep and territory must be non-empty (and the territory not \"*\")".into()));
        }
        publish::check_name("territory", territory)?;
        let expires_at = token_expiry(token_days)?;
        let device_id = format!("dev-{}", uuid::Uuid::new_v4().simple());
        let token = new_token()?;
        let hash = token_hash(&token);
        let now = Utc::now();
        // The rep id stays out of the audit trail (it names a person).
        let audit = store::Audited::plain(audit_entry(
            actor,
            "device.add",
            &device_id,
            serde_json::json!({"territory": territory, "expires_at": expires_at}),
        ));
        self.inner.store.add_device(&device_id, rep_id, territory, &hash, now, Some(expires_at), Some(&audit))?;
        Ok(DeviceCredentials { device_id, token })
    }

    /// Registers a publisher; returns its token (shown once). Audited as the CLI user.
    pub fn add_publisher(&self, name: &str) -> Result<String> {
        self.add_publisher_as(name, &cli_actor())
    }

    pub fn add_publisher_as(&self, name: &str, actor: &str) -> Result<String> {
        if name.trim().is_empty() {
            return Err(Error::BadRequest("publisher name must be non-empty".into()));
        }
        let token = new_token()?;
        let audit = store::Audited::plain(audit_entry(actor, "publisher.add", name, serde_json::json!({})));
        self.inner.store.add_publisher(name, &token_hash(&token), Utc::now(), Some(&audit))?;
        Ok(token)
    }

    /// Registers an operator (dashboard access); returns its token (shown once).
    pub fn add_operator(&self, name: &str, token_days: i64, actor: &str) -> Result<String> {
        publish::check_name("operator", name)?;
        let expires_at = token_expiry(token_days)?;
        let token = new_token()?;
        let audit = store::Audited::plain(audit_entry(actor, "operator.add", name, serde_json::json!({"expires_at": expires_at})));
        self.inner.store.add_operator(name, &token_hash(&token), Utc::now(), Some(expires_at), Some(&audit))?;
        Ok(token)
    }

    /// Issues a new token for the same device, publisher or operator (printed once by the
    /// CLI). The subject's older tokens keep working for `grace`, then expire: a tablet with a
    /// queued outbox can still upload with its old token meanwhile. Everything else (events,
    /// watermark, feed cursor) belongs to the subject, not the token, and is untouched.
    pub fn rotate_token(
        &self,
        role: store::TokenRole,
        subject: &str,
        grace: chrono::Duration,
        token_days: i64,
        actor: &str,
    ) -> Result<String> {
        if role == store::TokenRole::Session {
            return Err(Error::BadRequest("sessions are not rotated".into()));
        }
        if grace < chrono::Duration::zero() || grace > chrono::Duration::days(30) {
            return Err(Error::BadRequest("the grace period must be between 0 and 30 days".into()));
        }
        let expires_at = token_expiry(token_days)?;
        let now = Utc::now();
        let token = new_token()?;
        let audit = store::Audited::plain(audit_entry(
            actor,
            &format!("{}.rotate", role.as_str()),
            subject,
            serde_json::json!({"grace_seconds": grace.num_seconds(), "expires_at": expires_at}),
        ));
        self.inner.store.issue_credential(
            &store::NewCredential {
                token_sha256: token_hash(&token),
                role,
                subject: subject.to_string(),
                created_at: now,
                expires_at: Some(expires_at),
                others_expire_by: Some(now + grace),
            },
            Some(&audit),
        )?;
        Ok(token)
    }

    /// Revokes every token of a device, publisher or operator (an operator's dashboard
    /// sessions too); returns how many. Takes effect on the next request.
    pub fn revoke_tokens(&self, role: store::TokenRole, subject: &str, actor: &str) -> Result<u64> {
        let audit = store::Audited {
            entry: audit_entry(actor, &format!("{}.revoke", role.as_str()), subject, serde_json::json!({})),
            outcome: |n| serde_json::json!({"tokens": n}),
        };
        self.inner.store.revoke_credentials(role, subject, Utc::now(), Some(&audit))
    }

    /// Appends an audit entry now, on its own. `details` must name no person (ids only). The
    /// hub's own audited changes write their entries in the change's transaction instead.
    pub fn audit(&self, actor: &str, action: &str, subject: &str, details: serde_json::Value) -> Result<i64> {
        self.inner.store.append_audit(&audit_entry(actor, action, subject, details))
    }

    /// The audit trail, oldest first.
    pub fn audit_log(&self) -> Result<Vec<store::AuditEntry>> {
        self.inner.store.audit_log()
    }

    /// Requests this process refused with 429 so far.
    pub fn rate_limited_total(&self) -> u64 {
        self.inner.limits.refused()
    }

    /// Sets the reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` the hub
    /// believes (`--trusted-proxy`); requests from any other peer are taken at their address.
    pub fn set_trusted_proxies(&self, proxies: Vec<client::TrustedProxy>) {
        *self.inner.trusted_proxies.write().unwrap_or_else(|p| p.into_inner()) = proxies;
    }

    /// Marks dashboard session cookies `Secure` (call when serving over TLS).
    pub fn set_secure_cookies(&self, secure: bool) {
        self.inner.secure_cookies.store(secure, std::sync::atomic::Ordering::Relaxed);
    }

    /// Publishes a bundle zip exactly as `POST /v1/publish` does. Empty `territories` means
    /// the territories listing the bundle's product, or every territory (`"*"`) when none does.
    pub fn publish_zip(&self, zip: &[u8], territories: &[String]) -> Result<PublishResult> {
        let file = publish::spool_bytes(&self.inner, zip)?;
        publish::publish(&self.inner, file, territories, None, &cli_actor())
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
    /// This hub process's instance id (its staging directory under `DATA/tmp`); its publishes'
    /// claim ids start with it.
    pub fn instance_id(&self) -> String {
        self.inner.blobs.instance_id().to_string()
    }

    pub fn blob_store_backend(&self) -> Arc<dyn blobs::BlobBackend> {
        self.inner.blobs.backend().clone()
    }

    /// Withdraws every published version of a bundle; devices see it in their change feed.
    pub fn revoke(&self, bundle_id: &str, reason: &str) -> Result<()> {
        self.revoke_as(bundle_id, reason, &cli_actor())
    }

    /// Revokes a bundle, audited as `actor`.
    pub fn revoke_as(&self, bundle_id: &str, reason: &str, actor: &str) -> Result<()> {
        let audit = store::Audited {
            entry: audit_entry(actor, "bundle.revoke", bundle_id, serde_json::json!({"reason": reason})),
            outcome: |feed_seq| serde_json::json!({"feed_seq": feed_seq}),
        };
        self.inner.store.revoke(bundle_id, reason, Utc::now(), Some(&audit))?;
        Ok(())
    }

    pub fn stats(&self) -> Result<HubStats> {
        self.inner.store.stats()
    }

    /// Right to erasure: removes everything the hub holds about an HCP (events of their calls
    /// and microsite visits, analysis, plans, microsites, segment, prescriptions) in one
    /// transaction and sends the erasure to every device through the change feed. Idempotent.
    /// Audited as "hcp erased" with `actor` and the counts (never the HCP id).
    pub fn erase_hcp(&self, hcp_id: &str, actor: &str) -> Result<ErasureReport> {
        let report = self.inner.store.erase_hcp(hcp_id, Utc::now(), Some(&audit::hcp_erased(actor)))?;
        audit::log(audit::HCP_ERASED, actor, &serde_json::to_value(&report).unwrap_or_default());
        Ok(report)
    }

    /// Sets an HCP's tracking consent; devices receive it through the change feed. Audited as
    /// "consent changed" with `actor` and the new tracking (never the HCP id).
    pub fn set_consent(&self, hcp_id: &str, tracking: edetail_protocol::Tracking, actor: &str) -> Result<()> {
        let details = serde_json::json!({"tracking": tracking});
        self.inner.store.set_consent(hcp_id, tracking, Utc::now(), Some(&audit::consent_changed(actor, details.clone())))?;
        audit::log(audit::CONSENT_CHANGED, actor, &details);
        Ok(())
    }

    /// The tracking an HCP's devices apply (`Tracking::DEFAULT` without a consent record).
    pub fn consent_for(&self, hcp_id: &str) -> Result<edetail_protocol::Tracking> {
        Ok(self.inner.store.consent(hcp_id)?.map_or(edetail_protocol::Tracking::DEFAULT, |c| c.tracking))
    }

    /// Stored events of one device, by sequence number (tests and analytics).
    pub fn events_for_device(&self, device_id: &str) -> Result<Vec<WireEvent>> {
        self.inner.store.events_for_device(device_id)
    }
}

/// The `/v1` routes alone (the dashboard's tests merge their own dashboard into them).
#[cfg(test)]
pub(crate) fn http_router_for_tests(hub: &Hub) -> axum::Router {
    http::router(hub.clone())
}

/// An audit entry made now. `details` must name no person (ids only).
pub(crate) fn audit_entry(actor: &str, action: &str, subject: &str, details: serde_json::Value) -> store::NewAuditEntry {
    store::NewAuditEntry { at: Utc::now(), actor: actor.to_string(), action: action.to_string(), subject: subject.to_string(), details }
}

/// The audit actor of CLI admin commands: `cli:<os user>`.
pub fn cli_actor() -> String {
    let user = ["USER", "LOGNAME", "USERNAME"].iter().find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()));
    #[cfg(unix)]
    let user = user.or_else(|| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").ok().map(|m| format!("uid{}", m.uid()))
    });
    let user = user.unwrap_or_default();
    let user: String = user.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).take(64).collect();
    format!("cli:{}", if user.is_empty() { "unknown" } else { &user })
}

/// Longest token lifetime accepted (`--token-days`).
pub const MAX_TOKEN_DAYS: i64 = 3650;

fn token_expiry(days: i64) -> Result<chrono::DateTime<Utc>> {
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(Error::BadRequest(format!("token lifetime must be 1 to {MAX_TOKEN_DAYS} days")));
    }
    Ok(Utc::now() + chrono::Duration::days(days))
}

/// The analysis worker looks at the queue at least this often.
pub const ANALYSIS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Parses a small CSV file with exactly these header columns (no quoting needed for ids;
/// fields may be wrapped in double quotes). Errors name the line, never its content.
fn parse_csv(text: &str, header: &[&str]) -> Result<Vec<Vec<String>>> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let field = |f: &str| f.trim().trim_matches('"').trim().to_string();
    let (_, first) = lines.next().ok_or_else(|| Error::BadRequest("the CSV file is empty".into()))?;
    let got: Vec<String> = first.trim_start_matches('\u{feff}').split(',').map(field).collect();
    if got.iter().map(String::as_str).ne(header.iter().copied()) {
        return Err(Error::BadRequest(format!("the CSV header must be exactly: {}", header.join(","))));
    }
    let mut rows = Vec::new();
    for (i, l) in lines {
        let r: Vec<String> = l.split(',').map(field).collect();
        if r.len() != header.len() || r.iter().any(|f| f.is_empty() || f.len() > 200) {
            return Err(Error::BadRequest(format!("line {}: expected {} non-empty fields", i + 1, header.len())));
        }
        rows.push(r);
    }
    Ok(rows)
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| Error::Internal(format!("bind 127.0.0.1:0: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener: {e}")))?;
    let task = tokio::spawn(async move {
        if let Err(e) = hub.serve(listener, std::future::pending()).await {
            tracing::error!(error = %e, "local hub stopped");
        }
    });
    Ok((format!("http://{addr}"), task))
}

/// Test helper: serves `hub` over HTTPS (`tls` from [`tls::TlsFiles::load`]) on 127.0.0.1:0
/// in a background tokio task; returns its base URL (`"https://127.0.0.1:PORT"`) and the task.
pub async fn serve_local_tls(hub: Hub, tls: Arc<tls::ServerConfig>) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| Error::Internal(format!("bind 127.0.0.1:0: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener: {e}")))?;
    let task = tokio::spawn(async move {
        if let Err(e) = hub.serve_tls(listener, tls, std::future::pending()).await {
            tracing::error!(error = %e, "local hub stopped");
        }
    });
    Ok((format!("https://{addr}"), task))
}
