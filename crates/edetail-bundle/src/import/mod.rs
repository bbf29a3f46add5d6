//! Importers: turn content made for Veeva CRM CLM, Agnitio or IQVIA OCE into one edetail bundle.
//!
//! Imported slides keep their own HTML and JavaScript; the manifest records which bridge each
//! slide expects so the device runtime can emulate the matching container. Every importer
//! returns an [`ImportReport`] saying what was mapped and what was not.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::limits::{DEFAULT_LIMITS, Limits};
use crate::manifest::{FORMAT_VERSION, Manifest, Presentation, Slide};
use crate::path::BundlePath;
use crate::writer::{BundleFile, FileSource, write_atomically, write_bundle};

pub mod agnitio;
pub mod compat;
pub mod oce;
pub mod veeva;

/// Bundle metadata given on the command line; each field overrides what the source says.
#[derive(Debug, Clone, Default)]
pub struct ImportMeta {
    pub id: Option<String>,
    pub version: Option<u64>,
    pub version_label: Option<String>,
    pub title: Option<String>,
    pub product: Option<String>,
    pub locale: Option<String>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub approval_code: Option<String>,
}

/// One thing of the source that became part of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapped {
    /// Where it came from, e.g. `CZ_EFFICACY.zip` or `slides/efficacy/efficacy.html`.
    pub source: String,
    /// What it became, e.g. `slide cz-efficacy` or `shared resources shared/`.
    pub target: String,
}

/// One thing of the source that was not carried over, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmapped {
    pub source: String,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// `veeva` or `agnitio`.
    pub format: String,
    /// The manifest as written to the output bundle.
    pub manifest: Manifest,
    pub mapped: Vec<Mapped>,
    pub unmapped: Vec<Unmapped>,
    pub warnings: Vec<String>,
    /// Vendor container calls found in the deck's scripts and pages, and whether edetail
    /// handles them.
    pub compat: compat::CompatReport,
    /// Adoption steps and mandatory slides as imported (defaults from topics and ISI names).
    pub adoption: Adoption,
}

impl ImportReport {
    /// The report of an import that wrote `manifest`; its [`Adoption`] is read from it.
    fn new(
        format: &str,
        manifest: Manifest,
        mapped: Vec<Mapped>,
        unmapped: Vec<Unmapped>,
        warnings: Vec<String>,
        compat: compat::CompatReport,
    ) -> Self {
        ImportReport { format: format.into(), adoption: Adoption::of(&manifest), manifest, mapped, unmapped, warnings, compat }
    }

