//! The device runtime end to end on real SQLite and a real filesystem: installs, validity and
//! clock games, assets, calls and dwell, crash recovery, the outbox, disk full, the bridge.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::{BundlePath, SecretKey};
use edetail_core::validity::Unopenable;
use edetail_core::{AdvocacyAction, Channel, Device, DeviceConfig, Error, ManualClock, NavAction, NavSource, Reaction, StartCall};
use serde_json::{Value, json};

fn key() -> SecretKey {
    SecretKey::from_seed(&[11; 32])
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().unwrap()))
}

fn config(clock: &Arc<ManualClock>) -> DeviceConfig {
    DeviceConfig { trusted_keys: vec![key().public()], clock: clock.clone(), ..DeviceConfig::new("rep-1") }
}

fn write_zip(dir: &Path, name: &str, b: &SampleBundle, signed: bool) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, b.zip(signed.then(key).as_ref())).unwrap();
    p
}

/// The sample bundle with a safety slide carrying an ISI sub-presentation, a hidden slide, and
/// topics for profiles.
fn deck() -> SampleBundle {
    let mut b = SampleBundle::new();
    let mut add = |id: &str, topics: &[&str], hidden: bool| {
        let path = format!("slides/{id}/index.html");
        b.files.insert(path.clone(), format!("<!doctype html><title>{id}</title>").into_bytes());
        let mut s = b.manifest.slides[1].clone();
        s.id = id.into();
        s.title = id.into();
        s.entry = BundlePath::parse(&path).unwrap();
        s.topics = topics.iter().map(|t| t.to_string()).collect();
        s.hidden = hidden;
        s.key_message = Some(format!("KM_{}", id.to_uppercase()));
        b.manifest.slides.push(s);
    };
    add("hidden-ref", &["references"], true);
    add("safety", &["safety"], false);
    add("dosing", &["dosing"], false);
    add("isi-1", &["safety"], false);
    b.manifest.presentations[0].slides.extend(["hidden-ref".into(), "safety".into(), "dosing".into()]);
    b.manifest.presentations.push(edetail_bundle::Presentation {
        id: "isi".into(),
        title: "ISI".into(),
        hidden: true,
        slides: vec!["isi-1".into()],
        extra: Default::default(),
    });
    b.manifest.slides.iter_mut().find(|s| s.id == "safety").unwrap().sub_presentation = Some("isi".into());
    b
}

fn open_with(dir: &Path, clock: &Arc<ManualClock>) -> Device {
    Device::open(dir, config(clock)).unwrap()
}

#[test]
fn install_list_resolve_and_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(&tmp.path().join("data"), &c);
    let zip = write_zip(tmp.path(), "deck.zip", &deck(), true);
    let out = d.install_zip(&zip).unwrap();
    assert!(out.activated);
    assert_eq!(out.blobs_written, deck().files.len());
    // Installing the same version again is a no-op.
    assert!(!d.install_zip(&zip).unwrap().activated);

    let list = d.content().list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].key_id.as_deref(), Some(key().public().key_id().as_str()));

    let mut a = d.assets().resolve_url_path("/com.example.sample/shared/deck.css", None).unwrap();
    assert_eq!(a.mime, "text/css");
    let mut body = String::new();
    std::io::Read::read_to_string(&mut a.reader, &mut body).unwrap();
    assert!(body.starts_with("body{"));
    let mut r = d.assets().resolve("com.example.sample", "shared/deck.css", Some("bytes=5-14")).unwrap();
    assert_eq!((r.length, r.total_size), (10, body.len() as u64));
    let mut part = String::new();
    std::io::Read::read_to_string(&mut r.reader, &mut part).unwrap();
    assert_eq!(part, &body[5..15]);
    assert!(matches!(d.assets().resolve("com.example.sample", "shared/deck.css", Some("bytes=999999-")), Err(Error::BadRange { .. })));

    // The runtime's scripts are served at the reserved path.
    let js = d.assets().resolve_url_path("/_edetail/edetail.js", None).unwrap();
    assert_eq!(js.mime, "text/javascript");
    assert!(js.length > 0);
}

#[test]
fn hostile_asset_paths_never_reach_the_filesystem() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(&tmp.path().join("data"), &c);
    d.install_zip(&write_zip(tmp.path(), "deck.zip", &deck(), true)).unwrap();
    for p in [
        "/com.example.sample/../edetail.sqlite3",
        "/com.example.sample/%2e%2e/edetail.sqlite3",
        "/com.example.sample/objects",
        "/com.example.sample/manifest.json",
        "/com.example.sample//etc/passwd",
        "/com.example.sample/shared\\deck.css",
        "/_edetail/../edetail.sqlite3",
        "/_edetail/nope.js",
        "/other.bundle/shared/deck.css",
        "/",
        "",
        "/%ff%fe",
    ] {
        assert!(matches!(d.assets().resolve_url_path(p, None), Err(Error::AssetNotFound { .. })), "{p:?}");
    }
}

