//! Test kit: a raw zip builder that can write what well-behaved zip libraries refuse to
//! (duplicate names, lying size fields, symlinks, odd methods), and a minimal valid bundle to
//! start from. Used by the hostile-zip corpus and the fuzzer; compiled only for tests and the
//! `testkit` feature.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{TimeZone, Utc};

use crate::digest::Sha256Digest;
use crate::manifest::{FORMAT_VERSION, FileEntry, Manifest, Presentation, Slide};
use crate::mime::mime_for_extension;
use crate::path::BundlePath;
use crate::sign::SecretKey;

/// One entry as it will be written, every field under the test's control.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub name: Vec<u8>,
    /// Name in the local header, when it should differ from the central directory's.
    pub local_name: Option<Vec<u8>>,
    /// Bytes as stored in the archive (already compressed for method 8).
    pub payload: Vec<u8>,
    pub method: u16,
    pub flags: u16,
    pub crc32: u32,
    pub compressed_size: u32,
    pub uncompressed_size: u32,
    /// Unix mode, written to the external attributes.
    pub unix_mode: u32,
}

impl RawEntry {
    pub fn stored(name: impl AsRef<[u8]>, data: &[u8]) -> Self {
        RawEntry {
            name: name.as_ref().to_vec(),
            local_name: None,
            payload: data.to_vec(),
            method: 0,
            flags: 0,
            crc32: crc32fast::hash(data),
            compressed_size: data.len() as u32,
            uncompressed_size: data.len() as u32,
            unix_mode: 0o100644,
        }
    }

    pub fn deflated(name: impl AsRef<[u8]>, data: &[u8]) -> Self {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).expect("in-memory write");
        let payload = enc.finish().expect("in-memory write");
        RawEntry { compressed_size: payload.len() as u32, payload, method: 8, ..RawEntry::stored(name, data) }
    }

    pub fn symlink(name: impl AsRef<[u8]>, target: &str) -> Self {
        RawEntry { unix_mode: 0o120777, ..RawEntry::stored(name, target.as_bytes()) }
    }
}

/// Builds a zip byte for byte from raw entries.
#[derive(Debug, Clone, Default)]
pub struct RawZip {
    pub entries: Vec<RawEntry>,
}

impl RawZip {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(mut self, e: RawEntry) -> Self {
        self.entries.push(e);
        self
    }

