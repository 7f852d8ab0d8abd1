//! The shared passive pool: each client address gets each port once, claims lapse, and a connection reaches
//! only the session waiting on its address and port.

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
            None,
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
