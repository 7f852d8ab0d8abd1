//! The S3 backend: each tenant's tree is a key prefix in a bucket, and every transfer streams between the
//! data channel and S3 with bounded memory and nothing on local disk.
//!
//! ```text
//! virtual path /a/b.txt ──vfs──▶ key a/b.txt ──▶ object <prefix>a/b.txt
//! directory    /a       ──vfs──▶ key a       ──▶ marker <prefix>a/  (or only objects below it)
//! ```
//!
//! A directory exists when its marker does or when any object lies below it. Uploads are one PutObject
//! below one part and a multipart upload above ([`upload`]); listings page through ListObjectsV2 with
//! delimiter `/` as the client reads them; renames copy then delete ([`rename`]). Every open multipart upload
//! is recorded in the upload ledger ([`crate::storage::UploadLedger`], kept by the directory), so an interrupted one can be continued (REST + STOR, APPE) and none is
//! orphaned: the sweeper aborts those whose time ran out.

mod bucket;
mod budget;
mod client;
mod download;
mod error;
mod lease;
mod list;
mod metered;
mod parts;
mod provider;
mod rename;
mod resume;
mod upload;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_s3::Client;
use futures_util::stream::{self, StreamExt};

use self::bucket::{abort_upload, Bucket, MAX_COPY, MIN_PART};
pub use self::budget::Budget;
use self::download::body_reader;
use self::error::sdk_error;
use self::list::page_entries;
pub use self::parts::largest_upload;
pub use self::provider::S3Provider;
use self::upload::S3Upload;
use super::digest::Digest;
use super::{
    Download, EntryKind, EntryStream, ErrorKind, Metadata, Storage, StorageError, StorageKey, Upload, WriteMode,
};
use crate::config::S3Config;
use crate::storage::UploadLedger;
use crate::telemetry::metrics::S3Metrics;

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What every tenant's storage shares: settings, the budget, the upload ledger, the default client.
struct S3Context {
    config: S3Config,
    budget: Arc<Budget>,
    ledger: Arc<dyn UploadLedger>,
    default_client: Client,
    /// Given to every client built later (tenants' own stores).
    metrics: S3Metrics,
    /// Identifies the default endpoint in upload records.
    default_endpoint: String,
}

impl std::fmt::Debug for S3Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Context").field("bucket", &self.config.bucket).finish_non_exhaustive()
    }
}

/// One session's view of its tenant's bucket.
#[derive(Debug, Clone)]
pub struct S3Storage {
    bucket: Arc<Bucket>,
    shared: Arc<S3Context>,
    tenant_id: i64,
    user_id: i64,
    known_dirs: Arc<KnownDirs>,
}

/// Directories this session saw exist in the last few seconds: a client storing many files into one
/// directory then costs one listing, not one per file. Only a cache: an entry that went stale (another
/// session removed the directory) lets a file in, which makes the directory exist again, as on S3 itself.
#[derive(Debug, Default)]
pub(super) struct KnownDirs(std::sync::Mutex<std::collections::HashMap<StorageKey, std::time::Instant>>);

impl KnownDirs {
    const FRESH: std::time::Duration = std::time::Duration::from_secs(10);
    const MAX: usize = 256;

    fn contains(&self, key: &StorageKey) -> bool {
        let dirs = self.0.lock().expect("not poisoned");
        dirs.get(key).is_some_and(|seen| seen.elapsed() < Self::FRESH)
    }

    fn insert(&self, key: StorageKey) {
        let mut dirs = self.0.lock().expect("not poisoned");
        if dirs.len() >= Self::MAX {
            dirs.clear();
        }
        dirs.insert(key, std::time::Instant::now());
    }

    /// After this session removed or moved something, nothing it remembers is trusted.
    fn forget(&self) {
        self.0.lock().expect("not poisoned").clear();
    }
}

/// What HeadObject tells about a file.
struct Head {
    size: u64,
    modified: Option<SystemTime>,
    etag: String,
    /// The checksums a single PutObject carried in its metadata ([`DIGEST_METADATA`]).
    digest: Option<Digest>,
}

/// The user-metadata key under which a single-part object keeps its checksums (`x-amz-meta-wharf-digest`).
const DIGEST_METADATA: &str = "wharf-digest";

impl S3Storage {
    fn object(&self, key: &StorageKey) -> String {
        format!("{}{}", self.bucket.prefix, key.as_str())
    }

