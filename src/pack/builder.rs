//! Assembles one pack in memory: seals each blob as it is added and, on `finish`, seals
//! the table of contents and names the pack by the hash of its bytes. Pure: no I/O, so a
//! caller decides when and where a full pack is written.
//!
//! The pack's key is made when its first frame arrives, from fresh randomness hashed
//! with that frame (`RepoKeys::hedged`): should the random source ever repeat, two packs
//! share a key only if they start with the same bytes.
//!
//! A pack's first byte sits at an aligned address (`crate::direct_io`), so a local store
//! can write it past the page cache, and its buffer can be handed back for the next pack
//! so a long backup does not fault in fresh memory for every pack.

use crate::compress::Encoding;
use crate::crypto::aead::{counter_nonce, Cipher};
use crate::crypto::keys::{RepoKeys, PACK_KIND};
use crate::direct_io;
use crate::error::Result;
use crate::format::pack::{self, Entry, PackClass};
use crate::id::{BlobId, PackId};

pub struct PackBuilder {
    /// `Some` in a repository with maintenance (pack version 5).
    class: Option<PackClass>,
    /// Made with the first frame.
    cipher: Option<Cipher>,
    /// A version 5 data pack's maintenance table key, made with the pack key.
    table_cipher: Option<Cipher>,
    header: [u8; pack::HEADER_LEN],
    buf: Vec<u8>,
    /// Where the pack starts in `buf`: the padding before it aligns its first byte.
    start: usize,
    entries: Vec<Entry>,
}

/// A complete pack, ready to store.
pub struct FinishedPack {
    pub id: PackId,
    buf: Vec<u8>,
    start: usize,
    pub entries: Vec<Entry>,
}

impl FinishedPack {
    /// The pack's bytes, as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The memory the pack was built in, for [`PackBuilder::reusing`].
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}

impl PackBuilder {
    /// A builder for a pack of about `capacity` bytes, of version 5 and `class` in a
    /// repository with maintenance, else of version 3 or 4.
    pub fn new(capacity: usize, class: Option<PackClass>) -> Self {
        Self::reusing(capacity, class, Vec::new())
    }

    /// Like `new`, building in `buf` (the buffer of an earlier pack) when it is big enough.
    pub fn reusing(capacity: usize, class: Option<PackClass>, mut buf: Vec<u8>) -> Self {
        // Blobs may overshoot the target size by one blob; a pack that outgrows the buffer
        // still works, it only loses its alignment (and is then written through the cache).
        let start = direct_io::align_empty(&mut buf, capacity + capacity / 16);
        // The header's place; it is written with the first frame.
        buf.extend_from_slice(&[0u8; pack::HEADER_LEN]);
        PackBuilder {
            class,
            cipher: None,
            table_cipher: None,
            header: [0; pack::HEADER_LEN],
            buf,
            start,
            entries: Vec::new(),
        }
    }

    /// Seal and append a frame of one blob. `encoded` is the compress-encoded plaintext.
    pub fn add(&mut self, keys: &RepoKeys, id: BlobId, encoded: Vec<u8>, raw_length: u32) -> Result<()> {
        self.add_frame(keys, &[(id, raw_length)], &Encoding::Encoded(encoded))
    }

    /// Seal and append a frame: `encoded` is the compress-encoding of the concatenated
    /// plaintexts of `blobs` (id and plaintext length each, all of one kind), in order.
    /// It is written into the pack and sealed there, so it is copied once.
    pub fn add_frame(
        &mut self,
        keys: &RepoKeys,
        blobs: &[(BlobId, u32)],
        encoded: &Encoding<'_>,
    ) -> Result<()> {
        let at = self.buf.len();
        encoded.append_to(&mut self.buf);
        if self.cipher.is_none() {
            if let Err(e) = self.make_keys(keys, blake3::hash(&self.buf[at..]).as_bytes()) {
                self.buf.truncate(at);
                return Err(e);
            }
        }
        let cipher = self.cipher.as_ref().expect("made above");
        let offset = (at - self.start) as u32;
        let aad = pack::frame_aad(pack::VERSION, &blobs[0].0);
        cipher.seal_tail(&counter_nonce(offset as u64), &aad, &mut self.buf, at);
        let length = (self.buf.len() - at) as u32;
        let mut start = 0;
        for &(id, raw_length) in blobs {
            self.entries.push(Entry { id, offset, length, raw_length, start });
            start += raw_length;
        }
        Ok(())
    }

