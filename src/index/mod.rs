//! The in-memory index: which pack holds each blob, and where.
//!
//! Memory is the scale limit of a backup tool, so an entry is 31 bytes, byte-aligned: the
//! first 14 bytes of the blob id, then the pack (as a slot number, with a bit in its low
//! bit that tells chunks from trees and references records) in 3 bytes, and the frame's offset and sealed length with the blob's
//! length and start in its frame packed into 14 bytes. Entries sit in one array sorted by
//! id prefix, with a table of bucket starts over the prefix's top bits (at most 4 MiB), so
//! a lookup is a short binary search inside one bucket and no entry owns an allocation:
//! 10 million blobs take 31.5 bytes each with the table.
//!
//! Two different blobs sharing a 112-bit prefix is as unlikely as a hash collision
//! (about 1e-18 for 1e8 blobs), and cannot go unnoticed: a blob's plaintext is re-hashed
//! with its full id when it is read, so a wrong entry fails to read.
//! Full ids stay in the index files on disk.
//!
//! A blob stored twice (two backups racing, or an index entry written by someone who
//! holds only a backup-only key and lies) keeps every location: which one is real is
//! decided by reading, never by which entry happens to sort first
//! ([`crate::pack::PackReader::read_indexed`] tries each in turn). Loading the index from
//! the repository is in `load.rs`.

use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::Entry;
use crate::id::{BlobId, BlobKind, IndexId, PackId};
use std::collections::HashMap;

mod cache_file;
pub use cache_file::open_for_fuzzing;
mod cached;
mod load;
mod mapping;
mod table;
pub use load::{
    for_each_pack_list, load_index_file, load_pack_lists, load_pack_lists_reporting, IndexLoad, PackCoverage,
    PackLists,
};
use table::Table;

/// Byte arrays instead of integer fields keep the entry at 31 bytes with alignment 1, and
/// `repr(C)` fixes that layout, so the cache file's entries are mapped as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Slot {
    prefix: Prefix,
    /// Pack slot number << 1 | (kind - 1), 24 bits little endian.
    pack_kind: [u8; 3],
    /// offset (31 bits) | length (27) | raw length (27) | start (27), little endian.
    place: [u8; 14],
}

const PREFIX_LEN: usize = 14;
type Prefix = [u8; PREFIX_LEN];

/// The most packs the in-memory index can name (23 bits of slot number).
pub const MAX_PACKS: usize = 1 << 23;
/// Field widths of `Slot::place`; `Entry::read` keeps every entry within them.
const OFFSET_BITS: u32 = 31;
const LENGTH_BITS: u32 = 27;

const _: () = assert!(std::mem::size_of::<Slot>() == 31);
const _: () = assert!(crate::format::pack::MAX_OFFSET as u64 <= 1 << OFFSET_BITS);
const _: () = assert!((crate::format::pack::MAX_SEALED as u64) < 1 << LENGTH_BITS);
const _: () = assert!((crate::format::pack::MAX_BLOB as u64) < 1 << LENGTH_BITS);

/// Entries sort by id prefix, then pack slot (so a blob's locations come in pack order),
/// then place.
impl Ord for Slot {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.prefix, self.pack_kind(), self.place).cmp(&(other.prefix, other.pack_kind(), other.place))
    }
}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Slot {
    fn to_bytes(self) -> [u8; 31] {
        let mut b = [0u8; 31];
        b[..14].copy_from_slice(&self.prefix);
        b[14..17].copy_from_slice(&self.pack_kind);
        b[17..].copy_from_slice(&self.place);
        b
    }

    fn from_bytes(b: [u8; 31]) -> Slot {
        Slot {
            prefix: b[..14].try_into().expect("14 bytes"),
            pack_kind: b[14..17].try_into().expect("3 bytes"),
            place: b[17..].try_into().expect("14 bytes"),
        }
    }

    fn new(pack: u32, e: &Entry) -> Slot {
        // Entry::read and the pack builder keep every field within its width.
        debug_assert!((pack as usize) < MAX_PACKS && e.offset < crate::format::pack::MAX_OFFSET);
        debug_assert!(e.length.max(e.raw_length).max(e.start) < 1 << LENGTH_BITS);
        let pack_kind = pack << 1 | kind_bit(e.id.kind());
        let mut place = e.offset as u128;
        let mut shift = OFFSET_BITS;
        for field in [e.length, e.raw_length, e.start] {
            place |= (field as u128) << shift;
            shift += LENGTH_BITS;
        }
        Slot {
            prefix: prefix(e.id.bytes()),
            pack_kind: pack_kind.to_le_bytes()[..3].try_into().expect("3 bytes"),
            place: place.to_le_bytes()[..14].try_into().expect("14 bytes"),
        }
    }

    fn pack_kind(&self) -> u32 {
        let [a, b, c] = self.pack_kind;
        u32::from_le_bytes([a, b, c, 0])
    }

    /// The field of `place` that starts at bit `shift` and is `bits` wide.
    fn field(&self, shift: u32, bits: u32) -> u32 {
        let mut bytes = [0u8; 16];
        bytes[..14].copy_from_slice(&self.place);
        ((u128::from_le_bytes(bytes) >> shift) & ((1 << bits) - 1)) as u32
    }

    fn raw_length(&self) -> u32 {
        self.field(OFFSET_BITS + LENGTH_BITS, LENGTH_BITS)
    }

    fn entry(&self, id: BlobId) -> Entry {
        Entry {
            id,
            offset: self.field(0, OFFSET_BITS),
            length: self.field(OFFSET_BITS, LENGTH_BITS),
            raw_length: self.raw_length(),
            start: self.field(OFFSET_BITS + 2 * LENGTH_BITS, LENGTH_BITS),
        }
    }
}

