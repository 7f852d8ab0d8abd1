//! argon2id password hashes (PHC strings).
//!
//! Hashing is deliberately slow, so the login path verifies through a [`Verifier`]: off the async runtime,
//! with bounded concurrency, at the same cost whether or not the user exists, in working memory kept from
//! one login to the next, and with a fresh hash when the stored one was made with other parameters. A
//! password verified a moment ago may be remembered for a while ([`Verifier::remembering`]), so a client
//! that logs in for every transfer pays the hash once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use argon2::password_hash::{self, Output, PasswordHash, PasswordHasher, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Version};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use zeroize::Zeroize;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for Params {
    /// The OWASP recommendation for argon2id: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Params { m_kib: 19 * 1024, t: 2, p: 1 }
    }
}

impl Params {
    fn argon2(&self) -> Result<Argon2<'static>, HashError> {
        let params = argon2::Params::new(self.m_kib, self.t, self.p, None).map_err(password_hash::Error::from)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Whether `hash` was made by argon2id v1.3 with exactly these parameters.
    fn made(&self, hash: &PasswordHash<'_>) -> bool {
        let same_kind = hash.algorithm == Algorithm::Argon2id.ident() && hash.version == Some(Version::V0x13.into());
        same_kind
            && argon2::Params::try_from(hash)
                .is_ok_and(|p| (p.m_cost(), p.t_cost(), p.p_cost()) == (self.m_kib, self.t, self.p))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(#[from] password_hash::Error);

/// Hashes `password` with a random salt into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
///
/// This is CPU-heavy: from async code, call it inside `tokio::task::spawn_blocking`.
pub fn hash(password: &str, params: &Params) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(params.argon2()?.hash_password(password.as_bytes(), &salt)?.to_string())
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    /// A hash of the same password with the current parameters, when the stored one used others. The caller
    /// stores it (see `Directory::record_login`).
    pub rehash: Option<String>,
}

/// Verifies passwords off the async runtime, at most `concurrency` at a time.
pub struct Verifier {
    params: Params,
    permits: Arc<Semaphore>,
    /// argon2's working memory, at most one buffer per permit.
    memory: Arc<Memory>,
    /// Verified against when the user does not exist, so that costs as much as a wrong password.
    dummy: Arc<str>,
    /// Passwords verified lately, when remembering is on.
    recent: Option<Recent>,
}

impl Verifier {
    /// A verifier allowing one verification per CPU at a time.
    pub fn new(params: Params) -> Result<Self, HashError> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_concurrency(params, cpus)
    }

    pub fn with_concurrency(params: Params, concurrency: usize) -> Result<Self, HashError> {
        let concurrency = concurrency.max(1);
        // A random password nobody knows; the hash is never reported as a match anyway.
        let secret = SaltString::generate(&mut rand::rngs::OsRng);
        let dummy = hash(secret.as_str(), &params)?;
        Ok(Verifier {
            params,
            permits: Arc::new(Semaphore::new(concurrency)),
            memory: Arc::new(Memory::new(params.m_kib as usize, concurrency)),
            dummy: dummy.into(),
            recent: None,
        })
    }

    /// Remembers each successful verification for `ttl` (none when zero): the same password against the
    /// same stored hash is then accepted without hashing until `ttl` after the verification that hashed.
    /// Wrong passwords are never remembered and always cost a full hash.
    pub fn remembering(mut self, ttl: Duration) -> Self {
        self.recent = (!ttl.is_zero()).then(|| Recent::new(ttl));
        self
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Checks `password` against `stored`, or against a dummy hash of the same cost when there is no user.
    pub async fn verify(&self, stored: Option<&str>, password: &str) -> Verdict {
        let refused = Verdict { ok: false, rehash: None };
        if let (Some(recent), Some(stored)) = (&self.recent, stored) {
            if recent.knows(stored, password, Instant::now()) {
                return Verdict { ok: true, rehash: None };
            }
        }
        // The semaphore is never closed, so acquiring only fails if that changes.
        let Ok(permit) = self.permits.clone().acquire_owned().await else { return refused };
        let known = stored.is_some();
        let stored: Arc<str> = stored.map_or_else(|| self.dummy.clone(), Arc::from);
        let owned = password.to_owned();
        let params = self.params;
        let memory = self.memory.clone();
        let stored_for_task = stored.clone();
        let task = tokio::task::spawn_blocking(move || {
            // The permit moves here so it is held for as long as the work runs, even if the caller gives up;
            // `check` has given its working memory back before the permit goes.
            let _permit = permit;
            check(&stored_for_task, &owned, &params, &memory)
        });
        match task.await {
            Ok(verdict) if known => {
                // A hash to be replaced is not remembered: the next login must find the new one stored.
                if let (Some(recent), true, None) = (&self.recent, verdict.ok, &verdict.rehash) {
                    recent.remember(&stored, password, Instant::now());
                }
                verdict
            }
            Ok(_) => refused,
            Err(e) => {
                tracing::warn!(error = %e, "password verification task failed");
                refused
            }
        }
    }
}

/// The most verifications remembered at once; past it, new ones are not remembered until old ones expire.
const RECENT_LIMIT: usize = 10_000;

/// Successful verifications of the last `ttl`, to accept the same password again without hashing.
///
/// Neither the password nor anything derived from it alone is kept: each entry is an HMAC-SHA256, under a
/// key made at random when the process starts and never stored, of the stored hash and the password,
/// filed under the HMAC of the stored hash. A changed password has a new stored hash (new salt), so its
/// entry can never match again; a disabled user or a ban is checked before the password, as ever. The
/// price: someone who can read this process's memory could test guesses at SHA-256 speed for the users
/// who logged in within `ttl`, instead of at argon2id speed; `passwords.remember_secs = 0` turns this off.
struct Recent {
    ttl: Duration,
    key: ring::hmac::Key,
    entries: Mutex<HashMap<[u8; 32], Remembered>>,
}

struct Remembered {
    proof: [u8; 32],
    /// When the hash that proved it was computed, plus the ttl.
    until: Instant,
}

impl Recent {
    fn new(ttl: Duration) -> Self {
        let rng = ring::rand::SystemRandom::new();
        // The system's random source failing is not survivable anywhere else either.
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).expect("system random source");
        Recent { ttl, key, entries: Mutex::default() }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<[u8; 32], Remembered>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, stored: &str) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(b"slot\0");
        ctx.update(stored.as_bytes());
        digest(ctx)
    }

