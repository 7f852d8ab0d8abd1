//! The directory: tenants, their hostnames, users and everything else wharf keeps in SQL.
//!
//! Callers hold the store they need ([`Tenants`], [`LoginStore`], [`ClaimStore`], [`Quotas`], [`AdminStore`],
//! and the storage layer's [`UploadLedger`]; [`Directory`] is all of them). The SQL behind them is written
//! once in `sql/` and run on Postgres (production) or SQLite (the embedded default); [`open`] picks the
//! backend from the database URL. The directory keeps password hashes but does not make or check them
//! (that is `auth::password`); failed-login counters and bans are in [`login_failures`].

pub mod admin;
// Before the backends: their modules expand its macros.
#[macro_use]
mod sql;
pub mod login_failures;
pub mod postgres;
pub mod quota;
pub mod sqlite;
mod stores;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::access::{Access, Networks, Permissions};
use crate::storage::{ErrorKind as StorageErrorKind, StorageError};
pub use crate::storage::{InvalidSettings, ParkedUpload, StorageOwner, TenantStorage, UploadLedger};
use crate::vfs::VirtualPath;

pub use admin::{AdminStore, Page};
pub use login_failures::{Ban, FailureCount, FailurePolicy};
pub use quota::{Account, Grant, Quota, QuotaAccounts, ReservationRequest, Usage};
pub use stores::{ClaimStore, Directory, LoginStore, Quotas, Tenants};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: i64,
    /// Lower-case letters, digits and `-`, 1 to 63 characters: it appears in `user@tenant` logins and in
    /// storage folder names.
    pub name: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    /// Where the S3 backend keeps this tenant's files; all `None` means the server's defaults.
    pub storage: TenantStorage,
    /// Where the tenant's users may log in from (each user may narrow it further); empty: anywhere.
    pub allowed_networks: Networks,
    /// Where this tenant's TLS policy differs from the server's `[tls]` section.
    pub tls: TenantTlsPolicy,
}

impl Tenant {
    /// What the storage backends need to know of this tenant.
    pub fn storage_owner(&self) -> StorageOwner {
        StorageOwner { tenant_id: self.id, tenant_name: self.name.clone(), settings: self.storage.clone() }
    }
}

/// A tenant's overrides of the server's TLS policy (`[tls]`); `None` keeps the server's setting. Stored as
/// one JSON object holding only the fields that are set (see migration 0006).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantTlsPolicy {
    /// Refuse USER/PASS (530) until AUTH TLS. Relaxing it lets a legacy client log in in plaintext, when it
    /// names the tenant first (HOST or `user@tenant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_tls_for_login: Option<bool>,
    /// Refuse data transfers (521) unless PROT P.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_prot_p: Option<bool>,
    /// `enabled` or `enforced`; `disabled` exists only server-wide, because the control connection's session
    /// is issued before the tenant is known. Has no effect when the server disables resumption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_session_resumption: Option<crate::config::Resumption>,
    /// Refuse a passive data connection from another IP than the control connection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_same_ip_for_passive: Option<bool>,
    /// The oldest TLS version this tenant's sessions may use; older ones get 530 at USER or PASS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tls_version: Option<TlsVersion>,
}

/// A TLS protocol version, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        })
    }
}

impl std::str::FromStr for TlsVersion {
    type Err = DirectoryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            _ => Err(DirectoryError::Invalid(format!("TLS version {s:?} must be 1.2 or 1.3"))),
        }
    }
}

