//! The hub's web plumbing shared by the operator pages, the login and the microsites: the HTML
//! page shell and its security headers, escaping, URL and form encoding, the session cookie.
//! Depends on nothing else in the hub but its error type, so every page module can use it.

use std::fmt::Write as _;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{Error, Result};

/// Name of the operator session cookie.
pub const SESSION_COOKIE: &str = "edetail_session";

/// The policy for HTML answers that did not set their own: nothing may be loaded or framed.
pub const DEFAULT_HTML_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Headers every browser-facing response of the hub carries (dashboard, login, microsites):
/// no MIME sniffing, and no `Referer` when a page or slide links elsewhere (a microsite URL
/// carries its secret token; dashboard URLs name HCP ids).
pub(crate) fn harden(h: &mut HeaderMap) {
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// `harden` as an axum response middleware (`axum::middleware::map_response`).
pub(crate) async fn hardened(mut resp: Response) -> Response {
    harden(resp.headers_mut());
    resp
}

/// A server-rendered HTML page: never cached, under content security policy `csp`, hardened.
pub(crate) fn html_page(status: StatusCode, body: String, csp: &'static str) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    harden(h);
    resp
}

/// The first value of `key` in an `application/x-www-form-urlencoded` body.
pub(crate) fn form_value(body: &str, key: &str) -> Result<Option<String>> {
    Ok(query_values(Some(body), key)?.into_iter().next())
}

/// Values of `key` in a query string (`a=1&a=2`), percent-decoded.
pub(crate) fn query_values(query: Option<&str>, key: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k)? == key {
            out.push(percent_decode(v)?);
        }
    }
    Ok(out)
}

/// A percent-decoded query or form component; a malformed one is a bad request.
fn percent_decode(s: &str) -> Result<String> {
    edetail_bundle::serving::form_decode(s).ok_or_else(|| Error::BadRequest("malformed query string".into()))
}

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes one path segment or query value: everything but RFC 3986 unreserved
/// characters, so `/`, `?`, `#`, `%`, quotes and non-ASCII survive a round trip.
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The operator session cookie's value, if the request carries a non-empty one.
pub(crate) fn session_from_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The policy of a browser-facing page (microsite, remote follower) that runs exactly one inline
/// `script` (allowed by its hash) and inline styles, frames slides from the hub, talks only to
/// the hub, and may not be framed.
pub(crate) fn one_script_page_csp(script: &str) -> String {
    use base64::Engine as _;
    let hash = base64::engine::general_purpose::STANDARD.encode(edetail_bundle::Sha256Digest::of(script.as_bytes()).0);
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}
