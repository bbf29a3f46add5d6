//! Serving slide assets to the WebView: resolve (bundle, path, optional byte range) to a MIME
//! type, lengths and a streaming reader, only for paths the active manifest lists, never a
//! filesystem path built from the request.
//!
//! URL layout under the shell's one stable origin (e.g. `edetail://library/`):
//! `/<bundle-id>/<path>` for bundle files, `/_edetail/edetail.js`, `/_edetail/containers.js` and
//! `/_edetail/veeva-clm.js` for the runtime's own scripts. Because every bundle lives under the same origin,
//! localStorage is shared and `../shared/...` references resolve inside the bundle folder.

use std::io::Read;

use edetail_bundle::{BundlePath, Sha256Digest};

use crate::error::{Error, Result};
use crate::store::ContentStore;

/// The runtime's own scripts, served at `/_edetail/<name>`.
pub const EDETAIL_JS: &str = include_str!("../js/edetail.js");
pub const VEEVA_SHIM_JS: &str = include_str!("../js/veeva-clm.js");
/// Vendor container emulation (ADR 0013), loaded right after `edetail.js`.
pub const CONTAINERS_JS: &str = include_str!("../js/containers.js");
/// URL folder reserved for the runtime.
pub const RESERVED_PREFIX: &str = "_edetail";

/// An inclusive byte range (parsed by [`edetail_bundle::serving::parse_range`]).
pub use edetail_bundle::serving::ByteRange;
/// Decodes `%XX` escapes of a URL path (None when malformed or not UTF-8).
pub use edetail_bundle::serving::percent_decode;

/// A resolved asset: what to send and how.
pub struct Asset {
    pub mime: String,
    /// Size of the whole file.
    pub total_size: u64,
    /// The range served, when the request asked for one (HTTP 206).
    pub range: Option<ByteRange>,
    /// Bytes the reader yields.
    pub length: u64,
    /// Strong validator for caching (`ETag`).
    pub etag: String,
    pub reader: Box<dyn Read + Send>,
}

impl std::fmt::Debug for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asset")
            .field("mime", &self.mime)
            .field("total_size", &self.total_size)
            .field("range", &self.range)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// Parses an HTTP `Range` header value against a file size. Only single ranges are supported
/// (WebViews ask for one range when seeking media); any invalid or unsatisfiable range is
/// [`Error::BadRange`].
pub fn parse_range(header: &str, size: u64, path: &str) -> Result<ByteRange> {
    edetail_bundle::serving::parse_range(header, size).map_err(|e| Error::BadRange { path: path.into(), detail: e.detail().into() })
}

/// The URL path of a bundle file under the shell's origin: `/<bundle-id>/<path>`, every byte
/// outside RFC 3986's unreserved set (and `/` between segments) percent-encoded, so names with
/// spaces, `%`, `#` or `?` reach [`AssetResolver::resolve_url_path`] intact.
pub fn asset_url(bundle_id: &str, path: &str) -> String {
    let mut out = String::with_capacity(bundle_id.len() + path.len() + 8);
    for segment in std::iter::once(bundle_id).chain(path.split('/')) {
        out.push('/');
        for &b in segment.as_bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Resolves assets for one data directory.
#[derive(Debug, Clone, Copy)]
pub struct AssetResolver<'a> {
    pub(crate) store: &'a ContentStore,
}

impl AssetResolver<'_> {
    /// Resolves a URL path (`/<bundle-id>/<path>` or `/_edetail/<script>`), query and fragment
    /// already stripped by the shell.
    pub fn resolve_url_path(&self, url_path: &str, range: Option<&str>) -> Result<Asset> {
        let not_found = || Error::AssetNotFound { bundle_id: String::new(), path: url_path.into() };
        let decoded = percent_decode(url_path.trim_start_matches('/')).ok_or_else(not_found)?;
        let (first, rest) = decoded.split_once('/').ok_or_else(not_found)?;
        if first == RESERVED_PREFIX {
            return runtime_script(rest, range).ok_or_else(not_found)?;
        }
        self.resolve(first, rest, range)
    }

    /// Resolves a file of a bundle's active version.
    pub fn resolve(&self, bundle_id: &str, path: &str, range: Option<&str>) -> Result<Asset> {
        let not_found = || Error::AssetNotFound { bundle_id: bundle_id.into(), path: path.into() };
        // Only manifest paths are ever looked up; a hostile path never reaches the filesystem.
        let path = BundlePath::parse(path).map_err(|_| not_found())?;
        let (sha256, size, mime) = self.store.active_file(bundle_id, &path)?.ok_or_else(not_found)?;
        let etag = format!("\"{}\"", sha256.to_hex());
        let blobs = self.store.blobs();
        match range {
            None => Ok(Asset { mime, total_size: size, range: None, length: size, etag, reader: blobs.open_checked(&sha256, size, None)? }),
            Some(h) => {
                let r = parse_range(h, size, path.as_str())?;
                let reader = blobs.open_checked(&sha256, size, Some((r.start, r.end)))?;
                Ok(Asset { mime, total_size: size, range: Some(r), length: r.end - r.start + 1, etag, reader })
            }
        }
    }
}

fn runtime_script(name: &str, range: Option<&str>) -> Option<Result<Asset>> {
    let body: &'static str = match name {
        "edetail.js" => EDETAIL_JS,
        "veeva-clm.js" => VEEVA_SHIM_JS,
        "containers.js" => CONTAINERS_JS,
        _ => return None,
    };
    let bytes = body.as_bytes();
    let size = bytes.len() as u64;
    let etag = format!("\"{}\"", Sha256Digest::of(bytes).to_hex());
    let mime = "text/javascript".to_string();
    Some(match range {
        None => Ok(Asset { mime, total_size: size, range: None, length: size, etag, reader: Box::new(bytes) }),
        Some(h) => parse_range(h, size, name).map(|r| Asset {
            mime,
            total_size: size,
            range: Some(r),
            length: r.end - r.start + 1,
            etag,
            reader: Box::new(&bytes[r.start as usize..=r.end as usize]),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000, "x").unwrap(), ByteRange { start: 0, end: 99 });
        assert_eq!(parse_range("bytes=900-", 1000, "x").unwrap(), ByteRange { start: 900, end: 999 });
        assert_eq!(parse_range("bytes=-100", 1000, "x").unwrap(), ByteRange { start: 900, end: 999 });
        assert_eq!(parse_range("bytes=990-5000", 1000, "x").unwrap(), ByteRange { start: 990, end: 999 });
        for bad in ["bytes=1000-", "bytes=5-2", "bytes=0-1,5-6", "items=0-1", "bytes=x-", "bytes=-0"] {
            assert!(parse_range(bad, 1000, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b/c.html").as_deref(), Some("a b/c.html"));
        assert_eq!(percent_decode("%2e%2e/x").as_deref(), Some("../x"));
        assert_eq!(percent_decode("bad%zz"), None);
        let url = asset_url("com.x.deck", "slides/50% off #1/index.html");
        assert_eq!(url, "/com.x.deck/slides/50%25%20off%20%231/index.html");
        assert_eq!(percent_decode(&url[1..]).as_deref(), Some("com.x.deck/slides/50% off #1/index.html"));
    }
}
