//! IQVIA OCE (CLMPlayer) importer: a presentation package whose sequences (key messages) are
//! folders or zips, each with its own HTML entry page, becomes one bundle with `bridge: oce`.
//!
//! Each sequence keeps its folder (`<sequence>/`), so relative references and
//! `CLMPlayer.gotoSlide('<sequence>', ...)` keep working; the slide's `key_message` is the
//! sequence name CLMPlayer uses. See `docs/importers.md` for the mapping.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{
    Extractor, IdAllocator, ImportMeta, ImportReport, Mapped, SourceMeta, SourceTree, Unmapped, finish_presentations, html_title,
    import_err, join_path, manifest_header, read_folder, write_output,
};
use crate::error::{Error, Result};
use crate::manifest::{Bridge, Presentation, Slide};
use crate::path::BundlePath;
use crate::writer::BundleFile;

/// How to import an OCE presentation.
#[derive(Debug, Clone, Default)]
pub struct OceOptions {
    /// Bundle metadata from the command line. OCE packages carry no bundle metadata, so id,
    /// product, locale, validity and approval code come from here.
    pub meta: ImportMeta,
}

/// One sequence: its folder name (the CLMPlayer key message) and files relative to it.
#[derive(Debug)]
struct Sequence {
    name: String,
    origin: String,
    tree: SourceTree,
    entry: BundlePath,
}

