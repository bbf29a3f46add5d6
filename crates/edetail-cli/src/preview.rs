//! `edetail preview BUNDLE.zip`: a local web shell for content teams and QA.
//!
//! It does what a tablet app does, in a desktop browser: opens (creates) a device data
//! directory that accepts unsigned bundles, installs the bundle, starts a call on channel
//! `preview`, and serves
//!
//! - `/`: the shell (top bar with title, version, signature badge and validity; the slide in a
//!   1024x768 iframe scaled to fit; prev/next, arrow keys and swipe; a slide overview);
//! - `/<bundle-id>/<path>` and `/_edetail/*.js`: assets through the core's resolver, with Range,
//!   ETag and streaming (large media never sits in memory). The entry pages of slides whose
//!   manifest `bridge` is a vendor's (`veeva`, `agnitio`, `oce`) get the runtime's scripts
//!   injected right after `<head>`, before any content script, as the native shells do
//!   (ADR 0013);
//! - `POST /_edetail/bridge`: the slide bridge (docs/bridge-protocol.md), the reply is the body;
//! - `GET /_edetail/preview/unsupported`: the `unsupported_api` events of the preview call, for
//!   the shell's "Not supported by edetail" panel;
//! - `/_preview/...`: the shell's small JSON API (deck, state, nav, visibility).
//!
//! Every interaction is recorded exactly as on a device; `edetail device --data DIR events`
//! shows the events once the preview has stopped. Ctrl-C / SIGTERM ends the call cleanly.
//! Nothing personal is logged: requests are reported by path and status only.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use edetail_bundle::reader::check_path;
use edetail_bundle::{Bridge, Manifest, ReadOptions, SignatureStatus};
use edetail_core::assets::Asset;
use edetail_core::assets::percent_decode;
use edetail_core::{Channel, Device, DeviceConfig, NavAction, NavSource, StartCall};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::output::Output;

const SHELL_HTML: &str = include_str!("preview/shell.html");
const SHELL_JS: &str = include_str!("preview/shell.js");
const SHELL_CSS: &str = include_str!("preview/shell.css");

/// Bridge messages larger than this are refused with 413 (the protocol's limit).
const MAX_BRIDGE_BYTES: usize = edetail_core::bridge::MAX_MESSAGE_BYTES;
/// An oversized bridge body is read and discarded up to this size before the 413, so the
/// connection closes cleanly and the client sees the answer; beyond it the connection is dropped.
const MAX_BRIDGE_DRAIN: usize = 8 * 1024 * 1024;
/// Chunk size when streaming assets.
const CHUNK: usize = 64 * 1024;
/// HTML pages that get scripts injected are read whole; larger ones are served untouched.
const MAX_INJECT_BYTES: u64 = 8 * 1024 * 1024;
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long shutdown waits for open connections before ending the call anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
const REP_ID: &str = "preview-rep";
const EDETAIL_SCRIPT: &str = "<script src=\"/_edetail/edetail.js\"></script>";
/// The page-side container emulation (ADR 0013), injected when the core serves it.
const CONTAINERS_PATH: &str = "/_edetail/containers.js";
const CONTAINERS_SCRIPT: &str = "<script src=\"/_edetail/containers.js\"></script>";
const VEEVA_SCRIPT: &str = "<script src=\"/_edetail/veeva-clm.js\"></script>";

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The bundle zip to preview (unsigned bundles are accepted).
    bundle: PathBuf,
    /// Device data directory to use (created if missing). Default: a new temporary directory,
    /// kept after the preview so its recorded events can be inspected.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on. Keep the default unless others must reach this preview: anyone
    /// who can connect can record events in the data directory.
    #[arg(long, default_value = "127.0.0.1")]
    listen: IpAddr,
    /// HCP id the preview call is recorded for (an id, never a name).
    #[arg(long, default_value = "preview-hcp")]
    hcp: String,
    /// Open the shell in the default browser.
    #[arg(long)]
    open: bool,
}

/// What the handlers share.
#[derive(Debug)]
struct App {
    device: Device,
    call_id: String,
    bundle_id: String,
    /// Static description of the deck for the shell (`GET /_preview/deck`).
    deck: Value,
    /// Decoded URL paths (`/<bundle>/<entry>`) of slides whose bridge is a vendor's, with the
    /// scripts injected into each.
    vendor_pages: HashMap<String, String>,
}

/// The runtime scripts for an entry page of slides with these bridges: `edetail.js`, then the
/// container emulation (when the core has it), then the Veeva stand-in for Veeva slides. `None`
/// when every slide of the page uses the edetail bridge.
fn runtime_scripts(bridges: &[Bridge], containers: bool) -> Option<String> {
    if bridges.iter().all(|b| *b == Bridge::Edetail) {
        return None;
    }
    let mut s = String::from(EDETAIL_SCRIPT);
    if containers {
        s.push_str(CONTAINERS_SCRIPT);
    }
    if bridges.contains(&Bridge::Veeva) {
        s.push_str(VEEVA_SCRIPT);
    }
    Some(s)
}

