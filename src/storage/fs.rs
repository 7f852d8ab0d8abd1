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
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};

use super::{
    Download, Entry, EntryKind, EntryStream, ErrorKind, Metadata, Storage, StorageError, StorageKey, StorageProvider,
    Upload, WriteMode,
};

/// Names wharf keeps for itself; never listed, never addressable by a key.
const HIDDEN_PREFIX: &str = ".wharf-";
/// Uploads in progress, next to their target so the final rename stays inside one directory.
const TEMP_PREFIX: &str = ".wharf-upload-";
/// Buffer for downloads and uploads: large enough that a transfer is a few system calls per megabyte.
const IO_BUFFER: usize = 256 * 1024;
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
    async fn open(&self, tenant: &crate::directory::Tenant) -> Result<Arc<dyn Storage>, StorageError> {
        // The directory validates names; checked again because this one becomes a path.
        let name = &tenant.name;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(StorageError::new(ErrorKind::Denied));
        }
        let (root, fsync) = (self.root.join(name), self.fsync);
        let storage = blocking(move || FsStorage::new(root, fsync).map_err(io_error)).await?;
        Ok(Arc::new(storage))
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
                let mut file = File::open(&loc.path).map_err(io_error)?;
                // Checked again on the open file: the entry may have changed since the walk.
                let meta = file.metadata().map_err(io_error)?;
                if !meta.is_file() {
                    return Err(ErrorKind::IsADirectory.into());
                }
                if offset > meta.len() {
                    return Err(ErrorKind::InvalidOffset.into());
                }
                file.seek(SeekFrom::Start(offset)).map_err(io_error)?;
                Ok((file, meta.len()))
            })
            .await?;
        let reader = BufReader::with_capacity(IO_BUFFER, tokio::fs::File::from_std(file));
        Ok(Download { size, reader: Box::new(reader) })
    }

    async fn put(&self, key: &StorageKey, mode: WriteMode) -> Result<Box<dyn Upload>, StorageError> {
        let (file, temp, target, fsync) = self
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
                let (mut file, temp) = TempPath::create(loc.parent())?;
                if keep > 0 {
                    copy_prefix(&loc.path, &mut file, keep)?;
                }
                Ok((file, temp, loc.path, fsync))
            })
            .await?;
        let writer = BufWriter::with_capacity(IO_BUFFER, tokio::fs::File::from_std(file));
        Ok(Box::new(FsUpload { writer, temp, target, fsync }))
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.with_key(key, |loc, fsync| {
            check_file(&loc)?;
            fs::remove_file(&loc.path).map_err(io_error)?;
            sync_dir_if(fsync, loc.parent())
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
}

/// An upload writing to a hidden temporary file next to its target.
struct FsUpload {
    writer: BufWriter<tokio::fs::File>,
    temp: TempPath,
    target: PathBuf,
    fsync: bool,
}

#[async_trait]
impl Upload for FsUpload {
    async fn write(&mut self, buf: &[u8]) -> Result<(), StorageError> {
        self.writer.write_all(buf).await.map_err(io_error)
    }

    async fn commit(self: Box<Self>) -> Result<u64, StorageError> {
        let FsUpload { mut writer, temp, target, fsync } = *self;
        writer.flush().await.map_err(io_error)?;
        let file = writer.into_inner();
        if fsync {
            file.sync_all().await.map_err(io_error)?;
        }
        let size = file.metadata().await.map_err(io_error)?.len();
        drop(file);
        blocking(move || {
            fs::rename(temp.path(), &target).map_err(io_error)?;
            temp.disarm();
            sync_dir_if(fsync, target.parent().unwrap_or(&target))?;
            Ok(size)
        })
        .await
    }

    async fn abort(self: Box<Self>) {
        let FsUpload { writer, temp, .. } = *self;
        drop(writer);
        let _ = tokio::fs::remove_file(temp.path()).await;
        temp.disarm();
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

/// Copies the first `len` bytes of `source` into `file` (in the kernel where it can: `copy_file_range`).
fn copy_prefix(source: &Path, file: &mut File, len: u64) -> Result<(), StorageError> {
    let source = File::open(source).map_err(io_error)?;
    let copied = io::copy(&mut io::Read::take(source, len), file).map_err(io_error)?;
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
/// special files, and names that are not UTF-8 or that vfs would refuse (a name holding CR LF would
/// otherwise forge lines in a listing).
fn list_entry(entry: &fs::DirEntry) -> Result<Option<Entry>, StorageError> {
    let Ok(name) = entry.file_name().into_string() else { return Ok(None) };
    if name.starts_with(HIDDEN_PREFIX) || crate::vfs::VirtualPath::root().join(&name).is_err() {
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
mod tests {
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    use futures_util::TryStreamExt;
    use tokio::io::AsyncReadExt;

    use super::*;

    fn key(s: &str) -> StorageKey {
        StorageKey::from_normalised(s.to_owned())
    }

    fn storage(fsync: bool) -> (tempfile::TempDir, FsStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path().join("tenant"), fsync).unwrap();
        (dir, storage)
    }

    async fn put(storage: &FsStorage, k: &str, mode: WriteMode, data: &[u8]) -> Result<u64, StorageError> {
        let mut upload = storage.put(&key(k), mode).await?;
        for chunk in data.chunks(100_000) {
            upload.write(chunk).await?;
        }
        upload.commit().await
    }

    async fn read(storage: &FsStorage, k: &str, offset: u64) -> Result<(u64, Vec<u8>), StorageError> {
        let mut download = storage.get(&key(k), offset).await?;
        let mut data = Vec::new();
        download.reader.read_to_end(&mut data).await.unwrap();
        Ok((download.size, data))
    }

    async fn listed(storage: &FsStorage, k: &str) -> Result<Vec<(String, EntryKind, u64)>, StorageError> {
        let mut entries: Vec<_> =
            storage.list(&key(k)).await?.map_ok(|e| (e.name, e.meta.kind, e.meta.size)).try_collect().await?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// What is really on disk, hidden names included.
    fn on_disk(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    fn kind<T>(result: Result<T, StorageError>) -> ErrorKind {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.kind(),
        }
    }

    #[tokio::test]
    async fn put_then_get_from_offsets() {
        for fsync in [false, true] {
            let (_dir, s) = storage(fsync);
            let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
            assert_eq!(put(&s, "big.bin", WriteMode::Create, &data).await.unwrap(), 700_000);
            assert_eq!(read(&s, "big.bin", 0).await.unwrap(), (700_000, data.clone()));
            assert_eq!(read(&s, "big.bin", 300_001).await.unwrap(), (700_000, data[300_001..].to_vec()));
            assert_eq!(read(&s, "big.bin", 700_000).await.unwrap(), (700_000, Vec::new()));
            assert_eq!(kind(s.get(&key("big.bin"), 700_001).await), ErrorKind::InvalidOffset);
            let meta = s.stat(&key("big.bin")).await.unwrap();
            assert_eq!((meta.kind, meta.size), (EntryKind::File, 700_000));
            assert!(meta.modified.is_some());
        }
    }

    #[tokio::test]
    async fn create_replaces_only_on_commit() {
        let (_dir, s) = storage(false);
        put(&s, "f", WriteMode::Create, b"old").await.unwrap();
        let mut upload = s.put(&key("f"), WriteMode::Create).await.unwrap();
        upload.write(b"new content").await.unwrap();
        assert_eq!(read(&s, "f", 0).await.unwrap().1, b"old");
        assert_eq!(on_disk(&s.root).len(), 2, "the upload's temp file sits next to its target");
        assert_eq!(listed(&s, "").await.unwrap(), [("f".to_owned(), EntryKind::File, 3)]);
        assert_eq!(upload.commit().await.unwrap(), 11);
        assert_eq!(read(&s, "f", 0).await.unwrap().1, b"new content");
        assert_eq!(on_disk(&s.root), ["f"]);
    }

    #[tokio::test]
    async fn abort_drop_and_cancel_leave_nothing() {
        let (_dir, s) = storage(false);
        let mut upload = s.put(&key("a"), WriteMode::Create).await.unwrap();
        upload.write(b"data").await.unwrap();
        upload.abort().await;
        assert!(on_disk(&s.root).is_empty());

        let mut upload = s.put(&key("a"), WriteMode::Create).await.unwrap();
        upload.write(&[7; 300_000]).await.unwrap();
        drop(upload);
        assert!(on_disk(&s.root).is_empty());

        put(&s, "kept", WriteMode::Create, b"old").await.unwrap();
        let s = Arc::new(s);
        let (started, wait) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let s = s.clone();
            async move {
                let mut upload = s.put(&key("kept"), WriteMode::Append).await.unwrap();
                upload.write(b"more").await.unwrap();
                started.send(()).unwrap();
                std::future::pending::<()>().await;
            }
        });
        wait.await.unwrap();
        assert_eq!(on_disk(&s.root).len(), 2);
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(on_disk(&s.root), ["kept"]);
        assert_eq!(read(&s, "kept", 0).await.unwrap().1, b"old");
    }

    #[tokio::test]
    async fn append_and_resume() {
        let (_dir, s) = storage(false);
        put(&s, "log", WriteMode::Append, b"one ").await.unwrap();
        assert_eq!(put(&s, "log", WriteMode::Append, b"two").await.unwrap(), 7);
        assert_eq!(read(&s, "log", 0).await.unwrap().1, b"one two");

        put(&s, "r", WriteMode::Create, b"abcdef").await.unwrap();
        assert_eq!(put(&s, "r", WriteMode::Resume(3), b"XY").await.unwrap(), 5);
        assert_eq!(read(&s, "r", 0).await.unwrap().1, b"abcXY");
        assert_eq!(put(&s, "r", WriteMode::Resume(5), b"Z").await.unwrap(), 6);
        assert_eq!(read(&s, "r", 0).await.unwrap().1, b"abcXYZ");
        assert_eq!(kind(s.put(&key("r"), WriteMode::Resume(7)).await), ErrorKind::InvalidOffset);
        assert_eq!(read(&s, "r", 0).await.unwrap().1, b"abcXYZ");

        assert_eq!(kind(s.put(&key("missing"), WriteMode::Resume(1)).await), ErrorKind::InvalidOffset);
        assert_eq!(put(&s, "fresh", WriteMode::Resume(0), b"new").await.unwrap(), 3);
        assert_eq!(on_disk(&s.root), ["fresh", "log", "r"]);
    }

    #[tokio::test]
    async fn put_and_get_refuse_the_wrong_kind_of_entry() {
        let (_dir, s) = storage(false);
        s.make_dir(&key("d")).await.unwrap();
        put(&s, "f", WriteMode::Create, b"x").await.unwrap();
        assert_eq!(kind(s.get(&key("d"), 0).await), ErrorKind::IsADirectory);
        assert_eq!(kind(s.get(&key(""), 0).await), ErrorKind::IsADirectory);
        assert_eq!(kind(s.get(&key("nope"), 0).await), ErrorKind::NotFound);
        assert_eq!(kind(s.put(&key("d"), WriteMode::Create).await), ErrorKind::IsADirectory);
        assert_eq!(kind(s.put(&key("nope/f"), WriteMode::Create).await), ErrorKind::NotFound);
        assert_eq!(kind(s.put(&key("f/g"), WriteMode::Create).await), ErrorKind::NotFound);
        assert_eq!(kind(s.stat(&key("f/g")).await), ErrorKind::NotFound);
        assert_eq!(kind(s.delete(&key("d")).await), ErrorKind::IsADirectory);
        assert_eq!(kind(s.delete(&key("nope")).await), ErrorKind::NotFound);
        assert_eq!(kind(s.list(&key("f")).await), ErrorKind::NotADirectory);
        assert_eq!(kind(s.list(&key("nope")).await), ErrorKind::NotFound);
        s.delete(&key("f")).await.unwrap();
        assert_eq!(on_disk(&s.root), ["d"]);
        let root = s.stat(&key("")).await.unwrap();
        assert_eq!((root.kind, root.size), (EntryKind::Dir, 0));
    }

    #[tokio::test]
    async fn wharf_names_are_hidden_and_unaddressable() {
        let (_dir, s) = storage(false);
        fs::write(s.root.join(".wharf-upload-0123"), b"crash leftover").unwrap();
        for k in [".wharf-upload-0123", ".wharf-x", ".wharf-x/y"] {
            assert_eq!(kind(s.stat(&key(k)).await), ErrorKind::Denied, "{k}");
            assert_eq!(kind(s.get(&key(k), 0).await), ErrorKind::Denied, "{k}");
            assert_eq!(kind(s.put(&key(k), WriteMode::Create).await), ErrorKind::Denied, "{k}");
            assert_eq!(kind(s.delete(&key(k)).await), ErrorKind::Denied, "{k}");
            assert_eq!(kind(s.make_dir(&key(k)).await), ErrorKind::Denied, "{k}");
        }
        assert_eq!(listed(&s, "").await.unwrap(), []);
    }

    #[tokio::test]
    async fn list_streams_visible_entries_only() {
        let (_dir, s) = storage(false);
        s.make_dir(&key("sub")).await.unwrap();
        for i in 0..300 {
            fs::write(s.root.join(format!("f{i:03}")), vec![0; i]).unwrap();
        }
        fs::write(s.root.join(".wharf-upload-leftover"), b"x").unwrap();
        fs::write(s.root.join("bad\r\nname"), b"x").unwrap();
        symlink(s.root.join("f001"), s.root.join("link-to-file")).unwrap();
        symlink(s.root.join("sub"), s.root.join("link-to-dir")).unwrap();
        let _upload = s.put(&key("in-progress"), WriteMode::Create).await.unwrap();

        let entries = listed(&s, "").await.unwrap();
        assert_eq!(entries.len(), 301);
        assert_eq!(entries[0], ("f000".to_owned(), EntryKind::File, 0));
        assert_eq!(entries[299], ("f299".to_owned(), EntryKind::File, 299));
        assert_eq!(entries[300], ("sub".to_owned(), EntryKind::Dir, 0));
        assert_eq!(listed(&s, "sub").await.unwrap(), []);
    }

    #[tokio::test]
    async fn symlinks_never_lead_outside_the_root() {
        let (_dir, s) = storage(false);
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"secret").unwrap();
        symlink(outside.path(), s.root.join("dirlink")).unwrap();
        symlink(outside.path().join("secret"), s.root.join("filelink")).unwrap();
        put(&s, "mine", WriteMode::Create, b"mine").await.unwrap();

        for k in ["dirlink", "dirlink/secret", "filelink"] {
            assert_eq!(kind(s.stat(&key(k)).await), ErrorKind::Denied, "{k}");
            assert_eq!(kind(s.get(&key(k), 0).await), ErrorKind::Denied, "{k}");
            assert_eq!(kind(s.list(&key(k)).await), ErrorKind::Denied, "{k}");
            assert_eq!(kind(s.delete(&key(k)).await), ErrorKind::Denied, "{k}");
            assert_eq!(kind(s.remove_dir(&key(k)).await), ErrorKind::Denied, "{k}");
            assert_eq!(kind(s.set_modified(&key(k), SystemTime::UNIX_EPOCH).await), ErrorKind::Denied, "{k}");
            assert_eq!(kind(s.rename(&key(k), &key("moved")).await), ErrorKind::Denied, "{k}");
        }
        for k in ["dirlink/new", "dirlink/secret", "filelink"] {
            assert_eq!(kind(s.put(&key(k), WriteMode::Create).await), ErrorKind::Denied, "{k}");
        }
        assert_eq!(kind(s.make_dir(&key("dirlink/new")).await), ErrorKind::Denied);
        assert_eq!(kind(s.rename(&key("mine"), &key("dirlink/mine")).await), ErrorKind::Denied);
        assert_eq!(kind(s.rename(&key("mine"), &key("filelink")).await), ErrorKind::Denied);

        assert_eq!(on_disk(outside.path()), ["secret"]);
        assert_eq!(fs::read(outside.path().join("secret")).unwrap(), b"secret");
        assert_eq!(on_disk(&s.root), ["dirlink", "filelink", "mine"]);
        assert_eq!(listed(&s, "").await.unwrap(), [("mine".to_owned(), EntryKind::File, 4)]);
    }

    #[tokio::test]
    async fn rename_files_and_directories() {
        for fsync in [false, true] {
            let (_dir, s) = storage(fsync);
            put(&s, "a", WriteMode::Create, b"a").await.unwrap();
            put(&s, "b", WriteMode::Create, b"bb").await.unwrap();
            s.make_dir(&key("d")).await.unwrap();
            s.make_dir(&key("d/inner")).await.unwrap();
            s.make_dir(&key("e")).await.unwrap();

            s.rename(&key("a"), &key("d/inner/a2")).await.unwrap();
            assert_eq!(read(&s, "d/inner/a2", 0).await.unwrap().1, b"a");
            s.rename(&key("b"), &key("d/inner/a2")).await.unwrap();
            assert_eq!(read(&s, "d/inner/a2", 0).await.unwrap().1, b"bb");
            s.rename(&key("d/inner/a2"), &key("d/inner/a2")).await.unwrap();

            assert_eq!(kind(s.rename(&key("d"), &key("d/inner/d")).await), ErrorKind::Denied);
            assert_eq!(kind(s.rename(&key("d"), &key("d/x")).await), ErrorKind::Denied);
            assert_eq!(kind(s.rename(&key("d"), &key("e")).await), ErrorKind::AlreadyExists);
            assert_eq!(kind(s.rename(&key("d/inner/a2"), &key("e")).await), ErrorKind::AlreadyExists);
            assert_eq!(kind(s.rename(&key("e"), &key("d/inner/a2")).await), ErrorKind::AlreadyExists);
            assert_eq!(kind(s.rename(&key("nope"), &key("x")).await), ErrorKind::NotFound);
            assert_eq!(kind(s.rename(&key("e"), &key("nope/e")).await), ErrorKind::NotFound);
            assert_eq!(kind(s.rename(&key(""), &key("x")).await), ErrorKind::Denied);

            s.rename(&key("d"), &key("e/d2")).await.unwrap();
            s.rename(&key("e"), &key("dd")).await.unwrap();
            assert_eq!(read(&s, "dd/d2/inner/a2", 0).await.unwrap().1, b"bb");
            assert_eq!(on_disk(&s.root), ["dd"]);
        }
    }

    #[tokio::test]
    async fn make_and_remove_directories() {
        let (_dir, s) = storage(true);
        s.make_dir(&key("d")).await.unwrap();
        assert_eq!(kind(s.make_dir(&key("d")).await), ErrorKind::AlreadyExists);
        assert_eq!(kind(s.make_dir(&key("")).await), ErrorKind::AlreadyExists);
        assert_eq!(kind(s.make_dir(&key("nope/d")).await), ErrorKind::NotFound);
        put(&s, "d/f", WriteMode::Create, b"x").await.unwrap();
        assert_eq!(kind(s.make_dir(&key("d/f")).await), ErrorKind::AlreadyExists);

        assert_eq!(kind(s.remove_dir(&key("d")).await), ErrorKind::NotEmpty);
        assert_eq!(kind(s.remove_dir(&key("d/f")).await), ErrorKind::NotADirectory);
        assert_eq!(kind(s.remove_dir(&key("nope")).await), ErrorKind::NotFound);
        assert_eq!(kind(s.remove_dir(&key("")).await), ErrorKind::Denied);
        s.delete(&key("d/f")).await.unwrap();

        // A crash left an upload behind: the directory still counts as empty.
        fs::write(s.root.join("d/.wharf-upload-00ff"), b"partial").unwrap();
        s.remove_dir(&key("d")).await.unwrap();

        // Other hidden names are not leftovers of ours to delete.
        s.make_dir(&key("d")).await.unwrap();
        fs::write(s.root.join("d/.wharf-other"), b"x").unwrap();
        fs::write(s.root.join("d/.wharf-upload-1"), b"x").unwrap();
        assert_eq!(kind(s.remove_dir(&key("d")).await), ErrorKind::NotEmpty);
        assert_eq!(on_disk(&s.root.join("d")), [".wharf-other", ".wharf-upload-1"]);
        assert_eq!(on_disk(&s.root), ["d"]);
    }

    #[tokio::test]
    async fn modification_time_is_set_and_read_back() {
        let (_dir, s) = storage(false);
        put(&s, "f", WriteMode::Create, b"x").await.unwrap();
        s.make_dir(&key("d")).await.unwrap();
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        for k in ["f", "d"] {
            s.set_modified(&key(k), time).await.unwrap();
            assert_eq!(s.stat(&key(k)).await.unwrap().modified, Some(time), "{k}");
        }
        let listed: Vec<_> = s.list(&key("")).await.unwrap().map_ok(|e| e.meta.modified).try_collect().await.unwrap();
        assert_eq!(listed, [Some(time), Some(time)]);
        assert_eq!(kind(s.set_modified(&key("nope"), time).await), ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn provider_gives_each_tenant_its_own_folder() {
        let dir = tempfile::tempdir().unwrap();
        let provider = FsProvider::new(dir.path().join("data"), false).unwrap();
        let tenant = |name: &str| crate::directory::Tenant {
            id: 1,
            name: name.to_owned(),
            enabled: true,
            created_at: chrono::Utc::now(),
        };
        let acme = provider.open(&tenant("acme-1")).await.unwrap();
        acme.make_dir(&key("in")).await.unwrap();
        assert!(dir.path().join("data/acme-1/in").is_dir());
        for bad in ["", "..", "a/b", "Acme", ".wharf"] {
            assert_eq!(kind(provider.open(&tenant(bad)).await), ErrorKind::Denied, "{bad:?}");
        }
    }

    #[test]
    fn io_errors_map_to_kinds() {
        let cases = [
            (io::Error::from(io::ErrorKind::NotFound), ErrorKind::NotFound),
            (io::Error::from(io::ErrorKind::PermissionDenied), ErrorKind::Denied),
            (io::Error::from(io::ErrorKind::AlreadyExists), ErrorKind::AlreadyExists),
            (io::Error::from_raw_os_error(2), ErrorKind::NotFound),
            (io::Error::from_raw_os_error(13), ErrorKind::Denied),
            (io::Error::from_raw_os_error(1), ErrorKind::Denied),
            (io::Error::from_raw_os_error(17), ErrorKind::AlreadyExists),
            (io::Error::from_raw_os_error(20), ErrorKind::NotADirectory),
            (io::Error::from_raw_os_error(21), ErrorKind::IsADirectory),
            (io::Error::from_raw_os_error(28), ErrorKind::QuotaExceeded),
            (io::Error::from_raw_os_error(30), ErrorKind::Denied),
            (io::Error::from_raw_os_error(39), ErrorKind::NotEmpty),
            (io::Error::from_raw_os_error(122), ErrorKind::QuotaExceeded),
            (io::Error::from_raw_os_error(5), ErrorKind::Internal),
            (io::Error::other("odd"), ErrorKind::Internal),
        ];
        for (error, want) in cases {
            assert_eq!(io_kind(&error), want, "{error}");
        }
        let error = io_error(io::Error::from_raw_os_error(28));
        assert_eq!(error.kind(), ErrorKind::QuotaExceeded);
        assert!(std::error::Error::source(&error).is_some());
    }
}
