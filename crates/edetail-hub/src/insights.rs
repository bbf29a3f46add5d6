//! The dashboard's data source over a hub: turns the analysis documents (deck statistics, HCP
//! profiles), plans, microsites, prescriptions and device figures into the dashboard's view
//! models. Reads only; every number comes from the store.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use edetail_bundle::Manifest;

use crate::analytics::{DeckMeta, DeckStats, SEGMENT_ALL, Stage, experiment};
use crate::closed_loop::DOC_DECK;
use crate::dashboard::model::*;
use crate::dashboard::{DashboardSource, HcpQuery};
use crate::error::{Error, Result};
use crate::hub::Hub;

/// Evidence lines shown per topic.
const EVIDENCE_SHOWN: usize = 6;

/// [`DashboardSource`] over a hub's store.
#[derive(Debug, Clone)]
pub struct HubInsights {
    hub: Hub,
}

impl HubInsights {
    pub fn new(hub: Hub) -> HubInsights {
        HubInsights { hub }
    }

    fn store(&self) -> &std::sync::Arc<dyn crate::store::HubStore> {
        self.hub.store()
    }

    fn decks_stats(&self) -> Result<Vec<DeckStats>> {
        self.store()
            .list_docs(DOC_DECK)?
            .into_iter()
            .map(|d| serde_json::from_value(d.doc).map_err(|e| Error::Internal(format!("stored deck statistics: {e}"))))
            .collect()
    }

    /// The current published manifest of a bundle.
    fn manifest(&self, bundle_id: &str) -> Result<Option<Manifest>> {
        let Some(v) = self.store().current_version(bundle_id)? else { return Ok(None) };
        self.store()
            .bundle_manifest(bundle_id, v)?
            .map(|b| Manifest::from_slice(&b).map_err(|e| Error::Internal(format!("stored manifest: {e}"))))
            .transpose()
    }
}

fn ms(v: i64) -> u64 {
    v.max(0) as u64
}

/// A deck's plan outcomes as rows, by arm then objective (ladder order).
fn outcome_rows(stats: &DeckStats) -> Vec<OutcomeRow> {
    let mut rows = Vec::new();
    for (arm, by) in &stats.respond.outcomes {
        for (objective, t) in by {
            rows.push(OutcomeRow { arm: arm.clone(), objective: objective.clone(), achieved: t.achieved, missed: t.missed });
        }
    }
    rows.sort_by_key(|r| (r.arm.clone(), Stage::parse(&r.objective)));
    rows
}

/// A deck's slides before stage moves as rows, by stage reached (ladder order) then most calls.
fn stage_move_rows(stats: &DeckStats, meta: &DeckMeta) -> Vec<StageMoveRow> {
    let mut rows = Vec::new();
    for (slide, by) in &stats.respond.stage_moves {
        for (stage, calls) in by {
            let moves = stats.respond.moves.get(stage).copied().unwrap_or(0).max(*calls);
            rows.push(StageMoveRow {
                bundle_id: stats.bundle_id.clone(),
                slide_id: slide.clone(),
                title: meta.slide(slide).map_or_else(|| slide.clone(), |s| s.title.clone()),
                stage: stage.clone(),
                calls: *calls,
                share: if moves == 0 { 0.0 } else { *calls as f64 / moves as f64 },
            });
        }
    }
    rows.sort_by(|a, b| Stage::parse(&a.stage).cmp(&Stage::parse(&b.stage)).then(b.calls.cmp(&a.calls)).then(a.slide_id.cmp(&b.slide_id)));
    rows
}

impl DashboardSource for HubInsights {
    fn decks(&self) -> Result<Vec<DeckSummary>> {
        let mut out = Vec::new();
        for stats in self.decks_stats()? {
            let Some(m) = self.manifest(&stats.bundle_id)? else { continue };
            let views = stats.segments.get(SEGMENT_ALL).map_or(0, |s| s.slides.values().map(|x| x.views).sum());
            out.push(DeckSummary {
                bundle_id: stats.bundle_id.clone(),
                title: m.title.clone(),
                product: m.product.clone(),
                version: m.version,
                calls: stats.calls,
                views,
            });
        }
        Ok(out)
    }

