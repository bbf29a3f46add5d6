//! Credential administration: registering devices, publishers and operators, rotating and
//! revoking their tokens, and the audit trail's stand-alone entries.

use chrono::Utc;

use crate::audit::{audit_entry, cli_actor};
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::publish;
use crate::store;
use crate::tokens::{new_token, token_hash};

/// A device registered by an operator. The token is shown once; the hub keeps only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceCredentials {
    pub device_id: String,
    pub token: String,
}

/// Longest token lifetime accepted (`--token-days`).
pub const MAX_TOKEN_DAYS: i64 = 3650;

fn token_expiry(days: i64) -> Result<chrono::DateTime<Utc>> {
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(Error::BadRequest(format!("token lifetime must be 1 to {MAX_TOKEN_DAYS} days")));
    }
    Ok(Utc::now() + chrono::Duration::days(days))
}

impl Hub {
    /// Registers a device for a rep and territory; returns its id and (only now) its token,
    /// valid for `DEFAULT_DEVICE_TOKEN_DAYS`. Audited as the CLI user.
    pub fn add_device(&self, rep_id: &str, territory: &str) -> Result<DeviceCredentials> {
        self.add_device_with(rep_id, territory, store::DEFAULT_DEVICE_TOKEN_DAYS, &cli_actor())
    }

    /// Registers a device whose token expires after `token_days` days; audited as `actor`.
    pub fn add_device_with(&self, rep_id: &str, territory: &str, token_days: i64, actor: &str) -> Result<DeviceCredentials> {
        if rep_id.trim().is_empty() || territory == publish::ALL_TERRITORIES {
            return Err(Error::BadRequest("rep and territory must be non-empty (and the territory not \"*\")".into()));
        }
        publish::check_name("territory", territory)?;
        let expires_at = token_expiry(token_days)?;
        let device_id = format!("dev-{}", uuid::Uuid::new_v4().simple());
        let token = new_token()?;
        let hash = token_hash(&token);
        let now = Utc::now();
        // The rep id stays out of the audit trail (it names a person).
        let audit = store::Audited::plain(audit_entry(
            actor,
            "device.add",
            &device_id,
            serde_json::json!({"territory": territory, "expires_at": expires_at}),
        ));
        self.inner.store.add_device(&device_id, rep_id, territory, &hash, now, Some(expires_at), Some(&audit))?;
        Ok(DeviceCredentials { device_id, token })
    }

    /// Registers a publisher; returns its token (shown once). Audited as the CLI user.
    pub fn add_publisher(&self, name: &str) -> Result<String> {
        self.add_publisher_as(name, &cli_actor())
    }

    pub fn add_publisher_as(&self, name: &str, actor: &str) -> Result<String> {
        if name.trim().is_empty() {
            return Err(Error::BadRequest("publisher name must be non-empty".into()));
        }
        let token = new_token()?;
        let audit = store::Audited::plain(audit_entry(actor, "publisher.add", name, serde_json::json!({})));
        self.inner.store.add_publisher(name, &token_hash(&token), Utc::now(), Some(&audit))?;
        Ok(token)
    }

    /// Registers an operator (dashboard access); returns its token (shown once).
    pub fn add_operator(&self, name: &str, token_days: i64, actor: &str) -> Result<String> {
        publish::check_name("operator", name)?;
        let expires_at = token_expiry(token_days)?;
        let token = new_token()?;
        let audit = store::Audited::plain(audit_entry(actor, "operator.add", name, serde_json::json!({"expires_at": expires_at})));
        self.inner.store.add_operator(name, &token_hash(&token), Utc::now(), Some(expires_at), Some(&audit))?;
        Ok(token)
    }

    /// Issues a new token for the same device, publisher or operator (printed once by the
    /// CLI). The subject's older tokens keep working for `grace`, then expire: a tablet with a
    /// queued outbox can still upload with its old token meanwhile. Everything else (events,
    /// watermark, feed cursor) belongs to the subject, not the token, and is untouched.
    pub fn rotate_token(
        &self,
        role: store::TokenRole,
        subject: &str,
        grace: chrono::Duration,
        token_days: i64,
        actor: &str,
    ) -> Result<String> {
        if role == store::TokenRole::Session {
            return Err(Error::BadRequest("sessions are not rotated".into()));
        }
        if grace < chrono::Duration::zero() || grace > chrono::Duration::days(30) {
            return Err(Error::BadRequest("the grace period must be between 0 and 30 days".into()));
        }
        let expires_at = token_expiry(token_days)?;
        let now = Utc::now();
        let token = new_token()?;
        let audit = store::Audited::plain(audit_entry(
            actor,
            &format!("{}.rotate", role.as_str()),
            subject,
            serde_json::json!({"grace_seconds": grace.num_seconds(), "expires_at": expires_at}),
        ));
        self.inner.store.issue_credential(
            &store::NewCredential {
                token_sha256: token_hash(&token),
                role,
                subject: subject.to_string(),
                created_at: now,
                expires_at: Some(expires_at),
                others_expire_by: Some(now + grace),
            },
            Some(&audit),
        )?;
        Ok(token)
    }

    /// Revokes every token of a device, publisher or operator (an operator's dashboard
    /// sessions too); returns how many. Takes effect on the next request.
    pub fn revoke_tokens(&self, role: store::TokenRole, subject: &str, actor: &str) -> Result<u64> {
        let audit = store::Audited {
            entry: audit_entry(actor, &format!("{}.revoke", role.as_str()), subject, serde_json::json!({})),
            outcome: |n| serde_json::json!({"tokens": n}),
        };
        self.inner.store.revoke_credentials(role, subject, Utc::now(), Some(&audit))
    }

    /// Appends an audit entry now, on its own. `details` must name no person (ids only). The
    /// hub's own audited changes write their entries in the change's transaction instead.
    pub fn audit(&self, actor: &str, action: &str, subject: &str, details: serde_json::Value) -> Result<i64> {
        self.inner.store.append_audit(&audit_entry(actor, action, subject, details))
    }

    /// The audit trail, oldest first.
    pub fn audit_log(&self) -> Result<Vec<store::AuditEntry>> {
        self.inner.store.audit_log()
    }
}