#[test]
fn unsigned_and_wrongly_signed_bundles_are_refused_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(&tmp.path().join("data"), &c);
    let unsigned = write_zip(tmp.path(), "u.zip", &deck(), false);
    assert!(matches!(d.install_zip(&unsigned), Err(Error::Bundle(_))));
    let other = tmp.path().join("o.zip");
    std::fs::write(&other, deck().zip(Some(&SecretKey::from_seed(&[99; 32])))).unwrap();
    assert!(matches!(d.install_zip(&other), Err(Error::Bundle(_))));
    assert!(d.content().list().unwrap().is_empty());
    // A preview device explicitly allows unsigned content.
    let lax = Device::open(&tmp.path().join("preview"), DeviceConfig { allow_unsigned: true, ..config(&c) }).unwrap();
    assert!(lax.install_zip(&unsigned).unwrap().activated);
}

#[test]
fn new_versions_share_blobs_roll_back_and_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(&tmp.path().join("data"), &c);
    let v1 = deck();
    d.install_zip(&write_zip(tmp.path(), "v1.zip", &v1, true)).unwrap();
    let mut v2 = deck();
    v2.manifest.version = 2;
    v2.files.insert("slides/efficacy/index.html".into(), b"<!doctype html><title>Efficacy v2</title>".to_vec());
    let out = d.install_zip(&write_zip(tmp.path(), "v2.zip", &v2, true)).unwrap();
    assert_eq!(out.blobs_written, 1, "only the changed file is stored");
    assert_eq!(out.blobs_reused, v2.files.len() - 1);
    let mut v3 = v2.clone();
    v3.manifest.version = 3;
    v3.files.insert("slides/efficacy/index.html".into(), b"<!doctype html><title>Efficacy v3</title>".to_vec());
    d.install_zip(&write_zip(tmp.path(), "v3.zip", &v3, true)).unwrap();

    // An older version is a rollback attack and is refused.
    assert!(matches!(d.install_zip(&write_zip(tmp.path(), "v1b.zip", &v1, true)), Err(Error::Rollback { .. })));

    let listed = &d.content().list().unwrap()[0];
    assert_eq!((listed.active_version, listed.previous_version), (3, Some(2)));
    let gc = d.content().gc().unwrap();
    assert_eq!(gc.versions_removed, 1, "v1 goes, v2 stays for rollback");
    assert_eq!(gc.blobs_removed, 1, "v1's efficacy page");
    assert_eq!(d.content().rollback("com.example.sample", 0).unwrap(), 2);
    let mut a = d.assets().resolve("com.example.sample", "slides/efficacy/index.html", None).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut a.reader, &mut s).unwrap();
    assert!(s.contains("v2"));
}

#[test]
fn blob_by_blob_install_activates_only_when_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(&tmp.path().join("data"), &c);
    let b = deck();
    let m = b.computed_manifest();
    let bytes = m.to_bytes();
    let sig = key().sign_manifest(&bytes);
    let (_, missing) = d.content().stage_manifest(&bytes, Some(&sig), 0).unwrap();
    assert_eq!(missing.len(), b.files.len());
    let pending = d.content().pending_downloads().unwrap();
    let all_bytes: u64 = missing.iter().map(|m| m.size).sum();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].version, pending[0].active_version, pending[0].missing_files, pending[0].missing_bytes),
        (1, None, missing.len() as u64, all_bytes)
    );
    // A blob whose content does not match is refused.
    let first = &missing[0];
    assert!(matches!(d.content().add_blob(&first.sha256, &mut &b"evil"[..], 0), Err(Error::BlobMismatch { .. })));
    assert!(matches!(d.content().activate(&m.id, m.version, 0), Err(Error::Incomplete { .. })));
    assert!(d.content().list().unwrap().is_empty(), "nothing active before all blobs are present");
    for f in b.files.values() {
        let digest = edetail_bundle::Sha256Digest::of(f);
        d.content().add_blob(&digest, &mut &f[..], 0).unwrap();
    }
    assert!(d.content().missing_blobs(&m.id, m.version).unwrap().is_empty());
    assert_eq!(d.content().pending_downloads().unwrap()[0].missing_files, 0, "complete, not yet active");
    d.content().activate(&m.id, m.version, 0).unwrap();
    assert_eq!(d.content().list().unwrap()[0].active_version, 1);
    assert!(d.content().pending_downloads().unwrap().is_empty(), "nothing pending once active");
    // A tampered manifest is refused before anything is staged.
    let mut tampered = bytes.clone();
    let pos = tampered.windows(6).position(|w| w == b"Sample").unwrap();
    tampered[pos] = b's';
    assert!(d.content().stage_manifest(&tampered, Some(&sig), 0).is_err());
}

