//! Veeva CRM's `veeva:` request language: the parser, and the container's answers.
//!
//! A request is a chain of `name(body)` segments separated by `,`, as Veeva's library builds it:
//! `veeva:saveObjectV2(Call_Clickstream_vod__c),value({...}),callback(fn)`,
//! `veeva:queryObject(Key_Message_vod__c),fields(ID,Name),where(WHERE Name = "A"),sort(Name,asc),limit(5),fn(result)`,
//! `veeva:gotoSlide(KM.zip, PRES_ID)`. The last segment names the answer: `callback(fn)`,
//! `fn(result)`, or a bare number (the Engage frame transport's callback id). Several requests
//! may be joined with `;` (`formatCreateRecords`). The whole request may be URI-encoded
//! (`document.location` transport). `value(...)` holds JSON, whose strings may contain `),`,
//! parentheses and quotes; other bodies may nest parentheses and quote with `"` or `'`.
//!
//! Answers are the container's raw shapes, which Veeva's library wraps for the deck:
//! `{success: true, objectId}` for saves, `{success: true, record_count, <Object>: [...]}` for
//! queries, `{success: true, <Object>: {<field>: value}}` for data, and failures
//! `{success: false, code, message}` (code 1000: not supported by edetail).

use std::fmt;

use edetail_protocol::EventKind;
use serde_json::{Map, Value, json};

use super::{Outcome, Vendor, goto_named, open_payload, record_unsupported, step};
use crate::device::Device;
use crate::error::Result;

/// The object Veeva's clickstream tracking saves.
pub const CLICKSTREAM: &str = "Call_Clickstream_vod__c";
/// Event name of a saved clickstream record (the same as the `com.veeva.clm` stand-in's).
pub const CLICKSTREAM_EVENT: &str = EventKind::VeevaClickstream.as_str();
/// Event name of an updated clickstream record.
pub const CLICKSTREAM_UPDATE_EVENT: &str = EventKind::VeevaClickstreamUpdate.as_str();
/// Event kind of `launchApprovedEmail`: the rep asked to send an approved email.
pub const APPROVED_EMAIL_EVENT: &str = EventKind::ApprovedEmailRequest.as_str();
/// Most requests accepted in one string (`formatCreateRecords` output).
pub const MAX_REQUESTS: usize = 64;
/// Deepest parenthesis nesting accepted in a body.
pub const MAX_DEPTH: usize = 32;

/// How the container answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// No answer expected (`gotoSlide`, a request without a callback segment).
    None,
    /// Call this global JavaScript function with the result.
    Named(String),
    /// The Engage frame transport: post `{callback: id, ...result}` to the frame.
    Id(u64),
}

/// One `name(body)` segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub name: String,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Text(String),
    Json(Value),
}

impl Body {
    pub fn text(&self) -> String {
        match self {
            Body::Text(t) => t.clone(),
            Body::Json(v) => v.to_string(),
        }
    }
}

/// One parsed request: the command is the first segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub command: String,
    pub args: String,
    pub segments: Vec<Segment>,
    pub callback: Callback,
}

impl Request {
    /// The body of the first segment called `name` (after the command).
    pub fn segment(&self, name: &str) -> Option<&Body> {
        self.segments.iter().find(|s| s.name.eq_ignore_ascii_case(name)).map(|s| &s.body)
    }
}

/// Why a request could not be read; `at` is a byte offset into the (decoded) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "veeva request, at byte {}: {}", self.at, self.message)
    }
}

fn err(at: usize, message: impl Into<String>) -> ParseError {
    ParseError { at, message: message.into() }
}

/// Strips `veeva:` and decodes a URI-encoded request (`veeva:saveObjectV2%28...`).
pub fn normalize(raw: &str) -> String {
    let s = raw.trim();
    let s = s.strip_prefix("veeva:").or_else(|| s.strip_prefix("VEEVA:")).unwrap_or(s).trim_start();
    // Veeva's library sends `document.location` requests through encodeURIComponent, which
    // keeps letters, digits and `-_.!~*'()` and escapes everything else: a request is encoded
    // when it has `%XX` escapes and none of the characters encodeURIComponent always escapes
    // (a plain request with a JSON value or a second argument has raw `,`, `{` or `"`).
    let escaped = s.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit());
    let raw_specials = s.contains([',', '{', '}', '"', ' ', ';', ':', '/', '?', '&', '=', '#', '+', '$', '@', '[', ']']);
    if escaped
        && !raw_specials
        && let Some(d) = crate::assets::percent_decode(s)
    {
        return d;
    }
    s.to_string()
}

