//! Data connections: RFC 959 §3.2 (PORT, PASV), RFC 2428 (EPRT, EPSV) and RFC 4217 §9-§10 (TLS on the
//! data channel, where wharf is the TLS server even when it connects out).
//!
//! Opening one has two steps so that clients which wait for the 150 reply before their TLS handshake
//! (curl does) work: [`DataPlan::open`] makes the TCP connection and checks who is on the other end; the
//! session sends 150; then [`secure`] runs the TLS handshake and enforces the resumption policy.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

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
#[derive(Debug)]
pub enum DataPlan {
    Passive(TcpListener),
    /// A claim on a port of the shared pool (`ftp.passive_mode = "shared"`).
    Shared(Ticket),
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

impl DataPlan {
    /// Makes the TCP connection. A passive connection from another address than `peer_ip` (when
    /// `same_ip`) is closed and logged, and the wait goes on for the real client until `timeout`, so a
    /// stranger can neither take the connection nor make the transfer fail.
    /// `proxy`: how to find the client behind a passive connection relayed by a load balancer.
    pub async fn open(
        self,
        peer_ip: IpAddr,
        same_ip: bool,
        timeout: Duration,
        proxy: Option<&Trust>,
    ) -> Result<TcpStream, DataError> {
        let stream = match self {
            DataPlan::Passive(listener) => {
                let deadline = Instant::now() + timeout;
                let mut refused = false;
                loop {
                    let accepted = tokio::time::timeout_at(deadline, listener.accept()).await;
                    let (mut stream, mut from) = match accepted {
                        Ok(result) => result?,
                        Err(_) if refused => {
                            return Err(DataError::Refused("it came from another address than the control connection"))
                        }
                        Err(_) => return Err(DataError::Timeout(timeout)),
                    };
                    if let Some(trust) = proxy {
                        from = match trust.client_of(&mut stream, from).await {
                            Ok(client) => client,
                            Err(e) => {
                                tracing::warn!(%from, error = %e, "refused passive data connection: bad PROXY header");
                                refused = true;
                                continue;
                            }
                        };
                    }
                    if same_ip && !same_address(from.ip(), peer_ip) {
                        tracing::warn!(%from, expected = %peer_ip, "refused passive data connection from a foreign address");
                        refused = true;
                        continue;
                    }
                    break stream;
                }
            }
            // Matched by the client's address already: a stranger's connection never reaches the ticket.
            DataPlan::Shared(ticket) => match tokio::time::timeout(timeout, ticket.arrival()).await {
                Ok(Some(stream)) => stream,
                Ok(None) => return Err(DataError::Refused("the shared passive port closed")),
                Err(_) => return Err(DataError::Timeout(timeout)),
            },
            DataPlan::Active(addr) => match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(result) => result?,
                Err(_) => return Err(DataError::Timeout(timeout)),
            },
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }
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
    let Some(tls) = tls else {
        return Ok(DataStream::Plain(tcp));
    };
    let buffered = BufReader::with_capacity(TLS_READ_BUFFER, tcp);
    let stream = match tokio::time::timeout(timeout, tls.acceptor.acceptor.accept(buffered)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(DataError::Handshake(e)),
        Err(_) => return Err(DataError::Timeout(timeout)),
    };
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

/// A data connection, plain (PROT C) or TLS (PROT P).
pub enum DataStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<BufReader<TcpStream>>>),
}

impl AsyncRead for DataStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            DataStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DataStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            DataStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_flush(cx),
            DataStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            DataStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            DataStream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            DataStream::Plain(s) => s.is_write_vectored(),
            DataStream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Formats the PASV reply's address: `h1,h2,h3,h4,p1,p2` (RFC 959 §4.1.2).
pub fn pasv_address(ip: std::net::Ipv4Addr, port: u16) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{a},{b},{c},{d},{},{}", port >> 8, port & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasv_address_splits_the_port() {
        assert_eq!(pasv_address([127, 0, 0, 1].into(), 50123), "127,0,0,1,195,203");
    }

    #[test]
    fn mapped_addresses_compare_equal() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(same_address(v4, mapped));
        assert!(!same_address(v4, "127.0.0.2".parse().unwrap()));
    }

    #[tokio::test]
    async fn passive_ports_stay_in_range_and_skip_taken_ones() {
        // A taken port whose successor is free (checked, then released).
        let (_probe, taken) = loop {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = probe.local_addr().unwrap().port();
            if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                break (probe, port);
            }
        };
        let ports = PassivePorts::new(PortRange { start: taken, end: taken.saturating_add(1) });
        let listener = ports.bind("127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(listener.local_addr().unwrap().port(), taken + 1);
        let ports = PassivePorts::new(PortRange { start: taken, end: taken });
        assert!(ports.bind("127.0.0.1".parse().unwrap()).is_err());
    }

    #[tokio::test]
    async fn passive_connection_from_a_foreign_address_is_refused_and_the_wait_goes_on() {
        let listener = PassivePorts::new(PortRange { start: 0, end: 0 }).bind("127.0.0.1".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let stranger = TcpSocket::new_v4().unwrap();
        stranger.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let _stranger = stranger.connect(addr).await.unwrap();
        let plan = DataPlan::Passive(listener);
        let err = plan.open("127.0.0.1".parse().unwrap(), true, Duration::from_millis(300), None).await.unwrap_err();
        assert!(matches!(err, DataError::Refused(_)), "{err:?}");
    }
}
