-- 005: call sequences (issue "Respond per doctor"). The slides a rep means to present to one HCP
-- on one bundle, built on the tablet from the hub's plan (or the deck order) and saved per rep,
-- one per (rep_id, hcp_id, bundle_id): starting again replaces it. `planned` is the JSON array
-- of the plan's slide ids in plan order ('[]' without a hub plan); `items` the JSON array of the
-- sequence in order, each {slide_id, presentation_id, mandatory, origin}. Never uploaded: a
-- call started from a sequence records what it held as a `call_plan` event.
-- Times are Unix milliseconds UTC.
CREATE TABLE sequences (
    sequence_id TEXT PRIMARY KEY,
    rep_id      TEXT NOT NULL,
    hcp_id      TEXT NOT NULL,
    bundle_id   TEXT NOT NULL,
    plan_id     TEXT,
    arm         TEXT,
    planned     TEXT NOT NULL,
    items       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (rep_id, hcp_id, bundle_id)
) STRICT;
CREATE INDEX sequences_hcp ON sequences (hcp_id);

-- The sequence a call was started from (NULL: the deck's own order), and its order as it was
-- then, which the call's next/previous follow: the JSON array of {slide_id, presentation_id}
-- (NULL with sequence_id; later edits of the saved sequence do not change it).
ALTER TABLE calls ADD COLUMN sequence_id TEXT;
ALTER TABLE calls ADD COLUMN sequence_order TEXT;
