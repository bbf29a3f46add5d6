//! Remote detailing (issue 17, ADR 0023): a rep presents a call from the tablet while doctors
//! follow in a browser from a link. The device opens a session for its call
//! (`POST /v1/remote-sessions`) and presents over a WebSocket (`…/{id}/present`); doctors open
//! `/r/{token}` (the follower page, `page`), follow over `/r/{token}/ws` and load the session's
//! slides from `/r/{token}/a/{path}` while it lasts. The hub relays (`remote_relay`, `socket`) and
//! keeps where the session stands; it never records events for a remote call: the tablet
//! performs the doctor's navigation and records it through its outbox.
//!
//! What a link reveals: the session's slides, the bundle's title and approval code, whether the
//! device records. Never an HCP id or name (the hub does not know them), a rep or a device.
//! Unknown tokens answer 404; ended, expired or replaced links "this meeting has ended".

mod page;
mod socket;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{Duration, Utc};
use edetail_bundle::Sha256Digest;
use edetail_protocol::remote::{
    CLOSE_ENDED, HubMessage, MAX_ID_BYTES, MAX_SESSION_MINUTES, OpenRemoteSession, RemoteSessionEnded, RemoteSessionOpened, SESSIONS_PATH,
};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::{Touch, blocking, device_auth};
use crate::hub::Hub;
use crate::remote_relay::{Envelope, To};
use crate::store::{DeviceRecord, NewRemoteSession, RemoteSession};

/// Largest request that opens a session.
const MAX_OPEN_BYTES: usize = 4 * 1024;

pub(crate) fn router(hub: Hub) -> Router {
    let routes = Router::new();
    // The benchmark's baseline (benches/remote.rs): a bare WebSocket echo through the same
    // server, router and middleware. Test builds only.
    #[cfg(feature = "testkit")]
    let routes = routes.route("/testkit/ws-echo", get(echo));
    routes
        .route(SESSIONS_PATH, post(open))
        .route(&format!("{SESSIONS_PATH}/{{id}}/end"), post(end))
        .route(&format!("{SESSIONS_PATH}/{{id}}/link"), post(relink))
        .route(&format!("{SESSIONS_PATH}/{{id}}/present"), get(present))
        .route("/r/{token}", get(join_page))
        .route("/r/{token}/ws", get(attend))
        .route("/r/{token}/a/{*path}", get(asset))
        // The follower copy of the bridge the slides include (`/_edetail/edetail.js`).
        .route("/_edetail/edetail.js", get(page::follower_bridge))
        .layer(axum::middleware::map_response(crate::web::hardened))
        .with_state(hub)
}

#[cfg(feature = "testkit")]
async fn echo(ws: WebSocketUpgrade) -> Response {
    use axum::extract::ws::Message;
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(m)) = socket.recv().await {
            if let Message::Text(_) | Message::Binary(_) = m
                && socket.send(m).await.is_err()
            {
                break;
            }
        }
    })
}

/// A new join link: its token (shown once) and what is stored of it.
fn new_link() -> Result<(String, String)> {
    let token = crate::tokens::new_token()?;
    let hash = Sha256Digest::of(token.as_bytes()).to_hex();
    Ok((token, hash))
}

/// What is stored of a link's token; `None` for anything that cannot be one.
fn link_hash(token: &str) -> Option<String> {
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Sha256Digest::of(token.to_ascii_lowercase().as_bytes()).to_hex())
}

/// The session by a link's token; `None` for anything that is not a current link.
async fn by_token(hub: &Hub, token: &str) -> Result<Option<RemoteSession>> {
    let Some(hash) = link_hash(token) else { return Ok(None) };
    let store = hub.inner().store.clone();
    blocking(move || store.remote_session_by_token(&hash)).await
}

/// The device's own session `id` (404 for another device's: nothing tells them apart).
async fn own_session(hub: &Hub, dev: &DeviceRecord, id: &str) -> Result<RemoteSession> {
    let store = hub.inner().store.clone();
    let id = id.to_string();
    let s = blocking(move || store.remote_session(&id)).await?;
    s.filter(|s| s.device_id == dev.id).ok_or_else(|| Error::NotFound("remote session".into()))
}

async fn open(State(hub): State<Hub>, headers: HeaderMap, body: Body) -> Result<Response> {
    let dev = device_auth(&hub, &headers, Touch::Throttled).await?;
    let bytes = axum::body::to_bytes(body, MAX_OPEN_BYTES)
        .await
        .map_err(|e| Error::reading_body(e, |_| Error::TooLarge(format!("a remote session request is at most {MAX_OPEN_BYTES} bytes"))))?;
    let req: OpenRemoteSession = serde_json::from_slice(&bytes).map_err(|e| Error::BadRequest(format!("remote session request: {e}")))?;
    if req.minutes == 0 || req.minutes > MAX_SESSION_MINUTES {
        return Err(Error::BadRequest(format!("minutes must be 1 to {MAX_SESSION_MINUTES}")));
    }
    if req.call_id.is_empty() || req.call_id.len() > MAX_ID_BYTES || req.call_id.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!("call_id must be 1 to {MAX_ID_BYTES} bytes without control characters")));
    }
    // Only content the device's territory may show (and not revoked): 404 otherwise.
    crate::microsite::entitled_manifest(&hub, &dev.territory, &req.bundle_id, req.bundle_version).await?;
    let (token, hash) = new_link()?;
    let now = Utc::now();
    let session = NewRemoteSession {
        id: uuid::Uuid::new_v4().to_string(),
        device_id: dev.id.clone(),
        call_id: req.call_id,
        territory: dev.territory.clone(),
        bundle_id: req.bundle_id,
        bundle_version: req.bundle_version,
        token_sha256: hash,
        waiting_room: req.waiting_room,
        recorded: req.recorded,
        created_at: now,
        expires_at: now + Duration::minutes(i64::from(req.minutes)),
    };
    let answer = RemoteSessionOpened { session_id: session.id.clone(), join_path: format!("/r/{token}"), expires_at: session.expires_at };
    let store = hub.inner().store.clone();
    blocking(move || store.open_remote_session(&session)).await?;
    tracing::info!(session = %answer.session_id, device = %dev.id, "remote session opened");
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

