//! The PostgreSQL store: the append-only audit trail (`AuditStore`).

use super::*;

impl AuditStore for PgStore {
    fn append_audit(&self, e: &NewAuditEntry) -> Result<i64> {
        let e = e.clone();
        self.write(move |tx| Box::pin(async move { insert_audit(tx, &e).await }))
    }

    fn audit_log(&self) -> Result<Vec<AuditEntry>> {
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let rows = c.query("SELECT id, at, actor, action, subject, details FROM audit_log ORDER BY id", &[]).await.map_err(pg_err)?;
            rows.iter()
                .map(|r| {
                    Ok(AuditEntry {
                        id: r.get(0),
                        at: r.get(1),
                        actor: r.get(2),
                        action: r.get(3),
                        subject: r.get(4),
                        details: json_value(r.get(5))?,
                    })
                })
                .collect()
        })
    }
}
