//! Issue 15: HCP profiles analysed before summaries existed are summarised by the analysis
//! worker, once, in batches: the dashboard's lists then show them without loading profiles.

use std::sync::Arc;

use chrono::Utc;
use edetail_hub::analytics::{HcpProfile, ProductFacts, Stage};
use edetail_hub::sqlite::SqliteStore;
use edetail_hub::store::{AnalysisCommit, AnalysisStore, CredentialStore, DocJson, DocWrite, HcpQuery, InsightStore};
use edetail_hub::{Analyzer, AnalyzerConfig};

#[test]
fn profiles_written_before_summaries_are_summarised_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    store.add_device("d1", "rep", "north", "h1", Utc::now(), None, None).unwrap();
    // 1,200 profiles written the old way: documents without summaries (more than one batch).
    let docs: Vec<DocWrite> = (0..1_200)
        .map(|i| {
            let mut p = HcpProfile::new(&format!("hcp-{i:04}"));
            p.calls = i % 5;
            let stage = if i % 3 == 0 { Stage::Convinced } else { Stage::Aware };
            p.products.insert("cz".into(), ProductFacts { stage, ..ProductFacts::default() });
            DocWrite { kind: "hcp".into(), key: p.hcp_id.clone(), doc: DocJson::of(&p).unwrap(), expected_version: 0 }
        })
        .collect();
    let end = edetail_protocol::WireEvent {
        uuid: uuid::Uuid::new_v4().to_string(),
        seq: 1,
        call_id: Some("c1".into()),
        kind: "call_ended".into(),
        recorded_at: Utc::now(),
        session: 1,
        mono_ms: 0,
        payload: serde_json::json!({}),
    };
    let checked = edetail_hub::store::CheckedEvent::Valid { recorded_at_corrected: end.recorded_at, event: end, payload_json: None };
    edetail_hub::store::IngestStore::apply_batch(&*store, "d1", &[checked], 0, Utc::now()).unwrap();
    let queued = store.pending_calls(1).unwrap();
    let commit = AnalysisCommit {
        queue_ids: vec![queued[0].queue_id],
        docs,
        merges: vec![],
        summaries: vec![],
        plans: vec![],
        microsites: vec![],
        now: Utc::now(),
    };
    assert!(store.commit_analysis(&commit).unwrap());
    assert_eq!(store.hcp_count().unwrap(), 0);

    let analyzer = Analyzer::new(store.clone(), AnalyzerConfig::generated().unwrap());
    let report = analyzer.run().unwrap();
    assert_eq!(report.profiles_summarised, 1_200);
    assert_eq!(store.hcp_count().unwrap(), 1_200);
    let counts = store.stage_counts().unwrap();
    assert_eq!(counts, [("aware".to_string(), 800), ("convinced".into(), 400)]);
    let page = store.hcp_page(&HcpQuery { id_prefix: Some("hcp-0003".into()), ..HcpQuery::default() }).unwrap();
    assert_eq!((page.total, page.rows[0].0.calls), (1, 3));
    assert_eq!(analyzer.run().unwrap().profiles_summarised, 0, "once");
}