    /// A human summary for the terminal.
    pub fn summary(&self) -> String {
        let m = &self.manifest;
        let mut s = format!(
            "Imported {} content as {} v{} ({} slides in {} presentations, {} files)\n",
            self.format,
            m.id,
            m.version,
            m.slides.len(),
            m.presentations.len(),
            m.files.len()
        );
        s.push_str("Mapped:\n");
        for x in &self.mapped {
            s.push_str(&format!("  {} -> {}\n", x.source, x.target));
        }
        if !self.unmapped.is_empty() {
            s.push_str("Not mapped:\n");
            for x in &self.unmapped {
                s.push_str(&format!("  {}: {}\n", x.source, x.reason));
            }
        }
        s.push_str("Adoption steps (from topics unless declared; set `steps` in edetail.json):\n");
        for (step, slides) in &self.adoption.steps {
            let list = if slides.is_empty() { "none".to_string() } else { slides.join(", ") };
            s.push_str(&format!("  {step}: {list}\n"));
        }
        if !self.adoption.mandatory.is_empty() {
            s.push_str(&format!("Mandatory in every call (fair balance): {}\n", self.adoption.mandatory.join(", ")));
        }
        for w in &self.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Shared machinery of the importers: reading sources without trusting them, metadata defaults,
// ids, reference scanning and writing the bundle.

/// Most bytes one import may inflate from its zip inputs, counted while reading (headers are
/// not trusted).
pub const MAX_IMPORT_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Largest metadata or text file read into memory (loader CSV, `.ctl`, `presentation.json`,
/// HTML/CSS/JS scanned for references). Larger text files are carried but not scanned.
pub const MAX_TEXT_BYTES: u64 = 16 * 1024 * 1024;

/// `valid_from` used when neither the command line nor the source gives one:
/// 2000-01-01T00:00:00Z. Fixed (not "now") so that importing the same input twice gives the
/// same bundle.
pub fn default_valid_from() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default()
}

/// Turns a source id or name into a stable, lowercase kebab-case id: `CZ_Efficacy_01` ->
/// `cz-efficacy-01`, `efficacyOverview` -> `efficacy-overview`. Characters other than ASCII
/// letters and digits separate words. Returns an empty string when nothing usable is left.
pub fn kebab_id(raw: &str) -> String {
    let mut out = String::new();
    let mut prev: Option<char> = None;
    let mut dash = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit()) {
                dash = true;
            }
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
        prev = Some(c);
    }
    out.truncate(120);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Whether `s` is acceptable as a manifest id as it is (the validator's rule).
fn is_plain_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// A bundle id from a source id: kept when already valid (`com.acme.cz_launch`), kebab-cased
/// otherwise.
fn bundle_id_from(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if is_plain_id(raw) {
        return Some(raw.to_string());
    }
    Some(kebab_id(raw)).filter(|s| !s.is_empty())
}

/// Hands out ids unique within one kind (slides, presentations), suffixing `-2`, `-3`, ...
#[derive(Debug, Default)]
struct IdAllocator {
    used: std::collections::HashSet<String>,
}

impl IdAllocator {
    /// A unique id for `raw`; the bool says whether it had to be changed to be unique.
    fn allocate(&mut self, raw: &str, fallback: &str) -> (String, bool) {
        let mut base = kebab_id(raw);
        if base.is_empty() {
            base = fallback.to_string();
        }
        if self.used.insert(base.clone()) {
            return (base, false);
        }
        let mut n = 2;
        loop {
            let candidate = format!("{base}-{n}");
            if self.used.insert(candidate.clone()) {
                return (candidate, true);
            }
            n += 1;
        }
    }
}

/// Escapes control characters so a hostile entry name cannot rewrite the author's terminal.
fn display_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).chars().flat_map(char::escape_default).collect()
}

