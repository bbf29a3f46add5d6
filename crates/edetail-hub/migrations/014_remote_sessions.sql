-- Hub schema, version 14 (issue 17, ADR 0023): remote detailing sessions. A session belongs to
-- one call on one device; the hub relays its messages and keeps where it stands, so a late
-- joiner or a participant on another hub process lands on the current slide. No HCP id: the
-- hub never learns who follows (the device records her navigation through its outbox).
CREATE TABLE remote_sessions (
    id              TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    territory       TEXT NOT NULL,
    bundle_id       TEXT NOT NULL,
    bundle_version  INTEGER NOT NULL,
    -- SHA-256 (hex) of the join link's token; a new link replaces it (the old one stops).
    token_sha256    TEXT NOT NULL UNIQUE,
    waiting_room    INTEGER NOT NULL,
    -- The device records the doctor's navigation (her consent is not `off`).
    recorded        INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    ended_at        TEXT,
    -- The current position (`HubMessage::Current` as JSON) and its sequence number.
    position        TEXT,
    position_seq    INTEGER NOT NULL DEFAULT 0,
    -- The presenter's current connection (a random id; a newer one on any hub process takes
    -- over) and when its process last saw it (ms since the epoch; 0: none connected).
    presenter_id    TEXT,
    presenter_seen_ms INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX remote_sessions_by_device ON remote_sessions(device_id, call_id);

-- The attendees of a session: a browser connection's id, whether the rep admitted it, and when
-- its hub process last saw it (rows not seen for a while do not count towards the limit).
CREATE TABLE remote_attendees (
    session_id      TEXT NOT NULL REFERENCES remote_sessions(id) ON DELETE CASCADE,
    attendee_id     TEXT NOT NULL,
    admitted        INTEGER NOT NULL,
    connected       INTEGER NOT NULL,
    last_seen_ms    INTEGER NOT NULL,
    PRIMARY KEY (session_id, attendee_id)
) STRICT, WITHOUT ROWID;
