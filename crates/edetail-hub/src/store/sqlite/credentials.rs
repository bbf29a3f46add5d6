//! The SQLite store: devices, publishers, operators and their tokens (`CredentialStore`).

use super::*;

impl CredentialStore for SqliteStore {
    fn add_device(
        &self,
        device_id: &str,
        rep_id: &str,
        territory: &str,
        token_sha256: &str,
        now: DateTime<Utc>,
        token_expires_at: Option<DateTime<Utc>>,
        audit: Option<&Audited<()>>,
    ) -> Result<()> {
        self.write_audited(audit, |tx| {
            tx.execute("INSERT OR IGNORE INTO territories (name, created_at) VALUES (?1, ?2)", params![territory, time_text(now)])?;
            tx.execute(
                "INSERT INTO devices (id, rep_id, territory, token_sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![device_id, rep_id, territory, token_sha256, time_text(now)],
            )?;
            let expires = token_expires_at.unwrap_or(now + chrono::Duration::days(DEFAULT_DEVICE_TOKEN_DAYS));
            tx.execute(
                "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES (?1, 'device', ?2, ?3, ?4)",
                params![token_sha256, device_id, time_text(now), time_text(expires)],
            )?;
            Ok(())
        })
    }

    fn add_publisher(&self, name: &str, token_sha256: &str, now: DateTime<Utc>, audit: Option<&Audited<()>>) -> Result<()> {
        self.write_audited(audit, |tx| {
            let n = tx.execute(
                "INSERT OR IGNORE INTO publishers (name, token_sha256, created_at) VALUES (?1, ?2, ?3)",
                params![name, token_sha256, time_text(now)],
            )?;
            if n == 0 {
                return Err(Error::BadRequest(format!("publisher {name:?} already exists")));
            }
            let expires = now + chrono::Duration::days(DEFAULT_PUBLISHER_TOKEN_DAYS);
            tx.execute(
                "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES (?1, 'publisher', ?2, ?3, ?4)",
                params![token_sha256, name, time_text(now), time_text(expires)],
            )?;
            Ok(())
        })
    }

    fn device_by_token(&self, token_sha256: &str) -> Result<Option<DeviceRecord>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT id, rep_id, territory, watermark, skew_ms, last_seen_at FROM devices WHERE token_sha256 = ?1 \
                 OR id = (SELECT subject FROM credentials WHERE token_sha256 = ?1 AND role = 'device')",
                [token_sha256],
                |r| {
                    Ok(DeviceRecord {
                        id: r.get(0)?,
                        rep_id: r.get(1)?,
                        territory: r.get(2)?,
                        watermark: r.get(3)?,
                        skew_ms: r.get(4)?,
                        last_seen_at: r.get::<_, Option<String>>(5)?.map(|t| parse_time(&t)).transpose()?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn publisher_by_token(&self, token_sha256: &str) -> Result<Option<String>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT name FROM publishers WHERE token_sha256 = ?1 \
                 OR name = (SELECT subject FROM credentials WHERE token_sha256 = ?1 AND role = 'publisher')",
                [token_sha256],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    fn touch_device(&self, device_id: &str, now: DateTime<Utc>, skew_ms: Option<i64>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE devices SET last_seen_at = ?2, skew_ms = COALESCE(?3, skew_ms) WHERE id = ?1",
                params![device_id, time_text(now), skew_ms],
            )?;
            Ok(())
        })
    }

    fn credential(&self, token_sha256: &str) -> Result<Option<Credential>> {
        self.read(|c| {
            Ok(c.query_row(
                &format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE token_sha256 = ?1"),
                [token_sha256],
                credential_row,
            )
            .optional()?)
        })
    }

