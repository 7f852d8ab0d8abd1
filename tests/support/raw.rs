//! A deliberately small FTPS client that shows every reply as it is, for protocol and policy tests.
//! Its TLS config is shared by the control and data connections, so data connections resume the control
//! connection's session the way curl and FileZilla do.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// All lines, CR LF removed, joined with `\n`.
    pub text: String,
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Ftp {
    control: Option<BufReader<Box<dyn Io>>>,
    pub tls: Arc<ClientConfig>,
    pub server: SocketAddr,
}

impl Ftp {
    /// Connects in plaintext (explicit FTPS port) and reads the greeting.
    pub async fn connect(server: SocketAddr) -> (Ftp, Reply) {
        Ftp::connect_with(server, client_config()).await
    }

    pub async fn connect_with(server: SocketAddr, tls: Arc<ClientConfig>) -> (Ftp, Reply) {
        let tcp = TcpStream::connect(server).await.expect("connect");
        tcp.set_nodelay(true).unwrap();
        let mut ftp = Ftp { control: Some(BufReader::new(Box::new(tcp))), tls, server };
        let greeting = ftp.reply().await;
        (ftp, greeting)
    }

    /// Connects from a given local address (any of 127.0.0.0/8 works on loopback), so that one test can
    /// play several clients.
    pub async fn connect_from(server: SocketAddr, local: std::net::IpAddr) -> (Ftp, Reply) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(local, 0)).expect("bind the client address");
        let tcp = socket.connect(server).await.expect("connect");
        tcp.set_nodelay(true).unwrap();
        let mut ftp = Ftp { control: Some(BufReader::new(Box::new(tcp))), tls: client_config(), server };
        let greeting = ftp.reply().await;
        (ftp, greeting)
    }

    /// Connects like a load balancer would: `header` (a PROXY protocol header) first, then plaintext FTP.
    pub async fn connect_proxied(server: SocketAddr, header: &[u8]) -> (Ftp, Reply) {
        let mut tcp = TcpStream::connect(server).await.expect("connect");
        tcp.set_nodelay(true).unwrap();
        tcp.write_all(header).await.unwrap();
        let mut ftp = Ftp { control: Some(BufReader::new(Box::new(tcp))), tls: client_config(), server };
        let greeting = ftp.reply().await;
        (ftp, greeting)
    }

    /// Connects to the implicit FTPS port: TLS first, then the greeting.
    pub async fn connect_implicit(server: SocketAddr) -> (Ftp, Reply) {
        let tls = client_config();
        let tcp = TcpStream::connect(server).await.expect("connect");
        let stream = connector(&tls).connect(server_name(), tcp).await.expect("implicit TLS handshake");
        let mut ftp = Ftp { control: Some(BufReader::new(Box::new(stream))), tls, server };
        let greeting = ftp.reply().await;
        (ftp, greeting)
    }

    /// AUTH TLS, PBSZ 0, PROT P, USER, PASS: a ready session.
    pub async fn login(server: SocketAddr, user: &str, password: &str) -> Ftp {
        let (mut ftp, greeting) = Ftp::connect(server).await;
        assert_eq!(greeting.code, 220, "{greeting:?}");
        ftp.auth_tls().await;
        assert_eq!(ftp.cmd("PBSZ 0").await.code, 200);
        assert_eq!(ftp.cmd("PROT P").await.code, 200);
        assert_eq!(ftp.cmd(&format!("USER {user}")).await.code, 331);
        let reply = ftp.cmd(&format!("PASS {password}")).await;
        assert_eq!(reply.code, 230, "{reply:?}");
        ftp
    }

    pub async fn auth_tls(&mut self) {
        self.auth_tls_as(server_name()).await
    }

    /// AUTH TLS with `name` as the TLS server name (sent as SNI when it is a DNS name).
    pub async fn auth_tls_as(&mut self, name: ServerName<'static>) {
        let reply = self.cmd("AUTH TLS").await;
        assert_eq!(reply.code, 234, "{reply:?}");
        let plain = self.control.take().unwrap().into_inner();
        let stream = connector(&self.tls).connect(name, plain).await.expect("control TLS handshake");
        self.control = Some(BufReader::new(Box::new(stream)));
    }

    /// The control connection itself, for a test that runs its own TLS handshake on it after AUTH TLS.
    pub fn into_plain(mut self) -> Box<dyn Io> {
        self.control.take().unwrap().into_inner()
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let control = self.control.as_mut().unwrap().get_mut();
        control.write_all(bytes).await.unwrap();
        control.flush().await.unwrap();
    }

    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Reads one reply, following RFC 959 multi-line replies. Panics if the server closes first.
    pub async fn reply(&mut self) -> Reply {
        self.try_reply().await.expect("server closed the control connection")
    }

    /// One reply, or `None` when the connection is closed.
    pub async fn try_reply(&mut self) -> Option<Reply> {
        let control = self.control.as_mut().unwrap();
        let mut first = String::new();
        if control.read_line(&mut first).await.ok()? == 0 {
            return None;
        }
        let first = first.trim_end_matches(['\r', '\n']).to_owned();
        assert!(first.len() >= 4, "short reply line {first:?}");
        let code: u16 = first[..3].parse().unwrap_or_else(|_| panic!("bad reply line {first:?}"));
        let mut lines = vec![first.clone()];
        if first.as_bytes()[3] == b'-' {
            let end = format!("{code} ");
            loop {
                let mut line = String::new();
                if control.read_line(&mut line).await.ok()? == 0 {
                    return None;
                }
                let line = line.trim_end_matches(['\r', '\n']).to_owned();
                let done = line.starts_with(&end);
                lines.push(line);
                if done {
                    break;
                }
            }
        }
        Some(Reply { code, text: lines.join("\n") })
    }

    /// True once the server has closed the control connection (reads EOF or an error).
    pub async fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        let control = self.control.as_mut().unwrap();
        matches!(control.read(&mut buf).await, Ok(0) | Err(_))
    }

    /// EPSV and a TCP connection to the announced port.
    pub async fn epsv(&mut self) -> TcpStream {
        let reply = self.cmd("EPSV").await;
        assert_eq!(reply.code, 229, "{reply:?}");
        let port: u16 = reply.text.split("|||").nth(1).and_then(|s| s.split('|').next()).unwrap().parse().unwrap();
        let tcp = TcpStream::connect((self.server.ip(), port)).await.expect("data connect");
        tcp.set_nodelay(true).unwrap();
        tcp
    }

    /// TLS on a data connection with the control connection's client config (so it resumes).
    pub async fn secure(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        connector(&self.tls).connect(server_name(), tcp).await
    }

    /// RETR over EPSV + TLS; returns the bytes and the final reply.
    pub async fn retr(&mut self, path: &str) -> (Vec<u8>, Reply) {
        let tcp = self.epsv().await;
        let opening = self.cmd(&format!("RETR {path}")).await;
        if opening.code != 150 {
            return (Vec::new(), opening);
        }
        let mut data = Vec::new();
        if let Ok(mut tls) = self.secure(tcp).await {
            let _ = tls.read_to_end(&mut data).await;
        }
        (data, self.reply().await)
    }

    /// STOR (or APPE etc., given as `verb`) over EPSV + TLS; returns the final reply.
    pub async fn store(&mut self, verb: &str, path: &str, data: &[u8]) -> Reply {
        let tcp = self.epsv().await;
        self.store_on(tcp, verb, path, data).await
    }

    /// Like [`Ftp::store`], on a data connection the caller opened (to another address, say).
    pub async fn store_on(&mut self, tcp: TcpStream, verb: &str, path: &str, data: &[u8]) -> Reply {
        let opening = self.cmd(&format!("{verb} {path}")).await;
        if opening.code != 150 {
            return opening;
        }
        if let Ok(mut tls) = self.secure(tcp).await {
            // A server that gives up on the upload (a store failure, say) closes the data connection while
            // the bytes still flow, as it would with any client: its reply tells what happened.
            if tls.write_all(data).await.is_ok() {
                let _ = tls.shutdown().await;
            }
            let mut rest = Vec::new();
            let _ = tls.read_to_end(&mut rest).await;
        }
        self.reply().await
    }

    /// LIST, NLST or MLSD (given whole, e.g. `"MLSD /dir"`); returns the listing text and the final reply.
    pub async fn listing(&mut self, command: &str) -> (String, Reply) {
        let tcp = self.epsv().await;
        let opening = self.cmd(command).await;
        if opening.code != 150 {
            return (String::new(), opening);
        }
        let mut data = Vec::new();
        if let Ok(mut tls) = self.secure(tcp).await {
            let _ = tls.read_to_end(&mut data).await;
        }
        (String::from_utf8(data).expect("listing is UTF-8"), self.reply().await)
    }
}

pub fn server_name() -> ServerName<'static> {
    ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into())
}

pub fn connector(config: &Arc<ClientConfig>) -> TlsConnector {
    TlsConnector::from(config.clone())
}

/// A client config that trusts any certificate (the test server's is self-signed) and caches sessions.
pub fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
    Arc::new(config)
}

/// The same, but never resuming: like clients that cannot reuse TLS sessions.
pub fn client_config_without_resumption() -> Arc<ClientConfig> {
    let mut config = (*client_config()).clone();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}
