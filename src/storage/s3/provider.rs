//! The S3 provider: one per process. It builds each tenant's client (the server's, or the tenant's own
//! endpoint and credentials), keeps the memory budget, and sweeps expired multipart uploads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::budget::{Budget, TenantBudget};
use super::{abort_upload, client, Bucket, S3Context, S3Storage};
use crate::config::S3Config;
use crate::storage::{ErrorKind, Storage, StorageError, StorageProvider};
use crate::storage::{ParkedUpload, StorageOwner, TenantStorage, UploadLedger};
use crate::telemetry::metrics::S3Metrics;

/// Opens tenants' storage on S3; one per process.
pub struct S3Provider {
    shared: Arc<S3Context>,
    /// Tenants' buckets by tenant id, rebuilt when a tenant's settings change.
    buckets: Mutex<HashMap<i64, (TenantStorage, Arc<Bucket>)>>,
}

impl std::fmt::Debug for S3Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Provider").field("bucket", &self.shared.config.bucket).finish_non_exhaustive()
    }
}

impl S3Provider {
    /// Every client it builds reports its requests to `metrics`.
    pub async fn new(
        config: &S3Config,
        ledger: Arc<dyn UploadLedger>,
        metrics: S3Metrics,
    ) -> Result<Arc<S3Provider>, StorageError> {
        let default_client = client::build(config, None, &metrics).await?;
        let shared = S3Context {
            budget: Budget::new(config.memory_budget),
            default_endpoint: config.endpoint.clone().unwrap_or_else(|| "aws".to_owned()),
            config: config.clone(),
            ledger,
            default_client,
            metrics,
        };
        Ok(Arc::new(S3Provider { shared: Arc::new(shared), buckets: Mutex::new(HashMap::new()) }))
    }

    /// The global budget, for tests and metrics.
    pub fn budget(&self) -> &Budget {
        &self.shared.budget
    }

    async fn bucket(&self, tenant: &StorageOwner) -> Result<Arc<Bucket>, StorageError> {
        if let Some((settings, bucket)) = self.buckets.lock().expect("not poisoned").get(&tenant.tenant_id) {
            if *settings == tenant.settings {
                return Ok(bucket.clone());
            }
        }
        let own = &tenant.settings;
        let config = &self.shared.config;
        let client = if own.endpoint.is_some()
            || own.region.is_some()
            || own.access_key_id.is_some()
            || own.path_style.is_some()
        {
            client::build(config, Some(own), &self.shared.metrics).await?
        } else {
            self.shared.default_client.clone()
        };
        let name = own.bucket.clone().or_else(|| config.bucket.clone()).ok_or(ErrorKind::Internal)?;
        let prefix = match (&own.bucket, &own.prefix) {
            (_, Some(prefix)) => TenantStorage::normalised_prefix(prefix),
            (Some(_), None) => String::new(),
            (None, None) => TenantStorage::normalised_prefix(&format!("{}{}", config.prefix, tenant.tenant_name)),
        };
        // The shared bucket's root holds every tenant: a tenant there always gets a prefix of its own.
        if own.bucket.is_none() && prefix.is_empty() {
            tracing::error!(tenant = %tenant.tenant_name, "tenant has an empty prefix in the shared bucket; refusing");
            return Err(ErrorKind::Denied.into());
        }
        let endpoint = own.endpoint.as_deref().unwrap_or(&self.shared.default_endpoint);
        let location = format!("{endpoint}/{name}");
        // A settings change keeps the tenant's budget: its uploads in flight still hold room in it.
        let budget = match self.buckets.lock().expect("not poisoned").get(&tenant.tenant_id) {
            Some((_, old)) => old.budget.clone(),
            None => TenantBudget::new(config.tenant_memory_budget),
        };
        let bucket = Arc::new(Bucket { client, name, prefix, location, budget });
        self.buckets.lock().expect("not poisoned").insert(tenant.tenant_id, (tenant.settings.clone(), bucket.clone()));
        Ok(bucket)
    }