#[test]
fn validity_window_clock_games_and_revocation() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let dir = tmp.path().join("data");
    let mut b = deck();
    b.manifest.valid_until = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().unwrap();
    {
        let d = open_with(&dir, &c);
        d.install_zip(&write_zip(tmp.path(), "deck.zip", &b, true)).unwrap();
        d.check_openable("com.example.sample").unwrap();
        c.advance(Duration::from_secs(10 * 86400)); // now 2026-12-04: expired
        assert!(matches!(d.unopenable_reason("com.example.sample").unwrap(), Some(Unopenable::Expired { .. })));
        // The rep sets the clock back: still expired (trusted time never runs backwards).
        c.set_wall(Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).single().unwrap());
        assert!(matches!(d.unopenable_reason("com.example.sample").unwrap(), Some(Unopenable::Expired { .. })));
    }
    // ... and after an app restart too.
    let d = open_with(&dir, &c);
    assert!(matches!(d.unopenable_reason("com.example.sample").unwrap(), Some(Unopenable::Expired { .. })));
    let start = StartCall {
        hcp_id: Some("hcp-1".into()),
        channel: Channel::FaceToFace,
        bundle_id: "com.example.sample".into(),
        presentation_id: None,
        location: None,
    };
    assert!(matches!(d.start_call(start), Err(Error::NotOpenable { .. })));

    // Revocation stops opening at once.
    let tmp2 = tempfile::tempdir().unwrap();
    let c2 = clock();
    let d2 = open_with(tmp2.path(), &c2);
    d2.install_zip(&write_zip(tmp2.path(), "deck.zip", &deck(), true)).unwrap();
    d2.content().revoke("com.example.sample", "withdrawn", 0).unwrap();
    assert_eq!(d2.unopenable_reason("com.example.sample").unwrap(), Some(Unopenable::Revoked));
}

fn start(d: &Device, hcp: &str) -> String {
    let (id, first) = d
        .start_call(StartCall {
            hcp_id: Some(hcp.into()),
            channel: Channel::FaceToFace,
            bundle_id: "com.example.sample".into(),
            presentation_id: None,
            location: None,
        })
        .unwrap();
    assert_eq!(first.slide, "intro");
    assert_eq!(first.url, "/com.example.sample/slides/intro/index.html");
    id
}

#[test]
fn navigation_skips_hidden_slides_and_shows_sub_presentations_first() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(tmp.path(), &c);
    d.install_zip(&write_zip(tmp.path(), "deck.zip", &deck(), true)).unwrap();
    let call = start(&d, "hcp-1");
    let nav = |a: NavAction| d.calls().navigate(&call, &a, NavSource::Swipe, false).unwrap().slide;
    assert_eq!(nav(NavAction::Next), "efficacy");
    // hidden-ref is skipped; safety requires its ISI first.
    assert_eq!(nav(NavAction::Next), "isi-1");
    assert_eq!(nav(NavAction::Next), "safety");
    assert_eq!(nav(NavAction::Next), "dosing");
    assert_eq!(nav(NavAction::Next), "dosing", "end of deck stays");
    assert_eq!(nav(NavAction::Previous), "safety");
    assert_eq!(nav(NavAction::Goto { slide: None, presentation: Some("pi".into()), key_message: None }), "pi");
    assert_eq!(nav(NavAction::Goto { slide: None, presentation: None, key_message: Some("KM_DOSING.zip".into()) }), "dosing");
    assert!(
        d.calls()
            .navigate(&call, &NavAction::Goto { slide: Some("nope".into()), presentation: None, key_message: None }, NavSource::Jump, false)
            .is_err()
    );
}

/// A clock that takes a millisecond to read on threads that ask for it to be slow: reading the
/// time of an event then leaves room for other threads to act.
#[derive(Debug)]
struct SlowClock(Arc<ManualClock>);

