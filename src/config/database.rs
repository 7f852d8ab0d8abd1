//! `[database]` and `[passwords]`: the directory's connection pool and how it hashes passwords.

use serde::{Deserialize, Serialize};

/// The directory's connection pool. Defaults: 16 connections, 10 s to get one (a login that cannot get one
/// in time is answered 421, try later; an upload's quota reservation 451), idle connections closed after 10
/// minutes, migrations applied at start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    /// Apply pending migrations when `serve` starts (safe with several instances: Postgres serialises them
    /// under an advisory lock). With `false`, run `wharf migrate` before upgrading instances.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { max_connections: 16, acquire_timeout_secs: 10, idle_timeout_secs: 600, migrate_on_start: true }
    }
}

/// argon2id parameters for new and rehashed passwords. Defaults follow OWASP's guidance (19 MiB, 2
/// iterations, 1 lane); a stored hash made with other parameters is replaced at its user's next login.
/// `verify_concurrency` (default: one per CPU) bounds the verifications running at once, so a login flood
/// queues instead of starving transfers. `remember_secs` (default 300, 0 = off): a password that verified
/// is accepted again for that long without hashing (see `password::Verifier::remembering`), so clients that
/// log in for every transfer (curl, cron scripts) pay the hash once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
    pub verify_concurrency: Option<usize>,
    pub remember_secs: u64,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig { memory_kib: 19 * 1024, iterations: 2, lanes: 1, verify_concurrency: None, remember_secs: 300 }
    }
}
