//! Helpers shared by the edetail-sync benchmarks: hubs on both store backends, devices with a
//! pre-filled outbox, a byte-counting TCP proxy that can cut the stream at a byte budget, and
//! (through edetail-core's bench helpers) signed decks of real size.
#![allow(dead_code)]

#[path = "../../../edetail-core/benches/common/mod.rs"]
mod core_common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use core_common::*;
use edetail_core::Device;
use edetail_hub::blobs::BlobStore;
use edetail_hub::postgres::PgStore;
use edetail_hub::sqlite::SqliteStore;
use edetail_hub::testkit::TestDatabase;
use edetail_hub::{DeviceCredentials, Hub, HubStore};
use edetail_sync::{StaticToken, SyncConfig, SyncEngine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The hub's metadata store under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A fresh store of `backend` (blobs, if any, on local files) and what keeps it alive.
pub struct BenchStore {
    pub store: Arc<dyn HubStore>,
    _db: Option<TestDatabase>,
    _dir: tempfile::TempDir,
    pub dir: std::path::PathBuf,
}

pub fn fresh_store(backend: Backend, name: &str) -> BenchStore {
    let dir = scratch(name);
    let path = dir.path().to_path_buf();
    match backend {
        Backend::Sqlite => BenchStore { store: Arc::new(SqliteStore::open(&path).expect("sqlite")), _db: None, _dir: dir, dir: path },
        Backend::Postgres => {
            let db = TestDatabase::new();
            let store = PgStore::connect(&db.url, edetail_hub::postgres::DEFAULT_POOL_SIZE).expect("postgres");
            BenchStore { store: Arc::new(store), _db: Some(db), _dir: dir, dir: path }
        }
    }
}

/// A hub over a fresh store, served on 127.0.0.1 by `rt`.
pub struct BenchHub {
    pub hub: Hub,
    pub url: String,
    _store: BenchStore,
    _task: tokio::task::JoinHandle<()>,
}

pub fn start_hub(rt: &tokio::runtime::Runtime, backend: Backend, name: &str) -> BenchHub {
    let store = fresh_store(backend, name);
    let blobs = BlobStore::open_local(&store.dir).expect("blobs");
    let hub = Hub::with_store(store.store.clone(), blobs, vec![key().public()], edetail_hub::AnalyzerConfig::generated().unwrap());
    // Every simulated device connects from 127.0.0.1, and a client may open a second connection
    // while its first returns to the pool: the per-address cap (64, for devices that each have
    // their own address) would cut the concurrent-devices run short, so it is off here.
    hub.set_server_limits(edetail_hub::server::ServerLimits { max_connections_per_ip: 0, ..Default::default() }).expect("limits");
    let (url, task) = rt.block_on(edetail_hub::serve_local(hub.clone())).expect("serve");
    BenchHub { hub, url, _store: store, _task: task }
}

pub fn engine(device: &Arc<Device>, hub_url: &str, creds: &DeviceCredentials) -> SyncEngine {
    let config = SyncConfig::new(hub_url, creds.device_id.clone(), Arc::new(StaticToken(creds.token.clone())));
    SyncEngine::new(device.clone(), config).expect("engine")
}

/// A payload shaped like a real slide interaction (~150 bytes of JSON).
pub fn payload(i: usize) -> serde_json::Value {
    serde_json::json!({"slide": format!("s{:03}", i % 40), "event": "scroll", "y": (i * 37) % 1000, "dwell_ms": (i * 13) % 9000, "source": "swipe"})
}

/// Fills a fresh device's outbox with `n` events in one transaction (setup, not measured:
/// recording through the core costs one fsync per event). Same columns as
/// `edetail_core::outbox::append`.
pub fn device_with_outbox(dir: &Path, n: usize) -> Arc<Device> {
    drop(Device::open(dir, config()).expect("device"));
    let mut conn = rusqlite::Connection::open(dir.join("edetail.sqlite3")).expect("device db");
    let tx = conn.transaction().expect("tx");
    {
        let mut st = tx
            .prepare("INSERT INTO events (uuid, call_id, type, recorded_at, session, mono_ms, payload) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)")
            .expect("insert");
        let t0 = 1_795_000_000_000i64;
        for i in 0..n {
            st.execute(rusqlite::params![
                uuid::Uuid::new_v4().to_string(),
                format!("call-{}", i / 200),
                "slide_exit",
                t0 + i as i64 * 50,
                i as i64 * 50,
                payload(i).to_string()
            ])
            .expect("row");
        }
    }
    tx.commit().expect("commit");
    drop(conn);
    Arc::new(Device::open(dir, config()).expect("device"))
}

/// A TCP proxy on 127.0.0.1 counting bytes each way; once `cut_after_down` bytes have gone
/// down (hub -> device) in total, it resets every open connection and the next ones pass.
pub struct CountingProxy {
    pub addr: SocketAddr,
    pub down: Arc<AtomicU64>,
    pub up: Arc<AtomicU64>,
    cut_after_down: Arc<AtomicU64>,
    pub cut_done: Arc<AtomicBool>,
}

impl CountingProxy {
    pub fn start(rt: &tokio::runtime::Runtime, upstream: &str) -> CountingProxy {
        let upstream: SocketAddr = upstream.trim_start_matches("http://").parse().expect("upstream addr");
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let p = CountingProxy {
            addr,
            down: Arc::new(AtomicU64::new(0)),
            up: Arc::new(AtomicU64::new(0)),
            cut_after_down: Arc::new(AtomicU64::new(u64::MAX)),
            cut_done: Arc::new(AtomicBool::new(false)),
        };
        let (down, up, cut, done) = (p.down.clone(), p.up.clone(), p.cut_after_down.clone(), p.cut_done.clone());
        rt.spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { continue };
                let (down, up, cut, done) = (down.clone(), up.clone(), cut.clone(), done.clone());
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up_task = tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = cr.read(&mut buf).await {
                            if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            up.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        let _ = sw.shutdown().await;
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let limit = cut.load(Ordering::Relaxed);
                        let before = down.load(Ordering::Relaxed);
                        if !done.load(Ordering::Relaxed) && before + n as u64 > limit {
                            // Deliver up to the budget, then drop the connection mid-body.
                            let k = limit.saturating_sub(before) as usize;
                            let _ = cw.write_all(&buf[..k]).await;
                            down.fetch_add(k as u64, Ordering::Relaxed);
                            done.store(true, Ordering::Relaxed);
                            up_task.abort();
                            return;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        down.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let _ = cw.shutdown().await;
                    let _ = up_task.await;
                });
            }
        });
        p
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts the stream once this many more bytes have gone down.
    pub fn cut_after(&self, more_bytes: u64) {
        self.cut_done.store(false, Ordering::Relaxed);
        self.cut_after_down.store(self.down.load(Ordering::Relaxed) + more_bytes, Ordering::Relaxed);
    }

    pub fn down_bytes(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }
}

pub fn mb(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}
