//! Calls (detailing sessions) and what happens in them: slide views with dwell from the
//! monotonic clock (paused while the app is in the background), navigation, reactions, custom
//! events, survey answers, notes, follow-up requests and advocacy; recovery of calls cut off by
//! a crash.
//!
//! The open slide view's state lives in the `calls` row and is updated in the same transaction
//! as the event that changes it, so the recorded events and the state never disagree. The
//! [`Calls`] view (`device.calls()`) runs each interaction as one write transaction; where
//! next/previous/goto lead is decided by the pure `navigation` module.

use edetail_protocol::Tracking;
use edetail_protocol::payload::{self, AdvocacyAction, Payload};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::from_ms;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::navigation::{self, Move, NavAction, NavError, NavTarget, OrderedSlide, Position, first_visible, presentation_of, slide_url};
use crate::observe::CallChange;
use crate::outbox::{self, NewEvent, Outbox, Stamp};
use crate::suggestion::Suggestion;

/// A view counts with at least this dwell, or with a reaction (the event contract's rule).
pub use edetail_protocol::views::VIEW_MIN_DWELL_MS;

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
    /// Asked for by a doctor following the call remotely (remote detailing, with control).
    Remote,
}

impl NavSource {
    /// Its name in `slide_enter.source` (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            NavSource::Swipe => "swipe",
            NavSource::Link => "link",
            NavSource::Jump => "jump",
            NavSource::Overview => "overview",
            NavSource::Start => "start",
            NavSource::Remote => "remote",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reaction {
    Positive,
    Neutral,
    Negative,
}

impl Reaction {
    /// Its name in `reaction.value` (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Reaction::Positive => "positive",
            Reaction::Neutral => "neutral",
            Reaction::Negative => "negative",
        }
    }

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

/// How to start a call.
#[derive(Debug, Clone)]
pub struct StartCall {
    pub hcp_id: Option<String>,
    pub channel: Channel,
    pub bundle_id: String,
    /// Presentation to start in (default: the first visible one).
    pub presentation_id: Option<String>,
    pub location: Option<String>,
}

/// How a call started from a rep's sequence opens: on the sequence's first slide, recording
/// which sequence it follows as one `call_plan` event (see `sequence`) and keeping its `order`,
/// which the call's next/previous then follow.
#[derive(Debug, Clone)]
pub(crate) struct Opening {
    pub sequence_id: String,
    pub slide: String,
    pub presentation: String,
    pub call_plan: payload::CallPlan,
    pub order: Vec<OrderedSlide>,
}

/// A call just started: its id, the first slide, and what to offer the HCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStarted {
    pub call_id: String,
    pub first: NavTarget,
    /// `None` when the call has no HCP.
    pub suggestion: Option<Suggestion>,
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

/// Records an event for a call and refreshes the call's heartbeat in the same transaction
/// (the public `Calls::record` of any kind with a JSON payload).
pub(crate) fn record(tx: &Transaction<'_>, call_id: Option<&str>, kind: &str, payload: Value, stamp: Stamp) -> Result<(i64, String)> {
    let r = outbox::append(tx, &NewEvent { call_id, kind, payload }, stamp)?;
    if let Some(id) = call_id {
        heartbeat(tx, id, stamp)?;
    }
    Ok(r)
}

/// Records one of the core's own events, built as its typed payload, and refreshes the call's
/// heartbeat in the same transaction.
pub(crate) fn record_typed(tx: &Transaction<'_>, call_id: Option<&str>, payload: &Payload, stamp: Stamp) -> Result<(i64, String)> {
    let r = outbox::append_typed(tx, call_id, payload, stamp)?;
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
    let exit = payload::SlideExit {
        slide: Some(slide),
        presentation: v.presentation_id.clone(),
        dwell_ms: Some(dwell),
        closed_by: Some(closed_by.to_string()),
    };
    outbox::append_typed(tx, Some(call_id), &Payload::SlideExit(exit), stamp)?;
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
    let enter = payload::SlideEnter {
        slide: slide.to_string(),
        presentation: Some(presentation.to_string()),
        source: Some(source.as_str().to_string()),
        hcp_led,
        bundle_version: Some(bundle_version),
    };
    outbox::append_typed(tx, Some(call_id), &Payload::SlideEnter(enter), stamp)?;
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
    let lifecycle = payload::AppLifecycle { slide: v.slide_id };
    let event = if paused { Payload::AppBackground(lifecycle) } else { Payload::AppForeground(lifecycle) };
    record_typed(tx, Some(call_id), &event, stamp)?;
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
        let interrupted = payload::CallInterrupted { last_heartbeat_at: Some(from_ms(last)) };
        outbox::append_typed(tx, Some(id), &Payload::CallInterrupted(interrupted), stamp)?;
        tx.execute("UPDATE calls SET status = 'interrupted', ended_at = ?2 WHERE id = ?1", params![id, last])?;
    }
    Ok(open.into_iter().map(|(id, ..)| id).collect())
}

