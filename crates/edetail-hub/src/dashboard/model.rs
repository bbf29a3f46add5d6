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
    /// Plans made on this deck, by arm and objective, and whether the next touch reached it.
    pub outcomes: Vec<OutcomeRow>,
    /// Which slides were viewed in the calls that moved an HCP up, per stage reached.
    pub stage_moves: Vec<StageMoveRow>,
    /// How reps changed the hub's plans, per slide.
    pub rep_edits: Vec<RepEditRow>,
}

/// Plans with one objective in one arm, by outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeRow {
    /// `treatment` or `holdout`.
    pub arm: String,
    /// The stage the plans aimed for.
    pub objective: String,
    pub achieved: u64,
    pub missed: u64,
}

/// A slide viewed in calls after which HCPs moved up to `stage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageMoveRow {
    pub bundle_id: String,
    pub slide_id: String,
    pub title: String,
    pub stage: String,
    /// Calls with a counted view of the slide that moved the HCP up to `stage`.
    pub calls: u64,
    /// Of all the deck's moves up to `stage`, the share preceded by a view of this slide.
    pub share: f64,
}

/// Reps' edits of plans for one slide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepEditRow {
    pub slide_id: String,
    pub title: String,
    pub planned: u64,
    pub kept: u64,
    pub dropped: u64,
    pub added: u64,
}

/// The built-in experiment: treatment (personalized plans) against holdout (the deck's
/// default order), per product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentView {
    /// Share of HCPs per product held out (the operator's policy).
    pub holdout_share: f64,
    /// Below this many HCPs in an arm, "not enough data".
    pub min_per_arm: u64,
    pub products: Vec<ProductExperiment>,
}

/// One product's experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductExperiment {
    pub product: String,
    /// HCPs enrolled (from their first plan) per arm.
    pub treatment_n: u64,
    pub holdout_n: u64,
    /// Stage progression, rungs per 30 days since enrolment: treatment - holdout.
    pub progression: crate::analytics::Estimate,
    /// Prescription change (difference in differences against each HCP's prior periods).
    pub rx_change: crate::analytics::Estimate,
    /// Plan outcomes of the product's decks, by arm and objective.
    pub outcomes: Vec<OutcomeRow>,
    /// The slides most often viewed before stage moves, per stage, most calls first.
    pub stage_moves: Vec<StageMoveRow>,
}

/// One plan sent to an HCP and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanOutcomeRow {
    pub product: String,
    pub plan_id: String,
    pub objective: String,
    pub arm: String,
    pub made_at: Option<DateTime<Utc>>,
    /// `open` (no call since), `achieved` or `missed`.
    pub outcome: String,
    /// The settling call said it followed the plan.
    pub followed: bool,
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
    /// Plans sent and their outcomes: each product's open plan, then settled ones, newest first.
    pub plans: Vec<PlanOutcomeRow>,
    /// Her experiment arm per product (`(product, arm)`), once enrolled.
    pub arms: Vec<(String, String)>,
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
