//! `EdetailDevice`: the object an app holds per signed-in rep. Each method is a thin delegation
//! to edetail-core (content, assets, calls, the slide bridge) or edetail-sync (sync). Every
//! method is safe from any thread. Methods marked "I/O" touch storage or the network: call
//! them off the UI thread (recording calls are short SQLite transactions, fine on a background
//! executor; `sync_now` is `suspend`/`async`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edetail_bundle::PublicKey;
use edetail_core::validity::Unopenable;
use edetail_core::{DbKey, Device, DeviceConfig, NavSource, StartCall};
use edetail_sync::{Lifecycle, RemotePresenter, SyncConfig, SyncEngine};

use crate::assets::AssetResponse;
use crate::error::{ApiError, ApiResult};
use crate::remote::RemoteSession;
use crate::sync::{AppLifecycle, ForeignListener, ForeignTokens, SyncListener, SyncStatus, SyncSummary, TokenProvider, status_of};
use crate::types::*;

/// One rep's data directory: content, calls, recording and sync.
#[derive(uniffi::Object)]
pub struct EdetailDevice {
    device: Arc<Device>,
    engine: Mutex<Option<Arc<SyncEngine>>>,
    listener: Mutex<Option<Arc<dyn SyncListener>>>,
    online: Mutex<bool>,
}

impl std::fmt::Debug for EdetailDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdetailDevice").field("dir", &self.device.dir()).finish_non_exhaustive()
    }
}

fn status_of_unopenable(u: &Unopenable) -> ContentStatus {
    match u {
        Unopenable::NotYetValid { .. } => ContentStatus::NotYetValid,
        Unopenable::Expired { .. } => ContentStatus::Expired,
        Unopenable::Revoked => ContentStatus::Revoked,
        Unopenable::SyncRequired { .. } => ContentStatus::SyncRequired,
    }
}

fn non_empty(what: &str, v: &str) -> ApiResult<()> {
    if v.trim().is_empty() {
        return Err(ApiError::InvalidInput { reason: format!("{what} must not be empty") });
    }
    Ok(())
}

impl EdetailDevice {
    fn engine(&self) -> ApiResult<Arc<SyncEngine>> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or(ApiError::SyncNotConfigured)
    }

    fn attach_listener(&self, engine: &Arc<SyncEngine>, listener: Arc<dyn SyncListener>) {
        let clock_engine = Arc::downgrade(engine);
        let clock = Arc::new(move || clock_engine.upgrade().map_or(0, |e| e.clock_ms()));
        engine.set_listener(Arc::new(ForeignListener { listener, clock }));
    }
}

#[uniffi::export]
impl EdetailDevice {
    /// Opens (creating when needed) a rep's data directory. I/O. Fails with `InUse` when it is
    /// already open, `InvalidInput` for a malformed publisher key.
    #[uniffi::constructor]
    pub fn open(mut options: DeviceOptions) -> ApiResult<Arc<EdetailDevice>> {
        non_empty("data_dir", &options.data_dir)?;
        non_empty("rep_id", &options.rep_id)?;
        let trusted_keys = options
            .publisher_keys
            .iter()
            .map(|k| PublicKey::from_file_text(k).map_err(|e| ApiError::InvalidInput { reason: format!("publisher key: {e}") }))
            .collect::<ApiResult<Vec<_>>>()?;
        // The app's copy of the key bytes is wiped once it is a DbKey (or refused).
        let db_key = options.db_key.as_deref().map(DbKey::from_slice).transpose();
        if let Some(bytes) = options.db_key.as_mut() {
            zeroize::Zeroize::zeroize(bytes);
        }
        let db_key = db_key?;
        let config = DeviceConfig {
            db_key,
            trusted_keys,
            allow_unsigned: options.allow_unsigned,
            max_offline: options.max_offline_hours.map(|h| Duration::from_secs(u64::from(h) * 3600)),
            ..DeviceConfig::new(options.rep_id)
        };
        let device = Device::open(&PathBuf::from(options.data_dir), config)?;
        Ok(Arc::new(EdetailDevice {
            device: Arc::new(device),
            engine: Mutex::new(None),
            listener: Mutex::new(None),
            online: Mutex::new(true),
        }))
    }