/// The tracking a call with `start.hcp_id` gets (full without an HCP).
pub(crate) fn tracking_for(ctx: &Context, start: &StartCall) -> Result<Tracking> {
    match &start.hcp_id {
        Some(h) => ctx.databases().read(|c| crate::tracking::consent_for(c, h)),
        None => Ok(Tracking::Full),
    }
}

/// The calls view of a device (`Device::calls`): navigating and recording in calls (started by
/// `Device::start_call`), ending and listing them. Each interaction is one write transaction: what it reads (the open slide, the
/// position) and what it records cannot be separated by another interaction.
#[derive(Debug, Clone, Copy)]
pub struct Calls<'a> {
    ctx: &'a Context,
}

impl<'a> Calls<'a> {
    pub(crate) fn new(ctx: &'a Context) -> Calls<'a> {
        Calls { ctx }
    }

    /// Opens the call row, records `call_started` (naming the offered `plan_id`) and enters
    /// the first slide. The caller checked that the bundle may be opened.
    pub(crate) fn begin(&self, start: StartCall, plan_id: Option<String>) -> Result<(String, NavTarget)> {
        self.begin_with(start, plan_id, None)
    }

    /// [`Calls::begin`]; with an `opening`, the call enters the sequence's first slide and
    /// records its `call_plan` right after `call_started`, in the same transaction (so exactly
    /// once per call; nothing when the HCP's consent is off, as for every event), and keeps the
    /// sequence's order for its next/previous in that transaction too.
    pub(crate) fn begin_with(
        &self,
        mut start: StartCall,
        plan_id: Option<String>,
        opening: Option<Opening>,
    ) -> Result<(String, NavTarget)> {
        let tracking = tracking_for(self.ctx, &start)?;
        if tracking != Tracking::Full {
            // Anonymous: recorded without the HCP id. Off: navigation state only, the outbox
            // refuses the call's events (see `outbox::append`).
            start.hcp_id = None;
        }
        let active = self.ctx.content().active(&start.bundle_id)?;
        let m = &active.manifest;
        let deck = match &start.presentation_id {
            Some(p) => m.presentation(p).ok_or_else(|| Error::Invalid(format!("unknown presentation {p:?}")))?,
            None => m.presentations.iter().find(|p| !p.hidden).ok_or_else(|| Error::Invalid("no visible presentation".into()))?,
        };
        let (deck, first) = match &opening {
            Some(o) => {
                let deck = m
                    .presentation(&o.presentation)
                    .filter(|p| p.slides.contains(&o.slide))
                    .ok_or_else(|| Error::UnknownSlide { bundle_id: start.bundle_id.clone(), slide: o.slide.clone() })?;
                (deck, o.slide.clone())
            }
            None => {
                let first =
                    first_visible(m, &deck.slides).ok_or_else(|| Error::Invalid(format!("presentation {:?} has no slides", deck.id)))?;
                (deck, first)
            }
        };
        let id = uuid::Uuid::new_v4().to_string();
        let stamp = self.ctx.stamp();
        let rep = self.ctx.rep_id();
        self.ctx.databases().write(|tx| {
            tx.execute(
                "INSERT INTO calls (id, rep_id, hcp_id, channel, status, bundle_id, location, started_at, tracking)
                 VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?8)",
                params![id, rep, start.hcp_id, start.channel.as_str(), start.bundle_id, start.location, stamp.wall_ms, tracking.as_str()],
            )?;
            let started = payload::CallStarted {
                rep_id: Some(rep.to_string()),
                hcp_id: start.hcp_id.clone(),
                channel: start.channel.as_str().to_string(),
                bundle_id: Some(start.bundle_id.clone()),
                bundle_version: Some(active.version),
                location: start.location.clone(),
                plan_id,
                microsite_id: None,
            };
            record_typed(tx, Some(&id), &Payload::CallStarted(started), stamp)?;
            if let Some(o) = &opening {
                let order = serde_json::to_string(&o.order).map_err(|e| Error::Invalid(e.to_string()))?;
                tx.execute("UPDATE calls SET sequence_id = ?2, sequence_order = ?3 WHERE id = ?1", params![id, o.sequence_id, order])?;
                record_typed(tx, Some(&id), &Payload::CallPlan(o.call_plan.clone()), stamp)?;
            }
            enter_slide(tx, &id, &first, &deck.id, active.version, NavSource::Start, false, stamp)
        })?;
        let url = slide_url(&start.bundle_id, m, &first);
        Ok((id, NavTarget { slide: first, presentation: deck.id.clone(), url, moved: true }))
    }

