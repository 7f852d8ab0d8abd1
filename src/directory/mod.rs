//! The directory: tenants, their hostnames, and users with their password hashes.
//!
//! Callers see only the [`Directory`] trait; the SQL behind it (SQLite now, Postgres next) stays private to
//! this module. Password hashing lives in [`password`] because both the CLI and the login path need it.

pub mod password;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: i64,
    /// Lower-case letters, digits and `-`, 1 to 63 characters: it appears in `user@tenant` logins and in
    /// storage folder names.
    pub name: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub tenant_id: i64,
    pub username: String,
    /// The user's root inside the tenant's tree, as a normalised absolute path (`/`, `/in`).
    pub home: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// What a login needs: the user, its tenant and the stored hash.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub tenant: Tenant,
    pub user: User,
    pub password_hash: String,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub home: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("not found")]
    NotFound,
    /// A unique name is already taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The input breaks a rule; the text names the rule and is safe to show.
    #[error("{0}")]
    Invalid(String),
    /// The database cannot be reached; the FTP layer answers 421 (try later), never a false 530.
    #[error("directory unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("directory error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait Directory: Send + Sync {
    async fn create_tenant(&self, name: &str) -> Result<Tenant, DirectoryError>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, DirectoryError>;
    /// The tenant a TLS SNI name or `HOST` argument belongs to (case-insensitive).
    async fn tenant_by_hostname(&self, hostname: &str) -> Result<Option<Tenant>, DirectoryError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, DirectoryError>;
    async fn add_hostname(&self, tenant_id: i64, hostname: &str) -> Result<(), DirectoryError>;
    async fn hostnames(&self, tenant_id: i64) -> Result<Vec<String>, DirectoryError>;

    async fn create_user(&self, tenant_id: i64, user: NewUser) -> Result<User, DirectoryError>;
    async fn set_password(&self, tenant_id: i64, username: &str, password_hash: &str) -> Result<(), DirectoryError>;
    async fn list_users(&self, tenant_id: Option<i64>) -> Result<Vec<User>, DirectoryError>;
    async fn delete_user(&self, tenant_id: i64, username: &str) -> Result<(), DirectoryError>;
    /// One indexed lookup for the login path.
    async fn login_record(&self, tenant_id: i64, username: &str) -> Result<Option<LoginRecord>, DirectoryError>;
    /// Records a successful login (and a rehashed password when parameters changed).
    async fn record_login(&self, user_id: i64, new_hash: Option<&str>) -> Result<(), DirectoryError>;
}

/// Validates a tenant name (see [`Tenant::name`]).
pub fn validate_tenant_name(name: &str) -> Result<(), DirectoryError> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(DirectoryError::Invalid(format!(
            "tenant name {name:?} must be 1-63 lower-case letters, digits or '-', not starting or ending with '-'"
        )))
    }
}

/// Validates a username: 1 to 64 characters, no `@` (it separates the tenant), no whitespace or control
/// characters.
pub fn validate_username(name: &str) -> Result<(), DirectoryError> {
    let ok = (1..=64).contains(&name.chars().count())
        && !name.chars().any(|c| c == '@' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(DirectoryError::Invalid(format!(
            "username {name:?} must be 1-64 characters without '@', spaces or control characters"
        )))
    }
}

/// Normalises a home folder: absolute, repeated slashes collapsed, no trailing slash except for the root.
/// `.` and `..` segments are refused rather than resolved, so what is stored is what the operator meant,
/// and every segment must be a name the FTP side accepts too (no control characters, no backslash, at
/// most 255 bytes), so a stored home always resolves. Shared by every backend.
pub fn normalize_home(home: &str) -> Result<String, DirectoryError> {
    let invalid = |why: &str| Err(DirectoryError::Invalid(format!("home {home:?} {why}")));
    if !home.starts_with('/') {
        return invalid("must be an absolute path starting with '/'");
    }
    if home.len() > 1024 {
        return invalid("must be at most 1024 bytes");
    }
    let segments: Vec<&str> = home.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return invalid("must not contain '.' or '..' segments");
    }
    let normalised = format!("/{}", segments.join("/"));
    match crate::vfs::VirtualPath::root().resolve(&normalised) {
        Ok(path) if path.as_str() == normalised => Ok(normalised),
        _ => invalid("must not contain control characters, backslashes or names over 255 bytes"),
    }
}

/// Opens the directory named by a database URL (`sqlite://…`; Postgres follows) and applies migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Directory>, DirectoryError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteDirectory::open(url).await?))
    } else {
        Err(DirectoryError::Invalid(format!(
            "unsupported database URL scheme in {:?}",
            url.split(':').next().unwrap_or("")
        )))
    }
}
