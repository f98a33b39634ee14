//! Index files: which blobs each pack holds, so a client finds a blob without opening
//! packs. Payload of an envelope of type Index, fixed width little endian:
//!
//! ```text
//! u8  version (3 when it lists a references record, else 2; version 1 is still read)
//! u32 S, then S x 32-byte ids of index files this one replaces (written by prune/repair)
//! u32 P, then P packs: 32-byte pack id, u32 N, then N pack entries (pack::Entry, 49 bytes;
//!     45 in version 1, which has no `start`)
//! ```

use super::pack::{Entry, ENTRY_LEN, ENTRY_LEN_V1, VERSION_1};
use super::Reader;
use crate::error::{Error, ErrorKind, Result};

pub const INDEX_VERSION: u8 = 2;
/// Version 2 with entries of kind 3 (references records) allowed.
pub const INDEX_VERSION_3: u8 = 3;
use crate::id::{BlobKind, IndexId, PackId};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    pub supersedes: Vec<IndexId>,
    pub packs: Vec<(PackId, Vec<Entry>)>,
}

impl IndexFile {
    pub fn encode(&self) -> Vec<u8> {
        let entries: usize = self.packs.iter().map(|(_, e)| e.len()).sum();
        let mut out =
            Vec::with_capacity(8 + self.supersedes.len() * 32 + self.packs.len() * 36 + entries * ENTRY_LEN);
        let references = self.packs.iter().flat_map(|(_, e)| e).any(|e| e.id.kind() == BlobKind::References);
        out.push(if references { INDEX_VERSION_3 } else { INDEX_VERSION });
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for id in &self.supersedes {
            out.extend_from_slice(&id.0);
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for (pack, list) in &self.packs {
            out.extend_from_slice(&pack.0);
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for e in list {
                e.write(&mut out);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new("index file", bytes);
        let v = r.u8()?;
        if !(VERSION_1..=INDEX_VERSION_3).contains(&v) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("index file has encoding version {v}; this cairn reads 1 to {INDEX_VERSION_3}; upgrade cairn"),
            ));
        }
        let s = r.count(32)?;
        let mut supersedes = Vec::with_capacity(s);
        for _ in 0..s {
            supersedes.push(IndexId(r.id()?));
        }
        let p = r.count(36)?;
        let mut packs = Vec::with_capacity(p);
        for _ in 0..p {
            let pack = PackId(r.id()?);
            let n = r.count(if v == VERSION_1 { ENTRY_LEN_V1 } else { ENTRY_LEN })?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                let e = Entry::read(&mut r, v)?;
                if e.id.kind() == BlobKind::References && v != INDEX_VERSION_3 {
                    return Err(Error::corrupt(format!("index file of version {v} lists {}", e.id)));
                }
                list.push(e);
            }
            packs.push((pack, list));
        }
        r.finish()?;
        let references = packs.iter().flat_map(|(_, e)| e).any(|e| e.id.kind() == BlobKind::References);
        if v == INDEX_VERSION_3 && !references {
            // Version 3 is written only for a file that lists a record: the encoding stays
            // canonical (one encoding per file).
            return Err(Error::corrupt("index file of version 3 lists no references record"));
        }
        Ok(IndexFile { supersedes, packs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{BlobId, ChunkId};

    #[test]
    fn round_trip_and_truncation() {
        let f = IndexFile {
            supersedes: vec![IndexId([9; 32])],
            packs: vec![(
                PackId([1; 32]),
                vec![Entry {
                    id: BlobId::Chunk(ChunkId([3; 32])),
                    offset: 40,
                    length: 20,
                    raw_length: 10,
                    start: 4,
                }],
            )],
        };
        let enc = f.encode();
        assert_eq!(IndexFile::decode(&enc).unwrap(), f);
        for cut in 0..enc.len() {
            assert!(IndexFile::decode(&enc[..cut]).is_err());
        }
    }

    #[test]
    fn version_3_only_with_a_references_record() {
        use crate::id::RefsId;
        let entry = |id| Entry { id, offset: 40, length: 20, raw_length: 10, start: 4 };
        let with = IndexFile {
            supersedes: vec![],
            packs: vec![(PackId([1; 32]), vec![entry(BlobId::References(RefsId([2; 32])))])],
        };
        let enc = with.encode();
        assert_eq!(enc[0], INDEX_VERSION_3);
        assert_eq!(IndexFile::decode(&enc).unwrap(), with);
        let without = IndexFile {
            supersedes: vec![],
            packs: vec![(PackId([1; 32]), vec![entry(BlobId::Chunk(ChunkId([2; 32])))])],
        };
        let mut enc = without.encode();
        assert_eq!(enc[0], INDEX_VERSION);
        enc[0] = INDEX_VERSION_3;
        assert!(IndexFile::decode(&enc).is_err(), "a version 3 file without a record is not canonical");
        let mut v2 = with.encode();
        v2[0] = INDEX_VERSION;
        assert!(IndexFile::decode(&v2).is_err(), "a record in a version 2 file");
    }

    #[test]
    fn version_1_files_still_decode() {
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&0u32.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&[1; 32]);
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.push(1);
        v1.extend_from_slice(&[3; 32]);
        for x in [40u32, 20, 10] {
            v1.extend_from_slice(&x.to_le_bytes());
        }
        let f = IndexFile::decode(&v1).unwrap();
        let e =
            Entry { id: BlobId::Chunk(ChunkId([3; 32])), offset: 40, length: 20, raw_length: 10, start: 0 };
        assert_eq!(f.packs, vec![(PackId([1; 32]), vec![e])]);
    }
}