    fn proof(&self, stored: &str, password: &str) -> ring::hmac::Context {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(b"proof\0");
        // Length-prefixed, so no other (stored, password) pair feeds the same bytes.
        ctx.update(&(stored.len() as u64).to_le_bytes());
        ctx.update(stored.as_bytes());
        ctx.update(password.as_bytes());
        ctx
    }

    /// Whether `password` was verified against `stored` within the ttl.
    fn knows(&self, stored: &str, password: &str, now: Instant) -> bool {
        let slot = self.slot(stored);
        let Some(proof) = self.entries().get(&slot).filter(|e| e.until > now).map(|e| e.proof) else {
            return false;
        };
        digest(self.proof(stored, password)).ct_eq(&proof).into()
    }

    fn remember(&self, stored: &str, password: &str, now: Instant) {
        let (slot, proof) = (self.slot(stored), digest(self.proof(stored, password)));
        let mut entries = self.entries();
        if entries.len() >= RECENT_LIMIT && !entries.contains_key(&slot) {
            entries.retain(|_, e| e.until > now);
            if entries.len() >= RECENT_LIMIT {
                return;
            }
        }
        entries.insert(slot, Remembered { proof, until: now + self.ttl });
    }
}

fn digest(ctx: ring::hmac::Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

fn check(stored: &str, password: &str, params: &Params, memory: &Arc<Memory>) -> Verdict {
    let refused = Verdict { ok: false, rehash: None };
    let parsed = match PasswordHash::new(stored) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(error = %e, "stored password hash is malformed; refusing the login");
            return refused;
        }
    };
    // The stored hash carries its own parameters; the verifier's are used only for a rehash.
    let ok = match matches(&parsed, password.as_bytes(), memory) {
        Ok(ok) => ok,
        Err(password_hash::Error::Password) => false,
        Err(e) => {
            tracing::warn!(error = %e, "stored password hash cannot be verified; refusing the login");
            false
        }
    };
    let rehash = if ok && !params.made(&parsed) {
        hash(password, params).map_err(|e| tracing::warn!(error = %e, "rehashing a password failed")).ok()
    } else {
        None
    };
    Verdict { ok, rehash }
}

