//! Compatibility report: which vendor container calls a deck makes, and whether edetail's
//! runtime honours them ([ADR 0013](../../../../docs/adr/0013-vendor-container-emulation.md)).
//!
//! [`SUPPORT`] is the one table of calls the core handles; everything a deck calls that is not
//! in it is recorded at run time as `unsupported_api`. The scan is textual: it finds calls
//! written in the scripts (`com.veeva.clm.gotoSlide(`, `"veeva:gotoSlide("`, `ag.submit.data(`,
//! `objc://iplanner/openPDF?`, `submitSlideEnter(`, `CLMPlayer.addAction(`), not calls whose
//! names are built at run time.

use std::collections::BTreeMap;
use std::io::{Read, Seek};

use serde::Serialize;

use crate::error::Result;
use crate::path::BundlePath;
use crate::reader::BundleArchive;

/// Which container API a call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
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
}

/// What the runtime does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Honoured (recorded as events and/or answered).
    Handled,
    /// Honoured for some arguments only (see the note), recorded as `unsupported_api` otherwise.
    Partly,
    /// Answered with the vendor's failure shape and recorded as `unsupported_api`.
    Unsupported,
}

/// One row of the support table: a container call the core handles.
#[derive(Debug, Clone, Copy)]
pub struct ApiSupport {
    pub vendor: Vendor,
    /// The container's name for the call (`gotoSlide`, `monitoringEvent`, `addAction`).
    pub api: &'static str,
    pub support: Support,
    /// What the runtime does with it.
    pub note: &'static str,
}

const fn row(vendor: Vendor, api: &'static str, support: Support, note: &'static str) -> ApiSupport {
    ApiSupport { vendor, api, support, note }
}

/// Veeva objects whose queries the runtime answers.
pub const VEEVA_QUERY_OBJECTS: &[&str] =
    &["Key_Message_vod__c", "Presentation_vod__c", "Clm_Presentation_vod__c", "Account", "Call2_vod__c", "Call", "User"];

/// The calls the core handles (mirrors `edetail_core::vendor`). Calls not listed are recorded
/// as `unsupported_api`.
pub const SUPPORT: &[ApiSupport] = {
    use Support::*;
    use Vendor::*;
    &[
        row(Veeva, "saveObjectV2", Partly, "Call_Clickstream_vod__c only: recorded as veeva_clickstream"),
        row(Veeva, "saveObject", Partly, "request form of createRecord; Call_Clickstream_vod__c only: recorded as veeva_clickstream"),
        row(Veeva, "createRecord", Partly, "Call_Clickstream_vod__c only: recorded as veeva_clickstream"),
        row(Veeva, "updateRecord", Partly, "Call_Clickstream_vod__c only: recorded as veeva_clickstream"),
        row(Veeva, "createRecordsOnExit", Handled, "clickstream records kept for the slide's exit"),
        row(Veeva, "formatCreateRecords", Handled, "formats clickstream records (page-side helper)"),
        row(Veeva, "gotoSlide", Handled, "navigates to the slide whose key message names the zip"),
        row(Veeva, "gotoSlideV2", Handled, "navigates to the slide whose key message names the zip"),
        row(Veeva, "nextSlide", Handled, "navigates"),
        row(Veeva, "prevSlide", Handled, "navigates"),
        row(Veeva, "getDataForCurrentObject", Handled, "answers Key_Message, Presentation, Account, Call and User ids"),
        row(Veeva, "getDataForObject", Handled, "request form of getDataForCurrentObject"),
        row(Veeva, "getDataForObjectV2", Handled, "answers Key_Message, Presentation, Account, Call and User ids"),
        row(
            Veeva,
            "queryObject",
            Partly,
            "Key_Message_vod__c, Presentation_vod__c / Clm_Presentation_vod__c, Account, Call and User ids only",
        ),
        row(
            Veeva,
            "queryRecord",
            Partly,
            "Key_Message_vod__c, Presentation_vod__c / Clm_Presentation_vod__c, Account, Call and User ids only",
        ),
        row(Veeva, "getApprovedDocument", Handled, "answered with an id naming the Vault document (edetail keeps no Vault documents)"),
        row(Veeva, "launchApprovedEmail", Handled, "recorded as a request (approved email is sent by the hub)"),
        row(
            Agnitio,
            "monitoringEvent",
            Handled,
            "slideEnter/slideExit become slide views; custom, documentOpen, referenceOpen are recorded",
        ),
        row(Agnitio, "openPDF", Handled, "recorded as agnitio_open_pdf"),
        row(Agnitio, "getPresenter", Handled, "answered"),
        row(Agnitio, "getCallContacts", Handled, "answered"),
        row(Agnitio, "getMeetingDynamicAttributes", Handled, "answered"),
        row(Agnitio, "getContentSettings", Handled, "answered"),
        row(Oce, "gotoSlide", Handled, "navigates to the sequence (key message) it names"),
        row(Oce, "goNextSequence", Handled, "navigates"),
        row(Oce, "goPreviousSequence", Handled, "navigates"),
        row(Oce, "addAction", Handled, "recorded as oce_action"),
        row(Oce, "startTrackingPage", Handled, "recorded as oce_page_tracking"),
        row(Oce, "stopTrackingPage", Handled, "recorded as oce_page_tracking"),
        row(Oce, "saveState", Handled, "kept for the call"),
        row(Oce, "alert", Handled, "answered (the page shows it)"),
        row(Oce, "defineNoSwipeRegion", Handled, "answered; the shells' swipe handling does not honour regions yet"),
        row(Oce, "destroyNoSwipeRegion", Handled, "answered"),
        row(Oce, "registerEventListener", Handled, "answered"),
        row(Oce, "executeEvent", Handled, "answered"),
        row(Oce, "updateFeedback", Handled, "recorded as oce_feedback"),
    ]
};

