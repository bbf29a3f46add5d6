//! Issue 15: several hub processes share one PostgreSQL analysis queue. Two hubs over one
//! database (each its own connection pool and analyser, as two processes) analyse the same
//! generated calls at once; what they write adds up to what one SQLite hub writes for the same
//! calls: every call counted once in the deck's statistics (merged, never lost) and in its
//! HCP's profile, one current plan per HCP and territory.

use std::collections::BTreeMap;
use std::sync::Arc;

use edetail_bundle::SecretKey;
use edetail_bundle::testkit::SampleBundle;
use edetail_hub::analytics::DeckStats;
use edetail_hub::blobs::BlobStore;
use edetail_hub::closed_loop::{DOC_DECK, DOC_HCP};
use edetail_hub::postgres::PgStore;
use edetail_hub::scale::{BUNDLE_ID, Grown, ScaleSpec};
use edetail_hub::testkit::TestDatabase;
use edetail_hub::{AnalyzerConfig, Hub, HubConfig};

/// What the analysis wrote, comparable across backends: the deck's statistics, each HCP's
/// call count, and the number of plans in each territory's feed.
fn outcome(hub: &Hub, territories: usize) -> (DeckStats, BTreeMap<String, u64>, Vec<usize>) {
    let store = hub.store();
    assert_eq!(store.pending_call_count().unwrap(), 0, "every call analysed");
    let deck = store.load_docs(&[(DOC_DECK.to_string(), BUNDLE_ID.to_string())]).unwrap().pop().unwrap().expect("deck statistics");
    let mut stats: DeckStats = serde_json::from_value(deck.doc).unwrap();
    stats.last_call_at = None;
    // Which call moved an HCP up depends on the order her calls are folded in, which two
    // concurrent workers do not fix (each call still counts once, checked below): the
    // respond counters are left out; where each HCP ended up on the ladder is compared instead.
    stats.respond = Default::default();
    let calls = store.list_docs(DOC_HCP).unwrap().into_iter().map(|d| (d.key, d.doc["calls"].as_u64().unwrap())).collect();
    let plans = (0..territories).map(|t| store.changes(&format!("t{t}"), 0, 100_000).unwrap().plans.len()).collect();
    (stats, calls, plans)
}

#[test]
fn two_hubs_on_one_postgresql_analyse_like_one_hub() {
    let key = SecretKey::from_seed(&[3; 32]);
    let spec = ScaleSpec { devices: 8, territories: 2, seed: 99 };
    let zip = SampleBundle::new().zip(Some(&key));

    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new();
    let pg_hub = || {
        Hub::with_store(
            Arc::new(PgStore::connect(&db.url, 4).unwrap()),
            BlobStore::open_local(dir.path()).unwrap(),
            vec![key.public()],
            AnalyzerConfig::generated().unwrap(),
        )
    };
    let (a, b) = (pg_hub(), pg_hub());
    a.publish_zip(&zip, &[]).unwrap();
    let mut grown = Grown::start(&a, &spec).unwrap();
    let report = grown.grow_shared(&a, std::slice::from_ref(&b), 4_000, 120).unwrap();
    assert_eq!(report.calls_analysed, report.calls);
    assert!(report.analysed_by.iter().all(|n| *n > 0), "both hubs analysed calls: {:?}", report.analysed_by);

    let sqlite_dir = tempfile::tempdir().unwrap();
    let one = Hub::open(HubConfig::local(sqlite_dir.path().join("hub"), vec![key.public()])).unwrap();
    one.publish_zip(&zip, &[]).unwrap();
    let mut same = Grown::start(&one, &spec).unwrap();
    let single = same.grow(&one, 4_000, 120).unwrap();
    assert_eq!((single.calls, single.events), (report.calls, report.events), "the same generated calls");

    let (shared, single) = (outcome(&a, 2), outcome(&one, 2));
    assert_eq!(shared.0.calls, report.calls, "every call counted once in the deck");
    assert_eq!(shared.0, single.0, "deck statistics merged from two hubs equal one hub's");
    assert_eq!(shared.1.values().sum::<u64>(), report.calls, "every call in its HCP's profile once");
    assert_eq!(shared.1, single.1);
    assert_eq!(shared.2, single.2, "one current plan per HCP and territory");
    assert_eq!(a.store().stage_counts().unwrap(), one.store().stage_counts().unwrap(), "every HCP on the same rung");
}