/// The file name of a path, for messages.
fn file_label(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

fn import_err(msg: impl Into<String>) -> Error {
    Error::Import(msg.into())
}

fn entry_err(zip: &str, entry: &str, what: impl std::fmt::Display) -> Error {
    Error::Import(format!("{zip}: entry \"{entry}\" {what}"))
}

/// OS litter and hidden files that are never carried into a bundle.
fn is_junk(path: &BundlePath) -> bool {
    path.as_str().split('/').any(|seg| seg == "__MACOSX" || seg.starts_with('.')) || matches!(path.file_name(), "Thumbs.db" | "desktop.ini")
}

/// One file of a source: where its bytes are and how many there are.
#[derive(Debug, Clone)]
struct SourceFile {
    source: FileSource,
    size: u64,
}

/// The files of one source (an extracted zip or a folder), keyed by sanitized path.
#[derive(Debug, Clone, Default)]
struct SourceTree {
    /// The zip or folder name, for messages and the report.
    label: String,
    files: BTreeMap<BundlePath, SourceFile>,
}

impl SourceTree {
    fn find(&self, path: &str) -> Option<&BundlePath> {
        let key = BundlePath::parse(path).ok()?;
        self.files.get_key_value(&key).map(|(k, _)| k)
    }

    /// Like [`SourceTree::find`], ignoring ASCII case (authors' zips are made on
    /// case-insensitive file systems).
    fn find_ignore_case(&self, path: &str) -> Option<&BundlePath> {
        self.find(path).or_else(|| self.files.keys().find(|k| k.as_str().eq_ignore_ascii_case(path)))
    }

    /// The one top-level folder every file is in, if there is exactly one and no file at the
    /// root.
    fn single_top_folder(&self) -> Option<String> {
        let mut top: Option<&str> = None;
        for p in self.files.keys() {
            let (first, _) = p.as_str().split_once('/')?;
            match top {
                None => top = Some(first),
                Some(t) if t == first => {}
                Some(_) => return None,
            }
        }
        top.map(str::to_string)
    }

    /// The same files with the leading `folder/` removed.
    fn strip_folder(self, folder: &str) -> SourceTree {
        let prefix = format!("{folder}/");
        let files = self
            .files
            .into_iter()
            .filter_map(|(p, f)| {
                let rest = p.as_str().strip_prefix(&prefix)?;
                BundlePath::parse(rest).ok().map(|bp| (bp, f))
            })
            .collect();
        SourceTree { label: self.label, files }
    }

    /// Reads a (small) file as text, lossily. `None` when it is larger than [`MAX_TEXT_BYTES`].
    fn read_text(&self, path: &BundlePath) -> Result<Option<String>> {
        let Some(f) = self.files.get(path) else {
            return Ok(None);
        };
        if f.size > MAX_TEXT_BYTES {
            return Ok(None);
        }
        let bytes = match &f.source {
            FileSource::Bytes(b) => b.clone(),
            FileSource::Path(p) => read_bounded(p, MAX_TEXT_BYTES)?,
        };
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// Reads a whole file, refusing more than `max` bytes.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(Error::io(path))?;
    let mut out = Vec::new();
    f.take(max + 1).read_to_end(&mut out).map_err(Error::io(path))?;
    if out.len() as u64 > max {
        return Err(import_err(format!("{}: larger than {max} bytes; this is not a metadata file", path.display())));
    }
    Ok(out)
}

/// Extracts zip inputs into a private temporary folder, enforcing every rule a bundle entry
/// must meet and counting the bytes actually inflated.
#[derive(Debug)]
struct Extractor {
    dir: tempfile::TempDir,
    next: u64,
    total: u64,
    max_total: u64,
    limits: Limits,
    buf: Vec<u8>,
}

impl Extractor {
    fn new() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("edetail-import-").tempdir().map_err(Error::io(std::env::temp_dir()))?;
        Ok(Extractor { dir, next: 0, total: 0, max_total: MAX_IMPORT_BYTES, limits: DEFAULT_LIMITS, buf: vec![0; 64 * 1024] })
    }

    /// Reads every regular file of a zip. Fails, naming the zip and the entry, on unsafe names,
    /// symbolic links, duplicates, names differing only in case, encryption, unsupported
    /// compression, and sizes past the limits.
    fn read_zip(&mut self, zip_path: &Path) -> Result<SourceTree> {
        let label = file_label(zip_path);
        let file = File::open(zip_path).map_err(Error::io(zip_path))?;
        let mut reader = BufReader::new(file);
        let unreadable = |e: &dyn std::fmt::Display| {
            import_err(format!("{label} is not a readable zip archive ({e}); re-create it with a standard zip tool"))
        };
        let names = crate::zipscan::central_directory_names(&mut reader, self.limits.max_entries + 1).map_err(|e| unreadable(&e))?;
        if names.len() > self.limits.max_entries {
            return Err(import_err(format!("{label} has more than {} entries", self.limits.max_entries)));
        }
        let mut counts: HashMap<&[u8], usize> = HashMap::new();
        for n in &names {
            *counts.entry(n.as_slice()).or_default() += 1;
        }
        if let Some(name) = names.iter().find(|n| counts.get(n.as_slice()).is_some_and(|c| *c > 1)) {
            return Err(entry_err(&label, &display_name(name), "appears more than once; remove the duplicate"));
        }
        std::io::Seek::rewind(&mut reader).map_err(Error::io(zip_path))?;
        let mut archive = zip::ZipArchive::new(reader).map_err(|e| unreadable(&e))?;
        let mut tree = SourceTree { label: label.clone(), files: BTreeMap::new() };
        let mut folded: HashMap<String, String> = HashMap::new();
        for i in 0..archive.len() {
            let (raw, symlink, encrypted, method, declared, compressed) = {
                let e = archive.by_index_data(i).map_err(|e| unreadable(&e))?;
                (e.name_raw().to_vec(), e.is_symlink(), e.encrypted(), e.compression(), e.size(), e.compressed_size())
            };
            let shown = display_name(&raw);
            let is_dir = raw.ends_with(b"/");
            let name = if is_dir { &raw[..raw.len() - 1] } else { &raw[..] };
            let path = BundlePath::from_bytes(name)
                .map_err(|e| entry_err(&label, &shown, format!("has an unsafe name ({e}); only plain relative paths are allowed")))?;
            if symlink {
                return Err(entry_err(&label, &shown, "is a symbolic link; replace it with the file it points to"));
            }
            if is_dir || is_junk(&path) {
                continue;
            }
            if encrypted {
                return Err(entry_err(&label, &shown, "is password-protected; re-create the zip without encryption"));
            }
            if !matches!(method, zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated) {
                return Err(entry_err(&label, &shown, format!("uses compression {method:?}; re-create the zip with deflate")));
            }
            if declared > self.limits.max_entry_size {
                return Err(entry_err(&label, &shown, format!("is larger than {} bytes", self.limits.max_entry_size)));
            }
            if let Some(other) = folded.insert(path.case_fold_key(), path.to_string()) {
                return Err(entry_err(
                    &label,
                    &shown,
                    format!("differs only in letter case from \"{other}\"; the two collide on iPad file systems"),
                ));
            }
            let dest = self.dir.path().join(self.next.to_string());
            self.next += 1;
            let size = self.copy_entry(&mut archive, i, compressed, &dest, &label, &shown)?;
            tree.files.insert(path, SourceFile { source: FileSource::Path(dest), size });
        }
        Ok(tree)
    }

    fn copy_entry<R: Read + std::io::Seek>(
        &mut self,
        archive: &mut zip::ZipArchive<R>,
        index: usize,
        compressed: u64,
        dest: &Path,
        label: &str,
        shown: &str,
    ) -> Result<u64> {
        let mut zf = archive.by_index(index).map_err(|e| entry_err(label, shown, format!("cannot be read ({e})")))?;
        let ceiling = self.limits.ratio_ceiling(compressed).min(self.limits.max_entry_size);
        let mut out = BufWriter::new(File::create(dest).map_err(Error::io(dest))?);
        let mut produced = 0u64;
        loop {
            let n = zf.read(&mut self.buf).map_err(|e| entry_err(label, shown, format!("is damaged ({e})")))?;
            if n == 0 {
                break;
            }
            produced += n as u64;
            self.total += n as u64;
            if produced > ceiling {
                return Err(entry_err(
                    label,
                    shown,
                    format!("inflates past {ceiling} bytes (more than {}x its compressed size, or too large)", self.limits.max_ratio),
                ));
            }
            if self.total > self.max_total {
                return Err(entry_err(
                    label,
                    shown,
                    format!("takes the inputs past {} bytes in total; import fewer or smaller zips", self.max_total),
                ));
            }
            out.write_all(&self.buf[..n]).map_err(Error::io(dest))?;
        }
        out.flush().map_err(Error::io(dest))?;
        Ok(produced)
    }
}

/// Lists a folder's files (sorted, hidden files and OS litter skipped). Symbolic links and
/// names a bundle cannot hold are errors naming the file.
fn read_folder(dir: &Path) -> Result<SourceTree> {
    fn walk(root: &Path, dir: &Path, tree: &mut SourceTree, folded: &mut HashMap<String, String>) -> Result<()> {
        let mut entries: Vec<_> =
            std::fs::read_dir(dir).map_err(Error::io(dir))?.collect::<std::io::Result<_>>().map_err(Error::io(dir))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
            let ft = e.file_type().map_err(Error::io(&path))?;
            let bp = BundlePath::parse(&rel)
                .map_err(|err| import_err(format!("{}: file name not allowed in a bundle ({err}); rename it", path.display())))?;
            if is_junk(&bp) {
                continue;
            }
            if ft.is_symlink() {
                return Err(import_err(format!("{}: symbolic links are not imported; copy the file in", path.display())));
            }
            if ft.is_dir() {
                walk(root, &path, tree, folded)?;
            } else if ft.is_file() {
                if let Some(other) = folded.insert(bp.case_fold_key(), bp.to_string()) {
                    return Err(import_err(format!(
                        "{}: differs only in letter case from \"{other}\"; the two collide on iPad file systems",
                        path.display()
                    )));
                }
                let size = e.metadata().map_err(Error::io(&path))?.len();
                tree.files.insert(bp, SourceFile { source: FileSource::Path(path), size });
            }
        }
        Ok(())
    }
    let mut tree = SourceTree { label: file_label(dir), files: BTreeMap::new() };
    walk(dir, dir, &mut tree, &mut HashMap::new())?;
    Ok(tree)
}

