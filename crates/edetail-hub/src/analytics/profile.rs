//! The persisted per-HCP profile: interest by topic and by key message with the evidence
//! behind every score, and per product the facts the stage rules need (slides seen with
//! dwell, questions answered, follow-up topics, reactions, calls) plus the adoption stage.
//! Pure data and the scoring of one call; no I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ladder::{Stage, StageChange};

/// Points are kept in thousandths so totals stay exact however many calls are folded in.
pub const MILLI: i64 = 1000;
/// Relative dwell is capped so one forgotten tablet does not dominate.
pub const MAX_RELATIVE_DWELL: f64 = 4.0;
/// Each counted view of a slide after the first in the same call.
pub const POINTS_REVISIT: i64 = 500;
/// A counted view the HCP navigated to (`hcp_led`).
pub const POINTS_HCP_LED: i64 = 500;
pub const POINTS_REACTION_POSITIVE: i64 = 1000;
pub const POINTS_REACTION_NEGATIVE: i64 = -500;
/// A survey answer on the slide.
pub const POINTS_ANSWER: i64 = 1000;
/// A follow-up request on the slide (credited to the slide's topics and the request's topic).
pub const POINTS_FOLLOW_UP: i64 = 2000;
/// Call keys remembered per profile to ignore a call folded in twice.
pub const RECENT_CALL_KEYS: usize = 200;
/// Evidence kept per topic or key message (newest); totals count everything.
pub const EVIDENCE_PER_INTEREST: usize = 20;
/// Per-product fact lists (questions, follow-ups, reactions) keep this many newest entries.
pub const FACTS_PER_LIST: usize = 50;

/// One scored event. Never carries free text (notes, survey text).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    pub uuid: String,
    pub call_key: String,
    pub at: Option<DateTime<Utc>>,
    /// Event kind, or `revisit` / `hcp_led` for the view bonuses.
    pub kind: String,
    pub slide: Option<String>,
    pub description: String,
    pub points: f64,
}

/// Interest in one topic or key message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Interest {
    /// Exact total in thousandths of a point.
    pub score_milli: i64,
    /// Scored events (including those whose evidence was dropped).
    pub events: u64,
    /// Counted views that contributed.
    pub views: u64,
    pub last_at: Option<DateTime<Utc>>,
    /// Newest [`EVIDENCE_PER_INTEREST`], oldest first.
    pub evidence: Vec<Evidence>,
}

impl Interest {
    pub fn score(&self) -> f64 {
        self.score_milli as f64 / MILLI as f64
    }

    fn credit(&mut self, ev: &Evidence, milli: i64, is_view: bool) {
        self.score_milli += milli;
        self.events += 1;
        if is_view {
            self.views += 1;
        }
        if self.last_at.is_none_or(|t| ev.at.is_some_and(|a| a > t)) {
            self.last_at = ev.at;
        }
        self.evidence.push(ev.clone());
        if self.evidence.len() > EVIDENCE_PER_INTEREST {
            let extra = self.evidence.len() - EVIDENCE_PER_INTEREST;
            self.evidence.drain(..extra);
        }
    }
}

/// The longest counted view of a slide.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlideSeen {
    pub views: u64,
    pub max_dwell_ms: i64,
    /// The `slide_enter` uuid of the longest view.
    pub max_dwell_uuid: String,
    /// The `slide_enter` uuid of the earliest view.
    pub first_uuid: String,
    pub first_seen_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuestionFact {
    pub uuid: String,
    pub slide: String,
    /// The question id as authored in the slide (not the HCP's text).
    pub question: String,
    /// The option ids chosen, as authored (never free text).
    pub answers: Vec<String>,
    pub slide_topics: Vec<String>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FollowUpFact {
    pub uuid: String,
    pub slide: String,
    pub topic: String,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReactionFact {
    pub uuid: String,
    pub slide: String,
    pub value: String,
    pub slide_topics: Vec<String>,
    pub at: Option<DateTime<Utc>>,
}

/// Evidence of advocacy (an `advocacy` event).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdvocacyFact {
    pub uuid: String,
    /// `agreed_to_speak`, `referred_colleague`, `shared_microsite`.
    pub action: String,
    pub slide: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// A plan the hub sent, and (once the next call or channel touch came) whether it worked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanRecord {
    pub plan_id: String,
    /// The stage the plan aimed for.
    pub objective: Stage,
    /// Her stage when the plan was made.
    pub from: Stage,
    /// `treatment` or `holdout`.
    pub arm: String,
    pub made_at: Option<DateTime<Utc>>,
    /// `achieved` or `missed`; empty while open.
    pub outcome: String,
    /// The call that settled it, and when.
    pub settled_by: String,
    pub settled_at: Option<DateTime<Utc>>,
    /// The settling call said it followed this plan (`call_started.plan_id`).
    pub followed: bool,
}

/// Settled plans kept per product (newest).
pub const PLAN_RECORDS: usize = 20;

/// What one HCP did with one product's material, and where that leaves them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProductFacts {
    pub stage: Stage,
    /// Every stage change, oldest first.
    pub stage_history: Vec<StageChange>,
    pub calls: u64,
    /// The `call_started` uuid of the newest call.
    pub last_call_uuid: Option<String>,
    pub last_call_at: Option<DateTime<Utc>>,
    pub channels: BTreeMap<String, u64>,
    /// Counted views per slide id.
    pub slides_seen: BTreeMap<String, SlideSeen>,
    pub questions: Vec<QuestionFact>,
    pub follow_ups: Vec<FollowUpFact>,
    pub reactions: Vec<ReactionFact>,
    pub advocacy: Vec<AdvocacyFact>,
    /// The newest plan sent for this product, until a later call settles it.
    pub open_plan: Option<PlanRecord>,
    /// Settled plans, newest [`PLAN_RECORDS`], oldest first.
    pub plans: Vec<PlanRecord>,
    /// Her arm of the experiment for this product (`treatment`/`holdout`), from her first
    /// plan on.
    pub arm: Option<String>,
    /// When her first plan for the product was made (she entered the experiment).
    pub enrolled_at: Option<DateTime<Utc>>,
    /// Her stage then.
    pub stage_at_enrolment: Stage,
}

