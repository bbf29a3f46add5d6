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
//! Every fault kind is injected, `Fault::Hang` included: the engines run with short
//! [`Timeouts`] ([`TEST_TIMEOUTS`]) so that a hung request costs seconds, not the production
//! minute. The proxy's per-kind counters prove each kind took effect at least once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::{SecretKey, Sha256Digest};
use edetail_core::{Channel, Device, DeviceConfig, NavSource, Reaction, StartCall};
use edetail_faultproxy::{Fault, FaultKind, FaultPlan, FaultProxy};
use edetail_hub::{DeviceCredentials, Hub, HubConfig};
use edetail_sync::{StaticToken, SyncConfig, SyncEngine, Timeouts};
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
/// Short enough that a hung request costs seconds; long enough for a 500-event batch on a
/// loaded debug build and for a 120 KB blob under the slowest `Bandwidth` fault.
const TEST_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    upload: Duration::from_secs(3),
    changes: Duration::from_secs(3),
    idle: Duration::from_secs(3),
};

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

/// Every fault kind, `Hang` at a third of the others' weight (each costs a timeout).
fn random_fault(rng: &mut Rng) -> Fault {
    match rng.below(28) {
        0..=2 => Fault::Latency(Duration::from_millis(20 + rng.below(300))),
        3..=5 => Fault::Bandwidth(256 * 1024 + rng.below(1024 * 1024)),
        6..=8 => Fault::CloseAfter(rng.below(16 * 1024) as usize),
        9..=11 => Fault::ResetAfter(rng.below(16 * 1024) as usize),
        12..=14 => Fault::Status { code: 503, retry_after_secs: Some(1) },
        15..=17 => Fault::Status { code: 429, retry_after_secs: Some(1) },
        18..=20 => Fault::Status { code: 500, retry_after_secs: None },
        21..=23 => Fault::Duplicate,
        24..=26 => Fault::DropResponse,
        _ => Fault::Hang,
    }
}

/// One fault of every kind, each sure to take effect (cuts within any response's head), in a
/// seeded order, each followed by up to three untouched requests.
fn one_of_each_kind(rng: &mut Rng) -> Vec<Fault> {
    let mut kinds = vec![
        Fault::Latency(Duration::from_millis(20 + rng.below(300))),
        Fault::Bandwidth(256 * 1024 + rng.below(1024 * 1024)),
        Fault::CloseAfter(rng.below(100) as usize),
        Fault::ResetAfter(rng.below(100) as usize),
        Fault::Hang,
        Fault::Status { code: 503, retry_after_secs: Some(1) },
        Fault::Status { code: 429, retry_after_secs: Some(1) },
        Fault::Status { code: 500, retry_after_secs: None },
        Fault::Duplicate,
        Fault::DropResponse,
    ];
    let mut out = Vec::new();
    while !kinds.is_empty() {
        out.push(kinds.swap_remove(rng.below(kinds.len() as u64) as usize));
        out.extend(std::iter::repeat_n(Fault::None, rng.below(4) as usize));
    }
    out
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
    /// One engine for the whole scenario: a failed sync is simply followed by another.
    engine: SyncEngine,
    _dir: tempfile::TempDir,
}

/// An engine for `device`, pointed at the proxy, with the device's own token and short timeouts.
fn start_engine(device: &Arc<Device>, hub_url: &str, creds: &DeviceCredentials) -> SyncEngine {
    let config = SyncConfig {
        timeouts: TEST_TIMEOUTS,
        ..SyncConfig::new(hub_url, creds.device_id.clone(), Arc::new(StaticToken(creds.token.clone())))
    };
    SyncEngine::new(device.clone(), config).expect("engine")
}

#[derive(Default)]
struct Counters {
    sync_calls: AtomicU64,
    sync_ok: AtomicU64,
    sync_err: AtomicU64,
    failed_attempts: AtomicU64,
}

