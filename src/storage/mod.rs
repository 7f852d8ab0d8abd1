//! Object-store-shaped storage: what both S3 and a local folder can do honestly.
//!
//! Every transfer streams: [`Storage::get`] hands back a reader, [`Storage::put`] an [`Upload`] that takes
//! the bytes as they arrive. An upload becomes visible only when [`Upload::commit`] succeeds; one that is
//! aborted, dropped or fails leaves nothing behind.
//!
//! Storage knows nothing above it: no tenants or users (a backend opens for a [`StorageOwner`]), no SQL
//! (what S3 must remember goes through the [`UploadLedger`] it declares, which the directory keeps), no
//! virtual paths (the rule for a key segment lives with [`StorageKey`], and vfs applies it).

pub mod digest;
pub mod fs;
mod ledger;
mod owner;
pub mod s3;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use tokio::io::AsyncRead;

pub use self::ledger::{ParkedUpload, UploadLedger};
pub use self::owner::{InvalidSettings, StorageOwner, TenantStorage};

/// A key inside one tenant's storage: `/`-separated, no leading or trailing slash; `""` is the root.
/// Only [`crate::vfs`] makes keys, so every key has passed path normalisation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey(String);

impl StorageKey {
    /// For `vfs` only: the caller guarantees `key` is normalised.
    pub(crate) fn from_normalised(key: String) -> Self {
        debug_assert!(!key.starts_with('/') && !key.ends_with('/'));
        StorageKey(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// S3's limit on a key, in bytes; a tenant's key prefix counts against it.
    pub const MAX_BYTES: usize = 1024;
    /// The common file-system limit on one name, in bytes.
    pub const MAX_SEGMENT_BYTES: usize = 255;

    /// The rule for one segment of a key, for every backend: not empty, `.` or `..`, no `/`, no control
    /// character (C0, DEL and C1, which `char::is_control` covers exactly) and no backslash, which some
    /// clients and file systems treat as a separator; at most [`Self::MAX_SEGMENT_BYTES`]. Everything else,
    /// spaces, `%` and any Unicode included, is a valid name. Listings leave out names that break it.
    pub fn check_segment(name: &str) -> Result<(), BadSegment> {
        if matches!(name, "" | "." | "..") || name.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
            return Err(BadSegment::Invalid);
        }
        if name.len() > Self::MAX_SEGMENT_BYTES {
            return Err(BadSegment::TooLong);
        }
        Ok(())
    }

    /// The key of `name` inside this directory key. `name` must be one normalised path segment.
    pub fn child(&self, name: &str) -> StorageKey {
        debug_assert!(!name.is_empty() && !name.contains('/'));
        if self.0.is_empty() {
            StorageKey(name.to_owned())
        } else {
            StorageKey(format!("{}/{}", self.0, name))
        }
    }
}

/// Why a name cannot be one segment of a key ([`StorageKey::check_segment`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadSegment {
    Invalid,
    TooLong,
}

impl fmt::Display for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub kind: EntryKind,
    /// Bytes for a file, 0 for a directory.
    pub size: u64,
    /// Last modification; `None` when the backend cannot tell (an S3 directory that exists only as a
    /// common prefix).
    pub modified: Option<SystemTime>,
}

impl Metadata {
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// A single path segment.
    pub name: String,
    pub meta: Metadata,
}

/// Entries arrive as the backend produces them (S3 pages, `readdir` batches); nothing holds the whole
/// directory in memory.
pub type EntryStream = BoxStream<'static, Result<Entry, StorageError>>;

/// A download: the object's total size and a reader positioned at the requested offset.
pub struct Download {
    pub size: u64,
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
}

/// Where an upload's bytes go relative to what is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// STOR: the new object replaces any old one when committed.
    Create,
    /// APPE: the new object is the old one (or nothing) followed by the new bytes.
    Append,
    /// REST n + STOR: the new object is the first `n` bytes of the old one followed by the new bytes; the old
    /// object must be at least `n` bytes long.
    Resume(u64),
}

/// An upload in progress. Nothing is visible until [`Upload::commit`] returns `Ok`; dropping an upload
/// without committing it is the same as aborting it.
#[async_trait]
pub trait Upload: Send {
    /// Takes the next bytes. Returns only once the backend has room for more (backpressure).
    async fn write(&mut self, buf: &[u8]) -> Result<(), StorageError>;
    /// Makes the data durable and the object visible; returns its total size.
    async fn commit(self: Box<Self>) -> Result<u64, StorageError>;
    /// Discards everything written.
    async fn abort(self: Box<Self>);
    /// The client went away or aborted, or the store failed for a while ([`ErrorKind::Transient`]). A
    /// backend that can keep what arrived for a later REST + STOR or APPE of the same user does so and
    /// returns how many bytes it kept; the default discards everything. A `commit` that fails that way
    /// keeps what it can by itself and says so in [`StorageError::kept`].
    async fn interrupt(self: Box<Self>) -> Option<u64> {
        self.abort().await;
        None
    }
}

