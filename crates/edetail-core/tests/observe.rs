//! Live observers of a call (`Device::observe_call`) on a real device directory: every path
//! that moves the call (the shell's navigate and enter_slide, the slide bridge, a vendor deck's
//! own navigation) and every slide-state save is told once committed; nothing for a move that
//! stays or fails, nor for another call; dropping the subscription stops it; a remote doctor's
//! navigation (`NavSource::Remote`) is recorded as HCP-led with source `remote`, and not at all
//! with consent off, though the call still moves.

mod common;

use std::sync::{Arc, Mutex};

use chrono::Utc;
use common::start;
use edetail_core::{CallChange, Device, NavAction, NavSource, Tracking};
use edetail_protocol::ConsentRecord;
use serde_json::{Value, json};

fn setup() -> (tempfile::TempDir, Device) {
    let (tmp, _clock, d) = common::setup();
    (tmp, d)
}

type Seen = Arc<Mutex<Vec<CallChange>>>;

fn observe(d: &Device, call: &str) -> (Seen, edetail_core::CallSubscription) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let sub = d.observe_call(call, Arc::new(move |c: &CallChange| s.lock().unwrap().push(c.clone())));
    (seen, sub)
}

fn moved(slide: &str) -> CallChange {
    CallChange::Moved { slide: slide.into(), presentation: "main".into() }
}

fn bridge(d: &Device, msg: Value) -> Value {
    serde_json::from_str(&edetail_core::bridge::handle(d, &msg.to_string())).unwrap()
}

fn goto(slide: &str) -> NavAction {
    NavAction::Goto { slide: Some(slide.into()), presentation: None, key_message: None }
}

#[test]
fn every_path_that_moves_the_call_or_saves_state_is_told_once_after_commit() {
    let (_tmp, d) = setup();
    let d = Arc::new(d);
    let call = start(&d, None);
    let (seen, sub) = observe(&d, &call);
    // The committed state is visible from inside the callback (which may call the device).
    let committed: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let (weak, c2, call2) = (Arc::downgrade(&d), committed.clone(), call.clone());
    let _check = d.observe_call(
        &call,
        Arc::new(move |_: &CallChange| {
            if let Some(d) = weak.upgrade() {
                c2.lock().unwrap().push(d.calls().get(&call2).unwrap().slide_id);
            }
        }),
    );

    d.calls().navigate(&call, &NavAction::Next, NavSource::Swipe, false).unwrap();
    // Next on the last slide stays: nothing recorded, nothing told.
    assert!(!d.calls().navigate(&call, &NavAction::Next, NavSource::Swipe, false).unwrap().moved);
    // A failed move is not told either.
    d.calls().navigate(&call, &goto("nope"), NavSource::Jump, false).unwrap_err();
    d.calls().enter_slide(&call, "intro", NavSource::Overview, false).unwrap();
    // The slide bridge: a link in the slide, a state save.
    let ok = |m: Value| assert_eq!(bridge(&d, m.clone())["ok"], true, "{m}");
    ok(json!({"v": 1, "id": 1, "method": "navigate", "params": {"action": "next"}}));
    ok(json!({"v": 1, "id": 2, "method": "state.save", "params": {"key": "chart", "value": {"tab": 2}}}));
    // A vendor deck's own navigation (Veeva's gotoSlide by key message).
    ok(json!({"v": 1, "id": 3, "method": "veeva.request", "params": {"request": "veeva:gotoSlide(KM_INTRO.zip)"}}));
    d.calls().state_save(&call, "k", &json!(1)).unwrap();

    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            moved("efficacy"),
            moved("intro"),
            moved("efficacy"),
            CallChange::State { key: "chart".into(), value: json!({"tab": 2}) },
            moved("intro"),
            CallChange::State { key: "k".into(), value: json!(1) },
        ]
    );
    let committed = committed.lock().unwrap().clone();
    assert_eq!(committed.len(), 6);
    assert_eq!(
        committed[..3],
        [Some("efficacy".to_string()), Some("intro".to_string()), Some("efficacy".to_string())],
        "told after the commit"
    );

    // Another call's changes are not told here.
    let other = start(&d, None);
    d.calls().navigate(&other, &NavAction::Next, NavSource::Swipe, false).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 6);

    drop(sub);
    d.calls().navigate(&call, &NavAction::Next, NavSource::Swipe, false).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 6, "unsubscribed");
}

#[test]
fn a_remote_doctors_navigation_is_hcp_led_with_source_remote_and_unrecorded_with_consent_off() {
    let (_tmp, d) = setup();
    let call = start(&d, Some("hcp-1"));
    let (seen, _sub) = observe(&d, &call);
    d.calls().navigate(&call, &NavAction::Next, NavSource::Remote, true).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![moved("efficacy")]);
    let enters: Vec<Value> =
        d.outbox().for_call(&call).unwrap().into_iter().filter(|e| e.kind == "slide_enter").map(|e| e.payload).collect();
    assert_eq!(enters.len(), 2);
    assert_eq!(enters[1]["source"], "remote");
    assert_eq!(enters[1]["hcp_led"], true);
    assert_eq!(d.calls().slide_views(&call).unwrap()[1].source.as_deref(), Some("remote"));
    assert_eq!(d.calls().tracking(&call).unwrap(), Tracking::Full);
    assert!(matches!(d.calls().tracking("nope"), Err(edetail_core::Error::UnknownCall(_))));

    let consent = ConsentRecord { hcp_id: "hcp-off".into(), tracking: Tracking::Off, updated_at: Utc::now() };
    d.privacy().apply_consents(&[consent]).unwrap();
    let call = start(&d, Some("hcp-off"));
    assert_eq!(d.calls().tracking(&call).unwrap(), Tracking::Off);
    let (seen, _sub) = observe(&d, &call);
    d.calls().navigate(&call, &NavAction::Next, NavSource::Remote, true).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![moved("efficacy")], "the call moves and is told");
    assert!(d.outbox().for_call(&call).unwrap().is_empty(), "consent off: nothing recorded");
    assert_eq!(d.calls().get(&call).unwrap().slide_id.as_deref(), Some("efficacy"));
}
