-- 006: the remote sessions this device opened on its hub (issue 17, ADR 0023), kept so that a
-- session outlives the app: an app killed or restarted during a remote call presents the same
-- session again (same id, same join link) instead of orphaning it. One live session per call;
-- the row goes when the session ends or expires. `join_url` carries the link's secret token
-- (the database is encrypted at rest when keyed, ADR 0012); no HCP data (the call id only).
-- `bundle_version` is the version the hub pinned the session to. Never uploaded.
-- Times are Unix milliseconds UTC.
CREATE TABLE remote_sessions (
    session_id     TEXT PRIMARY KEY,
    call_id        TEXT NOT NULL UNIQUE,
    bundle_id      TEXT NOT NULL,
    bundle_version INTEGER NOT NULL,
    join_url       TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,
    recorded       INTEGER NOT NULL CHECK (recorded IN (0, 1)),
    created_at     INTEGER NOT NULL
) STRICT;
