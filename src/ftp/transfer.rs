//! The data path of RETR, STOR/APPE/STOU and the listings (RFC 959 §3.4 stream mode, §3.1.1 ASCII type).
//!
//! A transfer runs as its own task once the session has sent 150. It owns the data connection and the
//! storage handle, stops at the session's cancellation token (ABOR, QUIT, shutdown) and ends with the one
//! reply that closes the command: 226 only after the storage confirmed the data.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_util::stream::BoxStream;
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::data::{DataPlan, DataStream, DataTls};
use super::error;
use super::reply::Reply;
use crate::storage::{Download, ErrorKind, StorageError, Upload};

const BUFFER: usize = 256 * 1024;
/// After sending a file, how long to wait for the client to close its side so that closing ours cannot
/// reset the connection under data the client has not read yet.
const LINGER: Duration = Duration::from_secs(5);

pub enum Job {
    Send {
        download: Download,
        ascii: bool,
    },
    Receive {
        upload: Box<dyn Upload>,
        ascii: bool,
        name: String,
    },
    /// Listing lines, each without CR LF.
    List {
        lines: BoxStream<'static, Result<String, StorageError>>,
    },
}

/// What the session learns when a transfer ends.
pub struct Outcome {
    pub reply: Reply,
    pub bytes: u64,
    pub duration: Duration,
}

/// Where the data connection comes from.
pub struct Connect {
    pub plan: DataPlan,
    /// The control connection's client address, for the log.
    pub peer: IpAddr,
    /// For the TCP connection and for the TLS handshake each.
    pub timeout: Duration,
}

/// Makes the data connection, reports it through `connected` (the session answers 150), secures it and
/// moves the data. `stall` bounds how long any single read or write may make no progress.
pub async fn run(
    connect: Connect,
    tls: Option<DataTls>,
    stall: Duration,
    job: Job,
    cancel: CancellationToken,
    connected: oneshot::Sender<()>,
) -> Outcome {
    let started = Instant::now();
    let timeout = connect.timeout;
    let connecting = connect.plan.connect(tls, timeout, move || {
        let _ = connected.send(());
    });
    let secured = tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(None),
        s = connecting => s.map_err(Some),
    };
    let stream = match secured {
        Ok(stream) => stream,
        Err(reason) => {
            if let Job::Receive { upload, .. } = job {
                upload.abort().await;
            }
            let reply = match reason {
                Some(e) => {
                    tracing::warn!(peer = %connect.peer, error = %e, "data connection refused");
                    error::data_reply(&e)
                }
                None => Reply::new(426, "Transfer aborted"),
            };
            return Outcome { reply, bytes: 0, duration: started.elapsed() };
        }
    };
    let (reply, bytes) = match job {
        Job::Send { download, ascii } => send(stream, download, ascii, stall, &cancel).await,
        Job::Receive { upload, ascii, name } => receive(stream, upload, ascii, &name, stall, &cancel).await,
        Job::List { lines } => list(stream, lines, stall, &cancel).await,
    };
    Outcome { reply, bytes, duration: started.elapsed() }
}

