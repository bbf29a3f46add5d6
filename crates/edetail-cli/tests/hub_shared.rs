//! Two `edetail hub serve` processes over one PostgreSQL database and one S3 bucket (the
//! deployment for operators who outgrow one machine): content published through one hub is
//! served by the other, a device syncing alternately through both uploads every event exactly
//! once, and the admin commands work against the shared store. PostgreSQL and the S3-compatible
//! server are real, started by `scripts/services`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_core::{Channel, Device, DeviceConfig, StartCall};
use edetail_hub::testkit::{TestDatabase, fresh_bucket};
use serde_json::{Value, json};

const SEED: [u8; 32] = [5; 32];

/// Runs `edetail` with the shared storage configured through the environment, as an operator would.
fn edetail(env: &[(&str, String)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edetail"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("edetail runs")
}

fn ok_json(o: &Output) -> Value {
    assert!(o.status.success(), "stdout: {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

struct Server {
    child: std::process::Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(env: &[(&str, String)], data: &Path, pubkey: &Path) -> Server {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edetail"));
    c.args(["hub", "serve", "--data", s(data), "--listen", "127.0.0.1:0", "--publisher-key", s(pubkey)]);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let url = first.trim().strip_prefix("hub: ").unwrap_or_else(|| panic!("first line: {first:?}")).trim_end_matches('/').to_string();
    Server { child, url }
}

fn record_call(dir: &Path, key: &SecretKey, events: usize) {
    let mut config = DeviceConfig::new("rep-1");
    config.trusted_keys = vec![key.public()];
    let device = Device::open(dir, config).unwrap();
    let (call, _) = device
        .start_call(StartCall {
            hcp_id: Some("hcp-1".into()),
            channel: Channel::FaceToFace,
            bundle_id: "com.example.sample".into(),
            presentation_id: None,
            location: None,
        })
        .unwrap();
    for i in 0..events {
        device.calls().track(&call, "scroll", json!({"i": i})).unwrap();
    }
    device.calls().end_call(&call).unwrap();
}

fn sync(dir: &Path, hub: &Server, creds: &Value, pubkey: &Path) -> Value {
    let token = creds["token"].as_str().unwrap();
    let id = creds["device_id"].as_str().unwrap();
    let o = edetail(
        &[],
        &["device", "--data", s(dir), "--json", "sync", "--hub", &hub.url, "--token", token, "--device-id", id, "--pubkey", s(pubkey)],
    );
    ok_json(&o)
}

/// The first sync of a tablet that was given only its token: the hub tells it its device id.
fn first_sync(dir: &Path, hub: &Server, creds: &Value, pubkey: &Path) -> Value {
    let token = creds["token"].as_str().unwrap();
    let o = edetail(&[], &["device", "--data", s(dir), "sync", "--hub", &hub.url, "--token", "not-a-token", "--pubkey", s(pubkey)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("which device"), "{}", String::from_utf8_lossy(&o.stderr));
    ok_json(&edetail(&[], &["device", "--data", s(dir), "--json", "sync", "--hub", &hub.url, "--token", token, "--pubkey", s(pubkey)]))
}

#[test]
fn two_hub_processes_share_postgres_and_s3() {
    let tmp = tempfile::tempdir().unwrap();
    let db = TestDatabase::new();
    let bucket = fresh_bucket();
    let blob_store =
        format!("s3://{}/content?endpoint={}&region=us-east-1&allow_http=true", bucket.bucket, bucket.endpoint.as_deref().unwrap());
    let env = [
        ("EDETAIL_HUB_DATABASE", db.url.clone()),
        ("EDETAIL_HUB_BLOB_STORE", blob_store),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
    ];
    let key = SecretKey::from_seed(&SEED);
    let pubkey = tmp.path().join("publisher.pub");
    std::fs::write(&pubkey, key.public().to_file_text()).unwrap();
    let zip = tmp.path().join("deck.zip");
    std::fs::write(&zip, SampleBundle::new().zip(Some(&key))).unwrap();

    // Admin commands against the shared store, from a machine with no hub running.
    let admin = tmp.path().join("admin");
    let publisher = ok_json(&edetail(&env, &["hub", "publisher", "add", "--data", s(&admin), "--name", "content", "--json"]));
    let creds = ok_json(&edetail(&env, &["hub", "device", "add", "--data", s(&admin), "--rep", "r1", "--territory", "north", "--json"]));
    let t = ok_json(&edetail(&env, &["hub", "territory", "set", "--data", s(&admin), "--name", "north", "--product", "sample", "--json"]));
    assert_eq!(t, json!({"name": "north", "products": ["sample"], "devices": 1}));
    assert!(!admin.join("hub.sqlite3").exists(), "no SQLite database when --database is given");

    let a = serve(&env, &tmp.path().join("hub-a"), &pubkey);
    let b = serve(&env, &tmp.path().join("hub-b"), &pubkey);
    assert_ne!(a.url, b.url);

    // Published through A (to the territories selling the product), installed through B.
    let token = publisher["token"].as_str().unwrap();
    let published = ok_json(&edetail(&[], &["publish", s(&zip), "--hub", &a.url, "--token", token, "--json"]));
    assert_eq!(published["territories"], json!(["north"]));
    let dev = tmp.path().join("tablet");
    let first = first_sync(&dev, &b, &creds, &pubkey);
    assert_eq!(first["sync"]["bundles_activated"], json!(["com.example.sample@1"]), "{first}");
    assert!(first["sync"]["blobs_downloaded"].as_u64().unwrap() >= 5);

    // Events through A, then through B; each lands once.
    record_call(&dev, &key, 700);
    let up_a = sync(&dev, &a, &creds, &pubkey);
    record_call(&dev, &key, 300);
    let up_b = sync(&dev, &b, &creds, &pubkey);
    let again = sync(&dev, &a, &creds, &pubkey);
    let accepted = |v: &Value| v["sync"]["events_accepted"].as_u64().unwrap();
    assert!(accepted(&up_a) >= 702 && accepted(&up_b) >= 302, "{up_a} {up_b}");
    assert_eq!(accepted(&again), 0);

    let stats = ok_json(&edetail(&env, &["hub", "stats", "--data", s(&admin), "--json"]));
    assert_eq!(stats["store"], "postgres");
    assert_eq!(stats["events_received"].as_u64().unwrap(), accepted(&up_a) + accepted(&up_b));
    assert_eq!(stats["duplicates_absorbed"], 0);
    assert_eq!(stats["devices"][0]["watermark"].as_u64().unwrap(), accepted(&up_a) + accepted(&up_b));
    let list = ok_json(&edetail(&env, &["hub", "territory", "list", "--data", s(&admin), "--json"]));
    assert_eq!(list, json!([{"name": "north", "products": ["sample"], "devices": 1}]));
}
