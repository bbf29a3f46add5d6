//! The event contract shared by the device and the hub: every event kind the runtime records,
//! the `app.` namespace for kinds an app defines itself, and the size limits of one event.
//!
//! The device refuses to record an event this contract does not allow and the hub rejects it
//! with a reason, both through [`EventKind::parse`] and the limits below, so the two sides cannot
//! drift apart.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// At most this many bytes in one event's payload (compact JSON).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// At most this many bytes in an event type.
pub const MAX_TYPE_BYTES: usize = 128;
/// At most this many bytes in a call id.
pub const MAX_CALL_ID_BYTES: usize = 128;
/// Kinds an app records for itself (`Device::record`) start with this prefix: `app.sample_request`.
pub const APP_PREFIX: &str = "app.";

macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// What an event records. Serialised as its type string (`"slide_enter"`,
        /// `"app.sample_request"`).
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind {
            $($(#[$doc])* $variant,)*
            /// A kind the app defined, with its full type string (starting with [`APP_PREFIX`]).
            App(String),
        }

        impl EventKind {
            /// Every kind the runtime itself records (all but [`EventKind::App`]).
            pub const BUILT_IN: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// The type string on the wire and in the outbox. A `const fn`, so constants naming
            /// a kind are defined by the contract: `const X: &str = EventKind::Erased.as_str();`.
            pub const fn as_str(&self) -> &str {
                match self {
                    $(EventKind::$variant => $name,)*
                    EventKind::App(s) => s.as_str(),
                }
            }

            fn built_in(s: &str) -> Option<EventKind> {
                match s {
                    $($name => Some(EventKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    /// A call began (rep, HCP, channel, bundle and version, plan followed).
    CallStarted => "call_started",
    /// A call ended normally.
    CallEnded => "call_ended",
    /// A call found open after the app died, closed at its last heartbeat.
    CallInterrupted => "call_interrupted",
    /// A slide came on screen.
    SlideEnter => "slide_enter",
    /// A slide left the screen, with its dwell.
    SlideExit => "slide_exit",
    /// The app went to the background during a call (dwell pauses).
    AppBackground => "app_background",
    /// The app came back to the foreground during a call.
    AppForeground => "app_foreground",
    /// The HCP's reaction to the current slide (positive, neutral, negative).
    Reaction => "reaction",
    /// A slide's own tracking call (`edetail.track`, vendor tracking mapped to it).
    Custom => "custom",
    /// An answer to a slide's survey question.
    SurveyAnswer => "survey_answer",
    /// The rep's note on a call.
    Note => "note",
    /// The HCP asked for follow-up material on a topic.
    FollowUpRequest => "follow_up_request",
    /// Evidence that the HCP advocates the product (agreed to speak, referred a colleague,
    /// shared the microsite): the rep records it, or a deck through the bridge.
    Advocacy => "advocacy",
    /// The sequence the rep presented, built from the hub's plan (planned, kept, dropped,
    /// added slides), recorded with the call.
    CallPlan => "call_plan",
    /// Stands in for an event whose HCP was erased (same uuid and seq, empty payload).
    Erased => "erased",
    /// Stands in for an event the hub refused as too large (same uuid and seq).
    OversizedEvent => "oversized_event",
    /// A deck called a vendor API edetail does not handle (kept so nothing is lost silently).
    UnsupportedApi => "unsupported_api",
    // Reserved vendor kinds: accepted, but the core records vendor tracking as `custom` events
    // whose `event` carries these names (see docs/protocol.md).
    /// Reserved (Veeva clickstream `createRecord`; recorded as `custom` today).
    VeevaClickstream => "veeva_clickstream",
    /// Reserved (Veeva clickstream `updateRecord`; recorded as `custom` today).
    VeevaClickstreamUpdate => "veeva_clickstream_update",
    /// A Veeva deck's `launchApprovedEmail`.
    ApprovedEmailRequest => "approved_email_request",
    /// Reserved (Agnitio monitoring; recorded as `custom` today).
    AgnitioMonitoring => "agnitio_monitoring",
    /// Reserved (Agnitio opened a PDF; recorded as `custom` today).
    AgnitioOpenPdf => "agnitio_open_pdf",
    /// Reserved (Agnitio unknown slide; recorded as `custom` today).
    AgnitioUnknownSlide => "agnitio_unknown_slide",
    /// Reserved (OCE action; recorded as `custom` today).
    OceAction => "oce_action",
    /// Reserved (OCE page tracking; recorded as `custom` today).
    OcePageTracking => "oce_page_tracking",
    /// Reserved (OCE feedback; recorded as `custom` today).
    OceFeedback => "oce_feedback",
}

/// Why a type string is not an allowed event kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindError {
    Empty,
    TooLong,
    /// A character outside printable ASCII.
    BadCharacter,
    /// `app.` with nothing after it, or a character after it outside `[A-Za-z0-9_.-]`.
    BadAppName,
    /// Neither a built-in kind nor in the `app.` namespace.
    Unknown,
}

impl fmt::Display for KindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KindError::Empty => write!(f, "type is empty"),
            KindError::TooLong => write!(f, "type longer than {MAX_TYPE_BYTES} bytes"),
            KindError::BadCharacter => write!(f, "type contains a character outside printable ASCII"),
            KindError::BadAppName => {
                write!(f, "an app-defined type is `{APP_PREFIX}` followed by 1 or more of A-Z, a-z, 0-9, `_`, `.`, `-`")
            }
            KindError::Unknown => {
                write!(f, "type is not a known event kind; kinds an app defines must start with `{APP_PREFIX}` (see docs/protocol.md)")
            }
        }
    }
}

impl std::error::Error for KindError {}

impl EventKind {
    /// Parses a type string: a built-in kind, or `app.` plus a name of letters, digits, `_.-`.
    pub fn parse(s: &str) -> Result<EventKind, KindError> {
        if s.is_empty() {
            return Err(KindError::Empty);
        }
        if s.len() > MAX_TYPE_BYTES {
            return Err(KindError::TooLong);
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KindError::BadCharacter);
        }
        if let Some(k) = EventKind::built_in(s) {
            return Ok(k);
        }
        match s.strip_prefix(APP_PREFIX) {
            Some(name) if is_app_name(name) => Ok(EventKind::App(s.to_string())),
            Some(_) => Err(KindError::BadAppName),
            None => Err(KindError::Unknown),
        }
    }

    /// An app-defined kind for `name` (without the prefix).
    pub fn app(name: &str) -> Result<EventKind, KindError> {
        EventKind::parse(&format!("{APP_PREFIX}{name}"))
    }

    /// The type string an app's type is stored under: `s` itself when it is allowed, else
    /// `app.<s>` when that is (a type recorded before kinds were checked, such as
    /// `sample_request`), else `None`.
    pub fn migrate_legacy(s: &str) -> Option<EventKind> {
        EventKind::parse(s).ok().or_else(|| EventKind::app(s).ok())
    }
}

fn is_app_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventKind {
    type Err = KindError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::parse(s)
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventKind::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_kind_round_trips_and_is_not_app() {
        assert!(EventKind::BUILT_IN.len() >= 20);
        for k in EventKind::BUILT_IN {
            assert_eq!(EventKind::parse(k.as_str()).as_ref(), Ok(k));
            assert!(!k.as_str().starts_with(APP_PREFIX), "{k}");
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(&serde_json::from_str::<EventKind>(&json).unwrap(), k);
        }
        let mut names: Vec<&str> = EventKind::BUILT_IN.iter().map(EventKind::as_str).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), EventKind::BUILT_IN.len(), "a type string is used twice");
    }

    #[test]
    fn app_kinds_need_the_prefix_and_a_plain_name() {
        assert_eq!(EventKind::parse("app.sample_request"), Ok(EventKind::App("app.sample_request".into())));
        assert_eq!(EventKind::parse("app.v2.opened-x"), Ok(EventKind::App("app.v2.opened-x".into())));
        assert_eq!(EventKind::parse("sample_request"), Err(KindError::Unknown));
        assert_eq!(EventKind::parse("app."), Err(KindError::BadAppName));
        assert_eq!(EventKind::parse("app.Opened"), Ok(EventKind::App("app.Opened".into())));
        assert_eq!(EventKind::parse("app.a/b"), Err(KindError::BadAppName));
        assert_eq!(EventKind::parse(""), Err(KindError::Empty));
        assert_eq!(EventKind::parse("slide enter"), Err(KindError::BadCharacter));
        assert_eq!(EventKind::parse("call_started\0"), Err(KindError::BadCharacter));
        assert_eq!(EventKind::parse(&format!("app.{}", "a".repeat(MAX_TYPE_BYTES))), Err(KindError::TooLong));
        assert!(serde_json::from_str::<EventKind>("\"tap\"").is_err());
    }

    #[test]
    fn legacy_app_types_move_into_the_namespace() {
        assert_eq!(EventKind::migrate_legacy("slide_enter"), Some(EventKind::SlideEnter));
        assert_eq!(EventKind::migrate_legacy("app_opened"), Some(EventKind::App("app.app_opened".into())));
        assert_eq!(EventKind::migrate_legacy("app.x"), Some(EventKind::App("app.x".into())));
        assert_eq!(EventKind::migrate_legacy("Sample Request"), None);
        assert_eq!(EventKind::migrate_legacy("sampleRequest"), Some(EventKind::App("app.sampleRequest".into())));
    }
}
