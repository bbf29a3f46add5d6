//! The dashboard over fixed, known data, for the browser test (`scripts/dashboard-test`).
//!
//!     cargo run -p edetail-hub --example dashboard_fixture -- --listen 127.0.0.1:0 --expect target/dashboard-expect.json
//!
//! Serves `edetail_hub::dashboard::router()` on loopback behind the operator login
//! (`Hub::dashboard_router`), prints `dashboard: http://127.0.0.1:PORT/dashboard` and
//! `operator-token: TOKEN` on stdout, then `microsite-slide: URL` (a slide of a follow-up
//! microsite whose script tries to read `/dashboard/hcps`: the sandbox must stop it), and writes the values the pages
//! must show as JSON (the same view models, serialized) to the `--expect` path:
//! `edetail_hub::dashboard::expectations()` plus `hostile_hcp`.
//!
//! Two decks, three HCPs (a safety-minded cardiologist at "educated" with a plan, an advocate,
//! an unaware HCP whose id is deliberately hostile: markup and URL metacharacters), three
//! channels, two devices (one with rejected events and a backlog).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use edetail_hub::dashboard::*;
use edetail_hub::{Error, Result};
use edetail_protocol::{Plan, PlanItem};

const CZ: &str = "com.example.cardiozen.launch";
const GL: &str = "com.example.glucora.intro";
const HCP_SAFETY: &str = "hcp-4f1c9a";
const HCP_ADVOCATE: &str = "hcp-b27e05";
/// Markup, quotes and URL metacharacters: must be escaped in pages and encoded in links.
const HCP_HOSTILE: &str = "hcp-9c21/<b>&\"x\"?#";

fn t(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0).single().expect("valid fixture date")
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[allow(clippy::too_many_arguments)]
fn slide(
    id: &str,
    title: &str,
    pres: &str,
    topics: &[&str],
    views: u64,
    dwell: u64,
    drop: f64,
    r: (u64, u64, u64),
    hcp_led: u64,
) -> SlideRow {
    SlideRow {
        slide_id: id.into(),
        title: title.into(),
        presentation_id: pres.into(),
        topics: strings(topics),
        views,
        median_dwell_ms: dwell,
        drop_off: drop,
        reactions_positive: r.0,
        reactions_neutral: r.1,
        reactions_negative: r.2,
        hcp_led,
    }
}

