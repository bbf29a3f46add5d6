//! JSON snapshots of every wire type: a protocol change must show up as a reviewed diff.

use chrono::{TimeZone, Utc};
use edetail_protocol::*;
use serde_json::json;

fn t() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 30, 0).single().unwrap()
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let s = serde_json::to_string(v).unwrap();
    assert_eq!(&serde_json::from_str::<T>(&s).unwrap(), v);
}

fn event() -> WireEvent {
    WireEvent {
        uuid: "6f1c1b7e-2f0a-4c55-9a57-1d2b3c4d5e6f".into(),
        seq: 42,
        call_id: Some("c0ffee00-0000-4000-8000-000000000001".into()),
        kind: "slide_exit".into(),
        recorded_at: t(),
        session: 3,
        mono_ms: 81_250,
        payload: json!({"slide": "efficacy-primary", "presentation": "main", "dwell_ms": 8000, "closed_by": "navigation"}),
    }
}

#[test]
fn upload_batch() {
    let v = UploadBatch { device_id: "dev-1".into(), batch_id: "b-1".into(), device_time: t(), events: vec![event()] };
    round_trip(&v);
    insta::assert_json_snapshot!(v);
}

/// The borrowed encoding with the payload as text writes exactly the bytes of the owned one, with
/// and without a call id, for payloads with nesting, escapes, floats and unicode.
#[test]
fn wire_event_ref_encodes_as_the_wire_event() {
    let payloads = [
        json!({}),
        json!({"slide": "efficacy-primary", "dwell_ms": 8000}),
        json!({"a": {"b": [1, 2.5, -3e-7, null, true]}, "q": "line\nbreak \"quoted\" \u{e9}\u{1F600}", "z": 1.0}),
    ];
    for (i, payload) in payloads.into_iter().enumerate() {
        let owned = WireEvent { call_id: (i % 2 == 0).then(|| "call-1".to_string()), payload, ..event() };
        let text = serde_json::to_string(&owned.payload).unwrap();
        let raw = serde_json::value::RawValue::from_string(text).unwrap();
        let borrowed = WireEventRef {
            uuid: &owned.uuid,
            seq: owned.seq,
            call_id: owned.call_id.as_deref(),
            kind: &owned.kind,
            recorded_at: owned.recorded_at,
            session: owned.session,
            mono_ms: owned.mono_ms,
            payload: &raw,
        };
        assert_eq!(serde_json::to_string(&borrowed).unwrap(), serde_json::to_string(&owned).unwrap());
    }
}

#[test]
fn upload_ack() {
    let v = UploadAck {
        accepted: vec!["a".into()],
        duplicates: vec!["b".into()],
        rejected: vec![RejectedEvent { uuid: "c".into(), reason: "payload is not an object".into() }],
        watermark: 42,
        skew_ms: -1500,
        hub_time: t(),
    };
    round_trip(&v);
    insta::assert_json_snapshot!(v);
}

#[test]
fn change_page() {
    let v = ChangePage {
        next_cursor: "17".into(),
        has_more: false,
        bundles: vec![BundleOffer {
            bundle_id: "com.example.cardiozen.launch".into(),
            version: 3,
            manifest: Base64Bytes(b"{\"format_version\":\"1.0\"}".to_vec()),
            signature: Base64Bytes(b"{\"algorithm\":\"ed25519\"}".to_vec()),
            total_size: 808_448,
            zip_path: "/v1/bundles/com.example.cardiozen.launch/3.zip".into(),
        }],
        revocations: vec![Revocation { bundle_id: "com.example.old".into(), reason: "withdrawn".into(), revoked_at: t() }],
        plans: vec![SignedPlan {
            plan: Base64Bytes(b"{\"plan_id\":\"p1\"}".to_vec()),
            signature: Base64Bytes(b"{\"algorithm\":\"ed25519\"}".to_vec()),
        }],
        erasures: vec![Erasure { hcp_id: "hcp-0099".into(), erased_at: t() }],
        consents: vec![ConsentRecord { hcp_id: "hcp-0042".into(), tracking: Tracking::Anonymous, updated_at: t() }],
        hub_time: t(),
    };
    round_trip(&v);
    insta::assert_json_snapshot!(v);
}

