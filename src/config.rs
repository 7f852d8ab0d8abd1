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

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

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

/// The admin REST API (`/api/v1`, with `/healthz` and `/readyz`) on a listener of its own.
///
/// # Defaults
/// Off: a bare `wharf serve` opens no HTTP port that nobody asked for (and without an API token there is
/// nothing to do on it). With `enabled = true` it listens on 127.0.0.1:8080 in plain HTTP; give `cert_file`
/// and `key_file` (PEM) to serve HTTPS, which any address beyond loopback should use since bearer tokens
/// travel in every request.
///
/// `GET /metrics` on the same listener serves the Prometheus text format. By default (`metrics_auth =
/// "token"`) it needs an operator token like the rest of the API; `metrics_auth = "none"` opens it to anyone
/// who reaches the listener, for scrapers on a private network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// PEM certificate chain for HTTPS; with `key_file`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Who may read `/metrics`.
    pub metrics_auth: MetricsAuth,
}

/// Who may read `/metrics` (see [`AdminConfig`]).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAuth {
    /// An operator bearer token, as for the rest of the API.
    #[default]
    Token,
    /// Anyone who can reach the admin listener.
    None,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cert_file: None,
            key_file: None,
            metrics_auth: MetricsAuth::Token,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FtpConfig {
    /// Explicit FTPS (AUTH TLS) listener. `None` disables it.
    pub explicit_listen: Option<SocketAddr>,
    /// Implicit FTPS listener (TLS from the first byte). `None` disables it.
    pub implicit_listen: Option<SocketAddr>,
    /// Passive data ports, inclusive. `0-0` lets the OS pick any free port.
    pub passive_ports: PortRange,
    /// `dedicated`: each EPSV/PASV binds a port of `passive_ports` of its own. `shared`: every port of
    /// `passive_ports` listens all the time and serves all sessions, each connection matched to its session
    /// by the client's address, so a handful of published ports serve thousands of sessions.
    pub passive_mode: PassiveMode,
    /// The address announced in PASV replies (for NAT). Default: the address the client connected to.
    pub passive_address: Option<IpAddr>,
    /// Longest control line accepted, in bytes, CR LF included.
    pub max_line_bytes: usize,
    /// An idle logged-in or anonymous session is closed with 421 after this long.
    pub idle_timeout_secs: u64,
    /// A data connection that has not arrived (passive) or connected (active) after this long gives 425.
    pub data_connect_timeout_secs: u64,
    /// A transfer that moves no byte for this long (a client that stopped reading or sending) is aborted
    /// with 426; a control connection whose client stops reading replies for this long is closed.
    pub stall_timeout_secs: u64,
    /// A client must finish its TLS handshake and log in within this long.
    pub login_timeout_secs: u64,
    /// Sessions across the whole instance; beyond it new connections get 421.
    pub max_sessions: usize,
    /// Sessions from one client IP; beyond it new connections get 421.
    pub max_sessions_per_ip: usize,
    /// Delay before a 530 for a failed login, the same for an unknown user and a wrong password.
    pub login_failure_delay_ms: u64,
    /// Failed logins after which the session is closed with 421.
    pub max_login_attempts: u32,
    /// Greeting text after `220 `.
    pub banner: String,
    /// How long running transfers may finish after a shutdown request.
    pub shutdown_grace_secs: u64,
    /// Connections relayed by a TCP load balancer that announces the client with the PROXY protocol.
    pub proxy_protocol: ProxyProtocolConfig,
    /// Replicas of a shared pool relaying passive data connections to one another, so that a data
    /// connection may reach any replica, not only the one holding its control connection.
    pub passive_relay: PassiveRelayConfig,
}

/// Relaying passive data connections between replicas (`passive_mode = "shared"` only). Every replica
/// records its claims on (client address, port) pairs in the directory; a replica that receives a data
/// connection claimed by another forwards it, prefixed with a PROXY v2 header naming the client, to that
/// replica's `listen` address, which accepts it from `trusted` peers only. TLS stays end to end.
///
/// Defaults: off (`listen` unset), so a data connection must reach the replica of its control connection
/// (client-IP affinity on the balancer).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PassiveRelayConfig {
    /// Where this replica accepts data connections relayed by the others.
    pub listen: Option<SocketAddr>,
    /// The address the other replicas reach `listen` at (a pod's IP). Default: `listen` itself, which must
    /// then name a specific address.
    pub advertise: Option<SocketAddr>,
    /// The replicas' networks; a relay connection from anywhere else is refused.
    pub trusted: Vec<crate::access::Network>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PassiveMode {
    Dedicated,
    Shared,
}