thread_local! {
    static SLOW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl edetail_core::Clock for SlowClock {
    fn now_utc(&self) -> chrono::DateTime<Utc> {
        if SLOW.get() {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.0.now_utc()
    }
    fn monotonic(&self) -> Duration {
        self.0.monotonic()
    }
}

#[test]
fn events_name_the_slide_open_when_they_were_recorded_even_while_another_thread_navigates() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = Device::open(tmp.path(), DeviceConfig { clock: Arc::new(SlowClock(c.clone())), ..config(&c) }).unwrap();
    d.install_zip(&write_zip(tmp.path(), "deck.zip", &deck(), true)).unwrap();
    let call = start(&d, "hcp-1");
    const ROUNDS: usize = 100;
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let slide = if i % 2 == 0 { "efficacy" } else { "intro" };
                d.calls().enter_slide(&call, slide, NavSource::Swipe, false).unwrap();
                i += 1;
            }
        });
        s.spawn(|| {
            SLOW.set(true);
            let calls = d.calls();
            for i in 0..ROUNDS {
                match i % 4 {
                    0 => calls.react(&call, Reaction::Positive).map(drop),
                    1 => calls.track(&call, "tap", json!({"i": i})).map(drop),
                    2 => calls.answer(&call, "q1", &["a".into()], None).map(drop),
                    _ => calls.follow_up(&call, "dosing", None).map(drop),
                }
                .unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    });
    // Replaying the log in seq order: every event names the slide entered last before it.
    let mut open: Option<String> = None;
    let mut checked = 0;
    for e in d.outbox().for_call(&call).unwrap() {
        let slide = e.payload.get("slide").and_then(Value::as_str).map(str::to_string);
        match e.kind.as_str() {
            "slide_enter" => open = slide,
            "reaction" | "custom" | "survey_answer" | "follow_up_request" => {
                assert_eq!(slide, open, "event {} ({}) names a slide that was not open", e.seq, e.kind);
                checked += 1;
            }
            _ => {}
        }
    }
    assert_eq!(checked, ROUNDS);
}

#[test]
fn dwell_pauses_in_background_and_views_follow_the_two_second_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(tmp.path(), &c);
    d.install_zip(&write_zip(tmp.path(), "deck.zip", &deck(), true)).unwrap();
    let call = start(&d, "hcp-1");
    c.advance(Duration::from_millis(1500)); // intro: 1.5 s, no reaction: not a view
    d.calls().enter_slide(&call, "efficacy", NavSource::Swipe, true).unwrap();
    c.advance(Duration::from_secs(5));
    d.calls().app_background().unwrap();
    c.advance(Duration::from_secs(600)); // ten minutes in the background do not count
    d.calls().app_foreground().unwrap();
    c.advance(Duration::from_secs(3));
    d.calls().react(&call, Reaction::Positive).unwrap();
    d.calls().enter_slide(&call, "safety", NavSource::Overview, false).unwrap();
    c.advance(Duration::from_millis(500));
    d.calls().react(&call, Reaction::Negative).unwrap(); // 0.5 s but a reaction: a view
    d.calls().end_call(&call).unwrap();

    let views = d.calls().slide_views(&call).unwrap();
    let summary: Vec<(&str, i64, bool)> = views.iter().map(|v| (v.slide_id.as_str(), v.dwell_ms, v.counts)).collect();
    assert_eq!(summary, vec![("intro", 1500, false), ("efficacy", 8000, true), ("safety", 500, true)]);
    assert!(views[1].hcp_led);
    assert_eq!(views[1].reactions, vec!["positive"]);
    assert_eq!(d.calls().get(&call).unwrap().status, "completed");
    let kinds: Vec<String> = d.outbox().for_call(&call).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.first().map(String::as_str), Some("call_started"));
    assert_eq!(kinds.last().map(String::as_str), Some("call_ended"));
    assert!(kinds.contains(&"app_background".to_string()));
}

#[test]
fn a_crash_leaves_the_call_interrupted_with_dwell_closed_at_the_last_heartbeat() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let call;
    {
        let d = open_with(tmp.path(), &c);
        d.install_zip(&write_zip(tmp.path(), "deck.zip", &deck(), true)).unwrap();
        call = start(&d, "hcp-1");
        d.calls().enter_slide(&call, "efficacy", NavSource::Swipe, false).unwrap();
        c.advance(Duration::from_secs(7));
        d.calls().heartbeat().unwrap();
        c.advance(Duration::from_secs(30)); // then the app is killed: no heartbeat, no end
    }
    let d = open_with(tmp.path(), &c);
    let got = d.calls().get(&call).unwrap();
    assert_eq!(got.status, "interrupted");
    let views = d.calls().slide_views(&call).unwrap();
    let last = views.last().unwrap();
    assert_eq!((last.slide_id.as_str(), last.dwell_ms, last.closed_by.as_deref()), ("efficacy", 7000, Some("recovery")));
    assert_eq!(d.outbox().for_call(&call).unwrap().last().unwrap().kind, "call_interrupted");
    // Recovery runs once: a second open changes nothing.
    let before = d.outbox().stats().unwrap().total;
    drop(d);
    let d = open_with(tmp.path(), &c);
    assert_eq!(d.outbox().stats().unwrap().total, before);
}

