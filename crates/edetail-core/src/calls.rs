//! Calls (detailing sessions) and what happens in them: slide views with dwell from the
//! monotonic clock (paused while the app is in the background), navigation, reactions, custom
//! events, survey answers, notes and follow-up requests; recovery of calls cut off by a crash.
//!
//! The open slide view's state lives in the `calls` row and is updated in the same transaction
//! as the event that changes it, so the recorded events and the state never disagree.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::from_ms;
use crate::error::{Error, Result};
use crate::outbox::{self, NewEvent, Stamp};

/// A view counts once it lasted this long (or got a reaction): the industry's usual rule.
pub const VIEW_MIN_DWELL_MS: i64 = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    FaceToFace,
    Remote,
    Preview,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::FaceToFace => "face_to_face",
            Channel::Remote => "remote",
            Channel::Preview => "preview",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "face_to_face" => Some(Channel::FaceToFace),
            "remote" => Some(Channel::Remote),
            "preview" => Some(Channel::Preview),
            _ => None,
        }
    }
}

/// How the rep (or HCP) got to a slide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NavSource {
    /// Swipe or arrow key.
    Swipe,
    /// A link inside a slide (next/previous from slide code).
    Link,
    /// A jump to a named slide or presentation (goTo, gotoSlide).
    Jump,
    /// Picked from the slide overview.
    Overview,
    /// The first slide of a call.
    Start,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reaction {
    Positive,
    Neutral,
    Negative,
}

impl Reaction {
    pub fn parse(s: &str) -> Option<Reaction> {
        match s {
            "positive" => Some(Reaction::Positive),
            "neutral" => Some(Reaction::Neutral),
            "negative" => Some(Reaction::Negative),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Open,
    Completed,
    Interrupted,
}

/// A call as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    pub id: String,
    pub rep_id: String,
    pub hcp_id: Option<String>,
    pub channel: String,
    pub status: String,
    pub bundle_id: Option<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub ended_at: Option<chrono::DateTime<chrono::Utc>>,
    pub slide_id: Option<String>,
    pub presentation_id: Option<String>,
}

/// One derived slide view (from the raw enter/exit events).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlideView {
    pub slide_id: String,
    pub presentation_id: Option<String>,
    pub entered_seq: i64,
    pub dwell_ms: i64,
    pub source: Option<String>,
    pub hcp_led: bool,
    pub reactions: Vec<String>,
    /// Dwell of at least [`VIEW_MIN_DWELL_MS`] or a reaction.
    pub counts: bool,
    /// How the view ended: navigation, call_end, recovery.
    pub closed_by: Option<String>,
}

/// The open-view state of a call row.
#[derive(Debug, Clone)]
pub(crate) struct ViewState {
    pub status: String,
    pub slide_id: Option<String>,
    pub presentation_id: Option<String>,
    pub started_mono: Option<i64>,
    pub dwell_ms: i64,
    pub paused: bool,
    pub bundle_id: Option<String>,
    pub return_to: Option<String>,
}

impl ViewState {
    /// Dwell of the open view at monotonic time `mono`.
    pub fn dwell_at(&self, mono: i64) -> i64 {
        match (self.paused, self.started_mono) {
            (false, Some(s)) => self.dwell_ms + (mono - s).max(0),
            _ => self.dwell_ms,
        }
    }
}

pub(crate) fn load_view(tx: &Transaction<'_>, call_id: &str) -> Result<ViewState> {
    tx.prepare_cached(
        "SELECT status, slide_id, presentation_id, view_started_mono, view_dwell_ms, view_paused, bundle_id, return_to_slide
         FROM calls WHERE id = ?1",
    )?
    .query_row([call_id], |r| {
        Ok(ViewState {
            status: r.get(0)?,
            slide_id: r.get(1)?,
            presentation_id: r.get(2)?,
            started_mono: r.get(3)?,
            dwell_ms: r.get(4)?,
            paused: r.get(5)?,
            bundle_id: r.get(6)?,
            return_to: r.get(7)?,
        })
    })
    .optional()?
    .ok_or_else(|| Error::UnknownCall(call_id.into()))
}

pub(crate) fn open_view(tx: &Transaction<'_>, call_id: &str) -> Result<ViewState> {
    let v = load_view(tx, call_id)?;
    if v.status != "open" {
        return Err(Error::CallNotOpen(call_id.into()));
    }
    Ok(v)
}

