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
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use bytes::BytesMut;
use tokio::task::{JoinHandle, JoinSet};

use super::budget::{MemoryHold, STARTER};
use super::lease::{lease_row, record_lease, upload_row, Lease};
use super::parts::{largest_part, largest_upload, part_size, parts_in_flight, upload_part, MAX_PARTS};
use super::resume::{ParkedState, PartDone};
use super::{base64, sdk_error, S3Storage, DIGEST_METADATA};
use crate::storage::digest::Digest;
use crate::storage::{ErrorKind, StorageError, Upload, WriteMode};

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
    /// Renews the upload's row while it runs.
    pub(super) lease: Option<Lease>,
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
                match record_lease(&storage, &object, &upload_id).await {
                    Ok(lease) => Ok((upload_id, lease)),
                    // The directory is down: the upload goes on, and its row is written once it is back.
                    Err(e) if e.kind() == ErrorKind::Transient => {
                        tracing::warn!(error = %e, key = %object, "a multipart upload starts before its row is recorded");
                        let row = lease_row(&storage, &object, &upload_id);
                        Ok((upload_id.clone(), Lease::keep(&storage, &object, &upload_id, Some(row))))
                    }
                    Err(e) => {
                        let _ = b.abort_upload(&object, &upload_id).await;
                        Err(e)
                    }
                }
            }
            .await;
            if let Err(Ok((upload_id, _lease))) = reply.send(result) {
                if b.abort_upload(&object, &upload_id).await.is_ok() {
                    let _ = storage.shared.ledger.remove_upload(&b.location, &object, &upload_id).await;
                }
            }
        });
        let (upload_id, lease) = created.await.map_err(|e| StorageError::with_source(ErrorKind::Internal, e))??;
        self.multipart = Some(Multipart {
            upload_id,
            in_flight: JoinSet::new(),
            done: BTreeMap::new(),
            digest_after: BTreeMap::new(),
            end_of: BTreeMap::new(),
            lease: Some(lease),
        });
        Ok(())
    }

    /// Writes this upload's row: a lease while running, or the parked state (`resumable`) with the
    /// committed parts only.
    pub(super) async fn save(&mut self, resumable: bool) -> Result<(), StorageError> {
        let multipart = self.multipart.as_mut().expect("only multipart uploads are recorded");
        let confirmed = confirmed_prefix(multipart);
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

    /// After CompleteMultipartUpload failed: whether S3 completed it all the same (its reply was lost, and a
    /// retry found the upload gone). Only when the store no longer knows the upload and the object now
    /// there is this upload's: its size, the part count of its ETag and, when the store reports one, its
    /// composite CRC-32 must all match. Telling the client it failed would then be wrong, and aborting
    /// could not undo it.
    async fn completed_anyway(&self) -> bool {
        let Some(multipart) = &self.multipart else { return false };
        let b = &self.storage.bucket;
        let request = b.client.list_parts().bucket(&b.name).key(&self.object).upload_id(&multipart.upload_id);
        if !matches!(request.max_parts(1).send().await.map_err(sdk_error), Err(e) if e.kind() == ErrorKind::NotFound) {
            return false;
        }
        let head = b.client.head_object().bucket(&b.name).key(&self.object).checksum_mode(ChecksumMode::Enabled);
        let Ok(head) = head.send().await else { return false };
        let parts = multipart.done.len();
        let etag_parts = head.e_tag().and_then(|e| e.trim_matches('"').rsplit_once('-')).map(|(_, n)| n.to_owned());
        let crc_matches = match head.checksum_crc32().and_then(|c| c.split_once('-')) {
            Some((crc, _)) => composite_crc32(multipart).is_some_and(|ours| ours == crc),
            None => true,
        };
        head.content_length() == Some(self.sent as i64)
            && etag_parts.is_none_or(|n| n == parts.to_string())
            && crc_matches
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

    /// Keeps the confirmed parts for a later REST + STOR or APPE of the same user: waits a little for the
    /// parts in flight, then parks the unbroken run from part 1 and returns its bytes. Aborts the upload
    /// when nothing can be kept (no multipart upload yet, parking off, no part confirmed).
    async fn park(&mut self) -> Option<u64> {
        if self.storage.shared.config.park_secs == 0 || self.multipart.is_none() {
            self.abort_multipart().await;
            return None;
        }
        // Parts already on their way usually land; wait a little for them so that more can be kept.
        // A failed part does not stop the wait: the parts before it may still land.
        let drained = tokio::time::timeout(DRAIN, async {
            while self.multipart.as_ref().is_some_and(|m| !m.in_flight.is_empty()) {
                let _ = self.collect_one().await;
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
            // The store failed for longer than the retries: keep what it confirmed.
            Err(e) if e.kind() == ErrorKind::Transient => {
                let kept = self.park().await;
                Err(e.with_kept(kept))
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
        self.park().await
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

/// The CRC-32 S3 reports for a multipart object (before its `-<parts>`): the CRC-32 of the parts' CRC-32s
/// in order, base64. `None` when a part's checksum is unknown.
fn composite_crc32(multipart: &Multipart) -> Option<String> {
    use base64::Engine as _;
    let mut crcs = Vec::with_capacity(multipart.done.len() * 4);
    for part in multipart.done.values() {
        crcs.extend(base64::engine::general_purpose::STANDARD.decode(part.crc32.as_deref()?).ok()?);
    }
    Some(base64(&crc32fast::hash(&crcs).to_be_bytes()))
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
