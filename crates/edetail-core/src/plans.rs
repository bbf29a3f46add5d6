//! The hub's signed per-HCP plans on the device: verifying and storing them as they arrive in
//! the change feed (newest `generated_at` per `(hcp_id, bundle_id)` wins), deciding whether the
//! stored plan may be offered now, and the suggestion a call offers: the hub's plan when it is
//! valid, else the local suggestion from this device's own history (works offline).
//!
//! A plan only selects and orders slides of an approved bundle by id. It is offered only while
//! the trusted clock is before its `valid_until`, the bundle is active and openable, and every
//! slide it names exists in the active manifest; otherwise the device falls back to its local
//! suggestion. Plans must always be signed by a trusted key, whatever `allow_unsigned` says.
//! Logs and errors name plan ids and bundle ids, never HCP ids or free text.

use chrono::{DateTime, Utc};
use edetail_bundle::sign::verify_manifest;
use edetail_protocol::{Plan, PlanItem, SignedPlan};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::clock::{from_ms, to_ms};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::profile::Profile;
pub use crate::suggestion::{SuggestedSlide, Suggestion, SuggestionSource};

/// What happened to one received plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanReport {
    /// The plan's id when it could be read (a refused signature still names it when the bytes
    /// parse; never the HCP).
    pub plan_id: Option<String>,
    pub outcome: PlanOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PlanOutcome {
    /// Verified and stored (new, or replacing an older plan for the same HCP and bundle).
    Stored,
    /// This very plan is already stored (the page was applied before).
    AlreadyStored,
    /// A plan generated at the same time or later is stored for this HCP and bundle: kept.
    Outdated,
    /// Refused: nothing stored.
    Refused { reason: PlanRefusal },
}

/// Why a plan was refused. Messages carry no plan content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum PlanRefusal {
    /// Missing, malformed or wrong signature, or a key the device does not trust.
    #[error("plan signature refused: {detail}")]
    Signature { detail: String },
    /// Signed correctly but not a plan this device understands.
    #[error("plan unreadable: {detail}")]
    Unparseable { detail: String },
}

impl PlanReport {
    pub fn is_refused(&self) -> bool {
        matches!(self.outcome, PlanOutcome::Refused { .. })
    }
}

/// A stored hub plan the device may offer now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfferedPlan {
    pub plan_id: String,
    pub bundle_id: String,
    /// The bundle version the hub planned against (slide ids are stable across versions).
    pub bundle_version: u64,
    /// Adoption stage: unaware, aware, educated, convinced, advocate.
    pub stage: String,
    pub generated_at: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub reasons: Vec<String>,
    /// Slides to show, in order, each with its reason and evidence.
    pub items: Vec<PlanItem>,
    /// Slides deliberately left out, with why.
    pub skipped: Vec<PlanItem>,
    /// The stage the plan aims to move the HCP to (absent in older plans).
    pub objective: Option<String>,
    /// The HCP's experiment arm, `treatment` or `holdout` (absent in older plans).
    pub arm: Option<String>,
}

impl From<OfferedPlan> for Suggestion {
    fn from(p: OfferedPlan) -> Suggestion {
        Suggestion {
            source: SuggestionSource::Hub { plan_id: p.plan_id, stage: p.stage },
            slides: p
                .items
                .into_iter()
                .map(|i| SuggestedSlide { slide_id: i.slide_id, presentation_id: i.presentation_id, reason: i.reason })
                .collect(),
            reasons: p.reasons,
        }
    }
}

/// Reads a plan's JSON; the error names only where parsing failed, never the content (serde's
/// messages may quote values).
fn parse_plan(bytes: &[u8]) -> std::result::Result<Plan, PlanRefusal> {
    let plan: Plan = serde_json::from_slice(bytes).map_err(|e| PlanRefusal::Unparseable {
        detail: format!("not a plan ({:?} error at line {}, column {})", e.classify(), e.line(), e.column()),
    })?;
    let missing = if plan.plan_id.is_empty() {
        Some("plan_id")
    } else if plan.hcp_id.is_empty() {
        Some("hcp_id")
    } else if plan.bundle_id.is_empty() {
        Some("bundle_id")
    } else {
        None
    };
    match missing {
        Some(field) => Err(PlanRefusal::Unparseable { detail: format!("empty {field}") }),
        None => Ok(plan),
    }
}

/// The plans view of a device (`Device::plans`).
#[derive(Debug, Clone, Copy)]
pub struct Plans<'a> {
    ctx: &'a Context,
}

