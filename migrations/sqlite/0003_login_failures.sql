-- Failed-login counters: one row per scope, either a client address ('ip:203.0.113.7', IPv6 grouped by
-- prefix: 'ip:2001:db8:1:2::/64') or a user of a tenant ('user:<tenant id>:<username>', only for users that
-- exist, so unknown names cannot grow the table). A row is updated by one atomic upsert per failure. A window
-- that started too long ago, or a ban that ended, makes the next failure count from 1 again.
--
-- Unlike the other tables, times here are Unix milliseconds (INTEGER), not RFC 3339 text: the upsert computes
-- the end of a ban in SQL, which text timestamps cannot do exactly.
CREATE TABLE login_failures (
    scope        TEXT    PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    last_failure INTEGER NOT NULL,
    -- NULL, or the end of the scope's ban (it holds only while in the future).
    banned_until INTEGER,
    -- Length of the scope's last ban in milliseconds: a repeat ban lasts twice as long (up to a cap) until
    -- the row is forgotten.
    ban_ms       INTEGER
);

CREATE INDEX login_failures_last_failure ON login_failures(last_failure);
CREATE INDEX login_failures_banned_until ON login_failures(banned_until) WHERE banned_until IS NOT NULL;
