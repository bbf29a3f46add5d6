//! edetail-core: the on-device runtime. It works fully offline, survives the app being killed at
//! any instant, and never loses or duplicates a recorded interaction.
//!
//! - [`store`] + [`blobs`]: the content catalogue and content-addressed blob store; atomic
//!   installs from zips or blob by blob; rollback, revocation, GC.
//! - [`validity`]: trusted time and whether content may be opened.
//! - [`assets`]: resolving `(bundle, path, range)` for the WebView, plus the runtime's scripts.
//! - [`calls`], [`outbox`]: calls, slide views, dwell, and the durable append-only event log.
//! - [`bridge`]: the slide bridge protocol (`handle_bridge_message`).
//! - [`vendor`]: the container side of Veeva, Agnitio and OCE decks' own libraries.
//! - [`profile`]: local interest profile and suggested order per HCP.
//! - [`plans`]: the hub's signed per-HCP plans, and which suggestion a call offers.
//! - [`device`]: the `Device` facade over all of it.
//!
//! No tokio, no HTTP client: the sync engine (edetail-sync) drives network I/O on top.

pub mod assets;
pub mod blobs;
pub mod bridge;
pub mod calls;
pub mod clock;
pub mod db;
pub mod device;
pub mod error;
pub mod outbox;
pub mod plans;
pub mod privacy;
pub mod profile;
pub mod store;
pub mod validity;
pub mod vendor;

pub use calls::{Call, CallStatus, Channel, NavSource, Reaction, SlideView};
pub use clock::{Clock, ManualClock, SystemClock};
pub use db::DbKey;
pub use device::{CallStarted, Device, DeviceConfig, NavAction, NavTarget, StartCall};
pub use edetail_protocol::Tracking;
pub use error::{Error, Result};
pub use outbox::{Event, OutboxStats};
pub use plans::{OfferedPlan, PlanOutcome, PlanRefusal, PlanReport, SuggestedSlide, Suggestion, SuggestionSource};
pub use privacy::{ERASED_EVENT, LocalErasure};
pub use store::{GcReport, InstallOutcome, InstalledBundle, MissingBlob, PendingDownload};
