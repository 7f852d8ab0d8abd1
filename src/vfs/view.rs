//! A logged-in user's view of the tenant's storage: the one door through which a front end reaches
//! storage. It takes [`VirtualPath`]s, maps them under the user's home, checks the user's permissions at
//! each path, and applies quotas (uploads reserve room; deletes and replacing renames give it back), so no
//! front end can skip either.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use super::quota::{self, Ledger, QuotaStore};
use super::{VfsError, VirtualPath};
use crate::access::{Access, Permission, Permissions};
use crate::storage::digest::Digest;
use crate::storage::{
    Download, EntryStream, ErrorKind, Metadata, Storage, StorageError, StorageKey, Upload, WriteMode,
};

/// How long a view trusts what it read about its quotas (whether any applies) before reading again, so
/// that a quota set meanwhile holds for running sessions too.
pub const QUOTA_RECHECK: std::time::Duration = std::time::Duration::from_secs(15);

/// Why an operation on a view failed: a path that cannot be stored, or the storage's own answer.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Path(#[from] VfsError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The user's permissions at `path` lack `missing`.
    #[error("no {} access to {path}", missing.iter().map(Permission::name).collect::<Vec<_>>().join(" or "))]
    Denied { path: VirtualPath, missing: Permissions },
}

impl From<ErrorKind> for ViewError {
    fn from(kind: ErrorKind) -> Self {
        ViewError::Storage(kind.into())
    }
}

/// Whose view it is and where quotas are kept.
pub struct ViewOwner {
    pub tenant_id: i64,
    pub user_id: i64,
    /// What the user may do where.
    pub access: Access,
    pub quotas: Arc<dyn QuotaStore>,
    /// Whether a quota applied when the user logged in.
    pub limited: bool,
}

/// Cheap to clone: the clones share the storage and what was last read about quotas.
#[derive(Clone)]
pub struct UserView(Arc<Inner>);

struct Inner {
    storage: Arc<dyn Storage>,
    home: VirtualPath,
    access: Access,
    ledger: Ledger,
    /// Whether a quota applies, and when that was read.
    limited: Mutex<(bool, Instant)>,
}

impl UserView {
    /// The view of a user whose home is `home` (a path in the tenant's tree) on `storage`.
    pub fn new(storage: Arc<dyn Storage>, home: VirtualPath, owner: ViewOwner) -> UserView {
        let ledger = Ledger { store: owner.quotas, tenant_id: owner.tenant_id, user_id: owner.user_id };
        let limited = Mutex::new((owner.limited, Instant::now()));
        UserView(Arc::new(Inner { storage, home, access: owner.access, ledger, limited }))
    }

    /// The user's home, as a path in the tenant's tree.
    pub fn home(&self) -> &VirtualPath {
        &self.0.home
    }

    fn key(&self, path: &VirtualPath) -> Result<StorageKey, VfsError> {
        path.to_key(&self.0.home)
    }

    /// The key of `path` when the user holds every permission in `needs` there.
    fn allowed(&self, path: &VirtualPath, needs: &[Permission]) -> Result<StorageKey, ViewError> {
        let missing = Permissions::of(needs).missing_from(self.0.access.at(path));
        if !missing.is_empty() {
            return Err(ViewError::Denied { path: path.clone(), missing });
        }
        Ok(self.key(path)?)
    }

