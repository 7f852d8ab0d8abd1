//! The Postgres directory: the production backend, shared by every instance of a deployment.
//!
//! Same schema and behaviour as the SQLite directory, with native types: `TIMESTAMPTZ` for times (written
//! from wharf's clock, as in SQLite, so both backends stamp the same way), `BOOLEAN` for flags. Migrations
//! run on open under sqlx's advisory lock, so instances that start together apply them once.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;

use super::*;
use crate::access::{Networks, Permissions};

const TENANT_COLUMNS: &str = "id, name, enabled, created_at, s3_bucket, s3_prefix, s3_endpoint, s3_region, \
                              s3_path_style, s3_access_key_id, s3_secret_ref, allowed_networks, tls_policy";
const PARKED_COLUMNS: &str =
    "location, object_key, upload_id, tenant_id, user_id, resumable, state, parked_at, expires_at";
pub(super) const USER_COLUMNS: &str =
    "id, tenant_id, username, home, enabled, created_at, last_login_at, permissions, \
                            path_permissions, allowed_networks";

/// One failed login, as one atomic statement. Parameters: $1 scope, $2 now, $3 the start of the oldest
/// window still running (now - window), $4 failures that ban (NULL: never), $5 the first ban and $6 the
/// longest ban, both in milliseconds. A row whose window began before $3, or whose ban ended, restarts at 1.
/// While a ban runs, failures still count but the ban keeps its end.
const RECORD_FAILURE: &str = "\
    INSERT INTO login_failures AS f (scope, failures, window_start, last_failure, banned_until, ban_ms) \
    VALUES ($1, 1, $2, $2, CASE WHEN 1 >= $4 THEN $2 + $5 * INTERVAL '1 millisecond' END, \
            CASE WHEN 1 >= $4 THEN $5 END) \
    ON CONFLICT (scope) DO UPDATE SET \
        failures = CASE WHEN f.window_start <= $3 OR f.banned_until <= $2 THEN 1 ELSE f.failures + 1 END, \
        window_start = CASE WHEN f.window_start <= $3 OR f.banned_until <= $2 THEN $2 ELSE f.window_start END, \
        last_failure = $2, \
        banned_until = CASE \
            WHEN f.banned_until > $2 THEN f.banned_until \
            WHEN (CASE WHEN f.window_start <= $3 OR f.banned_until <= $2 THEN 1 ELSE f.failures + 1 END) >= $4 \
                THEN $2 + (CASE WHEN f.ban_ms IS NULL THEN $5 ELSE LEAST(f.ban_ms * 2, $6) END) \
                          * INTERVAL '1 millisecond' \
            END, \
        ban_ms = CASE \
            WHEN f.banned_until > $2 THEN f.ban_ms \
            WHEN (CASE WHEN f.window_start <= $3 OR f.banned_until <= $2 THEN 1 ELSE f.failures + 1 END) >= $4 \
                THEN (CASE WHEN f.ban_ms IS NULL THEN $5 ELSE LEAST(f.ban_ms * 2, $6) END) \
            ELSE f.ban_ms END \
    RETURNING failures, banned_until";

pub struct PostgresDirectory {
    pub(super) pool: PgPool,
}

impl PostgresDirectory {
    /// Connects to the database at `url` (`postgres://user@host/db`) and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, DirectoryError> {
        Self::open_with(url, &super::PoolOptions::default()).await
    }

    /// Connects (TLS as the URL's `sslmode` says) and, when asked, applies pending migrations. Connections
    /// that broke are replaced by the pool on their next use, so wharf recovers by itself when Postgres
    /// comes back; meanwhile queries fail as [`DirectoryError::Unavailable`].
    pub async fn open_with(url: &str, options: &super::PoolOptions) -> Result<Self, DirectoryError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| DirectoryError::Invalid(format!("invalid Postgres URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(options.idle_timeout)
            .test_before_acquire(true)
            .connect_with(connect)
            .await
            .map_err(db_error)?;
        if options.migrate {
            sqlx::migrate!("./migrations/postgres").run(&pool).await.map_err(migrate_error)?;
        }
        Ok(PostgresDirectory { pool })
    }

    /// Sets one text `column` (a name from this file, never from input) of a user.
    async fn update_user(
        &self,
        column: &'static str,
        value: String,
        tenant_id: i64,
        username: &str,
    ) -> Result<(), DirectoryError> {
        let sql = format!("UPDATE users SET {column} = $1 WHERE tenant_id = $2 AND username = $3");
        let done =
            sqlx::query(&sql).bind(value).bind(tenant_id).bind(username).execute(&self.pool).await.map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }
}

