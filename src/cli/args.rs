//! Arguments shared by several commands: quotas, networks, TLS policy, storage settings, passwords.

use super::*;

pub(crate) const MIN_PASSWORD_CHARS: usize = 8;

/// A change of quota; limits not given stay as they are.
#[derive(clap::Args)]
#[group(required = true, multiple = true)]
pub(crate) struct QuotaArgs {
    /// The most bytes that may be stored.
    #[arg(long, value_name = "N", conflicts_with = "unlimited_bytes")]
    pub(crate) max_bytes: Option<u64>,
    /// No limit on bytes.
    #[arg(long)]
    pub(crate) unlimited_bytes: bool,
    /// The most files that may be stored.
    #[arg(long, value_name = "N", conflicts_with = "unlimited_files")]
    pub(crate) max_files: Option<u64>,
    /// No limit on files.
    #[arg(long)]
    pub(crate) unlimited_files: bool,
}

impl QuotaArgs {
    pub(crate) fn apply(&self, mut quota: Quota) -> anyhow::Result<Quota> {
        let limit = |n: u64| i64::try_from(n).context("limit too large");
        if let Some(n) = self.max_bytes {
            quota.max_bytes = Some(limit(n)?);
        }
        if self.unlimited_bytes {
            quota.max_bytes = None;
        }
        if let Some(n) = self.max_files {
            quota.max_files = Some(limit(n)?);
        }
        if self.unlimited_files {
            quota.max_files = None;
        }
        Ok(quota)
    }
}

/// Where logins may come from: a list that replaces the current one, or anywhere.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct NetworkArgs {
    /// An address or CIDR block logins may come from (203.0.113.0/24, 2001:db8::/32); repeatable. Replaces
    /// the current list; a client outside it gets the same 530 as a wrong password.
    #[arg(long = "allow-network", value_name = "CIDR")]
    pub(crate) allow_networks: Vec<Network>,
    /// Allow logins from anywhere (clears the list).
    #[arg(long)]
    pub(crate) anywhere: bool,
}

impl NetworkArgs {
    pub(crate) fn networks(self) -> Networks {
        Networks::new(self.allow_networks)
    }
}

/// A tenant's TLS policy overrides; each is a value or `default`.
#[derive(clap::Args)]
pub(crate) struct TlsPolicyArgs {
    /// Refuse USER/PASS before AUTH TLS: yes, no or default. `no` lets legacy clients log in in plaintext
    /// when they name the tenant first (HOST or user@tenant).
    #[arg(long, value_name = "yes|no|default", value_parser = parse_setting::<YesNo>)]
    pub(crate) require_tls_for_login: Option<Setting<YesNo>>,
    /// Refuse data transfers unless PROT P: yes, no or default.
    #[arg(long, value_name = "yes|no|default", value_parser = parse_setting::<YesNo>)]
    pub(crate) require_prot_p: Option<Setting<YesNo>>,
    /// Data connections must resume the control connection's TLS session: enabled, enforced or default.
    #[arg(long, value_name = "enabled|enforced|default", value_parser = parse_setting::<ResumptionArg>)]
    pub(crate) data_session_resumption: Option<Setting<ResumptionArg>>,
    /// Refuse passive data connections from another IP: yes, no or default.
    #[arg(long, value_name = "yes|no|default", value_parser = parse_setting::<YesNo>)]
    pub(crate) require_same_ip_for_passive: Option<Setting<YesNo>>,
    /// Oldest TLS version the tenant's sessions may use: 1.2, 1.3 or default.
    #[arg(long, value_name = "1.2|1.3|default", value_parser = parse_setting::<directory::TlsVersion>)]
    pub(crate) min_tls_version: Option<Setting<directory::TlsVersion>>,
}

#[derive(Clone, Copy)]
pub(crate) struct YesNo(pub(crate) bool);

impl std::str::FromStr for YesNo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "yes" => Ok(YesNo(true)),
            "no" => Ok(YesNo(false)),
            _ => Err("expected yes, no or default".into()),
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) struct ResumptionArg(pub(crate) wharf::config::Resumption);

