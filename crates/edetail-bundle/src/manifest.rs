//! The bundle manifest model (`manifest.json`), format version 1.
//!
//! The model is plain serde. Unknown fields are kept in `extra` maps so that a newer minor
//! version of the format survives a round trip through an older tool; a newer *major* version is
//! refused before anything else is parsed (see [`Manifest::from_slice`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Sha256Digest;
use crate::path::BundlePath;

/// The format this crate writes.
pub const FORMAT_VERSION: &str = "1.0";
/// The only major version this crate reads.
pub const FORMAT_MAJOR: u32 = 1;
/// Name of the manifest at the bundle root.
pub const MANIFEST_NAME: &str = "manifest.json";
/// Name of the detached signature over the exact manifest bytes.
pub const SIGNATURE_NAME: &str = "manifest.sig";
/// Largest manifest accepted, in bytes (a 2,000-slide deck with 20,000 files is ~3 MB).
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// Unknown fields kept as they were.
pub type Extra = BTreeMap<String, Value>;

/// A presentation bundle's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `"MAJOR.MINOR"`; this crate writes [`FORMAT_VERSION`].
    pub format_version: String,
    /// Stable reverse-DNS id of the bundle, e.g. `com.acme.cardiozen.launch`.
    pub id: String,
    /// Content version; must increase with every publication of the same id.
    pub version: u64,
    /// Human label for the version, e.g. `2026.11 launch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_label: Option<String>,
    pub title: String,
    pub product: String,
    /// BCP 47 locale, e.g. `en-GB`.
    pub locale: String,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// The medical-legal-regulatory approval id printed on the material.
    pub approval_code: String,
    /// Decks in display order. Hidden decks are jump targets only (e.g. prescribing information).
    pub presentations: Vec<Presentation>,
    /// All slides of all decks, each once.
    pub slides: Vec<Slide>,
    /// Folders (ending in `/`) or files shared by all slides, e.g. `shared/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_resources: Vec<String>,
    /// Every file of the bundle except `manifest.json` and `manifest.sig`.
    #[serde(default)]
    pub files: BTreeMap<BundlePath, FileEntry>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One deck inside a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presentation {
    /// Stable id, unique in the bundle.
    pub id: String,
    pub title: String,
    /// Hidden decks are not listed to the rep; slides reach them by jump.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    /// Slide ids in display order. This list *is* the slide order.
    pub slides: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One slide. Its `id` is stable across content versions: analytics key on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slide {
    pub id: String,
    pub title: String,
    /// The HTML page that renders the slide.
    pub entry: BundlePath,
    /// For slides of a single-page framework (Agnitio) that share one entry page: what is
    /// appended to the entry's URL to show this slide, `?path=...` or `#...` (see
    /// [`Slide::route_is_valid`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Thumbnail image shown in the overview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<BundlePath>,
    /// CRM key message this slide maps to (Veeva `Key_Message_vod__c` external id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_message: Option<String>,
    /// Free tags, e.g. `efficacy`, `safety`, `dosing`, `moa`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// The adoption steps this slide serves: the stage(s) it helps move an HCP to. Empty: the
    /// analytics derive them from `topics` ([`default_steps`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Shown in every promotional call (fair balance: safety information / ISI): plans always
    /// keep it and a rep cannot drop it from a call.
    #[serde(default, skip_serializing_if = "is_false")]
    pub mandatory: bool,
    /// Hidden slides are skipped by swiping and reachable only by a link or jump.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    /// Gestures the shell must disable on this slide.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_gestures: Vec<Gesture>,
    /// A presentation whose slides are shown, in order, when this slide is entered and before
    /// the deck moves past it (e.g. mandatory safety information).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_presentation: Option<String>,
    /// Which JavaScript API the slide was written against.
    #[serde(default, skip_serializing_if = "Bridge::is_default")]
    pub bridge: Bridge,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Slide {
    /// The steps the slide serves: as declared, else derived from its topics.
    pub fn effective_steps(&self) -> Vec<Step> {
        if self.steps.is_empty() { default_steps(&self.topics) } else { self.steps.clone() }
    }

    /// Longest accepted `route`.
    pub const MAX_ROUTE_CHARS: usize = 512;

    /// A route starts with `?` or `#`, has at most [`Self::MAX_ROUTE_CHARS`] characters and no
    /// whitespace or control characters (it is appended to a URL as it is).
    pub fn route_is_valid(route: &str) -> bool {
        (route.starts_with('?') || route.starts_with('#'))
            && route.len() > 1
            && route.chars().count() <= Self::MAX_ROUTE_CHARS
            && !route.chars().any(|c| c.is_control() || c.is_whitespace())
    }
}

/// A step of the adoption ladder a slide can serve: the stage it helps an HCP reach
/// (unaware -> aware -> educated -> convinced -> advocate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Makes the HCP aware of the brand and the disease it treats.
    Aware,
    /// Teaches what the drug does (mechanism, efficacy, safety).
    Educated,
    /// Convinces her of its value for her patients (dosing, patient profiles, access, samples).
    Convinced,
    /// Helps her tell peers of good experiences (speaker programmes, referrals, sharing).
    Advocate,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Aware, Step::Educated, Step::Convinced, Step::Advocate];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Aware => "aware",
            Step::Educated => "educated",
            Step::Convinced => "convinced",
            Step::Advocate => "advocate",
        }
    }
}