/// Whether `password` hashes to `stored`'s output with `stored`'s own algorithm, version, parameters, salt
/// and output length: `PasswordVerifier::verify_password`, but in working memory leased from `memory`.
fn matches(stored: &PasswordHash<'_>, password: &[u8], memory: &Arc<Memory>) -> Result<bool, password_hash::Error> {
    let (Some(salt), Some(expected)) = (stored.salt, &stored.hash) else { return Ok(false) };
    let algorithm = Algorithm::try_from(stored.algorithm)?;
    let version = stored.version.map(Version::try_from).transpose()?.unwrap_or_default();
    // Also takes the output length from the stored output.
    let params = argon2::Params::try_from(stored)?;
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    let mut blocks = memory.lease(params.block_count())?;
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = Output::init_with(expected.len(), |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt, out, &mut blocks[..])?)
    })?;
    // `Output` compares in constant time.
    Ok(computed == *expected)
}

/// How long a kept buffer outlives its last use. Making one again costs the kernel a few milliseconds
/// (mapping and zero-filling 19 MiB at the default parameters), so a server that verifies a password every
/// half second or more often per permit keeps its buffers, and an idle one holds none.
const KEEP_IDLE: Duration = Duration::from_millis(500);

/// argon2's working memory, kept between verifications.
///
/// glibc serves a buffer this large with a fresh mapping and unmaps it when freed (`limit_retained_memory`
/// in main.rs pins that), so a buffer per verification made the kernel map, zero-fill, fault in and unmap
/// 19 MiB on every login: ~4,900 page faults, and more than half as much system CPU as the hash costs in
/// user CPU. Instead each verification
/// leases a buffer kept from an earlier one. Buffers are made only when none is idle, by a verification
/// holding a permit, so no more are ever alive than the verifier's concurrency; each is sized for the
/// configured parameters, and is freed [`KEEP_IDLE`] after its last use.
///
/// A stored hash that needs more memory (made with a larger `m` than the configured one) gets a buffer of
/// its own, freed after that one verification, in place of an idle kept one (freed too), so the bound
/// holds and a corrupt or hostile `m` is never kept.
///
/// Every leased block is zeroed when the lease ends. argon2 does not need that (it writes each block it
/// uses before reading it, so a buffer's old contents cannot change a result), but the blocks are derived
/// from the password just verified and would otherwise sit in memory until the next login, readable in a
/// core dump or through a memory disclosure, where before they went back to the kernel with the buffer (the
/// argon2 crate is built without its own `zeroize` feature). Zeroing 19 MiB costs well under a millisecond,
/// a few percent of the hash.
struct Memory {
    /// Blocks in a kept buffer: enough for any hash whose `m` is at most the configured one, whatever its
    /// lanes.
    blocks: usize,
    /// The verifier's concurrency, which bounds the buffers alive.
    limit: usize,
    state: Mutex<Pool>,
}

#[derive(Default)]
struct Pool {
    /// Kept buffers not leased, with when each was given back, oldest first.
    idle: Vec<(Vec<Block>, Instant)>,
    /// Buffers in existence, kept or not, idle or leased.
    alive: usize,
    /// The most ever alive at once.
    peak: usize,
    /// The task freeing idle buffers, while there are any.
    trimmer: Option<tokio::task::JoinHandle<()>>,
}

/// A buffer leased for one verification; given back or freed, zeroed, when dropped.
struct Lease<'a> {
    memory: &'a Arc<Memory>,
    blocks: Vec<Block>,
    /// How many blocks the verification uses, from the start.
    used: usize,
    /// Whether the buffer is a kept one, to give back.
    kept: bool,
}

