//! `wharf user …`: users, their passwords, homes, permissions, networks and quotas.

use super::*;

#[derive(Subcommand)]
pub(crate) enum UserCommand {
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

pub(crate) async fn set_user_enabled(dir: &dyn Directory, login: &str, enabled: bool) -> anyhow::Result<()> {
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

pub(crate) async fn user_command(
    command: UserCommand,
    dir: &dyn Directory,
    params: password::Params,
) -> anyhow::Result<()> {
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
