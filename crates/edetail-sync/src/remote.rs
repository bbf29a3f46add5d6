//! Remote detailing, the tablet's side (issue 17, ADR 0023): [`RemotePresenter`] opens a hub
//! session for a call in progress and presents it over the hub's WebSocket relay while doctors
//! follow in a browser.
//!
//! The presenter owns its tokio runtime, as [`crate::SyncEngine`] does (ADR 0006), and one task
//! on it: it connects `GET /v1/remote-sessions/{id}/present` (device token; TLS with the sync
//! configuration's trust roots, else the platform verifier, aws-lc-rs only), sends the call's
//! slide right after every connect and then every move and slide-state save the device makes
//! (told by `Device::observe_call`, whatever made them), pings every [`PING_INTERVAL`], and
//! reconnects after a lost connection with capped exponential backoff and full jitter.
//!
//! A doctor's `navigate` is performed on the call only while the rep handed her control
//! ([`RemotePresenter::set_control`]); the call records it like any navigation
//! (`slide_enter` with source `remote` and `hcp_led`, through the outbox, so exactly once by
//! the existing upload path; nothing with consent off), and the move goes back to everyone as
//! the call's next slide. Her taps while she has control are recorded as `custom` events
//! `remote_tap`. The hub records nothing of a remote call.
//!
//! The app drives it with blocking calls from any thread and reads what happened with
//! [`RemotePresenter::next_event`]. Dropping the presenter stops its task without ending the
//! session (the tablet may come back within the session's time); [`RemotePresenter::end`]
//! ends it. Logs and errors name the session id, never an HCP.
//!
//! A session outlives the app: the device remembers every session it opens in its own database
//! (`Device::remote_sessions`: session id, call id, join link, expiry, whether the doctor is
//! recorded; no HCP data) and forgets it when the session ends (`end`, the hub's `ended`, or a
//! presenter socket refused as gone) or expires. [`RemotePresenter::open`] for a call with a
//! live remembered session presents that session again (no new session, the same join link:
//! the doctors still connected see the presenter back) instead of opening another; so does a
//! new call taking over from a call that a crash or a killed app left interrupted (same bundle,
//! same HCP). When the hub answers that session 404 or 410, it is forgotten and a new one
//! opened.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use edetail_core::{CallChange, CallSubscription, Device, NavAction, NavSource, RemoteSessionRecord, Tracking};
use edetail_protocol::remote::{
    AttendeeMessage, Bounded, CLOSE_ENDED, CLOSE_REPLACED, HubMessage, MAX_MESSAGE_BYTES, MAX_SESSION_MINUTES, NavigateTo,
    OpenRemoteSession, PresenterMessage, SESSIONS_PATH,
};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

/// Who navigates, and a point on the slide: the protocol's own types, as the API takes them.
pub use edetail_protocol::remote::{Control, Point};

use crate::engine::SyncConfig;
use crate::error::{Error, Result};
use crate::http::{HttpFailure, TOKEN_TIMEOUT, TokenProvider, Transport, session_id_ok};
use crate::policy::{FailureClass, JitterRng, SplitMix64, backoff_ceiling};

/// The presenter pings the hub this often (keeps proxies from closing an idle socket and finds
/// a dead one).
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// Nothing received from the hub for this long (pongs included): the connection is dead and the
/// presenter reconnects.
pub const IDLE_LIMIT: Duration = Duration::from_secs(40);
/// Largest wait before reconnecting (milliseconds). The waits follow the sync policy's ceilings
/// (1 s, 2 s, 4 s, ...) with full jitter, capped lower: a doctor is waiting.
pub const MAX_RECONNECT_WAIT_MS: u64 = 30_000;
/// A connection that lasted this long resets the backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);
/// Events kept for the app at most; older ones are dropped when it does not read them.
pub const MAX_QUEUED_EVENTS: usize = 1_000;
/// Largest message accepted from the hub (a `current` carries the slide state's map).
const MAX_HUB_MESSAGE_BYTES: usize = 256 * 1024;
/// At most this many slide-state keys are kept to send again after a reconnect (the hub keeps
/// a few KiB of a slide's state anyway).
const MAX_KEPT_STATE_KEYS: usize = 64;

/// What happened in the session, for the app ([`RemotePresenter::next_event`]). Attendee ids are
/// the hub's opaque ids for this session, never names.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteEvent {
    /// The presenter's socket is connected (again) and the call's slide sent to the hub.
    Connected,
    /// The socket was lost or could not be opened; the next attempt is in `retry_in_ms`.
    Disconnected {
        retry_in_ms: u64,
    },
    AttendeeJoined {
        attendee: String,
        waiting: bool,
    },
    AttendeeLeft {
        attendee: String,
    },
    /// A doctor with control moved the call (performed and recorded on the device); `url` is
    /// what the shell loads (the slide's route included, as `Calls::navigate` answers it).
    Navigated {
        slide: String,
        presentation: String,
        url: String,
    },
    /// A doctor's navigation was not performed.
    NavigationRefused {
        reason: NavRefusal,
    },
    /// A doctor with control tapped the slide (fractions of its width and height).
    Tapped {
        x: f64,
        y: f64,
    },
    /// Another connection of this device took the session over; this presenter stopped (the
    /// session goes on).
    Replaced,
    /// The session ended (here, by the hub, or it expired); the presenter stopped.
    Ended,
}

/// Why a doctor's navigation was not performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NavRefusal {
    /// The rep has control.
    NoControl,
    /// No such slide in the deck.
    UnknownSlide,
    /// A hidden slide, or one only in hidden presentations (reachable from another slide only).
    HiddenSlide,
    /// Next on the last slide or previous on the first.
    NowhereToGo,
    /// The call is not open any more.
    CallNotOpen,
    /// The device could not perform it (storage).
    Failed,
}

