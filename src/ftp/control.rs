//! The control connection: plain TCP until AUTH TLS (RFC 4217 §4), TLS afterwards, or TLS from the first
//! byte on the implicit port.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::ftp::data::AckingSocket;

/// The control connection before and after AUTH TLS.
pub(crate) enum Control {
    Plain(TcpStream),
    /// On an [`AckingSocket`]: clients that leave Nagle's algorithm on (lftp) send their last handshake
    /// records in two segments, and the second waits for the ACK of the first, which Linux would delay
    /// by 40 ms.
    Tls(Box<TlsStream<AckingSocket>>),
    /// Only while the TLS handshake of AUTH TLS runs, or after it failed.
    Closed,
}

impl Control {
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Control::Tls(_))
    }

    /// The negotiated TLS version; `None` in plaintext.
    pub(crate) fn tls_version(&self) -> Option<crate::directory::TlsVersion> {
        use crate::directory::TlsVersion;
        match self {
            Control::Tls(s) => match s.get_ref().1.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => Some(TlsVersion::Tls13),
                _ => Some(TlsVersion::Tls12),
            },
            _ => None,
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "control connection closed")
}

impl AsyncRead for Control {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Control::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Control::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Control::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Control {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Control::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Control::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Control::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Control::Plain(s) => Pin::new(s).poll_flush(cx),
            Control::Tls(s) => Pin::new(s).poll_flush(cx),
            Control::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Control::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Control::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Control::Closed => Poll::Ready(Ok(())),
        }
    }
}
