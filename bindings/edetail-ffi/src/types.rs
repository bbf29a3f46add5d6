//! Records and enums that cross the FFI (become Kotlin data classes, Swift structs, Python
//! dataclasses), and their conversions from the core's types. Times are milliseconds since the
//! Unix epoch (UTC), which every platform converts without a date library.

use edetail_core::{Channel, NavAction, NavTarget, Reaction, Suggestion, SuggestionSource};

/// How to open a rep's data directory.
#[derive(Clone, uniffi::Record)]
pub struct DeviceOptions {
    /// The rep's own data directory (one per signed-in rep; never shared between reps).
    pub data_dir: String,
    /// The signed-in rep's id (an id, never a name).
    pub rep_id: String,
    /// Trusted publisher public keys, each the text of an `edetail key new` `.pub` file. Include
    /// the hub's plan key: per-HCP plans signed by any other key are refused.
    pub publisher_keys: Vec<String>,
    /// Accept unsigned bundles (preview and authoring builds only).
    #[uniffi(default = false)]
    pub allow_unsigned: bool,
    /// Refuse to open content when the last sync is older than this many hours (None: no limit).
    #[uniffi(default = None)]
    pub max_offline_hours: Option<u32>,
    /// The 32-byte SQLCipher key of the rep's database, from the platform keystore (Android
    /// Keystore-wrapped / iOS Keychain). None: an unencrypted database. Never logged.
    #[uniffi(default = None)]
    pub db_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for DeviceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceOptions")
            .field("data_dir", &self.data_dir)
            .field("rep_id", &self.rep_id)
            .field("publisher_keys", &self.publisher_keys.len())
            .field("allow_unsigned", &self.allow_unsigned)
            .field("max_offline_hours", &self.max_offline_hours)
            .field("db_key", &self.db_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Whether a bundle can be presented now.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ContentStatus {
    Ready,
    NotYetValid,
    Expired,
    Revoked,
    /// The device must sync before presenting again (offline too long).
    SyncRequired,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct SlideInfo {
    pub id: String,
    pub title: String,
    /// URL path of the slide's page under the shell's origin (`/<bundle>/<entry>`).
    pub url: String,
    /// URL path of the thumbnail, when the slide has one.
    pub thumbnail_url: Option<String>,
    pub key_message: Option<String>,
    pub topics: Vec<String>,
    pub hidden: bool,
    /// The JavaScript API the slide expects (manifest `bridge`): native shells add
    /// `/_edetail/veeva-clm.js` to the runtime scripts of `Veeva` slides (ADR 0013).
    pub bridge: BridgeKind,
}

/// A slide's manifest `bridge`: which vendor's API its scripts call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum BridgeKind {
    Edetail,
    Veeva,
    Agnitio,
    Oce,
}

impl From<edetail_bundle::Bridge> for BridgeKind {
    fn from(b: edetail_bundle::Bridge) -> Self {
        match b {
            edetail_bundle::Bridge::Edetail => BridgeKind::Edetail,
            edetail_bundle::Bridge::Veeva => BridgeKind::Veeva,
            edetail_bundle::Bridge::Agnitio => BridgeKind::Agnitio,
            edetail_bundle::Bridge::Oce => BridgeKind::Oce,
        }
    }
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct PresentationInfo {
    pub id: String,
    pub title: String,
    /// Jump targets only (e.g. prescribing information): not in the deck picker.
    pub hidden: bool,
    pub slide_ids: Vec<String>,
}

/// An installed bundle as the app lists it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BundleInfo {
    pub bundle_id: String,
    pub version: u64,
    pub title: String,
    pub product: String,
    pub approval_code: String,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    pub status: ContentStatus,
    /// Why it cannot be opened (for the UI), when `status` is not `Ready`.
    pub status_reason: Option<String>,
    pub total_bytes: u64,
    pub presentations: Vec<PresentationInfo>,
    pub slides: Vec<SlideInfo>,
    /// A newer version being downloaded, if any.
    pub update: Option<DownloadInfo>,
}

/// A version the device has accepted and is downloading (or will resume downloading).
#[derive(Debug, Clone, uniffi::Record)]
pub struct DownloadInfo {
    pub bundle_id: String,
    pub version: u64,
    pub title: String,
    pub missing_files: u64,
    pub missing_bytes: u64,
    pub total_bytes: u64,
}

impl From<edetail_core::PendingDownload> for DownloadInfo {
    fn from(p: edetail_core::PendingDownload) -> Self {
        DownloadInfo {
            bundle_id: p.bundle_id,
            version: p.version,
            title: p.title,
            missing_files: p.missing_files,
            missing_bytes: p.missing_bytes,
            total_bytes: p.total_size,
        }
    }
}

/// The result of installing a bundle zip.
#[derive(Debug, Clone, uniffi::Record)]
pub struct InstallResult {
    pub bundle_id: String,
    pub version: u64,
    /// False when this exact version was already active.
    pub activated: bool,
    pub files_written: u64,
    pub files_reused: u64,
}

/// How much of a call with an HCP is recorded, as the hub's consent record says (no record:
/// `Full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConsentLevel {
    /// Recorded and uploaded with the HCP id.
    Full,
    /// Recorded and uploaded without the HCP id; no plan or suggestion for the HCP.
    Anonymous,
    /// Nothing recorded; content still opens and displays.
    Off,
}

impl From<edetail_core::Tracking> for ConsentLevel {
    fn from(t: edetail_core::Tracking) -> Self {
        match t {
            edetail_core::Tracking::Full => ConsentLevel::Full,
            edetail_core::Tracking::Anonymous => ConsentLevel::Anonymous,
            edetail_core::Tracking::Off => ConsentLevel::Off,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CallChannel {
    FaceToFace,
    Remote,
}

impl From<CallChannel> for Channel {
    fn from(c: CallChannel) -> Self {
        match c {
            CallChannel::FaceToFace => Channel::FaceToFace,
            CallChannel::Remote => Channel::Remote,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ReactionKind {
    Positive,
    Neutral,
    Negative,
}

impl From<ReactionKind> for Reaction {
    fn from(r: ReactionKind) -> Self {
        match r {
            ReactionKind::Positive => Reaction::Positive,
            ReactionKind::Neutral => Reaction::Neutral,
            ReactionKind::Negative => Reaction::Negative,
        }
    }
}

/// What an HCP did that shows advocacy (recorded as an `advocacy` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AdvocacyAction {
    /// Agreed to speak to peers (speaker programme, round table, congress).
    AgreedToSpeak,
    /// Referred a colleague to the rep or the product.
    ReferredColleague,
    /// Shared the follow-up microsite (or approved material) with a colleague.
    SharedMicrosite,
}

impl From<AdvocacyAction> for edetail_core::AdvocacyAction {
    fn from(a: AdvocacyAction) -> Self {
        match a {
            AdvocacyAction::AgreedToSpeak => edetail_core::AdvocacyAction::AgreedToSpeak,
            AdvocacyAction::ReferredColleague => edetail_core::AdvocacyAction::ReferredColleague,
            AdvocacyAction::SharedMicrosite => edetail_core::AdvocacyAction::SharedMicrosite,
        }
    }
}

/// Where a slide of a call sequence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SequenceOrigin {
    /// One of the hub plan's slides.
    Plan,
    /// The starting order without a plan (local suggestion or deck order), or a mandatory slide
    /// the manifest requires.
    Start,
    /// Added by the rep.
    Added,
}

/// One slide of a call sequence.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SequenceSlide {
    pub slide_id: String,
    pub presentation_id: String,
    /// Fair balance (safety information / ISI): shown in every call, cannot be removed.
    pub mandatory: bool,
    pub origin: SequenceOrigin,
}

/// The rep's sequence for one HCP on one bundle, saved on the device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CallSequence {
    pub sequence_id: String,
    pub bundle_id: String,
    /// The hub plan it started from (`None`: local suggestion or deck order).
    pub plan_id: Option<String>,
    /// The plan's experiment arm, `treatment` or `holdout`.
    pub arm: Option<String>,
    /// The plan's slide ids in plan order (empty without a hub plan).
    pub planned: Vec<String>,
    /// The slides to present, in order.
    pub slides: Vec<SequenceSlide>,
    pub updated_at_ms: i64,
}

impl From<edetail_core::CallSequence> for CallSequence {
    fn from(s: edetail_core::CallSequence) -> Self {
        CallSequence {
            sequence_id: s.sequence_id,
            bundle_id: s.bundle_id,
            plan_id: s.plan_id,
            arm: s.arm,
            planned: s.planned,
            slides: s
                .items
                .into_iter()
                .map(|i| SequenceSlide {
                    slide_id: i.slide_id,
                    presentation_id: i.presentation_id,
                    mandatory: i.mandatory,
                    origin: match i.origin {
                        edetail_core::ItemOrigin::Plan => SequenceOrigin::Plan,
                        edetail_core::ItemOrigin::Start => SequenceOrigin::Start,
                        edetail_core::ItemOrigin::Added => SequenceOrigin::Added,
                    },
                })
                .collect(),
            updated_at_ms: s.updated_at.timestamp_millis(),
        }
    }
}

/// A navigation the shell asks for (swipes, arrows, the overview).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Navigation {
    Next,
    Previous,
    ToSlide { slide_id: String },
    ToPresentation { presentation_id: String },
}

impl From<Navigation> for NavAction {
    fn from(n: Navigation) -> Self {
        match n {
            Navigation::Next => NavAction::Next,
            Navigation::Previous => NavAction::Previous,
            Navigation::ToSlide { slide_id } => NavAction::Goto { slide: Some(slide_id), presentation: None, key_message: None },
            Navigation::ToPresentation { presentation_id } => {
                NavAction::Goto { slide: None, presentation: Some(presentation_id), key_message: None }
            }
        }
    }
}

/// Where navigation landed: the shell loads `url` (a path under its origin).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SlideTarget {
    pub slide_id: String,
    pub presentation_id: String,
    pub url: String,
    /// False for "next" on the last slide or "previous" on the first: nothing was recorded and
    /// the shell must not reload the slide.
    pub moved: bool,
}

impl From<NavTarget> for SlideTarget {
    fn from(t: NavTarget) -> Self {
        SlideTarget { slide_id: t.slide, presentation_id: t.presentation, url: t.url, moved: t.moved }
    }
}

/// A call just started, and the first slide to show.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CallStart {
    pub call_id: String,
    pub first: SlideTarget,
    /// What to present to this HCP, best first: the hub's plan for this HCP when the device has
    /// a valid one, else the local suggestion from earlier calls on this device (slide ids;
    /// empty without an HCP). The same slides as `plan.slides`.
    pub suggested_slides: Vec<String>,
    /// The suggestion with its source and reasons; `None` when the call has no HCP.
    pub plan: Option<CallPlan>,
}

