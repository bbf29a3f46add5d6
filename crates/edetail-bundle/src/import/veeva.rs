//! Veeva CRM CLM importer: key-message zips (legacy and Vault layouts) plus shared resources,
//! ordered and described by a Vault multichannel loader CSV, FTP `.ctl` files, or file order.
//!
//! Each key message keeps its own folder (`<zip stem>/`) and the shared resource goes to the
//! folder the slides reference (`../shared/`, `../common/`), so relative references keep
//! working unchanged. See `docs/importers.md` for the mapping.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::{
    Extractor, IdAllocator, ImportMeta, ImportReport, MAX_TEXT_BYTES, Mapped, SourceMeta, SourceTree, Unmapped, bundle_id_from, file_label,
    finish_presentations, html_title, import_err, is_scannable, join_path, manifest_header, normalize_locale, parse_source_date,
    read_bounded, relative_refs, write_output,
};
use crate::error::{Error, Result};
use crate::manifest::{Bridge, Gesture, Presentation, Slide};
use crate::path::BundlePath;
use crate::writer::BundleFile;

/// How to import Veeva content.
#[derive(Debug, Clone, Default)]
pub struct VeevaOptions {
    /// Bundle metadata from the command line; overrides what the source says.
    pub meta: ImportMeta,
    /// A Vault multichannel loader CSV giving presentations, slide order and metadata.
    pub loader_csv: Option<PathBuf>,
    /// Veeva FTP control files, one per zip. Used when no loader CSV is given.
    pub ctl_files: Vec<PathBuf>,
}

/// Zip stems (lower-cased) that are shared resources by name.
const SHARED_NAMES: &[&str] =
    &["shared", "shared_resource", "shared_resources", "shared-resource", "sharedresource", "common", "common_resources"];

/// `.ctl` keys that carry credentials: dropped, and their values never copied anywhere.
const CTL_CREDENTIALS: &[&str] = &["user", "password", "email"];

/// One input zip.
#[derive(Debug)]
struct ZipInput {
    /// File name as given, e.g. `CZ_Efficacy_01.zip`.
    name: String,
    /// File name without `.zip`: the key message's folder in the bundle.
    stem: String,
    path: PathBuf,
}

/// A slide as the metadata describes it.
#[derive(Debug, Clone)]
struct PlanSlide {
    /// Lower-cased zip file name.
    zip: String,
    key_message: Option<String>,
    title: Option<String>,
    disabled: Vec<Gesture>,
    /// Key of the plan presentation to show first (Vault `related_sub_pres__v`).
    sub_presentation: Option<String>,
    /// Where this came from, e.g. `loader.csv row 4`.
    origin: String,
}

#[derive(Debug, Clone)]
struct PlanPresentation {
    /// The source's id, used for links (`Presentation Link`, `related_sub_pres__v`).
    key: String,
    title: String,
    hidden: bool,
    slides: Vec<PlanSlide>,
}

/// What the metadata (CSV, `.ctl` or nothing) says.
#[derive(Debug, Default)]
struct Plan {
    presentations: Vec<PlanPresentation>,
    /// Lower-cased zip names declared as shared resources.
    shared_zips: BTreeSet<String>,
    meta: SourceMeta,
    /// Whether zips the metadata does not mention deserve a warning.
    warn_unlisted: bool,
    mapped: Vec<Mapped>,
    unmapped: Vec<Unmapped>,
    warnings: Vec<String>,
}

