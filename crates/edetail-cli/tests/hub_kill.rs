//! `edetail hub serve` SIGKILLed at random points while a device (an in-process `SyncEngine`)
//! uploads thousands of events in batches, and again while it downloads large blobs; each time
//! the hub is restarted on the same port and data directory. The device talks to it through an
//! `edetail_faultproxy::FaultProxy` (a slow link for the blobs). In the end every event is stored
//! exactly once, the outbox is fully acknowledged, the hub's duplicate count agrees with what
//! the device was told, and the interrupted blobs were resumed, not fetched again.
//!
//! Seeded: the seed is printed; replay with `EDETAIL_KILL_SEED=<n>`.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{KillOnDrop, Rng, TERRITORY, assert_installed, bundle_with_media, files_bytes, path_str, publisher_key, record_events};
use edetail_core::{Device, DeviceConfig};
use edetail_faultproxy::{FaultPlan, FaultProxy};
use edetail_hub::{Hub, HubConfig};
use edetail_sync::{StaticToken, SyncConfig, SyncEngine, SyncListener, SyncProgress, SyncState, Timeouts};

const EVENTS: usize = 6_000;
const UPLOAD_KILLS: usize = 5;
/// Response bandwidth while uploading: an ack of 500 events (~20 KB) takes ~0.2 s, so that
/// batches are in flight most of the time.
const UPLOAD_LINK: u64 = 100 * 1024;
/// When the hub is killed: this long after a batch reached the proxy (ms), i.e. while the hub
/// applies it or answers.
const UPLOAD_KILL_AFTER: (u64, u64) = (0, 200);
/// How long the hub stays dead (ms).
const DOWN_FOR: (u64, u64) = (0, 300);
const DOWNLOAD_KILLS: usize = 2;
const DOWNLOAD_LINK: u64 = 4 * 1024 * 1024;
const MEDIA_FILES: usize = 2;
const MEDIA_BYTES: usize = 8 * 1024 * 1024;
/// Where in a media file (bytes forwarded by the proxy) the hub is killed: early enough that
/// more than a full kernel send buffer (`tcp_wmem` max, 4 MB by default) of the file remains.
const KILL_INTO_MEDIA: (u64, u64) = (256 * 1024, 3 * 1024 * 1024);
/// What one kill may cost on top of the bundle (see `sync_kill.rs`).
const BYTES_LOST_PER_KILL: u64 = 256 * 1024;
/// The whole scenario must end well within this.
const DEADLINE: Duration = Duration::from_secs(50);
/// Short, so that a sync waiting on a dead hub gives up quickly (restarts are sub-second).
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    upload: Duration::from_secs(10),
    changes: Duration::from_secs(10),
    idle: Duration::from_secs(5),
};