fn cardiozen(segment: Option<&str>) -> DeckView {
    let all = vec![
        slide("home", "Cardiozen at a glance", "main", &["overview"], 42, 6200, 0.02, (5, 10, 1), 3),
        slide("efficacy-primary", "Primary endpoint: 24% fewer events", "main", &["efficacy"], 40, 8000, 0.05, (14, 6, 1), 9),
        slide("efficacy-subgroups", "Consistent across subgroups", "main", &["efficacy"], 31, 11500, 0.10, (6, 8, 2), 12),
        slide("safety-overview", "Safety profile", "main", &["safety"], 35, 14800, 0.08, (9, 7, 3), 15),
        slide("safety-renal", "Renal safety", "main", &["safety", "renal"], 22, 9100, 0.18, (4, 5, 4), 8),
        slide("dosing", "Dosing and titration", "main", &["dosing"], 20, 5200, 0.25, (3, 9, 0), 2),
        slide("summary", "Summary and follow-up", "main", &["summary"], 15, 4300, 0.60, (6, 2, 0), 1),
    ];
    let (slides, calls, channels) = match segment {
        None => (all, 47, vec![("face-to-face", 38), ("remote", 9)]),
        // Cardiologists stay longer on safety and drop off less before dosing.
        Some("cardiology") => (
            vec![
                slide("home", "Cardiozen at a glance", "main", &["overview"], 18, 4100, 0.0, (2, 4, 0), 1),
                slide("efficacy-primary", "Primary endpoint: 24% fewer events", "main", &["efficacy"], 18, 7200, 0.0, (7, 2, 0), 4),
                slide("efficacy-subgroups", "Consistent across subgroups", "main", &["efficacy"], 16, 13900, 0.06, (4, 3, 1), 7),
                slide("safety-overview", "Safety profile", "main", &["safety"], 17, 19600, 0.06, (5, 3, 1), 10),
                slide("safety-renal", "Renal safety", "main", &["safety", "renal"], 13, 12400, 0.08, (3, 2, 2), 6),
                slide("dosing", "Dosing and titration", "main", &["dosing"], 12, 5600, 0.17, (2, 5, 0), 1),
                slide("summary", "Summary and follow-up", "main", &["summary"], 10, 3900, 0.70, (4, 1, 0), 0),
            ],
            20,
            vec![("face-to-face", 17), ("remote", 3)],
        ),
        Some("general-practice") => (
            vec![
                slide("home", "Cardiozen at a glance", "main", &["overview"], 24, 7800, 0.04, (3, 6, 1), 2),
                slide("efficacy-primary", "Primary endpoint: 24% fewer events", "main", &["efficacy"], 22, 8600, 0.09, (7, 4, 1), 5),
                slide("efficacy-subgroups", "Consistent across subgroups", "main", &["efficacy"], 15, 9000, 0.13, (2, 5, 1), 5),
                slide("safety-overview", "Safety profile", "main", &["safety"], 18, 10100, 0.11, (4, 4, 2), 5),
                slide("safety-renal", "Renal safety", "main", &["safety", "renal"], 9, 6300, 0.33, (1, 3, 2), 2),
                slide("dosing", "Dosing and titration", "main", &["dosing"], 8, 4800, 0.38, (1, 4, 0), 1),
                slide("summary", "Summary and follow-up", "main", &["summary"], 5, 4600, 0.40, (2, 1, 0), 1),
            ],
            27,
            vec![("face-to-face", 21), ("remote", 6)],
        ),
        Some(_) => (Vec::new(), 0, Vec::new()),
    };
    DeckView {
        bundle_id: CZ.into(),
        title: "Cardiozen launch".into(),
        product: "cardiozen".into(),
        version: 3,
        segments: strings(&["cardiology", "general-practice"]),
        segment: segment.map(str::to_string),
        calls,
        slides,
        channels: channels.into_iter().map(|(c, n)| ChannelCount { channel: c.into(), calls: n }).collect(),
        outcomes: if segment.is_none() { cardiozen_outcomes() } else { Vec::new() },
        stage_moves: if segment.is_none() { cardiozen_moves() } else { Vec::new() },
        rep_edits: if segment.is_none() {
            vec![RepEditRow { slide_id: "dosing".into(), title: "Dosing and titration".into(), planned: 9, kept: 3, dropped: 6, added: 0 }]
        } else {
            Vec::new()
        },
    }
}

fn outcome(arm: &str, objective: &str, achieved: u64, missed: u64) -> OutcomeRow {
    OutcomeRow { arm: arm.into(), objective: objective.into(), achieved, missed }
}

fn cardiozen_outcomes() -> Vec<OutcomeRow> {
    vec![outcome("holdout", "educated", 4, 9), outcome("treatment", "educated", 41, 37), outcome("treatment", "convinced", 12, 20)]
}

fn cardiozen_moves() -> Vec<StageMoveRow> {
    let m = |slide: &str, title: &str, stage: &str, calls: u64, share: f64| StageMoveRow {
        bundle_id: CZ.into(),
        slide_id: slide.into(),
        title: title.into(),
        stage: stage.into(),
        calls,
        share,
    };
    vec![
        m("efficacy-primary", "Primary endpoint: 24% fewer events", "educated", 30, 0.66),
        m("safety-overview", "Safety profile", "educated", 21, 0.46),
        m("dosing", "Dosing and titration", "convinced", 9, 0.75),
    ]
}

