//! The SQLite store: HCP segments and prescriptions imported from the CRM (`CrmStore`).

use super::*;

impl CrmStore for SqliteStore {
    fn set_hcp_segments(&self, rows: &[(String, String)], now: DateTime<Utc>) -> Result<usize> {
        let now = time_text(now);
        self.write(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO hcps (id, segment, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET segment = excluded.segment, updated_at = excluded.updated_at",
            )?;
            for (id, segment) in rows {
                st.execute(params![id, segment, now])?;
            }
            Ok(rows.len())
        })
    }

    fn set_rep_targets(&self, rows: &[(String, String)], now: DateTime<Utc>) -> Result<TargetImport> {
        let now = time_text(now);
        let lists = target_lists(rows);
        self.write(|tx| {
            let mut report = TargetImport { reps: lists.len(), targets: rows.len(), ..TargetImport::default() };
            for (rep, hcps) in &lists {
                let before: BTreeSet<String> = tx
                    .prepare_cached("SELECT hcp_id FROM rep_targets WHERE rep_id = ?1")?
                    .query_map([rep], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                report.removed += before.difference(hcps).count();
                tx.execute("DELETE FROM rep_targets WHERE rep_id = ?1", [rep])?;
                let mut insert = tx.prepare_cached("INSERT INTO rep_targets (rep_id, hcp_id, assigned_at) VALUES (?1, ?2, ?3)")?;
                for hcp in hcps {
                    insert.execute(params![rep, hcp, now])?;
                }
                for hcp in hcps.difference(&before) {
                    report.added += 1;
                    // Her current plans go out again, with new feed numbers.
                    let seqs: Vec<i64> = tx
                        .prepare_cached("SELECT feed_seq FROM plans WHERE hcp_id = ?1 ORDER BY feed_seq")?
                        .query_map([hcp], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    for old in seqs {
                        let seq = next_feed_seq(tx)?;
                        tx.execute("UPDATE plans SET feed_seq = ?2 WHERE feed_seq = ?1", params![old, seq])?;
                        report.plans_resent += 1;
                    }
                }
            }
            Ok(report)
        })
    }

    fn rep_targets(&self, rep_id: &str) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT hcp_id FROM rep_targets WHERE rep_id = ?1 ORDER BY hcp_id")?;
            Ok(st.query_map([rep_id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn hcp_segment(&self, hcp_id: &str) -> Result<Option<String>> {
        self.read(|c| Ok(c.query_row("SELECT segment FROM hcps WHERE id = ?1", [hcp_id], |r| r.get(0)).optional()?))
    }

    fn hcp_segments(&self, hcp_ids: &[String]) -> Result<std::collections::HashMap<String, String>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT segment FROM hcps WHERE id = ?1")?;
            let mut out = std::collections::HashMap::new();
            for h in hcp_ids {
                if let Some(seg) = st.query_row([h], |r| r.get::<_, String>(0)).optional()? {
                    out.insert(h.clone(), seg);
                }
            }
            Ok(out)
        })
    }

    fn import_prescriptions(&self, rows: &[Prescription]) -> Result<usize> {
        self.write(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO prescriptions (hcp_id, product, period, count) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (hcp_id, product, period) DO UPDATE SET count = excluded.count",
            )?;
            for p in rows {
                st.execute(params![p.hcp_id, p.product, p.period, p.count as i64])?;
            }
            // The experiment's units of these HCPs read their prescriptions from kept sums.
            let hcps: std::collections::BTreeSet<&str> = rows.iter().map(|p| p.hcp_id.as_str()).collect();
            for h in hcps {
                super::insight::refresh_rx(tx, h)?;
            }
            Ok(rows.len())
        })
    }

    fn prescriptions(&self, hcp_id: &str) -> Result<Vec<Prescription>> {
        self.read(|c| {
            let mut st =
                c.prepare("SELECT hcp_id, product, period, count FROM prescriptions WHERE hcp_id = ?1 ORDER BY product, period")?;
            let rows = st
                .query_map([hcp_id], |r| {
                    Ok(Prescription { hcp_id: r.get(0)?, product: r.get(1)?, period: r.get(2)?, count: r.get::<_, i64>(3)? as u64 })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
