//! The hub's signed per-HCP plans on a real device directory: signature checks (bad, untrusted,
//! missing), newest-wins replacement and idempotence, when a stored plan is offered (trusted
//! clock, bundle openable, slides in the active manifest), and what a call offers and records.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_core::{Channel, Device, DeviceConfig, ManualClock, NavSource, PlanOutcome, PlanRefusal, StartCall, SuggestionSource};
use edetail_protocol::{Base64Bytes, Plan, PlanItem, SignedPlan};

const BUNDLE: &str = "com.example.sample";

fn publisher() -> SecretKey {
    SecretKey::from_seed(&[11; 32])
}

/// The hub's plan key, trusted by the device like a publisher key.
fn hub_key() -> SecretKey {
    SecretKey::from_seed(&[42; 32])
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().unwrap()
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> Device {
    let config =
        DeviceConfig { trusted_keys: vec![publisher().public(), hub_key().public()], clock: clock.clone(), ..DeviceConfig::new("rep-1") };
    Device::open(dir, config).unwrap()
}

fn install(d: &Device, dir: &Path, b: &SampleBundle) {
    let p = dir.join("deck.zip");
    std::fs::write(&p, b.zip(Some(&publisher()))).unwrap();
    d.install_zip(&p).unwrap();
}

fn item(slide: &str, reason: &str) -> PlanItem {
    PlanItem {
        slide_id: slide.into(),
        presentation_id: "main".into(),
        reason: reason.into(),
        evidence: vec!["dwell 3x typical".into()],
        mandatory: false,
    }
}

fn plan(id: &str, hcp: &str, generated_at: DateTime<Utc>) -> Plan {
    Plan {
        plan_id: id.into(),
        hcp_id: hcp.into(),
        territory: "t-1".into(),
        product: "Sample".into(),
        bundle_id: BUNDLE.into(),
        bundle_version: 1,
        stage: "educated".into(),
        generated_at,
        valid_until: generated_at + chrono::Duration::days(14),
        items: vec![item("efficacy", "strongest interest: efficacy"), item("intro", "context")],
        skipped: vec![PlanItem {
            slide_id: "pi".into(),
            presentation_id: "pi".into(),
            reason: "reference only".into(),
            evidence: vec![],
            mandatory: false,
        }],
        reasons: vec!["stage educated".into(), "interest in efficacy".into()],
        objective: Some("convinced".into()),
        arm: Some("treatment".into()),
    }
}

fn sign(p: &Plan, key: &SecretKey) -> SignedPlan {
    let bytes = serde_json::to_vec(p).unwrap();
    SignedPlan { signature: Base64Bytes(key.sign_manifest(&bytes)), plan: Base64Bytes(bytes) }
}

fn setup() -> (tempfile::TempDir, Arc<ManualClock>, Device) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let d = open(&tmp.path().join("data"), &clock);
    install(&d, tmp.path(), &SampleBundle::new());
    (tmp, clock, d)
}

#[test]
fn bad_untrusted_and_unsigned_plans_are_refused_and_the_others_stored() {
    let (_tmp, _c, d) = setup();
    let good = sign(&plan("p-good", "hcp-1", t0()), &hub_key());
    let mut tampered = sign(&plan("p-tampered", "hcp-2", t0()), &hub_key());
    tampered.plan.0 = serde_json::to_vec(&plan("p-tampered", "hcp-3", t0())).unwrap();
    let untrusted = sign(&plan("p-untrusted", "hcp-4", t0()), &SecretKey::from_seed(&[99; 32]));
    let unsigned = SignedPlan { signature: Base64Bytes(Vec::new()), ..sign(&plan("p-unsigned", "hcp-5", t0()), &hub_key()) };
    let junk = {
        let b = b"{\"not\":\"a plan\"}".to_vec();
        SignedPlan { signature: Base64Bytes(hub_key().sign_manifest(&b)), plan: Base64Bytes(b) }
    };
    let also_good = sign(&plan("p-good-2", "hcp-6", t0()), &hub_key());

    let reports = d.plans().store_plans(&[good, tampered, untrusted, unsigned, junk, also_good]).unwrap();
    let outcomes: Vec<&PlanOutcome> = reports.iter().map(|r| &r.outcome).collect();
    assert_eq!(outcomes[0], &PlanOutcome::Stored);
    assert!(matches!(outcomes[1], PlanOutcome::Refused { reason: PlanRefusal::Signature { .. } }), "{reports:?}");
    assert!(
        matches!(outcomes[2], PlanOutcome::Refused { reason: PlanRefusal::Signature { detail } } if detail.contains("key")),
        "{reports:?}"
    );
    assert!(matches!(outcomes[3], PlanOutcome::Refused { reason: PlanRefusal::Signature { .. } }), "{reports:?}");
    assert!(matches!(outcomes[4], PlanOutcome::Refused { reason: PlanRefusal::Unparseable { .. } }), "{reports:?}");
    assert_eq!(outcomes[5], &PlanOutcome::Stored);
    assert_eq!(reports[2].plan_id.as_deref(), Some("p-untrusted"));
    // Refusals never quote the plan (HCP ids, reasons).
    for r in &reports {
        if let PlanOutcome::Refused { reason } = &r.outcome {
            assert!(!reason.to_string().contains("hcp-"), "{reason}");
        }
    }
    let stored: Vec<String> = d.plans().stored().unwrap().into_iter().map(|r| r.plan_id).collect();
    assert_eq!(stored, vec!["p-good", "p-good-2"]);
    assert!(d.plans().plan_for("hcp-3", BUNDLE).unwrap().is_none());
    assert!(d.plans().plan_for("hcp-4", BUNDLE).unwrap().is_none());
}

