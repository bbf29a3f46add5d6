//! `edetail bundle`: new, check, pack, sign, verify, inspect.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;
use edetail_bundle::BundleArchive;
use edetail_bundle::import::compat::{self, CompatReport};
use edetail_bundle::reader::check_path;
use edetail_bundle::{CheckReport, Manifest, Problem, PublicKey, ReadOptions, SecretKey, Severity, SignatureStatus};
use serde_json::json;

use crate::output::{Output, human_bytes};

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Create an authoring folder with a source manifest and a first slide.
    New {
        /// Folder to create (must not exist).
        dir: PathBuf,
        /// Bundle id, reverse-DNS style, e.g. com.acme.cardiozen.launch
        #[arg(long)]
        id: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        product: String,
        #[arg(long, default_value = "en-GB")]
        locale: String,
        /// MLR approval id; leave out while drafting (check warns until it is set).
        #[arg(long, default_value = "DRAFT")]
        approval_code: String,
    },
    /// Verify a bundle completely and list every problem found.
    Check {
        bundle: PathBuf,
        /// Trusted publisher public key(s) to verify the signature against.
        #[arg(long = "pubkey")]
        pubkeys: Vec<PathBuf>,
        /// Fail unless the bundle is signed by one of --pubkey.
        #[arg(long)]
        require_signature: bool,
    },
    /// Build a bundle zip from an authoring folder (deterministic: same folder, same bytes).
    Pack {
        dir: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Sign while packing with this secret key.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Sign a bundle's manifest (the bundle is fully checked first).
    Sign {
        bundle: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// Write the signed bundle here instead of replacing the input.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Verify a bundle's signature and contents against trusted public keys.
    Verify {
        bundle: PathBuf,
        #[arg(long = "pubkey", required = true)]
        pubkeys: Vec<PathBuf>,
    },
    /// Show what a bundle contains: decks, slides, topics, validity, signature, files.
    Inspect {
        bundle: PathBuf,
        #[arg(long = "pubkey")]
        pubkeys: Vec<PathBuf>,
    },
}

pub fn run(cmd: BundleCommand, out: &Output) -> anyhow::Result<ExitCode> {
    match cmd {
        BundleCommand::New { dir, id, title, product, locale, approval_code } => {
            new_folder(&dir, &id, &title, &product, &locale, &approval_code)?;
            out.emit(&json!({"ok": true, "dir": dir}), || {
                format!(
                    "Created {}\n  edit {}/edetail.json and add slides under slides/, then:\n  edetail bundle pack {} -o {}.zip\n",
                    dir.display(),
                    dir.display(),
                    dir.display(),
                    id
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        BundleCommand::Check { bundle, pubkeys, require_signature } => {
            let opts = read_options(&pubkeys, require_signature)?;
            let report = run_check(&bundle, &opts, out)?;
            let calls = vendor_calls(&bundle, &opts, &report);
            let broken = broken_references(&bundle, &opts, &report);
            let ok = report.is_ok() && broken.is_empty();
            let mut j = check_json(&bundle, &report);
            j["vendor_calls"] = json!(calls.as_ref().map(|c| &c.calls));
            j["unsupported_vendor_calls"] = json!(calls.as_ref().map(|c| c.unsupported().count()).unwrap_or(0));
            j["broken_references"] = json!(broken);
            j["ok"] = json!(ok);
            out.emit(&j, || {
                let mut s = String::new();
                if let Some(c) = &calls {
                    s.push_str(&vendor_calls_human(c));
                }
                for b in &broken {
                    s.push_str(&format!("error: {b}\n"));
                }
                s.push_str(&check_human(&bundle, &report));
                if report.is_ok() && !broken.is_empty() {
                    s.push_str(&format!(
                        "REJECTED: {} broken reference(s): the slides would load without these files on the device\n",
                        broken.len()
                    ));
                }
                s
            });
            Ok(exit_for(ok))
        }
        BundleCommand::Verify { bundle, pubkeys } => {
            let opts = read_options(&pubkeys, true)?;
            let report = run_check(&bundle, &opts, out)?;
            let ok = report.is_ok() && matches!(report.signature, SignatureStatus::Verified { .. });
            out.emit(&check_json(&bundle, &report), || check_human(&bundle, &report));
            Ok(exit_for(ok))
        }
        BundleCommand::Inspect { bundle, pubkeys } => {
            let opts = read_options(&pubkeys, false)?;
            let report = run_check(&bundle, &opts, out)?;
            out.emit(&check_json(&bundle, &report), || {
                let mut s = report.manifest.as_ref().map(inspect_human).unwrap_or_default();
                s.push_str(&check_human(&bundle, &report));
                s
            });
            Ok(exit_for(report.is_ok()))
        }
        BundleCommand::Pack { dir, output, key } => {
            let signer = key.as_deref().map(SecretKey::load).transpose()?;
            let total = edetail_bundle::pack::source_size(&dir)?;
            let pb = out.progress(total, "packing");
            let start = Instant::now();
            let manifest = edetail_bundle::pack::pack_dir(&dir, &output, signer.as_ref(), &mut |n| pb.set_position(n))
                .map_err(|e| explain(e, &dir))?;
            pb.finish_and_clear();
            let secs = start.elapsed().as_secs_f64();
            let zip_size = fs::metadata(&output)?.len();
            let (zip_sha, _) = edetail_bundle::digest::hash_reader(BufReader::new(fs::File::open(&output)?))?;
            let mbps = total as f64 / 1e6 / secs.max(1e-9);
            out.emit(
                &json!({"ok": true, "output": output, "id": manifest.id, "version": manifest.version,
                        "files": manifest.files.len(), "content_bytes": total, "zip_bytes": zip_size,
                        "zip_sha256": zip_sha.to_hex(), "signed": signer.is_some(), "seconds": secs, "mb_per_s": mbps}),
                || {
                    format!(
                        "Packed {} v{} -> {}\n  {} files, {} content, {} zip, {:.1} MB/s{}\n  sha256 {}\n",
                        manifest.id,
                        manifest.version,
                        output.display(),
                        manifest.files.len(),
                        human_bytes(total),
                        human_bytes(zip_size),
                        mbps,
                        if signer.is_some() { ", signed" } else { ", unsigned (run `edetail bundle sign`)" },
                        zip_sha
                    )
                },
            );
            Ok(ExitCode::SUCCESS)
        }
        BundleCommand::Sign { bundle, key, output } => {
            let key = SecretKey::load(&key)?;
            let report = run_check(&bundle, &ReadOptions::allow_unsigned(), out)?;
            if !report.is_ok() {
                out.emit(&check_json(&bundle, &report), || check_human(&bundle, &report));
                bail!("not signing {}: fix the errors above first", bundle.display());
            }
            let dest = output.unwrap_or_else(|| bundle.clone());
            let input = fs::read(&bundle).with_context(|| format!("cannot read {}", bundle.display()))?;
            edetail_bundle::writer::write_atomically(&dest, |f| {
                edetail_bundle::writer::resign(std::io::Cursor::new(&input), std::io::BufWriter::new(f), &key)?;
                Ok(())
            })?;
            let key_id = key.public().key_id();
            out.emit(&json!({"ok": true, "output": dest, "key_id": key_id}), || format!("Signed {} with key {key_id}\n", dest.display()));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn exit_for(ok: bool) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// Adds a hint for problems found while packing.
fn explain(e: edetail_bundle::Error, dir: &Path) -> anyhow::Error {
    match e {
        edetail_bundle::Error::Rejected(problems) => {
            let lines: Vec<String> = problems.0.iter().filter(|p| p.is_error()).map(|p| format!("  {p}")).collect();
            anyhow::anyhow!("{} cannot be packed:\n{}", dir.display(), lines.join("\n"))
        }
        other => other.into(),
    }
}

fn read_options(pubkeys: &[PathBuf], require: bool) -> anyhow::Result<ReadOptions> {
    let keys = pubkeys.iter().map(|p| PublicKey::load(p)).collect::<Result<Vec<_>, _>>()?;
    Ok(ReadOptions { trusted_keys: keys, require_signature: require, ..Default::default() })
}

fn run_check(bundle: &Path, opts: &ReadOptions, out: &Output) -> anyhow::Result<CheckReport> {
    fs::metadata(bundle).with_context(|| format!("cannot open {}", bundle.display()))?;
    // The uncompressed total is only known once the manifest is read: count bytes instead.
    let pb = out.spinner("verifying");
    let report = check_path(bundle, opts, &mut |n| pb.set_position(n))?;
    pb.finish_and_clear();
    Ok(report)
}

/// The vendor container calls in the bundle's scripts and pages (only for a bundle that
/// verified, so nothing unverified is read).
fn vendor_calls(bundle: &Path, opts: &ReadOptions, r: &CheckReport) -> Option<CompatReport> {
    if !r.is_ok() {
        return None;
    }
    let mut archive = BundleArchive::open_path(bundle, opts).ok()?;
    compat::scan_bundle(&mut archive, 16 * 1024 * 1024).ok()
}

/// `../` references of the bundle's pages and styles that name no file of the bundle
/// (only for a bundle that verified).
fn broken_references(bundle: &Path, opts: &ReadOptions, r: &CheckReport) -> Vec<edetail_bundle::refs::BrokenReference> {
    if !r.is_ok() {
        return Vec::new();
    }
    let Ok(mut archive) = BundleArchive::open_path(bundle, opts) else { return Vec::new() };
    edetail_bundle::refs::scan_bundle(&mut archive, 16 * 1024 * 1024).unwrap_or_default()
}

/// The check's vendor-call section: unsupported calls are warnings, never errors.
fn vendor_calls_human(c: &CompatReport) -> String {
    let mut s = c.summary();
    for call in c.unsupported() {
        s.push_str(&format!(
            "warning: {} calls {} ({}x), which edetail does not support; it is recorded as unsupported_api\n",
            call.file, call.written_as, call.count
        ));
    }
    s
}

fn check_json(bundle: &Path, r: &CheckReport) -> serde_json::Value {
    json!({
        "ok": r.is_ok(),
        "bundle": bundle,
        "id": r.manifest.as_ref().map(|m| m.id.clone()),
        "version": r.manifest.as_ref().map(|m| m.version),
        "signature": r.signature,
        "errors": r.errors().count(),
        "warnings": r.problems.iter().filter(|p| p.severity == Severity::Warning).count(),
        "problems": r.problems,
        "bytes_verified": r.bytes_verified,
        "manifest": r.manifest,
    })
}

fn check_human(bundle: &Path, r: &CheckReport) -> String {
    let mut s = String::new();
    match &r.manifest {
        Some(m) => s.push_str(&format!(
            "{}: {} v{} \"{}\": {} slides in {} presentations, {} files, {}\n",
            bundle.display(),
            m.id,
            m.version,
            m.title,
            m.slides.len(),
            m.presentations.len(),
            m.files.len(),
            human_bytes(m.total_size())
        )),
        None => s.push_str(&format!("{}: manifest could not be read\n", bundle.display())),
    }
    s.push_str(&format!("signature: {}\n", signature_human(&r.signature)));
    let mut problems: Vec<&Problem> = r.problems.iter().collect();
    problems.sort_by_key(|p| std::cmp::Reverse(p.severity));
    for p in problems {
        s.push_str(&format!("{p}\n"));
    }
    let errors = r.errors().count();
    let warnings = r.problems.len() - errors;
    if errors == 0 {
        s.push_str(&format!("OK: every file verified ({warnings} warnings)\n"));
    } else {
        s.push_str(&format!("REJECTED: {errors} errors, {warnings} warnings\n"));
    }
    s
}

fn signature_human(sig: &SignatureStatus) -> String {
    match sig {
        SignatureStatus::Unsigned => "unsigned".into(),
        SignatureStatus::Verified { key_id } => format!("verified (key {key_id})"),
        SignatureStatus::NotChecked { key_id } => {
            format!("signed by key {}, not verified (pass --pubkey to verify)", key_id.as_deref().unwrap_or("?"))
        }
        SignatureStatus::Invalid => "INVALID".into(),
    }
}

fn inspect_human(m: &Manifest) -> String {
    let now = chrono::Utc::now();
    let mut s = format!(
        "\"{}\"\n  id {} version {}{}\n  product {}  locale {}  approval {}\n  valid {} .. {} ({})\n",
        m.title,
        m.id,
        m.version,
        m.version_label.as_deref().map(|l| format!(" ({l})")).unwrap_or_default(),
        m.product,
        m.locale,
        m.approval_code,
        m.valid_from.format("%Y-%m-%d"),
        m.valid_until.format("%Y-%m-%d"),
        if m.is_valid_at(now) { "valid now" } else { "NOT valid now" }
    );
    for d in &m.presentations {
        s.push_str(&format!("  presentation {} \"{}\"{}\n", d.id, d.title, if d.hidden { " (hidden)" } else { "" }));
        for (i, sid) in d.slides.iter().enumerate() {
            let Some(sl) = m.slide(sid) else { continue };
            let mut flags = Vec::new();
            if sl.hidden {
                flags.push("hidden".to_string());
            }
            if sl.bridge != edetail_bundle::Bridge::Edetail {
                flags.push(format!("{:?} bridge", sl.bridge).to_lowercase());
            }
            if let Some(sub) = &sl.sub_presentation {
                flags.push(format!("sub-presentation {sub}"));
            }
            if !sl.disabled_gestures.is_empty() {
                let g: Vec<String> = sl
                    .disabled_gestures
                    .iter()
                    .map(|g| serde_json::to_value(g).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default())
                    .collect();
                flags.push(format!("no {}", g.join("/")));
            }
            s.push_str(&format!(
                "    {:>2}. {:<24} {:<40} [{}]{}\n",
                i + 1,
                sl.id,
                sl.title,
                sl.topics.join(", "),
                if flags.is_empty() { String::new() } else { format!(" ({})", flags.join(", ")) }
            ));
        }
    }
    s
}

fn new_folder(dir: &Path, id: &str, title: &str, product: &str, locale: &str, approval: &str) -> anyhow::Result<()> {
    if dir.exists() {
        bail!("{} already exists; choose a new folder name", dir.display());
    }
    fs::create_dir_all(dir.join("slides/title"))?;
    fs::create_dir_all(dir.join("shared"))?;
    let today = chrono::Utc::now().date_naive();
    let from = today.format("%Y-%m-%dT00:00:00Z").to_string();
    let until = (today + chrono::Days::new(365)).format("%Y-%m-%dT00:00:00Z").to_string();
    let manifest = json!({
        "format_version": edetail_bundle::manifest::FORMAT_VERSION,
        "id": id, "version": 1, "version_label": "draft",
        "title": title, "product": product, "locale": locale,
        "valid_from": from, "valid_until": until,
        "approval_code": approval,
        "presentations": [{"id": "main", "title": title, "slides": ["title"]}],
        "slides": [{"id": "title", "title": title, "entry": "slides/title/index.html", "topics": ["awareness"]}],
        "shared_resources": ["shared/"]
    });
    fs::write(dir.join("edetail.json"), serde_json::to_string_pretty(&manifest)? + "\n")?;
    fs::write(
        dir.join("shared/deck.css"),
        "html,body{margin:0;height:100%;font-family:system-ui,-apple-system,sans-serif}\n.slide{width:1024px;height:768px;padding:48px;box-sizing:border-box}\n",
    )?;
    fs::write(
        dir.join("slides/title/index.html"),
        format!(
            "<!doctype html>\n<html lang=\"{locale}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=1024,height=768\">\n<title>{title}</title>\n<link rel=\"stylesheet\" href=\"../../shared/deck.css\">\n<script src=\"/_edetail/edetail.js\"></script>\n</head>\n<body>\n<main class=\"slide\">\n<h1>{title}</h1>\n<p>Approval {approval}</p>\n</main>\n</body>\n</html>\n",
            title = html_escape(title),
            approval = html_escape(approval),
        ),
    )?;
    Ok(())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
