//! Remote detailing through a real hub on 127.0.0.1 (ADR 0023): a presenter and attendees on
//! real WebSockets (tokio-tungstenite), on SQLite and on two hub processes sharing one
//! PostgreSQL database (relayed with LISTEN/NOTIFY). The tablet side (performing and recording
//! the doctor's navigation) is tested in edetail-sync; the follower page in headless Chromium
//! (scripts/remote-test).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::SEED;
use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_hub::blobs::BlobStore;
use edetail_hub::blobs::s3::S3Blobs;
use edetail_hub::postgres::PgStore;
use edetail_hub::testkit::{TestDatabase, fresh_bucket};
use edetail_hub::{DeviceCredentials, Hub, HubConfig, serve_local};
use edetail_protocol::remote::{
    AttendeeMessage, CLOSE_ENDED, CLOSE_FULL, Control, HubMessage, MAX_ATTENDEES, NavigateTo, OpenRemoteSession, Point, PresenterMessage,
    RemoteSessionOpened,
};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Connects a WebSocket to `url` (`ws://127.0.0.1:PORT/...`), with a bearer token if given.
async fn connect(url: &str, bearer: Option<&str>) -> Result<Ws, WsError> {
    let mut req = url.into_client_request()?;
    if let Some(t) = bearer {
        req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let addr = req.uri().authority().unwrap().as_str().to_string();
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(WsError::Io)?;
    Ok(tokio_tungstenite::client_async(req, tcp).await?.0)
}

/// The next hub message, within 5 s (pings skipped); `None` when the socket closed.
async fn next(ws: &mut Ws) -> Option<HubMessage> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a message within 5 s");
        match m {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).expect("a hub message")),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// Nothing arrives for `ms` milliseconds (pings aside).
async fn quiet(ws: &mut Ws, ms: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected nothing, got {other:?}"),
        }
    }
}

/// The close code the socket ends with (reading past any messages).
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("closed within 5 s") {
            Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
            None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn send<T: serde::Serialize>(ws: &mut Ws, m: &T) {
    ws.send(Message::Text(serde_json::to_string(m).unwrap().into())).await.unwrap();
}

fn slide(id: &str, seq: u64) -> PresenterMessage {
    PresenterMessage::Slide { slide: id.into(), presentation: "main".into(), seq }
}

/// One hub process serving on loopback.
struct Node {
    url: String,
    hub: Hub,
    _task: tokio::task::JoinHandle<()>,
}

impl Node {
    fn ws(&self, path: &str) -> String {
        format!("{}{path}", self.url.replacen("http://", "ws://", 1))
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    nodes: Vec<Node>,
    dev: DeviceCredentials,
    http: reqwest::Client,
    db: Option<TestDatabase>,
}

fn sample_zip() -> Vec<u8> {
    SampleBundle::new().zip(Some(&SecretKey::from_seed(&SEED)))
}

/// A SQLite hub, the sample bundle published to territory north, a device there.
async fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(HubConfig::local(dir.path().join("hub"), vec![SecretKey::from_seed(&SEED).public()])).unwrap();
    let (url, task) = serve_local(hub.clone()).await.unwrap();
    let h = hub.clone();
    let dev = tokio::task::spawn_blocking(move || {
        h.publish_zip(&sample_zip(), &["north".to_string()]).unwrap();
        h.add_device("rep-1", "north").unwrap()
    })
    .await
    .unwrap();
    Fixture { _dir: dir, nodes: vec![Node { url, hub, _task: task }], dev, http: reqwest::Client::new(), db: None }
}

/// Two hub processes (in one test process) on one PostgreSQL database and one bucket, each
/// relaying through the database.
async fn shared() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new();
    let bucket = fresh_bucket();
    let mut nodes = Vec::new();
    for i in 0..2 {
        let store = PgStore::connect(&db.url, 4).unwrap();
        let blobs = BlobStore::new(&dir.path().join(format!("hub{i}")), Arc::new(S3Blobs::new(bucket.clone()).unwrap())).unwrap();
        let hub = Hub::with_store(
            Arc::new(store),
            blobs,
            vec![SecretKey::from_seed(&SEED).public()],
            edetail_hub::AnalyzerConfig::generated().unwrap(),
        );
        hub.use_postgres_relay(&db.url).unwrap();
        let (url, task) = serve_local(hub.clone()).await.unwrap();
        nodes.push(Node { url, hub, _task: task });
    }
    let h = nodes[0].hub.clone();
    let dev = tokio::task::spawn_blocking(move || {
        h.publish_zip(&sample_zip(), &["north".to_string()]).unwrap();
        h.add_device("rep-1", "north").unwrap()
    })
    .await
    .unwrap();
    Fixture { _dir: dir, nodes, dev, http: reqwest::Client::new(), db: Some(db) }
}

