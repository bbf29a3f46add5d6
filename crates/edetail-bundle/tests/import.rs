//! Importer tests over the sample content in `presentations/import-samples/`: zips are built
//! from the plain source folders at test time, imported, and the bundles checked like a device
//! would check them.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use edetail_bundle::import::agnitio::{AgnitioOptions, import_agnitio};
use edetail_bundle::import::compat::Support;
use edetail_bundle::import::oce::{OceOptions, import_oce};
use edetail_bundle::import::veeva::{VeevaOptions, import_veeva};
use edetail_bundle::import::{ImportMeta, ImportReport};
use edetail_bundle::manifest::Step;
use edetail_bundle::{Bridge, BundleArchive, BundlePath, Gesture, Manifest, ReadOptions, check_path};
use zip::write::SimpleFileOptions;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../presentations/import-samples")
}

fn date(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single().expect("valid date")
}

/// Every file under `dir`, as (relative path with `/`, absolute path), sorted.
fn files_under(dir: &Path) -> Vec<(String, PathBuf)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
        let mut entries: Vec<_> = fs::read_dir(dir).expect("read_dir").map(|e| e.expect("entry").path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
                out.push((rel, p));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

fn zip_options() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644)
}

/// Writes a zip of the given (name, bytes) entries, in order, with fixed timestamps.
fn zip_entries(dest: &Path, entries: &[(String, Vec<u8>)]) -> PathBuf {
    let mut w = zip::ZipWriter::new(fs::File::create(dest).expect("create zip"));
    for (name, bytes) in entries {
        w.start_file(name.as_str(), zip_options()).expect("start_file");
        w.write_all(bytes).expect("write");
    }
    w.finish().expect("finish zip");
    dest.to_path_buf()
}

/// Zips a folder deterministically (sorted, fixed timestamps), every entry under `prefix`.
fn zip_folder(src: &Path, dest: &Path, prefix: &str) -> PathBuf {
    let entries: Vec<(String, Vec<u8>)> =
        files_under(src).into_iter().map(|(rel, p)| (format!("{prefix}{rel}"), fs::read(p).expect("read"))).collect();
    zip_entries(dest, &entries)
}

/// The legacy sample as Veeva zips: key messages inside their `<km>/` folder (CZ_PI_01
/// without it), the shared resource with its content at the root.
fn legacy_zips(dir: &Path) -> PathBuf {
    let src = samples().join("veeva-legacy");
    for km in ["CZ_Home_01", "CZ_Efficacy_01", "CZ_Safety_01"] {
        zip_folder(&src.join(km), &dir.join(format!("{km}.zip")), &format!("{km}/"));
    }
    zip_folder(&src.join("CZ_PI_01"), &dir.join("CZ_PI_01.zip"), "");
    zip_folder(&src.join("shared"), &dir.join("shared.zip"), "");
    dir.to_path_buf()
}

/// Bundle metadata as the command line would give it.
fn cli_meta() -> ImportMeta {
    ImportMeta {
        id: Some("com.cardiozen.import-test".into()),
        product: Some("Cardiozen".into()),
        locale: Some("en-GB".into()),
        valid_until: Some(date(2027, 12, 31)),
        approval_code: Some("CZ-TEST-0001".into()),
        ..Default::default()
    }
}

/// Checks a bundle as the runtime would (unsigned allowed) and returns its manifest.
fn assert_valid_bundle(path: &Path) -> Manifest {
    let report = check_path(path, &ReadOptions::allow_unsigned(), &mut |_| {}).expect("bundle opens");
    let errors: Vec<String> = report.errors().map(|p| p.to_string()).collect();
    assert!(errors.is_empty(), "bundle has errors: {errors:#?}");
    report.manifest.expect("manifest")
}

fn presentation_slides(m: &Manifest, id: &str) -> Vec<String> {
    m.presentation(id).unwrap_or_else(|| panic!("presentation {id} in {:?}", m.presentations)).slides.clone()
}

