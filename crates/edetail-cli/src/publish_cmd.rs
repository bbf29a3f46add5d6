//! `edetail publish`: upload a signed bundle zip to a hub (`POST /v1/publish`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use edetail_protocol::{ErrorBody, PublishResult};

use crate::output::Output;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The signed bundle zip.
    bundle: PathBuf,
    /// Hub base URL, e.g. http://127.0.0.1:8787
    #[arg(long)]
    hub: String,
    /// Publisher token (`edetail hub publisher add`).
    #[arg(long)]
    token: String,
    /// Territories to offer the bundle to; none means every territory.
    #[arg(long = "territory")]
    territories: Vec<String>,
}

pub fn run(args: PublishArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let zip = std::fs::read(&args.bundle).with_context(|| format!("reading {}", args.bundle.display()))?;
    let query: Vec<String> = args.territories.iter().map(|t| format!("territory={}", percent_encode(t))).collect();
    let url = format!("{}/v1/publish{}{}", args.hub.trim_end_matches('/'), if query.is_empty() { "" } else { "?" }, query.join("&"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    let result: PublishResult = runtime.block_on(async {
        let resp = reqwest::Client::new()
            .post(&url)
            .bearer_auth(&args.token)
            .header("content-type", "application/zip")
            .body(zip)
            .send()
            .await
            .with_context(|| format!("sending to {url}"))?;
        let status = resp.status();
        if status.is_success() {
            return resp.json::<PublishResult>().await.context("reading the hub's answer");
        }
        let text = resp.text().await.unwrap_or_default();
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(e) => bail!("hub refused the bundle ({status}): {}", e.message),
            Err(_) => bail!("hub answered {status}"),
        }
    })?;
    out.emit(&result, || {
        format!(
            "published {} version {} ({} new blobs, {} already stored) to {}\n",
            result.bundle_id,
            result.version,
            result.blobs_new,
            result.blobs_existing,
            result.territories.join(", ")
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a query value (everything but unreserved characters).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
