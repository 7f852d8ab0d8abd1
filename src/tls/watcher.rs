//! Keeps the SNI resolver in step with the directory, on every instance: poll a cheap version number,
//! reload the certificates only when it moved, when a served certificate expires, or at least every
//! [`RELOAD_AT_LEAST_EVERY`] (tenants' hostnames can change without the certificates changing).
//!
//! ```text
//! every N s: certificates_version() ──changed?──▶ certificate_materials() + each tenant's hostnames
//!                       │                                 ──▶ TenantCertificates ──▶ resolver
//!                       error: log, keep serving what was loaded, try again next tick
//! ```

use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::resolver::{CertResolver, TenantCertificates, TenantHostnames};
use super::sealer::Sealer;
use crate::directory::admin::{AdminStore, CertificateMaterial};
use crate::directory::{Directory, DirectoryError, Tenants};

/// How often instances look for certificate changes unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// A full reload happens at least this often, so that a hostname added to or removed from a tenant gets or
/// loses its certificate on every instance even though no certificate changed.
pub const RELOAD_AT_LEAST_EVERY: Duration = Duration::from_secs(60);

/// Where certificates come from: the [`Directory`] in production.
#[async_trait]
pub trait CertificateSource: Send + Sync {
    async fn certificates_version(&self) -> Result<(i64, i64), DirectoryError>;
    async fn certificate_materials(&self) -> Result<Vec<CertificateMaterial>, DirectoryError>;
    async fn tenant_hostnames(&self, tenant_id: i64) -> Result<Vec<String>, DirectoryError>;
}

#[async_trait]
impl<T: Directory + ?Sized> CertificateSource for T {
    async fn certificates_version(&self) -> Result<(i64, i64), DirectoryError> {
        AdminStore::certificates_version(self).await
    }

    async fn certificate_materials(&self) -> Result<Vec<CertificateMaterial>, DirectoryError> {
        AdminStore::certificate_materials(self).await
    }

    async fn tenant_hostnames(&self, tenant_id: i64) -> Result<Vec<String>, DirectoryError> {
        Tenants::hostnames(self, tenant_id).await
    }
}

/// Reloads a [`CertResolver`]'s tenant certificates when the directory's change.
pub struct CertificateWatcher<S: CertificateSource + ?Sized> {
    source: Arc<S>,
    resolver: Arc<CertResolver>,
    sealer: Arc<Sealer>,
    every: Duration,
    loaded: Option<(i64, i64)>,
    loaded_at: Option<DateTime<Utc>>,
    next_change: Option<DateTime<Utc>>,
    nudge: Arc<Notify>,
}

impl<S: CertificateSource + ?Sized> CertificateWatcher<S> {
    pub fn new(source: Arc<S>, resolver: Arc<CertResolver>, sealer: Arc<Sealer>, every: Duration) -> Self {
        CertificateWatcher {
            source,
            resolver,
            sealer,
            every,
            loaded: None,
            loaded_at: None,
            next_change: None,
            nudge: Arc::default(),
        }
    }

    /// Reloads if the directory's certificates changed since the last load, if a served certificate
    /// expired (or a stored one became valid) since, or if the last load is [`RELOAD_AT_LEAST_EVERY`] old.
    /// True when it reloaded. On error nothing changes.
    pub async fn refresh(&mut self, now: DateTime<Utc>) -> Result<bool, DirectoryError> {
        let version = self.source.certificates_version().await?;
        let due = self.next_change.is_some_and(|at| now >= at)
            || self.loaded_at.is_none_or(|at| (now - at).to_std().unwrap_or_default() >= RELOAD_AT_LEAST_EVERY);
        if self.loaded == Some(version) && !due {
            return Ok(false);
        }
        // Read after the version: a change in between is loaded now and loaded again next tick.
        let materials = self.source.certificate_materials().await?;
        let mut hostnames = TenantHostnames::new();
        for material in &materials {
            let tenant = material.info.tenant_id;
            if let Entry::Vacant(slot) = hostnames.entry(tenant) {
                slot.insert(self.source.tenant_hostnames(tenant).await?);
            }
        }
        let table = TenantCertificates::build(&materials, &hostnames, &self.sealer, now);
        tracing::info!(served = table.len(), skipped = materials.len() - table.len(), "tenant certificates loaded");
        self.next_change = table.next_change();
        self.resolver.set_tenants(table);
        self.loaded = Some(version);
        self.loaded_at = Some(now);
        Ok(true)
    }

    /// A handle that makes the running watcher refresh now instead of at its next tick: the admin API
    /// nudges it after saving or deleting a certificate, so this instance serves the change at once (the
    /// others within their poll interval).
    pub fn nudger(&self) -> Arc<Notify> {
        self.nudge.clone()
    }

