//! Tracking levels as stored (ADR 0011): a call's level (`calls.tracking`) and an HCP's consent
//! (`consents`). Plain lookups over the database, below the outbox (which refuses the events of
//! untracked calls) and the privacy view (which writes consents).

use edetail_protocol::Tracking;
use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;

/// The tracking level of a call (`full` for calls without an HCP).
pub(crate) fn call_tracking(c: &Connection, call_id: &str) -> Result<Tracking> {
    let t: Option<String> = c.prepare_cached("SELECT tracking FROM calls WHERE id = ?1")?.query_row([call_id], |r| r.get(0)).optional()?;
    Ok(t.as_deref().and_then(Tracking::parse).unwrap_or(Tracking::Full))
}

/// The tracking level for calls with this HCP ([`Tracking::DEFAULT`], full, without a consent
/// record).
pub(crate) fn consent_for(c: &Connection, hcp_id: &str) -> Result<Tracking> {
    let t: Option<String> = c.query_row("SELECT tracking FROM consents WHERE hcp_id = ?1", [hcp_id], |r| r.get(0)).optional()?;
    Ok(t.as_deref().and_then(Tracking::parse).unwrap_or(Tracking::DEFAULT))
}