    /// Aborts open multipart uploads whose lease or parking time ran out; returns how many. Safe to run on
    /// every instance at once: aborting an upload that is already gone counts as done, and each row is
    /// taken out of the ledger by exactly one of them. The upload is aborted before its row goes, so an
    /// instance that dies in between leaves a row the next sweep finds, never an upload nobody knows of;
    /// one that cannot be aborted now keeps its row, tried again later.
    pub async fn sweep(&self) -> Result<usize, StorageError> {
        let ledger = &self.shared.ledger;
        let (mut aborted, mut failed) = (0, None);
        let mut retry = Vec::new();
        loop {
            let expired = ledger.expired_uploads(chrono::Utc::now(), 100).await?;
            // Rows put back for later come round again only after this sweep.
            let expired: Vec<_> = expired.into_iter().filter(|u| !retry.contains(&u.upload_id)).collect();
            if expired.is_empty() {
                if failed.is_none() {
                    aborted += self.sweep_orphans().await?;
                }
                return failed.map_or(Ok(aborted), Err);
            }
            for upload in expired {
                match self.abort_expired(&upload).await {
                    Ok(()) => {
                        if ledger.remove_upload(&upload.location, &upload.key, &upload.upload_id).await? {
                            aborted += 1;
                        }
                    }
                    Err((e, retry_in)) => {
                        tracing::warn!(key = %upload.key, location = %upload.location, error = %e,
                            "aborting an expired upload failed; it stays recorded and is tried again later");
                        retry.push(upload.upload_id.clone());
                        let later = ParkedUpload { expires_at: chrono::Utc::now() + retry_in, ..upload };
                        ledger.save_upload(&later).await?;
                        failed = Some(e);
                    }
                }
            }
        }
    }

    /// Aborts multipart uploads in the server's bucket that no row describes and that are older than any
    /// running or parked upload can be (lease, parking time and one sweep): one whose CreateMultipartUpload
    /// reply was lost (the SDK's retry made another), or whose instance died before it could record it.
    /// Tenants' own buckets are left to their owners' lifecycle rules.
    async fn sweep_orphans(&self) -> Result<usize, StorageError> {
        let config = &self.shared.config;
        let Some(bucket) = &config.bucket else { return Ok(0) };
        let location = format!("{}/{bucket}", self.shared.default_endpoint);
        let age = config.lease_secs + config.park_secs + config.sweep_interval_secs;
        let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
        let client = &self.shared.default_client;
        let (mut aborted, mut key_marker, mut id_marker) = (0, None::<String>, None::<String>);
        loop {
            let request = client
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(&config.prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take());
            let page = request.send().await.map_err(super::sdk_error)?;
            for upload in page.uploads() {
                let (Some(key), Some(id), Some(initiated)) = (upload.key(), upload.upload_id(), upload.initiated())
                else {
                    continue;
                };
                let old = std::time::SystemTime::try_from(*initiated).is_ok_and(|at| at < cutoff);
                if old && !self.shared.ledger.upload_known(&location, key, id).await? {
                    tracing::warn!(key, "aborting a multipart upload that nothing recorded");
                    abort_upload(client, bucket, key, id).await?;
                    aborted += 1;
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                return Ok(aborted);
            }
        }
    }

    /// Aborts one expired upload in the store it was started in: the tenant's as configured now, or, for a
    /// deleted tenant or one whose settings moved, the server's default store when the upload lives there.
    /// A failure says when to try again: soon after a store's error, a day later when no client reaches
    /// the upload's store any more (an operator then has to abort it, or a lifecycle rule does).
    async fn abort_expired(&self, upload: &ParkedUpload) -> Result<(), (StorageError, chrono::TimeDelta)> {
        let soon = chrono::TimeDelta::seconds(self.shared.config.sweep_interval_secs as i64);
        let tenant = self.shared.ledger.tenant_storage(upload.tenant_id).await.map_err(|e| (e, soon))?;
        if let Some(tenant) = tenant {
            let bucket = self.bucket(&tenant).await.map_err(|e| (e, soon))?;
            if bucket.location == upload.location {
                return bucket.abort_upload(&upload.key, &upload.upload_id).await.map_err(|e| (e, soon));
            }
        }
        let default_bucket =
            upload.location.strip_prefix(&self.shared.default_endpoint).and_then(|b| b.strip_prefix('/'));
        match default_bucket {
            Some(name) => abort_upload(&self.shared.default_client, name, &upload.key, &upload.upload_id)
                .await
                .map_err(|e| (e, soon)),
            None => Err((
                StorageError::with_source(ErrorKind::Internal, "the upload's store is no longer configured"),
                chrono::TimeDelta::days(1),
            )),
        }
    }
}

#[async_trait]
impl StorageProvider for S3Provider {
    async fn open(&self, owner: &StorageOwner, user_id: i64) -> Result<Arc<dyn Storage>, StorageError> {
        let bucket = self.bucket(owner).await?;
        Ok(Arc::new(S3Storage {
            bucket,
            shared: self.shared.clone(),
            tenant_id: owner.tenant_id,
            user_id,
            known_dirs: Default::default(),
        }))
    }

    /// One listing of at most one key under the server's prefix in the server's bucket, with the
    /// server's own client and keys.
    async fn ready(&self) -> Result<(), StorageError> {
        let config = &self.shared.config;
        let bucket = config.bucket.as_deref().ok_or(ErrorKind::Internal)?;
        let request = self.shared.default_client.list_objects_v2().bucket(bucket).prefix(&config.prefix).max_keys(1);
        request.send().await.map_err(super::sdk_error)?;
        Ok(())
    }
}
