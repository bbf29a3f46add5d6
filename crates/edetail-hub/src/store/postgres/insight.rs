//! The PostgreSQL store: HCP summaries for the dashboard's lists and counts (`InsightStore`).

use super::*;
use crate::analytics::Moments;
use crate::store::{ExperimentSums, HcpPage, HcpQuery, HcpSummary, InsightStore, SqlDialect};

/// Replaces `s` (summary row, stage rows, channel rows) inside an open transaction.
/// Creates or replaces HCP summaries (distinct HCPs) inside an open transaction: five
/// statements for the whole set.
pub(super) async fn put_summaries(tx: &Transaction<'_>, summaries: &[HcpSummary]) -> Result<()> {
    if summaries.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = summaries.iter().map(|s| s.hcp_id.as_str()).collect();
    let calls: Vec<i64> = summaries.iter().map(|s| s.calls as i64).collect();
    let last: Vec<Option<DateTime<Utc>>> = summaries.iter().map(|s| s.last_call_at).collect();
    let top: Vec<Option<&str>> = summaries.iter().map(|s| s.top_topic.as_deref()).collect();
    let stages = summaries
        .iter()
        .map(|s| serde_json::to_string(&s.stages).map_err(|e| Error::Internal(e.to_string())))
        .collect::<Result<Vec<String>>>()?;
    tx.execute(
        "INSERT INTO hcp_summaries (hcp_id, calls, last_call_at, top_topic, stages) \
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[]) \
         ON CONFLICT (hcp_id) DO UPDATE SET calls = excluded.calls, last_call_at = excluded.last_call_at, \
         top_topic = excluded.top_topic, stages = excluded.stages",
        &[&ids, &calls, &last, &top, &stages],
    )
    .await
    .map_err(pg_err)?;
    let mut stage_rows: (Vec<&str>, Vec<&str>, Vec<&str>) = Default::default();
    let mut channel_rows: (Vec<&str>, Vec<&str>) = Default::default();
    for s in summaries {
        for (p, st) in &s.stages {
            stage_rows.0.push(&s.hcp_id);
            stage_rows.1.push(p);
            stage_rows.2.push(st);
        }
        for c in &s.channels {
            channel_rows.0.push(&s.hcp_id);
            channel_rows.1.push(c);
        }
    }
    tx.execute("DELETE FROM hcp_stages WHERE hcp_id = ANY($1)", &[&ids]).await.map_err(pg_err)?;
    tx.execute(
        "INSERT INTO hcp_stages (hcp_id, product, stage) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])",
        &[&stage_rows.0, &stage_rows.1, &stage_rows.2],
    )
    .await
    .map_err(pg_err)?;
    // Column by column, for UNNEST.
    let units: Vec<(&str, &crate::store::ExperimentUnit)> =
        summaries.iter().flat_map(|s| s.experiment.iter().map(move |u| (s.hcp_id.as_str(), u))).collect();
    let unit_hcps: Vec<&str> = units.iter().map(|(h, _)| *h).collect();
    let unit_products: Vec<&str> = units.iter().map(|(_, u)| u.product.as_str()).collect();
    let unit_arms: Vec<&str> = units.iter().map(|(_, u)| u.arm.as_str()).collect();
    let unit_at: Vec<i64> = units.iter().map(|(_, u)| u.enrolled_at.timestamp_millis()).collect();
    let unit_period: Vec<String> = units.iter().map(|(_, u)| u.enrolled_at.format("%Y-%m").to_string()).collect();
    let unit_from: Vec<i32> = units.iter().map(|(_, u)| u.enrol_level.into()).collect();
    let unit_now: Vec<i32> = units.iter().map(|(_, u)| u.level.into()).collect();
    // An HCP's arm and enrolment never change once recorded, only her rung: units are upserted
    // (an unchanged one is not rewritten, a changed one updated in place) instead of deleted and
    // inserted on every analysis (which left a dead row per write for the page to skip), and
    // only new units read their prescriptions.
    tx.execute(
        "DELETE FROM experiment_units e WHERE e.hcp_id = ANY($1) \
         AND NOT EXISTS (SELECT 1 FROM UNNEST($2::text[], $3::text[], $4::text[]) AS n(h, p, a) \
                         WHERE n.h = e.hcp_id AND n.p = e.product AND n.a = e.arm)",
        &[&ids, &unit_hcps, &unit_products, &unit_arms],
    )
    .await
    .map_err(pg_err)?;
    let inserted = tx
        .query(
            "INSERT INTO experiment_units (hcp_id, product, arm, enrolled_at_ms, enrolled_period, enrol_level, level) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::int4[], $7::int4[]) \
             ON CONFLICT (product, arm, hcp_id) DO UPDATE SET level = excluded.level \
             WHERE experiment_units.level IS DISTINCT FROM excluded.level \
             RETURNING hcp_id, (xmax = 0) AS inserted",
            &[&unit_hcps, &unit_products, &unit_arms, &unit_at, &unit_period, &unit_from, &unit_now],
        )
        .await
        .map_err(pg_err)?;
    let new_units: Vec<&str> = inserted.iter().filter(|r| r.get::<_, bool>(1)).map(|r| r.get::<_, &str>(0)).collect();
    if !new_units.is_empty() {
        refresh_rx(tx, &new_units).await?;
    }
    tx.execute("DELETE FROM hcp_channels WHERE hcp_id = ANY($1)", &[&ids]).await.map_err(pg_err)?;
    tx.execute(
        "INSERT INTO hcp_channels (hcp_id, channel) SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
        &[&channel_rows.0, &channel_rows.1],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// Recomputes the prescription sums of these HCPs' experiment units (inside a transaction).
pub(super) async fn refresh_rx(tx: &Transaction<'_>, hcp_ids: &[&str]) -> Result<()> {
    tx.execute(&crate::store::experiment_rx_refresh_sql(SqlDialect::Postgres), &[&hcp_ids]).await.map_err(pg_err)?;
    Ok(())
}

/// Removes an HCP's summary rows (erasure) inside an open transaction.
pub(super) async fn delete_summary(tx: &Transaction<'_>, hcp_id: &str) -> Result<()> {
    for table in ["hcp_summaries", "hcp_stages", "hcp_channels", "experiment_units"] {
        tx.execute(&format!("DELETE FROM {table} WHERE hcp_id = $1"), &[&hcp_id]).await.map_err(pg_err)?;
    }
    Ok(())
}

/// The territories whose devices called on each HCP of `$1`, by HCP and territory (by
/// `hcp_territories_by_hcp`).
pub(crate) const HCP_TERRITORIES_SQL: &str =
    "SELECT hcp_id, territory FROM hcp_territories WHERE hcp_id = ANY($1) ORDER BY hcp_id, territory";

impl InsightStore for PgStore {
    fn hcp_page(&self, q: &HcpQuery) -> Result<HcpPage> {
        let q = q.clone();
        self.read(move |tx| {
            Box::pin(async move {
                let (count, count_args) = crate::store::hcp_count_sql(&q, crate::store::SqlDialect::Postgres);
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    count_args.iter().map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
                let total: i64 = tx.query_one(&count, &params).await.map_err(pg_err)?.get(0);
                let (rows, args) = crate::store::hcp_page_sql(&q, crate::store::SqlDialect::Postgres, total.max(0) as u64);
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    args.iter().map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
                let rows = tx.query(&rows, &params).await.map_err(pg_err)?;
                let rows = rows
                    .iter()
                    .map(|r| {
                        let stages: String = r.get(4);
                        Ok((
                            HcpSummary {
                                hcp_id: r.get(0),
                                calls: r.get::<_, i64>(1).max(0) as u64,
                                last_call_at: r.get(2),
                                top_topic: r.get(3),
                                stages: serde_json::from_str(&stages).map_err(|e| Error::Internal(format!("stored stages: {e}")))?,
                                channels: Vec::new(),
                                experiment: Vec::new(),
                            },
                            r.get(5),
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(HcpPage { rows, total: total.max(0) as u64 })
            })
        })
    }

    fn stage_counts(&self) -> Result<Vec<(String, u64)>> {
        self.read(|tx| {
            Box::pin(async move {
                let rows = tx.query(crate::store::STAGE_COUNTS_SQL, &[]).await.map_err(pg_err)?;
                Ok(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1).max(0) as u64)).collect())
            })
        })
    }

    fn channel_reach(&self) -> Result<Vec<(String, u64)>> {
        self.read(|tx| {
            Box::pin(async move {
                let rows = tx.query(crate::store::CHANNEL_REACH_SQL, &[]).await.map_err(pg_err)?;
                Ok(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1).max(0) as u64)).collect())
            })
        })
    }

    fn hcp_count(&self) -> Result<u64> {
        self.read(|tx| {
            Box::pin(async move {
                Ok(tx.query_one("SELECT COUNT(*) FROM hcp_summaries", &[]).await.map_err(pg_err)?.get::<_, i64>(0).max(0) as u64)
            })
        })
    }

    fn hcp_territories(&self, hcp_ids: &[String]) -> Result<std::collections::HashMap<String, Vec<String>>> {
        let ids = hcp_ids.to_vec();
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx.query(HCP_TERRITORIES_SQL, &[&ids]).await.map_err(pg_err)?;
                let mut out: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
                for r in rows {
                    out.entry(r.get(0)).or_default().push(r.get(1));
                }
                Ok(out)
            })
        })
    }

    fn device_territories(&self) -> Result<Vec<String>> {
        self.read(|tx| {
            Box::pin(async move {
                let rows = tx
                    .query("SELECT DISTINCT territory FROM devices WHERE id <> $1 ORDER BY territory", &[&MICROSITE_DEVICE])
                    .await
                    .map_err(pg_err)?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
    }

    fn unsummarised_profiles(&self, limit: usize) -> Result<Vec<Doc>> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT d.key, d.doc, d.version FROM analytics_docs d WHERE d.kind = 'hcp' \
                         AND NOT EXISTS (SELECT 1 FROM hcp_summaries s WHERE s.hcp_id = d.key) ORDER BY d.key LIMIT $1",
                        &[&(limit as i64)],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(|r| Ok(Doc { kind: "hcp".into(), key: r.get(0), doc: json_value(r.get(1))?, version: r.get(2) })).collect()
            })
        })
    }

    fn put_hcp_summaries(&self, summaries: &[HcpSummary]) -> Result<()> {
        let summaries = summaries.to_vec();
        self.write(move |tx| Box::pin(async move { put_summaries(tx, &summaries).await }))
    }

    fn experiment_sums(&self, product: &str, now: DateTime<Utc>) -> Result<ExperimentSums> {
        let product = product.to_string();
        let now_ms = now.timestamp_millis() as f64;
        self.read(move |tx| {
            Box::pin(async move {
                let rows =
                    tx.query(&crate::store::experiment_sums_sql(SqlDialect::Postgres), &[&product, &now_ms]).await.map_err(pg_err)?;
                let mut out = ExperimentSums::default();
                for r in &rows {
                    let moments = |n: usize| Moments {
                        n: r.get::<_, i64>(n).max(0) as u64,
                        sum: r.get::<_, Option<f64>>(n + 1).unwrap_or(0.0),
                        sum_sq: r.get::<_, Option<f64>>(n + 2).unwrap_or(0.0),
                    };
                    let arm: String = r.get(0);
                    if moments(4).n > 0 {
                        out.rx_change.insert(arm.clone(), moments(4));
                    }
                    out.progression.insert(arm, moments(1));
                }
                Ok(out)
            })
        })
    }
}
