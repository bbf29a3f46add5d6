//! `Device`: one signed-in rep's data directory, opened. The small facade the FFI layer, the
//! sync engine and the CLI use: opening, content (install, open checks), assets, the trusted
//! clock, starting calls (consent, plan and call together), and views borrowing its
//! [`Context`]: [`Device::calls`], [`Device::outbox`], [`Device::plans`], [`Device::privacy`],
//! [`Device::profile`], [`Device::sequences`], [`Device::remote_sessions`]. The slide bridge and
//! the vendor containers sit above it and take a `&Device`.

use std::path::Path;

use chrono::{DateTime, Utc};
use edetail_protocol::Tracking;

use crate::assets::AssetResolver;
use crate::calls::{self, Calls, Opening};
use crate::clock::to_ms;
use crate::context::Context;
use crate::db::{Databases, DbKey};
use crate::error::Result;
use crate::navigation::OrderedSlide;
use crate::observe::{CallObserver, CallSubscription};
use crate::outbox::{BatchAnswer, Outbox};
use crate::plans::Plans;
use crate::privacy::Privacy;
use crate::profile::Profile;
use crate::remote_sessions::RemoteSessions;
use crate::sequence::Sequences;
use crate::store::{ContentStore, InstallOutcome};
use crate::validity::Unopenable;

pub use crate::calls::{CallStarted, Channel, StartCall};
pub use crate::context::{DB_FILE, DeviceConfig, SyncCursor};
pub use crate::navigation::{NavAction, NavTarget};

/// An open data directory.
#[derive(Debug)]
pub struct Device {
    ctx: Context,
}

impl Device {
    /// Opens (creating if needed) a rep's data directory. Calls left open by a crash are marked
    /// interrupted, their open slide views closed at the last heartbeat.
    pub fn open(dir: &Path, config: DeviceConfig) -> Result<Device> {
        let ctx = Context::open(dir, config)?;
        let stamp = ctx.stamp();
        let recovered = ctx.databases().write(|tx| calls::recover_interrupted(tx, stamp))?;
        if !recovered.is_empty() {
            tracing::info!(count = recovered.len(), "recovered interrupted calls");
        }
        Ok(Device { ctx })
    }

    /// Encrypts the plain database of a data directory (not open by any `Device`) with `key`,
    /// through `sqlcipher_export` into a new file that then replaces the old one. Opening a plain
    /// database with a key is an error, never a silent migration: the app calls this once.
    pub fn encrypt_existing(dir: &Path, key: &DbKey) -> Result<()> {
        Context::encrypt_existing(dir, key)
    }

    pub fn dir(&self) -> &Path {
        self.ctx.dir()
    }

    pub fn rep_id(&self) -> &str {
        self.ctx.rep_id()
    }

    /// This device's stable id (created with the data directory).
    pub fn device_id(&self) -> Result<String> {
        self.ctx.device_id()
    }

    pub fn content(&self) -> &ContentStore {
        self.ctx.content()
    }