/// What a source says about the bundle as a whole. [`ImportMeta`] overrides each field.
#[derive(Debug, Clone, Default)]
struct SourceMeta {
    id: Option<String>,
    title: Option<String>,
    product: Option<String>,
    locale: Option<String>,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    approval_code: Option<String>,
    version_label: Option<String>,
}

/// The manifest header (everything but presentations, slides and files) from the command line
/// and the source, with the documented defaults. Fails listing every missing value and the
/// option that supplies it.
fn manifest_header(format: &str, meta: &ImportMeta, src: &SourceMeta, warnings: &mut Vec<String>) -> Result<Manifest> {
    let nonempty = |o: &Option<String>| o.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let mut missing = Vec::new();
    let id = nonempty(&meta.id).or_else(|| nonempty(&src.id));
    if id.is_none() {
        missing.push("a bundle id: pass --id (e.g. --id com.acme.cardiozen.launch)");
    }
    let product = nonempty(&meta.product).or_else(|| nonempty(&src.product));
    if product.is_none() {
        missing.push("the product: pass --product NAME");
    }
    let locale = nonempty(&meta.locale).or_else(|| nonempty(&src.locale));
    if locale.is_none() {
        missing.push("the locale: pass --locale (a BCP 47 tag such as en-GB)");
    }
    let valid_until = meta.valid_until.or(src.valid_until);
    if valid_until.is_none() {
        missing.push("the end of validity: pass --valid-until (e.g. 2027-12-31T00:00:00Z)");
    }
    let approval_code = nonempty(&meta.approval_code).or_else(|| nonempty(&src.approval_code));
    if approval_code.is_none() {
        missing.push("the approval code: pass --approval-code CODE (the MLR approval id printed on the material)");
    }
    let (Some(id), Some(product), Some(locale), Some(valid_until), Some(approval_code)) = (id, product, locale, valid_until, approval_code)
    else {
        return Err(import_err(format!("{format} import: the source does not provide {}", missing.join("; "))));
    };
    let valid_from = meta.valid_from.or(src.valid_from).unwrap_or_else(default_valid_from);
    if valid_from >= valid_until {
        return Err(import_err(format!(
            "{format} import: valid_from ({valid_from}) must be before valid_until ({valid_until}); pass --valid-from / --valid-until"
        )));
    }
    let title = match nonempty(&meta.title).or_else(|| nonempty(&src.title)) {
        Some(t) => t,
        None => {
            warnings.push(format!("no title in the source; using the id {id:?} (pass --title to set one)"));
            id.clone()
        }
    };
    Ok(Manifest {
        format_version: FORMAT_VERSION.to_string(),
        id,
        version: meta.version.unwrap_or(1),
        version_label: nonempty(&meta.version_label).or_else(|| nonempty(&src.version_label)),
        title,
        product,
        locale,
        valid_from,
        valid_until,
        approval_code,
        presentations: Vec::new(),
        slides: Vec::new(),
        shared_resources: Vec::new(),
        files: BTreeMap::new(),
        extra: BTreeMap::new(),
    })
}