    // ---- content ---------------------------------------------------------------------------

    /// Installed bundles with their decks, slides, thumbnails, validity and any download in
    /// progress. I/O (a few small reads).
    pub fn bundles(&self) -> ApiResult<Vec<BundleInfo>> {
        let content = self.device.content();
        let mut pending = content.pending_downloads()?;
        let mut out = Vec::new();
        for b in content.list()? {
            let active = content.active(&b.bundle_id)?;
            let m = &active.manifest;
            let reason = self.device.unopenable_reason(&b.bundle_id)?;
            let slide_url = |path: &str| edetail_core::assets::asset_url(&b.bundle_id, path);
            let update = pending.iter().position(|p| p.bundle_id == b.bundle_id).map(|i| pending.remove(i).into());
            out.push(BundleInfo {
                bundle_id: b.bundle_id.clone(),
                version: b.active_version,
                title: b.title,
                product: b.product,
                approval_code: m.approval_code.clone(),
                valid_from_ms: b.valid_from.timestamp_millis(),
                valid_until_ms: b.valid_until.timestamp_millis(),
                status: reason.as_ref().map_or(ContentStatus::Ready, status_of_unopenable),
                status_reason: reason.map(|r| r.to_string()),
                total_bytes: b.total_size,
                presentations: m
                    .presentations
                    .iter()
                    .map(|p| PresentationInfo { id: p.id.clone(), title: p.title.clone(), hidden: p.hidden, slide_ids: p.slides.clone() })
                    .collect(),
                slides: m
                    .slides
                    .iter()
                    .map(|s| SlideInfo {
                        id: s.id.clone(),
                        title: s.title.clone(),
                        url: slide_url(s.entry.as_str()),
                        thumbnail_url: s.thumbnail.as_ref().map(|t| slide_url(t.as_str())),
                        key_message: s.key_message.clone(),
                        topics: s.topics.clone(),
                        hidden: s.hidden,
                        bridge: s.bridge.into(),
                    })
                    .collect(),
                update,
            });
        }
        Ok(out)
    }

    /// First installs still downloading (bundles not yet presentable). I/O.
    pub fn downloads(&self) -> ApiResult<Vec<DownloadInfo>> {
        Ok(self.device.content().pending_downloads()?.into_iter().map(Into::into).collect())
    }

    /// Installs a bundle zip from a file (side-loading, demos, tests). Atomic: until it
    /// completes, the previous version stays active. I/O.
    pub fn install_bundle_file(&self, path: String) -> ApiResult<InstallResult> {
        let o = self.device.install_zip(&PathBuf::from(path))?;
        Ok(InstallResult {
            bundle_id: o.bundle_id,
            version: o.version,
            activated: o.activated,
            files_written: o.blobs_written as u64,
            files_reused: o.blobs_reused as u64,
        })
    }

    /// Answers a WebView request for `url_path` (`/<bundle-id>/<path>` or `/_edetail/…`, query
    /// stripped) with an optional `Range` header value. Never throws for a bad request: the
    /// status says 404/403/416. The body streams through `AssetResponse::read`. I/O.
    pub fn resolve_asset(&self, url_path: String, range: Option<String>) -> Arc<AssetResponse> {
        Arc::new(AssetResponse::from_result(self.device.assets().resolve_url_path(&url_path, range.as_deref())))
    }

    // ---- calls -----------------------------------------------------------------------------