fn glucora(segment: Option<&str>) -> DeckView {
    let slides = match segment {
        None => vec![
            slide("intro", "Glucora: once-weekly", "intro", &["overview"], 12, 5400, 0.08, (3, 4, 0), 0),
            slide("mechanism", "Mechanism of action", "intro", &["mechanism"], 11, 9800, 0.18, (2, 6, 1), 3),
            slide("hba1c", "HbA1c reduction", "intro", &["efficacy"], 9, 12100, 0.11, (5, 2, 0), 4),
            slide("close", "Next steps", "intro", &["summary"], 8, 3000, 0.75, (1, 1, 0), 0),
        ],
        _ => Vec::new(),
    };
    DeckView {
        bundle_id: GL.into(),
        title: "Glucora introduction".into(),
        product: "glucora".into(),
        version: 1,
        segments: strings(&["general-practice"]),
        segment: segment.map(str::to_string),
        calls: if segment.is_none() { 12 } else { 0 },
        slides,
        channels: if segment.is_none() { vec![ChannelCount { channel: "face-to-face".into(), calls: 12 }] } else { Vec::new() },
        outcomes: Vec::new(),
        stage_moves: Vec::new(),
        rep_edits: Vec::new(),
    }
}

fn item(slide: &str, reason: &str, evidence: &[&str]) -> PlanItem {
    PlanItem {
        slide_id: slide.into(),
        presentation_id: "main".into(),
        reason: reason.into(),
        evidence: strings(evidence),
        mandatory: false,
    }
}

fn step(at: DateTime<Utc>, from: &str, to: &str, rule: &str, evidence: &[&str]) -> StageStep {
    StageStep { at, from: from.into(), to: to.into(), rule: rule.into(), evidence: strings(evidence) }
}

fn engagement(rows: &[(&str, u64, u64)]) -> Vec<EngagementRow> {
    rows.iter().map(|(p, c, v)| EngagementRow { period: p.to_string(), calls: *c, views: *v }).collect()
}

fn rx(product: &str, rows: &[(&str, u64)]) -> Vec<RxRow> {
    rows.iter().map(|(p, c)| RxRow { period: p.to_string(), product: product.into(), count: *c }).collect()
}

