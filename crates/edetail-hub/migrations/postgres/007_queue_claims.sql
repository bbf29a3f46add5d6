-- Hub schema, version 7 (issue 15): analysis queue claims (as SQLite's 008). Workers of several
-- hub processes claim with FOR UPDATE SKIP LOCKED, so each call is claimed by one of them; a
-- dead worker's calls return to the queue when its lease expires.
ALTER TABLE analysis_queue ADD COLUMN claimed_by TEXT;
ALTER TABLE analysis_queue ADD COLUMN claimed_until TIMESTAMPTZ;
