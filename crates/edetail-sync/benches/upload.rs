//! Event upload and hub ingest, for the SQLite and the PostgreSQL store.
//!
//! 1. **Upload**: one device uploads `EDETAIL_BENCH_EVENTS` (default 100 000) outbox events to
//!    a hub on loopback with `SyncEngine::sync_now` (batches of 500, gzip, JSON, HTTP, the
//!    hub's transaction, the device marking each batch acknowledged), beside the hub store's
//!    raw rate for the same rows (`HubStore::apply_batch` called directly with the same batches
//!    of 500, no HTTP, no device). Ratio = end-to-end rate / raw store rate.
//! 2. **Ingest**: 50 concurrent devices (`EDETAIL_BENCH_DEVICES`) each post batches of 500
//!    gzipped events as fast as the hub answers; events/s and p50/p99 batch latency, beside
//!    the same raw store rate.
//!
//! Medians of `EDETAIL_BENCH_RUNS` (default 3) alternating runs. PostgreSQL is the cluster
//! `scripts/services` starts (or `EDETAIL_TEST_PG_URL`), a fresh database per run.
//! Run: `cargo bench -p edetail-sync --bench upload`; `EDETAIL_BENCH_BACKEND=sqlite` (or
//! `postgresql`) for one store only, `EDETAIL_BENCH_PARTS=raw,upload` (any of raw, upload,
//! ingest) for some parts, e.g. under a profiler.

#[path = "common/mod.rs"]
mod common;

/// The allocator of the `edetail` binary that runs `hub serve` (docs/adr/0020-hub-allocator.md):
/// the hub side is measured as it runs. The device side shares it here; on a tablet the app's
/// platform allocator serves it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write as _;
use std::time::{Duration, Instant};

use chrono::Utc;
use edetail_hub::store::CheckedEvent;
use edetail_protocol::{MAX_BATCH_EVENTS, UploadAck, UploadBatch, WireEvent};

use common::*;

fn wire_events(n: usize, offset: usize) -> Vec<WireEvent> {
    let t0 = Utc::now();
    (0..n)
        .map(|i| WireEvent {
            uuid: uuid::Uuid::new_v4().to_string(),
            seq: (offset + i + 1) as i64,
            call_id: Some(format!("call-{}", (offset + i) / 200)),
            kind: "slide_exit".into(),
            recorded_at: t0,
            session: 1,
            mono_ms: i as i64 * 50,
            payload: payload(offset + i),
        })
        .collect()
}

