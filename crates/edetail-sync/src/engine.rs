//! [`SyncEngine`]: one sync = upload the outbox, then apply the hub's change feed.
//!
//! The engine owns a small multi-thread tokio runtime (see ADR 0006): apps call it from
//! Swift/Kotlin threads, edetail-core has no tokio, and each engine shuts its runtime down when
//! dropped. It only uses `Device` methods, which are short SQLite transactions, so presenting
//! and recording never wait for sync. Decisions (retry, backoff, connectivity) come from
//! [`Policy`]; this module carries them out.
//!
//! Upload: batches of at most `MAX_BATCH_EVENTS` events / `MAX_BATCH_BYTES` of JSON; events are
//! acknowledged (accepted + duplicates) or parked (rejected, with the hub's reason) only after
//! the hub's `UploadAck` has been read. A 413 halves the batch (down to one event); a single
//! event over the protocol's limit is parked, never dropped.
//!
//! One sync at a time per data directory: a sync holds `DIR/sync.lock` locked while it runs.
//!
//! Download: for each change-feed page, stage every offered manifest (verified by the core
//! under the device's key policy; `Rollback` = the device already has newer: skip), download
//! only missing blobs into `DIR/tmp-sync/<sha256>.partial` (resumed with `Range` when a partial
//! exists; only a 206 whose `Content-Range` starts at the partial's length is appended, anything
//! else restarts from 0), verify SHA-256, `add_blob`, activate, apply revocations, store the
//! hub's signed plans (refused ones counted, never blocking the page), observe the
//! hub's time, and only then store `next_cursor`.
//!
//! First installs: when a bundle has no version on the device and nearly all of it is missing
//! (`ZIP_INSTALL_MIN_FILES`, `ZIP_INSTALL_MIN_SHARE`), the engine fetches the signed zip the
//! offer names (`tmp-sync/<id>-<version>.zip.partial`, resumed with Range like a blob) and lets
//! the core install it in one verified batch: one request and one batch of fsyncs instead of
//! hundreds. A zip the core refuses is discarded and that version is fetched blob by blob.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use edetail_bundle::Sha256Digest;
use edetail_core::{BatchAnswer, Device, PendingUpload, PlanOutcome};
use edetail_protocol::payload::{OversizedEvent, Payload};
use edetail_protocol::{ChangePage, EventKind, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, UploadAck, UploadBatch, WireEvent};
use reqwest::StatusCode;
use reqwest::header::CONTENT_RANGE;
use serde::Serialize;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::http::{HttpFailure, Timeouts, TokenProvider, Transport, content_range_starts_at};
use crate::policy::{FailureClass, Input, Lifecycle, Policy, SplitMix64, Step, StopReason, SyncState};
use crate::state;

/// Worker threads of the engine's runtime.
pub const RUNTIME_WORKERS: usize = 2;
/// A first install fetches the bundle's whole zip (one resumable request, one batched install)
/// instead of blob by blob when at least this many files are missing...
pub const ZIP_INSTALL_MIN_FILES: usize = 32;
/// ...and the missing bytes are at least this share of the bundle (little is shared with
/// bundles already on the device, so the zip re-sends almost nothing).
pub const ZIP_INSTALL_MIN_SHARE: f64 = 0.9;
/// Event type of the stub uploaded in place of an event too large for any batch (the original
/// stays parked on the device with the reason).
pub const OVERSIZED_STUB_TYPE: &str = EventKind::OversizedEvent.as_str();
/// Directory under the device's data directory holding partial downloads.
pub const TMP_DIR: &str = "tmp-sync";
/// File under the device's data directory that a running sync holds locked (`File::try_lock`):
/// one sync at a time per data directory, whichever engine or process runs it.
pub const SYNC_LOCK_FILE: &str = "sync.lock";

/// How to reach the hub.
#[derive(Clone)]
pub struct SyncConfig {
    /// The hub's base URL, without `/v1`.
    pub hub_url: String,
    /// The hub-issued device id (bound to the token).
    pub device_id: String,
    pub token_provider: Arc<dyn TokenProvider>,
    /// Request timeouts ([`Timeouts::default`] in apps; tests shorten them).
    pub timeouts: Timeouts,
    /// Trusted root certificates (DER) for HTTPS to the hub. Empty: the platform's verifier
    /// (iOS, Linux, Windows, macOS). On Android it must be given (the app passes the certificates
    /// of its `AndroidCAStore`, which includes those its device management installed): the
    /// platform verifier there needs JVM initialisation this library does not do.
    pub trust_roots: Vec<Vec<u8>>,
}

impl SyncConfig {
    /// A configuration with default [`Timeouts`].
    pub fn new(hub_url: impl Into<String>, device_id: impl Into<String>, token_provider: Arc<dyn TokenProvider>) -> SyncConfig {
        SyncConfig {
            hub_url: hub_url.into(),
            device_id: device_id.into(),
            token_provider,
            timeouts: Timeouts::default(),
            trust_roots: Vec::new(),
        }
    }
}

