//! A minimal FTPS client for the benchmark: explicit FTPS (RFC 4217 AUTH TLS, PBSZ 0, PROT P), EPSV
//! (RFC 2428), STOR and RETR in stream mode.
//!
//! Control and data connections share one `Arc<ClientConfig>` and so one session cache: every data
//! connection resumes a TLS session issued on the control connection, as wharf's default policy requires
//! and as curl, lftp and FileZilla do.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, ensure, Context as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, SignatureScheme};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Size of every read and write on a data connection.
pub const BUFFER: usize = 256 * 1024;

#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

/// What TLS a data connection negotiated, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub version: String,
    pub suite: String,
}

pub struct Client {
    control: BufReader<TlsStream<TcpStream>>,
    config: Arc<ClientConfig>,
    server: SocketAddr,
    /// Data connections that resumed the TLS session, and those that did a full handshake.
    pub resumed: u64,
    pub full_handshakes: u64,
    pub negotiated: Option<Negotiated>,
}

impl Client {
    /// Connects, secures the control connection and logs in: a session ready for transfers.
    pub async fn login(
        server: SocketAddr,
        config: Arc<ClientConfig>,
        user: &str,
        password: &str,
    ) -> anyhow::Result<Client> {
        let tcp = TcpStream::connect(server).await.with_context(|| format!("connecting to {server}"))?;
        tcp.set_nodelay(true)?;
        let mut plain = BufReader::new(tcp);
        expect(read_reply(&mut plain).await?, 220)?;
        plain.get_mut().write_all(b"AUTH TLS\r\n").await?;
        expect(read_reply(&mut plain).await?, 234)?;
        ensure!(plain.buffer().is_empty(), "server sent data before the TLS handshake");
        let tls = TlsConnector::from(config.clone()).connect(server_name(), plain.into_inner()).await?;
        let mut client =
            Client { control: BufReader::new(tls), config, server, resumed: 0, full_handshakes: 0, negotiated: None };
        client.expect("PBSZ 0", 200).await?;
        client.expect("PROT P", 200).await?;
        client.expect(&format!("USER {user}"), 331).await?;
        client.expect(&format!("PASS {password}"), 230).await?;
        client.expect("TYPE I", 200).await?;
        Ok(client)
    }

    pub async fn cmd(&mut self, line: &str) -> anyhow::Result<Reply> {
        let control = self.control.get_mut();
        control.write_all(format!("{line}\r\n").as_bytes()).await?;
        control.flush().await?;
        read_reply(&mut self.control).await
    }

    pub async fn expect(&mut self, line: &str, code: u16) -> anyhow::Result<Reply> {
        let reply = self.cmd(line).await?;
        expect(reply, code).with_context(|| format!("after {:?}", line.split(' ').next().unwrap_or(line)))
    }

    /// Uploads `data` to `path`; returns once the server confirmed it with 226.
    pub async fn stor(&mut self, path: &str, data: &[u8]) -> anyhow::Result<()> {
        let tcp = self.epsv().await?;
        self.expect(&format!("STOR {path}"), 150).await?;
        let mut tls = self.secure(tcp).await?;
        for chunk in data.chunks(BUFFER) {
            tls.write_all(chunk).await?;
        }
        // close_notify tells the server the upload is complete; then wait for its own.
        tls.shutdown().await?;
        let mut rest = [0u8; 64];
        while tls.read(&mut rest).await? != 0 {}
        expect(read_reply(&mut self.control).await?, 226)?;
        Ok(())
    }

    /// Downloads `path` into the front of `sink`; returns the number of bytes received.
    pub async fn retr(&mut self, path: &str, sink: &mut [u8]) -> anyhow::Result<usize> {
        let tcp = self.epsv().await?;
        self.expect(&format!("RETR {path}"), 150).await?;
        let mut tls = self.secure(tcp).await?;
        let received = read_all(&mut tls, sink).await?;
        tls.shutdown().await?;
        drop(tls);
        expect(read_reply(&mut self.control).await?, 226)?;
        Ok(received)
    }

    pub async fn quit(mut self) {
        let _ = self.cmd("QUIT").await;
    }

    /// EPSV, then the TCP connection to the announced port.
    async fn epsv(&mut self) -> anyhow::Result<TcpStream> {
        let reply = self.expect("EPSV", 229).await?;
        let port: u16 = reply
            .text
            .split("|||")
            .nth(1)
            .and_then(|rest| rest.split('|').next())
            .and_then(|port| port.parse().ok())
            .with_context(|| format!("unreadable EPSV reply {:?}", reply.text))?;
        let tcp = TcpStream::connect((self.server.ip(), port)).await.context("data connection")?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    async fn secure(&mut self, tcp: TcpStream) -> anyhow::Result<TlsStream<TcpStream>> {
        let tls = TlsConnector::from(self.config.clone()).connect(server_name(), tcp).await.context("data TLS")?;
        let connection = tls.get_ref().1;
        if connection.handshake_kind() == Some(HandshakeKind::Resumed) {
            self.resumed += 1;
        } else {
            self.full_handshakes += 1;
        }
        self.negotiated = Some(negotiated(connection));
        Ok(tls)
    }
}

/// Reads until EOF into the front of `sink`, [`BUFFER`] bytes at a time at most.
pub async fn read_all<R: tokio::io::AsyncRead + Unpin>(stream: &mut R, sink: &mut [u8]) -> anyhow::Result<usize> {
    let mut filled = 0;
    loop {
        let end = (filled + BUFFER).min(sink.len());
        if end == filled {
            // Sink full: anything more is a bug in the server or the bench.
            let mut probe = [0u8; 1];
            ensure!(stream.read(&mut probe).await? == 0, "received more than {} bytes", sink.len());
            return Ok(filled);
        }
        match stream.read(&mut sink[filled..end]).await? {
            0 => return Ok(filled),
            n => filled += n,
        }
    }
}

pub fn negotiated(connection: &rustls::CommonState) -> Negotiated {
    Negotiated {
        version: connection.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default(),
        suite: connection.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default(),
    }
}

async fn read_reply<R: AsyncBufRead + Unpin>(reader: &mut R) -> anyhow::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        bail!("server closed the control connection");
    }
    let first = line.trim_end().to_owned();
    let code: u16 = first.get(..3).and_then(|c| c.parse().ok()).with_context(|| format!("bad reply {first:?}"))?;
    let mut text = first.clone();
    if first.as_bytes().get(3) == Some(&b'-') {
        let end = format!("{code} ");
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                bail!("server closed the control connection inside a reply");
            }
            text.push('\n');
            text.push_str(line.trim_end());
            if line.starts_with(&end) {
                break;
            }
        }
    }
    Ok(Reply { code, text })
}

fn expect(reply: Reply, code: u16) -> anyhow::Result<Reply> {
    ensure!(reply.code == code, "expected {code}, got {:?}", reply.text);
    Ok(reply)
}

pub fn server_name() -> ServerName<'static> {
    ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into())
}

/// rustls with the ring provider (the same stack as wharf), trusting any certificate: the bench server's is
/// self-signed. One config per logical client, so its session cache is shared.
///
/// TLS 1.2, because a rustls client uses each TLS 1.3 ticket once, and wharf, like other FTPS servers,
/// sends no tickets on upload connections (an unread ticket makes the client's close reset the socket and
/// lose the end of the upload). curl, lftp, FileZilla and Python present the control connection's session
/// again and again, which a rustls client does with TLS 1.2 session IDs. Bulk data uses the same AES-GCM
/// either way, and the raw-TLS ceiling is measured with this config too.
pub fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("ring supports TLS 1.2")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAnything))
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct TrustAnything;

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}