/// The raw store rate: the same batches straight into `apply_batch` (events/s).
fn raw_store_rate(backend: Backend, n: usize) -> f64 {
    let s = fresh_store(backend, "raw");
    s.store.add_device("dev-raw", "rep", "t", "tok", Utc::now(), None, None).expect("device");
    let events = wire_events(n, 0);
    let batches: Vec<Vec<CheckedEvent>> = events
        .chunks(MAX_BATCH_EVENTS)
        .map(|c| {
            c.iter().map(|e| CheckedEvent::Valid { event: e.clone(), recorded_at_corrected: e.recorded_at, payload_json: None }).collect()
        })
        .collect();
    let t = Instant::now();
    for b in &batches {
        let o = s.store.apply_batch("dev-raw", b, 0, Utc::now()).expect("apply");
        assert_eq!(o.accepted.len(), b.len());
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// One device, `n` events, end to end (events/s).
fn upload_rate(rt: &tokio::runtime::Runtime, backend: Backend, n: usize) -> f64 {
    let hub = start_hub(rt, backend, "upload-hub");
    let creds = hub.hub.add_device("rep-bench", "north").expect("device");
    let dir = scratch("upload-dev");
    let device = device_with_outbox(dir.path(), n);
    let engine = engine(&device, &hub.url, &creds);
    let t = Instant::now();
    let r = engine.sync_now().expect("sync");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.events_accepted, n, "every event accepted once");
    assert_eq!(device.outbox().stats().expect("stats").pending, 0);
    assert_eq!(hub.hub.stats().expect("stats").events_received, n as u64);
    n as f64 / secs
}

/// `devices` concurrent uploaders of `per_device` events each: (events/s, sorted batch latencies).
fn ingest(rt: &tokio::runtime::Runtime, backend: Backend, devices: usize, per_device: usize) -> (f64, Vec<Duration>) {
    let hub = start_hub(rt, backend, "ingest-hub");
    let bodies: Vec<(String, String, Vec<Vec<u8>>)> = (0..devices)
        .map(|_| {
            let creds = hub.hub.add_device("rep-bench", "north").expect("device");
            let events = wire_events(per_device, 0);
            let bodies = events
                .chunks(MAX_BATCH_EVENTS)
                .map(|c| {
                    let batch = UploadBatch {
                        device_id: creds.device_id.clone(),
                        batch_id: uuid::Uuid::new_v4().to_string(),
                        device_time: Utc::now(),
                        events: c.to_vec(),
                    };
                    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    gz.write_all(&serde_json::to_vec(&batch).expect("json")).expect("gzip");
                    gz.finish().expect("gzip")
                })
                .collect();
            (creds.device_id, creds.token, bodies)
        })
        .collect();
    let url = format!("{}/v1/events", hub.url);
    let t = Instant::now();
    let latencies = rt.block_on(async move {
        let tasks: Vec<_> = bodies
            .into_iter()
            .map(|(_, token, bodies)| {
                let url = url.clone();
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut lat = Vec::new();
                    for body in bodies {
                        let t = Instant::now();
                        let r = http
                            .post(&url)
                            .bearer_auth(&token)
                            .header("content-type", "application/json")
                            .header("content-encoding", "gzip")
                            .body(body)
                            .send()
                            .await
                            .expect("send");
                        assert!(r.status().is_success(), "{}", r.status());
                        let ack: UploadAck = r.json().await.expect("ack");
                        assert!(ack.duplicates.is_empty() && ack.rejected.is_empty(), "a fresh batch is accepted whole");
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("device task"));
        }
        all
    });
    let secs = t.elapsed().as_secs_f64();
    let total = devices * per_device;
    assert_eq!(hub.hub.stats().expect("stats").events_received, total as u64, "every event stored once");
    let mut latencies = latencies;
    latencies.sort();
    (total as f64 / secs, latencies)
}

fn main() {
    let n = env_usize("EDETAIL_BENCH_EVENTS", 100_000);
    let runs = env_usize("EDETAIL_BENCH_RUNS", 3).max(1);
    let devices = env_usize("EDETAIL_BENCH_DEVICES", 50);
    let per_device = env_usize("EDETAIL_BENCH_DEVICE_EVENTS", 2_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    // Start the PostgreSQL cluster before any timing.
    let _ = edetail_hub::testkit::postgres_url();
    println!("upload: {n} events from one device; ingest: {devices} devices x {per_device} events; medians of {runs} runs");
    let only = std::env::var("EDETAIL_BENCH_BACKEND").unwrap_or_default();
    let parts = std::env::var("EDETAIL_BENCH_PARTS").unwrap_or_default();
    let wanted = |what: u8| parts.is_empty() || parts.split(',').any(|p| p.trim() == ["raw", "upload", "ingest"][what as usize]);
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if !only.is_empty() && !backend.name().eq_ignore_ascii_case(&only) {
            continue;
        }
        let (mut raw, mut e2e, mut ing, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            let order: &[u8] = if run % 2 == 0 { &[0, 1, 2] } else { &[2, 1, 0] };
            for &what in order.iter().filter(|w| wanted(**w)) {
                sync_disk();
                match what {
                    0 => raw.push(raw_store_rate(backend, n)),
                    1 => e2e.push(upload_rate(&rt, backend, n)),
                    _ => {
                        let (rate, lat) = ingest(&rt, backend, devices, per_device);
                        ing.push(rate);
                        p50.push(pct(&lat, 50.0).as_secs_f64() * 1e3);
                        p99.push(pct(&lat, 99.0).as_secs_f64() * 1e3);
                    }
                }
            }
        }
        let median_f = |v: Vec<f64>| if v.is_empty() { f64::NAN } else { median_f(v) };
        let (raw, e2e, ing) = (median_f(raw), median_f(e2e), median_f(ing));
        println!("  {}", backend.name());
        println!("    {:<44} {:>9.0} events/s", "hub store apply_batch, raw (baseline)", raw);
        println!("    {:<44} {:>9.0} events/s   ratio to raw {:.2}x", "one device, end to end over loopback", e2e, e2e / raw);
        println!(
            "    {:<44} {:>9.0} events/s   ratio to raw {:.2}x   batch p50 {:.1} ms, p99 {:.1} ms",
            format!("{devices} concurrent devices, hub ingest"),
            ing,
            ing / raw,
            median_f(p50),
            median_f(p99)
        );
    }
}
