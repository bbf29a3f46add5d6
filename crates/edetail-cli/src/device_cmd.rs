//! `edetail device --data DIR ...`: inspect and maintain a rep's data directory, as support
//! staff and tests need (install, list, calls, events, pending, gc, sync).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use edetail_bundle::PublicKey;
use edetail_core::{Device, DeviceConfig};
use serde_json::json;

use crate::output::{Output, human_bytes};

#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// The data directory (created if missing).
    #[arg(long)]
    data: PathBuf,
    /// Rep id used for anything this command records.
    #[arg(long, default_value = "support")]
    rep: String,
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Install a bundle zip (verified; atomic).
    Install {
        bundle: PathBuf,
        /// Trusted publisher key(s).
        #[arg(long = "pubkey")]
        pubkeys: Vec<PathBuf>,
        /// Accept unsigned bundles (preview/testing only).
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Installed bundles with versions, validity and whether they can be opened now.
    List,
    /// Recorded calls.
    Calls,
    /// The event outbox in sequence order.
    Events {
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100_000)]
        limit: usize,
    },
    /// Events not yet acknowledged by the hub, and parked ones.
    Pending,
    /// Remove old versions and unreferenced blobs.
    Gc,
    /// One sync with a hub: upload pending events, then install offered content and apply
    /// revocations. Exit 1 with the classified reason (transient, network, permanent, auth) on
    /// failure.
    Sync {
        /// The hub's base URL, e.g. https://hub.example.com
        #[arg(long)]
        hub: String,
        /// The device token issued by `edetail hub device add`.
        #[arg(long)]
        token: String,
        /// The hub-issued device id the token belongs to (default: asked from the hub with the token).
        #[arg(long = "device-id")]
        device_id: Option<String>,
        /// Trusted publisher key(s): offered content signed by other keys is refused.
        #[arg(long = "pubkey")]
        pubkeys: Vec<PathBuf>,
    },
}

pub fn run(args: DeviceArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let keys = match &args.command {
        DeviceCommand::Install { pubkeys, .. } | DeviceCommand::Sync { pubkeys, .. } => {
            pubkeys.iter().map(|p| PublicKey::load(p)).collect::<Result<Vec<_>, _>>()?
        }
        _ => Vec::new(),
    };
    let allow_unsigned = matches!(args.command, DeviceCommand::Install { allow_unsigned: true, .. });
    if let DeviceCommand::Install { pubkeys, allow_unsigned: false, .. } = &args.command
        && pubkeys.is_empty()
    {
        anyhow::bail!("give the publisher's key with --pubkey K.pub (or --allow-unsigned for testing)");
    }
    let config = DeviceConfig { trusted_keys: keys, allow_unsigned, ..DeviceConfig::new(args.rep.clone()) };
    let device = Device::open(&args.data, config)?;
    match args.command {
        DeviceCommand::Install { bundle, .. } => {
            let o = device.install_zip(&bundle)?;
            out.emit(&json!({"ok": true, "install": o}), || {
                if o.activated {
                    format!(
                        "Installed {} v{}: {} new blobs ({}), {} shared with installed content\n",
                        o.bundle_id,
                        o.version,
                        o.blobs_written,
                        human_bytes(o.bytes_written),
                        o.blobs_reused
                    )
                } else {
                    format!("{} v{} is already installed and active\n", o.bundle_id, o.version)
                }
            });
        }
        DeviceCommand::List => {
            let list = device.content().list()?;
            let mut rows = Vec::new();
            for b in &list {
                let reason = device.unopenable_reason(&b.bundle_id)?;
                rows.push(json!({"bundle": b, "openable": reason.is_none(), "unopenable": reason}));
            }
            out.emit(&json!({"bundles": rows}), || {
                let mut s = String::new();
                for (b, r) in list.iter().zip(&rows) {
                    let state = match r["unopenable"].as_object() {
                        None => "openable".to_string(),
                        Some(_) => format!("NOT openable ({})", r["unopenable"]["reason"].as_str().unwrap_or("?")),
                    };
                    s.push_str(&format!(
                        "{} v{}{} \"{}\" valid {} .. {} {} {}\n",
                        b.bundle_id,
                        b.active_version,
                        b.previous_version.map(|p| format!(" (previous v{p})")).unwrap_or_default(),
                        b.title,
                        b.valid_from.format("%Y-%m-%d"),
                        b.valid_until.format("%Y-%m-%d"),
                        human_bytes(b.total_size),
                        state
                    ));
                }
                if s.is_empty() {
                    s.push_str("no bundles installed\n");
                }
                s
            });
        }
        DeviceCommand::Calls => {
            let calls = device.calls().list()?;
            out.emit(&json!({"calls": calls}), || {
                calls
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {} {} {} hcp={} bundle={}\n",
                            c.started_at.format("%Y-%m-%d %H:%M:%S"),
                            c.id,
                            c.channel,
                            c.status,
                            c.hcp_id.as_deref().unwrap_or("-"),
                            c.bundle_id.as_deref().unwrap_or("-")
                        )
                    })
                    .collect()
            });
        }
        DeviceCommand::Events { after, limit } => {
            let events = device.outbox().all(after, limit)?;
            out.emit(&json!({"events": events}), || {
                events
                    .iter()
                    .map(|e| {
                        let state = if e.parked_reason.is_some() {
                            "parked"
                        } else if e.acked_at.is_some() {
                            "acked"
                        } else {
                            "pending"
                        };
                        format!("{:>8} {} {:<20} {:<8} {}\n", e.seq, e.recorded_at.format("%H:%M:%S%.3f"), e.kind, state, e.payload)
                    })
                    .collect()
            });
        }
        DeviceCommand::Pending => {
            let stats = device.outbox().stats()?;
            let parked = device.outbox().parked()?;
            out.emit(&json!({"stats": stats, "parked": parked}), || {
                let mut s = format!(
                    "{} events: {} pending upload, {} acknowledged, {} parked (last seq {})\n",
                    stats.total, stats.pending, stats.acked, stats.parked, stats.last_seq
                );
                for e in &parked {
                    s.push_str(&format!("  parked #{} {}: {}\n", e.seq, e.kind, e.parked_reason.as_deref().unwrap_or("")));
                }
                s
            });
        }
        DeviceCommand::Gc => {
            let r = device.content().gc()?;
            out.emit(&json!({"ok": true, "gc": r}), || {
                format!("Removed {} versions and {} blobs, freed {}\n", r.versions_removed, r.blobs_removed, human_bytes(r.bytes_freed))
            });
        }
        DeviceCommand::Sync { hub, token, device_id, .. } => return run_sync(Arc::new(device), hub, token, device_id, out),
    }
    Ok(ExitCode::SUCCESS)
}

