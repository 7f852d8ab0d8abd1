//! The `wharf` command line: run the server, apply migrations, manage tenants, users and their quotas, show
//! or recompute usage, and list or lift login bans.
//!
//! Passwords are never taken from the command line (it shows in `ps` and shell history): they come from
//! stdin or a file.

use std::io::{BufRead, IsTerminal};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use wharf::access::{Network, Networks, Permissions};
use wharf::config::Backend;
use wharf::config::Config;
use wharf::directory::login_failures::{ip_scope, parse_user_scope, user_scope};
use wharf::directory::{self, password, Account, Directory, DirectoryError, NewUser, Quota, Tenant, TenantStorage};
use wharf::storage::fs::FsProvider;
use wharf::storage::s3::S3Provider;
use wharf::storage::StorageProvider;

const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Parser)]
#[command(name = "wharf", version, about = "A multi-tenant FTPS server that keeps every file in object storage")]
struct Cli {
    /// TOML configuration file; `WHARF_*` environment variables override it.
    #[arg(long, global = true, env = "WHARF_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the FTPS server until SIGINT or SIGTERM.
    Serve,
    /// Create the directory database if needed and apply its migrations.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage users (logins are `user@tenant`).
    #[command(subcommand)]
    User(UserCommand),
    /// List and lift bans of client addresses and users that failed to log in too often. Bans live in the
    /// directory, so they hold on every instance that shares it.
    #[command(subcommand)]
    Ban(BanCommand),
    /// Show or recompute what tenants and users store (see `tenant quota` and `user quota`).
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Manage the admin API's bearer tokens (`wharf token create ops --operator` makes the first one).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum UsageCommand {
    /// Quotas, usage and the room running uploads hold, of one tenant (with its users) or of all.
    Show { tenant: Option<String> },
    /// Count usage again from storage: each tenant's whole tree, and each user's home. Run it when files
    /// changed behind wharf's back; uploads running meanwhile may be missed.
    Recompute { tenant: Option<String> },
}

/// A change of quota; limits not given stay as they are.
#[derive(clap::Args)]
#[group(required = true, multiple = true)]
struct QuotaArgs {
    /// The most bytes that may be stored.
    #[arg(long, value_name = "N", conflicts_with = "unlimited_bytes")]
    max_bytes: Option<u64>,
    /// No limit on bytes.
    #[arg(long)]
    unlimited_bytes: bool,
    /// The most files that may be stored.
    #[arg(long, value_name = "N", conflicts_with = "unlimited_files")]
    max_files: Option<u64>,
    /// No limit on files.
    #[arg(long)]
    unlimited_files: bool,
}

