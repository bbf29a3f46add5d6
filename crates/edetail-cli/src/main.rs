//! `edetail`: the command-line tool content teams use to create, check, pack, sign, verify,
//! inspect and import presentation bundles.
//!
//! Human output by default, `--json` for machines; exit status 0 only on success, 1 when a bundle
//! is rejected or a command fails, 2 on bad usage.

mod bundle_cmd;
mod device_cmd;
mod hub_cmd;
mod import_cmd;
mod key_cmd;
mod output;
mod preview;
mod publish_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: analysis reads, folds and rewrites every batch's
/// HCP documents, and glibc's malloc spent more time than the hub's own code doing so
/// (docs/adr/0020-hub-allocator.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "edetail", version, about = "Build, check, sign and import e-detailing presentation bundles")]
struct Cli {
    /// Machine-readable JSON on stdout instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, check, pack, sign, verify and inspect bundles.
    #[command(subcommand)]
    Bundle(bundle_cmd::BundleCommand),
    /// Manage publisher signing keys.
    #[command(subcommand)]
    Key(key_cmd::KeyCommand),
    /// Convert content made for other CLM systems into an edetail bundle.
    #[command(subcommand)]
    Import(import_cmd::ImportCommand),
    /// Inspect and maintain a device data directory (support staff, tests).
    Device(device_cmd::DeviceArgs),
    /// Preview a bundle in a browser: a local shell that records like a device does.
    Preview(preview::PreviewArgs),
    /// Run and administer a hub (serve, devices, publishers, stats).
    #[command(subcommand)]
    Hub(hub_cmd::HubCommand),
    /// Upload a signed bundle to a hub.
    Publish(publish_cmd::PublishArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = output::Output::new(cli.json);
    let result = match cli.command {
        Command::Bundle(c) => bundle_cmd::run(c, &out),
        Command::Key(c) => key_cmd::run(c, &out),
        Command::Import(c) => import_cmd::run(c, &out),
        Command::Device(a) => device_cmd::run(a, &out),
        Command::Preview(a) => preview::run(a, &out),
        Command::Hub(c) => hub_cmd::run(c, &out),
        Command::Publish(a) => publish_cmd::run(a, &out),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            out.error(&e);
            ExitCode::from(1)
        }
    }
}
