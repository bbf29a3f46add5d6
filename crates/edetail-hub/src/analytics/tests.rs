//! Known-answer tests of the analytics engine: constructed calls with hand-computed results.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use super::deck::{DWELL_BUCKET_BOUNDS_MS, DwellHistogram};
use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

fn cardiozen() -> DeckMeta {
    let m: edetail_bundle::Manifest =
        serde_json::from_str(include_str!("../../../../presentations/cardiozen-launch/edetail.json")).expect("sample manifest");
    DeckMeta::from_manifest(&m)
}

/// A small deck: main [a, b, c] (topics ta, tb, tc), hidden presentation h [x].
fn small_deck() -> DeckMeta {
    let slide = |id: &str, topic: &str| json!({"id": id, "title": id, "entry": format!("slides/{id}/index.html"), "topics": [topic]});
    let m: edetail_bundle::Manifest = serde_json::from_value(json!({
        "format_version": "1.0", "id": "com.example.small", "version": 2, "title": "Small", "product": "smallzen",
        "locale": "en-GB", "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2028-01-01T00:00:00Z", "approval_code": "X-1",
        "presentations": [{"id": "main", "title": "Main", "slides": ["a", "b", "c"]},
                          {"id": "h", "title": "Hidden", "hidden": true, "slides": ["x"]}],
        "slides": [slide("a", "ta"), slide("b", "tb"), slide("c", "tc"), slide("x", "tx")]
    }))
    .expect("small manifest");
    DeckMeta::from_manifest(&m)
}

/// Builds one call's events; uuids are `"{key}-{n}"`, time advances with the dwell.
struct Call {
    key: String,
    at: DateTime<Utc>,
    events: Vec<AnalyzedEvent>,
}

impl Call {
    fn new(key: &str, at: DateTime<Utc>) -> Call {
        Call { key: key.into(), at, events: Vec::new() }
    }

    fn start(key: &str, at: DateTime<Utc>, hcp: Option<&str>, channel: &str, bundle: &str) -> Call {
        let mut c = Call::new(key, at);
        c.push(
            "call_started",
            json!({"rep_id": "rep-1", "hcp_id": hcp, "channel": channel, "bundle_id": bundle, "bundle_version": 1, "location": null}),
        );
        c
    }

    fn push(&mut self, kind: &str, payload: Value) -> String {
        let uuid = format!("{}-{}", self.key, self.events.len() + 1);
        self.events.push(AnalyzedEvent { uuid: uuid.clone(), kind: kind.into(), at: self.at, payload });
        uuid
    }

    fn tick(&mut self, ms: i64) {
        self.at += Duration::milliseconds(ms);
    }

    /// Enter + exit; returns the enter uuid.
    fn view_with(&mut self, slide: &str, dwell_ms: i64, hcp_led: bool) -> String {
        let u = self.push(
            "slide_enter",
            json!({"slide": slide, "presentation": "main", "source": "swipe", "hcp_led": hcp_led, "bundle_version": 1}),
        );
        self.tick(dwell_ms);
        self.push("slide_exit", json!({"slide": slide, "presentation": "main", "dwell_ms": dwell_ms, "closed_by": "navigation"}));
        u
    }

    fn view(&mut self, slide: &str, dwell_ms: i64) -> String {
        self.view_with(slide, dwell_ms, false)
    }

    fn end(mut self) -> CallInput {
        self.push("call_ended", json!({"duration_ms": 0}));
        self.input()
    }

    fn input(self) -> CallInput {
        CallInput { call_key: self.key, device_id: "dev-1".into(), territory: "north".into(), events: self.events }
    }
}

fn analyze(
    input: &CallInput,
    deck: &DeckMeta,
    stats: &mut DeckStats,
    profile: Option<&mut HcpProfile>,
    segment: Option<&str>,
) -> CallOutcome {
    analyze_call(input, deck, stats, profile, segment, &StageRules::default())
}

fn ids(items: &[edetail_protocol::PlanItem]) -> Vec<&str> {
    items.iter().map(|i| i.slide_id.as_str()).collect()
}

#[test]
fn deck_meta_marks_hidden_and_reference_slides_and_keeps_deck_order() {
    let d = cardiozen();
    assert_eq!(d.product, "cardiozen");
    let plannable: Vec<&str> = d.slides.iter().filter(|s| s.plannable()).map(|s| s.id.as_str()).collect();
    assert_eq!(
        plannable,
        [
            "intro",
            "burden",
            "moa-overview",
            "moa-diagram",
            "moa-video",
            "efficacy-primary",
            "efficacy-subgroups",
            "safety-ae",
            "tolerability",
            "dosing",
            "patient-profile",
            "survey",
            "summary",
            "peer-exchange"
        ]
    );
    assert!(d.slide("references").unwrap().hidden && d.slide("references").unwrap().reference);
    assert_eq!(d.slide("isi-1").unwrap().presentation, "isi");
    assert!(d.slide("isi-1").unwrap().hidden);
    assert!(d.slide("pi-2").unwrap().reference);
    let back: DeckMeta = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
    assert_eq!(back, d);
}

#[test]
fn call_header_reads_call_started_and_is_none_without_it() {
    let mut c = Call::start("dev-1/c1", t0(), Some("hcp-a"), "remote", "com.example.cardiozen.launch");
    c.view("intro", 3000);
    let h = call_header(&c.input()).unwrap();
    assert_eq!(h.hcp_id.as_deref(), Some("hcp-a"));
    assert_eq!(h.channel, "remote");
    assert_eq!(h.bundle_version, 1);
    assert_eq!(h.started_at, t0());
    let mut c = Call::new("dev-1/c2", t0());
    c.view("intro", 3000);
    assert_eq!(call_header(&c.input()), None);
}

#[test]
fn histogram_buckets_and_median_by_hand() {
    let b = DWELL_BUCKET_BOUNDS_MS;
    assert_eq!(b.len(), 41);
    assert_eq!(&b[..6], &[0, 1000, 1250, 1500, 2000, 2500]);
    assert_eq!(b[40], 8_000_000);
    let mut h = DwellHistogram::default();
    assert_eq!(h.median_ms(), None);
    h.add(0);
    assert_eq!(h.median_ms(), Some(500));
    for d in [3000, 3999, 12_000, 9_000_000] {
        h.add(d);
    }
    // sorted buckets: [0,1000) [3000,4000) x2 [10000,12500) [8000000,..): lower median = 3rd
    assert_eq!(h.median_ms(), Some(3500));
    assert_eq!(h.total, 5);
    let mut top = DwellHistogram::default();
    top.add(9_000_000);
    assert_eq!(top.median_ms(), Some(8_000_000));
}

#[test]
fn hcp_a_lingers_on_safety_and_safety_is_top_interest() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut a = HcpProfile::new("hcp-a");
    let mut c = Call::start("dev-1/a1", t0(), Some("hcp-a"), "face_to_face", &deck.bundle_id);
    let intro = c.view("intro", 10_000);
    c.view("safety-ae", 30_000);
    c.view("isi-1", 10_000);
    c.view("tolerability", 30_000);
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut a), Some("cardiologist"));

    // No history: typical 10 s. safety = 3.0 (safety-ae) + 1.0 (isi-1) + 3.0 (tolerability).
    assert_eq!(a.topics["safety"].score_milli, 7000);
    assert_eq!(a.topics["safety"].views, 3);
    assert_eq!(a.topics["tolerability"].score_milli, 3000);
    assert_eq!(a.topics["awareness"].score_milli, 1000);
    assert_eq!(a.top_topics()[0], ("safety", 7.0));
    let ev = &a.topics["safety"].evidence;
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[0].kind, "slide_view");
    assert_eq!(ev[0].slide.as_deref(), Some("safety-ae"));
    assert_eq!(ev[0].description, "dwell 30.0 s vs typical 10.0 s");
    assert_eq!(ev[0].points, 3.0);
    assert_eq!(ev[0].call_key, "dev-1/a1");
    assert_eq!(ev[0].uuid, "dev-1/a1-5", "the slide_exit carrying the dwell");
    let km = deck.slide("safety-ae").unwrap().key_message.clone().unwrap();
    assert_eq!(a.key_messages[&km].score_milli, 3000);

    assert_eq!(out.views_counted, 4);
    assert_eq!(out.stage_changes.len(), 1);
    assert_eq!((out.stage_changes[0].from, out.stage_changes[0].to), (Stage::Unaware, Stage::Aware));
    assert_eq!(out.stage_changes[0].rule_id, "aware-saw-slide");
    assert_eq!(out.stage_changes[0].event_uuids, vec![intro]);
    let ms = out.wants_microsite.expect("7.0 safety points >= 6.0");
    assert_eq!(ms.topics, ["safety"]);
    assert_eq!(out.topic_points[0], ("safety".to_string(), 7.0));
    assert!(out.notes.is_empty(), "{:?}", out.notes);
}

