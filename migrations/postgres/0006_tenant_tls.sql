-- A tenant's overrides of the server's [tls] policy: a JSON object holding only the settings that differ,
-- e.g. '{"require_prot_p":false,"min_tls_version":"1.3"}'; '' means the server's policy throughout.
-- Written and checked by wharf (TenantTlsPolicy in src/directory/mod.rs); read with the tenant, so logins
-- still take one query.
ALTER TABLE tenants ADD COLUMN tls_policy TEXT NOT NULL DEFAULT '';
