//! The bytes the uploads send: pseudo-random, generated once and held in memory (no disk reads are
//! measured), and made unique for every upload by a counter stamped into each 4 KiB.
//!
//! Unique because Garage stores a data block once per content hash and keeps a deleted block for ten
//! minutes (`BLOCK_GC_DELAY`): an upload of bytes it has seen before skips its disk writes, which would
//! favour whichever side uploads second in a round, and every run after the first against the same store.

use bytes::{Bytes, BytesMut};

use crate::stats::pseudo_random;

/// Every 4 KiB carries the stamp: each small file and each of Garage's 1 MiB blocks is then new.
const STAMP_EVERY: usize = 4096;

pub struct Source {
    bytes: Bytes,
    stamp: u64,
}

impl Source {
    /// `tag` keeps stamps of different bench runs apart.
    pub fn new(len: usize, tag: u64) -> Source {
        Source { bytes: Bytes::from(pseudo_random(len)), stamp: tag << 16 }
    }

    /// The bytes with a new stamp. Stamping is in place (a few hundred thousand 8-byte writes for 1 GiB)
    /// when every slice of the previous version has been dropped, and a copy otherwise.
    pub fn fresh(&mut self) -> Bytes {
        self.stamp += 1;
        let stamp = self.stamp.to_le_bytes();
        let mut bytes = BytesMut::from(std::mem::take(&mut self.bytes));
        for block in bytes.chunks_mut(STAMP_EVERY) {
            let n = block.len().min(stamp.len());
            block[..n].copy_from_slice(&stamp[..n]);
        }
        self.bytes = bytes.freeze();
        self.bytes.clone()
    }
}