fn hcp_safety() -> HcpView {
    HcpView {
        hcp_id: HCP_SAFETY.into(),
        segment: Some("cardiology".into()),
        calls_by_channel: vec![
            ChannelCount { channel: "face-to-face".into(), calls: 5 },
            ChannelCount { channel: "remote".into(), calls: 1 },
        ],
        topics: vec![
            TopicRow {
                topic: "safety".into(),
                score: 3.4,
                views: 11,
                evidence: strings(&[
                    "safety-overview: median dwell 21.0 s over 5 views (deck median 8.0 s)",
                    "2 follow-up requests on safety",
                    "3 HCP-led jumps to safety slides",
                ]),
            },
            TopicRow { topic: "renal".into(), score: 2.1, views: 4, evidence: strings(&["safety-renal: 4 views, 2 positive reactions"]) },
            TopicRow {
                topic: "efficacy".into(),
                score: 1.25,
                views: 6,
                evidence: strings(&["efficacy-subgroups: dwell above deck median in 3 of 4 calls"]),
            },
            TopicRow { topic: "dosing".into(), score: 0.4, views: 2, evidence: strings(&["dosing: 2 short views"]) },
        ],
        key_messages: vec![
            KeyMessageRow { key_message: "CZ-KM-SAFETY".into(), views: 7, dwell_ms: 131_000, last_at: Some(t(11, 20, 10)) },
            KeyMessageRow { key_message: "CZ-KM-EFFICACY".into(), views: 6, dwell_ms: 58_000, last_at: Some(t(11, 20, 10)) },
            KeyMessageRow { key_message: "CZ-KM-RENAL".into(), views: 4, dwell_ms: 47_000, last_at: Some(t(11, 6, 14)) },
        ],
        stages: vec![
            StageView {
                product: "cardiozen".into(),
                stage: "educated".into(),
                history: vec![
                    step(t(8, 4, 9), "unaware", "aware", "first-detail", &["first call with the Cardiozen deck"]),
                    step(
                        t(10, 14, 11),
                        "aware",
                        "educated",
                        "key-messages-covered",
                        &["3 of 3 key messages seen", "median dwell above 8 s on efficacy and safety"],
                    ),
                ],
            },
            StageView {
                product: "glucora".into(),
                stage: "aware".into(),
                history: vec![step(t(11, 6, 14), "unaware", "aware", "first-detail", &["first call with the Glucora deck"])],
            },
        ],
        plan: Some(Plan {
            plan_id: "plan-2026-12-01-4f1c9a".into(),
            hcp_id: HCP_SAFETY.into(),
            territory: "north".into(),
            product: "cardiozen".into(),
            bundle_id: CZ.into(),
            bundle_version: 3,
            stage: "educated".into(),
            generated_at: t(12, 1, 6),
            valid_until: t(12, 31, 23),
            items: vec![
                item("safety-overview", "strongest interest: safety (3.40)", &["median dwell 21.0 s", "2 follow-up requests"]),
                item("safety-renal", "second interest: renal (2.10)", &["4 views, 2 positive reactions"]),
                item("efficacy-subgroups", "educated: deepen efficacy evidence", &["stage educated since 2026-10-14"]),
                item("dosing", "educated → convinced needs dosing confidence", &["dosing seen only briefly (2 views)"]),
                item("summary", "close with follow-up", &[]),
            ],
            skipped: vec![
                item("home", "awareness slide: HCP is educated", &["stage educated"]),
                item("efficacy-primary", "already seen 4 times", &["4 views in the last 3 calls"]),
            ],
            reasons: strings(&["stage educated for cardiozen: deepen, then move to convinced", "interests: safety 3.40, renal 2.10"]),
            objective: Some("convinced".into()),
            arm: Some("treatment".into()),
        }),
        microsites: vec![MicrositeRow {
            created_at: t(11, 20, 11),
            expires_at: t(12, 20, 11),
            topics: strings(&["safety", "renal"]),
            views: 3,
        }],
        prescriptions: rx("cardiozen", &[("2026-08", 0), ("2026-09", 2), ("2026-10", 3), ("2026-11", 6)]),
        engagement_by_period: engagement(&[("2026-08", 1, 6), ("2026-09", 1, 7), ("2026-10", 2, 14), ("2026-11", 2, 16)]),
        plans: vec![
            PlanOutcomeRow {
                product: "cardiozen".into(),
                plan_id: "plan-2026-12-01-4f1c9a".into(),
                objective: "convinced".into(),
                arm: "treatment".into(),
                made_at: Some(t(12, 1, 6)),
                outcome: "open".into(),
                followed: false,
            },
            PlanOutcomeRow {
                product: "cardiozen".into(),
                plan_id: "plan-2026-10-02-a1b2c3".into(),
                objective: "educated".into(),
                arm: "treatment".into(),
                made_at: Some(t(10, 2, 6)),
                outcome: "achieved".into(),
                followed: true,
            },
        ],
        arms: vec![("cardiozen".into(), "treatment".into())],
    }
}

fn hcp_advocate() -> HcpView {
    HcpView {
        hcp_id: HCP_ADVOCATE.into(),
        segment: Some("general-practice".into()),
        calls_by_channel: vec![
            ChannelCount { channel: "face-to-face".into(), calls: 7 },
            ChannelCount { channel: "remote".into(), calls: 3 },
            ChannelCount { channel: "microsite".into(), calls: 2 },
        ],
        topics: vec![
            TopicRow {
                topic: "efficacy".into(),
                score: 2.75,
                views: 14,
                evidence: strings(&["efficacy-primary: 6 views, 5 positive reactions"]),
            },
            TopicRow { topic: "dosing".into(), score: 1.6, views: 6, evidence: strings(&["dosing: HCP-led twice"]) },
        ],
        key_messages: vec![KeyMessageRow {
            key_message: "CZ-KM-EFFICACY".into(),
            views: 9,
            dwell_ms: 84_000,
            last_at: Some(t(11, 25, 15)),
        }],
        stages: vec![StageView {
            product: "cardiozen".into(),
            stage: "advocate".into(),
            history: vec![
                step(t(6, 2, 10), "unaware", "aware", "first-detail", &["first call"]),
                step(t(7, 9, 10), "aware", "educated", "key-messages-covered", &["3 of 3 key messages seen"]),
                step(t(8, 27, 10), "educated", "convinced", "first-prescriptions", &["4 prescriptions in 2026-08"]),
                step(
                    t(10, 30, 10),
                    "convinced",
                    "advocate",
                    "sustained-prescribing",
                    &["prescriptions rising 3 periods", "requested material for colleagues"],
                ),
            ],
        }],
        plan: None,
        microsites: Vec::new(),
        prescriptions: rx("cardiozen", &[("2026-08", 4), ("2026-09", 7), ("2026-10", 9), ("2026-11", 12)]),
        engagement_by_period: engagement(&[("2026-08", 3, 22), ("2026-09", 3, 19), ("2026-10", 3, 25), ("2026-11", 3, 21)]),
        plans: Vec::new(),
        arms: Vec::new(),
    }
}

