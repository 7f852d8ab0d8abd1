//! Whole-file checksums computed while an upload streams through, for HASH (draft-bryan-ftpext-hash) to
//! answer without reading the file again.
//!
//! A [`Digest`] can be saved between blocks and continued later: a parked S3 upload keeps the state of its
//! committed parts so that REST + STOR can carry on, and an object keeps its state so that APPE can extend
//! it. SHA-256 is therefore kept as the raw compression state (eight words, the length and the bytes of an
//! unfinished block) rather than a finished hash; finishing is cheap and happens when a client asks.

use serde::{Deserialize, Serialize};
use sha2::digest::generic_array::GenericArray;

const BLOCK: usize = 64;
const SHA256_IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// The running checksums of a byte stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Bytes seen so far.
    pub len: u64,
    /// CRC-32 (IEEE, as zlib) of those bytes.
    pub crc32: u32,
    /// SHA-256 compression state after the last whole block.
    sha256: [u32; 8],
    /// The bytes after the last whole block (fewer than 64), hex.
    #[serde(with = "hex_bytes")]
    tail: Vec<u8>,
}

impl Default for Digest {
    fn default() -> Self {
        Digest { len: 0, crc32: 0, sha256: SHA256_IV, tail: Vec::new() }
    }
}

impl Digest {
    pub fn update(&mut self, mut data: &[u8]) {
        self.crc32 = {
            let mut crc = crc32fast::Hasher::new_with_initial_len(self.crc32, self.len);
            crc.update(data);
            crc.finalize()
        };
        self.len += data.len() as u64;
        if !self.tail.is_empty() {
            let take = (BLOCK - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < BLOCK {
                return;
            }
            compress(&mut self.sha256, &self.tail);
            self.tail.clear();
        }
        let whole = data.len() / BLOCK * BLOCK;
        compress(&mut self.sha256, &data[..whole]);
        self.tail.extend_from_slice(&data[whole..]);
    }

    /// The finished SHA-256 of everything seen.
    pub fn sha256(&self) -> [u8; 32] {
        let mut state = self.sha256;
        let mut last = self.tail.clone();
        last.push(0x80);
        while last.len() % BLOCK != BLOCK - 8 {
            last.push(0);
        }
        last.extend_from_slice(&(self.len * 8).to_be_bytes());
        compress(&mut state, &last);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// A compact text form for the directory.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a digest always serialises")
    }

    pub fn from_text(text: &str) -> Option<Digest> {
        serde_json::from_str::<Digest>(text).ok().filter(|d| d.tail.len() < BLOCK && d.len % 64 == d.tail.len() as u64)
    }
}

/// Feeds whole 64-byte blocks to SHA-256's compression function, in place (no copy of the data).
fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % BLOCK, 0);
    for block in blocks.chunks_exact(BLOCK) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd hex length"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn reference(data: &[u8]) -> ([u8; 32], u32) {
        (sha2::Sha256::digest(data).into(), crc32fast::hash(data))
    }

    #[test]
    fn matches_the_reference_whatever_the_split() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for split in [0, 1, 63, 64, 65, 127, 128, 1000, 4999, 5000] {
            let mut d = Digest::default();
            d.update(&data[..split]);
            // A save and a load in the middle, as a parked upload does.
            let mut d = Digest::from_text(&d.to_text()).unwrap();
            d.update(&data[split..]);
            assert_eq!((d.sha256(), d.crc32), reference(&data), "split at {split}");
            assert_eq!(d.len, data.len() as u64);
        }
        assert_eq!(Digest::default().sha256(), reference(b"").0);
    }

    #[test]
    fn many_small_writes_equal_one_big_one() {
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut d = Digest::default();
        for chunk in data.chunks(7) {
            d.update(chunk);
        }
        assert_eq!((d.sha256(), d.crc32), reference(&data));
    }

    #[test]
    fn damaged_text_is_refused() {
        assert!(Digest::from_text("{").is_none());
        let mut d = Digest::default();
        d.update(b"abc");
        let text = d.to_text().replace("\"len\":3", "\"len\":4");
        assert!(Digest::from_text(&text).is_none());
    }
}
