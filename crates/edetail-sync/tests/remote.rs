//! Remote detailing, the tablet's side (issue 17), against the real hub on 127.0.0.1 with
//! doctors as plain WebSocket clients of `/r/<token>/ws`: the attendee follows the rep's moves;
//! with control handed over her navigation moves the call and is recorded once as an HCP-led
//! `slide_enter` with source `remote` (hidden and unknown slides refused, nothing while the rep
//! has control), her taps recorded; consent off records nothing though she still navigates; the
//! presenter reconnects after its socket is cut and the attendees land on the call's slide; the
//! waiting room; a renewed link; `end()` ends it for everyone and the link answers 410.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::world::{CARDIOZEN, Tablet, World, tablet, world};
use edetail_core::{Channel, NavAction, NavSource, StartCall, Tracking};
use edetail_protocol::ConsentRecord;
use edetail_protocol::remote::{AttendeeMessage, CLOSE_ENDED, Control, HubMessage, NavigateTo, Point, PresenterMessage};
use edetail_sync::{ConnectionState, Error, NavRefusal, RemoteEvent, RemotePresenter, SyncConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

const WAIT: Duration = Duration::from_secs(10);

/// A doctor's browser: a WebSocket on the join link, driven from the test thread.
struct Attendee<'a> {
    rt: &'a tokio::runtime::Runtime,
    ws: Ws,
    id: String,
    recorded: bool,
}

/// `ws://…/r/<token>/ws` of a join URL, reached at `hub` (the hub itself, not a relay).
fn socket_url(join_url: &str, hub: &str) -> String {
    let path = &join_url[join_url.find("/r/").expect("a join path")..];
    format!("{}{path}/ws", hub.replacen("http://", "ws://", 1))
}

impl<'a> Attendee<'a> {
    /// Joins and reads the hub's welcome.
    fn join(w: &'a World, join_url: &str) -> Attendee<'a> {
        let url = socket_url(join_url, &w.url);
        let ws = w.rt.block_on(async {
            let req = url.as_str().into_client_request().unwrap();
            let addr = req.uri().authority().unwrap().as_str().to_string();
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio_tungstenite::client_async(req, tcp).await.expect("the attendee connects").0
        });
        let mut a = Attendee { rt: &w.rt, ws, id: String::new(), recorded: false };
        match a.next() {
            Some(HubMessage::Welcome { attendee, recorded }) => {
                a.id = attendee;
                a.recorded = recorded;
            }
            other => panic!("expected welcome, got {other:?}"),
        }
        a
    }

    /// The next hub message (pings skipped); `None` when the socket closed.
    fn next(&mut self) -> Option<HubMessage> {
        self.next_or_close().ok()
    }

    /// The next hub message, or the close code the socket ended with.
    fn next_or_close(&mut self) -> Result<HubMessage, Option<u16>> {
        self.rt.block_on(async {
            loop {
                match tokio::time::timeout(WAIT, self.ws.next()).await.expect("a message in time") {
                    Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).expect("a hub message")),
                    Some(Ok(Message::Close(f))) => return Err(f.map(|f| u16::from(f.code))),
                    None | Some(Err(_)) => return Err(None),
                    Some(Ok(_)) => {}
                }
            }
        })
    }

    /// Reads past any messages to the close; its code.
    fn close_code(&mut self) -> Option<u16> {
        loop {
            if let Err(code) = self.next_or_close() {
                return code;
            }
        }
    }

    /// Reads until a message `pick` accepts, skipping others.
    fn until<T>(&mut self, what: &str, mut pick: impl FnMut(&HubMessage) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let m = self.rt.block_on(async {
                loop {
                    match tokio::time::timeout_at(deadline, self.ws.next()).await {
                        Err(_) => return Err("timed out"),
                        Ok(Some(Ok(Message::Text(t)))) => return Ok(serde_json::from_str::<HubMessage>(&t).expect("a hub message")),
                        Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => return Err("socket closed"),
                        Ok(Some(Ok(_))) => {}
                    }
                }
            });
            match m {
                Ok(m) => match pick(&m) {
                    Some(t) => return t,
                    None => seen.push(m),
                },
                Err(why) => panic!("{why} waiting for {what}; saw {seen:?}"),
            }
        }
    }

    /// Reads until the hub says the session is on `slide`.
    fn on_slide(&mut self, slide: &str) -> u64 {
        self.until(&format!("current {slide}"), |m| match m {
            HubMessage::Current { slide: s, seq, .. } if s == slide => Some(*seq),
            _ => None,
        })
    }

    fn send(&mut self, m: &AttendeeMessage) {
        let text = serde_json::to_string(m).unwrap();
        self.rt.block_on(self.ws.send(Message::Text(text.into()))).unwrap();
    }

    /// No slide move arrives for `ms` milliseconds.
    fn no_move(&mut self, ms: u64) {
        let end = tokio::time::Instant::now() + Duration::from_millis(ms);
        self.rt.block_on(async {
            loop {
                match tokio::time::timeout_at(end, self.ws.next()).await {
                    Err(_) => return,
                    Ok(Some(Ok(Message::Text(t)))) => {
                        let m: HubMessage = serde_json::from_str(&t).unwrap();
                        assert!(!matches!(m, HubMessage::Current { .. }), "unexpected move: {m:?}");
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(other) => panic!("socket ended: {other:?}"),
                }
            }
        })
    }
}

