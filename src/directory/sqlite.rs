//! The SQLite directory: the embedded default.
//!
//! Timestamps are stored as RFC 3339 UTC text written here, so the schema needs no SQLite date functions and
//! the values read back are exactly the values written.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::SecondsFormat;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
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

/// One failed login, as one atomic statement (the Postgres twin explains it). Parameters: ?1 scope, ?2 now,
/// ?3 now - window, ?4 failures that ban (NULL: never), ?5 the first ban and ?6 the longest ban; times and
/// lengths in milliseconds.
const RECORD_FAILURE: &str = "\
    INSERT INTO login_failures AS f (scope, failures, window_start, last_failure, banned_until, ban_ms) \
    VALUES (?1, 1, ?2, ?2, CASE WHEN 1 >= ?4 THEN ?2 + ?5 END, CASE WHEN 1 >= ?4 THEN ?5 END) \
    ON CONFLICT (scope) DO UPDATE SET \
        failures = CASE WHEN f.window_start <= ?3 OR f.banned_until <= ?2 THEN 1 ELSE f.failures + 1 END, \
        window_start = CASE WHEN f.window_start <= ?3 OR f.banned_until <= ?2 THEN ?2 ELSE f.window_start END, \
        last_failure = ?2, \
        banned_until = CASE \
            WHEN f.banned_until > ?2 THEN f.banned_until \
            WHEN (CASE WHEN f.window_start <= ?3 OR f.banned_until <= ?2 THEN 1 ELSE f.failures + 1 END) >= ?4 \
                THEN ?2 + (CASE WHEN f.ban_ms IS NULL THEN ?5 ELSE min(f.ban_ms * 2, ?6) END) \
            END, \
        ban_ms = CASE \
            WHEN f.banned_until > ?2 THEN f.ban_ms \
            WHEN (CASE WHEN f.window_start <= ?3 OR f.banned_until <= ?2 THEN 1 ELSE f.failures + 1 END) >= ?4 \
                THEN (CASE WHEN f.ban_ms IS NULL THEN ?5 ELSE min(f.ban_ms * 2, ?6) END) \
            ELSE f.ban_ms END \
    RETURNING failures, banned_until";

pub struct SqliteDirectory {
    pub(super) pool: SqlitePool,
}

