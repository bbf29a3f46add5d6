//! Inline SVG charts. Each chart is `<svg data-chart="NAME" role="img">` with a `<title>`, and
//! every mark carries its data in `data-*` attributes (tests and scrapers read those, not
//! pixels). Geometry is computed here; colours and fonts come from the page's CSS classes.

use std::fmt::Write;

use super::html::{finite, fmt_pct, fmt_secs, fmt_time, html_escape as e, truncate};
use super::model::{EngagementRow, RxRow, SlideRow, StageView};

/// The adoption ladder, lowest first. Unknown stages are drawn on the lowest rung.
pub const STAGES: [&str; 5] = ["unaware", "aware", "educated", "convinced", "advocate"];

fn open(out: &mut String, chart: &str, title: &str, w: f64, h: f64, extra: &str) {
    let _ = write!(
        out,
        r#"<svg data-chart="{chart}" role="img" aria-label="{t}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg"{extra}><title>{t}</title>"#,
        chart = e(chart),
        t = e(title),
    );
}

/// Cell fill from light (0) to dark blue (1).
pub fn heat_colour(t: f64) -> String {
    let t = finite(t).clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!("#{:02x}{:02x}{:02x}", lerp(235.0, 20.0), lerp(243.0, 70.0), lerp(251.0, 140.0))
}