    fn deck(&self, bundle_id: &str, segment: Option<&str>) -> Result<Option<DeckView>> {
        let Some(m) = self.manifest(bundle_id)? else { return Ok(None) };
        let stats = self.hub.deck_stats(bundle_id)?.unwrap_or_else(|| DeckStats::new(bundle_id));
        let meta = DeckMeta::from_manifest(&m);
        let key = segment.unwrap_or(SEGMENT_ALL);
        let empty = Default::default();
        let seg = stats.segments.get(key).unwrap_or(&empty);
        let slides = meta
            .slides
            .iter()
            .filter(|s| !s.hidden)
            .map(|s| {
                let st = seg.slides.get(&s.id).cloned().unwrap_or_default();
                SlideRow {
                    slide_id: s.id.clone(),
                    title: s.title.clone(),
                    presentation_id: s.presentation.clone(),
                    topics: s.topics.clone(),
                    views: st.views,
                    median_dwell_ms: ms(st.median_dwell_ms().unwrap_or(0)),
                    drop_off: st.drop_off_rate(),
                    reactions_positive: st.reactions.positive,
                    reactions_neutral: st.reactions.neutral,
                    reactions_negative: st.reactions.negative,
                    hcp_led: st.hcp_led_views,
                }
            })
            .collect();
        Ok(Some(DeckView {
            bundle_id: bundle_id.to_string(),
            title: m.title.clone(),
            product: m.product.clone(),
            version: m.version,
            segments: stats.segments.keys().filter(|k| k.as_str() != SEGMENT_ALL).cloned().collect(),
            segment: segment.map(str::to_string),
            calls: seg.calls,
            slides,
            channels: stats.channels.iter().map(|(c, s)| ChannelCount { channel: c.clone(), calls: s.calls }).collect(),
            outcomes: outcome_rows(&stats),
            stage_moves: stage_move_rows(&stats, &meta),
            rep_edits: meta
                .slides
                .iter()
                .filter_map(|s| {
                    let t = stats.respond.rep_edits.get(&s.id)?;
                    Some(RepEditRow {
                        slide_id: s.id.clone(),
                        title: s.title.clone(),
                        planned: t.planned,
                        kept: t.kept,
                        dropped: t.dropped,
                        added: t.added,
                    })
                })
                .collect(),
        }))
    }

    fn hcps(&self) -> Result<Vec<HcpRow>> {
        Ok(self.hcp_page(&HcpQuery { limit: i64::MAX as u64, ..HcpQuery::default() })?.rows)
    }

    /// From the HCP summaries (indexed, paginated): never loads profiles.
    fn hcp_page(&self, q: &HcpQuery) -> Result<HcpList> {
        let page = self.store().hcp_page(q)?;
        let ids: Vec<String> = page.rows.iter().map(|(s, _)| s.hcp_id.clone()).collect();
        let mut territories = self.store().hcp_territories(&ids)?;
        let rows = page
            .rows
            .into_iter()
            .map(|(s, segment)| HcpRow {
                territories: territories.remove(&s.hcp_id).unwrap_or_default(),
                segment,
                calls: s.calls,
                last_call_at: s.last_call_at,
                stages: s.stages.into_iter().map(|(product, stage)| ProductStage { product, stage }).collect(),
                top_topic: s.top_topic,
                hcp_id: s.hcp_id,
            })
            .collect();
        Ok(HcpList { rows, total: page.total, territories: self.store().device_territories()?, query: q.clone() })
    }

    fn hcp_overview(&self) -> Result<HcpOverview> {
        Ok(HcpOverview { total: self.store().hcp_count()?, stages: self.store().stage_counts()? })
    }