    pub fn stored(self, name: impl AsRef<[u8]>, data: &[u8]) -> Self {
        self.push(RawEntry::stored(name, data))
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for e in &self.entries {
            let offset = out.len() as u32;
            let local_name = e.local_name.as_ref().unwrap_or(&e.name);
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&e.flags.to_le_bytes());
            out.extend_from_slice(&e.method.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes()); // time
            out.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
            out.extend_from_slice(&e.crc32.to_le_bytes());
            out.extend_from_slice(&e.compressed_size.to_le_bytes());
            out.extend_from_slice(&e.uncompressed_size.to_le_bytes());
            out.extend_from_slice(&(local_name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(local_name);
            out.extend_from_slice(&e.payload);

            central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            central.extend_from_slice(&0x031eu16.to_le_bytes()); // made by: unix, 3.0
            central.extend_from_slice(&20u16.to_le_bytes());
            central.extend_from_slice(&e.flags.to_le_bytes());
            central.extend_from_slice(&e.method.to_le_bytes());
            central.extend_from_slice(&0u16.to_le_bytes());
            central.extend_from_slice(&0x21u16.to_le_bytes());
            central.extend_from_slice(&e.crc32.to_le_bytes());
            central.extend_from_slice(&e.compressed_size.to_le_bytes());
            central.extend_from_slice(&e.uncompressed_size.to_le_bytes());
            central.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            central.extend_from_slice(&0u16.to_le_bytes()); // extra
            central.extend_from_slice(&0u16.to_le_bytes()); // comment
            central.extend_from_slice(&0u16.to_le_bytes()); // disk
            central.extend_from_slice(&0u16.to_le_bytes()); // internal attrs
            central.extend_from_slice(&(e.unix_mode << 16).to_le_bytes());
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(&e.name);
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }
}

/// A small valid bundle: two slides in a main deck, one hidden PI slide, a shared stylesheet.
#[derive(Debug, Clone)]
pub struct SampleBundle {
    pub manifest: Manifest,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl SampleBundle {
    pub fn new() -> Self {
        let mut files = BTreeMap::new();
        for (path, body) in [
            (
                "slides/intro/index.html",
                "<!doctype html><title>Intro</title><link rel=stylesheet href=../../shared/deck.css><h1>Intro</h1>",
            ),
            ("slides/intro/thumb.png", "\u{89}PNG fake thumbnail"),
            ("slides/efficacy/index.html", "<!doctype html><title>Efficacy</title><h1>HR 0.78</h1>"),
            ("slides/pi/index.html", "<!doctype html><title>PI</title><p>Prescribing information</p>"),
            ("shared/deck.css", "body{font-family:system-ui;margin:0}h1{color:#a01}"),
        ] {
            files.insert(path.to_string(), body.as_bytes().to_vec());
        }
        let slide = |id: &str, entry: &str, thumb: Option<&str>, topics: &[&str]| Slide {
            id: id.into(),
            title: id.to_uppercase(),
            entry: BundlePath::parse(entry).expect("valid"),
            route: None,
            thumbnail: thumb.map(|t| BundlePath::parse(t).expect("valid")),
            key_message: Some(format!("KM_{}", id.to_uppercase())),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            hidden: false,
            steps: Vec::new(),
            mandatory: false,
            disabled_gestures: vec![],
            sub_presentation: None,
            bridge: Default::default(),
            extra: Default::default(),
        };
        let manifest = Manifest {
            format_version: FORMAT_VERSION.into(),
            id: "com.example.sample".into(),
            version: 1,
            version_label: Some("test".into()),
            title: "Sample".into(),
            product: "sample".into(),
            locale: "en-GB".into(),
            valid_from: Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single().expect("valid date"),
            valid_until: Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).single().expect("valid date"),
            approval_code: "TEST-0001".into(),
            presentations: vec![
                Presentation {
                    id: "main".into(),
                    title: "Main".into(),
                    hidden: false,
                    slides: vec!["intro".into(), "efficacy".into()],
                    extra: Default::default(),
                },
                Presentation { id: "pi".into(), title: "PI".into(), hidden: true, slides: vec!["pi".into()], extra: Default::default() },
            ],
            slides: vec![
                slide("intro", "slides/intro/index.html", Some("slides/intro/thumb.png"), &["awareness"]),
                slide("efficacy", "slides/efficacy/index.html", None, &["efficacy"]),
                slide("pi", "slides/pi/index.html", None, &["prescribing-information"]),
            ],
            shared_resources: vec!["shared/".into()],
            files: BTreeMap::new(),
            extra: Default::default(),
        };
        SampleBundle { manifest, files }
    }

    /// The manifest with `files` computed from the current file contents.
    pub fn computed_manifest(&self) -> Manifest {
        let mut m = self.manifest.clone();
        m.files = self
            .files
            .iter()
            .filter_map(|(p, b)| {
                let path = BundlePath::parse(p).ok()?;
                let mime = mime_for_extension(path.extension().as_deref()).to_string();
                Some((path, FileEntry { sha256: Sha256Digest::of(b), size: b.len() as u64, mime, extra: Default::default() }))
            })
            .collect();
        m
    }

    /// Raw zip of the bundle: files (deflated), then manifest.json, then manifest.sig if signed.
    pub fn raw(&self, signer: Option<&SecretKey>) -> RawZip {
        let manifest = self.computed_manifest().to_bytes();
        self.raw_with_manifest(&manifest, signer)
    }

    pub fn raw_with_manifest(&self, manifest: &[u8], signer: Option<&SecretKey>) -> RawZip {
        let mut z = RawZip::new();
        for (p, b) in &self.files {
            z = z.push(RawEntry::deflated(p, b));
        }
        z = z.stored("manifest.json", manifest);
        if let Some(k) = signer {
            z = z.stored("manifest.sig", &k.sign_manifest(manifest));
        }
        z
    }

    pub fn zip(&self, signer: Option<&SecretKey>) -> Vec<u8> {
        self.raw(signer).build()
    }
}

impl Default for SampleBundle {
    fn default() -> Self {
        Self::new()
    }
}
