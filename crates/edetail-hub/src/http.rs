//! The `/v1` HTTP routes (axum): authentication, body limits and gzip, event ingestion, change
//! feed, blob and zip downloads with Range, publishing. Store calls run on the blocking pool.
//! Tokens and event payloads are never logged.

use std::io::Read;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use edetail_bundle::Sha256Digest;
use edetail_protocol::{
    Base64Bytes, BundleOffer, ChangePage, DEVICE_TIME_HEADER, DeviceInfo, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_PAGE_ITEMS, UploadAck,
    WireEvent,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::publish::MAX_PUBLISH_BYTES;
use crate::store::{CheckedEvent, DeviceRecord, TokenRole};
use crate::web::query_values;
use edetail_protocol::{EventKind, Payload};

/// The event contract's limits, shared with the device (edetail-protocol).
use edetail_protocol::event::{MAX_CALL_ID_BYTES, MAX_PAYLOAD_BYTES};

pub(crate) fn router(hub: Hub) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/changes", get(get_changes))
        .route("/v1/device", get(get_device))
        .route("/v1/blobs/{sha256}", get(get_blob))
        .route("/v1/bundles/{id}/{file}", get(get_bundle_zip))
        .route("/v1/publish", post(post_publish))
        .fallback(|| async { Error::NotFound("no such route".into()) })
        // Bodies are read by hand with per-route limits and `ErrorBody` answers.
        .layer(DefaultBodyLimit::disable())
        .with_state(hub)
}

/// Runs store or blob calls on the blocking pool, in the caller's span.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    // In the request's span: store errors logged there carry the request id.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f)).await.map_err(|e| Error::Internal(format!("task failed: {e}")))?
}

/// A device's requests update its last-seen time and skew at most this often (a full install
/// makes hundreds of blob requests: one database write each would dominate).
pub const TOUCH_INTERVAL: chrono::Duration = chrono::Duration::seconds(30);

/// How a route records the device's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Touch {
    /// Last seen and skew, at most every `TOUCH_INTERVAL`.
    Throttled,
    /// Not here: the route records them itself (an upload batch, in its own transaction).
    ByRoute,
}

/// Authenticates a device and records the request (last seen, skew from the device-time header).
pub(crate) async fn device_auth(hub: &Hub, headers: &HeaderMap, touch: Touch) -> Result<DeviceRecord> {
    let hash = crate::auth::bearer_hash(headers)?;
    let now = Utc::now();
    let skew = headers
        .get(DEVICE_TIME_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| (t.with_timezone(&Utc) - now).num_milliseconds());
    let store = hub.inner().store.clone();
    let h = hub.clone();
    let dev = blocking(move || {
        crate::auth::check_credential(&h, &hash, &[TokenRole::Device])?;
        let dev = store.device_by_token(&hash)?.ok_or(Error::Unauthorized)?;
        if touch == Touch::Throttled && dev.last_seen_at.is_none_or(|t| now - t >= TOUCH_INTERVAL) {
            store.touch_device(&dev.id, now, skew)?;
        }
        Ok(dev)
    })
    .await?;
    crate::auth::rate_check(hub, TokenRole::Device, &dev.id, &crate::auth::bearer_hash(headers)?)?;
    Ok(dev)
}

async fn publisher_auth(hub: &Hub, headers: &HeaderMap) -> Result<String> {
    crate::auth::authenticate(hub, headers, TokenRole::Publisher).await
}

/// Reads a request body of at most `limit` bytes (after gzip decoding when sent gzipped).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>> {
    let too_large = || Error::TooLarge(format!("body over {limit} bytes"));
    if let Some(len) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(too_large());
    }
    let mut raw = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::reading_body(e, |e| Error::BadRequest(format!("reading body: {e}"))))?;
        if raw.len() + chunk.len() > limit {
            return Err(too_large());
        }
        raw.extend_from_slice(&chunk);
    }
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") => Ok(raw),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Error::BadRequest(format!("bad gzip body: {e}")))?;
            if out.len() > limit {
                return Err(too_large());
            }
            Ok(out)
        }
        Some(other) => Err(Error::BadRequest(format!("unsupported content-encoding {other:?}"))),
    }
}

/// Earliest accepted event time (`recorded_at`, raw or skew-corrected): no e-detailing device
/// recorded anything before 2000-01-01T00:00:00Z, so an earlier time is a broken clock or a
/// forged event.
pub const EARLIEST_RECORDED_AT: DateTime<Utc> = DateTime::<Utc>::from_timestamp(946_684_800, 0).expect("2000-01-01 is representable");
/// How far after the hub's clock an event time may lie (clock drift, time zones misapplied by
/// a device). Later times are rejected: they would sort after every real event forever.
pub const MAX_FUTURE_RECORDED_AT: chrono::Duration = chrono::Duration::days(1);

