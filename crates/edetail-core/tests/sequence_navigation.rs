//! A call started from a rep's sequence follows the sequence, on a real device directory: next
//! and previous step through the sequence's order as it was when the call started (the deck's
//! sub-presentations still shown first), the deck's order takes over off the sequence and inside
//! a sub-presentation, goto is unchanged, later edits of the saved sequence do not reach the
//! running call, calls started normally follow the deck, and the slide bridge's `next` (and a
//! Veeva deck's own `nextSlide()`) follows the sequence too.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::{BundlePath, Presentation, SecretKey};
use edetail_core::{Channel, Device, DeviceConfig, ManualClock, NavAction, NavSource, StartCall};
use serde_json::{Value, json};

const BUNDLE: &str = "com.example.sample";
const HCP: &str = "hcp-1";

fn publisher() -> SecretKey {
    SecretKey::from_seed(&[11; 32])
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().unwrap()
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> Device {
    let config = DeviceConfig { trusted_keys: vec![publisher().public()], clock: clock.clone(), ..DeviceConfig::new("rep-1") };
    Device::open(dir, config).unwrap()
}

/// Deck `main`: a, b, c, where b requires the hidden sub-presentation `refs` (r1, r2); a
/// mandatory `isi` slide in a hidden `isi` deck.
fn deck() -> SampleBundle {
    let mut b = SampleBundle::new();
    let template = b.manifest.slides[1].clone();
    b.files.retain(|p, _| p.starts_with("shared/"));
    b.manifest.slides.clear();
    let mut add = |id: &str, mandatory: bool, sub: Option<&str>| {
        let path = format!("slides/{id}/index.html");
        b.files.insert(path.clone(), format!("<!doctype html><title>{id}</title>").into_bytes());
        let mut s = template.clone();
        s.id = id.into();
        s.title = id.into();
        s.key_message = None;
        s.entry = BundlePath::parse(&path).unwrap();
        s.mandatory = mandatory;
        s.sub_presentation = sub.map(str::to_string);
        b.manifest.slides.push(s);
    };
    for (id, mandatory, sub) in [("a", false, None), ("b", false, Some("refs")), ("c", false, None), ("r1", false, None)] {
        add(id, mandatory, sub);
    }
    add("r2", false, None);
    add("isi", true, None);
    let deck = |id: &str, hidden: bool, slides: &[&str]| Presentation {
        id: id.into(),
        title: id.into(),
        hidden,
        slides: slides.iter().map(|s| s.to_string()).collect(),
        extra: Default::default(),
    };
    b.manifest.presentations = vec![deck("main", false, &["a", "b", "c"]), deck("refs", true, &["r1", "r2"]), deck("isi", true, &["isi"])];
    b
}

fn setup() -> (tempfile::TempDir, Device) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let d = open(&tmp.path().join("data"), &clock);
    let zip = tmp.path().join("deck.zip");
    std::fs::write(&zip, deck().zip(Some(&publisher()))).unwrap();
    d.install_zip(&zip).unwrap();
    (tmp, d)
}

/// The rep's saved sequence for the HCP, arranged as `order` (from the deck order the sequence
/// starts with: a, b, c, isi).
fn sequence(d: &Device, order: &[&str]) -> String {
    let s = d.sequences().start(HCP, BUNDLE).unwrap();
    assert_eq!(s.slide_ids(), ["a", "b", "c", "isi"], "no plan, no history: the deck order and the mandatory ISI");
    let id = s.sequence_id;
    for slide in ["a", "b", "c"].iter().filter(|s| !order.contains(s)) {
        d.sequences().remove(&id, slide).unwrap();
    }
    for (to, slide) in order.iter().enumerate() {
        let from = d.sequences().get(&id).unwrap().slide_ids().iter().position(|s| s == slide).unwrap();
        d.sequences().move_item(&id, from, to).unwrap();
    }
    assert_eq!(d.sequences().get(&id).unwrap().slide_ids(), order);
    id
}

/// Navigates and answers (slide, presentation, moved).
fn nav(d: &Device, call: &str, action: NavAction) -> (String, String, bool) {
    let source = if matches!(action, NavAction::Goto { .. }) { NavSource::Jump } else { NavSource::Swipe };
    let t = d.calls().navigate(call, &action, source, false).unwrap();
    (t.slide, t.presentation, t.moved)
}

