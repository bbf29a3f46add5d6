//! The closed loop end to end, on the real sample deck: tablets record calls offline, upload
//! them through the sync engine to a real hub on loopback, the hub analyses them and signs a
//! plan per HCP, the plans come back through the change feed and the tablet offers them at the
//! next call (recording which plan it offered); a follow-up microsite serves only its HCP's
//! approved slides, records visits as the `microsite` channel, and stops at expiry.

mod common;

use chrono::Utc;
use common::world::{CARDIOZEN, Tablet, TabletSpec, World, show, start, tablet_with, world, world_on_postgres};
use edetail_bundle::Sha256Digest;
use edetail_core::{Reaction, SuggestionSource};
use edetail_hub::dashboard::DashboardSource;
use edetail_hub::store::{AnalysisCommit, CheckedEvent, Microsite};
use edetail_protocol::WireEvent;
use serde_json::json;

/// A tablet whose day started six hours ago.
fn tablet(w: &World, name: &str, trust_plans: bool) -> Tablet {
    tablet_with(w, name, TabletSpec { trust_plans, clock_start: Utc::now() - chrono::Duration::hours(6), ..TabletSpec::default() })
}

/// hcp-safety lingers on safety; hcp-samples works through the mechanism and dosing, answers
/// the dosing question and asks for samples. Returns the follow-up event's uuid.
fn record_day(t: &Tablet) -> String {
    let c = start(t, "hcp-safety").call_id;
    for (s, secs) in [("moa-overview", 6), ("efficacy-primary", 6), ("safety-ae", 50), ("tolerability", 45), ("dosing", 3)] {
        show(t, &c, s, secs);
    }
    t.device.calls().react(&c, Reaction::Positive).unwrap();
    t.device.calls().end_call(&c).unwrap();

    let c = start(t, "hcp-samples").call_id;
    for (s, secs) in [("moa-overview", 12), ("moa-diagram", 14), ("moa-video", 20), ("dosing", 40)] {
        show(t, &c, s, secs);
    }
    t.device.calls().answer(&c, "dosing-titration-clear", &["yes".into()], Some("free text that must never reach a plan")).unwrap();
    let (_, follow_up) = t.device.calls().follow_up(&c, "samples", Some("a note")).unwrap();
    t.device.calls().end_call(&c).unwrap();
    follow_up
}

#[test]
fn plans_close_the_loop_back_to_the_tablet() {
    closes_the_loop(world());
}

#[test]
fn plans_close_the_loop_back_to_the_tablet_on_postgres() {
    closes_the_loop(world_on_postgres());
}