fn hcp_hostile() -> HcpView {
    HcpView {
        hcp_id: HCP_HOSTILE.into(),
        segment: None,
        calls_by_channel: vec![ChannelCount { channel: "face-to-face".into(), calls: 1 }],
        topics: Vec::new(),
        key_messages: Vec::new(),
        stages: vec![StageView { product: "cardiozen".into(), stage: "unaware".into(), history: Vec::new() }],
        plan: None,
        microsites: Vec::new(),
        prescriptions: Vec::new(),
        engagement_by_period: engagement(&[("2026-11", 1, 3)]),
        plans: Vec::new(),
        arms: Vec::new(),
    }
}

fn row(h: &HcpView, calls: u64, last: DateTime<Utc>) -> HcpRow {
    HcpRow {
        hcp_id: h.hcp_id.clone(),
        segment: h.segment.clone(),
        calls,
        last_call_at: Some(last),
        stages: h.stages.iter().map(|s| ProductStage { product: s.product.clone(), stage: s.stage.clone() }).collect(),
        top_topic: h.topics.first().map(|t| t.topic.clone()),
        // Issue 15's territory filter: every HCP in one or two territories, by her id's fifth
        // character (the fixture's three HCPs get three different answers).
        territories: match h.hcp_id.as_bytes().get(4).copied().unwrap_or(0) % 3 {
            0 => vec!["north".into()],
            1 => vec!["north".into(), "south".into()],
            _ => vec!["south".into()],
        },
    }
}

#[derive(Debug)]
struct Fixture {
    decks: Vec<DeckSummary>,
    deck_views: HashMap<(String, Option<String>), DeckView>,
    hcps: Vec<HcpRow>,
    hcp_views: HashMap<String, HcpView>,
    channels: ChannelsView,
    sync: SyncHealthView,
}

impl Fixture {
    fn new() -> Fixture {
        let mut deck_views = HashMap::new();
        for seg in [None, Some("cardiology"), Some("general-practice")] {
            deck_views.insert((CZ.to_string(), seg.map(str::to_string)), cardiozen(seg));
        }
        for seg in [None, Some("general-practice")] {
            deck_views.insert((GL.to_string(), seg.map(str::to_string)), glucora(seg));
        }
        let summary = |d: &DeckView| DeckSummary {
            bundle_id: d.bundle_id.clone(),
            title: d.title.clone(),
            product: d.product.clone(),
            version: d.version,
            calls: d.calls,
            views: d.slides.iter().map(|s| s.views).sum(),
        };
        let decks = vec![summary(&cardiozen(None)), summary(&glucora(None))];
        let (a, b, c) = (hcp_safety(), hcp_advocate(), hcp_hostile());
        let hcps = vec![row(&a, 6, t(11, 20, 10)), row(&b, 12, t(11, 25, 15)), row(&c, 1, t(11, 27, 9))];
        let hcp_views = [a, b, c].into_iter().map(|h| (h.hcp_id.clone(), h)).collect();
        let channels = ChannelsView {
            rows: vec![
                ChannelRow { channel: "face-to-face".into(), calls: 50, views: 291, hcps_reached: 3 },
                ChannelRow { channel: "remote".into(), calls: 9, views: 64, hcps_reached: 2 },
                ChannelRow { channel: "microsite".into(), calls: 2, views: 9, hcps_reached: 1 },
            ],
        };
        let sync = SyncHealthView {
            devices: vec![
                DeviceRow {
                    device_id: "dev-7d2e91".into(),
                    rep_id: "rep-017".into(),
                    territory: "north".into(),
                    last_seen_at: Some(t(12, 1, 17)),
                    watermark: 412,
                    events_received: 412,
                    duplicates: 18,
                    rejected: 0,
                    pending_analysis: 0,
                },
                DeviceRow {
                    device_id: "dev-c04b3a".into(),
                    rep_id: "rep-023".into(),
                    territory: "south".into(),
                    last_seen_at: Some(t(11, 28, 8)),
                    watermark: 187,
                    events_received: 180,
                    duplicates: 3,
                    rejected: 7,
                    pending_analysis: 25,
                },
            ],
            parked: vec![],
        };
        Fixture { decks, deck_views, hcps, hcp_views, channels, sync }
    }
}