/// Imports Veeva CLM content into one unsigned bundle written atomically to `out`.
///
/// `inputs` are zip files and/or folders holding them (sorted by name). Metadata comes from
/// `opts.loader_csv`, else `opts.ctl_files`, else file order; `opts.meta` overrides it.
pub fn import_veeva(inputs: &[PathBuf], opts: &VeevaOptions, out: &Path, progress: &mut dyn FnMut(u64)) -> Result<ImportReport> {
    let zips = collect_zips(inputs)?;
    let known: BTreeMap<String, usize> = zips.iter().enumerate().map(|(i, z)| (z.name.to_ascii_lowercase(), i)).collect();

    let mut plan = if let Some(csv) = &opts.loader_csv {
        plan_from_csv(csv, &known)?
    } else if !opts.ctl_files.is_empty() {
        plan_from_ctl(&opts.ctl_files, &known)?
    } else {
        Plan::default()
    };
    let mut warnings = std::mem::take(&mut plan.warnings);
    let mut manifest = manifest_header("Veeva", &opts.meta, &plan.meta, &mut warnings)?;
    let mut mapped = std::mem::take(&mut plan.mapped);
    let mut unmapped = std::mem::take(&mut plan.unmapped);

    // Extract and classify every zip.
    let mut extractor = Extractor::new()?;
    let mut slide_zips: BTreeMap<String, KeyMessageZip> = BTreeMap::new();
    let mut shared_zips: Vec<(usize, SourceTree)> = Vec::new();
    let mut undecided: Vec<(usize, SourceTree, String)> = Vec::new();
    for (i, z) in zips.iter().enumerate() {
        let tree = extractor.read_zip(&z.path)?;
        let lower = z.name.to_ascii_lowercase();
        let named_shared = SHARED_NAMES.contains(&z.stem.to_ascii_lowercase().as_str());
        if plan.shared_zips.contains(&lower) || named_shared {
            shared_zips.push((i, tree));
            continue;
        }
        match find_entry(z, tree)? {
            Found::Slide(km) => {
                if let Some(w) = &km.guessed {
                    warnings.push(w.clone());
                }
                slide_zips.insert(lower, *km);
            }
            Found::NoEntry(tree, why) => undecided.push((i, tree, why)),
        }
    }

    // References from slides to files outside their own folder (`../shared/...`).
    let stems: BTreeSet<String> = slide_zips.values().map(|k| k.stem.clone()).collect();
    let mut outside: Vec<OutsideRef> = Vec::new();
    let mut goto_targets: Vec<(String, String)> = Vec::new();
    for km in slide_zips.values() {
        for path in km.tree.files.keys().filter(|p| is_scannable(p)) {
            let Some(text) = km.tree.read_text(path)? else {
                continue;
            };
            let from = join_path(&km.stem, path)?;
            for r in relative_refs(&text) {
                if !r.starts_with("../") {
                    continue;
                }
                let resolved = from.join_relative(&r);
                let inside = resolved.as_ref().is_some_and(|p| p.as_str().starts_with(&format!("{}/", km.stem)));
                if !inside {
                    outside.push(OutsideRef { from: from.clone(), reference: r, resolved });
                }
            }
            goto_targets.extend(goto_slide_targets(&text).into_iter().map(|t| (from.to_string(), t)));
        }
    }

    // A zip with a single top folder X that other slides reference as `../X/` is a shared
    // resource, whatever it is called and even if it holds an HTML page.
    let by_content: Vec<String> = slide_zips
        .iter()
        .filter(|(_, km)| {
            km.top.as_ref().is_some_and(|top| {
                !top.eq_ignore_ascii_case(&km.stem)
                    && !stems.contains(top)
                    && outside.iter().any(|r| {
                        !r.from.as_str().starts_with(&format!("{}/", km.stem))
                            && r.resolved
                                .as_ref()
                                .and_then(|p| p.as_str().strip_prefix(&format!("{top}/")))
                                .is_some_and(|rest| km.tree.find(rest).is_some())
                    })
            })
        })
        .map(|(k, _)| k.clone())
        .collect();
    let mut content_shared: Vec<(usize, SourceTree, String)> = Vec::new();
    for key in by_content {
        let Some(km) = slide_zips.remove(&key) else { continue };
        let folder = km.top.clone().unwrap_or_default();
        warnings.push(format!(
            "{}: slides reference its folder as ../{folder}/, so it is imported as a shared resource, not a key message",
            km.name
        ));
        outside.retain(|r| !r.from.as_str().starts_with(&format!("{}/", km.stem)));
        goto_targets.retain(|(from, _)| !from.starts_with(&format!("{}/", km.stem)));
        let i = zips.iter().position(|z| z.name == km.name).unwrap_or_default();
        content_shared.push((i, km.tree, folder));
    }
    let stems: BTreeSet<String> = slide_zips.values().map(|k| k.stem.clone()).collect();

    // Shared resources: declared or named ones, then zips without an entry page whose files
    // the slides reference.
    let mut shared: Vec<(usize, SourceTree, String)> = content_shared;
    for (i, tree) in shared_zips {
        let tree = strip_shared_top(&zips[i], tree);
        let folder = shared_folder(&zips[i], &tree, &outside, &stems, &mut warnings);
        shared.push((i, tree, folder));
    }
    for (i, tree, why) in undecided {
        let tree = strip_shared_top(&zips[i], tree);
        // A single top folder that the slides reference as ../<folder>/ is the shared folder.
        if let Some(top) = tree.single_top_folder()
            && !stems.contains(&top)
            && outside
                .iter()
                .any(|r| r.resolved.as_ref().is_some_and(|p| p.as_str().starts_with(&format!("{top}/")) && tree.files.contains_key(p)))
        {
            let inner = tree.strip_folder(&top);
            shared.push((i, inner, top));
            continue;
        }
        match best_folder(&tree, &outside, &stems) {
            Some((folder, _)) => shared.push((i, tree, folder)),
            None => {
                let z = &zips[i];
                return Err(import_err(format!(
                    "{}: {why}, and no slide references its files as ../shared/ or ../common/. If it is a slide, add \
                     the entry page \"{stem}/{stem}.html\" (legacy) or \"index.html\" (Vault); if it is a shared \
                     resource, name it shared.zip or declare it (loader CSV Type=Shared, or \
                     is_shared_resource_vod__c=true in its .ctl)",
                    z.name,
                    stem = z.stem
                )));
            }
        }
    }

    // Files.
    let mut files: Vec<(BundleFile, String)> = Vec::new();
    let mut shared_folders: BTreeSet<String> = BTreeSet::new();
    for (i, tree, folder) in &shared {
        let z = &zips[*i];
        if stems.contains(folder) {
            return Err(import_err(format!(
                "{}: its folder {folder}/ is also the folder of key message {folder}.zip; rename one of them",
                z.name
            )));
        }
        for (p, f) in &tree.files {
            files.push((BundleFile { path: join_path(folder, p)?, source: f.source.clone() }, z.name.clone()));
        }
        shared_folders.insert(folder.clone());
        mapped.push(Mapped { source: z.name.clone(), target: format!("shared resources {folder}/") });
    }
    manifest.shared_resources = shared_folders.iter().map(|f| format!("{f}/")).collect();

    // Order: the plan, then zips it does not mention.
    let mut presentations = std::mem::take(&mut plan.presentations);
    for p in presentations.iter_mut().filter(|p| p.title.is_empty()) {
        p.title = manifest.title.clone();
    }
    for ps in presentations.iter().flat_map(|p| &p.slides) {
        if !slide_zips.contains_key(&ps.zip) {
            let what = if shared.iter().any(|(i, _, _)| zips[*i].name.eq_ignore_ascii_case(&ps.zip)) {
                "is a shared resource, not a slide"
            } else {
                "is not among the inputs"
            };
            return Err(import_err(format!("{}: {} {what}; fix the metadata or the inputs", ps.origin, ps.zip)));
        }
    }
    let listed: BTreeSet<String> = presentations.iter().flat_map(|p| p.slides.iter().map(|s| s.zip.clone())).collect();
    let unlisted: Vec<String> =
        zips.iter().map(|z| z.name.to_ascii_lowercase()).filter(|n| slide_zips.contains_key(n) && !listed.contains(n)).collect();
    if !unlisted.is_empty() {
        let target = match presentations.iter().position(|p| !p.hidden) {
            Some(i) => i,
            None => {
                presentations.push(PlanPresentation { key: "main".into(), title: manifest.title.clone(), hidden: false, slides: vec![] });
                presentations.len() - 1
            }
        };
        for zip in unlisted {
            if plan.warn_unlisted {
                warnings.push(format!(
                    "{zip} is not described by the metadata; appended to presentation {:?} in input order",
                    presentations[target].key
                ));
            }
            let origin = format!("input {zip}");
            let slide = PlanSlide { zip, key_message: None, title: None, disabled: vec![], sub_presentation: None, origin };
            presentations[target].slides.push(slide);
        }
    }

    // Presentations and slides.
    let mut pres_ids = IdAllocator::default();
    let pres_id_of: Vec<String> = presentations
        .iter()
        .map(|p| {
            let (id, changed) = pres_ids.allocate(&p.key, "presentation");
            if changed {
                warnings.push(format!("presentation {:?} got id {id:?} to keep ids unique", p.key));
            }
            id
        })
        .collect();
    let key_to_id: HashMap<&str, &str> = presentations.iter().zip(&pres_id_of).map(|(p, id)| (p.key.as_str(), id.as_str())).collect();
    let mut slide_ids = IdAllocator::default();
    let mut carried: BTreeSet<String> = BTreeSet::new();
    let mut out_presentations = Vec::new();
    let mut slides = Vec::new();
    for (p, pid) in presentations.iter().zip(&pres_id_of) {
        let mut ids = Vec::new();
        for ps in &p.slides {
            let Some(km) = slide_zips.get(&ps.zip) else {
                continue;
            };
            let key_message = ps.key_message.clone().unwrap_or_else(|| km.stem.clone());
            let (id, changed) = slide_ids.allocate(&key_message, "slide");
            if changed {
                warnings.push(format!("key message {key_message:?} got slide id {id:?} to keep ids unique"));
            }
            let entry = join_path(&km.stem, &km.entry)?;
            let title = match &ps.title {
                Some(t) => t.clone(),
                None => km.tree.read_text(&km.entry)?.as_deref().and_then(html_title).unwrap_or_else(|| key_message.clone()),
            };
            let sub_presentation = match &ps.sub_presentation {
                None => None,
                Some(key) => match key_to_id.get(key.as_str()) {
                    Some(id) => Some((*id).to_string()),
                    None => {
                        warnings.push(format!("{}: related sub-presentation {key:?} is not in the metadata; ignored", ps.origin));
                        None
                    }
                },
            };
            let thumbnail = km.thumbnail.as_ref().map(|t| join_path(&km.stem, t)).transpose()?;
            // A key message listed twice becomes two slides over the same files.
            if carried.insert(ps.zip.clone()) {
                for (p, f) in &km.tree.files {
                    files.push((BundleFile { path: join_path(&km.stem, p)?, source: f.source.clone() }, km.name.clone()));
                }
                if let Some(poster) = &km.poster {
                    unmapped.push(Unmapped {
                        source: format!("{}: {poster}", km.name),
                        reason: "poster image carried as a file; the manifest has no poster field".into(),
                    });
                }
            }
            mapped.push(Mapped { source: km.name.clone(), target: format!("slide {id} ({entry}) in presentation {pid}") });
            ids.push(id.clone());
            slides.push(Slide {
                id,
                title,
                entry,
                route: None,
                thumbnail,
                key_message: Some(key_message),
                topics: Vec::new(),
                hidden: false,
                steps: Vec::new(),
                mandatory: false,
                disabled_gestures: ps.disabled.clone(),
                sub_presentation,
                bridge: Bridge::Veeva,
                extra: Default::default(),
            });
        }
        out_presentations.push(Presentation {
            id: pid.clone(),
            title: p.title.clone(),
            hidden: p.hidden,
            slides: ids,
            extra: Default::default(),
        });
    }
    manifest.presentations = finish_presentations("Veeva", out_presentations, &mut slides, &mut warnings)?;
    manifest.slides = slides;
    unmapped.push(Unmapped {
        source: "topics".into(),
        reason: "Veeva content does not say which topics a slide covers; no slide topics were set".into(),
    });

    // Reference checks: what slides reach outside their folder must be in the bundle; a
    // reference to a missing file is an error (the slide would break on the device).
    let present: BTreeSet<&str> = files.iter().map(|(f, _)| f.path.as_str()).collect();
    let mut reported = BTreeSet::new();
    let mut dangling = Vec::new();
    for r in &outside {
        let ok = r.resolved.as_ref().is_some_and(|p| present.contains(p.as_str()));
        if !ok && reported.insert((r.from.to_string(), r.reference.clone())) {
            let what = match &r.resolved {
                Some(p) if shared_folders.iter().any(|f| p.as_str().starts_with(&format!("{f}/"))) => {
                    format!("{p}, which is not in the shared resource")
                }
                Some(p) => format!("{p}, which is not in the bundle"),
                None => "a path outside the bundle".to_string(),
            };
            let stem = r.from.as_str().split('/').next().unwrap_or_default();
            let slide =
                manifest.slides.iter().find(|s| s.entry.as_str().starts_with(&format!("{stem}/"))).map(|s| s.id.as_str()).unwrap_or(stem);
            dangling.push(format!("slide {slide}: {} references {} -> {what}", r.from, r.reference));
        }
    }
    if !dangling.is_empty() {
        return Err(import_err(format!(
            "Veeva import: {} reference(s) to files that are not in the bundle; add the files (or the shared-resource zip) \
             or fix the references:\n  {}",
            dangling.len(),
            dangling.join("\n  ")
        )));
    }
    let slide_zip_names: BTreeSet<String> = slide_zips.keys().cloned().collect();
    let stems_lower: BTreeSet<String> = slide_zips.values().map(|k| k.stem.to_ascii_lowercase()).collect();
    for (from, target) in goto_targets {
        let t = target.to_ascii_lowercase();
        if !slide_zip_names.contains(&t) && !stems_lower.contains(&t) {
            warnings.push(format!("{from} calls gotoSlide('{target}'), which is not among the imported key messages"));
        }
    }

    let mut trees: Vec<(String, &SourceTree)> = slide_zips.values().map(|k| (format!("{}/", k.stem), &k.tree)).collect();
    trees.extend(shared.iter().map(|(_, t, folder)| (format!("{folder}/"), t)));
    let trees: Vec<(&str, &SourceTree)> = trees.iter().map(|(p, t)| (p.as_str(), *t)).collect();
    let compat = super::compat_of(&trees)?;
    let written = write_output(out, manifest, files, progress)?;
    Ok(ImportReport::new("veeva", written, mapped, unmapped, warnings, compat))
}

