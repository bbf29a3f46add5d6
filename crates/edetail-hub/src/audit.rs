//! Audit entries: the hook of erasure and consent changes, entries made now (`audit_entry`,
//! used by every audited change) and the actor of CLI admin commands (`cli_actor`).
//!
//! Entries go to the append-only `audit_log` (ADR 0010) with subject `hcp`, in the same
//! transaction as the change (`HubStore::erase_hcp`, `set_consent`), and to the
//! log as one `tracing::info!` under the `edetail_audit` target once it committed.
//!
//! Details never carry personal data: no HCP id and no hash of it either (HCP ids come from a
//! small, enumerable space, so a hash would identify the HCP just as well). Erasures record
//! what was removed as counts; consent changes record the new tracking level.

use chrono::Utc;

use crate::store::{self, Audited, ErasureReport};

/// Action of `Hub::erase_hcp`.
pub const HCP_ERASED: &str = "hcp erased";
/// Action of `Hub::set_consent`.
pub const CONSENT_CHANGED: &str = "consent changed";

/// The audit entry of an erasure by `actor`: subject `hcp`, the counts of what was removed
/// (added by the store from its report, in the erasure's transaction).
pub fn hcp_erased(actor: &str) -> Audited<ErasureReport> {
    Audited {
        entry: audit_entry(actor, HCP_ERASED, "hcp", serde_json::json!({})),
        outcome: |report| serde_json::to_value(report).unwrap_or_default(),
    }
}

/// The audit entry of a consent change by `actor` (details: the new tracking level).
pub fn consent_changed(actor: &str, details: serde_json::Value) -> Audited<i64> {
    Audited::plain(audit_entry(actor, CONSENT_CHANGED, "hcp", details))
}

/// Action of `Hub::prune_events` (and the serve loop's pruning).
pub const EVENTS_PRUNED: &str = "events pruned";

/// The audit entry of pruning analysed events by `actor`: subject `events`, with the cutoff's
/// age in days and the counts of each pruning transaction (added by the store).
pub fn events_pruned(actor: &str, older_than_days: f64) -> Audited<store::PruneReport> {
    Audited {
        entry: audit_entry(actor, EVENTS_PRUNED, "events", serde_json::json!({ "older_than_days": older_than_days })),
        outcome: |report| serde_json::to_value(report).unwrap_or_default(),
    }
}

/// The log line of an audited privacy change (after it committed).
pub fn log(action: &str, actor: &str, details: &serde_json::Value) {
    tracing::info!(target: "edetail_audit", action, actor, details = %details, "audit");
}

/// An audit entry made now. `details` must name no person (ids only).
pub(crate) fn audit_entry(actor: &str, action: &str, subject: &str, details: serde_json::Value) -> store::NewAuditEntry {
    store::NewAuditEntry { at: Utc::now(), actor: actor.to_string(), action: action.to_string(), subject: subject.to_string(), details }
}

/// The audit actor of CLI admin commands: `cli:<os user>`.
pub fn cli_actor() -> String {
    let user = ["USER", "LOGNAME", "USERNAME"].iter().find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()));
    #[cfg(unix)]
    let user = user.or_else(|| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").ok().map(|m| format!("uid{}", m.uid()))
    });
    let user = user.unwrap_or_default();
    let user: String = user.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).take(64).collect();
    format!("cli:{}", if user.is_empty() { "unknown" } else { &user })
}
