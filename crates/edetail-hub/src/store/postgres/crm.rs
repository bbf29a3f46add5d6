//! The PostgreSQL store: HCP segments and prescriptions imported from the CRM (`CrmStore`).

use super::*;

impl CrmStore for PgStore {
    fn set_hcp_segments(&self, rows: &[(String, String)], now: DateTime<Utc>) -> Result<usize> {
        let rows = rows.to_vec();
        self.write(move |tx| {
            Box::pin(async move {
                for (id, segment) in &rows {
                    tx.execute(
                        "INSERT INTO hcps (id, segment, updated_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (id) DO UPDATE SET segment = excluded.segment, updated_at = excluded.updated_at",
                        &[id, segment, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                Ok(rows.len())
            })
        })
    }

    fn hcp_segment(&self, hcp_id: &str) -> Result<Option<String>> {
        let h = hcp_id.to_string();
        self.read(move |tx| {
            Box::pin(
                async move { Ok(tx.query_opt("SELECT segment FROM hcps WHERE id = $1", &[&h]).await.map_err(pg_err)?.map(|r| r.get(0))) },
            )
        })
    }

    fn set_rep_targets(&self, rows: &[(String, String)], now: DateTime<Utc>) -> Result<TargetImport> {
        let lists = target_lists(rows);
        let total = rows.len();
        self.write(move |tx| {
            Box::pin(async move {
                let mut report = TargetImport { reps: lists.len(), targets: total, ..TargetImport::default() };
                for (rep, hcps) in &lists {
                    // Imports of one rep's list are serialized (the rows are locked).
                    let before: std::collections::BTreeSet<String> = tx
                        .query("SELECT hcp_id FROM rep_targets WHERE rep_id = $1 FOR UPDATE", &[rep])
                        .await
                        .map_err(pg_err)?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    report.removed += before.difference(hcps).count();
                    tx.execute("DELETE FROM rep_targets WHERE rep_id = $1", &[rep]).await.map_err(pg_err)?;
                    let list: Vec<&String> = hcps.iter().collect();
                    tx.execute(
                        "INSERT INTO rep_targets (rep_id, hcp_id, assigned_at) SELECT $1, h, $3 FROM UNNEST($2::text[]) AS x(h)",
                        &[rep, &list, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                    let added: Vec<&String> = hcps.difference(&before).collect();
                    report.added += added.len();
                    if added.is_empty() {
                        continue;
                    }
                    // Their current plans go out again, with new feed numbers (the counter's
                    // row lock orders this with every other feed write).
                    let seqs: Vec<i64> = tx
                        .query("SELECT feed_seq FROM plans WHERE hcp_id = ANY($1) ORDER BY feed_seq", &[&added])
                        .await
                        .map_err(pg_err)?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    if seqs.is_empty() {
                        continue;
                    }
                    let last: i64 = tx
                        .query_one("UPDATE feed_counter SET value = value + $1 WHERE id = 1 RETURNING value", &[&(seqs.len() as i64)])
                        .await
                        .map_err(pg_err)?
                        .get(0);
                    let fresh: Vec<i64> = (last - seqs.len() as i64 + 1..=last).collect();
                    tx.execute(
                        "UPDATE plans p SET feed_seq = x.new FROM UNNEST($1::bigint[], $2::bigint[]) AS x(old, new) WHERE p.feed_seq = x.old",
                        &[&seqs, &fresh],
                    )
                    .await
                    .map_err(pg_err)?;
                    report.plans_resent += seqs.len();
                }
                Ok(report)
            })
        })
    }

    fn rep_targets(&self, rep_id: &str) -> Result<Vec<String>> {
        let rep = rep_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx.query("SELECT hcp_id FROM rep_targets WHERE rep_id = $1 ORDER BY hcp_id", &[&rep]).await.map_err(pg_err)?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
    }

    fn hcp_segments(&self, hcp_ids: &[String]) -> Result<std::collections::HashMap<String, String>> {
        let ids = hcp_ids.to_vec();
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx.query("SELECT id, segment FROM hcps WHERE id = ANY($1)", &[&ids]).await.map_err(pg_err)?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            })
        })
    }

    fn import_prescriptions(&self, rows: &[Prescription]) -> Result<usize> {
        let rows = rows.to_vec();
        self.write(move |tx| {
            Box::pin(async move {
                // One statement for the whole file; a key listed twice keeps its last count (as
                // row by row would), since one statement may not update a row twice.
                let mut last: std::collections::HashMap<(&str, &str, &str), i64> = std::collections::HashMap::new();
                for p in &rows {
                    last.insert((&p.hcp_id, &p.product, &p.period), p.count as i64);
                }
                let (mut h, mut pr, mut pe, mut n): (Vec<&str>, Vec<&str>, Vec<&str>, Vec<i64>) = Default::default();
                for ((hcp, product, period), count) in last {
                    h.push(hcp);
                    pr.push(product);
                    pe.push(period);
                    n.push(count);
                }
                tx.execute(
                    "INSERT INTO prescriptions (hcp_id, product, period, count) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) \
                     ON CONFLICT (hcp_id, product, period) DO UPDATE SET count = excluded.count",
                    &[&h, &pr, &pe, &n],
                )
                .await
                .map_err(pg_err)?;
                // The experiment's units of these HCPs read their prescriptions from kept sums.
                let mut hcps: Vec<&str> = rows.iter().map(|p| p.hcp_id.as_str()).collect();
                hcps.sort_unstable();
                hcps.dedup();
                super::insight::refresh_rx(tx, &hcps).await?;
                Ok(rows.len())
            })
        })
    }

    fn prescriptions(&self, hcp_id: &str) -> Result<Vec<Prescription>> {
        let h = hcp_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .query("SELECT hcp_id, product, period, count FROM prescriptions WHERE hcp_id = $1 ORDER BY product, period", &[&h])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| Prescription { hcp_id: r.get(0), product: r.get(1), period: r.get(2), count: r.get::<_, i64>(3) as u64 })
                    .collect())
            })
        })
    }
}
