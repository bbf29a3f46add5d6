//! Helpers shared by the edetail-core benchmarks (each bench includes this module).
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use edetail_bundle::SecretKey;
use edetail_core::{DeviceConfig, ManualClock};

pub fn key() -> SecretKey {
    SecretKey::from_seed(&[11; 32])
}

/// A device config trusting [`key`], with a fixed wall clock inside every bundle's validity.
pub fn config() -> DeviceConfig {
    let clock = Arc::new(ManualClock::new(chrono::DateTime::from_timestamp(1_795_000_000, 0).expect("valid time")));
    DeviceConfig { trusted_keys: vec![key().public()], clock, ..DeviceConfig::new("rep-bench") }
}

/// Scratch space on the same disk as the build (target/tmp), removed on drop.
pub fn scratch(name: &str) -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(base).expect("target tmp dir");
    tempfile::Builder::new().prefix(&format!("bench-{name}-")).tempdir_in(base).expect("tempdir")
}

/// Cached fixtures: `target/bench-fixtures/<name>`.
pub fn fixtures_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("bench-fixtures").join(name)
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// xorshift64: deterministic incompressible bytes (media).
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    Noise::new(seed).fill(&mut v);
    v
}

/// Writes `len` random bytes to `path` in 1 MiB chunks (never holds the file in memory).
pub fn write_noise_file(path: &Path, seed: u64, len: u64) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut f = std::io::BufWriter::new(fs::File::create(path).expect("create"));
    let mut n = Noise::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        n.fill(&mut buf[..k]);
        f.write_all(&buf[..k]).expect("write");
        left -= k as u64;
    }
    f.flush().expect("flush");
}

/// Text that compresses like real HTML/CSS/JS (~4-6x).
pub fn text(seed: u64, len: usize) -> Vec<u8> {
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
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
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

/// Writes an authoring folder (`edetail.json` + files) for bundle `id`: `slides` slides, each
/// with an index.html, plus whatever `extra` adds.
pub fn authoring_folder(dir: &Path, id: &str, version: u64, slides: usize) {
    let ids: Vec<String> = (0..slides).map(|i| format!("s{i:03}")).collect();
    for (i, s) in ids.iter().enumerate() {
        let p = dir.join(format!("slides/{s}/index.html"));
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(
            p,
            format!(
                "<!doctype html><title>{s}</title><link rel=stylesheet href=../../shared/deck.css><p>{}</p>",
                String::from_utf8_lossy(&text(i as u64 + version, 600))
            ),
        )
        .expect("write");
    }
    let css = dir.join("shared/deck.css");
    fs::create_dir_all(css.parent().expect("parent")).expect("mkdir");
    fs::write(css, text(7, 2048)).expect("write");
    let slide_json: Vec<_> = ids
        .iter()
        .map(|s| serde_json::json!({"id": s, "title": s, "entry": format!("slides/{s}/index.html"), "topics": ["efficacy"]}))
        .collect();
    let manifest = serde_json::json!({
        "id": id, "version": version, "title": "Bench", "product": "bench", "locale": "en-GB",
        "valid_from": "2020-01-01T00:00:00Z", "valid_until": "2099-01-01T00:00:00Z", "approval_code": "BENCH-1",
        "presentations": [{"id": "main", "title": "Main", "slides": ids}],
        "slides": slide_json,
        "shared_resources": ["shared/"]
    });
    fs::write(dir.join("edetail.json"), serde_json::to_vec_pretty(&manifest).expect("json")).expect("write");
}

/// Packs and signs an authoring folder into `dest`.
pub fn pack(dir: &Path, dest: &Path) {
    edetail_bundle::pack::pack_dir(dir, dest, Some(&key()), &mut |_| {}).expect("pack");
}

/// Percentile (0..=100) of sorted durations.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A `/proc/self/status` field in KiB (VmRSS, VmHWM).
pub fn proc_status_kib(field: &str) -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

/// Runs `sync` so one measurement's dirty pages do not spill into the next.
pub fn sync_disk() {
    let _ = std::process::Command::new("sync").status();
}

/// This process's user + system CPU seconds so far (from /proc/self/stat, 100 ticks/s).
pub fn cpu_secs() -> f64 {
    let s = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is index 0, utime index 11, stime index 12.
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    tick(11) + tick(12)
}

/// Files in a [`generate_mixed`] deck besides `edetail.json`.
pub const MIXED_FILES: usize = 1 + 40 + 2 + 200 + 5 + 400;

/// A mixed deck of about `total_mb`: 55% video, 25% images, 10% PDFs (all stored), 10%
/// HTML/CSS/JS (deflated), 40 slides. Returns the content size.
pub fn generate_mixed(dir: &Path, id: &str, version: u64, total_mb: u64) -> u64 {
    authoring_folder(dir, id, version, 40);
    let total = total_mb << 20;
    for i in 0..2 {
        write_noise_file(&dir.join(format!("media/video-{i}.mp4")), 100 + i, total * 55 / 100 / 2);
    }
    for i in 0..200u64 {
        let ext = if i % 2 == 0 { "jpg" } else { "png" };
        write_noise_file(&dir.join(format!("slides/s{:03}/img-{i}.{ext}", i % 40)), 1000 + i, total * 25 / 100 / 200);
    }
    for i in 0..5 {
        write_noise_file(&dir.join(format!("media/doc-{i}.pdf")), 5000 + i, total * 10 / 100 / 5);
    }
    for i in 0..400u64 {
        let rel = match i % 3 {
            0 => format!("slides/s{:03}/slide-{i}.css", i % 40),
            1 => format!("slides/s{:03}/slide-{i}.js", i % 40),
            _ => format!("shared/lib-{i}.js"),
        };
        fs::write(dir.join(rel), text(9000 + i, (total * 10 / 100 / 400) as usize)).expect("write");
    }
    dir_size(dir)
}

pub fn dir_size(dir: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(dir).expect("readdir") {
        let p = e.expect("entry").path();
        n += if p.is_dir() {
            dir_size(&p)
        } else if p.file_name().is_some_and(|f| f != "edetail.json") {
            fs::metadata(&p).expect("meta").len()
        } else {
            0
        };
    }
    n
}