/// `src`/`href` values in HTML that start with `prefix`.
fn html_refs(html: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            if let Some(end) = rest.find('"')
                && rest[..end].starts_with(prefix)
            {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

/// Asserts that every `prefix` reference of every slide entry page resolves to a bundle file,
/// and that there is at least one.
fn assert_refs_resolve(bundle: &Path, prefix: &str) {
    let mut archive = BundleArchive::open_path(bundle, &ReadOptions::allow_unsigned()).expect("open");
    let m = archive.manifest().clone();
    let mut checked = 0;
    for s in &m.slides {
        let html = String::from_utf8(archive.read_file_to_vec(&s.entry).expect("entry readable")).expect("utf-8");
        for r in html_refs(&html, prefix) {
            let target = s.entry.join_relative(&r).unwrap_or_else(|| panic!("{r} leaves the bundle"));
            assert!(m.files.contains_key(&target), "{} references {r} -> {target}, not in the bundle", s.entry);
            checked += 1;
        }
    }
    assert!(checked > 0, "no {prefix} references found");
}

fn unmapped_has(report: &ImportReport, source_part: &str, reason_part: &str) -> bool {
    report.unmapped.iter().any(|u| u.source.contains(source_part) && u.reason.contains(reason_part))
}

#[test]
fn veeva_legacy_with_loader_csv() {
    let tmp = tempfile::tempdir().expect("tmp");
    let zips = legacy_zips(&tmp.path().join("zips").tap_mkdir());
    let out = tmp.path().join("legacy.edetail");
    let opts = VeevaOptions { loader_csv: Some(samples().join("veeva-legacy/loader.csv")), ..Default::default() };
    let report = import_veeva(&[zips], &opts, &out, &mut |_| {}).expect("import");
    let m = assert_valid_bundle(&out);
    assert_eq!(m, report.manifest);
    println!("{}", report.summary());

    // Bundle metadata from the CSV's visible presentation row.
    assert_eq!(m.id, "CZ_Launch_2026");
    assert_eq!(m.title, "Cardiozen launch 2026");
    assert_eq!(m.product, "Cardiozen");
    assert_eq!(m.locale, "en-GB");
    assert_eq!(m.approval_code, "CZ-UK-2026-0042");
    assert_eq!(m.valid_from, date(2026, 1, 1));
    assert_eq!(m.valid_until, date(2028, 1, 1), "end date 2027-12-31 is inclusive");
    assert_eq!(m.version, 1);

    // CSV order (not file order), hidden PI deck, sub-presentation.
    assert_eq!(m.presentations.len(), 2);
    assert!(!m.presentations[0].hidden);
    assert_eq!(presentation_slides(&m, "cz-launch-2026"), ["cz-home-01", "cz-efficacy-01", "cz-safety-01"]);
    assert!(m.presentation("cz-pi-2026").expect("pi").hidden);
    assert_eq!(presentation_slides(&m, "cz-pi-2026"), ["cz-pi-01"]);
    let safety = m.slide("cz-safety-01").expect("safety");
    assert_eq!(safety.sub_presentation.as_deref(), Some("cz-pi-2026"));
    assert_eq!(safety.disabled_gestures, [Gesture::SwipeNext, Gesture::SwipePrevious, Gesture::Rotate]);
    assert_eq!(safety.title, "Safety and tolerability");
    assert_eq!(m.slide("cz-home-01").expect("home").disabled_gestures, [Gesture::PinchExit]);
    assert_eq!(m.slide("cz-efficacy-01").expect("eff").disabled_gestures, [Gesture::PinchZoom, Gesture::Overview]);

    for s in &m.slides {
        assert_eq!(s.bridge, Bridge::Veeva, "{}", s.id);
        assert!(s.topics.is_empty());
    }
    let home = m.slide("cz-home-01").expect("home");
    assert_eq!(home.key_message.as_deref(), Some("CZ_Home_01"));
    assert_eq!(home.entry.as_str(), "CZ_Home_01/CZ_Home_01.html");
    assert_eq!(home.thumbnail.as_ref().map(BundlePath::as_str), Some("CZ_Home_01/CZ_Home_01-thumb.jpg"));
    // Zipped without its top folder, still lands in its own folder.
    assert_eq!(m.slide("cz-pi-01").expect("pi").entry.as_str(), "CZ_PI_01/CZ_PI_01.html");

    assert_eq!(m.shared_resources, ["shared/"]);
    assert!(m.files.keys().any(|p| p.as_str() == "shared/js/veeva-library.js"));
    assert!(m.files.keys().any(|p| p.as_str() == "CZ_Home_01/CZ_Home_01-full.jpg"), "poster carried");
    assert_refs_resolve(&out, "../shared/");

    assert!(unmapped_has(&report, "CZ_Home_01-full.jpg", "poster"));
    assert!(unmapped_has(&report, "topics", "no slide topics"));
    assert!(unmapped_has(&report, "slide.crm_custom_reaction__c", "not used"));
    assert!(unmapped_has(&report, "pres.country__v.name__v", "Vault field"));
    assert!(report.mapped.iter().any(|x| x.source == "shared.zip" && x.target == "shared resources shared/"));
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
    assert!(report.summary().contains("4 slides in 2 presentations"));
}

#[test]
fn veeva_legacy_with_ctl_files_only() {
    let tmp = tempfile::tempdir().expect("tmp");
    let zips = legacy_zips(&tmp.path().join("zips").tap_mkdir());
    let out = tmp.path().join("ctl.edetail");
    let ctl = samples().join("veeva-legacy/ctl");
    // Given out of order: Display_Order_vod__c decides.
    let ctl_files =
        ["CZ_Safety_01", "shared", "CZ_PI_01", "CZ_Home_01", "CZ_Efficacy_01"].iter().map(|n| ctl.join(format!("{n}.ctl"))).collect();
    let meta = ImportMeta { product: None, locale: None, ..cli_meta() };
    let opts = VeevaOptions { meta, ctl_files, ..Default::default() };
    let report = import_veeva(&[zips], &opts, &out, &mut |_| {}).expect("import");
    let m = assert_valid_bundle(&out);

    assert_eq!(m.id, "com.cardiozen.import-test");
    assert_eq!(m.product, "Cardiozen", "from Product_vod__c");
    assert_eq!(m.locale, "en-GB", "from Language_vod__c");
    assert_eq!(m.valid_from, date(2000, 1, 1), "documented default");
    assert_eq!(m.presentations.len(), 1);
    assert_eq!(presentation_slides(&m, "main"), ["cz-home-01", "cz-efficacy-01", "cz-safety-01", "cz-pi-01"]);
    let eff = m.slide("cz-efficacy-01").expect("eff");
    assert_eq!(eff.title, "Efficacy: 24-hour control");
    assert_eq!(eff.disabled_gestures, [Gesture::PinchZoom, Gesture::Overview]);
    assert_eq!(m.slide("cz-safety-01").expect("s").disabled_gestures, [Gesture::SwipeNext, Gesture::SwipePrevious, Gesture::Rotate]);
    assert_eq!(m.shared_resources, ["shared/"]);
    assert_refs_resolve(&out, "../shared/");

    assert!(unmapped_has(&report, "CZ_Home_01.ctl: PASSWORD", "credential dropped"));
    assert!(unmapped_has(&report, "CZ_Home_01.ctl: USER", "credential dropped"));
    assert!(unmapped_has(&report, "CZ_Home_01.ctl: CLM_ID_vod__c", "ignored"));
    // .ctl files carry no deck title: the id stands in, with a warning.
    assert_eq!(m.title, "com.cardiozen.import-test");
    assert_eq!(report.warnings.len(), 1, "{:#?}", report.warnings);
    assert!(report.warnings[0].contains("--title"));
}

#[test]
fn ctl_credentials_never_reach_the_bundle_or_the_report() {
    let tmp = tempfile::tempdir().expect("tmp");
    let zips = legacy_zips(&tmp.path().join("zips").tap_mkdir());
    let out = tmp.path().join("ctl.edetail");
    let ctl = samples().join("veeva-legacy/ctl");
    let ctl_files = files_under(&ctl).into_iter().map(|(_, p)| p).collect();
    let opts = VeevaOptions { meta: cli_meta(), ctl_files, ..Default::default() };
    let report = import_veeva(&[zips], &opts, &out, &mut |_| {}).expect("import");

    let secrets = ["Fict1onal-Pa55word!", "cz.clm.uploader", "clm-team@cardiozen.invalid"];
    // Sanity: the samples really hold them.
    let ctl_text = fs::read_to_string(ctl.join("CZ_Home_01.ctl")).expect("ctl");
    assert!(secrets.iter().all(|s| ctl_text.contains(s)));

    let mut haystacks = vec![fs::read(&out).expect("bundle bytes"), serde_json::to_vec(&report).expect("json")];
    haystacks.push(report.summary().into_bytes());
    let mut z = zip::ZipArchive::new(fs::File::open(&out).expect("open")).expect("zip");
    for i in 0..z.len() {
        let mut buf = Vec::new();
        z.by_index(i).expect("entry").read_to_end(&mut buf).expect("read");
        haystacks.push(buf);
    }
    for h in &haystacks {
        for s in secrets {
            assert!(!h.windows(s.len()).any(|w| w == s.as_bytes()), "credential {s:?} leaked");
        }
    }
}

#[test]
fn veeva_legacy_without_metadata_uses_file_order() {
    let tmp = tempfile::tempdir().expect("tmp");
    let zips = legacy_zips(&tmp.path().join("zips").tap_mkdir());
    let out = tmp.path().join("plain.edetail");
    let opts = VeevaOptions { meta: ImportMeta { title: Some("Cardiozen".into()), ..cli_meta() }, ..Default::default() };
    let report = import_veeva(&[zips], &opts, &out, &mut |_| {}).expect("import");
    let m = assert_valid_bundle(&out);

    assert_eq!(m.title, "Cardiozen");
    assert_eq!(m.presentations.len(), 1);
    assert_eq!(m.presentations[0].title, "Cardiozen");
    // Folder inputs are taken in file-name order; shared.zip is recognized by its name.
    assert_eq!(presentation_slides(&m, "main"), ["cz-efficacy-01", "cz-home-01", "cz-pi-01", "cz-safety-01"]);
    // Without metadata, titles come from the HTML <title>.
    assert_eq!(m.slide("cz-home-01").expect("home").title, "Cardiozen at a glance");
    assert!(m.slides.iter().all(|s| s.disabled_gestures.is_empty() && !s.hidden && s.bridge == Bridge::Veeva));
    assert_eq!(m.shared_resources, ["shared/"]);
    assert_refs_resolve(&out, "../shared/");
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
}

#[test]
fn veeva_import_is_deterministic() {
    let tmp = tempfile::tempdir().expect("tmp");
    let zips = legacy_zips(&tmp.path().join("zips").tap_mkdir());
    let opts = VeevaOptions { loader_csv: Some(samples().join("veeva-legacy/loader.csv")), ..Default::default() };
    let (a, b) = (tmp.path().join("a.edetail"), tmp.path().join("b.edetail"));
    import_veeva(std::slice::from_ref(&zips), &opts, &a, &mut |_| {}).expect("a");
    import_veeva(&[zips], &opts, &b, &mut |_| {}).expect("b");
    assert_eq!(fs::read(a).expect("a"), fs::read(b).expect("b"));
}

#[test]
fn veeva_vault_with_common_shared_resource() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = samples().join("veeva-vault");
    let intro = zip_folder(&src.join("CZ_Vault_Intro"), &tmp.path().join("CZ_Vault_Intro.zip"), "");
    // Some Vault packages keep a single top folder.
    let dosing = zip_folder(&src.join("CZ_Vault_Dosing"), &tmp.path().join("CZ_Vault_Dosing.zip"), "CZ_Vault_Dosing/");
    let summary = zip_folder(&src.join("CZ_Vault_Summary"), &tmp.path().join("CZ_Vault_Summary.zip"), "");
    // Not named like a shared resource and no metadata: found because slides reference its files.
    let assets = zip_folder(&src.join("common"), &tmp.path().join("cz_brand_assets.zip"), "");
    let out = tmp.path().join("vault.edetail");
    let opts = VeevaOptions { meta: cli_meta(), ..Default::default() };
    let report = import_veeva(&[intro, dosing, summary, assets], &opts, &out, &mut |_| {}).expect("import");
    let m = assert_valid_bundle(&out);

    assert_eq!(presentation_slides(&m, "main"), ["cz-vault-intro", "cz-vault-dosing", "cz-vault-summary"], "input order");
    let dosing = m.slide("cz-vault-dosing").expect("dosing");
    assert_eq!(dosing.entry.as_str(), "CZ_Vault_Dosing/index.html");
    assert_eq!(dosing.thumbnail.as_ref().map(BundlePath::as_str), Some("CZ_Vault_Dosing/thumb.png"));
    assert_eq!(dosing.title, "Simple once-daily dosing");
    assert_eq!(dosing.key_message.as_deref(), Some("CZ_Vault_Dosing"));
    assert!(m.slides.iter().all(|s| s.bridge == Bridge::Veeva));
    assert_eq!(m.shared_resources, ["common/"]);
    assert!(m.files.keys().any(|p| p.as_str() == "common/css/brand.css"));
    assert_refs_resolve(&out, "../common/");
    assert!(unmapped_has(&report, "poster.png", "poster"));
    assert!(report.mapped.iter().any(|x| x.source == "cz_brand_assets.zip" && x.target == "shared resources common/"));
    assert_eq!(report.warnings.len(), 1, "only the title default: {:#?}", report.warnings);
    assert!(report.warnings[0].contains("no title"));
}

#[test]
fn veeva_reports_references_to_missing_shared_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let html = br#"<html><head><title>X</title><link rel="stylesheet" href="../shared/css/gone.css">
        <script src="../shared/js/app.js"></script></head><body><script>com.veeva.clm.gotoSlide('CZ_Nowhere.zip', '')</script></body></html>"#;
    let km = zip_entries(&tmp.path().join("CZ_X_01.zip"), &[("CZ_X_01/CZ_X_01.html".into(), html.to_vec())]);
    let shared = zip_entries(&tmp.path().join("shared.zip"), &[("js/app.js".into(), b"// app".to_vec())]);
    let out = tmp.path().join("x.edetail");
    let opts = VeevaOptions { meta: cli_meta(), ..Default::default() };
    let err = import_veeva(&[km, shared.clone()], &opts, &out, &mut |_| {}).expect_err("a missing file is an error").to_string();
    assert!(
        err.contains("slide cz-x-01")
            && err.contains("CZ_X_01/CZ_X_01.html references ../shared/css/gone.css -> shared/css/gone.css")
            && err.contains("not in the shared resource"),
        "{err}"
    );
    assert!(!err.contains("app.js"), "{err}");
    assert!(!out.exists(), "a failed import leaves nothing behind");

    // Without the missing file, unresolved gotoSlide targets (both forms) are warnings.
    let html = br#"<html><head><title>X</title><script src="../shared/js/app.js"></script></head><body><script>
        com.veeva.clm.gotoSlide('CZ_Nowhere.zip', ''); com.veeva.clm.gotoSlide('CZ_Gone.zip, OTHER_PRES');
        com.veeva.clm.gotoSlide('CZ_X_01.zip', '');</script></body></html>"#;
    let km = zip_entries(&tmp.path().join("CZ_X_01.zip"), &[("CZ_X_01/CZ_X_01.html".into(), html.to_vec())]);
    let report = import_veeva(&[km, shared], &opts, &out, &mut |_| {}).expect("import");
    assert_valid_bundle(&out);
    assert!(report.warnings.iter().any(|w| w.contains("gotoSlide('CZ_Nowhere.zip')")), "{:#?}", report.warnings);
    assert!(report.warnings.iter().any(|w| w.contains("gotoSlide('CZ_Gone.zip')")), "{:#?}", report.warnings);
    assert!(!report.warnings.iter().any(|w| w.contains("CZ_X_01.zip")), "{:#?}", report.warnings);
    let goto = report.compat.calls.iter().find(|c| c.written_as == "com.veeva.clm.gotoSlide").expect("compat lists gotoSlide");
    assert_eq!(goto.count, 3);
    assert_eq!(goto.file, "CZ_X_01/CZ_X_01.html");
}