/// Whether an event time lies in the accepted window at hub time `now`.
fn time_in_window(t: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    t >= EARLIEST_RECORDED_AT && t <= now + MAX_FUTURE_RECORDED_AT
}

/// The time an event is filed under (`recorded_at_corrected`): the skew-corrected time when it
/// lies in the accepted window, else the raw time when that does (a nonsensical batch clock must
/// not discard a sane event time); `None` when neither does (the event is rejected).
fn corrected_time(recorded_at: DateTime<Utc>, skew_ms: i64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    recorded_at
        .checked_sub_signed(chrono::Duration::milliseconds(skew_ms))
        .filter(|t| time_in_window(*t, now))
        .or_else(|| Some(recorded_at).filter(|t| time_in_window(*t, now)))
}

/// `POST /v1/events` as read by the hub: an `UploadBatch` whose payloads are kept as the JSON
/// text the device sent, so the hub measures and stores that text instead of writing a parsed
/// map out again (twice).
#[derive(serde::Deserialize)]
struct IncomingBatch {
    device_id: String,
    batch_id: String,
    device_time: DateTime<Utc>,
    events: Vec<IncomingEvent>,
}

/// A `WireEvent` with its payload as sent.
#[derive(serde::Deserialize)]
struct IncomingEvent {
    uuid: String,
    seq: i64,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    recorded_at: DateTime<Utc>,
    session: i64,
    mono_ms: i64,
    payload: Box<serde_json::value::RawValue>,
}

/// Validates one event at hub time `now`; permanently invalid ones become rejections with a
/// reason. The payload's size is that of its text as sent.
fn check_event(incoming: IncomingEvent, skew_ms: i64, now: DateTime<Utc>) -> CheckedEvent {
    let payload_bytes = incoming.payload.get().len();
    let payload_json: Box<str> = incoming.payload.into();
    // Parsed once for the checks and the planner; the text is what is stored.
    let (payload, unreadable) = match serde_json::from_str::<serde_json::Value>(&payload_json) {
        Ok(v) => (v, false),
        Err(_) => (serde_json::Value::Null, true),
    };
    let e = WireEvent {
        uuid: incoming.uuid,
        seq: incoming.seq,
        call_id: incoming.call_id,
        kind: incoming.kind,
        recorded_at: incoming.recorded_at,
        session: incoming.session,
        mono_ms: incoming.mono_ms,
        payload,
    };
    let corrected = corrected_time(e.recorded_at, skew_ms, now);
    let kind = EventKind::parse(&e.kind);
    let reason = if uuid::Uuid::parse_str(&e.uuid).is_err() {
        Some("uuid is not a UUID".to_string())
    } else if e.seq <= 0 {
        Some(format!("seq must be positive, got {}", e.seq))
    } else if let Err(why) = &kind {
        Some(why.to_string())
    } else if e.call_id.as_deref().is_some_and(|c| c.contains('\0')) {
        Some("call_id contains a NUL character".to_string())
    } else if e.call_id.as_deref().is_some_and(|c| c.len() > MAX_CALL_ID_BYTES) {
        Some(format!("call_id longer than {MAX_CALL_ID_BYTES} bytes"))
    } else if unreadable || !e.payload.is_object() {
        Some("payload is not a JSON object".to_string())
    } else if payload_bytes > MAX_PAYLOAD_BYTES {
        Some(format!("payload over {MAX_PAYLOAD_BYTES} bytes"))
    } else if let Some(Err(why)) = kind.as_ref().ok().map(|k| Payload::parse(k, &e.payload)) {
        Some(why)
    } else if corrected.is_none() {
        Some(format!(
            "recorded_at outside the accepted window (from {} to one day after the hub's clock), also after correcting the device's clock skew of {skew_ms} ms",
            EARLIEST_RECORDED_AT.format("%Y-%m-%d")
        ))
    } else {
        None
    };
    match (reason, corrected) {
        (None, Some(recorded_at_corrected)) => {
            CheckedEvent::Valid { event: e, recorded_at_corrected, payload_json: Some(String::from(payload_json)) }
        }
        (reason, _) => CheckedEvent::Rejected { uuid: e.uuid, seq: e.seq, reason: reason.unwrap_or_default() },
    }
}