impl DashboardSource for Fixture {
    fn decks(&self) -> Result<Vec<DeckSummary>> {
        Ok(self.decks.clone())
    }
    fn deck(&self, bundle_id: &str, segment: Option<&str>) -> Result<Option<DeckView>> {
        Ok(self.deck_views.get(&(bundle_id.to_string(), segment.map(str::to_string))).cloned())
    }
    fn hcps(&self) -> Result<Vec<HcpRow>> {
        Ok(self.hcps.clone())
    }
    fn hcp(&self, hcp_id: &str) -> Result<Option<HcpView>> {
        Ok(self.hcp_views.get(hcp_id).cloned())
    }
    fn channels(&self) -> Result<ChannelsView> {
        Ok(self.channels.clone())
    }
    fn sync_health(&self) -> Result<SyncHealthView> {
        Ok(self.sync.clone())
    }
    fn experiment(&self) -> Result<ExperimentView> {
        use edetail_hub::analytics::Estimate;
        Ok(ExperimentView {
            holdout_share: 0.1,
            min_per_arm: 30,
            products: vec![
                ProductExperiment {
                    product: "cardiozen".into(),
                    treatment_n: 412,
                    holdout_n: 47,
                    progression: Estimate::Effect {
                        treatment_n: 412,
                        holdout_n: 47,
                        treatment_mean: 0.61,
                        holdout_mean: 0.32,
                        difference: 0.29,
                        low: 0.11,
                        high: 0.47,
                    },
                    rx_change: Estimate::Effect {
                        treatment_n: 388,
                        holdout_n: 44,
                        treatment_mean: 1.9,
                        holdout_mean: 1.2,
                        difference: 0.7,
                        low: -0.4,
                        high: 1.8,
                    },
                    outcomes: cardiozen_outcomes(),
                    stage_moves: cardiozen_moves(),
                },
                ProductExperiment {
                    product: "glucora".into(),
                    treatment_n: 23,
                    holdout_n: 2,
                    progression: Estimate::NotEnoughData { treatment_n: 23, holdout_n: 2, min_per_arm: 30 },
                    rx_change: Estimate::NotEnoughData { treatment_n: 0, holdout_n: 0, min_per_arm: 30 },
                    outcomes: Vec::new(),
                    stage_moves: Vec::new(),
                },
            ],
        })
    }
}

fn usage() -> ! {
    eprintln!("usage: dashboard_fixture [--listen 127.0.0.1:0] [--expect PATH]");
    std::process::exit(2)
}

