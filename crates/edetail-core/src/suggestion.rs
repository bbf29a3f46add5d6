//! What a call offers an HCP: suggested slides in order, where the suggestion comes from (the
//! hub's plan or this device's own history) and why. Plain data shared by `plans` and `profile`.

use serde::Serialize;

/// Where a call's suggested order comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum SuggestionSource {
    /// The hub's signed plan for this HCP.
    Hub { plan_id: String, stage: String },
    /// This device's own history with the HCP (the fallback; works offline).
    Local,
}

/// One suggested slide and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuggestedSlide {
    pub slide_id: String,
    pub presentation_id: String,
    pub reason: String,
}

/// What a call offers for an HCP: slides in order, where they come from, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    pub source: SuggestionSource,
    pub slides: Vec<SuggestedSlide>,
    /// One line per reason behind the suggestion as a whole.
    pub reasons: Vec<String>,
}

impl Suggestion {
    /// The offered hub plan's id (`None` for a local suggestion).
    pub fn plan_id(&self) -> Option<&str> {
        match &self.source {
            SuggestionSource::Hub { plan_id, .. } => Some(plan_id),
            SuggestionSource::Local => None,
        }
    }

    pub fn slide_ids(&self) -> Vec<String> {
        self.slides.iter().map(|s| s.slide_id.clone()).collect()
    }
}
