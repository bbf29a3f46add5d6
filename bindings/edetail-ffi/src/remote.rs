//! Remote detailing at the FFI edge (issue 17): `RemoteSession`, the app's handle on a call
//! presented to doctors following in a browser, opened with `EdetailDevice::open_remote_session`
//! over the sync configuration. A thin wrapper of `edetail_sync::RemotePresenter`: its methods
//! block (the network ones briefly), so call them off the UI thread; read what happens with
//! `next_event` on a thread of the app's own.

use std::time::Duration;

use edetail_sync::remote::{Control, Point};
use edetail_sync::{ConnectionState, NavRefusal, RemotePresenter};

use crate::error::ApiResult;

/// Who navigates in a remote session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RemoteControl {
    /// The rep (the doctors' navigation is ignored).
    Rep,
    /// The doctors: their navigation moves the call and is recorded as HCP-led.
    Hcp,
}

impl From<RemoteControl> for Control {
    fn from(c: RemoteControl) -> Control {
        match c {
            RemoteControl::Rep => Control::Rep,
            RemoteControl::Hcp => Control::Hcp,
        }
    }
}

impl From<Control> for RemoteControl {
    fn from(c: Control) -> RemoteControl {
        match c {
            Control::Rep => RemoteControl::Rep,
            Control::Hcp => RemoteControl::Hcp,
        }
    }
}

/// A point on the slide, as fractions of its width and height (0.0 to 1.0).
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct RemotePoint {
    pub x: f64,
    pub y: f64,
}

/// Why a doctor's navigation was not performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RemoteRefusal {
    /// The rep has control.
    NoControl,
    UnknownSlide,
    /// Hidden, or only in hidden presentations.
    HiddenSlide,
    /// Next on the last slide, previous on the first.
    NowhereToGo,
    CallNotOpen,
    /// The device could not perform it (storage); see the log.
    Failed,
}

impl From<NavRefusal> for RemoteRefusal {
    fn from(r: NavRefusal) -> RemoteRefusal {
        match r {
            NavRefusal::NoControl => RemoteRefusal::NoControl,
            NavRefusal::UnknownSlide => RemoteRefusal::UnknownSlide,
            NavRefusal::HiddenSlide => RemoteRefusal::HiddenSlide,
            NavRefusal::NowhereToGo => RemoteRefusal::NowhereToGo,
            NavRefusal::CallNotOpen => RemoteRefusal::CallNotOpen,
            NavRefusal::Failed => RemoteRefusal::Failed,
        }
    }
}

/// What happened in a remote session. Attendee ids are the hub's opaque ids for the session,
/// never names.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum RemoteEvent {
    /// Connected (again); the doctors see the call's slide.
    Connected,
    /// The connection was lost or could not be made; the next attempt is in `retry_in_ms`.
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
    /// A doctor with control moved the call (performed and recorded): load `url` (the URL path
    /// of the slide, its route included, as `navigate` answers it).
    Navigated {
        slide: String,
        presentation: String,
        url: String,
    },
    NavigationRefused {
        reason: RemoteRefusal,
    },
    /// A doctor with control tapped the slide.
    Tapped {
        x: f64,
        y: f64,
    },
    /// Another connection of this device took the session over; this one stopped.
    Replaced,
    /// The session ended (by the rep, the hub, or its time ran out).
    Ended,
}

impl From<edetail_sync::RemoteEvent> for RemoteEvent {
    fn from(e: edetail_sync::RemoteEvent) -> RemoteEvent {
        use edetail_sync::RemoteEvent as E;
        match e {
            E::Connected => RemoteEvent::Connected,
            E::Disconnected { retry_in_ms } => RemoteEvent::Disconnected { retry_in_ms },
            E::AttendeeJoined { attendee, waiting } => RemoteEvent::AttendeeJoined { attendee, waiting },
            E::AttendeeLeft { attendee } => RemoteEvent::AttendeeLeft { attendee },
            E::Navigated { slide, presentation, url } => RemoteEvent::Navigated { slide, presentation, url },
            E::NavigationRefused { reason } => RemoteEvent::NavigationRefused { reason: reason.into() },
            E::Tapped { x, y } => RemoteEvent::Tapped { x, y },
            E::Replaced => RemoteEvent::Replaced,
            E::Ended => RemoteEvent::Ended,
        }
    }
}

