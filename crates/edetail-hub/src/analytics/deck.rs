//! What the analytics know about a deck (`DeckMeta`, from the manifest) and the per-deck
//! statistics folded call by call (`DeckStats`: views, dwell histogram and median, drop-off,
//! reactions, per segment and per channel). Pure data; no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ladder::Stage;

/// Topics that mark reference material (never planned).
pub const REFERENCE_TOPICS: &[&str] = &["references", "prescribing-information"];
/// Topics that mark awareness slides (first for unaware/aware HCPs, skipped from educated on).
pub const AWARENESS_TOPICS: &[&str] = &["awareness", "disease"];
/// The segment every call is counted in.
pub const SEGMENT_ALL: &str = "all";
/// Typical dwell of a slide without history (no counted view yet), in ms.
pub const DEFAULT_TYPICAL_DWELL_MS: i64 = 10_000;
/// The typical dwell is never below this, so a slide everyone flicks past does not turn every
/// view into a long one.
pub const MIN_TYPICAL_DWELL_MS: i64 = 1_000;

/// One slide as the analytics see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlideMeta {
    pub id: String,
    /// The first presentation listing the slide ("" when none does).
    pub presentation: String,
    pub title: String,
    pub topics: Vec<String>,
    pub key_message: Option<String>,
    /// Hidden slide, slide of a hidden presentation (jump target, e.g. ISI or PI), or listed
    /// by no presentation.
    pub hidden: bool,
    /// Reference material (topic in [`REFERENCE_TOPICS`]).
    pub reference: bool,
    /// The adoption steps the slide serves (the stages it helps reach): as the manifest
    /// declares them, else from its topics (`edetail_bundle::manifest::default_steps`).
    pub steps: Vec<Stage>,
    /// Shown in every promotional call (fair balance): every plan keeps it.
    pub mandatory: bool,
}

impl SlideMeta {
    pub fn has_topic(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t.eq_ignore_ascii_case(topic))
    }

    /// May appear in a plan or a microsite.
    pub fn plannable(&self) -> bool {
        !self.hidden && !self.reference
    }

    pub fn is_awareness(&self) -> bool {
        AWARENESS_TOPICS.iter().any(|t| self.has_topic(t))
    }

    pub fn serves(&self, step: Stage) -> bool {
        self.steps.contains(&step)
    }
}

/// A deck's slides in deck order (visible presentations' order, then hidden ones, then slides
/// no presentation lists), with the product they promote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeckMeta {
    pub bundle_id: String,
    pub bundle_version: u64,
    pub product: String,
    pub title: String,
    pub slides: Vec<SlideMeta>,
}

impl DeckMeta {
    pub fn from_manifest(m: &edetail_bundle::Manifest) -> DeckMeta {
        let mut slides: Vec<SlideMeta> = Vec::new();
        let mut ordered: Vec<(&edetail_bundle::manifest::Presentation, &String)> = Vec::new();
        for p in m.presentations.iter().filter(|p| !p.hidden).chain(m.presentations.iter().filter(|p| p.hidden)) {
            ordered.extend(p.slides.iter().map(|s| (p, s)));
        }
        for (p, id) in ordered {
            if slides.iter().any(|s| &s.id == id) {
                continue;
            }
            let Some(s) = m.slide(id) else { continue };
            slides.push(slide_meta(s, &p.id, s.hidden || p.hidden));
        }
        for s in &m.slides {
            if !slides.iter().any(|x| x.id == s.id) {
                slides.push(slide_meta(s, "", true));
            }
        }
        DeckMeta { bundle_id: m.id.clone(), bundle_version: m.version, product: m.product.clone(), title: m.title.clone(), slides }
    }

    pub fn slide(&self, id: &str) -> Option<&SlideMeta> {
        self.slides.iter().find(|s| s.id == id)
    }

    /// Position in deck order.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.slides.iter().position(|s| s.id == id)
    }
}

fn slide_meta(s: &edetail_bundle::manifest::Slide, presentation: &str, hidden: bool) -> SlideMeta {
    SlideMeta {
        id: s.id.clone(),
        presentation: presentation.to_string(),
        title: s.title.clone(),
        topics: s.topics.clone(),
        key_message: s.key_message.clone(),
        hidden,
        reference: s.topics.iter().any(|t| REFERENCE_TOPICS.iter().any(|r| t.eq_ignore_ascii_case(r))),
        steps: s.effective_steps().into_iter().map(Stage::from).collect(),
        mandatory: s.mandatory,
    }
}

/// Bucket lower bounds of the dwell histogram, in ms: `[0, 1 s)` then ten buckets per decade
/// (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k s) from 1 s to 8,000 s; the last bucket is open.
/// Fixed forever: changing it would make stored histograms meaningless.
pub const DWELL_BUCKET_BOUNDS_MS: [i64; 41] = {
    const MANTISSAS: [i64; 10] = [1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000];
    let mut b = [0i64; 41];
    let mut k = 0;
    let mut scale = 1;
    while k < 4 {
        let mut m = 0;
        while m < 10 {
            b[1 + k * 10 + m] = MANTISSAS[m] * scale;
            m += 1;
        }
        scale *= 10;
        k += 1;
    }
    b
};

/// Counts of dwells per fixed log-scale bucket, so the median is incremental.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DwellHistogram {
    /// `counts[i]` = dwells in `[bounds[i], bounds[i+1])` (see [`DWELL_BUCKET_BOUNDS_MS`]);
    /// trailing empty buckets may be absent.
    pub counts: Vec<u64>,
    pub total: u64,
    pub sum_ms: i64,
}