fn next(d: &Device, call: &str) -> (String, String, bool) {
    nav(d, call, NavAction::Next)
}

fn prev(d: &Device, call: &str) -> (String, String, bool) {
    nav(d, call, NavAction::Previous)
}

fn goto(d: &Device, call: &str, slide: &str) -> (String, String, bool) {
    nav(d, call, NavAction::Goto { slide: Some(slide.into()), presentation: None, key_message: None })
}

fn at(slide: &str, presentation: &str) -> (String, String, bool) {
    (slide.into(), presentation.into(), true)
}

fn stay(slide: &str, presentation: &str) -> (String, String, bool) {
    (slide.into(), presentation.into(), false)
}

/// The slides the call entered, in order.
fn entered(d: &Device, call: &str) -> Vec<String> {
    d.outbox()
        .for_call(call)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "slide_enter")
        .map(|e| e.payload["slide"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn next_and_previous_follow_the_sequence_and_stay_at_its_ends() {
    let (_tmp, d) = setup();
    let id = sequence(&d, &["c", "a", "isi"]);
    let call = d.start_call_from_sequence(&id, Channel::FaceToFace, None).unwrap();
    assert_eq!((call.first.slide.as_str(), call.first.presentation.as_str()), ("c", "main"));
    let call = call.call_id;

    assert_eq!(prev(&d, &call), stay("c", "main"), "the sequence's first slide: nothing before it (the deck has b)");
    assert_eq!(next(&d, &call), at("a", "main"), "c -> a, where the deck would end");
    assert_eq!(next(&d, &call), at("isi", "isi"), "a -> isi, not the deck's b");
    assert_eq!(next(&d, &call), stay("isi", "isi"), "the end of the sequence");
    assert_eq!(prev(&d, &call), at("a", "main"));
    assert_eq!(prev(&d, &call), at("c", "main"));
    assert_eq!(prev(&d, &call), stay("c", "main"));
    assert_eq!(entered(&d, &call), ["c", "a", "isi", "a", "c"], "a stay records nothing");
}

#[test]
fn a_sequence_slide_with_a_sub_presentation_shows_it_first_then_the_slide() {
    let (_tmp, d) = setup();
    let id = sequence(&d, &["c", "b", "a", "isi"]);
    let call = d.start_call_from_sequence(&id, Channel::FaceToFace, None).unwrap().call_id;
    assert_eq!(next(&d, &call), at("r1", "refs"), "b requires refs: shown first");
    assert_eq!(prev(&d, &call), stay("r1", "refs"), "inside the sub-presentation: the deck's rules");
    assert_eq!(next(&d, &call), at("r2", "refs"));
    assert_eq!(next(&d, &call), at("b", "main"), "then the slide that required it");
    assert_eq!(next(&d, &call), at("a", "main"), "then the sequence goes on (the deck would go to c)");
    assert_eq!(next(&d, &call), at("isi", "isi"));
    // Back through b by previous: no sub-presentation, as on the deck.
    assert_eq!(prev(&d, &call), at("a", "main"));
    assert_eq!(prev(&d, &call), at("b", "main"));
    assert_eq!(prev(&d, &call), at("c", "main"));
}

#[test]
fn off_the_sequence_the_deck_leads_and_back_on_it_the_sequence_does() {
    let (_tmp, d) = setup();
    let id = sequence(&d, &["c", "a", "isi"]);
    let call = d.start_call_from_sequence(&id, Channel::FaceToFace, None).unwrap().call_id;
    // b is not in the sequence: a jump there, then the deck's order (goto opens no sub-presentation).
    assert_eq!(goto(&d, &call, "b"), at("b", "main"));
    assert_eq!(next(&d, &call), at("c", "main"), "b -> c by the deck");
    assert_eq!(next(&d, &call), at("a", "main"), "c is in the sequence again: c -> a");
    assert_eq!(goto(&d, &call, "b"), at("b", "main"));
    assert_eq!(prev(&d, &call), at("a", "main"), "b -> a by the deck");
    assert_eq!(prev(&d, &call), at("c", "main"), "a is in the sequence: a -> c");
    // A jump back onto a sequence slide: the sequence again.
    assert_eq!(goto(&d, &call, "r2"), at("r2", "refs"));
    assert_eq!(next(&d, &call), stay("r2", "refs"), "r2 is off the sequence and last in refs (no pending return)");
    assert_eq!(goto(&d, &call, "a"), at("a", "main"));
    assert_eq!(next(&d, &call), at("isi", "isi"), "a -> isi, not the deck's b");
}

#[test]
fn editing_the_saved_sequence_does_not_change_the_running_calls_order() {
    let (_tmp, d) = setup();
    let id = sequence(&d, &["c", "a", "isi"]);
    let call = d.start_call_from_sequence(&id, Channel::FaceToFace, None).unwrap().call_id;
    // While the call runs the rep edits the saved sequence: a removed, b added then moved first.
    d.sequences().remove(&id, "a").unwrap();
    d.sequences().add(&id, "b").unwrap();
    d.sequences().move_item(&id, 2, 0).unwrap();
    assert_eq!(d.sequences().get(&id).unwrap().slide_ids(), ["b", "c", "isi"]);
    assert_eq!(prev(&d, &call), stay("c", "main"), "the call's order starts with c");
    assert_eq!(next(&d, &call), at("a", "main"), "c -> a as when the call started");
    assert_eq!(next(&d, &call), at("isi", "isi"));
    let plan = d.outbox().for_call(&call).unwrap().into_iter().find(|e| e.kind == "call_plan").unwrap().payload;
    assert_eq!(plan["order"], json!(["c", "a", "isi"]), "what the call follows is what it recorded");
    d.calls().end_call(&call).unwrap();

    // The next call follows the edited sequence.
    let call = d.start_call_from_sequence(&id, Channel::FaceToFace, None).unwrap();
    assert_eq!(call.first.slide, "b", "a call opens on its first slide itself, as on the deck");
    let call = call.call_id;
    assert_eq!(next(&d, &call), at("c", "main"));
    assert_eq!(next(&d, &call), at("isi", "isi"), "c -> isi: a is no longer in it");
}

#[test]
fn a_call_started_normally_still_follows_the_deck() {
    let (_tmp, d) = setup();
    sequence(&d, &["c", "a", "isi"]);
    let start = StartCall {
        hcp_id: Some(HCP.into()),
        channel: Channel::FaceToFace,
        bundle_id: BUNDLE.into(),
        presentation_id: None,
        location: None,
    };
    let (call, first) = d.start_call(start).unwrap();
    assert_eq!(first.slide, "a");
    assert_eq!(next(&d, &call), at("r1", "refs"));
    assert_eq!(next(&d, &call), at("r2", "refs"));
    assert_eq!(next(&d, &call), at("b", "main"));
    assert_eq!(next(&d, &call), at("c", "main"));
    assert_eq!(next(&d, &call), stay("c", "main"), "the end of the deck: isi is not in it");
    assert_eq!(prev(&d, &call), at("b", "main"));
}

fn bridge(d: &Device, msg: Value) -> Value {
    serde_json::from_str(&edetail_core::bridge::handle(d, &msg.to_string())).unwrap()
}

#[test]
fn the_bridges_next_and_prev_and_a_veeva_decks_next_slide_follow_the_sequence() {
    let (_tmp, d) = setup();
    let id = sequence(&d, &["c", "a", "isi"]);
    d.start_call_from_sequence(&id, Channel::FaceToFace, None).unwrap();
    let step = |action: &str| {
        let r = bridge(&d, json!({"v": 1, "id": 1, "method": "navigate", "params": {"action": action}}));
        assert_eq!(r["ok"], true, "{r}");
        (r["result"]["slide"].as_str().unwrap().to_string(), r["result"]["moved"].as_bool().unwrap())
    };
    assert_eq!(step("next"), ("a".to_string(), true));
    assert_eq!(step("next"), ("isi".to_string(), true));
    assert_eq!(step("next"), ("isi".to_string(), false));
    assert_eq!(step("prev"), ("a".to_string(), true));
    assert_eq!(step("previous"), ("c".to_string(), true));
    // A Veeva deck's own nextSlide() (vendor container emulation) too.
    let r = bridge(&d, json!({"v": 1, "id": 2, "method": "veeva.request", "params": {"request": "veeva:nextSlide()"}}));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!((&r["result"]["navigate"]["slide"], &r["result"]["navigate"]["moved"]), (&json!("a"), &json!(true)), "{r}");
}