/// Parses a date as sources write it: RFC 3339, `YYYY-MM-DD`, or `MM/DD/YYYY` (Vault's US
/// format). A bare date is the start of that day (UTC); as an end date (`end`), the end of it,
/// because sources give the last day of use and `valid_until` is exclusive.
fn parse_source_date(s: &str, end: bool) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").or_else(|_| NaiveDate::parse_from_str(s, "%m/%d/%Y")).ok()?;
    let date = if end { date.succ_opt()? } else { date };
    Some(Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN)))
}

/// A BCP 47 tag from a source value such as `en_US` or `de-de`; `None` for anything else
/// (e.g. Vault's language names like `English`).
fn normalize_locale(s: &str) -> Option<String> {
    let s = s.trim().replace('_', "-");
    let mut parts = s.split('-');
    let lang = parts.next()?;
    if !(2..=3).contains(&lang.len()) || !lang.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let mut out = lang.to_ascii_lowercase();
    for p in parts {
        if !(2..=8).contains(&p.len()) || !p.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        out.push('-');
        if p.len() == 2 && p.chars().all(|c| c.is_ascii_alphabetic()) {
            out.push_str(&p.to_ascii_uppercase());
        } else {
            out.push_str(p);
        }
    }
    Some(out)
}

/// Whether a file is text worth scanning for references.
fn is_scannable(path: &BundlePath) -> bool {
    matches!(path.extension().as_deref(), Some("html" | "htm" | "css" | "js" | "mjs" | "json"))
}