fn navigate(to: NavigateTo) -> AttendeeMessage {
    AttendeeMessage::Navigate { action: to }
}

fn goto(slide: &str) -> NavigateTo {
    NavigateTo::Slide { slide: slide.into() }
}

/// Starts a remote call with `hcp` on the Cardiozen deck (on `intro`).
fn start_remote(t: &Tablet, hcp: &str) -> String {
    let start = StartCall {
        hcp_id: Some(hcp.into()),
        channel: Channel::Remote,
        bundle_id: CARDIOZEN.into(),
        presentation_id: None,
        location: None,
    };
    t.device.start_call(start).unwrap().0
}

/// Waits for the presenter event `pick` accepts; the events passed over are returned too.
fn event<T>(p: &RemotePresenter, what: &str, mut pick: impl FnMut(&RemoteEvent) -> Option<T>) -> (T, Vec<RemoteEvent>) {
    let deadline = Instant::now() + WAIT;
    let mut passed = Vec::new();
    while let Some(e) = p.next_event(deadline.saturating_duration_since(Instant::now())) {
        if let Some(t) = pick(&e) {
            return (t, passed);
        }
        passed.push(e);
    }
    panic!("no {what} within {WAIT:?}; saw {passed:?}")
}

fn connected(p: &RemotePresenter) {
    event(p, "Connected", |e| (*e == RemoteEvent::Connected).then_some(()));
}

fn slide_enters(t: &Tablet, call: &str) -> Vec<Value> {
    t.device.outbox().for_call(call).unwrap().into_iter().filter(|e| e.kind == "slide_enter").map(|e| e.payload).collect()
}

fn current_slide(t: &Tablet, call: &str) -> String {
    t.device.calls().get(call).unwrap().slide_id.unwrap()
}

fn rep_moves(t: &Tablet, call: &str, slide: &str) {
    let goto = NavAction::Goto { slide: Some(slide.into()), presentation: None, key_message: None };
    t.device.calls().navigate(call, &goto, NavSource::Overview, false).unwrap();
}

/// The hand-over: control set, the attendee told.
fn hand_over(p: &RemotePresenter, a: &mut Attendee<'_>, to: Control) {
    p.set_control(to).unwrap();
    a.until("control", |m| match m {
        HubMessage::Presenter { message: PresenterMessage::Control { to: c } } if *c == to => Some(()),
        _ => None,
    });
}

fn get_status(w: &World, url: &str) -> u16 {
    let url = url.to_string();
    w.rt.block_on(async move { reqwest::get(url).await.unwrap().status().as_u16() })
}

