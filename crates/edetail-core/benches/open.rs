//! Cold start: time from `Device::open` to the first asset bytes served (`assets().resolve` of a
//! slide's index.html + read) on a data directory holding 1,000,000 events and 200 installed
//! bundle versions (20 bundles x 10 versions). Median of `EDETAIL_BENCH_RUNS` (default 15)
//! reopens; each is a fresh Device (new connections, empty caches) in this process; the OS page
//! cache is warm. Target: < 100 ms.
//!
//! The fixture is built once (~1 min) and cached in `target/bench-fixtures/<FIXTURE>`; delete
//! it or bump FIXTURE to rebuild. The events go in through rusqlite on the Device's own schema
//! in big transactions (the point is the table size, not how it got there).
//!
//! Run: `cargo bench -p edetail-core --bench open`

#[path = "common/mod.rs"]
mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use edetail_core::Device;
use rusqlite::{Connection, params};

use common::*;

const EVENTS: i64 = 1_000_000;
const CALLS: i64 = 10_000;
const BUNDLES: u64 = 20;
const VERSIONS: u64 = 10;
const FIRST_ASSET: (&str, &str) = ("com.example.b07", "slides/s000/index.html");

fn fixture_name() -> String {
    format!("open-v1-schema{}-events{EVENTS}-versions{}", edetail_core::db::SCHEMA_VERSION, BUNDLES * VERSIONS)
}

fn build(data: &Path, work: &Path) {
    let t = Instant::now();
    {
        let d = Device::open(data, config()).expect("open");
        for v in 1..=VERSIONS {
            for b in 0..BUNDLES {
                let id = format!("com.example.b{b:02}");
                let src = work.join(format!("src-{b}-{v}"));
                authoring_folder(&src, &id, v, 5);
                let zip = work.join(format!("{id}-{v}.zip"));
                pack(&src, &zip);
                d.install_zip(&zip).expect("install");
                fs::remove_dir_all(&src).expect("rm");
                fs::remove_file(&zip).expect("rm");
            }
        }
        let versions: i64 =
            d.databases().read(|c| Ok(c.query_row("SELECT COUNT(*) FROM bundle_versions", [], |r| r.get(0))?)).expect("count");
        assert_eq!(versions as u64, BUNDLES * VERSIONS);
    }
    println!("  fixture: {} bundle versions installed in {:.1?}", BUNDLES * VERSIONS, t.elapsed());
    let t = Instant::now();
    let mut c = Connection::open(data.join("edetail.sqlite3")).expect("sqlite");
    c.pragma_update(None, "journal_mode", "WAL").expect("wal");
    c.pragma_update(None, "synchronous", "OFF").expect("sync");
    let day0 = 1_790_000_000_000i64;
    let per_call = EVENTS / CALLS;
    let mut seq_in_call = 0;
    let mut call = String::new();
    for batch in 0..(EVENTS / 50_000) {
        let tx = c.transaction().expect("tx");
        {
            let mut ins_call = tx
                .prepare(
                    "INSERT INTO calls (id, rep_id, hcp_id, channel, status, bundle_id, started_at, ended_at)
                          VALUES (?1, 'rep-bench', ?2, 'face_to_face', 'completed', ?3, ?4, ?5)",
                )
                .expect("prepare");
            let mut ins = tx
                .prepare(
                    "INSERT INTO events (uuid, call_id, type, recorded_at, session, mono_ms, payload, acked_at)
                          VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .expect("prepare");
            for i in batch * 50_000..(batch + 1) * 50_000 {
                let at = day0 + i * 1500;
                if i % per_call == 0 {
                    call = uuid::Uuid::new_v4().to_string();
                    seq_in_call = 0;
                    let b = (i / per_call) % BUNDLES as i64;
                    ins_call
                        .execute(params![call, format!("hcp-{}", i % 997), format!("com.example.b{b:02}"), at, at + per_call * 1500])
                        .expect("call");
                }
                seq_in_call += 1;
                let kind = ["slide_enter", "custom", "slide_exit", "reaction"][(i % 4) as usize];
                let payload = format!(
                    r#"{{"slide":"s{:03}","event":"chart_tap","data":{{"chart":"hr-forest-primary-endpoint","point":{},"x":0.4213,"y":0.78,"label":"HR 0.78 (95% CI 0.69-0.88)","zoomed":false,"n":{}}}}}"#,
                    i % 5,
                    i % 12,
                    seq_in_call
                );
                // Most events were uploaded and acknowledged; the last 5% are pending.
                let acked = (i < EVENTS * 95 / 100).then_some(at + 3_600_000);
                ins.execute(params![uuid::Uuid::new_v4().to_string(), call, kind, at, 1 + i / 20_000, i % 20_000 * 1500, payload, acked])
                    .expect("event");
            }
        }
        tx.commit().expect("commit");
    }
    c.pragma_update(None, "synchronous", "FULL").expect("sync");
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
    drop(c);
    println!("  fixture: {EVENTS} events in {CALLS} calls inserted in {:.1?}", t.elapsed());
}

fn main() {
    let runs = env_usize("EDETAIL_BENCH_RUNS", 15).max(1);
    let dir = fixtures_dir(&fixture_name());
    let data = dir.join("data");
    let marker = dir.join("COMPLETE");
    if marker.exists() {
        println!("open: using cached fixture {}", dir.display());
    } else {
        println!("open: building fixture {} (once)", dir.display());
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        let work = dir.join("work");
        fs::create_dir_all(&work).expect("mkdir");
        build(&data, &work);
        fs::remove_dir_all(&work).expect("rm");
        fs::write(&marker, fixture_name()).expect("marker");
    }
    let db_mb = fs::metadata(data.join("edetail.sqlite3")).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64;
    let stats = {
        let d = Device::open(&data, config()).expect("open");
        (d.outbox().stats().expect("stats"), d.content().list().expect("list").len())
    };
    println!("  data dir: {:.0} MB database, {} events ({} pending), {} bundles", db_mb, stats.0.total, stats.0.pending, stats.1);
    assert!(stats.0.total >= EVENTS);

    let (mut total, mut open_only) = (Vec::new(), Vec::new());
    let mut buf = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let d = Device::open(&data, config()).expect("open");
        let opened = t.elapsed();
        let mut a = d.assets().resolve(FIRST_ASSET.0, FIRST_ASSET.1, None).expect("resolve");
        buf.clear();
        a.reader.read_to_end(&mut buf).expect("read");
        let served = t.elapsed();
        assert!(!buf.is_empty());
        total.push(served);
        open_only.push(opened);
        drop(a);
        drop(d);
    }
    total.sort();
    open_only.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\n  Device::open -> first asset bytes ({runs} reopens)   median {:.1} ms   min {:.1} ms   max {:.1} ms",
        ms(pct(&total, 50.0)),
        ms(total[0]),
        ms(total[total.len() - 1])
    );
    println!("    of which Device::open                          median {:.1} ms", ms(pct(&open_only, 50.0)));
    let ok = pct(&total, 50.0) < Duration::from_millis(100);
    println!("  target (< 100 ms): {}", if ok { "MET" } else { "MISSED" });
}