    fn hcp(&self, hcp_id: &str) -> Result<Option<HcpView>> {
        let Some(p) = self.hub.hcp_profile(hcp_id)? else { return Ok(None) };
        let mut channels: BTreeMap<String, u64> = BTreeMap::new();
        for f in p.products.values() {
            for (c, n) in &f.channels {
                *channels.entry(c.clone()).or_default() += n;
            }
        }
        let topics = p
            .top_topics()
            .into_iter()
            .map(|(t, score)| {
                let i = &p.topics[t];
                TopicRow {
                    topic: t.to_string(),
                    score,
                    views: i.views,
                    evidence: i.evidence.iter().rev().take(EVIDENCE_SHOWN).map(|e| e.description.clone()).collect(),
                }
            })
            .collect();
        let key_messages = p
            .key_messages
            .iter()
            .map(|(k, i)| KeyMessageRow {
                key_message: k.clone(),
                views: i.views,
                dwell_ms: p.key_message_dwell_ms.get(k).copied().unwrap_or(0),
                last_at: i.last_at,
            })
            .collect();
        let stages = p
            .products
            .iter()
            .map(|(prod, f)| StageView {
                product: prod.clone(),
                stage: f.stage.as_str().into(),
                history: f
                    .stage_history
                    .iter()
                    .map(|c| StageStep {
                        at: c.at.unwrap_or_else(Utc::now),
                        from: c.from.as_str().into(),
                        to: c.to.as_str().into(),
                        rule: format!("{}: {}", c.rule_id, c.rule_description),
                        evidence: c.event_uuids.iter().map(|u| format!("event {}", &u[..8.min(u.len())])).collect(),
                    })
                    .collect(),
            })
            .collect();
        // The newest plan on any deck (plans only exist for decks the HCP was shown).
        let plan = self.hub.newest_plan(hcp_id)?;
        let microsites = self
            .store()
            .microsites_for(hcp_id)?
            .into_iter()
            .map(|m| MicrositeRow { created_at: m.created_at, expires_at: m.expires_at, topics: m.topics, views: m.views })
            .collect();
        let prescriptions: Vec<RxRow> = self
            .store()
            .prescriptions(hcp_id)?
            .into_iter()
            .map(|r| RxRow { period: r.period, product: r.product, count: r.count })
            .collect();
        let mut periods: BTreeSet<String> = prescriptions.iter().map(|r| r.period.clone()).collect();
        periods.extend(p.periods.keys().cloned());
        let engagement_by_period = periods
            .into_iter()
            .map(|period| {
                let e = p.periods.get(&period).copied().unwrap_or_default();
                EngagementRow { period, calls: e.calls, views: e.views }
            })
            .collect();
        let mut plans = Vec::new();
        let mut arms = Vec::new();
        for (product, f) in &p.products {
            let row = |r: &crate::analytics::PlanRecord, outcome: &str| PlanOutcomeRow {
                product: product.clone(),
                plan_id: r.plan_id.clone(),
                objective: r.objective.as_str().into(),
                arm: r.arm.clone(),
                made_at: r.made_at,
                outcome: outcome.into(),
                followed: r.followed,
            };
            plans.extend(f.open_plan.iter().map(|r| row(r, "open")));
            plans.extend(f.plans.iter().rev().map(|r| row(r, &r.outcome)));
            if let Some(arm) = &f.arm {
                arms.push((product.clone(), arm.clone()));
            }
        }
        Ok(Some(HcpView {
            plans,
            arms,
            segment: self.store().hcp_segment(hcp_id)?,
            hcp_id: p.hcp_id.clone(),
            calls_by_channel: channels.into_iter().map(|(channel, calls)| ChannelCount { channel, calls }).collect(),
            topics,
            key_messages,
            stages,
            plan,
            microsites,
            prescriptions,
            engagement_by_period,
        }))
    }

