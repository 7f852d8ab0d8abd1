//! Which certificate a handshake gets: for a tenant's hostname, the tenant certificate that names it (exact
//! first, then a wildcard one label up); for anything else the server's own. Both can be replaced while
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

use super::certstore::{name_covers, normalise_name, open_material};
use super::sealer::Sealer;
use crate::directory::admin::CertificateMaterial;

/// Which hostnames each tenant owns (the directory's `hostnames`): a tenant's certificate is served for
/// those of its names only, so a certificate that also names another tenant's host never reaches that
/// tenant's clients.
pub type TenantHostnames = HashMap<i64, Vec<String>>;

/// Tenants' certificates by hostname, ready to serve.
#[derive(Default)]
pub struct TenantCertificates {
    by_hostname: HashMap<String, Chosen>,
    loaded: usize,
    next_change: Option<DateTime<Utc>>,
}

struct Chosen {
    key: Arc<CertifiedKey>,
    /// Exact names beat wildcards; then the later upload (higher id) wins.
    rank: (bool, i64),
}

impl fmt::Debug for TenantCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantCertificates")
            .field("certificates", &self.loaded)
            .field("hostnames", &self.by_hostname.len())
            .finish()
    }
}

impl TenantCertificates {
    /// Opens what the directory stores and assigns each of a tenant's hostnames the certificate that covers
    /// it: one naming it exactly before a wildcard, the later upload (higher id) before an earlier one, so a
    /// renewal takes over at once. A certificate that cannot be opened (sealed under another key, damaged),
    /// has expired, is not valid yet or covers none of its tenant's hostnames is skipped and logged.
    pub fn build(
        materials: &[CertificateMaterial],
        hostnames: &TenantHostnames,
        sealer: &Sealer,
        now: DateTime<Utc>,
    ) -> TenantCertificates {
        let mut table = TenantCertificates::default();
        for material in materials {
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
            let names: Vec<String> = info.names.iter().map(|n| normalise_name(n)).collect();
            let covered: Vec<(String, bool)> = hostnames
                .get(&info.tenant_id)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|h| normalise_name(h))
                .filter_map(|h| {
                    let exact = names.contains(&h);
                    (exact || names.iter().any(|n| name_covers(n, &h))).then_some((h, exact))
                })
                .collect();
            if covered.is_empty() {
                tracing::info!(
                    certificate = info.id,
                    tenant = info.tenant_id,
                    "tenant certificate not served: it covers none of the tenant's hostnames"
                );
                continue;
            }
            let key = match open_material(material, sealer) {
                Ok(key) => key,
                Err(e) => {
                    tracing::warn!(certificate = info.id, tenant = info.tenant_id, "tenant certificate skipped: {e}");
                    continue;
                }
            };
            for (hostname, exact) in covered {
                let rank = (exact, info.id);
                match table.by_hostname.get(&hostname) {
                    Some(chosen) if chosen.rank > rank => {}
                    _ => {
                        table.by_hostname.insert(hostname, Chosen { key: key.clone(), rank });
                    }
                }
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
        self.by_hostname.get(&normalise_name(server_name)).map(|chosen| &chosen.key)
    }

    /// How many certificates are served (for at least one hostname).
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
    use rustls_pki_types::pem::PemObject as _;

    use super::*;
    use crate::tls::certstore::prepare;
    use crate::tls::testcerts::{material, Issued, TestCa};

    /// A stored certificate of `tenant` with id `id`, uploaded for `hostname`.
    fn stored(tenant: i64, id: i64, hostname: &str, issued: &Issued, sealer: &Sealer) -> CertificateMaterial {
        let prepared = prepare(&[hostname.to_owned()], &issued.chain_pem, &issued.key_pem, sealer, Utc::now()).unwrap();
        let mut material = material(prepared.into_new_certificate(tenant));
        material.info.id = id;
        material
    }

    fn owners(list: &[(i64, &[&str])]) -> TenantHostnames {
        list.iter().map(|(tenant, names)| (*tenant, names.iter().map(|n| n.to_string()).collect())).collect()
    }

    fn resolver(ca: &TestCa) -> (CertResolver, CertificateDer<'static>) {
        let default = ca.issue(&["localhost"]);
        let key = PrivateKeyDer::from_pem_slice(default.key_pem.as_bytes()).unwrap();
        (CertResolver::new(vec![default.leaf.clone()], key).unwrap(), default.leaf)
    }

    fn served(resolver: &CertResolver, name: Option<&str>) -> CertificateDer<'static> {
        resolver.certificate_for(name).cert[0].clone()
    }

