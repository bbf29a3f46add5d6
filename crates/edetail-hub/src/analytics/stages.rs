//! Adoption stages (unaware -> aware -> educated -> convinced -> advocate) and the
//! configurable evidence rules that advance them. Rules only advance a stage (a rule may jump
//! several stages, one change recorded); the operator's optional inactivity fallback is the one
//! way down. Pure; evaluated on the facts accumulated in the profile.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::deck::{DeckMeta, SlideMeta};
pub use super::ladder::{Stage, StageChange};
use super::profile::{HcpProfile, ProductFacts};

/// A condition on the facts of one HCP and product. All string matches ignore ASCII case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// A counted view of any slide of the product's deck.
    SawAnySlide,
    /// A counted view of a slide with this topic.
    SawAnySlideWithTopic { topic: String },
    /// Every visible slide of the deck with this topic viewed with at least `min_dwell_ms`
    /// (in one view). False when the deck has no such slide.
    SawAllSlidesWithTopic { topic: String, min_dwell_ms: i64 },
    /// Every visible slide serving this adoption step (manifest `steps`, or its topics'
    /// defaults) viewed with at least `min_dwell_ms` in one view. False when no slide serves it.
    SawAllSlidesOfStep { step: Stage, min_dwell_ms: i64 },
    /// A survey answer whose slide has a topic containing the text, or whose question id does;
    /// with `answers_any`, only an answer that chose one of these options (authored option ids).
    AnsweredQuestion {
        topic_or_text_contains: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        answers_any: Vec<String>,
    },
    /// Evidence of advocacy (`advocacy` events): one of these actions, any action when empty
    /// (`agreed_to_speak`, `referred_colleague`, `shared_microsite`).
    Advocacy {
        #[serde(default)]
        actions: Vec<String>,
    },
    /// A follow-up request whose topic contains the text.
    FollowUpRequested { topic_contains: String },
    /// A reaction with this value on a slide with this topic.
    Reaction { topic: String, value: String },
    /// At least `n` calls on the product.
    MinCalls { n: u64 },
    /// The HCP's interest in the topic (all products) at least `score` points.
    TopicScoreAtLeast { topic: String, score: f64 },
}

/// One rule: when all conditions hold, the HCP is at least `stage` for the product. A rule
/// without conditions never fires. Unknown fields are refused (a typo in an operator's file
/// must not silently weaken a rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRule {
    pub id: String,
    pub description: String,
    /// `"*"` (every product) or one product.
    #[serde(default = "any_product")]
    pub product: String,
    pub stage: Stage,
    pub all_of: Vec<Condition>,
}

fn any_product() -> String {
    "*".into()
}

/// The operator's respond policy; operators pass it as JSON (`{"rules": [...], "fallback":
/// {...}, "plan": {...}, "experiment": {...}}`, all but `rules` optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRules {
    pub rules: Vec<StageRule>,
    /// A doctor not seen for this long falls back (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    #[serde(default)]
    pub plan: PlanPolicy,
    #[serde(default)]
    pub experiment: ExperimentPolicy,
}

/// Stage fallback after long inactivity: when a call comes `after_days` or more after the
/// HCP's previous call on the product, a stage above `to` drops to `to` and the evidence behind
/// it (slides seen, answers, follow-ups, reactions, advocacy) no longer counts: she has to show
/// it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    pub after_days: u32,
    pub to: Stage,
}

/// How big a plan may be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanPolicy {
    /// Content slides per plan, besides the mandatory ones.
    pub max_slides: usize,
}

/// Default content slides per plan.
pub const DEFAULT_MAX_PLAN_SLIDES: usize = 6;

impl Default for PlanPolicy {
    fn default() -> PlanPolicy {
        PlanPolicy { max_slides: DEFAULT_MAX_PLAN_SLIDES }
    }
}

/// The built-in experiment (see `experiment`): a seeded, stable share of HCPs per product is
/// held out and gets the deck's default order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentPolicy {
    /// Share of HCPs per product held out, 0.0 (no experiment) to 0.5.
    pub holdout_share: f64,
    /// Changing the seed reshuffles who is held out: keep it for the experiment's life.
    pub seed: String,
    /// Fewer HCPs than this in either arm: "not enough data" instead of an estimate.
    pub min_per_arm: u64,
}

/// Default holdout share per product.
pub const DEFAULT_HOLDOUT_SHARE: f64 = 0.10;
/// Default minimum HCPs per arm before an estimate is shown.
pub const DEFAULT_MIN_PER_ARM: u64 = 30;

impl Default for ExperimentPolicy {
    fn default() -> ExperimentPolicy {
        ExperimentPolicy { holdout_share: DEFAULT_HOLDOUT_SHARE, seed: "edetail-holdout-1".into(), min_per_arm: DEFAULT_MIN_PER_ARM }
    }
}

/// Options of a survey question that count as a positive answer in the default rules.
pub const POSITIVE_ANSWERS: &[&str] = &["yes", "positive", "likely", "very_likely", "agree", "strongly_agree", "will_prescribe"];

