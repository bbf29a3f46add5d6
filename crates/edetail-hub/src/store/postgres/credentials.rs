//! The PostgreSQL store: devices, publishers, operators and their tokens (`CredentialStore`).

use super::*;

impl CredentialStore for PgStore {
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
        let (id, rep, ter, tok) = (device_id.to_string(), rep_id.to_string(), territory.to_string(), token_sha256.to_string());
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                tx.execute("INSERT INTO territories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&ter, &now])
                    .await
                    .map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO devices (id, rep_id, territory, token_sha256, created_at) VALUES ($1, $2, $3, $4, $5)",
                    &[&id, &rep, &ter, &tok, &now],
                )
                .await
                .map_err(pg_err)?;
                let expires = token_expires_at.unwrap_or(now + chrono::Duration::days(DEFAULT_DEVICE_TOKEN_DAYS));
                tx.execute(
                    "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES ($1, 'device', $2, $3, $4)",
                    &[&tok, &id, &now, &expires],
                )
                .await
                .map_err(pg_err)?;
                Ok(())
            })
        })
    }

    fn add_publisher(&self, name: &str, token_sha256: &str, now: DateTime<Utc>, audit: Option<&Audited<()>>) -> Result<()> {
        let (name, tok) = (name.to_string(), token_sha256.to_string());
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute(
                        "INSERT INTO publishers (name, token_sha256, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                        &[&name, &tok, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                if n == 0 {
                    return Err(Error::BadRequest(format!("publisher {name:?} already exists")));
                }
                let expires = now + chrono::Duration::days(DEFAULT_PUBLISHER_TOKEN_DAYS);
                tx.execute(
                    "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES ($1, 'publisher', $2, $3, $4)",
                    &[&tok, &name, &now, &expires],
                )
                .await
                .map_err(pg_err)?;
                Ok(())
            })
        })
    }

    fn device_by_token(&self, token_sha256: &str) -> Result<Option<DeviceRecord>> {
        let tok = token_sha256.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let row = c
                .query_opt(
                    "SELECT id, rep_id, territory, watermark, skew_ms, last_seen_at FROM devices WHERE token_sha256 = $1 \
                     OR id = (SELECT subject FROM credentials WHERE token_sha256 = $1 AND role = 'device')",
                    &[&tok],
                )
                .await
                .map_err(pg_err)?;
            Ok(row.map(|r| DeviceRecord {
                id: r.get(0),
                rep_id: r.get(1),
                territory: r.get(2),
                watermark: r.get(3),
                skew_ms: r.get(4),
                last_seen_at: r.get(5),
            }))
        })
    }

    fn publisher_by_token(&self, token_sha256: &str) -> Result<Option<String>> {
        let tok = token_sha256.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let row = c
                .query_opt(
                    "SELECT name FROM publishers WHERE token_sha256 = $1 \
                     OR name = (SELECT subject FROM credentials WHERE token_sha256 = $1 AND role = 'publisher')",
                    &[&tok],
                )
                .await
                .map_err(pg_err)?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn touch_device(&self, device_id: &str, now: DateTime<Utc>, skew_ms: Option<i64>) -> Result<()> {
        let id = device_id.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            c.execute("UPDATE devices SET last_seen_at = $2, skew_ms = COALESCE($3, skew_ms) WHERE id = $1", &[&id, &now, &skew_ms])
                .await
                .map_err(pg_err)?;
            Ok(())
        })
    }

    fn credential(&self, token_sha256: &str) -> Result<Option<Credential>> {
        let tok = token_sha256.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let row = c
                .query_opt(&format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE token_sha256 = $1"), &[&tok])
                .await
                .map_err(pg_err)?;
            row.as_ref().map(credential_row).transpose()
        })
    }

    fn credentials_of(&self, role: TokenRole, subject: &str) -> Result<Vec<Credential>> {
        let subject = subject.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let rows = c
                .query(
                    &format!(
                        "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE role = $1 AND subject = $2 ORDER BY created_at, token_sha256"
                    ),
                    &[&role.as_str(), &subject],
                )
                .await
                .map_err(pg_err)?;
            rows.iter().map(credential_row).collect()
        })
    }

    fn issue_credential(&self, n: &NewCredential, audit: Option<&Audited<()>>) -> Result<()> {
        let n = n.clone();
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let exists_sql = match n.role {
                    TokenRole::Device => "SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1 FOR UPDATE)",
                    TokenRole::Publisher => "SELECT EXISTS (SELECT 1 FROM publishers WHERE name = $1 FOR UPDATE)",
                    TokenRole::Operator | TokenRole::Session => "SELECT EXISTS (SELECT 1 FROM operators WHERE name = $1)",
                };
                let exists: bool = tx.query_one(exists_sql, &[&n.subject]).await.map_err(pg_err)?.get(0);
                if !exists || n.subject == MICROSITE_DEVICE && n.role == TokenRole::Device {
                    return Err(Error::NotFound(format!("{} {}", n.role.as_str(), n.subject)));
                }
                if let Some(by) = n.others_expire_by {
                    tx.execute(
                        // An operator's rotation ends its dashboard sessions by the grace end too.
                        "UPDATE credentials SET expires_at = $3 WHERE subject = $2 AND revoked_at IS NULL \
                         AND (role = $1 OR ($1 = 'operator' AND role = 'session')) \
                         AND (expires_at IS NULL OR expires_at > $3)",
                        &[&n.role.as_str(), &n.subject, &by],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                tx.execute(
                    "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                    &[&n.token_sha256, &n.role.as_str(), &n.subject, &n.created_at, &n.expires_at],
                )
                .await
                .map_err(pg_err)?;
                let update = match n.role {
                    TokenRole::Device => Some("UPDATE devices SET token_sha256 = $2 WHERE id = $1"),
                    TokenRole::Publisher => Some("UPDATE publishers SET token_sha256 = $2 WHERE name = $1"),
                    TokenRole::Operator | TokenRole::Session => None,
                };
                if let Some(sql) = update {
                    tx.execute(sql, &[&n.subject, &n.token_sha256]).await.map_err(pg_err)?;
                }
                Ok(())
            })
        })
    }

    fn set_credential_expiry(&self, token_sha256: &str, expires_at: Option<DateTime<Utc>>) -> Result<()> {
        let tok = token_sha256.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute("UPDATE credentials SET expires_at = $2 WHERE token_sha256 = $1", &[&tok, &expires_at])
                    .await
                    .map_err(pg_err)?;
                if n == 0 {
                    return Err(Error::NotFound("token".into()));
                }
                Ok(())
            })
        })
    }

    fn revoke_credentials(&self, role: TokenRole, subject: &str, now: DateTime<Utc>, audit: Option<&Audited<u64>>) -> Result<u64> {
        let subject = subject.to_string();
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let held: i64 = tx
                    .query_one("SELECT COUNT(*) FROM credentials WHERE role = $1 AND subject = $2", &[&role.as_str(), &subject])
                    .await
                    .map_err(pg_err)?
                    .get(0);
                if held == 0 {
                    return Err(Error::NotFound(format!("{} {subject}", role.as_str())));
                }
                let n = tx
                    .execute(
                        "UPDATE credentials SET revoked_at = $3 WHERE subject = $2 AND revoked_at IS NULL \
                         AND (role = $1 OR ($1 = 'operator' AND role = 'session'))",
                        &[&role.as_str(), &subject, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(n)
            })
        })
    }

    fn revoke_credential(&self, token_sha256: &str, now: DateTime<Utc>) -> Result<()> {
        let tok = token_sha256.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute("UPDATE credentials SET revoked_at = $2 WHERE token_sha256 = $1 AND revoked_at IS NULL", &[&tok, &now])
                    .await
                    .map_err(pg_err)?;
                Ok(())
            })
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
        let (name, tok) = (name.to_string(), token_sha256.to_string());
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute("INSERT INTO operators (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", &[&name, &now])
                    .await
                    .map_err(pg_err)?;
                if n == 0 {
                    return Err(Error::BadRequest(format!("operator {name:?} already exists")));
                }
                tx.execute(
                    "INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at) VALUES ($1, 'operator', $2, $3, $4)",
                    &[&tok, &name, &now, &expires_at],
                )
                .await
                .map_err(pg_err)?;
                Ok(())
            })
        })
    }
}

const CREDENTIAL_COLUMNS: &str = "role, subject, created_at, expires_at, revoked_at";

fn credential_row(r: &tokio_postgres::Row) -> Result<Credential> {
    let role: String = r.get(0);
    Ok(Credential {
        role: TokenRole::parse(&role).ok_or_else(|| Error::Internal(format!("unknown credential role {role:?}")))?,
        subject: r.get(1),
        created_at: r.get(2),
        expires_at: r.get(3),
        revoked_at: r.get(4),
    })
}
