//! `edetail hub`: run a hub (`serve`) and administer its data directory (`device add`,
//! `publisher add`, `stats`). Tokens are printed once and stored hashed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use edetail_bundle::PublicKey;
use edetail_hub::{Hub, HubConfig};

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Serve the /v1 sync and publishing API until Ctrl-C or SIGTERM.
    Serve {
        /// Hub data directory (created when missing).
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on; port 0 picks a free port (printed on the first line).
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        /// Publisher public key(s) whose signatures the hub accepts when publishing.
        #[arg(long = "publisher-key")]
        publisher_keys: Vec<PathBuf>,
        /// Allow listening on a non-loopback address (put TLS in front of it).
        #[arg(long)]
        allow_remote: bool,
    },
    /// Manage devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Manage publishers.
    #[command(subcommand)]
    Publisher(PublisherCommand),
    /// Devices, last sync, events received, duplicates absorbed, rejected, watermarks.
    Stats {
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register a device for a rep and territory; prints its id and token (shown once).
    Add {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        rep: String,
        #[arg(long)]
        territory: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PublisherCommand {
    /// Register a publisher; prints its token (shown once).
    Add {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        name: String,
    },
}

fn open(data: PathBuf, publisher_keys: Vec<PublicKey>) -> anyhow::Result<Hub> {
    let shown = data.display().to_string();
    Hub::open(HubConfig { data_dir: data, publisher_keys }).with_context(|| format!("opening hub data directory {shown}"))
}

pub fn run(cmd: HubCommand, out: &Output) -> anyhow::Result<ExitCode> {
    match cmd {
        HubCommand::Serve { data, listen, publisher_keys, allow_remote } => {
            if !listen.ip().is_loopback() && !allow_remote {
                bail!("refusing to listen on non-loopback address {listen} without --allow-remote");
            }
            let keys = publisher_keys
                .iter()
                .map(|p| PublicKey::load(p).with_context(|| format!("loading publisher key {}", p.display())))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if keys.is_empty() {
                eprintln!("warning: no --publisher-key given: every publish will be refused");
            }
            let hub = open(data, keys)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
                let addr = listener.local_addr()?;
                println!("hub: http://{addr}/");
                std::io::stdout().flush()?;
                hub.serve(listener, crate::output::shutdown_signal()).await?;
                eprintln!("hub: stopped");
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Device(DeviceCommand::Add { data, rep, territory }) => {
            let creds = open(data, vec![])?.add_device(&rep, &territory)?;
            out.emit(&creds, || format!("device: {}\ntoken: {}\n", creds.device_id, creds.token));
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Publisher(PublisherCommand::Add { data, name }) => {
            let token = open(data, vec![])?.add_publisher(&name)?;
            out.emit(&serde_json::json!({"name": name, "token": token}), || format!("{token}\n"));
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Stats { data } => {
            let stats = open(data, vec![])?.stats()?;
            out.emit(&stats, || {
                let mut s = format!(
                    "events received {}, duplicates absorbed {}, rejected {}\nbundles {} ({} versions), revocations {}, publishers {}\n",
                    stats.events_received,
                    stats.duplicates_absorbed,
                    stats.rejected,
                    stats.bundles,
                    stats.bundle_versions,
                    stats.revocations,
                    stats.publishers
                );
                for d in &stats.devices {
                    s.push_str(&format!(
                        "{}  rep {}  territory {}  last seen {}  watermark {}  skew {} ms  received {}  duplicates {}  rejected {}\n",
                        d.device_id,
                        d.rep_id,
                        d.territory,
                        d.last_seen_at.as_deref().unwrap_or("never"),
                        d.watermark,
                        d.skew_ms,
                        d.events_received,
                        d.duplicates_absorbed,
                        d.rejected
                    ));
                }
                s
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

