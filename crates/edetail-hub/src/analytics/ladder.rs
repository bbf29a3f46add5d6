//! The adoption ladder: the stages an HCP climbs for a product, in order, and one recorded move
//! between them. Shared by the profile (which keeps each HCP's stage) and the stage rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Adoption stage of an HCP for a product, in order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    Unaware,
    Aware,
    Educated,
    Convinced,
    Advocate,
}

impl Stage {
    pub const ALL: [Stage; 5] = [Stage::Unaware, Stage::Aware, Stage::Educated, Stage::Convinced, Stage::Advocate];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Unaware => "unaware",
            Stage::Aware => "aware",
            Stage::Educated => "educated",
            Stage::Convinced => "convinced",
            Stage::Advocate => "advocate",
        }
    }

    pub fn next(self) -> Option<Stage> {
        Stage::ALL.iter().copied().find(|s| *s > self)
    }

    /// 0 (unaware) to 4 (advocate): the ladder's rungs, for progression figures.
    pub fn level(self) -> u8 {
        self as u8
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl From<edetail_bundle::manifest::Step> for Stage {
    fn from(s: edetail_bundle::manifest::Step) -> Stage {
        use edetail_bundle::manifest::Step;
        match s {
            Step::Aware => Stage::Aware,
            Step::Educated => Stage::Educated,
            Step::Convinced => Stage::Convinced,
            Step::Advocate => Stage::Advocate,
        }
    }
}

/// One recorded stage change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageChange {
    pub hcp_id: String,
    pub product: String,
    pub from: Stage,
    pub to: Stage,
    pub at: Option<DateTime<Utc>>,
    pub call_key: String,
    pub rule_id: String,
    pub rule_description: String,
    /// The events that satisfied the rule's conditions.
    pub event_uuids: Vec<String>,
}
