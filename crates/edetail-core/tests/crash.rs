//! kill -9 at random moments: the outbox never loses or duplicates an event whose `record`
//! returned, and an install never leaves a half-activated bundle.
//!
//! The parent test (`kill9_while_recording_and_installing`) re-executes this test binary with
//! `--exact <child> --nocapture --test-threads=1` and `EDETAIL_CRASH_CHILD=record|install`; the
//! child test then runs a worker loop on the given data directory and prints one line per
//! completed operation. The parent SIGKILLs it after a random delay, keeps only complete lines,
//! and checks the data directory after each kill (install) or at the end (record).
//!
//! `EDETAIL_CRASH_KILLS` (default 120, split evenly) and `EDETAIL_CRASH_SEED` (printed on every
//! run) replay a run. Child tests return at once when the variable is not set.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::writer::{BundleFile, FileSource, write_atomically, write_bundle};
use edetail_bundle::{BundlePath, SecretKey, Sha256Digest};
use edetail_core::{Channel, Device, DeviceConfig, NavSource, StartCall};
use serde_json::json;

const CHILD_ENV: &str = "EDETAIL_CRASH_CHILD";
const DIR_ENV: &str = "EDETAIL_CRASH_DIR";
const CHILD_SEED_ENV: &str = "EDETAIL_CRASH_CHILD_SEED";
const RECORD_CHILD: &str = "crash_child_record_worker";
const INSTALL_CHILD: &str = "crash_child_install_worker";
const SAMPLE_ID: &str = "com.example.sample";
const INSTALL_ID: &str = "com.example.crash";
/// A child that is never killed (parent gone) stops by itself.
const CHILD_MAX_LIFETIME: Duration = Duration::from_secs(30);

// ---- shared helpers ----------------------------------------------------------------------

fn key() -> SecretKey {
    SecretKey::from_seed(&[11; 32])
}

fn config() -> DeviceConfig {
    // Encrypted: crash safety must hold under SQLCipher (the deployed configuration).
    DeviceConfig { trusted_keys: vec![key().public()], db_key: Some(edetail_core::DbKey::new([5; 32])), ..DeviceConfig::new("rep-crash") }
}

/// splitmix64: small, seedable, good enough for delays and test data.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.next().is_multiple_of(one_in)
    }
}

/// Incompressible bytes (media), fast even in a debug build (8 bytes per step).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed ^ 0x5EED);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&r.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

// ---- install fixtures ----------------------------------------------------------------------

/// Version `v` of the install bundle, ~3.4 MB: a video shared by every version, an image shared
/// by groups of three versions, a script shared by pairs, and files changed in every version.
fn install_bundle_files(v: u64) -> Vec<(String, Vec<u8>)> {
    let sample = SampleBundle::new();
    let mut files: Vec<(String, Vec<u8>)> = sample.files.into_iter().collect();
    for (p, b) in &mut files {
        if p == "slides/efficacy/index.html" {
            *b = format!("<!doctype html><title>Efficacy v{v}</title><h1>HR 0.78</h1><video src=../../media/intro.mp4></video>")
                .into_bytes();
        }
    }
    files.push(("media/intro.mp4".into(), noise(1, 2 << 20)));
    files.push(("media/chart.png".into(), noise(1000 + v / 3, 768 << 10)));
    files.push(("media/hero.jpg".into(), noise(2000 + v, 512 << 10)));
    let mut js = String::new();
    for i in 0..4000 {
        js.push_str(&format!("edetail.track('tap',{{i:{i},pair:{}}});\n", v / 2));
    }
    files.push(("shared/data.js".into(), js.into_bytes()));
    files
}

fn zip_path(zips: &Path, v: u64) -> PathBuf {
    zips.join(format!("v{v:05}.zip"))
}

/// Writes the signed zip of version `v` (atomically: a kill leaves no half zip under the name).
fn ensure_install_zip(zips: &Path, v: u64) -> PathBuf {
    let dest = zip_path(zips, v);
    if dest.exists() {
        return dest;
    }
    let mut manifest = SampleBundle::new().manifest;
    manifest.id = INSTALL_ID.into();
    manifest.version = v;
    let files = install_bundle_files(v)
        .into_iter()
        .map(|(p, b)| BundleFile { path: BundlePath::parse(&p).unwrap(), source: FileSource::Bytes(b) })
        .collect();
    write_atomically(&dest, |f| {
        let (_, _) = write_bundle(std::io::BufWriter::new(f), manifest, files, Some(&key()), &mut |_| {})?;
        Ok(())
    })
    .unwrap();
    dest
}