impl Fixture {
    async fn open(&self, waiting_room: bool, recorded: bool) -> RemoteSessionOpened {
        let req = OpenRemoteSession {
            call_id: "call-1".into(),
            bundle_id: "com.example.sample".into(),
            bundle_version: 1,
            minutes: 30,
            waiting_room,
            recorded,
        };
        let r = self
            .http
            .post(format!("{}/v1/remote-sessions", self.nodes[0].url))
            .bearer_auth(&self.dev.token)
            .json(&req)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    async fn presenter(&self, node: usize, s: &RemoteSessionOpened) -> Ws {
        connect(&self.nodes[node].ws(&format!("/v1/remote-sessions/{}/present", s.session_id)), Some(&self.dev.token)).await.unwrap()
    }

    /// An attendee on `node`; returns its socket and its id (after `welcome`).
    async fn attendee(&self, node: usize, s: &RemoteSessionOpened, id: Option<&str>) -> (Ws, String, bool) {
        let q = id.map(|a| format!("?attendee={a}")).unwrap_or_default();
        let mut ws = connect(&self.nodes[node].ws(&format!("{}/ws{q}", s.join_path)), None).await.unwrap();
        match next(&mut ws).await {
            Some(HubMessage::Welcome { attendee, recorded }) => (ws, attendee, recorded),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    async fn post(&self, path: &str) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.nodes[0].url)).bearer_auth(&self.dev.token).send().await.unwrap()
    }

    async fn get(&self, node: usize, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.nodes[node].url)).send().await.unwrap()
    }
}

fn current_slide(m: Option<HubMessage>) -> (String, u64, Control) {
    match m {
        Some(HubMessage::Current { slide, seq, control, .. }) => (slide, seq, control),
        other => panic!("expected current, got {other:?}"),
    }
}

