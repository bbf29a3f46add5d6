-- Hub schema, version 10 (issue 15): target lists from the CRM, the HCPs each rep is assigned
-- to. A rep with a list receives the plans of her territory for those HCPs and for the HCPs she
-- has called on (call_hcps of her devices); a rep without a list receives her territory's plans.
-- Imported as CSV (`rep_id,hcp_id`); an HCP newly on a list gets her current plans re-sequenced
-- in the feed so devices past them still receive them.
CREATE TABLE rep_targets (
    rep_id      TEXT NOT NULL,
    hcp_id      TEXT NOT NULL,
    assigned_at TEXT NOT NULL,
    PRIMARY KEY (rep_id, hcp_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX rep_targets_by_hcp ON rep_targets(hcp_id);
CREATE INDEX devices_by_rep ON devices(rep_id);
