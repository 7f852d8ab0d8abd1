//! A small fixed pool of passive ports shared by every session of the instance (`ftp.passive_mode =
//! "shared"`), so that thousands of sessions fit behind a handful of published ports (containers, load
//! balancers).
//!
//! ```text
//! EPSV ──reserve(client ip)──▶ port p, with (client ip, p) now waiting ──▶ 229 (|||p|)
//! connection to p from ip ──accept loop of p──▶ handed to the one session waiting on (ip, p)
//! ```
//!
//! An incoming connection is matched to its session by the client's address and the port it reached. At
//! most one session waits on each (address, port) pair, so the match is never ambiguous: a client with
//! more data connections pending at once than the pool has ports waits for a port to come free (the TLS
//! resumption check then still ties the connection to the logged-in user). A connection nobody waits for is
//! closed at once. A claim whose connection has not come within the data-connection timeout lapses, so a
//! client that sends EPSV and never connects cannot hold ports from others behind the same address.
//!
//! With a [`Relay`] (`ftp.passive_relay`), replicas behind one balancer share the pairs too: each claim is
//! also recorded in the directory, where no other replica can take the pair until it is given back or
//! lapses, and a connection that reaches a replica without a waiting session is forwarded to the replica
//! that claimed its pair:
//!
//! ```text
//! client ──EPSV──▶ replica A: claim (ip, p) locally, then in the directory ──▶ 229 (|||p|)
//! client ──TCP to p──▶ balancer ──▶ replica B: no local waiter; the directory says A
//!        B ──TCP to A's relay listener: PROXY v2 (ip, p) | the client's bytes, both ways──▶ A ──▶ session
//! ```
//!
//! The relay copies bytes and never looks into them: TLS runs end to end between the client and the
//! replica of its session, so the TLS resumption check holds as for a direct connection.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::proxy::{self, Header, Trust};
use crate::access::Network;
use crate::config::PortRange;
use crate::directory::{Directory, PassiveClaim};
use crate::telemetry::metrics::Metrics;

type Key = (IpAddr, u16);

/// How often a claim waiting for a pair held by another replica looks again (their releases send no
/// signal here).
const REMOTE_RETRY: Duration = Duration::from_millis(250);
/// How long a replica may take to accept a relayed connection, and to send the header of one.
const RELAY_TIMEOUT: Duration = Duration::from_secs(5);
/// The copy buffer of a relayed connection, each way.
const RELAY_BUFFER: usize = 64 << 10;
/// How often expired claims are deleted from the directory.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub struct SharedPassive {
    ports: Vec<u16>,
    /// How long a claim holds its pair without a connection (`ftp.data_connect_timeout_secs`).
    claim_for: Duration,
    waiting: Mutex<HashMap<Key, Waiter>>,
    /// Signalled whenever a pair comes free.
    freed: Notify,
    next_port: AtomicUsize,
    next_id: AtomicU64,
    relay: Option<Relay>,
    /// Connections being relayed to another replica; shutdown lets them finish like sessions.
    relays: TaskTracker,
}

/// Claims shared with the other replicas through the directory, and the address they relay to.
pub struct Relay {
    pub directory: Arc<dyn Directory>,
    /// This instance's name in the directory ([`crate::sessions::LiveSessions::instance`]).
    pub instance: String,
    /// Where the other replicas reach this one's relay listener.
    pub advertise: SocketAddr,
    /// The replicas' networks: relayed connections from anywhere else are refused.
    pub trusted: Vec<Network>,
    pub metrics: Arc<Metrics>,
}

struct Waiter {
    id: u64,
    deliver: oneshot::Sender<TcpStream>,
    since: tokio::time::Instant,
    /// Whether connections may be delivered: with a relay, only once the directory confirmed the claim
    /// (until then the pair may be another replica's, and so the connection).
    ready: bool,
}

/// A session's claim on one (client address, port) pair; dropping it gives the pair back.
pub struct Ticket {
    pool: Arc<SharedPassive>,
    key: Key,
    id: u64,
    arrival: Option<oneshot::Receiver<TcpStream>>,
    /// Recorded in the directory too (given back there on drop).
    shared: bool,
    /// Given up before anyone saw it: frees the pair without waking claims waiting for one.
    quiet: bool,
}

impl Waiter {
    /// Whether the claim has waited out `claim_for` without its connection.
    fn lapsed(&self, claim_for: Duration) -> bool {
        self.since.elapsed() >= claim_for
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("client", &self.key.0).field("port", &self.key.1).finish()
    }
}