impl fmt::Debug for SyncConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncConfig")
            .field("hub_url", &self.hub_url)
            .field("device_id", &self.device_id)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// Progress, for the app's UI. Delivered on the engine's threads: keep handlers short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SyncProgress {
    StateChanged {
        state: SyncState,
    },
    /// One batch acknowledged by the hub.
    EventsUploaded {
        accepted: usize,
        duplicates: usize,
        parked: usize,
    },
    /// Bytes received from the network for a blob (resumed bytes are not counted again).
    BytesDownloaded {
        sha256: String,
        bytes: u64,
    },
    /// Bytes received for a bundle's whole zip (first installs).
    ZipBytesDownloaded {
        bundle_id: String,
        version: u64,
        bytes: u64,
    },
    /// A blob verified and stored.
    BlobStored {
        sha256: String,
        size: u64,
        resumed: bool,
    },
    BundleActivated {
        bundle_id: String,
        version: u64,
    },
    BundleRevoked {
        bundle_id: String,
    },
}

/// Receives progress.
pub trait SyncListener: Send + Sync {
    fn on_progress(&self, progress: SyncProgress);
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub batches: usize,
    pub events_accepted: usize,
    pub events_duplicates: usize,
    pub events_parked: usize,
    pub pages: usize,
    pub bundles_activated: Vec<String>,
    /// Offers older than or equal to what the device has (rollback refused), or already active.
    pub bundles_skipped: usize,
    /// Offers whose manifest failed verification under the device's key policy.
    pub bundles_rejected: Vec<String>,
    pub revocations: usize,
    /// Hub plans verified and stored (new, or newer than the one the device had).
    pub plans_stored: usize,
    /// Hub plans refused (wrong or untrusted signature, unreadable): logged by plan id, never
    /// stored, and they do not block the page.
    pub plans_refused: usize,
    /// HCP erasures applied (ADR 0011).
    pub erasures: usize,
    /// Consent records that changed an HCP's tracking here.
    pub consents_changed: usize,
    pub blobs_downloaded: usize,
    /// Bytes received from the network for blobs.
    pub bytes_downloaded: u64,
    /// Blobs completed from a partial download (Range).
    pub blobs_resumed: usize,
    /// Bundles installed from their whole zip (first installs; see `ZIP_INSTALL_MIN_FILES`).
    pub bundles_from_zip: usize,
    /// Zip downloads completed from a partial file (Range).
    pub zips_resumed: usize,
    /// Uploads the hub refused as too large (413) and sent again as half the batch.
    pub batches_split: usize,
    /// Failed attempts retried within this sync.
    pub failed_attempts: u32,
    pub cursor: Option<String>,
}

struct Inner {
    device: Arc<Device>,
    config: SyncConfig,
    transport: Transport,
    policy: Mutex<Policy>,
    listener: Mutex<Option<Arc<dyn SyncListener>>>,
    online: watch::Sender<bool>,
    epoch: Instant,
    /// The running sync task, for `cancel`.
    current: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Bundle versions whose zip failed to install: fetched blob by blob from then on.
    zip_refused: Mutex<std::collections::HashSet<(String, u64)>>,
}

/// The sync engine. `Send + Sync`; share it with an `Arc`.
pub struct SyncEngine {
    inner: Arc<Inner>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for SyncEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncEngine").field("config", &self.inner.config).field("state", &self.state()).finish_non_exhaustive()
    }
}

impl Drop for SyncEngine {
    fn drop(&mut self) {
        // Never blocks (and never panics when dropped inside an async context); an in-flight
        // sync is abandoned: everything it did is idempotent and resumes at the next sync.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Upload batches in flight at once: one stored by the hub while the next waits there and a third
/// is read, encoded and sent as the device applies an answer (the hub applies a device's batches
/// one after another either way). Measured with the upload bench: 2 -> 3 gained ~10%, 4 nothing.
const UPLOAD_WINDOW: usize = 3;

/// A batch as sent: its header (the `events` list empty) and the events it carries.
struct SentBatch {
    header: UploadBatch,
    events: Vec<PendingUpload>,
}

/// A batch sent and not yet answered. Dropping it (a cancelled sync) aborts the request.
struct InFlight {
    batch: SentBatch,
    body_bytes: usize,
    task: tokio::task::JoinHandle<std::result::Result<UploadAck, HttpFailure>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Held while a sync runs: the locked [`SYNC_LOCK_FILE`] of the data directory. The lock belongs
/// to this open file, so a second engine on the same directory (or a second sync of the same
/// engine) is refused, and closing the file on drop releases it, also when a dropped engine's
/// runtime abandons the sync.
struct SyncDirLock {
    _file: std::fs::File,
}

impl SyncDirLock {
    /// Takes the lock at once or answers [`Error::AlreadyRunning`]; never waits.
    fn acquire(dir: &Path) -> Result<SyncDirLock> {
        let path = dir.join(SYNC_LOCK_FILE);
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(SyncDirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::AlreadyRunning),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

impl SyncEngine {
    /// Builds the engine and its runtime. Persists the hub device id; a different id than the
    /// stored one (another hub identity) resets the change-feed cursor.
    pub fn new(device: Arc<Device>, config: SyncConfig) -> Result<SyncEngine> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_WORKERS)
            .thread_name("edetail-sync")
            .enable_all()
            .build()
            .map_err(|e| Error::Engine(format!("runtime: {e}")))?;
        let transport = Transport::with_options(&config.hub_url, config.token_provider.clone(), config.timeouts, &config.trust_roots)
            .map_err(|f| Error::Config(f.message))?;
        state::migrate_file(&device)?;
        let st = state::load(&device)?;
        if st.hub_device_id.as_deref() != Some(config.device_id.as_str()) {
            state::store(&device, &edetail_core::SyncCursor { hub_device_id: Some(config.device_id.clone()), cursor: None })?;
        }
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        let (online, _) = watch::channel(true);
        let inner = Inner {
            device,
            config,
            transport,
            policy: Mutex::new(Policy::new(Box::new(SplitMix64::new(seed)))),
            listener: Mutex::new(None),
            online,
            epoch: Instant::now(),
            zip_refused: Mutex::new(std::collections::HashSet::new()),
            current: Mutex::new(Vec::new()),
        };
        Ok(SyncEngine { inner: Arc::new(inner), runtime: Some(runtime) })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("runtime lives until drop")
    }

    /// How this engine reaches the hub (a remote session opened from the app uses the same).
    pub fn config(&self) -> &SyncConfig {
        &self.inner.config
    }

    /// One sync, blocking the calling thread. One sync at a time per data directory (not just per
    /// engine: two engines over the same `Device` exclude each other through [`SYNC_LOCK_FILE`]):
    /// a concurrent call returns [`Error::AlreadyRunning`] at once (it does not wait). Must not be called from an
    /// async context ([`Error::BlockingInAsync`]); use [`SyncEngine::sync`] there.
    pub fn sync_now(&self) -> Result<SyncReport> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::BlockingInAsync);
        }
        let task = self.spawn_sync();
        self.runtime().block_on(task).map_err(join_error)?
    }