/// The PROXY protocol (v1 or v2) on wharf's listeners, so that bans, allowed networks, the passive-connection
/// check and logs see the real client behind a load balancer.
///
/// Defaults: no listener expects a header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyProtocolConfig {
    /// The listeners whose connections from `trusted` addresses must begin with a header: `explicit`,
    /// `implicit`, `passive` (passive data connections).
    pub listeners: Vec<ProxyListener>,
    /// The balancers' addresses. Connections from anywhere else are served as direct ones (a header they
    /// send is never believed), so a client cannot claim another address.
    pub trusted: Vec<crate::access::Network>,
    /// How long a balancer may take to send the header before the connection is closed.
    pub header_timeout_secs: u64,
}

impl Default for ProxyProtocolConfig {
    fn default() -> Self {
        ProxyProtocolConfig { listeners: Vec::new(), trusted: Vec::new(), header_timeout_secs: 5 }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProxyListener {
    Explicit,
    Implicit,
    Passive,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key_file`. Default: a self-signed certificate kept in `<data_dir>/tls`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Refuse USER/PASS (530) until AUTH TLS.
    pub require_tls_for_login: bool,
    /// Refuse data transfers (521) unless PROT P.
    pub require_prot_p: bool,
    /// TLS session resumption on data connections.
    pub data_session_resumption: Resumption,
    /// Refuse a passive data connection from another IP than the control connection's.
    pub require_same_ip_for_passive: bool,
    /// How often each instance looks for tenant certificates added or removed through another instance.
    pub certificate_poll_secs: u64,
}

/// How data connections must relate to the control connection's TLS session.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Resumption {
    /// Wharf issues no session tickets or IDs; every data connection does a full handshake.
    Disabled,
    /// Resumption is offered but a full handshake is accepted too.
    Enabled,
    /// The data connection must resume a session wharf issued to a control connection of the same logged-in
    /// user; anything else gets 522.
    Enforced,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Root of the fs backend; each tenant gets a folder named after it. Default: `<data_dir>/storage`.
    pub fs_root: Option<PathBuf>,
    /// Call fsync on every upload before its 226 (and on the directory after the rename).
    pub fsync: bool,
    /// Where tenants' files live: `fs` (a local folder, the embedded default) or `s3`.
    pub backend: Backend,
    pub s3: S3Config,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Fs,
    S3,
}

/// The S3 backend. Tenants without storage settings of their own use `bucket` with the key prefix
/// `<tenant>/`; a tenant may name its own bucket, prefix, endpoint, region and credentials.
///
/// Defaults: AWS's endpoint and credential chain (environment, profile, web identity, instance role),
/// virtual-hosted addressing, 8 MiB parts with 4 in flight, a 1 GiB budget for part buffers (256 MiB per
/// tenant), parked uploads kept for 24 hours.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The bucket of tenants that have none of their own. Required with `backend = "s3"`.
    pub bucket: Option<String>,
    /// Prepended to every tenant's default prefix (`<prefix><tenant>/`).
    pub prefix: String,
    /// An S3-compatible endpoint (MinIO, Garage, Ceph, R2), e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// The region; AWS's chain (`AWS_REGION`, profile) when unset, `us-east-1` as a last resort.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most self-hosted stores need.
    pub force_path_style: bool,
    /// Static credentials; the AWS credential chain when unset. Prefer `secret_access_key_file` or the
    /// standard `AWS_*` environment variables to a secret in the config file.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub secret_access_key_file: Option<PathBuf>,
    /// Bytes per multipart part at the start of an upload; it doubles every 900 parts so that an upload
    /// of unknown size still fits in S3's 10,000 parts, up to half of `tenant_memory_budget`. S3's
    /// minimum is 5 MiB.
    pub part_size: u64,
    /// Parts of one upload sent to S3 at once (fewer once parts grow so large that they would not fit in
    /// `tenant_memory_budget` together).
    pub parts_in_flight: usize,
    /// Bytes of part buffers all uploads together may hold; past it, wharf stops reading data sockets.
    pub memory_budget: u64,
    /// The same, for each tenant. It also bounds one upload's largest part (half of it), and so the
    /// largest file: about 905 GiB with the defaults, S3's 5 TiB from 2.5 GiB up (`wharf serve` prints it).
    pub tenant_memory_budget: u64,
    /// Objects one RNFR/RNTO of a directory may move; past it the rename is refused with 550.
    pub max_rename_objects: usize,
    /// How long an interrupted upload stays parked for REST/APPE to continue it; 0 aborts at once.
    pub park_secs: u64,
    /// How often expired parked uploads are looked for and aborted.
    pub sweep_interval_secs: u64,
}

/// Brute-force defence. Failed logins are counted in the directory per client address and per user, so
/// every instance on the same database sees the same counts and honours the same bans.
///
/// # Defaults
/// 20 failures from one address, or 10 against one user, within 15 minutes ban that address or user for
/// 15 minutes; each further ban of the same address or user lasts twice as long, up to a day. Each failed
/// login's 530 waits `ftp.login_failure_delay_ms`, doubled for every recent failure from the same address,
/// up to 8 seconds. IPv6 clients are counted per /64.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoginDefenceConfig {
    /// Ban addresses and users that fail too often. `false` still counts failures (for the growing delay)
    /// but bans nobody, and ignores bans already recorded.
    pub bans: bool,
    /// Failures from one client address (an IPv4 address, an IPv6 network of `ipv6_prefix_len` bits).
    pub ip: BanRule,
    /// Failures against one existing user of a tenant, from any address.
    pub user: BanRule,
    /// The longest a repeat ban may grow to.
    pub max_ban_secs: u64,
    /// An address or user with no failure for this long (and no running ban) is forgotten, with its count
    /// of earlier bans.
    pub forget_after_secs: u64,
    /// The longest delay before a 530.
    pub max_delay_ms: u64,
    /// IPv6 clients are counted per network of this many bits, since one client usually holds a whole /64.
    pub ipv6_prefix_len: u8,
}

/// Failures that, within one window, ban an address or a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BanRule {
    /// Failures within `window_secs` that ban.
    pub threshold: u32,
    /// Failures count together while they fall within this long of the first one.
    pub window_secs: u64,
    /// Length of the first ban.
    pub ban_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info,wharf=debug`. `RUST_LOG` wins when set.
    pub filter: String,
    /// `text` for people, `json` for log pipelines: one JSON object per line, so that the record of each
    /// login (`wharf::login`) and each transfer (`wharf::transfer`, the modern xferlog) is machine-readable.
    pub format: LogFormat,
}

/// OpenTelemetry export over OTLP/HTTP (protobuf): the spans of sessions, commands and transfers, and the
/// metrics that the admin listener also serves in Prometheus format.
///
/// # Defaults
/// Off: nothing is exported until `otlp_endpoint` names a collector, e.g. `http://127.0.0.1:4318` (spans go
/// to `<endpoint>/v1/traces`, metrics to `<endpoint>/v1/metrics`; `https://` uses the system's roots).
/// Spans of wharf's own targets at `info` and above are exported (`traces_filter`), every trace sampled,
/// metrics pushed every 30 s, and an export that has not finished in 10 s is dropped. Headers (for a
/// vendor's API key) are secrets: give them through the environment, e.g.
/// `WHARF_TELEMETRY__OTLP_HEADERS__AUTHORIZATION`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    pub otlp_endpoint: Option<String>,
    pub otlp_headers: std::collections::BTreeMap<String, Secret>,
    pub otlp_timeout_secs: u64,
    /// `service.name` of the exported resource; `service.instance.id` is the instance's id.
    pub service_name: String,
    /// A `tracing` filter choosing the spans exported, independent of `log.filter`.
    pub traces_filter: String,
    /// The share of traces (sessions) exported, 0.0 to 1.0.
    pub traces_sample_ratio: f64,
    pub metrics_interval_secs: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            otlp_headers: Default::default(),
            otlp_timeout_secs: 10,
            service_name: "wharf".into(),
            traces_filter: "wharf=info".into(),
            traces_sample_ratio: 1.0,
            metrics_interval_secs: 30,
        }
    }
}