/// Strings in HTML/CSS/JS text that look like relative file references: quoted strings and
/// CSS `url(...)` values without a scheme, with any `?query` or `#fragment` removed. A
/// heuristic: references assembled by script at run time are not found.
pub(crate) fn relative_refs(text: &str) -> Vec<String> {
    let mut found = std::collections::BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let candidate = if matches!(c, b'"' | b'\'' | b'`') {
            let end = b[i + 1..].iter().take(512).position(|&x| x == c || x == b'\n');
            match end {
                Some(n) if b[i + 1 + n] == c => {
                    let s = &text[i + 1..i + 1 + n];
                    i += n + 2;
                    Some(s)
                }
                _ => {
                    i += 1;
                    None
                }
            }
        } else if b[i..].starts_with(b"url(") {
            let start = i + 4;
            match b[start..].iter().take(512).position(|&x| x == b')') {
                Some(n) => {
                    i = start + n + 1;
                    Some(text[start..start + n].trim().trim_matches(|c| c == '"' || c == '\''))
                }
                None => {
                    i += 4;
                    None
                }
            }
        } else {
            i += 1;
            None
        };
        if let Some(s) = candidate {
            let s = s.split(['?', '#']).next().unwrap_or_default().trim();
            if looks_like_path(s) {
                found.insert(s.to_string());
            }
        }
    }
    found.into_iter().collect()
}

fn looks_like_path(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && !s.starts_with('/')
        && !s.contains(':')
        && (s.contains('/') || s.contains('.'))
        && !s
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '{' | '}' | '|' | '^' | '\\' | '(' | ')' | '+' | ',' | ';' | '=' | '$'))
}

/// The text of an HTML page's `<title>`, if any.
fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let raw = &html[open_end..close];
    let text = raw
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

/// Checks the final file list for what would make the bundle unreadable, with messages naming
/// the source: duplicates, names colliding by case, reserved names.
fn check_bundle_paths(files: &[(BundleFile, String)]) -> Result<()> {
    let mut seen: HashMap<String, (&str, &str)> = HashMap::new();
    for (f, origin) in files {
        let p = f.path.as_str();
        if p == crate::MANIFEST_NAME || p == crate::SIGNATURE_NAME {
            return Err(import_err(format!("{origin}: the file {p} would collide with the bundle's own {p}; rename or remove it")));
        }
        if p.starts_with(crate::validate::RESERVED_PREFIX) {
            return Err(import_err(format!(
                "{origin}: {p} is inside {}, which is reserved for the edetail runtime; rename the folder",
                crate::validate::RESERVED_PREFIX
            )));
        }
        if let Some((other, other_origin)) = seen.insert(f.path.case_fold_key(), (p, origin)) {
            let what = if other == p { "is also provided by".to_string() } else { format!("collides by letter case with {other} from") };
            return Err(import_err(format!("{origin}: {p} {what} {other_origin}; each bundle path must be unique")));
        }
    }
    Ok(())
}

/// The vendor calls in every script and page of `trees`, each file named by its bundle path
/// (`prefix` + its path in the tree).
fn compat_of(trees: &[(&str, &SourceTree)]) -> Result<compat::CompatReport> {
    let mut scanner = compat::Scanner::default();
    for (prefix, tree) in trees {
        for path in tree.files.keys().filter(|p| compat::is_script_or_page(p)) {
            if let Some(text) = tree.read_text(path)? {
                scanner.scan(&format!("{prefix}{path}"), &text);
            }
        }
    }
    Ok(scanner.finish())
}

