//! The hub's analytics engine for closed-loop marketing, as a pure module: no I/O, no store,
//! no async, no clock reads (time comes in as arguments). A worker (elsewhere) loads the HCP's
//! and the deck's JSON documents, calls [`analyze_call`] once per finished call, saves them,
//! and asks [`build_plan`] / [`microsite_slides`] for the response.
//!
//! # Views
//! A view is a `slide_enter` .. `slide_exit` pair; it *counts* with a dwell of at least 2 s
//! or a reaction (as on the device). A revisit is a counted view of a slide already viewed
//! (counted) in the same call. See [`views`].
//!
//! # Interest score (per topic and per key message)
//! Every scored event credits its points to each topic of its slide and to the slide's key
//! message (points are kept in thousandths, so totals are exact):
//! - counted view: `min(dwell / typical, 4.0)` where `typical` is the deck's median dwell for
//!   the slide (segment "all", from the stats *before* this call is folded in, at least 1 s;
//!   10 s without history, [`deck::DEFAULT_TYPICAL_DWELL_MS`]);
//! - revisit: +0.5 per counted view after the first of the same slide in the call;
//! - HCP-led navigation (`hcp_led` on the view's `slide_enter`): +0.5;
//! - reaction: positive +1, negative -0.5 (neutral 0, not recorded);
//! - survey answer on the slide: +1;
//! - follow-up request on the slide: +2, credited also to the request's own topic.
//!
//! Each credit stores an [`profile::Evidence`] (uuid, call key, time, kind, slide, a short
//! description, points) — never free text (notes, survey text, follow-up notes). Evidence is
//! capped to the newest 20 per topic/key message; `score_milli` and `events` count all.
//! Calls on channel `preview` (rep rehearsal) only count in the deck's per-channel counts.
//!
//! # Adoption stage (per HCP and product)
//! unaware -> aware -> educated -> convinced -> advocate, advanced by [`StageRules`]. Default
//! rules: `aware-saw-slide` (a counted view of any slide), `educated-moa` / `educated-step`
//! (every visible `moa` slide, or every slide serving the educated step, viewed at least 5 s in
//! one view), `convinced-samples` (a follow-up request whose topic
//! contains "sample"), `convinced-dosing-answer` / `convinced-prescribing-intent` (a positive
//! answer to a dosing or prescribing-intent question), `advocate-advocacy` (an `advocacy` event:
//! agreed to speak, referred a colleague, shared the microsite). After each call, of the rules
//! met whose stage is beyond the current one, the highest wins; one [`StageChange`] records
//! from, to, time, rule and the event uuids that satisfied it. Stages go down only by the
//! operator's inactivity [`Fallback`], which also clears the evidence behind the old stage.
//!
//! # Deck statistics
//! Per slide, per segment ("all" plus the HCP's segment): counted views, revisits, calls that
//! viewed it, drop-offs (calls whose last counted view of a visible slide was this slide),
//! a dwell histogram with fixed log-scale buckets (median = midpoint of the lower median's
//! bucket), reaction mix. Per channel: calls and counted views per slide. The respond
//! counters: slides viewed in calls that moved an HCP up, plan outcomes per arm and objective,
//! reps' edits of plans per slide (`call_plan` events).
//!
//! # Plans ([`build_plan_with_rules`])
//! A short, explained sequence for the HCP's next step on the ladder: content slides serving
//! the lowest step above her stage that she has not absorbed (viewed as long as is typical),
//! ordered by her interest, then the step after, up to the policy's bound (default 6); then
//! every mandatory slide (fair balance). Absorbed slides, passed steps and slides beyond the
//! bound are in `skipped` with the reason. [`note_plan_sent`] makes it her open plan, settled by
//! her next call or channel touch (achieved or missed). HCPs in the [`experiment`]'s holdout
//! get the deck's default order. docs/analytics.md has the whole model.
//!
//! # Microsite
//! [`CallOutcome::wants_microsite`] is set for a call with an HCP that has a follow-up request,
//! or in which some topic earned at least [`MICROSITE_TOPIC_POINTS`] (not for a microsite visit
//! itself: strong interest there does not ask for another microsite).