impl Counters {
    /// One sync as an app would run it: a failure is logged and a later sync (on the same
    /// engine) tries again.
    fn sync(&self, d: &SimDevice) -> bool {
        self.sync_calls.fetch_add(1, Ordering::SeqCst);
        match d.engine.sync_now() {
            Ok(r) => {
                self.sync_ok.fetch_add(1, Ordering::SeqCst);
                self.failed_attempts.fetch_add(u64::from(r.failed_attempts), Ordering::SeqCst);
                true
            }
            Err(e) => {
                self.sync_err.fetch_add(1, Ordering::SeqCst);
                eprintln!("{}: sync failed, retrying later: {e}", d.name);
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
            d.device.calls().enter_slide(&call_id, slide, NavSource::Swipe, rng.chance(0.3)).expect("slide entered");
        }
        if i % 15 == 7 {
            let r = [Reaction::Positive, Reaction::Neutral, Reaction::Negative][rng.below(3) as usize];
            d.device.calls().react(&call_id, r).expect("reaction");
        }
        d.device.calls().track(&call_id, "scroll", json!({"round": round, "call": call, "i": i, "y": rng.below(1000)})).expect("tracked");
    }
    d.device.calls().end_call(&call_id).expect("call ends");
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
    let (hub_url, hub, _task): (String, Hub, _) =
        rt.block_on(edetail_hub::spawn_local(HubConfig::local(hub_dir.path().join("hub"), vec![key.public()]))).expect("hub starts");
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
            let engine = start_engine(&device, &proxy.url(), &creds);
            SimDevice { name, creds, device, engine, _dir: dir }
        })
        .collect();
    let counters = Arc::new(Counters::default());

    // Deterministic start: device 1's first upload is applied by the hub but its answer is
    // lost, and the engine's retry is delivered twice. Every other request of this first sync
    // goes through untouched (the plan's fault_rate is 0 while the script is empty). Each
    // upload attempt first reads the change feed for erasures and consents (ADR 0011): those
    // reads pass untouched.
    let opening = [Fault::None, Fault::DropResponse, Fault::None, Fault::Duplicate];
    proxy.script(opening.clone());
    {
        let d = &devices[0];
        for n in 0..25 {
            d.device.calls().record(None, "custom", json!({"warmup": n})).expect("recorded");
        }
        let r = d.engine.sync_now().expect("the first sync rides out one lost answer and a duplicate");
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
    let mut script = one_of_each_kind(&mut rng);
    script.extend((script.len()..SCRIPT_LEN).map(|_| if rng.chance(FAULT_RATE) { random_fault(&mut rng) } else { Fault::None }));
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
        let r = d.engine.sync_now().expect("idle sync");
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

    // Every kind of fault in the scenario took effect at least once (the proxy's own count of
    // injected faults, not the script's), Hang included.
    let stats = proxy.stats();
    let mut chosen: BTreeMap<FaultKind, u64> = BTreeMap::new();
    for kind in opening.iter().chain(&script[..random_used]).filter_map(Fault::kind) {
        *chosen.entry(kind).or_default() += 1;
    }
    let injected = stats.injected_by_kind();
    let summary: Vec<String> = chosen.iter().map(|(k, n)| format!("{k}={}/{n}", injected.get(k).copied().unwrap_or(0))).collect();
    eprintln!("faults injected/chosen: {}", summary.join(" "));
    assert_eq!(stats.faults.load(Ordering::SeqCst), chosen.values().sum::<u64>(), "the proxy counted the scripted faults");
    assert!(chosen.contains_key(&FaultKind::Hang), "the scenario includes hangs");
    for (kind, n) in &chosen {
        let took_effect = injected.get(kind).copied().unwrap_or(0);
        assert!(took_effect >= 1, "{kind}: chosen {n} times, never took effect");
        assert!(took_effect <= *n, "{kind}: took effect {took_effect} times, chosen {n}");
    }
    assert!(stats.duplicates_sent.load(Ordering::SeqCst) >= 1);
    assert_eq!(injected.keys().copied().collect::<BTreeSet<_>>(), chosen.keys().copied().collect(), "no fault outside the scenario");

    eprintln!(
        "fault scenario summary: seed={seed} devices={DEVICES} events={total_events} requests={} (with faults: {requests_with_faults}) \
         faults={} duplicates_sent={} syncs={} ok={} err={} retried_attempts={} elapsed={:.1?}",
        stats.requests.load(Ordering::SeqCst),
        stats.faults.load(Ordering::SeqCst),
        stats.duplicates_sent.load(Ordering::SeqCst),
        counters.sync_calls.load(Ordering::SeqCst),
        counters.sync_ok.load(Ordering::SeqCst),
        counters.sync_err.load(Ordering::SeqCst),
        counters.failed_attempts.load(Ordering::SeqCst),
        started.elapsed(),
    );

    drop(devices);
    drop(proxy);
    drop(rt);
}
