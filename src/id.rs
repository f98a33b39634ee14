//! Typed 32-byte ids, one type per kind of object, so a tree id can never be used where a
//! chunk id is meant. All are BLAKE3 outputs: chunk and tree ids are keyed hashes of the
//! plaintext (see `crypto::keys`), file-object ids are plain hashes of the stored bytes.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn to_hex(&self) -> String {
                hex_encode(&self.0)
            }

            pub fn from_hex(s: &str) -> Result<Self> {
                hex_decode32(s).map($name)
            }

            /// The first 8 hex digits, as shown in listings.
            pub fn short(&self) -> String {
                hex_encode(&self.0[..4])
            }

            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
    };
}

typed_id!(
    /// Keyed BLAKE3 of a chunk's plaintext.
    ChunkId
);
typed_id!(
    /// Keyed BLAKE3 (with the tree-id key) of an encoded tree.
    TreeId
);
typed_id!(
    /// Keyed BLAKE3 (with the references-id key) of an encoded references record: what a
    /// tree blob names, for a maintenance key (format-spec/maintenance-key.md).
    RefsId
);
typed_id!(
    /// BLAKE3 of a pack file's bytes; also its file name.
    PackId
);
typed_id!(
    /// BLAKE3 of a sealed snapshot object's bytes; also its file name.
    SnapshotId
);
typed_id!(
    /// BLAKE3 of a sealed index object's bytes; also its file name.
    IndexId
);
typed_id!(
    /// BLAKE3 of a key file's bytes; also its file name.
    KeyId
);
typed_id!(
    /// BLAKE3 of a sealed lock object's bytes; also its file name.
    LockId
);

/// A blob stored in a pack: file content, a tree, or a tree's references record. The id
/// spaces come from different keys, so one 32-byte value names at most one blob.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BlobId {
    Chunk(ChunkId),
    Tree(TreeId),
    References(RefsId),
}

/// The kind byte stored in packs and index files.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BlobKind {
    Chunk = 1,
    Tree = 2,
    /// Only in references packs (pack version 5, class 2) and index files of version 3.
    References = 3,
}

impl BlobKind {
    pub fn from_byte(b: u8) -> Result<Self> {
        match b {
            1 => Ok(BlobKind::Chunk),
            2 => Ok(BlobKind::Tree),
            3 => Ok(BlobKind::References),
            _ => Err(Error::corrupt(format!("unknown blob kind {b}"))),
        }
    }
}

impl BlobId {
    pub fn kind(&self) -> BlobKind {
        match self {
            BlobId::Chunk(_) => BlobKind::Chunk,
            BlobId::Tree(_) => BlobKind::Tree,
            BlobId::References(_) => BlobKind::References,
        }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        match self {
            BlobId::Chunk(c) => &c.0,
            BlobId::Tree(t) => &t.0,
            BlobId::References(r) => &r.0,
        }
    }

    pub fn from_parts(kind: BlobKind, bytes: [u8; 32]) -> Self {
        match kind {
            BlobKind::Chunk => BlobId::Chunk(ChunkId(bytes)),
            BlobKind::Tree => BlobId::Tree(TreeId(bytes)),
            BlobKind::References => BlobId::References(RefsId(bytes)),
        }
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobId::Chunk(c) => write!(f, "chunk {c}"),
            BlobId::Tree(t) => write!(f, "tree {t}"),
            BlobId::References(r) => write!(f, "references record {r}"),
        }
    }
}

pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decode a lowercase or uppercase hex string of any even length.
pub fn hex_decode(s: &str) -> Result<Vec<u8>> {
    let digit = |c: u8| -> Result<u8> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(Error::invalid(format!("'{s}' is not hexadecimal"))),
        }
    };
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return Err(Error::invalid(format!("'{s}' has an odd number of hex digits")));
    }
    b.chunks(2).map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

fn hex_decode32(s: &str) -> Result<[u8; 32]> {
    let v = hex_decode(s)?;
    v.try_into().map_err(|_| Error::invalid(format!("'{s}' is not a 64-digit id")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = PackId([0xab; 32]);
        assert_eq!(PackId::from_hex(&id.to_hex()).unwrap(), id);
        assert_eq!(id.short(), "abababab");
    }

    #[test]
    fn bad_hex_is_rejected() {
        assert!(PackId::from_hex("zz").is_err());
        assert!(PackId::from_hex("abc").is_err());
        assert!(PackId::from_hex("abcd").is_err());
    }
}