/// Writes the bundle (unsigned) to `out` atomically; returns the manifest as written.
fn write_output(out: &Path, manifest: Manifest, files: Vec<(BundleFile, String)>, progress: &mut dyn FnMut(u64)) -> Result<Manifest> {
    check_bundle_paths(&files)?;
    let files: Vec<BundleFile> = files.into_iter().map(|(f, _)| f).collect();
    write_atomically(out, |f| {
        let (m, mut w) = write_bundle(BufWriter::new(f), manifest, files, None, progress)?;
        w.flush().map_err(Error::io(out))?;
        Ok(m)
    })
}

/// Drops presentations without slides (and sub-presentation links to them), and refuses a
/// deck whose presentations are all hidden.
fn finish_presentations(
    format: &str,
    presentations: Vec<Presentation>,
    slides: &mut [Slide],
    warnings: &mut Vec<String>,
) -> Result<Vec<Presentation>> {
    let (kept, dropped): (Vec<_>, Vec<_>) = presentations.into_iter().partition(|p| !p.slides.is_empty());
    for p in &dropped {
        warnings.push(format!("presentation {:?} has no slides and was left out", p.id));
    }
    for s in slides.iter_mut() {
        if let Some(sub) = &s.sub_presentation
            && !kept.iter().any(|p| &p.id == sub)
        {
            warnings.push(format!("slide {:?}: sub-presentation {sub:?} is not in the bundle; link dropped", s.id));
            s.sub_presentation = None;
        }
    }
    if kept.is_empty() {
        return Err(import_err(format!("{format} import: no slides found; nothing to import")));
    }
    if kept.iter().all(|p| p.hidden) {
        return Err(import_err(format!("{format} import: every presentation is hidden; at least one must be visible to the rep")));
    }
    adoption_defaults(&kept, slides);
    Ok(kept)
}

/// Fills in what plans need and vendor formats do not say: each slide's adoption steps from
/// its topics ([`crate::manifest::default_steps`]) and `mandatory` for fair-balance material
/// (an `isi`/fair-balance topic, or `isi` as a word of the slide's id, key message or hidden
/// presentation). The report's [`Adoption`] says what was set.
fn adoption_defaults(presentations: &[Presentation], slides: &mut [Slide]) {
    for s in slides.iter_mut() {
        if s.steps.is_empty() {
            s.steps = crate::manifest::default_steps(&s.topics);
        }
        let in_isi_deck = presentations.iter().any(|p| p.hidden && has_isi_word(&p.id) && p.slides.contains(&s.id));
        if s.topics.iter().any(|t| crate::manifest::MANDATORY_TOPICS.iter().any(|m| t.eq_ignore_ascii_case(m)))
            || has_isi_word(&s.id)
            || s.key_message.as_deref().is_some_and(has_isi_word)
            || in_isi_deck
        {
            s.mandatory = true;
        }
    }
}

fn has_isi_word(s: &str) -> bool {
    s.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w.eq_ignore_ascii_case("isi"))
}

/// What an imported deck offers the adoption ladder: slides marked mandatory and steps no
/// slide serves (for the content team to set in `edetail.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Adoption {
    /// Slide ids shown in every call (fair balance).
    pub mandatory: Vec<String>,
    /// Per step, the slides serving it.
    pub steps: Vec<(String, Vec<String>)>,
    /// Steps no slide serves.
    pub uncovered: Vec<String>,
}

impl Adoption {
    pub fn of(m: &Manifest) -> Adoption {
        let steps: Vec<(String, Vec<String>)> = crate::manifest::Step::ALL
            .iter()
            .map(|step| (step.as_str().to_string(), m.slides.iter().filter(|s| s.steps.contains(step)).map(|s| s.id.clone()).collect()))
            .collect();
        Adoption {
            mandatory: m.slides.iter().filter(|s| s.mandatory).map(|s| s.id.clone()).collect(),
            uncovered: steps.iter().filter(|(_, v)| v.is_empty()).map(|(s, _)| s.clone()).collect(),
            steps,
        }
    }
}

