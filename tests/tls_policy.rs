//! The TLS and data-channel policy (DESIGN decision 3): each default rule, the reply code it refuses
//! with, and the setting that relaxes it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, HandshakeKind, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use wharf::config::{PortRange, Resumption};
use wharf::directory::{TenantTlsPolicy, TlsVersion};

use crate::support::raw::{self, Ftp, Reply};
use crate::support::{bytes, Wharf, PASSWORD};

// ---------------------------------------------------------------------------------------------------
// Helpers

/// AUTH TLS, PBSZ 0, PROT P and login with the given client config for the control connection.
async fn login_with(server: SocketAddr, tls: Arc<ClientConfig>, user: &str) -> Ftp {
    let (mut ftp, greeting) = Ftp::connect_with(server, tls).await;
    assert_eq!(greeting.code, 220, "{greeting:?}");
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("PBSZ 0").await.code, 200);
    assert_eq!(ftp.cmd("PROT P").await.code, 200);
    assert_eq!(ftp.cmd(&format!("USER {user}")).await.code, 331);
    let reply = ftp.cmd(&format!("PASS {PASSWORD}")).await;
    assert_eq!(reply.code, 230, "{reply:?}");
    ftp
}

/// A client config restricted to `versions` that verifies the server against the certificate wharf
/// generated for itself (no "accept anything" verifier needed).
pub(crate) fn verifying_config(wharf: &Wharf, versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let cert_path = wharf.config.data_dir.join("tls/cert.pem");
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&cert_path).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

pub(crate) const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
pub(crate) const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// What one data transfer looked like from the client's side.
struct Transfer {
    opening: Reply,
    /// The data connection's TLS handshake as the client saw it, if it completed.
    handshake: Option<(HandshakeKind, ProtocolVersion)>,
    received: Vec<u8>,
    /// The reply that closed the command (absent when the opening was not 150).
    reply: Option<Reply>,
}

/// Runs `command` over EPSV with TLS on the data connection made from `data_tls` (which may differ
/// from the control connection's config). Sends `upload` when it is given. Never panics on a data
/// connection the server refuses, so refusals can be asserted.
async fn transfer_with(ftp: &mut Ftp, command: &str, data_tls: &Arc<ClientConfig>, upload: Option<&[u8]>) -> Transfer {
    let tcp = ftp.epsv().await;
    let opening = ftp.cmd(command).await;
    if opening.code != 150 {
        return Transfer { opening, handshake: None, received: Vec::new(), reply: None };
    }
    let mut handshake = None;
    let mut received = Vec::new();
    if let Ok(mut tls) = raw::connector(data_tls).connect(raw::server_name(), tcp).await {
        let state = tls.get_ref().1;
        handshake = state.handshake_kind().zip(state.protocol_version());
        if let Some(data) = upload {
            let _ = tls.write_all(data).await;
            let _ = tls.shutdown().await;
        }
        let _ = tls.read_to_end(&mut received).await;
    }
    let reply = Some(ftp.reply().await);
    Transfer { opening, handshake, received, reply }
}

fn code(reply: &Option<Reply>) -> u16 {
    reply.as_ref().map_or(0, |r| r.code)
}

fn port_of_epsv(reply: &Reply) -> u16 {
    assert_eq!(reply.code, 229, "{reply:?}");
    reply.text.split("|||").nth(1).and_then(|s| s.split('|').next()).unwrap().parse().unwrap()
}

fn port_of_pasv(reply: &Reply) -> (String, u16) {
    assert_eq!(reply.code, 227, "{reply:?}");
    let inner = reply.text.split('(').nth(1).and_then(|s| s.split(')').next()).unwrap();
    let parts: Vec<&str> = inner.split(',').collect();
    let port = parts[4].parse::<u16>().unwrap() * 256 + parts[5].parse::<u16>().unwrap();
    (parts[..4].join("."), port)
}

/// A TCP connection to `port` on loopback made from another source address, 127.0.0.2.
async fn connect_from_stranger(port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap()
}

