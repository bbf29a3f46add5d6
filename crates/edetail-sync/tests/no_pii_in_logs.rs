//! Issue 7, "no HCP names, notes or answers in logs": a full run (a tablet records a call with
//! an HCP, a note, survey answers and a follow-up note, syncs to a real hub on loopback, the hub
//! analyses it) with every tracing event and span field of every crate captured at TRACE level.
//! The logs must not contain the note, answer or follow-up text.
//!
//! HCP ids are pseudonymous CRM keys (no names anywhere in the model); the logs must not carry
//! them either, so a support log never says which doctor a rep saw: the HCP id marker is
//! checked like the free text.

mod common;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use common::world::{TabletSpec, show, start, tablet_with, world};
use edetail_core::DbKey;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

const HCP: &str = "hcp-MARKER-HCPID-31337";
const NOTE: &str = "MARKER-NOTE Dr. Jane Doe mentioned her daughter";
const ANSWER: &str = "MARKER-ANSWER prefers evening dosing";
const FOLLOW_UP: &str = "MARKER-FOLLOWUP call back after the congress";

/// A subscriber that formats every event and every span's fields, at every level, into a
/// shared buffer (what any log sink configured at TRACE would see).
#[derive(Clone, Default)]
struct Capture {
    buf: Arc<Mutex<String>>,
    next_id: Arc<Mutex<u64>>,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let _ = write!(self.0, " {}={}", field.name(), value);
        let mut src = value.source();
        while let Some(s) = src {
            let _ = write!(self.0, " caused by {s}");
            src = s.source();
        }
    }
}

impl Capture {
    fn line(&self, meta: &Metadata<'_>, f: impl FnOnce(&mut Fields<'_>)) {
        let mut line = format!("{} {}:", meta.level(), meta.target());
        f(&mut Fields(&mut line));
        line.push('\n');
        self.buf.lock().unwrap().push_str(&line);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.line(span.metadata(), |v| span.record(v));
        let mut n = self.next_id.lock().unwrap();
        *n += 1;
        Id::from_u64(*n)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut line = String::from("span record:");
        values.record(&mut Fields(&mut line));
        line.push('\n');
        self.buf.lock().unwrap().push_str(&line);
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        self.line(event.metadata(), |v| event.record(v));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_full_run_logs_no_hcp_notes_answers_or_ids() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(capture.clone()).expect("the only subscriber in this test binary");

    let w = world();
    let t = tablet_with(
        &w,
        "rep-1",
        TabletSpec { clock_start: Utc::now() - chrono::Duration::hours(2), db_key: Some(DbKey::new([9; 32])), ..TabletSpec::default() },
    );
    let (device, clock, engine, hub) = (&t.device, &t.clock, &t.engine, &w.hub);

    let call = start(&t, HCP).call_id;
    for (slide, secs) in [("moa-overview", 12), ("safety-ae", 30), ("dosing", 40)] {
        show(&t, &call, slide, secs);
    }
    device.calls().note(&call, NOTE).unwrap();
    device.calls().answer(&call, "dosing-titration-clear", &[ANSWER.into()], Some(ANSWER)).unwrap();
    device.calls().follow_up(&call, "samples", Some(FOLLOW_UP)).unwrap();
    // The slide bridge too (a slide saving state and tracking with the marker).
    let bridge = serde_json::json!({"id": 1, "method": "track", "params": {"event": "x", "data": {"t": NOTE}}}).to_string();
    edetail_core::bridge::handle(device, &bridge);
    device.calls().end_call(&call).unwrap();

    clock.set_wall(Utc::now());
    let up = engine.sync_now().unwrap();
    assert!(up.events_accepted > 5, "{up:?}");
    let report = hub.analyze_pending().unwrap();
    assert_eq!(report.calls_failed, 0);
    assert!(hub.hcp_profile(HCP).unwrap().is_some(), "the hub analysed the call");
    engine.sync_now().unwrap(); // plans back to the tablet
    drop(t);

    let logs = capture.buf.lock().unwrap().clone();
    if let Ok(path) = std::env::var("EDETAIL_LOG_DUMP") {
        std::fs::write(path, &logs).unwrap();
    }
    assert!(logs.lines().count() > 10, "the capture works: {logs}");
    let leaks: Vec<&str> = logs.lines().filter(|l| [NOTE, ANSWER, FOLLOW_UP, "MARKER", HCP].iter().any(|m| l.contains(m))).collect();
    assert!(leaks.is_empty(), "personal data in the logs:\n{}", leaks.join("\n"));
}
