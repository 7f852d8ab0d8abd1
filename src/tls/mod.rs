//! TLS for control and data connections: the certificates, the rustls configs and the session store that
//! binds data-channel resumption to a logged-in user.
//!
//! ```text
//! admin upload ──certstore::prepare──▶ directory (chain, key sealed by Sealer)
//!                                          │ certificates_version() polled by CertificateWatcher
//!                                          ▼
//! every handshake ──SNI──▶ CertResolver { tenants' certificates by name, else the server's own }
//! ```
//!
//! Start-up: open the [`Sealer`] ([`Sealer::from_env_or_file`]), build [`Tls`], make a
//! [`CertificateWatcher`] over the directory and `tls.resolver()`, call its `refresh` once before
//! accepting, then spawn its `run` with the shutdown token. A tenant's certificate is served for that
//! tenant's own hostnames only.
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
//! stranger who races for a passive port cannot present a session of someone else's. Two refinements:
//! a session issued to a control connection that is still logging in is accepted provisionally and
//! counts once that connection becomes the same user; and a data connection's own new sessions are
//! recorded only once its resumption is confirmed as the same user's ([`DataAcceptor::confirm`]).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rustls::server::{NoServerSessionStorage, StoresServerSessions};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::Resumption;

pub mod certstore;
mod identity;
pub mod resolver;
pub mod sealer;
#[cfg(test)]
mod testcerts;
pub mod watcher;

pub use certstore::{prepare, CertificateRejection, PreparedCertificate, RejectedField};
pub use identity::load_identity;
pub use resolver::{CertResolver, TenantCertificates};
pub use sealer::{SealError, Sealer};
pub use watcher::{CertificateSource, CertificateWatcher, DEFAULT_POLL_INTERVAL};

/// Sessions older than this cannot be resumed.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Upper bound on remembered sessions; the oldest go first.
const MAX_SESSIONS: usize = 100_000;

/// Who a TLS session belongs to. Shared between a control connection, its data connections and the
/// sessions they were issued; data connections can wait for it to change (see [`DataAcceptor`]).
#[derive(Debug)]
pub struct SessionOwner {
    state: watch::Sender<Owner>,
    /// Sessions issued while not logged in: forgotten if the connection closes that way, so connections
    /// that never log in cannot crowd the users' sessions out of the store.
    anonymous_ids: Mutex<Vec<Vec<u8>>>,
    /// How many unused TLS 1.3 tickets the client of this control connection holds, as far as wharf can
    /// tell: tickets issued to it and its data connections, less the ones its data connections presented
    /// for the first time. A client that presents one ticket again and again (curl, Python, GnuTLS) keeps
    /// this high; one that uses each ticket once (rustls) drains it. See [`Tls::data_acceptor`].
    client_tickets: AtomicUsize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Owner {
    /// Connected, not logged in yet.
    #[default]
    Anonymous,
    User {
        tenant_id: i64,
        user_id: i64,
    },
    /// Sessions issued on a data connection whose resumption turned out not to be the user's.
    Refused,
}

impl SessionOwner {
    pub fn new() -> Arc<SessionOwner> {
        Arc::new(SessionOwner {
            state: watch::Sender::new(Owner::Anonymous),
            anonymous_ids: Mutex::default(),
            client_tickets: AtomicUsize::new(0),
        })
    }

    pub fn set_user(&self, tenant_id: i64, user_id: i64) {
        self.anonymous_ids.lock().unwrap().clear();
        self.state.send_replace(Owner::User { tenant_id, user_id });
    }

    /// The connection logged out (REIN): until its next login, nothing issued to it can be resumed.
    pub fn log_out(&self) {
        self.state.send_replace(Owner::Anonymous);
    }

    fn get(&self) -> Owner {
        *self.state.borrow()
    }

    /// True when both belong to the same logged-in user.
    fn same_user(&self, other: &SessionOwner) -> bool {
        matches!(self.get(), Owner::User { .. }) && self.get() == other.get()
    }

    fn refuse(&self) {
        self.state.send_replace(Owner::Refused);
    }

    /// A ticket was issued to this connection's client. Clients keep at most [`CLIENT_TICKETS`] per server.
    fn ticket_issued(&self) {
        let _ = self
            .client_tickets
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| Some((held + 1).min(CLIENT_TICKETS)));
    }

