//! The respond step on the dashboard: the parts of the experiment page (an estimate with its
//! confidence interval or "not enough data", plan outcomes, slides before stage moves) and the
//! cards the deck and HCP pages show about plans (objectives and outcomes, reps' edits).

use std::fmt::Write;

use super::html::{deck_href, fmt_opt_time, fmt_pct, html_escape as e, stage_badge};
use super::model::*;
use crate::analytics::Estimate;

/// A signed number with `digits` decimals (`+0.42`, `-1.50`).
fn signed(x: f64, digits: usize) -> String {
    format!("{x:+.digits$}")
}

/// One estimate: the difference and its interval drawn on an axis through zero, or the
/// "not enough data" notice. `metric` names it in `data-estimate`, `unit` follows numbers.
pub fn estimate(out: &mut String, product: &str, metric: &str, label: &str, unit: &str, est: &Estimate) {
    match est {
        Estimate::NotEnoughData { treatment_n, holdout_n, min_per_arm } => {
            let _ = write!(
                out,
                r#"<div class="estimate" data-estimate="{metric}" data-product="{p}" data-result="not_enough_data" data-treatment-n="{treatment_n}" data-holdout-n="{holdout_n}"><h3>{label}</h3><p class="empty">Not enough data: {treatment_n} HCPs in treatment and {holdout_n} in holdout with this figure; at least {min_per_arm} in each arm are needed before an effect is shown.</p></div>"#,
                p = e(product),
            );
        }
        Estimate::Effect { treatment_n, holdout_n, treatment_mean, holdout_mean, difference, low, high } => {
            let verdict = if *low > 0.0 {
                ("ok", "plans do better than the holdout")
            } else if *high < 0.0 {
                ("bad", "plans do worse than the holdout")
            } else {
                ("", "no difference shown yet: the interval includes zero")
            };
            let _ = write!(
                out,
                r#"<div class="estimate" data-estimate="{metric}" data-product="{p}" data-result="effect" data-treatment-n="{treatment_n}" data-holdout-n="{holdout_n}" data-difference="{difference:.4}" data-low="{low:.4}" data-high="{high:.4}"><h3>{label}</h3><p><strong>{d}{unit}</strong> treatment − holdout (95% CI {l} to {h}) <span class="badge {cls}">{why}</span><br><span class="hint">treatment {tm:.2}{unit} (n={treatment_n}) · holdout {hm:.2}{unit} (n={holdout_n})</span></p>"#,
                p = e(product),
                d = signed(*difference, 2),
                l = signed(*low, 2),
                h = signed(*high, 2),
                cls = verdict.0,
                why = verdict.1,
                tm = treatment_mean,
                hm = holdout_mean,
            );
            out.push_str(&interval_svg(metric, *difference, *low, *high));
            out.push_str("</div>");
        }
    }
}

/// The interval on an axis that always shows zero.
fn interval_svg(metric: &str, difference: f64, low: f64, high: f64) -> String {
    let (w, h, pad) = (520.0, 46.0, 30.0);
    let lo = low.min(0.0);
    let hi = high.max(0.0);
    let span = if hi - lo <= f64::EPSILON { 1.0 } else { hi - lo };
    let x = |v: f64| pad + (v - lo) / span * (w - 2.0 * pad);
    format!(
        r##"<svg data-chart="effect" data-metric="{metric}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="difference {difference:.2}, 95% interval {low:.2} to {high:.2}"><line class="grid" x1="{x0}" y1="6" x2="{x0}" y2="{yb}"/><text class="axis" x="{x0}" y="{yt}" text-anchor="middle">0</text><line class="ci" x1="{xl}" y1="20" x2="{xh}" y2="20" stroke="#1f5fa8" stroke-width="3"/><line x1="{xl}" y1="13" x2="{xl}" y2="27" stroke="#1f5fa8" stroke-width="2"/><line x1="{xh}" y1="13" x2="{xh}" y2="27" stroke="#1f5fa8" stroke-width="2"/><circle class="point" cx="{xd}" cy="20" r="6" fill="#14324f"/></svg>"##,
        x0 = x(0.0),
        xl = x(low),
        xh = x(high),
        xd = x(difference),
        yb = h - 14.0,
        yt = h - 2.0,
    )
}

