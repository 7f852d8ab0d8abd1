//! Quotas on uploads (RFC 959 §4.1.3 ALLO; 552 "exceeded storage allocation", §4.2.1), applied by the
//! user's view, so that every front end gets them.
//!
//! An upload reserves room before its first byte (the size ALLO announced, else a first [`FIRST_STEP`],
//! plus one file when the target is new), then more room a step at a time as bytes arrive, so the store is
//! asked once per step, not per write. Commit turns the reservation into usage (`new size - size of the
//! file replaced`, one more file if it was new); failure or abort releases it. The [`QuotaStore`] this
//! layer declares keeps the numbers exact across sessions and instances; the directory implements it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::storage::{ErrorKind, Storage, StorageError, StorageKey, Upload, WriteMode};

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

/// Where quotas, usage and reservations are kept. Failures are storage errors: an unreachable store is
/// [`ErrorKind::Transient`].
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// Whether a quota applies to the tenant or to the user.
    async fn quota_applies(&self, tenant_id: i64, user_id: i64, now: DateTime<Utc>) -> Result<bool, StorageError>;
    /// Grants room within both quotas, or `None` when it does not fit (see [`ReservationRequest`]).
    async fn reserve_room(
        &self,
        request: &ReservationRequest,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>, StorageError>;
    /// Counts `change` as stored and drops `reservation`, in one step.
    async fn settle_usage(
        &self,
        tenant_id: i64,
        user_id: i64,
        reservation: Option<i64>,
        change: Usage,
    ) -> Result<(), StorageError>;
    async fn release_room(&self, reservation: i64) -> Result<(), StorageError>;
}

/// The first room reserved when the size is not known in advance; each further step doubles what the
/// upload holds, up to [`MAX_STEP`], so a large upload asks the quota store a few dozen times per GiB and a
/// small one does not hold much more than it needs while others wait for room.
const FIRST_STEP: i64 = 1 << 20;
const MAX_STEP: i64 = 64 << 20;
/// How long a reservation holds without renewal; a running upload renews it at half time.
const LEASE: Duration = Duration::from_secs(600);

/// Who an upload or delete is counted against.
#[derive(Clone)]
pub(super) struct Ledger {
    pub(super) store: Arc<dyn QuotaStore>,
    pub(super) tenant_id: i64,
    pub(super) user_id: i64,
}

impl Ledger {
    async fn reserve(&self, id: Option<i64>, min: i64, want: i64, files: i64) -> Result<Grant, StorageError> {
        let now = Utc::now();
        let request = ReservationRequest {
            tenant_id: self.tenant_id,
            user_id: self.user_id,
            id,
            min_bytes: min,
            want_bytes: want,
            files,
            expires_at: now + LEASE,
        };
        match self.store.reserve_room(&request, now).await? {
            Some(grant) => Ok(grant),
            None => Err(StorageError::new(ErrorKind::QuotaExceeded)),
        }
    }

    /// Counts a change of stored bytes and files (and drops `reservation`). The storage already changed,
    /// so a failure here is logged, not reported: `wharf usage recompute` repairs the count.
    async fn settle(&self, reservation: Option<i64>, change: Usage) {
        if let Err(e) = self.store.settle_usage(self.tenant_id, self.user_id, reservation, change).await {
            tracing::warn!(error = %e, tenant = self.tenant_id, bytes = change.bytes, files = change.files,
                "usage not updated; run `wharf usage recompute`");
        }
    }

    /// Drops a reservation before the reply goes out, so the room is free when the client hears of it. A
    /// release that fails leaves a lease that runs out by itself.
    async fn release(&self, reservation: i64) {
        if let Err(e) = self.store.release_room(reservation).await {
            tracing::debug!(error = %e, "quota reservation not released; its lease will run out");
        }
    }

    /// [`Ledger::release`] from where nothing can be awaited (an upload dropped unfinished).
    fn release_later(&self, reservation: i64) {
        let ledger = self.clone();
        tokio::spawn(async move { ledger.release(reservation).await });
    }

    /// After a file of `size` bytes was deleted or replaced by a rename.
    pub(super) async fn removed(&self, size: u64) {
        self.settle(None, Usage { bytes: -(size as i64), files: -1 }).await;
    }
}

/// Whether a quota applies to the tenant or the user (an unreadable answer counts as yes: the careful
/// path).
pub(super) async fn limited(ledger: &Ledger) -> bool {
    ledger.store.quota_applies(ledger.tenant_id, ledger.user_id, Utc::now()).await.unwrap_or(true)
}

/// What an upload will replace: the size of the file now at `key` and whether there is none.
async fn target(storage: &dyn Storage, key: &StorageKey) -> Result<(i64, bool), StorageError> {
    Ok(match storage.file_size(key).await? {
        Some(size) => (size as i64, false),
        None => (0, true),
    })
}

/// The size of the plain file at `key`, if there is one (before a DELE or a rename onto it).
pub(super) async fn file_size(storage: &dyn Storage, key: &StorageKey) -> Option<u64> {
    storage.file_size(key).await.ok().flatten()
}

