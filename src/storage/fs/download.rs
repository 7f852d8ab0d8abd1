//! A download from a file that reads ahead: while one chunk goes out to the client, the next is read on
//! the blocking pool, so disk and network overlap. At most three chunks exist per download (the one being
//! sent, the one being read, nothing queued beyond), and no blocking thread is held between reads.

use std::fs::File;
use std::future::Future as _;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf as _, Bytes};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::task::JoinHandle;

const CHUNK: usize = 256 * 1024;

pub(super) struct ReadAhead {
    file: Arc<File>,
    /// Where the next chunk to request starts.
    offset: u64,
    current: Bytes,
    next: Option<JoinHandle<io::Result<Vec<u8>>>>,
    /// A short read was seen: nothing more to request.
    eof: bool,
}

impl ReadAhead {
    pub(super) fn new(file: File, offset: u64) -> ReadAhead {
        ReadAhead { file: Arc::new(file), offset, current: Bytes::new(), next: None, eof: false }
    }

    fn request(&mut self) {
        if self.eof || self.next.is_some() {
            return;
        }
        let (file, offset) = (self.file.clone(), self.offset);
        self.offset += CHUNK as u64;
        self.next = Some(tokio::task::spawn_blocking(move || {
            let mut chunk = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match file.read_at(&mut chunk[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            chunk.truncate(filled);
            Ok(chunk)
        }));
    }
}

impl AsyncRead for ReadAhead {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.current.is_empty() {
                let n = this.current.len().min(out.remaining());
                out.put_slice(&this.current[..n]);
                this.current.advance(n);
                this.request();
                return Poll::Ready(Ok(()));
            }
            this.request();
            let Some(next) = this.next.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let chunk = ready!(Pin::new(next).poll(cx));
            this.next = None;
            let chunk = chunk.map_err(io::Error::other)??;
            if chunk.len() < CHUNK {
                this.eof = true;
            }
            if chunk.is_empty() {
                return Poll::Ready(Ok(()));
            }
            this.current = Bytes::from(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;

    use super::*;

    #[tokio::test]
    async fn reads_every_byte_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5] {
            let data: Vec<u8> = (0..len).map(|n| (n % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &data).unwrap();
            for offset in [0, len / 2, len] {
                let mut back = Vec::new();
                let mut reader = ReadAhead::new(File::open(&path).unwrap(), offset as u64);
                reader.read_to_end(&mut back).await.unwrap();
                assert!(back == data[offset..], "{len} bytes from {offset}");
            }
        }
    }
}
