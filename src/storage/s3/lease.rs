//! The directory rows of open multipart uploads: a lease while an upload runs (so that the sweeper leaves
//! it alone and aborts it once its owner is gone), its committed parts once parked.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tokio::task::AbortHandle;

use super::resume::ParkedState;
use super::S3Storage;
use crate::storage::{ParkedUpload, StorageError};

/// How long a running upload's lease lasts before the sweeper may take it for lost.
fn lease_time(storage: &S3Storage) -> TimeDelta {
    TimeDelta::seconds(storage.shared.config.lease_secs as i64)
}

/// The directory row of an open multipart upload: a lease while it runs (it outlives the lease time by
/// the parking time, so that a resumable one is not swept while its owner parks it), or parked.
pub(super) fn upload_row(
    storage: &S3Storage,
    object: &str,
    upload_id: &str,
    state: &ParkedState,
    resumable: bool,
) -> ParkedUpload {
    let now = Utc::now();
    let park = TimeDelta::seconds(storage.shared.config.park_secs as i64);
    ParkedUpload {
        location: storage.bucket.location.clone(),
        key: object.to_owned(),
        tenant_id: storage.tenant_id,
        user_id: storage.user_id,
        upload_id: upload_id.to_owned(),
        resumable,
        state: serde_json::to_string(state).expect("state serialises"),
        parked_at: now,
        expires_at: now + if resumable { park } else { lease_time(storage) + park },
    }
}

/// Records a multipart upload that is not an [`super::upload::S3Upload`] (a rename's multipart copy) as a
/// running lease, renewed while the returned [`Lease`] lives.
pub(super) async fn record_lease(storage: &S3Storage, object: &str, upload_id: &str) -> Result<Lease, StorageError> {
    let row = lease_row(storage, object, upload_id);
    storage.shared.ledger.save_upload(&row).await?;
    Ok(Lease::keep(storage, object, upload_id, None))
}

/// The row of a running upload that has no confirmed part yet.
pub(super) fn lease_row(storage: &S3Storage, object: &str, upload_id: &str) -> ParkedUpload {
    let state = ParkedState { bytes: 0, part_size: 0, parts: Vec::new(), digest: None };
    upload_row(storage, object, upload_id, &state, false)
}

/// Keeps a running upload's lease: renews its row every third of the lease time until dropped. A renewal
/// never touches a parked row, so parking needs no hand-over. When the directory cannot be reached, the
/// next tick tries again; the parking time added to every lease leaves room for a long outage.
///
/// `unsaved`: the row could not be written when the upload began (the directory was down), so the upload
/// goes on without it and the keeper writes it as soon as the directory is back. Until then, only this
/// process knows the upload: if it dies in that window, the store keeps the upload until a lifecycle rule
/// for incomplete multipart uploads removes it (deploy/README.md recommends one).
pub(super) struct Lease(AbortHandle);

impl Lease {
    pub(super) fn keep(storage: &S3Storage, object: &str, upload_id: &str, unsaved: Option<ParkedUpload>) -> Lease {
        let (storage, object, upload_id) = (storage.clone(), object.to_owned(), upload_id.to_owned());
        let every = Duration::from_millis(storage.shared.config.lease_secs * 1000 / 3);
        let task = tokio::spawn(async move {
            let park = TimeDelta::seconds(storage.shared.config.park_secs as i64);
            let location = &storage.bucket.location;
            let mut unsaved = unsaved;
            loop {
                tokio::time::sleep(every).await;
                if let Some(row) = &unsaved {
                    match storage.shared.ledger.save_upload(row).await {
                        Ok(()) => unsaved = None,
                        Err(e) => tracing::warn!(error = %e, key = %object, "recording a running upload failed"),
                    }
                    continue;
                }
                let until = Utc::now() + lease_time(&storage) + park;
                match storage.shared.ledger.renew_lease(location, &object, &upload_id, until).await {
                    Ok(true) => {}
                    // Parked, finished or taken by the sweeper: nothing left to keep.
                    Ok(false) => return,
                    Err(e) => tracing::warn!(error = %e, key = %object, "renewing an upload's lease failed"),
                }
            }
        });
        Lease(task.abort_handle())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.abort();
    }
}