/// Agnitio content-library calls and legacy globals, and the container call each becomes.
const AGNITIO_ALIASES: &[(&str, &str)] = &[
    ("submit.slideEnter", "monitoringEvent"),
    ("submit.slideExit", "monitoringEvent"),
    ("submit.data", "monitoringEvent"),
    ("submit.event", "monitoringEvent"),
    ("submit.document", "monitoringEvent"),
    ("submit.reference", "monitoringEvent"),
    ("submit.uniqueData", "monitoringEvent"),
    ("submitSlideEnter", "monitoringEvent"),
    ("submitSlideExit", "monitoringEvent"),
    ("submitSlideReEnter", "monitoringEvent"),
    ("submitCustomEvent", "monitoringEvent"),
    ("submitUniqueCustomEvent", "monitoringEvent"),
    ("submitDocumentOpen", "monitoringEvent"),
    ("submitReferenceOpen", "monitoringEvent"),
    ("openPDF", "openPDF"),
    ("getPresenter", "getPresenter"),
    ("getCallContacts", "getCallContacts"),
    ("getMeetingDynamicAttributes", "getMeetingDynamicAttributes"),
    ("getContentSettings", "getContentSettings"),
    ("sendMail", "sendMail"),
    ("sigCapture", "sigCapture"),
    ("provideContent", "provideContent"),
    ("sendContent", "sendContent"),
    ("proxyContent", "proxyContent"),
    ("closePresentation", "closePresentation"),
    ("quickView", "quickView"),
];

/// Legacy Agnitio globals recognised as calls when written as `name(`.
const AGNITIO_GLOBALS: &[&str] = &[
    "submitSlideEnter",
    "submitSlideExit",
    "submitSlideReEnter",
    "submitCustomEvent",
    "submitUniqueCustomEvent",
    "submitDocumentOpen",
    "submitReferenceOpen",
];

/// The support row for a container call, if the core handles it.
pub fn support_of(vendor: Vendor, api: &str) -> Option<&'static ApiSupport> {
    SUPPORT.iter().find(|r| r.vendor == vendor && r.api == api)
}

