//! Quotas, usage and the reservations of running uploads, shared by every backend.
//!
//! Usage is kept exact across sessions and instances by the directory, never in memory: an upload first
//! *reserves* room ([`Quotas::reserve`](super::Quotas::reserve)) in one transaction that locks its tenant's row, then its user's
//! (Postgres `SELECT … FOR UPDATE`; SQLite `BEGIN IMMEDIATE`), and checks usage plus every live reservation
//! plus the new one against both quotas. When the upload commits, [`Quotas::settle`](super::Quotas::settle) turns the reservation
//! into usage in one transaction; an upload that fails releases it ([`Quotas::release`](super::Quotas::release)). A reservation
//! is a lease: one left behind by a crashed instance stops counting at its `expires_at`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Quotas;
use crate::storage::StorageError;
use crate::vfs::quota::QuotaStore;

pub use crate::vfs::quota::{Account, Grant, Quota, ReservationRequest, Usage};

/// One side (tenant or user) as a reservation sees it: its quota and usage, and what *other* live
/// reservations hold.
#[derive(Debug, Clone, Copy)]
pub(super) struct Side {
    pub quota: Quota,
    pub used: Usage,
    pub others: Usage,
}

/// The bytes a reservation may hold given both sides, or `None` when even the minimum does not fit.
pub(super) fn grant(request: &ReservationRequest, sides: &[Side]) -> Option<i64> {
    let mut bytes = request.want_bytes;
    for side in sides {
        if let Some(max) = side.quota.max_files {
            if side.used.files + side.others.files + request.files > max {
                return None;
            }
        }
        if let Some(max) = side.quota.max_bytes {
            bytes = bytes.min(max - side.used.bytes - side.others.bytes);
        }
    }
    (bytes >= request.min_bytes).then_some(bytes)
}

/// Checks a quota an operator typed.
pub(super) fn validate(quota: &Quota) -> Result<(), super::DirectoryError> {
    if quota.max_bytes.is_some_and(|n| n < 0) || quota.max_files.is_some_and(|n| n < 0) {
        return Err(super::DirectoryError::Invalid("quota limits must not be negative".to_owned()));
    }
    Ok(())
}

/// The directory as the [`QuotaStore`] the user's view declares.
pub struct QuotaAccounts(pub Arc<dyn Quotas>);

#[async_trait]
impl QuotaStore for QuotaAccounts {
    async fn quota_applies(&self, tenant_id: i64, user_id: i64, now: DateTime<Utc>) -> Result<bool, StorageError> {
        let (tenant, user) = tokio::join!(self.0.tenant_account(tenant_id, now), self.0.user_account(user_id, now));
        Ok([tenant?.quota, user?.quota].iter().any(|q| q.max_bytes.is_some() || q.max_files.is_some()))
    }

    async fn reserve_room(
        &self,
        request: &ReservationRequest,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>, StorageError> {
        Ok(self.0.reserve(request, now).await?)
    }

    async fn settle_usage(
        &self,
        tenant_id: i64,
        user_id: i64,
        reservation: Option<i64>,
        change: Usage,
    ) -> Result<(), StorageError> {
        Ok(self.0.settle(tenant_id, user_id, reservation, change).await?)
    }

    async fn release_room(&self, reservation: i64) -> Result<(), StorageError> {
        Ok(self.0.release(reservation).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(min: i64, want: i64, files: i64) -> ReservationRequest {
        ReservationRequest {
            tenant_id: 1,
            user_id: 1,
            id: None,
            min_bytes: min,
            want_bytes: want,
            files,
            expires_at: Utc::now(),
        }
    }

    fn side(max_bytes: Option<i64>, max_files: Option<i64>, used: i64, others: i64) -> Side {
        Side {
            quota: Quota { max_bytes, max_files },
            used: Usage { bytes: used, files: 1 },
            others: Usage { bytes: others, files: 1 },
        }
    }

    #[test]
    fn a_grant_is_cut_to_the_smallest_room_and_refused_below_the_minimum() {
        let unlimited = side(None, None, 500, 500);
        assert_eq!(grant(&request(0, 100, 1), &[unlimited]), Some(100));
        assert_eq!(grant(&request(0, 100, 1), &[unlimited, side(Some(1000), None, 900, 50)]), Some(50));
        assert_eq!(grant(&request(60, 100, 1), &[side(Some(1000), None, 900, 50), unlimited]), None);
        assert_eq!(grant(&request(0, 100, 1), &[side(None, Some(2), 0, 0)]), None);
        assert_eq!(grant(&request(0, 100, 0), &[side(None, Some(2), 0, 0)]), Some(100));
        assert_eq!(grant(&request(0, 100, 1), &[side(None, Some(3), 0, 0)]), Some(100));
    }
}
