//! PROXY protocol headers: a table of version 1 lines, hand-built version 2 headers, and the rule that the
//! reader never consumes a byte past the header.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

async fn header_of(bytes: &[u8]) -> Result<Header, ProxyError> {
    let mut reader = bytes;
    read_header(&mut reader, Duration::from_secs(1)).await
}

#[tokio::test]
async fn version_1_lines() {
    let proxied = |s: &str, d: &str| Header::Proxied { source: addr(s), destination: addr(d) };
    let good: &[(&[u8], Header)] = &[
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 21\r\n", proxied("203.0.113.7:51234", "192.0.2.1:21")),
        (b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 990\r\n", proxied("[2001:db8::7]:65535", "[2001:db8::1]:990")),
        (b"PROXY TCP4 10.0.0.1 10.0.0.2 0 21\r\n", proxied("10.0.0.1:0", "10.0.0.2:21")),
        (b"PROXY UNKNOWN\r\n", Header::Local),
        (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", Header::Local),
    ];
    for (bytes, expected) in good {
        let got = header_of(bytes).await;
        assert_eq!(got.as_ref().ok(), Some(expected), "{:?}: {got:?}", String::from_utf8_lossy(bytes));
    }
    let bad: &[&[u8]] = &[
        b"PROXY TCP4 203.0.113.7 192.0.2.1 51234\r\n",    // a field short
        b"PROXY TCP4 2001:db8::7 192.0.2.1 1 2\r\n",      // IPv6 address under TCP4
        b"PROXY TCP6 203.0.113.7 2001:db8::1 1 2\r\n",    // IPv4 address under TCP6
        b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 21\r\n", // port out of range
        b"PROXY TCP4 203.0.113.7 192.0.2.1 +1 21\r\n",    // signed port
        b"PROXY TCP4 203.0.113.7 192.0.2.1 021 21\r\n",   // leading zero
        b"PROXY TCP4  203.0.113.7 192.0.2.1 1 21\r\n",    // double space
        b"PROXY UDP4 203.0.113.7 192.0.2.1 1 21\r\n",     // not TCP
        b"PROXY TCP4 203.0.113.7 192.0.2.1 1 21\n",       // bare LF: never ends, runs out
    ];
    for bytes in bad {
        let got = header_of(bytes).await;
        assert!(got.is_err(), "{:?} was accepted: {got:?}", String::from_utf8_lossy(bytes));
    }
}

#[tokio::test]
async fn a_version_1_line_longer_than_107_bytes_is_refused_without_reading_on() {
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 200));
    long.extend(b"\r\n");
    assert!(matches!(header_of(&long).await, Err(ProxyError::Malformed(_))));
}

#[tokio::test]
async fn anything_else_is_no_header() {
    for bytes in [&b"USER alice\r\n"[..], b"\x16\x03\x01\x02\x00", b"\r\n\r\n\0\r\nQUIX\n\x21\x11\0\0"] {
        assert!(matches!(header_of(bytes).await, Err(ProxyError::Missing)), "{bytes:?}");
    }
    assert!(matches!(header_of(b"PRO").await, Err(ProxyError::Io(_))), "cut short");
}

fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.push(0x20 | command);
    header.push(family);
    header.extend(u16::try_from(addresses.len()).unwrap().to_be_bytes());
    header.extend(addresses);
    header
}

