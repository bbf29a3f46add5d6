//! Slide views of one finished call: the event contract's one `derive_views` and view rule
//! (`edetail_protocol::views`), applied to the hub's analysed events.

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use edetail_protocol::views::{CallView, DerivedViews, VIEW_MIN_DWELL_MS, ViewEvent, derive_views, str_field};

use super::AnalyzedEvent;

impl ViewEvent for AnalyzedEvent {
    fn uuid(&self) -> &str {
        &self.uuid
    }
    fn kind(&self) -> &str {
        &self.kind
    }
    fn at(&self) -> DateTime<Utc> {
        self.at
    }
    fn payload(&self) -> &Value {
        &self.payload
    }
}
