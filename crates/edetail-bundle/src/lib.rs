//! edetail-bundle: what a presentation bundle is, and whether one is safe to use.
//!
//! A bundle is a zip holding `manifest.json`, an optional `manifest.sig` (ed25519 over the exact
//! manifest bytes) and the files the manifest lists with their SHA-256, size and MIME type. This
//! crate owns the manifest model ([`manifest`]), path sanitizing ([`path`]), reading zips without
//! trusting them ([`reader`]), deterministic writing and packing ([`writer`], [`pack`]),
//! signatures ([`sign`]) and importers for Veeva and Agnitio content ([`import`]).
//!
//! Pure: no SQLite, no network, no async. Everything above it (device runtime, hub, CLI) trusts
//! this crate's verdict on a bundle.

pub mod cas;
pub mod digest;
pub mod error;
pub mod import;
pub mod limits;
pub mod manifest;
pub mod mime;
pub mod pack;
pub mod path;
pub mod problem;
pub mod reader;
pub mod refs;
pub mod serving;
pub mod sign;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod validate;
pub mod writer;
mod zipscan;

pub use digest::Sha256Digest;
pub use error::{Error, Result};
pub use limits::{DEFAULT_LIMITS, Limits};
pub use manifest::{Bridge, FileEntry, Gesture, MANIFEST_NAME, Manifest, Presentation, SIGNATURE_NAME, Slide};
pub use path::{BundlePath, PathError};
pub use problem::{Problem, ProblemKind, Problems, Severity};
pub use reader::{
    BundleArchive, CheckReport, ReadOptions, SignatureStatus, VerifiedManifest, VerifyingReader, check, check_path, problem_of,
    verify_detached_manifest,
};
pub use sign::{PublicKey, SecretKey};
pub use writer::{BundleFile, FileSource, write_bundle};
