-- Hub schema for PostgreSQL, version 1: the same model as the SQLite schema (versions 1 and 2
-- there), in native types. Tokens are stored as SHA-256 hex only. Event payloads are kept as
-- the exact JSON text the device sent (cast to jsonb for analysis).

CREATE TABLE territories (
    name       TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE territory_products (
    territory TEXT NOT NULL REFERENCES territories(name),
    product   TEXT NOT NULL,
    PRIMARY KEY (territory, product)
);
CREATE INDEX territory_products_by_product ON territory_products(product);

CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    rep_id           TEXT NOT NULL,
    territory        TEXT NOT NULL,
    token_sha256     TEXT NOT NULL UNIQUE,
    created_at       TIMESTAMPTZ NOT NULL,
    last_seen_at     TIMESTAMPTZ,
    -- Highest seq such that every seq up to it was stored or rejected.
    watermark        BIGINT NOT NULL DEFAULT 0,
    skew_ms          BIGINT NOT NULL DEFAULT 0,
    events_received  BIGINT NOT NULL DEFAULT 0,
    duplicates       BIGINT NOT NULL DEFAULT 0,
    rejected         BIGINT NOT NULL DEFAULT 0
);

-- Sequence numbers seen above the device's watermark (gaps still open).
CREATE TABLE device_seqs (
    device_id TEXT NOT NULL REFERENCES devices(id),
    seq       BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq)
);

CREATE TABLE publishers (
    name         TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL
);

-- One global, monotonic change-feed counter: every publish and revocation takes the next value
-- under this row's lock, so feed sequence numbers become visible in commit order (a device can
-- never skip a lower number that commits later).
CREATE TABLE feed_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO feed_counter (id, value) VALUES (1, 0);

CREATE TABLE bundles (
    id      TEXT PRIMARY KEY,
    product TEXT NOT NULL
);

CREATE TABLE bundle_versions (
    bundle_id    TEXT NOT NULL REFERENCES bundles(id),
    version      BIGINT NOT NULL,
    manifest     BYTEA NOT NULL,
    signature    BYTEA NOT NULL,
    product      TEXT NOT NULL,
    total_size   BIGINT NOT NULL,
    zip_sha256   TEXT NOT NULL,
    zip_size     BIGINT NOT NULL,
    publisher    TEXT,
    published_at TIMESTAMPTZ NOT NULL,
    feed_seq     BIGINT NOT NULL UNIQUE,
    PRIMARY KEY (bundle_id, version)
);

-- '*' means every territory.
CREATE TABLE bundle_territories (
    bundle_id TEXT NOT NULL,
    version   BIGINT NOT NULL,
    territory TEXT NOT NULL,
    PRIMARY KEY (bundle_id, version, territory),
    FOREIGN KEY (bundle_id, version) REFERENCES bundle_versions(bundle_id, version)
);

CREATE TABLE bundle_files (
    bundle_id TEXT NOT NULL,
    version   BIGINT NOT NULL,
    sha256    TEXT NOT NULL,
    size      BIGINT NOT NULL,
    PRIMARY KEY (bundle_id, version, sha256),
    FOREIGN KEY (bundle_id, version) REFERENCES bundle_versions(bundle_id, version)
);
CREATE INDEX bundle_files_by_sha ON bundle_files(sha256);

CREATE TABLE revocations (
    bundle_id  TEXT NOT NULL REFERENCES bundles(id),
    reason     TEXT NOT NULL,
    revoked_at TIMESTAMPTZ NOT NULL,
    feed_seq   BIGINT NOT NULL UNIQUE
);
CREATE INDEX revocations_by_bundle ON revocations(bundle_id, feed_seq);

CREATE TABLE events (
    uuid                  TEXT PRIMARY KEY,
    device_id             TEXT NOT NULL REFERENCES devices(id),
    seq                   BIGINT NOT NULL,
    call_id               TEXT,
    type                  TEXT NOT NULL,
    recorded_at           TIMESTAMPTZ NOT NULL,
    recorded_at_corrected TIMESTAMPTZ NOT NULL,
    session               BIGINT NOT NULL,
    mono_ms               BIGINT NOT NULL,
    payload               TEXT NOT NULL,
    received_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_by_device ON events(device_id, seq);

-- Permanently rejected events (kept for support; the device parks them with the same reason).
CREATE TABLE rejected_events (
    uuid        TEXT NOT NULL,
    device_id   TEXT NOT NULL REFERENCES devices(id),
    seq         BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (device_id, uuid)
);
