//! One sorted table of index entries with its bucket table: held in memory, or mapped from
//! the cache file (`cache_file.rs`), whose pages are checked against their MACs the first
//! time a lookup reads them.
//!
//! A mapped table costs memory only for its bucket table, its page MACs and the pages the
//! process touches, which the kernel can drop again at will: that is what keeps memory
//! bounded whatever the repository holds. Checking a page only when it is first read keeps
//! the cost of a command linear in what it looks up, and still means that no entry is
//! used unchecked: a damaged or planted cache file costs a lookup, never a wrong answer.

use super::{bucket_of, Prefix, Slot};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use zeroize::Zeroizing;

/// Entries per MAC page: about one 4 KiB page of the file, so that checking what a lookup
/// reads touches little more than the lookup itself.
pub(super) const PAGE_SLOTS: usize = 128;
/// Bytes of a page MAC (a truncated keyed BLAKE3 hash).
pub(super) const PAGE_MAC_LEN: usize = 16;
/// Lookups between two releases of a mapped table's pages: each may map up to 64 KiB
/// (the kernel's fault-around), so at most 32 MiB of the file is mapped at once.
const RELEASE_EVERY: usize = 512;

pub(super) struct Table {
    slots: Slots,
    /// `buckets[b]..buckets[b + 1]` is the range of slots whose prefix starts with b.
    buckets: Vec<u32>,
    bucket_bits: u32,
}

enum Slots {
    Owned(Vec<Slot>),
    Mapped(Mapped),
}

struct Mapped {
    map: memmap2::Mmap,
    /// Where the entries start in the file, and how many there are.
    offset: usize,
    len: usize,
    pages: PageCheck,
    lookups: AtomicUsize,
}

/// What checks each page of a mapped table, once.
pub(super) struct PageCheck {
    key: Zeroizing<[u8; 32]>,
    /// The cache file's own random value, so that a page of another cache file (an older
    /// one of the same repository) does not check.
    nonce: [u8; 32],
    macs: Vec<[u8; PAGE_MAC_LEN]>,
    checked: Vec<AtomicU64>,
    /// Set once a page fails: from then on the table answers nothing (a backup stores
    /// again, a restore reports the file), and the file is removed for the next command
    /// to build again.
    damaged: AtomicBool,
    path: PathBuf,
}

/// The MAC of page `page` of a cache file: its entries' bytes, bound to the page's number
/// and the file's nonce.
pub(super) fn page_mac(key: &[u8; 32], nonce: &[u8; 32], page: u64, bytes: &[u8]) -> [u8; PAGE_MAC_LEN] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(nonce).update(&page.to_le_bytes()).update(bytes);
    h.finalize().as_bytes()[..PAGE_MAC_LEN].try_into().expect("MAC length")
}

/// Bits of the bucket table for `n` entries: 8 to 16 entries per bucket (at most half a
/// byte per entry), at most 2^20 buckets.
pub(super) fn bucket_bits_for(n: usize) -> u32 {
    let per8 = n / 8;
    if per8 == 0 {
        0
    } else {
        (usize::BITS - 1 - per8.leading_zeros()).min(20)
    }
}

/// Bucket starts from the count of entries in each bucket (`counts[b + 1]`), in place.
pub(super) fn accumulate(counts: &mut [u32]) {
    for b in 1..counts.len() {
        counts[b] += counts[b - 1];
    }
}

impl Table {
    /// A table of sorted entries in memory.
    pub(super) fn owned(slots: Vec<Slot>) -> Table {
        let bucket_bits = bucket_bits_for(slots.len());
        let mut buckets = vec![0u32; (1usize << bucket_bits) + 1];
        for s in &slots {
            buckets[bucket_of(&s.prefix, bucket_bits) + 1] += 1;
        }
        accumulate(&mut buckets);
        Table { slots: Slots::Owned(slots), buckets, bucket_bits }
    }

    /// A table whose `len` entries start at `offset` in `map`; the caller has checked that
    /// they lie inside it and that the bucket table fits them.
    pub(super) fn mapped(
        map: memmap2::Mmap,
        offset: usize,
        len: usize,
        buckets: Vec<u32>,
        bucket_bits: u32,
        pages: PageCheck,
    ) -> Table {
        debug_assert!(offset + len * std::mem::size_of::<Slot>() <= map.len());
        let lookups = AtomicUsize::new(0);
        Table { slots: Slots::Mapped(Mapped { map, offset, len, pages, lookups }), buckets, bucket_bits }
    }

