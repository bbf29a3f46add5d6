-- Hub schema, version 13 (issue 16): one row per HCP and product in the built-in experiment
-- (from her first plan for the product on), kept beside her profile by every analysis commit
-- that writes it, so the experiment page sums each arm in indexed SQL and never loads profiles.
CREATE TABLE experiment_units (
    hcp_id          TEXT NOT NULL,
    product         TEXT NOT NULL,
    -- 'treatment' or 'holdout'.
    arm             TEXT NOT NULL,
    -- Her first plan for the product (ms since the epoch) and its month, YYYY-MM.
    enrolled_at_ms  INTEGER NOT NULL,
    enrolled_period TEXT NOT NULL,
    -- Ladder rungs (0 unaware .. 4 advocate) then and now.
    enrol_level     INTEGER NOT NULL,
    level           INTEGER NOT NULL,
    -- Her imported prescriptions of the product before the enrolment month and from it on
    -- (months, total count), refreshed when her unit is written and when prescriptions are
    -- imported: the page's difference in differences reads these, never the prescriptions.
    rx_before_n     INTEGER NOT NULL DEFAULT 0,
    rx_before_sum   INTEGER NOT NULL DEFAULT 0,
    rx_after_n      INTEGER NOT NULL DEFAULT 0,
    rx_after_sum    INTEGER NOT NULL DEFAULT 0,
    -- By product and arm: the page reads one product's units as one range of the table,
    -- already grouped by arm (an HCP's arm never changes once recorded).
    PRIMARY KEY (product, arm, hcp_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX experiment_units_by_hcp ON experiment_units(hcp_id);
