//! The login path's store ([`LoginStore`](crate::directory::LoginStore): the login lookup, failure counters
//! and bans) and the shared passive pool's claims ([`ClaimStore`](crate::directory::ClaimStore)), in both
//! dialects.

/// One failed login, as one atomic statement, in the dialect whose `least` is the smaller of two values and
/// whose `plus_ms` adds milliseconds to a time. Parameters: $1 scope, $2 now, $3 the start of the oldest
/// window still running (now - window), $4 failures that ban (NULL: never), $5 the first ban and $6 the
/// longest ban, both in milliseconds. A row whose window began before $3, or whose ban ended, restarts at 1.
/// While a ban runs, failures still count but the ban keeps its end.
pub(in crate::directory) fn record_failure_sql(least: &str, plus_ms: fn(&str, &str) -> String) -> String {
    let restarts = "f.window_start <= $3 OR f.banned_until <= $2";
    let next_ban = format!("(CASE WHEN f.ban_ms IS NULL THEN $5 ELSE {least}(f.ban_ms * 2, $6) END)");
    format!(
        "INSERT INTO login_failures AS f (scope, failures, window_start, last_failure, banned_until, ban_ms) \
         VALUES ($1, 1, $2, $2, CASE WHEN 1 >= $4 THEN {first_end} END, CASE WHEN 1 >= $4 THEN $5 END) \
         ON CONFLICT (scope) DO UPDATE SET \
             failures = CASE WHEN {restarts} THEN 1 ELSE f.failures + 1 END, \
             window_start = CASE WHEN {restarts} THEN $2 ELSE f.window_start END, \
             last_failure = $2, \
             banned_until = CASE \
                 WHEN f.banned_until > $2 THEN f.banned_until \
                 WHEN (CASE WHEN {restarts} THEN 1 ELSE f.failures + 1 END) >= $4 THEN {next_end} \
             END, \
             ban_ms = CASE \
                 WHEN f.banned_until > $2 THEN f.ban_ms \
                 WHEN (CASE WHEN {restarts} THEN 1 ELSE f.failures + 1 END) >= $4 THEN {next_ban} \
                 ELSE f.ban_ms END \
         RETURNING failures, banned_until",
        first_end = plus_ms("$2", "$5"),
        next_end = plus_ms("$2", &next_ban),
    )
}