impl std::str::FromStr for ResumptionArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "enabled" => Ok(ResumptionArg(wharf::config::Resumption::Enabled)),
            "enforced" => Ok(ResumptionArg(wharf::config::Resumption::Enforced)),
            _ => Err("expected enabled, enforced or default (disabled is server-wide only)".into()),
        }
    }
}

/// A setting given on the command line: a value, or `default` (`None`: back to the server's setting).
#[derive(Clone, Copy)]
pub(crate) struct Setting<T>(pub(crate) Option<T>);

pub(crate) fn parse_setting<T: std::str::FromStr>(s: &str) -> Result<Setting<T>, String>
where
    T::Err: std::fmt::Display,
{
    match s {
        "default" => Ok(Setting(None)),
        other => other.parse().map(|v| Setting(Some(v))).map_err(|e: T::Err| e.to_string()),
    }
}

impl TlsPolicyArgs {
    pub(crate) fn is_empty(&self) -> bool {
        self.require_tls_for_login.is_none()
            && self.require_prot_p.is_none()
            && self.data_session_resumption.is_none()
            && self.require_same_ip_for_passive.is_none()
            && self.min_tls_version.is_none()
    }

    /// `current` with the options that were given applied.
    pub(crate) fn apply(self, current: directory::TenantTlsPolicy) -> directory::TenantTlsPolicy {
        let mut policy = current;
        if let Some(v) = self.require_tls_for_login {
            policy.require_tls_for_login = v.0.map(|v| v.0);
        }
        if let Some(v) = self.require_prot_p {
            policy.require_prot_p = v.0.map(|v| v.0);
        }
        if let Some(v) = self.data_session_resumption {
            policy.data_session_resumption = v.0.map(|v| v.0);
        }
        if let Some(v) = self.require_same_ip_for_passive {
            policy.require_same_ip_for_passive = v.0.map(|v| v.0);
        }
        if let Some(v) = self.min_tls_version {
            policy.min_tls_version = v.0;
        }
        policy
    }
}

/// A tenant's own S3 settings. The secret key is never given on the command line: only where to read it.
#[derive(clap::Args)]
pub(crate) struct StorageArgs {
    /// The tenant's own bucket (default: the server's bucket, under the prefix `<tenant>/`).
    #[arg(long)]
    pub(crate) bucket: Option<String>,
    /// Key prefix inside the bucket.
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// S3-compatible endpoint URL.
    #[arg(long)]
    pub(crate) endpoint: Option<String>,
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// Path-style addressing (true/false).
    #[arg(long, value_name = "BOOL")]
    pub(crate) path_style: Option<bool>,
    #[arg(long)]
    pub(crate) access_key_id: Option<String>,
    /// Where the secret access key is: `env:NAME` or `file:/path`.
    #[arg(long, value_name = "REF")]
    pub(crate) secret_ref: Option<String>,
}

impl StorageArgs {
    pub(crate) fn settings(self) -> TenantStorage {
        TenantStorage {
            bucket: self.bucket,
            prefix: self.prefix,
            endpoint: self.endpoint,
            region: self.region,
            path_style: self.path_style,
            access_key_id: self.access_key_id,
            secret_ref: self.secret_ref,
        }
    }
}

/// `PATH=PERMS` of `user set --path-permissions` (a path may hold `=`; permission names never do).
pub(crate) fn path_rule(text: &str) -> Result<(String, Permissions), String> {
    let (path, permissions) =
        text.rsplit_once('=').ok_or_else(|| format!("{text:?} must be PATH=PERMS, e.g. /in=list,read,write"))?;
    Ok((path.to_owned(), permissions.parse().map_err(|e| format!("{e}"))?))
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct TokenScopeArgs {
    /// Everything, every tenant.
    #[arg(long)]
    pub(crate) operator: bool,
    /// One tenant's users, hostnames, certificates, sessions, usage and audit events.
    #[arg(long, value_name = "TENANT")]
    pub(crate) tenant: Option<String>,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PasswordSource {
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub(crate) password_stdin: bool,
    /// Read the password from a file (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,
}
