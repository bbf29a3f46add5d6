//! The hub's store: everything the hub keeps besides blob bytes, behind one narrow trait per
//! concern (credentials, feed, ingest, analysis, CRM imports, privacy, audit) and `HubStore`,
//! their union. Two implementations, split by the same concerns: SQLite (`sqlite/`, the
//! zero-setup default) and PostgreSQL (`postgres/`, shared by several hub processes). Methods
//! are synchronous: HTTP handlers call them through `tokio::task::spawn_blocking`. One
//! behavioural test suite (`tests/store_suite.rs`) runs against both.

pub(crate) mod group_commit;
pub mod postgres;
pub mod sqlite;

use chrono::{DateTime, Utc};
use edetail_protocol::{ConsentRecord, Erasure, Revocation, Tracking, WireEvent};
use serde::Serialize;

use crate::error::{Error, Result};

pub use crate::ingest::{BatchOutcome, CheckedEvent, FOREIGN_UUID, seq_reused};

/// A registered device, as found by its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: String,
    pub rep_id: String,
    pub territory: String,
    pub watermark: i64,
    pub skew_ms: i64,
    /// Last authenticated request recorded (requests are recorded at most every
    /// `TOUCH_INTERVAL`, and every upload batch).
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// A bundle version ready to be recorded (its blobs are already durable).
#[derive(Debug, Clone)]
pub struct NewBundleVersion {
    pub bundle_id: String,
    pub version: u64,
    pub product: String,
    pub manifest: Vec<u8>,
    pub signature: Vec<u8>,
    /// `(sha256 hex, size)` of every file in the manifest, deduplicated.
    pub files: Vec<(String, u64)>,
    pub zip_sha256: String,
    pub zip_size: u64,
    /// Territories entitled; `"*"` means every territory.
    pub territories: Vec<String>,
    pub publisher: Option<String>,
    pub published_at: DateTime<Utc>,
    /// The publish claim this version ends (ADR 0016): deleted, with its blob leases, in the
    /// insert's transaction; the insert fails with `Unavailable` unless the claim is still
    /// held and unexpired at `published_at`. `None` records the version without a claim.
    pub claim_id: Option<String>,
}

/// A publish's claim on a bundle version (ADR 0016): held until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishClaim {
    pub bundle_id: String,
    pub version: u64,
    pub claim_id: String,
    pub expires_at: DateTime<Utc>,
}

/// A bundle version as offered in the change feed.
#[derive(Debug, Clone)]
pub struct FeedBundle {
    pub feed_seq: i64,
    pub bundle_id: String,
    pub version: u64,
    pub manifest: Vec<u8>,
    pub signature: Vec<u8>,
    pub total_size: u64,
}

/// A revocation in the change feed.
#[derive(Debug, Clone)]
pub struct FeedRevocation {
    pub feed_seq: i64,
    pub revocation: Revocation,
}

/// A signed plan in the change feed.
#[derive(Debug, Clone)]
pub struct FeedPlan {
    pub feed_seq: i64,
    pub plan: Vec<u8>,
    pub signature: Vec<u8>,
}

/// An erased HCP in the change feed (every territory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedErasure {
    pub feed_seq: i64,
    pub erasure: Erasure,
}

/// A consent record in the change feed (every territory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConsent {
    pub feed_seq: i64,
    pub consent: ConsentRecord,
}

/// What an erasure removed from the hub (counts only: safe to log and audit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    /// Calls (device calls and microsite visits) whose events were removed.
    pub calls: u64,
    pub events: u64,
    pub docs: u64,
    pub plans: u64,
    pub microsites: u64,
    pub segments: u64,
    pub prescriptions: u64,
    /// A new erasure went into the change feed (false: the HCP was already erased and nothing
    /// new was found, so the earlier feed item stands).
    pub fed: bool,
}

impl ErasureReport {
    pub fn removed_anything(&self) -> bool {
        self.calls + self.events + self.docs + self.plans + self.microsites + self.segments + self.prescriptions > 0
    }
}

/// One page of a territory's change feed, items in feed order.
#[derive(Debug, Clone, Default)]
pub struct FeedPage {
    pub bundles: Vec<FeedBundle>,
    pub revocations: Vec<FeedRevocation>,
    pub plans: Vec<FeedPlan>,
    pub erasures: Vec<FeedErasure>,
    pub consents: Vec<FeedConsent>,
    /// Cursor after this page (feed sequence number).
    pub next_cursor: i64,
    pub has_more: bool,
}

/// Per-device figures for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceStats {
    pub device_id: String,
    pub rep_id: String,
    pub territory: String,
    pub created_at: String,
    /// Last authenticated request (any route).
    pub last_seen_at: Option<String>,
    pub watermark: i64,
    pub skew_ms: i64,
    pub events_received: u64,
    pub duplicates_absorbed: u64,
    pub rejected: u64,
    /// Every stored event up to this seq was pruned after analysis (0: none).
    pub pruned_through_seq: i64,
    /// Events deleted by pruning after analysis.
    pub events_pruned: u64,
}

/// A territory and the products it sells (empty: not restricted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Territory {
    pub name: String,
    pub products: Vec<String>,
    pub devices: u64,
}

/// Hub-wide figures (`edetail hub stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HubStats {
    pub devices: Vec<DeviceStats>,
    pub publishers: u64,
    pub bundles: u64,
    pub bundle_versions: u64,
    pub revocations: u64,
    pub events_received: u64,
    pub duplicates_absorbed: u64,
    pub rejected: u64,
    /// Events deleted by pruning after analysis (`edetail hub prune-events`).
    pub events_pruned: u64,
    /// Which store backend (`sqlite`, `postgres`).
    pub store: String,
}

/// The pseudo-device under which the hub records microsite visits (a call per visit).
pub const MICROSITE_DEVICE: &str = "microsite";
/// A call whose analysis failed this many times stays queued with its error, skipped.
pub const MAX_ANALYSIS_ATTEMPTS: i64 = 5;

/// A call the analysis worker parked: its analysis failed `MAX_ANALYSIS_ATTEMPTS` times, so it
/// stays in the queue with the last error, is skipped (never blocks other calls) and is shown
/// on the dashboard's sync page. The reason names no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkedCall {
    pub device_id: String,
    pub call_id: String,
    pub attempts: i64,
    pub reason: String,
}

