//! The PostgreSQL store: territories, bundle versions, publish claims and blob leases, revocations
//! and the change feed (`FeedStore`).

use super::*;

impl FeedStore for PgStore {
    fn set_territory(&self, name: &str, products: &[String], now: DateTime<Utc>) -> Result<()> {
        let (name, products) = (name.to_string(), products.to_vec());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute("INSERT INTO territories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&name, &now])
                    .await
                    .map_err(pg_err)?;
                tx.execute("DELETE FROM territory_products WHERE territory = $1", &[&name]).await.map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO territory_products (territory, product) SELECT $1, p FROM UNNEST($2::text[]) AS p ON CONFLICT DO NOTHING",
                    &[&name, &products],
                )
                .await
                .map_err(pg_err)?;
                Ok(())
            })
        })
    }

    fn territories(&self) -> Result<Vec<Territory>> {
        self.read(|tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT t.name, (SELECT COUNT(*) FROM devices d WHERE d.territory = t.name), \
                         COALESCE((SELECT array_agg(p.product ORDER BY p.product) FROM territory_products p WHERE p.territory = t.name), '{}') \
                         FROM territories t ORDER BY t.name",
                        &[],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(rows
                    .iter()
                    .map(|r| Territory { name: r.get(0), devices: r.get::<_, i64>(1) as u64, products: r.get(2) })
                    .collect())
            })
        })
    }

    fn territories_for_product(&self, product: &str) -> Result<Vec<String>> {
        let product = product.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query("SELECT territory FROM territory_products WHERE product = $1 ORDER BY territory", &[&product])
                    .await
                    .map_err(pg_err)?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
    }

    fn current_version(&self, bundle_id: &str) -> Result<Option<u64>> {
        let id = bundle_id.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let v: Option<i64> =
                c.query_one("SELECT MAX(version) FROM bundle_versions WHERE bundle_id = $1", &[&id]).await.map_err(pg_err)?.get(0);
            Ok(v.map(|v| v as u64))
        })
    }

    fn insert_bundle_version(&self, v: &NewBundleVersion, audit: Option<&Audited<i64>>) -> Result<i64> {
        let version = i64::try_from(v.version).map_err(|_| Error::InvalidBundle("version out of range".into()))?;
        let v = v.clone();
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let seq = next_feed_seq(tx).await?;
                let current: Option<i64> = tx
                    .query_one("SELECT MAX(version) FROM bundle_versions WHERE bundle_id = $1", &[&v.bundle_id])
                    .await
                    .map_err(pg_err)?
                    .get(0);
                if let Some(cur) = current
                    && cur >= version
                {
                    return Err(Error::VersionConflict { bundle_id: v.bundle_id.clone(), current: cur as u64, offered: v.version });
                }
                if let Some(claim) = &v.claim_id {
                    let held = tx
                        .execute("DELETE FROM publish_claims WHERE claim_id = $1 AND expires_at > $2", &[claim, &v.published_at])
                        .await
                        .map_err(pg_err)?;
                    if held == 0 {
                        return Err(claim_lost());
                    }
                    tx.execute("DELETE FROM blob_leases WHERE claim_id = $1", &[claim]).await.map_err(pg_err)?;
                }
                tx.execute(
                    "INSERT INTO bundles (id, product) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET product = excluded.product",
                    &[&v.bundle_id, &v.product],
                )
                .await
                .map_err(pg_err)?;
                let total: i64 = v.files.iter().map(|(_, s)| *s as i64).sum();
                tx.execute(
                    "INSERT INTO bundle_versions (bundle_id, version, manifest, signature, product, total_size, zip_sha256, \
                     zip_size, publisher, published_at, feed_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    &[
                        &v.bundle_id,
                        &version,
                        &v.manifest,
                        &v.signature,
                        &v.product,
                        &total,
                        &v.zip_sha256,
                        &(v.zip_size as i64),
                        &v.publisher,
                        &v.published_at,
                        &seq,
                    ],
                )
                .await
                .map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO bundle_territories (bundle_id, version, territory) SELECT $1, $2, t FROM UNNEST($3::text[]) AS t \
                     ON CONFLICT DO NOTHING",
                    &[&v.bundle_id, &version, &v.territories],
                )
                .await
                .map_err(pg_err)?;
                let (shas, sizes): (Vec<String>, Vec<i64>) = v.files.iter().map(|(s, n)| (s.clone(), *n as i64)).unzip();
                tx.execute(
                    "INSERT INTO bundle_files (bundle_id, version, sha256, size) SELECT $1, $2, f.sha, f.size \
                     FROM UNNEST($3::text[], $4::bigint[]) AS f(sha, size) ON CONFLICT DO NOTHING",
                    &[&v.bundle_id, &version, &shas, &sizes],
                )
                .await
                .map_err(pg_err)?;
                Ok(seq)
            })
        })
    }

    fn claim_publish(&self, claim: &PublishClaim, now: DateTime<Utc>) -> Result<()> {
        let version = i64::try_from(claim.version).map_err(|_| Error::InvalidBundle("version out of range".into()))?;
        let claim = claim.clone();
        self.write(move |tx| {
            Box::pin(async move {
                // The claim first, the version check after: a statement sees what committed
                // before it started, so a version recorded while the claim waited on the row
                // of the claim it ended is seen by the check.
                let claimed = tx
                    .query_opt(
                        "INSERT INTO publish_claims (bundle_id, version, claim_id, expires_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (bundle_id, version) DO UPDATE SET claim_id = excluded.claim_id, expires_at = excluded.expires_at \
                         WHERE publish_claims.expires_at <= $5 RETURNING claim_id",
                        &[&claim.bundle_id, &version, &claim.claim_id, &claim.expires_at, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                let current: Option<i64> = tx
                    .query_one("SELECT MAX(version) FROM bundle_versions WHERE bundle_id = $1", &[&claim.bundle_id])
                    .await
                    .map_err(pg_err)?
                    .get(0);
                if let Some(cur) = current
                    && cur >= version
                {
                    return Err(Error::VersionConflict { bundle_id: claim.bundle_id.clone(), current: cur as u64, offered: claim.version });
                }
                if claimed.is_none() {
                    return Err(Error::PublishInProgress { bundle_id: claim.bundle_id.clone(), version: claim.version });
                }
                Ok(())
            })
        })
    }

    fn lease_blobs(&self, claim_id: &str, hashes: &[String], now: DateTime<Utc>) -> Result<Vec<String>> {
        let claim = claim_id.to_string();
        let mut hashes = hashes.to_vec();
        hashes.sort();
        hashes.dedup();
        self.write(move |tx| {
            Box::pin(async move {
                let live = tx
                    .query_opt("SELECT 1 FROM publish_claims WHERE claim_id = $1 AND expires_at > $2 FOR SHARE", &[&claim, &now])
                    .await
                    .map_err(pg_err)?;
                if live.is_none() {
                    return Err(claim_lost());
                }
                let mut blocked = Vec::new();
                for h in hashes {
                    lock_blob(tx, &h).await?;
                    if tx.query_opt("SELECT 1 FROM blob_deletions WHERE sha256 = $1", &[&h]).await.map_err(pg_err)?.is_some() {
                        blocked.push(h);
                        continue;
                    }
                    tx.execute("INSERT INTO blob_leases (claim_id, sha256) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&claim, &h])
                        .await
                        .map_err(pg_err)?;
                }
                Ok(blocked)
            })
        })
    }

    fn release_claim(&self, claim_id: &str, owner: &str, now: DateTime<Utc>) -> Result<Vec<String>> {
        let (claim, owner) = (claim_id.to_string(), owner.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                let rows =
                    tx.query("SELECT sha256 FROM blob_leases WHERE claim_id = $1 ORDER BY sha256", &[&claim]).await.map_err(pg_err)?;
                let mut marked = Vec::new();
                for h in rows.iter().map(|r| r.get::<_, String>(0)) {
                    lock_blob(tx, &h).await?;
                    let row = tx
                        .query_opt(
                            &format!(
                                "INSERT INTO blob_deletions (sha256, owner, marked_at) SELECT $1, $4, $3 \
                                 WHERE NOT {BLOB_REFERENCED} AND NOT {BLOB_LEASED_BY_OTHERS} ON CONFLICT (sha256) DO NOTHING \
                                 RETURNING sha256"
                            ),
                            &[&h, &claim, &now, &owner],
                        )
                        .await
                        .map_err(pg_err)?;
                    if row.is_some() {
                        marked.push(h);
                    }
                }
                tx.execute("DELETE FROM blob_leases WHERE claim_id = $1", &[&claim]).await.map_err(pg_err)?;
                tx.execute("DELETE FROM publish_claims WHERE claim_id = $1", &[&claim]).await.map_err(pg_err)?;
                Ok(marked)
            })
        })
    }

    fn all_claims(&self) -> Result<Vec<String>> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query("SELECT claim_id FROM publish_claims UNION SELECT claim_id FROM blob_leases ORDER BY 1", &[])
                    .await
                    .map_err(pg_err)?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
    }

    fn dead_claims(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT claim_id FROM publish_claims WHERE expires_at <= $1 \
                         UNION SELECT claim_id FROM blob_leases WHERE claim_id NOT IN (SELECT claim_id FROM publish_claims) ORDER BY 1",
                        &[&now],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
    }

    fn take_stale_blob_deletions(&self, owner: &str, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<Vec<String>> {
        let owner = owner.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                let rows =
                    tx.query("SELECT sha256 FROM blob_deletions WHERE marked_at < $1 ORDER BY sha256", &[&before]).await.map_err(pg_err)?;
                let mut taken = Vec::new();
                for h in rows.iter().map(|r| r.get::<_, String>(0)) {
                    lock_blob(tx, &h).await?;
                    let keep: bool = tx
                        .query_one(&format!("SELECT {BLOB_REFERENCED} OR {BLOB_LEASED_BY_OTHERS}"), &[&h, &"", &now])
                        .await
                        .map_err(pg_err)?
                        .get(0);
                    if keep {
                        tx.execute("DELETE FROM blob_deletions WHERE sha256 = $1", &[&h]).await.map_err(pg_err)?;
                        continue;
                    }
                    let n = tx
                        .execute(
                            "UPDATE blob_deletions SET owner = $2, marked_at = $3 WHERE sha256 = $1 AND marked_at < $4",
                            &[&h, &owner, &now, &before],
                        )
                        .await
                        .map_err(pg_err)?;
                    if n > 0 {
                        taken.push(h);
                    }
                }
                Ok(taken)
            })
        })
    }

    fn finish_blob_deletion(&self, sha256: &str, owner: &str) -> Result<()> {
        let (h, owner) = (sha256.to_string(), owner.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute("DELETE FROM blob_deletions WHERE sha256 = $1 AND owner = $2", &[&h, &owner]).await.map_err(pg_err)?;
                Ok(())
            })
        })
    }

    fn revoke(&self, bundle_id: &str, reason: &str, now: DateTime<Utc>, audit: Option<&Audited<i64>>) -> Result<i64> {
        let (id, reason) = (bundle_id.to_string(), reason.to_string());
        self.write_audited(audit, move |tx| {
            Box::pin(async move {
                let seq = next_feed_seq(tx).await?;
                if tx.query_opt("SELECT id FROM bundles WHERE id = $1", &[&id]).await.map_err(pg_err)?.is_none() {
                    return Err(Error::NotFound(format!("bundle {id}")));
                }
                tx.execute(
                    "INSERT INTO revocations (bundle_id, reason, revoked_at, feed_seq) VALUES ($1, $2, $3, $4)",
                    &[&id, &reason, &now, &seq],
                )
                .await
                .map_err(pg_err)?;
                Ok(seq)
            })
        })
    }

    fn changes_for(&self, territory: &str, rep_id: Option<&str>, since: i64, limit: usize) -> Result<FeedPage> {
        let territory = territory.to_string();
        let rep_id = rep_id.map(str::to_string);
        self.read(move |tx| {
            Box::pin(async move {
                let fetch = (limit + 1) as i64;
                let sql = format!(
                    "SELECT v.feed_seq, v.bundle_id, v.version, v.manifest, v.signature, v.total_size FROM bundle_versions v \
                     WHERE v.feed_seq > $2 AND {ENTITLED} AND NOT {REVOKED} \
                     AND NOT EXISTS (SELECT 1 FROM bundle_versions w JOIN bundle_territories t2 \
                         ON t2.bundle_id = w.bundle_id AND t2.version = w.version AND t2.territory IN ($1, '*') \
                         WHERE w.bundle_id = v.bundle_id AND w.version > v.version) \
                     ORDER BY v.feed_seq LIMIT $3"
                );
                let bundles = tx
                    .query(&sql, &[&territory, &since, &fetch])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| FeedBundle {
                        feed_seq: r.get(0),
                        bundle_id: r.get(1),
                        version: r.get::<_, i64>(2) as u64,
                        manifest: r.get(3),
                        signature: r.get(4),
                        total_size: r.get::<_, i64>(5) as u64,
                    })
                    .collect();
                let sql = format!(
                    "SELECT r.feed_seq, r.bundle_id, r.reason, r.revoked_at FROM revocations r WHERE r.feed_seq > $2 \
                     AND EXISTS (SELECT 1 FROM bundle_versions v WHERE v.bundle_id = r.bundle_id AND {ENTITLED}) \
                     ORDER BY r.feed_seq LIMIT $3"
                );
                let revocations = tx
                    .query(&sql, &[&territory, &since, &fetch])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| FeedRevocation {
                        feed_seq: r.get(0),
                        revocation: Revocation { bundle_id: r.get(1), reason: r.get(2), revoked_at: r.get(3) },
                    })
                    .collect();
                let plans = tx
                    .query(PLAN_FEED_SQL, &[&territory, &since, &fetch, &rep_id])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| FeedPlan { feed_seq: r.get(0), plan: r.get(1), signature: r.get(2) })
                    .collect();
                // Erasures and consents concern HCPs, not territories: every device gets them.
                let erasures = tx
                    .query(
                        "SELECT feed_seq, hcp_id, erased_at FROM erasures WHERE feed_seq > $1 ORDER BY feed_seq LIMIT $2",
                        &[&since, &fetch],
                    )
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| FeedErasure { feed_seq: r.get(0), erasure: Erasure { hcp_id: r.get(1), erased_at: r.get(2) } })
                    .collect();
                let consents = tx
                    .query(
                        "SELECT feed_seq, hcp_id, tracking, updated_at FROM consents WHERE feed_seq > $1 ORDER BY feed_seq LIMIT $2",
                        &[&since, &fetch],
                    )
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(consent_row)
                    .collect::<Result<Vec<_>>>()?;
                let head: i64 = tx.query_one("SELECT value FROM feed_counter WHERE id = 1", &[]).await.map_err(pg_err)?.get(0);
                let items = FeedPage { bundles, revocations, plans, erasures, consents, ..FeedPage::default() };
                Ok(crate::store::merge_page(items, since, head, limit))
            })
        })
    }

    fn blob_entitled(&self, territory: &str, sha256: &str) -> Result<Option<u64>> {
        let (territory, sha) = (territory.to_string(), sha256.to_string());
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let sql = format!(
                "SELECT f.size FROM bundle_files f JOIN bundle_versions v ON v.bundle_id = f.bundle_id AND v.version = f.version \
                 WHERE f.sha256 = $2 AND {ENTITLED} AND NOT {REVOKED} LIMIT 1"
            );
            let row = c.query_opt(&sql, &[&territory, &sha]).await.map_err(pg_err)?;
            Ok(row.map(|r| r.get::<_, i64>(0) as u64))
        })
    }

    fn bundle_zip(&self, territory: &str, bundle_id: &str, version: u64) -> Result<Option<(String, u64)>> {
        let (territory, id) = (territory.to_string(), bundle_id.to_string());
        let version = version as i64;
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let sql = format!(
                "SELECT v.zip_sha256, v.zip_size FROM bundle_versions v \
                 WHERE v.bundle_id = $2 AND v.version = $3 AND {ENTITLED} AND NOT {REVOKED}"
            );
            let row = c.query_opt(&sql, &[&territory, &id, &version]).await.map_err(pg_err)?;
            Ok(row.map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64)))
        })
    }

    fn latest_entitled_version(&self, territory: &str, bundle_id: &str) -> Result<Option<u64>> {
        let (territory, id) = (territory.to_string(), bundle_id.to_string());
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let sql = format!("SELECT MAX(v.version) FROM bundle_versions v WHERE v.bundle_id = $2 AND {ENTITLED} AND NOT {REVOKED}");
            let row = c.query_one(&sql, &[&territory, &id]).await.map_err(pg_err)?;
            Ok(row.get::<_, Option<i64>>(0).map(|v| v as u64))
        })
    }

    fn bundle_manifest(&self, bundle_id: &str, version: u64) -> Result<Option<Vec<u8>>> {
        let b = bundle_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .query_opt("SELECT manifest FROM bundle_versions WHERE bundle_id = $1 AND version = $2", &[&b, &(version as i64)])
                    .await
                    .map_err(pg_err)?
                    .map(|r| r.get(0)))
            })
        })
    }
}