    /// Spawns one sync on the engine's runtime and remembers how to abort it.
    fn spawn_sync(&self) -> tokio::task::JoinHandle<Result<SyncReport>> {
        let inner = self.inner.clone();
        let task = self.runtime().spawn(async move { inner.run().await });
        let mut current = self.inner.current.lock().expect("current lock");
        current.retain(|h| !h.is_finished());
        current.push(task.abort_handle());
        task
    }

    /// Cancels the sync in progress, if any: it stops at its next await point and its caller
    /// gets [`Error::Cancelled`]. Safe at any moment (uploads are acknowledged only after the
    /// hub's answer, the cursor is stored only after a whole page, partial downloads are kept
    /// for resuming). Foreign futures cannot be cancelled from their side; apps call this.
    pub fn cancel(&self) {
        for h in self.inner.current.lock().expect("current lock").drain(..) {
            h.abort();
        }
    }

    /// Asks the hub which device a token belongs to (`GET /v1/device`), for a tablet that was
    /// given only its token. Blocking, one request; not from an async context.
    pub fn identify(hub_url: &str, token_provider: Arc<dyn TokenProvider>) -> Result<edetail_protocol::DeviceInfo> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::BlockingInAsync);
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::Engine(format!("runtime: {e}")))?;
        let transport = Transport::new(hub_url, token_provider).map_err(|f| Error::Engine(f.message))?;
        rt.block_on(transport.device()).map_err(|f| Error::Failed { class: f.class, attempts: 1, message: f.to_string() })
    }

    /// One sync, for async callers on any executor (the work runs on the engine's runtime).
    /// Same rules as [`SyncEngine::sync_now`]: a concurrent call gets `AlreadyRunning`.
    pub async fn sync(&self) -> Result<SyncReport> {
        self.spawn_sync().await.map_err(join_error)?
    }

    /// Connectivity as the app sees it. Going offline stops a sync at its next step (or its
    /// backoff wait at once); nothing is attempted while offline.
    pub fn set_online(&self, online: bool) {
        self.inner.input(Input::Connectivity { online });
        self.inner.online.send_replace(online);
    }

    /// App lifecycle: in the background a backoff wait is abandoned (the sync returns
    /// `Suspended`); a transfer in progress completes.
    pub fn set_lifecycle(&self, lifecycle: Lifecycle) {
        self.inner.input(Input::Lifecycle(lifecycle));
        // Wake a waiting sync so it notices.
        self.inner.online.send_modify(|_| {});
    }

    pub fn state(&self) -> SyncState {
        self.inner.policy.lock().expect("policy lock").state()
    }

    /// When the policy suggests the next sync after one stopped on a failure (milliseconds
    /// since this engine was created).
    pub fn next_sync_at_ms(&self) -> Option<u64> {
        self.inner.policy.lock().expect("policy lock").next_sync_at()
    }

    /// The engine's clock (milliseconds since it was created): the time base of
    /// `SyncState::Waiting::until_ms` and [`SyncEngine::next_sync_at_ms`].
    pub fn clock_ms(&self) -> u64 {
        self.inner.clock_ms()
    }

    pub fn set_listener(&self, l: Arc<dyn SyncListener>) {
        *self.inner.listener.lock().expect("listener lock") = Some(l);
    }
}

impl Inner {
    fn clock_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn emit(&self, p: SyncProgress) {
        let l = self.listener.lock().expect("listener lock").clone();
        if let Some(l) = l {
            l.on_progress(p);
        }
    }

    /// Feeds the policy and reports a state change.
    fn input(&self, input: Input) -> Step {
        let (before, step, after) = {
            let mut p = self.policy.lock().expect("policy lock");
            let before = p.state();
            let step = p.on(input, self.clock_ms());
            (before, step, p.state())
        };
        if before != after {
            self.emit(SyncProgress::StateChanged { state: after });
        }
        step
    }