/// A finished call waiting for analysis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedCall {
    pub queue_id: i64,
    pub device_id: String,
    pub call_id: String,
    /// The territory of the device (for a microsite visit: the microsite's).
    pub territory: String,
    pub attempts: i64,
}

/// A stored event as analysis reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub uuid: String,
    pub seq: i64,
    pub kind: String,
    pub recorded_at_corrected: DateTime<Utc>,
    pub payload: serde_json::Value,
}

/// A derived-state document and the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub kind: String,
    pub key: String,
    pub doc: serde_json::Value,
    pub version: i64,
}

/// A stored document's JSON text and version.
#[derive(Debug, Clone, PartialEq)]
pub struct DocText {
    pub text: String,
    pub version: i64,
}

/// A document to write: `expected_version` is the version read (0: it did not exist).
#[derive(Debug, Clone, PartialEq)]
pub struct DocWrite {
    pub kind: String,
    pub key: String,
    pub doc: DocJson,
    pub expected_version: i64,
}

/// A document's JSON text, serialized once from the value it is made of: analysis writes
/// every batch's HCP documents (about 22 kB each at 10 M events), and going through a
/// `serde_json::Value` first cost a second serialization and thousands of allocations each.
#[derive(Debug, Clone, PartialEq)]
pub struct DocJson(String);

impl DocJson {
    /// `value` as JSON text.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Result<DocJson> {
        serde_json::to_string(value).map(DocJson).map_err(|e| Error::Internal(format!("serializing a document: {e}")))
    }

    /// The JSON text, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Folds a worker's change into the stored document: `merge(stored, delta)` (stored `None`
/// when absent) is the new document.
pub type MergeFn = fn(Option<&serde_json::Value>, &serde_json::Value) -> Result<serde_json::Value>;

/// A document of counters several workers add to at once (deck statistics): the store reads it
/// under the row's lock inside the commit and writes `merge(stored, delta)`, so concurrent
/// commits never conflict on it (and none of their additions is lost).
#[derive(Debug, Clone)]
pub struct DocMerge {
    pub kind: String,
    pub key: String,
    pub delta: serde_json::Value,
    pub merge: MergeFn,
}

/// A signed plan to put in a territory's change feed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlan {
    pub territory: String,
    pub hcp_id: String,
    pub bundle_id: String,
    pub plan_id: String,
    pub stage: String,
    pub plan: Vec<u8>,
    pub signature: Vec<u8>,
}

/// A follow-up microsite (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Microsite {
    pub id: String,
    #[serde(skip)]
    pub token_sha256: String,
    pub hcp_id: String,
    pub territory: String,
    pub bundle_id: String,
    pub bundle_version: u64,
    pub slides: Vec<String>,
    pub topics: Vec<String>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub views: u64,
}

/// Everything one analysis batch writes, in one transaction.
#[derive(Debug, Clone)]
pub struct AnalysisCommit {
    /// The queue rows of the calls analysed (or skipped), marked done; nothing is written when
    /// any of them is done already.
    pub queue_ids: Vec<i64>,
    /// Written with optimistic versions (HCP profiles): nothing is written when one moved.
    pub docs: Vec<DocWrite>,
    /// Added to under the row's lock, last in the transaction (deck statistics).
    pub merges: Vec<DocMerge>,
    /// The summaries of the HCP profiles among `docs`, replaced with them.
    pub summaries: Vec<HcpSummary>,
    pub plans: Vec<NewPlan>,
    pub microsites: Vec<Microsite>,
    pub now: DateTime<Utc>,
}

/// What the dashboard's HCP lists and counts need of one HCP, kept beside her profile by every
/// analysis commit that writes it: lists, stage counts and channel reach never load profiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct HcpSummary {
    pub hcp_id: String,
    pub calls: u64,
    pub last_call_at: Option<DateTime<Utc>>,
    /// Her strongest interest, if any.
    pub top_topic: Option<String>,
    /// `(product, stage)` by product.
    pub stages: Vec<(String, String)>,
    /// Channels she was reached on (any product), sorted.
    pub channels: Vec<String>,
    /// Her part in the built-in experiment, per product she has had a plan for.
    #[serde(default)]
    pub experiment: Vec<ExperimentUnit>,
}

/// One HCP in the built-in experiment for one product (`experiment_units`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ExperimentUnit {
    pub product: String,
    /// `treatment` or `holdout`.
    pub arm: String,
    /// Her first plan for the product.
    pub enrolled_at: DateTime<Utc>,
    /// Ladder rungs (0 unaware .. 4 advocate) then and now.
    pub enrol_level: u8,
    pub level: u8,
}

/// Each arm's sums over one product's experiment figures (what the experiment page compares).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExperimentSums {
    /// Stage progression per 30 days since enrolment, by arm.
    pub progression: std::collections::BTreeMap<String, crate::analytics::Moments>,
    /// Prescription change (mean monthly count from the enrolment month on minus before), by
    /// arm; HCPs without prescriptions on both sides are not in it.
    pub rx_change: std::collections::BTreeMap<String, crate::analytics::Moments>,
}

/// What pruning after analysis removed ([`IngestStore::prune_analysed_events`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Devices whose pruned prefix grew.
    pub devices: u64,
    /// Events deleted.
    pub events: u64,
}

impl PruneReport {
    pub fn add(&mut self, o: PruneReport) {
        self.devices += o.devices;
        self.events += o.events;
    }
}

/// About how many events one pruning transaction deletes (the writer is not held for long).
pub const PRUNE_CHUNK: u64 = 20_000;

/// Target-list rows grouped by rep: `rep_id -> HCP ids` (duplicates collapse).
pub(crate) fn target_lists(rows: &[(String, String)]) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut lists: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for (rep, hcp) in rows {
        lists.entry(rep.clone()).or_default().insert(hcp.clone());
    }
    lists
}

/// What a target-list import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TargetImport {
    /// Reps whose lists were replaced.
    pub reps: usize,
    /// Rows on those lists now.
    pub targets: usize,
    /// `(rep, HCP)` pairs that were not on the list before.
    pub added: usize,
    /// Pairs taken off.
    pub removed: usize,
    /// Current plans put in the feed again for newly assigned HCPs.
    pub plans_resent: usize,
}

/// Order of the HCP list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HcpSort {
    /// By id.
    #[default]
    Id,
    /// Most calls first (then by id).
    Calls,
    /// Latest call first (never called last, then by id).
    LastCall,
}