/// Every blob's locations: the packs it names, and one or two sorted tables of entries (the
/// cached table mapped from this machine's cache, then the entries of index files written
/// since, in memory). A position numbers the entries of all tables one after the other.
#[derive(Default)]
pub struct Index {
    packs: Vec<PackId>,
    tables: Vec<Table>,
    /// The index files this index was loaded from.
    pub files: Vec<IndexId>,
    /// Why each index file that did not open was left out, for the caller to report.
    pub skipped_files: Vec<String>,
}

/// Where a blob is: its pack and its entry in that pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: PackId,
    pub entry: Entry,
}

/// The kind bit of a slot: 0 for a chunk, 1 for a tree or a references record. Trees and
/// records share it: their ids come from different keys, so one prefix names at most one
/// of them, as it names at most one tree, and a blob read is re-hashed with its full id.
fn kind_bit(kind: BlobKind) -> u32 {
    u32::from(kind != BlobKind::Chunk)
}

fn prefix(id: &[u8; 32]) -> Prefix {
    id[..PREFIX_LEN].try_into().expect("prefix length")
}

impl Index {
    /// The positions of every entry with this prefix and kind bit, table by table.
    fn positions_of(&self, p: Prefix, kind: u32) -> impl Iterator<Item = usize> + '_ {
        let mut base = 0;
        self.tables.iter().flat_map(move |t| {
            let first = base;
            base += t.len();
            let (start, end) = t.range_of(&p);
            let slots = t.slots();
            (start..end)
                .take_while(move |&i| slots[i].prefix == p)
                .filter(move |&i| slots[i].pack_kind() & 1 == kind)
                .map(move |i| first + i)
        })
    }

    /// The positions of every location of the blob among the entries (each in 0..len).
    fn positions(&self, id: &BlobId) -> impl Iterator<Item = usize> + '_ {
        self.positions_of(prefix(id.bytes()), kind_bit(id.kind()))
    }

    /// The entry at a position (in 0..len).
    fn slot_at(&self, mut position: usize) -> &Slot {
        for t in &self.tables {
            if position < t.len() {
                return &t.slots()[position];
            }
            position -= t.len();
        }
        panic!("index position out of range")
    }

    /// The position of the blob's first location among the entries (0..len).
    pub fn position(&self, id: &BlobId) -> Option<usize> {
        self.positions(id).next()
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.position(id).is_some()
    }

    /// Whether the blob at `position` has a location (that one, or another of the same
    /// blob) in one of the `listed` packs.
    pub fn stored_at(&self, position: usize, listed: &std::collections::HashSet<PackId>) -> bool {
        let s = self.slot_at(position);
        self.positions_of(s.prefix, s.pack_kind() & 1)
            .any(|i| listed.contains(&self.packs[(self.slot_at(i).pack_kind() >> 1) as usize]))
    }

    /// The plaintext length of every entry in position order, read once from start to
    /// end: a mapped table's pages are checked as they come and released as it goes, so
    /// the scan costs no more memory than a lookup. An error once a page fails its check.
    pub fn raw_lengths(&self) -> impl Iterator<Item = Result<u32>> + '_ {
        self.tables.iter().flat_map(|t| t.checked_iter().map(|s| s.map(|s| s.raw_length())))
    }

    /// The blob's first location. Use [`Index::locations`] where a copy that fails to
    /// read must not be the end of it.
    pub fn get(&self, id: &BlobId) -> Option<Location> {
        self.position(id).map(|i| self.location(self.slot_at(i), id))
    }

    /// Every location of the blob, in a fixed order (by table, then by pack slot), each once.
    pub fn locations(&self, id: &BlobId) -> Vec<Location> {
        let mut out: Vec<Location> = Vec::new();
        for i in self.positions(id) {
            let loc = self.location(self.slot_at(i), id);
            if !out.contains(&loc) {
                out.push(loc);
            }
        }
        out
    }

    fn location(&self, s: &Slot, id: &BlobId) -> Location {
        Location { pack: self.packs[(s.pack_kind() >> 1) as usize], entry: s.entry(*id) }
    }

    /// Entries in all tables (a blob the cached table and a newer index file both name
    /// counts twice).
    pub fn len(&self) -> usize {
        self.tables.iter().map(Table::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn pack_count(&self) -> usize {
        self.packs.len()
    }

    /// Bytes the index holds in memory, for benchmarks and `stats`; a mapped table counts
    /// its bucket table and page checks only (its entries are read from the cache file).
    pub fn memory_bytes(&self) -> usize {
        self.tables.iter().map(Table::memory_bytes).sum::<usize>()
            + self.packs.capacity() * std::mem::size_of::<PackId>()
    }

    /// Whether the index maps a table from the cache file.
    pub fn is_mapped(&self) -> bool {
        self.tables.iter().any(Table::is_mapped)
    }
}

/// Collects pack entries, then sorts them into an [`Index`].
pub struct IndexBuilder {
    packs: Vec<PackId>,
    pack_slots: HashMap<PackId, u32>,
    slots: Vec<Slot>,
    /// MAX_PACKS, or less in tests (a test of the real limit would need 8 million packs).
    max_packs: usize,
}

impl Default for IndexBuilder {
    fn default() -> Self {
        IndexBuilder {
            packs: Vec::new(),
            pack_slots: HashMap::new(),
            slots: Vec::new(),
            max_packs: MAX_PACKS,
        }
    }
}

impl IndexBuilder {
    /// Add a pack's entries (as decoded, so within `Slot`'s field widths). Fails only
    /// when the index would name more than [`MAX_PACKS`] packs.
    pub fn add_pack(&mut self, pack: PackId, entries: &[Entry]) -> Result<()> {
        let next = self.packs.len() as u32;
        let p = *self.pack_slots.entry(pack).or_insert(next);
        if p == next {
            if self.packs.len() == self.max_packs {
                self.pack_slots.remove(&pack);
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "the repository has more than {} packs, more than this cairn's index holds; prune it, or copy it to a repository with a larger --pack-size",
                        self.max_packs
                    ),
                ));
            }
            self.packs.push(pack);
        }
        self.slots.extend(entries.iter().map(|e| Slot::new(p, e)));
        Ok(())
    }

    pub fn build(self) -> Index {
        self.build_keeping(|_| true)
    }

    /// Build from the entries of the packs `keep` accepts. Every location of a blob is
    /// kept (the same entry named twice only once), ordered by pack slot.
    pub fn build_keeping(self, keep: impl Fn(&PackId) -> bool) -> Index {
        let IndexBuilder { packs, slots, .. } = self;
        let kept: Vec<bool> = packs.iter().map(keep).collect();
        let table = Table::owned(sorted(slots, |p| kept[p as usize]));
        Index { packs, tables: vec![table], files: Vec::new(), skipped_files: Vec::new() }
    }

    /// A builder whose first pack slots are `packs` (those of a cached table, so that
    /// entries added here number their packs as the table does).
    fn with_packs(packs: Vec<PackId>) -> IndexBuilder {
        let pack_slots = packs.iter().enumerate().map(|(i, p)| (*p, i as u32)).collect();
        IndexBuilder { packs, pack_slots, ..Default::default() }
    }

    fn entry_count(&self) -> usize {
        self.slots.len()
    }

    /// The entries added so far, sorted (those of packs `keep` refuses left out), leaving
    /// the builder without entries but with its packs.
    fn take_sorted(&mut self, keep: impl Fn(u32) -> bool) -> Vec<Slot> {
        sorted(std::mem::take(&mut self.slots), keep)
    }
}

