//! Who may do what: bearer tokens by role (device, publisher, operator), their expiry and
//! revocation, per-device and per-token rate limits, and the dashboard's operator gate with
//! its login form and session cookie. Tokens are compared by SHA-256 only and never logged.
//!
//! Roles do not overlap: a device token opens only the device routes, a publisher token only
//! `POST /v1/publish`, an operator token (or its session cookie) only `/dashboard`. A token of
//! the wrong role answers exactly like an unknown one.
//!
//! Answers: 401 "missing, unknown or revoked token" (revoked is not told apart from unknown, so
//! a thief cannot learn whether the theft was noticed), 401 "token expired" (the holder already
//! knows the token existed), 429 with `Retry-After` when over the rate limit.
//!
//! Guessing: bad credentials are counted per client address (`front::middleware`); an address
//! over `AUTH_FAILURE_BURST` gets 429 for any credential until its bucket refills, other
//! addresses are untouched. Logins are by token alone, so a failed guess names no account; the
//! per-account brake applies where a presented token is known but stale (revoked or expired):
//! those presentations are limited per subject (`STALE_CREDENTIAL_BURST`), which refuses only
//! the stale tokens, never the subject's live ones. Login posts from another site (an `Origin`
//! that is not the hub's, or `Sec-Fetch-Site: cross-site`) are refused (login CSRF).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::ratelimit::*;
use crate::store::{Credential, NewCredential, TokenRole};
use crate::tokens::{new_token, token_hash};
use crate::web::{SESSION_COOKIE, session_from_cookie};

/// The dashboard session cookie's name.
/// A dashboard login lasts this long (then the operator logs in again).
pub const SESSION_HOURS: i64 = 12;
/// Longest accepted login form body.
pub const MAX_LOGIN_BODY: usize = 4096;

/// The bearer token's hash from `Authorization: Bearer …`.
pub(crate) fn bearer_hash(headers: &HeaderMap) -> Result<String> {
    let v = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(Error::Unauthorized)?;
    let token = v.strip_prefix("Bearer ").ok_or(Error::Unauthorized)?.trim();
    if token.is_empty() {
        return Err(Error::Unauthorized);
    }
    Ok(token_hash(token))
}

pub(crate) fn limited(wait: std::time::Duration) -> Error {
    Error::RateLimited { retry_after_ms: (wait.as_millis() as u64).max(1) }
}

/// Checks the rate limits of a token (and of its subject, for devices).
pub(crate) fn rate_check(hub: &Hub, role: TokenRole, subject: &str, hash: &str) -> Result<()> {
    let limits = &hub.inner().limits;
    let now = Instant::now();
    let (rate, burst) = match role {
        TokenRole::Device => (TOKEN_RATE_PER_SEC, TOKEN_BURST),
        TokenRole::Publisher => (PUBLISHER_RATE_PER_SEC, PUBLISHER_BURST),
        TokenRole::Operator | TokenRole::Session => (OPERATOR_RATE_PER_SEC, OPERATOR_BURST),
    };
    limits.check(&format!("token:{hash}"), rate, burst, now).map_err(limited)?;
    if role == TokenRole::Device {
        limits.check(&format!("device:{subject}"), DEVICE_RATE_PER_SEC, DEVICE_BURST, now).map_err(limited)?;
    }
    if role == TokenRole::Session {
        limits.check(&format!("operator:{subject}"), OPERATOR_RATE_PER_SEC, OPERATOR_BURST, now).map_err(limited)?;
    }
    Ok(())
}

/// The live credential of `hash` if it has one of `roles`. Blocking (store call).
pub(crate) fn check_credential(hub: &Hub, hash: &str, roles: &[TokenRole]) -> Result<Credential> {
    let c = hub.inner().store.credential(hash)?.filter(|c| roles.contains(&c.role)).ok_or(Error::Unauthorized)?;
    let stale = if c.revoked_at.is_some() {
        Error::Unauthorized
    } else if !c.is_live(Utc::now()) {
        Error::TokenExpired
    } else {
        return Ok(c);
    };
    // The per-account brake: a known but stale token, from wherever it comes.
    let account = format!("stale:{}:{}", c.role.as_str(), c.subject);
    hub.inner().limits.check(&account, STALE_CREDENTIAL_RATE_PER_SEC, STALE_CREDENTIAL_BURST, Instant::now()).map_err(limited)?;
    Err(stale)
}