pub mod deck;
pub mod experiment;
pub mod ladder;
mod merge;
mod plan;
pub mod profile;
pub mod stages;
#[cfg(test)]
mod tests;
pub mod views;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::deck::{DeckMeta, DeckStats, SEGMENT_ALL, SlideMeta, SlideStats};
pub use self::experiment::{Arm, Estimate, Moments};
pub use self::plan::{build_plan, build_plan_with_rules, microsite_slides, note_plan_sent};
use self::profile::{
    AdvocacyFact, FollowUpFact, POINTS_ANSWER, POINTS_FOLLOW_UP, POINTS_HCP_LED, POINTS_REACTION_NEGATIVE, POINTS_REACTION_POSITIVE,
    POINTS_REVISIT, QuestionFact, ReactionFact,
};
pub use self::profile::{Evidence, HcpProfile, Interest, PeriodEngagement, PlanRecord, ProductFacts};
pub use self::stages::{Condition, ExperimentPolicy, Fallback, PlanPolicy, Stage, StageChange, StageRule, StageRules};
use self::views::str_field;

/// Points a topic must earn in one call to ask for a follow-up microsite (e.g. two slides of
/// the topic at 3x their typical dwell).
pub const MICROSITE_TOPIC_POINTS: f64 = 6.0;

/// One recorded event of a call, as stored by the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyzedEvent {
    pub uuid: String,
    pub kind: String,
    pub at: DateTime<Utc>,
    pub payload: Value,
}

/// One finished call (a device call, or a microsite visit which the hub records with the same
/// event kinds and channel "microsite").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallInput {
    /// `"device_id/call_id"`.
    pub call_key: String,
    pub device_id: String,
    pub territory: String,
    /// In device seq order.
    pub events: Vec<AnalyzedEvent>,
}

/// What the `call_started` event says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallHeader {
    pub hcp_id: Option<String>,
    pub channel: String,
    pub bundle_id: String,
    pub bundle_version: u64,
    pub started_at: DateTime<Utc>,
}

/// From the (first) `call_started` event; `None` when absent.
pub fn call_header(input: &CallInput) -> Option<CallHeader> {
    let e = input.events.iter().find(|e| e.kind == "call_started")?;
    let p = &e.payload;
    Some(CallHeader {
        hcp_id: str_field(p, "hcp_id").map(str::to_string),
        channel: str_field(p, "channel").unwrap_or("unknown").to_string(),
        bundle_id: str_field(p, "bundle_id").unwrap_or_default().to_string(),
        bundle_version: p.get("bundle_version").and_then(Value::as_u64).unwrap_or(0),
        started_at: e.at,
    })
}

/// Why a follow-up microsite is wanted, and on what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MicrositeRequest {
    pub topics: Vec<String>,
    /// Short lines, no free text.
    pub why: Vec<String>,
}

/// What one call changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallOutcome {
    pub call_key: String,
    pub hcp_id: Option<String>,
    pub product: String,
    pub channel: String,
    pub stage_changes: Vec<StageChange>,
    pub wants_microsite: Option<MicrositeRequest>,
    /// Counted views folded in.
    pub views_counted: u64,
    /// Topic points earned in this call, strongest first.
    pub topic_points: Vec<(String, f64)>,
    /// The profile already had this call (see `HcpProfile::recent_call_keys`); the deck
    /// stats were still folded (they keep no call keys: the worker must not fold a call twice).
    pub already_in_profile: bool,
    /// The plan this call settled (the product's open plan made before the call).
    pub settled_plan: Option<PlanRecord>,
    /// Odd input that was tolerated (missing call_started, unknown slides, orphan exits, ...).
    pub notes: Vec<String>,
}

