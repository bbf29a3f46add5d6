//! edetail-sync: the client sync engine. It uploads the device's event outbox exactly once in
//! effect and pulls signed content through the hub's change feed, with resumable, verified blob
//! downloads.
//!
//! - [`policy`]: the pure sync state machine (retry classes, backoff with jitter, connectivity).
//! - [`http`]: the reqwest transport (auth via [`TokenProvider`], gzip uploads, error bodies).
//! - [`engine`]: [`SyncEngine`], which owns its tokio runtime and drives an
//!   `edetail_core::Device` (see `docs/adr/0006-sync-engine-owns-its-runtime.md`).
//! - [`remote`]: [`RemotePresenter`], the tablet's side of remote detailing (issue 17): opens a
//!   hub session for a call and presents it over the hub's WebSocket relay, performing and
//!   recording the doctors' navigation while they have control.
//! - [`state`]: the change-feed cursor, kept in the device database (and the move of an old
//!   `sync-state.json` into it).
//!
//! Depends on edetail-core and edetail-protocol; never on edetail-hub (dev-dependency at most)
//! nor on edetail-ffi.

pub mod engine;
pub mod error;
pub mod http;
pub mod policy;
pub mod remote;
pub mod state;

pub use engine::{SyncConfig, SyncEngine, SyncListener, SyncProgress, SyncReport};
pub use error::{Error, Result};
pub use http::{StaticToken, Timeouts, TokenError, TokenProvider, Transport};
pub use policy::{FailureClass, Lifecycle, SyncState};
pub use remote::{ConnectionState, NavRefusal, RemoteAttendee, RemoteEvent, RemotePresenter, RemoteStatus};
