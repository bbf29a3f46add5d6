//! One behavioural suite for every `HubStore`: each test runs against SQLite (`sqlite::NAME`)
//! and against a real PostgreSQL (`postgres::NAME`, a fresh database in the cluster that
//! `scripts/services` starts). Includes two store instances over one database (two hub
//! processes) and concurrent writers.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{SubsecRound, TimeZone, Utc};
use edetail_hub::postgres::PgStore;
use edetail_hub::sqlite::SqliteStore;
use edetail_hub::store::{
    AnalysisCommit, CheckedEvent, DocJson, DocMerge, DocWrite, FOREIGN_UUID, HubStore, MICROSITE_DEVICE, Microsite, NewBundleVersion,
    NewPlan, Prescription,
};
use edetail_hub::store::{Audited, NewAuditEntry, NewCredential, TokenRole};
use edetail_hub::testkit::TestDatabase;
use edetail_hub::{Error, Territory};
use edetail_protocol::WireEvent;
use serde_json::json;

/// Runs one SQL statement around the store: rows changed, or the server's error.
type RawSql = dyn Fn(&str) -> Result<u64, String>;

/// A store under test, and what keeps its database alive.
struct Subject {
    store: Arc<dyn HubStore>,
    /// Opens a second store over the same database (another hub process).
    reopen: Box<dyn Fn() -> Arc<dyn HubStore>>,
    /// Runs raw SQL on the store's database, around the store (the server's error on failure).
    sql: Box<RawSql>,
    _dir: tempfile::TempDir,
    _db: Option<Arc<TestDatabase>>,
}

fn sqlite() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let store: Arc<dyn HubStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let db_path = path.join(edetail_hub::sqlite::DB_FILE);
    let sql = Box::new(move |q: &str| {
        let c = rusqlite::Connection::open(&db_path).map_err(|e| e.to_string())?;
        c.execute(q, []).map(|n| n as u64).map_err(|e| e.to_string())
    });
    Subject { store, reopen: Box::new(move || Arc::new(SqliteStore::open(&path).unwrap())), sql, _dir: dir, _db: None }
}

fn postgres() -> Subject {
    let db = TestDatabase::new();
    let url = db.url.clone();
    let store: Arc<dyn HubStore> = Arc::new(PgStore::connect(&url, 8).unwrap());
    let db = Arc::new(db);
    let for_sql = db.clone();
    Subject {
        store,
        sql: Box::new(move |q: &str| for_sql.execute(q)),
        reopen: Box::new(move || Arc::new(PgStore::connect(&url, 8).unwrap())),
        _dir: tempfile::tempdir().unwrap(),
        _db: Some(db),
    }
}

fn wire(seq: i64) -> WireEvent {
    WireEvent {
        uuid: uuid::Uuid::new_v4().to_string(),
        seq,
        call_id: if seq % 2 == 0 { Some(format!("call-{}", seq / 10)) } else { None },
        kind: "slide_exit".into(),
        recorded_at: Utc::now().trunc_subsecs(3),
        session: 1,
        mono_ms: seq * 250,
        payload: json!({"slide": format!("s{seq}"), "dwell_ms": seq * 10, "nested": {"ok": true, "list": [1, 2.5, "x"]}}),
    }
}

fn valid(e: &WireEvent) -> CheckedEvent {
    CheckedEvent::Valid { event: e.clone(), recorded_at_corrected: e.recorded_at, payload_json: None }
}

fn version(id: &str, v: u64, product: &str, territories: &[&str], files: &[(&str, u64)]) -> NewBundleVersion {
    NewBundleVersion {
        bundle_id: id.into(),
        version: v,
        product: product.into(),
        manifest: format!("{{\"id\":\"{id}\",\"version\":{v}}}").into_bytes(),
        signature: vec![1, 2, 3],
        files: files.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
        zip_sha256: format!("{:064x}", v + 1000),
        zip_size: 4242,
        territories: territories.iter().map(|t| t.to_string()).collect(),
        publisher: Some("content-team".into()),
        published_at: Utc::now(),
        claim_id: None,
    }
}

fn sha(n: u64) -> String {
    format!("{n:064x}")
}

/// The watermark only moves over contiguous sequence numbers; gaps hold it back until filled,
/// and a rejected event fills its gap.
fn watermark_advances_over_contiguous_seqs_only(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "t", "h1", Utc::now(), None, None).unwrap();
    let (a, c) = (wire(1), wire(3));
    let o = st.apply_batch("d1", &[valid(&a), valid(&c)], 0, Utc::now()).unwrap();
    assert_eq!((o.accepted.len(), o.watermark), (2, 1));
    let b = CheckedEvent::Rejected { uuid: "b".into(), seq: 2, reason: "bad".into() };
    let o = st.apply_batch("d1", std::slice::from_ref(&b), 0, Utc::now()).unwrap();
    assert_eq!((o.rejected.len(), o.watermark), (1, 3));
    let o = st.apply_batch("d1", &[valid(&a), b], 0, Utc::now()).unwrap();
    assert_eq!((o.duplicates.len(), o.rejected.len(), o.watermark), (1, 1, 3));
    let stats = st.stats().unwrap();
    assert_eq!((stats.events_received, stats.duplicates_absorbed, stats.rejected), (2, 1, 1), "a re-rejection is not counted twice");
}

/// Stored events read back exactly as sent (payload, optional call id, times, order by seq).
fn events_round_trip_exactly(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "t", "h1", Utc::now(), None, None).unwrap();
    let events: Vec<WireEvent> = (1..=25).map(wire).collect();
    let batch: Vec<CheckedEvent> = events.iter().rev().map(valid).collect();
    let o = st.apply_batch("d1", &batch, 1500, Utc::now()).unwrap();
    assert_eq!((o.accepted.len(), o.watermark), (25, 25));
    assert_eq!(st.events_for_device("d1").unwrap(), events);
    let stats = st.stats().unwrap();
    assert_eq!(stats.devices[0].skew_ms, 1500);
    assert!(stats.devices[0].last_seen_at.is_some());
}

/// Duplicates inside one batch and across batches are absorbed and counted.
fn duplicates_within_and_across_batches(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "t", "h1", Utc::now(), None, None).unwrap();
    let e1 = wire(1);
    let e2 = wire(2);
    let o = st.apply_batch("d1", &[valid(&e1), valid(&e1), valid(&e2)], 0, Utc::now()).unwrap();
    assert_eq!(o.accepted, vec![e1.uuid.clone(), e2.uuid.clone()]);
    assert_eq!(o.duplicates, vec![e1.uuid.clone()]);
    let o = st.apply_batch("d1", &[valid(&e2), valid(&e1)], 0, Utc::now()).unwrap();
    assert_eq!(o.duplicates, vec![e2.uuid.clone(), e1.uuid.clone()]);
    assert_eq!(st.events_for_device("d1").unwrap().len(), 2);
}

/// A device reusing another device's event uuid is rejected with a reason, not absorbed.
fn another_devices_uuid_is_rejected(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "t", "h1", Utc::now(), None, None).unwrap();
    st.add_device("d2", "rep2", "t", "h2", Utc::now(), None, None).unwrap();
    let e = wire(1);
    st.apply_batch("d1", &[valid(&e)], 0, Utc::now()).unwrap();
    let o = st.apply_batch("d2", &[valid(&e)], 0, Utc::now()).unwrap();
    assert!(o.accepted.is_empty() && o.duplicates.is_empty());
    assert_eq!(o.rejected.len(), 1);
    assert_eq!(o.rejected[0].reason, FOREIGN_UUID);
    assert_eq!(o.watermark, 1, "the rejection still advances d2's watermark");
    assert!(st.events_for_device("d2").unwrap().is_empty());
    assert_eq!(st.events_for_device("d1").unwrap(), vec![e]);
}

fn unknown_device_batch_is_not_found(s: Subject) {
    let r = s.store.apply_batch("nope", &[valid(&wire(1))], 0, Utc::now());
    assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
}

/// Tokens find their device or publisher; publishers are unique by name.
fn tokens_find_devices_and_publishers(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep-7", "north", "tok-hash", Utc::now(), None, None).unwrap();
    let d = st.device_by_token("tok-hash").unwrap().unwrap();
    assert_eq!((d.id.as_str(), d.rep_id.as_str(), d.territory.as_str(), d.watermark), ("d1", "rep-7", "north", 0));
    assert!(st.device_by_token("other").unwrap().is_none());
    st.add_publisher("content", "pub-hash", Utc::now(), None).unwrap();
    assert_eq!(st.publisher_by_token("pub-hash").unwrap().as_deref(), Some("content"));
    assert!(matches!(st.add_publisher("content", "x", Utc::now(), None), Err(Error::BadRequest(_))));
    st.touch_device("d1", Utc::now(), Some(-250)).unwrap();
    assert_eq!(st.device_by_token("tok-hash").unwrap().unwrap().skew_ms, -250);
    st.touch_device("d1", Utc::now(), None).unwrap();
    assert_eq!(st.device_by_token("tok-hash").unwrap().unwrap().skew_ms, -250, "no clock sent: skew kept");
}

/// Versions must increase; the feed offers the latest entitled version per bundle, in feed order.
fn versions_increase_and_the_feed_offers_the_latest(s: Subject) {
    let st = &s.store;
    let s1 = st.insert_bundle_version(&version("a", 1, "cz", &["*"], &[(&sha(1), 10), (&sha(2), 20)]), None).unwrap();
    let s2 = st.insert_bundle_version(&version("b", 1, "gl", &["north"], &[(&sha(3), 30)]), None).unwrap();
    assert!(s2 > s1);
    for v in [1, 0] {
        let r = st.insert_bundle_version(&version("a", v, "cz", &["*"], &[]), None);
        assert!(matches!(r, Err(Error::VersionConflict { current: 1, .. })), "{r:?}");
    }
    assert_eq!(st.current_version("a").unwrap(), Some(1));
    assert_eq!(st.current_version("zzz").unwrap(), None);
    let north = st.changes("north", 0, 100).unwrap();
    assert_eq!(north.bundles.iter().map(|b| (b.bundle_id.as_str(), b.version)).collect::<Vec<_>>(), vec![("a", 1), ("b", 1)]);
    assert_eq!(north.bundles[0].total_size, 30);
    assert_eq!(north.bundles[0].manifest, b"{\"id\":\"a\",\"version\":1}");
    assert_eq!(north.next_cursor, s2);
    let south = st.changes("south", 0, 100).unwrap();
    assert_eq!(south.bundles.len(), 1, "b is north's only");
    assert_eq!(south.next_cursor, s2, "the head, even when nothing is visible");

    let s3 = st.insert_bundle_version(&version("a", 2, "cz", &["*"], &[(&sha(1), 10), (&sha(4), 40)]), None).unwrap();
    let after = st.changes("north", s2, 100).unwrap();
    assert_eq!(after.bundles.iter().map(|b| (b.bundle_id.as_str(), b.version)).collect::<Vec<_>>(), vec![("a", 2)]);
    assert_eq!(after.next_cursor, s3);
    let all = st.changes("north", 0, 100).unwrap();
    assert_eq!(all.bundles.iter().map(|b| (b.bundle_id.as_str(), b.version)).collect::<Vec<_>>(), vec![("b", 1), ("a", 2)]);
    let empty = st.changes("north", s3, 100).unwrap();
    assert!(empty.bundles.is_empty() && !empty.has_more && empty.next_cursor == s3);
}

