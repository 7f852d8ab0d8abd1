-- What the admin API keeps: API tokens, the audit log, tenants' certificates, and the live FTP sessions of
-- every instance. Times are RFC 3339 UTC text written by wharf with a fixed width (microseconds, `Z`), so
-- comparing the text compares the times.

-- A token's secret is never stored, only its SHA-256 (lower-case hex). scope 'operator' has no tenant;
-- scope 'tenant_admin' speaks for one tenant and goes with it. A name is unique within its scope: among
-- operator tokens, and among one tenant's tokens (two partial indexes, since NULLs never collide).
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    scope         TEXT    NOT NULL CHECK (scope IN ('operator', 'tenant_admin')),
    tenant_id     INTEGER REFERENCES tenants(id) ON DELETE CASCADE,
    secret_sha256 TEXT    NOT NULL UNIQUE,
    created_at    TEXT    NOT NULL,
    expires_at    TEXT,
    last_used_at  TEXT,
    CHECK ((scope = 'operator') = (tenant_id IS NULL))
);

CREATE UNIQUE INDEX api_tokens_operator_name ON api_tokens(name) WHERE tenant_id IS NULL;
-- Also the index of the per-tenant listing and of the cascade.
CREATE UNIQUE INDEX api_tokens_tenant_name ON api_tokens(tenant_id, name) WHERE tenant_id IS NOT NULL;

-- The audit log outlives what it describes. tenant_id is set to NULL when the tenant is deleted rather than
-- left dangling: SQLite reuses the highest tenant id after a delete, and a dangling id would show a deleted
-- tenant's history to the admins of the next tenant given that id. Its events stay for operators, and
-- `target` still names the tenant. AUTOINCREMENT keeps ids (the listing's cursor) increasing for ever.
-- `detail` is a JSON object as text.
CREATE TABLE audit_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    tenant_id INTEGER REFERENCES tenants(id) ON DELETE SET NULL,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    client    TEXT,
    detail    TEXT    NOT NULL
);

CREATE INDEX audit_events_tenant_id ON audit_events(tenant_id, id);

-- AUTOINCREMENT: an id is never reused, so (count, highest id) changes whenever a certificate is added or
-- removed, which is what instances poll. `names` is a JSON array of lower-case DNS names; `sealed_key` the
-- PKCS#8 key sealed with the server's secret key.
CREATE TABLE certificates (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    names       TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    issuer      TEXT    NOT NULL,
    not_before  TEXT    NOT NULL,
    not_after   TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    chain_pem   TEXT    NOT NULL,
    sealed_key  BLOB    NOT NULL,
    created_at  TEXT    NOT NULL,
    UNIQUE (tenant_id, fingerprint)
);

CREATE INDEX certificates_tenant_id ON certificates(tenant_id, id);

-- Every wharf instance on this database, with its last heartbeat.
CREATE TABLE instances (
    id       TEXT PRIMARY KEY,
    alive_at TEXT NOT NULL
);

CREATE INDEX instances_alive_at ON instances(alive_at);

-- Logged-in FTP sessions, registered by the instance serving them, which also polls for disconnect requests.
-- A session goes with its instance, tenant or user.
CREATE TABLE live_sessions (
    id                      TEXT    PRIMARY KEY,
    instance                TEXT    NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    tenant_id               INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id                 INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    username                TEXT    NOT NULL,
    client                  TEXT    NOT NULL,
    started_at              TEXT    NOT NULL,
    disconnect_requested_at TEXT
);

CREATE INDEX live_sessions_instance ON live_sessions(instance);
CREATE INDEX live_sessions_tenant_id ON live_sessions(tenant_id);
CREATE INDEX live_sessions_user_id ON live_sessions(user_id);
