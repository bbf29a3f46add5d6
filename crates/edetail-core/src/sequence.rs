//! Call sequences: the slides a rep means to present to one HCP on one bundle, built on the
//! tablet from the hub's plan and saved per rep in the device database (offline: nothing here
//! touches the network).
//!
//! [`Sequences::start`] begins from the hub's plan when [`Plans::plan_for`] offers one (verified
//! when stored, re-checked now: valid, bundle openable, every slide in the active manifest), else
//! from the local suggestion ([`Profile::local_suggestion`]; the deck order for an HCP without
//! full tracking consent, who gets no plan and no profile). It always holds the plan's mandatory
//! items and every slide the manifest marks `mandatory` (fair balance, ISI), appended when the
//! starting order lacks them. The rep then moves, adds and removes items:
//! - only approved slides of the active manifest can be added: not hidden and in a presentation
//!   the rep sees (a mandatory slide is exempt: fair balance often lives in a hidden deck);
//! - a slide is in a sequence at most once;
//! - a mandatory slide can never be removed.
//!
//! One sequence per (rep, HCP, bundle): starting again replaces it. A call uses a sequence by
//! starting from it (`Device::start_call_from_sequence`): the call opens on the sequence's first
//! slide and records one `call_plan` event ([`CallSequence::call_plan`]: planned, kept, dropped,
//! added, order; slide ids only) in the transaction that records `call_started`, so exactly once
//! per call, and keeps the order (slide and presentation per item) in that transaction: the
//! call's next/previous follow it (`navigation::resolve_in_sequence`). Edits after that are for
//! the next call.
//!
//! Logs and errors name sequence, plan, bundle and slide ids, never HCP ids.

use chrono::{DateTime, Utc};
use edetail_bundle::Manifest;
use edetail_protocol::Tracking;
use edetail_protocol::payload;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::clock::{from_ms, to_ms};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::plans::Plans;
use crate::profile::Profile;

/// Where an item of a sequence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOrigin {
    /// One of the hub plan's slides.
    Plan,
    /// The starting order without a plan (local suggestion or deck order), or a mandatory slide
    /// the sequence holds because the manifest requires it.
    Start,
    /// Added by the rep.
    Added,
}

/// One slide of a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceItem {
    pub slide_id: String,
    pub presentation_id: String,
    /// Fair balance (the plan item or the manifest slide says so): cannot be removed.
    pub mandatory: bool,
    pub origin: ItemOrigin,
}

