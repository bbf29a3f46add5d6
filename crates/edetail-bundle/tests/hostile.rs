//! The hostile-zip corpus: one constructed archive per rejection rule. Each must be refused by
//! `BundleArchive::open` and reported by `check` with the specific problem and the entry name.

use std::io::{Cursor, Read};

use edetail_bundle::testkit::{RawEntry, RawZip, SampleBundle};
use edetail_bundle::{BundleArchive, BundlePath, Error, Limits, PathError, ProblemKind, ReadOptions, SecretKey, check};

fn opts() -> ReadOptions {
    ReadOptions::allow_unsigned()
}

fn check_bytes(zip: &[u8], o: &ReadOptions) -> edetail_bundle::CheckReport {
    check(Cursor::new(zip.to_vec()), o, &mut |_| {})
}

/// Asserts that `check` reports an error matching `pred` for `entry`, and that strict opening
/// plus full reading rejects the archive too.
#[track_caller]
fn assert_rejected(zip: &[u8], o: &ReadOptions, entry: Option<&str>, pred: impl Fn(&ProblemKind) -> bool) {
    let report = check_bytes(zip, o);
    assert!(!report.is_ok(), "check accepted a hostile archive");
    assert!(
        report.errors().any(|p| pred(&p.kind) && (entry.is_none() || p.entry.as_deref() == entry)),
        "expected problem for {entry:?} not found; got: {:#?}",
        report.problems
    );
    assert!(strict_read_fails(zip, o), "strict reading accepted a hostile archive");
}

fn strict_read_fails(zip: &[u8], o: &ReadOptions) -> bool {
    match BundleArchive::open(Cursor::new(zip.to_vec()), o) {
        Err(Error::Rejected(_)) => true,
        Err(other) => panic!("unexpected error kind: {other}"),
        Ok(mut a) => !a.verify_all(&mut |_| {}).is_empty(),
    }
}

#[test]
fn the_sample_bundle_is_valid() {
    let zip = SampleBundle::new().zip(None);
    let report = check_bytes(&zip, &opts());
    assert!(report.is_ok(), "{:#?}", report.problems);
    let mut a = BundleArchive::open(Cursor::new(zip), &opts()).unwrap();
    let css = a.read_file_to_vec(&BundlePath::parse("shared/deck.css").unwrap()).unwrap();
    assert!(css.starts_with(b"body{"));
}

fn with_extra_entry(e: RawEntry) -> Vec<u8> {
    SampleBundle::new().raw(None).push(e).build()
}

#[test]
fn unsafe_names_are_rejected_each_with_its_reason() {
    let cases: &[(&[u8], PathError)] = &[
        (b"../evil.html", PathError::Traversal),
        (b"slides/../../evil.html", PathError::Traversal),
        (b"/etc/passwd", PathError::Absolute),
        (b"C:/Windows/evil.dll", PathError::DrivePrefix("C:".into())),
        (b"slides\\evil.html", PathError::Backslash),
        (b"evil\0.html", PathError::ControlCharacter),
        (b"evil\x1b[2J.html", PathError::ControlCharacter),
        (b"evil\xff.html", PathError::NotUtf8),
    ];
    for (name, reason) in cases {
        let zip = with_extra_entry(RawEntry::stored(name, b"x"));
        let shown: String = String::from_utf8_lossy(name).chars().flat_map(char::escape_default).collect();
        assert_rejected(&zip, &opts(), Some(&shown), |k| k == &ProblemKind::UnsafePath { reason: reason.clone() });
    }
}

#[test]
fn symlink_entries_are_rejected() {
    let zip = with_extra_entry(RawEntry::symlink("slides/intro/link.html", "/etc/passwd"));
    assert_rejected(&zip, &opts(), Some("slides/intro/link.html"), |k| k == &ProblemKind::Symlink);
}

#[test]
fn duplicate_names_are_rejected_by_name() {
    let zip = with_extra_entry(RawEntry::stored("shared/deck.css", b"body{display:none}"));
    assert_rejected(&zip, &opts(), Some("shared/deck.css"), |k| k == &ProblemKind::DuplicateEntry { count: 2 });
}