impl NavRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            NavRefusal::NoControl => "no_control",
            NavRefusal::UnknownSlide => "unknown_slide",
            NavRefusal::HiddenSlide => "hidden_slide",
            NavRefusal::NowhereToGo => "nowhere_to_go",
            NavRefusal::CallNotOpen => "call_not_open",
            NavRefusal::Failed => "failed",
        }
    }
}

/// The presenter's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// The first connection is being opened.
    Connecting,
    Connected,
    /// Lost; the next attempt is this many milliseconds after the state was set.
    Reconnecting {
        retry_in_ms: u64,
    },
    /// Another connection took the session over.
    Replaced,
    Ended,
}

/// An attendee connected now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAttendee {
    pub attendee: String,
    /// Waits for the rep to admit her.
    pub waiting: bool,
}

/// Where the session stands ([`RemotePresenter::status`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteStatus {
    pub connection: ConnectionState,
    /// Who navigates (as the rep set it).
    pub control: Control,
    /// The attendees connected now (as the hub last told).
    pub attendees: Vec<RemoteAttendee>,
}

/// What the app and the task share.
struct Shared {
    session_id: String,
    hub_url: String,
    recorded: bool,
    state: Mutex<State>,
    events: Mutex<VecDeque<RemoteEvent>>,
    events_ready: Condvar,
}

struct State {
    /// The link the doctors open (kept as it was given to them when presented again).
    join_url: String,
    expires_at: DateTime<Utc>,
    connection: ConnectionState,
    control: Control,
    attendees: Vec<RemoteAttendee>,
    /// `end()` was called (the task stops, nothing more is sent).
    ending: bool,
    /// The hub answered `end` (so `end()` is done).
    end_confirmed: bool,
    /// `Ended` was told to the app.
    ended_told: bool,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, e: RemoteEvent) {
        let mut q = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= MAX_QUEUED_EVENTS {
            q.pop_front();
        }
        q.push_back(e);
        self.events_ready.notify_all();
    }

    /// Connected, and the call's slide sent.
    fn set_connected(&self) {
        self.state().connection = ConnectionState::Connected;
        self.emit(RemoteEvent::Connected);
    }

    /// The session is over (ended or replaced): told once.
    fn finish(&self, how: ConnectionState) {
        let event = {
            let mut st = self.state();
            if matches!(st.connection, ConnectionState::Ended) {
                None
            } else {
                st.connection = how;
                st.attendees.clear();
                match how {
                    ConnectionState::Replaced => Some(RemoteEvent::Replaced),
                    _ if !st.ended_told => {
                        st.ended_told = true;
                        Some(RemoteEvent::Ended)
                    }
                    _ => None,
                }
            }
        };
        if let Some(e) = event {
            self.emit(e);
        }
    }

    fn join_url(&self) -> String {
        self.state().join_url.clone()
    }
}

enum Command {
    Changed(CallChange),
    Pointer(Option<Point>),
    Control(Control),
    Admit(String),
    End,
}

/// A remote session of one call, presented from this device. `Send + Sync`; blocking methods,
/// not for async contexts. See the module docs.
pub struct RemotePresenter {
    shared: Arc<Shared>,
    /// Where the session is remembered (forgotten when it ends).
    device: Arc<Device>,
    commands: mpsc::UnboundedSender<Command>,
    transport: Transport,
    /// The call's observer, feeding the task; unsubscribed when the presenter is dropped (a
    /// change told meanwhile goes nowhere).
    _subscription: CallSubscription,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for RemotePresenter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotePresenter").field("session_id", &self.shared.session_id).field("status", &self.status()).finish()
    }
}

impl Drop for RemotePresenter {
    fn drop(&mut self) {
        // The session is not ended: the tablet may present it again. Never blocks.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn failed(f: HttpFailure) -> Error {
    Error::Failed { class: f.class, attempts: 1, message: f.to_string() }
}

fn not_in_async() -> Result<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::BlockingInAsync);
    }
    Ok(())
}

/// What a session must match to present a call: its bundle version (the hub serves the doctors
/// that version's slides) and whether the doctor was told she is recorded.
struct Wanted<'a> {
    call_id: &'a str,
    bundle_id: &'a str,
    bundle_version: u64,
    recorded: bool,
}

/// The link the doctors open: the hub's URL and the session's join path.
fn join_url(hub_url: &str, join_path: &str) -> String {
    format!("{}{join_path}", hub_url.trim_end_matches('/'))
}

/// The hub answered that the session is not there any more (ended, expired, not this
/// device's).
fn is_gone(f: &HttpFailure) -> bool {
    matches!(f.status, Some(404 | 410))
}