/// Entry page (decoded URL path) -> scripts, for the slides of a manifest. Agnitio slides share
/// one entry page; the scripts follow every bridge that page serves.
fn vendor_pages(m: &Manifest, containers: bool) -> HashMap<String, String> {
    let mut by_page: HashMap<String, Vec<Bridge>> = HashMap::new();
    for s in &m.slides {
        by_page.entry(format!("/{}/{}", m.id, s.entry.as_str())).or_default().push(s.bridge);
        // A vendor slide's further pages in its own folder (an OCE sequence's detail page) run
        // the same library, so they get the same scripts; not for an entry at the bundle root.
        if s.bridge != Bridge::Edetail
            && let Some((folder, _)) = s.entry.as_str().rsplit_once('/')
        {
            for page in m.files.keys().filter(|p| p.as_str().starts_with(&format!("{folder}/")) && *p != &s.entry) {
                if matches!(page.extension().as_deref(), Some("html" | "htm")) {
                    by_page.entry(format!("/{}/{}", m.id, page.as_str())).or_default().push(s.bridge);
                }
            }
        }
    }
    by_page.into_iter().filter_map(|(page, bridges)| runtime_scripts(&bridges, containers).map(|s| (page, s))).collect()
}

/// The URL the shell loads for a slide: its entry page plus its route (`?path=…` / `#…`), as
/// the core's navigation answers.
fn slide_href(bundle_id: &str, s: &edetail_bundle::Slide) -> String {
    let mut url = edetail_core::assets::asset_url(bundle_id, s.entry.as_str());
    if let Some(route) = s.route.as_deref().filter(|r| edetail_bundle::Slide::route_is_valid(r)) {
        url.push_str(route);
    }
    url
}

pub fn run(args: PreviewArgs, out: &Output) -> anyhow::Result<ExitCode> {
    // 1. The bundle, checked completely so every problem is listed at once.
    let report = check_path(&args.bundle, &ReadOptions::allow_unsigned(), &mut |_| {})
        .with_context(|| format!("cannot read bundle {}", args.bundle.display()))?;
    if !report.is_ok() {
        let list: Vec<String> = report.errors().map(|p| format!("  - {p}")).collect();
        let noun = if list.len() == 1 { "problem" } else { "problems" };
        bail!("bundle {} rejected ({} {noun}):\n{}", args.bundle.display(), list.len(), list.join("\n"));
    }
    let manifest = report.manifest.clone().context("bundle has no readable manifest")?;

    // 2. The listening socket, before anything is recorded: a busy port is named up front.
    let addr = SocketAddr::new(args.listen, args.port);
    let listener = std::net::TcpListener::bind(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            anyhow::anyhow!(
                "port {} on {} is already in use: choose another with --port, or --port 0 for a free one",
                args.port,
                args.listen
            )
        }
        std::io::ErrorKind::AddrNotAvailable => anyhow::anyhow!("cannot listen on {}: no such local address (--listen)", args.listen),
        std::io::ErrorKind::PermissionDenied => {
            anyhow::anyhow!("not allowed to listen on port {} (ports below 1024 need privileges)", args.port)
        }
        _ => anyhow::Error::new(e).context(format!("cannot listen on {addr}")),
    })?;
    listener.set_nonblocking(true).context("configuring the listening socket")?;
    let local = listener.local_addr().context("reading the listening address")?;

    // 3. The device: data directory, install, call.
    let data_dir = match &args.data {
        Some(d) => d.clone(),
        None => tempfile::Builder::new().prefix("edetail-preview-").tempdir().context("creating a temporary data directory")?.keep(),
    };
    let config = DeviceConfig { allow_unsigned: true, ..DeviceConfig::new(REP_ID) };
    let device = Device::open(&data_dir, config).with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
    let installed = device.install_zip(&args.bundle).with_context(|| format!("cannot install {}", args.bundle.display()))?;
    if !installed.activated {
        // Same id and version already there: make sure it is the same content, or the preview
        // would silently show the old files.
        let active = device.content().active(&manifest.id)?;
        if active.manifest.files != manifest.files {
            bail!(
                "{} version {} is already installed in {} with different files: raise the version, or preview with a fresh --data",
                manifest.id,
                manifest.version,
                data_dir.display()
            );
        }
    }
    let (call_id, first) = device
        .start_call(StartCall {
            hcp_id: Some(args.hcp.clone()),
            channel: Channel::Preview,
            bundle_id: manifest.id.clone(),
            presentation_id: None,
            location: None,
        })
        .with_context(|| format!("cannot start a preview call on {}", manifest.id))?;

    // Today's core may not serve the container emulation yet: inject only what resolves.
    let containers = device.assets().resolve_url_path(CONTAINERS_PATH, None).is_ok();
    let app = Arc::new(App {
        deck: deck_json(&manifest, &report.signature, &call_id),
        vendor_pages: vendor_pages(&manifest, containers),
        bundle_id: manifest.id.clone(),
        call_id,
        device,
    });

    let host = if local.ip().is_unspecified() { "127.0.0.1".to_string() } else { fmt_host(local.ip()) };
    let url = format!("http://{host}:{}/", local.port());
    // First line of stdout, always: scripts and tests parse it.
    say(&format!("preview: {url}\n"));
    let signature = signature_label(&report.signature);
    if out.json {
        let v = json!({"url": url, "data_dir": data_dir, "bundle_id": manifest.id, "version": manifest.version,
                       "signature": signature, "first_slide": first.slide, "call_id": app.call_id});
        say(&format!("{v}\n"));
    } else {
        say(&format!(
            "  bundle    {} v{} ({})\n  data dir  {}{}\n  first     {}\n  Ctrl-C ends the call and stops the preview.\n",
            manifest.id,
            manifest.version,
            signature,
            data_dir.display(),
            if args.data.is_none() { " (temporary, kept)" } else { "" },
            first.slide
        ));
    }
    if args.open {
        open_browser(&url);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let served = runtime.block_on(serve(app.clone(), listener));
    // End the call whatever happened to the server, so the recording is complete.
    let ended = app.device.calls().end_call(&app.call_id);
    runtime.shutdown_timeout(Duration::from_secs(1));
    served?;
    ended.context("ending the preview call")?;
    note(&format!("call ended; events are in {}", data_dir.display()));
    Ok(ExitCode::SUCCESS)
}

