-- Hub schema, version 13 (issue 16): the built-in experiment's units (as SQLite's 013).
CREATE TABLE experiment_units (
    hcp_id          TEXT NOT NULL,
    product         TEXT NOT NULL,
    arm             TEXT NOT NULL,
    enrolled_at_ms  BIGINT NOT NULL,
    enrolled_period TEXT NOT NULL,
    enrol_level     INTEGER NOT NULL,
    level           INTEGER NOT NULL,
    rx_before_n     BIGINT NOT NULL DEFAULT 0,
    rx_before_sum   BIGINT NOT NULL DEFAULT 0,
    rx_after_n      BIGINT NOT NULL DEFAULT 0,
    rx_after_sum    BIGINT NOT NULL DEFAULT 0,
    -- By product and arm: the page reads one product's units as one range of the table,
    -- already grouped by arm (an HCP's arm never changes once recorded).
    PRIMARY KEY (product, arm, hcp_id)
);
CREATE INDEX experiment_units_by_hcp ON experiment_units(hcp_id);
