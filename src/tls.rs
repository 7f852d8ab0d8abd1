//! TLS for control and data connections: the certificate, the rustls configs and the session store that
//! binds data-channel resumption to a logged-in user.
//!
//! ```text
//! control handshake ──put(id)──▶ SessionStore { id → (session, owner of that control connection) }
//!                                        │  owner becomes (tenant, user) at login
//! data handshake ──get(id)──────────────┘  only if the data connection's owner is the same user
//! ```
//!
//! Resumption is stateful (no ticket keys): every session wharf issues is recorded with the
//! [`SessionOwner`] of the connection it was issued on, so a data connection can resume only a session
//! issued to the *same logged-in user* on this instance. Binding to the user rather than to one control
//! connection lets clients that share a session cache across parallel connections (rclone) work, while a
//! stranger who races for a passive port cannot present a session of someone else's.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rustls::server::{NoServerSessionStorage, StoresServerSessions};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, Resumption};

/// Sessions older than this cannot be resumed.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Upper bound on remembered sessions; the oldest go first.
const MAX_SESSIONS: usize = 100_000;

/// Who a TLS session belongs to. Shared between a control connection, its data connections and the
/// sessions they were issued.
#[derive(Debug, Default)]
pub struct SessionOwner(Mutex<Owner>);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Owner {
    /// Connected, not logged in yet.
    #[default]
    Anonymous,
    User {
        tenant_id: i64,
        user_id: i64,
    },
}

impl SessionOwner {
    pub fn new() -> Arc<SessionOwner> {
        Arc::new(SessionOwner::default())
    }

    pub fn set_user(&self, tenant_id: i64, user_id: i64) {
        *self.0.lock().unwrap() = Owner::User { tenant_id, user_id };
    }

    /// The connection logged out (REIN): until its next login, nothing issued to it can be resumed.
    pub fn log_out(&self) {
        *self.0.lock().unwrap() = Owner::Anonymous;
    }

    fn get(&self) -> Owner {
        *self.0.lock().unwrap()
    }

    /// True when both belong to the same logged-in user.
    fn same_user(&self, other: &SessionOwner) -> bool {
        matches!(self.get(), Owner::User { .. }) && self.get() == other.get()
    }
}

struct StoredSession {
    value: Vec<u8>,
    owner: Arc<SessionOwner>,
    issued: Instant,
}

/// The instance's memory of issued TLS sessions. A cache: losing it only costs clients a full handshake.
#[derive(Default)]
pub struct SessionStore {
    inner: Mutex<StoreInner>,
}

#[derive(Default)]
struct StoreInner {
    sessions: HashMap<Vec<u8>, StoredSession>,
    order: VecDeque<(Instant, Vec<u8>)>,
}

impl SessionStore {
    fn insert(&self, id: Vec<u8>, value: Vec<u8>, owner: Arc<SessionOwner>) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap();
        while let Some((issued, _)) = inner.order.front() {
            if inner.order.len() < MAX_SESSIONS && now.duration_since(*issued) < SESSION_LIFETIME {
                break;
            }
            let (_, old) = inner.order.pop_front().unwrap();
            inner.sessions.remove(&old);
        }
        inner.order.push_back((now, id.clone()));
        inner.sessions.insert(id, StoredSession { value, owner, issued: now });
    }

    fn lookup(&self, id: &[u8], requester: &SessionOwner) -> Option<Vec<u8>> {
        let inner = self.inner.lock().unwrap();
        let stored = inner.sessions.get(id)?;
        if stored.issued.elapsed() >= SESSION_LIFETIME {
            return None;
        }
        if !stored.owner.same_user(requester) {
            tracing::debug!("TLS session resumption refused: session belongs to another user or none");
            return None;
        }
        Some(stored.value.clone())
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The store as one connection sees it: what it issues is recorded under its owner, and it can only
/// resume sessions of the same user.
struct ConnectionStore {
    store: Arc<SessionStore>,
    owner: Arc<SessionOwner>,
}

impl fmt::Debug for ConnectionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionStore").finish_non_exhaustive()
    }
}

