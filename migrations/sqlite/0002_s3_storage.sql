-- Storage of each tenant on the S3 backend, parked multipart uploads and the checksums of stored objects.

-- All NULL: the server's default bucket with the key prefix '<tenant>/'. The secret itself is never stored
-- here, only where to find it: 'env:NAME' or 'file:/path'.
ALTER TABLE tenants ADD COLUMN s3_bucket TEXT;
ALTER TABLE tenants ADD COLUMN s3_prefix TEXT;
ALTER TABLE tenants ADD COLUMN s3_endpoint TEXT;
ALTER TABLE tenants ADD COLUMN s3_region TEXT;
ALTER TABLE tenants ADD COLUMN s3_path_style INTEGER;
ALTER TABLE tenants ADD COLUMN s3_access_key_id TEXT;
ALTER TABLE tenants ADD COLUMN s3_secret_ref TEXT;

-- Every open S3 multipart upload: while it runs (resumable = 0, so that one lost with its process is still
-- found and aborted when its lease runs out) and once interrupted and kept for REST + STOR or APPE to
-- continue (resumable = 1). `location` names the store and bucket; `state` holds the committed parts and
-- the running checksums (JSON, owned by the S3 backend).
CREATE TABLE parked_uploads (
    location   TEXT    NOT NULL,
    object_key TEXT    NOT NULL,
    upload_id  TEXT    NOT NULL,
    tenant_id  INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    resumable  INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    parked_at  TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
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
