//! Rendering and routing tests of the dashboard over a small in-memory source.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use edetail_protocol::{Plan, PlanItem};

use super::*;

const HOSTILE: &str = r#"<script>alert("x")</script>&'"#;

fn slide(id: &str, title: &str, views: u64, dwell: u64, drop: f64) -> SlideRow {
    SlideRow {
        slide_id: id.into(),
        title: title.into(),
        presentation_id: "main".into(),
        topics: vec!["efficacy".into()],
        views,
        median_dwell_ms: dwell,
        drop_off: drop,
        reactions_positive: 3,
        reactions_neutral: 2,
        reactions_negative: 1,
        hcp_led: 1,
    }
}

fn deck_view(id: &str) -> DeckView {
    DeckView {
        bundle_id: id.into(),
        title: "Cardiozen launch".into(),
        product: "cardiozen".into(),
        version: 2,
        segments: vec!["cardiology".into()],
        segment: None,
        calls: 10,
        slides: vec![
            slide("home", "Home", 10, 4000, 0.0),
            slide("efficacy-primary", "Efficacy", 9, 8000, 0.25),
            slide(HOSTILE, HOSTILE, 3, 2000, 1.0),
        ],
        channels: vec![ChannelCount { channel: "remote".into(), calls: 10 }],
        outcomes: vec![OutcomeRow { arm: "treatment".into(), objective: "educated".into(), achieved: 3, missed: 1 }],
        stage_moves: vec![StageMoveRow {
            bundle_id: id.into(),
            slide_id: HOSTILE.into(),
            title: HOSTILE.into(),
            stage: "educated".into(),
            calls: 2,
            share: 0.5,
        }],
        rep_edits: vec![],
    }
}

fn plan() -> Plan {
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 6, 0, 0).unwrap();
    let item = |s: &str, r: &str| PlanItem {
        slide_id: s.into(),
        presentation_id: "main".into(),
        reason: r.into(),
        evidence: vec!["2 follow-ups".into()],
        mandatory: false,
    };
    Plan {
        plan_id: "p1".into(),
        hcp_id: "h1".into(),
        territory: "north".into(),
        product: "cardiozen".into(),
        bundle_id: "cz".into(),
        bundle_version: 2,
        stage: "educated".into(),
        generated_at: at,
        valid_until: at,
        items: vec![item("safety-overview", "interest: safety"), item("dosing", "next stage"), item(HOSTILE, HOSTILE)],
        skipped: vec![item("home", "awareness slide")],
        reasons: vec!["stage educated".into()],
        objective: Some("convinced".into()),
        arm: Some("treatment".into()),
    }
}

fn hcp_view(id: &str, with_plan: bool) -> HcpView {
    let at = Utc.with_ymd_and_hms(2026, 10, 14, 11, 0, 0).unwrap();
    HcpView {
        hcp_id: id.into(),
        segment: Some("cardiology".into()),
        calls_by_channel: vec![ChannelCount { channel: "face-to-face".into(), calls: 4 }],
        topics: vec![
            TopicRow { topic: "safety".into(), score: 3.4, views: 7, evidence: vec![HOSTILE.into()] },
            TopicRow { topic: "efficacy".into(), score: 1.256, views: 3, evidence: vec![] },
        ],
        key_messages: vec![],
        stages: vec![StageView {
            product: "cardiozen".into(),
            stage: "educated".into(),
            history: vec![StageStep {
                at,
                from: "aware".into(),
                to: "educated".into(),
                rule: "key-messages-covered".into(),
                evidence: vec![],
            }],
        }],
        plan: with_plan.then(plan),
        microsites: vec![],
        prescriptions: vec![RxRow { period: "2026-10".into(), product: "cardiozen".into(), count: 5 }],
        engagement_by_period: vec![EngagementRow { period: "2026-10".into(), calls: 2, views: 12 }],
        plans: vec![],
        arms: vec![("cardiozen".into(), "holdout".into())],
    }
}

#[derive(Debug, Default)]
struct Mem {
    decks: Vec<DeckSummary>,
    fail: bool,
}