    /// An open call's view state, the bundle it presents and that bundle's active version.
    fn presenting(&self, tx: &Transaction<'_>, call_id: &str) -> Result<(ViewState, String, std::sync::Arc<crate::store::ActiveBundle>)> {
        let view = open_view(tx, call_id)?;
        let bundle_id = call_bundle(call_id, &view)?;
        let active = self.ctx.content().active(&bundle_id)?;
        Ok((view, bundle_id, active))
    }

    /// The shell shows a slide (swipe, overview pick): closes the open view and opens this one.
    pub fn enter_slide(&self, call_id: &str, slide_id: &str, source: NavSource, hcp_led: bool) -> Result<NavTarget> {
        let stamp = self.ctx.stamp();
        let target = self.ctx.databases().write(|tx| {
            let (_, bundle_id, active) = self.presenting(tx, call_id)?;
            let m = &active.manifest;
            let presentation =
                presentation_of(m, slide_id).ok_or_else(|| Error::UnknownSlide { bundle_id: bundle_id.clone(), slide: slide_id.into() })?;
            enter_slide(tx, call_id, slide_id, &presentation, active.version, source, hcp_led, stamp)?;
            Ok(NavTarget { url: slide_url(&bundle_id, m, slide_id), slide: slide_id.into(), presentation, moved: true })
        })?;
        self.moved(call_id, &target);
        Ok(target)
    }

    /// Tells the call's observers where it moved (after the move committed).
    fn moved(&self, call_id: &str, target: &NavTarget) {
        if target.moved {
            let change = CallChange::Moved { slide: target.slide.clone(), presentation: target.presentation.clone() };
            self.ctx.observers().notify(call_id, &change);
        }
    }

    /// Moves within the deck: next/previous skip hidden slides and honour sub-presentations
    /// (a slide's sub-presentation is shown first, then the slide); goto jumps anywhere
    /// (see [`navigation::resolve`]). In a call started from a sequence, next/previous from a
    /// slide of the sequence follow its order as it was when the call started
    /// ([`navigation::resolve_in_sequence`]).
    pub fn navigate(&self, call_id: &str, action: &NavAction, source: NavSource, hcp_led: bool) -> Result<NavTarget> {
        let stamp = self.ctx.stamp();
        let target = self.ctx.databases().write(|tx| {
            let (view, bundle_id, active) = self.presenting(tx, call_id)?;
            let m = &active.manifest;
            let current = view.slide_id.clone().unwrap_or_default();
            let cur_pres = view.presentation_id.clone().unwrap_or_default();
            let at = Position { slide: &current, presentation: &cur_pres, return_to: view.return_to.as_deref() };
            let resolved = match action {
                NavAction::Next | NavAction::Previous => match call_order(tx, call_id)? {
                    Some(order) => navigation::resolve_in_sequence(m, at, action, &order),
                    None => navigation::resolve(m, at, action),
                },
                NavAction::Goto { .. } => navigation::resolve(m, at, action),
            };
            match resolved {
                Ok(Move::Stay) => {
                    Ok(NavTarget { url: slide_url(&bundle_id, m, &current), slide: current, presentation: cur_pres, moved: false })
                }
                Ok(Move::Enter { slide, presentation, return_to }) => {
                    enter_slide(tx, call_id, &slide, &presentation, active.version, source, hcp_led, stamp)?;
                    tx.execute("UPDATE calls SET return_to_slide = ?2 WHERE id = ?1", params![call_id, return_to])?;
                    Ok(NavTarget { url: slide_url(&bundle_id, m, &slide), slide, presentation, moved: true })
                }
                Err(NavError::NotFound(what)) => Err(Error::UnknownSlide { bundle_id, slide: what }),
                Err(NavError::NoTarget) => Err(Error::Invalid("goto needs a slide, presentation or key message".into())),
            }
        })?;
        self.moved(call_id, &target);
        Ok(target)
    }

