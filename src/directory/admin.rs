//! What the admin API keeps beside tenants and users: API tokens, the audit log, tenants' certificates, the
//! live FTP sessions of every instance, and paged listings.
//!
//! [`AdminStore`] is a supertrait of [`super::Directory`], so every directory backend keeps these records
//! in the same database as the tenants they refer to; deleting a tenant removes its tokens, certificates
//! and sessions with it (the audit log keeps its events: it is a record of what happened).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{DirectoryError, Tenant, User};

/// Who an API token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    /// Everything, every tenant.
    Operator,
    /// One tenant (its id): its users, hostnames, certificates, sessions, usage and audit events.
    TenantAdmin(i64),
}

impl TokenScope {
    /// The tenant the scope is limited to, if any.
    pub fn tenant(self) -> Option<i64> {
        match self {
            TokenScope::Operator => None,
            TokenScope::TenantAdmin(id) => Some(id),
        }
    }
}

/// An API token as stored: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scope: TokenScope,
    /// Lower-case hex SHA-256 of the secret the caller was shown once.
    pub secret_sha256: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// One change made through the admin API (or the CLI): who, what, when, from where.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Increasing; the cursor of the audit listing.
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The token's name and id (`ops#3`), or `cli` for the command line.
    pub actor: String,
    /// The tenant the change concerns, so tenant admins read their own tenant's events only.
    pub tenant_id: Option<i64>,
    /// A dotted verb: `tenant.create`, `user.password`, `certificate.delete`, …
    pub action: String,
    /// What was changed: `tenant/acme`, `tenant/acme/user/alice`, …
    pub target: String,
    /// The client address of the API call, when there was one.
    pub client: Option<String>,
    /// Further facts as a JSON object (never a secret).
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub actor: String,
    pub tenant_id: Option<i64>,
    pub action: String,
    pub target: String,
    pub client: Option<String>,
    pub detail: serde_json::Value,
}

/// A tenant's certificate as listed: what it says, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub id: i64,
    pub tenant_id: i64,
    /// The DNS names (subjectAltName) the certificate covers, lower case.
    pub names: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// Lower-case hex SHA-256 of the leaf certificate (DER).
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
}

/// What a TLS listener needs to serve a certificate: the chain and the key, sealed.
#[derive(Debug, Clone)]
pub struct CertificateMaterial {
    pub info: CertificateInfo,
    pub chain_pem: String,
    /// The private key (PKCS#8 DER) sealed with the server's secret key; opened only in memory.
    pub sealed_key: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub tenant_id: i64,
    pub names: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub fingerprint: String,
    pub chain_pem: String,
    pub sealed_key: Vec<u8>,
}

/// A logged-in FTP session on some instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// Random and unique across instances (the session's id in logs and in the API).
    pub id: String,
    /// The instance serving it (see [`AdminStore::instance_alive`]).
    pub instance: String,
    pub tenant_id: i64,
    pub user_id: i64,
    pub username: String,
    /// The client's address as `ip:port`.
    pub client: String,
    pub started_at: DateTime<Utc>,
}