    async fn run(self: Arc<Self>) -> Result<SyncReport> {
        let _lock = SyncDirLock::acquire(self.device.dir())?;
        // Dropped mid-sync (cancelled): the policy must not think a sync still runs.
        let _reset = PolicyReset(&self);
        let mut report = SyncReport::default();
        let mut last_failure: Option<HttpFailure> = None;
        let mut step = self.input(Input::Start);
        loop {
            step = match step {
                Step::Upload | Step::Download => {
                    let upload = step == Step::Upload;
                    let res = if upload { self.upload_all(&mut report).await } else { self.download_all(&mut report).await };
                    match res {
                        Ok(()) => self.input(Input::PhaseDone),
                        Err(PhaseError::Http(f)) => {
                            tracing::warn!(class = %f.class, status = ?f.status, "sync attempt failed: {}", f.message);
                            let s = self.input(Input::Failed { class: f.class, retry_after_ms: f.retry_after_ms });
                            last_failure = Some(f);
                            if matches!(s, Step::Wait { .. }) {
                                report.failed_attempts += 1;
                            }
                            s
                        }
                        Err(PhaseError::Fatal(e)) => {
                            // A local failure (storage, database): stop; the policy goes idle.
                            self.input(Input::Failed { class: FailureClass::Permanent, retry_after_ms: None });
                            return Err(e);
                        }
                    }
                }
                Step::Wait { until_ms } => {
                    let mut online = self.online.subscribe();
                    let dur = std::time::Duration::from_millis(until_ms.saturating_sub(self.clock_ms()));
                    tokio::select! {
                        _ = tokio::time::sleep(dur) => {}
                        _ = online.changed() => {}
                    }
                    self.input(Input::WaitElapsed)
                }
                Step::Finished => return Ok(report),
                Step::Stopped(StopReason::Busy) => return Err(Error::AlreadyRunning),
                Step::Stopped(StopReason::Offline) => return Err(Error::Offline),
                Step::Stopped(StopReason::Background) => return Err(Error::Suspended),
                Step::Stopped(StopReason::Failed { class, attempts }) => {
                    let message = last_failure.map(|f| f.to_string()).unwrap_or_else(|| class.to_string());
                    return Err(Error::Failed { class, attempts, message });
                }
                Step::Nothing => {
                    // The state moved under us (offline, background): ask where we are.
                    match self.policy.lock().expect("policy lock").state() {
                        SyncState::Offline => return Err(Error::Offline),
                        SyncState::Uploading => Step::Upload,
                        SyncState::Downloading => Step::Download,
                        SyncState::Waiting { until_ms, .. } => Step::Wait { until_ms },
                        SyncState::Done => return Ok(report),
                        SyncState::Idle => return Err(Error::Suspended),
                    }
                }
            };
        }
    }

    /// Uploads every pending event, batch by batch. A 413 halves the events per batch for the
    /// rest of this sync (down to 1); a single event whose batch is over the protocol's
    /// `MAX_BATCH_BYTES` is parked with the reason (it can never be accepted), while a smaller one
    /// refused as too large stops the sync (a limit in front of the hub is below the protocol's:
    /// compliance data is not parked for that).
    async fn upload_all(&self, report: &mut SyncReport) -> Result<(), PhaseError> {
        let outbox = self.device.outbox();
        let mut batch_limit = MAX_BATCH_EVENTS;
        if !outbox.pending(1)?.is_empty() {
            self.apply_privacy_ahead(report).await?;
        }
        // Up to UPLOAD_WINDOW batches in flight: the next batch is read, encoded and sent while
        // the hub stores the previous one. Answers are applied in order; each marks only its
        // own events, so a lost or failed answer leaves exactly those events pending.
        let mut window: VecDeque<InFlight> = VecDeque::new();
        let mut last_sent: Option<i64> = None;
        let mut answered = false;
        loop {
            // One batch at a time until the hub took a full one (a proxy's body limit is found
            // with one refused request, not a window of them); after a 413 the batch limit is
            // halved and stays one at a time.
            let depth = if answered && batch_limit == MAX_BATCH_EVENTS { UPLOAD_WINDOW } else { 1 };
            while window.len() < depth {
                let events = outbox.pending_uploads(last_sent, batch_limit)?;
                if events.is_empty() {
                    break;
                }
                let (batch, body) = self.build_batch(events)?;
                last_sent = batch.events.last().map(|e| e.seq);
                let body_bytes = body.len();
                let transport = self.transport.clone();
                let task = tokio::spawn(async move { transport.upload_json(&body).await });
                window.push_back(InFlight { batch, body_bytes, task });
            }
            let Some(mut front) = window.pop_front() else { return Ok(()) };
            let sent = front.batch.events.len();
            let answer = (&mut front.task)
                .await
                .map_err(|e| PhaseError::Http(HttpFailure::new(FailureClass::Transient, format!("upload task failed: {e}"))))?;
            let ack = match answer {
                Ok(ack) => ack,
                Err(f) => {
                    // Later batches went out assuming this one would be taken: apply what they
                    // got (durable on the hub) and go on from the outbox as it is now.
                    self.settle(&mut window, report).await?;
                    last_sent = None;
                    if f.status == Some(StatusCode::PAYLOAD_TOO_LARGE.as_u16()) {
                        if sent > 1 {
                            batch_limit = sent / 2;
                            report.batches_split += 1;
                            tracing::info!(sent, next = batch_limit, "the hub refused a batch as too large: halving it");
                            continue;
                        }
                        self.send_oversized_stub(&front.batch, front.body_bytes, f, report).await?;
                        continue;
                    }
                    return Err(f.into());
                }
            };
            self.apply_ack(&ack, &front.batch, report)?;
            answered = true;
        }
    }

