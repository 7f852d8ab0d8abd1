//! The Postgres directory: the production backend, shared by every instance of a deployment.
//!
//! Same schema and behaviour as the SQLite directory, with native types: `TIMESTAMPTZ` for times (written
//! from wharf's clock, as in SQLite, so both backends stamp the same way), `BOOLEAN` for flags. Migrations
//! run on open under sqlx's advisory lock, so instances that start together apply them once.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;

use super::*;
use crate::access::{Networks, Permissions};

pub struct PostgresDirectory {
    pub(super) pool: PgPool,
}

impl PostgresDirectory {
    /// Connects to the database at `url` (`postgres://user@host/db`) and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, DirectoryError> {
        Self::open_with(url, &super::PoolOptions::default()).await
    }

    /// Connects (TLS as the URL's `sslmode` says) and, when asked, applies pending migrations. Connections
    /// that broke are replaced by the pool on their next use, so wharf recovers by itself when Postgres
    /// comes back; meanwhile queries fail as [`DirectoryError::Unavailable`].
    pub async fn open_with(url: &str, options: &super::PoolOptions) -> Result<Self, DirectoryError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| DirectoryError::Invalid(format!("invalid Postgres URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(options.idle_timeout)
            .test_before_acquire(true)
            .connect_with(connect)
            .await
            .map_err(db_error)?;
        if options.migrate {
            sqlx::migrate!("./migrations/postgres").run(&pool).await.map_err(migrate_error)?;
        }
        Ok(PostgresDirectory { pool })
    }
}

// The dialect (see `directory::sql`): native times, row locks that leave foreign-key checks alone.
type Db = sqlx::Postgres;
type DbRow = PgRow;
const BEGIN_WRITE: &str = "BEGIN";
/// Enough to change usage, and it does not block the key-share locks that inserts referring to the row take
/// (a live session's, a reservation's).
const LOCK_ROW: &str = "FOR NO KEY UPDATE";
const LEAST: &str = "LEAST";
const GREATEST: &str = "GREATEST";

/// `ms` milliseconds after the time `at`, in SQL.
fn plus_ms(at: &str, ms: &str) -> String {
    format!("{at} + {ms} * INTERVAL '1 millisecond'")
}

fn time(t: DateTime<Utc>) -> DateTime<Utc> {
    t
}

fn clock(t: DateTime<Utc>) -> DateTime<Utc> {
    t
}

fn time_of(row: &DbRow, column: &str) -> Result<DateTime<Utc>, DirectoryError> {
    row.try_get(column).map_err(db_error)
}

fn opt_time_of(row: &DbRow, column: &str) -> Result<Option<DateTime<Utc>>, DirectoryError> {
    row.try_get(column).map_err(db_error)
}

fn names(list: Vec<String>) -> Result<Vec<String>, DirectoryError> {
    Ok(list)
}

fn names_of(row: &DbRow, column: &str) -> Result<Vec<String>, DirectoryError> {
    row.try_get(column).map_err(db_error)
}

// Times compared in SQL are `TIMESTAMPTZ` too.
use self::{opt_time_of as opt_clock_of, time_of as clock_of};

sql_directory!(PostgresDirectory);

#[cfg(test)]
mod tests {
    //! What only Postgres has: several instances migrating one database at once, and a server out of
    //! reach. The behaviour both backends share is proved in `directory::tests`.
    use super::*;
    use crate::directory::tests::{create_postgres_database, drop_postgres_database};

    #[tokio::test]
    async fn instances_starting_together_apply_the_migrations_once() {
        let (url, name) = create_postgres_database().await;
        let opening = (0..4).map(|_| PostgresDirectory::open(&url));
        let instances = futures_util::future::join_all(opening).await;
        let instances: Vec<PostgresDirectory> = instances.into_iter().map(Result::unwrap).collect();
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&instances[0].pool).await.unwrap();
        assert_eq!(applied, sqlx::migrate!("./migrations/postgres").migrations.len() as i64);
        for instance in instances {
            instance.pool.close().await;
        }
        drop_postgres_database(&name).await;
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        // Nothing listens on port 1; the pool retries until its acquire timeout runs out.
        let result = PostgresDirectory::open("postgres://postgres@127.0.0.1:1/wharf").await;
        assert!(matches!(result, Err(DirectoryError::Unavailable(_))), "{:?}", result.err());
    }
}