#[test]
fn veeva_shared_resource_recognised_by_content() {
    // A zip named like a key message, whose single top folder "brand" holds an HTML page, is
    // the shared resource because the slides reference ../brand/.
    let tmp = tempfile::tempdir().expect("tmp");
    let html = br#"<html><head><title>A</title><link rel="stylesheet" href="../brand/css/a.css"></head><body></body></html>"#;
    let km = zip_entries(&tmp.path().join("CZ_A_01.zip"), &[("CZ_A_01/CZ_A_01.html".into(), html.to_vec())]);
    let assets = zip_entries(
        &tmp.path().join("CZ_Assets_2026.zip"),
        &[("brand/index.html".into(), b"<html>demo</html>".to_vec()), ("brand/css/a.css".into(), b"p{}".to_vec())],
    );
    let out = tmp.path().join("x.edetail");
    let opts = VeevaOptions { meta: cli_meta(), ..Default::default() };
    let report = import_veeva(&[km, assets], &opts, &out, &mut |_| {}).expect("import");
    let m = assert_valid_bundle(&out);
    assert_eq!(m.slides.len(), 1, "{:#?}", m.slides);
    assert_eq!(m.shared_resources, ["brand/"]);
    assert!(m.files.keys().any(|p| p.as_str() == "brand/css/a.css"));
    assert!(report.warnings.iter().any(|w| w.contains("CZ_Assets_2026.zip") && w.contains("../brand/")), "{:#?}", report.warnings);

    // The same without an HTML page, and with a folder name no rule knows.
    let assets = zip_entries(&tmp.path().join("CZ_Assets_2026.zip"), &[("brand/css/a.css".into(), b"p{}".to_vec())]);
    let km = tmp.path().join("CZ_A_01.zip");
    import_veeva(&[km, assets], &opts, &out, &mut |_| {}).expect("import");
    let m = assert_valid_bundle(&out);
    assert_eq!(m.shared_resources, ["brand/"]);
}