impl Memory {
    fn new(blocks: usize, limit: usize) -> Self {
        Memory { blocks, limit, state: Mutex::default() }
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        // Only a failed debug assertion panics while holding the lock; the pool stays usable after one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A buffer of at least `used` blocks, for a caller holding a permit.
    fn lease(self: &Arc<Self>, used: usize) -> Result<Lease<'_>, argon2::Error> {
        let kept = used <= self.blocks;
        // Either an idle buffer or a new one is accounted to this lease from here on.
        let idle = {
            let mut pool = self.pool();
            let idle = pool.idle.pop().map(|(blocks, _)| blocks);
            if idle.is_none() {
                pool.alive += 1;
                pool.peak = pool.peak.max(pool.alive);
                debug_assert!(pool.alive <= self.limit, "{} argon2 buffers for {} permits", pool.alive, self.limit);
            }
            idle
        };
        let blocks = match idle {
            Some(blocks) if kept => Ok(blocks),
            // Too small for this hash: a buffer of its own takes the idle one's place.
            Some(too_small) => {
                drop(too_small);
                allocate(used)
            }
            None => allocate(if kept { self.blocks } else { used }),
        };
        match blocks {
            Ok(blocks) => Ok(Lease { memory: self, blocks, used, kept }),
            Err(e) => {
                self.pool().alive -= 1;
                Err(e)
            }
        }
    }

    /// Keeps a buffer for the next lease, and makes sure a task frees it if it stays idle.
    fn give_back(self: &Arc<Self>, blocks: Vec<Block>) {
        // Verifications run on tokio's blocking pool, which knows its runtime. Without one nothing could free
        // the buffer later, so it goes now.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return self.free(blocks) };
        let mut pool = self.pool();
        // Taken under the lock, so `idle` stays oldest first.
        pool.idle.push((blocks, Instant::now()));
        // A trimmer stops, under this lock, only once nothing is idle; it is finished without having stopped
        // itself when its runtime went away.
        if pool.trimmer.as_ref().is_none_or(|trimmer| trimmer.is_finished()) {
            pool.trimmer = Some(runtime.spawn(trim(Arc::downgrade(self))));
        }
    }

    fn free(&self, blocks: Vec<Block>) {
        self.pool().alive -= 1;
        drop(blocks);
    }

    /// Takes out the buffers idle for [`KEEP_IDLE`] or longer at `now`, and says when the next one will be;
    /// `None` when nothing is left idle, which stops the trimmer.
    fn expire(&self, now: Instant) -> (Vec<Vec<Block>>, Option<Instant>) {
        let mut pool = self.pool();
        let due = pool.idle.partition_point(|(_, at)| *at + KEEP_IDLE <= now);
        let expired: Vec<_> = pool.idle.drain(..due).map(|(blocks, _)| blocks).collect();
        pool.alive -= expired.len();
        let next = pool.idle.first().map(|(_, at)| *at + KEEP_IDLE);
        if next.is_none() {
            pool.trimmer = None;
        }
        (expired, next)
    }
}

/// Frees kept buffers once they have been idle for [`KEEP_IDLE`]; ends when none is idle, or with the
/// verifier.
async fn trim(memory: Weak<Memory>) {
    let mut due = Instant::now() + KEEP_IDLE;
    loop {
        tokio::time::sleep_until(due).await;
        let Some(alive) = memory.upgrade() else { return };
        let (expired, next) = alive.expire(Instant::now());
        if !expired.is_empty() {
            // Unmapping megabytes is blocking work.
            tokio::task::spawn_blocking(move || drop(expired));
        }
        let Some(next) = next else { return };
        due = next;
    }
}

/// `len` zeroed blocks; `MemoryTooMuch` when the allocator has not got them, since a corrupt `m` in a stored
/// hash must cost a refusal, not the process.
fn allocate(len: usize) -> Result<Vec<Block>, argon2::Error> {
    let mut blocks = Vec::new();
    blocks.try_reserve_exact(len).map_err(|_| argon2::Error::MemoryTooMuch)?;
    blocks.resize(len, Block::new());
    Ok(blocks)
}

impl std::ops::Deref for Lease<'_> {
    type Target = [Block];

    fn deref(&self) -> &[Block] {
        &self.blocks
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut [Block] {
        &mut self.blocks
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // See `Memory` for why.
        for block in self.blocks.iter_mut().take(self.used) {
            AsMut::<[u64]>::as_mut(block).zeroize();
        }
        let blocks = std::mem::take(&mut self.blocks);
        if self.kept {
            self.memory.give_back(blocks);
        } else {
            self.memory.free(blocks);
        }
    }
}

#[cfg(test)]
#[path = "password_tests.rs"]
mod tests;
