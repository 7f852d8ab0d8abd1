//! A logged-in user's view of the tenant's storage: the one door through which a front end reaches
//! storage. It takes [`VirtualPath`]s, maps them under the user's home, and applies quotas (uploads
//! reserve room; deletes and replacing renames give it back), so no front end can skip them.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use super::quota::{self, Ledger, QuotaStore};
use super::{VfsError, VirtualPath};
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
    ledger: Ledger,
    /// Whether a quota applies, and when that was read.
    limited: Mutex<(bool, Instant)>,
}

impl UserView {
    /// The view of a user whose home is `home` (a path in the tenant's tree) on `storage`.
    pub fn new(storage: Arc<dyn Storage>, home: VirtualPath, owner: ViewOwner) -> UserView {
        let ledger = Ledger { store: owner.quotas, tenant_id: owner.tenant_id, user_id: owner.user_id };
        UserView(Arc::new(Inner { storage, home, ledger, limited: Mutex::new((owner.limited, Instant::now())) }))
    }

    /// The user's home, as a path in the tenant's tree.
    pub fn home(&self) -> &VirtualPath {
        &self.0.home
    }

    fn key(&self, path: &VirtualPath) -> Result<StorageKey, VfsError> {
        path.to_key(&self.0.home)
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

    pub async fn stat(&self, path: &VirtualPath) -> Result<Metadata, ViewError> {
        Ok(self.0.storage.stat(&self.key(path)?).await?)
    }

    pub async fn list(&self, path: &VirtualPath) -> Result<EntryStream, ViewError> {
        Ok(self.0.storage.list(&self.key(path)?).await?)
    }

    /// The file's bytes from `offset` on.
    pub async fn get(&self, path: &VirtualPath, offset: u64) -> Result<Download, ViewError> {
        Ok(self.0.storage.get(&self.key(path)?, offset).await?)
    }

    /// An upload to `path`, inside the quotas: room is reserved before it starts (all of `announced`, the
    /// size ALLO gave, when known) and as its bytes arrive; its commit counts the new size.
    pub async fn put(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
        announced: Option<u64>,
    ) -> Result<Box<dyn Upload>, ViewError> {
        let key = self.key(path)?;
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
        let size = self.0.storage.delete(&self.key(path)?).await?;
        self.0.ledger.removed(size).await;
        Ok(())
    }

    /// Renames a file or directory; a file it replaces leaves the usage, the moved one stays counted.
    pub async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), ViewError> {
        let (from, to) = (self.key(from)?, self.key(to)?);
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
        Ok(self.0.storage.make_dir(&self.key(path)?).await?)
    }

    pub async fn remove_dir(&self, path: &VirtualPath) -> Result<(), ViewError> {
        Ok(self.0.storage.remove_dir(&self.key(path)?).await?)
    }

    pub async fn set_modified(&self, path: &VirtualPath, when: SystemTime) -> Result<(), ViewError> {
        Ok(self.0.storage.set_modified(&self.key(path)?, when).await?)
    }

    /// The checksums recorded when the file was stored, if any.
    pub async fn digest(&self, path: &VirtualPath) -> Result<Option<Digest>, ViewError> {
        Ok(self.0.storage.digest(&self.key(path)?).await?)
    }

    /// The length of this user's interrupted upload of `path`, kept for a resume.
    pub async fn resumable_size(&self, path: &VirtualPath) -> Result<Option<u64>, ViewError> {
        Ok(self.0.storage.resumable_size(&self.key(path)?).await?)
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