    /// Starts a call on an openable bundle and enters its first slide. With an HCP, `plan` is
    /// what to present: the hub's plan for this HCP when valid (source `Hub`, its id recorded
    /// in `call_started`), else the local suggestion (`Local`); `suggested_slides` lists the
    /// same slide ids. Follows the HCP's consent (`consent_for`): `Anonymous` records the call
    /// without the HCP id and offers no plan; `Off` opens the content but records nothing.
    /// Fails with `NotOpenable` for expired or revoked content. I/O.
    #[uniffi::method(default(presentation_id = None))]
    pub fn start_call(
        &self,
        hcp_id: Option<String>,
        channel: CallChannel,
        bundle_id: String,
        presentation_id: Option<String>,
    ) -> ApiResult<CallStart> {
        let started = self.device.start_call_with_suggestion(StartCall {
            hcp_id,
            channel: channel.into(),
            bundle_id,
            presentation_id,
            location: None,
        })?;
        let suggested_slides = started.suggestion.as_ref().map(|s| s.slide_ids()).unwrap_or_default();
        Ok(CallStart { call_id: started.call_id, first: started.first.into(), suggested_slides, plan: started.suggestion.map(Into::into) })
    }

    /// Moves within the call's bundle (swipe, arrows, overview); records the slide change.
    /// `hcp_led`: the doctor, not the rep, asked for it. I/O.
    #[uniffi::method(default(hcp_led = false))]
    pub fn navigate(&self, call_id: String, to: Navigation, hcp_led: bool) -> ApiResult<SlideTarget> {
        let source = match to {
            Navigation::Next | Navigation::Previous => NavSource::Swipe,
            Navigation::ToSlide { .. } | Navigation::ToPresentation { .. } => NavSource::Overview,
        };
        Ok(self.device.calls().navigate(&call_id, &to.into(), source, hcp_led)?.into())
    }

    /// The HCP's reaction to the current slide. I/O.
    pub fn react(&self, call_id: String, reaction: ReactionKind) -> ApiResult<Recorded> {
        Ok(self.device.calls().react(&call_id, reaction.into())?.into())
    }

    /// A rep's note on the call (kept on the device and synced; never logged). I/O.
    pub fn note(&self, call_id: String, text: String) -> ApiResult<Recorded> {
        Ok(self.device.calls().note(&call_id, &text)?.into())
    }

    /// The HCP asked for a follow-up on a topic. I/O.
    pub fn follow_up(&self, call_id: String, topic: String, note: Option<String>) -> ApiResult<Recorded> {
        Ok(self.device.calls().follow_up(&call_id, &topic, note.as_deref())?.into())
    }

    /// The HCP showed advocacy (agreed to speak, referred a colleague, shared the microsite),
    /// recorded as `advocacy` on the current slide. I/O.
    pub fn advocacy(&self, call_id: String, action: AdvocacyAction) -> ApiResult<Recorded> {
        Ok(self.device.calls().advocacy(&call_id, action.into())?.into())
    }

    /// Any other interaction, with a JSON object payload. `kind` is an app-defined type,
    /// `app.` plus letters, digits, `_`, `.`, `-` (`app.sample_request`), or a built-in kind
    /// (docs/protocol.md). Anything else is `InvalidInput`: the hub refuses it, so it could never
    /// be uploaded. I/O.
    pub fn record(&self, call_id: Option<String>, kind: String, payload_json: String) -> ApiResult<Recorded> {
        non_empty("kind", &kind)?;
        let payload: serde_json::Value = serde_json::from_str(&payload_json)?;
        if !payload.is_object() {
            return Err(ApiError::InvalidInput { reason: "payload must be a JSON object".into() });
        }
        Ok(self.device.calls().record(call_id.as_deref(), &kind, payload)?.into())
    }

    /// Ends the call (closing the current slide's dwell). I/O.
    pub fn end_call(&self, call_id: String) -> ApiResult<()> {
        Ok(self.device.calls().end_call(&call_id)?)
    }

    /// The call left open by a crash or a killed app, if any (it is recovered as interrupted
    /// when the directory is opened; this is the one still open now).
    pub fn open_call(&self) -> ApiResult<Option<String>> {
        Ok(self.device.calls().open_call()?)
    }