    /// Waits for the batches still in flight and applies the answers that arrived; failures are
    /// dropped (their events stay pending and go again).
    async fn settle(&self, window: &mut VecDeque<InFlight>, report: &mut SyncReport) -> Result<(), PhaseError> {
        while let Some(mut f) = window.pop_front() {
            if let Ok(Ok(ack)) = (&mut f.task).await {
                self.apply_ack(&ack, &f.batch, report)?;
            }
        }
        Ok(())
    }

    /// A batch of one event the hub refused as too large: parks it, and sends a small stub with
    /// the same uuid and seq so the hub's watermark moves past it.
    async fn send_oversized_stub(
        &self,
        batch: &SentBatch,
        body_bytes: usize,
        f: HttpFailure,
        report: &mut SyncReport,
    ) -> Result<(), PhaseError> {
        let event = &batch.events[0];
        if body_bytes <= MAX_BATCH_BYTES {
            return Err(PhaseError::Http(HttpFailure {
                class: FailureClass::Permanent,
                message: format!(
                    "event #{} refused as too large ({}) although its batch is {body_bytes} bytes, within the \
                     protocol's {MAX_BATCH_BYTES}: a limit in front of the hub is too low",
                    event.seq, f.message
                ),
                ..f
            }));
        }
        let reason = format!("too large to upload: {body_bytes} bytes as a batch of one, over the protocol's {MAX_BATCH_BYTES} (HTTP 413)");
        // The hub still learns that this sequence number exists (a small stub with the same uuid
        // and seq), so its watermark for the device moves past it instead of holding every later
        // number open.
        let stub = Payload::OversizedEvent(OversizedEvent {
            original_type_bytes: Some(event.kind.len() as u64),
            batch_bytes: Some(body_bytes as u64),
            reason: Some(reason.clone()),
        });
        let stub = UploadBatch {
            events: vec![WireEvent {
                uuid: event.uuid.clone(),
                seq: event.seq,
                call_id: event.call_id.clone(),
                kind: stub.kind().as_str().to_string(),
                recorded_at: event.recorded_at,
                session: event.session,
                mono_ms: event.mono_ms,
                payload: stub.to_value(),
            }],
            ..batch.header.clone()
        };
        let ack = self.transport.upload(&stub).await?;
        if !ack.accepted.contains(&event.uuid) && !ack.duplicates.contains(&event.uuid) {
            tracing::warn!(seq = event.seq, "the hub did not take the stub of an oversized event");
        }
        tracing::warn!(seq = event.seq, body_bytes, "event parked: too large to upload (stub sent)");
        self.device.outbox().park(&event.uuid, &reason)?;
        report.events_parked += 1;
        self.emit(SyncProgress::EventsUploaded { accepted: 0, duplicates: 0, parked: 1 });
        Ok(())
    }

    /// Marks what the hub's answer to `batch` made durable or rejected, and records the hub's
    /// clock, in one device transaction. Events are marked by their seq in the batch; a uuid the
    /// answer names that the batch does not carry is ignored (logged): it cannot be ours.
    fn apply_ack(&self, ack: &UploadAck, batch: &SentBatch, report: &mut SyncReport) -> Result<(), PhaseError> {
        let sent = batch.events.len();
        let seq_of: HashMap<&str, i64> = batch.events.iter().map(|e| (e.uuid.as_str(), e.seq)).collect();
        let mut strays = 0usize;
        let mut seq = |uuid: &str| {
            let s = seq_of.get(uuid).copied();
            strays += usize::from(s.is_none());
            s
        };
        let durable: Vec<i64> = ack.accepted.iter().chain(&ack.duplicates).filter_map(|u| seq(u)).collect();
        let rejected: Vec<(i64, &str)> = ack.rejected.iter().filter_map(|r| Some((seq(&r.uuid)?, r.reason.as_str()))).collect();
        if strays > 0 {
            tracing::warn!(strays, "the hub's answer names events this batch did not carry: ignored");
        }
        // Only now, with the hub's answer read, is anything marked.
        self.device.settle_upload(&BatchAnswer { durable: &durable, rejected: &rejected }, now_ms(), ack.hub_time)?;
        report.batches += 1;
        report.events_accepted += ack.accepted.len();
        report.events_duplicates += ack.duplicates.len();
        report.events_parked += ack.rejected.len();
        self.emit(SyncProgress::EventsUploaded {
            accepted: ack.accepted.len(),
            duplicates: ack.duplicates.len(),
            parked: ack.rejected.len(),
        });
        if durable.len() + rejected.len() == 0 && sent > 0 {
            return Err(PhaseError::Http(HttpFailure::new(FailureClass::Transient, format!("the hub acknowledged none of {sent} events"))));
        }
        Ok(())
    }