    /// The client presented a ticket it had never presented before.
    fn ticket_spent(&self) {
        let _ = self.client_tickets.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| held.checked_sub(1));
    }

    /// Waits until this connection is logged in (or `limit` passes).
    async fn logged_in(&self, limit: Duration) {
        let mut changes = self.state.subscribe();
        let _ = tokio::time::timeout(limit, changes.wait_for(|owner| *owner != Owner::Anonymous)).await;
    }
}

struct StoredSession {
    value: Vec<u8>,
    owner: Arc<SessionOwner>,
    issued: Instant,
    /// Presented by a client before: a client that presents it again reuses tickets.
    presented: bool,
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

/// The answer to a resumption request.
enum Grant {
    /// The session belongs to the requester's user.
    Granted(Vec<u8>),
    /// The session was issued to a control connection that has not logged in yet: rclone opens several
    /// control connections that share one session cache, and a data connection of one may present a
    /// session of another that is still between AUTH TLS and PASS. Whether that becomes the same user
    /// is checked after the handshake.
    Provisional(Vec<u8>, Arc<SessionOwner>),
    Refused,
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
        if owner.get() == Owner::Anonymous {
            owner.anonymous_ids.lock().unwrap().push(id.clone());
        }
        inner.sessions.insert(id, StoredSession { value, owner, issued: now, presented: false });
    }

    /// Drops what was issued to a connection that is closing without having logged in.
    pub fn forget_anonymous(&self, owner: &SessionOwner) {
        if matches!(owner.get(), Owner::User { .. }) {
            return;
        }
        let ids = std::mem::take(&mut *owner.anonymous_ids.lock().unwrap());
        let mut inner = self.inner.lock().unwrap();
        for id in ids {
            inner.sessions.remove(&id);
        }
    }

    #[cfg(test)]
    fn lookup(&self, id: &[u8], requester: &SessionOwner) -> Grant {
        self.present(id, requester).0
    }

    /// Looks `id` up for `requester` and marks it presented; the flag is true when a granted session had
    /// never been presented before.
    fn present(&self, id: &[u8], requester: &SessionOwner) -> (Grant, bool) {
        let mut inner = self.inner.lock().unwrap();
        let Some(stored) = inner.sessions.get_mut(id) else {
            return (Grant::Refused, false);
        };
        if stored.issued.elapsed() >= SESSION_LIFETIME {
            return (Grant::Refused, false);
        }
        let grant = if stored.owner.same_user(requester) {
            Grant::Granted(stored.value.clone())
        } else if matches!(requester.get(), Owner::User { .. }) && stored.owner.get() == Owner::Anonymous {
            Grant::Provisional(stored.value.clone(), stored.owner.clone())
        } else {
            tracing::debug!("TLS session resumption refused: the session belongs to another user");
            return (Grant::Refused, false);
        };
        let first = !std::mem::replace(&mut stored.presented, true);
        (grant, first)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Control,
    Data,
}

/// The store as one connection sees it: what it issues is recorded under its owner, and it can only
/// resume sessions of the same user.
struct ConnectionStore {
    store: Arc<SessionStore>,
    owner: Arc<SessionOwner>,
    role: Role,
    /// Set when this connection's handshake resumed a session.
    resumed: AtomicBool,
    /// The issuer of a [`Grant::Provisional`] session this connection resumed.
    provisional: Mutex<Option<Arc<SessionOwner>>>,
    /// The owner of the sessions a data connection issues: rustls sends them before wharf has checked whose
    /// session the connection resumed, so they belong to nobody until [`DataAcceptor::confirm`] decides.
    /// Until then another connection presenting one waits for that decision (as for a control connection
    /// that is still logging in); after a refusal they never resume.
    issued_as: Arc<SessionOwner>,
    /// How many more TLS 1.3 tickets this connection may issue. rustls is told the most it may send; a data
    /// connection whose direction is not known yet issues none until [`DataAcceptor::direction_known`].
    ticket_budget: AtomicUsize,
    /// What a download sends, for a direction learnt late.
    download_tickets: usize,
}

impl fmt::Debug for ConnectionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionStore").field("role", &self.role).finish_non_exhaustive()
    }
}

impl ConnectionStore {
    fn resume(&self, key: &[u8]) -> Option<Vec<u8>> {
        let (grant, first) = self.store.present(key, &self.owner);
        let (value, provisional) = match grant {
            Grant::Granted(value) => (value, None),
            Grant::Provisional(value, issuer) if self.role == Role::Data => (value, Some(issuer)),
            Grant::Provisional(..) | Grant::Refused => return None,
        };
        if first {
            self.owner.ticket_spent();
        }
        *self.provisional.lock().unwrap() = provisional;
        self.resumed.store(true, Ordering::Release);
        Some(value)
    }
}

