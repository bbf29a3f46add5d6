//! Packing authoring folders: determinism, compression choice, source-manifest rules, signing,
//! and manifest round trips (including unknown fields).

use std::fs;
use std::io::Cursor;
use std::path::Path;

use edetail_bundle::pack::{pack_dir, read_source_manifest};
use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::writer::resign;
use edetail_bundle::{BundleArchive, Error, Manifest, ReadOptions, SecretKey, SignatureStatus, check_path};
use proptest::prelude::*;

fn write_source(dir: &Path) {
    let b = SampleBundle::new();
    for (p, bytes) in &b.files {
        let f = dir.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, bytes).unwrap();
    }
    fs::create_dir_all(dir.join("media")).unwrap();
    fs::write(dir.join("media/clip.mp4"), vec![7u8; 50_000]).unwrap();
    fs::write(dir.join(".DS_Store"), b"junk").unwrap();
    fs::create_dir_all(dir.join("__MACOSX")).unwrap();
    fs::write(dir.join("__MACOSX/._x"), b"junk").unwrap();
    let mut v = serde_json::to_value(&b.manifest).unwrap();
    v.as_object_mut().unwrap().remove("files");
    v.as_object_mut().unwrap().remove("format_version");
    v["slides"][0]["sub_presentation"] = serde_json::Value::Null; // nulls mean "absent"
    fs::write(dir.join("edetail.json"), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn packing_is_deterministic_and_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_source(&a);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write_source(&b); // same content, different mtimes and inode order
    let (za, zb) = (tmp.path().join("a.zip"), tmp.path().join("b.zip"));
    let key = SecretKey::from_seed(&[5; 32]);
    let m = pack_dir(&a, &za, Some(&key), &mut |_| {}).unwrap();
    pack_dir(&b, &zb, Some(&key), &mut |_| {}).unwrap();
    assert_eq!(fs::read(&za).unwrap(), fs::read(&zb).unwrap(), "same folder must give the same bytes");

    assert!(!m.files.keys().any(|p| p.as_str().contains("DS_Store") || p.as_str().contains("MACOSX")));
    assert_eq!(m.files.len(), 6);
    let report = check_path(&za, &ReadOptions::signed_by(vec![key.public()]), &mut |_| {}).unwrap();
    assert!(report.is_ok(), "{:#?}", report.problems);
    assert_eq!(report.signature, SignatureStatus::Verified { key_id: key.public().key_id() });

    // Media is stored, text deflated.
    let mut z = zip::ZipArchive::new(fs::File::open(&za).unwrap()).unwrap();
    assert_eq!(z.by_name("media/clip.mp4").unwrap().compression(), zip::CompressionMethod::Stored);
    assert_eq!(z.by_name("shared/deck.css").unwrap().compression(), zip::CompressionMethod::Deflated);
    assert_eq!(m.files.get(&"media/clip.mp4".parse().unwrap()).unwrap().mime, "video/mp4");
}

#[test]
fn source_manifest_rules() {
    let tmp = tempfile::tempdir().unwrap();
    write_source(tmp.path());
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(tmp.path().join("edetail.json")).unwrap()).unwrap();
    v["files"] = serde_json::json!({});
    fs::write(tmp.path().join("edetail.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    let e = read_source_manifest(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("\"files\"") && e.contains("computed"), "{e}");

    fs::write(tmp.path().join("edetail.json"), b"{ nope").unwrap();
    let e = read_source_manifest(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("edetail.json") && e.contains("not valid JSON"), "{e}");
}

#[test]
fn packing_refuses_broken_decks_with_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    write_source(tmp.path());
    fs::remove_file(tmp.path().join("slides/intro/thumb.png")).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(tmp.path().join("edetail.json")).unwrap()).unwrap();
    v["presentations"][0]["slides"].as_array_mut().unwrap().push("missing-slide".into());
    fs::write(tmp.path().join("edetail.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    let out = tmp.path().join("out.zip");
    let Err(Error::Rejected(p)) = pack_dir(tmp.path(), &out, None, &mut |_| {}) else { panic!("packed a broken deck") };
    let text = p.0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n");
    assert!(text.contains("thumb.png") && text.contains("missing-slide"), "{text}");
    assert!(!out.exists(), "no output on failure");
}

#[cfg(unix)]
#[test]
fn packing_refuses_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    write_source(tmp.path());
    std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("shared/passwd")).unwrap();
    let e = pack_dir(tmp.path(), &tmp.path().join("o.zip"), None, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("symbolic link") && e.contains("passwd"), "{e}");
}