/// Which slice of a listing to return: the rows after `after` (an id), at most `limit` of them, in id
/// order. The API turns the last id into an opaque cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub after: Option<i64>,
    pub limit: i64,
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Tenants in id order.
    async fn tenants_page(&self, page: Page) -> Result<Vec<Tenant>, DirectoryError>;
    /// Users in id order, of one tenant or of all.
    async fn users_page(&self, tenant_id: Option<i64>, page: Page) -> Result<Vec<User>, DirectoryError>;
    async fn user_by_name(&self, tenant_id: i64, username: &str) -> Result<Option<User>, DirectoryError>;
    /// Changes a user's home (normalised as at creation).
    async fn set_user_home(&self, tenant_id: i64, username: &str, home: &str) -> Result<(), DirectoryError>;
    /// Removes one of a tenant's hostnames; [`DirectoryError::NotFound`] when the tenant has no such name.
    async fn remove_hostname(&self, tenant_id: i64, hostname: &str) -> Result<(), DirectoryError>;

    /// Stores a token; a name already used in the same scope is a [`DirectoryError::Conflict`].
    async fn create_token(&self, token: &NewToken) -> Result<ApiToken, DirectoryError>;
    /// The unexpired token with this secret hash, its `last_used_at` set to `now` (at most once a minute,
    /// so that a busy token does not write on every call).
    async fn use_token(&self, secret_sha256: &str, now: DateTime<Utc>) -> Result<Option<ApiToken>, DirectoryError>;
    /// Tokens in id order; `tenant_id` `Some` lists that tenant's admin tokens only.
    async fn tokens_page(&self, tenant_id: Option<i64>, page: Page) -> Result<Vec<ApiToken>, DirectoryError>;
    async fn token_by_id(&self, id: i64) -> Result<Option<ApiToken>, DirectoryError>;
    async fn delete_token(&self, id: i64) -> Result<(), DirectoryError>;

    /// Appends an event. An event about a tenant that no longer exists is kept with `tenant_id` `None`, as
    /// the tenant's earlier events are when it is deleted: they stay, for operators only.
    async fn record_audit(&self, event: &NewAuditEvent, now: DateTime<Utc>) -> Result<AuditEvent, DirectoryError>;
    /// Events in id order; `tenant_id` `Some` lists that tenant's events only.
    async fn audit_page(&self, tenant_id: Option<i64>, page: Page) -> Result<Vec<AuditEvent>, DirectoryError>;

    async fn save_certificate(
        &self,
        certificate: &NewCertificate,
        now: DateTime<Utc>,
    ) -> Result<CertificateInfo, DirectoryError>;
    /// Certificates in id order, of one tenant or of all.
    async fn certificates_page(
        &self,
        tenant_id: Option<i64>,
        page: Page,
    ) -> Result<Vec<CertificateInfo>, DirectoryError>;
    async fn certificate(&self, id: i64) -> Result<Option<CertificateInfo>, DirectoryError>;
    async fn delete_certificate(&self, id: i64) -> Result<(), DirectoryError>;
    /// Every certificate with its chain and sealed key, for the TLS listeners.
    async fn certificate_materials(&self) -> Result<Vec<CertificateMaterial>, DirectoryError>;
    /// A value that changes whenever a certificate is added or removed (ids are never reused), so that
    /// instances poll it cheaply and reload only on change: `(count, highest id)`. Equal values mean the
    /// same set of certificates (one added and removed again between two polls leaves it as it was).
    async fn certificates_version(&self) -> Result<(i64, i64), DirectoryError>;

    /// Marks `instance` alive at `now` (never earlier than it was marked already); instances call it every
    /// few seconds, and once before registering sessions.
    async fn instance_alive(&self, instance: &str, now: DateTime<Utc>) -> Result<(), DirectoryError>;
    /// Records a session of an instance that reported alive; [`DirectoryError::NotFound`] when the instance
    /// (or the tenant or user) is not known, [`DirectoryError::Conflict`] when the id is taken.
    async fn register_session(&self, session: &LiveSession) -> Result<(), DirectoryError>;
    /// Forgets a session; one that is gone already (with its user, tenant or instance) is no error.
    async fn end_session(&self, id: &str) -> Result<(), DirectoryError>;
    /// Sessions of instances seen alive since `alive_since`, oldest first; `tenant_id` `Some` limits them to
    /// one tenant.
    async fn live_sessions(
        &self,
        tenant_id: Option<i64>,
        alive_since: DateTime<Utc>,
    ) -> Result<Vec<LiveSession>, DirectoryError>;
    async fn live_session(&self, id: &str) -> Result<Option<LiveSession>, DirectoryError>;
    /// Asks the session's instance to close it; `false` if there is no such session.
    async fn request_disconnect(&self, id: &str, now: DateTime<Utc>) -> Result<bool, DirectoryError>;
    /// The ids of `instance`'s sessions whose disconnect was requested and not yet carried out.
    async fn disconnect_requests(&self, instance: &str) -> Result<Vec<String>, DirectoryError>;
    /// Forgets sessions and instances not seen alive since `before` (instances that died without cleaning up);
    /// returns how many sessions were forgotten.
    async fn forget_dead_instances(&self, before: DateTime<Utc>) -> Result<u64, DirectoryError>;
}

