//! Slide views derived from a call's events, and the view rule: the one definition the device
//! (its local profile, `slide_views`) and the hub (analytics) both use. Pure; tolerant of odd
//! input (events from any device version, microsite visits, replays).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// A view counts with at least this dwell, or with a reaction.
pub const VIEW_MIN_DWELL_MS: i64 = 2_000;

/// What view derivation needs of an event, whichever side stores it.
pub trait ViewEvent {
    fn uuid(&self) -> &str;
    /// The device's sequence number, when the caller has it.
    fn seq(&self) -> Option<i64> {
        None
    }
    fn kind(&self) -> &str;
    fn at(&self) -> DateTime<Utc>;
    fn payload(&self) -> &Value;
}

impl ViewEvent for crate::WireEvent {
    fn uuid(&self) -> &str {
        &self.uuid
    }
    fn seq(&self) -> Option<i64> {
        Some(self.seq)
    }
    fn kind(&self) -> &str {
        &self.kind
    }
    fn at(&self) -> DateTime<Utc> {
        self.recorded_at
    }
    fn payload(&self) -> &Value {
        &self.payload
    }
}

/// One `slide_enter` .. `slide_exit` pair.
#[derive(Debug, Clone, PartialEq)]
pub struct CallView {
    pub slide: String,
    pub presentation: Option<String>,
    pub enter_uuid: String,
    pub enter_seq: Option<i64>,
    pub exit_uuid: Option<String>,
    pub at: DateTime<Utc>,
    pub dwell_ms: i64,
    /// The dwell came from timestamps (no `slide_exit`), not from the device's measurement.
    pub dwell_inferred: bool,
    pub hcp_led: bool,
    /// What moved the call to the slide (`slide_enter.source`).
    pub source: Option<String>,
    /// What closed the view (`slide_exit.closed_by`).
    pub closed_by: Option<String>,
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
    pub reaction_slides: BTreeMap<String, String>,
}

impl DerivedViews {
    /// The slide an event is about: its `slide`, or for a reaction without one, the open view's.
    pub fn slide_of<'a, E: ViewEvent>(&'a self, e: &'a E) -> Option<&'a str> {
        str_field(e.payload(), "slide").or_else(|| self.reaction_slides.get(e.uuid()).map(String::as_str))
    }
}

/// A non-empty string field of a payload.
pub fn str_field<'a>(p: &'a Value, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn close_by_time(v: &mut CallView, at: DateTime<Utc>) {
    v.dwell_ms = (at - v.at).num_milliseconds().max(0);
    v.dwell_inferred = true;
}

/// Views in event order. A view left open by the next `slide_enter`, `call_ended` or
/// `call_interrupted` gets its dwell from the timestamps; one left open at the end has dwell 0.
/// A `slide_enter` without a slide opens no view; a `slide_exit` naming another slide than the
/// open view's is an orphan.
pub fn derive_views<E: ViewEvent>(events: &[E]) -> DerivedViews {
    let mut out = DerivedViews::default();
    let mut open: Option<usize> = None;
    for e in events {
        let p = e.payload();
        match e.kind() {
            "slide_enter" => {
                if let Some(i) = open.take() {
                    close_by_time(&mut out.views[i], e.at());
                }
                let Some(slide) = str_field(p, "slide") else { continue };
                out.views.push(CallView {
                    slide: slide.to_string(),
                    presentation: str_field(p, "presentation").map(str::to_string),
                    enter_uuid: e.uuid().to_string(),
                    enter_seq: e.seq(),
                    exit_uuid: None,
                    at: e.at(),
                    dwell_ms: 0,
                    dwell_inferred: false,
                    hcp_led: p.get("hcp_led").and_then(Value::as_bool).unwrap_or(false),
                    source: str_field(p, "source").map(str::to_string),
                    closed_by: None,
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
                            None => close_by_time(v, e.at()),
                        }
                        v.exit_uuid = Some(e.uuid().to_string());
                        v.closed_by = str_field(p, "closed_by").map(str::to_string);
                        open = None;
                    }
                    _ => out.orphan_exits += 1,
                }
            }
            "reaction" => {
                if let (Some(i), Some(value)) = (open, str_field(p, "value")) {
                    let slide = str_field(p, "slide");
                    if slide.is_none() {
                        out.reaction_slides.insert(e.uuid().to_string(), out.views[i].slide.clone());
                    }
                    if slide.is_none() || slide == Some(out.views[i].slide.as_str()) {
                        out.views[i].reactions.push(value.to_string());
                    }
                }
            }
            "call_ended" | "call_interrupted" => {
                if let Some(i) = open.take() {
                    close_by_time(&mut out.views[i], e.at());
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