#[test]
fn agnitio_storyboard_and_hidden_structure() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("agnitio.edetail");
    let meta = ImportMeta { approval_code: Some("CZ-OCE-0007".into()), valid_until: Some(date(2027, 6, 30)), ..Default::default() };
    let opts = AgnitioOptions { meta };
    let report = import_agnitio(&samples().join("agnitio/cardiozen-oce"), &opts, &out, &mut |_| {}).expect("import");
    let m = assert_valid_bundle(&out);
    println!("{}", report.summary());

    assert_eq!(m.id, "com.cardiozen.oce.core");
    assert_eq!(m.title, "Cardiozen core detail");
    assert_eq!(m.version, 1);
    assert_eq!(m.version_label.as_deref(), Some("2.1.0"));
    assert_eq!((m.product.as_str(), m.locale.as_str()), ("Cardiozen", "en-GB"));
    assert_eq!(m.presentations.len(), 2);
    assert_eq!(m.presentations[0].id, "core");
    assert!(!m.presentations[0].hidden);
    assert_eq!(m.presentations[0].title, "Cardiozen core story");
    assert_eq!(presentation_slides(&m, "core"), ["cz-intro", "cz-mechanism", "cz-efficacy-overview", "cz-dosing"]);
    assert!(m.presentation("appendix").expect("appendix").hidden, "structure outside the storyboard is hidden");
    assert_eq!(presentation_slides(&m, "appendix"), ["cz-references"]);
    assert!(m.slides.iter().all(|s| s.bridge == Bridge::Agnitio && s.route.is_none()), "no framework index.html: own pages");
    assert_eq!(m.slide("cz-intro").and_then(|s| s.key_message.as_deref()), Some("cz_intro"));

    let eff = m.slide("cz-efficacy-overview").expect("eff");
    assert_eq!(eff.entry.as_str(), "slides/cz_efficacyOverview/cz_efficacyOverview.html");
    assert_eq!(eff.thumbnail.as_ref().map(BundlePath::as_str), Some("slides/cz_efficacyOverview/cz_efficacyOverview.png"));
    assert_eq!(eff.topics, ["efficacy"]);
    assert_eq!(eff.steps, [Step::Educated], "steps default from topics");
    assert_eq!(m.slide("cz-dosing").map(|s| s.steps.clone()), Some(vec![Step::Convinced]));
    assert_eq!(m.slide("cz-intro").map(|s| s.steps.clone()), Some(vec![]), "no topics, no step");
    assert_eq!(report.adoption.uncovered, ["aware", "advocate"]);
    assert!(report.adoption.mandatory.is_empty());
    assert!(report.summary().contains("  educated: cz-mechanism, cz-efficacy-overview"), "{}", report.summary());
    assert_eq!(eff.title, "Efficacy overview");
    let dosing = m.slide("cz-dosing").expect("dosing");
    assert_eq!(dosing.thumbnail.as_ref().map(BundlePath::as_str), Some("thumbnails/cz_dosing.png"));
    assert_eq!(m.shared_resources, ["shared/", "modules/", "_vendor/"]);
    assert!(m.files.keys().any(|p| p.as_str() == "presentation.json"));
    assert_refs_resolve(&out, "../../shared/");

    assert!(unmapped_has(&report, "_vendor/tap.js", "carried, not referenced"));
    assert!(unmapped_has(&report, "shared/img/unused-banner.png", "carried, not referenced"));
    assert!(!report.unmapped.iter().any(|u| u.source == "shared/css/oce-deck.css"));
    assert!(!report.unmapped.iter().any(|u| u.source == "modules/references/references.js"));
    assert!(report.mapped.iter().any(|x| x.source == "presentation.json module references"), "{:#?}", report.mapped);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
}