#[test]
fn newer_plans_replace_older_ones_never_the_reverse_and_reapplying_is_harmless() {
    let (_tmp, _c, d) = setup();
    let old = sign(&plan("p-old", "hcp-1", t0() - chrono::Duration::hours(2)), &hub_key());
    let new = sign(&plan("p-new", "hcp-1", t0() - chrono::Duration::hours(1)), &hub_key());
    assert_eq!(d.plans().store_plans(std::slice::from_ref(&new)).unwrap()[0].outcome, PlanOutcome::Stored);
    assert_eq!(d.plans().store_plans(std::slice::from_ref(&old)).unwrap()[0].outcome, PlanOutcome::Outdated);
    assert_eq!(d.plans().plan_for("hcp-1", BUNDLE).unwrap().unwrap().plan_id, "p-new");
    // The same page again: nothing changes.
    let again = d.plans().store_plans(&[old, new.clone()]).unwrap();
    assert_eq!(again[0].outcome, PlanOutcome::Outdated);
    assert_eq!(again[1].outcome, PlanOutcome::AlreadyStored);
    assert_eq!(d.plans().stored().unwrap().len(), 1);
    // A newer one replaces it.
    let newest = sign(&plan("p-newest", "hcp-1", t0()), &hub_key());
    assert_eq!(d.plans().store_plans(&[newest]).unwrap()[0].outcome, PlanOutcome::Stored);
    let offered = d.plans().plan_for("hcp-1", BUNDLE).unwrap().unwrap();
    assert_eq!(offered.plan_id, "p-newest");
    assert_eq!(offered.stage, "educated");
    assert_eq!(offered.items.iter().map(|i| i.slide_id.as_str()).collect::<Vec<_>>(), ["efficacy", "intro"]);
    assert_eq!(offered.skipped[0].slide_id, "pi");
    assert_eq!(offered.items[0].evidence, ["dwell 3x typical"]);
}

#[test]
fn an_expired_plan_is_not_offered_even_with_the_clock_set_back() {
    let (tmp, c, d) = setup();
    d.plans().store_plans(&[sign(&plan("p-1", "hcp-1", t0()), &hub_key())]).unwrap();
    assert!(d.plans().plan_for("hcp-1", BUNDLE).unwrap().is_some());
    c.advance(Duration::from_secs(15 * 86400)); // past valid_until (14 days)
    assert!(d.plans().plan_for("hcp-1", BUNDLE).unwrap().is_none());
    // Setting the device clock back does not revive it (trusted time), nor does a restart.
    c.set_wall(t0());
    assert!(d.plans().plan_for("hcp-1", BUNDLE).unwrap().is_none());
    drop(d);
    let d = open(&tmp.path().join("data"), &c);
    assert!(d.plans().plan_for("hcp-1", BUNDLE).unwrap().is_none());
    assert_eq!(d.plans().suggestion("hcp-1", BUNDLE).unwrap().source, SuggestionSource::Local);
}

#[test]
fn a_plan_naming_a_slide_the_active_version_lacks_falls_back_to_local() {
    let (_tmp, _c, d) = setup();
    let mut p = plan("p-missing", "hcp-1", t0());
    p.items.push(item("safety", "not in this bundle"));
    let mut wrong_deck = plan("p-wrong-deck", "hcp-2", t0());
    wrong_deck.items[0].presentation_id = "pi".into(); // efficacy is not in presentation pi
    d.plans().store_plans(&[sign(&p, &hub_key()), sign(&wrong_deck, &hub_key())]).unwrap();
    assert!(d.plans().plan_for("hcp-1", BUNDLE).unwrap().is_none());
    assert!(d.plans().plan_for("hcp-2", BUNDLE).unwrap().is_none());
    let s = d.plans().suggestion("hcp-1", BUNDLE).unwrap();
    assert_eq!(s.source, SuggestionSource::Local);
    assert_eq!(s.slide_ids(), vec!["intro", "efficacy"]);
}

