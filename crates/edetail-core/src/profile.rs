//! Local personalization from this device's own history: a per-HCP interest profile by topic
//! and a suggested slide order for the next call, available offline.
//!
//! Interest for a slide view = dwell relative to the slide's typical (median) dwell on this
//! device, plus revisits, reactions, survey answers and follow-up requests, credited to the
//! slide's topics. The hub computes the authoritative version across devices (later issue).

use std::collections::BTreeMap;

use edetail_protocol::EventKind;
use serde::Serialize;
use serde_json::Value;

use crate::calls::{Calls, derive_views};
use crate::context::Context;
use crate::error::Result;
use crate::outbox::Outbox;
use crate::suggestion::{SuggestedSlide, Suggestion, SuggestionSource};

/// Weights, named so they can be tuned and explained.
pub const WEIGHT_REVISIT: f64 = 0.5;
pub const WEIGHT_POSITIVE: f64 = 1.0;
pub const WEIGHT_NEGATIVE: f64 = -0.5;
pub const WEIGHT_ANSWER: f64 = 1.0;
pub const WEIGHT_FOLLOW_UP: f64 = 2.0;
/// How many of the strongest topics a local suggestion names among its reasons.
pub const SUGGESTION_TOP_TOPICS: usize = 3;
/// Relative dwell is capped so one forgotten tablet does not dominate.
pub const MAX_RELATIVE_DWELL: f64 = 4.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicInterest {
    pub topic: String,
    pub score: f64,
    /// Counted slide views that contributed.
    pub views: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterestProfile {
    pub hcp_id: String,
    pub calls: u32,
    /// Highest first.
    pub topics: Vec<TopicInterest>,
}

/// Lower median: with few calls on a device, the typical dwell leans to the brisk views, so a
/// real lingering stands out.
fn median(mut v: Vec<i64>) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[(v.len() - 1) / 2]
}

/// The local profile view of a device (`Device::profile`).
#[derive(Debug, Clone, Copy)]
pub struct Profile<'a> {
    ctx: &'a Context,
}

