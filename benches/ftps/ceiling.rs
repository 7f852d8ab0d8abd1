//! The ceilings wharf is compared with: one raw TLS stream on loopback (the bench's own client stack
//! against a bare tokio-rustls server in this process) and the disk's sequential write rate with
//! `fdatasync`, both measured in the same run as wharf.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::client::{self, Negotiated, BUFFER};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server, like an upload.
    Up,
    /// Server to client, like a download.
    Down,
}

/// A bare TLS server: per connection it reads a one-byte request (`U` or `D`), then swallows the client's
/// bytes until close_notify, or sends `source` and closes.
pub struct RawTls {
    pub addr: SocketAddr,
    source: Arc<Vec<u8>>,
}

impl RawTls {
    /// Binds on loopback and serves in a task of the current runtime until the process ends.
    pub async fn start(source: Arc<Vec<u8>>) -> anyhow::Result<RawTls> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(server_config()?);
        let served = source.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, source) = (acceptor.clone(), served.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve(acceptor, tcp, &source).await {
                        eprintln!("raw TLS server: {e:#}");
                    }
                });
            }
        });
        Ok(RawTls { addr, source })
    }

    /// One stream of `source.len()` bytes in `direction`; the received bytes land in `sink` (downloads).
    pub async fn transfer(
        &self,
        config: &Arc<rustls::ClientConfig>,
        direction: Direction,
        sink: &mut [u8],
    ) -> anyhow::Result<(Duration, Negotiated)> {
        let started = Instant::now();
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let mut tls = tokio_rustls::TlsConnector::from(config.clone()).connect(client::server_name(), tcp).await?;
        let negotiated = client::negotiated(tls.get_ref().1);
        match direction {
            Direction::Up => {
                tls.write_all(b"U").await?;
                for chunk in self.source.chunks(BUFFER) {
                    tls.write_all(chunk).await?;
                }
                tls.shutdown().await?;
                let mut ack = [0u8; 8];
                let n = tls.read(&mut ack).await?;
                ensure!(n == 8 && u64::from_le_bytes(ack) == self.source.len() as u64, "server counted otherwise");
            }
            Direction::Down => {
                tls.write_all(b"D").await?;
                tls.flush().await?;
                let received = client::read_all(&mut tls, sink).await?;
                ensure!(received == self.source.len(), "received {received} of {} bytes", self.source.len());
                tls.shutdown().await?;
            }
        }
        Ok((started.elapsed(), negotiated))
    }
}

async fn serve(acceptor: TlsAcceptor, tcp: TcpStream, source: &[u8]) -> anyhow::Result<()> {
    tcp.set_nodelay(true)?;
    let mut tls = acceptor.accept(tcp).await?;
    let mut request = [0u8; 1];
    tls.read_exact(&mut request).await?;
    if request[0] == b'U' {
        let mut buf = vec![0u8; BUFFER];
        let mut total = 0u64;
        loop {
            match tls.read(&mut buf).await? {
                0 => break,
                n => total += n as u64,
            }
        }
        tls.write_all(&total.to_le_bytes()).await?;
        tls.shutdown().await?;
    } else {
        for chunk in source.chunks(BUFFER) {
            tls.write_all(chunk).await?;
        }
        tls.shutdown().await?;
        let mut rest = [0u8; 64];
        while tls.read(&mut rest).await? != 0 {}
    }
    Ok(())
}

/// The same protocol versions and provider as wharf's `tls::Tls::new`, and the same kind of certificate.
fn server_config() -> anyhow::Result<Arc<ServerConfig>> {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    Ok(Arc::new(config))
}

/// `dd if=/dev/zero of=<dir>/dd.bench bs=1M count=<mib> conv=fdatasync`: MB/s from dd's own byte count and
/// seconds (its summary line), not its rounded rate.
pub fn disk_write_mb_s(dir: &Path, mib: usize) -> anyhow::Result<f64> {
    let target = dir.join("dd.bench");
    let output = Command::new("dd")
        .env("LC_ALL", "C")
        .arg("if=/dev/zero")
        .arg(format!("of={}", target.display()))
        .args(["bs=1M", &format!("count={mib}"), "conv=fdatasync"])
        .output()
        .context("running dd")?;
    let _ = std::fs::remove_file(&target);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "dd failed: {stderr}");
    // e.g. "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 1.23 s, 873 MB/s"
    let summary = stderr.lines().find(|l| l.contains(" copied, ")).context("no summary line from dd")?;
    let bytes: f64 = summary.split(' ').next().and_then(|b| b.parse().ok()).context("dd byte count")?;
    let seconds: f64 = summary
        .split(" copied, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse().ok())
        .context("dd seconds")?;
    Ok(bytes / seconds / 1e6)
}

/// What the disk allows for durable small files, one after another: per file, wharf's commit sequence with
/// `storage.fsync` (create a temporary file, write, fsync it, rename it into place, fsync the folder).
pub fn durable_small_files_per_s(dir: &Path, files: &[&[u8]]) -> anyhow::Result<f64> {
    let folder = dir.join("fsync.bench");
    std::fs::create_dir(&folder)?;
    let handle = File::open(&folder)?;
    let started = Instant::now();
    for (i, data) in files.iter().enumerate() {
        let temp = folder.join(format!(".temp-{i}"));
        let mut file = File::create_new(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, folder.join(format!("f{i:05}")))?;
        handle.sync_all()?;
    }
    let took = started.elapsed();
    std::fs::remove_dir_all(&folder)?;
    Ok(files.len() as f64 / took.as_secs_f64())
}