fn fmt_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Writes to stdout and flushes, ignoring a closed pipe: whoever started the preview may stop
/// reading after the URL line, and that must not stop the server.
fn say(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// Progress and problems on stderr (paths and statuses only, never personal data); a closed
/// stderr is ignored too.
fn note(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "preview: {text}");
}

fn open_browser(url: &str) {
    let cmd = if cfg!(target_os = "macos") {
        std::process::Command::new("open").arg(url).spawn()
    } else if cfg!(windows) {
        std::process::Command::new("cmd").args(["/C", "start", "", url]).spawn()
    } else {
        std::process::Command::new("xdg-open").arg(url).spawn()
    };
    if let Err(e) = cmd {
        note(&format!("could not open a browser ({e}); open {url} yourself"));
    }
}

fn signature_label(s: &SignatureStatus) -> String {
    match s {
        SignatureStatus::Unsigned => "unsigned".into(),
        SignatureStatus::Verified { key_id } => format!("signed by {key_id}"),
        SignatureStatus::NotChecked { key_id: Some(k) } => format!("signed by {k}, not verified"),
        SignatureStatus::NotChecked { key_id: None } => "signed, not verified".into(),
        SignatureStatus::Invalid => "invalid signature".into(),
    }
}

/// What the shell needs to draw itself: titles, validity, signature, slides and thumbnails.
fn deck_json(m: &Manifest, sig: &SignatureStatus, call_id: &str) -> Value {
    let url = |p: &str| format!("/{}/{}", m.id, p);
    let presentation_of = |slide: &str| m.presentations.iter().find(|p| p.slides.iter().any(|s| s == slide)).map(|p| p.id.clone());
    json!({
        "bundle_id": m.id,
        "title": m.title,
        "product": m.product,
        "version": m.version,
        "version_label": m.version_label,
        "approval_code": m.approval_code,
        "valid_from": m.valid_from,
        "valid_until": m.valid_until,
        "signature": {
            "status": match sig {
                SignatureStatus::Unsigned => "unsigned",
                SignatureStatus::Verified { .. } => "verified",
                SignatureStatus::NotChecked { .. } => "not_checked",
                SignatureStatus::Invalid => "invalid",
            },
            "label": signature_label(sig),
        },
        "call": {"id": call_id, "channel": "preview"},
        "presentations": m.presentations.iter().map(|p| json!({
            "id": p.id, "title": p.title, "hidden": p.hidden, "slides": p.slides,
        })).collect::<Vec<_>>(),
        "slides": m.slides.iter().map(|s| json!({
            "id": s.id,
            "title": s.title,
            "url": url(s.entry.as_str()),
            "thumbnail": s.thumbnail.as_ref().map(|t| url(t.as_str())),
            "hidden": s.hidden,
            "presentation": presentation_of(&s.id),
            "route": s.route,
            "href": slide_href(&m.id, s),
            "key_message": s.key_message,
            "disabled_gestures": s.disabled_gestures,
            "bridge": s.bridge,
        })).collect::<Vec<_>>(),
    })
}