/// The zips to import: files as given, folders' `*.zip` sorted by name.
fn collect_zips(inputs: &[PathBuf]) -> Result<Vec<ZipInput>> {
    let mut paths = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(Error::io(input))?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(Error::io(input))?
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(Error::io(input))?
                .into_iter()
                .map(|e| e.path())
                .filter(|p| is_zip_name(p) && p.is_file())
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(import_err(format!("{}: folder holds no .zip files", input.display())));
            }
            paths.extend(found);
        } else if is_zip_name(input) {
            paths.push(input.clone());
        } else {
            return Err(import_err(format!(
                "{}: not a .zip file or a folder of them (pass the loader CSV with --loader-csv, .ctl files with --ctl)",
                input.display()
            )));
        }
    }
    if paths.is_empty() {
        return Err(import_err("no Veeva zip files given"));
    }
    let mut zips: Vec<ZipInput> = Vec::new();
    for path in paths {
        let name = file_label(&path);
        if zips.iter().any(|z| z.name.eq_ignore_ascii_case(&name)) {
            return Err(import_err(format!("two inputs are named {name}; key message zip names must be unique")));
        }
        let stem = name[..name.len() - 4].to_string();
        if BundlePath::parse(&stem).is_err() || stem.contains('/') {
            return Err(import_err(format!("{name}: the name cannot be a bundle folder; rename the zip")));
        }
        zips.push(ZipInput { name, stem, path });
    }
    Ok(zips)
}