impl DashboardSource for Mem {
    fn decks(&self) -> Result<Vec<DeckSummary>> {
        if self.fail {
            return Err(Error::Internal("secret database path /var/lib/x".into()));
        }
        Ok(self.decks.clone())
    }
    fn deck(&self, bundle_id: &str, segment: Option<&str>) -> Result<Option<DeckView>> {
        Ok(self
            .decks
            .iter()
            .any(|d| d.bundle_id == bundle_id)
            .then(|| DeckView { segment: segment.map(str::to_string), ..deck_view(bundle_id) }))
    }
    fn hcps(&self) -> Result<Vec<HcpRow>> {
        Ok(vec![])
    }
    fn hcp(&self, hcp_id: &str) -> Result<Option<HcpView>> {
        Ok((hcp_id == "h1" || hcp_id == HOSTILE).then(|| hcp_view(hcp_id, true)))
    }
    fn channels(&self) -> Result<ChannelsView> {
        Ok(ChannelsView { rows: vec![] })
    }
    fn sync_health(&self) -> Result<SyncHealthView> {
        Ok(SyncHealthView { devices: vec![], parked: vec![] })
    }
    fn experiment(&self) -> Result<ExperimentView> {
        Ok(experiment_view())
    }
}

fn experiment_view() -> ExperimentView {
    use crate::analytics::Estimate;
    ExperimentView {
        holdout_share: 0.1,
        min_per_arm: 30,
        products: vec![
            ProductExperiment {
                product: HOSTILE.into(),
                treatment_n: 3,
                holdout_n: 1,
                progression: Estimate::NotEnoughData { treatment_n: 3, holdout_n: 1, min_per_arm: 30 },
                rx_change: Estimate::NotEnoughData { treatment_n: 0, holdout_n: 0, min_per_arm: 30 },
                outcomes: vec![],
                stage_moves: vec![],
            },
            ProductExperiment {
                product: "cardiozen".into(),
                treatment_n: 400,
                holdout_n: 40,
                progression: Estimate::Effect {
                    treatment_n: 400,
                    holdout_n: 40,
                    treatment_mean: 0.6,
                    holdout_mean: 0.3,
                    difference: 0.3,
                    low: 0.1,
                    high: 0.5,
                },
                rx_change: Estimate::Effect {
                    treatment_n: 400,
                    holdout_n: 40,
                    treatment_mean: 1.0,
                    holdout_mean: 1.2,
                    difference: -0.2,
                    low: -0.9,
                    high: 0.5,
                },
                outcomes: vec![OutcomeRow { arm: "holdout".into(), objective: "aware".into(), achieved: 0, missed: 2 }],
                stage_moves: vec![],
            },
        ],
    }
}

fn summary(id: &str) -> DeckSummary {
    DeckSummary { bundle_id: id.into(), title: "Cardiozen launch".into(), product: "cardiozen".into(), version: 2, calls: 10, views: 22 }
}

/// No raw markup from data: the only `<script` would be an injected one.
fn assert_no_injection(html: &str) {
    assert!(!html.contains("<script"), "unescaped markup in page");
    assert!(!html.contains("alert(\"x\")"), "unescaped quotes in page");
}

#[test]
fn html_escape_neutralizes_markup_and_quotes() {
    assert_eq!(html_escape(HOSTILE), "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;");
    assert_eq!(html_escape("plain-id_1.2"), "plain-id_1.2");
    assert_eq!(html_escape(""), "");
}

#[test]
fn url_segment_encodes_everything_but_unreserved() {
    assert_eq!(url_segment("com.example.cz-1_~"), "com.example.cz-1_~");
    assert_eq!(url_segment("a/b c?d#e%f<g>\"é"), "a%2Fb%20c%3Fd%23e%25f%3Cg%3E%22%C3%A9");
}