// ---- children --------------------------------------------------------------------------------

fn child_role() -> Option<(String, PathBuf, Rng)> {
    let role = std::env::var(CHILD_ENV).ok()?;
    let dir = PathBuf::from(std::env::var(DIR_ENV).expect("data dir"));
    let seed = env_u64(CHILD_SEED_ENV).unwrap_or(1);
    Some((role, dir, Rng(seed)))
}

/// One complete line on stdout, flushed before the next operation starts.
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    // A leading newline on the first line separates it from libtest's "test name ... ".
    out.write_all(line.as_bytes()).unwrap();
    out.write_all(b"\n").unwrap();
    out.flush().unwrap();
}

/// Child: records events until killed. Prints `EV <seq> <uuid> <call>` after each record
/// returned, `CALL <id>` after a call started and `END <id>` after it ended.
#[test]
fn crash_child_record_worker() {
    let Some((role, dir, mut rng)) = child_role() else { return };
    if role != "record" {
        return;
    }
    let started = Instant::now();
    emit("\nOPENING");
    let d = Device::open(&dir.join("data"), config()).expect("open");
    emit("READY");
    let mut n = 0u64;
    let nonce = rng.next();
    while started.elapsed() < CHILD_MAX_LIFETIME {
        let (call, _) = d
            .start_call(StartCall {
                hcp_id: Some(format!("hcp-{}", rng.range(1, 50))),
                channel: Channel::FaceToFace,
                bundle_id: SAMPLE_ID.into(),
                presentation_id: None,
                location: None,
            })
            .expect("start call");
        emit(&format!("CALL {call}"));
        let events = rng.range(5, 60);
        for _ in 0..events {
            n += 1;
            match rng.range(0, 9) {
                0 => {
                    let slide = if rng.chance(2) { "intro" } else { "efficacy" };
                    d.calls().enter_slide(&call, slide, NavSource::Swipe, false).expect("enter slide");
                }
                1 => d.calls().heartbeat().expect("heartbeat"),
                _ => {
                    let payload = json!({
                        "slide": "efficacy", "event": "chart_tap", "n": n, "nonce": format!("{nonce:016x}-{n}"),
                        "data": {"chart": "hr-forest", "point": n % 7, "label": "HR 0.78 (95% CI 0.69-0.88)"}
                    });
                    let (seq, uuid) = d.calls().record(Some(&call), "custom", payload).expect("record");
                    emit(&format!("EV {seq} {uuid} {call}"));
                }
            }
        }
        if rng.chance(3) {
            // Leave some calls open for the kill to interrupt; otherwise end them.
            continue;
        }
        d.calls().end_call(&call).expect("end call");
        emit(&format!("END {call}"));
    }
    panic!("record child was never killed");
}

/// Child: installs versions active+1, active+2, ... until killed; prints `INSTALLED <v>` after
/// each install returned.
#[test]
fn crash_child_install_worker() {
    let Some((role, dir, mut rng)) = child_role() else { return };
    if role != "install" {
        return;
    }
    let started = Instant::now();
    emit("\nOPENING");
    let d = Device::open(&dir.join("data"), config()).expect("open");
    let mut v = d.content().active_version(INSTALL_ID).expect("active").unwrap_or(0) + 1;
    emit("READY");
    while started.elapsed() < CHILD_MAX_LIFETIME {
        let zip = ensure_install_zip(&dir.join("zips"), v);
        let out = d.install_zip(&zip).expect("install");
        assert_eq!(out.version, v);
        emit(&format!("INSTALLED {v}"));
        if rng.chance(4) {
            d.content().gc().expect("gc");
            emit("GC");
        }
        v += 1;
    }
    panic!("install child was never killed");
}

// ---- parent ----------------------------------------------------------------------------------

/// Kills the child if the parent test panics mid-run.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Run {
    /// Complete lines the child printed before it died.
    lines: Vec<String>,
    killed_before_ready: bool,
}