impl TenantTlsPolicy {
    /// Checks what an operator set.
    pub fn validate(&self) -> Result<(), DirectoryError> {
        if self.data_session_resumption == Some(crate::config::Resumption::Disabled) {
            return Err(DirectoryError::Invalid(
                "data_session_resumption can be enabled or enforced per tenant; disabled is a server-wide setting"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The stored form: a JSON object of the fields that are set, `''` when none is.
    fn to_text(self) -> Result<String, DirectoryError> {
        self.validate()?;
        if self == TenantTlsPolicy::default() {
            return Ok(String::new());
        }
        serde_json::to_string(&self).map_err(|e| DirectoryError::Internal(Box::new(e)))
    }

    fn from_text(text: &str) -> Result<Self, DirectoryError> {
        if text.is_empty() {
            return Ok(TenantTlsPolicy::default());
        }
        serde_json::from_str(text)
            .map_err(|e| DirectoryError::Internal(format!("stored TLS policy cannot be read: {e}").into()))
    }
}

/// One instance's claim on a (client address, port) pair of the shared passive pool, so that any instance
/// receiving the data connection knows where to relay it (`ftp.passive_relay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveClaim {
    /// The client's address, canonical (an IPv4-mapped address as IPv4).
    pub client: std::net::IpAddr,
    pub port: u16,
    /// The claiming instance ([`crate::sessions::LiveSessions::instance`]).
    pub instance: String,
    /// Where that instance accepts relayed connections.
    pub relay: std::net::SocketAddr,
    /// Tells this claim from the instance's earlier ones on the same pair.
    pub ticket: i64,
    pub expires_at: DateTime<Utc>,
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
    /// What the user may do, in its whole tree and per sub-path. Default: everything.
    pub access: Access,
    /// Where the user may log in from, within the tenant's networks; empty: anywhere.
    pub allowed_networks: Networks,
}

/// What a login needs: the user, its tenant and the stored hash.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub tenant: Tenant,
    pub user: User,
    pub password_hash: String,
    /// Whether a quota applies to the tenant or the user, read by the same query.
    pub quota_limited: bool,
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

impl From<InvalidSettings> for DirectoryError {
    fn from(e: InvalidSettings) -> Self {
        DirectoryError::Invalid(e.0)
    }
}

/// How the stores the directory keeps for other layers ([`UploadLedger`]) report its failures: an
/// unreachable database is worth retrying, anything else is the server's fault.
impl From<DirectoryError> for StorageError {
    fn from(e: DirectoryError) -> Self {
        let kind = match e {
            DirectoryError::Unavailable(_) => StorageErrorKind::Transient,
            _ => StorageErrorKind::Internal,
        };
        StorageError::with_source(kind, e)
    }
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
    normalize_absolute("home", home)
}

/// Most per-path rules one user may have.
pub const MAX_PATH_RULES: usize = 64;

/// Checks per-path rules and returns their stored form (a JSON object, path to permission set). An error
/// names the rule.
fn path_permissions_text(rules: &[(String, Permissions)]) -> Result<String, DirectoryError> {
    if rules.len() > MAX_PATH_RULES {
        return Err(DirectoryError::Invalid(format!("at most {MAX_PATH_RULES} path rules per user")));
    }
    let mut stored = std::collections::BTreeMap::new();
    for (path, permissions) in rules {
        let normalised = normalize_absolute("path rule", path)?;
        if normalised == "/" {
            return Err(DirectoryError::Invalid(format!(
                "path rule {path:?} covers the user's whole tree; set the user's permissions instead"
            )));
        }
        if stored.insert(normalised, permissions.to_string()).is_some() {
            return Err(DirectoryError::Invalid(format!("path rule {path:?} is given twice")));
        }
    }
    serde_json::to_string(&stored).map_err(|e| DirectoryError::Internal(Box::new(e)))
}

/// Checks per-path rules as [`Tenants::set_path_permissions`] would, without writing them.
pub fn check_path_rules(rules: &[(String, Permissions)]) -> Result<(), DirectoryError> {
    path_permissions_text(rules).map(drop)
}

/// Checks a network list as [`Tenants::set_user_networks`] would, without writing it.
pub fn check_networks(networks: &Networks) -> Result<(), DirectoryError> {
    networks_text(networks).map(drop)
}

/// Reads the stored permission columns back (see migrations 0004).
fn access_from_text(permissions: &str, path_permissions: &str) -> Result<Access, DirectoryError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        DirectoryError::Internal(format!("stored {what} cannot be read: {e}").into())
    };
    let permissions: Permissions = permissions.parse().map_err(|e| corrupt("permissions", &e))?;
    let rules: std::collections::BTreeMap<String, String> =
        serde_json::from_str(path_permissions).map_err(|e| corrupt("path permissions", &e))?;
    let rules = rules
        .into_iter()
        .map(|(path, set)| {
            let path = VirtualPath::root().resolve(&path).map_err(|e| corrupt("path permissions", &e))?;
            Ok((path, set.parse::<Permissions>().map_err(|e| corrupt("path permissions", &e))?))
        })
        .collect::<Result<Vec<_>, DirectoryError>>()?;
    Ok(Access::new(permissions, rules))
}

/// Checks a network list and returns its stored form.
fn networks_text(networks: &Networks) -> Result<String, DirectoryError> {
    if networks.as_slice().len() > Networks::MAX {
        return Err(DirectoryError::Invalid(format!("at most {} allowed networks", Networks::MAX)));
    }
    Ok(networks.to_string())
}

fn networks_from_text(text: &str) -> Result<Networks, DirectoryError> {
    text.parse().map_err(|e| DirectoryError::Internal(format!("stored allowed networks cannot be read: {e}").into()))
}

/// [`normalize_home`] for any absolute path; errors begin with `label` and the path.
fn normalize_absolute(label: &str, home: &str) -> Result<String, DirectoryError> {
    let invalid = |why: &str| Err(DirectoryError::Invalid(format!("{label} {home:?} {why}")));
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

/// Opens the directory named by a database URL (`postgres://…` or `postgresql://…` for Postgres,
/// `sqlite://…` for SQLite) and applies migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Directory>, DirectoryError> {
    open_with(url, &PoolOptions::default()).await
}

/// The directory's connection pool at one moment, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStatus {
    /// Connections open, idle or in use.
    pub size: u32,
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

impl PoolStatus {
    fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> PoolStatus {
        PoolStatus {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }
}

/// How the directory's connection pool behaves (SQLite uses `migrate` and its own small pool).
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    /// How long a query waits for a connection before the directory counts as unavailable.
    pub acquire_timeout: std::time::Duration,
    pub idle_timeout: std::time::Duration,
    /// Apply pending migrations on open.
    pub migrate: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_connections: 16,
            acquire_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(600),
            migrate: true,
        }
    }
}

