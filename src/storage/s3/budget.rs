//! The memory budget for part buffers: all uploads together, and each tenant, may hold at most so many
//! bytes. An upload that cannot get room waits, and while it waits it reads nothing from its data socket,
//! so TCP pushes the wait back to the client.
//!
//! Deadlock freedom: a part buffer starts with a small allowance from the *starter* pool and, once it
//! outgrows that, takes the rest of a whole part from the tenant's and then the global *parts* pool in one
//! step. Whoever holds a whole part never needs more to finish it (the part is sent and released), so the
//! uploads waiting on the parts pool always see it drain. Uploads that only hold starter room cannot block
//! each other: the starter pool is separate.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budget accounting granularity.
const UNIT: u64 = 64 * 1024;
/// Room every part buffer starts with; small files never need more.
pub const STARTER: u64 = 256 * 1024;

#[derive(Debug)]
pub struct Budget {
    starter: Arc<Semaphore>,
    parts: Arc<Semaphore>,
    parts_capacity: u32,
}

impl Budget {
    /// `bytes` for all part buffers; an eighth of it (at least 16 starters) serves small files.
    pub fn new(bytes: u64) -> Arc<Budget> {
        let total = units(bytes).max(2);
        let starter = (total / 8).max(units(STARTER) * 16).min(total - 1);
        let parts = total - starter;
        Arc::new(Budget {
            starter: Arc::new(Semaphore::new(starter as usize)),
            parts: Arc::new(Semaphore::new(parts as usize)),
            parts_capacity: parts,
        })
    }

    pub async fn starter(&self) -> MemoryHold {
        let permit = acquire(&self.starter, units(STARTER)).await;
        MemoryHold { global: vec![permit], tenant: Vec::new() }
    }

    /// Grows `reservation` to hold `bytes`: first from the tenant's pool, then from the global one.
    pub async fn grow(&self, tenant: &TenantBudget, reservation: &mut MemoryHold, bytes: u64) {
        let missing = units(bytes).saturating_sub(reservation.units());
        if missing == 0 {
            return;
        }
        // A part larger than a pool could never be granted; capping keeps it from waiting forever (the
        // configuration check makes this unreachable with the server's own settings).
        let from_tenant = missing.min(tenant.capacity);
        reservation.tenant.push(acquire(&tenant.parts, from_tenant).await);
        reservation.global.push(acquire(&self.parts, missing.min(self.parts_capacity)).await);
    }

    /// Bytes of part buffers the global pool can still grant (for tests and metrics).
    pub fn available(&self) -> u64 {
        (self.parts.available_permits() + self.starter.available_permits()) as u64 * UNIT
    }
}

/// One tenant's share.
#[derive(Debug)]
pub struct TenantBudget {
    parts: Arc<Semaphore>,
    capacity: u32,
}

impl TenantBudget {
    pub fn new(bytes: u64) -> Arc<TenantBudget> {
        let capacity = units(bytes).max(1);
        Arc::new(TenantBudget { parts: Arc::new(Semaphore::new(capacity as usize)), capacity })
    }
}

/// Room held for one part buffer; released when dropped (after S3 has the part).
#[derive(Debug, Default)]
pub struct MemoryHold {
    /// Starter and global parts permits: together, the bytes this buffer may hold.
    global: Vec<OwnedSemaphorePermit>,
    /// The tenant's permits, covering the same bytes as the global parts permits.
    tenant: Vec<OwnedSemaphorePermit>,
}

impl MemoryHold {
    /// Holds no room at all (not even a starter's).
    pub fn is_empty(&self) -> bool {
        self.global.is_empty()
    }

    fn units(&self) -> u32 {
        self.global.iter().map(|p| p.num_permits() as u32).sum()
    }
}

async fn acquire(pool: &Arc<Semaphore>, units: u32) -> OwnedSemaphorePermit {
    pool.clone().acquire_many_owned(units).await.expect("budget semaphores are never closed")
}

fn units(bytes: u64) -> u32 {
    bytes.div_ceil(UNIT).min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[tokio::test]
    async fn growth_waits_until_parts_drain() {
        let budget = Budget::new(64 * MIB);
        let tenant = TenantBudget::new(64 * MIB);
        let mut first = budget.starter().await;
        budget.grow(&tenant, &mut first, 40 * MIB).await;
        let mut second = budget.starter().await;
        // 40 MiB are taken from a parts pool of 56 MiB: 40 more cannot be granted yet.
        let grow = budget.grow(&tenant, &mut second, 40 * MIB);
        tokio::pin!(grow);
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut grow).await.is_err());
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), grow).await.expect("room after the first part drained");
    }

    #[tokio::test]
    async fn a_tenant_cannot_take_the_whole_budget() {
        let budget = Budget::new(256 * MIB);
        let greedy = TenantBudget::new(32 * MIB);
        let mut held = budget.starter().await;
        budget.grow(&greedy, &mut held, 32 * MIB).await;
        let mut more = budget.starter().await;
        let blocked = budget.grow(&greedy, &mut more, 8 * MIB);
        assert!(tokio::time::timeout(Duration::from_millis(50), blocked).await.is_err());
        // Another tenant still gets room.
        let other = TenantBudget::new(32 * MIB);
        let mut fine = budget.starter().await;
        tokio::time::timeout(Duration::from_secs(1), budget.grow(&other, &mut fine, 8 * MIB)).await.unwrap();
    }

    #[tokio::test]
    async fn growing_within_the_held_room_takes_nothing_more() {
        let budget = Budget::new(64 * MIB);
        let tenant = TenantBudget::new(64 * MIB);
        let before = budget.available();
        let mut r = budget.starter().await;
        budget.grow(&tenant, &mut r, STARTER).await;
        assert_eq!(before - budget.available(), STARTER);
        budget.grow(&tenant, &mut r, 8 * MIB).await;
        assert_eq!(before - budget.available(), 8 * MIB);
        drop(r);
        assert_eq!(budget.available(), before);
    }
}
