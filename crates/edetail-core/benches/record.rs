//! `Calls::record` latency and throughput beside a bare rusqlite INSERT of the same row into a
//! table of the same shape, with the same pragmas (WAL; synchronous FULL, then NORMAL for
//! information), one transaction per row, both measured in the same run, interleaved in rounds
//! so machine noise hits both sides alike. The target is a ratio (device / bare) <= 1.5.
//!
//! Run: `cargo bench -p edetail-core --bench record`
//! (EDETAIL_BENCH_ROUNDS, EDETAIL_BENCH_FULL_N, EDETAIL_BENCH_NORMAL_N resize it).

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use edetail_bundle::testkit::SampleBundle;
use edetail_core::{Channel, Device, StartCall};
use rusqlite::{Connection, TransactionBehavior, params};
use serde_json::{Value, json};

use common::*;

/// The events table exactly as migration 001 creates it.
const EVENTS_DDL: &str = "
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid         TEXT NOT NULL UNIQUE,
    call_id      TEXT,
    type         TEXT NOT NULL,
    recorded_at  INTEGER NOT NULL,
    session      INTEGER NOT NULL,
    mono_ms      INTEGER NOT NULL,
    payload      TEXT NOT NULL,
    acked_at     INTEGER,
    parked_reason TEXT
) STRICT;
CREATE INDEX events_pending ON events (seq) WHERE acked_at IS NULL AND parked_reason IS NULL;
CREATE INDEX events_call ON events (call_id, seq);";

/// A realistic custom clickstream payload (~200 bytes serialized).
fn payload(i: u64) -> Value {
    json!({
        "slide": "efficacy",
        "event": "chart_tap",
        "data": {"chart": "hr-forest-primary-endpoint", "point": i % 12, "x": 0.4213, "y": 0.78,
                 "label": "HR 0.78 (95% CI 0.69-0.88)", "zoomed": false, "elapsed_ms": 12_345 + i % 1000}
    })
}

struct Bare {
    conn: Connection,
}

impl Bare {
    fn open(path: &Path, synchronous: &str) -> Bare {
        let conn = Connection::open(path).expect("open");
        conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
        conn.pragma_update(None, "synchronous", synchronous).expect("sync");
        conn.pragma_update(None, "foreign_keys", "ON").expect("fk");
        conn.pragma_update(None, "temp_store", "MEMORY").expect("temp");
        conn.execute_batch(EVENTS_DDL).expect("ddl");
        Bare { conn }
    }

    fn insert(&mut self, call: &str, p: &Value, i: u64) {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).expect("begin");
        let body = serde_json::to_string(p).expect("json");
        tx.prepare_cached(
            "INSERT INTO events (uuid, call_id, type, recorded_at, session, mono_ms, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .expect("prepare")
        .execute(params![uuid::Uuid::new_v4().to_string(), call, "custom", 1_795_000_000_000i64 + i as i64, 1, i as i64, body])
        .expect("insert");
        tx.commit().expect("commit");
    }
}

struct Side {
    lat: Vec<Duration>,
    wall: Duration,
}

impl Side {
    fn new() -> Side {
        Side { lat: Vec::new(), wall: Duration::ZERO }
    }
    fn p(&mut self, q: f64) -> Duration {
        self.lat.sort();
        pct(&self.lat, q)
    }
    fn per_sec(&self) -> f64 {
        self.lat.len() as f64 / self.wall.as_secs_f64()
    }
}

