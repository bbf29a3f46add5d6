//! The hub at a company's size (issue 15): grows one hub step by step with generated calls
//! (`edetail_hub::scale`: many devices in several territories, realistic slide views) and
//! reports, after each step: store ingest events/s, analysis calls/s, p50/p95 of every
//! dashboard page, a device request's p99 while dashboard pages load, a device's full feed
//! after the CRM's target lists are imported (its rep's targets' plans: bytes as JSON and
//! gzip, time), the process's peak RSS, the database size, stored events and their payloads,
//! and the analysis documents' sizes; after the last step, pruning every analysed event
//! (retention) and the database size after `VACUUM`.
//!
//! Steps are cumulative `EVENTS:HCPS` targets: `EDETAIL_SCALE_STEPS` (default
//! `20000:2000,100000:10000`; the targets are `1000000:20000,10000000:100000`, hours
//! on a 2-core machine). `EDETAIL_SCALE_BACKEND=postgresql` for the PostgreSQL store (the
//! cluster `scripts/services` starts; `EDETAIL_SCALE_ANALYSERS`, default 2, hubs over that
//! database analyse at once, as hub processes sharing the queue), `EDETAIL_SCALE_DEVICES` (default 200),
//! `EDETAIL_SCALE_TERRITORIES` (default 10). Loopback only; nothing leaves the machine.
//! Run: `cargo bench -p edetail-hub --bench scale`.

use std::sync::Arc;

/// The allocator of the `edetail` binary that runs `hub serve` (docs/adr/0020-hub-allocator.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::{Duration, Instant};

use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_hub::blobs::BlobStore;
use edetail_hub::postgres::PgStore;
use edetail_hub::scale::{Grown, ScaleSpec};
use edetail_hub::testkit::TestDatabase;
use edetail_hub::{AnalyzerConfig, Hub, HubConfig, serve_local};
use edetail_protocol::ChangePage;

/// Full feed fetches timed per step (p50/p95).
const FEED_FETCHES: usize = 10;

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Where the bench's database lives, to measure it with plain SQL.
enum Db<'a> {
    Sqlite(std::path::PathBuf),
    Postgres(&'a str),
}

/// Database size, stored events with their average payload, and per document kind its count,
/// average and largest size (bytes of JSON text).
struct Sizes {
    db_bytes: f64,
    events: i64,
    payload_avg: f64,
    docs: Vec<(String, i64, f64, i64)>,
}

const EVENT_SIZES_SQL: &str = "SELECT COUNT(*), COALESCE(AVG(length(payload)), 0)::float8 FROM events";
const DOC_SIZES_SQL: &str = "SELECT kind, COUNT(*), COALESCE(AVG(length(doc)), 0)::float8, COALESCE(MAX(length(doc)), 0)::bigint FROM analytics_docs GROUP BY kind ORDER BY kind";

fn sizes(db: &Db<'_>, rt: &tokio::runtime::Runtime) -> Sizes {
    match db {
        Db::Sqlite(path) => {
            let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
            let strip = |q: &str| q.replace("::float8", "").replace("::bigint", "");
            let (events, payload_avg) = c.query_row(&strip(EVENT_SIZES_SQL), [], |r| Ok((r.get(0)?, r.get(1)?))).expect("events");
            let mut st = c.prepare(&strip(DOC_SIZES_SQL)).expect("docs");
            let docs = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).expect("docs").map(|r| r.unwrap()).collect();
            let db_bytes: i64 =
                c.query_row("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()", [], |r| r.get(0)).expect("size");
            Sizes { db_bytes: db_bytes as f64, events, payload_avg, docs }
        }
        Db::Postgres(url) => rt.block_on(async {
            let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            let r = c.query_one(EVENT_SIZES_SQL, &[]).await.expect("events");
            let docs = c.query(DOC_SIZES_SQL, &[]).await.expect("docs").iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
            let db_bytes: i64 = c.query_one("SELECT pg_database_size(current_database())", &[]).await.expect("size").get(0);
            Sizes { db_bytes: db_bytes as f64, events: r.get(0), payload_avg: r.get(1), docs }
        }),
    }
}

