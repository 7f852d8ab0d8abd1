//! Login: finds the tenant (HOST or TLS SNI name, else `user@tenant`), verifies the password off the
//! runtime, checks the client's address against the tenant's and the user's allowed networks and answers
//! every kind of failure the same way.
//!
//! Brute-force defence: every failure is counted in the directory against the client's address and, when
//! the user exists, against the user (see [`crate::directory::login_failures`]), so that all instances on
//! one database share the counts. Past a threshold the address or user is banned for a while: its logins get
//! the same 530 as a wrong password, without a password check. Each failure's 530 comes after a delay that
//! doubles with the address's recent failures.
//!
//! [`password`] hashes passwords (for the CLI and the admin API too) and verifies them with bounded memory
//! and concurrency; the directory only stores the hashes.

pub mod password;

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};

use crate::config::{BanRule, LoginDefenceConfig};
use crate::directory::login_failures::{ip_scope, user_scope};
use crate::directory::{DirectoryError, FailureCount, FailurePolicy, LoginStore, Tenant, User};
use password::Verifier;

/// How often, at most, one instance deletes forgotten failure counters (on the next failed login).
const FORGET_INTERVAL_SECS: i64 = 60;

/// A logged-in user and its tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: Tenant,
    pub user: User,
    /// Whether a quota applied to the tenant or the user when it logged in.
    pub quota_limited: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Answered 530, one answer for all: unknown tenant or user, wrong password, disabled account, client
    /// outside the allowed networks.
    #[error("login incorrect")]
    Rejected,
    /// 421: the directory is unreachable; the client should retry, its password may be right.
    #[error("directory unavailable")]
    Unavailable(#[source] DirectoryError),
}

/// What a client offered: the argument of USER, the tenant its HOST command selected and the name it
/// sent in TLS SNI, the password of PASS, and the address it connects from.
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    /// `user@tenant`, or `user` when HOST or SNI names the tenant.
    pub login: &'a str,
    pub host_tenant: Option<&'a Tenant>,
    pub sni: Option<&'a str>,
    pub password: &'a str,
    pub client: IpAddr,
}

pub struct Authenticator {
    directory: Arc<dyn LoginStore>,
    verifier: Verifier,
    /// The delay before the 530 of a client's first recent failure, in milliseconds (a reload changes it).
    failure_delay_ms: AtomicU64,
    /// When this instance last deleted forgotten failure counters (Unix seconds).
    last_forget: AtomicI64,
}

impl Authenticator {
    pub fn new(directory: Arc<dyn LoginStore>, verifier: Verifier, failure_delay: Duration) -> Self {
        let failure_delay_ms = AtomicU64::new(failure_delay.as_millis().try_into().unwrap_or(u64::MAX));
        Authenticator { directory, verifier, failure_delay_ms, last_forget: AtomicI64::new(0) }
    }