/// The live session this device remembers for the call, or that an interrupted call left it
/// (then moved to this call), with the presenter's socket when the first connection was made
/// (a connection that failed otherwise is tried again by the task). `None`: a new session is
/// to be opened (none remembered, the hub answered it gone, or it no longer matches the call
/// and was ended).
fn resume(
    device: &Device,
    runtime: &tokio::runtime::Runtime,
    transport: &Transport,
    connector: &Connector,
    tokens: &Arc<dyn TokenProvider>,
    wanted: &Wanted<'_>,
) -> Result<Option<(RemoteSessionRecord, Option<Socket>)>> {
    let sessions = device.remote_sessions();
    let found = match sessions.live_for(wanted.call_id)? {
        Some(s) => Some(s),
        None => sessions.left_for(wanted.call_id)?,
    };
    let Some(mut s) = found else { return Ok(None) };
    if s.bundle_id != wanted.bundle_id || s.bundle_version != wanted.bundle_version || s.recorded != wanted.recorded {
        // What the doctors are shown or were told no longer holds: that session ends (not left
        // to run out), a new one tells them the truth.
        tracing::info!(session = %s.session_id, "remembered remote session no longer matches the call; ending it");
        match runtime.block_on(transport.end_remote_session(&s.session_id)) {
            Ok(_) => {}
            Err(f) if is_gone(&f) => {}
            Err(f) => return Err(failed(f)),
        }
        sessions.forget(&s.session_id)?;
        return Ok(None);
    }
    let first = match runtime.block_on(connect_first(connector, tokens, &s.session_id)) {
        Ok(ws) => Some(ws),
        Err(ConnectFailure::Gone) => {
            tracing::info!(session = %s.session_id, "remembered remote session gone at the hub; opening a new one");
            sessions.forget(&s.session_id)?;
            return Ok(None);
        }
        Err(ConnectFailure::Unauthorized) => None,
        Err(ConnectFailure::Other(why)) => {
            tracing::warn!(session = %s.session_id, "remote presenter cannot connect: {why}");
            None
        }
    };
    if s.call_id != wanted.call_id {
        sessions.move_to(&s.session_id, wanted.call_id)?;
        tracing::info!(session = %s.session_id, "remote session taken over from an interrupted call");
        s.call_id = wanted.call_id.to_string();
    }
    tracing::info!(session = %s.session_id, "remote session presented again");
    Ok(Some((s, first)))
}

/// The app's token, within [`TOKEN_TIMEOUT`].
async fn token(tokens: &Arc<dyn TokenProvider>) -> std::result::Result<String, ConnectFailure> {
    match tokio::time::timeout(TOKEN_TIMEOUT, tokens.token()).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(ConnectFailure::Other(e.to_string())),
        Err(_) => Err(ConnectFailure::Other(format!("the app's token provider did not answer within {TOKEN_TIMEOUT:?}"))),
    }
}

/// One connection of the presenter, the token refreshed once on 401.
async fn connect_first(
    connector: &Connector,
    tokens: &Arc<dyn TokenProvider>,
    session_id: &str,
) -> std::result::Result<Socket, ConnectFailure> {
    match connector.connect(session_id, &token(tokens).await?).await {
        Err(ConnectFailure::Unauthorized) => {
            let _ = tokio::time::timeout(TOKEN_TIMEOUT, tokens.refresh()).await;
            connector.connect(session_id, &token(tokens).await?).await
        }
        r => r,
    }
}