#[test]
fn resigning_keeps_every_other_entry_and_is_deterministic() {
    let b = SampleBundle::new();
    let unsigned = b.zip(None);
    let key = SecretKey::from_seed(&[6; 32]);
    let s1 = resign(Cursor::new(&unsigned), Cursor::new(Vec::new()), &key).unwrap().into_inner();
    let s2 = resign(Cursor::new(&s1), Cursor::new(Vec::new()), &key).unwrap().into_inner();
    assert_eq!(s1, s2, "re-signing a signed bundle with the same key is a no-op");
    let a = BundleArchive::open(Cursor::new(s1), &ReadOptions::signed_by(vec![key.public()])).unwrap();
    assert_eq!(a.manifest_bytes(), b.computed_manifest().to_bytes().as_slice());
}

#[test]
fn newer_minor_versions_keep_unknown_fields() {
    let b = SampleBundle::new();
    let mut v = serde_json::to_value(b.computed_manifest()).unwrap();
    v["format_version"] = "1.7".into();
    v["audience"] = serde_json::json!({"specialty": "cardiology"});
    v["slides"][0]["voiceover"] = "vo/intro.m4a".into();
    v["presentations"][0]["kiosk"] = true.into();
    let bytes = serde_json::to_vec(&v).unwrap();
    let m = Manifest::from_slice(&bytes).unwrap();
    assert_eq!(m.extra["audience"]["specialty"], "cardiology");
    let again: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
    assert_eq!(again["slides"][0]["voiceover"], "vo/intro.m4a");
    assert_eq!(again["presentations"][0]["kiosk"], true);
    let z = b.raw_with_manifest(&bytes, None).build();
    assert!(edetail_bundle::check(Cursor::new(z), &ReadOptions::allow_unsigned(), &mut |_| {}).is_ok());
}

fn arb_manifest() -> impl Strategy<Value = Manifest> {
    let ids = proptest::collection::btree_set("[a-z][a-z0-9-]{0,10}", 1..8);
    (ids, 1u64..1_000_000, "[A-Za-z][A-Za-z ]{0,29}", proptest::collection::vec("[a-z]{3,10}", 0..4), any::<bool>()).prop_map(
        |(ids, version, title, topics, hidden)| {
            let mut b = SampleBundle::new();
            b.manifest.version = version;
            b.manifest.title = title.clone();
            let template = b.manifest.slides[0].clone();
            b.manifest.slides = ids
                .iter()
                .map(|id| {
                    let mut s = template.clone();
                    s.id = id.clone();
                    s.title = format!("{title} {id}");
                    s.topics = topics.clone();
                    s.hidden = hidden;
                    s.extra.insert("x-note".into(), serde_json::json!({"n": id.len()}));
                    s
                })
                .collect();
            b.manifest.presentations.truncate(1);
            b.manifest.presentations[0].slides = ids.into_iter().collect();
            b.computed_manifest()
        },
    )
}

proptest! {
    #[test]
    fn manifest_round_trips_through_bytes(m in arb_manifest()) {
        let bytes = m.to_bytes();
        let back = Manifest::from_slice(&bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.to_bytes(), bytes);
        prop_assert!(edetail_bundle::validate::manifest(&back).iter().all(|p| !p.is_error()));
    }
}

/// Issue 16: `bundle check` warns for each adoption step no visible slide serves; declared
/// `steps` win over topics; a hidden slide or one only in a hidden presentation does not cover a
/// step; warnings never make a deck invalid.
#[test]
fn check_warns_for_each_adoption_step_no_visible_slide_serves() {
    use edetail_bundle::manifest::Step;
    use edetail_bundle::problem::ProblemKind;
    let uncovered = |m: &Manifest| -> Vec<String> {
        edetail_bundle::validate::manifest(m)
            .into_iter()
            .filter_map(|p| match &p.kind {
                ProblemKind::StepUncovered { step } => {
                    assert!(!p.is_error(), "a warning, not an error");
                    Some(step.clone())
                }
                _ => None,
            })
            .collect()
    };
    // Sample: intro (awareness -> aware), efficacy (efficacy -> educated), pi hidden.
    let mut m = SampleBundle::new().computed_manifest();
    assert_eq!(uncovered(&m), ["convinced", "advocate"]);
    // Declared steps replace the topics' defaults.
    m.slides[1].steps = vec![Step::Convinced, Step::Advocate];
    assert_eq!(uncovered(&m), ["educated"]);
    // Only a hidden slide serves aware: uncovered; a slide of a hidden presentation neither.
    m.slides[0].hidden = true;
    m.slides[2].steps = vec![Step::Aware, Step::Educated];
    assert_eq!(uncovered(&m), ["aware", "educated"]);
    let text = edetail_bundle::validate::manifest(&m).iter().map(|p| p.message.clone()).collect::<Vec<_>>().join("\n");
    assert!(text.contains("no visible slide serves the adoption step \"aware\""), "{text}");
}
