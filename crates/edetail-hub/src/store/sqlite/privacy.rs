//! The SQLite store: erasure and consent (`PrivacyStore`).

use super::*;

/// An HCP's calls, for erasure (by index: `call_hcps`'s primary key).
pub(crate) const ERASE_CALLS_SQL: &str = "SELECT device_id, call_id FROM call_hcps WHERE hcp_id = ?1 ORDER BY device_id, call_id";

/// A call's events, erased: by `events_by_call`.
pub(crate) const ERASE_EVENTS_SQL: &str = "DELETE FROM events WHERE device_id = ?1 AND call_id = ?2";

impl PrivacyStore for SqliteStore {
    fn erase_hcp(&self, hcp_id: &str, now: DateTime<Utc>, audit: Option<&Audited<ErasureReport>>) -> Result<ErasureReport> {
        self.write_audited(audit, |tx| {
            // The HCP's calls by her id (`call_hcps`, kept by ingest), then everything of each
            // call by (device, call).
            let calls: Vec<(String, String)> = {
                let mut st = tx.prepare(ERASE_CALLS_SQL)?;
                st.query_map([hcp_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?
            };
            let mut report = ErasureReport { calls: calls.len() as u64, ..ErasureReport::default() };
            for (device, call) in &calls {
                tx.execute(
                    "INSERT OR IGNORE INTO erased_events (uuid, device_id) SELECT uuid, device_id FROM events \
                     WHERE device_id = ?1 AND call_id = ?2",
                    params![device, call],
                )?;
                tx.execute("INSERT OR IGNORE INTO erased_calls (device_id, call_id) VALUES (?1, ?2)", params![device, call])?;
                report.events += tx.execute(ERASE_EVENTS_SQL, params![device, call])? as u64;
                tx.execute("DELETE FROM analysis_queue WHERE device_id = ?1 AND call_id = ?2", params![device, call])?;
            }
            tx.execute("DELETE FROM call_hcps WHERE hcp_id = ?1", [hcp_id])?;
            tx.execute("DELETE FROM hcp_territories WHERE hcp_id = ?1", [hcp_id])?;
            tx.execute("DELETE FROM rep_targets WHERE hcp_id = ?1", [hcp_id])?;
            super::insight::delete_summary(tx, hcp_id)?;
            report.docs = tx.execute("DELETE FROM analytics_docs WHERE kind = 'hcp' AND key = ?1", [hcp_id])? as u64;
            report.plans = tx.execute("DELETE FROM plans WHERE hcp_id = ?1", [hcp_id])? as u64;
            report.microsites = tx.execute("DELETE FROM microsites WHERE hcp_id = ?1", [hcp_id])? as u64;
            report.segments = tx.execute("DELETE FROM hcps WHERE id = ?1", [hcp_id])? as u64;
            report.prescriptions = tx.execute("DELETE FROM prescriptions WHERE hcp_id = ?1", [hcp_id])? as u64;
            tx.execute("DELETE FROM consents WHERE hcp_id = ?1", [hcp_id])?;
            let already: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM erasures WHERE hcp_id = ?1)", [hcp_id], |r| r.get(0))?;
            if report.removed_anything() || !already {
                let seq = next_feed_seq(tx)?;
                tx.execute("INSERT INTO erasures (feed_seq, hcp_id, erased_at) VALUES (?1, ?2, ?3)", params![seq, hcp_id, time_text(now)])?;
                report.fed = true;
            }
            Ok(report)
        })
    }

    fn set_consent(&self, hcp_id: &str, tracking: Tracking, now: DateTime<Utc>, audit: Option<&Audited<i64>>) -> Result<i64> {
        self.write_audited(audit, |tx| {
            let seq = next_feed_seq(tx)?;
            tx.execute(
                "INSERT INTO consents (hcp_id, tracking, updated_at, feed_seq) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (hcp_id) DO UPDATE SET tracking = excluded.tracking, updated_at = excluded.updated_at, \
                 feed_seq = excluded.feed_seq",
                params![hcp_id, tracking.as_str(), time_text(now), seq],
            )?;
            Ok(seq)
        })
    }

    fn consent(&self, hcp_id: &str) -> Result<Option<ConsentRecord>> {
        self.read(|c| {
            Ok(c.query_row("SELECT feed_seq, hcp_id, tracking, updated_at FROM consents WHERE hcp_id = ?1", [hcp_id], consent_row)
                .optional()?
                .map(|f| f.consent))
        })
    }
}