/// One page of the HCP list: filters (all optional, combined), order and window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HcpQuery {
    /// At this stage (for `product` when given, else for any product).
    pub stage: Option<String>,
    /// Detailed on this product.
    pub product: Option<String>,
    /// In this segment (the CRM import's).
    pub segment: Option<String>,
    /// Ids starting with this.
    pub id_prefix: Option<String>,
    /// Called on by a device of this territory (HCPs are not bound to one territory).
    pub territory: Option<String>,
    pub sort: HcpSort,
    pub offset: u64,
    pub limit: u64,
}

impl Default for HcpQuery {
    fn default() -> Self {
        HcpQuery { stage: None, product: None, segment: None, id_prefix: None, territory: None, sort: HcpSort::Id, offset: 0, limit: 50 }
    }
}

/// A page of the HCP list and how many HCPs match the filters in all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HcpPage {
    /// Each HCP with her segment.
    pub rows: Vec<(HcpSummary, Option<String>)>,
    pub total: u64,
}

/// Prescriptions of one HCP for one product in one period (`YYYY-MM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Prescription {
    pub hcp_id: String,
    pub product: String,
    pub period: String,
    pub count: u64,
}

/// What a bearer token opens. Each role opens only its own routes: a device token never opens
/// the dashboard, an operator token never uploads or publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    Device,
    Publisher,
    Operator,
    /// A dashboard login session (its subject is the operator).
    Session,
}

impl TokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Device => "device",
            TokenRole::Publisher => "publisher",
            TokenRole::Operator => "operator",
            TokenRole::Session => "session",
        }
    }

    pub fn parse(s: &str) -> Option<TokenRole> {
        Some(match s {
            "device" => TokenRole::Device,
            "publisher" => TokenRole::Publisher,
            "operator" => TokenRole::Operator,
            "session" => TokenRole::Session,
            _ => return None,
        })
    }
}

/// A stored credential (the token itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub role: TokenRole,
    /// Device id, publisher name or operator name.
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Credential {
    /// Neither revoked nor expired at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| now < t)
    }
}

/// A token to record for an existing subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    pub token_sha256: String,
    pub role: TokenRole,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Rotation: the subject's other live tokens of this role expire at this time at the latest
    /// (the grace period); for an operator, its dashboard sessions too. `None`: they are left
    /// alone.
    pub others_expire_by: Option<DateTime<Utc>>,
}

/// An audit entry to append. `details` is a JSON object that names no person (ids only).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub at: DateTime<Utc>,
    /// Operator or publisher name, a device id, or `cli:<os user>` for CLI admin commands.
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: serde_json::Value,
}

/// An audit entry written in the same transaction as the change it records, so the trail can
/// never miss a change that happened (nor record one that rolled back). `outcome` adds what
/// only the transaction knows (a feed number, how many tokens, what an erasure removed) to the
/// entry's details.
pub struct Audited<T> {
    pub entry: NewAuditEntry,
    pub outcome: fn(&T) -> serde_json::Value,
}

impl<T> Audited<T> {
    /// Audits `entry` as it is (the change's result adds nothing).
    pub fn plain(entry: NewAuditEntry) -> Audited<T> {
        Audited { entry, outcome: |_| serde_json::Value::Null }
    }

    /// The entry to append once the change gave `result`: the outcome's fields (a JSON object;
    /// anything else adds nothing) are added to the details object.
    pub fn entry_for(&self, result: &T) -> NewAuditEntry {
        let mut entry = self.entry.clone();
        if let (serde_json::Value::Object(extra), serde_json::Value::Object(details)) = ((self.outcome)(result), &mut entry.details) {
            details.extend(extra);
        }
        entry
    }
}

impl<T> Clone for Audited<T> {
    fn clone(&self) -> Self {
        Audited { entry: self.entry.clone(), outcome: self.outcome }
    }
}

impl<T> std::fmt::Debug for Audited<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audited").field("entry", &self.entry).finish_non_exhaustive()
    }
}

/// A recorded audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: serde_json::Value,
}

/// Default lifetime of a device token.
pub const DEFAULT_DEVICE_TOKEN_DAYS: i64 = 90;
/// Default lifetime of a publisher token.
pub const DEFAULT_PUBLISHER_TOKEN_DAYS: i64 = 365;
/// Default lifetime of an operator token.
pub const DEFAULT_OPERATOR_TOKEN_DAYS: i64 = 90;

/// Persistent state of a hub (metadata and events; blob bytes live in a `BlobStore`): every
/// concern's trait at once, so `Arc<dyn HubStore>` reaches all of them. Implemented for every
/// type that implements the eight.
pub trait HubStore:
    CredentialStore
    + FeedStore
    + IngestStore
    + AnalysisStore
    + InsightStore
    + CrmStore
    + PrivacyStore
    + AuditStore
    + RemoteStore
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
}

impl<T> HubStore for T where
    T: CredentialStore
        + FeedStore
        + IngestStore
        + AnalysisStore
        + InsightStore
        + CrmStore
        + PrivacyStore
        + AuditStore
        + RemoteStore
        + Send
        + Sync
        + std::fmt::Debug
        + 'static
{
}

/// Which SQL a query is written for (placeholders, collation-safe prefix tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqlDialect {
    Sqlite,
    Postgres,
}

/// How the HCP list's stage, territory and segment filters meet the summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterForm {
    /// The filter's index drives: the matching ids are listed, then their summaries read and
    /// sorted. Best for counting, and for pages of a filter few HCPs match.
    Drive,
    /// The summaries are walked in the page's order (by the order's index) and each is probed
    /// by key, up to the page's end: a page of a filter many HCPs match needs no sort of them.
    Probe,
}

/// A filter matching at least this many HCPs is paged with [`FilterForm::Probe`]: walking the
/// order's index then reads about `(offset + limit) * all / matches` summaries, fewer than the
/// matches a drive would sort.
pub(crate) const PROBE_FROM_MATCHES: u64 = 1_000;

