-- Hub schema (PostgreSQL), version 2: the closed loop (issue 6). Analysis runs per finished call, once:
-- ingest queues a call when its call_ended/call_interrupted event is stored (same transaction),
-- a worker folds the call into JSON documents (one per HCP, one per deck) with optimistic
-- versions and marks the queue row done in the same transaction as the documents it wrote.

CREATE TABLE analysis_queue (
    id          BIGSERIAL PRIMARY KEY,
    device_id   TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    queued_at   TIMESTAMPTZ NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    -- Set when analysed; rows stay, so a call is analysed once even if a second terminal
    -- event (call_interrupted, then call_ended) arrives later.
    done_at     TIMESTAMPTZ,
    UNIQUE (device_id, call_id)
);

CREATE INDEX analysis_pending ON analysis_queue(id) WHERE done_at IS NULL;

-- Derived state: kind 'hcp' (key hcp id) and 'deck' (key bundle id). `version` increases with
-- every write; a writer states the version it read.
CREATE TABLE analytics_docs (
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    doc        TEXT NOT NULL,
    version    BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, key)
);

-- Signed next-call plans, in the change feed of their territory.
CREATE TABLE plans (
    feed_seq   BIGINT PRIMARY KEY,
    territory  TEXT NOT NULL,
    hcp_id     TEXT NOT NULL,
    bundle_id  TEXT NOT NULL,
    plan_id    TEXT NOT NULL UNIQUE,
    stage      TEXT NOT NULL,
    plan       BYTEA NOT NULL,
    signature  BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX plans_by_territory ON plans(territory, feed_seq);
CREATE INDEX plans_by_hcp ON plans(hcp_id, bundle_id, feed_seq);

-- Optional HCP register (segment, e.g. specialty), imported from CSV. Ids only, never names.
CREATE TABLE hcps (
    id         TEXT PRIMARY KEY,
    segment    TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Optional sales input: prescriptions per HCP, product and period (YYYY-MM), from CSV.
CREATE TABLE prescriptions (
    hcp_id  TEXT NOT NULL,
    product TEXT NOT NULL,
    period  TEXT NOT NULL,
    count   BIGINT NOT NULL,
    PRIMARY KEY (hcp_id, product, period)
);

-- Follow-up microsites: an HCP-specific page of approved slides behind an expiring link. Only
-- the token's SHA-256 is kept.
CREATE TABLE microsites (
    id             TEXT PRIMARY KEY,
    token_sha256   TEXT NOT NULL UNIQUE,
    hcp_id         TEXT NOT NULL,
    territory      TEXT NOT NULL,
    bundle_id      TEXT NOT NULL,
    bundle_version BIGINT NOT NULL,
    slides         TEXT NOT NULL,
    topics         TEXT NOT NULL,
    reason         TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    views          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX microsites_by_hcp ON microsites(hcp_id, created_at);

-- The hub itself records microsite visits as calls of this pseudo-device (no token can match).
INSERT INTO devices (id, rep_id, territory, token_sha256, created_at)
VALUES ('microsite', 'hub', '*', 'none:microsite', '1970-01-01T00:00:00Z');
