//! The `Hub` facade: the shared state of one hub process (store, blob store, analyzer,
//! limits) and its core operations (open, publish, revoke, territories, analysis results,
//! privacy, statistics). Administration (`admin`), CRM imports (`imports`), the analysis
//! worker (`worker`) and serving (`serve`) add their own `impl Hub` blocks above it.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use edetail_bundle::PublicKey;
use edetail_protocol::{PublishResult, WireEvent};

use crate::analytics::{self, StageRules};
use crate::audit::{self, audit_entry, cli_actor};
use crate::blobs::{self, BlobStore};
use crate::client;
use crate::closed_loop::{self, AnalysisReport, Analyzer, AnalyzerConfig};
use crate::config::{HubConfig, PLAN_KEY_FILE, create_private_dir, load_or_create_plan_key};
use crate::error::{Error, Result};
use crate::publish;
use crate::ratelimit;
use crate::server::ServerLimits;
use crate::store::postgres;
use crate::store::sqlite::SqliteStore;
use crate::store::{self, ErasureReport, HubStats, HubStore, Territory};

/// A running hub's shared state; cheap to clone.
#[derive(Clone, Debug)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
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
    /// Retention period of analysed events in seconds, applied by `serve` (0: keep all).
    pub(crate) event_retention_s: std::sync::atomic::AtomicU64,
    /// The remote sessions' sockets on this process and the relay between processes.
    pub(crate) remote: Arc<crate::remote_relay::Relay>,
    /// How often a remote session's sockets read the session again (milliseconds).
    pub(crate) remote_recheck_ms: std::sync::atomic::AtomicU64,
}

impl HubInner {
    /// How long a publish claim holds.
    pub(crate) fn claim_lease(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::milliseconds(self.claim_lease_ms.load(std::sync::atomic::Ordering::Relaxed) as i64)
    }

    /// What publishing needs of this hub (`publish`).
    pub(crate) fn publishing(&self) -> publish::Publishing<'_> {
        publish::Publishing {
            store: &*self.store,
            blobs: &self.blobs,
            publisher_keys: &self.publisher_keys,
            claim_lease: self.claim_lease(),
        }
    }
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
        // Hub processes sharing a PostgreSQL database relay remote sessions through it.
        if let Some(url) = config.database.as_deref().filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://")) {
            hub.use_postgres_relay(url)?;
        }
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
                event_retention_s: std::sync::atomic::AtomicU64::new(0),
                remote: Arc::default(),
                remote_recheck_ms: std::sync::atomic::AtomicU64::new(crate::remote_relay::RECHECK.as_millis() as u64),
            }),
        };
        // What dead publishes left (expired claims, their unreferenced blobs, unfinished
        // deletions). A failure does not stop the hub: the next start collects again.
        match publish::collect_dead_publishes(&hub.inner.publishing(), chrono::Utc::now()) {
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
        publish::collect_dead_publishes(&self.inner.publishing(), chrono::Utc::now())
    }

    /// Relays remote sessions between hub processes through the PostgreSQL database at `url`
    /// (`LISTEN`/`NOTIFY`, ADR 0023); `Hub::open` does it for a PostgreSQL hub.
    pub fn use_postgres_relay(&self, url: &str) -> Result<()> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| Error::BadRequest(format!("invalid PostgreSQL URL: {e}")))?;
        config.application_name("edetail-hub-relay");
        config.connect_timeout(std::time::Duration::from_secs(10));
        self.inner.remote.use_postgres(config);
        Ok(())
    }

    /// How often a remote session's sockets read their session again (ended on a process whose
    /// relay message was lost, expiry moved, the link replaced) and mark attendees seen
    /// (default `remote_relay::RECHECK`). For tests.
    pub fn set_remote_recheck(&self, every: std::time::Duration) {
        self.inner.remote_recheck_ms.store(every.as_millis().max(1) as u64, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn remote_recheck(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.inner.remote_recheck_ms.load(std::sync::atomic::Ordering::Relaxed))
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
    /// The respond policy this hub analyses with (stage rules, plan bound, experiment).
    pub fn respond_rules(&self) -> &analytics::StageRules {
        self.inner.analyzer.rules()
    }

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

    pub(crate) fn inner(&self) -> &HubInner {
        &self.inner
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
        let file = publish::spool_bytes(&self.inner.publishing(), zip)?;
        publish::publish(&self.inner.publishing(), file, territories, None, &cli_actor())
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
