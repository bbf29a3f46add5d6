//! Set-up shared by the device tests of remote detailing (`observe.rs`, `remote_sessions.rs`):
//! a device directory trusting one content key, the sample bundle installed, remote calls.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_core::{Channel, Device, DeviceConfig, ManualClock, StartCall};

pub const BUNDLE: &str = "com.example.sample";

/// The tests' start time.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().unwrap()
}

fn key() -> SecretKey {
    SecretKey::from_seed(&[11; 32])
}

/// Opens (or reopens) the device at `dir` on `clock`, trusting the tests' content key.
pub fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Device {
    let config = DeviceConfig { trusted_keys: vec![key().public()], clock, ..DeviceConfig::new("rep-1") };
    Device::open(dir, config).unwrap()
}

/// A device in a fresh directory (`DIR/data`) with the sample bundle installed.
pub fn setup() -> (tempfile::TempDir, Arc<ManualClock>, Device) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let d = open(&tmp.path().join("data"), clock.clone());
    let zip = tmp.path().join("deck.zip");
    std::fs::write(&zip, SampleBundle::new().zip(Some(&key()))).unwrap();
    d.install_zip(&zip).unwrap();
    (tmp, clock, d)
}

/// Starts a remote call on the sample bundle, with an HCP or without; its id.
pub fn start(d: &Device, hcp: Option<&str>) -> String {
    let start = StartCall {
        hcp_id: hcp.map(str::to_string),
        channel: Channel::Remote,
        bundle_id: BUNDLE.into(),
        presentation_id: None,
        location: None,
    };
    d.start_call(start).unwrap().0
}