/// Ids of every call still open.
pub(crate) fn open_call_ids(tx: &Transaction<'_>) -> Result<Vec<String>> {
    let mut st = tx.prepare_cached("SELECT id FROM calls WHERE status = 'open'")?;
    let rows = st.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Records an event for a call and refreshes the call's heartbeat in the same transaction.
pub(crate) fn record(tx: &Transaction<'_>, call_id: Option<&str>, kind: &str, payload: Value, stamp: Stamp) -> Result<(i64, String)> {
    let r = outbox::append(tx, &NewEvent { call_id, kind, payload }, stamp)?;
    if let Some(id) = call_id {
        heartbeat(tx, id, stamp)?;
    }
    Ok(r)
}

/// Stores the last moment the call was known alive and the open view's dwell then.
pub(crate) fn heartbeat(tx: &Transaction<'_>, call_id: &str, stamp: Stamp) -> Result<()> {
    let v = load_view(tx, call_id)?;
    if v.status != "open" {
        return Ok(());
    }
    tx.prepare_cached("UPDATE calls SET last_heartbeat_at = ?2, last_heartbeat_dwell_ms = ?3 WHERE id = ?1")?.execute(params![
        call_id,
        stamp.wall_ms,
        v.dwell_at(stamp.mono_ms)
    ])?;
    Ok(())
}

/// Closes the open slide view (if any) with its dwell.
pub(crate) fn close_view(tx: &Transaction<'_>, call_id: &str, closed_by: &str, stamp: Stamp, dwell_override: Option<i64>) -> Result<()> {
    let v = load_view(tx, call_id)?;
    let Some(slide) = v.slide_id.clone() else { return Ok(()) };
    let dwell = dwell_override.unwrap_or_else(|| v.dwell_at(stamp.mono_ms));
    outbox::append(
        tx,
        &NewEvent {
            call_id: Some(call_id),
            kind: "slide_exit",
            payload: json!({"slide": slide, "presentation": v.presentation_id, "dwell_ms": dwell, "closed_by": closed_by}),
        },
        stamp,
    )?;
    tx.prepare_cached(
        "UPDATE calls SET slide_id = NULL, presentation_id = NULL, view_started_mono = NULL, view_dwell_ms = 0, view_hcp_led = 0 WHERE id = ?1",
    )?
    .execute([call_id])?;
    Ok(())
}

/// Opens a slide view: closes the current one, records `slide_enter`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn enter_slide(
    tx: &Transaction<'_>,
    call_id: &str,
    slide: &str,
    presentation: &str,
    bundle_version: u64,
    source: NavSource,
    hcp_led: bool,
    stamp: Stamp,
) -> Result<()> {
    let v = open_view(tx, call_id)?;
    close_view(tx, call_id, "navigation", stamp, None)?;
    outbox::append(
        tx,
        &NewEvent {
            call_id: Some(call_id),
            kind: "slide_enter",
            payload: json!({"slide": slide, "presentation": presentation, "source": source, "hcp_led": hcp_led,
                            "bundle_version": bundle_version}),
        },
        stamp,
    )?;
    tx.prepare_cached(
        "UPDATE calls SET slide_id = ?2, presentation_id = ?3, view_started_mono = ?4, view_dwell_ms = 0, view_paused = ?5,
                          view_hcp_led = ?6 WHERE id = ?1",
    )?
    .execute(params![call_id, slide, presentation, stamp.mono_ms, v.paused, hcp_led])?;
    heartbeat(tx, call_id, stamp)
}

/// The app went to the background (`paused = true`) or came back: dwell stops and resumes.
pub(crate) fn set_paused(tx: &Transaction<'_>, call_id: &str, paused: bool, stamp: Stamp) -> Result<()> {
    let v = open_view(tx, call_id)?;
    if v.paused == paused {
        return Ok(());
    }
    let dwell = v.dwell_at(stamp.mono_ms);
    tx.prepare_cached("UPDATE calls SET view_paused = ?2, view_dwell_ms = ?3, view_started_mono = ?4 WHERE id = ?1")?.execute(params![
        call_id,
        paused,
        dwell,
        stamp.mono_ms
    ])?;
    let kind = if paused { "app_background" } else { "app_foreground" };
    record(tx, Some(call_id), kind, json!({"slide": v.slide_id}), stamp)?;
    Ok(())
}

/// After a crash or kill: every call still open is marked interrupted and its open slide view
/// closed at the last heartbeat. Returns the ids recovered.
pub(crate) fn recover_interrupted(tx: &Transaction<'_>, stamp: Stamp) -> Result<Vec<String>> {
    let open: Vec<(String, Option<i64>, Option<i64>, i64)> = {
        let mut st = tx.prepare(
            "SELECT id, last_heartbeat_at, last_heartbeat_dwell_ms, started_at FROM calls WHERE status = 'open' ORDER BY started_at",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    for (id, hb_at, hb_dwell, started) in &open {
        let last = hb_at.unwrap_or(*started);
        close_view(tx, id, "recovery", stamp, Some(hb_dwell.unwrap_or(0)))?;
        outbox::append(
            tx,
            &NewEvent { call_id: Some(id), kind: "call_interrupted", payload: json!({"last_heartbeat_at": from_ms(last)}) },
            stamp,
        )?;
        tx.execute("UPDATE calls SET status = 'interrupted', ended_at = ?2 WHERE id = ?1", params![id, last])?;
    }
    Ok(open.into_iter().map(|(id, ..)| id).collect())
}

/// Derives slide views from a call's raw events.
pub fn derive_views(events: &[crate::outbox::Event]) -> Vec<SlideView> {
    let mut views: Vec<SlideView> = Vec::new();
    let mut open: Option<usize> = None;
    for e in events {
        let p = &e.payload;
        let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
        match e.kind.as_str() {
            "slide_enter" => {
                views.push(SlideView {
                    slide_id: s("slide").unwrap_or_default(),
                    presentation_id: s("presentation"),
                    entered_seq: e.seq,
                    dwell_ms: 0,
                    source: s("source"),
                    hcp_led: p.get("hcp_led").and_then(Value::as_bool).unwrap_or(false),
                    reactions: Vec::new(),
                    counts: false,
                    closed_by: None,
                });
                open = Some(views.len() - 1);
            }
            "slide_exit" => {
                if let Some(i) = open.take() {
                    views[i].dwell_ms = p.get("dwell_ms").and_then(Value::as_i64).unwrap_or(0);
                    views[i].closed_by = s("closed_by");
                }
            }
            "reaction" => {
                if let (Some(i), Some(v)) = (open, s("value")) {
                    views[i].reactions.push(v);
                }
            }
            _ => {}
        }
    }
    for v in &mut views {
        v.counts = v.dwell_ms >= VIEW_MIN_DWELL_MS || !v.reactions.is_empty();
    }
    views
}
