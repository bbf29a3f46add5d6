//! IQVIA OCE's container API, `CLMPlayer`: the calls a deck makes on the player (directly, on
//! `window.parent.CLMPlayer` from a frame, or as `{"request", "params"}` JSON posted to
//! `webkit.messageHandlers.nativeCall`), answered and recorded.
//!
//! Navigation (`gotoSlide`, `goNextSequence`, `goPreviousSequence`) moves the call; tracking
//! (`addAction`, `startTrackingPage`, `stopTrackingPage`, `updateFeedback`) becomes `custom`
//! events; `saveState` is the call's slide state; gesture regions and `alert` are the page's
//! business and only answered; anything else is recorded as `unsupported_api`.

use edetail_protocol::EventKind;
use serde_json::{Map, Value, json};

use super::{Outcome, Vendor, goto_named, record_unsupported, step};
use crate::device::Device;
use crate::error::Result;
use crate::navigation::NavTarget;

/// `custom` event name of `addAction`.
pub const ACTION_EVENT: &str = EventKind::OceAction.as_str();
/// `custom` event name of `startTrackingPage` / `stopTrackingPage`.
pub const PAGE_TRACKING_EVENT: &str = EventKind::OcePageTracking.as_str();
/// `custom` event name of `updateFeedback`.
pub const FEEDBACK_EVENT: &str = EventKind::OceFeedback.as_str();
/// Slide-state key under which `saveState` keeps the deck's state.
pub const STATE_KEY: &str = "oce_state";

/// `custom` event name of a further page of a sequence opened with `gotoSlide`.
pub const PAGE_EVENT: &str = "oce_page";

/// An HTML page named `name` in the folder of the call's current slide, as a target that keeps
/// the slide (`moved`: the page loads).
fn sequence_page(device: &Device, call_id: &str, names: &[&str]) -> Result<Option<NavTarget>> {
    let c = device.calls().get(call_id)?;
    let (Some(bundle), Some(slide)) = (c.bundle_id, c.slide_id) else { return Ok(None) };
    let active = device.content().active(&bundle)?;
    let Some(entry) = active.manifest.slide(&slide).map(|s| s.entry.clone()) else { return Ok(None) };
    for name in names.iter().map(|n| n.trim().trim_start_matches("./")).filter(|n| n.ends_with(".html") || n.ends_with(".htm")) {
        if let Some(page) = entry.join_relative(name)
            && active.manifest.files.contains_key(&page)
        {
            let url = crate::assets::asset_url(&bundle, page.as_str());
            return Ok(Some(NavTarget { slide, presentation: c.presentation_id.unwrap_or_default(), url, moved: true }));
        }
    }
    Ok(None)
}

/// Answers one `CLMPlayer` request in the open call.
pub fn call(device: &Device, call_id: &str, request: &str, params: &Map<String, Value>) -> Result<Outcome> {
    let ok = || json!({"success": true});
    match request {
        "gotoSlide" => {
            // Both signatures are seen: (sequenceId, slideName, animation) and
            // (keyMessage, sequence, presentation); try every string argument as a name.
            let given: Vec<&str> = ["sequenceId", "slideName", "keyMessage", "sequence", "slide"]
                .iter()
                .filter_map(|k| params.get(*k).and_then(Value::as_str))
                .chain(params.get("args").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str))
                .collect();
            let names: Vec<&str> = given.iter().flat_map(|n| [*n, n.trim_end_matches(".html").trim_end_matches("/index")]).collect();
            let presentation = params.get("presentation").and_then(Value::as_str);
            if let Some(t) = goto_named(device, call_id, &names, presentation)? {
                return Ok(Outcome { result: ok(), navigate: Some(t) });
            }
            // A further page of the current sequence (`gotoSlide(null, "detail.html")`): the
            // page loads, the slide view goes on, the page is recorded.
            if let Some(t) = sequence_page(device, call_id, &given)? {
                device.calls().track(call_id, PAGE_EVENT, json!({"page": t.url}))?;
                return Ok(Outcome { result: ok(), navigate: Some(t) });
            }
            Ok(Outcome::answer(json!({"success": false, "message": format!("gotoSlide: no slide named {given:?} in this deck")})))
        }
        "goNextSequence" | "goPreviousSequence" => {
            let t = step(device, call_id, request == "goNextSequence")?;
            Ok(Outcome { result: ok(), navigate: Some(t) })
        }
        "addAction" => {
            let (_, uuid) = device.calls().track(call_id, ACTION_EVENT, Value::Object(params.clone()))?;
            Ok(Outcome::answer(json!({"success": true, "event_id": uuid})))
        }
        "startTrackingPage" | "stopTrackingPage" => {
            let mut data = params.clone();
            data.insert("request".into(), Value::String(request.into()));
            let (_, uuid) = device.calls().track(call_id, PAGE_TRACKING_EVENT, Value::Object(data))?;
            Ok(Outcome::answer(json!({"success": true, "event_id": uuid})))
        }
        "updateFeedback" => {
            let (_, uuid) = device.calls().track(call_id, FEEDBACK_EVENT, Value::Object(params.clone()))?;
            Ok(Outcome::answer(json!({"success": true, "event_id": uuid})))
        }
        "saveState" => {
            device.calls().state_save(call_id, STATE_KEY, params.get("state").unwrap_or(&Value::Null))?;
            Ok(Outcome::answer(ok()))
        }
        // The page shows alerts and keeps its no-swipe regions itself.
        "alert" | "defineNoSwipeRegion" | "destroyNoSwipeRegion" | "registerEventListener" | "executeEvent" => Ok(Outcome::answer(ok())),
        _ => {
            record_unsupported(device, call_id, Vendor::Oce, request, Value::Object(params.clone()))?;
            Ok(Outcome::answer(json!({"success": false, "message": format!("{request} is not supported by edetail")})))
        }
    }
}
