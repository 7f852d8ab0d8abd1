//! One typed configuration: defaults, then a TOML file, then `WHARF_*` environment variables (nested keys
//! joined by `__`, e.g. `WHARF_FTP__IDLE_TIMEOUT_SECS=60`).
//!
//! # Defaults
//! With no file and no environment, wharf keeps everything under `./wharf-data`: a SQLite directory
//! (`wharf.db`), the fs storage root (`storage/`) and a self-signed certificate (`tls/`). It listens for
//! explicit FTPS on 127.0.0.1:2121 and implicit FTPS on 127.0.0.1:2990, and applies the strict TLS policy
//! below. Every relaxation is an explicit setting.
//!
//! # Reload
//! SIGHUP reads the configuration again as at start (the same `--config` file and the environment). A file
//! that does not parse or holds an invalid value is logged as an error and changes nothing. Otherwise the
//! fields below take effect at once, and every other field that differs is logged as a warning and keeps
//! its running value until a restart ([`crate::reload`] holds the one list of live fields).
//!
//! Live:
//! - `ftp.banner`, `ftp.max_line_bytes`, `ftp.max_sessions`, `ftp.max_sessions_per_ip`: for new connections
//!   (sessions already open stay when a limit drops below their number);
//! - `ftp.idle_timeout_secs`, `ftp.login_timeout_secs`, `ftp.stall_timeout_secs`,
//!   `ftp.data_connect_timeout_secs`, `ftp.max_login_attempts`, `ftp.login_failure_delay_ms`,
//!   `ftp.shutdown_grace_secs`, `ftp.passive_address`: for open sessions too, from their next command
//!   (with `passive_mode = "shared"` the pool lets an unused claim lapse after the start value of
//!   `data_connect_timeout_secs`);
//! - `ftp.proxy_protocol.trusted`, `ftp.proxy_protocol.header_timeout_secs`: for new connections;
//! - `tls.cert_file`, `tls.key_file` (the files are read again even when their names stay, so a renewed
//!   certificate dropped in place is served), `tls.require_tls_for_login`, `tls.require_prot_p`,
//!   `tls.require_same_ip_for_passive`;
//! - `login_defence.*` except `ipv6_prefix_len`;
//! - `log.filter` (unless `RUST_LOG` was set at start, which keeps winning).
//!
//! Restart-only, because they are bound or built once at start: the listen addresses
//! (`ftp.explicit_listen`, `ftp.implicit_listen`, `admin.*`), `ftp.passive_ports`, `ftp.passive_mode`,
//! `ftp.proxy_protocol.listeners`, `ftp.passive_relay.*`, `data_dir`, `database_url` and `database.*` (the
//! pool), `storage.*` (the backend and its S3 client and part buffers), `secret_key` and `secret_key_file`,
//! `passwords.*` (the verifier and its timing-equalising dummy hash are built with them),
//! `tls.data_session_resumption` and `tls.certificate_poll_secs` (the TLS acceptors and the certificate
//! watcher), `login_defence.ipv6_prefix_len` (the admin API writes ban scopes with it), `log.format`,
//! `telemetry.*` (the exporters are built at start), and any setting not named above.
//!
//! # Layout
//! One module per section, each with its defaults: `ftp` (listeners, passive pool, PROXY protocol,
//! relay), `tls`, `storage` (fs and S3), `database` (the directory's pool and password hashing),
//! `login_defence`, `admin`, `telemetry` (logs and OTLP export); `validate` checks the whole at
//! start and at every reload, and `secret` keeps secrets out of logs.

mod admin;
mod database;
mod ftp;
mod login_defence;
mod secret;
mod storage;
mod telemetry;
mod tls;
mod validate;

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use admin::{AdminConfig, MetricsAuth};
pub use database::{DatabaseConfig, PasswordConfig};
pub use ftp::{FtpConfig, PassiveMode, PassiveRelayConfig, PortRange, ProxyListener, ProxyProtocolConfig};
pub use login_defence::{BanRule, LoginDefenceConfig};
pub use secret::{redact_url, Secret};
pub use storage::{Backend, S3Config, StorageConfig, MIB};
pub use telemetry::{LogConfig, LogFormat, TelemetryConfig};
pub use tls::{Resumption, TlsConfig};

/// The whole configuration; see the module documentation for its defaults and for what a reload (SIGHUP)
/// changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Folder for the SQLite directory, the fs storage and the generated certificate. Created on start.
    pub data_dir: PathBuf,
    /// `sqlite://path` or `postgres://user@host/db` (TLS to Postgres through the URL:
    /// `?sslmode=verify-full&sslrootcert=/path/ca.pem`). Default: `sqlite://<data_dir>/wharf.db`.
    pub database_url: Option<String>,
    pub database: DatabaseConfig,
    pub passwords: PasswordConfig,
    pub ftp: FtpConfig,
    pub tls: TlsConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
    pub login_defence: LoginDefenceConfig,
    /// The key (base64 of 32 bytes) that seals tenants' certificate keys at rest; every instance sharing a
    /// database needs the same one. Prefer `WHARF_SECRET_KEY` or `secret_key_file`. Default: a key made on
    /// first use in `<data_dir>/secret.key` (one instance only).
    pub secret_key: Option<Secret>,
    pub secret_key_file: Option<PathBuf>,
    pub admin: AdminConfig,
    pub telemetry: TelemetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("wharf-data"),
            database_url: None,
            database: DatabaseConfig::default(),
            passwords: PasswordConfig::default(),
            ftp: FtpConfig::default(),
            tls: TlsConfig::default(),
            storage: StorageConfig::default(),
            log: LogConfig::default(),
            login_defence: LoginDefenceConfig::default(),
            secret_key: None,
            secret_key_file: None,
            admin: AdminConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration field `{field}`: {message}")]
    Invalid { field: &'static str, message: String },
}

impl Config {
    /// Loads defaults, then `file` if given (it must exist), then the environment; validates the result.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid {
                    field: "--config",
                    message: format!("{} does not exist", file.display()),
                });
            }
            figment = figment.merge(Toml::file(file));
        }
        let config: Config =
            figment.merge(Env::prefixed("WHARF_").ignore(&["config"]).split("__")).extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("wharf.db").display()),
        }
    }

    /// The directory pool as configured.
    pub fn pool_options(&self) -> crate::directory::PoolOptions {
        let d = &self.database;
        crate::directory::PoolOptions {
            max_connections: d.max_connections,
            acquire_timeout: std::time::Duration::from_secs(d.acquire_timeout_secs),
            idle_timeout: std::time::Duration::from_secs(d.idle_timeout_secs),
            migrate: d.migrate_on_start,
        }
    }

    /// The argon2id parameters new hashes are made with.
    pub fn password_params(&self) -> crate::auth::password::Params {
        let p = &self.passwords;
        crate::auth::password::Params { m_kib: p.memory_kib, t: p.iterations, p: p.lanes }
    }

    pub fn fs_root(&self) -> PathBuf {
        self.storage.fs_root.clone().unwrap_or_else(|| self.data_dir.join("storage"))
    }
}

#[cfg(test)]
mod tests;
