//! The PostgreSQL store: erasure and consent (`PrivacyStore`).

use super::*;

/// An HCP's calls, for erasure (by index: `call_hcps`'s primary key).
pub(crate) const ERASE_CALLS_SQL: &str = "SELECT device_id, call_id FROM call_hcps WHERE hcp_id = $1 ORDER BY device_id, call_id";

/// The erased calls' events: by `events_by_call`.
pub(crate) const ERASE_EVENTS_SQL: &str =
    "DELETE FROM events e USING UNNEST($1::text[], $2::text[]) AS c(d, i) WHERE e.device_id = c.d AND e.call_id = c.i";

impl PrivacyStore for PgStore {
    fn erase_hcp(&self, hcp_id: &str, now: DateTime<Utc>, audit: Option<&Audited<ErasureReport>>) -> Result<ErasureReport> {
        let hcp = hcp_id.to_string();
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                // Wait for event writes in flight and keep new ones out until this commits
                // (`ERASURE_LOCK`), then order the feed item on the feed counter row.
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ERASURE_LOCK]).await.map_err(pg_err)?;
                let seq = next_feed_seq(tx).await?;
                // The HCP's calls by her id (`call_hcps`, kept by ingest).
                let calls: Vec<(String, String)> =
                    tx.query(ERASE_CALLS_SQL, &[&hcp]).await.map_err(pg_err)?.iter().map(|r| (r.get(0), r.get(1))).collect();
                let mut report = ErasureReport { calls: calls.len() as u64, ..ErasureReport::default() };
                if !calls.is_empty() {
                    let devices: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
                    let ids: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
                    const SEL: &str = "FROM events e JOIN UNNEST($1::text[], $2::text[]) AS c(d, i) ON e.device_id = c.d AND e.call_id = c.i";
                    tx.execute(
                        &format!("INSERT INTO erased_events (uuid, device_id) SELECT e.uuid, e.device_id {SEL} ON CONFLICT DO NOTHING"),
                        &[&devices, &ids],
                    )
                    .await
                    .map_err(pg_err)?;
                    tx.execute(
                        "INSERT INTO erased_calls (device_id, call_id) SELECT d, i FROM UNNEST($1::text[], $2::text[]) AS c(d, i) \
                         ON CONFLICT DO NOTHING",
                        &[&devices, &ids],
                    )
                    .await
                    .map_err(pg_err)?;
                    report.events = tx.execute(ERASE_EVENTS_SQL, &[&devices, &ids]).await.map_err(pg_err)?;
                    tx.execute(
                        "DELETE FROM analysis_queue q USING UNNEST($1::text[], $2::text[]) AS c(d, i) WHERE q.device_id = c.d AND q.call_id = c.i",
                        &[&devices, &ids],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                let del = |sql: &'static str| {
                    let hcp = hcp.clone();
                    async move { tx.execute(sql, &[&hcp]).await.map_err(pg_err) }
                };
                del("DELETE FROM call_hcps WHERE hcp_id = $1").await?;
                del("DELETE FROM hcp_territories WHERE hcp_id = $1").await?;
                del("DELETE FROM rep_targets WHERE hcp_id = $1").await?;
                super::insight::delete_summary(tx, &hcp).await?;
                report.docs = del("DELETE FROM analytics_docs WHERE kind = 'hcp' AND key = $1").await?;
                report.plans = del("DELETE FROM plans WHERE hcp_id = $1").await?;
                report.microsites = del("DELETE FROM microsites WHERE hcp_id = $1").await?;
                report.segments = del("DELETE FROM hcps WHERE id = $1").await?;
                report.prescriptions = del("DELETE FROM prescriptions WHERE hcp_id = $1").await?;
                del("DELETE FROM consents WHERE hcp_id = $1").await?;
                let already: bool = tx
                    .query_one("SELECT EXISTS (SELECT 1 FROM erasures WHERE hcp_id = $1)", &[&hcp])
                    .await
                    .map_err(pg_err)?
                    .get(0);
                if report.removed_anything() || !already {
                    tx.execute("INSERT INTO erasures (feed_seq, hcp_id, erased_at) VALUES ($1, $2, $3)", &[&seq, &hcp, &now])
                        .await
                        .map_err(pg_err)?;
                    report.fed = true;
                }
                // Otherwise the taken feed number stays unused: the feed tolerates gaps.
                Ok(report)
            })
        })
    }

    fn set_consent(&self, hcp_id: &str, tracking: Tracking, now: DateTime<Utc>, audit: Option<&Audited<i64>>) -> Result<i64> {
        let hcp = hcp_id.to_string();
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let seq = next_feed_seq(tx).await?;
                tx.execute(
                    "INSERT INTO consents (hcp_id, tracking, updated_at, feed_seq) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (hcp_id) DO UPDATE SET tracking = excluded.tracking, updated_at = excluded.updated_at, \
                     feed_seq = excluded.feed_seq",
                    &[&hcp, &tracking.as_str(), &now, &seq],
                )
                .await
                .map_err(pg_err)?;
                Ok(seq)
            })
        })
    }

    fn consent(&self, hcp_id: &str) -> Result<Option<ConsentRecord>> {
        let hcp = hcp_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt("SELECT feed_seq, hcp_id, tracking, updated_at FROM consents WHERE hcp_id = $1", &[&hcp])
                    .await
                    .map_err(pg_err)?
                    .map(|r| consent_row(&r).map(|f| f.consent))
                    .transpose()
            })
        })
    }
}
