-- Quotas and usage of tenants and users, and the leased reservations of running uploads.
--
-- max_bytes / max_files: NULL means unlimited. used_bytes / used_files: what wharf counted as stored, kept
-- exact by one transaction per change (an upload's commit, a DELE); `wharf usage recompute` sets them from
-- storage. A user's usage counts what the user stored minus what the user deleted or overwrote.
ALTER TABLE tenants ADD COLUMN max_bytes INTEGER;
ALTER TABLE tenants ADD COLUMN max_files INTEGER;
ALTER TABLE tenants ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN used_files INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN max_bytes INTEGER;
ALTER TABLE users ADD COLUMN max_files INTEGER;
ALTER TABLE users ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN used_files INTEGER NOT NULL DEFAULT 0;

-- Room held by a running upload before its bytes arrive. A row is a lease: one whose instance died stops
-- counting at expires_at (Unix milliseconds, like login_failures) and is deleted by the next reservation.
CREATE TABLE quota_reservations (
    id         INTEGER PRIMARY KEY,
    tenant_id  INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    bytes      INTEGER NOT NULL,
    files      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX quota_reservations_tenant_id ON quota_reservations(tenant_id);
CREATE INDEX quota_reservations_user_id ON quota_reservations(user_id);