async fn post_events(State(hub): State<Hub>, headers: HeaderMap, body: Body) -> Result<axum::Json<UploadAck>> {
    let dev = device_auth(&hub, &headers, Touch::ByRoute).await?;
    let raw = read_body(&headers, body, MAX_BATCH_BYTES).await?;
    let batch: IncomingBatch = serde_json::from_slice(&raw).map_err(|e| Error::BadRequest(format!("malformed batch: {e}")))?;
    if batch.device_id != dev.id {
        return Err(Error::Forbidden("device_id is not the token's device".into()));
    }
    if batch.events.len() > MAX_BATCH_EVENTS {
        return Err(Error::TooLarge(format!("{} events, at most {MAX_BATCH_EVENTS}", batch.events.len())));
    }
    let now = Utc::now();
    let skew_ms = (batch.device_time - now).num_milliseconds();
    let checked: Vec<CheckedEvent> = batch.events.into_iter().map(|e| check_event(e, skew_ms, now)).collect();
    let ends_a_call = checked.iter().any(|c| matches!(c, CheckedEvent::Valid { event, .. } if crate::ingest::is_call_end(&event.kind)));
    let store = hub.inner().store.clone();
    let device_id = dev.id.clone();
    let outcome = blocking(move || store.apply_batch(&device_id, &checked, skew_ms, now)).await?;
    tracing::info!(
        device = %dev.id,
        batch = %batch.batch_id,
        accepted = outcome.accepted.len(),
        duplicates = outcome.duplicates.len(),
        rejected = outcome.rejected.len(),
        watermark = outcome.watermark,
        "batch applied"
    );
    if ends_a_call && !outcome.accepted.is_empty() {
        hub.wake_analysis();
    }
    Ok(axum::Json(UploadAck {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
        rejected: outcome.rejected,
        watermark: outcome.watermark,
        skew_ms,
        hub_time: now,
    }))
}

async fn get_device(State(hub): State<Hub>, headers: HeaderMap) -> Result<axum::Json<DeviceInfo>> {
    let dev = device_auth(&hub, &headers, Touch::Throttled).await?;
    Ok(axum::Json(DeviceInfo { device_id: dev.id, rep_id: dev.rep_id, territory: dev.territory }))
}

/// The path of a bundle version's zip, as offered in the feed.
pub fn zip_path(bundle_id: &str, version: u64) -> String {
    format!("{}/bundles/{bundle_id}/{version}.zip", edetail_protocol::PREFIX)
}

async fn get_changes(State(hub): State<Hub>, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Response> {
    let dev = device_auth(&hub, &headers, Touch::Throttled).await?;
    let since = match query_values(query.as_deref(), "since")?.last().map(String::as_str) {
        None | Some("") => 0,
        Some(s) => s.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| Error::BadRequest("invalid cursor".into()))?,
    };
    let store = hub.inner().store.clone();
    let page = blocking(move || store.changes_for(&dev.territory, Some(&dev.rep_id), since, MAX_PAGE_ITEMS)).await?;
    json_maybe_gzip(
        &headers,
        &ChangePage {
            next_cursor: page.next_cursor.to_string(),
            has_more: page.has_more,
            bundles: page
                .bundles
                .into_iter()
                .map(|b| BundleOffer {
                    zip_path: zip_path(&b.bundle_id, b.version),
                    bundle_id: b.bundle_id,
                    version: b.version,
                    manifest: Base64Bytes(b.manifest),
                    signature: Base64Bytes(b.signature),
                    total_size: b.total_size,
                })
                .collect(),
            revocations: page.revocations.into_iter().map(|r| r.revocation).collect(),
            plans: page
                .plans
                .into_iter()
                .map(|p| edetail_protocol::SignedPlan { plan: Base64Bytes(p.plan), signature: Base64Bytes(p.signature) })
                .collect(),
            erasures: page.erasures.into_iter().map(|e| e.erasure).collect(),
            consents: page.consents.into_iter().map(|c| c.consent).collect(),
            hub_time: Utc::now(),
        },
    )
}

/// JSON bodies at least this large are gzipped for clients that accept it.
pub const GZIP_MIN_BYTES: usize = 1024;

/// A JSON response, gzipped when the client sends `Accept-Encoding: gzip` and the body is
/// large enough to gain (change-feed pages carry whole manifests, base64-encoded).
fn json_maybe_gzip<T: serde::Serialize>(headers: &HeaderMap, value: &T) -> Result<Response> {
    let body = serde_json::to_vec(value).map_err(|e| Error::Internal(format!("serializing: {e}")))?;
    let accepts_gzip =
        headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim().replace(' ', "").as_str(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        });
    let mut resp = if accepts_gzip && body.len() >= GZIP_MIN_BYTES {
        let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &body).map_err(|e| Error::Internal(format!("gzip: {e}")))?;
        let gz = gz.finish().map_err(|e| Error::Internal(format!("gzip: {e}")))?;
        let mut r = Body::from(gz).into_response();
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        Body::from(body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Ok(resp)
}

