//! What the S3 backend must remember beyond one process: open multipart uploads (a running upload's row
//! is its lease; an interrupted one is parked for the same user to continue), the checksums recorded for
//! objects, and where a tenant's uploads live now. Storage declares this ledger; the directory keeps it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{StorageError, StorageOwner};

/// An open S3 multipart upload: running (its row is a lease, so that one lost with its process is aborted
/// when the lease runs out) or interrupted and parked for the same user to continue (REST n + STOR, APPE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedUpload {
    /// The store and bucket (`<endpoint>/<bucket>`), so that tenants sharing a bucket never collide.
    pub location: String,
    pub key: String,
    pub tenant_id: i64,
    pub user_id: i64,
    pub upload_id: String,
    /// `false` while the upload runs (the row is its lease), `true` once parked for a client to continue.
    pub resumable: bool,
    /// Committed parts and running checksums, owned by the S3 backend (JSON).
    pub state: String,
    pub parked_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The records the S3 backend keeps outside the store. Every method may fail with
/// [`super::ErrorKind::Transient`] while the ledger's database is unreachable.
#[async_trait]
pub trait UploadLedger: Send + Sync {
    /// Records (or updates) an open multipart upload.
    async fn save_upload(&self, upload: &ParkedUpload) -> Result<(), StorageError>;
    /// The newest unexpired resumable upload of an object parked by `user_id` (another user's parked upload
    /// of the same key is never continued, nor does it hide this user's).
    async fn resumable_upload(
        &self,
        location: &str,
        key: &str,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<ParkedUpload>, StorageError>;
    /// All resumable uploads of an object.
    async fn resumable_uploads(&self, location: &str, key: &str) -> Result<Vec<ParkedUpload>, StorageError>;
    /// Takes an upload out of the ledger; `false` when another session (or instance) took it first.
    async fn remove_upload(&self, location: &str, key: &str, upload_id: &str) -> Result<bool, StorageError>;
    /// Moves a running upload's lease on to `expires_at`; `false` when its row is gone or parked (a lease
    /// never turns a parked row back into a running one).
    async fn renew_lease(
        &self,
        location: &str,
        key: &str,
        upload_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StorageError>;
    /// Whether a row describes this multipart upload (running or parked).
    async fn upload_known(&self, location: &str, key: &str, upload_id: &str) -> Result<bool, StorageError>;
    /// Recorded uploads whose time ran out before `now`, oldest first, at most `limit`.
    async fn expired_uploads(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<ParkedUpload>, StorageError>;

    /// Records the checksums of an object as stored with `etag`.
    async fn record_digest(&self, location: &str, key: &str, etag: &str, digest: &str) -> Result<(), StorageError>;
    /// The recorded `(etag, digest)` of an object.
    async fn digest(&self, location: &str, key: &str) -> Result<Option<(String, String)>, StorageError>;
    async fn forget_digest(&self, location: &str, key: &str) -> Result<(), StorageError>;

    /// Where tenant `tenant_id` keeps its files now, for the sweeper that aborts its expired uploads;
    /// `None` once the tenant is deleted.
    async fn tenant_storage(&self, tenant_id: i64) -> Result<Option<StorageOwner>, StorageError>;
}
