//! The audit hook of erasure and consent changes.
//!
//! INTEGRATOR: the tokens/audit work adds an append-only `audit_log` table and
//! `HubStore::append_audit`; wire [`record_audit`] to it (same action names, same details).
//! Until then this branch has no audit table, so the entry only goes to the log, as one
//! `tracing::info!` under the `edetail_audit` target.
//!
//! Details never carry personal data: no HCP id and no hash of it either (HCP ids come from a
//! small, enumerable space, so a hash would identify the HCP just as well). Erasures record
//! what was removed as counts; consent changes record the new tracking level.

use crate::store::HubStore;

/// Action of `Hub::erase_hcp`.
pub const HCP_ERASED: &str = "hcp erased";
/// Action of `Hub::set_consent`.
pub const CONSENT_CHANGED: &str = "consent changed";

/// Records an audit entry: who did what, with details free of personal data.
pub fn record_audit(_store: &dyn HubStore, action: &str, actor: &str, details: &serde_json::Value) {
    // INTEGRATOR: `_store.append_audit(action, actor, details, now)` once it exists.
    tracing::info!(target: "edetail_audit", action, actor, details = %details, "audit");
}