/// Plain (PROT C) upload then download; both must succeed.
async fn clear_round_trip(ftp: &mut Ftp, name: &str, data: &[u8]) {
    let mut tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd(&format!("STOR {name}")).await.code, 150);
    tcp.write_all(data).await.unwrap();
    tcp.shutdown().await.unwrap();
    drop(tcp);
    let reply = ftp.reply().await;
    assert_eq!(reply.code, 226, "{reply:?}");

    let mut tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd(&format!("RETR {name}")).await.code, 150);
    let mut back = Vec::new();
    tcp.read_to_end(&mut back).await.unwrap();
    assert_eq!(ftp.reply().await.code, 226);
    assert_eq!(back, data);
}

/// A contiguous range of `len` ports that were free a moment ago.
fn free_port_range(len: u16) -> PortRange {
    loop {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let start = probe.local_addr().unwrap().port();
        drop(probe);
        let Some(end) = start.checked_add(len - 1) else { continue };
        let held: Result<Vec<_>, _> = (start..=end).map(|p| std::net::TcpListener::bind(("127.0.0.1", p))).collect();
        if held.is_ok() {
            return PortRange { start, end };
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// 1. No login before TLS

#[tokio::test]
async fn login_before_auth_tls_is_refused_with_530() {
    let wharf = Wharf::start().await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 530);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 530);
    assert_eq!(ftp.cmd("PWD").await.code, 530);
    // The connection is still usable: AUTH TLS then login works.
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
}

#[tokio::test]
async fn plain_login_and_clear_data_when_both_rules_are_relaxed() {
    let wharf = Wharf::start_with(|c| {
        c.tls.require_tls_for_login = false;
        c.tls.require_prot_p = false;
    })
    .await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
    clear_round_trip(&mut ftp, "plain.bin", &bytes(70_000, 11)).await;
}

#[tokio::test]
async fn plain_login_still_needs_prot_p_for_data_unless_relaxed_too() {
    let wharf = Wharf::start_with(|c| c.tls.require_tls_for_login = false).await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
    let _tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("STOR x.bin").await.code, 521);
    assert_eq!(wharf.files_on_disk("acme").await, Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------------
// 2. PROT P required

#[tokio::test]
async fn transfers_without_prot_p_get_521_and_prot_c_gets_534() {
    let wharf = Wharf::start().await;
    std::fs::create_dir_all(wharf.file("acme", "")).unwrap();
    std::fs::write(wharf.file("acme", "there.txt"), b"secret").unwrap();
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);

    // No PROT at all: every transfer is refused before any data moves, even with a data plan ready.
    for command in ["RETR there.txt", "STOR new.txt", "LIST", "NLST", "MLSD"] {
        let _tcp = ftp.epsv().await;
        let reply = ftp.cmd(command).await;
        assert_eq!(reply.code, 521, "{command}: {reply:?}");
    }
    // PROT C is refused by policy, and does not unlock clear transfers.
    assert_eq!(ftp.cmd("PBSZ 0").await.code, 200);
    assert_eq!(ftp.cmd("PROT C").await.code, 534);
    let _tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("RETR there.txt").await.code, 521);
    assert_eq!(wharf.files_on_disk("acme").await, vec!["there.txt"]);

    // PROT P then works.
    assert_eq!(ftp.cmd("PROT P").await.code, 200);
    let (data, reply) = ftp.retr("there.txt").await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(data, b"secret");
}

#[tokio::test]
async fn clear_data_over_a_tls_control_connection_when_relaxed() {
    let wharf = Wharf::start_with(|c| c.tls.require_prot_p = false).await;
    let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
    assert_eq!(ftp.cmd("PROT C").await.code, 200);
    clear_round_trip(&mut ftp, "clear.bin", &bytes(10_000, 12)).await;
}

// ---------------------------------------------------------------------------------------------------
// 3. Data connections must resume a session of the same user