/// One tenant's storage. Keys are relative to the tenant's root (bucket + prefix, or folder).
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// File or directory metadata. The root always exists.
    async fn stat(&self, key: &StorageKey) -> Result<Metadata, StorageError>;
    /// The size of the file at `key`; `None` when there is no file there (nothing, or a directory). A
    /// backend where telling a directory costs more than finding a file answers without asking.
    async fn file_size(&self, key: &StorageKey) -> Result<Option<u64>, StorageError> {
        match self.stat(key).await {
            Ok(meta) if !meta.is_dir() => Ok(Some(meta.size)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    /// The entries directly inside a directory, in no particular order.
    async fn list(&self, dir: &StorageKey) -> Result<EntryStream, StorageError>;
    /// Reads a file from `offset` (which may equal its size; beyond it is an error).
    async fn get(&self, key: &StorageKey, offset: u64) -> Result<Download, StorageError>;
    /// Starts an upload. The parent directory must exist.
    async fn put(&self, key: &StorageKey, mode: WriteMode) -> Result<Box<dyn Upload>, StorageError>;
    /// Deletes a file (not a directory); returns the size it had, for the usage counters.
    async fn delete(&self, key: &StorageKey) -> Result<u64, StorageError>;
    /// Creates a directory; its parent must exist and the name must be free.
    async fn make_dir(&self, key: &StorageKey) -> Result<(), StorageError>;
    /// Removes an empty directory.
    async fn remove_dir(&self, key: &StorageKey) -> Result<(), StorageError>;
    /// Moves a file or a whole directory. The target's parent must exist; an existing target file is
    /// replaced, an existing target directory is an error.
    async fn rename(&self, from: &StorageKey, to: &StorageKey) -> Result<(), StorageError>;
    /// Sets a file's modification time (MFMT).
    async fn set_modified(&self, key: &StorageKey, time: SystemTime) -> Result<(), StorageError>;
    /// The file's checksums (HASH): recorded at upload where the backend can, else computed by reading.
    /// `Ok(None)` when they are not known and cannot be computed cheaply.
    async fn digest(&self, key: &StorageKey) -> Result<Option<digest::Digest>, StorageError>;
    /// The length of this user's interrupted upload of `key`, kept for REST + STOR or APPE to continue
    /// (SIZE reports it while no file exists, so that clients resume from there).
    async fn resumable_size(&self, _key: &StorageKey) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }
}

/// Opens the storage of a tenant for one logged-in user. One provider serves the whole process.
#[async_trait]
pub trait StorageProvider: Send + Sync {
    /// `user_id` names whose interrupted uploads the storage may continue.
    async fn open(&self, owner: &StorageOwner, user_id: i64) -> Result<Arc<dyn Storage>, StorageError>;
    /// Whether the store answers now, for readiness probes: with the server's own settings and
    /// credentials, never a tenant's.
    async fn ready(&self) -> Result<(), StorageError>;
}

/// What went wrong, in terms a protocol can act on; `ftp::error` maps each kind to one reply code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 550: no such file or directory.
    NotFound,
    /// 550: the name is taken (MKD of an existing name).
    AlreadyExists,
    /// 550: a file was used where a directory is needed.
    NotADirectory,
    /// 550: a directory was used where a file is needed.
    IsADirectory,
    /// 550: RMD of a directory that still has entries.
    NotEmpty,
    /// 550: the backend refused (permissions, a symlink leaving the root).
    Denied,
    /// 552: out of space or over quota.
    QuotaExceeded,
    /// 550: the operation would exceed a configured limit (objects moved by one rename).
    LimitExceeded,
    /// 554: REST offset beyond the end of the file.
    InvalidOffset,
    /// 451: worth retrying later (network, throttling, I/O hiccup).
    Transient,
    /// 502/504: the backend cannot do this at all.
    Unsupported,
    /// 451: a bug or an unexpected backend answer; details only in the log.
    Internal,
}

/// A storage failure: its kind plus the underlying cause, kept for the log. One pointer wide.
pub struct StorageError(Box<ErrorInner>);

struct ErrorInner {
    kind: ErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// Bytes of a failed upload kept for a REST + STOR or APPE of the same user.
    kept: Option<u64>,
}

impl StorageError {
    pub fn new(kind: ErrorKind) -> Self {
        StorageError(Box::new(ErrorInner { kind, source: None, kept: None }))
    }

    pub fn with_source(kind: ErrorKind, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StorageError(Box::new(ErrorInner { kind, source: Some(source.into()), kept: None }))
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The same failure of an upload that kept its first `kept` bytes (none: nothing was kept).
    pub fn with_kept(mut self, kept: Option<u64>) -> Self {
        self.0.kept = kept;
        self
    }

    /// How many bytes of a failed upload were kept for the same user to continue.
    pub fn kept(&self) -> Option<u64> {
        self.0.kept
    }
}

impl fmt::Debug for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.0;
        f.debug_struct("StorageError")
            .field("kind", &inner.kind)
            .field("source", &inner.source)
            .field("kept", &inner.kept)
            .finish()
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.source {
            Some(source) => write!(f, "{:?}: {}", self.0.kind, source),
            None => write!(f, "{:?}", self.0.kind),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<ErrorKind> for StorageError {
    fn from(kind: ErrorKind) -> Self {
        StorageError::new(kind)
    }
}