#[test]
fn plan() {
    let item = |slide: &str, reason: &str, evidence: &[&str]| PlanItem {
        slide_id: slide.into(),
        presentation_id: "main".into(),
        reason: reason.into(),
        evidence: evidence.iter().map(|e| e.to_string()).collect(),
        mandatory: false,
    };
    let v = Plan {
        plan_id: "0b9e7f7c-5a43-4d0e-9a51-2b7c9d1e3f00".into(),
        hcp_id: "hcp-0042".into(),
        territory: "uk-north".into(),
        product: "cardiozen".into(),
        bundle_id: "com.example.cardiozen.launch".into(),
        bundle_version: 3,
        stage: "educated".into(),
        generated_at: t(),
        valid_until: t() + chrono::Duration::days(30),
        items: vec![
            item(
                "safety-overview",
                "strongest interest: safety (score 3.4)",
                &["safety: 2 views at 2.6x typical dwell", "1 positive reaction"],
            ),
            item("dosing-calculator", "open question on dosing", &["survey answer: dosing"]),
        ],
        skipped: vec![item("disease-burden", "awareness slide: the HCP is already educated", &[])],
        reasons: vec!["stage educated for cardiozen".into(), "interest: safety > dosing > efficacy".into()],
        objective: Some("convinced".into()),
        arm: Some("treatment".into()),
    };
    round_trip(&v);
    insta::assert_json_snapshot!(v);
}

#[test]
fn publish_result_and_errors() {
    let v = PublishResult { bundle_id: "x".into(), version: 2, blobs_new: 3, blobs_existing: 49, territories: vec!["uk-north".into()] };
    round_trip(&v);
    insta::assert_json_snapshot!(v);
    let e = ErrorBody { code: ErrorCode::RateLimited, message: "too many requests".into(), retry_after_ms: Some(2000) };
    round_trip(&e);
    insta::assert_json_snapshot!(e);
}

#[test]
fn base64_bytes_are_exact() {
    let raw = Base64Bytes(vec![0, 255, 10, 13, b'"']);
    let s = serde_json::to_string(&raw).unwrap();
    assert_eq!(s, "\"AP8KDSI=\"");
    assert_eq!(serde_json::from_str::<Base64Bytes>(&s).unwrap(), raw);
    assert!(serde_json::from_str::<Base64Bytes>("\"***\"").is_err());
}

#[test]
fn device_info() {
    let v = DeviceInfo { device_id: "dev-1".into(), rep_id: "rep-7".into(), territory: "north".into() };
    round_trip(&v);
    insta::assert_json_snapshot!(v);
}

/// Every built-in kind's payload, fully populated: a payload change shows up as a reviewed diff.
#[test]
fn event_payloads() {
    use edetail_protocol::payload::*;
    let all = vec![
        Payload::CallStarted(CallStarted {
            rep_id: Some("rep-7".into()),
            hcp_id: Some("hcp-0102".into()),
            channel: "face_to_face".into(),
            bundle_id: Some("com.example.cardiozen.launch".into()),
            bundle_version: Some(3),
            location: Some("clinic".into()),
            plan_id: Some("plan-1".into()),
            microsite_id: None,
        }),
        Payload::CallEnded(CallEnded { duration_ms: Some(754_000) }),
        Payload::CallInterrupted(CallInterrupted { last_heartbeat_at: Some(t()) }),
        Payload::SlideEnter(SlideEnter {
            slide: "efficacy-primary".into(),
            presentation: Some("main".into()),
            source: Some("swipe".into()),
            hcp_led: false,
            bundle_version: Some(3),
        }),
        Payload::SlideExit(SlideExit {
            slide: Some("efficacy-primary".into()),
            presentation: Some("main".into()),
            dwell_ms: Some(8000),
            closed_by: Some("navigation".into()),
        }),
        Payload::AppBackground(AppLifecycle { slide: Some("efficacy-primary".into()) }),
        Payload::AppForeground(AppLifecycle { slide: Some("efficacy-primary".into()) }),
        Payload::Reaction(Reaction { slide: Some("efficacy-primary".into()), value: "positive".into() }),
        Payload::Custom(Custom { slide: Some("dosing".into()), event: Some("chart_toggle".into()), data: json!({"series": "hba1c"}) }),
        Payload::SurveyAnswer(SurveyAnswer {
            slide: Some("survey".into()),
            question: "q-dosing".into(),
            answers: vec!["once-daily".into()],
            text: None,
        }),
        Payload::Note(Note { text: "asked about renal dosing".into() }),
        Payload::FollowUpRequest(FollowUpRequest { slide: Some("dosing".into()), topic: "dosing".into(), note: None }),
        Payload::OversizedEvent(OversizedEvent { original_type_bytes: Some(9), batch_bytes: Some(1_100_000), reason: Some("413".into()) }),
        Payload::Erased,
    ];
    let mut map = serde_json::Map::new();
    for p in &all {
        let kind = p.kind();
        let value = p.to_value();
        assert_eq!(&Payload::parse(&kind, &value).unwrap(), p, "{kind} round-trips");
        map.insert(kind.to_string(), value);
    }
    insta::assert_json_snapshot!(serde_json::Value::Object(map));
}
