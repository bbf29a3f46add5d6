-- 002: the hub's signed per-HCP plans, one per (hcp_id, bundle_id): the newest by generated_at.
-- `plan` holds the exact signed JSON bytes, `signature` the detached manifest.sig-format
-- signature that verified against the device's trusted keys when the plan was stored.
-- Times are Unix milliseconds UTC.
CREATE TABLE plans (
    hcp_id       TEXT NOT NULL,
    bundle_id    TEXT NOT NULL,
    plan_id      TEXT NOT NULL,
    plan         BLOB NOT NULL,
    signature    BLOB NOT NULL,
    key_id       TEXT NOT NULL,
    generated_at INTEGER NOT NULL,
    valid_until  INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (hcp_id, bundle_id)
) STRICT;
