//! `edetail preview` over plain HTTP (no browser): the shell page, assets with Range and ETag,
//! traversal attempts, the slide bridge, clean shutdown; and the start-up errors. The HTTP/1.1
//! client is hand-rolled over `TcpStream` so the test needs no HTTP dependency.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BUNDLE: &str = "com.example.cardiozen.launch";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn edetail() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edetail"))
}

fn pack_sample(dir: &Path) -> PathBuf {
    let zip = dir.join("cardiozen.zip");
    let o =
        edetail().args(["bundle", "pack"]).arg(repo_root().join("presentations/cardiozen-launch")).arg("-o").arg(&zip).output().unwrap();
    assert!(o.status.success(), "pack failed: {}", String::from_utf8_lossy(&o.stderr));
    zip
}

/// Kills the preview if a test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); the path is sent verbatim.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the preview");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap_or_else(|e| panic!("{method} {path}: reading the reply: {e}"));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Reply { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

fn start_preview(zip: &Path, data: &Path) -> (Running, u16) {
    let mut child = edetail()
        .arg("preview")
        .arg(zip)
        .arg("--data")
        .arg(data)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    // The reader is dropped here: the preview must keep serving when nobody reads its stdout.
    let running = Running(child);
    let url = first.trim().strip_prefix("preview: ").unwrap_or_else(|| panic!("first line is not the URL: {first:?}")).to_string();
    let port: u16 = url.trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(url, format!("http://127.0.0.1:{port}/"));
    (running, port)
}

#[test]
fn preview_serves_shell_assets_ranges_and_bridge() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = pack_sample(tmp.path());
    let data = tmp.path().join("data");
    let (mut running, port) = start_preview(&zip, &data);

    // The shell.
    let r = request(port, "GET", "/", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("slide-frame"));

    // A bundle asset, whole.
    let css = std::fs::read(repo_root().join("presentations/cardiozen-launch/shared/deck.css")).unwrap();
    let path = format!("/{BUNDLE}/shared/deck.css");
    let r = request(port, "GET", &path, &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/css"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("content-length"), Some(css.len().to_string().as_str()));
    assert_eq!(r.body, css);
    let etag = r.header("etag").expect("an ETag").to_string();
    assert_eq!(request(port, "GET", &path, &[("If-None-Match", &etag)], b"").status, 304);

    // A range.
    let r = request(port, "GET", &path, &[("Range", "bytes=10-19")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some(format!("bytes 10-19/{}", css.len()).as_str()));
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(r.body, &css[10..20]);
    let r = request(port, "GET", &path, &[("Range", "bytes=-5")], b"");
    assert_eq!((r.status, r.body.as_slice()), (206, &css[css.len() - 5..]));

    // A range past the end.
    let r = request(port, "GET", &path, &[("Range", "bytes=99999999-")], b"");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some(format!("bytes */{}", css.len()).as_str()));

    // The runtime's script.
    let r = request(port, "GET", "/_edetail/edetail.js", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/javascript"));

    // Unknown paths and traversal.
    for p in [
        format!("/{BUNDLE}/../edetail.sqlite3"),
        format!("/{BUNDLE}/%2e%2e/edetail.sqlite3"),
        format!("/{BUNDLE}/%2E%2E%2Fedetail.sqlite3"),
        format!("/{BUNDLE}/slides/../../lock"),
        "/edetail.sqlite3".to_string(),
        format!("/{BUNDLE}/no/such/file.html"),
    ] {
        let r = request(port, "GET", &p, &[], b"");
        assert_eq!(r.status, 404, "{p}");
        assert!(!r.text().contains("SQLite format"), "{p}");
    }

    // The bridge: hello answers with the preview call.
    let r = request(
        port,
        "POST",
        "/_edetail/bridge",
        &[("Content-Type", "application/json")],
        br#"{"v":1,"id":3,"method":"hello","params":{}}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["id"], 3);
    assert_eq!(v["result"]["call"]["channel"], "preview");
    assert_eq!(v["result"]["hcp"]["id"], "preview-hcp");
    assert_eq!(v["result"]["slide"]["id"], "intro");
    let call_id = v["result"]["call"]["id"].as_str().unwrap().to_string();
    let r = request(port, "POST", "/_edetail/bridge", &[], b"{not json");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((v["ok"].as_bool(), v["error"]["code"].as_str()), (Some(false), Some("malformed")));
    let r = request(port, "POST", "/_edetail/bridge", &[], &vec![b'a'; 1024 * 1024]);
    assert_eq!(r.status, 413);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["error"]["code"], "malformed");

    // The shell's navigation API, recorded as a swipe.
    let r = request(port, "POST", "/_preview/nav", &[], br#"{"action":"next"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["slide"], "burden");
    assert_eq!(v["url"], format!("/{BUNDLE}/slides/burden/index.html"));

    // SIGTERM ends the call cleanly.
    #[cfg(unix)]
    {
        let pid = running.0.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = running.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "preview did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status:?}");
        let o = edetail().args(["device", "--data"]).arg(&data).args(["events", "--json"]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let events = v["events"].as_array().unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["call_started", "slide_enter", "slide_exit", "slide_enter", "slide_exit", "call_ended"], "{v}");
        assert!(events.iter().all(|e| e["call_id"] == call_id.as_str()));
        assert_eq!(events[3]["payload"]["source"], "swipe");
    }
    #[cfg(not(unix))]
    let _ = &mut running;
}

#[test]
fn preview_names_a_busy_port_and_a_rejected_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = pack_sample(tmp.path());
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let o = edetail().arg("preview").arg(&zip).args(["--port", &port, "--data"]).arg(tmp.path().join("d1")).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("port {port}")) && err.contains("already in use"), "{err}");

    let bad = tmp.path().join("bad.zip");
    std::fs::write(&bad, b"this is not a zip").unwrap();
    let o = edetail().arg("preview").arg(&bad).args(["--data"]).arg(tmp.path().join("d2")).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rejected") && err.contains("bad.zip"), "{err}");
}