#[test]
fn agnitio_zip_gives_the_same_bundle_as_the_folder() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = samples().join("agnitio/cardiozen-oce");
    let zip = zip_folder(&src, &tmp.path().join("cardiozen-oce.zip"), "cardiozen-oce/");
    let opts = AgnitioOptions {
        meta: ImportMeta { approval_code: Some("CZ-OCE-0007".into()), valid_until: Some(date(2027, 6, 30)), ..Default::default() },
    };
    let (a, b) = (tmp.path().join("folder.edetail"), tmp.path().join("zip.edetail"));
    import_agnitio(&src, &opts, &a, &mut |_| {}).expect("folder");
    import_agnitio(&zip, &opts, &b, &mut |_| {}).expect("zip");
    assert_valid_bundle(&b);
    assert_eq!(fs::read(a).expect("a"), fs::read(b).expect("b"));
}

fn import_err(inputs: &[PathBuf], out: &Path) -> String {
    let opts = VeevaOptions { meta: cli_meta(), ..Default::default() };
    match import_veeva(inputs, &opts, out, &mut |_| {}) {
        Ok(_) => panic!("import should fail"),
        Err(e) => {
            assert!(!out.exists(), "no output on failure");
            e.to_string()
        }
    }
}

#[test]
fn hostile_zip_with_traversal_entry_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let evil = zip_entries(
        &tmp.path().join("CZ_Evil_01.zip"),
        &[("CZ_Evil_01/CZ_Evil_01.html".into(), b"<html></html>".to_vec()), ("../evil.html".into(), b"x".to_vec())],
    );
    let msg = import_err(&[evil], &tmp.path().join("out.edetail"));
    assert!(msg.contains("CZ_Evil_01.zip") && msg.contains("../evil.html") && msg.contains(".."), "{msg}");
}