/// Fallback after long inactivity ([`Fallback`]): due when this call comes `after_days` or
/// more after her previous call on the product and her stage is above the fallback's.
fn fall_back(
    rules: &StageRules,
    profile: &mut HcpProfile,
    product: &str,
    at: Option<DateTime<Utc>>,
    call_key: &str,
) -> Option<StageChange> {
    let f = rules.fallback.as_ref()?;
    let hcp_id = profile.hcp_id.clone();
    let facts = profile.products.get_mut(product)?;
    let gap = at? - facts.last_call_at?;
    if facts.stage <= f.to || gap < chrono::Duration::days(f.after_days.into()) {
        return None;
    }
    let change = StageChange {
        hcp_id,
        product: product.to_string(),
        from: facts.stage,
        to: f.to,
        at,
        call_key: call_key.to_string(),
        rule_id: "fallback-inactivity".into(),
        rule_description: format!("not seen for {} days (the operator's fallback after {} days)", gap.num_days(), f.after_days),
        event_uuids: vec![],
    };
    facts.stage = f.to;
    facts.stage_history.push(change.clone());
    // The evidence behind the old stage no longer counts: she shows it again.
    facts.slides_seen.clear();
    facts.questions.clear();
    facts.follow_ups.clear();
    facts.reactions.clear();
    facts.advocacy.clear();
    Some(change)
}

/// Settles the product's open plan with this call: achieved when she is now at or beyond
/// its objective. A plan made after the call (a late upload) is not settled by it.
fn settle_plan(input: &CallInput, profile: &mut HcpProfile, product: &str, at: Option<DateTime<Utc>>) -> Option<PlanRecord> {
    let facts = profile.products.get_mut(product)?;
    let open = facts.open_plan.as_ref()?;
    if open.made_at.zip(at).is_none_or(|(made, at)| at <= made) {
        return None;
    }
    let mut p = facts.open_plan.take()?;
    p.outcome = if facts.stage >= p.objective { "achieved" } else { "missed" }.into();
    p.settled_by = input.call_key.clone();
    p.settled_at = at;
    p.followed = input
        .events
        .iter()
        .find(|e| e.kind == "call_started")
        .and_then(|e| str_field(&e.payload, "plan_id"))
        .is_some_and(|id| id == p.plan_id);
    facts.plans.push(p.clone());
    if facts.plans.len() > profile::PLAN_RECORDS {
        let extra = facts.plans.len() - profile::PLAN_RECORDS;
        facts.plans.drain(..extra);
    }
    Some(p)
}

