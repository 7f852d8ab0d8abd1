//! Wiring: builds the directory, storage, TLS and listeners from a config and runs until shutdown.
//!
//! [`Server::bind`] takes the config and binds its listeners (port 0 works, so tests get ephemeral ports);
//! [`Server::run`] accepts until its cancellation token fires, then lets sessions finish their transfers up
//! to the configured grace period. The admin API, when enabled, runs beside the FTPS listeners on the same
//! directory and storage and stops with the same token.
//!
//! Each listener's accept loop is in `accept`; the session limits it applies are in `limits`.

mod accept;
mod limits;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::accept::Acceptor;
pub(crate) use self::limits::Limits;
use crate::admin::{self, AdminState, StorageCheck};
use crate::auth::password::Verifier;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::config::{Backend, PassiveMode};
use crate::directory::{self, Directory, QuotaAccounts};
use crate::ftp::data::PassivePorts;
use crate::ftp::session::{FtpContext, ProxyTrust};
use crate::ftp::shared_passive::{Relay, SharedPassive};
use crate::reload::Reloader;
use crate::sessions::LiveSessions;
use crate::storage::fs::FsProvider;
use crate::storage::s3::S3Provider;
use crate::storage::{StorageProvider, UploadLedger};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::Telemetry;
use crate::tls::{self, Tls};

pub struct Server {
    shared: Arc<FtpContext>,
    directory: Arc<dyn Directory>,
    s3: Option<Arc<S3Provider>>,
    explicit: Option<TcpListener>,
    implicit: Option<TcpListener>,
    /// The shared passive ports' listeners, served once `run` starts.
    pool_listeners: Vec<TcpListener>,
    /// Where the other replicas relay passive connections to this one (`ftp.passive_relay.listen`).
    relay_listener: Option<TcpListener>,
    /// Keeps the tenants' certificates served by the TLS listeners in step with the directory.
    certificates: tls::CertificateWatcher<dyn Directory>,
    /// Seals and opens tenants' certificate keys.
    sealer: Arc<tls::Sealer>,
    admin: Option<(admin::Listener, AdminState)>,
    /// The session limits, which a reload changes.
    limits: Arc<Limits>,
}