    fn credentials_of(&self, role: TokenRole, subject: &str) -> Result<Vec<Credential>> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE role = ?1 AND subject = ?2 ORDER BY created_at, rowid"
            ))?;
            Ok(st.query_map(params![role.as_str(), subject], credential_row)?.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn issue_credential(&self, n: &NewCredential, audit: Option<&Audited<()>>) -> Result<()> {
        self.write_audited(audit, |tx| {
            let exists: bool = match n.role {
                TokenRole::Device => tx.query_row("SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?1)", [&n.subject], |r| r.get(0))?,
                TokenRole::Publisher => {
                    tx.query_row("SELECT EXISTS (SELECT 1 FROM publishers WHERE name = ?1)", [&n.subject], |r| r.get(0))?
                }
                TokenRole::Operator | TokenRole::Session => {
                    tx.query_row("SELECT EXISTS (SELECT 1 FROM operators WHERE name = ?1)", [&n.subject], |r| r.get(0))?
                }
            };
            if !exists || n.subject == crate::store::MICROSITE_DEVICE && n.role == TokenRole::Device {
                return Err(Error::NotFound(format!("{} {}", n.role.as_str(), n.subject)));
            }
            if let Some(by) = n.others_expire_by {
                // An operator's rotation ends its dashboard sessions by the grace end too.
                let mut st = tx.prepare(
                    "SELECT token_sha256, expires_at FROM credentials WHERE subject = ?2 AND revoked_at IS NULL \
                     AND (role = ?1 OR (?1 = 'operator' AND role = 'session'))",
                )?;
                let rows = st
                    .query_map(params![n.role.as_str(), n.subject], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for (hash, expires) in rows {
                    let expires = expires.map(|t| parse_time(&t)).transpose()?;
                    if expires.is_none_or(|t| t > by) {
                        tx.execute("UPDATE credentials SET expires_at = ?2 WHERE token_sha256 = ?1", params![hash, time_text(by)])?;
                    }
                }
            }
            tx.execute(
                "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![n.token_sha256, n.role.as_str(), n.subject, time_text(n.created_at), n.expires_at.map(time_text)],
            )?;
            match n.role {
                TokenRole::Device => {
                    tx.execute("UPDATE devices SET token_sha256 = ?2 WHERE id = ?1", params![n.subject, n.token_sha256])?;
                }
                TokenRole::Publisher => {
                    tx.execute("UPDATE publishers SET token_sha256 = ?2 WHERE name = ?1", params![n.subject, n.token_sha256])?;
                }
                TokenRole::Operator | TokenRole::Session => {}
            }
            Ok(())
        })
    }

    fn set_credential_expiry(&self, token_sha256: &str, expires_at: Option<DateTime<Utc>>) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE credentials SET expires_at = ?2 WHERE token_sha256 = ?1",
                params![token_sha256, expires_at.map(time_text)],
            )?;
            if n == 0 {
                return Err(Error::NotFound("token".into()));
            }
            Ok(())
        })
    }

    fn revoke_credentials(&self, role: TokenRole, subject: &str, now: DateTime<Utc>, audit: Option<&Audited<u64>>) -> Result<u64> {
        self.write_audited(audit, |tx| {
            let held: i64 =
                tx.query_row("SELECT COUNT(*) FROM credentials WHERE role = ?1 AND subject = ?2", params![role.as_str(), subject], |r| {
                    r.get(0)
                })?;
            if held == 0 {
                return Err(Error::NotFound(format!("{} {subject}", role.as_str())));
            }
            let n = tx.execute(
                "UPDATE credentials SET revoked_at = ?3 WHERE subject = ?2 AND revoked_at IS NULL \
                 AND (role = ?1 OR (?1 = 'operator' AND role = 'session'))",
                params![role.as_str(), subject, time_text(now)],
            )?;
            Ok(n as u64)
        })
    }

    fn revoke_credential(&self, token_sha256: &str, now: DateTime<Utc>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE credentials SET revoked_at = ?2 WHERE token_sha256 = ?1 AND revoked_at IS NULL",
                params![token_sha256, time_text(now)],
            )?;
            Ok(())
        })
    }

    fn add_operator(
        &self,
        name: &str,
        token_sha256: &str,
        now: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
        audit: Option<&Audited<()>>,
    ) -> Result<()> {
        self.write_audited(audit, |tx| {
            let n = tx.execute("INSERT OR IGNORE INTO operators (name, created_at) VALUES (?1, ?2)", params![name, time_text(now)])?;
            if n == 0 {
                return Err(Error::BadRequest(format!("operator {name:?} already exists")));
            }
            tx.execute(
                "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES (?1, 'operator', ?2, ?3, ?4)",
                params![token_sha256, name, time_text(now), expires_at.map(time_text)],
            )?;
            Ok(())
        })
    }
}

const CREDENTIAL_COLUMNS: &str = "role, subject, created_at, expires_at, revoked_at";

fn credential_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Credential> {
    let role: String = r.get(0)?;
    let time = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> { r.get::<_, Option<String>>(i)?.map(|t| parse_time(&t)).transpose() };
    Ok(Credential {
        role: TokenRole::parse(&role).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, format!("unknown role {role:?}").into())
        })?,
        subject: r.get(1)?,
        created_at: parse_time(&r.get::<_, String>(2)?)?,
        expires_at: time(3)?,
        revoked_at: time(4)?,
    })
}
