//! The slide bridge: `handle(json) -> json` for messages from `edetail.js`, the stand-in libraries
//! and the vendor container emulation (protocol in docs/bridge-protocol.md, ADR 0013). Every
//! input, however malformed, gets an error reply; nothing here panics or echoes personal data
//! into error messages.

use serde_json::{Map, Value, json};

use edetail_protocol::payload::AdvocacyAction;

use crate::calls::{NavSource, Reaction};
use crate::device::Device;
use crate::error::Error;
use crate::navigation::{NavAction, NavTarget};
use crate::vendor::veeva::Callback;
use crate::vendor::{self, Vendor};

/// Protocol version.
pub const VERSION: u64 = 1;
/// Largest message accepted.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Longest event name, key or question id.
pub const MAX_NAME_CHARS: usize = 128;

struct Fail {
    code: &'static str,
    message: String,
}

fn fail(code: &'static str, message: impl Into<String>) -> Fail {
    Fail { code, message: message.into() }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        match e {
            Error::StorageFull => fail("storage", e.to_string()),
            Error::UnknownSlide { .. } => fail("not_found", e.to_string()),
            Error::CallNotOpen(_) | Error::UnknownCall(_) => fail("no_call", "no call is open"),
            Error::Invalid(m) => fail("invalid_params", m),
            other => fail("storage", other.to_string()),
        }
    }
}

fn reply(id: &Value, result: Result<Value, Fail>) -> String {
    let v = match result {
        Ok(r) => json!({"v": VERSION, "id": id, "ok": true, "result": r}),
        Err(f) => json!({"v": VERSION, "id": id, "ok": false, "error": {"code": f.code, "message": f.message}}),
    };
    v.to_string()
}

/// Handles one bridge message.
pub fn handle(device: &Device, raw: &str) -> String {
    if raw.len() > MAX_MESSAGE_BYTES {
        return reply(&Value::Null, Err(fail("malformed", format!("message larger than {MAX_MESSAGE_BYTES} bytes"))));
    }
    let msg: Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(e) => return reply(&Value::Null, Err(fail("malformed", format!("not JSON: {e}")))),
    };
    let Some(obj) = msg.as_object() else {
        return reply(&Value::Null, Err(fail("malformed", "message must be a JSON object")));
    };
    let id = obj.get("id").filter(|v| v.is_number() || v.is_string()).cloned().unwrap_or(Value::Null);
    if obj.get("v").and_then(Value::as_u64) != Some(VERSION) {
        return reply(&id, Err(fail("unsupported_version", format!("this runtime speaks bridge protocol v{VERSION}"))));
    }
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return reply(&id, Err(fail("malformed", "missing \"method\"")));
    };
    let empty = Map::new();
    let params = match obj.get("params") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return reply(&id, Err(fail("malformed", "\"params\" must be an object"))),
    };
    reply(&id, dispatch(device, method, params))
}

fn text<'a>(p: &'a Map<String, Value>, key: &str) -> Result<&'a str, Fail> {
    let s = p.get(key).and_then(Value::as_str).ok_or_else(|| fail("invalid_params", format!("\"{key}\" must be a string")))?;
    if s.is_empty() || s.chars().count() > MAX_NAME_CHARS {
        return Err(fail("invalid_params", format!("\"{key}\" must be 1-{MAX_NAME_CHARS} characters")));
    }
    Ok(s)
}

fn opt_text(p: &Map<String, Value>, key: &str) -> Option<String> {
    p.get(key).and_then(Value::as_str).map(str::to_string)
}

fn call(device: &Device) -> Result<String, Fail> {
    device.calls().open_call()?.ok_or_else(|| fail("no_call", "no call is open"))
}

fn context(device: &Device) -> Result<Value, Fail> {
    let Some(call_id) = device.calls().open_call()? else {
        return Ok(json!({"call": null, "hcp": null, "rep": {"id": device.rep_id()}, "slide": null, "bundle": null}));
    };
    let c = device.calls().get(&call_id)?;
    let bundle = match &c.bundle_id {
        Some(b) => device.content().active(b).ok().map(|a| json!({"id": b, "version": a.version})),
        None => None,
    };
    Ok(json!({
        "call": {"id": c.id, "channel": c.channel},
        "hcp": c.hcp_id.as_ref().map(|h| json!({"id": h})),
        "rep": {"id": c.rep_id},
        "slide": c.slide_id.as_ref().map(|s| json!({"id": s, "presentation": c.presentation_id})),
        "bundle": bundle,
    }))
}

