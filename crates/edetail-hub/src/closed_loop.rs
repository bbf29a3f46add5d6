//! The closed loop on the hub: the worker that analyses each finished call once (deck and HCP
//! documents through `analytics`), answers the HCP with a signed plan for the next call, and
//! opens a follow-up microsite when the HCP asked for one or showed strong interest.
//!
//! Exactly once per call: the store queues a call in the ingest transaction that stored its
//! end, and `commit_analysis` marks it done in the same transaction as the documents, plans and
//! microsites it produced, with optimistic versions on the documents. A worker that loses a
//! race (another hub process, a concurrent call of the same HCP) writes nothing and retries
//! from fresh reads. Several hub processes may run this worker on one PostgreSQL.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use edetail_bundle::{Manifest, SecretKey, Sha256Digest};
use edetail_protocol::Plan;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::analytics::{self, AnalyzedEvent, CallInput, DeckMeta, DeckStats, HcpProfile, StageRules};
use crate::error::{Error, Result};
use crate::store::{AnalysisCommit, Doc, DocJson, DocMerge, DocText, DocWrite, HcpSummary, HubStore, Microsite, NewPlan, QueuedCall};

/// Document kinds in the store.
pub const DOC_HCP: &str = "hcp";
pub const DOC_DECK: &str = "deck";
/// A plan is offered on devices for this long after it was made.
pub const PLAN_VALIDITY: Duration = Duration::days(30);
/// A microsite link works for this long.
pub const MICROSITE_VALIDITY: Duration = Duration::days(14);
/// At most this many slides on a microsite.
pub const MICROSITE_MAX_SLIDES: usize = 6;
/// Calls claimed, read and committed together.
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

impl AnalysisReport {
    fn add(&mut self, o: &AnalysisReport) {
        self.calls_analysed += o.calls_analysed;
        self.calls_skipped += o.calls_skipped;
        self.conflicts_retried += o.conflicts_retried;
        self.calls_failed += o.calls_failed;
        self.profiles_summarised += o.profiles_summarised;
        self.plans += o.plans;
        self.microsites += o.microsites;
    }
}

/// A published bundle version as the analysis needs it.
#[derive(Debug)]
struct Content {
    manifest: Manifest,
    deck: DeckMeta,
}

/// Published bundle versions by `(bundle_id, version)`.
type ContentCache = BTreeMap<(String, u64), Arc<Content>>;

