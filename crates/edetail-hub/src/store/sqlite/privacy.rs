//! The SQLite store: erasure and consent (`PrivacyStore`).

use super::*;

impl PrivacyStore for SqliteStore {
    fn erase_hcp(&self, hcp_id: &str, now: DateTime<Utc>, audit: Option<&Audited<ErasureReport>>) -> Result<ErasureReport> {
        self.write_audited(audit, |tx| {
            // The hub keeps payloads as JSON text: collect the calls first (parsed in Rust, the
            // same on both backends), then delete by (device, call).
            let mut calls = Vec::new();
            {
                let mut st =
                    tx.prepare("SELECT device_id, call_id, payload FROM events WHERE type = 'call_started' AND call_id IS NOT NULL")?;
                let mut rows = st.query([])?;
                while let Some(r) = rows.next()? {
                    let payload: String = r.get(2)?;
                    if crate::store::payload_names_hcp(&payload, hcp_id) {
                        calls.push((r.get::<_, String>(0)?, r.get::<_, String>(1)?));
                    }
                }
            }
            let mut report = ErasureReport { calls: calls.len() as u64, ..ErasureReport::default() };
            for (device, call) in &calls {
                tx.execute(
                    "INSERT OR IGNORE INTO erased_events (uuid, device_id) SELECT uuid, device_id FROM events \
                     WHERE device_id = ?1 AND call_id = ?2",
                    params![device, call],
                )?;
                tx.execute("INSERT OR IGNORE INTO erased_calls (device_id, call_id) VALUES (?1, ?2)", params![device, call])?;
                report.events += tx.execute("DELETE FROM events WHERE device_id = ?1 AND call_id = ?2", params![device, call])? as u64;
                tx.execute("DELETE FROM analysis_queue WHERE device_id = ?1 AND call_id = ?2", params![device, call])?;
            }
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