/// Entries sorted, each once, without those of the pack slots `keep` refuses.
fn sorted(mut slots: Vec<Slot>, keep: impl Fn(u32) -> bool) -> Vec<Slot> {
    slots.retain(|s| keep(s.pack_kind() >> 1));
    slots.sort_unstable();
    slots.dedup();
    slots.shrink_to_fit();
    slots
}

/// Entries per index file that prune and repair write: files stay a few MiB whatever the
/// packs hold (a pack of tiny files can hold a hundred thousand blobs).
pub const ENTRIES_PER_INDEX_FILE: usize = 100_000;

/// Split packs into groups of at most `limit` entries (a pack is never split; an empty
/// list gives no group).
pub fn batches(packs: &[(PackId, Vec<Entry>)], limit: usize) -> Vec<Vec<(PackId, Vec<Entry>)>> {
    let mut out: Vec<Vec<(PackId, Vec<Entry>)>> = Vec::new();
    let mut count = 0;
    for (pack, entries) in packs {
        if out.is_empty() || (count + entries.len() > limit && count > 0) {
            out.push(Vec::new());
            count = 0;
        }
        count += entries.len();
        out.last_mut().expect("pushed above").push((*pack, entries.clone()));
    }
    out
}

fn bucket_of(prefix: &Prefix, bits: u32) -> usize {
    if bits == 0 {
        return 0;
    }
    (u32::from_be_bytes(prefix[..4].try_into().expect("4 bytes")) >> (32 - bits)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{ChunkId, TreeId};

    fn entry(id: BlobId, offset: u32) -> Entry {
        Entry { id, offset, length: 30, raw_length: 20, start: offset % 7 }
    }

    #[test]
    fn lookups_check_the_kind_and_find_every_entry() {
        let mut b = IndexBuilder::default();
        let c = BlobId::Chunk(ChunkId([5; 32]));
        b.add_pack(PackId([1; 32]), &[entry(c, 40)]).unwrap();
        let mut many = Vec::new();
        for i in 0..5000u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            id[31] = 1;
            many.push(entry(BlobId::Tree(TreeId(id)), 40 + i));
        }
        b.add_pack(PackId([2; 32]), &many).unwrap();
        let idx = b.build();
        assert_eq!(idx.len(), 5001);
        assert_eq!(idx.get(&c).unwrap().entry, entry(c, 40));
        assert_eq!(idx.get(&c).unwrap().pack, PackId([1; 32]));
        assert!(!idx.contains(&BlobId::Tree(TreeId([5; 32]))));
        for e in &many {
            let loc = idx.get(&e.id).expect("every added entry is found");
            assert_eq!((loc.pack, loc.entry), (PackId([2; 32]), *e));
        }
        assert!(!idx.contains(&BlobId::Chunk(ChunkId([9; 32]))));
        assert!(idx.memory_bytes() <= 5001 * 32 + 64 * 2, "{} bytes", idx.memory_bytes());
    }

    #[test]
    fn more_packs_than_the_index_holds_are_refused() {
        let mut b = IndexBuilder { max_packs: 2, ..Default::default() };
        let c = BlobId::Chunk(ChunkId([5; 32]));
        b.add_pack(PackId([1; 32]), &[entry(c, 40)]).unwrap();
        b.add_pack(PackId([2; 32]), &[]).unwrap();
        b.add_pack(PackId([1; 32]), &[]).unwrap();
        let e = b.add_pack(PackId([3; 32]), &[entry(c, 40)]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("more than 2 packs"), "{e}");
        assert_eq!(b.build().len(), 1, "the refused pack's entries are not added");
    }

    #[test]
    fn index_batches_bound_entries_and_never_split_a_pack() {
        let e =
            Entry { id: BlobId::Chunk(ChunkId([1; 32])), offset: 40, length: 30, raw_length: 9, start: 0 };
        let packs: Vec<(PackId, Vec<Entry>)> = (0..5u8).map(|i| (PackId([i; 32]), vec![e; 4])).collect();
        let b = batches(&packs, 10);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
        let big = vec![(PackId([9; 32]), vec![e; 25])];
        assert_eq!(batches(&big, 10).len(), 1, "a pack larger than the limit goes whole");
        assert!(batches(&[], 10).is_empty());
    }

    #[test]
    fn every_location_of_a_blob_is_kept_and_dropped_packs_leave() {
        let c = BlobId::Chunk(ChunkId([5; 32]));
        let t = BlobId::Tree(TreeId([5; 32]));
        let mut b = IndexBuilder::default();
        b.add_pack(PackId([9; 32]), &[entry(c, 40), entry(c, 40)]).unwrap();
        b.add_pack(PackId([1; 32]), &[entry(c, 80), entry(t, 120)]).unwrap();
        b.add_pack(PackId([3; 32]), &[entry(c, 60)]).unwrap();
        let idx = b.build_keeping(|p| *p != PackId([3; 32]));
        let locs = idx.locations(&c);
        assert_eq!(locs.len(), 2, "one per pack kept, the repeated entry once: {locs:?}");
        assert_eq!((locs[0].pack, locs[0].entry.offset), (PackId([9; 32]), 40), "in order of pack slot");
        assert_eq!((locs[1].pack, locs[1].entry.offset), (PackId([1; 32]), 80));
        assert_eq!(idx.get(&c), Some(locs[0]));
        assert_eq!(idx.locations(&t).len(), 1, "the same bytes as a tree id are another blob");
        assert!(idx.locations(&BlobId::Chunk(ChunkId([6; 32]))).is_empty());
    }

    #[test]
    fn an_empty_index_finds_nothing() {
        let idx = IndexBuilder::default().build();
        assert!(!idx.contains(&BlobId::Chunk(ChunkId([0; 32]))));
        assert!(Index::default().get(&BlobId::Chunk(ChunkId([0; 32]))).is_none());
    }
}
