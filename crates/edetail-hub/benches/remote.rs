//! Remote detailing latency (issue 17, ADR 0023): a slide change sent by the presenter until
//! each of 20 attendees has received it, over loopback through a real hub, beside a bare
//! WebSocket echo through the same hub (same server, router and middleware: the testkit's
//! `/testkit/ws-echo`) measured in the same run, rounds interleaved so both see the same
//! machine. The echo is measured twice: 20 sockets echoing at once (as many messages to as
//! many sockets as a slide change to 20 attendees: the baseline of the target) and one socket
//! alone. Reports median and p99 of each and the p99 ratios (target: within 2x of the echo).
//!
//! `EDETAIL_REMOTE_ROUNDS` slide changes (default 400); `EDETAIL_REMOTE_BACKEND=postgresql`
//! runs two hub processes on one PostgreSQL database (the cluster `scripts/services` starts),
//! the presenter on the first and half the attendees on each, and reports the same-process and
//! the cross-process attendees apart (the latter through LISTEN/NOTIFY).
//! Run: `cargo bench -p edetail-hub --features testkit --bench remote`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_hub::blobs::BlobStore;
use edetail_hub::blobs::s3::S3Blobs;
use edetail_hub::postgres::PgStore;
use edetail_hub::testkit::{TestDatabase, fresh_bucket};
use edetail_hub::{Hub, HubConfig, serve_local};
use edetail_protocol::remote::{HubMessage, MAX_ATTENDEES, OpenRemoteSession, PresenterMessage, RemoteSessionOpened};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

const SEED: [u8; 32] = [7; 32];

