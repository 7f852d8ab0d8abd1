//! Workflows both front ends offer, the CLI (`wharf tenant add`) and the admin API (`POST /tenants`),
//! written once. Each checks what it can before its first write and undoes its writes when a later one
//! fails, so neither front end can leave half a tenant behind.

use crate::access::Networks;
use crate::directory::{self, Directory, DirectoryError, Quota, Tenant, TenantStorage};

/// A tenant to create, with the settings it starts with.
#[derive(Debug, Default)]
pub struct NewTenant<'a> {
    pub name: &'a str,
    pub storage: Option<TenantStorage>,
    pub allowed_networks: Option<Networks>,
    pub quota: Option<Quota>,
    /// Created disabled when `false`.
    pub enabled: bool,
    /// Hostnames that select the tenant (TLS SNI, `HOST`).
    pub hostnames: &'a [String],
}

/// Why a workflow stopped, and which part of the request the reason is about (`name`, `storage`,
/// `hostnames`, …), so that each front end can say it its own way.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {error}")]
pub struct Refused {
    pub field: &'static str,
    /// For a hostname, the name refused; otherwise empty.
    pub value: String,
    #[source]
    pub error: DirectoryError,
}

impl Refused {
    fn at(field: &'static str) -> impl FnOnce(DirectoryError) -> Refused {
        move |error| Refused { field, value: String::new(), error }
    }
}

/// Creates a tenant with its settings and hostnames. Everything that can be checked without writing is
/// checked first; a write that still fails removes the tenant again, and the reply names that write.
pub async fn create_tenant(dir: &dyn Directory, new: NewTenant<'_>) -> Result<Tenant, Refused> {
    directory::validate_tenant_name(new.name).map_err(Refused::at("name"))?;
    if let Some(storage) = &new.storage {
        storage.validate().map_err(|e| Refused::at("storage")(e.into()))?;
    }
    for hostname in new.hostnames {
        let refused = |error| Refused { field: "hostnames", value: hostname.clone(), error };
        if dir.tenant_by_hostname(hostname).await.map_err(refused)?.is_some() {
            return Err(refused(DirectoryError::Conflict("hostname")));
        }
    }
    let tenant = dir.create_tenant(new.name).await.map_err(Refused::at("name"))?;
    if let Err(refused) = configure(dir, &tenant, &new).await {
        if let Err(undo) = dir.delete_tenant(tenant.id).await {
            tracing::error!(tenant = %tenant.name, error = %undo, "removing a half-created tenant failed");
        }
        return Err(refused);
    }
    dir.tenant_by_id(tenant.id)
        .await
        .map_err(Refused::at("name"))?
        .ok_or_else(|| Refused::at("name")(DirectoryError::NotFound))
}

async fn configure(dir: &dyn Directory, tenant: &Tenant, new: &NewTenant<'_>) -> Result<(), Refused> {
    if let Some(storage) = new.storage.as_ref().filter(|s| **s != TenantStorage::default()) {
        dir.set_tenant_storage(tenant.id, storage).await.map_err(Refused::at("storage"))?;
    }
    if let Some(networks) = &new.allowed_networks {
        dir.set_tenant_networks(tenant.id, networks).await.map_err(Refused::at("allowed_networks"))?;
    }
    if let Some(quota) = &new.quota {
        dir.set_tenant_quota(tenant.id, quota).await.map_err(Refused::at("quota"))?;
    }
    if !new.enabled {
        dir.set_tenant_enabled(tenant.id, false).await.map_err(Refused::at("enabled"))?;
    }
    for hostname in new.hostnames {
        dir.add_hostname(tenant.id, hostname).await.map_err(|error| Refused {
            field: "hostnames",
            value: hostname.clone(),
            error,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn directory() -> std::sync::Arc<dyn Directory> {
        std::sync::Arc::new(crate::directory::sqlite::SqliteDirectory::open_in_memory().await.unwrap())
    }

    #[tokio::test]
    async fn a_tenant_is_created_with_its_settings_and_hostnames() {
        let dir = directory().await;
        let hostnames = ["ftp.acme.example".to_owned()];
        let quota = Quota { max_bytes: Some(1 << 30), max_files: None };
        let new =
            NewTenant { name: "acme", quota: Some(quota), enabled: false, hostnames: &hostnames, ..Default::default() };
        let tenant = create_tenant(&*dir, new).await.unwrap();
        assert!(!tenant.enabled);
        assert_eq!(dir.hostnames(tenant.id).await.unwrap(), hostnames);
        assert_eq!(dir.tenant_account(tenant.id, chrono::Utc::now()).await.unwrap().quota, quota);
    }

    #[tokio::test]
    async fn a_write_that_fails_leaves_no_tenant_behind() {
        let dir = directory().await;
        let taken = ["ftp.taken.example".to_owned()];
        let first = NewTenant { name: "first", enabled: true, hostnames: &taken, ..Default::default() };
        create_tenant(&*dir, first).await.unwrap();
        // Checked before any write: the hostname belongs to another tenant.
        let second = NewTenant { name: "second", enabled: true, hostnames: &taken, ..Default::default() };
        let refused = create_tenant(&*dir, second).await.unwrap_err();
        assert_eq!((refused.field, refused.value.as_str()), ("hostnames", "ftp.taken.example"));
        assert!(dir.tenant_by_name("second").await.unwrap().is_none());
        // Only found out by writing: the same new hostname twice. The tenant made before it goes again.
        let twice = ["ftp.new.example".to_owned(), "ftp.new.example".to_owned()];
        let third = NewTenant { name: "third", enabled: true, hostnames: &twice, ..Default::default() };
        let refused = create_tenant(&*dir, third).await.unwrap_err();
        assert_eq!(refused.field, "hostnames");
        assert!(matches!(refused.error, DirectoryError::Conflict(_)), "{refused:?}");
        assert!(dir.tenant_by_name("third").await.unwrap().is_none(), "rolled back");
        assert!(dir.tenant_by_hostname("ftp.new.example").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn bad_settings_are_refused_before_anything_is_written() {
        let dir = directory().await;
        let storage = TenantStorage { bucket: Some("UPPER".into()), ..Default::default() };
        let new = NewTenant { name: "acme", storage: Some(storage), enabled: true, ..Default::default() };
        let refused = create_tenant(&*dir, new).await.unwrap_err();
        assert_eq!(refused.field, "storage");
        assert!(dir.tenant_by_name("acme").await.unwrap().is_none());
        let refused = create_tenant(&*dir, NewTenant { name: "Bad Name", ..Default::default() }).await.unwrap_err();
        assert_eq!(refused.field, "name");
    }
}