    /// Refreshes at once unless already loaded, then every interval and whenever nudged, until `shutdown`.
    /// Call [`CertificateWatcher::refresh`] once before accepting connections so that the first clients
    /// already get their tenant's certificate.
    pub async fn run(mut self, shutdown: CancellationToken) {
        if self.loaded.is_none() {
            self.refresh_or_log().await;
        }
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + self.every, self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
                _ = self.nudge.notified() => {}
            }
            self.refresh_or_log().await;
        }
    }

    async fn refresh_or_log(&mut self) {
        if let Err(e) = self.refresh(Utc::now()).await {
            tracing::warn!(error = %e, "reloading tenant certificates failed; still serving the ones loaded before");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::PrivateKeyDer;

    use super::*;
    use crate::tls::certstore::prepare;
    use crate::tls::testcerts::{material, TestCa};

    /// A directory's certificate table in memory; `fail` makes it answer like a database that is down.
    #[derive(Default)]
    struct Table {
        rows: Mutex<Vec<CertificateMaterial>>,
        hostnames: Mutex<Vec<String>>,
        fail: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl CertificateSource for Table {
        async fn certificates_version(&self) -> Result<(i64, i64), DirectoryError> {
            if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(DirectoryError::Unavailable("down".into()));
            }
            let rows = self.rows.lock().unwrap();
            Ok((rows.len() as i64, rows.iter().map(|r| r.info.id).max().unwrap_or(0)))
        }

        async fn certificate_materials(&self) -> Result<Vec<CertificateMaterial>, DirectoryError> {
            Ok(self.rows.lock().unwrap().clone())
        }

        async fn tenant_hostnames(&self, _tenant_id: i64) -> Result<Vec<String>, DirectoryError> {
            Ok(self.hostnames.lock().unwrap().clone())
        }
    }

    #[tokio::test]
    async fn reloads_on_change_only_and_keeps_the_old_set_when_the_directory_fails() {
        let ca = TestCa::new("CA");
        let sealer = Arc::new(Sealer::new(&[1; 32]));
        let default = ca.issue(&["localhost"]);
        let key = PrivateKeyDer::from_pem_slice(default.key_pem.as_bytes()).unwrap();
        let resolver = Arc::new(CertResolver::new(vec![default.leaf.clone()], key).unwrap());
        let table = Arc::new(Table::default());
        let mut watcher =
            CertificateWatcher::new(table.clone(), resolver.clone(), sealer.clone(), DEFAULT_POLL_INTERVAL);

        assert!(watcher.refresh(Utc::now()).await.unwrap(), "the first refresh loads");
        assert!(!watcher.refresh(Utc::now()).await.unwrap(), "nothing changed");

        let issued = ca.issue(&["ftp.acme.test"]);
        let hosts = vec!["ftp.acme.test".to_owned()];
        *table.hostnames.lock().unwrap() = hosts.clone();
        let prepared = prepare(&hosts, &issued.chain_pem, &issued.key_pem, &sealer, Utc::now()).unwrap();
        table.rows.lock().unwrap().push(material(prepared.into_new_certificate(1)));
        assert_eq!(resolver.certificate_for(Some("ftp.acme.test")).cert[0], default.leaf, "not before a refresh");
        assert!(watcher.refresh(Utc::now()).await.unwrap());
        assert_eq!(resolver.certificate_for(Some("ftp.acme.test")).cert[0], issued.leaf);

        // The hostname leaves the tenant: no certificate changed, so it takes until the periodic reload.
        table.hostnames.lock().unwrap().clear();
        assert!(!watcher.refresh(Utc::now()).await.unwrap());
        let later = Utc::now() + RELOAD_AT_LEAST_EVERY;
        assert!(watcher.refresh(later).await.unwrap());
        assert_eq!(resolver.certificate_for(Some("ftp.acme.test")).cert[0], default.leaf);
        *table.hostnames.lock().unwrap() = hosts.clone();
        assert!(watcher.refresh(later + RELOAD_AT_LEAST_EVERY).await.unwrap());
        assert_eq!(resolver.certificate_for(Some("ftp.acme.test")).cert[0], issued.leaf);

        table.fail.store(true, std::sync::atomic::Ordering::Relaxed);
        table.rows.lock().unwrap().clear();
        assert!(watcher.refresh(Utc::now()).await.is_err());
        assert_eq!(
            resolver.certificate_for(Some("ftp.acme.test")).cert[0],
            issued.leaf,
            "kept while the directory is down"
        );

        // Past the certificate's expiry it is dropped even though nothing in the directory moved.
        table.fail.store(false, std::sync::atomic::Ordering::Relaxed);
        table.rows.lock().unwrap().push(material(
            prepare(&hosts, &issued.chain_pem, &issued.key_pem, &sealer, Utc::now()).unwrap().into_new_certificate(1),
        ));
        let soon = later + RELOAD_AT_LEAST_EVERY + chrono::Duration::seconds(1);
        assert!(!watcher.refresh(soon).await.unwrap(), "same version as before the outage");
        assert!(watcher.refresh(chrono::DateTime::<Utc>::MAX_UTC).await.unwrap());
        assert_eq!(resolver.tenant_certificates(), 0);
    }

    #[tokio::test]
    async fn a_nudge_reloads_at_once_without_waiting_for_the_next_tick() {
        let ca = TestCa::new("CA");
        let sealer = Arc::new(Sealer::new(&[1; 32]));
        let default = ca.issue(&["localhost"]);
        let key = PrivateKeyDer::from_pem_slice(default.key_pem.as_bytes()).unwrap();
        let resolver = Arc::new(CertResolver::new(vec![default.leaf.clone()], key).unwrap());
        let table = Arc::new(Table::default());
        let hosts = vec!["ftp.acme.test".to_owned()];
        *table.hostnames.lock().unwrap() = hosts.clone();
        let hour = Duration::from_secs(3600);
        let mut watcher = CertificateWatcher::new(table.clone(), resolver.clone(), sealer.clone(), hour);
        assert!(watcher.refresh(Utc::now()).await.unwrap());
        let nudge = watcher.nudger();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(watcher.run(shutdown.clone()));

        let issued = ca.issue(&["ftp.acme.test"]);
        let prepared = prepare(&hosts, &issued.chain_pem, &issued.key_pem, &sealer, Utc::now()).unwrap();
        table.rows.lock().unwrap().push(material(prepared.into_new_certificate(1)));
        nudge.notify_one();
        let picked_up = async {
            while resolver.certificate_for(Some("ftp.acme.test")).cert[0] != issued.leaf {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), picked_up).await.expect("the nudge did not reload");
        shutdown.cancel();
        running.await.unwrap();
    }
}
