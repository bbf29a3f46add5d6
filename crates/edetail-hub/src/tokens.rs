//! Bearer tokens (devices, publishers, operators, dashboard sessions): 32 random bytes from
//! the OS, hex; the hub stores only their SHA-256.

use edetail_bundle::Sha256Digest;

use crate::error::{Error, Result};

/// A new random token: 32 bytes from the OS, hex.
pub(crate) fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// What the hub stores for a token.
pub fn token_hash(token: &str) -> String {
    Sha256Digest::of(token.as_bytes()).to_hex()
}
