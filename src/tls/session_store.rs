//! Stateful TLS resumption: the instance's memory of the sessions it issued ([`SessionStore`]), who owns each
//! ([`SessionOwner`]), and the store as one control or data connection sees it (`ConnectionStore`, the
//! rustls `StoresServerSessions` that grants only the same user's sessions).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::server::StoresServerSessions;
use tokio::sync::watch;

use super::CLIENT_TICKETS;

/// Sessions older than this cannot be resumed.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Upper bound on remembered sessions; the oldest go first.
pub(super) const MAX_SESSIONS: usize = 100_000;

/// Who a TLS session belongs to. Shared between a control connection, its data connections and the
/// sessions they were issued; data connections can wait for it to change (see [`DataAcceptor`]).
///
/// [`DataAcceptor`]: super::DataAcceptor
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
    pub(super) client_tickets: AtomicUsize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Owner {
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

    pub(super) fn get(&self) -> Owner {
        *self.state.borrow()
    }

    /// True when both belong to the same logged-in user.
    pub(super) fn same_user(&self, other: &SessionOwner) -> bool {
        matches!(self.get(), Owner::User { .. }) && self.get() == other.get()
    }

    pub(super) fn refuse(&self) {
        self.state.send_replace(Owner::Refused);
    }

    /// A ticket was issued to this connection's client. Clients keep at most [`CLIENT_TICKETS`] per server.
    pub(super) fn ticket_issued(&self) {
        let _ = self
            .client_tickets
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| Some((held + 1).min(CLIENT_TICKETS)));
    }

    /// The client presented a ticket it had never presented before.
    pub(super) fn ticket_spent(&self) {
        let _ = self.client_tickets.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| held.checked_sub(1));
    }

    /// Waits until this connection is logged in (or `limit` passes).
    pub(super) async fn logged_in(&self, limit: Duration) {
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
pub(super) enum Grant {
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
    pub(super) fn insert(&self, id: Vec<u8>, value: Vec<u8>, owner: Arc<SessionOwner>) {
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
    pub(super) fn lookup(&self, id: &[u8], requester: &SessionOwner) -> Grant {
        self.present(id, requester).0
    }

    /// Looks `id` up for `requester` and marks it presented; the flag is true when a granted session had
    /// never been presented before.
    pub(super) fn present(&self, id: &[u8], requester: &SessionOwner) -> (Grant, bool) {
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
pub(super) enum Role {
    Control,
    Data,
}

/// The store as one connection sees it: what it issues is recorded under its owner, and it can only
/// resume sessions of the same user.
pub(super) struct ConnectionStore {
    pub(super) store: Arc<SessionStore>,
    pub(super) owner: Arc<SessionOwner>,
    pub(super) role: Role,
    /// Set when this connection's handshake resumed a session.
    pub(super) resumed: AtomicBool,
    /// The issuer of a [`Grant::Provisional`] session this connection resumed.
    pub(super) provisional: Mutex<Option<Arc<SessionOwner>>>,
    /// The owner of the sessions a data connection issues: rustls sends them before wharf has checked whose
    /// session the connection resumed, so they belong to nobody until [`DataAcceptor::confirm`] decides.
    /// Until then another connection presenting one waits for that decision (as for a control connection
    /// that is still logging in); after a refusal they never resume.
    ///
    /// [`DataAcceptor::confirm`]: super::DataAcceptor::confirm
    pub(super) issued_as: Arc<SessionOwner>,
    /// How many more TLS 1.3 tickets this connection may issue. rustls is told the most it may send; a data
    /// connection whose direction is not known yet issues none until [`DataAcceptor::direction_known`].
    ///
    /// [`DataAcceptor::direction_known`]: super::DataAcceptor::direction_known
    pub(super) ticket_budget: AtomicUsize,
    /// What a download sends, for a direction learnt late.
    pub(super) download_tickets: usize,
}

impl fmt::Debug for ConnectionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionStore").field("role", &self.role).finish_non_exhaustive()
    }
}

impl ConnectionStore {
    pub(super) fn resume(&self, key: &[u8]) -> Option<Vec<u8>> {
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
    ///
    /// [`DataAcceptor::confirm`]: super::DataAcceptor::confirm
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