/// Pages hold at most `limit` items and their cursors chain without gaps or repeats.
fn feed_pages_chain(s: Subject) {
    let st = &s.store;
    for i in 0..23 {
        st.insert_bundle_version(&version(&format!("deck{i:02}"), 1, "cz", &["*"], &[(&sha(i), 1)]), None).unwrap();
    }
    st.revoke("deck03", "withdrawn", Utc::now(), None).unwrap();
    let (mut cursor, mut seen, mut revoked, mut pages) = (0, Vec::new(), Vec::new(), 0);
    loop {
        let p = st.changes("east", cursor, 5).unwrap();
        assert!(p.bundles.len() + p.revocations.len() <= 5);
        seen.extend(p.bundles.iter().map(|b| b.bundle_id.clone()));
        revoked.extend(p.revocations.iter().map(|r| r.revocation.bundle_id.clone()));
        assert!(p.next_cursor > cursor || !p.has_more);
        cursor = p.next_cursor;
        pages += 1;
        if !p.has_more {
            break;
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(seen.len(), 22, "every unrevoked deck once");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 22);
    assert!(!seen.contains(&"deck03".to_string()));
    assert_eq!(revoked, vec!["deck03".to_string()]);
}

/// Blobs are entitled (with their size) only through an offered, unrevoked version; zips too.
fn entitlement_follows_territories_and_revocation(s: Subject) {
    let st = &s.store;
    st.insert_bundle_version(&version("a", 1, "cz", &["north"], &[(&sha(1), 11)]), None).unwrap();
    assert_eq!(st.blob_entitled("north", &sha(1)).unwrap(), Some(11));
    assert_eq!(st.blob_entitled("south", &sha(1)).unwrap(), None);
    assert_eq!(st.blob_entitled("north", &sha(9)).unwrap(), None);
    assert_eq!(st.bundle_zip("north", "a", 1).unwrap(), Some((format!("{:064x}", 1001), 4242)));
    assert_eq!(st.bundle_zip("south", "a", 1).unwrap(), None);
    assert_eq!(st.bundle_zip("north", "a", 2).unwrap(), None);
    let seq = st.revoke("a", "MLR withdrawal", Utc::now(), None).unwrap();
    assert_eq!(st.blob_entitled("north", &sha(1)).unwrap(), None);
    assert_eq!(st.bundle_zip("north", "a", 1).unwrap(), None);
    let p = st.changes("north", 0, 100).unwrap();
    assert!(p.bundles.is_empty());
    assert_eq!(p.revocations.len(), 1);
    assert_eq!((p.revocations[0].feed_seq, p.revocations[0].revocation.reason.as_str()), (seq, "MLR withdrawal"));
    assert!(st.changes("south", 0, 100).unwrap().revocations.is_empty(), "south never had it");
    assert!(matches!(st.revoke("unknown", "x", Utc::now(), None), Err(Error::NotFound(_))));
    // A higher version published after the revocation is offered again.
    st.insert_bundle_version(&version("a", 2, "cz", &["north"], &[(&sha(1), 11)]), None).unwrap();
    assert_eq!(st.blob_entitled("north", &sha(1)).unwrap(), Some(11));
}

/// Territories: created by devices or by operators, with the products they sell.
fn territories_and_products(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    st.add_device("d2", "rep", "north", "h2", Utc::now(), None, None).unwrap();
    st.set_territory("south", &["cardiozen".into(), "glucora".into()], Utc::now()).unwrap();
    st.set_territory("east", &["cardiozen".into()], Utc::now()).unwrap();
    let t = st.territories().unwrap();
    assert_eq!(
        t,
        vec![
            Territory { name: "east".into(), products: vec!["cardiozen".into()], devices: 0 },
            Territory { name: "north".into(), products: vec![], devices: 2 },
            Territory { name: "south".into(), products: vec!["cardiozen".into(), "glucora".into()], devices: 0 },
        ]
    );
    assert_eq!(st.territories_for_product("cardiozen").unwrap(), vec!["east".to_string(), "south".to_string()]);
    st.set_territory("east", &[], Utc::now()).unwrap();
    assert_eq!(st.territories_for_product("cardiozen").unwrap(), vec!["south".to_string()]);
    assert!(st.territories_for_product("other").unwrap().is_empty());
}

/// Two stores over one database (two hub processes) see each other's writes at once, and
/// concurrent batches of the same events through both store each event exactly once.
fn two_processes_share_one_database(s: Subject) {
    let a = s.store.clone();
    let b = (s.reopen)();
    a.add_device("d1", "rep", "t", "h1", Utc::now(), None, None).unwrap();
    assert!(b.device_by_token("h1").unwrap().is_some());
    let events: Vec<WireEvent> = (1..=200).map(wire).collect();
    let batches: Vec<Vec<CheckedEvent>> = events.chunks(50).map(|c| c.iter().map(valid).collect()).collect();
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let batches = batches.clone();
            std::thread::spawn(move || {
                let mut order: Vec<usize> = (0..batches.len()).collect();
                order.rotate_left(i % batches.len());
                order.iter().map(|&k| store.apply_batch("d1", &batches[k], 0, Utc::now()).unwrap()).collect::<Vec<_>>()
            })
        })
        .collect();
    let outcomes: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let accepted: usize = outcomes.iter().map(|o| o.accepted.len()).sum();
    let duplicates: usize = outcomes.iter().map(|o| o.duplicates.len()).sum();
    assert_eq!((accepted, duplicates), (200, 5 * 200));
    assert_eq!(b.events_for_device("d1").unwrap(), events);
    let stats = a.stats().unwrap();
    assert_eq!((stats.devices[0].watermark, stats.events_received, stats.duplicates_absorbed), (200, 200, 1000));

    // Concurrent publishes through both: distinct, increasing feed numbers; one winner per version.
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            std::thread::spawn(move || store.insert_bundle_version(&version("race", 1 + (i % 4) as u64, "cz", &["*"], &[]), None))
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let won: Vec<i64> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    assert!(results.iter().all(|r| matches!(r, Ok(_) | Err(Error::VersionConflict { .. }))), "{results:?}");
    assert_eq!(won.iter().collect::<BTreeSet<_>>().len(), won.len(), "feed numbers are unique");
    assert!(!won.is_empty() && won.len() <= 4);
    let feed = b.changes("x", 0, 100).unwrap();
    assert_eq!(feed.bundles.len(), 1, "only the latest version is offered");
    assert_eq!(feed.bundles[0].version, a.current_version("race").unwrap().unwrap());
}

/// Re-opening a migrated database keeps its data and does not migrate again.
fn reopening_keeps_everything(s: Subject) {
    s.store.add_device("d1", "rep", "t", "h1", Utc::now(), None, None).unwrap();
    s.store.apply_batch("d1", &[valid(&wire(1))], 0, Utc::now()).unwrap();
    let again = (s.reopen)();
    assert_eq!(again.stats().unwrap().events_received, 1);
    assert_eq!(again.territories().unwrap().len(), 1);
}

fn call_event(seq: i64, call: &str, kind: &str) -> WireEvent {
    WireEvent {
        uuid: uuid::Uuid::new_v4().to_string(),
        seq,
        call_id: Some(call.into()),
        kind: kind.into(),
        recorded_at: Utc::now().trunc_subsecs(3),
        session: 1,
        mono_ms: seq * 1000,
        payload: json!({"hcp_id": "hcp-1", "bundle_id": "b", "bundle_version": 1, "channel": "face_to_face"}),
    }
}

fn commit(queue_id: i64, docs: Vec<DocWrite>) -> AnalysisCommit {
    AnalysisCommit {
        queue_ids: vec![queue_id],
        docs,
        merges: vec![],
        summaries: vec![],
        plans: vec![],
        microsites: vec![],
        now: Utc::now(),
    }
}

fn doc(kind: &str, key: &str, v: serde_json::Value, expected_version: i64) -> DocWrite {
    DocWrite { kind: kind.into(), key: key.into(), doc: DocJson::of(&v).unwrap(), expected_version }
}

/// A call is queued for analysis when its end is stored, once: a duplicate delivery, and a
/// later second terminal event for the same call, queue nothing more.
fn finished_calls_are_queued_once(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    let start = call_event(1, "c1", "call_started");
    let end = call_event(2, "c1", "call_ended");
    st.apply_batch("d1", &[valid(&start)], 0, Utc::now()).unwrap();
    assert!(st.pending_calls(10).unwrap().is_empty(), "an open call is not analysed");
    st.apply_batch("d1", &[valid(&end)], 0, Utc::now()).unwrap();
    st.apply_batch("d1", &[valid(&start), valid(&end)], 0, Utc::now()).unwrap();
    let q = st.pending_calls(10).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].device_id.as_str(), q[0].call_id.as_str(), q[0].territory.as_str()), ("d1", "c1", "north"));
    assert_eq!(st.pending_call_count().unwrap(), 1);
    assert_eq!(st.pending_calls_by_device().unwrap(), [("d1".to_string(), 1)]);
    let events = st.call_events("d1", "c1").unwrap();
    assert_eq!(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["call_started", "call_ended"]);
    assert_eq!(events[0].payload["hcp_id"], "hcp-1");
    assert!(st.commit_analysis(&commit(q[0].queue_id, vec![])).unwrap());
    assert_eq!(st.pending_call_count().unwrap(), 0);
    assert!(st.pending_calls_by_device().unwrap().is_empty());
    st.apply_batch("d1", &[valid(&call_event(3, "c1", "call_interrupted"))], 0, Utc::now()).unwrap();
    assert!(st.pending_calls(10).unwrap().is_empty(), "a call is analysed once");
    // A failing call is retried a bounded number of times, then left aside with its error.
    st.apply_batch("d1", &[valid(&call_event(4, "c2", "call_ended"))], 0, Utc::now()).unwrap();
    let q = st.pending_calls(10).unwrap();
    for _ in 0..edetail_hub::store::MAX_ANALYSIS_ATTEMPTS {
        st.analysis_failed(q[0].queue_id, "deck manifest missing").unwrap();
    }
    assert!(st.pending_calls(10).unwrap().is_empty());
    assert_eq!(st.pending_call_count().unwrap(), 1, "still counted as pending for operators");
    // Per device, for the dashboard's sync health.
    st.add_device("d2", "rep", "north", "h2", Utc::now(), None, None).unwrap();
    let (e1, e2) = (call_event(1, "x1", "call_ended"), call_event(2, "x2", "call_ended"));
    st.apply_batch("d2", &[valid(&e1), valid(&e2)], 0, Utc::now()).unwrap();
    assert_eq!(st.pending_calls_by_device().unwrap(), [("d1".to_string(), 1), ("d2".to_string(), 2)]);
}

/// Derived documents are written with optimistic versions: a writer that read a stale
/// version, or a second analysis of the same call, writes nothing.
fn analysis_commits_are_optimistic(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    for (i, c) in ["c1", "c2", "c3"].iter().enumerate() {
        st.apply_batch("d1", &[valid(&call_event(i as i64 + 1, c, "call_ended"))], 0, Utc::now()).unwrap();
    }
    let q = st.pending_calls(10).unwrap();
    assert_eq!(q.len(), 3);
    let keys = vec![("hcp".to_string(), "hcp-1".to_string())];
    assert_eq!(st.load_docs(&keys).unwrap(), vec![None]);
    assert!(st.commit_analysis(&commit(q[0].queue_id, vec![doc("hcp", "hcp-1", json!({"calls": 1}), 0)])).unwrap());
    // Someone else created the document meanwhile: a create loses.
    assert!(!st.commit_analysis(&commit(q[1].queue_id, vec![doc("hcp", "hcp-1", json!({"calls": 99}), 0)])).unwrap());
    let d = st.load_docs(&keys).unwrap().pop().unwrap().unwrap();
    assert_eq!((d.doc.clone(), d.version), (json!({"calls": 1}), 1));
    assert_eq!(st.pending_calls(10).unwrap().len(), 2, "the losing call stays queued");
    // Stale version loses; the current one wins.
    assert!(!st.commit_analysis(&commit(q[1].queue_id, vec![doc("hcp", "hcp-1", json!({"calls": 99}), 7)])).unwrap());
    assert!(st.commit_analysis(&commit(q[1].queue_id, vec![doc("hcp", "hcp-1", json!({"calls": 2}), 1)])).unwrap());
    // The same call twice: the second commit writes nothing.
    assert!(!st.commit_analysis(&commit(q[1].queue_id, vec![doc("hcp", "hcp-1", json!({"calls": 3}), 2)])).unwrap());
    let all = st.list_docs("hcp").unwrap();
    assert_eq!((all.len(), all[0].doc.clone(), all[0].version), (1, json!({"calls": 2}), 2));
    assert!(st.list_docs("deck").unwrap().is_empty());
}