/// Spawns a child, kills it at a random moment, returns its complete lines.
fn run_child(role: &str, dir: &Path, rng: &mut Rng) -> Run {
    let test_name = if role == "record" { RECORD_CHILD } else { INSTALL_CHILD };
    let stderr = std::fs::File::create(dir.join("child-stderr.log")).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, role)
        .env(DIR_ENV, dir)
        .env(CHILD_SEED_ENV, rng.next().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(Some(child));
    let stdout = guard.0.as_mut().unwrap().stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut lines = Vec::new();
        loop {
            let mut buf = Vec::new();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            // A line only counts when it is complete: the kill may cut the last one.
            if buf.last() != Some(&b'\n') {
                break;
            }
            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
            if line == "OPENING" || line == "READY" {
                let _ = tx.send(line.clone());
            }
            lines.push(line);
        }
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        lines
    });
    // One kill in eight lands while the device opens (recovery of the previous kill).
    let early = rng.chance(8);
    let wait_for = if early { "OPENING" } else { "READY" };
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l == wait_for => break,
            Ok(_) => {}
            Err(_) => {
                let child = guard.0.take().map(|mut c| {
                    let _ = c.kill();
                    c.wait()
                });
                let err = std::fs::read_to_string(dir.join("child-stderr.log")).unwrap_or_default();
                panic!("{role} child never printed {wait_for} ({child:?}); stderr:\n{err}");
            }
        }
    }
    let delay_us = if early { rng.range(0, 3_000) } else { rng.range(5_000, 150_000) };
    std::thread::sleep(Duration::from_micros(delay_us));
    let mut child = guard.0.take().unwrap();
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    let lines = reader.join().unwrap();
    if status.signal() != Some(9) {
        let err = std::fs::read_to_string(dir.join("child-stderr.log")).unwrap_or_default();
        panic!("{role} child ended by itself ({status}) instead of being killed; stderr:\n{err}");
    }
    let killed_before_ready = !lines.iter().any(|l| l == "READY");
    Run { lines, killed_before_ready }
}

#[derive(Debug, Default)]
struct RecordLog {
    /// (seq, uuid, call) in print order.
    events: Vec<(i64, String, String)>,
    calls_started: Vec<String>,
    calls_ended: HashSet<String>,
}

fn check_install_dir(dir: &Path, last_installed: u64, newest_zip: u64, gc: bool) -> u64 {
    let d = Device::open(&dir.join("data"), config()).expect("open after kill");
    assert_eq!(d.integrity_check().unwrap(), "ok");
    let check = |d: &Device| -> u64 {
        let Ok(active) = d.content().active(INSTALL_ID) else {
            assert_eq!(last_installed, 0, "no active version although version {last_installed} was installed");
            return 0;
        };
        let v = active.version;
        assert!(v >= last_installed, "active version {v} is older than the last installed one ({last_installed})");
        assert!(v <= newest_zip, "active version {v} was never built");
        let m = &active.manifest;
        assert_eq!(m.version, v);
        for (path, entry) in &m.files {
            let mut a = d
                .assets()
                .resolve(INSTALL_ID, path.as_str(), None)
                .unwrap_or_else(|e| panic!("v{v}: {} does not resolve: {e}", path.as_str()));
            let mut bytes = Vec::new();
            a.reader.read_to_end(&mut bytes).unwrap();
            assert_eq!(bytes.len() as u64, entry.size, "v{v}: {} size", path.as_str());
            assert_eq!(Sha256Digest::of(&bytes), entry.sha256, "v{v}: {} content", path.as_str());
            assert_eq!(a.mime, entry.mime);
        }
        // The expected content for this version, not just a self-consistent one.
        let expected: BTreeMap<String, Sha256Digest> =
            install_bundle_files(v).into_iter().map(|(p, b)| (p, Sha256Digest::of(&b))).collect();
        let got: BTreeMap<String, Sha256Digest> = m.files.iter().map(|(p, e)| (p.as_str().to_string(), e.sha256)).collect();
        assert_eq!(got, expected, "v{v}: manifest files");
        // The previous version stays complete for rollback, through GC too.
        let listed = d.content().list().unwrap();
        let b = listed.iter().find(|b| b.bundle_id == INSTALL_ID).unwrap();
        assert_eq!(b.active_version, v);
        if let Some(prev) = b.previous_version {
            let missing = d.content().missing_blobs(INSTALL_ID, prev).unwrap();
            assert!(missing.is_empty(), "previous version {prev} lost {} blobs", missing.len());
        }
        v
    };
    let v = check(&d);
    if gc {
        d.content().gc().unwrap();
        assert_eq!(check(&d), v);
        // After GC only what active, previous and staged-newer versions reference is on disk.
        let on_disk: HashSet<String> = d.content().blobs().list().unwrap().iter().map(|s| s.to_hex()).collect();
        let referenced: HashSet<String> = d
            .databases()
            .read(|c| {
                let mut st = c.prepare("SELECT DISTINCT f.sha256 FROM bundle_files f JOIN blobs b ON b.sha256 = f.sha256")?;
                let rows = st.query_map([], |r| r.get::<_, String>(0))?;
                Ok(rows.collect::<rusqlite::Result<HashSet<_>>>()?)
            })
            .unwrap();
        assert_eq!(on_disk, referenced, "after GC the blob files are exactly the referenced, registered blobs");
        assert_eq!(d.integrity_check().unwrap(), "ok");
    }
    v
}

