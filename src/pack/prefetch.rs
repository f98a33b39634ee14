//! Packs fetched ahead for a planned read from a remote store (restore).
//!
//! Without it, a restore thread fetched a pack when a file first needed it and then
//! opened its frames: the link idled while threads opened and wrote what they had, a large
//! file spanning many packs was fetched one pack after another by its one thread, and a
//! pack pushed out of the small whole-pack cache (`backend::cache`) by the other threads
//! was fetched whole once more. Traced on a 40 ms, 200 Mbit/s link (benches/wan.sh): the
//! last 2 s of a 4.9 s restore fetched one pack at a time, and one pack twice.
//!
//! With a plan (every frame the restore will open, in the order its files are taken),
//! fetcher threads fetch the packs in the order the plan first needs them, in pieces of
//! [`PIECE`] bytes from the pack's start (its header, so its key costs no request of its
//! own) to the end of its last planned frame; a piece no planned frame lies in is not
//! fetched. Pieces, not whole packs, so that data arrives in the order it is wanted, a
//! little at a time: whole packs fetched side by side all arrived at once, and the files
//! of the last few were still being written long after the link fell silent.
//!
//! A pack stays until each of its planned frames was opened, and goes then. Packs are
//! taken on while their bytes fit in [`BUDGET`], so the fetchers stay a few packs ahead of
//! the files being written. A reader that needs a pack the fetchers have not taken on yet
//! has it taken on first, making room by letting go of the fetched packs used longest
//! ago: a pack that a file far along the plan still needs a frame of would otherwise stay,
//! and with many such packs held, memory would grow with the restore. A reader that needs
//! a frame of a pack already let go, or never planned, reads that frame itself.

use crate::error::Result;
use crate::id::PackId;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Bytes of packs taken on at once. Four 8 MiB packs keep a 200 Mbit/s link with 40 ms
/// round trips busy while the files of earlier ones are written; the rest is room for
/// packs that frames planned further on still hold.
pub const BUDGET: u64 = 64 << 20;

/// Fetches in flight at once: one stream nearly fills a long link (benches/wan.sh
/// measures it); the others have the next pieces on their way while one ends.
pub const FETCHERS: usize = 3;

/// Bytes fetched per request, at most: a pack's span is cut into equal pieces of no
/// more than this (so no piece is a small remainder that costs a request of its own).
pub const PIECE: u64 = 2 << 20;

/// A pack whose planned frames reach further than this is not fetched ahead: its frames
/// are read one by one (the pack cache's bound for whole packs).
const MAX_SPAN: u64 = crate::backend::cache::MAX_CACHED_PACK;

/// What the plan still needs of one pack.
struct Needed {
    /// Bytes from the start of the pack to the end of its last planned frame.
    span: u64,
    /// Planned frames not opened yet: frame offset, sealed length, and the planned reads
    /// of its blobs.
    frames: HashMap<u32, (u32, u32)>,
}

enum Piece {
    /// No planned frame lies in it.
    Skipped,
    Wanted,
    Fetching,
    Fetched(Arc<Vec<u8>>),
}

/// A pack taken on: its pieces, and the bytes counted for it against the budget.
struct Held {
    pieces: Vec<Piece>,
    /// When a frame was last taken from it (a count of takes).
    used: u64,
    span: u64,
    /// Bytes per piece (the last may be shorter).
    piece: u64,
    counted: u64,
}

struct State {
    /// Packs in the order the plan first needs them.
    order: Vec<PackId>,
    /// The next pack of `order` the fetchers look at.
    next: usize,
    /// Packs with planned frames still to open. A pack that is not here is read by frame.
    needed: HashMap<PackId, Needed>,
    /// Packs taken on.
    held: HashMap<PackId, Held>,
    /// Packs taken on that have pieces still wanted, in the order they are fetched.
    queue: VecDeque<PackId>,
    bytes: u64,
    /// Bytes that may be taken on at once: [`BUDGET`] but in tests.
    budget: u64,
    /// Frames taken so far, the clock of `Held::used`.
    clock: u64,
    /// Fetcher threads running: readers wait for pieces only while one is.
    fetchers: usize,
    stopped: bool,
}

/// The packs a planned read fetches ahead, shared by the fetchers and the readers.
pub struct Prefetch {
    state: Mutex<State>,
    changed: Condvar,
}

impl Prefetch {
    /// A plan of frame reads `(pack, frame offset, sealed frame length)`, one per blob to
    /// be read, in about the order they will be read.
    pub fn new(reads: impl IntoIterator<Item = (PackId, u32, u32)>) -> Prefetch {
        Prefetch::with_budget(reads, BUDGET)
    }

