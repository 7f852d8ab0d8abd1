//! The PROXY protocol (HAProxy's specification, versions 1 and 2): a load balancer in front of wharf
//! prefixes each TCP connection with the client's real address, so that bans, allowed networks, the
//! passive-connection check and logs see the client, not the balancer.
//!
//! ```text
//! balancer ──TCP──▶ "PROXY TCP4 203.0.113.7 192.0.2.1 51234 21\r\n" | FTP or TLS bytes …
//!                   └──────────── read_header, exactly ────────────┘
//! ```
//!
//! The header is read byte-exact, never ahead, because what follows it belongs to the FTP session (or the
//! TLS handshake on the implicit port and on data connections).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use crate::access::Network;
use crate::config::{ProxyListener, ProxyProtocolConfig};

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CRLF included (the specification's bound).
const V1_MAX: usize = 107;
/// More address data than any real balancer sends (TLVs included).
const V2_MAX_PAYLOAD: usize = 4096;

/// What a header said about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A proxied connection from `source` to `destination` (the address the client connected to).
    Proxied { source: SocketAddr, destination: SocketAddr },
    /// The balancer's own connection (a health check, `LOCAL`) or an address family it cannot tell
    /// (`UNKNOWN`, `AF_UNIX`): the TCP peer's address stands.
    Local,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    #[error("PROXY protocol header not received in time")]
    TimedOut,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Which peers of one listener announce their clients with a header. Whether the listener expects headers
/// at all is fixed when it is bound; the balancers and the timeout follow a reload ([`Trust::update`]).
#[derive(Debug)]
pub struct Trust {
    settings: ArcSwap<Settings>,
}

#[derive(Debug)]
struct Settings {
    balancers: Vec<Network>,
    timeout: Duration,
}

impl Settings {
    fn of(config: &ProxyProtocolConfig) -> Settings {
        Settings { balancers: config.trusted.clone(), timeout: Duration::from_secs(config.header_timeout_secs) }
    }
}

impl Trust {
    /// The trust of `listener`, or `None` when it expects no headers.
    pub fn for_listener(config: &ProxyProtocolConfig, listener: ProxyListener) -> Option<Trust> {
        config.listeners.contains(&listener).then(|| Trust { settings: ArcSwap::from_pointee(Settings::of(config)) })
    }

    /// Takes the balancers and the header timeout of a reloaded configuration; connections already reading
    /// their header keep the old ones.
    pub fn update(&self, config: &ProxyProtocolConfig) {
        self.settings.store(std::sync::Arc::new(Settings::of(config)));
    }

    /// The client behind a connection from `peer`: the header's source when `peer` is a trusted balancer
    /// (which must send one), else `peer` itself.
    pub async fn client_of(&self, stream: &mut TcpStream, peer: SocketAddr) -> Result<SocketAddr, ProxyError> {
        let settings = self.settings.load_full();
        if !settings.balancers.iter().any(|n| n.contains(peer.ip())) {
            return Ok(peer);
        }
        match read_header(stream, settings.timeout).await? {
            Header::Proxied { source, .. } => Ok(source),
            Header::Local => Ok(peer),
        }
    }
}

/// Reads one header (version 1 or 2) from the start of `stream`, within `timeout`.
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S, timeout: Duration) -> Result<Header, ProxyError> {
    match tokio::time::timeout(timeout, read(stream)).await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::TimedOut),
    }
}

