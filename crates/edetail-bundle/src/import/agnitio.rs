//! Agnitio / IQVIA OCE importer: a presentation folder (or a zip of one) described by
//! `presentation.json` becomes one bundle; storyboard structures become presentations.
//!
//! Files keep their paths relative to the presentation root, so slides' relative references
//! keep working unchanged. See `docs/importers.md` for the mapping.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde_json::{Map, Value};

use super::{
    Extractor, IdAllocator, ImportMeta, ImportReport, Mapped, SourceMeta, SourceTree, Unmapped, bundle_id_from, finish_presentations,
    html_title, import_err, is_scannable, kebab_id, manifest_header, normalize_locale, parse_source_date, read_folder, relative_refs,
    write_output,
};
use crate::error::{Error, Result};
use crate::manifest::{Bridge, Presentation, Slide};
use crate::path::BundlePath;
use crate::writer::BundleFile;

/// How to import Agnitio content.
#[derive(Debug, Clone, Default)]
pub struct AgnitioOptions {
    /// Bundle metadata from the command line; overrides what `presentation.json` says.
    pub meta: ImportMeta,
}

/// Name of the Agnitio presentation descriptor at the presentation root.
pub const PRESENTATION_JSON: &str = "presentation.json";

/// Top-level folders that hold assets shared by all slides, when present.
const SHARED_FOLDERS: &[&str] = &["shared", "modules", "_vendor", "common"];

/// Deepest nesting of structures followed.
const MAX_NESTING: usize = 16;

/// Top-level `presentation.json` keys the importer reads.
const KNOWN_KEYS: &[&str] = &[
    "name",
    "title",
    "identifier",
    "id",
    "version",
    "slides",
    "structures",
    "chapters",
    "storyboard",
    "storyboards",
    "modules",
    "pathToSlides",
    "product",
    "locale",
    "language",
    "approvalCode",
    "approval_code",
    "validFrom",
    "valid_from",
    "validUntil",
    "valid_until",
];

/// A slide as `presentation.json` declares it.
#[derive(Debug)]
struct SourceSlide {
    id: String,
    def: Map<String, Value>,
}

/// A structure (collection, slideshow, chapter) or an Accelerator storyboard: an ordered list
/// of slide or structure ids.
#[derive(Debug)]
struct Structure {
    id: String,
    name: Option<String>,
    content: Vec<String>,
}

/// Name of the framework page that runs every slide of a single-page Agnitio presentation.
pub const FRAMEWORK_INDEX: &str = "index.html";

/// The `route` that makes the framework show `slide` reached through `root` (a storyboard or
/// structure; `None` for a slide shown on its own): `?path=<root>/<slide>`, the framework's
/// own path syntax (`storyboard/chapter/slide`, of which the chapter may be left out).
pub fn agnitio_route(root: Option<&str>, slide: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    match root {
        Some(r) if r != slide => format!("?path={}/{}", enc(r), enc(slide)),
        _ => format!("?path={}", enc(slide)),
    }
}

