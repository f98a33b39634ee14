//! Decrypted chunks kept for a mounted repository's readers, and fetched ahead of a
//! sequential one.
//!
//! The kernel asks for a file in pieces of at most a few hundred KiB, each a separate
//! request, while a chunk holds 16-256 KiB: without a cache, a chunk would be fetched,
//! decrypted and re-hashed once per request that touches it. The cache is a byte-bounded
//! LRU; a chunk being fetched has its slot already, so readers that want it meanwhile
//! wait for that fetch instead of starting their own. Read-ahead fetches the chunks after
//! a sequential reader's position on the thread pool, so both cores open chunks while
//! the reader copies out the ones it asked for.

use crate::error::Result;
use crate::id::ChunkId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// A chunk's plaintext once fetched; `None` if the fetch failed (the fetcher reports why).
type Slot = Arc<OnceLock<Option<Arc<Vec<u8>>>>>;

struct Lru {
    /// chunk → (slot, last use)
    slots: HashMap<ChunkId, (Slot, u64)>,
    /// last use → chunk, oldest first
    order: BTreeMap<u64, ChunkId>,
    clock: u64,
    /// Bytes of the fetched chunks held.
    bytes: usize,
}

pub struct ChunkCache {
    lru: Mutex<Lru>,
    limit: usize,
}

impl ChunkCache {
    /// A cache holding up to `limit` bytes of plaintext (one chunk more at most while it
    /// is being added).
    pub fn new(limit: usize) -> ChunkCache {
        ChunkCache {
            lru: Mutex::new(Lru { slots: HashMap::new(), order: BTreeMap::new(), clock: 0, bytes: 0 }),
            limit,
        }
    }

    /// The chunk's plaintext: from the cache, from a fetch already under way, or from
    /// `fetch` (whose bytes are then kept).
    pub fn get(&self, id: &ChunkId, fetch: impl FnOnce(&ChunkId) -> Result<Vec<u8>>) -> Result<Arc<Vec<u8>>> {
        let slot = self.slot(id);
        let mut error = None;
        let mut fetched = 0;
        let value = slot.get_or_init(|| match fetch(id) {
            Ok(bytes) => {
                fetched = bytes.len();
                Some(Arc::new(bytes))
            }
            Err(e) => {
                error = Some(e);
                None
            }
        });
        if let Some(v) = value {
            let v = v.clone();
            if fetched > 0 {
                self.added(fetched);
            }
            return Ok(v);
        }
        self.lru.lock().expect("chunk cache lock").forget(id, &slot);
        Err(error.unwrap_or_else(|| {
            crate::Error::new(crate::ErrorKind::Corrupt, format!("chunk {id} could not be read"))
        }))
    }

    /// Whether the chunk is held (fetched, or being fetched).
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.lru.lock().expect("chunk cache lock").slots.contains_key(id)
    }

    /// Bytes of plaintext held.
    pub fn bytes(&self) -> usize {
        self.lru.lock().expect("chunk cache lock").bytes
    }

    /// The chunk's slot, made the most recently used; a new empty one if not held.
    fn slot(&self, id: &ChunkId) -> Slot {
        let mut lru = self.lru.lock().expect("chunk cache lock");
        lru.clock += 1;
        let now = lru.clock;
        let Lru { slots, order, .. } = &mut *lru;
        let (slot, used) = slots.entry(*id).or_insert_with(|| (Slot::default(), 0));
        order.remove(used);
        *used = now;
        order.insert(now, *id);
        slot.clone()
    }

    /// Account for a chunk just fetched and drop the least recently used chunks past the
    /// limit. Slots still being fetched hold no bytes yet and are left alone.
    fn added(&self, n: usize) {
        let mut lru = self.lru.lock().expect("chunk cache lock");
        lru.bytes += n;
        let mut skipped = Vec::new();
        while lru.bytes > self.limit {
            let Some((used, id)) = lru.order.pop_first() else { break };
            let len = lru.slots[&id].0.get().map(|v| v.as_ref().map_or(0, |b| b.len()));
            match len {
                Some(len) => {
                    lru.slots.remove(&id);
                    lru.bytes -= len;
                }
                None => skipped.push((used, id)),
            }
        }
        lru.order.extend(skipped);
    }
}