async fn send(
    mut stream: DataStream,
    download: Download,
    ascii: bool,
    stall: Duration,
    cancel: &CancellationToken,
) -> (Reply, u64) {
    let mut sent = 0u64;
    let copy = async {
        let mut reader = download.reader;
        // Capacity only: reads fill the spare room, so no transfer pays for zeroing a buffer first.
        let mut buf = Vec::with_capacity(BUFFER);
        let mut converted = Vec::new();
        let mut last_was_cr = false;
        loop {
            buf.clear();
            if timed(stall, reader.read_buf(&mut buf)).await.map_err(Side::Storage)? == 0 {
                break;
            }
            // Whatever else the storage already has waiting joins this write: S3 bodies arrive in chunks
            // of a few KiB, and one TLS write (and one syscall) per chunk costs more than the copy.
            while buf.len() < BUFFER {
                match reader.read_buf(&mut buf).now_or_never() {
                    Some(Ok(more)) if more > 0 => {}
                    Some(Err(e)) => return Err(Side::Storage(e)),
                    // Nothing waiting, or the end (which the next read reports again).
                    _ => break,
                }
            }
            let n = buf.len();
            let chunk = if ascii {
                converted.clear();
                to_network_ascii(&buf[..n], &mut converted, &mut last_was_cr);
                &converted[..]
            } else {
                &buf[..n]
            };
            timed(stall, stream.write_all(chunk)).await.map_err(Side::Client)?;
            sent += n as u64;
        }
        timed(stall, stream.shutdown()).await.map_err(Side::Client)?;
        linger(&mut stream).await;
        Ok::<(), Side>(())
    };
    let result = tokio::select! {
        biased;
        _ = cancel.cancelled() => return (Reply::new(426, "Transfer aborted"), sent),
        r = copy => r,
    };
    match result {
        Ok(()) => (Reply::new(226, format!("Transfer complete ({sent} bytes)")), sent),
        Err(Side::Client(e)) => {
            tracing::info!(error = %e, "download: data connection broke");
            (Reply::new(426, "Data connection closed; transfer aborted"), sent)
        }
        Err(Side::Storage(e)) => {
            tracing::warn!(error = %e, "download: reading from storage failed");
            (Reply::new(451, "Reading the file failed; transfer aborted"), sent)
        }
    }
}

async fn receive(
    mut stream: DataStream,
    mut upload: Box<dyn Upload>,
    ascii: bool,
    name: &str,
    stall: Duration,
    cancel: &CancellationToken,
) -> (Reply, u64) {
    let mut received = 0u64;
    let pump = async {
        let mut buf = Vec::with_capacity(BUFFER);
        let mut converted = Vec::new();
        let mut pending_cr = false;
        loop {
            buf.clear();
            let n = timed(stall, stream.read_buf(&mut buf)).await.map_err(Failure::Client)?;
            if n == 0 {
                break;
            }
            received += n as u64;
            let chunk = if ascii {
                converted.clear();
                from_network_ascii(&buf[..n], &mut converted, &mut pending_cr);
                &converted[..]
            } else {
                &buf[..n]
            };
            upload.write(chunk).await.map_err(Failure::Storage)?;
        }
        if pending_cr {
            upload.write(b"\r").await.map_err(Failure::Storage)?;
        }
        // Answer the client's close_notify before the (possibly slow) commit; clients such as Python's
        // ftplib wait for it before they read the final reply.
        let _ = timed(stall, stream.shutdown()).await;
        Ok::<(), Failure>(())
    };
    let result = tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Failure::Aborted),
        r = pump => r,
    };
    match result {
        Ok(()) => match upload.commit().await {
            Ok(size) => (Reply::new(226, format!("Transfer complete ({size} bytes stored as {name})")), received),
            Err(e) => (error::storage_reply(&e, "storing the file"), received),
        },
        // The store failed for longer than its retries: what it confirmed may be kept, as when the client
        // goes away.
        Err(Failure::Storage(e)) if e.kind() == ErrorKind::Transient => {
            let kept = upload.interrupt().await;
            (error::storage_reply(&e.with_kept(kept), "storing the file"), received)
        }
        Err(Failure::Storage(e)) => {
            upload.abort().await;
            (error::storage_reply(&e, "storing the file"), received)
        }
        Err(failure) => {
            // The client stopped: the backend may keep the confirmed part for a REST + STOR or APPE.
            let kept = upload.interrupt().await;
            let what = match failure {
                Failure::Aborted => "Transfer aborted",
                Failure::Client(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    tracing::warn!(
                        received,
                        "upload: data connection closed without TLS close_notify; possibly truncated"
                    );
                    "Data connection closed without TLS close_notify"
                }
                Failure::Client(e) => {
                    tracing::info!(error = %e, "upload: data connection broke");
                    "Data connection broke"
                }
                Failure::Storage(_) => unreachable!("handled above"),
            };
            let reply = match kept {
                Some(bytes) => error::kept_reply(426, what, bytes),
                None => Reply::new(426, format!("{what}; nothing was stored")),
            };
            (reply, received)
        }
    }
}

