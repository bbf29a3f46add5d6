//! Serving slide assets to the WebView's scheme handler: `AssetResponse` carries an HTTP-like
//! status, headers and a body streamed in chunks (large media is never loaded whole), so the
//! iOS `WKURLSchemeHandler` and the Android `WebViewAssetLoader`/`shouldInterceptRequest` code
//! stays a few lines. Request problems become statuses (404, 403, 416), not exceptions.

use std::io::Read;
use std::sync::Mutex;

use edetail_core::assets::Asset;

use crate::error::{ApiError, ApiResult};

/// Largest chunk one `read` returns.
pub const MAX_READ_CHUNK: u32 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

/// One asset request's answer. `read` is I/O: call it off the UI thread (scheme handlers run
/// on their own threads on both platforms).
#[derive(uniffi::Object)]
pub struct AssetResponse {
    status: u16,
    mime: String,
    length: u64,
    headers: Vec<HttpHeader>,
    reader: Mutex<Option<Box<dyn Read + Send>>>,
}

impl std::fmt::Debug for AssetResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssetResponse").field("status", &self.status).field("mime", &self.mime).field("length", &self.length).finish()
    }
}

fn header(name: &str, value: impl Into<String>) -> HttpHeader {
    HttpHeader { name: name.into(), value: value.into() }
}

impl AssetResponse {
    pub(crate) fn found(a: Asset) -> AssetResponse {
        let mut headers = vec![
            header("Content-Type", a.mime.clone()),
            header("Content-Length", a.length.to_string()),
            header("Accept-Ranges", "bytes"),
            // The core's etag is already a quoted entity-tag (`"<sha256>"`).
            header("ETag", a.etag),
            // Content is immutable per version; the shell's origin is per device, not shared.
            header("Cache-Control", "no-cache"),
        ];
        let status = match a.range {
            Some(r) => {
                headers.push(header("Content-Range", format!("bytes {}-{}/{}", r.start, r.end, a.total_size)));
                206
            }
            None => 200,
        };
        AssetResponse { status, mime: a.mime, length: a.length, headers, reader: Mutex::new(Some(a.reader)) }
    }

    /// An answer without a body (404, 403, 416, 500), with the reason as plain text.
    pub(crate) fn failed(status: u16, reason: String) -> AssetResponse {
        let body = reason.into_bytes();
        let headers = vec![header("Content-Type", "text/plain; charset=utf-8"), header("Content-Length", body.len().to_string())];
        AssetResponse {
            status,
            mime: "text/plain".into(),
            length: body.len() as u64,
            headers,
            reader: Mutex::new(Some(Box::new(std::io::Cursor::new(body)))),
        }
    }

    pub(crate) fn from_result(r: edetail_core::Result<Asset>) -> AssetResponse {
        use edetail_core::Error as E;
        match r {
            Ok(a) => AssetResponse::found(a),
            Err(e @ (E::AssetNotFound { .. } | E::UnknownBundle(_))) => AssetResponse::failed(404, e.to_string()),
            Err(e @ E::NotOpenable { .. }) => AssetResponse::failed(403, e.to_string()),
            Err(e @ E::BadRange { .. }) => AssetResponse::failed(416, e.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "asset failed");
                AssetResponse::failed(500, "internal error".into())
            }
        }
    }
}

#[uniffi::export]
impl AssetResponse {
    /// 200, 206 (a range), 403 (content not openable now), 404, 416 (bad range) or 500.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The MIME type (also in `headers`).
    pub fn mime_type(&self) -> String {
        self.mime.clone()
    }

    /// Bytes the body holds (the range's length for a 206).
    pub fn content_length(&self) -> u64 {
        self.length
    }

    /// Response headers: Content-Type, Content-Length, Accept-Ranges, ETag, Content-Range.
    pub fn headers(&self) -> Vec<HttpHeader> {
        self.headers.clone()
    }

    /// The next bytes of the body, at most `max_bytes` (capped at 1 MiB); empty at the end.
    /// I/O: not on the UI thread.
    pub fn read(&self, max_bytes: u32) -> ApiResult<Vec<u8>> {
        let mut guard = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let Some(reader) = guard.as_mut() else { return Ok(Vec::new()) };
        let want = max_bytes.clamp(1, MAX_READ_CHUNK) as usize;
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ApiError::Internal { reason: format!("reading asset: {e}") }),
            }
        }
        buf.truncate(filled);
        if filled == 0 {
            *guard = None;
        }
        Ok(buf)
    }

    /// The whole body at once: for small assets (HTML, CSS, scripts). Use `read` for media.
    pub fn read_all(&self) -> ApiResult<Vec<u8>> {
        let mut guard = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut reader) = guard.take() else { return Ok(Vec::new()) };
        let mut out = Vec::with_capacity(self.length.min(64 * 1024 * 1024) as usize);
        reader.read_to_end(&mut out).map_err(|e| ApiError::Internal { reason: format!("reading asset: {e}") })?;
        Ok(out)
    }

    /// Releases the file early (the WebView cancelled the request); dropping the object does
    /// the same. Not named `close`: uniffi's Kotlin objects are `AutoCloseable`, whose `close()`
    /// already means "destroy", and a second `close()` does not compile.
    pub fn cancel(&self) {
        self.reader.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}