/// Plan outcomes by arm and objective.
pub fn outcomes_table(out: &mut String, rows: &[OutcomeRow]) {
    if rows.is_empty() {
        out.push_str(
            r#"<p class="empty" data-empty="outcomes">No plan settled yet: a plan is settled by the HCP's next call or channel touch.</p>"#,
        );
        return;
    }
    out.push_str(r#"<table data-table="outcomes"><thead><tr><th>Arm</th><th>Objective</th><th class="n">Achieved</th><th class="n">Missed</th><th class="n">Rate</th></tr></thead><tbody>"#);
    for r in rows {
        let total = r.achieved + r.missed;
        let _ = write!(
            out,
            r#"<tr data-arm="{arm}" data-objective="{o}" data-achieved="{a}" data-missed="{m}"><td>{arm}</td><td>{badge}</td><td class="n">{a}</td><td class="n">{m}</td><td class="n">{rate}</td></tr>"#,
            arm = e(&r.arm),
            o = e(&r.objective),
            badge = stage_badge(&r.objective),
            a = r.achieved,
            m = r.missed,
            rate = if total == 0 { "—".to_string() } else { fmt_pct(r.achieved as f64 / total as f64) },
        );
    }
    out.push_str("</tbody></table>");
}

/// Slides viewed in the calls that moved HCPs up.
pub fn stage_moves_table(out: &mut String, rows: &[StageMoveRow], with_deck: bool) {
    if rows.is_empty() {
        out.push_str(r#"<p class="empty" data-empty="stage-moves">No stage moves recorded yet.</p>"#);
        return;
    }
    let _ = write!(
        out,
        r#"<table data-table="stage-moves"><thead><tr><th>Stage reached</th>{deck}<th>Slide</th><th class="n">Calls</th><th class="n">Of the moves</th></tr></thead><tbody>"#,
        deck = if with_deck { "<th>Deck</th>" } else { "" }
    );
    for r in rows {
        let deck = if with_deck {
            format!(r#"<td><a href="{}" class="id">{}</a></td>"#, e(&deck_href(&r.bundle_id, None)), e(&r.bundle_id))
        } else {
            String::new()
        };
        let _ = write!(
            out,
            r#"<tr data-slide="{s}" data-stage="{st}" data-calls="{c}"><td>{badge}</td>{deck}<td>{t}<br><span class="id">{s}</span></td><td class="n">{c}</td><td class="n">{share}</td></tr>"#,
            s = e(&r.slide_id),
            st = e(&r.stage),
            badge = stage_badge(&r.stage),
            t = e(&r.title),
            c = r.calls,
            share = fmt_pct(r.share),
        );
    }
    out.push_str("</tbody></table>");
}

/// The deck page's respond cards.
pub fn deck_cards(out: &mut String, d: &DeckView) {
    out.push_str(r#"<div class="grid2"><div class="card" id="outcomes"><h2>Plan outcomes</h2><p class="hint">Did the HCP's next call or channel touch reach the stage the plan aimed for? Holdout HCPs get the deck's default order.</p>"#);
    outcomes_table(out, &d.outcomes);
    out.push_str(r#"</div><div class="card" id="stage-moves"><h2>Slides before stage moves</h2><p class="hint">Slides viewed in the calls after which HCPs moved up, for content teams. Viewed before a move is not the same as caused it: the experiment page measures cause.</p>"#);
    stage_moves_table(out, &d.stage_moves, false);
    out.push_str("</div></div>");
    if !d.rep_edits.is_empty() {
        out.push_str(r#"<div class="card" id="rep-edits"><h2>Reps' edits of plans</h2><p class="hint">Slides reps drop from most plans go after the rest of their step in later plans.</p><table data-table="rep-edits"><thead><tr><th>Slide</th><th class="n">Planned</th><th class="n">Kept</th><th class="n">Dropped</th><th class="n">Added</th></tr></thead><tbody>"#);
        for r in &d.rep_edits {
            let _ = write!(
                out,
                r#"<tr data-slide="{s}" data-planned="{p}" data-kept="{k}" data-dropped="{dr}" data-added="{a}"><td>{t}<br><span class="id">{s}</span></td><td class="n">{p}</td><td class="n">{k}</td><td class="n">{dr}</td><td class="n">{a}</td></tr>"#,
                s = e(&r.slide_id),
                t = e(&r.title),
                p = r.planned,
                k = r.kept,
                dr = r.dropped,
                a = r.added,
            );
        }
        out.push_str("</tbody></table></div>");
    }
}

/// The HCP page's plans card: objectives and outcomes.
pub fn hcp_plans(out: &mut String, h: &HcpView) {
    out.push_str(r#"<div class="card" id="plan-outcomes"><h2>Plans and outcomes</h2>"#);
    for (product, arm) in &h.arms {
        let _ = write!(
            out,
            r#"<p data-arm-product="{p}" data-arm="{a}">{p}: in the experiment's <strong>{a}</strong> arm{why}</p>"#,
            p = e(product),
            a = e(arm),
            why = if arm == "holdout" { " (gets the deck's default order, to measure what plans change)" } else { "" },
        );
    }
    if h.plans.is_empty() {
        out.push_str(r#"<p class="empty" data-empty="plan-outcomes">No plan sent yet.</p></div>"#);
        return;
    }
    out.push_str(r#"<table data-table="plan-outcomes"><thead><tr><th>Made</th><th>Product</th><th>Objective</th><th>Arm</th><th>Outcome</th><th>Followed</th></tr></thead><tbody>"#);
    for p in &h.plans {
        let cls = match p.outcome.as_str() {
            "achieved" => "ok",
            "missed" => "warn",
            _ => "",
        };
        let _ = write!(
            out,
            r#"<tr data-plan="{id}" data-objective="{o}" data-outcome="{oc}"><td>{at}</td><td>{prod}</td><td>{badge}</td><td>{arm}</td><td><span class="badge {cls}">{oc}</span></td><td>{f}</td></tr>"#,
            id = e(&p.plan_id),
            o = e(&p.objective),
            oc = e(&p.outcome),
            at = e(&fmt_opt_time(&p.made_at)),
            prod = e(&p.product),
            badge = stage_badge(&p.objective),
            arm = e(&p.arm),
            f = if p.outcome == "open" {
                "—"
            } else if p.followed {
                "yes"
            } else {
                "no"
            },
        );
    }
    out.push_str("</tbody></table></div>");
}
