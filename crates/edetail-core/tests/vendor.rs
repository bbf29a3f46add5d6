//! Other vendors' containers through the bridge, on a real device (SQLite, files): every call a
//! Veeva, Agnitio or OCE library makes is recorded or explicitly answered, navigation moves the
//! call, and a call edetail cannot honour is answered as the vendor's failure and kept as
//! `unsupported_api` (ADR 0013).

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use edetail_bundle::testkit::SampleBundle;
use edetail_bundle::{Bridge, BundlePath};
use edetail_core::{Channel, Device, DeviceConfig, ManualClock, NavAction, NavSource, StartCall};
use serde_json::{Value, json};

struct World {
    _tmp: tempfile::TempDir,
    device: Device,
    call: String,
}

fn world(bundle: SampleBundle) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).single().unwrap()));
    let device =
        Device::open(&tmp.path().join("data"), DeviceConfig { allow_unsigned: true, clock, ..DeviceConfig::new("rep-1") }).unwrap();
    let zip = tmp.path().join("deck.zip");
    std::fs::write(&zip, bundle.zip(None)).unwrap();
    device.install_zip(&zip).unwrap();
    let (call, _) = device
        .start_call(StartCall {
            hcp_id: Some("hcp-1".into()),
            channel: Channel::FaceToFace,
            bundle_id: "com.example.sample".into(),
            presentation_id: None,
            location: None,
        })
        .unwrap();
    World { _tmp: tmp, device, call }
}

impl World {
    fn bridge(&self, method: &str, params: Value) -> Value {
        let reply = edetail_core::bridge::handle(&self.device, &json!({"v": 1, "id": 1, "method": method, "params": params}).to_string());
        serde_json::from_str(&reply).unwrap()
    }

    fn ok(&self, method: &str, params: Value) -> Value {
        let r = self.bridge(method, params);
        assert_eq!(r["ok"], true, "{method}: {r}");
        r["result"].clone()
    }

    /// Events of the call after the start (slide_enter of the first slide and call_started).
    fn events(&self) -> Vec<(String, Value)> {
        self.device.outbox().for_call(&self.call).unwrap().into_iter().map(|e| (e.kind, e.payload)).collect()
    }

    fn count(&self) -> usize {
        self.events().len()
    }

    fn last(&self) -> (String, Value) {
        self.events().pop().unwrap()
    }
}

