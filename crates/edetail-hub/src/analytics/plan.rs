//! The response side: the next-call plan for one HCP on one deck, and the slides of a
//! follow-up microsite. Only selects and orders approved slides of the deck (never invents
//! slide ids); every item says why, with short evidence (no free text). Pure.

use chrono::{DateTime, Utc};
use edetail_protocol::{Plan, PlanItem};

use super::deck::{DeckMeta, DeckStats, SlideMeta};
use super::profile::HcpProfile;
use super::stages::{Stage, StageRules};

/// The HCP's interest in a slide: the strongest of its topics and its key message, with the
/// name it came from.
fn slide_interest<'a>(profile: &HcpProfile, slide: &'a SlideMeta) -> (f64, Option<&'a str>) {
    let mut best: (f64, Option<&str>) = (0.0, None);
    for t in &slide.topics {
        let s = profile.topic_score(t);
        if best.1.is_none() || s > best.0 {
            best = (s, Some(t.as_str()));
        }
    }
    if let Some(k) = slide.key_message.as_deref() {
        let s = profile.key_messages.get(k).map_or(0.0, |i| i.score());
        if best.1.is_none() || s > best.0 {
            best = (s, Some(k));
        }
    }
    best
}

fn item(slide: &SlideMeta, reason: String, evidence: Vec<String>) -> PlanItem {
    PlanItem { slide_id: slide.id.clone(), presentation_id: slide.presentation.clone(), reason, evidence, mandatory: false }
}

/// The next-call plan for one HCP on one deck, with the built-in stage rules deciding what
/// the next step is.
pub fn build_plan(
    profile: &HcpProfile,
    deck: &DeckMeta,
    stats: &DeckStats,
    territory: &str,
    plan_id: &str,
    now: DateTime<Utc>,
    valid_for: chrono::Duration,
) -> Plan {
    build_plan_with_rules(profile, deck, stats, territory, plan_id, now, valid_for, &StageRules::default())
}

/// [`build_plan`] with the operator's rules (their topics for the next stage become "next step"
/// slides).
#[allow(clippy::too_many_arguments)]
pub fn build_plan_with_rules(
    profile: &HcpProfile,
    deck: &DeckMeta,
    stats: &DeckStats,
    territory: &str,
    plan_id: &str,
    now: DateTime<Utc>,
    valid_for: chrono::Duration,
    rules: &StageRules,
) -> Plan {
    let stage = profile.stage(&deck.product);
    let facts = profile.products.get(&deck.product);
    let seen = |id: &str| facts.is_some_and(|f| f.slides_seen.get(id).is_some_and(|s| s.views > 0));
    let next = stage.next();
    let next_topics = next.map(|n| rules.topics_for(n, &deck.product)).unwrap_or_default();
    let early = stage < Stage::Educated;

    let mut awareness = Vec::new();
    let mut skipped = Vec::new();
    let mut interesting: Vec<(f64, usize, PlanItem)> = Vec::new();
    let mut next_step = Vec::new();
    let mut rest = Vec::new();
    for (pos, slide) in deck.slides.iter().enumerate().filter(|(_, s)| s.plannable()) {
        let (score, source) = slide_interest(profile, slide);
        let mut evidence = vec![format!("stage {}", stage.as_str())];
        if let Some(s) = facts.and_then(|f| f.slides_seen.get(&slide.id)) {
            evidence.push(format!("counted views {}, longest {:.1} s", s.views, s.max_dwell_ms as f64 / 1000.0));
        } else {
            evidence.push("never seen".into());
        }
        if let Some(median) = stats.slide(super::SEGMENT_ALL, &slide.id).and_then(|s| s.median_dwell_ms()) {
            evidence.push(format!("typical dwell {:.1} s", median as f64 / 1000.0));
        }
        if slide.is_awareness() {
            if early {
                awareness.push(item(slide, format!("HCP is {}: start with awareness", stage.as_str()), evidence));
            } else {
                skipped.push(item(slide, format!("HCP is already {}: awareness slide not needed", stage.as_str()), evidence));
            }
            continue;
        }
        if score > 0.0 {
            let src = source.unwrap_or_default();
            let events = profile.topics.get(src).or_else(|| profile.key_messages.get(src)).map_or(0, |i| i.events);
            evidence.push(format!("interest {src}: {score:.2} from {events} events"));
            interesting.push((score, pos, item(slide, format!("strong interest in {src} ({score:.2})"), evidence)));
        } else if !seen(&slide.id) && next_topics.iter().any(|t| slide.has_topic(t)) {
            let n = next.map_or("", Stage::as_str);
            next_step.push(item(slide, format!("next step toward {n}"), evidence));
        } else {
            rest.push(item(slide, "deck order".into(), evidence));
        }
    }
    interesting.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

    let mut reasons = vec![match facts.and_then(|f| f.stage_history.last()) {
        Some(c) => format!("stage {} for {} (rule {}: {})", stage.as_str(), deck.product, c.rule_id, c.rule_description),
        None => format!("stage {} for {}", stage.as_str(), deck.product),
    }];
    let top: Vec<String> = profile.top_topics().into_iter().filter(|(_, s)| *s > 0.0).take(3).map(|(t, s)| format!("{t} {s:.2}")).collect();
    if top.is_empty() {
        reasons.push("no interest recorded yet: deck order".into());
    } else {
        reasons.push(format!("top interests: {}", top.join(", ")));
    }
    reasons.push(format!("{} calls on {}", facts.map_or(0, |f| f.calls), deck.product));

    let items = awareness.into_iter().chain(interesting.into_iter().map(|(.., i)| i)).chain(next_step).chain(rest).collect();
    Plan {
        plan_id: plan_id.to_string(),
        hcp_id: profile.hcp_id.clone(),
        territory: territory.to_string(),
        product: deck.product.clone(),
        bundle_id: deck.bundle_id.clone(),
        bundle_version: deck.bundle_version,
        stage: stage.as_str().to_string(),
        generated_at: now,
        valid_until: now + valid_for,
        items,
        skipped,
        reasons,
        objective: next.map(|n| n.as_str().to_string()),
        arm: None,
    }
}

/// Approved slides for the HCP's follow-up microsite: the slides on the given topics
/// (visible, deck order), at most `max`. With more candidates than `max`, the ones the HCP is
/// most interested in are kept (ties by deck order), still listed in deck order.
pub fn microsite_slides(profile: &HcpProfile, deck: &DeckMeta, topics: &[String], max: usize) -> Vec<String> {
    let mut candidates: Vec<(usize, f64, &str)> = deck
        .slides
        .iter()
        .enumerate()
        .filter(|(_, s)| s.plannable() && topics.iter().any(|t| s.has_topic(t)))
        .map(|(i, s)| (i, slide_interest(profile, s).0, s.id.as_str()))
        .collect();
    if candidates.len() > max {
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        candidates.truncate(max);
        candidates.sort_by_key(|c| c.0);
    }
    candidates.into_iter().map(|(.., id)| id.to_string()).collect()
}