/// The HCP list's filters as SQL over `hcp_summaries s` joined to `hcps h`, with only the
/// filters that are set (a catch-all `?n IS NULL OR ...` form keeps SQLite from driving the
/// query by the stage index: 1.1 s against 5 ms at 100 k events): the `FROM ... WHERE` text and
/// its parameters in order. Both backends use it.
pub(crate) fn hcp_filter(q: &HcpQuery, dialect: SqlDialect, form: FilterForm) -> (String, Vec<String>) {
    let (mut conds, mut args): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let arg = |v: &str, args: &mut Vec<String>| {
        args.push(v.to_string());
        match dialect {
            SqlDialect::Sqlite => format!("?{}", args.len()),
            SqlDialect::Postgres => format!("${}", args.len()),
        }
    };
    // SQLite picks an index by the terms it may use: a unary `+` keeps it from searching
    // `hcp_stages` by stage when each summary is probed by its key.
    let unindexed = if dialect == SqlDialect::Sqlite { "+" } else { "" };
    match (&q.stage, &q.product, form) {
        (Some(stage), Some(product), _) => {
            let (s, p) = (arg(stage, &mut args), arg(product, &mut args));
            conds.push(format!("EXISTS (SELECT 1 FROM hcp_stages t WHERE t.hcp_id = s.hcp_id AND t.product = {p} AND t.stage = {s})"));
        }
        (Some(stage), None, FilterForm::Drive) => {
            let s = arg(stage, &mut args);
            conds.push(format!("s.hcp_id IN (SELECT t.hcp_id FROM hcp_stages t WHERE t.stage = {s})"));
        }
        (Some(stage), None, FilterForm::Probe) => {
            let s = arg(stage, &mut args);
            conds.push(format!("EXISTS (SELECT 1 FROM hcp_stages t WHERE t.hcp_id = s.hcp_id AND {unindexed}t.stage = {s})"));
        }
        (None, Some(product), _) => {
            let p = arg(product, &mut args);
            conds.push(format!("EXISTS (SELECT 1 FROM hcp_stages t WHERE t.hcp_id = s.hcp_id AND t.product = {p})"));
        }
        (None, None, _) => {}
    }
    if let Some(territory) = &q.territory {
        let t = arg(territory, &mut args);
        conds.push(match form {
            FilterForm::Drive => format!("s.hcp_id IN (SELECT ht.hcp_id FROM hcp_territories ht WHERE ht.territory = {t})"),
            FilterForm::Probe => format!("EXISTS (SELECT 1 FROM hcp_territories ht WHERE ht.territory = {t} AND ht.hcp_id = s.hcp_id)"),
        });
    }
    if let Some(segment) = &q.segment {
        let s = arg(segment, &mut args);
        conds.push(match form {
            FilterForm::Drive => format!("h.segment = {s}"),
            FilterForm::Probe => format!("{unindexed}h.segment = {s}"),
        });
    }
    if let Some(prefix) = &q.id_prefix {
        match dialect {
            // Every id with the prefix sorts below prefix + U+10FFFF in SQLite's byte order: a
            // range the primary key serves.
            SqlDialect::Sqlite => {
                let (lo, hi) = (arg(prefix, &mut args), arg(&format!("{prefix}\u{10FFFF}"), &mut args));
                conds.push(format!("s.hcp_id >= {lo} AND s.hcp_id < {hi}"));
            }
            // Compared as a prefix whatever the database's collation.
            SqlDialect::Postgres => {
                let p = arg(prefix, &mut args);
                conds.push(format!("left(s.hcp_id, length({p})) = {p}"));
            }
        }
    }
    let filter = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
    (format!("FROM hcp_summaries s LEFT JOIN hcps h ON h.id = s.hcp_id{filter}"), args)
}

/// The HCP list's count as SQL for `dialect` and its parameters (the filters' indexes drive).
pub(crate) fn hcp_count_sql(q: &HcpQuery, dialect: SqlDialect) -> (String, Vec<String>) {
    let (from, args) = hcp_filter(q, dialect, FilterForm::Drive);
    (format!("SELECT COUNT(*) {from}"), args)
}

/// A page of the HCP list as SQL for `dialect`, knowing how many HCPs match (`matches`, from
/// [`hcp_count_sql`]): the rows (`hcp_id, calls, last_call_at, top_topic, stages, segment`) and
/// their parameters in order.
pub(crate) fn hcp_page_sql(q: &HcpQuery, dialect: SqlDialect, matches: u64) -> (String, Vec<String>) {
    // SQLite sorts NULL below every time, so a descending order puts HCPs never called last
    // and the index on (last_call_at DESC, hcp_id) serves it.
    let order = match (q.sort, dialect) {
        (HcpSort::Id, _) => "s.hcp_id",
        (HcpSort::Calls, _) => "s.calls DESC, s.hcp_id",
        (HcpSort::LastCall, SqlDialect::Sqlite) => "s.last_call_at DESC, s.hcp_id",
        (HcpSort::LastCall, SqlDialect::Postgres) => "s.last_call_at DESC NULLS LAST, s.hcp_id",
    };
    let form = if matches >= PROBE_FROM_MATCHES { FilterForm::Probe } else { FilterForm::Drive };
    let (from, args) = hcp_filter(q, dialect, form);
    let rows = format!(
        "SELECT s.hcp_id, s.calls, s.last_call_at, s.top_topic, s.stages, h.segment {from} ORDER BY {order} LIMIT {} OFFSET {}",
        q.limit.min(i64::MAX as u64),
        q.offset.min(i64::MAX as u64)
    );
    (rows, args)
}

/// The overview's stage funnel: one count per HCP and product, by stage (both dialects).
pub(crate) const STAGE_COUNTS_SQL: &str = "SELECT stage, COUNT(*) FROM hcp_stages GROUP BY stage ORDER BY stage";
/// The channels page's reach: HCPs per channel (both dialects).
pub(crate) const CHANNEL_REACH_SQL: &str = "SELECT channel, COUNT(*) FROM hcp_channels GROUP BY channel ORDER BY channel";

