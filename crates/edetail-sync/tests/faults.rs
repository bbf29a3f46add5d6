//! Sync under injected network faults: several simulated devices record thousands of events
//! through calls and sync them to the real hub (`edetail_hub::spawn_local`) through an
//! `edetail_faultproxy::FaultProxy`, while a new bundle version is published halfway. After
//! faults stop and every device has synced once more, the hub must hold exactly the recorded
//! events (no loss, no duplicates), every outbox must be acknowledged and every device must run
//! v2 with verified files.
//!
//! Seeded: the seed is printed and can be replayed with `EDETAIL_FAULT_SEED=<n>`. The seed fixes
//! the sequence of faults; which request gets which fault also depends on thread timing.
//!
//! `Fault::Hang` is never used: the engine's transport sets only a connect timeout (15 s) and
//! a read timeout (60 s, `edetail_sync::http::READ_TIMEOUT`), so each hang would cost a minute.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::{SecretKey, Sha256Digest};
use edetail_core::{Channel, Device, DeviceConfig, NavSource, Reaction, StartCall};
use edetail_faultproxy::{Fault, FaultPlan, FaultProxy};
use edetail_hub::{DeviceCredentials, Hub, HubConfig};
use edetail_sync::{StaticToken, SyncConfig, SyncEngine};
use serde_json::json;

const TERRITORY: &str = "north";
const BUNDLE: &str = "com.example.sample";
const DEVICES: usize = 4;
const ROUNDS: usize = 6;
const CALLS_PER_ROUND: usize = 2;
/// Custom events per call (plus call start/slide/reaction/end events recorded by the core).
const TRACKS_PER_CALL: usize = 60;
/// Probability that a request of the faulty phase gets a fault.
const FAULT_RATE: f64 = 0.3;
/// Scripted faults for the faulty phase (far more than the requests it makes).
const SCRIPT_LEN: usize = 20_000;

/// xorshift64*, seeded; the test's own randomness (fault script, recording shapes).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

fn kind(f: &Fault) -> &'static str {
    match f {
        Fault::None => "none",
        Fault::Latency(_) => "latency",
        Fault::Bandwidth(_) => "bandwidth",
        Fault::CloseAfter(_) => "close_after",
        Fault::ResetAfter(_) => "reset_after",
        Fault::Hang => "hang",
        Fault::Status { code: 503, .. } => "status_503",
        Fault::Status { code: 429, .. } => "status_429",
        Fault::Status { .. } => "status_500",
        Fault::Duplicate => "duplicate",
        Fault::DropResponse => "drop_response",
    }
}

/// Every fault kind except `Hang`, uniformly.
fn random_fault(rng: &mut Rng) -> Fault {
    match rng.below(9) {
        0 => Fault::Latency(Duration::from_millis(20 + rng.below(300))),
        1 => Fault::Bandwidth(256 * 1024 + rng.below(1024 * 1024)),
        2 => Fault::CloseAfter(rng.below(48 * 1024) as usize),
        3 => Fault::ResetAfter(rng.below(48 * 1024) as usize),
        4 => Fault::Status { code: 503, retry_after_secs: Some(1) },
        5 => Fault::Status { code: 429, retry_after_secs: Some(1) },
        6 => Fault::Status { code: 500, retry_after_secs: None },
        7 => Fault::Duplicate,
        _ => Fault::DropResponse,
    }
}