impl RemotePresenter {
    /// Opens a session for the open call `call_id` (its bundle and active version) at the hub
    /// of `config`, lasting `minutes` (1 to 240), with or without a waiting room, and starts
    /// presenting it. Whether the doctor is recorded follows the call's tracking (consent `off`:
    /// not). Blocking: one request, then the connection is made in the background (watch
    /// [`RemotePresenter::next_event`]).
    ///
    /// When this device remembers a live session of the call (the app was restarted or dropped
    /// its presenter), or one that a call interrupted by a crash left (same bundle, same HCP, or
    /// both none: the new call takes it over), that session is presented again instead: same
    /// id, same join link, its own expiry and waiting room (`minutes` and `waiting_room` are not
    /// used), control back with the rep. The one request is then the presenter's connection;
    /// when the hub answers it 404 or 410 the session is forgotten and a new one opened. A
    /// remembered session that no longer matches the call (another bundle version, or whether
    /// the doctor is recorded changed) is ended first, and a new one opened.
    pub fn open(device: Arc<Device>, config: &SyncConfig, call_id: &str, minutes: u32, waiting_room: bool) -> Result<RemotePresenter> {
        not_in_async()?;
        if minutes == 0 || minutes > MAX_SESSION_MINUTES {
            return Err(Error::Invalid(format!("a remote session lasts 1 to {MAX_SESSION_MINUTES} minutes, not {minutes}")));
        }
        let call = device.calls().get(call_id)?;
        if call.status != "open" {
            return Err(Error::Core(edetail_core::Error::CallNotOpen(call_id.into())));
        }
        let bundle_id =
            call.bundle_id.clone().ok_or_else(|| Error::Invalid(format!("call {call_id} presents no bundle and cannot be shared")))?;
        let bundle_version = device.content().active(&bundle_id)?.version;
        let recorded = device.calls().tracking(call_id)? != Tracking::Off;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("edetail-remote")
            .enable_all()
            .build()
            .map_err(|e| Error::Engine(format!("runtime: {e}")))?;
        let transport = Transport::with_options(&config.hub_url, config.token_provider.clone(), config.timeouts, &config.trust_roots)
            .map_err(|f| Error::Config(f.message))?;
        let connector = Connector::new(&config.hub_url, &config.trust_roots, config.timeouts.connect)?;
        let wanted = Wanted { call_id, bundle_id: &bundle_id, bundle_version, recorded };
        let resumed = resume(&device, &runtime, &transport, &connector, &config.token_provider, &wanted)?;
        let (session, first) = match resumed {
            Some(r) => r,
            None => {
                let request = OpenRemoteSession {
                    call_id: call_id.into(),
                    bundle_id: bundle_id.clone(),
                    bundle_version,
                    minutes,
                    waiting_room,
                    recorded,
                };
                let opened = runtime.block_on(transport.open_remote_session(&request)).map_err(failed)?;
                if !session_id_ok(&opened.session_id) || !opened.join_path.starts_with('/') {
                    return Err(Error::Engine("the hub answered a malformed remote session".into()));
                }
                tracing::info!(session = %opened.session_id, minutes, waiting_room, recorded, "remote session opened");
                let session = RemoteSessionRecord {
                    session_id: opened.session_id,
                    call_id: call_id.to_string(),
                    bundle_id,
                    bundle_version,
                    join_url: join_url(&config.hub_url, &opened.join_path),
                    expires_at: opened.expires_at,
                    recorded,
                };
                if let Err(e) = device.remote_sessions().remember(&session) {
                    // It presents all the same; only a restart of the app would not find it.
                    tracing::warn!(session = %session.session_id, "remote session not remembered: {e}");
                }
                (session, None)
            }
        };

        let shared = Arc::new(Shared {
            session_id: session.session_id.clone(),
            hub_url: config.hub_url.clone(),
            recorded: session.recorded,
            state: Mutex::new(State {
                join_url: session.join_url,
                expires_at: session.expires_at,
                connection: ConnectionState::Connecting,
                control: Control::Rep,
                attendees: Vec::new(),
                ending: false,
                end_confirmed: false,
                ended_told: false,
            }),
            events: Mutex::new(VecDeque::new()),
            events_ready: Condvar::new(),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let tx = commands.clone();
        let subscription = device.observe_call(
            call_id,
            Arc::new(move |c: &CallChange| {
                let _ = tx.send(Command::Changed(c.clone()));
            }),
        );
        let task = Task {
            device: device.clone(),
            call_id: call_id.to_string(),
            shared: shared.clone(),
            tokens: config.token_provider.clone(),
            connector,
            first,
            commands: rx,
            seq: 0,
            last_sent: None,
            slide_state: HashMap::new(),
            pending_admits: Vec::new(),
            call_ended: false,
            rng: SplitMix64::new(uuid::Uuid::new_v4().as_u64_pair().0),
        };
        runtime.spawn(task.run());
        Ok(RemotePresenter { shared, device, commands, transport, _subscription: subscription, runtime: Some(runtime) })
    }

    pub fn session_id(&self) -> &str {
        &self.shared.session_id
    }

    /// The link doctors open (the hub's URL and the session's join path; it carries the
    /// session's secret token: share it only with the doctors invited).
    pub fn join_url(&self) -> String {
        self.shared.join_url()
    }

    /// When the link stops working.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.shared.state().expires_at
    }

    /// Whether the device records the doctor's navigation and taps (her consent is not `off`).
    pub fn recorded(&self) -> bool {
        self.shared.recorded
    }

    fn command(&self, c: Command) -> Result<()> {
        {
            let st = self.shared.state();
            if st.ending || matches!(st.connection, ConnectionState::Ended | ConnectionState::Replaced) {
                return Err(Error::SessionEnded);
            }
        }
        self.commands.send(c).map_err(|_| Error::SessionEnded)
    }

    /// Shows the rep's pointer at `at` (fractions of the slide's width and height), or hides it.
    /// Not kept while disconnected.
    pub fn pointer(&self, at: Option<Point>) -> Result<()> {
        let m = PresenterMessage::Pointer { at };
        m.bounds().map_err(|e| Error::Invalid(e.to_string()))?;
        self.command(Command::Pointer(at))
    }

    /// Hands navigation to the doctors (`Hcp`) or takes it back (`Rep`). Kept across reconnects.
    pub fn set_control(&self, to: Control) -> Result<()> {
        {
            let mut st = self.shared.state();
            if st.ending || matches!(st.connection, ConnectionState::Ended | ConnectionState::Replaced) {
                return Err(Error::SessionEnded);
            }
            st.control = to;
        }
        self.command(Command::Control(to))
    }

    /// Lets a waiting attendee in (sent when connected).
    pub fn admit(&self, attendee: &str) -> Result<()> {
        let m = PresenterMessage::Admit { attendee: attendee.to_string() };
        m.bounds().map_err(|e| Error::Invalid(e.to_string()))?;
        self.command(Command::Admit(attendee.to_string()))
    }

    /// Revokes the join link (sent to the wrong person, say) and answers the new one. Blocking.
    pub fn relink(&self) -> Result<String> {
        not_in_async()?;
        if self.shared.state().ending {
            return Err(Error::SessionEnded);
        }
        let sid = &self.shared.session_id;
        let opened = match self.runtime().block_on(self.transport.relink_remote_session(sid)) {
            Ok(o) => o,
            Err(f) => {
                if is_gone(&f) {
                    self.forget();
                }
                return Err(failed(f));
            }
        };
        if !opened.join_path.starts_with('/') {
            return Err(Error::Engine("the hub answered a malformed join link".into()));
        }
        let url = join_url(&self.shared.hub_url, &opened.join_path);
        {
            let mut st = self.shared.state();
            st.join_url = url.clone();
            st.expires_at = opened.expires_at;
        }
        match self.device.remote_sessions().relinked(sid, &url, opened.expires_at) {
            Ok(_) => {}
            Err(e) => tracing::warn!(session = %sid, "new remote session link not remembered: {e}"),
        }
        tracing::info!(session = %sid, "remote session link renewed");
        Ok(url)
    }

    /// Ends the session: tells the hub over the socket (when connected) and with
    /// `POST .../end`; the link stops working and the attendees are told. Idempotent (a second
    /// call after the hub confirmed does nothing; after a failed request it tries again).
    /// Blocking.
    pub fn end(&self) -> Result<()> {
        not_in_async()?;
        {
            let mut st = self.shared.state();
            if st.end_confirmed {
                return Ok(());
            }
            st.ending = true;
        }
        let _ = self.commands.send(Command::End);
        if let Err(f) = self.runtime().block_on(self.transport.end_remote_session(&self.shared.session_id)) {
            if is_gone(&f) {
                self.forget();
            }
            return Err(failed(f));
        }
        self.forget();
        self.shared.state().end_confirmed = true;
        self.shared.finish(ConnectionState::Ended);
        tracing::info!(session = %self.shared.session_id, "remote session ended");
        Ok(())
    }

    /// The next event, waiting up to `timeout`; `None` when none came.
    pub fn next_event(&self, timeout: Duration) -> Option<RemoteEvent> {
        let deadline = Instant::now() + timeout;
        let mut q = self.shared.events.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(e) = q.pop_front() {
                return Some(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            q = self.shared.events_ready.wait_timeout(q, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    pub fn status(&self) -> RemoteStatus {
        let st = self.shared.state();
        RemoteStatus { connection: st.connection, control: st.control, attendees: st.attendees.clone() }
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("runtime lives until drop")
    }

    /// The session ended: the device forgets it.
    fn forget(&self) {
        if let Err(e) = self.device.remote_sessions().forget(&self.shared.session_id) {
            tracing::warn!(session = %self.shared.session_id, "ended remote session not forgotten: {e}");
        }
    }
}

/// The presenter's socket: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Socket = WebSocketStream<Box<dyn Io>>;

/// How the presenter reaches the hub's WebSocket.
struct Connector {
    /// `ws://` or `wss://` URL of the hub's base path (no trailing slash).
    base: String,
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    connect_timeout: Duration,
}

/// Why a connection could not be made.
enum ConnectFailure {
    /// 401: the token (refresh once, then back off).
    Unauthorized,
    /// 404 (not this device's session) or 410 (ended, expired): never again.
    Gone,
    Other(String),
}

impl Connector {
    fn new(hub_url: &str, trust_roots: &[Vec<u8>], connect_timeout: Duration) -> Result<Connector> {
        let url = reqwest::Url::parse(hub_url).map_err(|e| Error::Config(format!("hub URL: {e}")))?;
        let secure = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(Error::Config(format!("hub URL: unsupported scheme {other:?}"))),
        };
        let host = url.host_str().ok_or_else(|| Error::Config("hub URL has no host".into()))?.to_string();
        let port = url.port_or_known_default().ok_or_else(|| Error::Config("hub URL has no port".into()))?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let base = format!("{}://{authority}{}", if secure { "wss" } else { "ws" }, url.path().trim_end_matches('/'));
        let tls = if secure { Some(tokio_rustls::TlsConnector::from(tls_config(trust_roots)?)) } else { None };
        // `host_str` writes IPv6 addresses in brackets; TCP and TLS want them bare.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        Ok(Connector { base, host, port, tls, connect_timeout })
    }

    async fn connect(&self, session_id: &str, token: &str) -> std::result::Result<Socket, ConnectFailure> {
        let other = |what: &str, e: &dyn fmt::Display| ConnectFailure::Other(format!("{what}: {e}"));
        let url = format!("{}{SESSIONS_PATH}/{session_id}/present", self.base);
        let mut request = url.as_str().into_client_request().map_err(|e| other("request", &e))?;
        let bearer =
            format!("Bearer {token}").parse().map_err(|_| ConnectFailure::Other("the token is not a valid header value".into()))?;
        request.headers_mut().insert(tungstenite::http::header::AUTHORIZATION, bearer);
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if let Ok(v) = now.parse() {
            request.headers_mut().insert(edetail_protocol::DEVICE_TIME_HEADER, v);
        }
        let handshake = async {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| other("connect", &e))?;
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Io> = match &self.tls {
                None => Box::new(tcp),
                Some(tls) => {
                    let name = rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(|e| other("TLS server name", &e))?;
                    Box::new(tls.connect(name, tcp).await.map_err(|e| other("TLS", &e))?)
                }
            };
            let config =
                WebSocketConfig::default().max_message_size(Some(MAX_HUB_MESSAGE_BYTES)).max_frame_size(Some(MAX_HUB_MESSAGE_BYTES));
            tokio_tungstenite::client_async_with_config(request, io, Some(config)).await.map_err(|e| match e {
                tungstenite::Error::Http(resp) => match resp.status().as_u16() {
                    401 => ConnectFailure::Unauthorized,
                    404 | 410 => ConnectFailure::Gone,
                    s => ConnectFailure::Other(format!("HTTP {s}")),
                },
                e => other("handshake", &e),
            })
        };
        match tokio::time::timeout(self.connect_timeout, handshake).await {
            Ok(r) => r.map(|(ws, _)| ws),
            Err(_) => Err(ConnectFailure::Other(format!("no connection within {:?}", self.connect_timeout))),
        }
    }
}

/// TLS to the hub: only `trust_roots` (DER) when given, else the platform's verifier (not on
/// Android, as for sync: see `SyncConfig::trust_roots`). aws-lc-rs, never ring.
fn tls_config(trust_roots: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    let config = if trust_roots.is_empty() {
        if cfg!(target_os = "android") {
            return Err(Error::Config(
                "on Android, pass the trusted root certificates (the AndroidCAStore's) to the sync configuration".into(),
            ));
        }
        builder.with_platform_verifier().map_err(|e| Error::Config(format!("TLS platform verifier: {e}")))?.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for (i, der) in trust_roots.iter().enumerate() {
            roots
                .add(rustls::pki_types::CertificateDer::from(der.clone()))
                .map_err(|e| Error::Config(format!("trust root #{i} is not a usable DER certificate: {e}")))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// How a connected session stopped.
enum Outcome {
    /// The connection was lost: reconnect.
    Lost,
    /// The hub closed it as ended (or expired).
    Ended,
    /// Another connection replaced it.
    Replaced,
    /// `end()` was called, or the presenter dropped.
    Stopped,
}

type Sink = SplitSink<Socket, Message>;

/// The background task: connects, relays, reconnects.
struct Task {
    device: Arc<Device>,
    call_id: String,
    shared: Arc<Shared>,
    tokens: Arc<dyn TokenProvider>,
    connector: Connector,
    /// The connection `open` made (presenting a remembered session), used first.
    first: Option<Socket>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// The last `slide` seq sent (or the hub's, when larger): every `slide` sent is larger.
    seq: u64,
    /// The last slide sent on this connection.
    last_sent: Option<(String, String)>,
    /// The slide state saved since the call's last move (the hub keeps a slide's state until
    /// the next move): sent again after the slide on reconnecting.
    slide_state: HashMap<String, Value>,
    /// Admissions asked for while disconnected.
    pending_admits: Vec<String>,
    /// The call ended while disconnected: the session ends as soon as the hub is reached.
    call_ended: bool,
    rng: SplitMix64,
}

impl Task {
    async fn run(mut self) {
        let sid = self.shared.session_id.clone();
        let mut failures: u32 = 0;
        let mut refreshed = false;
        loop {
            if self.shared.state().ending {
                return;
            }
            let attempt = match self.first.take() {
                Some(ws) => Ok(ws),
                None => match token(&self.tokens).await {
                    Ok(t) => self.connector.connect(&sid, &t).await,
                    Err(e) => Err(e),
                },
            };
            match attempt {
                Ok(ws) => {
                    refreshed = false;
                    let since = Instant::now();
                    self.shared.state().attendees.clear();
                    tracing::info!(session = %sid, "remote presenter connected");
                    match self.session(ws).await {
                        Outcome::Stopped => return,
                        Outcome::Ended => {
                            tracing::info!(session = %sid, "remote session ended by the hub");
                            self.forget().await;
                            self.shared.finish(ConnectionState::Ended);
                            return;
                        }
                        Outcome::Replaced => {
                            tracing::info!(session = %sid, "remote presenter replaced by another connection");
                            self.shared.finish(ConnectionState::Replaced);
                            return;
                        }
                        Outcome::Lost => {
                            if since.elapsed() >= STABLE_CONNECTION {
                                failures = 0;
                            }
                        }
                    }
                }
                Err(ConnectFailure::Gone) => {
                    tracing::info!(session = %sid, "remote session gone at the hub (ended, expired or unknown)");
                    self.forget().await;
                    self.shared.finish(ConnectionState::Ended);
                    return;
                }
                Err(ConnectFailure::Unauthorized) if !refreshed => {
                    refreshed = true;
                    let _ = tokio::time::timeout(TOKEN_TIMEOUT, self.tokens.refresh()).await;
                    continue;
                }
                Err(ConnectFailure::Unauthorized) => {
                    tracing::warn!(session = %sid, class = %FailureClass::Auth, "remote presenter refused: token");
                }
                Err(ConnectFailure::Other(why)) => {
                    tracing::warn!(session = %sid, "remote presenter cannot connect: {why}");
                }
            }
            failures = failures.saturating_add(1);
            let ceiling = backoff_ceiling(failures).min(MAX_RECONNECT_WAIT_MS);
            let wait = self.rng.next_u64() % (ceiling + 1);
            {
                let mut st = self.shared.state();
                if st.ending {
                    return;
                }
                st.connection = ConnectionState::Reconnecting { retry_in_ms: wait };
                st.attendees.clear();
            }
            self.shared.emit(RemoteEvent::Disconnected { retry_in_ms: wait });
            if !self.wait(Duration::from_millis(wait)).await {
                return;
            }
        }
    }

    /// The session is over at the hub: the device forgets it (nothing to present again).
    fn forget(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (device, sid) = (self.device.clone(), self.shared.session_id.clone());
        async move {
            let forgotten = tokio::task::spawn_blocking(move || {
                if let Err(e) = device.remote_sessions().forget(&sid) {
                    tracing::warn!(session = %sid, "ended remote session not forgotten: {e}");
                }
            });
            let _ = forgotten.await;
        }
    }

    /// Waits before reconnecting, keeping what the app asks meanwhile; false when the task must
    /// stop.
    async fn wait(&mut self, d: Duration) -> bool {
        let until = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                c = self.commands.recv() => match c {
                    None | Some(Command::End) => return false,
                    Some(c) => self.offline(c),
                },
            }
        }
    }

    /// A command while disconnected: the slide's state and admissions wait for the connection;
    /// the call's slide is sent on connecting; a pointer is dropped.
    fn offline(&mut self, c: Command) {
        match c {
            Command::Changed(CallChange::State { key, value }) => self.keep_state(key, value),
            Command::Changed(CallChange::Moved { .. }) => self.slide_state.clear(),
            Command::Changed(CallChange::Ended) => self.call_ended = true,
            Command::Admit(a) => {
                if !self.pending_admits.contains(&a) {
                    self.pending_admits.push(a);
                }
            }
            Command::Pointer(_) | Command::Control(_) | Command::End => {}
        }
    }

    /// Keeps a slide-state save to send again after a reconnect (bounded).
    fn keep_state(&mut self, key: String, value: Value) {
        if self.slide_state.len() < MAX_KEPT_STATE_KEYS || self.slide_state.contains_key(&key) {
            self.slide_state.insert(key, value);
        }
    }

    async fn session(&mut self, ws: Socket) -> Outcome {
        let (mut sink, mut stream) = ws.split();
        self.last_sent = None;
        if self.announce(&mut sink).await.is_err() {
            return Outcome::Lost;
        }
        if self.call_ended {
            return self.end_with_the_call(&mut sink).await;
        }
        self.shared.set_connected();
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
        let mut heard = Instant::now();
        loop {
            tokio::select! {
                m = stream.next() => {
                    heard = Instant::now();
                    match m {
                        None | Some(Err(_)) => return Outcome::Lost,
                        Some(Ok(Message::Text(t))) => {
                            if let Err(o) = self.on_hub(t.as_str(), &mut sink).await {
                                return o;
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            return match frame.map(|f| u16::from(f.code)) {
                                Some(CLOSE_ENDED) => Outcome::Ended,
                                Some(CLOSE_REPLACED) => Outcome::Replaced,
                                _ => Outcome::Lost,
                            };
                        }
                        Some(Ok(_)) => {}
                    }
                }
                c = self.commands.recv() => match c {
                    None => return Outcome::Stopped,
                    Some(Command::End) => {
                        let _ = send(&mut sink, &PresenterMessage::End).await;
                        let _ = sink.close().await;
                        return Outcome::Stopped;
                    }
                    Some(Command::Changed(CallChange::Ended)) => return self.end_with_the_call(&mut sink).await,
                    Some(c) => {
                        if self.online(c, &mut sink).await.is_err() {
                            return Outcome::Lost;
                        }
                    }
                },
                _ = ping.tick() => {
                    if heard.elapsed() > IDLE_LIMIT {
                        tracing::info!(session = %self.shared.session_id, "remote presenter heard nothing for {IDLE_LIMIT:?}");
                        return Outcome::Lost;
                    }
                    if sink.send(Message::Ping(tungstenite::Bytes::new())).await.is_err() {
                        return Outcome::Lost;
                    }
                }
            }
        }
    }

    /// Right after connecting: the call's slide, who has control, the slide's state, and the
    /// admissions asked for meanwhile.
    async fn announce(&mut self, sink: &mut Sink) -> std::result::Result<(), ()> {
        self.send_position(sink).await?;
        let control = self.shared.state().control;
        send(sink, &PresenterMessage::Control { to: control }).await?;
        for (key, value) in self.slide_state.clone() {
            send_state(sink, key, value).await?;
        }
        for attendee in std::mem::take(&mut self.pending_admits) {
            send(sink, &PresenterMessage::Admit { attendee }).await?;
        }
        Ok(())
    }

    /// Sends where the call is now (read after the change committed: of moves told out of
    /// order, the last one sent is the call's slide).
    async fn send_position(&mut self, sink: &mut Sink) -> std::result::Result<(), ()> {
        let (device, call_id) = (self.device.clone(), self.call_id.clone());
        let at = tokio::task::spawn_blocking(move || device.calls().get(&call_id)).await;
        let Ok(Ok(call)) = at else { return Ok(()) };
        let (Some(slide), Some(presentation)) = (call.slide_id, call.presentation_id) else { return Ok(()) };
        self.seq += 1;
        let m = PresenterMessage::Slide { slide: slide.clone(), presentation: presentation.clone(), seq: self.seq };
        if m.bounds().is_err() {
            return Ok(());
        }
        send(sink, &m).await?;
        self.last_sent = Some((slide, presentation));
        Ok(())
    }

    async fn online(&mut self, c: Command, sink: &mut Sink) -> std::result::Result<(), ()> {
        match c {
            Command::Changed(CallChange::Moved { .. }) => {
                self.slide_state.clear();
                self.send_position(sink).await
            }
            Command::Changed(CallChange::State { key, value }) => {
                self.keep_state(key.clone(), value.clone());
                send_state(sink, key, value).await
            }
            Command::Pointer(at) => send(sink, &PresenterMessage::Pointer { at }).await,
            Command::Control(to) => send(sink, &PresenterMessage::Control { to }).await,
            Command::Admit(attendee) => {
                send(sink, &PresenterMessage::Admit { attendee: attendee.clone() }).await?;
                let mut st = self.shared.state();
                if let Some(a) = st.attendees.iter_mut().find(|a| a.attendee == attendee) {
                    a.waiting = false;
                }
                Ok(())
            }
            Command::End | Command::Changed(CallChange::Ended) => Ok(()),
        }
    }

    /// The call ended on the tablet: so does the meeting (the doctors' page says it ended, the
    /// link stops working), whether or not the app ended the session itself.
    async fn end_with_the_call(&mut self, sink: &mut Sink) -> Outcome {
        tracing::info!(session = %self.shared.session_id, "the call ended: ending its remote session");
        if send(sink, &PresenterMessage::End).await.is_err() {
            self.call_ended = true;
            return Outcome::Lost;
        }
        let _ = sink.close().await;
        Outcome::Ended
    }

    /// A message from the hub; `Err` stops the connection with that outcome.
    async fn on_hub(&mut self, text: &str, sink: &mut Sink) -> std::result::Result<(), Outcome> {
        let Ok(m) = serde_json::from_str::<HubMessage>(text) else {
            tracing::debug!(session = %self.shared.session_id, bytes = text.len(), "remote presenter ignored an unknown hub message");
            return Ok(());
        };
        match m {
            HubMessage::Current { slide, presentation, seq, control: _, .. } => {
                // The hub holds a position of this session: later slides must be numbered above
                // it. When it is newer than what was sent here, send the call's slide again.
                if seq >= self.seq {
                    self.seq = seq;
                    let ours = self.last_sent.as_ref().is_some_and(|(s, p)| *s == slide && *p == presentation);
                    if !ours {
                        self.send_position(sink).await.map_err(|_| Outcome::Lost)?;
                    }
                }
            }
            HubMessage::Joined { attendee, waiting } => {
                {
                    let mut st = self.shared.state();
                    st.attendees.retain(|a| a.attendee != attendee);
                    st.attendees.push(RemoteAttendee { attendee: attendee.clone(), waiting });
                }
                self.shared.emit(RemoteEvent::AttendeeJoined { attendee, waiting });
            }
            HubMessage::Left { attendee } => {
                self.shared.state().attendees.retain(|a| a.attendee != attendee);
                self.shared.emit(RemoteEvent::AttendeeLeft { attendee });
            }
            HubMessage::Attendee { attendee: _, message } => {
                if message.bounds().is_err() {
                    return Ok(());
                }
                self.on_attendee(message).await;
            }
            HubMessage::Ended => return Err(Outcome::Ended),
            HubMessage::Presenter { .. }
            | HubMessage::Welcome { .. }
            | HubMessage::Waiting
            | HubMessage::Admitted
            | HubMessage::PresenterReconnecting => {}
        }
        Ok(())
    }

    /// A doctor's navigation or tap: performed (and recorded by the call) only while she has
    /// control.
    async fn on_attendee(&mut self, message: AttendeeMessage) {
        if self.shared.state().control != Control::Hcp {
            if let AttendeeMessage::Navigate { .. } = message {
                self.shared.emit(RemoteEvent::NavigationRefused { reason: NavRefusal::NoControl });
            }
            return;
        }
        let (device, call_id) = (self.device.clone(), self.call_id.clone());
        match message {
            AttendeeMessage::Navigate { action } => {
                let done = tokio::task::spawn_blocking(move || navigate(&device, &call_id, &action)).await;
                let event = match done {
                    Ok(Ok(t)) => RemoteEvent::Navigated { slide: t.slide, presentation: t.presentation, url: t.url },
                    Ok(Err(reason)) => RemoteEvent::NavigationRefused { reason },
                    Err(_) => RemoteEvent::NavigationRefused { reason: NavRefusal::Failed },
                };
                self.shared.emit(event);
            }
            AttendeeMessage::Tap { at } => {
                let data = serde_json::json!({"x": at.x, "y": at.y, "hcp_led": true});
                let done = tokio::task::spawn_blocking(move || device.calls().track(&call_id, "remote_tap", data)).await;
                match done {
                    Ok(Ok(_)) => self.shared.emit(RemoteEvent::Tapped { x: at.x, y: at.y }),
                    Ok(Err(e)) => tracing::warn!(session = %self.shared.session_id, "remote tap not recorded: {e}"),
                    Err(_) => {}
                }
            }
        }
    }
}

/// Performs a doctor's navigation on the call: next/previous as the call's own, a slide only
/// when the rep could show it from the deck (not hidden, in a visible presentation, or
/// mandatory).
fn navigate(device: &Device, call_id: &str, action: &NavigateTo) -> std::result::Result<edetail_core::NavTarget, NavRefusal> {
    let action = match action {
        NavigateTo::Next => NavAction::Next,
        NavigateTo::Previous => NavAction::Previous,
        NavigateTo::Slide { slide } => {
            let call = device.calls().get(call_id).map_err(|_| NavRefusal::CallNotOpen)?;
            let bundle = call.bundle_id.ok_or(NavRefusal::CallNotOpen)?;
            let active = device.content().active(&bundle).map_err(|_| NavRefusal::Failed)?;
            match edetail_core::sequence::addable(&active.manifest, slide) {
                Ok(_) => {}
                Err(edetail_core::Error::UnknownSlide { .. }) => return Err(NavRefusal::UnknownSlide),
                Err(_) => return Err(NavRefusal::HiddenSlide),
            }
            NavAction::Goto { slide: Some(slide.clone()), presentation: None, key_message: None }
        }
    };
    match device.calls().navigate(call_id, &action, NavSource::Remote, true) {
        Ok(t) if t.moved => Ok(t),
        Ok(_) => Err(NavRefusal::NowhereToGo),
        Err(edetail_core::Error::UnknownSlide { .. }) => Err(NavRefusal::UnknownSlide),
        Err(edetail_core::Error::CallNotOpen(_) | edetail_core::Error::UnknownCall(_)) => Err(NavRefusal::CallNotOpen),
        Err(e) => {
            tracing::warn!("remote navigation not performed: {e}");
            Err(NavRefusal::Failed)
        }
    }
}

async fn send(sink: &mut Sink, m: &PresenterMessage) -> std::result::Result<(), ()> {
    let text = serde_json::to_string(m).map_err(|_| ())?;
    if text.len() > MAX_MESSAGE_BYTES {
        // The hub would refuse it; not worth the connection.
        return Ok(());
    }
    sink.send(Message::text(text)).await.map_err(|_| ())
}

/// Relays a slide-state save, unless the hub would refuse it (over its bounds: followers keep
/// the previous value).
async fn send_state(sink: &mut Sink, key: String, value: Value) -> std::result::Result<(), ()> {
    let m = PresenterMessage::State { key, value };
    if m.bounds().is_err() {
        return Ok(());
    }
    send(sink, &m).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_urls_become_presenter_socket_urls() {
        let c = Connector::new("http://127.0.0.1:8080/", &[], Duration::from_secs(1)).ok().unwrap();
        assert_eq!((c.base.as_str(), c.host.as_str(), c.port, c.tls.is_some()), ("ws://127.0.0.1:8080", "127.0.0.1", 8080, false));
        let c = Connector::new("https://hub.example.com/edetail", &[], Duration::from_secs(1)).ok().unwrap();
        assert_eq!(
            (c.base.as_str(), c.host.as_str(), c.port, c.tls.is_some()),
            ("wss://hub.example.com/edetail", "hub.example.com", 443, true)
        );
        let c = Connector::new("http://[::1]:9000", &[], Duration::from_secs(1)).ok().unwrap();
        assert_eq!((c.base.as_str(), c.host.as_str()), ("ws://[::1]:9000", "::1"));
        assert!(Connector::new("ftp://hub.example.com", &[], Duration::from_secs(1)).is_err());
        let Err(Error::Config(m)) = Connector::new("https://hub.example.com", &[b"not a certificate".to_vec()], Duration::from_secs(1))
        else {
            panic!("garbage trust roots are refused")
        };
        assert!(m.contains("trust root #0"), "{m}");
    }

    #[test]
    fn refusals_have_wire_names() {
        for (r, s) in [
            (NavRefusal::NoControl, "no_control"),
            (NavRefusal::UnknownSlide, "unknown_slide"),
            (NavRefusal::HiddenSlide, "hidden_slide"),
            (NavRefusal::NowhereToGo, "nowhere_to_go"),
            (NavRefusal::CallNotOpen, "call_not_open"),
            (NavRefusal::Failed, "failed"),
        ] {
            assert_eq!(r.as_str(), s);
        }
    }
}
