//! Opened frames kept for the blobs still to be read from them, so that a frame shared
//! by many small files is decrypted and decompressed once, not once per file.
//!
//! Without a plan the cache keeps the most recently opened frames within a small budget:
//! enough for a few threads each reading a file's chunks in a row. A reader that knows
//! every blob it will read (restore) gives the cache that plan: a frame is then kept until
//! its last planned blob was taken, and dropped at once after that, within a larger
//! budget. Measured on a 12,382-file corpus (575 MB) restored in tree order by two
//! threads: the plain 8-frame cache decompressed 717 MB for 495 MB of distinct frames;
//! with the plan each frame was opened about once (see benches/RESULTS.md).
//!
//! Frames past the budget are dropped least recently used first, so a frame planned for a
//! file that turns out not to need it (already identical at the target, or damaged) only
//! waits for the budget to push it out.

use crate::id::PackId;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};

/// A frame is named by its pack and its offset in the pack.
pub type FrameKey = (PackId, u32);

/// Plaintext bytes of opened frames kept without a plan: eight frames of the usual
/// (at most 1 MiB) size.
const UNPLANNED_BUDGET: usize = 8 << 20;

/// Plaintext bytes kept with a plan: each restore thread works through a region of the
/// tree whose frames are open at once; 14 frames at most for one thread on the corpus
/// above, so this leaves room for several threads.
const PLANNED_BUDGET: usize = 48 << 20;

struct Slot {
    frame: Arc<Vec<u8>>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    frames: HashMap<FrameKey, Slot>,
    /// Planned reads still to come per frame (empty without a plan).
    planned: HashMap<FrameKey, u32>,
    /// Frames a thread is opening now: others wanting them wait for it rather than open
    /// them too (threads restoring neighbouring files want the same frame at once).
    opening: HashSet<FrameKey>,
    bytes: usize,
    clock: u64,
}

#[derive(Default)]
pub struct FrameCache {
    inner: Mutex<Inner>,
    opened: Condvar,
}

/// What the cache has of a frame.
pub enum Lookup<'c> {
    /// The frame, opened before (one read of it counted).
    Kept(Arc<Vec<u8>>),
    /// Not kept: the caller opens it and hands it to [`Claim::fill`]; others wanting it
    /// wait meanwhile (until the claim is filled or dropped).
    Open(Claim<'c>),
}

/// The caller's turn to open a frame.
pub struct Claim<'c> {
    cache: &'c FrameCache,
    key: FrameKey,
}

impl FrameCache {
    /// Plan these reads, one per blob to be read (a frame named twice is read twice).
    pub fn plan(&self, reads: impl IntoIterator<Item = FrameKey>) {
        let mut inner = self.lock();
        for key in reads {
            *inner.planned.entry(key).or_default() += 1;
        }
    }

    /// Take reads out of the plan (one per blob no longer to be read): a frame whose
    /// planned reads are all gone is dropped.
    pub fn unplan(&self, reads: impl IntoIterator<Item = FrameKey>) {
        let mut inner = self.lock();
        for key in reads {
            if inner.spend(key) == Some(0) {
                inner.remove(key);
            }
        }
    }

    /// The opened frame `key` if it is kept (counting one read of it), or else the turn
    /// to open it, once no other thread is opening it.
    pub fn get(&self, key: FrameKey) -> Lookup<'_> {
        let mut inner = self.lock();
        while inner.opening.contains(&key) {
            inner = self.opened.wait(inner).expect("frame cache lock");
        }
        inner.clock += 1;
        let now = inner.clock;
        let Some(slot) = inner.frames.get_mut(&key) else {
            inner.opening.insert(key);
            return Lookup::Open(Claim { cache: self, key });
        };
        slot.last_used = now;
        let frame = slot.frame.clone();
        if inner.spend(key) == Some(0) {
            inner.remove(key);
        }
        Lookup::Kept(frame)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("frame cache lock")
    }
}

impl Claim<'_> {
    /// The frame is open, for one read: keep it if more reads of it are to come (with a
    /// plan) or may come (without one).
    pub fn fill(self, frame: Arc<Vec<u8>>) {
        let mut inner = self.cache.lock();
        let planned = !inner.planned.is_empty();
        if inner.spend(self.key) == Some(0) {
            return; // its last read: nothing to keep it for
        }
        inner.clock += 1;
        inner.bytes += frame.len();
        let last_used = inner.clock;
        inner.frames.insert(self.key, Slot { frame, last_used });
        let budget = if planned { PLANNED_BUDGET } else { UNPLANNED_BUDGET };
        while inner.bytes > budget && inner.frames.len() > 1 {
            let oldest = *inner.frames.iter().min_by_key(|(_, s)| s.last_used).expect("not empty").0;
            inner.remove(oldest);
        }
    }
}

