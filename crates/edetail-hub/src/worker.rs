//! The background analysis worker: analyses queued finished calls when woken (a call ended,
//! a microsite visit arrived) and at least every `ANALYSIS_INTERVAL`.

use crate::closed_loop::AnalysisReport;
use crate::hub::Hub;

/// The analysis worker looks at the queue at least this often.
pub const ANALYSIS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

impl Hub {
    /// The background analysis loop: runs when woken and at least every `ANALYSIS_INTERVAL`.
    pub async fn analysis_worker(self) {
        loop {
            let hub = self.clone();
            match tokio::task::spawn_blocking(move || hub.analyze_pending()).await {
                Ok(Ok(r)) if r != AnalysisReport::default() => tracing::info!(?r, "analysis"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "analysis run failed; retrying later"),
                Err(e) => tracing::error!(error = %e, "analysis task failed"),
            }
            tokio::select! {
                _ = self.inner.analysis_wake.notified() => {}
                _ = tokio::time::sleep(ANALYSIS_INTERVAL) => {}
            }
        }
    }
}