/// Topics whose slides serve each step when a slide declares no `steps` (case-insensitive).
/// Importers write the result into the manifest; the analytics apply it to older bundles.
pub const STEP_TOPICS: [(Step, &[&str]); 4] = [
    (Step::Aware, &["awareness", "disease", "burden", "unmet-need", "intro"]),
    (Step::Educated, &["moa", "mechanism", "efficacy", "safety", "tolerability", "clinical-data", "evidence"]),
    (Step::Convinced, &["dosing", "prescribing", "patient-profile", "patient-case", "access", "samples", "cost"]),
    (Step::Advocate, &["advocacy", "peer", "referral", "speaker", "share"]),
];

/// Topics that mark fair-balance material an importer marks `mandatory` (case-insensitive).
pub const MANDATORY_TOPICS: &[&str] = &["isi", "important-safety-information", "fair-balance"];

/// The steps a slide with these topics serves by default ([`STEP_TOPICS`]), in ladder order.
pub fn default_steps(topics: &[String]) -> Vec<Step> {
    STEP_TOPICS
        .iter()
        .filter(|(_, names)| topics.iter().any(|t| names.iter().any(|n| t.eq_ignore_ascii_case(n))))
        .map(|(step, _)| *step)
        .collect()
}

/// A gesture the shell can disable on a slide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gesture {
    SwipeNext,
    SwipePrevious,
    PinchZoom,
    PinchExit,
    Rotate,
    Overview,
}

/// The slide-side JavaScript API a slide expects the runtime to provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bridge {
    /// `edetail.js`.
    #[default]
    Edetail,
    /// Veeva CRM's `com.veeva.clm` (served by the runtime's shim).
    Veeva,
    /// Agnitio's `ag` Content API and its `objc://iplanner` container calls.
    Agnitio,
    /// IQVIA OCE's `CLMPlayer`.
    Oce,
}

impl Bridge {
    fn is_default(&self) -> bool {
        *self == Bridge::Edetail
    }
}

/// What the manifest says about one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: Sha256Digest,
    pub size: u64,
    pub mime: String,
    #[serde(flatten)]
    pub extra: Extra,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why the manifest bytes could not be read as a v1 manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest.json is not valid JSON: {0}")]
    Json(String),
    #[error("manifest.json has no format_version")]
    MissingFormatVersion,
    #[error("format_version {0:?} is not of the form MAJOR.MINOR")]
    BadFormatVersion(String),
    #[error("bundle format {found} is newer than this edetail supports ({FORMAT_MAJOR}.x); update edetail")]
    UnsupportedFormat { found: String },
    #[error("manifest.json does not match format {FORMAT_MAJOR}: {0}")]
    Schema(String),
    #[error("manifest.json is larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge,
}

impl Manifest {
    /// Parses manifest bytes. The format version is checked first, so a newer major version
    /// gets [`ManifestError::UnsupportedFormat`] rather than a confusing schema error.
    pub fn from_slice(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge);
        }
        #[derive(Deserialize)]
        struct Probe {
            format_version: Option<Value>,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        let version = match probe.format_version {
            None => return Err(ManifestError::MissingFormatVersion),
            Some(Value::String(s)) => s,
            Some(other) => return Err(ManifestError::BadFormatVersion(other.to_string())),
        };
        let major = parse_major(&version)?;
        if major > FORMAT_MAJOR || major == 0 {
            return Err(ManifestError::UnsupportedFormat { found: version });
        }
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Schema(e.to_string()))
    }

    /// The canonical bytes this crate writes: pretty JSON, fields in model order, maps sorted,
    /// trailing newline. Deterministic for equal manifests.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("manifest serializes");
        out.push(b'\n');
        out
    }

    pub fn slide(&self, id: &str) -> Option<&Slide> {
        self.slides.iter().find(|s| s.id == id)
    }

    pub fn presentation(&self, id: &str) -> Option<&Presentation> {
        self.presentations.iter().find(|p| p.id == id)
    }

    /// Whether `at` lies inside the validity window (inclusive start, exclusive end).
    pub fn is_valid_at(&self, at: DateTime<Utc>) -> bool {
        self.valid_from <= at && at < self.valid_until
    }

    /// Sum of all file sizes.
    pub fn total_size(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }
}

fn parse_major(v: &str) -> Result<u32, ManifestError> {
    let bad = || ManifestError::BadFormatVersion(v.to_string());
    let (major, minor) = v.split_once('.').ok_or_else(bad)?;
    minor.parse::<u32>().map_err(|_| bad())?;
    major.parse::<u32>().map_err(|_| bad())
}
