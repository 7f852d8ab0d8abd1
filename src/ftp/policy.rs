//! The TLS policy one session follows (DESIGN decision 3): the server's `[tls]` section, with the tenant's
//! overrides ([`TenantTlsPolicy`]) once the session knows its tenant (HOST, SNI, `user@tenant`, login).

use crate::config::{Resumption, TlsConfig};
use crate::directory::{TenantTlsPolicy, TlsVersion};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub require_tls_for_login: bool,
    pub require_prot_p: bool,
    pub resumption: Resumption,
    pub require_same_ip_for_passive: bool,
    /// `None`: any version the server speaks.
    pub min_tls_version: Option<TlsVersion>,
}

impl Policy {
    /// The server's policy, for sessions whose tenant is not known yet. `resumption` is what the TLS
    /// acceptors were built with.
    pub fn server(config: &TlsConfig, resumption: Resumption) -> Self {
        Policy {
            require_tls_for_login: config.require_tls_for_login,
            require_prot_p: config.require_prot_p,
            resumption,
            require_same_ip_for_passive: config.require_same_ip_for_passive,
            min_tls_version: None,
        }
    }

    /// The server's policy with `tenant`'s overrides. Resumption cannot be switched on for one tenant when
    /// the server issues no sessions at all.
    pub fn with_tenant(self, tenant: &TenantTlsPolicy) -> Self {
        Policy {
            require_tls_for_login: tenant.require_tls_for_login.unwrap_or(self.require_tls_for_login),
            require_prot_p: tenant.require_prot_p.unwrap_or(self.require_prot_p),
            resumption: match (self.resumption, tenant.data_session_resumption) {
                (Resumption::Disabled, _) | (_, None) => self.resumption,
                (_, Some(tenant)) => tenant,
            },
            require_same_ip_for_passive: tenant.require_same_ip_for_passive.unwrap_or(self.require_same_ip_for_passive),
            min_tls_version: tenant.min_tls_version.or(self.min_tls_version),
        }
    }

    /// Why a control connection (`negotiated`: its TLS version, `None` in plaintext) may not log in under
    /// this policy, as the text of a 530; `None` when it may.
    pub fn login_refusal(&self, negotiated: Option<TlsVersion>) -> Option<String> {
        match (negotiated, self.min_tls_version) {
            (None, _) if self.require_tls_for_login => Some("TLS required: send AUTH TLS before USER and PASS".into()),
            (Some(version), Some(min)) if version < min => {
                Some(format!("TLS {min} or newer required; this connection uses TLS {version}"))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Policy {
        Policy::server(&TlsConfig::default(), Resumption::Enforced)
    }

    #[test]
    fn unset_overrides_keep_the_servers_policy() {
        assert_eq!(server().with_tenant(&TenantTlsPolicy::default()), server());
    }

    #[test]
    fn overrides_relax_and_tighten() {
        let tenant = TenantTlsPolicy {
            require_tls_for_login: Some(false),
            require_prot_p: Some(false),
            data_session_resumption: Some(Resumption::Enabled),
            require_same_ip_for_passive: Some(false),
            min_tls_version: Some(TlsVersion::Tls13),
        };
        let policy = server().with_tenant(&tenant);
        assert!(!policy.require_tls_for_login && !policy.require_prot_p && !policy.require_same_ip_for_passive);
        assert_eq!(policy.resumption, Resumption::Enabled);
        assert_eq!(policy.min_tls_version, Some(TlsVersion::Tls13));
    }

    #[test]
    fn a_tenant_cannot_switch_on_resumption_the_server_disabled() {
        let server = Policy::server(&TlsConfig::default(), Resumption::Disabled);
        let tenant = TenantTlsPolicy { data_session_resumption: Some(Resumption::Enforced), ..Default::default() };
        assert_eq!(server.with_tenant(&tenant).resumption, Resumption::Disabled);
    }

    #[test]
    fn login_refusals() {
        let strict = server();
        assert!(strict.login_refusal(None).is_some());
        assert_eq!(strict.login_refusal(Some(TlsVersion::Tls12)), None);
        let relaxed = strict.with_tenant(&TenantTlsPolicy { require_tls_for_login: Some(false), ..Default::default() });
        assert_eq!(relaxed.login_refusal(None), None);
        let modern =
            strict.with_tenant(&TenantTlsPolicy { min_tls_version: Some(TlsVersion::Tls13), ..Default::default() });
        let why = modern.login_refusal(Some(TlsVersion::Tls12)).unwrap();
        assert!(why.contains("1.3") && why.contains("1.2"), "{why}");
        assert_eq!(modern.login_refusal(Some(TlsVersion::Tls13)), None);
    }
}