#[test]
fn hcp_b_asks_for_samples_and_is_convinced_then_advocates_when_she_agrees_to_speak() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut b = HcpProfile::new("hcp-b");
    let mut c = Call::start("dev-1/b1", t0(), Some("hcp-b"), "remote", &deck.bundle_id);
    c.view("intro", 5_000);
    c.view("dosing", 8_000);
    c.push("slide_enter", json!({"slide": "survey", "presentation": "main", "source": "swipe", "hcp_led": false}));
    let answer = c.push(
        "survey_answer",
        json!({"slide": "survey", "question": "dosing-frequency", "answers": ["once-daily"], "text": "my patient Mr Smith"}),
    );
    c.tick(20_000);
    c.push("slide_exit", json!({"slide": "survey", "dwell_ms": 20_000}));
    c.push("slide_enter", json!({"slide": "summary", "presentation": "main", "hcp_led": true}));
    let samples = c.push("follow_up_request", json!({"slide": "summary", "topic": "samples", "note": "bring 10 boxes for Mrs X"}));
    c.tick(10_000);
    c.push("slide_exit", json!({"slide": "summary", "dwell_ms": 10_000}));
    c.push("note", json!({"text": "secret remark"}));
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut b), None);

    // A sample request is "prepared to prescribe", not advocacy.
    assert_eq!(b.stage("cardiozen"), Stage::Convinced);
    assert_eq!(out.stage_changes.len(), 1);
    let ch = &out.stage_changes[0];
    assert_eq!((ch.from, ch.to), (Stage::Unaware, Stage::Convinced));
    assert_eq!(ch.rule_id, "convinced-samples");
    assert_eq!(ch.rule_description, "asked for samples");
    assert_eq!(ch.event_uuids, vec![samples.clone()]);
    assert_eq!(ch.at, Some(t0()));
    assert_eq!(b.products["cardiozen"].stage_history, out.stage_changes);
    assert_eq!(b.products["cardiozen"].questions[0].uuid, answer);
    // survey: 2.0 dwell + 1.0 answer; summary: 1.0 dwell + 0.5 hcp_led + 2.0 follow-up.
    assert_eq!(b.topics["survey"].score_milli, 3000);
    assert_eq!(b.topics["follow-up"].score_milli, 3500);
    assert_eq!(b.topics["samples"].score_milli, 2000);
    let ms = out.wants_microsite.clone().expect("follow-up request");
    assert_eq!(ms.topics, ["samples", "summary", "follow-up"]);
    let doc = serde_json::to_string(&b).unwrap() + &serde_json::to_string(&out).unwrap();
    for free_text in ["Mr Smith", "Mrs X", "secret remark"] {
        assert!(!doc.contains(free_text), "free text {free_text:?} leaked");
    }
    // The dosing answer ("once-daily") is not a positive one: recorded, with its option id.
    let facts = &b.products["cardiozen"];
    assert_eq!(facts.follow_ups[0].topic, "samples");
    assert_eq!(facts.questions[0].answers, ["once-daily"]);

    // Next call: she agrees to speak at a round table (recorded by the rep, no slide on screen).
    let mut c = Call::start("dev-1/b2", t0() + Duration::days(10), Some("hcp-b"), "face_to_face", &deck.bundle_id);
    c.view("patient-profile", 9_000);
    let speak = c.push("advocacy", json!({"action": "agreed_to_speak"}));
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut b), None);
    assert_eq!(b.stage("cardiozen"), Stage::Advocate);
    let ch = &out.stage_changes[0];
    assert_eq!((ch.from, ch.to, ch.rule_id.as_str()), (Stage::Convinced, Stage::Advocate, "advocate-advocacy"));
    assert_eq!(ch.event_uuids, vec![speak.clone()]);
    assert_eq!(b.products["cardiozen"].advocacy[0].action, "agreed_to_speak");
    assert_eq!(b.products["cardiozen"].advocacy[0].slide, None);
    // The slides viewed in each moving call are what content teams see before a move.
    assert_eq!(stats.respond.stage_moves["dosing"]["convinced"], 1);
    assert_eq!(stats.respond.stage_moves["patient-profile"]["advocate"], 1);
    assert_eq!(stats.respond.moves, [("advocate".to_string(), 1), ("convinced".to_string(), 1)].into_iter().collect());
}

#[test]
fn a_positive_dosing_or_intent_answer_is_convinced_and_other_answers_are_not() {
    let deck = cardiozen();
    for (question, answer, stage, rule) in [
        ("dosing-confidence", "yes", Stage::Convinced, Some("convinced-dosing-answer")),
        ("cz_q3_intent", "very_likely", Stage::Convinced, Some("convinced-prescribing-intent")),
        ("cz_q3_intent", "unsure", Stage::Aware, Some("aware-saw-slide")),
        ("cz_q1_symptomatic", "yes", Stage::Aware, Some("aware-saw-slide")),
    ] {
        let mut stats = DeckStats::new(&deck.bundle_id);
        let mut p = HcpProfile::new("hcp-q");
        let mut c = Call::start("dev-1/q1", t0(), Some("hcp-q"), "face_to_face", &deck.bundle_id);
        c.push("slide_enter", json!({"slide": "survey", "presentation": "main"}));
        c.push("survey_answer", json!({"slide": "survey", "question": question, "answers": [answer]}));
        c.tick(8_000);
        c.push("slide_exit", json!({"slide": "survey", "dwell_ms": 8_000}));
        let out = analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
        assert_eq!(p.stage("cardiozen"), stage, "{question}={answer}");
        assert_eq!(out.stage_changes.first().map(|c| c.rule_id.as_str()), rule, "{question}={answer}");
    }
}

#[test]
fn hcp_c_skips_through_and_nothing_counts() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut hcp = HcpProfile::new("hcp-c");
    let mut c = Call::start("dev-1/c1", t0(), Some("hcp-c"), "face_to_face", &deck.bundle_id);
    for s in ["intro", "burden", "moa-overview", "moa-diagram", "moa-video", "efficacy-primary", "safety-ae", "dosing", "summary"] {
        c.view(s, 1_000);
    }
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut hcp), None);
    assert_eq!(out.views_counted, 0);
    assert!(out.stage_changes.is_empty());
    assert_eq!(hcp.stage("cardiozen"), Stage::Unaware);
    assert!(hcp.topics.is_empty());
    assert_eq!(hcp.products["cardiozen"].calls, 1);
    assert!(out.wants_microsite.is_none());
    assert_eq!(stats.segments[SEGMENT_ALL].calls, 1);
    assert!(stats.segments[SEGMENT_ALL].slides.is_empty());
    assert_eq!(stats.channels["face_to_face"].calls, 1);
    assert_eq!(stats.channels["face_to_face"].views, 0);
}

#[test]
fn typical_dwell_comes_from_stats_before_the_call() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut e = HcpProfile::new("hcp-e");
    let mut c = Call::start("dev-1/e1", t0(), Some("hcp-e"), "face_to_face", &deck.bundle_id);
    c.view("safety-ae", 20_000);
    analyze(&c.end(), &deck, &mut stats, Some(&mut e), None);
    assert_eq!(e.topics["safety"].score_milli, 2000, "no history: 20 s / 10 s");
    // median bucket [20 s, 25 s) -> 22.5 s
    assert_eq!(stats.typical_dwell_ms("safety-ae"), 22_500);
    let mut d = HcpProfile::new("hcp-d");
    let mut c = Call::start("dev-1/d1", t0(), Some("hcp-d"), "face_to_face", &deck.bundle_id);
    c.view("safety-ae", 45_000);
    analyze(&c.end(), &deck, &mut stats, Some(&mut d), None);
    assert_eq!(d.topics["safety"].score_milli, 2000, "45 s / 22.5 s, not including this call's own view");
    assert_eq!(d.topics["safety"].evidence[0].description, "dwell 45.0 s vs typical 22.5 s");
    // Relative dwell is capped at 4.
    let mut f = HcpProfile::new("hcp-f");
    let mut c = Call::start("dev-1/f1", t0(), Some("hcp-f"), "face_to_face", &deck.bundle_id);
    c.view("dosing", 3_600_000);
    analyze(&c.end(), &deck, &mut stats, Some(&mut f), None);
    assert_eq!(f.topics["dosing"].score_milli, 4000);
}

