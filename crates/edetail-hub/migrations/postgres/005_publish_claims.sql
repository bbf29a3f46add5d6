-- Publish claims, blob leases and blob deletion markers (ADR 0016). Leases and markers are
-- taken under a per-hash transaction advisory lock (`postgres::BLOB_LOCK_CLASS`).

-- A publish in progress holds its (bundle, version) until it is recorded or given up; an
-- expired claim belongs to a dead publisher and may be taken over.
CREATE TABLE publish_claims (
    bundle_id  TEXT NOT NULL,
    version    BIGINT NOT NULL,
    claim_id   TEXT NOT NULL UNIQUE,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (bundle_id, version)
);

-- Every blob a publish will reference, recorded before it asks the blob store about it.
CREATE TABLE blob_leases (
    claim_id TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    PRIMARY KEY (claim_id, sha256)
);
CREATE INDEX blob_leases_by_sha ON blob_leases(sha256);

-- A blob being deleted from the blob store: no lease is granted on it until it is gone.
CREATE TABLE blob_deletions (
    sha256    TEXT PRIMARY KEY,
    owner     TEXT NOT NULL,
    marked_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX bundle_versions_by_zip ON bundle_versions(zip_sha256);
