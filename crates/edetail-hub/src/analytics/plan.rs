//! The response side: the next-call plan for one HCP on one deck (the next step of her adoption
//! ladder, bounded and explained), and the slides of a follow-up microsite. Only selects and orders approved slides of the deck (never invents
//! slide ids); every item says why, with short evidence (no free text). Pure.

use chrono::{DateTime, Utc};
use edetail_protocol::{Plan, PlanItem};

use super::deck::{DeckMeta, DeckStats, SlideMeta};
use super::experiment::Arm;
use super::profile::{HcpProfile, PlanRecord};
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
    PlanItem { slide_id: slide.id.clone(), presentation_id: slide.presentation.clone(), reason, evidence, mandatory: slide.mandatory }
}

/// The next-call plan for one HCP on one deck, with the built-in stage rules and policy.
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

/// A slide reps drop this often from plans (at least [`REP_DROP_MIN_PLANS`] plans, more than
/// half of them) goes after the other slides of its step.
pub const REP_DROP_MIN_PLANS: u64 = 5;

/// Reps dropped the slide from most plans that had it (`call_plan` events).
fn reps_drop(stats: &DeckStats, slide: &str) -> Option<String> {
    let e = stats.respond.rep_edits.get(slide)?;
    (e.planned >= REP_DROP_MIN_PLANS && e.dropped * 2 > e.planned)
        .then(|| format!("reps dropped it from {} of {} plans", e.dropped, e.planned))
}

