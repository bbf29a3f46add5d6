-- Hub schema, version 9 (issue 15): what the dashboard's HCP lists and counts need, kept beside
-- each HCP profile by the analysis commit that writes it, so lists, stage counts and channel
-- reach are indexed SQL and never load profiles. An HCP analysed before this version is
-- summarised by the analysis worker from her profile (once).
CREATE TABLE hcp_summaries (
    hcp_id       TEXT PRIMARY KEY,
    calls        INTEGER NOT NULL,
    last_call_at TEXT,
    top_topic    TEXT,
    -- As shown in the list: JSON [[product, stage], ...] by product.
    stages       TEXT NOT NULL
) STRICT;
CREATE INDEX hcp_summaries_by_calls ON hcp_summaries(calls DESC, hcp_id);
CREATE INDEX hcp_summaries_by_last_call ON hcp_summaries(last_call_at DESC, hcp_id);

CREATE TABLE hcp_stages (
    hcp_id  TEXT NOT NULL,
    product TEXT NOT NULL,
    stage   TEXT NOT NULL,
    PRIMARY KEY (hcp_id, product)
) STRICT, WITHOUT ROWID;
CREATE INDEX hcp_stages_by_stage ON hcp_stages(stage, product, hcp_id);

CREATE TABLE hcp_channels (
    hcp_id  TEXT NOT NULL,
    channel TEXT NOT NULL,
    PRIMARY KEY (hcp_id, channel)
) STRICT, WITHOUT ROWID;
CREATE INDEX hcp_channels_by_channel ON hcp_channels(channel, hcp_id);
