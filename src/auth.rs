//! Login: finds the tenant (HOST or TLS SNI name, else `user@tenant`), verifies the password off the
//! runtime and answers every kind of failure the same way, after the same time.

use std::sync::Arc;
use std::time::Duration;

use crate::directory::password::{HashError, Params, Verifier};
use crate::directory::{Directory, DirectoryError, LoginRecord, Tenant, User};

/// A logged-in user and its tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: Tenant,
    pub user: User,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// 530. Unknown tenant, unknown user, wrong password, disabled account: one answer for all.
    #[error("login incorrect")]
    Rejected,
    /// 421: the directory is unreachable; the client should retry, its password may be right.
    #[error("directory unavailable")]
    Unavailable(#[source] DirectoryError),
}

pub struct Authenticator {
    directory: Arc<dyn Directory>,
    verifier: Verifier,
    failure_delay: Duration,
}

impl Authenticator {
    pub fn new(directory: Arc<dyn Directory>, params: Params, failure_delay: Duration) -> Result<Self, HashError> {
        Ok(Authenticator { directory, verifier: Verifier::new(params)?, failure_delay })
    }

    /// Resolves the tenant named by `HOST` or SNI, if any.
    pub async fn tenant_for_host(&self, host: &str) -> Result<Option<Tenant>, DirectoryError> {
        self.directory.tenant_by_hostname(&host.to_ascii_lowercase()).await
    }

    /// `login` is what USER carried: `user@tenant`, or `user` when `host_tenant` is known.
    pub async fn login(
        &self,
        login: &str,
        host_tenant: Option<&Tenant>,
        password: &str,
    ) -> Result<Principal, LoginError> {
        let record = self.lookup(login, host_tenant).await.map_err(LoginError::Unavailable)?;
        let verdict = self.verifier.verify(record.as_ref().map(|r| r.password_hash.as_str()), password).await;
        match record {
            Some(r) if verdict.ok && r.tenant.enabled && r.user.enabled => {
                if let Err(e) = self.directory.record_login(r.user.id, verdict.rehash.as_deref()).await {
                    tracing::warn!(error = %e, "could not record the login");
                }
                Ok(Principal { tenant: r.tenant, user: r.user })
            }
            _ => {
                tokio::time::sleep(self.failure_delay).await;
                Err(LoginError::Rejected)
            }
        }
    }

    async fn lookup(&self, login: &str, host_tenant: Option<&Tenant>) -> Result<Option<LoginRecord>, DirectoryError> {
        let (username, tenant) = match (login.rsplit_once('@'), host_tenant) {
            (Some((user, name)), Some(host)) if name.eq_ignore_ascii_case(&host.name) => (user, Some(host.clone())),
            // A tenant in the login that contradicts the host's tenant is no tenant at all.
            (Some(_), Some(_)) => return Ok(None),
            (Some((user, name)), None) => (user, self.directory.tenant_by_name(&name.to_ascii_lowercase()).await?),
            (None, Some(host)) => (login, Some(host.clone())),
            (None, None) => return Ok(None),
        };
        match tenant {
            Some(t) => self.directory.login_record(t.id, username).await,
            None => Ok(None),
        }
    }
}