#[test]
fn revisits_reactions_and_hcp_led_add_their_points() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-r");
    let mut c = Call::start("dev-1/r1", t0(), Some("hcp-r"), "face_to_face", &deck.bundle_id);
    c.view("efficacy-primary", 10_000); // 1.0
    c.view("dosing", 2_000); // dosing 0.2
    c.push("slide_enter", json!({"slide": "efficacy-primary", "presentation": "main", "hcp_led": true}));
    c.push("reaction", json!({"slide": "efficacy-primary", "value": "positive"}));
    c.push("reaction", json!({"slide": "efficacy-primary", "value": "neutral"}));
    c.tick(1_000);
    c.push("slide_exit", json!({"slide": "efficacy-primary", "dwell_ms": 1_000})); // counts (reaction): 0.1 + 0.5 revisit + 0.5 led + 1.0
    c.view("efficacy-subgroups", 5_000); // 0.5
    c.push("reaction", json!({"slide": "efficacy-subgroups", "value": "negative"})); // -0.5 (after the exit: still scored)
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    assert_eq!(p.topics["efficacy"].score_milli, 1000 + 100 + 500 + 500 + 1000 + 500 - 500);
    assert_eq!(p.topics["efficacy"].views, 3);
    assert_eq!(p.topics["dosing"].score_milli, 200);
    assert_eq!(out.views_counted, 4);
    let s = stats.slide(SEGMENT_ALL, "efficacy-primary").unwrap();
    assert_eq!((s.views, s.revisits, s.calls_viewed, s.hcp_led_views), (2, 1, 1, 1));
    assert_eq!((s.reactions.positive, s.reactions.neutral, s.reactions.negative), (1, 1, 0));
    assert_eq!(stats.slide(SEGMENT_ALL, "efficacy-subgroups").unwrap().reactions.negative, 1);
    let kinds: Vec<&str> = p.topics["efficacy"].evidence.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["slide_view", "slide_view", "revisit", "hcp_led", "slide_view", "reaction", "reaction"]);
}

/// The small deck's four calls; expected: see `median_dwell_and_drop_off_by_hand`.
fn small_calls() -> Vec<CallInput> {
    let b = "com.example.small";
    let mut c1 = Call::start("dev-1/s1", t0(), None, "face_to_face", b);
    c1.view("a", 3_000);
    c1.view("b", 5_000);
    c1.view("a", 2_000);
    c1.view("c", 12_000);
    let mut c2 = Call::start("dev-1/s2", t0() + Duration::hours(1), None, "face_to_face", b);
    c2.view("a", 4_000);
    c2.view("b", 10_000);
    let mut c3 = Call::start("dev-1/s3", t0() + Duration::hours(2), None, "remote", b);
    c3.view("a", 2_500);
    c3.view("b", 1_000);
    let mut c4 = Call::start("dev-1/s4", t0() + Duration::hours(3), None, "face_to_face", b);
    c4.view("a", 9_000);
    c4.view("x", 5_000);
    vec![c1.end(), c2.end(), c3.end(), c4.end()]
}

#[test]
fn median_dwell_and_drop_off_by_hand() {
    let deck = small_deck();
    let mut stats = DeckStats::new(&deck.bundle_id);
    for call in small_calls() {
        analyze(&call, &deck, &mut stats, None, None);
    }
    let all = &stats.segments[SEGMENT_ALL];
    assert_eq!(all.calls, 4);
    // a: 3.0, 2.0, 4.0, 2.5, 9.0 s -> lower median 3.0 s -> bucket [3 s, 4 s) -> 3.5 s
    let a = &all.slides["a"];
    assert_eq!((a.views, a.revisits, a.calls_viewed), (5, 1, 4));
    assert_eq!(a.median_dwell_ms(), Some(3_500));
    // a is the last visible slide of s3 (b's 1 s does not count) and s4 (x is hidden)
    assert_eq!(a.drop_offs, 2);
    assert_eq!(a.drop_off_rate(), 0.5);
    // b: 5 s, 10 s counted -> lower median 5 s -> bucket [5 s, 6 s) -> 5.5 s; last of s2
    let b = &all.slides["b"];
    assert_eq!((b.views, b.calls_viewed, b.drop_offs), (2, 2, 1));
    assert_eq!(b.median_dwell_ms(), Some(5_500));
    assert_eq!(b.drop_off_rate(), 0.5);
    // c: 12 s -> bucket [10 s, 12.5 s) -> 11.25 s; last of s1
    let c = &all.slides["c"];
    assert_eq!((c.views, c.drop_offs), (1, 1));
    assert_eq!(c.median_dwell_ms(), Some(11_250));
    assert_eq!(c.drop_off_rate(), 1.0);
    let x = &all.slides["x"];
    assert_eq!((x.views, x.drop_offs), (1, 0));
    assert_eq!(stats.channels["face_to_face"].calls, 3);
    assert_eq!(stats.channels["remote"].calls, 1);
    assert_eq!(stats.channels["remote"].views, 1);
    assert_eq!(stats.channels["face_to_face"].slide_views["a"], 4);
    assert_eq!(stats.calls, 4);
    assert_eq!(stats.last_call_at, Some(t0() + Duration::hours(3)));
}

#[test]
fn segments_split_and_all_sums_them() {
    let deck = small_deck();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let segs = [Some("cardiologist"), Some("gp"), Some("cardiologist"), None];
    for (call, seg) in small_calls().iter().zip(segs) {
        analyze(call, &deck, &mut stats, None, seg);
    }
    assert_eq!(stats.segments.keys().collect::<Vec<_>>(), ["all", "cardiologist", "gp"]);
    assert_eq!(stats.segments["all"].calls, 4);
    assert_eq!(stats.segments["cardiologist"].calls, 2);
    assert_eq!(stats.segments["gp"].calls, 1);
    // cardiologist = s1 + s3: a 3.0, 2.0, 2.5 s -> median 2.5 s -> [2.5 s, 3 s) -> 2.75 s
    let a = stats.slide("cardiologist", "a").unwrap();
    assert_eq!((a.views, a.calls_viewed, a.drop_offs), (3, 2, 1));
    assert_eq!(a.median_dwell_ms(), Some(2_750));
    let gp_b = stats.slide("gp", "b").unwrap();
    assert_eq!((gp_b.views, gp_b.drop_offs), (1, 1));
    assert!(stats.slide("gp", "c").is_none());
    assert_eq!(stats.slide("all", "a").unwrap().views, 5);
}

#[test]
fn deltas_of_concurrent_workers_merge_to_the_sequential_fold() {
    let deck = small_deck();
    let calls = small_calls();
    let segs = [Some("cardiologist"), Some("gp"), None, Some("gp")];
    // What is stored before: the first call.
    let mut base = DeckStats::new(&deck.bundle_id);
    analyze(&calls[0], &deck, &mut base, None, segs[0]);
    // Sequentially: the other three folded into it.
    let mut sequential = base.clone();
    for (c, seg) in calls.iter().zip(segs).skip(1) {
        analyze(c, &deck, &mut sequential, None, seg);
    }
    // Two workers start from the same stored statistics: one folds calls 1 and 3, the other
    // call 2; each commits only what it added.
    let (mut w1, mut w2) = (base.clone(), base.clone());
    analyze(&calls[1], &deck, &mut w1, None, segs[1]);
    analyze(&calls[3], &deck, &mut w1, None, segs[3]);
    analyze(&calls[2], &deck, &mut w2, None, segs[2]);
    let (d1, d2) = (w1.delta_since(&base), w2.delta_since(&base));
    assert_eq!(d1.calls, 2);
    assert!(!d1.segments.contains_key("cardiologist"), "a delta carries only what changed");
    let mut stored = base.clone();
    stored.merge(&d2);
    stored.merge(&d1);
    assert_eq!(stored, sequential);
    // And through JSON, as the store merges documents.
    let mut stored: DeckStats = serde_json::from_str(&serde_json::to_string(&base).unwrap()).unwrap();
    stored.merge(&serde_json::from_str(&serde_json::to_string(&d1).unwrap()).unwrap());
    stored.merge(&serde_json::from_str(&serde_json::to_string(&d2).unwrap()).unwrap());
    assert_eq!(stored, sequential);
    // A delta of nothing changes nothing; into empty statistics, a delta is the statistics.
    let mut same = sequential.clone();
    same.merge(&sequential.delta_since(&sequential));
    assert_eq!(same, sequential);
    let mut empty = DeckStats::default();
    empty.merge(&sequential.delta_since(&DeckStats::new(&deck.bundle_id)));
    assert_eq!(empty, sequential);
}

