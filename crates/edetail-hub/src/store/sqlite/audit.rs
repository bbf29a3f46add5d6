//! The SQLite store: the append-only audit trail (`AuditStore`).

use super::*;

impl AuditStore for SqliteStore {
    fn append_audit(&self, e: &NewAuditEntry) -> Result<i64> {
        self.write(|tx| insert_audit(tx, e))
    }

    fn audit_log(&self) -> Result<Vec<AuditEntry>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT id, at, actor, action, subject, details FROM audit_log ORDER BY id")?;
            Ok(st
                .query_map([], |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        at: parse_time(&r.get::<_, String>(1)?)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        subject: r.get(4)?,
                        details: json_value(&r.get::<_, String>(5)?)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}
