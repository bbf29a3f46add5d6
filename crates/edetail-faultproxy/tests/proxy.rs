//! The fault proxy against a tiny real HTTP server on loopback: every fault does what it says.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edetail_faultproxy::{Fault, FaultKind, FaultPlan, FaultProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that counts requests and answers with a 100 KB body.
async fn upstream() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                h.fetch_add(1, Ordering::SeqCst);
                let body = vec![b'x'; 100_000];
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n", body.len());
                s.write_all(head.as_bytes()).await.unwrap();
                s.write_all(&body).await.unwrap();
                s.shutdown().await.ok();
            });
        }
    });
    (addr, hits)
}

async fn get(proxy: &FaultProxy) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(proxy.addr()).await?;
    s.write_all(b"POST /v1/events HTTP/1.1\r\nHost: hub\r\nContent-Length: 5\r\n\r\nhello").await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_behaves_as_documented() {
    let (up, hits) = upstream().await;
    let p = FaultProxy::start(up, FaultPlan::default()).await.unwrap();

    let ok = get(&p).await.unwrap();
    assert!(ok.starts_with(b"HTTP/1.1 200"));
    assert!(String::from_utf8_lossy(&ok[..200]).contains("Connection: close"));
    assert_eq!(ok.len() - (ok.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4), 100_000);

    p.script([Fault::Status { code: 503, retry_after_secs: Some(2) }]);
    let r = String::from_utf8(get(&p).await.unwrap()).unwrap();
    assert!(r.starts_with("HTTP/1.1 503") && r.contains("Retry-After: 2") && r.contains("\"retry_after_ms\":2000"), "{r}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a status fault never reaches the upstream");

    p.script([Fault::Duplicate]);
    let r = get(&p).await.unwrap();
    assert!(r.starts_with(b"HTTP/1.1 200"));
    assert_eq!(hits.load(Ordering::SeqCst), 3, "delivered twice");

    p.script([Fault::CloseAfter(1000)]);
    assert_eq!(get(&p).await.unwrap().len(), 1000, "truncated after 1000 bytes");

    p.script([Fault::ResetAfter(500)]);
    match get(&p).await {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        Ok(v) => assert!(v.len() <= 500, "reset after at most 500 bytes"),
    }

    p.script([Fault::DropResponse]);
    let before = hits.load(Ordering::SeqCst);
    assert!(get(&p).await.unwrap_or_default().is_empty(), "the client hears nothing");
    assert_eq!(hits.load(Ordering::SeqCst), before + 1, "but the request took effect");

    p.script([Fault::Latency(Duration::from_millis(300))]);
    let t = Instant::now();
    get(&p).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));

    p.script([Fault::Bandwidth(400_000)]);
    let t = Instant::now();
    get(&p).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(200), "100 KB at 400 KB/s takes ~250 ms: {:?}", t.elapsed());

    p.script([Fault::Hang]);
    let hung = tokio::time::timeout(Duration::from_millis(300), get(&p)).await;
    assert!(hung.is_err(), "a hung request never completes");
    assert!(p.stats().faults.load(Ordering::SeqCst) >= 8);

    // A cut beyond the end of the response changes nothing and is not counted as injected.
    p.script([Fault::CloseAfter(1_000_000)]);
    assert!(get(&p).await.unwrap().len() > 100_000);
    let injected = p.stats().injected_by_kind();
    let expected = [
        (FaultKind::Status(503), 1),
        (FaultKind::Duplicate, 1),
        (FaultKind::CloseAfter, 1),
        (FaultKind::ResetAfter, 1),
        (FaultKind::DropResponse, 1),
        (FaultKind::Latency, 1),
        (FaultKind::Bandwidth, 1),
        (FaultKind::Hang, 1),
    ];
    assert_eq!(injected, expected.into_iter().collect(), "each fault counted once, when it took effect");
    assert_eq!(p.stats().faults.load(Ordering::SeqCst), 9, "chosen faults include the one that did nothing");
    assert_eq!(FaultKind::Status(429).to_string(), "status_429");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_and_a_body_limit_apply_to_every_request() {
    let (up, hits) = upstream().await;
    let p = FaultProxy::start(up, FaultPlan::default()).await.unwrap();
    p.set_link_bandwidth(Some(400_000));
    let t = Instant::now();
    let r = get(&p).await.unwrap();
    assert!(r.starts_with(b"HTTP/1.1 200"));
    assert!(t.elapsed() >= Duration::from_millis(200), "100 KB at 400 KB/s takes ~250 ms: {:?}", t.elapsed());
    assert!(p.stats().response_bytes.load(Ordering::SeqCst) >= 100_000);
    assert!(p.stats().injected_by_kind().is_empty(), "a slow link is not a fault");
    p.set_link_bandwidth(None);

    // The 5-byte body passes a limit of 5 and is refused under a limit of 4, without reaching
    // the upstream, even with faults disabled.
    p.set_faults_enabled(false);
    p.set_request_body_limit(Some(5));
    assert!(get(&p).await.unwrap().starts_with(b"HTTP/1.1 200"));
    p.set_request_body_limit(Some(4));
    let before = hits.load(Ordering::SeqCst);
    let r = String::from_utf8(get(&p).await.unwrap()).unwrap();
    assert!(r.starts_with("HTTP/1.1 413") && r.contains("\"code\":\"too_large\""), "{r}");
    assert_eq!(hits.load(Ordering::SeqCst), before);
    assert_eq!(p.stats().injected(FaultKind::BodyTooLarge), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_plans_are_reproducible_and_can_be_switched_off() {
    let (up, _) = upstream().await;
    let plan = FaultPlan { fault_rate: 0.5, seed: 42, ..Default::default() };
    let p = FaultProxy::start(up, plan).await.unwrap();
    p.set_faults_enabled(false);
    for _ in 0..5 {
        assert!(get(&p).await.unwrap().starts_with(b"HTTP/1.1 200"));
    }
    assert_eq!(p.stats().faults.load(Ordering::SeqCst), 0);
}