/// The next-call plan for one HCP on one deck under the operator's policy.
///
/// A short, explained sequence for the HCP's next step on the adoption ladder: the slides
/// serving the lowest step above her stage that still has slides she has not absorbed (viewed
/// as long as is typical), ordered by her interest; then the step after (no further), up to
/// `rules.plan.max_slides` content slides; then every mandatory slide (fair balance). Absorbed
/// slides, slides of steps she has passed, slides serving no step and slides beyond the bound
/// are in `skipped` with the reason. An HCP in the experiment's holdout gets the deck's default
/// order instead ([`super::experiment`]). The plan's `objective` is the step it leads with.
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
    let arm = super::experiment::arm_for(profile, &deck.product, &rules.experiment);
    let seen = |id: &str| facts.and_then(|f| f.slides_seen.get(id)).filter(|s| s.views > 0);

    let mut stage_line = match facts.and_then(|f| f.stage_history.last()) {
        Some(c) => format!("stage {} for {} (rule {}: {})", stage.as_str(), deck.product, c.rule_id, c.rule_description),
        None => format!("stage {} for {}", stage.as_str(), deck.product),
    };
    if let Some(f) = facts.filter(|f| f.calls > 0) {
        stage_line.push_str(&format!(", {} calls", f.calls));
    }
    let evidence_of = |slide: &SlideMeta| {
        let mut evidence = vec![format!("stage {}", stage.as_str())];
        match seen(&slide.id) {
            Some(s) => evidence.push(format!("counted views {}, longest {:.1} s", s.views, s.max_dwell_ms as f64 / 1000.0)),
            None => evidence.push("never seen".into()),
        }
        evidence.push(format!("typical dwell {:.1} s", stats.typical_dwell_ms(&slide.id) as f64 / 1000.0));
        evidence
    };
    // What every plan says about itself; the arms differ in items, reasons and objective.
    let header = Plan {
        plan_id: plan_id.to_string(),
        hcp_id: profile.hcp_id.clone(),
        territory: territory.to_string(),
        product: deck.product.clone(),
        bundle_id: deck.bundle_id.clone(),
        bundle_version: deck.bundle_version,
        stage: stage.as_str().to_string(),
        generated_at: now,
        valid_until: now + valid_for,
        items: vec![],
        skipped: vec![],
        reasons: vec![],
        objective: None,
        arm: None,
    };
    let mandatory: Vec<PlanItem> = deck
        .slides
        .iter()
        .filter(|s| s.mandatory)
        .map(|s| item(s, "mandatory in every promotional call (fair balance)".into(), vec![]))
        .collect();

    if arm == Arm::Holdout {
        let items = deck
            .slides
            .iter()
            .filter(|s| s.plannable() && !s.mandatory)
            .map(|s| item(s, "deck order (experiment holdout)".into(), evidence_of(s)))
            .chain(mandatory)
            .collect();
        let share = rules.experiment.holdout_share * 100.0;
        return Plan {
            items,
            reasons: vec![
                stage_line,
                format!(
                    "holdout: the deck's default order, not a personalized plan ({share:.0}% of HCPs per product, to measure what plans change)"
                ),
            ],
            objective: stage.next().map(|n| n.as_str().to_string()),
            arm: Some(Arm::Holdout.as_str().into()),
            ..header
        };
    }

    // (step, -interest, dropped by reps, deck position, item)
    let mut candidates: Vec<(Stage, f64, bool, usize, PlanItem)> = Vec::new();
    // Absorbed slides of steps still ahead of her: left out, unless nothing else is left.
    let mut absorbed: Vec<(Stage, f64, bool, usize, PlanItem)> = Vec::new();
    let mut skipped = Vec::new();
    let any_steps = deck.slides.iter().any(|s| s.plannable() && !s.steps.is_empty());
    for (pos, slide) in deck.slides.iter().enumerate().filter(|(_, s)| s.plannable() && !s.mandatory) {
        let mut evidence = evidence_of(slide);
        let (score, source) = slide_interest(profile, slide);
        if score > 0.0 {
            let src = source.unwrap_or_default();
            let events = profile.topics.get(src).or_else(|| profile.key_messages.get(src)).map_or(0, |i| i.events);
            evidence.push(format!("interest {src}: {score:.2} from {events} events"));
        }
        let dropped = reps_drop(stats, &slide.id);
        if let Some(d) = &dropped {
            evidence.push(d.clone());
        }
        if !any_steps {
            // A deck that declares no steps (and whose topics imply none): deck order.
            candidates.push((
                Stage::Advocate,
                0.0,
                false,
                pos,
                item(slide, "deck order: the deck declares no adoption steps".into(), evidence),
            ));
            continue;
        }
        let Some(target) = slide.steps.iter().copied().filter(|s| *s > stage).min() else {
            let reason = match slide.steps.iter().max() {
                Some(s) => format!("serves {}: HCP is already {}", s.as_str(), stage.as_str()),
                None => "serves no adoption step".into(),
            };
            skipped.push(item(slide, reason, evidence));
            continue;
        };
        let typical = stats.typical_dwell_ms(&slide.id);
        match seen(&slide.id) {
            Some(s) if stats.absorbed(&slide.id, s.max_dwell_ms) => {
                let reason = format!(
                    "already absorbed: viewed {:.1} s, as long as is typical ({:.1} s)",
                    s.max_dwell_ms as f64 / 1000.0,
                    typical as f64 / 1000.0
                );
                absorbed.push((target, score, dropped.is_some(), pos, item(slide, reason, evidence)));
            }
            Some(s) => {
                let reason = format!(
                    "step toward {}: not yet absorbed ({:.1} s of a typical {:.1} s)",
                    target.as_str(),
                    s.max_dwell_ms as f64 / 1000.0,
                    typical as f64 / 1000.0
                );
                candidates.push((target, score, dropped.is_some(), pos, item(slide, reason, evidence)));
            }
            None => {
                let reason = format!("step toward {}: not yet seen", target.as_str());
                candidates.push((target, score, dropped.is_some(), pos, item(slide, reason, evidence)));
            }
        }
    }
    let order = |a: &(Stage, f64, bool, usize, PlanItem), b: &(Stage, f64, bool, usize, PlanItem)| {
        a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3))
    };
    absorbed.sort_by(order);
    // She absorbed everything ahead of her and has not moved: reinforce the next step's
    // material (the rule wants more than views, e.g. her answer), strongest interest first.
    let reinforce = candidates.is_empty() && !absorbed.is_empty();
    if reinforce {
        let step = absorbed[0].0;
        for (target, score, dropped, pos, mut it) in std::mem::take(&mut absorbed) {
            if target == step {
                it.reason = format!("reinforce: {} (she has not reached {} yet)", it.reason, step.as_str());
                candidates.push((target, score, dropped, pos, it));
            } else {
                absorbed.push((target, score, dropped, pos, it));
            }
        }
    }
    skipped.extend(absorbed.into_iter().map(|(.., it)| it));
    skipped.sort_by_key(|it| deck.position(&it.slide_id));
    candidates.sort_by(order);
    let lead = candidates.first().map(|c| c.0).filter(|_| any_steps);
    // The plan moves her one step, with a look at the step after: material further ahead waits.
    if let Some(horizon) = lead.map(|l| l.next().unwrap_or(l)) {
        let (keep, later): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|c| c.0 <= horizon);
        candidates = keep;
        for (target, .., mut it) in later {
            it.reason =
                format!("serves {}: more than a step beyond this plan's objective {}", target.as_str(), lead.map_or("", Stage::as_str));
            skipped.push(it);
        }
        skipped.sort_by_key(|it| deck.position(&it.slide_id));
    }
    let max = rules.plan.max_slides.max(1);
    let mut items = Vec::new();
    for (n, (.., it)) in candidates.into_iter().enumerate() {
        if n < max {
            items.push(it);
        } else {
            let mut it = it;
            it.reason = format!("beyond this plan's {max} slides (was: {})", it.reason);
            skipped.push(it);
        }
    }
    items.extend(mandatory);

    let objective = lead.or(stage.next());
    let mut reasons = vec![stage_line];
    match (lead, stage.next()) {
        (Some(l), _) if reinforce => reasons.push(format!(
            "objective {}: she has absorbed every slide ahead of her without moving; the plan reinforces the {} material",
            l.as_str(),
            l.as_str()
        )),
        (Some(l), Some(n)) if l > n => reasons.push(format!(
            "objective {}: the {} material is already absorbed, so the plan goes on to the step after",
            l.as_str(),
            n.as_str()
        )),
        (Some(l), _) => reasons.push(format!("objective {}: the next step of the adoption ladder", l.as_str())),
        (None, Some(n)) if any_steps => {
            reasons.push(format!("objective {}: every slide serving it is absorbed; only mandatory slides left", n.as_str()))
        }
        (None, _) if !any_steps => reasons.push("the deck declares no adoption steps: deck order".into()),
        _ => reasons.push("top of the ladder: nothing left to move her to".into()),
    }
    let top: Vec<String> = profile.top_topics().into_iter().filter(|(_, s)| *s > 0.0).take(3).map(|(t, s)| format!("{t} {s:.2}")).collect();
    if top.is_empty() {
        reasons.push("no interest recorded yet: deck order within each step".into());
    } else {
        reasons.push(format!("top interests (order within a step): {}", top.join(", ")));
    }
    Plan {
        items,
        skipped,
        reasons,
        objective: objective.filter(|_| any_steps).map(|o| o.as_str().to_string()),
        arm: Some(arm.as_str().into()),
        ..header
    }
}

/// Remembers in the profile that `plan` was sent: it becomes the product's open plan (settled
/// by her next call), and her first plan enrols her in the experiment in the plan's arm.
pub fn note_plan_sent(profile: &mut HcpProfile, plan: &Plan) {
    let facts = profile.products.entry(plan.product.clone()).or_default();
    let arm = plan.arm.clone().unwrap_or_else(|| Arm::Treatment.as_str().into());
    if facts.enrolled_at.is_none() {
        facts.enrolled_at = Some(plan.generated_at);
        facts.stage_at_enrolment = facts.stage;
        facts.arm = Some(arm.clone());
    }
    facts.open_plan = plan.objective.as_deref().and_then(Stage::parse).map(|objective| PlanRecord {
        plan_id: plan.plan_id.clone(),
        objective,
        from: facts.stage,
        arm,
        made_at: Some(plan.generated_at),
        ..PlanRecord::default()
    });
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
