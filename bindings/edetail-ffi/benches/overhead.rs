//! FFI overhead, Rust side: the `EdetailDevice` calls that the Kotlin and Python benches make
//! through uniffi (bindings/kotlin/src/bench, bindings/python/bench_overhead.py), made here
//! directly from Rust on the same data, so `scripts/bindings-bench` can print the ratios.
//!
//! Operations (identical in the three benches):
//! - `record`: a small event (~50 bytes of JSON); fsync-bound (synchronous=FULL), so its ratio
//!   shows disk more than FFI;
//! - `resolve_read`: `resolve_asset` + `read_all` of a small asset (the deck's 400-byte SVG);
//! - `bridge_context`: `handle_bridge_message` with a cheap `context` message (no call open);
//! - `sync_status`: no I/O at all, the bare cost of a call returning an enum.
//!
//! Each operation: a warm-up run, then `EDETAIL_BENCH_RUNS` (7) runs of N calls; the median
//! run's ns/op is reported. Lines: `bench rust <op> ns_per_op=.. ops_per_s=.. runs=.. n=..`.
//!
//! Data: `EDETAIL_BENCH_BUNDLE` (a signed bundle zip) + `EDETAIL_BENCH_PUBKEY`, and the data
//! directory under `EDETAIL_BENCH_DIR`, as scripts/bindings-bench passes to all three; alone,
//! it packs and signs presentations/cardiozen-launch itself and works under target/tmp.
//!
//! Run: `cargo bench -p edetail-ffi --bench overhead` (or `scripts/bindings-bench` for all three).

use std::path::{Path, PathBuf};
use std::time::Instant;

use edetail_ffi::{DeviceOptions, EdetailDevice};

const BUNDLE: &str = "com.example.cardiozen.launch";
const SMALL_ASSET: &str = "/com.example.cardiozen.launch/shared/tick.svg";
const RECORD_PAYLOAD: &str = r#"{"slide":"efficacy-primary","event":"chart_tap","point":3}"#;
const BRIDGE_CONTEXT: &str = r#"{"v":1,"id":1,"method":"context","params":{}}"#;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// Runs `op` `n` times per run: one warm-up run, then `runs` timed runs; prints the median.
fn bench(op: &str, n: usize, runs: usize, mut f: impl FnMut()) {
    let mut per_op = Vec::with_capacity(runs);
    for run in 0..=runs {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        if run > 0 {
            per_op.push(t.elapsed().as_nanos() as f64 / n as f64);
        }
    }
    per_op.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let median = per_op[per_op.len() / 2];
    println!("bench rust {op} ns_per_op={median:.0} ops_per_s={:.0} runs={runs} n={n}", 1e9 / median);
}

/// (bundle zip, publisher key text): from the environment, or packed and signed here.
fn data(work: &Path) -> (PathBuf, String) {
    if let (Ok(zip), Ok(key)) = (std::env::var("EDETAIL_BENCH_BUNDLE"), std::env::var("EDETAIL_BENCH_PUBKEY")) {
        return (PathBuf::from(zip), std::fs::read_to_string(key).expect("EDETAIL_BENCH_PUBKEY"));
    }
    let deck = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../presentations/cardiozen-launch");
    let key = edetail_bundle::SecretKey::generate().expect("key");
    let zip = work.join("cardiozen.zip");
    edetail_bundle::pack::pack_dir(&deck, &zip, Some(&key), &mut |_| {}).expect("pack");
    (zip, key.public().to_file_text())
}

fn main() {
    let runs = env_usize("EDETAIL_BENCH_RUNS", 7);
    let base = std::env::var("EDETAIL_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).expect("bench dir");
    let work = tempfile::Builder::new().prefix("ffi-overhead-rust-").tempdir_in(&base).expect("tempdir");
    let (zip, key) = data(work.path());
    let device = EdetailDevice::open(DeviceOptions {
        data_dir: work.path().join("device").display().to_string(),
        rep_id: "rep-bench".into(),
        publisher_keys: vec![key],
        allow_unsigned: false,
        max_offline_hours: None,
        db_key: None,
    })
    .expect("open");
    assert_eq!(device.install_bundle_file(zip.display().to_string()).expect("install").bundle_id, BUNDLE);
    let small = device.resolve_asset(SMALL_ASSET.into(), None);
    assert_eq!(small.status(), 200);
    let small_len = small.read_all().expect("read").len();
    assert!(small_len > 0 && small_len < 4096, "small asset: {small_len} bytes");

    bench("record", env_usize("EDETAIL_BENCH_RECORD_N", 200), runs, || {
        device.record(None, "app.bench".into(), RECORD_PAYLOAD.into()).expect("record");
    });
    bench("resolve_read", env_usize("EDETAIL_BENCH_N", 10_000), runs, || {
        let r = device.resolve_asset(SMALL_ASSET.into(), None);
        assert_eq!(r.read_all().expect("read").len(), small_len);
    });
    bench("bridge_context", env_usize("EDETAIL_BENCH_N", 10_000), runs, || {
        let reply = device.handle_bridge_message(BRIDGE_CONTEXT.into());
        assert!(reply.contains("\"ok\":true"));
    });
    // Nanoseconds each: 100x the calls so a run lasts long enough to time.
    bench("sync_status", env_usize("EDETAIL_BENCH_N", 10_000) * 100, runs, || {
        std::hint::black_box(device.sync_status());
    });
}
