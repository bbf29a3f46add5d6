//! Issue 13, item 5: the real `edetail hub serve` binary writes a log (JSON, at TRACE level, as
//! the most verbose operator setting would), every request's access line carries the request
//! id of its response, and no personal data reaches it. The device-side counterpart is
//! `edetail-sync/tests/no_pii_in_logs.rs`; this one covers the hub process: a device sync with
//! events naming an HCP with a note and an email address, the dashboard page of that HCP, a
//! microsite page and visit (by link token), a failed login and a 429.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const HCP: &str = "hcp-MARKER-HCPID-4242";
const NOTE: &str = "MARKER-NOTE Dr. Jane Doe asked about her son";
const EMAIL: &str = "jane.doe.marker@example.org";
const SITE_TOKEN: &str = "MARKERSITETOKEN0123456789abcdef";
const WRONG_TOKEN: &str = "MARKERWRONGTOKEN0123456789";

fn edetail_json(args: &[&str]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_edetail")).args(args).output().expect("edetail runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Kills the server (by its own pid) even when an assertion fails.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_process_logs_requests_with_ids_and_no_personal_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    let dev = edetail_json(&["--json", "hub", "device", "add", "--data", s(&data), "--rep", "rep-1", "--territory", "north"]);
    let (device_id, device_token) = (dev["device_id"].as_str().unwrap().to_string(), dev["token"].as_str().unwrap().to_string());
    let op = edetail_json(&["--json", "hub", "operator", "add", "--data", s(&data), "--name", "ops"]);
    let operator_token = op["token"].as_str().unwrap().to_string();

    let log_path = tmp.path().join("hub.log");
    let child = Command::new(env!("CARGO_BIN_EXE_edetail"))
        .args(["hub", "serve", "--data", s(&data), "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("EDETAIL_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let mut first = String::new();
    BufReader::new(server.0.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let url = first.trim().strip_prefix("hub: ").expect("the address line").trim_end_matches('/').to_string();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut ids = Vec::new();
    let mut note = |r: &reqwest::Response| {
        let id = r.headers().get("x-request-id").expect("every response carries a request id").to_str().unwrap().to_string();
        ids.push((id, r.status().as_u16()));
    };

    // A device uploads a call with the HCP, a note naming a person and an email address.
    let now = chrono::Utc::now();
    let event = |seq: i64, kind: &str, payload: serde_json::Value| {
        serde_json::json!({"uuid": uuid::Uuid::new_v4().to_string(), "seq": seq, "call_id": "call-1", "type": kind,
            "recorded_at": now, "session": 1, "mono_ms": seq * 1000, "payload": payload})
    };
    let batch = serde_json::json!({"device_id": device_id, "batch_id": "b-1", "device_time": now, "events": [
        event(1, "call_started", serde_json::json!({"hcp_id": HCP, "channel": "in_person", "bundle_id": "com.example.x", "bundle_version": 1})),
        event(2, "note", serde_json::json!({"text": NOTE})),
        event(3, "follow_up_request", serde_json::json!({"topic": "samples", "note": EMAIL})),
        event(4, "call_ended", serde_json::json!({})),
    ]});
    let r = http.post(format!("{url}/v1/events")).bearer_auth(&device_token).json(&batch).send().await.unwrap();
    note(&r);
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = http.get(format!("{url}/v1/changes")).bearer_auth(&device_token).header("x-request-id", "sync-42.a_b").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "sync-42.a_b", "a well-formed incoming id is kept");
    note(&r);
    // The operator opens the HCP's dashboard page.
    let r = http.get(format!("{url}/dashboard/hcps/{HCP}")).bearer_auth(&operator_token).send().await.unwrap();
    note(&r);
    assert!(r.status().is_success() || r.status() == 404, "{}", r.status());
    // A microsite link (unknown token: the path carries it all the same).
    for r in [
        http.get(format!("{url}/m/{SITE_TOKEN}")).send().await.unwrap(),
        http.post(format!("{url}/m/{SITE_TOKEN}/visit?t={SITE_TOKEN}")).body("{}").send().await.unwrap(),
    ] {
        note(&r);
    }
    // A wrong bearer token on the device API (before the guessing brake closes this address).
    let r = http.get(format!("{url}/v1/device")).bearer_auth(WRONG_TOKEN).send().await.unwrap();
    note(&r);
    assert_eq!(r.status(), 401);
    // Failed logins until the login limit answers 429.
    let mut limited = false;
    for _ in 0..60 {
        let r = http
            .post(format!("{url}/dashboard/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={WRONG_TOKEN}"))
            .send()
            .await
            .unwrap();
        note(&r);
        if r.status() == 429 {
            limited = true;
            break;
        }
        assert_eq!(r.status(), 401);
    }
    assert!(limited, "the login limit answered 429");
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(server);

    let log = std::fs::read_to_string(&log_path).unwrap();
    if let Ok(path) = std::env::var("EDETAIL_LOG_DUMP") {
        std::fs::write(path, &log).unwrap();
    }
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > ids.len(), "the hub wrote a log: {log}");
    let access: Vec<&serde_json::Value> = lines.iter().filter(|l| l["fields"]["message"] == "request").collect();
    for (id, status) in &ids {
        let found = access.iter().any(|l| l["span"]["request_id"] == id.as_str() && l["fields"]["status"] == *status);
        assert!(found, "no access line with request id {id} and status {status}");
    }
    for l in &access {
        assert!(l["span"]["request_id"].is_string() && l["fields"]["route"].is_string() && l["fields"]["latency_ms"].is_u64(), "{l}");
    }
    assert!(access.iter().any(|l| l["fields"]["status"] == 429 && l["level"] == "WARN"), "429s are logged at warn");
    assert!(access.iter().any(|l| l["fields"]["route"] == "/dashboard/login" && l["fields"]["status"] == 401 && l["level"] == "WARN"));
    let secrets = [HCP, NOTE, "Jane", EMAIL, "MARKER", SITE_TOKEN, WRONG_TOKEN, &device_token, &operator_token];
    let leaks: Vec<&str> = log.lines().filter(|l| secrets.iter().any(|m| l.contains(m))).collect();
    assert!(leaks.is_empty(), "personal data or secrets in the hub's log:\n{}", leaks.join("\n"));
}