async fn serve(app: Arc<App>, listener: std::net::TcpListener) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener).context("registering the listening socket")?;
    let router = Router::new()
        .route("/", get(shell_page))
        .route("/_preview/shell.js", get(|| async { static_file("text/javascript; charset=utf-8", SHELL_JS) }))
        .route("/_preview/shell.css", get(|| async { static_file("text/css; charset=utf-8", SHELL_CSS) }))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/_preview/deck", get(deck))
        .route("/_preview/state", get(state))
        .route("/_preview/nav", post(nav))
        .route("/_preview/visibility", post(visibility))
        .route("/_edetail/bridge", post(bridge))
        .route("/_edetail/preview/unsupported", get(unsupported))
        .fallback(asset)
        .with_state(app.clone());

    let heartbeat = tokio::spawn(heartbeat_loop(app.clone()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    crate::output::shutdown_signal().await;
    note("stopping");
    let _ = stop_tx.send(());
    heartbeat.abort();
    // Browsers keep connections open; do not wait for them forever.
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) | Err(_) => Ok(()),
        Ok(Ok(Err(e))) => Err(anyhow::Error::new(e).context("the preview server failed")),
        Ok(Err(e)) => Err(anyhow::anyhow!("the preview server task failed: {e}")),
    }
}

async fn heartbeat_loop(app: Arc<App>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let a = app.clone();
        match tokio::task::spawn_blocking(move || a.device.calls().heartbeat()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => note(&format!("heartbeat failed: {e}")),
            Err(e) => note(&format!("heartbeat task failed: {e}")),
        }
    }
}

// ---- responses -------------------------------------------------------------------------

fn static_file(mime: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], v.to_string()).into_response()
}

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, &json!({"ok": false, "error": message.into()}))
}

/// Runs device work off the async threads.
async fn blocking<T: Send + 'static>(app: &Arc<App>, f: impl FnOnce(&App) -> T + Send + 'static) -> Result<T, Response> {
    let a = app.clone();
    tokio::task::spawn_blocking(move || f(&a))
        .await
        .map_err(|e| json_error(StatusCode::INTERNAL_SERVER_ERROR, format!("internal task failed: {e}")))
}

/// Browsers attach `Origin` to cross-origin POSTs: refuse those, so a web page elsewhere cannot
/// record into this preview. Requests without `Origin` (curl, tests) are accepted.
fn cross_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return false };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin = origin.to_str().unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    host.is_empty() || !origin_host.eq_ignore_ascii_case(host)
}

// ---- the shell and its API ---------------------------------------------------------------

async fn shell_page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], SHELL_HTML).into_response()
}

async fn deck(State(app): State<Arc<App>>) -> Response {
    json_response(StatusCode::OK, &app.deck)
}

fn state_json(app: &App) -> Result<Value, edetail_core::Error> {
    let c = app.device.calls().get(&app.call_id)?;
    let url = match (&c.slide_id, app.device.content().active(&app.bundle_id)) {
        (Some(s), Ok(active)) => active.manifest.slide(s).map(|sl| slide_href(&app.bundle_id, sl)),
        _ => None,
    };
    Ok(json!({
        "call": {"id": c.id, "status": c.status},
        "slide": c.slide_id,
        "presentation": c.presentation_id,
        "url": url,
    }))
}

