//! The fs backend: each tenant's tree is a folder; uploads go to a hidden temporary name and are renamed
//! into place on commit, so a failed upload is never visible.
//!
//! Keys never reach outside the folder: every operation first walks the key from the root with
//! `symlink_metadata` and refuses any symlink on the way, and listings skip symlinks. Names starting with
//! [`HIDDEN_PREFIX`] belong to wharf: they are left out of listings and cannot be addressed. Clients cannot
//! make symlinks; the walk guards against ones placed on disk by others. A symlink swapped in between the
//! walk and the use is not caught (closing that window needs `openat2(RESOLVE_BENEATH)`).
//!
//! Each operation runs as one blocking closure (walk, then act) on tokio's blocking pool, which keeps the
//! check and the use close together and costs one thread hop instead of one per system call.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};

use self::download::ReadAhead;
use self::upload::FsUpload;
use super::digest::Digest;
use super::{
    Download, Entry, EntryKind, EntryStream, ErrorKind, Metadata, Storage, StorageError, StorageKey, StorageOwner,
    StorageProvider, Upload, WriteMode,
};

mod download;
mod upload;

/// Names wharf keeps for itself; never listed, never addressable by a key.
const HIDDEN_PREFIX: &str = ".wharf-";
/// Uploads in progress, next to their target so the final rename stays inside one directory.
const TEMP_PREFIX: &str = ".wharf-upload-";
/// Directory entries read per trip to the blocking pool.
const LIST_BATCH: usize = 128;

/// One tenant's folder.
#[derive(Debug)]
pub struct FsStorage {
    root: PathBuf,
    fsync: bool,
}

impl FsStorage {
    /// Creates `root` if it is missing. With `fsync`, a commit, rename or directory change is durable when
    /// it returns.
    pub fn new(root: PathBuf, fsync: bool) -> io::Result<Self> {
        fs::create_dir_all(&root)?;
        Ok(FsStorage { root: root.canonicalize()?, fsync })
    }

    /// Runs `op` with the located key on the blocking pool.
    async fn with_key<T, F>(&self, key: &StorageKey, op: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(Located, bool) -> Result<T, StorageError> + Send + 'static,
    {
        let (root, key, fsync) = (self.root.clone(), key.clone(), self.fsync);
        blocking(move || op(locate(&root, &key)?, fsync)).await
    }
}

/// All tenants' folders under one root: tenant `acme` lives in `<root>/acme`.
#[derive(Debug)]
pub struct FsProvider {
    root: PathBuf,
    fsync: bool,
}

impl FsProvider {
    /// Creates `root` if it is missing.
    pub fn new(root: PathBuf, fsync: bool) -> io::Result<Self> {
        fs::create_dir_all(&root)?;
        Ok(FsProvider { root: root.canonicalize()?, fsync })
    }
}

#[async_trait]
impl StorageProvider for FsProvider {
    async fn open(&self, owner: &StorageOwner, _user_id: i64) -> Result<Arc<dyn Storage>, StorageError> {
        // The directory validates names; checked again because this one becomes a path.
        let name = &owner.tenant_name;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(StorageError::new(ErrorKind::Denied));
        }
        let (root, fsync) = (self.root.join(name), self.fsync);
        let storage = blocking(move || FsStorage::new(root, fsync).map_err(io_error)).await?;
        Ok(Arc::new(storage))
    }

    /// The root folder is there.
    async fn ready(&self) -> Result<(), StorageError> {
        match tokio::fs::metadata(&self.root).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(ErrorKind::NotADirectory.into()),
            Err(e) => Err(io_error(e)),
        }
    }
}

/// Where a key lives on disk and what is there now.
struct Located {
    path: PathBuf,
    /// The key's own entry; `None` when it does not exist.
    meta: Option<fs::Metadata>,
    /// Every ancestor exists and is a directory.
    parent_is_dir: bool,
    is_root: bool,
}

impl Located {
    /// The containing directory; callers refuse the root first, whose parent is outside the tree.
    fn parent(&self) -> &Path {
        debug_assert!(!self.is_root);
        self.path.parent().unwrap_or(&self.path)
    }

    fn is_dir(&self) -> bool {
        self.meta.as_ref().is_some_and(fs::Metadata::is_dir)
    }
}