/// Parses one or more requests (joined by `;`).
pub fn parse(raw: &str) -> std::result::Result<Vec<Request>, ParseError> {
    let s = normalize(raw);
    let mut p = Parser { s: &s, pos: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_ws_and(';');
        if p.pos >= s.len() {
            break;
        }
        if out.len() == MAX_REQUESTS {
            return Err(err(p.pos, format!("more than {MAX_REQUESTS} requests in one string")));
        }
        // A `veeva:` prefix may repeat on each request of a formatCreateRecords string.
        if s[p.pos..].starts_with("veeva:") {
            p.pos += "veeva:".len();
        }
        out.push(p.request()?);
    }
    if out.is_empty() {
        return Err(err(0, "empty request"));
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    fn skip_ws_and(&mut self, sep: char) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace() || *c == sep) {
            self.pos += c.len_utf8();
        }
    }

    fn ident(&mut self) -> std::result::Result<String, ParseError> {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$')) {
            self.pos += c.len_utf8();
        }
        if self.pos == start {
            return Err(err(start, format!("expected a name, found {:?}", self.peek().map(String::from).unwrap_or_default())));
        }
        Ok(self.s[start..self.pos].to_string())
    }

    fn request(&mut self) -> std::result::Result<Request, ParseError> {
        let mut segments: Vec<Segment> = Vec::new();
        let mut callback = Callback::None;
        loop {
            self.skip_ws();
            let at = self.pos;
            let name = self.ident()?;
            self.skip_ws();
            if self.peek() == Some('(') {
                self.pos += 1;
                let body = if name.eq_ignore_ascii_case("value") { Body::Json(self.json_body()?) } else { Body::Text(self.text_body()?) };
                segments.push(Segment { name, body });
            } else if !segments.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                let id = name.parse().map_err(|_| err(at, "callback id out of range"))?;
                callback = Callback::Id(id);
            } else if segments.is_empty() {
                return Err(err(self.pos, format!("expected \"(\" after {name:?}")));
            } else {
                // A bare trailing name: the function to call with the answer.
                callback = Callback::Named(name);
            }
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.pos += 1;
                    if callback != Callback::None {
                        return Err(err(self.pos, "nothing may follow the callback"));
                    }
                }
                None | Some(';') => break,
                Some(c) => return Err(err(self.pos, format!("expected \",\" or the end, found {c:?}"))),
            }
        }
        let first = segments.remove(0);
        // `callback(fn)` or a last `fn(result)` segment name the answer.
        if callback == Callback::None
            && let Some(last) = segments.last()
        {
            let body = last.body.text();
            if last.name.eq_ignore_ascii_case("callback") {
                let f = body.trim().to_string();
                callback = if f.is_empty() {
                    Callback::None
                } else if f.bytes().all(|b| b.is_ascii_digit()) {
                    Callback::Id(f.parse().unwrap_or(0))
                } else {
                    Callback::Named(f)
                };
                segments.pop();
            } else if body.trim() == "result" {
                callback = Callback::Named(last.name.clone());
                segments.pop();
            }
        }
        Ok(Request { command: first.name, args: first.body.text(), segments, callback })
    }

    /// `value(<json>)`: JSON read by serde, so `),` inside strings cannot end it early.
    fn json_body(&mut self) -> std::result::Result<Value, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let mut stream = serde_json::Deserializer::from_str(&self.s[start..]).into_iter::<Value>();
        let value = match stream.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(err(start, format!("value(...) is not JSON: {e}"))),
            None => return Err(err(start, "value(...) is empty")),
        };
        self.pos = start + stream.byte_offset();
        self.skip_ws();
        if self.peek() != Some(')') {
            return Err(err(self.pos, "expected \")\" after the JSON value"));
        }
        self.pos += 1;
        Ok(value)
    }

    /// Any other body: up to the matching `)`, parentheses nested, quotes respected.
    fn text_body(&mut self) -> std::result::Result<String, ParseError> {
        let start = self.pos;
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        let mut escaped = false;
        for (i, c) in self.s[start..].char_indices() {
            if let Some(q) = quote {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                continue;
            }
            match c {
                '"' | '\'' => quote = Some(c),
                '(' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(err(start + i, format!("parentheses nested deeper than {MAX_DEPTH}")));
                    }
                }
                ')' if depth == 0 => {
                    self.pos = start + i + 1;
                    return Ok(self.s[start..start + i].to_string());
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        Err(err(start, if quote.is_some() { "unterminated quote" } else { "missing \")\"" }))
    }
}