    /// Every call on this device, oldest first. I/O.
    pub fn calls(&self) -> ApiResult<Vec<CallInfo>> {
        Ok(self.device.calls().list()?.into_iter().map(Into::into).collect())
    }

    /// What `start_call` would offer `hcp_id` on `bundle_id` now, to show before the call: the
    /// hub's plan when valid (source `Hub`), else the local suggestion (`Local`). `None` when
    /// the bundle is not installed or cannot be presented now (expired, revoked). I/O.
    pub fn plan_for(&self, hcp_id: String, bundle_id: String) -> ApiResult<Option<CallPlan>> {
        if self.device.privacy().consent_for(&hcp_id)? != edetail_core::Tracking::Full {
            return Ok(None);
        }
        Ok(self.device.plans().suggestion_if_presentable(&hcp_id, &bundle_id)?.map(Into::into))
    }

    /// The HCP's tracking consent as last received from the hub (`Full` without a record). I/O.
    pub fn consent_for(&self, hcp_id: String) -> ApiResult<ConsentLevel> {
        Ok(self.device.privacy().consent_for(&hcp_id)?.into())
    }

    /// Slide ids of `bundle_id` in the order this device suggests for `hcp_id` from earlier
    /// calls here (local only; `plan_for` prefers the hub's plan). I/O.
    pub fn suggested_slides(&self, hcp_id: String, bundle_id: String) -> ApiResult<Vec<String>> {
        Ok(self.device.profile().suggested_order(&hcp_id, &bundle_id)?)
    }

    // ---- call sequences ---------------------------------------------------------------------

    /// Starts the rep's sequence for `hcp_id` on `bundle_id` (replacing a saved one): the hub's
    /// plan when valid, else the local suggestion (the deck order without full consent), with
    /// every mandatory slide. Saved on the device; works offline. `NotOpenable` for content
    /// that cannot be presented now. I/O.
    pub fn start_sequence(&self, hcp_id: String, bundle_id: String) -> ApiResult<CallSequence> {
        non_empty("hcp_id", &hcp_id)?;
        Ok(self.device.sequences().start(&hcp_id, &bundle_id)?.into())
    }

    /// The rep's saved sequence for `hcp_id` on `bundle_id`, if any. I/O.
    pub fn saved_sequence(&self, hcp_id: String, bundle_id: String) -> ApiResult<Option<CallSequence>> {
        Ok(self.device.sequences().saved(&hcp_id, &bundle_id)?.map(Into::into))
    }

    /// One of the rep's sequences (`NotFound` for an unknown id). I/O.
    pub fn sequence(&self, sequence_id: String) -> ApiResult<CallSequence> {
        Ok(self.device.sequences().get(&sequence_id)?.into())
    }

    /// Moves the slide at index `from_index` to index `to_index` (indices into `slides`).
    /// `InvalidInput` out of range. I/O.
    pub fn move_sequence_slide(&self, sequence_id: String, from_index: u32, to_index: u32) -> ApiResult<CallSequence> {
        Ok(self.device.sequences().move_item(&sequence_id, from_index as usize, to_index as usize)?.into())
    }

    /// Appends an approved slide of the bundle. `InvalidInput` for a hidden slide, a slide only
    /// in hidden presentations or one already in the sequence; `NotFound` for a slide the
    /// bundle lacks. I/O.
    pub fn add_to_sequence(&self, sequence_id: String, slide_id: String) -> ApiResult<CallSequence> {
        Ok(self.device.sequences().add(&sequence_id, &slide_id)?.into())
    }

    /// Removes a slide. `InvalidInput` for a mandatory slide (fair balance) or one not in the
    /// sequence. I/O.
    pub fn remove_from_sequence(&self, sequence_id: String, slide_id: String) -> ApiResult<CallSequence> {
        Ok(self.device.sequences().remove(&sequence_id, &slide_id)?.into())
    }

