//! The hub's configuration: where it keeps its state, whose signatures it trusts, and the
//! files it creates for itself at the first start (the private data directory, the plan key).

use std::path::{Path, PathBuf};

use edetail_bundle::{PublicKey, SecretKey};

use crate::client;
use crate::error::{Error, Result};
use crate::server::ServerLimits;

/// Where the hub keeps its state and whose signatures it trusts.
#[derive(Debug, Clone, Default)]
pub struct HubConfig {
    /// Holds `hub.sqlite3` (the default store), `blobs/` (the default blob store) and `tmp/`
    /// (staging, always local); created when missing.
    pub data_dir: PathBuf,
    /// Bundles must be signed by one of these keys to be published. Empty: nothing can be published.
    pub publisher_keys: Vec<PublicKey>,
    /// `postgres://…` to keep metadata and events in PostgreSQL instead of `DATA/hub.sqlite3`.
    pub database: Option<String>,
    /// `s3://BUCKET[/PREFIX]?endpoint=…` (or `file:DIR`) to keep blobs elsewhere than `DATA/blobs`.
    pub blob_store: Option<String>,
    /// The key that signs plans (and derives microsite links). Default `DATA/plan.key`, created
    /// on first start; hub processes sharing one database must share this file.
    pub plan_key: Option<PathBuf>,
    /// Adoption-stage rules (JSON, `analytics::StageRules`); the built-in rules when absent.
    pub stage_rules: Option<PathBuf>,
    /// Connection timeouts and bounds when serving (`Hub::set_server_limits` changes them later).
    pub server_limits: ServerLimits,
    /// Reverse proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` the hub believes (`client`).
    pub trusted_proxies: Vec<client::TrustedProxy>,
}

/// File name of the plan key inside the data directory (its public half: `plan.pub`).
pub const PLAN_KEY_FILE: &str = "plan.key";

impl HubConfig {
    /// The zero-setup configuration: SQLite and blobs under `data_dir`.
    pub fn local(data_dir: impl Into<PathBuf>, publisher_keys: Vec<PublicKey>) -> HubConfig {
        HubConfig { data_dir: data_dir.into(), publisher_keys, ..HubConfig::default() }
    }
}

/// Loads the plan key, creating it (and `plan.pub` beside it) when missing.
pub(crate) fn load_or_create_plan_key(path: &std::path::Path) -> Result<SecretKey> {
    if path.exists() {
        return SecretKey::load(path).map_err(|e| Error::BadRequest(format!("plan key: {e}")));
    }
    let key = SecretKey::generate().map_err(|e| Error::Internal(format!("generating the plan key: {e}")))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(Error::io(path))?;
    std::io::Write::write_all(&mut f, key.to_file_text().as_bytes()).map_err(Error::io(path))?;
    f.sync_all().map_err(Error::io(path))?;
    let public = path.with_extension("pub");
    std::fs::write(&public, key.public().to_file_text()).map_err(Error::io(&public))?;
    Ok(key)
}

/// Creates a directory (and missing parents) accessible to its owner only (0700): the data
/// directory holds the database, the plan key and staged uploads. A directory that exists
/// keeps its mode.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(Error::io(dir))
}
