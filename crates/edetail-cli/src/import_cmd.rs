//! `edetail import`: Veeva CLM, Agnitio and IQVIA OCE content to edetail bundles.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use edetail_bundle::import::agnitio::{AgnitioOptions, import_agnitio};
use edetail_bundle::import::oce::{OceOptions, import_oce};
use edetail_bundle::import::veeva::{VeevaOptions, import_veeva};
use edetail_bundle::import::{ImportMeta, ImportReport};

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Veeva CLM: one zip per key message (legacy or Vault layout) plus shared-resource zips.
    Veeva {
        /// Key-message zips, shared-resource zips, or folders holding them.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        /// Veeva multichannel loader CSV giving order and metadata.
        #[arg(long)]
        loader_csv: Option<PathBuf>,
        /// Veeva .ctl control files (credentials in them are ignored).
        #[arg(long = "ctl")]
        ctl_files: Vec<PathBuf>,
        #[command(flatten)]
        meta: MetaArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Agnitio: a presentation folder (or zip) with presentation.json (classic framework or
    /// Accelerator layout).
    Agnitio {
        input: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        meta: MetaArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// IQVIA OCE (CLMPlayer): a presentation folder (or zip) with one folder or zip per sequence.
    Oce {
        input: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        meta: MetaArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
}

/// What to print besides the summary.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Print the compatibility report: every vendor call found in the deck's scripts (file,
    /// count) and whether edetail handles it. `--json` always includes it.
    #[arg(long)]
    report: bool,
}

/// Bundle metadata; each flag overrides what the source says.
#[derive(Debug, Args)]
pub struct MetaArgs {
    #[arg(long)]
    id: Option<String>,
    #[arg(long)]
    version: Option<u64>,
    #[arg(long)]
    version_label: Option<String>,
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    product: Option<String>,
    #[arg(long)]
    locale: Option<String>,
    /// First day of use: YYYY-MM-DD (start of that day, UTC) or an RFC 3339 time.
    #[arg(long, value_parser = parse_from)]
    valid_from: Option<DateTime<Utc>>,
    /// Last day of use: YYYY-MM-DD (content expires at the end of that day, UTC) or an RFC 3339
    /// time (the exact expiry instant).
    #[arg(long, value_parser = parse_until)]
    valid_until: Option<DateTime<Utc>>,
    /// The MLR approval id of this material.
    #[arg(long)]
    approval_code: Option<String>,
}

/// Parses an RFC 3339 time, or a date plus `days_after` days at 00:00 UTC.
fn parse_time(s: &str, days_after: u64) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.checked_add_days(chrono::Days::new(days_after)))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{s:?} is not a date (YYYY-MM-DD) or RFC 3339 time"))
}

fn parse_from(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time(s, 0)
}

/// A date means "through the end of that day", the same rule the importers apply to dates
/// found in source metadata.
fn parse_until(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time(s, 1)
}

impl From<MetaArgs> for ImportMeta {
    fn from(a: MetaArgs) -> Self {
        ImportMeta {
            id: a.id,
            version: a.version,
            version_label: a.version_label,
            title: a.title,
            product: a.product,
            locale: a.locale,
            valid_from: a.valid_from,
            valid_until: a.valid_until,
            approval_code: a.approval_code,
        }
    }
}

pub fn run(cmd: ImportCommand, out: &Output) -> anyhow::Result<ExitCode> {
    let pb = out.spinner("importing");
    let mut progress = |n: u64| pb.set_position(n);
    let (report, show): (ImportReport, ReportArgs) = match cmd {
        ImportCommand::Veeva { inputs, output, loader_csv, ctl_files, meta, report } => {
            let opts = VeevaOptions { meta: meta.into(), loader_csv, ctl_files };
            (import_veeva(&inputs, &opts, &output, &mut progress)?, report)
        }
        ImportCommand::Agnitio { input, output, meta, report } => {
            let opts = AgnitioOptions { meta: meta.into() };
            (import_agnitio(&input, &opts, &output, &mut progress)?, report)
        }
        ImportCommand::Oce { input, output, meta, report } => {
            let opts = OceOptions { meta: meta.into() };
            (import_oce(&input, &opts, &output, &mut progress)?, report)
        }
    };
    pb.finish_and_clear();
    out.emit(&serde_json::json!({"ok": true, "report": report}), || {
        let mut s = report.summary();
        let unsupported = report.compat.unsupported().count();
        if show.report {
            s.push_str(&report.compat.summary());
        } else if unsupported > 0 {
            s.push_str(&format!(
                "{unsupported} kind(s) of vendor call are not supported by edetail (recorded as unsupported_api); see --report\n"
            ));
        }
        s
    });
    Ok(ExitCode::SUCCESS)
}
