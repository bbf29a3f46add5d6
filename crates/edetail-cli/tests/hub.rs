//! `edetail hub serve`, `hub device add`, `hub publisher add`, `publish` and `hub stats`
//! together: what an operator and a content team type.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn edetail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edetail")).args(args).output().expect("edetail runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn ok_json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "stdout: {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// Stops the server with SIGTERM (by its own pid) even when an assertion fails.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_publish_and_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    let deck = tmp.path().join("deck");
    let key = tmp.path().join("acme");
    assert!(edetail(&["key", "new", s(&key)]).status.success());
    let o = edetail(&[
        "bundle",
        "new",
        s(&deck),
        "--id",
        "com.example.hubtest",
        "--title",
        "Hub test",
        "--product",
        "p",
        "--approval-code",
        "T-1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let zip = tmp.path().join("deck.zip");
    let o = edetail(&["bundle", "pack", s(&deck), "-o", s(&zip), "--key", s(&key.with_extension("key"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Plain HTTP on a non-loopback address needs TLS or --allow-insecure-http (not the old
    // --allow-remote).
    for extra in [&[][..], &["--allow-remote"][..]] {
        let o = edetail(&[&["hub", "serve", "--data", s(&data), "--listen", "0.0.0.0:0"][..], extra].concat());
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--allow-insecure-http") && err.contains("--tls-cert"), "{err}");
    }

    let child = Command::new(env!("CARGO_BIN_EXE_edetail"))
        .args(["hub", "serve", "--data", s(&data), "--listen", "127.0.0.1:0", "--publisher-key", s(&key.with_extension("pub"))])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let mut first = String::new();
    BufReader::new(server.0.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let url = first.trim().strip_prefix("hub: ").unwrap_or_else(|| panic!("first line: {first:?}")).trim_end_matches('/').to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let publisher = ok_json(&edetail(&["hub", "publisher", "add", "--data", s(&data), "--name", "content", "--json"]));
    let token = publisher["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    let device = ok_json(&edetail(&["hub", "device", "add", "--data", s(&data), "--rep", "r1", "--territory", "north", "--json"]));
    assert!(device["device_id"].as_str().unwrap().starts_with("dev-"));

    let published = ok_json(&edetail(&["publish", s(&zip), "--hub", &url, "--token", &token, "--territory", "north", "--json"]));
    assert_eq!(published["bundle_id"], "com.example.hubtest");
    assert_eq!(published["territories"], serde_json::json!(["north"]));

    // The same version again: refused with the hub's message, exit 1.
    let o = edetail(&["publish", s(&zip), "--hub", &url, "--token", &token]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not higher"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = edetail(&["publish", s(&zip), "--hub", &url, "--token", "wrong"]);
    assert_eq!(o.status.code(), Some(1));

    let stats = ok_json(&edetail(&["hub", "stats", "--data", s(&data), "--json"]));
    assert_eq!(stats["bundle_versions"], 1);
    assert_eq!(stats["events_received"], 0);
    assert_eq!(stats["devices"].as_array().unwrap().len(), 1);
    assert_eq!(stats["devices"][0]["watermark"], 0);

    // SIGTERM stops the server cleanly.
    #[cfg(unix)]
    {
        let pid = server.0.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = server.0.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}

/// The closed-loop admin commands: CSV imports with errors that name the line (never its
/// content), the plan key for devices, analysis on demand, microsites of an HCP.
#[test]
fn closed_loop_admin_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    let csv = tmp.path().join("in.csv");

    std::fs::write(&csv, "hcp_id,segment\nhcp-1,cardiology\nhcp-2,gp\n").unwrap();
    let o = ok_json(&edetail(&["hub", "hcps", "--data", s(&data), s(&csv), "--json"]));
    assert_eq!(o["imported"], 2);
    std::fs::write(&csv, "hcp_id,segment\nhcp-1,cardiology\nDr Secret Name\n").unwrap();
    let o = edetail(&["hub", "hcps", "--data", s(&data), s(&csv)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("line 3") && !err.contains("Secret"), "{err}");
    std::fs::write(&csv, "id,segment\nhcp-1,gp\n").unwrap();
    let err = String::from_utf8_lossy(&edetail(&["hub", "hcps", "--data", s(&data), s(&csv)]).stderr).to_string();
    assert!(err.contains("hcp_id,segment"), "the expected header is named: {err}");

    std::fs::write(&csv, "hcp_id,product,period,count\nhcp-1,cardiozen,2026-10,3\nhcp-1,cardiozen,2026-11,5\n").unwrap();
    assert_eq!(ok_json(&edetail(&["hub", "prescriptions", "--data", s(&data), s(&csv), "--json"]))["imported"], 2);
    std::fs::write(&csv, "hcp_id,product,period,count\nhcp-1,cardiozen,2026-13,3\n").unwrap();
    let err = String::from_utf8_lossy(&edetail(&["hub", "prescriptions", "--data", s(&data), s(&csv)]).stderr).to_string();
    assert!(err.contains("line 2") && err.contains("YYYY-MM"), "{err}");

    std::fs::write(&csv, "rep_id,hcp_id\nrep-1,hcp-1\nrep-1,hcp-2\nrep-2,hcp-1\n").unwrap();
    let o = ok_json(&edetail(&["hub", "targets", "--data", s(&data), s(&csv), "--json"]));
    assert_eq!((o["reps"].as_u64(), o["targets"].as_u64(), o["added"].as_u64()), (Some(2), Some(3), Some(3)), "{o}");
    std::fs::write(&csv, "rep_id,hcp_id\nrep-1,hcp-2\n").unwrap();
    let o = ok_json(&edetail(&["hub", "targets", "--data", s(&data), s(&csv), "--json"]));
    assert_eq!((o["reps"].as_u64(), o["added"].as_u64(), o["removed"].as_u64()), (Some(1), Some(0), Some(1)), "rep-1's list replaced: {o}");
    std::fs::write(&csv, "hcp_id,rep_id\nhcp-1,rep-1\n").unwrap();
    let err = String::from_utf8_lossy(&edetail(&["hub", "targets", "--data", s(&data), s(&csv)]).stderr).to_string();
    assert!(err.contains("rep_id,hcp_id"), "the expected header is named: {err}");

    // Pruning after analysis: a period under a day is refused; nothing analysed, nothing pruned.
    let o = edetail(&["hub", "prune-events", "--data", s(&data), "--older-than-days", "0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("older-than-days"));
    let o = ok_json(&edetail(&["hub", "prune-events", "--data", s(&data), "--older-than-days", "90", "--json"]));
    assert_eq!((o["events"].as_u64(), o["devices"].as_u64()), (Some(0), Some(0)), "{o}");
    let o = edetail(&["hub", "stats", "--data", s(&data)]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("pruned after analysis 0"));

    // The plan key is created once and stays the same.
    let k1 = edetail(&["hub", "plan-key", "--data", s(&data)]);
    let k2 = edetail(&["hub", "plan-key", "--data", s(&data)]);
    assert!(k1.status.success());
    assert_eq!(k1.stdout, k2.stdout);
    let text = String::from_utf8_lossy(&k1.stdout);
    assert!(text.contains("ed25519-public") || text.contains("\"key\""), "{text}");
    assert!(data.join("plan.key").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(data.join("plan.key")).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let o = ok_json(&edetail(&["hub", "analyze", "--data", s(&data), "--json"]));
    assert_eq!(o["calls_analysed"], 0);
    let o = ok_json(&edetail(&["hub", "microsites", "--data", s(&data), "--hcp", "hcp-1", "--json"]));
    assert_eq!(o, serde_json::json!([]));
}

/// Starts `edetail hub serve ARGS` and returns it with its first stdout line's URL.
fn serve(args: &[&str]) -> (Server, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_edetail")).args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut server = Server(child);
    let mut first = String::new();
    BufReader::new(server.0.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let url = first.trim().strip_prefix("hub: ").unwrap_or_else(|| panic!("first line: {first:?}")).trim_end_matches('/').to_string();
    (server, url)
}

/// `--tls-cert/--tls-key`: HTTPS, allowed on a non-loopback address without further flags;
/// a client trusting the CA gets answers, plain HTTP does not.
#[test]
fn serve_over_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    let ca = edetail_hub::testkit::TestCa::new();
    let (server, url) = serve(&[
        "hub",
        "serve",
        "--data",
        s(&data),
        "--listen",
        "0.0.0.0:0",
        "--tls-cert",
        s(&ca.files.cert),
        "--tls-key",
        s(&ca.files.key),
    ]);
    let port = url.strip_prefix("https://0.0.0.0:").unwrap_or_else(|| panic!("{url}"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let trusting = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_der(&ca.ca_der).unwrap()])
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap();
        let resp = trusting.get(format!("https://127.0.0.1:{port}/v1/device")).send().await.unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);
        let resp = trusting.get(format!("https://localhost:{port}/dashboard")).send().await.unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        assert!(reqwest::Client::new().get(format!("http://127.0.0.1:{port}/v1/device")).send().await.is_err());
    });
    drop(server);

    // --allow-insecure-http: plain HTTP on a non-loopback address, said out loud.
    let (_server, url) = serve(&["hub", "serve", "--data", s(&data), "--listen", "0.0.0.0:0", "--allow-insecure-http"]);
    assert!(url.starts_with("http://0.0.0.0:"), "{url}");
}

/// Bad certificate/key files: exit 1 before serving, the file and the problem named, the key
/// never quoted.
#[test]
fn serve_refuses_bad_tls_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    let ca = edetail_hub::testkit::TestCa::new();
    let other = edetail_hub::testkit::TestCa::new();
    let missing = tmp.path().join("missing.pem");
    let (cert, key, other_key) = (s(&ca.files.cert), s(&ca.files.key), s(&other.files.key));
    let key_lines: Vec<String> = [&ca.files.key, &other.files.key]
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p).unwrap().lines().filter(|l| !l.starts_with("-----")).map(str::to_string).collect::<Vec<_>>()
        })
        .collect();
    let cases: [(&str, &str, &[&str]); 5] = [
        (s(&missing), key, &["certificate file", "missing.pem"]),
        (cert, s(&missing), &["key file", "missing.pem"]),
        (cert, other_key, &["does not match the certificate"]),
        (key, key, &["no PEM certificate"]),
        (cert, cert, &["no PEM private key"]),
    ];
    for (c, k, wanted) in cases {
        let o = edetail(&["hub", "serve", "--data", s(&data), "--tls-cert", c, "--tls-key", k]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{c} {k}: {err}");
        assert!(o.stdout.is_empty(), "nothing served: {}", String::from_utf8_lossy(&o.stdout));
        for w in wanted {
            assert!(err.contains(w), "{c} {k}: wanted {w:?} in {err}");
        }
        for l in &key_lines {
            assert!(!err.contains(l.as_str()), "key material in: {err}");
        }
    }
    // Half a pair is a usage error.
    let o = edetail(&["hub", "serve", "--data", s(&data), "--tls-cert", cert]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--tls-key"));
}

/// Token administration from the CLI: expiry, rotation (same device id), revocation, operators,
/// and the audit trail listing each action with the `cli:<os user>` actor.
#[test]
fn token_admin_commands_are_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    let d = s(&data);
    let added =
        ok_json(&edetail(&["--json", "hub", "device", "add", "--data", d, "--rep", "r1", "--territory", "north", "--token-days", "7"]));
    let id = added["device_id"].as_str().unwrap().to_string();
    let old = added["token"].as_str().unwrap().to_string();
    let rotated = ok_json(&edetail(&["--json", "hub", "device", "rotate", "--data", d, &id, "--grace-hours", "2"]));
    assert_eq!(rotated["subject"], id.as_str(), "same device id");
    let new = rotated["token"].as_str().unwrap();
    assert!(new.len() == 64 && new != old);
    assert_eq!(ok_json(&edetail(&["--json", "hub", "device", "revoke", "--data", d, &id]))["revoked"], 2);

    let bad = edetail(&["hub", "device", "revoke", "--data", d, "dev-nope"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("not found"));
    let bad = edetail(&["hub", "device", "add", "--data", d, "--rep", "r", "--territory", "north", "--token-days", "0"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("token lifetime"));
    let bad = edetail(&["hub", "device", "rotate", "--data", d, &id, "--grace-hours", "-1"]);
    assert!(!bad.status.success());

    let op = ok_json(&edetail(&["--json", "hub", "operator", "add", "--data", d, "--name", "ops"]));
    assert_eq!(op["token"].as_str().unwrap().len(), 64);
    ok_json(&edetail(&["--json", "hub", "operator", "revoke", "--data", d, "ops"]));
    ok_json(&edetail(&["--json", "hub", "publisher", "add", "--data", d, "--name", "content"]));
    ok_json(&edetail(&["--json", "hub", "publisher", "revoke", "--data", d, "content"]));

    let log = ok_json(&edetail(&["--json", "hub", "audit", "--data", d]));
    let got: Vec<(String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_string(), e["subject"].as_str().unwrap().to_string()))
        .collect();
    let want: Vec<(String, String)> = [
        ("device.add", id.as_str()),
        ("device.rotate", id.as_str()),
        ("device.revoke", id.as_str()),
        ("operator.add", "ops"),
        ("operator.revoke", "ops"),
        ("publisher.add", "content"),
        ("publisher.revoke", "content"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
    assert!(log.as_array().unwrap().iter().all(|e| e["actor"].as_str().unwrap().starts_with("cli:")));
    let text = log.to_string();
    assert!(!text.contains(&old) && !text.contains(new) && !text.contains("\"r1\""), "no tokens or rep ids in the audit trail");
    let human = edetail(&["hub", "audit", "--data", d]);
    assert!(human.status.success() && String::from_utf8_lossy(&human.stdout).lines().count() == 7);
}

/// `hub hcp erase` and `hub consent set`: counts only on output, idempotent, bad levels refused.
#[test]
fn erasure_and_consent_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    let csv = tmp.path().join("in.csv");
    std::fs::write(&csv, "hcp_id,segment\nhcp-1,cardiology\nhcp-2,gp\n").unwrap();
    ok_json(&edetail(&["hub", "hcps", "--data", s(&data), s(&csv), "--json"]));

    let o = ok_json(&edetail(&["hub", "hcp", "erase", "--data", s(&data), "--actor", "dpo", "hcp-1", "--json"]));
    assert_eq!((o["segments"].as_u64(), o["fed"].as_bool()), (Some(1), Some(true)), "{o}");
    let o = ok_json(&edetail(&["hub", "hcp", "erase", "--data", s(&data), "--actor", "dpo", "hcp-1", "--json"]));
    assert_eq!((o["segments"].as_u64(), o["fed"].as_bool()), (Some(0), Some(false)), "idempotent: {o}");
    let text = edetail(&["hub", "hcp", "erase", "--data", s(&data), "hcp-2"]);
    assert!(text.status.success() && !String::from_utf8_lossy(&text.stdout).contains("hcp-2"));

    let o = ok_json(&edetail(&["hub", "consent", "set", "--data", s(&data), "hcp-3", "anonymous", "--json"]));
    assert_eq!(o["tracking"], "anonymous");
    let bad = edetail(&["hub", "consent", "set", "--data", s(&data), "hcp-3", "partial"]);
    assert!(!bad.status.success());
}