    fn with_budget(reads: impl IntoIterator<Item = (PackId, u32, u32)>, budget: u64) -> Prefetch {
        let mut order = Vec::new();
        let mut needed: HashMap<PackId, Needed> = HashMap::new();
        for (pack, offset, length) in reads {
            let n = needed.entry(pack).or_insert_with(|| {
                order.push(pack);
                Needed { span: 0, frames: HashMap::new() }
            });
            n.span = n.span.max(u64::from(offset) + u64::from(length));
            n.frames.entry(offset).or_insert((length, 0)).1 += 1;
        }
        needed.retain(|_, n| n.span <= MAX_SPAN);
        order.retain(|p| needed.contains_key(p));
        let state = State {
            order,
            next: 0,
            needed,
            held: HashMap::new(),
            queue: VecDeque::new(),
            bytes: 0,
            budget,
            clock: 0,
            fetchers: 0,
            stopped: false,
        };
        Prefetch { state: Mutex::new(state), changed: Condvar::new() }
    }

    /// Count a fetcher in before its thread starts, so no reader stops waiting for it.
    pub fn fetcher_starting(&self) {
        self.lock().fetchers += 1;
    }

    /// Count a fetcher out: its thread ended, or did not start.
    pub fn fetcher_ended(&self) {
        self.lock().fetchers -= 1;
        self.changed.notify_all();
    }

    /// One fetcher (counted in by [`Prefetch::fetcher_starting`]): fetch pieces of the
    /// packs taken on, and take on the next planned pack when it fits in the budget,
    /// until the plan is done or [`Prefetch::stop`] is called. `fetch(pack, offset, len)`
    /// reads a range of a pack. A failed fetch lets its pack go: its frames are read
    /// one by one by the readers, who meet the error there.
    pub fn run_fetcher(&self, fetch: impl Fn(&PackId, u64, u64) -> Result<Vec<u8>>) {
        let mut s = self.lock();
        while !s.stopped {
            if let Some((pack, k)) = s.wanted_piece() {
                let Some(held) = s.held.get_mut(&pack) else { continue };
                held.pieces[k] = Piece::Fetching;
                let (offset, len) = held.piece_range(k);
                drop(s);
                let got = fetch(&pack, offset, len);
                s = self.lock();
                match got {
                    Ok(bytes) if bytes.len() as u64 == len => {
                        if let Some(held) = s.held.get_mut(&pack) {
                            held.pieces[k] = Piece::Fetched(Arc::new(bytes));
                        }
                    }
                    _ => s.fail(&pack),
                }
                self.changed.notify_all();
                continue;
            }
            match s.next_to_take_on() {
                Some(pack) if s.bytes == 0 || s.bytes + s.needed[&pack].span <= s.budget => {
                    s.next += 1;
                    s.take_on(pack, false);
                }
                None if s.queue.is_empty() => break,
                _ => s = self.changed.wait(s).expect("prefetch lock"),
            }
        }
        drop(s);
        self.fetcher_ended();
    }

    /// The sealed frame at `offset` of `pack` (`length` bytes) out of the fetched pieces,
    /// waited for; a planned pack the fetchers have not taken on yet is taken on first,
    /// ahead of the others. `None`: the caller reads the frame itself (the pack was let go,
    /// is too large, was not planned, or failed to fetch; or no fetcher runs).
    pub fn frame(&self, pack: &PackId, offset: u32, length: u32) -> Option<Vec<u8>> {
        let mut s = self.lock();
        loop {
            if s.stopped {
                return None;
            }
            let (start, end) = (u64::from(offset), u64::from(offset) + u64::from(length));
            match s.held.get(pack) {
                Some(held) if end <= held.span => {
                    let pieces =
                        &held.pieces[(start / held.piece) as usize..=((end - 1) / held.piece) as usize];
                    // The first piece too: the pack's key comes from the header in it.
                    let waiting = |p: &Piece| matches!(p, Piece::Wanted | Piece::Fetching);
                    if waiting(&held.pieces[0]) || pieces.iter().any(waiting) {
                        if s.fetchers == 0 {
                            return None;
                        }
                        s = self.changed.wait(s).expect("prefetch lock");
                        continue;
                    }
                    let frame = copy_out(pieces, start % held.piece, length as usize);
                    s.clock += 1;
                    let now = s.clock;
                    s.held.get_mut(pack).expect("held").used = now;
                    if s.open(pack, offset) {
                        self.changed.notify_all();
                    }
                    return frame;
                }
                None if s.fetchers > 0
                    && s.needed.get(pack).is_some_and(|n| n.frames.contains_key(&offset)) =>
                {
                    let span = s.needed[pack].span;
                    s.make_room(span);
                    s.take_on(*pack, true);
                    self.changed.notify_all();
                }
                _ => {
                    if s.open(pack, offset) {
                        self.changed.notify_all();
                    }
                    return None;
                }
            }
        }
    }

