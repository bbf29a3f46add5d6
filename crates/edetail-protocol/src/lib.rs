//! edetail-protocol: device <-> hub wire types, version 1 (`/v1`). JSON bodies (gzip allowed),
//! bearer-token auth. See `docs/protocol.md`. Pure serde, no I/O.

pub mod event;
pub mod payload;
pub mod remote;
pub mod views;

pub use event::{EventKind, KindError};
pub use payload::Payload;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Path prefix of this protocol version.
pub const PREFIX: &str = "/v1";
/// At most this many events in one upload batch.
pub const MAX_BATCH_EVENTS: usize = 500;
/// At most this many bytes in one upload body (uncompressed JSON).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// At most this many bundle offers, revocations and plans in one change-feed page.
pub const MAX_PAGE_ITEMS: usize = 100;
/// Header carrying the device's clock at the moment of the request (RFC 3339).
pub const DEVICE_TIME_HEADER: &str = "x-edetail-device-time";

/// Bytes carried as base64 in JSON (exact manifest bytes: signatures cover them as-is).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Base64Bytes(pub Vec<u8>);

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map(Base64Bytes).map_err(serde::de::Error::custom)
    }
}

/// One recorded interaction as uploaded (mirrors the device outbox row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireEvent {
    /// Client UUID: the hub's idempotency key.
    pub uuid: String,
    /// Per-device sequence number (strictly increasing, never reused).
    pub seq: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    /// The device's wall clock when recorded (raw; the hub stores a skew-corrected time beside).
    pub recorded_at: DateTime<Utc>,
    /// App process session and monotonic offset within it.
    pub session: i64,
    pub mono_ms: i64,
    pub payload: Value,
}

/// A [`WireEvent`] borrowed for encoding, its payload already JSON text (the device's outbox
/// stores it so): encodes byte for byte as the `WireEvent` with that payload does, without
/// parsing the payload into a map and writing it out again.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WireEventRef<'a> {
    pub uuid: &'a str,
    pub seq: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<&'a str>,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub recorded_at: DateTime<Utc>,
    pub session: i64,
    pub mono_ms: i64,
    pub payload: &'a serde_json::value::RawValue,
}

/// `POST /v1/events`: a batch of outbox events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadBatch {
    pub device_id: String,
    /// Unique per attempt-set of the same events; for logs and tracing only.
    pub batch_id: String,
    /// The device's clock when the batch was sent: the hub estimates the skew from it.
    pub device_time: DateTime<Utc>,
    pub events: Vec<WireEvent>,
}

/// A permanently rejected event: the device parks it with this reason, never retries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedEvent {
    pub uuid: String,
    pub reason: String,
}

/// The hub's answer to an upload: what is durable now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadAck {
    /// Newly stored by this request.
    pub accepted: Vec<String>,
    /// Already stored before (a retry or a duplicated delivery): durable all the same.
    pub duplicates: Vec<String>,
    pub rejected: Vec<RejectedEvent>,
    /// Highest device sequence number below which every event is durable or rejected.
    pub watermark: i64,
    /// Estimated device clock skew (device - hub), milliseconds.
    pub skew_ms: i64,
    pub hub_time: DateTime<Utc>,
}

/// `GET /v1/device`: who the presented device token belongs to (lets a freshly provisioned
/// tablet learn its hub device id from its token alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub device_id: String,
    pub rep_id: String,
    pub territory: String,
}

/// A bundle version the device is entitled to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleOffer {
    pub bundle_id: String,
    pub version: u64,
    /// Exact `manifest.json` bytes.
    pub manifest: Base64Bytes,
    /// Exact `manifest.sig` bytes.
    pub signature: Base64Bytes,
    /// Total content size, for progress and first-install decisions.
    pub total_size: u64,
    /// Where the whole zip can be fetched (first installs): a path under `/v1`.
    pub zip_path: String,
}

/// A bundle withdrawn by the hub: it stops opening at once on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub bundle_id: String,
    pub reason: String,
    pub revoked_at: DateTime<Utc>,
}

/// `GET /v1/changes?since=CURSOR`: one page of the device's change feed. The device applies a
/// page completely (all offers staged, revocations applied) before storing `next_cursor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePage {
    pub next_cursor: String,
    /// More pages follow immediately.
    pub has_more: bool,
    pub bundles: Vec<BundleOffer>,
    pub revocations: Vec<Revocation>,
    /// Per-HCP plans for the next call, signed by the hub. Newer plans for the same
    /// `(hcp_id, bundle_id)` replace older ones on the device.
    #[serde(default)]
    pub plans: Vec<SignedPlan>,
    /// HCPs erased on the hub (right to erasure): the device deletes everything it holds about
    /// them, including events not yet uploaded. Sent to every territory.
    #[serde(default)]
    pub erasures: Vec<Erasure>,
    /// Tracking consent per HCP, sent to every territory; the newest `updated_at` wins.
    #[serde(default)]
    pub consents: Vec<ConsentRecord>,
    pub hub_time: DateTime<Utc>,
}

