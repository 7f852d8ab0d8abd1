//! A fresh database on the test Postgres server (`DATABASE_URL`, default the local one), for tests that
//! run wharf on Postgres. An unreachable server fails the test: it never skips.

use sqlx::Connection;

/// The server the databases are created on.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// An empty database of its own; [`Database::drop`] removes it (a failed test leaves it for inspection).
pub struct Database {
    pub url: String,
    name: String,
}

impl Database {
    pub async fn create() -> Database {
        let server = server_url();
        let name = format!("wharf_it_{:016x}", rand::random::<u64>());
        let mut admin = sqlx::PgConnection::connect(&server).await.unwrap_or_else(|e| {
            panic!("Postgres at {} (DATABASE_URL) is unreachable: {e}", wharf::config::redact_url(&server))
        });
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
        admin.close().await.unwrap();
        Database { url: with_database(&server, &name), name }
    }

    pub async fn drop(self) {
        let mut admin = sqlx::PgConnection::connect(&server_url()).await.unwrap();
        sqlx::raw_sql(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).execute(&mut admin).await.unwrap();
        admin.close().await.unwrap();
    }
}

/// `postgres://user@host:port/db?params` with `db` replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, params) = url.split_once('?').unwrap_or((url, ""));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let server = base[authority..].find('/').map_or(base, |slash| &base[..authority + slash]);
    if params.is_empty() {
        format!("{server}/{database}")
    } else {
        format!("{server}/{database}?{params}")
    }
}
