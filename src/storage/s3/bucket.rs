//! One tenant's bucket and the requests on it that are not a single object's: aborting a multipart upload
//! and copying an object's bytes into one (`UploadPartCopy`, in ranges S3 accepts as parts).

use std::sync::Arc;

use aws_sdk_s3::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::budget::TenantBudget;
use super::{resume, sdk_error};
use crate::storage::{ErrorKind, StorageError};

/// S3's smallest part (except the last) and largest single copy.
pub(super) const MIN_PART: u64 = 5 * 1024 * 1024;
pub(super) const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;

/// One tenant's bucket and prefix, with the client that reaches them.
#[derive(Debug)]
pub(super) struct Bucket {
    pub(super) client: Client,
    pub(super) name: String,
    /// Empty, or ends with `/`.
    pub(super) prefix: String,
    /// `<endpoint>/<bucket>`: names the store in upload and checksum records.
    pub(super) location: String,
    pub(super) budget: Arc<TenantBudget>,
}

impl Bucket {
    /// Aborts a multipart upload; one that is already gone (completed, aborted) counts as aborted.
    pub(super) async fn abort_upload(&self, object: &str, upload_id: &str) -> Result<(), StorageError> {
        abort_upload(&self.client, &self.name, object, upload_id).await
    }

    /// Copies the first `len` bytes of `source` into the multipart upload `upload_id` of `object`, as parts
    /// numbered from `first_number` (5 GiB ranges, [`COPIES_AT_ONCE`] at a time), inside S3: none of the
    /// bytes pass through wharf. `if_match` pins the source's ETag, so a source replaced meanwhile fails
    /// the copy instead of mixing two versions.
    pub(super) async fn copy_parts(
        &self,
        object: &str,
        upload_id: &str,
        source: &str,
        len: u64,
        first_number: i32,
        if_match: Option<&str>,
    ) -> Result<Vec<resume::PartDone>, StorageError> {
        let copy_source = format!("{}/{}", self.name, resume::encode_key(source));
        let copies = copy_ranges(len).into_iter().zip(first_number..).map(|((first, last), number)| {
            let copy_source = &copy_source;
            async move {
                let out = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.name)
                    .key(object)
                    .upload_id(upload_id)
                    .part_number(number)
                    .copy_source(copy_source)
                    .copy_source_range(format!("bytes={first}-{last}"))
                    .set_copy_source_if_match(if_match.map(str::to_owned))
                    .send()
                    .await
                    .map_err(sdk_error)?;
                let result = out.copy_part_result();
                let etag = result.and_then(|r| r.e_tag()).unwrap_or_default().to_owned();
                let crc32 = result.and_then(|r| r.checksum_crc32()).map(str::to_owned);
                Ok::<_, StorageError>(resume::PartDone { number, etag, size: last - first + 1, crc32 })
            }
        });
        stream::iter(copies).buffered(COPIES_AT_ONCE).try_collect().await
    }
}

/// UploadPartCopy requests of one copy that run at once.
const COPIES_AT_ONCE: usize = 4;

pub(super) async fn abort_upload(
    client: &Client,
    bucket: &str,
    object: &str,
    upload_id: &str,
) -> Result<(), StorageError> {
    let request = client.abort_multipart_upload().bucket(bucket).key(object).upload_id(upload_id);
    match request.send().await.map_err(sdk_error) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The first `len` bytes of an object cut into copy ranges `(first, last)` (inclusive) of at most 5 GiB each
/// and of equal size but for the last, so that every range is also a valid part (5 MiB or more when
/// `len` is).
fn copy_ranges(len: u64) -> Vec<(u64, u64)> {
    let count = len.div_ceil(MAX_COPY).max(1);
    let step = len.div_ceil(count);
    (0..count).map(|i| (i * step, ((i + 1) * step).min(len) - 1)).filter(|(first, last)| first <= last).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges_cover_everything_in_parts_s3_accepts() {
        const GIB: u64 = 1024 * 1024 * 1024;
        for len in [MIN_PART, MAX_COPY, MAX_COPY + 1, 12 * GIB + 7, 5 * 1024 * GIB] {
            let ranges = copy_ranges(len);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges.last().unwrap().1, len - 1);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0, "{len}: contiguous");
            }
            for (first, last) in &ranges {
                let size = last - first + 1;
                assert!((MIN_PART..=MAX_COPY).contains(&size), "{len}: a {size}-byte range");
            }
            assert!(ranges.len() <= 10_000);
        }
        assert_eq!(copy_ranges(MAX_COPY + 2), [(0, MAX_COPY / 2), (MAX_COPY / 2 + 1, MAX_COPY + 1)]);
    }
}
