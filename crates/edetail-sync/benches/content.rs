//! Content download: delta updates and resumed downloads of a ~200 MB deck (`EDETAIL_BENCH_MB`),
//! measured in bytes on the wire by a counting proxy between the device and a hub on loopback.
//!
//! 1. **Full install** of v1 (information: MB/s end to end, bytes on the wire vs content; a
//!    first install of a many-file deck goes through the whole zip).
//! 2. **Delta**: v2 changes one slide (its HTML and its image). Bytes received by the device
//!    during the v2 sync, against the changed files' size plus the v2 manifest. Target: within
//!    5% (ratio <= 1.05).
//! 3. **Resume**: a fresh device installs v1; the proxy cuts the stream when 90% of the bytes
//!    have gone down; the engine retries and resumes its partial file with Range. Re-downloaded
//!    bytes = bytes received in total - bytes a clean install receives (step 1). Target: under
//!    1% of the total.
//!
//! Run: `cargo bench -p edetail-sync --bench content`.

#[path = "common/mod.rs"]
mod common;

use std::fs;
use std::sync::Arc;
use std::time::Instant;

use edetail_bundle::{BundleArchive, ReadOptions};
use edetail_core::Device;

use common::*;

const BUNDLE: &str = "com.example.bench-deck";

struct Deck {
    v1: Vec<u8>,
    v2: Vec<u8>,
    content: u64,
    changed: u64,
    manifest_v2: u64,
}

/// Builds (or reuses from target/bench-fixtures) the v1 and v2 zips.
fn deck(total_mb: u64) -> Deck {
    let dir = fixtures_dir(&format!("sync-deck-{total_mb}"));
    let (v1, v2, meta) = (dir.join("v1.zip"), dir.join("v2.zip"), dir.join("meta.json"));
    if !meta.exists() {
        let _ = fs::remove_dir_all(&dir);
        let src = dir.join("src");
        generate_mixed(&src, BUNDLE, 1, total_mb);
        pack(&src, &v1);
        // v2: one slide changes, its HTML and its image; everything else is the same bytes.
        let m = src.join("edetail.json");
        let mut manifest: serde_json::Value = serde_json::from_slice(&fs::read(&m).expect("read")).expect("json");
        manifest["version"] = 2.into();
        fs::write(&m, serde_json::to_vec_pretty(&manifest).expect("json")).expect("write");
        let html = src.join("slides/s007/index.html");
        fs::write(&html, format!("<!doctype html><title>s007</title><p>{}</p>", String::from_utf8_lossy(&text(77_777, 700))))
            .expect("write");
        let img = src.join("slides/s007/img-7.png");
        let img_len = fs::metadata(&img).expect("image").len();
        write_noise_file(&img, 424_242, img_len);
        pack(&src, &v2);
        let changed = fs::metadata(&html).expect("html").len() + img_len;
        let content = dir_size(&src);
        fs::remove_dir_all(&src).expect("rm src");
        fs::write(&meta, serde_json::json!({"changed": changed, "content": content}).to_string()).expect("meta");
    }
    let meta: serde_json::Value = serde_json::from_slice(&fs::read(&meta).expect("meta")).expect("meta json");
    let manifest_v2 =
        BundleArchive::open_path(&v2, &ReadOptions::signed_by(vec![key().public()])).expect("v2").manifest_bytes().len() as u64;
    Deck {
        v1: fs::read(&v1).expect("v1"),
        v2: fs::read(&v2).expect("v2"),
        content: meta["content"].as_u64().expect("content"),
        changed: meta["changed"].as_u64().expect("changed"),
        manifest_v2,
    }
}

fn verify_active(device: &Device, version: u64) {
    assert_eq!(device.content().active_version(BUNDLE).expect("active"), Some(version));
}

fn fresh_device(name: &str) -> (tempfile::TempDir, Arc<Device>) {
    let dir = scratch(name);
    let device = Arc::new(Device::open(&dir.path().join("device"), config()).expect("device"));
    (dir, device)
}