fn dispatch(device: &Device, method: &str, p: &Map<String, Value>) -> Result<Value, Fail> {
    match method {
        "hello" | "context" => context(device),
        "navigate" => {
            let call_id = call(device)?;
            let action = match p.get("action").and_then(Value::as_str) {
                Some("next") => NavAction::Next,
                Some("prev") | Some("previous") => NavAction::Previous,
                Some("goto") => NavAction::Goto {
                    slide: opt_text(p, "slide"),
                    presentation: opt_text(p, "presentation"),
                    key_message: opt_text(p, "key_message"),
                },
                _ => return Err(fail("invalid_params", "\"action\" must be next, prev or goto")),
            };
            let source = if matches!(action, NavAction::Goto { .. }) { NavSource::Jump } else { NavSource::Link };
            let t = device.calls().navigate(&call_id, &action, source, false)?;
            Ok(json!({"slide": t.slide, "presentation": t.presentation, "url": t.url, "moved": t.moved}))
        }
        "track" => {
            let call_id = call(device)?;
            let event = text(p, "event")?;
            let data = p.get("data").cloned().unwrap_or(Value::Null);
            if data.to_string().len() > crate::outbox::MAX_PAYLOAD_BYTES {
                return Err(fail("invalid_params", "\"data\" is larger than 64 KiB"));
            }
            let (_, uuid) = device.calls().track(&call_id, event, data)?;
            Ok(json!({"event_id": uuid}))
        }
        "answer" => {
            let call_id = call(device)?;
            let question = text(p, "question")?;
            let answers: Vec<String> = match p.get("answers") {
                Some(Value::Array(a)) => a.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect(),
                _ => return Err(fail("invalid_params", "\"answers\" must be an array")),
            };
            device.calls().answer(&call_id, question, &answers, p.get("text").and_then(Value::as_str))?;
            Ok(json!({}))
        }
        "react" => {
            let call_id = call(device)?;
            let v = p
                .get("value")
                .and_then(Value::as_str)
                .and_then(Reaction::parse)
                .ok_or_else(|| fail("invalid_params", "react: value must be positive, neutral or negative"))?;
            device.calls().react(&call_id, v)?;
            Ok(json!({}))
        }
        "follow_up" => {
            let call_id = call(device)?;
            device.calls().follow_up(&call_id, text(p, "topic")?, p.get("note").and_then(Value::as_str))?;
            Ok(json!({}))
        }
        "advocacy" => {
            let call_id = call(device)?;
            let action = p.get("action").and_then(Value::as_str).and_then(AdvocacyAction::parse).ok_or_else(|| {
                fail("invalid_params", "advocacy: action must be agreed_to_speak, referred_colleague or shared_microsite")
            })?;
            let (_, uuid) = device.calls().advocacy(&call_id, action)?;
            Ok(json!({"event_id": uuid}))
        }
        "state.save" => {
            let call_id = call(device)?;
            let value = p.get("value").cloned().unwrap_or(Value::Null);
            if value.to_string().len() > crate::outbox::MAX_PAYLOAD_BYTES {
                return Err(fail("invalid_params", "\"value\" is larger than 64 KiB"));
            }
            device.calls().state_save(&call_id, text(p, "key")?, &value)?;
            Ok(json!({}))
        }
        "state.load" => {
            let call_id = call(device)?;
            Ok(json!({"value": device.calls().state_load(&call_id, text(p, "key")?)?}))
        }
        "veeva.get_data" => veeva_get_data(device, text(p, "object")?, text(p, "field")?),
        "veeva.request" => veeva_request(device, p),
        "agnitio.invoke" => agnitio_invoke(device, p),
        "oce.call" => oce_call(device, p),
        "vendor.unsupported" => vendor_unsupported(device, p),
        other => Err(fail("unknown_method", format!("unknown method {:?}", other.chars().take(64).collect::<String>()))),
    }
}