/// Splits a body at top-level commas, trimming spaces and one pair of surrounding quotes.
pub fn split_args(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut quote) = (0usize, None::<char>);
    for c in body.chars() {
        match (quote, c) {
            (Some(q), _) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), _) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, '(') => {
                depth += 1;
                cur.push(c);
            }
            (None, ')') => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            (None, ',') if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|a| unquote(a.trim()).to_string()).filter(|a| !a.is_empty()).collect()
}

fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

fn failure(api: &str, code: u32, message: impl fmt::Display) -> Value {
    json!({"success": false, "code": code, "message": format!("{api}: {message}")})
}

fn unsupported(api: &str, what: &str) -> Value {
    json!({"success": false, "code": 1000, "message": format!("{api}: {what} is not supported by edetail")})
}

/// Answers one request in the open call `call_id`, recording what it carries.
pub fn execute(device: &Device, call_id: &str, req: &Request) -> Result<Outcome> {
    match req.command.as_str() {
        "saveObjectV2" | "saveObject" => save_object(device, call_id, req),
        "gotoSlide" | "gotoSlideV2" => {
            let args = split_args(&req.args);
            // `gotoSlide('X.zip, PRES')` (one quoted string) works on the iPad: split it too.
            let args: Vec<String> =
                args.iter().flat_map(|a| a.split(',').map(|p| p.trim().to_string())).filter(|a| !a.is_empty()).collect();
            let Some(key) = args.first() else {
                return Ok(Outcome::answer(failure(&req.command, 2002, "keyMessage is empty")));
            };
            let presentation = args.last().filter(|_| args.len() > 1).map(String::as_str);
            match goto_named(device, call_id, &[key.as_str()], presentation)? {
                Some(t) => Ok(Outcome { result: json!({"success": true}), navigate: Some(t) }),
                None => Ok(Outcome::answer(failure(&req.command, 1001, format!("key message {key:?} is not in this deck")))),
            }
        }
        "nextSlide" | "prevSlide" => {
            let t = step(device, call_id, req.command == "nextSlide")?;
            Ok(Outcome { result: json!({"success": true}), navigate: Some(t) })
        }
        "getDataForObjectV2" | "getDataForObject" | "getDataForCurrentObject" => {
            let field = req.segment("fieldName").or_else(|| req.segment("field")).map(Body::text).unwrap_or_default();
            let object = unquote(req.args.trim()).to_string();
            // Only the call's own records are known: a record named by objId(...) must be it.
            if let Some(id) = req.segment("objId").or_else(|| req.segment("objectId")).map(|b| unquote(b.text().trim()).to_string())
                && current_field(device, call_id, &object, "ID")? != Some(Value::String(id))
            {
                return unsupported_answer(device, call_id, req, &format!("{object} records other than the call's own"));
            }
            match current_field(device, call_id, &object, field.trim())? {
                Some(v) => {
                    let mut o = Map::new();
                    o.insert(field.trim().to_string(), v);
                    Ok(Outcome::answer(json!({"success": true, object: o})))
                }
                None => unsupported_answer(device, call_id, req, &format!("{object}.{}", field.trim())),
            }
        }
        "queryObject" => query_object(device, call_id, req),
        "launchApprovedEmail" => {
            let args = split_args(&req.args);
            let fragments = req.segment("fragments").map(|b| split_args(&b.text())).unwrap_or_default();
            let email = open_payload(
                EventKind::ApprovedEmailRequest,
                [("vendor", "veeva".into()), ("template", json!(args.first())), ("fragments", json!(fragments)), ("args", json!(args))],
            );
            let (_, uuid) = device.calls().record_payload(Some(call_id), &email)?;
            Ok(Outcome::answer(json!({"success": true, "objectId": uuid})))
        }
        _ => unsupported_answer(device, call_id, req, &req.command),
    }
}

