//! `wharf token …`, `wharf ban …` and `wharf usage …`: admin API tokens, login bans and usage.

use super::*;

#[derive(Subcommand)]
pub(crate) enum UsageCommand {
    /// Quotas, usage and the room running uploads hold, of one tenant (with its users) or of all.
    Show { tenant: Option<String> },
    /// Count usage again from storage: each tenant's whole tree, and each user's home. Run it when files
    /// changed behind wharf's back; uploads running meanwhile may be missed.
    Recompute { tenant: Option<String> },
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
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

#[derive(Subcommand)]
pub(crate) enum BanCommand {
    /// List the bans running now.
    List,
    /// Lift a running ban (and forget the failures that led to it).
    Lift {
        /// A scope as `ban list` shows it (`ip:203.0.113.7`, `user:3:alice`), a client address, or
        /// `user@tenant`.
        scope: String,
    },
}

pub(crate) async fn token_command(command: TokenCommand, dir: &dyn Directory) -> anyhow::Result<()> {
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

pub(crate) async fn ban_command(command: BanCommand, dir: &dyn Directory, config: &Config) -> anyhow::Result<()> {
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
pub(crate) async fn ban_scope(dir: &dyn Directory, config: &Config, given: &str) -> anyhow::Result<String> {
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
pub(crate) async fn usage_command(
    command: UsageCommand,
    dir: Arc<dyn Directory>,
    config: &Config,
) -> anyhow::Result<()> {
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

pub(crate) fn account_row(name: String, account: &Account) -> Vec<String> {
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

pub(crate) fn quota_summary(quota: &Quota) -> String {
    let limit = |n: Option<i64>| n.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    format!("max bytes {}, max files {}", limit(quota.max_bytes), limit(quota.max_files))
}
