//! Uploads to S3: a bounded pipeline from the data channel to the store.
//!
//! ```text
//! write() ─▶ part buffer (room from the budget) ─full─▶ UploadPart task ─┐  at most parts_in_flight
//!                                                        UploadPart task ─┤  at once; write() waits for
//!                                                        …               ─┘  one to finish before more
//! commit(): below one part, one PutObject; else the last part, then CompleteMultipartUpload
//! ```
//!
//! Memory per upload is at most part size × (parts in flight + 1): the buffer being filled plus the parts
//! on their way. Every part carries its CRC-32 and a single PutObject its SHA-256, so S3 rejects damaged
//! bytes. The whole file's checksums ([`Digest`]) are kept at each part boundary, so a parked upload can
//! continue them. Each open multipart upload has a row in the directory: a lease while it runs, its
//! committed parts once parked.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use tokio::task::{JoinHandle, JoinSet};

use super::budget::{Reservation, STARTER};
use super::resume::{ParkedState, PartDone};
use super::{base64, dir_error, sdk_error, S3Storage, DIGEST_METADATA};
use crate::directory::ParkedUpload;
use crate::storage::digest::Digest;
use crate::storage::{ErrorKind, StorageError, Upload, WriteMode};

/// Parts per size step: the part size doubles after every 1,000 parts, so 10,000 parts of a file of
/// unknown length reach 1,023,000 × the first part size (8 TiB with 8 MiB parts; S3's objects stop at 5).
const PARTS_PER_STEP: i32 = 1000;
const MAX_PARTS: i32 = 10_000;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
/// How long a running upload's lease lasts before the sweeper may take it for lost; renewed at half-time.
const LEASE: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// How long an interrupted upload waits for its parts in flight before parking what is confirmed.
const DRAIN: Duration = Duration::from_secs(30);

pub(super) struct Multipart {
    pub(super) upload_id: String,
    pub(super) in_flight: JoinSet<Result<PartDone, StorageError>>,
    pub(super) done: BTreeMap<i32, PartDone>,
    /// The file's checksums after each part, for parking at any confirmed boundary.
    pub(super) digest_after: BTreeMap<i32, Option<Digest>>,
    /// Bytes up to the end of each part.
    pub(super) end_of: BTreeMap<i32, u64>,
    pub(super) lease_renewed: chrono::DateTime<Utc>,
}

pub(super) struct S3Upload {
    pub(super) storage: S3Storage,
    pub(super) object: String,
    /// The first part's size; later parts follow [`part_size`].
    pub(super) base: u64,
    pub(super) buf: BytesMut,
    pub(super) room: Reservation,
    pub(super) digest: Option<Digest>,
    pub(super) next_part: i32,
    /// Bytes in parts before the buffer (sent or copied).
    pub(super) sent: u64,
    pub(super) multipart: Option<Multipart>,
    /// The target's check, still running while the first bytes arrive.
    pub(super) check: Option<JoinHandle<Result<(), StorageError>>>,
}

impl S3Upload {
    /// Starts an upload of `object`: fresh, continuing this user's parked upload, or on top of the stored
    /// object's first bytes (REST n + STOR, APPE).
    /// `check`, when given, must succeed before anything becomes visible or a multipart upload starts.
    pub(super) async fn start(
        storage: S3Storage,
        object: String,
        mode: WriteMode,
        check: Option<JoinHandle<Result<(), StorageError>>>,
    ) -> Result<S3Upload, StorageError> {
        let room = storage.shared.budget.starter().await;
        let mut upload = S3Upload {
            check,
            base: storage.shared.config.part_size,
            storage,
            object,
            buf: BytesMut::new(),
            room,
            digest: Some(Digest::default()),
            next_part: 1,
            sent: 0,
            multipart: None,
        };
        let keep = match mode {
            WriteMode::Create => return Ok(upload),
            WriteMode::Resume(offset) => Some(offset),
            WriteMode::Append => None,
        };
        if let Some(parked) = upload.storage.own_parked(&upload.object).await? {
            match ParkedState::from_text(&parked.state) {
                Some(state) if keep.is_none_or(|n| n == state.bytes) => {
                    let shared = &upload.storage.shared;
                    let b = &upload.storage.bucket;
                    // Whoever removes the row owns the upload; a second session resuming at once loses.
                    if shared
                        .directory
                        .remove_upload(&b.location, &parked.key, &parked.upload_id)
                        .await
                        .map_err(dir_error)?
                    {
                        upload.resume(parked, state).await?;
                        return Ok(upload);
                    }
                }
                _ => {}
            }
        }
        let head = match upload.storage.head(&upload.object).await? {
            Some(head) => head,
            None if keep.unwrap_or(0) == 0 => return Ok(upload),
            None => return Err(ErrorKind::InvalidOffset.into()),
        };
        let keep = keep.unwrap_or(head.size);
        if keep > head.size {
            return Err(ErrorKind::InvalidOffset.into());
        }
        if keep > 0 {
            upload.keep_prefix(keep, head).await?;
        }
        Ok(upload)
    }

