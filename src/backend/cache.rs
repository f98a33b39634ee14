//! A small cache of whole packs for remote backends.
//!
//! Copy, dump and mount read blobs one at a time, and the blobs of one pack usually one
//! after the other (restore plans its reads and fetches packs itself: `pack::prefetch`). On a local disk a ranged read costs a system call; on a remote store each is
//! a request with a round trip (and some stores read the whole object to serve a range).
//! So the first ranged read of a pack fetches it whole, and the next reads are served
//! from memory. Only packs up to [`MAX_CACHED_PACK`] are cached, and at most
//! [`CACHE_BYTES`] in all, oldest out first; larger packs are read by range as before.
//! Two threads asking for the same pack wait for one fetch.

use super::{Backend, FileType};
use crate::error::Result;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

/// Memory the cache may hold.
pub const CACHE_BYTES: u64 = 96 << 20;
/// Larger packs are not fetched whole.
pub const MAX_CACHED_PACK: u64 = 32 << 20;

type Slot = Arc<OnceLock<Option<Arc<Vec<u8>>>>>;

pub struct PackCache {
    inner: Box<dyn Backend>,
    /// Oldest first: name, the pack once fetched (None: not cacheable, read by range).
    packs: Mutex<VecDeque<(String, Slot)>>,
}

impl PackCache {
    pub fn new(inner: Box<dyn Backend>) -> Self {
        PackCache { inner, packs: Mutex::new(VecDeque::new()) }
    }

    fn slot(&self, name: &str) -> Slot {
        let mut packs = self.packs.lock().expect("pack cache lock");
        if let Some((_, s)) = packs.iter().find(|(n, _)| n == name) {
            return s.clone();
        }
        let s: Slot = Arc::new(OnceLock::new());
        packs.push_back((name.to_string(), s.clone()));
        // Evict the oldest until the fetched packs fit.
        let size = |s: &Slot| s.get().and_then(|p| p.as_ref()).map_or(0, |p| p.len() as u64);
        while packs.iter().map(|(_, s)| size(s)).sum::<u64>() + MAX_CACHED_PACK > CACHE_BYTES {
            if packs.pop_front().is_none() {
                break;
            }
        }
        s
    }

    fn forget(&self, name: &str) {
        self.packs.lock().expect("pack cache lock").retain(|(n, _)| n != name);
    }
}

impl Backend for PackCache {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn read(&self, ft: FileType, name: &str, max: u64) -> Result<Vec<u8>> {
        self.inner.read(ft, name, max)
    }

    fn arrival_is_authoritative(&self) -> bool {
        self.inner.arrival_is_authoritative()
    }
    fn object_lock(&self) -> Option<&dyn super::object_lock::ObjectLock> {
        self.inner.object_lock()
    }

    fn modified(&self, ft: FileType, name: &str) -> Result<Option<std::time::SystemTime>> {
        self.inner.modified(ft, name)
    }

    fn read_range(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if ft != FileType::Pack {
            return self.inner.read_range(ft, name, offset, len);
        }
        let slot = self.slot(name);
        let mut failure = None;
        let pack = slot.get_or_init(|| {
            // One request, not a size lookup and then a read (a round trip less per pack):
            // ask for one byte more than may be cached. A shorter answer is the whole pack;
            // a full one means a larger pack, read by range from then on.
            match self.inner.read_range(ft, name, 0, MAX_CACHED_PACK + 1) {
                Ok(bytes) if bytes.len() as u64 <= MAX_CACHED_PACK => Some(Arc::new(bytes)),
                Ok(_) => None,
                Err(e) => {
                    failure = Some(e);
                    None
                }
            }
        });
        if let Some(e) = failure {
            self.forget(name);
            return Err(e);
        }
        match pack {
            Some(p) => {
                let start = (offset.min(p.len() as u64)) as usize;
                let end = (offset.saturating_add(len).min(p.len() as u64)) as usize;
                Ok(p[start..end].to_vec())
            }
            None => self.inner.read_range(ft, name, offset, len),
        }
    }