/// `*.zip`, except hidden files (macOS `._name.zip` litter).
fn is_zip_name(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.len() > 4 && !n.starts_with('.') && n.to_ascii_lowercase().ends_with(".zip"))
}

/// A key-message zip, re-rooted so that its entry page is at the top.
#[derive(Debug)]
struct KeyMessageZip {
    name: String,
    stem: String,
    tree: SourceTree,
    entry: BundlePath,
    thumbnail: Option<BundlePath>,
    poster: Option<BundlePath>,
    /// Set when the entry page had to be guessed.
    guessed: Option<String>,
    /// The single top folder the zip had (removed from `tree`), if any.
    top: Option<String>,
}

enum Found {
    Slide(Box<KeyMessageZip>),
    /// No entry page; the tree and a phrase saying what was looked for.
    NoEntry(SourceTree, String),
}

/// Finds the entry page: `<stem>.html` (legacy) or `index.html` (Vault), at the root or inside
/// a single top folder; else the only HTML file at the root.
fn find_entry(z: &ZipInput, tree: SourceTree) -> Result<Found> {
    let names = [format!("{}.html", z.stem), "index.html".to_string()];
    let at_root = |t: &SourceTree| names.iter().find_map(|n| t.find_ignore_case(n).cloned());
    let mut top_folder = None;
    let (tree, entry) = if let Some(e) = at_root(&tree) {
        (tree, Some(e))
    } else if let Some(top) = tree.single_top_folder() {
        let inner = tree.clone().strip_folder(&top);
        let own = format!("{top}.html");
        match at_root(&inner).or_else(|| inner.find_ignore_case(&own).cloned()) {
            Some(e) => {
                top_folder = Some(top);
                (inner, Some(e))
            }
            None => (tree, None),
        }
    } else {
        (tree, None)
    };
    let (entry, guessed) = match entry {
        Some(e) => (e, None),
        None => {
            let html: Vec<&BundlePath> = tree
                .files
                .keys()
                .filter(|p| !p.as_str().contains('/') && matches!(p.extension().as_deref(), Some("html" | "htm")))
                .collect();
            match html.as_slice() {
                [] => {
                    let why = format!("has no HTML entry page (looked for {0}/{0}.html and index.html)", z.stem);
                    return Ok(Found::NoEntry(tree, why));
                }
                [one] => {
                    let e = (*one).clone();
                    let w = format!("{}: no {}.html or index.html; using {e} as the slide's entry page", z.name, z.stem);
                    (e, Some(w))
                }
                many => {
                    let list: Vec<&str> = many.iter().map(|p| p.as_str()).collect();
                    return Err(import_err(format!(
                        "{}: cannot tell which HTML file is the slide ({}); rename the entry page to {}.html or index.html",
                        z.name,
                        list.join(", "),
                        z.stem
                    )));
                }
            }
        }
    };
    let entry_stem = entry.file_name().rsplit_once('.').map(|(s, _)| s.to_string()).unwrap_or_default();
    let pick = |cands: Vec<String>| cands.iter().find_map(|c| tree.find_ignore_case(c).cloned());
    let images = |base: &str| ["jpg", "jpeg", "png"].iter().map(|x| format!("{base}.{x}")).collect::<Vec<_>>();
    let thumbnail = pick([images(&format!("{}-thumb", z.stem)), images(&format!("{entry_stem}-thumb")), images("thumb")].concat());
    let poster = pick([images(&format!("{}-full", z.stem)), images(&format!("{entry_stem}-full")), images("poster")].concat());
    Ok(Found::Slide(Box::new(KeyMessageZip {
        name: z.name.clone(),
        stem: z.stem.clone(),
        tree,
        entry,
        thumbnail,
        poster,
        guessed,
        top: top_folder,
    })))
}

/// A reference from a slide file to a path outside its own folder.
#[derive(Debug)]
struct OutsideRef {
    from: BundlePath,
    reference: String,
    resolved: Option<BundlePath>,
}