    /// A batch of the first `events` that fit in `MAX_BATCH_BYTES` of JSON (always at least one),
    /// and its body, whose size is what the hub measures.
    fn build_batch(&self, mut events: Vec<PendingUpload>) -> Result<(SentBatch, Vec<u8>), PhaseError> {
        let header = UploadBatch {
            device_id: self.config.device_id.clone(),
            batch_id: uuid::Uuid::new_v4().to_string(),
            device_time: chrono::Utc::now(),
            events: Vec::new(),
        };
        // Each event is encoded once, into the body itself, its payload copied as stored: the
        // batch's own fields with an empty `events` list (its last field), then the events
        // spliced in.
        let fatal = |e: serde_json::Error| PhaseError::Fatal(Error::Engine(e.to_string()));
        let mut body = serde_json::to_vec(&header).map_err(fatal)?;
        debug_assert!(body.ends_with(b"[]}"), "events is the last field of UploadBatch");
        body.truncate(body.len() - 2);
        let mut fit = 0;
        for e in &events {
            let at = body.len();
            if fit > 0 {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, &e.wire()).map_err(fatal)?;
            if fit > 0 && body.len() + 2 > MAX_BATCH_BYTES {
                body.truncate(at);
                break;
            }
            fit += 1;
        }
        events.truncate(fit);
        body.extend_from_slice(b"]}");
        Ok((SentBatch { header, events }, body))
    }

    /// Before uploading, reads the change feed from the stored cursor and applies only its
    /// erasures and consents (ADR 0011): an HCP erased or switched to anonymous since the last
    /// sync is never uploaded with their id. The cursor is not stored here; the download phase
    /// reads the same pages and applies them whole (erasures and consents are idempotent).
    async fn apply_privacy_ahead(&self, report: &mut SyncReport) -> Result<(), PhaseError> {
        let mut cursor = state::load(&self.device)?.cursor;
        loop {
            let page = self.transport.changes(cursor.as_deref()).await?;
            apply_privacy(&self.device, &page, report)?;
            if !page.has_more {
                return Ok(());
            }
            cursor = Some(page.next_cursor);
        }
    }

    /// Applies change-feed pages until `has_more` is false.
    async fn download_all(&self, report: &mut SyncReport) -> Result<(), PhaseError> {
        loop {
            let mut st = state::load(&self.device)?;
            let page = self.transport.changes(st.cursor.as_deref()).await?;
            self.apply_page(&page, report).await?;
            self.device.observe_hub_time(page.hub_time)?;
            st.hub_device_id = Some(self.config.device_id.clone());
            st.cursor = Some(page.next_cursor.clone());
            state::store(&self.device, &st)?;
            report.pages += 1;
            report.cursor = Some(page.next_cursor.clone());
            if !page.has_more {
                return Ok(());
            }
        }
    }

