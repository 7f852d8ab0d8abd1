//! The stores the directory offers, each to the layer that needs it: [`Tenants`] (tenants, hostnames and
//! users, for the CLI and the admin API), [`LoginStore`] (for auth: tenant lookups, the login lookup and
//! failure counters), [`ClaimStore`] (the shared passive pool's claims) and [`Quotas`] (usage and reservations, which
//! [`QuotaAccounts`](super::QuotaAccounts) offers to vfs as its `QuotaStore`). [`Directory`] is all of them
//! (with the admin API's [`AdminStore`] and the S3 backend's [`UploadLedger`]): what `server.rs` wires.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;

/// Tenants, their hostnames, and users with their password hashes.
#[async_trait]
pub trait Tenants: Send + Sync {
    async fn create_tenant(&self, name: &str) -> Result<Tenant, DirectoryError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, DirectoryError>;
    async fn add_hostname(&self, tenant_id: i64, hostname: &str) -> Result<(), DirectoryError>;
    async fn hostnames(&self, tenant_id: i64) -> Result<Vec<String>, DirectoryError>;
    async fn create_user(&self, tenant_id: i64, user: NewUser) -> Result<User, DirectoryError>;
    async fn set_password(&self, tenant_id: i64, username: &str, password_hash: &str) -> Result<(), DirectoryError>;
    async fn list_users(&self, tenant_id: Option<i64>) -> Result<Vec<User>, DirectoryError>;
    /// Deletes a user and everything kept about it (failure counters included).
    async fn delete_user(&self, tenant_id: i64, username: &str) -> Result<(), DirectoryError>;
    /// Deletes a tenant with its users, hostnames, reservations and failure counters. Its files stay in
    /// storage: removing them is the operator's call.
    async fn delete_tenant(&self, tenant_id: i64) -> Result<(), DirectoryError>;
    /// Enables or disables a tenant: a disabled tenant's users get 530 like a wrong password.
    async fn set_tenant_enabled(&self, tenant_id: i64, enabled: bool) -> Result<(), DirectoryError>;
    /// Enables or disables one user.
    async fn set_user_enabled(&self, tenant_id: i64, username: &str, enabled: bool) -> Result<(), DirectoryError>;
    /// Sets what a user may do in its whole tree (the path rules stay).
    async fn set_permissions(
        &self,
        tenant_id: i64,
        username: &str,
        permissions: Permissions,
    ) -> Result<(), DirectoryError>;
    /// Replaces a user's per-path rules: `(path as the user sees it, what it may do there)`. Each path must
    /// be absolute, not the root, without `.` or `..`; at most [`MAX_PATH_RULES`].
    async fn set_path_permissions(
        &self,
        tenant_id: i64,
        username: &str,
        rules: &[(String, Permissions)],
    ) -> Result<(), DirectoryError>;
    /// Replaces the networks a user may log in from (empty: anywhere the tenant allows).
    async fn set_user_networks(
        &self,
        tenant_id: i64,
        username: &str,
        networks: &Networks,
    ) -> Result<(), DirectoryError>;
    async fn tenant_by_id(&self, id: i64) -> Result<Option<Tenant>, DirectoryError>;
    async fn set_tenant_storage(&self, tenant_id: i64, storage: &TenantStorage) -> Result<(), DirectoryError>;
    /// Replaces the networks a tenant's users may log in from (empty: anywhere).
    async fn set_tenant_networks(&self, tenant_id: i64, networks: &Networks) -> Result<(), DirectoryError>;
    /// Replaces the tenant's TLS policy overrides (checked with [`TenantTlsPolicy::validate`]).
    async fn set_tenant_tls(&self, tenant_id: i64, policy: &TenantTlsPolicy) -> Result<(), DirectoryError>;
}

