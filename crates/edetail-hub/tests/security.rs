//! Tokens, roles, rate limits and the audit trail over HTTP (issue 7): a real hub on
//! 127.0.0.1 (SQLite and blob files; the store-level behaviour is proven on both backends by
//! `store_suite`), driven with reqwest.

mod common;

use common::{SEED, error_of, event};

use chrono::Utc;
use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_hub::store::TokenRole;
use edetail_hub::{DeviceCredentials, Hub, HubConfig, serve_local, token_hash};
use edetail_protocol::{ErrorCode, UploadAck, UploadBatch, WireEvent};
use reqwest::StatusCode;
use serde_json::json;

struct Fixture {
    _dir: tempfile::TempDir,
    url: String,
    hub: Hub,
    http: reqwest::Client,
    _task: tokio::task::JoinHandle<()>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(HubConfig::local(dir.path().join("hub"), vec![SecretKey::from_seed(&SEED).public()])).unwrap();
    let (url, task) = serve_local(hub.clone()).await.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Fixture { _dir: dir, url, hub, http, _task: task }
}

/// Runs blocking hub admin calls off the async runtime.
async fn admin<T: Send + 'static>(hub: &Hub, f: impl FnOnce(&Hub) -> T + Send + 'static) -> T {
    let h = hub.clone();
    tokio::task::spawn_blocking(move || f(&h)).await.unwrap()
}

impl Fixture {
    async fn upload(&self, device_id: &str, token: &str, events: &[WireEvent]) -> reqwest::Response {
        let batch = UploadBatch { device_id: device_id.into(), batch_id: "b".into(), device_time: Utc::now(), events: events.to_vec() };
        self.http.post(format!("{}/v1/events", self.url)).bearer_auth(token).json(&batch).send().await.unwrap()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    async fn device(&self) -> DeviceCredentials {
        admin(&self.hub, |h| h.add_device("rep-7", "north")).await.unwrap()
    }
}

/// Rotation: events uploaded with the old token, more with the new one during the grace
/// period, and a retry of an already-stored batch: each event stored exactly once, one
/// continuous watermark for the device. After the grace period the old token is refused.
#[tokio::test]
async fn rotation_keeps_queued_uploads_exactly_once() {
    let f = fixture().await;
    let dev = f.device().await;
    let events: Vec<WireEvent> = (1..=9).map(event).collect();

    let ack: UploadAck = f.upload(&dev.device_id, &dev.token, &events[0..3]).await.json().await.unwrap();
    assert_eq!((ack.accepted.len(), ack.watermark), (3, 3));

    let id = dev.device_id.clone();
    let new_token =
        admin(&f.hub, move |h| h.rotate_token(TokenRole::Device, &id, chrono::Duration::hours(24), 90, "cli:test")).await.unwrap();
    assert_ne!(new_token, dev.token);

    // The tablet's queued outbox still goes out with the old token.
    let ack: UploadAck = f.upload(&dev.device_id, &dev.token, &events[3..5]).await.json().await.unwrap();
    assert_eq!((ack.accepted.len(), ack.watermark), (2, 5));
    // Then it learns the new token; a lost ack makes it resend events 4..5 with it.
    let ack: UploadAck = f.upload(&dev.device_id, &new_token, &events[3..9]).await.json().await.unwrap();
    assert_eq!((ack.accepted.len(), ack.duplicates.len(), ack.watermark), (4, 2, 9));

    let stored = admin(&f.hub, {
        let id = dev.device_id.clone();
        move |h| h.events_for_device(&id)
    })
    .await
    .unwrap();
    assert_eq!(stored.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=9).collect::<Vec<_>>());
    assert_eq!(stored.iter().map(|e| &e.uuid).collect::<Vec<_>>(), events.iter().map(|e| &e.uuid).collect::<Vec<_>>());