async fn list(
    mut stream: DataStream,
    mut lines: BoxStream<'static, Result<String, StorageError>>,
    stall: Duration,
    cancel: &CancellationToken,
) -> (Reply, u64) {
    let mut sent = 0u64;
    let copy = async {
        let mut out = Vec::with_capacity(16 * 1024);
        while let Some(line) = lines.next().await {
            let line = line.map_err(Failure::Storage)?;
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
            if out.len() >= 16 * 1024 {
                timed(stall, stream.write_all(&out)).await.map_err(Failure::Client)?;
                sent += out.len() as u64;
                out.clear();
            }
        }
        timed(stall, stream.write_all(&out)).await.map_err(Failure::Client)?;
        sent += out.len() as u64;
        timed(stall, stream.shutdown()).await.map_err(Failure::Client)?;
        linger(&mut stream).await;
        Ok::<(), Failure>(())
    };
    let result = tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Failure::Aborted),
        r = copy => r,
    };
    match result {
        Ok(()) => (Reply::new(226, "Directory listing sent"), sent),
        Err(Failure::Aborted) => (Reply::new(426, "Listing aborted"), sent),
        Err(Failure::Client(_)) => (Reply::new(426, "Data connection closed; listing aborted"), sent),
        Err(Failure::Storage(e)) => (error::storage_reply(&e, "listing"), sent),
    }
}

/// One I/O step that must make progress within `stall`.
async fn timed<T>(stall: Duration, io: impl std::future::Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    match tokio::time::timeout(stall, io).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no progress on the data connection")),
    }
}

/// Waits briefly for the client to close its side; see [`LINGER`].
async fn linger(stream: &mut DataStream) {
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

enum Side {
    Client(std::io::Error),
    Storage(std::io::Error),
}

enum Failure {
    Aborted,
    Client(std::io::Error),
    Storage(StorageError),
}

/// TYPE A on the way out: bare LF becomes CR LF (RFC 959 §3.1.1.1).
fn to_network_ascii(input: &[u8], out: &mut Vec<u8>, last_was_cr: &mut bool) {
    for &b in input {
        if b == b'\n' && !*last_was_cr {
            out.push(b'\r');
        }
        out.push(b);
        *last_was_cr = b == b'\r';
    }
}

/// TYPE A on the way in: CR LF becomes LF; a CR not followed by LF is kept.
fn from_network_ascii(input: &[u8], out: &mut Vec<u8>, pending_cr: &mut bool) {
    for &b in input {
        if *pending_cr {
            *pending_cr = false;
            if b != b'\n' {
                out.push(b'\r');
            }
        }
        if b == b'\r' {
            *pending_cr = true;
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(chunks: &[&[u8]]) -> Vec<u8> {
        let (mut out, mut cr) = (Vec::new(), false);
        for c in chunks {
            to_network_ascii(c, &mut out, &mut cr);
        }
        out
    }

    fn inbound(chunks: &[&[u8]]) -> Vec<u8> {
        let (mut out, mut cr) = (Vec::new(), false);
        for c in chunks {
            from_network_ascii(c, &mut out, &mut cr);
        }
        if cr {
            out.push(b'\r');
        }
        out
    }

    #[test]
    fn ascii_out_adds_cr_once_even_across_chunks() {
        assert_eq!(outbound(&[b"a\nb\r\nc"]), b"a\r\nb\r\nc");
        assert_eq!(outbound(&[b"a\r", b"\nb\n"]), b"a\r\nb\r\n");
    }

    #[test]
    fn ascii_in_strips_cr_before_lf_even_across_chunks() {
        assert_eq!(inbound(&[b"a\r\nb\rc\r"]), b"a\nb\rc\r");
        assert_eq!(inbound(&[b"a\r", b"\nb"]), b"a\nb");
    }
}
