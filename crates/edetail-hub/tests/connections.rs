//! Connection timeouts and bounds (issue 13, item 1): a real hub on loopback with short
//! configured limits. Silent half-open connections and trickled bodies are closed (408 for the
//! bodies) after the configured timeouts, a flood from one address is capped at once, and a
//! normal client on another loopback address keeps being served throughout.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use edetail_bundle::SecretKey;
use edetail_hub::{Hub, HubConfig, ServerLimits, serve_local};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const LIMITS: ServerLimits = ServerLimits {
    header_read_timeout: Duration::from_secs(3),
    idle_timeout: Duration::from_secs(2),
    tls_handshake_timeout: Duration::from_secs(1),
    body_timeout: Duration::from_secs(2),
    body_stall_timeout: Duration::from_millis(1500),
    max_connections: 300,
    max_connections_per_ip: 40,
};

struct Fixture {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    url: String,
    hub: Hub,
    _task: tokio::task::JoinHandle<()>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config =
        HubConfig { server_limits: LIMITS, ..HubConfig::local(dir.path().join("hub"), vec![SecretKey::from_seed(&common::SEED).public()]) };
    let hub = tokio::task::spawn_blocking(move || Hub::open(config).unwrap()).await.unwrap();
    let (url, task) = serve_local(hub.clone()).await.unwrap();
    let addr = url.trim_start_matches("http://").parse().unwrap();
    Fixture { _dir: dir, addr, url, hub, _task: task }
}

/// A connection from `from` (any 127.x.y.z address is local on Linux).
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    s.connect(to).await.unwrap()
}