/// Removes a single top folder from a shared-resource zip when it is named like the zip or
/// like a shared folder (`shared/`, `common/`), so its content lands directly in the folder.
fn strip_shared_top(z: &ZipInput, tree: SourceTree) -> SourceTree {
    match tree.single_top_folder() {
        Some(top) if top.eq_ignore_ascii_case(&z.stem) || SHARED_NAMES.contains(&top.to_ascii_lowercase().as_str()) => {
            tree.strip_folder(&top)
        }
        _ => tree,
    }
}

/// The folder (first segment after `../`) whose references this tree satisfies best, with the
/// number of references satisfied. Ties prefer `shared`, then `common`, then name order.
fn best_folder(tree: &SourceTree, outside: &[OutsideRef], stems: &BTreeSet<String>) -> Option<(String, usize)> {
    let mut hits: BTreeMap<String, usize> = BTreeMap::new();
    for r in outside {
        let Some(p) = &r.resolved else { continue };
        let Some((first, rest)) = p.as_str().split_once('/') else {
            continue;
        };
        if stems.contains(first) {
            continue;
        }
        if tree.find(rest).is_some() {
            *hits.entry(first.to_string()).or_default() += 1;
        }
    }
    let rank = |f: &str| match f {
        "shared" => 0,
        "common" => 1,
        _ => 2,
    };
    hits.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| rank(&b.0).cmp(&rank(&a.0))).then_with(|| b.0.cmp(&a.0)))
}

/// The bundle folder for a declared or named shared resource.
fn shared_folder(z: &ZipInput, tree: &SourceTree, outside: &[OutsideRef], stems: &BTreeSet<String>, warnings: &mut Vec<String>) -> String {
    if let Some((folder, _)) = best_folder(tree, outside, stems) {
        return folder;
    }
    let referenced: BTreeSet<&str> = outside
        .iter()
        .filter_map(|r| r.resolved.as_ref()?.as_str().split_once('/').map(|(f, _)| f))
        .filter(|f| !stems.contains(*f) && matches!(*f, "shared" | "common"))
        .collect();
    let folder = match referenced.iter().next() {
        Some(f) if referenced.len() == 1 => (*f).to_string(),
        _ if z.stem.eq_ignore_ascii_case("common") => "common".to_string(),
        _ => "shared".to_string(),
    };
    warnings.push(format!("{}: no slide references its files; placed in {folder}/", z.name));
    folder
}

/// Key messages named by `gotoSlide(...)` / `gotoSlideV2(...)` calls and `veeva:gotoSlide(...)`
/// requests whose first argument is a string literal: `'X.zip'`, the single-string form
/// `'X.zip, PRESENTATION'`, or a bare key message name. Calls with a variable are skipped.
fn goto_slide_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for pat in ["gotoSlide(", "gotoSlideV2("] {
        for (i, _) in text.match_indices(pat) {
            if text[..i].ends_with("CLMPlayer.") {
                continue;
            }
            let arg = text[i + pat.len()..].trim_start();
            let request = text[..i].ends_with("veeva:");
            let target = match arg.chars().next() {
                Some(q @ ('\'' | '"')) => arg[1..].find(q).map(|end| &arg[1..1 + end]),
                // veeva:gotoSlide(X.zip) / veeva:gotoSlide(X.zip,PRES): the request itself.
                Some(_) if request => arg.find([')', '"', '\'']).map(|end| &arg[..end]),
                _ => None,
            };
            let Some(target) = target else { continue };
            let first = target.split(',').next().unwrap_or_default().trim();
            if !first.is_empty() && first.len() < 256 && !first.contains([' ', '+', '(']) {
                out.push(first.to_string());
            }
        }
    }
    out
}

/// Maps a Veeva `Disable_Actions_vod__c` value (`;`- or `,`-separated picklist values such as
/// `Swipe_vod;Pinch_To_Exit_vod` or `Swipe, Pinch To Exit`) to gestures. Values without an
/// edetail equivalent are returned separately.
fn map_disable_actions(value: &str) -> (Vec<Gesture>, Vec<String>) {
    let mut gestures = BTreeSet::new();
    let mut unknown = Vec::new();
    for raw in value.split([';', ',']) {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let lower = raw.to_ascii_lowercase();
        let norm = lower.strip_suffix("_vod").unwrap_or(&lower).replace('_', " ");
        let norm = norm.split_whitespace().collect::<Vec<_>>().join(" ");
        match norm.as_str() {
            "swipe" => {
                gestures.insert(Gesture::SwipeNext);
                gestures.insert(Gesture::SwipePrevious);
            }
            "pinch to exit" | "pinch exit" => {
                gestures.insert(Gesture::PinchExit);
            }
            "zoom" | "pinch zoom" => {
                gestures.insert(Gesture::PinchZoom);
            }
            "rotation lock" | "rotation" | "rotate" => {
                gestures.insert(Gesture::Rotate);
            }
            "navigation bar" | "nav bar" => {
                gestures.insert(Gesture::Overview);
            }
            _ => unknown.push(raw.to_string()),
        }
    }
    (gestures.into_iter().collect(), unknown)
}

fn truthy(s: &str) -> bool {
    matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "y" | "1")
}

/// A zip file name as metadata writes it (`km`, `km.zip`), lower-cased with `.zip`.
fn zip_key(s: &str) -> String {
    let s = s.trim();
    let name = s.rsplit('/').next().unwrap_or(s);
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".zip") { lower } else { format!("{lower}.zip") }
}

// ------------------------------------------------------------------------------------------
// Vault multichannel loader CSV