async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Header, ProxyError> {
    let mut start = [0u8; 5];
    stream.read_exact(&mut start).await?;
    if &start == b"PROXY" {
        let mut line = start.to_vec();
        while !line.ends_with(b"\r\n") {
            if line.len() == V1_MAX {
                return Err(ProxyError::Malformed("version 1 header longer than 107 bytes"));
            }
            line.push(stream.read_u8().await?);
        }
        return parse_v1(&line);
    }
    if start != V2_SIGNATURE[..5] {
        return Err(ProxyError::Missing);
    }
    let mut fixed = [0u8; 11];
    stream.read_exact(&mut fixed).await?;
    if fixed[..7] != V2_SIGNATURE[5..] {
        return Err(ProxyError::Missing);
    }
    let len = usize::from(u16::from_be_bytes([fixed[9], fixed[10]]));
    if len > V2_MAX_PAYLOAD {
        return Err(ProxyError::Malformed("version 2 payload too long"));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    parse_v2(fixed[7], fixed[8], &payload)
}

/// A version 2 `PROXY` header for a TCP connection from `source` to `destination` (as wharf's replicas
/// relay passive connections to one another); mixed families are both written as IPv6.
pub fn v2_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.push(0x21);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            header.extend_from_slice(&[0x11, 0, 12]);
            header.extend_from_slice(&src.octets());
            header.extend_from_slice(&dst.octets());
        }
        (src, dst) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            header.extend_from_slice(&[0x21, 0, 36]);
            header.extend_from_slice(&v6(src).octets());
            header.extend_from_slice(&v6(dst).octets());
        }
    }
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    header
}

/// `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` or `PROXY UNKNOWN …\r\n`.
fn parse_v1(line: &[u8]) -> Result<Header, ProxyError> {
    let text = std::str::from_utf8(&line[..line.len() - 2]).map_err(|_| ProxyError::Malformed("not ASCII"))?;
    let fields: Vec<&str> = text.split(' ').collect();
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(Header::Local),
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = |s: &str| -> Result<IpAddr, ProxyError> {
                let ip = match *family {
                    "TCP4" => s.parse::<Ipv4Addr>().map(IpAddr::V4),
                    _ => s.parse::<Ipv6Addr>().map(IpAddr::V6),
                };
                ip.map_err(|_| ProxyError::Malformed("bad address"))
            };
            let port = |s: &str| -> Result<u16, ProxyError> {
                // No sign and no leading zeros, as the specification writes ports.
                let canonical =
                    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
                s.parse().ok().filter(|_| canonical).ok_or(ProxyError::Malformed("bad port"))
            };
            Ok(Header::Proxied {
                source: SocketAddr::new(ip(src)?, port(sport)?),
                destination: SocketAddr::new(ip(dst)?, port(dport)?),
            })
        }
        _ => Err(ProxyError::Malformed("version 1 header is not PROXY TCP4, TCP6 or UNKNOWN")),
    }
}

/// The binary header after its signature: version and command, family and protocol, then the addresses
/// (and TLVs, which wharf does not need and skips).
fn parse_v2(version_command: u8, family: u8, payload: &[u8]) -> Result<Header, ProxyError> {
    if version_command >> 4 != 2 {
        return Err(ProxyError::Malformed("version 2 header with another version"));
    }
    match version_command & 0x0f {
        0x0 => return Ok(Header::Local),
        0x1 => {}
        _ => return Err(ProxyError::Malformed("version 2 command is neither LOCAL nor PROXY")),
    }
    let short = || ProxyError::Malformed("version 2 addresses shorter than their family needs");
    match family {
        // TCP over IPv4, and over IPv6.
        0x11 => {
            let a: &[u8; 12] = payload.get(..12).and_then(|s| s.try_into().ok()).ok_or_else(short)?;
            let src = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let dst = Ipv4Addr::new(a[4], a[5], a[6], a[7]);
            Ok(Header::Proxied {
                source: SocketAddr::new(src.into(), u16::from_be_bytes([a[8], a[9]])),
                destination: SocketAddr::new(dst.into(), u16::from_be_bytes([a[10], a[11]])),
            })
        }
        0x21 => {
            let a: &[u8; 36] = payload.get(..36).and_then(|s| s.try_into().ok()).ok_or_else(short)?;
            let src: [u8; 16] = a[..16].try_into().expect("16 bytes");
            let dst: [u8; 16] = a[16..32].try_into().expect("16 bytes");
            Ok(Header::Proxied {
                source: SocketAddr::new(Ipv6Addr::from(src).into(), u16::from_be_bytes([a[32], a[33]])),
                destination: SocketAddr::new(Ipv6Addr::from(dst).into(), u16::from_be_bytes([a[34], a[35]])),
            })
        }
        // UNSPEC, UDP, AF_UNIX: nothing wharf can use; the connection's own address stands.
        _ => Ok(Header::Local),
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