    pub fn assets(&self) -> AssetResolver<'_> {
        AssetResolver { store: self.ctx.content() }
    }

    pub fn databases(&self) -> &Databases {
        self.ctx.databases()
    }

    /// Calls: starting is [`Device::start_call`]; navigating, recording, ending and listing.
    pub fn calls(&self) -> Calls<'_> {
        Calls::new(&self.ctx)
    }

    /// The durable event outbox: reading, acknowledging, parking, compacting.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox::new(self.ctx.databases())
    }

    /// The hub's signed per-HCP plans and which suggestion a call offers.
    pub fn plans(&self) -> Plans<'_> {
        Plans::new(&self.ctx)
    }

    /// Erasures and tracking consents from the hub.
    pub fn privacy(&self) -> Privacy<'_> {
        Privacy::new(&self.ctx)
    }

    /// The local interest profile and suggested order per HCP.
    pub fn profile(&self) -> Profile<'_> {
        Profile::new(&self.ctx)
    }

    /// The rep's call sequences per HCP and bundle, built from the plan on the tablet.
    pub fn sequences(&self) -> Sequences<'_> {
        Sequences::new(&self.ctx)
    }

    /// The remote sessions this device opened and has not seen end (remote detailing presents
    /// them again after the app restarts).
    pub fn remote_sessions(&self) -> RemoteSessions<'_> {
        RemoteSessions::new(&self.ctx)
    }

    /// Observes a call's changes (every move, whatever made it, and every slide-state save),
    /// told after they committed, until the subscription is dropped. See `observe`.
    pub fn observe_call(&self, call_id: &str, observer: CallObserver) -> CallSubscription {
        self.ctx.observers().subscribe(call_id, observer)
    }

    /// Trusted time (never runs backwards; see `validity`). Persists the floor.
    pub fn trusted_now(&self) -> Result<DateTime<Utc>> {
        self.ctx.trusted_now()
    }

    /// The hub's answer to an uploaded batch (events it holds, events it rejected, by seq) and
    /// its clock, applied in one transaction; answers how many events were newly acknowledged.
    pub fn settle_upload(&self, answer: &BatchAnswer<'_>, now_ms: i64, hub_now: DateTime<Utc>) -> Result<usize> {
        self.ctx.settle_upload(answer, now_ms, hub_now)
    }

    /// The hub's clock at a successful sync.
    pub fn observe_hub_time(&self, hub_now: DateTime<Utc>) -> Result<()> {
        self.ctx.observe_hub_time(hub_now)
    }

    /// Where sync with the hub stands (kept in the database for edetail-sync).
    pub fn sync_cursor(&self) -> Result<SyncCursor> {
        self.ctx.sync_cursor()
    }

    /// Stores where sync with the hub stands.
    pub fn set_sync_cursor(&self, cursor: &SyncCursor) -> Result<()> {
        self.ctx.set_sync_cursor(cursor)
    }

    /// Installs a bundle zip (see [`ContentStore::install_zip`]).
    pub fn install_zip(&self, path: &Path) -> Result<InstallOutcome> {
        let now = to_ms(self.trusted_now()?);
        self.ctx.content().install_zip(path, now)
    }

    /// Whether a bundle may be opened now; the reason when not.
    pub fn check_openable(&self, bundle_id: &str) -> Result<()> {
        self.ctx.check_openable(bundle_id)
    }

    /// Why a bundle cannot be opened now, if it cannot (for the app's content list).
    pub fn unopenable_reason(&self, bundle_id: &str) -> Result<Option<Unopenable>> {
        self.ctx.unopenable_reason(bundle_id)
    }

    /// Starts a call on an openable bundle and enters its first slide. Returns the call id.
    /// `call_started` names the hub plan offered for the HCP (`plan_id`, null when none).
    pub fn start_call(&self, start: StartCall) -> Result<(String, NavTarget)> {
        self.check_openable(&start.bundle_id)?;
        let plan_id = match (&start.hcp_id, calls::tracking_for(&self.ctx, &start)?) {
            (Some(h), Tracking::Full) => self.plans().plan_for(h, &start.bundle_id)?.map(|p| p.plan_id),
            _ => None,
        };
        self.calls().begin(start, plan_id)
    }

    /// [`Device::start_call`], also answering what to offer the HCP: the hub's plan when valid,
    /// else the local suggestion (`None` without an HCP). The offered plan's id is recorded in
    /// `call_started` so the hub can measure whether plans are followed.
    pub fn start_call_with_suggestion(&self, start: StartCall) -> Result<CallStarted> {
        self.check_openable(&start.bundle_id)?;
        // No per-HCP plan or profile unless the HCP consents to full tracking.
        let suggestion = match (&start.hcp_id, calls::tracking_for(&self.ctx, &start)?) {
            (Some(h), Tracking::Full) => Some(self.plans().suggestion(h, &start.bundle_id)?),
            _ => None,
        };
        let plan_id = suggestion.as_ref().and_then(|s| s.plan_id().map(str::to_string));
        let (call_id, first) = self.calls().begin(start, plan_id)?;
        Ok(CallStarted { call_id, first, suggestion })
    }

    /// Starts a call with the HCP of one of this rep's sequences, on its bundle, presenting the
    /// sequence: the call enters its first slide and records one `call_plan` event (planned,
    /// kept, dropped, added, order: slide ids only) right after `call_started`, in the same
    /// transaction. The sequence is held to the active version first (a slide it names that the
    /// version lacks is an error; a mandatory slide it lacks is appended). `call_started` names
    /// the plan the sequence started from. Follows the HCP's consent: anonymous calls record
    /// the `call_plan` with `added` and `order` only (no plan id, arm, sequence id or planned
    /// slides); calls with consent off record nothing. `suggestion` is `None`: the sequence is the order.
    /// The call keeps the sequence's order as it is now (slide and presentation per item, in
    /// the same transaction): its next/previous follow that order from a slide of it (see
    /// [`Calls::navigate`]); later edits of the saved sequence are for the next call.
    pub fn start_call_from_sequence(&self, sequence_id: &str, channel: Channel, location: Option<String>) -> Result<CallStarted> {
        let seq = self.sequences().for_call(sequence_id)?;
        let start =
            StartCall { hcp_id: Some(seq.hcp_id.clone()), channel, bundle_id: seq.bundle_id.clone(), presentation_id: None, location };
        self.check_openable(&start.bundle_id)?;
        let full = calls::tracking_for(&self.ctx, &start)? == Tracking::Full;
        let mut call_plan = seq.call_plan();
        if !full {
            // No plan for an HCP without full consent (ADR 0011), and nothing that links the call
            // to a plan or to the HCP's other calls (the saved sequence's id): slide ids only.
            call_plan = edetail_protocol::payload::CallPlan { added: call_plan.added, order: call_plan.order, ..Default::default() };
        }
        let plan_id = call_plan.plan_id.clone();
        let first = &seq.items[0];
        let opening = Opening {
            sequence_id: seq.sequence_id.clone(),
            slide: first.slide_id.clone(),
            presentation: first.presentation_id.clone(),
            call_plan,
            order: seq
                .items
                .iter()
                .map(|i| OrderedSlide { slide_id: i.slide_id.clone(), presentation_id: i.presentation_id.clone() })
                .collect(),
        };
        let (call_id, first) = self.calls().begin_with(start, plan_id, Some(opening))?;
        Ok(CallStarted { call_id, first, suggestion: None })
    }

    /// `PRAGMA integrity_check` (support tools, crash tests).
    pub fn integrity_check(&self) -> Result<String> {
        self.ctx.databases().with_writer(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?))
    }
}