/// Imports an Agnitio / OCE presentation (folder or zip) into one unsigned bundle written
/// atomically to `out`.
pub fn import_agnitio(input: &Path, opts: &AgnitioOptions, out: &Path, progress: &mut dyn FnMut(u64)) -> Result<ImportReport> {
    let mut extractor = None;
    let meta = std::fs::metadata(input).map_err(Error::io(input))?;
    let tree = if meta.is_dir() {
        read_folder(input)?
    } else if input.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
        extractor.insert(Extractor::new()?).read_zip(input)?
    } else {
        return Err(import_err(format!("{}: not a presentation folder or a .zip of one", input.display())));
    };
    let label = tree.label.clone();
    let tree = if tree.find(PRESENTATION_JSON).is_some() {
        tree
    } else {
        match tree.single_top_folder() {
            Some(top) if tree.find(&format!("{top}/{PRESENTATION_JSON}")).is_some() => tree.strip_folder(&top),
            _ => {
                return Err(import_err(format!(
                    "{label}: no {PRESENTATION_JSON} at the presentation root (or inside a single top folder); is this an \
                     Agnitio / OCE presentation?"
                )));
            }
        }
    };
    let json_path = BundlePath::parse(PRESENTATION_JSON).map_err(|e| import_err(e.to_string()))?;
    let text = tree
        .read_text(&json_path)?
        .ok_or_else(|| import_err(format!("{label}: {PRESENTATION_JSON} is too large to be a presentation descriptor")))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| import_err(format!("{label}: {PRESENTATION_JSON} is not valid JSON ({e})")))?;
    let Value::Object(root) = doc else {
        return Err(import_err(format!("{label}: {PRESENTATION_JSON} must be a JSON object")));
    };

    let mut mapped = Vec::new();
    let mut unmapped = Vec::new();
    let mut warnings = Vec::new();
    let src_meta = source_meta(&root, &mut unmapped, &mut warnings);
    let mut manifest = manifest_header("Agnitio", &opts.meta, &src_meta, &mut warnings)?;
    for key in root.keys().filter(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        unmapped.push(Unmapped {
            source: format!("{PRESENTATION_JSON}: {key}"),
            reason: "no bundle equivalent; the file is carried unchanged for the slides' own use".into(),
        });
    }

    let slides_src = parse_slides(&root)?;
    let mut structures = parse_storyboards(&root, &mut warnings)?;
    let storyboard_count = structures.len();
    for s in parse_structures(&root, &mut warnings)? {
        if structures.iter().any(|b| b.id == s.id) {
            warnings.push(format!("{PRESENTATION_JSON}: {:?} is both a storyboard and a structure; the storyboard is used", s.id));
            continue;
        }
        structures.push(s);
    }
    let storyboard = parse_storyboard(&root)?;
    let slides_dir = slides_path(&tree, &root)?;
    let framework = tree.find(FRAMEWORK_INDEX).cloned();
    let mut referenced: BTreeSet<BundlePath> = BTreeSet::new();
    referenced.insert(json_path.clone());

    if let Some(index) = &framework {
        referenced.insert(index.clone());
        mapped.push(Mapped {
            source: index.to_string(),
            target: "framework page: every slide is index.html + route ?path=<storyboard>/<slide>".into(),
        });
    }
    let slide_ids: HashMap<&str, usize> = slides_src.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    let structure_ids: HashMap<&str, usize> = structures.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();

    // Decks: storyboard structures in order (visible), then structures the storyboard does not
    // reach (hidden), then slides no structure lists (hidden).
    struct Deck {
        key: String,
        /// First segment of the framework path (`None`: the slide is shown on its own).
        route_root: Option<String>,
        title: String,
        hidden: bool,
        slides: Vec<usize>,
        origin: String,
    }
    let mut decks: Vec<Deck> = Vec::new();
    let mut consumed: BTreeSet<usize> = BTreeSet::new();
    let flatten = |start: usize, consumed: &mut BTreeSet<usize>, warnings: &mut Vec<String>| {
        let mut out = Vec::new();
        flatten_structure(&structures, &structure_ids, &slide_ids, start, 0, consumed, &mut out, warnings);
        out
    };
    let visible_roots: Vec<String> = match &storyboard {
        Some(list) if !list.is_empty() => list.clone(),
        _ if storyboard_count > 0 => structures[..storyboard_count].iter().map(|s| s.id.clone()).collect(),
        _ => {
            // No storyboard: every structure that no other structure contains.
            let nested: BTreeSet<&str> = structures.iter().flat_map(|s| s.content.iter().map(String::as_str)).collect();
            structures.iter().filter(|s| !nested.contains(s.id.as_str())).map(|s| s.id.clone()).collect()
        }
    };
    for id in &visible_roots {
        if let Some(&si) = structure_ids.get(id.as_str()) {
            let slides = flatten(si, &mut consumed, &mut warnings);
            let s = &structures[si];
            let origin = format!("{PRESENTATION_JSON} structure {id}");
            let title = s.name.clone().unwrap_or_else(|| id.clone());
            decks.push(Deck { key: id.clone(), route_root: Some(id.clone()), title, hidden: false, slides, origin });
        } else if let Some(&i) = slide_ids.get(id.as_str()) {
            let title = slide_name(&slides_src[i]).unwrap_or_else(|| id.clone());
            let origin = format!("{PRESENTATION_JSON} storyboard slide {id}");
            decks.push(Deck { key: id.clone(), route_root: None, title, hidden: false, slides: vec![i], origin });
        } else {
            return Err(import_err(format!("{PRESENTATION_JSON}: the storyboard lists {id:?}, which is neither a structure nor a slide")));
        }
    }
    for (si, s) in structures.iter().enumerate() {
        if consumed.contains(&si) {
            continue;
        }
        let slides = flatten(si, &mut consumed, &mut warnings);
        let origin = format!("{PRESENTATION_JSON} structure {} (not in the storyboard)", s.id);
        let title = s.name.clone().unwrap_or_else(|| s.id.clone());
        decks.push(Deck { key: s.id.clone(), route_root: Some(s.id.clone()), title, hidden: true, slides, origin });
    }
    if decks.is_empty() {
        // Neither storyboard nor structures: all slides, in declaration order.
        let title = manifest.title.clone();
        let slides = (0..slides_src.len()).collect();
        let origin = format!("{PRESENTATION_JSON} slides");
        decks.push(Deck { key: "main".into(), route_root: None, title, hidden: false, slides, origin });
        warnings.push(format!("{PRESENTATION_JSON} has no storyboard or structures; all slides form one presentation"));
    }
    let listed: BTreeSet<usize> = decks.iter().flat_map(|d| d.slides.iter().copied()).collect();
    let unlisted: Vec<usize> = (0..slides_src.len()).filter(|i| !listed.contains(i)).collect();
    if !unlisted.is_empty() {
        let names: Vec<&str> = unlisted.iter().map(|&i| slides_src[i].id.as_str()).collect();
        warnings.push(format!("slides in no structure ({}) were put in the hidden presentation \"unlisted\"", names.join(", ")));
        let origin = format!("{PRESENTATION_JSON} slides in no structure");
        let title = "Unlisted slides".into();
        decks.push(Deck { key: "unlisted".into(), route_root: None, title, hidden: true, slides: unlisted, origin });
    }

    // Slides: one per (deck, slide); a slide listed again gets a derived id.
    let mut pres_ids = IdAllocator::default();
    let mut slide_id_alloc = IdAllocator::default();
    let mut first_id: HashMap<usize, String> = HashMap::new();
    let mut presentations = Vec::new();
    let mut slides = Vec::new();
    for deck in &decks {
        let (pid, _) = pres_ids.allocate(&deck.key, "presentation");
        mapped.push(Mapped {
            source: deck.origin.clone(),
            target: format!("{}presentation {pid}", if deck.hidden { "hidden " } else { "" }),
        });
        let mut ids = Vec::new();
        for &i in &deck.slides {
            let src = &slides_src[i];
            let id = match first_id.get(&i) {
                None => {
                    let (id, changed) = slide_id_alloc.allocate(&src.id, "slide");
                    if changed {
                        warnings.push(format!("slide {:?} got id {id:?} to keep ids unique", src.id));
                    }
                    first_id.insert(i, id.clone());
                    id
                }
                Some(first) => {
                    let (id, _) = slide_id_alloc.allocate(&format!("{first}-{pid}"), "slide");
                    warnings.push(format!(
                        "slide {:?} is listed in more than one structure; its copy in presentation {pid:?} has id {id:?}",
                        src.id
                    ));
                    id
                }
            };
            let page = slide_page(&tree, src, &slides_dir)?;
            let thumbnail = slide_thumbnail(&tree, src, &page, &slides_dir);
            let title = match slide_name(src) {
                Some(n) => n,
                None => tree.read_text(&page)?.as_deref().and_then(html_title).unwrap_or_else(|| src.id.clone()),
            };
            let topics = slide_topics(src);
            referenced.insert(page.clone());
            if let Some(t) = &thumbnail {
                referenced.insert(t.clone());
            }
            referenced.extend(listed_files(&tree, &src.def));
            let (entry, route) = match &framework {
                Some(index) => (index.clone(), Some(agnitio_route(deck.route_root.as_deref(), &src.id))),
                None => (page.clone(), None),
            };
            let target = match &route {
                Some(r) => format!("slide {id} ({entry}{r}, template {page})"),
                None => format!("slide {id} ({entry})"),
            };
            mapped.push(Mapped { source: format!("{PRESENTATION_JSON} slide {}", src.id), target });
            ids.push(id.clone());
            slides.push(Slide {
                id,
                title,
                entry,
                route,
                thumbnail,
                key_message: Some(src.id.clone()),
                topics,
                hidden: false,
                steps: Vec::new(),
                mandatory: false,
                disabled_gestures: Vec::new(),
                sub_presentation: None,
                bridge: Bridge::Agnitio,
                extra: Default::default(),
            });
        }
        presentations.push(Presentation {
            id: pid,
            title: deck.title.clone(),
            hidden: deck.hidden,
            slides: ids,
            extra: Default::default(),
        });
    }
    manifest.presentations = finish_presentations("Agnitio", presentations, &mut slides, &mut warnings)?;
    manifest.slides = slides;
    manifest.shared_resources = SHARED_FOLDERS
        .iter()
        .filter(|f| tree.files.keys().any(|p| p.as_str().starts_with(&format!("{f}/"))))
        .map(|f| format!("{f}/"))
        .collect();
    for f in &manifest.shared_resources {
        mapped.push(Mapped { source: f.clone(), target: format!("shared resources {f}") });
    }
    if let Some(Value::Object(modules)) = root.get("modules") {
        for (mid, def) in modules {
            let files = match def {
                Value::Object(d) => listed_files(&tree, d),
                _ => Vec::new(),
            };
            let target = format!("module carried as files ({} listed), shown by the slides that embed it", files.len());
            mapped.push(Mapped { source: format!("{PRESENTATION_JSON} module {mid}"), target });
            referenced.extend(files);
        }
    }

    // Every file is carried; those nothing references are listed for the author.
    for path in tree.files.keys().filter(|p| is_scannable(p)) {
        let Some(text) = tree.read_text(path)? else {
            continue;
        };
        for r in relative_refs(&text) {
            let hits = [path.join_relative(&r), BundlePath::parse(r.trim_start_matches("./")).ok()];
            for hit in hits.into_iter().flatten() {
                if tree.files.contains_key(&hit) {
                    referenced.insert(hit);
                }
            }
        }
    }
    let mut files = Vec::new();
    for (p, f) in &tree.files {
        if !referenced.contains(p) {
            unmapped.push(Unmapped { source: p.to_string(), reason: "carried, not referenced".into() });
        }
        files.push((BundleFile { path: p.clone(), source: f.source.clone() }, label.clone()));
    }

    let compat = super::compat_of(&[("", &tree)])?;
    let written = write_output(out, manifest, files, progress)?;
    drop(extractor);
    Ok(ImportReport::new("agnitio", written, mapped, unmapped, warnings, compat))
}