#[test]
fn a_plan_for_a_revoked_expired_or_missing_bundle_is_not_offered() {
    // Revoked.
    let (_tmp, _c, d) = setup();
    d.plans().store_plans(&[sign(&plan("p-1", "hcp-1", t0()), &hub_key())]).unwrap();
    assert!(d.plans().plan_for("hcp-1", BUNDLE).unwrap().is_some());
    d.content().revoke(BUNDLE, "withdrawn", 0).unwrap();
    assert!(d.plans().plan_for("hcp-1", BUNDLE).unwrap().is_none());
    assert!(d.plans().suggestion_if_presentable("hcp-1", BUNDLE).unwrap().is_none());
    assert!(d.plans().suggestion_if_presentable("hcp-1", "com.example.other").unwrap().is_none());

    // Expired content while the plan itself is still valid.
    let tmp = tempfile::tempdir().unwrap();
    let c = Arc::new(ManualClock::new(t0()));
    let d = open(&tmp.path().join("data"), &c);
    let mut b = SampleBundle::new();
    b.manifest.valid_until = t0() + chrono::Duration::days(2);
    install(&d, tmp.path(), &b);
    d.plans().store_plans(&[sign(&plan("p-1", "hcp-1", t0()), &hub_key())]).unwrap();
    assert!(d.plans().plan_for("hcp-1", BUNDLE).unwrap().is_some());
    c.advance(Duration::from_secs(3 * 86400));
    assert!(d.plans().plan_for("hcp-1", BUNDLE).unwrap().is_none());

    // A plan for a bundle not installed here is stored but never offered.
    let mut other = plan("p-other", "hcp-1", t0());
    other.bundle_id = "com.example.other".into();
    assert_eq!(d.plans().store_plans(&[sign(&other, &hub_key())]).unwrap()[0].outcome, PlanOutcome::Stored);
    assert!(d.plans().plan_for("hcp-1", "com.example.other").unwrap().is_none());
}

fn call_started_plan_id(d: &Device, call_id: &str) -> serde_json::Value {
    let events = d.outbox().for_call(call_id).unwrap();
    let started = events.iter().find(|e| e.kind == "call_started").expect("call_started");
    started.payload.get("plan_id").cloned().expect("plan_id key present")
}

#[test]
fn start_call_offers_the_hub_plan_and_records_its_id_else_the_local_suggestion() {
    let (_tmp, c, d) = setup();
    let start = |hcp: Option<&str>| StartCall {
        hcp_id: hcp.map(str::to_string),
        channel: Channel::FaceToFace,
        bundle_id: BUNDLE.into(),
        presentation_id: None,
        location: None,
    };
    // No plan yet: local, with history reasons once there is history.
    let first = d.start_call_with_suggestion(start(Some("hcp-1"))).unwrap();
    let local = first.suggestion.clone().unwrap();
    assert_eq!(local.source, SuggestionSource::Local);
    assert!(local.reasons[0].contains("no earlier calls"), "{local:?}");
    assert_eq!(call_started_plan_id(&d, &first.call_id), serde_json::Value::Null);
    d.calls().enter_slide(&first.call_id, "efficacy", NavSource::Swipe, false).unwrap();
    c.advance(Duration::from_secs(30));
    d.calls().end_call(&first.call_id).unwrap();
    let local = d.plans().suggestion("hcp-1", BUNDLE).unwrap();
    assert_eq!(local.source, SuggestionSource::Local);
    assert!(local.reasons.iter().any(|r| r.contains("efficacy")), "{local:?}");
    assert_eq!(local.slides[1].reason.split(' ').take(2).collect::<Vec<_>>(), ["interest", "in"]);

    // With a valid hub plan: the plan, and its id in call_started.
    d.plans().store_plans(&[sign(&plan("p-42", "hcp-1", t0()), &hub_key())]).unwrap();
    let started = d.start_call_with_suggestion(start(Some("hcp-1"))).unwrap();
    let s = started.suggestion.unwrap();
    assert_eq!(s.source, SuggestionSource::Hub { plan_id: "p-42".into(), stage: "educated".into() });
    assert_eq!(s.slide_ids(), vec!["efficacy", "intro"]);
    assert_eq!(s.slides[0].reason, "strongest interest: efficacy");
    assert_eq!(s.reasons, vec!["stage educated", "interest in efficacy"]);
    assert_eq!(call_started_plan_id(&d, &started.call_id), serde_json::json!("p-42"));
    d.calls().end_call(&started.call_id).unwrap();

    // The plain start_call records it as well; another HCP and no HCP get none.
    let (id, _) = d.start_call(start(Some("hcp-1"))).unwrap();
    assert_eq!(call_started_plan_id(&d, &id), serde_json::json!("p-42"));
    d.calls().end_call(&id).unwrap();
    let other = d.start_call_with_suggestion(start(Some("hcp-2"))).unwrap();
    assert_eq!(other.suggestion.unwrap().source, SuggestionSource::Local);
    assert_eq!(call_started_plan_id(&d, &other.call_id), serde_json::Value::Null);
    d.calls().end_call(&other.call_id).unwrap();
    let anonymous = d.start_call_with_suggestion(start(None)).unwrap();
    assert!(anonymous.suggestion.is_none());
    assert_eq!(call_started_plan_id(&d, &anonymous.call_id), serde_json::Value::Null);
}
