-- 001: catalogue, blobs, calls, call state, and the event outbox.
-- Times are Unix milliseconds UTC unless the column says otherwise.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Content-addressed blobs present on disk under objects/ab/cdef...
CREATE TABLE blobs (
    sha256   TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    added_at INTEGER NOT NULL
) STRICT;

-- Every bundle version the device knows. 'staged': manifest verified, blobs may be missing;
-- 'ready': every blob present and verified (activatable).
CREATE TABLE bundle_versions (
    bundle_id     TEXT NOT NULL,
    version       INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('staged', 'ready')),
    manifest      BLOB NOT NULL,
    signature     BLOB,
    key_id        TEXT,
    title         TEXT NOT NULL,
    product       TEXT NOT NULL,
    valid_from    INTEGER NOT NULL,
    valid_until   INTEGER NOT NULL,
    total_size    INTEGER NOT NULL,
    staged_at     INTEGER NOT NULL,
    PRIMARY KEY (bundle_id, version)
) STRICT;

CREATE TABLE bundle_files (
    bundle_id TEXT NOT NULL,
    version   INTEGER NOT NULL,
    path      TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    mime      TEXT NOT NULL,
    PRIMARY KEY (bundle_id, version, path),
    FOREIGN KEY (bundle_id, version) REFERENCES bundle_versions (bundle_id, version) ON DELETE CASCADE
) STRICT;
CREATE INDEX bundle_files_sha256 ON bundle_files (sha256);

-- The active version per bundle (switching it is the atomic install), the previous one for
-- rollback, and revocation.
CREATE TABLE bundles (
    bundle_id        TEXT PRIMARY KEY,
    active_version   INTEGER NOT NULL,
    previous_version INTEGER,
    activated_at     INTEGER NOT NULL,
    revoked_at       INTEGER,
    revoked_reason   TEXT
) STRICT;

CREATE TABLE calls (
    id                TEXT PRIMARY KEY,
    rep_id            TEXT NOT NULL,
    hcp_id            TEXT,
    channel           TEXT NOT NULL CHECK (channel IN ('face_to_face', 'remote', 'preview')),
    status            TEXT NOT NULL CHECK (status IN ('open', 'completed', 'interrupted')),
    bundle_id         TEXT,
    location          TEXT,
    notes             TEXT,
    started_at        INTEGER NOT NULL,
    ended_at          INTEGER,
    -- navigation and dwell state of the open slide view (monotonic ms of this process)
    slide_id          TEXT,
    presentation_id   TEXT,
    view_started_mono INTEGER,
    view_dwell_ms     INTEGER NOT NULL DEFAULT 0,
    view_paused       INTEGER NOT NULL DEFAULT 0,
    view_hcp_led      INTEGER NOT NULL DEFAULT 0,
    return_to_slide   TEXT,
    last_heartbeat_at INTEGER,
    last_heartbeat_dwell_ms INTEGER
) STRICT;
CREATE INDEX calls_open ON calls (status) WHERE status = 'open';

CREATE TABLE call_state (
    call_id TEXT NOT NULL REFERENCES calls (id),
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (call_id, key)
) STRICT;

-- The append-only outbox. seq is the per-device sequence number (never reused);
-- uuid is the hub's idempotency key. Rows are only deleted by compaction after acked_at.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid         TEXT NOT NULL UNIQUE,
    call_id      TEXT,
    type         TEXT NOT NULL,
    recorded_at  INTEGER NOT NULL,
    session      INTEGER NOT NULL,
    mono_ms      INTEGER NOT NULL,
    payload      TEXT NOT NULL,
    acked_at     INTEGER,
    parked_reason TEXT
) STRICT;
CREATE INDEX events_pending ON events (seq) WHERE acked_at IS NULL AND parked_reason IS NULL;
CREATE INDEX events_call ON events (call_id, seq);