impl Server {
    /// Opens the directory (applying migrations), loads or makes the certificate, opens the storage root
    /// and binds the listeners.
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the data folder {}", config.data_dir.display()))?;
        let directory = directory::open_with(&config.database_url(), &config.pool_options())
            .await
            .context("opening the directory")?;
        let otlp = crate::telemetry::otlp::metric_exporter(&config.telemetry, &tokio::runtime::Handle::current())?;
        let metrics = Arc::new(Metrics::new(otlp, &config.telemetry));
        metrics.observe_pool(directory.clone());
        let sealer = tls::Sealer::from_sources(
            config.secret_key.as_ref().map(|s| s.expose()),
            config.secret_key_file.as_deref(),
            &config.data_dir,
        )
        .context("loading the secret key that seals certificate keys")?;
        let sealer = Arc::new(sealer);
        let (certs, key) = tls::load_identity(&config)?;
        let tls = Tls::new(certs, key, config.tls.data_session_resumption)?;
        let mut certificates = tls::CertificateWatcher::new(
            directory.clone(),
            tls.resolver().clone(),
            sealer.clone(),
            Duration::from_secs(config.tls.certificate_poll_secs),
        );
        if let Err(e) = certificates.refresh(chrono::Utc::now()).await {
            tracing::warn!(error = %e, "loading tenant certificates failed; serving the server's own until the next poll");
        }
        let (storage, s3): (Arc<dyn StorageProvider>, _) = match config.storage.backend {
            Backend::Fs => {
                let fs = FsProvider::new(config.fs_root(), config.storage.fsync)
                    .with_context(|| format!("opening the storage folder {}", config.fs_root().display()))?;
                (Arc::new(fs), None)
            }
            Backend::S3 => {
                let s3 = S3Provider::new(&config.storage.s3, directory.clone() as Arc<dyn UploadLedger>, metrics.s3())
                    .await
                    .context("setting up S3")?;
                (s3.clone(), Some(s3))
            }
        };
        let verifier = match config.passwords.verify_concurrency {
            Some(n) => Verifier::with_concurrency(config.password_params(), n)?,
            None => Verifier::new(config.password_params())?,
        }
        .remembering(Duration::from_secs(config.passwords.remember_secs));
        let auth =
            Authenticator::new(directory.clone(), verifier, Duration::from_millis(config.ftp.login_failure_delay_ms));
        let explicit = match config.ftp.explicit_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?),
            None => None,
        };
        let implicit = match config.ftp.implicit_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?),
            None => None,
        };
        let passive = PassivePorts::new(config.ftp.passive_ports);
        let sessions = LiveSessions::new(directory.clone(), &LiveSessions::default_instance_name());
        let proxy = ProxyTrust::new(&config.ftp.proxy_protocol);
        let relay_config = &config.ftp.passive_relay;
        let (relay_listener, relay) = match relay_config.listen {
            Some(addr) => {
                let listener =
                    TcpListener::bind(addr).await.with_context(|| format!("listening for passive relays on {addr}"))?;
                // Validated: without `advertise`, `listen` names a specific address (its port may be 0).
                let advertise = match relay_config.advertise {
                    Some(advertise) => advertise,
                    None => listener.local_addr().context("the passive relay listener's address")?,
                };
                let relay = Relay {
                    directory: directory.clone(),
                    instance: sessions.instance().to_owned(),
                    advertise,
                    trusted: relay_config.trusted.clone(),
                    metrics: metrics.clone(),
                };
                (Some(listener), Some(relay))
            }
            None => (None, None),
        };
        let (passive_pool, pool_listeners) = match config.ftp.passive_mode {
            PassiveMode::Dedicated => (None, Vec::new()),
            PassiveMode::Shared => {
                // On the address clients reach the control listeners at.
                let ip = config.ftp.explicit_listen.or(config.ftp.implicit_listen).map(|a| a.ip()).expect("validated");
                let (pool, listeners) = SharedPassive::bind(
                    ip,
                    config.ftp.passive_ports,
                    Duration::from_secs(config.ftp.data_connect_timeout_secs),
                    relay,
                )
                .context("binding the shared passive ports")?;
                (Some(pool), listeners)
            }
        };
        let admin = if config.admin.enabled {
            let provider = storage.clone();
            let check: StorageCheck = Arc::new(move || {
                let provider = provider.clone();
                Box::pin(async move { provider.ready().await.is_ok() })
            });
            let state = AdminState::new(
                directory.clone(),
                check,
                sealer.clone(),
                Some(certificates.nudger()),
                sessions.clone(),
                metrics.clone(),
                &config,
            );
            Some((admin::Listener::bind(&config).await?, state))
        } else {
            None
        };
        let limits = Arc::new(Limits::new(config.ftp.max_sessions, config.ftp.max_sessions_per_ip));
        let quotas = Arc::new(QuotaAccounts(directory.clone()));
        let config = ArcSwap::from_pointee(config);
        let shared = Arc::new(FtpContext {
            config,
            auth,
            storage,
            quotas,
            tls,
            passive,
            passive_pool,
            sessions,
            proxy,
            metrics,
        });
        Ok(Server {
            shared,
            directory,
            s3,
            explicit,
            implicit,
            pool_listeners,
            relay_listener,
            certificates,
            sealer,
            admin,
            limits,
        })
    }

    pub fn explicit_addr(&self) -> Option<SocketAddr> {
        self.explicit.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn implicit_addr(&self) -> Option<SocketAddr> {
        self.implicit.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where the admin API listens, when it is enabled.
    /// The passive relay listener's address, when `ftp.passive_relay` is set.
    pub fn relay_addr(&self) -> Option<SocketAddr> {
        self.relay_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(listener, _)| listener.local_addr())
    }

    pub fn directory(&self) -> Arc<dyn Directory> {
        self.directory.clone()
    }

    /// What SIGHUP does; taken before [`Server::run`] consumes the server. `config_file` is the file the
    /// configuration was loaded from (read again with the environment, as at start); `telemetry`, when this
    /// process installed the subscriber, takes the new `log.filter`.
    pub fn reloader(&self, config_file: Option<PathBuf>, telemetry: Option<Telemetry>) -> Reloader {
        Reloader::new(self.shared.clone(), self.certificates.nudger(), self.limits.clone(), config_file, telemetry)
    }

    /// Seals and opens tenants' certificate keys (the admin API's uploads).
    pub fn sealer(&self) -> Arc<tls::Sealer> {
        self.sealer.clone()
    }

    /// Wakes this instance's certificate watcher, so that a change made here is served at once.
    pub fn certificate_nudge(&self) -> Arc<tokio::sync::Notify> {
        self.certificates.nudger()
    }

    /// The live sessions of this instance (and, through the directory, of all).
    pub fn sessions(&self) -> Arc<LiveSessions> {
        self.shared.sessions.clone()
    }

    /// This server's metrics (what `/metrics` on the admin listener shows).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// The S3 backend, when it is the one in use.
    pub fn s3(&self) -> Option<Arc<S3Provider>> {
        self.s3.clone()
    }

    /// Accepts connections until `shutdown` fires, then waits for the sessions to end.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let limits = self.limits.clone();
        let tracker = TaskTracker::new();
        tokio::spawn(self.shared.sessions.clone().run(shutdown.clone()));
        tokio::spawn(self.certificates.run(shutdown.clone()));
        if let Some(pool) = &self.shared.passive_pool {
            for listener in self.pool_listeners {
                tokio::spawn(pool.clone().serve(listener, self.shared.proxy.passive.clone(), shutdown.clone()));
            }
            if let Some(listener) = self.relay_listener {
                tokio::spawn(pool.clone().serve_relay(listener, shutdown.clone()));
                tokio::spawn(pool.clone().sweep_claims(shutdown.clone()));
            }
        }
        if let Some(s3) = self.s3.clone() {
            let every = Duration::from_secs(self.shared.config().storage.s3.sweep_interval_secs);
            tokio::spawn(sweep_uploads(s3, every, shutdown.clone()));
        }
        for (listener, implicit) in [(self.explicit, false), (self.implicit, true)] {
            if let Some(listener) = listener {
                let acceptor = Acceptor {
                    shared: self.shared.clone(),
                    limits: limits.clone(),
                    tracker: tracker.clone(),
                    shutdown: shutdown.clone(),
                    implicit,
                };
                tracker.spawn(acceptor.run(listener));
            }
        }
        if let Some((listener, state)) = self.admin {
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                if let Err(e) = admin::serve(listener, state, shutdown).await {
                    tracing::error!(error = %e, "the admin API stopped");
                }
            });
        }
        shutdown.cancelled().await;
        tracker.close();
        let grace = Duration::from_secs(self.shared.config().ftp.shutdown_grace_secs) + Duration::from_secs(5);
        // Connections relayed to other replicas carry those replicas' transfers: they get the same grace.
        let relays = async {
            if let Some(pool) = &self.shared.passive_pool {
                pool.relays_done().await;
            }
        };
        if tokio::time::timeout(grace, async { tokio::join!(tracker.wait(), relays) }).await.is_err() {
            tracing::warn!("sessions still open after the shutdown grace period; exiting anyway");
        }
        // Last, so that an OTLP exporter sends the sessions' final figures.
        let metrics = self.shared.metrics.clone();
        let _ = tokio::task::spawn_blocking(move || metrics.shutdown()).await;
        Ok(())
    }
}