/// Two hub processes race to analyse the same calls: each call is committed exactly once.
fn concurrent_analysers_commit_each_call_once(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    let n = 12;
    for i in 0..n {
        st.apply_batch("d1", &[valid(&call_event(i + 1, &format!("c{i}"), "call_ended"))], 0, Utc::now()).unwrap();
    }
    let (a, b) = (s.store.clone(), (s.reopen)());
    let workers: Vec<_> = [a, b]
        .into_iter()
        .map(|store| {
            std::thread::spawn(move || {
                let mut wins = 0;
                loop {
                    let q = store.pending_calls(4).unwrap();
                    if q.is_empty() {
                        return wins;
                    }
                    for c in q {
                        let keys = vec![("deck".to_string(), "b".to_string())];
                        let cur = store.load_docs(&keys).unwrap().pop().unwrap();
                        let (count, version) = cur.map(|d| (d.doc["calls"].as_i64().unwrap(), d.version)).unwrap_or((0, 0));
                        if store.commit_analysis(&commit(c.queue_id, vec![doc("deck", "b", json!({"calls": count + 1}), version)])).unwrap()
                        {
                            wins += 1;
                        }
                    }
                }
            })
        })
        .collect();
    let wins: i64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(wins, n, "every call committed once");
    let d = st.load_docs(&[("deck".to_string(), "b".to_string())]).unwrap().pop().unwrap().unwrap();
    assert_eq!(d.doc["calls"], n, "no lost update");
}

/// The test's merge rule: counters add up.
fn add_counts(stored: Option<&serde_json::Value>, delta: &serde_json::Value) -> edetail_hub::Result<serde_json::Value> {
    let n = |v: Option<&serde_json::Value>, k: &str| v.and_then(|v| v[k].as_i64()).unwrap_or(0);
    Ok(json!({"calls": n(stored, "calls") + n(Some(delta), "calls"), "views": n(stored, "views") + n(Some(delta), "views")}))
}

fn merge(key: &str, calls: i64, views: i64) -> DocMerge {
    DocMerge { kind: "deck".into(), key: key.into(), delta: json!({"calls": calls, "views": views}), merge: add_counts }
}

/// A batch commit: all its calls are marked done together with its documents, plans and
/// merged counters, or nothing is written (one of its calls was done already).
fn batch_commits_are_all_or_nothing(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    for i in 0..4 {
        let c = format!("c{i}");
        st.apply_batch(
            "d1",
            &[valid(&call_event(2 * i + 1, &c, "call_started")), valid(&call_event(2 * i + 2, &c, "call_ended"))],
            0,
            Utc::now(),
        )
        .unwrap();
    }
    let q = st.pending_calls(10).unwrap();
    assert_eq!(q.len(), 4);
    // Every call's events in one read, in the order asked; an unknown call has none.
    let asked: Vec<(String, String)> = ["c2", "nope", "c0"].iter().map(|c| ("d1".to_string(), c.to_string())).collect();
    let events = st.calls_events(&asked).unwrap();
    assert_eq!(events.iter().map(Vec::len).collect::<Vec<_>>(), [2, 0, 2]);
    assert_eq!((events[0][0].seq, events[0][1].seq, events[2][0].seq), (5, 6, 1));
    assert_eq!(events[2][1].kind, "call_ended");
    // Calls 0 and 1 together, with a plan and a merged counter.
    let mut c = commit(q[0].queue_id, vec![doc("hcp", "hcp-1", json!({"calls": 2}), 0)]);
    c.queue_ids.push(q[1].queue_id);
    c.merges.push(merge("b", 2, 5));
    c.plans.push(new_plan("north", "hcp-1", "p1"));
    assert!(st.commit_analysis(&c).unwrap());
    assert_eq!(st.pending_call_count().unwrap(), 2);
    // Calls 1 (done already) and 2: nothing of it is written.
    let mut c = commit(q[2].queue_id, vec![doc("hcp", "hcp-2", json!({"calls": 1}), 0)]);
    c.queue_ids.push(q[1].queue_id);
    c.merges.push(merge("b", 2, 100));
    c.plans.push(new_plan("north", "hcp-2", "p2"));
    assert!(!st.commit_analysis(&c).unwrap());
    assert_eq!(st.pending_call_count().unwrap(), 2, "call 2 stays queued");
    assert_eq!(st.load_docs(&[("hcp".into(), "hcp-2".into())]).unwrap(), vec![None]);
    let deck = st.load_docs(&[("deck".into(), "b".into())]).unwrap().pop().unwrap().unwrap();
    assert_eq!(deck.doc, json!({"calls": 2, "views": 5}));
    let feed = st.changes("north", 0, 100).unwrap();
    assert_eq!(feed.plans.iter().map(|p| p.plan.clone()).collect::<Vec<_>>(), [b"{\"plan_id\":\"p1\"}".to_vec()]);
    // A merge adds to what is stored.
    let mut c = commit(q[2].queue_id, vec![]);
    c.queue_ids.push(q[3].queue_id);
    c.merges.push(merge("b", 2, 7));
    assert!(st.commit_analysis(&c).unwrap());
    let deck = st.load_docs(&[("deck".into(), "b".into())]).unwrap().pop().unwrap().unwrap();
    assert_eq!((deck.doc.clone(), deck.version), (json!({"calls": 4, "views": 12}), 2));
}

/// Workers in two hub processes commit batches that add to the same counters at once: every
/// commit succeeds the first time (no optimistic conflict on merged documents) and no
/// addition is lost.
fn merged_documents_add_up_under_concurrent_commits(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    let n = 40;
    for i in 0..n {
        st.apply_batch("d1", &[valid(&call_event(i + 1, &format!("c{i}"), "call_ended"))], 0, Utc::now()).unwrap();
    }
    let ids: Vec<i64> = st.pending_calls(n as usize).unwrap().iter().map(|c| c.queue_id).collect();
    let (a, b) = (s.store.clone(), (s.reopen)());
    let workers: Vec<_> = [a.clone(), b.clone(), a, b]
        .into_iter()
        .enumerate()
        .map(|(w, store)| {
            let mine: Vec<i64> = ids.iter().copied().skip(w).step_by(4).collect();
            std::thread::spawn(move || {
                mine.chunks(2)
                    .map(|pair| {
                        let mut c = commit(pair[0], vec![]);
                        c.queue_ids.extend(&pair[1..]);
                        // Both documents, in the same order in every commit.
                        c.merges = vec![merge("b", pair.len() as i64, 3), merge("c", 1, 0)];
                        store.commit_analysis(&c).unwrap()
                    })
                    .collect::<Vec<bool>>()
            })
        })
        .collect();
    let results: Vec<bool> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert_eq!(results.len(), n as usize / 2);
    assert!(results.iter().all(|ok| *ok), "no merge conflicts: {results:?}");
    let docs = st.load_docs(&[("deck".into(), "b".into()), ("deck".into(), "c".into())]).unwrap();
    assert_eq!(docs[0].as_ref().unwrap().doc, json!({"calls": n, "views": 3 * n / 2}));
    assert_eq!(docs[1].as_ref().unwrap().doc, json!({"calls": n / 2, "views": 0}));
    assert_eq!(st.pending_call_count().unwrap(), 0);
}

fn new_plan(territory: &str, hcp: &str, id: &str) -> NewPlan {
    NewPlan {
        territory: territory.into(),
        hcp_id: hcp.into(),
        bundle_id: "b".into(),
        plan_id: id.into(),
        stage: "aware".into(),
        plan: format!("{{\"plan_id\":\"{id}\"}}").into_bytes(),
        signature: vec![9, 9],
    }
}

/// Issue 15: the dashboard's HCP lists and counts come from summaries written with the profile:
/// filters (stage, product, segment, id prefix, also with LIKE wildcards in it) combine, every
/// order pages stably with the right total, counts per stage and channel reach are exact,
/// replacing a summary replaces its stages and channels, old profiles are found for summarising,
/// and erasure removes every trace.
fn hcp_summaries_list_count_and_erase(s: Subject) {
    use edetail_hub::store::{HcpQuery, HcpSort, HcpSummary};
    let st = &s.store;
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    let ends: Vec<CheckedEvent> = (1..=3).map(|i| valid(&call_event(i, &format!("c{i}"), "call_ended"))).collect();
    st.apply_batch("d1", &ends, 0, Utc::now()).unwrap();
    let t = |d: i64| Some(Utc::now().trunc_subsecs(0) - chrono::Duration::days(d));
    let summary = |id: &str, calls: u64, last: Option<chrono::DateTime<Utc>>, stages: &[(&str, &str)], channels: &[&str]| HcpSummary {
        hcp_id: id.into(),
        calls,
        last_call_at: last,
        top_topic: Some("efficacy".into()),
        stages: stages.iter().map(|(p, s)| (p.to_string(), s.to_string())).collect(),
        channels: channels.iter().map(|c| c.to_string()).collect(),
        experiment: vec![],
    };
    let mut all = vec![
        summary("hcp-a", 3, t(1), &[("cz", "aware"), ("rx", "convinced")], &["face_to_face"]),
        summary("hcp-b", 7, t(5), &[("cz", "convinced")], &["face_to_face", "remote"]),
        summary("hcp-c", 7, None, &[("cz", "aware")], &[]),
        summary("x%_1", 1, t(2), &[("rx", "aware")], &["remote"]),
    ];
    all.extend((0..60).map(|i| summary(&format!("bulk-{i:02}"), 1, t(10), &[("cz", "unaware")], &["face_to_face"])));
    let q = st.pending_calls(10).unwrap();
    let mut c = commit(q[0].queue_id, vec![]);
    c.summaries = all[..2].to_vec();
    assert!(st.commit_analysis(&c).unwrap(), "summaries are written with the analysis");
    st.put_hcp_summaries(&all[2..]).unwrap();
    st.set_hcp_segments(&[("hcp-a".into(), "gp".into()), ("hcp-c".into(), "cardio".into())], Utc::now()).unwrap();

    let ids = |q: HcpQuery| -> (Vec<String>, u64) {
        let p = st.hcp_page(&HcpQuery { limit: 100, ..q }).unwrap();
        (p.rows.iter().map(|(h, _)| h.hcp_id.clone()).collect(), p.total)
    };
    let q = HcpQuery::default;
    // Territories: those of the devices that called on her (hcp-a: north and south).
    st.add_device("d2", "rep2", "south", "h2", Utc::now(), None, None).unwrap();
    st.apply_batch("d1", &[valid(&started(4, "c4", "hcp-a"))], 0, Utc::now()).unwrap();
    st.apply_batch("d2", &[valid(&started(1, "c5", "hcp-a")), valid(&started(2, "c6", "hcp-b"))], 0, Utc::now()).unwrap();
    assert_eq!(ids(HcpQuery { territory: Some("south".into()), ..q() }).0, ["hcp-a", "hcp-b"]);
    assert_eq!(ids(HcpQuery { territory: Some("north".into()), stage: Some("aware".into()), ..q() }).0, ["hcp-a"]);
    assert_eq!(ids(HcpQuery { territory: Some("west".into()), ..q() }).1, 0);
    let terr = st.hcp_territories(&["hcp-a".into(), "hcp-b".into(), "hcp-c".into()]).unwrap();
    assert_eq!(terr.get("hcp-a").map(Vec::as_slice), Some(&["north".to_string(), "south".to_string()][..]));
    assert_eq!(terr.get("hcp-b").map(Vec::as_slice), Some(&["south".to_string()][..]));
    assert!(!terr.contains_key("hcp-c"), "no call, no territory");
    assert_eq!(st.device_territories().unwrap(), ["north", "south"]);
    assert_eq!(ids(HcpQuery { stage: Some("aware".into()), ..q() }).0, ["hcp-a", "hcp-c", "x%_1"]);
    assert_eq!(ids(HcpQuery { stage: Some("aware".into()), product: Some("cz".into()), ..q() }).0, ["hcp-a", "hcp-c"]);
    assert_eq!(ids(HcpQuery { product: Some("rx".into()), ..q() }).0, ["hcp-a", "x%_1"]);
    assert_eq!(ids(HcpQuery { segment: Some("cardio".into()), ..q() }).0, ["hcp-c"]);
    assert_eq!(ids(HcpQuery { id_prefix: Some("hcp-".into()), ..q() }).0, ["hcp-a", "hcp-b", "hcp-c"]);
    assert_eq!(ids(HcpQuery { id_prefix: Some("x%_".into()), ..q() }).0, ["x%_1"], "wildcards are literal");
    assert_eq!(ids(HcpQuery { id_prefix: Some("%".into()), ..q() }).1, 0);
    assert_eq!(ids(HcpQuery { sort: HcpSort::Calls, id_prefix: Some("hcp".into()), ..q() }).0, ["hcp-b", "hcp-c", "hcp-a"]);
    assert_eq!(
        ids(HcpQuery { sort: HcpSort::LastCall, stage: Some("aware".into()), ..q() }).0,
        ["hcp-a", "x%_1", "hcp-c"],
        "latest first, never called last"
    );
    let page = st.hcp_page(&HcpQuery { limit: 50, offset: 50, ..q() }).unwrap();
    assert_eq!((page.rows.len(), page.total), (14, 64), "the second page of 64");
    let (hcp_a, segment) = &st.hcp_page(&HcpQuery { id_prefix: Some("hcp-a".into()), ..q() }).unwrap().rows[0];
    assert_eq!((hcp_a, segment.as_deref()), (&HcpSummary { channels: vec![], ..all[0].clone() }, Some("gp")));

    let counts = st.stage_counts().unwrap();
    assert_eq!(counts, [("aware".to_string(), 3), ("convinced".into(), 2), ("unaware".into(), 60)]);
    assert_eq!(st.channel_reach().unwrap(), [("face_to_face".to_string(), 62), ("remote".into(), 2)]);
    assert_eq!(st.hcp_count().unwrap(), 64);
    // A new summary replaces the old one whole.
    st.put_hcp_summaries(&[summary("hcp-b", 8, t(0), &[("cz", "advocate")], &["email"])]).unwrap();
    assert_eq!(ids(HcpQuery { stage: Some("convinced".into()), ..q() }).0, ["hcp-a"]);
    assert_eq!(st.channel_reach().unwrap(), [("email".to_string(), 1), ("face_to_face".into(), 61), ("remote".into(), 1)]);

    // Profiles analysed before summaries existed are found until summarised.
    let q2 = st.pending_calls(10).unwrap();
    let c = commit(q2[0].queue_id, vec![doc("hcp", "hcp-old", json!({"hcp_id": "hcp-old", "calls": 2}), 0)]);
    assert!(st.commit_analysis(&c).unwrap());
    let old: Vec<String> = st.unsummarised_profiles(10).unwrap().into_iter().map(|d| d.key).collect();
    assert_eq!(old, ["hcp-old"]);
    st.put_hcp_summaries(&[summary("hcp-old", 2, None, &[], &[])]).unwrap();
    assert!(st.unsummarised_profiles(10).unwrap().is_empty());

    st.erase_hcp("hcp-a", Utc::now(), None).unwrap();
    assert_eq!(ids(HcpQuery { id_prefix: Some("hcp-a".into()), ..q() }).1, 0, "erasure removes the summary");
    assert_eq!(st.stage_counts().unwrap().iter().find(|(s, _)| s == "aware").unwrap().1, 2);
    assert_eq!(st.channel_reach().unwrap()[1], ("face_to_face".to_string(), 60));
}