    /// Starts a call with the sequence's HCP on its bundle, opening on its first slide; records
    /// one `call_plan` event with the call (planned, kept, dropped, added, order). The call's
    /// next/previous follow the sequence as it is now (later edits are for the next call); off
    /// the sequence and inside a sub-presentation, the deck's order. `plan` is `None`
    /// and `suggested_slides` is the sequence. Follows the HCP's consent like `start_call`. I/O.
    pub fn start_call_from_sequence(&self, sequence_id: String, channel: CallChannel) -> ApiResult<CallStart> {
        let started = self.device.start_call_from_sequence(&sequence_id, channel.into(), None)?;
        let suggested_slides = self.device.sequences().get(&sequence_id)?.slide_ids();
        Ok(CallStart { call_id: started.call_id, first: started.first.into(), suggested_slides, plan: None })
    }

    /// The one entry point of the slide bridge: forward every string a slide posts (edetail.js
    /// or the Veeva shim) and post the answer back to the page. Never throws: errors are
    /// answered in the bridge's own JSON format. I/O.
    pub fn handle_bridge_message(&self, message: String) -> String {
        edetail_core::bridge::handle(&self.device, &message)
    }

    /// Recorded events not yet on the hub, for a badge. I/O.
    pub fn outbox_status(&self) -> ApiResult<OutboxStatus> {
        let s = self.device.outbox().stats()?;
        Ok(OutboxStatus { pending: s.pending as u64, parked: s.parked as u64, acknowledged: s.acked as u64 })
    }

    // ---- lifecycle and connectivity --------------------------------------------------------

