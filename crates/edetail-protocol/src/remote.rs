//! Remote detailing (issue 17, ADR 0023): the messages of a live session between the rep's
//! tablet (the presenter), the hub (which relays) and the doctors' browsers (attendees), and the
//! device's request that opens a session. Typed and bounded here so the tablet, the hub and the
//! follower page cannot drift apart; [`check`] is what every side applies to a message it
//! receives. Pure serde, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Path of the device's request that opens a session (`POST`, device token). Under it, per
/// session: `{id}/end` (`POST`: ends it, the link stops working), `{id}/link` (`POST`: revokes
/// the link and answers a new one, for a link sent to the wrong person) and `{id}/present`
/// (the presenter's WebSocket). The join link is `/r/{token}`, its WebSocket `/r/{token}/ws`.
pub const SESSIONS_PATH: &str = "/v1/remote-sessions";
/// WebSocket close code: the session ended, expired or its link was revoked.
pub const CLOSE_ENDED: u16 = 4410;
/// WebSocket close code: the session already has [`MAX_ATTENDEES`] attendees.
pub const CLOSE_FULL: u16 = 4429;
/// WebSocket close code: another connection of the presenter replaced this one.
pub const CLOSE_REPLACED: u16 = 4409;
/// At most this many attendees in one session.
pub const MAX_ATTENDEES: usize = 20;
/// At most this long a session lives (the rep may choose less).
pub const MAX_SESSION_MINUTES: u32 = 240;
/// At most this many bytes in one message's JSON (PostgreSQL NOTIFY payloads are capped at
/// 8,000 bytes; a relayed message travels in one with its envelope).
pub const MAX_MESSAGE_BYTES: usize = 6 * 1024;
/// At most this many bytes in a relayed slide-state value's JSON.
pub const MAX_STATE_BYTES: usize = 4 * 1024;
/// At most this many bytes in an id (slide, presentation, state key, attendee).
pub const MAX_ID_BYTES: usize = 128;

/// `POST /v1/remote-sessions`: open a session for a call in progress on this device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenRemoteSession {
    pub call_id: String,
    pub bundle_id: String,
    pub bundle_version: u64,
    /// How long the join link works, at most [`MAX_SESSION_MINUTES`].
    pub minutes: u32,
    /// Attendees wait until the rep admits them.
    #[serde(default)]
    pub waiting_room: bool,
    /// Whether the device records the doctor's navigation and taps (her consent on the
    /// device is not `off`); the join page says which. The hub never learns who she is.
    pub recorded: bool,
}

/// The answer: the session and its join link (to share by phone, email or QR code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSessionOpened {
    pub session_id: String,
    /// The path of the join link on the hub (`/r/<token>`); the token is shown only here.
    pub join_path: String,
    pub expires_at: DateTime<Utc>,
}

/// The state of a session the device asked about (`POST {id}/end` answers it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSessionEnded {
    pub session_id: String,
    pub ended_at: DateTime<Utc>,
}

/// Who navigates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    Rep,
    Hcp,
}

/// A point on the slide, as fractions of its width and height (0.0 to 1.0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// From the tablet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PresenterMessage {
    /// The call moved to a slide (`seq` increases with every move of the session).
    Slide {
        slide: String,
        presentation: String,
        seq: u64,
    },
    /// The slide's own state changed (e.g. a chart toggle), relayed for the followers' copy.
    State {
        key: String,
        value: Value,
    },
    /// The rep's pointer; `None` hides it.
    Pointer {
        at: Option<Point>,
    },
    Control {
        to: Control,
    },
    /// Let a waiting attendee in.
    Admit {
        attendee: String,
    },
    /// The rep ends the session (the link stops working).
    End,
}

/// From a doctor's browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AttendeeMessage {
    /// Only while the doctor has control: the tablet performs it and records it.
    Navigate { action: NavigateTo },
    /// A tap on the slide while she has control.
    Tap { at: Point },
}

/// Where a doctor asks to go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case", deny_unknown_fields)]
pub enum NavigateTo {
    Next,
    Previous,
    Slide { slide: String },
}

/// From the hub to a participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HubMessage {
    /// Where the session is (on joining, on reconnecting, after every move).
    Current {
        slide: String,
        presentation: String,
        seq: u64,
        control: Control,
        state: serde_json::Map<String, Value>,
    },
    /// A relayed presenter message.
    Presenter {
        message: PresenterMessage,
    },
    /// A relayed attendee message (to the presenter only), naming the attendee.
    Attendee {
        attendee: String,
        message: AttendeeMessage,
    },
    /// To an attendee on joining: its id in this session (the page keeps it to reconnect as
    /// the same attendee) and whether the device records what she does.
    Welcome {
        attendee: String,
        recorded: bool,
    },
    /// The attendee waits to be admitted.
    Waiting,
    Admitted,
    /// To the presenter: an attendee joined (waiting for admission or not) or left.
    Joined {
        attendee: String,
        waiting: bool,
    },
    Left {
        attendee: String,
    },
    /// The tablet lost its connection; the session goes on when it is back.
    PresenterReconnecting,
    /// The session ended, expired or was revoked: the page says so and closes.
    Ended,
}

/// Why a received message is refused (the message itself is never echoed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    TooLarge,
    NotJson,
    /// Not one of the messages this side may send (the serde error, without values).
    Unknown(String),
    /// An id over [`MAX_ID_BYTES`] or empty, a state value over [`MAX_STATE_BYTES`], a point
    /// outside the slide.
    OutOfBounds(&'static str),
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageError::TooLarge => write!(f, "message over {MAX_MESSAGE_BYTES} bytes"),
            MessageError::NotJson => write!(f, "message is not JSON"),
            MessageError::Unknown(e) => write!(f, "not a message of this protocol: {e}"),
            MessageError::OutOfBounds(what) => write!(f, "{what} out of bounds"),
        }
    }
}