    /// Take reads out of the plan (a file that turned out not to need them): a pack none
    /// of whose planned frames are still wanted is let go, or never fetched.
    pub fn unplan(&self, reads: impl IntoIterator<Item = (PackId, u32)>) {
        let mut s = self.lock();
        let mut freed = false;
        for (pack, offset) in reads {
            let Some(n) = s.needed.get_mut(&pack) else { continue };
            let Some((_, left)) = n.frames.get_mut(&offset) else { continue };
            *left -= 1;
            if *left == 0 {
                freed |= s.open(&pack, offset);
            }
        }
        if freed {
            self.changed.notify_all();
        }
    }

    /// Whether the fetchers run: the plan's reads are under way.
    pub fn running(&self) -> bool {
        !self.lock().stopped
    }

    /// End the fetchers, and have every frame read by itself from now on.
    pub fn stop(&self) {
        let mut s = self.lock();
        s.stopped = true;
        s.needed.clear();
        s.held.clear();
        s.queue.clear();
        s.bytes = 0;
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("prefetch lock")
    }
}

impl State {
    /// The first wanted piece of the packs taken on, in their order.
    fn wanted_piece(&mut self) -> Option<(PackId, usize)> {
        while let Some(pack) = self.queue.front().copied() {
            let found =
                self.held.get(&pack).and_then(|h| h.pieces.iter().position(|p| matches!(p, Piece::Wanted)));
            match found {
                Some(k) => return Some((pack, k)),
                None => {
                    self.queue.pop_front();
                }
            }
        }
        None
    }

    /// The next pack of the plan's order that is still needed and not taken on.
    fn next_to_take_on(&mut self) -> Option<PackId> {
        while let Some(pack) = self.order.get(self.next).copied() {
            if self.needed.contains_key(&pack) && !self.held.contains_key(&pack) {
                return Some(pack);
            }
            self.next += 1;
        }
        None
    }

    /// Take on a needed pack: want each piece a planned frame lies in (and the first, for
    /// the header). `first`: fetch it before the packs taken on earlier.
    fn take_on(&mut self, pack: PackId, first: bool) {
        let n = &self.needed[&pack];
        let count = n.span.div_ceil(PIECE).max(1);
        let piece = n.span.div_ceil(count).max(1);
        let mut pieces: Vec<Piece> = (0..count).map(|_| Piece::Skipped).collect();
        pieces[0] = Piece::Wanted;
        for (&offset, &(length, _)) in &n.frames {
            let (start, end) = (u64::from(offset), u64::from(offset) + u64::from(length));
            for p in &mut pieces[(start / piece) as usize..=((end.max(1) - 1) / piece) as usize] {
                *p = Piece::Wanted;
            }
        }
        let mut held = Held { pieces, used: self.clock, span: n.span, piece, counted: 0 };
        held.counted = (0..held.pieces.len())
            .filter(|&k| matches!(held.pieces[k], Piece::Wanted))
            .map(|k| held.piece_range(k).1)
            .sum();
        let counted = held.counted;
        self.held.insert(pack, held);
        self.bytes += counted;
        match first {
            true => self.queue.push_front(pack),
            false => self.queue.push_back(pack),
        }
    }

    /// Let go of fetched packs, used longest ago first, until `span` more bytes fit in the
    /// budget; their frames still planned are read one by one.
    fn make_room(&mut self, span: u64) {
        while self.bytes + span > self.budget {
            let idle = self
                .held
                .iter()
                .filter(|(_, h)| h.pieces.iter().all(|p| matches!(p, Piece::Fetched(_) | Piece::Skipped)))
                .min_by_key(|(_, h)| h.used)
                .map(|(p, _)| *p);
            match idle {
                Some(pack) => self.fail(&pack),
                None => return,
            }
        }
    }

    /// Frame `offset` of `pack` was opened (or is wanted no more): when it was the pack's
    /// last planned frame, let the pack go. Whether bytes were freed.
    fn open(&mut self, pack: &PackId, offset: u32) -> bool {
        let Some(n) = self.needed.get_mut(pack) else { return false };
        n.frames.remove(&offset);
        if !n.frames.is_empty() {
            return false;
        }
        self.needed.remove(pack);
        self.release(pack)
    }