fn unsupported_answer(device: &Device, call_id: &str, req: &Request, what: &str) -> Result<Outcome> {
    let segments: Map<String, Value> = req.segments.iter().map(|s| (s.name.clone(), Value::String(s.body.text()))).collect();
    let object = unquote(req.args.trim());
    record_unsupported(device, call_id, Vendor::Veeva, &req.command, json!({"object": object, "args": req.args, "segments": segments}))?;
    Ok(Outcome::answer(unsupported(&req.command, what)))
}

fn save_object(device: &Device, call_id: &str, req: &Request) -> Result<Outcome> {
    let object = unquote(req.args.trim()).to_string();
    let values = match req.segment("value") {
        Some(Body::Json(v @ Value::Object(_))) => v.clone(),
        _ => return Ok(Outcome::answer(failure(&req.command, 2002, "value is empty"))),
    };
    if object != CLICKSTREAM || req.segment("updateCurrentRecord").is_some() {
        let what = if req.segment("updateCurrentRecord").is_some() {
            format!("updating the current {object}")
        } else {
            format!("saving {object}")
        };
        record_unsupported(device, call_id, Vendor::Veeva, &req.command, json!({"object": object, "value": values}))?;
        return Ok(Outcome::answer(unsupported(&req.command, &what)));
    }
    // `objectId(X)` updates a record saved before.
    if let Some(id) = req.segment("objectId").map(Body::text).filter(|t| !t.trim().is_empty()) {
        let mut data = Map::new();
        data.insert("id".into(), Value::String(id.trim().to_string()));
        data.extend(values.as_object().cloned().unwrap_or_default());
        device.calls().track(call_id, CLICKSTREAM_UPDATE_EVENT, Value::Object(data))?;
        return Ok(Outcome::answer(json!({"success": true, "objectId": id.trim()})));
    }
    let (_, uuid) = device.calls().track(call_id, CLICKSTREAM_EVENT, values)?;
    Ok(Outcome::answer(json!({"success": true, "objectId": uuid})))
}

/// Fields of the call's current objects: ids and approved metadata only, never HCP names.
/// `None` when edetail does not know the object or field.
pub(crate) fn current_field(device: &Device, call_id: &str, object: &str, field: &str) -> Result<Option<Value>> {
    let c = device.calls().get(call_id)?;
    let active = c.bundle_id.as_ref().and_then(|b| device.content().active(b).ok());
    let slide = active.as_ref().and_then(|a| c.slide_id.as_ref().and_then(|s| a.manifest.slide(s).cloned()));
    let s = |v: Option<String>| Some(v.map(Value::String).unwrap_or(Value::Null));
    Ok(match (object, field) {
        ("Account", "ID" | "Id") => s(c.hcp_id.clone()),
        ("Call" | "Call2_vod__c", "ID" | "Id") => s(Some(c.id.clone())),
        ("User", "ID" | "Id") => s(Some(c.rep_id.clone())),
        ("Presentation" | "Clm_Presentation_vod__c", "ID" | "Id" | "Presentation_Id_vod__c") => s(c.presentation_id.clone()),
        ("Presentation" | "Clm_Presentation_vod__c", "Name") => {
            s(active.as_ref().and_then(|a| c.presentation_id.as_ref().and_then(|p| a.manifest.presentation(p).map(|d| d.title.clone()))))
        }
        ("Presentation" | "Clm_Presentation_vod__c", "Product_vod__c") => s(active.as_ref().map(|a| a.manifest.product.clone())),
        ("KeyMessage" | "Key_Message_vod__c", "ID" | "Id") => s(slide.as_ref().map(|s| s.id.clone())),
        ("KeyMessage" | "Key_Message_vod__c", "Name" | "Description_vod__c") => s(slide.as_ref().map(|s| s.title.clone())),
        ("KeyMessage" | "Key_Message_vod__c", "Media_File_Name_vod__c") => {
            s(slide.as_ref().and_then(|s| s.key_message.clone().map(|k| format!("{k}.zip"))))
        }
        _ => None,
    })
}

