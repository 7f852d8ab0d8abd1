//! RNFR/RNTO on a flat namespace: copy, then delete. A file is one CopyObject (a multipart copy above
//! 5 GiB); a directory is every key below it, up to a configured count. All copies are made before any
//! source is deleted, and a failed copy removes the copies already made, so an error never leaves a tree
//! half in each place.

use futures_util::stream::{self, StreamExt};

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};

use super::lease::record_lease;
use super::resume::encode_key;
use super::{sdk_error, S3Storage, MAX_COPY};
use crate::storage::{ErrorKind, StorageError, StorageKey};

/// Copies run this many at a time.
const PARALLEL: usize = 8;
/// DeleteObjects takes at most 1,000 keys.
const DELETE_BATCH: usize = 1000;
const DELETE_ATTEMPTS: u32 = 3;

pub(super) async fn rename(s: &S3Storage, from: &StorageKey, to: &StorageKey) -> Result<(), StorageError> {
    if from.is_root() || to.is_root() {
        return Err(ErrorKind::Denied.into());
    }
    let (source, target) = (s.object(from), s.object(to));
    let (source_file, source_dir) = tokio::join!(s.head(&source), s.dir_meta(from));
    let (source_file, source_dir) = (source_file?, source_dir?.is_some());
    if source_file.is_none() && !source_dir {
        return Err(ErrorKind::NotFound.into());
    }
    // A file and a directory can share a name on S3; the file is what clients see (as `stat` reports).
    let is_dir = source_file.is_none();
    if is_dir && to.as_str().starts_with(&format!("{}/", from.as_str())) {
        return Err(ErrorKind::Denied.into());
    }
    let (parent, target_file, target_dir) = tokio::join!(s.check_parent(to), s.head(&target), s.dir_meta(to));
    parent?;
    let (target_file, target_dir) = (target_file?, target_dir?.is_some());
    // Only a file replaces a file; anything else already there is in the way.
    if target_dir || (is_dir && target_file.is_some()) {
        return Err(ErrorKind::AlreadyExists.into());
    }
    if from == to {
        return Ok(());
    }
    if let Some(head) = source_file {
        // The copy is of the object just looked at, and the source goes only if it is still that object:
        // a STOR that replaced it meanwhile got its 226, and its file stays where it was stored.
        let etag = copy_object(s, &source, &target, head.size, Some(&head.etag)).await?;
        move_digest(s, &source, &target, &head.etag, etag.as_deref()).await;
        if !delete_if_unchanged(s, &source, &head.etag).await? {
            tracing::info!(key = %source, "the rename's source was replaced during the rename; the new file stays");
            return Ok(());
        }
        forget_digests(s, std::slice::from_ref(&source)).await;
        return s.keep_parent(from).await;
    }
    rename_tree(s, from, to).await?;
    s.keep_parent(from).await
}

