//! Keeps the SNI resolver in step with the directory, on every instance: poll a cheap version number,
//! reload the certificates only when it moved (or when a served certificate expires).
//!
//! ```text
//! every N s: certificates_version() ──changed?──▶ certificate_materials() ──▶ TenantCertificates ──▶ resolver
//!                       error: log, keep serving what was loaded, try again next tick
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::resolver::{CertResolver, TenantCertificates};
use super::sealer::Sealer;
use crate::directory::admin::{AdminStore, CertificateMaterial};
use crate::directory::DirectoryError;

/// How often instances look for certificate changes unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Where certificates come from: the directory ([`AdminStore`]) in production.
#[async_trait]
pub trait CertificateSource: Send + Sync {
    async fn certificates_version(&self) -> Result<(i64, i64), DirectoryError>;
    async fn certificate_materials(&self) -> Result<Vec<CertificateMaterial>, DirectoryError>;
}

#[async_trait]
impl<T: AdminStore + ?Sized> CertificateSource for T {
    async fn certificates_version(&self) -> Result<(i64, i64), DirectoryError> {
        AdminStore::certificates_version(self).await
    }

    async fn certificate_materials(&self) -> Result<Vec<CertificateMaterial>, DirectoryError> {
        AdminStore::certificate_materials(self).await
    }
}

/// Reloads a [`CertResolver`]'s tenant certificates when the directory's change.
pub struct CertificateWatcher<S: CertificateSource + ?Sized> {
    source: Arc<S>,
    resolver: Arc<CertResolver>,
    sealer: Arc<Sealer>,
    every: Duration,
    loaded: Option<(i64, i64)>,
    next_change: Option<DateTime<Utc>>,
}

impl<S: CertificateSource + ?Sized> CertificateWatcher<S> {
    pub fn new(source: Arc<S>, resolver: Arc<CertResolver>, sealer: Arc<Sealer>, every: Duration) -> Self {
        CertificateWatcher { source, resolver, sealer, every, loaded: None, next_change: None }
    }

    /// Reloads if the directory's certificates changed since the last load, or if a served certificate
    /// expired (or a stored one became valid) since. True when it reloaded. On error nothing changes.
    pub async fn refresh(&mut self, now: DateTime<Utc>) -> Result<bool, DirectoryError> {
        let version = self.source.certificates_version().await?;
        let due = self.next_change.is_some_and(|at| now >= at);
        if self.loaded == Some(version) && !due {
            return Ok(false);
        }
        // Read after the version: a change in between is loaded now and loaded again next tick.
        let materials = self.source.certificate_materials().await?;
        let table = TenantCertificates::build(&materials, &self.sealer, now);
        tracing::info!(served = table.len(), skipped = materials.len() - table.len(), "tenant certificates loaded");
        self.next_change = table.next_change();
        self.resolver.set_tenants(table);
        self.loaded = Some(version);
        Ok(true)
    }

    /// Refreshes every interval until `shutdown`. Run [`CertificateWatcher::refresh`] once before
    /// accepting connections so that the first clients already get their tenant's certificate.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(e) = self.refresh(Utc::now()).await {
                tracing::warn!(error = %e, "reloading tenant certificates failed; still serving the ones loaded before");
            }
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
        let prepared = prepare(&hosts, &issued.chain_pem, &issued.key_pem, &sealer, Utc::now()).unwrap();
        table.rows.lock().unwrap().push(material(prepared.into_new_certificate(1)));
        assert_eq!(resolver.certificate_for(Some("ftp.acme.test")).cert[0], default.leaf, "not before a refresh");
        assert!(watcher.refresh(Utc::now()).await.unwrap());
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
        assert!(!watcher.refresh(Utc::now()).await.unwrap(), "same version as before the outage");
        assert!(watcher.refresh(chrono::DateTime::<Utc>::MAX_UTC).await.unwrap());
        assert_eq!(resolver.tenant_certificates(), 0);
    }
}
