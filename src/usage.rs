//! `wharf usage recompute`: a tenant's usage (and each of its users') counted again from storage.
//!
//! The directory keeps usage exact as long as every change goes through wharf; files changed behind its
//! back (or a count lost with a crash between storing and counting) are repaired here. A user's usage is
//! then what lies under the user's home.

use anyhow::Context as _;
use futures_util::StreamExt as _;

use crate::directory::{Directory, Tenant, Usage};
use crate::storage::{StorageKey, StorageProvider};
use crate::vfs::VirtualPath;

/// What [`recompute`] found and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recomputed {
    pub tenant: Usage,
    /// Each user of the tenant by name, with what lies under its home.
    pub users: Vec<(String, Usage)>,
}

/// Lists the tenant's whole tree once and sets the usage of the tenant and of each of its users.
/// Uploads running meanwhile may be missed; run it when the tenant is quiet.
pub async fn recompute(
    directory: &dyn Directory,
    provider: &dyn StorageProvider,
    tenant: &Tenant,
) -> anyhow::Result<Recomputed> {
    let users = directory.list_users(Some(tenant.id)).await?;
    // The whole tree, whoever looks: keys are relative to the tenant's root, not to a user's home; user 0
    // owns no interrupted uploads.
    let storage = provider
        .open(&tenant.storage_owner(), 0)
        .await
        .with_context(|| format!("opening the storage of {}", tenant.name))?;
    let root = VirtualPath::root();
    let homes = users
        .iter()
        .map(|u| {
            let home = root.resolve(&u.home).context("a stored home")?;
            Ok(root.to_key(&home)?.as_str().to_owned())
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let mut total = Usage::default();
    let mut per_user = vec![Usage::default(); users.len()];
    let mut pending = vec![root.to_key(&root)?];
    while let Some(dir) = pending.pop() {
        let mut entries = storage.list(&dir).await.with_context(|| format!("listing {dir}"))?;
        while let Some(entry) = entries.next().await {
            let entry = entry.with_context(|| format!("listing {dir}"))?;
            let key = dir.child(&entry.name);
            if entry.meta.is_dir() {
                pending.push(key);
                continue;
            }
            count(&mut total, entry.meta.size);
            for (home, usage) in homes.iter().zip(per_user.iter_mut()) {
                if under(&key, home) {
                    count(usage, entry.meta.size);
                }
            }
        }
    }
    directory.set_usage(tenant.id, None, total).await?;
    for (user, usage) in users.iter().zip(&per_user) {
        directory.set_usage(tenant.id, Some(user.id), *usage).await?;
    }
    Ok(Recomputed { tenant: total, users: users.into_iter().map(|u| u.username).zip(per_user).collect() })
}

fn count(usage: &mut Usage, size: u64) {
    usage.bytes += size as i64;
    usage.files += 1;
}

/// Whether `key` lies in the folder `home` (a key too; empty for the tenant's root).
fn under(key: &StorageKey, home: &str) -> bool {
    home.is_empty() || key.as_str().strip_prefix(home).is_some_and(|rest| rest.starts_with('/'))
}