#[test]
fn outbox_ack_park_and_compact_never_lose_unacknowledged_events() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(tmp.path(), &c);
    let mut uuids = Vec::new();
    for i in 0..10 {
        let (seq, uuid) = d.calls().record(None, "custom", json!({"i": i})).unwrap();
        assert_eq!(seq, i + 1, "sequence numbers are dense and ordered");
        uuids.push(uuid);
    }
    assert_eq!(d.outbox().pending(100).unwrap().len(), 10);
    assert_eq!(d.outbox().ack(&uuids[..4], 1000).unwrap(), 4);
    assert_eq!(d.outbox().ack(&uuids[..4], 2000).unwrap(), 0, "acking twice is harmless");
    d.outbox().park(&uuids[4], "payload rejected by hub: schema").unwrap();
    let pending = d.outbox().pending(100).unwrap();
    assert_eq!(pending.len(), 5);
    assert_eq!(pending[0].seq, 6);
    assert_eq!(d.outbox().parked().unwrap()[0].parked_reason.as_deref(), Some("payload rejected by hub: schema"));
    assert_eq!(d.outbox().compact(i64::MAX).unwrap(), 4);
    let s = d.outbox().stats().unwrap();
    assert_eq!((s.total, s.pending, s.parked, s.last_seq), (6, 5, 1, 10));
    // Sequence numbers are never reused after compaction.
    assert_eq!(d.calls().record(None, "custom", json!({})).unwrap().0, 11);
}

/// The hub's answer to an upload, applied by seq in one transaction with its clock: only the named
/// events are marked (runs and gaps alike), rejected ones are parked with the reason, the hub's
/// clock becomes the trusted floor, and settling twice changes nothing.
#[test]
fn an_upload_answer_marks_exactly_its_events_by_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(tmp.path(), &c);
    for i in 0..12 {
        d.calls().record(None, "custom", json!({"i": i})).unwrap();
    }
    // Runs 1-3 and 5-6, a lone 9, out of order and repeated; 4 rejected; 7, 8, 10-12 unanswered.
    let durable = [6, 1, 2, 3, 5, 9, 2];
    let rejected = [(4, "seq 4 is already used by another event")];
    let hub_now = edetail_core::Clock::now_utc(&*c) + chrono::Duration::days(2);
    let answer = edetail_core::BatchAnswer { durable: &durable, rejected: &rejected };
    assert_eq!(d.settle_upload(&answer, 1000, hub_now).unwrap(), 6);
    assert_eq!(d.settle_upload(&answer, 2000, hub_now).unwrap(), 0, "settling twice is harmless");
    let pending: Vec<i64> = d.outbox().pending(100).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(pending, [7, 8, 10, 11, 12]);
    let parked = d.outbox().parked().unwrap();
    assert_eq!((parked.len(), parked[0].seq, parked[0].parked_reason.as_deref()), (1, 4, Some(rejected[0].1)));
    assert_eq!(d.outbox().stats().unwrap().acked, 6);
    assert!(d.trusted_now().unwrap() >= hub_now, "the hub's clock is the trusted floor");
}

/// The core records only what the hub accepts: built-in kinds and `app.` types; anything else is
/// refused at once with a reason, and takes no sequence number.
#[test]
fn only_kinds_of_the_event_contract_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(tmp.path(), &c);
    for bad in ["tap", "sample_request", "app.", "app.with space", "", "slide_enter\u{0}"] {
        let err = d.calls().record(None, bad, json!({})).expect_err(bad).to_string();
        assert!(err.contains("event type"), "{bad:?}: {err}");
    }
    assert!(d.calls().record(None, "tap", json!({})).unwrap_err().to_string().contains("app."));
    assert_eq!(d.calls().record(None, "app.sample_request", json!({"units": 2})).unwrap().0, 1);
    assert_eq!(d.calls().record(None, "app.Opened-v2", json!({})).unwrap().0, 2);
    let kinds: Vec<String> = d.outbox().pending(10).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["app.sample_request", "app.Opened-v2"]);
}