/// How the runtime treats `api` called with `object` (its first argument when it is a string
/// literal), and why.
pub fn classify(vendor: Vendor, api: &str, object: Option<&str>) -> (Support, String) {
    match support_of(vendor, api) {
        None => (Support::Unsupported, "recorded as unsupported_api".to_string()),
        Some(r) if r.support == Support::Partly && vendor == Vendor::Veeva => {
            let allowed: &[&str] =
                if matches!(api, "queryObject" | "queryRecord") { VEEVA_QUERY_OBJECTS } else { &["Call_Clickstream_vod__c"] };
            match object {
                Some(o) if allowed.iter().any(|a| a.eq_ignore_ascii_case(o)) => (Support::Handled, r.note.to_string()),
                Some(o) => (Support::Unsupported, format!("{o} is not handled ({}); recorded as unsupported_api", r.note)),
                None => (Support::Partly, r.note.to_string()),
            }
        }
        Some(r) => (r.support, r.note.to_string()),
    }
}

/// One kind of call found in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VendorCall {
    pub vendor: Vendor,
    /// The container call (`gotoSlide`, `monitoringEvent`), with the object for Veeva record
    /// and query calls (`createRecord(Call_Clickstream_vod__c)`).
    pub api: String,
    /// How the deck wrote it (`com.veeva.clm.createRecord`, `ag.submit.data`, `objc://iplanner/openPDF`).
    pub written_as: String,
    pub file: String,
    pub count: usize,
    pub support: Support,
    pub note: String,
}

impl VendorCall {
    pub fn is_unsupported(&self) -> bool {
        self.support == Support::Unsupported
    }
}

/// Every vendor call found in a deck.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompatReport {
    pub calls: Vec<VendorCall>,
}

impl CompatReport {
    pub fn unsupported(&self) -> impl Iterator<Item = &VendorCall> {
        self.calls.iter().filter(|c| c.is_unsupported())
    }

    /// A terminal table, one line per call and file.
    pub fn summary(&self) -> String {
        if self.calls.is_empty() {
            return "Vendor calls: none found\n".to_string();
        }
        let mut s = format!("Vendor calls ({} kinds, {} unsupported):\n", self.calls.len(), self.unsupported().count());
        for c in &self.calls {
            let what = match c.support {
                Support::Handled => "handled",
                Support::Partly => "partly handled",
                Support::Unsupported => "UNSUPPORTED",
            };
            s.push_str(&format!("  {:<8} {:<40} {:>3}x  {}  {what}: {}\n", c.vendor.as_str(), c.written_as, c.count, c.file, c.note));
        }
        s
    }
}

/// (file, vendor, api, as written) of a call.
type CallKey = (String, Vendor, String, String);

/// Collects calls over many files.
#[derive(Debug, Default)]
pub struct Scanner {
    found: BTreeMap<CallKey, (usize, Support, String)>,
}

impl Scanner {
    /// Scans one file's text.
    pub fn scan(&mut self, file: &str, text: &str) {
        for (vendor, api, written_as, object) in find_calls(text) {
            let (support, note) = classify(vendor, &api, object.as_deref());
            let api = match object {
                Some(o) if support_of(vendor, &api).is_some_and(|r| r.support == Support::Partly) => format!("{api}({o})"),
                _ => api,
            };
            let e = self.found.entry((file.to_string(), vendor, api, written_as)).or_insert((0, support, note));
            e.0 += 1;
        }
    }

    pub fn finish(self) -> CompatReport {
        let calls = self
            .found
            .into_iter()
            .map(|((file, vendor, api, written_as), (count, support, note))| VendorCall {
                vendor,
                api,
                written_as,
                file,
                count,
                support,
                note,
            })
            .collect();
        CompatReport { calls }
    }
}

/// Whether a file is a script or page worth scanning.
pub fn is_script_or_page(path: &BundlePath) -> bool {
    matches!(path.extension().as_deref(), Some("html" | "htm" | "js" | "mjs"))
}

