//! Packing an authoring folder into a bundle.
//!
//! The folder holds `edetail.json` (the source manifest: everything of `manifest.json` except
//! `files`, which is computed) and the slide files. Dotfiles and OS litter (`__MACOSX`,
//! `Thumbs.db`, `desktop.ini`) are skipped; symbolic links are refused.

use std::fs;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::manifest::{FORMAT_VERSION, Manifest};
use crate::path::BundlePath;
use crate::sign::SecretKey;
use crate::writer::{BundleFile, FileSource, write_bundle};

/// Name of the source manifest in an authoring folder.
pub const SOURCE_MANIFEST: &str = "edetail.json";

fn is_skipped(name: &str) -> bool {
    name.starts_with('.') || matches!(name, "__MACOSX" | "Thumbs.db" | "desktop.ini")
}

/// Reads `edetail.json` from an authoring folder.
pub fn read_source_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(SOURCE_MANIFEST);
    let bytes = fs::read(&path).map_err(Error::io(&path))?;
    let source_err = |detail: String| Error::Source { path: path.clone(), detail };
    let mut value: Value = serde_json::from_slice(&bytes).map_err(|e| source_err(format!("not valid JSON: {e}")))?;
    let obj = value.as_object_mut().ok_or_else(|| source_err("must be a JSON object".into()))?;
    if obj.contains_key("files") {
        return Err(source_err("remove \"files\": hashes, sizes and MIME types are computed by pack".into()));
    }
    obj.entry("format_version").or_insert_with(|| Value::String(FORMAT_VERSION.into()));
    // Null optional fields are common in hand-written JSON; treat them as absent.
    strip_nulls(&mut value);
    let normalized = serde_json::to_vec(&value).map_err(|e| source_err(e.to_string()))?;
    Manifest::from_slice(&normalized).map_err(|e| source_err(e.to_string()))
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Lists the files of an authoring folder, sorted, as bundle files.
pub fn collect_files(dir: &Path) -> Result<Vec<BundleFile>> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<BundleFile>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir).map_err(Error::io(dir))?.collect::<std::io::Result<_>>().map_err(Error::io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let path = e.path();
        if is_skipped(&name) || (dir == root && name == SOURCE_MANIFEST) {
            continue;
        }
        let ft = e.file_type().map_err(Error::io(&path))?;
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let rel_str = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
        if ft.is_symlink() {
            return Err(Error::Source { path, detail: "symbolic links cannot be packed; copy the file in".into() });
        }
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() {
            let bp = BundlePath::parse(&rel_str)
                .map_err(|e| Error::Source { path: path.clone(), detail: format!("file name not allowed in a bundle: {e}") })?;
            out.push(BundleFile { path: bp, source: FileSource::Path(path) });
        }
    }
    Ok(())
}

/// Packs an authoring folder into `out`. Returns the written manifest.
pub fn pack_to<W: Write + Seek>(dir: &Path, out: W, signer: Option<&SecretKey>, progress: &mut dyn FnMut(u64)) -> Result<(Manifest, W)> {
    let manifest = read_source_manifest(dir)?;
    let files = collect_files(dir)?;
    write_bundle(out, manifest, files, signer, progress)
}

/// Packs an authoring folder into the file `dest`, atomically.
pub fn pack_dir(dir: &Path, dest: &Path, signer: Option<&SecretKey>, progress: &mut dyn FnMut(u64)) -> Result<Manifest> {
    crate::writer::write_atomically(dest, |f| {
        let (m, _) = pack_to(dir, std::io::BufWriter::new(f), signer, progress)?;
        Ok(m)
    })
}

/// Total bytes an authoring folder will pack (for progress bars).
pub fn source_size(dir: &Path) -> Result<u64> {
    let files = collect_files(dir)?;
    let mut total = 0;
    for f in &files {
        if let FileSource::Path(p) = &f.source {
            total += fs::metadata(p).map_err(Error::io(PathBuf::from(p)))?.len();
        }
    }
    Ok(total)
}
