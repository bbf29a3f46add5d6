//! `edetail hub`: run a hub (`serve`) and administer its store (`device add|rotate|revoke`,
//! `publisher add|rotate|revoke`, `operator add|rotate|revoke`, `audit`, `territory set|list`,
//! `stats`). Admin commands are audited as `cli:<os user>`. Every subcommand takes the same storage options: `--data DIR`
//! alone is the zero-setup SQLite hub; `--database postgres://…` and `--blob-store s3://…` point
//! at shared storage. Tokens are printed once and stored hashed.
//!
//! `serve` speaks HTTPS with `--tls-cert/--tls-key`; plain HTTP only on a loopback address
//! unless `--allow-insecure-http` says otherwise (a TLS-terminating proxy in front).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use edetail_bundle::PublicKey;
use edetail_hub::store::TokenRole;
use edetail_hub::tls::TlsFiles;
use edetail_hub::{Hub, HubConfig};

use crate::output::Output;

/// Where a hub keeps its state.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Hub data directory (created when missing): the SQLite database and blobs by default,
    /// and always the local staging area.
    #[arg(long)]
    data: PathBuf,
    /// Keep metadata and events in PostgreSQL (postgres://user@host:port/db) instead of
    /// DATA/hub.sqlite3; several hub processes may share it.
    #[arg(long, env = "EDETAIL_HUB_DATABASE")]
    database: Option<String>,
    /// Keep blobs in S3-compatible storage (s3://BUCKET[/PREFIX]?endpoint=URL&region=R&allow_http=true,
    /// credentials from AWS_* variables) instead of DATA/blobs.
    #[arg(long, env = "EDETAIL_HUB_BLOB_STORE")]
    blob_store: Option<String>,
    /// The key that signs per-HCP plans and derives microsite links (default DATA/plan.key,
    /// created on first use; hub processes sharing a database must share it).
    #[arg(long, env = "EDETAIL_HUB_PLAN_KEY")]
    plan_key: Option<PathBuf>,
    /// The respond policy as JSON: adoption-stage rules, inactivity fallback, plan size and the
    /// holdout experiment (docs/analytics.md); the built-in policy when absent. Hub processes
    /// sharing a database must share it (the experiment's seed decides who is held out).
    #[arg(long)]
    stage_rules: Option<PathBuf>,
}

/// `hub serve`'s connection timeouts and bounds (`edetail_hub::ServerLimits`; defaults there).
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Seconds a client has to send a request's head (request line and headers), counted from
    /// when the hub starts waiting for it: the connection's start, or the end of the previous
    /// response on a kept-alive connection (so it also closes one left unused this long).
    #[arg(long, value_name = "SECS")]
    header_timeout: Option<u64>,
    /// Seconds without a request in progress and without a byte moving either way (e.g. a client
    /// that stopped reading a response) before a connection closes.
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Seconds a TLS client has to complete its handshake.
    #[arg(long, value_name = "SECS")]
    tls_handshake_timeout: Option<u64>,
    /// Seconds a request body has to arrive completely after its request's head (else 408);
    /// every request but publish uploads (/v1/publish), which have only --body-stall-timeout.
    #[arg(long, value_name = "SECS")]
    body_timeout: Option<u64>,
    /// Seconds any request body (publish uploads too) may go without progress (else 408).
    #[arg(long, value_name = "SECS")]
    body_stall_timeout: Option<u64>,
    /// Most connections open at once; more are closed on accept.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Most connections open at once from one peer address; more are closed on accept. This is
    /// the TCP peer even with --trusted-proxy: behind a reverse proxy every connection is the
    /// proxy's, so set 0 there (no per-address cap).
    #[arg(long, value_name = "N")]
    max_connections_per_ip: Option<usize>,
}

impl LimitArgs {
    fn apply(&self, mut l: edetail_hub::ServerLimits) -> edetail_hub::ServerLimits {
        let secs = std::time::Duration::from_secs;
        l.header_read_timeout = self.header_timeout.map_or(l.header_read_timeout, secs);
        l.idle_timeout = self.idle_timeout.map_or(l.idle_timeout, secs);
        l.tls_handshake_timeout = self.tls_handshake_timeout.map_or(l.tls_handshake_timeout, secs);
        l.body_timeout = self.body_timeout.map_or(l.body_timeout, secs);
        l.body_stall_timeout = self.body_stall_timeout.map_or(l.body_stall_timeout, secs);
        l.max_connections = self.max_connections.unwrap_or(l.max_connections);
        l.max_connections_per_ip = self.max_connections_per_ip.unwrap_or(l.max_connections_per_ip);
        l
    }
}