/// Issue 15: workers of several hub processes share the analysis queue. A claim takes calls no
/// other worker holds (concurrent claimers from two store handles, as two hub processes, never
/// get the same call), an owner's own claims are renewed, an expired lease frees them, a failed
/// analysis releases its call, and an analysed call is never claimed again.
fn queue_claims_are_exclusive_and_expire(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    const CALLS: i64 = 60;
    let ends: Vec<CheckedEvent> = (1..=CALLS).map(|i| valid(&call_event(i, &format!("c{i}"), "call_ended"))).collect();
    st.apply_batch("d1", &ends, 0, Utc::now()).unwrap();
    let now = Utc::now();
    let lease = chrono::Duration::minutes(5);

    // Four workers over two handles claim concurrently until the queue is taken.
    let other = (s.reopen)();
    let handles: Vec<Arc<dyn HubStore>> = vec![st.clone(), other.clone(), st.clone(), other];
    let claimed: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(w, store)| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        // Its own claims come back first (renewed), then up to 4 more.
                        let got = store.claim_calls(mine.len() + 4, &format!("worker-{w}"), now, lease).unwrap();
                        let fresh: Vec<i64> = got.iter().map(|c| c.queue_id).filter(|id| !mine.contains(id)).collect();
                        if fresh.is_empty() {
                            return mine;
                        }
                        mine.extend(fresh);
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let all: Vec<i64> = claimed.iter().flatten().copied().collect();
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), CALLS as usize, "no call claimed by two workers: {claimed:?}");
    assert_eq!(distinct.len(), CALLS as usize, "every call claimed");

    // Nothing left for a newcomer while the leases run; its own claims come back to an owner.
    assert!(st.claim_calls(10, "newcomer", now, lease).unwrap().is_empty());
    // (Which worker got how many depends on scheduling; one that got at least two is used.)
    let w = claimed.iter().position(|c| c.len() >= 2).expect("a worker claimed two calls");
    let owner = format!("worker-{w}");
    let held: BTreeSet<i64> = claimed[w].iter().copied().collect();
    let again: BTreeSet<i64> = st.claim_calls(CALLS as usize, &owner, now, lease).unwrap().iter().map(|c| c.queue_id).collect();
    assert_eq!(again, held, "an owner renews its own claims and takes no one else's");
    let c = &st.claim_calls(1, &owner, now, lease).unwrap()[0];
    assert_eq!((c.device_id.as_str(), c.territory.as_str()), ("d1", "north"), "claimed calls carry what analysis needs");

    // A failed analysis releases its call; an analysed one is gone for good.
    let (failed, done) = (claimed[w][0], claimed[w][1]);
    st.analysis_failed(failed, "boom").unwrap();
    assert!(st.commit_analysis(&commit(done, vec![])).unwrap());
    let got: Vec<i64> = st.claim_calls(10, "newcomer", now, lease).unwrap().iter().map(|c| c.queue_id).collect();
    assert_eq!(got, [failed], "the failed call is free again; the analysed one is not");

    // When the leases end, a newcomer takes what is left (a dead worker's calls).
    let later = now + lease + chrono::Duration::seconds(1);
    let left = st.claim_calls(CALLS as usize, "newcomer", later, lease).unwrap();
    assert_eq!(left.len(), CALLS as usize - 1, "every call but the analysed one");
}

/// Plans take feed numbers and travel only in their territory's feed, after the cursor; a new
/// plan for an HCP and deck replaces the one before in the feed.
fn plans_travel_in_their_territory_feed(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    st.insert_bundle_version(&version("b", 1, "cz", &["*"], &[]), None).unwrap();
    st.apply_batch("d1", &[valid(&call_event(1, "c1", "call_ended")), valid(&call_event(2, "c2", "call_ended"))], 0, Utc::now()).unwrap();
    let q = st.pending_calls(10).unwrap();
    let mut c = commit(q[0].queue_id, vec![]);
    c.plans = vec![new_plan("north", "hcp-1", "p1"), new_plan("south", "hcp-9", "p9")];
    assert!(st.commit_analysis(&c).unwrap());
    let north = st.changes("north", 0, 100).unwrap();
    assert_eq!((north.bundles.len(), north.plans.len()), (1, 1));
    assert_eq!(north.plans[0].plan, b"{\"plan_id\":\"p1\"}".to_vec());
    assert_eq!(north.plans[0].signature, vec![9, 9]);
    assert!(north.plans[0].feed_seq > north.bundles[0].feed_seq);
    assert_eq!(north.next_cursor, north.plans[0].feed_seq.max(st.changes("south", 0, 100).unwrap().plans[0].feed_seq));
    let mut c = commit(q[1].queue_id, vec![]);
    c.plans = vec![new_plan("north", "hcp-1", "p2")];
    assert!(st.commit_analysis(&c).unwrap());
    let after = st.changes("north", north.next_cursor, 100).unwrap();
    assert_eq!((after.bundles.len(), after.plans.len()), (0, 1), "only the new plan after the cursor");
    // Issue 15: the new plan replaced p1: a tablet reading the feed from the start gets only
    // the HCP's current plan for the deck.
    let fresh = st.changes("north", 0, 100).unwrap();
    let ids: Vec<Vec<u8>> = fresh.plans.iter().map(|p| p.plan.clone()).collect();
    assert_eq!(ids, [b"{\"plan_id\":\"p2\"}".to_vec()], "only the current plan in the feed");
    assert_eq!(st.changes("south", 0, 100).unwrap().plans.len(), 1, "another territory's plan stays");
    let one = st.changes("north", 0, 1).unwrap();
    assert!(one.has_more && one.plans.is_empty() && one.bundles.len() == 1, "pages chain over plans too");
    assert_eq!(st.latest_plan("hcp-1", "b").unwrap().unwrap().0, b"{\"plan_id\":\"p2\"}".to_vec());
    assert_eq!(st.latest_plan("hcp-9", "other").unwrap(), None);
    // The newest plan of an HCP across bundles.
    assert_eq!(st.newest_plan_of_hcp("hcp-1").unwrap().unwrap().0, b"{\"plan_id\":\"p2\"}".to_vec());
    st.apply_batch("d1", &[valid(&call_event(3, "c3", "call_ended"))], 0, Utc::now()).unwrap();
    let q = st.pending_calls(10).unwrap();
    let mut c = commit(q[0].queue_id, vec![]);
    c.plans = vec![NewPlan { bundle_id: "other".into(), ..new_plan("north", "hcp-1", "p3") }];
    assert!(st.commit_analysis(&c).unwrap());
    assert_eq!(st.newest_plan_of_hcp("hcp-1").unwrap().unwrap().0, b"{\"plan_id\":\"p3\"}".to_vec());
    assert_eq!(st.latest_plan("hcp-1", "b").unwrap().unwrap().0, b"{\"plan_id\":\"p2\"}".to_vec(), "per bundle unchanged");
    assert_eq!(st.changes("north", 0, 100).unwrap().plans.len(), 2, "one current plan per deck");
    assert_eq!(st.newest_plan_of_hcp("hcp-7").unwrap(), None);
}

