//! The shared passive port pool (issue 6): a handful of ports serve many concurrent sessions, each data
//! connection reaching the session that asked for it.

use std::sync::Arc;

use wharf::config::{Config, PassiveMode, PortRange};

use crate::support::raw::Ftp;
use crate::support::{bytes, Wharf, PASSWORD};

/// `len` ports that were free a moment ago, below Linux's ephemeral range (which the other tests' listeners
/// use), at a random place so that parallel tests rarely meet.
fn pool_range(len: u16) -> PortRange {
    loop {
        let start = 20_000 + rand::random::<u16>() % 12_000;
        let end = start + len - 1;
        let held: Result<Vec<_>, _> = (start..=end).map(|p| std::net::TcpListener::bind(("127.0.0.1", p))).collect();
        if held.is_ok() {
            return PortRange { start, end };
        }
    }
}

fn shared_pool(c: &mut Config, range: PortRange) {
    c.ftp.passive_ports = range;
    c.ftp.passive_mode = PassiveMode::Shared;
    c.ftp.max_sessions_per_ip = 200;
}

#[tokio::test]
async fn forty_sessions_share_four_passive_ports_and_every_byte_reaches_its_own_session() {
    let range = pool_range(4);
    let wharf = Arc::new(Wharf::start_with(|c| shared_pool(c, range)).await);
    let sessions = (0..40u64).map(|n| {
        let wharf = wharf.clone();
        async move {
            let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
            for round in 0..3u64 {
                let name = format!("s{n}-r{round}.bin");
                let data = bytes(20_000 + (n * 3 + round) as usize * 997, n * 10 + round);
                let epsv = ftp.cmd("EPSV").await;
                let port: u16 = epsv.text.split("|||").nth(1).unwrap().split('|').next().unwrap().parse().unwrap();
                assert!((range.start..=range.end).contains(&port), "{epsv:?} is outside the pool");
                // The plan EPSV made is given back; store and retr make their own.
                assert_eq!(ftp.store("STOR", &name, &data).await.code, 226, "{name}");
                let (back, reply) = ftp.retr(&name).await;
                assert_eq!(reply.code, 226, "{name}");
                assert!(back == data, "{name}: another session's bytes");
            }
            assert_eq!(ftp.cmd("QUIT").await.code, 221);
        }
    });
    // One task drives them all; they interleave at every await, as forty clients would.
    futures_util::future::join_all(sessions).await;
    assert_eq!(wharf.files_on_disk("acme").await.len(), 120);
}

#[tokio::test]
async fn pasv_answers_with_a_pool_port_and_a_connection_nobody_awaits_is_closed() {
    use tokio::io::AsyncReadExt;
    let range = pool_range(2);
    let wharf = Wharf::start_with(|c| shared_pool(c, range)).await;
    let mut ftp = wharf.login().await;
    let reply = ftp.cmd("PASV").await;
    assert_eq!(reply.code, 227, "{reply:?}");
    // Nobody waits on the other port for this client: a connection there is closed at once.
    let numbers: Vec<u16> =
        reply.text.split(['(', ')']).nth(1).unwrap().split(',').map(|n| n.parse().unwrap()).collect();
    let claimed = numbers[4] * 256 + numbers[5];
    assert!((range.start..=range.end).contains(&claimed));
    let other = if claimed == range.start { range.end } else { range.start };
    let mut stray = tokio::net::TcpStream::connect(("127.0.0.1", other)).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stray.read(&mut buf)).await.expect("closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The claimed port still serves this session.
    assert_eq!(ftp.store("STOR", "after.txt", b"still fine").await.code, 226);
    assert_eq!(wharf.read_file("after.txt").await, b"still fine");
}

/// Two replicas on one database, each with the same shared pool of two ports on an address of its own
/// (127.0.0.2 and 127.0.0.3, as two pods behind one balancer) and a relay listener trusted by `trusted`.
async fn two_replicas(trusted: &str) -> (Wharf, Wharf, crate::support::postgres::Database) {
    two_replicas_with(trusted, 2, 5).await
}