impl TelemetryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| Err(ConfigError::Invalid { field, message: message.to_owned() });
        if let Some(endpoint) = &self.otlp_endpoint {
            let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
            if !scheme_ok || endpoint.parse::<http::Uri>().is_err() {
                return invalid("telemetry.otlp_endpoint", "must be an http:// or https:// URL");
            }
        }
        for (name, value) in &self.otlp_headers {
            if http::HeaderName::try_from(name.as_str()).is_err()
                || http::HeaderValue::try_from(value.expose()).is_err()
            {
                return invalid("telemetry.otlp_headers", "each header needs a valid HTTP name and value");
            }
        }
        if !(1..=300).contains(&self.otlp_timeout_secs) {
            return invalid("telemetry.otlp_timeout_secs", "must be between 1 and 300");
        }
        if !(1..=3600).contains(&self.metrics_interval_secs) {
            return invalid("telemetry.metrics_interval_secs", "must be between 1 and 3600");
        }
        if !(0.0..=1.0).contains(&self.traces_sample_ratio) {
            return invalid("telemetry.traces_sample_ratio", "must be between 0.0 and 1.0");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.traces_filter).is_err() {
            return invalid("telemetry.traces_filter", "is not a valid tracing filter");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// An inclusive port range written `start-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn is_any(&self) -> bool {
        self.start == 0 && self.end == 0
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}-{}", self.start, self.end))
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parse = || -> Option<PortRange> {
            let (a, b) = text.split_once('-')?;
            Some(PortRange { start: a.trim().parse().ok()?, end: b.trim().parse().ok()? })
        };
        parse().ok_or_else(|| serde::de::Error::custom(format!("port range {text:?} is not of the form START-END")))
    }
}

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