    fn read_range_direct(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.read_range(ft, name, offset, len)
    }

    fn write(&self, ft: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        self.inner.write(ft, name, bytes)
    }

    fn list_detailed(&self, ft: FileType) -> Result<Vec<super::Listed>> {
        self.inner.list_detailed(ft)
    }

    fn list(&self, ft: FileType) -> Result<Vec<String>> {
        self.inner.list(ft)
    }

    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        self.inner.size(ft, name)
    }

    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        if ft == FileType::Pack {
            self.forget(name);
        }
        self.inner.remove(ft, name)
    }

    fn write_parallelism(&self) -> usize {
        self.inner.write_parallelism()
    }

    fn read_parallelism(&self) -> usize {
        self.inner.read_parallelism()
    }
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }

    fn leftovers(&self, age: std::time::Duration) -> Result<Vec<super::Leftover>> {
        self.inner.leftovers(age)
    }

    fn remove_leftover(&self, path: &str) -> Result<()> {
        self.inner.remove_leftover(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;
    use crate::backend::watched::{Op, Watched};

    #[test]
    fn ranges_come_from_one_fetch_and_match_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalBackend::new(dir.path().join("r"));
        local.create().unwrap();
        let name = "ab".to_string() + &"1".repeat(62);
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        local.write(FileType::Pack, &name, &bytes).unwrap();
        let cache = PackCache::new(Box::new(LocalBackend::new(dir.path().join("r"))));
        assert_eq!(cache.read_range(FileType::Pack, &name, 10, 20).unwrap(), &bytes[10..30]);
        // The pack is now held: deleting it underneath does not change what is served...
        std::fs::remove_file(dir.path().join("r/data/ab").join(&name)).unwrap();
        assert_eq!(cache.read_range(FileType::Pack, &name, 99_990, 50).unwrap(), &bytes[99_990..]);
        // ...and a missing pack is still NotFound, and not cached.
        let other = "cd".to_string() + &"2".repeat(62);
        let e = cache.read_range(FileType::Pack, &other, 0, 1).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::NotFound);
        assert!(cache.packs.lock().unwrap().iter().all(|(n, _)| n != &other));
    }

    #[test]
    fn a_pack_costs_one_request_and_larger_packs_are_read_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalBackend::new(dir.path().join("r"));
        local.create().unwrap();
        let small = "ab".to_string() + &"1".repeat(62);
        let small_bytes = vec![5u8; 300_000];
        local.write(FileType::Pack, &small, &small_bytes).unwrap();
        let big = "cd".to_string() + &"2".repeat(62);
        let big_bytes: Vec<u8> = (0..MAX_CACHED_PACK + 10).map(|i| (i % 251) as u8).collect();
        local.write(FileType::Pack, &big, &big_bytes).unwrap();
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = requests.clone();
        // Every request for an object's bytes or size reaches the store.
        let store = Watched::new(LocalBackend::new(dir.path().join("r")), move |op, _| {
            if matches!(op, Op::Read | Op::ReadRange | Op::Size) {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let cache = PackCache::new(Box::new(store));
        let sent = || requests.load(std::sync::atomic::Ordering::Relaxed);
        for (offset, len) in [(0, 10), (1000, 5000), (299_990, 100)] {
            let got = cache.read_range(FileType::Pack, &small, offset, len).unwrap();
            assert_eq!(got, &small_bytes[offset as usize..(offset + len).min(300_000) as usize]);
        }
        assert_eq!(sent(), 1, "three reads of a cacheable pack, one request");
        let got = cache.read_range(FileType::Pack, &big, MAX_CACHED_PACK, 10).unwrap();
        assert_eq!(got, &big_bytes[MAX_CACHED_PACK as usize..]);
        let got = cache.read_range(FileType::Pack, &big, 5, 5).unwrap();
        assert_eq!(got, &big_bytes[5..10]);
        assert_eq!(sent(), 4, "a larger pack: one probe, then one request per read");
    }
}
