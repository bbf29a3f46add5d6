//! Follow-up microsites: an HCP-specific page of approved slides behind an expiring tokenized
//! link (`/m/{token}`), the second channel of the loop. Views are measured on the page and sent
//! once per visit; the hub stores each visit as a call of channel `microsite` (same event kinds
//! as a tablet's), which the same analysis folds into the HCP's profile.
//!
//! What a link reveals: the approved slides chosen for it and the bundle's title and approval
//! code. Never an HCP id, a rep or another HCP's page; an unknown token and a wrong one look
//! the same (404); an expired link answers 410 and serves nothing more.
//!
//! Visits count once per page view: each page carries a visit id the hub issued (random nonce,
//! issue time, keyed hash binding both to the microsite); `POST /m/{token}/visit` accepts only
//! such ids, younger than `VISIT_ID_HOURS`, each recorded once. Reports are limited per link
//! and per client address (429 with `Retry-After`).
//!
//! Isolation: slides are HCP-facing content on the dashboard's origin. They are served with
//! `Content-Security-Policy: sandbox allow-scripts …` (no `allow-same-origin`), so a slide,
//! framed or opened directly, runs in an opaque origin: it cannot read the hub's pages, and the
//! operator's SameSite=Strict session cookie never goes with its requests.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use edetail_bundle::{BundlePath, Manifest, Sha256Digest};
use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::store::{MICROSITE_DEVICE, Microsite};

/// Largest accepted visit report.
pub const MAX_VISIT_BYTES: usize = 16 * 1024;
/// Most slide views in one visit report.
pub const MAX_VISIT_VIEWS: usize = 50;
/// A single view's dwell is capped at one hour (a tab left open).
pub const MAX_VIEW_DWELL_MS: i64 = 3_600_000;
/// A page's visit id is accepted this long after the page was served.
pub const VISIT_ID_HOURS: i64 = 24;

/// The policy of every microsite asset (slides and their files): a sandbox without
/// `allow-same-origin` (opaque origin: no access to the hub's pages or cookies), framed only by
/// the hub's own microsite page, no forms, no plugins.
pub const ASSET_CSP: &str = "sandbox allow-scripts allow-popups; default-src 'self' data: blob: 'unsafe-inline' 'unsafe-eval'; \
     form-action 'none'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'";

pub(crate) fn router(hub: Hub) -> Router {
    Router::new()
        .route("/m/{token}", get(page))
        .route("/m/{token}/visit", post(visit))
        .route("/m/{token}/a/{*path}", get(asset))
        // Every answer, errors included: the URL carries the link's token, so no Referer.
        .layer(axum::middleware::map_response(crate::web::hardened))
        .with_state(hub)
}

/// The page's answer when a link is unknown or expired (plain, no details).
fn gone(status: StatusCode, text: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>Link unavailable</title>\
         <body style=\"font-family:system-ui;margin:3rem;color:#333\"><h1>{text}</h1>\
         <p>Please ask your representative for a new link.</p></body>"
    );
    crate::web::html_page(status, body, crate::web::DEFAULT_HTML_CSP)
}

/// A new visit id for one view of microsite `microsite_id`: `ISSUED-NONCE-TAG` (hex: issue
/// time in Unix seconds, 8 random bytes, 16 bytes of the keyed hash over the three).
fn issue_visit_id(hub: &Hub, microsite_id: &str) -> Result<String> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    let issued = format!("{:x}", Utc::now().timestamp().max(0));
    let nonce = hex::encode(nonce);
    let tag = hub.inner().analyzer.visit_tag(&format!("{microsite_id}\n{issued}\n{nonce}"));
    Ok(format!("{issued}-{nonce}-{}", hex::encode(&tag[..16])))
}

/// Checks that `visit_id` was issued by this hub for microsite `microsite_id` and is still young.
fn verify_visit_id(hub: &Hub, microsite_id: &str, visit_id: &str) -> Result<()> {
    let refused = || Error::Forbidden("this visit id was not issued by this link's page: reload the page".into());
    let mut parts = visit_id.split('-');
    let (Some(issued), Some(nonce), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(refused());
    };
    if nonce.len() != 16 || tag.len() != 32 {
        return Err(refused());
    }
    let want = hub.inner().analyzer.visit_tag(&format!("{microsite_id}\n{issued}\n{nonce}"));
    let got = hex::decode(tag).map_err(|_| refused())?;
    // Constant time over the tag's bytes.
    if got.iter().zip(&want[..16]).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
        return Err(refused());
    }
    let issued = i64::from_str_radix(issued, 16).map_err(|_| refused())?;
    let age = Utc::now().timestamp() - issued;
    if age > VISIT_ID_HOURS * 3600 {
        return Err(Error::Forbidden(format!("this visit id is older than {VISIT_ID_HOURS} hours: reload the page")));
    }
    if age < -300 {
        return Err(refused());
    }
    Ok(())
}

