//! Server-rendered pages. Everything dynamic is escaped with [`html_escape`] and ids in links
//! are percent-encoded with [`url_segment`]. No scripts, no external URLs: the page works on
//! an air-gapped hub and the response's Content-Security-Policy enforces it.

use std::fmt::Write;

pub use super::html::{deck_href, hcp_href};
use super::html::{fmt_count, fmt_opt_time, fmt_pct, fmt_secs, fmt_time, html_escape as e, plural, stage_badge, url_segment as u};
use super::model::*;
use super::svg::{self, Bar, Part, Stack};
use super::{DEVICES_PER_PAGE, HcpQuery, HcpSort, SyncQuery};

const CSS: &str = r#"
:root{--ink:#1d2733;--muted:#5f6b7a;--line:#e3e8ef;--bg:#f5f7fa;--card:#fff;--accent:#1f5fa8;--accent-soft:#e8f0fa;--ok:#2f8a5b;--warn:#b7791f;--bad:#c53030}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:var(--bg)}
header.top{display:flex;align-items:center;gap:28px;padding:0 28px;height:54px;background:#14324f;color:#fff}
header.top .brand{color:#fff;font-weight:700;font-size:16px;letter-spacing:.02em;text-decoration:none}
header.top .brand span{font-weight:400;opacity:.7;margin-left:6px}
header.top nav a{color:#d5e2f0;text-decoration:none;margin-right:20px;padding:16px 0;border-bottom:3px solid transparent}
header.top nav a.active,header.top nav a:hover{color:#fff;border-bottom-color:#6fa8e6}
main{max-width:1180px;margin:0 auto;padding:22px 28px 40px}
.crumbs{color:var(--muted);font-size:13px;margin-bottom:6px}.crumbs a{color:var(--muted)}
h1{font-size:24px;margin:0 0 4px}h1 .id{font-size:21px}h2{font-size:16px;margin:0 0 12px}
.sub{color:var(--muted);margin:0 0 18px}
a{color:var(--accent)}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:18px 20px;margin-bottom:18px;overflow-x:auto}
.card p.hint{color:var(--muted);font-size:12.5px;margin:-6px 0 12px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:18px}.grid2>.card{margin-bottom:0}
.grid2+.card,.grid2+.grid2{margin-top:18px}
@media(max-width:900px){.grid2{grid-template-columns:1fr}}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin-bottom:18px}
.stat{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px}
.stat .v{font-size:26px;font-weight:650}.stat .k{color:var(--muted);font-size:12.5px;text-transform:uppercase;letter-spacing:.04em}
.stat.bad .v{color:var(--bad)}.stat.warn .v{color:var(--warn)}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code,.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;background:var(--accent-soft);color:var(--accent);margin:0 4px 2px 0;white-space:nowrap}
.badge.ok{background:#e6f4ec;color:var(--ok)}.badge.warn{background:#fdf3e1;color:var(--warn)}.badge.bad{background:#fde8e8;color:var(--bad)}
.badge.stage-unaware{background:#eef0f3;color:#5f6b7a}.badge.stage-aware{background:#e8f0fa;color:#1f5fa8}.badge.stage-educated{background:#e4f1f6;color:#17708f}.badge.stage-convinced{background:#e6f4ec;color:#2f8a5b}.badge.stage-advocate{background:#efe8fa;color:#6b46c1}
.segments a{display:inline-block;padding:4px 12px;border:1px solid var(--line);border-radius:16px;margin:0 6px 6px 0;text-decoration:none;background:#fff}
.segments a.active{background:var(--accent);color:#fff;border-color:var(--accent)}
.empty{color:var(--muted);font-style:italic}
ol.plan{padding-left:22px;margin:0}ol.plan li{margin-bottom:10px}
ul.evidence{margin:4px 0 0;padding-left:18px;color:var(--muted);font-size:12.5px}
.legend span{display:inline-flex;align-items:center;margin-right:14px;font-size:12.5px;color:var(--muted)}
.legend i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px}
svg{max-width:100%;height:auto;font-family:inherit;display:block}
svg text{font-size:12px;fill:var(--ink)}
svg .axis{fill:var(--muted);font-size:11px}
svg .grid{stroke:var(--line);stroke-width:1}
svg .cell-label{font-size:12px;font-weight:600}svg .cell-value{font-size:20px;font-weight:700}svg .cell-sub{font-size:11px}
svg .ink-light text{fill:#fff}svg .ink-dark text{fill:#14324f}
svg .drop rect{fill:#d9822b}svg .drop .value{font-size:11px}
svg .hbar rect{fill:var(--accent)}svg .value{fill:var(--muted);font-size:12px}
svg .pos,.legend .pos{fill:#2f8a5b;background:#2f8a5b}svg .neu,.legend .neu{fill:#a0aab6;background:#a0aab6}svg .neg,.legend .neg{fill:#c53030;background:#c53030}
svg .ok,.legend .okc{fill:#3b7dd8;background:#3b7dd8}svg .dup,.legend .dup{fill:#a0aab6;background:#a0aab6}svg .rej,.legend .rej{fill:#c53030;background:#c53030}svg .pend,.legend .pend{fill:#d69e2e;background:#d69e2e}
svg rect.empty{fill:#f0f2f5}
svg .stage-line{fill:none;stroke:var(--accent);stroke-width:2.5}
svg .step circle{fill:#fff;stroke:var(--accent);stroke-width:3}svg circle.origin{fill:var(--accent)}
svg .calls rect{fill:#9cc0ea}.legend .callsc{background:#9cc0ea}
svg .rx-line{fill:none;stroke-width:2.5}svg .rx-line.rx-0{stroke:#2f8a5b}svg .rx-line.rx-1{stroke:#6b46c1}svg .rx-line.rx-2{stroke:#c05621}
svg .rx-dot.rx-0{fill:#2f8a5b}svg .rx-dot.rx-1{fill:#6b46c1}svg .rx-dot.rx-2{fill:#c05621}svg text.rx{fill:#2f8a5b}
footer{color:var(--muted);font-size:12px;text-align:center;padding:10px 0 30px}
"#;

/// The top navigation entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Decks,
    Hcps,
    Channels,
    Sync,
    Experiment,
    None,
}

/// A complete page: `page` names it in `<body data-page>` (tests key on it).
pub fn layout(page: &str, title: &str, nav: Nav, body: &str) -> String {
    let link = |href: &str, label: &str, me: Nav| {
        format!(r#"<a href="{href}" data-nav="{label}"{}>{label}</a>"#, if me == nav { r#" class="active""# } else { "" })
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,"><title>{t} · edetail dashboard</title><style>{CSS}</style></head><body data-page="{page}"><header class="top"><a class="brand" href="/dashboard">edetail<span>closed-loop dashboard</span></a><nav>{a}{b}{c}{d}{f}{g}</nav></header><main>{body}</main><footer>HCPs are shown by pseudonymous id only. Numbers as of page load.</footer></body></html>"#,
        t = e(title),
        page = e(page),
        a = link("/dashboard", "Overview", Nav::Overview),
        b = link("/dashboard/decks", "Decks", Nav::Decks),
        c = link("/dashboard/hcps", "HCPs", Nav::Hcps),
        d = link("/dashboard/channels", "Channels", Nav::Channels),
        f = link("/dashboard/sync", "Sync health", Nav::Sync),
        g = link("/dashboard/experiment", "Experiment", Nav::Experiment),
    )
}

fn stat(out: &mut String, key: &str, label: &str, value: u64, class: &str) {
    let _ = write!(
        out,
        r#"<div class="stat {class}" data-stat="{key}" data-value="{value}"><div class="v">{v}</div><div class="k">{label}</div></div>"#,
        v = fmt_count(value)
    );
}

fn decks_table(out: &mut String, decks: &[DeckSummary]) {
    if decks.is_empty() {
        out.push_str(r#"<p class="empty" data-empty="decks">No decks published yet.</p>"#);
        return;
    }
    out.push_str(r#"<table data-table="decks"><thead><tr><th>Deck</th><th>Product</th><th class="n">Version</th><th class="n">Calls</th><th class="n">Slide views</th></tr></thead><tbody>"#);
    for d in decks {
        let _ = write!(
            out,
            r#"<tr data-deck="{id}" data-calls="{c}" data-views="{v}"><td><a href="{href}" data-link="deck">{t}</a><br><span class="id">{id}</span></td><td>{p}</td><td class="n">{ver}</td><td class="n">{c}</td><td class="n">{v}</td></tr>"#,
            id = e(&d.bundle_id),
            href = e(&deck_href(&d.bundle_id, None)),
            t = e(&d.title),
            p = e(&d.product),
            ver = d.version,
            c = d.calls,
            v = d.views,
        );
    }
    out.push_str("</tbody></table>");
}

fn channel_bars(rows: &[ChannelRow]) -> String {
    let bars: Vec<Bar> = rows
        .iter()
        .map(|r| Bar {
            label: r.channel.clone(),
            value: r.calls as f64,
            value_label: plural(r.calls, "call"),
            tooltip: format!("{}: {} calls, {} slide views, {} HCPs reached", r.channel, r.calls, r.views, r.hcps_reached),
            attrs: vec![
                ("channel", r.channel.clone()),
                ("calls", r.calls.to_string()),
                ("views", r.views.to_string()),
                ("hcps", r.hcps_reached.to_string()),
            ],
        })
        .collect();
    svg::hbars("channels", "Calls per channel", &bars)
}

/// Counts per adoption stage (one per HCP and product), in ladder order (unknown stages last).
fn stage_counts(counted: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = svg::STAGES.iter().map(|s| (s.to_string(), 0)).collect();
    for (stage, n) in counted {
        match counts.iter_mut().find(|(k, _)| k == stage) {
            Some((_, c)) => *c += n,
            None => counts.push((stage.clone(), *n)),
        }
    }
    counts
}

pub fn overview(decks: &[DeckSummary], hcps: &HcpOverview, channels: &ChannelsView, sync: &SyncHealthView) -> String {
    let mut b = String::new();
    b.push_str(
        r#"<h1>Overview</h1><p class="sub">Deck performance, HCP adoption, channels and device sync at a glance.</p><div class="stats">"#,
    );
    let calls: u64 = channels.rows.iter().map(|r| r.calls).sum();
    let views: u64 = channels.rows.iter().map(|r| r.views).sum();
    let rejected: u64 = sync.devices.iter().map(|d| d.rejected).sum();
    let pending: u64 = sync.devices.iter().map(|d| d.pending_analysis).sum();
    stat(&mut b, "decks", "Decks", decks.len() as u64, "");
    stat(&mut b, "hcps", "HCPs", hcps.total, "");
    stat(&mut b, "calls", "Calls", calls, "");
    stat(&mut b, "views", "Slide views", views, "");
    stat(&mut b, "devices", "Devices", sync.devices.len() as u64, "");
    stat(&mut b, "rejected", "Rejected events", rejected, if rejected > 0 { "bad" } else { "" });
    stat(&mut b, "pending", "Pending analysis", pending, if pending > 0 { "warn" } else { "" });
    b.push_str("</div>");

    b.push_str(r#"<div class="card" id="decks"><h2>Decks</h2>"#);
    decks_table(&mut b, decks);
    b.push_str("</div>");

    b.push_str(r#"<div class="grid2"><div class="card" id="hcps"><h2>HCPs by adoption stage</h2><p class="hint">One count per HCP and product.</p>"#);
    if hcps.total == 0 {
        b.push_str(r#"<p class="empty" data-empty="hcps">No HCPs seen yet.</p>"#);
    } else {
        let bars: Vec<Bar> = stage_counts(&hcps.stages)
            .into_iter()
            .map(|(s, n)| Bar {
                label: s.clone(),
                value: n as f64,
                value_label: n.to_string(),
                tooltip: format!("{s}: {n}"),
                attrs: vec![("stage", s), ("count", n.to_string())],
            })
            .collect();
        b.push_str(&svg::hbars("stage-funnel", "HCPs by adoption stage", &bars));
    }
    let _ = write!(b, r#"<p><a href="/dashboard/hcps" data-link="hcps">All {} HCPs →</a></p></div>"#, hcps.total);

    b.push_str(r#"<div class="card" id="channels"><h2>Channels</h2>"#);
    if channels.rows.is_empty() {
        b.push_str(r#"<p class="empty" data-empty="channels">No calls yet.</p>"#);
    } else {
        b.push_str(&channel_bars(&channels.rows));
    }
    b.push_str(r#"<p><a href="/dashboard/channels" data-link="channels">Channel details →</a></p></div></div>"#);

    b.push_str(r#"<div class="card" id="sync"><h2>Sync health</h2>"#);
    let last = sync.devices.iter().filter_map(|d| d.last_seen_at).max();
    let with_rejects = sync.devices.iter().filter(|d| d.rejected > 0).count();
    let _ = write!(
        b,
        r#"<p>{n}; last sync {last}; <span class="badge {cls}">{with_rejects} with rejected events</span> <span class="badge {pcls}">{pending} events pending analysis</span></p><p><a href="/dashboard/sync" data-link="sync">Device details →</a></p></div>"#,
        n = plural(sync.devices.len() as u64, "device"),
        last = e(&fmt_opt_time(&last)),
        cls = if with_rejects > 0 { "bad" } else { "ok" },
        pcls = if pending > 0 { "warn" } else { "ok" },
    );
    layout("overview", "Overview", Nav::Overview, &b)
}

pub fn decks(decks: &[DeckSummary]) -> String {
    let mut b = String::from(
        r#"<div class="crumbs"><a href="/dashboard">Overview</a> / Decks</div><h1>Decks</h1><p class="sub">Every published deck with its reach. Open one for slide-level performance.</p><div class="card">"#,
    );
    decks_table(&mut b, decks);
    b.push_str("</div>");
    layout("decks", "Decks", Nav::Decks, &b)
}

pub fn deck(d: &DeckView) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<div class="crumbs"><a href="/dashboard">Overview</a> / <a href="/dashboard/decks">Decks</a> / {t}</div><h1 data-deck="{id}">{t}</h1><p class="sub"><span class="id">{id}</span> · {p} · version {v} · <span data-calls="{c}">{pc}</span> · {seg}</p>"#,
        t = e(&d.title),
        id = e(&d.bundle_id),
        p = e(&d.product),
        v = d.version,
        c = d.calls,
        pc = plural(d.calls, "call"),
        seg = match &d.segment {
            None => "all HCPs".to_string(),
            Some(s) => format!("segment {}", e(s)),
        },
    );
    let _ = write!(
        b,
        r#"<nav class="segments" data-selected-segment="{sel}"><a href="{href}" data-segment=""{cls}>All HCPs</a>"#,
        sel = e(d.segment.as_deref().unwrap_or("")),
        href = e(&deck_href(&d.bundle_id, None)),
        cls = if d.segment.is_none() { r#" class="active""# } else { "" },
    );
    for s in &d.segments {
        let _ = write!(
            b,
            r#"<a href="{href}" data-segment="{s}"{cls}>{s}</a>"#,
            href = e(&deck_href(&d.bundle_id, Some(s))),
            s = e(s),
            cls = if d.segment.as_deref() == Some(s.as_str()) { r#" class="active""# } else { "" },
        );
    }
    b.push_str("</nav>");

    if d.slides.is_empty() {
        b.push_str(
            r#"<div class="card"><p class="empty" data-empty="slides">No slide views recorded for this deck and segment yet.</p></div>"#,
        );
    } else {
        b.push_str(r#"<div class="card"><h2>Slide dwell heat map</h2><p class="hint">Median time per view; colour relative to the deck's longest-viewed slide.</p>"#);
        b.push_str(&svg::dwell_heatmap(&d.slides));
        b.push_str("</div>");
        b.push_str(r#"<div class="grid2"><div class="card"><h2>Drop-off</h2><p class="hint">Share of the calls reaching a slide that ended on it. Numbers are slide positions.</p>"#);
        b.push_str(&svg::drop_off_bars(&d.slides));
        b.push_str(r#"</div><div class="card"><h2>Reaction mix</h2><p class="legend"><span><i class="pos"></i>positive</span><span><i class="neu"></i>neutral</span><span><i class="neg"></i>negative</span></p>"#);
        let rows: Vec<Stack> = d
            .slides
            .iter()
            .map(|s| Stack {
                label: s.title.clone(),
                tooltip: format!(
                    "{}: {} positive, {} neutral, {} negative",
                    s.title, s.reactions_positive, s.reactions_neutral, s.reactions_negative
                ),
                attrs: vec![
                    ("slide", s.slide_id.clone()),
                    ("positive", s.reactions_positive.to_string()),
                    ("neutral", s.reactions_neutral.to_string()),
                    ("negative", s.reactions_negative.to_string()),
                ],
                parts: vec![
                    Part { class: "pos", name: "positive", count: s.reactions_positive },
                    Part { class: "neu", name: "neutral", count: s.reactions_neutral },
                    Part { class: "neg", name: "negative", count: s.reactions_negative },
                ],
                value_label: None,
            })
            .collect();
        b.push_str(&svg::stacked("reactions", "Reaction mix per slide", &rows, true));
        b.push_str("</div></div>");

        b.push_str(r#"<div class="card"><h2>Slides</h2><table data-table="slides"><thead><tr><th>#</th><th>Slide</th><th>Topics</th><th class="n">Views</th><th class="n">Median dwell</th><th class="n">Drop-off</th><th class="n">HCP-led</th><th class="n">+ / = / −</th></tr></thead><tbody>"#);
        for (i, s) in d.slides.iter().enumerate() {
            let topics: String = s.topics.iter().map(|t| format!(r#"<span class="badge">{}</span>"#, e(t))).collect();
            let _ = write!(
                b,
                r#"<tr data-slide="{id}"><td class="n">{n}</td><td>{t}<br><span class="id">{id}</span> <span class="id">({pid})</span></td><td>{topics}</td><td class="n">{v}</td><td class="n">{dw}</td><td class="n">{dr}</td><td class="n">{hl}</td><td class="n">{p} / {nu} / {ng}</td></tr>"#,
                id = e(&s.slide_id),
                n = i + 1,
                t = e(&s.title),
                pid = e(&s.presentation_id),
                v = s.views,
                dw = fmt_secs(s.median_dwell_ms),
                dr = fmt_pct(s.drop_off),
                hl = s.hcp_led,
                p = s.reactions_positive,
                nu = s.reactions_neutral,
                ng = s.reactions_negative,
            );
        }
        b.push_str("</tbody></table></div>");
    }
    super::respond::deck_cards(&mut b, d);
    if !d.channels.is_empty() {
        b.push_str(r#"<div class="card"><h2>Channels</h2><p>"#);
        for c in &d.channels {
            let _ = write!(
                b,
                r#"<span class="badge" data-channel="{ch}" data-calls="{n}">{ch}: {pl}</span>"#,
                ch = e(&c.channel),
                n = c.calls,
                pl = plural(c.calls, "call")
            );
        }
        b.push_str("</p></div>");
    }
    layout("deck", &d.title, Nav::Decks, &b)
}

/// The HCP list's URL for `q` with `change` applied (filters, order and page kept otherwise).
fn hcps_href(q: &HcpQuery, change: impl FnOnce(&mut HcpQuery)) -> String {
    let mut q = q.clone();
    change(&mut q);
    let mut parts: Vec<String> = Vec::new();
    for (k, v) in [("stage", &q.stage), ("product", &q.product), ("segment", &q.segment), ("territory", &q.territory), ("q", &q.id_prefix)]
    {
        if let Some(v) = v {
            parts.push(format!("{k}={}", u(v)));
        }
    }
    match q.sort {
        HcpSort::Id => {}
        HcpSort::Calls => parts.push("sort=calls".into()),
        HcpSort::LastCall => parts.push("sort=last_call".into()),
    }
    let page = q.offset / q.limit.max(1) + 1;
    if page > 1 {
        parts.push(format!("page={page}"));
    }
    if parts.is_empty() { "/dashboard/hcps".into() } else { format!("/dashboard/hcps?{}", parts.join("&")) }
}

pub fn hcps(list: &HcpList) -> String {
    let q = &list.query;
    let mut b = String::from(
        r#"<div class="crumbs"><a href="/dashboard">Overview</a> / HCPs</div><h1>HCPs</h1><p class="sub">Pseudonymous ids; open one for the interest profile, adoption history and the hub's plan.</p><div class="card">"#,
    );
    // Filters: stage links, a search by id (prefix), the order; each keeps the others.
    b.push_str(r#"<p class="filters" data-filters="hcps">Stage: "#);
    let all = hcps_href(q, |q| {
        q.stage = None;
        q.offset = 0;
    });
    let _ = write!(b, r#"<a href="{}" data-filter-stage=""{}>all</a>"#, e(&all), if q.stage.is_none() { r#" class="on""# } else { "" });
    for st in svg::STAGES {
        let href = hcps_href(q, |q| {
            q.stage = Some(st.to_string());
            q.offset = 0;
        });
        let on = if q.stage.as_deref() == Some(st) { r#" class="on""# } else { "" };
        let _ = write!(b, r#" · <a href="{}" data-filter-stage="{st}"{on}>{st}</a>"#, e(&href));
    }
    if !list.territories.is_empty() {
        b.push_str(" &nbsp; Territory: ");
        territory_links(&mut b, q.territory.as_deref(), list.territories.iter().map(String::as_str), |t| {
            hcps_href(q, |q| {
                q.territory = t.map(str::to_string);
                q.offset = 0;
            })
        });
    }
    b.push_str(" &nbsp; Order: ");
    for (sort, label, key) in
        [(HcpSort::Id, "id", "id"), (HcpSort::Calls, "most calls", "calls"), (HcpSort::LastCall, "latest call", "last_call")]
    {
        let href = hcps_href(q, |q| {
            q.sort = sort;
            q.offset = 0;
        });
        let on = if q.sort == sort { r#" class="on""# } else { "" };
        let _ = write!(b, r#"<a href="{}" data-sort="{key}"{on}>{label}</a> "#, e(&href));
    }
    b.push_str("</p>");
    let hidden: String = [("stage", &q.stage), ("product", &q.product), ("segment", &q.segment), ("territory", &q.territory)]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!(r#"<input type="hidden" name="{k}" value="{}">"#, e(v))))
        .collect();
    let _ = write!(
        b,
        r#"<form method="get" action="/dashboard/hcps" data-search="hcps">{hidden}<label>HCP id starts with <input name="q" value="{}"></label> <button>Search</button></form>"#,
        e(q.id_prefix.as_deref().unwrap_or(""))
    );
    let filtered = [&q.stage, &q.product, &q.segment, &q.territory, &q.id_prefix].iter().any(|v| v.is_some());
    if list.rows.is_empty() {
        if filtered {
            b.push_str(r#"<p class="empty" data-empty="hcps-filtered">No HCP matches these filters.</p>"#);
        } else {
            b.push_str(r#"<p class="empty" data-empty="hcps">No HCPs seen yet.</p>"#);
        }
    } else {
        let first = q.offset + 1;
        let last = q.offset + list.rows.len() as u64;
        let _ = write!(
            b,
            r#"<p class="hint" data-page-of="{total}" data-first="{first}" data-last="{last}">{first}–{last} of {total}</p>"#,
            total = list.total
        );
        b.push_str(r#"<table data-table="hcps"><thead><tr><th>HCP</th><th>Segment</th><th>Territories</th><th class="n">Calls</th><th>Last call</th><th>Stage</th><th>Top interest</th></tr></thead><tbody>"#);
        for h in &list.rows {
            let stages: String = h
                .stages
                .iter()
                .map(|s| format!(r#"<span data-product="{p}">{p}: {b}</span> "#, p = e(&s.product), b = stage_badge(&s.stage)))
                .collect();
            let _ = write!(
                b,
                r#"<tr data-hcp="{id}" data-calls="{c}" data-territories="{ts}"><td><a class="id" href="{href}" data-link="hcp">{id}</a></td><td>{seg}</td><td>{terr}</td><td class="n">{c}</td><td>{last}</td><td>{stages}</td><td>{top}</td></tr>"#,
                ts = e(&serde_json::to_string(&h.territories).unwrap_or_default()),
                terr = if h.territories.is_empty() { "—".to_string() } else { e(&h.territories.join(", ")) },
                id = e(&h.hcp_id),
                href = e(&hcp_href(&h.hcp_id)),
                seg = e(h.segment.as_deref().unwrap_or("—")),
                c = h.calls,
                last = e(&fmt_opt_time(&h.last_call_at)),
                top = h.top_topic.as_deref().map(|t| format!(r#"<span class="badge">{}</span>"#, e(t))).unwrap_or_else(|| "—".into()),
            );
        }
        b.push_str("</tbody></table>");
        b.push_str(r#"<p class="pager">"#);
        if q.offset > 0 {
            let prev = hcps_href(q, |q| q.offset = q.offset.saturating_sub(q.limit));
            let _ = write!(b, r#"<a href="{}" data-page="prev">← previous</a> "#, e(&prev));
        }
        if last < list.total {
            let next = hcps_href(q, |q| q.offset += q.limit);
            let _ = write!(b, r#"<a href="{}" data-page="next">next →</a>"#, e(&next));
        }
        b.push_str("</p>");
    }
    b.push_str("</div>");
    layout("hcps", "HCPs", Nav::Hcps, &b)
}

fn evidence_list(out: &mut String, evidence: &[String]) {
    if evidence.is_empty() {
        return;
    }
    out.push_str(r#"<ul class="evidence">"#);
    for ev in evidence {
        let _ = write!(out, "<li>{}</li>", e(ev));
    }
    out.push_str("</ul>");
}

pub fn hcp(h: &HcpView) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<div class="crumbs"><a href="/dashboard">Overview</a> / <a href="/dashboard/hcps">HCPs</a> / {id}</div><h1 data-hcp="{id}">HCP <span class="id">{id}</span></h1><p class="sub">Segment {seg} · "#,
        id = e(&h.hcp_id),
        seg = e(h.segment.as_deref().unwrap_or("—")),
    );
    if h.calls_by_channel.is_empty() {
        b.push_str("no calls yet");
    }
    for c in &h.calls_by_channel {
        let _ = write!(
            b,
            r#"<span class="badge" data-channel="{ch}" data-calls="{n}">{ch}: {pl}</span>"#,
            ch = e(&c.channel),
            n = c.calls,
            pl = plural(c.calls, "call")
        );
    }
    b.push_str("</p>");

    // Interest profile.
    b.push_str(r#"<div class="grid2"><div class="card" id="interests"><h2>Interest profile</h2>"#);
    if h.topics.is_empty() {
        b.push_str(r#"<p class="empty" data-empty="topics">No interests measured yet.</p>"#);
    } else {
        let bars: Vec<Bar> = h
            .topics
            .iter()
            .map(|t| Bar {
                label: t.topic.clone(),
                value: t.score,
                value_label: format!("{:.2}", t.score),
                tooltip: format!("{}: score {:.2} from {} views", t.topic, t.score, t.views),
                attrs: vec![("topic", t.topic.clone()), ("score", format!("{:.2}", t.score)), ("views", t.views.to_string())],
            })
            .collect();
        b.push_str(&svg::hbars("interest-profile", "Interest profile (score per topic)", &bars));
        b.push_str(r#"<h2 style="margin-top:14px">Evidence</h2><dl class="evidence-list">"#);
        for t in &h.topics {
            let _ = write!(b, r#"<div data-topic-evidence="{t}"><dt><span class="badge">{t}</span></dt><dd>"#, t = e(&t.topic));
            evidence_list(&mut b, &t.evidence);
            b.push_str("</dd></div>");
        }
        b.push_str("</dl>");
    }
    b.push_str("</div>");

    // The plan.
    b.push_str(r#"<div class="card" id="plan"><h2>Plan for the next call</h2>"#);
    match &h.plan {
        None => b.push_str(
            r#"<p class="empty" data-empty="plan">No plan generated for this HCP yet: the device will use its local suggestion.</p>"#,
        ),
        Some(p) => {
            let _ = write!(
                b,
                r#"<p data-plan-id="{pid}" data-bundle="{bid}" data-stage="{st}" data-objective="{obj}" data-arm="{arm}">{prod} · <a href="{href}">{bid}</a> v{ver} · stage {badge}{goal}<br><span class="id">generated {gen}, valid until {until}</span></p>"#,
                obj = e(p.objective.as_deref().unwrap_or("")),
                arm = e(p.arm.as_deref().unwrap_or("")),
                goal = match &p.objective {
                    Some(o) => format!(" → objective {}", stage_badge(o)),
                    None => String::new(),
                },
                pid = e(&p.plan_id),
                bid = e(&p.bundle_id),
                st = e(&p.stage),
                prod = e(&p.product),
                href = e(&deck_href(&p.bundle_id, None)),
                ver = p.bundle_version,
                badge = stage_badge(&p.stage),
                gen = e(&fmt_time(&p.generated_at)),
                until = e(&fmt_time(&p.valid_until)),
            );
            if !p.reasons.is_empty() {
                b.push_str(r#"<ul class="reasons">"#);
                for r in &p.reasons {
                    let _ = write!(b, "<li>{}</li>", e(r));
                }
                b.push_str("</ul>");
            }
            b.push_str(r#"<ol class="plan" data-list="plan-items">"#);
            for it in &p.items {
                let _ = write!(
                    b,
                    r#"<li data-slide="{s}" data-presentation="{pr}" data-mandatory="{m}"><strong class="id">{s}</strong>{mb} — {r}"#,
                    m = it.mandatory,
                    mb = if it.mandatory { r#" <span class="badge warn">mandatory</span>"# } else { "" },
                    s = e(&it.slide_id),
                    pr = e(&it.presentation_id),
                    r = e(&it.reason)
                );
                evidence_list(&mut b, &it.evidence);
                b.push_str("</li>");
            }
            b.push_str("</ol>");
            if !p.skipped.is_empty() {
                b.push_str(r#"<h2 style="margin-top:14px">Left out</h2><ul class="skipped" data-list="plan-skipped">"#);
                for it in &p.skipped {
                    let _ = write!(b, r#"<li data-slide="{s}"><span class="id">{s}</span> — {r}"#, s = e(&it.slide_id), r = e(&it.reason));
                    evidence_list(&mut b, &it.evidence);
                    b.push_str("</li>");
                }
                b.push_str("</ul>");
            }
        }
    }
    b.push_str("</div></div>");
    super::respond::hcp_plans(&mut b, h);

    // Adoption stages.
    b.push_str(r#"<div class="card" id="stages"><h2>Adoption stage</h2>"#);
    if h.stages.is_empty() {
        b.push_str(r#"<p class="empty" data-empty="stages">No stage assessed yet.</p>"#);
    }
    for s in &h.stages {
        let _ = write!(
            b,
            r#"<h3 data-product="{p}" data-stage="{st}">{p}: {badge}</h3>"#,
            p = e(&s.product),
            st = e(&s.stage),
            badge = stage_badge(&s.stage)
        );
        if s.history.is_empty() {
            b.push_str(r#"<p class="empty">No transitions yet.</p>"#);
            continue;
        }
        b.push_str(&svg::stage_timeline(s));
        b.push_str(r#"<table data-table="stage-history"><thead><tr><th>When</th><th>Transition</th><th>Rule</th><th>Evidence</th></tr></thead><tbody>"#);
        for st in &s.history {
            let _ = write!(
                b,
                r#"<tr data-stage="{to}"><td>{at}</td><td>{from} → {to_b}</td><td><code>{rule}</code></td><td>"#,
                to = e(&st.to),
                at = e(&fmt_time(&st.at)),
                from = stage_badge(&st.from),
                to_b = stage_badge(&st.to),
                rule = e(&st.rule)
            );
            evidence_list(&mut b, &st.evidence);
            b.push_str("</td></tr>");
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</div>");

    // Prescriptions beside engagement.
    b.push_str(r#"<div class="grid2"><div class="card" id="rx"><h2>Prescriptions and engagement</h2>"#);
    if h.engagement_by_period.is_empty() && h.prescriptions.is_empty() {
        b.push_str(r#"<p class="empty" data-empty="rx">No engagement or prescription data yet.</p>"#);
    } else {
        b.push_str(
            r#"<p class="legend"><span><i class="callsc"></i>calls</span><span><i style="background:#2f8a5b"></i>prescriptions</span></p>"#,
        );
        b.push_str(&svg::rx_engagement(&h.engagement_by_period, &h.prescriptions));
    }
    b.push_str(r#"</div><div class="card" id="key-messages"><h2>Key messages delivered</h2>"#);
    if h.key_messages.is_empty() {
        b.push_str(r#"<p class="empty" data-empty="key-messages">None yet.</p>"#);
    } else {
        b.push_str(r#"<table data-table="key-messages"><thead><tr><th>Key message</th><th class="n">Views</th><th class="n">Time</th><th>Last</th></tr></thead><tbody>"#);
        for k in &h.key_messages {
            let _ = write!(
                b,
                r#"<tr data-key-message="{km}" data-views="{v}"><td class="id">{km}</td><td class="n">{v}</td><td class="n">{d}</td><td>{l}</td></tr>"#,
                km = e(&k.key_message),
                v = k.views,
                d = fmt_secs(k.dwell_ms),
                l = e(&fmt_opt_time(&k.last_at))
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</div></div>");

    b.push_str(r#"<div class="card" id="microsites"><h2>Microsites</h2>"#);
    if h.microsites.is_empty() {
        b.push_str(r#"<p class="empty" data-empty="microsites">No microsites sent.</p>"#);
    } else {
        b.push_str(r#"<table data-table="microsites"><thead><tr><th>Created</th><th>Expires</th><th>Topics</th><th class="n">Views</th></tr></thead><tbody>"#);
        for m in &h.microsites {
            let topics: String = m.topics.iter().map(|t| format!(r#"<span class="badge">{}</span>"#, e(t))).collect();
            let _ = write!(
                b,
                r#"<tr data-microsite-views="{v}"><td>{c}</td><td>{x}</td><td>{topics}</td><td class="n">{v}</td></tr>"#,
                v = m.views,
                c = e(&fmt_time(&m.created_at)),
                x = e(&fmt_time(&m.expires_at))
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</div>");
    layout("hcp", &format!("HCP {}", h.hcp_id), Nav::Hcps, &b)
}

pub fn channels(c: &ChannelsView) -> String {
    let mut b = String::from(
        r#"<div class="crumbs"><a href="/dashboard">Overview</a> / Channels</div><h1>Channels</h1><p class="sub">Calls, slide views and HCPs reached per channel.</p><div class="card">"#,
    );
    if c.rows.is_empty() {
        b.push_str(r#"<p class="empty" data-empty="channels">No calls yet.</p></div>"#);
        return layout("channels", "Channels", Nav::Channels, &b);
    }
    b.push_str(&channel_bars(&c.rows));
    b.push_str(r#"</div><div class="card"><table data-table="channels"><thead><tr><th>Channel</th><th class="n">Calls</th><th class="n">Slide views</th><th class="n">Views per call</th><th class="n">HCPs reached</th></tr></thead><tbody>"#);
    for r in &c.rows {
        let per = if r.calls == 0 { 0.0 } else { r.views as f64 / r.calls as f64 };
        let _ = write!(
            b,
            r#"<tr data-channel="{ch}" data-calls="{c}" data-views="{v}" data-hcps="{h}"><td>{ch}</td><td class="n">{c}</td><td class="n">{v}</td><td class="n">{per:.1}</td><td class="n">{h}</td></tr>"#,
            ch = e(&r.channel),
            c = r.calls,
            v = r.views,
            h = r.hcps_reached,
        );
    }
    b.push_str("</tbody></table></div>");
    layout("channels", "Channels", Nav::Channels, &b)
}

/// Territory filter links: "all", then one per territory, the selected one marked `on`;
/// `href(None)` is the list without the filter, `href(Some(t))` with territory `t`.
fn territory_links<'a>(
    b: &mut String,
    selected: Option<&str>,
    territories: impl Iterator<Item = &'a str>,
    href: impl Fn(Option<&str>) -> String,
) {
    let on = |yes: bool| if yes { r#" class="on""# } else { "" };
    let _ = write!(b, r#"<a href="{}" data-filter-territory=""{}>all</a>"#, e(&href(None)), on(selected.is_none()));
    for t in territories {
        let _ = write!(
            b,
            r#" · <a href="{}" data-filter-territory="{t}"{on}>{t}</a>"#,
            e(&href(Some(t))),
            t = e(t),
            on = on(selected == Some(t))
        );
    }
}

/// The sync page's URL for `q` with `change` applied (filter and page kept otherwise).
fn sync_href(q: &SyncQuery, change: impl FnOnce(&mut SyncQuery)) -> String {
    let mut q = q.clone();
    change(&mut q);
    let mut parts = Vec::new();
    if let Some(t) = &q.territory {
        parts.push(format!("territory={}", u(t)));
    }
    let page = q.offset / q.limit.max(1) + 1;
    if page > 1 {
        parts.push(format!("page={page}"));
    }
    if parts.is_empty() { "/dashboard/sync".into() } else { format!("/dashboard/sync?{}", parts.join("&")) }
}

/// Sync health: totals and the devices of the territory filter, a page at a time (chart and
/// table), the parked calls (at most a page of them, with how many more there are).
pub fn sync(all: &SyncHealthView, q: &SyncQuery) -> String {
    let territories: std::collections::BTreeSet<&str> = all.devices.iter().map(|d| d.territory.as_str()).collect();
    let matching: Vec<&DeviceRow> = all.devices.iter().filter(|d| q.territory.as_ref().is_none_or(|t| &d.territory == t)).collect();
    let mut b = String::from(
        r#"<div class="crumbs"><a href="/dashboard">Overview</a> / Sync health</div><h1>Sync health</h1><p class="sub">What each rep's device has uploaded, what the hub refused, and what analysis has not reached yet.</p>"#,
    );
    if territories.len() > 1 {
        b.push_str(r#"<p class="filters" data-filters="sync">Territory: "#);
        territory_links(&mut b, q.territory.as_deref(), territories.iter().copied(), |t| {
            sync_href(q, |q| {
                q.territory = t.map(str::to_string);
                q.offset = 0;
            })
        });
        b.push_str("</p>");
    }
    b.push_str(r#"<div class="stats">"#);
    let sum = |f: fn(&DeviceRow) -> u64| matching.iter().map(|d| f(d)).sum::<u64>();
    stat(&mut b, "devices", "Devices", matching.len() as u64, "");
    stat(&mut b, "received", "Events received", sum(|d| d.events_received), "");
    stat(&mut b, "duplicates", "Duplicates", sum(|d| d.duplicates), "");
    let rejected = sum(|d| d.rejected);
    stat(&mut b, "rejected", "Rejected", rejected, if rejected > 0 { "bad" } else { "" });
    let pending = sum(|d| d.pending_analysis);
    stat(&mut b, "pending", "Pending analysis", pending, if pending > 0 { "warn" } else { "" });
    let parked = all.parked.len() as u64;
    stat(&mut b, "parked", "Parked calls", parked, if parked > 0 { "bad" } else { "" });
    b.push_str("</div>");
    if !all.parked.is_empty() {
        b.push_str(r#"<div class="card"><h2>Parked calls</h2><p class="sub">Analysis failed on these calls too often; they are skipped and do not hold up other calls.</p><table data-table="parked"><thead><tr><th>Device</th><th>Call</th><th>Attempts</th><th>Reason</th></tr></thead><tbody>"#);
        for p in all.parked.iter().take(DEVICES_PER_PAGE as usize) {
            b.push_str(&format!(
                r#"<tr data-parked-call="{c}"><td class="id">{d}</td><td class="id">{c}</td><td class="n">{a}</td><td>{r}</td></tr>"#,
                d = e(&p.device_id),
                c = e(&p.call_id),
                a = p.attempts,
                r = e(&p.reason),
            ));
        }
        b.push_str("</tbody></table>");
        if parked > DEVICES_PER_PAGE {
            let _ = write!(b, r#"<p class="hint" data-parked-more="{n}">and {n} more (oldest first)</p>"#, n = parked - DEVICES_PER_PAGE);
        }
        b.push_str("</div>");
    }
    b.push_str("<div class=\"card\">");
    if matching.is_empty() {
        if q.territory.is_some() && !all.devices.is_empty() {
            b.push_str(r#"<p class="empty" data-empty="devices-filtered">No device in this territory.</p></div>"#);
        } else {
            b.push_str(r#"<p class="empty" data-empty="devices">No devices registered.</p></div>"#);
        }
        return layout("sync", "Sync health", Nav::Sync, &b);
    }
    let shown: Vec<&DeviceRow> = matching.iter().skip(q.offset.min(usize::MAX as u64) as usize).take(q.limit as usize).copied().collect();
    if shown.is_empty() {
        let prev = sync_href(q, |q| q.offset = 0);
        let _ = write!(
            b,
            r#"<p class="empty" data-empty="devices-page">No devices on this page. <a href="{}" data-page="first">First page</a></p></div>"#,
            e(&prev)
        );
        return layout("sync", "Sync health", Nav::Sync, &b);
    }
    let (first, last, total) = (q.offset + 1, q.offset + shown.len() as u64, matching.len() as u64);
    if total > q.limit || q.offset > 0 {
        let _ = write!(
            b,
            r#"<p class="hint" data-page-of="{total}" data-first="{first}" data-last="{last}">devices {first}–{last} of {total}</p>"#
        );
    }
    b.push_str(r#"<h2>Events per device</h2><p class="legend"><span><i class="okc"></i>stored, analysed</span><span><i class="pend"></i>stored, pending analysis</span><span><i class="dup"></i>duplicates (not stored again)</span><span><i class="rej"></i>rejected</span></p>"#);
    let rows: Vec<Stack> = shown
        .iter()
        .map(|d| Stack {
            label: format!("{} ({})", d.device_id, d.rep_id),
            tooltip: format!(
                "{}: {} received, {} duplicates, {} rejected, {} pending analysis",
                d.device_id, d.events_received, d.duplicates, d.rejected, d.pending_analysis
            ),
            attrs: vec![
                ("device", d.device_id.clone()),
                ("received", d.events_received.to_string()),
                ("duplicates", d.duplicates.to_string()),
                ("rejected", d.rejected.to_string()),
                ("pending", d.pending_analysis.to_string()),
            ],
            parts: vec![
                Part { class: "ok", name: "analysed", count: d.events_received.saturating_sub(d.pending_analysis) },
                Part { class: "pend", name: "pending", count: d.pending_analysis.min(d.events_received) },
                Part { class: "dup", name: "duplicates", count: d.duplicates },
                Part { class: "rej", name: "rejected", count: d.rejected },
            ],
            value_label: Some(format!("{} stored", d.events_received)),
        })
        .collect();
    b.push_str(&svg::stacked("sync-events", "Events per device", &rows, false));
    b.push_str(r#"</div><div class="card"><table data-table="devices"><thead><tr><th>Device</th><th>Rep</th><th>Territory</th><th>Last sync</th><th class="n">Watermark</th><th class="n">Received</th><th class="n">Duplicates</th><th class="n">Rejected</th><th class="n">Pending</th><th>Status</th></tr></thead><tbody>"#);
    for d in &shown {
        let status = if d.rejected > 0 {
            r#"<span class="badge bad" data-status="rejected">rejected events</span>"#
        } else if d.last_seen_at.is_none() {
            r#"<span class="badge warn" data-status="never-synced">never synced</span>"#
        } else if d.pending_analysis > 0 {
            r#"<span class="badge warn" data-status="pending">analysis pending</span>"#
        } else {
            r#"<span class="badge ok" data-status="healthy">healthy</span>"#
        };
        let _ = write!(
            b,
            r#"<tr data-device="{id}" data-watermark="{w}" data-received="{r}" data-duplicates="{du}" data-rejected="{rj}" data-pending="{p}"><td class="id">{id}</td><td>{rep}</td><td>{t}</td><td>{last}</td><td class="n">{w}</td><td class="n">{r}</td><td class="n">{du}</td><td class="n">{rj}</td><td class="n">{p}</td><td>{status}</td></tr>"#,
            id = e(&d.device_id),
            rep = e(&d.rep_id),
            t = e(&d.territory),
            last = e(&fmt_opt_time(&d.last_seen_at)),
            w = d.watermark,
            r = d.events_received,
            du = d.duplicates,
            rj = d.rejected,
            p = d.pending_analysis,
        );
    }
    b.push_str("</tbody></table>");
    b.push_str(r#"<p class="pager">"#);
    if q.offset > 0 {
        let prev = sync_href(q, |q| q.offset = q.offset.saturating_sub(q.limit));
        let _ = write!(b, r#"<a href="{}" data-page="prev">← previous</a> "#, e(&prev));
    }
    if last < total {
        let next = sync_href(q, |q| q.offset += q.limit);
        let _ = write!(b, r#"<a href="{}" data-page="next">next →</a>"#, e(&next));
    }
    b.push_str("</p></div>");
    layout("sync", "Sync health", Nav::Sync, &b)
}

/// The 404 page.
pub fn not_found(what: &str) -> String {
    let b = format!(
        r#"<h1>Not found</h1><p class="sub" data-not-found="{w}">{w}</p><p><a href="/dashboard">Back to the overview</a></p>"#,
        w = e(what)
    );
    layout("not-found", "Not found", Nav::None, &b)
}

/// The 500 page (details stay in the log).
pub fn error() -> String {
    layout(
        "error",
        "Error",
        Nav::None,
        r#"<h1>Something went wrong</h1><p class="sub">The dashboard could not load its data. The hub's log has the details.</p><p><a href="/dashboard">Back to the overview</a></p>"#,
    )
}

/// `/dashboard/experiment`.
pub fn experiment(x: &ExperimentView) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<div class="crumbs"><a href="/dashboard">Overview</a> / Experiment</div><h1>Does personalizing work?</h1><p class="sub" data-holdout-share="{s}" data-min-per-arm="{m}">{pct} of HCPs per product are held out (seeded, stable) and get the deck's default order; the rest get personalized plans. Treatment − holdout, with 95% confidence intervals; below {m} HCPs in an arm no number is shown.</p>"#,
        s = x.holdout_share,
        m = x.min_per_arm,
        pct = fmt_pct(x.holdout_share),
    );
    if x.products.is_empty() {
        b.push_str(r#"<div class="card"><p class="empty" data-empty="experiment">No HCP has had a plan yet: the experiment starts with the first plans.</p></div>"#);
    }
    for p in &x.products {
        let _ = write!(
            b,
            r#"<section class="card" data-experiment="{id}"><h2>{id}</h2><p><span class="badge" data-arm-n="treatment" data-n="{t}">treatment: {t} HCPs</span><span class="badge" data-arm-n="holdout" data-n="{h}">holdout: {h} HCPs</span></p><div class="grid2"><div>"#,
            id = e(&p.product),
            t = p.treatment_n,
            h = p.holdout_n,
        );
        super::respond::estimate(&mut b, &p.product, "progression", "Stage progression (rungs per 30 days)", "", &p.progression);
        b.push_str("</div><div>");
        super::respond::estimate(
            &mut b,
            &p.product,
            "rx_change",
            "Prescriptions (monthly change against her own prior periods)",
            "",
            &p.rx_change,
        );
        b.push_str(r#"</div></div><h3>Plan outcomes</h3>"#);
        super::respond::outcomes_table(&mut b, &p.outcomes);
        b.push_str(r#"<h3>Slides before stage moves</h3>"#);
        super::respond::stage_moves_table(&mut b, &p.stage_moves, true);
        b.push_str("</section>");
    }
    layout("experiment", "Experiment", Nav::Experiment, &b)
}
