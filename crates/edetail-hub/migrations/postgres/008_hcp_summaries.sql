-- Hub schema, version 8 (issue 15): the dashboard's HCP summaries (as SQLite's 009).
CREATE TABLE hcp_summaries (
    hcp_id       TEXT PRIMARY KEY,
    calls        BIGINT NOT NULL,
    last_call_at TIMESTAMPTZ,
    top_topic    TEXT,
    stages       TEXT NOT NULL
);
CREATE INDEX hcp_summaries_by_calls ON hcp_summaries(calls DESC, hcp_id);
CREATE INDEX hcp_summaries_by_last_call ON hcp_summaries(last_call_at DESC NULLS LAST, hcp_id);

CREATE TABLE hcp_stages (
    hcp_id  TEXT NOT NULL,
    product TEXT NOT NULL,
    stage   TEXT NOT NULL,
    PRIMARY KEY (hcp_id, product)
);
CREATE INDEX hcp_stages_by_stage ON hcp_stages(stage, product, hcp_id);

CREATE TABLE hcp_channels (
    hcp_id  TEXT NOT NULL,
    channel TEXT NOT NULL,
    PRIMARY KEY (hcp_id, channel)
);
CREATE INDEX hcp_channels_by_channel ON hcp_channels(channel, hcp_id);