/// Scans every HTML and JavaScript file of a bundle (files above `max_bytes` are skipped).
pub fn scan_bundle<R: Read + Seek>(archive: &mut BundleArchive<R>, max_bytes: u64) -> Result<CompatReport> {
    let paths: Vec<BundlePath> =
        archive.manifest().files.iter().filter(|(p, f)| is_script_or_page(p) && f.size <= max_bytes).map(|(p, _)| p.clone()).collect();
    let mut scanner = Scanner::default();
    for p in paths {
        let bytes = archive.read_file_to_vec(&p)?;
        scanner.scan(p.as_str(), &String::from_utf8_lossy(&bytes));
    }
    Ok(scanner.finish())
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// The identifier (with dots when `dotted`) at the start of `s`.
fn ident_at(s: &str, dotted: bool) -> &str {
    let end = s.bytes().position(|c| !(is_ident(c) || (dotted && c == b'.'))).unwrap_or(s.len());
    s[..end].trim_end_matches('.')
}

/// The string literal at the start of `s` (after whitespace), if any.
fn first_string_arg(s: &str) -> Option<String> {
    let s = s.trim_start();
    let q = s.chars().next().filter(|c| matches!(c, '\'' | '"' | '`'))?;
    let end = s[1..].find(q)?;
    let lit = &s[1..1 + end];
    (lit.len() <= 128 && lit.bytes().all(is_ident)).then(|| lit.to_string())
}

/// Every call in `text`: (vendor, container api, as written, object argument).
fn find_calls(text: &str) -> Vec<(Vendor, String, String, Option<String>)> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let preceded_ok = |i: usize| i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b'.');
    // Veeva library calls: com.veeva.clm.<fn>(
    for (i, _) in text.match_indices("com.veeva.clm.") {
        let rest = &text[i + "com.veeva.clm.".len()..];
        let name = ident_at(rest, false);
        let after = &rest[name.len()..];
        if !name.is_empty() && after.trim_start().starts_with('(') {
            let object = first_string_arg(&after.trim_start()[1..]);
            out.push((Vendor::Veeva, name.to_string(), format!("com.veeva.clm.{name}"), object));
        }
    }
    // Veeva request language: veeva:<request>(
    for (i, _) in text.match_indices("veeva:") {
        if i > 0 && is_ident(b[i - 1]) {
            continue;
        }
        let rest = &text[i + "veeva:".len()..];
        let name = ident_at(rest, false);
        if !name.is_empty() && rest[name.len()..].starts_with('(') {
            let args = &rest[name.len() + 1..];
            let end = args.find(')').unwrap_or(0);
            let object = Some(args[..end].trim()).filter(|o| !o.is_empty() && o.bytes().all(is_ident)).map(str::to_string);
            out.push((Vendor::Veeva, name.to_string(), format!("veeva:{name}"), object));
        }
    }
    // Agnitio content library: ag.<path>(
    for (i, _) in text.match_indices("ag.") {
        if !preceded_ok(i) {
            continue;
        }
        let rest = &text[i + 3..];
        let path = ident_at(rest, true);
        if path.is_empty() || !rest[path.len()..].trim_start().starts_with('(') {
            continue;
        }
        let api = AGNITIO_ALIASES.iter().find(|(a, _)| *a == path).map(|(_, api)| (*api).to_string()).unwrap_or_else(|| path.to_string());
        out.push((Vendor::Agnitio, api, format!("ag.{path}"), None));
    }
    // Agnitio container: objc://iplanner/<api>
    for (i, _) in text.match_indices("objc://iplanner/") {
        let name = ident_at(&text[i + "objc://iplanner/".len()..], false);
        if !name.is_empty() {
            out.push((Vendor::Agnitio, name.to_string(), format!("objc://iplanner/{name}"), None));
        }
    }
    // Legacy Agnitio globals: submitSlideEnter( ... (not their definitions).
    for g in AGNITIO_GLOBALS {
        for (i, _) in text.match_indices(g) {
            let after = &text[i + g.len()..];
            let before = text[..i].trim_end();
            if preceded_ok(i) && after.trim_start().starts_with('(') && !before.ends_with("function") {
                out.push((Vendor::Agnitio, "monitoringEvent".to_string(), (*g).to_string(), None));
            }
        }
    }
    // OCE: CLMPlayer.<fn>( (also window.parent.CLMPlayer.<fn>()
    for (i, _) in text.match_indices("CLMPlayer.") {
        if i > 0 && is_ident(b[i - 1]) {
            continue;
        }
        let rest = &text[i + "CLMPlayer.".len()..];
        let name = ident_at(rest, false);
        let after = rest[name.len()..].trim_start();
        if !name.is_empty() && (after.starts_with('(') || after.starts_with("= function") || after.starts_with("=function")) {
            if after.starts_with('=') {
                continue; // a definition (a library of the deck), not a call
            }
            out.push((Vendor::Oce, name.to_string(), format!("CLMPlayer.{name}"), None));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> CompatReport {
        let mut s = Scanner::default();
        s.scan("a.js", text);
        s.finish()
    }

    fn find<'a>(r: &'a CompatReport, written: &str) -> &'a VendorCall {
        r.calls.iter().find(|c| c.written_as == written).unwrap_or_else(|| panic!("{written} in {:#?}", r.calls))
    }

    #[test]
    fn veeva_calls_are_classified_by_object() {
        let r = scan(
            "com.veeva.clm.createRecord('Call_Clickstream_vod__c', x); com.veeva.clm.createRecord(\"Account\", y);\n\
             com.veeva.clm.gotoSlide('A.zip',''); com.veeva.clm.gotoSlide('B.zip'); com.veeva.clm.launchMyStuff();\n\
             document.location = 'veeva:gotoSlide(A.zip)'; var q = \"veeva:queryObject(Account),fields(Id)\"; com.veeva.clm.queryRecord(obj, f)",
        );
        let created: Vec<_> = r.calls.iter().filter(|c| c.written_as == "com.veeva.clm.createRecord").collect();
        assert_eq!(created.len(), 2);
        assert!(created.iter().any(|c| c.api == "createRecord(Call_Clickstream_vod__c)" && c.support == Support::Handled));
        assert!(created.iter().any(|c| c.api == "createRecord(Account)" && c.support == Support::Unsupported));
        assert_eq!(find(&r, "com.veeva.clm.gotoSlide").count, 2);
        assert!(find(&r, "com.veeva.clm.launchMyStuff").is_unsupported());
        assert_eq!(find(&r, "veeva:gotoSlide").support, Support::Handled);
        assert_eq!(find(&r, "veeva:queryObject").support, Support::Handled);
        assert_eq!(find(&r, "com.veeva.clm.queryRecord").support, Support::Partly);
    }

    #[test]
    fn agnitio_and_oce_calls() {
        let r = scan(
            "ag.submit.data({}); ag.sendMail(a); iframe.src = 'objc://iplanner/monitoringEvent?' + x; drag.start(); \
             function submitSlideEnter(a) {} submitSlideEnter('x'); window.parent.CLMPlayer.gotoSlide('S', null); \
             CLMPlayer.goNextSequence(); CLMPlayer.fancy(); CLMPlayer.addAction = function () {};",
        );
        assert_eq!(find(&r, "ag.submit.data").api, "monitoringEvent");
        assert!(find(&r, "ag.sendMail").is_unsupported());
        assert_eq!(find(&r, "objc://iplanner/monitoringEvent").support, Support::Handled);
        assert_eq!(find(&r, "submitSlideEnter").count, 1);
        assert_eq!(find(&r, "CLMPlayer.gotoSlide").support, Support::Handled);
        assert!(find(&r, "CLMPlayer.fancy").is_unsupported());
        assert!(!r.calls.iter().any(|c| c.written_as.contains("drag") || c.written_as == "CLMPlayer.addAction"));
    }
}