/// The bundle path `folder/rest`.
fn join_path(folder: &str, rest: &BundlePath) -> Result<BundlePath> {
    let joined = format!("{folder}/{rest}");
    BundlePath::parse(&joined).map_err(|e| import_err(format!("{joined}: path not allowed in a bundle ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Step;

    #[test]
    fn kebab_ids() {
        assert_eq!(kebab_id("CZ_Efficacy_01"), "cz-efficacy-01");
        assert_eq!(kebab_id("efficacyOverview"), "efficacy-overview");
        assert_eq!(kebab_id("  Safety & Tolerability "), "safety-tolerability");
        assert_eq!(kebab_id("___"), "");
    }

    #[test]
    fn finds_relative_references() {
        let html = r#"<link href="../shared/css/a.css?v=2"><img src='img/x.png'> url(../../shared/f.woff2) "https://x.invalid/a.js" "hello world""#;
        assert_eq!(relative_refs(html), vec!["../../shared/f.woff2", "../shared/css/a.css", "img/x.png"]);
    }

    fn slide(id: &str, topics: &[&str], key_message: Option<&str>) -> Slide {
        Slide {
            id: id.into(),
            title: id.into(),
            entry: BundlePath::parse(&format!("slides/{id}.html")).unwrap(),
            route: None,
            thumbnail: None,
            key_message: key_message.map(str::to_string),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            hidden: false,
            steps: Vec::new(),
            mandatory: false,
            disabled_gestures: Vec::new(),
            sub_presentation: None,
            bridge: Default::default(),
            extra: Default::default(),
        }
    }

    #[test]
    fn imported_slides_get_steps_from_topics_and_isi_is_mandatory() {
        let mut slides = vec![
            slide("intro", &["awareness"], None),
            slide("moa", &["MoA", "video"], None),
            slide("dosing", &["dosing", "efficacy"], None),
            slide("cz-isi-01", &[], None),
            slide("safety-info", &[], Some("CZ_ISI")),
            slide("pi-1", &[], None),
            slide("boxed", &["fair-balance"], None),
            slide("crisis", &["crisis"], None),
        ];
        let deck = |id: &str, hidden: bool, ids: &[&str]| Presentation {
            id: id.into(),
            title: id.into(),
            hidden,
            slides: ids.iter().map(|s| s.to_string()).collect(),
            extra: Default::default(),
        };
        let presentations = vec![
            deck("main", false, &["intro", "moa", "dosing", "crisis", "boxed"]),
            deck("isi", true, &["pi-1"]),
            deck("x", true, &["cz-isi-01", "safety-info"]),
        ];
        adoption_defaults(&presentations, &mut slides);
        let by = |id: &str| slides.iter().find(|s| s.id == id).unwrap().clone();
        assert_eq!(by("intro").steps, [Step::Aware]);
        assert_eq!(by("moa").steps, [Step::Educated], "topics match without case");
        assert_eq!(by("dosing").steps, [Step::Educated, Step::Convinced], "ladder order");
        assert!(by("crisis").steps.is_empty());
        let mandatory: Vec<String> = slides.iter().filter(|s| s.mandatory).map(|s| s.id.clone()).collect();
        assert_eq!(
            mandatory,
            ["cz-isi-01", "safety-info", "pi-1", "boxed"],
            "isi as a word of id, key message, hidden deck; fair-balance topic"
        );
        assert!(!has_isi_word("crisis") && !has_isi_word("visible"), "isi only as a whole word");

        let mut m = crate::testkit::SampleBundle::new().computed_manifest();
        m.slides = slides;
        let a = Adoption::of(&m);
        assert_eq!(a.uncovered, ["advocate"]);
        assert_eq!(a.steps[1], ("educated".to_string(), vec!["moa".to_string(), "dosing".to_string()]));
    }

    #[test]
    fn source_dates_and_locales() {
        assert_eq!(parse_source_date("2027-12-31", true).map(|d| d.to_rfc3339()), Some("2028-01-01T00:00:00+00:00".into()));
        assert_eq!(parse_source_date("01/02/2026", false).map(|d| d.to_rfc3339()), Some("2026-01-02T00:00:00+00:00".into()));
        assert_eq!(normalize_locale("en_us").as_deref(), Some("en-US"));
        assert_eq!(normalize_locale("English"), None);
        assert_eq!(html_title("<html><TITLE> A &amp; B </title>").as_deref(), Some("A & B"));
    }
}