impl<'a> Profile<'a> {
    pub(crate) fn new(ctx: &'a Context) -> Profile<'a> {
        Profile { ctx }
    }

    /// The interest profile of one HCP from this device's recorded calls.
    pub fn interest_profile(&self, hcp_id: &str) -> Result<InterestProfile> {
        let calls = Calls::new(self.ctx).list()?;
        // Typical dwell per slide across all HCPs.
        let mut all_dwells: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut per_call = Vec::new();
        for c in &calls {
            let events = Outbox::new(self.ctx.databases()).for_call(&c.id)?;
            for v in derive_views(&events) {
                all_dwells.entry(v.slide_id.clone()).or_default().push(v.dwell_ms);
            }
            if c.hcp_id.as_deref() == Some(hcp_id) {
                per_call.push((c.clone(), events));
            }
        }
        let typical: BTreeMap<String, i64> = all_dwells.into_iter().map(|(k, v)| (k, median(v).max(1000))).collect();
        let mut scores: BTreeMap<String, (f64, u32)> = BTreeMap::new();
        for (c, events) in &per_call {
            let Some(bundle) = c.bundle_id.as_ref().and_then(|b| self.ctx.content().active(b).ok()) else { continue };
            let topics_of = |slide: &str| bundle.manifest.slide(slide).map(|s| s.topics.clone()).unwrap_or_default();
            let mut seen: BTreeMap<String, u32> = BTreeMap::new();
            for v in derive_views(events).into_iter().filter(|v| v.counts) {
                let rel = (v.dwell_ms as f64 / *typical.get(&v.slide_id).unwrap_or(&1000) as f64).min(MAX_RELATIVE_DWELL);
                let n = seen.entry(v.slide_id.clone()).or_default();
                *n += 1;
                let mut s = rel + if *n > 1 { WEIGHT_REVISIT } else { 0.0 };
                for r in &v.reactions {
                    s += match r.as_str() {
                        "positive" => WEIGHT_POSITIVE,
                        "negative" => WEIGHT_NEGATIVE,
                        _ => 0.0,
                    };
                }
                for t in topics_of(&v.slide_id) {
                    let e = scores.entry(t).or_default();
                    e.0 += s;
                    e.1 += 1;
                }
            }
            for e in events {
                let slide = e.payload.get("slide").and_then(Value::as_str).unwrap_or_default();
                match EventKind::parse(&e.kind) {
                    Ok(EventKind::SurveyAnswer) => {
                        for t in topics_of(slide) {
                            scores.entry(t).or_default().0 += WEIGHT_ANSWER;
                        }
                    }
                    Ok(EventKind::FollowUpRequest) => {
                        if let Some(t) = e.payload.get("topic").and_then(Value::as_str) {
                            scores.entry(t.to_string()).or_default().0 += WEIGHT_FOLLOW_UP;
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut topics: Vec<TopicInterest> = scores
            .into_iter()
            .map(|(topic, (score, views))| TopicInterest { topic, score: (score * 100.0).round() / 100.0, views })
            .collect();
        topics.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.topic.cmp(&b.topic)));
        Ok(InterestProfile { hcp_id: hcp_id.into(), calls: per_call.len() as u32, topics })
    }

    /// A suggested order of the visible slides of a bundle's main presentation for the next
    /// call with this HCP: the opening slide stays first, then slides by the HCP's interest in
    /// their topics (stable for ties, so an HCP without history gets the authored order).
    pub fn suggested_order(&self, hcp_id: &str, bundle_id: &str) -> Result<Vec<String>> {
        Ok(self.local_suggestion(hcp_id, bundle_id)?.slide_ids())
    }

    /// The local suggestion ([`Profile::suggested_order`]) with its reasons: per slide the topic
    /// interest that placed it, and overall the calls and strongest topics it rests on.
    pub fn local_suggestion(&self, hcp_id: &str, bundle_id: &str) -> Result<Suggestion> {
        let profile = self.interest_profile(hcp_id)?;
        let interest: BTreeMap<&str, f64> = profile.topics.iter().map(|t| (t.topic.as_str(), t.score)).collect();
        let active = self.ctx.content().active(bundle_id)?;
        let m = &active.manifest;
        let mut reasons = Vec::new();
        if profile.calls == 0 {
            reasons.push("no earlier calls with this HCP on this device: authored order".to_string());
        } else {
            reasons.push(format!("{} earlier call(s) with this HCP on this device", profile.calls));
            for t in profile.topics.iter().filter(|t| t.score > 0.0).take(SUGGESTION_TOP_TOPICS) {
                reasons.push(format!("interest in {}: {} over {} view(s)", t.topic, t.score, t.views));
            }
        }
        let Some(deck) = m.presentations.iter().find(|p| !p.hidden) else {
            return Ok(Suggestion { source: SuggestionSource::Local, slides: Vec::new(), reasons });
        };
        // (authored position, slide, best interest, the topic that gave it)
        let mut slides: Vec<(usize, &str, f64, Option<&str>)> = deck
            .slides
            .iter()
            .enumerate()
            .filter_map(|(i, id)| {
                m.slide(id).filter(|s| !s.hidden).map(|s| {
                    let best = s
                        .topics
                        .iter()
                        .map(|t| (interest.get(t.as_str()).copied().unwrap_or(0.0), t.as_str()))
                        .fold((0.0, None), |acc, (v, t)| if v > acc.0 { (v, Some(t)) } else { acc });
                    (i, s.id.as_str(), best.0, best.1)
                })
            })
            .collect();
        if slides.len() > 1 {
            slides[1..].sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
        }
        let slides = slides
            .into_iter()
            .enumerate()
            .map(|(pos, (_, id, score, topic))| SuggestedSlide {
                slide_id: id.to_string(),
                presentation_id: deck.id.clone(),
                reason: match topic {
                    _ if pos == 0 => "opening slide".to_string(),
                    Some(t) => format!("interest in {t} ({score:.2})"),
                    None => "authored order".to_string(),
                },
            })
            .collect();
        Ok(Suggestion { source: SuggestionSource::Local, slides, reasons })
    }
}
