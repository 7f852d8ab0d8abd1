//! Continuing uploads on immutable objects. A parked multipart upload (its confirmed parts, recorded in
//! the directory as [`ParkedState`]) goes on with the next part number; a finished object becomes the start
//! of a new upload through `UploadPartCopy` (5 MiB or more: the bytes stay inside S3) or a bounded read into
//! the first part buffer (less than one part).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use super::lease::Lease;
use super::upload::{Multipart, S3Upload};
use super::{sdk_error, Head, MIN_PART};
use crate::storage::digest::Digest;
use crate::storage::ParkedUpload;
use crate::storage::{ErrorKind, StorageError};

/// A part S3 confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PartDone {
    pub number: i32,
    pub etag: String,
    pub size: u64,
    /// Base64 CRC-32 of the part, as S3 wants it back at completion; `None` for copied parts S3 did not
    /// report one for.
    pub crc32: Option<String>,
}

/// What the directory keeps of an open multipart upload (JSON in its `state` column).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ParkedState {
    pub bytes: u64,
    pub part_size: u64,
    pub parts: Vec<PartDone>,
    /// The checksums of the first `bytes` bytes; `None` when they are not known (a copied prefix).
    pub digest: Option<Digest>,
}

impl ParkedState {
    pub(super) fn from_text(text: &str) -> Option<ParkedState> {
        serde_json::from_str(text).ok()
    }
}

impl S3Upload {
    /// Continues a parked upload: its parts stay, new bytes become the next parts.
    pub(super) async fn resume(&mut self, parked: ParkedUpload, state: ParkedState) -> Result<(), StorageError> {
        // A lease written before the first part knew no part size; S3 takes no part below 5 MiB anyway.
        self.base = state.part_size.max(MIN_PART);
        self.sent = state.bytes;
        self.digest = state.digest.clone();
        self.next_part = state.parts.last().map_or(1, |p| p.number + 1);
        let mut multipart = Multipart {
            upload_id: parked.upload_id,
            in_flight: JoinSet::new(),
            done: BTreeMap::new(),
            digest_after: BTreeMap::new(),
            end_of: BTreeMap::new(),
            lease: None,
        };
        let mut end = 0;
        for part in state.parts {
            end += part.size;
            multipart.end_of.insert(part.number, end);
            multipart.done.insert(part.number, part);
        }
        if let Some(last) = multipart.done.keys().next_back().copied() {
            multipart.digest_after.insert(last, state.digest);
        }
        self.multipart = Some(multipart);
        self.save(false).await?;
        let multipart = self.multipart.as_mut().expect("set above");
        multipart.lease = Some(Lease::keep(&self.storage, &self.object, &multipart.upload_id, None));
        Ok(())
    }

    /// Makes the stored object's first `keep` bytes the start of this upload: copied inside S3 when they
    /// can form parts of their own (at least 5 MiB), else read into the first part buffer.
    pub(super) async fn keep_prefix(&mut self, keep: u64, head: Head) -> Result<(), StorageError> {
        let b = self.storage.bucket.clone();
        let etag = head.etag.clone();
        let etag = etag.as_str();
        // The recorded checksums continue only when the whole object is kept (APPE).
        let known = if keep == head.size { self.storage.recorded_digest(&self.object, head).await? } else { None };
        if keep < MIN_PART {
            // A bounded read: less than one part, into the buffer that the new bytes then fill.
            let out = b
                .client
                .get_object()
                .bucket(&b.name)
                .key(&self.object)
                .range(format!("bytes=0-{}", keep - 1))
                .if_match(etag)
                .send()
                .await
                .map_err(sdk_error)?;
            let mut reader = out.body.into_async_read();
            let mut prefix = Vec::with_capacity(keep as usize);
            reader.read_to_end(&mut prefix).await.map_err(|e| StorageError::with_source(ErrorKind::Transient, e))?;
            if prefix.len() as u64 != keep {
                return Err(ErrorKind::Transient.into());
            }
            return self.write_bytes(&prefix).await;
        }
        self.create().await?;
        let upload_id = self.multipart.as_ref().expect("created above").upload_id.clone();
        let copied = b.copy_parts(&self.object, &upload_id, &self.object, keep, self.next_part, Some(etag)).await?;
        let multipart = self.multipart.as_mut().expect("created above");
        let mut end = 0;
        for part in copied {
            end += part.size;
            multipart.end_of.insert(part.number, end);
            multipart.done.insert(part.number, part);
            self.next_part += 1;
        }
        self.sent = keep;
        self.digest = known;
        let last = self.next_part - 1;
        self.multipart.as_mut().expect("created above").digest_after.insert(last, self.digest.clone());
        Ok(())
    }
}

/// Percent-encodes a key for `x-amz-copy-source`, keeping `/`.
pub(super) fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_are_percent_encoded() {
        assert_eq!(encode_key("a b/c+d/ü.txt"), "a%20b/c%2Bd/%C3%BC.txt");
    }
}