/// A microsite is found by its token's hash only; a visit is stored as a whole call of the
/// hub's microsite pseudo-device, counted and queued for analysis with the microsite's territory.
fn microsite_visits_are_recorded_and_queued(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    st.apply_batch("d1", &[valid(&call_event(1, "c1", "call_ended"))], 0, Utc::now()).unwrap();
    let q = st.pending_calls(10).unwrap();
    let now = Utc::now().trunc_subsecs(0);
    let m = Microsite {
        id: "ms-1".into(),
        token_sha256: sha(77),
        hcp_id: "hcp-1".into(),
        territory: "north".into(),
        bundle_id: "b".into(),
        bundle_version: 3,
        slides: vec!["safety-ae".into(), "tolerability".into()],
        topics: vec!["safety".into()],
        reason: "follow-up request: safety".into(),
        created_at: now,
        expires_at: now + chrono::Duration::days(14),
        views: 0,
    };
    let mut c = commit(q[0].queue_id, vec![]);
    c.microsites = vec![m.clone()];
    assert!(st.commit_analysis(&c).unwrap());
    assert_eq!(st.microsite_by_token(&sha(77)).unwrap(), Some(m.clone()));
    assert_eq!(st.microsite_by_token(&sha(78)).unwrap(), None);
    assert_eq!(st.microsites_for("hcp-1").unwrap(), vec![m.clone()]);
    assert!(st.microsites_for("hcp-2").unwrap().is_empty());
    let events = vec![
        (
            "call_started".to_string(),
            json!({"hcp_id": "hcp-1", "channel": "microsite", "bundle_id": "b", "bundle_version": 3, "microsite_id": "ms-1"}),
        ),
        ("slide_enter".to_string(), json!({"slide": "safety-ae"})),
        ("slide_exit".to_string(), json!({"slide": "safety-ae", "dwell_ms": 12000})),
        ("call_ended".to_string(), json!({})),
    ];
    st.record_microsite_visit("ms-1", "visit-1", &events, Utc::now()).unwrap();
    st.record_microsite_visit("ms-1", "visit-2", &events[..1], Utc::now()).unwrap();
    assert!(matches!(st.record_microsite_visit("nope", "visit-3", &events, Utc::now()), Err(Error::NotFound(_))));
    assert_eq!(st.microsite_by_token(&sha(77)).unwrap().unwrap().views, 2);
    let stored = st.call_events(MICROSITE_DEVICE, "visit-1").unwrap();
    assert_eq!(stored.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(stored[2].payload["dwell_ms"], 12000);
    let q = st.pending_calls(10).unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!((q[0].device_id.as_str(), q[0].call_id.as_str(), q[0].territory.as_str()), (MICROSITE_DEVICE, "visit-1", "north"));
    assert_eq!(st.call_events(MICROSITE_DEVICE, "visit-2").unwrap()[0].seq, 5, "sequence numbers continue across visits");
    assert!(st.stats().unwrap().devices.iter().all(|d| d.device_id != MICROSITE_DEVICE), "stats list real devices only");
    assert_eq!(
        st.device_by_token("none:microsite").unwrap().map(|d| d.id),
        Some(MICROSITE_DEVICE.to_string()),
        "the pseudo-device row exists; its token hash is not hex, so no bearer token can hash to it"
    );
}

/// HCP segments and prescriptions are upserted and read back.
fn segments_and_prescriptions(s: Subject) {
    let st = &s.store;
    assert_eq!(st.set_hcp_segments(&[("h1".into(), "cardiology".into()), ("h2".into(), "gp".into())], Utc::now()).unwrap(), 2);
    st.set_hcp_segments(&[("h2".into(), "diabetology".into())], Utc::now()).unwrap();
    assert_eq!(st.hcp_segment("h2").unwrap().as_deref(), Some("diabetology"));
    assert_eq!(st.hcp_segment("h3").unwrap(), None);
    let got = st.hcp_segments(&["h1".into(), "h2".into(), "h3".into()]).unwrap();
    assert_eq!(got.len(), 2, "an HCP without a segment is absent");
    assert_eq!((got["h1"].as_str(), got["h2"].as_str()), ("cardiology", "diabetology"));
    let rx = |p: &str, n: u64| Prescription { hcp_id: "h1".into(), product: "cardiozen".into(), period: p.into(), count: n };
    st.import_prescriptions(&[rx("2026-10", 3), rx("2026-11", 5)]).unwrap();
    st.import_prescriptions(&[rx("2026-11", 6)]).unwrap();
    assert_eq!(st.prescriptions("h1").unwrap(), vec![rx("2026-10", 3), rx("2026-11", 6)]);
    assert!(st.prescriptions("h2").unwrap().is_empty());
}

/// Issue 16: the experiment page's sums come from SQL over `experiment_units` and the imported
/// prescriptions; they must equal the analytics' own definitions (progression per 30 days,
/// difference in differences against each HCP's prior periods) computed in Rust, on both
/// backends. Units are replaced with their summary and erased with the HCP.
fn experiment_sums_match_the_analytics_definitions(s: Subject) {
    use edetail_hub::analytics::{Moments, experiment};
    use edetail_hub::store::{ExperimentUnit, HcpSummary};
    let st = &s.store;
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let enrolled = |days_ago: i64| now - chrono::Duration::days(days_ago);
    // (hcp, arm, days since enrolment, level then, level now, monthly Rx)
    type Unit<'a> = (&'a str, &'a str, i64, u8, u8, &'a [(&'a str, u64)]);
    let units: [Unit; 6] = [
        ("t1", "treatment", 90, 1, 3, &[("2026-07", 4), ("2026-08", 6), ("2026-09", 9), ("2026-10", 11)]),
        ("t2", "treatment", 10, 0, 1, &[("2026-10", 2), ("2026-11", 5)]),
        ("t3", "treatment", 45, 2, 2, &[("2026-09", 7)]),
        ("h1", "holdout", 120, 1, 2, &[("2026-06", 5), ("2026-07", 5), ("2026-08", 6), ("2026-10", 6)]),
        ("h2", "holdout", 60, 0, 0, &[("2026-09", 3), ("2026-10", 2), ("2026-11", 4)]),
        ("x1", "treatment", 30, 0, 4, &[]),
    ];
    let mut rx = Vec::new();
    let mut want_prog: std::collections::BTreeMap<&str, Moments> = Default::default();
    let mut want_rx: std::collections::BTreeMap<&str, Moments> = Default::default();
    let mut summaries = Vec::new();
    for (hcp, arm, days, from, to, counts) in units {
        let at = enrolled(days);
        let product = if hcp == "x1" { "glucora" } else { "cardiozen" };
        summaries.push(HcpSummary {
            hcp_id: hcp.into(),
            calls: 1,
            stages: vec![(product.into(), "aware".into())],
            experiment: vec![ExperimentUnit { product: product.into(), arm: arm.into(), enrolled_at: at, enrol_level: from, level: to }],
            ..HcpSummary::default()
        });
        for (period, n) in counts {
            rx.push(Prescription { hcp_id: hcp.into(), product: product.into(), period: period.to_string(), count: *n });
        }
        if product != "cardiozen" {
            continue;
        }
        want_prog.entry(arm).or_default().add(experiment::progression_per_30_days(to, from, days as f64));
        let month = at.format("%Y-%m").to_string();
        let before: Vec<f64> = counts.iter().filter(|(p, _)| *p < month.as_str()).map(|(_, n)| *n as f64).collect();
        let after: Vec<f64> = counts.iter().filter(|(p, _)| *p >= month.as_str()).map(|(_, n)| *n as f64).collect();
        if let Some(d) = experiment::rx_change(&before, &after) {
            want_rx.entry(arm).or_default().add(d);
        }
    }
    st.put_hcp_summaries(&summaries).unwrap();
    st.import_prescriptions(&rx).unwrap();
    assert_eq!(st.experiment_sums("glucora", now).unwrap().progression["treatment"].n, 1, "per product");
    let got = st.experiment_sums("cardiozen", now).unwrap();
    let close = |a: &Moments, b: &Moments| a.n == b.n && (a.sum - b.sum).abs() < 1e-9 && (a.sum_sq - b.sum_sq).abs() < 1e-9;
    for (arm, want) in &want_prog {
        assert!(close(&got.progression[*arm], want), "{arm}: {:?} vs {want:?}", got.progression[*arm]);
    }
    assert_eq!(got.progression.len(), 2);
    // t3 has no prescriptions before her enrolment: not her own baseline, not in the sums.
    assert_eq!(want_rx["treatment"].n, 2);
    for (arm, want) in &want_rx {
        assert!(close(&got.rx_change[*arm], want), "{arm}: {:?} vs {want:?}", got.rx_change[*arm]);
    }
    // By hand: t1 enrolled 2026-09-02: before (4 + 6) / 2 = 5, after (9 + 11) / 2 = 10.
    assert_eq!(want_rx["treatment"].sum, 5.0 + 3.0);
    // A unit written after the prescriptions reads them too; a file naming a month twice keeps
    // the last count.
    st.put_hcp_summaries(&summaries[..2]).unwrap();
    assert!(close(&st.experiment_sums("cardiozen", now).unwrap().rx_change["treatment"], &want_rx["treatment"]));
    // Her rung moves: the unit follows (PostgreSQL updates it in place), its sums stay.
    let before = st.experiment_sums("cardiozen", now).unwrap();
    let mut t1 = summaries[0].clone();
    t1.experiment[0].level = 4;
    st.put_hcp_summaries(&[t1]).unwrap();
    let after = st.experiment_sums("cardiozen", now).unwrap();
    let moved = experiment::progression_per_30_days(4, 1, 90.0) - experiment::progression_per_30_days(3, 1, 90.0);
    assert!((after.progression["treatment"].sum - before.progression["treatment"].sum - moved).abs() < 1e-9);
    assert_eq!(after.progression["treatment"].n, before.progression["treatment"].n);
    assert_eq!(after.rx_change, before.rx_change);
    let t2 = |n: u64| Prescription { hcp_id: "t2".into(), product: "cardiozen".into(), period: "2026-11".into(), count: n };
    st.import_prescriptions(&[t2(1), t2(8)]).unwrap();
    let got = st.experiment_sums("cardiozen", now).unwrap().rx_change["treatment"];
    assert_eq!((got.n, got.sum), (2, 5.0 + 6.0), "t2: 8 - 2 after the second import");
    // A new summary replaces her unit; erasure removes it.
    st.put_hcp_summaries(&[HcpSummary { hcp_id: "h2".into(), calls: 2, ..HcpSummary::default() }]).unwrap();
    st.erase_hcp("h1", Utc::now(), None).unwrap();
    let got = st.experiment_sums("cardiozen", now).unwrap();
    assert!(!got.progression.contains_key("holdout"), "{got:?}");
    assert_eq!(got.progression["treatment"].n, 3);
}

/// Plan ids in a feed page, sorted.
fn plan_ids(page: &edetail_hub::store::FeedPage) -> Vec<String> {
    let mut ids: Vec<String> = page
        .plans
        .iter()
        .map(|p| serde_json::from_slice::<serde_json::Value>(&p.plan).unwrap()["plan_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Target lists narrow a rep's plan feed to her targets and the HCPs she called on; a rep
/// without a list gets her territory's; an HCP newly assigned reaches a device already past
/// her plan; lists are replaced per rep; erasure removes the HCP from every list.
fn rep_target_lists_narrow_the_plan_feed(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep-a", "north", "h1", Utc::now(), None, None).unwrap();
    st.add_device("d2", "rep-b", "north", "h2", Utc::now(), None, None).unwrap();
    st.apply_batch("d1", &[valid(&call_event(1, "c1", "call_ended"))], 0, Utc::now()).unwrap();
    let q = st.pending_calls(10).unwrap();
    let mut c = commit(q[0].queue_id, vec![]);
    c.plans = vec![
        new_plan("north", "hcp-1", "p1"),
        new_plan("north", "hcp-2", "p2"),
        new_plan("north", "hcp-3", "p3"),
        new_plan("south", "hcp-1", "s1"),
    ];
    assert!(st.commit_analysis(&c).unwrap());
    let feed = |rep: Option<&str>, since: i64| st.changes_for("north", rep, since, 100).unwrap();
    assert_eq!(plan_ids(&feed(Some("rep-a"), 0)), ["p1", "p2", "p3"], "no list: the territory's plans");

    let r = st.set_rep_targets(&[("rep-a".into(), "hcp-1".into()), ("rep-a".into(), "hcp-1".into())], Utc::now()).unwrap();
    assert_eq!((r.reps, r.added, r.removed), (1, 1, 0));
    assert_eq!(r.plans_resent, 2, "hcp-1's current plans (north and south) go out again");
    let a = feed(Some("rep-a"), 0);
    assert_eq!(plan_ids(&a), ["p1"]);
    assert_eq!(plan_ids(&feed(Some("rep-b"), 0)), ["p1", "p2", "p3"], "rep-b has no list");
    assert_eq!(plan_ids(&feed(None, 0)), ["p1", "p2", "p3"]);

    // rep-a calls on hcp-3: her plans follow.
    st.apply_batch("d1", &[valid(&started(2, "c2", "hcp-3"))], 0, Utc::now()).unwrap();
    assert_eq!(plan_ids(&feed(Some("rep-a"), 0)), ["p1", "p3"]);

    // hcp-2 newly assigned: a device past her plan receives it.
    let cursor = feed(Some("rep-a"), 0).next_cursor;
    assert!(plan_ids(&feed(Some("rep-a"), cursor)).is_empty());
    let r = st.set_rep_targets(&[("rep-a".into(), "hcp-2".into()), ("rep-a".into(), "hcp-1".into())], Utc::now()).unwrap();
    assert_eq!((r.added, r.removed, r.plans_resent), (1, 0, 1));
    assert_eq!(plan_ids(&feed(Some("rep-a"), cursor)), ["p2"]);
    // Replacing rep-a's list; rep-b's is untouched by a file without her.
    let r = st.set_rep_targets(&[("rep-a".into(), "hcp-2".into())], Utc::now()).unwrap();
    assert_eq!((r.added, r.removed, r.plans_resent), (0, 1, 0));
    assert_eq!(st.rep_targets("rep-a").unwrap(), ["hcp-2"]);
    assert!(st.rep_targets("rep-b").unwrap().is_empty());
    st.erase_hcp("hcp-2", Utc::now(), None).unwrap();
    assert!(st.rep_targets("rep-a").unwrap().is_empty(), "erasure removes her from every list");
}

/// Pruning after analysis (issue 15): a device's analysed events recorded before the cutoff
/// are deleted as a prefix of its sequence, held back at the first event of a call not
/// analysed yet, at a newer event and at the watermark; a re-sent pruned event is a duplicate,
/// never stored or queued again; counts in the stats and one audit entry per pruning
/// transaction that deleted anything.
fn pruning_removes_analysed_events_as_a_prefix(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    st.add_device("d2", "rep", "north", "h2", Utc::now(), None, None).unwrap();
    let old = (Utc::now() - chrono::Duration::days(40)).trunc_subsecs(3);
    let aged = |mut e: WireEvent| {
        e.recorded_at = old;
        e
    };
    let no_call = |seq| {
        let mut e = aged(wire(seq));
        e.call_id = None;
        e
    };
    // d1: call c1 (1-3, ended), an event of no call (4), c2 started but not ended (5), c3 (6-7).
    let d1 = [
        aged(started(1, "c1", "hcp-1")),
        aged(call_event(2, "c1", "slide_enter")),
        aged(call_event(3, "c1", "call_ended")),
        no_call(4),
        aged(started(5, "c2", "hcp-1")),
        aged(started(6, "c3", "hcp-2")),
        aged(call_event(7, "c3", "call_ended")),
    ];
    st.apply_batch("d1", &d1.iter().map(valid).collect::<Vec<_>>(), 0, Utc::now()).unwrap();
    // d2: a gap at 2 holds its watermark at 1; its call is not analysed.
    let d2 = [no_call(1), no_call(3)];
    st.apply_batch("d2", &d2.iter().map(valid).collect::<Vec<_>>(), 0, Utc::now()).unwrap();
    let analyse_all = || {
        let q = st.pending_calls(10).unwrap();
        let mut c = commit(q[0].queue_id, vec![]);
        c.queue_ids = q.iter().map(|q| q.queue_id).collect();
        assert!(st.commit_analysis(&c).unwrap());
    };
    analyse_all();
    let audit = edetail_hub::audit::events_pruned("ops", 30.0);
    let cutoff = || Utc::now() - chrono::Duration::days(30);
    let seqs = |d: &str| st.events_for_device(d).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>();

    let r = st.prune_analysed_events(cutoff(), Some(&audit)).unwrap();
    assert_eq!((r.devices, r.events), (2, 5), "d1 up to c2's start, d2 up to its watermark");
    assert_eq!(seqs("d1"), [5, 6, 7]);
    assert_eq!(seqs("d2"), [3]);

    // c2 ends today: queued, not analysed yet, so nothing moves; once analysed, the prefix
    // stops before the recent event.
    st.apply_batch("d1", &[valid(&call_event(8, "c2", "call_ended"))], 0, Utc::now()).unwrap();
    assert_eq!(st.prune_analysed_events(cutoff(), Some(&audit)).unwrap(), Default::default());
    analyse_all();
    let r = st.prune_analysed_events(cutoff(), Some(&audit)).unwrap();
    assert_eq!((r.devices, r.events), (1, 3));
    assert_eq!(seqs("d1"), [8]);

    // The device re-sends pruned events (a lost answer): absorbed, never stored or queued.
    let o = st.apply_batch("d1", &d1[..3].iter().map(valid).collect::<Vec<_>>(), 0, Utc::now()).unwrap();
    assert_eq!((o.accepted.len(), o.duplicates.len(), o.watermark), (0, 3, 8));
    assert_eq!(seqs("d1"), [8]);
    assert!(st.pending_calls(10).unwrap().is_empty(), "c1 is not analysed twice");

    let stats = st.stats().unwrap();
    assert_eq!(stats.events_pruned, 8);
    let by_id = |id: &str| stats.devices.iter().find(|d| d.device_id == id).unwrap().clone();
    assert_eq!((by_id("d1").pruned_through_seq, by_id("d1").events_pruned), (7, 7));
    assert_eq!((by_id("d2").pruned_through_seq, by_id("d2").events_pruned), (1, 1));
    let entries: Vec<_> = st.audit_log().unwrap().into_iter().filter(|e| e.action == edetail_hub::audit::EVENTS_PRUNED).collect();
    assert_eq!(
        entries.iter().map(|e| e.details["events"].as_u64().unwrap()).collect::<Vec<_>>(),
        [5, 3],
        "runs that pruned nothing leave no entry"
    );
    assert!(entries.iter().all(|e| e.details["older_than_days"] == 30.0 && e.actor == "ops"));
}

/// Credentials: devices and publishers get an expiring token on creation; rotation keeps the
/// old token for the grace period and moves the device's current token; revocation covers all
/// of a subject's tokens (an operator's sessions too) and answers NotFound for unknown subjects.
fn credentials_expire_rotate_and_revoke(s: Subject) {
    let st = &s.store;
    let now = Utc::now().trunc_subsecs(3);
    st.add_device("d1", "rep-7", "north", "old-hash", now, None, None).unwrap();
    let c = st.credential("old-hash").unwrap().unwrap();
    assert_eq!((c.role, c.subject.as_str()), (TokenRole::Device, "d1"));
    let days = (c.expires_at.unwrap() - now).num_days();
    assert_eq!(days, edetail_hub::store::DEFAULT_DEVICE_TOKEN_DAYS);
    assert!(c.is_live(now) && !c.is_live(c.expires_at.unwrap()));
    assert!(st.credential("nobody").unwrap().is_none());

    let grace_end = now + chrono::Duration::hours(24);
    st.issue_credential(&rotated("new-hash", TokenRole::Device, "d1", now, grace_end), None).unwrap();
    assert_eq!(st.credential("old-hash").unwrap().unwrap().expires_at, Some(grace_end), "old token: grace period");
    assert_eq!(st.device_by_token("old-hash").unwrap().unwrap().id, "d1");
    assert_eq!(st.device_by_token("new-hash").unwrap().unwrap().id, "d1", "same device under the new token");
    assert_eq!(st.credentials_of(TokenRole::Device, "d1").unwrap().len(), 2);
    let unknown = NewCredential { subject: "ghost".into(), token_sha256: "g".into(), ..new_cred("x", TokenRole::Device, now) };
    assert!(matches!(st.issue_credential(&unknown, None), Err(Error::NotFound(_))));
    assert!(
        matches!(st.issue_credential(&new_cred("m", TokenRole::Device, now), None), Err(Error::NotFound(_))),
        "the microsite pseudo-device never gets a token"
    );

    st.set_credential_expiry("new-hash", Some(now + chrono::Duration::days(3))).unwrap();
    assert_eq!(st.credential("new-hash").unwrap().unwrap().expires_at, Some(now + chrono::Duration::days(3)));
    assert_eq!(st.revoke_credentials(TokenRole::Device, "d1", now, None).unwrap(), 2);
    assert!(st.credentials_of(TokenRole::Device, "d1").unwrap().iter().all(|c| c.revoked_at.is_some() && !c.is_live(now)));
    assert_eq!(st.revoke_credentials(TokenRole::Device, "d1", now, None).unwrap(), 0, "already revoked");
    assert!(matches!(st.revoke_credentials(TokenRole::Device, "nope", now, None), Err(Error::NotFound(_))));
    assert!(matches!(st.revoke_credentials(TokenRole::Publisher, "d1", now, None), Err(Error::NotFound(_))), "roles are separate");

    st.add_publisher("content", "pub-hash", now, None).unwrap();
    assert_eq!(st.credential("pub-hash").unwrap().unwrap().role, TokenRole::Publisher);

    st.add_operator("ops", "op-hash", now, Some(now + chrono::Duration::days(90)), None).unwrap();
    assert!(matches!(st.add_operator("ops", "op-2", now, None, None), Err(Error::BadRequest(_))));
    st.issue_credential(&NewCredential { subject: "ops".into(), ..new_cred("sess-hash", TokenRole::Session, now) }, None).unwrap();
    assert_eq!(st.credential("sess-hash").unwrap().unwrap().subject, "ops");
    st.revoke_credential("sess-hash", now).unwrap();
    assert!(st.credential("sess-hash").unwrap().unwrap().revoked_at.is_some());
    st.issue_credential(&NewCredential { subject: "ops".into(), ..new_cred("sess-2", TokenRole::Session, now) }, None).unwrap();
    assert_eq!(st.revoke_credentials(TokenRole::Operator, "ops", now, None).unwrap(), 2, "operator token and its live session");
    assert!(st.credential("sess-2").unwrap().unwrap().revoked_at.is_some());
    // Rotating an operator's token caps its sessions at the grace end too (issue 13).
    st.add_operator("ops3", "op3-hash", now, Some(now + chrono::Duration::days(90)), None).unwrap();
    st.issue_credential(
        &NewCredential {
            subject: "ops3".into(),
            expires_at: Some(now + chrono::Duration::hours(12)),
            ..new_cred("sess-3", TokenRole::Session, now)
        },
        None,
    )
    .unwrap();
    let op_grace = now + chrono::Duration::hours(1);
    st.issue_credential(&rotated("op3-new", TokenRole::Operator, "ops3", now, op_grace), None).unwrap();
    assert_eq!(st.credential("sess-3").unwrap().unwrap().expires_at, Some(op_grace), "session capped at the grace end");
    assert_eq!(st.credential("op3-hash").unwrap().unwrap().expires_at, Some(op_grace));
    let reopened = (s.reopen)();
    assert!(reopened.credential("op-hash").unwrap().unwrap().revoked_at.is_some());
}

/// A rotation's new 90-day token for `subject`: its other tokens expire by `grace_end`.
fn rotated(hash: &str, role: TokenRole, subject: &str, now: chrono::DateTime<Utc>, grace_end: chrono::DateTime<Utc>) -> NewCredential {
    NewCredential {
        token_sha256: hash.into(),
        role,
        subject: subject.into(),
        created_at: now,
        expires_at: Some(now + chrono::Duration::days(90)),
        others_expire_by: Some(grace_end),
    }
}

fn new_cred(hash: &str, role: TokenRole, now: chrono::DateTime<Utc>) -> NewCredential {
    NewCredential {
        token_sha256: hash.into(),
        role,
        subject: MICROSITE_DEVICE.into(),
        created_at: now,
        expires_at: Some(now + chrono::Duration::hours(1)),
        others_expire_by: None,
    }
}

/// The audit trail appends and lists in order; the database itself refuses UPDATE and DELETE.
fn audit_log_is_append_only(s: Subject) {
    let st = &s.store;
    let at = Utc::now().trunc_subsecs(3);
    let e = |action: &str, subject: &str| NewAuditEntry {
        at,
        actor: "cli:ops".into(),
        action: action.into(),
        subject: subject.into(),
        details: json!({"version": 3}),
    };
    let a = st.append_audit(&e("bundle.publish", "deck-a")).unwrap();
    let b = st.append_audit(&e("device.revoke", "dev-1")).unwrap();
    assert!(b > a);
    let log = st.audit_log().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].actor.as_str(), log[0].action.as_str(), log[0].subject.as_str()), ("cli:ops", "bundle.publish", "deck-a"));
    assert_eq!((log[0].at, &log[0].details), (at, &json!({"version": 3})));
    assert_eq!(log[1].action, "device.revoke");

    let upd = (s.sql)("UPDATE audit_log SET actor = 'someone else'");
    assert!(upd.as_ref().is_err_and(|e| e.contains("append-only")), "{upd:?}");
    let del = (s.sql)("DELETE FROM audit_log");
    assert!(del.as_ref().is_err_and(|e| e.contains("append-only")), "{del:?}");
    assert_eq!(st.audit_log().unwrap(), log, "nothing changed");
    // The raw SQL path works at all (the refusals above are the triggers, not a broken helper).
    assert_eq!((s.sql)("INSERT INTO audit_log (at, actor, action, subject) VALUES ('2026-01-01T00:00:00Z', 'x', 'y', 'z')"), Ok(1));
}

/// An audited change and its audit entry commit together: a change that fails writes no entry,
/// and an entry that cannot be written undoes the change (nothing changes unaudited).
fn audited_changes_commit_with_their_entry(s: Subject) {
    let st = &s.store;
    let entry = |action: &str, subject: &str, details: serde_json::Value| NewAuditEntry {
        at: Utc::now().trunc_subsecs(3),
        actor: "cli:ops".into(),
        action: action.into(),
        subject: subject.into(),
        details,
    };
    let feed = |f: fn(&i64) -> serde_json::Value, e: NewAuditEntry| Audited { entry: e, outcome: f };
    let seq_outcome: fn(&i64) -> serde_json::Value = |seq| json!({"feed_seq": seq});

    // Refused changes leave no entry.
    let r = st.revoke("never-published", "x", Utc::now(), Some(&feed(seq_outcome, entry("bundle.revoke", "never-published", json!({})))));
    assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
    let seq = st
        .insert_bundle_version(
            &version("b", 2, "cz", &["*"], &[]),
            Some(&feed(seq_outcome, entry("bundle.publish", "b", json!({"version": 2})))),
        )
        .unwrap();
    let r =
        st.insert_bundle_version(&version("b", 1, "cz", &["*"], &[]), Some(&feed(seq_outcome, entry("bundle.publish", "b", json!({})))));
    assert!(matches!(r, Err(Error::VersionConflict { .. })), "{r:?}");
    let log = st.audit_log().unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].details, json!({"version": 2, "feed_seq": seq}), "the outcome joins the details");

    // A device with its token's expiry and its entry; a second device with the same id is refused.
    let expires = (Utc::now() + chrono::Duration::days(3)).trunc_subsecs(0);
    let add = Audited::plain(entry("device.add", "d1", json!({"territory": "north"})));
    st.add_device("d1", "rep", "north", "h1", Utc::now(), Some(expires), Some(&add)).unwrap();
    assert_eq!(st.credential("h1").unwrap().unwrap().expires_at, Some(expires));
    assert!(st.add_device("d1", "rep", "north", "h2", Utc::now(), None, Some(&add)).is_err());
    let revoke = Audited { entry: entry("device.revoke", "d1", json!({})), outcome: |n: &u64| json!({"tokens": n}) };
    assert_eq!(st.revoke_credentials(TokenRole::Device, "d1", Utc::now(), Some(&revoke)).unwrap(), 1);
    let actions: Vec<(String, serde_json::Value)> = st.audit_log().unwrap().into_iter().map(|e| (e.action, e.details)).collect();
    assert_eq!(
        actions[1..],
        [("device.add".to_string(), json!({"territory": "north"})), ("device.revoke".to_string(), json!({"tokens": 1}))]
    );

    // An entry the database refuses (a trigger/constraint added for the test) undoes its change.
    let refuse = if s._db.is_some() {
        "ALTER TABLE audit_log ADD CONSTRAINT no_boom CHECK (action <> 'boom')"
    } else {
        "CREATE TRIGGER no_boom BEFORE INSERT ON audit_log WHEN NEW.action = 'boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
    };
    (s.sql)(refuse).unwrap();
    let r = st.revoke("b", "recall", Utc::now(), Some(&feed(seq_outcome, entry("boom", "b", json!({})))));
    assert!(r.is_err(), "{r:?}");
    let page = st.changes("north", 0, 100).unwrap();
    assert!(page.revocations.is_empty() && page.bundles.len() == 1, "the revocation rolled back with its entry");
    st.apply_batch("d1", &[valid(&started(1, "c1", "hcp-1")), valid(&call_event(2, "c1", "call_ended"))], 0, Utc::now()).unwrap();
    let before = st.audit_log().unwrap();
    let boom = Audited { entry: entry("boom", "hcp", json!({})), outcome: |r: &edetail_hub::store::ErasureReport| json!(r) };
    assert!(st.erase_hcp("hcp-1", Utc::now(), Some(&boom)).is_err());
    assert_eq!(st.call_events("d1", "c1").unwrap().len(), 2, "the HCP's events are still there");
    assert_eq!(st.audit_log().unwrap(), before, "nothing appended");
    assert!(st.changes("north", 0, 100).unwrap().erasures.is_empty(), "the erasure rolled back with its entry");
    // The same change with an acceptable entry goes through, with the report as details.
    let ok = Audited { entry: entry("hcp erased", "hcp", json!({})), outcome: |r: &edetail_hub::store::ErasureReport| json!(r) };
    let report = st.erase_hcp("hcp-1", Utc::now(), Some(&ok)).unwrap();
    assert!(report.fed);
    assert_eq!(st.audit_log().unwrap().last().unwrap().details, json!(report));
}

fn started(seq: i64, call: &str, hcp: &str) -> WireEvent {
    let mut e = call_event(seq, call, "call_started");
    e.payload = json!({"hcp_id": hcp, "bundle_id": "b", "bundle_version": 1, "channel": "face_to_face"});
    e
}

/// Erasure removes the HCP's calls (device calls and microsite visits), analysis document,
/// plans, microsites, segment and prescriptions in one go; other HCPs and deck statistics stay;
/// the watermark stays; re-sent erased events and late events of an erased call are absorbed,
/// never stored again; the erasure reaches every territory's feed once; erasing again is a no-op.
fn erasure_removes_an_hcp_everywhere(s: Subject) {
    let st = &s.store;
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    st.add_device("d2", "rep2", "south", "h2", Utc::now(), None, None).unwrap();
    // hcp-1's call c1 (ended), hcp-10's call c2 (an id with hcp-1 as prefix), hcp-1 on d2 too.
    let c1 = [started(1, "c1", "hcp-1"), call_event(2, "c1", "slide_view"), call_event(3, "c1", "call_ended")];
    let c2 = [started(4, "c2", "hcp-10"), call_event(5, "c2", "call_ended")];
    let all: Vec<CheckedEvent> = c1.iter().chain(&c2).map(valid).collect();
    assert_eq!(st.apply_batch("d1", &all, 0, Utc::now()).unwrap().watermark, 5);
    st.apply_batch("d2", &[valid(&started(1, "c9", "hcp-1"))], 0, Utc::now()).unwrap();
    let q = st.pending_calls(10).unwrap();
    let mut c = commit(
        q[0].queue_id,
        vec![
            doc("hcp", "hcp-1", json!({"calls": 1}), 0),
            doc("hcp", "hcp-10", json!({"calls": 1}), 0),
            doc("deck", "b", json!({"calls": 2}), 0),
        ],
    );
    c.plans = vec![new_plan("north", "hcp-1", "p1"), new_plan("north", "hcp-10", "p10")];
    let now = Utc::now().trunc_subsecs(0);
    let site = |id: &str, hcp: &str, n: u64| Microsite {
        id: id.into(),
        token_sha256: sha(n),
        hcp_id: hcp.into(),
        territory: "north".into(),
        bundle_id: "b".into(),
        bundle_version: 1,
        slides: vec!["s1".into()],
        topics: vec![],
        reason: "r".into(),
        created_at: now,
        expires_at: now + chrono::Duration::days(1),
        views: 0,
    };
    c.microsites = vec![site("ms-1", "hcp-1", 1), site("ms-10", "hcp-10", 2)];
    assert!(st.commit_analysis(&c).unwrap());
    st.record_microsite_visit(
        "ms-1",
        "visit-1",
        &[("call_started".into(), json!({"hcp_id": "hcp-1"})), ("call_ended".into(), json!({}))],
        Utc::now(),
    )
    .unwrap();
    st.set_hcp_segments(&[("hcp-1".into(), "gp".into()), ("hcp-10".into(), "gp".into())], Utc::now()).unwrap();
    let rx = |h: &str| Prescription { hcp_id: h.into(), product: "cz".into(), period: "2026-11".into(), count: 2 };
    st.import_prescriptions(&[rx("hcp-1"), rx("hcp-10")]).unwrap();
    let before = st.changes("south", 0, 100).unwrap().next_cursor;

    let r = st.erase_hcp("hcp-1", Utc::now(), None).unwrap();
    assert_eq!((r.calls, r.events, r.docs, r.plans, r.microsites, r.segments, r.prescriptions), (3, 6, 1, 1, 1, 1, 1));
    assert!(r.fed);
    assert!(st.call_events("d1", "c1").unwrap().is_empty());
    assert!(st.call_events("d2", "c9").unwrap().is_empty());
    assert!(st.call_events(MICROSITE_DEVICE, "visit-1").unwrap().is_empty());
    assert_eq!(st.call_events("d1", "c2").unwrap().len(), 2, "another HCP (even a prefix-sharing id) untouched");
    let keys = |k: &str, h: &str| (k.to_string(), h.to_string());
    let docs = st.load_docs(&[keys("hcp", "hcp-1"), keys("hcp", "hcp-10"), keys("deck", "b")]).unwrap();
    assert!(docs[0].is_none() && docs[1].is_some() && docs[2].is_some(), "deck statistics stay");
    assert_eq!(st.latest_plan("hcp-1", "b").unwrap(), None);
    assert_eq!(st.newest_plan_of_hcp("hcp-1").unwrap(), None, "no plan of an erased HCP on any bundle");
    assert!(st.latest_plan("hcp-10", "b").unwrap().is_some());
    assert!(st.microsites_for("hcp-1").unwrap().is_empty() && st.microsite_by_token(&sha(1)).unwrap().is_none());
    assert_eq!(st.microsites_for("hcp-10").unwrap().len(), 1);
    assert_eq!((st.hcp_segment("hcp-1").unwrap(), st.hcp_segment("hcp-10").unwrap().as_deref()), (None, Some("gp")));
    assert!(st.prescriptions("hcp-1").unwrap().is_empty() && st.prescriptions("hcp-10").unwrap().len() == 1);
    assert!(st.pending_calls(10).unwrap().iter().all(|q| q.call_id != "c1" && q.call_id != "visit-1"));

    // Every territory's feed carries the erasure after the cursor, plans of the HCP are gone.
    for t in ["north", "south", "nowhere"] {
        let page = st.changes(t, before, 100).unwrap();
        assert_eq!(page.erasures.iter().map(|e| e.erasure.hcp_id.as_str()).collect::<Vec<_>>(), ["hcp-1"], "{t}");
    }
    assert!(st.changes("north", 0, 100).unwrap().plans.iter().all(|p| p.plan != b"{\"plan_id\":\"p1\"}".to_vec()));

    // The watermark stays; a re-sent erased event and a late event of the erased call are
    // acknowledged as duplicates and not stored; new events continue the watermark.
    let late = call_event(6, "c1", "custom");
    let out = st.apply_batch("d1", &[valid(&c1[1]), valid(&late), valid(&wire(7))], 0, Utc::now()).unwrap();
    assert_eq!(out.duplicates, vec![c1[1].uuid.clone(), late.uuid.clone()]);
    assert_eq!(out.accepted.len(), 1);
    assert_eq!(out.watermark, 7);
    assert!(st.call_events("d1", "c1").unwrap().is_empty());

    // Idempotent: nothing more removed, no second feed item.
    let head = st.changes("north", 0, 100).unwrap().next_cursor;
    let again = st.erase_hcp("hcp-1", Utc::now(), None).unwrap();
    assert!(!again.removed_anything() && !again.fed);
    assert!(st.changes("north", head, 100).unwrap().erasures.is_empty());
}

/// Consent records upsert, travel to every territory, newest replacing older in the feed.
fn consent_records_travel_in_every_feed(s: Subject) {
    use edetail_protocol::Tracking;
    let st = &s.store;
    assert_eq!(st.consent("hcp-1").unwrap(), None);
    st.set_consent("hcp-1", Tracking::Anonymous, Utc::now(), None).unwrap();
    let p = st.changes("south", 0, 100).unwrap();
    assert_eq!(p.consents.len(), 1);
    assert_eq!((p.consents[0].consent.hcp_id.as_str(), p.consents[0].consent.tracking), ("hcp-1", Tracking::Anonymous));
    st.set_consent("hcp-1", Tracking::Off, Utc::now(), None).unwrap();
    let after = st.changes("north", p.next_cursor, 100).unwrap();
    assert_eq!(after.consents.iter().map(|c| c.consent.tracking).collect::<Vec<_>>(), [Tracking::Off]);
    assert_eq!(st.consent("hcp-1").unwrap().unwrap().tracking, Tracking::Off);
    assert_eq!(st.changes("north", 0, 100).unwrap().consents.len(), 1, "one record per HCP");
}

/// Remote sessions (ADR 0023): lookup by token, a new link replacing the old, the position kept
/// only forwards, admission and re-joins, the attendee limit with liveness, and concurrent joins
/// from two processes never exceeding it; ending keeps the first end time.
fn remote_sessions_and_their_attendees(s: Subject) {
    use edetail_hub::store::{NewRemoteSession, RemoteJoin};
    let now = Utc::now().trunc_subsecs(3);
    let new = NewRemoteSession {
        id: "rs-1".into(),
        device_id: "dev-1".into(),
        call_id: "call-1".into(),
        territory: "north".into(),
        bundle_id: "b".into(),
        bundle_version: 2,
        token_sha256: sha(1),
        waiting_room: true,
        recorded: false,
        created_at: now,
        expires_at: now + chrono::Duration::minutes(30),
    };
    s.store.open_remote_session(&new).unwrap();
    let got = s.store.remote_session_by_token(&sha(1)).unwrap().unwrap();
    assert_eq!((got.id.as_str(), got.bundle_version, got.waiting_room, got.recorded), ("rs-1", 2, true, false));
    assert!(got.live_at(now) && !got.live_at(now + chrono::Duration::minutes(31)));
    assert!(got.position.is_none());
    assert!(s.store.remote_session_by_token(&sha(2)).unwrap().is_none());
    // A new link: the old token finds nothing.
    assert!(s.store.relink_remote_session("rs-1", &sha(2)).unwrap());
    assert!(s.store.remote_session_by_token(&sha(1)).unwrap().is_none());
    assert_eq!(s.store.remote_session_by_token(&sha(2)).unwrap().unwrap().id, "rs-1");
    assert!(!s.store.relink_remote_session("nope", &sha(3)).unwrap());
    // Positions only move forwards (state changes keep the seq).
    s.store.set_remote_position("rs-1", "p5", 5).unwrap();
    s.store.set_remote_position("rs-1", "p4", 4).unwrap();
    s.store.set_remote_position("rs-1", "p5-state", 5).unwrap();
    let got = s.store.remote_session("rs-1").unwrap().unwrap();
    assert_eq!((got.position.as_deref(), got.position_seq), (Some("p5-state"), 5));

    // The presenter: the newest connection presents; an older one learns it was replaced.
    s.store.claim_remote_presenter("rs-1", "p1", 10).unwrap();
    assert!(s.store.touch_remote_presenter("rs-1", "p1", 20).unwrap());
    s.store.claim_remote_presenter("rs-1", "p2", 30).unwrap();
    assert!(!s.store.touch_remote_presenter("rs-1", "p1", 40).unwrap(), "p1 was replaced");
    s.store.release_remote_presenter("rs-1", "p1").unwrap();
    let got = s.store.remote_session("rs-1").unwrap().unwrap();
    assert_eq!((got.presenter_id.as_deref(), got.presenter_seen_ms), (Some("p2"), 30), "a replaced one releases nothing");
    s.store.release_remote_presenter("rs-1", "p2").unwrap();
    let got = s.store.remote_session("rs-1").unwrap().unwrap();
    assert_eq!((got.presenter_id, got.presenter_seen_ms), (None, 0));

    // Waiting room, admission kept across a re-join.
    let t = 1_000_000i64;
    assert_eq!(s.store.join_remote_session("rs-1", "a", true, 2, t, t - 45_000).unwrap(), RemoteJoin::Waiting);
    assert!(s.store.admit_remote_attendee("rs-1", "a").unwrap());
    assert!(!s.store.admit_remote_attendee("rs-1", "never-joined").unwrap());
    s.store.leave_remote_session("rs-1", "a").unwrap();
    assert!(s.store.remote_attendees("rs-1", t - 45_000).unwrap().is_empty());
    assert_eq!(s.store.join_remote_session("rs-1", "a", true, 2, t, t - 45_000).unwrap(), RemoteJoin::Admitted);
    assert_eq!(s.store.join_remote_session("rs-1", "b", false, 2, t, t - 45_000).unwrap(), RemoteJoin::Admitted);
    // Full at two live attendees; one of them re-joining is not a third.
    assert_eq!(s.store.join_remote_session("rs-1", "c", false, 2, t, t - 45_000).unwrap(), RemoteJoin::Full);
    assert_eq!(s.store.join_remote_session("rs-1", "b", false, 2, t, t - 45_000).unwrap(), RemoteJoin::Admitted);
    let live: Vec<(String, bool)> =
        s.store.remote_attendees("rs-1", t - 45_000).unwrap().into_iter().map(|a| (a.attendee_id, a.admitted)).collect();
    assert_eq!(live, vec![("a".to_string(), true), ("b".to_string(), true)]);
    // Unseen for long (their process died), they stop counting; seen ones keep counting.
    let later = t + 60_000;
    s.store.touch_remote_attendees("rs-1", &["a".to_string()], later).unwrap();
    assert_eq!(s.store.join_remote_session("rs-1", "c", false, 2, later, later - 45_000).unwrap(), RemoteJoin::Admitted);
    assert_eq!(s.store.join_remote_session("rs-1", "d", false, 2, later, later - 45_000).unwrap(), RemoteJoin::Full);

    // Two processes joining at once never exceed the limit.
    let mut n2 = new.clone();
    n2.id = "rs-2".into();
    n2.token_sha256 = sha(9);
    s.store.open_remote_session(&n2).unwrap();
    let other = (s.reopen)();
    let joined: Vec<RemoteJoin> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let st = if i % 2 == 0 { s.store.clone() } else { other.clone() };
                sc.spawn(move || st.join_remote_session("rs-2", &format!("x{i}"), false, 5, t, t - 45_000).unwrap())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(joined.iter().filter(|j| **j == RemoteJoin::Admitted).count(), 5, "{joined:?}");
    assert_eq!(joined.iter().filter(|j| **j == RemoteJoin::Full).count(), 3);

    // Ending keeps the first end time; unknown sessions are None.
    let first = s.store.end_remote_session("rs-1", now + chrono::Duration::minutes(1)).unwrap().unwrap();
    let again = s.store.end_remote_session("rs-1", now + chrono::Duration::minutes(2)).unwrap().unwrap();
    assert_eq!(first, again);
    assert!(!s.store.remote_session("rs-1").unwrap().unwrap().live_at(now + chrono::Duration::minutes(1)));
    assert!(s.store.end_remote_session("nope", now).unwrap().is_none());

    // Pruning: only sessions over before the cut-off go, with their attendees.
    assert_eq!(s.store.prune_remote_sessions(now).unwrap(), 0);
    assert_eq!(s.store.prune_remote_sessions(now + chrono::Duration::minutes(2)).unwrap(), 1);
    assert!(s.store.remote_session("rs-1").unwrap().is_none());
    assert!(s.store.remote_attendees("rs-1", 0).unwrap().is_empty());
    assert!(s.store.remote_session("rs-2").unwrap().is_some());
    assert_eq!(s.store.prune_remote_sessions(now + chrono::Duration::minutes(31)).unwrap(), 1);
    assert_eq!((s.sql)("SELECT 1 FROM remote_attendees").unwrap(), 0, "no attendee rows left");
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::sqlite()) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(super::postgres()) } )*
        }
    };
}

