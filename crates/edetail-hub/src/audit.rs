//! The audit hook of erasure and consent changes.
//!
//! Entries go to the append-only `audit_log` (`HubStore::append_audit`, ADR 0010) with subject
//! `hcp`, and to the log as one `tracing::info!` under the `edetail_audit` target.
//!
//! Details never carry personal data: no HCP id and no hash of it either (HCP ids come from a
//! small, enumerable space, so a hash would identify the HCP just as well). Erasures record
//! what was removed as counts; consent changes record the new tracking level.

use crate::error::Result;
use crate::store::{HubStore, NewAuditEntry};

/// Action of `Hub::erase_hcp`.
pub const HCP_ERASED: &str = "hcp erased";
/// Action of `Hub::set_consent`.
pub const CONSENT_CHANGED: &str = "consent changed";

/// Records an audit entry: who did what, with details free of personal data.
pub fn record_audit(store: &dyn HubStore, action: &str, actor: &str, details: &serde_json::Value) -> Result<()> {
    tracing::info!(target: "edetail_audit", action, actor, details = %details, "audit");
    store.append_audit(&NewAuditEntry {
        at: chrono::Utc::now(),
        actor: actor.to_string(),
        action: action.to_string(),
        subject: "hcp".to_string(),
        details: details.clone(),
    })?;
    Ok(())
}
