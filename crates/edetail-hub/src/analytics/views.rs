//! Slide views of one finished call, derived from its raw events (the hub's version of
//! `edetail_core::calls::derive_views`, tolerant of odd input). Owns no state; no I/O.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::AnalyzedEvent;

/// A view counts with at least this dwell, or with a reaction (same rule as the device).
pub const VIEW_MIN_DWELL_MS: i64 = 2_000;

/// One `slide_enter` .. `slide_exit` pair.
#[derive(Debug, Clone, PartialEq)]
pub struct CallView {
    pub slide: String,
    pub presentation: Option<String>,
    pub enter_uuid: String,
    pub exit_uuid: Option<String>,
    pub at: DateTime<Utc>,
    pub dwell_ms: i64,
    /// The dwell came from timestamps (no `slide_exit`), not from the device's measurement.
    pub dwell_inferred: bool,
    pub hcp_led: bool,
    pub reactions: Vec<String>,
    /// Dwell of at least [`VIEW_MIN_DWELL_MS`] or a reaction.
    pub counts: bool,
}

/// The views of a call plus what did not fit the expected shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DerivedViews {
    pub views: Vec<CallView>,
    /// `slide_exit` events with no matching open view.
    pub orphan_exits: u32,
    /// Reactions without a `slide`, by uuid: the slide of the view open at the time.
    pub reaction_slides: std::collections::BTreeMap<String, String>,
}

impl DerivedViews {
    /// The slide an event is about: its `slide`, or for a reaction without one, the open view's.
    pub fn slide_of<'a>(&'a self, e: &'a AnalyzedEvent) -> Option<&'a str> {
        str_field(&e.payload, "slide").or_else(|| self.reaction_slides.get(&e.uuid).map(String::as_str))
    }
}

pub(crate) fn str_field<'a>(p: &'a Value, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn close_by_time(v: &mut CallView, at: DateTime<Utc>) {
    v.dwell_ms = (at - v.at).num_milliseconds().max(0);
    v.dwell_inferred = true;
}

/// Views in event order. A view left open by the next `slide_enter`, `call_ended` or
/// `call_interrupted` gets its dwell from the timestamps; one left open at the end has dwell 0.
pub fn derive_views(events: &[AnalyzedEvent]) -> DerivedViews {
    let mut out = DerivedViews::default();
    let mut open: Option<usize> = None;
    for e in events {
        let p = &e.payload;
        match e.kind.as_str() {
            "slide_enter" => {
                if let Some(i) = open.take() {
                    close_by_time(&mut out.views[i], e.at);
                }
                let Some(slide) = str_field(p, "slide") else { continue };
                out.views.push(CallView {
                    slide: slide.to_string(),
                    presentation: str_field(p, "presentation").map(str::to_string),
                    enter_uuid: e.uuid.clone(),
                    exit_uuid: None,
                    at: e.at,
                    dwell_ms: 0,
                    dwell_inferred: false,
                    hcp_led: p.get("hcp_led").and_then(Value::as_bool).unwrap_or(false),
                    reactions: Vec::new(),
                    counts: false,
                });
                open = Some(out.views.len() - 1);
            }
            "slide_exit" => {
                let slide = str_field(p, "slide");
                match open {
                    Some(i) if slide.is_none() || slide == Some(out.views[i].slide.as_str()) => {
                        let v = &mut out.views[i];
                        match p.get("dwell_ms").and_then(Value::as_i64) {
                            Some(d) => v.dwell_ms = d.max(0),
                            None => close_by_time(v, e.at),
                        }
                        v.exit_uuid = Some(e.uuid.clone());
                        open = None;
                    }
                    _ => out.orphan_exits += 1,
                }
            }
            "reaction" => {
                if let (Some(i), Some(value)) = (open, str_field(p, "value")) {
                    let slide = str_field(p, "slide");
                    if slide.is_none() {
                        out.reaction_slides.insert(e.uuid.clone(), out.views[i].slide.clone());
                    }
                    if slide.is_none() || slide == Some(out.views[i].slide.as_str()) {
                        out.views[i].reactions.push(value.to_string());
                    }
                }
            }
            "call_ended" | "call_interrupted" => {
                if let Some(i) = open.take() {
                    close_by_time(&mut out.views[i], e.at);
                }
            }
            _ => {}
        }
    }
    for v in &mut out.views {
        v.counts = v.dwell_ms >= VIEW_MIN_DWELL_MS || !v.reactions.is_empty();
    }
    out
}