/// Imports an OCE presentation package (a folder or a zip of one) into one unsigned bundle
/// written atomically to `out`. Sequences are top-level folders or `*.zip` files with an HTML
/// entry page (`index.html`, `<sequence>.html`, or the only HTML file at their root), taken in
/// name order; top-level folders without one are shared resources.
pub fn import_oce(input: &Path, opts: &OceOptions, out: &Path, progress: &mut dyn FnMut(u64)) -> Result<ImportReport> {
    let mut extractor = Extractor::new()?;
    let meta = std::fs::metadata(input).map_err(Error::io(input))?;
    let tree = if meta.is_dir() {
        read_folder(input)?
    } else if input.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
        extractor.read_zip(input)?
    } else {
        return Err(import_err(format!("{}: not an OCE presentation folder or a .zip of one", input.display())));
    };
    let label = tree.label.clone();
    // A zip of the presentation folder: remove that folder when it is not itself a sequence.
    let tree = match tree.single_top_folder() {
        Some(top) if entry_of(&tree.clone().strip_folder(&top), &top).is_none() => tree.strip_folder(&top),
        _ => tree,
    };

    let mut mapped = Vec::new();
    let mut unmapped = Vec::new();
    let mut warnings = Vec::new();
    let mut manifest = manifest_header("OCE", &opts.meta, &SourceMeta::default(), &mut warnings)?;

    // Split the top level: folders, sequence zips, loose files.
    let mut folders: BTreeMap<String, SourceTree> = BTreeMap::new();
    let mut loose: Vec<BundlePath> = Vec::new();
    let mut zips: Vec<(String, BundlePath)> = Vec::new();
    for p in tree.files.keys() {
        match p.as_str().split_once('/') {
            Some((top, _)) => {
                folders.entry(top.to_string()).or_insert_with(|| SourceTree { label: format!("{label}: {top}/"), ..Default::default() });
            }
            None if p.extension().as_deref() == Some("zip") => {
                let stem = p.as_str()[..p.as_str().len() - 4].to_string();
                zips.push((stem, p.clone()));
            }
            None => loose.push(p.clone()),
        }
    }
    for (name, sub) in folders.iter_mut() {
        *sub = SourceTree { label: sub.label.clone(), ..tree.clone().strip_folder(name) };
    }
    for (stem, p) in &zips {
        if folders.contains_key(stem) {
            return Err(import_err(format!("{label}: {p} and the folder {stem}/ are both sequence {stem:?}; keep one")));
        }
        if BundlePath::parse(stem).is_err() {
            return Err(import_err(format!("{label}: {p}: the name cannot be a bundle folder; rename the zip")));
        }
        let Some(src) = tree.files.get(p).map(|f| f.source.clone()) else { continue };
        let inner = match src {
            crate::writer::FileSource::Path(path) => {
                let mut t = extractor.read_zip(&path)?;
                t.label = format!("{label}: {p}");
                t
            }
            crate::writer::FileSource::Bytes(_) => continue,
        };
        let inner = match inner.single_top_folder() {
            Some(top) if entry_of(&inner, stem).is_none() => inner.strip_folder(&top),
            _ => inner,
        };
        folders.insert(stem.clone(), inner);
    }

    // Sequences and shared folders.
    let mut sequences: Vec<Sequence> = Vec::new();
    let mut shared: Vec<(String, SourceTree)> = Vec::new();
    for (name, sub) in folders {
        let origin = if zips.iter().any(|(s, _)| *s == name) { format!("{name}.zip") } else { format!("{name}/") };
        match entry_of(&sub, &name) {
            Some(Ok(entry)) => sequences.push(Sequence { name, origin, tree: sub, entry }),
            Some(Err(many)) => {
                return Err(import_err(format!(
                    "{label}: sequence {name}: cannot tell which HTML file is the entry page ({}); name it index.html or {name}.html",
                    many.join(", ")
                )));
            }
            None => shared.push((name, sub)),
        }
    }
    if sequences.is_empty() {
        return Err(import_err(format!(
            "{label}: no sequences found; an OCE presentation has one folder (or zip) per sequence, each with index.html"
        )));
    }

    // Slides.
    let mut ids = IdAllocator::default();
    let mut slides = Vec::new();
    let mut files = Vec::new();
    let names: BTreeSet<&str> = sequences.iter().map(|s| s.name.as_str()).collect();
    for seq in &sequences {
        let (id, changed) = ids.allocate(&seq.name, "slide");
        if changed {
            warnings.push(format!("sequence {:?} got slide id {id:?} to keep ids unique", seq.name));
        }
        let entry = join_path(&seq.name, &seq.entry)?;
        let title = seq.tree.read_text(&seq.entry)?.as_deref().and_then(html_title).unwrap_or_else(|| seq.name.clone());
        let thumbnail = thumbnail_of(&seq.tree, &seq.name).map(|t| join_path(&seq.name, &t)).transpose()?;
        let others: Vec<&str> = seq
            .tree
            .files
            .keys()
            .filter(|p| p != &&seq.entry && !p.as_str().contains('/') && matches!(p.extension().as_deref(), Some("html" | "htm")))
            .map(BundlePath::as_str)
            .collect();
        if !others.is_empty() {
            unmapped.push(Unmapped {
                source: format!("{}: {}", seq.origin, others.join(", ")),
                reason: "further pages of the sequence, carried; reachable with CLMPlayer.gotoSlide(null, '<page>'), not separate slides"
                    .into(),
            });
        }
        for (p, f) in &seq.tree.files {
            files.push((BundleFile { path: join_path(&seq.name, p)?, source: f.source.clone() }, seq.origin.clone()));
        }
        for (from, target, page) in goto_targets(&seq.tree)? {
            match target {
                Some(t) if !names.contains(t.as_str()) => warnings
                    .push(format!("{}/{from} calls CLMPlayer.gotoSlide('{t}'), which is not a sequence of this presentation", seq.name)),
                None => {
                    if let Some(page) = page
                        && seq.tree.find(&page).is_none()
                    {
                        warnings.push(format!(
                            "{}/{from} calls CLMPlayer.gotoSlide(null, '{page}'), which is not a page of sequence {}",
                            seq.name, seq.name
                        ));
                    }
                }
                _ => {}
            }
        }
        mapped.push(Mapped { source: seq.origin.clone(), target: format!("slide {id} ({entry}), key message {}", seq.name) });
        slides.push(Slide {
            id,
            title,
            entry,
            route: None,
            thumbnail,
            key_message: Some(seq.name.clone()),
            topics: Vec::new(),
            hidden: false,
            steps: Vec::new(),
            mandatory: false,
            disabled_gestures: Vec::new(),
            sub_presentation: None,
            bridge: Bridge::Oce,
            extra: Default::default(),
        });
    }
    for (name, sub) in &shared {
        for (p, f) in &sub.files {
            files.push((BundleFile { path: join_path(name, p)?, source: f.source.clone() }, format!("{name}/")));
        }
        mapped.push(Mapped { source: format!("{name}/"), target: format!("shared resources {name}/") });
        manifest.shared_resources.push(format!("{name}/"));
    }
    for p in &loose {
        if let Some(f) = tree.files.get(p) {
            files.push((BundleFile { path: p.clone(), source: f.source.clone() }, label.clone()));
        }
        unmapped.push(Unmapped { source: p.to_string(), reason: "file outside any sequence; carried unchanged".into() });
    }
    unmapped.push(Unmapped {
        source: "topics".into(),
        reason: "OCE packages do not say which topics a sequence covers; no slide topics were set".into(),
    });

    let presentation = Presentation {
        id: "main".into(),
        title: manifest.title.clone(),
        hidden: false,
        slides: slides.iter().map(|s| s.id.clone()).collect(),
        extra: Default::default(),
    };
    manifest.presentations = finish_presentations("OCE", vec![presentation], &mut slides, &mut warnings)?;
    manifest.slides = slides;

    let mut trees: Vec<(String, &SourceTree)> = sequences.iter().map(|s| (format!("{}/", s.name), &s.tree)).collect();
    trees.extend(shared.iter().map(|(n, t)| (format!("{n}/"), t)));
    let trees: Vec<(&str, &SourceTree)> = trees.iter().map(|(p, t)| (p.as_str(), *t)).collect();
    let compat = super::compat_of(&trees)?;
    let written = write_output(out, manifest, files, progress)?;
    drop(extractor);
    Ok(ImportReport::new("oce", written, mapped, unmapped, warnings, compat))
}

