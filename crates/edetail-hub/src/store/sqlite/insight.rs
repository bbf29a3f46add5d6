//! The SQLite store: HCP summaries for the dashboard's lists and counts (`InsightStore`).

use super::*;
use crate::analytics::Moments;
use crate::store::{ExperimentSums, HcpPage, HcpQuery, HcpSummary, InsightStore, SqlDialect};

/// Replaces `s` (summary row, stage rows, channel rows) inside an open write transaction.
pub(super) fn put_summary(tx: &Transaction<'_>, s: &HcpSummary) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO hcp_summaries (hcp_id, calls, last_call_at, top_topic, stages) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (hcp_id) DO UPDATE SET calls = excluded.calls, last_call_at = excluded.last_call_at, \
         top_topic = excluded.top_topic, stages = excluded.stages",
    )?
    .execute(params![
        s.hcp_id,
        s.calls as i64,
        s.last_call_at.map(time_text),
        s.top_topic,
        serde_json::to_string(&s.stages).map_err(|e| Error::Internal(e.to_string()))?
    ])?;
    tx.prepare_cached("DELETE FROM hcp_stages WHERE hcp_id = ?1")?.execute([&s.hcp_id])?;
    let mut stage = tx.prepare_cached("INSERT INTO hcp_stages (hcp_id, product, stage) VALUES (?1, ?2, ?3)")?;
    for (product, st) in &s.stages {
        stage.execute(params![s.hcp_id, product, st])?;
    }
    tx.prepare_cached("DELETE FROM hcp_channels WHERE hcp_id = ?1")?.execute([&s.hcp_id])?;
    let mut channel = tx.prepare_cached("INSERT OR IGNORE INTO hcp_channels (hcp_id, channel) VALUES (?1, ?2)")?;
    for c in &s.channels {
        channel.execute(params![s.hcp_id, c])?;
    }
    tx.prepare_cached("DELETE FROM experiment_units WHERE hcp_id = ?1")?.execute([&s.hcp_id])?;
    let mut unit = tx.prepare_cached(
        "INSERT INTO experiment_units (hcp_id, product, arm, enrolled_at_ms, enrolled_period, enrol_level, level) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for u in &s.experiment {
        unit.execute(params![
            s.hcp_id,
            u.product,
            u.arm,
            u.enrolled_at.timestamp_millis(),
            u.enrolled_at.format("%Y-%m").to_string(),
            u.enrol_level,
            u.level
        ])?;
    }
    if !s.experiment.is_empty() {
        refresh_rx(tx, &s.hcp_id)?;
    }
    Ok(())
}

/// Recomputes the prescription sums of an HCP's experiment units (inside a write transaction).
pub(super) fn refresh_rx(tx: &Transaction<'_>, hcp_id: &str) -> Result<()> {
    tx.prepare_cached(&crate::store::experiment_rx_refresh_sql(SqlDialect::Sqlite))?.execute([hcp_id])?;
    Ok(())
}

/// Removes an HCP's summary rows (erasure) inside an open write transaction.
pub(super) fn delete_summary(tx: &Transaction<'_>, hcp_id: &str) -> Result<()> {
    for table in ["hcp_summaries", "hcp_stages", "hcp_channels", "experiment_units"] {
        tx.execute(&format!("DELETE FROM {table} WHERE hcp_id = ?1"), [hcp_id])?;
    }
    Ok(())
}

/// The territories whose devices called on HCP `?1` (by `hcp_territories_by_hcp`).
pub(crate) const HCP_TERRITORIES_SQL: &str = "SELECT territory FROM hcp_territories WHERE hcp_id = ?1 ORDER BY territory";

