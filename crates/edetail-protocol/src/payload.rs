//! Typed payloads of the built-in event kinds: what each kind carries, as the device records it
//! and the hub validates it on ingest ([`Payload::parse`]).
//!
//! Fields a kind may lack are `Option`s and unknown fields are ignored (a newer device may add
//! some; the hub stores the payload as received), but a field that is present must have its type:
//! `"dwell_ms": "8000"` is refused. Vendor and app-defined kinds carry any JSON object.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::EventKind;

/// `call_started`: who, whom, where and what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallStarted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rep_id: Option<String>,
    /// Absent or null when the call is not tracked per HCP (consent `anonymous`).
    #[serde(default)]
    pub hcp_id: Option<String>,
    /// `face_to_face`, `remote`, `microsite`, ...
    pub channel: String,
    #[serde(default)]
    pub bundle_id: Option<String>,
    #[serde(default)]
    pub bundle_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The hub plan the call followed; null when none (docs/protocol.md), so always present.
    #[serde(default)]
    pub plan_id: Option<String>,
    /// Set by the hub for a microsite visit recorded as a call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub microsite_id: Option<String>,
}

/// `call_ended`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallEnded {
    #[serde(default)]
    pub duration_ms: Option<i64>,
}

/// `call_interrupted`: the app died during the call; closed at its last heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallInterrupted {
    #[serde(default)]
    pub last_heartbeat_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `slide_enter`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlideEnter {
    pub slide: String,
    #[serde(default)]
    pub presentation: Option<String>,
    /// What moved the call here: `start`, `swipe`, `link`, `menu`, `microsite`, ...
    #[serde(default)]
    pub source: Option<String>,
    /// The HCP navigated herself.
    #[serde(default)]
    pub hcp_led: bool,
    #[serde(default)]
    pub bundle_version: Option<u64>,
}

/// `slide_exit`: the view's measured dwell (monotonic, background time excluded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlideExit {
    #[serde(default)]
    pub slide: Option<String>,
    #[serde(default)]
    pub presentation: Option<String>,
    #[serde(default)]
    pub dwell_ms: Option<i64>,
    /// `navigation`, `call_end`, `recovery`, `microsite`, ...
    #[serde(default)]
    pub closed_by: Option<String>,
}

/// `app_background` / `app_foreground` during a call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppLifecycle {
    #[serde(default)]
    pub slide: Option<String>,
}

/// `reaction`: the HCP's reaction to the slide on screen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    #[serde(default)]
    pub slide: Option<String>,
    /// `positive`, `neutral`, `negative`.
    pub value: String,
}

/// `custom`: a slide's own tracking call (`edetail.track(event, data)`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Custom {
    #[serde(default)]
    pub slide: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub data: Value,
}

/// `survey_answer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SurveyAnswer {
    #[serde(default)]
    pub slide: Option<String>,
    pub question: String,
    #[serde(default)]
    pub answers: Vec<String>,
    #[serde(default)]
    pub text: Option<String>,
}

/// `note`: the rep's free text (personal data: never logged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub text: String,
}

/// `follow_up_request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FollowUpRequest {
    #[serde(default)]
    pub slide: Option<String>,
    pub topic: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// What an `advocacy` event says the HCP did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvocacyAction {
    /// Agreed to speak to peers (speaker programme, round table, congress).
    AgreedToSpeak,
    /// Referred a colleague to the rep or the product.
    ReferredColleague,
    /// Shared the follow-up microsite (or approved material) with a colleague.
    SharedMicrosite,
}

impl AdvocacyAction {
    pub const ALL: [AdvocacyAction; 3] =
        [AdvocacyAction::AgreedToSpeak, AdvocacyAction::ReferredColleague, AdvocacyAction::SharedMicrosite];

    pub fn as_str(self) -> &'static str {
        match self {
            AdvocacyAction::AgreedToSpeak => "agreed_to_speak",
            AdvocacyAction::ReferredColleague => "referred_colleague",
            AdvocacyAction::SharedMicrosite => "shared_microsite",
        }
    }

    pub fn parse(s: &str) -> Option<AdvocacyAction> {
        AdvocacyAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// `advocacy`: evidence of advocacy (no free text: the action only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advocacy {
    /// The slide on screen, when recorded during a slide.
    #[serde(default)]
    pub slide: Option<String>,
    pub action: AdvocacyAction,
}