fn check_record_dir(dir: &Path, log: &RecordLog) {
    let d = Device::open(&dir.join("data"), config()).expect("final open");
    assert_eq!(d.integrity_check().unwrap(), "ok");
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = d.outbox().all(after, 10_000).unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        all.extend(page);
    }
    // No duplicates at all: uuids, and the worker's per-record nonce.
    let mut by_uuid: HashMap<&str, &edetail_core::Event> = HashMap::new();
    for e in &all {
        assert!(by_uuid.insert(e.uuid.as_str(), e).is_none(), "uuid {} stored twice", e.uuid);
    }
    let mut nonces = HashSet::new();
    for e in all.iter().filter(|e| e.kind == "custom") {
        let nonce = e.payload["nonce"].as_str().expect("nonce").to_string();
        assert!(nonces.insert(nonce.clone()), "event {nonce} stored twice");
    }
    // Seqs strictly increase, and so do sessions along them (one process after the other).
    for w in all.windows(2) {
        assert!(w[0].seq < w[1].seq);
        assert!(w[0].session <= w[1].session, "session order broken at seq {}", w[1].seq);
        if w[0].session == w[1].session {
            assert!(w[0].mono_ms <= w[1].mono_ms, "monotonic time ran backwards at seq {}", w[1].seq);
        }
    }
    let sessions: HashSet<i64> = all.iter().map(|e| e.session).collect();
    // Every event whose record returned is there exactly once, with its seq and call.
    let mut last_seq = 0;
    for (seq, uuid, call) in &log.events {
        let e = by_uuid.get(uuid.as_str()).unwrap_or_else(|| panic!("event {seq} {uuid} was acknowledged and then lost"));
        assert_eq!(e.seq, *seq, "event {uuid} changed seq");
        assert_eq!(e.call_id.as_deref(), Some(call.as_str()));
        assert!(*seq > last_seq, "seq {seq} printed after {last_seq}: a sequence number was reused");
        last_seq = *seq;
    }
    let direct: i64 =
        d.databases().read(|c| Ok(c.query_row("SELECT COUNT(*) - COUNT(DISTINCT uuid) FROM events", [], |r| r.get(0))?)).unwrap();
    assert_eq!(direct, 0);
    // Calls: none left open; ended ones completed; every other one recovered as interrupted,
    // closed exactly once, with every slide view closed.
    let calls = d.calls().list().unwrap();
    let status: HashMap<&str, &str> = calls.iter().map(|c| (c.id.as_str(), c.status.as_str())).collect();
    assert!(calls.iter().all(|c| c.status != "open"), "calls left open after recovery");
    let mut interrupted = 0;
    for c in &calls {
        let events = d.outbox().for_call(&c.id).unwrap();
        let first = events.first().map(|e| e.kind.as_str());
        assert_eq!(first, Some("call_started"), "call {}", c.id);
        let closing: Vec<&str> =
            events.iter().map(|e| e.kind.as_str()).filter(|k| *k == "call_ended" || *k == "call_interrupted").collect();
        let last = events.last().unwrap().kind.as_str();
        match c.status.as_str() {
            "completed" => assert_eq!((closing.as_slice(), last), (&["call_ended"][..], "call_ended"), "call {}", c.id),
            "interrupted" => {
                interrupted += 1;
                assert_eq!((closing.as_slice(), last), (&["call_interrupted"][..], "call_interrupted"), "call {}", c.id);
                assert!(!log.calls_ended.contains(&c.id), "call {} ended but shows interrupted", c.id);
            }
            s => panic!("call {} has status {s}", c.id),
        }
        for v in d.calls().slide_views(&c.id).unwrap() {
            assert!(v.closed_by.is_some(), "call {}: view of {} never closed", c.id, v.slide_id);
        }
    }
    for id in &log.calls_started {
        assert!(status.contains_key(id.as_str()), "call {id} started and then lost");
    }
    for id in &log.calls_ended {
        assert_eq!(status.get(id.as_str()).copied(), Some("completed"), "call {id}");
    }
    let stats = d.outbox().stats().unwrap();
    assert_eq!(stats.total as usize, all.len());
    println!(
        "record: {} events stored ({} acknowledged by a printed line), {} sessions, {} calls ({} interrupted)",
        all.len(),
        log.events.len(),
        sessions.len(),
        calls.len(),
        interrupted
    );
}