/// How the store folds a batch's deck statistics into the stored ones ([`DocMerge`]).
fn merge_deck_stats(stored: Option<&Value>, delta: &Value) -> Result<Value> {
    let mut stats: DeckStats = match stored {
        Some(v) => DeckStats::deserialize(v).map_err(|e| Error::Internal(format!("stored deck statistics: {e}")))?,
        None => DeckStats::default(),
    };
    stats.merge(&DeckStats::deserialize(delta).map_err(|e| Error::Internal(format!("deck statistics delta: {e}")))?);
    to_doc(&stats)
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
    run_lock: Arc<Mutex<()>>,
    /// Published bundle versions seen, by `(bundle_id, version)` (they never change).
    contents: Arc<Mutex<ContentCache>>,
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
            contents: Arc::default(),
        }
    }

    /// The operator's respond policy (stage rules, plan bound, experiment).
    pub fn rules(&self) -> &StageRules {
        &self.config.rules
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
            // The claimed calls in one commit; one by one when that keeps conflicting or fails,
            // so a failure is recorded against the call that caused it.
            let whole = if queued.len() > 1 { self.analyse_with_retries(&queued, &mut report) } else { Ok(false) };
            let progressed = match whole {
                Ok(true) => true,
                Ok(false) | Err(_) => {
                    if let Err(e) = whole {
                        tracing::debug!(calls = queued.len(), error = %e, "batch analysis failed; analysing its calls one by one");
                    }
                    let mut progressed = false;
                    for call in &queued {
                        match self.analyse_with_retries(std::slice::from_ref(call), &mut report) {
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
                    progressed
                }
            };
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

    fn analyse_with_retries(&self, calls: &[QueuedCall], report: &mut AnalysisReport) -> Result<bool> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            if let Some(done) = self.analyse(calls)? {
                report.add(&done);
                return Ok(true);
            }
            report.conflicts_retried += 1;
        }
        Ok(false)
    }

    /// One attempt at a batch of calls (in queue order): reads them all, folds each into its
    /// deck's statistics and its HCP's profile in memory, makes each HCP's plan from the
    /// profile after the batch, and commits everything at once. `None` on an optimistic
    /// conflict (nothing written).
    fn analyse(&self, calls: &[QueuedCall]) -> Result<Option<AnalysisReport>> {
        let now = Utc::now();
        let mut report = AnalysisReport::default();
        let refs: Vec<(String, String)> = calls.iter().map(|c| (c.device_id.clone(), c.call_id.clone())).collect();
        let events = self.store.calls_events(&refs)?;

        // The calls there is something to fold in (a header, not a preview, a known bundle).
        let mut work = Vec::new();
        for (call, events) in calls.iter().zip(events) {
            let input = CallInput {
                call_key: format!("{}/{}", call.device_id, call.call_id),
                device_id: call.device_id.clone(),
                territory: call.territory.clone(),
                events: events
                    .into_iter()
                    .map(|e| AnalyzedEvent { uuid: e.uuid, kind: e.kind, at: e.recorded_at_corrected, payload: e.payload })
                    .collect(),
            };
            let Some(header) = analytics::call_header(&input).filter(|h| h.channel != "preview") else {
                report.calls_skipped += 1;
                continue;
            };
            // A bundle this hub never published (content side-loaded for a test): nothing to fold into.
            let Some(content) = self.content(&header.bundle_id, header.bundle_version)? else {
                report.calls_skipped += 1;
                continue;
            };
            work.push((call, input, header, content));
        }

        // Each deck's statistics and each HCP's profile, read once for the batch.
        let mut keys: Vec<(String, String)> = Vec::new();
        for (_, _, h, _) in &work {
            let mut push = |k: (String, String)| {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            };
            push((DOC_DECK.to_string(), h.bundle_id.clone()));
            if let Some(hcp) = &h.hcp_id {
                push((DOC_HCP.to_string(), hcp.clone()));
            }
        }
        // Read as text and deserialized straight into the analysis types (no `Value` between).
        let docs = self.store.load_doc_texts(&keys)?;
        let mut decks: BTreeMap<String, (DeckStats, DeckStats)> = BTreeMap::new();
        let mut profiles: BTreeMap<String, (HcpProfile, i64)> = BTreeMap::new();
        for ((kind, key), doc) in keys.iter().zip(&docs) {
            if kind == DOC_DECK {
                let stats: DeckStats = match doc {
                    Some(d) => from_text(kind, key, d)?,
                    None => DeckStats::default(),
                };
                let stats = if stats.bundle_id.is_empty() { DeckStats::new(key) } else { stats };
                decks.insert(key.clone(), (stats.clone(), stats));
            } else {
                let profile = match doc {
                    Some(d) => (from_text(kind, key, d)?, d.version),
                    None => (HcpProfile::new(key), 0),
                };
                profiles.insert(key.clone(), profile);
            }
        }
        let hcp_ids: Vec<String> = profiles.keys().cloned().collect();
        let segments = if hcp_ids.is_empty() { Default::default() } else { self.store.hcp_segments(&hcp_ids)? };

        let mut entitled: BTreeMap<(String, String), Option<u64>> = BTreeMap::new();
        let mut zips: BTreeMap<(String, String, u64), bool> = BTreeMap::new();
        // (territory, HCP, bundle) -> what the plan is made on; the last call's wins.
        let mut wanted: BTreeMap<(String, String, String), (u64, Arc<Content>)> = BTreeMap::new();
        let mut microsites = Vec::new();
        for (call, input, header, content) in &work {
            let stats = &mut decks.get_mut(&header.bundle_id).expect("every deck was loaded").1;
            let mut profile = header.hcp_id.as_ref().map(|h| &mut profiles.get_mut(h).expect("every profile was loaded").0);
            let segment = header.hcp_id.as_ref().and_then(|h| segments.get(h)).map(String::as_str);
            let outcome = analytics::analyze_call(input, &content.deck, stats, profile.as_deref_mut(), segment, &self.config.rules);
            report.calls_analysed += 1;
            let Some(profile) = profile else { continue };
            // Plans go to the territory the HCP was met in; a microsite visit answers in the
            // microsite's territory. Content is selected only from versions that territory is
            // entitled to: a call on a bundle its territory may not show (side-loaded, or
            // entitlement narrowed since) still counts in the HCP's profile and the deck's
            // figures (it happened), but yields no plan and no microsite.
            if call.territory.is_empty() || call.territory == crate::publish::ALL_TERRITORIES {
                continue;
            }
            let key = (call.territory.clone(), header.bundle_id.clone());
            let version = match entitled.get(&key) {
                Some(v) => *v,
                None => {
                    let v = self.store.latest_entitled_version(&call.territory, &header.bundle_id)?;
                    *entitled.entry(key).or_insert(v)
                }
            };
            if let Some(version) = version {
                wanted.insert((call.territory.clone(), profile_key(profile), header.bundle_id.clone()), (version, content.clone()));
            }
            if header.channel != "microsite"
                && let Some(want) = &outcome.wants_microsite
            {
                let zkey = (call.territory.clone(), header.bundle_id.clone(), content.manifest.version);
                let has_zip = match zips.get(&zkey) {
                    Some(z) => *z,
                    None => {
                        let z = self.store.bundle_zip(&call.territory, &header.bundle_id, content.manifest.version)?.is_some();
                        *zips.entry(zkey).or_insert(z)
                    }
                };
                let slides =
                    if has_zip { analytics::microsite_slides(profile, &content.deck, &want.topics, MICROSITE_MAX_SLIDES) } else { vec![] };
                if !slides.is_empty() {
                    let id = uuid::Uuid::new_v4().to_string();
                    let token = self.microsite_token(&id);
                    microsites.push(Microsite {
                        token_sha256: Sha256Digest::of(token.as_bytes()).to_hex(),
                        id,
                        hcp_id: profile_key(profile),
                        territory: call.territory.clone(),
                        bundle_id: header.bundle_id.clone(),
                        bundle_version: content.manifest.version,
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

        // Each HCP's plan, from her profile after the whole batch.
        let mut plans = Vec::new();
        for ((territory, hcp, bundle_id), (version, content)) in &wanted {
            let stats = &decks[bundle_id].1;
            let (new_plan, plan) = self.plan_for(&profiles[hcp].0, bundle_id, *version, content, stats, territory, now)?;
            // Her open plan (settled by her next call) and, with her first, her experiment arm.
            analytics::note_plan_sent(&mut profiles.get_mut(hcp).expect("every profile was loaded").0, &plan);
            plans.push(new_plan);
        }
        let mut commit = AnalysisCommit {
            queue_ids: calls.iter().map(|c| c.queue_id).collect(),
            docs: vec![],
            merges: vec![],
            summaries: vec![],
            plans,
            microsites,
            now,
        };
        for (bundle_id, (base, folded)) in &decks {
            commit.merges.push(DocMerge {
                kind: DOC_DECK.into(),
                key: bundle_id.clone(),
                delta: to_doc(&folded.delta_since(base))?,
                merge: merge_deck_stats,
            });
        }
        for (profile, version) in profiles.values() {
            commit.docs.push(DocWrite {
                kind: DOC_HCP.into(),
                key: profile_key(profile),
                doc: DocJson::of(profile)?,
                expected_version: *version,
            });
            commit.summaries.push(HcpSummary { hcp_id: profile_key(profile), ..summary_of(profile) });
        }
        report.plans = commit.plans.len() as u64;
        report.microsites = commit.microsites.len() as u64;
        Ok(self.store.commit_analysis(&commit)?.then_some(report))
    }

    /// A bundle version's manifest and deck (cached: published versions never change), or the
    /// current version's when this one is unknown here.
    fn content(&self, bundle_id: &str, version: u64) -> Result<Option<Arc<Content>>> {
        if let Some(c) = self.contents.lock().unwrap_or_else(|p| p.into_inner()).get(&(bundle_id.to_string(), version)) {
            return Ok(Some(c.clone()));
        }
        let Some(manifest) = self.manifest(bundle_id, version)? else { return Ok(None) };
        let content = Arc::new(Content { deck: DeckMeta::from_manifest(&manifest), manifest });
        if content.manifest.version == version {
            self.contents.lock().unwrap_or_else(|p| p.into_inner()).insert((bundle_id.to_string(), version), content.clone());
        }
        Ok(Some(content))
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
        call_content: &Content,
        stats: &DeckStats,
        territory: &str,
        now: DateTime<Utc>,
    ) -> Result<(NewPlan, Plan)> {
        let current = if version != call_content.manifest.version { self.content(bundle_id, version)? } else { None };
        let deck = current.as_ref().map_or(&call_content.deck, |c| &c.deck);
        let plan_id = uuid::Uuid::new_v4().to_string();
        let plan: Plan =
            analytics::build_plan_with_rules(profile, deck, stats, territory, &plan_id, now, PLAN_VALIDITY, &self.config.rules);
        let bytes = serde_json::to_vec(&plan).map_err(|e| Error::Internal(format!("serializing a plan: {e}")))?;
        let signature = self.config.plan_key.sign_manifest(&bytes);
        let new_plan = NewPlan {
            territory: territory.to_string(),
            hcp_id: plan.hcp_id.clone(),
            bundle_id: bundle_id.to_string(),
            plan_id,
            stage: plan.stage.clone(),
            plan: bytes,
            signature,
        };
        Ok((new_plan, plan))
    }
}

fn profile_key(p: &HcpProfile) -> String {
    p.hcp_id.clone()
}

fn to_doc<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(format!("serializing a document: {e}")))
}

fn from_doc<T: serde::de::DeserializeOwned>(d: &Doc) -> Result<T> {
    // From the value in place: no copy of the whole document first.
    T::deserialize(&d.doc).map_err(|e| Error::Internal(format!("stored {} document {}: {e}", d.kind, d.key)))
}

fn from_text<T: serde::de::DeserializeOwned>(kind: &str, key: &str, d: &DocText) -> Result<T> {
    serde_json::from_str(&d.text).map_err(|e| Error::Internal(format!("stored {kind} document {key}: {e}")))
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
        experiment: p
            .products
            .iter()
            .filter_map(|(prod, f)| {
                Some(crate::store::ExperimentUnit {
                    product: prod.clone(),
                    arm: f.arm.clone()?,
                    enrolled_at: f.enrolled_at?,
                    enrol_level: f.stage_at_enrolment.level(),
                    level: f.stage.level(),
                })
            })
            .collect(),
    }
}
