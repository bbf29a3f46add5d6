//! `edetail device sync` SIGKILLed at random points while it uploads thousands of events and
//! while it downloads a bundle of tens of MB, against the real hub (`edetail_hub::spawn_local`)
//! behind an `edetail_faultproxy::FaultProxy` whose slow link leaves time to kill it; then one
//! sync runs to completion. The hub must hold exactly the recorded events (no loss, no
//! duplicates), the outbox nothing pending, the bundle must be active with every file verified,
//! and the bytes sent over all attempts must stay close to the bundle's size (downloads resume).
//!
//! Seeded: the seed is printed; replay with `EDETAIL_KILL_SEED=<n>` (the seed fixes when each
//! kill happens; what the child had done by then also depends on timing).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{KillOnDrop, Rng, TERRITORY, assert_installed, bundle_with_media, files_bytes, path_str, publisher_key, record_events};
use edetail_core::{Device, DeviceConfig};
use edetail_faultproxy::{FaultPlan, FaultProxy};
use edetail_hub::{DeviceCredentials, HubConfig};

const EVENTS: usize = 6_000;
const UPLOAD_KILLS: usize = 5;
const DOWNLOAD_KILLS: usize = 5;
/// Response bandwidth while uploading: an ack of 500 events (~20 KB) takes half a second, so
/// the 12 batches take at least 6 s, more than all the kill delays together.
const UPLOAD_LINK: u64 = 40 * 1024;
/// Kill delays after spawning the uploading child (ms).
const UPLOAD_KILL_AFTER: (u64, u64) = (300, 1_000);
/// Response bandwidth while downloading: slow enough that all the kill delays together
/// (at most 6 s, at most 6 MB) stay inside the first 8 MB media file, so the last kill always
/// leaves a partial file for the final sync to resume (at 4 MB/s a kill could land just after
/// a file completed, leaving nothing partial). The final sync runs at full speed.
const DOWNLOAD_LINK: u64 = 1024 * 1024;
const DOWNLOAD_KILL_AFTER: (u64, u64) = (300, 1_200);
const MEDIA_FILES: usize = 3;
const MEDIA_BYTES: usize = 8 * 1024 * 1024;
/// What one kill may cost on top of the bundle: bytes in flight in socket buffers, and the
/// change page the next attempt fetches again.
const BYTES_LOST_PER_KILL: u64 = 256 * 1024;

