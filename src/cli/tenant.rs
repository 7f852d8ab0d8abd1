//! `wharf tenant …`: tenants, their hostnames, storage, networks, TLS policy and quotas.

use super::*;

#[derive(Subcommand)]
pub(crate) enum TenantCommand {
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

#[derive(Subcommand)]
pub(crate) enum HostnameCommand {
    /// Map a hostname to a tenant.
    Add { tenant: String, hostname: String },
}

pub(crate) async fn tenant_command(command: TenantCommand, dir: &dyn Directory) -> anyhow::Result<()> {
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
pub(crate) fn storage_summary(s: &TenantStorage) -> String {
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

pub(crate) fn tls_policy_summary(policy: &directory::TenantTlsPolicy) -> String {
    if *policy == directory::TenantTlsPolicy::default() {
        return "the server's".to_owned();
    }
    serde_json::to_string(policy).unwrap_or_default()
}
