//! ed25519 signatures over the exact bytes of `manifest.json`, and the key files that hold keys.
//!
//! `manifest.sig` is a small JSON document: `{"algorithm":"ed25519","key_id":"…","signature":"…"}`.
//! The key id (first 8 bytes of SHA-256 over the public key, in hex) lets a device that trusts
//! several publisher keys pick the right one, and lets a report name the key without showing it.
//! Because the manifest lists the SHA-256 of every file, a valid manifest signature covers the
//! whole bundle.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::problem::ProblemKind;

const ALGORITHM: &str = "ed25519";

/// A publisher's public key, as devices and hubs hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// A publisher's secret signing key.
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(key_id={})", self.public().key_id())
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    key_id: String,
    key: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct SignatureFile {
    algorithm: String,
    key_id: String,
    signature: String,
}

impl PublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> std::result::Result<Self, String> {
        VerifyingKey::from_bytes(bytes).map(PublicKey).map_err(|e| format!("not an ed25519 public key: {e}"))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Short, stable identifier: hex of the first 8 bytes of SHA-256(public key).
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256Digest::of(self.0.as_bytes()).0[..8])
    }

    /// Parses the text of a `.pub` key file.
    pub fn from_file_text(text: &str) -> std::result::Result<Self, String> {
        let kf: KeyFile = serde_json::from_str(text).map_err(|e| format!("not a key file: {e}"))?;
        if kf.kind != "ed25519-public" {
            return Err(format!("expected an ed25519-public key, found {:?}", kf.kind));
        }
        let mut b = [0u8; 32];
        hex::decode_to_slice(&kf.key, &mut b).map_err(|e| format!("key is not 64 hex characters: {e}"))?;
        let key = Self::from_bytes(&b)?;
        if key.key_id() != kf.key_id {
            return Err("key_id does not match the key".into());
        }
        Ok(key)
    }

    pub fn to_file_text(&self) -> String {
        let kf = KeyFile { kind: "ed25519-public".into(), key_id: self.key_id(), key: hex::encode(self.to_bytes()) };
        serde_json::to_string_pretty(&kf).expect("serializes") + "\n"
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Self::from_file_text(&text).map_err(|detail| Error::Key { path: path.into(), detail })
    }
}

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::Stream(std::io::Error::other(e.to_string())))?;
        Ok(Self::from_seed(&seed))
    }

    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(seed))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn from_file_text(text: &str) -> std::result::Result<Self, String> {
        let kf: KeyFile = serde_json::from_str(text).map_err(|e| format!("not a key file: {e}"))?;
        if kf.kind != "ed25519-secret" {
            return Err(format!("expected an ed25519-secret key, found {:?}", kf.kind));
        }
        let mut seed = [0u8; 32];
        hex::decode_to_slice(&kf.key, &mut seed).map_err(|e| format!("key is not 64 hex characters: {e}"))?;
        let key = Self::from_seed(&seed);
        if key.public().key_id() != kf.key_id {
            return Err("key_id does not match the key".into());
        }
        Ok(key)
    }

    pub fn to_file_text(&self) -> String {
        let kf = KeyFile { kind: "ed25519-secret".into(), key_id: self.public().key_id(), key: hex::encode(self.0.to_bytes()) };
        serde_json::to_string_pretty(&kf).expect("serializes") + "\n"
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Self::from_file_text(&text).map_err(|detail| Error::Key { path: path.into(), detail })
    }

    /// Signs the exact manifest bytes; returns the contents of `manifest.sig`.
    pub fn sign_manifest(&self, manifest_bytes: &[u8]) -> Vec<u8> {
        let sig: Signature = self.0.sign(manifest_bytes);
        let file = SignatureFile { algorithm: ALGORITHM.into(), key_id: self.public().key_id(), signature: hex::encode(sig.to_bytes()) };
        let mut out = serde_json::to_vec_pretty(&file).expect("serializes");
        out.push(b'\n');
        out
    }
}

/// Verifies `manifest.sig` bytes over `manifest_bytes` against the trusted keys.
/// Returns the key id that verified.
pub fn verify_manifest(manifest_bytes: &[u8], sig_bytes: &[u8], trusted: &[PublicKey]) -> std::result::Result<String, ProblemKind> {
    let malformed = |detail: String| ProblemKind::SignatureMalformed { detail };
    let file: SignatureFile = serde_json::from_slice(sig_bytes).map_err(|e| malformed(e.to_string()))?;
    if file.algorithm != ALGORITHM {
        return Err(malformed(format!("unsupported algorithm {:?}", file.algorithm)));
    }
    let mut raw = [0u8; 64];
    hex::decode_to_slice(&file.signature, &mut raw).map_err(|_| malformed("signature is not 128 hex characters".into()))?;
    let sig = Signature::from_bytes(&raw);
    let key =
        trusted.iter().find(|k| k.key_id() == file.key_id).ok_or_else(|| ProblemKind::UnknownSigningKey { key_id: file.key_id.clone() })?;
    key.0.verify_strict(manifest_bytes, &sig).map_err(|_| ProblemKind::BadSignature)?;
    Ok(file.key_id)
}

/// The key id named in a signature file, without verifying anything (for reports).
pub fn signature_key_id(sig_bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<SignatureFile>(sig_bytes).ok().map(|f| f.key_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_tamper() {
        let sk = SecretKey::from_seed(&[7; 32]);
        let pk = sk.public();
        let sig = sk.sign_manifest(b"{\"a\":1}");
        assert_eq!(verify_manifest(b"{\"a\":1}", &sig, std::slice::from_ref(&pk)), Ok(pk.key_id()));
        assert_eq!(verify_manifest(b"{\"a\":2}", &sig, std::slice::from_ref(&pk)), Err(ProblemKind::BadSignature));
        let other = SecretKey::from_seed(&[8; 32]).public();
        assert!(matches!(verify_manifest(b"{\"a\":1}", &sig, &[other]), Err(ProblemKind::UnknownSigningKey { .. })));
        assert!(matches!(verify_manifest(b"{\"a\":1}", b"junk", &[pk]), Err(ProblemKind::SignatureMalformed { .. })));
    }

    #[test]
    fn key_files_round_trip() {
        let sk = SecretKey::generate().unwrap();
        let sk2 = SecretKey::from_file_text(&sk.to_file_text()).unwrap();
        assert_eq!(sk.public(), sk2.public());
        let pk = PublicKey::from_file_text(&sk.public().to_file_text()).unwrap();
        assert_eq!(pk, sk.public());
        assert!(PublicKey::from_file_text(&sk.to_file_text()).is_err(), "a secret key is not a public key");
    }
}
