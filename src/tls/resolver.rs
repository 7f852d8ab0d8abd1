//! Which certificate a handshake gets: the tenant certificate whose names match the client's SNI name
//! (exact first, then a wildcard one label up), else the server's own. Both can be replaced while
//! connections are being accepted; a handshake uses whatever was in place when its ClientHello arrived.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::certstore::{normalise_name, open_material};
use super::sealer::Sealer;
use crate::directory::admin::CertificateMaterial;

/// Tenants' certificates by the names they cover, ready to serve.
#[derive(Default)]
pub struct TenantCertificates {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is kept under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    loaded: usize,
    next_change: Option<DateTime<Utc>>,
}

impl fmt::Debug for TenantCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantCertificates")
            .field("certificates", &self.loaded)
            .field("names", &(self.exact.len() + self.wildcard.len()))
            .finish()
    }
}

impl TenantCertificates {
    /// Opens what the directory stores. A certificate that cannot be opened (sealed under another key,
    /// damaged), has expired or is not valid yet is skipped and logged. When two certificates name the same
    /// host, the later one (the higher id) wins, so uploading a renewal takes over at once.
    pub fn build(materials: &[CertificateMaterial], sealer: &Sealer, now: DateTime<Utc>) -> TenantCertificates {
        let mut table = TenantCertificates::default();
        let mut ordered: Vec<&CertificateMaterial> = materials.iter().collect();
        ordered.sort_by_key(|m| m.info.id);
        for material in ordered {
            let info = &material.info;
            if info.not_after < now {
                tracing::warn!(certificate = info.id, tenant = info.tenant_id, not_after = %info.not_after, "tenant certificate skipped: it has expired");
                continue;
            }
            if info.not_before > now {
                tracing::info!(certificate = info.id, tenant = info.tenant_id, not_before = %info.not_before, "tenant certificate not served yet: it is not valid before then");
                table.note_change(info.not_before);
                continue;
            }
            let key = match open_material(material, sealer) {
                Ok(key) => key,
                Err(e) => {
                    tracing::warn!(certificate = info.id, tenant = info.tenant_id, "tenant certificate skipped: {e}");
                    continue;
                }
            };
            for name in &info.names {
                let name = normalise_name(name);
                match name.strip_prefix("*.") {
                    Some(parent) => table.wildcard.insert(parent.to_owned(), key.clone()),
                    None => table.exact.insert(name, key.clone()),
                };
            }
            table.loaded += 1;
            table.note_change(info.not_after);
        }
        table
    }

    fn note_change(&mut self, at: DateTime<Utc>) {
        self.next_change = Some(self.next_change.map_or(at, |t| t.min(at)));
    }

    /// The certificate for an SNI name.
    pub fn lookup(&self, server_name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = normalise_name(server_name);
        if let Some(key) = self.exact.get(&name) {
            return Some(key);
        }
        let (label, parent) = name.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        self.wildcard.get(parent)
    }

    /// How many certificates are served.
    pub fn len(&self) -> usize {
        self.loaded
    }

    pub fn is_empty(&self) -> bool {
        self.loaded == 0
    }

    /// When the set being served changes by itself: the earliest expiry of a served certificate, or the
    /// start of one not valid yet.
    pub fn next_change(&self) -> Option<DateTime<Utc>> {
        self.next_change
    }
}

/// The certificate resolver of every wharf acceptor, control and data alike.
pub struct CertResolver {
    default: ArcSwap<CertifiedKey>,
    tenants: ArcSwap<TenantCertificates>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").field("tenants", &*self.tenants.load()).finish_non_exhaustive()
    }
}

impl CertResolver {
    /// A resolver serving the server's own certificate until tenants' are loaded.
    pub fn new(certs: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> anyhow::Result<CertResolver> {
        Ok(CertResolver {
            default: ArcSwap::from_pointee(default_key(certs, key)?),
            tenants: ArcSwap::from_pointee(TenantCertificates::default()),
        })
    }

    /// Replaces the server's own certificate (on SIGHUP, say); new handshakes get it at once. On error the
    /// old one stays.
    pub fn set_default(&self, certs: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> anyhow::Result<()> {
        self.default.store(Arc::new(default_key(certs, key)?));
        Ok(())
    }

    /// Replaces the tenants' certificates; new handshakes use the new set at once.
    pub fn set_tenants(&self, tenants: TenantCertificates) {
        self.tenants.store(Arc::new(tenants));
    }

    /// How many tenant certificates are being served.
    pub fn tenant_certificates(&self) -> usize {
        self.tenants.load().len()
    }

    /// What a handshake with this SNI name (or none) is served.
    pub fn certificate_for(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        if let Some(name) = server_name {
            if let Some(key) = self.tenants.load().lookup(name) {
                return key.clone();
            }
        }
        self.default.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certificate_for(client_hello.server_name()))
    }
}

fn default_key(certs: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> anyhow::Result<CertifiedKey> {
    if certs.is_empty() {
        anyhow::bail!("the TLS certificate file holds no certificate");
    }
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, key, &provider)
        .context("the TLS certificate and key do not match or are not supported")
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::tls::certstore::prepare;
    use crate::tls::testcerts::{material, Issued, TestCa};

    fn stored(id: i64, hostnames: &[&str], issued: &Issued, sealer: &Sealer) -> CertificateMaterial {
        let hostnames: Vec<String> = hostnames.iter().map(|h| h.to_string()).collect();
        let prepared = prepare(&hostnames, &issued.chain_pem, &issued.key_pem, sealer, Utc::now()).unwrap();
        let mut material = material(prepared.into_new_certificate(1));
        material.info.id = id;
        material
    }

    fn resolver(ca: &TestCa) -> (CertResolver, CertificateDer<'static>) {
        let default = ca.issue(&["localhost"]);
        let key = PrivateKeyDer::from_pem_slice(default.key_pem.as_bytes()).unwrap();
        (CertResolver::new(vec![default.leaf.clone()], key).unwrap(), default.leaf)
    }

    fn served(resolver: &CertResolver, name: Option<&str>) -> CertificateDer<'static> {
        resolver.certificate_for(name).cert[0].clone()
    }