/// The microsite page's script: measures slide views and sends them once, with the page's visit
/// id (`data-visit` on `<body>`). Static, so the page's policy allows exactly it by hash.
const PAGE_SCRIPT: &str = r#"
(function () {
  var started = Date.now(), shown = {}, total = {}, sent = false;
  var visit = document.body.getAttribute('data-visit');
  function now() { return Date.now(); }
  function stop(id) { if (shown[id]) { total[id] = (total[id] || 0) + (now() - shown[id]); shown[id] = 0; } }
  var io = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      var id = e.target.getAttribute('data-slide');
      if (e.intersectionRatio >= 0.5) { if (!shown[id]) shown[id] = now(); } else { stop(id); }
    });
  }, { threshold: [0, 0.5, 1] });
  document.querySelectorAll('section[data-slide]').forEach(function (s) { io.observe(s); });
  function send() {
    if (sent) return; sent = true;
    Object.keys(shown).forEach(stop);
    var views = Object.keys(total).map(function (k) { return { slide: k, dwell_ms: total[k] }; });
    var body = JSON.stringify({ visit_id: visit, duration_ms: now() - started, views: views });
    var url = location.pathname.replace(/\/$/, '') + '/visit';
    if (!(navigator.sendBeacon && navigator.sendBeacon(url, new Blob([body], { type: 'application/json' })))) {
      fetch(url, { method: 'POST', body: body, headers: { 'content-type': 'application/json' }, keepalive: true });
    }
  }
  document.addEventListener('visibilitychange', function () { if (document.visibilityState === 'hidden') send(); });
  window.addEventListener('pagehide', send);
  window.edetailMicrositeSend = send;
})();
"#;

/// The microsite page's policy: its own script (by hash) and styles, slides framed from the hub,
/// reports sent to it; nothing else, and no one may frame the page.
fn page_csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| crate::web::one_script_page_csp(PAGE_SCRIPT))
}

enum Lookup {
    Valid(Box<Microsite>),
    Expired,
    Unknown,
}

async fn lookup(hub: &Hub, token: &str) -> Result<Lookup> {
    // Tokens are 64 hex characters; anything else cannot match and is not looked up.
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Lookup::Unknown);
    }
    let hash = Sha256Digest::of(token.to_ascii_lowercase().as_bytes()).to_hex();
    let store = hub.inner().store.clone();
    let found = tokio::task::spawn_blocking(move || store.microsite_by_token(&hash))
        .await
        .map_err(|e| Error::Internal(format!("task failed: {e}")))??;
    Ok(match found {
        None => Lookup::Unknown,
        Some(m) if m.expires_at <= Utc::now() => Lookup::Expired,
        Some(m) => Lookup::Valid(Box::new(m)),
    })
}

/// The manifest of the microsite's bundle version, only while the microsite's territory is
/// entitled to that version and it is not revoked (404 otherwise: nothing is served).
async fn manifest_of(hub: &Hub, m: &Microsite) -> Result<Manifest> {
    entitled_manifest(hub, &m.territory, &m.bundle_id, m.bundle_version).await
}

/// The manifest of a bundle version while `territory` is entitled to it and it is not revoked
/// (404 otherwise): what a browser-facing page (microsite, remote session) may serve from.
pub(crate) async fn entitled_manifest(hub: &Hub, territory: &str, bundle_id: &str, version: u64) -> Result<Manifest> {
    let store = hub.inner().store.clone();
    let (t, b, v) = (territory.to_string(), bundle_id.to_string(), version);
    let bytes = tokio::task::spawn_blocking(move || match store.bundle_zip(&t, &b, v)? {
        Some(_) => store.bundle_manifest(&b, v),
        None => Ok(None),
    })
    .await
    .map_err(|e| Error::Internal(format!("task failed: {e}")))??
    .ok_or_else(|| Error::NotFound("content".into()))?;
    Manifest::from_slice(&bytes).map_err(|e| Error::Internal(format!("stored manifest: {e}")))
}

