//! The dashboard's view models: plain data, computed by a [`super::DashboardSource`] (the
//! analytics engine over the hub's store) and rendered by this module. Serializable so the same
//! values can be exported as JSON (tests write them as expectations).
//!
//! HCPs appear only by their pseudonymous ids (the hub has no names). No field carries free
//! text from events: titles come from approved bundle manifests, topics and stages are
//! controlled vocabularies, evidence lines are short descriptions the analytics engine writes
//! (counts, event kinds, topics).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One published deck on the overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeckSummary {
    pub bundle_id: String,
    /// From the bundle manifest.
    pub title: String,
    pub product: String,
    /// Current published version.
    pub version: u64,
    /// Calls in which the deck was presented.
    pub calls: u64,
    /// Slide views across those calls.
    pub views: u64,
}

/// A deck's performance, for every HCP or one segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeckView {
    pub bundle_id: String,
    pub title: String,
    pub product: String,
    pub version: u64,
    /// Segments with data for this deck (the selector offers them), sorted.
    pub segments: Vec<String>,
    /// The segment these numbers are for; `None`: every HCP.
    pub segment: Option<String>,
    /// Calls counted.
    pub calls: u64,
    /// Slides in deck order.
    pub slides: Vec<SlideRow>,
    /// Calls per channel (face-to-face, remote, …) for this deck and segment.
    pub channels: Vec<ChannelCount>,
}

/// One slide's numbers within a [`DeckView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlideRow {
    pub slide_id: String,
    pub title: String,
    pub presentation_id: String,
    pub topics: Vec<String>,
    pub views: u64,
    /// Median time on the slide per view.
    pub median_dwell_ms: u64,
    /// Share (0..=1) of the calls that reached this slide and ended on it.
    pub drop_off: f64,
    pub reactions_positive: u64,
    pub reactions_neutral: u64,
    pub reactions_negative: u64,
    /// Views the HCP asked for (navigation led by the HCP rather than the rep's flow).
    pub hcp_led: u64,
}

/// A count of calls on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelCount {
    pub channel: String,
    pub calls: u64,
}

/// One HCP on the HCP list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HcpRow {
    /// Pseudonymous id.
    pub hcp_id: String,
    pub segment: Option<String>,
    pub calls: u64,
    pub last_call_at: Option<DateTime<Utc>>,
    /// Current adoption stage per product.
    pub stages: Vec<ProductStage>,
    /// Strongest interest, if any.
    pub top_topic: Option<String>,
    /// Territories whose devices called on her, by name.
    #[serde(default)]
    pub territories: Vec<String>,
}

/// One page of the HCP list: the rows, how many HCPs match the filters, and the query (for the
/// page's filter, sort and paging links).
#[derive(Debug, Clone, Serialize)]
pub struct HcpList {
    pub rows: Vec<HcpRow>,
    pub total: u64,
    /// The territories the list can be filtered by, by name.
    pub territories: Vec<String>,
    #[serde(skip)]
    pub query: crate::store::HcpQuery,
}

/// The overview's HCP figures: how many HCPs, and one count per HCP and product per stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HcpOverview {
    pub total: u64,
    pub stages: Vec<(String, u64)>,
}

/// Adoption stage of an HCP for one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductStage {
    pub product: String,
    /// unaware, aware, educated, convinced, advocate.
    pub stage: String,
}

/// Everything the hub knows about one HCP, and its answer to them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HcpView {
    pub hcp_id: String,
    pub segment: Option<String>,
    pub calls_by_channel: Vec<ChannelCount>,
    /// Interest profile, strongest first.
    pub topics: Vec<TopicRow>,
    pub key_messages: Vec<KeyMessageRow>,
    /// One per product with a stage.
    pub stages: Vec<StageView>,
    /// The current plan for the next call, if one was generated.
    pub plan: Option<edetail_protocol::Plan>,
    pub microsites: Vec<MicrositeRow>,
    /// Prescription counts per period and product (from the customer's data feed).
    pub prescriptions: Vec<RxRow>,
    /// Calls and slide views per period, oldest first (same periods as `prescriptions`).
    pub engagement_by_period: Vec<EngagementRow>,
}

/// One topic of an HCP's interest profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicRow {
    pub topic: String,
    /// Interest score (higher: stronger); rendered with two decimals.
    pub score: f64,
    pub views: u64,
    /// Short descriptions of what the score rests on.
    pub evidence: Vec<String>,
}

/// A key message delivered to an HCP.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyMessageRow {
    pub key_message: String,
    /// Times it was shown.
    pub views: u64,
    /// Total time on it.
    pub dwell_ms: u64,
    pub last_at: Option<DateTime<Utc>>,
}

/// An HCP's adoption stage for one product, and how it got there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageView {
    pub product: String,
    pub stage: String,
    /// Transitions, oldest first.
    pub history: Vec<StageStep>,
}

/// One stage transition and the rule that made it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageStep {
    pub at: DateTime<Utc>,
    pub from: String,
    pub to: String,
    pub rule: String,
    pub evidence: Vec<String>,
}

/// A personal microsite sent to an HCP after a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MicrositeRow {
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub topics: Vec<String>,
    pub views: u64,
}

/// Prescriptions of one product in one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RxRow {
    /// e.g. "2026-10" (sorted as text).
    pub period: String,
    pub product: String,
    pub count: u64,
}

/// Engagement in one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngagementRow {
    pub period: String,
    pub calls: u64,
    pub views: u64,
}

/// Reach per channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelsView {
    pub rows: Vec<ChannelRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelRow {
    pub channel: String,
    pub calls: u64,
    pub views: u64,
    /// Distinct HCPs reached on this channel.
    pub hcps_reached: u64,
}

/// The devices' synchronization state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncHealthView {
    pub devices: Vec<DeviceRow>,
    /// Calls analysis gave up on, with the reason (no personal data).
    pub parked: Vec<crate::store::ParkedCall>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRow {
    pub device_id: String,
    pub rep_id: String,
    pub territory: String,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Highest event sequence number the hub holds from the device.
    pub watermark: u64,
    pub events_received: u64,
    /// Uploads of events the hub already had (retries), acknowledged and not stored again.
    pub duplicates: u64,
    /// Events refused (invalid, too large, unknown call).
    pub rejected: u64,
    /// Stored events the analytics engine has not processed yet.
    pub pending_analysis: u64,
}
