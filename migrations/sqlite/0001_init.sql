-- Tenants, the hostnames that select them, and their users.
-- Timestamps are RFC 3339 UTC text written by wharf (e.g. 2024-05-01T12:00:00.000000Z).

CREATE TABLE tenants (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    enabled    INTEGER NOT NULL DEFAULT 1,
    created_at TEXT    NOT NULL
);

-- Hostnames are stored lower-cased so lookups by SNI name or HOST argument are exact matches.
CREATE TABLE tenant_hostnames (
    hostname  TEXT    PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE
);

CREATE INDEX tenant_hostnames_tenant_id ON tenant_hostnames(tenant_id);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    username      TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    home          TEXT    NOT NULL DEFAULT '/',
    enabled       INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT    NOT NULL,
    last_login_at TEXT,
    -- Also the index the login lookup uses.
    UNIQUE (tenant_id, username)
);