fn main() {
    let total_mb = env_usize("EDETAIL_BENCH_MB", 200) as u64;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let t = Instant::now();
    let d = deck(total_mb);
    println!(
        "content: deck of {:.0} MB ({} files), zip {:.0} MB; one slide changed in v2: {:.0} KB; v2 manifest {:.0} KB (ready in {:.0} s)",
        mb(d.content),
        MIXED_FILES,
        mb(d.v1.len() as u64),
        d.changed as f64 / 1024.0,
        d.manifest_v2 as f64 / 1024.0,
        t.elapsed().as_secs_f64()
    );

    let hub = start_hub(&rt, Backend::Sqlite, "content-hub");
    hub.hub.publish_zip(&d.v1, &[]).expect("publish v1");
    let proxy = CountingProxy::start(&rt, &hub.url);

    // 1. Full install.
    let (_keep, device) = fresh_device("content-dev");
    let creds = hub.hub.add_device("rep-bench", "north").expect("device");
    let engine = engine(&device, &proxy.url(), &creds);
    sync_disk();
    let (t, before) = (Instant::now(), proxy.down_bytes());
    let r = engine.sync_now().expect("install sync");
    let full_secs = t.elapsed().as_secs_f64();
    let full_bytes = proxy.down_bytes() - before;
    verify_active(&device, 1);
    println!(
        "  full install of v1: {:.1} s, {:.0} MB/s; {} blobs, {} bundle(s) from the whole zip; {:.1} MB on the wire = {:.4}x the content",
        full_secs,
        mb(d.content) / full_secs,
        r.blobs_downloaded,
        r.bundles_from_zip,
        mb(full_bytes),
        full_bytes as f64 / d.content as f64
    );

    // 2. Delta update.
    hub.hub.publish_zip(&d.v2, &[]).expect("publish v2");
    let before = proxy.down_bytes();
    let r = engine.sync_now().expect("delta sync");
    let delta = proxy.down_bytes() - before;
    verify_active(&device, 2);
    let budget = d.changed + d.manifest_v2;
    let ratio = delta as f64 / budget as f64;
    println!(
        "  delta v1 -> v2: {} blob(s), {:.1} KB on the wire vs changed files + manifest {:.1} KB: ratio {:.3} (target <= 1.05: {})",
        r.blobs_downloaded,
        delta as f64 / 1024.0,
        budget as f64 / 1024.0,
        ratio,
        if ratio <= 1.05 { "MET" } else { "MISSED" }
    );
    drop(engine);

    // 3. Resume after a cut at 90%.
    let (_keep2, device2) = fresh_device("content-dev2");
    let creds2 = hub.hub.add_device("rep-bench", "north").expect("device");
    // The hub offers v2 now: a clean install of v2 receives what a clean v1 install did, give
    // or take the changed files; measure it on a third device for the exact baseline.
    let (_keep3, device3) = fresh_device("content-dev3");
    let creds3 = hub.hub.add_device("rep-bench", "north").expect("device");
    let clean = engine_for(&device3, &proxy, &creds3);
    let before = proxy.down_bytes();
    clean.sync_now().expect("clean install");
    let clean_bytes = proxy.down_bytes() - before;
    verify_active(&device3, 2);

    let resuming = engine_for(&device2, &proxy, &creds2);
    let before = proxy.down_bytes();
    proxy.cut_after(clean_bytes * 9 / 10);
    let t = Instant::now();
    let mut syncs = 0;
    let report = loop {
        syncs += 1;
        match resuming.sync_now() {
            Ok(r) => break r,
            Err(e) if syncs < 5 => eprintln!("  (sync {syncs} stopped: {e}; syncing again)"),
            Err(e) => panic!("resume never completed: {e}"),
        }
    };
    let secs = t.elapsed().as_secs_f64();
    assert!(proxy.cut_done.load(std::sync::atomic::Ordering::Relaxed), "the cut happened");
    let total = proxy.down_bytes() - before;
    verify_active(&device2, 2);
    let again = total.saturating_sub(clean_bytes);
    let pct = again as f64 * 100.0 / clean_bytes as f64;
    println!(
        "  resume after a cut at 90%: {} failed attempt(s), {} blob(s) and {} zip(s) resumed, {:.1} s; {:.1} MB received vs {:.1} MB \
         clean: re-downloaded {:.1} KB = {:.3}% (target < 1%: {})",
        report.failed_attempts,
        report.blobs_resumed,
        report.zips_resumed,
        secs,
        mb(total),
        mb(clean_bytes),
        again as f64 / 1024.0,
        pct,
        if pct < 1.0 { "MET" } else { "MISSED" }
    );
}

fn engine_for(device: &Arc<Device>, proxy: &CountingProxy, creds: &edetail_hub::DeviceCredentials) -> edetail_sync::SyncEngine {
    engine(device, &proxy.url(), creds)
}
