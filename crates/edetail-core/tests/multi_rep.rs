//! Several reps on one tablet: each rep's data directory is separate and keyed with that rep's
//! own key, so nothing of one rep's calls is readable through another rep's session.

use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_core::{Channel, DbKey, Device, DeviceConfig, Error, ManualClock, StartCall};

fn signing_key() -> SecretKey {
    SecretKey::from_seed(&[11; 32])
}

fn config(rep: &str, key: Option<DbKey>) -> DeviceConfig {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().unwrap()));
    DeviceConfig { trusted_keys: vec![signing_key().public()], clock, db_key: key, ..DeviceConfig::new(rep) }
}

fn record_call(d: &Device, tmp: &Path, hcp: &str, note: &str) -> String {
    let zip = tmp.join(format!("deck-{hcp}.zip"));
    std::fs::write(&zip, SampleBundle::new().zip(Some(&signing_key()))).unwrap();
    d.install_zip(&zip).unwrap();
    let bundle_id = SampleBundle::new().manifest.id.clone();
    let (call, _) = d
        .start_call(StartCall { hcp_id: Some(hcp.into()), channel: Channel::FaceToFace, bundle_id, presentation_id: None, location: None })
        .unwrap();
    d.calls().note(&call, note).unwrap();
    d.calls().end_call(&call).unwrap();
    call
}

fn file_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("edetail.sqlite3") {
            all.extend(std::fs::read(e.path()).unwrap());
        }
    }
    all
}

#[test]
fn one_reps_session_cannot_read_another_reps_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("rep-a"), tmp.path().join("rep-b"));
    let (key_a, key_b) = (DbKey::new([1; 32]), DbKey::new([2; 32]));

    let a = Device::open(&dir_a, config("rep-a", Some(key_a.clone()))).unwrap();
    let b = Device::open(&dir_b, config("rep-b", Some(key_b.clone()))).unwrap();
    let call_a = record_call(&a, tmp.path(), "hcp-of-a", "note-of-rep-a");
    let call_b = record_call(&b, tmp.path(), "hcp-of-b", "note-of-rep-b");

    // Each session sees only its own rep's calls and events.
    let ids = |d: &Device| d.calls().list().unwrap().into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(&a), vec![call_a.clone()]);
    assert_eq!(ids(&b), vec![call_b.clone()]);
    assert!(a.calls().get(&call_b).is_err(), "rep A's session cannot look up rep B's call");
    assert!(a.outbox().for_call(&call_b).unwrap().is_empty());
    drop(b);

    // Rep A's key does not open rep B's directory, nor does no key; nothing is changed by trying.
    let before = file_bytes(&dir_b);
    assert!(matches!(Device::open(&dir_b, config("rep-a", Some(key_a))), Err(Error::WrongKey(_))));
    assert!(matches!(Device::open(&dir_b, config("rep-a", None)), Err(Error::KeyRequired(_))));
    assert_eq!(file_bytes(&dir_b), before, "failed opens write nothing");
    for marker in ["hcp-of-b", "note-of-rep-b"] {
        assert!(!before.windows(marker.len()).any(|w| w == marker.as_bytes()), "{marker} readable in rep B's files");
    }

    // Rep B, with rep B's key, still has everything.
    let b = Device::open(&dir_b, config("rep-b", Some(key_b))).unwrap();
    assert_eq!(ids(&b), vec![call_b]);
}