/// An HCP erased on the hub: devices delete their calls, events, plans and profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub hcp_id: String,
    pub erased_at: DateTime<Utc>,
}

/// How much of a call with an HCP a device may record and upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tracking {
    /// Everything, with the HCP id.
    Full,
    /// Recorded and uploaded without the HCP id (no per-HCP plan or profile).
    Anonymous,
    /// Nothing of the call is recorded; content still displays.
    Off,
}

impl Tracking {
    /// Tracking for an HCP the hub has no consent record for.
    pub const DEFAULT: Tracking = Tracking::Full;

    pub fn as_str(self) -> &'static str {
        match self {
            Tracking::Full => "full",
            Tracking::Anonymous => "anonymous",
            Tracking::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<Tracking> {
        match s {
            "full" => Some(Tracking::Full),
            "anonymous" => Some(Tracking::Anonymous),
            "off" => Some(Tracking::Off),
            _ => None,
        }
    }
}

/// The hub's consent record for one HCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub hcp_id: String,
    pub tracking: Tracking,
    pub updated_at: DateTime<Utc>,
}

/// A plan travelling in the change feed: the exact bytes of a JSON [`Plan`] and a detached
/// ed25519 signature over them (the same signature format as `manifest.sig`, made with the
/// hub's plan key, which the device must trust like a publisher key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPlan {
    pub plan: Base64Bytes,
    pub signature: Base64Bytes,
}

/// The hub's answer to one HCP for the next call on one bundle: which approved slides, in what
/// order, and why. A plan only selects and orders slides of an approved bundle by id; it never
/// carries or alters content. The device ignores a plan naming a slide its active version of
/// the bundle lacks, and falls back to its local suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Unique per generated plan.
    pub plan_id: String,
    pub hcp_id: String,
    pub territory: String,
    pub product: String,
    pub bundle_id: String,
    /// The bundle version the plan was made against (slide ids are stable across versions).
    pub bundle_version: u64,
    /// Adoption stage of this HCP for `product`: unaware, aware, educated, convinced, advocate.
    pub stage: String,
    pub generated_at: DateTime<Utc>,
    /// After this the device stops offering the plan.
    pub valid_until: DateTime<Utc>,
    /// Slides to show, in order.
    pub items: Vec<PlanItem>,
    /// Slides deliberately left out, with why (e.g. awareness slides for an educated HCP).
    #[serde(default)]
    pub skipped: Vec<PlanItem>,
    /// One line per reason behind the plan as a whole (stage, strongest interests).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// The stage the plan aims to move the HCP to (the next step of the adoption ladder);
    /// absent in plans made before objectives existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<String>,
    /// The HCP's arm of the built-in experiment: `treatment` (a personalized plan) or
    /// `holdout` (the deck's default order, to measure the plans' effect against).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
}

/// One slide of a plan and why it is there (or left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanItem {
    pub slide_id: String,
    pub presentation_id: String,
    pub reason: String,
    /// Short descriptions of the evidence behind the reason (no personal data, no free text
    /// the HCP said: topics, counts, event kinds).
    #[serde(default)]
    pub evidence: Vec<String>,
    /// Shown in every promotional call (fair balance: safety information / ISI); a rep cannot
    /// remove it from the call's sequence.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mandatory: bool,
}

/// `POST /v1/publish` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishResult {
    pub bundle_id: String,
    pub version: u64,
    pub blobs_new: usize,
    pub blobs_existing: usize,
    pub territories: Vec<String>,
}

/// Error categories; the client's retry policy keys on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing, wrong, expired or revoked token (401).
    Unauthorized,
    /// Authenticated but not allowed (403): another rep's device, another territory.
    Forbidden,
    NotFound,
    /// Malformed body or parameters (400).
    BadRequest,
    /// Body over the limit (413).
    TooLarge,
    /// Publishing a version not higher than the current one (409).
    VersionConflict,
    /// Bundle rejected by validation (422).
    InvalidBundle,
    /// Slow down (429), see `retry_after_ms`.
    RateLimited,
    /// Temporarily unavailable (503), see `retry_after_ms`.
    Unavailable,
    /// Anything else on the hub's side (500).
    Internal,
}

/// Every non-2xx response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}