async fn connect(url: &str, bearer: Option<&str>) -> Ws {
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = bearer {
        req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let addr = req.uri().authority().unwrap().as_str().to_string();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tokio_tungstenite::client_async(req, tcp).await.unwrap().0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(name: &str, mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let (p50, p99) = (percentile(&v, 0.5), percentile(&v, 0.99));
    println!("  {name:<44} median {:>6.3} ms   p99 {:>6.3} ms   ({} samples)", ms(p50), ms(p99), v.len());
    (p50, p99)
}

fn main() {
    let rounds: usize = std::env::var("EDETAIL_REMOTE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let postgres = std::env::var("EDETAIL_REMOTE_BACKEND").is_ok_and(|b| b == "postgresql");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run(rounds, postgres));
}

async fn run(rounds: usize, postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(&SEED);
    let mut _db = None;
    let mut urls = Vec::new();
    let mut hubs = Vec::new();
    if postgres {
        let db = TestDatabase::new();
        let bucket = fresh_bucket();
        for i in 0..2 {
            let store = PgStore::connect(&db.url, 8).unwrap();
            let blobs = BlobStore::new(&dir.path().join(format!("hub{i}")), Arc::new(S3Blobs::new(bucket.clone()).unwrap())).unwrap();
            let hub = Hub::with_store(Arc::new(store), blobs, vec![key.public()], edetail_hub::AnalyzerConfig::generated().unwrap());
            hub.use_postgres_relay(&db.url).unwrap();
            hubs.push(hub);
        }
        _db = Some(db);
    } else {
        hubs.push(Hub::open(HubConfig::local(dir.path().join("hub"), vec![key.public()])).unwrap());
    }
    for hub in &hubs {
        urls.push(serve_local(hub.clone()).await.unwrap().0);
    }
    let hub = hubs[0].clone();
    let dev = tokio::task::spawn_blocking(move || {
        hub.publish_zip(&SampleBundle::new().zip(Some(&SecretKey::from_seed(&SEED))), &["north".to_string()]).unwrap();
        hub.add_device("rep-1", "north").unwrap()
    })
    .await
    .unwrap();
    let ws_url = |i: usize, path: &str| format!("{}{path}", urls[i].replacen("http://", "ws://", 1));

    let open = OpenRemoteSession {
        call_id: "bench-call".into(),
        bundle_id: "com.example.sample".into(),
        bundle_version: 1,
        minutes: 60,
        waiting_room: false,
        recorded: true,
    };
    let s: RemoteSessionOpened = reqwest::Client::new()
        .post(format!("{}/v1/remote-sessions", urls[0]))
        .bearer_auth(&dev.token)
        .json(&open)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut presenter = connect(&ws_url(0, &format!("/v1/remote-sessions/{}/present", s.session_id)), Some(&dev.token)).await;
    let slides = ["intro", "efficacy"];
    let mut seq = 0u64;
    let move_to = async |p: &mut Ws, seq: &mut u64| {
        *seq += 1;
        let m = PresenterMessage::Slide { slide: slides[(*seq % 2) as usize].into(), presentation: "main".into(), seq: *seq };
        let t = Instant::now();
        p.send(Message::Text(serde_json::to_string(&m).unwrap().into())).await.unwrap();
        t
    };
    move_to(&mut presenter, &mut seq).await;

    // Attendees: each reports (its process, seq, receipt time) for every `current`.
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, u64, Instant)>();
    for i in 0..MAX_ATTENDEES {
        let node = if postgres { i % 2 } else { 0 };
        let mut a = connect(&ws_url(node, &format!("{}/ws", s.join_path)), None).await;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = a.next().await {
                if let Message::Text(t) = m
                    && let Ok(HubMessage::Current { seq, .. }) = serde_json::from_str(&t)
                    && tx.send((node, seq, Instant::now())).is_err()
                {
                    break;
                }
            }
        });
    }
    // Each attendee got the first position on joining.
    for _ in 0..MAX_ATTENDEES {
        rx.recv().await.unwrap();
    }
    let mut echo = connect(&ws_url(0, "/testkit/ws-echo"), None).await;
    // Twenty echo sockets: their writers here, their readers report (round, receipt time).
    let (etx, mut erx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let mut sinks = Vec::new();
    for _ in 0..MAX_ATTENDEES {
        let (sink, mut stream) = connect(&ws_url(0, "/testkit/ws-echo"), None).await.split();
        sinks.push(sink);
        let etx = etx.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Text(t) = m
                    && etx.send((t.as_str().parse().unwrap_or(usize::MAX), Instant::now())).is_err()
                {
                    break;
                }
            }
        });
    }

    let warmup = 20;
    let (mut echo_rtt, mut echo20, mut same, mut cross) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..warmup + rounds {
        // The baseline: twenty bare echoes sent at once through the same hub.
        let t = Instant::now();
        for sink in &mut sinks {
            sink.send(Message::Text(round.to_string().into())).await.unwrap();
        }
        let mut got = 0;
        while got < MAX_ATTENDEES {
            let (r, at) = tokio::time::timeout(Duration::from_secs(10), erx.recv()).await.expect("echoes within 10 s").unwrap();
            if r == round {
                got += 1;
                if round >= warmup {
                    echo20.push(at - t);
                }
            }
        }
        // The baseline: one bare echo round trip through the same hub.
        let t = Instant::now();
        echo.send(Message::Text(format!("round {round}").into())).await.unwrap();
        loop {
            match echo.next().await {
                Some(Ok(Message::Text(_))) => break,
                Some(Ok(_)) => {}
                other => panic!("echo failed: {other:?}"),
            }
        }
        let rtt = t.elapsed();
        // A slide change, until every attendee has it.
        let sent = move_to(&mut presenter, &mut seq).await;
        let mut got = 0;
        while got < MAX_ATTENDEES {
            let (node, s, at) =
                tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("every attendee within 10 s").unwrap();
            if s != seq {
                continue;
            }
            got += 1;
            if round >= warmup {
                if node == 0 { same.push(at - sent) } else { cross.push(at - sent) }
            }
        }
        if round >= warmup {
            echo_rtt.push(rtt);
        }
    }
    let backend = if postgres { "PostgreSQL, two hub processes" } else { "SQLite, one hub process" };
    println!("remote detailing over loopback ({backend}; {MAX_ATTENDEES} attendees, {rounds} slide changes, 2 runtime workers)");
    let (_, echo_p99) = report("bare echo, 20 sockets at once (send -> back)", echo20);
    let (_, one_p99) = report("bare echo, one socket (round trip)", echo_rtt);
    let (_, p99) = report("slide change -> attendee receipt", same);
    println!(
        "  p99 ratio to the 20-socket echo: {:.2} (target <= 2.0); to the one-socket echo: {:.2}",
        ms(p99) / ms(echo_p99),
        ms(p99) / ms(one_p99)
    );
    if !cross.is_empty() {
        let (_, cross_p99) = report("  attendees on the other process (NOTIFY)", cross);
        println!("  cross-process p99 ratio to the 20-socket echo: {:.2}", ms(cross_p99) / ms(echo_p99));
    }
}
