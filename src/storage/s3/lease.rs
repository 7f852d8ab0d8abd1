//! The directory rows of open multipart uploads: a lease while an upload runs (so that the sweeper leaves
//! it alone and aborts it once its owner is gone), its committed parts once parked.

use chrono::Utc;

use super::resume::ParkedState;
use super::S3Storage;
use crate::storage::{ParkedUpload, StorageError};

/// How long a running upload's lease lasts before the sweeper may take it for lost; renewed at half-time.
pub(super) const LEASE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

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
    let park = chrono::TimeDelta::seconds(storage.shared.config.park_secs as i64);
    ParkedUpload {
        location: storage.bucket.location.clone(),
        key: object.to_owned(),
        tenant_id: storage.tenant_id,
        user_id: storage.user_id,
        upload_id: upload_id.to_owned(),
        resumable,
        state: serde_json::to_string(state).expect("state serialises"),
        parked_at: now,
        expires_at: now + if resumable { park } else { LEASE + park },
    }
}

/// Records a multipart upload that is not an [`S3Upload`] (a rename's multipart copy) as a running lease.
pub(super) async fn record_lease(storage: &S3Storage, object: &str, upload_id: &str) -> Result<(), StorageError> {
    let state = ParkedState { bytes: 0, part_size: 0, parts: Vec::new(), digest: None };
    let row = upload_row(storage, object, upload_id, &state, false);
    storage.shared.ledger.save_upload(&row).await
}