    /// Records a generic event, in a call or not. `kind` is an app-defined type (`app.` plus a
    /// name, see `edetail_protocol::EventKind`) or a built-in kind; anything else is
    /// `Error::Invalid`, since the hub would reject it. Returns (seq, uuid) once the event is
    /// durable.
    pub fn record(&self, call_id: Option<&str>, kind: &str, payload: Value) -> Result<(i64, String)> {
        let stamp = self.ctx.stamp();
        self.ctx.databases().write(|tx| {
            if let Some(id) = call_id {
                open_view(tx, id)?;
            }
            record(tx, call_id, kind, payload, stamp)
        })
    }

    /// Records an event of an open call whose payload names the slide open now: reading the
    /// slide and recording happen in one write transaction, so no navigation in between can
    /// attach the event to the wrong slide.
    pub(crate) fn record_on_slide(&self, call_id: &str, payload: impl FnOnce(Option<String>) -> Payload) -> Result<(i64, String)> {
        let stamp = self.ctx.stamp();
        self.ctx.databases().write(|tx| {
            let slide = open_view(tx, call_id)?.slide_id;
            record_typed(tx, Some(call_id), &payload(slide), stamp)
        })
    }

    /// Records one of the core's own events (a vendor kind's open map, say) in a call, or
    /// outside one, once the call is checked open.
    pub(crate) fn record_payload(&self, call_id: Option<&str>, payload: &Payload) -> Result<(i64, String)> {
        let stamp = self.ctx.stamp();
        self.ctx.databases().write(|tx| {
            if let Some(id) = call_id {
                open_view(tx, id)?;
            }
            record_typed(tx, call_id, payload, stamp)
        })
    }

    pub fn react(&self, call_id: &str, value: Reaction) -> Result<(i64, String)> {
        self.record_on_slide(call_id, |slide| Payload::Reaction(payload::Reaction { slide, value: value.as_str().to_string() }))
    }

    pub fn track(&self, call_id: &str, event: &str, data: Value) -> Result<(i64, String)> {
        self.record_on_slide(call_id, |slide| Payload::Custom(payload::Custom { slide, event: Some(event.to_string()), data }))
    }

    pub fn answer(&self, call_id: &str, question: &str, answers: &[String], text: Option<&str>) -> Result<(i64, String)> {
        self.record_on_slide(call_id, |slide| {
            Payload::SurveyAnswer(payload::SurveyAnswer {
                slide,
                question: question.to_string(),
                answers: answers.to_vec(),
                text: text.map(str::to_string),
            })
        })
    }

    /// A note by the rep about the call (personal data: stored, never logged).
    pub fn note(&self, call_id: &str, text: &str) -> Result<(i64, String)> {
        let stamp = self.ctx.stamp();
        self.ctx.databases().write(|tx| {
            open_view(tx, call_id)?;
            tx.execute("UPDATE calls SET notes = COALESCE(notes || char(10), '') || ?2 WHERE id = ?1", params![call_id, text])?;
            record_typed(tx, Some(call_id), &Payload::Note(payload::Note { text: text.to_string() }), stamp)
        })
    }

    pub fn follow_up(&self, call_id: &str, topic: &str, note: Option<&str>) -> Result<(i64, String)> {
        self.record_on_slide(call_id, |slide| {
            Payload::FollowUpRequest(payload::FollowUpRequest { slide, topic: topic.to_string(), note: note.map(str::to_string) })
        })
    }