fn closes_the_loop(w: World) {
    let t = tablet(&w, "rep-1", true);
    let untrusting = tablet(&w, "rep-2", false);
    let follow_up_uuid = record_day(&t);
    assert!(matches!(start(&t, "hcp-safety").suggestion.unwrap().source, SuggestionSource::Local), "no hub plan yet");
    t.device.calls().end_call(&t.device.calls().open_call().unwrap().unwrap()).unwrap();

    t.clock.set_wall(Utc::now());
    let up = t.engine.sync_now().unwrap();
    assert!(up.events_accepted > 20);
    let report = w.hub.analyze_pending().unwrap();
    assert_eq!(report.calls_failed, 0);
    assert_eq!(w.hub.store().pending_call_count().unwrap(), 0, "every finished call analysed (worker or this run)");

    // The hub's view: interest with evidence, the stage and the rule and events that moved it.
    let safety = w.hub.hcp_profile("hcp-safety").unwrap().unwrap();
    assert_eq!(safety.top_topics()[0].0, "safety");
    assert!(!safety.topics["safety"].evidence.is_empty());
    let samples = w.hub.hcp_profile("hcp-samples").unwrap().unwrap();
    let facts = &samples.products["cardiozen"];
    // A sample request (and a positive dosing answer) is "convinced": prepared to prescribe.
    assert_eq!(facts.stage.as_str(), "convinced");
    let change = facts.stage_history.last().unwrap();
    assert!(change.event_uuids.contains(&follow_up_uuid), "the stage change names the follow-up request");
    let plan = w.hub.latest_plan("hcp-samples", CARDIOZEN).unwrap().unwrap();
    let plan_text = serde_json::to_string(&plan).unwrap();
    assert!(!plan_text.contains("free text") && !plan_text.contains("a note"), "no free text in plans");
    assert!(plan.skipped.iter().any(|s| s.slide_id == "intro"), "awareness slides skipped for a convinced HCP");
    assert_eq!(plan.objective.as_deref(), Some("advocate"), "the next step");
    // The dashboard's source shows that newest plan and nothing pending for any device.
    let insights = edetail_hub::insights::HubInsights::new(w.hub.clone());
    let page = insights.hcp("hcp-samples").unwrap().unwrap();
    assert_eq!(page.plan.map(|p| p.plan_id), Some(plan.plan_id.clone()), "the HCP page shows the newest plan");
    let health = insights.sync_health().unwrap();
    assert!(health.devices.len() >= 2 && health.devices.iter().all(|d| d.pending_analysis == 0), "{health:?}");

    // Back on the tablet: the signed plans arrive and the next call offers them.
    // The hub's worker analyses calls as their ends arrive, so the plans may already have come
    // down in the download phase of the uploading sync; either way they are on the tablet now.
    let pulled = t.engine.sync_now().unwrap();
    assert!(up.plans_stored + pulled.plans_stored >= 2, "{up:?}\n{pulled:?}");
    let next = start(&t, "hcp-safety");
    let suggestion = next.suggestion.unwrap();
    let SuggestionSource::Hub { plan_id, stage } = &suggestion.source else { panic!("expected the hub plan, got {suggestion:?}") };
    assert_eq!(stage, "aware");
    // Aware: the plan leads with the educated material she has not seen; the safety slides she
    // lingered on are absorbed and left out; the ISI closes every plan.
    let slides: Vec<&str> = suggestion.slides.iter().map(|s| s.slide_id.as_str()).collect();
    assert_eq!(slides, ["moa-diagram", "moa-video", "efficacy-subgroups", "patient-profile", "summary", "isi-1"]);
    assert_eq!(suggestion.slides[0].reason, "step toward educated: not yet seen");
    let started = t.device.outbox().for_call(&next.call_id).unwrap().into_iter().find(|e| e.kind == "call_started").unwrap();
    assert_eq!(started.payload["plan_id"], json!(plan_id), "the call records which plan it offered");
    t.device.calls().end_call(&next.call_id).unwrap();

    // A tablet that does not trust the hub's plan key refuses its plans and stays local.
    let refused = untrusting.engine.sync_now().unwrap();
    assert!(refused.plans_refused >= 2 && refused.plans_stored == 0, "{refused:?}");
    let local = start(&untrusting, "hcp-safety").suggestion.unwrap();
    assert!(matches!(local.source, SuggestionSource::Local));
}