#[tokio::test]
async fn data_connection_that_does_not_resume_gets_522_and_nothing_is_stored() {
    let wharf = Wharf::start().await;
    let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
    let fresh = raw::client_config_without_resumption();

    let up = transfer_with(&mut ftp, "STOR refused.bin", &fresh, Some(&bytes(50_000, 3))).await;
    assert_eq!(up.opening.code, 150, "{:?}", up.opening);
    assert_eq!(code(&up.reply), 522, "{:?}", up.reply);
    assert_eq!(wharf.files_on_disk("acme").await, Vec::<String>::new(), "no file, no temporary left behind");

    assert_eq!(ftp.store("STOR", "kept.bin", b"kept").await.code, 226);
    let down = transfer_with(&mut ftp, "RETR kept.bin", &fresh, None).await;
    assert_eq!(down.opening.code, 150);
    assert_eq!(code(&down.reply), 522, "{:?}", down.reply);
    assert!(down.received.is_empty(), "no data on a refused connection");
    assert_eq!(down.handshake.map(|h| h.0), Some(HandshakeKind::Full));

    let list = transfer_with(&mut ftp, "LIST", &fresh, None).await;
    assert_eq!(code(&list.reply), 522);
    assert!(list.received.is_empty());

    // The same session with its own (resuming) config still works.
    let (data, reply) = ftp.retr("kept.bin").await;
    assert_eq!((data.as_slice(), reply.code), (&b"kept"[..], 226));
}

/// Two control connections of one user sharing a session cache (rclone does this): the data connection
/// of one may resume the session issued to the other's control connection.
#[tokio::test]
async fn same_user_may_resume_a_session_issued_to_another_control_connection() {
    let wharf = Wharf::start().await;
    for versions in [TLS12, TLS13] {
        let shared = verifying_config(&wharf, versions);
        let _a = login_with(wharf.explicit, shared.clone(), "alice@acme").await;
        // B's control handshake uses its own cache, so `shared` holds only sessions issued to A.
        let mut b = login_with(wharf.explicit, verifying_config(&wharf, versions), "alice@acme").await;
        assert_eq!(b.store("STOR", "b.bin", b"from b").await.code, 226);

        let t = transfer_with(&mut b, "RETR b.bin", &shared, None).await;
        assert_eq!(code(&t.reply), 226, "{versions:?}: {:?}", t.reply);
        assert_eq!(t.received, b"from b");
        let (kind, version) = t.handshake.unwrap();
        assert_eq!(kind, HandshakeKind::Resumed, "{versions:?}");
        assert_eq!(version, versions[0].version);
    }
}

/// Another user who got hold of alice's session cache cannot resume her sessions: 522.
#[tokio::test]
async fn a_stranger_cannot_resume_another_users_session() {
    let wharf = Wharf::start().await;
    wharf.add_user("acme", "bob", PASSWORD).await;
    wharf.add_user("globex", "bob", PASSWORD).await;
    for versions in [TLS12, TLS13] {
        for stranger in ["bob@acme", "bob@globex"] {
            for (command, upload) in [("STOR stolen.bin", Some(&b"mine now"[..])), ("LIST", None)] {
                let alice_cache = verifying_config(&wharf, versions);
                let mut alice = login_with(wharf.explicit, alice_cache.clone(), "alice@acme").await;
                // Alice's cache holds resumable sessions (this transfer proves it) and only hers.
                let t = transfer_with(&mut alice, "NLST", &alice_cache, None).await;
                assert_eq!(code(&t.reply), 226, "{versions:?}");
                assert_eq!(t.handshake.map(|h| h.0), Some(HandshakeKind::Resumed));

                // Bob's control connection has its own cache; only his data connection uses alice's.
                let mut bob = login_with(wharf.explicit, verifying_config(&wharf, versions), stranger).await;
                let t = transfer_with(&mut bob, command, &alice_cache, upload).await;
                assert_eq!(t.opening.code, 150);
                assert_eq!(code(&t.reply), 522, "{versions:?} {stranger} {command}: {:?}", t.reply);
                assert_eq!(t.handshake.map(|h| h.0), Some(HandshakeKind::Full), "alice's session was not resumed");
                assert!(t.received.is_empty());
            }
        }
    }
    assert_eq!(wharf.files_on_disk("acme").await, Vec::<String>::new());
    assert_eq!(wharf.files_on_disk("globex").await, Vec::<String>::new());
}