impl StoresServerSessions for ConnectionStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.store.insert(key, value, self.owner.clone());
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.store.lookup(key, &self.owner)
    }

    /// TLS 1.3 asks to *take* a ticket so it is used once; that protects 0-RTT data, which wharf never
    /// accepts. Clients such as Python's ssl module and GnuTLS present the control connection's one ticket
    /// for every data connection, so tickets stay reusable for their lifetime.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.store.lookup(key, &self.owner)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// Everything TLS the listeners and sessions need.
pub struct Tls {
    base: Arc<ServerConfig>,
    store: Arc<SessionStore>,
    resumption: Resumption,
}

impl Tls {
    pub fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        resumption: Resumption,
    ) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the TLS certificate and key do not match or are not supported")?;
        if resumption == Resumption::Disabled {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        Ok(Tls { base: Arc::new(config), store: Arc::new(SessionStore::default()), resumption })
    }

    pub fn resumption(&self) -> Resumption {
        self.resumption
    }

    pub fn session_store(&self) -> &Arc<SessionStore> {
        &self.store
    }

    /// An acceptor for one connection (control or data) of the session that `owner` describes.
    pub fn acceptor(&self, owner: &Arc<SessionOwner>) -> TlsAcceptor {
        if self.resumption == Resumption::Disabled {
            return TlsAcceptor::from(self.base.clone());
        }
        let mut config = (*self.base).clone();
        config.session_storage = Arc::new(ConnectionStore { store: self.store.clone(), owner: owner.clone() });
        TlsAcceptor::from(Arc::new(config))
    }
}

/// Loads the configured certificate, or the self-signed one under `<data_dir>/tls`, making it on first
/// start.
pub fn load_identity(config: &Config) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let (cert_path, key_path) = match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => {
            let dir = config.data_dir.join("tls");
            let cert = dir.join("cert.pem");
            let key = dir.join("key.pem");
            if !cert.exists() || !key.exists() {
                generate_self_signed(&dir, &cert, &key)?;
            }
            (cert, key)
        }
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", cert_path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading the private key from {}", key_path.display()))?;
    Ok((certs, key))
}

fn generate_self_signed(dir: &Path, cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate")?;
    write_private(key_path, certified.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, certified.cert.pem()).with_context(|| format!("writing {}", cert_path.display()))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed certificate");
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_resume_only_for_the_same_user() {
        let store = Arc::new(SessionStore::default());
        let alice_control = SessionOwner::new();
        let alice_data = SessionOwner::new();
        let bob_data = SessionOwner::new();
        store.insert(b"id".to_vec(), b"secret".to_vec(), alice_control.clone());

        // Before login nobody matches, not even the same connection.
        assert_eq!(store.lookup(b"id", &alice_control), None);

        alice_control.set_user(1, 10);
        alice_data.set_user(1, 10);
        bob_data.set_user(1, 11);
        assert_eq!(store.lookup(b"id", &alice_data).as_deref(), Some(&b"secret"[..]));
        assert_eq!(store.lookup(b"id", &bob_data), None);
        assert_eq!(store.lookup(b"other", &alice_data), None);

        // Same user id in another tenant is another user.
        let other_tenant = SessionOwner::new();
        other_tenant.set_user(2, 10);
        assert_eq!(store.lookup(b"id", &other_tenant), None);

        alice_control.log_out();
        assert_eq!(store.lookup(b"id", &alice_data), None);
    }

    #[test]
    fn store_is_bounded() {
        let store = SessionStore::default();
        let owner = SessionOwner::new();
        for i in 0..(MAX_SESSIONS + 10) {
            store.insert(i.to_le_bytes().to_vec(), vec![0], owner.clone());
        }
        assert!(store.len() <= MAX_SESSIONS);
    }

    #[test]
    fn self_signed_identity_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        let (certs, _) = load_identity(&config).unwrap();
        let (again, _) = load_identity(&config).unwrap();
        assert_eq!(certs, again);
        let mode = std::fs::metadata(dir.path().join("tls/key.pem")).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }
}