fn bundle_v1() -> SampleBundle {
    let mut b = SampleBundle::new();
    let video: Vec<u8> = (0..120_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    b.files.insert("shared/video.mp4".into(), video);
    b
}

fn bundle_v2(v1: &SampleBundle) -> SampleBundle {
    let mut v2 = v1.clone();
    v2.manifest.version = 2;
    v2.files.insert("slides/efficacy/index.html".into(), b"<!doctype html><title>Efficacy</title><h1>HR 0.71</h1>".to_vec());
    v2
}

struct SimDevice {
    name: String,
    creds: DeviceCredentials,
    device: Arc<Device>,
    hub_url: String,
    /// Replaced after a failed sync (see [`Counters::sync`]).
    engine: Mutex<Arc<SyncEngine>>,
    engines_started: AtomicU64,
    _dir: tempfile::TempDir,
}

/// An engine for `device`, pointed at the proxy, with the device's own token.
fn start_engine(device: &Arc<Device>, hub_url: &str, creds: &DeviceCredentials) -> Arc<SyncEngine> {
    let config = SyncConfig::new(hub_url, creds.device_id.clone(), Arc::new(StaticToken(creds.token.clone())));
    Arc::new(SyncEngine::new(device.clone(), config).expect("engine"))
}

impl SimDevice {
    fn new_engine(&self) -> Arc<SyncEngine> {
        self.engines_started.fetch_add(1, Ordering::SeqCst);
        start_engine(&self.device, &self.hub_url, &self.creds)
    }

    fn engine(&self) -> Arc<SyncEngine> {
        self.engine.lock().expect("engine lock").clone()
    }
}

#[derive(Default)]
struct Counters {
    sync_calls: AtomicU64,
    sync_ok: AtomicU64,
    sync_err: AtomicU64,
    failed_attempts: AtomicU64,
}

impl Counters {
    /// One sync as an app would run it: a failure is logged and a later sync tries again.
    ///
    /// After a failed sync the app is "restarted" (a new engine on the same data directory):
    /// the policy carries its failure count across syncs until one completes, so on the same
    /// engine every further failure would back off for 32 s, 64 s, ... up to 5 min, far beyond
    /// this test's time budget. Everything durable (outbox, cursor, partial downloads) is in
    /// the data directory and must survive the restart anyway.
    fn sync(&self, d: &SimDevice) -> bool {
        self.sync_calls.fetch_add(1, Ordering::SeqCst);
        let engine = d.engine();
        match engine.sync_now() {
            Ok(r) => {
                self.sync_ok.fetch_add(1, Ordering::SeqCst);
                self.failed_attempts.fetch_add(u64::from(r.failed_attempts), Ordering::SeqCst);
                true
            }
            Err(e) => {
                self.sync_err.fetch_add(1, Ordering::SeqCst);
                eprintln!("{}: sync failed (restarting the engine, retrying later): {e}", d.name);
                drop(engine);
                *d.engine.lock().expect("engine lock") = d.new_engine();
                false
            }
        }
    }
}

/// One call: start, walk the slides, track and react, end.
fn record_call(d: &SimDevice, rng: &mut Rng, round: usize, call: usize) {
    let (call_id, _) = d
        .device
        .start_call(StartCall {
            hcp_id: Some(format!("hcp-{}", rng.below(20))),
            channel: Channel::FaceToFace,
            bundle_id: BUNDLE.into(),
            presentation_id: None,
            location: None,
        })
        .expect("call starts");
    for i in 0..TRACKS_PER_CALL {
        if i % 20 == 10 {
            let slide = ["intro", "efficacy", "pi"][rng.below(3) as usize];
            d.device.enter_slide(&call_id, slide, NavSource::Swipe, rng.chance(0.3)).expect("slide entered");
        }
        if i % 15 == 7 {
            let r = [Reaction::Positive, Reaction::Neutral, Reaction::Negative][rng.below(3) as usize];
            d.device.react(&call_id, r).expect("reaction");
        }
        d.device.track(&call_id, "scroll", json!({"round": round, "call": call, "i": i, "y": rng.below(1000)})).expect("tracked");
    }
    d.device.end_call(&call_id).expect("call ends");
}

#[test]
fn devices_sync_every_event_exactly_once_and_install_v2_through_faults() {
    let started = Instant::now();
    let seed: u64 = match std::env::var("EDETAIL_FAULT_SEED") {
        Ok(s) => s.trim().parse().expect("EDETAIL_FAULT_SEED is a u64"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64,
    };
    eprintln!("fault scenario seed: EDETAIL_FAULT_SEED={seed}");
    let mut rng = Rng::new(seed);

    // The hub and the proxy live on their own runtime; the engines are driven from threads.
    let hub_dir = tempfile::tempdir().expect("tempdir");
    let key = SecretKey::from_seed(&[7u8; 32]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (hub_url, hub, _task): (String, Hub, _) = rt
        .block_on(edetail_hub::spawn_local(HubConfig { data_dir: hub_dir.path().join("hub"), publisher_keys: vec![key.public()] }))
        .expect("hub starts");
    let upstream: std::net::SocketAddr = hub_url.trim_start_matches("http://").parse().expect("hub address");
    // Faults come only from the script (fault_rate 0 once it is used up), so that Hang is never
    // chosen and the kinds of injected faults are known exactly.
    let proxy = rt.block_on(FaultProxy::start(upstream, FaultPlan { fault_rate: 0.0, seed, ..FaultPlan::default() })).expect("proxy");

    let v1 = bundle_v1();
    let v2 = bundle_v2(&v1);
    hub.publish_zip(&v1.zip(Some(&key)), &[TERRITORY.to_string()]).expect("v1 published");

    let devices: Vec<SimDevice> = (0..DEVICES)
        .map(|i| {
            let name = format!("rep-{}", i + 1);
            let creds = hub.add_device(&name, TERRITORY).expect("device added");
            let dir = tempfile::tempdir().expect("tempdir");
            let config = DeviceConfig { trusted_keys: vec![key.public()], ..DeviceConfig::new(name.clone()) };
            let device = Arc::new(Device::open(&dir.path().join("device"), config).expect("device opens"));
            let engine = Mutex::new(start_engine(&device, &proxy.url(), &creds));
            SimDevice { name, creds, device, hub_url: proxy.url(), engine, engines_started: AtomicU64::new(1), _dir: dir }
        })
        .collect();
    let counters = Arc::new(Counters::default());

    // Deterministic start: device 1's first upload is applied by the hub but its answer is
    // lost, and the engine's retry is delivered twice. Every other request of this first sync
    // goes through untouched (the plan's fault_rate is 0 while the script is empty).
    let opening = [Fault::DropResponse, Fault::Duplicate];
    proxy.script(opening.clone());
    {
        let d = &devices[0];
        for n in 0..25 {
            d.device.record(None, "custom", json!({"warmup": n})).expect("recorded");
        }
        let r = d.engine().sync_now().expect("the first sync rides out one lost answer and a duplicate");
        counters.sync_calls.fetch_add(1, Ordering::SeqCst);
        counters.sync_ok.fetch_add(1, Ordering::SeqCst);
        counters.failed_attempts.fetch_add(u64::from(r.failed_attempts), Ordering::SeqCst);
        assert_eq!(r.failed_attempts, 1, "the lost answer costs one retry: {r:?}");
        assert_eq!((r.events_accepted, r.events_duplicates), (0, 25), "the retry finds the lost batch stored: {r:?}");
        assert_eq!(hub.events_for_device(&d.creds.device_id).expect("events").len(), 25);
        assert_eq!(proxy.stats().duplicates_sent.load(Ordering::SeqCst), 1);
        assert_eq!(proxy.stats().faults.load(Ordering::SeqCst), 2);
        assert_eq!(d.device.content().active_version(BUNDLE).expect("active"), Some(1));
    }
    let requests_before_random = proxy.stats().requests.load(Ordering::SeqCst) as usize;
    let script: Vec<Fault> = (0..SCRIPT_LEN).map(|_| if rng.chance(FAULT_RATE) { random_fault(&mut rng) } else { Fault::None }).collect();
    proxy.script(script.clone());

    // Faulty phase: every device records calls and syncs in rounds, concurrently; v2 is
    // published halfway.
    let hub_for_publish = hub.clone();
    let v2_zip = v2.zip(Some(&key));
    std::thread::scope(|s| {
        for (i, d) in devices.iter().enumerate() {
            let counters = counters.clone();
            let hub = &hub_for_publish;
            let v2_zip = &v2_zip;
            let mut rng = Rng::new(seed.wrapping_add(1 + i as u64));
            s.spawn(move || {
                // Content first (calls need an openable bundle); faults may fail some syncs.
                let mut tries = 0;
                while d.device.content().active_version(BUNDLE).expect("active").is_none() {
                    tries += 1;
                    assert!(tries <= 20, "{}: v1 never installed through the faults", d.name);
                    counters.sync(d);
                }
                for round in 0..ROUNDS {
                    if i == 0 && round == ROUNDS / 2 {
                        hub.publish_zip(v2_zip, &[TERRITORY.to_string()]).expect("v2 published");
                    }
                    for call in 0..CALLS_PER_ROUND {
                        record_call(d, &mut rng, round, call);
                        if rng.chance(0.3) {
                            counters.sync(d);
                        }
                    }
                    counters.sync(d);
                }
            });
        }
    });

    // Faults off: every device syncs until nothing is pending and the feed is drained.
    let requests_with_faults = proxy.stats().requests.load(Ordering::SeqCst) as usize;
    proxy.set_faults_enabled(false);
    let random_used = requests_with_faults - requests_before_random;
    assert!(random_used <= script.len(), "the fault script ran out ({random_used} requests); raise SCRIPT_LEN");
    for d in &devices {
        let mut clean = false;
        for _ in 0..5 {
            if counters.sync(d) && d.device.outbox().stats().expect("stats").pending == 0 {
                clean = true;
                break;
            }
        }
        assert!(clean, "{}: did not sync cleanly once faults stopped", d.name);
        // Drained: one more sync finds nothing to upload and nothing new in the feed.
        let r = d.engine().sync_now().expect("idle sync");
        assert_eq!((r.batches, r.bundles_activated.len(), r.blobs_downloaded), (0, 0, 0), "{}: not drained: {r:?}", d.name);
    }

    // The hub holds exactly the recorded events of each device, once each, with no seq gaps.
    let mut total_events = 0usize;
    for d in &devices {
        let recorded = d.device.outbox().all(0, 1_000_000).expect("outbox");
        let recorded_uuids: BTreeSet<String> = recorded.iter().map(|e| e.uuid.clone()).collect();
        assert_eq!(recorded_uuids.len(), recorded.len());
        let recorded_seqs: Vec<i64> = recorded.iter().map(|e| e.seq).collect();
        let first = recorded_seqs[0];
        assert!(recorded_seqs.iter().enumerate().all(|(i, s)| *s == first + i as i64), "{}: the outbox's seqs are contiguous", d.name);

        let stored = hub.events_for_device(&d.creds.device_id).expect("events");
        let stored_uuids: BTreeSet<String> = stored.iter().map(|e| e.uuid.clone()).collect();
        assert_eq!(stored_uuids.len(), stored.len(), "{}: the hub stored an event twice", d.name);
        assert_eq!(stored_uuids, recorded_uuids, "{}: the hub holds exactly the recorded events", d.name);
        let mut stored_seqs: Vec<i64> = stored.iter().map(|e| e.seq).collect();
        stored_seqs.sort_unstable();
        assert_eq!(stored_seqs, recorded_seqs, "{}: no duplicate or missing seq at the hub", d.name);
        let by_uuid: BTreeMap<&str, i64> = recorded.iter().map(|e| (e.uuid.as_str(), e.seq)).collect();
        assert!(stored.iter().all(|e| by_uuid[e.uuid.as_str()] == e.seq), "{}: uuid/seq pairs match", d.name);

        let stats = d.device.outbox().stats().expect("stats");
        assert_eq!((stats.pending, stats.parked, stats.acked), (0, 0, recorded.len() as i64), "{}: outbox {stats:?}", d.name);
        assert!(d.device.outbox().parked().expect("parked").is_empty());
        total_events += recorded.len();

        // v2 is active and every file resolves to the published bytes.
        assert_eq!(d.device.content().active_version(BUNDLE).expect("active"), Some(2), "{}: v2 active", d.name);
        d.device.check_openable(BUNDLE).expect("v2 opens");
        for (path, bytes) in &v2.files {
            let mut asset = d.device.assets().resolve(BUNDLE, path, None).unwrap_or_else(|e| panic!("{}: {path}: {e}", d.name));
            let mut got = Vec::new();
            asset.reader.read_to_end(&mut got).expect("asset reads");
            assert_eq!(Sha256Digest::of(&got), Sha256Digest::of(bytes), "{}: {path} has the wrong sha256", d.name);
            assert_eq!(asset.etag, format!("\"{}\"", Sha256Digest::of(bytes).to_hex()));
        }
    }
    assert!(total_events >= 2_000, "thousands of events: {total_events}");

    // The proxy injected faults, including lost answers and duplicated deliveries.
    let stats = proxy.stats();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for f in opening.iter().chain(&script[..random_used]).filter(|f| **f != Fault::None) {
        *by_kind.entry(kind(f)).or_default() += 1;
    }
    let injected: usize = by_kind.values().sum();
    assert_eq!(stats.faults.load(Ordering::SeqCst) as usize, injected, "the proxy counted the scripted faults");
    assert!(by_kind.get("drop_response").copied().unwrap_or(0) >= 1);
    assert!(by_kind.get("duplicate").copied().unwrap_or(0) >= 1);
    assert!(stats.duplicates_sent.load(Ordering::SeqCst) >= 1);
    assert!(injected >= 10, "too few faults to mean anything: {by_kind:?}");

    eprintln!(
        "fault scenario summary: seed={seed} devices={DEVICES} events={total_events} requests={} (with faults: {requests_with_faults}) \
         faults={injected} {by_kind:?} duplicates_sent={} syncs={} ok={} err={} retried_attempts={} engines_started={} elapsed={:.1?}",
        stats.requests.load(Ordering::SeqCst),
        stats.duplicates_sent.load(Ordering::SeqCst),
        counters.sync_calls.load(Ordering::SeqCst),
        counters.sync_ok.load(Ordering::SeqCst),
        counters.sync_err.load(Ordering::SeqCst),
        counters.failed_attempts.load(Ordering::SeqCst),
        devices.iter().map(|d| d.engines_started.load(Ordering::SeqCst)).sum::<u64>(),
        started.elapsed(),
    );

    drop(devices);
    drop(proxy);
    drop(rt);
}