/// The entry page of a sequence folder: `index.html`, `<name>.html`, or the only HTML file at
/// its root. `None` when it has no HTML at its root (a shared folder); `Err` lists several.
fn entry_of(tree: &SourceTree, name: &str) -> Option<std::result::Result<BundlePath, Vec<String>>> {
    for c in ["index.html".to_string(), format!("{name}.html")] {
        if let Some(p) = tree.find_ignore_case(&c) {
            return Some(Ok(p.clone()));
        }
    }
    let html: Vec<&BundlePath> =
        tree.files.keys().filter(|p| !p.as_str().contains('/') && matches!(p.extension().as_deref(), Some("html" | "htm"))).collect();
    match html.as_slice() {
        [] => None,
        [one] => Some(Ok((*one).clone())),
        many => Some(Err(many.iter().map(|p| p.to_string()).collect())),
    }
}

/// `thumbnail.png|jpg`, `thumb.png|jpg` or `<name>.png|jpg` at the sequence root.
fn thumbnail_of(tree: &SourceTree, name: &str) -> Option<BundlePath> {
    ["thumbnail", "thumb", name]
        .iter()
        .flat_map(|b| ["png", "jpg", "jpeg"].map(|x| format!("{b}.{x}")))
        .find_map(|c| tree.find_ignore_case(&c).cloned())
}

/// `CLMPlayer.gotoSlide(<sequence>, <page>, ...)` calls in the sequence's pages and scripts:
/// (file, sequence when a string literal, page when a string literal).
#[allow(clippy::type_complexity)]
fn goto_targets(tree: &SourceTree) -> Result<Vec<(String, Option<String>, Option<String>)>> {
    let mut out = Vec::new();
    for path in tree.files.keys().filter(|p| super::compat::is_script_or_page(p)) {
        let Some(text) = tree.read_text(path)? else { continue };
        for (i, _) in text.match_indices("CLMPlayer.gotoSlide(") {
            let args = &text[i + "CLMPlayer.gotoSlide(".len()..];
            let args = &args[..args.find(')').unwrap_or(args.len()).min(512)];
            let mut parts = args.splitn(3, ',').map(|a| a.trim());
            let lit = |a: Option<&str>| -> Option<Option<String>> {
                let a = a?;
                if a == "null" || a == "undefined" || a.is_empty() {
                    return Some(None);
                }
                let q = a.chars().next().filter(|c| matches!(c, '\'' | '"'))?;
                a.strip_prefix(q)?.strip_suffix(q).map(|s| Some(s.to_string()))
            };
            // A non-literal first argument (a variable) cannot be checked.
            let Some(seq) = lit(parts.next()) else { continue };
            let page = lit(parts.next()).flatten();
            out.push((path.to_string(), seq, page));
        }
    }
    Ok(out)
}