impl StoresServerSessions for ConnectionStore {
    /// A data connection issues sessions only once it has itself resumed one, and they count only when
    /// [`DataAcceptor::confirm`] finds that resumption was the same user's: a full or provisional handshake
    /// on a data connection proves nothing about who is on the other end.
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        if self.ticket_budget.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(1)).is_err() {
            return false;
        }
        match self.role {
            Role::Control => self.store.insert(key, value, self.owner.clone()),
            Role::Data if self.resumed.load(Ordering::Acquire) => self.store.insert(key, value, self.issued_as.clone()),
            Role::Data => return false,
        }
        self.owner.ticket_issued();
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.resume(key)
    }

    /// TLS 1.3 asks to *take* a ticket so it is used once; that protects 0-RTT data, which wharf never
    /// accepts. Clients such as curl, Python's ssl module and GnuTLS present the control connection's one
    /// ticket for every data connection, so tickets stay reusable for their lifetime.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.resume(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// What a data connection is for; it decides whether the connection may send TLS 1.3 tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirection {
    /// The client reads (RETR, listings): tickets sent after the handshake are read along with the data and
    /// replenish clients that use each ticket once (rustls).
    ToClient,
    /// The client only writes (STOR, APPE, STOU). Most clients never read tickets sent there, and a socket
    /// closed with unread data is reset, which throws away whatever the client's kernel had not sent yet:
    /// the end of the upload. So upload connections send no tickets, except to a client that uses each
    /// ticket once and is down to its last: without them its next data connection could not resume at all.
    FromClient,
}

/// The TLS acceptor of one data connection plus what it learns about the session it resumed.
pub struct DataAcceptor {
    pub acceptor: TlsAcceptor,
    binding: Option<Arc<ConnectionStore>>,
    /// `None` for a connection whose client starts its handshake before it names the transfer.
    direction: Option<DataDirection>,
}

/// How many TLS 1.3 tickets a data connection sends; see [`Tls::data_acceptor`].
fn data_tickets(owner: &SessionOwner, direction: DataDirection, download_tickets: usize) -> usize {
    match direction {
        DataDirection::ToClient => download_tickets,
        DataDirection::FromClient if owner.client_tickets.load(Ordering::Acquire) <= 1 => CLIENT_TICKETS,
        DataDirection::FromClient => 0,
    }
}

impl DataAcceptor {
    pub fn direction(&self) -> Option<DataDirection> {
        self.direction
    }

    /// For an acceptor from [`Tls::early_data_acceptor`]: the transfer command arrived, so the tickets this
    /// connection issues can be chosen. Must come before the handshake reads the client's Finished.
    pub fn direction_known(&self, direction: DataDirection) {
        if let Some(binding) = &self.binding {
            let tickets = data_tickets(&binding.owner, direction, binding.download_tickets);
            binding.ticket_budget.store(tickets, Ordering::Release);
        }
    }

    /// After a resumed handshake: true when the session belongs to this connection's user, and only then
    /// are the sessions this connection issued recorded. A session of a control connection that was still
    /// logging in is given up to `wait` to finish its login.
    pub async fn confirm(&self, wait: Duration) -> bool {
        let Some(binding) = &self.binding else {
            return false;
        };
        if !binding.resumed.load(Ordering::Acquire) {
            return false;
        }
        let issuer = binding.provisional.lock().unwrap().clone();
        let same_user = match issuer {
            None => binding.owner.get() != Owner::Anonymous,
            Some(issuer) => {
                issuer.logged_in(wait).await;
                issuer.same_user(&binding.owner)
            }
        };
        match (same_user, binding.owner.get()) {
            (true, Owner::User { tenant_id, user_id }) => binding.issued_as.set_user(tenant_id, user_id),
            _ => {
                binding.issued_as.refuse();
                binding.store.forget_anonymous(&binding.issued_as);
            }
        }
        same_user
    }
}

/// The most TLS 1.3 tickets a rustls client keeps per server.
const CLIENT_TICKETS: usize = 8;

/// TLS 1.3 tickets a control connection sends: all a rustls client keeps, so clients that use each ticket
/// once can open that many data connections before one of them has to send more.
const CONTROL_TICKETS: usize = CLIENT_TICKETS;

/// Everything TLS the listeners and sessions need.
pub struct Tls {
    base: Arc<ServerConfig>,
    store: Arc<SessionStore>,
    resumption: Resumption,
    resolver: Arc<CertResolver>,
}