// What both backends share: checks of the input and the stored forms of values. Private to `directory`.

/// The most rows one page may hold; a larger `limit` is cut to it, a smaller than 1 raised to 1.
pub const MAX_PAGE: i64 = 1000;

/// How often at most [`AdminStore::use_token`] writes a token's `last_used_at`.
pub(super) const TOKEN_USE_INTERVAL: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

impl Page {
    /// The first page of `limit` rows.
    pub fn first(limit: i64) -> Page {
        Page { after: None, limit }
    }

    /// `limit` within `1..=`[`MAX_PAGE`].
    pub fn clamped_limit(self) -> i64 {
        self.limit.clamp(1, MAX_PAGE)
    }

    /// The id rows must be above: `after`, or below every id.
    pub(super) fn after_id(self) -> i64 {
        self.after.unwrap_or(i64::MIN)
    }
}

/// Checks a new token and returns the stored form of its scope: `(scope, tenant_id)`.
pub(super) fn check_new_token(token: &NewToken) -> Result<(&'static str, Option<i64>), DirectoryError> {
    let name_ok = (1..=64).contains(&token.name.chars().count()) && !token.name.chars().any(char::is_control);
    if !name_ok {
        return Err(DirectoryError::Invalid("token name must be 1-64 characters without control characters".into()));
    }
    if !is_sha256_hex(&token.secret_sha256) {
        return Err(DirectoryError::Invalid("token secret hash must be 64 lower-case hex digits".into()));
    }
    Ok(scope_text(token.scope))
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn scope_text(scope: TokenScope) -> (&'static str, Option<i64>) {
    match scope {
        TokenScope::Operator => ("operator", None),
        TokenScope::TenantAdmin(id) => ("tenant_admin", Some(id)),
    }
}

/// Reads a stored scope back (the schema's CHECK keeps the two columns consistent).
pub(super) fn scope_from(scope: &str, tenant_id: Option<i64>) -> Result<TokenScope, DirectoryError> {
    match (scope, tenant_id) {
        ("operator", None) => Ok(TokenScope::Operator),
        ("tenant_admin", Some(id)) => Ok(TokenScope::TenantAdmin(id)),
        _ => Err(DirectoryError::Internal(format!("stored token scope {scope:?} cannot be read").into())),
    }
}

/// The stored form of an event's detail: a JSON object (`null` stands for an empty one).
pub(super) fn detail_text(detail: &serde_json::Value) -> Result<String, DirectoryError> {
    match detail {
        serde_json::Value::Null => Ok("{}".to_owned()),
        serde_json::Value::Object(_) => Ok(detail.to_string()),
        _ => Err(DirectoryError::Invalid("audit detail must be a JSON object".into())),
    }
}

pub(super) fn detail_from_text(text: &str) -> Result<serde_json::Value, DirectoryError> {
    serde_json::from_str(text)
        .map_err(|e| DirectoryError::Internal(format!("stored audit detail cannot be read: {e}").into()))
}

/// Checks a new certificate and returns its names as stored: lower case, without a trailing root dot.
pub(super) fn certificate_names(certificate: &NewCertificate) -> Result<Vec<String>, DirectoryError> {
    if certificate.names.is_empty() {
        return Err(DirectoryError::Invalid("a certificate must cover at least one DNS name".into()));
    }
    if !is_sha256_hex(&certificate.fingerprint) {
        return Err(DirectoryError::Invalid("certificate fingerprint must be 64 lower-case hex digits".into()));
    }
    Ok(certificate.names.iter().map(|name| super::hostname_key(name)).collect())
}