/// With a pool of `ports` ports, and `data_connect_timeout_secs` (when a claim lapses).
async fn two_replicas_with(
    trusted: &str,
    ports: u16,
    data_connect_timeout_secs: u64,
) -> (Wharf, Wharf, crate::support::postgres::Database) {
    let db = crate::support::postgres::Database::create().await;
    let range = pool_range(ports);
    let replica = |ip: &'static str| {
        let (url, trusted) = (db.url.clone(), trusted.to_owned());
        move |c: &mut Config| {
            shared_pool(c, range);
            c.database_url = Some(url);
            c.ftp.explicit_listen = Some(format!("{ip}:0").parse().unwrap());
            c.ftp.implicit_listen = Some(format!("{ip}:0").parse().unwrap());
            c.ftp.passive_relay.listen = Some(format!("{ip}:0").parse().unwrap());
            c.ftp.passive_relay.trusted = vec![trusted.parse().unwrap()];
            c.ftp.data_connect_timeout_secs = data_connect_timeout_secs;
        }
    };
    let a = Wharf::start_with(replica("127.0.0.2")).await;
    let b = Wharf::start_with(replica("127.0.0.3")).await;
    (a, b, db)
}

/// EPSV on the control connection, then the data connection to `replica`'s address instead of the
/// session's.
async fn epsv_to(ftp: &mut Ftp, replica: &Wharf) -> tokio::net::TcpStream {
    let epsv = ftp.cmd("EPSV").await;
    assert_eq!(epsv.code, 229, "{epsv:?}");
    let port: u16 = epsv.text.split("|||").nth(1).unwrap().split('|').next().unwrap().parse().unwrap();
    tokio::net::TcpStream::connect((replica.explicit.ip(), port)).await.expect("data connect")
}

