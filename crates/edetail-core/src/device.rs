//! `Device`: one signed-in rep's data directory, opened. The facade the FFI layer, the sync
//! engine and the CLI use: content (install, list, open checks), assets, calls and recording,
//! the slide bridge, the outbox and the trusted clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use edetail_bundle::{Manifest, PublicKey, ReadOptions, Slide};
use edetail_protocol::Tracking;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};

use crate::assets::AssetResolver;
use crate::blobs::BlobStore;
use crate::calls::{self, Call, Channel, NavSource, Reaction, SlideView};
use crate::clock::{Clock, SystemClock, from_ms, to_ms};
use crate::db::{Databases, DbKey};
use crate::error::{Error, Result};
use crate::outbox::{Outbox, Stamp};
use crate::plans::Suggestion;
use crate::store::{ContentStore, InstallOutcome};
use crate::validity::{TimeState, TrustedClock, Unopenable, check_openable};

/// How a data directory is opened.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// The signed-in rep (an id, never a name).
    pub rep_id: String,
    /// Publisher keys whose signatures are trusted.
    pub trusted_keys: Vec<PublicKey>,
    /// Accept unsigned bundles (preview and authoring only; default false).
    pub allow_unsigned: bool,
    /// Refuse to open content when the last sync is older than this (None: no limit).
    pub max_offline: Option<Duration>,
    pub clock: Arc<dyn Clock>,
    /// The SQLCipher key of the database (from the platform keystore). `None`: a plain
    /// database. Never logged (`Debug` redacts it).
    pub db_key: Option<DbKey>,
}

impl DeviceConfig {
    pub fn new(rep_id: impl Into<String>) -> Self {
        DeviceConfig {
            rep_id: rep_id.into(),
            trusted_keys: Vec::new(),
            allow_unsigned: false,
            max_offline: None,
            clock: Arc::new(SystemClock::new()),
            db_key: None,
        }
    }
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

/// A call just started: its id, the first slide, and what to offer the HCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStarted {
    pub call_id: String,
    pub first: NavTarget,
    /// `None` when the call has no HCP.
    pub suggestion: Option<Suggestion>,
}

/// A navigation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NavAction {
    Next,
    Previous,
    /// To a slide by id, or the first slide of a presentation, or a slide by key message.
    Goto {
        slide: Option<String>,
        presentation: Option<String>,
        key_message: Option<String>,
    },
}

/// Where navigation landed; the shell loads `url` when `moved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NavTarget {
    pub slide: String,
    pub presentation: String,
    pub url: String,
    /// False when there was nowhere to go ("next" on the last slide, "prev" on the first):
    /// nothing was recorded and the shell must not reload the slide (it would wipe its state).
    pub moved: bool,
}

/// An open data directory.
#[derive(Debug)]
pub struct Device {
    dir: PathBuf,
    db: Arc<Databases>,
    store: ContentStore,
    time: TrustedClock,
    session: i64,
    config: DeviceConfig,
    /// Held for the Device's lifetime: one at a time per data directory. Declared last so it
    /// is released only after the database connections have closed.
    _lock: std::fs::File,
}

const META_SESSION: &str = "session";
const META_TIME_FLOOR: &str = "time_floor_ms";
const META_LAST_HUB_SYNC: &str = "last_hub_sync_ms";
const META_DEVICE_ID: &str = "device_id";
/// The database file inside a data directory.
pub const DB_FILE: &str = "edetail.sqlite3";

