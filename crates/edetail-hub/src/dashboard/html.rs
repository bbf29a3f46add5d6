//! Escaping and formatting helpers. Every value that reaches a page goes through
//! [`html_escape`] (text and attribute values alike) or [`url_segment`] (ids in links).

pub use crate::web::{html_escape, url_segment};

use chrono::{DateTime, Utc};

/// `2026-11-03 14:05 UTC`.
pub fn fmt_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn fmt_opt_time(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map(fmt_time).unwrap_or_else(|| "never".into())
}

/// Milliseconds as seconds with one decimal, halves rounded up in whole numbers (no binary
/// fraction decides it): `8.0 s`, 25 250 ms is `25.3 s`.
pub fn fmt_secs(ms: u64) -> String {
    let tenths = ms.saturating_add(50) / 100;
    format!("{}.{} s", tenths / 10, tenths % 10)
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

/// A stage as a coloured badge (`data-stage`); an unknown name gets no colour.
pub fn stage_badge(stage: &str) -> String {
    let class = if crate::analytics::Stage::parse(stage).is_some() { format!("stage-{stage}") } else { String::new() };
    format!(r#"<span class="badge {class}" data-stage="{s}">{s}</span>"#, s = html_escape(stage))
}

/// The deck page, for every HCP or one segment.
pub fn deck_href(bundle_id: &str, segment: Option<&str>) -> String {
    match segment {
        None => format!("/dashboard/decks/{}", url_segment(bundle_id)),
        Some(s) => format!("/dashboard/decks/{}?segment={}", url_segment(bundle_id), url_segment(s)),
    }
}

/// One HCP's page.
pub fn hcp_href(hcp_id: &str) -> String {
    format!("/dashboard/hcps/{}", url_segment(hcp_id))
}

#[cfg(test)]
mod tests {
    use super::fmt_secs;

    #[test]
    fn seconds_round_halves_up_whatever_the_binary_fraction() {
        assert_eq!(fmt_secs(8000), "8.0 s");
        assert_eq!(fmt_secs(25_250), "25.3 s");
        assert_eq!(fmt_secs(12_450), "12.5 s");
        assert_eq!(fmt_secs(12_449), "12.4 s");
        assert_eq!(fmt_secs(0), "0.0 s");
    }
}
