//! The SQLite directory: the embedded default.
//!
//! Timestamps are stored as RFC 3339 UTC text written here, so the schema needs no SQLite date functions and
//! the values read back are exactly the values written.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::SecondsFormat;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::Row;

use super::*;
use crate::access::{Networks, Permissions};

pub struct SqliteDirectory {
    pub(super) pool: SqlitePool,
}

impl SqliteDirectory {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`) and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, DirectoryError> {
        Self::open_with(url, true).await
    }

    /// Opens (creating the file if needed) and, when `migrate` is set, applies pending migrations.
    pub async fn open_with(url: &str, migrate: bool) -> Result<Self, DirectoryError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| DirectoryError::Invalid(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode, NORMAL syncs at checkpoints rather than at every commit: a power cut may lose the
            // last commits (usage counters, failure counts: all repairable) but never corrupts the database,
            // and uploads stop paying an fsync per directory write.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(db_error)?;
        match migrate {
            true => Self::migrated(pool).await,
            false => Ok(SqliteDirectory { pool }),
        }
    }

    /// A private in-memory database, for tests. One connection that never expires: with more, or after a
    /// reconnect, each connection would see its own empty database.
    pub async fn open_in_memory() -> Result<Self, DirectoryError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").map_err(db_error)?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: SqlitePool) -> Result<Self, DirectoryError> {
        sqlx::migrate!("./migrations/sqlite").run(&pool).await.map_err(migrate_error)?;
        Ok(SqliteDirectory { pool })
    }
}

// The dialect (see `directory::sql`): times as RFC 3339 text, or as Unix milliseconds where SQL compares or
// adds them; SQLite's one writer lock instead of row locks.
type Db = sqlx::Sqlite;
type DbRow = SqliteRow;
/// Takes SQLite's write lock before the first read, so no other writer slips in between reading usage and
/// writing a reservation.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
const LOCK_ROW: &str = "";
const LEAST: &str = "MIN";
const GREATEST: &str = "MAX";

/// `ms` milliseconds after the time `at`, in SQL (both are milliseconds).
fn plus_ms(at: &str, ms: &str) -> String {
    format!("{at} + {ms}")
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn clock(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time_of(row: &DbRow, column: &str) -> Result<DateTime<Utc>, DirectoryError> {
    parse_time(&row.try_get::<String, _>(column).map_err(db_error)?)
}

fn opt_time_of(row: &DbRow, column: &str) -> Result<Option<DateTime<Utc>>, DirectoryError> {
    let text: Option<String> = row.try_get(column).map_err(db_error)?;
    text.as_deref().map(parse_time).transpose()
}

fn clock_of(row: &DbRow, column: &str) -> Result<DateTime<Utc>, DirectoryError> {
    from_millis(row.try_get(column).map_err(db_error)?)
}

fn opt_clock_of(row: &DbRow, column: &str) -> Result<Option<DateTime<Utc>>, DirectoryError> {
    let ms: Option<i64> = row.try_get(column).map_err(db_error)?;
    ms.map(from_millis).transpose()
}

fn names(list: Vec<String>) -> Result<String, DirectoryError> {
    serde_json::to_string(&list).map_err(|e| DirectoryError::Internal(Box::new(e)))
}

fn names_of(row: &DbRow, column: &str) -> Result<Vec<String>, DirectoryError> {
    let text: String = row.try_get(column).map_err(db_error)?;
    serde_json::from_str(&text)
        .map_err(|e| DirectoryError::Internal(format!("stored names cannot be read: {e}").into()))
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, DirectoryError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| DirectoryError::Internal(format!("stored timestamp {text:?}: {e}").into()))
}

fn from_millis(ms: i64) -> Result<DateTime<Utc>, DirectoryError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| DirectoryError::Internal(format!("stored time {ms} is out of range").into()))
}

sql_directory!(SqliteDirectory);

#[cfg(test)]
mod tests {
    //! What only SQLite has: a database file reopened, and the in-memory database. The behaviour both
    //! backends share is proved in `directory::tests`.
    use super::*;

    #[tokio::test]
    async fn reopening_keeps_the_data_and_in_memory_works() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("sub.db").display());
        SqliteDirectory::open(&url).await.unwrap().create_tenant("acme").await.unwrap();
        let reopened = SqliteDirectory::open(&url).await.unwrap();
        assert!(reopened.tenant_by_name("acme").await.unwrap().is_some());

        let memory = SqliteDirectory::open_in_memory().await.unwrap();
        let t = memory.create_tenant("acme").await.unwrap();
        let alice = NewUser { username: "alice".into(), password_hash: "h".into(), home: "/".into() };
        memory.create_user(t.id, alice).await.unwrap();
        assert_eq!(memory.list_users(None).await.unwrap().len(), 1);
    }
}