impl SqliteDirectory {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`) and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, DirectoryError> {
        Self::open_with(url, true).await
    }

    /// Opens (creating the file if needed) and, when `migrate` is set, applies pending migrations.
    pub async fn open_with(url: &str, migrate: bool) -> Result<Self, DirectoryError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| DirectoryError::Invalid(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode, NORMAL syncs at checkpoints rather than at every commit: a power cut may lose the
            // last commits (usage counters, failure counts: all repairable) but never corrupts the database,
            // and uploads stop paying an fsync per directory write.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(db_error)?;
        match migrate {
            true => Self::migrated(pool).await,
            false => Ok(SqliteDirectory { pool }),
        }
    }

    /// A private in-memory database, for tests. One connection that never expires: with more, or after a
    /// reconnect, each connection would see its own empty database.
    pub async fn open_in_memory() -> Result<Self, DirectoryError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").map_err(db_error)?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: SqlitePool) -> Result<Self, DirectoryError> {
        sqlx::migrate!("./migrations/sqlite").run(&pool).await.map_err(migrate_error)?;
        Ok(SqliteDirectory { pool })
    }

    /// Sets one text `column` (a name from this file, never from input) of a user.
    async fn update_user(
        &self,
        column: &'static str,
        value: String,
        tenant_id: i64,
        username: &str,
    ) -> Result<(), DirectoryError> {
        let sql = format!("UPDATE users SET {column} = ? WHERE tenant_id = ? AND username = ?");
        let done =
            sqlx::query(&sql).bind(value).bind(tenant_id).bind(username).execute(&self.pool).await.map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }
}

#[async_trait]
impl Directory for SqliteDirectory {
    fn pool_status(&self) -> PoolStatus {
        PoolStatus::of(&self.pool)
    }

    async fn create_tenant(&self, name: &str) -> Result<Tenant, DirectoryError> {
        validate_tenant_name(name)?;
        let sql = format!("INSERT INTO tenants (name, created_at) VALUES (?, ?) RETURNING {TENANT_COLUMNS}");
        let row = sqlx::query(&sql)
            .bind(name)
            .bind(now_text())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| conflict_as(e, "tenant"))?;
        tenant_from_row(&row, "")
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, DirectoryError> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE name = ?");
        let row = sqlx::query(&sql).bind(name).fetch_optional(&self.pool).await.map_err(db_error)?;
        row.map(|row| tenant_from_row(&row, "")).transpose()
    }

    async fn tenant_by_hostname(&self, hostname: &str) -> Result<Option<Tenant>, DirectoryError> {
        let row = sqlx::query(
            "SELECT t.id, t.name, t.enabled, t.created_at, t.s3_bucket, t.s3_prefix, t.s3_endpoint, t.s3_region, \
                    t.s3_path_style, t.s3_access_key_id, t.s3_secret_ref, t.allowed_networks, t.tls_policy \
             FROM tenant_hostnames h JOIN tenants t ON t.id = h.tenant_id WHERE h.hostname = ?",
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
        sqlx::query("INSERT INTO tenant_hostnames (hostname, tenant_id) VALUES (?, ?)")
            .bind(hostname)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_as(e, "hostname"))?;
        Ok(())
    }

    async fn hostnames(&self, tenant_id: i64) -> Result<Vec<String>, DirectoryError> {
        sqlx::query_scalar("SELECT hostname FROM tenant_hostnames WHERE tenant_id = ? ORDER BY hostname")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn create_user(&self, tenant_id: i64, user: NewUser) -> Result<User, DirectoryError> {
        validate_username(&user.username)?;
        let home = normalize_home(&user.home)?;
        let sql = format!(
            "INSERT INTO users (tenant_id, username, password_hash, home, created_at) VALUES (?, ?, ?, ?, ?) \
             RETURNING {USER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(home)
            .bind(now_text())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| conflict_as(e, "user"))?;
        user_from_row(&row, "")
    }

    async fn set_password(&self, tenant_id: i64, username: &str, password_hash: &str) -> Result<(), DirectoryError> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE tenant_id = ? AND username = ?")
            .bind(password_hash)
            .bind(tenant_id)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn list_users(&self, tenant_id: Option<i64>) -> Result<Vec<User>, DirectoryError> {
        let sql =
            format!("SELECT {USER_COLUMNS} FROM users WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id, username");
        let rows = sqlx::query(&sql).bind(tenant_id).fetch_all(&self.pool).await.map_err(db_error)?;
        rows.iter().map(|row| user_from_row(row, "")).collect()
    }

    async fn delete_user(&self, tenant_id: i64, username: &str) -> Result<(), DirectoryError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let done = sqlx::query("DELETE FROM users WHERE tenant_id = ? AND username = ?")
            .bind(tenant_id)
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("DELETE FROM login_failures WHERE scope = ?")
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
        let done = sqlx::query("DELETE FROM tenants WHERE id = ?")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("DELETE FROM login_failures WHERE scope LIKE ?")
            .bind(format!("user:{tenant_id}:%"))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn set_tenant_enabled(&self, tenant_id: i64, enabled: bool) -> Result<(), DirectoryError> {
        let done = sqlx::query("UPDATE tenants SET enabled = ? WHERE id = ?")
            .bind(enabled)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn set_user_enabled(&self, tenant_id: i64, username: &str, enabled: bool) -> Result<(), DirectoryError> {
        let done = sqlx::query("UPDATE users SET enabled = ? WHERE tenant_id = ? AND username = ?")
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
             WHERE u.tenant_id = ? AND u.username = ?",
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
        let done =
            sqlx::query("UPDATE users SET last_login_at = ?, password_hash = COALESCE(?, password_hash) WHERE id = ?")
                .bind(now_text())
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
        let done = sqlx::query("UPDATE tenants SET allowed_networks = ? WHERE id = ?")
            .bind(networks_text(networks)?)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn set_tenant_tls(&self, tenant_id: i64, policy: &TenantTlsPolicy) -> Result<(), DirectoryError> {
        let done = sqlx::query("UPDATE tenants SET tls_policy = ? WHERE id = ?")
            .bind(policy.to_text()?)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        found_if(done.rows_affected() > 0)
    }

    async fn tenant_by_id(&self, id: i64) -> Result<Option<Tenant>, DirectoryError> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err(db_error)?;
        row.map(|row| tenant_from_row(&row, "")).transpose()
    }

    async fn set_tenant_storage(&self, tenant_id: i64, storage: &TenantStorage) -> Result<(), DirectoryError> {
        storage.validate()?;
        let done = sqlx::query(
            "UPDATE tenants SET s3_bucket = ?, s3_prefix = ?, s3_endpoint = ?, s3_region = ?, s3_path_style = ?, \
             s3_access_key_id = ?, s3_secret_ref = ? WHERE id = ?",
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
            .bind(now.timestamp_millis())
            .bind((now - policy.window).timestamp_millis())
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
        if scopes.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT max(banned_until) FROM login_failures WHERE scope IN ({}) AND banned_until > ?",
            placeholders(scopes.len())
        );
        let mut query = sqlx::query_scalar(&sql);
        for scope in scopes {
            query = query.bind(scope);
        }
        let until: Option<i64> = query.bind(now.timestamp_millis()).fetch_one(&self.pool).await.map_err(db_error)?;
        until.map(from_millis).transpose()
    }

    async fn clear_login_failures(&self, scopes: &[String], now: DateTime<Utc>) -> Result<(), DirectoryError> {
        if scopes.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM login_failures WHERE scope IN ({}) AND (banned_until IS NULL OR banned_until <= ?)",
            placeholders(scopes.len())
        );
        let mut query = sqlx::query(&sql);
        for scope in scopes {
            query = query.bind(scope);
        }
        query.bind(now.timestamp_millis()).execute(&self.pool).await.map_err(db_error)?;
        Ok(())
    }

    async fn active_bans(&self, now: DateTime<Utc>) -> Result<Vec<Ban>, DirectoryError> {
        let rows = sqlx::query(
            "SELECT scope, failures, last_failure, banned_until FROM login_failures WHERE banned_until > ? \
             ORDER BY banned_until DESC, scope",
        )
        .bind(now.timestamp_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(ban_from_row).collect()
    }

    async fn lift_ban(&self, scope: &str, now: DateTime<Utc>) -> Result<bool, DirectoryError> {
        let done = sqlx::query("DELETE FROM login_failures WHERE scope = ? AND banned_until > ?")
            .bind(scope)
            .bind(now.timestamp_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn forget_login_failures(&self, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<u64, DirectoryError> {
        let done = sqlx::query(
            "DELETE FROM login_failures WHERE last_failure < ? AND (banned_until IS NULL OR banned_until <= ?)",
        )
        .bind(before.timestamp_millis())
        .bind(now.timestamp_millis())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn claim_passive(&self, claim: &PassiveClaim, now: DateTime<Utc>) -> Result<bool, DirectoryError> {
        let done = sqlx::query(
            "INSERT INTO passive_claims (client, port, instance, relay, ticket, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (client, port) DO UPDATE SET instance = excluded.instance, relay = excluded.relay, \
                 ticket = excluded.ticket, expires_at = excluded.expires_at \
             WHERE passive_claims.expires_at <= ?7 OR passive_claims.instance = excluded.instance",
        )
        .bind(claim.client.to_string())
        .bind(i64::from(claim.port))
        .bind(&claim.instance)
        .bind(claim.relay.to_string())
        .bind(claim.ticket)
        .bind(claim.expires_at.timestamp_millis())
        .bind(now.timestamp_millis())
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
        sqlx::query("DELETE FROM passive_claims WHERE client = ?1 AND port = ?2 AND instance = ?3 AND ticket = ?4")
            .bind(client.to_string())
            .bind(i64::from(port))
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
             WHERE client = ?1 AND port = ?2 AND expires_at > ?3",
        )
        .bind(client.to_string())
        .bind(i64::from(port))
        .bind(now.timestamp_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let relay: String = row.try_get("relay").map_err(db_error)?;
        let expires_ms: i64 = row.try_get("expires_at").map_err(db_error)?;
        Ok(Some(PassiveClaim {
            client,
            port,
            instance: row.try_get("instance").map_err(db_error)?,
            relay: relay
                .parse()
                .map_err(|_| DirectoryError::Internal(format!("passive claim relay {relay:?}").into()))?,
            ticket: row.try_get("ticket").map_err(db_error)?,
            expires_at: DateTime::from_timestamp_millis(expires_ms)
                .ok_or_else(|| DirectoryError::Internal(format!("passive claim expiry {expires_ms}").into()))?,
        }))
    }

    async fn forget_passive_claims(&self, before: DateTime<Utc>) -> Result<u64, DirectoryError> {
        let done = sqlx::query("DELETE FROM passive_claims WHERE expires_at < ?1")
            .bind(before.timestamp_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn set_tenant_quota(&self, tenant_id: i64, quota: &Quota) -> Result<(), DirectoryError> {
        quota::validate(quota)?;
        let done = sqlx::query("UPDATE tenants SET max_bytes = ?1, max_files = ?2 WHERE id = ?3")
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
            sqlx::query("UPDATE users SET max_bytes = ?1, max_files = ?2 WHERE tenant_id = ?3 AND username = ?4")
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
        // BEGIN IMMEDIATE takes SQLite's write lock before the first read, so no other writer can slip in
        // between reading usage and writing the reservation.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
        // Tenant first, then user: every writer of usage locks in this order, so none can deadlock.
        let mut tenant = lock_side(&mut tx, "tenants", request.tenant_id).await?;
        let mut user = lock_side(&mut tx, "users", request.user_id).await?;
        sqlx::query("DELETE FROM quota_reservations WHERE tenant_id = ?1 AND expires_at <= ?2")
            .bind(request.tenant_id)
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let row = sqlx::query(
            "SELECT COALESCE(SUM(bytes), 0) AS tenant_bytes, COALESCE(SUM(files), 0) AS tenant_files, \
                    COALESCE(SUM(CASE WHEN user_id = ?2 THEN bytes END), 0) AS user_bytes, \
                    COALESCE(SUM(CASE WHEN user_id = ?2 THEN files END), 0) AS user_files \
             FROM quota_reservations WHERE tenant_id = ?1 AND id IS NOT ?3",
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
                sqlx::query("UPDATE quota_reservations SET bytes = ?1, files = ?2, expires_at = ?3 WHERE id = ?4")
                    .bind(bytes)
                    .bind(request.files)
                    .bind(request.expires_at.timestamp_millis())
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
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            )
            .bind(request.tenant_id)
            .bind(request.user_id)
            .bind(bytes)
            .bind(request.files)
            .bind(request.expires_at.timestamp_millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?,
        };
        tx.commit().await.map_err(db_error)?;
        Ok(Some(Grant { id, bytes }))
    }

    async fn settle(
        &self,
        tenant_id: i64,
        user_id: i64,
        reservation: Option<i64>,
        change: Usage,
    ) -> Result<(), DirectoryError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
        for (table, id) in [("tenants", tenant_id), ("users", user_id)] {
            let sql = format!(
                "UPDATE {table} SET used_bytes = MAX(used_bytes + ?1, 0), \
                 used_files = MAX(used_files + ?2, 0) WHERE id = ?3"
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
            sqlx::query("DELETE FROM quota_reservations WHERE id = ?1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn release(&self, reservation: i64) -> Result<(), DirectoryError> {
        sqlx::query("DELETE FROM quota_reservations WHERE id = ?1")
            .bind(reservation)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn set_usage(&self, tenant_id: i64, user_id: Option<i64>, usage: Usage) -> Result<(), DirectoryError> {
        let done = match user_id {
            None => sqlx::query("UPDATE tenants SET used_bytes = ?1, used_files = ?2 WHERE id = ?3")
                .bind(usage.bytes)
                .bind(usage.files)
                .bind(tenant_id),
            Some(user_id) => {
                sqlx::query("UPDATE users SET used_bytes = ?1, used_files = ?2 WHERE id = ?3 AND tenant_id = ?4")
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
impl UploadLedger for SqliteDirectory {
    async fn save_upload(&self, upload: &ParkedUpload) -> Result<(), StorageError> {
        let sql =
            format!("INSERT OR REPLACE INTO parked_uploads ({PARKED_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
        sqlx::query(&sql)
            .bind(&upload.location)
            .bind(&upload.key)
            .bind(&upload.upload_id)
            .bind(upload.tenant_id)
            .bind(upload.user_id)
            .bind(upload.resumable)
            .bind(&upload.state)
            .bind(time_text(upload.parked_at))
            .bind(time_text(upload.expires_at))
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
            "SELECT {PARKED_COLUMNS} FROM parked_uploads WHERE location = ? AND object_key = ? AND resumable = 1 \
             AND user_id = ? AND expires_at > ? ORDER BY parked_at DESC LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(location)
            .bind(key)
            .bind(user_id)
            .bind(time_text(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(row.as_ref().map(parked_from_row).transpose()?)
    }

    async fn resumable_uploads(&self, location: &str, key: &str) -> Result<Vec<ParkedUpload>, StorageError> {
        let sql = format!(
            "SELECT {PARKED_COLUMNS} FROM parked_uploads WHERE location = ? AND object_key = ? AND resumable = 1 \
             ORDER BY parked_at DESC"
        );
        let rows = sqlx::query(&sql).bind(location).bind(key).fetch_all(&self.pool).await.map_err(db_error)?;
        Ok(rows.iter().map(parked_from_row).collect::<Result<_, DirectoryError>>()?)
    }

    async fn remove_upload(&self, location: &str, key: &str, upload_id: &str) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM parked_uploads WHERE location = ? AND object_key = ? AND upload_id = ?")
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
            format!("SELECT {PARKED_COLUMNS} FROM parked_uploads WHERE expires_at < ? ORDER BY expires_at LIMIT ?");
        let rows = sqlx::query(&sql).bind(time_text(now)).bind(limit).fetch_all(&self.pool).await.map_err(db_error)?;
        Ok(rows.iter().map(parked_from_row).collect::<Result<_, DirectoryError>>()?)
    }

    async fn record_digest(&self, location: &str, key: &str, etag: &str, digest: &str) -> Result<(), StorageError> {
        sqlx::query("INSERT OR REPLACE INTO object_digests (location, object_key, etag, digest) VALUES (?, ?, ?, ?)")
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
        let row = sqlx::query_as("SELECT etag, digest FROM object_digests WHERE location = ? AND object_key = ?")
            .bind(location)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(row)
    }

    async fn forget_digest(&self, location: &str, key: &str) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM object_digests WHERE location = ? AND object_key = ?")
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

impl SqliteDirectory {
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
                    (SELECT COALESCE(SUM(bytes), 0) FROM quota_reservations r \
                     WHERE r.{owner} = o.id AND r.expires_at > ?2) AS reserved_bytes, \
                    (SELECT COALESCE(SUM(files), 0) FROM quota_reservations r \
                     WHERE r.{owner} = o.id AND r.expires_at > ?2) AS reserved_files \
             FROM {table} o WHERE id = ?1"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(now.timestamp_millis())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        let row = row.ok_or(DirectoryError::NotFound)?;
        Ok(Account {
            quota: quota_of(&row)?,
            used: usage_of(&row, "used_bytes", "used_files")?,
            reserved: usage_of(&row, "reserved_bytes", "reserved_files")?,
        })
    }
}

/// Reads the usage row of a tenant or user (`table`: a name from this file); the transaction's `BEGIN
/// IMMEDIATE` already holds the lock.
async fn lock_side(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    table: &'static str,
    id: i64,
) -> Result<quota::Side, DirectoryError> {
    let sql = format!("SELECT max_bytes, max_files, used_bytes, used_files FROM {table} WHERE id = ?1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut **tx).await.map_err(db_error)?;
    let row = row.ok_or(DirectoryError::NotFound)?;
    Ok(quota::Side {
        quota: quota_of(&row)?,
        used: usage_of(&row, "used_bytes", "used_files")?,
        others: Usage::default(),
    })
}

fn quota_of(row: &SqliteRow) -> Result<Quota, DirectoryError> {
    Ok(Quota {
        max_bytes: row.try_get("max_bytes").map_err(db_error)?,
        max_files: row.try_get("max_files").map_err(db_error)?,
    })
}

fn usage_of(row: &SqliteRow, bytes: &str, files: &str) -> Result<Usage, DirectoryError> {
    Ok(Usage { bytes: row.try_get(bytes).map_err(db_error)?, files: row.try_get(files).map_err(db_error)? })
}

fn parked_from_row(row: &SqliteRow) -> Result<ParkedUpload, DirectoryError> {
    let parked_at: String = row.try_get("parked_at").map_err(db_error)?;
    let expires_at: String = row.try_get("expires_at").map_err(db_error)?;
    Ok(ParkedUpload {
        location: row.try_get("location").map_err(db_error)?,
        key: row.try_get("object_key").map_err(db_error)?,
        tenant_id: row.try_get("tenant_id").map_err(db_error)?,
        user_id: row.try_get("user_id").map_err(db_error)?,
        upload_id: row.try_get("upload_id").map_err(db_error)?,
        resumable: row.try_get("resumable").map_err(db_error)?,
        state: row.try_get("state").map_err(db_error)?,
        parked_at: parse_time(&parked_at)?,
        expires_at: parse_time(&expires_at)?,
    })
}

fn count_from_row(row: &SqliteRow) -> Result<FailureCount, DirectoryError> {
    let failures: i64 = row.try_get("failures").map_err(db_error)?;
    let banned_until: Option<i64> = row.try_get("banned_until").map_err(db_error)?;
    Ok(FailureCount {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        banned_until: banned_until.map(from_millis).transpose()?,
    })
}

fn ban_from_row(row: &SqliteRow) -> Result<Ban, DirectoryError> {
    let failures: i64 = row.try_get("failures").map_err(db_error)?;
    Ok(Ban {
        scope: row.try_get("scope").map_err(db_error)?,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        last_failure: from_millis(row.try_get("last_failure").map_err(db_error)?)?,
        banned_until: from_millis(row.try_get("banned_until").map_err(db_error)?)?,
    })
}

fn from_millis(ms: i64) -> Result<DateTime<Utc>, DirectoryError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| DirectoryError::Internal(format!("stored time {ms} is out of range").into()))
}

