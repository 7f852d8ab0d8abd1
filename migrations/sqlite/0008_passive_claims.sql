-- Claims on the shared passive pool's (client address, port) pairs, across instances
-- (`ftp.passive_relay`); see migrations/postgres/0008_passive_claims.sql. expires_at in Unix milliseconds.
CREATE TABLE passive_claims (
    client     TEXT    NOT NULL,
    port       INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    instance   TEXT    NOT NULL,
    relay      TEXT    NOT NULL,
    ticket     INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client, port)
);

CREATE INDEX passive_claims_expires_at ON passive_claims(expires_at);