#[test]
fn case_insensitive_duplicates_are_rejected() {
    let zip = with_extra_entry(RawEntry::stored("shared/Deck.css", b"x"));
    assert_rejected(
        &zip,
        &opts(),
        Some("shared/Deck.css"),
        |k| matches!(k, ProblemKind::CaseCollision { other } if other == "shared/deck.css"),
    );
}

#[test]
fn files_not_in_the_manifest_are_rejected() {
    let zip = with_extra_entry(RawEntry::stored("slides/intro/tracker.js", b"steal()"));
    assert_rejected(&zip, &opts(), Some("slides/intro/tracker.js"), |k| k == &ProblemKind::NotInManifest);
}

#[test]
fn listed_files_missing_from_the_archive_are_rejected() {
    let b = SampleBundle::new();
    let manifest = b.computed_manifest().to_bytes();
    let mut without = b.clone();
    without.files.remove("shared/deck.css");
    let zip = without.raw_with_manifest(&manifest, None).build();
    assert_rejected(&zip, &opts(), Some("shared/deck.css"), |k| k == &ProblemKind::MissingFile);
}

#[test]
fn size_and_hash_mismatches_are_rejected() {
    let b = SampleBundle::new();
    let manifest = b.computed_manifest().to_bytes();
    let mut changed = b.clone();
    changed.files.insert("shared/deck.css".into(), b"body{font-family:system-ui;margin:9}h1{color:#a01}".to_vec());
    let zip = changed.raw_with_manifest(&manifest, None).build();
    assert_rejected(&zip, &opts(), Some("shared/deck.css"), |k| matches!(k, ProblemKind::HashMismatch { .. }));

    let mut longer = b.clone();
    longer.files.insert("shared/deck.css".into(), b"body{font-family:system-ui;margin:0}h1{color:#a01} /* more */".to_vec());
    let zip = longer.raw_with_manifest(&manifest, None).build();
    assert_rejected(&zip, &opts(), Some("shared/deck.css"), |k| matches!(k, ProblemKind::SizeMismatch { .. }));
}

#[test]
fn truncated_and_corrupt_archives_are_rejected() {
    let zip = SampleBundle::new().zip(None);
    for cut in [10, zip.len() / 2, zip.len() - 30] {
        assert_rejected(&zip[..cut], &opts(), None, |k| matches!(k, ProblemKind::CorruptArchive { .. }));
    }
    assert_rejected(b"this is not a zip at all", &opts(), None, |k| matches!(k, ProblemKind::CorruptArchive { .. }));

    // A flipped byte inside deflated data: the stream or its CRC fails.
    let mut raw = SampleBundle::new().raw(None);
    let e = raw.entries.iter_mut().find(|e| e.name == b"shared/deck.css").unwrap();
    let mid = e.payload.len() / 2;
    e.payload[mid] ^= 0x55;
    let zip = raw.build();
    assert_rejected(&zip, &opts(), Some("shared/deck.css"), |k| {
        matches!(k, ProblemKind::CorruptEntry { .. } | ProblemKind::HashMismatch { .. } | ProblemKind::SizeMismatch { .. })
    });
}

#[test]
fn local_header_name_differing_from_central_directory_is_rejected() {
    let mut e = RawEntry::stored("shared/ok.css", b"x");
    e.local_name = Some(b"../../evil.css".to_vec());
    let zip = with_extra_entry(e);
    assert_rejected(&zip, &opts(), None, |k| matches!(k, ProblemKind::CorruptArchive { .. }));
}

#[test]
fn encrypted_and_exotic_methods_are_rejected() {
    let mut e = RawEntry::stored("shared/secret.css", b"x");
    e.flags |= 1;
    assert_rejected(&with_extra_entry(e), &opts(), Some("shared/secret.css"), |k| k == &ProblemKind::Encrypted);
    let mut e = RawEntry::stored("shared/bz.css", b"x");
    e.method = 12; // bzip2
    assert_rejected(&with_extra_entry(e), &opts(), Some("shared/bz.css"), |k| {
        matches!(k, ProblemKind::UnsupportedCompression { .. } | ProblemKind::CorruptArchive { .. })
    });
}

