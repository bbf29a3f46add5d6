//! Text parsing for serving bundle files by URL, shared by the device's asset resolver and the
//! hub's downloads: HTTP `Range` values and percent-decoding. Plain functions on `&str` (no HTTP
//! crate); each caller maps [`RangeError`] or a `None` to its own error type.

/// An inclusive byte range of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    /// How many bytes the range covers.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never true: a range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Why a `Range` value was not served. RFC 9110 lets a server ignore an invalid range (and send
/// the whole file) but not an unsatisfiable one: see [`RangeError::is_unsatisfiable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// Not `bytes=`.
    NotBytes,
    /// More than one range (`bytes=0-1,5-6`): only single ranges are served.
    Multiple,
    /// Not `first-last`, `first-` or `-suffix` with decimal numbers; the detail says which part.
    Malformed(&'static str),
    /// `first-last` with `last < first`.
    Reversed,
    /// Well formed, but no byte of the file is in it (start past the end, an empty suffix, an
    /// empty file).
    Unsatisfiable(&'static str),
}

impl RangeError {
    /// Whether the range was well formed but matched no byte (HTTP 416); otherwise it is
    /// invalid, which a server may ignore.
    pub fn is_unsatisfiable(&self) -> bool {
        matches!(self, RangeError::Unsatisfiable(_))
    }

    /// A short explanation, free of request data.
    pub fn detail(&self) -> &'static str {
        match self {
            RangeError::NotBytes => "only byte ranges are supported",
            RangeError::Multiple => "multiple ranges are not supported",
            RangeError::Malformed(d) | RangeError::Unsatisfiable(d) => d,
            RangeError::Reversed => "range not satisfiable",
        }
    }
}

/// Parses an HTTP `Range` value (`bytes=first-last`, `bytes=first-`, `bytes=-suffix`) against
/// a file of `size` bytes. Only single ranges; `last` past the end is clamped to the last byte.
pub fn parse_range(value: &str, size: u64) -> Result<ByteRange, RangeError> {
    let spec = value.trim().strip_prefix("bytes=").ok_or(RangeError::NotBytes)?;
    if spec.contains(',') {
        return Err(RangeError::Multiple);
    }
    let (a, b) = spec.split_once('-').ok_or(RangeError::Malformed("malformed range"))?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = decimal(b).ok_or(RangeError::Malformed("malformed suffix length"))?;
        if n == 0 || size == 0 {
            return Err(RangeError::Unsatisfiable("empty suffix range"));
        }
        return Ok(ByteRange { start: size.saturating_sub(n), end: size - 1 });
    }
    let start = decimal(a).ok_or(RangeError::Malformed("malformed start"))?;
    let end = if b.is_empty() { u64::MAX } else { decimal(b).ok_or(RangeError::Malformed("malformed end"))? };
    if end < start {
        return Err(RangeError::Reversed);
    }
    if start >= size {
        return Err(RangeError::Unsatisfiable("range not satisfiable"));
    }
    Ok(ByteRange { start, end: end.min(size - 1) })
}

/// A decimal number as HTTP writes them: digits only (no sign, no blanks inside).
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Decodes the `%XX` escapes of a URL path. `None` when an escape is not `%` and two hex
/// digits, or the bytes are not UTF-8. `+` stays `+`.
pub fn percent_decode(s: &str) -> Option<String> {
    decode(s, false)
}

/// Decodes a component of a query string or an `application/x-www-form-urlencoded` body:
/// [`percent_decode`] with `+` meaning a space.
pub fn form_decode(s: &str) -> Option<String> {
    decode(s, true)
}

fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex_digit(*b.get(i + 1)?)?;
                let lo = hex_digit(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> Result<ByteRange, RangeError> {
        Ok(ByteRange { start, end })
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), r(0, 99));
        assert_eq!(parse_range(" bytes= 10 - 19 ", 1000), r(10, 19), "blanks around the parts");
        assert_eq!(parse_range("bytes=999-999", 1000), r(999, 999));
        assert_eq!(parse_range("bytes=0-99", 1000).unwrap().len(), 100);
    }

    #[test]
    fn open_ended_and_clamped() {
        assert_eq!(parse_range("bytes=900-", 1000), r(900, 999));
        assert_eq!(parse_range("bytes=0-", 1), r(0, 0));
        assert_eq!(parse_range("bytes=990-5000", 1000), r(990, 999), "last past the end is clamped");
        assert_eq!(parse_range(&format!("bytes=0-{}", u64::MAX), 10), r(0, 9));
    }

    #[test]
    fn suffixes() {
        assert_eq!(parse_range("bytes=-100", 1000), r(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), r(0, 999), "a suffix longer than the file is all of it");
        assert_eq!(parse_range("bytes=-0", 1000), Err(RangeError::Unsatisfiable("empty suffix range")));
        assert_eq!(parse_range("bytes=-5", 0), Err(RangeError::Unsatisfiable("empty suffix range")));
    }

    #[test]
    fn out_of_bounds_is_unsatisfiable() {
        for v in ["bytes=1000-", "bytes=1000-2000", "bytes=5000-5000"] {
            let e = parse_range(v, 1000).unwrap_err();
            assert!(e.is_unsatisfiable(), "{v}: {e:?}");
            assert_eq!(e.detail(), "range not satisfiable");
        }
        assert!(parse_range("bytes=0-", 0).unwrap_err().is_unsatisfiable(), "any range of an empty file");
    }

    #[test]
    fn invalid_ranges_are_not_unsatisfiable() {
        // Each of these a hub may ignore (whole file); the device refuses them all.
        let cases = [
            ("items=0-1", RangeError::NotBytes),
            ("0-1", RangeError::NotBytes),
            ("bytes=0-1,5-6", RangeError::Multiple),
            ("bytes=-1,-2", RangeError::Multiple),
            ("bytes=5", RangeError::Malformed("malformed range")),
            ("bytes=x-", RangeError::Malformed("malformed start")),
            ("bytes=+1-2", RangeError::Malformed("malformed start")),
            ("bytes=1-y", RangeError::Malformed("malformed end")),
            ("bytes=-z", RangeError::Malformed("malformed suffix length")),
            ("bytes=-", RangeError::Malformed("malformed suffix length")),
            ("bytes=99999999999999999999-", RangeError::Malformed("malformed start")),
            ("bytes=5-2", RangeError::Reversed),
            ("bytes=5000-2", RangeError::Reversed),
        ];
        for (v, want) in cases {
            let got = parse_range(v, 1000);
            assert_eq!(got, Err(want), "{v}");
            assert!(!want.is_unsatisfiable(), "{v}");
        }
        assert_eq!(RangeError::Reversed.detail(), "range not satisfiable", "the device's message for it");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b/c.html").as_deref(), Some("a b/c.html"));
        assert_eq!(percent_decode("%2e%2E/x").as_deref(), Some("../x"));
        assert_eq!(percent_decode("50%25+off").as_deref(), Some("50%+off"), "+ is literal in a path");
        assert_eq!(percent_decode("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(percent_decode("").as_deref(), Some(""));
        assert_eq!(form_decode("a+b%2Bc").as_deref(), Some("a b+c"));
    }

    #[test]
    fn malformed_percent_escapes_are_refused() {
        for bad in ["bad%zz", "%", "x%4", "%4", "%g0", "%+1", "%-1", "% 1", "%%41", "%é0", "%C3", "%FF", "a%C3%28"] {
            assert_eq!(percent_decode(bad), None, "{bad:?}");
            assert_eq!(form_decode(bad), None, "{bad:?}");
        }
    }
}