/// Authenticates a request's bearer token for one role and checks its rate limits; returns
/// the subject (device id, publisher name or operator name).
pub async fn authenticate(hub: &Hub, headers: &HeaderMap, role: TokenRole) -> Result<String> {
    let hash = bearer_hash(headers)?;
    let h = hub.clone();
    let c = tokio::task::spawn_blocking(move || check_credential(&h, &hash, &[role]).map(|c| (c, hash)))
        .await
        .map_err(|e| Error::Internal(format!("task failed: {e}")))??;
    rate_check(hub, role, &c.0.subject, &c.1)?;
    Ok(c.0.subject)
}

/// The operator behind a dashboard request: a bearer operator token, or a session cookie.
async fn operator_of(hub: &Hub, headers: &HeaderMap) -> Result<String> {
    let (hash, roles): (String, &'static [TokenRole]) = match session_from_cookie(headers) {
        Some(session) if headers.get(header::AUTHORIZATION).is_none() => (token_hash(&session), &[TokenRole::Session]),
        _ => (bearer_hash(headers)?, &[TokenRole::Operator]),
    };
    let h = hub.clone();
    let (c, hash) = tokio::task::spawn_blocking(move || check_credential(&h, &hash, roles).map(|c| (c, hash)))
        .await
        .map_err(|e| Error::Internal(format!("task failed: {e}")))??;
    rate_check(hub, c.role, &c.subject, &hash)?;
    Ok(c.subject)
}

/// Middleware in front of `/dashboard`: lets the login page through, sends browsers without a
/// valid session to it, answers API clients (a bearer header) with the JSON error.
pub(crate) async fn dashboard_gate(State(hub): State<Hub>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/dashboard/login" || path == "/dashboard/logout" {
        return next.run(req).await;
    }
    match operator_of(&hub, req.headers()).await {
        Ok(_) => next.run(req).await,
        Err(e @ Error::RateLimited { .. }) => e.into_response(),
        Err(e) if req.headers().contains_key(header::AUTHORIZATION) => e.into_response(),
        Err(e) => {
            let why = if matches!(e, Error::TokenExpired) { "?expired=1" } else { "" };
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("/dashboard/login{why}")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            // An unknown session cookie counts as a bad credential of this address.
            if matches!(e, Error::Unauthorized) && session_from_cookie(req.headers()).is_some() {
                r.extensions_mut().insert(crate::client::AuthFailed);
            }
            r
        }
    }
}

fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    let msg = message.map(|m| format!("<p role=\"alert\" class=\"err\">{}</p>", crate::web::html_escape(m))).unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>edetail hub — operator login</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto}}.err{{color:#a00}}\
         input{{width:100%;padding:.4rem;margin:.4rem 0}}</style></head><body><h1>Operator login</h1>{msg}\
         <form method=\"post\" action=\"/dashboard/login\"><label for=\"token\">Operator token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required>\
         <button id=\"login\" type=\"submit\">Log in</button></form></body></html>"
    );
    crate::web::html_page(
        status,
        body,
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    )
}

/// The login page answering 429 with `Retry-After` (a browser over a login or bad-credential limit).
pub(crate) fn too_many_attempts(retry_after_ms: u64) -> Response {
    let mut r = login_page(StatusCode::TOO_MANY_REQUESTS, Some("Too many attempts. Wait a moment and try again."));
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_ms.div_ceil(1000)));
    r
}

/// Whether a login post comes from another site. Browsers say it in `Sec-Fetch-Site`: only
/// `same-origin` (and `none`, a user's own navigation) are accepted. Without that header, an
/// `Origin` that is not this hub's (`null` included) is refused. Clients sending neither (the
/// CLI, scripts) are not browsers on another site. (The hub's own login page, under
/// `Referrer-Policy: no-referrer`, posts with `Origin: null` and `Sec-Fetch-Site: same-origin`.)
fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("").trim().to_ascii_lowercase();
        return !matches!(site.as_str(), "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return false };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(|h| h.trim().to_ascii_lowercase());
    let origin_host =
        origin.to_str().ok().and_then(|o| o.trim().split_once("://")).map(|(_, rest)| rest.trim_end_matches('/').to_ascii_lowercase());
    match (origin_host, host) {
        (Some(o), Some(h)) => o != h,
        _ => true,
    }
}

pub(crate) async fn login_form(axum::extract::RawQuery(q): axum::extract::RawQuery) -> Response {
    let expired = q.as_deref().is_some_and(|q| q.split('&').any(|p| p == "expired=1"));
    login_page(StatusCode::OK, expired.then_some("Your token or session expired. Log in again."))
}