#[tokio::test]
async fn a_data_connection_that_reaches_another_replica_is_relayed_to_the_session() {
    use tokio::io::AsyncReadExt;
    let (a, b, db) = two_replicas("127.0.0.0/8").await;
    let mut ftp = a.login().await;
    for round in 0..3u64 {
        // Upload through B to the session on A, both ways, and through A itself in between.
        let data = bytes(300_000 + round as usize * 7_777, round);
        let name = format!("relayed-{round}.bin");
        let tcp = epsv_to(&mut ftp, &b).await;
        // TLS end to end through the relay, resuming the session's.
        assert_eq!(ftp.store_on(tcp, "STOR", &name, &data).await.code, 226, "{name}");
        assert!(a.read_file(&name).await == data, "{name}: stored on the session's replica, intact");

        let tcp = epsv_to(&mut ftp, &b).await;
        assert_eq!(ftp.cmd(&format!("RETR {name}")).await.code, 150);
        let mut back = Vec::new();
        ftp.secure(tcp).await.unwrap().read_to_end(&mut back).await.unwrap();
        assert_eq!(ftp.reply().await.code, 226);
        assert!(back == data, "{name}: downloaded through the relay");

        assert_eq!(ftp.store("STOR", "direct.bin", b"direct").await.code, 226, "direct connections still work");
    }
    // Six connections went out of B and into A; none the other way.
    let relays = |w: &Wharf, way: &str| {
        let text = w.metrics.render_prometheus().unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with("wharf_passive_relays_total{")
                    && l.contains(&format!("way=\"{way}\""))
                    && l.contains("result=\"relayed\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    assert_eq!((relays(&b, "out"), relays(&a, "in")), (6.0, 6.0));
    assert_eq!((relays(&a, "out"), relays(&b, "in")), (0.0, 0.0));
    // Claims are given back once used (just after each transfer's reply): the pool is free again on both
    // replicas, within a bounded wait.
    let client = "127.0.0.1".parse().unwrap();
    let range = a.config.ftp.passive_ports;
    let mut held = Vec::new();
    for _ in 0..100 {
        held.clear();
        for port in range.start..=range.end {
            if let Some(claim) = a.directory.passive_claim(client, port, chrono::Utc::now()).await.unwrap() {
                held.push(claim);
            }
        }
        if held.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(held, Vec::new(), "claims still held after their transfers");
    assert_eq!(ftp.cmd("QUIT").await.code, 221);
    drop(ftp);
    a.stop().await;
    b.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn a_relay_connection_from_an_untrusted_peer_is_refused_and_the_claim_waits_on() {
    use tokio::io::AsyncReadExt;
    // Only B may relay to A.
    let (a, b, db) = two_replicas("127.0.0.3/32").await;
    let mut ftp = a.login().await;
    let epsv = ftp.cmd("EPSV").await;
    let port: u16 = epsv.text.split("|||").nth(1).unwrap().split('|').next().unwrap().parse().unwrap();
    // A stranger on 127.0.0.9 claims to be relaying the client's data connection.
    let stranger = tokio::net::TcpSocket::new_v4().unwrap();
    stranger.bind("127.0.0.9:0".parse().unwrap()).unwrap();
    let mut stranger = stranger.connect(a.relay.expect("relay listener")).await.unwrap();
    let header = wharf::ftp::proxy::v2_header(
        "127.0.0.1:40000".parse().unwrap(),
        std::net::SocketAddr::new(a.explicit.ip(), port),
    );
    tokio::io::AsyncWriteExt::write_all(&mut stranger, &header).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stranger.read(&mut buf)).await.expect("closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let scrape = a.metrics.render_prometheus().unwrap();
    assert!(
        scrape.lines().any(|l| l.starts_with("wharf_passive_relays_total{")
            && l.contains("result=\"refused\"")
            && l.ends_with(" 1")),
        "{scrape}"
    );
    // The session still gets its own data connection, relayed by B.
    let tcp = tokio::net::TcpStream::connect((b.explicit.ip(), port)).await.unwrap();
    assert_eq!(ftp.store_on(tcp, "STOR", "after.txt", b"through b").await.code, 226);
    assert_eq!(a.read_file("after.txt").await, b"through b");
    drop(ftp);
    a.stop().await;
    b.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn a_pair_claimed_on_one_replica_is_not_handed_out_by_another_until_given_back() {
    // Claims that cannot lapse while the test runs, however slow the machine.
    let (a, b, db) = two_replicas_with("127.0.0.0/8", 2, 30).await;
    // Two sessions of one client on A hold both ports of the pool.
    let mut a1 = a.login().await;
    let mut a2 = a.login().await;
    let port_of = |reply: crate::support::raw::Reply| -> u16 {
        assert_eq!(reply.code, 229, "{reply:?}");
        reply.text.split("|||").nth(1).unwrap().split('|').next().unwrap().parse().unwrap()
    };
    let first = port_of(a1.cmd("EPSV").await);
    let second = port_of(a2.cmd("EPSV").await);
    assert_ne!(first, second);
    // The same client's session on B waits, where a pool of its own would answer at once.
    let mut b1 = b.login().await;
    let port = {
        let waiting = b1.cmd("EPSV");
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(700), &mut waiting).await.is_err(),
            "B handed out a pair A holds"
        );
        // A1 leaves: its pair is free for B, and a data connection to A for it reaches B's session.
        assert_eq!(a1.cmd("QUIT").await.code, 221);
        port_of(waiting.await)
    };
    assert_eq!(port, first);
    let tcp = tokio::net::TcpStream::connect((a.explicit.ip(), port)).await.unwrap();
    assert_eq!(b1.store_on(tcp, "STOR", "via-a.txt", b"through a").await.code, 226);
    assert_eq!(b.read_file("via-a.txt").await, b"through a");
    drop((a1, a2, b1));
    a.stop().await;
    b.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn a_lapsed_claim_taken_over_by_another_replica_sends_the_connection_there() {
    // Claims lapse after 2 s: long enough for a relayed connection to reach B1's claim in time.
    let (a, b, db) = two_replicas_with("127.0.0.0/8", 1, 2).await;
    let mut a1 = a.login().await;
    let mut b1 = b.login().await;
    let epsv = a1.cmd("EPSV").await;
    assert_eq!(epsv.code, 229, "{epsv:?}");
    // A1 never connects: its claim lapses, and B1 gets the pool's one port.
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let tcp = epsv_to(&mut b1, &a).await;
    // The connection reached A, which still remembers A1's lapsed claim; it belongs to B1 (its own TLS
    // session, through A).
    assert_eq!(b1.store_on(tcp, "STOR", "late.txt", b"for b1").await.code, 226);
    assert_eq!(b.read_file("late.txt").await, b"for b1");
    drop((a1, b1));
    a.stop().await;
    b.stop().await;
    db.drop().await;
}