async fn state(State(app): State<Arc<App>>) -> Response {
    match blocking(&app, state_json).await {
        Ok(Ok(v)) => json_response(StatusCode::OK, &v),
        Ok(Err(e)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

/// `POST /_preview/nav {"action": "next" | "prev" | "goto", "slide"?, "presentation"?}`:
/// next/prev are recorded as swipes, goto as an overview pick.
async fn nav(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if cross_origin(&headers) {
        return json_error(StatusCode::FORBIDDEN, "cross-origin request refused");
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "body must be JSON: {\"action\": \"next\" | \"prev\" | \"goto\", \"slide\"?}");
    };
    let text = |k: &str| req.get(k).and_then(Value::as_str).map(str::to_string);
    let (action, source) = match req.get("action").and_then(Value::as_str) {
        Some("next") => (NavAction::Next, NavSource::Swipe),
        Some("prev") | Some("previous") => (NavAction::Previous, NavSource::Swipe),
        Some("goto") => {
            (NavAction::Goto { slide: text("slide"), presentation: text("presentation"), key_message: None }, NavSource::Overview)
        }
        _ => return json_error(StatusCode::BAD_REQUEST, "\"action\" must be next, prev or goto"),
    };
    let stays_possible = !matches!(action, NavAction::Goto { .. });
    let result = blocking(&app, move |a| {
        let before = a.device.calls().get(&a.call_id).ok().and_then(|c| c.slide_id);
        a.device.calls().navigate(&a.call_id, &action, source, false).map(|t| (before, t))
    })
    .await;
    match result {
        Ok(Ok((before, t))) => {
            // "next" on the last slide / "prev" on the first: nothing moved, nothing to load (ADR 0013).
            let moved = !(stays_possible && before.as_deref() == Some(t.slide.as_str()));
            json_response(
                StatusCode::OK,
                &json!({"ok": true, "moved": moved, "slide": t.slide, "presentation": t.presentation, "url": t.url}),
            )
        }
        Ok(Err(e @ edetail_core::Error::UnknownSlide { .. })) => json_error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e @ edetail_core::Error::Invalid(_))) => json_error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

/// `POST /_preview/visibility {"visible": bool}`: the shell's page visibility, as app
/// background/foreground (dwell pauses while hidden).
async fn visibility(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if cross_origin(&headers) {
        return json_error(StatusCode::FORBIDDEN, "cross-origin request refused");
    }
    let Some(visible) = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("visible").and_then(Value::as_bool)) else {
        return json_error(StatusCode::BAD_REQUEST, "body must be {\"visible\": true | false}");
    };
    match blocking(&app, move |a| if visible { a.device.calls().app_foreground() } else { a.device.calls().app_background() }).await {
        Ok(Ok(())) => json_response(StatusCode::OK, &json!({"ok": true})),
        Ok(Err(e)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

/// `GET /_edetail/preview/unsupported`: the vendor calls edetail could not honour in this call
/// (its `unsupported_api` events, ADR 0013), each event and a summary counted by label
/// (`veeva queryObject(Address_vod__c)`), for the shell's panel.
async fn unsupported(State(app): State<Arc<App>>) -> Response {
    match blocking(&app, |a| a.device.outbox().for_call(&a.call_id)).await {
        Ok(Ok(events)) => json_response(StatusCode::OK, &unsupported_json(&events)),
        Ok(Err(e)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

fn unsupported_json(events: &[edetail_core::outbox::Event]) -> Value {
    let mut list = Vec::new();
    let mut summary: Vec<(String, Value)> = Vec::new();
    for e in events.iter().filter(|e| e.kind == "unsupported_api") {
        let p = &e.payload;
        let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (vendor, api) = (text("vendor"), text("api"));
        let label = unsupported_label(&vendor, &api, p.get("args"));
        list.push(json!({"seq": e.seq, "uuid": e.uuid, "vendor": vendor, "api": api, "slide": p.get("slide"), "args": p.get("args"), "label": label}));
        match summary.iter_mut().find(|(l, _)| *l == label) {
            Some((_, v)) => v["count"] = json!(v["count"].as_u64().unwrap_or(0) + 1),
            None => summary.push((label.clone(), json!({"label": label, "vendor": vendor, "api": api, "count": 1}))),
        }
    }
    json!({"events": list, "summary": summary.into_iter().map(|(_, v)| v).collect::<Vec<_>>()})
}

/// `veeva queryObject(Address_vod__c)`: vendor, api and, when the arguments start with a short
/// name (an object, a slide), that name.
fn unsupported_label(vendor: &str, api: &str, args: Option<&Value>) -> String {
    let first = match args {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(a)) => a.first().and_then(|v| v.as_str().map(str::to_string)),
        Some(Value::Object(o)) => ["object", "name", "request"].iter().find_map(|k| o.get(*k).and_then(Value::as_str).map(str::to_string)),
        _ => None,
    };
    // A raw request (`queryObject(Address_vod__c),fields(...)`): its first parenthesised word.
    let first = first.map(|f| match (f.find('('), f.find(')')) {
        (Some(i), Some(j)) if i < j => f[i + 1..j].to_string(),
        _ => f,
    });
    let name = match first {
        Some(f) if !f.is_empty() && f.len() <= 64 && f.chars().all(|c| c.is_alphanumeric() || "_.-: ".contains(c)) => format!("({f})"),
        _ => String::new(),
    };
    format!("{vendor} {api}{name}").trim().to_string()
}

// ---- the slide bridge --------------------------------------------------------------------

fn bridge_error(code: &str, message: &str) -> Value {
    json!({"v": edetail_core::bridge::VERSION, "id": null, "ok": false, "error": {"code": code, "message": message}})
}

async fn bridge(State(app): State<Arc<App>>, req: Request) -> Response {
    if cross_origin(req.headers()) {
        return json_response(StatusCode::FORBIDDEN, &bridge_error("malformed", "cross-origin bridge request refused"));
    }
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        json_response(StatusCode::PAYLOAD_TOO_LARGE, &bridge_error("malformed", &format!("message larger than {MAX_BRIDGE_BYTES} bytes")))
    };
    if declared.is_some_and(|n| n > MAX_BRIDGE_DRAIN) {
        return too_large();
    }
    let mut stream = req.into_body().into_data_stream();
    let (mut body, mut total) = (Vec::new(), 0usize);
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return json_response(StatusCode::BAD_REQUEST, &bridge_error("malformed", "the message body could not be read"));
        };
        total += chunk.len();
        if total > MAX_BRIDGE_DRAIN {
            break;
        }
        if total <= MAX_BRIDGE_BYTES && declared.is_none_or(|n| n <= MAX_BRIDGE_BYTES) {
            body.extend_from_slice(&chunk);
        }
    }
    if total > MAX_BRIDGE_BYTES || declared.is_some_and(|n| n > MAX_BRIDGE_BYTES) {
        return too_large();
    }
    let Ok(text) = String::from_utf8(body) else {
        return json_response(StatusCode::OK, &bridge_error("malformed", "message is not UTF-8"));
    };
    match blocking(&app, move |a| edetail_core::bridge::handle(&a.device, &text)).await {
        Ok(reply) => ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], reply).into_response(),
        Err(r) => r,
    }
}

// ---- assets ------------------------------------------------------------------------------

/// What resolving an asset produced, computed off the async threads.
enum Resolved {
    Stream(Asset),
    /// A page with the runtime's scripts injected (served whole, Range ignored).
    Injected {
        mime: String,
        etag: String,
        body: Vec<u8>,
    },
    NotFound,
    BadRange {
        total: Option<u64>,
        detail: String,
    },
    Failed(String),
}

async fn asset(State(app): State<Arc<App>>, req: Request) -> Response {
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")], "").into_response();
    }
    let path = req.uri().path().to_string();
    let headers = req.headers();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let if_none_match = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    let inject = percent_decode(&path).and_then(|p| app.vendor_pages.get(&p).cloned());

    let resolved = blocking(&app, move |a| resolve(a, &path, range.as_deref(), inject)).await;
    let resolved = match resolved {
        Ok(r) => r,
        Err(r) => return r,
    };
    let not_modified = |etag: &str| if_none_match.as_deref().is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    match resolved {
        Resolved::NotFound => (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found\n").into_response(),
        Resolved::Failed(msg) => {
            note(&format!("serving an asset failed: {msg}"));
            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{msg}\n")).into_response()
        }
        Resolved::BadRange { total, detail } => {
            let mut r = (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{detail}\n"))
                .into_response();
            if let Some(t) = total.and_then(|t| HeaderValue::from_str(&format!("bytes */{t}")).ok()) {
                r.headers_mut().insert(header::CONTENT_RANGE, t);
            }
            r.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            r
        }
        Resolved::Injected { mime, etag, body } => {
            let mut b = Response::builder()
                .header(header::CONTENT_TYPE, &mime)
                .header(header::ETAG, &etag)
                .header(header::CACHE_CONTROL, "no-cache")
                .header(header::ACCEPT_RANGES, "none");
            if not_modified(&etag) {
                return b.status(StatusCode::NOT_MODIFIED).body(Body::empty()).unwrap_or_default();
            }
            b = b.header(header::CONTENT_LENGTH, body.len());
            let body = if method == Method::HEAD { Body::empty() } else { Body::from(body) };
            b.status(StatusCode::OK).body(body).unwrap_or_default()
        }
        Resolved::Stream(a) => {
            let mut b = Response::builder()
                .header(header::CONTENT_TYPE, &a.mime)
                .header(header::ETAG, &a.etag)
                .header(header::CACHE_CONTROL, "no-cache")
                .header(header::ACCEPT_RANGES, "bytes")
                .header(header::CONTENT_LENGTH, a.length);
            if a.range.is_none() && not_modified(&a.etag) {
                return Response::builder()
                    .status(StatusCode::NOT_MODIFIED)
                    .header(header::ETAG, &a.etag)
                    .header(header::CACHE_CONTROL, "no-cache")
                    .body(Body::empty())
                    .unwrap_or_default();
            }
            let status = match a.range {
                Some(r) => {
                    b = b.header(header::CONTENT_RANGE, format!("bytes {}-{}/{}", r.start, r.end, a.total_size));
                    StatusCode::PARTIAL_CONTENT
                }
                None => StatusCode::OK,
            };
            let body = if method == Method::HEAD { Body::empty() } else { stream_reader(a.reader) };
            b.status(status).body(body).unwrap_or_default()
        }
    }
}

fn resolve(app: &App, path: &str, range: Option<&str>, inject: Option<String>) -> Resolved {
    use edetail_core::Error as E;
    let assets = app.device.assets();
    match assets.resolve_url_path(path, if inject.is_some() { None } else { range }) {
        Ok(a) if inject.is_some() && a.total_size <= MAX_INJECT_BYTES => {
            let scripts = inject.unwrap_or_default();
            let mut body = Vec::with_capacity(a.total_size as usize + scripts.len());
            let (mime, etag) = (a.mime.clone(), a.etag.clone());
            if let Err(e) = a.reader.take(MAX_INJECT_BYTES).read_to_end(&mut body) {
                return Resolved::Failed(format!("reading {path}: {e}"));
            }
            // The validator changes with the scripts injected.
            let etag = format!("{}-rt{}\"", etag.trim_end_matches('"'), scripts_tag(&scripts));
            Resolved::Injected { mime, etag, body: inject_scripts(&body, &scripts) }
        }
        Ok(a) if inject.is_some() => {
            // Too large to rewrite: serve as is (with the range, if one was asked for).
            match range {
                Some(_) => resolve(app, path, range, None),
                None => Resolved::Stream(a),
            }
        }
        Ok(a) => Resolved::Stream(a),
        Err(E::AssetNotFound { .. } | E::UnknownBundle(_)) => Resolved::NotFound,
        Err(E::BadRange { detail, .. }) => {
            let total = assets.resolve_url_path(path, None).ok().map(|a| a.total_size);
            Resolved::BadRange { total, detail }
        }
        Err(e) => Resolved::Failed(e.to_string()),
    }
}

/// Pumps a blocking reader into the response in 64 KiB chunks; stops when the client leaves.
fn stream_reader(mut reader: Box<dyn Read + Send>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.blocking_send(Ok(Bytes::copy_from_slice(&buf[..n]))).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

/// A short tag of the injected scripts for the ETag (FNV-1a).
fn scripts_tag(scripts: &str) -> String {
    let h = scripts.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{:08x}", h as u32)
}

/// Where the runtime scripts go (ADR 0013: they load first): right after the `<head ...>` open
/// tag; without one, right before the first `<script`; without one, right after `<html ...>`;
/// else at the start, after a byte order mark and a `<!doctype ...>` (which must stay first).
fn inject_position(html: &[u8]) -> usize {
    let lower: Vec<u8> = html.to_ascii_lowercase();
    let bom = if lower.starts_with(b"\xef\xbb\xbf") { 3 } else { 0 };
    // `<name` followed by `>`, `/` or whitespace (so `<header>` is not `<head>`): its offset.
    let tag = |name: &[u8]| -> Option<usize> {
        let mut from = bom;
        while let Some(i) = lower[from..].windows(name.len() + 1).position(|w| w[0] == b'<' && &w[1..] == name) {
            let at = from + i;
            match lower.get(at + 1 + name.len()) {
                Some(b'>' | b'/' | b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') | None => return Some(at),
                _ => from = at + 1,
            }
        }
        None
    };
    // The end of the open tag at `at`: the first `>` outside a quoted attribute value.
    let after_open_tag = |at: usize| {
        let mut quote = None;
        for (j, &c) in lower[at..].iter().enumerate() {
            match (quote, c) {
                (None, b'"' | b'\'') => quote = Some(c),
                (Some(q), _) if c == q => quote = None,
                (None, b'>') => return Some(at + j + 1),
                _ => {}
            }
        }
        None
    };
    if let Some(end) = tag(b"head").and_then(after_open_tag) {
        return end;
    }
    if let Some(at) = tag(b"script") {
        return at;
    }
    if let Some(end) = tag(b"html").and_then(after_open_tag) {
        return end;
    }
    let rest = &lower[bom..];
    let ws = rest.iter().take_while(|c| c.is_ascii_whitespace()).count();
    if rest[ws..].starts_with(b"<!doctype")
        && let Some(end) = after_open_tag(bom + ws)
    {
        return end;
    }
    bom
}

/// Inserts `scripts` at [`inject_position`].
fn inject_scripts(html: &[u8], scripts: &str) -> Vec<u8> {
    let at = inject_position(html);
    let mut out = Vec::with_capacity(html.len() + scripts.len());
    out.extend_from_slice(&html[..at]);
    out.extend_from_slice(scripts.as_bytes());
    out.extend_from_slice(&html[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injects_right_after_the_head_open_tag() {
        let s = "<script>";
        let inj = |html: &[u8]| String::from_utf8(inject_scripts(html, s)).unwrap();
        // Upper case, attributes, before the content's own scripts.
        assert_eq!(
            inj(b"<html><HEAD><title>x</title><script src=a.js></script></Head><body>b</body>"),
            "<html><HEAD><script><title>x</title><script src=a.js></script></Head><body>b</body>"
        );
        assert_eq!(inj(b"<html><head lang=\"en\" data-x='>'>t</head>"), "<html><head lang=\"en\" data-x='>'><script>t</head>");
        assert_eq!(inj(b"<head\n  class=\"a\"><meta charset=utf-8>"), "<head\n  class=\"a\"><script><meta charset=utf-8>");
        // `<header>` is not `<head>`.
        assert_eq!(inj(b"<body><header>h</header><script>x()</script>"), "<body><header>h</header><script><script>x()</script>");
        // Doctype and BOM stay first.
        assert_eq!(inj(b"<!DOCTYPE html>\n<html><head><meta charset=utf-8>"), "<!DOCTYPE html>\n<html><head><script><meta charset=utf-8>");
        assert_eq!(inj(b"\xef\xbb\xbf<head>x"), "\u{feff}<head><script>x");
        assert_eq!(inj(b"\xef\xbb\xbfjust text"), "\u{feff}<script>just text");
        assert_eq!(inj(b"<!doctype html><p>no head"), "<!doctype html><script><p>no head");
        assert_eq!(inj(b"\xef\xbb\xbf  <!DOCTYPE html><p>x"), "\u{feff}  <!DOCTYPE html><script><p>x");
        // No head: before the first script, else after <html>, else at the start.
        assert_eq!(inj(b"<p>a</p><SCRIPT>x()</SCRIPT>"), "<p>a</p><script><SCRIPT>x()</SCRIPT>");
        assert_eq!(inj(b"<!doctype html><html lang=en><body>b</body>"), "<!doctype html><html lang=en><script><body>b</body>");
        assert_eq!(inj(b"<html><body class=\"a\">b</body>"), "<html><script><body class=\"a\">b</body>");
        assert_eq!(inj(b"just text"), "<script>just text");
        assert_eq!(inj(b""), "<script>");
        // An unterminated <head falls through to the next rule.
        assert_eq!(inj(b"<html><head"), "<html><script><head");
    }

    #[test]
    fn scripts_follow_the_bridges() {
        assert_eq!(runtime_scripts(&[Bridge::Edetail], true), None);
        assert_eq!(runtime_scripts(&[Bridge::Veeva], false).as_deref(), Some(format!("{EDETAIL_SCRIPT}{VEEVA_SCRIPT}").as_str()));
        assert_eq!(
            runtime_scripts(&[Bridge::Veeva], true).as_deref(),
            Some(format!("{EDETAIL_SCRIPT}{CONTAINERS_SCRIPT}{VEEVA_SCRIPT}").as_str())
        );
        assert_eq!(
            runtime_scripts(&[Bridge::Agnitio, Bridge::Agnitio], true).as_deref(),
            Some(format!("{EDETAIL_SCRIPT}{CONTAINERS_SCRIPT}").as_str())
        );
        assert_eq!(runtime_scripts(&[Bridge::Oce], false).as_deref(), Some(EDETAIL_SCRIPT));
    }

    #[test]
    fn unsupported_labels() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(
            unsupported_label("veeva", "queryObject", Some(&v(r#""queryObject(Address_vod__c),fields(ID)""#))),
            "veeva queryObject(Address_vod__c)"
        );
        assert_eq!(
            unsupported_label("veeva", "getAddresses_Account", Some(&v(r#"["Account", "x"]"#))),
            "veeva getAddresses_Account(Account)"
        );
        assert_eq!(unsupported_label("oce", "openEmail", Some(&v(r#"{"x": 1}"#))), "oce openEmail");
        assert_eq!(unsupported_label("agnitio", "sendMail", None), "agnitio sendMail");
        assert_eq!(unsupported_label("veeva", "x", Some(&v(r#""<b>bad</b>""#))), "veeva x");
    }

    #[test]
    fn unsupported_events_are_listed_and_counted() {
        let ev = |seq: i64, kind: &str, payload: Value| edetail_core::Event {
            seq,
            uuid: format!("u{seq}"),
            call_id: Some("c".into()),
            kind: kind.into(),
            recorded_at: chrono::Utc::now(),
            session: 1,
            mono_ms: 0,
            payload,
            acked_at: None,
            parked_reason: None,
        };
        let events = [
            ev(
                1,
                "unsupported_api",
                json!({"vendor": "veeva", "api": "queryObject", "slide": "a", "args": "queryObject(Address_vod__c),fields(ID)"}),
            ),
            ev(2, "custom", json!({"event": "veeva_clickstream"})),
            ev(
                3,
                "unsupported_api",
                json!({"vendor": "veeva", "api": "queryObject", "slide": "b", "args": "queryObject(Address_vod__c),fields(Name)"}),
            ),
            ev(4, "unsupported_api", json!({"vendor": "oce", "api": "openEmail", "slide": "b", "args": {}})),
        ];
        let v = unsupported_json(&events);
        assert_eq!(v["events"].as_array().map(Vec::len), Some(3));
        assert_eq!(v["events"][1]["slide"], "b");
        assert_eq!(
            v["summary"],
            json!([
                {"label": "veeva queryObject(Address_vod__c)", "vendor": "veeva", "api": "queryObject", "count": 2},
                {"label": "oce openEmail", "vendor": "oce", "api": "openEmail", "count": 1},
            ])
        );
    }

    #[test]
    fn cross_origin_posts_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:4000"));
        assert!(!cross_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:4000"));
        assert!(!cross_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(cross_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_origin(&h));
    }

    #[test]
    fn decodes_paths() {
        assert_eq!(percent_decode("/a/%2e%2e/b").as_deref(), Some("/a/../b"));
        assert_eq!(percent_decode("/a%zz"), None);
    }
}