/// `queryObject`: key messages and presentations of the active deck, the call's own
/// Account/Call/User ids, and approved documents by their Vault ids.
fn query_object(device: &Device, call_id: &str, req: &Request) -> Result<Outcome> {
    let object = unquote(req.args.trim()).to_string();
    let fields: Vec<String> = req.segment("fields").map(|b| split_args(&b.text())).unwrap_or_else(|| vec!["ID".into()]);
    let filter = match req.segment("where").map(|b| Filter::parse(&b.text())) {
        None => Filter::All,
        Some(Some(f)) => f,
        Some(None) => {
            return unsupported_answer(device, call_id, req, &format!("the where clause of queryObject({object})"));
        }
    };
    let c = device.calls().get(call_id)?;
    let active = c.bundle_id.as_ref().and_then(|b| device.content().active(b).ok());
    let rows: Vec<Map<String, Value>> = match object.as_str() {
        "Key_Message_vod__c" => active
            .iter()
            .flat_map(|a| a.manifest.slides.iter())
            .map(|s| {
                let km = s.key_message.clone().unwrap_or_else(|| s.id.clone());
                row(&[
                    ("ID", &s.id),
                    ("Id", &s.id),
                    ("Name", &km),
                    ("Media_File_Name_vod__c", &format!("{km}.zip")),
                    ("Description_vod__c", &s.title),
                    ("Vault_External_Id_vod__c", &km),
                    ("CLM_ID_vod__c", &km),
                ])
            })
            .collect(),
        "Clm_Presentation_vod__c" | "Presentation_vod__c" | "Presentation" => active
            .iter()
            .flat_map(|a| a.manifest.presentations.iter())
            .map(|d| row(&[("ID", &d.id), ("Id", &d.id), ("Name", &d.title), ("Presentation_Id_vod__c", &d.id)]))
            .collect(),
        "Account" => c.hcp_id.iter().map(|h| row(&[("ID", h), ("Id", h)])).collect(),
        "Call2_vod__c" | "Call" => vec![row(&[("ID", &c.id), ("Id", &c.id)])],
        "User" => vec![row(&[("ID", &c.rep_id), ("Id", &c.rep_id)])],
        // getApprovedDocument: edetail keeps no Vault documents; the id it answers names the
        // document so that a following launchApprovedEmail records which one the rep chose.
        "Approved_Document_vod__c" => {
            let vault = filter.value_of("Vault_Instance_ID_vod__c").unwrap_or_default();
            let doc = filter.value_of("Vault_Document_ID_vod__c").unwrap_or_default();
            if doc.is_empty() {
                return unsupported_answer(
                    device,
                    call_id,
                    req,
                    "queryObject(Approved_Document_vod__c) without a Vault_Document_ID_vod__c",
                );
            }
            let id = if vault.is_empty() { doc.clone() } else { format!("{vault}:{doc}") };
            vec![row(&[("ID", &id), ("Id", &id), ("Vault_Instance_ID_vod__c", &vault), ("Vault_Document_ID_vod__c", &doc)])]
        }
        _ => return unsupported_answer(device, call_id, req, &format!("queryObject({object})")),
    };
    let mut rows: Vec<Map<String, Value>> = rows.into_iter().filter(|r| filter.matches(r)).collect();
    if let Some(sort) = req.segment("sort").map(|b| split_args(&b.text()))
        && let Some(field) = sort.first()
    {
        rows.sort_by_key(|r| text_of(r, field));
        if sort.get(1).is_some_and(|d| d.eq_ignore_ascii_case("desc")) {
            rows.reverse();
        }
    }
    if let Some(n) = req.segment("limit").and_then(|b| b.text().trim().parse::<usize>().ok()) {
        rows.truncate(n);
    }
    let records: Vec<Value> = rows
        .iter()
        .map(|r| Value::Object(fields.iter().map(|f| (f.clone(), r.get(f).cloned().unwrap_or(Value::Null))).collect()))
        .collect();
    Ok(Outcome::answer(json!({"success": true, "record_count": records.len(), object: records})))
}