#[test]
fn disk_full_fails_clearly_and_damages_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(tmp.path(), &c);
    for i in 0..20 {
        d.calls().record(None, "custom", json!({"i": i})).unwrap();
    }
    // Cap the database at its current size: the next pages cannot be allocated.
    d.databases()
        .with_writer(|conn| {
            let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            conn.pragma_update(None, "max_page_count", pages)?;
            Ok(())
        })
        .unwrap();
    let big = "x".repeat(60_000);
    let mut failed = false;
    for _ in 0..50 {
        match d.calls().record(None, "custom", json!({"blob": big})) {
            Err(Error::StorageFull) => {
                failed = true;
                break;
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => {}
        }
    }
    assert!(failed, "recording into a full database must fail");
    assert!(Error::StorageFull.to_string().contains("out of storage space"));
    let all = d.outbox().all(0, 1000).unwrap();
    assert!(all.len() >= 20);
    assert_eq!(all[..20].iter().map(|e| e.payload["i"].as_i64().unwrap()).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
    assert_eq!(d.integrity_check().unwrap(), "ok");
}

fn bridge(d: &Device, msg: Value) -> Value {
    serde_json::from_str(&edetail_core::bridge::handle(d, &msg.to_string())).unwrap()
}

#[test]
fn bridge_messages_drive_a_call_and_hostile_input_gets_error_replies() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(tmp.path(), &c);
    d.install_zip(&write_zip(tmp.path(), "deck.zip", &deck(), true)).unwrap();
    // No call yet: recording methods say so.
    let r = bridge(&d, json!({"v": 1, "id": 1, "method": "track", "params": {"event": "x", "data": {}}}));
    assert_eq!(r["error"]["code"], "no_call");
    let call = start(&d, "hcp-7");
    let r = bridge(&d, json!({"v": 1, "id": 2, "method": "hello"}));
    assert_eq!(r["result"]["hcp"]["id"], "hcp-7");
    assert_eq!(r["result"]["slide"]["id"], "intro");
    let r = bridge(&d, json!({"v": 1, "id": 3, "method": "navigate", "params": {"action": "goto", "slide": "dosing"}}));
    assert_eq!(r["result"]["url"], "/com.example.sample/slides/dosing/index.html");
    assert_eq!(bridge(&d, json!({"v": 1, "id": 4, "method": "react", "params": {"value": "positive"}}))["ok"], true);
    assert_eq!(bridge(&d, json!({"v": 1, "id": 5, "method": "answer", "params": {"question": "q1", "answers": ["a", "b"]}}))["ok"], true);
    assert_eq!(bridge(&d, json!({"v": 1, "id": 6, "method": "follow_up", "params": {"topic": "dosing"}}))["ok"], true);
    let r = bridge(&d, json!({"v": 1, "id": 61, "method": "advocacy", "params": {"action": "agreed_to_speak"}}));
    assert!(r["result"]["event_id"].is_string(), "{r}");
    let advocacy = |d: &Device| d.outbox().for_call(&call).unwrap().into_iter().filter(|e| e.kind == "advocacy").count();
    assert_eq!(advocacy(&d), 1);
    for params in [json!({"action": "told_a_friend"}), json!({"action": 3}), json!({})] {
        let r = bridge(&d, json!({"v": 1, "id": 62, "method": "advocacy", "params": params}));
        assert_eq!(r["error"]["code"], "invalid_params", "{r}");
        assert!(r["error"]["message"].as_str().unwrap().contains("agreed_to_speak, referred_colleague or shared_microsite"), "{r}");
    }
    assert_eq!(advocacy(&d), 1, "an unknown action records nothing");
    assert_eq!(bridge(&d, json!({"v": 1, "id": 7, "method": "state.save", "params": {"key": "k", "value": {"n": 1}}}))["ok"], true);
    assert_eq!(bridge(&d, json!({"v": 1, "id": 8, "method": "state.load", "params": {"key": "k"}}))["result"]["value"]["n"], 1);
    let r = bridge(
        &d,
        json!({"v": 1, "id": "abc", "method": "veeva.get_data", "params": {"object": "KeyMessage", "field": "Media_File_Name_vod__c"}}),
    );
    assert_eq!(r["id"], "abc");
    assert_eq!(r["result"]["value"], "KM_DOSING.zip");
    let r = bridge(&d, json!({"v": 1, "id": 9, "method": "veeva.get_data", "params": {"object": "Account", "field": "ID"}}));
    assert_eq!(r["result"]["value"], "hcp-7");

    let hostile: Vec<(String, &str)> = vec![
        ("{not json".into(), "malformed"),
        ("[1,2,3]".into(), "malformed"),
        ("null".into(), "malformed"),
        (json!({"v": 2, "id": 1, "method": "hello"}).to_string(), "unsupported_version"),
        (json!({"v": 1, "id": 1}).to_string(), "malformed"),
        (json!({"v": 1, "id": 1, "method": "rm -rf"}).to_string(), "unknown_method"),
        (json!({"v": 1, "id": 1, "method": "react", "params": {"value": "ecstatic"}}).to_string(), "invalid_params"),
        (json!({"v": 1, "id": 1, "method": "track", "params": {"event": ""}}).to_string(), "invalid_params"),
        (json!({"v": 1, "id": 1, "method": "track", "params": "x"}).to_string(), "malformed"),
        (json!({"v": 1, "id": 1, "method": "navigate", "params": {"action": "sideways"}}).to_string(), "invalid_params"),
        (json!({"v": 1, "id": 1, "method": "navigate", "params": {"action": "goto", "slide": "../../etc"}}).to_string(), "not_found"),
        (
            json!({"v": 1, "id": 1, "method": "veeva.get_data", "params": {"object": "Opportunity", "field": "x"}}).to_string(),
            "invalid_params",
        ),
        (
            format!("{{\"v\":1,\"id\":1,\"method\":\"track\",\"params\":{{\"event\":\"e\",\"data\":\"{}\"}}}}", "x".repeat(300_000)),
            "malformed",
        ),
        ("\u{0}\u{1}".into(), "malformed"),
    ];
    for (msg, code) in hostile {
        let r: Value = serde_json::from_str(&edetail_core::bridge::handle(&d, &msg)).unwrap();
        assert_eq!(r["ok"], false, "{msg:.80}");
        assert_eq!(r["error"]["code"], code, "{msg:.80} -> {r}");
    }
    let kinds: Vec<String> = d.outbox().for_call(&call).unwrap().into_iter().map(|e| e.kind).collect();
    for k in ["reaction", "survey_answer", "follow_up_request", "advocacy"] {
        assert!(kinds.iter().any(|x| x == k), "{k} recorded");
    }
}

