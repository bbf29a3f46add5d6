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
                for p in &rows {
                    tx.execute(
                        "INSERT INTO prescriptions (hcp_id, product, period, count) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (hcp_id, product, period) DO UPDATE SET count = excluded.count",
                        &[&p.hcp_id, &p.product, &p.period, &(p.count as i64)],
                    )
                    .await
                    .map_err(pg_err)?;
                }
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