#[test]
fn deck_page_carries_the_numbers_in_attributes() {
    let html = pages::deck(&deck_view("cz"));
    assert!(html.contains(r#"<svg data-chart="dwell-heatmap""#));
    assert!(html.contains(r#"data-slide="efficacy-primary" data-median-dwell-ms="8000" data-views="9" data-intensity="1.000""#), "{html}");
    assert!(html.contains(r#"data-slide="home" data-median-dwell-ms="4000" data-views="10" data-intensity="0.500""#));
    assert!(html.contains(r#"data-slide="efficacy-primary" data-drop-off="0.250""#));
    assert!(html.contains(r#"data-slide="efficacy-primary" data-positive="3" data-neutral="2" data-negative="1""#));
    assert_eq!(html.matches("data-median-dwell-ms=").count(), 3, "one heat-map cell per slide");
    assert_eq!(html.matches("data-drop-off=").count(), 3, "one drop-off bar per slide");
    assert!(html.contains("8.0 s"));
    // Segment selector: all HCPs selected, the segment link percent-encoded.
    assert!(html.contains(r#"href="/dashboard/decks/cz?segment=cardiology" data-segment="cardiology""#));
    assert!(html.contains(r#"data-segment="" class="active""#));
    assert_no_injection(&html);
    assert!(html.contains("data-slide=\"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;\""));
}

#[test]
fn hostile_ids_are_escaped_and_encoded_in_links() {
    let html = pages::overview(
        &[summary(HOSTILE)],
        &HcpOverview::default(),
        &ChannelsView { rows: vec![] },
        &SyncHealthView { devices: vec![], parked: vec![] },
    );
    assert_no_injection(&html);
    assert!(html.contains(r#"href="/dashboard/decks/%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E%26%27""#), "{html}");
    let html = pages::hcp(&hcp_view(HOSTILE, true));
    assert_no_injection(&html);
    let html = pages::deck(&DeckView { bundle_id: HOSTILE.into(), segments: vec![HOSTILE.into()], ..deck_view(HOSTILE) });
    assert_no_injection(&html);
    assert!(html.contains("data-slide=\"&lt;script&gt;"), "the stage-move row's slide id is escaped");
}

#[test]
fn hcp_page_shows_interests_stages_and_plan_in_order() {
    let html = pages::hcp(&hcp_view("h1", true));
    assert!(html.contains(r#"<svg data-chart="interest-profile""#));
    assert!(html.contains(r#"data-topic="safety" data-score="3.40" data-views="7""#));
    assert!(html.contains(r#"data-topic="efficacy" data-score="1.26""#));
    assert!(html.contains(r#"data-stage="educated" data-from="aware" data-at="2026-10-14T11:00:00Z" data-rule="key-messages-covered""#));
    let a = html.find(r#"<li data-slide="safety-overview""#).expect("first item");
    let b = html.find(r#"<li data-slide="dosing""#).expect("second item");
    assert!(a < b, "plan items in plan order");
    assert!(html.contains(r#"data-list="plan-skipped"><li data-slide="home""#));
    assert!(html.contains(r#"data-period="2026-10" data-calls="2" data-views="12""#));
    assert!(html.contains(r#"data-period="2026-10" data-product="cardiozen" data-rx="5""#));
    assert!(!html.contains(r#"data-empty="plan""#));
}

#[test]
fn experiment_page_shows_estimates_with_intervals_or_not_enough_data() {
    let html = pages::experiment(&experiment_view());
    assert_no_injection(&html);
    assert!(html.contains(r#"data-page="experiment""#));
    assert!(html.contains(r#"data-holdout-share="0.1" data-min-per-arm="30""#));
    assert!(html.contains(
        r#"data-estimate="progression" data-product="cardiozen" data-result="effect" data-treatment-n="400" data-holdout-n="40" data-difference="0.3000" data-low="0.1000" data-high="0.5000""#
    ));
    assert!(html.contains("+0.30</strong> treatment − holdout (95% CI +0.10 to +0.50)"));
    assert!(html.contains("plans do better than the holdout"), "an interval above zero says so");
    assert!(html.contains("no difference shown yet: the interval includes zero"), "rx interval spans zero");
    assert_eq!(html.matches(r#"<svg data-chart="effect""#).count(), 2, "one interval chart per estimate with a number");
    // Below the minimum: no number, the counts and the minimum instead.
    assert!(html.contains(r#"data-result="not_enough_data" data-treatment-n="3" data-holdout-n="1""#));
    assert!(html.contains("Not enough data: 3 HCPs in treatment and 1 in holdout with this figure; at least 30 in each arm"));
    assert!(html.contains(r#"<tr data-arm="holdout" data-objective="aware" data-achieved="0" data-missed="2">"#));
    assert!(html.contains(r#"data-nav="Experiment" class="active""#));
    let empty = pages::experiment(&ExperimentView { holdout_share: 0.1, min_per_arm: 30, products: vec![] });
    assert!(empty.contains(r#"data-empty="experiment""#));
}

#[test]
fn deck_and_hcp_pages_show_plan_objectives_and_outcomes() {
    let html = pages::deck(&deck_view("cz"));
    assert!(html.contains(r#"<tr data-arm="treatment" data-objective="educated" data-achieved="3" data-missed="1">"#), "{html}");
    assert!(html.contains(r#"data-stage="educated" data-calls="2""#));
    assert!(html.contains(r#"<td class="n">50%</td>"#), "share of the moves");
    let mut h = hcp_view("h1", true);
    h.plans = vec![PlanOutcomeRow {
        product: "cardiozen".into(),
        plan_id: "p0".into(),
        objective: "educated".into(),
        arm: "holdout".into(),
        made_at: None,
        outcome: "achieved".into(),
        followed: true,
    }];
    let html = pages::hcp(&h);
    assert!(html.contains(r#"data-objective="convinced" data-arm="treatment""#), "the plan names its objective and arm");
    assert!(html.contains(r#"<tr data-plan="p0" data-objective="educated" data-outcome="achieved">"#));
    assert!(html.contains(r#"data-arm-product="cardiozen" data-arm="holdout""#));
    let html = pages::hcp(&hcp_view("h2", false));
    assert!(html.contains(r#"data-empty="plan-outcomes""#));
}

#[test]
fn empty_states() {
    let html =
        pages::overview(&[], &HcpOverview::default(), &ChannelsView { rows: vec![] }, &SyncHealthView { devices: vec![], parked: vec![] });
    for what in ["decks", "hcps", "channels"] {
        assert!(html.contains(&format!(r#"data-empty="{what}""#)), "{what}");
    }
    assert!(html.contains(r#"data-stat="decks" data-value="0""#));
    let html = pages::hcp(&HcpView {
        topics: vec![],
        stages: vec![],
        prescriptions: vec![],
        engagement_by_period: vec![],
        ..hcp_view("h2", false)
    });
    for what in ["plan", "topics", "stages", "rx", "microsites", "key-messages"] {
        assert!(html.contains(&format!(r#"data-empty="{what}""#)), "{what}");
    }
    let html = pages::deck(&DeckView { slides: vec![], ..deck_view("cz") });
    assert!(html.contains(r#"data-empty="slides""#));
    assert!(!html.contains("data-chart="));
    assert!(pages::sync(&SyncHealthView { devices: vec![], parked: vec![] }, &SyncQuery::default()).contains(r#"data-empty="devices""#));
    assert!(pages::decks(&[]).contains(r#"data-empty="decks""#));
    assert!(
        pages::hcps(&HcpList { rows: vec![], total: 0, territories: vec![], query: HcpQuery::default() }).contains(r#"data-empty="hcps""#)
    );
}

#[test]
fn sync_page_flags_rejected_events() {
    let d = |id: &str, rejected, pending| DeviceRow {
        device_id: id.into(),
        rep_id: "rep-1".into(),
        territory: "north".into(),
        last_seen_at: None,
        watermark: 10,
        events_received: 10,
        duplicates: 1,
        rejected,
        pending_analysis: pending,
    };
    let html = pages::sync(&SyncHealthView { devices: vec![d("a", 0, 0), d("b", 3, 2)], parked: vec![] }, &sync_query(&HashMap::new()));
    assert!(html.contains(r#"data-stat="rejected" data-value="3""#));
    assert!(
        html.contains(
            r#"<tr data-device="b" data-watermark="10" data-received="10" data-duplicates="1" data-rejected="3" data-pending="2""#
        )
    );
    assert!(html.contains(r#"data-status="rejected""#));
    assert!(html.contains(r#"data-device="a""#) && html.contains(r#"data-status="never-synced""#));
}

/// Issue 15: the sync page lists its devices a page at a time, filtered by territory from the
/// URL; its totals are the filtered devices'; parked calls are capped at a page.
#[test]
fn the_sync_page_pages_and_filters_its_devices() {
    let d = |i: usize| DeviceRow {
        device_id: format!("dev-{i:03}"),
        rep_id: format!("rep-{i}"),
        territory: if i.is_multiple_of(4) { "south" } else { "north" }.into(),
        last_seen_at: None,
        watermark: 1,
        events_received: 1,
        duplicates: 0,
        rejected: 0,
        pending_analysis: 0,
    };
    let parked = |i: usize| crate::store::ParkedCall {
        device_id: "dev-000".into(),
        call_id: format!("call-{i}"),
        attempts: 5,
        reason: "bad".into(),
    };
    let view = SyncHealthView { devices: (0..250).map(d).collect(), parked: (0..130).map(parked).collect() };
    let params = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();
    let rows = |html: &str| html.matches("<tr data-device=").count();

    let first = pages::sync(&view, &sync_query(&params(&[])));
    assert_eq!(rows(&first), 100);
    assert!(first.contains(r#"data-stat="devices" data-value="250""#), "totals count every device");
    assert!(first.contains(r#"data-page-of="250" data-first="1" data-last="100""#));
    assert!(first.contains(r#"href="/dashboard/sync?page=2" data-page="next""#));
    assert_eq!(first.matches("<tr data-parked-call=").count(), 100);
    assert!(first.contains(r#"data-parked-more="30""#));

    let third = pages::sync(&view, &sync_query(&params(&[("page", "3")])));
    assert_eq!(rows(&third), 50);
    assert!(
        third.contains(r#"<tr data-device="dev-200""#) && third.contains(r#"data-page="prev""#) && !third.contains(r#"data-page="next""#)
    );

    let south = pages::sync(&view, &sync_query(&params(&[("territory", "south")])));
    assert_eq!(rows(&south), 63, "every fourth of 250");
    assert!(south.contains(r#"data-stat="devices" data-value="63""#));
    assert!(south.contains(r#"data-filter-territory="south" class="on""#) && south.contains(r#"href="/dashboard/sync?territory=north""#));
    assert!(!south.contains(r#"data-page="next""#) && !south.contains("data-page-of="), "one page: no pager");
    assert!(pages::sync(&view, &sync_query(&params(&[("page", "9")]))).contains(r#"data-empty="devices-page""#));
    let none = pages::sync(&view, &sync_query(&params(&[("territory", "west")])));
    assert!(none.contains(r#"data-empty="devices-filtered""#));
}

async fn serve(src: Mem) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, router(Arc::new(src))).await.unwrap();
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn routes_statuses_and_headers() {
    let (url, task) = serve(Mem { decks: vec![summary("cz"), summary(HOSTILE)], fail: false }).await;
    let get = |p: String| async move { reqwest::get(p).await.unwrap() };

    let r = get(format!("{url}/dashboard")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
    assert!(r.text().await.unwrap().contains(r#"data-page="overview""#));

    let r = get(format!("{url}/dashboard/decks/cz?segment=cardiology")).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains(r#"data-selected-segment="cardiology""#));

    // A percent-encoded hostile id reaches the source decoded.
    let r = get(format!("{url}/dashboard/decks/{}", url_segment(HOSTILE))).await;
    assert_eq!(r.status(), 200);
    assert_no_injection(&r.text().await.unwrap());
    let r = get(format!("{url}/dashboard/hcps/{}", url_segment(HOSTILE))).await;
    assert_eq!(r.status(), 200);

    for p in ["/dashboard/decks/nope", "/dashboard/hcps/nope", "/dashboard/nowhere/at/all"] {
        let r = get(format!("{url}{p}")).await;
        assert_eq!(r.status(), 404, "{p}");
        assert!(r.text().await.unwrap().contains(r#"data-page="not-found""#), "{p}");
    }
    let r = get(format!("{url}/dashboard/hcps/{}", url_segment("<img src=x>"))).await;
    assert_eq!(r.status(), 404);
    let body = r.text().await.unwrap();
    assert!(body.contains("No HCP &lt;img src=x&gt;.") && !body.contains("<img"), "{body}");
    task.abort();

    // Source failures: a 500 page without the error's details.
    let (url, task) = serve(Mem { decks: vec![], fail: true }).await;
    let r = get(format!("{url}/dashboard")).await;
    assert_eq!(r.status(), 500);
    let body = r.text().await.unwrap();
    assert!(body.contains(r#"data-page="error""#) && !body.contains("secret"));
    task.abort();
}

#[tokio::test]
async fn merges_into_the_hub_router() {
    // The hub's `/v1` router has a fallback; the dashboard's must not (axum refuses to merge
    // two), so its unknown pages come from a `/dashboard/{*rest}` route instead.
    let dir = tempfile::tempdir().unwrap();
    let hub = crate::Hub::open(crate::HubConfig::local(dir.path(), vec![])).unwrap();
    // The hub's router already serves its own dashboard (an empty hub: no decks yet), to
    // operators only.
    let (hub_url, hub_task) = crate::serve_local(hub.clone()).await.unwrap();
    let h = hub.clone();
    let operator = tokio::task::spawn_blocking(move || h.add_operator("ops", 1, "cli:test")).await.unwrap().unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let as_operator = |path: &str| http.get(format!("{hub_url}{path}")).bearer_auth(&operator).send();
    assert_eq!(as_operator("/dashboard").await.unwrap().status(), 200);
    assert_eq!(as_operator("/dashboard/decks/cz").await.unwrap().status(), 404);
    assert_eq!(http.get(format!("{hub_url}/dashboard")).send().await.unwrap().status(), 303, "no operator: to the login form");
    hub_task.abort();
    let app = crate::serve::http_router_for_tests(&hub).merge(router(Arc::new(Mem { decks: vec![summary("cz")], fail: false })));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    assert_eq!(reqwest::get(format!("{url}/dashboard/decks/cz")).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(format!("{url}/dashboard/nope")).await.unwrap().status(), 404);
    assert_eq!(reqwest::get(format!("{url}/v1/device")).await.unwrap().status(), 401);
    task.abort();
}

#[test]
fn expectations_pick_a_deck_and_hcps_with_and_without_plan() {
    #[derive(Debug)]
    struct Two(Mem);
    impl DashboardSource for Two {
        fn decks(&self) -> Result<Vec<DeckSummary>> {
            self.0.decks()
        }
        fn deck(&self, id: &str, seg: Option<&str>) -> Result<Option<DeckView>> {
            self.0.deck(id, seg)
        }
        fn hcps(&self) -> Result<Vec<HcpRow>> {
            let row = |id: &str| HcpRow {
                hcp_id: id.into(),
                segment: None,
                calls: 1,
                last_call_at: None,
                stages: vec![],
                top_topic: None,
                territories: vec![],
            };
            Ok(vec![row("h0"), row("h1"), row("gone")])
        }
        fn hcp(&self, id: &str) -> Result<Option<HcpView>> {
            Ok(match id {
                "h0" => Some(hcp_view("h0", false)),
                "h1" => Some(hcp_view("h1", true)),
                _ => None,
            })
        }
        fn channels(&self) -> Result<ChannelsView> {
            self.0.channels()
        }
        fn sync_health(&self) -> Result<SyncHealthView> {
            self.0.sync_health()
        }
        fn experiment(&self) -> Result<ExperimentView> {
            self.0.experiment()
        }
    }
    let x = expectations(&Two(Mem { decks: vec![summary("cz")], fail: false })).unwrap();
    assert_eq!(x["deck"]["bundle_id"], "cz");
    assert_eq!(x["deck"]["slides"].as_array().unwrap().len(), 3);
    assert_eq!(x["deck_segment"]["segment"], "cardiology");
    assert_eq!(x["hcp"]["hcp_id"], "h1");
    assert_eq!(x["hcp"]["plan"]["items"][0]["slide_id"], "safety-overview");
    assert_eq!(x["hcp_without_plan"]["hcp_id"], "h0");
    assert_eq!(x["hcps"].as_array().unwrap().len(), 3);
    // An empty source: only the lists.
    let x = expectations(&Mem::default()).unwrap();
    assert!(x.get("deck").is_none() && x.get("hcp").is_none());
    assert_eq!(x["decks"], serde_json::json!([]));
}

/// Issue 15: the HCP list is paginated, filtered and sorted from the URL; its links keep the
/// other filters; the page says which rows of how many it shows.
#[test]
fn the_hcp_list_pages_filters_and_sorts_from_its_url() {
    let row = |i: usize| HcpRow {
        hcp_id: format!("h{i:03}"),
        segment: Some(if i.is_multiple_of(2) { "gp" } else { "cardio" }.into()),
        calls: (i % 7) as u64,
        last_call_at: None,
        stages: vec![ProductStage { product: "cz".into(), stage: if i < 10 { "convinced" } else { "aware" }.into() }],
        top_topic: None,
        territories: if i.is_multiple_of(3) { vec!["north".into(), "south".into()] } else { vec!["north".into()] },
    };
    let hcps: Vec<HcpRow> = (0..120).map(row).collect();
    let params = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();

    let first = page_in_memory(hcps.clone(), &hcp_query(&params(&[])));
    assert_eq!((first.rows.len(), first.total), (50, 120));
    let html = pages::hcps(&first);
    assert!(html.contains(r#"data-page-of="120" data-first="1" data-last="50""#), "{html}");
    assert!(html.contains(r#"href="/dashboard/hcps?page=2" data-page="next""#), "{html}");
    assert!(!html.contains(r#"data-page="prev""#));

    let last = page_in_memory(hcps.clone(), &hcp_query(&params(&[("page", "3")])));
    assert_eq!(last.rows.first().unwrap().hcp_id, "h100");
    let html = pages::hcps(&last);
    assert!(
        html.contains(r#"data-first="101" data-last="120""#)
            && html.contains(r#"data-page="prev""#)
            && !html.contains(r#"data-page="next""#)
    );

    let q = hcp_query(&params(&[("stage", "convinced"), ("segment", "gp"), ("sort", "calls"), ("q", "h00")]));
    let list = page_in_memory(hcps.clone(), &q);
    let ids: Vec<&str> = list.rows.iter().map(|r| r.hcp_id.as_str()).collect();
    assert_eq!(ids, ["h006", "h004", "h002", "h008", "h000"], "convinced, gp, id prefix h00, most calls first");
    let html = pages::hcps(&list);
    // The stage links keep segment, search and order; the order links keep the filters.
    assert!(html.contains(r#"href="/dashboard/hcps?stage=aware&amp;segment=gp&amp;q=h00&amp;sort=calls""#), "{html}");
    assert!(html.contains(r#"href="/dashboard/hcps?stage=convinced&amp;segment=gp&amp;q=h00&amp;sort=last_call""#), "{html}");
    assert!(html.contains(r#"<input type="hidden" name="stage" value="convinced">"#) && html.contains(r#"name="q" value="h00""#));

    // The territory filter: links for every territory, kept by the other links and the search.
    let q = hcp_query(&params(&[("territory", "south"), ("q", "h00")]));
    let list = page_in_memory(hcps.clone(), &q);
    let ids: Vec<&str> = list.rows.iter().map(|r| r.hcp_id.as_str()).collect();
    assert_eq!(ids, ["h000", "h003", "h006", "h009"]);
    assert_eq!(list.territories, ["north", "south"]);
    let html = pages::hcps(&list);
    assert!(html.contains(r#"href="/dashboard/hcps?territory=north&amp;q=h00" data-filter-territory="north">"#), "{html}");
    assert!(html.contains(r#"data-filter-territory="south" class="on">"#), "{html}");
    assert!(html.contains(r#"href="/dashboard/hcps?stage=aware&amp;territory=south&amp;q=h00""#), "{html}");
    assert!(html.contains(r#"<input type="hidden" name="territory" value="south">"#));
    assert!(html.contains(r#"data-territories="[&quot;north&quot;,&quot;south&quot;]""#), "{html}");

    let none = page_in_memory(hcps, &hcp_query(&params(&[("q", "nobody")])));
    assert!(pages::hcps(&none).contains(r#"data-empty="hcps-filtered""#));
    // A page beyond the end or a bad page number is no error.
    assert_eq!(hcp_query(&params(&[("page", "0")])).offset, 0);
    assert_eq!(hcp_query(&params(&[("page", "x")])).offset, 0);
    assert_eq!(hcp_query(&params(&[("page", &u64::MAX.to_string())])).offset, u64::MAX);
}
