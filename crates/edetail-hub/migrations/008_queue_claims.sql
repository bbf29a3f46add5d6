-- Hub schema, version 8 (issue 15): analysis queue claims. A worker claims the calls it
-- analyses for a lease; another worker (another hub process on the same database) skips them
-- until the lease ends, so no call is analysed twice at once and a dead worker's calls return
-- to the queue when its lease expires.
ALTER TABLE analysis_queue ADD COLUMN claimed_by TEXT;
ALTER TABLE analysis_queue ADD COLUMN claimed_until_ms INTEGER;