/// Columns read from the loader CSV (lower-cased).
mod col {
    pub const TYPE: &str = "type";
    pub const EXTERNAL_ID: &str = "external_id__v";
    pub const NAME: &str = "name__v";
    pub const PRES_ID: &str = "pres.crm_presentation_id__v";
    pub const PRES_TITLE: &str = "pres.title__v";
    pub const PRES_HIDDEN: &str = "pres.crm_hidden__v";
    pub const PRES_PRODUCT: &str = "pres.product__v.name__v";
    pub const PRES_LANGUAGE: &str = "pres.language__v";
    pub const PRES_START: &str = "pres.crm_start_date__v";
    pub const PRES_END: &str = "pres.crm_end_date__v";
    pub const PRES_APPROVAL: &str = "pres.approval_code__c";
    pub const PRES_LINK: &str = "presentation link";
    pub const FIELDS_ONLY: &str = "fields only";
    pub const SLIDE_FILENAME: &str = "slide.filename";
    pub const SLIDE_TITLE: &str = "slide.title__v";
    pub const SLIDE_DISABLE: &str = "slide.crm_disable_actions__v";
    pub const SLIDE_SHARED_REL: &str = "slide.related_shared_resource__v";
    pub const SLIDE_SUB_PRES: &str = "slide.related_sub_pres__v";
    pub const SLIDE_PRODUCT: &str = "slide.product__v.name__v";
    pub const SLIDE_IS_SHARED: &str = "slide.crm_shared_resource__v";
    pub const SLIDE_LANGUAGE: &str = "slide.language__v";
}

/// Columns understood but without a bundle equivalent.
const CSV_VAULT_ONLY: &[&str] = &[
    "document_id__v",
    "lifecycle__v",
    "create presentation",
    "pres.clm_content__v",
    "slide.clm_content__v",
    "pres.engage_content__v",
    "slide.engage_content__v",
    "pres.crm_training__v",
    "pres.country__v.name__v",
    "slide.country__v.name__v",
    "slide.crm_media_type__v",
    "slide.ios_resolution__v",
    "slide.lifecycle__v",
    "slide.name__v",
    "slide.clm_id__v",
];

const CSV_MAPPED: &[&str] = &[
    col::TYPE,
    col::EXTERNAL_ID,
    col::NAME,
    col::PRES_ID,
    col::PRES_TITLE,
    col::PRES_HIDDEN,
    col::PRES_PRODUCT,
    col::PRES_LANGUAGE,
    col::PRES_START,
    col::PRES_END,
    col::PRES_APPROVAL,
    col::PRES_LINK,
    col::FIELDS_ONLY,
    col::SLIDE_FILENAME,
    col::SLIDE_TITLE,
    col::SLIDE_DISABLE,
    col::SLIDE_SHARED_REL,
    col::SLIDE_SUB_PRES,
    col::SLIDE_PRODUCT,
    col::SLIDE_IS_SHARED,
    col::SLIDE_LANGUAGE,
];