/// Folds one finished call into the deck's stats and (when the call has an HCP) the HCP's
/// profile; evaluates the stage rules.
///
/// `profile` is used as given (the worker picks it from [`call_header`]); it is left alone for
/// a preview call, a call naming another HCP, or a call it already has. `segment` adds a
/// segment besides `"all"`. Never panics on odd input; what was odd is in `notes`.
pub fn analyze_call(
    input: &CallInput,
    deck: &DeckMeta,
    stats: &mut DeckStats,
    profile: Option<&mut HcpProfile>,
    segment: Option<&str>,
    rules: &StageRules,
) -> CallOutcome {
    let header = call_header(input);
    let mut out = CallOutcome {
        call_key: input.call_key.clone(),
        hcp_id: header.as_ref().and_then(|h| h.hcp_id.clone()),
        product: deck.product.clone(),
        channel: header.as_ref().map_or("unknown".into(), |h| h.channel.clone()),
        ..CallOutcome::default()
    };
    match &header {
        None => out.notes.push("no call_started event".into()),
        Some(h) if !h.bundle_id.is_empty() && h.bundle_id != deck.bundle_id => {
            out.notes.push(format!("call is on bundle {}, analyzed against {}", h.bundle_id, deck.bundle_id))
        }
        _ => {}
    }
    let derived = views::derive_views(&input.events);
    if derived.orphan_exits > 0 {
        out.notes.push(format!("{} slide_exit without a matching slide_enter", derived.orphan_exits));
    }
    let unknown = derived.views.iter().filter(|v| v.counts && deck.slide(&v.slide).is_none()).count();
    if unknown > 0 {
        out.notes.push(format!("{unknown} counted views of slides not in {} version {}", deck.bundle_id, deck.bundle_version));
    }
    let preview = out.channel == "preview";
    let at = header.as_ref().map(|h| h.started_at).or_else(|| input.events.first().map(|e| e.at));

    if let Some(profile) = profile {
        if preview {
            out.notes.push("preview call: not credited to the HCP".into());
        } else if out.hcp_id.as_deref().is_some_and(|h| h != profile.hcp_id) {
            out.notes.push("the call's HCP is not the profile's: profile left alone".into());
        } else if profile.recent_call_keys.contains(&input.call_key) {
            out.already_in_profile = true;
            out.notes.push("call already folded into the profile: profile left alone".into());
        } else {
            if let Some(change) = fall_back(rules, profile, &deck.product, at, &input.call_key) {
                out.stage_changes.push(change);
            }
            let call_points = fold_profile(input, &out.channel, deck, stats, profile, &derived, at);
            if let Some(change) = rules.evaluate(profile, deck, at, &input.call_key) {
                let facts = profile.products.entry(deck.product.clone()).or_default();
                facts.stage = change.to;
                facts.stage_history.push(change.clone());
                // Which slides preceded the move (counted views in this call), for content teams.
                let to = change.to.as_str().to_string();
                *stats.respond.moves.entry(to.clone()).or_default() += 1;
                let mut slides: Vec<&str> =
                    derived.views.iter().filter(|v| v.counts && deck.slide(&v.slide).is_some()).map(|v| v.slide.as_str()).collect();
                slides.sort_unstable();
                slides.dedup();
                for s in slides {
                    *stats.respond.stage_moves.entry(s.to_string()).or_default().entry(to.clone()).or_default() += 1;
                }
                out.stage_changes.push(change);
            }
            if let Some(p) = settle_plan(input, profile, &deck.product, at) {
                let tally = stats.respond.outcomes.entry(p.arm.clone()).or_default().entry(p.objective.as_str().to_string()).or_default();
                if p.outcome == "achieved" {
                    tally.achieved += 1;
                } else {
                    tally.missed += 1;
                }
                out.settled_plan = Some(p);
            }
            let mut tp: Vec<(String, f64)> = call_points.into_iter().map(|(t, m)| (t, profile::points(m))).collect();
            tp.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            out.topic_points = tp;
            let strong = if out.channel == "microsite" { &[][..] } else { &out.topic_points[..] };
            out.wants_microsite = microsite_request(input, deck, strong);
        }
    }

    out.views_counted = fold_stats(&input.events, &out.channel, deck, stats, segment, &derived, preview, at);
    out
}