impl Default for LoginDefenceConfig {
    fn default() -> Self {
        LoginDefenceConfig {
            bans: true,
            ip: BanRule { threshold: 20, window_secs: 900, ban_secs: 900 },
            user: BanRule { threshold: 10, window_secs: 900, ban_secs: 900 },
            max_ban_secs: 24 * 3600,
            forget_after_secs: 24 * 3600,
            max_delay_ms: 8000,
            ipv6_prefix_len: 64,
        }
    }
}

impl Default for BanRule {
    fn default() -> Self {
        BanRule { threshold: 10, window_secs: 900, ban_secs: 900 }
    }
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig {
            explicit_listen: Some(SocketAddr::from(([127, 0, 0, 1], 2121))),
            implicit_listen: Some(SocketAddr::from(([127, 0, 0, 1], 2990))),
            passive_ports: PortRange { start: 50000, end: 50999 },
            passive_mode: PassiveMode::Dedicated,
            passive_address: None,
            max_line_bytes: 8192,
            idle_timeout_secs: 600,
            data_connect_timeout_secs: 30,
            stall_timeout_secs: 120,
            login_timeout_secs: 60,
            max_sessions: 2000,
            max_sessions_per_ip: 64,
            login_failure_delay_ms: 1000,
            max_login_attempts: 5,
            banner: "wharf FTPS ready".to_owned(),
            shutdown_grace_secs: 30,
            proxy_protocol: ProxyProtocolConfig::default(),
            passive_relay: PassiveRelayConfig::default(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            require_tls_for_login: true,
            require_prot_p: true,
            data_session_resumption: Resumption::Enforced,
            require_same_ip_for_passive: true,
            certificate_poll_secs: 5,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { fs_root: None, fsync: true, backend: Backend::Fs, s3: S3Config::default() }
    }
}

pub const MIB: u64 = 1024 * 1024;

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: None,
            prefix: String::new(),
            endpoint: None,
            region: None,
            force_path_style: false,
            access_key_id: None,
            secret_access_key: None,
            secret_access_key_file: None,
            part_size: 8 * MIB,
            parts_in_flight: 4,
            memory_budget: 1024 * MIB,
            tenant_memory_budget: 256 * MIB,
            max_rename_objects: 10_000,
            park_secs: 24 * 3600,
            sweep_interval_secs: 300,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { filter: "info".to_owned(), format: LogFormat::Text }
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

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| Err(ConfigError::Invalid { field, message: message.to_owned() });
        let p = self.ftp.passive_ports;
        if p.start > p.end || (p.start == 0) != (p.end == 0) {
            return invalid("ftp.passive_ports", "must be START-END with 1 <= START <= END, or 0-0 for any port");
        }
        if self.ftp.passive_mode == PassiveMode::Shared && (p.is_any() || p.end - p.start >= 1024) {
            return invalid("ftp.passive_ports", "a shared pool needs a fixed range of at most 1024 ports");
        }
        let relay = &self.ftp.passive_relay;
        if let Some(listen) = relay.listen {
            if self.ftp.passive_mode != PassiveMode::Shared {
                return invalid("ftp.passive_relay.listen", "relaying needs passive_mode = \"shared\"");
            }
            // Without `advertise`, `listen` is announced with the port it was bound to (port 0 picks one).
            let unreachable = match relay.advertise {
                Some(advertise) => advertise.ip().is_unspecified() || advertise.port() == 0,
                None => listen.ip().is_unspecified(),
            };
            if unreachable {
                return invalid(
                    "ftp.passive_relay.advertise",
                    "must be an address and port the other replicas reach (needed when listen is 0.0.0.0 or [::])",
                );
            }
            if relay.trusted.is_empty() {
                return invalid("ftp.passive_relay.trusted", "must list the replicas' networks");
            }
        } else if relay.advertise.is_some() || !relay.trusted.is_empty() {
            return invalid("ftp.passive_relay.listen", "advertise and trusted need listen");
        }
        if self.ftp.max_line_bytes < 512 {
            return invalid("ftp.max_line_bytes", "must be at least 512 (RFC 959 lines plus a long path)");
        }
        if self.ftp.max_sessions == 0 || self.ftp.max_sessions_per_ip == 0 {
            return invalid("ftp.max_sessions", "session limits must be at least 1");
        }
        if self.ftp.idle_timeout_secs == 0
            || self.ftp.data_connect_timeout_secs == 0
            || self.ftp.stall_timeout_secs == 0
            || self.ftp.login_timeout_secs == 0
        {
            return invalid("ftp.*_timeout_secs", "timeouts must be at least one second");
        }
        if self.ftp.explicit_listen.is_none() && self.ftp.implicit_listen.is_none() {
            return invalid("ftp.explicit_listen", "at least one of explicit_listen and implicit_listen must be set");
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return invalid("tls.cert_file", "cert_file and key_file must be given together");
        }
        if self.admin.cert_file.is_some() != self.admin.key_file.is_some() {
            return invalid("admin.cert_file", "cert_file and key_file must be given together");
        }
        let admin = Some(self.admin.listen);
        if self.admin.enabled
            && self.admin.listen.port() != 0
            && (self.ftp.explicit_listen == admin || self.ftp.implicit_listen == admin)
        {
            return invalid("admin.listen", "must differ from the FTP listeners");
        }
        if self.database.max_connections == 0 || self.database.acquire_timeout_secs == 0 {
            return invalid("database.max_connections", "the pool needs at least one connection and a timeout of 1 s");
        }
        let p = &self.passwords;
        // argon2's own limits: at least 8 KiB per lane, 1 iteration, 1 to 2^24 - 1 lanes.
        if p.lanes == 0 || p.lanes > 0x00ff_ffff || p.iterations == 0 || p.memory_kib < 8 * p.lanes {
            return invalid(
                "passwords.memory_kib",
                "argon2id needs lanes >= 1, iterations >= 1, memory_kib >= 8 x lanes",
            );
        }
        if p.verify_concurrency == Some(0) {
            return invalid("passwords.verify_concurrency", "must be at least 1");
        }
        if p.remember_secs > 86_400 {
            return invalid("passwords.remember_secs", "must be at most 86400 seconds (one day)");
        }
        if self.ftp.max_login_attempts == 0 {
            return invalid("ftp.max_login_attempts", "must be at least 1");
        }
        if !(1..=3600).contains(&self.tls.certificate_poll_secs) {
            return invalid("tls.certificate_poll_secs", "must be 1 to 3600 seconds");
        }
        let proxy = &self.ftp.proxy_protocol;
        if !proxy.listeners.is_empty() && proxy.trusted.is_empty() {
            return invalid(
                "ftp.proxy_protocol.trusted",
                "name the load balancers' networks the headers may come from",
            );
        }
        if !(1..=60).contains(&proxy.header_timeout_secs) {
            return invalid("ftp.proxy_protocol.header_timeout_secs", "must be 1 to 60 seconds");
        }
        if self.storage.backend == Backend::S3 {
            self.storage.s3.validate()?;
        }
        self.login_defence.validate(self.ftp.login_failure_delay_ms)?;
        self.telemetry.validate()?;
        Ok(())
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
    pub fn password_params(&self) -> crate::directory::password::Params {
        let p = &self.passwords;
        crate::directory::password::Params { m_kib: p.memory_kib, t: p.iterations, p: p.lanes }
    }

