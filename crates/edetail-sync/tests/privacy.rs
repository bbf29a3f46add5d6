//! Right to erasure and tracking consent end to end (ADR 0011): a real hub on loopback (SQLite,
//! and PostgreSQL for erasure), real tablets with real SQLite, the sync engine between them.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::world::{CARDIOZEN, Tablet, World, show, start, tablet, world, world_on_postgres};
use edetail_core::{NavAction, NavSource};
use edetail_protocol::Tracking;
use serde_json::json;

/// A whole call: a few slides with dwell, a follow-up request (opens a microsite), ended.
fn call(t: &Tablet, hcp: &str, end: bool) -> String {
    let c = start(t, hcp).call_id;
    for (s, secs) in [("moa-overview", 12), ("safety-ae", 40), ("dosing", 30)] {
        show(t, &c, s, secs);
    }
    t.device.calls().follow_up(&c, "samples", Some("a note")).unwrap();
    if end {
        t.device.calls().end_call(&c).unwrap();
    }
    c
}

/// Everything the hub stores for a device, as text (to grep for an HCP id).
fn hub_text(w: &World, t: &Tablet) -> String {
    serde_json::to_string(&w.hub.events_for_device(&t.device_id).unwrap()).unwrap()
}

fn outbox_text(t: &Tablet) -> String {
    let all = t.device.outbox().all(0, 100_000).unwrap();
    serde_json::to_string(&all.iter().map(|e| (&e.kind, &e.call_id, &e.payload)).collect::<Vec<_>>()).unwrap()
}

fn watermark(w: &World, t: &Tablet) -> i64 {
    w.hub.stats().unwrap().devices.iter().find(|d| d.device_id == t.device_id).unwrap().watermark
}