fn str_field(obj: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match obj.get(*k)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Bundle metadata from `presentation.json`.
fn source_meta(root: &Map<String, Value>, unmapped: &mut Vec<Unmapped>, warnings: &mut Vec<String>) -> SourceMeta {
    let mut m = SourceMeta {
        id: str_field(root, &["identifier", "id"]).or_else(|| str_field(root, &["name"])).and_then(|s| bundle_id_from(&s)),
        title: str_field(root, &["name", "title"]),
        product: str_field(root, &["product"]),
        approval_code: str_field(root, &["approvalCode", "approval_code"]),
        version_label: str_field(root, &["version"]),
        ..Default::default()
    };
    if let Some(l) = str_field(root, &["locale", "language"]) {
        m.locale = normalize_locale(&l);
        if m.locale.is_none() {
            unmapped.push(Unmapped {
                source: format!("{PRESENTATION_JSON}: locale {l:?}"),
                reason: "not a BCP 47 language tag; pass --locale".into(),
            });
        }
    }
    for (keys, end) in [(&["validFrom", "valid_from"], false), (&["validUntil", "valid_until"], true)] {
        if let Some(v) = str_field(root, keys) {
            let d = parse_source_date(&v, end);
            if d.is_none() {
                warnings.push(format!("{PRESENTATION_JSON}: {} {v:?} is not a date; ignored", keys[0]));
            }
            if end { m.valid_until = d } else { m.valid_from = d }
        }
    }
    m
}

/// `slides`: an object `{ "<id>": { ... } }` (declaration order kept), or an array of ids or
/// of objects with an `id`.
fn parse_slides(root: &Map<String, Value>) -> Result<Vec<SourceSlide>> {
    let bad =
        |detail: &str| import_err(format!("{PRESENTATION_JSON}: {detail}; expected \"slides\": {{\"<id>\": {{\"name\": \"...\"}}, ...}}"));
    let mut out = Vec::new();
    match root.get("slides") {
        Some(Value::Object(m)) => {
            for (id, def) in m {
                let def = match def {
                    Value::Object(d) => d.clone(),
                    Value::String(name) => Map::from_iter([("name".to_string(), Value::String(name.clone()))]),
                    _ => Map::new(),
                };
                out.push(SourceSlide { id: id.clone(), def });
            }
        }
        Some(Value::Array(a)) => {
            for v in a {
                match v {
                    Value::String(id) => out.push(SourceSlide { id: id.clone(), def: Map::new() }),
                    Value::Object(d) => {
                        let id = str_field(d, &["id"]).ok_or_else(|| bad("a slide in the \"slides\" array has no \"id\""))?;
                        out.push(SourceSlide { id, def: d.clone() });
                    }
                    _ => return Err(bad("\"slides\" holds something that is not a slide")),
                }
            }
        }
        _ => return Err(bad("no \"slides\"")),
    }
    if out.is_empty() {
        return Err(bad("\"slides\" is empty"));
    }
    Ok(out)
}

/// `structures` (or `chapters`): `{ "<id>": { "name", "content": [ids] } }`.
fn parse_structures(root: &Map<String, Value>, warnings: &mut Vec<String>) -> Result<Vec<Structure>> {
    let Some(v) = root.get("structures").or_else(|| root.get("chapters")) else {
        return Ok(Vec::new());
    };
    let Value::Object(m) = v else {
        return Err(import_err(format!(
            "{PRESENTATION_JSON}: \"structures\" must be an object {{\"<id>\": {{\"name\": \"...\", \"content\": [...]}}}}"
        )));
    };
    let mut out = Vec::new();
    for (id, def) in m {
        let Value::Object(d) = def else {
            warnings.push(format!("{PRESENTATION_JSON}: structure {id:?} is not an object; ignored"));
            continue;
        };
        let content = match d.get("content").or_else(|| d.get("slides")) {
            Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            _ => {
                warnings.push(format!("{PRESENTATION_JSON}: structure {id:?} has no \"content\" list"));
                Vec::new()
            }
        };
        out.push(Structure { id: id.clone(), name: str_field(d, &["name", "title"]), content });
    }
    Ok(out)
}

/// `storyboard` (or `storyboards` when it is not a map): a storyboard, structure or slide id,
/// or a list of them.
fn parse_storyboard(root: &Map<String, Value>) -> Result<Option<Vec<String>>> {
    let Some(v) = root.get("storyboard").or_else(|| root.get("storyboards").filter(|v| !v.is_object())) else {
        return Ok(None);
    };
    match v {
        Value::String(s) => Ok(Some(vec![s.clone()])),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| import_err(format!("{PRESENTATION_JSON}: \"storyboard\" must list structure ids as strings")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        _ => Err(import_err(format!("{PRESENTATION_JSON}: \"storyboard\" must be a list of structure ids"))),
    }
}

/// Accelerator `storyboards`: `{ "<id>": { "name", "content": [structure or slide ids] } }`.
fn parse_storyboards(root: &Map<String, Value>, warnings: &mut Vec<String>) -> Result<Vec<Structure>> {
    match root.get("storyboards") {
        Some(Value::Object(_)) => {
            let only = Map::from_iter([("structures".to_string(), root["storyboards"].clone())]);
            parse_structures(&only, warnings)
        }
        _ => Ok(Vec::new()),
    }
}

/// Where slide folders are: `pathToSlides` of `presentation.json` (else of `config.json`, else
/// its `paths.slides`), `slides/<id>/` by default. `<id>` stands for the slide id.
fn slides_path(tree: &SourceTree, root: &Map<String, Value>) -> Result<String> {
    let mut found = str_field(root, &["pathToSlides"]);
    if found.is_none()
        && let Some(cfg) = tree.find("config.json").cloned()
        && let Some(text) = tree.read_text(&cfg)?
        && let Ok(Value::Object(c)) = serde_json::from_str::<Value>(&text)
    {
        found =
            str_field(&c, &["pathToSlides"]).or_else(|| c.get("paths").and_then(Value::as_object).and_then(|p| str_field(p, &["slides"])));
    }
    let Some(p) = found else {
        return Ok("slides/<id>/".to_string());
    };
    let trimmed = p.trim_start_matches("./");
    let probe = trimmed.replace("<id>", "x");
    let probe = probe.trim_end_matches('/');
    if !probe.is_empty() && BundlePath::parse(probe).is_err() {
        return Err(import_err(format!(
            "{PRESENTATION_JSON}: pathToSlides {p:?} is not a folder inside the presentation (no \"..\", no absolute paths)"
        )));
    }
    let mut out = trimmed.to_string();
    if !out.is_empty() && !out.ends_with('/') {
        out.push('/');
    }
    if !out.contains("<id>") {
        out.push_str("<id>/");
    }
    Ok(out)
}

/// Files a slide or module lists in `files` (`templates`, `styles`, `scripts`, or a plain
/// list) that exist in the tree.
fn listed_files(tree: &SourceTree, def: &Map<String, Value>) -> Vec<BundlePath> {
    let mut names: Vec<&str> = Vec::new();
    match def.get("files") {
        Some(Value::Object(f)) => {
            for v in f.values() {
                match v {
                    Value::Array(a) => names.extend(a.iter().filter_map(Value::as_str)),
                    Value::String(s) => names.push(s),
                    _ => {}
                }
            }
        }
        Some(Value::Array(a)) => names.extend(a.iter().filter_map(Value::as_str)),
        _ => {}
    }
    names.into_iter().filter_map(|n| tree.find(n.trim_start_matches("./")).cloned()).collect()
}

/// Appends the slides of structure `si` in order, following nested structures.
#[allow(clippy::too_many_arguments)]
fn flatten_structure(
    structures: &[Structure],
    structure_ids: &HashMap<&str, usize>,
    slide_ids: &HashMap<&str, usize>,
    si: usize,
    depth: usize,
    consumed: &mut BTreeSet<usize>,
    out: &mut Vec<usize>,
    warnings: &mut Vec<String>,
) {
    let s = &structures[si];
    if depth > MAX_NESTING || !consumed.insert(si) {
        warnings.push(format!("{PRESENTATION_JSON}: structure {:?} is nested in itself or too deeply; not followed", s.id));
        return;
    }
    for item in &s.content {
        if let Some(&i) = slide_ids.get(item.as_str()) {
            out.push(i);
        } else if let Some(&child) = structure_ids.get(item.as_str()) {
            flatten_structure(structures, structure_ids, slide_ids, child, depth + 1, consumed, out, warnings);
        } else {
            warnings.push(format!("{PRESENTATION_JSON}: structure {:?} lists {item:?}, which is not a slide or structure", s.id));
        }
    }
}

fn slide_name(s: &SourceSlide) -> Option<String> {
    str_field(&s.def, &["name", "title"])
}

fn slide_topics(s: &SourceSlide) -> Vec<String> {
    let mut out: Vec<String> = ["topics", "tags"]
        .iter()
        .filter_map(|k| s.def.get(*k)?.as_array())
        .flatten()
        .filter_map(|v| v.as_str().map(kebab_id))
        .filter(|t| !t.is_empty())
        .collect();
    out.dedup();
    out
}

/// The slide's own HTML page (a whole page, or the fragment a framework loads): its
/// `files.templates[0]` (an `.html` with the same stem when it names another type, as the
/// Accelerator does), else `file`/`path`, else `template` inside the slide folder
/// (`pathToSlides`), else `<id>.html` or `index.html` there, else `<id>/<id>.html`.
fn slide_page(tree: &SourceTree, s: &SourceSlide, slides_dir: &str) -> Result<BundlePath> {
    let id = &s.id;
    let folder = slides_dir.replace("<id>", id);
    let folder = folder.trim_end_matches('/');
    let mut tried = Vec::new();
    let template = s.def.get("files").and_then(|f| f.get("templates")).and_then(|t| match t {
        Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_string),
        Value::String(t) => Some(t.clone()),
        _ => None,
    });
    if let Some(t) = template {
        let t = t.trim_start_matches("./").to_string();
        let html = match t.rsplit_once('.') {
            Some((stem, ext)) if !ext.eq_ignore_ascii_case("html") && !ext.contains('/') => format!("{stem}.html"),
            _ => t,
        };
        tried.push(html);
    } else if let Some(f) = str_field(&s.def, &["file", "path"]) {
        tried.push(f.trim_start_matches("./").to_string());
    } else {
        if let Some(t) = str_field(&s.def, &["template"]).filter(|t| t.ends_with(".html") || t.ends_with(".htm")) {
            tried.push(format!("{folder}/{t}"));
            tried.push(t);
        }
        tried.push(format!("{folder}/{id}.html"));
        tried.push(format!("{folder}/index.html"));
        tried.push(format!("{id}/{id}.html"));
    }
    tried.iter().find_map(|p| tree.find_ignore_case(p).cloned()).ok_or_else(|| {
        import_err(format!(
            "{PRESENTATION_JSON}: slide {id:?} has no HTML page (looked for {}); add the file or set the slide's \"file\"",
            tried.join(", ")
        ))
    })
}

/// The slide's thumbnail: its `thumbnail`/`thumb`/`thumbName`, else `<id>.png` or `thumb.png`
/// next to the entry page, else `thumbnails/<id>.png`.
fn slide_thumbnail(tree: &SourceTree, s: &SourceSlide, entry: &BundlePath, slides_dir: &str) -> Option<BundlePath> {
    let id = &s.id;
    let mut cands: Vec<Option<BundlePath>> = Vec::new();
    if let Some(t) = s.def.get("files").and_then(|f| f.get("thumbs").or_else(|| f.get("thumbnail"))).and_then(|t| match t {
        Value::Array(a) => a.first().and_then(Value::as_str),
        Value::String(t) => Some(t.as_str()),
        _ => None,
    }) {
        cands.push(BundlePath::parse(t.trim_start_matches("./")).ok());
    }
    if let Some(t) = str_field(&s.def, &["thumbnail", "thumb", "thumbName"]) {
        cands.push(entry.join_relative(&t));
        cands.push(BundlePath::parse(t.trim_start_matches("./")).ok());
    }
    let folder = slides_dir.replace("<id>", id);
    for ext in ["png", "jpg"] {
        cands.push(BundlePath::parse(&format!("{folder}{id}.{ext}")).ok());
    }
    for ext in ["png", "jpg", "jpeg"] {
        cands.push(entry.join_relative(&format!("{id}.{ext}")));
        cands.push(entry.join_relative(&format!("thumb.{ext}")));
        cands.push(BundlePath::parse(&format!("thumbnails/{id}.{ext}")).ok());
    }
    cands.into_iter().flatten().find_map(|p| tree.find_ignore_case(p.as_str()).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storyboard_shapes() {
        let root: Map<String, Value> = serde_json::from_str(r#"{"storyboard": "main"}"#).unwrap_or_default();
        assert_eq!(parse_storyboard(&root).ok().flatten(), Some(vec!["main".to_string()]));
        let root: Map<String, Value> = serde_json::from_str(r#"{"storyboards": ["a", "b"]}"#).unwrap_or_default();
        assert_eq!(parse_storyboard(&root).ok().flatten(), Some(vec!["a".to_string(), "b".to_string()]));
        let root: Map<String, Value> = serde_json::from_str(r#"{"storyboard": 3}"#).unwrap_or_default();
        assert!(parse_storyboard(&root).is_err());
    }
}
