-- Storage of each tenant on the S3 backend, parked multipart uploads and the checksums of stored objects.

-- All NULL: the server's default bucket with the key prefix '<tenant>/'. The secret itself is never stored
-- here, only where to find it: 'env:NAME' or 'file:/path'.
ALTER TABLE tenants
    ADD COLUMN s3_bucket        TEXT,
    ADD COLUMN s3_prefix        TEXT,
    ADD COLUMN s3_endpoint      TEXT,
    ADD COLUMN s3_region        TEXT,
    ADD COLUMN s3_path_style    BOOLEAN,
    ADD COLUMN s3_access_key_id TEXT,
    ADD COLUMN s3_secret_ref    TEXT;

-- Every open S3 multipart upload: while it runs (resumable = FALSE, so that one lost with its process is
-- still found and aborted when its lease runs out) and once interrupted and kept for REST + STOR or APPE to
-- continue (resumable = TRUE). `location` names the store and bucket; `state` holds the committed parts and
-- the running checksums (JSON, owned by the S3 backend).
CREATE TABLE parked_uploads (
    location   TEXT        NOT NULL,
    object_key TEXT        NOT NULL,
    upload_id  TEXT        NOT NULL,
    tenant_id  BIGINT      NOT NULL,
    user_id    BIGINT      NOT NULL,
    resumable  BOOLEAN     NOT NULL,
    state      TEXT        NOT NULL,
    parked_at  TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (location, object_key, upload_id)
);

CREATE INDEX parked_uploads_expires_at ON parked_uploads(expires_at);

-- The running checksums of an object as wharf stored it, valid while the object's ETag is `etag`.
CREATE TABLE object_digests (
    location   TEXT NOT NULL,
    object_key TEXT NOT NULL,
    etag       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    PRIMARY KEY (location, object_key)
);
