//! Encryption at rest (SQLCipher, docs/adr/0012-encryption-at-rest.md): the database file is
//! unreadable without the key and holds no plaintext personal data; wrong, missing and
//! unexpected keys are clear errors that change nothing; the right key keeps everything.

use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_core::{Channel, DbKey, Device, DeviceConfig, Error, ManualClock, StartCall};

const HCP: &str = "HCP-MARKER-7f3a9c";
const NOTE: &str = "NOTE-MARKER-asked about renal dosing";
const ANSWER: &str = "ANSWER-MARKER-prefers once daily";

fn signing_key() -> SecretKey {
    SecretKey::from_seed(&[11; 32])
}

fn db_key(seed: u8) -> DbKey {
    DbKey::new([seed; 32])
}

fn config(key: Option<DbKey>) -> DeviceConfig {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().unwrap()));
    DeviceConfig { trusted_keys: vec![signing_key().public()], clock, db_key: key, ..DeviceConfig::new("rep-1") }
}

/// Installs the sample bundle and records a call with an HCP, a note and a survey answer.
fn record_call(d: &Device, tmp: &Path) -> String {
    let zip = tmp.join("deck.zip");
    std::fs::write(&zip, SampleBundle::new().zip(Some(&signing_key()))).unwrap();
    d.install_zip(&zip).unwrap();
    let bundle_id = SampleBundle::new().manifest.id.clone();
    let (call, _) = d
        .start_call(StartCall { hcp_id: Some(HCP.into()), channel: Channel::FaceToFace, bundle_id, presentation_id: None, location: None })
        .unwrap();
    d.calls().note(&call, NOTE).unwrap();
    d.calls().answer(&call, "q1", &["a".into()], Some(ANSWER)).unwrap();
    d.calls().end_call(&call).unwrap();
    call
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every file SQLite keeps for the database (main file, WAL, shared memory).
fn db_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["edetail.sqlite3", "edetail.sqlite3-wal", "edetail.sqlite3-shm"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            all.extend(b);
        }
    }
    all
}

#[test]
fn encrypted_database_is_unreadable_without_the_key_and_holds_no_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = Device::open(&dir, config(Some(db_key(1)))).unwrap();
    let call = record_call(&d, tmp.path());
    // While open (data partly in the WAL) and after close (checkpointed).
    let live = db_bytes(&dir);
    assert!(!live.is_empty());
    for m in [HCP, NOTE, ANSWER, "call_started", "survey_answer", "SQLite format 3"] {
        assert!(!contains(&live, m), "{m:?} in plaintext in the open database files");
    }
    drop(d);
    let closed = db_bytes(&dir);
    for m in [HCP, NOTE, ANSWER, &call] {
        assert!(!contains(&closed, m), "{m:?} in plaintext in the closed database files");
    }
    // A plain SQLite connection cannot read it.
    let plain = rusqlite::Connection::open(dir.join("edetail.sqlite3")).unwrap();
    let err = plain.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0)).unwrap_err();
    assert!(err.to_string().contains("file is not a database"), "{err}");
}

/// The same scenario without a key stores plaintext: the check above is not vacuous.
#[test]
fn plain_database_control_holds_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = Device::open(&dir, config(None)).unwrap();
    record_call(&d, tmp.path());
    drop(d);
    let bytes = db_bytes(&dir);
    assert!(contains(&bytes, HCP) && contains(&bytes, NOTE) && contains(&bytes, "SQLite format 3"));
}

#[test]
fn wrong_missing_and_unexpected_keys_are_clear_errors_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let call = {
        let d = Device::open(&dir, config(Some(db_key(1)))).unwrap();
        record_call(&d, tmp.path())
    };
    let before = db_bytes(&dir);
    assert!(!dir.join("edetail.sqlite3-wal").exists(), "a clean close checkpoints the WAL away");
    let wrong = Device::open(&dir, config(Some(db_key(2)))).unwrap_err();
    assert!(matches!(wrong, Error::WrongKey(_)), "{wrong:?}");
    assert!(wrong.to_string().contains("wrong key"), "{wrong}");
    let missing = Device::open(&dir, config(None)).unwrap_err();
    assert!(matches!(missing, Error::KeyRequired(_)), "{missing:?}");
    assert!(db_bytes(&dir) == before, "failed opens changed the database files");

    // Reopen with the right key: everything is still there and recording goes on.
    let d = Device::open(&dir, config(Some(db_key(1)))).unwrap();
    let c = d.calls().get(&call).unwrap();
    assert_eq!(c.hcp_id.as_deref(), Some(HCP));
    let kinds: Vec<String> = d.outbox().for_call(&call).unwrap().into_iter().map(|e| e.kind).collect();
    assert!(kinds.iter().any(|k| k == "note") && kinds.iter().any(|k| k == "survey_answer"), "{kinds:?}");
    assert_eq!(d.integrity_check().unwrap(), "ok");
    drop(d);

    // A plain database opened with a key: an error, not a silent migration.
    let plain_dir = tmp.path().join("plain");
    drop(Device::open(&plain_dir, config(None)).unwrap());
    let e = Device::open(&plain_dir, config(Some(db_key(1)))).unwrap_err();
    assert!(matches!(e, Error::NotEncrypted(_)), "{e:?}");
}

#[test]
fn the_key_never_shows_in_debug_output_or_errors() {
    let key = DbKey::new([0xAB; 32]);
    let cfg = config(Some(key.clone()));
    let shown = format!("{cfg:?} {key:?}");
    assert!(!shown.to_lowercase().contains("abab"), "{shown}");
    assert!(shown.contains("redacted"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    drop(Device::open(&dir, config(Some(db_key(1)))).unwrap());
    let e = Device::open(&dir, cfg).unwrap_err();
    assert!(!format!("{e} {e:?}").to_lowercase().contains("abab"));
    assert!(matches!(DbKey::from_slice(&[1; 31]), Err(Error::Invalid(_))));
}

#[test]
fn encrypt_existing_migrates_a_plain_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let call = {
        let d = Device::open(&dir, config(None)).unwrap();
        record_call(&d, tmp.path())
    };
    Device::encrypt_existing(&dir, &db_key(3)).unwrap();
    assert!(!contains(&db_bytes(&dir), NOTE));
    assert!(matches!(Device::open(&dir, config(None)), Err(Error::KeyRequired(_))));
    let d = Device::open(&dir, config(Some(db_key(3)))).unwrap();
    assert_eq!(d.calls().get(&call).unwrap().hcp_id.as_deref(), Some(HCP));
    assert_eq!(d.outbox().for_call(&call).unwrap().iter().filter(|e| e.kind == "note").count(), 1);
    assert_eq!(d.integrity_check().unwrap(), "ok");
    // Encrypting an already encrypted database is refused.
    drop(d);
    assert!(matches!(Device::encrypt_existing(&dir, &db_key(3)), Err(Error::KeyRequired(_))));
}
