//! Saves blobs into new packs: skips blobs the repository already has (or that this run
//! already saved), compresses and seals the rest, and hands each full pack to an uploader
//! thread (several for remote stores) that stores it and writes index files naming stored
//! packs, so the order packs -> index -> snapshot always holds.
//!
//! Safe to share between threads: compression runs outside every lock; a full pack is
//! taken out of its builder under the lock and handed to the uploader. The hand-over
//! waits while the uploaders still write earlier packs, so memory holds the builders and
//! one pack per uploader, and workers wait for the disk only when it is slower than
//! they are.

use crate::backend::FileType;
use crate::compress;
use crate::error::{Error, Result};
use crate::format::index::IndexFile;
use crate::format::pack::{Entry, MAX_BLOB};
use crate::id::{BlobId, BlobKind, PackId};
use crate::index::Index;
use crate::pack::{FinishedPack, PackBuilder};
use crate::repo::Repository;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

/// Packs written but not yet named by an index file; after this many, write one, so an
/// interrupted run leaves little unindexed data behind.
const PACKS_PER_INDEX: usize = 4;

pub struct BlobWriter<'r> {
    repo: &'r Repository,
    index: Index,
    claimed: Mutex<HashSet<[u8; 32]>>,
    /// Pack builders for chunks, one per worker thread (slot 0 for threads outside the
    /// pool), so sealing runs in parallel and a lock is only ever taken by its owner.
    data: Vec<Mutex<Option<PackBuilder>>>,
    trees: Mutex<Option<PackBuilder>>,
    queue: Mutex<Option<SyncSender<FinishedPack>>>,
    /// The first error of an uploader; later saves fail with it at once.
    upload_failed: Mutex<Option<Error>>,
    unindexed: Mutex<Vec<(PackId, Vec<Entry>)>>,
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
        let writer = BlobWriter {
            repo,
            index,
            claimed: Mutex::new(HashSet::new()),
            data: (0..=rayon::current_num_threads()).map(|_| Mutex::new(None)).collect(),
            trees: Mutex::new(None),
            queue: Mutex::new(Some(tx)),
            upload_failed: Mutex::new(None),
            unindexed: Mutex::new(Vec::new()),
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
            writer.finish_builders();
            // Closing the queue ends the uploader once it has stored what is queued.
            writer.queue.lock().expect("queue lock").take();
            out
        });
        let indexed =
            writer.write_index(std::mem::take(&mut *writer.unindexed.lock().expect("unindexed lock")));
        if let Some(e) = writer.upload_failed.lock().expect("upload lock").take() {
            return Err(e);
        }
        indexed?;
        let stats = WriterStats {
            blobs_new: writer.blobs_new.load(Ordering::Relaxed),
            bytes_stored: writer.bytes_stored.load(Ordering::Relaxed),
        };
        Ok((out, stats))
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Whether the repository has (or this run has saved) the blob.
    pub fn has(&self, id: &BlobId) -> bool {
        self.index.contains(id) || self.claimed.lock().expect("claimed lock").contains(id.bytes())
    }

    /// Save a blob unless it is known. Returns whether it was new.
    pub fn save(&self, id: BlobId, plaintext: &[u8]) -> Result<bool> {
        if let Some(e) = self.upload_failed.lock().expect("upload lock").as_ref() {
            return Err(Error::new(e.kind(), format!("storing packs failed: {e}")));
        }
        if plaintext.len() > MAX_BLOB as usize {
            return Err(Error::invalid(format!("{id} is larger than the blob limit")));
        }
        if self.index.contains(&id) || !self.claimed.lock().expect("claimed lock").insert(*id.bytes()) {
            return Ok(false);
        }
        let encoded = compress::encode(plaintext, self.repo.config().compression_level);
        let full = {
            let mut slot = self.builder(id.kind()).lock().expect("builder lock");
            if slot.is_none() {
                let spare = self.spare_buffers.lock().expect("spare lock").pop().unwrap_or_default();
                let capacity = self.repo.config().pack_size as usize;
                *slot = Some(PackBuilder::reusing(self.repo.keys(), capacity, spare)?);
            }
            let b = slot.as_mut().expect("set above");
            b.add(id, encoded, plaintext.len() as u32);
            if b.size() >= self.repo.config().pack_size as usize {
                slot.take()
            } else {
                None
            }
        };
        self.blobs_new.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = full {
            self.enqueue(b.finish());
        }
        Ok(true)
    }

    fn builder(&self, kind: BlobKind) -> &Mutex<Option<PackBuilder>> {
        match kind {
            BlobKind::Chunk => {
                let slot = rayon::current_thread_index().map_or(0, |i| i + 1);
                &self.data[slot.min(self.data.len() - 1)]
            }
            BlobKind::Tree => &self.trees,
        }
    }

    fn enqueue(&self, pack: FinishedPack) {
        let tx = self.queue.lock().expect("queue lock").clone();
        // The uploader only stops receiving after a failure, which `save` reports.
        if let Some(tx) = tx {
            let _ = tx.send(pack);
        }
    }

    /// Queue the partly filled packs.
    fn finish_builders(&self) {
        for slot in self.data.iter().chain(std::iter::once(&self.trees)) {
            let b = slot.lock().expect("builder lock").take();
            if let Some(b) = b.filter(|b| !b.is_empty()) {
                self.enqueue(b.finish());
            }
        }
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