fn print_sizes(s: &Sizes) {
    println!(
        "    database                             {:>10.1} MB ({} stored events, payloads {:.0} B on average)",
        s.db_bytes / 1e6,
        s.events,
        s.payload_avg
    );
    for (kind, n, avg, max) in &s.docs {
        println!(
            "    documents '{kind}'{:>w$}{n} of {:.1} KB on average, largest {:.1} KB",
            "",
            avg / 1e3,
            *max as f64 / 1e3,
            w = 26 - kind.len()
        );
    }
}

fn dir_mb(dir: &std::path::Path) -> f64 {
    fn walk(p: &std::path::Path) -> u64 {
        std::fs::read_dir(p)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => walk(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(dir) as f64 / 1e6
}

async fn timed_get(http: &reqwest::Client, url: &str, token: &str) -> (Duration, usize) {
    let t = Instant::now();
    let r = http.get(url).bearer_auth(token).send().await.expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    let n = r.bytes().await.expect("body").len();
    (t.elapsed(), n)
}

fn main() {
    let steps: Vec<(u64, u64)> = std::env::var("EDETAIL_SCALE_STEPS")
        .unwrap_or_else(|_| "20000:2000,100000:10000".into())
        .split(',')
        .filter_map(|s| {
            let (e, h) = s.split_once(':')?;
            Some((e.trim().parse().ok()?, h.trim().parse().ok()?))
        })
        .collect();
    let backend = std::env::var("EDETAIL_SCALE_BACKEND").unwrap_or_else(|_| "sqlite".into());
    let spec =
        ScaleSpec { devices: env_usize("EDETAIL_SCALE_DEVICES", 200), territories: env_usize("EDETAIL_SCALE_TERRITORIES", 10), seed: 15 };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("scratch");
    let key = SecretKey::from_seed(&[15; 32]);
    let _db;
    let mut others = Vec::new();
    let hub = if backend.eq_ignore_ascii_case("postgresql") || backend.eq_ignore_ascii_case("postgres") {
        let db = TestDatabase::new();
        let pg_hub = || {
            let store = PgStore::connect(&db.url, edetail_hub::postgres::DEFAULT_POOL_SIZE).expect("postgres");
            Hub::with_store(
                Arc::new(store),
                BlobStore::open_local(dir.path()).expect("blobs"),
                vec![key.public()],
                AnalyzerConfig::generated().unwrap(),
            )
        };
        let hub = pg_hub();
        // Further hub "processes" on the same database: each its own pool and analyser.
        for _ in 1..env_usize("EDETAIL_SCALE_ANALYSERS", 2) {
            others.push(pg_hub());
        }
        _db = Some(db);
        hub
    } else {
        _db = None;
        Hub::open(HubConfig::local(dir.path().join("hub"), vec![key.public()])).expect("hub")
    };
    hub.publish_zip(&SampleBundle::new().zip(Some(&key)), &[]).expect("publish");
    let mut grown = Grown::start(&hub, &spec).expect("devices");
    let (url, _task) = rt.block_on(serve_local(hub.clone())).expect("serve");
    println!("scale ({backend}): {} devices in {} territories; cumulative steps {steps:?}", spec.devices, spec.territories);
    let db = match &_db {
        Some(d) => Db::Postgres(&d.url),
        None => Db::Sqlite(dir.path().join("hub").join(edetail_hub::sqlite::DB_FILE)),
    };
    let (mut events, mut last_hcps) = (0u64, 0u64);
    for (target, hcps) in steps {
        let add = target.saturating_sub(events);
        let r = grown.grow_shared(&hub, &others, add, hcps.max(last_hcps)).expect("grow");
        events += r.events;
        last_hcps = hcps;
        // The CRM's target lists (every HCP drawn so far is some rep's target).
        let t = Instant::now();
        let targets = hub.import_rep_targets(&grown.targets_csv(hcps)).expect("targets");
        let import_secs = t.elapsed().as_secs_f64();
        println!("\n  step: {events} events, HCPs drawn from {hcps} ({} with a summary)", hub.store().hcp_count().unwrap_or(0));
        println!("    ingest (store, batches of 500)   {:>10.0} events/s", r.ingest_per_sec());
        println!(
            "    analysis ({} hub{})                {:>10.0} calls/s ({} calls in {:.1} s)",
            1 + others.len(),
            if others.is_empty() { " " } else { "s" },
            r.analysis_per_sec(),
            r.calls_analysed,
            r.analysis_secs
        );
        println!(
            "    target lists import              {:>10.1} s ({} reps, {} targets, {} new, {} plans sent again)",
            import_secs, targets.reps, targets.targets, targets.added, targets.plans_resent
        );
        // The customer's prescription feed for every HCP drawn so far (six months each).
        let t = Instant::now();
        let rx = hub.import_prescriptions(&grown.prescriptions_csv(hcps, "sample")).expect("prescriptions");
        println!("    prescriptions import             {:>10.1} s ({rx} rows)", t.elapsed().as_secs_f64());
        let hcp =
            hub.store().hcp_page(&Default::default()).ok().and_then(|p| p.rows.first().map(|(s, _)| s.hcp_id.clone())).unwrap_or_default();
        let pages = [
            "/dashboard".to_string(),
            "/dashboard/decks".into(),
            "/dashboard/decks/com.example.sample".into(),
            "/dashboard/hcps".into(),
            "/dashboard/hcps?sort=calls&page=3".into(),
            "/dashboard/hcps?stage=aware&sort=last_call".into(),
            "/dashboard/hcps?stage=advocate&page=2".into(),
            "/dashboard/hcps?territory=t3&sort=calls".into(),
            format!("/dashboard/hcps/{hcp}"),
            "/dashboard/channels".into(),
            "/dashboard/sync".into(),
            "/dashboard/experiment".into(),
        ];
        let http = reqwest::Client::new();
        // Fresh operators per step and page: the dashboard's per-operator rate limit (10/s,
        // burst 100) must not throttle the timed requests.
        let operators: Vec<String> =
            (0..pages.len()).map(|i| hub.add_operator(&format!("bench-{events}-{i}"), 1, "cli:bench").expect("operator")).collect();
        let loaders_ops: Vec<String> =
            (0..2).map(|i| hub.add_operator(&format!("load-{events}-{i}"), 1, "cli:bench").expect("operator")).collect();
        rt.block_on(async {
            for (path, operator) in pages.iter().zip(&operators) {
                let _ = timed_get(&http, &format!("{url}{path}"), operator).await;
                let mut lat = Vec::new();
                let mut bytes = 0;
                for _ in 0..10 {
                    let (d, n) = timed_get(&http, &format!("{url}{path}"), operator).await;
                    lat.push(d);
                    bytes = n;
                }
                lat.sort();
                println!(
                    "    {:<44} p50 {:>8.1} ms  p95 {:>8.1} ms  ({:.0} KB)",
                    path,
                    pct(&lat, 50.0),
                    pct(&lat, 95.0),
                    bytes as f64 / 1e3
                );
            }
            // A device's requests while two operators load pages.
            let device = grown.devices[0].0.clone();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let loaders: Vec<_> = loaders_ops
                .iter()
                .enumerate()
                .map(|(i, op)| {
                    let (http, url, op, stop, pages) = (http.clone(), url.clone(), op.clone(), stop.clone(), pages.clone());
                    tokio::spawn(async move {
                        let mut k = i;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            // Throttled (429) loads are fine here: the load is what matters.
                            let r = http.get(format!("{url}{}", pages[k % pages.len()])).bearer_auth(&op).send().await;
                            if let Ok(r) = r {
                                let _ = r.bytes().await;
                            }
                            k += 1;
                        }
                    })
                })
                .collect();
            let mut lat = Vec::new();
            for _ in 0..100 {
                lat.push(timed_get(&http, &format!("{url}/v1/device"), &device.token).await.0);
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for l in loaders {
                let _ = l.await;
            }
            lat.sort();
            println!("    GET /v1/device while pages load       p50 {:>8.1} ms  p99 {:>8.1} ms", pct(&lat, 50.0), pct(&lat, 99.0));
            // A new tablet's full feed: its size once in each encoding, then the time of
            // FEED_FETCHES full fetches as a tablet makes them (gzip, decoded, every page).
            let raw = reqwest::Client::builder().no_gzip().build().expect("client");
            let (mut cursor, mut json_bytes, mut gz_bytes, mut plans) = ("0".to_string(), 0usize, 0usize, 0usize);
            loop {
                let r = http.get(format!("{url}/v1/changes?since={cursor}")).bearer_auth(&device.token).send().await.expect("feed");
                let body = r.bytes().await.expect("feed body");
                json_bytes += body.len();
                let page: ChangePage = serde_json::from_slice(&body).expect("page");
                let gz = raw
                    .get(format!("{url}/v1/changes?since={cursor}"))
                    .bearer_auth(&device.token)
                    .header("accept-encoding", "gzip")
                    .send()
                    .await
                    .expect("feed gz");
                gz_bytes += gz.bytes().await.expect("gz body").len();
                plans += page.plans.len();
                cursor = page.next_cursor;
                if !page.has_more {
                    break;
                }
            }
            let mut fetches = Vec::with_capacity(FEED_FETCHES);
            for _ in 0..FEED_FETCHES {
                let (t, mut cursor) = (Instant::now(), "0".to_string());
                loop {
                    // reqwest asks for gzip and decodes it (its `gzip` feature).
                    let r = http.get(format!("{url}/v1/changes?since={cursor}")).bearer_auth(&device.token).send().await.expect("feed");
                    let page: ChangePage = serde_json::from_slice(&r.bytes().await.expect("feed body")).expect("page");
                    cursor = page.next_cursor;
                    if !page.has_more {
                        break;
                    }
                }
                fetches.push(t.elapsed());
            }
            fetches.sort();
            println!(
                "    a device's full feed ({} targets)    {plans} plans, {:.1} KB JSON, {:.1} KB gzip; gzip fetch p50 {:.0} ms, p95 {:.0} ms ({FEED_FETCHES} fetches)",
                hcps.div_ceil(spec.devices as u64),
                json_bytes as f64 / 1e3,
                gz_bytes as f64 / 1e3,
                pct(&fetches, 50.0),
                pct(&fetches, 95.0)
            );
        });
        println!("    peak RSS (the whole bench process)   {:>10.0} MB", peak_rss_mb());
        println!(
            "    data directory                       {:>10.1} MB{}",
            dir_mb(dir.path()),
            if _db.is_some() { " (blobs; database in PostgreSQL)" } else { "" }
        );
        print_sizes(&sizes(&db, &rt));
    }

    // Retention, after the last step (so no step measures a pruned hub): every analysed event
    // pruned, whatever its age (the store's cutoff in the future; the hub's floor is one day).
    let before = sizes(&db, &rt);
    let t = Instant::now();
    let r = hub.store().prune_analysed_events(chrono::Utc::now() + chrono::Duration::days(1), None).expect("prune");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "\n  pruning every analysed event: {} events of {} devices in {:.1} s ({:.0} events/s)",
        r.events,
        r.devices,
        secs,
        r.events as f64 / secs.max(1e-9)
    );
    if let Db::Sqlite(path) = &db {
        // SQLite keeps the freed pages for new events; VACUUM returns them to the file system.
        let c = rusqlite::Connection::open(path).expect("open");
        let t = Instant::now();
        c.execute_batch("VACUUM").expect("vacuum");
        println!("    VACUUM                                {:>9.1} s", t.elapsed().as_secs_f64());
    } else if let Db::Postgres(url) = &db {
        rt.block_on(async {
            let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            let t = Instant::now();
            c.batch_execute("VACUUM FULL events").await.expect("vacuum");
            println!("    VACUUM FULL events                    {:>9.1} s", t.elapsed().as_secs_f64());
        });
    }
    let after = sizes(&db, &rt);
    print_sizes(&after);
    println!(
        "    the events took                      {:>10.1} MB ({:.0} B per event with their indexes)",
        (before.db_bytes - after.db_bytes) / 1e6,
        (before.db_bytes - after.db_bytes) / (r.events.max(1) as f64)
    );
}