    /// Evidence that the HCP advocates the product (agreed to speak, referred a colleague, shared
    /// the microsite), recorded as `advocacy` with the slide on screen. No free text: the action
    /// only. Follows the call's tracking like every event (nothing recorded when consent is off).
    pub fn advocacy(&self, call_id: &str, action: AdvocacyAction) -> Result<(i64, String)> {
        self.record_on_slide(call_id, |slide| Payload::Advocacy(payload::Advocacy { slide, action }))
    }

    /// Keeps the open calls' "last known alive" moment fresh (the shell calls this every few
    /// seconds); after a crash, dwell is closed here.
    pub fn heartbeat(&self) -> Result<()> {
        let stamp = self.ctx.stamp();
        self.ctx.databases().write(|tx| {
            for id in open_call_ids(tx)? {
                heartbeat(tx, &id, stamp)?;
            }
            Ok(())
        })
    }

    /// The app went to the background: dwell pauses in every open call.
    pub fn app_background(&self) -> Result<()> {
        self.set_paused(true)
    }

    /// The app is visible again: dwell resumes.
    pub fn app_foreground(&self) -> Result<()> {
        self.set_paused(false)
    }

    fn set_paused(&self, paused: bool) -> Result<()> {
        let stamp = self.ctx.stamp();
        self.ctx.databases().write(|tx| {
            for id in open_call_ids(tx)? {
                set_paused(tx, &id, paused, stamp)?;
            }
            Ok(())
        })
    }

    /// Ends a call: closes the open view and records `call_ended`.
    pub fn end_call(&self, call_id: &str) -> Result<()> {
        let stamp = self.ctx.stamp();
        self.ctx.databases().write(|tx| {
            open_view(tx, call_id)?;
            close_view(tx, call_id, "call_end", stamp, None)?;
            let started: i64 = tx.query_row("SELECT started_at FROM calls WHERE id = ?1", [call_id], |r| r.get(0))?;
            let ended = payload::CallEnded { duration_ms: Some(stamp.wall_ms - started) };
            outbox::append_typed(tx, Some(call_id), &Payload::CallEnded(ended), stamp)?;
            tx.execute("UPDATE calls SET status = 'completed', ended_at = ?2 WHERE id = ?1", params![call_id, stamp.wall_ms])?;
            if crate::tracking::call_tracking(tx, call_id)? == Tracking::Off {
                // Nothing of an untracked call is kept once it ends.
                tx.execute("DELETE FROM call_state WHERE call_id = ?1", [call_id])?;
                tx.execute("DELETE FROM calls WHERE id = ?1", [call_id])?;
            }
            Ok(())
        })?;
        self.ctx.observers().notify(call_id, &CallChange::Ended);
        Ok(())
    }

    /// The open call, if any (the most recent when several are open).
    pub fn open_call(&self) -> Result<Option<String>> {
        self.ctx.databases().read(|c| {
            Ok(c.query_row("SELECT id FROM calls WHERE status = 'open' ORDER BY started_at DESC LIMIT 1", [], |r| r.get(0)).optional()?)
        })
    }