/// One file the approved `manifest` lists, to a browser: its type, Range, the sandboxing
/// policy of every HCP-facing asset ([`ASSET_CSP`]); 404 for anything the manifest lacks.
pub(crate) async fn serve_asset(hub: &Hub, manifest: &Manifest, path: &str, headers: &HeaderMap) -> Result<Response> {
    // Only files the approved manifest lists; the path is checked like a bundle entry name.
    let bp = BundlePath::parse(path).map_err(|_| Error::NotFound("asset".into()))?;
    let entry = manifest.files.get(&bp).ok_or_else(|| Error::NotFound("asset".into()))?;
    let mime = HeaderValue::from_str(&entry.mime).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut resp = crate::http::serve_blob(hub, entry.sha256, entry.size, headers, "application/octet-stream").await?;
    resp.headers_mut().insert(header::CONTENT_TYPE, mime);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(ASSET_CSP));
    Ok(resp)
}

/// HTML escaping shared with the dashboard.
pub(crate) fn esc(s: &str) -> String {
    crate::web::html_escape(s)
}

/// Percent-encodes a bundle path for a URL (segments kept).
pub(crate) fn url_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn page(State(hub): State<Hub>, Path(token): Path<String>) -> Result<Response> {
    let m = match lookup(&hub, &token).await? {
        Lookup::Valid(m) => m,
        Lookup::Expired => return Ok(gone(StatusCode::GONE, "This link has expired.")),
        Lookup::Unknown => return Ok(gone(StatusCode::NOT_FOUND, "This link is not valid.")),
    };
    let manifest = manifest_of(&hub, &m).await?;
    let visit = issue_visit_id(&hub, &m.id)?;
    let mut sections = String::new();
    for id in &m.slides {
        let Some(slide) = manifest.slide(id) else { continue };
        sections.push_str(&format!(
            "<section class=slide data-slide=\"{id}\"><h2>{title}</h2>\
             <iframe src=\"/m/{token}/a/{entry}\" title=\"{title}\" loading=lazy sandbox=\"allow-scripts\"></iframe></section>\n",
            id = esc(id),
            title = esc(&slide.title),
            token = esc(&token),
            entry = esc(&url_path(slide.entry.as_str())),
        ));
    }
    let body = format!(
        r#"<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">
<title>{title}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f4f6f8;color:#1d2733}}
header{{background:#123b5d;color:#fff;padding:1.2rem 2rem}} header p{{margin:.3rem 0 0;opacity:.8;font-size:.9rem}}
main{{max-width:1100px;margin:0 auto;padding:1rem 2rem}}
.slide{{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;margin:1.2rem 0;padding:1rem}}
.slide h2{{font-size:1.1rem;margin:.2rem 0 .8rem}}
iframe{{width:100%;aspect-ratio:4/3;border:0;background:#fff}}
footer{{font-size:.8rem;color:#566;padding:1rem 2rem 2rem;text-align:center}}
</style></head>
<body data-visit="{visit}"><header><h1>{title}</h1><p>Prepared for you after your conversation with your representative. Valid until {expires}.</p></header>
<main>
{sections}</main>
<footer>Approval code {approval} &middot; {product}</footer>
<script>{script}</script></body></html>"#,
        lang = esc(&manifest.locale),
        title = esc(&manifest.title),
        expires = m.expires_at.format("%Y-%m-%d"),
        approval = esc(&manifest.approval_code),
        product = esc(&manifest.product),
        visit = esc(&visit),
        script = PAGE_SCRIPT,
    );
    Ok(crate::web::html_page(StatusCode::OK, body, page_csp()))
}

async fn asset(State(hub): State<Hub>, Path((token, path)): Path<(String, String)>, headers: HeaderMap) -> Result<Response> {
    let m = match lookup(&hub, &token).await? {
        Lookup::Valid(m) => m,
        Lookup::Expired => return Ok(gone(StatusCode::GONE, "This link has expired.")),
        Lookup::Unknown => return Ok(gone(StatusCode::NOT_FOUND, "This link is not valid.")),
    };
    let manifest = manifest_of(&hub, &m).await?;
    serve_asset(&hub, &manifest, &path, &headers).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VisitReport {
    visit_id: String,
    #[serde(default)]
    duration_ms: i64,
    views: Vec<ViewReport>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewReport {
    slide: String,
    dwell_ms: i64,
}

async fn visit(
    State(hub): State<Hub>,
    Path(token): Path<String>,
    client: Option<axum::Extension<crate::client::Client>>,
    body: Body,
) -> Result<Response> {
    use crate::ratelimit::*;
    let client = client.map(|c| c.0).unwrap_or(crate::client::Client { ip: None, https_via_proxy: false });
    let limits = &hub.inner().limits;
    let limited = |wait: std::time::Duration| Error::RateLimited { retry_after_ms: (wait.as_millis() as u64).max(1) };
    let now = std::time::Instant::now();
    limits.check(&format!("visit-client:{}", client.key()), VISIT_CLIENT_RATE_PER_SEC, VISIT_CLIENT_BURST, now).map_err(limited)?;
    let m = match lookup(&hub, &token).await? {
        Lookup::Valid(m) => m,
        Lookup::Expired => return Err(Error::Forbidden("this link has expired".into())),
        Lookup::Unknown => return Err(Error::NotFound("microsite".into())),
    };
    limits.check(&format!("visit-link:{}", m.id), VISIT_LINK_RATE_PER_SEC, VISIT_LINK_BURST, now).map_err(limited)?;
    let bytes: Bytes = axum::body::to_bytes(body, MAX_VISIT_BYTES)
        .await
        .map_err(|e| Error::reading_body(e, |_| Error::TooLarge(format!("a visit report is at most {MAX_VISIT_BYTES} bytes"))))?;
    let report: VisitReport = serde_json::from_slice(&bytes).map_err(|e| Error::BadRequest(format!("visit report: {e}")))?;
    if report.visit_id.is_empty() || report.visit_id.len() > 64 || !report.visit_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Error::BadRequest("visit_id must be 1-64 letters, digits or '-'".into()));
    }
    verify_visit_id(&hub, &m.id, &report.visit_id)?;
    if report.views.len() > MAX_VISIT_VIEWS {
        return Err(Error::BadRequest(format!("at most {MAX_VISIT_VIEWS} views per visit")));
    }
    for v in &report.views {
        if !m.slides.contains(&v.slide) {
            return Err(Error::BadRequest("a view names a slide that is not on this page".into()));
        }
    }
    let manifest = manifest_of(&hub, &m).await?;
    let presentation = |slide: &str| manifest.presentations.iter().find(|p| p.slides.iter().any(|s| s == slide)).map(|p| p.id.clone());
    let mut events = vec![(
        "call_started".to_string(),
        json!({"hcp_id": m.hcp_id, "channel": "microsite", "bundle_id": m.bundle_id, "bundle_version": m.bundle_version,
               "microsite_id": m.id}),
    )];
    for v in report.views.iter().filter(|v| v.dwell_ms > 0) {
        let dwell = v.dwell_ms.min(MAX_VIEW_DWELL_MS);
        let p = presentation(&v.slide);
        events.push((
            "slide_enter".into(),
            json!({"slide": v.slide, "presentation": p, "source": "microsite", "hcp_led": true, "bundle_version": m.bundle_version}),
        ));
        events.push(("slide_exit".into(), json!({"slide": v.slide, "presentation": p, "dwell_ms": dwell, "closed_by": "microsite"})));
    }
    events.push(("call_ended".into(), json!({"duration_ms": report.duration_ms.clamp(0, 24 * MAX_VIEW_DWELL_MS)})));
    let call_id = format!("ms-{}", report.visit_id);
    let store = hub.inner().store.clone();
    let recorded = tokio::task::spawn_blocking(move || -> Result<bool> {
        // A repeated report of the same visit (a retried beacon) is absorbed.
        if !store.call_events(MICROSITE_DEVICE, &call_id)?.is_empty() {
            return Ok(false);
        }
        store.record_microsite_visit(&m.id, &call_id, &events, Utc::now())?;
        Ok(true)
    })
    .await
    .map_err(|e| Error::Internal(format!("task failed: {e}")))??;
    if recorded {
        hub.wake_analysis();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_url_paths() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(url_path("slides/a b/index.html"), "slides/a%20b/index.html");
        assert_eq!(url_path("é?#"), "%C3%A9%3F%23");
    }
}