#[test]
fn incremental_with_json_round_trips_equals_in_memory_and_expected_totals() {
    let deck = cardiozen();
    let rules = StageRules::default();
    let mut calls = Vec::new();
    for (i, hcp) in ["hcp-a", "hcp-a", "hcp-b", "hcp-a"].iter().enumerate() {
        let mut c = Call::start(&format!("dev-1/i{i}"), t0() + Duration::days(i as i64), Some(hcp), "face_to_face", &deck.bundle_id);
        c.view("intro", 4_000);
        c.view("safety-ae", 10_000 + 5_000 * i as i64);
        c.push("reaction", json!({"slide": "safety-ae", "value": "positive"}));
        c.view("moa-overview", 6_000);
        calls.push(c.end());
    }
    // In memory.
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut a = HcpProfile::new("hcp-a");
    let mut b = HcpProfile::new("hcp-b");
    for c in &calls {
        let p = if c.events[0].payload["hcp_id"] == "hcp-a" { &mut a } else { &mut b };
        analyze_call(c, &deck, &mut stats, Some(p), Some("gp"), &rules);
    }
    // Persisted as JSON between every call, as the worker does.
    let mut stats_doc = serde_json::to_string(&DeckStats::new(&deck.bundle_id)).unwrap();
    let mut a_doc = serde_json::to_string(&HcpProfile::new("hcp-a")).unwrap();
    let mut b_doc = serde_json::to_string(&HcpProfile::new("hcp-b")).unwrap();
    for c in &calls {
        let doc = if c.events[0].payload["hcp_id"] == "hcp-a" { &mut a_doc } else { &mut b_doc };
        let mut s: DeckStats = serde_json::from_str(&stats_doc).unwrap();
        let mut p: HcpProfile = serde_json::from_str(doc).unwrap();
        analyze_call(c, &deck, &mut s, Some(&mut p), Some("gp"), &rules);
        stats_doc = serde_json::to_string(&s).unwrap();
        *doc = serde_json::to_string(&p).unwrap();
    }
    assert_eq!(serde_json::from_str::<DeckStats>(&stats_doc).unwrap(), stats);
    assert_eq!(serde_json::from_str::<HcpProfile>(&a_doc).unwrap(), a);
    assert_eq!(serde_json::from_str::<HcpProfile>(&b_doc).unwrap(), b);
    // Expected totals.
    let s = stats.slide("all", "safety-ae").unwrap();
    assert_eq!((s.views, s.calls_viewed, s.reactions.positive), (4, 4, 4));
    // 10, 15, 20, 25 s -> lower median 15 s -> [15 s, 20 s) -> 17.5 s
    assert_eq!(s.median_dwell_ms(), Some(17_500));
    assert_eq!(stats.slide("gp", "safety-ae").unwrap(), s);
    assert_eq!(stats.slide("all", "moa-overview").unwrap().drop_offs, 4);
    assert_eq!(a.calls, 3);
    assert_eq!(b.calls, 1);
    // a's safety: call 0: 10/10 = 1.0; call 1: 15 / median{10} ([10,12.5) -> 11.25) = 1.333;
    // call 3: 25 / median{10,15,20} (15 -> 17.5) = 1.429; plus 3 positive reactions.
    assert_eq!(a.topics["safety"].score_milli, 1000 + 1333 + 1429 + 3000);
    // b (call 2): 20 / median{10,15} (10 -> 11.25) = 1.778 + 1.
    assert_eq!(b.topics["safety"].score_milli, 1778 + 1000);
    assert_eq!(a.stage("cardiozen"), Stage::Aware, "one moa slide of three is not educated");
}

#[test]
fn evidence_is_capped_but_totals_stay_exact() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-a");
    for i in 0..25 {
        let mut c = Call::start(&format!("dev-1/e{i}"), t0() + Duration::days(i), Some("hcp-a"), "face_to_face", &deck.bundle_id);
        c.view("dosing", 10_000);
        analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    }
    // First call 10 s / 10 s = 1.0; then 10 s / 11.25 s = 0.889, 24 times.
    let i = &p.topics["dosing"];
    assert_eq!(i.score_milli, 1000 + 24 * 889);
    assert_eq!(i.events, 25);
    assert_eq!(i.evidence.len(), profile::EVIDENCE_PER_INTEREST);
    assert_eq!(i.evidence[0].call_key, "dev-1/e5");
    assert_eq!(i.evidence[19].call_key, "dev-1/e24");
}

#[test]
fn odd_input_is_tolerated_without_panics() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-o");
    // No call_started, an exit before any enter, a slide of an older version, an enter without
    // exit (dwell from the timestamps), a reaction without a slide, an empty slide id.
    let mut c = Call::new("dev-1/o1", t0());
    c.push("slide_exit", json!({"slide": "intro", "dwell_ms": 4000}));
    c.view("old-slide", 5_000);
    c.push("slide_enter", json!({"slide": "safety-ae"}));
    c.tick(7_000);
    c.push("reaction", json!({"value": "positive"}));
    c.push("slide_enter", json!({"slide": "tolerability", "hcp_led": "yes"}));
    c.tick(500);
    c.push("slide_exit", json!({"slide": "dosing", "dwell_ms": 500}));
    c.push("slide_enter", json!({"slide": ""}));
    c.push("survey_answer", json!({"slide": "unknown", "question": "q"}));
    c.push("follow_up_request", json!({"slide": 42}));
    c.push("slide_exit", json!({"dwell_ms": -5}));
    let input = c.input();
    let out = analyze(&input, &deck, &mut stats, Some(&mut p), None);
    assert!(out.notes.iter().any(|n| n == "no call_started event"), "{:?}", out.notes);
    assert!(out.notes.iter().any(|n| n.starts_with("1 counted views of slides not in")), "{:?}", out.notes);
    assert!(out.notes.iter().any(|n| n.starts_with("3 slide_exit without")), "{:?}", out.notes);
    assert_eq!(stats.unknown_slide_views, 1);
    // safety-ae: inferred 7 s (counted); the reaction without a slide goes to it. tolerability:
    // the "dosing" exit does not close it, the empty enter does after 0.5 s (not counted).
    assert_eq!(out.views_counted, 1);
    assert_eq!(p.topics["safety"].score_milli, 700 + 1000);
    assert_eq!(stats.slide("all", "safety-ae").unwrap().reactions.positive, 1);
    assert!(stats.slide("all", "tolerability").is_none());
    assert_eq!(stats.slide("all", "safety-ae").unwrap().median_dwell_ms(), Some(7_000));
    assert_eq!(stats.channels["unknown"].calls, 1);
    // Empty input, and a profile for another HCP.
    let empty = CallInput { call_key: "k".into(), device_id: "d".into(), territory: "t".into(), events: vec![] };
    let out = analyze(&empty, &deck, &mut stats, Some(&mut p), None);
    assert_eq!(out.views_counted, 0);
    let mut c = Call::start("dev-1/o2", t0(), Some("someone-else"), "remote", "com.other.bundle");
    c.view("intro", 5_000);
    let before = p.clone();
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    assert_eq!(p, before);
    assert!(out.notes.iter().any(|n| n.contains("not the profile's")));
    assert!(out.notes.iter().any(|n| n.contains("com.other.bundle")));
}

#[test]
fn preview_calls_count_only_per_channel() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-p");
    let mut c = Call::start("dev-1/p1", t0(), Some("hcp-p"), "preview", &deck.bundle_id);
    c.view("intro", 5_000);
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    assert_eq!(out.views_counted, 1);
    assert_eq!(stats.channels["preview"].views, 1);
    assert!(stats.segments.is_empty());
    assert_eq!(p, HcpProfile::new("hcp-p"));
}

/// The default rules and policy without a holdout (plan-content tests).
fn everyone_treated() -> StageRules {
    let mut r = StageRules::default();
    r.experiment.holdout_share = 0.0;
    r
}

fn plan_of(p: &HcpProfile, deck: &DeckMeta, stats: &DeckStats) -> edetail_protocol::Plan {
    build_plan_with_rules(p, deck, stats, "north", "plan-1", t0() + Duration::days(30), Duration::days(14), &everyone_treated())
}

fn reason<'a>(items: &'a [edetail_protocol::PlanItem], slide: &str) -> &'a str {
    items.iter().find(|i| i.slide_id == slide).map_or("", |i| i.reason.as_str())
}