impl InsightStore for SqliteStore {
    fn hcp_page(&self, q: &HcpQuery) -> Result<HcpPage> {
        let (count, count_args) = crate::store::hcp_count_sql(q, crate::store::SqlDialect::Sqlite);
        self.read(|c| {
            let total: i64 = c.prepare_cached(&count)?.query_row(rusqlite::params_from_iter(count_args.iter()), |r| r.get(0))?;
            let (rows, args) = crate::store::hcp_page_sql(q, crate::store::SqlDialect::Sqlite, total.max(0) as u64);
            let mut st = c.prepare(&rows)?;
            let rows = st
                .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                    let stages: String = r.get(4)?;
                    Ok((
                        HcpSummary {
                            hcp_id: r.get(0)?,
                            calls: r.get::<_, i64>(1)?.max(0) as u64,
                            last_call_at: r.get::<_, Option<String>>(2)?.as_deref().map(parse_time).transpose()?,
                            top_topic: r.get(3)?,
                            stages: serde_json::from_str(&stages)
                                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e)))?,
                            channels: Vec::new(),
                            experiment: Vec::new(),
                        },
                        r.get(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(HcpPage { rows, total: total.max(0) as u64 })
        })
    }

    fn stage_counts(&self) -> Result<Vec<(String, u64)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(crate::store::STAGE_COUNTS_SQL)?;
            Ok(st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn channel_reach(&self) -> Result<Vec<(String, u64)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(crate::store::CHANNEL_REACH_SQL)?;
            Ok(st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn hcp_count(&self) -> Result<u64> {
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM hcp_summaries", [], |r| r.get::<_, i64>(0))?.max(0) as u64))
    }

    fn hcp_territories(&self, hcp_ids: &[String]) -> Result<std::collections::HashMap<String, Vec<String>>> {
        self.read(|c| {
            let mut st = c.prepare_cached(HCP_TERRITORIES_SQL)?;
            let mut out = std::collections::HashMap::new();
            for id in hcp_ids {
                let ts = st.query_map([id], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
                if !ts.is_empty() {
                    out.insert(id.clone(), ts);
                }
            }
            Ok(out)
        })
    }

    fn device_territories(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT DISTINCT territory FROM devices WHERE id <> ?1 ORDER BY territory")?;
            Ok(st.query_map([MICROSITE_DEVICE], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn unsummarised_profiles(&self, limit: usize) -> Result<Vec<Doc>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT d.key, d.doc, d.version FROM analytics_docs d WHERE d.kind = 'hcp' \
                 AND NOT EXISTS (SELECT 1 FROM hcp_summaries s WHERE s.hcp_id = d.key) ORDER BY d.key LIMIT ?1",
            )?;
            let rows = st
                .query_map([limit as i64], |r| {
                    Ok(Doc { kind: "hcp".into(), key: r.get(0)?, doc: json_value(&r.get::<_, String>(1)?)?, version: r.get(2)? })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn put_hcp_summaries(&self, summaries: &[HcpSummary]) -> Result<()> {
        self.write(|tx| summaries.iter().try_for_each(|s| put_summary(tx, s)))
    }

    fn experiment_sums(&self, product: &str, now: DateTime<Utc>) -> Result<ExperimentSums> {
        self.read(|c| {
            let mut st = c.prepare_cached(&crate::store::experiment_sums_sql(SqlDialect::Sqlite))?;
            let mut rows = st.query(rusqlite::params![product, now.timestamp_millis() as f64])?;
            let mut out = ExperimentSums::default();
            while let Some(r) = rows.next()? {
                let moments = |n: usize| -> rusqlite::Result<Moments> {
                    Ok(Moments {
                        n: r.get::<_, i64>(n)?.max(0) as u64,
                        sum: r.get::<_, Option<f64>>(n + 1)?.unwrap_or(0.0),
                        sum_sq: r.get::<_, Option<f64>>(n + 2)?.unwrap_or(0.0),
                    })
                };
                let arm: String = r.get(0)?;
                let rx = moments(4)?;
                if rx.n > 0 {
                    out.rx_change.insert(arm.clone(), rx);
                }
                out.progression.insert(arm, moments(1)?);
            }
            Ok(out)
        })
    }
}
