//! Saves blobs into new packs: skips blobs the repository already has (or that this run
//! already saved), compresses and seals the rest, and hands each full pack to an uploader
//! thread (several for remote stores) that stores it and writes index files naming stored
//! packs, so the order packs -> index -> snapshot always holds.
//!
//! Blobs are gathered into frames (`frames.rs`) that are compressed and sealed as one:
//! consecutive chunks of a file, or the small files one thread reads one after another,
//! share a compression context.
//!
//! When a run ends, every pack it stored and every pack holding a blob it took from the
//! index instead of storing it again is checked to be still there (one listing): a prune
//! that ran meanwhile, having judged this run's lock stale or ignored it, makes the run
//! fail before its caller writes a snapshot, never a snapshot that names missing data.
//!
//! Safe to share between threads: each worker thread fills its own frame and pack, so its
//! lock is only ever taken by its owner (trees share one); a full pack is handed to the
//! uploader. The hand-over waits while the uploaders still write earlier packs, so memory
//! holds the builders and one pack per uploader, and workers wait for the disk only when
//! it is slower than they are.

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::index::IndexFile;
use crate::format::pack::{Entry, PackClass, MAX_BLOB};
use crate::id::{BlobId, BlobKind, PackId};
use crate::index::Index;
use crate::pack::frames::{Frame, Framer};
use crate::pack::{FinishedPack, PackBuilder};
use crate::repo::Repository;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

/// What one worker thread (or all tree saves) is filling: a pack, and the frame that
/// goes into it next.
struct Filling {
    pack: Option<PackBuilder>,
    framer: Framer,
    /// What its packs are: `None` (version 3 or 4) in a repository without maintenance.
    class: Option<PackClass>,
}

/// Packs written but not yet named by an index file; after this many, write one, so an
/// interrupted run leaves little unindexed data behind.
const PACKS_PER_INDEX: usize = 4;

pub struct BlobWriter<'r> {
    repo: &'r Repository,
    index: Index,
    claimed: Mutex<HashSet<[u8; 32]>>,
    /// What each worker thread fills with chunks (slot 0 for threads outside the pool),
    /// so sealing runs in parallel and a lock is only ever taken by its owner.
    data: Vec<Mutex<Filling>>,
    trees: Mutex<Filling>,
    /// References records (format-spec/maintenance-key.md), in packs of their own.
    references: Mutex<Filling>,
    queue: Mutex<Option<SyncSender<FinishedPack>>>,
    /// The first error of an uploader; later saves fail with it at once.
    upload_failed: Mutex<Option<Error>>,
    unindexed: Mutex<Vec<(PackId, Vec<Entry>)>>,
    /// Packs this run stored.
    stored: Mutex<Vec<PackId>>,
    /// Index positions of blobs this run found in the index instead of storing them
    /// (one bit each): what its caller's snapshot relies on being there.
    relied_on: Vec<AtomicU64>,
    /// Buffers of stored packs, reused for new ones: memory a backup has touched once
    /// serves every later pack instead of being returned and faulted in again.
    spare_buffers: Mutex<Vec<Vec<u8>>>,
    pub blobs_new: AtomicU64,
    pub bytes_stored: AtomicU64,
}

/// What a run of the writer stored.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriterStats {
    pub blobs_new: u64,
    pub bytes_stored: u64,
}

impl Filling {
    fn new(repo: &Repository, class: PackClass) -> Mutex<Filling> {
        let class = (repo.writes_summaries() || class == PackClass::References).then_some(class);
        let level = repo.config().compression_level;
        // Data packs with a maintenance table hold a blob per frame: a maintenance key's
        // prune moves frames whole, so it then keeps exactly the blobs in use.
        let framer = match class {
            Some(PackClass::Data) => Framer::frame_per_blob(level),
            _ => Framer::new(level),
        };
        Mutex::new(Filling { pack: None, framer, class })
    }
}