#[test]
fn plan_for_educated_hcp_a_leads_with_the_convinced_step_and_leaves_out_what_she_absorbed() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut a = HcpProfile::new("hcp-a");
    let mut c = Call::start("dev-1/a1", t0(), Some("hcp-a"), "face_to_face", &deck.bundle_id);
    c.view("intro", 10_000);
    c.view("safety-ae", 30_000);
    c.view("isi-1", 10_000);
    c.view("tolerability", 30_000);
    analyze(&c.end(), &deck, &mut stats, Some(&mut a), None);
    let mut c = Call::start("dev-1/a2", t0() + Duration::days(7), Some("hcp-a"), "face_to_face", &deck.bundle_id);
    let moa: Vec<String> = ["moa-overview", "moa-diagram", "moa-video"].iter().map(|s| c.view(s, 6_000)).collect();
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut a), None);
    assert_eq!((out.stage_changes[0].from, out.stage_changes[0].to), (Stage::Aware, Stage::Educated));
    assert_eq!(out.stage_changes[0].rule_id, "educated-moa");
    assert_eq!(out.stage_changes[0].event_uuids, moa);
    assert_eq!(a.topics["moa"].score_milli, 1800);

    let plan = plan_of(&a, &deck, &stats);
    assert_eq!((plan.stage.as_str(), plan.objective.as_deref(), plan.arm.as_deref()), ("educated", Some("convinced"), Some("treatment")));
    // Convinced material she has not seen, in deck order (no interest in any of it yet), then
    // the advocate step, then the mandatory ISI.
    assert_eq!(ids(&plan.items), ["efficacy-subgroups", "dosing", "patient-profile", "summary", "peer-exchange", "isi-1"]);
    assert_eq!(reason(&plan.items, "dosing"), "step toward convinced: not yet seen");
    assert_eq!(reason(&plan.items, "peer-exchange"), "step toward advocate: not yet seen");
    let isi = plan.items.last().unwrap();
    assert!(isi.mandatory && isi.presentation_id == "isi", "{isi:?}");
    assert_eq!(isi.reason, "mandatory in every promotional call (fair balance)");
    assert_eq!(plan.items.iter().filter(|i| i.mandatory).count(), 1);
    // Left out, each with why.
    assert_eq!(
        ids(&plan.skipped),
        ["intro", "burden", "moa-overview", "moa-diagram", "moa-video", "efficacy-primary", "safety-ae", "tolerability", "survey"]
    );
    assert_eq!(reason(&plan.skipped, "intro"), "serves aware: HCP is already educated");
    assert_eq!(reason(&plan.skipped, "safety-ae"), "serves educated: HCP is already educated");
    // Tolerability also serves convinced, but she viewed it 30 s, its typical dwell: absorbed.
    assert_eq!(reason(&plan.skipped, "tolerability"), "already absorbed: viewed 30.0 s, as long as is typical (35.0 s)");
    assert_eq!(reason(&plan.skipped, "survey"), "serves no adoption step");
    assert!(plan.reasons[0].starts_with("stage educated for cardiozen (rule educated-moa"), "{:?}", plan.reasons);
    assert_eq!(plan.reasons[1], "objective convinced: the next step of the adoption ladder");
    assert_eq!(plan.reasons[2], "top interests (order within a step): safety 7.00, tolerability 3.00, moa 1.80");
}

