-- Hub schema, version 5: right to erasure and tracking consent (issue 7, ADR 0011).

-- One row per erasure, in the change feed of every territory. The HCP id stays here (an id,
-- never a name): devices that sync later still need to learn whom to delete.
CREATE TABLE erasures (
    feed_seq  INTEGER PRIMARY KEY,
    hcp_id    TEXT NOT NULL,
    erased_at TEXT NOT NULL
) STRICT;
CREATE INDEX erasures_by_hcp ON erasures(hcp_id);

-- Tombstones: a re-sent erased event (same uuid), or any event of an erased call (a device
-- uploading the rest of the call before it learned of the erasure), is acknowledged as a
-- duplicate and never stored again. No payload, no HCP id.
CREATE TABLE erased_events (
    uuid      TEXT PRIMARY KEY,
    device_id TEXT NOT NULL
) STRICT;
CREATE TABLE erased_calls (
    device_id TEXT NOT NULL,
    call_id   TEXT NOT NULL,
    PRIMARY KEY (device_id, call_id)
) STRICT;

-- Tracking consent per HCP (full | anonymous | off), in the change feed of every territory.
-- No row: `full` (Tracking::DEFAULT).
CREATE TABLE consents (
    hcp_id     TEXT PRIMARY KEY,
    tracking   TEXT NOT NULL CHECK (tracking IN ('full', 'anonymous', 'off')),
    updated_at TEXT NOT NULL,
    feed_seq   INTEGER NOT NULL UNIQUE
) STRICT;
