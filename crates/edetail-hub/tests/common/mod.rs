//! Shared helpers of the hub's HTTP tests (`api.rs`, `security.rs`).
#![allow(dead_code)]

use chrono::{SubsecRound, Utc};
use edetail_protocol::{ErrorBody, ErrorCode, WireEvent};
use reqwest::StatusCode;
use serde_json::json;

/// The publisher key seed the tests sign with.
pub const SEED: [u8; 32] = [7; 32];

/// Asserts the answer is `status` with an `ErrorBody` of `code`; returns the body.
pub async fn error_of(r: reqwest::Response, status: StatusCode, code: ErrorCode) -> ErrorBody {
    assert_eq!(r.status(), status);
    let body: ErrorBody = r.json().await.unwrap();
    assert_eq!(body.code, code, "{}", body.message);
    body
}

/// A slide exit (a finished view) of `call-1` with device sequence number `seq` and a fresh uuid.
pub fn event(seq: i64) -> WireEvent {
    WireEvent {
        uuid: uuid::Uuid::new_v4().to_string(),
        seq,
        call_id: Some("call-1".into()),
        kind: "slide_exit".into(),
        // Devices record milliseconds; stores keep at least microseconds.
        recorded_at: Utc::now().trunc_subsecs(3),
        session: 1,
        mono_ms: seq * 1000,
        payload: json!({"slide": "intro", "dwell_ms": 1200}),
    }
}

/// Every named test, once per backend pair: `local::NAME` (SQLite, blob files) and
/// `shared::NAME` (PostgreSQL, S3); each is `async fn NAME(backend: Backend)` in the test file.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod local {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Backend::Local).await } )*
        }
        mod shared {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Backend::Shared).await } )*
        }
    };
}