#[tokio::test]
async fn version_2_headers() {
    let mut tcp4 = vec![203, 0, 113, 7, 192, 0, 2, 1];
    tcp4.extend(51234u16.to_be_bytes());
    tcp4.extend(21u16.to_be_bytes());
    let expected = Header::Proxied { source: addr("203.0.113.7:51234"), destination: addr("192.0.2.1:21") };
    assert_eq!(header_of(&v2(1, 0x11, &tcp4)).await.unwrap(), expected);

    // TLVs after the addresses (here a PP2_TYPE_AUTHORITY) are skipped.
    let mut with_tlv = tcp4.clone();
    with_tlv.extend([0x02, 0x00, 0x08]);
    with_tlv.extend(b"ftp.test");
    assert_eq!(header_of(&v2(1, 0x11, &with_tlv)).await.unwrap(), expected);

    let mut tcp6 = Vec::new();
    tcp6.extend("2001:db8::7".parse::<std::net::Ipv6Addr>().unwrap().octets());
    tcp6.extend("2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    tcp6.extend(40000u16.to_be_bytes());
    tcp6.extend(990u16.to_be_bytes());
    assert_eq!(
        header_of(&v2(1, 0x21, &tcp6)).await.unwrap(),
        Header::Proxied { source: addr("[2001:db8::7]:40000"), destination: addr("[2001:db8::1]:990") }
    );

    // LOCAL (a health check) and families wharf cannot use leave the peer's address standing.
    assert_eq!(header_of(&v2(0, 0x00, &[])).await.unwrap(), Header::Local);
    assert_eq!(header_of(&v2(1, 0x31, &[0; 216])).await.unwrap(), Header::Local);
    assert_eq!(header_of(&v2(1, 0x12, &tcp4)).await.unwrap(), Header::Local, "UDP");

    assert!(matches!(header_of(&v2(1, 0x11, &tcp4[..11])).await, Err(ProxyError::Malformed(_))), "short");
    assert!(matches!(header_of(&v2(2, 0x11, &tcp4)).await, Err(ProxyError::Malformed(_))), "command 2");
    let mut wrong_version = v2(1, 0x11, &tcp4);
    wrong_version[12] = 0x11;
    assert!(matches!(header_of(&wrong_version).await, Err(ProxyError::Malformed(_))));
    let mut too_long = v2(1, 0x11, &[]);
    too_long[14..16].copy_from_slice(&5000u16.to_be_bytes());
    assert!(matches!(header_of(&too_long).await, Err(ProxyError::Malformed(_))));
}

#[tokio::test]
async fn the_reader_stops_exactly_after_the_header() {
    let mut tcp4 = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2];
    tcp4.extend([0x04, 0x00, 0x01, 0xff]); // a TLV inside the declared length
    for header in [b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n".to_vec(), v2(1, 0x11, &tcp4)] {
        let mut stream = header.clone();
        stream.extend(b"\x16\x03\x01 the TLS ClientHello follows");
        let mut reader = &stream[..];
        read_header(&mut reader, Duration::from_secs(1)).await.unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"\x16\x03\x01 the TLS ClientHello follows");
    }
}

#[tokio::test]
async fn a_balancer_that_sends_nothing_times_out() {
    let (_client, mut server) = tokio::io::duplex(64);
    let got = read_header(&mut server, Duration::from_millis(50)).await;
    assert!(matches!(got, Err(ProxyError::TimedOut)), "{got:?}");
}

#[tokio::test]
async fn the_relay_header_reads_back_as_written() {
    let cases = [
        ("203.0.113.7:51234", "10.0.0.5:50001"),
        ("[2001:db8::7]:51234", "[2001:db8::1]:50001"),
        // Mixed families: both as IPv6, the IPv4 one mapped.
        ("203.0.113.7:51234", "[2001:db8::1]:50001"),
    ];
    for (source, destination) in cases {
        let (source, destination) = (addr(source), addr(destination));
        let mut bytes = v2_header(source, destination);
        bytes.extend_from_slice(b"TLS");
        let mut reader = &bytes[..];
        let Header::Proxied { source: got, destination: to } =
            read_header(&mut reader, Duration::from_secs(1)).await.unwrap()
        else {
            panic!("not proxied");
        };
        assert_eq!((got.ip().to_canonical(), got.port()), (source.ip(), source.port()));
        assert_eq!((to.ip().to_canonical(), to.port()), (destination.ip().to_canonical(), destination.port()));
        assert_eq!(reader, b"TLS", "nothing read past the header");
    }
}