/// Returns (device, bare) for one synchronous setting.
fn measure(synchronous: &str, rounds: usize, per_round: usize) -> (Side, Side) {
    let tmp = scratch("record");
    let zip = tmp.path().join("sample.zip");
    std::fs::write(&zip, SampleBundle::new().zip(Some(&key()))).expect("zip");
    let d = Device::open(&tmp.path().join("device"), config()).expect("open");
    d.install_zip(&zip).expect("install");
    assert_eq!(edetail_core::db::SYNCHRONOUS, "FULL");
    d.databases()
        .with_writer(|c| {
            c.pragma_update(None, "synchronous", synchronous)?;
            Ok(())
        })
        .expect("pragma");
    let (call, _) = d
        .start_call(StartCall {
            hcp_id: Some("hcp-1".into()),
            channel: Channel::FaceToFace,
            bundle_id: "com.example.sample".into(),
            presentation_id: None,
            location: None,
        })
        .expect("call");
    let mut bare = Bare::open(&tmp.path().join("bare.sqlite3"), synchronous);
    let size = serde_json::to_string(&payload(3)).expect("json").len();
    println!("  payload {size} bytes serialized");
    // Warm up both (statement caches, WAL file growth).
    for i in 0..50 {
        d.calls().record(Some(&call), "custom", payload(i)).expect("record");
        bare.insert(&call, &payload(i), i);
    }
    let (mut dev, mut base) = (Side::new(), Side::new());
    let mut i = 1000u64;
    for round in 0..rounds {
        // Alternate which side goes first.
        for side in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            let t0 = Instant::now();
            for _ in 0..per_round {
                i += 1;
                let p = payload(i);
                let t = Instant::now();
                if side == 0 {
                    d.calls().record(Some(&call), "custom", p).expect("record");
                    dev.lat.push(t.elapsed());
                } else {
                    bare.insert(&call, &p, i);
                    base.lat.push(t.elapsed());
                }
            }
            if side == 0 {
                dev.wall += t0.elapsed();
            } else {
                base.wall += t0.elapsed();
            }
        }
    }
    (dev, base)
}

fn report(label: &str, dev: &mut Side, base: &mut Side) -> (f64, f64) {
    let (dp50, dp99, bp50, bp99) = (dev.p(50.0), dev.p(99.0), base.p(50.0), base.p(99.0));
    println!("  {:<32} {:>9} {:>9} {:>11}", "", "p50 us", "p99 us", "events/s");
    println!("  {:<32} {:>9.1} {:>9.1} {:>11.0}", "device.record", us(dp50), us(dp99), dev.per_sec());
    println!("  {:<32} {:>9.1} {:>9.1} {:>11.0}", "bare rusqlite INSERT", us(bp50), us(bp99), base.per_sec());
    let p50_ratio = dp50.as_secs_f64() / bp50.as_secs_f64();
    let p99_ratio = dp99.as_secs_f64() / bp99.as_secs_f64();
    let tput_ratio = base.per_sec() / dev.per_sec();
    println!(
        "  {label}: ratio device/bare p50 = {p50_ratio:.2}x, p99 = {p99_ratio:.2}x, throughput bare/device = {tput_ratio:.2}x  (n = {} each)",
        dev.lat.len()
    );
    (p50_ratio, tput_ratio)
}

fn main() {
    let rounds = env_usize("EDETAIL_BENCH_ROUNDS", 10);
    let full_n = env_usize("EDETAIL_BENCH_FULL_N", 200);
    let normal_n = env_usize("EDETAIL_BENCH_NORMAL_N", 2000);

    println!("record: WAL + synchronous=FULL (what db.rs sets), one transaction per event");
    let (mut dev_full, mut bare_full) = measure("FULL", rounds, full_n);
    let (p50r, tr) = report("FULL", &mut dev_full, &mut bare_full);
    let target = if p50r <= 1.5 && tr <= 1.5 { "MET" } else { "MISSED" };
    println!("  target (<= 1.5x the bare insert, p50 and throughput): {target}");

    println!("\nrecord: WAL + synchronous=NORMAL both sides (for information)");
    let (mut dev_norm, mut bare_norm) = measure("NORMAL", rounds, normal_n);
    report("NORMAL", &mut dev_norm, &mut bare_norm);

    println!(
        "\ncost of FULL over NORMAL for device.record: p50 {:.1}x, throughput {:.1}x",
        dev_full.p(50.0).as_secs_f64() / dev_norm.p(50.0).as_secs_f64(),
        dev_norm.per_sec() / dev_full.per_sec()
    );
}
