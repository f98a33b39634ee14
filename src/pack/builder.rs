//! Assembles one pack in memory: seals each blob as it is added and, on `finish`, seals
//! the table of contents and names the pack by the hash of its bytes. Pure: no I/O, so a
//! caller decides when and where a full pack is written.

use crate::crypto::aead::{counter_nonce, Cipher};
use crate::crypto::keys::RepoKeys;
use crate::error::Result;
use crate::format::pack::{self, Entry};
use crate::id::{BlobId, PackId};

pub struct PackBuilder {
    cipher: Cipher,
    header: [u8; pack::HEADER_LEN],
    buf: Vec<u8>,
    entries: Vec<Entry>,
}

/// A complete pack, ready to store.
pub struct FinishedPack {
    pub id: PackId,
    pub bytes: Vec<u8>,
    pub entries: Vec<Entry>,
}

impl PackBuilder {
    pub fn new(keys: &RepoKeys, capacity: usize) -> Result<Self> {
        let (eph, key) = keys.new_sealed_object_key()?;
        let header = pack::header(&eph);
        let mut buf = Vec::with_capacity(capacity + capacity / 16);
        buf.extend_from_slice(&header);
        Ok(PackBuilder { cipher: Cipher::new(&key), header, buf, entries: Vec::new() })
    }

    /// Seal and append a blob. `encoded` is the compress-encoded plaintext.
    pub fn add(&mut self, id: BlobId, mut encoded: Vec<u8>, raw_length: u32) {
        let offset = self.buf.len() as u32;
        self.cipher.seal_in_place(&counter_nonce(offset as u64), &Entry::aad(&id), &mut encoded);
        self.buf.extend_from_slice(&encoded);
        self.entries.push(Entry { id, offset, length: encoded.len() as u32, raw_length });
    }

    /// Bytes in the pack so far.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn finish(self) -> FinishedPack {
        let PackBuilder { cipher, header, mut buf, entries } = self;
        let mut toc = pack::encode_toc(&entries);
        cipher.seal_in_place(&pack::TOC_NONCE, &header, &mut toc);
        buf.extend_from_slice(&toc);
        buf.extend_from_slice(&(toc.len() as u32).to_le_bytes());
        buf.extend_from_slice(pack::TRAILER_MAGIC);
        let id = PackId(*blake3::hash(&buf).as_bytes());
        FinishedPack { id, bytes: buf, entries }
    }
}