fn edetail_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_edetail")).arg("--json").args(args).output().expect("edetail runs");
    assert!(out.status.success(), "edetail {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// `edetail hub serve` on a fixed port; returns once it printed its address (it is listening).
struct HubServer {
    data: PathBuf,
    port: u16,
    pubkey: PathBuf,
    process: Option<KillOnDrop>,
    starts: usize,
}

impl HubServer {
    fn start(&mut self) {
        let listen = format!("127.0.0.1:{}", self.port);
        let mut child = Command::new(env!("CARGO_BIN_EXE_edetail"))
            .args(["hub", "serve", "--data", path_str(&self.data), "--listen", &listen, "--publisher-key", path_str(&self.pubkey)])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("edetail hub serve runs");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("first line");
        assert_eq!(first.trim(), format!("hub: http://{listen}/"), "the hub (re)started on its port");
        self.process = Some(KillOnDrop(child));
        self.starts += 1;
    }

    fn kill(&mut self) {
        let process = self.process.take().expect("running");
        assert!(process.kill(), "the hub was running");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// What the engine told the app, summed over every sync.
#[derive(Default)]
struct Observed {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    failed_attempts: AtomicU64,
    blobs_resumed: AtomicU64,
}

impl SyncListener for Observed {
    fn on_progress(&self, p: SyncProgress) {
        match p {
            SyncProgress::EventsUploaded { accepted, duplicates, .. } => {
                self.accepted.fetch_add(accepted as u64, Ordering::SeqCst);
                self.duplicates.fetch_add(duplicates as u64, Ordering::SeqCst);
            }
            SyncProgress::StateChanged { state: SyncState::Waiting { .. } } => {
                self.failed_attempts.fetch_add(1, Ordering::SeqCst);
            }
            SyncProgress::BlobStored { resumed: true, .. } => {
                self.blobs_resumed.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

/// Syncs on a thread until `done`, as an app retrying after failures would; answers the number
/// of syncs and of failed ones.
fn sync_until(engine: Arc<SyncEngine>, started: Instant, done: impl Fn() -> bool + Send + 'static) -> std::thread::JoinHandle<(u32, u32)> {
    std::thread::spawn(move || {
        let (mut syncs, mut failed) = (0, 0);
        loop {
            syncs += 1;
            let ok = engine.sync_now().is_ok();
            if !ok {
                failed += 1;
            }
            if ok && done() {
                return (syncs, failed);
            }
            assert!(started.elapsed() < DEADLINE, "no complete sync before the deadline ({syncs} syncs)");
        }
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[test]
fn hub_killed_mid_batch_and_mid_blob_ends_exactly_once_and_resumes() {
    let started = Instant::now();
    let seed = common::seed("EDETAIL_KILL_SEED");
    eprintln!("hub kill seed: EDETAIL_KILL_SEED={seed}");
    let mut rng = Rng::new(seed);

    let tmp = common::scratch_dir();
    let (key, pubkey) = publisher_key(tmp.path());
    let data = tmp.path().join("hub");
    let dev = edetail_json(&["hub", "device", "add", "--data", path_str(&data), "--rep", "rep-1", "--territory", TERRITORY]);
    let device_id = dev["device_id"].as_str().expect("device id").to_string();
    let token = dev["token"].as_str().expect("token").to_string();
    let publisher = edetail_json(&["hub", "publisher", "add", "--data", path_str(&data), "--name", "content"]);
    let mut hub = HubServer { data: data.clone(), port: free_port(), pubkey, process: None, starts: 0 };
    hub.start();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let upstream = format!("127.0.0.1:{}", hub.port).parse().expect("addr");
    let proxy = rt.block_on(FaultProxy::start(upstream, FaultPlan::default())).expect("proxy");

    let device_dir = tmp.path().join("device");
    let device = Arc::new(
        Device::open(&device_dir, DeviceConfig { trusted_keys: vec![key.public()], ..DeviceConfig::new("rep-1") }).expect("device"),
    );
    let recorded = record_events(&device, EVENTS);
    let config = SyncConfig { timeouts: TIMEOUTS, ..SyncConfig::new(proxy.url(), device_id.clone(), Arc::new(StaticToken(token))) };
    let engine = Arc::new(SyncEngine::new(device.clone(), config).expect("engine"));
    let observed = Arc::new(Observed::default());
    engine.set_listener(observed.clone());

    // Upload while the hub is killed and restarted under it.
    proxy.set_link_bandwidth(Some(UPLOAD_LINK));
    let uploading = {
        let device = device.clone();
        sync_until(engine.clone(), started, move || device.outbox().stats().expect("stats").pending == 0)
    };
    let mut pending_at_kills = Vec::new();
    let mut failed_attempts_at_kills = Vec::new();
    for k in 0..UPLOAD_KILLS {
        // Wait for the next batch to reach the proxy (the device retries after each restart).
        let requests = proxy.stats().requests.load(Ordering::SeqCst);
        while proxy.stats().requests.load(Ordering::SeqCst) == requests {
            assert!(started.elapsed() < DEADLINE, "no batch in flight for hub kill {}", k + 1);
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.between(UPLOAD_KILL_AFTER.0, UPLOAD_KILL_AFTER.1)));
        let pending = device.outbox().stats().expect("stats").pending;
        assert!(pending > 0, "the upload finished before hub kill {}: slow the link", k + 1);
        pending_at_kills.push(pending);
        failed_attempts_at_kills.push(observed.failed_attempts.load(Ordering::SeqCst));
        hub.kill();
        std::thread::sleep(Duration::from_millis(rng.between(DOWN_FOR.0, DOWN_FOR.1)));
        hub.start();
    }
    let (upload_syncs, upload_failed_syncs) = uploading.join().expect("upload thread");
    let upload_failed_attempts = observed.failed_attempts.load(Ordering::SeqCst);

    // A bundle with large media, downloaded while the hub is killed twice mid-blob.
    let bundle = bundle_with_media(MEDIA_FILES, MEDIA_BYTES, seed);
    let zip = tmp.path().join("bundle.zip");
    std::fs::write(&zip, bundle.zip(Some(&key))).expect("zip written");
    let publisher_token = publisher["token"].as_str().expect("token");
    edetail_json(&["publish", path_str(&zip), "--hub", &hub.url(), "--token", publisher_token, "--territory", TERRITORY]);
    proxy.set_link_bandwidth(Some(DOWNLOAD_LINK));
    let bytes_before = proxy.stats().response_bytes.load(Ordering::SeqCst);
    let downloading = {
        let device = device.clone();
        sync_until(engine.clone(), started, move || device.content().active_version(common::BUNDLE).expect("active").is_some())
    };
    let mut sent_at_kills = Vec::new();
    for k in 0..DOWNLOAD_KILLS {
        // Early in the k-th media file: what the hub had already written to its socket (up to
        // its 4 MB send buffer) still arrives after the kill, the rest of the file must not.
        let at = (k * MEDIA_BYTES) as u64 + rng.between(KILL_INTO_MEDIA.0, KILL_INTO_MEDIA.1);
        while proxy.stats().response_bytes.load(Ordering::SeqCst) - bytes_before < at {
            assert!(started.elapsed() < DEADLINE, "the download never reached byte {at}");
            std::thread::sleep(Duration::from_millis(5));
        }
        sent_at_kills.push(proxy.stats().response_bytes.load(Ordering::SeqCst) - bytes_before);
        hub.kill();
        std::thread::sleep(Duration::from_millis(rng.between(DOWN_FOR.0, DOWN_FOR.1)));
        hub.start();
    }
    let (download_syncs, download_failed_syncs) = downloading.join().expect("download thread");
    let sent = proxy.stats().response_bytes.load(Ordering::SeqCst) - bytes_before;
    let bundle_bytes = files_bytes(&bundle);
    let stats = edetail_json(&["hub", "stats", "--data", path_str(&data)]);
    hub.kill();

    // Exactly once: every recorded event stored once, the outbox fully acknowledged.
    let outbox = device.outbox().stats().expect("outbox");
    assert_eq!((outbox.pending, outbox.parked, outbox.acked), (0, 0, EVENTS as i64), "{outbox:?}");
    let reopened = Hub::open(HubConfig::local(data.clone(), vec![])).expect("hub data opens");
    let stored = reopened.events_for_device(&device_id).expect("events");
    assert_eq!(stored.len(), EVENTS, "no event stored twice");
    assert_eq!(stored.iter().map(|e| e.uuid.clone()).collect::<BTreeSet<_>>(), recorded, "the hub holds exactly the recorded events");
    // The hub's counters agree with the device: it received each event once; it absorbed at
    // least the duplicates the device was told about, and at most one lost batch more per kill.
    let d = &stats["devices"][0];
    let hub_duplicates = d["duplicates_absorbed"].as_u64().expect("duplicates");
    let told_duplicates = observed.duplicates.load(Ordering::SeqCst);
    assert_eq!(
        (d["events_received"].as_u64(), d["rejected"].as_u64(), d["watermark"].as_i64()),
        (Some(EVENTS as u64), Some(0), Some(EVENTS as i64))
    );
    // Each event was reported accepted at most once (a lost first ack turns it into a duplicate).
    let told_accepted = observed.accepted.load(Ordering::SeqCst);
    assert!(told_accepted <= EVENTS as u64 && told_accepted + told_duplicates >= EVENTS as u64, "accepted {told_accepted}");
    assert!(
        told_duplicates <= hub_duplicates && hub_duplicates <= told_duplicates + (UPLOAD_KILLS * edetail_protocol::MAX_BATCH_EVENTS) as u64,
        "duplicates: hub absorbed {hub_duplicates}, device told {told_duplicates}"
    );
    // The bundle arrived whole, the interrupted blobs resumed.
    assert_installed(&device, &bundle);
    let resumed = observed.blobs_resumed.load(Ordering::SeqCst);
    eprintln!(
        "hub kills: {EVENTS} events, upload through {UPLOAD_KILLS} kills (pending at kills {pending_at_kills:?}, failed attempts {failed_attempts_at_kills:?}): {upload_syncs} syncs \
         ({upload_failed_syncs} failed), {upload_failed_attempts} retried attempts; hub absorbed {hub_duplicates} duplicates, device told {told_duplicates}"
    );
    eprintln!(
        "hub kills: download through {DOWNLOAD_KILLS} kills at {sent_at_kills:?} bytes: {download_syncs} syncs ({download_failed_syncs} failed), \
         {resumed} blobs resumed, {sent} bytes sent for a {bundle_bytes}-byte bundle ({:.3}x); hub started {} times; elapsed {:.1?}",
        sent as f64 / bundle_bytes as f64,
        hub.starts,
        started.elapsed()
    );
    assert!(upload_failed_attempts >= 1, "no kill caught a batch in flight");
    assert_eq!(resumed, DOWNLOAD_KILLS as u64, "each kill cut a media file, and its download resumed");
    assert!(sent <= bundle_bytes + DOWNLOAD_KILLS as u64 * BYTES_LOST_PER_KILL, "{sent} bytes for a {bundle_bytes}-byte bundle");
    drop(proxy);
    drop(rt);
}

/// Files under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| rd.map(|e| e.expect("entry").path()).map(|p| if p.is_dir() { files_under(&p) } else { 1 }).sum())
}

/// Issue 13, item 7: `edetail hub serve` SIGKILLed while a publish is being uploaded leaves the
/// spooled body in `DATA/tmp`; the restarted hub removes it, and no blob was stored.
#[test]
fn a_publish_killed_mid_upload_leaves_no_temp_file_or_blob_after_a_restart() {
    use std::io::Write;
    let tmp = common::scratch_dir();
    let (_key, pubkey) = publisher_key(tmp.path());
    let data = tmp.path().join("hub");
    let publisher = edetail_json(&["hub", "publisher", "add", "--data", path_str(&data), "--name", "content"]);
    let token = publisher["token"].as_str().expect("token").to_string();
    let mut hub = HubServer { data: data.clone(), port: free_port(), pubkey, process: None, starts: 0 };
    hub.start();

    // A 64 MiB upload of which 4 MiB are sent: the hub spools them to DATA/tmp.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", hub.port)).expect("connect");
    write!(
        conn,
        "POST /v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/zip\r\nContent-Length: {}\r\n\r\n",
        64 << 20
    )
    .expect("headers");
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..4 {
        conn.write_all(&chunk).expect("body");
    }
    conn.flush().expect("flush");
    let spooled = Instant::now();
    while files_under(&data.join("tmp")) == 0 {
        assert!(spooled.elapsed() < Duration::from_secs(10), "the hub never spooled the upload");
        std::thread::sleep(Duration::from_millis(20));
    }
    hub.kill();
    drop(conn);
    assert!(files_under(&data.join("tmp")) > 0, "the killed hub left its spooled upload");

    hub.start();
    assert_eq!(files_under(&data.join("tmp")), 0, "DATA/tmp holds files after a restart");
    assert_eq!(files_under(&data.join("blobs")), 0, "a killed publish stored blobs");
    hub.kill();
}