/// `POST /dashboard/login` (form `token=…`): on an operator token, a new session (random id,
/// stored hashed with its expiry) in an HttpOnly, SameSite=Strict cookie; then the overview.
pub(crate) async fn login(State(hub): State<Hub>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let client = crate::client::of(&parts.extensions);
    if cross_site(&parts.headers) {
        tracing::warn!(client = %client.key(), "cross-site login post refused");
        return login_page(
            StatusCode::FORBIDDEN,
            Some("This login came from another site and was refused. Open the dashboard's own login page."),
        );
    }
    match login_inner(&hub, &parts.headers, client, body).await {
        Ok(r) => r,
        Err(Error::RateLimited { retry_after_ms }) => too_many_attempts(retry_after_ms),
        Err(Error::TokenExpired) => login_page(StatusCode::UNAUTHORIZED, Some("This operator token has expired.")),
        Err(Error::Unauthorized) => login_page(StatusCode::UNAUTHORIZED, Some("Unknown or revoked operator token.")),
        Err(Error::BadRequest(m)) | Err(Error::TooLarge(m)) => login_page(StatusCode::BAD_REQUEST, Some(&m)),
        Err(Error::Timeout(m)) => login_page(StatusCode::REQUEST_TIMEOUT, Some(&m)),
        Err(e) => {
            tracing::error!(error = %e, "dashboard login failed");
            login_page(StatusCode::INTERNAL_SERVER_ERROR, Some("The hub could not log you in; see its log."))
        }
    }
}

async fn login_inner(hub: &Hub, headers: &HeaderMap, client: crate::client::Client, body: axum::body::Body) -> Result<Response> {
    hub.inner().limits.check(&format!("login:{}", client.key()), LOGIN_RATE_PER_SEC, LOGIN_BURST, Instant::now()).map_err(limited)?;
    let raw = axum::body::to_bytes(body, MAX_LOGIN_BODY)
        .await
        .map_err(|e| Error::reading_body(e, |_| Error::TooLarge("login form too large".into())))?;
    let raw = std::str::from_utf8(&raw).map_err(|_| Error::BadRequest("the login form is not UTF-8".into()))?;
    let token = crate::web::form_value(raw, "token")?.ok_or_else(|| Error::BadRequest("enter the operator token".into()))?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(Error::BadRequest("enter the operator token".into()));
    }
    let h = hub.clone();
    let (session, operator) = tokio::task::spawn_blocking(move || -> Result<(String, String)> {
        let c = check_credential(&h, &token_hash(&token), &[TokenRole::Operator])?;
        let session = new_token()?;
        let now = Utc::now();
        h.inner().store.issue_credential(
            &NewCredential {
                token_sha256: token_hash(&session),
                role: TokenRole::Session,
                subject: c.subject.clone(),
                created_at: now,
                expires_at: Some(
                    (now + chrono::Duration::hours(SESSION_HOURS)).min(c.expires_at.unwrap_or(chrono::DateTime::<Utc>::MAX_UTC)),
                ),
                others_expire_by: None,
            },
            None,
        )?;
        Ok((session, c.subject))
    })
    .await
    .map_err(|e| Error::Internal(format!("task failed: {e}")))??;
    tracing::info!(%operator, "operator logged in to the dashboard");
    // Secure when the hub speaks TLS itself or a trusted proxy says the client came over HTTPS.
    let tls = hub.inner().secure_cookies.load(std::sync::atomic::Ordering::Relaxed) || client.https_via_proxy;
    let secure = if tls { "; Secure" } else { "" };
    let _ = headers;
    let cookie =
        format!("{SESSION_COOKIE}={session}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_HOURS * 3600);
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/dashboard"));
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| Error::Internal(e.to_string()))?);
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `POST /dashboard/logout`: revokes the session and clears the cookie.
pub(crate) async fn logout(State(hub): State<Hub>, headers: HeaderMap) -> Response {
    if let Some(session) = session_from_cookie(&headers) {
        let h = hub.clone();
        let _ = tokio::task::spawn_blocking(move || h.inner().store.revoke_credential(&token_hash(&session), Utc::now())).await;
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/dashboard/login"));
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!("{SESSION_COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0")).expect("static cookie"),
    );
    r
}

/// `/dashboard/login` and `/dashboard/logout`.
pub(crate) fn login_router(hub: Hub) -> axum::Router {
    axum::Router::new()
        .route("/dashboard/login", axum::routing::get(login_form).post(login))
        .route("/dashboard/logout", axum::routing::post(logout))
        .with_state(hub)
}
