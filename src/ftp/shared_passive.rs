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

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::proxy::Trust;
use crate::config::PortRange;

type Key = (IpAddr, u16);

pub struct SharedPassive {
    ports: Vec<u16>,
    /// How long a claim holds its pair without a connection (`ftp.data_connect_timeout_secs`).
    claim_for: Duration,
    waiting: Mutex<HashMap<Key, Waiter>>,
    /// Signalled whenever a pair comes free.
    freed: Notify,
    next_port: AtomicUsize,
    next_id: AtomicU64,
}

struct Waiter {
    id: u64,
    deliver: oneshot::Sender<TcpStream>,
    since: tokio::time::Instant,
}

/// A session's claim on one (client address, port) pair; dropping it gives the pair back.
pub struct Ticket {
    pool: Arc<SharedPassive>,
    key: Key,
    id: u64,
    arrival: Option<oneshot::Receiver<TcpStream>>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("client", &self.key.0).field("port", &self.key.1).finish()
    }
}

impl SharedPassive {
    /// Binds every port of `range` on `ip`; a claim lapses after `claim_for` without a connection.
    pub fn bind(
        ip: IpAddr,
        range: PortRange,
        claim_for: Duration,
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
            if let Some(ticket) = self.try_reserve(client) {
                return Some(ticket);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return None;
            }
        }
    }

    fn try_reserve(self: &Arc<Self>, client: IpAddr) -> Option<Ticket> {
        let mut waiting = self.waiting.lock().expect("not poisoned");
        let now = tokio::time::Instant::now();
        let start = self.next_port.fetch_add(1, Ordering::Relaxed);
        // A lapsed claim's pair is free: its session gets no connection (425 at its transfer, if any).
        let port = (0..self.ports.len())
            .map(|i| self.ports[(start + i) % self.ports.len()])
            .find(|port| waiting.get(&(client, *port)).is_none_or(|w| now.duration_since(w.since) >= self.claim_for))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (deliver, arrival) = oneshot::channel();
        waiting.insert((client, port), Waiter { id, deliver, since: now });
        Some(Ticket { pool: self.clone(), key: (client, port), id, arrival: Some(arrival) })
    }

    /// Accepts on one of the pool's listeners until `shutdown`, handing each connection to the session
    /// waiting for it. `proxy`: passive connections relayed by a load balancer.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, proxy: Option<Arc<Trust>>, shutdown: CancellationToken) {
        let Ok(port) = listener.local_addr().map(|a| a.port()) else { return };
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (mut stream, from) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(port, error = %e, "accept on a shared passive port failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match &proxy {
                None => self.hand_over(stream, from, port),
                Some(trust) => {
                    // Waiting for a balancer's header must not hold up the port's other connections.
                    let (pool, trust) = (self.clone(), trust.clone());
                    tokio::spawn(async move {
                        match trust.client_of(&mut stream, from).await {
                            Ok(client) => pool.hand_over(stream, client, port),
                            Err(e) => tracing::warn!(%from, error = %e, "passive connection closed: bad PROXY header"),
                        }
                    });
                }
            }
        }
    }

    fn hand_over(&self, stream: TcpStream, from: SocketAddr, port: u16) {
        let waiter = self.waiting.lock().expect("not poisoned").remove(&(from.ip().to_canonical(), port));
        match waiter {
            Some(waiter) => {
                // A session that gave up meanwhile drops the connection with its receiver.
                let _ = waiter.deliver.send(stream);
                self.freed.notify_waiters();
            }
            None => tracing::warn!(%from, port, "closed a passive connection that no session was waiting for"),
        }
    }

    /// Pairs claimed and not yet connected.
    pub fn waiting(&self) -> usize {
        self.waiting.lock().expect("not poisoned").len()
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
            self.pool.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(ports: u16) -> (Arc<SharedPassive>, Vec<TcpListener>) {
        pool_with(ports, Duration::from_secs(30))
    }

    fn pool_with(ports: u16, claim_for: Duration) -> (Arc<SharedPassive>, Vec<TcpListener>) {
        // Any free ports: bind one by one at port 0 is not a range, so find a free range by trying.
        for base in (20000..60000).step_by(97) {
            if let Ok(bound) = SharedPassive::bind(
                "127.0.0.1".parse().unwrap(),
                PortRange { start: base, end: base + ports - 1 },
                claim_for,
            ) {
                return bound;
            }
        }
        panic!("no free port range");
    }

    #[tokio::test]
    async fn one_client_gets_each_port_once_then_waits_for_one_to_come_free() {
        let (pool, _listeners) = pool(2);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = pool.reserve(ip, Duration::ZERO).await.unwrap();
        let b = pool.reserve(ip, Duration::ZERO).await.unwrap();
        assert_ne!(a.port(), b.port());
        assert!(pool.reserve(ip, Duration::from_millis(50)).await.is_none(), "both pairs taken");
        // Another client has the whole pool to itself.
        let other = pool.reserve("127.0.0.2".parse().unwrap(), Duration::ZERO).await.unwrap();
        let waiting = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.reserve(ip, Duration::from_secs(5)).await.map(|t| t.port()) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let freed = a.port();
        drop(a);
        assert_eq!(waiting.await.unwrap(), Some(freed), "the freed port went to the waiting claim");
        drop((b, other));
    }

    #[tokio::test]
    async fn a_claim_without_a_connection_lapses_after_the_data_connection_timeout() {
        let (pool, _listeners) = pool_with(1, Duration::from_millis(300));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let idle = pool.reserve(ip, Duration::ZERO).await.unwrap();
        assert!(pool.reserve(ip, Duration::from_millis(50)).await.is_none(), "held for now");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let next = pool.reserve(ip, Duration::ZERO).await.expect("the idle claim lapsed");
        assert_eq!(next.port(), idle.port());
        // The lapsed ticket gets nothing, and dropping it leaves the new claim alone.
        assert!(idle.arrival().await.is_none());
        assert_eq!(pool.waiting(), 1);
    }

    #[tokio::test]
    async fn a_connection_reaches_the_session_waiting_on_its_address_and_port_only() {
        let (pool, listeners) = pool(1);
        let shutdown = CancellationToken::new();
        for listener in listeners {
            tokio::spawn(pool.clone().serve(listener, None, shutdown.clone()));
        }
        let ticket = pool.reserve("127.0.0.2".parse().unwrap(), Duration::ZERO).await.unwrap();
        let port = ticket.port();
        // From another address: closed, and the claim still waits.
        let stranger = tokio::net::TcpSocket::new_v4().unwrap();
        stranger.bind("127.0.0.3:0".parse().unwrap()).unwrap();
        let _stranger = stranger.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.waiting(), 1);
        let client = tokio::net::TcpSocket::new_v4().unwrap();
        client.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let client = client.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
        let arrived = tokio::time::timeout(Duration::from_secs(5), ticket.arrival()).await.unwrap().unwrap();
        assert_eq!(arrived.peer_addr().unwrap(), client.local_addr().unwrap());
        assert_eq!(pool.waiting(), 0);
        shutdown.cancel();
    }
}