    pub fn fs_root(&self) -> PathBuf {
        self.storage.fs_root.clone().unwrap_or_else(|| self.data_dir.join("storage"))
    }
}

/// The longest time any setting below may name: ten years, far from chrono's limits.
const MAX_SECS: u64 = 10 * 365 * 24 * 3600;

impl LoginDefenceConfig {
    fn validate(&self, base_delay_ms: u64) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| Err(ConfigError::Invalid { field, message: message.to_owned() });
        for (rule, threshold, times) in [
            (&self.ip, "login_defence.ip.threshold", "login_defence.ip.window_secs"),
            (&self.user, "login_defence.user.threshold", "login_defence.user.window_secs"),
        ] {
            if rule.threshold == 0 {
                return invalid(threshold, "must be at least 1");
            }
            if !(1..=MAX_SECS).contains(&rule.window_secs) || !(1..=MAX_SECS).contains(&rule.ban_secs) {
                return invalid(times, "window_secs and ban_secs must be between 1 second and 10 years");
            }
        }
        if self.max_ban_secs < self.ip.ban_secs.max(self.user.ban_secs) || self.max_ban_secs > MAX_SECS {
            return invalid("login_defence.max_ban_secs", "must be at least ip.ban_secs and user.ban_secs");
        }
        if self.forget_after_secs < self.ip.window_secs.max(self.user.window_secs) || self.forget_after_secs > MAX_SECS
        {
            return invalid("login_defence.forget_after_secs", "must be at least ip.window_secs and user.window_secs");
        }
        if self.max_delay_ms < base_delay_ms || self.max_delay_ms > 60_000 {
            return invalid(
                "login_defence.max_delay_ms",
                "must be at least ftp.login_failure_delay_ms and at most 60000 (one minute)",
            );
        }
        if !(32..=128).contains(&self.ipv6_prefix_len) {
            return invalid("login_defence.ipv6_prefix_len", "must be between 32 and 128");
        }
        Ok(())
    }
}