#[test]
fn hostile_zip_with_symlink_entry_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("CZ_Link_01.zip");
    let mut w = zip::ZipWriter::new(fs::File::create(&path).expect("create"));
    w.start_file("CZ_Link_01/CZ_Link_01.html", zip_options()).expect("start");
    w.write_all(b"<html></html>").expect("write");
    w.add_symlink("CZ_Link_01/secrets.txt", "/etc/passwd", zip_options()).expect("symlink");
    w.finish().expect("finish");
    let msg = import_err(&[path], &tmp.path().join("out.edetail"));
    assert!(msg.contains("CZ_Link_01.zip") && msg.contains("CZ_Link_01/secrets.txt") && msg.contains("symbolic link"), "{msg}");
}

#[test]
fn zip_without_html_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let zips = legacy_zips(&tmp.path().join("zips").tap_mkdir());
    let broken = zip_entries(&tmp.path().join("CZ_Broken_01.zip"), &[("CZ_Broken_01/img/chart.png".into(), b"png".to_vec())]);
    let msg = import_err(&[zips, broken], &tmp.path().join("out.edetail"));
    assert!(msg.contains("CZ_Broken_01.zip") && msg.contains("CZ_Broken_01/CZ_Broken_01.html"), "{msg}");
}

#[test]
fn missing_approval_code_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let zips = legacy_zips(&tmp.path().join("zips").tap_mkdir());
    let out = tmp.path().join("out.edetail");
    let opts = VeevaOptions { meta: ImportMeta { approval_code: None, ..cli_meta() }, ..Default::default() };
    let msg = import_veeva(&[zips], &opts, &out, &mut |_| {}).expect_err("needs approval code").to_string();
    assert!(msg.contains("--approval-code"), "{msg}");
    assert!(!msg.contains("--valid-until"), "only what is missing: {msg}");
    assert!(!out.exists());

    let opts = AgnitioOptions { meta: ImportMeta { approval_code: Some("X".into()), ..Default::default() } };
    let msg = import_agnitio(&samples().join("agnitio/cardiozen-oce"), &opts, &out, &mut |_| {}).expect_err("needs end").to_string();
    assert!(msg.contains("--valid-until") && !msg.contains("--approval-code"), "{msg}");
}

#[test]
fn loader_csv_naming_a_missing_zip_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let zips = legacy_zips(&tmp.path().join("zips").tap_mkdir());
    fs::remove_file(zips.join("CZ_Safety_01.zip")).expect("rm");
    let out = tmp.path().join("out.edetail");
    let opts = VeevaOptions { loader_csv: Some(samples().join("veeva-legacy/loader.csv")), ..Default::default() };
    let msg = import_veeva(&[zips], &opts, &out, &mut |_| {}).expect_err("missing zip").to_string();
    assert!(msg.contains("loader.csv row 6") && msg.contains("cz_safety_01.zip"), "{msg}");
}

/// Small helper: create a folder and return it.
trait TapMkdir {
    fn tap_mkdir(self) -> PathBuf;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> PathBuf {
        fs::create_dir_all(&self).expect("mkdir");
        self
    }
}

/// (entry + route, key message) of a slide.
fn entry_route_km(m: &Manifest, id: &str) -> (String, Option<String>) {
    let s = m.slide(id).unwrap_or_else(|| panic!("slide {id} in {:?}", m.slides.iter().map(|s| &s.id).collect::<Vec<_>>()));
    (format!("{}{}", s.entry, s.route.as_deref().unwrap_or_default()), s.key_message.clone())
}

fn compat_has(report: &ImportReport, written_as: &str, support: Support) -> bool {
    report.compat.calls.iter().any(|c| c.written_as == written_as && c.support == support)
}

#[test]
fn agnitio_classic_framework_with_path_to_slides() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("classic.edetail");
    let report = import_agnitio(&samples().join("agnitio-classic"), &AgnitioOptions::default(), &out, &mut |_| {}).expect("import");
    let m = assert_valid_bundle(&out);
    println!("{}{}", report.summary(), report.compat.summary());
    assert_eq!(m.id, "com.cardiozen.agnitio.classic");
    assert_eq!(m.approval_code, "CZ-AGN-0103");
    assert_eq!(presentation_slides(&m, "main"), ["cz-home", "cz-efficacy", "cz-safety"]);
    assert!(m.presentation("appendix").expect("appendix").hidden);
    assert_eq!(presentation_slides(&m, "appendix"), ["cz-refs"]);
    for (id, route, km) in [
        ("cz-home", "index.html?path=main/cz_home", "cz_home"),
        ("cz-efficacy", "index.html?path=main/cz_efficacy", "cz_efficacy"),
        ("cz-safety", "index.html?path=main/cz_safety", "cz_safety"),
        ("cz-refs", "index.html?path=appendix/cz_refs", "cz_refs"),
    ] {
        assert_eq!(entry_route_km(&m, id), (route.to_string(), Some(km.to_string())));
    }
    assert!(m.slides.iter().all(|s| s.bridge == Bridge::Agnitio));
    let home = m.slide("cz-home").expect("home");
    assert_eq!(home.thumbnail.as_ref().map(BundlePath::as_str), Some("content/slides/cz_home/cz_home.png"));
    assert_eq!(m.slide("cz-safety").expect("safety").topics, ["safety"]);
    assert!(m.files.keys().any(|p| p.as_str() == "content/slides/cz_home/cz_home.html"));
    assert!(compat_has(&report, "objc://iplanner/monitoringEvent", Support::Handled));
    assert!(compat_has(&report, "objc://iplanner/openPDF", Support::Handled));
    assert!(compat_has(&report, "objc://iplanner/sendMail", Support::Unsupported));
    assert_eq!(report.compat.unsupported().count(), 1);
    assert!(!report.unmapped.iter().any(|u| u.reason.contains("carried, not referenced")), "{:#?}", report.unmapped);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
}