suite!(
    watermark_advances_over_contiguous_seqs_only,
    events_round_trip_exactly,
    duplicates_within_and_across_batches,
    another_devices_uuid_is_rejected,
    unknown_device_batch_is_not_found,
    tokens_find_devices_and_publishers,
    credentials_expire_rotate_and_revoke,
    audit_log_is_append_only,
    audited_changes_commit_with_their_entry,
    versions_increase_and_the_feed_offers_the_latest,
    feed_pages_chain,
    entitlement_follows_territories_and_revocation,
    territories_and_products,
    two_processes_share_one_database,
    reopening_keeps_everything,
    finished_calls_are_queued_once,
    analysis_commits_are_optimistic,
    concurrent_analysers_commit_each_call_once,
    batch_commits_are_all_or_nothing,
    merged_documents_add_up_under_concurrent_commits,
    plans_travel_in_their_territory_feed,
    microsite_visits_are_recorded_and_queued,
    segments_and_prescriptions,
    experiment_sums_match_the_analytics_definitions,
    erasure_removes_an_hcp_everywhere,
    consent_records_travel_in_every_feed,
    queue_claims_are_exclusive_and_expire,
    hcp_summaries_list_count_and_erase,
    rep_target_lists_narrow_the_plan_feed,
    pruning_removes_analysed_events_as_a_prefix,
    remote_sessions_and_their_attendees,
);