fn sync_command(data: &Path, hub_url: &str, creds: &DeviceCredentials, pubkey: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edetail"));
    c.args(["--json", "device", "--data", path_str(data), "sync", "--hub", hub_url, "--token", &creds.token])
        .args(["--device-id", &creds.device_id, "--pubkey", path_str(pubkey)])
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Spawns the sync and SIGKILLs it after a seeded delay; panics if it finished before (the link
/// is meant to be too slow for that).
fn kill_after(cmd: &mut Command, rng: &mut Rng, (lo, hi): (u64, u64), what: &str) -> u64 {
    let child = KillOnDrop(cmd.stdout(Stdio::null()).spawn().expect("edetail runs"));
    let delay = rng.between(lo, hi);
    std::thread::sleep(Duration::from_millis(delay));
    assert!(child.kill(), "the sync finished before its kill at {delay} ms ({what}): slow the link");
    delay
}

/// Runs the sync to completion; answers its JSON report.
fn sync_to_completion(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.stdout(Stdio::piped()).output().expect("edetail runs");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert!(out.status.success() && v["ok"] == true, "the sync after the kills fails: {v}");
    v["sync"].clone()
}

#[test]
fn device_sync_killed_mid_upload_and_mid_download_uploads_once_and_resumes() {
    let started = Instant::now();
    let seed = common::seed("EDETAIL_KILL_SEED");
    eprintln!("device kill seed: EDETAIL_KILL_SEED={seed}");
    let mut rng = Rng::new(seed);

    let tmp = common::scratch_dir();
    let (key, pubkey) = publisher_key(tmp.path());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (hub_url, hub, _task) =
        rt.block_on(edetail_hub::spawn_local(HubConfig::local(tmp.path().join("hub"), vec![key.public()]))).expect("hub starts");
    let proxy =
        rt.block_on(FaultProxy::start(hub_url.trim_start_matches("http://").parse().expect("addr"), FaultPlan::default())).expect("proxy");
    let creds = hub.add_device("rep-1", TERRITORY).expect("device added");

    // Thousands of events recorded, then the Device closed so that the child can lock the dir.
    let data = tmp.path().join("device");
    let device_config = || DeviceConfig { trusted_keys: vec![key.public()], ..DeviceConfig::new("rep-1") };
    let recorded = {
        let device = Device::open(&data, device_config()).expect("device opens");
        record_events(&device, EVENTS)
    };
    let recorded_in = started.elapsed();
    let mut cmd = sync_command(&data, &proxy.url(), &creds, &pubkey);

    // Upload, killed again and again.
    proxy.set_link_bandwidth(Some(UPLOAD_LINK));
    let mut stored_after_kills = Vec::new();
    for k in 0..UPLOAD_KILLS {
        kill_after(&mut cmd, &mut rng, UPLOAD_KILL_AFTER, &format!("upload kill {}", k + 1));
        stored_after_kills.push(hub.events_for_device(&creds.device_id).expect("events").len());
    }
    let last = *stored_after_kills.last().expect("kills");
    assert!(last > 0 && last < EVENTS, "the kills interrupted an upload in progress: {stored_after_kills:?}");
    let upload = sync_to_completion(&mut cmd);

    let stored = hub.events_for_device(&creds.device_id).expect("events");
    let stored_uuids: BTreeSet<String> = stored.iter().map(|e| e.uuid.clone()).collect();
    assert_eq!(stored.len(), EVENTS, "no event stored twice");
    assert_eq!(stored_uuids, recorded, "the hub holds exactly the recorded events");
    let hub_stats = hub.stats().expect("stats");
    let dev_stats = &hub_stats.devices[0];
    assert_eq!((dev_stats.events_received, dev_stats.rejected, dev_stats.watermark), (EVENTS as u64, 0, EVENTS as i64));

    // Download of tens of MB, killed again and again.
    let bundle = bundle_with_media(MEDIA_FILES, MEDIA_BYTES, seed);
    hub.publish_zip(&bundle.zip(Some(&key)), &[TERRITORY.to_string()]).expect("published");
    proxy.set_link_bandwidth(Some(DOWNLOAD_LINK));
    let bytes_before = proxy.stats().response_bytes.load(std::sync::atomic::Ordering::SeqCst);
    let mut partial_after_kills = Vec::new();
    for k in 0..DOWNLOAD_KILLS {
        kill_after(&mut cmd, &mut rng, DOWNLOAD_KILL_AFTER, &format!("download kill {}", k + 1));
        partial_after_kills.push(dir_bytes(&data.join(edetail_sync::engine::TMP_DIR)));
    }
    {
        let device = Device::open(&data, device_config()).expect("device opens");
        assert_eq!(device.content().active_version(common::BUNDLE).expect("active"), None, "the kills interrupted the download");
    }
    assert!(
        partial_after_kills.last().is_some_and(|&b| b > 0 && b < MEDIA_BYTES as u64),
        "the last kill left a partial first media file: {partial_after_kills:?}"
    );
    proxy.set_link_bandwidth(None);
    let download = sync_to_completion(&mut cmd);
    let sent = proxy.stats().response_bytes.load(std::sync::atomic::Ordering::SeqCst) - bytes_before;
    let bundle_bytes = files_bytes(&bundle);

    let device = Arc::new(Device::open(&data, device_config()).expect("device opens"));
    assert_installed(&device, &bundle);
    let outbox = device.outbox().stats().expect("outbox");
    assert_eq!((outbox.pending, outbox.parked, outbox.acked), (0, 0, EVENTS as i64), "{outbox:?}");
    assert_eq!(dir_bytes(&data.join(edetail_sync::engine::TMP_DIR)), 0, "no partial download left");
    eprintln!(
        "device kills: {EVENTS} events recorded in {recorded_in:.1?}; upload killed {UPLOAD_KILLS}x (hub held {stored_after_kills:?}), \
         final sync accepted {} + {} duplicates; hub absorbed {} duplicates",
        upload["events_accepted"], upload["events_duplicates"], dev_stats.duplicates_absorbed
    );
    eprintln!(
        "device kills: download killed {DOWNLOAD_KILLS}x (partial bytes on disk {partial_after_kills:?}), final sync fetched {} bytes \
         ({} blobs resumed); {sent} bytes sent over all attempts for a {bundle_bytes}-byte bundle ({:.3}x); elapsed {:.1?}",
        download["bytes_downloaded"],
        download["blobs_resumed"],
        sent as f64 / bundle_bytes as f64,
        started.elapsed()
    );
    assert!(download["blobs_resumed"].as_u64().unwrap_or(0) >= 1, "the final sync resumed a partial download: {download}");
    assert!(
        sent <= bundle_bytes + DOWNLOAD_KILLS as u64 * BYTES_LOST_PER_KILL,
        "{sent} bytes sent for a {bundle_bytes}-byte bundle: downloads did not resume"
    );
    drop(proxy);
    drop(rt);
}

/// Bytes of the files directly in `dir` (0 when it does not exist).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
}