    async fn apply_page(&self, page: &ChangePage, report: &mut SyncReport) -> Result<(), PhaseError> {
        // Privacy first: erasures and consents apply before anything else of the page, and
        // before the cursor moves past them.
        apply_privacy(&self.device, page, report)?;
        let content = self.device.content();
        for offer in &page.bundles {
            if content.active_version(&offer.bundle_id)?.is_some_and(|v| v >= offer.version) {
                report.bundles_skipped += 1;
                continue;
            }
            let sig = (!offer.signature.0.is_empty()).then_some(offer.signature.0.as_slice());
            let (manifest, missing) = match content.stage_manifest(&offer.manifest.0, sig, now_ms()) {
                Ok(x) => x,
                Err(edetail_core::Error::Rollback { .. }) => {
                    report.bundles_skipped += 1;
                    continue;
                }
                Err(edetail_core::Error::Bundle(e)) => {
                    // Wrongly signed or invalid under this device's policy: refused, never
                    // installed; the page still completes so the feed cannot get stuck.
                    tracing::warn!(bundle = %offer.bundle_id, version = offer.version, "offer refused: {e}");
                    report.bundles_rejected.push(format!("{}@{}", offer.bundle_id, offer.version));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let missing_bytes: u64 = missing.iter().map(|m| m.size).sum();
            let first_install = content.active_version(&offer.bundle_id)?.is_none();
            if first_install
                && missing.len() >= ZIP_INSTALL_MIN_FILES
                && missing_bytes as f64 >= ZIP_INSTALL_MIN_SHARE * offer.total_size as f64
                && !self.zip_refused.lock().expect("zip lock").contains(&(offer.bundle_id.clone(), offer.version))
            {
                self.install_from_zip(offer, report).await?;
                continue;
            }
            for m in &missing {
                self.download_blob(&m.sha256, m.size, report).await?;
            }
            match content.activate(&manifest.id, manifest.version, now_ms()) {
                Ok(()) => {
                    report.bundles_activated.push(format!("{}@{}", manifest.id, manifest.version));
                    self.emit(SyncProgress::BundleActivated { bundle_id: manifest.id.clone(), version: manifest.version });
                }
                Err(edetail_core::Error::Rollback { .. }) => report.bundles_skipped += 1,
                Err(e) => return Err(e.into()),
            }
        }
        for r in &page.revocations {
            match content.revoke(&r.bundle_id, &r.reason, now_ms()) {
                Ok(()) => {
                    report.revocations += 1;
                    self.emit(SyncProgress::BundleRevoked { bundle_id: r.bundle_id.clone() });
                }
                // Never installed here: nothing to revoke.
                Err(edetail_core::Error::UnknownBundle(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Plans last, so a plan for a bundle offered in this page meets its new version. A
        // refused plan is reported, never retried: the page still completes.
        apply_plans(&self.device, &page.plans, report)?;
        Ok(())
    }

    /// Downloads a blob or a zip into `partial`, resuming from what is already there with
    /// `Range` (only a 206 whose `Content-Range` starts at the partial's length is appended;
    /// anything else restarts from 0). `size`: the expected length when known (blobs); for zips
    /// the hub's `Content-Length`/`Content-Range` total. Answers whether it resumed.
    async fn fetch_resumable(
        &self,
        what: &Fetch<'_>,
        partial: &Path,
        size: Option<u64>,
        report: &mut SyncReport,
    ) -> Result<bool, PhaseError> {
        let label = what.label();
        let mut have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        if size.is_some_and(|s| have > s) {
            remove(partial)?;
            have = 0;
        }
        if size.is_some_and(|s| have == s && s > 0) {
            return Ok(false);
        }
        let mut resp = match what {
            Fetch::Blob(hex) => self.transport.blob(hex, have).await?,
            Fetch::Zip { path, .. } => self.transport.zip(path, have).await?,
        };
        let mut file =
            std::fs::OpenOptions::new().create(true).append(false).write(true).truncate(false).open(partial).map_err(io_err(partial))?;
        let status = resp.status();
        let content_range = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let range_ok = status == StatusCode::PARTIAL_CONTENT && content_range.as_deref().is_some_and(|v| content_range_starts_at(v, have));
        let mut resumed = false;
        if have > 0 && range_ok {
            resumed = true;
            file.seek(SeekFrom::Start(have)).map_err(io_err(partial))?;
        } else if status == StatusCode::OK || (status == StatusCode::PARTIAL_CONTENT && range_ok) {
            // Restart from 0 (no partial, or the hub ignored/mismatched the range).
            file.set_len(0).map_err(io_err(partial))?;
            file.seek(SeekFrom::Start(0)).map_err(io_err(partial))?;
            have = 0;
        } else {
            // A 206 for another range than asked: discard the partial, retry from 0.
            drop(file);
            remove(partial)?;
            return Err(PhaseError::Http(HttpFailure::new(
                FailureClass::Transient,
                format!("{label}: unexpected {status} for a range from {have}"),
            )));
        }
        // The whole length: known (blob), else from the answer (zip).
        let total = match size {
            Some(s) => s,
            None => match (resumed, content_range.as_deref().and_then(content_range_total), resp.content_length()) {
                (true, Some(t), _) => t,
                (false, _, Some(n)) => n,
                _ => {
                    return Err(PhaseError::Http(HttpFailure::new(FailureClass::Transient, format!("{label}: the hub sent no length"))));
                }
            },
        };
        let mut written = have;
        let mut received = 0u64;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    let _ = file.sync_all();
                    self.count_bytes(what, received, report);
                    return Err(PhaseError::Http(HttpFailure::new(FailureClass::Network, format!("{label}: {}", e.without_url()))));
                }
            };
            written += chunk.len() as u64;
            received += chunk.len() as u64;
            if written > total {
                drop(file);
                remove(partial)?;
                self.count_bytes(what, received, report);
                return Err(PhaseError::Http(HttpFailure::new(
                    FailureClass::Transient,
                    format!("{label}: more than its {total} bytes; discarded"),
                )));
            }
            file.write_all(&chunk).map_err(io_err(partial))?;
        }
        file.sync_all().map_err(io_err(partial))?;
        self.count_bytes(what, received, report);
        if written < total {
            return Err(PhaseError::Http(HttpFailure::new(
                FailureClass::Network,
                format!("{label}: body ended at {written} of {total} bytes (kept for resume)"),
            )));
        }
        Ok(resumed)
    }

    /// Downloads one blob to `tmp-sync/<sha256>.partial` (resuming with Range), verifies it and
    /// hands it to the core.
    async fn download_blob(&self, sha256: &Sha256Digest, size: u64, report: &mut SyncReport) -> Result<(), PhaseError> {
        let hex = sha256.to_hex();
        let tmp = self.device.dir().join(TMP_DIR);
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let partial = tmp.join(format!("{hex}.partial"));
        let resumed = self.fetch_resumable(&Fetch::Blob(&hex), &partial, Some(size), report).await?;
        // Re-hash what is on disk (rustup's rule) before anything uses it.
        let actual = hash_file(&partial)?;
        if actual != *sha256 {
            remove(&partial)?;
            return Err(PhaseError::Http(HttpFailure::new(
                FailureClass::Transient,
                format!("blob {hex}: content hashes to {}; discarded", actual.to_hex()),
            )));
        }
        let mut f = std::fs::File::open(&partial).map_err(io_err(&partial))?;
        let stored = tokio::task::block_in_place(|| self.device.content().add_blob(sha256, &mut f, now_ms()))?;
        drop(f);
        remove(&partial)?;
        report.blobs_downloaded += 1;
        if resumed {
            report.blobs_resumed += 1;
        }
        self.emit(SyncProgress::BlobStored { sha256: hex, size: stored, resumed });
        Ok(())
    }

    /// A first install from the bundle's whole zip: downloaded to
    /// `tmp-sync/<id>-<version>.zip.partial` (resumed with Range), then installed by the core,
    /// which verifies the signature under the device's keys and every file before activating
    /// (a zip that fails is discarded and this version falls back to blob by blob).
    async fn install_from_zip(&self, offer: &edetail_protocol::BundleOffer, report: &mut SyncReport) -> Result<(), PhaseError> {
        let tmp = self.device.dir().join(TMP_DIR);
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let safe_id: String =
            offer.bundle_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        let partial = tmp.join(format!("{safe_id}-{}.zip.partial", offer.version));
        let what = Fetch::Zip { path: &offer.zip_path, bundle_id: &offer.bundle_id, version: offer.version };
        let resumed = self.fetch_resumable(&what, &partial, None, report).await?;
        let refuse = |reason: String| {
            self.zip_refused.lock().expect("zip lock").insert((offer.bundle_id.clone(), offer.version));
            PhaseError::Http(HttpFailure::new(FailureClass::Transient, reason))
        };
        let outcome = match tokio::task::block_in_place(|| self.device.install_zip(&partial)) {
            Ok(o) => o,
            Err(edetail_core::Error::Bundle(e)) => {
                remove(&partial)?;
                return Err(refuse(format!("bundle {}@{} zip refused ({e}); fetching it blob by blob", offer.bundle_id, offer.version)));
            }
            Err(edetail_core::Error::Rollback { .. }) => {
                remove(&partial)?;
                report.bundles_skipped += 1;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        remove(&partial)?;
        if (outcome.bundle_id.as_str(), outcome.version) != (offer.bundle_id.as_str(), offer.version) {
            return Err(refuse(format!(
                "the zip offered for {}@{} holds {}@{}",
                offer.bundle_id, offer.version, outcome.bundle_id, outcome.version
            )));
        }
        report.bundles_from_zip += 1;
        if resumed {
            report.zips_resumed += 1;
        }
        report.bundles_activated.push(format!("{}@{}", offer.bundle_id, offer.version));
        self.emit(SyncProgress::BundleActivated { bundle_id: offer.bundle_id.clone(), version: offer.version });
        Ok(())
    }

    fn count_bytes(&self, what: &Fetch<'_>, bytes: u64, report: &mut SyncReport) {
        if bytes > 0 {
            report.bytes_downloaded += bytes;
            self.emit(match what {
                Fetch::Blob(hex) => SyncProgress::BytesDownloaded { sha256: hex.to_string(), bytes },
                Fetch::Zip { bundle_id, version, .. } => {
                    SyncProgress::ZipBytesDownloaded { bundle_id: bundle_id.to_string(), version: *version, bytes }
                }
            });
        }
    }
}

/// Tells the policy a sync ended without finishing (a no-op after a finished or stopped sync).
/// Applies a page's erasures and consents (both idempotent).
fn apply_privacy(device: &Device, page: &ChangePage, report: &mut SyncReport) -> edetail_core::Result<()> {
    if !page.erasures.is_empty() {
        report.erasures += device.privacy().apply_erasures(&page.erasures)?;
    }
    if !page.consents.is_empty() {
        report.consents_changed += device.privacy().apply_consents(&page.consents)?;
    }
    Ok(())
}

/// Stores a page's plans through core (which verifies each signature against the device's
/// trusted keys) and counts the outcome. Fails only when the device cannot store anything.
fn apply_plans(device: &Device, plans: &[edetail_protocol::SignedPlan], report: &mut SyncReport) -> edetail_core::Result<()> {
    if plans.is_empty() {
        return Ok(());
    }
    for r in device.plans().store_plans(plans)? {
        match r.outcome {
            PlanOutcome::Stored => report.plans_stored += 1,
            PlanOutcome::Refused { .. } => report.plans_refused += 1,
            PlanOutcome::AlreadyStored | PlanOutcome::Outdated => {}
        }
    }
    Ok(())
}

struct PolicyReset<'a>(&'a Inner);

impl Drop for PolicyReset<'_> {
    fn drop(&mut self) {
        self.0.input(Input::Cancelled);
    }
}

fn join_error(e: tokio::task::JoinError) -> Error {
    if e.is_cancelled() { Error::Cancelled } else { Error::Engine(format!("sync task: {e}")) }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PhaseError + '_ {
    move |source| PhaseError::Fatal(Error::Io { path: path.display().to_string(), source })
}

/// What a resumable download fetches.
enum Fetch<'a> {
    Blob(&'a str),
    Zip { path: &'a str, bundle_id: &'a str, version: u64 },
}

impl Fetch<'_> {
    /// For errors and logs.
    fn label(&self) -> String {
        match self {
            Fetch::Blob(hex) => format!("blob {hex}"),
            Fetch::Zip { bundle_id, version, .. } => format!("bundle {bundle_id}@{version} zip"),
        }
    }
}

/// The total length in a `Content-Range: bytes a-b/total` value.
fn content_range_total(value: &str) -> Option<u64> {
    value.rsplit_once('/').and_then(|(_, t)| t.trim().parse().ok())
}

fn remove(path: &Path) -> Result<(), PhaseError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The SHA-256 of a downloaded file, through the bundle crate's content addressing.
fn hash_file(path: &Path) -> Result<Sha256Digest, PhaseError> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let (digest, _) = edetail_bundle::digest::hash_reader(std::io::BufReader::with_capacity(64 * 1024, f)).map_err(io_err(path))?;
    Ok(digest)
}

/// A phase's failure: retryable network/hub failure, or a local one that stops the sync.
enum PhaseError {
    Http(HttpFailure),
    Fatal(Error),
}

impl From<HttpFailure> for PhaseError {
    fn from(f: HttpFailure) -> Self {
        PhaseError::Http(f)
    }
}

impl From<edetail_core::Error> for PhaseError {
    fn from(e: edetail_core::Error) -> Self {
        PhaseError::Fatal(Error::Core(e))
    }
}

impl From<Error> for PhaseError {
    fn from(e: Error) -> Self {
        PhaseError::Fatal(e)
    }
}
