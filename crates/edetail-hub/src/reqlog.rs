//! Request ids and the access log: every response carries `x-request-id` (a well-formed
//! incoming one is kept, else a new one), every log line of a request runs in a `request`
//! span carrying that id, and each request ends with one access line (method, route pattern,
//! status, latency). Only route patterns are logged (`/m/{token}/visit`, never the token or an
//! HCP id), never query strings, headers, cookies or bodies.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header carrying a request's id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest incoming request id kept (longer or other characters: a new id is made).
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// An incoming request id if well-formed: 1 to 64 of `[A-Za-z0-9-_.]`.
fn incoming_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let ok =
        !v.is_empty() && v.len() <= MAX_REQUEST_ID_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| v.to_string())
}

/// The axum middleware (`axum::middleware::from_fn`) of every hub route.
pub(crate) async fn request_log(req: Request, next: Next) -> Response {
    let id = incoming_id(req.headers()).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let method = req.method().clone();
    // The pattern, not the path: paths carry microsite tokens and HCP ids.
    let route = req.extensions().get::<MatchedPath>().map_or("(no route)", |p| p.as_str()).to_string();
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status();
    let latency_ms = started.elapsed().as_millis() as u64;
    span.in_scope(|| {
        let code = status.as_u16();
        if status.is_server_error() {
            tracing::error!(%method, %route, status = code, latency_ms, "request");
        } else if matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
        ) {
            // Refused credentials, rate limiting and slow clients: what an operator watches.
            tracing::warn!(%method, %route, status = code, latency_ms, "request");
        } else {
            tracing::info!(%method, %route, status = code, latency_ms, "request");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_ids_are_kept_only_when_well_formed() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(REQUEST_ID_HEADER, HeaderValue::from_str(v).unwrap());
            incoming_id(&h)
        };
        assert_eq!(with("abc-DEF_1.2").as_deref(), Some("abc-DEF_1.2"));
        assert_eq!(with(&"a".repeat(64)).map(|s| s.len()), Some(64));
        assert_eq!(with(&"a".repeat(65)), None);
        assert_eq!(with("a b"), None);
        assert_eq!(with("x\"<script>"), None);
        assert_eq!(with(""), None);
        assert_eq!(incoming_id(&HeaderMap::new()), None);
    }
}