impl Device {
    /// Opens (creating if needed) a rep's data directory. Calls left open by a crash are marked
    /// interrupted, their open slide views closed at the last heartbeat.
    pub fn open(dir: &Path, config: DeviceConfig) -> Result<Device> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let lock_path = dir.join("lock");
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(Error::io(&lock_path))?;
        lock.try_lock().map_err(|_| Error::Locked(dir.to_path_buf()))?;
        let db = Arc::new(Databases::open(&dir.join(DB_FILE), config.db_key.as_ref())?);
        let blobs = BlobStore::open(dir)?;
        blobs.clear_tmp()?;
        let (session, state) = db.write(|tx| {
            let get = |k: &str| -> Result<Option<String>> {
                Ok(tx.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0)).optional()?)
            };
            let session = get(META_SESSION)?.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) + 1;
            let floor = get(META_TIME_FLOOR)?.and_then(|v| v.parse().ok()).unwrap_or(0);
            let hub = get(META_LAST_HUB_SYNC)?.and_then(|v| v.parse().ok()).unwrap_or(0);
            if get(META_DEVICE_ID)?.is_none() {
                set_meta(tx, META_DEVICE_ID, &uuid::Uuid::new_v4().to_string())?;
            }
            set_meta(tx, META_SESSION, &session.to_string())?;
            Ok((session, TimeState { floor_ms: floor, last_hub_sync_ms: hub }))
        })?;
        let time = TrustedClock::new(config.clock.clone(), state);
        let read_opts =
            ReadOptions { trusted_keys: config.trusted_keys.clone(), require_signature: !config.allow_unsigned, ..Default::default() };
        let store = ContentStore::new(db.clone(), blobs, read_opts);
        let device = Device { dir: dir.to_path_buf(), db, store, time, session, config, _lock: lock };
        let stamp = device.stamp();
        let recovered = device.db.write(|tx| calls::recover_interrupted(tx, stamp))?;
        if !recovered.is_empty() {
            tracing::info!(count = recovered.len(), "recovered interrupted calls");
        }
        Ok(device)
    }

    /// Encrypts the plain database of a data directory (not open by any `Device`) with `key`,
    /// through `sqlcipher_export` into a new file that then replaces the old one. Opening a plain
    /// database with a key is an error, never a silent migration: the app calls this once.
    pub fn encrypt_existing(dir: &Path, key: &DbKey) -> Result<()> {
        let lock_path = dir.join("lock");
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(Error::io(&lock_path))?;
        lock.try_lock().map_err(|_| Error::Locked(dir.to_path_buf()))?;
        crate::db::encrypt_plain(&dir.join(DB_FILE), key)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn config(&self) -> &DeviceConfig {
        &self.config
    }

    pub fn rep_id(&self) -> &str {
        &self.config.rep_id
    }

    /// This device's stable id (created with the data directory).
    pub fn device_id(&self) -> Result<String> {
        self.db.read(|c| Ok(c.query_row("SELECT value FROM meta WHERE key = ?1", [META_DEVICE_ID], |r| r.get(0))?))
    }

    pub fn content(&self) -> &ContentStore {
        &self.store
    }

    pub fn assets(&self) -> AssetResolver<'_> {
        AssetResolver { store: &self.store }
    }

    pub fn outbox(&self) -> Outbox<'_> {
        Outbox { db: &self.db }
    }

    pub fn databases(&self) -> &Databases {
        &self.db
    }

    /// When an event happens: the device's own wall clock (raw: the hub estimates the skew at
    /// upload and stores corrected times beside it), this process's session and monotonic time.
    fn stamp(&self) -> Stamp {
        let clock = self.time.clock();
        Stamp { wall_ms: to_ms(clock.now_utc()), session: self.session, mono_ms: clock.monotonic().as_millis() as i64 }
    }

    /// Trusted time (never runs backwards; see `validity`). Persists the floor.
    pub fn trusted_now(&self) -> Result<DateTime<Utc>> {
        let (now, state) = self.time.now();
        self.persist_time(state)?;
        Ok(now)
    }

    fn persist_time(&self, s: TimeState) -> Result<()> {
        self.db.write(|tx| {
            set_meta(tx, META_TIME_FLOOR, &s.floor_ms.to_string())?;
            set_meta(tx, META_LAST_HUB_SYNC, &s.last_hub_sync_ms.to_string())
        })
    }

    /// The hub's clock at a successful sync.
    pub fn observe_hub_time(&self, hub_now: DateTime<Utc>) -> Result<()> {
        let s = self.time.observe_hub_time(hub_now);
        self.persist_time(s)
    }

    /// Installs a bundle zip (see [`ContentStore::install_zip`]).
    pub fn install_zip(&self, path: &Path) -> Result<InstallOutcome> {
        let now = to_ms(self.trusted_now()?);
        self.store.install_zip(path, now)
    }

    /// Whether a bundle may be opened now; the reason when not.
    pub fn check_openable(&self, bundle_id: &str) -> Result<()> {
        let active = self.store.active(bundle_id)?;
        let now = self.trusted_now()?;
        let s = self.time.state();
        let last_sync = (s.last_hub_sync_ms > 0).then(|| from_ms(s.last_hub_sync_ms));
        let m = &active.manifest;
        check_openable(now, m.valid_from, m.valid_until, active.revoked, last_sync, self.config.max_offline)
            .map_err(|reason| Error::NotOpenable { bundle_id: bundle_id.into(), reason })
    }

    /// Why a bundle cannot be opened now, if it cannot (for the app's content list).
    pub fn unopenable_reason(&self, bundle_id: &str) -> Result<Option<Unopenable>> {
        match self.check_openable(bundle_id) {
            Ok(()) => Ok(None),
            Err(Error::NotOpenable { reason, .. }) => Ok(Some(reason)),
            Err(e) => Err(e),
        }
    }

    // ---- calls -------------------------------------------------------------------------

    /// Starts a call on an openable bundle and enters its first slide. Returns the call id.
    /// `call_started` names the hub plan offered for the HCP (`plan_id`, null when none).
    pub fn start_call(&self, start: StartCall) -> Result<(String, NavTarget)> {
        self.check_openable(&start.bundle_id)?;
        let plan_id = match (&start.hcp_id, self.tracking_for(&start)?) {
            (Some(h), Tracking::Full) => self.plan_for(h, &start.bundle_id)?.map(|p| p.plan_id),
            _ => None,
        };
        self.begin_call(start, plan_id)
    }

    /// [`Device::start_call`], also answering what to offer the HCP: the hub's plan when valid,
    /// else the local suggestion (`None` without an HCP). The offered plan's id is recorded in
    /// `call_started` so the hub can measure whether plans are followed.
    pub fn start_call_with_suggestion(&self, start: StartCall) -> Result<CallStarted> {
        self.check_openable(&start.bundle_id)?;
        // No per-HCP plan or profile unless the HCP consents to full tracking.
        let suggestion = match (&start.hcp_id, self.tracking_for(&start)?) {
            (Some(h), Tracking::Full) => Some(self.suggestion(h, &start.bundle_id)?),
            _ => None,
        };
        let plan_id = suggestion.as_ref().and_then(|s| s.plan_id().map(str::to_string));
        let (call_id, first) = self.begin_call(start, plan_id)?;
        Ok(CallStarted { call_id, first, suggestion })
    }

    /// The tracking a call with `start.hcp_id` gets (full without an HCP).
    fn tracking_for(&self, start: &StartCall) -> Result<Tracking> {
        match &start.hcp_id {
            Some(h) => self.consent_for(h),
            None => Ok(Tracking::Full),
        }
    }

    fn begin_call(&self, mut start: StartCall, plan_id: Option<String>) -> Result<(String, NavTarget)> {
        let tracking = self.tracking_for(&start)?;
        if tracking != Tracking::Full {
            // Anonymous: recorded without the HCP id. Off: navigation state only, the outbox
            // refuses the call's events (see `outbox::append`).
            start.hcp_id = None;
        }
        let active = self.store.active(&start.bundle_id)?;
        let m = &active.manifest;
        let deck = match &start.presentation_id {
            Some(p) => m.presentation(p).ok_or_else(|| Error::Invalid(format!("unknown presentation {p:?}")))?,
            None => m.presentations.iter().find(|p| !p.hidden).ok_or_else(|| Error::Invalid("no visible presentation".into()))?,
        };
        let first = first_visible(m, &deck.slides).ok_or_else(|| Error::Invalid(format!("presentation {:?} has no slides", deck.id)))?;
        let id = uuid::Uuid::new_v4().to_string();
        let stamp = self.stamp();
        let rep = self.config.rep_id.clone();
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO calls (id, rep_id, hcp_id, channel, status, bundle_id, location, started_at, tracking)
                 VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?8)",
                params![id, rep, start.hcp_id, start.channel.as_str(), start.bundle_id, start.location, stamp.wall_ms, tracking.as_str()],
            )?;
            calls::record(
                tx,
                Some(&id),
                "call_started",
                json!({"rep_id": rep, "hcp_id": start.hcp_id, "channel": start.channel, "bundle_id": start.bundle_id,
                       "bundle_version": active.version, "location": start.location, "plan_id": plan_id}),
                stamp,
            )?;
            calls::enter_slide(tx, &id, &first, &deck.id, active.version, NavSource::Start, false, stamp)
        })?;
        let url = slide_url(&start.bundle_id, m, &first);
        Ok((id, NavTarget { slide: first, presentation: deck.id.clone(), url, moved: true }))
    }

    /// The shell shows a slide (swipe, overview pick): closes the open view and opens this one.
    pub fn enter_slide(&self, call_id: &str, slide_id: &str, source: NavSource, hcp_led: bool) -> Result<NavTarget> {
        let (bundle_id, _) = self.call_bundle(call_id)?;
        let active = self.store.active(&bundle_id)?;
        let m = &active.manifest;
        let presentation =
            presentation_of(m, slide_id).ok_or_else(|| Error::UnknownSlide { bundle_id: bundle_id.clone(), slide: slide_id.into() })?;
        let stamp = self.stamp();
        self.db.write(|tx| calls::enter_slide(tx, call_id, slide_id, &presentation, active.version, source, hcp_led, stamp))?;
        Ok(NavTarget { url: slide_url(&bundle_id, m, slide_id), slide: slide_id.into(), presentation, moved: true })
    }

    /// Moves within the deck: next/previous skip hidden slides and honour sub-presentations
    /// (a slide's sub-presentation is shown first, then the slide); goto jumps anywhere.
    pub fn navigate(&self, call_id: &str, action: &NavAction, source: NavSource, hcp_led: bool) -> Result<NavTarget> {
        let (bundle_id, view) = self.call_bundle(call_id)?;
        let active = self.store.active(&bundle_id)?;
        let m = &active.manifest;
        let current = view.slide_id.clone().unwrap_or_default();
        let cur_pres = view.presentation_id.clone().unwrap_or_default();
        let not_found = |what: String| Error::UnknownSlide { bundle_id: bundle_id.clone(), slide: what };
        let mut return_to = view.return_to.clone();
        let mut returning = false;
        let target: String = match action {
            NavAction::Next | NavAction::Previous => {
                let deck = m.presentation(&cur_pres).ok_or_else(|| not_found(cur_pres.clone()))?;
                let pos = deck.slides.iter().position(|s| *s == current).ok_or_else(|| not_found(current.clone()))?;
                let step = |i: usize| if *action == NavAction::Next { i.checked_add(1) } else { i.checked_sub(1) };
                let mut i = step(pos);
                let mut found = None;
                while let Some(j) = i.filter(|j| *j < deck.slides.len()) {
                    let sid = &deck.slides[j];
                    if m.slide(sid).is_some_and(|s| !s.hidden) {
                        found = Some(sid.clone());
                        break;
                    }
                    i = step(j);
                }
                match (found, action, return_to.take()) {
                    (Some(s), _, rt) => {
                        return_to = rt;
                        s
                    }
                    // End of a sub-presentation: continue with the slide that required it.
                    (None, NavAction::Next, Some(parent)) => {
                        returning = true;
                        parent
                    }
                    // Next on the last slide, previous on the first: stay, record nothing.
                    (None, _, _) => {
                        let url = slide_url(&bundle_id, m, &current);
                        return Ok(NavTarget { slide: current, presentation: cur_pres, url, moved: false });
                    }
                }
            }
            NavAction::Goto { slide, presentation, key_message } => {
                if let Some(s) = slide {
                    m.slide(s).map(|s| s.id.clone()).ok_or_else(|| not_found(s.clone()))?
                } else if let Some(k) = key_message {
                    slide_by_key_message(m, k).ok_or_else(|| not_found(k.clone()))?
                } else if let Some(p) = presentation {
                    let deck = m.presentation(p).ok_or_else(|| not_found(p.clone()))?;
                    first_visible(m, &deck.slides).or_else(|| deck.slides.first().cloned()).ok_or_else(|| not_found(p.clone()))?
                } else {
                    return Err(Error::Invalid("goto needs a slide, presentation or key message".into()));
                }
            }
        };
        // Entering (by next) a slide whose sub-presentation has not been shown: show it first.
        let mut dest = target.clone();
        if *action == NavAction::Next && return_to.is_none() && !returning {
            if let Some(sub) = m.slide(&target).and_then(|s| s.sub_presentation.clone())
                && let Some(first) = m.presentation(&sub).and_then(|d| d.slides.first().cloned())
            {
                return_to = Some(target.clone());
                dest = first;
            }
        } else if return_to.as_deref() == Some(dest.as_str()) {
            return_to = None;
        }
        let presentation = presentation_of(m, &dest).ok_or_else(|| not_found(dest.clone()))?;
        let stamp = self.stamp();
        self.db.write(|tx| {
            calls::enter_slide(tx, call_id, &dest, &presentation, active.version, source, hcp_led, stamp)?;
            tx.execute("UPDATE calls SET return_to_slide = ?2 WHERE id = ?1", params![call_id, return_to])?;
            Ok(())
        })?;
        Ok(NavTarget { url: slide_url(&bundle_id, m, &dest), slide: dest, presentation, moved: true })
    }

    fn call_bundle(&self, call_id: &str) -> Result<(String, calls::ViewState)> {
        let view = self.db.write(|tx| calls::open_view(tx, call_id))?;
        let bundle = view.bundle_id.clone().ok_or_else(|| Error::Invalid(format!("call {call_id} has no bundle")))?;
        Ok((bundle, view))
    }

    /// Records a generic event, in a call or not. `kind` is an app-defined type (`app.` plus a
    /// name, see `edetail_protocol::EventKind`) or a built-in kind; anything else is
    /// `Error::Invalid`, since the hub would reject it. Returns (seq, uuid) once the event is
    /// durable.
    pub fn record(&self, call_id: Option<&str>, kind: &str, payload: Value) -> Result<(i64, String)> {
        let stamp = self.stamp();
        self.db.write(|tx| {
            if let Some(id) = call_id {
                calls::open_view(tx, id)?;
            }
            calls::record(tx, call_id, kind, payload, stamp)
        })
    }

    fn current_slide(&self, call_id: &str) -> Result<Option<String>> {
        Ok(self.db.write(|tx| calls::open_view(tx, call_id))?.slide_id)
    }

    pub fn react(&self, call_id: &str, value: Reaction) -> Result<(i64, String)> {
        let slide = self.current_slide(call_id)?;
        self.record(Some(call_id), "reaction", json!({"slide": slide, "value": value}))
    }

    pub fn track(&self, call_id: &str, event: &str, data: Value) -> Result<(i64, String)> {
        let slide = self.current_slide(call_id)?;
        self.record(Some(call_id), "custom", json!({"slide": slide, "event": event, "data": data}))
    }

    pub fn answer(&self, call_id: &str, question: &str, answers: &[String], text: Option<&str>) -> Result<(i64, String)> {
        let slide = self.current_slide(call_id)?;
        self.record(Some(call_id), "survey_answer", json!({"slide": slide, "question": question, "answers": answers, "text": text}))
    }

    /// A note by the rep about the call (personal data: stored, never logged).
    pub fn note(&self, call_id: &str, text: &str) -> Result<(i64, String)> {
        let stamp = self.stamp();
        self.db.write(|tx| {
            calls::open_view(tx, call_id)?;
            tx.execute("UPDATE calls SET notes = COALESCE(notes || char(10), '') || ?2 WHERE id = ?1", params![call_id, text])?;
            calls::record(tx, Some(call_id), "note", json!({"text": text}), stamp)
        })
    }

    pub fn follow_up(&self, call_id: &str, topic: &str, note: Option<&str>) -> Result<(i64, String)> {
        let slide = self.current_slide(call_id)?;
        self.record(Some(call_id), "follow_up_request", json!({"slide": slide, "topic": topic, "note": note}))
    }

    /// Keeps the open calls' "last known alive" moment fresh (the shell calls this every few
    /// seconds); after a crash, dwell is closed here.
    pub fn heartbeat(&self) -> Result<()> {
        let stamp = self.stamp();
        self.db.write(|tx| {
            for id in calls::open_call_ids(tx)? {
                calls::heartbeat(tx, &id, stamp)?;
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
        let stamp = self.stamp();
        self.db.write(|tx| {
            for id in calls::open_call_ids(tx)? {
                calls::set_paused(tx, &id, paused, stamp)?;
            }
            Ok(())
        })
    }

    /// Ends a call: closes the open view and records `call_ended`.
    pub fn end_call(&self, call_id: &str) -> Result<()> {
        let stamp = self.stamp();
        self.db.write(|tx| {
            calls::open_view(tx, call_id)?;
            calls::close_view(tx, call_id, "call_end", stamp, None)?;
            let started: i64 = tx.query_row("SELECT started_at FROM calls WHERE id = ?1", [call_id], |r| r.get(0))?;
            crate::outbox::append(
                tx,
                &crate::outbox::NewEvent {
                    call_id: Some(call_id),
                    kind: "call_ended",
                    payload: json!({"duration_ms": stamp.wall_ms - started}),
                },
                stamp,
            )?;
            tx.execute("UPDATE calls SET status = 'completed', ended_at = ?2 WHERE id = ?1", params![call_id, stamp.wall_ms])?;
            if crate::privacy::call_tracking(tx, call_id)? == Tracking::Off {
                // Nothing of an untracked call is kept once it ends.
                tx.execute("DELETE FROM call_state WHERE call_id = ?1", [call_id])?;
                tx.execute("DELETE FROM calls WHERE id = ?1", [call_id])?;
            }
            Ok(())
        })
    }

    /// The open call, if any (the most recent when several are open).
    pub fn open_call(&self) -> Result<Option<String>> {
        self.db.read(|c| {
            Ok(c.query_row("SELECT id FROM calls WHERE status = 'open' ORDER BY started_at DESC LIMIT 1", [], |r| r.get(0)).optional()?)
        })
    }

    pub fn calls(&self) -> Result<Vec<Call>> {
        self.db.read(|c| {
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

    pub fn call(&self, call_id: &str) -> Result<Call> {
        self.calls()?.into_iter().find(|c| c.id == call_id).ok_or_else(|| Error::UnknownCall(call_id.into()))
    }

    /// Derived slide views of a call (2 s or a reaction counts as a view).
    pub fn slide_views(&self, call_id: &str) -> Result<Vec<SlideView>> {
        Ok(calls::derive_views(&self.outbox().for_call(call_id)?))
    }

    /// Per-call slide state (`edetail.state.save`).
    pub fn state_save(&self, call_id: &str, key: &str, value: &Value) -> Result<()> {
        self.db.write(|tx| {
            calls::open_view(tx, call_id)?;
            tx.execute(
                "INSERT INTO call_state (call_id, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (call_id, key) DO UPDATE SET value = excluded.value",
                params![call_id, key, value.to_string()],
            )?;
            Ok(())
        })
    }

    pub fn state_load(&self, call_id: &str, key: &str) -> Result<Option<Value>> {
        let raw: Option<String> = self.db.read(|c| {
            Ok(c.query_row("SELECT value FROM call_state WHERE call_id = ?1 AND key = ?2", params![call_id, key], |r| r.get(0))
                .optional()?)
        })?;
        Ok(raw.and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// The slide bridge's single entry point: a JSON request string in, a JSON reply out.
    /// Never panics and never fails: problems become error replies.
    pub fn handle_bridge_message(&self, json: &str) -> String {
        crate::bridge::handle(self, json)
    }

    /// `PRAGMA integrity_check` (support tools, crash tests).
    pub fn integrity_check(&self) -> Result<String> {
        self.db.with_writer(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?))
    }
}

fn set_meta(tx: &rusqlite::Transaction<'_>, k: &str, v: &str) -> Result<()> {
    tx.execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", params![k, v])?;
    Ok(())
}

fn first_visible(m: &Manifest, ids: &[String]) -> Option<String> {
    ids.iter().find(|id| m.slide(id).is_some_and(|s| !s.hidden)).cloned()
}

pub(crate) fn presentation_of(m: &Manifest, slide: &str) -> Option<String> {
    m.presentations.iter().find(|p| p.slides.iter().any(|s| s == slide)).map(|p| p.id.clone())
}

pub(crate) fn slide_url(bundle_id: &str, m: &Manifest, slide: &str) -> String {
    let Some(s) = m.slide(slide) else { return crate::assets::asset_url(bundle_id, "") };
    let mut url = crate::assets::asset_url(bundle_id, s.entry.as_str());
    // A single-page framework's slide: its route (`?path=…` / `#…`) drives the framework.
    if let Some(route) = s.route.as_deref().filter(|r| Slide::route_is_valid(r)) {
        url.push_str(route);
    }
    url
}

/// Finds a slide by CRM key message, accepting Veeva's forms: the key message itself, its zip
/// file name (`CZ_Safety_01.zip`) or the slide's entry folder.
pub(crate) fn slide_by_key_message(m: &Manifest, key: &str) -> Option<String> {
    let k = key.trim().trim_end_matches(".zip");
    m.slides
        .iter()
        .find(|s| s.key_message.as_deref() == Some(k))
        .or_else(|| m.slides.iter().find(|s| s.entry.as_str().split('/').next() == Some(k)))
        .or_else(|| m.slides.iter().find(|s| s.id == k))
        .map(|s| s.id.clone())
}