async fn rename_tree(s: &S3Storage, from: &StorageKey, to: &StorageKey) -> Result<(), StorageError> {
    let (source_prefix, target_prefix) = (s.dir_prefix(from), s.dir_prefix(to));
    let limit = s.shared.config.max_rename_objects;
    let mut objects = Vec::new();
    let mut token = None;
    loop {
        let page = s.list_page(&source_prefix, false, None, token).await?;
        for object in page.contents() {
            if let Some(key) = object.key() {
                objects.push((
                    key.to_owned(),
                    object.size().unwrap_or(0).max(0) as u64,
                    object.e_tag().map(str::to_owned),
                ));
            }
        }
        if objects.len() > limit {
            return Err(StorageError::with_source(
                ErrorKind::LimitExceeded,
                format!("directory holds more than {limit} objects"),
            ));
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => break,
        }
    }
    let target_of = |key: &str| format!("{target_prefix}{}", &key[source_prefix.len()..]);
    let jobs: Vec<(String, String, u64, Option<String>)> =
        objects.iter().map(|(key, size, etag)| (key.clone(), target_of(key), *size, etag.clone())).collect();
    let copied: Vec<Result<String, StorageError>> = stream::iter(jobs)
        .map(|(key, target, size, etag)| async move {
            let new_etag = copy_object(s, &key, &target, size, etag.as_deref()).await?;
            if let Some(etag) = etag {
                move_digest(s, &key, &target, &etag, new_etag.as_deref()).await;
            }
            Ok(target)
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    if let Some(failed) = copied.iter().position(Result::is_err) {
        let made: Vec<String> = copied.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
        match delete_all(s, &made).await {
            Ok(()) => forget_digests(s, &made).await,
            Err(e) => tracing::error!(error = %e, "removing the copies of a failed directory rename failed"),
        }
        return Err(copied.into_iter().nth(failed).expect("position found").expect_err("is an error"));
    }
    // Every copy exists: from here the move can only go forward (a source already deleted cannot come
    // back), so `delete_all` retries. If it still fails, both trees are whole and the client hears so.
    let sources: Vec<String> = objects.into_iter().map(|(key, _, _)| key).collect();
    delete_all(s, &sources).await?;
    forget_digests(s, &sources).await;
    Ok(())
}

/// Deletes `object` if its ETag is still `etag`; `false` when another writer replaced it. The delete
/// carries `If-Match`, which closes the race on stores that honour it (AWS S3 answers 412); stores that
/// ignore it (Garage 2.5) are guarded by a HEAD just before, which leaves a window of one round trip.
async fn delete_if_unchanged(s: &S3Storage, object: &str, etag: &str) -> Result<bool, StorageError> {
    let b = &s.bucket;
    if s.head(object).await?.is_none_or(|now| now.etag != etag) {
        return Ok(false);
    }
    match b.client.delete_object().bucket(&b.name).key(object).if_match(etag).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok(false),
        Err(e) => Err(sdk_error(e)),
    }
}

/// Copies one object inside the bucket, only while its ETag is `if_match` when given; returns the new
/// ETag. A source replaced meanwhile fails the copy (412) instead of mixing in the new version.
async fn copy_object(
    s: &S3Storage,
    source: &str,
    target: &str,
    size: u64,
    if_match: Option<&str>,
) -> Result<Option<String>, StorageError> {
    let b = &s.bucket;
    let copy_source = format!("{}/{}", b.name, encode_key(source));
    if size <= MAX_COPY {
        let out = b
            .client
            .copy_object()
            .bucket(&b.name)
            .key(target)
            .copy_source(copy_source)
            .set_copy_source_if_match(if_match.map(str::to_owned))
            .send()
            .await
            .map_err(sdk_error)?;
        return Ok(out.copy_object_result().and_then(|r| r.e_tag()).map(str::to_owned));
    }
    // Above 5 GiB CopyObject refuses; a multipart upload of copied ranges does the same inside S3. It is
    // recorded like an upload, so that one cut off with its process is swept, not orphaned.
    let created = b.client.create_multipart_upload().bucket(&b.name).key(target).send().await.map_err(sdk_error)?;
    let upload_id = created.upload_id().ok_or(ErrorKind::Internal)?.to_owned();
    let _lease = match record_lease(s, target, &upload_id).await {
        Ok(lease) => lease,
        Err(e) => {
            let _ = b.abort_upload(target, &upload_id).await;
            return Err(e);
        }
    };
    let copy = async {
        let parts = b.copy_parts(target, &upload_id, source, size, 1, if_match).await?;
        let done: Vec<CompletedPart> =
            parts.iter().map(|p| CompletedPart::builder().part_number(p.number).e_tag(&p.etag).build()).collect();
        let out = b
            .client
            .complete_multipart_upload()
            .bucket(&b.name)
            .key(target)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
            .send()
            .await
            .map_err(sdk_error)?;
        Ok::<_, StorageError>(out.e_tag().map(str::to_owned))
    };
    let result = copy.await;
    if let Err(e) = &result {
        tracing::warn!(error = %e, "a multipart copy failed; aborting it");
        if let Err(e) = b.abort_upload(target, &upload_id).await {
            tracing::warn!(error = %e, "aborting the multipart copy of a failed rename failed; the sweeper will");
            return result;
        }
    }
    let _ = s.shared.ledger.remove_upload(&b.location, target, &upload_id).await;
    result
}

/// The copy has the same bytes, so the source's recorded checksums describe it too (under its new ETag).
/// The source's record stays until the source itself is deleted ([`forget_digests`]).
async fn move_digest(s: &S3Storage, source: &str, target: &str, source_etag: &str, target_etag: Option<&str>) {
    let ledger = &s.shared.ledger;
    let location = &s.bucket.location;
    let recorded = ledger.digest(location, source).await.ok().flatten();
    let _ = ledger.forget_digest(location, target).await;
    if let (Some((etag, digest)), Some(target_etag)) = (recorded, target_etag) {
        if etag == source_etag {
            if let Err(e) = ledger.record_digest(location, target, target_etag, &digest).await {
                tracing::warn!(error = %e, "moving an object's checksums failed");
            }
        }
    }
}

/// Drops the checksum records of objects that were deleted.
async fn forget_digests(s: &S3Storage, objects: &[String]) {
    for object in objects {
        let _ = s.shared.ledger.forget_digest(&s.bucket.location, object).await;
    }
}

/// Deletes `keys`, a batch of DeleteObjects at a time; the keys a batch could not delete are tried again
/// (three attempts in all, a growing pause between them).
async fn delete_all(s: &S3Storage, keys: &[String]) -> Result<(), StorageError> {
    for batch in keys.chunks(DELETE_BATCH) {
        let mut left = batch.to_vec();
        for attempt in 1.. {
            match delete_batch(s, &left).await {
                Ok(failed) if failed.is_empty() => break,
                Ok(failed) if attempt < DELETE_ATTEMPTS => left = failed,
                Err(e) if attempt < DELETE_ATTEMPTS && e.kind() == ErrorKind::Transient => {}
                Ok(failed) => {
                    return Err(StorageError::with_source(
                        ErrorKind::Transient,
                        format!("{} objects could not be deleted, the first {:?}", failed.len(), failed[0]),
                    ))
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
        }
    }
    Ok(())
}

/// One DeleteObjects call; returns the keys it failed to delete.
async fn delete_batch(s: &S3Storage, batch: &[String]) -> Result<Vec<String>, StorageError> {
    let b = &s.bucket;
    {
        let objects: Vec<ObjectIdentifier> = batch
            .iter()
            .map(|k| {
                ObjectIdentifier::builder()
                    .key(k)
                    .build()
                    .map_err(|e| StorageError::with_source(ErrorKind::Internal, e))
            })
            .collect::<Result<_, _>>()?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| StorageError::with_source(ErrorKind::Internal, e))?;
        let out = b.client.delete_objects().bucket(&b.name).delete(delete).send().await.map_err(sdk_error)?;
        if let Some(error) = out.errors().first() {
            tracing::warn!(key = ?error.key(), code = ?error.code(), failed = out.errors().len(), "DeleteObjects left keys");
        }
        Ok(out.errors().iter().filter_map(|e| e.key().map(str::to_owned)).collect())
    }
}
