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

fn rules(same_ip: bool) -> PassiveRules {
    PassiveRules {
        peer_ip: "127.0.0.1".parse().unwrap(),
        same_ip,
        proxy: None,
        early_tls: None,
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn passive_connection_from_a_foreign_address_is_refused_and_the_wait_goes_on() {
    let listener = PassivePorts::new(PortRange { start: 0, end: 0 }).bind("127.0.0.1".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let plan = DataPlan::Passive(Passive::start(PassiveSource::Listener(listener), rules(true)));
    let stranger = TcpSocket::new_v4().unwrap();
    stranger.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let _stranger = stranger.connect(addr).await.unwrap();
    let Err(err) = plan.connect(None, Duration::from_millis(300), || panic!("not opened")).await else {
        panic!("no connection expected")
    };
    assert!(matches!(err, DataError::Refused(_)), "{err:?}");
}

#[tokio::test]
async fn a_passive_connection_made_before_the_transfer_command_is_kept_for_it() {
    let listener = PassivePorts::new(PortRange { start: 0, end: 0 }).bind("127.0.0.1".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let plan = DataPlan::Passive(Passive::start(PassiveSource::Listener(listener), rules(true)));
    let mut client = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut opened = false;
    let stream = plan.connect(None, Duration::from_secs(5), || opened = true).await.unwrap();
    assert!(opened);
    let DataStream::Plain(mut server) = stream else { panic!("plain expected") };
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    client.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn no_passive_connection_times_out() {
    let listener = PassivePorts::new(PortRange { start: 0, end: 0 }).bind("127.0.0.1".parse().unwrap()).unwrap();
    let plan = DataPlan::Passive(Passive::start(PassiveSource::Listener(listener), rules(true)));
    let Err(err) = plan.connect(None, Duration::from_millis(100), || panic!("not opened")).await else {
        panic!("no connection expected")
    };
    assert!(matches!(err, DataError::Timeout(_)), "{err:?}");
}
