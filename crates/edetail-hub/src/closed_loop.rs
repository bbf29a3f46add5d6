//! The closed loop on the hub: the worker that analyses each finished call once (deck and HCP
//! documents through `analytics`), answers the HCP with a signed plan for the next call, and
//! opens a follow-up microsite when the HCP asked for one or showed strong interest.
//!
//! Exactly once per call: the store queues a call in the ingest transaction that stored its
//! end, and `commit_analysis` marks it done in the same transaction as the documents, plans and
//! microsites it produced, with optimistic versions on the documents. A worker that loses a
//! race (another hub process, a concurrent call of the same HCP) writes nothing and retries
//! from fresh reads. Several hub processes may run this worker on one PostgreSQL.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use edetail_bundle::{Manifest, SecretKey, Sha256Digest};
use edetail_protocol::Plan;
use serde::Serialize;
use serde_json::Value;

use crate::analytics::{self, AnalyzedEvent, CallInput, DeckMeta, DeckStats, HcpProfile, StageRules};
use crate::error::{Error, Result};
use crate::store::{AnalysisCommit, Doc, DocWrite, HcpSummary, HubStore, Microsite, NewPlan, QueuedCall};

/// Document kinds in the store.
pub const DOC_HCP: &str = "hcp";
pub const DOC_DECK: &str = "deck";
/// A plan is offered on devices for this long after it was made.
pub const PLAN_VALIDITY: Duration = Duration::days(30);
/// A microsite link works for this long.
pub const MICROSITE_VALIDITY: Duration = Duration::days(14);
/// At most this many slides on a microsite.
pub const MICROSITE_MAX_SLIDES: usize = 6;
/// Calls analysed per store round trip.
pub const BATCH: usize = 50;
/// How long a worker holds the calls it claimed (`AnalysisStore::claim_calls`): far longer than
/// a batch takes; a worker that dies leaves its calls to the others after this.
pub const CLAIM_LEASE: Duration = Duration::minutes(5);
/// HCP profiles summarised per transaction when summarising those written before summaries.
const SUMMARY_BATCH: usize = 500;
/// Optimistic retries of one call within one run before leaving it for the next run.
pub const MAX_CONFLICT_RETRIES: usize = 8;

/// What the analyser needs besides the store.
#[derive(Debug)]
pub struct AnalyzerConfig {
    /// Signs plans; devices trust its public key like a publisher key.
    pub plan_key: SecretKey,
    pub rules: StageRules,
}

/// What one run did (for logs, the CLI and tests; no personal data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AnalysisReport {
    pub calls_analysed: u64,
    /// Calls with nothing to analyse (no `call_started`, a preview): marked done.
    pub calls_skipped: u64,
    pub conflicts_retried: u64,
    pub calls_failed: u64,
    /// HCP profiles analysed before summaries existed, summarised (once).
    pub profiles_summarised: u64,
    pub plans: u64,
    pub microsites: u64,
}

/// The analysis worker over one store.
#[derive(Debug, Clone)]
pub struct Analyzer {
    store: Arc<dyn HubStore>,
    config: Arc<AnalyzerConfig>,
    link_key: [u8; 32],
    /// Keys the visit ids microsite pages carry (`microsite::issue_visit_id`).
    visit_key: [u8; 32],
    /// Whose claims on the analysis queue are this worker's (one per analyzer: several hub
    /// processes on one PostgreSQL database share the queue without analysing a call twice).
    owner: String,
    /// One run at a time per analyzer: a manual run (`hub analyze`, tests) waits for the
    /// background worker's, then finds what is left (claims are skipped while another
    /// transaction is taking them, so two runs of one process would not see each other's).
    run_lock: Arc<std::sync::Mutex<()>>,
}

impl Analyzer {
    pub fn new(store: Arc<dyn HubStore>, config: AnalyzerConfig) -> Analyzer {
        let link_key = Sha256Digest::of(format!("edetail microsite links\n{}", config.plan_key.to_file_text()).as_bytes()).0;
        let visit_key = Sha256Digest::of(format!("edetail microsite visits\n{}", config.plan_key.to_file_text()).as_bytes()).0;
        Analyzer {
            store,
            config: Arc::new(config),
            link_key,
            visit_key,
            owner: format!("analyzer-{}", uuid::Uuid::new_v4()),
            run_lock: Arc::default(),
        }
    }

