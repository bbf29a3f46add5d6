//! `edetail key`: publisher signing keys.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use edetail_bundle::SecretKey;

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a new ed25519 key pair: NAME.key (secret, mode 0600) and NAME.pub.
    New {
        /// Base name of the key files, e.g. `keys/acme-content-2026`.
        name: PathBuf,
    },
}

pub fn run(cmd: KeyCommand, out: &Output) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCommand::New { name } => {
            let secret_path = name.with_extension("key");
            let public_path = name.with_extension("pub");
            for p in [&secret_path, &public_path] {
                if p.exists() {
                    bail!("{} already exists; refusing to overwrite a key (choose another name)", p.display());
                }
            }
            let key = SecretKey::generate()?;
            write_new(&secret_path, key.to_file_text().as_bytes(), 0o600)?;
            write_new(&public_path, key.public().to_file_text().as_bytes(), 0o644)?;
            let key_id = key.public().key_id();
            out.emit(&serde_json::json!({"ok": true, "key_id": key_id, "secret_key": secret_path, "public_key": public_path}), || {
                format!(
                    "Created key {key_id}\n  secret: {} (keep it safe; never commit it)\n  public: {} (give it to devices and the hub)\n",
                    secret_path.display(),
                    public_path.display()
                )
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = o.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