    fn part_target(&self) -> u64 {
        part_size(self.base, self.next_part)
    }

    pub(super) async fn write_bytes(&mut self, mut data: &[u8]) -> Result<(), StorageError> {
        while !data.is_empty() {
            let target = self.part_target();
            let wanted = (self.buf.len() + data.len()) as u64;
            if wanted > STARTER && (self.buf.capacity() as u64) < target {
                let shared = self.storage.shared.clone();
                shared.budget.grow(&self.storage.bucket.budget, &mut self.room, target).await;
                self.buf.reserve(target as usize - self.buf.len());
            }
            let take = ((target - self.buf.len() as u64) as usize).min(data.len());
            if let Some(digest) = &mut self.digest {
                digest.update(&data[..take]);
            }
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() as u64 == target {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    /// Waits for the target's check, once.
    async fn checked(&mut self) -> Result<(), StorageError> {
        match self.check.take() {
            Some(check) => check.await.map_err(|e| StorageError::with_source(ErrorKind::Internal, e))?,
            None => Ok(()),
        }
    }

    /// Starts the multipart upload and records it (as a lease) in the directory.
    pub(super) async fn create(&mut self) -> Result<(), StorageError> {
        if self.multipart.is_some() {
            return Ok(());
        }
        self.checked().await?;
        let b = &self.storage.bucket;
        let out = b
            .client
            .create_multipart_upload()
            .bucket(&b.name)
            .key(&self.object)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(sdk_error)?;
        let upload_id = out.upload_id().ok_or(ErrorKind::Internal)?.to_owned();
        self.multipart = Some(Multipart {
            upload_id,
            in_flight: JoinSet::new(),
            done: BTreeMap::new(),
            digest_after: BTreeMap::new(),
            end_of: BTreeMap::new(),
            lease_renewed: Utc::now(),
        });
        if let Err(e) = self.save(false).await {
            self.abort_multipart().await;
            return Err(e);
        }
        Ok(())
    }

    /// Writes this upload's row: a lease while running, or the parked state (`resumable`) with the
    /// committed parts only.
    pub(super) async fn save(&mut self, resumable: bool) -> Result<(), StorageError> {
        let multipart = self.multipart.as_mut().expect("only multipart uploads are recorded");
        let confirmed = confirmed_prefix(multipart);
        let now = Utc::now();
        let (parts, bytes, digest) = match confirmed {
            Some(last) => (
                multipart.done.range(..=last).map(|(_, p)| p.clone()).collect(),
                multipart.end_of[&last],
                multipart.digest_after.get(&last).cloned().flatten(),
            ),
            None => (Vec::new(), 0, None),
        };
        let state = ParkedState { bytes, part_size: self.base, parts, digest };
        let shared = &self.storage.shared;
        let lifetime = if resumable {
            chrono::TimeDelta::seconds(shared.config.park_secs as i64)
        } else {
            LEASE + chrono::TimeDelta::seconds(shared.config.park_secs as i64)
        };
        let row = ParkedUpload {
            location: self.storage.bucket.location.clone(),
            key: self.object.clone(),
            tenant_id: self.storage.tenant_id,
            user_id: self.storage.user_id,
            upload_id: multipart.upload_id.clone(),
            resumable,
            state: serde_json::to_string(&state).expect("state serialises"),
            parked_at: now,
            expires_at: now + lifetime,
        };
        multipart.lease_renewed = now;
        shared.directory.save_upload(&row).await.map_err(dir_error)
    }

    /// Hands the full buffer to an UploadPart task, first waiting for room among the parts in flight.
    async fn send_part(&mut self) -> Result<(), StorageError> {
        self.create().await?;
        let limit = self.storage.shared.config.parts_in_flight;
        while self.multipart.as_ref().is_some_and(|m| m.in_flight.len() >= limit) {
            self.collect_one().await?;
        }
        if self.next_part > MAX_PARTS {
            return Err(StorageError::with_source(ErrorKind::QuotaExceeded, "file exceeds S3's 10,000 parts"));
        }
        let number = self.next_part;
        let body = std::mem::take(&mut self.buf).freeze();
        // The part takes its room along and gives it back once S3 has it.
        let room = std::mem::take(&mut self.room);
        let size = body.len() as u64;
        self.sent += size;
        self.next_part += 1;
        let renew = {
            let multipart = self.multipart.as_mut().expect("created above");
            multipart.digest_after.insert(number, self.digest.clone());
            multipart.end_of.insert(number, self.sent);
            let b = self.storage.bucket.clone();
            let (object, upload_id) = (self.object.clone(), multipart.upload_id.clone());
            multipart.in_flight.spawn(upload_part(b, object, upload_id, number, body, room));
            Utc::now() - multipart.lease_renewed > LEASE / 2
        };
        // Only now, with the full part on its way, wait for room for the next one: holding a whole part
        // while waiting for room could block the uploads whose parts would free it.
        self.room = self.storage.shared.budget.starter().await;
        if renew {
            self.save(false).await?;
        }
        Ok(())
    }

    /// Waits for one part in flight and records it.
    async fn collect_one(&mut self) -> Result<(), StorageError> {
        let Some(multipart) = self.multipart.as_mut() else { return Ok(()) };
        let Some(joined) = multipart.in_flight.join_next().await else { return Ok(()) };
        let part = joined.map_err(|e| StorageError::with_source(ErrorKind::Internal, e))??;
        multipart.done.insert(part.number, part);
        Ok(())
    }

    async fn abort_multipart(&mut self) {
        let Some(mut multipart) = self.multipart.take() else { return };
        multipart.in_flight.abort_all();
        while multipart.in_flight.join_next().await.is_some() {}
        let b = &self.storage.bucket;
        match b.abort_upload(&self.object, &multipart.upload_id).await {
            Ok(()) => {
                let _ =
                    self.storage.shared.directory.remove_upload(&b.location, &self.object, &multipart.upload_id).await;
            }
            // The row stays, so the sweeper tries again when the lease runs out.
            Err(e) => tracing::warn!(error = %e, "aborting a multipart upload failed; the sweeper will retry"),
        }
    }

    /// After the object became visible: record the checksums of a multipart object (`etag`: a single
    /// PutObject carries them in its metadata) and drop any older parked upload of it.
    async fn stored(&self, multipart_etag: Option<&str>) {
        let shared = &self.storage.shared;
        let b = &self.storage.bucket;
        if let (Some(etag), Some(digest)) = (multipart_etag, &self.digest) {
            if let Err(e) = shared.directory.record_digest(&b.location, &self.object, etag, &digest.to_text()).await {
                tracing::warn!(error = %e, "recording an object's checksums failed; HASH will not know them");
            }
        } else if multipart_etag.is_some() {
            let _ = shared.directory.forget_digest(&b.location, &self.object).await;
        }
        let superseded = shared.directory.resumable_uploads(&b.location, &self.object).await.unwrap_or_default();
        for old in superseded {
            if shared.directory.remove_upload(&old.location, &old.key, &old.upload_id).await.unwrap_or(false) {
                if let Err(e) = b.abort_upload(&old.key, &old.upload_id).await {
                    tracing::warn!(error = %e, "aborting a superseded parked upload failed; its parts stay");
                }
            }
        }
    }
}

#[async_trait]
impl Upload for S3Upload {
    async fn write(&mut self, buf: &[u8]) -> Result<(), StorageError> {
        self.write_bytes(buf).await
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        let b = self.storage.bucket.clone();
        if self.multipart.is_none() {
            self.checked().await?;
            let body = std::mem::take(&mut self.buf).freeze();
            let size = body.len() as u64;
            let mut request = b.client.put_object().bucket(&b.name).key(&self.object).body(ByteStream::from(body));
            if let Some(digest) = &self.digest {
                // S3 checks the SHA-256 and keeps it; the metadata keeps both checksums for HASH and APPE.
                request = request
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .checksum_sha256(base64(&digest.sha256()))
                    .metadata(DIGEST_METADATA, digest.to_text());
            }
            // The SHA-256 checksum guards the bytes, so the signature need not hash them again.
            request.customize().disable_payload_signing().send().await.map_err(sdk_error)?;
            self.stored(None).await;
            return Ok(size);
        }
        let result = async {
            if !self.buf.is_empty() || self.next_part == 1 {
                self.send_part().await?;
            }
            while self.multipart.as_ref().is_some_and(|m| !m.in_flight.is_empty()) {
                self.collect_one().await?;
            }
            let multipart = self.multipart.as_ref().expect("multipart");
            let parts: Vec<CompletedPart> = multipart
                .done
                .values()
                .map(|p| {
                    CompletedPart::builder()
                        .part_number(p.number)
                        .e_tag(&p.etag)
                        .set_checksum_crc32(p.crc32.clone())
                        .build()
                })
                .collect();
            let out = b
                .client
                .complete_multipart_upload()
                .bucket(&b.name)
                .key(&self.object)
                .upload_id(&multipart.upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(sdk_error)?;
            Ok::<_, StorageError>(out.e_tag().map(str::to_owned))
        }
        .await;
        match result {
            Ok(etag) => {
                let upload_id = self.multipart.take().expect("multipart").upload_id;
                let directory = &self.storage.shared.directory;
                let _ = directory.remove_upload(&b.location, &self.object, &upload_id).await;
                self.stored(etag.as_deref()).await;
                Ok(self.sent)
            }
            Err(e) => {
                self.abort_multipart().await;
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) {
        self.abort_multipart().await;
    }

    async fn interrupt(mut self: Box<Self>) -> Option<u64> {
        if self.storage.shared.config.park_secs == 0 || self.multipart.is_none() {
            self.abort_multipart().await;
            return None;
        }
        // Parts already on their way usually land; wait a little for them so that more can be kept.
        let drained = tokio::time::timeout(DRAIN, async {
            while self.multipart.as_ref().is_some_and(|m| !m.in_flight.is_empty()) {
                if self.collect_one().await.is_err() {
                    break;
                }
            }
        })
        .await;
        let multipart = self.multipart.as_mut().expect("checked above");
        if drained.is_err() {
            multipart.in_flight.abort_all();
        }
        let Some(last) = confirmed_prefix(multipart) else {
            self.abort_multipart().await;
            return None;
        };
        let kept = multipart.end_of[&last];
        match self.save(true).await {
            Ok(()) => {
                // The row now holds the upload; nothing to abort when `self` goes.
                self.multipart = None;
                Some(kept)
            }
            Err(e) => {
                tracing::warn!(error = %e, "parking an interrupted upload failed; aborting it");
                self.abort_multipart().await;
                None
            }
        }
    }
}

impl Drop for S3Upload {
    /// An upload dropped without commit, abort or interrupt (its task was cancelled) is aborted in the
    /// background; if that cannot run, its lease in the directory lets the sweeper do it later.
    fn drop(&mut self) {
        let Some(mut multipart) = self.multipart.take() else { return };
        multipart.in_flight.abort_all();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (storage, object) = (self.storage.clone(), self.object.clone());
        runtime.spawn(async move {
            let b = &storage.bucket;
            if b.abort_upload(&object, &multipart.upload_id).await.is_ok() {
                let _ = storage.shared.directory.remove_upload(&b.location, &object, &multipart.upload_id).await;
            }
        });
    }
}

async fn upload_part(
    b: std::sync::Arc<super::Bucket>,
    object: String,
    upload_id: String,
    number: i32,
    body: Bytes,
    room: Reservation,
) -> Result<PartDone, StorageError> {
    let crc32 = base64(&crc32fast::hash(&body).to_be_bytes());
    let out = b
        .client
        .upload_part()
        .bucket(&b.name)
        .key(&object)
        .upload_id(upload_id)
        .part_number(number)
        .checksum_crc32(&crc32)
        .body(ByteStream::from(body.clone()))
        // The CRC-32 above lets S3 reject damaged bytes; signing the payload too would hash it once more.
        .customize()
        .disable_payload_signing()
        .send()
        .await
        .map_err(sdk_error)?;
    drop(room);
    let etag = out.e_tag().ok_or(ErrorKind::Internal)?.to_owned();
    Ok(PartDone { number, etag, size: body.len() as u64, crc32: Some(crc32) })
}

/// The last part of the unbroken run of confirmed parts from part 1.
fn confirmed_prefix(multipart: &Multipart) -> Option<i32> {
    let mut last = None;
    for (expected, number) in (1..).zip(multipart.done.keys()) {
        if *number != expected {
            break;
        }
        last = Some(*number);
    }
    last
}

/// The size of part `number` for an upload whose first part is `base`: doubling every 1,000 parts.
pub(super) fn part_size(base: u64, number: i32) -> u64 {
    let step = ((number.max(1) - 1) / PARTS_PER_STEP) as u32;
    base.saturating_mul(1u64 << step.min(20)).min(MAX_PART)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn parts_grow_so_that_ten_thousand_hold_five_tebibytes() {
        assert_eq!(part_size(8 * MIB, 1), 8 * MIB);
        assert_eq!(part_size(8 * MIB, 1000), 8 * MIB);
        assert_eq!(part_size(8 * MIB, 1001), 16 * MIB);
        let total: u64 = (1..=MAX_PARTS).map(|n| part_size(8 * MIB, n)).sum();
        assert!(total >= 5 * 1024 * 1024 * MIB, "{total}");
        assert!((1..=MAX_PARTS).all(|n| part_size(5 * 1024 * MIB, n) <= MAX_PART));
    }
}