/// Collects the audit entries (`edetail_audit` target) emitted on this thread.
#[derive(Default, Clone)]
struct AuditLog(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for AuditLog {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        m.target() == "edetail_audit"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        struct V(String);
        impl tracing::field::Visit for V {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={:?} ", f.name(), v));
            }
        }
        let mut v = V(String::new());
        e.record(&mut v);
        self.0.lock().unwrap().push(v.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn erasure_reaches_the_device() {
    erasure_reaches(world());
}

#[test]
fn erasure_reaches_the_device_on_postgres() {
    erasure_reaches(world_on_postgres());
}

fn erasure_reaches(w: World) {
    let t = tablet(&w, "rep-1");
    call(&t, "hcp-erase", true);
    call(&t, "hcp-keep", true);
    t.engine.sync_now().unwrap();
    w.hub.analyze_pending().unwrap();
    // (The hub's background analysis may already have sent the plans in the first sync.)
    t.engine.sync_now().unwrap();
    assert!(w.hub.hcp_profile("hcp-erase").unwrap().is_some());
    assert!(!w.hub.microsites_for("hcp-erase").unwrap().is_empty());
    assert!(t.device.plans().plan_for("hcp-erase", CARDIOZEN).unwrap().is_some());

    // Offline: another finished call and an open one with the HCP, queued, never uploaded.
    call(&t, "hcp-erase", true);
    call(&t, "hcp-keep", true);
    let open = call(&t, "hcp-erase", false);
    assert_eq!(t.device.calls().open_call().unwrap().as_deref(), Some(open.as_str()));

    let log = AuditLog::default();
    let report = tracing::subscriber::with_default(log.clone(), || w.hub.erase_hcp("hcp-erase", "dpo@example.com").unwrap());
    assert!(report.fed && report.calls == 1 && report.plans >= 1 && report.microsites >= 1 && report.docs == 1, "{report:?}");
    let entries = log.0.lock().unwrap().clone();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].contains("hcp erased") && entries[0].contains("dpo@example.com"), "{entries:?}");
    assert!(!entries[0].contains("hcp-erase\""), "no HCP id in the audit entry: {entries:?}");
    assert!(!hub_text(&w, &t).contains("hcp-erase"));
    assert!(w.hub.hcp_profile("hcp-erase").unwrap().is_none());
    assert!(w.hub.latest_plan("hcp-erase", CARDIOZEN).unwrap().is_none());
    assert!(w.hub.microsites_for("hcp-erase").unwrap().is_empty());

    // The next sync applies the erasure before uploading anything.
    let before = t.device.outbox().stats().unwrap().last_seq;
    let r = t.engine.sync_now().unwrap();
    assert!(r.erasures >= 1, "{r:?}");
    assert!(t.device.calls().list().unwrap().iter().all(|c| c.hcp_id.as_deref() != Some("hcp-erase")));
    assert_eq!(
        t.device.calls().list().unwrap().iter().filter(|c| c.hcp_id.as_deref() == Some("hcp-keep")).count(),
        2,
        "other HCPs untouched"
    );
    assert_eq!(t.device.calls().open_call().unwrap(), None, "the open call with the erased HCP is dropped");
    assert!(t.device.calls().record(Some(&open), "custom", json!({})).is_err(), "nothing more can be recorded in it");
    assert!(t.device.plans().plan_for("hcp-erase", CARDIOZEN).unwrap().is_none());
    assert!(t.device.plans().plan_for("hcp-keep", CARDIOZEN).unwrap().is_some());
    assert!(!outbox_text(&t).contains("hcp-erase"), "nothing of the HCP left on the device");
    assert!(!hub_text(&w, &t).contains("hcp-erase"), "nothing of the HCP uploaded afterwards");
    assert!(hub_text(&w, &t).matches("hcp-keep").count() >= 2, "the other HCP's queued call arrived");
    assert_eq!(watermark(&w, &t), before, "the watermark continues over the blanked events");
    assert_eq!(t.device.outbox().stats().unwrap().pending, 0);

    // Recording goes on; the watermark follows.
    call(&t, "hcp-keep", true);
    t.engine.sync_now().unwrap();
    assert_eq!(watermark(&w, &t), t.device.outbox().stats().unwrap().last_seq);

    // Idempotent: erasing again removes nothing, adds no feed item, and is audited again.
    let log = AuditLog::default();
    let again = tracing::subscriber::with_default(log.clone(), || w.hub.erase_hcp("hcp-erase", "dpo@example.com").unwrap());
    assert!(!again.removed_anything() && !again.fed, "{again:?}");
    assert_eq!(log.0.lock().unwrap().len(), 1);
    assert_eq!(t.engine.sync_now().unwrap().erasures, 0);
    assert!(t.device.privacy().erase_hcp("hcp-erase").unwrap() == edetail_core::LocalErasure::default(), "device side idempotent too");
}

#[test]
fn consent_full_is_the_default() {
    assert_eq!(Tracking::DEFAULT, Tracking::Full);
    let w = world();
    let t = tablet(&w, "rep-1");
    assert_eq!(t.device.privacy().consent_for("hcp-new").unwrap(), Tracking::Full);
    assert_eq!(w.hub.consent_for("hcp-new").unwrap(), Tracking::Full);
    let c = start(&t, "hcp-new");
    assert!(c.suggestion.is_some());
    let started = t.device.outbox().for_call(&c.call_id).unwrap().into_iter().find(|e| e.kind == "call_started").unwrap();
    assert_eq!(started.payload["hcp_id"], "hcp-new");
}

