//! The data connection as a byte stream: plain or TLS over a socket that acknowledges what it read at once,
//! and whose reads can be held back while an early TLS handshake is answered.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Holds a data connection's reads back while closed; see [`secure_early`](super::secure_early).
#[derive(Default)]
pub(super) struct ReadGate {
    closed: AtomicBool,
    waker: AtomicWaker,
}

impl ReadGate {
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub(super) fn open(&self) {
        self.closed.store(false, Ordering::Release);
        self.waker.wake();
    }

    fn poll_open(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.closed.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        match self.closed.load(Ordering::Acquire) {
            true => Poll::Pending,
            false => Poll::Ready(()),
        }
    }
}

/// A data connection's socket that acknowledges what it received before it waits for more.
///
/// Linux delays the ACK of a lone segment by up to 40 ms, hoping to send it along with a reply. An upload
/// connection never replies, and clients that leave Nagle's algorithm on (Python's ftplib, lftp) hold
/// their TLS close_notify until their last segment is acknowledged: every upload's end would wait out
/// the delay. So whenever a read finds nothing more to read, the pending ACK goes out at once.
pub struct AckingSocket {
    pub(super) tcp: TcpStream,
    pub(super) gate: Option<Arc<ReadGate>>,
}

impl AckingSocket {
    pub fn new(tcp: TcpStream) -> AckingSocket {
        AckingSocket { tcp, gate: None }
    }
}

impl AsyncRead for AckingSocket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(gate) = &this.gate {
            std::task::ready!(gate.poll_open(cx));
        }
        let socket = &mut this.tcp;
        let polled = Pin::new(&mut *socket).poll_read(cx, buf);
        if polled.is_pending() {
            // Only a hint to the kernel; a failure changes nothing but the timing.
            let _ = socket.set_quickack(true);
        }
        polled
    }
}

impl AsyncWrite for AckingSocket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// A data connection, plain (PROT C) or TLS (PROT P).
pub enum DataStream {
    Plain(AckingSocket),
    Tls(Box<TlsStream<BufReader<AckingSocket>>>),
}

impl AsyncRead for DataStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            DataStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DataStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            DataStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_flush(cx),
            DataStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            DataStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            DataStream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            DataStream::Plain(s) => s.is_write_vectored(),
            DataStream::Tls(s) => s.is_write_vectored(),
        }
    }
}
