//! Reps building the call from the plan, on a real device directory: where a sequence starts
//! (the hub's plan, else the local order; an expired plan falls back), mandatory slides always
//! in and never removable, hidden and unknown slides refused, reordering, the sequence surviving
//! a reopened device, and the one `call_plan` event a call started from it records, with the
//! HCP's consent followed (anonymous: no plan link; off: nothing).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::{BundlePath, SecretKey};
use edetail_core::{Channel, Device, DeviceConfig, Error, ItemOrigin, ManualClock, Tracking};
use edetail_protocol::{Base64Bytes, ConsentRecord, Plan, PlanItem, SignedPlan};
use serde_json::{Value, json};

const BUNDLE: &str = "com.example.sample";

fn publisher() -> SecretKey {
    SecretKey::from_seed(&[11; 32])
}

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

/// The sample deck (main: intro, efficacy; hidden `pi` deck) plus `dosing` and a hidden
/// `backup` slide in main, and a mandatory `isi-1` in a hidden `isi` deck.
fn deck() -> SampleBundle {
    let mut b = SampleBundle::new();
    let mut add = |id: &str, hidden: bool, mandatory: bool| {
        let path = format!("slides/{id}/index.html");
        b.files.insert(path.clone(), format!("<!doctype html><title>{id}</title>").into_bytes());
        let mut s = b.manifest.slides[1].clone();
        s.id = id.into();
        s.title = id.into();
        s.entry = BundlePath::parse(&path).unwrap();
        s.hidden = hidden;
        s.mandatory = mandatory;
        b.manifest.slides.push(s);
    };
    add("dosing", false, false);
    add("backup", true, false);
    add("isi-1", false, true);
    b.manifest.presentations[0].slides.extend(["dosing".into(), "backup".into()]);
    b.manifest.presentations.push(edetail_bundle::Presentation {
        id: "isi".into(),
        title: "ISI".into(),
        hidden: true,
        slides: vec!["isi-1".into()],
        extra: Default::default(),
    });
    b
}

fn item(slide: &str, presentation: &str, mandatory: bool) -> PlanItem {
    PlanItem { slide_id: slide.into(), presentation_id: presentation.into(), reason: "r".into(), evidence: vec![], mandatory }
}

fn plan(id: &str, hcp: &str, valid_for: chrono::Duration) -> SignedPlan {
    let p = Plan {
        plan_id: id.into(),
        hcp_id: hcp.into(),
        territory: "t-1".into(),
        product: "Sample".into(),
        bundle_id: BUNDLE.into(),
        bundle_version: 1,
        stage: "educated".into(),
        generated_at: t0(),
        valid_until: t0() + valid_for,
        items: vec![item("efficacy", "main", false), item("intro", "main", false), item("dosing", "main", false)],
        skipped: vec![],
        reasons: vec!["stage educated".into()],
        objective: Some("convinced".into()),
        arm: Some("treatment".into()),
    };
    let bytes = serde_json::to_vec(&p).unwrap();
    SignedPlan { signature: Base64Bytes(hub_key().sign_manifest(&bytes)), plan: Base64Bytes(bytes) }
}

fn setup() -> (tempfile::TempDir, Arc<ManualClock>, Device) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let d = open(&tmp.path().join("data"), &clock);
    let zip = tmp.path().join("deck.zip");
    std::fs::write(&zip, deck().zip(Some(&publisher()))).unwrap();
    d.install_zip(&zip).unwrap();
    (tmp, clock, d)
}

fn events(d: &Device, call: &str) -> Vec<(String, Value)> {
    d.outbox().for_call(call).unwrap().into_iter().map(|e| (e.kind, e.payload)).collect()
}

fn call_plans(d: &Device, call: &str) -> Vec<Value> {
    events(d, call).into_iter().filter(|(k, _)| k == "call_plan").map(|(_, p)| p).collect()
}

