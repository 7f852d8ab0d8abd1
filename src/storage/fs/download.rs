//! A download from a file that reads ahead: while one chunk goes out to the client, the next is read on
//! the blocking pool, so disk and network overlap. Two chunk buffers per download, reused; no blocking
//! thread is held between reads. The kernel is told the file is read sequentially, which widens its own
//! read-ahead (uploads bypass the page cache, so a fresh file comes from the disk).

use std::fs::File;
use std::future::Future as _;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::task::JoinHandle;

const CHUNK: usize = 512 * 1024;

pub(super) struct ReadAhead {
    file: Arc<File>,
    /// Where the next chunk to request starts.
    offset: u64,
    /// The chunk being served and how much of it is gone.
    current: Vec<u8>,
    served: usize,
    next: Option<JoinHandle<io::Result<Vec<u8>>>>,
    /// The buffer of the chunk served before, for the next read.
    spare: Option<Vec<u8>>,
    /// A short read was seen: nothing more to request.
    eof: bool,
}

impl ReadAhead {
    pub(super) fn new(file: File, offset: u64) -> ReadAhead {
        advise_sequential(&file);
        ReadAhead { file: Arc::new(file), offset, current: Vec::new(), served: 0, next: None, spare: None, eof: false }
    }

    fn request(&mut self) {
        if self.eof || self.next.is_some() {
            return;
        }
        let (file, offset) = (self.file.clone(), self.offset);
        let mut chunk = self.spare.take().unwrap_or_default();
        self.offset += CHUNK as u64;
        self.next = Some(tokio::task::spawn_blocking(move || {
            chunk.resize(CHUNK, 0);
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
            let left = &this.current[this.served..];
            if !left.is_empty() {
                let n = left.len().min(out.remaining());
                out.put_slice(&left[..n]);
                this.served += n;
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
            this.spare = Some(std::mem::replace(&mut this.current, chunk));
            this.served = 0;
        }
    }
}

/// Tells the kernel the file will be read front to back, so it reads further ahead.
fn advise_sequential(file: &File) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: the descriptor is open for the duration of the call; the call only sets a read-ahead hint.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
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