/// A bundle whose single big file is `size` zero bytes, deflated, with honest headers.
fn bomb_bundle(size: usize) -> (SampleBundle, Vec<u8>) {
    let mut b = SampleBundle::new();
    b.files.insert("media/zeros.bin".into(), vec![0u8; size]);
    let zip = b.zip(None);
    (b, zip)
}

#[test]
fn decompression_bombs_are_refused_by_ratio_entry_and_total_limits() {
    let (_, zip) = bomb_bundle(8 * 1024 * 1024);
    // Ratio: 8 MiB of zeros deflates ~1000x.
    assert_rejected(&zip, &opts(), Some("media/zeros.bin"), |k| matches!(k, ProblemKind::CompressionRatio { .. }));
    let relaxed = Limits { max_ratio: 100_000, ..Limits::default() };
    let o = ReadOptions { limits: relaxed, ..opts() };
    assert!(check_bytes(&zip, &o).is_ok());
    // Per-entry size.
    let o = ReadOptions { limits: Limits { max_entry_size: 1024 * 1024, ..relaxed }, ..opts() };
    assert_rejected(&zip, &o, Some("media/zeros.bin"), |k| matches!(k, ProblemKind::EntryTooLarge { .. }));
    // Total size.
    let o = ReadOptions { limits: Limits { max_total_size: 4 * 1024 * 1024, ..relaxed }, ..opts() };
    assert_rejected(&zip, &o, None, |k| matches!(k, ProblemKind::TotalTooLarge { .. }));
    // Entry count.
    let o = ReadOptions { limits: Limits { max_entries: 3, ..relaxed }, ..opts() };
    assert_rejected(&zip, &o, None, |k| matches!(k, ProblemKind::TooManyEntries { .. }));
}

#[test]
fn lying_headers_are_caught_while_streaming() {
    // Headers (and manifest) claim 1 KiB; the deflate stream inflates to 64 MiB.
    let (b, _) = bomb_bundle(64 * 1024 * 1024);
    let mut small = b.clone();
    small.files.insert("media/zeros.bin".into(), vec![0u8; 1024]);
    let manifest = small.computed_manifest().to_bytes();
    let mut raw = b.raw_with_manifest(&manifest, None);
    let e = raw.entries.iter_mut().find(|e| e.name == b"media/zeros.bin").unwrap();
    e.uncompressed_size = 1024;
    e.crc32 = crc32fast::hash(&[0u8; 1024]);
    let zip = raw.build();
    let relaxed = ReadOptions { limits: Limits { max_ratio: u64::MAX / 2, ..Limits::default() }, ..opts() };
    let report = check_bytes(&zip, &relaxed);
    let p = report.errors().find(|p| p.entry.as_deref() == Some("media/zeros.bin")).expect("problem reported");
    let caught = match &p.kind {
        ProblemKind::SizeMismatch { expected: 1024, actual } => *actual < 2 * 1024 * 1024,
        ProblemKind::CorruptEntry { detail } => detail.contains("larger than its declared"),
        _ => false,
    };
    assert!(caught, "{p:?}");
    assert!(report.bytes_verified < 4 * 1024 * 1024, "stopped early: {}", report.bytes_verified);
    // With default limits the ratio ceiling stops it too.
    assert!(!check_bytes(&zip, &opts()).is_ok());
}