    pub(super) fn len(&self) -> usize {
        match &self.slots {
            Slots::Owned(v) => v.len(),
            Slots::Mapped(m) => m.len,
        }
    }

    pub(super) fn is_mapped(&self) -> bool {
        matches!(self.slots, Slots::Mapped(_))
    }

    /// Every entry, unchecked: only for positions a checked lookup returned.
    pub(super) fn slots(&self) -> &[Slot] {
        match &self.slots {
            Slots::Owned(v) => v,
            Slots::Mapped(m) => m.slots(),
        }
    }

    /// The range of entries that may hold `p`, from its first entry at or after `p`; empty
    /// when a page it covers fails its check.
    pub(super) fn range_of(&self, p: &Prefix) -> (usize, usize) {
        let b = bucket_of(p, self.bucket_bits);
        let (start, end) = match (self.buckets.get(b), self.buckets.get(b + 1)) {
            (Some(&s), Some(&e)) => (s as usize, e as usize),
            _ => (0, 0),
        };
        if start >= end {
            return (start, start);
        }
        if let Slots::Mapped(m) = &self.slots {
            if m.lookups.fetch_add(1, Ordering::Relaxed) % RELEASE_EVERY == RELEASE_EVERY - 1 {
                super::mapping::release(&m.map);
            }
            if !m.check_range(start, end) {
                return (start, start);
            }
        }
        let first = start + self.slots()[start..end].partition_point(|s| s.prefix < *p);
        (first, end)
    }

    /// Every entry in order, each page checked first (for merging into a new cache file).
    pub(super) fn checked_iter(&self) -> impl Iterator<Item = crate::error::Result<Slot>> + '_ {
        let slots = self.slots();
        (0..slots.len()).map(move |i| {
            if let Slots::Mapped(m) = &self.slots {
                if i % PAGE_SLOTS == 0 {
                    if i % (RELEASE_EVERY * PAGE_SLOTS) == 0 {
                        super::mapping::release(&m.map);
                    }
                    if !m.check_range(i, i + 1) {
                        return Err(crate::error::Error::corrupt("the index cache file is damaged"));
                    }
                }
            }
            Ok(slots[i])
        })
    }

    pub(super) fn memory_bytes(&self) -> usize {
        let slots = match &self.slots {
            Slots::Owned(v) => v.capacity() * std::mem::size_of::<Slot>(),
            Slots::Mapped(m) => m.pages.macs.capacity() * PAGE_MAC_LEN + m.pages.checked.capacity() * 8,
        };
        slots + self.buckets.capacity() * 4
    }
}

impl Mapped {
    fn slots(&self) -> &[Slot] {
        super::mapping::slots(&self.map[self.offset..self.offset + self.len * std::mem::size_of::<Slot>()])
    }

    /// Check the pages that hold entries `start..end` (not empty), each once.
    fn check_range(&self, start: usize, end: usize) -> bool {
        let pages = &self.pages;
        if pages.damaged.load(Ordering::Relaxed) {
            return false;
        }
        for page in start / PAGE_SLOTS..=(end - 1) / PAGE_SLOTS {
            let bit = 1u64 << (page % 64);
            if pages.checked[page / 64].load(Ordering::Acquire) & bit != 0 {
                continue;
            }
            let first = page * PAGE_SLOTS;
            let last = (first + PAGE_SLOTS).min(self.len);
            let size = std::mem::size_of::<Slot>();
            let bytes = &self.map[self.offset + first * size..self.offset + last * size];
            let mac = page_mac(&pages.key, &pages.nonce, page as u64, bytes);
            // Compared without an early exit, as MACs are.
            let same = mac.iter().zip(&pages.macs[page]).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            if !same {
                if !pages.damaged.swap(true, Ordering::Relaxed) {
                    let _ = std::fs::remove_file(&pages.path);
                    eprintln!(
                        "cairn: warning: the index cache file {} is damaged; it was removed, and the next command builds it again",
                        pages.path.display()
                    );
                }
                return false;
            }
            pages.checked[page / 64].fetch_or(bit, Ordering::Release);
        }
        true
    }
}

impl PageCheck {
    pub(super) fn new(
        key: Zeroizing<[u8; 32]>,
        nonce: [u8; 32],
        macs: Vec<[u8; PAGE_MAC_LEN]>,
        path: PathBuf,
    ) -> PageCheck {
        let checked = (0..macs.len().div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        PageCheck { key, nonce, macs, checked, damaged: AtomicBool::new(false), path }
    }
}