macro_rules! sql_logins {
    ($dir:ident) => {
        /// The failed-login upsert (`sql::record_failure_sql`) in this dialect, made once.
        static RECORD_FAILURE: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| super::sql::record_failure_sql(LEAST, plus_ms));

        #[async_trait]
        impl LoginStore for $dir {
            async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, DirectoryError> {
                let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE name = $1");
                let row = sql!(fetch_optional, &self.pool, &sql, name)?;
                row.map(|row| tenant_from_row(&row, "")).transpose()
            }

            async fn tenant_by_hostname(&self, hostname: &str) -> Result<Option<Tenant>, DirectoryError> {
                let row = sql!(
                    fetch_optional,
                    &self.pool,
                    "SELECT t.id, t.name, t.enabled, t.created_at, t.s3_bucket, t.s3_prefix, t.s3_endpoint, \
                            t.s3_region, t.s3_path_style, t.s3_access_key_id, t.s3_secret_ref, t.allowed_networks, \
                            t.tls_policy \
                     FROM tenant_hostnames h JOIN tenants t ON t.id = h.tenant_id WHERE h.hostname = $1",
                    hostname_key(hostname)
                )?;
                row.map(|row| tenant_from_row(&row, "")).transpose()
            }

            async fn login_record(
                &self,
                tenant_id: i64,
                username: &str,
            ) -> Result<Option<LoginRecord>, DirectoryError> {
                // Served by the UNIQUE (tenant_id, username) index, then the tenants primary key.
                let row = sql!(
                    fetch_optional,
                    &self.pool,
                    "SELECT u.id, u.tenant_id, u.username, u.home, u.enabled, u.created_at, u.last_login_at, \
                            u.permissions, u.path_permissions, u.allowed_networks, u.password_hash, \
                            t.id AS t_id, t.name AS t_name, t.enabled AS t_enabled, t.created_at AS t_created_at, \
                            t.s3_bucket AS t_s3_bucket, t.s3_prefix AS t_s3_prefix, t.s3_endpoint AS t_s3_endpoint, \
                            t.s3_region AS t_s3_region, t.s3_path_style AS t_s3_path_style, \
                            t.s3_access_key_id AS t_s3_access_key_id, t.s3_secret_ref AS t_s3_secret_ref, \
                            t.allowed_networks AS t_allowed_networks, t.tls_policy AS t_tls_policy, \
                            (t.max_bytes IS NOT NULL OR t.max_files IS NOT NULL \
                             OR u.max_bytes IS NOT NULL OR u.max_files IS NOT NULL) AS quota_limited \
                     FROM users u JOIN tenants t ON t.id = u.tenant_id \
                     WHERE u.tenant_id = $1 AND u.username = $2",
                    tenant_id,
                    username
                )?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(LoginRecord {
                    tenant: tenant_from_row(&row, "t_")?,
                    user: user_from_row(&row, "")?,
                    password_hash: row.try_get("password_hash").map_err(db_error)?,
                    quota_limited: row.try_get("quota_limited").map_err(db_error)?,
                }))
            }

            async fn record_login(&self, user_id: i64, new_hash: Option<&str>) -> Result<(), DirectoryError> {
                let done = sql!(
                    execute,
                    &self.pool,
                    "UPDATE users SET last_login_at = $1, password_hash = COALESCE($2, password_hash) WHERE id = $3",
                    time(Utc::now()),
                    new_hash,
                    user_id
                )?;
                found_if(done.rows_affected() > 0)
            }

            async fn record_login_failure(
                &self,
                scope: &str,
                policy: &FailurePolicy,
                now: DateTime<Utc>,
            ) -> Result<FailureCount, DirectoryError> {
                let row = sql!(
                    fetch_one,
                    &self.pool,
                    RECORD_FAILURE.as_str(),
                    scope,
                    clock(now),
                    clock(now - policy.window),
                    policy.ban_after.map(i64::from),
                    policy.ban.num_milliseconds(),
                    policy.max_ban.num_milliseconds()
                )?;
                let failures: i64 = row.try_get("failures").map_err(db_error)?;
                Ok(FailureCount {
                    failures: u32::try_from(failures).unwrap_or(u32::MAX),
                    banned_until: opt_clock_of(&row, "banned_until")?,
                })
            }

            async fn banned_until(
                &self,
                scopes: &[String],
                now: DateTime<Utc>,
            ) -> Result<Option<DateTime<Utc>>, DirectoryError> {
                if scopes.is_empty() {
                    return Ok(None);
                }
                let sql = format!(
                    "SELECT max(banned_until) AS until FROM login_failures WHERE banned_until > $1 AND scope IN ({})",
                    placeholders(2, scopes.len())
                );
                let mut query = sqlx::query(&sql).bind(clock(now));
                for scope in scopes {
                    query = query.bind(scope);
                }
                let row = query.fetch_one(&self.pool).await.map_err(db_error)?;
                opt_clock_of(&row, "until")
            }

            async fn clear_login_failures(&self, scopes: &[String], now: DateTime<Utc>) -> Result<(), DirectoryError> {
                if scopes.is_empty() {
                    return Ok(());
                }
                let sql = format!(
                    "DELETE FROM login_failures WHERE (banned_until IS NULL OR banned_until <= $1) AND scope IN ({})",
                    placeholders(2, scopes.len())
                );
                let mut query = sqlx::query(&sql).bind(clock(now));
                for scope in scopes {
                    query = query.bind(scope);
                }
                query.execute(&self.pool).await.map_err(db_error)?;
                Ok(())
            }

            async fn active_bans(&self, now: DateTime<Utc>) -> Result<Vec<Ban>, DirectoryError> {
                let rows = sql!(
                    fetch_all,
                    &self.pool,
                    "SELECT scope, failures, last_failure, banned_until FROM login_failures WHERE banned_until > $1 \
                     ORDER BY banned_until DESC, scope",
                    clock(now)
                )?;
                rows.iter()
                    .map(|row| {
                        let failures: i64 = row.try_get("failures").map_err(db_error)?;
                        Ok(Ban {
                            scope: row.try_get("scope").map_err(db_error)?,
                            failures: u32::try_from(failures).unwrap_or(u32::MAX),
                            last_failure: clock_of(row, "last_failure")?,
                            banned_until: clock_of(row, "banned_until")?,
                        })
                    })
                    .collect()
            }

            async fn lift_ban(&self, scope: &str, now: DateTime<Utc>) -> Result<bool, DirectoryError> {
                let done = sql!(
                    execute,
                    &self.pool,
                    "DELETE FROM login_failures WHERE scope = $1 AND banned_until > $2",
                    scope,
                    clock(now)
                )?;
                Ok(done.rows_affected() > 0)
            }

            async fn forget_login_failures(
                &self,
                before: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<u64, DirectoryError> {
                let done = sql!(
                    execute,
                    &self.pool,
                    "DELETE FROM login_failures \
                     WHERE last_failure < $1 AND (banned_until IS NULL OR banned_until <= $2)",
                    clock(before),
                    clock(now)
                )?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait]
        impl ClaimStore for $dir {
            async fn claim_passive(&self, claim: &PassiveClaim, now: DateTime<Utc>) -> Result<bool, DirectoryError> {
                let done = sql!(
                    execute,
                    &self.pool,
                    "INSERT INTO passive_claims (client, port, instance, relay, ticket, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (client, port) DO UPDATE SET instance = EXCLUDED.instance, relay = EXCLUDED.relay, \
                         ticket = EXCLUDED.ticket, expires_at = EXCLUDED.expires_at \
                     WHERE passive_claims.expires_at <= $7 OR passive_claims.instance = EXCLUDED.instance",
                    claim.client.to_string(),
                    i32::from(claim.port),
                    &claim.instance,
                    claim.relay.to_string(),
                    claim.ticket,
                    clock(claim.expires_at),
                    clock(now)
                )?;
                Ok(done.rows_affected() > 0)
            }

            async fn release_passive(
                &self,
                client: std::net::IpAddr,
                port: u16,
                instance: &str,
                ticket: i64,
            ) -> Result<(), DirectoryError> {
                sql!(
                    execute,
                    &self.pool,
                    "DELETE FROM passive_claims WHERE client = $1 AND port = $2 AND instance = $3 AND ticket = $4",
                    client.to_string(),
                    i32::from(port),
                    instance,
                    ticket
                )?;
                Ok(())
            }

            async fn passive_claim(
                &self,
                client: std::net::IpAddr,
                port: u16,
                now: DateTime<Utc>,
            ) -> Result<Option<PassiveClaim>, DirectoryError> {
                let row = sql!(
                    fetch_optional,
                    &self.pool,
                    "SELECT instance, relay, ticket, expires_at FROM passive_claims \
                     WHERE client = $1 AND port = $2 AND expires_at > $3",
                    client.to_string(),
                    i32::from(port),
                    clock(now)
                )?;
                let Some(row) = row else { return Ok(None) };
                let relay: String = row.try_get("relay").map_err(db_error)?;
                Ok(Some(PassiveClaim {
                    client,
                    port,
                    instance: row.try_get("instance").map_err(db_error)?,
                    relay: relay
                        .parse()
                        .map_err(|_| DirectoryError::Internal(format!("passive claim relay {relay:?}").into()))?,
                    ticket: row.try_get("ticket").map_err(db_error)?,
                    expires_at: clock_of(&row, "expires_at")?,
                }))
            }

            async fn forget_passive_claims(&self, before: DateTime<Utc>) -> Result<u64, DirectoryError> {
                let done =
                    sql!(execute, &self.pool, "DELETE FROM passive_claims WHERE expires_at < $1", clock(before))?;
                Ok(done.rows_affected())
            }
        }
    };
}
