-- 003: privacy (issue 7, ADR 0011). Tracking consent per HCP as the hub's change feed last said
-- (no row: Tracking::DEFAULT, full), and each call's tracking level, fixed when it starts:
-- 'off' calls keep only navigation state here and never reach the outbox.
CREATE TABLE consents (
    hcp_id     TEXT PRIMARY KEY,
    tracking   TEXT NOT NULL CHECK (tracking IN ('full', 'anonymous', 'off')),
    updated_at INTEGER NOT NULL
) STRICT;

ALTER TABLE calls ADD COLUMN tracking TEXT NOT NULL DEFAULT 'full' CHECK (tracking IN ('full', 'anonymous', 'off'));
