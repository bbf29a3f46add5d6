//! Writing bundle zips deterministically: the same inputs give byte-identical archives.
//!
//! Files go in sorted by path with a fixed timestamp (1980-01-01) and permissions (0644);
//! already-compressed media is stored, everything else deflated. Each file is hashed while it is
//! written, so a bundle is built in one pass; `manifest.json` (and `manifest.sig`) come last.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::digest::HashingReader;
use crate::error::{Error, Result};
use crate::manifest::{FileEntry, MANIFEST_NAME, Manifest, SIGNATURE_NAME};
use crate::mime;
use crate::path::BundlePath;
use crate::problem::Problems;
use crate::sign::SecretKey;
use crate::validate;

/// Where a file's bytes come from.
#[derive(Debug, Clone)]
pub enum FileSource {
    Path(PathBuf),
    Bytes(Vec<u8>),
}

/// One file to put into a bundle.
#[derive(Debug, Clone)]
pub struct BundleFile {
    pub path: BundlePath,
    pub source: FileSource,
}

impl BundleFile {
    pub fn mime(&self) -> &'static str {
        mime::mime_for_extension(self.path.extension().as_deref())
    }

    fn len(&self) -> io::Result<u64> {
        match &self.source {
            FileSource::Path(p) => Ok(std::fs::metadata(p)?.len()),
            FileSource::Bytes(b) => Ok(b.len() as u64),
        }
    }

    fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match &self.source {
            FileSource::Path(p) => Box::new(BufReader::with_capacity(256 * 1024, File::open(p)?)),
            FileSource::Bytes(b) => Box::new(&b[..]),
        })
    }

    fn describe(&self) -> PathBuf {
        match &self.source {
            FileSource::Path(p) => p.clone(),
            FileSource::Bytes(_) => PathBuf::from(self.path.as_str()),
        }
    }
}

fn entry_options(mime: &str, size: u64) -> SimpleFileOptions {
    let method = if mime::is_precompressed(mime) || size == 0 { CompressionMethod::Stored } else { CompressionMethod::Deflated };
    SimpleFileOptions::default()
        .compression_method(method)
        .last_modified_time(DateTime::DEFAULT)
        .unix_permissions(0o644)
        .large_file(size >= u32::MAX as u64)
}

fn zip_err(e: zip::result::ZipError) -> Error {
    Error::ZipWrite(e.to_string())
}

/// Checks that `manifest` plus these files would make a valid bundle, without hashing anything:
/// fills `files` with sizes and MIME types (hashes zeroed) and runs manifest validation.
pub fn prevalidate(manifest: &Manifest, files: &[BundleFile]) -> Result<()> {
    let mut m = manifest.clone();
    m.files.clear();
    for f in files {
        let size = f.len().map_err(Error::io(f.describe()))?;
        let entry = FileEntry { sha256: crate::Sha256Digest([0; 32]), size, mime: f.mime().into(), extra: Default::default() };
        m.files.insert(f.path.clone(), entry);
    }
    let problems = validate::manifest(&m);
    if problems.iter().any(|p| p.is_error()) {
        return Err(Error::Rejected(Problems(problems)));
    }
    Ok(())
}

/// Writes a bundle: every file, then `manifest.json` with the computed `files` map, then
/// `manifest.sig` when a key is given. Returns the manifest as written.
pub fn write_bundle<W: Write + Seek>(
    out: W,
    mut manifest: Manifest,
    mut files: Vec<BundleFile>,
    signer: Option<&SecretKey>,
    progress: &mut dyn FnMut(u64),
) -> Result<(Manifest, W)> {
    prevalidate(&manifest, &files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    manifest.files.clear();
    let mut zip = ZipWriter::new(out);
    let mut done = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    for f in &files {
        let mime = f.mime();
        let size = f.len().map_err(Error::io(f.describe()))?;
        zip.start_file(f.path.as_str(), entry_options(mime, size)).map_err(zip_err)?;
        let mut reader = HashingReader::new(f.open().map_err(Error::io(f.describe()))?);
        loop {
            let n = reader.read(&mut buf).map_err(Error::io(f.describe()))?;
            if n == 0 {
                break;
            }
            zip.write_all(&buf[..n]).map_err(Error::Stream)?;
            done += n as u64;
            progress(done);
        }
        let (sha256, size) = reader.finish();
        manifest.files.insert(f.path.clone(), FileEntry { sha256, size, mime: mime.into(), extra: Default::default() });
    }
    let bytes = manifest.to_bytes();
    zip.start_file(MANIFEST_NAME, entry_options("application/json", bytes.len() as u64)).map_err(zip_err)?;
    zip.write_all(&bytes)?;
    if let Some(key) = signer {
        let sig = key.sign_manifest(&bytes);
        zip.start_file(SIGNATURE_NAME, entry_options("application/json", sig.len() as u64)).map_err(zip_err)?;
        zip.write_all(&sig)?;
    }
    let out = zip.finish().map_err(zip_err)?;
    Ok((manifest, out))
}

/// Writes to `dest` through a temporary file in the same folder, renamed into place only when
/// complete: a failed or interrupted write never leaves a half bundle under the final name.
pub fn write_atomically<T>(dest: &Path, write: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".edetail-").suffix(".partial").tempfile_in(dir).map_err(Error::io(dir))?;
    let value = write(tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(Error::io(dest))?;
    tmp.persist(dest).map_err(|e| Error::Io { path: dest.into(), source: e.error })?;
    Ok(value)
}

/// Writes a copy of a bundle with a fresh `manifest.sig`, keeping every other entry byte for
/// byte (raw copy, no recompression). `manifest.json` is not touched, so the signature covers
/// exactly what was checked.
pub fn resign<R: Read + Seek, W: Write + Seek>(input: R, out: W, key: &SecretKey) -> Result<W> {
    let mut zin = zip::ZipArchive::new(input).map_err(|e| Error::ZipWrite(e.to_string()))?;
    let mut zout = ZipWriter::new(out);
    let mut manifest_bytes = None;
    for i in 0..zin.len() {
        let name = String::from_utf8_lossy(zin.by_index_raw(i).map_err(zip_err)?.name_raw()).into_owned();
        if name == SIGNATURE_NAME {
            continue;
        }
        if name == MANIFEST_NAME {
            let mut b = Vec::new();
            zin.by_index(i).map_err(zip_err)?.read_to_end(&mut b)?;
            manifest_bytes = Some(b);
        }
        let raw = zin.by_index_raw(i).map_err(zip_err)?;
        zout.raw_copy_file(raw).map_err(zip_err)?;
    }
    let bytes = manifest_bytes.ok_or_else(|| Error::ZipWrite("no manifest.json to sign".into()))?;
    let sig = key.sign_manifest(&bytes);
    zout.start_file(SIGNATURE_NAME, entry_options("application/json", sig.len() as u64)).map_err(zip_err)?;
    zout.write_all(&sig)?;
    zout.finish().map_err(zip_err)
}