/// Whoever races the client to its passive port (from the same address, e.g. behind the same NAT)
/// gets 522 on a full handshake. The session that handshake established must not be resumable either,
/// or the stranger wins the next race with it.
#[tokio::test]
async fn a_session_from_a_refused_data_connection_cannot_be_resumed() {
    let wharf = Wharf::start().await;
    for versions in [TLS12, TLS13] {
        let mut alice = login_with(wharf.explicit, verifying_config(&wharf, versions), "alice@acme").await;
        assert_eq!(alice.store("STOR", "private.txt", b"alice's secret").await.code, 226);
        let stranger_cache = verifying_config(&wharf, versions);
        for attempt in 1..=2 {
            // The stranger connects first; `transfer_with` connects the same way, with its own cache.
            let t = transfer_with(&mut alice, "RETR private.txt", &stranger_cache, None).await;
            assert_eq!(t.opening.code, 150);
            assert_eq!(code(&t.reply), 522, "{versions:?} attempt {attempt}: {:?} {:?}", t.handshake, t.reply);
            assert!(t.received.is_empty(), "{versions:?} attempt {attempt}: the stranger read alice's file");
        }
    }
}

#[tokio::test]
async fn resumption_enabled_accepts_a_full_handshake() {
    let wharf = Wharf::start_with(|c| c.tls.data_session_resumption = Resumption::Enabled).await;
    let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
    let fresh = raw::client_config_without_resumption();
    let data = bytes(40_000, 4);
    let t = transfer_with(&mut ftp, "STOR full.bin", &fresh, Some(&data)).await;
    assert_eq!(code(&t.reply), 226, "{:?}", t.reply);
    assert_eq!(t.handshake.map(|h| h.0), Some(HandshakeKind::Full));
    let t = transfer_with(&mut ftp, "RETR full.bin", &fresh, None).await;
    assert_eq!(code(&t.reply), 226);
    assert_eq!(t.received, data);
    // And resuming still works.
    let (back, reply) = ftp.retr("full.bin").await;
    assert_eq!((reply.code, back == data), (226, true));
}

#[tokio::test]
async fn resumption_disabled_does_full_handshakes() {
    let wharf = Wharf::start_with(|c| c.tls.data_session_resumption = Resumption::Disabled).await;
    for versions in [TLS12, TLS13] {
        let config = verifying_config(&wharf, versions);
        let mut ftp = login_with(wharf.explicit, config.clone(), "alice@acme").await;
        let data = bytes(30_000, 5);
        let t = transfer_with(&mut ftp, "STOR d.bin", &config, Some(&data)).await;
        assert_eq!(code(&t.reply), 226, "{versions:?}: {:?}", t.reply);
        assert_eq!(t.handshake.map(|h| h.0), Some(HandshakeKind::Full), "{versions:?}");
        let t = transfer_with(&mut ftp, "RETR d.bin", &config, None).await;
        assert_eq!(code(&t.reply), 226);
        assert_eq!(t.handshake.map(|h| h.0), Some(HandshakeKind::Full));
        assert_eq!(t.received, data);
    }
}

// ---------------------------------------------------------------------------------------------------
// 4. Passive data connections from a foreign address

#[tokio::test]
async fn passive_connection_from_another_ip_is_refused_with_425() {
    let wharf = Wharf::start_with(|c| c.ftp.data_connect_timeout_secs = 1).await;
    let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
    assert_eq!(ftp.store("STOR", "f.bin", b"payload").await.code, 226);

    let port = port_of_epsv(&ftp.cmd("EPSV").await);
    let mut stranger = connect_from_stranger(port).await;
    let reply = ftp.cmd("RETR f.bin").await;
    assert_eq!(reply.code, 425, "{reply:?}");
    let mut buf = [0u8; 16];
    let got = stranger.read(&mut buf).await;
    assert!(matches!(got, Ok(0) | Err(_)), "the stranger got nothing: {got:?}");
}

#[tokio::test]
async fn stranger_on_the_passive_port_neither_hijacks_nor_blocks_the_client() {
    let wharf = Wharf::start_with(|c| c.ftp.data_connect_timeout_secs = 2).await;
    let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
    let data = bytes(100_000, 7);
    assert_eq!(ftp.store("STOR", "f.bin", &data).await.code, 226);

    let port = port_of_epsv(&ftp.cmd("EPSV").await);
    // The stranger is first in the accept queue; the real client connects after RETR is sent.
    let mut stranger = connect_from_stranger(port).await;
    ftp.send_raw(b"RETR f.bin\r\n").await;
    let client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let opening = ftp.reply().await;
    assert_eq!(opening.code, 150, "{opening:?}");
    let mut tls = ftp.secure(client).await.unwrap();
    let mut back = Vec::new();
    tls.read_to_end(&mut back).await.unwrap();
    assert_eq!(ftp.reply().await.code, 226);
    assert_eq!(back, data);
    let mut buf = [0u8; 16];
    assert!(matches!(stranger.read(&mut buf).await, Ok(0) | Err(_)));
}