#[test]
fn consent_anonymous_mid_day_strips_queued_events() {
    let w = world();
    let t = tablet(&w, "rep-1");
    // Morning: a full call with the HCP, recorded offline (queued), and one with another HCP.
    let morning = call(&t, "hcp-anon", true);
    call(&t, "hcp-other", true);
    let queued = t.device.outbox().for_call(&morning).unwrap();
    assert_eq!(queued[0].payload["hcp_id"], "hcp-anon");
    assert!(queued.iter().all(|e| e.acked_at.is_none()));

    // Midday the hub records the HCP's switch to anonymous; the tablet syncs afterwards.
    w.hub.set_consent("hcp-anon", Tracking::Anonymous, "crm-import").unwrap();
    let r = t.engine.sync_now().unwrap();
    assert!(r.consents_changed >= 1, "{r:?}");
    assert_eq!(t.device.privacy().consent_for("hcp-anon").unwrap(), Tracking::Anonymous);
    let stored = w.hub.events_for_device(&t.device_id).unwrap();
    let text = serde_json::to_string(&stored).unwrap();
    assert!(!text.contains("hcp-anon"), "the queued events went up without the HCP id");
    assert!(text.contains("hcp-other"), "other HCPs keep theirs");
    let morning_events: Vec<_> = stored.iter().filter(|e| e.call_id.as_deref() == Some(morning.as_str())).collect();
    assert_eq!(morning_events.len(), queued.len(), "the call itself still counts (slide statistics)");
    assert_eq!(morning_events[0].payload["hcp_id"], json!(null));
    assert!(morning_events.iter().any(|e| e.kind == "slide_exit" || e.kind == "slide_view"));

    // Afternoon: a new call with the HCP is recorded without the id, no per-HCP suggestion.
    let c = start(&t, "hcp-anon");
    assert!(c.suggestion.is_none(), "no per-HCP plan or profile");
    t.device.calls().end_call(&c.call_id).unwrap();
    assert!(!outbox_text(&t).contains("hcp-anon"));
    assert!(t.device.calls().list().unwrap().iter().all(|x| x.hcp_id.as_deref() != Some("hcp-anon")));
    t.engine.sync_now().unwrap();
    assert!(!hub_text(&w, &t).contains("hcp-anon"));
    assert_eq!(watermark(&w, &t), t.device.outbox().stats().unwrap().last_seq);

    // Newest wins: an older record arriving later changes nothing.
    let older = edetail_protocol::ConsentRecord {
        hcp_id: "hcp-anon".into(),
        tracking: Tracking::Full,
        updated_at: Utc::now() - chrono::Duration::days(1),
    };
    assert_eq!(t.device.privacy().apply_consents(&[older]).unwrap(), 0);
    assert_eq!(t.device.privacy().consent_for("hcp-anon").unwrap(), Tracking::Anonymous);
}

#[test]
fn consent_off_records_nothing_but_content_displays() {
    let w = world();
    let t = tablet(&w, "rep-1");
    w.hub.set_consent("hcp-off", Tracking::Off, "crm-import").unwrap();
    t.engine.sync_now().unwrap();
    assert_eq!(t.device.privacy().consent_for("hcp-off").unwrap(), Tracking::Off);
    let before = t.device.outbox().stats().unwrap();

    let c = start(&t, "hcp-off");
    assert!(c.suggestion.is_none());
    // Content opens and displays: navigation works and the slide's files resolve.
    let goto = NavAction::Goto { slide: Some("safety-ae".into()), presentation: None, key_message: None };
    let target = t.device.calls().navigate(&c.call_id, &goto, NavSource::Overview, false).unwrap();
    assert_eq!(target.slide, "safety-ae");
    let path = target.url.split(['?', '#']).next().unwrap().to_string();
    assert!(t.device.assets().resolve_url_path(&path, None).is_ok(), "{path}");
    t.clock.advance(Duration::from_secs(20));
    t.device.calls().follow_up(&c.call_id, "samples", None).unwrap();
    t.device.calls().end_call(&c.call_id).unwrap();

    assert_eq!(t.device.outbox().stats().unwrap(), before, "no event at all");
    assert!(t.device.calls().list().unwrap().is_empty(), "nothing of the call kept");
    let r = t.engine.sync_now().unwrap();
    assert_eq!(r.events_accepted, 0);
    assert!(w.hub.events_for_device(&t.device_id).unwrap().is_empty());
}
