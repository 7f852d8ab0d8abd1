//! The directory's SQL, written once for both databases.
//!
//! Postgres and SQLite run the same statements (`$N` placeholders, `ON CONFLICT` upserts, `CAST`, `IS
//! DISTINCT FROM`) through the same Rust: binding, row mapping, transactions and error mapping. What truly
//! differs is how a time is stored and a few words of SQL, and each backend's module declares those, by
//! these names, before it expands [`sql_directory!`]:
//!
//! - `Db`, `DbRow`: the sqlx database and row types.
//! - `time(t)`, `time_of(row, column)`, `opt_time_of`: a timestamp (`created_at`, an upload's `expires_at`):
//!   `TIMESTAMPTZ` on Postgres, RFC 3339 text on SQLite (of fixed width, so text order is time order).
//! - `clock(t)`, `clock_of`, `opt_clock_of`: a time SQL does arithmetic with (failure windows, bans,
//!   reservations, passive claims): `TIMESTAMPTZ` on Postgres, Unix milliseconds on SQLite.
//! - `BEGIN_WRITE`: how a transaction that reads usage and then writes it starts (`BEGIN` on Postgres,
//!   whose rows are locked by `LOCK_ROW`, `FOR NO KEY UPDATE`; `BEGIN IMMEDIATE` on SQLite, whose one
//!   writer lock is taken at once, so `LOCK_ROW` is empty).
//! - `GREATEST`: the larger of two values (`GREATEST`, `MAX`).
//! - `names(list)`, `names_of(row, column)`: a list of names (a certificate's): `TEXT[]` on Postgres, a
//!   JSON array on SQLite.
//! - `LEAST` (`LEAST`, `MIN`) and `plus_ms(at, ms)` (interval arithmetic on Postgres, a sum of milliseconds
//!   on SQLite): what the failed-login upsert needs besides.
//!
//! A macro, rather than code generic over `sqlx::Database`, because the generic version needs a bound for
//! every type bound and decoded, on every function, and reads worse than the queries it wraps. Each macro
//! expands in the backend's module, so the names above resolve there; the dialect tests in
//! `directory::tests` run every method on both.
//!
//! rustfmt leaves macro bodies alone; `scripts/fmt-sql-macros.py` formats these.

/// `sqlx::query(sql)` with each value bound in order, run by `method` (`execute`, `fetch_one`,
/// `fetch_optional`, `fetch_all`) on `executor`, errors mapped by `db_error`: one line per statement instead
/// of one per bound value.
macro_rules! sql {
    ($method:ident, $executor:expr, $sql:expr $(, $value:expr)* $(,)?) => {
        sqlx::query($sql)$(.bind($value))*.$method($executor).await.map_err(db_error)
    };
}

#[macro_use]
mod admin;
#[macro_use]
mod logins;
#[macro_use]
mod tenants;
#[macro_use]
mod usage;

pub(super) use logins::record_failure_sql;

use super::DirectoryError;

/// Expands every store the directory implements for `$dir`, a struct with a `pool` field.
macro_rules! sql_directory {
    ($dir:ident) => {
        use super::admin::*;
        use super::sql::{placeholders, retry_conflicts, PARKED_COLUMNS, TENANT_COLUMNS, USER_COLUMNS};

        sql_tenants!($dir);
        sql_logins!($dir);
        sql_usage!($dir);
        sql_admin!($dir);
    };
}

pub(super) const TENANT_COLUMNS: &str = "id, name, enabled, created_at, s3_bucket, s3_prefix, s3_endpoint, \
                                         s3_region, s3_path_style, s3_access_key_id, s3_secret_ref, \
                                         allowed_networks, tls_policy";
pub(super) const USER_COLUMNS: &str = "id, tenant_id, username, home, enabled, created_at, last_login_at, \
                                       permissions, path_permissions, allowed_networks";
pub(super) const PARKED_COLUMNS: &str =
    "location, object_key, upload_id, tenant_id, user_id, resumable, state, parked_at, expires_at";

/// `$first, $first+1, …`: `count` placeholders, one per value of an `IN` list.
pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

/// Runs a transaction again when the database aborted it to break a deadlock (Postgres 40P01) or a
/// serialization conflict (40001): the work is safe to repeat, and a client should not get a 451 for a
/// clash between two sessions.
pub(super) async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> Result<T, DirectoryError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DirectoryError>>,
{
    const ATTEMPTS: u32 = 4;
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if tries < ATTEMPTS && is_conflict(&e) => {
                tracing::debug!(error = ?e, tries, "transaction aborted by a conflict; running it again");
                tries += 1;
            }
            result => return result,
        }
    }
}

fn is_conflict(e: &DirectoryError) -> bool {
    let DirectoryError::Internal(source) = e else { return false };
    let Some(sqlx::Error::Database(db)) = source.downcast_ref::<sqlx::Error>() else { return false };
    db.code().is_some_and(|code| matches!(&*code, "40P01" | "40001"))
}