/// The dashboard's lists and counts over HCP summaries (issue 15): indexed SQL, paginated,
/// never a load of every profile.
pub trait InsightStore {
    /// A page of the HCP list.
    fn hcp_page(&self, q: &HcpQuery) -> Result<HcpPage>;
    /// `(stage, count)`: one count per HCP and product, by stage name.
    fn stage_counts(&self) -> Result<Vec<(String, u64)>>;
    /// `(channel, HCPs reached on it)`, by channel.
    fn channel_reach(&self) -> Result<Vec<(String, u64)>>;
    /// HCPs with a summary.
    fn hcp_count(&self) -> Result<u64>;
    /// The territories whose devices called on each of these HCPs (microsite visits aside), by
    /// name; HCPs without a call are absent. One read.
    fn hcp_territories(&self, hcp_ids: &[String]) -> Result<std::collections::HashMap<String, Vec<String>>>;
    /// The territories of the hub's devices, by name (the HCP list's territory filter).
    fn device_territories(&self) -> Result<Vec<String>>;
    /// HCP profiles without a summary (analysed before summaries existed), at most `limit`, by
    /// key: the worker summarises them once.
    fn unsummarised_profiles(&self, limit: usize) -> Result<Vec<Doc>>;
    /// Stores summaries (replacing each HCP's previous one).
    fn put_hcp_summaries(&self, summaries: &[HcpSummary]) -> Result<()>;
    /// Each arm's sums over the product's experiment figures, progression measured at `now`.
    fn experiment_sums(&self, product: &str, now: DateTime<Utc>) -> Result<ExperimentSums>;
}

/// One scan of product `{p}`'s units, summed by arm: count, sum and sum of squares of the
/// progression per 30 days at `{now}` ms (`analytics::experiment::progression_per_30_days`:
/// every unit has one), then of the prescription change from the unit's kept sums
/// (`analytics::experiment::rx_change`: only units with months on both sides).
pub(crate) fn experiment_sums_sql(dialect: SqlDialect) -> String {
    let (p, now, max, f) = match dialect {
        SqlDialect::Sqlite => ("?1", "?2", "MAX", " * 1.0"),
        SqlDialect::Postgres => ("$1", "$2::float8", "GREATEST", "::float8"),
    };
    format!(
        "SELECT arm, COUNT(*), SUM(x), SUM(x * x), COUNT(d), SUM(d), SUM(d * d) FROM (\
           SELECT arm, (level - enrol_level){f} * 30.0 / {max}(({now} - enrolled_at_ms) / 86400000.0, 30.0) AS x, \
                  CASE WHEN rx_before_n > 0 AND rx_after_n > 0 \
                       THEN rx_after_sum{f} / rx_after_n - rx_before_sum{f} / rx_before_n END AS d \
           FROM experiment_units WHERE product = {p}) u GROUP BY arm ORDER BY arm"
    )
}

/// Recomputes the prescription sums of the units of the HCP(s) `{p}` from the imported
/// prescriptions (after a unit is written, and after prescriptions are imported). SQLite: one
/// HCP (`?1`); PostgreSQL: an array of HCPs (`$1`).
pub(crate) fn experiment_rx_refresh_sql(dialect: SqlDialect) -> String {
    let which = match dialect {
        SqlDialect::Sqlite => "hcp_id = ?1",
        SqlDialect::Postgres => "hcp_id = ANY($1)",
    };
    let side = |what: &str, cmp: &str| {
        format!(
            "(SELECT {what} FROM prescriptions r WHERE r.hcp_id = experiment_units.hcp_id \
              AND r.product = experiment_units.product AND r.period {cmp} experiment_units.enrolled_period)"
        )
    };
    format!(
        "UPDATE experiment_units SET rx_before_n = {}, rx_before_sum = {}, rx_after_n = {}, rx_after_sum = {} WHERE {which}",
        side("COUNT(*)", "<"),
        side("COALESCE(SUM(r.count), 0)", "<"),
        side("COUNT(*)", ">="),
        side("COALESCE(SUM(r.count), 0)", ">="),
    )
}

/// Devices, publishers and operators and their tokens (issue 7): registration, lookup by token
/// hash, rotation and revocation.
pub trait CredentialStore {
    /// Registers a device (and its territory when new, unrestricted) with a token valid for
    /// `token_expires_at` (`None`: `DEFAULT_DEVICE_TOKEN_DAYS`), and `audit` appended in the same
    /// transaction.
    #[allow(clippy::too_many_arguments)]
    fn add_device(
        &self,
        device_id: &str,
        rep_id: &str,
        territory: &str,
        token_sha256: &str,
        now: DateTime<Utc>,
        token_expires_at: Option<DateTime<Utc>>,
        audit: Option<&Audited<()>>,
    ) -> Result<()>;
    /// Registers a publisher with its first token (`BadRequest` when the name is taken).
    fn add_publisher(&self, name: &str, token_sha256: &str, now: DateTime<Utc>, audit: Option<&Audited<()>>) -> Result<()>;
    fn device_by_token(&self, token_sha256: &str) -> Result<Option<DeviceRecord>>;
    /// The publisher's name.
    fn publisher_by_token(&self, token_sha256: &str) -> Result<Option<String>>;
    /// Records an authenticated request: last seen time and, when the device sent its clock, the
    /// skew.
    fn touch_device(&self, device_id: &str, now: DateTime<Utc>, skew_ms: Option<i64>) -> Result<()>;
    /// The credential with this token hash, live or not.
    fn credential(&self, token_sha256: &str) -> Result<Option<Credential>>;
    /// Every credential of a subject in a role, oldest first.
    fn credentials_of(&self, role: TokenRole, subject: &str) -> Result<Vec<Credential>>;
    /// Records a token for an existing device, publisher or operator (`NotFound` when the
    /// subject does not exist); with `others_expire_by`, caps the subject's other tokens.
    /// `audit` is appended in the same transaction.
    fn issue_credential(&self, c: &NewCredential, audit: Option<&Audited<()>>) -> Result<()>;
    /// Sets the expiry of one token.
    fn set_credential_expiry(&self, token_sha256: &str, expires_at: Option<DateTime<Utc>>) -> Result<()>;
    /// Revokes every unrevoked token of a subject in a role (for an operator, also its
    /// dashboard sessions); returns how many. `NotFound` when the subject holds no token.
    /// `audit` (outcome: how many) is appended in the same transaction.
    fn revoke_credentials(&self, role: TokenRole, subject: &str, now: DateTime<Utc>, audit: Option<&Audited<u64>>) -> Result<u64>;
    /// Revokes one token (a dashboard logout); no error when unknown.
    fn revoke_credential(&self, token_sha256: &str, now: DateTime<Utc>) -> Result<()>;
    /// Registers an operator with its first token (`BadRequest` when the name is taken);
    /// `audit` is appended in the same transaction.
    fn add_operator(
        &self,
        name: &str,
        token_sha256: &str,
        now: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
        audit: Option<&Audited<()>>,
    ) -> Result<()>;
}

