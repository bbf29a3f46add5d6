//! The remote sessions a device remembers (`Device::remote_sessions`) on a real device
//! directory: one per call, live until it expires by the trusted clock (pruned at the next
//! session remembered), a new link kept, forgotten when it ends; kept across a restart, after
//! which the call is interrupted and a new open call on the same bundle with the same HCP (or
//! both without one) finds the session it left and takes it over; nothing of another HCP's,
//! another bundle's, a completed call's or an erased HCP's call.

mod common;

use std::time::Duration;

use common::{BUNDLE, open, setup, start, t0};
use edetail_core::RemoteSessionRecord;

fn session(id: &str, call: &str, minutes: i64) -> RemoteSessionRecord {
    RemoteSessionRecord {
        session_id: id.into(),
        call_id: call.into(),
        bundle_id: BUNDLE.into(),
        bundle_version: 1,
        join_url: format!("https://hub.example.com/r/{id}"),
        expires_at: t0() + chrono::Duration::minutes(minutes),
        recorded: true,
    }
}

#[test]
fn a_call_has_one_live_session_until_it_ends_or_expires() {
    let (_tmp, clock, d) = setup();
    let r = d.remote_sessions();
    let call = start(&d, Some("hcp-1"));
    assert_eq!(r.live_for(&call).unwrap(), None);
    r.remember(&session("s1", &call, 30)).unwrap();
    assert_eq!(r.live_for(&call).unwrap(), Some(session("s1", &call, 30)));

    // A new link (and expiry) replaces the stored one.
    let later = t0() + chrono::Duration::minutes(45);
    assert!(r.relinked("s1", "https://hub.example.com/r/new", later).unwrap());
    let s = r.live_for(&call).unwrap().unwrap();
    assert_eq!((s.join_url.as_str(), s.expires_at), ("https://hub.example.com/r/new", later));
    assert!(!r.relinked("nope", "x", later).unwrap());

    // Another session of the call replaces it.
    r.remember(&session("s2", &call, 30)).unwrap();
    assert_eq!(r.live_for(&call).unwrap().map(|s| s.session_id), Some("s2".into()));
    assert_eq!(r.list().unwrap().len(), 1);
    assert!(!r.forget("s1").unwrap(), "s1 was replaced");
    assert!(r.forget("s2").unwrap());
    assert_eq!(r.live_for(&call).unwrap(), None);

    // Expired: not live any more, pruned when the next session is remembered.
    r.remember(&session("s3", &call, 30)).unwrap();
    clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(r.live_for(&call).unwrap(), None);
    assert_eq!(r.list().unwrap().len(), 1);
    let other = start(&d, None);
    r.remember(&session("s4", &other, 60)).unwrap();
    assert_eq!(r.list().unwrap().into_iter().map(|s| s.session_id).collect::<Vec<_>>(), ["s4"]);
}

#[test]
fn after_a_restart_a_new_call_with_the_same_hcp_and_bundle_takes_the_session_over() {
    let (tmp, clock, d) = setup();
    let call = start(&d, Some("hcp-1"));
    d.remote_sessions().remember(&session("s1", &call, 30)).unwrap();
    assert_eq!(d.remote_sessions().left_for(&call).unwrap(), None, "an open call leaves nothing");
    drop(d);

    // The app restarts: the call is recovered as interrupted; its session is still there.
    let d = open(&tmp.path().join("data"), clock.clone());
    assert_eq!(d.calls().get(&call).unwrap().status, "interrupted");
    let r = d.remote_sessions();
    assert_eq!(r.live_for(&call).unwrap().map(|s| s.session_id), Some("s1".into()));
    let other_hcp = start(&d, Some("hcp-2"));
    assert_eq!(r.left_for(&other_hcp).unwrap(), None, "another HCP's call");
    d.calls().end_call(&other_hcp).unwrap();
    let no_hcp = start(&d, None);
    assert_eq!(r.left_for(&no_hcp).unwrap(), None, "a call without an HCP");
    d.calls().end_call(&no_hcp).unwrap();

    let again = start(&d, Some("hcp-1"));
    let left = r.left_for(&again).unwrap().expect("the session the interrupted call left");
    assert_eq!(left, session("s1", &call, 30));
    assert!(r.move_to("s1", &again).unwrap());
    assert_eq!(r.live_for(&again).unwrap(), Some(session("s1", &again, 30)));
    assert_eq!(r.live_for(&call).unwrap(), None);
    assert_eq!(r.left_for(&again).unwrap(), None, "taken over");
    d.calls().end_call(&again).unwrap();

    // A completed call leaves nothing to take over; an expired session neither.
    let done = start(&d, Some("hcp-1"));
    r.remember(&session("s2", &done, 30)).unwrap();
    d.calls().end_call(&done).unwrap();
    let next = start(&d, Some("hcp-1"));
    assert_eq!(r.left_for(&next).unwrap(), None, "the call completed");
    d.calls().end_call(&next).unwrap();
    drop(d);
    let d = open(&tmp.path().join("data"), clock.clone());
    let crashed = start(&d, None);
    d.remote_sessions().remember(&session("s3", &crashed, 30)).unwrap();
    drop(d);
    let d = open(&tmp.path().join("data"), clock.clone());
    clock.advance(Duration::from_secs(31 * 60));
    let after = start(&d, None);
    assert_eq!(d.remote_sessions().left_for(&after).unwrap(), None, "expired");
}

#[test]
fn an_erased_hcps_interrupted_call_leaves_nothing_to_take_over() {
    let (tmp, clock, d) = setup();
    let call = start(&d, Some("hcp-9"));
    d.remote_sessions().remember(&session("s1", &call, 30)).unwrap();
    drop(d);
    let d = open(&tmp.path().join("data"), clock);
    d.privacy().erase_hcp("hcp-9").unwrap();
    let again = start(&d, Some("hcp-9"));
    assert_eq!(d.remote_sessions().left_for(&again).unwrap(), None);
}