async fn get_blob(State(hub): State<Hub>, headers: HeaderMap, Path(sha256): Path<String>) -> Result<Response> {
    let dev = device_auth(&hub, &headers, Touch::Throttled).await?;
    let digest = Sha256Digest::from_hex(&sha256).map_err(|_| Error::BadRequest("not a sha256".into()))?;
    let hex = digest.to_hex();
    let store = hub.inner().store.clone();
    // Not entitled and unknown look the same: 404.
    let Some(size) = blocking(move || store.blob_entitled(&dev.territory, &hex)).await? else {
        return Err(Error::NotFound(format!("blob {sha256}")));
    };
    serve_blob(&hub, digest, size, &headers, "application/octet-stream").await
}

async fn get_bundle_zip(State(hub): State<Hub>, headers: HeaderMap, Path((id, file)): Path<(String, String)>) -> Result<Response> {
    let dev = device_auth(&hub, &headers, Touch::Throttled).await?;
    let version =
        file.strip_suffix(".zip").and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| Error::NotFound(format!("bundle {id}/{file}")))?;
    let store = hub.inner().store.clone();
    let found = {
        let id = id.clone();
        blocking(move || store.bundle_zip(&dev.territory, &id, version)).await?
    };
    let (sha, size) = found.ok_or_else(|| Error::NotFound(format!("bundle {id} version {version}")))?;
    let digest = Sha256Digest::from_hex(&sha).map_err(Error::Internal)?;
    serve_blob(&hub, digest, size, &headers, "application/zip").await
}

/// A byte range request: `Some((first, last))` inclusive, `None` for the whole file.
/// Malformed or multi-range headers are ignored (whole file), as RFC 9110 allows; a well-formed
/// range past the end is 416.
fn parse_range(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    match edetail_bundle::serving::parse_range(value, len) {
        Ok(r) => Ok(Some((r.start, r.end))),
        Err(e) if e.is_unsatisfiable() => Err(Error::RangeNotSatisfiable { size: len }),
        Err(_) => Ok(None),
    }
}

/// Streams a blob (never loaded into memory), honouring a single `Range`.
pub(crate) async fn serve_blob(
    hub: &Hub,
    digest: Sha256Digest,
    len: u64,
    headers: &HeaderMap,
    content_type: &'static str,
) -> Result<Response> {
    let range = parse_range(headers, len)?;
    let (status, start, count) = match range {
        None => (StatusCode::OK, 0, len),
        Some((first, last)) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
    };
    let stream = hub.inner().blobs.read(digest, start, count).await?;
    let mut resp = (status, Body::from_stream(stream)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if let Some((first, last)) = range {
        let v = HeaderValue::from_str(&format!("bytes {first}-{last}/{len}")).map_err(|e| Error::Internal(e.to_string()))?;
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

/// Spools a request body of at most `limit` bytes to a temp file in `dir` (not held in memory).
async fn spool_body(headers: &HeaderMap, body: Body, limit: usize, dir: &std::path::Path) -> Result<tempfile::NamedTempFile> {
    let too_large = || Error::TooLarge(format!("body over {limit} bytes"));
    if let Some(len) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(too_large());
    }
    match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("identity") => {}
        Some(other) => return Err(Error::BadRequest(format!("content-encoding {other:?} is not accepted here: send the zip as is"))),
    }
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(Error::io(dir))?;
    let mut file = tokio::fs::File::from_std(tmp.reopen().map_err(Error::io(tmp.path()))?);
    let mut written = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::reading_body(e, |e| Error::BadRequest(format!("reading body: {e}"))))?;
        written += chunk.len();
        if written > limit {
            return Err(too_large());
        }
        file.write_all(&chunk).await.map_err(Error::io(tmp.path()))?;
    }
    file.flush().await.map_err(Error::io(tmp.path()))?;
    Ok(tmp)
}

async fn post_publish(State(hub): State<Hub>, headers: HeaderMap, RawQuery(query): RawQuery, body: Body) -> Result<Response> {
    let publisher = publisher_auth(&hub, &headers).await?;
    let territories = query_values(query.as_deref(), "territory")?;
    let zip = spool_body(&headers, body, MAX_PUBLISH_BYTES, hub.inner().blobs.tmp_dir()).await?;
    let h = hub.clone();
    let result =
        blocking(move || crate::publish::publish(&h.inner().publishing(), zip, &territories, Some(&publisher), &publisher)).await?;
    Ok((StatusCode::OK, axum::Json(result)).into_response())
}