/// Publishing and the change feed: territories and their products, bundle versions, publish claims,
/// blob leases and deletion markers (ADR 0016), revocations, entitlement.
pub trait FeedStore {
    /// Creates or updates a territory with exactly these products (empty: unrestricted).
    fn set_territory(&self, name: &str, products: &[String], now: DateTime<Utc>) -> Result<()>;
    /// Every territory, by name.
    fn territories(&self) -> Result<Vec<Territory>>;
    /// Territories that list `product`, by name.
    fn territories_for_product(&self, product: &str) -> Result<Vec<String>>;
    /// The highest published version of a bundle id.
    fn current_version(&self, bundle_id: &str) -> Result<Option<u64>>;
    /// Records a published version; fails with `VersionConflict` unless it is higher than the
    /// current one (checked inside the transaction). Returns its feed sequence number.
    /// `audit` (outcome: the feed number) is appended in the same transaction.
    fn insert_bundle_version(&self, v: &NewBundleVersion, audit: Option<&Audited<i64>>) -> Result<i64>;
    /// Claims `(bundle_id, version)` for a publish, in one transaction: `VersionConflict` when
    /// the version is not higher than the current one, `PublishInProgress` when another claim
    /// holds it unexpired at `now`. An expired claim (its publisher died) is taken over; its
    /// leases stay under the old claim id, dead, for [`HubStore::dead_claims`].
    fn claim_publish(&self, claim: &PublishClaim, now: DateTime<Utc>) -> Result<()>;
    /// Leases blob hashes (hex) to a claim unexpired at `now`, before the publish asks the
    /// blob store about them. Returns the hashes not leased because a deletion marker is on
    /// them: the caller waits until the deletion is done and asks again. `Unavailable` when
    /// the claim is gone or expired.
    fn lease_blobs(&self, claim_id: &str, hashes: &[String], now: DateTime<Utc>) -> Result<Vec<String>>;
    /// Ends a claim that recorded no version, in one transaction: each hash it leased that no
    /// bundle version references and no other claim unexpired at `now` leases gets a deletion
    /// marker owned by `owner` (unless already marked); then its leases and the claim row
    /// go. Returns the hashes marked: the caller deletes them from the blob store and calls
    /// [`HubStore::finish_blob_deletion`].
    fn release_claim(&self, claim_id: &str, owner: &str, now: DateTime<Utc>) -> Result<Vec<String>>;
    /// Claim ids of dead publishes: claims expired at `now`, and leases whose claim is gone
    /// (taken over after it expired).
    fn dead_claims(&self, now: DateTime<Utc>) -> Result<Vec<String>>;
    /// Every claim id, live or dead: claims, and leases whose claim is gone (the caller picks
    /// those of hub processes known dead).
    fn all_claims(&self) -> Result<Vec<String>>;
    /// Deletion markers set before `before` (their deleter presumably died): each is
    /// re-checked; a hash that is referenced or leased again only loses its marker, the others
    /// pass to `owner` (marked at `now`) and are returned for deletion.
    fn take_stale_blob_deletions(&self, owner: &str, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<Vec<String>>;
    /// Removes the deletion marker of `sha256` when `owner` still holds it (the blob is gone).
    fn finish_blob_deletion(&self, sha256: &str, owner: &str) -> Result<()>;
    /// Revokes every published version of `bundle_id` (`NotFound` when never published).
    /// `audit` (outcome: the feed number) is appended in the same transaction.
    fn revoke(&self, bundle_id: &str, reason: &str, now: DateTime<Utc>, audit: Option<&Audited<i64>>) -> Result<i64>;
    /// Changes visible to `territory` after feed sequence `since`, at most `limit` items.
    fn changes(&self, territory: &str, since: i64, limit: usize) -> Result<FeedPage> {
        self.changes_for(territory, None, since, limit)
    }
    /// [`FeedStore::changes`] for a device of `rep_id`: when the rep has a target list, plans
    /// only for her targets and the HCPs she has called on (any of her devices).
    fn changes_for(&self, territory: &str, rep_id: Option<&str>, since: i64, limit: usize) -> Result<FeedPage>;
    /// The size of the blob when a device of `territory` may fetch it (a file of an entitled,
    /// unrevoked version); `None` otherwise.
    fn blob_entitled(&self, territory: &str, sha256: &str) -> Result<Option<u64>>;
    /// The zip blob `(sha256, size)` of an entitled, unrevoked bundle version.
    fn bundle_zip(&self, territory: &str, bundle_id: &str, version: u64) -> Result<Option<(String, u64)>>;
    /// The newest version of a bundle a device of `territory` is entitled to (and that is not
    /// revoked): the only version whose content may be selected for that territory (plans,
    /// microsites). `None` when the territory is entitled to none.
    fn latest_entitled_version(&self, territory: &str, bundle_id: &str) -> Result<Option<u64>>;
    /// Manifest bytes of a published version.
    fn bundle_manifest(&self, bundle_id: &str, version: u64) -> Result<Option<Vec<u8>>>;
}

/// Upload batches (decided by [`crate::ingest::plan`], persisted by the store), stored events and
/// hub-wide figures.
pub trait IngestStore {
    /// Applies one upload batch in one transaction: stores new events, classifies duplicates,
    /// records rejections, advances the watermark and stores the skew. An event whose uuid is
    /// already stored for *another* device is rejected (never silently absorbed).
    fn apply_batch(&self, device_id: &str, events: &[CheckedEvent], skew_ms: i64, now: DateTime<Utc>) -> Result<BatchOutcome>;
    fn stats(&self) -> Result<HubStats>;
    /// Deletes stored events recorded before `recorded_before` whose analysis is done (events
    /// of no call included), as a prefix of each device's sequence: a device's events are
    /// pruned up to the first one that is newer, belongs to a call not analysed yet (pending,
    /// parked or unfinished) or lies above its watermark, never past it. The device keeps the
    /// prefix's end (`pruned_through_seq`) and a count; a re-sent event at or below it is
    /// acknowledged as a duplicate. Runs in transactions of about [`PRUNE_CHUNK`] events, each
    /// appending `audit` with its own counts.
    fn prune_analysed_events(&self, recorded_before: DateTime<Utc>, audit: Option<&Audited<PruneReport>>) -> Result<PruneReport>;
    /// Stored events of a device, by seq.
    fn events_for_device(&self, device_id: &str) -> Result<Vec<WireEvent>>;
}

/// The closed loop: the analysis queue, derived documents, plans, microsites and their visits.
pub trait AnalysisStore {
    /// Queued finished calls, oldest first, skipping those that failed
    /// `MAX_ANALYSIS_ATTEMPTS` times.
    fn pending_calls(&self, limit: usize) -> Result<Vec<QueuedCall>>;
    /// Claims up to `limit` queued calls for `owner` until `now + lease`, oldest first: calls
    /// not analysed, not parked, and not claimed by another owner's lease still running at
    /// `now` (the owner's own claims are renewed). Claimed
    /// calls are skipped by every other claimer (another hub process on the same database)
    /// until the lease ends; a worker that dies leaves them to the next claimer then.
    fn claim_calls(&self, limit: usize, owner: &str, now: DateTime<Utc>, lease: chrono::Duration) -> Result<Vec<QueuedCall>>;
    /// Calls waiting for analysis (including failed ones).
    fn pending_call_count(&self) -> Result<u64>;
    /// Calls waiting for analysis (including failed ones) per device, `(device_id, count)` by
    /// device id; devices with none are absent.
    fn pending_calls_by_device(&self) -> Result<Vec<(String, u64)>>;
    /// Parked calls (failed `MAX_ANALYSIS_ATTEMPTS` times, not analysed), oldest first.
    fn parked_calls(&self) -> Result<Vec<ParkedCall>>;
    /// A call's stored events, by seq.
    fn call_events(&self, device_id: &str, call_id: &str) -> Result<Vec<StoredEvent>>;
    /// The stored events of each `(device_id, call_id)`, by seq, in the order asked (one read).
    fn calls_events(&self, calls: &[(String, String)]) -> Result<Vec<Vec<StoredEvent>>>;
    /// The documents at these `(kind, key)`s as stored (JSON text), `None` where absent: for
    /// readers that deserialize straight into their own types (analysis).
    fn load_doc_texts(&self, keys: &[(String, String)]) -> Result<Vec<Option<DocText>>>;
    /// The documents at these `(kind, key)`s, `None` where absent.
    fn load_docs(&self, keys: &[(String, String)]) -> Result<Vec<Option<Doc>>> {
        let texts = self.load_doc_texts(keys)?;
        keys.iter()
            .zip(texts)
            .map(|((kind, key), t)| {
                t.map(|t| {
                    let doc = serde_json::from_str(&t.text).map_err(|e| Error::Internal(format!("stored {kind} document: {e}")))?;
                    Ok(Doc { kind: kind.clone(), key: key.clone(), doc, version: t.version })
                })
                .transpose()
            })
            .collect()
    }
    /// Every document of a kind, by key.
    fn list_docs(&self, kind: &str) -> Result<Vec<Doc>>;
    /// Writes a batch's analysis and marks its queue rows done, atomically. `Ok(false)` when
    /// someone else analysed one of its calls first or a versioned document moved since it was
    /// read (or two workers created the same merged document at once): nothing written.
    fn commit_analysis(&self, commit: &AnalysisCommit) -> Result<bool>;
    /// Records a failed analysis attempt (the error names no personal data).
    fn analysis_failed(&self, queue_id: i64, error: &str) -> Result<()>;
    /// The latest plan of an HCP on a bundle (plan bytes, signature).
    fn latest_plan(&self, hcp_id: &str, bundle_id: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>>;
    /// The newest plan of an HCP on any bundle (plan bytes, signature).
    fn newest_plan_of_hcp(&self, hcp_id: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>>;
    fn microsite_by_token(&self, token_sha256: &str) -> Result<Option<Microsite>>;
    fn microsites_for(&self, hcp_id: &str) -> Result<Vec<Microsite>>;
    /// Records a whole hub-side call (a microsite visit) under `MICROSITE_DEVICE`: assigns
    /// sequence numbers, stores the events, counts the visit on the microsite and queues the
    /// call for analysis, in one transaction.
    fn record_microsite_visit(
        &self,
        microsite_id: &str,
        call_id: &str,
        events: &[(String, serde_json::Value)],
        now: DateTime<Utc>,
    ) -> Result<()>;
}

/// CRM imports: HCP segments and prescription counts.
pub trait CrmStore {
    /// Creates or replaces HCP segments `(hcp_id, segment)`; returns how many rows.
    fn set_hcp_segments(&self, rows: &[(String, String)], now: DateTime<Utc>) -> Result<usize>;
    fn hcp_segment(&self, hcp_id: &str) -> Result<Option<String>>;
    /// Replaces the target lists of the reps in `rows` (`(rep_id, hcp_id)`; reps absent keep
    /// theirs). An HCP newly on a rep's list has her current plans re-sequenced in the feed,
    /// so the rep's devices receive them even past them.
    fn set_rep_targets(&self, rows: &[(String, String)], now: DateTime<Utc>) -> Result<TargetImport>;
    /// A rep's targets, by HCP id.
    fn rep_targets(&self, rep_id: &str) -> Result<Vec<String>>;
    /// The segments of these HCPs (those without one are absent), in one read.
    fn hcp_segments(&self, hcp_ids: &[String]) -> Result<std::collections::HashMap<String, String>>;
    /// Creates or replaces prescription counts; returns how many rows.
    fn import_prescriptions(&self, rows: &[Prescription]) -> Result<usize>;
    fn prescriptions(&self, hcp_id: &str) -> Result<Vec<Prescription>>;
}

/// Privacy (ADR 0011): the right to erasure and tracking consent.
pub trait PrivacyStore {
    /// Removes, in one transaction, the events of every call whose `call_started` names the
    /// HCP (device calls and microsite visits), leaving tombstones so re-sent events are never
    /// stored again; the HCP's analysis document, plans, microsites, segment and
    /// prescriptions; and puts an erasure in every territory's feed. Device watermarks are
    /// untouched. Idempotent: erasing again removes nothing and adds no feed item.
    /// `audit` (outcome: the report's counts) is appended in the same transaction.
    fn erase_hcp(&self, hcp_id: &str, now: DateTime<Utc>, audit: Option<&Audited<ErasureReport>>) -> Result<ErasureReport>;
    /// Sets an HCP's tracking consent and puts it in every territory's feed.
    /// `audit` (outcome: the feed number) is appended in the same transaction.
    fn set_consent(&self, hcp_id: &str, tracking: Tracking, now: DateTime<Utc>, audit: Option<&Audited<i64>>) -> Result<i64>;
    /// The HCP's consent record, `None` without one (devices then use `Tracking::DEFAULT`).
    fn consent(&self, hcp_id: &str) -> Result<Option<ConsentRecord>>;
}

/// A remote detailing session (ADR 0023): one call of one device that doctors follow from a
/// link. The link's token is never stored, only its SHA-256; no HCP id is.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSession {
    pub id: String,
    pub device_id: String,
    pub call_id: String,
    pub territory: String,
    pub bundle_id: String,
    pub bundle_version: u64,
    pub waiting_room: bool,
    /// The device records the doctor's navigation (her consent on the device is not `off`).
    pub recorded: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Where the session stands (`HubMessage::Current` as JSON), once the presenter moved.
    pub position: Option<String>,
    pub position_seq: i64,
    /// The presenter's current connection, and when its hub process last saw it (ms).
    pub presenter_id: Option<String>,
    pub presenter_seen_ms: i64,
}

impl RemoteSession {
    /// Neither ended nor expired at `now`.
    pub fn live_at(&self, now: DateTime<Utc>) -> bool {
        self.ended_at.is_none() && self.expires_at > now
    }
}

/// A session to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRemoteSession {
    pub id: String,
    pub device_id: String,
    pub call_id: String,
    pub territory: String,
    pub bundle_id: String,
    pub bundle_version: u64,
    pub token_sha256: String,
    pub waiting_room: bool,
    pub recorded: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What joining a session gave an attendee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteJoin {
    Admitted,
    /// In the waiting room until the rep admits her.
    Waiting,
    /// The session has its maximum of live attendees.
    Full,
}

/// An attendee connected to a session (on any hub process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAttendee {
    pub attendee_id: String,
    pub admitted: bool,
}

/// Remote detailing sessions and their attendees (ADR 0023). Attendees count towards the
/// limit while connected and seen by their hub process since `live_since_ms` (each process
/// refreshes its own), so a process that died frees its attendees' places by itself.
pub trait RemoteStore {
    fn open_remote_session(&self, s: &NewRemoteSession) -> Result<()>;
    fn remote_session(&self, id: &str) -> Result<Option<RemoteSession>>;
    fn remote_session_by_token(&self, token_sha256: &str) -> Result<Option<RemoteSession>>;
    /// Replaces the session's link (the old token stops working at once); `false` when there
    /// is no such session.
    fn relink_remote_session(&self, id: &str, token_sha256: &str) -> Result<bool>;
    /// Ends the session (the first end time stays); its end time, `None` when unknown.
    fn end_remote_session(&self, id: &str, at: DateTime<Utc>) -> Result<Option<DateTime<Utc>>>;
    /// Stores where the session stands, unless a position with a higher `seq` is stored.
    fn set_remote_position(&self, id: &str, position: &str, seq: i64) -> Result<()>;
    /// Joins or re-joins `attendee`: one admitted before stays admitted; a new one is admitted
    /// unless `waiting_room`; `Full` when `max` other attendees are live. Serialised per
    /// session across hub processes.
    fn join_remote_session(
        &self,
        id: &str,
        attendee: &str,
        waiting_room: bool,
        max: usize,
        now_ms: i64,
        live_since_ms: i64,
    ) -> Result<RemoteJoin>;
    /// Admits a joined attendee; `false` when she never joined.
    fn admit_remote_attendee(&self, id: &str, attendee: &str) -> Result<bool>;
    /// Marks these attendees of the session seen now.
    fn touch_remote_attendees(&self, id: &str, attendees: &[String], now_ms: i64) -> Result<()>;
    /// The attendee disconnected (she keeps her admission for a reconnect).
    fn leave_remote_session(&self, id: &str, attendee: &str) -> Result<()>;
    /// Connected attendees seen since `live_since_ms`, by id.
    fn remote_attendees(&self, id: &str, live_since_ms: i64) -> Result<Vec<RemoteAttendee>>;
    /// Deletes sessions (and their attendees) that ended or expired before `before`; how many.
    fn prune_remote_sessions(&self, before: DateTime<Utc>) -> Result<u64>;
    /// The presenter connection `presenter` now presents the session (an older one, on any
    /// hub process, learns it is replaced when it marks itself seen).
    fn claim_remote_presenter(&self, id: &str, presenter: &str, now_ms: i64) -> Result<()>;
    /// Marks `presenter` seen now; `false` when another connection took the session over.
    fn touch_remote_presenter(&self, id: &str, presenter: &str, now_ms: i64) -> Result<bool>;
    /// `presenter` disconnected (nothing when another connection took over).
    fn release_remote_presenter(&self, id: &str, presenter: &str) -> Result<()>;
}

/// The append-only audit trail (issue 7).
pub trait AuditStore {
    /// Appends to the audit trail (there is no update or delete: the database refuses both).
    fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64>;
    /// The audit trail, oldest first.
    fn audit_log(&self) -> Result<Vec<AuditEntry>>;
}

/// Merges bundle offers, revocations, plans, erasures and consents (each fetched `limit + 1`
/// deep, given in `items`) into one page in feed order.
pub(crate) fn merge_page(items: FeedPage, since: i64, head: i64, limit: usize) -> FeedPage {
    let FeedPage { bundles, revocations, plans, erasures, consents, .. } = items;
    let mut seqs: Vec<i64> = bundles
        .iter()
        .map(|b| b.feed_seq)
        .chain(revocations.iter().map(|r| r.feed_seq))
        .chain(plans.iter().map(|p| p.feed_seq))
        .chain(erasures.iter().map(|e| e.feed_seq))
        .chain(consents.iter().map(|c| c.feed_seq))
        .collect();
    seqs.sort_unstable();
    let has_more = seqs.len() > limit;
    let next_cursor = if has_more { seqs[limit - 1] } else { head.max(since) };
    let keep = |s: i64| s <= next_cursor;
    FeedPage {
        bundles: bundles.into_iter().filter(|b| keep(b.feed_seq)).collect(),
        revocations: revocations.into_iter().filter(|r| keep(r.feed_seq)).collect(),
        plans: plans.into_iter().filter(|p| keep(p.feed_seq)).collect(),
        erasures: erasures.into_iter().filter(|e| keep(e.feed_seq)).collect(),
        consents: consents.into_iter().filter(|c| keep(c.feed_seq)).collect(),
        next_cursor,
        has_more,
    }
}
