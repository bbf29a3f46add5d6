//! The SQLite store: territories, bundle versions, publish claims and blob leases, revocations and
//! the change feed (`FeedStore`).

use super::*;

impl FeedStore for SqliteStore {
    fn set_territory(&self, name: &str, products: &[String], now: DateTime<Utc>) -> Result<()> {
        self.write(|tx| {
            tx.execute("INSERT OR IGNORE INTO territories (name, created_at) VALUES (?1, ?2)", params![name, time_text(now)])?;
            tx.execute("DELETE FROM territory_products WHERE territory = ?1", [name])?;
            for p in products {
                tx.execute("INSERT OR IGNORE INTO territory_products (territory, product) VALUES (?1, ?2)", params![name, p])?;
            }
            Ok(())
        })
    }

    fn territories(&self) -> Result<Vec<Territory>> {
        self.read(|c| {
            let mut st =
                c.prepare("SELECT t.name, (SELECT COUNT(*) FROM devices d WHERE d.territory = t.name) FROM territories t ORDER BY t.name")?;
            let mut out = st
                .query_map([], |r| Ok(Territory { name: r.get(0)?, products: Vec::new(), devices: r.get::<_, i64>(1)? as u64 }))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut st = c.prepare("SELECT product FROM territory_products WHERE territory = ?1 ORDER BY product")?;
            for t in &mut out {
                t.products = st.query_map([&t.name], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
            }
            Ok(out)
        })
    }

    fn territories_for_product(&self, product: &str) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT territory FROM territory_products WHERE product = ?1 ORDER BY territory")?;
            Ok(st.query_map([product], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn current_version(&self, bundle_id: &str) -> Result<Option<u64>> {
        self.read(|c| {
            let v: Option<i64> = c.query_row("SELECT MAX(version) FROM bundle_versions WHERE bundle_id = ?1", [bundle_id], |r| r.get(0))?;
            Ok(v.map(|v| v as u64))
        })
    }

    fn insert_bundle_version(&self, v: &NewBundleVersion, audit: Option<&Audited<i64>>) -> Result<i64> {
        let version = i64::try_from(v.version).map_err(|_| Error::InvalidBundle("version out of range".into()))?;
        self.write_audited(audit, |tx| {
            let current: Option<i64> =
                tx.query_row("SELECT MAX(version) FROM bundle_versions WHERE bundle_id = ?1", [&v.bundle_id], |r| r.get(0))?;
            if let Some(cur) = current
                && cur >= version
            {
                return Err(Error::VersionConflict { bundle_id: v.bundle_id.clone(), current: cur as u64, offered: v.version });
            }
            if let Some(claim) = &v.claim_id {
                let held = tx
                    .execute("DELETE FROM publish_claims WHERE claim_id = ?1 AND expires_at_ms > ?2", params![claim, ms(v.published_at)])?;
                if held == 0 {
                    return Err(Error::Unavailable("the publish claim expired or was taken over: publish again".into()));
                }
                tx.execute("DELETE FROM blob_leases WHERE claim_id = ?1", [claim])?;
            }
            let seq = next_feed_seq(tx)?;
            tx.execute(
                "INSERT INTO bundles (id, product) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET product = excluded.product",
                params![v.bundle_id, v.product],
            )?;
            let total: u64 = v.files.iter().map(|(_, s)| s).sum();
            tx.execute(
                "INSERT INTO bundle_versions (bundle_id, version, manifest, signature, product, total_size, zip_sha256, \
                 zip_size, publisher, published_at, feed_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    v.bundle_id,
                    version,
                    v.manifest,
                    v.signature,
                    v.product,
                    total as i64,
                    v.zip_sha256,
                    v.zip_size as i64,
                    v.publisher,
                    time_text(v.published_at),
                    seq
                ],
            )?;
            for t in &v.territories {
                tx.execute(
                    "INSERT OR IGNORE INTO bundle_territories (bundle_id, version, territory) VALUES (?1, ?2, ?3)",
                    params![v.bundle_id, version, t],
                )?;
            }
            for (sha, size) in &v.files {
                tx.execute(
                    "INSERT OR IGNORE INTO bundle_files (bundle_id, version, sha256, size) VALUES (?1, ?2, ?3, ?4)",
                    params![v.bundle_id, version, sha, *size as i64],
                )?;
            }
            Ok(seq)
        })
    }

    // The single writer connection serialises every claim, lease and marker transaction
    // (immediate transactions), so no further locking is needed on SQLite.
    fn claim_publish(&self, claim: &PublishClaim, now: DateTime<Utc>) -> Result<()> {
        let version = i64::try_from(claim.version).map_err(|_| Error::InvalidBundle("version out of range".into()))?;
        self.write(|tx| {
            let current: Option<i64> =
                tx.query_row("SELECT MAX(version) FROM bundle_versions WHERE bundle_id = ?1", [&claim.bundle_id], |r| r.get(0))?;
            if let Some(cur) = current
                && cur >= version
            {
                return Err(Error::VersionConflict { bundle_id: claim.bundle_id.clone(), current: cur as u64, offered: claim.version });
            }
            let live: Option<String> = tx
                .query_row(
                    "SELECT claim_id FROM publish_claims WHERE bundle_id = ?1 AND version = ?2 AND expires_at_ms > ?3",
                    params![claim.bundle_id, version, ms(now)],
                    |r| r.get(0),
                )
                .optional()?;
            if live.is_some() {
                return Err(Error::PublishInProgress { bundle_id: claim.bundle_id.clone(), version: claim.version });
            }
            tx.execute(
                "INSERT INTO publish_claims (bundle_id, version, claim_id, expires_at_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (bundle_id, version) DO UPDATE SET claim_id = excluded.claim_id, expires_at_ms = excluded.expires_at_ms",
                params![claim.bundle_id, version, claim.claim_id, ms(claim.expires_at)],
            )?;
            Ok(())
        })
    }

    fn lease_blobs(&self, claim_id: &str, hashes: &[String], now: DateTime<Utc>) -> Result<Vec<String>> {
        self.write(|tx| {
            let live: Option<String> = tx
                .query_row(
                    "SELECT claim_id FROM publish_claims WHERE claim_id = ?1 AND expires_at_ms > ?2",
                    params![claim_id, ms(now)],
                    |r| r.get(0),
                )
                .optional()?;
            if live.is_none() {
                return Err(Error::Unavailable("the publish claim expired or was taken over: publish again".into()));
            }
            let mut blocked = Vec::new();
            for h in hashes {
                let marked: Option<String> =
                    tx.query_row("SELECT sha256 FROM blob_deletions WHERE sha256 = ?1", [h], |r| r.get(0)).optional()?;
                if marked.is_some() {
                    blocked.push(h.clone());
                    continue;
                }
                tx.execute("INSERT OR IGNORE INTO blob_leases (claim_id, sha256) VALUES (?1, ?2)", params![claim_id, h])?;
            }
            Ok(blocked)
        })
    }

    fn release_claim(&self, claim_id: &str, owner: &str, now: DateTime<Utc>) -> Result<Vec<String>> {
        self.write(|tx| {
            let hashes: Vec<String> = {
                let mut st = tx.prepare("SELECT sha256 FROM blob_leases WHERE claim_id = ?1 ORDER BY sha256")?;
                st.query_map([claim_id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
            };
            let mut marked = Vec::new();
            for h in hashes {
                let n = tx.execute(
                    &format!(
                        "INSERT INTO blob_deletions (sha256, owner, marked_at_ms) SELECT ?1, ?4, ?3 \
                         WHERE NOT {BLOB_REFERENCED} AND NOT {BLOB_LEASED_BY_OTHERS} ON CONFLICT (sha256) DO NOTHING"
                    ),
                    params![h, claim_id, ms(now), owner],
                )?;
                if n > 0 {
                    marked.push(h);
                }
            }
            tx.execute("DELETE FROM blob_leases WHERE claim_id = ?1", [claim_id])?;
            tx.execute("DELETE FROM publish_claims WHERE claim_id = ?1", [claim_id])?;
            Ok(marked)
        })
    }

    fn dead_claims(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT claim_id FROM publish_claims WHERE expires_at_ms <= ?1 \
                 UNION SELECT claim_id FROM blob_leases WHERE claim_id NOT IN (SELECT claim_id FROM publish_claims) ORDER BY 1",
            )?;
            Ok(st.query_map([ms(now)], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn all_claims(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT claim_id FROM publish_claims UNION SELECT claim_id FROM blob_leases ORDER BY 1")?;
            Ok(st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn take_stale_blob_deletions(&self, owner: &str, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<Vec<String>> {
        self.write(|tx| {
            let hashes: Vec<String> = {
                let mut st = tx.prepare("SELECT sha256 FROM blob_deletions WHERE marked_at_ms < ?1 ORDER BY sha256")?;
                st.query_map([ms(before)], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
            };
            let mut taken = Vec::new();
            for h in hashes {
                let keep: bool =
                    tx.query_row(&format!("SELECT {BLOB_REFERENCED} OR {BLOB_LEASED_BY_OTHERS}"), params![h, "", ms(now)], |r| r.get(0))?;
                if keep {
                    tx.execute("DELETE FROM blob_deletions WHERE sha256 = ?1", [&h])?;
                } else {
                    tx.execute("UPDATE blob_deletions SET owner = ?2, marked_at_ms = ?3 WHERE sha256 = ?1", params![h, owner, ms(now)])?;
                    taken.push(h);
                }
            }
            Ok(taken)
        })
    }

    fn finish_blob_deletion(&self, sha256: &str, owner: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM blob_deletions WHERE sha256 = ?1 AND owner = ?2", params![sha256, owner])?;
            Ok(())
        })
    }

    fn revoke(&self, bundle_id: &str, reason: &str, now: DateTime<Utc>, audit: Option<&Audited<i64>>) -> Result<i64> {
        self.write_audited(audit, |tx| {
            let known: Option<String> = tx.query_row("SELECT id FROM bundles WHERE id = ?1", [bundle_id], |r| r.get(0)).optional()?;
            if known.is_none() {
                return Err(Error::NotFound(format!("bundle {bundle_id}")));
            }
            let seq = next_feed_seq(tx)?;
            tx.execute(
                "INSERT INTO revocations (bundle_id, reason, revoked_at, feed_seq) VALUES (?1, ?2, ?3, ?4)",
                params![bundle_id, reason, time_text(now), seq],
            )?;
            Ok(seq)
        })
    }

    fn changes_for(&self, territory: &str, rep_id: Option<&str>, since: i64, limit: usize) -> Result<FeedPage> {
        self.read(|c| {
            let fetch = (limit + 1) as i64;
            // Offered: entitled, not revoked since, and no higher entitled version exists.
            let sql = format!(
                "SELECT v.feed_seq, v.bundle_id, v.version, v.manifest, v.signature, v.total_size FROM bundle_versions v \
                 WHERE v.feed_seq > ?2 AND {ENTITLED} AND NOT {REVOKED} \
                 AND NOT EXISTS (SELECT 1 FROM bundle_versions w JOIN bundle_territories t2 \
                     ON t2.bundle_id = w.bundle_id AND t2.version = w.version AND t2.territory IN (?1, '*') \
                     WHERE w.bundle_id = v.bundle_id AND w.version > v.version) \
                 ORDER BY v.feed_seq LIMIT ?3"
            );
            let mut st = c.prepare(&sql)?;
            let bundles = st
                .query_map(params![territory, since, fetch], |r| {
                    Ok(FeedBundle {
                        feed_seq: r.get(0)?,
                        bundle_id: r.get(1)?,
                        version: r.get::<_, i64>(2)? as u64,
                        manifest: r.get(3)?,
                        signature: r.get(4)?,
                        total_size: r.get::<_, i64>(5)? as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let sql = format!(
                "SELECT r.feed_seq, r.bundle_id, r.reason, r.revoked_at FROM revocations r WHERE r.feed_seq > ?2 \
                 AND EXISTS (SELECT 1 FROM bundle_versions v WHERE v.bundle_id = r.bundle_id AND {ENTITLED}) \
                 ORDER BY r.feed_seq LIMIT ?3"
            );
            let mut st = c.prepare(&sql)?;
            let revocations = st
                .query_map(params![territory, since, fetch], |r| {
                    Ok(FeedRevocation {
                        feed_seq: r.get(0)?,
                        revocation: Revocation {
                            bundle_id: r.get(1)?,
                            reason: r.get(2)?,
                            revoked_at: parse_time(&r.get::<_, String>(3)?)?,
                        },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut st = c.prepare_cached(PLAN_FEED_SQL)?;
            let plans = st
                .query_map(params![territory, since, fetch, rep_id], |r| {
                    Ok(FeedPlan { feed_seq: r.get(0)?, plan: r.get(1)?, signature: r.get(2)? })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // Erasures and consents concern HCPs, who are not bound to a territory: every
            // territory's devices receive them.
            let mut st =
                c.prepare_cached("SELECT feed_seq, hcp_id, erased_at FROM erasures WHERE feed_seq > ?1 ORDER BY feed_seq LIMIT ?2")?;
            let erasures = st
                .query_map(params![since, fetch], |r| {
                    Ok(FeedErasure {
                        feed_seq: r.get(0)?,
                        erasure: Erasure { hcp_id: r.get(1)?, erased_at: parse_time(&r.get::<_, String>(2)?)? },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut st = c.prepare_cached(
                "SELECT feed_seq, hcp_id, tracking, updated_at FROM consents WHERE feed_seq > ?1 ORDER BY feed_seq LIMIT ?2",
            )?;
            let consents = st.query_map(params![since, fetch], consent_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            let head: i64 = c.query_row("SELECT value FROM feed_counter WHERE id = 1", [], |r| r.get(0))?;
            let items = FeedPage { bundles, revocations, plans, erasures, consents, ..FeedPage::default() };
            Ok(crate::store::merge_page(items, since, head, limit))
        })
    }

    fn blob_entitled(&self, territory: &str, sha256: &str) -> Result<Option<u64>> {
        self.read(|c| {
            let sql = format!(
                "SELECT f.size FROM bundle_files f JOIN bundle_versions v \
                   ON v.bundle_id = f.bundle_id AND v.version = f.version \
                 WHERE f.sha256 = ?2 AND {ENTITLED} AND NOT {REVOKED} LIMIT 1"
            );
            Ok(c.query_row(&sql, params![territory, sha256], |r| r.get::<_, i64>(0)).optional()?.map(|s| s as u64))
        })
    }

    fn bundle_zip(&self, territory: &str, bundle_id: &str, version: u64) -> Result<Option<(String, u64)>> {
        self.read(|c| {
            let sql = format!(
                "SELECT v.zip_sha256, v.zip_size FROM bundle_versions v \
                 WHERE v.bundle_id = ?2 AND v.version = ?3 AND {ENTITLED} AND NOT {REVOKED}"
            );
            Ok(c.query_row(&sql, params![territory, bundle_id, version as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .optional()?)
        })
    }

    fn latest_entitled_version(&self, territory: &str, bundle_id: &str) -> Result<Option<u64>> {
        self.read(|c| {
            let sql = format!("SELECT MAX(v.version) FROM bundle_versions v WHERE v.bundle_id = ?2 AND {ENTITLED} AND NOT {REVOKED}");
            Ok(c.query_row(&sql, params![territory, bundle_id], |r| r.get::<_, Option<i64>>(0))?.map(|v| v as u64))
        })
    }

    fn bundle_manifest(&self, bundle_id: &str, version: u64) -> Result<Option<Vec<u8>>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT manifest FROM bundle_versions WHERE bundle_id = ?1 AND version = ?2",
                params![bundle_id, version as i64],
                |r| r.get(0),
            )
            .optional()?)
        })
    }
}

/// SQL condition: blob `?1` is referenced by a bundle version (a file or its zip).
const BLOB_REFERENCED: &str = "(EXISTS (SELECT 1 FROM bundle_files WHERE sha256 = ?1) \
     OR EXISTS (SELECT 1 FROM bundle_versions WHERE zip_sha256 = ?1))";

/// SQL condition: blob `?1` is leased by a claim other than `?2` unexpired at `?3` (ms).
const BLOB_LEASED_BY_OTHERS: &str = "EXISTS (SELECT 1 FROM blob_leases l JOIN publish_claims c ON c.claim_id = l.claim_id \
     WHERE l.sha256 = ?1 AND l.claim_id <> ?2 AND c.expires_at_ms > ?3)";

/// SQL condition: version `v` is offered to territory `?1`.
const ENTITLED: &str = "EXISTS (SELECT 1 FROM bundle_territories t WHERE t.bundle_id = v.bundle_id \
     AND t.version = v.version AND t.territory IN (?1, '*'))";

/// SQL condition: version `v` was revoked after it was published.
const REVOKED: &str = "EXISTS (SELECT 1 FROM revocations r WHERE r.bundle_id = v.bundle_id AND r.feed_seq > v.feed_seq)";

/// A territory's plans after a feed number (`?1` territory, `?2` since, `?3` limit), for the
/// devices of rep `?4` (NULL: every device of the territory): those of HCPs on her target list
/// or that she has called on, all of them when she has no list. By `plans_by_territory`, then
/// per plan the rep's list and her calls on the HCP by their keys.
pub(crate) const PLAN_FEED_SQL: &str = "SELECT p.feed_seq, p.plan, p.signature FROM plans p \
     WHERE p.territory = ?1 AND p.feed_seq > ?2 AND (?4 IS NULL \
     OR NOT EXISTS (SELECT 1 FROM rep_targets WHERE rep_id = ?4) \
     OR EXISTS (SELECT 1 FROM rep_targets t WHERE t.rep_id = ?4 AND t.hcp_id = p.hcp_id) \
     OR EXISTS (SELECT 1 FROM call_hcps ch JOIN devices d ON d.id = ch.device_id WHERE ch.hcp_id = p.hcp_id AND d.rep_id = ?4)) \
     ORDER BY p.feed_seq LIMIT ?3";