#[test]
fn plans_are_bounded_ordered_by_interest_within_a_step_and_always_keep_the_mandatory_slides() {
    let deck = cardiozen();
    // A new HCP: the aware step, then educated, six content slides, the rest left for later.
    let stats = DeckStats::new(&deck.bundle_id);
    let plan = plan_of(&HcpProfile::new("hcp-new"), &deck, &stats);
    assert_eq!((plan.stage.as_str(), plan.objective.as_deref()), ("unaware", Some("aware")));
    assert_eq!(ids(&plan.items), ["intro", "burden", "moa-overview", "moa-diagram", "moa-video", "efficacy-primary", "isi-1"]);
    assert_eq!(reason(&plan.items, "intro"), "step toward aware: not yet seen");
    assert_eq!(reason(&plan.items, "moa-overview"), "step toward educated: not yet seen");
    assert_eq!(reason(&plan.skipped, "efficacy-subgroups"), "beyond this plan's 6 slides (was: step toward educated: not yet seen)");
    assert_eq!(reason(&plan.skipped, "peer-exchange"), "serves advocate: more than a step beyond this plan's objective aware");
    assert_eq!(reason(&plan.skipped, "dosing"), "serves convinced: more than a step beyond this plan's objective aware");

    // Aware, with interest in efficacy: the educated step, efficacy first (interest), the
    // efficacy slide she absorbed left out.
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-aw");
    let mut c = Call::start("dev-1/w1", t0(), Some("hcp-aw"), "face_to_face", &deck.bundle_id);
    c.view("efficacy-primary", 20_000);
    analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    let plan = plan_of(&p, &deck, &stats);
    assert_eq!((plan.stage.as_str(), plan.objective.as_deref()), ("aware", Some("educated")));
    assert_eq!(ids(&plan.items), ["efficacy-subgroups", "moa-overview", "moa-diagram", "moa-video", "safety-ae", "tolerability", "isi-1"]);
    assert!(plan.items[0].evidence.contains(&"interest efficacy: 2.00 from 1 events".to_string()), "{:?}", plan.items[0].evidence);
    assert!(reason(&plan.skipped, "efficacy-primary").starts_with("already absorbed: viewed 20.0 s"));
    assert!(reason(&plan.skipped, "dosing").starts_with("beyond this plan's 6 slides"));

    // The operator's bound.
    let mut rules = everyone_treated();
    rules.plan.max_slides = 2;
    let plan = build_plan_with_rules(&p, &deck, &stats, "north", "p", t0(), Duration::days(1), &rules);
    assert_eq!(ids(&plan.items), ["efficacy-subgroups", "moa-overview", "isi-1"]);
    assert!(StageRules::from_json(r#"{"rules": [], "plan": {"max_slides": 0}}"#).unwrap_err().contains("max_slides"));
}

#[test]
fn an_aware_hcp_who_absorbed_the_mechanism_goes_straight_to_the_convinced_material() {
    let deck = cardiozen();
    let educated = ["moa-overview", "moa-diagram", "moa-video", "efficacy-primary", "efficacy-subgroups", "safety-ae", "tolerability"];
    let mut stats = DeckStats::new(&deck.bundle_id);
    // Other HCPs look at the educated slides for about 3 s: that is their typical dwell.
    for n in 0..5 {
        let mut c = Call::start(&format!("dev-1/o{n}"), t0(), Some(&format!("hcp-o{n}")), "face_to_face", &deck.bundle_id);
        for s in educated {
            c.view(s, 3_000);
        }
        analyze(&c.end(), &deck, &mut stats, None, None);
    }
    // She studies each for 4 s: absorbed, though short of the 5 s the `educated-moa` rule asks.
    let mut q = HcpProfile::new("hcp-q");
    let mut c = Call::start("dev-1/q1", t0() + Duration::days(1), Some("hcp-q"), "face_to_face", &deck.bundle_id);
    for s in educated {
        c.view(s, 4_000);
    }
    analyze(&c.end(), &deck, &mut stats, Some(&mut q), None);
    assert_eq!(q.stage("cardiozen"), Stage::Aware);
    let plan = plan_of(&q, &deck, &stats);
    assert_eq!(plan.objective.as_deref(), Some("convinced"));
    assert_eq!(ids(&plan.items), ["dosing", "patient-profile", "summary", "peer-exchange", "isi-1"]);
    assert_eq!(plan.reasons[1], "objective convinced: the educated material is already absorbed, so the plan goes on to the step after");
    for s in educated {
        assert!(reason(&plan.skipped, s).starts_with("already absorbed"), "{s}: {}", reason(&plan.skipped, s));
    }
}

fn glucora() -> DeckMeta {
    let m: edetail_bundle::Manifest =
        serde_json::from_str(include_str!("../../../../presentations/glucora-brief/edetail.json")).expect("sample manifest");
    DeckMeta::from_manifest(&m)
}

#[test]
fn a_deck_without_mechanism_slides_educates_through_its_educated_step() {
    // Glucora has no `moa` slide: `educated-moa` can never fire; `educated-step` asks for every
    // slide serving the educated step (efficacy and safety by their topics) for 5 s.
    let deck = glucora();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-g");
    let mut c = Call::start("dev-1/g1", t0(), Some("hcp-g"), "face_to_face", &deck.bundle_id);
    c.view("welcome", 5_000);
    let eff = c.view("hba1c-efficacy", 50_000);
    analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    assert_eq!(p.stage("glucora"), Stage::Aware, "the safety slide is still missing");
    let mut c = Call::start("dev-1/g2", t0() + Duration::days(3), Some("hcp-g"), "face_to_face", &deck.bundle_id);
    let safety = c.view("safety-profile", 6_000);
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    let ch = &out.stage_changes[0];
    assert_eq!((ch.from, ch.to, ch.rule_id.as_str()), (Stage::Aware, Stage::Educated, "educated-step"));
    assert_eq!(ch.event_uuids, vec![eff, safety]);
}

#[test]
fn an_hcp_who_absorbed_everything_ahead_without_moving_gets_that_step_reinforced() {
    let deck = glucora();
    let mut stats = DeckStats::new(&deck.bundle_id);
    // Other HCPs glance at every slide for 3 s: that is the typical dwell.
    for n in 0..5 {
        let mut c = Call::start(&format!("dev-1/o{n}"), t0(), None, "face_to_face", &deck.bundle_id);
        for s in ["welcome", "hba1c-efficacy", "safety-profile", "dosing-guide", "summary"] {
            c.view(s, 3_000);
        }
        analyze(&c.end(), &deck, &mut stats, None, None);
    }
    // She looks at every slide for 4 s: absorbed, but short of the 5 s the educated rules ask.
    let mut p = HcpProfile::new("hcp-g");
    let mut c = Call::start("dev-1/g1", t0() + Duration::days(1), Some("hcp-g"), "face_to_face", &deck.bundle_id);
    c.view("welcome", 4_000);
    c.view("hba1c-efficacy", 4_000);
    c.view("safety-profile", 4_000);
    c.view("dosing-guide", 4_000);
    c.view("summary", 4_000);
    analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    assert_eq!(p.stage("glucora"), Stage::Aware);
    let plan = plan_of(&p, &deck, &stats);
    assert_eq!(plan.objective.as_deref(), Some("educated"));
    assert_eq!(ids(&plan.items), ["hba1c-efficacy", "safety-profile"], "the educated step again, deck order (equal interest)");
    assert!(plan.items[0].reason.starts_with("reinforce: already absorbed"), "{}", plan.items[0].reason);
    assert!(plan.reasons[1].contains("reinforces the educated material"), "{:?}", plan.reasons);
    // Still left out: the aware step she passed, the steps beyond (absorbed too).
    assert_eq!(ids(&plan.skipped), ["welcome", "dosing-guide", "summary"]);
    assert!(reason(&plan.skipped, "dosing-guide").starts_with("already absorbed"));
    assert!(reason(&plan.skipped, "summary").starts_with("already absorbed"));
}

#[test]
fn slides_reps_keep_dropping_go_after_the_rest_of_their_step() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-e");
    for n in 0..5 {
        let mut c = Call::start(&format!("dev-1/e{n}"), t0() + Duration::days(n), None, "face_to_face", &deck.bundle_id);
        c.push(
            "call_plan",
            json!({"plan_id": format!("p{n}"), "planned": ["dosing", "patient-profile"], "kept": ["patient-profile"], "dropped": ["dosing"], "added": ["survey"], "order": ["patient-profile", "survey"]}),
        );
        analyze(&c.end(), &deck, &mut stats, None, None);
    }
    let e = stats.respond.rep_edits["dosing"];
    assert_eq!((e.planned, e.kept, e.dropped, e.added), (5, 0, 5, 0));
    assert_eq!(stats.respond.rep_edits["survey"].added, 5);
    // An educated HCP: dosing now comes after patient-profile, and says why.
    let mut c = Call::start("dev-1/e9", t0(), Some("hcp-e"), "face_to_face", &deck.bundle_id);
    for s in ["moa-overview", "moa-diagram", "moa-video"] {
        c.view(s, 12_000);
    }
    analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    let plan = plan_of(&p, &deck, &stats);
    assert_eq!(ids(&plan.items), ["efficacy-subgroups", "tolerability", "patient-profile", "summary", "dosing", "peer-exchange", "isi-1"]);
    assert!(plan.items[4].evidence.contains(&"reps dropped it from 5 of 5 plans".to_string()), "{:?}", plan.items[2].evidence);
}

#[test]
fn holdout_hcps_get_the_decks_default_order_recorded_as_holdout() {
    let deck = cardiozen();
    let rules = StageRules::default();
    let hcp =
        (0..1000).map(|n| format!("hcp-{n}")).find(|h| experiment::assign(&rules.experiment, "cardiozen", h) == Arm::Holdout).unwrap();
    let stats = DeckStats::new(&deck.bundle_id);
    let p = HcpProfile::new(&hcp);
    let plan = build_plan_with_rules(&p, &deck, &stats, "north", "p", t0(), Duration::days(1), &rules);
    assert_eq!(plan.arm.as_deref(), Some("holdout"));
    assert_eq!(plan.objective.as_deref(), Some("aware"), "outcomes are tracked in both arms");
    let deck_order: Vec<&str> = deck.slides.iter().filter(|s| s.plannable()).map(|s| s.id.as_str()).chain(["isi-1"]).collect();
    assert_eq!(ids(&plan.items), deck_order);
    assert!(plan.reasons[1].starts_with("holdout: the deck's default order"), "{:?}", plan.reasons);
    // Her first plan enrols her in the holdout arm, with her stage then.
    let mut p = p;
    note_plan_sent(&mut p, &plan);
    let f = &p.products["cardiozen"];
    assert_eq!((f.arm.as_deref(), f.enrolled_at, f.stage_at_enrolment), (Some("holdout"), Some(t0()), Stage::Unaware));
    // A recorded arm never changes, even when the operator switches the experiment off.
    let mut off = StageRules::default();
    off.experiment.holdout_share = 0.0;
    assert_eq!(experiment::arm_for(&p, "cardiozen", &off.experiment), Arm::Holdout);
}

#[test]
fn holdout_assignment_is_stable_seeded_and_at_the_configured_share() {
    let policy = ExperimentPolicy::default();
    let ids: Vec<String> = (0..20_000).map(|n| format!("hcp-{n:05}")).collect();
    let held = |product: &str, policy: &ExperimentPolicy| -> Vec<bool> {
        ids.iter().map(|h| experiment::assign(policy, product, h) == Arm::Holdout).collect()
    };
    let a = held("cardiozen", &policy);
    let share = a.iter().filter(|x| **x).count() as f64 / ids.len() as f64;
    assert!((0.09..0.11).contains(&share), "share {share}");
    // Stable: the same answer again, and in any order.
    assert_eq!(held("cardiozen", &policy), a);
    let rev: Vec<bool> = ids.iter().rev().map(|h| experiment::assign(&policy, "cardiozen", h) == Arm::Holdout).collect();
    assert_eq!(rev.into_iter().rev().collect::<Vec<_>>(), a);
    // Per product: another product holds out other HCPs (about 1% in both).
    let b = held("glucora", &policy);
    let both = a.iter().zip(&b).filter(|(x, y)| **x && **y).count() as f64 / ids.len() as f64;
    assert!(both < 0.02, "both {both}");
    // The configured share and seed.
    let quarter = ExperimentPolicy { holdout_share: 0.25, ..ExperimentPolicy::default() };
    let share = held("cardiozen", &quarter).iter().filter(|x| **x).count() as f64 / ids.len() as f64;
    assert!((0.24..0.26).contains(&share), "share {share}");
    let reseeded = ExperimentPolicy { seed: "another".into(), ..ExperimentPolicy::default() };
    assert_ne!(held("cardiozen", &reseeded), a);
    assert!(held("cardiozen", &ExperimentPolicy { holdout_share: 0.0, ..ExperimentPolicy::default() }).iter().all(|x| !x));
    assert!(StageRules::from_json(r#"{"rules": [], "experiment": {"holdout_share": 0.7}}"#).unwrap_err().contains("0.5"));
}

/// A deterministic normal sample (splitmix64 + Box-Muller).
struct Normal(u64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn sample(&mut self, mean: f64, sd: f64) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-12), self.uniform());
        mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// 4,000 HCPs with their own baseline prescribing, six months before and after enrolment, a
/// market drift of +1 for everyone and `effect` more for the treated: the arms' Rx moments.
fn synthetic_rx(effect: f64, seed: u64) -> (Moments, Moments) {
    let policy = ExperimentPolicy::default();
    let mut rng = Normal(seed);
    let (mut t, mut h) = (Moments::default(), Moments::default());
    for n in 0..4_000 {
        let hcp = format!("hcp-{n:05}");
        let arm = experiment::assign(&policy, "cardiozen", &hcp);
        let base = rng.sample(20.0, 6.0).max(0.0);
        let lift = 1.0 + if arm == Arm::Treatment { effect } else { 0.0 };
        let before: Vec<f64> = (0..6).map(|_| rng.sample(base, 4.0)).collect();
        let after: Vec<f64> = (0..6).map(|_| rng.sample(base + lift, 4.0)).collect();
        let d = experiment::rx_change(&before, &after).unwrap();
        if arm == Arm::Treatment { t.add(d) } else { h.add(d) }
    }
    (t, h)
}

#[test]
fn the_difference_in_differences_finds_an_injected_effect_and_none_where_none_was_injected() {
    let (t, h) = synthetic_rx(2.0, 7);
    assert!((300..500).contains(&h.n), "holdout {}", h.n);
    let Estimate::Effect { difference, low, high, .. } = experiment::compare(&t, &h, 30) else { panic!("enough data") };
    assert!(low < 2.0 && 2.0 < high, "the injected 2.0 in [{low}, {high}]");
    assert!((difference - 2.0).abs() < 0.3 && high - low < 0.6, "{difference} [{low}, {high}]");
    assert!(experiment::compare(&t, &h, 30).is_significant());
    // No effect injected: the interval holds 0 (the market drift cancels out).
    for seed in [7, 8, 9] {
        let (t, h) = synthetic_rx(0.0, seed);
        let e = experiment::compare(&t, &h, 30);
        let Estimate::Effect { low, high, .. } = e else { panic!() };
        assert!(low < 0.0 && 0.0 < high && !e.is_significant(), "seed {seed}: [{low}, {high}]");
    }
    // Below the minimum sample: no number.
    let small = Moments::of([1.0, 2.0, 3.0]);
    assert_eq!(
        experiment::compare(&small, &Moments::of([1.0; 40]), 30),
        Estimate::NotEnoughData { treatment_n: 3, holdout_n: 40, min_per_arm: 30 }
    );
    // By hand: means 2 and 1, variances 1 and 0.25, n 4 and 4.
    let (t, h) = (Moments::of([1.0, 2.0, 2.0, 3.0].map(|x| x * 1.0)), Moments::of([0.5, 1.0, 1.0, 1.5]));
    let Estimate::Effect { difference, low, high, .. } = experiment::compare(&t, &h, 2) else { panic!() };
    let se = (t.variance() / 4.0 + h.variance() / 4.0).sqrt();
    assert_eq!((difference, t.variance(), h.variance()), (1.0, 2.0 / 3.0, 1.0 / 6.0));
    assert!((low - (1.0 - experiment::Z_95 * se)).abs() < 1e-12 && (high - (1.0 + experiment::Z_95 * se)).abs() < 1e-12);
    // Progression per 30 days: two rungs in 60 days is 1.0; one rung in 10 days counts as 30.
    assert_eq!(experiment::progression_per_30_days(3, 1, 60.0), 1.0);
    assert_eq!(experiment::progression_per_30_days(2, 1, 10.0), 1.0);
    assert_eq!(experiment::rx_change(&[], &[3.0]), None);
}

#[test]
fn each_plan_is_settled_by_the_next_call_achieved_or_missed_and_counted_per_arm() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-o");
    let mut c = Call::start("dev-1/o1", t0(), Some("hcp-o"), "face_to_face", &deck.bundle_id);
    c.view("intro", 5_000);
    analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    let plan =
        build_plan_with_rules(&p, &deck, &stats, "north", "plan-1", t0() + Duration::hours(1), Duration::days(30), &everyone_treated());
    assert_eq!(plan.objective.as_deref(), Some("educated"));
    note_plan_sent(&mut p, &plan);
    // A call recorded before the plan was made (uploaded late) does not settle it.
    let mut c = Call::start("dev-2/o0", t0() + Duration::minutes(30), Some("hcp-o"), "face_to_face", &deck.bundle_id);
    c.view("burden", 5_000);
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    assert!(out.settled_plan.is_none() && p.products["cardiozen"].open_plan.is_some());
    // The next call follows the plan and she studies the mechanism: achieved.
    let mut c = Call::new("dev-1/o2", t0() + Duration::days(5));
    c.push("call_started", json!({"hcp_id": "hcp-o", "channel": "face_to_face", "bundle_id": deck.bundle_id, "plan_id": "plan-1"}));
    for s in ["moa-overview", "moa-diagram", "moa-video"] {
        c.view(s, 8_000);
    }
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    let settled = out.settled_plan.expect("settled");
    assert_eq!((settled.outcome.as_str(), settled.followed, settled.objective), ("achieved", true, Stage::Educated));
    assert_eq!(settled.settled_by, "dev-1/o2");
    assert!(p.products["cardiozen"].open_plan.is_none());
    // The next plan aims for convinced; a microsite visit without a move misses it.
    let plan =
        build_plan_with_rules(&p, &deck, &stats, "north", "plan-2", t0() + Duration::days(6), Duration::days(30), &everyone_treated());
    note_plan_sent(&mut p, &plan);
    let mut c = Call::start("microsite/v1", t0() + Duration::days(9), Some("hcp-o"), "microsite", &deck.bundle_id);
    c.view("dosing", 3_000);
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    let settled = out.settled_plan.expect("settled");
    assert_eq!((settled.outcome.as_str(), settled.followed, settled.objective), ("missed", false, Stage::Convinced));
    assert_eq!(p.products["cardiozen"].plans.len(), 2);
    let t = &stats.respond.outcomes["treatment"];
    assert_eq!((t["educated"].achieved, t["educated"].missed, t["convinced"].achieved, t["convinced"].missed), (1, 0, 0, 1));
}

#[test]
fn the_operators_fallback_drops_a_long_silent_hcp_and_her_old_evidence_stops_counting() {
    let deck = cardiozen();
    let rules = StageRules { fallback: Some(Fallback { after_days: 180, to: Stage::Aware }), ..StageRules::default() };
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-f");
    let mut c = Call::start("dev-1/f1", t0(), Some("hcp-f"), "face_to_face", &deck.bundle_id);
    for s in ["moa-overview", "moa-diagram", "moa-video"] {
        c.view(s, 8_000);
    }
    analyze_call(&c.end(), &deck, &mut stats, Some(&mut p), None, &rules);
    assert_eq!(p.stage("cardiozen"), Stage::Educated);
    // 179 days later: no fallback.
    let mut c = Call::start("dev-1/f2", t0() + Duration::days(179), Some("hcp-f"), "face_to_face", &deck.bundle_id);
    c.view("intro", 3_000);
    assert!(analyze_call(&c.end(), &deck, &mut stats, Some(&mut p), None, &rules).stage_changes.is_empty());
    // 200 days after that: back to aware, and the mechanism views of f1 no longer count.
    let mut c = Call::start("dev-1/f3", t0() + Duration::days(379), Some("hcp-f"), "face_to_face", &deck.bundle_id);
    c.view("intro", 3_000);
    let out = analyze_call(&c.end(), &deck, &mut stats, Some(&mut p), None, &rules);
    assert_eq!(out.stage_changes.len(), 1);
    let ch = &out.stage_changes[0];
    assert_eq!((ch.from, ch.to, ch.rule_id.as_str()), (Stage::Educated, Stage::Aware, "fallback-inactivity"));
    assert_eq!(ch.rule_description, "not seen for 200 days (the operator's fallback after 180 days)");
    assert_eq!(p.stage("cardiozen"), Stage::Aware);
    assert_eq!(p.products["cardiozen"].slides_seen.keys().collect::<Vec<_>>(), ["intro"]);
    // Without a fallback in the rules, stages never go down.
    let mut q = HcpProfile::new("hcp-f");
    let mut c = Call::start("dev-1/g1", t0(), Some("hcp-f"), "face_to_face", &deck.bundle_id);
    c.view("moa-overview", 8_000);
    analyze(&c.end(), &deck, &mut stats, Some(&mut q), None);
    let mut c = Call::start("dev-1/g2", t0() + Duration::days(900), Some("hcp-f"), "face_to_face", &deck.bundle_id);
    c.view("intro", 3_000);
    assert!(analyze(&c.end(), &deck, &mut stats, Some(&mut q), None).stage_changes.is_empty());
    assert!(StageRules::from_json(r#"{"rules": [], "fallback": {"after_days": 0, "to": "aware"}}"#).is_err());
    let bad = r#"{"rules": [{"id": "x", "description": "", "stage": "advocate", "all_of": [{"kind": "advocacy", "actions": ["told_a_friend"]}]}]}"#;
    assert!(StageRules::from_json(bad).unwrap_err().contains("told_a_friend"));
}

#[test]
fn microsite_slides_are_visible_topic_slides_in_deck_order() {
    let deck = cardiozen();
    let p = HcpProfile::new("hcp-m");
    let topics = vec!["safety".to_string(), "dosing".to_string(), "samples".to_string()];
    assert_eq!(microsite_slides(&p, &deck, &topics, 10), ["safety-ae", "tolerability", "dosing"]);
    assert_eq!(microsite_slides(&p, &deck, &topics, 2), ["safety-ae", "tolerability"]);
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-m");
    let mut c = Call::start("dev-1/m1", t0(), Some("hcp-m"), "microsite", &deck.bundle_id);
    c.view("dosing", 60_000);
    c.view("dosing", 60_000);
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    assert_eq!(p.topics["dosing"].score_milli, 4000 + 4000 + 500);
    assert!(out.wants_microsite.is_none(), "strong interest on a microsite does not ask for another");
    assert_eq!(microsite_slides(&p, &deck, &topics, 2), ["safety-ae", "dosing"]);
    assert!(microsite_slides(&p, &deck, &["prescribing-information".to_string()], 5).is_empty());
    assert_eq!(stats.channels["microsite"].calls, 1);
}

#[test]
fn rules_from_json_jump_stages_and_never_go_back() {
    let rules = StageRules::from_json(
        r#"{"rules": [
            {"id": "aware-2-calls", "description": "two calls", "stage": "aware", "all_of": [{"kind": "min_calls", "n": 2}]},
            {"id": "convinced-safety", "description": "likes safety", "product": "cardiozen", "stage": "convinced",
             "all_of": [{"kind": "topic_score_at_least", "topic": "safety", "score": 4.0},
                        {"kind": "reaction", "topic": "safety", "value": "positive"}]},
            {"id": "other-product", "description": "never for cardiozen", "product": "otherzen", "stage": "advocate",
             "all_of": [{"kind": "min_calls", "n": 1}]}
        ]}"#,
    )
    .unwrap();
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-j");
    let mut c = Call::start("dev-1/j1", t0(), Some("hcp-j"), "face_to_face", &deck.bundle_id);
    c.view("safety-ae", 30_000);
    let out = analyze_call(&c.end(), &deck, &mut stats, Some(&mut p), None, &rules);
    assert!(out.stage_changes.is_empty());
    let mut c = Call::start("dev-1/j2", t0() + Duration::days(1), Some("hcp-j"), "face_to_face", &deck.bundle_id);
    c.view("safety-ae", 30_000); // 30 / 35 (bucket [30 s, 40 s)) = 0.857
    let like = c.push("reaction", json!({"slide": "safety-ae", "value": "positive"}));
    let out = analyze_call(&c.end(), &deck, &mut stats, Some(&mut p), None, &rules);
    assert_eq!(p.topics["safety"].score_milli, 3000 + 857 + 1000);
    assert_eq!(out.stage_changes.len(), 1);
    let ch = &out.stage_changes[0];
    assert_eq!((ch.from, ch.to, ch.rule_id.as_str()), (Stage::Unaware, Stage::Convinced, "convinced-safety"));
    assert!(ch.event_uuids.contains(&like));
    assert!(ch.event_uuids.contains(&"dev-1/j1-3".to_string()), "the first view's evidence: {:?}", ch.event_uuids);
    // The default rules only reach aware here: the stage stays convinced.
    let mut c = Call::start("dev-1/j3", t0() + Duration::days(2), Some("hcp-j"), "face_to_face", &deck.bundle_id);
    c.view("intro", 5_000);
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    assert!(out.stage_changes.is_empty());
    assert_eq!(p.stage("cardiozen"), Stage::Convinced);
    assert!(
        StageRules::from_json(r#"{"rules": [{"id": "x", "description": "", "stage": "expert", "all_of": [{"kind": "saw_any_slide"}]}]}"#)
            .is_err()
    );
    let typo = r#"{"rules": [{"id": "x", "description": "", "stage": "aware", "all_of": [{"kind": "saw_all_slides_with_topic", "topic": "moa", "min_dwel_ms": 1}]}]}"#;
    assert!(StageRules::from_json(typo).is_err());
    let extra =
        r#"{"rules": [{"id": "x", "description": "", "stage": "aware", "all_of": [{"kind": "saw_any_slide"}], "stages": "advocate"}]}"#;
    assert!(StageRules::from_json(extra).unwrap_err().contains("unknown field"));
    let twice = r#"{"rules": [{"id": "x", "description": "", "stage": "aware", "all_of": [{"kind": "saw_any_slide"}]},
                              {"id": "x", "description": "", "stage": "educated", "all_of": [{"kind": "min_calls", "n": 3}]}]}"#;
    assert_eq!(StageRules::from_json(twice).unwrap_err(), "stage rule id \"x\" appears twice");
    let cond_extra =
        r#"{"rules": [{"id": "x", "description": "", "stage": "aware", "all_of": [{"kind": "min_calls", "n": 2, "topic": "moa"}]}]}"#;
    assert!(StageRules::from_json(cond_extra).unwrap_err().contains("unknown field"));
    let empty = r#"{"rules": [{"id": "x", "description": "", "stage": "aware", "all_of": []}]}"#;
    assert_eq!(StageRules::from_json(empty).unwrap_err(), "stage rule \"x\" has no conditions");
}