/// Minimum single-view dwell on each mechanism-of-action slide for "educated" (default rules).
pub const DEFAULT_MOA_MIN_DWELL_MS: i64 = 5_000;

impl Default for StageRules {
    /// aware: saw any slide; educated: saw every `moa` slide, or every slide serving the
    /// educated step, for at least 5 s; convinced: asked
    /// for samples, or answered a dosing or prescribing-intent question positively; advocate:
    /// evidence of advocacy (agreed to speak, referred a colleague, shared the microsite).
    fn default() -> StageRules {
        let rule = |id: &str, description: &str, stage, all_of| StageRule {
            id: id.into(),
            description: description.into(),
            product: any_product(),
            stage,
            all_of,
        };
        let positive = || POSITIVE_ANSWERS.iter().map(|a| a.to_string()).collect::<Vec<String>>();
        StageRules {
            fallback: None,
            plan: PlanPolicy::default(),
            experiment: ExperimentPolicy::default(),
            rules: vec![
                rule("aware-saw-slide", "saw a slide of the product", Stage::Aware, vec![Condition::SawAnySlide]),
                rule(
                    "educated-moa",
                    "saw every mechanism-of-action slide for at least 5 s",
                    Stage::Educated,
                    vec![Condition::SawAllSlidesWithTopic { topic: "moa".into(), min_dwell_ms: DEFAULT_MOA_MIN_DWELL_MS }],
                ),
                rule(
                    "educated-step",
                    "saw every slide serving the educated step for at least 5 s",
                    Stage::Educated,
                    vec![Condition::SawAllSlidesOfStep { step: Stage::Educated, min_dwell_ms: DEFAULT_MOA_MIN_DWELL_MS }],
                ),
                rule(
                    "convinced-samples",
                    "asked for samples",
                    Stage::Convinced,
                    vec![Condition::FollowUpRequested { topic_contains: "sample".into() }],
                ),
                rule(
                    "convinced-dosing-answer",
                    "answered a dosing question positively",
                    Stage::Convinced,
                    vec![Condition::AnsweredQuestion { topic_or_text_contains: "dosing".into(), answers_any: positive() }],
                ),
                rule(
                    "convinced-prescribing-intent",
                    "said she is likely to prescribe",
                    Stage::Convinced,
                    vec![Condition::AnsweredQuestion { topic_or_text_contains: "intent".into(), answers_any: positive() }],
                ),
                rule(
                    "advocate-advocacy",
                    "advocates the product (agreed to speak, referred a colleague or shared the microsite)",
                    Stage::Advocate,
                    vec![Condition::Advocacy { actions: vec![] }],
                ),
            ],
        }
    }
}

fn contains(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())
}

impl StageRules {
    /// Parses and checks an operator's rules file.
    pub fn from_json(json: &str) -> Result<StageRules, String> {
        let rules: StageRules = serde_json::from_str(json).map_err(|e| format!("stage rules: {e}"))?;
        rules.check()?;
        Ok(rules)
    }

    /// Ids non-empty and unique, every rule with at least one condition.
    pub fn check(&self) -> Result<(), String> {
        for (i, r) in self.rules.iter().enumerate() {
            if r.id.trim().is_empty() {
                return Err(format!("stage rule #{} has no id", i + 1));
            }
            if self.rules[..i].iter().any(|o| o.id == r.id) {
                return Err(format!("stage rule id {:?} appears twice", r.id));
            }
            if r.all_of.is_empty() {
                return Err(format!("stage rule {:?} has no conditions", r.id));
            }
            for c in &r.all_of {
                if let Condition::Advocacy { actions } = c
                    && let Some(a) = actions.iter().find(|a| edetail_protocol::payload::AdvocacyAction::parse(a).is_none())
                {
                    return Err(format!(
                        "stage rule {:?}: unknown advocacy action {a:?} (agreed_to_speak, referred_colleague, shared_microsite)",
                        r.id
                    ));
                }
            }
        }
        if self.fallback.as_ref().is_some_and(|f| f.after_days == 0) {
            return Err("fallback.after_days must be at least 1".into());
        }
        if self.plan.max_slides == 0 {
            return Err("plan.max_slides must be at least 1".into());
        }
        let share = self.experiment.holdout_share;
        if !(0.0..=0.5).contains(&share) {
            return Err(format!("experiment.holdout_share must be from 0.0 to 0.5, not {share}"));
        }
        if share > 0.0 && self.experiment.seed.trim().is_empty() {
            return Err("experiment.seed must not be empty".into());
        }
        Ok(())
    }