#[test]
fn the_attendee_follows_and_with_control_her_navigation_is_performed_and_recorded_once() {
    let w = world();
    let t = tablet(&w, "rep-1");
    let call = start_remote(&t, "hcp-1");
    let p = RemotePresenter::open(t.device.clone(), &t.config, &call, 30, false).unwrap();
    assert!(p.recorded());
    assert!(p.join_url().starts_with(&format!("{}/r/", w.url)), "{}", p.join_url());
    assert_eq!(p.join_url().len(), w.url.len() + 3 + 64);
    assert!(p.expires_at() > chrono::Utc::now() + chrono::Duration::minutes(29));
    connected(&p);

    let mut a = Attendee::join(&w, &p.join_url());
    assert!(a.recorded, "the page says she is recorded");
    a.on_slide("intro");
    let (joined, _) = event(&p, "AttendeeJoined", |e| match e {
        RemoteEvent::AttendeeJoined { attendee, waiting } => Some((attendee.clone(), *waiting)),
        _ => None,
    });
    assert_eq!(joined, (a.id.clone(), false));
    assert_eq!(p.status().attendees.len(), 1);
    assert_eq!(p.status().connection, ConnectionState::Connected);

    // The rep's moves, whatever makes them, reach her; so do slide state and the pointer.
    rep_moves(&t, &call, "burden");
    let s1 = a.on_slide("burden");
    t.device.calls().navigate(&call, &NavAction::Next, NavSource::Swipe, false).unwrap();
    let s2 = a.on_slide("moa-overview");
    assert!(s2 > s1, "seq increases: {s1} then {s2}");
    t.device.calls().state_save(&call, "chart", &json!({"tab": "hfref"})).unwrap();
    let chart = a.until("state", |m| match m {
        HubMessage::Presenter { message: PresenterMessage::State { key, value } } if key == "chart" => Some(value.clone()),
        _ => None,
    });
    assert_eq!(chart, json!({"tab": "hfref"}));
    p.pointer(Some(Point { x: 0.5, y: 0.25 })).unwrap();
    let at = a.until("pointer", |m| match m {
        HubMessage::Presenter { message: PresenterMessage::Pointer { at: Some(at) } } => Some((at.x, at.y)),
        _ => None,
    });
    assert_eq!(at, (0.5, 0.25));
    assert!(matches!(p.pointer(Some(Point { x: 1.5, y: 0.0 })), Err(Error::Invalid(_))));

    // While the rep has control her navigation does nothing (the hub does not even relay it).
    a.send(&navigate(NavigateTo::Next));
    a.no_move(500);
    assert_eq!(current_slide(&t, &call), "moa-overview");

    hand_over(&p, &mut a, Control::Hcp);
    assert_eq!(p.status().control, Control::Hcp);
    let before = slide_enters(&t, &call).len();
    a.send(&navigate(NavigateTo::Next));
    a.on_slide("moa-diagram");
    let (moved, _) = event(&p, "Navigated", |e| match e {
        RemoteEvent::Navigated { slide, presentation, url } => {
            assert!(url.contains(slide.as_str()), "the URL to load names the slide: {url}");
            Some((slide.clone(), presentation.clone()))
        }
        _ => None,
    });
    assert_eq!(moved, ("moa-diagram".to_string(), "main".to_string()));
    assert_eq!(current_slide(&t, &call), "moa-diagram");
    a.send(&navigate(goto("dosing")));
    a.on_slide("dosing");
    // Hidden slides, slides only in hidden presentations and unknown ones are refused.
    for (slide, why) in [("references", NavRefusal::HiddenSlide), ("pi-1", NavRefusal::HiddenSlide), ("nope", NavRefusal::UnknownSlide)] {
        a.send(&navigate(goto(slide)));
        let (reason, _) = event(&p, "NavigationRefused", |e| match e {
            RemoteEvent::NavigationRefused { reason } => Some(*reason),
            _ => None,
        });
        assert_eq!(reason, why, "{slide}");
    }
    a.send(&AttendeeMessage::Tap { at: Point { x: 0.2, y: 0.8 } });
    let (tap, _) = event(&p, "Tapped", |e| match e {
        RemoteEvent::Tapped { x, y } => Some((*x, *y)),
        _ => None,
    });
    assert_eq!(tap, (0.2, 0.8));
    assert_eq!(current_slide(&t, &call), "dosing");

    // Her two moves, recorded once each as HCP-led with source remote; the rep's are not.
    let enters = slide_enters(&t, &call);
    let hers: Vec<&Value> = enters[before..].iter().collect();
    assert_eq!(hers.len(), 2, "{hers:?}");
    for (e, slide) in hers.iter().zip(["moa-diagram", "dosing"]) {
        assert_eq!((e["slide"].as_str(), e["source"].as_str(), &e["hcp_led"]), (Some(slide), Some("remote"), &json!(true)));
    }
    assert!(enters[..before].iter().all(|e| e["hcp_led"] == json!(false)));
    let taps: Vec<Value> = t
        .device
        .outbox()
        .for_call(&call)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "custom" && e.payload["event"] == "remote_tap")
        .map(|e| e.payload)
        .collect();
    assert_eq!(taps.len(), 1);
    assert_eq!((taps[0]["slide"].as_str(), &taps[0]["data"]), (Some("dosing"), &json!({"x": 0.2, "y": 0.8, "hcp_led": true})));

    // Control back to the rep: her navigation is ignored again.
    hand_over(&p, &mut a, Control::Rep);
    a.send(&navigate(NavigateTo::Next));
    a.no_move(500);
    assert_eq!(current_slide(&t, &call), "dosing");
    assert_eq!(slide_enters(&t, &call).len(), enters.len());

    // The call's events reach the hub by the usual upload, the doctor's moves among them.
    let report = t.engine.sync_now().unwrap();
    assert!(report.events_accepted >= enters.len(), "{report:?}");
    assert_eq!(t.device.outbox().stats().unwrap().pending, 0);
}