/// Installs `hub serve`'s log: stderr, `text` or `json`, level from `EDETAIL_LOG` (default info).
/// Every line of a request carries its `request_id` (the `request` span).
fn init_log(format: &str) -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    let spec = std::env::var("EDETAIL_LOG").unwrap_or_default();
    let filter: tracing_subscriber::filter::Targets = if spec.trim().is_empty() {
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
    } else {
        spec.parse().with_context(|| format!("EDETAIL_LOG={spec:?}: expected a level (info) or directives (warn,edetail_hub=debug)"))?
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if format == "json" {
        registry
            .with(tracing_subscriber::fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(std::io::stderr))
            .try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).try_init()
    };
    result.context("installing the log")
}

// Parsed once per process: the size of `Serve`'s many flags costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Serve the /v1 sync and publishing API until Ctrl-C or SIGTERM.
    Serve {
        #[command(flatten)]
        storage: StorageArgs,
        /// Address to listen on; port 0 picks a free port (printed on the first line).
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        /// Publisher public key(s) whose signatures the hub accepts when publishing.
        #[arg(long = "publisher-key")]
        publisher_keys: Vec<PathBuf>,
        /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
        #[arg(long, requires = "tls_key", value_name = "CERT.pem")]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert.
        #[arg(long, requires = "tls_cert", value_name = "KEY.pem")]
        tls_key: Option<PathBuf>,
        /// Allow plain HTTP on a non-loopback address (only behind a TLS-terminating proxy
        /// on a trusted network: tokens and HCP data cross it).
        #[arg(long, conflicts_with = "tls_cert")]
        allow_insecure_http: bool,
        /// No longer enough for plain HTTP on a non-loopback address (see
        /// --allow-insecure-http); kept so old scripts get a clear message.
        #[arg(long, hide = true)]
        allow_remote: bool,
        #[command(flatten)]
        limits: LimitArgs,
        /// Log format on stderr: `text` (human-readable) or `json` (one object per line).
        /// The level comes from EDETAIL_LOG (`info` by default; e.g. `debug`, `warn,edetail_hub=debug`).
        #[arg(long, value_parser = ["text", "json"], default_value = "text")]
        log_format: String,
        /// A reverse proxy (IP or CIDR network; repeatable) whose X-Forwarded-For names the
        /// client (the right-most address that is no trusted proxy) for the per-address
        /// bad-credential brake and login and microsite-visit rate limits (not the connection
        /// caps), and whose X-Forwarded-Proto: https makes the dashboard session cookie Secure.
        /// Other peers' forwarded headers are ignored.
        #[arg(long = "trusted-proxy", value_name = "IP|CIDR")]
        trusted_proxies: Vec<edetail_hub::client::TrustedProxy>,
        /// Delete raw events this many days after they were recorded, once their calls are
        /// analysed (checked at start and hourly; audited; at least 1). Default: keep all.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
        prune_events_after_days: Option<u32>,
    },
    /// Manage devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Manage publishers.
    #[command(subcommand)]
    Publisher(PublisherCommand),
    /// Manage operators (dashboard access).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// The audit trail: publishing, revocations, token changes, consent changes and erasures.
    Audit {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Manage territories and the products they sell.
    #[command(subcommand)]
    Territory(TerritoryCommand),
    /// Devices, last sync, events received, duplicates absorbed, rejected, watermarks.
    Stats {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Analyse every finished call waiting in the queue now (a serving hub does it in the
    /// background): profiles, stages, deck statistics, plans, microsites.
    Analyze {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Print the public key devices must trust for this hub's plans (a publisher-key file).
    PlanKey {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Import HCP segments (CSV with header hcp_id,segment): deck statistics split by segment.
    Hcps {
        #[command(flatten)]
        storage: StorageArgs,
        /// The CSV file.
        csv: PathBuf,
    },
    /// Import target lists (CSV with header rep_id,hcp_id): each rep listed gets exactly these
    /// HCPs (reps not in the file keep theirs); her devices then receive plans only for her
    /// targets and the HCPs she has called on. Newly assigned HCPs' plans are sent again.
    Targets {
        #[command(flatten)]
        storage: StorageArgs,
        csv: PathBuf,
    },
    /// Delete raw events recorded more than DAYS ago whose calls are analysed, device by
    /// device as a prefix of its events (an event not analysed yet, and every later one of its
    /// device, stays). Audited; `hub stats` shows the counts. The analysis documents, plans and
    /// dashboard figures are kept. A re-sent pruned event is acknowledged, never stored again.
    PruneEvents {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
        older_than_days: u32,
    },
    /// Import prescriptions (CSV with header hcp_id,product,period,count; period YYYY-MM),
    /// shown beside engagement on the dashboard.
    Prescriptions {
        #[command(flatten)]
        storage: StorageArgs,
        csv: PathBuf,
    },
    /// An HCP's follow-up microsites with their links (to send through an approved channel).
    Microsites {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        hcp: String,
        /// The hub's public base URL for the links.
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        base_url: String,
    },
    /// HCP data protection: right to erasure.
    #[command(subcommand)]
    Hcp(HcpCommand),
    /// HCP tracking consent (full, anonymous, off).
    #[command(subcommand)]
    Consent(ConsentCommand),
}

#[derive(Debug, Subcommand)]
pub enum HcpCommand {
    /// Erase an HCP: their calls' events, microsite visits, analysis, plans, microsites,
    /// segment and prescriptions leave the hub, and every device deletes what it holds about
    /// them at its next sync. Audited; idempotent.
    Erase {
        #[command(flatten)]
        storage: StorageArgs,
        /// Who asks (recorded in the audit entry).
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
        hcp_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Set an HCP's tracking: full (as recorded), anonymous (no HCP id leaves the device) or
    /// off (nothing recorded; content still displays). Without a record devices use full.
    Set {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
        hcp_id: String,
        #[arg(value_parser = ["full", "anonymous", "off"])]
        tracking: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TerritoryCommand {
    /// Create or update a territory with exactly these products (none: every product). Bundles
    /// published without explicit territories go to the territories listing their product.
    Set {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        name: String,
        /// A product this territory sells (repeat for several).
        #[arg(long = "product")]
        products: Vec<String>,
    },
    /// Territories, their products and device counts.
    List {
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register a device for a rep and territory; prints its id and token (shown once).
    Add {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        rep: String,
        #[arg(long)]
        territory: String,
        /// Days until the token expires.
        #[arg(long, default_value_t = edetail_hub::store::DEFAULT_DEVICE_TOKEN_DAYS)]
        token_days: i64,
    },
    /// Issue a new token for the same device (shown once); the old one keeps working for the
    /// grace period so a tablet's queued uploads still go through.
    Rotate {
        #[command(flatten)]
        storage: StorageArgs,
        device_id: String,
        /// Hours the old token keeps working.
        #[arg(long, default_value_t = 24)]
        grace_hours: i64,
        /// Days until the new token expires.
        #[arg(long, default_value_t = edetail_hub::store::DEFAULT_DEVICE_TOKEN_DAYS)]
        token_days: i64,
    },
    /// Revoke every token of a device (its next request answers 401).
    Revoke {
        #[command(flatten)]
        storage: StorageArgs,
        device_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Register an operator (dashboard access); prints its token (shown once).
    Add {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        name: String,
        /// Days until the token expires.
        #[arg(long, default_value_t = edetail_hub::store::DEFAULT_OPERATOR_TOKEN_DAYS)]
        token_days: i64,
    },
    /// Issue a new token for an operator (shown once); the old one works for the grace period.
    Rotate {
        #[command(flatten)]
        storage: StorageArgs,
        name: String,
        #[arg(long, default_value_t = 0)]
        grace_hours: i64,
        #[arg(long, default_value_t = edetail_hub::store::DEFAULT_OPERATOR_TOKEN_DAYS)]
        token_days: i64,
    },
    /// Revoke every token and dashboard session of an operator.
    Revoke {
        #[command(flatten)]
        storage: StorageArgs,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PublisherCommand {
    /// Register a publisher; prints its token (shown once).
    Add {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        name: String,
    },
    /// Issue a new token for a publisher (shown once); the old one works for the grace period.
    Rotate {
        #[command(flatten)]
        storage: StorageArgs,
        name: String,
        #[arg(long, default_value_t = 24)]
        grace_hours: i64,
        #[arg(long, default_value_t = edetail_hub::store::DEFAULT_PUBLISHER_TOKEN_DAYS)]
        token_days: i64,
    },
    /// Revoke every token of a publisher.
    Revoke {
        #[command(flatten)]
        storage: StorageArgs,
        name: String,
    },
}

fn rotate(
    storage: StorageArgs,
    role: TokenRole,
    subject: &str,
    grace_hours: i64,
    token_days: i64,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    if !(0..=720).contains(&grace_hours) {
        bail!("--grace-hours must be between 0 and 720");
    }
    let hub = open(storage, vec![])?;
    let token = hub.rotate_token(role, subject, chrono::Duration::hours(grace_hours), token_days, &edetail_hub::cli_actor())?;
    out.emit(&serde_json::json!({"role": role, "subject": subject, "token": token, "old_tokens_valid_hours": grace_hours}), || {
        format!("{token}\n")
    });
    Ok(ExitCode::SUCCESS)
}

fn revoke(storage: StorageArgs, role: TokenRole, subject: &str, out: &Output) -> anyhow::Result<ExitCode> {
    let n = open(storage, vec![])?.revoke_tokens(role, subject, &edetail_hub::cli_actor())?;
    out.emit(&serde_json::json!({"role": role, "subject": subject, "revoked": n}), || {
        format!("{} {subject}: {n} token(s) revoked\n", role.as_str())
    });
    Ok(ExitCode::SUCCESS)
}

fn open(storage: StorageArgs, publisher_keys: Vec<PublicKey>) -> anyhow::Result<Hub> {
    let shown = match (&storage.database, &storage.blob_store) {
        (None, None) => format!("hub data directory {}", storage.data.display()),
        // Never the URLs themselves: they may carry passwords.
        _ => format!("hub storage (data directory {}, --database/--blob-store as given)", storage.data.display()),
    };
    let config = HubConfig {
        data_dir: storage.data,
        publisher_keys,
        database: storage.database,
        blob_store: storage.blob_store,
        plan_key: storage.plan_key,
        stage_rules: storage.stage_rules,
        server_limits: edetail_hub::ServerLimits::default(),
        trusted_proxies: Vec::new(),
    };
    Hub::open(config).with_context(|| format!("opening {shown}"))
}

pub fn run(cmd: HubCommand, out: &Output) -> anyhow::Result<ExitCode> {
    match cmd {
        HubCommand::Serve {
            storage,
            listen,
            publisher_keys,
            tls_cert,
            tls_key,
            allow_insecure_http,
            allow_remote,
            limits,
            log_format,
            trusted_proxies,
            prune_events_after_days,
        } => {
            init_log(&log_format)?;
            let tls_files = tls_cert.zip(tls_key).map(|(cert, key)| TlsFiles { cert, key });
            check_listen_policy(listen, tls_files.is_some(), allow_insecure_http, allow_remote)?;
            // Before opening storage: a bad certificate or key fails fast, naming the file.
            let tls = tls_files.as_ref().map(TlsFiles::load).transpose()?;
            let keys = publisher_keys
                .iter()
                .map(|p| PublicKey::load(p).with_context(|| format!("loading publisher key {}", p.display())))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if keys.is_empty() {
                eprintln!("warning: no --publisher-key given: every publish will be refused");
            }
            let hub = open(storage, keys)?;
            hub.set_server_limits(limits.apply(hub.server_limits())).context("connection limits")?;
            // Dashboard session cookies are marked Secure when the hub itself speaks HTTPS.
            hub.set_secure_cookies(tls.is_some());
            hub.set_trusted_proxies(trusted_proxies);
            hub.set_event_retention(prune_events_after_days.map(|d| chrono::TimeDelta::days(d.into()))).context("event retention")?;
            eprintln!("storage: {} metadata, blobs in {}", hub.stats()?.store, hub.blob_store_description());
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
                let addr = listener.local_addr()?;
                let scheme = if tls.is_some() { "https" } else { "http" };
                println!("hub: {scheme}://{addr}/");
                std::io::stdout().flush()?;
                match tls {
                    Some(config) => hub.serve_tls(listener, config, crate::output::shutdown_signal()).await?,
                    None => hub.serve(listener, crate::output::shutdown_signal()).await?,
                }
                eprintln!("hub: stopped");
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Device(DeviceCommand::Add { storage, rep, territory, token_days }) => {
            let creds = open(storage, vec![])?.add_device_with(&rep, &territory, token_days, &edetail_hub::cli_actor())?;
            out.emit(&creds, || format!("device: {}\ntoken: {}\n", creds.device_id, creds.token));
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Publisher(PublisherCommand::Add { storage, name }) => {
            let token = open(storage, vec![])?.add_publisher(&name)?;
            out.emit(&serde_json::json!({"name": name, "token": token}), || format!("{token}\n"));
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Device(DeviceCommand::Rotate { storage, device_id, grace_hours, token_days }) => {
            rotate(storage, TokenRole::Device, &device_id, grace_hours, token_days, out)
        }
        HubCommand::Device(DeviceCommand::Revoke { storage, device_id }) => revoke(storage, TokenRole::Device, &device_id, out),
        HubCommand::Publisher(PublisherCommand::Rotate { storage, name, grace_hours, token_days }) => {
            rotate(storage, TokenRole::Publisher, &name, grace_hours, token_days, out)
        }
        HubCommand::Publisher(PublisherCommand::Revoke { storage, name }) => revoke(storage, TokenRole::Publisher, &name, out),
        HubCommand::Operator(OperatorCommand::Add { storage, name, token_days }) => {
            let token = open(storage, vec![])?.add_operator(&name, token_days, &edetail_hub::cli_actor())?;
            out.emit(&serde_json::json!({"name": name, "token": token}), || format!("{token}\n"));
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Operator(OperatorCommand::Rotate { storage, name, grace_hours, token_days }) => {
            rotate(storage, TokenRole::Operator, &name, grace_hours, token_days, out)
        }
        HubCommand::Operator(OperatorCommand::Revoke { storage, name }) => revoke(storage, TokenRole::Operator, &name, out),
        HubCommand::Audit { storage } => {
            let log = open(storage, vec![])?.audit_log()?;
            out.emit(&log, || {
                log.iter()
                    .map(|e| {
                        format!(
                            "{} {} {} {} {} {}\n",
                            e.id,
                            e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            e.actor,
                            e.action,
                            e.subject,
                            e.details
                        )
                    })
                    .collect()
            });
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Territory(TerritoryCommand::Set { storage, name, products }) => {
            let hub = open(storage, vec![])?;
            hub.set_territory(&name, &products)?;
            let t = hub.territories()?.into_iter().find(|t| t.name == name).context("territory vanished")?;
            out.emit(&t, || format!("{}: {}\n", t.name, products_text(&t.products)));
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Territory(TerritoryCommand::List { storage }) => {
            let list = open(storage, vec![])?.territories()?;
            out.emit(&list, || {
                list.iter().map(|t| format!("{}  {}  {} device(s)\n", t.name, products_text(&t.products), t.devices)).collect()
            });
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Analyze { storage } => {
            let report = open(storage, vec![])?.analyze_pending()?;
            out.emit(&report, || {
                format!(
                    "analysed {} call(s) ({} skipped, {} failed), {} plan(s), {} microsite(s)\n",
                    report.calls_analysed, report.calls_skipped, report.calls_failed, report.plans, report.microsites
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::PlanKey { storage } => {
            let key = open(storage, vec![])?.plan_public_key();
            print!("{}", key.to_file_text());
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Hcps { storage, csv } => {
            let n = open(storage, vec![])?.import_hcp_segments(&read_csv(&csv)?).with_context(|| format!("importing {}", csv.display()))?;
            out.emit(&serde_json::json!({"imported": n}), || format!("imported {n} HCP segment(s)\n"));
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Targets { storage, csv } => {
            let r = open(storage, vec![])?.import_rep_targets(&read_csv(&csv)?).with_context(|| format!("importing {}", csv.display()))?;
            out.emit(&r, || {
                format!(
                    "imported the target lists of {} rep(s): {} target(s), {} added, {} removed; {} plan(s) sent again\n",
                    r.reps, r.targets, r.added, r.removed, r.plans_resent
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::PruneEvents { storage, older_than_days } => {
            let r = open(storage, vec![])?.prune_events(chrono::TimeDelta::days(older_than_days.into()), &edetail_hub::cli_actor())?;
            out.emit(&r, || format!("pruned {} analysed event(s) of {} device(s)\n", r.events, r.devices));
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Prescriptions { storage, csv } => {
            let n =
                open(storage, vec![])?.import_prescriptions(&read_csv(&csv)?).with_context(|| format!("importing {}", csv.display()))?;
            out.emit(&serde_json::json!({"imported": n}), || format!("imported {n} prescription row(s)\n"));
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Microsites { storage, hcp, base_url } => {
            let hub = open(storage, vec![])?;
            let base = base_url.trim_end_matches('/');
            let list: Vec<serde_json::Value> = hub
                .microsites_for(&hcp)?
                .into_iter()
                .map(|m| {
                    let mut v = serde_json::to_value(&m).unwrap_or_default();
                    v["link"] = format!("{base}{}", hub.microsite_path(&m.id)).into();
                    v
                })
                .collect();
            out.emit(&list, || {
                list.iter()
                    .map(|m| {
                        format!(
                            "{}  topics {}  expires {}  views {}\n  {}\n",
                            m["id"],
                            m["topics"],
                            m["expires_at"],
                            m["views"],
                            m["link"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            });
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Hcp(HcpCommand::Erase { storage, actor, hcp_id }) => {
            let report = open(storage, vec![])?.erase_hcp(&hcp_id, &actor)?;
            out.emit(&report, || {
                format!(
                    "erased: {} call(s), {} event(s), {} plan(s), {} microsite(s), {} analysis document(s); devices delete it at their next sync\n",
                    report.calls, report.events, report.plans, report.microsites, report.docs
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Consent(ConsentCommand::Set { storage, actor, hcp_id, tracking }) => {
            let t = edetail_protocol::Tracking::parse(&tracking).context("tracking must be full, anonymous or off")?;
            open(storage, vec![])?.set_consent(&hcp_id, t, &actor)?;
            out.emit(&serde_json::json!({"tracking": t}), || format!("consent set to {}\n", t.as_str()));
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Stats { storage } => {
            let stats = open(storage, vec![])?.stats()?;
            out.emit(&stats, || {
                let mut s = format!(
                    "store {}\nevents received {}, duplicates absorbed {}, rejected {}, pruned after analysis {}\nbundles {} ({} versions), revocations {}, publishers {}\n",
                    stats.store,
                    stats.events_received,
                    stats.duplicates_absorbed,
                    stats.rejected,
                    stats.events_pruned,
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

/// Plain HTTP only on loopback: elsewhere TLS, or the operator's explicit
/// `--allow-insecure-http`.
fn check_listen_policy(listen: SocketAddr, tls: bool, allow_insecure_http: bool, allow_remote: bool) -> anyhow::Result<()> {
    if allow_remote {
        eprintln!("warning: --allow-remote is obsolete: a non-loopback address needs --tls-cert/--tls-key or --allow-insecure-http");
    }
    if tls || listen.ip().is_loopback() {
        return Ok(());
    }
    if !allow_insecure_http {
        bail!(
            "refusing plain HTTP on non-loopback address {listen}: give --tls-cert and --tls-key, \
             or --allow-insecure-http if a TLS-terminating proxy is in front"
        );
    }
    eprintln!("warning: serving plain HTTP on non-loopback address {listen} (--allow-insecure-http)");
    Ok(())
}

fn read_csv(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn products_text(products: &[String]) -> String {
    if products.is_empty() { "every product".to_string() } else { products.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::check_listen_policy;

    #[test]
    fn plain_http_only_on_loopback_unless_explicitly_allowed() {
        let addr = |s: &str| s.parse().unwrap();
        // (listen, tls, allow_insecure_http) -> allowed
        let cases = [
            ("127.0.0.1:8787", false, false, true),
            ("[::1]:8787", false, false, true),
            ("0.0.0.0:8787", false, false, false),
            ("[::]:8787", false, false, false),
            ("10.1.2.3:8443", false, false, false),
            ("10.1.2.3:8443", true, false, true),
            ("10.1.2.3:8080", false, true, true),
            ("127.0.0.1:8443", true, false, true),
        ];
        for (listen, tls, insecure, allowed) in cases {
            let r = check_listen_policy(addr(listen), tls, insecure, false);
            assert_eq!(r.is_ok(), allowed, "{listen} tls={tls} insecure={insecure}: {r:?}");
            if let Err(e) = r {
                assert!(e.to_string().contains("--allow-insecure-http"), "{e}");
            }
        }
        // The obsolete flag allows nothing.
        assert!(check_listen_policy(addr("0.0.0.0:8787"), false, false, true).is_err());
    }
}