    fn channels(&self) -> Result<ChannelsView> {
        let mut rows: BTreeMap<String, ChannelRow> = BTreeMap::new();
        for stats in self.decks_stats()? {
            for (c, s) in &stats.channels {
                let r = rows.entry(c.clone()).or_insert_with(|| ChannelRow { channel: c.clone(), calls: 0, views: 0, hcps_reached: 0 });
                r.calls += s.calls;
                r.views += s.views;
            }
        }
        for (c, reached) in self.store().channel_reach()? {
            let r = rows.entry(c.clone()).or_insert_with(|| ChannelRow { channel: c.clone(), calls: 0, views: 0, hcps_reached: 0 });
            r.hcps_reached += reached;
        }
        Ok(ChannelsView { rows: rows.into_values().collect() })
    }

    fn sync_health(&self) -> Result<SyncHealthView> {
        let pending: BTreeMap<String, u64> = self.store().pending_calls_by_device()?.into_iter().collect();
        let devices = self
            .hub
            .stats()?
            .devices
            .into_iter()
            .map(|d| DeviceRow {
                last_seen_at: d
                    .last_seen_at
                    .as_deref()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc)),
                watermark: d.watermark.max(0) as u64,
                events_received: d.events_received,
                duplicates: d.duplicates_absorbed,
                rejected: d.rejected,
                pending_analysis: pending.get(&d.device_id).copied().unwrap_or(0),
                rep_id: d.rep_id,
                territory: d.territory,
                device_id: d.device_id,
            })
            .collect();
        Ok(SyncHealthView { devices, parked: self.store().parked_calls()? })
    }

    /// Each arm's sums from indexed SQL (`experiment_units`) and the decks' respond counters,
    /// per product of a deck with figures (every unit comes from a plan on one); never loads
    /// profiles.
    fn experiment(&self) -> Result<ExperimentView> {
        let policy = &self.hub.respond_rules().experiment;
        let now = Utc::now();
        let decks = self.decks_stats()?;
        let mut products: BTreeMap<String, (Vec<OutcomeRow>, Vec<StageMoveRow>)> = BTreeMap::new();
        for stats in &decks {
            let Some(m) = self.manifest(&stats.bundle_id)? else { continue };
            let meta = DeckMeta::from_manifest(&m);
            let entry = products.entry(m.product.clone()).or_default();
            for r in outcome_rows(stats) {
                match entry.0.iter_mut().find(|x| x.arm == r.arm && x.objective == r.objective) {
                    Some(x) => {
                        x.achieved += r.achieved;
                        x.missed += r.missed;
                    }
                    None => entry.0.push(r),
                }
            }
            entry.1.extend(stage_move_rows(stats, &meta));
        }
        let mut out = Vec::new();
        for (product, (mut outcomes, mut stage_moves)) in products {
            let sums = self.store().experiment_sums(&product, now)?;
            let arm = |m: &BTreeMap<String, crate::analytics::Moments>, a: &str| m.get(a).copied().unwrap_or_default();
            let (pt, ph) = (arm(&sums.progression, "treatment"), arm(&sums.progression, "holdout"));
            outcomes.sort_by_key(|r| (r.arm.clone(), Stage::parse(&r.objective)));
            stage_moves.sort_by(|a, b| Stage::parse(&a.stage).cmp(&Stage::parse(&b.stage)).then(b.calls.cmp(&a.calls)));
            stage_moves.truncate(STAGE_MOVES_SHOWN);
            out.push(ProductExperiment {
                treatment_n: pt.n,
                holdout_n: ph.n,
                progression: experiment::compare(&pt, &ph, policy.min_per_arm),
                rx_change: experiment::compare(&arm(&sums.rx_change, "treatment"), &arm(&sums.rx_change, "holdout"), policy.min_per_arm),
                outcomes,
                stage_moves,
                product,
            });
        }
        Ok(ExperimentView { holdout_share: policy.holdout_share, min_per_arm: policy.min_per_arm, products: out })
    }
}

/// Slides-before-moves rows shown per product on the experiment page.
const STAGE_MOVES_SHOWN: usize = 20;