impl std::error::Error for MessageError {}

fn id_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_BYTES && !s.chars().any(char::is_control)
}

fn point_ok(p: &Point) -> bool {
    (0.0..=1.0).contains(&p.x) && (0.0..=1.0).contains(&p.y)
}

/// A serde message without the quoted values in it (they may be anything a sender typed).
fn redact(msg: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for c in msg.chars() {
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None if c == '`' || c == '"' => {
                out.push(c);
                quote = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

/// Parses and bounds a received message of type `T` (one of this module's message enums).
pub fn check<T: serde::de::DeserializeOwned + Bounded>(text: &str) -> Result<T, MessageError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge);
    }
    let v: Value = serde_json::from_str(text).map_err(|_| MessageError::NotJson)?;
    let m: T = T::deserialize(&v).map_err(|e| MessageError::Unknown(redact(&e.to_string())))?;
    m.bounds()?;
    Ok(m)
}

/// The bounds a message must keep besides its shape.
pub trait Bounded {
    fn bounds(&self) -> Result<(), MessageError>;
}

impl Bounded for PresenterMessage {
    fn bounds(&self) -> Result<(), MessageError> {
        match self {
            PresenterMessage::Slide { slide, presentation, .. } if !id_ok(slide) || !id_ok(presentation) => {
                Err(MessageError::OutOfBounds("slide or presentation id"))
            }
            PresenterMessage::State { key, .. } if !id_ok(key) => Err(MessageError::OutOfBounds("state key")),
            PresenterMessage::State { value, .. } if value.to_string().len() > MAX_STATE_BYTES => {
                Err(MessageError::OutOfBounds("state value"))
            }
            PresenterMessage::Pointer { at: Some(p) } if !point_ok(p) => Err(MessageError::OutOfBounds("pointer")),
            PresenterMessage::Admit { attendee } if !id_ok(attendee) => Err(MessageError::OutOfBounds("attendee id")),
            _ => Ok(()),
        }
    }
}

impl Bounded for AttendeeMessage {
    fn bounds(&self) -> Result<(), MessageError> {
        match self {
            AttendeeMessage::Navigate { action: NavigateTo::Slide { slide } } if !id_ok(slide) => {
                Err(MessageError::OutOfBounds("slide id"))
            }
            AttendeeMessage::Tap { at } if !point_ok(at) => Err(MessageError::OutOfBounds("tap")),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_round_trip_in_their_wire_shape() {
        let m = PresenterMessage::Slide { slide: "efficacy".into(), presentation: "main".into(), seq: 4 };
        assert_eq!(serde_json::to_value(&m).unwrap(), json!({"type": "slide", "slide": "efficacy", "presentation": "main", "seq": 4}));
        let a = AttendeeMessage::Navigate { action: NavigateTo::Slide { slide: "dosing".into() } };
        assert_eq!(serde_json::to_value(&a).unwrap(), json!({"type": "navigate", "action": {"to": "slide", "slide": "dosing"}}));
        let h = HubMessage::Presenter { message: PresenterMessage::Control { to: Control::Hcp } };
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<HubMessage>(&text).unwrap(), h);
        assert_eq!(check::<PresenterMessage>(r#"{"type": "end"}"#), Ok(PresenterMessage::End));
        assert_eq!(
            check::<AttendeeMessage>(r#"{"type": "tap", "at": {"x": 0.25, "y": 1.0}}"#),
            Ok(AttendeeMessage::Tap { at: Point { x: 0.25, y: 1.0 } })
        );
    }

    #[test]
    fn received_messages_are_bounded_and_errors_do_not_echo_them() {
        assert_eq!(check::<PresenterMessage>(&"x".repeat(MAX_MESSAGE_BYTES + 1)), Err(MessageError::TooLarge));
        assert_eq!(check::<PresenterMessage>("{nope"), Err(MessageError::NotJson));
        // An attendee cannot send presenter messages (e.g. take control or end the session).
        let e = check::<AttendeeMessage>(r#"{"type": "control", "to": "hcp"}"#).unwrap_err();
        assert!(matches!(e, MessageError::Unknown(_)), "{e:?}");
        let e = check::<AttendeeMessage>(r#"{"type": "end"}"#).unwrap_err();
        assert!(matches!(e, MessageError::Unknown(_)));
        let e = check::<AttendeeMessage>(r#"{"type": "Dr Jane Example"}"#).unwrap_err();
        assert!(!e.to_string().contains("Jane") && e.to_string().contains("unknown variant"), "{e}");
        let secret = "Dr Jane Example";
        let e = check::<PresenterMessage>(&format!(r#"{{"type": "slide", "slide": "a", "presentation": "m", "seq": "{secret}"}}"#))
            .unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
        assert_eq!(
            check::<PresenterMessage>(&format!(r#"{{"type": "slide", "slide": "{}", "presentation": "m", "seq": 1}}"#, "s".repeat(129))),
            Err(MessageError::OutOfBounds("slide or presentation id"))
        );
        let big = format!(r#"{{"type": "state", "key": "k", "value": "{}"}}"#, "v".repeat(MAX_STATE_BYTES));
        assert_eq!(check::<PresenterMessage>(&big), Err(MessageError::OutOfBounds("state value")));
        assert_eq!(check::<AttendeeMessage>(r#"{"type": "tap", "at": {"x": 1.5, "y": 0.2}}"#), Err(MessageError::OutOfBounds("tap")));
        assert!(
            check::<PresenterMessage>(r#"{"type": "slide", "slide": "a", "presentation": "m", "seq": 1, "hcp_id": "h"}"#).is_err(),
            "unknown fields refused"
        );
    }
}