#[test]
fn with_consent_off_she_navigates_and_nothing_of_hers_is_recorded() {
    let w = world();
    let t = tablet(&w, "rep-1");
    let consent = ConsentRecord { hcp_id: "hcp-off".into(), tracking: Tracking::Off, updated_at: chrono::Utc::now() };
    t.device.privacy().apply_consents(&[consent]).unwrap();
    let call = start_remote(&t, "hcp-off");
    let p = RemotePresenter::open(t.device.clone(), &t.config, &call, 15, false).unwrap();
    assert!(!p.recorded());
    connected(&p);
    let mut a = Attendee::join(&w, &p.join_url());
    assert!(!a.recorded, "the page says she is not recorded");
    a.on_slide("intro");
    hand_over(&p, &mut a, Control::Hcp);
    a.send(&navigate(NavigateTo::Next));
    a.on_slide("burden");
    event(&p, "Navigated", |e| matches!(e, RemoteEvent::Navigated { .. }).then_some(()));
    a.send(&AttendeeMessage::Tap { at: Point { x: 0.5, y: 0.5 } });
    event(&p, "Tapped", |e| matches!(e, RemoteEvent::Tapped { .. }).then_some(()));
    assert_eq!(current_slide(&t, &call), "burden");
    assert!(t.device.outbox().for_call(&call).unwrap().is_empty(), "consent off: nothing recorded");
}