impl<'a> Plans<'a> {
    pub(crate) fn new(ctx: &'a Context) -> Plans<'a> {
        Plans { ctx }
    }

    /// Verifies and stores plans from the change feed, one report per plan in order. Each plan
    /// must be signed by a trusted key; a refused plan is reported and logged (plan id only) and
    /// does not stop the others. A plan replaces the stored one for the same `(hcp_id,
    /// bundle_id)` only when generated later. Idempotent. Fails only for storage errors (then
    /// nothing of this call is stored).
    pub fn store_plans(&self, plans: &[SignedPlan]) -> Result<Vec<PlanReport>> {
        let received_at = to_ms(self.ctx.trusted_now()?);
        let trusted = &self.ctx.config().trusted_keys;
        let mut accepted = Vec::new();
        let mut reports = Vec::with_capacity(plans.len());
        for (index, signed) in plans.iter().enumerate() {
            let parsed = parse_plan(&signed.plan.0);
            let plan_id = parsed.as_ref().ok().map(|p| p.plan_id.clone());
            let verified = verify_manifest(&signed.plan.0, &signed.signature.0, trusted)
                .map_err(|e| PlanRefusal::Signature { detail: e.to_string() })
                .and_then(|key_id| parsed.map(|p| (key_id, p)));
            match verified {
                Ok((key_id, plan)) => {
                    accepted.push((reports.len(), key_id, plan, signed));
                    reports.push(PlanReport { plan_id, outcome: PlanOutcome::Stored });
                }
                Err(reason) => {
                    tracing::warn!(index, plan = plan_id.as_deref().unwrap_or("?"), "plan refused: {reason}");
                    reports.push(PlanReport { plan_id, outcome: PlanOutcome::Refused { reason } });
                }
            }
        }
        if accepted.is_empty() {
            return Ok(reports);
        }
        self.ctx.databases().write(|tx| {
            for (at, key_id, plan, signed) in &accepted {
                let stored: Option<(String, i64)> = tx
                    .query_row(
                        "SELECT plan_id, generated_at FROM plans WHERE hcp_id = ?1 AND bundle_id = ?2",
                        params![plan.hcp_id, plan.bundle_id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let generated_at = to_ms(plan.generated_at);
                let outcome = match stored {
                    Some((id, _)) if id == plan.plan_id => PlanOutcome::AlreadyStored,
                    Some((_, at)) if at >= generated_at => PlanOutcome::Outdated,
                    _ => {
                        tx.execute(
                            "INSERT INTO plans (hcp_id, bundle_id, plan_id, plan, signature, key_id, generated_at, valid_until, received_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                             ON CONFLICT (hcp_id, bundle_id) DO UPDATE SET plan_id = excluded.plan_id, plan = excluded.plan,
                                 signature = excluded.signature, key_id = excluded.key_id, generated_at = excluded.generated_at,
                                 valid_until = excluded.valid_until, received_at = excluded.received_at",
                            params![
                                plan.hcp_id,
                                plan.bundle_id,
                                plan.plan_id,
                                signed.plan.0,
                                signed.signature.0,
                                key_id,
                                generated_at,
                                to_ms(plan.valid_until),
                                received_at
                            ],
                        )?;
                        PlanOutcome::Stored
                    }
                };
                reports[*at].outcome = outcome;
            }
            Ok(())
        })?;
        let stored = reports.iter().filter(|r| r.outcome == PlanOutcome::Stored).count();
        tracing::info!(received = plans.len(), stored, refused = reports.iter().filter(|r| r.is_refused()).count(), "plans applied");
        Ok(reports)
    }

    /// The hub's plan for this HCP and bundle when it may be offered now: stored, before its
    /// `valid_until` by the trusted clock, the bundle active and openable, and every slide it
    /// names present in the active manifest. `None`: fall back to the local suggestion.
    pub fn plan_for(&self, hcp_id: &str, bundle_id: &str) -> Result<Option<OfferedPlan>> {
        let bytes: Option<Vec<u8>> = self.ctx.databases().read(|c| {
            Ok(c.prepare_cached("SELECT plan FROM plans WHERE hcp_id = ?1 AND bundle_id = ?2")?
                .query_row(params![hcp_id, bundle_id], |r| r.get(0))
                .optional()?)
        })?;
        let Some(bytes) = bytes else { return Ok(None) };
        let plan = match parse_plan(&bytes) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(bundle = bundle_id, "stored plan unreadable: {e}");
                return Ok(None);
            }
        };
        let not_offered = |why: &str| {
            tracing::debug!(plan = %plan.plan_id, bundle = bundle_id, "plan not offered: {why}");
            Ok(None)
        };
        if self.ctx.trusted_now()? >= plan.valid_until {
            return not_offered("expired");
        }
        match self.ctx.check_openable(bundle_id) {
            Ok(()) => {}
            Err(Error::NotOpenable { .. } | Error::UnknownBundle(_)) => return not_offered("bundle not openable"),
            Err(e) => return Err(e),
        }
        if plan.items.is_empty() {
            return not_offered("no slides");
        }
        let active = self.ctx.content().active(bundle_id)?;
        let m = &active.manifest;
        let known = |i: &PlanItem| {
            m.slide(&i.slide_id).is_some() && m.presentation(&i.presentation_id).is_some_and(|p| p.slides.contains(&i.slide_id))
        };
        if !plan.items.iter().all(known) {
            return not_offered("names a slide the active version lacks");
        }
        Ok(Some(OfferedPlan {
            plan_id: plan.plan_id,
            bundle_id: plan.bundle_id,
            bundle_version: plan.bundle_version,
            stage: plan.stage,
            generated_at: plan.generated_at,
            valid_until: plan.valid_until,
            reasons: plan.reasons,
            items: plan.items,
            skipped: plan.skipped,
            objective: plan.objective,
            arm: plan.arm,
        }))
    }

    /// What a call on this bundle would offer this HCP now ([`Plans::suggestion`]); `None` when
    /// the bundle is not installed or cannot be presented now (expired, revoked, sync required).
    pub fn suggestion_if_presentable(&self, hcp_id: &str, bundle_id: &str) -> Result<Option<Suggestion>> {
        match self.ctx.check_openable(bundle_id) {
            Ok(()) => Ok(Some(self.suggestion(hcp_id, bundle_id)?)),
            Err(Error::NotOpenable { .. } | Error::UnknownBundle(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What to offer for this HCP on this bundle: the hub's plan when [`Plans::plan_for`]
    /// offers one, else the local suggestion ([`Profile::local_suggestion`]).
    pub fn suggestion(&self, hcp_id: &str, bundle_id: &str) -> Result<Suggestion> {
        match self.plan_for(hcp_id, bundle_id)? {
            Some(p) => Ok(p.into()),
            None => Profile::new(self.ctx).local_suggestion(hcp_id, bundle_id),
        }
    }

    /// Every stored plan, by HCP and bundle (support tools and tests).
    pub fn stored(&self) -> Result<Vec<StoredPlan>> {
        self.ctx.databases().read(|c| {
            let mut st =
                c.prepare_cached("SELECT hcp_id, bundle_id, plan_id, generated_at, received_at FROM plans ORDER BY hcp_id, bundle_id")?;
            let rows = st.query_map([], |r| {
                Ok(StoredPlan {
                    hcp_id: r.get(0)?,
                    bundle_id: r.get(1)?,
                    plan_id: r.get(2)?,
                    generated_at: from_ms(r.get(3)?),
                    received_at: from_ms(r.get(4)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_plan_is_refused_without_quoting_its_content() {
        let bytes = br#"{"plan_id":"p","hcp_id":"Dr Secret","territory":"t","product":"x","bundle_id":"b",
            "bundle_version":"Dr Secret","stage":"aware","generated_at":"2026-01-01T00:00:00Z",
            "valid_until":"2026-02-01T00:00:00Z","items":[]}"#;
        let e = parse_plan(bytes).expect_err("bundle_version is not a number");
        assert!(matches!(e, PlanRefusal::Unparseable { .. }));
        assert!(!e.to_string().contains("Secret"), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");
        let empty = br#"{"plan_id":"p","hcp_id":"","territory":"t","product":"x","bundle_id":"b","bundle_version":1,
            "stage":"aware","generated_at":"2026-01-01T00:00:00Z","valid_until":"2026-02-01T00:00:00Z","items":[]}"#;
        assert_eq!(parse_plan(empty).expect_err("empty hcp_id").to_string(), "plan unreadable: empty hcp_id");
    }
}

/// One stored plan row, for support tools and tests. `hcp_id` is a personal id: never log it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlan {
    pub hcp_id: String,
    pub bundle_id: String,
    pub plan_id: String,
    pub generated_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}