#[test]
fn overlapping_entries_are_rejected() {
    // Two central-directory entries pointing at the same bytes (the "overlapped" zip bomb).
    let zip = SampleBundle::new().zip(None);
    let mut bytes = zip.clone();
    // Duplicate the last central entry under a new name with the same local offset.
    let eocd = bytes.len() - 22;
    let cd_size = u32::from_le_bytes(bytes[eocd + 12..eocd + 16].try_into().unwrap()) as usize;
    let cd_off = u32::from_le_bytes(bytes[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    let first_len = 46 + u16::from_le_bytes(bytes[cd_off + 28..cd_off + 30].try_into().unwrap()) as usize;
    let mut dup = bytes[cd_off..cd_off + first_len].to_vec();
    let last = dup.len() - 1;
    dup[last] = b'X'; // same length name, different last character
    bytes.splice(cd_off + cd_size..cd_off + cd_size, dup.clone());
    let eocd = bytes.len() - 22;
    let count = u16::from_le_bytes(bytes[eocd + 10..eocd + 12].try_into().unwrap()) + 1;
    bytes[eocd + 8..eocd + 10].copy_from_slice(&count.to_le_bytes());
    bytes[eocd + 10..eocd + 12].copy_from_slice(&count.to_le_bytes());
    bytes[eocd + 12..eocd + 16].copy_from_slice(&((cd_size + dup.len()) as u32).to_le_bytes());
    assert_rejected(&bytes, &opts(), None, |k| matches!(k, ProblemKind::OverlappingEntries | ProblemKind::CorruptArchive { .. }));
}

#[test]
fn manifest_problems_are_rejected() {
    let b = SampleBundle::new();
    let no_manifest = {
        let mut z = RawZip::new();
        for (p, d) in &b.files {
            z = z.stored(p, d);
        }
        z.build()
    };
    assert_rejected(&no_manifest, &opts(), Some("manifest.json"), |k| k == &ProblemKind::ManifestMissing);
    let bad_json = b.raw_with_manifest(b"{ not json", None).build();
    assert_rejected(&bad_json, &opts(), Some("manifest.json"), |k| matches!(k, ProblemKind::ManifestInvalid { .. }));
    let mut m: serde_json::Value = serde_json::from_slice(&b.computed_manifest().to_bytes()).unwrap();
    m["format_version"] = "2.0".into();
    let newer = b.raw_with_manifest(&serde_json::to_vec(&m).unwrap(), None).build();
    assert_rejected(
        &newer,
        &opts(),
        Some("manifest.json"),
        |k| matches!(k, ProblemKind::UnsupportedFormat { detail } if detail.contains("2.0") && detail.contains("update edetail")),
    );
}

#[test]
fn slide_references_are_checked() {
    let mut b = SampleBundle::new();
    b.files.remove("slides/intro/thumb.png");
    b.files.remove("slides/efficacy/index.html");
    b.manifest.presentations[0].slides.push("ghost".into());
    b.manifest.slides[0].sub_presentation = Some("nowhere".into());
    let report = check_bytes(&b.zip(None), &opts());
    let kinds: Vec<_> = report.errors().map(|p| &p.kind).collect();
    assert!(kinds.iter().any(|k| matches!(k, ProblemKind::SlideFileMissing { field, .. } if field == "thumbnail")), "{kinds:#?}");
    assert!(kinds.iter().any(|k| matches!(k, ProblemKind::SlideFileMissing { field, .. } if field == "entry")), "{kinds:#?}");
    assert!(kinds.iter().any(|k| matches!(k, ProblemKind::UnknownSlide { slide, .. } if slide == "ghost")), "{kinds:#?}");
    assert!(
        kinds.iter().any(|k| matches!(k, ProblemKind::UnknownPresentation { presentation, .. } if presentation == "nowhere")),
        "{kinds:#?}"
    );
    // check reports every problem, not only the first.
    assert!(report.errors().count() >= 4);
}

#[test]
fn signatures_are_enforced() {
    let key = SecretKey::from_seed(&[1; 32]);
    let other = SecretKey::from_seed(&[2; 32]);
    let b = SampleBundle::new();
    let required = ReadOptions::signed_by(vec![key.public()]);

    let signed = b.zip(Some(&key));
    assert!(check_bytes(&signed, &required).is_ok());
    let a = BundleArchive::open(Cursor::new(signed.clone()), &required).unwrap();
    assert!(matches!(a.signature(), edetail_bundle::SignatureStatus::Verified { .. }));

    assert_rejected(&b.zip(None), &required, Some("manifest.sig"), |k| k == &ProblemKind::Unsigned);
    assert_rejected(&b.zip(Some(&other)), &required, Some("manifest.sig"), |k| matches!(k, ProblemKind::UnknownSigningKey { .. }));
    // Tampered manifest with the original signature: the version is bumped after signing.
    let mut m = b.computed_manifest();
    let sig = key.sign_manifest(&m.to_bytes());
    m.version = 99;
    let mut raw = b.raw_with_manifest(&m.to_bytes(), None);
    raw = raw.stored("manifest.sig", &sig);
    assert_rejected(&raw.build(), &required, Some("manifest.sig"), |k| k == &ProblemKind::BadSignature);
    // A bad signature is an error even when unsigned bundles are allowed.
    let lax = ReadOptions { require_signature: false, ..required.clone() };
    assert_rejected(&raw.build(), &lax, Some("manifest.sig"), |k| k == &ProblemKind::BadSignature);
}

#[test]
fn strict_open_does_not_parse_a_manifest_whose_signature_fails() {
    // The manifest is garbage, but the signature check comes first and is what is reported.
    let key = SecretKey::from_seed(&[1; 32]);
    let b = SampleBundle::new();
    let zip = b.raw_with_manifest(b"{ garbage", None).stored("manifest.sig", &SecretKey::from_seed(&[3; 32]).sign_manifest(b"x")).build();
    let Err(Error::Rejected(p)) = BundleArchive::open(Cursor::new(zip), &ReadOptions::signed_by(vec![key.public()])) else {
        panic!("accepted")
    };
    assert!(p.0.iter().all(|p| !matches!(p.kind, ProblemKind::ManifestInvalid { .. })), "{p:?}");
    assert!(p.0.iter().any(|p| matches!(p.kind, ProblemKind::UnknownSigningKey { .. })));
}

#[test]
fn read_file_fails_on_tampered_content_before_eof_is_accepted() {
    let b = SampleBundle::new();
    let manifest = b.computed_manifest().to_bytes();
    let mut changed = b.clone();
    changed.files.insert("slides/pi/index.html".into(), b"<!doctype html><title>PI</title><p>Prescribing informatioN</p>".to_vec());
    let zip = changed.raw_with_manifest(&manifest, None).build();
    // Structure is fine, so open succeeds; the content check happens while reading.
    let mut a = BundleArchive::open(Cursor::new(zip), &opts()).unwrap();
    let mut r = a.read_file(&BundlePath::parse("slides/pi/index.html").unwrap()).unwrap();
    let mut out = Vec::new();
    let e = r.read_to_end(&mut out).unwrap_err();
    let p = edetail_bundle::problem_of(&e).expect("problem inside the io error");
    assert!(matches!(p.kind, ProblemKind::HashMismatch { .. }));
}

#[test]
fn detached_manifests_are_verified_like_bundles() {
    let key = SecretKey::from_seed(&[1; 32]);
    let bytes = SampleBundle::new().computed_manifest().to_bytes();
    let sig = key.sign_manifest(&bytes);
    let required = ReadOptions::signed_by(vec![key.public()]);
    let v = edetail_bundle::verify_detached_manifest(&bytes, Some(&sig), &required).unwrap();
    assert_eq!(v.manifest.id, "com.example.sample");
    let mut tampered = bytes.clone();
    let pos = tampered.iter().position(|b| *b == b'1').unwrap();
    tampered[pos] = b'2';
    assert!(matches!(
        edetail_bundle::verify_detached_manifest(&tampered, Some(&sig), &required),
        Err(Error::Rejected(p)) if p.0.iter().any(|p| p.kind == ProblemKind::BadSignature)
    ));
    assert!(edetail_bundle::verify_detached_manifest(&bytes, None, &required).is_err());
    assert!(edetail_bundle::verify_detached_manifest(&bytes, None, &opts()).is_ok());
}