/// Walks `key` down from `root` without following symlinks: a symlink anywhere on the way is refused, as
/// is any name wharf keeps for itself.
fn locate(root: &Path, key: &StorageKey) -> Result<Located, StorageError> {
    let segments: Vec<&str> = if key.is_root() { Vec::new() } else { key.as_str().split('/').collect() };
    // vfs never makes keys with such segments; refused here too because this is where keys become paths.
    let addressable = |s: &&str| !matches!(*s, "" | "." | "..") && !s.contains('\0') && !s.starts_with(HIDDEN_PREFIX);
    if !segments.iter().all(addressable) {
        return Err(StorageError::new(ErrorKind::Denied));
    }
    let mut path = root.to_owned();
    let mut meta = Some(fs::symlink_metadata(root).map_err(io_error)?);
    let mut parent_is_dir = true;
    for segment in &segments {
        parent_is_dir = meta.as_ref().is_some_and(fs::Metadata::is_dir);
        path.push(segment);
        meta = if parent_is_dir { lstat_no_symlink(&path)? } else { None };
    }
    Ok(Located { path, meta, parent_is_dir, is_root: segments.is_empty() })
}

fn lstat_no_symlink(path: &Path) -> Result<Option<fs::Metadata>, StorageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(StorageError::new(ErrorKind::Denied)),
        Ok(meta) => Ok(Some(meta)),
        Err(e) if matches!(io_kind(&e), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(None),
        Err(e) => Err(io_error(e)),
    }
}

#[async_trait]
impl Storage for FsStorage {
    async fn stat(&self, key: &StorageKey) -> Result<Metadata, StorageError> {
        self.with_key(key, |loc, _| loc.meta.as_ref().and_then(metadata_of).ok_or(ErrorKind::NotFound.into())).await
    }

    async fn list(&self, dir: &StorageKey) -> Result<EntryStream, StorageError> {
        let entries = self
            .with_key(dir, |loc, _| match &loc.meta {
                Some(meta) if meta.is_dir() => fs::read_dir(&loc.path).map_err(io_error),
                Some(_) => Err(ErrorKind::NotADirectory.into()),
                None => Err(ErrorKind::NotFound.into()),
            })
            .await?;
        let batches = stream::unfold(Some(entries), |entries| async move {
            let entries = entries?;
            let (batch, rest) =
                blocking(move || Ok(read_batch(entries))).await.unwrap_or_else(|e| (vec![Err(e)], None));
            (!batch.is_empty()).then(|| (stream::iter(batch), rest))
        });
        Ok(batches.flatten().boxed())
    }

    async fn get(&self, key: &StorageKey, offset: u64) -> Result<Download, StorageError> {
        let (file, size) = self
            .with_key(key, move |loc, _| {
                check_file(&loc)?;
                let file = File::open(&loc.path).map_err(io_error)?;
                // Checked again on the open file: the entry may have changed since the walk.
                let meta = file.metadata().map_err(io_error)?;
                if !meta.is_file() {
                    return Err(ErrorKind::IsADirectory.into());
                }
                if offset > meta.len() {
                    return Err(ErrorKind::InvalidOffset.into());
                }
                Ok((file, meta.len()))
            })
            .await?;
        Ok(Download { size, reader: Box::new(ReadAhead::new(file, offset)) })
    }

    async fn put(&self, key: &StorageKey, mode: WriteMode) -> Result<Box<dyn Upload>, StorageError> {
        let (file, temp, target, fsync, keep) = self
            .with_key(key, move |loc, fsync| {
                if loc.is_root || loc.is_dir() {
                    return Err(ErrorKind::IsADirectory.into());
                }
                if !loc.parent_is_dir {
                    return Err(ErrorKind::NotFound.into());
                }
                let existing = match &loc.meta {
                    Some(meta) if meta.is_file() => Some(meta.len()),
                    Some(_) => return Err(ErrorKind::Denied.into()),
                    None => None,
                };
                let keep = match (mode, existing) {
                    (WriteMode::Create, _) | (WriteMode::Append, None) | (WriteMode::Resume(0), None) => 0,
                    (WriteMode::Append, Some(len)) => len,
                    (WriteMode::Resume(offset), Some(len)) if offset <= len => offset,
                    (WriteMode::Resume(_), _) => return Err(ErrorKind::InvalidOffset.into()),
                };
                let (file, temp) = TempPath::create(loc.parent())?;
                Ok((file, temp, loc.path, fsync, keep))
            })
            .await?;
        Ok(Box::new(FsUpload::new(file, temp, target, fsync, keep)))
    }