fn row(pairs: &[(&str, &String)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), Value::String((*v).clone()))).collect()
}

fn text_of(r: &Map<String, Value>, field: &str) -> String {
    r.get(field).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The subset of SOQL `WHERE` clauses decks use for lookups: `Field = "v"`, `!=`, `IN (...)`,
/// joined by all-`AND` or all-`OR`.
#[derive(Debug, Clone, PartialEq)]
enum Filter {
    All,
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

#[derive(Debug, Clone, PartialEq)]
struct Cond {
    field: String,
    negate: bool,
    values: Vec<String>,
}

impl Filter {
    fn parse(clause: &str) -> Option<Filter> {
        let mut s = clause.trim();
        if s.len() >= 5 && s[..5].eq_ignore_ascii_case("where") {
            s = s[5..].trim();
        }
        if s.is_empty() {
            return Some(Filter::All);
        }
        let words = split_top_level_words(s)?;
        let (mut conds, mut joins) = (Vec::new(), Vec::new());
        let mut cur: Vec<String> = Vec::new();
        for w in words {
            if w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or") {
                conds.push(Cond::parse(&cur)?);
                cur.clear();
                joins.push(w.to_ascii_lowercase());
            } else {
                cur.push(w);
            }
        }
        conds.push(Cond::parse(&cur)?);
        match (joins.iter().all(|j| j == "and"), joins.iter().all(|j| j == "or")) {
            (true, _) => Some(Filter::And(conds)),
            (_, true) => Some(Filter::Or(conds)),
            _ => None,
        }
    }

    fn matches(&self, r: &Map<String, Value>) -> bool {
        match self {
            Filter::All => true,
            Filter::And(cs) => cs.iter().all(|c| c.matches(r)),
            Filter::Or(cs) => cs.iter().any(|c| c.matches(r)),
        }
    }

    fn value_of(&self, field: &str) -> Option<String> {
        match self {
            Filter::All => None,
            Filter::And(cs) | Filter::Or(cs) => {
                cs.iter().find(|c| c.field.eq_ignore_ascii_case(field) && !c.negate).and_then(|c| c.values.first().cloned())
            }
        }
    }
}

impl Cond {
    fn parse(words: &[String]) -> Option<Cond> {
        // Field op value, with the operator possibly glued: `Name="A"`.
        let joined = words.join(" ");
        for (op, negate) in [("!=", true), ("<>", true), ("=", false)] {
            if let Some((f, v)) = split_once_outside_quotes(&joined, op) {
                let field = f.trim();
                if !is_field(field) {
                    return None;
                }
                return Some(Cond { field: field.into(), negate, values: vec![unquote(v.trim()).to_string()] });
            }
        }
        let [field, op, list] = words else { return None };
        let negate = false;
        if !op.eq_ignore_ascii_case("in") || !is_field(field) || !list.starts_with('(') || !list.ends_with(')') {
            return None;
        }
        Some(Cond { field: field.clone(), negate, values: split_args(&list[1..list.len() - 1]) })
    }

    fn matches(&self, r: &Map<String, Value>) -> bool {
        let have = r.iter().find(|(k, _)| k.eq_ignore_ascii_case(&self.field)).and_then(|(_, v)| v.as_str()).unwrap_or_default();
        self.values.iter().any(|v| v == have) != self.negate
    }
}

fn is_field(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
}

fn split_once_outside_quotes<'a>(s: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if s[i..].starts_with(op) => {
                // `!=`/`<>` must not be read as `=`.
                if op == "=" && i > 0 && matches!(s.as_bytes()[i - 1], b'!' | b'<' | b'>') {
                    return None;
                }
                return Some((&s[..i], &s[i + op.len()..]));
            }
            None => {}
        }
    }
    None
}