/// The session's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RemoteConnection {
    Connecting,
    Connected,
    Reconnecting { retry_in_ms: u64 },
    Replaced,
    Ended,
}

impl From<ConnectionState> for RemoteConnection {
    fn from(c: ConnectionState) -> RemoteConnection {
        match c {
            ConnectionState::Connecting => RemoteConnection::Connecting,
            ConnectionState::Connected => RemoteConnection::Connected,
            ConnectionState::Reconnecting { retry_in_ms } => RemoteConnection::Reconnecting { retry_in_ms },
            ConnectionState::Replaced => RemoteConnection::Replaced,
            ConnectionState::Ended => RemoteConnection::Ended,
        }
    }
}

/// A doctor connected now.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RemoteAttendee {
    pub attendee: String,
    /// Waits to be admitted (`RemoteSession::admit`).
    pub waiting: bool,
}

/// Where a remote session stands.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RemoteStatus {
    pub connection: RemoteConnection,
    pub control: RemoteControl,
    pub attendees: Vec<RemoteAttendee>,
}

/// A call presented remotely. Releasing it stops presenting without ending the session: the
/// doctors see the presenter reconnecting until `open_remote_session` for the call presents it
/// again (same id and link) or the session's time runs out. `end` ends it.
#[derive(Debug, uniffi::Object)]
pub struct RemoteSession {
    presenter: RemotePresenter,
}

impl RemoteSession {
    pub(crate) fn new(presenter: RemotePresenter) -> RemoteSession {
        RemoteSession { presenter }
    }
}

#[uniffi::export]
impl RemoteSession {
    pub fn session_id(&self) -> String {
        self.presenter.session_id().to_string()
    }

    /// The link to send the doctors (by email, message or QR code). It carries the session's
    /// secret: share it only with those invited; `relink` replaces it.
    pub fn join_url(&self) -> String {
        self.presenter.join_url()
    }

    /// When the link stops working (ms since the Unix epoch).
    pub fn expires_at_ms(&self) -> i64 {
        self.presenter.expires_at().timestamp_millis()
    }

    /// Whether the doctor's navigation and taps are recorded (her consent is not off); the
    /// join page tells her.
    pub fn recorded(&self) -> bool {
        self.presenter.recorded()
    }

    /// Shows the rep's pointer on the doctors' screens, or hides it (`None`). `InvalidInput`
    /// outside the slide; `NotFound` once the session ended.
    pub fn pointer(&self, at: Option<RemotePoint>) -> ApiResult<()> {
        Ok(self.presenter.pointer(at.map(|p| Point { x: p.x, y: p.y }))?)
    }

    /// Hands navigation to the doctors or takes it back. `NotFound` once the session ended.
    pub fn set_control(&self, to: RemoteControl) -> ApiResult<()> {
        Ok(self.presenter.set_control(to.into())?)
    }

    /// Lets a waiting doctor in (an `AttendeeJoined` with `waiting`).
    pub fn admit(&self, attendee: String) -> ApiResult<()> {
        Ok(self.presenter.admit(&attendee)?)
    }

    /// Revokes the link (sent to the wrong person) and answers the new one; those who joined
    /// through the old link are let go. I/O (network).
    pub fn relink(&self) -> ApiResult<String> {
        Ok(self.presenter.relink()?)
    }

    /// Ends the session for everyone; the link stops working. Idempotent. The call itself goes
    /// on (end it with `end_call`). I/O (network).
    pub fn end(&self) -> ApiResult<()> {
        Ok(self.presenter.end()?)
    }

    /// The next event, waiting up to `timeout_ms`; `None` when none came. Blocks: call it from
    /// a thread of the app's own.
    pub fn next_event(&self, timeout_ms: u64) -> Option<RemoteEvent> {
        self.presenter.next_event(Duration::from_millis(timeout_ms)).map(Into::into)
    }

    pub fn status(&self) -> RemoteStatus {
        let s = self.presenter.status();
        RemoteStatus {
            connection: s.connection.into(),
            control: s.control.into(),
            attendees: s.attendees.into_iter().map(|a| RemoteAttendee { attendee: a.attendee, waiting: a.waiting }).collect(),
        }
    }
}