/// A rep's sequence for one HCP on one bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallSequence {
    pub sequence_id: String,
    /// A personal id: never log it.
    pub hcp_id: String,
    pub bundle_id: String,
    /// The hub plan the sequence started from (`None`: local suggestion or deck order).
    pub plan_id: Option<String>,
    /// The plan's experiment arm, `treatment` or `holdout`.
    pub arm: Option<String>,
    /// The plan's slide ids in plan order (empty without a hub plan).
    pub planned: Vec<String>,
    /// The slides to present, in order.
    pub items: Vec<SequenceItem>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CallSequence {
    /// The slide ids in order.
    pub fn slide_ids(&self) -> Vec<String> {
        self.items.iter().map(|i| i.slide_id.clone()).collect()
    }

    fn position(&self, slide_id: &str) -> Option<usize> {
        self.items.iter().position(|i| i.slide_id == slide_id)
    }

    /// The `call_plan` payload of a call presenting this sequence: `planned` in plan order,
    /// `kept` and `dropped` the planned slides still in / no longer in the sequence (plan
    /// order), `added` the slides the rep added (sequence order), `order` the sequence.
    pub fn call_plan(&self) -> payload::CallPlan {
        let order = self.slide_ids();
        let (kept, dropped) = self.planned.iter().cloned().partition(|s| order.contains(s));
        payload::CallPlan {
            plan_id: self.plan_id.clone(),
            arm: self.arm.clone(),
            sequence_id: Some(self.sequence_id.clone()),
            planned: self.planned.clone(),
            kept,
            dropped,
            added: self.items.iter().filter(|i| i.origin == ItemOrigin::Added).map(|i| i.slide_id.clone()).collect(),
            order,
        }
    }

    /// Moves the item at `from` to `to` (indices into `items`).
    pub fn move_item(&mut self, from: usize, to: usize) -> Result<()> {
        let n = self.items.len();
        if from >= n || to >= n {
            return Err(Error::Invalid(format!("sequence {} has {n} items: cannot move {from} to {to}", self.sequence_id)));
        }
        let item = self.items.remove(from);
        self.items.insert(to, item);
        Ok(())
    }

    /// Appends an approved slide of `m` (see [`addable`]); a slide already in the sequence is
    /// refused.
    pub fn add(&mut self, m: &Manifest, slide_id: &str) -> Result<()> {
        if self.position(slide_id).is_some() {
            return Err(Error::Invalid(format!("slide {slide_id:?} is already in sequence {}", self.sequence_id)));
        }
        let (presentation_id, mandatory) = addable(m, slide_id)?;
        let origin = if self.planned.iter().any(|s| s == slide_id) {
            ItemOrigin::Plan
        } else if mandatory {
            ItemOrigin::Start
        } else {
            ItemOrigin::Added
        };
        self.items.push(SequenceItem { slide_id: slide_id.to_string(), presentation_id, mandatory, origin });
        Ok(())
    }

    /// Removes a slide; a mandatory one is refused.
    pub fn remove(&mut self, slide_id: &str) -> Result<()> {
        let at =
            self.position(slide_id).ok_or_else(|| Error::Invalid(format!("slide {slide_id:?} is not in sequence {}", self.sequence_id)))?;
        if self.items[at].mandatory {
            return Err(Error::Invalid(format!(
                "slide {slide_id:?} is mandatory (fair balance) and cannot be removed from sequence {}",
                self.sequence_id
            )));
        }
        self.items.remove(at);
        Ok(())
    }

    /// Holds the sequence to the active manifest before a call: every slide must still exist
    /// (else an error naming it: start the sequence again), every mandatory slide of the
    /// manifest is there (appended when a new version added one). Answers whether it changed.
    fn reconcile(&mut self, m: &Manifest) -> Result<bool> {
        if let Some(gone) = self.items.iter().find(|i| m.slide(&i.slide_id).is_none()) {
            return Err(Error::Invalid(format!(
                "sequence {} names slide {:?}, which the active version of bundle {} lacks; start the sequence again",
                self.sequence_id, gone.slide_id, self.bundle_id
            )));
        }
        let before = self.items.len();
        include_mandatory(m, &mut self.items);
        Ok(self.items.len() != before)
    }
}

/// Whether a rep may add `slide_id` of `m` to a sequence, and then its presentation and whether
/// it is mandatory. Refused, with an error naming the slide: a slide the manifest lacks, a hidden
/// slide, a slide only in hidden presentations (jump targets such as prescribing information).
/// A mandatory slide may always be added (in its presentation, hidden or not).
pub fn addable(m: &Manifest, slide_id: &str) -> Result<(String, bool)> {
    let slide = m.slide(slide_id).ok_or_else(|| Error::UnknownSlide { bundle_id: m.id.clone(), slide: slide_id.into() })?;
    let mut holders = m.presentations.iter().filter(|p| p.slides.iter().any(|s| s == slide_id));
    let visible = holders.clone().find(|p| !p.hidden);
    if slide.mandatory {
        let p = visible.or_else(|| holders.next()).ok_or_else(|| {
            Error::Invalid(format!("slide {slide_id:?} of bundle {} is in no presentation and cannot be presented", m.id))
        })?;
        return Ok((p.id.clone(), true));
    }
    if slide.hidden {
        return Err(Error::Invalid(format!(
            "slide {slide_id:?} of bundle {} is hidden (reachable only from another slide) and cannot be added to a sequence",
            m.id
        )));
    }
    match visible {
        Some(p) => Ok((p.id.clone(), false)),
        None => Err(Error::Invalid(format!(
            "slide {slide_id:?} of bundle {} is only in hidden presentations and cannot be added to a sequence",
            m.id
        ))),
    }
}