/// A TCP relay in front of the hub whose connections the test can cut, and which can refuse
/// new ones for a while (the tablet's network gone).
struct Link {
    url: String,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Link {
    fn start(w: &World) -> Link {
        let upstream: SocketAddr = w.url.trim_start_matches("http://").parse().unwrap();
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listener = w.rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (c, d) = (conns.clone(), down.clone());
        w.rt.spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if d.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut hub) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut hub).await;
                    }
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Link { url, conns, down }
    }

    /// Cuts every connection and refuses new ones until `up`.
    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    fn up(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn the_presenter_reconnects_after_its_socket_is_cut_and_attendees_land_on_the_calls_slide() {
    let w = world();
    let t = tablet(&w, "rep-1");
    let link = Link::start(&w);
    let call = start_remote(&t, "hcp-1");
    let config = SyncConfig { hub_url: link.url.clone(), ..t.config.clone() };
    let p = RemotePresenter::open(t.device.clone(), &config, &call, 30, false).unwrap();
    assert!(p.join_url().starts_with(&link.url));
    connected(&p);
    let mut a = Attendee::join(&w, &p.join_url());
    let s0 = a.on_slide("intro");
    hand_over(&p, &mut a, Control::Hcp);

    link.cut();
    a.until("presenter_reconnecting", |m| matches!(m, HubMessage::PresenterReconnecting).then_some(()));
    let (retry, _) = event(&p, "Disconnected", |e| match e {
        RemoteEvent::Disconnected { retry_in_ms } => Some(*retry_in_ms),
        _ => None,
    });
    assert!(retry <= edetail_sync::remote::MAX_RECONNECT_WAIT_MS);
    assert!(matches!(p.status().connection, ConnectionState::Reconnecting { .. }), "{:?}", p.status());
    // The rep goes on presenting meanwhile, and the slide saves state.
    rep_moves(&t, &call, "efficacy-primary");
    t.device.calls().state_save(&call, "arm", &json!("placebo")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    link.up();

    connected(&p);
    let s1 = a.on_slide("efficacy-primary");
    assert!(s1 > s0);
    let arm = a.until("state", |m| match m {
        HubMessage::Presenter { message: PresenterMessage::State { key, value } } if key == "arm" => Some(value.clone()),
        _ => None,
    });
    assert_eq!(arm, "placebo");
    // Control survived the reconnect: her navigation is performed.
    a.send(&navigate(NavigateTo::Next));
    a.on_slide("efficacy-subgroups");
    assert_eq!(current_slide(&t, &call), "efficacy-subgroups");
    // A doctor joining now lands on the call's slide with its state.
    let mut late = Attendee::join(&w, &p.join_url());
    let state = late.until("current", |m| match m {
        HubMessage::Current { slide, control, state, .. } => Some((slide.clone(), *control, state.clone())),
        _ => None,
    });
    assert_eq!((state.0.as_str(), state.1), ("efficacy-subgroups", Control::Hcp));
}

#[test]
fn the_waiting_room_and_a_renewed_link() {
    let w = world();
    let t = tablet(&w, "rep-1");
    let call = start_remote(&t, "hcp-1");
    let p = RemotePresenter::open(t.device.clone(), &t.config, &call, 30, true).unwrap();
    connected(&p);
    let mut a = Attendee::join(&w, &p.join_url());
    assert_eq!(a.next(), Some(HubMessage::Waiting));
    let (joined, _) = event(&p, "AttendeeJoined", |e| match e {
        RemoteEvent::AttendeeJoined { attendee, waiting } => Some((attendee.clone(), *waiting)),
        _ => None,
    });
    assert_eq!(joined, (a.id.clone(), true));
    p.admit(&a.id).unwrap();
    assert_eq!(a.next(), Some(HubMessage::Admitted));
    a.on_slide("intro");
    assert!(!p.status().attendees[0].waiting);

    let old = p.join_url();
    let new = p.relink().unwrap();
    assert_ne!(old, new);
    assert_eq!(p.join_url(), new);
    assert_eq!(get_status(&w, &old), 404, "the old link stops working");
    assert_eq!(get_status(&w, &new), 200);
    // Those who came through the old link are let go.
    a.until("ended", |m| matches!(m, HubMessage::Ended).then_some(()));
    let (left, _) = event(&p, "AttendeeLeft", |e| match e {
        RemoteEvent::AttendeeLeft { attendee } => Some(attendee.clone()),
        _ => None,
    });
    assert_eq!(left, a.id);
}

#[test]
fn end_tells_everyone_and_the_link_is_gone() {
    let w = world();
    let t = tablet(&w, "rep-1");
    let call = start_remote(&t, "hcp-1");
    assert!(matches!(RemotePresenter::open(t.device.clone(), &t.config, &call, 0, false), Err(Error::Invalid(_))));
    assert!(matches!(RemotePresenter::open(t.device.clone(), &t.config, &call, 241, false), Err(Error::Invalid(_))));
    assert!(matches!(RemotePresenter::open(t.device.clone(), &t.config, "no-such-call", 10, false), Err(Error::Core(_))));
    let p = RemotePresenter::open(t.device.clone(), &t.config, &call, 30, false).unwrap();
    connected(&p);
    let mut a = Attendee::join(&w, &p.join_url());
    a.on_slide("intro");

    p.end().unwrap();
    assert_eq!(a.close_code(), Some(CLOSE_ENDED));
    event(&p, "Ended", |e| (*e == RemoteEvent::Ended).then_some(()));
    assert_eq!(p.status().connection, ConnectionState::Ended);
    assert_eq!(get_status(&w, &p.join_url()), 410);
    p.end().expect("end is idempotent");
    assert!(matches!(p.set_control(Control::Hcp), Err(Error::SessionEnded)));
    assert!(matches!(p.relink(), Err(Error::SessionEnded)));
    assert_eq!(p.next_event(Duration::from_millis(200)), None, "Ended is told once");
    // The call goes on on the tablet.
    t.device.calls().navigate(&call, &NavAction::Next, NavSource::Swipe, false).unwrap();

    // A call that is not open cannot be shared.
    t.device.calls().end_call(&call).unwrap();
    assert!(matches!(
        RemotePresenter::open(t.device.clone(), &t.config, &call, 10, false),
        Err(Error::Core(edetail_core::Error::CallNotOpen(_)))
    ));
}

/// Ending the call on the tablet ends its remote session too (the app need not call `end()`):
/// the doctor is told and closed out, the link answers 410, the device forgets the session.
#[test]
fn ending_the_call_ends_its_remote_session() {
    let w = world();
    let t = tablet(&w, "rep-1");
    let call = start_remote(&t, "hcp-1");
    let p = RemotePresenter::open(t.device.clone(), &t.config, &call, 30, false).unwrap();
    connected(&p);
    let mut a = Attendee::join(&w, &p.join_url());
    a.on_slide("intro");
    t.device.calls().end_call(&call).unwrap();
    assert_eq!(a.close_code(), Some(CLOSE_ENDED));
    event(&p, "Ended", |e| (*e == RemoteEvent::Ended).then_some(()));
    assert_eq!(get_status(&w, &p.join_url()), 410);
    assert!(t.device.remote_sessions().list().unwrap().is_empty(), "the device forgot the session");
    p.end().expect("ending it again is harmless");
}

/// Over HTTPS (`serve_local_tls`, the test's CA as the only trust root) the presenter's socket is
/// `wss` through its own TLS (aws-lc-rs): it connects and sends the call's slide; trusting
/// another CA, the session is not even opened.
#[test]
fn the_presenter_presents_over_wss_trusting_the_hubs_ca() {
    use edetail_bundle::SecretKey;
    use edetail_bundle::testkit::SampleBundle;
    use edetail_core::{Device, DeviceConfig};
    use edetail_hub::testkit::TestCa;
    use edetail_hub::{Hub, HubConfig};
    use edetail_sync::StaticToken;

    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(&[7u8; 32]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let hub = Hub::open(HubConfig::local(dir.path().join("hub"), vec![key.public()])).unwrap();
    let (url, _task) = rt.block_on(edetail_hub::serve_local_tls(hub.clone(), ca.files.load().unwrap())).unwrap();
    let creds = hub.add_device("rep-1", "north").unwrap();
    let bundle = SampleBundle::new();
    let zip = bundle.zip(Some(&key));
    hub.publish_zip(&zip, &["north".to_string()]).unwrap();
    let device = Arc::new(
        Device::open(&dir.path().join("device"), DeviceConfig { trusted_keys: vec![key.public()], ..DeviceConfig::new("rep-1") }).unwrap(),
    );
    std::fs::write(dir.path().join("deck.zip"), &zip).unwrap();
    device.install_zip(&dir.path().join("deck.zip")).unwrap();
    let start =
        StartCall { hcp_id: None, channel: Channel::Remote, bundle_id: bundle.manifest.id.clone(), presentation_id: None, location: None };
    let call = device.start_call(start).unwrap().0;

    let mut config = SyncConfig::new(url.clone(), creds.device_id.clone(), Arc::new(StaticToken(creds.token.clone())));
    config.trust_roots = vec![TestCa::new().ca_der.clone()];
    let refused = RemotePresenter::open(device.clone(), &config, &call, 10, false).unwrap_err();
    assert!(matches!(refused, Error::Failed { class: edetail_sync::FailureClass::Network, .. }), "{refused:?}");

    config.trust_roots = vec![ca.ca_der.clone()];
    let p = RemotePresenter::open(device.clone(), &config, &call, 10, false).unwrap();
    assert!(p.join_url().starts_with(&format!("{url}/r/")));
    connected(&p);
    device.calls().navigate(&call, &NavAction::Next, NavSource::Swipe, false).unwrap();
    p.end().unwrap();
    event(&p, "Ended", |e| (*e == RemoteEvent::Ended).then_some(()));
}

/// Opens the tablet's directory again once every handle on the device is gone (a dropped
/// presenter's task lets go of its handle on its own threads): the app restarted.
fn reopen(w: &World, name: &str, clock: Arc<edetail_core::ManualClock>) -> Arc<edetail_core::Device> {
    use edetail_core::{Device, DeviceConfig};
    let deadline = Instant::now() + WAIT;
    loop {
        let config =
            DeviceConfig { trusted_keys: vec![w.key.public(), w.hub.plan_public_key()], clock: clock.clone(), ..DeviceConfig::new(name) };
        match Device::open(&w.dir.path().join(name), config) {
            Ok(d) => return Arc::new(d),
            Err(edetail_core::Error::Locked(_)) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("the device does not open again: {e}"),
        }
    }
}

/// The session outlives the presenter and the app: dropped, the attendee sees the presenter
/// reconnecting; opened again for the call, the same session (id, link) is presented and the
/// attendee, still connected, follows. After a restart the call is interrupted (crash
/// recovery): a new call with the same HCP on the same deck takes the session over (a new
/// link kept across it), the doctor's navigation recorded on the new call. Once ended, the
/// next open makes a new session.
#[test]
fn the_session_outlives_the_presenter_and_the_app() {
    let w = world();
    let t = tablet(&w, "rep-1");
    let call = start_remote(&t, "hcp-1");
    let p = RemotePresenter::open(t.device.clone(), &t.config, &call, 30, false).unwrap();
    let (session, link) = (p.session_id().to_string(), p.join_url());
    assert_eq!(
        t.device.remote_sessions().live_for(&call).unwrap().map(|s| (s.session_id, s.join_url)),
        Some((session.clone(), link.clone()))
    );
    connected(&p);
    let mut a = Attendee::join(&w, &link);
    a.on_slide("intro");

    // The app drops its presenter: the session is not ended, the doctor waits.
    drop(p);
    a.until("presenter_reconnecting", |m| matches!(m, HubMessage::PresenterReconnecting).then_some(()));
    let p = RemotePresenter::open(t.device.clone(), &t.config, &call, 10, true).unwrap();
    assert_eq!((p.session_id(), p.join_url()), (session.as_str(), link.clone()), "the same session, the same link");
    connected(&p);
    let (joined, _) = event(&p, "AttendeeJoined", |e| match e {
        RemoteEvent::AttendeeJoined { attendee, .. } => Some(attendee.clone()),
        _ => None,
    });
    assert_eq!(joined, a.id, "the presenter knows who is there");
    rep_moves(&t, &call, "burden");
    a.on_slide("burden");
    let link = p.relink().unwrap();
    assert_eq!(t.device.remote_sessions().live_for(&call).unwrap().map(|s| s.join_url), Some(link.clone()), "the new link kept");
    a.until("ended", |m| matches!(m, HubMessage::Ended).then_some(()));
    let mut a = Attendee::join(&w, &link);
    a.on_slide("burden");

    // The app dies: nothing ends the session. Reopened, the call is interrupted.
    let Tablet { device, engine, config, clock, .. } = t;
    drop((p, engine, device));
    a.until("presenter_reconnecting", |m| matches!(m, HubMessage::PresenterReconnecting).then_some(()));
    let device = reopen(&w, "rep-1", clock);
    assert_eq!(device.calls().get(&call).unwrap().status, "interrupted");
    assert!(matches!(
        RemotePresenter::open(device.clone(), &config, &call, 30, false),
        Err(Error::Core(edetail_core::Error::CallNotOpen(_)))
    ));
    let start = |hcp: &str| {
        let s = StartCall {
            hcp_id: Some(hcp.into()),
            channel: Channel::Remote,
            bundle_id: CARDIOZEN.into(),
            presentation_id: None,
            location: None,
        };
        device.start_call(s).unwrap().0
    };
    // Another doctor's call does not take it.
    let other = start("hcp-2");
    let q = RemotePresenter::open(device.clone(), &config, &other, 5, false).unwrap();
    assert_ne!(q.session_id(), session);
    q.end().unwrap();
    device.calls().end_call(&other).unwrap();

    // The rep calls the doctor again: the new call takes the session over.
    let again = start("hcp-1");
    let p = RemotePresenter::open(device.clone(), &config, &again, 30, false).unwrap();
    assert_eq!((p.session_id(), p.join_url()), (session.as_str(), link.clone()));
    assert!(p.recorded());
    connected(&p);
    a.on_slide("intro");
    hand_over(&p, &mut a, Control::Hcp);
    a.send(&navigate(NavigateTo::Next));
    a.on_slide("burden");
    event(&p, "Navigated", |e| matches!(e, RemoteEvent::Navigated { .. }).then_some(()));
    let enters: Vec<Value> =
        device.outbox().for_call(&again).unwrap().into_iter().filter(|e| e.kind == "slide_enter").map(|e| e.payload).collect();
    assert_eq!((enters.last().unwrap()["source"].as_str(), &enters.last().unwrap()["hcp_led"]), (Some("remote"), &json!(true)));
    let stored = device.remote_sessions().list().unwrap();
    assert_eq!(
        stored.iter().map(|s| (s.session_id.as_str(), s.call_id.as_str())).collect::<Vec<_>>(),
        [(session.as_str(), again.as_str())]
    );

    // Ended, it is forgotten: the next open makes a new session.
    p.end().unwrap();
    assert_eq!(device.remote_sessions().live_for(&again).unwrap(), None);
    let p2 = RemotePresenter::open(device.clone(), &config, &again, 30, false).unwrap();
    assert_ne!(p2.session_id(), session);
    assert_ne!(p2.join_url(), link);
    connected(&p2);
    p2.end().unwrap();
}

/// A remembered session the hub does not know (404) is forgotten and a new one opened; one
/// whose recording no longer matches the call is ended (the doctor was told otherwise) and a
/// new one opened; a second open replaces the running presenter; a session ended at the hub
/// by someone else is forgotten by the presenter told `ended`.
#[test]
fn a_remembered_session_that_is_gone_or_no_longer_matches_is_replaced() {
    use edetail_core::RemoteSessionRecord;

    let w = world();
    let t = tablet(&w, "rep-1");
    let call = start_remote(&t, "hcp-1");
    let bundle_version = t.device.content().active(CARDIOZEN).unwrap().version;
    let unknown = RemoteSessionRecord {
        session_id: "0f6b1e9e-0000-4000-8000-000000000000".into(),
        call_id: call.clone(),
        bundle_id: CARDIOZEN.into(),
        bundle_version,
        join_url: format!("{}/r/{}", w.url, "0".repeat(64)),
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(30),
        recorded: true,
    };
    t.device.remote_sessions().remember(&unknown).unwrap();
    let p = RemotePresenter::open(t.device.clone(), &t.config, &call, 30, false).unwrap();
    assert_ne!(p.session_id(), unknown.session_id, "404: a new session");
    connected(&p);
    let stored = t.device.remote_sessions().list().unwrap();
    assert_eq!(stored.iter().map(|s| s.session_id.as_str()).collect::<Vec<_>>(), [p.session_id()]);

    // The doctor was told she is not recorded (say): that session ends, a new one is opened.
    let mut a = Attendee::join(&w, &p.join_url());
    a.on_slide("intro");
    let told_otherwise = RemoteSessionRecord { recorded: false, ..stored[0].clone() };
    t.device.remote_sessions().remember(&told_otherwise).unwrap();
    let q = RemotePresenter::open(t.device.clone(), &t.config, &call, 30, false).unwrap();
    assert_ne!(q.session_id(), p.session_id());
    assert_eq!(a.close_code(), Some(CLOSE_ENDED));
    event(&p, "Ended", |e| (*e == RemoteEvent::Ended).then_some(()));
    assert_eq!(get_status(&w, &p.join_url()), 410);
    drop(p);

    // A second open while the first presenter runs takes the session over (not ended: still
    // remembered).
    connected(&q);
    let sid = q.session_id().to_string();
    let r = RemotePresenter::open(t.device.clone(), &t.config, &call, 30, false).unwrap();
    assert_eq!(r.session_id(), sid);
    event(&q, "Replaced", |e| (*e == RemoteEvent::Replaced).then_some(()));
    connected(&r);
    assert_eq!(t.device.remote_sessions().live_for(&call).unwrap().map(|s| s.session_id), Some(sid.clone()), "replaced is not ended");

    // Ended at the hub by someone else (another copy of the app, say): the presenter is told
    // `ended` and forgets it.
    let token = w.rt.block_on(t.config.token_provider.token()).unwrap();
    let url = format!("{}/v1/remote-sessions/{sid}/end", w.url);
    let status = w.rt.block_on(async move { reqwest::Client::new().post(url).bearer_auth(token).send().await.unwrap().status().as_u16() });
    assert_eq!(status, 200);
    event(&r, "Ended", |e| (*e == RemoteEvent::Ended).then_some(()));
    let deadline = Instant::now() + WAIT;
    while !t.device.remote_sessions().list().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the ended session is still remembered");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = RemotePresenter::open(t.device.clone(), &t.config, &call, 30, false).unwrap();
    assert_ne!(s.session_id(), sid);
    s.end().unwrap();
    assert_eq!(t.device.remote_sessions().list().unwrap(), []);
}
