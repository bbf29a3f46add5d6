//! Credential guessing, login CSRF, session rotation, trusted proxies and content security
//! policies over HTTP (issue 13): a real hub on 127.0.0.1, clients bound to distinct loopback
//! addresses (127.0.0.2, 127.0.0.3, …) so each is its own client address.

mod common;

use common::event;

use chrono::Utc;
use edetail_hub::ratelimit::AUTH_FAILURE_BURST;
use edetail_hub::store::TokenRole;
use edetail_hub::{Hub, HubConfig, serve_local};
use edetail_protocol::UploadBatch;
use reqwest::StatusCode;

struct Fixture {
    _dir: tempfile::TempDir,
    url: String,
    hub: Hub,
    _task: tokio::task::JoinHandle<()>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(HubConfig::local(dir.path().join("hub"), vec![])).unwrap();
    let (url, task) = serve_local(hub.clone()).await.unwrap();
    Fixture { _dir: dir, url, hub, _task: task }
}

/// A fixture with one operator, `ops`; returns its token too.
async fn fixture_with_operator() -> (Fixture, String) {
    let f = fixture().await;
    let operator = admin(&f.hub, |h| h.add_operator("ops", 90, "cli:test")).await.unwrap();
    (f, operator)
}

/// A client whose requests come from `ip` (a loopback address), not following redirects.
fn from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn admin<T: Send + 'static>(hub: &Hub, f: impl FnOnce(&Hub) -> T + Send + 'static) -> T {
    let h = hub.clone();
    tokio::task::spawn_blocking(move || f(&h)).await.unwrap()
}