/// One HCP's persisted analytics profile.
/// Engagement in one month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeriodEngagement {
    pub calls: u64,
    pub views: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HcpProfile {
    pub hcp_id: String,
    /// Calls folded in (every product).
    pub calls: u64,
    pub last_call_at: Option<DateTime<Utc>>,
    /// The newest [`RECENT_CALL_KEYS`] calls folded in, oldest first (re-delivery guard).
    pub recent_call_keys: Vec<String>,
    pub topics: BTreeMap<String, Interest>,
    pub key_messages: BTreeMap<String, Interest>,
    pub products: BTreeMap<String, ProductFacts>,
    /// Total counted dwell per key message (the dashboard's "time on message").
    pub key_message_dwell_ms: BTreeMap<String, u64>,
    /// Calls and counted views per month (`YYYY-MM`), for engagement beside prescribing.
    pub periods: BTreeMap<String, PeriodEngagement>,
}

impl HcpProfile {
    pub fn new(hcp_id: &str) -> HcpProfile {
        HcpProfile { hcp_id: hcp_id.to_string(), ..HcpProfile::default() }
    }

    /// The stage for a product (unaware when never detailed).
    pub fn stage(&self, product: &str) -> Stage {
        self.products.get(product).map(|p| p.stage).unwrap_or_default()
    }

    pub fn topic_score(&self, topic: &str) -> f64 {
        self.topics.get(topic).map_or(0.0, Interest::score)
    }

    /// Topics by score, strongest first (ties by name).
    pub fn top_topics(&self) -> Vec<(&str, f64)> {
        let mut v: Vec<(&str, f64)> = self.topics.iter().map(|(t, i)| (t.as_str(), i.score())).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v
    }

    /// Credits `milli` to each of `topics` (deduplicated) and to `key_message`.
    pub(crate) fn credit(&mut self, topics: &[String], key_message: Option<&str>, ev: &Evidence, milli: i64, is_view: bool) {
        let mut done: Vec<&str> = Vec::new();
        for t in topics {
            if done.contains(&t.as_str()) {
                continue;
            }
            done.push(t);
            self.topics.entry(t.clone()).or_default().credit(ev, milli, is_view);
        }
        if let Some(k) = key_message {
            self.key_messages.entry(k.to_string()).or_default().credit(ev, milli, is_view);
        }
    }
}

pub(crate) fn push_capped<T>(v: &mut Vec<T>, item: T) {
    v.push(item);
    if v.len() > FACTS_PER_LIST {
        let extra = v.len() - FACTS_PER_LIST;
        v.drain(..extra);
    }
}

/// `milli` as points, for evidence.
pub(crate) fn points(milli: i64) -> f64 {
    milli as f64 / MILLI as f64
}

/// Relative dwell points: `min(dwell / typical, MAX_RELATIVE_DWELL)`, in thousandths.
pub fn dwell_points_milli(dwell_ms: i64, typical_ms: i64) -> i64 {
    let rel = (dwell_ms.max(0) as f64 / typical_ms.max(1) as f64).min(MAX_RELATIVE_DWELL);
    (rel * MILLI as f64).round() as i64
}