/// One cell per slide, in deck order, coloured by median dwell relative to the deck's longest.
pub fn dwell_heatmap(slides: &[SlideRow]) -> String {
    let max = slides.iter().map(|s| s.median_dwell_ms).max().unwrap_or(0);
    let cols = slides.len().clamp(1, 5);
    let rows = slides.len().div_ceil(cols).max(1);
    let (cw, ch, gap) = (168.0, 92.0, 8.0);
    let w = cols as f64 * (cw + gap) - gap;
    let h = rows as f64 * (ch + gap) - gap;
    let mut out = String::new();
    open(&mut out, "dwell-heatmap", "Median dwell per slide (darker: longer)", w, h, &format!(r#" data-max-dwell-ms="{max}""#));
    for (i, s) in slides.iter().enumerate() {
        let t = if max == 0 { 0.0 } else { s.median_dwell_ms as f64 / max as f64 };
        let x = (i % cols) as f64 * (cw + gap);
        let y = (i / cols) as f64 * (ch + gap);
        let ink = if t > 0.55 { "ink-light" } else { "ink-dark" };
        let _ = write!(
            out,
            r#"<g class="cell {ink}"><title>{n}. {title}: median {dwell} over {views} views</title><rect data-slide="{id}" data-median-dwell-ms="{ms}" data-views="{views}" data-intensity="{t:.3}" x="{x}" y="{y}" width="{cw}" height="{ch}" rx="6" fill="{fill}"/><text x="{tx}" y="{y1}" class="cell-label">{n}. {short}</text><text x="{tx}" y="{y2}" class="cell-value">{dwell}</text><text x="{tx}" y="{y3}" class="cell-sub">{views} views</text></g>"#,
            n = i + 1,
            title = e(&s.title),
            short = e(&truncate(&s.title, 20)),
            id = e(&s.slide_id),
            ms = s.median_dwell_ms,
            views = s.views,
            dwell = fmt_secs(s.median_dwell_ms),
            fill = heat_colour(t),
            tx = x + 10.0,
            y1 = y + 22.0,
            y2 = y + 54.0,
            y3 = y + 78.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// Vertical bars: share of the calls reaching each slide that ended there.
pub fn drop_off_bars(slides: &[SlideRow]) -> String {
    let (left, top, plot_h, bottom) = (40.0, 16.0, 160.0, 28.0);
    let bw = 36.0;
    let step = 52.0;
    let w = left + (slides.len().max(1) as f64) * step + 8.0;
    let h = top + plot_h + bottom;
    let mut out = String::new();
    open(&mut out, "drop-off", "Drop-off: share of calls ending on each slide", w, h, "");
    for pct in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = top + plot_h * (1.0 - pct);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{left}" x2="{x2}" y1="{y}" y2="{y}"/><text class="axis" x="{tx}" y="{ty}" text-anchor="end">{label}</text>"#,
            x2 = w - 4.0,
            tx = left - 6.0,
            ty = y + 4.0,
            label = fmt_pct(pct),
        );
    }
    for (i, s) in slides.iter().enumerate() {
        let v = finite(s.drop_off).clamp(0.0, 1.0);
        let bh = plot_h * v;
        let x = left + 8.0 + i as f64 * step;
        let y = top + plot_h - bh;
        let _ = write!(
            out,
            r#"<g class="bar drop"><title>{n}. {title}: {pct} of calls ended here</title><rect data-slide="{id}" data-drop-off="{v:.3}" x="{x}" y="{y:.1}" width="{bw}" height="{bh:.1}" rx="2"/><text class="value" x="{cx}" y="{vy:.1}" text-anchor="middle">{pct}</text><text class="axis" x="{cx}" y="{ly}" text-anchor="middle">{n}</text></g>"#,
            n = i + 1,
            title = e(&s.title),
            id = e(&s.slide_id),
            pct = fmt_pct(v),
            cx = x + bw / 2.0,
            vy = (y - 4.0).min(top + plot_h - 4.0),
            ly = top + plot_h + 18.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// One part of a stacked bar: CSS class, data name, count.
#[derive(Debug, Clone)]
pub struct Part {
    pub class: &'static str,
    pub name: &'static str,
    pub count: u64,
}

/// One stacked bar: label on the left, the parts, and the row's `data-*` attributes.
#[derive(Debug, Clone)]
pub struct Stack {
    pub label: String,
    pub tooltip: String,
    pub attrs: Vec<(&'static str, String)>,
    pub parts: Vec<Part>,
    /// Text after the bar; `None`: the total.
    pub value_label: Option<String>,
}

/// Horizontal stacked bars. `normalize`: each bar fills the width (a mix); otherwise bars are
/// scaled to the largest total. Each part is `<rect data-part="NAME" data-count="N">`.
pub fn stacked(chart: &str, title: &str, rows: &[Stack], normalize: bool) -> String {
    let (label_w, bar_w, row_h, gap) = (190.0, 320.0, 22.0, 10.0);
    let w = label_w + bar_w + 110.0;
    let h = (rows.len().max(1) as f64) * (row_h + gap);
    let max_total = rows.iter().map(|r| r.parts.iter().map(|p| p.count).sum::<u64>()).max().unwrap_or(0);
    let mut out = String::new();
    open(&mut out, chart, title, w, h, "");
    for (i, r) in rows.iter().enumerate() {
        let y = i as f64 * (row_h + gap);
        let total: u64 = r.parts.iter().map(|p| p.count).sum();
        let _ = write!(out, "<g class=\"stack\"");
        for (k, v) in &r.attrs {
            let _ = write!(out, r#" data-{k}="{}""#, e(v));
        }
        let _ = write!(
            out,
            r#" data-total="{total}"><title>{tip}</title><text class="label" x="{lx}" y="{ty}" text-anchor="end">{label}</text>"#,
            tip = e(&r.tooltip),
            lx = label_w - 10.0,
            ty = y + 15.0,
            label = e(&truncate(&r.label, 25)),
        );
        let scale = if normalize { total } else { max_total };
        let mut x = label_w;
        if total == 0 {
            let _ = write!(
                out,
                r#"<rect class="empty" x="{label_w}" y="{y}" width="{bar_w}" height="{row_h}" rx="3"/><text class="axis" x="{tx}" y="{ty}">none</text>"#,
                tx = label_w + 8.0,
                ty = y + 15.0
            );
        }
        for p in &r.parts {
            let pw = if scale == 0 { 0.0 } else { bar_w * p.count as f64 / scale as f64 };
            let _ = write!(
                out,
                r#"<rect class="{c}" data-part="{n}" data-count="{cnt}" x="{x:.1}" y="{y}" width="{pw:.1}" height="{row_h}"><title>{n}: {cnt}</title></rect>"#,
                c = p.class,
                n = p.name,
                cnt = p.count,
            );
            x += pw;
        }
        let vl = r.value_label.clone().unwrap_or_else(|| total.to_string());
        let _ = write!(out, r#"<text class="value" x="{vx:.1}" y="{ty}">{vl}</text></g>"#, vx = x + 8.0, ty = y + 15.0, vl = e(&vl));
    }
    out.push_str("</svg>");
    out
}

/// One horizontal bar.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub value_label: String,
    pub tooltip: String,
    pub attrs: Vec<(&'static str, String)>,
}

/// Horizontal bars scaled to the largest value; each bar is a `<g>` carrying `attrs`.
pub fn hbars(chart: &str, title: &str, bars: &[Bar]) -> String {
    let (label_w, bar_w, row_h, gap) = (130.0, 320.0, 22.0, 10.0);
    let w = label_w + bar_w + 70.0;
    let h = (bars.len().max(1) as f64) * (row_h + gap);
    let max = bars.iter().map(|b| finite(b.value)).fold(0.0, f64::max);
    let mut out = String::new();
    open(&mut out, chart, title, w, h, "");
    for (i, b) in bars.iter().enumerate() {
        let y = i as f64 * (row_h + gap);
        let bw = if max > 0.0 { bar_w * finite(b.value).max(0.0) / max } else { 0.0 };
        let _ = write!(out, "<g class=\"hbar\"");
        for (k, v) in &b.attrs {
            let _ = write!(out, r#" data-{k}="{}""#, e(v));
        }
        let _ = write!(
            out,
            r#"><title>{tip}</title><text class="label" x="{lx}" y="{ty}" text-anchor="end">{label}</text><rect x="{label_w}" y="{y}" width="{bw:.1}" height="{row_h}" rx="3"/><text class="value" x="{vx:.1}" y="{ty}">{vl}</text></g>"#,
            tip = e(&b.tooltip),
            lx = label_w - 10.0,
            ty = y + 15.0,
            label = e(&truncate(&b.label, 18)),
            vx = label_w + bw + 8.0,
            vl = e(&b.value_label),
        );
    }
    out.push_str("</svg>");
    out
}

/// Stage ladder over time: one point per transition (evenly spaced, oldest left).
pub fn stage_timeline(stage: &StageView) -> String {
    let level = |s: &str| STAGES.iter().position(|x| *x == s).unwrap_or(0);
    let (left, top, rung, right) = (90.0, 14.0, 30.0, 40.0);
    let n = stage.history.len();
    let step = 150.0;
    let w = left + 40.0 + (n as f64) * step + right;
    let h = top + rung * (STAGES.len() as f64 - 1.0) + 42.0;
    let y_of = |s: &str| top + rung * (STAGES.len() - 1 - level(s)) as f64;
    let mut out = String::new();
    open(
        &mut out,
        "stage-timeline",
        &format!("Adoption stage history: {}", stage.product),
        w,
        h,
        &format!(r#" data-product="{}" data-current-stage="{}""#, e(&stage.product), e(&stage.stage)),
    );
    for s in STAGES {
        let y = y_of(s);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{left}" x2="{x2}" y1="{y}" y2="{y}"/><text class="axis" x="{tx}" y="{ty}" text-anchor="end">{s}</text>"#,
            x2 = w - 10.0,
            tx = left - 8.0,
            ty = y + 4.0
        );
    }
    // Path: start at the first step's origin, then a step per transition.
    let mut x = left + 20.0;
    let mut path = String::new();
    if let Some(first) = stage.history.first() {
        let _ = write!(path, "M{x} {}", y_of(&first.from));
        let _ = write!(out, r#"<circle class="origin" cx="{x}" cy="{}" r="4"/>"#, y_of(&first.from));
    }
    let mut points = String::new();
    for (i, st) in stage.history.iter().enumerate() {
        let nx = left + 20.0 + (i as f64 + 1.0) * step;
        let y = y_of(&st.to);
        let _ = write!(path, " H{nx} V{y}");
        let _ = write!(
            points,
            r#"<g class="step" data-stage="{to}" data-from="{from}" data-at="{at}" data-rule="{rule}"><title>{from} → {to} on {when} ({rule})</title><circle cx="{nx}" cy="{y}" r="6"/><text class="axis" x="{nx}" y="{dy}" text-anchor="middle">{date}</text></g>"#,
            to = e(&st.to),
            from = e(&st.from),
            at = st.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            rule = e(&st.rule),
            when = fmt_time(&st.at),
            dy = h - 8.0,
            date = st.at.format("%Y-%m-%d"),
        );
        x = nx;
    }
    let _ = x;
    if !path.is_empty() {
        let _ = write!(out, r#"<path class="stage-line" d="{path}"/>"#);
    }
    out.push_str(&points);
    out.push_str("</svg>");
    out
}

/// Calls per period as bars (left axis) with prescriptions per product as lines (right axis).
pub fn rx_engagement(engagement: &[EngagementRow], rx: &[RxRow]) -> String {
    let mut periods: Vec<String> = engagement.iter().map(|r| r.period.clone()).chain(rx.iter().map(|r| r.period.clone())).collect();
    periods.sort();
    periods.dedup();
    let mut products: Vec<String> = rx.iter().map(|r| r.product.clone()).collect();
    products.sort();
    products.dedup();
    let (left, top, plot_h, bottom, right) = (44.0, 16.0, 150.0, 30.0, 48.0);
    let step = 86.0;
    let w = left + (periods.len().max(1) as f64) * step + right;
    let h = top + plot_h + bottom;
    let max_calls = engagement.iter().map(|r| r.calls).max().unwrap_or(0).max(1);
    let max_rx = rx.iter().map(|r| r.count).max().unwrap_or(0).max(1);
    let mut out = String::new();
    open(&mut out, "rx-engagement", "Calls per period (bars) and prescriptions (lines)", w, h, "");
    let _ = write!(out, r#"<line class="grid" x1="{left}" x2="{x2}" y1="{y}" y2="{y}"/>"#, x2 = w - right, y = top + plot_h);
    let _ = write!(
        out,
        r#"<text class="axis" x="{tx}" y="{ty}" text-anchor="end">{max_calls}</text><text class="axis" x="{tx}" y="{by}" text-anchor="end">0</text>"#,
        tx = left - 6.0,
        ty = top + 4.0,
        by = top + plot_h + 4.0
    );
    let _ = write!(
        out,
        r#"<text class="axis rx" x="{tx}" y="{ty}">{max_rx} Rx</text><text class="axis rx" x="{tx}" y="{by}">0</text>"#,
        tx = w - right + 6.0,
        ty = top + 4.0,
        by = top + plot_h + 4.0
    );
    let cx_of = |i: usize| left + step * i as f64 + step / 2.0;
    for (i, p) in periods.iter().enumerate() {
        let row = engagement.iter().find(|r| &r.period == p);
        let (calls, views) = row.map(|r| (r.calls, r.views)).unwrap_or((0, 0));
        let bh = plot_h * calls as f64 / max_calls as f64;
        let cx = cx_of(i);
        let _ = write!(
            out,
            r#"<g class="bar calls" data-period="{pe}" data-calls="{calls}" data-views="{views}"><title>{pe}: {calls} calls, {views} slide views</title><rect x="{x}" y="{y:.1}" width="28" height="{bh:.1}" rx="2"/><text class="axis" x="{cx}" y="{ly}" text-anchor="middle">{pe}</text></g>"#,
            pe = e(p),
            x = cx - 14.0,
            y = top + plot_h - bh,
            ly = top + plot_h + 18.0,
        );
    }
    for (pi, product) in products.iter().enumerate() {
        let mut d = String::new();
        let mut dots = String::new();
        for (i, p) in periods.iter().enumerate() {
            let Some(r) = rx.iter().find(|r| &r.period == p && &r.product == product) else { continue };
            let y = top + plot_h - plot_h * r.count as f64 / max_rx as f64;
            let cx = cx_of(i);
            let _ = write!(d, "{}{cx} {y:.1}", if d.is_empty() { "M" } else { " L" });
            let _ = write!(
                dots,
                r#"<circle class="rx-dot rx-{k}" data-period="{pe}" data-product="{pr}" data-rx="{c}" cx="{cx}" cy="{y:.1}" r="4"><title>{pe}: {c} prescriptions of {pr}</title></circle>"#,
                k = pi % 3,
                pe = e(p),
                pr = e(product),
                c = r.count,
            );
        }
        let _ = write!(out, r#"<path class="rx-line rx-{k}" data-product="{pr}" d="{d}"/>{dots}"#, k = pi % 3, pr = e(product));
    }
    out.push_str("</svg>");
    out
}
