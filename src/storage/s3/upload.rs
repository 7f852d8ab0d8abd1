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

use super::budget::{MemoryHold, STARTER};
use super::resume::{ParkedState, PartDone};
use super::{base64, sdk_error, S3Storage, DIGEST_METADATA};
use crate::config::S3Config;
use crate::storage::digest::Digest;
use crate::storage::ParkedUpload;
use crate::storage::{ErrorKind, StorageError, Upload, WriteMode};

/// Parts per size step: the part size doubles after every 900 parts, so 10,000 parts of a file of unknown
/// length reach 2,047 × 900 + 2,048 × 100 = 2,047,100 × the first part size (10 TiB with S3's smallest
/// parts of 5 MiB; S3's objects stop at 5 TiB), unless the memory budget caps the part size
/// ([`largest_part`]).
const PARTS_PER_STEP: i32 = 900;
const MAX_PARTS: i32 = 10_000;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
/// How long a running upload's lease lasts before the sweeper may take it for lost; renewed at half-time.
const LEASE: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// How long an interrupted upload waits for its parts in flight before parking what is confirmed. Short,
/// because shutdown gives sessions only a few seconds after cancelling their transfers; a part cut off here
/// is simply not kept.
const DRAIN: Duration = Duration::from_secs(3);

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
    /// Empty until the first bytes arrive: waiting for room happens in the transfer (after `150`, where
    /// ABOR is read), never in `put`.
    pub(super) room: MemoryHold,
    pub(super) digest: Option<Digest>,
    pub(super) next_part: i32,
    /// Bytes in parts before the buffer (sent or copied).
    pub(super) sent: u64,
    pub(super) multipart: Option<Multipart>,
    /// The target's check, still running while the first bytes arrive.
    pub(super) check: Option<JoinHandle<Result<(), StorageError>>>,
    /// The stored object's first bytes that this upload starts with (REST n + STOR, APPE), kept by the
    /// first `write` or `commit`: copying them can take long, so it runs inside the transfer.
    pub(super) prefix: Option<(u64, super::Head)>,
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
        let mut upload = S3Upload {
            check,
            base: storage.shared.config.part_size,
            storage,
            object,
            buf: BytesMut::new(),
            room: MemoryHold::default(),
            prefix: None,
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
                    if shared.ledger.remove_upload(&b.location, &parked.key, &parked.upload_id).await? {
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
            upload.prefix = Some((keep, head));
        }
        Ok(upload)
    }

    fn part_target(&self) -> u64 {
        part_size(self.base, self.next_part).min(largest_part(&self.storage.shared.config))
    }

    pub(super) async fn write_bytes(&mut self, mut data: &[u8]) -> Result<(), StorageError> {
        // The lease is renewed by time, not by parts: a slow client may take hours over one part.
        if self.multipart.as_ref().is_some_and(|m| Utc::now() - m.lease_renewed > LEASE / 2) {
            self.save(false).await?;
        }
        if self.room.is_empty() && !data.is_empty() {
            self.room = self.storage.shared.budget.starter().await;
        }
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
    ///
    /// The two steps run in a task of their own: a transfer cancelled (ABOR, shutdown) while S3 creates the
    /// upload drops this future, and the upload id S3 then hands out must still reach the directory, or
    /// the upload would be orphaned. When nobody is waiting any more, the task aborts it at once.
    pub(super) async fn create(&mut self) -> Result<(), StorageError> {
        if self.multipart.is_some() {
            return Ok(());
        }
        self.checked().await?;
        let (storage, object) = (self.storage.clone(), self.object.clone());
        let (reply, created) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let b = &storage.bucket;
            let result = async {
                let request = b.client.create_multipart_upload().bucket(&b.name).key(&object);
                let out = request.checksum_algorithm(ChecksumAlgorithm::Crc32).send().await.map_err(sdk_error)?;
                let upload_id = out.upload_id().ok_or(ErrorKind::Internal)?.to_owned();
                if let Err(e) = record_lease(&storage, &object, &upload_id).await {
                    let _ = b.abort_upload(&object, &upload_id).await;
                    return Err(e);
                }
                Ok(upload_id)
            }
            .await;
            if let Err(Ok(upload_id)) = reply.send(result) {
                if b.abort_upload(&object, &upload_id).await.is_ok() {
                    let _ = storage.shared.ledger.remove_upload(&b.location, &object, &upload_id).await;
                }
            }
        });
        let upload_id = created.await.map_err(|e| StorageError::with_source(ErrorKind::Internal, e))??;
        self.multipart = Some(Multipart {
            upload_id,
            in_flight: JoinSet::new(),
            done: BTreeMap::new(),
            digest_after: BTreeMap::new(),
            end_of: BTreeMap::new(),
            lease_renewed: Utc::now(),
        });
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
        let row = upload_row(&self.storage, &self.object, &multipart.upload_id, &state, resumable);
        multipart.lease_renewed = now;
        self.storage.shared.ledger.save_upload(&row).await
    }

    /// Hands the full buffer to an UploadPart task, first waiting for room among the parts in flight.
    async fn send_part(&mut self) -> Result<(), StorageError> {
        self.create().await?;
        let limit = parts_in_flight(&self.storage.shared.config, self.buf.len() as u64);
        while self.multipart.as_ref().is_some_and(|m| m.in_flight.len() >= limit) {
            self.collect_one().await?;
        }
        if self.next_part > MAX_PARTS {
            let largest = largest_upload(&self.storage.shared.config);
            let why = format!("file exceeds S3's 10,000 parts ({largest} bytes with this server's part sizes)");
            return Err(StorageError::with_source(ErrorKind::QuotaExceeded, why));
        }
        let number = self.next_part;
        let body = std::mem::take(&mut self.buf).freeze();
        // The part takes its room along and gives it back once S3 has it.
        let room = std::mem::take(&mut self.room);
        let size = body.len() as u64;
        self.sent += size;
        self.next_part += 1;
        let multipart = self.multipart.as_mut().expect("created above");
        multipart.digest_after.insert(number, self.digest.clone());
        multipart.end_of.insert(number, self.sent);
        let b = self.storage.bucket.clone();
        let (object, upload_id) = (self.object.clone(), multipart.upload_id.clone());
        multipart.in_flight.spawn(upload_part(b, object, upload_id, number, body, room));
        // Room for the next part is taken when its bytes come (`write_bytes`): holding a whole part while
        // waiting for room could block the uploads whose parts would free it.
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

    /// After CompleteMultipartUpload failed: whether S3 completed it all the same (its reply was lost). An
    /// upload that S3 no longer knows, and that nobody aborted, was completed: telling the client it failed
    /// would be wrong, and aborting could not undo it.
    async fn completed_anyway(&self) -> bool {
        let Some(multipart) = &self.multipart else { return false };
        let b = &self.storage.bucket;
        let request = b.client.list_parts().bucket(&b.name).key(&self.object).upload_id(&multipart.upload_id);
        matches!(request.max_parts(1).send().await.map_err(sdk_error), Err(e) if e.kind() == ErrorKind::NotFound)
    }

    async fn abort_multipart(&mut self) {
        let Some(mut multipart) = self.multipart.take() else { return };
        multipart.in_flight.abort_all();
        while multipart.in_flight.join_next().await.is_some() {}
        let b = &self.storage.bucket;
        match b.abort_upload(&self.object, &multipart.upload_id).await {
            Ok(()) => {
                let _ = self.storage.shared.ledger.remove_upload(&b.location, &self.object, &multipart.upload_id).await;
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
            if let Err(e) = shared.ledger.record_digest(&b.location, &self.object, etag, &digest.to_text()).await {
                tracing::warn!(error = %e, "recording an object's checksums failed; HASH will not know them");
            }
        } else if multipart_etag.is_some() {
            let _ = shared.ledger.forget_digest(&b.location, &self.object).await;
        }
        let superseded = shared.ledger.resumable_uploads(&b.location, &self.object).await.unwrap_or_default();
        for old in superseded {
            if shared.ledger.remove_upload(&old.location, &old.key, &old.upload_id).await.unwrap_or(false) {
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
        if let Some((keep, head)) = self.prefix.take() {
            self.keep_prefix(keep, head).await?;
        }
        self.write_bytes(buf).await
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        if let Some((keep, head)) = self.prefix.take() {
            if let Err(e) = self.keep_prefix(keep, head).await {
                self.abort_multipart().await;
                return Err(e);
            }
        }
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
                let ledger = &self.storage.shared.ledger;
                let _ = ledger.remove_upload(&b.location, &self.object, &upload_id).await;
                self.stored(etag.as_deref()).await;
                Ok(self.sent)
            }
            Err(e) if self.completed_anyway().await => {
                tracing::warn!(error = %e, "CompleteMultipartUpload failed, but S3 had completed the upload");
                let upload_id = self.multipart.take().expect("multipart").upload_id;
                let _ = self.storage.shared.ledger.remove_upload(&b.location, &self.object, &upload_id).await;
                let etag = self.storage.head(&self.object).await.ok().flatten().map(|h| h.etag);
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
                let _ = storage.shared.ledger.remove_upload(&b.location, &object, &multipart.upload_id).await;
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
    room: MemoryHold,
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

/// The directory row of an open multipart upload: a lease while it runs (it outlives the lease time by
/// the parking time, so that a resumable one is not swept while its owner parks it), or parked.
fn upload_row(
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

/// The size of part `number` for an upload whose first part is `base`: doubling every 900 parts.
pub(super) fn part_size(base: u64, number: i32) -> u64 {
    let step = ((number.max(1) - 1) / PARTS_PER_STEP) as u32;
    base.saturating_mul(1u64 << step.min(20)).min(MAX_PART)
}

/// The largest part an upload may hold: half the tenant's budget (one part filling while one is on its
/// way), in whole MiB. Growing parts stop here, so that the budget covers every buffer it grants; the
/// configuration check makes it at least the first part size.
pub(super) fn largest_part(config: &S3Config) -> u64 {
    const MIB: u64 = 1024 * 1024;
    (config.tenant_memory_budget / 2 / MIB * MIB).clamp(5 * MIB, MAX_PART)
}

/// How many parts of `part` bytes may be on their way at once: the configured number while they are
/// small, fewer once the parts in flight and the one filling would outgrow the tenant's budget.
fn parts_in_flight(config: &S3Config, part: u64) -> usize {
    let fit = (config.tenant_memory_budget / part.max(1)).saturating_sub(1).max(1);
    config.parts_in_flight.min(fit as usize)
}

/// The largest file one upload can store with `config`'s part sizes (S3's own limit is 5 TiB).
pub fn largest_upload(config: &S3Config) -> u64 {
    (1..=MAX_PARTS).map(|n| part_size(config.part_size, n).min(largest_part(config))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    const TIB: u64 = 1024 * 1024 * MIB;

    fn config(part: u64, in_flight: usize, tenant_budget: u64) -> S3Config {
        S3Config {
            part_size: part,
            parts_in_flight: in_flight,
            tenant_memory_budget: tenant_budget,
            ..Default::default()
        }
    }

    #[test]
    fn parts_grow_so_that_ten_thousand_hold_five_tebibytes() {
        assert_eq!(part_size(8 * MIB, 1), 8 * MIB);
        assert_eq!(part_size(8 * MIB, 900), 8 * MIB);
        assert_eq!(part_size(8 * MIB, 901), 16 * MIB);
        for base in [5 * MIB, 8 * MIB, 64 * MIB] {
            let total: u64 = (1..=MAX_PARTS).map(|n| part_size(base, n)).sum();
            assert!(total >= 5 * TIB, "first part {base}: {total}");
        }
        assert!((1..=MAX_PARTS).all(|n| part_size(5 * 1024 * MIB, n) <= MAX_PART));
    }

    #[test]
    fn the_tenant_budget_caps_parts_and_parts_in_flight() {
        let c = config(8 * MIB, 4, 256 * MIB);
        assert_eq!(largest_part(&c), 128 * MIB);
        assert_eq!(parts_in_flight(&c, 8 * MIB), 4);
        assert_eq!(parts_in_flight(&c, 64 * MIB), 3, "3 in flight + 1 filling = 256 MiB");
        assert_eq!(parts_in_flight(&c, 128 * MIB), 1);
        // Every part the schedule asks for, with as many in flight as allowed, fits in the tenant's budget.
        for n in 1..=MAX_PARTS {
            let part = part_size(c.part_size, n).min(largest_part(&c));
            assert!(part * (parts_in_flight(&c, part) as u64 + 1) <= c.tenant_memory_budget, "part {n}");
        }
        // The defaults store about 0.9 TiB in one upload; a 2.5 GiB tenant budget reaches S3's 5 TiB.
        assert!((900 * 1024 * MIB..TIB).contains(&largest_upload(&c)), "{}", largest_upload(&c));
        assert!(largest_upload(&config(8 * MIB, 4, 2560 * MIB)) >= 5 * TIB);
    }
}