    /// The pack's key (and a data pack's maintenance table key), and so its header.
    fn make_keys(&mut self, keys: &RepoKeys, content: &[u8; 32]) -> Result<()> {
        let eph = match self.class {
            None => {
                let (eph, key) = keys.new_sealed_object_key(PACK_KIND, content)?;
                self.cipher = Some(Cipher::new(&key));
                eph
            }
            Some(PackClass::Data) => {
                let (eph, key, table) =
                    keys.new_data_pack_keys(PACK_KIND, pack::MAINTENANCE_TABLE_KIND, content)?;
                self.cipher = Some(Cipher::new(&key));
                self.table_cipher = Some(Cipher::new(&table));
                eph
            }
            Some(PackClass::References) => {
                let (eph, key) = keys.new_maintenance_sealed_key(pack::REFERENCES_PACK_KIND, content)?;
                self.cipher = Some(Cipher::new(&key));
                eph
            }
            Some(PackClass::Moved) => {
                return Err(crate::error::Error::invalid(
                    "moved frames are packed by MovedPack, not sealed anew",
                ))
            }
        };
        self.header = pack::header(&eph, keys.write_epoch(), self.class);
        self.buf[self.start..self.start + pack::HEADER_LEN].copy_from_slice(&self.header);
        Ok(())
    }

    /// Bytes in the pack so far.
    pub fn size(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seal the table of contents. A pack holds at least one frame: callers finish only
    /// builders that are not empty.
    pub fn finish(self) -> FinishedPack {
        let PackBuilder { cipher, table_cipher, header, mut buf, start, entries, .. } = self;
        let cipher = cipher.expect("a pack is finished only after its first frame");
        if let Some(table_cipher) = table_cipher {
            let mut table = pack::encode_toc(&entries);
            table_cipher.seal_in_place(&pack::MAINTENANCE_TABLE_NONCE, &header, &mut table);
            buf.extend_from_slice(&table);
        }
        let mut toc = pack::encode_toc(&entries);
        cipher.seal_in_place(&pack::TOC_NONCE, &header, &mut toc);
        buf.extend_from_slice(&toc);
        buf.extend_from_slice(&(toc.len() as u32).to_le_bytes());
        buf.extend_from_slice(pack::TRAILER_MAGIC);
        let id = PackId(*blake3::hash(&buf[start..]).as_bytes());
        FinishedPack { id, buf, start, entries }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress;
    use crate::crypto::keys::MasterKey;
    use crate::format::pack::MAX_BLOB;

    #[test]
    fn packs_start_aligned_and_reuse_their_buffer() {
        let m = MasterKey::generate().unwrap();
        let keys = m.derive(m.public_key(), [0; 32]).unwrap();
        let data = b"<policy name='gateway'/>".repeat(100);
        let id = BlobId::Chunk(keys.chunk_id(&data));
        let mut b = PackBuilder::new(1 << 16, None);
        b.add(&keys, id, compress::encode(&data, 3), data.len() as u32).unwrap();
        let first = b.finish();
        assert!(direct_io::is_aligned(first.bytes()));
        assert_eq!(first.id.0, *blake3::hash(first.bytes()).as_bytes());
        assert_eq!(first.entries[0].offset as usize, pack::HEADER_LEN, "offsets count from the pack's start");
        let (first_bytes, first_ptr) = (first.bytes().to_vec(), first.bytes().as_ptr());

        let mut b = PackBuilder::reusing(1 << 16, None, first.into_buffer());
        b.add(&keys, id, compress::encode(&data, 3), data.len() as u32).unwrap();
        let second = b.finish();
        assert_eq!(second.bytes().as_ptr(), first_ptr, "the memory of the first pack is reused");
        assert_eq!(second.bytes().len(), first_bytes.len());
        assert_ne!(second.bytes(), &first_bytes[..], "a new pack key, so new bytes");

        // A pack that outgrows its buffer moves and may lose its alignment; it stays whole.
        let big = vec![7u8; (MAX_BLOB / 8) as usize];
        let mut b = PackBuilder::reusing(1 << 16, None, second.into_buffer());
        b.add(&keys, BlobId::Chunk(keys.chunk_id(&big)), compress::encode(&big, 3), big.len() as u32)
            .unwrap();
        b.add(&keys, id, compress::encode(&data, 3), data.len() as u32).unwrap();
        let third = b.finish();
        assert_eq!(third.id.0, *blake3::hash(third.bytes()).as_bytes());
        assert_eq!(&third.bytes()[..4], pack::MAGIC);
    }
}