#[async_trait]
impl Directory for PostgresDirectory {
    fn pool_status(&self) -> PoolStatus {
        PoolStatus::of(&self.pool)
    }

    async fn create_tenant(&self, name: &str) -> Result<Tenant, DirectoryError> {
        validate_tenant_name(name)?;
        let sql = format!("INSERT INTO tenants (name, created_at) VALUES ($1, $2) RETURNING {TENANT_COLUMNS}");
        let row = sqlx::query(&sql)
            .bind(name)
            .bind(Utc::now())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| conflict_as(e, "tenant"))?;
        tenant_from_row(&row, "")
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, DirectoryError> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE name = $1");
        let row = sqlx::query(&sql).bind(name).fetch_optional(&self.pool).await.map_err(db_error)?;
        row.map(|row| tenant_from_row(&row, "")).transpose()
    }

    async fn tenant_by_hostname(&self, hostname: &str) -> Result<Option<Tenant>, DirectoryError> {
        let row = sqlx::query(
            "SELECT t.id, t.name, t.enabled, t.created_at, t.s3_bucket, t.s3_prefix, t.s3_endpoint, t.s3_region, \
                    t.s3_path_style, t.s3_access_key_id, t.s3_secret_ref, t.allowed_networks, t.tls_policy \
             FROM tenant_hostnames h JOIN tenants t ON t.id = h.tenant_id WHERE h.hostname = $1",
        )
        .bind(hostname_key(hostname))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|row| tenant_from_row(&row, "")).transpose()
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, DirectoryError> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await.map_err(db_error)?;
        rows.iter().map(|row| tenant_from_row(row, "")).collect()
    }

    async fn add_hostname(&self, tenant_id: i64, hostname: &str) -> Result<(), DirectoryError> {
        let hostname = normalize_hostname(hostname)?;
        sqlx::query("INSERT INTO tenant_hostnames (hostname, tenant_id) VALUES ($1, $2)")
            .bind(hostname)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_as(e, "hostname"))?;
        Ok(())
    }

    async fn hostnames(&self, tenant_id: i64) -> Result<Vec<String>, DirectoryError> {
        sqlx::query_scalar("SELECT hostname FROM tenant_hostnames WHERE tenant_id = $1 ORDER BY hostname")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn create_user(&self, tenant_id: i64, user: NewUser) -> Result<User, DirectoryError> {
        validate_username(&user.username)?;
        let home = normalize_home(&user.home)?;
        let sql = format!(
            "INSERT INTO users (tenant_id, username, password_hash, home, created_at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING {USER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(home)
            .bind(Utc::now())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| conflict_as(e, "user"))?;
        user_from_row(&row, "")
    }

    async fn set_password(&self, tenant_id: i64, username: &str, password_hash: &str) -> Result<(), DirectoryError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE tenant_id = $2 AND username = $3")
            .bind(password_hash)
            .bind(tenant_id)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn list_users(&self, tenant_id: Option<i64>) -> Result<Vec<User>, DirectoryError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE $1::BIGINT IS NULL OR tenant_id = $1 ORDER BY tenant_id, username"
        );
        let rows = sqlx::query(&sql).bind(tenant_id).fetch_all(&self.pool).await.map_err(db_error)?;
        rows.iter().map(|row| user_from_row(row, "")).collect()
    }

    async fn delete_user(&self, tenant_id: i64, username: &str) -> Result<(), DirectoryError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let done = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND username = $2")
            .bind(tenant_id)
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("DELETE FROM login_failures WHERE scope = $1")
            .bind(super::login_failures::user_scope(tenant_id, username))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn delete_tenant(&self, tenant_id: i64) -> Result<(), DirectoryError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // Users, hostnames and reservations go with the tenant (ON DELETE CASCADE); the failure counters
        // of its users are keyed by text and go here.
        let done = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("DELETE FROM login_failures WHERE scope LIKE $1")
            .bind(format!("user:{tenant_id}:%"))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn set_tenant_enabled(&self, tenant_id: i64, enabled: bool) -> Result<(), DirectoryError> {
        let done = sqlx::query("UPDATE tenants SET enabled = $1 WHERE id = $2")
            .bind(enabled)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn set_user_enabled(&self, tenant_id: i64, username: &str, enabled: bool) -> Result<(), DirectoryError> {
        let done = sqlx::query("UPDATE users SET enabled = $1 WHERE tenant_id = $2 AND username = $3")
            .bind(enabled)
            .bind(tenant_id)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn login_record(&self, tenant_id: i64, username: &str) -> Result<Option<LoginRecord>, DirectoryError> {
        // Served by the UNIQUE (tenant_id, username) index, then the tenants primary key.
        let row = sqlx::query(
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
        )
        .bind(tenant_id)
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(LoginRecord {
            tenant: tenant_from_row(&row, "t_")?,
            user: user_from_row(&row, "")?,
            password_hash: row.try_get("password_hash").map_err(db_error)?,
            quota_limited: row.try_get("quota_limited").map_err(db_error)?,
        }))
    }

    async fn record_login(&self, user_id: i64, new_hash: Option<&str>) -> Result<(), DirectoryError> {
        let done = sqlx::query(
            "UPDATE users SET last_login_at = $1, password_hash = COALESCE($2, password_hash) WHERE id = $3",
        )
        .bind(Utc::now())
        .bind(new_hash)
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn set_permissions(
        &self,
        tenant_id: i64,
        username: &str,
        permissions: Permissions,
    ) -> Result<(), DirectoryError> {
        self.update_user("permissions", permissions.to_string(), tenant_id, username).await
    }

    async fn set_path_permissions(
        &self,
        tenant_id: i64,
        username: &str,
        rules: &[(String, Permissions)],
    ) -> Result<(), DirectoryError> {
        self.update_user("path_permissions", path_permissions_text(rules)?, tenant_id, username).await
    }

    async fn set_user_networks(
        &self,
        tenant_id: i64,
        username: &str,
        networks: &Networks,
    ) -> Result<(), DirectoryError> {
        self.update_user("allowed_networks", networks_text(networks)?, tenant_id, username).await
    }

    async fn set_tenant_networks(&self, tenant_id: i64, networks: &Networks) -> Result<(), DirectoryError> {
        let done = sqlx::query("UPDATE tenants SET allowed_networks = $1 WHERE id = $2")
            .bind(networks_text(networks)?)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn set_tenant_tls(&self, tenant_id: i64, policy: &TenantTlsPolicy) -> Result<(), DirectoryError> {
        let done = sqlx::query("UPDATE tenants SET tls_policy = $1 WHERE id = $2")
            .bind(policy.to_text()?)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn tenant_by_id(&self, id: i64) -> Result<Option<Tenant>, DirectoryError> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err(db_error)?;
        row.map(|row| tenant_from_row(&row, "")).transpose()
    }

    async fn set_tenant_storage(&self, tenant_id: i64, storage: &TenantStorage) -> Result<(), DirectoryError> {
        storage.validate()?;
        let done = sqlx::query(
            "UPDATE tenants SET s3_bucket = $1, s3_prefix = $2, s3_endpoint = $3, s3_region = $4, \
             s3_path_style = $5, s3_access_key_id = $6, s3_secret_ref = $7 WHERE id = $8",
        )
        .bind(&storage.bucket)
        .bind(storage.prefix.as_deref().map(TenantStorage::normalised_prefix))
        .bind(&storage.endpoint)
        .bind(&storage.region)
        .bind(storage.path_style)
        .bind(&storage.access_key_id)
        .bind(&storage.secret_ref)
        .bind(tenant_id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn record_login_failure(
        &self,
        scope: &str,
        policy: &FailurePolicy,
        now: DateTime<Utc>,
    ) -> Result<FailureCount, DirectoryError> {
        let row = sqlx::query(RECORD_FAILURE)
            .bind(scope)
            .bind(now)
            .bind(now - policy.window)
            .bind(policy.ban_after.map(i64::from))
            .bind(policy.ban.num_milliseconds())
            .bind(policy.max_ban.num_milliseconds())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        count_from_row(&row)
    }

    async fn banned_until(
        &self,
        scopes: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, DirectoryError> {
        sqlx::query_scalar("SELECT max(banned_until) FROM login_failures WHERE scope = ANY($1) AND banned_until > $2")
            .bind(scopes)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn clear_login_failures(&self, scopes: &[String], now: DateTime<Utc>) -> Result<(), DirectoryError> {
        sqlx::query(
            "DELETE FROM login_failures WHERE scope = ANY($1) AND (banned_until IS NULL OR banned_until <= $2)",
        )
        .bind(scopes)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn active_bans(&self, now: DateTime<Utc>) -> Result<Vec<Ban>, DirectoryError> {
        let rows = sqlx::query(
            "SELECT scope, failures, last_failure, banned_until FROM login_failures WHERE banned_until > $1 \
             ORDER BY banned_until DESC, scope",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(ban_from_row).collect()
    }

    async fn lift_ban(&self, scope: &str, now: DateTime<Utc>) -> Result<bool, DirectoryError> {
        let done = sqlx::query("DELETE FROM login_failures WHERE scope = $1 AND banned_until > $2")
            .bind(scope)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn forget_login_failures(&self, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<u64, DirectoryError> {
        let done = sqlx::query(
            "DELETE FROM login_failures WHERE last_failure < $1 AND (banned_until IS NULL OR banned_until <= $2)",
        )
        .bind(before)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn claim_passive(&self, claim: &PassiveClaim, now: DateTime<Utc>) -> Result<bool, DirectoryError> {
        let done = sqlx::query(
            "INSERT INTO passive_claims (client, port, instance, relay, ticket, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (client, port) DO UPDATE SET instance = EXCLUDED.instance, relay = EXCLUDED.relay, \
                 ticket = EXCLUDED.ticket, expires_at = EXCLUDED.expires_at \
             WHERE passive_claims.expires_at <= $7 OR passive_claims.instance = EXCLUDED.instance",
        )
        .bind(claim.client.to_string())
        .bind(i32::from(claim.port))
        .bind(&claim.instance)
        .bind(claim.relay.to_string())
        .bind(claim.ticket)
        .bind(claim.expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_passive(
        &self,
        client: std::net::IpAddr,
        port: u16,
        instance: &str,
        ticket: i64,
    ) -> Result<(), DirectoryError> {
        sqlx::query("DELETE FROM passive_claims WHERE client = $1 AND port = $2 AND instance = $3 AND ticket = $4")
            .bind(client.to_string())
            .bind(i32::from(port))
            .bind(instance)
            .bind(ticket)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn passive_claim(
        &self,
        client: std::net::IpAddr,
        port: u16,
        now: DateTime<Utc>,
    ) -> Result<Option<PassiveClaim>, DirectoryError> {
        let row = sqlx::query(
            "SELECT instance, relay, ticket, expires_at FROM passive_claims \
             WHERE client = $1 AND port = $2 AND expires_at > $3",
        )
        .bind(client.to_string())
        .bind(i32::from(port))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
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
            expires_at: row.try_get("expires_at").map_err(db_error)?,
        }))
    }

    async fn forget_passive_claims(&self, before: DateTime<Utc>) -> Result<u64, DirectoryError> {
        let done = sqlx::query("DELETE FROM passive_claims WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn set_tenant_quota(&self, tenant_id: i64, quota: &Quota) -> Result<(), DirectoryError> {
        quota::validate(quota)?;
        let done = sqlx::query("UPDATE tenants SET max_bytes = $1, max_files = $2 WHERE id = $3")
            .bind(quota.max_bytes)
            .bind(quota.max_files)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn set_user_quota(&self, tenant_id: i64, username: &str, quota: &Quota) -> Result<(), DirectoryError> {
        quota::validate(quota)?;
        let done =
            sqlx::query("UPDATE users SET max_bytes = $1, max_files = $2 WHERE tenant_id = $3 AND username = $4")
                .bind(quota.max_bytes)
                .bind(quota.max_files)
                .bind(tenant_id)
                .bind(username)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn tenant_account(&self, tenant_id: i64, now: DateTime<Utc>) -> Result<Account, DirectoryError> {
        self.account("tenants", "tenant_id", tenant_id, now).await
    }

    async fn user_account(&self, user_id: i64, now: DateTime<Utc>) -> Result<Account, DirectoryError> {
        self.account("users", "user_id", user_id, now).await
    }

    async fn reserve(&self, request: &ReservationRequest, now: DateTime<Utc>) -> Result<Option<Grant>, DirectoryError> {
        retry_conflicts(|| self.reserve_once(request, now)).await
    }

    async fn settle(
        &self,
        tenant_id: i64,
        user_id: i64,
        reservation: Option<i64>,
        change: Usage,
    ) -> Result<(), DirectoryError> {
        retry_conflicts(|| self.settle_once(tenant_id, user_id, reservation, change)).await
    }

    async fn release(&self, reservation: i64) -> Result<(), DirectoryError> {
        sqlx::query("DELETE FROM quota_reservations WHERE id = $1")
            .bind(reservation)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn set_usage(&self, tenant_id: i64, user_id: Option<i64>, usage: Usage) -> Result<(), DirectoryError> {
        let done = match user_id {
            None => sqlx::query("UPDATE tenants SET used_bytes = $1, used_files = $2 WHERE id = $3")
                .bind(usage.bytes)
                .bind(usage.files)
                .bind(tenant_id),
            Some(user_id) => {
                sqlx::query("UPDATE users SET used_bytes = $1, used_files = $2 WHERE id = $3 AND tenant_id = $4")
                    .bind(usage.bytes)
                    .bind(usage.files)
                    .bind(user_id)
                    .bind(tenant_id)
            }
        }
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }
}

#[async_trait]
impl UploadLedger for PostgresDirectory {
    async fn save_upload(&self, upload: &ParkedUpload) -> Result<(), StorageError> {
        let sql = format!(
            "INSERT INTO parked_uploads ({PARKED_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (location, object_key, upload_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, \
             user_id = EXCLUDED.user_id, resumable = EXCLUDED.resumable, state = EXCLUDED.state, \
             parked_at = EXCLUDED.parked_at, expires_at = EXCLUDED.expires_at"
        );
        sqlx::query(&sql)
            .bind(&upload.location)
            .bind(&upload.key)
            .bind(&upload.upload_id)
            .bind(upload.tenant_id)
            .bind(upload.user_id)
            .bind(upload.resumable)
            .bind(&upload.state)
            .bind(upload.parked_at)
            .bind(upload.expires_at)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn resumable_upload(
        &self,
        location: &str,
        key: &str,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<ParkedUpload>, StorageError> {
        let sql = format!(
            "SELECT {PARKED_COLUMNS} FROM parked_uploads WHERE location = $1 AND object_key = $2 AND resumable \
             AND user_id = $3 AND expires_at > $4 ORDER BY parked_at DESC LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(location)
            .bind(key)
            .bind(user_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(row.as_ref().map(parked_from_row).transpose()?)
    }

    async fn resumable_uploads(&self, location: &str, key: &str) -> Result<Vec<ParkedUpload>, StorageError> {
        let sql = format!(
            "SELECT {PARKED_COLUMNS} FROM parked_uploads WHERE location = $1 AND object_key = $2 AND resumable \
             ORDER BY parked_at DESC"
        );
        let rows = sqlx::query(&sql).bind(location).bind(key).fetch_all(&self.pool).await.map_err(db_error)?;
        Ok(rows.iter().map(parked_from_row).collect::<Result<_, DirectoryError>>()?)
    }

    async fn remove_upload(&self, location: &str, key: &str, upload_id: &str) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM parked_uploads WHERE location = $1 AND object_key = $2 AND upload_id = $3")
            .bind(location)
            .bind(key)
            .bind(upload_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn expired_uploads(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<ParkedUpload>, StorageError> {
        let sql =
            format!("SELECT {PARKED_COLUMNS} FROM parked_uploads WHERE expires_at < $1 ORDER BY expires_at LIMIT $2");
        let rows = sqlx::query(&sql).bind(now).bind(limit).fetch_all(&self.pool).await.map_err(db_error)?;
        Ok(rows.iter().map(parked_from_row).collect::<Result<_, DirectoryError>>()?)
    }

    async fn record_digest(&self, location: &str, key: &str, etag: &str, digest: &str) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO object_digests (location, object_key, etag, digest) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (location, object_key) DO UPDATE SET etag = EXCLUDED.etag, digest = EXCLUDED.digest",
        )
        .bind(location)
        .bind(key)
        .bind(etag)
        .bind(digest)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn digest(&self, location: &str, key: &str) -> Result<Option<(String, String)>, StorageError> {
        let row = sqlx::query_as("SELECT etag, digest FROM object_digests WHERE location = $1 AND object_key = $2")
            .bind(location)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(row)
    }

    async fn forget_digest(&self, location: &str, key: &str) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM object_digests WHERE location = $1 AND object_key = $2")
            .bind(location)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn tenant_storage(&self, tenant_id: i64) -> Result<Option<StorageOwner>, StorageError> {
        Ok(self.tenant_by_id(tenant_id).await?.map(|t| t.storage_owner()))
    }
}

impl PostgresDirectory {
    async fn reserve_once(
        &self,
        request: &ReservationRequest,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>, DirectoryError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // Tenant first, then user: every writer of usage locks in this order. `NO KEY UPDATE` is enough to
        // change usage and does not block the key-share locks that inserts referring to these rows take.
        let mut tenant = lock_side(&mut tx, "tenants", request.tenant_id).await?;
        let mut user = lock_side(&mut tx, "users", request.user_id).await?;
        sqlx::query("DELETE FROM quota_reservations WHERE tenant_id = $1 AND expires_at <= $2")
            .bind(request.tenant_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // A statement of its own after the locks: under READ COMMITTED it sees every reservation committed
        // by a transaction that held the lock before this one.
        let row = sqlx::query(
            "SELECT COALESCE(SUM(bytes), 0)::BIGINT AS tenant_bytes, COALESCE(SUM(files), 0)::BIGINT AS tenant_files, \
                    COALESCE(SUM(bytes) FILTER (WHERE user_id = $2), 0)::BIGINT AS user_bytes, \
                    COALESCE(SUM(files) FILTER (WHERE user_id = $2), 0)::BIGINT AS user_files \
             FROM quota_reservations WHERE tenant_id = $1 AND id IS DISTINCT FROM $3",
        )
        .bind(request.tenant_id)
        .bind(request.user_id)
        .bind(request.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tenant.others = usage_of(&row, "tenant_bytes", "tenant_files")?;
        user.others = usage_of(&row, "user_bytes", "user_files")?;
        let Some(bytes) = quota::grant(request, &[tenant, user]) else {
            return Ok(None);
        };
        let mut id = None;
        if let Some(existing) = request.id {
            let done =
                sqlx::query("UPDATE quota_reservations SET bytes = $1, files = $2, expires_at = $3 WHERE id = $4")
                    .bind(bytes)
                    .bind(request.files)
                    .bind(request.expires_at)
                    .bind(existing)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            id = (done.rows_affected() > 0).then_some(existing);
        }
        let id = match id {
            Some(id) => id,
            None => sqlx::query_scalar(
                "INSERT INTO quota_reservations (tenant_id, user_id, bytes, files, expires_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(request.tenant_id)
            .bind(request.user_id)
            .bind(bytes)
            .bind(request.files)
            .bind(request.expires_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?,
        };
        tx.commit().await.map_err(db_error)?;
        Ok(Some(Grant { id, bytes }))
    }

    async fn settle_once(
        &self,
        tenant_id: i64,
        user_id: i64,
        reservation: Option<i64>,
        change: Usage,
    ) -> Result<(), DirectoryError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        for (table, id) in [("tenants", tenant_id), ("users", user_id)] {
            let sql = format!(
                "UPDATE {table} SET used_bytes = GREATEST(used_bytes + $1, 0), \
                 used_files = GREATEST(used_files + $2, 0) WHERE id = $3"
            );
            sqlx::query(&sql)
                .bind(change.bytes)
                .bind(change.files)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        if let Some(id) = reservation {
            sqlx::query("DELETE FROM quota_reservations WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    /// The account of a tenant or user: `table` and `owner` (its column in `quota_reservations`) are names
    /// from this file, never from input.
    async fn account(
        &self,
        table: &'static str,
        owner: &'static str,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Account, DirectoryError> {
        let sql = format!(
            "SELECT max_bytes, max_files, used_bytes, used_files, \
                    (SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM quota_reservations r \
                     WHERE r.{owner} = o.id AND r.expires_at > $2) AS reserved_bytes, \
                    (SELECT COALESCE(SUM(files), 0)::BIGINT FROM quota_reservations r \
                     WHERE r.{owner} = o.id AND r.expires_at > $2) AS reserved_files \
             FROM {table} o WHERE id = $1"
        );
        let row = sqlx::query(&sql).bind(id).bind(now).fetch_optional(&self.pool).await.map_err(db_error)?;
        let row = row.ok_or(DirectoryError::NotFound)?;
        Ok(Account {
            quota: quota_of(&row)?,
            used: usage_of(&row, "used_bytes", "used_files")?,
            reserved: usage_of(&row, "reserved_bytes", "reserved_files")?,
        })
    }
}

/// Runs a transaction again when Postgres aborted it to break a deadlock (40P01) or a serialization
/// conflict (40001): the work is safe to repeat, and the client should not see a 451 for a clash between
/// two sessions.
async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> Result<T, DirectoryError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DirectoryError>>,
{
    const ATTEMPTS: u32 = 4;
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if tries < ATTEMPTS && is_conflict(&e) => {
                tracing::debug!(error = ?e, tries, "transaction aborted by a conflict; running it again");
                tries += 1;
            }
            result => return result,
        }
    }
}

fn is_conflict(e: &DirectoryError) -> bool {
    let DirectoryError::Internal(source) = e else { return false };
    let Some(sqlx::Error::Database(db)) = source.downcast_ref::<sqlx::Error>() else { return false };
    db.code().is_some_and(|code| matches!(&*code, "40P01" | "40001"))
}

/// Locks the usage row of a tenant or user (`table`: a name from this file) for the transaction.
async fn lock_side(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    table: &'static str,
    id: i64,
) -> Result<quota::Side, DirectoryError> {
    let sql =
        format!("SELECT max_bytes, max_files, used_bytes, used_files FROM {table} WHERE id = $1 FOR NO KEY UPDATE");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut **tx).await.map_err(db_error)?;
    let row = row.ok_or(DirectoryError::NotFound)?;
    Ok(quota::Side {
        quota: quota_of(&row)?,
        used: usage_of(&row, "used_bytes", "used_files")?,
        others: Usage::default(),
    })
}

fn quota_of(row: &PgRow) -> Result<Quota, DirectoryError> {
    Ok(Quota {
        max_bytes: row.try_get("max_bytes").map_err(db_error)?,
        max_files: row.try_get("max_files").map_err(db_error)?,
    })
}

fn usage_of(row: &PgRow, bytes: &str, files: &str) -> Result<Usage, DirectoryError> {
    Ok(Usage { bytes: row.try_get(bytes).map_err(db_error)?, files: row.try_get(files).map_err(db_error)? })
}

fn count_from_row(row: &PgRow) -> Result<FailureCount, DirectoryError> {
    let failures: i64 = row.try_get("failures").map_err(db_error)?;
    Ok(FailureCount {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        banned_until: row.try_get("banned_until").map_err(db_error)?,
    })
}

fn ban_from_row(row: &PgRow) -> Result<Ban, DirectoryError> {
    let failures: i64 = row.try_get("failures").map_err(db_error)?;
    Ok(Ban {
        scope: row.try_get("scope").map_err(db_error)?,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        last_failure: row.try_get("last_failure").map_err(db_error)?,
        banned_until: row.try_get("banned_until").map_err(db_error)?,
    })
}

fn parked_from_row(row: &PgRow) -> Result<ParkedUpload, DirectoryError> {
    Ok(ParkedUpload {
        location: row.try_get("location").map_err(db_error)?,
        key: row.try_get("object_key").map_err(db_error)?,
        tenant_id: row.try_get("tenant_id").map_err(db_error)?,
        user_id: row.try_get("user_id").map_err(db_error)?,
        upload_id: row.try_get("upload_id").map_err(db_error)?,
        resumable: row.try_get("resumable").map_err(db_error)?,
        state: row.try_get("state").map_err(db_error)?,
        parked_at: row.try_get("parked_at").map_err(db_error)?,
        expires_at: row.try_get("expires_at").map_err(db_error)?,
    })
}

/// Reads a tenant from columns named `{prefix}id`, `{prefix}name`, … (a prefix keeps joins unambiguous).
pub(super) fn tenant_from_row(row: &PgRow, prefix: &str) -> Result<Tenant, DirectoryError> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(Tenant {
        id: row.try_get(col("id").as_str()).map_err(db_error)?,
        name: row.try_get(col("name").as_str()).map_err(db_error)?,
        enabled: row.try_get(col("enabled").as_str()).map_err(db_error)?,
        created_at: row.try_get(col("created_at").as_str()).map_err(db_error)?,
        storage: TenantStorage {
            bucket: row.try_get(col("s3_bucket").as_str()).map_err(db_error)?,
            prefix: row.try_get(col("s3_prefix").as_str()).map_err(db_error)?,
            endpoint: row.try_get(col("s3_endpoint").as_str()).map_err(db_error)?,
            region: row.try_get(col("s3_region").as_str()).map_err(db_error)?,
            path_style: row.try_get(col("s3_path_style").as_str()).map_err(db_error)?,
            access_key_id: row.try_get(col("s3_access_key_id").as_str()).map_err(db_error)?,
            secret_ref: row.try_get(col("s3_secret_ref").as_str()).map_err(db_error)?,
        },
        allowed_networks: networks_from_text(row.try_get(col("allowed_networks").as_str()).map_err(db_error)?)?,
        tls: TenantTlsPolicy::from_text(row.try_get(col("tls_policy").as_str()).map_err(db_error)?)?,
    })
}

pub(super) fn user_from_row(row: &PgRow, prefix: &str) -> Result<User, DirectoryError> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(User {
        id: row.try_get(col("id").as_str()).map_err(db_error)?,
        tenant_id: row.try_get(col("tenant_id").as_str()).map_err(db_error)?,
        username: row.try_get(col("username").as_str()).map_err(db_error)?,
        home: row.try_get(col("home").as_str()).map_err(db_error)?,
        enabled: row.try_get(col("enabled").as_str()).map_err(db_error)?,
        created_at: row.try_get(col("created_at").as_str()).map_err(db_error)?,
        last_login_at: row.try_get(col("last_login_at").as_str()).map_err(db_error)?,
        access: access_from_text(
            row.try_get(col("permissions").as_str()).map_err(db_error)?,
            row.try_get(col("path_permissions").as_str()).map_err(db_error)?,
        )?,
        allowed_networks: networks_from_text(row.try_get(col("allowed_networks").as_str()).map_err(db_error)?)?,
    })
}

#[cfg(test)]
mod tests {
    //! What only Postgres has: several instances migrating one database at once, and a server out of
    //! reach. The behaviour both backends share is proved in `directory::tests`.
    use super::*;
    use crate::directory::tests::{create_postgres_database, drop_postgres_database};

    #[tokio::test]
    async fn instances_starting_together_apply_the_migrations_once() {
        let (url, name) = create_postgres_database().await;
        let opening = (0..4).map(|_| PostgresDirectory::open(&url));
        let instances = futures_util::future::join_all(opening).await;
        let instances: Vec<PostgresDirectory> = instances.into_iter().map(Result::unwrap).collect();
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&instances[0].pool).await.unwrap();
        assert_eq!(applied, sqlx::migrate!("./migrations/postgres").migrations.len() as i64);
        for instance in instances {
            instance.pool.close().await;
        }
        drop_postgres_database(&name).await;
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        // Nothing listens on port 1; the pool retries until its acquire timeout runs out.
        let result = PostgresDirectory::open("postgres://postgres@127.0.0.1:1/wharf").await;
        assert!(matches!(result, Err(DirectoryError::Unavailable(_))), "{:?}", result.err());
    }
}
