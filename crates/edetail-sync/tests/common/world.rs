//! A real hub on loopback (SQLite, or PostgreSQL from `scripts/services`) with the sample
//! Cardiozen deck signed and published, and tablets (real devices with a manual clock and a sync
//! engine) provisioned on it: the set-up of the end-to-end tests.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use edetail_bundle::SecretKey;
use edetail_core::{CallStarted, Channel, DbKey, Device, DeviceConfig, ManualClock, NavAction, NavSource, StartCall};
use edetail_hub::testkit::TestDatabase;
use edetail_hub::{Hub, HubConfig};
use edetail_sync::{StaticToken, SyncConfig, SyncEngine};

pub const CARDIOZEN: &str = "com.example.cardiozen.launch";

pub struct World {
    pub url: String,
    pub hub: Hub,
    /// The publisher key the deck is signed with.
    pub key: SecretKey,
    /// Serves the hub; also runs the tests' own HTTP requests.
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    _db: Option<TestDatabase>,
}

/// The hub on SQLite.
pub fn world() -> World {
    world_on(None)
}

/// The hub on a fresh PostgreSQL database.
pub fn world_on_postgres() -> World {
    world_on(Some(TestDatabase::new()))
}

pub fn world_on(db: Option<TestDatabase>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(&[11u8; 32]);
    let zip = dir.path().join("cardiozen.zip");
    let deck = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../presentations/cardiozen-launch");
    edetail_bundle::pack::pack_dir(&deck, &zip, Some(&key), &mut |_| {}).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = HubConfig { database: db.as_ref().map(|d| d.url.clone()), ..HubConfig::local(dir.path().join("hub"), vec![key.public()]) };
    let (url, hub, _task) = rt.block_on(edetail_hub::spawn_local(config)).unwrap();
    hub.publish_zip(&std::fs::read(&zip).unwrap(), &[]).unwrap();
    World { url, hub, key, rt, dir, _db: db }
}

pub struct Tablet {
    pub device: Arc<Device>,
    pub clock: Arc<ManualClock>,
    pub engine: SyncEngine,
    /// The hub's id of this tablet.
    pub device_id: String,
    /// How the tablet reaches the hub (its token included).
    pub config: SyncConfig,
}

/// How a tablet is set up.
pub struct TabletSpec {
    /// Trusts the hub's plan key (else it refuses the hub's plans).
    pub trust_plans: bool,
    /// Where its manual clock starts.
    pub clock_start: DateTime<Utc>,
    pub db_key: Option<DbKey>,
}

impl Default for TabletSpec {
    fn default() -> Self {
        TabletSpec { trust_plans: true, clock_start: Utc::now(), db_key: None }
    }
}

/// A tablet of rep `name` in territory `north`, trusting the hub's plans, synced once.
pub fn tablet(w: &World, name: &str) -> Tablet {
    tablet_with(w, name, TabletSpec::default())
}

pub fn tablet_with(w: &World, name: &str, spec: TabletSpec) -> Tablet {
    let creds = w.hub.add_device(name, "north").unwrap();
    let clock = Arc::new(ManualClock::new(spec.clock_start));
    let mut trusted_keys = vec![w.key.public()];
    if spec.trust_plans {
        trusted_keys.push(w.hub.plan_public_key());
    }
    let config = DeviceConfig { trusted_keys, clock: clock.clone(), db_key: spec.db_key, ..DeviceConfig::new(name) };
    let device = Arc::new(Device::open(&w.dir.path().join(name), config).unwrap());
    let device_id = creds.device_id.clone();
    let config = SyncConfig::new(w.url.clone(), creds.device_id, Arc::new(StaticToken(creds.token)));
    let engine = SyncEngine::new(device.clone(), config.clone()).unwrap();
    engine.sync_now().unwrap();
    Tablet { device, clock, engine, device_id, config }
}

/// Starts a face-to-face call with `hcp` on the Cardiozen deck.
pub fn start(t: &Tablet, hcp: &str) -> CallStarted {
    t.device
        .start_call_with_suggestion(StartCall {
            hcp_id: Some(hcp.into()),
            channel: Channel::FaceToFace,
            bundle_id: CARDIOZEN.into(),
            presentation_id: None,
            location: None,
        })
        .unwrap()
}

/// Shows `slide` in `call` (from the overview) and lets `secs` seconds pass on it.
pub fn show(t: &Tablet, call: &str, slide: &str, secs: u64) {
    let goto = NavAction::Goto { slide: Some(slide.into()), presentation: None, key_message: None };
    t.device.calls().navigate(call, &goto, NavSource::Overview, false).unwrap();
    t.clock.advance(Duration::from_secs(secs));
}