fn plan_from_csv(path: &Path, known: &BTreeMap<String, usize>) -> Result<Plan> {
    let label = file_label(path);
    let bytes = read_bounded(path, MAX_TEXT_BYTES)?;
    let mut rdr = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(&bytes[..]);
    let csv_err = |e: csv::Error| import_err(format!("{label}: not a readable CSV file ({e})"));
    let headers: Vec<String> =
        rdr.headers().map_err(csv_err)?.iter().map(|h| h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase()).collect();
    let index: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h.as_str(), i)).collect();
    if !index.contains_key(col::TYPE) {
        return Err(import_err(format!(
            "{label}: no \"Type\" column; a Vault multichannel loader CSV has one row per Presentation, Slide and Shared resource"
        )));
    }
    let mut plan = Plan { warn_unlisted: true, ..Default::default() };
    let mut used_values: BTreeSet<usize> = BTreeSet::new();
    let mut shared_by_ext: HashMap<String, String> = HashMap::new();
    let mut slide_rows: Vec<(usize, PlanSlide, Option<String>, Option<String>)> = Vec::new();
    let mut pres_alias: HashMap<String, usize> = HashMap::new();
    let mut first_visible: Option<usize> = None;
    let mut products: Vec<String> = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(csv_err)?;
        let row = n + 2;
        let origin = format!("{label} row {row}");
        for (i, v) in rec.iter().enumerate() {
            if !v.trim().is_empty() {
                used_values.insert(i);
            }
        }
        let get = |name: &str| index.get(name).and_then(|i| rec.get(*i)).map(str::trim).filter(|s| !s.is_empty());
        let kind = get(col::TYPE).unwrap_or_default().to_ascii_lowercase();
        let kind = match kind.as_str() {
            "" if get(col::SLIDE_IS_SHARED).is_some_and(truthy) => "shared",
            "" if get(col::SLIDE_FILENAME).is_some() => "slide",
            "" if get(col::PRES_ID).is_some() => "presentation",
            "presentation" | "binder" => "presentation",
            "slide" => "slide",
            "shared" | "shared resource" | "shared_resource" => "shared",
            _ => {
                plan.warnings.push(format!("{origin}: Type {kind:?} is not Presentation, Slide or Shared; row ignored"));
                continue;
            }
        };
        match kind {
            "presentation" => {
                let Some(key) = get(col::PRES_ID).or(get(col::EXTERNAL_ID)).or(get(col::NAME)) else {
                    plan.warnings.push(format!("{origin}: presentation row without an id; ignored"));
                    continue;
                };
                let hidden = get(col::PRES_HIDDEN).is_some_and(truthy);
                let title = get(col::PRES_TITLE).or(get(col::NAME)).unwrap_or(key).to_string();
                let idx = plan.presentations.len();
                for alias in [get(col::PRES_ID), get(col::EXTERNAL_ID), get(col::NAME)].into_iter().flatten() {
                    pres_alias.entry(alias.to_ascii_lowercase()).or_insert(idx);
                }
                plan.presentations.push(PlanPresentation { key: key.to_string(), title, hidden, slides: Vec::new() });
                plan.mapped.push(Mapped { source: origin.clone(), target: format!("presentation {}", super::kebab_id(key)) });
                if !hidden && first_visible.is_none() {
                    first_visible = Some(idx);
                    let m = &mut plan.meta;
                    m.id = bundle_id_from(key);
                    m.title = get(col::PRES_TITLE).or(get(col::NAME)).map(str::to_string);
                    m.product = get(col::PRES_PRODUCT).map(str::to_string);
                    m.approval_code = get(col::PRES_APPROVAL).map(str::to_string);
                    if let Some(lang) = get(col::PRES_LANGUAGE) {
                        m.locale = normalize_locale(lang);
                        if m.locale.is_none() {
                            plan.unmapped.push(Unmapped {
                                source: format!("{origin}: pres.language__v={lang}"),
                                reason: "not a BCP 47 language tag; pass --locale".into(),
                            });
                        }
                    }
                    for (column, end) in [(col::PRES_START, false), (col::PRES_END, true)] {
                        if let Some(v) = get(column) {
                            let d = parse_source_date(v, end);
                            if d.is_none() {
                                plan.warnings.push(format!("{origin}: {column} {v:?} is not a date (YYYY-MM-DD); ignored"));
                            }
                            if end { m.valid_until = d } else { m.valid_from = d }
                        }
                    }
                }
            }
            "shared" => {
                let file = get(col::SLIDE_FILENAME).map(zip_key).or_else(|| get(col::NAME).map(zip_key));
                let Some(file) = file else {
                    plan.warnings.push(format!("{origin}: shared resource row without slide.filename; ignored"));
                    continue;
                };
                if !known.contains_key(&file) {
                    return Err(import_err(format!(
                        "{origin}: shared resource {file} is not among the inputs; add the zip or remove the row"
                    )));
                }
                for alias in [get(col::EXTERNAL_ID), get(col::NAME)].into_iter().flatten() {
                    shared_by_ext.insert(alias.to_ascii_lowercase(), file.clone());
                }
                plan.shared_zips.insert(file);
            }
            _ => {
                let file = get(col::SLIDE_FILENAME).or(get(col::NAME)).or(get(col::EXTERNAL_ID)).map(zip_key);
                let Some(file) = file else {
                    plan.warnings.push(format!("{origin}: slide row without slide.filename or name__v; ignored"));
                    continue;
                };
                if !known.contains_key(&file) {
                    if get(col::FIELDS_ONLY).is_some_and(truthy) {
                        plan.unmapped.push(Unmapped { source: origin, reason: "fields-only row for a slide not among the inputs".into() });
                        continue;
                    }
                    return Err(import_err(format!("{origin}: slide {file} is not among the inputs; add the zip or remove the row")));
                }
                let (disabled, unknown) = get(col::SLIDE_DISABLE).map(map_disable_actions).unwrap_or_default();
                for u in unknown {
                    plan.unmapped.push(Unmapped {
                        source: format!("{origin}: slide.crm_disable_actions__v {u}"),
                        reason: "no edetail gesture matches this action".into(),
                    });
                }
                if let Some(p) = get(col::SLIDE_PRODUCT) {
                    products.push(p.to_string());
                }
                let slide = PlanSlide {
                    zip: file,
                    key_message: get(col::NAME).map(str::to_string),
                    title: get(col::SLIDE_TITLE).map(str::to_string),
                    disabled,
                    sub_presentation: get(col::SLIDE_SUB_PRES).map(str::to_string),
                    origin,
                };
                let link = get(col::PRES_LINK).map(str::to_ascii_lowercase);
                let shared_rel = get(col::SLIDE_SHARED_REL).map(str::to_ascii_lowercase);
                let current = plan.presentations.len().checked_sub(1);
                slide_rows.push((current.unwrap_or(usize::MAX), slide, link, shared_rel));
            }
        }
    }

    // Attach slides to presentations: by Presentation Link, else the presentation row above.
    let mut loose = Vec::new();
    for (above, mut slide, link, shared_rel) in slide_rows {
        if let Some(rel) = shared_rel
            && !shared_by_ext.contains_key(&rel)
        {
            plan.warnings.push(format!(
                "{}: related shared resource {rel:?} has no Shared row; it is found by its references instead",
                slide.origin
            ));
        }
        if let Some(sub) = slide.sub_presentation.take() {
            match pres_alias.get(&sub.to_ascii_lowercase()) {
                Some(&i) => slide.sub_presentation = Some(plan.presentations[i].key.clone()),
                None => plan.warnings.push(format!("{}: related sub-presentation {sub:?} has no Presentation row; ignored", slide.origin)),
            }
        }
        let target = match link {
            Some(l) => match pres_alias.get(&l) {
                Some(&i) => Some(i),
                None => {
                    plan.warnings.push(format!(
                        "{}: Presentation Link {l:?} has no Presentation row; using the presentation above it",
                        slide.origin
                    ));
                    (above != usize::MAX).then_some(above)
                }
            },
            None => (above != usize::MAX).then_some(above),
        };
        match target {
            Some(i) => plan.presentations[i].slides.push(slide),
            None => loose.push(slide),
        }
    }
    if !loose.is_empty() {
        plan.presentations.push(PlanPresentation { key: "main".into(), title: String::new(), hidden: false, slides: loose });
    }
    if plan.meta.product.is_none() {
        plan.meta.product = products.into_iter().next();
    }
    let slides: usize = plan.presentations.iter().map(|p| p.slides.len()).sum();
    plan.mapped.push(Mapped {
        source: label.clone(),
        target: format!("order and metadata of {slides} slides in {} presentations", plan.presentations.len()),
    });
    for (i, h) in headers.iter().enumerate() {
        if CSV_MAPPED.contains(&h.as_str()) || !used_values.contains(&i) {
            continue;
        }
        let reason = if CSV_VAULT_ONLY.contains(&h.as_str()) {
            "Vault field without a bundle equivalent; ignored"
        } else {
            "column not used by the importer; ignored"
        };
        plan.unmapped.push(Unmapped { source: format!("{label} column {h}"), reason: reason.into() });
    }
    Ok(plan)
}

// ------------------------------------------------------------------------------------------
// Veeva FTP control files