impl Drop for Claim<'_> {
    /// Filled or not (opening failed, or the frame was one blob alone), the turn ends.
    fn drop(&mut self) {
        self.cache.lock().opening.remove(&self.key);
        self.cache.opened.notify_all();
    }
}

#[cfg(test)]
impl FrameCache {
    pub fn is_empty(&self) -> bool {
        let inner = self.lock();
        inner.frames.is_empty() && inner.planned.is_empty() && inner.opening.is_empty() && inner.bytes == 0
    }
}

impl Inner {
    /// Count one read of `key` against the plan: the reads left, or `None` if the frame
    /// was not planned.
    fn spend(&mut self, key: FrameKey) -> Option<u32> {
        let left = self.planned.get_mut(&key)?;
        *left = left.saturating_sub(1);
        let now = *left;
        if now == 0 {
            self.planned.remove(&key);
        }
        Some(now)
    }

    fn remove(&mut self, key: FrameKey) {
        if let Some(slot) = self.frames.remove(&key) {
            self.bytes -= slot.frame.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> FrameKey {
        (PackId([n; 32]), u32::from(n))
    }

    fn frame(len: usize) -> Arc<Vec<u8>> {
        Arc::new(vec![0; len])
    }

    /// Open frame `n` (it must not be kept) for one read.
    fn keep(c: &FrameCache, n: u8, len: usize) {
        match c.get(key(n)) {
            Lookup::Open(claim) => claim.fill(frame(len)),
            Lookup::Kept(_) => panic!("frame {n} was kept already"),
        }
    }

    /// Read frame `n` if it is kept.
    fn take(c: &FrameCache, n: u8) -> bool {
        matches!(c.get(key(n)), Lookup::Kept(_))
    }

    #[test]
    fn without_a_plan_the_most_recent_frames_are_kept_within_the_budget() {
        let c = FrameCache::default();
        for n in 0..10 {
            keep(&c, n, 1 << 20);
        }
        assert!(!take(&c, 0) && !take(&c, 1), "oldest dropped");
        assert!((2..10).all(|n| take(&c, n)));
        assert!(take(&c, 2), "kept after a read: more may come");
    }

    #[test]
    fn with_a_plan_a_frame_stays_until_its_last_read_and_goes_then() {
        let c = FrameCache::default();
        c.plan([key(1), key(1), key(1), key(2)]);
        keep(&c, 2, 10); // its only read: nothing to keep it for
        assert!(!take(&c, 2));
        keep(&c, 1, 10); // first of three reads
                         // Far more frames than the unplanned budget pass through meanwhile.
        for n in 10..40 {
            c.plan([key(n), key(n)]);
            keep(&c, n, 1 << 20);
        }
        assert!(take(&c, 1), "second read");
        assert!(take(&c, 1), "third read");
        assert!(!take(&c, 1), "gone after its last planned read");
    }

    #[test]
    fn planned_frames_past_the_budget_go_least_recently_used_first() {
        let c = FrameCache::default();
        let n_frames = (PLANNED_BUDGET >> 20) as u8 + 4;
        for n in 0..n_frames {
            c.plan([key(n), key(n)]);
            keep(&c, n, 1 << 20);
        }
        assert!(!take(&c, 0), "the oldest went for the budget");
        assert!(take(&c, n_frames - 1));
        assert!(c.lock().bytes <= PLANNED_BUDGET);
    }

    #[test]
    fn a_frame_being_opened_is_waited_for_not_opened_twice() {
        let c = FrameCache::default();
        c.plan([key(1), key(1)]);
        let Lookup::Open(claim) = c.get(key(1)) else { panic!("nothing kept yet") };
        std::thread::scope(|s| {
            let other = s.spawn(|| take(&c, 1));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!other.is_finished(), "the second reader waits for the first");
            claim.fill(frame(10));
            assert!(other.join().unwrap(), "and then reads the frame the first opened");
        });
        // A claim given up (the open failed) lets the next reader open it itself.
        c.plan([key(2)]);
        drop(c.get(key(2)));
        let Lookup::Open(claim) = c.get(key(2)) else { panic!("a given-up frame is not kept") };
        claim.fill(frame(10)); // its one planned read: not kept
        assert!(c.is_empty(), "nothing kept, planned or claimed");
    }
}