/// Reads until the hub closes the connection; returns what it sent and when it closed, or
/// `None` if it was still open at `give_up`.
async fn until_closed(mut s: TcpStream, give_up: Instant) -> Option<(Vec<u8>, Instant)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(give_up.into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((got, Instant::now())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A client that keeps using the hub normally from 127.0.0.2 until `stop`; returns how many
/// requests succeeded and the failures (each request must answer within 2 s).
async fn normal_client(url: String, token: String, stop: Instant) -> (usize, Vec<String>) {
    let http = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .timeout(Duration::from_secs(2))
        // A fresh connection per request: the hub closes idle keep-alive connections by design.
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (mut ok, mut failures) = (0, Vec::new());
    while Instant::now() < stop {
        match http.get(format!("{url}/v1/device")).bearer_auth(&token).send().await {
            Ok(r) if r.status().is_success() => ok += 1,
            Ok(r) => failures.push(format!("status {}", r.status())),
            Err(e) => failures.push(format!("error {e}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (ok, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_flood_is_capped_and_timed_out_while_a_normal_client_is_served() {
    let f = fixture().await;
    let hub = f.hub.clone();
    let dev = tokio::task::spawn_blocking(move || hub.add_device("rep-1", "north").unwrap()).await.unwrap();
    let started = Instant::now();
    let client = tokio::spawn(normal_client(f.url.clone(), dev.token.clone(), started + Duration::from_secs(5)));

    // 200 half-open requests from one address: a request line and a header, then silence.
    const FLOOD: usize = 200;
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        let mut s = connect_from(Ipv4Addr::LOCALHOST, f.addr).await;
        // The hub may already have closed an excess connection: a failed write is fine.
        let _ = s.write_all(b"GET /v1/device HTTP/1.1\r\nHost: x\r\n").await;
        flood.push((Instant::now(), s));
    }
    // Plus silent connections that send nothing at all, from a third address.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push((Instant::now(), connect_from(Ipv4Addr::new(127, 0, 0, 3), f.addr).await));
    }

    let give_up = Instant::now() + LIMITS.header_read_timeout + Duration::from_secs(3);
    let waits = flood.into_iter().chain(silent).map(|(opened, s)| async move { (opened, until_closed(s, give_up).await) });
    let closed = futures_util::future::join_all(waits).await;
    let still_open = closed.iter().filter(|(_, c)| c.is_none()).count();
    assert_eq!(still_open, 0, "{still_open} of {} silent connections were still open after the header timeout", FLOOD + 10);
    let latest = closed.iter().map(|(opened, c)| c.as_ref().unwrap().1 - *opened).max().unwrap();
    assert!(latest <= LIMITS.header_read_timeout + Duration::from_secs(2), "slowest close took {latest:?}");
    // Beyond the per-address cap, connections close at once (not after the timeout).
    // "At once": well under the header timeout, with room for a loaded machine (a 2-core CI box running
    // other tests once refused only 70 of 160 within 800 ms).
    let prompt = closed[..FLOOD].iter().filter(|(opened, c)| c.as_ref().unwrap().1 - *opened < LIMITS.header_read_timeout / 2).count();
    assert!(prompt >= FLOOD - LIMITS.max_connections_per_ip, "only {prompt} of the excess connections were refused promptly");

    let (ok, failures) = client.await.unwrap();
    assert!(failures.is_empty(), "the normal client failed during the flood: {failures:?}");
    assert!(ok >= 20, "the normal client was served only {ok} times in 5 s");
}

/// Sends a request head and `sent` bytes of a `declared`-byte body, then one byte every
/// 300 ms (or nothing if `trickle` is false); returns the hub's answer and how long it took.
async fn trickle(f: &Fixture, head: &str, declared: usize, trickle: bool) -> (String, Duration) {
    let mut s = connect_from(Ipv4Addr::LOCALHOST, f.addr).await;
    let started = Instant::now();
    s.write_all(format!("{head}Content-Length: {declared}\r\n\r\n{{").as_bytes()).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        if trickle {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if w.write_all(b" ").await.is_err() {
                    break;
                }
            }
        }
        // Keep the write half open (no FIN) until aborted.
        std::future::pending::<()>().await;
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut got)).await;
    writer.abort();
    (String::from_utf8_lossy(&got).into_owned(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_and_stalled_bodies_end_with_408() {
    let f = fixture().await;
    let hub = f.hub.clone();
    let (dev, publisher) =
        tokio::task::spawn_blocking(move || (hub.add_device("rep-1", "north").unwrap(), hub.add_publisher("studio").unwrap()))
            .await
            .unwrap();
    let client = tokio::spawn(normal_client(f.url.clone(), dev.token.clone(), Instant::now() + Duration::from_secs(4)));

    let events =
        format!("POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n", dev.token);
    let login = "POST /dashboard/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n".to_string();
    let publish = format!("POST /v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {publisher}\r\nContent-Type: application/zip\r\n");
    let (trickled_events, trickled_login, stalled_publish, trickled_publish) = tokio::join!(
        // Small bodies trickling: the total body deadline.
        trickle(&f, &events, 100_000, true),
        trickle(&f, &login, 4000, true),
        // A publish upload that stops: the stall timeout.
        trickle(&f, &publish, 10_000_000, false),
        // A publish upload that trickles: no total deadline (it keeps making progress).
        tokio::time::timeout(LIMITS.body_timeout + Duration::from_secs(1), trickle(&f, &publish, 10_000_000, true)),
    );
    for (what, (answer, took), limit) in [
        ("trickled event batch", trickled_events, LIMITS.body_timeout),
        ("trickled login form", trickled_login, LIMITS.body_timeout),
        ("stalled publish upload", stalled_publish, LIMITS.body_stall_timeout),
    ] {
        assert!(answer.starts_with("HTTP/1.1 408"), "{what}: expected 408, got {:?}", answer.lines().next());
        assert!(took >= limit && took <= limit + Duration::from_millis(1500), "{what}: answered after {took:?}, limit {limit:?}");
    }
    assert!(trickled_publish.is_err(), "a slow but progressing upload is not cut at the small-body deadline");

    let (ok, failures) = client.await.unwrap();
    assert!(failures.is_empty() && ok >= 15, "the normal client: {ok} served, failures {failures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_and_request_ids_are_echoed() {
    let f = fixture().await;
    let mut s = connect_from(Ipv4Addr::LOCALHOST, f.addr).await;
    s.write_all(b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\nx-request-id: probe-1\r\n\r\n").await.unwrap();
    let opened = Instant::now();
    let (answer, closed_at) = until_closed(s, opened + Duration::from_secs(8)).await.expect("the idle connection was closed");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 404"), "{answer}");
    assert!(answer.contains("x-request-id: probe-1"), "the incoming request id is echoed: {answer}");
    let idle = closed_at - opened;
    assert!(idle <= LIMITS.idle_timeout.max(LIMITS.header_read_timeout) + Duration::from_secs(1), "closed after {idle:?}");
}