    /// Creates the home (and its parents) if missing, so a new user can log in to an empty tree; a file
    /// in its place is [`ErrorKind::NotADirectory`].
    pub async fn ensure_home(&self) -> Result<(), ViewError> {
        let storage = &self.0.storage;
        let mut key = VirtualPath::root().to_key(&VirtualPath::root())?;
        for segment in self.0.home.segments() {
            key = key.child(segment);
            match storage.stat(&key).await {
                Ok(meta) if meta.is_dir() => continue,
                Ok(_) => return Err(ErrorKind::NotADirectory.into()),
                Err(e) if e.kind() == ErrorKind::NotFound => match storage.make_dir(&key).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// An entry's kind, size and time. No permission is checked: a front end checks the one its command
    /// needs (reading a size, listing a directory), as moving into a directory needs none.
    pub async fn stat(&self, path: &VirtualPath) -> Result<Metadata, ViewError> {
        Ok(self.0.storage.stat(&self.key(path)?).await?)
    }

    pub async fn list(&self, path: &VirtualPath) -> Result<EntryStream, ViewError> {
        Ok(self.0.storage.list(&self.allowed(path, &[Permission::List])?).await?)
    }

    /// The file's bytes from `offset` on.
    pub async fn get(&self, path: &VirtualPath, offset: u64) -> Result<Download, ViewError> {
        Ok(self.0.storage.get(&self.allowed(path, &[Permission::Read])?, offset).await?)
    }

    /// An upload to `path`, inside the quotas: room is reserved before it starts (all of `announced`, the
    /// size ALLO gave, when known) and as its bytes arrive; its commit counts the new size.
    pub async fn put(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
        announced: Option<u64>,
    ) -> Result<Box<dyn Upload>, ViewError> {
        let key = self.allowed(path, &[Permission::Write])?;
        let storage = &self.0.storage;
        let limited = self.limited().await;
        let hold = quota::reserve(self.0.ledger.clone(), limited, &**storage, &key, mode, announced).await?;
        match storage.put(&key, mode).await {
            Ok(upload) => Ok(hold.attach(upload, storage.clone(), key)),
            Err(e) => {
                hold.release().await;
                Err(e.into())
            }
        }
    }

    /// Deletes a file; its bytes leave the usage.
    pub async fn delete(&self, path: &VirtualPath) -> Result<(), ViewError> {
        let size = self.0.storage.delete(&self.allowed(path, &[Permission::Delete])?).await?;
        self.0.ledger.removed(size).await;
        Ok(())
    }

    /// Renames a file or directory; a file it replaces leaves the usage, the moved one stays counted.
    pub async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), ViewError> {
        let from = self.allowed(from, &[Permission::Rename])?;
        let to = self.allowed(to, &[Permission::Rename, Permission::Write])?;
        let storage = &self.0.storage;
        let replaced = match from == to {
            true => None,
            false => quota::file_size(&**storage, &to).await,
        };
        storage.rename(&from, &to).await?;
        if let Some(size) = replaced {
            self.0.ledger.removed(size).await;
        }
        Ok(())
    }

    pub async fn make_dir(&self, path: &VirtualPath) -> Result<(), ViewError> {
        Ok(self.0.storage.make_dir(&self.allowed(path, &[Permission::Mkdir])?).await?)
    }

    pub async fn remove_dir(&self, path: &VirtualPath) -> Result<(), ViewError> {
        Ok(self.0.storage.remove_dir(&self.allowed(path, &[Permission::Delete])?).await?)
    }

    pub async fn set_modified(&self, path: &VirtualPath, when: SystemTime) -> Result<(), ViewError> {
        Ok(self.0.storage.set_modified(&self.allowed(path, &[Permission::Write])?, when).await?)
    }

    /// The checksums recorded when the file was stored, if any.
    pub async fn digest(&self, path: &VirtualPath) -> Result<Option<Digest>, ViewError> {
        Ok(self.0.storage.digest(&self.allowed(path, &[Permission::Read])?).await?)
    }

    /// The length of this user's interrupted upload of `path`, kept for a resume.
    pub async fn resumable_size(&self, path: &VirtualPath) -> Result<Option<u64>, ViewError> {
        Ok(self.0.storage.resumable_size(&self.allowed(path, &[Permission::Read])?).await?)
    }

    /// Whether a quota applies, read again once what is known is older than [`QUOTA_RECHECK`].
    async fn limited(&self) -> bool {
        let (limited, read_at) = *self.0.limited.lock().expect("not poisoned");
        if read_at.elapsed() < QUOTA_RECHECK {
            return limited;
        }
        let limited = quota::limited(&self.0.ledger).await;
        *self.0.limited.lock().expect("not poisoned") = (limited, Instant::now());
        limited
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::FsStorage;

    fn path(p: &str) -> VirtualPath {
        VirtualPath::root().resolve(p).unwrap()
    }

    async fn view(dir: &std::path::Path, access: Access) -> UserView {
        let storage = Arc::new(FsStorage::new(dir.join("tenant"), false).unwrap());
        let directory = crate::directory::sqlite::SqliteDirectory::open_in_memory().await.unwrap();
        let quotas = Arc::new(crate::directory::QuotaAccounts(Arc::new(directory)));
        let owner = ViewOwner { tenant_id: 1, user_id: 1, access, quotas, limited: false };
        UserView::new(storage, path("/home"), owner)
    }

    async fn store(view: &UserView, at: &str) -> Result<(), ViewError> {
        let mut upload = view.put(&path(at), WriteMode::Create, None).await?;
        upload.write(b"bytes").await?;
        upload.commit().await?;
        Ok(())
    }

    fn denied<T: std::fmt::Debug>(result: Result<T, ViewError>) -> String {
        match result {
            Err(e @ ViewError::Denied { .. }) => e.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Every operation checks the user's permission at its path, whichever front end calls it.
    #[tokio::test]
    async fn every_operation_checks_the_permissions_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let reader = Permissions::of(&[Permission::List, Permission::Read]);
        let view = view(dir.path(), Access::new(reader, [(path("/in"), Permissions::ALL)])).await;
        view.ensure_home().await.unwrap();
        view.make_dir(&path("/in")).await.unwrap();
        assert_eq!(denied(view.make_dir(&path("/out")).await), "no mkdir access to /out");
        assert_eq!(denied(store(&view, "/top.txt").await), "no write access to /top.txt");
        store(&view, "/in/a.txt").await.unwrap();
        assert!(dir.path().join("tenant/home/in/a.txt").is_file());
        assert_eq!(view.get(&path("/in/a.txt"), 0).await.unwrap().size, 5);
        assert_eq!(
            denied(view.rename(&path("/in/a.txt"), &path("/a.txt")).await),
            "no write or rename access to /a.txt"
        );
        assert_eq!(denied(view.set_modified(&path("/x"), SystemTime::now()).await), "no write access to /x");
        assert_eq!(denied(view.delete(&path("/x")).await), "no delete access to /x");
        assert_eq!(denied(view.remove_dir(&path("/x")).await), "no delete access to /x");
        view.rename(&path("/in/a.txt"), &path("/in/b.txt")).await.unwrap();
        view.delete(&path("/in/b.txt")).await.unwrap();
        drop(view.list(&path("/")).await.unwrap());

        let blind = self::view(dir.path(), Access::new(Permissions::NONE, [])).await;
        assert_eq!(denied(blind.list(&path("/")).await.map(|_| ())), "no list access to /");
        assert_eq!(denied(blind.get(&path("/f"), 0).await.map(|d| d.size)), "no read access to /f");
        assert_eq!(denied(blind.digest(&path("/f")).await), "no read access to /f");
        assert_eq!(denied(blind.resumable_size(&path("/f")).await), "no read access to /f");
    }
}
