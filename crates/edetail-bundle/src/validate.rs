//! Semantic checks on a parsed manifest: ids, references, validity window, slide files.

use std::collections::{BTreeMap, BTreeSet};

use crate::manifest::{Manifest, Slide};
use crate::problem::{Problem, ProblemKind};

/// Top-level folder reserved for the runtime's own scripts (`/_edetail/edetail.js`).
pub const RESERVED_PREFIX: &str = "_edetail/";

fn invalid(problems: &mut Vec<Problem>, entry: &str, detail: impl Into<String>) {
    problems.push(Problem::error(Some(entry), ProblemKind::InvalidField { detail: detail.into() }));
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Every problem with the manifest's content, independent of any archive.
pub fn manifest(m: &Manifest) -> Vec<Problem> {
    let mut p = Vec::new();
    let at = "manifest.json";
    if !is_id(&m.id) {
        invalid(&mut p, at, format!("id {:?} must be 1-128 characters of A-Z a-z 0-9 . - _", m.id));
    }
    if m.version == 0 {
        invalid(&mut p, at, "version must be 1 or higher");
    }
    for (name, value) in [("title", &m.title), ("product", &m.product), ("locale", &m.locale), ("approval_code", &m.approval_code)] {
        if value.trim().is_empty() {
            invalid(&mut p, at, format!("{name} must not be empty"));
        }
    }
    if m.approval_code.trim().eq_ignore_ascii_case("draft") {
        p.push(Problem::warning(
            Some(at),
            ProblemKind::InvalidField { detail: "approval_code is still DRAFT: set the MLR approval id before publishing".into() },
        ));
    }
    if m.valid_from >= m.valid_until {
        invalid(&mut p, at, format!("valid_from ({}) must be before valid_until ({})", m.valid_from, m.valid_until));
    }
    if m.presentations.is_empty() {
        invalid(&mut p, at, "there must be at least one presentation");
    } else if m.presentations.iter().all(|d| d.hidden) {
        invalid(&mut p, at, "at least one presentation must not be hidden");
    }

    // Ids unique.
    let mut seen = BTreeSet::new();
    for d in &m.presentations {
        if !is_id(&d.id) {
            invalid(&mut p, at, format!("presentation id {:?} must be 1-128 characters of A-Z a-z 0-9 . - _", d.id));
        }
        if !seen.insert(d.id.as_str()) {
            p.push(Problem::error(Some(at), ProblemKind::DuplicateId { what: "presentation".into(), id: d.id.clone() }));
        }
        if d.slides.is_empty() {
            invalid(&mut p, at, format!("presentation {:?} has no slides", d.id));
        }
    }
    let mut slides: BTreeMap<&str, &Slide> = BTreeMap::new();
    for s in &m.slides {
        if !is_id(&s.id) {
            invalid(&mut p, at, format!("slide id {:?} must be 1-128 characters of A-Z a-z 0-9 . - _", s.id));
        }
        if slides.insert(s.id.as_str(), s).is_some() {
            p.push(Problem::error(Some(at), ProblemKind::DuplicateId { what: "slide".into(), id: s.id.clone() }));
        }
    }

    // Presentations refer to known slides, each slide listed exactly once.
    let mut listed: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &m.presentations {
        for sid in &d.slides {
            *listed.entry(sid.as_str()).or_default() += 1;
            if !slides.contains_key(sid.as_str()) {
                let context = format!("presentation {:?}", d.id);
                p.push(Problem::error(Some(at), ProblemKind::UnknownSlide { context, slide: sid.clone() }));
            }
        }
    }
    for s in &m.slides {
        match listed.get(s.id.as_str()) {
            None => p.push(Problem::warning(Some(at), ProblemKind::OrphanSlide { slide: s.id.clone() })),
            Some(n) if *n > 1 => p.push(Problem::error(Some(at), ProblemKind::SlideListedTwice { slide: s.id.clone() })),
            _ => {}
        }
    }

    // Every adoption step served by some slide the rep can swipe to (declared or from topics).
    let visible: BTreeSet<&str> = m.presentations.iter().filter(|d| !d.hidden).flat_map(|d| d.slides.iter().map(String::as_str)).collect();
    for step in crate::manifest::Step::ALL {
        if !m.slides.iter().any(|s| !s.hidden && visible.contains(s.id.as_str()) && s.effective_steps().contains(&step)) {
            p.push(Problem::warning(Some(at), ProblemKind::StepUncovered { step: step.as_str().into() }));
        }
    }

    // Slides: files present, sub-presentations known and not self-referencing.
    for s in &m.slides {
        let field_missing =
            |field: &str, path: &str| ProblemKind::SlideFileMissing { slide: s.id.clone(), field: field.into(), path: path.into() };
        match m.files.get(&s.entry) {
            None => p.push(Problem::error(Some(s.entry.as_str()), field_missing("entry", s.entry.as_str()))),
            Some(f) if f.mime != "text/html" => p.push(Problem::warning(
                Some(s.entry.as_str()),
                ProblemKind::InvalidField { detail: format!("slide {:?} entry has MIME type {}, expected text/html", s.id, f.mime) },
            )),
            Some(_) => {}
        }
        if let Some(r) = &s.route
            && !Slide::route_is_valid(r)
        {
            invalid(
                &mut p,
                at,
                format!(
                    "slide {:?} route must start with ? or # and be 2-{} characters without spaces or control characters",
                    s.id,
                    Slide::MAX_ROUTE_CHARS
                ),
            );
        }
        if let Some(t) = &s.thumbnail
            && !m.files.contains_key(t)
        {
            p.push(Problem::error(Some(t.as_str()), field_missing("thumbnail", t.as_str())));
        }
        if let Some(sub) = &s.sub_presentation {
            match m.presentation(sub) {
                None => p.push(Problem::error(
                    Some(at),
                    ProblemKind::UnknownPresentation { context: format!("slide {:?} sub_presentation", s.id), presentation: sub.clone() },
                )),
                Some(d) if d.slides.iter().any(|x| x == &s.id) => {
                    invalid(&mut p, at, format!("slide {:?} is part of its own sub_presentation {:?}", s.id, sub));
                }
                Some(_) => {}
            }
        }
    }

    for r in &m.shared_resources {
        let present = m.files.keys().any(|f| f.as_str() == r || (r.ends_with('/') && f.as_str().starts_with(r.as_str())));
        if !present {
            p.push(Problem::warning(Some(at), ProblemKind::InvalidField { detail: format!("shared resource {r:?} matches no file") }));
        }
    }
    for (path, f) in &m.files {
        if path.as_str().starts_with(RESERVED_PREFIX) {
            invalid(&mut p, path.as_str(), format!("{RESERVED_PREFIX} is reserved for the runtime's scripts"));
        }
        if path.as_str() == crate::MANIFEST_NAME || path.as_str() == crate::SIGNATURE_NAME {
            invalid(&mut p, path.as_str(), "the manifest and signature must not list themselves");
        }
        if f.mime.trim().is_empty() {
            invalid(&mut p, path.as_str(), "mime must not be empty");
        }
    }
    p
}