/// Appends every mandatory slide of `m` that `items` lacks, and marks the ones it has mandatory.
fn include_mandatory(m: &Manifest, items: &mut Vec<SequenceItem>) {
    for s in m.slides.iter().filter(|s| s.mandatory) {
        match items.iter_mut().find(|i| i.slide_id == s.id) {
            Some(i) => i.mandatory = true,
            None => {
                if let Ok((presentation_id, _)) = addable(m, &s.id) {
                    items.push(SequenceItem { slide_id: s.id.clone(), presentation_id, mandatory: true, origin: ItemOrigin::Start });
                }
            }
        }
    }
}

/// The visible slides of the first visible presentation, in authored order.
fn deck_order(m: &Manifest) -> Vec<(String, String)> {
    let Some(deck) = m.presentations.iter().find(|p| !p.hidden) else { return Vec::new() };
    deck.slides.iter().filter(|id| m.slide(id).is_some_and(|s| !s.hidden)).map(|id| (id.clone(), deck.id.clone())).collect()
}

const COLUMNS: &str = "sequence_id, hcp_id, bundle_id, plan_id, arm, planned, items, created_at, updated_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(CallSequence, String, String)> {
    Ok((
        CallSequence {
            sequence_id: r.get(0)?,
            hcp_id: r.get(1)?,
            bundle_id: r.get(2)?,
            plan_id: r.get(3)?,
            arm: r.get(4)?,
            planned: Vec::new(),
            items: Vec::new(),
            created_at: from_ms(r.get(7)?),
            updated_at: from_ms(r.get(8)?),
        },
        r.get(5)?,
        r.get(6)?,
    ))
}

fn parse((mut seq, planned, items): (CallSequence, String, String)) -> Result<CallSequence> {
    let unreadable = |what: &str| Error::Invalid(format!("stored sequence {} has an unreadable {what}", seq.sequence_id));
    seq.planned = serde_json::from_str(&planned).map_err(|_| unreadable("planned list"))?;
    seq.items = serde_json::from_str(&items).map_err(|_| unreadable("item list"))?;
    Ok(seq)
}

fn load(c: &Connection, rep_id: &str, sequence_id: &str) -> Result<CallSequence> {
    let row = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM sequences WHERE sequence_id = ?1 AND rep_id = ?2"))?
        .query_row(params![sequence_id, rep_id], from_row)
        .optional()?;
    parse(row.ok_or_else(|| Error::UnknownSequence(sequence_id.into()))?)
}

fn save_items(tx: &Transaction<'_>, seq: &CallSequence) -> Result<()> {
    let items = serde_json::to_string(&seq.items).map_err(|e| Error::Invalid(e.to_string()))?;
    tx.prepare_cached("UPDATE sequences SET items = ?2, updated_at = ?3 WHERE sequence_id = ?1")?.execute(params![
        seq.sequence_id,
        items,
        to_ms(seq.updated_at)
    ])?;
    Ok(())
}

/// The sequences view of a device (`Device::sequences`).
#[derive(Debug, Clone, Copy)]
pub struct Sequences<'a> {
    ctx: &'a Context,
}