impl<'r> BlobWriter<'r> {
    /// Run `work` with a writer; afterwards every blob it saved is in a stored pack named
    /// by a stored index file, also when `work` or the storing failed (whatever was stored
    /// is indexed, so a later run reuses it). Returns `work`'s result and what was stored;
    /// an error of storing or indexing takes precedence.
    pub fn run<T: Send>(
        repo: &'r Repository,
        index: Index,
        work: impl FnOnce(&BlobWriter<'r>) -> T + Send,
    ) -> Result<(T, WriterStats)> {
        let (tx, rx) = sync_channel::<FinishedPack>(0);
        let relied_on = (0..index.len().div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        let writer = BlobWriter {
            repo,
            index,
            claimed: Mutex::new(HashSet::new()),
            data: (0..=rayon::current_num_threads()).map(|_| Filling::new(repo, PackClass::Data)).collect(),
            trees: Filling::new(repo, PackClass::Data),
            references: Filling::new(repo, PackClass::References),
            queue: Mutex::new(Some(tx)),
            upload_failed: Mutex::new(None),
            unindexed: Mutex::new(Vec::new()),
            stored: Mutex::new(Vec::new()),
            relied_on,
            spare_buffers: Mutex::new(Vec::new()),
            blobs_new: AtomicU64::new(0),
            bytes_stored: AtomicU64::new(0),
        };
        // Remote stores hide their round trips behind several uploads at once; each
        // uploader holds one pack, so memory grows by a pack per extra uploader.
        let rx = Mutex::new(rx);
        let out = std::thread::scope(|s| {
            for _ in 0..repo.backend().write_parallelism().max(1) {
                s.spawn(|| writer.upload(&rx));
            }
            let out = work(&writer);
            let finished = writer.finish_builders();
            // Closing the queue ends the uploader once it has stored what is queued.
            writer.queue.lock().expect("queue lock").take();
            (out, finished)
        });
        let (out, finished) = out;
        crate::failpoint::hit("pack-writer:after-packs");
        let indexed =
            writer.write_index(std::mem::take(&mut *writer.unindexed.lock().expect("unindexed lock")));
        if let Some(e) = writer.upload_failed.lock().expect("upload lock").take() {
            return Err(e);
        }
        indexed?;
        finished?;
        writer.check_still_stored()?;
        let stats = WriterStats {
            blobs_new: writer.blobs_new.load(Ordering::Relaxed),
            bytes_stored: writer.bytes_stored.load(Ordering::Relaxed),
        };
        Ok((out, stats))
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn repo(&self) -> &'r Repository {
        self.repo
    }

    /// Whether the repository has (or this run has saved) the blob.
    pub fn has(&self, id: &BlobId) -> bool {
        self.in_index(id) || self.claimed.lock().expect("claimed lock").contains(id.bytes())
    }

    /// Whether the index has the blob; if so, the run now relies on it.
    fn in_index(&self, id: &BlobId) -> bool {
        let Some(p) = self.index.position(id) else { return false };
        self.relied_on[p / 64].fetch_or(1 << (p % 64), Ordering::Relaxed);
        true
    }

    /// Fail if a pack this run stored, or the last copy of a blob it relied on, is gone.
    fn check_still_stored(&self) -> Result<()> {
        let listed: HashSet<PackId> = self
            .repo
            .backend()
            .list(FileType::Pack)?
            .iter()
            .filter_map(|n| PackId::from_hex(n).ok())
            .collect();
        let own_gone =
            self.stored.lock().expect("stored lock").iter().filter(|p| !listed.contains(p)).count();
        let relied_gone = (0..self.index.len())
            .filter(|&p| self.relied_on[p / 64].load(Ordering::Relaxed) & (1 << (p % 64)) != 0)
            .filter(|&p| !self.index.stored_at(p, &listed))
            .count();
        if own_gone + relied_gone > 0 {
            return Err(Error::new(
                ErrorKind::Locked,
                format!(
                    "{} blobs this run relies on and {own_gone} packs it stored were deleted while it ran (a prune that took this run's lock for stale?); nothing that names them was written; run it again",
                    relied_gone
                ),
            ));
        }
        Ok(())
    }

    /// Save a blob unless it is known. Returns whether it was new.
    pub fn save(&self, id: BlobId, plaintext: &[u8]) -> Result<bool> {
        self.save_unless(id, plaintext, true)
    }

    /// Save a blob the index names but whose copies do not read back intact (repair),
    /// unless this run saved it already.
    pub fn save_anew(&self, id: BlobId, plaintext: &[u8]) -> Result<bool> {
        self.save_unless(id, plaintext, false)
    }

    fn save_unless(&self, id: BlobId, plaintext: &[u8], indexed: bool) -> Result<bool> {
        if let Some(e) = self.upload_failed.lock().expect("upload lock").as_ref() {
            return Err(Error::new(e.kind(), format!("storing packs failed: {e}")));
        }
        if plaintext.len() > MAX_BLOB as usize {
            return Err(Error::invalid(format!("{id} is larger than the blob limit")));
        }
        if (indexed && self.in_index(&id)) || !self.claimed.lock().expect("claimed lock").insert(*id.bytes())
        {
            return Ok(false);
        }
        let full = {
            let mut f = self.filling(id.kind()).lock().expect("filling lock");
            match f.framer.add(id, plaintext) {
                Some(frame) => self.seal(&mut f, frame)?,
                None => None,
            }
        };
        self.blobs_new.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = full {
            self.enqueue(p);
        }
        Ok(true)
    }

    fn filling(&self, kind: BlobKind) -> &Mutex<Filling> {
        match kind {
            BlobKind::Chunk => {
                let slot = rayon::current_thread_index().map_or(0, |i| i + 1);
                &self.data[slot.min(self.data.len() - 1)]
            }
            BlobKind::Tree => &self.trees,
            BlobKind::References => &self.references,
        }
    }

    /// Seal a frame into the pack being filled; returns the pack if that filled it.
    fn seal(&self, f: &mut Filling, frame: Frame<'_>) -> Result<Option<FinishedPack>> {
        let pack_size = self.repo.config().pack_size as usize;
        if f.pack.is_none() {
            let spare = self.spare_buffers.lock().expect("spare lock").pop().unwrap_or_default();
            f.pack = Some(PackBuilder::reusing(pack_size, f.class, spare));
        }
        let b = f.pack.as_mut().expect("set above");
        b.add_frame(self.repo.keys(), &frame.blobs, &frame.encoded)?;
        Ok(if b.size() >= pack_size { f.pack.take().map(PackBuilder::finish) } else { None })
    }

    fn enqueue(&self, pack: FinishedPack) {
        let tx = self.queue.lock().expect("queue lock").clone();
        // The uploader only stops receiving after a failure, which `save` reports.
        if let Some(tx) = tx {
            let _ = tx.send(pack);
        }
    }

    /// Seal the open frames and queue the partly filled packs.
    fn finish_builders(&self) -> Result<()> {
        let mut result = Ok(());
        for slot in self.data.iter().chain([&self.trees, &self.references]) {
            let mut f = slot.lock().expect("filling lock");
            if let Some(frame) = f.framer.finish() {
                match self.seal(&mut f, frame) {
                    Ok(Some(full)) => self.enqueue(full),
                    Ok(None) => {}
                    Err(e) => result = result.and(Err(e)),
                }
            }
            if let Some(b) = f.pack.take().filter(|b| !b.is_empty()) {
                self.enqueue(b.finish());
            }
        }
        result
    }

    /// An uploader: store each queued pack, and index every few stored packs.
    fn upload(&self, rx: &Mutex<Receiver<FinishedPack>>) {
        loop {
            // The lock is held only while waiting for the next pack, not while storing it.
            let Ok(pack) = rx.lock().expect("queue lock").recv() else { return };
            // After a failure, packs still queued are dropped (the run fails anyway), but
            // the queue keeps draining so no worker waits forever to hand one over.
            if self.upload_failed.lock().expect("upload lock").is_some() {
                continue;
            }
            if let Err(e) = self.store(pack) {
                self.upload_failed.lock().expect("upload lock").get_or_insert(e);
            }
        }
    }

    fn store(&self, mut pack: FinishedPack) -> Result<()> {
        self.repo.backend().write(FileType::Pack, &pack.id.to_hex(), pack.bytes())?;
        self.stored.lock().expect("stored lock").push(pack.id);
        self.bytes_stored.fetch_add(pack.bytes().len() as u64, Ordering::Relaxed);
        let (id, entries) = (pack.id, std::mem::take(&mut pack.entries));
        self.spare_buffers.lock().expect("spare lock").push(pack.into_buffer());
        let batch = {
            let mut u = self.unindexed.lock().expect("unindexed lock");
            u.push((id, entries));
            if u.len() >= PACKS_PER_INDEX {
                std::mem::take(&mut *u)
            } else {
                Vec::new()
            }
        };
        self.write_index(batch)
    }

    fn write_index(&self, packs: Vec<(PackId, Vec<Entry>)>) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        self.repo.save_index(&IndexFile { supersedes: Vec::new(), packs })?;
        Ok(())
    }
}

/// Store `blobs` as chunks in new packs and index files, for tests that read them back;
/// their ids, in order.
#[cfg(test)]
pub(crate) fn store_chunks(repo: &Repository, blobs: &[Vec<u8>]) -> Vec<BlobId> {
    let ids: Vec<BlobId> = blobs.iter().map(|b| BlobId::Chunk(repo.keys().chunk_id(b))).collect();
    let (saved, _) = BlobWriter::run(repo, Index::default(), |w| -> Result<()> {
        for (id, b) in ids.iter().zip(blobs) {
            w.save(*id, b)?;
        }
        Ok(())
    })
    .unwrap();
    saved.unwrap();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::load_pack_lists;
    use crate::pack::frames::FRAME_TARGET;
    use crate::pack::PackReader;
    use crate::repo::InitOptions;

    #[test]
    fn small_blobs_share_frames_and_large_or_random_ones_stand_alone() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("r");
        let opts = InitOptions::default();
        let repo = Repository::init(loc.to_str().unwrap(), b"pw", &opts, None).unwrap();
        let text = |i: usize| format!("<policy id='{i}'/>\n").repeat(2000 + i).into_bytes();
        let mut random = vec![0u8; 100_000];
        crate::crypto::keys::fill_random(&mut random).unwrap();
        let big = b"<row/>".repeat(FRAME_TARGET / 5);
        let mut blobs: Vec<Vec<u8>> = (0..40).map(text).collect();
        blobs.insert(20, random.clone());
        blobs.push(big.clone());
        let ids: Vec<BlobId> = blobs.iter().map(|b| BlobId::Chunk(repo.keys().chunk_id(b))).collect();
        // Outside a thread pool every save goes to the one filling of slot 0, in order.
        let (saved, stats) = BlobWriter::run(&repo, Index::default(), |w| -> Result<()> {
            for (id, b) in ids.iter().zip(&blobs) {
                assert!(w.save(*id, b)?);
            }
            assert!(!w.save(ids[0], &blobs[0])?, "a blob is saved once");
            Ok(())
        })
        .unwrap();
        saved.unwrap();
        assert_eq!(stats.blobs_new, blobs.len() as u64);

        let (packs, damaged) = load_pack_lists(&repo).unwrap();
        assert!(damaged.is_empty());
        let entries: Vec<Entry> = packs.values().flatten().copied().collect();
        let entry = |id: &BlobId| *entries.iter().find(|e| e.id == *id).unwrap();
        let frame_of = |id: &BlobId| entries.iter().filter(|e| e.same_frame(&entry(id))).count();
        // About 38 KiB of text each: several share a frame, none past FRAME_TARGET.
        assert!(frame_of(&ids[0]) > 10, "{}", frame_of(&ids[0]));
        assert_eq!(entry(&ids[1]).start, entry(&ids[0]).raw_length);
        for e in &entries {
            assert!(e.end() <= FRAME_TARGET.max(big.len()));
        }
        assert_eq!(frame_of(&ids[20]), 1, "random bytes stand alone");
        assert!(entry(&ids[20]).stored_raw());
        assert_eq!(frame_of(ids.last().unwrap()), 1, "a frame-sized blob stands alone");
        // The 42 blobs lie in a handful of frames.
        let text_frames: u64 = {
            let mut offsets: Vec<u32> = ids.iter().map(|id| entry(id).offset).collect();
            offsets.dedup();
            offsets.len() as u64
        };
        assert!(text_frames < ids.len() as u64 / 4);

        let index = Index::load(&repo).unwrap();
        let reader = PackReader::new(&repo);
        for (id, b) in ids.iter().zip(&blobs) {
            assert_eq!(&reader.read_blob(&index.get(id).unwrap()).unwrap(), b);
        }
    }

