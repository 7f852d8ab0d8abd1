//! Quotas, usage and the reservations of running uploads, shared by every backend.
//!
//! Usage is kept exact across sessions and instances by the directory, never in memory: an upload first
//! *reserves* room ([`Directory::reserve`]) in one transaction that locks its tenant's row, then its user's
//! (Postgres `SELECT … FOR UPDATE`; SQLite `BEGIN IMMEDIATE`), and checks usage plus every live reservation
//! plus the new one against both quotas. When the upload commits, [`Directory::settle`] turns the reservation
//! into usage in one transaction; an upload that fails releases it ([`Directory::release`]). A reservation
//! is a lease: one left behind by a crashed instance stops counting at its `expires_at`.

use chrono::{DateTime, Utc};

/// Limits of a tenant or user; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub max_bytes: Option<i64>,
    pub max_files: Option<i64>,
}

/// Bytes and files: stored, reserved, or a change of either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: i64,
    pub files: i64,
}

/// A tenant's or user's quota, what it stores and what running uploads hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Account {
    pub quota: Quota,
    pub used: Usage,
    /// Unexpired reservations.
    pub reserved: Usage,
}

/// Room an upload asks for: at least `min.bytes`, up to `want.bytes` if it fits, and exactly `want.files`.
/// With `id`, the reservation of that id is replaced by the new totals (and its lease renewed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationRequest {
    pub tenant_id: i64,
    pub user_id: i64,
    pub id: Option<i64>,
    pub min_bytes: i64,
    pub want_bytes: i64,
    pub files: i64,
    pub expires_at: DateTime<Utc>,
}

/// A reservation that was granted: its id and the bytes it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub id: i64,
    pub bytes: i64,
}

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