    /// Every call on this device, oldest first.
    pub fn list(&self) -> Result<Vec<Call>> {
        self.ctx.databases().read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, rep_id, hcp_id, channel, status, bundle_id, started_at, ended_at, slide_id, presentation_id
                 FROM calls ORDER BY started_at, id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(Call {
                    id: r.get(0)?,
                    rep_id: r.get(1)?,
                    hcp_id: r.get(2)?,
                    channel: r.get(3)?,
                    status: r.get(4)?,
                    bundle_id: r.get(5)?,
                    started_at: from_ms(r.get(6)?),
                    ended_at: r.get::<_, Option<i64>>(7)?.map(from_ms),
                    slide_id: r.get(8)?,
                    presentation_id: r.get(9)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// The tracking level a call records at (from the HCP's consent when it started: `off`
    /// records nothing of it; `full` for calls without an HCP).
    pub fn tracking(&self, call_id: &str) -> Result<Tracking> {
        self.ctx.databases().read(|c| {
            let known: Option<i64> = c.query_row("SELECT 1 FROM calls WHERE id = ?1", [call_id], |r| r.get(0)).optional()?;
            known.ok_or_else(|| Error::UnknownCall(call_id.into()))?;
            crate::tracking::call_tracking(c, call_id)
        })
    }

    /// One call by id.
    pub fn get(&self, call_id: &str) -> Result<Call> {
        self.list()?.into_iter().find(|c| c.id == call_id).ok_or_else(|| Error::UnknownCall(call_id.into()))
    }

    /// Derived slide views of a call (2 s or a reaction counts as a view).
    pub fn slide_views(&self, call_id: &str) -> Result<Vec<SlideView>> {
        Ok(derive_views(&Outbox::new(self.ctx.databases()).for_call(call_id)?))
    }

    /// Per-call slide state (`edetail.state.save`).
    /// Told to the call's observers once stored.
    pub fn state_save(&self, call_id: &str, key: &str, value: &Value) -> Result<()> {
        self.ctx.databases().write(|tx| {
            open_view(tx, call_id)?;
            tx.execute(
                "INSERT INTO call_state (call_id, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (call_id, key) DO UPDATE SET value = excluded.value",
                params![call_id, key, value.to_string()],
            )?;
            Ok(())
        })?;
        self.ctx.observers().notify(call_id, &CallChange::State { key: key.to_string(), value: value.clone() });
        Ok(())
    }

    pub fn state_load(&self, call_id: &str, key: &str) -> Result<Option<Value>> {
        let raw: Option<String> = self.ctx.databases().read(|c| {
            Ok(c.query_row("SELECT value FROM call_state WHERE call_id = ?1 AND key = ?2", params![call_id, key], |r| r.get(0))
                .optional()?)
        })?;
        Ok(raw.and_then(|s| serde_json::from_str(&s).ok()))
    }
}

/// The order a call started from a sequence follows (`None`: the deck's).
fn call_order(tx: &Transaction<'_>, call_id: &str) -> Result<Option<Vec<OrderedSlide>>> {
    let raw: Option<String> =
        tx.prepare_cached("SELECT sequence_order FROM calls WHERE id = ?1")?.query_row([call_id], |r| r.get(0)).optional()?.flatten();
    raw.map(|s| serde_json::from_str(&s).map_err(|_| Error::Invalid(format!("call {call_id} has an unreadable sequence order"))))
        .transpose()
}

/// The bundle an open call presents.
fn call_bundle(call_id: &str, view: &ViewState) -> Result<String> {
    view.bundle_id.clone().ok_or_else(|| Error::Invalid(format!("call {call_id} has no bundle")))
}

/// Derives slide views from a call's raw events: the event contract's one derivation and view
/// rule (`edetail_protocol::views`), the same the hub's analytics use.
pub fn derive_views(events: &[crate::outbox::Event]) -> Vec<SlideView> {
    edetail_protocol::views::derive_views(events).views.into_iter().map(SlideView::from).collect()
}

impl From<edetail_protocol::views::CallView> for SlideView {
    fn from(v: edetail_protocol::views::CallView) -> SlideView {
        SlideView {
            slide_id: v.slide,
            presentation_id: v.presentation,
            entered_seq: v.enter_seq.unwrap_or(0),
            dwell_ms: v.dwell_ms,
            source: v.source,
            hcp_led: v.hcp_led,
            reactions: v.reactions,
            counts: v.counts,
            closed_by: v.closed_by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `slide_enter.source`, `reaction.value` and `call_started.channel` carry these names; they
    /// must stay the serialised forms the JSON payloads used to carry.
    #[test]
    fn payload_names_are_the_serialised_names() {
        let name = |v: serde_json::Value| v.as_str().unwrap().to_string();
        for s in [NavSource::Swipe, NavSource::Link, NavSource::Jump, NavSource::Overview, NavSource::Start, NavSource::Remote] {
            assert_eq!(s.as_str(), name(serde_json::to_value(s).unwrap()));
        }
        for r in [Reaction::Positive, Reaction::Neutral, Reaction::Negative] {
            assert_eq!(r.as_str(), name(serde_json::to_value(r).unwrap()));
            assert_eq!(Reaction::parse(r.as_str()), Some(r));
        }
        for c in [Channel::FaceToFace, Channel::Remote, Channel::Preview] {
            assert_eq!(c.as_str(), name(serde_json::to_value(c).unwrap()));
        }
    }
}
