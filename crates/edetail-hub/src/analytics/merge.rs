//! Deck statistics are counters (and a latest time), so the change one analysis batch made can
//! be taken apart from the statistics it started from ([`DeckStats::delta_since`]) and added to
//! whatever other workers wrote meanwhile ([`DeckStats::merge`]): workers in several hub
//! processes fold calls of one deck at once without optimistic conflicts on its document.

use std::collections::BTreeMap;

use super::deck::{
    ChannelStats, DeckStats, DwellHistogram, OutcomeTally, ReactionMix, RepEditTally, RespondStats, SegmentStats, SlideStats,
};

/// A value that adds up: `minus` undoes a `plus` (counters never go below zero).
trait Tally: Default + PartialEq {
    fn plus(&mut self, o: &Self);
    fn minus(&mut self, o: &Self);
}

impl Tally for u64 {
    fn plus(&mut self, o: &Self) {
        *self += o;
    }
    fn minus(&mut self, o: &Self) {
        *self = self.saturating_sub(*o);
    }
}

impl<T: Tally> Tally for BTreeMap<String, T> {
    fn plus(&mut self, o: &Self) {
        for (k, v) in o {
            self.entry(k.clone()).or_default().plus(v);
        }
    }
    /// Entries that drop to nothing are removed, so a delta carries only what changed.
    fn minus(&mut self, o: &Self) {
        for (k, v) in o {
            if let Some(mine) = self.get_mut(k) {
                mine.minus(v);
            }
        }
        self.retain(|_, v| *v != T::default());
    }
}

impl Tally for DwellHistogram {
    fn plus(&mut self, o: &Self) {
        if self.counts.len() < o.counts.len() {
            self.counts.resize(o.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&o.counts) {
            *mine += theirs;
        }
        self.total += o.total;
        self.sum_ms += o.sum_ms;
    }
    fn minus(&mut self, o: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(&o.counts) {
            *mine = mine.saturating_sub(*theirs);
        }
        while self.counts.last() == Some(&0) {
            self.counts.pop();
        }
        self.total = self.total.saturating_sub(o.total);
        self.sum_ms = (self.sum_ms - o.sum_ms).max(0);
    }
}

impl Tally for ReactionMix {
    fn plus(&mut self, o: &Self) {
        self.positive.plus(&o.positive);
        self.neutral.plus(&o.neutral);
        self.negative.plus(&o.negative);
    }
    fn minus(&mut self, o: &Self) {
        self.positive.minus(&o.positive);
        self.neutral.minus(&o.neutral);
        self.negative.minus(&o.negative);
    }
}

impl Tally for SlideStats {
    fn plus(&mut self, o: &Self) {
        self.views.plus(&o.views);
        self.revisits.plus(&o.revisits);
        self.calls_viewed.plus(&o.calls_viewed);
        self.drop_offs.plus(&o.drop_offs);
        self.hcp_led_views.plus(&o.hcp_led_views);
        self.dwell.plus(&o.dwell);
        self.reactions.plus(&o.reactions);
    }
    fn minus(&mut self, o: &Self) {
        self.views.minus(&o.views);
        self.revisits.minus(&o.revisits);
        self.calls_viewed.minus(&o.calls_viewed);
        self.drop_offs.minus(&o.drop_offs);
        self.hcp_led_views.minus(&o.hcp_led_views);
        self.dwell.minus(&o.dwell);
        self.reactions.minus(&o.reactions);
    }
}

impl Tally for SegmentStats {
    fn plus(&mut self, o: &Self) {
        self.calls.plus(&o.calls);
        self.slides.plus(&o.slides);
    }
    fn minus(&mut self, o: &Self) {
        self.calls.minus(&o.calls);
        self.slides.minus(&o.slides);
    }
}

impl Tally for ChannelStats {
    fn plus(&mut self, o: &Self) {
        self.calls.plus(&o.calls);
        self.views.plus(&o.views);
        self.slide_views.plus(&o.slide_views);
    }
    fn minus(&mut self, o: &Self) {
        self.calls.minus(&o.calls);
        self.views.minus(&o.views);
        self.slide_views.minus(&o.slide_views);
    }
}

impl Tally for OutcomeTally {
    fn plus(&mut self, o: &Self) {
        self.achieved.plus(&o.achieved);
        self.missed.plus(&o.missed);
    }
    fn minus(&mut self, o: &Self) {
        self.achieved.minus(&o.achieved);
        self.missed.minus(&o.missed);
    }
}

impl Tally for RepEditTally {
    fn plus(&mut self, o: &Self) {
        self.planned.plus(&o.planned);
        self.kept.plus(&o.kept);
        self.dropped.plus(&o.dropped);
        self.added.plus(&o.added);
    }
    fn minus(&mut self, o: &Self) {
        self.planned.minus(&o.planned);
        self.kept.minus(&o.kept);
        self.dropped.minus(&o.dropped);
        self.added.minus(&o.added);
    }
}

impl Tally for RespondStats {
    fn plus(&mut self, o: &Self) {
        self.stage_moves.plus(&o.stage_moves);
        self.moves.plus(&o.moves);
        self.outcomes.plus(&o.outcomes);
        self.rep_edits.plus(&o.rep_edits);
    }
    fn minus(&mut self, o: &Self) {
        self.stage_moves.minus(&o.stage_moves);
        self.moves.minus(&o.moves);
        self.outcomes.minus(&o.outcomes);
        self.rep_edits.minus(&o.rep_edits);
    }
}

impl DeckStats {
    /// What folding calls into `base` added: `base.merge(&self.delta_since(base)) == self` when
    /// `self` is `base` with calls folded in.
    pub fn delta_since(&self, base: &DeckStats) -> DeckStats {
        let mut d = self.clone();
        d.calls.minus(&base.calls);
        d.segments.minus(&base.segments);
        d.channels.minus(&base.channels);
        d.unknown_slide_views.minus(&base.unknown_slide_views);
        d.respond.minus(&base.respond);
        // The latest call stays: merging takes the later of two times.
        d
    }

    /// Adds a delta (from [`DeckStats::delta_since`]) made by a worker that started from other
    /// statistics: counts add up, the latest call is the later one.
    pub fn merge(&mut self, delta: &DeckStats) {
        if self.bundle_id.is_empty() {
            self.bundle_id = delta.bundle_id.clone();
        }
        self.calls.plus(&delta.calls);
        self.segments.plus(&delta.segments);
        self.channels.plus(&delta.channels);
        self.unknown_slide_views.plus(&delta.unknown_slide_views);
        self.respond.plus(&delta.respond);
        self.last_call_at = self.last_call_at.max(delta.last_call_at);
    }
}