/// Takes the advisory lock of each hash (sorted and deduplicated by the caller, so two
/// transactions always lock in the same order and cannot deadlock), held until the end of `tx`.
async fn lock_blob(tx: &Transaction<'_>, sha256: &str) -> Result<()> {
    let key = u32::from_str_radix(sha256.get(..8).unwrap_or(sha256), 16).unwrap_or(0) as i32;
    tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&BLOB_LOCK_CLASS, &key]).await.map_err(pg_err)?;
    Ok(())
}

/// First key ("blob" in ASCII) of the per-blob transaction advisory locks (the two-key form;
/// the second key is the hash's first 32 bits). A blob lease and a deletion marker are only
/// written under the blob's lock, so a publish never leases a blob whose deletion was decided
/// and a deletion is never decided while a lease is being taken (ADR 0016).
pub const BLOB_LOCK_CLASS: i32 = 0x626c_6f62;

/// SQL condition: blob `$1` is referenced by a bundle version (a file or its zip).
const BLOB_REFERENCED: &str = "(EXISTS (SELECT 1 FROM bundle_files WHERE sha256 = $1) \
     OR EXISTS (SELECT 1 FROM bundle_versions WHERE zip_sha256 = $1))";

/// SQL condition: blob `$1` is leased by a claim other than `$2` unexpired at `$3`.
const BLOB_LEASED_BY_OTHERS: &str = "EXISTS (SELECT 1 FROM blob_leases l JOIN publish_claims c ON c.claim_id = l.claim_id \
     WHERE l.sha256 = $1 AND l.claim_id <> $2 AND c.expires_at > $3)";