/// Publishes a bundle whose first slide tries to read `/dashboard/hcps` (its title then says
/// `read:yes`, `read:no` or `blocked`) and opens a microsite on it; returns the slide's path.
fn microsite_with_prying_slide(hub: &edetail_hub::Hub, key: &edetail_bundle::SecretKey) -> Result<String> {
    use edetail_hub::store::{AnalysisCommit, CheckedEvent, Microsite};
    let mut bundle = edetail_bundle::testkit::SampleBundle::new();
    bundle.files.insert(
        "slides/intro/index.html".into(),
        b"<!doctype html><title>waiting</title><h1>Intro</h1><script>\
          fetch('/dashboard/hcps', {credentials: 'include'}).then(function (r) { return r.text(); })\
          .then(function (t) { document.title = t.indexOf('data-page=\"hcps\"') >= 0 ? 'read:yes' : 'read:no'; })\
          .catch(function () { document.title = 'blocked'; });</script>"
            .to_vec(),
    );
    hub.publish_zip(&bundle.zip(Some(key)), &[])?;
    // A microsite needs an analysed call to hang on: one ended call of a device.
    let dev = hub.add_device("rep-fixture", "north")?;
    let ended = edetail_protocol::WireEvent {
        uuid: "6f1c2b1e-0000-4000-8000-000000000001".into(),
        seq: 1,
        call_id: Some("c-fixture".into()),
        kind: "call_ended".into(),
        recorded_at: Utc::now(),
        session: 1,
        mono_ms: 0,
        payload: serde_json::json!({}),
    };
    let store = hub.store();
    store.apply_batch(
        &dev.device_id,
        &[CheckedEvent::Valid { recorded_at_corrected: ended.recorded_at, event: ended, payload_json: None }],
        0,
        Utc::now(),
    )?;
    let queued = store.pending_calls(10)?.into_iter().next().ok_or_else(|| Error::Internal("no queued call".into()))?;
    let path = hub.microsite_path("ms-fixture");
    let token = path.trim_start_matches("/m/").to_string();
    let site = Microsite {
        id: "ms-fixture".into(),
        token_sha256: edetail_bundle::Sha256Digest::of(token.as_bytes()).to_hex(),
        hcp_id: "hcp-fixture".into(),
        territory: "north".into(),
        bundle_id: bundle.manifest.id.clone(),
        bundle_version: bundle.manifest.version,
        slides: vec!["intro".into()],
        topics: vec![],
        reason: "fixture".into(),
        created_at: Utc::now(),
        expires_at: Utc::now() + chrono::Duration::days(14),
        views: 0,
    };
    store.commit_analysis(&AnalysisCommit {
        queue_ids: vec![queued.queue_id],
        merges: vec![],
        docs: vec![],
        summaries: vec![],
        plans: vec![],
        microsites: vec![site],
        now: Utc::now(),
    })?;
    Ok(format!("{path}/a/slides/intro/index.html"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut listen = "127.0.0.1:0".to_string();
    let mut expect = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or_else(|| usage()),
            "--expect" => expect = Some(args.next().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    let fixture = Fixture::new();
    if let Some(path) = expect {
        // What any source's dashboard must show, plus the HCP whose id is hostile.
        let mut x = expectations(&fixture)?;
        x["hostile_hcp"] = serde_json::to_value(hcp_hostile()).map_err(|e| Error::Internal(e.to_string()))?;
        let json = serde_json::to_vec_pretty(&x).map_err(|e| Error::Internal(e.to_string()))?;
        if let Some(dir) = std::path::Path::new(&path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        }
        std::fs::write(&path, json).map_err(Error::io(&path))?;
    }
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| Error::Internal(format!("bind {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
    // The pages sit behind the operator login, as on a real hub: a throwaway hub in a temp
    // directory holds the operator, whose token the test types into the login form.
    let auth_dir = tempfile::tempdir().map_err(Error::io(std::env::temp_dir()))?;
    let publisher = edetail_bundle::SecretKey::from_seed(&[42; 32]);
    let hub = edetail_hub::Hub::open(edetail_hub::HubConfig::local(auth_dir.path(), vec![publisher.public()]))?;
    let token = hub.add_operator("fixture", 1, "fixture")?;
    let slide = microsite_with_prying_slide(&hub, &publisher)?;
    println!("dashboard: http://{addr}/dashboard");
    println!("operator-token: {token}");
    println!("microsite-slide: http://{addr}{slide}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    axum::serve(listener, hub.dashboard_router(Arc::new(fixture)).merge(hub.microsite_router()))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Error::Internal(format!("server: {e}")))
}