    /// Let the pack go and read its frames one by one: its fetch failed, or it made room.
    fn fail(&mut self, pack: &PackId) {
        self.needed.remove(pack);
        self.release(pack);
    }

    fn release(&mut self, pack: &PackId) -> bool {
        match self.held.remove(pack) {
            Some(held) => {
                self.bytes -= held.counted;
                true
            }
            None => false,
        }
    }
}

impl Held {
    /// Offset and length of piece `k`.
    fn piece_range(&self, k: usize) -> (u64, u64) {
        let start = k as u64 * self.piece;
        (start, self.piece.min(self.span - start))
    }
}

/// `length` bytes from `skip` bytes into the fetched `pieces`.
fn copy_out(pieces: &[Piece], mut skip: u64, length: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(length);
    for p in pieces {
        let Piece::Fetched(bytes) = p else { return None };
        let from = (skip as usize).min(bytes.len());
        let take = (length - out.len()).min(bytes.len() - from);
        out.extend_from_slice(&bytes[from..from + take]);
        skip = 0;
    }
    (out.len() == length).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;
    use crate::backend::watched::{Op, Watched};
    use crate::backend::FileType;
    use crate::index::{Index, Location};
    use crate::pack::PackReader;
    use crate::repo::{InitOptions, KeySource, Repository};
    use std::time::{Duration, Instant};

    /// The bytes the fake store of the logic tests holds at `offset` of `pack`.
    fn bytes_of(pack: &PackId, offset: u64, len: u64) -> Vec<u8> {
        (offset..offset + len).map(|i| (i as u8) ^ pack.0[0]).collect()
    }

    #[test]
    fn frames_come_from_the_fetched_pack_which_goes_after_its_last_planned_frame() {
        let (a, b, c) = (PackId([1; 32]), PackId([2; 32]), PackId([3; 32]));
        // b's one planned read goes (its file was already at the target) before any fetch.
        let p = Prefetch::new([(a, 10, 100), (b, 10, 100), (a, 110, 50), (c, 10, 30)]);
        p.unplan([(b, 10)]);
        let fetched = Mutex::new(Vec::new());
        p.fetcher_starting();
        std::thread::scope(|s| {
            s.spawn(|| {
                p.run_fetcher(|pack, offset, len| {
                    fetched.lock().unwrap().push((*pack, offset, len));
                    Ok(bytes_of(pack, offset, len))
                })
            });
            assert_eq!(p.frame(&a, 10, 100), Some(bytes_of(&a, 10, 100)));
            assert_eq!(p.frame(&a, 110, 50), Some(bytes_of(&a, 110, 50)));
            // a's planned frames are all open: it is let go, and a frame read again is
            // the caller's to read.
            assert_eq!(p.frame(&a, 10, 100), None);
            assert_eq!(p.frame(&c, 10, 30), Some(bytes_of(&c, 10, 30)));
        });
        // Each needed pack once, from its start to its last planned frame's end; b never.
        let mut fetched = fetched.into_inner().unwrap();
        fetched.sort();
        assert_eq!(fetched, vec![(a, 0, 160), (c, 0, 40)]);
        assert_eq!(p.lock().bytes, 0, "nothing held once every planned frame was opened");
    }

    #[test]
    fn a_failed_fetch_and_a_stop_leave_frames_to_the_reader() {
        let (a, b) = (PackId([1; 32]), PackId([2; 32]));
        let p = Prefetch::new([(a, 10, 100), (b, 10, 100)]);
        p.fetcher_starting();
        std::thread::scope(|s| {
            s.spawn(|| {
                p.run_fetcher(|pack, offset, len| match pack == &a {
                    true => Err(crate::error::Error::new(crate::error::ErrorKind::Io, "link down")),
                    false => Ok(bytes_of(pack, offset, len)),
                })
            });
            assert_eq!(p.frame(&a, 10, 100), None, "a failed: the reader reads it and meets the error");
            p.stop();
            assert_eq!(p.frame(&b, 10, 100), None, "stopped: nothing is waited for");
        });
        assert_eq!(p.lock().bytes, 0);
    }

    #[test]
    fn a_pack_a_later_frame_still_needs_is_let_go_when_a_reader_needs_room() {
        let (a, b, c) = (PackId([1; 32]), PackId([2; 32]), PackId([3; 32]));
        // Room for one pack: a's second frame is planned last, so a would stay throughout.
        let plan = [(a, 10, 100), (b, 10, 500), (c, 10, 500), (a, 500, 100)];
        let p = Prefetch::with_budget(plan, 700);
        let fetched = Mutex::new(Vec::new());
        p.fetcher_starting();
        std::thread::scope(|s| {
            s.spawn(|| {
                p.run_fetcher(|pack, offset, len| {
                    fetched.lock().unwrap().push(*pack);
                    assert!(p.lock().bytes <= 700, "within the budget while fetching");
                    Ok(bytes_of(pack, offset, len))
                })
            });
            assert_eq!(p.frame(&a, 10, 100), Some(bytes_of(&a, 10, 100)));
            assert_eq!(p.frame(&b, 10, 500), Some(bytes_of(&b, 10, 500)));
            assert_eq!(p.frame(&c, 10, 500), Some(bytes_of(&c, 10, 500)));
            assert_eq!(p.frame(&a, 500, 100), None, "a was let go: its last frame is read alone");
        });
        assert_eq!(fetched.into_inner().unwrap().iter().filter(|p| **p == a).count(), 1);
        assert_eq!(p.lock().bytes, 0);
    }

    #[test]
    fn with_no_fetcher_running_nothing_is_waited_for() {
        let a = PackId([1; 32]);
        let p = Prefetch::new([(a, 10, 100)]);
        assert_eq!(p.frame(&a, 10, 100), None);
    }

    /// How long the store of the next test takes to answer a pack read.
    const ROUND_TRIP: Duration = Duration::from_millis(100);

    #[test]
    fn one_thread_reading_a_plan_has_several_pack_reads_in_flight_and_each_piece_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("r");
        let opts = InitOptions { pack_size: 4 << 20, ..InitOptions::default() };
        let repo = Repository::init(loc.to_str().unwrap(), b"pw", &opts, None).unwrap();
        // Incompressible blobs of 1.5 MiB, each a frame of its own: three to a pack, so
        // frames lie across the pieces packs are fetched in.
        let blobs: Vec<Vec<u8>> = (0..6)
            .map(|_| {
                let mut b = vec![0u8; 3 << 19];
                crate::crypto::keys::fill_random(&mut b).unwrap();
                b
            })
            .collect();
        let ids = crate::pack::writer::store_chunks(&repo, &blobs);
        drop(repo);

        // The same repository behind a long round trip: each pack read is noted when it
        // starts, and answered a round trip later.
        let started = Arc::new(Mutex::new(Vec::new()));
        let noted = started.clone();
        let store = Watched::new(LocalBackend::new(&loc), move |op, ft| {
            if op == Op::ReadRange && ft == FileType::Pack {
                noted.lock().unwrap().push(Instant::now());
                std::thread::sleep(ROUND_TRIP);
            }
        });
        let cached = crate::backend::cache::PackCache::new(Box::new(store.remote()));
        let repo = Repository::open_on(Box::new(cached), b"pw", &KeySource::Stored).unwrap();
        let index = Index::load(&repo).unwrap();
        let planned: Vec<Location> = ids.iter().map(|id| index.get(id).unwrap()).collect();
        let reader = PackReader::new(&repo);
        reader.plan_reads(planned.clone());
        let read: Vec<Vec<u8>> =
            reader.fetching_ahead(|| planned.iter().map(|l| reader.read_blob(l).unwrap()).collect());
        assert!(read == blobs, "every blob read back as written");

        let mut spans: HashMap<PackId, u64> = HashMap::new();
        for l in &planned {
            let end = u64::from(l.entry.offset) + u64::from(l.entry.length);
            spans.entry(l.pack).and_modify(|s| *s = (*s).max(end)).or_insert(end);
        }
        assert_eq!(spans.len(), 2, "two packs");
        let pieces: u64 = spans.values().map(|s| s.div_ceil(PIECE)).sum();
        let mut starts = started.lock().unwrap().clone();
        // No read of a header or of a frame alone: each piece once.
        assert_eq!(starts.len() as u64, pieces);
        // Read one after another, each would start a round trip after the one before.
        starts.sort();
        let overlapping = starts.windows(2).filter(|w| w[1] - w[0] < ROUND_TRIP / 2).count();
        assert!(overlapping >= 2, "pack reads overlapped {overlapping} times");

        // Once the plan is read (restore --delete then reads trees), the whole-pack cache
        // serves again: two blobs of one pack, one request.
        let before = started.lock().unwrap().len();
        assert!(reader.read_blob(&planned[0]).unwrap() == blobs[0]);
        assert!(reader.read_blob(&planned[1]).unwrap() == blobs[1]);
        assert_eq!(started.lock().unwrap().len(), before + 1);
    }
}