    /// Sets the delay before the 530 of a client's first recent failure (`ftp.login_failure_delay_ms`).
    pub fn set_failure_delay(&self, delay: Duration) {
        self.failure_delay_ms.store(delay.as_millis().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Resolves the tenant named by `HOST` or SNI, if any.
    pub async fn tenant_for_host(&self, host: &str) -> Result<Option<Tenant>, DirectoryError> {
        self.directory.tenant_by_hostname(&host.to_ascii_lowercase()).await
    }

    /// The tenant a login names and the username inside it, in the order of DESIGN.md §7: the tenant of
    /// the `HOST` command (`host`), else the one the TLS SNI name maps to, else `user@tenant`. `None` when
    /// none is named, the name is unknown, or `user@tenant` contradicts the host's tenant. USER (for the
    /// tenant's TLS policy) and PASS both resolve through here, so they never disagree.
    pub async fn resolve<'l>(
        &self,
        login: &'l str,
        host: Option<&Tenant>,
        sni: Option<&str>,
    ) -> Result<Option<(Tenant, &'l str)>, DirectoryError> {
        let host = match (host, sni) {
            (Some(tenant), _) => Some(tenant.clone()),
            (None, Some(sni)) => self.tenant_for_host(sni).await?,
            (None, None) => None,
        };
        Ok(match (login.rsplit_once('@'), host) {
            (Some((user, name)), Some(host)) => name.eq_ignore_ascii_case(&host.name).then_some((host, user)),
            (Some((user, name)), None) => {
                self.directory.tenant_by_name(&name.to_ascii_lowercase()).await?.map(|tenant| (tenant, user))
            }
            (None, Some(host)) => Some((host, login)),
            (None, None) => None,
        })
    }

    /// Checks a login under the brute-force `defence`. Any directory error on the way is
    /// [`LoginError::Unavailable`]: a right password must never get a 530 because the database was away.
    pub async fn login(
        &self,
        attempt: LoginAttempt<'_>,
        defence: &LoginDefenceConfig,
    ) -> Result<Principal, LoginError> {
        let named = self.resolve(attempt.login, attempt.host_tenant, attempt.sni).await;
        let record = match named.map_err(LoginError::Unavailable)? {
            Some((tenant, username)) => {
                self.directory.login_record(tenant.id, username).await.map_err(LoginError::Unavailable)?
            }
            None => None,
        };
        // A user scope only for users that exist: arbitrary names must not grow the table.
        let user = record.as_ref().map(|r| user_scope(r.tenant.id, &r.user.username));
        let ip = ip_scope(attempt.client, defence.ipv6_prefix_len);
        let scopes: Vec<String> = std::iter::once(ip.clone()).chain(user.clone()).collect();
        if defence.bans {
            let banned = self.directory.banned_until(&scopes, Utc::now()).await.map_err(LoginError::Unavailable)?;
            if let Some(until) = banned {
                tracing::info!(target: "wharf::login", client = %attempt.client, %until, "login refused: banned");
                // The answer of any failure; the longest delay, since the client already failed too often.
                tokio::time::sleep(Duration::from_millis(defence.max_delay_ms)).await;
                return Err(LoginError::Rejected);
            }
        }
        let verdict = self.verifier.verify(record.as_ref().map(|r| r.password_hash.as_str()), attempt.password).await;
        // Outside the tenant's or the user's networks is one more way to fail, answered and counted like a
        // wrong password; the password was checked anyway, so the time taken tells nothing either.
        let reachable = record.as_ref().is_some_and(|r| {
            r.tenant.allowed_networks.allows(attempt.client) && r.user.allowed_networks.allows(attempt.client)
        });
        if let Some(r) = record.as_ref().filter(|_| verdict.ok && !reachable) {
            tracing::info!(
                target: "wharf::login",
                client = %attempt.client,
                tenant = %r.tenant.name,
                user = %r.user.username,
                "login refused: client outside the allowed networks"
            );
        }
        match record {
            Some(r) if verdict.ok && reachable && r.tenant.enabled && r.user.enabled => {
                // The user's failures are forgiven; the address's are not: an attacker holding one valid
                // account could otherwise reset its address's count between guesses at other accounts.
                // Failing to forget them costs the user nothing now; they expire anyway.
                let own: Vec<String> = user.into_iter().collect();
                if let Err(e) = self.directory.clear_login_failures(&own, Utc::now()).await {
                    tracing::warn!(error = %e, "could not clear the failed-login counters");
                }
                if let Err(e) = self.directory.record_login(r.user.id, verdict.rehash.as_deref()).await {
                    tracing::warn!(error = %e, "could not record the login");
                }
                Ok(Principal { tenant: r.tenant, user: r.user, quota_limited: r.quota_limited })
            }
            _ => {
                let user = user.filter(|_| defence.bans);
                let ip_count =
                    self.count_failure(&ip, user.as_deref(), defence).await.map_err(LoginError::Unavailable)?;
                let max_delay = Duration::from_millis(defence.max_delay_ms);
                let base = Duration::from_millis(self.failure_delay_ms.load(Ordering::Relaxed));
                tokio::time::sleep(growing_delay(base, max_delay, ip_count.failures)).await;
                Err(LoginError::Rejected)
            }
        }
    }

    /// Counts a failure against the address and the user (both at once, so a known user costs no more time
    /// than an unknown one); returns the address's count, which sets the delay. The user's count does not:
    /// a longer delay for a name that exists would tell that it does.
    async fn count_failure(
        &self,
        ip: &str,
        user: Option<&str>,
        defence: &LoginDefenceConfig,
    ) -> Result<FailureCount, DirectoryError> {
        let now = Utc::now();
        let ip_policy = policy(&defence.ip, defence);
        let user_policy = policy(&defence.user, defence);
        let count_ip = self.directory.record_login_failure(ip, &ip_policy, now);
        let count_user = async {
            match user {
                Some(scope) => self.directory.record_login_failure(scope, &user_policy, now).await.map(Some),
                None => Ok(None),
            }
        };
        let (ip_count, user_count) = tokio::try_join!(count_ip, count_user)?;
        for (scope, count) in [(ip, Some(ip_count)), (user.unwrap_or_default(), user_count)] {
            if let Some(until) = count.and_then(|c| c.banned_until) {
                tracing::warn!(target: "wharf::login", %scope, %until, "banned after repeated failed logins");
            }
        }
        self.forget_old_failures(defence, now).await;
        Ok(ip_count)
    }

    /// Deletes counters nobody added to for `forget_after_secs`, at most once a minute per instance.
    async fn forget_old_failures(&self, defence: &LoginDefenceConfig, now: chrono::DateTime<Utc>) {
        let last = self.last_forget.load(Ordering::Relaxed);
        let due = now.timestamp() - last >= FORGET_INTERVAL_SECS;
        if !due
            || self.last_forget.compare_exchange(last, now.timestamp(), Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let before = now - secs(defence.forget_after_secs);
        match self.directory.forget_login_failures(before, now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(forgotten = n, "forgot old failed-login counters"),
            Err(e) => tracing::warn!(error = %e, "could not forget old failed-login counters"),
        }
    }
}
/// The directory's view of one ban rule.
fn policy(rule: &BanRule, defence: &LoginDefenceConfig) -> FailurePolicy {
    FailurePolicy {
        window: secs(rule.window_secs),
        ban_after: defence.bans.then_some(rule.threshold),
        ban: secs(rule.ban_secs),
        max_ban: secs(defence.max_ban_secs),
    }
}

/// Config validation bounds every duration to ten years, well within `TimeDelta`.
fn secs(secs: u64) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}

/// `base` for a client's first recent failure, doubled for each further one, at most `max`.
fn growing_delay(base: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    base.saturating_mul(1 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_per_failure_up_to_the_cap() {
        let delay = |failures| growing_delay(Duration::from_secs(1), Duration::from_secs(8), failures);
        let secs: Vec<u64> = [0, 1, 2, 3, 4, 5, 100, u32::MAX].into_iter().map(|f| delay(f).as_secs()).collect();
        assert_eq!(secs, [1, 1, 2, 4, 8, 8, 8, 8]);
    }

    /// A directory error around the counters is a 421 (`Unavailable`), never a false 530.
    #[tokio::test]
    async fn a_broken_counter_table_is_unavailable_not_a_rejection() {
        use sqlx::Connection;

        let tmp = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", tmp.path().join("wharf.db").display());
        let directory = crate::directory::open(&url).await.unwrap();
        let params = crate::auth::password::Params { m_kib: 64, t: 1, p: 1 };
        let acme = directory.create_tenant("acme").await.unwrap();
        let hash = crate::auth::password::hash("right", &params).unwrap();
        let alice = crate::directory::NewUser { username: "alice".into(), password_hash: hash, home: "/".into() };
        directory.create_user(acme.id, alice).await.unwrap();
        let auth = Authenticator::new(directory, Verifier::new(params).unwrap(), Duration::ZERO);
        let mut defence = LoginDefenceConfig { max_delay_ms: 0, ..LoginDefenceConfig::default() };
        defence.ip.threshold = 2;
        let login = |password| LoginAttempt {
            login: "alice@acme",
            host_tenant: None,
            sni: None,
            password,
            client: "192.0.2.1".parse().unwrap(),
        };

        for _ in 0..2 {
            assert!(matches!(auth.login(login("wrong"), &defence).await, Err(LoginError::Rejected)));
        }
        let banned = auth.login(login("right"), &defence).await;
        assert!(matches!(banned, Err(LoginError::Rejected)), "banned: {banned:?}");

        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("DROP TABLE login_failures").execute(&mut conn).await.unwrap();
        for password in ["right", "wrong"] {
            let checked = auth.login(login(password), &defence).await;
            assert!(matches!(checked, Err(LoginError::Unavailable(_))), "ban check: {checked:?}");
        }
        defence.bans = false;
        let counted = auth.login(login("wrong"), &defence).await;
        assert!(matches!(counted, Err(LoginError::Unavailable(_))), "counting: {counted:?}");
        // Only forgetting the counters fails: the login itself stands.
        assert!(auth.login(login("right"), &defence).await.is_ok());
    }

    #[tokio::test]
    async fn host_then_sni_then_the_login_name_the_tenant() {
        let directory: Arc<dyn crate::directory::Directory> =
            Arc::new(crate::directory::sqlite::SqliteDirectory::open_in_memory().await.unwrap());
        let acme = directory.create_tenant("acme").await.unwrap();
        let beta = directory.create_tenant("beta").await.unwrap();
        directory.add_hostname(beta.id, "ftp.beta.example").await.unwrap();
        let params = crate::auth::password::Params { m_kib: 8, t: 1, p: 1 };
        let auth = Authenticator::new(directory, Verifier::new(params).unwrap(), Duration::ZERO);
        let named = |login: &'static str, host: Option<&Tenant>, sni: Option<&'static str>| {
            let auth = &auth;
            let host = host.cloned();
            async move { auth.resolve(login, host.as_ref(), sni).await.unwrap().map(|(t, user)| (t.name, user.to_owned())) }
        };
        let pair = |tenant: &str, user: &str| Some((tenant.to_owned(), user.to_owned()));
        assert_eq!(named("u@acme", None, None).await, pair("acme", "u"));
        assert_eq!(named("u@ACME", None, None).await, pair("acme", "u"));
        assert_eq!(named("u", None, None).await, None);
        assert_eq!(named("u@nobody", None, None).await, None);
        // SNI names the tenant; the login may repeat it but not contradict it.
        assert_eq!(named("u", None, Some("FTP.beta.example")).await, pair("beta", "u"));
        assert_eq!(named("u@beta", None, Some("ftp.beta.example")).await, pair("beta", "u"));
        assert_eq!(named("u@acme", None, Some("ftp.beta.example")).await, None);
        // An SNI name that selects no tenant (the operator's own hostname) leaves the login to name it.
        assert_eq!(named("u@acme", None, Some("ftp.operator.example")).await, pair("acme", "u"));
        // HOST wins over SNI.
        assert_eq!(named("u", Some(&acme), Some("ftp.beta.example")).await, pair("acme", "u"));
        // A login name with an `@` of its own keeps it: the last `@` separates the tenant.
        assert_eq!(named("a@b@acme", None, None).await, pair("acme", "a@b"));
    }

    #[test]
    fn policies_follow_the_config() {
        let mut defence = LoginDefenceConfig::default();
        let ip = policy(&defence.ip, &defence);
        assert_eq!(ip.ban_after, Some(20));
        assert_eq!(ip.window, TimeDelta::minutes(15));
        assert_eq!(ip.max_ban, TimeDelta::days(1));
        defence.bans = false;
        assert_eq!(policy(&defence.user, &defence).ban_after, None, "counted, never banned");
    }
}
