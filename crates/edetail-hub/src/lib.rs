//! edetail-hub: the reference central hub. Device sync API (event ingestion, change feed,
//! blobs, bundle zips) and publishing API over one `HubStore` (SQLite by default, PostgreSQL
//! for several hub processes) and one content-addressed blob store (local files by default,
//! S3-compatible object storage when shared). See `docs/protocol.md` and this crate's README.
//!
//! Never depends on edetail-core, edetail-sync or edetail-ffi (they are device-side).
//!
//! Modules: `config` (`HubConfig`), `hub` (the `Hub` facade and its core operations), `admin`
//! (credentials of devices, publishers and operators), `tokens` (random tokens and their
//! hashes), `imports` (CRM CSV imports), `worker` (the background analysis), `serve` (router
//! and server start), and the domain, storage and route modules (see the README).

mod admin;
pub mod analytics;
pub mod audit;
pub mod auth;
pub mod blobs;
pub mod client;
pub mod closed_loop;
mod config;
pub mod dashboard;
pub mod error;
mod front;
mod http;
mod hub;
mod imports;
pub mod ingest;
pub mod insights;
pub mod microsite;
pub mod publish;
pub mod ratelimit;
mod remote;
mod remote_relay;
pub mod reqlog;
mod retention;
mod serve;
pub mod server;
pub mod store;
pub use store::{postgres, sqlite};
#[cfg(feature = "testkit")]
pub mod scale;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tls;
mod tokens;
mod web;
mod worker;

pub use crate::admin::{DeviceCredentials, MAX_TOKEN_DAYS};
pub use crate::audit::cli_actor;
pub use crate::closed_loop::{AnalysisReport, Analyzer, AnalyzerConfig};
pub use crate::config::{HubConfig, PLAN_KEY_FILE, create_private_dir};
pub use crate::error::{Error, Result};
pub use crate::hub::Hub;
pub use crate::retention::{MIN_RETENTION, RETENTION_INTERVAL};
pub use crate::serve::{serve_local, serve_local_tls, spawn_local};
pub use crate::server::ServerLimits;
pub use crate::store::{DeviceStats, ErasureReport, HubStats, HubStore, Territory};
pub use crate::tokens::token_hash;
pub use crate::worker::ANALYSIS_INTERVAL;