impl SharedPassive {
    /// Binds every port of `range` on `ip`; a claim lapses after `claim_for` without a connection. With
    /// `relay`, claims are shared with the other replicas (and [`SharedPassive::serve_relay`] must run).
    pub fn bind(
        ip: IpAddr,
        range: PortRange,
        claim_for: Duration,
        relay: Option<Relay>,
    ) -> io::Result<(Arc<SharedPassive>, Vec<TcpListener>)> {
        let mut listeners = Vec::new();
        for port in range.start..=range.end {
            let listener = super::data::listen_on(SocketAddr::new(ip, port), 1024)
                .map_err(|e| io::Error::new(e.kind(), format!("shared passive port {port}: {e}")))?;
            listeners.push(listener);
        }
        let pool = SharedPassive {
            ports: (range.start..=range.end).collect(),
            claim_for,
            waiting: Mutex::new(HashMap::new()),
            freed: Notify::new(),
            next_port: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            relay,
            relays: TaskTracker::new(),
        };
        Ok((Arc::new(pool), listeners))
    }

    /// Claims a port for the next data connection from `client`, waiting up to `patience` for one to come
    /// free; `None` when none did.
    pub async fn reserve(self: &Arc<Self>, client: IpAddr, patience: Duration) -> Option<Ticket> {
        let client = client.to_canonical();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before trying, so that a pair freed in between is not missed.
            let freed = self.freed.notified();
            let start = self.next_port.fetch_add(1, Ordering::Relaxed);
            for i in 0..self.ports.len() {
                let port = self.ports[(start + i) % self.ports.len()];
                let Some(mut ticket) = self.try_reserve(client, port) else { continue };
                let Some(relay) = &self.relay else { return Some(ticket) };
                match relay.claim(&ticket, self.claim_for).await {
                    Ok(true) => {
                        ticket.shared = true;
                        self.ready(&ticket);
                        return Some(ticket);
                    }
                    // Another replica holds the pair.
                    Ok(false) => ticket.quiet = true,
                    Err(e) => {
                        // A connection that reaches this replica still finds the session.
                        tracing::warn!(%client, port, error = %e, "passive claim kept on this replica only");
                        self.ready(&ticket);
                        return Some(ticket);
                    }
                }
            }
            let wake = match self.relay {
                Some(_) => deadline.min(tokio::time::Instant::now() + REMOTE_RETRY),
                None => deadline,
            };
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// The pair `(client, port)` for a new ticket, unless a session of this instance holds it.
    fn try_reserve(self: &Arc<Self>, client: IpAddr, port: u16) -> Option<Ticket> {
        let mut waiting = self.waiting.lock().expect("not poisoned");
        // A lapsed claim's pair is free: its session gets no connection (425 at its transfer, if any).
        if waiting.get(&(client, port)).is_some_and(|w| !w.lapsed(self.claim_for)) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (deliver, arrival) = oneshot::channel();
        let since = tokio::time::Instant::now();
        waiting.insert((client, port), Waiter { id, deliver, since, ready: self.relay.is_none() });
        Some(Ticket {
            pool: self.clone(),
            key: (client, port),
            id,
            arrival: Some(arrival),
            shared: false,
            quiet: false,
        })
    }

    /// Lets connections reach `ticket`'s session.
    fn ready(&self, ticket: &Ticket) {
        if let Some(w) = self.waiting.lock().expect("not poisoned").get_mut(&ticket.key).filter(|w| w.id == ticket.id) {
            w.ready = true;
        }
    }

    /// Accepts on one of the pool's listeners until `shutdown`, handing each connection to the session
    /// waiting for it (or relaying it to the replica whose session waits). `proxy`: passive connections
    /// relayed by a load balancer.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, proxy: Option<Arc<Trust>>, shutdown: CancellationToken) {
        let Ok(port) = listener.local_addr().map(|a| a.port()) else { return };
        while let Some((mut stream, from)) = accept(&listener, &shutdown).await {
            match &proxy {
                None => {
                    self.hand_over(stream, from, port, true);
                }
                Some(trust) => {
                    // Waiting for a balancer's header must not hold up the port's other connections.
                    let (pool, trust) = (self.clone(), trust.clone());
                    tokio::spawn(async move {
                        match trust.client_of(&mut stream, from).await {
                            Ok(client) => {
                                pool.hand_over(stream, client, port, true);
                            }
                            Err(e) => tracing::warn!(%from, error = %e, "passive connection closed: bad PROXY header"),
                        }
                    });
                }
            }
        }
    }

