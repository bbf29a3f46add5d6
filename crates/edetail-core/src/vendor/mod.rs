//! The container side of other vendors' slide libraries (ADR 0013): Veeva's `veeva:` request
//! language, Agnitio's `objc://iplanner` invocations and OCE's `CLMPlayer` calls, each turned
//! into events of the open call and answered in the vendor's own shape. A call edetail cannot
//! honour is answered as the vendor's failure and recorded as `unsupported_api`; nothing a deck
//! sends is dropped.
//!
//! The page side (`js/containers.js`) only intercepts the transports and forwards raw strings
//! through the bridge methods `veeva.request`, `agnitio.invoke`, `oce.call` and
//! `vendor.unsupported`; the bridge module (a layer above this one) dispatches them here.

pub mod agnitio;
pub mod oce;
pub mod veeva;

use edetail_protocol::{EventKind, Payload};
use serde_json::{Value, json};

use crate::calls::NavSource;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::navigation::{NavAction, NavTarget};

/// Event kind of a vendor call edetail answered as unsupported.
pub const UNSUPPORTED_API: &str = EventKind::UnsupportedApi.as_str();
/// Longest serialized `args` kept in an `unsupported_api` event; longer ones are cut and
/// marked `truncated`.
pub const MAX_ARGS_BYTES: usize = 8 * 1024;
/// Longest vendor API name kept (longer names are cut).
pub const MAX_API_CHARS: usize = 128;

/// Which vendor's container a call was made to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Veeva,
    Agnitio,
    Oce,
}

impl Vendor {
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Veeva => "veeva",
            Vendor::Agnitio => "agnitio",
            Vendor::Oce => "oce",
        }
    }

    pub fn parse(s: &str) -> Option<Vendor> {
        match s {
            "veeva" => Some(Vendor::Veeva),
            "agnitio" => Some(Vendor::Agnitio),
            "oce" => Some(Vendor::Oce),
            _ => None,
        }
    }
}

/// What a vendor call produced: the answer for the page, and where the deck moved, if it did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub result: Value,
    pub navigate: Option<NavTarget>,
}

impl Outcome {
    pub fn answer(result: Value) -> Outcome {
        Outcome { result, navigate: None }
    }
}

/// Records that a deck called `api`, which edetail does not honour, with its arguments (cut to
/// [`MAX_ARGS_BYTES`]) and the slide it was on. Returns the event's uuid.
pub fn record_unsupported(device: &Device, call_id: &str, vendor: Vendor, api: &str, args: Value) -> Result<String> {
    let api: String = api.chars().take(MAX_API_CHARS).collect();
    let serialized = args.to_string();
    let args = if serialized.len() > MAX_ARGS_BYTES {
        let mut cut = MAX_ARGS_BYTES;
        while !serialized.is_char_boundary(cut) {
            cut -= 1;
        }
        json!({"truncated": true, "text": &serialized[..cut]})
    } else {
        args
    };
    let (_, uuid) = device.calls().record_on_slide(call_id, |slide| {
        open_payload(
            EventKind::UnsupportedApi,
            [("vendor", vendor.as_str().into()), ("api", api.into()), ("slide", slide.into()), ("args", args)],
        )
    })?;
    Ok(uuid)
}

/// A vendor kind's payload: the JSON object as built (vendor kinds have no typed payload, the
/// contract keeps them as open maps).
pub(crate) fn open_payload<const N: usize>(kind: EventKind, fields: [(&str, Value); N]) -> Payload {
    Payload::Open(kind, fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Moves the call to the slide a vendor call names: by key message (also its `.zip` file name
/// or entry folder), else by slide id. `Ok(None)` when nothing in the deck matches.
pub(crate) fn goto_named(device: &Device, call_id: &str, names: &[&str], presentation: Option<&str>) -> Result<Option<NavTarget>> {
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        for action in [
            NavAction::Goto { slide: None, presentation: presentation.map(str::to_string), key_message: Some(name.to_string()) },
            NavAction::Goto { slide: Some(name.to_string()), presentation: None, key_message: None },
        ] {
            match device.calls().navigate(call_id, &action, NavSource::Jump, false) {
                Ok(t) => return Ok(Some(t)),
                Err(Error::UnknownSlide { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(None)
}

/// Next or previous slide on the deck's own request.
pub(crate) fn step(device: &Device, call_id: &str, next: bool) -> Result<NavTarget> {
    device.calls().navigate(call_id, if next { &NavAction::Next } else { &NavAction::Previous }, NavSource::Link, false)
}