/// `?, ?, …`: one placeholder per scope.
fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

pub(super) fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn now_text() -> String {
    time_text(Utc::now())
}

pub(super) fn parse_time(text: &str) -> Result<DateTime<Utc>, DirectoryError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| DirectoryError::Internal(format!("stored timestamp {text:?}: {e}").into()))
}

/// Reads a tenant from columns named `{prefix}id`, `{prefix}name`, … (a prefix keeps joins unambiguous).
pub(super) fn tenant_from_row(row: &SqliteRow, prefix: &str) -> Result<Tenant, DirectoryError> {
    let col = |name: &str| format!("{prefix}{name}");
    let created_at: String = row.try_get(col("created_at").as_str()).map_err(db_error)?;
    Ok(Tenant {
        id: row.try_get(col("id").as_str()).map_err(db_error)?,
        name: row.try_get(col("name").as_str()).map_err(db_error)?,
        enabled: row.try_get(col("enabled").as_str()).map_err(db_error)?,
        created_at: parse_time(&created_at)?,
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

pub(super) fn user_from_row(row: &SqliteRow, prefix: &str) -> Result<User, DirectoryError> {
    let col = |name: &str| format!("{prefix}{name}");
    let created_at: String = row.try_get(col("created_at").as_str()).map_err(db_error)?;
    let last_login_at: Option<String> = row.try_get(col("last_login_at").as_str()).map_err(db_error)?;
    Ok(User {
        id: row.try_get(col("id").as_str()).map_err(db_error)?,
        tenant_id: row.try_get(col("tenant_id").as_str()).map_err(db_error)?,
        username: row.try_get(col("username").as_str()).map_err(db_error)?,
        home: row.try_get(col("home").as_str()).map_err(db_error)?,
        enabled: row.try_get(col("enabled").as_str()).map_err(db_error)?,
        created_at: parse_time(&created_at)?,
        last_login_at: last_login_at.as_deref().map(parse_time).transpose()?,
        access: access_from_text(
            row.try_get(col("permissions").as_str()).map_err(db_error)?,
            row.try_get(col("path_permissions").as_str()).map_err(db_error)?,
        )?,
        allowed_networks: networks_from_text(row.try_get(col("allowed_networks").as_str()).map_err(db_error)?)?,
    })
}

#[cfg(test)]
mod tests {
    //! What only SQLite has: a database file reopened, and the in-memory database. The behaviour both
    //! backends share is proved in `directory::tests`.
    use super::*;

    #[tokio::test]
    async fn reopening_keeps_the_data_and_in_memory_works() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("sub.db").display());
        SqliteDirectory::open(&url).await.unwrap().create_tenant("acme").await.unwrap();
        let reopened = SqliteDirectory::open(&url).await.unwrap();
        assert!(reopened.tenant_by_name("acme").await.unwrap().is_some());

        let memory = SqliteDirectory::open_in_memory().await.unwrap();
        let t = memory.create_tenant("acme").await.unwrap();
        let alice = NewUser { username: "alice".into(), password_hash: "h".into(), home: "/".into() };
        memory.create_user(t.id, alice).await.unwrap();
        assert_eq!(memory.list_users(None).await.unwrap().len(), 1);
    }
}
