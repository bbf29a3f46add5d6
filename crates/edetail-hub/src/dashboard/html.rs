//! Escaping and formatting helpers. Every value that reaches a page goes through
//! [`html_escape`] (text and attribute values alike) or [`url_segment`] (ids in links).

use std::fmt::Write;

use chrono::{DateTime, Utc};

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

/// `2026-11-03 14:05 UTC`.
pub fn fmt_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn fmt_opt_time(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map(fmt_time).unwrap_or_else(|| "never".into())
}

/// Milliseconds as seconds with one decimal: `8.0 s`.
pub fn fmt_secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// A share as a whole percentage: `25%`.
pub fn fmt_pct(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// Thousands separated by thin spaces for headline numbers.
pub fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// Shortens text for a chart label (the full text stays in the element's `<title>`).
pub fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max_chars.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A finite float for attributes and geometry (NaN and infinities become 0).
pub fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// `1 call`, `2 calls`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}
