//! The middleware in front of every route: resolves who is asking (`client`), stops credential
//! guessing per client address (the bad-credential brake), and gives HTML answers that set no
//! content security policy the restrictive default.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::client::{AuthFailed, Client, resolve};
use crate::hub::Hub;
use crate::ratelimit::{AUTH_FAILURE_BURST, AUTH_FAILURE_RATE_PER_SEC};
use crate::web::DEFAULT_HTML_CSP;

/// The bad-credential bucket of a client address.
fn failure_key(client: &Client) -> String {
    format!("auth-failures:{}", client.key())
}

/// Whether a request presents a credential: a bearer header, a dashboard session cookie, or a
/// login form post.
fn presents_credential(req: &Request) -> bool {
    let h = req.headers();
    h.contains_key(header::AUTHORIZATION)
        || (req.uri().path().starts_with("/dashboard") && crate::web::session_from_cookie(h).is_some())
        || (req.method() == axum::http::Method::POST && req.uri().path() == "/dashboard/login")
}

/// Middleware in front of every route: resolves the client (a `Client` request extension);
/// refuses credentials from an address that sent too many bad ones lately (429 with
/// `Retry-After`, before the credential is even looked at, so guessing stops there) and counts
/// each failed authentication (401, or `AuthFailed`) against its address only; gives HTML
/// answers without a content security policy the restrictive default.
pub(crate) async fn middleware(State(hub): State<Hub>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = {
        let trusted = hub.inner().trusted_proxies.read().unwrap_or_else(|p| p.into_inner());
        resolve(peer, req.headers(), &trusted)
    };
    req.extensions_mut().insert(client);
    let credential = presents_credential(&req);
    let limits = &hub.inner().limits;
    let key = failure_key(&client);
    if credential && let Err(wait) = limits.peek(&key, AUTH_FAILURE_RATE_PER_SEC, AUTH_FAILURE_BURST, Instant::now()) {
        let browser = req.uri().path().starts_with("/dashboard") && !req.headers().contains_key(header::AUTHORIZATION);
        let retry_after_ms = (wait.as_millis() as u64).max(1);
        tracing::warn!(client = %client.key(), "credentials refused: too many bad ones from this address");
        return if browser {
            crate::auth::too_many_attempts(retry_after_ms)
        } else {
            crate::Error::RateLimited { retry_after_ms }.into_response()
        };
    }
    let mut resp = next.run(req).await;
    if credential && (resp.status() == StatusCode::UNAUTHORIZED || resp.extensions().get::<AuthFailed>().is_some()) {
        let _ = limits.check(&key, AUTH_FAILURE_RATE_PER_SEC, AUTH_FAILURE_BURST, Instant::now());
    }
    let h = resp.headers_mut();
    let html = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    if html && !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DEFAULT_HTML_CSP));
    }
    resp
}