/// `call_plan`: the sequence the rep presented and how it differs from the hub's plan. Slide
/// ids only; `planned` is empty when the call had no hub plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallPlan {
    /// The hub plan the sequence started from (null: deck order or the local suggestion).
    #[serde(default)]
    pub plan_id: Option<String>,
    /// `treatment` or `holdout`, copied from the plan.
    #[serde(default)]
    pub arm: Option<String>,
    /// The device's id of the saved sequence.
    #[serde(default)]
    pub sequence_id: Option<String>,
    /// The plan's slides, in the plan's order.
    #[serde(default)]
    pub planned: Vec<String>,
    /// Planned slides the rep kept.
    #[serde(default)]
    pub kept: Vec<String>,
    /// Planned slides the rep removed.
    #[serde(default)]
    pub dropped: Vec<String>,
    /// Slides the rep added that the plan did not have.
    #[serde(default)]
    pub added: Vec<String>,
    /// The sequence as presented.
    #[serde(default)]
    pub order: Vec<String>,
}

/// `oversized_event`: stands in for an event the hub refused as too large.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OversizedEvent {
    #[serde(default)]
    pub original_type_bytes: Option<u64>,
    #[serde(default)]
    pub batch_bytes: Option<u64>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// The payload of an event, typed by its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    CallStarted(CallStarted),
    CallEnded(CallEnded),
    CallInterrupted(CallInterrupted),
    SlideEnter(SlideEnter),
    SlideExit(SlideExit),
    AppBackground(AppLifecycle),
    AppForeground(AppLifecycle),
    Reaction(Reaction),
    Custom(Custom),
    SurveyAnswer(SurveyAnswer),
    Note(Note),
    FollowUpRequest(FollowUpRequest),
    Advocacy(Advocacy),
    CallPlan(CallPlan),
    OversizedEvent(OversizedEvent),
    /// `erased`: always the empty object.
    Erased,
    /// Vendor and app-defined kinds: any JSON object, kept as recorded.
    Open(EventKind, Map<String, Value>),
}

fn typed<T: DeserializeOwned>(kind: &EventKind, v: &Value) -> Result<T, String> {
    T::deserialize(v).map_err(|e| format!("{kind} payload does not match the event contract: {e}"))
}

impl Payload {
    /// Checks `payload` against `kind`'s contract. Errors name the kind and the mismatch, never
    /// the payload's content.
    pub fn parse(kind: &EventKind, payload: &Value) -> Result<Payload, String> {
        let Value::Object(map) = payload else { return Err("payload is not a JSON object".into()) };
        Ok(match kind {
            EventKind::CallStarted => Payload::CallStarted(typed(kind, payload)?),
            EventKind::CallEnded => Payload::CallEnded(typed(kind, payload)?),
            EventKind::CallInterrupted => Payload::CallInterrupted(typed(kind, payload)?),
            EventKind::SlideEnter => Payload::SlideEnter(typed(kind, payload)?),
            EventKind::SlideExit => Payload::SlideExit(typed(kind, payload)?),
            EventKind::AppBackground => Payload::AppBackground(typed(kind, payload)?),
            EventKind::AppForeground => Payload::AppForeground(typed(kind, payload)?),
            EventKind::Reaction => Payload::Reaction(typed(kind, payload)?),
            EventKind::Custom => Payload::Custom(typed(kind, payload)?),
            EventKind::SurveyAnswer => Payload::SurveyAnswer(typed(kind, payload)?),
            EventKind::Note => Payload::Note(typed(kind, payload)?),
            EventKind::FollowUpRequest => Payload::FollowUpRequest(typed(kind, payload)?),
            EventKind::Advocacy => Payload::Advocacy(typed(kind, payload)?),
            EventKind::CallPlan => Payload::CallPlan(typed(kind, payload)?),
            EventKind::OversizedEvent => Payload::OversizedEvent(typed(kind, payload)?),
            EventKind::Erased if map.is_empty() => Payload::Erased,
            EventKind::Erased => return Err("erased payload must be the empty object".into()),
            other => Payload::Open(other.clone(), map.clone()),
        })
    }