/// Follow, late join, state, pointer, control hand-over, attendees' navigation only while they
/// have control, presenter drop and return, end.
#[tokio::test]
async fn attendees_follow_the_presenter_and_navigate_only_with_control() {
    let f = local().await;
    let s = f.open(false, true).await;
    assert!(s.join_path.starts_with("/r/") && s.join_path.len() == 3 + 64);
    let mut p = f.presenter(0, &s).await;
    let (mut a, a_id, recorded) = f.attendee(0, &s, None).await;
    assert!(recorded);
    // Before the presenter moved there is nothing to show; its first move reaches her.
    assert_eq!(next(&mut p).await, Some(HubMessage::Joined { attendee: a_id.clone(), waiting: false }));

    send(&mut p, &slide("intro", 1)).await;
    assert_eq!(current_slide(next(&mut a).await), ("intro".into(), 1, Control::Rep));
    // A slide the session's bundle lacks is not relayed.
    send(&mut p, &slide("not-in-bundle", 2)).await;
    send(&mut p, &slide("efficacy", 3)).await;
    assert_eq!(current_slide(next(&mut a).await), ("efficacy".into(), 3, Control::Rep));
    send(&mut p, &PresenterMessage::State { key: "endpoint".into(), value: serde_json::json!("hfh") }).await;
    send(&mut p, &PresenterMessage::Pointer { at: Some(Point { x: 0.5, y: 0.25 }) }).await;
    assert!(matches!(next(&mut a).await, Some(HubMessage::Presenter { message: PresenterMessage::State { .. } })));
    assert!(matches!(next(&mut a).await, Some(HubMessage::Presenter { message: PresenterMessage::Pointer { at: Some(_) } })));

    // A late joiner lands on the current slide with its state (once it is stored: the presenter
    // repeats it to her anyway, and the hub sends one copy when both agree).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut b, b_id, _) = f.attendee(0, &s, None).await;
    match next(&mut b).await {
        Some(HubMessage::Current { slide, seq, state, .. }) => {
            assert_eq!((slide.as_str(), seq), ("efficacy", 3));
            assert_eq!(state.get("endpoint"), Some(&serde_json::json!("hfh")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(next(&mut p).await, Some(HubMessage::Joined { attendee: b_id.clone(), waiting: false }));

    // While the rep has control, an attendee's navigation goes nowhere.
    send(&mut a, &AttendeeMessage::Navigate { action: NavigateTo::Next }).await;
    quiet(&mut p, 300).await;
    send(&mut p, &PresenterMessage::Control { to: Control::Hcp }).await;
    assert!(matches!(next(&mut a).await, Some(HubMessage::Presenter { message: PresenterMessage::Control { to: Control::Hcp } })));
    assert!(matches!(next(&mut b).await, Some(HubMessage::Presenter { message: PresenterMessage::Control { to: Control::Hcp } })));
    send(&mut b, &AttendeeMessage::Navigate { action: NavigateTo::Previous }).await;
    assert_eq!(
        next(&mut p).await,
        Some(HubMessage::Attendee { attendee: b_id.clone(), message: AttendeeMessage::Navigate { action: NavigateTo::Previous } })
    );
    send(&mut a, &AttendeeMessage::Tap { at: Point { x: 0.1, y: 0.9 } }).await;
    assert_eq!(
        next(&mut p).await,
        Some(HubMessage::Attendee { attendee: a_id.clone(), message: AttendeeMessage::Tap { at: Point { x: 0.1, y: 0.9 } } })
    );
    // Presenter messages from an attendee, out-of-bounds taps and floods are refused.
    a.send(Message::Text(r#"{"type":"control","to":"rep"}"#.into())).await.unwrap();
    a.send(Message::Text(r#"{"type":"tap","at":{"x":3,"y":0}}"#.into())).await.unwrap();
    quiet(&mut p, 300).await;
    for _ in 0..40 {
        send(&mut a, &AttendeeMessage::Navigate { action: NavigateTo::Next }).await;
    }
    let mut relayed = 0;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(500), p.next()).await {
        if matches!(m, Message::Text(_)) {
            relayed += 1;
        }
    }
    assert!((5..=20).contains(&relayed), "a flood is cut to the attendee's rate, {relayed} of 40 relayed");

    // The tablet drops: attendees are told; it comes back on the current position.
    drop(p);
    assert_eq!(next(&mut a).await, Some(HubMessage::PresenterReconnecting));
    assert_eq!(next(&mut b).await, Some(HubMessage::PresenterReconnecting));
    let mut p = f.presenter(0, &s).await;
    assert_eq!(current_slide(next(&mut p).await), ("efficacy".into(), 3, Control::Hcp));
    let mut joined = vec![];
    for _ in 0..2 {
        match next(&mut p).await {
            Some(HubMessage::Joined { attendee, waiting: false }) => joined.push(attendee),
            other => panic!("{other:?}"),
        }
    }
    joined.sort();
    let mut want = vec![a_id.clone(), b_id.clone()];
    want.sort();
    assert_eq!(joined, want, "the returning presenter learns who is there");
    // A presenter whose count restarted (an app that resumed the session) still moves forwards.
    send(&mut p, &slide("intro", 1)).await;
    assert_eq!(current_slide(next(&mut a).await), ("intro".into(), 4, Control::Hcp));

    // An attendee reconnecting with her id is the same attendee and lands on the current slide.
    drop(b);
    assert_eq!(next(&mut p).await, Some(HubMessage::Left { attendee: b_id.clone() }));
    let (mut b, again, _) = f.attendee(0, &s, Some(&b_id)).await;
    assert_eq!(again, b_id);
    assert_eq!(current_slide(next(&mut b).await), ("intro".into(), 4, Control::Hcp));

    // The rep ends: everyone is told and closed; the link and the sockets stop working.
    send(&mut p, &PresenterMessage::End).await;
    assert_eq!(next(&mut a).await, Some(HubMessage::Ended));
    assert_eq!(close_code(&mut a).await, Some(CLOSE_ENDED));
    assert_eq!(next(&mut b).await, Some(HubMessage::Ended));
    assert_eq!(f.get(0, &s.join_path).await.status(), StatusCode::GONE);
    assert_eq!(f.get(0, &format!("{}/a/slides/intro/index.html", s.join_path)).await.status(), StatusCode::GONE);
    let mut late = connect(&f.nodes[0].ws(&format!("{}/ws", s.join_path)), None).await.unwrap();
    assert_eq!(next(&mut late).await, Some(HubMessage::Ended));
    let r = f.post(&format!("/v1/remote-sessions/{}/end", s.session_id)).await;
    assert_eq!(r.status(), StatusCode::OK, "ending again is harmless");
    let err = connect(&f.nodes[0].ws(&format!("/v1/remote-sessions/{}/present", s.session_id)), Some(&f.dev.token)).await.unwrap_err();
    assert!(matches!(err, WsError::Http(ref r) if r.status() == 410), "{err:?}");
}

/// The page, the slides it may load, the privacy statement, tokens and the waiting room.
#[tokio::test]
async fn links_serve_only_the_session_and_can_be_revoked() {
    let f = local().await;
    let s = f.open(true, false).await;
    let page = f.get(0, &s.join_path).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'sha256-"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("Nothing of this meeting is recorded"), "consent off is said");
    assert!(!html.contains("rep-1") && !html.contains(&f.dev.device_id) && !html.contains("call-1"), "no rep, device or call");
    let asset = f.get(0, &format!("{}/a/slides/intro/index.html", s.join_path)).await;
    assert_eq!(asset.status(), StatusCode::OK);
    assert!(asset.headers()["content-security-policy"].to_str().unwrap().starts_with("sandbox allow-scripts"));
    assert_eq!(f.get(0, &format!("{}/a/edetail.json", s.join_path)).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(f.get(0, &format!("{}/a/../../v1/device", s.join_path)).await.status(), StatusCode::NOT_FOUND);
    // A wrong token (right shape or not) looks like no session at all.
    let wrong = format!("/r/{}", "a".repeat(64));
    assert_eq!(f.get(0, &wrong).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(f.get(0, "/r/short").await.status(), StatusCode::NOT_FOUND);
    let err = connect(&f.nodes[0].ws(&format!("{wrong}/ws")), None).await.unwrap_err();
    assert!(matches!(err, WsError::Http(ref r) if r.status() == 404), "{err:?}");
    // The presenter socket needs this device's token.
    let err = connect(&f.nodes[0].ws(&format!("/v1/remote-sessions/{}/present", s.session_id)), None).await.unwrap_err();
    assert!(matches!(err, WsError::Http(ref r) if r.status() == 401), "{err:?}");
    let other = f.nodes[0].hub.clone();
    let other = tokio::task::spawn_blocking(move || other.add_device("rep-2", "north").unwrap()).await.unwrap();
    let err = connect(&f.nodes[0].ws(&format!("/v1/remote-sessions/{}/present", s.session_id)), Some(&other.token)).await.unwrap_err();
    assert!(matches!(err, WsError::Http(ref r) if r.status() == 404), "{err:?}");

    // Waiting room: the attendee waits; the presenter sees her and admits her.
    let mut p = f.presenter(0, &s).await;
    send(&mut p, &slide("intro", 1)).await;
    let (mut a, a_id, recorded) = f.attendee(0, &s, None).await;
    assert!(!recorded);
    assert_eq!(next(&mut a).await, Some(HubMessage::Waiting));
    assert_eq!(next(&mut p).await, Some(HubMessage::Joined { attendee: a_id.clone(), waiting: true }));
    send(&mut p, &slide("efficacy", 2)).await;
    quiet(&mut a, 300).await;
    send(&mut p, &PresenterMessage::Admit { attendee: a_id.clone() }).await;
    assert_eq!(next(&mut a).await, Some(HubMessage::Admitted));
    assert_eq!(current_slide(next(&mut a).await).0, "efficacy");

    // A new link: whoever came through the old one is closed out; the old link is dead.
    let r = f.post(&format!("/v1/remote-sessions/{}/link", s.session_id)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let fresh: RemoteSessionOpened = r.json().await.unwrap();
    assert_ne!(fresh.join_path, s.join_path);
    assert_eq!(next(&mut a).await, Some(HubMessage::Ended));
    assert_eq!(f.get(0, &s.join_path).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(f.get(0, &fresh.join_path).await.status(), StatusCode::OK);
    // She comes back through the new link as the same attendee: already admitted.
    let (mut a, again, _) = f.attendee(0, &fresh, Some(&a_id)).await;
    assert_eq!(again, a_id);
    assert_eq!(current_slide(next(&mut a).await).0, "efficacy");

    // Bad requests are named.
    let bad = OpenRemoteSession {
        call_id: "c".into(),
        bundle_id: "com.example.sample".into(),
        bundle_version: 1,
        minutes: 241,
        waiting_room: false,
        recorded: true,
    };
    let r = f.http.post(format!("{}/v1/remote-sessions", f.nodes[0].url)).bearer_auth(&f.dev.token).json(&bad).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("minutes must be 1 to 240"));
    let unknown = OpenRemoteSession { minutes: 10, bundle_version: 9, ..bad };
    let r = f.http.post(format!("{}/v1/remote-sessions", f.nodes[0].url)).bearer_auth(&f.dev.token).json(&unknown).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "content the territory is not entitled to");
}

/// Behind the relay's back (an end whose message was lost, an expiry moved in the database) the
/// sockets still learn it: each reads its session again every `remote_recheck`.
#[tokio::test]
async fn sockets_read_their_session_again_and_close_when_it_is_over() {
    let f = local().await;
    f.nodes[0].hub.set_remote_recheck(Duration::from_millis(200));
    let s = f.open(false, true).await;
    let mut p = f.presenter(0, &s).await;
    send(&mut p, &slide("intro", 1)).await;
    let (mut a, _, _) = f.attendee(0, &s, None).await;
    assert_eq!(current_slide(next(&mut a).await).0, "intro");
    quiet(&mut a, 500).await;
    let db = f._dir.path().join("hub").join(edetail_hub::sqlite::DB_FILE);
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute("UPDATE remote_sessions SET expires_at = '2000-01-01T00:00:00Z' WHERE id = ?1", [&s.session_id]).unwrap();
    assert_eq!(next(&mut a).await, Some(HubMessage::Ended));
    assert_eq!(close_code(&mut a).await, Some(CLOSE_ENDED));
    assert_eq!(close_code(&mut p).await, Some(CLOSE_ENDED));
}

/// A doctor who joins while the tablet is away (after it presented) is told so, as those
/// connected were, on the slide it left.
#[tokio::test]
async fn a_doctor_joining_while_the_tablet_is_away_is_told() {
    let f = local().await;
    let s = f.open(false, true).await;
    let mut p = f.presenter(0, &s).await;
    send(&mut p, &slide("efficacy", 1)).await;
    let (mut a, _, _) = f.attendee(0, &s, None).await;
    assert_eq!(current_slide(next(&mut a).await).0, "efficacy");
    drop(p);
    assert_eq!(next(&mut a).await, Some(HubMessage::PresenterReconnecting));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut b, _, _) = f.attendee(0, &s, None).await;
    assert_eq!(current_slide(next(&mut b).await).0, "efficacy");
    assert_eq!(next(&mut b).await, Some(HubMessage::PresenterReconnecting));
    // Back: both follow again.
    let mut p = f.presenter(0, &s).await;
    send(&mut p, &slide("intro", 2)).await;
    assert_eq!(current_slide(next(&mut a).await).0, "intro");
    assert_eq!(current_slide(next(&mut b).await).0, "intro");
}

/// At most 20 attendees; a place frees when one leaves.
#[tokio::test]
async fn a_session_takes_at_most_twenty_attendees() {
    let f = local().await;
    let s = f.open(false, true).await;
    let mut all = Vec::new();
    for _ in 0..MAX_ATTENDEES {
        all.push(f.attendee(0, &s, None).await.0);
    }
    let mut extra = connect(&f.nodes[0].ws(&format!("{}/ws", s.join_path)), None).await.unwrap();
    assert_eq!(close_code(&mut extra).await, Some(CLOSE_FULL));
    let mut gone = all.pop().unwrap();
    gone.close(None).await.unwrap();
    drop(gone);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_ws, _, _) = f.attendee(0, &s, None).await;
}

/// A presenter connection on another hub process takes the session over: the older one is
/// closed as replaced when it next marks itself seen (the tablet stops presenting there).
#[tokio::test]
async fn a_presenter_on_another_process_replaces_the_older_one() {
    let f = shared().await;
    for n in &f.nodes {
        n.hub.set_remote_recheck(Duration::from_millis(200));
    }
    let s = f.open(false, true).await;
    let mut old = f.presenter(0, &s).await;
    send(&mut old, &slide("intro", 1)).await;
    let (mut a, _, _) = f.attendee(0, &s, None).await;
    assert_eq!(current_slide(next(&mut a).await).0, "intro");
    let mut new = f.presenter(1, &s).await;
    assert_eq!(close_code(&mut old).await, Some(edetail_protocol::remote::CLOSE_REPLACED));
    // The attendees are not told the presenter went: the new one presents.
    send(&mut new, &slide("efficacy", 2)).await;
    assert_eq!(current_slide(next(&mut a).await).0, "efficacy");
}

/// Two hub processes on one PostgreSQL: the presenter on one, attendees on both; moves,
/// admissions, control and navigation cross between them; expiry is read from the store.
#[tokio::test]
async fn sessions_relay_between_hub_processes_through_postgresql() {
    let f = shared().await;
    let s = f.open(true, true).await;
    let mut p = f.presenter(0, &s).await;
    send(&mut p, &slide("intro", 1)).await;
    let (mut far, far_id, _) = f.attendee(1, &s, None).await;
    assert_eq!(next(&mut far).await, Some(HubMessage::Waiting));
    assert_eq!(next(&mut p).await, Some(HubMessage::Joined { attendee: far_id.clone(), waiting: true }));
    send(&mut p, &PresenterMessage::Admit { attendee: far_id.clone() }).await;
    assert_eq!(next(&mut far).await, Some(HubMessage::Admitted));
    assert_eq!(current_slide(next(&mut far).await).0, "intro");
    send(&mut p, &slide("efficacy", 2)).await;
    assert_eq!(current_slide(next(&mut far).await), ("efficacy".into(), 2, Control::Rep));
    send(&mut p, &PresenterMessage::Control { to: Control::Hcp }).await;
    assert!(matches!(next(&mut far).await, Some(HubMessage::Presenter { message: PresenterMessage::Control { to: Control::Hcp } })));
    send(&mut far, &AttendeeMessage::Navigate { action: NavigateTo::Slide { slide: "intro".into() } }).await;
    assert_eq!(
        next(&mut p).await,
        Some(HubMessage::Attendee {
            attendee: far_id.clone(),
            message: AttendeeMessage::Navigate { action: NavigateTo::Slide { slide: "intro".into() } }
        })
    );
    // The page works on either process.
    assert_eq!(f.get(1, &s.join_path).await.status(), StatusCode::OK);
    // The presenter ends on process 0: the attendee on process 1 is told and closed.
    send(&mut p, &PresenterMessage::End).await;
    assert_eq!(next(&mut far).await, Some(HubMessage::Ended));
    assert_eq!(close_code(&mut far).await, Some(CLOSE_ENDED));

    // Expiry: a session past its end answers "ended" on both processes.
    let s2 = f.open(false, true).await;
    assert_eq!(f.get(1, &s2.join_path).await.status(), StatusCode::OK);
    let sql = format!("UPDATE remote_sessions SET expires_at = now() - interval '1 second' WHERE id = '{}'", s2.session_id);
    let db = f.db.as_ref().unwrap();
    std::thread::scope(|t| t.spawn(|| db.execute(&sql).unwrap()).join().unwrap());
    assert_eq!(f.get(0, &s2.join_path).await.status(), StatusCode::GONE);
    assert_eq!(f.get(1, &s2.join_path).await.status(), StatusCode::GONE);
    let mut late = connect(&f.nodes[1].ws(&format!("{}/ws", s2.join_path)), None).await.unwrap();
    assert_eq!(next(&mut late).await, Some(HubMessage::Ended));
}