#[test]
fn documents_stay_readable_when_fields_are_missing() {
    let p: HcpProfile = serde_json::from_str(r#"{"hcp_id": "h", "topics": {"safety": {"score_milli": 1500}}}"#).unwrap();
    assert_eq!(p.topic_score("safety"), 1.5);
    assert_eq!(p.stage("cardiozen"), Stage::Unaware);
    let s: DeckStats = serde_json::from_str(r#"{"segments": {"all": {"slides": {"a": {"views": 2}}}}}"#).unwrap();
    assert_eq!(s.slide("all", "a").unwrap().views, 2);
    assert_eq!(s.typical_dwell_ms("a"), deck::DEFAULT_TYPICAL_DWELL_MS);
    let r = StageRules::default();
    assert_eq!(StageRules::from_json(&serde_json::to_string(&r).unwrap()).unwrap(), r);
    let rule: StageRule =
        serde_json::from_str(r#"{"id": "r", "description": "d", "stage": "aware", "all_of": [{"kind": "saw_any_slide"}]}"#).unwrap();
    assert_eq!(rule.product, "*");
}

#[test]
fn a_call_folded_twice_changes_the_profile_once() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-t");
    let mut c = Call::start("dev-1/t1", t0(), Some("hcp-t"), "face_to_face", &deck.bundle_id);
    c.view("dosing", 20_000);
    let call = c.end();
    let first = analyze(&call, &deck, &mut stats, Some(&mut p), None);
    assert!(!first.already_in_profile);
    let after_first = p.clone();
    let again = analyze(&call, &deck, &mut stats, Some(&mut p), None);
    assert!(again.already_in_profile);
    assert!(again.stage_changes.is_empty() && again.wants_microsite.is_none());
    assert_eq!(p, after_first);
    assert_eq!(p.recent_call_keys, ["dev-1/t1"]);
    assert_eq!(stats.slide("all", "dosing").unwrap().views, 2, "deck stats keep no call keys");
}

/// One call on the small deck, for the document snapshots.
fn snapshot_docs() -> (DeckStats, HcpProfile, CallOutcome) {
    let deck = small_deck();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-s");
    let mut c = Call::start("dev-1/n1", t0(), Some("hcp-s"), "remote", &deck.bundle_id);
    c.view("a", 3_000);
    c.push("reaction", json!({"slide": "a", "value": "positive"}));
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut p), Some("gp"));
    (stats, p, out)
}