    /// The kind this payload belongs to.
    pub fn kind(&self) -> EventKind {
        match self {
            Payload::CallStarted(_) => EventKind::CallStarted,
            Payload::CallEnded(_) => EventKind::CallEnded,
            Payload::CallInterrupted(_) => EventKind::CallInterrupted,
            Payload::SlideEnter(_) => EventKind::SlideEnter,
            Payload::SlideExit(_) => EventKind::SlideExit,
            Payload::AppBackground(_) => EventKind::AppBackground,
            Payload::AppForeground(_) => EventKind::AppForeground,
            Payload::Reaction(_) => EventKind::Reaction,
            Payload::Custom(_) => EventKind::Custom,
            Payload::SurveyAnswer(_) => EventKind::SurveyAnswer,
            Payload::Note(_) => EventKind::Note,
            Payload::FollowUpRequest(_) => EventKind::FollowUpRequest,
            Payload::Advocacy(_) => EventKind::Advocacy,
            Payload::CallPlan(_) => EventKind::CallPlan,
            Payload::OversizedEvent(_) => EventKind::OversizedEvent,
            Payload::Erased => EventKind::Erased,
            Payload::Open(k, _) => k.clone(),
        }
    }

    /// The JSON object recorded and sent.
    pub fn to_value(&self) -> Value {
        fn v<T: Serialize>(t: &T) -> Value {
            serde_json::to_value(t).expect("payload types serialise")
        }
        match self {
            Payload::CallStarted(p) => v(p),
            Payload::CallEnded(p) => v(p),
            Payload::CallInterrupted(p) => v(p),
            Payload::SlideEnter(p) => v(p),
            Payload::SlideExit(p) => v(p),
            Payload::AppBackground(p) | Payload::AppForeground(p) => v(p),
            Payload::Reaction(p) => v(p),
            Payload::Custom(p) => v(p),
            Payload::SurveyAnswer(p) => v(p),
            Payload::Note(p) => v(p),
            Payload::FollowUpRequest(p) => v(p),
            Payload::Advocacy(p) => v(p),
            Payload::CallPlan(p) => v(p),
            Payload::OversizedEvent(p) => v(p),
            Payload::Erased => Value::Object(Map::new()),
            Payload::Open(_, m) => Value::Object(m.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn present_fields_must_have_their_type_and_unknown_fields_pass() {
        let exit = EventKind::SlideExit;
        assert!(Payload::parse(&exit, &json!({"slide": "a", "dwell_ms": 8000, "closed_by": "navigation", "new_field": 1})).is_ok());
        let err = Payload::parse(&exit, &json!({"slide": "a", "dwell_ms": "8000"})).unwrap_err();
        assert!(err.starts_with("slide_exit payload does not match the event contract"), "{err}");
        assert!(!err.contains("\"a\""), "the error does not echo content: {err}");
        assert!(Payload::parse(&EventKind::SlideEnter, &json!({"presentation": "main"})).unwrap_err().contains("slide"));
        assert!(Payload::parse(&EventKind::Reaction, &json!({"slide": "a"})).is_err(), "a reaction has a value");
        assert!(Payload::parse(&EventKind::Note, &json!([1])).unwrap_err().contains("not a JSON object"));
        assert!(Payload::parse(&EventKind::Erased, &json!({"hcp_id": "x"})).is_err());
        let advocacy = Payload::parse(&EventKind::Advocacy, &json!({"action": "told_a_friend"})).unwrap_err();
        assert!(advocacy.starts_with("advocacy payload does not match"), "an unknown advocacy action is refused: {advocacy}");
        assert!(Payload::parse(&EventKind::CallPlan, &json!({"planned": "a"})).is_err(), "slide lists are lists");
        let app = EventKind::parse("app.sample_request").unwrap();
        assert_eq!(Payload::parse(&app, &json!({"units": 2})).unwrap().to_value(), json!({"units": 2}));
    }

    #[test]
    fn every_built_in_kind_has_a_payload_that_round_trips() {
        for kind in EventKind::BUILT_IN {
            let sample = match kind {
                EventKind::CallStarted => json!({"channel": "face_to_face", "hcp_id": null}),
                EventKind::SlideEnter => json!({"slide": "a"}),
                EventKind::Reaction => json!({"value": "positive"}),
                EventKind::Custom => json!({"event": "tap"}),
                EventKind::SurveyAnswer => json!({"question": "q"}),
                EventKind::Note => json!({"text": "t"}),
                EventKind::FollowUpRequest => json!({"topic": "dosing"}),
                EventKind::Advocacy => json!({"action": "agreed_to_speak"}),
                EventKind::CallPlan => json!({"plan_id": "p", "planned": ["a", "b"], "kept": ["a"], "dropped": ["b"], "added": ["c"]}),
                _ => json!({}),
            };
            let p = Payload::parse(kind, &sample).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(&p.kind(), kind);
            assert_eq!(Payload::parse(kind, &p.to_value()).unwrap(), p, "{kind}");
        }
    }
}