#[tokio::test]
async fn passive_connection_from_another_ip_is_accepted_when_relaxed() {
    let wharf = Wharf::start_with(|c| c.tls.require_same_ip_for_passive = false).await;
    let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
    assert_eq!(ftp.store("STOR", "f.bin", b"payload").await.code, 226);
    let port = port_of_epsv(&ftp.cmd("EPSV").await);
    let tcp = connect_from_stranger(port).await;
    assert_eq!(ftp.cmd("RETR f.bin").await.code, 150);
    let mut tls = ftp.secure(tcp).await.unwrap();
    let mut back = Vec::new();
    tls.read_to_end(&mut back).await.unwrap();
    assert_eq!(ftp.reply().await.code, 226);
    assert_eq!(back, b"payload");
}

// ---------------------------------------------------------------------------------------------------
// 5. PORT / EPRT bounce protection

#[tokio::test]
async fn port_and_eprt_only_reach_the_clients_own_address_and_unprivileged_ports() {
    let wharf = Wharf::start().await;
    let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
    assert_eq!(ftp.store("STOR", "f.bin", b"active data").await.code, 226);

    for refused in [
        "PORT 127,0,0,2,19,136",
        "PORT 10,0,0,1,19,136",
        "PORT 127,0,0,1,0,21",
        "PORT 127,0,0,1,3,255",
        "EPRT |1|127.0.0.2|5000|",
        "EPRT |1|127.0.0.1|22|",
    ] {
        let reply = ftp.cmd(refused).await;
        assert_eq!(reply.code, 504, "{refused}: {reply:?}");
    }
    // A refused PORT leaves no data plan behind.
    assert_eq!(ftp.cmd("RETR f.bin").await.code, 425);

    for verb in ["EPRT", "PORT"] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let command = match verb {
            "EPRT" => format!("EPRT |1|127.0.0.1|{port}|"),
            _ => format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff),
        };
        assert_eq!(ftp.cmd(&command).await.code, 200);
        ftp.send_raw(b"RETR f.bin\r\n").await;
        let (tcp, _) = listener.accept().await.unwrap();
        assert_eq!(ftp.reply().await.code, 150);
        let mut tls = ftp.secure(tcp).await.unwrap();
        let mut back = Vec::new();
        tls.read_to_end(&mut back).await.unwrap();
        assert_eq!(ftp.reply().await.code, 226, "{verb}");
        assert_eq!(back, b"active data");
    }
}

// ---------------------------------------------------------------------------------------------------
// 6. Passive port range and announced address

#[tokio::test]
async fn passive_ports_come_from_the_configured_range() {
    let range = free_port_range(4);
    let wharf = Wharf::start_with(|c| c.ftp.passive_ports = range).await;
    let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
    for _ in 0..6 {
        let port = port_of_epsv(&ftp.cmd("EPSV").await);
        assert!((range.start..=range.end).contains(&port), "{port} outside {range:?}");
        let (ip, port) = port_of_pasv(&ftp.cmd("PASV").await);
        assert_eq!(ip, "127.0.0.1");
        assert!((range.start..=range.end).contains(&port), "{port} outside {range:?}");
    }
    assert_eq!(ftp.store("STOR", "r.bin", b"in range").await.code, 226);
    let (back, reply) = ftp.retr("r.bin").await;
    assert_eq!((back.as_slice(), reply.code), (&b"in range"[..], 226));
}

#[tokio::test]
async fn pasv_announces_the_configured_address() {
    let wharf = Wharf::start_with(|c| c.ftp.passive_address = Some("10.1.2.3".parse().unwrap())).await;
    let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
    let reply = ftp.cmd("PASV").await;
    assert!(reply.text.contains("(10,1,2,3,"), "{reply:?}");
    let (ip, _) = port_of_pasv(&reply);
    assert_eq!(ip, "10.1.2.3");
}

