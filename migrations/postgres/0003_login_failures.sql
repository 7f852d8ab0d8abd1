-- Failed-login counters, shared by every instance on this database: one row per scope, either a client
-- address ('ip:203.0.113.7', IPv6 grouped by prefix: 'ip:2001:db8:1:2::/64') or a user of a tenant
-- ('user:<tenant id>:<username>', only for users that exist, so unknown names cannot grow the table).
-- A row is updated by one atomic upsert per failure, so concurrent failures on several instances are never
-- lost. A window that started too long ago, or a ban that ended, makes the next failure count from 1 again.
CREATE TABLE login_failures (
    scope        TEXT        COLLATE "C" PRIMARY KEY,
    failures     BIGINT      NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    last_failure TIMESTAMPTZ NOT NULL,
    -- NULL, or the end of the scope's ban (it holds only while in the future).
    banned_until TIMESTAMPTZ,
    -- Length of the scope's last ban in milliseconds: a repeat ban lasts twice as long (up to a cap) until
    -- the row is forgotten.
    ban_ms       BIGINT
);

CREATE INDEX login_failures_last_failure ON login_failures(last_failure);
CREATE INDEX login_failures_banned_until ON login_failures(banned_until) WHERE banned_until IS NOT NULL;