impl S3Config {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| Err(ConfigError::Invalid { field, message: message.to_owned() });
        if self.bucket.as_deref().is_none_or(str::is_empty) {
            return invalid("storage.s3.bucket", "is required with storage.backend = \"s3\"");
        }
        if !(5 * MIB..=5 * 1024 * MIB).contains(&self.part_size) {
            return invalid("storage.s3.part_size", "must be between 5 MiB and 5 GiB (S3's part size limits)");
        }
        if !(1..=64).contains(&self.parts_in_flight) {
            return invalid("storage.s3.parts_in_flight", "must be between 1 and 64");
        }
        let per_upload = self.part_size * (self.parts_in_flight as u64 + 1);
        if self.tenant_memory_budget < per_upload || self.memory_budget < self.tenant_memory_budget {
            return invalid(
                "storage.s3.memory_budget",
                "tenant_memory_budget must hold one upload (part_size x (parts_in_flight + 1)) and memory_budget \
                 one tenant's budget",
            );
        }
        if self.secret_access_key.is_some() && self.secret_access_key_file.is_some() {
            return invalid(
                "storage.s3.secret_access_key",
                "give secret_access_key or secret_access_key_file, not both",
            );
        }
        let has_secret = self.secret_access_key.is_some() || self.secret_access_key_file.is_some();
        if self.access_key_id.is_some() != has_secret {
            return invalid("storage.s3.access_key_id", "access_key_id and a secret must be given together");
        }
        if self.max_rename_objects == 0 || self.sweep_interval_secs == 0 {
            return invalid(
                "storage.s3.max_rename_objects",
                "max_rename_objects and sweep_interval_secs must be at least 1",
            );
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return invalid("storage.s3.endpoint", "must start with http:// or https://");
            }
        }
        Ok(())
    }
}