/// The claim expired or was taken over: the publish must start again.
fn claim_lost() -> Error {
    Error::Unavailable("the publish claim expired or was taken over: publish again".into())
}

/// SQL condition: version `v` is offered to territory `$1`.
const ENTITLED: &str = "EXISTS (SELECT 1 FROM bundle_territories t WHERE t.bundle_id = v.bundle_id \
     AND t.version = v.version AND t.territory IN ($1, '*'))";

/// SQL condition: version `v` was revoked after it was published.
const REVOKED: &str = "EXISTS (SELECT 1 FROM revocations r WHERE r.bundle_id = v.bundle_id AND r.feed_seq > v.feed_seq)";

/// A territory's plans after a feed number (`$1` territory, `$2` since, `$3` limit), for the
/// devices of rep `$4` (NULL: every device of the territory): those of HCPs on her target list
/// or that she has called on, all of them when she has no list. By `plans_by_territory`, then
/// per plan the rep's list and her calls on the HCP by their keys.
pub(crate) const PLAN_FEED_SQL: &str = "SELECT p.feed_seq, p.plan, p.signature FROM plans p \
     WHERE p.territory = $1 AND p.feed_seq > $2 AND ($4::text IS NULL \
     OR NOT EXISTS (SELECT 1 FROM rep_targets WHERE rep_id = $4) \
     OR EXISTS (SELECT 1 FROM rep_targets t WHERE t.rep_id = $4 AND t.hcp_id = p.hcp_id) \
     OR EXISTS (SELECT 1 FROM call_hcps ch JOIN devices d ON d.id = ch.device_id WHERE ch.hcp_id = p.hcp_id AND d.rep_id = $4)) \
     ORDER BY p.feed_seq LIMIT $3";
