-- Hub schema, version 11 (issue 15): the HCP list's territory and segment filters by index.
-- An HCP is in the territories whose devices called on her (microsite visits aside); ingest
-- adds the pair with the call's `call_hcps` row, erasure removes her rows. Backfilled from the
-- calls stored so far.
CREATE TABLE hcp_territories (
    territory TEXT NOT NULL,
    hcp_id    TEXT NOT NULL,
    PRIMARY KEY (territory, hcp_id)
);
CREATE INDEX hcp_territories_by_hcp ON hcp_territories(hcp_id);
INSERT INTO hcp_territories (territory, hcp_id)
SELECT DISTINCT d.territory, ch.hcp_id FROM call_hcps ch JOIN devices d ON d.id = ch.device_id WHERE ch.device_id <> 'microsite'
ON CONFLICT DO NOTHING;
CREATE INDEX hcps_by_segment ON hcps(segment, id);
