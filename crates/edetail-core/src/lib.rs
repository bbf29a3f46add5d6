//! edetail-core: the on-device runtime. It works fully offline, survives the app being killed at
//! any instant, and never loses or duplicates a recorded interaction.
//!
//! - [`store`] + [`blobs`]: the content catalogue and content-addressed blob store; atomic
//!   installs from zips or blob by blob; rollback, revocation, GC.
//! - [`validity`]: trusted time and whether content may be opened.
//! - [`assets`]: resolving `(bundle, path, range)` for the WebView, plus the runtime's scripts.
//! - [`context`]: the opened data directory every part works on (databases, content store,
//!   trusted clock and event stamps, configuration).
//! - [`calls`], [`outbox`]: calls, slide views, dwell, and the durable append-only event log;
//!   [`navigation`]: where next/previous/goto lead, as pure functions over a manifest.
//! - `tracking`, [`privacy`]: stored tracking levels; erasures and consents from the hub.
//! - [`profile`]: local interest profile and suggested order per HCP.
//! - [`plans`]: the hub's signed per-HCP plans, and which [`suggestion`] a call offers.
//! - [`sequence`]: the rep's call sequence per HCP and bundle, built from the plan on the
//!   tablet (mandatory slides kept, hidden ones unavailable), saved, recorded with the call,
//!   whose next/previous then follow it.
//! - [`observe`]: live observers of a call's changes (moves, slide state), told after commit
//!   (remote detailing relays them); [`remote_sessions`]: the remote sessions this device
//!   opened, remembered so that a session outlives the app.
//! - [`device`]: the `Device` facade over all of it, with views (`device.calls()`, ...).
//! - [`bridge`]: the slide bridge protocol (`bridge::handle(&device, json)`), above the facade.
//! - [`vendor`]: the container side of Veeva, Agnitio and OCE decks' own libraries, above the
//!   facade.
//!
//! Layering (no module imports one above it): `observe` -> `context` -> `calls`/`outbox`/`plans`/`privacy`/
//! `profile`/`remote_sessions` -> `sequence` -> `device` -> `bridge`/`vendor`.
//!
//! No tokio, no HTTP client: the sync engine (edetail-sync) drives network I/O on top.

pub mod assets;
pub mod blobs;
pub mod bridge;
pub mod calls;
pub mod clock;
pub mod context;
pub mod db;
pub mod device;
pub mod error;
pub mod navigation;
pub mod observe;
pub mod outbox;
pub mod plans;
pub mod privacy;
pub mod profile;
pub mod remote_sessions;
pub mod sequence;
pub mod store;
pub mod suggestion;
mod tracking;
pub mod validity;
pub mod vendor;

pub use calls::{Call, CallStarted, CallStatus, Calls, Channel, NavSource, Reaction, SlideView, StartCall};
pub use clock::{Clock, ManualClock, SystemClock};
pub use context::{DeviceConfig, SyncCursor};
pub use db::DbKey;
pub use device::Device;
pub use edetail_protocol::Tracking;
pub use edetail_protocol::payload::AdvocacyAction;
pub use error::{Error, Result};
pub use navigation::{NavAction, NavTarget};
pub use observe::{CallChange, CallObserver, CallSubscription};
pub use outbox::{BatchAnswer, Event, Outbox, OutboxStats, PendingUpload};
pub use plans::{OfferedPlan, PlanOutcome, PlanRefusal, PlanReport, Plans, StoredPlan};
pub use privacy::{ERASED_EVENT, LocalErasure, Privacy};
pub use profile::Profile;
pub use remote_sessions::{RemoteSessionRecord, RemoteSessions};
pub use sequence::{CallSequence, ItemOrigin, SequenceItem, Sequences};
pub use store::{GcReport, InstallOutcome, InstalledBundle, MissingBlob, PendingDownload};
pub use suggestion::{SuggestedSlide, Suggestion, SuggestionSource};