    /// The change the rules call for now, if any: among rules met whose stage is beyond the
    /// current one, the highest stage wins (first in file order on ties).
    pub(crate) fn evaluate(&self, profile: &HcpProfile, deck: &DeckMeta, at: Option<DateTime<Utc>>, call_key: &str) -> Option<StageChange> {
        let product = deck.product.as_str();
        let facts = profile.products.get(product)?;
        let mut best: Option<(&StageRule, Vec<String>)> = None;
        for r in &self.rules {
            if !(r.product == "*" || r.product == product) || r.stage <= facts.stage {
                continue;
            }
            if best.as_ref().is_some_and(|(b, _)| b.stage >= r.stage) {
                continue;
            }
            let mut uuids = Vec::new();
            let mut met = !r.all_of.is_empty();
            for c in &r.all_of {
                match condition_met(c, profile, facts, deck) {
                    Some(u) => uuids.extend(u),
                    None => {
                        met = false;
                        break;
                    }
                }
            }
            if met {
                uuids.dedup();
                best = Some((r, uuids));
            }
        }
        let (rule, event_uuids) = best?;
        Some(StageChange {
            hcp_id: profile.hcp_id.clone(),
            product: product.to_string(),
            from: facts.stage,
            to: rule.stage,
            at,
            call_key: call_key.to_string(),
            rule_id: rule.id.clone(),
            rule_description: rule.description.clone(),
            event_uuids,
        })
    }
}

/// The longest views' uuids when every one of `slides` was viewed at least `min_dwell_ms` in
/// one view; `None` when one was not, or when there are no such slides.
fn all_viewed<'a>(slides: impl Iterator<Item = &'a SlideMeta>, facts: &ProductFacts, min_dwell_ms: i64) -> Option<Vec<String>> {
    let mut uuids = Vec::new();
    for s in slides {
        let seen = facts.slides_seen.get(&s.id).filter(|f| f.views > 0 && f.max_dwell_ms >= min_dwell_ms)?;
        uuids.push(seen.max_dwell_uuid.clone());
    }
    (!uuids.is_empty()).then_some(uuids)
}

/// The uuids of the events that satisfy the condition, or `None` when it does not hold.
fn condition_met(c: &Condition, profile: &HcpProfile, facts: &ProductFacts, deck: &DeckMeta) -> Option<Vec<String>> {
    match c {
        Condition::SawAnySlide => {
            let first = facts.slides_seen.values().filter(|s| s.views > 0).min_by_key(|s| s.first_seen_at)?;
            Some(vec![if first.first_uuid.is_empty() { first.max_dwell_uuid.clone() } else { first.first_uuid.clone() }])
        }
        Condition::SawAnySlideWithTopic { topic } => {
            let u: Vec<String> = deck
                .slides
                .iter()
                .filter(|s| s.has_topic(topic))
                .filter_map(|s| facts.slides_seen.get(&s.id).filter(|f| f.views > 0))
                .map(|f| f.max_dwell_uuid.clone())
                .collect();
            (!u.is_empty()).then_some(u)
        }
        Condition::SawAllSlidesWithTopic { topic, min_dwell_ms } => {
            all_viewed(deck.slides.iter().filter(|s| !s.hidden && s.has_topic(topic)), facts, *min_dwell_ms)
        }
        Condition::SawAllSlidesOfStep { step, min_dwell_ms } => {
            all_viewed(deck.slides.iter().filter(|s| !s.hidden && !s.reference && s.serves(*step)), facts, *min_dwell_ms)
        }
        Condition::AnsweredQuestion { topic_or_text_contains: t, answers_any } => {
            let u: Vec<String> = facts
                .questions
                .iter()
                .filter(|q| contains(&q.question, t) || q.slide_topics.iter().any(|st| contains(st, t)))
                .filter(|q| answers_any.is_empty() || q.answers.iter().any(|a| answers_any.iter().any(|w| a.eq_ignore_ascii_case(w))))
                .map(|q| q.uuid.clone())
                .collect();
            (!u.is_empty()).then_some(u)
        }
        Condition::Advocacy { actions } => {
            let u: Vec<String> =
                facts.advocacy.iter().filter(|a| actions.is_empty() || actions.contains(&a.action)).map(|a| a.uuid.clone()).collect();
            (!u.is_empty()).then_some(u)
        }
        Condition::FollowUpRequested { topic_contains } => {
            let u: Vec<String> = facts.follow_ups.iter().filter(|f| contains(&f.topic, topic_contains)).map(|f| f.uuid.clone()).collect();
            (!u.is_empty()).then_some(u)
        }
        Condition::Reaction { topic, value } => {
            let u: Vec<String> = facts
                .reactions
                .iter()
                .filter(|r| r.value.eq_ignore_ascii_case(value) && r.slide_topics.iter().any(|t| t.eq_ignore_ascii_case(topic)))
                .map(|r| r.uuid.clone())
                .collect();
            (!u.is_empty()).then_some(u)
        }
        Condition::MinCalls { n } => (facts.calls >= *n).then(|| facts.last_call_uuid.iter().cloned().collect()),
        Condition::TopicScoreAtLeast { topic, score } => {
            let i = profile.topics.get(topic)?;
            (i.score() >= *score).then(|| i.evidence.iter().rev().take(5).map(|e| e.uuid.clone()).collect())
        }
    }
}
