//! End-to-end tests of the `edetail` binary: what a content team types, and what it sees.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn edetail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edetail")).args(args).output().expect("edetail runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn key_new_writes_a_private_secret_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let name = tmp.path().join("acme");
    let o = edetail(&["key", "new", s(&name)]);
    assert!(o.status.success(), "{}", stderr(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(name.with_extension("key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let o = edetail(&["key", "new", s(&name)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn new_pack_sign_verify_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("deck");
    let o = edetail(&["bundle", "new", s(&dir), "--id", "com.example.t", "--title", "T & <Co>", "--product", "tprod"]);
    assert!(o.status.success(), "{}", stderr(&o));
    edetail(&["key", "new", s(&tmp.path().join("k"))]);
    edetail(&["key", "new", s(&tmp.path().join("other"))]);
    let (k, kp, other) = (tmp.path().join("k.key"), tmp.path().join("k.pub"), tmp.path().join("other.pub"));

    let zip = tmp.path().join("deck.zip");
    let o = edetail(&["bundle", "pack", s(&dir), "-o", s(&zip)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("unsigned"), "{}", stdout(&o));

    // Check: valid, with the DRAFT approval warning.
    let o = edetail(&["bundle", "check", s(&zip)]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("DRAFT"), "{}", stdout(&o));

    // Verify requires a signature.
    let o = edetail(&["bundle", "verify", s(&zip), "--pubkey", s(&kp)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));

    let o = edetail(&["bundle", "sign", s(&zip), "--key", s(&k)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = edetail(&["bundle", "verify", s(&zip), "--pubkey", s(&kp)]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("verified (key"), "{}", stdout(&o));
    let o = edetail(&["bundle", "verify", s(&zip), "--pubkey", s(&other), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"][0]["code"], "unknown_signing_key");

    // Signing while packing gives the same bytes as pack + sign.
    let zip2 = tmp.path().join("deck2.zip");
    assert!(edetail(&["bundle", "pack", s(&dir), "-o", s(&zip2), "--key", s(&k)]).status.success());
    assert_eq!(fs::read(&zip).unwrap(), fs::read(&zip2).unwrap());

    // Inspect lists the slide.
    let o = edetail(&["bundle", "inspect", s(&zip), "--pubkey", s(&kp)]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("title") && stdout(&o).contains("valid now"), "{}", stdout(&o));
}

#[test]
fn check_rejects_references_to_files_the_bundle_does_not_have() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("deck");
    assert!(edetail(&["bundle", "new", s(&dir), "--id", "com.example.refs", "--title", "R", "--product", "p"]).status.success());
    let page = dir.join("slides/title/index.html");
    let html = fs::read_to_string(&page).unwrap();
    // A shared stylesheet that never made it into the deck, beside one that did.
    let html = html.replacen(
        "<head>",
        "<head><link rel=stylesheet href=\"../../shared/deck.css\"><link rel=stylesheet href=\"../../shared/brand/gone.css?v=3\">",
        1,
    );
    fs::write(&page, html).unwrap();
    let zip = tmp.path().join("deck.zip");
    assert!(edetail(&["bundle", "pack", s(&dir), "-o", s(&zip)]).status.success());
    let o = edetail(&["bundle", "check", s(&zip)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(
            "slides/title/index.html references ../../shared/brand/gone.css -> shared/brand/gone.css, which is not in the bundle"
        ),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("deck.css ->"), "present files are not reported: {}", stdout(&o));
    let v = json(&edetail(&["bundle", "check", s(&zip), "--json"]));
    assert_eq!(v["ok"], false);
    assert_eq!(v["broken_references"][0]["resolved"], "shared/brand/gone.css");
}

#[test]
fn check_reports_tampering_by_entry_with_json_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("deck");
    edetail(&["bundle", "new", s(&dir), "--id", "com.example.t", "--title", "T", "--product", "p"]);
    let zip = tmp.path().join("deck.zip");
    assert!(edetail(&["bundle", "pack", s(&dir), "-o", s(&zip)]).status.success());
    // Rewrite one file inside the zip without updating the manifest.
    let bytes = fs::read(&zip).unwrap();
    let mut zin = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut zout = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..zin.len() {
        let f = zin.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        if name == "shared/deck.css" {
            drop(f);
            zout.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut zout, b"body{display:none}").unwrap();
        } else {
            drop(f);
            zout.raw_copy_file(zin.by_index_raw(i).unwrap()).unwrap();
        }
    }
    fs::write(&zip, zout.finish().unwrap().into_inner()).unwrap();
    let o = edetail(&["bundle", "check", s(&zip), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    let p = v["problems"].as_array().unwrap().iter().find(|p| p["severity"] == "error").unwrap().clone();
    assert_eq!(p["entry"], "shared/deck.css");
    assert!(p["code"] == "size_mismatch" || p["code"] == "hash_mismatch", "{p}");
    let o = edetail(&["bundle", "check", s(&zip)]);
    assert!(stdout(&o).contains("REJECTED") && stdout(&o).contains("shared/deck.css"), "{}", stdout(&o));
    // Signing a broken bundle is refused.
    edetail(&["key", "new", s(&tmp.path().join("k"))]);
    let o = edetail(&["bundle", "sign", s(&zip), "--key", s(&tmp.path().join("k.key"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not signing"), "{}", stderr(&o));
}

#[test]
fn usage_errors_exit_2_and_missing_files_are_named() {
    assert_eq!(edetail(&["bundle", "frobnicate"]).status.code(), Some(2));
    let o = edetail(&["bundle", "check", "/nonexistent/deck.zip"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/deck.zip"), "{}", stderr(&o));
    let o = edetail(&["bundle", "check", "/nonexistent/deck.zip", "--json"]);
    assert_eq!(json(&o)["ok"], false);
}

/// Every sample deck in presentations/ packs, signs, verifies and inspects cleanly.
#[test]
fn sample_presentations_are_valid_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    edetail(&["key", "new", s(&tmp.path().join("k"))]);
    let mut decks = 0;
    for e in fs::read_dir(repo_root().join("presentations")).unwrap() {
        let dir = e.unwrap().path();
        if !dir.join("edetail.json").exists() {
            continue;
        }
        decks += 1;
        let zip = tmp.path().join(format!("{}.zip", dir.file_name().unwrap().to_string_lossy()));
        let o = edetail(&["bundle", "pack", s(&dir), "-o", s(&zip), "--key", s(&tmp.path().join("k.key"))]);
        assert!(o.status.success(), "{}: {}", dir.display(), stderr(&o));
        let o = edetail(&["bundle", "verify", s(&zip), "--pubkey", s(&tmp.path().join("k.pub")), "--json"]);
        let v = json(&o);
        assert!(o.status.success(), "{}: {v:#}", dir.display());
        assert_eq!(v["warnings"], 0, "{}: sample decks must be warning-free: {v:#}", dir.display());
    }
    assert!(decks >= 2, "expected the sample decks under presentations/");
}

#[test]
fn import_agnitio_via_the_cli_then_sign_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let src = repo_root().join("presentations/import-samples/agnitio/cardiozen-oce");
    let out = tmp.path().join("oce.zip");
    // Without an approval code the author is told which flag to pass.
    let o = edetail(&["import", "agnitio", s(&src), "-o", s(&out), "--valid-until", "2027-06-30"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--approval-code"), "{}", stderr(&o));
    assert!(!out.exists());

    let o =
        edetail(&["import", "agnitio", s(&src), "-o", s(&out), "--approval-code", "CZ-OCE-0007", "--valid-until", "2027-06-30", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["report"]["format"], "agnitio");
    // A date means "through the end of that day".
    assert_eq!(v["report"]["manifest"]["valid_until"], "2027-07-01T00:00:00Z");
    assert!(v["report"]["manifest"]["slides"].as_array().unwrap().iter().all(|s| s["bridge"] == "agnitio"));

    edetail(&["key", "new", s(&tmp.path().join("k"))]);
    assert!(edetail(&["bundle", "sign", s(&out), "--key", s(&tmp.path().join("k.key"))]).status.success());
    let o = edetail(&["bundle", "verify", s(&out), "--pubkey", s(&tmp.path().join("k.pub"))]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn import_oce_and_agnitio_with_report_then_check_lists_vendor_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let samples = repo_root().join("presentations/import-samples");
    let out = tmp.path().join("oce.zip");
    let meta = ["--id", "com.cardiozen.oce", "--product", "Cardiozen", "--locale", "en-GB", "--approval-code", "CZ-OCE-0300"];
    let src = samples.join("oce");
    let mut args = vec!["import", "oce", s(&src), "-o", s(&out), "--valid-until", "2027-12-31", "--report"];
    args.extend(meta);
    let o = edetail(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("Vendor calls") && text.contains("CLMPlayer.goNextSequence"), "{text}");
    args.push("--json");
    let v = json(&edetail(&args));
    assert_eq!(v["report"]["format"], "oce");
    let slides = v["report"]["manifest"]["slides"].as_array().unwrap();
    assert!(slides.iter().all(|s| s["bridge"] == "oce"));
    assert_eq!(slides[0]["key_message"], "CZ_OCE_01_Home");
    let calls = v["report"]["compat"]["calls"].as_array().unwrap();
    assert!(calls.iter().any(|c| c["written_as"] == "CLMPlayer.gotoSlide" && c["support"] == "handled"), "{calls:#?}");

    // The classic Agnitio sample calls one container API edetail does not support: the check
    // lists it as a warning and still passes.
    let agn = tmp.path().join("classic.zip");
    let o = edetail(&["import", "agnitio", s(&samples.join("agnitio-classic")), "-o", s(&agn)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("not supported by edetail") && stdout(&o).contains("--report"), "{}", stdout(&o));
    let o = edetail(&["bundle", "check", s(&agn)]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("warning: framework/cz-lib.js calls objc://iplanner/sendMail"), "{}", stdout(&o));
    let v = json(&edetail(&["bundle", "check", s(&agn), "--json"]));
    assert_eq!(v["ok"], true);
    assert_eq!(v["unsupported_vendor_calls"], 1);
    assert!(v["vendor_calls"].as_array().unwrap().iter().any(|c| c["api"] == "monitoringEvent"), "{v:#}");
}

#[test]
fn device_commands_install_list_and_inspect_a_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("device");
    edetail(&["key", "new", s(&tmp.path().join("k"))]);
    let zip = tmp.path().join("glucora.zip");
    let deck = repo_root().join("presentations/glucora-brief");
    assert!(edetail(&["bundle", "pack", s(&deck), "-o", s(&zip), "--key", s(&tmp.path().join("k.key"))]).status.success());

    let o = edetail(&["device", "--data", s(&data), "install", s(&zip)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--pubkey"), "{}", stderr(&o));
    let o = edetail(&["device", "--data", s(&data), "install", s(&zip), "--pubkey", s(&tmp.path().join("k.pub")), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["install"]["activated"], true);
    let o = edetail(&["device", "--data", s(&data), "install", s(&zip), "--pubkey", s(&tmp.path().join("k.pub"))]);
    assert!(stdout(&o).contains("already installed"), "{}", stdout(&o));

    let v = json(&edetail(&["device", "--data", s(&data), "list", "--json"]));
    assert_eq!(v["bundles"][0]["bundle"]["bundle_id"], "com.example.glucora.brief");
    assert_eq!(v["bundles"][0]["openable"], true);
    let v = json(&edetail(&["device", "--data", s(&data), "events", "--json"]));
    assert_eq!(v["events"].as_array().unwrap().len(), 0);
    let v = json(&edetail(&["device", "--data", s(&data), "pending", "--json"]));
    assert_eq!(v["stats"]["pending"], 0);
    let o = edetail(&["device", "--data", s(&data), "gc"]);
    assert!(o.status.success() && stdout(&o).contains("Removed 0 versions"), "{}", stdout(&o));
}