fn get(w: &World, path: &str) -> (u16, String) {
    w.rt.block_on(async {
        let r = reqwest::get(format!("{}{path}", w.url)).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

/// The `Referrer-Policy` and `X-Content-Type-Options` of an answer.
fn hardening(w: &World, path: &str) -> (String, String) {
    w.rt.block_on(async {
        let r = reqwest::get(format!("{}{path}", w.url)).await.unwrap();
        let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (h("referrer-policy"), h("x-content-type-options"))
    })
}

fn post(w: &World, path: &str, body: serde_json::Value) -> u16 {
    w.rt.block_on(async { reqwest::Client::new().post(format!("{}{path}", w.url)).json(&body).send().await.unwrap().status().as_u16() })
}

/// The visit id a microsite page carries (`data-visit`).
fn visit_id_of(html: &str) -> String {
    html.split("data-visit=\"").nth(1).and_then(|s| s.split('"').next()).expect("the page carries a visit id").to_string()
}

/// The `data-slide` ids a microsite page shows, in order.
fn page_slides(html: &str) -> Vec<String> {
    html.split("data-slide=\"").skip(1).map(|s| s.split('"').next().unwrap().to_string()).collect()
}

/// rep-1 (trusting plans) records a day, syncs it now and the hub analyses it: hcp-samples has
/// its follow-up microsite. Returns the tablet (keep it alive for the test).
fn day_synced_and_analysed(w: &World) -> Tablet {
    let t = tablet(w, "rep-1", true);
    record_day(&t);
    t.clock.set_wall(Utc::now());
    t.engine.sync_now().unwrap();
    w.hub.analyze_pending().unwrap();
    t
}

#[test]
fn microsites_serve_only_their_hcp_and_expire() {
    let w = world();
    let _t = day_synced_and_analysed(&w);

    let mine = w.hub.microsites_for("hcp-samples").unwrap();
    assert_eq!(mine.len(), 1, "the follow-up request opened one microsite");
    let m = &mine[0];
    let others = w.hub.microsites_for("hcp-safety").unwrap();
    let path = w.hub.microsite_path(&m.id);
    let (status, html) = get(&w, &path);
    assert_eq!(status, 200);
    assert_eq!(page_slides(&html), m.slides, "exactly this HCP's approved slides");
    assert!(!html.contains("hcp-samples") && !html.contains("rep-1"), "no HCP or rep id on the page");
    for o in &others {
        let (_, other_html) = get(&w, &w.hub.microsite_path(&o.id));
        assert_eq!(page_slides(&other_html), o.slides, "another HCP's link shows only theirs");
    }
    // Assets: only files of the approved manifest.
    let manifest = edetail_bundle::Manifest::from_slice(&w.hub.store().bundle_manifest(CARDIOZEN, 1).unwrap().unwrap()).unwrap();
    let entry = manifest.slide(&m.slides[0]).unwrap().entry.as_str().to_string();
    assert_eq!(get(&w, &format!("{path}/a/{entry}")).0, 200);
    assert_eq!(get(&w, &format!("{path}/a/../../hub.sqlite3")).0, 404);
    assert_eq!(get(&w, &format!("{path}/a/manifest.json")).0, 404);
    // The link's token is in every URL: no answer lets a browser send it on as a Referer.
    for p in [path.clone(), format!("{path}/a/{entry}"), format!("{path}/a/manifest.json"), format!("/m/{}", "0".repeat(64))] {
        assert_eq!(hardening(&w, &p), ("no-referrer".to_string(), "nosniff".to_string()), "{p}");
    }
    // Unknown, malformed and guessed tokens look the same.
    assert_eq!(get(&w, &format!("/m/{}", "0".repeat(64))).0, 404);
    assert_eq!(get(&w, "/m/not-a-token").0, 404);

    // Visits: validated, recorded once, analysed as the microsite channel.
    let v1 = visit_id_of(&html);
    assert_eq!(post(&w, &format!("{path}/visit"), json!({"visit_id": v1, "views": [{"slide": "not-on-page", "dwell_ms": 5000}]})), 400);
    assert_eq!(post(&w, &format!("{path}/visit"), json!({"visit_id": v1, "views": [], "hcp_id": "x"})), 400, "unknown fields refused");
    let visit = json!({"visit_id": v1, "duration_ms": 30000, "views": [{"slide": m.slides[0], "dwell_ms": 25000}]});
    assert_eq!(post(&w, &format!("{path}/visit"), visit.clone()), 204);
    assert_eq!(post(&w, &format!("{path}/visit"), visit), 204, "a retried beacon is absorbed");
    w.hub.analyze_pending().unwrap();
    assert_eq!(w.hub.microsites_for("hcp-samples").unwrap()[0].views, 1);
    let p = w.hub.hcp_profile("hcp-samples").unwrap().unwrap();
    assert_eq!(p.products["cardiozen"].channels.get("microsite"), Some(&1));

    // An expired link answers 410 and serves nothing.
    let store = w.hub.store().clone();
    let dev = w.hub.add_device("rep-9", "north").unwrap();
    let ended = WireEvent {
        uuid: uuid_like(),
        seq: 1,
        call_id: Some("c-expired".into()),
        kind: "call_ended".into(),
        recorded_at: Utc::now(),
        session: 1,
        mono_ms: 0,
        payload: json!({}),
    };
    store
        .apply_batch(
            &dev.device_id,
            &[CheckedEvent::Valid { recorded_at_corrected: ended.recorded_at, event: ended, payload_json: None }],
            0,
            Utc::now(),
        )
        .unwrap();
    let queued = store.pending_calls(10).unwrap().into_iter().find(|q| q.call_id == "c-expired").unwrap();
    let token = "ab".repeat(32);
    let expired = Microsite {
        id: "ms-expired".into(),
        token_sha256: Sha256Digest::of(token.as_bytes()).to_hex(),
        expires_at: Utc::now() - chrono::Duration::minutes(1),
        created_at: Utc::now() - chrono::Duration::days(15),
        ..m.clone()
    };
    let other_token = "cd".repeat(32);
    let other = Microsite { id: "ms-other".into(), token_sha256: Sha256Digest::of(other_token.as_bytes()).to_hex(), ..m.clone() };
    assert!(
        store
            .commit_analysis(&AnalysisCommit {
                queue_ids: vec![queued.queue_id],
                merges: vec![],
                docs: vec![],
                summaries: vec![],
                plans: vec![],
                microsites: vec![expired, other],
                now: Utc::now()
            })
            .unwrap()
    );
    assert_eq!(get(&w, &format!("/m/{token}")).0, 410);
    assert_eq!(get(&w, &format!("/m/{token}/a/{entry}")).0, 410);
    assert_eq!(post(&w, &format!("/m/{token}/visit"), json!({"visit_id": "v2", "views": []})), 403);

    // Only ids the hub issued for this link's page count: a forged one and another link's are
    // refused, saying why.
    let (_, other_html) = get(&w, &format!("/m/{other_token}"));
    let theirs = visit_id_of(&other_html);
    let mut forged = v1.clone();
    let flip = if forged.ends_with("0000") { "ffff" } else { "0000" };
    forged.replace_range(forged.len() - 4.., flip);
    for id in [forged, theirs, "v1".to_string()] {
        let (status, body) = post_text(&w, &format!("{path}/visit"), json!({"visit_id": id, "views": []}));
        assert_eq!(status, 403, "{id}");
        assert!(body.contains("not issued by this link's page"), "{body}");
    }
    let views = w.hub.microsites_for("hcp-samples").unwrap().into_iter().find(|s| s.id == m.id).unwrap().views;
    assert_eq!(views, 1, "nothing more counted");
}

fn post_text(w: &World, path: &str, body: serde_json::Value) -> (u16, String) {
    w.rt.block_on(async {
        let r = reqwest::Client::new().post(format!("{}{path}", w.url)).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

/// A visit flood (60 quick posts of one page view's report) counts one visit, adds at most one
/// plan to the territory's feed, leaves the HCP's profile as one visit does, and is cut with
/// 429 and Retry-After.
#[test]
fn microsite_visit_floods_count_once() {
    let w = world();
    let _t = day_synced_and_analysed(&w);
    let m = w.hub.microsites_for("hcp-samples").unwrap().remove(0);
    let path = w.hub.microsite_path(&m.id);
    let feed_plans = || w.hub.store().changes(&m.territory, 0, 10_000).unwrap().plans.len();
    let plans_before = feed_plans();
    let (_, html) = get(&w, &path);
    let page_id = visit_id_of(&html);
    let (mut ok, mut refused, mut limited) = (0, 0, 0);
    w.rt.block_on(async {
        let c = reqwest::Client::new();
        for i in 0..60 {
            // The page's own id, and ids of the poster's choosing (each a "new visit" before).
            let id = if i % 2 == 0 { page_id.clone() } else { format!("flood-{i}") };
            let visit = json!({"visit_id": id, "duration_ms": 30000, "views": [{"slide": m.slides[0], "dwell_ms": 25000}]});
            let r = c.post(format!("{}{path}/visit", w.url)).json(&visit).send().await.unwrap();
            match r.status().as_u16() {
                204 => ok += 1,
                403 => refused += 1,
                429 => {
                    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
                    limited += 1
                }
                s => panic!("unexpected {s}"),
            }
        }
    });
    assert!(ok >= 1 && refused >= 1 && limited >= 40, "{ok} accepted, {refused} refused, {limited} limited");
    w.hub.analyze_pending().unwrap();
    assert_eq!(w.hub.microsites_for("hcp-samples").unwrap()[0].views, 1, "one page view, one visit");
    let p = w.hub.hcp_profile("hcp-samples").unwrap().unwrap();
    assert_eq!(p.products["cardiozen"].channels.get("microsite"), Some(&1), "the profile saw one visit");
    assert!(feed_plans() <= plans_before + 1, "at most one new plan in the feed ({plans_before} before, {} after)", feed_plans());
}

fn uuid_like() -> String {
    let n: u128 = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u128;
    format!("{:08x}-0000-4000-8000-{:012x}", (n >> 48) as u32, n & 0xffff_ffff_ffff)
}