/// Where a call's suggested order comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PlanSource {
    /// The hub's signed plan for this HCP (valid now, every slide in the installed version).
    Hub,
    /// This device's own history with the HCP (works offline; the fallback).
    Local,
}

/// What to present to an HCP, in order, and why.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CallPlan {
    pub source: PlanSource,
    /// The hub plan's id (`None` for a local suggestion); recorded in the call's `call_started`.
    pub plan_id: Option<String>,
    /// The HCP's adoption stage per the hub: unaware, aware, educated, convinced, advocate
    /// (`None` for a local suggestion).
    pub stage: Option<String>,
    /// One line per reason behind the plan as a whole (stage, strongest interests).
    pub reasons: Vec<String>,
    /// Slides to present, in order.
    pub slides: Vec<PlanSlide>,
}

/// One slide of a plan and why it is there.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PlanSlide {
    pub slide_id: String,
    pub presentation_id: String,
    pub reason: String,
}

impl From<Suggestion> for CallPlan {
    fn from(s: Suggestion) -> Self {
        let (source, plan_id, stage) = match s.source {
            SuggestionSource::Hub { plan_id, stage } => (PlanSource::Hub, Some(plan_id), Some(stage)),
            SuggestionSource::Local => (PlanSource::Local, None, None),
        };
        CallPlan {
            source,
            plan_id,
            stage,
            reasons: s.reasons,
            slides: s
                .slides
                .into_iter()
                .map(|x| PlanSlide { slide_id: x.slide_id, presentation_id: x.presentation_id, reason: x.reason })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct CallInfo {
    pub call_id: String,
    pub hcp_id: Option<String>,
    pub channel: String,
    /// open, completed, interrupted.
    pub status: String,
    pub bundle_id: Option<String>,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub current_slide_id: Option<String>,
}

impl From<edetail_core::Call> for CallInfo {
    fn from(c: edetail_core::Call) -> Self {
        CallInfo {
            call_id: c.id,
            hcp_id: c.hcp_id,
            channel: c.channel,
            status: c.status,
            bundle_id: c.bundle_id,
            started_at_ms: c.started_at.timestamp_millis(),
            ended_at_ms: c.ended_at.map(|t| t.timestamp_millis()),
            current_slide_id: c.slide_id,
        }
    }
}

/// What a recorded interaction was given (for the app's own bookkeeping).
#[derive(Debug, Clone, uniffi::Record)]
pub struct Recorded {
    /// Device sequence number.
    pub seq: i64,
    /// The event's idempotency key.
    pub uuid: String,
}

impl From<(i64, String)> for Recorded {
    fn from((seq, uuid): (i64, String)) -> Self {
        Recorded { seq, uuid }
    }
}

/// The outbox, for a "not yet synced" badge.
#[derive(Debug, Clone, uniffi::Record)]
pub struct OutboxStatus {
    /// Recorded, not yet acknowledged by the hub.
    pub pending: u64,
    /// Refused by the hub permanently, kept with the reason (support can see them).
    pub parked: u64,
    pub acknowledged: u64,
}