#[test]
fn local_profile_ranks_what_the_hcp_lingered_on() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(tmp.path(), &c);
    d.install_zip(&write_zip(tmp.path(), "deck.zip", &deck(), true)).unwrap();
    for (hcp, linger) in [("hcp-safety", "safety"), ("hcp-dosing", "dosing")] {
        for _ in 0..2 {
            let call = start(&d, hcp);
            for s in ["efficacy", "safety", "dosing"] {
                d.calls().enter_slide(&call, s, NavSource::Swipe, false).unwrap();
                c.advance(Duration::from_secs(if s == linger { 40 } else { 4 }));
            }
            d.calls().end_call(&call).unwrap();
        }
    }
    let call = start(&d, "hcp-dosing");
    d.calls().follow_up(&call, "dosing", None).unwrap();
    d.calls().end_call(&call).unwrap();

    let p = d.profile().interest_profile("hcp-safety").unwrap();
    assert_eq!(p.calls, 2);
    assert_eq!(p.topics[0].topic, "safety", "{p:?}");
    assert_eq!(d.profile().interest_profile("hcp-dosing").unwrap().topics[0].topic, "dosing");
    assert_eq!(d.profile().suggested_order("hcp-safety", "com.example.sample").unwrap(), vec!["intro", "safety", "efficacy", "dosing"]);
    assert_eq!(d.profile().suggested_order("hcp-dosing", "com.example.sample").unwrap()[1], "dosing");
    assert_eq!(d.profile().suggested_order("hcp-new", "com.example.sample").unwrap(), vec!["intro", "efficacy", "safety", "dosing"]);
}

#[test]
fn a_data_directory_is_opened_by_one_device_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(tmp.path(), &c);
    assert!(matches!(Device::open(tmp.path(), config(&c)), Err(Error::Locked(_))));
    drop(d);
    open_with(tmp.path(), &c);
}

/// The sync cursor lives in the device database: empty at first, stored whole, kept across a
/// reopen, and a `None` field removes what was stored.
#[test]
fn sync_cursor_is_kept_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let d = open_with(dir.path(), &clock);
    assert_eq!(d.sync_cursor().unwrap(), edetail_core::SyncCursor::default());
    let c = edetail_core::SyncCursor { hub_device_id: Some("d1".into()), cursor: Some("c-9".into()) };
    d.set_sync_cursor(&c).unwrap();
    assert_eq!(d.sync_cursor().unwrap(), c);
    drop(d);
    let d = open_with(dir.path(), &clock);
    assert_eq!(d.sync_cursor().unwrap(), c, "kept across a reopen");
    let reset = edetail_core::SyncCursor { hub_device_id: Some("d2".into()), cursor: None };
    d.set_sync_cursor(&reset).unwrap();
    assert_eq!(d.sync_cursor().unwrap(), reset);
}

