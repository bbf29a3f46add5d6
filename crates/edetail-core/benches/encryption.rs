//! Encryption at rest, priced: `Device::open` (to the first query answered) and `Calls::record`
//! latency (WAL, synchronous FULL, one transaction per event) on an encrypted database
//! (SQLCipher, raw key) beside a plain one, both holding the same events, measured in the same
//! run and interleaved so machine noise hits both sides alike. Prints medians, p99 and the
//! ratios encrypted / plain.
//!
//! Run: `cargo bench -p edetail-core --bench encryption`
//! (EDETAIL_BENCH_EVENTS, EDETAIL_BENCH_RUNS, EDETAIL_BENCH_RECORDS resize it).

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use edetail_core::{DbKey, Device, DeviceConfig};
use rusqlite::params;
use serde_json::json;

use common::*;

fn cfg(encrypted: bool) -> DeviceConfig {
    DeviceConfig { db_key: encrypted.then(|| DbKey::new([0x5a; 32])), ..config() }
}

/// A data directory holding `events` events (bulk-inserted in big transactions).
fn fixture(dir: &Path, encrypted: bool, events: usize) {
    let d = Device::open(dir, cfg(encrypted)).expect("open");
    let mut seq = 0;
    while seq < events {
        let n = 5_000.min(events - seq);
        d.databases()
            .write(|tx| {
                let mut st = tx.prepare_cached(
                    "INSERT INTO events (uuid, call_id, type, recorded_at, session, mono_ms, payload) VALUES (?1, ?2, 'custom', ?3, 1, ?4, ?5)",
                )?;
                for i in seq..seq + n {
                    let payload = json!({"slide": format!("s{:03}", i % 40), "event": "tap", "data": {"i": i}}).to_string();
                    st.execute(params![format!("ev-{i:09}"), format!("call-{}", i / 50), 1_790_000_000_000i64 + i as i64, i as i64, payload])?;
                }
                Ok(())
            })
            .expect("insert");
        seq += n;
    }
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    (us(pct(&v, 50.0)), us(pct(&v, 99.0)))
}

fn main() {
    let events = env_usize("EDETAIL_BENCH_EVENTS", 100_000);
    let runs = env_usize("EDETAIL_BENCH_RUNS", 15);
    let records = env_usize("EDETAIL_BENCH_RECORDS", 600);
    let tmp = scratch("encryption");
    let dirs = [tmp.path().join("plain"), tmp.path().join("encrypted")];
    let t = Instant::now();
    for (i, d) in dirs.iter().enumerate() {
        fixture(d, i == 1, events);
    }
    println!("encryption: two data directories of {events} events each built in {:.1?}", t.elapsed());
    let sizes: Vec<u64> = dirs.iter().map(|d| std::fs::metadata(d.join("edetail.sqlite3")).map(|m| m.len()).unwrap_or(0)).collect();
    println!("  database file: plain {:.1} MB, encrypted {:.1} MB", sizes[0] as f64 / 1e6, sizes[1] as f64 / 1e6);

    // 1. Open: fresh Device each time, until the first query (a point lookup) is answered;
    //    then, for information, the outbox statistics (a scan of every pending event: it reads,
    //    and on the encrypted side decrypts, the whole pending index). Interleaved.
    let (mut open, mut scan) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for _ in 0..runs {
        for (i, dir) in dirs.iter().enumerate() {
            let t = Instant::now();
            let d = Device::open(dir, cfg(i == 1)).expect("open");
            std::hint::black_box(d.device_id().expect("device id"));
            open[i].push(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(d.outbox().stats().expect("stats"));
            scan[i].push(t.elapsed());
        }
    }
    // 2. Record: one event per transaction (synchronous FULL, as deployed), rounds of 100.
    let devices = [Device::open(&dirs[0], cfg(false)).expect("open"), Device::open(&dirs[1], cfg(true)).expect("open")];
    let mut rec = [Vec::new(), Vec::new()];
    for round in 0..records.div_ceil(100) {
        for (i, d) in devices.iter().enumerate() {
            for k in 0..100 {
                let payload = json!({"slide": "s001", "event": "tap", "data": {"round": round, "k": k}});
                let t = Instant::now();
                d.calls().record(None, "custom", payload).expect("record");
                rec[i].push(t.elapsed());
            }
        }
    }
    let (op, oe) = (stats(open[0].clone()), stats(open[1].clone()));
    let (rp, re) = (stats(rec[0].clone()), stats(rec[1].clone()));
    let (sp, se) = (stats(scan[0].clone()), stats(scan[1].clone()));
    println!(
        "  open to first query ({runs} runs): plain p50 {:.0} us p99 {:.0} us | encrypted p50 {:.0} us p99 {:.0} us | ratio p50 {:.2}",
        op.0,
        op.1,
        oe.0,
        oe.1,
        oe.0 / op.0
    );
    println!(
        "  outbox stats over {events} pending events: plain p50 {:.0} us | encrypted p50 {:.0} us | ratio {:.2}",
        sp.0,
        se.0,
        se.0 / sp.0
    );
    println!(
        "  record, FULL ({} each): plain p50 {:.0} us p99 {:.0} us | encrypted p50 {:.0} us p99 {:.0} us | ratio p50 {:.2}, p99 {:.2}",
        rec[0].len(),
        rp.0,
        rp.1,
        re.0,
        re.1,
        re.0 / rp.0,
        re.1 / rp.1
    );
}