    /// Accepts connections relayed by the other replicas until `shutdown`: from a trusted peer, each
    /// begins with a PROXY v2 header naming the client and the pool port it reached, and goes to the
    /// session of this replica waiting on that pair (never onward again).
    pub async fn serve_relay(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let Some(relay) = &self.relay else { return };
        while let Some((mut stream, from)) = accept(&listener, &shutdown).await {
            if !relay.trusted.iter().any(|n| n.contains(from.ip())) {
                tracing::warn!(%from, "refused a relayed passive connection from an untrusted peer");
                relay.metrics.passive_relay("in", "refused");
                continue;
            }
            let (pool, metrics) = (self.clone(), relay.metrics.clone());
            tokio::spawn(async move {
                let result = match proxy::read_header(&mut stream, RELAY_TIMEOUT).await {
                    Ok(Header::Proxied { source, destination }) if pool.ports.contains(&destination.port()) => {
                        match pool.hand_over(stream, source, destination.port(), false) {
                            true => "relayed",
                            false => "no_claim",
                        }
                    }
                    Ok(header) => {
                        tracing::warn!(%from, ?header, "refused a relayed passive connection for no pool pair");
                        "refused"
                    }
                    Err(e) => {
                        tracing::warn!(%from, error = %e, "refused a relayed passive connection: bad PROXY header");
                        "refused"
                    }
                };
                metrics.passive_relay("in", result);
            });
        }
    }

    /// Deletes claims in the directory that lapsed a while ago, every minute until `shutdown` (a replica
    /// that died leaves its claims behind; any replica's sweep removes them).
    pub async fn sweep_claims(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(relay) = &self.relay else { return };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            let before = Utc::now() - SWEEP_EVERY;
            if let Err(e) = relay.directory.forget_passive_claims(before).await {
                tracing::warn!(error = %e, "deleting lapsed passive claims failed");
            }
        }
    }

    /// Connections still being relayed to other replicas; call after the listeners stopped.
    pub async fn relays_done(&self) {
        self.relays.close();
        self.relays.wait().await;
    }

    /// To the session waiting on the pair, else (`may_relay`) to the replica whose session does.
    /// `false` when the connection was closed instead.
    fn hand_over(self: &Arc<Self>, stream: TcpStream, from: SocketAddr, port: u16, may_relay: bool) -> bool {
        let client = from.ip().to_canonical();
        let waiter = {
            let mut waiting = self.waiting.lock().expect("not poisoned");
            // Shared with other replicas, the pair of a lapsed claim, or of one the directory has not
            // confirmed yet, may be another replica's: the connection is for that replica's session.
            match waiting.get(&(client, port)) {
                Some(w) if self.relay.is_some() && (w.lapsed(self.claim_for) || !w.ready) => None,
                _ => waiting.remove(&(client, port)),
            }
        };
        match waiter {
            Some(waiter) => {
                // A session that gave up meanwhile drops the connection with its receiver.
                let _ = waiter.deliver.send(stream);
                self.freed.notify_waiters();
                true
            }
            None if may_relay && self.relay.is_some() => {
                self.relays.spawn(self.clone().forward(stream, SocketAddr::new(client, from.port()), port));
                true
            }
            None => {
                tracing::warn!(%from, port, "closed a passive connection that no session was waiting for");
                false
            }
        }
    }

    /// Relays a connection from `from` to pool port `port` to the replica that claimed the pair.
    async fn forward(self: Arc<Self>, stream: TcpStream, from: SocketAddr, port: u16) {
        let relay = self.relay.as_ref().expect("only with a relay");
        let (mut stream, mut onward) = match connect_to_claimant(relay, stream, from, port).await {
            Ok(both) => both,
            Err(result) => return relay.metrics.passive_relay("out", result),
        };
        relay.metrics.passive_relay("out", "relayed");
        match tokio::io::copy_bidirectional_with_sizes(&mut stream, &mut onward, RELAY_BUFFER, RELAY_BUFFER).await {
            Ok((up, down)) => tracing::debug!(%from, port, up, down, "relayed passive connection closed"),
            Err(e) => tracing::debug!(%from, port, error = %e, "relayed passive connection broke"),
        }
    }

    /// Pairs claimed and not yet connected.
    pub fn waiting(&self) -> usize {
        self.waiting.lock().expect("not poisoned").len()
    }
}