    /// A prune that ran while a backup did (having taken its lock for stale) deleted a
    /// pack the backup relied on: the run fails, so no snapshot names the missing data.
    #[test]
    fn a_pack_deleted_while_a_run_relies_on_it_fails_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("r");
        let repo = Repository::init(loc.to_str().unwrap(), b"pw", &InitOptions::default(), None).unwrap();
        let blob = b"<policy/>".repeat(1000);
        let id = BlobId::Chunk(repo.keys().chunk_id(&blob));
        let (saved, _) = BlobWriter::run(&repo, Index::default(), |w| w.save(id, &blob)).unwrap();
        assert!(saved.unwrap());
        let pack = load_pack_lists(&repo).unwrap().0.into_keys().next().unwrap();

        // Relying on it, with the pack still there: fine.
        let (known, _) = BlobWriter::run(&repo, Index::load(&repo).unwrap(), |w| w.has(&id)).unwrap();
        assert!(known);
        // The pack goes while the run relies on it.
        let gone = BlobWriter::run(&repo, Index::load(&repo).unwrap(), |w| {
            assert!(!w.save(id, &blob).unwrap(), "deduplicated against the index");
            repo.backend().remove(FileType::Pack, &pack.to_hex()).unwrap();
        });
        let e = gone.expect_err("the run must fail");
        assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
        assert!(e.to_string().contains("deleted while it ran"), "{e}");
        // A run that relies on nothing gone is not failed by it.
        assert!(BlobWriter::run(&repo, Index::default(), |w| w.save(id, &blob)).is_ok());
    }
}