async fn login(c: &reqwest::Client, url: &str, token: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut r =
        c.post(format!("{url}/dashboard/login")).header("content-type", "application/x-www-form-urlencoded").body(format!("token={token}"));
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

/// The session cookie (`name=value`) a successful login set.
fn session_of(login: &reqwest::Response) -> String {
    login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

/// `GET /v1/device` with a wrong bearer token, claiming to be forwarded for `forwarded_for`.
async fn wrong_bearer(c: &reqwest::Client, url: &str, forwarded_for: &str) -> reqwest::Response {
    c.get(format!("{url}/v1/device")).bearer_auth("0".repeat(64)).header("x-forwarded-for", forwarded_for).send().await.unwrap()
}

/// An attacker address flooding wrong operator logins and wrong bearer tokens gets 429 with
/// Retry-After (even for a right token from that address), while the operator from another
/// address logs in and browses and a device from a third address syncs.
#[tokio::test]
async fn guessing_is_braked_per_address_without_locking_out_others() {
    let (f, operator) = fixture_with_operator().await;
    let dev = admin(&f.hub, |h| h.add_device("rep-1", "north")).await.unwrap();
    let attacker = from("127.0.0.2");
    let mut limited = None;
    for i in 0..(AUTH_FAILURE_BURST as usize + 10) {
        let guess = format!("{:064x}", i);
        let r = if i % 3 == 0 {
            login(&attacker, &f.url, &guess, &[]).await
        } else if i % 3 == 1 {
            attacker.get(format!("{}/v1/device", f.url)).bearer_auth(&guess).send().await.unwrap()
        } else {
            attacker.get(format!("{}/dashboard/hcps", f.url)).bearer_auth(&guess).send().await.unwrap()
        };
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
            limited = Some(i);
            break;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let cut = limited.expect("the attacker's address was never limited");
    assert_eq!(cut, AUTH_FAILURE_BURST as usize, "limited right after the burst of failures");
    // From the attacker's address even a right token is refused now (guessing stops there).
    let r = attacker.get(format!("{}/v1/device", f.url)).bearer_auth(&dev.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = login(&attacker, &f.url, &operator, &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().await.unwrap().contains("Too many attempts"));

    // The operator, elsewhere, logs in and browses; the device, elsewhere, syncs.
    let op = from("127.0.0.3");
    let ok = login(&op, &f.url, &operator, &[]).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let session = session_of(&ok);
    for p in ["/dashboard", "/dashboard/hcps", "/dashboard/sync"] {
        let r = op.get(format!("{}{p}", f.url)).header("cookie", &session).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{p}");
    }
    let tablet = from("127.0.0.4");
    let batch = UploadBatch { device_id: dev.device_id.clone(), batch_id: "b".into(), device_time: Utc::now(), events: vec![event(1)] };
    let r = tablet.post(format!("{}/v1/events", f.url)).bearer_auth(&dev.token).json(&batch).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = tablet.get(format!("{}/v1/changes", f.url)).bearer_auth(&dev.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// Without a trusted proxy, a spoofed X-Forwarded-For changes nothing: the attacker's bucket
/// stays its own. From a trusted proxy, the forwarded client address counts instead, and
/// `X-Forwarded-Proto: https` makes the session cookie Secure.
#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    let (f, operator) = fixture_with_operator().await;
    let attacker = from("127.0.0.5");
    for i in 0..AUTH_FAILURE_BURST as usize {
        let spoof = format!("10.9.{}.{}", i / 200, i % 200 + 1);
        let r = wrong_bearer(&attacker, &f.url, &spoof).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = wrong_bearer(&attacker, &f.url, "10.99.0.1").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "a spoofed X-Forwarded-For did not give a fresh bucket");
    // Spoofed X-Forwarded-Proto from an untrusted peer: no Secure cookie.
    let c = login(&from("127.0.0.6"), &f.url, &operator, &[("x-forwarded-proto", "https")]).await;
    assert!(!c.headers()["set-cookie"].to_str().unwrap().contains("Secure"));

    // 127.0.0.7 is a trusted proxy: behind it, clients are told apart by X-Forwarded-For.
    f.hub.set_trusted_proxies(vec!["127.0.0.7".parse().unwrap()]);
    let proxy = from("127.0.0.7");
    for _ in 0..AUTH_FAILURE_BURST as usize {
        let r = wrong_bearer(&proxy, &f.url, "203.0.113.9").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = wrong_bearer(&proxy, &f.url, "203.0.113.9").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let ok = login(&proxy, &f.url, &operator, &[("x-forwarded-for", "198.51.100.1"), ("x-forwarded-proto", "https")]).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER, "another client behind the same proxy is not locked out");
    assert!(ok.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
}

/// Login CSRF: a cross-origin post is refused with a login page saying why; same-origin and
/// header-less (CLI) posts work.
#[tokio::test]
async fn cross_site_logins_are_refused() {
    let (f, operator) = fixture_with_operator().await;
    let c = from("127.0.0.1");
    for extra in [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site"), ("origin", "https://sub.example")],
        vec![("sec-fetch-site", "cross-site"), ("origin", "null")],
    ] {
        let r = login(&c, &f.url, &operator, &extra).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{extra:?}");
        assert!(r.headers().get("set-cookie").is_none());
        assert!(r.text().await.unwrap().contains("came from another site"));
    }
    let own = f.url.clone();
    let r = login(&c, &f.url, &operator, &[("origin", own.as_str()), ("sec-fetch-site", "same-origin")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(login(&c, &f.url, &operator, &[]).await.status(), StatusCode::SEE_OTHER);
    // The hub's own form under `Referrer-Policy: no-referrer`: Origin null, but same-origin.
    let r = login(&c, &f.url, &operator, &[("origin", "null"), ("sec-fetch-site", "same-origin")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

/// Rotating an operator's token ends the sessions made with the old one by the grace end.
#[tokio::test]
async fn rotation_ends_old_sessions() {
    let (f, operator) = fixture_with_operator().await;
    let c = from("127.0.0.1");
    let ok = login(&c, &f.url, &operator, &[]).await;
    let session = session_of(&ok);
    let get = |s: String| c.get(format!("{}/dashboard/sync", f.url)).header("cookie", s).send();
    assert_eq!(get(session.clone()).await.unwrap().status(), StatusCode::OK);
    let new = admin(&f.hub, |h| h.rotate_token(TokenRole::Operator, "ops", chrono::Duration::zero(), 90, "cli:test")).await.unwrap();
    let r = get(session).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the old session ended with the rotation");
    let ok = login(&c, &f.url, &new, &[]).await;
    let session = session_of(&ok);
    assert_eq!(get(session).await.unwrap().status(), StatusCode::OK, "the new token's session works");
}

/// Every HTML answer carries a restrictive content security policy.
#[tokio::test]
async fn html_answers_carry_a_csp() {
    let f = fixture().await;
    let c = from("127.0.0.1");
    for p in ["/dashboard/login", &format!("/m/{}", "0".repeat(64)), "/m/not-a-token"] {
        let r = c.get(format!("{}{p}", f.url)).send().await.unwrap();
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{p}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-eval"), "{p}: {csp}");
    }
}