/// `edetail device sync`: one sync, a summary, exit 1 with the classified reason on failure.
fn run_sync(device: Arc<Device>, hub: String, token: String, device_id: Option<String>, out: &Output) -> anyhow::Result<ExitCode> {
    use edetail_sync::{StaticToken, SyncConfig, SyncEngine};
    let tokens = Arc::new(StaticToken(token));
    // Asking is one request, and always right for this token (a stored id may be another's).
    let device_id = match device_id {
        Some(id) => id,
        None => SyncEngine::identify(&hub, tokens.clone()).context("asking the hub which device this token belongs to")?.device_id,
    };
    let config = SyncConfig::new(hub, device_id, tokens);
    let engine = SyncEngine::new(device, config)?;
    match engine.sync_now() {
        Ok(r) => {
            out.emit(&json!({"ok": true, "sync": r}), || {
                let mut s = format!(
                    "Uploaded {} events in {} batches ({} already on the hub, {} parked)\n",
                    r.events_accepted, r.batches, r.events_duplicates, r.events_parked
                );
                s.push_str(&format!(
                    "Downloaded {} blobs ({}, {} resumed) over {} change pages\n",
                    r.blobs_downloaded,
                    human_bytes(r.bytes_downloaded),
                    r.blobs_resumed,
                    r.pages
                ));
                for b in &r.bundles_activated {
                    s.push_str(&format!("  activated {b}\n"));
                }
                for b in &r.bundles_rejected {
                    s.push_str(&format!("  REFUSED {b} (signature or validation; see --pubkey)\n"));
                }
                if r.revocations > 0 {
                    s.push_str(&format!("  applied {} revocations\n", r.revocations));
                }
                s
            });
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let class = e.class().map(|c| c.to_string()).unwrap_or_else(|| "local".to_string());
            if out.json {
                println!("{}", serde_json::to_string_pretty(&json!({"ok": false, "class": class, "error": e.to_string()}))?);
            } else {
                match e.class() {
                    Some(_) => eprintln!("{e}"),
                    None => eprintln!("sync failed ({class}): {e}"),
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}
