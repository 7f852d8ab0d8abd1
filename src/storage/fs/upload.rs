//! An upload into its hidden temporary file.
//!
//! Bytes are gathered into 1 MiB batches; one batch is written on the blocking pool while the next fills
//! from the network, so disk and network overlap. When the data must be durable before 226 (fsync on),
//! full batches go through a second descriptor opened with `O_DIRECT`: the disk reads them straight from
//! the batch, so the server's CPU does not copy every byte into the page cache, and the fsync at commit
//! has only the last partial batch left to flush. Where `O_DIRECT` is not available (tmpfs, some network
//! file systems) or the upload starts at an unaligned offset (resume, append), every batch is written
//! through the page cache, and writeback is started every [`WRITEBACK_EVERY`] bytes instead.
//!
//! A resumed upload (REST + STOR, APPE) keeps a prefix of the old file. That copy runs with the first
//! write or the commit, inside the transfer, so the session has answered 150 and still reads ABOR while a
//! large file is copied.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use super::{blocking, io_error, sync_dir_if, TempPath};
use crate::storage::{ErrorKind, StorageError, Upload};

/// Bytes gathered before one write on the blocking pool; two such buffers per upload at most.
const WRITE_BATCH: usize = 1024 * 1024;
/// Alignment `O_DIRECT` needs for buffers, offsets and lengths on every common file system.
const DIRECT_ALIGN: usize = 4096;
/// Without `O_DIRECT` and with fsync on, writeback is started after this many bytes.
const WRITEBACK_EVERY: u64 = 32 * 1024 * 1024;

pub(super) struct FsUpload {
    file: Arc<File>,
    /// The same file opened with `O_DIRECT`, opened at the first full batch.
    direct: Direct,
    /// Where the next batch goes.
    offset: u64,
    /// The old file and how many of its bytes to keep, until they are copied.
    prefix: Option<(PathBuf, u64)>,
    filling: Batch,
    /// The batch being written; it hands its buffer back for reuse.
    in_flight: Option<tokio::task::JoinHandle<io::Result<Batch>>>,
    /// Bytes written through the page cache since writeback was last started.
    unsynced: u64,
    temp: TempPath,
    target: PathBuf,
    fsync: bool,
}

/// Whether full batches bypass the page cache.
enum Direct {
    /// Not tried yet: small files never fill a batch and never pay for a second open.
    Untried,
    Open(Arc<File>),
    Unavailable,
}

/// A batch buffer whose window `[start, start + WRITE_BATCH)` is aligned for `O_DIRECT`. Only its
/// capacity is allocated up front: the memory is touched as bytes arrive, so a 4 KiB upload costs 4 KiB
/// of writes, not a zeroed MiB.
struct Batch {
    /// `start` bytes of padding, then the data.
    buf: Vec<u8>,
    start: usize,
}

impl Batch {
    fn new() -> Batch {
        let mut buf = Vec::<u8>::with_capacity(WRITE_BATCH + DIRECT_ALIGN);
        let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
        buf.resize(start, 0);
        Batch { buf, start }
    }

    fn filled(&self) -> usize {
        self.buf.len() - self.start
    }

    fn room(&self) -> usize {
        WRITE_BATCH - self.filled()
    }

    /// Appends `bytes`, which must fit in [`Batch::room`]; within the capacity, so the window never moves.
    fn push(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.len() <= self.room());
        self.buf.extend_from_slice(bytes);
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn clear(&mut self) {
        self.buf.truncate(self.start);
    }
}

impl FsUpload {
    /// `file` is the empty temporary file; the first `keep` bytes of the file at `target` come first.
    pub(super) fn new(file: File, temp: TempPath, target: PathBuf, fsync: bool, keep: u64) -> FsUpload {
        let offset = keep;
        let prefix = (keep > 0).then(|| (target.clone(), keep));
        let direct = if fsync && offset % DIRECT_ALIGN as u64 == 0 { Direct::Untried } else { Direct::Unavailable };
        FsUpload {
            file: Arc::new(file),
            direct,
            offset,
            prefix,
            filling: Batch::new(),
            in_flight: None,
            unsynced: 0,
            temp,
            target,
            fsync,
        }
    }

    /// Waits for the batch in flight; returns its buffer, emptied.
    async fn settle(&mut self) -> Result<Option<Batch>, StorageError> {
        match self.in_flight.take() {
            Some(task) => {
                let batch = task.await.map_err(|e| StorageError::with_source(ErrorKind::Internal, e))?;
                batch.map(Some).map_err(io_error)
            }
            None => Ok(None),
        }
    }

    /// The `O_DIRECT` descriptor, opened on first use.
    fn direct_file(&mut self) -> Option<Arc<File>> {
        if let Direct::Untried = self.direct {
            self.direct = match OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(self.temp.path()) {
                Ok(file) => Direct::Open(Arc::new(file)),
                Err(_) => Direct::Unavailable,
            };
        }
        match &self.direct {
            Direct::Open(file) => Some(file.clone()),
            _ => None,
        }
    }

    /// Copies the kept prefix of the old file, once, before anything else is written.
    async fn copy_prefix(&mut self) -> Result<(), StorageError> {
        if let Some((source, keep)) = self.prefix.take() {
            let file = self.file.clone();
            blocking(move || super::copy_prefix(&source, &file, keep)).await?;
        }
        Ok(())
    }