fn invalid(e: Error) -> String {
    match e {
        Error::Invalid(m) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn a_sequence_starts_from_the_hub_plan_with_every_mandatory_slide() {
    let (_tmp, _c, d) = setup();
    d.plans().store_plans(&[plan("p-1", "hcp-1", chrono::Duration::days(14))]).unwrap();
    let s = d.sequences().start("hcp-1", BUNDLE).unwrap();
    assert_eq!(s.plan_id.as_deref(), Some("p-1"));
    assert_eq!(s.arm.as_deref(), Some("treatment"));
    assert_eq!(s.planned, ["efficacy", "intro", "dosing"]);
    assert_eq!(s.slide_ids(), ["efficacy", "intro", "dosing", "isi-1"], "the manifest's mandatory ISI is appended");
    let isi = s.items.last().unwrap();
    assert_eq!((isi.presentation_id.as_str(), isi.mandatory, isi.origin), ("isi", true, ItemOrigin::Start));
    assert!(s.items[..3].iter().all(|i| i.origin == ItemOrigin::Plan && !i.mandatory));
}

#[test]
fn without_a_plan_or_with_an_expired_one_the_sequence_starts_from_the_local_order() {
    let (_tmp, c, d) = setup();
    let s = d.sequences().start("hcp-1", BUNDLE).unwrap();
    assert_eq!(s.plan_id, None);
    assert!(s.planned.is_empty());
    assert_eq!(s.slide_ids(), ["intro", "efficacy", "dosing", "isi-1"], "visible slides of the deck, hidden `backup` left out");
    assert!(s.items.iter().all(|i| i.origin == ItemOrigin::Start));

    d.plans().store_plans(&[plan("p-short", "hcp-1", chrono::Duration::days(1))]).unwrap();
    c.advance(Duration::from_secs(2 * 86_400));
    let s = d.sequences().start("hcp-1", BUNDLE).unwrap();
    assert_eq!(s.plan_id, None, "an expired plan is not used");
    assert!(s.planned.is_empty());
    assert_eq!(s.slide_ids(), ["intro", "efficacy", "dosing", "isi-1"]);

    // A call from it: planned, kept and dropped empty; what the rep added is still named.
    let m = d.sequences().add(&s.sequence_id, "pi").map_err(invalid).expect_err("pi is only in a hidden deck");
    assert!(m.contains("\"pi\"") && m.contains("hidden presentations"), "{m}");
    let seq = d.sequences().saved("hcp-1", BUNDLE).unwrap().unwrap();
    d.sequences().remove(&seq.sequence_id, "dosing").unwrap();
    d.sequences().add(&seq.sequence_id, "dosing").unwrap();
    let started = d.start_call_from_sequence(&seq.sequence_id, Channel::FaceToFace, None).unwrap();
    assert_eq!(
        call_plans(&d, &started.call_id),
        [json!({"plan_id": null, "arm": null, "sequence_id": seq.sequence_id, "planned": [], "kept": [], "dropped": [],
                "added": ["dosing"], "order": ["intro", "efficacy", "isi-1", "dosing"]})]
    );
}

#[test]
fn mandatory_slides_cannot_be_removed_and_hidden_unknown_or_duplicate_slides_cannot_be_added() {
    let (_tmp, _c, d) = setup();
    let seqs = d.sequences();
    let s = seqs.start("hcp-1", BUNDLE).unwrap();
    let id = &s.sequence_id;

    let m = invalid(seqs.remove(id, "isi-1").unwrap_err());
    assert!(m.contains("\"isi-1\" is mandatory"), "{m}");
    let m = invalid(seqs.add(id, "backup").unwrap_err());
    assert!(m.contains("\"backup\"") && m.contains("hidden"), "{m}");
    let m = invalid(seqs.add(id, "pi").unwrap_err());
    assert!(m.contains("\"pi\"") && m.contains("hidden presentations"), "{m}");
    match seqs.add(id, "no-such-slide").unwrap_err() {
        Error::UnknownSlide { slide, bundle_id } => assert_eq!((slide.as_str(), bundle_id.as_str()), ("no-such-slide", BUNDLE)),
        other => panic!("{other:?}"),
    }
    let m = invalid(seqs.add(id, "efficacy").unwrap_err());
    assert!(m.contains("already in sequence"), "{m}");
    let m = invalid(seqs.add(id, "isi-1").unwrap_err());
    assert!(m.contains("already in sequence"), "a mandatory slide is addable but never twice: {m}");
    let m = invalid(seqs.remove(id, "backup").unwrap_err());
    assert!(m.contains("not in sequence"), "{m}");
    assert!(matches!(seqs.move_item(id, 0, 9), Err(Error::Invalid(_))));
    assert!(matches!(seqs.get("no-such-sequence"), Err(Error::UnknownSequence(_))));
    assert_eq!(seqs.get(id).unwrap().slide_ids(), s.slide_ids(), "every refusal left the sequence as it was");
}

#[test]
fn reorder_add_remove_and_the_sequence_survives_reopening_the_device() {
    let (tmp, c, d) = setup();
    d.plans().store_plans(&[plan("p-1", "hcp-1", chrono::Duration::days(14))]).unwrap();
    let s = d.sequences().start("hcp-1", BUNDLE).unwrap();
    let id = s.sequence_id.clone();
    d.sequences().move_item(&id, 3, 0).unwrap(); // isi-1 first
    d.sequences().remove(&id, "intro").unwrap();
    let after = d.sequences().move_item(&id, 1, 2).unwrap(); // efficacy after dosing
    assert_eq!(after.slide_ids(), ["isi-1", "dosing", "efficacy"]);
    drop(d);

    let d = open(&tmp.path().join("data"), &c);
    let saved = d.sequences().saved("hcp-1", BUNDLE).unwrap().expect("saved in the device database");
    assert_eq!(saved.sequence_id, id);
    assert_eq!(saved.slide_ids(), ["isi-1", "dosing", "efficacy"]);
    assert_eq!(saved.plan_id.as_deref(), Some("p-1"));
    assert_eq!(saved.planned, ["efficacy", "intro", "dosing"]);
    assert!(d.sequences().saved("hcp-2", BUNDLE).unwrap().is_none());

    // Another rep on the same directory sees none of it.
    drop(d);
    let other =
        DeviceConfig { trusted_keys: vec![publisher().public(), hub_key().public()], clock: c.clone(), ..DeviceConfig::new("rep-2") };
    let d2 = Device::open(&tmp.path().join("data"), other).unwrap();
    assert!(d2.sequences().saved("hcp-1", BUNDLE).unwrap().is_none());
    assert!(matches!(d2.sequences().get(&id), Err(Error::UnknownSequence(_))));
    drop(d2);

    // Starting again replaces the saved sequence.
    let d = open(&tmp.path().join("data"), &c);
    let fresh = d.sequences().start("hcp-1", BUNDLE).unwrap();
    assert_ne!(fresh.sequence_id, id);
    assert_eq!(d.sequences().saved("hcp-1", BUNDLE).unwrap().unwrap().sequence_id, fresh.sequence_id);
    assert!(matches!(d.sequences().get(&id), Err(Error::UnknownSequence(_))));
}

#[test]
fn a_call_from_a_sequence_records_one_call_plan_with_planned_kept_dropped_and_added() {
    let (_tmp, _c, d) = setup();
    d.plans().store_plans(&[plan("p-1", "hcp-1", chrono::Duration::days(14))]).unwrap();
    let s = d.sequences().start("hcp-1", BUNDLE).unwrap();
    let id = s.sequence_id.clone();
    d.sequences().remove(&id, "intro").unwrap();
    d.sequences().move_item(&id, 1, 0).unwrap(); // dosing first
    d.sequences().remove(&id, "efficacy").unwrap();
    d.sequences().add(&id, "efficacy").unwrap(); // a planned slide put back is kept, not added

    let started = d.start_call_from_sequence(&id, Channel::FaceToFace, None).unwrap();
    assert_eq!(started.first.slide, "dosing", "the call opens on the sequence's first slide");
    assert_eq!(started.first.presentation, "main");
    assert!(started.suggestion.is_none());
    let evs = events(&d, &started.call_id);
    let kinds: Vec<&str> = evs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["call_started", "call_plan", "slide_enter"]);
    assert_eq!(evs[0].1["plan_id"], "p-1", "call_started names the plan the sequence started from");
    assert_eq!(evs[2].1["slide"], "dosing");
    assert_eq!(
        evs[1].1,
        json!({"plan_id": "p-1", "arm": "treatment", "sequence_id": id,
               "planned": ["efficacy", "intro", "dosing"], "kept": ["efficacy", "dosing"], "dropped": ["intro"],
               "added": [], "order": ["dosing", "isi-1", "efficacy"]})
    );
    d.calls().end_call(&started.call_id).unwrap();
    assert_eq!(call_plans(&d, &started.call_id).len(), 1, "exactly once");
}

#[test]
fn a_slide_the_plan_left_out_is_the_reps_addition() {
    let (_tmp, _c, d) = setup();
    // A plan of two slides: dosing is in the deck but not in the plan.
    let mut p: Plan = serde_json::from_slice(&plan("p-2", "hcp-1", chrono::Duration::days(14)).plan.0).unwrap();
    p.items.truncate(2);
    let bytes = serde_json::to_vec(&p).unwrap();
    d.plans().store_plans(&[SignedPlan { signature: Base64Bytes(hub_key().sign_manifest(&bytes)), plan: Base64Bytes(bytes) }]).unwrap();
    let s = d.sequences().start("hcp-1", BUNDLE).unwrap();
    assert_eq!(s.slide_ids(), ["efficacy", "intro", "isi-1"]);
    let s = d.sequences().add(&s.sequence_id, "dosing").unwrap();
    assert_eq!(s.items.last().unwrap().origin, ItemOrigin::Added);
    let started = d.start_call_from_sequence(&s.sequence_id, Channel::Remote, None).unwrap();
    let cp = &call_plans(&d, &started.call_id)[0];
    assert_eq!(cp["planned"], json!(["efficacy", "intro"]));
    assert_eq!(cp["kept"], json!(["efficacy", "intro"]));
    assert_eq!(cp["dropped"], json!([]));
    assert_eq!(cp["added"], json!(["dosing"]));
    assert_eq!(cp["order"], json!(["efficacy", "intro", "isi-1", "dosing"]));
}

fn consent(d: &Device, hcp: &str, tracking: Tracking) {
    d.privacy().apply_consents(&[ConsentRecord { hcp_id: hcp.into(), tracking, updated_at: t0() }]).unwrap();
}

#[test]
fn consent_anonymous_records_no_plan_link_and_consent_off_records_nothing() {
    let (_tmp, _c, d) = setup();
    d.plans().store_plans(&[plan("p-a", "hcp-anon", chrono::Duration::days(14))]).unwrap();
    // Built while the HCP still consented fully, from the plan.
    let s = d.sequences().start("hcp-anon", BUNDLE).unwrap();
    assert_eq!(s.plan_id.as_deref(), Some("p-a"));
    d.sequences().remove(&s.sequence_id, "intro").unwrap();
    consent(&d, "hcp-anon", Tracking::Anonymous);
    let saved = d.sequences().saved("hcp-anon", BUNDLE).unwrap().unwrap();
    assert_eq!((saved.plan_id, saved.arm, saved.planned.len()), (None, None, 0), "the plan behind it is gone with consent");
    let started = d.start_call_from_sequence(&s.sequence_id, Channel::FaceToFace, None).unwrap();
    let evs = events(&d, &started.call_id);
    assert_eq!(evs[0].1["hcp_id"], Value::Null);
    assert_eq!(evs[0].1["plan_id"], Value::Null);
    assert_eq!(
        call_plans(&d, &started.call_id),
        [json!({"plan_id": null, "arm": null, "sequence_id": null, "planned": [], "kept": [], "dropped": [],
                "added": [], "order": ["efficacy", "dosing", "isi-1"]})]
    );
    // A new sequence for an anonymous HCP: deck order, no plan.
    d.plans().store_plans(&[plan("p-a2", "hcp-anon", chrono::Duration::days(14))]).unwrap();
    let s2 = d.sequences().start("hcp-anon", BUNDLE).unwrap();
    assert_eq!(s2.plan_id, None);
    assert_eq!(s2.slide_ids(), ["intro", "efficacy", "dosing", "isi-1"]);

    consent(&d, "hcp-off", Tracking::Off);
    let s = d.sequences().start("hcp-off", BUNDLE).unwrap();
    let started = d.start_call_from_sequence(&s.sequence_id, Channel::FaceToFace, None).unwrap();
    d.calls().advocacy(&started.call_id, edetail_core::AdvocacyAction::AgreedToSpeak).unwrap();
    assert!(events(&d, &started.call_id).is_empty(), "consent off: nothing recorded, call_plan and advocacy included");
    assert_eq!(started.first.slide, "intro", "the call still presents");
    // Consent anonymous later does not make her off call record.
    consent(&d, "hcp-off", Tracking::Anonymous);
    d.calls().advocacy(&started.call_id, edetail_core::AdvocacyAction::AgreedToSpeak).unwrap();
    assert!(events(&d, &started.call_id).is_empty(), "an off call stays off");

    // Consent withdrawn during a call: the open call stops recording at once.
    let s = d.sequences().start("hcp-mid", BUNDLE).unwrap();
    let open = d.start_call_from_sequence(&s.sequence_id, Channel::FaceToFace, None).unwrap();
    let before = events(&d, &open.call_id).len();
    assert!(before > 0);
    consent(&d, "hcp-mid", Tracking::Off);
    d.calls().advocacy(&open.call_id, edetail_core::AdvocacyAction::AgreedToSpeak).unwrap();
    d.calls().navigate(&open.call_id, &edetail_core::NavAction::Next, edetail_core::NavSource::Swipe, true).unwrap();
    assert_eq!(events(&d, &open.call_id).len(), before, "consent off mid-call: nothing more recorded");
}

#[test]
fn consent_withdrawn_after_a_call_strips_the_plan_from_its_queued_call_plan_and_erasure_deletes_sequences() {
    let (tmp, _c, d) = setup();
    d.plans().store_plans(&[plan("p-1", "hcp-1", chrono::Duration::days(14))]).unwrap();
    let s = d.sequences().start("hcp-1", BUNDLE).unwrap();
    let started = d.start_call_from_sequence(&s.sequence_id, Channel::FaceToFace, None).unwrap();
    d.calls().advocacy(&started.call_id, edetail_core::AdvocacyAction::SharedMicrosite).unwrap();
    d.calls().end_call(&started.call_id).unwrap();
    let db = rusqlite::Connection::open(tmp.path().join("data").join("edetail.sqlite3")).unwrap();
    let link = |db: &rusqlite::Connection| -> Option<String> {
        db.query_row("SELECT sequence_id FROM calls WHERE id = ?1", [&started.call_id], |r| r.get(0)).unwrap()
    };
    assert_eq!(link(&db).as_deref(), Some(s.sequence_id.as_str()), "the call knows its sequence");
    consent(&d, "hcp-1", Tracking::Anonymous);
    assert_eq!(
        call_plans(&d, &started.call_id),
        [json!({"plan_id": null, "arm": null, "sequence_id": null, "planned": [], "kept": [], "dropped": [],
                "added": [], "order": ["efficacy", "intro", "dosing", "isi-1"]})]
    );
    // The call no longer points at her saved sequence (which is keyed by her id).
    assert_eq!(link(&db), None, "an anonymised call keeps no link to her sequence");
    let advocacy: Vec<Value> = events(&d, &started.call_id).into_iter().filter(|(k, _)| k == "advocacy").map(|(_, p)| p).collect();
    assert_eq!(advocacy, [json!({"slide": "efficacy", "action": "shared_microsite"})], "slide and action only: kept");

    d.sequences().start("hcp-2", BUNDLE).unwrap();
    let erased = d.privacy().erase_hcp("hcp-2").unwrap();
    assert_eq!(erased.sequences, 1);
    assert!(d.sequences().saved("hcp-2", BUNDLE).unwrap().is_none());
}

#[test]
fn a_sequence_naming_a_slide_a_new_version_lacks_is_refused_at_call_start_naming_the_slide() {
    let (tmp, _c, d) = setup();
    let s = d.sequences().start("hcp-1", BUNDLE).unwrap();
    let mut v2 = deck();
    v2.manifest.version = 2;
    v2.manifest.slides.retain(|s| s.id != "dosing");
    v2.files.remove("slides/dosing/index.html");
    for p in &mut v2.manifest.presentations {
        p.slides.retain(|s| s != "dosing");
    }
    // A new mandatory slide in the visible deck.
    v2.manifest.slides.iter_mut().find(|s| s.id == "efficacy").unwrap().mandatory = true;
    let zip = tmp.path().join("deck-v2.zip");
    std::fs::write(&zip, v2.zip(Some(&publisher()))).unwrap();
    d.install_zip(&zip).unwrap();
    let m = invalid(d.start_call_from_sequence(&s.sequence_id, Channel::FaceToFace, None).unwrap_err());
    assert!(m.contains("\"dosing\"") && m.contains("start the sequence again"), "{m}");
    assert!(d.calls().list().unwrap().is_empty(), "no call was started");
    let fresh = d.sequences().start("hcp-1", BUNDLE).unwrap();
    assert_eq!(fresh.slide_ids(), ["intro", "efficacy", "isi-1"]);
    assert!(fresh.items[1].mandatory, "a slide the new version makes mandatory cannot be removed");
    assert!(matches!(d.sequences().remove(&fresh.sequence_id, "efficacy"), Err(Error::Invalid(_))));
}