/// What the login path reads and writes: the tenant a login names, one lookup per login, and failure
/// counters and bans.
#[async_trait]
pub trait LoginStore: Send + Sync {
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, DirectoryError>;
    /// The tenant a TLS SNI name or `HOST` argument belongs to (case-insensitive).
    async fn tenant_by_hostname(&self, hostname: &str) -> Result<Option<Tenant>, DirectoryError>;
    /// One indexed lookup for the login path.
    async fn login_record(&self, tenant_id: i64, username: &str) -> Result<Option<LoginRecord>, DirectoryError>;
    /// Records a successful login (and a rehashed password when parameters changed).
    async fn record_login(&self, user_id: i64, new_hash: Option<&str>) -> Result<(), DirectoryError>;
    /// Counts a failed login against `scope` at `now` and returns the scope's state after it, banning the
    /// scope when `policy` says so. One atomic upsert: concurrent failures, on any instance, are never lost.
    async fn record_login_failure(
        &self,
        scope: &str,
        policy: &FailurePolicy,
        now: DateTime<Utc>,
    ) -> Result<FailureCount, DirectoryError>;
    /// The end of the longest ban running at `now` on any of `scopes`.
    async fn banned_until(
        &self,
        scopes: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, DirectoryError>;
    /// Forgets the failures of `scopes` (after a successful login). A ban running at `now`, which another
    /// instance may have set meanwhile, stays.
    async fn clear_login_failures(&self, scopes: &[String], now: DateTime<Utc>) -> Result<(), DirectoryError>;
    /// The bans running at `now`, those ending last first.
    async fn active_bans(&self, now: DateTime<Utc>) -> Result<Vec<Ban>, DirectoryError>;
    /// Lifts the ban running on `scope`, forgetting its failures and earlier bans; `false` when there was none.
    async fn lift_ban(&self, scope: &str, now: DateTime<Utc>) -> Result<bool, DirectoryError>;
    /// Forgets scopes whose last failure came before `before` and that are not banned at `now`; returns how
    /// many.
    async fn forget_login_failures(&self, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<u64, DirectoryError>;
}

/// Claims on (client, passive port) pairs, shared by instances behind one load balancer.
#[async_trait]
pub trait ClaimStore: Send + Sync {
    /// Takes the claim's pair unless another instance holds it unexpired at `now`; `false` when it does.
    /// A claim of the same instance is replaced (the instance knows the pair is free).
    async fn claim_passive(&self, claim: &PassiveClaim, now: DateTime<Utc>) -> Result<bool, DirectoryError>;
    /// Gives up `instance`'s claim `ticket` on the pair, if it still holds it.
    async fn release_passive(
        &self,
        client: std::net::IpAddr,
        port: u16,
        instance: &str,
        ticket: i64,
    ) -> Result<(), DirectoryError>;
    /// The unexpired claim on a pair, if any.
    async fn passive_claim(
        &self,
        client: std::net::IpAddr,
        port: u16,
        now: DateTime<Utc>,
    ) -> Result<Option<PassiveClaim>, DirectoryError>;
    /// Deletes claims that expired before `before`; returns how many.
    async fn forget_passive_claims(&self, before: DateTime<Utc>) -> Result<u64, DirectoryError>;
}

/// Quotas, usage and upload reservations of tenants and users (see [`quota`](super::quota)).
#[async_trait]
pub trait Quotas: Send + Sync {
    /// Sets a tenant's quota (`None` fields: unlimited).
    async fn set_tenant_quota(&self, tenant_id: i64, quota: &Quota) -> Result<(), DirectoryError>;
    /// Sets a user's own quota, which holds besides the tenant's.
    async fn set_user_quota(&self, tenant_id: i64, username: &str, quota: &Quota) -> Result<(), DirectoryError>;
    /// A tenant's quota, usage and reservations live at `now`.
    async fn tenant_account(&self, tenant_id: i64, now: DateTime<Utc>) -> Result<Account, DirectoryError>;
    /// A user's quota, usage and reservations live at `now`.
    async fn user_account(&self, user_id: i64, now: DateTime<Utc>) -> Result<Account, DirectoryError>;
    /// Reserves room for an upload against the tenant's and the user's quotas, in one transaction that
    /// locks both usage rows (see [`quota`]); `None` when even `min_bytes` (with `files`) does not fit.
    async fn reserve(&self, request: &ReservationRequest, now: DateTime<Utc>) -> Result<Option<Grant>, DirectoryError>;
    /// Adds `change` (negative after a delete) to the usage of the tenant and the user and drops the
    /// reservation `reservation`, in one transaction. Usage never goes below zero.
    async fn settle(
        &self,
        tenant_id: i64,
        user_id: i64,
        reservation: Option<i64>,
        change: Usage,
    ) -> Result<(), DirectoryError>;
    /// Drops a reservation (an upload that failed or was aborted).
    async fn release(&self, reservation: i64) -> Result<(), DirectoryError>;
    /// Overwrites the usage of a tenant (`user_id` `None`) or of one of its users (`wharf usage recompute`).
    async fn set_usage(&self, tenant_id: i64, user_id: Option<i64>, usage: Usage) -> Result<(), DirectoryError>;
}

/// Every store of the directory, as one object.
pub trait Directory: Tenants + LoginStore + ClaimStore + Quotas + AdminStore + UploadLedger + Send + Sync {
    /// The connection pool's state now (no query: the pool's own counters).
    fn pool_status(&self) -> PoolStatus;
}
