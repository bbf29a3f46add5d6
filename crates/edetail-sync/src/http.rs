//! HTTP transport to the hub (`/v1`, see `docs/protocol.md`) over reqwest.
//!
//! Owns: bearer auth from the app's [`TokenProvider`] (on 401 it refreshes once and retries
//! once), the `x-edetail-device-time` header on every request, gzip request bodies for uploads,
//! and turning every failure into an [`HttpFailure`] classified for the policy (error bodies
//! parsed into `edetail_protocol::ErrorBody`, `Retry-After` / `retry_after_ms` extracted), and
//! how long a request may take ([`Timeouts`]: totals for uploads and change pages, an idle limit
//! for everything, blobs included). It makes no retry decisions beyond the single auth refresh:
//! that is `policy`'s job.

use std::fmt;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use edetail_protocol::remote::{OpenRemoteSession, RemoteSessionEnded, RemoteSessionOpened, SESSIONS_PATH};
use edetail_protocol::{ChangePage, DEVICE_TIME_HEADER, DeviceInfo, ErrorBody, PREFIX, UploadAck, UploadBatch};
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, RANGE, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::policy::{FailureClass, classify_status};

/// Connect timeout for every request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A whole `POST /v1/events`: sending a batch (at most 1 MiB of JSON, gzipped), the hub applying
/// it, reading the ack. A hub that accepts and never answers costs this much per attempt.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// A whole `GET /v1/changes` (a page carries up to 100 manifests).
pub const CHANGES_TIMEOUT: Duration = Duration::from_secs(60);
/// No byte received for this long: the request fails as a network error. Applies to every
/// request; blob downloads have only this one (a 200 MB blob legitimately takes long and resumes
/// with `Range` after a failure).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the transport waits; [`Timeouts::default`] uses the constants above. Tests shorten
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Total time of one upload request.
    pub upload: Duration,
    /// Total time of one change-feed request.
    pub changes: Duration,
    /// Longest silence while waiting for a response or reading its body (blobs included).
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: CONNECT_TIMEOUT, upload: UPLOAD_TIMEOUT, changes: CHANGES_TIMEOUT, idle: IDLE_TIMEOUT }
    }
}

/// The app's token provider must answer within this (SSO may need the network; a provider
/// that never answers must not hang the sync).
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The app's token could not be obtained (signed out, SSO unavailable).
#[derive(Debug, Clone, thiserror::Error)]
#[error("token unavailable: {0}")]
pub struct TokenError(pub String);

/// Supplies device bearer tokens; the app implements it (SSO may mint tokens).
#[async_trait::async_trait]
pub trait TokenProvider: Send + Sync {
    /// The current token.
    async fn token(&self) -> Result<String, TokenError>;
    /// The hub answered 401: obtain a fresh token (the next `token()` returns it).
    async fn refresh(&self);
}

/// A fixed token (CLI, tests).
#[derive(Clone)]
pub struct StaticToken(pub String);

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(..)")
    }
}

#[async_trait::async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self) -> Result<String, TokenError> {
        Ok(self.0.clone())
    }
    async fn refresh(&self) {}
}

/// A failed request, classified.
#[derive(Debug, Clone)]
pub struct HttpFailure {
    pub class: FailureClass,
    /// HTTP status, when the hub answered.
    pub status: Option<u16>,
    /// The hub's error body, when it sent one.
    pub body: Option<ErrorBody>,
    /// From `Retry-After` or `retry_after_ms` (the larger).
    pub retry_after_ms: Option<u64>,
    /// For logs and reports: no tokens, no personal data.
    pub message: String,
}

impl HttpFailure {
    pub fn new(class: FailureClass, message: impl Into<String>) -> Self {
        HttpFailure { class, status: None, body: None, retry_after_ms: None, message: message.into() }
    }

    fn from_reqwest(e: reqwest::Error) -> Self {
        // Connect errors, timeouts, resets and truncated bodies are network failures; a body
        // that does not decode is the hub's fault: transient.
        let class = if e.is_decode() { FailureClass::Transient } else { FailureClass::Network };
        // Never include the URL (its query carries the cursor) or headers; name the causes.
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        HttpFailure::new(class, message)
    }
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} failure (HTTP {s}): {}", self.class, self.message),
            None => write!(f, "{} failure: {}", self.class, self.message),
        }
    }
}