    /// The plan key's public half, for devices.
    pub fn plan_public_key(&self) -> edetail_bundle::PublicKey {
        self.config.plan_key.public()
    }

    /// The secret token of a microsite's link. Derived from the hub's key and the microsite id
    /// (keyed hash in the HMAC shape), so the hub can show an operator the link again while its
    /// database holds only the token's SHA-256.
    pub fn microsite_token(&self, microsite_id: &str) -> String {
        let inner = Sha256Digest::of(&[&self.link_key[..], microsite_id.as_bytes()].concat());
        Sha256Digest::of(&[&self.link_key[..], &inner.0[..]].concat()).to_hex()
    }

    /// The keyed hash (HMAC shape, key derived from the plan key) of a microsite visit id's
    /// fields, so every hub process sharing the plan key can verify the ids any of them issued.
    pub(crate) fn visit_tag(&self, fields: &str) -> [u8; 32] {
        let inner = Sha256Digest::of(&[&self.visit_key[..], fields.as_bytes()].concat());
        Sha256Digest::of(&[&self.visit_key[..], &inner.0[..]].concat()).0
    }

    /// Analyses every queued call (until the queue is empty or only failing calls remain).
    pub fn run(&self) -> Result<AnalysisReport> {
        let _turn = self.run_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = AnalysisReport { profiles_summarised: self.summarise_old_profiles()?, ..AnalysisReport::default() };
        loop {
            let queued = self.store.claim_calls(BATCH, &self.owner, Utc::now(), CLAIM_LEASE)?;
            if queued.is_empty() {
                return Ok(report);
            }
            let mut progressed = false;
            for call in &queued {
                match self.analyse_with_retries(call, &mut report) {
                    Ok(true) => progressed = true,
                    Ok(false) => {}
                    Err(e) => {
                        // Never the payloads: the error names the call and what failed.
                        tracing::warn!(device = %call.device_id, call = %call.call_id, error = %e, "call analysis failed");
                        report.calls_failed += 1;
                        self.store.analysis_failed(call.queue_id, &e.to_string())?;
                        progressed = true;
                    }
                }
            }
            if !progressed {
                return Ok(report);
            }
        }
    }

    /// Summarises HCP profiles analysed before summaries existed (once: afterwards every
    /// analysis commit writes the summary with the profile). Answers how many.
    fn summarise_old_profiles(&self) -> Result<u64> {
        let mut done = 0;
        loop {
            let docs = self.store.unsummarised_profiles(SUMMARY_BATCH)?;
            if docs.is_empty() {
                return Ok(done);
            }
            let summaries = docs
                .iter()
                .map(|d| from_doc::<HcpProfile>(d).map(|p| HcpSummary { hcp_id: d.key.clone(), ..summary_of(&p) }))
                .collect::<Result<Vec<_>>>()?;
            self.store.put_hcp_summaries(&summaries)?;
            done += summaries.len() as u64;
        }
    }