/// The next connection on `listener`, or `None` once `shutdown` fires. A failed accept (out of file
/// descriptors, say) is logged and retried after a pause rather than spinning.
async fn accept(listener: &TcpListener, shutdown: &CancellationToken) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(conn) => return Some(conn),
            Err(e) => {
                let at = listener.local_addr().ok();
                tracing::warn!(listener = ?at, error = %e, "accept on a shared passive or relay listener failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A connection to the replica whose session claimed the pair (`from`, `port`), the PROXY header sent; else
/// what went wrong, for the metrics.
async fn connect_to_claimant(
    relay: &Relay,
    stream: TcpStream,
    from: SocketAddr,
    port: u16,
) -> Result<(TcpStream, TcpStream), &'static str> {
    let claim = match relay.directory.passive_claim(from.ip(), port, Utc::now()).await {
        Ok(Some(claim)) if claim.instance != relay.instance => claim,
        Ok(_) => {
            tracing::warn!(%from, port, "closed a passive connection that no session was waiting for");
            return Err("no_claim");
        }
        Err(e) => {
            tracing::warn!(%from, port, error = %e, "closed a passive connection: its claim could not be looked up");
            return Err("failed");
        }
    };
    let destination = match stream.local_addr() {
        Ok(local) => SocketAddr::new(local.ip(), port),
        Err(_) => return Err("failed"),
    };
    let mut onward = match tokio::time::timeout(RELAY_TIMEOUT, relay.connect(claim.relay)).await {
        Ok(Ok(onward)) => onward,
        Ok(Err(e)) => {
            tracing::warn!(%from, port, replica = %claim.relay, error = %e, "relaying a passive connection failed");
            return Err("failed");
        }
        Err(_) => {
            tracing::warn!(%from, port, replica = %claim.relay, "relaying a passive connection timed out");
            return Err("failed");
        }
    };
    let _ = (stream.set_nodelay(true), onward.set_nodelay(true));
    if let Err(e) = onward.write_all(&proxy::v2_header(from, destination)).await {
        tracing::warn!(%from, port, replica = %claim.relay, error = %e, "relaying a passive connection failed");
        return Err("failed");
    }
    tracing::debug!(%from, port, replica = %claim.relay, "relaying a passive connection");
    Ok((stream, onward))
}

impl Relay {
    /// A connection to another replica's relay listener, from this replica's advertised address where it
    /// can (what that replica's `trusted` networks list), else from wherever the route says.
    async fn connect(&self, to: SocketAddr) -> io::Result<TcpStream> {
        let socket = match to {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        if self.advertise.is_ipv4() == to.is_ipv4() {
            // Not an address of this host (behind NAT): the kernel picks the source instead.
            let _ = socket.bind(SocketAddr::new(self.advertise.ip(), 0));
        }
        socket.connect(to).await
    }

    /// Records `ticket`'s pair in the directory; `false` when another replica holds it.
    async fn claim(&self, ticket: &Ticket, claim_for: Duration) -> Result<bool, crate::directory::DirectoryError> {
        let now = Utc::now();
        let claim = PassiveClaim {
            client: ticket.key.0,
            port: ticket.key.1,
            instance: self.instance.clone(),
            relay: self.advertise,
            ticket: ticket.id as i64,
            expires_at: now + claim_for,
        };
        self.directory.claim_passive(&claim, now).await
    }
}

impl Ticket {
    pub fn port(&self) -> u16 {
        self.key.1
    }

    /// The connection, once the client makes it.
    pub async fn arrival(mut self) -> Option<TcpStream> {
        let arrival = self.arrival.take().expect("awaited once");
        arrival.await.ok()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut waiting = self.pool.waiting.lock().expect("not poisoned");
        // Only this ticket's own claim: the pair may already serve a newer one.
        if waiting.get(&self.key).is_some_and(|w| w.id == self.id) {
            waiting.remove(&self.key);
            drop(waiting);
            if !self.quiet {
                self.pool.freed.notify_waiters();
            }
        } else {
            drop(waiting);
        }
        // Whether its connection came or not, the pair is free for every replica again.
        if let (true, Some(relay), Ok(runtime)) = (self.shared, &self.pool.relay, tokio::runtime::Handle::try_current())
        {
            let (directory, instance, (client, port), ticket) =
                (relay.directory.clone(), relay.instance.clone(), self.key, self.id as i64);
            runtime.spawn(async move {
                if let Err(e) = directory.release_passive(client, port, &instance, ticket).await {
                    tracing::debug!(%client, port, error = %e, "giving back a passive claim failed; it lapses instead");
                }
            });
        }
    }
}

#[cfg(test)]
#[path = "shared_passive_tests.rs"]
mod tests;