    async fn delete(&self, key: &StorageKey) -> Result<u64, StorageError> {
        self.with_key(key, |loc, fsync| {
            check_file(&loc)?;
            let size = loc.meta.as_ref().map_or(0, fs::Metadata::len);
            fs::remove_file(&loc.path).map_err(io_error)?;
            sync_dir_if(fsync, loc.parent())?;
            Ok(size)
        })
        .await
    }

    async fn make_dir(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.with_key(key, |loc, fsync| {
            if loc.meta.is_some() {
                return Err(ErrorKind::AlreadyExists.into());
            }
            if !loc.parent_is_dir {
                return Err(ErrorKind::NotFound.into());
            }
            fs::create_dir(&loc.path).map_err(io_error)?;
            sync_dir_if(fsync, loc.parent())
        })
        .await
    }

    async fn remove_dir(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.with_key(key, |loc, fsync| {
            if loc.is_root {
                return Err(ErrorKind::Denied.into());
            }
            match &loc.meta {
                Some(meta) if meta.is_dir() => {}
                Some(_) => return Err(ErrorKind::NotADirectory.into()),
                None => return Err(ErrorKind::NotFound.into()),
            }
            remove_leftover_uploads(&loc.path)?;
            fs::remove_dir(&loc.path).map_err(io_error)?;
            sync_dir_if(fsync, loc.parent())
        })
        .await
    }

    async fn rename(&self, from: &StorageKey, to: &StorageKey) -> Result<(), StorageError> {
        let (root, from, to, fsync) = (self.root.clone(), from.clone(), to.clone(), self.fsync);
        blocking(move || {
            let source = locate(&root, &from)?;
            let target = locate(&root, &to)?;
            if source.is_root || target.is_root {
                return Err(ErrorKind::Denied.into());
            }
            let source_is_dir = match &source.meta {
                Some(meta) if meta.is_dir() => true,
                Some(meta) if meta.is_file() => false,
                _ => return Err(ErrorKind::NotFound.into()),
            };
            if source_is_dir && to.as_str().starts_with(&format!("{}/", from.as_str())) {
                return Err(ErrorKind::Denied.into());
            }
            if !target.parent_is_dir {
                return Err(ErrorKind::NotFound.into());
            }
            // Only a file replaces a file; anything else already there is in the way.
            if target.meta.as_ref().is_some_and(|meta| source_is_dir || !meta.is_file()) {
                return Err(ErrorKind::AlreadyExists.into());
            }
            if from == to {
                return Ok(());
            }
            fs::rename(&source.path, &target.path).map_err(io_error)?;
            sync_dir_if(fsync, source.parent())?;
            if target.parent() != source.parent() {
                sync_dir_if(fsync, target.parent())?;
            }
            Ok(())
        })
        .await
    }

    async fn set_modified(&self, key: &StorageKey, time: SystemTime) -> Result<(), StorageError> {
        self.with_key(key, move |loc, _| {
            if loc.meta.as_ref().and_then(metadata_of).is_none() {
                return Err(ErrorKind::NotFound.into());
            }
            File::open(&loc.path).and_then(|file| file.set_modified(time)).map_err(io_error)
        })
        .await
    }

    /// A local file is cheap to read again, so its checksums are computed on demand.
    async fn digest(&self, key: &StorageKey) -> Result<Option<Digest>, StorageError> {
        self.with_key(key, |loc, _| {
            check_file(&loc)?;
            let mut file = File::open(&loc.path).map_err(io_error)?;
            let mut digest = Digest::default();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match io::Read::read(&mut file, &mut buf).map_err(io_error)? {
                    0 => return Ok(Some(digest)),
                    n => digest.update(&buf[..n]),
                }
            }
        })
        .await
    }
}

/// A temporary upload file, removed when dropped unless disarmed. Removal is synchronous so that an upload
/// dropped with its cancelled task leaves nothing behind, even while the runtime shuts down.
struct TempPath(Option<PathBuf>);