/// The core records its own events as the event contract's typed payloads; the JSON written is
/// what the hub and older devices know, field for field (a `None` that the payload type skips,
/// `call_started.location`, is left out rather than written as null; the hub reads neither).
#[test]
fn the_core_records_its_events_with_the_wire_payloads() {
    let tmp = tempfile::tempdir().unwrap();
    let c = clock();
    let d = open_with(tmp.path(), &c);
    d.install_zip(&write_zip(tmp.path(), "deck.zip", &deck(), true)).unwrap();
    let version = deck().manifest.version;
    let call = start(&d, "hcp-1");
    c.advance(Duration::from_millis(1500));
    d.calls().enter_slide(&call, "efficacy", NavSource::Swipe, true).unwrap();
    d.calls().app_background().unwrap();
    c.advance(Duration::from_secs(60));
    d.calls().app_foreground().unwrap();
    c.advance(Duration::from_secs(4));
    d.calls().react(&call, Reaction::Positive).unwrap();
    d.calls().track(&call, "chart_toggle", json!({"series": "hba1c"})).unwrap();
    d.calls().answer(&call, "q-dosing", &["once-daily".to_string()], None).unwrap();
    d.calls().note(&call, "asked about renal dosing").unwrap();
    d.calls().follow_up(&call, "dosing", Some("send the leaflet")).unwrap();
    d.calls().advocacy(&call, AdvocacyAction::ReferredColleague).unwrap();
    d.calls().end_call(&call).unwrap();

    let got: Vec<(String, Value)> = d.outbox().for_call(&call).unwrap().into_iter().map(|e| (e.kind, e.payload)).collect();
    let want = vec![
        (
            "call_started",
            json!({"rep_id": "rep-1", "hcp_id": "hcp-1", "channel": "face_to_face", "bundle_id": "com.example.sample",
                   "bundle_version": version, "plan_id": null}),
        ),
        ("slide_enter", json!({"slide": "intro", "presentation": "main", "source": "start", "hcp_led": false, "bundle_version": version})),
        ("slide_exit", json!({"slide": "intro", "presentation": "main", "dwell_ms": 1500, "closed_by": "navigation"})),
        (
            "slide_enter",
            json!({"slide": "efficacy", "presentation": "main", "source": "swipe", "hcp_led": true, "bundle_version": version}),
        ),
        ("app_background", json!({"slide": "efficacy"})),
        ("app_foreground", json!({"slide": "efficacy"})),
        ("reaction", json!({"slide": "efficacy", "value": "positive"})),
        ("custom", json!({"slide": "efficacy", "event": "chart_toggle", "data": {"series": "hba1c"}})),
        ("survey_answer", json!({"slide": "efficacy", "question": "q-dosing", "answers": ["once-daily"], "text": null})),
        ("note", json!({"text": "asked about renal dosing"})),
        ("follow_up_request", json!({"slide": "efficacy", "topic": "dosing", "note": "send the leaflet"})),
        ("advocacy", json!({"slide": "efficacy", "action": "referred_colleague"})),
        ("slide_exit", json!({"slide": "efficacy", "presentation": "main", "dwell_ms": 4000, "closed_by": "call_end"})),
        ("call_ended", json!({"duration_ms": 65_500})),
    ];
    let want: Vec<(String, Value)> = want.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(got, want);

    // A call cut off by a crash is closed at its last heartbeat.
    let cut = start(&d, "hcp-2");
    c.advance(Duration::from_secs(3));
    d.calls().heartbeat().unwrap();
    c.advance(Duration::from_secs(30));
    drop(d);
    let d = open_with(tmp.path(), &c);
    let events = d.outbox().for_call(&cut).unwrap();
    let last: Vec<(&str, &Value)> = events.iter().rev().take(2).map(|e| (e.kind.as_str(), &e.payload)).collect();
    assert_eq!(
        last,
        vec![
            ("call_interrupted", &json!({"last_heartbeat_at": "2026-11-24T09:01:08.500Z"})),
            ("slide_exit", &json!({"slide": "intro", "presentation": "main", "dwell_ms": 3000, "closed_by": "recovery"})),
        ]
    );
}