/// Reserves room for an upload to `key` before any data flows; [`ErrorKind::QuotaExceeded`] when it does
/// not fit. `announced` is the size ALLO gave; without a quota (`limited` false) nothing is reserved.
pub(super) async fn reserve(
    ledger: Ledger,
    limited: bool,
    storage: &dyn Storage,
    key: &StorageKey,
    mode: WriteMode,
    announced: Option<u64>,
) -> Result<QuotaHold, StorageError> {
    if !limited {
        return Ok(QuotaHold { ledger, grant: None, files: 0, base: 0 });
    }
    let (_, new) = target(storage, key).await?;
    // A resumed upload ends as its kept prefix plus what arrives; replaced bytes are credited only at
    // commit, so that two uploads replacing one file cannot both count its room as free.
    let base = match mode {
        WriteMode::Resume(n) => n as i64,
        WriteMode::Create | WriteMode::Append => 0,
    };
    let files = i64::from(new);
    let (min, want) = match announced {
        Some(n) => (base + n as i64, base + n as i64),
        None => (base, base + FIRST_STEP),
    };
    let grant = ledger.reserve(None, min, want, files).await?;
    Ok(QuotaHold { ledger, grant: Some(grant), files, base })
}

/// Room held for one upload, not yet attached to it; none when no quota applies.
pub(super) struct QuotaHold {
    ledger: Ledger,
    grant: Option<Grant>,
    files: i64,
    base: i64,
}

impl QuotaHold {
    /// The upload failed to start.
    pub(super) async fn release(self) {
        if let Some(grant) = self.grant {
            self.ledger.release(grant.id).await;
        }
    }

    /// Wraps the backend's upload so that its writes stay within the reservation.
    pub(super) fn attach(self, inner: Box<dyn Upload>, storage: Arc<dyn Storage>, key: StorageKey) -> Box<dyn Upload> {
        // Without a quota nothing can be refused, so what the upload replaces is read while its bytes
        // arrive (on S3 a HEAD that would otherwise delay the 226); with one, at commit, as late as can be.
        let replaced = self.grant.is_none().then(|| {
            let (storage, key) = (storage.clone(), key.clone());
            tokio::spawn(async move { target(&*storage, &key).await })
        });
        Box::new(Counted {
            replaced,
            inner: Some(inner),
            storage,
            key,
            limited: self.grant.is_some(),
            held: self.grant,
            ledger: self.ledger,
            files: self.files,
            counted: self.base,
            renewed: Instant::now(),
        })
    }
}

/// An upload that grows its reservation before its bytes go on.
struct Counted {
    inner: Option<Box<dyn Upload>>,
    storage: Arc<dyn Storage>,
    key: StorageKey,
    /// The reservation, until it is settled or released (never, without a quota).
    held: Option<Grant>,
    /// What the upload replaces, read early when no quota applies.
    replaced: Option<tokio::task::JoinHandle<Result<(i64, bool), StorageError>>>,
    limited: bool,
    ledger: Ledger,
    files: i64,
    /// Bytes the reservation must cover so far.
    counted: i64,
    renewed: Instant,
}

#[async_trait]
impl Upload for Counted {
    async fn write(&mut self, buf: &[u8]) -> Result<(), StorageError> {
        let need = self.counted + buf.len() as i64;
        if !self.limited {
            self.inner.as_mut().expect("present until commit or abort").write(buf).await?;
            self.counted = need;
            return Ok(());
        }
        let held = self.held.expect("held until commit or abort");
        if need > held.bytes || self.renewed.elapsed() > LEASE / 2 {
            let want = if need > held.bytes { need + held.bytes.clamp(FIRST_STEP, MAX_STEP) } else { held.bytes };
            self.held = Some(self.ledger.reserve(Some(held.id), need, want, self.files).await?);
            self.renewed = Instant::now();
        }
        self.inner.as_mut().expect("present until commit or abort").write(buf).await?;
        self.counted = need;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        let inner = self.inner.take().expect("present until commit or abort");
        let held = self.held.take().map(|g| g.id);
        // What the new object replaces, as late as possible (the upload may have run for a while).
        let replaced = match self.replaced.take() {
            Some(early) => early.await.map_err(|e| StorageError::with_source(ErrorKind::Internal, e)).and_then(|r| r),
            None => target(&*self.storage, &self.key).await,
        };
        let size = match inner.commit().await {
            Ok(size) => size,
            Err(e) => {
                if let Some(id) = held {
                    self.ledger.release(id).await;
                }
                return Err(e);
            }
        };
        let (old, new) = replaced.unwrap_or((0, self.files > 0));
        self.ledger.settle(held, Usage { bytes: size as i64 - old, files: i64::from(new) }).await;
        Ok(size)
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            inner.abort().await;
        }
        if let Some(grant) = self.held.take() {
            self.ledger.release(grant.id).await;
        }
    }

    async fn interrupt(mut self: Box<Self>) -> Option<u64> {
        // Bytes kept for a later REST + STOR or APPE are counted when that upload commits.
        let kept = self.inner.take()?.interrupt().await;
        if let Some(grant) = self.held.take() {
            self.ledger.release(grant.id).await;
        }
        kept
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(grant) = self.held.take() {
            self.ledger.release_later(grant.id);
        }
    }
}
