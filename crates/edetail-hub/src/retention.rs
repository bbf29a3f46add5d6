//! Retention of raw events after analysis, an operator setting: events recorded longer ago
//! than the retention period whose calls are analysed are deleted, as a prefix of each
//! device's sequence ([`crate::store::IngestStore::prune_analysed_events`]), audited with
//! counts and shown in `hub stats`. Never an event not analysed yet, never silently. Also the
//! bookkeeping of remote sessions over for [`REMOTE_SESSION_KEEP`] (no personal data in it).

use std::sync::atomic::Ordering;

use chrono::{TimeDelta, Utc};

use crate::audit;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::store::PruneReport;

/// How often `serve` prunes when a retention period is set.
pub const RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Remote sessions (and their attendee rows) are kept this long after they ended or expired.
pub const REMOTE_SESSION_KEEP: TimeDelta = TimeDelta::days(7);

/// The shortest retention period accepted: a day, so a mistyped setting cannot empty the
/// event table of yesterday's calls before anyone looks at them.
pub const MIN_RETENTION: TimeDelta = TimeDelta::days(1);

impl Hub {
    /// Deletes the analysed events recorded more than `older_than` ago (at least
    /// [`MIN_RETENTION`]); audited as "events pruned" with `actor` and the counts.
    pub fn prune_events(&self, older_than: TimeDelta, actor: &str) -> Result<PruneReport> {
        if older_than < MIN_RETENTION {
            return Err(Error::BadRequest(format!(
                "a retention period of {} s is shorter than the minimum of one day",
                older_than.num_seconds()
            )));
        }
        let days = older_than.num_seconds() as f64 / 86_400.0;
        let report = self.inner.store.prune_analysed_events(Utc::now() - older_than, Some(&audit::events_pruned(actor, days)))?;
        if report.events > 0 {
            audit::log(audit::EVENTS_PRUNED, actor, &serde_json::to_value(report).unwrap_or_default());
        }
        Ok(report)
    }

    /// Sets the retention period `serve` applies every [`RETENTION_INTERVAL`] (`None`: keep
    /// every event, the default).
    pub fn set_event_retention(&self, older_than: Option<TimeDelta>) -> Result<()> {
        if let Some(p) = older_than
            && p < MIN_RETENTION
        {
            return Err(Error::BadRequest(format!("a retention period of {} s is shorter than the minimum of one day", p.num_seconds())));
        }
        self.inner.event_retention_s.store(older_than.map_or(0, |p| p.num_seconds().max(1) as u64), Ordering::Relaxed);
        Ok(())
    }

    /// The retention period `serve` applies, if any.
    pub fn event_retention(&self) -> Option<TimeDelta> {
        match self.inner.event_retention_s.load(Ordering::Relaxed) {
            0 => None,
            s => Some(TimeDelta::seconds(s as i64)),
        }
    }

    /// The serve loop's pruning: at start and every [`RETENTION_INTERVAL`], when a period is set.
    pub(crate) async fn retention_worker(self) {
        loop {
            if let Some(period) = self.event_retention() {
                let hub = self.clone();
                match tokio::task::spawn_blocking(move || hub.prune_events(period, "hub:retention")).await {
                    Ok(Ok(r)) if r.events > 0 => tracing::info!(events = r.events, devices = r.devices, "pruned analysed events"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "pruning analysed events failed; retrying later"),
                    Err(e) => tracing::error!(error = %e, "pruning task failed"),
                }
            }
            let store = self.inner.store.clone();
            match tokio::task::spawn_blocking(move || store.prune_remote_sessions(Utc::now() - REMOTE_SESSION_KEEP)).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(sessions = n, "pruned remote sessions over for a week"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "pruning remote sessions failed; retrying later"),
                Err(e) => tracing::error!(error = %e, "pruning task failed"),
            }
            tokio::time::sleep(RETENTION_INTERVAL).await;
        }
    }
}