    /// The app moved to the foreground or background: dwell pauses in the background, and a
    /// sync's backoff wait is abandoned there. I/O (one small write). Never throws: a failed
    /// write (storage full) is logged and the dwell of the open slide is closed at the next
    /// heartbeat instead.
    pub fn set_lifecycle(&self, lifecycle: AppLifecycle) {
        let r = match lifecycle {
            AppLifecycle::Foreground => self.device.calls().app_foreground(),
            AppLifecycle::Background => self.device.calls().app_background(),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "recording the app lifecycle change failed");
        }
        if let Ok(e) = self.engine() {
            e.set_lifecycle(match lifecycle {
                AppLifecycle::Foreground => Lifecycle::Foreground,
                AppLifecycle::Background => Lifecycle::Background,
            });
        }
    }

    /// Connectivity as the platform reports it. Offline stops a sync at its next step.
    pub fn set_online(&self, online: bool) {
        *self.online.lock().unwrap_or_else(|p| p.into_inner()) = online;
        if let Ok(e) = self.engine() {
            e.set_online(online);
        }
    }

    /// Call every few seconds while presenting: a crash then closes dwell at the last
    /// heartbeat. I/O (one small write).
    pub fn heartbeat(&self) -> ApiResult<()> {
        Ok(self.device.calls().heartbeat()?)
    }

    // ---- sync ------------------------------------------------------------------------------

    /// Where and as whom to sync. `device_id` is the hub-issued id the token belongs to.
    /// `trust_roots`: DER certificates trusted for HTTPS to the hub, only they. Leave empty on
    /// iOS (the system's trust store is used); on Android pass the certificates of the
    /// `AndroidCAStore` key store (system and device-management CAs): without them an `https`
    /// hub is refused with `InvalidInput`. Replaces an earlier configuration (a sync running
    /// on it is cancelled).
    #[uniffi::method(default(trust_roots = []))]
    pub fn configure_sync(
        &self,
        hub_url: String,
        device_id: String,
        tokens: Arc<dyn TokenProvider>,
        trust_roots: Vec<Vec<u8>>,
    ) -> ApiResult<()> {
        non_empty("hub_url", &hub_url)?;
        non_empty("device_id", &device_id)?;
        let mut config = SyncConfig::new(hub_url, device_id, Arc::new(ForeignTokens(tokens)));
        config.trust_roots = trust_roots;
        let engine = Arc::new(SyncEngine::new(self.device.clone(), config)?);
        engine.set_online(*self.online.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(l) = self.listener.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            self.attach_listener(&engine, l);
        }
        if let Some(old) = self.engine.lock().unwrap_or_else(|p| p.into_inner()).replace(engine) {
            old.cancel();
        }
        Ok(())
    }

    /// Receives sync status and events (replaces an earlier listener).
    pub fn set_sync_listener(&self, listener: Arc<dyn SyncListener>) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener.clone());
        if let Ok(e) = self.engine() {
            self.attach_listener(&e, listener);
        }
    }

    /// One sync: upload the outbox, then install what changed. Presenting and recording never
    /// wait for it. Cancel with `cancel_sync` (a cancelled coroutine/Task does not stop it).
    /// Errors: `Offline`, `AlreadySyncing`, `AuthRequired`, `SyncFailed`, `SyncCancelled`.
    pub async fn sync_now(&self) -> ApiResult<SyncSummary> {
        let engine = self.engine()?;
        Ok(engine.sync().await?.into())
    }

    /// `sync_now`, blocking the calling thread (for WorkManager `Worker`s and BGTasks that run
    /// on their own thread). Never on the UI thread.
    pub fn sync_blocking(&self) -> ApiResult<SyncSummary> {
        let engine = self.engine()?;
        Ok(engine.sync_now()?.into())
    }

    /// Cancels the running sync, if any; it answers `SyncCancelled`. Everything done so far is
    /// kept (acknowledged events, verified files, partial downloads) and resumed next time.
    pub fn cancel_sync(&self) {
        if let Ok(e) = self.engine() {
            e.cancel();
        }
    }

    /// The sync engine's status now (`Idle` when sync is not configured).
    pub fn sync_status(&self) -> SyncStatus {
        match self.engine() {
            Ok(e) => status_of(e.state(), e.clock_ms()),
            Err(_) => SyncStatus::Idle,
        }
    }

    /// Milliseconds until the engine suggests syncing again after a failed sync (None: no
    /// failure pending). Schedule the next background sync from it.
    pub fn next_sync_in_ms(&self) -> Option<u64> {
        let e = self.engine().ok()?;
        e.next_sync_at_ms().map(|at| at.saturating_sub(e.clock_ms()))
    }

    // ---- remote detailing ------------------------------------------------------------------

    /// Opens a remote session for the open call `call_id` at the configured hub (sync must be
    /// configured: `SyncNotConfigured`), lasting `minutes` (1 to 240), doctors waiting to be
    /// admitted when `waiting_room`; share its `join_url`. The session presents the call in the
    /// background from now on: every slide the call moves to, whatever moves it, reaches the
    /// doctors. With control handed over (`set_control(Hcp)`), their navigation moves the call
    /// (watch `next_event` for `Navigated`) and is recorded as HCP-led, unless the HCP's
    /// consent is off. The session outlives the app: the device remembers it until it ends, so
    /// opening again for the call (after a restart, or once the `RemoteSession` was released)
    /// presents the same session, same id and `join_url`, instead of a new one (its own expiry
    /// and waiting room; control back with the rep); the doctors still connected see the
    /// presenter back. A crash leaves the call interrupted: a new call on the same bundle with
    /// the same HCP takes the session over. A session the hub no longer knows is replaced by a
    /// new one. Errors: `NotFound` (no such open call), `InvalidInput` (minutes),
    /// `AuthRequired`, `SyncFailed` (the hub refused or is unreachable). I/O (network), blocking.
    pub fn open_remote_session(&self, call_id: String, minutes: u32, waiting_room: bool) -> ApiResult<Arc<RemoteSession>> {
        non_empty("call_id", &call_id)?;
        let config = self.engine()?.config().clone();
        let presenter = RemotePresenter::open(self.device.clone(), &config, &call_id, minutes, waiting_room)?;
        Ok(Arc::new(RemoteSession::new(presenter)))
    }
}
