-- Claims on the shared passive pool's (client address, port) pairs, across instances
-- (`ftp.passive_relay`): the instance whose session sent EPSV holds the pair until the data connection
-- arrives, the session gives the claim up, or expires_at passes. An instance that receives a connection
-- for a pair claimed elsewhere relays it to that instance's `relay` address. The twin of
-- migrations/sqlite/0008_passive_claims.sql.
CREATE TABLE passive_claims (
    client     TEXT        COLLATE "C" NOT NULL,
    port       INTEGER     NOT NULL CHECK (port BETWEEN 1 AND 65535),
    instance   TEXT        COLLATE "C" NOT NULL,
    relay      TEXT        NOT NULL,
    ticket     BIGINT      NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client, port)
);

CREATE INDEX passive_claims_expires_at ON passive_claims(expires_at);
