//! Agnitio's container API: `objc://iplanner/<api>?<params>` invocations, as the Agnitio
//! Content API library (`ag`) and older decks' helper functions make them.
//!
//! `monitoringEvent` carries the deck's analytics as JSON (`{type, category, valueId, value,
//! label, time, slidePath, ...}`): `slideEnter` becomes a real slide view of the bundle slide
//! whose `key_message` (or id) is the framework's slide id, `slideExit` is answered (the next
//! view or the end of the call closes the open one), every other category is kept as a
//! `custom` event `agnitio_monitoring`. Data calls (`getPresenter`, `getCallContacts`, ...)
//! answer through the `resultFunction` they name, with ids only, never names.

use edetail_protocol::EventKind;
use serde_json::{Value, json};

use super::{Outcome, Vendor, record_unsupported};
use crate::calls::NavSource;
use crate::device::Device;
use crate::error::{Error, Result};

/// `custom` event name of a monitoring event that is not a slide view.
pub const MONITORING_EVENT: &str = EventKind::AgnitioMonitoring.as_str();
/// `custom` event name of `openPDF`.
pub const OPEN_PDF_EVENT: &str = EventKind::AgnitioOpenPdf.as_str();
/// `custom` event name of a `slideEnter` whose slide the bundle does not know.
pub const UNKNOWN_SLIDE_EVENT: &str = EventKind::AgnitioUnknownSlide.as_str();

/// Splits `objc://iplanner/<api>?<encoded params>` into the api and the decoded params.
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let rest = url.trim().strip_prefix("objc://")?;
    let rest = rest.split_once('/').map(|(_, r)| r)?;
    let (api, query) = rest.split_once('?').unwrap_or((rest, ""));
    let api = crate::assets::percent_decode(api)?;
    if api.is_empty() || !api.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((api, crate::assets::percent_decode(query).unwrap_or_else(|| query.to_string())))
}

/// Answers one invocation in the open call. `params` is the decoded query string.
pub fn invoke(device: &Device, call_id: &str, api: &str, params: &str) -> Result<Outcome> {
    let json: Option<Value> = serde_json::from_str(params).ok();
    let result_function =
        json.as_ref().and_then(|j| j.get("resultFunction")).and_then(Value::as_str).filter(|f| is_function_path(f)).map(str::to_string);
    let answer = |result: Value, f: Option<String>| Outcome::answer(json!({"result": result, "result_function": f}));
    match api {
        "monitoringEvent" => {
            let Some(Value::Object(ev)) = json else {
                record_unsupported(device, call_id, Vendor::Agnitio, api, json!({"params": params}))?;
                return Err(Error::Invalid("monitoringEvent: params must be a JSON object".into()));
            };
            let category = ev.get("category").and_then(Value::as_str).unwrap_or_default();
            match category {
                "slideEnter" => {
                    let ids: Vec<String> = ["valueId", "value", "slidePath"]
                        .iter()
                        .filter_map(|k| ev.get(*k).and_then(Value::as_str).map(str::to_string))
                        .collect();
                    match slide_for(device, call_id, &ids)? {
                        Some(slide) => {
                            let current = device.calls().get(call_id)?.slide_id;
                            if current.as_deref() != Some(slide.as_str()) {
                                device.calls().enter_slide(call_id, &slide, NavSource::Link, false)?;
                            }
                            Ok(answer(json!({"slide": slide}), None))
                        }
                        None => {
                            device.calls().track(call_id, UNKNOWN_SLIDE_EVENT, Value::Object(ev))?;
                            Ok(answer(Value::Null, None))
                        }
                    }
                }
                // The next slideEnter (or the end of the call) closes the view.
                "slideExit" => Ok(answer(Value::Null, None)),
                _ => {
                    let (_, uuid) = device.calls().track(call_id, MONITORING_EVENT, Value::Object(ev))?;
                    Ok(answer(json!({"event_id": uuid}), None))
                }
            }
        }
        "openPDF" => {
            let path = json.as_ref().and_then(|j| j.get("path").and_then(Value::as_str)).unwrap_or(params).to_string();
            let (_, uuid) = device.calls().track(call_id, OPEN_PDF_EVENT, json!({"path": path}))?;
            Ok(answer(json!({"event_id": uuid}), None))
        }
        "getPresenter" => Ok(answer(json!({"id": device.rep_id()}), result_function)),
        "getCallContacts" => {
            // Passed the bare function name, not JSON.
            let f = result_function.or_else(|| Some(params.trim().to_string()).filter(|p| is_function_path(p)));
            let hcp = device.calls().get(call_id)?.hcp_id;
            Ok(answer(Value::Array(hcp.into_iter().map(|h| json!({"id": h})).collect()), f))
        }
        "getMeetingDynamicAttributes" | "getContentSettings" => Ok(answer(json!({}), result_function)),
        _ => {
            let args = json.unwrap_or_else(|| Value::String(params.to_string()));
            record_unsupported(device, call_id, Vendor::Agnitio, api, args)?;
            Ok(answer(Value::Null, None))
        }
    }
}

fn is_function_path(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$'))
}

/// The bundle slide a framework slide id names: by key message, then by slide id, then by the
/// last segment of a slide path (`core/cz_intro`).
fn slide_for(device: &Device, call_id: &str, names: &[String]) -> Result<Option<String>> {
    let Some(bundle) = device.calls().get(call_id)?.bundle_id else { return Ok(None) };
    let active = device.content().active(&bundle)?;
    let m = &active.manifest;
    for name in names {
        let last = name.rsplit('/').next().unwrap_or(name);
        for n in [name.as_str(), last] {
            if let Some(s) = m.slides.iter().find(|s| s.key_message.as_deref() == Some(n)).or_else(|| m.slide(n)) {
                return Ok(Some(s.id.clone()));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (api, params) = parse_url("objc://iplanner/monitoringEvent?%7B%22category%22%3A%22slideEnter%22%7D").unwrap();
        assert_eq!((api.as_str(), params.as_str()), ("monitoringEvent", r#"{"category":"slideEnter"}"#));
        assert_eq!(parse_url("objc://iplanner/closePresentation?").unwrap(), ("closePresentation".into(), String::new()));
        assert_eq!(parse_url("objc://iplanner/openPDF?docs%2Fpi.pdf").unwrap().1, "docs/pi.pdf");
        for bad in ["http://x/y", "objc://iplanner", "objc://iplanner/?x", "objc://iplanner/a b?x", "objc://iplanner/%zz?x"] {
            assert_eq!(parse_url(bad), None, "{bad}");
        }
        assert!(is_function_path("ag.data._saveContacts"));
        assert!(!is_function_path("alert(1)"));
    }
}