/// `getDataForCurrentObject`: ids and approved metadata only, never HCP names.
fn veeva_get_data(device: &Device, object: &str, field: &str) -> Result<Value, Fail> {
    let call_id = call(device)?;
    if !matches!(object, "Account" | "Call" | "User" | "Presentation" | "KeyMessage") {
        return Err(fail("invalid_params", format!("object {object:?} is not supported")));
    }
    Ok(json!({"value": vendor::veeva::current_field(device, &call_id, object, field)?.unwrap_or(Value::Null)}))
}

fn with_navigation(mut result: Value, navigate: Option<NavTarget>) -> Value {
    if let (Some(t), Some(o)) = (navigate, result.as_object_mut()) {
        o.insert("navigate".into(), json!({"slide": t.slide, "presentation": t.presentation, "url": t.url, "moved": t.moved}));
    }
    result
}

/// `veeva.request`: one `veeva:` request string (or several joined by `;`), as the deck built it.
fn veeva_request(device: &Device, p: &Map<String, Value>) -> Result<Value, Fail> {
    let call_id = call(device)?;
    let raw = p.get("request").and_then(Value::as_str).ok_or_else(|| fail("invalid_params", "\"request\" must be a string"))?;
    let requests = match vendor::veeva::parse(raw) {
        Ok(r) => r,
        Err(e) => {
            // Even an unreadable request is kept: the deck meant to tell the container something.
            vendor::record_unsupported(device, &call_id, Vendor::Veeva, "unparsed_request", json!({"request": raw}))?;
            return Err(fail("invalid_params", e.to_string()));
        }
    };
    let mut last = None;
    let mut navigate = None;
    for r in &requests {
        let out = vendor::veeva::execute(device, &call_id, r)?;
        navigate = out.navigate.or(navigate);
        last = Some((r.callback.clone(), out.result));
    }
    let (callback, result) = last.expect("parse returns at least one request");
    let callback = match callback {
        Callback::None => Value::Null,
        Callback::Named(n) => Value::String(n),
        Callback::Id(id) => json!(id),
    };
    Ok(with_navigation(json!({"callback": callback, "result": result, "requests": requests.len()}), navigate))
}

/// `agnitio.invoke`: `{api, params}` or `{url: "objc://iplanner/<api>?<params>"}`.
fn agnitio_invoke(device: &Device, p: &Map<String, Value>) -> Result<Value, Fail> {
    let call_id = call(device)?;
    let (api, params) = match p.get("url").and_then(Value::as_str) {
        Some(url) => {
            vendor::agnitio::parse_url(url).ok_or_else(|| fail("invalid_params", "\"url\" is not an objc://iplanner/<api>?<params> URL"))?
        }
        None => (text(p, "api")?.to_string(), p.get("params").and_then(Value::as_str).unwrap_or_default().to_string()),
    };
    let out = vendor::agnitio::invoke(device, &call_id, &api, &params)?;
    Ok(with_navigation(out.result, out.navigate))
}

/// `oce.call`: `{request, params}` as a CLMPlayer call or a `nativeCall` message names them.
fn oce_call(device: &Device, p: &Map<String, Value>) -> Result<Value, Fail> {
    let call_id = call(device)?;
    let request = text(p, "request")?;
    let empty = Map::new();
    let params = match p.get("params") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(fail("invalid_params", "\"params\" must be an object")),
    };
    let out = vendor::oce::call(device, &call_id, request, params)?;
    Ok(with_navigation(json!({"result": out.result}), out.navigate))
}

/// `vendor.unsupported`: a stand-in library answered a call itself as unsupported; keep it.
fn vendor_unsupported(device: &Device, p: &Map<String, Value>) -> Result<Value, Fail> {
    let call_id = call(device)?;
    let vendor = Vendor::parse(text(p, "vendor")?).ok_or_else(|| fail("invalid_params", "\"vendor\" must be veeva, agnitio or oce"))?;
    let api = text(p, "api")?;
    let uuid = vendor::record_unsupported(device, &call_id, vendor, api, p.get("args").cloned().unwrap_or(Value::Null))?;
    Ok(json!({"event_id": uuid}))
}
