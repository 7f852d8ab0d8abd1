//! Data connections: RFC 959 §3.2 (PORT, PASV), RFC 2428 (EPRT, EPSV) and RFC 4217 §9-§10 (TLS on the
//! data channel, where wharf is the TLS server even when it connects out).
//!
//! Opening one has two steps: [`DataPlan::connect`] waits for the TCP connection and checks who is on the
//! other end; the session sends 150; then [`secure`] runs the TLS handshake and enforces the resumption
//! policy. Most clients start their handshake after the 150; a passive connection whose client starts it
//! earlier, right after connecting, gets its handshake answered at once (see [`Passive`]).
//!
//! The connection's byte stream, plain or TLS, is [`DataStream`] (in `stream.rs`).

mod stream;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::server::Acceptor;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;
use tracing::Instrument as _;

use self::stream::ReadGate;
pub use self::stream::{AckingSocket, DataStream};
use crate::config::{PortRange, Resumption};
use crate::ftp::proxy::Trust;
use crate::ftp::shared_passive::Ticket;
use crate::tls::DataAcceptor;

/// The configured passive port range, shared by all sessions of the instance.
pub struct PassivePorts {
    range: PortRange,
    next: AtomicU32,
}

impl PassivePorts {
    pub fn new(range: PortRange) -> Self {
        PassivePorts { range, next: AtomicU32::new(rand::random::<u32>()) }
    }