#[test]
fn agnitio_accelerator_storyboards_structures_and_modules() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("acc.edetail");
    let meta = ImportMeta { approval_code: Some("CZ-AGN-0200".into()), valid_until: Some(date(2027, 12, 31)), ..Default::default() };
    let report = import_agnitio(&samples().join("agnitio-accelerator"), &AgnitioOptions { meta }, &out, &mut |_| {}).expect("import");
    let m = assert_valid_bundle(&out);
    println!("{}{}", report.summary(), report.compat.summary());
    assert_eq!(m.id, "com.cardiozen.agnitio.accelerator");
    assert_eq!(m.presentations[0].id, "cz-story");
    assert_eq!(m.presentations[0].title, "Cardiozen story");
    assert_eq!(presentation_slides(&m, "cz-story"), ["ac-intro", "ac-data", "ac-dosing", "ac-summary"]);
    assert!(m.presentation("cz-backup").expect("backup").hidden);
    for (id, route, km) in [
        ("ac-intro", "index.html?path=cz_story/ac_intro", "ac_intro"),
        ("ac-data", "index.html?path=cz_story/ac_data", "ac_data"),
        ("ac-dosing", "index.html?path=cz_story/ac_dosing", "ac_dosing"),
        ("ac-summary", "index.html?path=cz_story/ac_summary", "ac_summary"),
        ("ac-backup", "index.html?path=cz_backup/ac_backup", "ac_backup"),
    ] {
        assert_eq!(entry_route_km(&m, id), (route.to_string(), Some(km.to_string())));
    }
    assert_eq!(m.slide("ac-data").and_then(|s| s.thumbnail.as_ref()).map(BundlePath::as_str), Some("slides/ac_data/ac_data.png"));
    assert!(report.mapped.iter().any(|x| x.source == "presentation.json module cz_footer"), "{:#?}", report.mapped);
    // files.templates/styles/scripts and the module's files count as used.
    assert!(!report.unmapped.iter().any(|u| u.reason.contains("carried, not referenced")), "{:#?}", report.unmapped);
    assert!(compat_has(&report, "objc://iplanner/monitoringEvent", Support::Handled));
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
}

#[test]
fn oce_package_folder_zip_and_sequence_zips() {
    let tmp = tempfile::tempdir().expect("tmp");
    let meta = ImportMeta { title: Some("Cardiozen OCE detail".into()), ..cli_meta() };
    let opts = OceOptions { meta };
    let out = tmp.path().join("oce.edetail");
    let src = samples().join("oce");
    let report = import_oce(&src, &opts, &out, &mut |_| {}).expect("import");
    let m = assert_valid_bundle(&out);
    println!("{}{}", report.summary(), report.compat.summary());
    assert_eq!(report.format, "oce");
    assert_eq!(presentation_slides(&m, "main"), ["cz-oce-01-home", "cz-oce-02-efficacy", "cz-oce-03-safety"]);
    for (id, entry, km) in [
        ("cz-oce-01-home", "CZ_OCE_01_Home/index.html", "CZ_OCE_01_Home"),
        ("cz-oce-02-efficacy", "CZ_OCE_02_Efficacy/index.html", "CZ_OCE_02_Efficacy"),
        ("cz-oce-03-safety", "CZ_OCE_03_Safety/index.html", "CZ_OCE_03_Safety"),
    ] {
        assert_eq!(entry_route_km(&m, id), (entry.to_string(), Some(km.to_string())));
    }
    assert!(m.slides.iter().all(|s| s.bridge == Bridge::Oce && s.thumbnail.is_some() && s.route.is_none()));
    assert_eq!(m.slide("cz-oce-01-home").expect("home").title, "Welcome");
    assert_eq!(m.shared_resources, ["shared/"]);
    assert_refs_resolve(&out, "../shared/");
    for api in ["CLMPlayer.gotoSlide", "CLMPlayer.goNextSequence", "CLMPlayer.goPreviousSequence", "CLMPlayer.addAction"] {
        assert!(compat_has(&report, api, Support::Handled), "{api}: {:#?}", report.compat);
    }
    assert_eq!(report.compat.unsupported().count(), 0);
    assert!(unmapped_has(&report, "efficacy-detail.html", "further pages"));
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
    let first = fs::read(&out).expect("bundle");

    // The same package zipped inside its folder gives the same bundle.
    let zipped = zip_folder(&src, &tmp.path().join("oce.zip"), "cardiozen-oce/");
    let out2 = tmp.path().join("oce2.edetail");
    import_oce(&zipped, &opts, &out2, &mut |_| {}).expect("import zip");
    assert_eq!(fs::read(&out2).expect("bundle"), first);

    // Sequences as zips next to a shared folder.
    let dir = tmp.path().join("seqzips");
    fs::create_dir_all(&dir).expect("dir");
    for seq in ["CZ_OCE_01_Home", "CZ_OCE_02_Efficacy", "CZ_OCE_03_Safety"] {
        zip_folder(&src.join(seq), &dir.join(format!("{seq}.zip")), &format!("{seq}/"));
    }
    for (rel, p) in files_under(&src.join("shared")) {
        let dest = dir.join("shared").join(rel);
        fs::create_dir_all(dest.parent().expect("parent")).expect("dir");
        fs::copy(p, dest).expect("copy");
    }
    let out3 = tmp.path().join("oce3.edetail");
    import_oce(&dir, &opts, &out3, &mut |_| {}).expect("import sequence zips");
    assert_eq!(fs::read(&out3).expect("bundle"), first);
}