/// Words separated by spaces, keeping quoted strings and parenthesized lists whole.
fn split_top_level_words(s: &str) -> Option<Vec<String>> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let (mut depth, mut quote) = (0usize, None::<char>);
    for c in s.chars() {
        match (quote, c) {
            (Some(q), _) if c == q => {
                quote = None;
                cur.push(c)
            }
            (Some(_), _) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c)
            }
            (None, '(') => {
                depth += 1;
                cur.push(c)
            }
            (None, ')') => {
                depth = depth.checked_sub(1)?;
                cur.push(c)
            }
            (None, c) if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if quote.is_some() || depth != 0 {
        return None;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(raw: &str) -> Request {
        let mut v = parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(v.len(), 1, "{raw}");
        v.remove(0)
    }

    #[test]
    fn save_with_named_callback() {
        let r = one(
            r#"veeva:saveObjectV2(Call_Clickstream_vod__c),value({"Track_Element_Id_vod__c":"a"}),callback(com_veeva_clm_createRecord)"#,
        );
        assert_eq!(r.command, "saveObjectV2");
        assert_eq!(r.args, "Call_Clickstream_vod__c");
        assert_eq!(r.segment("value"), Some(&Body::Json(json!({"Track_Element_Id_vod__c": "a"}))));
        assert_eq!(r.callback, Callback::Named("com_veeva_clm_createRecord".into()));
    }

    #[test]
    fn json_values_may_hold_the_separators() {
        let r = one(r#"veeva:saveObjectV2(Call_Clickstream_vod__c),value({"Answer_vod__c":"yes),callback(x) (really)","n":"a;b"}),7"#);
        assert_eq!(r.segment("value"), Some(&Body::Json(json!({"Answer_vod__c": "yes),callback(x) (really)", "n": "a;b"}))));
        assert_eq!(r.callback, Callback::Id(7));
    }

    #[test]
    fn engage_numeric_id_replaces_the_callback() {
        let r = one(
            "veeva:queryObject(Key_Message_vod__c),fields(ID,Media_File_Name_vod__c),where(WHERE Media_File_Name_vod__c = \"B.zip\"),42",
        );
        assert_eq!(r.callback, Callback::Id(42));
        assert_eq!(r.segment("fields").map(Body::text).as_deref(), Some("ID,Media_File_Name_vod__c"));
    }

    #[test]
    fn old_style_result_callback_and_nested_parentheses() {
        let r = one(
            r#"veeva:queryObject(Account),fields(ID),where(WHERE (Name = "a(b)" OR Id IN ('1','2'))),sort(Name,asc),com_veeva_clm_x(result)"#,
        );
        assert_eq!(r.segment("where").map(Body::text).as_deref(), Some(r#"WHERE (Name = "a(b)" OR Id IN ('1','2'))"#));
        assert_eq!(r.segment("sort").map(Body::text).as_deref(), Some("Name,asc"));
        assert_eq!(r.callback, Callback::Named("com_veeva_clm_x".into()));
    }

    #[test]
    fn uri_encoded_requests_are_decoded() {
        // encodeURIComponent keeps `(`, `)`, `'`, `!`, `*`: what Veeva's library sends.
        let raw = "veeva:saveObjectV2(Call_Clickstream_vod__c)%2Cvalue(%7B%22a%22%3A%22x)%2C%20y%22%7D)%2Ccallback(cb)";
        let r = one(raw);
        assert_eq!(r.segment("value"), Some(&Body::Json(json!({"a": "x), y"}))));
        assert_eq!(r.callback, Callback::Named("cb".into()));
        // Every byte escaped works too, and so does a one-segment request.
        let r = one("veeva:saveObjectV2%28Call_Clickstream_vod__c%29%2Cvalue%28%7B%7D%29%2C7");
        assert_eq!((r.segment("value"), &r.callback), (Some(&Body::Json(json!({}))), &Callback::Id(7)));
        assert_eq!(split_args(&one("veeva:gotoSlide(B.zip%2CPRES_1)").args), ["B.zip", "PRES_1"]);
        // A plain request keeps a literal %XX inside its JSON.
        let r = one(r#"veeva:saveObjectV2(Call_Clickstream_vod__c),value({"a":"50%25"}),callback(cb)"#);
        assert_eq!(r.segment("value"), Some(&Body::Json(json!({"a": "50%25"}))));
    }

    #[test]
    fn goto_forms() {
        assert_eq!(one("veeva:gotoSlide(B.zip)").args, "B.zip");
        assert_eq!(split_args(&one("veeva:gotoSlide(B.zip, PRES_1)").args), ["B.zip", "PRES_1"]);
        assert_eq!(split_args(&one("veeva:gotoSlide('B.zip','PRES_1')").args), ["B.zip", "PRES_1"]);
        assert_eq!(split_args(&one("veeva:gotoSlide('B.zip, PRES_1')").args), ["B.zip, PRES_1"]);
        assert_eq!(one("gotoSlide(B.zip)").command, "gotoSlide", "prefix optional");
        let r = one("veeva:nextSlide()");
        assert_eq!((r.command.as_str(), r.args.as_str(), &r.callback), ("nextSlide", "", &Callback::None));
    }

    #[test]
    fn several_requests_joined_by_semicolons() {
        let v = parse(r#"veeva:saveObjectV2(Call_Clickstream_vod__c),value({"a":1}),callback();veeva:saveObjectV2(Call_Clickstream_vod__c),value({"b":";"}),callback();"#).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].segment("value"), Some(&Body::Json(json!({"b": ";"}))));
        assert_eq!(v[0].callback, Callback::None);
    }

    #[test]
    fn malformed_requests_name_the_place() {
        for (raw, at_least) in [
            ("veeva:saveObjectV2(Call_Clickstream_vod__c),value({\"a\":),callback(x)", 35),
            ("veeva:gotoSlide(B.zip", 16),
            ("veeva:queryObject(Account),where(WHERE Name = \"a)", 26),
            ("veeva:(x)", 0),
            ("veeva:", 0),
            ("veeva:nextSlide() junk", 17),
            ("veeva:x(1),7,y(2)", 11),
        ] {
            let e = parse(raw).expect_err(raw);
            assert!(e.at >= at_least.min(e.at) && !e.message.is_empty(), "{raw}: {e}");
        }
        let deep = format!("veeva:x({}{})", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).unwrap_err().message.contains("nested"));
    }

    proptest::proptest! {
        /// Whatever a deck sends, the parser answers (a request or an error), never panics.
        #[test]
        fn never_panics(raw in "(veeva:)?[a-zA-Z_(),;'\"{}:%0-9 \\.=\\[\\]-]{0,120}") {
            let _ = parse(&raw);
        }

        /// A clickstream value survives any string content, including the grammar's separators,
        /// plain or URI-encoded, with a named or numeric callback.
        #[test]
        fn values_round_trip(text in "[ -~\u{e9}\u{4e2d}]{0,40}", n in 0u32..1000, id in 0u64..100_000, encode: bool) {
            let value = json!({"Track_Element_Description_vod__c": text, "n": n});
            let mut req = format!("saveObjectV2(Call_Clickstream_vod__c),value({value}),{id}");
            if encode {
                // Exactly encodeURIComponent's unreserved set.
                req = req.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
            }
            let r = one(&format!("veeva:{req}"));
            proptest::prop_assert_eq!(r.segment("value"), Some(&Body::Json(value)));
            proptest::prop_assert_eq!(r.callback, Callback::Id(id));
        }
    }

    #[test]
    fn where_clauses() {
        let f = Filter::parse(r#"WHERE Media_File_Name_vod__c = "B.zip""#).unwrap();
        let r = row(&[("Media_File_Name_vod__c", &"B.zip".to_string())]);
        assert!(f.matches(&r));
        assert!(!Filter::parse(r#"WHERE Media_File_Name_vod__c != 'B.zip'"#).unwrap().matches(&r));
        assert!(Filter::parse("Media_File_Name_vod__c IN ('A.zip', 'B.zip')").unwrap().matches(&r));
        assert!(Filter::parse(r#"Name = "x" OR Media_File_Name_vod__c = "B.zip""#).unwrap().matches(&r));
        assert!(!Filter::parse(r#"Name = "x" AND Media_File_Name_vod__c = "B.zip""#).unwrap().matches(&r));
        assert_eq!(Filter::parse(r#"A = "1" AND B = "2" OR C = "3""#), None, "mixed AND/OR without parentheses is refused");
        assert_eq!(Filter::parse("Name LIKE 'x%'"), None);
        assert_eq!(Filter::parse(r#"Name = "a AND b""#).unwrap().value_of("name").as_deref(), Some("a AND b"));
    }
}