/// Parses `Retry-After` given in seconds (the HTTP-date form is not used by the hub).
fn retry_after_header(h: &HeaderMap) -> Option<u64> {
    h.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(|s| s.saturating_mul(1000))
}

/// Classifies a non-2xx response, reading its `ErrorBody`.
async fn failure_from_response(resp: Response) -> HttpFailure {
    let status = resp.status().as_u16();
    let header_ra = retry_after_header(resp.headers());
    let text = resp.text().await.unwrap_or_default();
    let body: Option<ErrorBody> = serde_json::from_str(&text).ok();
    let retry_after_ms = match (header_ra, body.as_ref().and_then(|b| b.retry_after_ms)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let message = match &body {
        Some(b) => format!("{:?}: {}", b.code, b.message),
        None => format!("HTTP {status}"),
    };
    HttpFailure { class: classify_status(status), status: Some(status), body, retry_after_ms, message }
}

/// The hub client.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    base: String,
    tokens: Arc<dyn TokenProvider>,
    timeouts: Timeouts,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Transport {
    /// `hub_url` is the hub's base URL (e.g. `https://hub.example.com`), without `/v1`; default
    /// [`Timeouts`].
    pub fn new(hub_url: &str, tokens: Arc<dyn TokenProvider>) -> Result<Self, HttpFailure> {
        Self::with_timeouts(hub_url, tokens, Timeouts::default())
    }

    pub fn with_timeouts(hub_url: &str, tokens: Arc<dyn TokenProvider>, timeouts: Timeouts) -> Result<Self, HttpFailure> {
        Self::with_options(hub_url, tokens, timeouts, &[])
    }

    /// With explicit trust roots (DER certificates) for HTTPS: when given, only they are
    /// trusted; when empty, the platform's verifier (not available on Android: see
    /// `SyncConfig::trust_roots`).
    pub fn with_options(
        hub_url: &str,
        tokens: Arc<dyn TokenProvider>,
        timeouts: Timeouts,
        trust_roots: &[Vec<u8>],
    ) -> Result<Self, HttpFailure> {
        let permanent = |m: String| HttpFailure::new(FailureClass::Permanent, m);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.idle)
            .user_agent(concat!("edetail-sync/", env!("CARGO_PKG_VERSION")));
        if !trust_roots.is_empty() {
            let certs = trust_roots
                .iter()
                .enumerate()
                .map(|(i, der)| {
                    reqwest::Certificate::from_der(der).map_err(|e| permanent(format!("trust root #{i} is not a DER certificate: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            builder = builder.tls_certs_only(certs);
        } else if cfg!(target_os = "android") && hub_url.starts_with("https:") {
            return Err(permanent(
                "on Android, pass the trusted root certificates (the AndroidCAStore's) to the sync configuration".into(),
            ));
        }
        let client = builder.build().map_err(|e| {
            let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
            let hint = if trust_roots.is_empty() { "" } else { " (check the trust roots: each must be a DER certificate)" };
            permanent(format!("HTTP client: {e}{cause}{hint}"))
        })?;
        Ok(Transport { client, base: format!("{}{PREFIX}", hub_url.trim_end_matches('/')), tokens, timeouts })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request built by `build` with auth and device time; on 401 refreshes the token
    /// once and sends again. Answers the 2xx response or a classified failure.
    async fn send(&self, build: impl Fn(&reqwest::Client) -> RequestBuilder) -> Result<Response, HttpFailure> {
        let mut refreshed = false;
        loop {
            let token = tokio::time::timeout(TOKEN_TIMEOUT, self.tokens.token())
                .await
                .map_err(|_| {
                    HttpFailure::new(FailureClass::Auth, format!("the app's token provider did not answer within {TOKEN_TIMEOUT:?}"))
                })?
                .map_err(|e| HttpFailure::new(FailureClass::Auth, e.to_string()))?;
            let resp = build(&self.client)
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .header(DEVICE_TIME_HEADER, chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .send()
                .await
                .map_err(HttpFailure::from_reqwest)?;
            if resp.status() == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                let _ = tokio::time::timeout(TOKEN_TIMEOUT, self.tokens.refresh()).await;
                continue;
            }
            if resp.status().is_success() {
                return Ok(resp);
            }
            return Err(failure_from_response(resp).await);
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(resp: Response) -> Result<T, HttpFailure> {
        let bytes = resp.bytes().await.map_err(HttpFailure::from_reqwest)?;
        serde_json::from_slice(&bytes).map_err(|e| HttpFailure::new(FailureClass::Transient, format!("unreadable answer: {e}")))
    }

    /// `POST /v1/events` with a gzip JSON body.
    pub async fn upload(&self, batch: &UploadBatch) -> Result<UploadAck, HttpFailure> {
        let json = serde_json::to_vec(batch).map_err(|e| HttpFailure::new(FailureClass::Permanent, e.to_string()))?;
        self.upload_json(&json).await
    }

    /// `POST /v1/events` with a batch already encoded as JSON (an `UploadBatch`).
    pub async fn upload_json(&self, json: &[u8]) -> Result<UploadAck, HttpFailure> {
        let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(json.len() / 4), flate2::Compression::fast());
        gz.write_all(json).and_then(|_| gz.flush()).map_err(|e| HttpFailure::new(FailureClass::Permanent, e.to_string()))?;
        let body = gz.finish().map_err(|e| HttpFailure::new(FailureClass::Permanent, e.to_string()))?;
        let url = self.url("/events");
        let resp = self
            .send(|c| {
                c.request(Method::POST, &url)
                    .timeout(self.timeouts.upload)
                    .header(CONTENT_TYPE, "application/json")
                    .header(CONTENT_ENCODING, "gzip")
                    .body(body.clone())
            })
            .await?;
        Self::json(resp).await
    }

    /// `GET /v1/changes?since=CURSOR`.
    pub async fn changes(&self, since: Option<&str>) -> Result<ChangePage, HttpFailure> {
        let mut url =
            reqwest::Url::parse(&self.url("/changes")).map_err(|e| HttpFailure::new(FailureClass::Permanent, format!("hub URL: {e}")))?;
        if let Some(s) = since {
            url.query_pairs_mut().append_pair("since", s);
        }
        let resp = self.send(|c| c.get(url.clone()).timeout(self.timeouts.changes)).await?;
        Self::json(resp).await
    }

    /// A bundle's whole zip at `zip_path` (as offered: `/v1/bundles/ID/VERSION.zip`), from byte
    /// `offset`. Like [`Transport::blob`]: only the idle timeout.
    pub async fn zip(&self, zip_path: &str, offset: u64) -> Result<Response, HttpFailure> {
        let rest = zip_path
            .strip_prefix(PREFIX)
            .filter(|r| r.starts_with("/bundles/") && !r.contains(".."))
            .ok_or_else(|| HttpFailure::new(FailureClass::Permanent, format!("unexpected zip path {zip_path:?}")))?;
        let url = self.url(rest);
        self.send(|c| {
            let r = c.get(&url);
            if offset > 0 { r.header(RANGE, format!("bytes={offset}-")) } else { r }
        })
        .await
    }

    /// `GET /v1/device`: the device this token belongs to.
    pub async fn device(&self) -> Result<DeviceInfo, HttpFailure> {
        let url = self.url("/device");
        let resp = self.send(|c| c.get(&url).timeout(self.timeouts.upload)).await?;
        Self::json(resp).await
    }

    /// `GET /v1/blobs/{sha256}`, from byte `offset` (`Range: bytes=offset-` when > 0).
    /// The caller checks 200 versus 206 and `Content-Range`. No total timeout, only
    /// [`Timeouts::idle`].
    pub async fn blob(&self, sha256_hex: &str, offset: u64) -> Result<Response, HttpFailure> {
        let url = self.url(&format!("/blobs/{sha256_hex}"));
        self.send(|c| {
            let r = c.get(&url);
            if offset > 0 { r.header(RANGE, format!("bytes={offset}-")) } else { r }
        })
        .await
    }
}

/// Remote sessions (issue 17, `edetail_protocol::remote`): opening, ending and relinking are
/// plain device requests (bearer token, refresh once on 401), each bounded by
/// [`Timeouts::upload`].
impl Transport {
    /// `POST /v1/remote-sessions`: a session for a call in progress on this device.
    pub async fn open_remote_session(&self, req: &OpenRemoteSession) -> Result<RemoteSessionOpened, HttpFailure> {
        let body = serde_json::to_vec(req).map_err(|e| HttpFailure::new(FailureClass::Permanent, e.to_string()))?;
        let url = self.url(remote_path(None, "")?.as_str());
        let resp = self
            .send(|c| {
                c.request(Method::POST, &url).timeout(self.timeouts.upload).header(CONTENT_TYPE, "application/json").body(body.clone())
            })
            .await?;
        Self::json(resp).await
    }

    /// `POST /v1/remote-sessions/{id}/end`: ends the session (idempotent at the hub).
    pub async fn end_remote_session(&self, session_id: &str) -> Result<RemoteSessionEnded, HttpFailure> {
        let url = self.url(&remote_path(Some(session_id), "/end")?);
        let resp = self.send(|c| c.request(Method::POST, &url).timeout(self.timeouts.upload)).await?;
        Self::json(resp).await
    }

    /// `POST /v1/remote-sessions/{id}/link`: revokes the join link and answers a new one.
    pub async fn relink_remote_session(&self, session_id: &str) -> Result<RemoteSessionOpened, HttpFailure> {
        let url = self.url(&remote_path(Some(session_id), "/link")?);
        let resp = self.send(|c| c.request(Method::POST, &url).timeout(self.timeouts.upload)).await?;
        Self::json(resp).await
    }
}

/// The path under `/v1` of the remote sessions, or of one session plus `rest`. A session id
/// the hub gave is a plain token; anything else is refused before it reaches a URL.
pub(crate) fn remote_path(session_id: Option<&str>, rest: &str) -> Result<String, HttpFailure> {
    let base = SESSIONS_PATH.strip_prefix(PREFIX).unwrap_or(SESSIONS_PATH);
    match session_id {
        None => Ok(base.to_string()),
        Some(id) if session_id_ok(id) => Ok(format!("{base}/{id}{rest}")),
        Some(_) => Err(HttpFailure::new(FailureClass::Permanent, "the hub answered a malformed remote session id")),
    }
}

/// A session id usable in a URL path as it is.
pub(crate) fn session_id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether a `Content-Range` header value (`bytes a-b/total`) starts at `offset`.
pub fn content_range_starts_at(value: &str, offset: u64) -> bool {
    value
        .trim()
        .strip_prefix("bytes ")
        .and_then(|r| r.split('-').next())
        .and_then(|a| a.trim().parse::<u64>().ok())
        .is_some_and(|a| a == offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_roots_must_be_certificates() {
        let tokens: Arc<dyn TokenProvider> = Arc::new(StaticToken("t".into()));
        let Err(e) = Transport::with_options("https://hub.example", tokens.clone(), Timeouts::default(), &[b"not a certificate".to_vec()])
        else {
            panic!("garbage is refused")
        };
        assert_eq!(e.class, FailureClass::Permanent);
        assert!(e.message.contains("trust root"), "{}", e.message);
        assert!(
            Transport::with_options("https://hub.example", tokens, Timeouts::default(), &[]).is_ok(),
            "the platform verifier off Android"
        );
    }

    #[test]
    fn remote_paths_take_only_plain_session_ids() {
        assert_eq!(remote_path(None, "").unwrap(), "/remote-sessions");
        assert_eq!(remote_path(Some("4f1c-9a_b"), "/end").unwrap(), "/remote-sessions/4f1c-9a_b/end");
        for bad in ["", "../devices", "a/b", "a?b", "a b", "é"] {
            assert!(remote_path(Some(bad), "/end").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_range_start_is_checked() {
        assert!(content_range_starts_at("bytes 100-199/200", 100));
        assert!(!content_range_starts_at("bytes 0-199/200", 100));
        assert!(!content_range_starts_at("items 100-199/200", 100));
        assert!(!content_range_starts_at("bytes */200", 100));
    }

    #[test]
    fn retry_after_seconds_are_parsed() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().expect("valid header"));
        assert_eq!(retry_after_header(&h), Some(7_000));
        h.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("valid header"));
        assert_eq!(retry_after_header(&h), None);
    }
}