/// Opens the directory at `url` with `options`.
pub async fn open_with(url: &str, options: &PoolOptions) -> Result<Arc<dyn Directory>, DirectoryError> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PostgresDirectory::open_with(url, options).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteDirectory::open_with(url, options.migrate).await?))
    } else {
        Err(DirectoryError::Invalid(format!(
            "unsupported database URL scheme in {:?}",
            url.split(':').next().unwrap_or("")
        )))
    }
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

/// The one mapping from sqlx errors, for both backends: the database being out of reach is
/// [`DirectoryError::Unavailable`] (the FTP layer answers 421, not a false 530); everything else is internal.
fn db_error(e: sqlx::Error) -> DirectoryError {
    let unreachable = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => true,
        // A connection cut during its handshake (a proxy or load balancer in front of a stopped server)
        // reads as a malformed reply; like the others, it is the database being out of reach.
        sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        // Postgres refusing work while it starts, stops or is full: SQLSTATE class 08 (connection
        // exception), 57P01-57P03 (shutting down, cannot connect now), 53300 (too many connections).
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|code| code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")),
        _ => false,
    };
    if unreachable {
        DirectoryError::Unavailable(Box::new(e))
    } else {
        DirectoryError::Internal(Box::new(e))
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

/// Maps a migration failure: the database out of reach is [`DirectoryError::Unavailable`], as everywhere.
fn migrate_error(e: sqlx::migrate::MigrateError) -> DirectoryError {
    match e {
        sqlx::migrate::MigrateError::Execute(e) => db_error(e),
        other => DirectoryError::Internal(Box::new(other)),
    }
}

fn found_if(found: bool) -> Result<(), DirectoryError> {
    if found {
        Ok(())
    } else {
        Err(DirectoryError::NotFound)
    }
}
