//! Problems found in a bundle: one value per finding, each naming the entry it concerns.
//!
//! `check` collects every problem; strict reading stops at the first error-level problem.
//! Codes are stable snake_case strings (`--json` output, tests), messages are for authors.

use serde::Serialize;

use crate::path::PathError;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The bundle may still be used, but an author should look.
    Warning,
    /// The bundle must not be used.
    Error,
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ProblemKind {
    // --- the archive itself
    #[error("not a readable zip archive: {detail}")]
    CorruptArchive { detail: String },
    #[error("entry is damaged or truncated: {detail}")]
    CorruptEntry { detail: String },
    #[error("unsafe entry name: {reason}")]
    UnsafePath {
        #[serde(serialize_with = "ser_display")]
        reason: PathError,
    },
    #[error("entry is a symbolic link; bundles may contain only regular files")]
    Symlink,
    #[error("entry is encrypted; bundles may not be password-protected")]
    Encrypted,
    #[error("entry uses compression method {method}; only stored and deflate are allowed")]
    UnsupportedCompression { method: String },
    #[error("the archive contains this name {count} times")]
    DuplicateEntry { count: usize },
    #[error("differs only in letter case from {other:?}; the two collide on iPad and Android file systems")]
    CaseCollision { other: String },
    #[error("archive has more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("entry inflates past {limit} bytes")]
    EntryTooLarge { limit: u64 },
    #[error("archive inflates past {limit} bytes in total")]
    TotalTooLarge { limit: u64 },
    #[error("entry inflates more than {limit}x its compressed size (decompression bomb)")]
    CompressionRatio { limit: u64 },
    #[error("entries overlap inside the archive (decompression bomb)")]
    OverlappingEntries,
    #[error("entry size {actual} differs from its zip header's size {declared}")]
    HeaderSizeMismatch { declared: u64, actual: u64 },

    // --- manifest vs archive
    #[error("manifest.json is missing at the archive root")]
    ManifestMissing,
    #[error("{detail}")]
    ManifestInvalid { detail: String },
    #[error("{detail}")]
    UnsupportedFormat { detail: String },
    #[error("file is in the archive but not listed in manifest.json files")]
    NotInManifest,
    #[error("manifest.json lists this file but the archive does not contain it")]
    MissingFile,
    #[error("size is {actual} bytes but manifest.json says {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("sha256 is {actual} but manifest.json says {expected}")]
    HashMismatch { expected: String, actual: String },

    // --- manifest semantics
    #[error("{detail}")]
    InvalidField { detail: String },
    #[error("slide {slide:?}: {field} {path:?} is not in the bundle's files")]
    SlideFileMissing { slide: String, field: String, path: String },
    #[error("{context} refers to unknown slide {slide:?}")]
    UnknownSlide { context: String, slide: String },
    #[error("{context} refers to unknown presentation {presentation:?}")]
    UnknownPresentation { context: String, presentation: String },
    #[error("{what} id {id:?} is used more than once")]
    DuplicateId { what: String, id: String },
    #[error("slide {slide:?} is not part of any presentation")]
    OrphanSlide { slide: String },
    #[error("slide {slide:?} appears in more than one presentation or twice in one")]
    SlideListedTwice { slide: String },
    #[error(
        "no visible slide serves the adoption step {step:?} (declared `steps`, or topics that imply it): plans for HCPs one step below have nothing to offer"
    )]
    StepUncovered { step: String },

    // --- signature
    #[error("bundle is not signed (no manifest.sig)")]
    Unsigned,
    #[error("manifest.sig is not a valid signature file: {detail}")]
    SignatureMalformed { detail: String },
    #[error("manifest.sig was made with key {key_id}, which is not among the trusted keys")]
    UnknownSigningKey { key_id: String },
    #[error("manifest.sig does not verify against manifest.json (tampered, or signed with another key)")]
    BadSignature,
}

fn ser_display<S: serde::Serializer>(v: &PathError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl ProblemKind {
    /// The stable code used in `--json` output.
    pub fn code(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m.get("code").and_then(|c| c.as_str()).unwrap_or("unknown").to_string(),
            _ => "unknown".to_string(),
        }
    }
}

/// One finding: what, where, how bad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// The archive entry or manifest location concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    #[serde(flatten)]
    pub kind: ProblemKind,
    /// The human message (same as `Display`).
    pub message: String,
}

impl Problem {
    pub fn error(entry: Option<&str>, kind: ProblemKind) -> Self {
        Self::new(Severity::Error, entry, kind)
    }

    pub fn warning(entry: Option<&str>, kind: ProblemKind) -> Self {
        Self::new(Severity::Warning, entry, kind)
    }

    fn new(severity: Severity, entry: Option<&str>, kind: ProblemKind) -> Self {
        let message = kind.to_string();
        Problem { severity, entry: entry.map(str::to_string), kind, message }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.entry {
            Some(e) => write!(f, "{sev}: {e}: {}", self.message),
            None => write!(f, "{sev}: {}", self.message),
        }
    }
}

/// A list of problems that made a bundle unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter().filter(|p| p.is_error())
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Problem::is_error)
    }
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let errors: Vec<_> = self.errors().collect();
        match errors.as_slice() {
            [] => write!(f, "no errors"),
            [one] => write!(f, "{one}"),
            [first, rest @ ..] => write!(f, "{first} (and {} more)", rest.len()),
        }
    }
}