/// The persisted documents' shape: a format change is a visible diff in `snapshots/`.
#[test]
fn documents_match_their_snapshots() {
    let (stats, profile, outcome) = snapshot_docs();
    let cases = [
        ("deck_stats", serde_json::to_value(&stats).unwrap(), include_str!("snapshots/deck_stats.json")),
        ("hcp_profile", serde_json::to_value(&profile).unwrap(), include_str!("snapshots/hcp_profile.json")),
        ("call_outcome", serde_json::to_value(&outcome).unwrap(), include_str!("snapshots/call_outcome.json")),
    ];
    for (name, actual, expected) in cases {
        if std::env::var_os("EDETAIL_UPDATE_SNAPSHOTS").is_some() {
            let path = format!("{}/src/analytics/snapshots/{name}.json", env!("CARGO_MANIFEST_DIR"));
            std::fs::write(path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
            continue;
        }
        let expected: Value = serde_json::from_str(expected).unwrap();
        assert!(actual == expected, "snapshots/{name}.json differs; now:\n{}", serde_json::to_string_pretty(&actual).unwrap());
    }
    assert_eq!(
        serde_json::from_value::<DeckStats>(serde_json::from_str(include_str!("snapshots/deck_stats.json")).unwrap()).unwrap(),
        stats
    );
    assert_eq!(
        serde_json::from_value::<HcpProfile>(serde_json::from_str(include_str!("snapshots/hcp_profile.json")).unwrap()).unwrap(),
        profile
    );
}

#[test]
fn a_follow_up_on_one_of_the_slides_topics_is_credited_once() {
    let deck = cardiozen();
    let mut stats = DeckStats::new(&deck.bundle_id);
    let mut p = HcpProfile::new("hcp-f");
    let mut c = Call::start("dev-1/f1", t0(), Some("hcp-f"), "face_to_face", &deck.bundle_id);
    c.view("summary", 1_000); // not counted
    c.push("follow_up_request", json!({"slide": "summary", "topic": "summary", "note": "n"}));
    let out = analyze(&c.end(), &deck, &mut stats, Some(&mut p), None);
    assert_eq!(p.topics["summary"].score_milli, 2000);
    assert_eq!(p.topics["follow-up"].score_milli, 2000);
    assert_eq!(p.topics.len(), 2);
    assert_eq!(out.topic_points, [("follow-up".to_string(), 2.0), ("summary".to_string(), 2.0)]);
    assert_eq!(out.wants_microsite.unwrap().topics, ["summary", "follow-up"]);
    // A follow-up alone (no counted view) is not "saw a slide".
    assert_eq!(p.stage("cardiozen"), Stage::Unaware);
}