impl QuotaArgs {
    fn apply(&self, mut quota: Quota) -> anyhow::Result<Quota> {
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

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Add {
        /// Lower-case letters, digits and '-'.
        name: String,
        /// A hostname (TLS SNI name or FTP HOST argument) that selects this tenant; repeatable.
        #[arg(long = "hostname", value_name = "HOST")]
        hostnames: Vec<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List tenants with their hostnames and storage (secrets are never shown).
    List,
    /// Set where a tenant's files live on S3 (bring your own bucket); unset fields use the server's.
    Storage {
        name: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Manage a tenant's hostnames.
    #[command(subcommand)]
    Hostname(HostnameCommand),
    /// Set the client networks a tenant's users may log in from (each user may narrow them further).
    Networks {
        name: String,
        #[command(flatten)]
        networks: NetworkArgs,
    },
    /// Set the most bytes and files a tenant may store (an upload past it gets 552).
    Quota {
        name: String,
        #[command(flatten)]
        quota: QuotaArgs,
    },
    /// Override the server's [tls] policy for one tenant (options left out keep their value; `default`
    /// returns to the server's setting), or show it when no option is given.
    Tls {
        name: String,
        #[command(flatten)]
        policy: TlsPolicyArgs,
    },
    /// Stop a tenant's users from logging in (530, as for a wrong password) and close their open sessions.
    Disable { name: String },
    /// Let a disabled tenant's users log in again.
    Enable { name: String },
    /// Delete a tenant with its users, hostnames and counters. Its files stay in storage.
    Delete { name: String },
}

/// Where logins may come from: a list that replaces the current one, or anywhere.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct NetworkArgs {
    /// An address or CIDR block logins may come from (203.0.113.0/24, 2001:db8::/32); repeatable. Replaces
    /// the current list; a client outside it gets the same 530 as a wrong password.
    #[arg(long = "allow-network", value_name = "CIDR")]
    allow_networks: Vec<Network>,
    /// Allow logins from anywhere (clears the list).
    #[arg(long)]
    anywhere: bool,
}

impl NetworkArgs {
    fn networks(self) -> Networks {
        Networks::new(self.allow_networks)
    }
}

/// A tenant's TLS policy overrides; each is a value or `default`.
#[derive(clap::Args)]
struct TlsPolicyArgs {
    /// Refuse USER/PASS before AUTH TLS: yes, no or default. `no` lets legacy clients log in in plaintext
    /// when they name the tenant first (HOST or user@tenant).
    #[arg(long, value_name = "yes|no|default", value_parser = parse_setting::<YesNo>)]
    require_tls_for_login: Option<Setting<YesNo>>,
    /// Refuse data transfers unless PROT P: yes, no or default.
    #[arg(long, value_name = "yes|no|default", value_parser = parse_setting::<YesNo>)]
    require_prot_p: Option<Setting<YesNo>>,
    /// Data connections must resume the control connection's TLS session: enabled, enforced or default.
    #[arg(long, value_name = "enabled|enforced|default", value_parser = parse_setting::<ResumptionArg>)]
    data_session_resumption: Option<Setting<ResumptionArg>>,
    /// Refuse passive data connections from another IP: yes, no or default.
    #[arg(long, value_name = "yes|no|default", value_parser = parse_setting::<YesNo>)]
    require_same_ip_for_passive: Option<Setting<YesNo>>,
    /// Oldest TLS version the tenant's sessions may use: 1.2, 1.3 or default.
    #[arg(long, value_name = "1.2|1.3|default", value_parser = parse_setting::<directory::TlsVersion>)]
    min_tls_version: Option<Setting<directory::TlsVersion>>,
}

#[derive(Clone, Copy)]
struct YesNo(bool);

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
struct ResumptionArg(wharf::config::Resumption);

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
struct Setting<T>(Option<T>);

fn parse_setting<T: std::str::FromStr>(s: &str) -> Result<Setting<T>, String>
where
    T::Err: std::fmt::Display,
{
    match s {
        "default" => Ok(Setting(None)),
        other => other.parse().map(|v| Setting(Some(v))).map_err(|e: T::Err| e.to_string()),
    }
}

impl TlsPolicyArgs {
    fn is_empty(&self) -> bool {
        self.require_tls_for_login.is_none()
            && self.require_prot_p.is_none()
            && self.data_session_resumption.is_none()
            && self.require_same_ip_for_passive.is_none()
            && self.min_tls_version.is_none()
    }

    /// `current` with the options that were given applied.
    fn apply(self, current: directory::TenantTlsPolicy) -> directory::TenantTlsPolicy {
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

fn tls_policy_summary(policy: &directory::TenantTlsPolicy) -> String {
    if *policy == directory::TenantTlsPolicy::default() {
        return "the server's".to_owned();
    }
    serde_json::to_string(policy).unwrap_or_default()
}

/// A tenant's own S3 settings. The secret key is never given on the command line: only where to read it.
#[derive(clap::Args)]
struct StorageArgs {
    /// The tenant's own bucket (default: the server's bucket, under the prefix `<tenant>/`).
    #[arg(long)]
    bucket: Option<String>,
    /// Key prefix inside the bucket.
    #[arg(long)]
    prefix: Option<String>,
    /// S3-compatible endpoint URL.
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long)]
    region: Option<String>,
    /// Path-style addressing (true/false).
    #[arg(long, value_name = "BOOL")]
    path_style: Option<bool>,
    #[arg(long)]
    access_key_id: Option<String>,
    /// Where the secret access key is: `env:NAME` or `file:/path`.
    #[arg(long, value_name = "REF")]
    secret_ref: Option<String>,
}

impl StorageArgs {
    fn settings(self) -> TenantStorage {
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

#[derive(Subcommand)]
enum HostnameCommand {
    /// Map a hostname to a tenant.
    Add { tenant: String, hostname: String },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user.
    Add {
        /// `user@tenant`
        login: String,
        /// The user's root inside the tenant's tree.
        #[arg(long, default_value = "/", value_name = "PATH")]
        home: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Set a user's password.
    Passwd {
        /// `user@tenant`
        login: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// List users, of one tenant or of all.
    List {
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
    },
    /// Delete a user.
    Delete {
        /// `user@tenant`
        login: String,
    },
    /// Stop a user from logging in (530, as for a wrong password) and close its open sessions.
    Disable {
        /// `user@tenant`
        login: String,
    },
    /// Let a disabled user log in again.
    Enable {
        /// `user@tenant`
        login: String,
    },
    /// Set what a user may do and where it may log in from; what is not given stays as it is.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
    Set {
        /// `user@tenant`
        login: String,
        /// What the user may do in its whole tree: `all`, `none`, or some of
        /// list,read,write,delete,rename,mkdir.
        #[arg(long, value_name = "PERMS", group = "change")]
        permissions: Option<Permissions>,
        /// What the user may do at a path (as the user sees it) and below, e.g. `/in=list,read,write`;
        /// repeatable, the longest matching path wins. Replaces the current rules.
        #[arg(long = "path-permissions", value_name = "PATH=PERMS", value_parser = path_rule, group = "change")]
        path_permissions: Vec<(String, Permissions)>,
        /// Remove every path rule.
        #[arg(long, conflicts_with = "path_permissions", group = "change")]
        no_path_permissions: bool,
        /// An address or CIDR block the user may log in from; repeatable. Replaces the current list (the
        /// tenant's networks apply as well).
        #[arg(long = "allow-network", value_name = "CIDR", group = "change")]
        allow_networks: Vec<Network>,
        /// Let the user log in from anywhere the tenant allows (clears the list).
        #[arg(long, conflicts_with = "allow_networks", group = "change")]
        anywhere: bool,
    },
    /// Set the most bytes and files a user may store, besides its tenant's quota.
    Quota {
        /// `user@tenant`
        login: String,
        #[command(flatten)]
        quota: QuotaArgs,
    },
}

/// `PATH=PERMS` of `user set --path-permissions` (a path may hold `=`; permission names never do).
fn path_rule(text: &str) -> Result<(String, Permissions), String> {
    let (path, permissions) =
        text.rsplit_once('=').ok_or_else(|| format!("{text:?} must be PATH=PERMS, e.g. /in=list,read,write"))?;
    Ok((path.to_owned(), permissions.parse().map_err(|e| format!("{e}"))?))
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret, this once: only its hash is stored.
    Create {
        /// A name to tell tokens apart (unique per scope).
        name: String,
        #[command(flatten)]
        scope: TokenScopeArgs,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by its id (as `token list` shows it).
    Revoke { id: i64 },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct TokenScopeArgs {
    /// Everything, every tenant.
    #[arg(long)]
    operator: bool,
    /// One tenant's users, hostnames, certificates, sessions, usage and audit events.
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
}

#[derive(Subcommand)]
enum BanCommand {
    /// List the bans running now.
    List,
    /// Lift a running ban (and forget the failures that led to it).
    Lift {
        /// A scope as `ban list` shows it (`ip:203.0.113.7`, `user:3:alice`), a client address, or
        /// `user@tenant`.
        scope: String,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct PasswordSource {
    /// Read the password from the first line of stdin.
    #[arg(long)]
    password_stdin: bool,
    /// Read the password from a file (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    limit_retained_memory();
    let cli = Cli::parse();
    if let Command::Version = cli.command {
        println!("wharf {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let telemetry = wharf::telemetry::Telemetry::init(&config, runtime.handle())?;
    let result = runtime.block_on(dispatch(cli.command, config, cli.config, telemetry.clone()));
    // The runtime still runs, so the last spans can go out.
    telemetry.shutdown();
    result
}

async fn dispatch(
    command: Command,
    config: Config,
    config_file: Option<PathBuf>,
    telemetry: wharf::telemetry::Telemetry,
) -> anyhow::Result<()> {
    match command {
        Command::Serve => wharf::server::run(config, config_file, telemetry).await,
        Command::Migrate => {
            open_directory_with(&config, directory::PoolOptions { migrate: true, ..config.pool_options() }).await?;
            println!("migrations applied to {}", wharf::config::redact_url(&config.database_url()));
            Ok(())
        }
        Command::Tenant(command) => tenant_command(command, &*open_directory(&config).await?).await,
        Command::User(command) => {
            user_command(command, &*open_directory(&config).await?, config.password_params()).await
        }
        Command::Ban(command) => ban_command(command, &*open_directory(&config).await?, &config).await,
        Command::Usage(command) => usage_command(command, open_directory(&config).await?, &config).await,
        Command::Token(command) => token_command(command, &*open_directory(&config).await?).await,
        Command::Version => unreachable!("handled before the configuration is loaded"),
    }
}

async fn tenant_command(command: TenantCommand, dir: &dyn Directory) -> anyhow::Result<()> {
    match command {
        TenantCommand::Disable { name } => {
            let tenant = existing_tenant(dir, &name).await?;
            dir.set_tenant_enabled(tenant.id, false).await?;
            let closing = dir.request_disconnect_all(tenant.id, None, Utc::now()).await?;
            println!("tenant {name:?} disabled: its users cannot log in; {closing} open sessions closing");
        }
        TenantCommand::Enable { name } => {
            let tenant = existing_tenant(dir, &name).await?;
            dir.set_tenant_enabled(tenant.id, true).await?;
            println!("tenant {name:?} enabled");
        }
        TenantCommand::Delete { name } => {
            let tenant = existing_tenant(dir, &name).await?;
            dir.delete_tenant(tenant.id).await?;
            println!("tenant {name:?} deleted with its users and hostnames; its files stay in storage");
        }
        TenantCommand::Quota { name, quota } => {
            let tenant = existing_tenant(dir, &name).await?;
            let current = dir.tenant_account(tenant.id, Utc::now()).await?.quota;
            let quota = quota.apply(current)?;
            dir.set_tenant_quota(tenant.id, &quota).await.map_err(|e| explain(e, "tenant", &name))?;
            println!("quota of tenant {name:?}: {}", quota_summary(&quota));
        }
        TenantCommand::Add { name, hostnames, storage } => {
            // Checked by the workflow too; here first, to name the tenant that holds the hostname.
            for hostname in &hostnames {
                ensure_hostname_free(dir, hostname).await?;
            }
            let new = wharf::services::NewTenant {
                name: &name,
                storage: Some(storage.settings()),
                enabled: true,
                hostnames: &hostnames,
                ..Default::default()
            };
            wharf::services::create_tenant(dir, new).await.map_err(|refused| match refused.field {
                "hostnames" => explain(refused.error, "hostname", &refused.value),
                field => explain(refused.error, if field == "name" { "tenant" } else { field }, &name),
            })?;
            println!("tenant {name:?} created");
        }
        TenantCommand::List => {
            let mut rows = Vec::new();
            for t in dir.list_tenants().await? {
                let hostnames = dir.hostnames(t.id).await?;
                let hostnames = if hostnames.is_empty() { "-".to_owned() } else { hostnames.join(",") };
                rows.push(vec![
                    t.name,
                    yes_no(t.enabled),
                    hostnames,
                    storage_summary(&t.storage),
                    networks_summary(&t.allowed_networks),
                    timestamp(t.created_at),
                ]);
            }
            print_table(&["NAME", "ENABLED", "HOSTNAMES", "STORAGE", "NETWORKS", "CREATED"], &rows);
        }
        TenantCommand::Storage { name, storage } => {
            let tenant = existing_tenant(dir, &name).await?;
            let storage = storage.settings();
            dir.set_tenant_storage(tenant.id, &storage).await.map_err(|e| explain(e, "storage", &name))?;
            println!("tenant {name:?} now stores in {}", storage_summary(&storage));
        }
        TenantCommand::Tls { name, policy } => {
            let tenant = existing_tenant(dir, &name).await?;
            if !policy.is_empty() {
                let updated = policy.apply(tenant.tls);
                dir.set_tenant_tls(tenant.id, &updated).await.map_err(|e| explain(e, "tenant", &name))?;
                println!("tenant {name:?} now follows TLS policy {}", tls_policy_summary(&updated));
            } else {
                println!("tenant {name:?} follows TLS policy {}", tls_policy_summary(&tenant.tls));
            }
        }
        TenantCommand::Networks { name, networks } => {
            let tenant = existing_tenant(dir, &name).await?;
            let networks = networks.networks();
            dir.set_tenant_networks(tenant.id, &networks).await.map_err(|e| explain(e, "tenant", &name))?;
            println!("users of tenant {name:?} may log in from {}", networks_summary(&networks));
        }
        TenantCommand::Hostname(HostnameCommand::Add { tenant, hostname }) => {
            let tenant = existing_tenant(dir, &tenant).await?;
            ensure_hostname_free(dir, &hostname).await?;
            dir.add_hostname(tenant.id, &hostname).await.map_err(|e| explain(e, "hostname", &hostname))?;
            println!("hostname {:?} now selects tenant {:?}", hostname.to_ascii_lowercase(), tenant.name);
        }
    }
    Ok(())
}

/// Bucket, prefix and endpoint, and whether the tenant has credentials of its own (never the secret).
fn storage_summary(s: &TenantStorage) -> String {
    if *s == TenantStorage::default() {
        return "default".to_owned();
    }
    let mut out = format!("s3://{}/{}", s.bucket.as_deref().unwrap_or("(default)"), s.prefix.as_deref().unwrap_or(""));
    if let Some(endpoint) = &s.endpoint {
        out.push_str(&format!(" at {}", wharf::config::redact_url(endpoint)));
    }
    if let Some(id) = &s.access_key_id {
        out.push_str(&format!(" as {id}"));
    }
    out
}

async fn set_user_enabled(dir: &dyn Directory, login: &str, enabled: bool) -> anyhow::Result<()> {
    let (username, tenant) = split_login(login)?;
    let tenant = existing_tenant(dir, tenant).await?;
    dir.set_user_enabled(tenant.id, username, enabled).await.map_err(|e| explain(e, "user", login))?;
    if enabled {
        println!("user {login:?} enabled");
    } else {
        let user = dir
            .user_by_name(tenant.id, username)
            .await?
            .ok_or_else(|| explain(DirectoryError::NotFound, "user", login))?;
        let closing = dir.request_disconnect_all(tenant.id, Some(user.id), Utc::now()).await?;
        println!("user {login:?} disabled; {closing} open sessions closing");
    }
    Ok(())
}

async fn user_command(command: UserCommand, dir: &dyn Directory, params: password::Params) -> anyhow::Result<()> {
    match command {
        UserCommand::Quota { login, quota } => {
            let (username, tenant) = split_login(&login)?;
            let tenant = existing_tenant(dir, tenant).await?;
            let user = match dir.login_record(tenant.id, username).await? {
                Some(record) => record.user,
                None => bail!("user {login:?} does not exist"),
            };
            let current = dir.user_account(user.id, Utc::now()).await?.quota;
            let quota = quota.apply(current)?;
            dir.set_user_quota(tenant.id, username, &quota).await.map_err(|e| explain(e, "user", &login))?;
            println!("quota of user {login:?}: {}", quota_summary(&quota));
        }
        UserCommand::Add { login, home, password } => {
            let (username, tenant) = split_login(&login)?;
            let tenant = existing_tenant(dir, tenant).await?;
            let password_hash = hash_password(read_password(&password)?, params).await?;
            let new = NewUser { username: username.to_owned(), password_hash, home };
            let user = dir.create_user(tenant.id, new).await.map_err(|e| explain(e, "user", &login))?;
            println!("user {login:?} created (home {})", user.home);
        }
        UserCommand::Passwd { login, password } => {
            let (username, tenant) = split_login(&login)?;
            let tenant = existing_tenant(dir, tenant).await?;
            let password_hash = hash_password(read_password(&password)?, params).await?;
            dir.set_password(tenant.id, username, &password_hash).await.map_err(|e| explain(e, "user", &login))?;
            println!("password of {login:?} changed");
        }
        UserCommand::List { tenant } => {
            let tenant_id = match tenant {
                Some(name) => Some(existing_tenant(dir, &name).await?.id),
                None => None,
            };
            let tenants = dir.list_tenants().await?;
            let tenant_name =
                |id: i64| tenants.iter().find(|t| t.id == id).map_or_else(|| format!("#{id}"), |t| t.name.clone());
            let rows: Vec<Vec<String>> = dir
                .list_users(tenant_id)
                .await?
                .into_iter()
                .map(|u| {
                    let last_login = u.last_login_at.map_or_else(|| "never".to_owned(), timestamp);
                    let login = format!("{}@{}", u.username, tenant_name(u.tenant_id));
                    vec![
                        login,
                        u.home,
                        yes_no(u.enabled),
                        u.access.to_string(),
                        networks_summary(&u.allowed_networks),
                        timestamp(u.created_at),
                        last_login,
                    ]
                })
                .collect();
            print_table(&["LOGIN", "HOME", "ENABLED", "PERMISSIONS", "NETWORKS", "CREATED", "LAST LOGIN"], &rows);
        }
        UserCommand::Set { login, permissions, path_permissions, no_path_permissions, allow_networks, anywhere } => {
            let (username, tenant) = split_login(&login)?;
            let tenant = existing_tenant(dir, tenant).await?;
            let rules = (!path_permissions.is_empty() || no_path_permissions).then_some(path_permissions);
            let networks = (!allow_networks.is_empty() || anywhere).then(|| Networks::new(allow_networks));
            // Everything is checked before anything is written, so a bad rule changes nothing.
            if let Some(rules) = &rules {
                directory::check_path_rules(rules)?;
            }
            if let Some(networks) = &networks {
                directory::check_networks(networks)?;
            }
            if dir.login_record(tenant.id, username).await?.is_none() {
                bail!("user {login:?} does not exist");
            }
            if let Some(rules) = &rules {
                dir.set_path_permissions(tenant.id, username, rules).await.map_err(|e| explain(e, "user", &login))?;
            }
            if let Some(networks) = &networks {
                dir.set_user_networks(tenant.id, username, networks).await.map_err(|e| explain(e, "user", &login))?;
            }
            if let Some(permissions) = permissions {
                dir.set_permissions(tenant.id, username, permissions).await.map_err(|e| explain(e, "user", &login))?;
            }
            let user = dir.login_record(tenant.id, username).await?.context("the user vanished meanwhile")?.user;
            println!("user {login:?} may do {} from {}", user.access, networks_summary(&user.allowed_networks));
        }
        UserCommand::Delete { login } => {
            let (username, tenant) = split_login(&login)?;
            let tenant = existing_tenant(dir, tenant).await?;
            dir.delete_user(tenant.id, username).await.map_err(|e| explain(e, "user", &login))?;
            println!("user {login:?} deleted");
        }
        UserCommand::Disable { login } => set_user_enabled(dir, &login, false).await?,
        UserCommand::Enable { login } => set_user_enabled(dir, &login, true).await?,
    }
    Ok(())
}

async fn token_command(command: TokenCommand, dir: &dyn Directory) -> anyhow::Result<()> {
    use wharf::directory::admin::{NewAuditEvent, Page, TokenScope};
    match command {
        TokenCommand::Create { name, scope } => {
            let (scope, tenant_name) = match scope.tenant {
                Some(tenant) => (TokenScope::TenantAdmin(existing_tenant(dir, &tenant).await?.id), Some(tenant)),
                None => (TokenScope::Operator, None),
            };
            let (token, secret) =
                wharf::admin::tokens::create_token(dir, &name, scope).await.map_err(|e| explain(e, "token", &name))?;
            let event = NewAuditEvent {
                actor: "cli".to_owned(),
                tenant_id: scope.tenant(),
                action: "token.create".to_owned(),
                target: format!("token/{}", token.id),
                client: None,
                detail: serde_json::json!({ "name": name, "tenant": tenant_name }),
            };
            dir.record_audit(&event, Utc::now()).await?;
            let what = tenant_name.map_or("operator".to_owned(), |t| format!("tenant admin of {t:?}"));
            println!("token {} ({name:?}, {what}); its secret, shown this once:", token.id);
            println!("{secret}");
        }
        TokenCommand::List => {
            let mut rows = Vec::new();
            let mut after = None;
            loop {
                let page = dir.tokens_page(None, Page { after, limit: 500 }).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                for t in page {
                    let scope = match t.scope {
                        TokenScope::Operator => "operator".to_owned(),
                        TokenScope::TenantAdmin(id) => match dir.tenant_by_id(id).await? {
                            Some(tenant) => format!("tenant {}", tenant.name),
                            None => format!("tenant #{id}"),
                        },
                    };
                    let used = t.last_used_at.map_or("never".to_owned(), timestamp);
                    let expires = t.expires_at.map_or("never".to_owned(), timestamp);
                    rows.push(vec![t.id.to_string(), t.name, scope, timestamp(t.created_at), used, expires]);
                }
            }
            print_table(&["ID", "NAME", "SCOPE", "CREATED", "LAST USED", "EXPIRES"], &rows);
        }
        TokenCommand::Revoke { id } => {
            let token = dir.token_by_id(id).await?.ok_or_else(|| anyhow::anyhow!("no token with id {id}"))?;
            dir.delete_token(id).await?;
            let event = NewAuditEvent {
                actor: "cli".to_owned(),
                tenant_id: token.scope.tenant(),
                action: "token.delete".to_owned(),
                target: format!("token/{id}"),
                client: None,
                detail: serde_json::json!({ "name": token.name }),
            };
            dir.record_audit(&event, Utc::now()).await?;
            println!("token {id} ({:?}) revoked", token.name);
        }
    }
    Ok(())
}

async fn ban_command(command: BanCommand, dir: &dyn Directory, config: &Config) -> anyhow::Result<()> {
    match command {
        BanCommand::List => {
            let tenants = dir.list_tenants().await?;
            let rows: Vec<Vec<String>> = dir
                .active_bans(Utc::now())
                .await?
                .into_iter()
                .map(|ban| {
                    // A user scope names the tenant by id; show the login it stands for too.
                    let login = parse_user_scope(&ban.scope).map_or_else(
                        || "-".to_owned(),
                        |(tenant_id, user)| match tenants.iter().find(|t| t.id == tenant_id) {
                            Some(t) => format!("{user}@{}", t.name),
                            None => format!("{user}@#{tenant_id}"),
                        },
                    );
                    vec![
                        ban.scope,
                        login,
                        ban.failures.to_string(),
                        timestamp(ban.last_failure),
                        timestamp(ban.banned_until),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("no bans");
            } else {
                print_table(&["SCOPE", "LOGIN", "FAILURES", "LAST FAILURE", "BANNED UNTIL"], &rows);
            }
        }
        BanCommand::Lift { scope: given } => {
            let scope = ban_scope(dir, config, &given).await?;
            if dir.lift_ban(&scope, Utc::now()).await? {
                println!("ban of {scope} lifted");
            } else {
                bail!("{scope} is not banned (see `wharf ban list`)");
            }
        }
    }
    Ok(())
}

/// The stored scope an operator means: a scope as listed, a client address, or `user@tenant`.
async fn ban_scope(dir: &dyn Directory, config: &Config, given: &str) -> anyhow::Result<String> {
    if given.starts_with("ip:") || given.starts_with("user:") {
        return Ok(given.to_owned());
    }
    if let Ok(ip) = given.parse::<IpAddr>() {
        return Ok(ip_scope(ip, config.login_defence.ipv6_prefix_len));
    }
    match given.split_once('@') {
        Some((user, tenant)) if !user.is_empty() => Ok(user_scope(existing_tenant(dir, tenant).await?.id, user)),
        _ => bail!("{given:?} is not a scope (ip:… or user:…), a client address or user@tenant"),
    }
}

/// Opens the directory named by the config, creating the data folder first when the SQLite file lives there.
async fn usage_command(command: UsageCommand, dir: Arc<dyn Directory>, config: &Config) -> anyhow::Result<()> {
    let (UsageCommand::Show { tenant } | UsageCommand::Recompute { tenant }) = &command;
    let tenants = match tenant {
        Some(name) => vec![existing_tenant(&*dir, name).await?],
        None => dir.list_tenants().await?,
    };
    match command {
        UsageCommand::Show { .. } => {
            let mut rows = Vec::new();
            for tenant in &tenants {
                let account = dir.tenant_account(tenant.id, Utc::now()).await?;
                rows.push(account_row(tenant.name.clone(), &account));
                for user in dir.list_users(Some(tenant.id)).await? {
                    let account = dir.user_account(user.id, Utc::now()).await?;
                    rows.push(account_row(format!("  {}@{}", user.username, tenant.name), &account));
                }
            }
            print_table(&["NAME", "BYTES", "MAX BYTES", "FILES", "MAX FILES", "RESERVED BYTES"], &rows);
        }
        UsageCommand::Recompute { .. } => {
            let provider: Arc<dyn StorageProvider> = match config.storage.backend {
                Backend::Fs => Arc::new(
                    FsProvider::new(config.fs_root(), config.storage.fsync)
                        .with_context(|| format!("opening the storage folder {}", config.fs_root().display()))?,
                ),
                Backend::S3 => {
                    // A one-off command: its S3 requests are timed, and nobody reads the figures.
                    let metrics = wharf::telemetry::metrics::Metrics::new(None, &Default::default());
                    S3Provider::new(&config.storage.s3, dir.clone(), metrics.s3()).await.context("setting up S3")?
                }
            };
            for tenant in &tenants {
                let found = wharf::usage::recompute(&*dir, &*provider, tenant).await?;
                println!("{}: {} bytes in {} files", tenant.name, found.tenant.bytes, found.tenant.files);
                for (user, usage) in found.users {
                    println!("  {user}@{}: {} bytes in {} files", tenant.name, usage.bytes, usage.files);
                }
            }
        }
    }
    Ok(())
}

fn account_row(name: String, account: &Account) -> Vec<String> {
    let limit = |n: Option<i64>| n.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    vec![
        name,
        account.used.bytes.to_string(),
        limit(account.quota.max_bytes),
        account.used.files.to_string(),
        limit(account.quota.max_files),
        account.reserved.bytes.to_string(),
    ]
}

fn quota_summary(quota: &Quota) -> String {
    let limit = |n: Option<i64>| n.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    format!("max bytes {}, max files {}", limit(quota.max_bytes), limit(quota.max_files))
}

async fn open_directory(config: &Config) -> anyhow::Result<Arc<dyn Directory>> {
    open_directory_with(config, config.pool_options()).await
}

async fn open_directory_with(config: &Config, options: directory::PoolOptions) -> anyhow::Result<Arc<dyn Directory>> {
    let url = config.database_url();
    if sqlite_path(&url).is_some_and(|path| path.starts_with(&config.data_dir)) {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the data folder {}", config.data_dir.display()))?;
    }
    directory::open_with(&url, &options)
        .await
        .with_context(|| format!("opening the directory at {}", wharf::config::redact_url(&url)))
}

fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}

async fn existing_tenant(dir: &dyn Directory, name: &str) -> anyhow::Result<Tenant> {
    directory::validate_tenant_name(name)?;
    match dir.tenant_by_name(name).await? {
        Some(tenant) => Ok(tenant),
        None => bail!("tenant {name:?} does not exist (create it with `wharf tenant add {name}`)"),
    }
}

async fn ensure_hostname_free(dir: &dyn Directory, hostname: &str) -> anyhow::Result<()> {
    match dir.tenant_by_hostname(hostname).await? {
        Some(owner) => bail!("hostname {hostname:?} already selects tenant {:?}", owner.name),
        None => Ok(()),
    }
}

/// Turns the directory's terse conflict and not-found errors into sentences naming `what`.
fn explain(e: DirectoryError, kind: &str, what: &str) -> anyhow::Error {
    match e {
        DirectoryError::Conflict(kind) => anyhow::anyhow!("{kind} {what:?} already exists"),
        DirectoryError::NotFound => anyhow::anyhow!("{kind} {what:?} does not exist"),
        other => other.into(),
    }
}

fn split_login(login: &str) -> anyhow::Result<(&str, &str)> {
    match login.split_once('@') {
        Some((user, tenant)) if !user.is_empty() && !tenant.is_empty() => Ok((user, tenant)),
        _ => bail!("login {login:?} must be written user@tenant"),
    }
}

fn read_password(source: &PasswordSource) -> anyhow::Result<String> {
    let raw = match &source.password_file {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading the password from {}", path.display()))?
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("reading the password from stdin (one line; it will be echoed)");
            }
            let mut line = String::new();
            stdin.lock().read_line(&mut line).context("reading the password from stdin")?;
            line
        }
    };
    let password = raw.strip_suffix('\n').map_or(raw.as_str(), |s| s.strip_suffix('\r').unwrap_or(s));
    check_password(password)?;
    Ok(password.to_owned())
}

fn check_password(password: &str) -> anyhow::Result<()> {
    if password.is_empty() {
        bail!("the password is empty");
    }
    if password.contains(['\r', '\n']) {
        bail!("the password must be a single line");
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password is too short: use at least {MIN_PASSWORD_CHARS} characters");
    }
    Ok(())
}

async fn hash_password(secret: String, params: password::Params) -> anyhow::Result<String> {
    let hash = tokio::task::spawn_blocking(move || password::hash(&secret, &params)).await??;
    Ok(hash)
}

fn networks_summary(networks: &Networks) -> String {
    if networks.is_anywhere() {
        "anywhere".to_owned()
    } else {
        networks.to_string()
    }
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Every login runs argon2id with a 19 MiB working buffer. glibc's malloc raises its mmap threshold after
/// the first such buffer is freed, so later ones come from per-thread arenas and stay resident: 200 logins
/// would leave ~780 MB behind. A fixed threshold keeps large buffers on mmap, returned to the system when
/// freed (measured in BENCHMARKS.md).
///
/// Fixing the mmap threshold also freezes the trim threshold at its 128 KiB default, and an S3 download
/// frees HTTP body buffers of a few hundred KiB all the time: each arena's top was handed back to the
/// kernel and faulted in again, about one page fault per 2 KiB downloaded (146,000 faults for 5 × 256 MiB,
/// 20 % of the server's CPU). Each arena now keeps up to 4 MiB at its top: 352 faults for the same
/// downloads, and at most 4 MiB × the number of arenas (8 per core) retained.
fn limit_retained_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing in main, before any thread exists; mallopt only tunes the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 * 1024 * 1024);
    }
}