#[test]
fn veeva_clickstream_over_the_frame_transport_answers_the_callback_id() {
    let w = world(SampleBundle::new());
    let r = w.ok(
        "veeva.request",
        json!({"request": r#"veeva:saveObjectV2(Call_Clickstream_vod__c),value({"Track_Element_Id_vod__c":"chart","Answer_vod__c":"a),b"}),42"#}),
    );
    assert_eq!(r["callback"], 42);
    assert_eq!(r["result"]["success"], true);
    let (kind, payload) = w.last();
    assert_eq!(kind, "custom");
    assert_eq!(payload["event"], "veeva_clickstream");
    assert_eq!(payload["data"], json!({"Track_Element_Id_vod__c": "chart", "Answer_vod__c": "a),b"}));
    assert_eq!(payload["slide"], "intro");

    // URI-encoded (document.location transport), named callback, and an update by objectId.
    let id = r["result"]["objectId"].as_str().unwrap().to_string();
    let enc = "veeva:saveObjectV2%28Call_Clickstream_vod__c%29%2CobjectId%28".to_string()
        + &id
        + "%29%2Cvalue%28%7B%22Usage_Duration_vod__c%22%3A5%7D%29%2Ccallback%28cb%29";
    let r = w.ok("veeva.request", json!({"request": enc}));
    assert_eq!(r["callback"], "cb");
    let (_, payload) = w.last();
    assert_eq!(payload["event"], "veeva_clickstream_update");
    assert_eq!(payload["data"], json!({"id": id, "Usage_Duration_vod__c": 5}));

    // formatCreateRecords: two records in one string.
    let before = w.count();
    w.ok(
        "veeva.request",
        json!({"request": r#"veeva:saveObjectV2(Call_Clickstream_vod__c),value({"n":1}),callback();veeva:saveObjectV2(Call_Clickstream_vod__c),value({"n":2}),callback();"#}),
    );
    assert_eq!(w.count(), before + 2);
}

#[test]
fn veeva_query_record_navigation_and_goto_forms() {
    let w = world(SampleBundle::new());
    let r = w.ok(
        "veeva.request",
        json!({"request": "veeva:queryObject(Key_Message_vod__c),fields(ID,Media_File_Name_vod__c),where(WHERE Media_File_Name_vod__c = \"KM_EFFICACY.zip\"),com_q(result)"}),
    );
    assert_eq!(r["callback"], "com_q");
    assert_eq!(
        r["result"],
        json!({"success": true, "record_count": 1, "Key_Message_vod__c": [{"ID": "efficacy", "Media_File_Name_vod__c": "KM_EFFICACY.zip"}]})
    );
    let before = w.count();
    let r = w.ok("veeva.request", json!({"request": "veeva:gotoSlide(KM_EFFICACY.zip)"}));
    assert_eq!(r["navigate"]["slide"], "efficacy");
    assert_eq!(r["navigate"]["moved"], true);
    assert_eq!(r["navigate"]["url"], "/com.example.sample/slides/efficacy/index.html");
    assert_eq!(w.count(), before + 2, "exit of intro, enter of efficacy");
    let (kind, payload) = w.last();
    assert_eq!((kind.as_str(), &payload["source"]), ("slide_enter", &json!("jump")));
    // One quoted string holding key message and presentation (works on the iPad).
    let r = w.ok("veeva.request", json!({"request": "veeva:gotoSlide('KM_PI.zip, pi')"}));
    assert_eq!(r["navigate"]["slide"], "pi");
    // An unknown key message is answered, nothing moves.
    let before = w.count();
    let r = w.ok("veeva.request", json!({"request": "veeva:gotoSlide(NOPE.zip),callback(cb)"}));
    assert_eq!(r["result"]["success"], false);
    assert!(r.get("navigate").is_none());
    assert_eq!(w.count(), before);
    // Sorted, limited listing of the deck's key messages; presentations too.
    let r = w.ok(
        "veeva.request",
        json!({"request": "veeva:queryObject(Key_Message_vod__c),fields(Name),sort(Name,desc),limit(2),callback(cb)"}),
    );
    assert_eq!(r["result"]["Key_Message_vod__c"], json!([{"Name": "KM_PI"}, {"Name": "KM_INTRO"}]));
    let r = w.ok("veeva.request", json!({"request": "veeva:queryObject(Clm_Presentation_vod__c),fields(ID),callback(cb)"}));
    assert_eq!(r["result"]["record_count"], 2);
    // Data of the current objects: ids only.
    let r = w.ok("veeva.request", json!({"request": "veeva:getDataForObjectV2(Account),fieldName(ID),callback(cb)"}));
    assert_eq!(r["result"], json!({"success": true, "Account": {"ID": "hcp-1"}}));
    let r = w.ok("veeva.request", json!({"request": "veeva:getDataForObjectV2(Account),objId(hcp-1),fieldName(ID),callback(cb)"}));
    assert_eq!(r["result"]["success"], true);
    let before = w.count();
    let r = w.ok("veeva.request", json!({"request": "veeva:getDataForObjectV2(Account),objId(hcp-2),fieldName(ID),callback(cb)"}));
    assert_eq!(
        (r["result"]["success"].as_bool(), r["result"]["code"].as_u64()),
        (Some(false), Some(1000)),
        "another HCP's record is not known"
    );
    assert_eq!(w.count(), before + 1, "and kept as unsupported_api");
}

#[test]
fn veeva_calls_edetail_cannot_honour_are_answered_and_recorded() {
    let w = world(SampleBundle::new());
    let r = w.ok(
        "veeva.request",
        json!({"request": "veeva:queryObject(Address_vod__c),fields(ID),where(WHERE Account_vod__c=\"hcp-1\"),com_veeva_clm_accountAddresses(result)"}),
    );
    assert_eq!(r["result"]["success"], false);
    assert_eq!(r["result"]["code"], 1000);
    assert_eq!(r["callback"], "com_veeva_clm_accountAddresses");
    let (kind, payload) = w.last();
    assert_eq!(kind, "unsupported_api");
    assert_eq!(
        (payload["vendor"].as_str(), payload["api"].as_str(), payload["slide"].as_str()),
        (Some("veeva"), Some("queryObject"), Some("intro"))
    );
    assert_eq!(payload["args"]["object"], "Address_vod__c");

    w.ok("veeva.request", json!({"request": r#"veeva:saveObjectV2(Account),value({"Specialty":"x"}),callback(cb)"#}));
    assert_eq!(w.last().0, "unsupported_api");
    w.ok("veeva.request", json!({"request": r#"veeva:saveObjectV2(Call2_vod__c),updateCurrentRecord(),value({"x":1}),callback(cb)"#}));
    assert_eq!(w.last().0, "unsupported_api");
    w.ok("veeva.request", json!({"request": "veeva:queryObject(Key_Message_vod__c),fields(ID),where(WHERE Name LIKE 'KM%'),callback(cb)"}));
    assert_eq!(w.last().1["api"], "queryObject", "a where clause edetail cannot evaluate is not guessed");

    // An unreadable request is an error for the page, and still kept.
    let before = w.count();
    let r = w.bridge("veeva.request", json!({"request": "veeva:saveObjectV2(Call_Clickstream_vod__c),value({\"a\":),callback(x)"}));
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["code"], "invalid_params");
    assert_eq!(w.count(), before + 1);
    assert_eq!(w.last().1["api"], "unparsed_request");

    // launchApprovedEmail is the rep's request, kept for the email channel.
    let r = w.ok("veeva.request", json!({"request": "veeva:launchApprovedEmail(TPL-1),fragments(F1,F2),callback(cb)"}));
    assert_eq!(r["result"]["success"], true);
    let (kind, payload) = w.last();
    assert_eq!(
        (kind.as_str(), &payload["template"], &payload["fragments"]),
        ("approved_email_request", &json!("TPL-1"), &json!(["F1", "F2"]))
    );
    let r = w.ok(
        "veeva.request",
        json!({"request": "veeva:queryObject(Approved_Document_vod__c),fields(ID),where(WHERE Vault_Instance_ID_vod__c = \"12\" AND Vault_Document_ID_vod__c = \"345\"),callback(cb)"}),
    );
    assert_eq!(r["result"]["Approved_Document_vod__c"], json!([{"ID": "12:345"}]));

    // A stand-in library's own unsupported call.
    w.ok("vendor.unsupported", json!({"vendor": "veeva", "api": "getProduct_MySetup", "args": ["Detail"]}));
    assert_eq!(w.last().1, json!({"vendor": "veeva", "api": "getProduct_MySetup", "slide": "intro", "args": ["Detail"]}));
    assert_eq!(w.bridge("vendor.unsupported", json!({"vendor": "acme", "api": "x"}))["error"]["code"], "invalid_params");
}

#[test]
fn next_on_the_last_slide_and_prev_on_the_first_do_nothing() {
    let w = world(SampleBundle::new());
    let before = w.count();
    let t = w.device.calls().navigate(&w.call, &NavAction::Previous, NavSource::Swipe, false).unwrap();
    assert_eq!((t.slide.as_str(), t.moved), ("intro", false));
    assert_eq!(w.count(), before, "no fake exit/enter");
    let r = w.ok("navigate", json!({"action": "next"}));
    assert_eq!((r["slide"].as_str(), r["moved"].as_bool()), (Some("efficacy"), Some(true)));
    let before = w.count();
    let r = w.ok("navigate", json!({"action": "next"}));
    assert_eq!((r["slide"].as_str(), r["moved"].as_bool()), (Some("efficacy"), Some(false)));
    let r = w.ok("veeva.request", json!({"request": "veeva:nextSlide()"}));
    assert_eq!(r["navigate"]["moved"], false);
    assert_eq!(w.count(), before);
    let views: Vec<String> = w.device.calls().slide_views(&w.call).unwrap().into_iter().map(|v| v.slide_id).collect();
    assert_eq!(views, ["intro", "efficacy"], "no second view of efficacy");
}

/// An Agnitio-style single-page deck: every slide is the framework's index.html with a route.
fn agnitio_deck() -> SampleBundle {
    let mut b = SampleBundle::new();
    b.files.insert("index.html".into(), b"<!doctype html><title>framework</title>".to_vec());
    for s in &mut b.manifest.slides {
        s.route = Some(format!("?path=core/{}", s.id));
        s.entry = BundlePath::parse("index.html").unwrap();
        s.key_message = Some(format!("cz_{}", s.id));
        s.bridge = Bridge::Agnitio;
    }
    b
}

#[test]
fn agnitio_slide_reports_become_views_of_the_bundle_slides() {
    let w = world(agnitio_deck());
    assert_eq!(w.device.calls().get(&w.call).unwrap().slide_id.as_deref(), Some("intro"));
    let t = w.device.calls().navigate(&w.call, &NavAction::Next, NavSource::Swipe, false).unwrap();
    assert_eq!(t.url, "/com.example.sample/index.html?path=core/efficacy", "the route drives the framework");

    // The framework reports the slide the shell already shows: nothing new.
    let before = w.count();
    let ev = json!({"type": "system", "category": "slideEnter", "valueId": "cz_efficacy", "value": "Efficacy", "time": 1});
    w.ok("agnitio.invoke", json!({"api": "monitoringEvent", "params": ev.to_string()}));
    assert_eq!(w.count(), before);
    // The deck navigated itself (its own button): a real view of the mapped slide.
    let url = format!("objc://iplanner/monitoringEvent?{}", pct(&json!({"category": "slideEnter", "valueId": "cz_intro"}).to_string()));
    let r = w.ok("agnitio.invoke", json!({"url": url}));
    assert_eq!(r["result"]["slide"], "intro");
    assert_eq!(w.last().0, "slide_enter");
    assert_eq!(w.device.calls().get(&w.call).unwrap().slide_id.as_deref(), Some("intro"));
    // slideExit is answered; the next enter closes the view.
    let before = w.count();
    w.ok("agnitio.invoke", json!({"api": "monitoringEvent", "params": r#"{"category":"slideExit","valueId":"cz_intro"}"#}));
    assert_eq!(w.count(), before);
    // Custom data, documents, an unknown slide: all kept.
    w.ok("agnitio.invoke", json!({"api": "monitoringEvent", "params": r#"{"type":"custom","category":"Quiz","label":"q1","value":"b"}"#}));
    assert_eq!((w.last().1["event"].as_str(), w.last().1["data"]["label"].as_str()), (Some("agnitio_monitoring"), Some("q1")));
    w.ok("agnitio.invoke", json!({"api": "monitoringEvent", "params": r#"{"category":"slideEnter","valueId":"nowhere"}"#}));
    assert_eq!(w.last().1["event"], "agnitio_unknown_slide");
    w.ok("agnitio.invoke", json!({"api": "openPDF", "params": "docs/pi.pdf"}));
    assert_eq!(w.last().1["data"]["path"], "docs/pi.pdf");

    // Data calls answer through the function they name; ids only.
    let r = w.ok("agnitio.invoke", json!({"api": "getPresenter", "params": r#"{"resultFunction":"ag.data._savePresenter"}"#}));
    assert_eq!((r["result"].clone(), r["result_function"].clone()), (json!({"id": "rep-1"}), json!("ag.data._savePresenter")));
    let r = w.ok("agnitio.invoke", json!({"api": "getCallContacts", "params": "ag.data._saveContacts"}));
    assert_eq!((r["result"].clone(), r["result_function"].clone()), (json!([{"id": "hcp-1"}]), json!("ag.data._saveContacts")));
    let r = w.ok("agnitio.invoke", json!({"api": "getPresenter", "params": r#"{"resultFunction":"alert(document.cookie)"}"#}));
    assert_eq!(r["result_function"], Value::Null, "only a dotted function path is ever called back");

    // sendMail is not an approved channel: answered, recorded.
    let r = w.ok("agnitio.invoke", json!({"api": "sendMail", "params": r#"{"subject":"s","body":"b"}"#}));
    assert_eq!(r["result"], Value::Null);
    assert_eq!((w.last().0.as_str(), w.last().1["api"].as_str()), ("unsupported_api", Some("sendMail")));
    let r = w.bridge("agnitio.invoke", json!({"url": "javascript:alert(1)"}));
    assert_eq!(r["error"]["code"], "invalid_params");
}

#[test]
fn oce_player_calls() {
    let mut deck = SampleBundle::new();
    deck.files.insert("slides/intro/detail.html".into(), b"<!doctype html><title>detail</title>".to_vec());
    let w = world(deck);
    // A further page of the current sequence: it loads, the view goes on, the page is kept.
    let before = w.count();
    let r = w.ok("oce.call", json!({"request": "gotoSlide", "params": {"sequenceId": null, "slideName": "detail.html"}}));
    assert_eq!(
        (r["navigate"]["slide"].as_str(), r["navigate"]["url"].as_str()),
        (Some("intro"), Some("/com.example.sample/slides/intro/detail.html"))
    );
    assert_eq!(w.count(), before + 1);
    assert_eq!(w.last().1["event"], "oce_page");
    let r = w.ok("oce.call", json!({"request": "gotoSlide", "params": {"slideName": "../../manifest.json"}}));
    assert_eq!(r["result"]["success"], false, "only pages of the bundle, by name");
    let r =
        w.ok("oce.call", json!({"request": "gotoSlide", "params": {"sequenceId": null, "slideName": "KM_EFFICACY", "animation": null}}));
    assert_eq!(r["navigate"]["slide"], "efficacy");
    let r = w.ok("oce.call", json!({"request": "goNextSequence"}));
    assert_eq!(r["navigate"]["moved"], false, "efficacy is the last slide of main");
    let r = w.ok("oce.call", json!({"request": "goPreviousSequence", "params": {}}));
    assert_eq!(r["navigate"]["slide"], "intro");
    w.ok("oce.call", json!({"request": "addAction", "params": {"action__c": "click", "pageid__c": "intro"}}));
    assert_eq!(w.last().1, json!({"slide": "intro", "event": "oce_action", "data": {"action__c": "click", "pageid__c": "intro"}}));
    w.ok("oce.call", json!({"request": "saveState", "params": {"state": {"tab": 2}}}));
    assert_eq!(w.ok("state.load", json!({"key": "oce_state"}))["value"], json!({"tab": 2}));
    let before = w.count();
    w.ok("oce.call", json!({"request": "defineNoSwipeRegion", "params": {"regionId": "chart", "x": 0, "y": 0, "width": 10, "height": 10}}));
    assert_eq!(w.count(), before, "gesture regions are the page's business");
    let r = w.ok("oce.call", json!({"request": "getSurveyFlowJson", "params": {"json": "{}"}}));
    assert_eq!(r["result"]["success"], false);
    assert_eq!(w.last().1["api"], "getSurveyFlowJson");
}

#[test]
fn vendor_calls_without_an_open_call_are_refused_not_dropped_silently() {
    let w = world(SampleBundle::new());
    w.device.calls().end_call(&w.call).unwrap();
    for (m, p) in [
        ("veeva.request", json!({"request": "veeva:nextSlide()"})),
        ("agnitio.invoke", json!({"api": "getPresenter", "params": "{}"})),
        ("oce.call", json!({"request": "addAction"})),
    ] {
        assert_eq!(w.bridge(m, p)["error"]["code"], "no_call", "{m}");
    }
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
