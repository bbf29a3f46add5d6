//! Issue 15: the smallest step of the scale benchmark (`benches/scale.rs`), as a check that it
//! completes and that what it builds is served correctly (not timed: timings are the bench's).
//! A few thousand generated events from 6 devices in 3 territories, analysed; every dashboard
//! page answers, the HCP list pages through everyone, and each territory's feed carries at most
//! one plan per HCP met there.

use std::collections::{BTreeMap, BTreeSet};

use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_hub::scale::{BUNDLE_ID, Grown, ScaleSpec};
use edetail_hub::{Hub, HubConfig, serve_local};
use edetail_protocol::ChangePage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smallest_scale_step_builds_and_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(&[7; 32]);
    let hub = Hub::open(HubConfig::local(dir.path().join("hub"), vec![key.public()])).unwrap();
    let spec = ScaleSpec { devices: 6, territories: 3, seed: 42 };
    let (hub, grown, report) = tokio::task::spawn_blocking(move || {
        hub.publish_zip(&SampleBundle::new().zip(Some(&key)), &[]).unwrap();
        let mut grown = Grown::start(&hub, &spec).unwrap();
        let report = grown.grow(&hub, 3_000, 150).unwrap();
        (hub, grown, report)
    })
    .await
    .unwrap();
    assert!(report.events >= 3_000 && report.calls > 100, "{report:?}");
    assert_eq!(report.calls_analysed, report.calls, "every generated call is analysable");

    let (url, _task) = serve_local(hub.clone()).await.unwrap();
    let h = hub.clone();
    let operator = tokio::task::spawn_blocking(move || h.add_operator("ops", 1, "cli:test")).await.unwrap().unwrap();
    let http = reqwest::Client::new();
    let get = |path: String| {
        let (http, operator, url) = (http.clone(), operator.clone(), url.clone());
        async move {
            let r = http.get(format!("{url}{path}")).bearer_auth(&operator).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.text().await.unwrap()
        }
    };
    for path in
        ["/dashboard", "/dashboard/channels", "/dashboard/sync", "/dashboard/decks/com.example.sample", "/dashboard/hcps?sort=calls"]
    {
        get(path.to_string()).await;
    }
    // The HCP list pages through every HCP once.
    let mut seen = BTreeSet::new();
    for page in 1.. {
        let html = get(format!("/dashboard/hcps?page={page}")).await;
        let ids: Vec<String> = html.split(r#"<tr data-hcp=""#).skip(1).map(|r| r.split('"').next().unwrap().to_string()).collect();
        if ids.is_empty() {
            break;
        }
        seen.extend(ids);
    }
    let h = hub.clone();
    let total = tokio::task::spawn_blocking(move || h.store().hcp_count()).await.unwrap().unwrap();
    assert_eq!(seen.len() as u64, total, "every HCP listed once over the pages");
    assert!(total > 100, "{total} HCPs");
    let first = get(format!("/dashboard/hcps/{}", seen.iter().next().unwrap())).await;
    assert!(first.contains(BUNDLE_ID) || first.contains("sample"), "an HCP page");

    // Each territory's feed: at most one plan per HCP (the current one).
    let mut per_territory: BTreeMap<&str, &edetail_hub::DeviceCredentials> = BTreeMap::new();
    for (creds, territory) in &grown.devices {
        per_territory.entry(territory.as_str()).or_insert(creds);
    }
    for (territory, creds) in per_territory {
        let (mut cursor, mut plans) = (String::from("0"), Vec::new());
        loop {
            let page: ChangePage =
                http.get(format!("{url}/v1/changes?since={cursor}")).bearer_auth(&creds.token).send().await.unwrap().json().await.unwrap();
            plans.extend(page.plans.iter().map(|p| serde_json::from_slice::<edetail_protocol::Plan>(&p.plan.0).unwrap().hcp_id));
            cursor = page.next_cursor;
            if !page.has_more {
                break;
            }
        }
        let distinct: BTreeSet<&String> = plans.iter().collect();
        assert!(!plans.is_empty(), "{territory} has plans");
        assert_eq!(distinct.len(), plans.len(), "{territory}: one plan per HCP in the feed");
    }

    // With the CRM's target lists, a rep's device receives the plans of her targets only.
    let (h, csv) = (hub.clone(), grown.targets_csv(150));
    let r = tokio::task::spawn_blocking(move || h.import_rep_targets(&csv)).await.unwrap().unwrap();
    assert_eq!((r.reps, r.targets, r.added), (6, 150, 150));
    let (creds, _) = &grown.devices[0];
    let page: ChangePage =
        http.get(format!("{url}/v1/changes?since=0")).bearer_auth(&creds.token).send().await.unwrap().json().await.unwrap();
    assert!(!page.has_more);
    let hcps: BTreeSet<u64> = page
        .plans
        .iter()
        .map(|p| serde_json::from_slice::<edetail_protocol::Plan>(&p.plan.0).unwrap().hcp_id["hcp-".len()..].parse().unwrap())
        .collect();
    assert!(!hcps.is_empty());
    assert!(hcps.iter().all(|h| h % 6 == 0), "device 0's rep gets her targets' plans only: {hcps:?}");
}