#[derive(Debug, Default)]
struct Ctl {
    label: String,
    zip: Option<String>,
    name: Option<String>,
    description: Option<String>,
    km_description: Option<String>,
    disable: Option<String>,
    product: Option<String>,
    language: Option<String>,
    order: Option<f64>,
    shared: bool,
}

fn parse_ctl(path: &Path, plan: &mut Plan) -> Result<Ctl> {
    let label = file_label(path);
    let text = String::from_utf8_lossy(&read_bounded(path, 1024 * 1024)?).into_owned();
    let mut ctl = Ctl { label: label.clone(), ..Default::default() };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            // The line is not echoed: it might hold a credential.
            plan.warnings.push(format!("{label} line {}: not KEY=VALUE; ignored", n + 1));
            continue;
        };
        let key = key.trim();
        let lower = key.to_ascii_lowercase();
        let value = value.trim().to_string();
        if CTL_CREDENTIALS.contains(&lower.as_str()) {
            plan.unmapped
                .push(Unmapped { source: format!("{label}: {key}"), reason: "FTP credential dropped; its value is never copied".into() });
            continue;
        }
        let value = Some(value).filter(|v| !v.is_empty());
        match lower.as_str() {
            "filename" => ctl.zip = value.map(|v| zip_key(&v)),
            "media_file_name_vod__c" | "slides_zip_file_name" => {
                if ctl.zip.is_none() {
                    ctl.zip = value.map(|v| zip_key(&v));
                }
            }
            "name" => ctl.name = value,
            "description_vod__c" => ctl.description = value,
            "key_message_description_vod__c" => ctl.km_description = value,
            "disable_actions_vod__c" => ctl.disable = value,
            "product_vod__c" => ctl.product = value,
            "language_vod__c" => ctl.language = value,
            "display_order_vod__c" => ctl.order = value.and_then(|v| v.parse().ok()),
            "is_shared_resource_vod__c" => ctl.shared = value.is_some_and(|v| truthy(&v)),
            _ => plan.unmapped.push(Unmapped {
                source: format!("{label}: {key}"),
                reason: "control file key without a bundle equivalent; ignored".into(),
            }),
        }
    }
    Ok(ctl)
}

fn plan_from_ctl(paths: &[PathBuf], known: &BTreeMap<String, usize>) -> Result<Plan> {
    let mut plan = Plan { warn_unlisted: true, ..Default::default() };
    let mut ctls = Vec::new();
    for p in paths {
        let mut ctl = parse_ctl(p, &mut plan)?;
        let zip = match ctl.zip.take() {
            Some(z) => z,
            None => {
                let stem = ctl.label.rsplit_once('.').map(|(s, _)| s).unwrap_or(&ctl.label);
                let z = zip_key(stem);
                plan.warnings.push(format!("{}: no FILENAME; assuming {z}", ctl.label));
                z
            }
        };
        if !known.contains_key(&zip) {
            return Err(import_err(format!("{}: FILENAME {zip} is not among the inputs; add the zip or leave out this .ctl", ctl.label)));
        }
        ctl.zip = Some(zip);
        ctls.push(ctl);
    }
    // Display_Order_vod__c first (stable), then the order the files were given.
    ctls.sort_by(|a, b| match (a.order, b.order) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    let mut slides = Vec::new();
    let mut products = BTreeSet::new();
    for ctl in ctls {
        let zip = ctl.zip.unwrap_or_default();
        if ctl.shared {
            plan.shared_zips.insert(zip);
            continue;
        }
        if let Some(p) = &ctl.product {
            products.insert(p.clone());
            plan.meta.product.get_or_insert_with(|| p.clone());
        }
        if let Some(l) = &ctl.language {
            match normalize_locale(l) {
                Some(loc) => {
                    plan.meta.locale.get_or_insert(loc);
                }
                None => plan.unmapped.push(Unmapped {
                    source: format!("{}: Language_vod__c", ctl.label),
                    reason: "not a BCP 47 language tag; pass --locale".into(),
                }),
            }
        }
        let (disabled, unknown) = ctl.disable.as_deref().map(map_disable_actions).unwrap_or_default();
        for u in unknown {
            plan.unmapped.push(Unmapped {
                source: format!("{}: Disable_Actions_vod__c {u}", ctl.label),
                reason: "no edetail gesture matches this action".into(),
            });
        }
        plan.mapped.push(Mapped { source: ctl.label.clone(), target: format!("metadata of {zip}") });
        slides.push(PlanSlide {
            zip,
            key_message: ctl.name,
            title: ctl.description.or(ctl.km_description),
            disabled,
            sub_presentation: None,
            origin: ctl.label,
        });
    }
    if products.len() > 1 {
        let list: Vec<String> = products.into_iter().collect();
        plan.warnings.push(format!("the .ctl files name several products ({}); using the first", list.join(", ")));
    }
    if !slides.is_empty() {
        plan.presentations.push(PlanPresentation { key: "main".into(), title: String::new(), hidden: false, slides });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disable_actions_map_to_gestures() {
        let (g, unknown) = map_disable_actions("Swipe_vod;Pinch_To_Exit_vod, Zoom ; Rotation Lock;Navigation_Bar_vod;Share_vod");
        assert_eq!(
            g,
            vec![Gesture::SwipeNext, Gesture::SwipePrevious, Gesture::PinchZoom, Gesture::PinchExit, Gesture::Rotate, Gesture::Overview]
        );
        assert_eq!(unknown, vec!["Share_vod"]);
    }

    #[test]
    fn goto_targets() {
        let js = "com.veeva.clm.gotoSlide('CZ_Safety_01.zip', ''); gotoSlide( \"x.zip\" ); gotoSlide(name); \
                  com.veeva.clm.gotoSlide('Y.zip, MAIN_PRES'); location = 'veeva:gotoSlide(Z.zip,PRES)'; CLMPlayer.gotoSlide('S')";
        assert_eq!(goto_slide_targets(js), vec!["CZ_Safety_01.zip", "x.zip", "Y.zip", "Z.zip"]);
    }
}