    fn analyse_with_retries(&self, call: &QueuedCall, report: &mut AnalysisReport) -> Result<bool> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            if self.analyse(call, report)? {
                return Ok(true);
            }
            report.conflicts_retried += 1;
        }
        Ok(false)
    }

    /// One attempt: reads, computes, commits. `Ok(false)` on an optimistic conflict.
    fn analyse(&self, call: &QueuedCall, report: &mut AnalysisReport) -> Result<bool> {
        let now = Utc::now();
        let events = self.store.call_events(&call.device_id, &call.call_id)?;
        let input = CallInput {
            call_key: format!("{}/{}", call.device_id, call.call_id),
            device_id: call.device_id.clone(),
            territory: call.territory.clone(),
            events: events
                .into_iter()
                .map(|e| AnalyzedEvent { uuid: e.uuid, kind: e.kind, at: e.recorded_at_corrected, payload: e.payload })
                .collect(),
        };
        let skip = |report: &mut AnalysisReport| -> Result<bool> {
            let done = self.store.commit_analysis(&AnalysisCommit {
                queue_id: call.queue_id,
                docs: vec![],
                summaries: vec![],
                plans: vec![],
                microsites: vec![],
                now,
            })?;
            if done {
                report.calls_skipped += 1;
            }
            Ok(done)
        };
        let Some(header) = analytics::call_header(&input) else { return skip(report) };
        if header.channel == "preview" {
            return skip(report);
        }
        let manifest = match self.manifest(&header.bundle_id, header.bundle_version)? {
            Some(m) => m,
            // A bundle this hub never published (content side-loaded for a test): nothing to fold into.
            None => return skip(report),
        };
        let deck = DeckMeta::from_manifest(&manifest);

        let mut keys = vec![(DOC_DECK.to_string(), header.bundle_id.clone())];
        if let Some(h) = &header.hcp_id {
            keys.push((DOC_HCP.to_string(), h.clone()));
        }
        let docs = self.store.load_docs(&keys)?;
        let (mut stats, deck_version): (DeckStats, i64) = parse_doc(docs[0].as_ref())?;
        let mut profile: Option<(HcpProfile, i64)> = match &header.hcp_id {
            Some(h) => {
                let (p, v): (Option<HcpProfile>, i64) = match docs.get(1).and_then(Option::as_ref) {
                    Some(d) => (Some(from_doc(d)?), d.version),
                    None => (None, 0),
                };
                Some((p.unwrap_or_else(|| HcpProfile::new(h)), v))
            }
            None => None,
        };
        let segment = match &header.hcp_id {
            Some(h) => self.store.hcp_segment(h)?,
            None => None,
        };
        let outcome =
            analytics::analyze_call(&input, &deck, &mut stats, profile.as_mut().map(|(p, _)| p), segment.as_deref(), &self.config.rules);

        let mut commit = AnalysisCommit {
            queue_id: call.queue_id,
            docs: vec![DocWrite {
                kind: DOC_DECK.into(),
                key: header.bundle_id.clone(),
                doc: to_doc(&stats)?,
                expected_version: deck_version,
            }],
            summaries: vec![],
            plans: vec![],
            microsites: vec![],
            now,
        };
        if let Some((profile, version)) = &profile {
            commit.docs.push(DocWrite {
                kind: DOC_HCP.into(),
                key: profile_key(profile),
                doc: to_doc(profile)?,
                expected_version: *version,
            });
            commit.summaries.push(HcpSummary { hcp_id: profile_key(profile), ..summary_of(profile) });
            // Plans go to the territory the HCP was met in; a microsite visit answers in the
            // microsite's territory. Content is selected only from versions that territory is
            // entitled to: a call on a bundle its territory may not show (side-loaded, or
            // entitlement narrowed since) still counts in the HCP's profile and the deck's
            // figures (it happened), but yields no plan and no microsite.
            if !call.territory.is_empty() && call.territory != crate::publish::ALL_TERRITORIES {
                if let Some(version) = self.store.latest_entitled_version(&call.territory, &header.bundle_id)? {
                    let plan = self.plan_for(profile, &header.bundle_id, version, &manifest, &deck, &stats, &call.territory, now)?;
                    commit.plans.push(plan);
                }
                if header.channel != "microsite"
                    && let Some(want) = &outcome.wants_microsite
                    && self.store.bundle_zip(&call.territory, &header.bundle_id, manifest.version)?.is_some()
                {
                    let slides = analytics::microsite_slides(profile, &deck, &want.topics, MICROSITE_MAX_SLIDES);
                    if !slides.is_empty() {
                        let id = uuid::Uuid::new_v4().to_string();
                        let token = self.microsite_token(&id);
                        commit.microsites.push(Microsite {
                            token_sha256: Sha256Digest::of(token.as_bytes()).to_hex(),
                            id,
                            hcp_id: profile_key(profile),
                            territory: call.territory.clone(),
                            bundle_id: header.bundle_id.clone(),
                            bundle_version: manifest.version,
                            slides,
                            topics: want.topics.clone(),
                            reason: want.why.join("; "),
                            created_at: now,
                            expires_at: now + MICROSITE_VALIDITY,
                            views: 0,
                        });
                    }
                }
            }
        }
        let (plans, microsites) = (commit.plans.len() as u64, commit.microsites.len() as u64);
        if self.store.commit_analysis(&commit)? {
            report.calls_analysed += 1;
            report.plans += plans;
            report.microsites += microsites;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// The manifest a call was made on, or the current one when that version is unknown here.
    fn manifest(&self, bundle_id: &str, version: u64) -> Result<Option<Manifest>> {
        let bytes = match self.store.bundle_manifest(bundle_id, version)? {
            Some(b) => Some(b),
            None => match self.store.current_version(bundle_id)? {
                Some(v) => self.store.bundle_manifest(bundle_id, v)?,
                None => None,
            },
        };
        bytes.map(|b| Manifest::from_slice(&b).map_err(|e| Error::Internal(format!("stored manifest of {bundle_id}: {e}")))).transpose()
    }

    /// The next-call plan on `version` of the bundle (the newest the territory is entitled
    /// to), signed.
    #[allow(clippy::too_many_arguments)]
    fn plan_for(
        &self,
        profile: &HcpProfile,
        bundle_id: &str,
        version: u64,
        call_manifest: &Manifest,
        call_deck: &DeckMeta,
        stats: &DeckStats,
        territory: &str,
        now: DateTime<Utc>,
    ) -> Result<NewPlan> {
        let current = if version != call_manifest.version { self.manifest(bundle_id, version)? } else { None };
        let deck = current.as_ref().map(DeckMeta::from_manifest);
        let deck = deck.as_ref().unwrap_or(call_deck);
        let plan_id = uuid::Uuid::new_v4().to_string();
        let plan: Plan =
            analytics::build_plan_with_rules(profile, deck, stats, territory, &plan_id, now, PLAN_VALIDITY, &self.config.rules);
        let bytes = serde_json::to_vec(&plan).map_err(|e| Error::Internal(format!("serializing a plan: {e}")))?;
        let signature = self.config.plan_key.sign_manifest(&bytes);
        Ok(NewPlan {
            territory: territory.to_string(),
            hcp_id: plan.hcp_id.clone(),
            bundle_id: bundle_id.to_string(),
            plan_id,
            stage: plan.stage.clone(),
            plan: bytes,
            signature,
        })
    }
}

fn profile_key(p: &HcpProfile) -> String {
    p.hcp_id.clone()
}

fn to_doc<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(format!("serializing a document: {e}")))
}

