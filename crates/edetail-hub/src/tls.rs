//! HTTPS for the hub: loads a certificate chain and its private key from PEM files into a
//! rustls `ServerConfig` (the aws-lc-rs provider, the one reqwest already links: no second
//! crypto library). The hub's connection server (`server.rs`) completes the handshakes, each in
//! its connection's task within [`HANDSHAKE_TIMEOUT`], so `Hub::serve_tls` serves exactly what
//! `Hub::serve` serves.
//!
//! Errors name the file and the problem, never its content (a key file is a secret).
//! Certificate reload is not supported: restart the hub to pick up a renewed certificate.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, crypto::aws_lc_rs};

/// A client must finish its handshake within this time, or the connection is dropped (the
/// default of `ServerLimits::tls_handshake_timeout`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS certificate or key could not be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The reason is in the message (not a `source`), so that one line says it all.
    #[error("cannot read the TLS {what} file {}: {cause}", path.display())]
    Read { what: &'static str, path: PathBuf, cause: io::Error },
    #[error("the TLS certificate file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("the TLS {what} file {} is not valid PEM ({problem})", path.display())]
    BadPem { what: &'static str, path: PathBuf, problem: &'static str },
    #[error("the TLS key file {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("the TLS key {} does not match the certificate {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("the TLS certificate {} and key {} cannot be used: {reason}", cert.display(), key.display())]
    Rejected { cert: PathBuf, key: PathBuf, reason: String },
}

/// The PEM files of a hub's HTTPS identity: the certificate chain (leaf first) and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads both files and checks that the key belongs to the leaf certificate.
    /// Offers HTTP/1.1 only (ALPN `http/1.1`).
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsConfigError> {
        let cert_pem = read(&self.cert, "certificate")?;
        let key_pem = read(&self.key, "key")?;
        let certs =
            CertificateDer::pem_slice_iter(&cert_pem).collect::<Result<Vec<_>, _>>().map_err(|e| bad_pem("certificate", &self.cert, &e))?;
        if certs.is_empty() {
            return Err(TlsConfigError::NoCertificate { path: self.cert.clone() });
        }
        let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
            Ok(k) => k,
            Err(rustls::pki_types::pem::Error::NoItemsFound) => return Err(TlsConfigError::NoKey { path: self.key.clone() }),
            Err(e) => return Err(bad_pem("key", &self.key, &e)),
        };
        let provider = Arc::new(aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| self.rejected(e.to_string()))?
            .with_no_client_auth();
        let mut config = builder.with_single_cert(certs, key).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsConfigError::KeyMismatch { cert: self.cert.clone(), key: self.key.clone() },
            other => self.rejected(other.to_string()),
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn rejected(&self, reason: String) -> TlsConfigError {
        TlsConfigError::Rejected { cert: self.cert.clone(), key: self.key.clone(), reason }
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|cause| TlsConfigError::Read { what, path: path.to_path_buf(), cause })
}

/// The kind of PEM problem only: the parser's own messages may quote the file's bytes.
fn bad_pem(what: &'static str, path: &Path, e: &rustls::pki_types::pem::Error) -> TlsConfigError {
    use rustls::pki_types::pem::Error as E;
    let problem = match e {
        E::MissingSectionEnd { .. } => "a section has no END line",
        E::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        E::Base64Decode(_) => "a section is not valid base64",
        E::Io(_) => "unreadable",
        E::NoItemsFound => "no PEM section",
        E::SectionTooLarge => "a section is too large",
        _ => "unrecognised content",
    };
    TlsConfigError::BadPem { what, path: path.to_path_buf(), problem }
}
