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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rustls::server::NoServerSessionStorage;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::Resumption;

pub mod certstore;
mod identity;
pub mod resolver;
pub mod sealer;
mod session_store;
#[cfg(test)]
mod testcerts;
pub mod watcher;

pub use certstore::{prepare, CertificateRejection, PreparedCertificate, RejectedField};
pub use identity::load_identity;
pub use resolver::{CertResolver, TenantCertificates};
pub use sealer::{SealError, Sealer};
use session_store::{ConnectionStore, Owner, Role};
pub use session_store::{SessionOwner, SessionStore};
pub use watcher::{CertificateSource, CertificateWatcher, DEFAULT_POLL_INTERVAL};

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
