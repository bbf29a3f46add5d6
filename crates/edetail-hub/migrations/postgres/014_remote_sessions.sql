-- Hub schema, version 14 (issue 17, ADR 0023): remote detailing sessions and their attendees
-- (as SQLite's 014). No HCP id: the hub never learns who follows.
CREATE TABLE remote_sessions (
    id              TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    territory       TEXT NOT NULL,
    bundle_id       TEXT NOT NULL,
    bundle_version  BIGINT NOT NULL,
    token_sha256    TEXT NOT NULL UNIQUE,
    waiting_room    BOOLEAN NOT NULL,
    recorded        BOOLEAN NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    ended_at        TIMESTAMPTZ,
    position        TEXT,
    position_seq    BIGINT NOT NULL DEFAULT 0,
    presenter_id    TEXT,
    presenter_seen_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX remote_sessions_by_device ON remote_sessions(device_id, call_id);

CREATE TABLE remote_attendees (
    session_id      TEXT NOT NULL REFERENCES remote_sessions(id) ON DELETE CASCADE,
    attendee_id     TEXT NOT NULL,
    admitted        BOOLEAN NOT NULL,
    connected       BOOLEAN NOT NULL,
    last_seen_ms    BIGINT NOT NULL,
    PRIMARY KEY (session_id, attendee_id)
);