/// The histogram bucket a dwell falls in.
pub fn dwell_bucket(dwell_ms: i64) -> usize {
    DWELL_BUCKET_BOUNDS_MS.iter().rposition(|b| *b <= dwell_ms.max(0)).unwrap_or(0)
}

impl DwellHistogram {
    pub fn add(&mut self, dwell_ms: i64) {
        let i = dwell_bucket(dwell_ms);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.sum_ms += dwell_ms.max(0);
    }

    /// The lower median's bucket, reported as the bucket's midpoint (`(lo + hi) / 2`; the
    /// open last bucket reports its lower bound). `None` when empty.
    pub fn median_ms(&self) -> Option<i64> {
        if self.total == 0 {
            return None;
        }
        let target = (self.total - 1) / 2;
        let bounds = &DWELL_BUCKET_BOUNDS_MS;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > target {
                return Some(match bounds.get(i + 1) {
                    Some(hi) => (bounds[i] + hi) / 2,
                    None => bounds[i],
                });
            }
        }
        None
    }
}

/// Reaction counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReactionMix {
    pub positive: u64,
    pub neutral: u64,
    pub negative: u64,
}

impl ReactionMix {
    pub fn add(&mut self, value: &str) {
        match value {
            "positive" => self.positive += 1,
            "negative" => self.negative += 1,
            _ => self.neutral += 1,
        }
    }
}

/// One slide within one segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlideStats {
    /// Counted views (see `views::VIEW_MIN_DWELL_MS`).
    pub views: u64,
    /// Counted views after the first of the same slide in the same call.
    pub revisits: u64,
    /// Calls with at least one counted view of the slide.
    pub calls_viewed: u64,
    /// Calls whose last counted view of a visible slide was this slide.
    pub drop_offs: u64,
    pub hcp_led_views: u64,
    pub dwell: DwellHistogram,
    pub reactions: ReactionMix,
}

impl SlideStats {
    /// `drop_offs / calls_viewed` (0 without views).
    pub fn drop_off_rate(&self) -> f64 {
        if self.calls_viewed == 0 { 0.0 } else { self.drop_offs as f64 / self.calls_viewed as f64 }
    }

    pub fn median_dwell_ms(&self) -> Option<i64> {
        self.dwell.median_ms()
    }
}

/// All slides of one segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SegmentStats {
    pub calls: u64,
    pub slides: BTreeMap<String, SlideStats>,
}

/// Counts per channel (face_to_face, remote, microsite, preview, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelStats {
    pub calls: u64,
    pub views: u64,
    /// Counted views per slide.
    pub slide_views: BTreeMap<String, u64>,
}

/// The persisted statistics of one deck (`bundle_id`), across its versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeckStats {
    pub bundle_id: String,
    /// Calls folded in, every channel.
    pub calls: u64,
    /// `"all"` plus one entry per HCP segment; preview calls are in none.
    pub segments: BTreeMap<String, SegmentStats>,
    pub channels: BTreeMap<String, ChannelStats>,
    /// Counted views of slide ids this deck's current version does not have.
    pub unknown_slide_views: u64,
    pub last_call_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What the respond step did with the deck: stage moves, plan outcomes, reps' edits.
    pub respond: RespondStats,
}

/// Plans with an objective, by whether the next touch reached it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutcomeTally {
    /// The next call or channel touch left the HCP at or beyond the objective.
    pub achieved: u64,
    /// It did not.
    pub missed: u64,
}

/// How reps changed the hub's plans for one slide (`call_plan` events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RepEditTally {
    /// Plans that had the slide.
    pub planned: u64,
    pub kept: u64,
    pub dropped: u64,
    /// Sequences a rep added it to though the plan did not have it.
    pub added: u64,
}

/// The respond step's counters for one deck (all add up across workers, see `merge`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RespondStats {
    /// Per slide, per stage reached: calls in which the slide had a counted view and after
    /// which the HCP moved up to that stage ("which slides preceded stage moves").
    pub stage_moves: BTreeMap<String, BTreeMap<String, u64>>,
    /// Calls in which the HCP moved up, per stage reached.
    pub moves: BTreeMap<String, u64>,
    /// Per arm (`treatment`, `holdout`), per objective: plan outcomes.
    pub outcomes: BTreeMap<String, BTreeMap<String, OutcomeTally>>,
    /// Per slide: reps' edits of plans.
    pub rep_edits: BTreeMap<String, RepEditTally>,
}

impl DeckStats {
    pub fn new(bundle_id: &str) -> DeckStats {
        DeckStats { bundle_id: bundle_id.to_string(), ..DeckStats::default() }
    }

    pub fn slide(&self, segment: &str, slide: &str) -> Option<&SlideStats> {
        self.segments.get(segment)?.slides.get(slide)
    }

    /// A view of `dwell_ms` took in the slide: it reached the slide's typical dwell, at the
    /// histogram's resolution (its bucket is the typical dwell's bucket or above), so an HCP
    /// who viewed a slide for exactly as long as everyone else did has absorbed it.
    pub fn absorbed(&self, slide: &str, dwell_ms: i64) -> bool {
        dwell_bucket(dwell_ms) >= dwell_bucket(self.typical_dwell_ms(slide))
    }

    /// The slide's typical dwell: the `"all"` median, at least [`MIN_TYPICAL_DWELL_MS`];
    /// [`DEFAULT_TYPICAL_DWELL_MS`] without history.
    pub fn typical_dwell_ms(&self, slide: &str) -> i64 {
        self.slide(SEGMENT_ALL, slide)
            .and_then(SlideStats::median_dwell_ms)
            .map_or(DEFAULT_TYPICAL_DWELL_MS, |m| m.max(MIN_TYPICAL_DWELL_MS))
    }
}