/// Scores the call into the profile (reading `stats` before they include this call) and
/// records the rule facts. Returns the points per topic earned in this call.
fn fold_profile(
    input: &CallInput,
    channel: &str,
    deck: &DeckMeta,
    stats: &DeckStats,
    profile: &mut HcpProfile,
    derived: &views::DerivedViews,
    at: Option<DateTime<Utc>>,
) -> BTreeMap<String, i64> {
    let call_key = input.call_key.as_str();
    let mut call_points: BTreeMap<String, i64> = BTreeMap::new();
    profile.calls += 1;
    profile.recent_call_keys.push(call_key.to_string());
    if profile.recent_call_keys.len() > profile::RECENT_CALL_KEYS {
        let extra = profile.recent_call_keys.len() - profile::RECENT_CALL_KEYS;
        profile.recent_call_keys.drain(..extra);
    }
    if profile.last_call_at.is_none_or(|t| at.is_some_and(|a| a > t)) {
        profile.last_call_at = at;
    }
    if let Some(at) = at {
        let period = profile.periods.entry(at.format("%Y-%m").to_string()).or_default();
        period.calls += 1;
        period.views += derived.views.iter().filter(|v| v.counts).count() as u64;
    }
    for v in derived.views.iter().filter(|v| v.counts) {
        if let Some(km) = deck.slide(&v.slide).and_then(|s| s.key_message.as_deref()) {
            *profile.key_message_dwell_ms.entry(km.to_string()).or_default() += v.dwell_ms.max(0) as u64;
        }
    }
    {
        let facts = profile.products.entry(deck.product.clone()).or_default();
        facts.calls += 1;
        *facts.channels.entry(channel.to_string()).or_default() += 1;
        facts.last_call_uuid = input.events.iter().find(|e| e.kind == "call_started").map(|e| e.uuid.clone());
        if facts.last_call_at.is_none_or(|t| at.is_some_and(|a| a > t)) {
            facts.last_call_at = at;
        }
    }
    let mut credit = |profile: &mut HcpProfile, slide: &SlideMeta, extra_topic: Option<&str>, ev: Evidence, milli: i64, is_view: bool| {
        let mut topics: Vec<String> = Vec::new();
        for t in slide.topics.iter().map(String::as_str).chain(extra_topic) {
            if !topics.iter().any(|x| x == t) {
                topics.push(t.to_string());
            }
        }
        for t in &topics {
            *call_points.entry(t.clone()).or_default() += milli;
        }
        profile.credit(&topics, slide.key_message.as_deref(), &ev, milli, is_view);
    };
    let evidence = |uuid: &str, at: DateTime<Utc>, kind: &str, slide: &str, description: String, milli: i64| Evidence {
        uuid: uuid.to_string(),
        call_key: call_key.to_string(),
        at: Some(at),
        kind: kind.to_string(),
        slide: Some(slide.to_string()),
        description,
        points: profile::points(milli),
    };

    let mut seen_in_call: BTreeMap<&str, u32> = BTreeMap::new();
    for v in derived.views.iter().filter(|v| v.counts) {
        let Some(slide) = deck.slide(&v.slide) else { continue };
        let typical = stats.typical_dwell_ms(&slide.id);
        let milli = profile::dwell_points_milli(v.dwell_ms, typical);
        let uuid = v.exit_uuid.as_deref().unwrap_or(&v.enter_uuid);
        let desc = format!("dwell {:.1} s vs typical {:.1} s", v.dwell_ms as f64 / 1000.0, typical as f64 / 1000.0);
        credit(profile, slide, None, evidence(uuid, v.at, "slide_view", &slide.id, desc, milli), milli, true);
        let n = seen_in_call.entry(v.slide.as_str()).or_default();
        *n += 1;
        if *n > 1 {
            let d = format!("revisit {} in the call", *n - 1);
            credit(profile, slide, None, evidence(&v.enter_uuid, v.at, "revisit", &slide.id, d, POINTS_REVISIT), POINTS_REVISIT, false);
        }
        if v.hcp_led {
            let d = "HCP navigated here".to_string();
            credit(profile, slide, None, evidence(&v.enter_uuid, v.at, "hcp_led", &slide.id, d, POINTS_HCP_LED), POINTS_HCP_LED, false);
        }
        let facts = profile.products.entry(deck.product.clone()).or_default();
        let seen = facts.slides_seen.entry(slide.id.clone()).or_default();
        seen.views += 1;
        if seen.max_dwell_uuid.is_empty() || v.dwell_ms > seen.max_dwell_ms {
            seen.max_dwell_ms = v.dwell_ms;
            seen.max_dwell_uuid = v.enter_uuid.clone();
        }
        if seen.first_seen_at.is_none_or(|t| v.at < t) {
            seen.first_seen_at = Some(v.at);
            seen.first_uuid = v.enter_uuid.clone();
        }
        if seen.last_seen_at.is_none_or(|t| v.at > t) {
            seen.last_seen_at = Some(v.at);
        }
    }

    for e in input.events.iter().filter(|e| e.kind == "advocacy") {
        // Recorded by the rep, with or without a slide on screen: no slide needed.
        let Some(action) = str_field(&e.payload, "action") else { continue };
        let facts = profile.products.entry(deck.product.clone()).or_default();
        let fact =
            AdvocacyFact { uuid: e.uuid.clone(), action: short(action), slide: derived.slide_of(e).map(str::to_string), at: Some(e.at) };
        profile::push_capped(&mut facts.advocacy, fact);
    }
    for e in &input.events {
        let p = &e.payload;
        let Some(slide) = derived.slide_of(e).and_then(|s| deck.slide(s)) else { continue };
        match e.kind.as_str() {
            "reaction" => {
                let value = str_field(p, "value").unwrap_or("neutral");
                let milli = match value {
                    "positive" => POINTS_REACTION_POSITIVE,
                    "negative" => POINTS_REACTION_NEGATIVE,
                    _ => 0,
                };
                if milli != 0 {
                    credit(
                        profile,
                        slide,
                        None,
                        evidence(&e.uuid, e.at, "reaction", &slide.id, format!("reaction {value}"), milli),
                        milli,
                        false,
                    );
                }
                let facts = profile.products.entry(deck.product.clone()).or_default();
                let fact = ReactionFact {
                    uuid: e.uuid.clone(),
                    slide: slide.id.clone(),
                    value: value.into(),
                    slide_topics: slide.topics.clone(),
                    at: Some(e.at),
                };
                profile::push_capped(&mut facts.reactions, fact);
            }
            "survey_answer" => {
                let question = short(str_field(p, "question").unwrap_or(""));
                let d = format!("answered question {question}");
                credit(profile, slide, None, evidence(&e.uuid, e.at, "survey_answer", &slide.id, d, POINTS_ANSWER), POINTS_ANSWER, false);
                let facts = profile.products.entry(deck.product.clone()).or_default();
                let answers: Vec<String> = p
                    .get("answers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .take(20)
                    .map(short)
                    .collect();
                let fact = QuestionFact {
                    uuid: e.uuid.clone(),
                    slide: slide.id.clone(),
                    question,
                    answers,
                    slide_topics: slide.topics.clone(),
                    at: Some(e.at),
                };
                profile::push_capped(&mut facts.questions, fact);
            }
            "follow_up_request" => {
                let topic = short(str_field(p, "topic").unwrap_or(""));
                let d = format!("follow-up requested on {}", if topic.is_empty() { "the slide" } else { &topic });
                let extra = (!topic.is_empty()).then_some(topic.as_str());
                credit(
                    profile,
                    slide,
                    extra,
                    evidence(&e.uuid, e.at, "follow_up_request", &slide.id, d, POINTS_FOLLOW_UP),
                    POINTS_FOLLOW_UP,
                    false,
                );
                let facts = profile.products.entry(deck.product.clone()).or_default();
                let fact = FollowUpFact { uuid: e.uuid.clone(), slide: slide.id.clone(), topic: topic.clone(), at: Some(e.at) };
                profile::push_capped(&mut facts.follow_ups, fact);
            }
            _ => {}
        }
    }
    call_points
}

/// Authored ids (question ids, follow-up topics) are kept short in evidence.
fn short(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(60).collect()
}

fn microsite_request(input: &CallInput, deck: &DeckMeta, topic_points: &[(String, f64)]) -> Option<MicrositeRequest> {
    let mut req = MicrositeRequest::default();
    for e in input.events.iter().filter(|e| e.kind == "follow_up_request") {
        let slide = str_field(&e.payload, "slide").and_then(|s| deck.slide(s));
        let topic = str_field(&e.payload, "topic").map(short);
        req.why.push(format!(
            "follow-up requested on {} (slide {})",
            topic.as_deref().unwrap_or("the slide"),
            slide.map_or("unknown", |s| s.id.as_str())
        ));
        for t in topic.into_iter().chain(slide.into_iter().flat_map(|s| s.topics.iter().cloned())) {
            if !req.topics.contains(&t) {
                req.topics.push(t);
            }
        }
    }
    for (t, p) in topic_points.iter().filter(|(_, p)| *p >= MICROSITE_TOPIC_POINTS) {
        req.why.push(format!("strong interest in {t}: {p:.1} points in this call (threshold {MICROSITE_TOPIC_POINTS:.1})"));
        if !req.topics.contains(t) {
            req.topics.push(t.clone());
        }
    }
    (!req.why.is_empty()).then_some(req)
}

/// Folds the call's views and reactions (per event, so a reaction outside an open view still
/// counts in the mix) into the deck stats; returns the counted views of known slides.
#[allow(clippy::too_many_arguments)]
fn fold_stats(
    events: &[AnalyzedEvent],
    channel: &str,
    deck: &DeckMeta,
    stats: &mut DeckStats,
    segment: Option<&str>,
    derived: &views::DerivedViews,
    preview: bool,
    at: Option<DateTime<Utc>>,
) -> u64 {
    if stats.bundle_id.is_empty() {
        stats.bundle_id = deck.bundle_id.clone();
    }
    stats.calls += 1;
    if stats.last_call_at.is_none_or(|t| at.is_some_and(|a| a > t)) {
        stats.last_call_at = at;
    }
    let counted: Vec<&views::CallView> = derived.views.iter().filter(|v| v.counts).collect();
    let known: Vec<&views::CallView> = counted.iter().copied().filter(|v| deck.slide(&v.slide).is_some()).collect();
    stats.unknown_slide_views += (counted.len() - known.len()) as u64;

    let ch = stats.channels.entry(channel.to_string()).or_default();
    ch.calls += 1;
    ch.views += known.len() as u64;
    for v in &known {
        *ch.slide_views.entry(v.slide.clone()).or_default() += 1;
    }
    if preview {
        return known.len() as u64;
    }
    // How the rep changed the hub's plan (`call_plan`): what the analytics learn from reps.
    for e in events.iter().filter(|e| e.kind == "call_plan") {
        let list = |k: &str| -> Vec<String> {
            e.payload.get(k).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
        };
        let edits = &mut stats.respond.rep_edits;
        for (k, count) in [("planned", 0), ("kept", 1), ("dropped", 2), ("added", 3)] {
            for slide in list(k).into_iter().filter(|s| deck.slide(s).is_some()) {
                let t = edits.entry(slide).or_default();
                match count {
                    0 => t.planned += 1,
                    1 => t.kept += 1,
                    2 => t.dropped += 1,
                    _ => t.added += 1,
                }
            }
        }
    }

    let last_visible = known.iter().rev().find(|v| deck.slide(&v.slide).is_some_and(|s| !s.hidden)).map(|v| v.slide.as_str());
    let mut segments = vec![SEGMENT_ALL];
    if let Some(s) = segment.filter(|s| *s != SEGMENT_ALL && !s.is_empty()) {
        segments.push(s);
    }
    for seg in segments {
        let st = stats.segments.entry(seg.to_string()).or_default();
        st.calls += 1;
        let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
        for v in &known {
            let ss = st.slides.entry(v.slide.clone()).or_default();
            let n = seen.entry(v.slide.as_str()).or_default();
            *n += 1;
            if *n == 1 {
                ss.calls_viewed += 1;
            } else {
                ss.revisits += 1;
            }
            ss.views += 1;
            if v.hcp_led {
                ss.hcp_led_views += 1;
            }
            ss.dwell.add(v.dwell_ms);
        }
        if let Some(last) = last_visible {
            st.slides.entry(last.to_string()).or_default().drop_offs += 1;
        }
        for e in events.iter().filter(|e| e.kind == "reaction") {
            if let Some(slide) = derived.slide_of(e).and_then(|s| deck.slide(s)) {
                st.slides.entry(slide.id.clone()).or_default().reactions.add(str_field(&e.payload, "value").unwrap_or("neutral"));
            }
        }
    }
    known.len() as u64
}
