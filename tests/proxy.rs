//! The PROXY protocol (issue 6): behind a load balancer, wharf sees the client the header names, for
//! allowed networks, the passive-connection check and the live-session listing; a balancer that sends no
//! valid header is closed; anyone else is served directly and never believed.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf::access::Networks;
use wharf::config::{Config, ProxyListener};

use crate::support::raw::Ftp;
use crate::support::{Wharf, PASSWORD};

fn behind_balancer(c: &mut Config, listeners: &[ProxyListener], trusted: &str) {
    let p = &mut c.ftp.proxy_protocol;
    p.listeners = listeners.to_vec();
    p.trusted = vec![trusted.parse().unwrap()];
    p.header_timeout_secs = 1;
    c.ftp.data_connect_timeout_secs = 2;
}

const ALL: &[ProxyListener] = &[ProxyListener::Explicit, ProxyListener::Implicit, ProxyListener::Passive];

/// A version 2 header for a TCP/IPv4 client `source`:`port` (destination 127.0.0.1:21).
fn v2(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend([0x21, 0x11, 0, 12]);
    h.extend(source);
    h.extend([127, 0, 0, 1]);
    h.extend(port.to_be_bytes());
    h.extend(21u16.to_be_bytes());
    h
}

/// AUTH TLS, PBSZ, PROT P and login on a connection made with `connect_proxied`.
async fn log_in(ftp: &mut Ftp, user: &str) -> u16 {
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("PBSZ 0").await.code, 200);
    assert_eq!(ftp.cmd("PROT P").await.code, 200);
    assert_eq!(ftp.cmd(&format!("USER {user}")).await.code, 331);
    ftp.cmd(&format!("PASS {PASSWORD}")).await.code
}

#[tokio::test]
async fn the_client_a_balancer_names_is_the_one_checked_and_listed() {
    let wharf = Wharf::start_with(|c| behind_balancer(c, ALL, "127.0.0.0/8")).await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    // Only the documentation network may log in: loopback itself is outside it.
    wharf.directory.set_tenant_networks(acme.id, &"203.0.113.0/24".parse::<Networks>().unwrap()).await.unwrap();

    let (mut ftp, greeting) =
        Ftp::connect_proxied(wharf.explicit, b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 21\r\n").await;
    assert_eq!(greeting.code, 220);
    assert_eq!(log_in(&mut ftp, "alice@acme").await, 230);
    let listed = wharf.directory.live_sessions(Some(acme.id), chrono::Utc::now() - chrono::TimeDelta::minutes(1)).await;
    assert_eq!(listed.unwrap()[0].client, "203.0.113.9:40000");
    assert_eq!(ftp.store("STOR", "in.txt", b"proxied").await.code, 425, "a data connection must bring a header too");

    // Data connections through the balancer carry the same client: accepted.
    let mut tcp = ftp.epsv().await;
    tcp.write_all(&v2([203, 0, 113, 9], 40001)).await.unwrap();
    assert_eq!(ftp.cmd("STOR in.txt").await.code, 150);
    let mut tls = ftp.secure(tcp).await.unwrap();
    tls.write_all(b"proxied").await.unwrap();
    tls.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest).await;
    assert_eq!(ftp.reply().await.code, 226);
    assert_eq!(wharf.read_file("in.txt").await, b"proxied");

    // Another client's data connection, relayed by the same balancer, is refused.
    let mut tcp = ftp.epsv().await;
    tcp.write_all(&v2([198, 51, 100, 1], 40002)).await.unwrap();
    let reply = ftp.cmd("RETR in.txt").await;
    assert_eq!(reply.code, 425, "{reply:?}");

    // The same user through the balancer from a client outside the tenant's networks: 530.
    let (mut other, _) = Ftp::connect_proxied(wharf.explicit, b"PROXY TCP4 198.51.100.1 127.0.0.1 40003 21\r\n").await;
    assert_eq!(log_in(&mut other, "alice@acme").await, 530);
}

#[tokio::test]
async fn implicit_ftps_behind_a_balancer() {
    let wharf = Wharf::start_with(|c| behind_balancer(c, ALL, "127.0.0.0/8")).await;
    let mut tcp = tokio::net::TcpStream::connect(wharf.implicit).await.unwrap();
    tcp.write_all(&v2([203, 0, 113, 10], 5000)).await.unwrap();
    let tls = crate::support::raw::client_config();
    let connector = tokio_rustls::TlsConnector::from(tls);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.expect("TLS after the header");
    let mut greeting = [0u8; 4];
    stream.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"220 ");
}

#[tokio::test]
async fn a_trusted_peer_without_a_valid_header_is_closed() {
    let wharf = Wharf::start_with(|c| behind_balancer(c, ALL, "127.0.0.0/8")).await;
    for first in [&b""[..], b"USER alice@acme\r\n", b"PROXY TCP4 nonsense\r\n"] {
        let mut tcp = tokio::net::TcpStream::connect(wharf.explicit).await.unwrap();
        tcp.write_all(first).await.unwrap();
        let mut buf = [0u8; 64];
        let got = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.expect("closed in time");
        assert!(matches!(got, Ok(0) | Err(_)), "{first:?}: got {got:?}, no greeting expected");
    }
    // The server still serves well-behaved connections.
    let (_, greeting) = Ftp::connect_proxied(wharf.explicit, b"PROXY UNKNOWN\r\n").await;
    assert_eq!(greeting.code, 220);
}

#[tokio::test]
async fn peers_outside_the_trusted_networks_are_served_directly_and_never_believed() {
    let wharf = Wharf::start_with(|c| behind_balancer(c, ALL, "10.0.0.0/8")).await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    wharf.directory.set_tenant_networks(acme.id, &"203.0.113.0/24".parse::<Networks>().unwrap()).await.unwrap();
    // A client that claims to be 203.0.113.9 is read as sending a command, and is still 127.0.0.1.
    let (mut ftp, greeting) = Ftp::connect(wharf.explicit).await;
    assert_eq!(greeting.code, 220);
    let reply = ftp.cmd("PROXY TCP4 203.0.113.9 127.0.0.1 40000 21").await;
    assert!(matches!(reply.code, 500 | 502), "an unknown command: {reply:?}");
    assert_eq!(log_in(&mut ftp, "alice@acme").await, 530, "loopback is outside the tenant's networks");
    wharf.directory.set_tenant_networks(acme.id, &Networks::anywhere()).await.unwrap();
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.store("STOR", "direct.txt", b"direct").await.code, 226);
}