    #[test]
    fn exact_names_win_over_wildcards_and_anything_else_gets_the_default() {
        let ca = TestCa::new("CA");
        let sealer = Sealer::new(&[1; 32]);
        let (resolver, default) = resolver(&ca);
        let exact = ca.issue(&["ftp.acme.test"]);
        let wildcard = ca.issue(&["*.acme.test"]);
        // The wildcard is the later upload, yet the certificate naming the host exactly wins.
        let materials =
            [stored(1, 1, "ftp.acme.test", &exact, &sealer), stored(1, 2, "x.acme.test", &wildcard, &sealer)];
        let hostnames = owners(&[(1, &["ftp.acme.test", "other.acme.test", "acme.test", "a.b.acme.test"])]);
        resolver.set_tenants(TenantCertificates::build(&materials, &hostnames, &sealer, Utc::now()));
        assert_eq!(resolver.tenant_certificates(), 2);

        assert_eq!(served(&resolver, Some("ftp.acme.test")), exact.leaf);
        assert_eq!(served(&resolver, Some("FTP.Acme.Test.")), exact.leaf);
        assert_eq!(served(&resolver, Some("other.acme.test")), wildcard.leaf);
        assert_eq!(served(&resolver, Some("acme.test")), default);
        assert_eq!(served(&resolver, Some("a.b.acme.test")), default);
        assert_eq!(served(&resolver, Some("unlisted.acme.test")), default, "not a hostname of the tenant");
        assert_eq!(served(&resolver, Some("elsewhere.test")), default);
        assert_eq!(served(&resolver, None), default);
    }

    #[test]
    fn a_certificate_is_served_only_for_its_own_tenants_hostnames() {
        let ca = TestCa::new("CA");
        let sealer = Sealer::new(&[1; 32]);
        let (resolver, default) = resolver(&ca);
        let victim = ca.issue(&["ftp.victim.test"]);
        // Tenant 2 uploads, later, a certificate that also names tenant 1's host.
        let grabby = ca.issue(&["ftp.grabby.test", "ftp.victim.test", "files.victim.test"]);
        let materials =
            [stored(1, 1, "ftp.victim.test", &victim, &sealer), stored(2, 2, "ftp.grabby.test", &grabby, &sealer)];
        let hostnames = owners(&[(1, &["ftp.victim.test", "files.victim.test"]), (2, &["ftp.grabby.test"])]);
        resolver.set_tenants(TenantCertificates::build(&materials, &hostnames, &sealer, Utc::now()));
        assert_eq!(served(&resolver, Some("ftp.victim.test")), victim.leaf);
        assert_eq!(served(&resolver, Some("files.victim.test")), default);
        assert_eq!(served(&resolver, Some("ftp.grabby.test")), grabby.leaf);
    }

    #[test]
    fn swapping_the_set_changes_what_new_handshakes_get() {
        let ca = TestCa::new("CA");
        let sealer = Sealer::new(&[1; 32]);
        let (resolver, default) = resolver(&ca);
        let first = ca.issue(&["ftp.acme.test"]);
        let renewal = ca.issue(&["ftp.acme.test"]);
        let hostnames = owners(&[(1, &["ftp.acme.test"])]);
        let one = [stored(1, 1, "ftp.acme.test", &first, &sealer)];
        resolver.set_tenants(TenantCertificates::build(&one, &hostnames, &sealer, Utc::now()));
        assert_eq!(served(&resolver, Some("ftp.acme.test")), first.leaf);

        // Both stored: the later upload wins, whatever order the directory returns them in.
        let both = [stored(1, 2, "ftp.acme.test", &renewal, &sealer), stored(1, 1, "ftp.acme.test", &first, &sealer)];
        resolver.set_tenants(TenantCertificates::build(&both, &hostnames, &sealer, Utc::now()));
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
        let good = stored(1, 1, "good.acme.test", &ca.issue(&["good.acme.test"]), &sealer);
        let other_key = stored(1, 2, "sealed.acme.test", &ca.issue(&["sealed.acme.test"]), &Sealer::new(&[2; 32]));
        let mut expired = stored(1, 3, "old.acme.test", &ca.issue(&["old.acme.test"]), &sealer);
        expired.info.not_after = Utc::now() - Duration::days(1);
        let mut early = stored(1, 4, "new.acme.test", &ca.issue(&["new.acme.test"]), &sealer);
        let starts = Utc::now() + Duration::days(1);
        early.info.not_before = starts;
        let unowned = stored(1, 5, "gone.acme.test", &ca.issue(&["gone.acme.test"]), &sealer);
        let hostnames = owners(&[(1, &["good.acme.test", "sealed.acme.test", "old.acme.test", "new.acme.test"])]);

        let all = [good.clone(), other_key, expired, early, unowned];
        let table = TenantCertificates::build(&all, &hostnames, &sealer, Utc::now());
        assert_eq!(table.len(), 1);
        assert!(table.lookup("good.acme.test").is_some());
        for name in ["sealed.acme.test", "old.acme.test", "new.acme.test", "gone.acme.test"] {
            assert!(table.lookup(name).is_none(), "{name}");
        }
        assert_eq!(table.next_change(), Some(starts), "reload when the early one becomes valid");
        let only_good = TenantCertificates::build(std::slice::from_ref(&good), &hostnames, &sealer, Utc::now());
        assert_eq!(only_good.next_change(), Some(good.info.not_after));
    }
}