#[test]
fn oce_warns_about_unknown_goto_targets_and_refuses_hostile_zips() {
    let tmp = tempfile::tempdir().expect("tmp");
    let html = br#"<html><head><title>A</title></head><body><script>
        CLMPlayer.gotoSlide('SEQ_B', null, null); CLMPlayer.gotoSlide('SEQ_Gone'); CLMPlayer.gotoSlide(null, 'nope.html');
        CLMPlayer.gotoSlide(variable); CLMPlayer.emailMe();</script></body></html>"#;
    let pkg = zip_entries(
        &tmp.path().join("pkg.zip"),
        &[("SEQ_A/index.html".into(), html.to_vec()), ("SEQ_B/index.html".into(), b"<title>B</title>".to_vec())],
    );
    let out = tmp.path().join("x.edetail");
    let opts = OceOptions { meta: cli_meta() };
    let report = import_oce(&pkg, &opts, &out, &mut |_| {}).expect("import");
    assert_valid_bundle(&out);
    assert!(report.warnings.iter().any(|w| w.contains("gotoSlide('SEQ_Gone')")), "{:#?}", report.warnings);
    assert!(report.warnings.iter().any(|w| w.contains("nope.html")), "{:#?}", report.warnings);
    assert!(!report.warnings.iter().any(|w| w.contains("'SEQ_B'")), "{:#?}", report.warnings);
    assert!(compat_has(&report, "CLMPlayer.emailMe", Support::Unsupported));

    // A sequence zip inside the package with an entry escaping the root.
    let bad = zip_entries(&tmp.path().join("SEQ_C.zip"), &[("../../evil.html".into(), b"x".to_vec())]);
    let dir = tmp.path().join("pkgdir");
    fs::create_dir_all(&dir).expect("dir");
    fs::copy(&bad, dir.join("SEQ_C.zip")).expect("copy");
    let err = import_oce(&dir, &opts, &out, &mut |_| {}).expect_err("refused").to_string();
    assert!(err.contains("SEQ_C.zip") && err.contains("unsafe name"), "{err}");
    // Nothing that looks like a sequence.
    let empty = zip_entries(&tmp.path().join("empty.zip"), &[("shared/a.css".into(), b"p{}".to_vec())]);
    let err = import_oce(&empty, &opts, &out, &mut |_| {}).expect_err("no sequences").to_string();
    assert!(err.contains("no sequences"), "{err}");
}

/// Writes a presentation folder with the given presentation.json and one slide page.
fn agnitio_folder(dir: &Path, json: &str) -> PathBuf {
    fs::create_dir_all(dir.join("slides/s1")).expect("dir");
    fs::write(dir.join("presentation.json"), json).expect("json");
    fs::write(dir.join("slides/s1/s1.html"), "<title>S1</title>").expect("html");
    dir.to_path_buf()
}

#[test]
fn agnitio_hostile_descriptors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("x.edetail");
    let opts = AgnitioOptions { meta: cli_meta() };
    let run = |name: &str, json: &str| import_agnitio(&agnitio_folder(&tmp.path().join(name), json), &opts, &out, &mut |_| {});

    let err = run("badjson", r#"{"slides": {"s1": {}"#).expect_err("bad JSON").to_string();
    assert!(err.contains("not valid JSON"), "{err}");
    let err = run("array", "[1, 2]").expect_err("not an object").to_string();
    assert!(err.contains("must be a JSON object"), "{err}");

    // Structures and storyboards containing each other: cut, with a warning.
    let report = run(
        "cycle",
        r#"{"slides": {"s1": {}}, "structures": {"a": {"content": ["b", "s1"]}, "b": {"content": ["a"]}},
            "storyboards": {"sb": {"content": ["a", "sb"]}}, "storyboard": ["sb"]}"#,
    )
    .expect("a cycle is cut");
    assert!(report.warnings.iter().any(|w| w.contains("nested in itself")), "{:#?}", report.warnings);
    assert_eq!(report.manifest.slides.len(), 1);
    fs::remove_file(&out).expect("remove");

    let err = run("escape", r#"{"slides": {"s1": {}}, "pathToSlides": "../../"}"#).expect_err("escapes").to_string();
    assert!(err.contains("pathToSlides") && err.contains("not a folder inside the presentation"), "{err}");
    let err = run("escape2", r#"{"slides": {"s1": {"files": {"templates": ["../../etc/passwd.html"]}}}}"#)
        .expect_err("template escapes")
        .to_string();
    assert!(err.contains("s1") && err.contains("no HTML page") && err.contains("../../etc/passwd.html"), "{err}");
    let err = run("unknown", r#"{"slides": {"s1": {}}, "storyboard": ["default"]}"#).expect_err("unknown storyboard").to_string();
    assert!(err.contains("\"default\""), "{err}");
    assert!(!out.exists(), "failed imports leave nothing behind");
}
