//! Saves blobs into new packs: skips blobs the repository already has (or that this run
//! already saved), compresses and seals the rest, writes each pack when it reaches the
//! target size, and writes index files naming the packs after they are stored, so that
//! the order packs -> index -> snapshot always holds.
//!
//! Safe to share between threads: compression runs outside every lock; a full pack is
//! taken out of its builder under the lock and written outside it.

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
use std::sync::Mutex;

/// Packs written but not yet named by an index file; after this many, write one, so an
/// interrupted run leaves little unindexed data behind.
const PACKS_PER_INDEX: usize = 4;

pub struct BlobWriter<'r> {
    repo: &'r Repository,
    index: Index,
    claimed: Mutex<HashSet<[u8; 32]>>,
    data: Mutex<Option<PackBuilder>>,
    trees: Mutex<Option<PackBuilder>>,
    unindexed: Mutex<Vec<(PackId, Vec<Entry>)>>,
    pub blobs_new: AtomicU64,
    pub bytes_stored: AtomicU64,
}

impl<'r> BlobWriter<'r> {
    pub fn new(repo: &'r Repository, index: Index) -> Self {
        BlobWriter {
            repo,
            index,
            claimed: Mutex::new(HashSet::new()),
            data: Mutex::new(None),
            trees: Mutex::new(None),
            unindexed: Mutex::new(Vec::new()),
            blobs_new: AtomicU64::new(0),
            bytes_stored: AtomicU64::new(0),
        }
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
                *slot = Some(PackBuilder::new(self.repo.keys(), self.repo.config().pack_size as usize)?);
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
            self.store(b.finish())?;
        }
        Ok(true)
    }

    fn builder(&self, kind: BlobKind) -> &Mutex<Option<PackBuilder>> {
        match kind {
            BlobKind::Chunk => &self.data,
            BlobKind::Tree => &self.trees,
        }
    }

    fn store(&self, pack: FinishedPack) -> Result<()> {
        self.repo.backend().write(FileType::Pack, &pack.id.to_hex(), &pack.bytes)?;
        self.bytes_stored.fetch_add(pack.bytes.len() as u64, Ordering::Relaxed);
        let batch = {
            let mut u = self.unindexed.lock().expect("unindexed lock");
            u.push((pack.id, pack.entries));
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

    /// Store the partly filled packs and index everything written. After this returns, every
    /// blob this writer saved is in a stored pack named by a stored index file.
    pub fn flush(&self) -> Result<()> {
        for kind in [BlobKind::Chunk, BlobKind::Tree] {
            let b = self.builder(kind).lock().expect("builder lock").take();
            if let Some(b) = b.filter(|b| !b.is_empty()) {
                self.store(b.finish())?;
            }
        }
        let rest = std::mem::take(&mut *self.unindexed.lock().expect("unindexed lock"));
        self.write_index(rest)
    }
}