/// A secret from the configuration: usable, but never printed (`Debug` shows `***`).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The URL without its query string and with any password in the authority replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let url = url.split('?').next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords_and_parameters() {
        assert_eq!(redact_url("postgres://u:secret@db/w?sslmode=require"), "postgres://u:***@db/w");
        assert_eq!(redact_url("sqlite://x.db?mode=rwc"), "sqlite://x.db");
        assert_eq!(redact_url("postgres://u@db/w"), "postgres://u@db/w");
    }

    #[test]
    fn secrets_are_never_printed() {
        let mut c = Config::default();
        c.storage.s3.secret_access_key = Some(Secret::new("very-secret".to_owned()));
        assert!(!format!("{c:?}").contains("very-secret"));
        assert_eq!(c.storage.s3.secret_access_key.as_ref().unwrap().expose(), "very-secret");
    }

    #[test]
    fn the_s3_backend_needs_a_bucket_and_sane_part_settings() {
        let mut c = Config::default();
        c.storage.backend = Backend::S3;
        let field = |c: &Config| match c.validate() {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        };
        assert_eq!(field(&c), "storage.s3.bucket");
        c.storage.s3.bucket = Some("b".into());
        c.validate().unwrap();
        c.storage.s3.part_size = 1024 * 1024;
        assert_eq!(field(&c), "storage.s3.part_size");
        c.storage.s3.part_size = 8 * MIB;
        c.storage.s3.tenant_memory_budget = 16 * MIB;
        assert_eq!(field(&c), "storage.s3.memory_budget", "one upload needs 8 MiB x 5");
        c.storage.s3.tenant_memory_budget = 256 * MIB;
        c.storage.s3.access_key_id = Some("AK".into());
        assert_eq!(field(&c), "storage.s3.access_key_id", "a key id without a secret");
        c.storage.s3.endpoint = Some("minio:9000".into());
        c.storage.s3.access_key_id = None;
        assert_eq!(field(&c), "storage.s3.endpoint");
    }

    #[test]
    fn login_defence_settings_are_checked() {
        let field = |c: &Config| match c.validate() {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        };
        let mut c = Config::default();
        c.login_defence.user.threshold = 0;
        assert_eq!(field(&c), "login_defence.user.threshold");
        let mut c = Config::default();
        c.login_defence.ip.ban_secs = 0;
        assert_eq!(field(&c), "login_defence.ip.window_secs");
        let mut c = Config::default();
        c.login_defence.max_ban_secs = 60;
        assert_eq!(field(&c), "login_defence.max_ban_secs", "shorter than the first ban");
        let mut c = Config::default();
        c.login_defence.forget_after_secs = 60;
        assert_eq!(field(&c), "login_defence.forget_after_secs", "shorter than a window");
        let mut c = Config::default();
        c.login_defence.max_delay_ms = 10;
        assert_eq!(field(&c), "login_defence.max_delay_ms", "below the base delay");
        let mut c = Config::default();
        c.login_defence.ipv6_prefix_len = 8;
        assert_eq!(field(&c), "login_defence.ipv6_prefix_len");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wharf.toml");
        std::fs::write(&file, "[login_defence]\nbans = false\n[login_defence.ip]\nthreshold = 3\n").unwrap();
        let c = Config::load(Some(&file)).unwrap();
        assert!(!c.login_defence.bans);
        assert_eq!(c.login_defence.ip, BanRule { threshold: 3, window_secs: 900, ban_secs: 900 });
        assert_eq!(c.login_defence.user.threshold, 10);
    }

    #[test]
    fn defaults_are_valid_and_strict() {
        let c = Config::default();
        c.validate().unwrap();
        assert!(c.tls.require_tls_for_login && c.tls.require_prot_p && c.tls.require_same_ip_for_passive);
        assert_eq!(c.tls.data_session_resumption, Resumption::Enforced);
        assert_eq!(c.ftp.max_line_bytes, 8192);
    }

    #[test]
    fn the_admin_api_is_off_by_default_and_its_settings_are_checked() {
        let field = |c: &Config| match c.validate() {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        };
        let c = Config::default();
        assert!(!c.admin.enabled);
        assert_eq!(c.admin.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        let mut c = Config::default();
        c.admin.cert_file = Some("cert.pem".into());
        assert_eq!(field(&c), "admin.cert_file", "a certificate without its key");
        let mut c = Config::default();
        c.admin.enabled = true;
        c.admin.listen = c.ftp.explicit_listen.unwrap();
        assert_eq!(field(&c), "admin.listen");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wharf.toml");
        std::fs::write(&file, "[admin]\nenabled = true\nlisten = \"127.0.0.1:9443\"\n").unwrap();
        let c = Config::load(Some(&file)).unwrap();
        assert!(c.admin.enabled);
        assert_eq!(c.admin.listen.port(), 9443);
        std::fs::write(&file, "[admin]\nlisten = \"not an address\"\n").unwrap();
        assert!(Config::load(Some(&file)).is_err());
    }

    #[test]
    fn toml_overrides_and_bad_fields_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wharf.toml");
        std::fs::write(&file, "[ftp]\npassive_ports = \"6000-6010\"\n[tls]\ndata_session_resumption = \"enabled\"\n")
            .unwrap();
        let c = Config::load(Some(&file)).unwrap();
        assert_eq!(c.ftp.passive_ports, PortRange { start: 6000, end: 6010 });
        assert_eq!(c.tls.data_session_resumption, Resumption::Enabled);

        std::fs::write(&file, "[ftp]\npassive_ports = \"9-3\"\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("ftp.passive_ports"), "{err}");

        std::fs::write(&file, "[tls]\ndata_session_resumption = \"sometimes\"\n").unwrap();
        assert!(Config::load(Some(&file)).is_err());
    }

    #[test]
    fn telemetry_is_off_by_default_and_its_settings_are_checked() {
        let field = |c: &Config| match c.validate() {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        };
        assert_eq!(Config::default().telemetry.otlp_endpoint, None);
        type Change = fn(&mut TelemetryConfig);
        let cases: [(Change, &str); 6] = [
            (|t| t.otlp_endpoint = Some("collector:4318".into()), "telemetry.otlp_endpoint"),
            (|t| t.otlp_endpoint = Some("http://bad host/".into()), "telemetry.otlp_endpoint"),
            (|t| drop(t.otlp_headers.insert("bad header".into(), Secret::new("x".into()))), "telemetry.otlp_headers"),
            (|t| t.traces_sample_ratio = 1.5, "telemetry.traces_sample_ratio"),
            (|t| t.traces_filter = "wharf=loud".into(), "telemetry.traces_filter"),
            (|t| t.metrics_interval_secs = 0, "telemetry.metrics_interval_secs"),
        ];
        for (change, expected) in cases {
            let mut c = Config::default();
            change(&mut c.telemetry);
            assert_eq!(field(&c), expected);
        }

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wharf.toml");
        let toml = "[telemetry]\notlp_endpoint = \"https://otel.example.com:4318\"\n\
                    otlp_headers = { authorization = \"Bearer abc\" }\ntraces_sample_ratio = 0.25\n";
        std::fs::write(&file, toml).unwrap();
        let c = Config::load(Some(&file)).unwrap();
        assert_eq!(c.telemetry.otlp_endpoint.as_deref(), Some("https://otel.example.com:4318"));
        assert_eq!(c.telemetry.otlp_headers["authorization"].expose(), "Bearer abc");
        assert!(!format!("{c:?}").contains("Bearer abc"), "headers are secrets");
        assert_eq!(c.telemetry.traces_sample_ratio, 0.25);
    }

    #[test]
    fn a_passive_relay_needs_a_shared_pool_a_reachable_address_and_trusted_replicas() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wharf.toml");
        let pool = "[ftp]\npassive_mode = \"shared\"\npassive_ports = \"50000-50009\"\n";
        let load = |toml: String| {
            std::fs::write(&file, toml).unwrap();
            Config::load(Some(&file))
        };
        let relay = "[ftp.passive_relay]\nlisten = \"0.0.0.0:2122\"\nadvertise = \"10.1.2.3:2122\"\n\
                     trusted = [\"10.0.0.0/8\"]\n";
        let c = load(format!("{pool}{relay}")).unwrap();
        assert_eq!(c.ftp.passive_relay.advertise, Some("10.1.2.3:2122".parse().unwrap()));
        assert_eq!(c.ftp.passive_relay.trusted.len(), 1);
        // A specific listen address is its own advertisement.
        load(format!("{pool}[ftp.passive_relay]\nlisten = \"10.1.2.3:2122\"\ntrusted = [\"10.0.0.0/8\"]\n")).unwrap();
        let cases = [
            (relay.to_owned(), "ftp.passive_relay.listen"),
            (
                format!("{pool}[ftp.passive_relay]\nlisten = \"0.0.0.0:2122\"\ntrusted = [\"10.0.0.0/8\"]\n"),
                "ftp.passive_relay.advertise",
            ),
            (format!("{pool}{}", relay.replace("10.1.2.3:2122", "10.1.2.3:0")), "ftp.passive_relay.advertise"),
            (format!("{pool}{}", relay.replace("[\"10.0.0.0/8\"]", "[]")), "ftp.passive_relay.trusted"),
            (format!("{pool}[ftp.passive_relay]\ntrusted = [\"10.0.0.0/8\"]\n"), "ftp.passive_relay.listen"),
        ];
        for (toml, field) in cases {
            let err = load(toml.clone()).unwrap_err().to_string();
            assert!(err.contains(field), "{toml}: {err}");
        }
    }

    #[test]
    fn proxy_protocol_needs_trusted_balancers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wharf.toml");
        let section = "[ftp.proxy_protocol]\nlisteners = [\"explicit\", \"passive\"]\n";
        std::fs::write(&file, format!("{section}trusted = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n")).unwrap();
        let c = Config::load(Some(&file)).unwrap();
        assert_eq!(c.ftp.proxy_protocol.listeners, [ProxyListener::Explicit, ProxyListener::Passive]);
        assert_eq!(c.ftp.proxy_protocol.trusted.len(), 2);

        std::fs::write(&file, section).unwrap();
        let err = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("ftp.proxy_protocol.trusted"), "{err}");
        std::fs::write(&file, format!("{section}trusted = [\"10.0.0.0/33\"]\n")).unwrap();
        assert!(Config::load(Some(&file)).is_err(), "a bad network");
        std::fs::write(&file, "[ftp.proxy_protocol]\nlisteners = [\"admin\"]\ntrusted = [\"10.0.0.1\"]\n").unwrap();
        assert!(Config::load(Some(&file)).is_err(), "an unknown listener");
    }
}
