-- Hub schema, version 1. Times are RFC 3339 UTC strings; tokens are stored as SHA-256 hex only.

CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    rep_id           TEXT NOT NULL,
    territory        TEXT NOT NULL,
    token_sha256     TEXT NOT NULL UNIQUE,
    created_at       TEXT NOT NULL,
    last_seen_at     TEXT,
    -- Highest seq such that every seq up to it was stored or rejected.
    watermark        INTEGER NOT NULL DEFAULT 0,
    skew_ms          INTEGER NOT NULL DEFAULT 0,
    events_received  INTEGER NOT NULL DEFAULT 0,
    duplicates       INTEGER NOT NULL DEFAULT 0,
    rejected         INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Sequence numbers seen above the device's watermark (gaps still open).
CREATE TABLE device_seqs (
    device_id TEXT NOT NULL REFERENCES devices(id),
    seq       INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE publishers (
    name         TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL
) STRICT;

-- One global, monotonic change-feed counter: every publish and revocation takes the next value.
CREATE TABLE feed_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
) STRICT;
INSERT INTO feed_counter (id, value) VALUES (1, 0);

CREATE TABLE bundles (
    id      TEXT PRIMARY KEY,
    product TEXT NOT NULL
) STRICT;

CREATE TABLE bundle_versions (
    bundle_id    TEXT NOT NULL REFERENCES bundles(id),
    version      INTEGER NOT NULL,
    manifest     BLOB NOT NULL,
    signature    BLOB NOT NULL,
    product      TEXT NOT NULL,
    total_size   INTEGER NOT NULL,
    zip_sha256   TEXT NOT NULL,
    zip_size     INTEGER NOT NULL,
    publisher    TEXT,
    published_at TEXT NOT NULL,
    feed_seq     INTEGER NOT NULL UNIQUE,
    PRIMARY KEY (bundle_id, version)
) STRICT;

-- '*' means every territory.
CREATE TABLE bundle_territories (
    bundle_id TEXT NOT NULL,
    version   INTEGER NOT NULL,
    territory TEXT NOT NULL,
    PRIMARY KEY (bundle_id, version, territory),
    FOREIGN KEY (bundle_id, version) REFERENCES bundle_versions(bundle_id, version)
) STRICT, WITHOUT ROWID;

CREATE TABLE bundle_files (
    bundle_id TEXT NOT NULL,
    version   INTEGER NOT NULL,
    sha256    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    PRIMARY KEY (bundle_id, version, sha256),
    FOREIGN KEY (bundle_id, version) REFERENCES bundle_versions(bundle_id, version)
) STRICT, WITHOUT ROWID;
CREATE INDEX bundle_files_by_sha ON bundle_files(sha256);

CREATE TABLE revocations (
    bundle_id  TEXT NOT NULL REFERENCES bundles(id),
    reason     TEXT NOT NULL,
    revoked_at TEXT NOT NULL,
    feed_seq   INTEGER NOT NULL UNIQUE
) STRICT;
CREATE INDEX revocations_by_bundle ON revocations(bundle_id, feed_seq);

CREATE TABLE events (
    uuid                  TEXT PRIMARY KEY,
    device_id             TEXT NOT NULL REFERENCES devices(id),
    seq                   INTEGER NOT NULL,
    call_id               TEXT,
    type                  TEXT NOT NULL,
    recorded_at           TEXT NOT NULL,
    recorded_at_corrected TEXT NOT NULL,
    session               INTEGER NOT NULL,
    mono_ms               INTEGER NOT NULL,
    payload               TEXT NOT NULL,
    received_at           TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_device ON events(device_id, seq);

-- Permanently rejected events (kept for support; the device parks them with the same reason).
CREATE TABLE rejected_events (
    uuid        TEXT NOT NULL,
    device_id   TEXT NOT NULL REFERENCES devices(id),
    seq         INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (device_id, uuid)
) STRICT;
