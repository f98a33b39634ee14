//! Pack files: immutable containers of sealed blobs, named by the BLAKE3 hash of their
//! bytes.
//!
//! ```text
//! 0    4   magic "CRNP"
//! 4    1   pack version (1)
//! 5    3   reserved, 0
//! 8    32  ephemeral X25519 public key; the pack key comes from it (keys.rs)
//! 40   ..  blobs: AES-256-GCM(pack key, nonce = counter_nonce(offset), aad = kind || id)
//!          of compress::encode(plaintext), each followed by its tag
//! T    L   table of contents: AES-256-GCM(pack key, nonce = 12 x 0xFF, aad = bytes 0..40)
//!          of: u32 count, then count entries (ENTRY_LEN bytes each, see `Entry`)
//! T+L  4   u32 LE: L
//! T+L+4 4  magic "CRNT"
//! ```

use super::Reader;
use crate::crypto::aead::TAG_LEN;
use crate::error::{Error, ErrorKind, Result};
use crate::id::{BlobId, BlobKind};

pub const MAGIC: &[u8; 4] = b"CRNP";
pub const TRAILER_MAGIC: &[u8; 4] = b"CRNT";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 40;
pub const TRAILER_LEN: usize = 8;
pub const TOC_NONCE: [u8; 12] = [0xFF; 12];
/// kind (1) + id (32) + offset (4) + stored length (4) + raw length (4).
pub const ENTRY_LEN: usize = 45;
/// The largest plaintext a blob may have (trees of huge directories included).
pub const MAX_BLOB: u32 = 64 << 20;

/// Where a blob lives in its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub id: BlobId,
    /// Offset of the sealed blob from the start of the pack.
    pub offset: u32,
    /// Sealed length: encoded payload plus tag.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

impl Entry {
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.id.kind() as u8);
        out.extend_from_slice(self.id.bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.raw_length.to_le_bytes());
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let kind = BlobKind::from_byte(r.u8()?)?;
        let id = BlobId::from_parts(kind, r.id()?);
        let e = Entry { id, offset: r.u32()?, length: r.u32()?, raw_length: r.u32()? };
        if e.raw_length > MAX_BLOB || (e.length as usize) < TAG_LEN + 1 || (e.offset as usize) < HEADER_LEN {
            return Err(Error::corrupt(format!("implausible pack entry for {}", e.id)));
        }
        Ok(e)
    }

    /// The AES-GCM associated data of this blob.
    pub fn aad(id: &BlobId) -> [u8; 33] {
        let mut aad = [0u8; 33];
        aad[0] = id.kind() as u8;
        aad[1..].copy_from_slice(id.bytes());
        aad
    }
}

pub fn header(eph_pub: &[u8; 32]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4] = VERSION;
    h[8..].copy_from_slice(eph_pub);
    h
}

/// Check a pack header; returns the ephemeral public key.
pub fn parse_header(bytes: &[u8]) -> Result<[u8; 32]> {
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        return Err(Error::corrupt("not a cairn pack (bad magic)"));
    }
    if bytes[4] != VERSION {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("pack version {} is not supported (this cairn reads {VERSION})", bytes[4]),
        ));
    }
    if bytes[5..8] != [0, 0, 0] {
        return Err(Error::corrupt("pack header reserved bytes are not zero"));
    }
    Ok(bytes[8..40].try_into().expect("32 bytes"))
}

/// Check the trailer of a whole pack; returns the range of the sealed table of contents.
pub fn parse_trailer(pack: &[u8]) -> Result<std::ops::Range<usize>> {
    let n = pack.len();
    if n < HEADER_LEN + TAG_LEN + 4 + TRAILER_LEN || &pack[n - 4..] != TRAILER_MAGIC {
        return Err(Error::corrupt("pack trailer missing (truncated pack?)"));
    }
    let len = u32::from_le_bytes(pack[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    if len < TAG_LEN + 4 || len > n - HEADER_LEN - TRAILER_LEN {
        return Err(Error::corrupt("pack table of contents length does not fit the pack"));
    }
    Ok(n - TRAILER_LEN - len..n - TRAILER_LEN)
}

pub fn encode_toc(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + entries.len() * ENTRY_LEN + TAG_LEN);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        e.write(&mut out);
    }
    out
}

/// Decode an opened table of contents and check every entry lies inside `blob_area`
/// (the bytes between header and table).
pub fn decode_toc(bytes: &[u8], blob_area_end: usize) -> Result<Vec<Entry>> {
    let mut r = Reader::new("pack table of contents", bytes);
    let n = r.count(ENTRY_LEN)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let e = Entry::read(&mut r)?;
        if e.offset as u64 + e.length as u64 > blob_area_end as u64 {
            return Err(Error::corrupt(format!("pack entry for {} points past the blobs", e.id)));
        }
        entries.push(e);
    }
    r.finish()?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{ChunkId, TreeId};

    #[test]
    fn toc_round_trip_and_bounds() {
        let entries = vec![
            Entry { id: BlobId::Chunk(ChunkId([1; 32])), offset: 40, length: 100, raw_length: 90 },
            Entry { id: BlobId::Tree(TreeId([2; 32])), offset: 140, length: 50, raw_length: 200 },
        ];
        let enc = encode_toc(&entries);
        assert_eq!(decode_toc(&enc, 190).unwrap(), entries);
        assert!(decode_toc(&enc, 189).is_err());
        assert!(decode_toc(&enc[..enc.len() - 1], 190).is_err());
        let mut huge = enc.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_toc(&huge, 190).is_err());
    }
}