    use rustls_pki_types::pem::PemObject as _;

    #[test]
    fn exact_names_win_over_wildcards_and_anything_else_gets_the_default() {
        let ca = TestCa::new("CA");
        let sealer = Sealer::new(&[1; 32]);
        let (resolver, default) = resolver(&ca);
        let wildcard = ca.issue(&["*.acme.test"]);
        let exact = ca.issue(&["ftp.acme.test"]);
        let materials =
            [stored(1, &["x.acme.test"], &wildcard, &sealer), stored(2, &["ftp.acme.test"], &exact, &sealer)];
        resolver.set_tenants(TenantCertificates::build(&materials, &sealer, Utc::now()));
        assert_eq!(resolver.tenant_certificates(), 2);

        assert_eq!(served(&resolver, Some("ftp.acme.test")), exact.leaf);
        assert_eq!(served(&resolver, Some("FTP.Acme.Test.")), exact.leaf);
        assert_eq!(served(&resolver, Some("other.acme.test")), wildcard.leaf);
        assert_eq!(served(&resolver, Some("acme.test")), default);
        assert_eq!(served(&resolver, Some("a.b.acme.test")), default);
        assert_eq!(served(&resolver, Some("elsewhere.test")), default);
        assert_eq!(served(&resolver, None), default);
    }

    #[test]
    fn swapping_the_set_changes_what_new_handshakes_get() {
        let ca = TestCa::new("CA");
        let sealer = Sealer::new(&[1; 32]);
        let (resolver, default) = resolver(&ca);
        let first = ca.issue(&["ftp.acme.test"]);
        let renewal = ca.issue(&["ftp.acme.test"]);
        resolver.set_tenants(TenantCertificates::build(
            &[stored(1, &["ftp.acme.test"], &first, &sealer)],
            &sealer,
            Utc::now(),
        ));
        assert_eq!(served(&resolver, Some("ftp.acme.test")), first.leaf);

        // Both stored: the later upload wins, whatever order the directory returns them in.
        let both = [stored(2, &["ftp.acme.test"], &renewal, &sealer), stored(1, &["ftp.acme.test"], &first, &sealer)];
        resolver.set_tenants(TenantCertificates::build(&both, &sealer, Utc::now()));
        assert_eq!(served(&resolver, Some("ftp.acme.test")), renewal.leaf);

        resolver.set_tenants(TenantCertificates::default());
        assert_eq!(served(&resolver, Some("ftp.acme.test")), default);

        let replacement = ca.issue(&["localhost"]);
        let key = PrivateKeyDer::from_pem_slice(replacement.key_pem.as_bytes()).unwrap();
        resolver.set_default(vec![replacement.leaf.clone()], key).unwrap();
        assert_eq!(served(&resolver, None), replacement.leaf);
        let wrong_key = PrivateKeyDer::from_pem_slice(first.key_pem.as_bytes()).unwrap();
        assert!(resolver.set_default(vec![default.clone()], wrong_key).is_err());
        assert_eq!(served(&resolver, None), replacement.leaf, "a failed reload keeps the old certificate");
    }

    #[test]
    fn certificates_that_cannot_be_served_are_skipped() {
        let ca = TestCa::new("CA");
        let sealer = Sealer::new(&[1; 32]);
        let good = stored(1, &["good.acme.test"], &ca.issue(&["good.acme.test"]), &sealer);
        let other_key = stored(2, &["sealed.acme.test"], &ca.issue(&["sealed.acme.test"]), &Sealer::new(&[2; 32]));
        let mut expired = stored(3, &["old.acme.test"], &ca.issue(&["old.acme.test"]), &sealer);
        expired.info.not_after = Utc::now() - Duration::days(1);
        let mut early = stored(4, &["new.acme.test"], &ca.issue(&["new.acme.test"]), &sealer);
        let starts = Utc::now() + Duration::days(1);
        early.info.not_before = starts;

        let table = TenantCertificates::build(&[good.clone(), other_key, expired, early], &sealer, Utc::now());
        assert_eq!(table.len(), 1);
        assert!(table.lookup("good.acme.test").is_some());
        for name in ["sealed.acme.test", "old.acme.test", "new.acme.test"] {
            assert!(table.lookup(name).is_none(), "{name}");
        }
        assert_eq!(table.next_change(), Some(starts), "reload when the early one becomes valid");
        assert_eq!(
            TenantCertificates::build(std::slice::from_ref(&good), &sealer, Utc::now()).next_change(),
            Some(good.info.not_after)
        );
    }
}