impl Tls {
    /// TLS serving `certs` and `key` to every client, until tenants' certificates are given to
    /// [`Tls::resolver`].
    pub fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        resumption: Resumption,
    ) -> anyhow::Result<Tls> {
        Tls::with_resolver(Arc::new(CertResolver::new(certs, key)?), resumption)
    }

    /// TLS whose control and data acceptors all take their certificate from `resolver`.
    pub fn with_resolver(resolver: Arc<CertResolver>, resumption: Resumption) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        if resumption == Resumption::Disabled {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        Ok(Tls { base: Arc::new(config), store: Arc::new(SessionStore::default()), resumption, resolver })
    }

    /// The certificates served: the server's own and tenants' by SNI name, both replaceable live.
    pub fn resolver(&self) -> &Arc<CertResolver> {
        &self.resolver
    }

    /// Reads the server's own certificate again (the configured files, or the generated one) and serves it
    /// from the next handshake on; on error the one in use stays. Meant for SIGHUP.
    pub fn reload_identity(&self, config: &crate::config::Config) -> anyhow::Result<()> {
        let (certs, key) = load_identity(config)?;
        self.resolver.set_default(certs, key)
    }

    pub fn resumption(&self) -> Resumption {
        self.resumption
    }

    pub fn session_store(&self) -> &Arc<SessionStore> {
        &self.store
    }

    /// An acceptor for a control connection whose session `owner` describes.
    pub fn control_acceptor(&self, owner: &Arc<SessionOwner>) -> TlsAcceptor {
        match self.connection_config(owner, Role::Control, CONTROL_TICKETS) {
            Some((config, _)) => TlsAcceptor::from(config),
            None => TlsAcceptor::from(self.base.clone()),
        }
    }

    /// An acceptor for one data connection of the session that `owner` describes.
    ///
    /// Downloads and listings send the usual tickets. An upload sends none while its client seems to hold
    /// two or more unused ones (which is always the case for clients that reuse a ticket); when this
    /// connection is about to take the client's last, it refills the client's store. A rustls client that
    /// uploads file after file (suppaftp) would otherwise fail its ninth upload under `enforced`.
    pub fn data_acceptor(&self, owner: &Arc<SessionOwner>, direction: DataDirection) -> DataAcceptor {
        let tickets = data_tickets(owner, direction, self.base.send_tls13_tickets);
        self.data_acceptor_with(owner, tickets, tickets, Some(direction))
    }

    /// An acceptor for a data connection whose client starts its TLS handshake before it sends the transfer
    /// command (curl). It issues no tickets until [`DataAcceptor::direction_known`]; the caller holds back
    /// the client's Finished until then (rustls issues tickets when it reads that message).
    pub fn early_data_acceptor(&self, owner: &Arc<SessionOwner>) -> DataAcceptor {
        let most = CLIENT_TICKETS.max(self.base.send_tls13_tickets);
        self.data_acceptor_with(owner, most, 0, None)
    }

    fn data_acceptor_with(
        &self,
        owner: &Arc<SessionOwner>,
        most: usize,
        budget: usize,
        direction: Option<DataDirection>,
    ) -> DataAcceptor {
        match self.connection_config(owner, Role::Data, most) {
            Some((config, store)) => {
                store.ticket_budget.store(budget, Ordering::Release);
                DataAcceptor { acceptor: TlsAcceptor::from(config), binding: Some(store), direction }
            }
            None => DataAcceptor { acceptor: TlsAcceptor::from(self.base.clone()), binding: None, direction },
        }
    }

    fn connection_config(
        &self,
        owner: &Arc<SessionOwner>,
        role: Role,
        tickets: usize,
    ) -> Option<(Arc<ServerConfig>, Arc<ConnectionStore>)> {
        if self.resumption == Resumption::Disabled {
            return None;
        }
        let store = Arc::new(ConnectionStore {
            store: self.store.clone(),
            owner: owner.clone(),
            role,
            resumed: AtomicBool::new(false),
            provisional: Mutex::new(None),
            issued_as: SessionOwner::new(),
            ticket_budget: AtomicUsize::new(tickets),
            download_tickets: self.base.send_tls13_tickets,
        });
        let mut config = (*self.base).clone();
        config.session_storage = store.clone();
        config.send_tls13_tickets = tickets;
        Some((Arc::new(config), store))
    }
}

#[cfg(test)]
mod tests;
