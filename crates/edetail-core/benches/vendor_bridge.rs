//! The bridge path of each vendor container call beside a plain edetail.js call, on a real
//! device (SQLite WAL, synchronous FULL as shipped): `bridge::handle` from the JSON
//! string the page posts to the reply string, median and p99, interleaved in rounds so machine
//! noise hits every kind alike. Also the bare parse cost of a `veeva:` request beside parsing
//! the plain bridge message JSON (no I/O), which is what the vendor layer adds.
//!
//! Run: `cargo bench -p edetail-core --bench vendor_bridge`
//! (EDETAIL_BENCH_ROUNDS, EDETAIL_BENCH_N resize it).

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use edetail_bundle::testkit::SampleBundle;
use edetail_core::{Channel, Device, StartCall};
use serde_json::json;

use common::*;

fn msg(method: &str, params: serde_json::Value) -> String {
    json!({"v": 1, "id": 7, "method": method, "params": params, "slide": "intro", "bundle": "com.example.sample"}).to_string()
}

fn main() {
    let rounds = env_usize("EDETAIL_BENCH_ROUNDS", 5);
    let n = env_usize("EDETAIL_BENCH_N", 200);
    let tmp = scratch("vendor-bridge");
    let device = Device::open(&tmp.path().join("data"), config()).expect("open");
    let zip = tmp.path().join("deck.zip");
    std::fs::write(&zip, SampleBundle::new().zip(Some(&key()))).expect("write zip");
    device.install_zip(&zip).expect("install");
    let (call, _) = device
        .start_call(StartCall {
            hcp_id: Some("hcp-bench".into()),
            channel: Channel::FaceToFace,
            bundle_id: "com.example.sample".into(),
            presentation_id: None,
            location: None,
        })
        .expect("call");
    let data = json!({"Track_Element_Id_vod__c": "hr-forest", "Track_Element_Type_vod__c": "chart", "Selected_Items_vod__c": "HR 0.78 (0.69-0.88)", "Usage_Duration_vod__c": 12});
    let veeva_save = format!("veeva:saveObjectV2(Call_Clickstream_vod__c),value({data}),callback(com_veeva_clm_createRecord)");
    let kinds: Vec<(&str, String)> = vec![
        ("edetail.js track (baseline)", msg("track", json!({"event": "veeva_clickstream", "data": data}))),
        ("veeva saveObjectV2 clickstream", msg("veeva.request", json!({"request": veeva_save}))),
        (
            "veeva saveObjectV2 (Engage id)",
            msg("veeva.request", json!({"request": veeva_save.replace("callback(com_veeva_clm_createRecord)", "42")})),
        ),
        (
            "veeva queryObject Key_Message (read)",
            msg(
                "veeva.request",
                json!({"request": "veeva:queryObject(Key_Message_vod__c),fields(ID,Media_File_Name_vod__c),where(WHERE Media_File_Name_vod__c = \"KM_EFFICACY.zip\"),callback(q)"}),
            ),
        ),
        (
            "veeva unsupported queryObject",
            msg("veeva.request", json!({"request": "veeva:queryObject(Address_vod__c),fields(ID),callback(q)"})),
        ),
        (
            "agnitio monitoringEvent custom",
            msg(
                "agnitio.invoke",
                json!({"api": "monitoringEvent", "params": json!({"type": "custom", "category": "chart", "label": "hr-forest", "value": "tap", "time": 1_795_000_000}).to_string()}),
            ),
        ),
        (
            "oce addAction",
            msg("oce.call", json!({"request": "addAction", "params": {"action__c": "tap", "pageid__c": "intro", "category__c": "chart"}})),
        ),
    ];

    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds * n); kinds.len()];
    for _ in 0..rounds {
        for (k, (_, m)) in kinds.iter().enumerate() {
            for _ in 0..n {
                let t = Instant::now();
                let reply = edetail_core::bridge::handle(&device, m);
                samples[k].push(t.elapsed());
                debug_assert!(reply.contains("\"ok\":true"), "{reply}");
            }
        }
    }
    let base_median = {
        let mut s = samples[0].clone();
        s.sort();
        pct(&s, 50.0)
    };
    println!("bridge path per call ({rounds} rounds x {n} calls each, interleaved; one open call; synchronous=FULL)");
    println!("{:<40} {:>10} {:>10} {:>14}", "call", "p50 us", "p99 us", "p50 / baseline");
    for (k, (name, _)) in kinds.iter().enumerate() {
        let mut s = samples[k].clone();
        s.sort();
        let (p50, p99) = (pct(&s, 50.0), pct(&s, 99.0));
        println!("{:<40} {:>10.1} {:>10.1} {:>13.2}x", name, us(p50), us(p99), us(p50) / us(base_median));
    }
    // A reply check outside the timed loop (debug_assert is off in bench builds).
    for (name, m) in &kinds {
        assert!(edetail_core::bridge::handle(&device, m).contains("\"ok\":true"), "{name} failed");
    }
    assert!(device.outbox().for_call(&call).expect("events").len() > rounds * n);

    // Parse only: what the vendor layer adds before any I/O.
    let plain = kinds[0].1.clone();
    let iters = 20_000;
    let (mut json_t, mut veeva_t) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(serde_json::from_str::<serde_json::Value>(std::hint::black_box(&plain)).expect("json"));
        }
        json_t.push(t.elapsed().as_secs_f64() * 1e9 / iters as f64);
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(edetail_core::vendor::veeva::parse(std::hint::black_box(&veeva_save)).expect("parse"));
        }
        veeva_t.push(t.elapsed().as_secs_f64() * 1e9 / iters as f64);
    }
    let (j, v) = (median_f(json_t), median_f(veeva_t));
    println!("parse only: bridge message JSON {j:.0} ns, veeva: request {v:.0} ns ({:.2}x)", v / j);
}