async fn end(State(hub): State<Hub>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response> {
    let dev = device_auth(&hub, &headers, Touch::Throttled).await?;
    let s = own_session(&hub, &dev, &id).await?;
    let store = hub.inner().store.clone();
    let sid = s.id.clone();
    let ended_at =
        blocking(move || store.end_remote_session(&sid, Utc::now())).await?.ok_or_else(|| Error::NotFound("remote session".into()))?;
    hub.inner()
        .remote
        .publish(Envelope { session: s.id.clone(), to: To::Everyone, message: HubMessage::Ended, close: Some(CLOSE_ENDED) })
        .await;
    tracing::info!(session = %s.id, "remote session ended");
    Ok(axum::Json(RemoteSessionEnded { session_id: s.id, ended_at }).into_response())
}

async fn relink(State(hub): State<Hub>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response> {
    let dev = device_auth(&hub, &headers, Touch::Throttled).await?;
    let s = own_session(&hub, &dev, &id).await?;
    if !s.live_at(Utc::now()) {
        return Err(Error::Gone("this remote session has ended".into()));
    }
    let (token, hash) = new_link()?;
    let store = hub.inner().store.clone();
    let sid = s.id.clone();
    blocking(move || store.relink_remote_session(&sid, &hash)).await?;
    // Everyone who came through the old link leaves; the new link lets them in again.
    hub.inner()
        .remote
        .publish(Envelope { session: s.id.clone(), to: To::AllAttendees, message: HubMessage::Ended, close: Some(CLOSE_ENDED) })
        .await;
    tracing::info!(session = %s.id, "remote session link replaced");
    Ok(axum::Json(RemoteSessionOpened { session_id: s.id, join_path: format!("/r/{token}"), expires_at: s.expires_at }).into_response())
}

async fn present(State(hub): State<Hub>, Path(id): Path<String>, headers: HeaderMap, ws: WebSocketUpgrade) -> Result<Response> {
    let dev = device_auth(&hub, &headers, Touch::Throttled).await?;
    let s = own_session(&hub, &dev, &id).await?;
    if !s.live_at(Utc::now()) {
        return Err(Error::Gone("this remote session has ended".into()));
    }
    let manifest = crate::microsite::entitled_manifest(&hub, &s.territory, &s.bundle_id, s.bundle_version).await?;
    hub.inner().remote.ready().await;
    Ok(ws
        .max_message_size(edetail_protocol::remote::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| socket::presenter(hub, s, manifest, socket)))
}

#[derive(Debug, Deserialize)]
struct AttendQuery {
    attendee: Option<String>,
}

async fn attend(State(hub): State<Hub>, Path(token): Path<String>, Query(q): Query<AttendQuery>, ws: WebSocketUpgrade) -> Result<Response> {
    let s = by_token(&hub, &token).await?.ok_or_else(|| Error::NotFound("remote session".into()))?;
    hub.inner().remote.ready().await;
    // A returning attendee keeps her id (and her admission); anything else gets a new one.
    let attendee = q.attendee.filter(|a| a.len() == 32 && a.bytes().all(|b| b.is_ascii_hexdigit()));
    let link = link_hash(&token).unwrap_or_default();
    Ok(ws
        .max_message_size(edetail_protocol::remote::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| socket::attendee(hub, s, link, attendee, socket)))
}

async fn join_page(State(hub): State<Hub>, Path(token): Path<String>) -> Result<Response> {
    let Some(s) = by_token(&hub, &token).await? else {
        return Ok(page::unavailable(StatusCode::NOT_FOUND, "This link is not valid."));
    };
    if !s.live_at(Utc::now()) {
        return Ok(page::unavailable(StatusCode::GONE, "This meeting has ended."));
    }
    let manifest = crate::microsite::entitled_manifest(&hub, &s.territory, &s.bundle_id, s.bundle_version).await?;
    Ok(page::follower(&token, &s, &manifest))
}

async fn asset(State(hub): State<Hub>, Path((token, path)): Path<(String, String)>, headers: HeaderMap) -> Result<Response> {
    let Some(s) = by_token(&hub, &token).await? else {
        return Ok(page::unavailable(StatusCode::NOT_FOUND, "This link is not valid."));
    };
    if !s.live_at(Utc::now()) {
        return Ok(page::unavailable(StatusCode::GONE, "This meeting has ended."));
    }
    let manifest = crate::microsite::entitled_manifest(&hub, &s.territory, &s.bundle_id, s.bundle_version).await?;
    crate::microsite::serve_asset(&hub, &manifest, &path, &headers).await
}