fn from_doc<T: serde::de::DeserializeOwned>(d: &Doc) -> Result<T> {
    serde_json::from_value(d.doc.clone()).map_err(|e| Error::Internal(format!("stored {} document {}: {e}", d.kind, d.key)))
}

/// A document and its version, or the default at version 0 when absent.
fn parse_doc<T: serde::de::DeserializeOwned + Default>(d: Option<&Doc>) -> Result<(T, i64)> {
    match d {
        Some(d) => Ok((from_doc(d)?, d.version)),
        None => Ok((T::default(), 0)),
    }
}

impl AnalyzerConfig {
    /// A fresh random plan key and the built-in rules (tests, benchmarks, throwaway hubs).
    pub fn generated() -> Result<AnalyzerConfig> {
        let plan_key = SecretKey::generate().map_err(|e| Error::Internal(format!("generating a plan key: {e}")))?;
        Ok(AnalyzerConfig { plan_key, rules: StageRules::default() })
    }
}

/// What the dashboard's lists need of a profile ([`HcpSummary`]).
pub(crate) fn summary_of(p: &HcpProfile) -> HcpSummary {
    let mut channels: Vec<String> = p.products.values().flat_map(|f| f.channels.keys().cloned()).collect();
    channels.sort();
    channels.dedup();
    HcpSummary {
        hcp_id: p.hcp_id.clone(),
        calls: p.calls,
        last_call_at: p.last_call_at,
        top_topic: p.top_topics().first().map(|(t, _)| t.to_string()),
        stages: p.products.iter().map(|(prod, f)| (prod.clone(), f.stage.as_str().to_string())).collect(),
        channels,
    }
}