impl TempPath {
    /// Creates a fresh hidden file in `dir`.
    fn create(dir: &Path) -> Result<(File, TempPath), StorageError> {
        let path = dir.join(format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>()));
        let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(io_error)?;
        Ok((file, TempPath(Some(path))))
    }

    fn path(&self) -> &Path {
        self.0.as_deref().expect("a temp path is only disarmed when consumed")
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Copies the first `len` bytes of `source` to the start of `file` (in the kernel where it can:
/// `copy_file_range`).
fn copy_prefix(source: &Path, file: &File, len: u64) -> Result<(), StorageError> {
    let source = File::open(source).map_err(io_error)?;
    let copied = io::copy(&mut io::Read::take(source, len), &mut &*file).map_err(io_error)?;
    if copied < len {
        // The file shrank since it was measured.
        return Err(ErrorKind::InvalidOffset.into());
    }
    Ok(())
}

/// A directory holding only uploads that a crash left behind is empty: remove them. Anything else present
/// means it is not empty, and then nothing is removed. An upload still running there fails at commit, as
/// it would have if its directory had been removed a moment earlier.
fn remove_leftover_uploads(dir: &Path) -> Result<(), StorageError> {
    let mut leftovers = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let is_upload = entry.file_name().to_str().is_some_and(|name| name.starts_with(TEMP_PREFIX));
        if !is_upload || !entry.file_type().map_err(io_error)?.is_file() {
            return Err(ErrorKind::NotEmpty.into());
        }
        leftovers.push(entry.path());
    }
    for path in leftovers {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error(e)),
            _ => {}
        }
    }
    Ok(())
}

/// Reads up to [`LIST_BATCH`] visible entries; the directory comes back unless it is exhausted.
fn read_batch(mut entries: fs::ReadDir) -> (Vec<Result<Entry, StorageError>>, Option<fs::ReadDir>) {
    let mut batch = Vec::with_capacity(LIST_BATCH);
    while batch.len() < LIST_BATCH {
        match entries.next() {
            None => return (batch, None),
            Some(Err(e)) => {
                batch.push(Err(io_error(e)));
                return (batch, None);
            }
            Some(Ok(entry)) => {
                if let Some(entry) = list_entry(&entry).transpose() {
                    batch.push(entry);
                }
            }
        }
    }
    (batch, Some(entries))
}

/// The listing entry for `entry`, or `None` when clients must not see it: wharf's own files, symlinks,
/// special files, and names that are not UTF-8 or break the key rule ([`StorageKey::check_segment`]) (a name holding CR LF would
/// otherwise forge lines in a listing).
fn list_entry(entry: &fs::DirEntry) -> Result<Option<Entry>, StorageError> {
    let Ok(name) = entry.file_name().into_string() else { return Ok(None) };
    if name.starts_with(HIDDEN_PREFIX) || StorageKey::check_segment(&name).is_err() {
        return Ok(None);
    }
    // `DirEntry::metadata` does not follow symlinks, so a symlink yields no `Metadata` below.
    let meta = match entry.metadata() {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(e)),
    };
    Ok(metadata_of(&meta).map(|meta| Entry { name, meta }))
}

/// What a client may see of a file or directory; `None` for symlinks and special files.
fn metadata_of(meta: &fs::Metadata) -> Option<Metadata> {
    let (kind, size) = if meta.is_dir() {
        (EntryKind::Dir, 0)
    } else if meta.is_file() {
        (EntryKind::File, meta.len())
    } else {
        return None;
    };
    Some(Metadata { kind, size, modified: meta.modified().ok() })
}

fn check_file(loc: &Located) -> Result<(), StorageError> {
    match &loc.meta {
        Some(meta) if meta.is_file() => Ok(()),
        Some(meta) if meta.is_dir() => Err(ErrorKind::IsADirectory.into()),
        _ => Err(ErrorKind::NotFound.into()),
    }
}

/// Makes a change to the entries of `dir` durable.
fn sync_dir_if(fsync: bool, dir: &Path) -> Result<(), StorageError> {
    if fsync {
        File::open(dir).and_then(|dir| dir.sync_all()).map_err(io_error)?;
    }
    Ok(())
}

async fn blocking<T, F>(op: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    tokio::task::spawn_blocking(op).await.map_err(|e| StorageError::with_source(ErrorKind::Internal, e))?
}

fn io_error(e: io::Error) -> StorageError {
    StorageError::with_source(io_kind(&e), e)
}

/// What an I/O error means to a client.
fn io_kind(e: &io::Error) -> ErrorKind {
    use io::ErrorKind as Io;
    match e.kind() {
        Io::NotFound => ErrorKind::NotFound,
        Io::PermissionDenied | Io::ReadOnlyFilesystem => ErrorKind::Denied,
        Io::AlreadyExists => ErrorKind::AlreadyExists,
        Io::NotADirectory => ErrorKind::NotADirectory,
        Io::IsADirectory => ErrorKind::IsADirectory,
        Io::DirectoryNotEmpty => ErrorKind::NotEmpty,
        Io::StorageFull | Io::QuotaExceeded | Io::FileTooLarge => ErrorKind::QuotaExceeded,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests;
