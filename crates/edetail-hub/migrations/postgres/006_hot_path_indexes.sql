-- Hub schema, version 6 (issue 15): indexes for the hot paths; the current plan only (as SQLite's 007).

-- A call's events: analysis reads them per call, erasure copies and deletes them per call.
CREATE INDEX events_by_call ON events(device_id, call_id, seq) WHERE call_id IS NOT NULL;

-- Which HCP each call is with, from its stored call_started event (ingest adds a row in the
-- batch's transaction): an erasure finds an HCP's calls by her id.
CREATE TABLE call_hcps (
    hcp_id    TEXT NOT NULL,
    device_id TEXT NOT NULL,
    call_id   TEXT NOT NULL,
    PRIMARY KEY (hcp_id, device_id, call_id)
);

-- Payloads are JSON text checked at ingest. jsonb refuses the escape \u0000 that JSON allows,
-- so it is read as \u0001 (the text stays valid JSON whatever precedes it; only an id that
-- itself held a NUL would change, and ingest never indexes such an id).
INSERT INTO call_hcps (hcp_id, device_id, call_id)
SELECT replace(payload, '\u0000', '\u0001')::jsonb ->> 'hcp_id', device_id, call_id
FROM events
WHERE type = 'call_started' AND call_id IS NOT NULL
  AND jsonb_typeof(replace(payload, '\u0000', '\u0001')::jsonb -> 'hcp_id') = 'string'
ON CONFLICT DO NOTHING;

-- Calls waiting for analysis per device (the sync dashboard), from the pending rows only.
CREATE INDEX analysis_pending_by_device ON analysis_queue(device_id) WHERE done_at IS NULL;

-- The feed carries each HCP's current plan only (per territory and deck): a new plan replaces
-- the one before (analysis deletes it in the same transaction), so a new tablet downloads one
-- plan per HCP and deck, not every plan ever made. Devices keep one plan per HCP and deck too.
DELETE FROM plans WHERE feed_seq NOT IN (SELECT MAX(feed_seq) FROM plans GROUP BY territory, hcp_id, bundle_id);
CREATE UNIQUE INDEX plans_current ON plans(territory, hcp_id, bundle_id);