#[test]
fn kill9_while_recording_and_installing() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let kills = env_u64("EDETAIL_CRASH_KILLS").unwrap_or(120).max(2);
    let seed = env_u64("EDETAIL_CRASH_SEED")
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    println!("crash seed: {seed} (replay with EDETAIL_CRASH_SEED={seed} EDETAIL_CRASH_KILLS={kills})");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let rec_dir = tmp.path().join("record");
    let inst_dir = tmp.path().join("install");
    std::fs::create_dir_all(inst_dir.join("zips")).unwrap();
    // The recording device needs an openable bundle.
    {
        std::fs::create_dir_all(&rec_dir).unwrap();
        let d = Device::open(&rec_dir.join("data"), config()).unwrap();
        let zip = rec_dir.join("sample.zip");
        std::fs::write(&zip, SampleBundle::new().zip(Some(&key()))).unwrap();
        d.install_zip(&zip).unwrap();
    }

    let mut log = RecordLog::default();
    let mut last_installed = 0u64;
    let (mut early_kills, mut installs_seen, mut gcs) = (0, 0, 0);
    for i in 0..kills {
        if i % 2 == 0 {
            let run = run_child("record", &rec_dir, &mut rng);
            early_kills += run.killed_before_ready as u32;
            for l in &run.lines {
                let mut parts = l.split(' ');
                match parts.next() {
                    Some("EV") => {
                        let seq: i64 = parts.next().unwrap().parse().unwrap();
                        let uuid = parts.next().unwrap().to_string();
                        let call = parts.next().unwrap().to_string();
                        log.events.push((seq, uuid, call));
                    }
                    Some("CALL") => log.calls_started.push(parts.next().unwrap().to_string()),
                    Some("END") => {
                        log.calls_ended.insert(parts.next().unwrap().to_string());
                    }
                    _ => {}
                }
            }
        } else {
            // Build the next few versions outside the kill window (the child builds more itself).
            let zips = inst_dir.join("zips");
            for e in std::fs::read_dir(&zips).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                let stale = name.starts_with('.') || name < format!("v{:05}.zip", last_installed);
                if stale {
                    std::fs::remove_file(&p).unwrap();
                }
            }
            for v in last_installed + 1..=last_installed + 4 {
                ensure_install_zip(&zips, v);
            }
            let run = run_child("install", &inst_dir, &mut rng);
            early_kills += run.killed_before_ready as u32;
            for l in &run.lines {
                if let Some(v) = l.strip_prefix("INSTALLED ") {
                    let v: u64 = v.parse().unwrap();
                    assert!(v > last_installed, "installed {v} after {last_installed}");
                    last_installed = v;
                    installs_seen += 1;
                }
            }
            let newest_zip = std::fs::read_dir(&zips)
                .unwrap()
                .filter_map(|e| e.unwrap().file_name().to_str()?.strip_prefix('v')?.strip_suffix(".zip")?.parse::<u64>().ok())
                .max()
                .unwrap_or(0);
            let gc = rng.chance(3);
            gcs += gc as u32;
            let active = check_install_dir(&inst_dir, last_installed, newest_zip, gc);
            // The next child continues from what is active (may be newer than the last line).
            last_installed = last_installed.max(active);
        }
    }
    check_record_dir(&rec_dir, &log);
    println!(
        "install: {installs_seen} installs returned, final version {last_installed}, {gcs} GCs between kills; \
         {kills} kills ({early_kills} during open) in {:.1?}",
        started.elapsed()
    );
    assert!(!log.events.is_empty(), "no record ever returned before a kill: delays too short");
    assert!(installs_seen > 0, "no install ever returned before a kill: delays too short");
}