    // Same device behind both tokens.
    let info: serde_json::Value = f.get("/v1/device", Some(&new_token)).await.json().await.unwrap();
    assert_eq!(info["device_id"], dev.device_id.as_str());

    // Grace over: the old token is expired, the new one works.
    let old = token_hash(&dev.token);
    admin(&f.hub, move |h| h.store().set_credential_expiry(&old, Some(Utc::now() - chrono::Duration::seconds(1)))).await.unwrap();
    let body = error_of(f.get("/v1/device", Some(&dev.token)).await, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    assert!(body.message.contains("expired"), "{}", body.message);
    assert_eq!(f.get("/v1/device", Some(&new_token)).await.status(), StatusCode::OK);
}

/// Expired tokens say so; revoked ones answer exactly like unknown ones; no message holds a token.
#[tokio::test]
async fn expired_revoked_and_unknown_tokens_get_401() {
    let f = fixture().await;
    let dev = f.device().await;
    assert_eq!(f.get("/v1/device", Some(&dev.token)).await.status(), StatusCode::OK);

    let unknown = error_of(f.get("/v1/device", Some(&"ab".repeat(32))).await, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    let missing = error_of(f.get("/v1/device", None).await, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    assert_eq!(unknown.message, missing.message);

    let id = dev.device_id.clone();
    assert_eq!(admin(&f.hub, move |h| h.revoke_tokens(TokenRole::Device, &id, "cli:test")).await.unwrap(), 1);
    let revoked = error_of(f.get("/v1/device", Some(&dev.token)).await, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    assert_eq!(revoked.message, unknown.message, "revoked is not told apart from unknown");
    assert!(!revoked.message.contains(&dev.token));
    let r = f.upload(&dev.device_id, &dev.token, &[event(1)]).await;
    error_of(r, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;

    // A device token with a short lifetime, then past it.
    let d2 = admin(&f.hub, |h| h.add_device_with("rep-8", "north", 1, "cli:test")).await.unwrap();
    let hash = token_hash(&d2.token);
    let c = admin(&f.hub, move |h| h.store().credential(&hash)).await.unwrap().unwrap();
    assert_eq!((c.expires_at.unwrap() - Utc::now()).num_hours(), 23);
    let hash = token_hash(&d2.token);
    admin(&f.hub, move |h| h.store().set_credential_expiry(&hash, Some(Utc::now() - chrono::Duration::minutes(1)))).await.unwrap();
    let expired = error_of(f.get("/v1/changes", Some(&d2.token)).await, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    assert!(expired.message.contains("expired") && !expired.message.contains(&d2.token), "{}", expired.message);

    // Hostile admin input: clear refusals.
    assert!(admin(&f.hub, |h| h.add_device_with("r", "north", 0, "cli:test")).await.is_err());
    assert!(admin(&f.hub, |h| h.add_device_with("r", "north", 100_000, "cli:test")).await.is_err());
    assert!(matches!(
        admin(&f.hub, |h| h.revoke_tokens(TokenRole::Device, "dev-nope", "cli:test")).await,
        Err(edetail_hub::Error::NotFound(_))
    ));
    assert!(admin(&f.hub, |h| h.rotate_token(TokenRole::Device, "microsite", chrono::Duration::zero(), 90, "cli:test")).await.is_err());
}

/// Device, publisher and operator tokens each open only their own routes.
#[tokio::test]
async fn roles_do_not_overlap() {
    let f = fixture().await;
    let dev = f.device().await;
    let publisher = admin(&f.hub, |h| h.add_publisher("content")).await.unwrap();
    let operator = admin(&f.hub, |h| h.add_operator("ops", 90, "cli:test")).await.unwrap();

    assert_eq!(f.get("/dashboard", Some(&operator)).await.status(), StatusCode::OK);
    for t in [&dev.token, &publisher] {
        error_of(f.get("/dashboard", Some(t)).await, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
        error_of(f.get("/dashboard/hcps", Some(t)).await, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    }
    // A browser without a session is sent to the login form.
    let r = f.get("/dashboard/decks", None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/dashboard/login");

    for t in [&operator, &publisher] {
        error_of(f.upload(&dev.device_id, t, &[event(1)]).await, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
        error_of(f.get("/v1/changes", Some(t)).await, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    }
    for t in [&operator, &dev.token] {
        let zip = SampleBundle::new().zip(Some(&SecretKey::from_seed(&SEED)));
        let r = f.http.post(format!("{}/v1/publish", f.url)).bearer_auth(t).body(zip).send().await.unwrap();
        error_of(r, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    }
}

/// The login form issues an HttpOnly, SameSite=Strict session cookie (Secure when told the hub
/// is on TLS); the session opens the dashboard until logout or the operator's revocation.
#[tokio::test]
async fn dashboard_login_session_cookie() {
    let f = fixture().await;
    let operator = admin(&f.hub, |h| h.add_operator("ops", 90, "cli:test")).await.unwrap();
    let form = f.get("/dashboard/login", None).await;
    assert_eq!(form.status(), StatusCode::OK);
    assert!(form.headers()["content-security-policy"].to_str().unwrap().contains("form-action 'self'"));
    assert!(form.text().await.unwrap().contains("name=\"token\""));

    let login = |token: String| {
        f.http
            .post(format!("{}/dashboard/login", f.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    let bad = login("ab".repeat(32)).await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.headers().get("set-cookie").is_none());
    let hostile = f.http.post(format!("{}/dashboard/login", f.url)).body(vec![b'a'; 100_000]).send().await.unwrap();
    assert_eq!(hostile.status(), StatusCode::BAD_REQUEST);

    let ok = login(operator.clone()).await.unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP on loopback: no Secure");
    assert!(!cookie.contains(&operator), "the cookie is a session id, not the operator token");
    let session = cookie.split(';').next().unwrap().to_string();
    let with_cookie = |path: &'static str| f.http.get(format!("{}{path}", f.url)).header("cookie", session.clone()).send();
    assert_eq!(with_cookie("/dashboard/sync").await.unwrap().status(), StatusCode::OK);

    // A device token presented as a session id opens nothing.
    let dev = f.device().await;
    let r = f.http.get(format!("{}/dashboard", f.url)).header("cookie", format!("edetail_session={}", dev.token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // Revoking the operator ends its sessions.
    admin(&f.hub, |h| h.revoke_tokens(TokenRole::Operator, "ops", "cli:test")).await.unwrap();
    assert_eq!(with_cookie("/dashboard/sync").await.unwrap().status(), StatusCode::SEE_OTHER);
    assert_eq!(login(operator).await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // Behind TLS the cookie is Secure; logout revokes the session.
    f.hub.set_secure_cookies(true);
    let op2 = admin(&f.hub, |h| h.add_operator("ops2", 90, "cli:test")).await.unwrap();
    let ok = login(op2).await.unwrap();
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let r = f.http.get(format!("{}/dashboard", f.url)).header("cookie", session.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let out = f.http.post(format!("{}/dashboard/logout", f.url)).header("cookie", session.clone()).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let r = f.http.get(format!("{}/dashboard", f.url)).header("cookie", session).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

/// A burst beyond the device's bucket gets 429 RateLimited with Retry-After; publishing has a
/// smaller bucket.
#[tokio::test]
async fn bursts_get_429_with_retry_after() {
    let f = fixture().await;
    let dev = f.device().await;
    let mut limited = None;
    for i in 0..5_000 {
        let r = f.get("/v1/device", Some(&dev.token)).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, r));
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
    }
    let (i, r) = limited.expect("a burst is cut");
    assert!(i as f64 >= edetail_hub::ratelimit::DEVICE_BURST, "cut after {i} requests, before the burst allowance");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    let body = error_of(r, StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited).await;
    assert!(body.retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 1000), "{body:?}");
    assert!(f.hub.rate_limited_total() >= 1);

    // Another device is not affected.
    let other = f.device().await;
    assert_eq!(f.get("/v1/device", Some(&other.token)).await.status(), StatusCode::OK);

    // Publishing: a handful of (empty, refused) publishes, then 429.
    let publisher = admin(&f.hub, |h| h.add_publisher("content")).await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..(edetail_hub::ratelimit::PUBLISHER_BURST as usize + 2) {
        let r = f.http.post(format!("{}/v1/publish", f.url)).bearer_auth(&publisher).body(Vec::new()).send().await.unwrap();
        statuses.push(r.status());
    }
    assert!(statuses[0].is_client_error() && statuses[0] != StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    assert_eq!(*statuses.last().unwrap(), StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

/// Every audited action appears with its actor; details carry no personal data (no rep id).
#[tokio::test]
async fn audit_records_each_action_with_its_actor() {
    let f = fixture().await;
    let dev = admin(&f.hub, |h| h.add_device_with("rep-secret-7", "north", 30, "cli:alice")).await.unwrap();
    let publisher = admin(&f.hub, |h| h.add_publisher_as("content", "cli:alice")).await.unwrap();
    let zip = SampleBundle::new().zip(Some(&SecretKey::from_seed(&SEED)));
    let r = f.http.post(format!("{}/v1/publish?territory=north", f.url)).bearer_auth(&publisher).body(zip).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    admin(&f.hub, |h| h.revoke_as("com.example.sample", "withdrawn", "cli:bob")).await.unwrap();
    let id = dev.device_id.clone();
    admin(&f.hub, move |h| h.rotate_token(TokenRole::Device, &id, chrono::Duration::hours(1), 90, "cli:bob")).await.unwrap();
    let id = dev.device_id.clone();
    admin(&f.hub, move |h| h.revoke_tokens(TokenRole::Device, &id, "cli:bob")).await.unwrap();
    admin(&f.hub, |h| h.add_operator("ops", 90, "cli:alice")).await.unwrap();
    admin(&f.hub, |h| h.rotate_token(TokenRole::Publisher, "content", chrono::Duration::zero(), 30, "cli:bob")).await.unwrap();
    admin(&f.hub, |h| h.revoke_tokens(TokenRole::Publisher, "content", "cli:bob")).await.unwrap();
    admin(&f.hub, |h| h.revoke_tokens(TokenRole::Operator, "ops", "cli:bob")).await.unwrap();
    admin(&f.hub, |h| h.audit("ops", "hcp.erase", "hcp-42", json!({"events": 3}))).await.unwrap();

    let log = admin(&f.hub, |h| h.audit_log()).await.unwrap();
    let got: Vec<(&str, &str, &str)> = log.iter().map(|e| (e.actor.as_str(), e.action.as_str(), e.subject.as_str())).collect();
    let d = dev.device_id.as_str();
    assert_eq!(
        got,
        vec![
            ("cli:alice", "device.add", d),
            ("cli:alice", "publisher.add", "content"),
            ("content", "bundle.publish", "com.example.sample"),
            ("cli:bob", "bundle.revoke", "com.example.sample"),
            ("cli:bob", "device.rotate", d),
            ("cli:bob", "device.revoke", d),
            ("cli:alice", "operator.add", "ops"),
            ("cli:bob", "publisher.rotate", "content"),
            ("cli:bob", "publisher.revoke", "content"),
            ("cli:bob", "operator.revoke", "ops"),
            ("ops", "hcp.erase", "hcp-42"),
        ]
    );
    assert_eq!(log[2].details["version"], 1);
    assert_eq!(log[5].details["tokens"], 2, "both the rotated and the new token");
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains("rep-secret-7"), "no rep id in the audit trail");
    assert!(!text.contains(&dev.token) && !text.contains(&publisher), "no token in the audit trail");
}
