//! The in-memory index: which pack holds each blob, and where.
//!
//! Loaded entries sit in one sorted array (binary search, no per-entry allocation);
//! entries added by a running backup sit in a small hash map until the next load. A pack
//! id is stored once and referred to by a 4-byte slot number.

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::envelope::{self, ObjectType};
use crate::format::index::IndexFile;
use crate::format::pack::Entry;
use crate::id::{BlobId, BlobKind, IndexId, PackId};
use crate::repo::Repository;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    kind: u8,
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
}

#[derive(Default)]
pub struct Index {
    packs: Vec<PackId>,
    pack_slots: HashMap<PackId, u32>,
    sorted: Vec<([u8; 32], Slot)>,
    fresh: HashMap<[u8; 32], Slot>,
    /// The index files this index was loaded from.
    pub files: Vec<IndexId>,
}

/// Where a blob is: its pack and its entry in that pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: PackId,
    pub entry: Entry,
}

impl Index {
    /// Load every index file of the repository; a damaged one is an error.
    pub fn load(repo: &Repository) -> Result<Index> {
        let (idx, mut damaged) = Self::load_inner(repo, true)?;
        match damaged.pop() {
            Some((_, e)) => Err(e),
            None => Ok(idx),
        }
    }

    /// Load every index file that opens; return the damaged ones beside the index.
    pub fn load_skipping_damaged(repo: &Repository) -> Result<(Index, Vec<(String, Error)>)> {
        Self::load_inner(repo, false)
    }

    fn load_inner(repo: &Repository, stop_at_damage: bool) -> Result<(Index, Vec<(String, Error)>)> {
        let mut idx = Index::default();
        let mut entries = Vec::new();
        let mut damaged = Vec::new();
        for name in repo.backend().list(FileType::Index)? {
            let file = IndexId::from_hex(&name).and_then(|id| Ok((id, load_index_file(repo, &id)?)));
            let (id, file) = match file {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::Corrupt || e.kind() == ErrorKind::InvalidInput => {
                    damaged.push((name.clone(), e.wrap(format!("index file {name}"))));
                    if stop_at_damage {
                        break;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (pack, list) in file.packs {
                let p = idx.pack_slot(pack);
                entries.extend(list.iter().map(|e| (*e.id.bytes(), slot(p, e))));
            }
            idx.files.push(id);
        }
        entries.sort_unstable_by_key(|a| a.0);
        entries.dedup_by(|a, b| a.0 == b.0);
        entries.shrink_to_fit();
        idx.sorted = entries;
        Ok((idx, damaged))
    }

    fn pack_slot(&mut self, pack: PackId) -> u32 {
        *self.pack_slots.entry(pack).or_insert_with(|| {
            self.packs.push(pack);
            (self.packs.len() - 1) as u32
        })
    }

    /// Record the blobs of a newly written pack.
    pub fn add_pack(&mut self, pack: PackId, entries: &[Entry]) {
        let p = self.pack_slot(pack);
        for e in entries {
            self.fresh.entry(*e.id.bytes()).or_insert_with(|| slot(p, e));
        }
    }

    fn slot_of(&self, id: &[u8; 32]) -> Option<Slot> {
        if let Some(s) = self.fresh.get(id) {
            return Some(*s);
        }
        self.sorted.binary_search_by(|(k, _)| k.cmp(id)).ok().map(|i| self.sorted[i].1)
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.slot_of(id.bytes()).is_some_and(|s| s.kind == id.kind() as u8)
    }

    pub fn get(&self, id: &BlobId) -> Option<Location> {
        let s = self.slot_of(id.bytes()).filter(|s| s.kind == id.kind() as u8)?;
        Some(Location {
            pack: self.packs[s.pack as usize],
            entry: Entry { id: *id, offset: s.offset, length: s.length, raw_length: s.raw_length },
        })
    }

    pub fn len(&self) -> usize {
        self.sorted.len() + self.fresh.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn pack_count(&self) -> usize {
        self.packs.len()
    }

    /// Every blob with its location (sorted entries first, then new ones).
    pub fn iter(&self) -> impl Iterator<Item = Location> + '_ {
        self.sorted.iter().map(|(k, s)| (k, s)).chain(self.fresh.iter()).map(move |(k, s)| Location {
            pack: self.packs[s.pack as usize],
            entry: Entry {
                id: BlobId::from_parts(BlobKind::from_byte(s.kind).expect("kinds are checked on load"), *k),
                offset: s.offset,
                length: s.length,
                raw_length: s.raw_length,
            },
        })
    }
}

fn slot(pack: u32, e: &Entry) -> Slot {
    Slot { kind: e.id.kind() as u8, pack, offset: e.offset, length: e.length, raw_length: e.raw_length }
}

/// Read, check and decode one index file.
pub fn load_index_file(repo: &Repository, id: &IndexId) -> Result<IndexFile> {
    let bytes = repo.backend().read(FileType::Index, &id.to_hex())?;
    if blake3::hash(&bytes).as_bytes() != &id.0 {
        return Err(Error::corrupt(format!("index file {id} does not match its name")));
    }
    let payload = envelope::open(repo.keys(), ObjectType::Index, &bytes)
        .map_err(|e| e.wrap(format!("index file {id}")))?;
    IndexFile::decode(&payload).map_err(|e| e.wrap(format!("index file {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{ChunkId, TreeId};

    #[test]
    fn fresh_and_kind_checked_lookups() {
        let mut idx = Index::default();
        let c = BlobId::Chunk(ChunkId([5; 32]));
        let e = Entry { id: c, offset: 40, length: 30, raw_length: 20 };
        idx.add_pack(PackId([1; 32]), &[e]);
        assert_eq!(idx.get(&c).unwrap().entry, e);
        assert!(!idx.contains(&BlobId::Tree(TreeId([5; 32]))));
        assert_eq!(idx.iter().count(), 1);
    }
}