    /// The prefix of everything inside directory `key` (its marker's key).
    fn dir_prefix(&self, key: &StorageKey) -> String {
        if key.is_root() {
            self.bucket.prefix.clone()
        } else {
            format!("{}{}/", self.bucket.prefix, key.as_str())
        }
    }

    async fn head(&self, object: &str) -> Result<Option<Head>, StorageError> {
        let b = &self.bucket;
        let request = b.client.head_object().bucket(&b.name).key(object).checksum_mode(ChecksumMode::Enabled);
        match request.send().await.map_err(sdk_error) {
            Ok(out) => {
                let size = out.content_length().unwrap_or(0).max(0) as u64;
                let digest = out
                    .metadata()
                    .and_then(|m| m.get(DIGEST_METADATA))
                    .and_then(|text| Digest::from_text(text))
                    .filter(|d| d.len == size)
                    // Where the store kept the SHA-256 it verified, the metadata must agree with it.
                    .filter(|d| out.checksum_sha256().is_none_or(|sha| sha == base64(&d.sha256())));
                Ok(Some(Head {
                    size,
                    modified: out.last_modified().and_then(|t| SystemTime::try_from(*t).ok()),
                    etag: out.e_tag().unwrap_or_default().to_owned(),
                    digest,
                }))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of what lies below `prefix`, with or without the `/` delimiter.
    async fn list_page(
        &self,
        prefix: &str,
        delimiter: bool,
        max_keys: Option<i32>,
        token: Option<String>,
    ) -> Result<ListObjectsV2Output, StorageError> {
        let b = &self.bucket;
        let mut request = b.client.list_objects_v2().bucket(&b.name).prefix(prefix).set_continuation_token(token);
        if delimiter {
            request = request.delimiter("/");
        }
        if let Some(max) = max_keys {
            request = request.max_keys(max);
        }
        request.send().await.map_err(sdk_error)
    }

    /// The directory `key`, if its marker or anything below it exists.
    async fn dir_meta(&self, key: &StorageKey) -> Result<Option<Metadata>, StorageError> {
        if key.is_root() {
            return Ok(Some(dir_metadata(None)));
        }
        let prefix = self.dir_prefix(key);
        let page = self.list_page(&prefix, false, Some(1), None).await?;
        // The marker sorts first: it is the shortest key with this prefix.
        Ok(page.contents().first().map(|first| {
            let marker_time = (first.key() == Some(prefix.as_str()))
                .then(|| first.last_modified().and_then(|t| SystemTime::try_from(*t).ok()))
                .flatten();
            dir_metadata(marker_time)
        }))
    }

    /// Succeeds when `key`'s parent is an existing directory.
    async fn check_parent(&self, key: &StorageKey) -> Result<(), StorageError> {
        let parent = parent_key(key);
        if parent.is_root() || self.known_dirs.contains(&parent) {
            return Ok(());
        }
        if self.dir_meta(&parent).await?.is_some() {
            self.known_dirs.insert(parent);
            return Ok(());
        }
        match self.head(&self.object(&parent)).await? {
            Some(_) => Err(ErrorKind::NotADirectory.into()),
            None => Err(ErrorKind::NotFound.into()),
        }
    }

    /// Succeeds when a file may be stored at `key`: its parent is a directory and no directory has its name.
    async fn check_target(&self, key: &StorageKey) -> Result<(), StorageError> {
        let (parent, is_dir) = tokio::join!(self.check_parent(key), self.dir_meta(key));
        parent?;
        match is_dir? {
            Some(_) => Err(ErrorKind::IsADirectory.into()),
            None => Ok(()),
        }
    }

    /// After the last object below `key`'s parent went away, a marker keeps the parent, as a folder would.
    async fn keep_parent(&self, key: &StorageKey) -> Result<(), StorageError> {
        let parent = parent_key(key);
        if parent.is_root() || self.dir_meta(&parent).await?.is_some() {
            return Ok(());
        }
        self.put_marker(&self.dir_prefix(&parent)).await
    }

    async fn put_marker(&self, marker: &str) -> Result<(), StorageError> {
        let b = &self.bucket;
        b.client
            .put_object()
            .bucket(&b.name)
            .key(marker)
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn delete_object(&self, object: &str) -> Result<(), StorageError> {
        let b = &self.bucket;
        b.client.delete_object().bucket(&b.name).key(object).send().await.map_err(sdk_error)?;
        Ok(())
    }

    /// The checksums wharf recorded for `object` as it is now: in its metadata (a single PutObject) or in
    /// the directory under its ETag (a multipart upload, whose metadata is fixed before its bytes are known).
    async fn recorded_digest(&self, object: &str, head: Head) -> Result<Option<Digest>, StorageError> {
        if head.digest.is_some() {
            return Ok(head.digest);
        }
        let recorded = self.shared.ledger.digest(&self.bucket.location, object).await?;
        // Valid only for the object as wharf stored it: another writer changes the ETag.
        Ok(recorded
            .filter(|(etag, _)| *etag == head.etag)
            .and_then(|(_, text)| Digest::from_text(&text))
            .filter(|d| d.len == head.size))
    }

    /// The resumable upload of `object` this user may continue.
    async fn own_parked(&self, object: &str) -> Result<Option<crate::storage::ParkedUpload>, StorageError> {
        let ledger = &self.shared.ledger;
        let parked = ledger.resumable_upload(&self.bucket.location, object, self.user_id, chrono::Utc::now());
        parked.await
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn stat(&self, key: &StorageKey) -> Result<Metadata, StorageError> {
        if key.is_root() {
            return Ok(dir_metadata(None));
        }
        if let Some(head) = self.head(&self.object(key)).await? {
            return Ok(Metadata { kind: EntryKind::File, size: head.size, modified: head.modified });
        }
        self.dir_meta(key).await?.ok_or(ErrorKind::NotFound.into())
    }

    /// One HeadObject: a directory needs no listing to be told from a file here.
    async fn file_size(&self, key: &StorageKey) -> Result<Option<u64>, StorageError> {
        if key.is_root() {
            return Ok(None);
        }
        Ok(self.head(&self.object(key)).await?.map(|head| head.size))
    }

    async fn list(&self, dir: &StorageKey) -> Result<EntryStream, StorageError> {
        let prefix = self.dir_prefix(dir);
        let first = self.list_page(&prefix, true, None, None).await?;
        let empty = first.contents().is_empty() && first.common_prefixes().is_empty();
        if empty && !dir.is_root() {
            return Err(match self.head(&self.object(dir)).await? {
                Some(_) => ErrorKind::NotADirectory.into(),
                None => ErrorKind::NotFound.into(),
            });
        }
        // Pages are fetched as the client reads: one page (up to 1,000 keys) is held at a time.
        let this = self.clone();
        let pages = stream::unfold(Some(Ok(first)), move |next| {
            let (this, prefix) = (this.clone(), prefix.clone());
            async move {
                let page = match next? {
                    Ok(page) => page,
                    Err(e) => return Some((vec![Err(e)], None)),
                };
                let entries = page_entries(&page, &prefix);
                let next = match page.next_continuation_token() {
                    Some(token) if page.is_truncated() == Some(true) => {
                        Some(this.list_page(&prefix, true, None, Some(token.to_owned())).await)
                    }
                    _ => None,
                };
                Some((entries.into_iter().map(Ok).collect::<Vec<_>>(), next))
            }
        });
        Ok(pages.flat_map(stream::iter).boxed())
    }

    async fn get(&self, key: &StorageKey, offset: u64) -> Result<Download, StorageError> {
        if key.is_root() {
            return Err(ErrorKind::IsADirectory.into());
        }
        let object = self.object(key);
        let b = &self.bucket;
        let mut request = b.client.get_object().bucket(&b.name).key(&object);
        if offset > 0 {
            request = request.range(format!("bytes={offset}-"));
        }
        match request.send().await.map_err(sdk_error) {
            Ok(out) => {
                let length = out.content_length().unwrap_or(0).max(0) as u64;
                Ok(Download { size: offset + length, reader: body_reader(out.body) })
            }
            // S3 answers 416 for a range starting at the end; a client resuming a complete file does that.
            Err(e) if e.kind() == ErrorKind::InvalidOffset => match self.head(&object).await? {
                Some(head) if head.size == offset => {
                    Ok(Download { size: offset, reader: Box::new(tokio::io::empty()) })
                }
                Some(_) => Err(e),
                None => Err(ErrorKind::NotFound.into()),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => match self.dir_meta(key).await? {
                Some(_) => Err(ErrorKind::IsADirectory.into()),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn put(&self, key: &StorageKey, mode: WriteMode) -> Result<Box<dyn Upload>, StorageError> {
        if key.is_root() {
            return Err(ErrorKind::IsADirectory.into());
        }
        // A new file is checked (parent exists, name not a directory) while its bytes arrive, and nothing is
        // stored before the check passed: the round trip to S3 hides behind the data connection's setup.
        // Continuing an upload needs the stored state first, so there the check comes before 150.
        let (this, target) = (self.clone(), key.clone());
        let check = tokio::spawn(async move { this.check_target(&target).await });
        let upload = match mode {
            WriteMode::Create => S3Upload::start(self.clone(), self.object(key), mode, Some(check)).await?,
            _ => {
                check.await.map_err(|e| StorageError::with_source(ErrorKind::Internal, e))??;
                S3Upload::start(self.clone(), self.object(key), mode, None).await?
            }
        };
        Ok(Box::new(upload))
    }

    async fn delete(&self, key: &StorageKey) -> Result<u64, StorageError> {
        let object = self.object(key);
        let head = if key.is_root() { None } else { self.head(&object).await? };
        let Some(head) = head else {
            return Err(match self.dir_meta(key).await? {
                Some(_) => ErrorKind::IsADirectory.into(),
                None => ErrorKind::NotFound.into(),
            });
        };
        self.delete_object(&object).await?;
        self.shared.ledger.forget_digest(&self.bucket.location, &object).await?;
        self.keep_parent(key).await?;
        Ok(head.size)
    }

    async fn make_dir(&self, key: &StorageKey) -> Result<(), StorageError> {
        if key.is_root() {
            return Err(ErrorKind::AlreadyExists.into());
        }
        let object = self.object(key);
        let (parent, file, dir) = tokio::join!(self.check_parent(key), self.head(&object), self.dir_meta(key));
        parent?;
        if file?.is_some() || dir?.is_some() {
            return Err(ErrorKind::AlreadyExists.into());
        }
        self.put_marker(&self.dir_prefix(key)).await?;
        self.known_dirs.insert(key.clone());
        Ok(())
    }

    async fn remove_dir(&self, key: &StorageKey) -> Result<(), StorageError> {
        if key.is_root() {
            return Err(ErrorKind::Denied.into());
        }
        self.known_dirs.forget();
        let marker = self.dir_prefix(key);
        let page = self.list_page(&marker, false, Some(2), None).await?;
        let keys: Vec<&str> = page.contents().iter().filter_map(|o| o.key()).collect();
        if keys.is_empty() {
            return Err(match self.head(&self.object(key)).await? {
                Some(_) => ErrorKind::NotADirectory.into(),
                None => ErrorKind::NotFound.into(),
            });
        }
        if keys.iter().any(|k| *k != marker) {
            return Err(ErrorKind::NotEmpty.into());
        }
        self.delete_object(&marker).await?;
        self.keep_parent(key).await
    }

    async fn rename(&self, from: &StorageKey, to: &StorageKey) -> Result<(), StorageError> {
        self.known_dirs.forget();
        rename::rename(self, from, to).await
    }

    async fn set_modified(&self, _key: &StorageKey, _time: SystemTime) -> Result<(), StorageError> {
        // An object's time is when it was stored; changing it would mean rewriting the object.
        Err(ErrorKind::Unsupported.into())
    }

    async fn digest(&self, key: &StorageKey) -> Result<Option<Digest>, StorageError> {
        let object = self.object(key);
        let Some(head) = self.head(&object).await? else {
            return Err(match self.dir_meta(key).await? {
                Some(_) => ErrorKind::IsADirectory.into(),
                None => ErrorKind::NotFound.into(),
            });
        };
        self.recorded_digest(&object, head).await
    }

    async fn resumable_size(&self, key: &StorageKey) -> Result<Option<u64>, StorageError> {
        let parked = self.own_parked(&self.object(key)).await?;
        Ok(parked.and_then(|p| resume::ParkedState::from_text(&p.state)).map(|s| s.bytes))
    }
}

fn dir_metadata(modified: Option<SystemTime>) -> Metadata {
    Metadata { kind: EntryKind::Dir, size: 0, modified }
}

fn parent_key(key: &StorageKey) -> StorageKey {
    match key.as_str().rsplit_once('/') {
        Some((parent, _)) => StorageKey::from_normalised(parent.to_owned()),
        None => StorageKey::from_normalised(String::new()),
    }
}