// ---------------------------------------------------------------------------------------------------
// 7. TLS versions (1.0/1.1 cannot be offered by rustls, so they are not tested here)

#[tokio::test]
async fn tls12_and_tls13_work_on_control_and_data_with_resumption_enforced() {
    let wharf = Wharf::start().await;
    for versions in [TLS12, TLS13] {
        let config = verifying_config(&wharf, versions);
        let mut ftp = login_with(wharf.explicit, config.clone(), "alice@acme").await;
        let data = bytes(200_000, 6);
        for _ in 0..3 {
            let t = transfer_with(&mut ftp, "STOR v.bin", &config, Some(&data)).await;
            assert_eq!(code(&t.reply), 226, "{versions:?}: {:?}", t.reply);
            assert_eq!(t.handshake, Some((HandshakeKind::Resumed, versions[0].version)));
            let t = transfer_with(&mut ftp, "RETR v.bin", &config, None).await;
            assert_eq!(code(&t.reply), 226);
            assert_eq!(t.handshake, Some((HandshakeKind::Resumed, versions[0].version)));
            assert_eq!(t.received, data);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// 8. Implicit FTPS

#[tokio::test]
async fn implicit_ftps_greets_over_tls_and_transfers() {
    let wharf = Wharf::start().await;
    let (mut ftp, greeting) = Ftp::connect_implicit(wharf.implicit).await;
    assert_eq!(greeting.code, 220);
    // Already TLS: a second AUTH TLS is refused.
    assert_eq!(ftp.cmd("AUTH TLS").await.code, 503);
    assert_eq!(ftp.cmd("PBSZ 0").await.code, 200);
    assert_eq!(ftp.cmd("PROT P").await.code, 200);
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
    let data = bytes(123_457, 8);
    assert_eq!(ftp.store("STOR", "implicit.bin", &data).await.code, 226);
    let (back, reply) = ftp.retr("implicit.bin").await;
    assert_eq!(reply.code, 226);
    assert_eq!(back, data);
}

#[tokio::test]
async fn implicit_port_does_not_speak_plaintext() {
    let wharf = Wharf::start().await;
    let mut tcp = TcpStream::connect(wharf.implicit).await.unwrap();
    tcp.write_all(b"USER alice@acme\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server closes a non-TLS connection");
    assert!(!String::from_utf8_lossy(&buf).contains("220"), "no plaintext greeting: {buf:?}");
}

// ---------------------------------------------------------------------------------------------------
// 5. Per-tenant overrides of the server's policy

/// Sets `acme`'s TLS policy overrides and adds a second, default tenant `other` with user bob.
async fn with_acme_policy(wharf: &Wharf, policy: TenantTlsPolicy) {
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    wharf.directory.set_tenant_tls(acme.id, &policy).await.unwrap();
    wharf.add_user("other", "bob", PASSWORD).await;
}

#[tokio::test]
async fn a_tenant_may_allow_plaintext_login_for_its_legacy_clients_only() {
    let wharf = Wharf::start().await;
    let relaxed =
        TenantTlsPolicy { require_tls_for_login: Some(false), require_prot_p: Some(false), ..Default::default() };
    with_acme_policy(&wharf, relaxed).await;

    // Named by user@tenant: plaintext login and clear data work for acme.
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
    assert_eq!(ftp.cmd("PWD").await.code, 257);
    clear_round_trip(&mut ftp, "legacy.bin", &bytes(20_000, 21)).await;

    // Named by HOST, too.
    wharf
        .directory
        .add_hostname(wharf.directory.tenant_by_name("acme").await.unwrap().unwrap().id, "ftp.acme.test")
        .await
        .unwrap();
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    assert_eq!(ftp.cmd("HOST ftp.acme.test").await.code, 220);
    assert_eq!(ftp.cmd("USER alice").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);

    // Every other tenant, and a tenant that does not exist, still gets the server's 530 before the password.
    for login in ["bob@other", "nobody@nowhere", "alice"] {
        let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
        let reply = ftp.cmd(&format!("USER {login}")).await;
        assert_eq!(reply.code, 530, "{login}: {reply:?}");
        assert!(reply.text.contains("TLS required"), "{login}: {reply:?}");
        assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 530, "{login}");
    }
}

#[tokio::test]
async fn a_tenant_may_require_tls_where_the_server_does_not() {
    let wharf = Wharf::start_with(|c| c.tls.require_tls_for_login = false).await;
    with_acme_policy(&wharf, TenantTlsPolicy { require_tls_for_login: Some(true), ..Default::default() }).await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    let reply = ftp.cmd("USER alice@acme").await;
    assert_eq!(reply.code, 530, "{reply:?}");
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    assert_eq!(ftp.cmd("USER bob@other").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
    // Over TLS acme logs in as usual.
    let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
    assert_eq!(ftp.cmd("PWD").await.code, 257);
}

#[tokio::test]
async fn a_tenant_may_require_tls_1_3() {
    let wharf = Wharf::start().await;
    let modern = TenantTlsPolicy { min_tls_version: Some(TlsVersion::Tls13), ..Default::default() };
    with_acme_policy(&wharf, modern).await;

    let (mut ftp, _) = Ftp::connect_with(wharf.explicit, verifying_config(&wharf, TLS12)).await;
    ftp.auth_tls().await;
    let reply = ftp.cmd("USER alice@acme").await;
    assert_eq!(reply.code, 530, "{reply:?}");
    assert!(reply.text.contains("1.3"), "{reply:?}");
    // bob's tenant keeps the server's policy, so TLS 1.2 is fine for him.
    assert_eq!(ftp.cmd("USER bob@other").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);

    let ftp = login_with(wharf.explicit, verifying_config(&wharf, TLS13), "alice@acme").await;
    drop(ftp);
}

#[tokio::test]
async fn a_tenant_may_relax_prot_p_and_resumption_for_its_sessions_only() {
    let wharf = Wharf::start().await;
    let relaxed = TenantTlsPolicy {
        require_prot_p: Some(false),
        data_session_resumption: Some(Resumption::Enabled),
        ..Default::default()
    };
    with_acme_policy(&wharf, relaxed).await;

    let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
    assert_eq!(ftp.cmd("PROT C").await.code, 200);
    clear_round_trip(&mut ftp, "clear.bin", &bytes(10_000, 22)).await;
    assert_eq!(ftp.cmd("PROT P").await.code, 200);
    let fresh = raw::client_config_without_resumption();
    let data = bytes(30_000, 23);
    let t = transfer_with(&mut ftp, "STOR full.bin", &fresh, Some(&data)).await;
    assert_eq!(code(&t.reply), 226, "{:?}", t.reply);
    assert_eq!(t.handshake.map(|h| h.0), Some(HandshakeKind::Full));

    // The server's strict policy still holds for bob.
    let mut ftp = Ftp::login(wharf.explicit, "bob@other", PASSWORD).await;
    assert_eq!(ftp.cmd("PROT C").await.code, 534);
    assert_eq!(ftp.cmd("PROT P").await.code, 200);
    let t = transfer_with(&mut ftp, "STOR full.bin", &fresh, Some(&data)).await;
    assert_eq!(code(&t.reply), 522, "{:?}", t.reply);
    assert_eq!(wharf.files_on_disk("other").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_tenant_may_accept_passive_connections_from_another_ip() {
    let wharf = Wharf::start_with(|c| c.ftp.data_connect_timeout_secs = 1).await;
    with_acme_policy(&wharf, TenantTlsPolicy { require_same_ip_for_passive: Some(false), ..Default::default() }).await;
    for (user, expected) in [("alice@acme", 150), ("bob@other", 425)] {
        let mut ftp = Ftp::login(wharf.explicit, user, PASSWORD).await;
        assert_eq!(ftp.store("STOR", "f.bin", b"payload").await.code, 226);
        let port = port_of_epsv(&ftp.cmd("EPSV").await);
        let tcp = connect_from_stranger(port).await;
        let reply = ftp.cmd("RETR f.bin").await;
        assert_eq!(reply.code, expected, "{user}: {reply:?}");
        if expected == 150 {
            let mut tls = ftp.secure(tcp).await.unwrap();
            let mut back = Vec::new();
            tls.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"payload");
            assert_eq!(ftp.reply().await.code, 226);
        }
    }
}
