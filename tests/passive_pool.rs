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