impl Lru {
    /// Drop a failed fetch's slot so that the next reader tries again.
    fn forget(&mut self, id: &ChunkId, slot: &Slot) {
        if let Some((held, used)) = self.slots.get(id) {
            if Arc::ptr_eq(held, slot) {
                self.order.remove(used);
                self.slots.remove(id);
            }
        }
    }
}

/// Where one open file's reader is, to tell a sequential reader from a random one and
/// fetch ahead of the former.
#[derive(Default)]
pub struct ReadAhead {
    /// Where the next read starts if the reader is sequential.
    expected: u64,
    /// Offset up to which chunks have been handed to the read-ahead.
    scheduled: u64,
}

impl ReadAhead {
    /// Note a read of `len` bytes at `offset`; returns the range whose chunks should now
    /// be fetched ahead (`window` bytes past the read), or None for a read that is not
    /// sequential or whose window is already under way. The kernel's own read-ahead sends
    /// several requests at once, which may arrive slightly out of order, so a read near
    /// the expected offset counts as sequential.
    pub fn next(&mut self, offset: u64, len: u64, window: u64) -> Option<(u64, u64)> {
        let end = offset.saturating_add(len);
        if offset.abs_diff(self.expected) > window / 2 {
            // A jump: start over from here. Only a reader starting again at the beginning
            // is taken for sequential at once; any other jump waits for its next read.
            (self.expected, self.scheduled) = (end, end);
            if offset != 0 {
                return None;
            }
        }
        self.expected = self.expected.max(end);
        let from = self.scheduled.max(end);
        let to = end.saturating_add(window);
        // Top up in steps of a quarter window so each step is worth a round of work.
        if to <= from || to - from < window / 4 {
            return None;
        }
        self.scheduled = to;
        Some((from, to - from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    #[test]
    fn the_cache_fetches_once_and_drops_the_least_recently_used() {
        let cache = ChunkCache::new(250);
        let fetches = AtomicUsize::new(0);
        let fetch = |c: &ChunkId| {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(vec![c.0[0]; 100])
        };
        assert_eq!(*cache.get(&id(1), fetch).unwrap(), vec![1; 100]);
        cache.get(&id(1), fetch).unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "the second read is served from memory");
        cache.get(&id(2), fetch).unwrap();
        cache.get(&id(1), fetch).unwrap(); // 1 is now newer than 2
        cache.get(&id(3), fetch).unwrap();
        assert_eq!(cache.bytes(), 200);
        assert!(cache.contains(&id(1)) && cache.contains(&id(3)) && !cache.contains(&id(2)));
    }

    #[test]
    fn a_failed_fetch_is_reported_and_tried_again_next_time() {
        let cache = ChunkCache::new(1000);
        let err = cache.get(&id(1), |_| Err(crate::Error::corrupt("bad"))).unwrap_err();
        assert!(err.to_string().contains("bad"), "{err}");
        assert!(!cache.contains(&id(1)));
        assert_eq!(*cache.get(&id(1), |_| Ok(vec![9])).unwrap(), vec![9]);
    }

    #[test]
    fn concurrent_readers_of_one_chunk_share_its_fetch() {
        let cache = ChunkCache::new(1 << 20);
        let fetches = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    cache
                        .get(&id(7), |_| {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(vec![7; 10])
                        })
                        .unwrap()
                });
            }
        });
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn read_ahead_follows_a_sequential_reader_only() {
        let mut ra = ReadAhead::default();
        assert_eq!(ra.next(0, 100, 1000), Some((100, 1000)));
        assert_eq!(ra.next(100, 100, 1000), None, "most of the window is under way");
        assert_eq!(ra.next(200, 300, 1000), Some((1100, 400)));
        // Out of order but near: still sequential.
        assert_eq!(ra.next(700, 100, 1000), Some((1500, 300)));
        assert_eq!(ra.next(500, 200, 1000), None);
        // A jump far away is a random read: nothing ahead, and the next read after it
        // starts a window again.
        assert_eq!(ra.next(50_000, 100, 1000), None);
        assert_eq!(ra.next(50_100, 100, 1000), Some((50_200, 1000)));
        // Reading the file again from the start reads ahead again.
        assert_eq!(ra.next(0, 100, 1000), Some((100, 1000)));
    }
}
