//! The parts of a multipart upload: how large each one is (growing so that 10,000 parts hold a file of
//! unknown size, capped by the tenant's memory budget), how many may be on their way at once, and the
//! `UploadPart` request that sends one.

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::budget::MemoryHold;
use super::resume::PartDone;
use super::{base64, sdk_error};
use crate::config::S3Config;
use crate::storage::{ErrorKind, StorageError};

/// Parts per size step: the part size doubles after every 900 parts, so 10,000 parts of a file of unknown
/// length reach 2,047 × 900 + 2,048 × 100 = 2,047,100 × the first part size (10 TiB with S3's smallest
/// parts of 5 MiB; S3's objects stop at 5 TiB), unless the memory budget caps the part size
/// ([`largest_part`]).
const PARTS_PER_STEP: i32 = 900;
pub(super) const MAX_PARTS: i32 = 10_000;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;

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
pub(super) fn parts_in_flight(config: &S3Config, part: u64) -> usize {
    let fit = (config.tenant_memory_budget / part.max(1)).saturating_sub(1).max(1);
    config.parts_in_flight.min(fit as usize)
}

/// The largest file one upload can store with `config`'s part sizes (S3's own limit is 5 TiB).
pub fn largest_upload(config: &S3Config) -> u64 {
    (1..=MAX_PARTS).map(|n| part_size(config.part_size, n).min(largest_part(config))).sum()
}

/// Sends one part; the part gives its `room` back to the budget once S3 has it.
pub(super) async fn upload_part(
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