    /// Sends the filled batch to the blocking pool, after the previous one finished.
    async fn write_batch(&mut self) -> Result<(), StorageError> {
        self.copy_prefix().await?;
        let spare = self.settle().await?.unwrap_or_else(Batch::new);
        let mut batch = std::mem::replace(&mut self.filling, spare);
        let offset = self.offset;
        self.offset += batch.filled() as u64;
        // Only whole batches keep offsets and lengths aligned; the last, partial one uses the page cache.
        let direct = if batch.filled() == WRITE_BATCH { self.direct_file() } else { None };
        let kick = direct.is_none() && self.fsync && {
            self.unsynced += batch.filled() as u64;
            self.unsynced >= WRITEBACK_EVERY
        };
        if kick {
            self.unsynced = 0;
        }
        let file = self.file.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let written = match &direct {
                Some(direct) => direct.write_all_at(batch.data(), offset),
                None => file.write_all_at(batch.data(), offset),
            };
            match written {
                // A file system may still refuse direct I/O for this file; the page cache always works.
                Err(e) if direct.is_some() && e.raw_os_error() == Some(libc::EINVAL) => {
                    file.write_all_at(batch.data(), offset)?
                }
                other => other?,
            }
            if kick {
                start_writeback(&file);
            }
            batch.clear();
            Ok(batch)
        }));
        Ok(())
    }
}

#[async_trait]
impl Upload for FsUpload {
    async fn write(&mut self, mut buf: &[u8]) -> Result<(), StorageError> {
        while !buf.is_empty() {
            let (now, later) = buf.split_at(self.filling.room().min(buf.len()));
            self.filling.push(now);
            buf = later;
            if self.filling.room() == 0 {
                self.write_batch().await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        self.copy_prefix().await?;
        self.settle().await?;
        let FsUpload { file, direct, temp, target, fsync, filling, offset, .. } = *self;
        drop(direct);
        // The last, partial batch (a small file's only one) is written in the same trip to the blocking
        // pool as the fsync and the rename: one hand-off per small file instead of two.
        blocking(move || {
            file.write_all_at(filling.data(), offset).map_err(io_error)?;
            if fsync {
                file.sync_all().map_err(io_error)?;
            }
            let size = file.metadata().map_err(io_error)?.len();
            std::fs::rename(temp.path(), &target).map_err(io_error)?;
            temp.disarm();
            sync_dir_if(fsync, target.parent().unwrap_or(&target))?;
            Ok(size)
        })
        .await
    }

    async fn abort(mut self: Box<Self>) {
        let _ = self.settle().await;
        let FsUpload { temp, .. } = *self;
        let _ = tokio::fs::remove_file(temp.path()).await;
        temp.disarm();
    }
}

/// Asks the kernel to start writing the file's dirty pages now, without waiting for them.
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: the descriptor is open for the duration of the call; the call only schedules I/O.
    let result = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if result != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "sync_file_range failed; fsync will do all the work");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_windows_are_aligned_for_direct_io() {
        for _ in 0..8 {
            let batch = Batch::new();
            assert_eq!((batch.buf.as_ptr() as usize + batch.start) % DIRECT_ALIGN, 0);
            assert_eq!(batch.room(), WRITE_BATCH);
        }
    }

    /// Sizes around the batch boundary, with fsync (direct I/O for whole batches) and without, and an
    /// upload resumed at an unaligned offset.
    #[tokio::test]
    async fn uploads_round_trip_around_batch_boundaries() {
        use crate::storage::fs::FsStorage;
        use crate::storage::{Storage, StorageKey, WriteMode};
        use tokio::io::AsyncReadExt as _;

        let dir = tempfile::tempdir().unwrap();
        for fsync in [true, false] {
            let storage = FsStorage::new(dir.path().join(format!("fsync-{fsync}")), fsync).unwrap();
            for (i, len) in [0, 1, 4095, 4096, WRITE_BATCH - 1, WRITE_BATCH, WRITE_BATCH + 1, 3 * WRITE_BATCH + 777]
                .into_iter()
                .enumerate()
            {
                let data: Vec<u8> = (0..len).map(|n| (n * 31 + i) as u8).collect();
                let key = StorageKey::from_normalised(format!("f{i}"));
                let mut upload = storage.put(&key, WriteMode::Create).await.unwrap();
                // Odd write sizes, as TLS records arrive.
                for chunk in data.chunks(16_381) {
                    upload.write(chunk).await.unwrap();
                }
                assert_eq!(upload.commit().await.unwrap(), len as u64);
                let mut back = Vec::new();
                storage.get(&key, 0).await.unwrap().reader.read_to_end(&mut back).await.unwrap();
                assert!(back == data, "{len} bytes, fsync {fsync}");

                // Resume at an unaligned offset: the page-cache path.
                let keep = len / 3;
                let mut upload = storage.put(&key, WriteMode::Resume(keep as u64)).await.unwrap();
                upload.write(&data[keep..]).await.unwrap();
                upload.commit().await.unwrap();
                let mut back = Vec::new();
                storage.get(&key, 0).await.unwrap().reader.read_to_end(&mut back).await.unwrap();
                assert!(back == data, "resumed {len} bytes at {keep}, fsync {fsync}");
            }
        }
    }
}
