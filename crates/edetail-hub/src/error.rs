//! The hub's error type and its mapping onto HTTP statuses and `ErrorBody` codes.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use edetail_protocol::{ErrorBody, ErrorCode};

/// Everything that can go wrong in the hub. Messages never contain tokens or event payloads.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, unknown or revoked token, or one of another role (indistinguishable on purpose).
    #[error("missing, unknown or revoked token")]
    Unauthorized,
    /// A token that was valid and has expired (its holder knows it existed; nothing leaks).
    #[error("token expired: ask the hub operator for a new one")]
    TokenExpired,
    /// Too many requests from this device, token or form: retry after the given time.
    #[error("rate limited: retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("bundle {bundle_id} version {offered} is not higher than the current version {current}")]
    VersionConflict { bundle_id: String, current: u64, offered: u64 },
    /// Another publish holds a live claim on this bundle version (ADR 0016): 409 at once,
    /// before anything is stored.
    #[error("another publish of bundle {bundle_id} version {version} is in progress")]
    PublishInProgress { bundle_id: String, version: u64 },
    #[error("invalid bundle: {0}")]
    InvalidBundle(String),
    #[error("range not satisfiable (blob size {size})")]
    RangeNotSatisfiable { size: u64 },
    #[error("database schema version {found} is newer than this hub supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A dependency (the database, the object store) is unreachable or overloaded: retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Optimistic concurrency: another writer changed the state read; the caller retries.
    #[error("a concurrent writer changed this state")]
    Conflict,
    /// The client sent its request body too slowly (`server::ServerLimits`): 408.
    #[error("request timeout: {0}")]
    Timeout(String),
    /// The hub's disk or database is full (the message names the path or operation, for the
    /// log): 507 with `Retry-After`, so devices keep their data and retry.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// What the request names existed and is over for good (an ended remote session).
    #[error("gone: {0}")]
    Gone(String),
    #[error("internal: {0}")]
    Internal(String),
}

/// What a 503 asks the device to wait before retrying (milliseconds).
pub const UNAVAILABLE_RETRY_AFTER_MS: u64 = 2_000;

/// What a 507 (the hub's storage is full) asks the device to wait before retrying (milliseconds):
/// long enough for an operator to free space, short enough to resume the same day.
pub const STORAGE_FULL_RETRY_AFTER_MS: u64 = 300_000;

/// What a client reads when the hub's storage is full (paths and SQL stay in the log).
pub const STORAGE_FULL_MESSAGE: &str = "the hub's storage is full: your data is kept on the device; retry later";

/// ENOSPC, also when the standard library does not classify it.
fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

impl Error {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// An error reading a request body: 408 when the server's body timeout cut it short,
    /// else `otherwise`.
    pub(crate) fn reading_body(e: axum::Error, otherwise: impl FnOnce(axum::Error) -> Error) -> Error {
        match crate::server::body_timeout_of(&e) {
            Some(t) => Error::Timeout(t.to_string()),
            None => otherwise(e),
        }
    }

    /// The hub's storage (disk, SQLite database, PostgreSQL) is full.
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::StorageFull(_) => true,
            Error::Io { source, .. } => is_disk_full(source),
            Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => f.code == rusqlite::ErrorCode::DiskFull,
            _ => false,
        }
    }

    /// The HTTP status and protocol error code of this error.
    pub fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        if self.is_storage_full() {
            return (StatusCode::INSUFFICIENT_STORAGE, ErrorCode::Unavailable);
        }
        match self {
            Error::Unauthorized | Error::TokenExpired => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Error::Gone(_) => (StatusCode::GONE, ErrorCode::Forbidden),
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge),
            Error::VersionConflict { .. } | Error::PublishInProgress { .. } => (StatusCode::CONFLICT, ErrorCode::VersionConflict),
            Error::InvalidBundle(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidBundle),
            Error::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, ErrorCode::BadRequest),
            Error::Unavailable(_) | Error::Conflict => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            Error::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, ErrorCode::BadRequest),
            Error::StorageFull(_) => (StatusCode::INSUFFICIENT_STORAGE, ErrorCode::Unavailable),
            Error::SchemaTooNew { .. } | Error::Sqlite(_) | Error::Io { .. } | Error::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let storage_full = self.is_storage_full();
        let message = if storage_full {
            // Names the path or the database operation; the client only learns the disk is full.
            tracing::error!(error = %self, "storage full: free space on the hub's disk or database");
            STORAGE_FULL_MESSAGE.to_string()
        } else if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            // Internal details (paths, SQL) stay in the log.
            "internal error".to_string()
        } else {
            self.to_string()
        };
        let retry_after_ms = match self {
            _ if storage_full => Some(STORAGE_FULL_RETRY_AFTER_MS),
            Error::Unavailable(_) | Error::Conflict => Some(UNAVAILABLE_RETRY_AFTER_MS),
            Error::RateLimited { retry_after_ms } => Some(retry_after_ms.max(1)),
            _ => None,
        };
        let mut resp = (status, axum::Json(ErrorBody { code, message, retry_after_ms })).into_response();
        if matches!(self, Error::TooLarge(_) | Error::Timeout(_)) {
            // The body was refused unread: the connection cannot be reused, and saying so keeps
            // clients from writing their next request into a socket the hub is closing.
            resp.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        if let Some(ms) = retry_after_ms {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(ms.div_ceil(1000)));
        }
        if let Error::RangeNotSatisfiable { size } = self
            && let Ok(v) = format!("bytes */{size}").parse()
        {
            resp.headers_mut().insert(axum::http::header::CONTENT_RANGE, v);
        }
        resp
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
