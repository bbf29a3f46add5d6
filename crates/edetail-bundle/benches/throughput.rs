//! Bundle throughput benchmark: `pack` and full-verification `check` on a generated bundle of
//! mixed media (default 200 MB), beside `unzip -t` + `sha256sum` over the same content, all
//! measured in the same run. Reports MB/s and the ratio baseline_time / check_time (the target
//! is >= 1.0: check at least as fast as the two baseline tools together).
//!
//! Run: `cargo bench -p edetail-bundle --bench throughput` (EDETAIL_BENCH_MB=N to resize,
//! EDETAIL_BENCH_RUNS=N for repetitions; the median is reported).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use edetail_bundle::{ReadOptions, SecretKey, check_path, pack};

/// Deterministic pseudo-random bytes (incompressible, like real media).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Text that compresses like real HTML/CSS/JS (~4-6x).
fn text(seed: u64, len: usize) -> Vec<u8> {
    let words = [
        "slide",
        "efficacy",
        "<div class=\"panel\">",
        "</div>",
        "margin:0 auto;",
        "function track(e){",
        "return",
        "hazard ratio",
        "0.78",
        "95% CI",
        "dose",
        "titration",
        "eGFR",
        "color:#1a4b8c;",
        "\n",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
        out.push(b' ');
        if x.is_multiple_of(7) {
            out.extend_from_slice(format!("{}", x % 100_000).as_bytes());
        }
    }
    out.truncate(len);
    out
}

fn generate(dir: &Path, total_mb: usize) {
    let mb = 1024 * 1024;
    let put = |rel: String, bytes: Vec<u8>| {
        let p = dir.join(&rel);
        fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        fs::write(p, bytes).expect("write");
    };
    // Shares of the total: 55% video, 25% images, 10% PDFs, 10% text.
    let total = total_mb * mb;
    let videos = 2;
    for i in 0..videos {
        put(format!("media/video-{i}.mp4"), noise(100 + i as u64, total * 55 / 100 / videos));
    }
    let images = 200;
    for i in 0..images {
        let ext = if i % 2 == 0 { "jpg" } else { "png" };
        put(format!("slides/s{:03}/img-{i}.{ext}", i % 40), noise(1000 + i as u64, total * 25 / 100 / images));
    }
    let pdfs = 5;
    for i in 0..pdfs {
        put(format!("media/doc-{i}.pdf"), noise(5000 + i as u64, total * 10 / 100 / pdfs));
    }
    let texts = 400;
    let mut slide_ids = Vec::new();
    for i in 0..texts {
        let (rel, len) = match i % 4 {
            0 if i / 4 < 40 => (format!("slides/s{:03}/index.html", i / 4), total * 10 / 100 / texts),
            0 | 1 => (format!("slides/s{:03}/slide-{i}.css", i / 4 % 40), total * 10 / 100 / texts),
            2 => (format!("slides/s{:03}/slide-{i}.js", i / 4 % 40), total * 10 / 100 / texts),
            _ => (format!("shared/lib-{i}.js"), total * 10 / 100 / texts),
        };
        if i % 4 == 0 && i / 4 < 40 {
            slide_ids.push(format!("s{:03}", i / 4));
        }
        put(rel, text(9000 + i as u64, len));
    }
    let slides: Vec<_> = slide_ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "title": id, "entry": format!("slides/{id}/index.html"), "topics": ["efficacy"]}))
        .collect();
    let manifest = serde_json::json!({
        "id": "com.example.bench", "version": 1, "title": "Bench", "product": "bench", "locale": "en-GB",
        "valid_from": "2020-01-01T00:00:00Z", "valid_until": "2099-01-01T00:00:00Z", "approval_code": "BENCH-1",
        "presentations": [{"id": "main", "title": "Main", "slides": slide_ids}],
        "slides": slides
    });
    fs::write(dir.join("edetail.json"), serde_json::to_vec_pretty(&manifest).expect("json")).expect("write");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed().as_secs_f64(), r)
}

fn run_tool(cmd: &mut Command) -> f64 {
    let (secs, status) = time(|| cmd.status().expect("baseline tool runs"));
    assert!(status.success(), "baseline failed: {cmd:?}");
    secs
}

fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("readdir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(list_files(&p));
        } else if p.file_name().is_some_and(|n| n != "edetail.json") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    let total_mb: usize = std::env::var("EDETAIL_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let runs: usize = std::env::var("EDETAIL_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    for tool in ["unzip", "sha256sum"] {
        if Command::new(tool).arg("-h").output().is_err() && Command::new(tool).arg("--help").output().is_err() {
            eprintln!("{tool} is not installed (apt-get install -y unzip coreutils); the baseline needs it");
            std::process::exit(2);
        }
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, total_mb);
    let files = list_files(&src);
    let bytes: u64 = files.iter().map(|f| fs::metadata(f).expect("stat").len()).sum();
    let mb = bytes as f64 / 1e6;
    let key = SecretKey::from_seed(&[42; 32]);
    let opts = ReadOptions::signed_by(vec![key.public()]);
    let zip = tmp.path().join("bench.zip");

    let (mut pack_t, mut check_t, mut unzip_t, mut sha_t) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let (t, r) = time(|| pack::pack_dir(&src, &zip, Some(&key), &mut |_| {}));
        r.expect("pack succeeds");
        pack_t.push(t);
        let (t, report) = time(|| check_path(&zip, &opts, &mut |_| {}).expect("check runs"));
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!(report.bytes_verified, bytes, "check must inflate and hash every byte");
        check_t.push(t);
        unzip_t.push(run_tool(Command::new("unzip").arg("-tqq").arg(&zip)));
        sha_t.push(run_tool(Command::new("sha256sum").args(&files).stdout(std::process::Stdio::null())));
    }
    let (pack_s, check_s, unzip_s, sha_s) = (median(pack_t), median(check_t), median(unzip_t), median(sha_t));
    let baseline = unzip_s + sha_s;
    let zip_mb = fs::metadata(&zip).expect("zip exists").len() as f64 / 1e6;
    let mut out = std::io::stdout().lock();
    writeln!(out, "bundle: {mb:.1} MB content in {} files, {zip_mb:.1} MB zip; median of {runs} runs", files.len()).ok();
    writeln!(out, "pack (sign, deflate text, store media): {pack_s:.3} s  {:.0} MB/s", mb / pack_s).ok();
    writeln!(out, "check (full verification, signed):      {check_s:.3} s  {:.0} MB/s", mb / check_s).ok();
    writeln!(out, "baseline unzip -t:                      {unzip_s:.3} s  {:.0} MB/s", mb / unzip_s).ok();
    writeln!(out, "baseline sha256sum:                     {sha_s:.3} s  {:.0} MB/s", mb / sha_s).ok();
    writeln!(out, "baseline total (unzip -t + sha256sum):  {baseline:.3} s  {:.0} MB/s", mb / baseline).ok();
    writeln!(out, "ratio check vs baseline (baseline_time / check_time): {:.2}x (target >= 1.0)", baseline / check_s).ok();
}