    /// Binds a listener on `ip` at a free port of the range, trying each port at most once.
    pub fn bind(&self, ip: IpAddr) -> io::Result<TcpListener> {
        if self.range.is_any() {
            return listen(SocketAddr::new(ip, 0));
        }
        let size = u32::from(self.range.end - self.range.start) + 1;
        let mut last_error = None;
        for _ in 0..size {
            let offset = self.next.fetch_add(1, Ordering::Relaxed) % size;
            let port = self.range.start + offset as u16;
            match listen(SocketAddr::new(ip, port)) {
                Ok(listener) => return Ok(listener),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free passive port")))
    }
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    listen_on(addr, 8)
}

pub(super) fn listen_on(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // Ports of recently finished transfers sit in TIME_WAIT; they are safe to reuse for a new listener.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// How the next data connection will be made.
pub enum DataPlan {
    /// A passive port was announced; its connection is awaited by a task of its own from then on.
    Passive(Passive),
    Active(SocketAddr),
}

/// Why no usable data connection came about. Mapped to replies in `ftp::error`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// 425
    #[error("no data connection within {0:?}")]
    Timeout(Duration),
    /// 425: every connection that arrived came from a foreign address.
    #[error("data connection refused: {0}")]
    Refused(&'static str),
    /// 425
    #[error("data connection failed: {0}")]
    Io(#[from] io::Error),
    /// 522
    #[error("TLS handshake on the data connection failed: {0}")]
    Handshake(io::Error),
    /// 522
    #[error("the data connection did not resume the TLS session of this user's control connection")]
    NotResumed,
}

/// Where a passive connection arrives.
pub enum PassiveSource {
    Listener(TcpListener),
    /// A claim on a port of the shared pool (`ftp.passive_mode = "shared"`). Matched by the client's
    /// address already: a stranger's connection never reaches the ticket.
    Shared(Ticket),
}

/// Who may make a passive connection and how its TLS is set up.
pub struct PassiveRules {
    /// The control connection's client address.
    pub peer_ip: IpAddr,
    pub same_ip: bool,
    /// How to find the client behind a connection relayed by a load balancer.
    pub proxy: Option<Arc<Trust>>,
    /// Under PROT P: the TLS of a data connection whose client starts its handshake before it sends the
    /// transfer command (an acceptor from `Tls::early_data_acceptor`).
    pub early_tls: Option<Box<dyn FnOnce() -> DataTls + Send>>,
    /// For the TLS handshake.
    pub timeout: Duration,
}

/// A passive data connection in the making. From the moment the port is announced, a task accepts the
/// connection (closing strangers' ones) and, when the client starts its TLS handshake before it sends the
/// transfer command, answers that handshake at once. curl does so and waits for the handshake before it
/// reads the replies to TYPE or SIZE, so a handshake left until the transfer command stalls every curl
/// transfer by up to a second. Dropping the plan stops the task and closes the port.
pub struct Passive {
    port: u16,
    accepted: Option<oneshot::Receiver<()>>,
    claim: Option<oneshot::Sender<Option<DataTls>>>,
    task: JoinHandle<Result<DataStream, DataError>>,
    /// Set when a connection from a foreign address was closed.
    refused: Arc<AtomicBool>,
}

impl Passive {
    /// Starts awaiting the connection at `source`.
    pub fn start(source: PassiveSource, rules: PassiveRules) -> Passive {
        let port = match &source {
            PassiveSource::Listener(listener) => listener.local_addr().map(|a| a.port()).unwrap_or(0),
            PassiveSource::Shared(ticket) => ticket.port(),
        };
        let refused = Arc::new(AtomicBool::new(false));
        let (accepted_tx, accepted) = oneshot::channel();
        let (claim, claimed) = oneshot::channel();
        let task = tokio::spawn(passive_task(source, rules, refused.clone(), accepted_tx, claimed).in_current_span());
        Passive { port, accepted: Some(accepted), claim: Some(claim), task, refused }
    }

    /// The announced port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Passive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn passive_task(
    source: PassiveSource,
    rules: PassiveRules,
    refused: Arc<AtomicBool>,
    accepted: oneshot::Sender<()>,
    mut claimed: oneshot::Receiver<Option<DataTls>>,
) -> Result<DataStream, DataError> {
    let tcp = match source {
        PassiveSource::Listener(listener) => loop {
            let (mut stream, mut from) = listener.accept().await?;
            if let Some(trust) = &rules.proxy {
                from = match trust.client_of(&mut stream, from).await {
                    Ok(client) => client,
                    Err(e) => {
                        tracing::warn!(%from, error = %e, "refused passive data connection: bad PROXY header");
                        refused.store(true, Ordering::Relaxed);
                        continue;
                    }
                };
            }
            if rules.same_ip && !same_address(from.ip(), rules.peer_ip) {
                tracing::warn!(%from, expected = %rules.peer_ip, "refused passive data connection from a foreign address");
                refused.store(true, Ordering::Relaxed);
                continue;
            }
            break stream;
        },
        PassiveSource::Shared(ticket) => match ticket.arrival().await {
            Some(stream) => stream,
            None => return Err(DataError::Refused("the shared passive port closed")),
        },
    };
    tcp.set_nodelay(true)?;
    let _ = accepted.send(());
    let mut first = [0u8; 1];
    let tls = match rules.early_tls {
        Some(early) => tokio::select! {
            biased;
            claim = &mut claimed => claim.map_err(|_| DataError::Refused("the transfer ended"))?,
            // The client speaks first: its ClientHello is here before the transfer command. A peek, not
            // readiness, which may be reported spuriously.
            peeked = tcp.peek(&mut first) => {
                peeked?;
                return secure_early(tcp, early(), claimed, rules.timeout).await;
            }
        },
        None => claimed.await.map_err(|_| DataError::Refused("the transfer ended"))?,
    };
    secure(tcp, tls, rules.timeout).await
}

/// The handshake of a data connection whose client started it before naming the transfer.
///
/// Under TLS 1.3 the client is done once it has sent its Finished, so wharf answers the ClientHello at
/// once and holds back reading that Finished until the transfer command tells the direction: rustls issues
/// the connection's session tickets as it reads the Finished, and only a download may send them (see
/// `DataDirection`). curl keeps one ticket and uses it once, so a download that sent none would leave its
/// next transfer on the same control connection without a session to resume. Under TLS 1.2 the client
/// waits for the server's Finished, so nothing is held back (and TLS 1.2 sends no tickets).
async fn secure_early(
    tcp: TcpStream,
    tls: DataTls,
    mut claimed: oneshot::Receiver<Option<DataTls>>,
    timeout: Duration,
) -> Result<DataStream, DataError> {
    let gate = Arc::new(ReadGate::default());
    let socket = AckingSocket { tcp, gate: Some(gate.clone()) };
    let buffered = BufReader::with_capacity(TLS_READ_BUFFER, socket);
    let start = handshake_step(timeout, LazyConfigAcceptor::new(Acceptor::default(), buffered)).await?;
    let config = tls.acceptor.acceptor.config().clone();
    let held = negotiates_tls13(&config, &start.client_hello());
    let mut handshake = start.into_stream(config);
    if held {
        gate.close();
        // As long as the command takes, like a connection that waits for it before its handshake; the
        // plan's owner drops this task if the session moves on.
        tokio::select! {
            done = &mut handshake => {
                let stream = done.map_err(DataError::Handshake)?;
                return resumption_checked(stream, tls, timeout).await;
            }
            claim = &mut claimed => {
                let claim = claim.map_err(|_| DataError::Refused("the transfer ended"))?;
                if let Some(direction) = claim.and_then(|c| c.acceptor.direction()) {
                    tls.acceptor.direction_known(direction);
                }
                gate.open();
            }
        }
    }
    let stream = handshake_step(timeout, handshake).await?;
    resumption_checked(stream, tls, timeout).await
}

/// One step of a data connection's TLS handshake, given `timeout`.
async fn handshake_step<T>(
    timeout: Duration,
    step: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, DataError> {
    match tokio::time::timeout(timeout, step).await {
        Ok(done) => done.map_err(DataError::Handshake),
        Err(_) => Err(DataError::Timeout(timeout)),
    }
}

/// True when `config` will settle on TLS 1.3 with this client: it offers a TLS 1.3 suite wharf has.
fn negotiates_tls13(config: &rustls::ServerConfig, hello: &rustls::server::ClientHello<'_>) -> bool {
    let offered = hello.cipher_suites();
    config
        .crypto_provider()
        .cipher_suites
        .iter()
        .any(|suite| suite.tls13().is_some() && offered.contains(&suite.suite()))
}

impl DataPlan {
    /// Waits up to `timeout` for the TCP connection, then secures it with `tls` (unless the client already
    /// had it secured, see [`Passive`]). `opened` is called once the TCP connection is there (the session
    /// answers 150 then: curl waits for that before its handshake on some transfers).
    pub async fn connect(
        self,
        tls: Option<DataTls>,
        timeout: Duration,
        opened: impl FnOnce(),
    ) -> Result<DataStream, DataError> {
        match self {
            DataPlan::Passive(mut passive) => {
                let accepted = passive.accepted.take().expect("taken once");
                match tokio::time::timeout(timeout, accepted).await {
                    Ok(Ok(())) => {}
                    // The task ended before any connection: its error says why.
                    Ok(Err(_)) => {
                        let ended = outcome(&mut passive.task).await.err();
                        return Err(ended.unwrap_or(DataError::Refused("the passive port closed")));
                    }
                    Err(_) if passive.refused.load(Ordering::Relaxed) => {
                        return Err(DataError::Refused("it came from another address than the control connection"))
                    }
                    Err(_) => return Err(DataError::Timeout(timeout)),
                }
                opened();
                // Ignored when the task secured the connection early.
                let _ = passive.claim.take().expect("claimed once").send(tls);
                outcome(&mut passive.task).await
            }
            DataPlan::Active(addr) => {
                let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                    Ok(result) => result?,
                    Err(_) => return Err(DataError::Timeout(timeout)),
                };
                tcp.set_nodelay(true)?;
                opened();
                secure(tcp, tls, timeout).await
            }
        }
    }
}

/// What the passive task ended with.
async fn outcome(task: &mut JoinHandle<Result<DataStream, DataError>>) -> Result<DataStream, DataError> {
    task.await.unwrap_or_else(|e| Err(DataError::Io(io::Error::other(e))))
}

/// Compares addresses, treating an IPv4-mapped IPv6 address as the IPv4 one.
pub fn same_address(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// TLS policy for one data connection.
pub struct DataTls {
    pub acceptor: DataAcceptor,
    pub resumption: Resumption,
}

/// Runs the TLS handshake (when PROT P) and enforces the resumption policy.
pub async fn secure(tcp: TcpStream, tls: Option<DataTls>, timeout: Duration) -> Result<DataStream, DataError> {
    let tcp = AckingSocket::new(tcp);
    let Some(tls) = tls else {
        return Ok(DataStream::Plain(tcp));
    };
    let buffered = BufReader::with_capacity(TLS_READ_BUFFER, tcp);
    let stream = handshake_step(timeout, tls.acceptor.acceptor.accept(buffered)).await?;
    resumption_checked(stream, tls, timeout).await
}

/// Enforces the resumption policy on a finished handshake.
async fn resumption_checked(
    stream: TlsStream<BufReader<AckingSocket>>,
    tls: DataTls,
    timeout: Duration,
) -> Result<DataStream, DataError> {
    let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let confirmed = resumed && tls.acceptor.confirm(timeout).await;
    if tls.resumption == Resumption::Enforced && !confirmed {
        return Err(DataError::NotResumed);
    }
    Ok(DataStream::Tls(Box::new(stream)))
}

/// Bytes read from the socket at once under TLS on a data connection. rustls itself reads at most 4 KiB
/// at a time; without this buffer an upload costs several `recv` calls per 16 KiB record.
const TLS_READ_BUFFER: usize = 128 * 1024;

/// Formats the PASV reply's address: `h1,h2,h3,h4,p1,p2` (RFC 959 §4.1.2).
pub fn pasv_address(ip: std::net::Ipv4Addr, port: u16) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{a},{b},{c},{d},{},{}", port >> 8, port & 0xff)
}

#[cfg(test)]
mod tests;