impl<'a> Sequences<'a> {
    pub(crate) fn new(ctx: &'a Context) -> Sequences<'a> {
        Sequences { ctx }
    }

    /// Starts this rep's sequence for an HCP on an openable bundle, from the hub's plan when one
    /// may be offered now, else the local suggestion (deck order without full consent), with
    /// every mandatory slide in it. Replaces the rep's saved sequence for this HCP and bundle.
    pub fn start(&self, hcp_id: &str, bundle_id: &str) -> Result<CallSequence> {
        self.ctx.check_openable(bundle_id)?;
        let active = self.ctx.content().active(bundle_id)?;
        let m = &active.manifest;
        let full = self.ctx.databases().read(|c| crate::tracking::consent_for(c, hcp_id))? == Tracking::Full;
        let plan = if full { Plans::new(self.ctx).plan_for(hcp_id, bundle_id)? } else { None };
        let mandatory_in = |slide: &str| m.slide(slide).is_some_and(|s| s.mandatory);
        let (plan_id, arm, planned, mut items): (_, _, _, Vec<SequenceItem>) = match plan {
            Some(p) => {
                let planned = p.items.iter().map(|i| i.slide_id.clone()).collect();
                let items = p
                    .items
                    .into_iter()
                    .map(|i| SequenceItem {
                        mandatory: i.mandatory || mandatory_in(&i.slide_id),
                        slide_id: i.slide_id,
                        presentation_id: i.presentation_id,
                        origin: ItemOrigin::Plan,
                    })
                    .collect();
                (Some(p.plan_id), p.arm, planned, items)
            }
            None => {
                let order = if full {
                    Profile::new(self.ctx)
                        .local_suggestion(hcp_id, bundle_id)?
                        .slides
                        .into_iter()
                        .map(|s| (s.slide_id, s.presentation_id))
                        .collect()
                } else {
                    deck_order(m)
                };
                let items = order
                    .into_iter()
                    .map(|(slide_id, presentation_id)| SequenceItem {
                        mandatory: mandatory_in(&slide_id),
                        slide_id,
                        presentation_id,
                        origin: ItemOrigin::Start,
                    })
                    .collect();
                (None, None, Vec::new(), items)
            }
        };
        let mut seen = std::collections::HashSet::new();
        items.retain(|i| seen.insert(i.slide_id.clone()));
        include_mandatory(m, &mut items);
        let now = self.ctx.trusted_now()?;
        let seq = CallSequence {
            sequence_id: uuid::Uuid::new_v4().to_string(),
            hcp_id: hcp_id.to_string(),
            bundle_id: bundle_id.to_string(),
            plan_id,
            arm,
            planned,
            items,
            created_at: now,
            updated_at: now,
        };
        let rep = self.ctx.rep_id();
        let planned = serde_json::to_string(&seq.planned).map_err(|e| Error::Invalid(e.to_string()))?;
        let items = serde_json::to_string(&seq.items).map_err(|e| Error::Invalid(e.to_string()))?;
        self.ctx.databases().write(|tx| {
            tx.execute("DELETE FROM sequences WHERE rep_id = ?1 AND hcp_id = ?2 AND bundle_id = ?3", params![rep, hcp_id, bundle_id])?;
            tx.execute(
                "INSERT INTO sequences (sequence_id, rep_id, hcp_id, bundle_id, plan_id, arm, planned, items, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                params![seq.sequence_id, rep, hcp_id, bundle_id, seq.plan_id, seq.arm, planned, items, to_ms(now)],
            )?;
            Ok(())
        })?;
        tracing::info!(sequence = %seq.sequence_id, bundle = bundle_id, plan = seq.plan_id.as_deref().unwrap_or("-"), items = seq.items.len(), "sequence started");
        Ok(seq)
    }

    /// One of this rep's sequences by id.
    pub fn get(&self, sequence_id: &str) -> Result<CallSequence> {
        self.ctx.databases().read(|c| load(c, self.ctx.rep_id(), sequence_id))
    }

    /// This rep's saved sequence for an HCP on a bundle, if any.
    pub fn saved(&self, hcp_id: &str, bundle_id: &str) -> Result<Option<CallSequence>> {
        let row = self.ctx.databases().read(|c| {
            Ok(c.prepare_cached(&format!("SELECT {COLUMNS} FROM sequences WHERE rep_id = ?1 AND hcp_id = ?2 AND bundle_id = ?3"))?
                .query_row(params![self.ctx.rep_id(), hcp_id, bundle_id], from_row)
                .optional()?)
        })?;
        row.map(parse).transpose()
    }

    /// Moves the item at index `from` to index `to`.
    pub fn move_item(&self, sequence_id: &str, from: usize, to: usize) -> Result<CallSequence> {
        self.edit(sequence_id, |seq, _| seq.move_item(from, to))
    }

    /// Appends an approved slide of the bundle's active version ([`addable`]); a slide already
    /// in the sequence is refused.
    pub fn add(&self, sequence_id: &str, slide_id: &str) -> Result<CallSequence> {
        self.edit(sequence_id, |seq, m| seq.add(m, slide_id))
    }

    /// Removes a slide; a mandatory one is refused.
    pub fn remove(&self, sequence_id: &str, slide_id: &str) -> Result<CallSequence> {
        self.edit(sequence_id, |seq, _| seq.remove(slide_id))
    }

    /// Loads, changes and stores a sequence in one write transaction.
    fn edit(&self, sequence_id: &str, change: impl FnOnce(&mut CallSequence, &Manifest) -> Result<()>) -> Result<CallSequence> {
        let now = self.ctx.trusted_now()?;
        self.ctx.databases().write(|tx| {
            let mut seq = load(tx, self.ctx.rep_id(), sequence_id)?;
            let active = self.ctx.content().active(&seq.bundle_id)?;
            change(&mut seq, &active.manifest)?;
            seq.updated_at = now;
            save_items(tx, &seq)?;
            Ok(seq)
        })
    }

    /// The sequence as a call on the active version presents it ([`CallSequence::reconcile`];
    /// a mandatory slide appended is saved). Refused when it has no slide.
    pub(crate) fn for_call(&self, sequence_id: &str) -> Result<CallSequence> {
        let now = self.ctx.trusted_now()?;
        self.ctx.databases().write(|tx| {
            let mut seq = load(tx, self.ctx.rep_id(), sequence_id)?;
            let active = self.ctx.content().active(&seq.bundle_id)?;
            if seq.reconcile(&active.manifest)? {
                seq.updated_at = now;
                save_items(tx, &seq)?;
            }
            if seq.items.is_empty() {
                return Err(Error::Invalid(format!("sequence {sequence_id} has no slides: add one before starting the call")));
            }
            Ok(seq)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(planned: &[&str], items: &[(&str, bool, ItemOrigin)]) -> CallSequence {
        let t = from_ms(0);
        CallSequence {
            sequence_id: "s".into(),
            hcp_id: "h".into(),
            bundle_id: "b".into(),
            plan_id: Some("p".into()),
            arm: Some("treatment".into()),
            planned: planned.iter().map(|s| s.to_string()).collect(),
            items: items
                .iter()
                .map(|(s, mandatory, origin)| SequenceItem {
                    slide_id: s.to_string(),
                    presentation_id: "main".into(),
                    mandatory: *mandatory,
                    origin: *origin,
                })
                .collect(),
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn call_plan_splits_planned_into_kept_and_dropped_and_lists_the_reps_additions() {
        use ItemOrigin::*;
        let s = seq(&["a", "b", "c"], &[("c", false, Plan), ("x", false, Added), ("a", false, Plan), ("isi", true, Start)]);
        let p = s.call_plan();
        assert_eq!(p.planned, ["a", "b", "c"]);
        assert_eq!(p.kept, ["a", "c"], "plan order");
        assert_eq!(p.dropped, ["b"]);
        assert_eq!(p.added, ["x"], "a mandatory slide the manifest required is not the rep's addition");
        assert_eq!(p.order, ["c", "x", "a", "isi"]);
        assert_eq!((p.plan_id.as_deref(), p.arm.as_deref(), p.sequence_id.as_deref()), (Some("p"), Some("treatment"), Some("s")));
    }

    #[test]
    fn moving_out_of_range_is_refused_and_changes_nothing() {
        use ItemOrigin::*;
        let mut s = seq(&[], &[("a", false, Start), ("b", false, Start)]);
        assert!(matches!(s.move_item(0, 2), Err(Error::Invalid(_))));
        s.move_item(1, 0).unwrap();
        assert_eq!(s.slide_ids(), ["b", "a"]);
    }
}
