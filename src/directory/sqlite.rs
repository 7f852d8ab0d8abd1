//! The SQLite directory: the embedded default.
//!
//! Timestamps are stored as RFC 3339 UTC text written here, so the schema needs no SQLite date functions and
//! the values read back are exactly the values written.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::SecondsFormat;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::Row;

use super::*;

const TENANT_COLUMNS: &str = "id, name, enabled, created_at, s3_bucket, s3_prefix, s3_endpoint, s3_region, \
                              s3_path_style, s3_access_key_id, s3_secret_ref";
const PARKED_COLUMNS: &str =
    "location, object_key, upload_id, tenant_id, user_id, resumable, state, parked_at, expires_at";
const USER_COLUMNS: &str = "id, tenant_id, username, home, enabled, created_at, last_login_at";

pub struct SqliteDirectory {
    pool: SqlitePool,
}

impl SqliteDirectory {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`) and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, DirectoryError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| DirectoryError::Invalid(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(db_error)?;
        Self::migrated(pool).await
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
        sqlx::migrate!("./migrations/sqlite").run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => db_error(e),
            other => DirectoryError::Internal(Box::new(other)),
        })?;
        Ok(SqliteDirectory { pool })
    }
}

#[async_trait]
impl Directory for SqliteDirectory {
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
                    t.s3_path_style, t.s3_access_key_id, t.s3_secret_ref \
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
        let done = sqlx::query("DELETE FROM users WHERE tenant_id = ? AND username = ?")
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
                    u.password_hash, \
                    t.id AS t_id, t.name AS t_name, t.enabled AS t_enabled, t.created_at AS t_created_at, \
                    t.s3_bucket AS t_s3_bucket, t.s3_prefix AS t_s3_prefix, t.s3_endpoint AS t_s3_endpoint, \
                    t.s3_region AS t_s3_region, t.s3_path_style AS t_s3_path_style, \
                    t.s3_access_key_id AS t_s3_access_key_id, t.s3_secret_ref AS t_s3_secret_ref \
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

    async fn save_upload(&self, upload: &ParkedUpload) -> Result<(), DirectoryError> {
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
    ) -> Result<Option<ParkedUpload>, DirectoryError> {
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
        row.as_ref().map(parked_from_row).transpose()
    }

    async fn resumable_uploads(&self, location: &str, key: &str) -> Result<Vec<ParkedUpload>, DirectoryError> {
        let sql = format!(
            "SELECT {PARKED_COLUMNS} FROM parked_uploads WHERE location = ? AND object_key = ? AND resumable = 1 \
             ORDER BY parked_at DESC"
        );
        let rows = sqlx::query(&sql).bind(location).bind(key).fetch_all(&self.pool).await.map_err(db_error)?;
        rows.iter().map(parked_from_row).collect()
    }

    async fn remove_upload(&self, location: &str, key: &str, upload_id: &str) -> Result<bool, DirectoryError> {
        let done = sqlx::query("DELETE FROM parked_uploads WHERE location = ? AND object_key = ? AND upload_id = ?")
            .bind(location)
            .bind(key)
            .bind(upload_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn expired_uploads(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<ParkedUpload>, DirectoryError> {
        let sql =
            format!("SELECT {PARKED_COLUMNS} FROM parked_uploads WHERE expires_at < ? ORDER BY expires_at LIMIT ?");
        let rows = sqlx::query(&sql).bind(time_text(now)).bind(limit).fetch_all(&self.pool).await.map_err(db_error)?;
        rows.iter().map(parked_from_row).collect()
    }

    async fn record_digest(&self, location: &str, key: &str, etag: &str, digest: &str) -> Result<(), DirectoryError> {
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

    async fn digest(&self, location: &str, key: &str) -> Result<Option<(String, String)>, DirectoryError> {
        sqlx::query_as("SELECT etag, digest FROM object_digests WHERE location = ? AND object_key = ?")
            .bind(location)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn forget_digest(&self, location: &str, key: &str) -> Result<(), DirectoryError> {
        sqlx::query("DELETE FROM object_digests WHERE location = ? AND object_key = ?")
            .bind(location)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
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

fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The one mapping from sqlx errors: the database being out of reach is [`DirectoryError::Unavailable`]
/// (the FTP layer answers 421, not a false 530); everything else is internal.
fn db_error(e: sqlx::Error) -> DirectoryError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
            DirectoryError::Unavailable(Box::new(e))
        }
        other => DirectoryError::Internal(Box::new(other)),
    }
}

/// Like [`db_error`], but a unique violation means `what` already exists and a foreign-key violation means
/// the tenant it refers to does not.
fn conflict_as(e: sqlx::Error, what: &'static str) -> DirectoryError {
    match e.as_database_error() {
        Some(d) if d.is_unique_violation() => DirectoryError::Conflict(what),
        Some(d) if d.is_foreign_key_violation() => DirectoryError::NotFound,
        _ => db_error(e),
    }
}

fn found_if(found: bool) -> Result<(), DirectoryError> {
    if found {
        Ok(())
    } else {
        Err(DirectoryError::NotFound)
    }
}

fn now_text() -> String {
    time_text(Utc::now())
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, DirectoryError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| DirectoryError::Internal(format!("stored timestamp {text:?}: {e}").into()))
}

/// Reads a tenant from columns named `{prefix}id`, `{prefix}name`, … (a prefix keeps joins unambiguous).
fn tenant_from_row(row: &SqliteRow, prefix: &str) -> Result<Tenant, DirectoryError> {
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
    })
}

fn user_from_row(row: &SqliteRow, prefix: &str) -> Result<User, DirectoryError> {
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
    })
}

/// The form hostnames are stored and looked up in: lower case, without a trailing root dot.
fn hostname_key(hostname: &str) -> String {
    hostname.strip_suffix('.').unwrap_or(hostname).to_ascii_lowercase()
}

/// Checks a DNS hostname (letters, digits and `-` in dot-separated labels) and returns its stored form.
fn normalize_hostname(hostname: &str) -> Result<String, DirectoryError> {
    let key = hostname_key(hostname);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if key.len() <= 253 && key.split('.').all(label_ok) {
        Ok(key)
    } else {
        Err(DirectoryError::Invalid(format!(
            "hostname {hostname:?} must be a DNS name: dot-separated labels of letters, digits and '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh database file in its own temp dir (kept alive by the returned guard).
    async fn fresh() -> (SqliteDirectory, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("wharf.db").display());
        (SqliteDirectory::open(&url).await.unwrap(), dir)
    }

    fn new_user(username: &str, home: &str) -> NewUser {
        NewUser { username: username.to_owned(), password_hash: format!("hash-of-{username}"), home: home.to_owned() }
    }

    #[tokio::test]
    async fn tenants_are_created_listed_and_found_by_name() {
        let (dir, _tmp) = fresh().await;
        let beta = dir.create_tenant("beta").await.unwrap();
        let acme = dir.create_tenant("acme").await.unwrap();
        assert!(acme.enabled);
        assert_ne!(acme.id, beta.id);
        assert_eq!(dir.tenant_by_name("acme").await.unwrap(), Some(acme.clone()));
        assert_eq!(dir.tenant_by_name("nope").await.unwrap(), None);
        assert_eq!(dir.list_tenants().await.unwrap(), vec![acme, beta]);
    }

    #[tokio::test]
    async fn duplicate_or_invalid_tenant_names_are_refused() {
        let (dir, _tmp) = fresh().await;
        dir.create_tenant("acme").await.unwrap();
        assert!(matches!(dir.create_tenant("acme").await, Err(DirectoryError::Conflict("tenant"))));
        for bad in ["", "Acme", "-acme", "ac me", "acme@x"] {
            assert!(matches!(dir.create_tenant(bad).await, Err(DirectoryError::Invalid(_))), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn hostnames_are_looked_up_case_insensitively() {
        let (dir, _tmp) = fresh().await;
        let acme = dir.create_tenant("acme").await.unwrap();
        dir.add_hostname(acme.id, "FTP.Acme.example").await.unwrap();
        dir.add_hostname(acme.id, "files.acme.example.").await.unwrap();
        assert_eq!(dir.hostnames(acme.id).await.unwrap(), ["files.acme.example", "ftp.acme.example"]);
        assert_eq!(dir.tenant_by_hostname("ftp.ACME.example").await.unwrap(), Some(acme.clone()));
        assert_eq!(dir.tenant_by_hostname("files.acme.example").await.unwrap(), Some(acme.clone()));
        assert_eq!(dir.tenant_by_hostname("other.example").await.unwrap(), None);

        let other = dir.create_tenant("other").await.unwrap();
        assert!(matches!(
            dir.add_hostname(other.id, "ftp.acme.EXAMPLE").await,
            Err(DirectoryError::Conflict("hostname"))
        ));
        assert!(matches!(dir.add_hostname(999, "x.example").await, Err(DirectoryError::NotFound)));
        assert!(matches!(dir.add_hostname(acme.id, "bad host").await, Err(DirectoryError::Invalid(_))));
    }

    #[tokio::test]
    async fn users_are_created_and_listed_per_tenant() {
        let (dir, _tmp) = fresh().await;
        let acme = dir.create_tenant("acme").await.unwrap();
        let beta = dir.create_tenant("beta").await.unwrap();
        let bob = dir.create_user(acme.id, new_user("bob", "/")).await.unwrap();
        let alice = dir.create_user(acme.id, new_user("alice", "/in")).await.unwrap();
        let carol = dir.create_user(beta.id, new_user("carol", "/")).await.unwrap();
        assert_eq!((alice.tenant_id, alice.home.as_str(), alice.enabled), (acme.id, "/in", true));
        assert_eq!(alice.last_login_at, None);
        assert_eq!(dir.list_users(Some(acme.id)).await.unwrap(), vec![alice.clone(), bob.clone()]);
        assert_eq!(dir.list_users(None).await.unwrap(), vec![alice, bob, carol]);
    }

    #[tokio::test]
    async fn duplicate_invalid_or_orphan_users_are_refused() {
        let (dir, _tmp) = fresh().await;
        let acme = dir.create_tenant("acme").await.unwrap();
        let beta = dir.create_tenant("beta").await.unwrap();
        dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
        assert!(matches!(
            dir.create_user(acme.id, new_user("alice", "/")).await,
            Err(DirectoryError::Conflict("user"))
        ));
        // The same name in another tenant is a different user.
        dir.create_user(beta.id, new_user("alice", "/")).await.unwrap();
        for bad in ["", "a@b", "a b", "tab\t"] {
            assert!(matches!(dir.create_user(acme.id, new_user(bad, "/")).await, Err(DirectoryError::Invalid(_))));
        }
        assert!(matches!(dir.create_user(999, new_user("zed", "/")).await, Err(DirectoryError::NotFound)));
    }

    #[tokio::test]
    async fn homes_are_normalised_or_refused() {
        let (dir, _tmp) = fresh().await;
        let acme = dir.create_tenant("acme").await.unwrap();
        let u = dir.create_user(acme.id, new_user("alice", "//in//box/")).await.unwrap();
        assert_eq!(u.home, "/in/box");

        for (input, expected) in [("/", "/"), ("///", "/"), ("/a/b/", "/a/b"), ("/a b/ü", "/a b/ü")] {
            assert_eq!(normalize_home(input).unwrap(), expected, "{input:?}");
        }
        let long = format!("/{}", "x".repeat(256));
        for bad in ["", "in", "/a/../b", "/./a", "/a/..", "/a\nb", "/a\0", "/in\\box", &long] {
            assert!(matches!(normalize_home(bad), Err(DirectoryError::Invalid(_))), "{bad:?}");
        }
        assert!(matches!(dir.create_user(acme.id, new_user("bob", "../etc")).await, Err(DirectoryError::Invalid(_))));
    }

    #[tokio::test]
    async fn set_password_replaces_the_hash() {
        let (dir, _tmp) = fresh().await;
        let acme = dir.create_tenant("acme").await.unwrap();
        dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
        dir.set_password(acme.id, "alice", "new-hash").await.unwrap();
        let record = dir.login_record(acme.id, "alice").await.unwrap().unwrap();
        assert_eq!(record.password_hash, "new-hash");
        assert!(matches!(dir.set_password(acme.id, "nobody", "h").await, Err(DirectoryError::NotFound)));
    }

    #[tokio::test]
    async fn login_record_joins_user_and_tenant() {
        let (dir, _tmp) = fresh().await;
        let acme = dir.create_tenant("acme").await.unwrap();
        let beta = dir.create_tenant("beta").await.unwrap();
        let alice = dir.create_user(acme.id, new_user("alice", "/in")).await.unwrap();
        let record = dir.login_record(acme.id, "alice").await.unwrap().unwrap();
        assert_eq!(record.tenant, acme);
        assert_eq!(record.user, alice);
        assert_eq!(record.password_hash, "hash-of-alice");
        assert!(dir.login_record(beta.id, "alice").await.unwrap().is_none());
        assert!(dir.login_record(acme.id, "bob").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn record_login_stamps_the_time_and_stores_a_rehash() {
        let (dir, _tmp) = fresh().await;
        let acme = dir.create_tenant("acme").await.unwrap();
        let alice = dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();

        let before = Utc::now() - chrono::Duration::seconds(1);
        dir.record_login(alice.id, None).await.unwrap();
        let record = dir.login_record(acme.id, "alice").await.unwrap().unwrap();
        assert!(record.user.last_login_at.unwrap() >= before);
        assert_eq!(record.password_hash, "hash-of-alice");

        dir.record_login(alice.id, Some("rehashed")).await.unwrap();
        assert_eq!(dir.login_record(acme.id, "alice").await.unwrap().unwrap().password_hash, "rehashed");
        assert!(matches!(dir.record_login(999, None).await, Err(DirectoryError::NotFound)));
    }

    #[tokio::test]
    async fn delete_user_removes_only_that_user() {
        let (dir, _tmp) = fresh().await;
        let acme = dir.create_tenant("acme").await.unwrap();
        dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
        let bob = dir.create_user(acme.id, new_user("bob", "/")).await.unwrap();
        dir.delete_user(acme.id, "alice").await.unwrap();
        assert_eq!(dir.list_users(None).await.unwrap(), vec![bob]);
        assert!(matches!(dir.delete_user(acme.id, "alice").await, Err(DirectoryError::NotFound)));
    }

    #[tokio::test]
    async fn deleting_a_tenant_cascades_to_its_users_and_hostnames() {
        let (dir, _tmp) = fresh().await;
        let acme = dir.create_tenant("acme").await.unwrap();
        let beta = dir.create_tenant("beta").await.unwrap();
        dir.add_hostname(acme.id, "ftp.acme.example").await.unwrap();
        dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
        let carol = dir.create_user(beta.id, new_user("carol", "/")).await.unwrap();

        sqlx::query("DELETE FROM tenants WHERE id = ?").bind(acme.id).execute(&dir.pool).await.unwrap();
        assert_eq!(dir.list_users(None).await.unwrap(), vec![carol]);
        assert!(dir.hostnames(acme.id).await.unwrap().is_empty());
        assert_eq!(dir.tenant_by_hostname("ftp.acme.example").await.unwrap(), None);
    }

    #[tokio::test]
    async fn reopening_keeps_the_data_and_in_memory_works() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("sub.db").display());
        SqliteDirectory::open(&url).await.unwrap().create_tenant("acme").await.unwrap();
        let reopened = SqliteDirectory::open(&url).await.unwrap();
        assert!(reopened.tenant_by_name("acme").await.unwrap().is_some());

        let memory = SqliteDirectory::open_in_memory().await.unwrap();
        let t = memory.create_tenant("acme").await.unwrap();
        memory.create_user(t.id, new_user("alice", "/")).await.unwrap();
        assert_eq!(memory.list_users(None).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn tenant_storage_is_stored_validated_and_found_everywhere() {
        let (dir, _guard) = fresh().await;
        let acme = dir.create_tenant("acme").await.unwrap();
        assert_eq!(acme.storage, TenantStorage::default());
        let own = TenantStorage {
            bucket: Some("acme-files".into()),
            prefix: Some("/in//".into()),
            endpoint: Some("https://s3.example".into()),
            region: Some("eu-west-1".into()),
            path_style: Some(true),
            access_key_id: Some("AKID".into()),
            secret_ref: Some("env:ACME_SECRET".into()),
        };
        assert!(matches!(dir.set_tenant_storage(acme.id, &own).await, Err(DirectoryError::Invalid(_))), "leading /");
        let own = TenantStorage { prefix: Some("in//".into()), ..own };
        assert!(matches!(dir.set_tenant_storage(acme.id, &own).await, Err(DirectoryError::Invalid(_))), "double /");
        let own = TenantStorage { prefix: Some("in/box".into()), ..own };
        dir.set_tenant_storage(acme.id, &own).await.unwrap();
        let stored = dir.tenant_by_id(acme.id).await.unwrap().unwrap().storage;
        assert_eq!(stored, TenantStorage { prefix: Some("in/box/".into()), ..own.clone() });
        dir.add_hostname(acme.id, "ftp.acme.example").await.unwrap();
        assert_eq!(dir.tenant_by_hostname("ftp.acme.example").await.unwrap().unwrap().storage, stored);
        assert_eq!(dir.tenant_by_name("acme").await.unwrap().unwrap().storage, stored);
        let hash = "hash".to_owned();
        let user = dir.create_user(acme.id, NewUser { username: "u".into(), password_hash: hash, home: "/".into() });
        user.await.unwrap();
        assert_eq!(dir.login_record(acme.id, "u").await.unwrap().unwrap().tenant.storage, stored);

        for bad in [
            TenantStorage { bucket: Some("UPPER".into()), ..Default::default() },
            TenantStorage { prefix: Some("/".into()), ..Default::default() },
            TenantStorage { endpoint: Some("s3.example".into()), ..Default::default() },
            TenantStorage { access_key_id: Some("AK".into()), ..Default::default() },
            TenantStorage {
                access_key_id: Some("AK".into()),
                secret_ref: Some("hunter2".into()),
                ..Default::default()
            },
        ] {
            assert!(matches!(dir.set_tenant_storage(acme.id, &bad).await, Err(DirectoryError::Invalid(_))), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn open_uploads_are_leased_parked_taken_once_and_expire() {
        let (dir, _guard) = fresh().await;
        let acme = dir.create_tenant("acme").await.unwrap();
        // Stored with microseconds.
        let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
        let upload = |id: &str, resumable: bool, expires_in: i64| ParkedUpload {
            location: "aws/bucket".into(),
            key: "acme/f.bin".into(),
            tenant_id: acme.id,
            user_id: 7,
            upload_id: id.into(),
            resumable,
            state: "{}".into(),
            parked_at: now,
            expires_at: now + chrono::TimeDelta::seconds(expires_in),
        };
        let resumable = |user_id: i64| dir.resumable_upload("aws/bucket", "acme/f.bin", user_id, now);
        dir.save_upload(&upload("running", false, 3600)).await.unwrap();
        assert_eq!(resumable(7).await.unwrap(), None, "a lease is not resumable");
        dir.save_upload(&upload("parked", true, 60)).await.unwrap();
        assert_eq!(resumable(7).await.unwrap(), Some(upload("parked", true, 60)));
        assert_eq!(resumable(8).await.unwrap(), None, "only its own user's");
        assert_eq!(dir.resumable_uploads("other/bucket", "acme/f.bin").await.unwrap(), vec![]);
        // A later parked upload of another user does not hide this one.
        dir.save_upload(&ParkedUpload { user_id: 8, upload_id: "bobs".into(), ..upload("x", true, 60) }).await.unwrap();
        assert_eq!(resumable(7).await.unwrap().map(|u| u.upload_id), Some("parked".into()));
        let later = now + chrono::TimeDelta::seconds(61);
        let expired = dir.resumable_upload("aws/bucket", "acme/f.bin", 7, later).await.unwrap();
        assert_eq!(expired, None, "an expired one is not continued, even before the sweeper came");
        assert!(dir.remove_upload("aws/bucket", "acme/f.bin", "bobs").await.unwrap());

        assert!(dir.remove_upload("aws/bucket", "acme/f.bin", "parked").await.unwrap());
        assert!(!dir.remove_upload("aws/bucket", "acme/f.bin", "parked").await.unwrap(), "taken only once");

        dir.save_upload(&upload("stale", true, -5)).await.unwrap();
        let expired = dir.expired_uploads(now, 10).await.unwrap();
        assert_eq!(expired.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(), ["stale"]);
    }

    #[tokio::test]
    async fn object_digests_are_recorded_replaced_and_forgotten() {
        let (dir, _guard) = fresh().await;
        assert_eq!(dir.digest("aws/b", "k").await.unwrap(), None);
        dir.record_digest("aws/b", "k", "\"e1\"", "d1").await.unwrap();
        dir.record_digest("aws/b", "k", "\"e2\"", "d2").await.unwrap();
        assert_eq!(dir.digest("aws/b", "k").await.unwrap(), Some(("\"e2\"".into(), "d2".into())));
        dir.forget_digest("aws/b", "k").await.unwrap();
        assert_eq!(dir.digest("aws/b", "k").await.unwrap(), None);
    }
}
