//! The transport against a scripted HTTP server on loopback: error bodies and `Retry-After`
//! classified, one token refresh per 401, gzip upload bodies, total and idle timeouts.

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edetail_sync::{FailureClass, Timeouts, TokenError, TokenProvider, Transport};

mod common;
use common::{answer, scripted, silent, trickle};

struct CountingToken(AtomicUsize);

#[async_trait::async_trait]
impl TokenProvider for CountingToken {
    async fn token(&self) -> Result<String, TokenError> {
        Ok("t0k".into())
    }
    async fn refresh(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn unavailable_is_transient_with_the_longer_retry_after() {
    let body = r#"{"code":"unavailable","message":"maintenance","retry_after_ms":2500}"#;
    let (url, count, seen) = scripted(answer("503 Service Unavailable", "retry-after: 4\r\n", body)).await;
    let t = Transport::new(&url, Arc::new(CountingToken(AtomicUsize::new(0)))).expect("transport");
    let f = t.changes(Some("c 1&x")).await.expect_err("503");
    assert_eq!(f.class, FailureClass::Transient);
    assert_eq!(f.status, Some(503));
    assert_eq!(f.retry_after_ms, Some(4_000));
    assert_eq!(f.body.expect("error body").message, "maintenance");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let req = String::from_utf8_lossy(&seen.lock().expect("lock")[0]).to_string();
    assert!(req.starts_with("GET /v1/changes?since=c+1%26x "), "{req}");
    assert!(req.to_ascii_lowercase().contains("authorization: bearer t0k"));
    assert!(req.to_ascii_lowercase().contains("x-edetail-device-time: "));
}

#[tokio::test]
async fn rate_limited_is_transient_and_forbidden_permanent() {
    let (url, _, _) =
        scripted(answer("429 Too Many Requests", "", r#"{"code":"rate_limited","message":"slow","retry_after_ms":900}"#)).await;
    let t = Transport::new(&url, Arc::new(CountingToken(AtomicUsize::new(0)))).expect("transport");
    let f = t.changes(None).await.expect_err("429");
    assert_eq!((f.class, f.retry_after_ms), (FailureClass::Transient, Some(900)));

    let (url, _, _) = scripted(answer("403 Forbidden", "", r#"{"code":"forbidden","message":"not yours"}"#)).await;
    let t = Transport::new(&url, Arc::new(CountingToken(AtomicUsize::new(0)))).expect("transport");
    assert_eq!(t.changes(None).await.expect_err("403").class, FailureClass::Permanent);
}

#[tokio::test]
async fn unauthorized_refreshes_once_then_reports_auth() {
    let (url, count, _) = scripted(answer("401 Unauthorized", "", r#"{"code":"unauthorized","message":"bad token"}"#)).await;
    let tokens = Arc::new(CountingToken(AtomicUsize::new(0)));
    let t = Transport::new(&url, tokens.clone()).expect("transport");
    let f = t.changes(None).await.expect_err("401");
    assert_eq!(f.class, FailureClass::Auth);
    assert_eq!(tokens.0.load(Ordering::SeqCst), 1, "one refresh");
    assert_eq!(count.load(Ordering::SeqCst), 2, "one retry");
}

#[tokio::test]
async fn connection_refused_is_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let t = Transport::new(&url, Arc::new(CountingToken(AtomicUsize::new(0)))).expect("transport");
    assert_eq!(t.changes(None).await.expect_err("refused").class, FailureClass::Network);
}

#[tokio::test]
async fn uploads_are_gzipped_json() {
    let (url, _, seen) = scripted(answer("500 Internal Server Error", "", "not json")).await;
    let t = Transport::new(&url, Arc::new(CountingToken(AtomicUsize::new(0)))).expect("transport");
    let batch =
        edetail_protocol::UploadBatch { device_id: "d1".into(), batch_id: "b1".into(), device_time: chrono::Utc::now(), events: vec![] };
    let f = t.upload(&batch).await.expect_err("500");
    assert_eq!((f.class, f.body.is_none()), (FailureClass::Transient, true));
    let raw = seen.lock().expect("lock")[0].clone();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("headers") + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"));
    let mut json = String::new();
    flate2::read::GzDecoder::new(&raw[end..]).read_to_string(&mut json).expect("gzip body");
    let back: edetail_protocol::UploadBatch = serde_json::from_str(&json).expect("batch");
    assert_eq!(back, batch);
}

/// Timeouts short enough for tests; `idle` longer than the totals so that the totals are what
/// fires for uploads and change pages.
const SHORT: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    upload: Duration::from_millis(400),
    changes: Duration::from_millis(400),
    idle: Duration::from_secs(5),
};

#[tokio::test]
async fn a_hub_that_never_answers_costs_one_total_timeout_per_request() {
    let (url, accepted) = silent().await;
    let t = Transport::with_timeouts(&url, Arc::new(CountingToken(AtomicUsize::new(0))), SHORT).expect("transport");
    let batch =
        edetail_protocol::UploadBatch { device_id: "d1".into(), batch_id: "b1".into(), device_time: chrono::Utc::now(), events: vec![] };
    let started = Instant::now();
    let f = t.upload(&batch).await.expect_err("upload times out");
    let upload_took = started.elapsed();
    assert_eq!(f.class, FailureClass::Network, "{f}");
    let started = Instant::now();
    let f = t.changes(None).await.expect_err("changes time out");
    let changes_took = started.elapsed();
    assert_eq!(f.class, FailureClass::Network, "{f}");
    eprintln!("hung hub: upload failed after {upload_took:.2?}, changes after {changes_took:.2?}");
    for took in [upload_took, changes_took] {
        assert!(took >= SHORT.upload && took < SHORT.idle, "the total timeout fires, not the idle one: {took:?}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_blob_has_no_total_timeout_only_an_idle_one() {
    let timeouts = Timeouts { idle: Duration::from_millis(300), ..SHORT };
    // Steady: 16 chunks 60 ms apart take ~1 s, longer than the upload and changes totals.
    let url = trickle(1024, 16, 16, Duration::from_millis(60)).await;
    let t = Transport::with_timeouts(&url, Arc::new(CountingToken(AtomicUsize::new(0))), timeouts).expect("transport");
    let started = Instant::now();
    let mut resp = t.blob(&"ab".repeat(32), 0).await.expect("answered");
    let mut got = 0;
    while let Some(c) = resp.chunk().await.expect("a slow but steady body is not cut") {
        got += c.len();
    }
    let steady_took = started.elapsed();
    assert_eq!(got, 16 * 1024);
    assert!(steady_took > timeouts.upload, "took {steady_took:?}");

    // Stalled: 4 chunks, then silence with 12 announced chunks missing.
    let url = trickle(1024, 4, 16, Duration::from_millis(60)).await;
    let t = Transport::with_timeouts(&url, Arc::new(CountingToken(AtomicUsize::new(0))), timeouts).expect("transport");
    let mut resp = t.blob(&"ab".repeat(32), 0).await.expect("answered");
    let mut got = 0;
    let started = Instant::now();
    let err = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got += c.len(),
            Ok(None) => panic!("the body cannot complete"),
            Err(e) => break e,
        }
    };
    let stalled_took = started.elapsed();
    eprintln!("blob: steady 16 KiB in {steady_took:.2?}; stalled after {got} bytes, cut after {stalled_took:.2?}");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(got, 4 * 1024);
    assert!(stalled_took >= timeouts.idle && stalled_took < Duration::from_secs(3), "{stalled_took:?}");
}
