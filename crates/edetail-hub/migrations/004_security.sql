-- Hub schema (SQLite), version 4: credentials with expiry and revocation, operators, and the
-- append-only audit trail (issue 7, docs/adr/0010-tokens-roles-audit.md).

-- Every bearer secret the hub accepts, as SHA-256 only. `role` says what it opens; `subject` is
-- the device id, publisher name or operator name (a dashboard session belongs to its operator).
-- A device may hold several tokens at once (rotation with a grace period); its events,
-- watermark and outbox state hang off the device id, never off a token.
CREATE TABLE credentials (
    token_sha256 TEXT PRIMARY KEY,
    role         TEXT NOT NULL CHECK (role IN ('device', 'publisher', 'operator', 'session')),
    subject      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    -- NULL: never expires.
    expires_at   TEXT,
    revoked_at   TEXT
) STRICT;

CREATE INDEX credentials_by_subject ON credentials(role, subject);

-- Tokens issued before this version keep working until 90 days after the upgrade.
INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at)
SELECT token_sha256, 'device', id, created_at, strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+90 days')
FROM devices WHERE id <> 'microsite';
INSERT INTO credentials (token_sha256, role, subject, created_at, expires_at)
SELECT token_sha256, 'publisher', name, created_at, strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+365 days')
FROM publishers;

CREATE TABLE operators (
    name       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
) STRICT;

-- Append-only: who did what to which subject. `details` is a JSON object without personal data.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}'
) STRICT;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