/// Aborts expired multipart uploads every `every` until shutdown.
async fn sweep_uploads(s3: Arc<S3Provider>, every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => match s3.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(aborted = n, "expired multipart uploads aborted"),
                Err(e) => tracing::warn!(error = %e, "sweeping expired uploads failed"),
            },
        }
    }
}

/// Runs wharf until SIGINT/SIGTERM (SIGHUP reloads `config_file` and the certificates): prints where it
/// listens and how to create a tenant and a user.
pub async fn run(config: Config, config_file: Option<PathBuf>, telemetry: Telemetry) -> anyhow::Result<()> {
    // Installed before wharf says it runs: until then, SIGHUP's default action would end the process.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let server = Server::bind(config.clone()).await?;
    let explicit = server.explicit_addr().map(|a| a.to_string()).unwrap_or_else(|| "off".into());
    let implicit = server.implicit_addr().map(|a| a.to_string()).unwrap_or_else(|| "off".into());
    let tenants = server.directory().list_tenants().await.map(|t| t.len()).unwrap_or(0);
    println!("wharf {} is running", env!("CARGO_PKG_VERSION"));
    println!("  explicit FTPS (AUTH TLS): {explicit}");
    println!("  implicit FTPS:            {implicit}");
    if let Some(addr) = server.admin_addr() {
        let scheme = if config.admin.cert_file.is_some() { "https" } else { "http" };
        println!("  admin API:                {scheme}://{addr}/api/v1 (OpenAPI at /api/v1/openapi.json)");
        println!("  metrics:                  {scheme}://{addr}/metrics (Prometheus)");
    }
    if let Some(addr) = server.relay_addr() {
        let advertise = config.ftp.passive_relay.advertise.unwrap_or(addr);
        println!("  passive relay:            {addr} (the other replicas reach it at {advertise})");
    }
    if let Some(endpoint) = &config.telemetry.otlp_endpoint {
        println!(
            "  telemetry:                spans and metrics over OTLP/HTTP to {}",
            crate::config::redact_url(endpoint)
        );
    }
    println!("  data folder:              {}", config.data_dir.display());
    println!("  directory:                {}", crate::config::redact_url(&config.database_url()));
    match config.storage.backend {
        Backend::Fs => println!("  storage:                  folder {}", config.fs_root().display()),
        Backend::S3 => {
            let s3 = &config.storage.s3;
            let endpoint = s3.endpoint.as_deref().unwrap_or("AWS");
            println!(
                "  storage:                  S3 bucket {} at {}",
                s3.bucket.as_deref().unwrap_or(""),
                crate::config::redact_url(endpoint)
            );
            let largest = crate::storage::s3::largest_upload(s3) as f64 / (1u64 << 30) as f64;
            println!(
                "  largest upload:           {largest:.0} GiB (parts are capped at half of \
                 storage.s3.tenant_memory_budget; S3 itself stops at 5,120 GiB)"
            );
        }
    }
    if tenants == 0 {
        println!();
        println!("No tenants yet. Create one and a user, then connect with any FTPS client:");
        println!("  wharf tenant add acme");
        println!("  wharf user add alice@acme --password-stdin     (type the password, then Enter)");
        if let Some(addr) = server.explicit_addr() {
            println!("  curl --ssl-reqd -k -u alice@acme ftp://{addr}/");
        }
    }
    tokio::spawn(crate::reload::on_hangup(hangups, server.reloader(config_file, Some(telemetry))));
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        signal.cancel();
    });
    server.run(shutdown).await
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