/// PostgreSQL only (SQLite has a single writer): an erasure waits for an event write in flight
/// (a transaction holding the ingest side of `ERASURE_LOCK`, as an upload batch does), and an
/// upload waits for an erasure in flight; so an erased HCP's events can never be committed
/// behind the erasure's back.
#[test]
fn postgres_erasure_and_event_writes_are_ordered() {
    use edetail_hub::postgres::ERASURE_LOCK;
    use std::time::Duration;
    let db = TestDatabase::new();
    let st: Arc<dyn HubStore> = Arc::new(PgStore::connect(&db.url, 8).unwrap());
    st.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    st.apply_batch("d1", &[valid(&started(1, "c1", "hcp-1")), valid(&call_event(2, "c1", "call_ended"))], 0, Utc::now()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (mut client, conn) = rt.block_on(tokio_postgres::connect(&db.url, tokio_postgres::NoTls)).unwrap();
    rt.spawn(conn);

    // A batch in flight: the erasure cannot finish until it commits.
    let tx = rt.block_on(client.transaction()).unwrap();
    rt.block_on(tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&ERASURE_LOCK])).unwrap();
    let eraser = {
        let st = st.clone();
        std::thread::spawn(move || st.erase_hcp("hcp-1", Utc::now(), None))
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(!eraser.is_finished(), "the erasure waits for the event write in flight");
    rt.block_on(tx.commit()).unwrap();
    let report = eraser.join().unwrap().unwrap();
    assert_eq!((report.calls, report.events), (1, 2));

    // An erasure in flight: an upload waits for it, then its tombstoned events are absorbed.
    let tx = rt.block_on(client.transaction()).unwrap();
    rt.block_on(tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ERASURE_LOCK])).unwrap();
    let uploader = {
        let st = st.clone();
        std::thread::spawn(move || st.apply_batch("d1", &[valid(&call_event(3, "c1", "slide_view"))], 0, Utc::now()))
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(!uploader.is_finished(), "the upload waits for the erasure in flight");
    rt.block_on(tx.commit()).unwrap();
    let outcome = uploader.join().unwrap().unwrap();
    assert_eq!(outcome.watermark, 3);
    assert!(st.call_events("d1", "c1").unwrap().is_empty(), "a late event of an erased call is not stored");
}
