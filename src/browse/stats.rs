//! What snapshots cost: their logical size, the unique data they need, and what that data
//! takes in the repository after compression and sealing. Trees shared between snapshots
//! are read and counted once.

use super::Browser;
use crate::error::Result;
use crate::format::tree::NodeKind;
use crate::id::{BlobId, ChunkId, PackId, TreeId};
use std::collections::{HashMap, HashSet};

/// Logical figures of one snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeFigures {
    pub files: u64,
    pub dirs: u64,
    /// Symlinks, fifos, devices, sockets.
    pub others: u64,
    /// Sum of file sizes (each hard link counted, as a restore writes it).
    pub bytes: u64,
}

/// The data a set of snapshots needs, each blob counted once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataFigures {
    pub chunks: u64,
    pub trees: u64,
    /// Plaintext bytes of those chunks: the file data, deduplicated.
    pub chunk_bytes: u64,
    /// Plaintext bytes of the folder listings.
    pub tree_bytes: u64,
    /// Their bytes in packs: compressed and sealed.
    pub stored_bytes: u64,
    /// Packs holding at least one of them.
    pub packs: u64,
    /// Blobs named by a tree but missing from the index.
    pub missing: u64,
}

/// Collects figures over several snapshots, sharing the work between them.
pub struct Stats<'b, 'r> {
    browser: &'b Browser<'r>,
    trees: HashMap<TreeId, TreeFigures>,
    chunks: HashSet<ChunkId>,
}

impl<'b, 'r> Stats<'b, 'r> {
    pub fn new(browser: &'b Browser<'r>) -> Self {
        Stats { browser, trees: HashMap::new(), chunks: HashSet::new() }
    }

    /// The logical figures of the folder `tree`, adding its blobs to the unique set.
    pub fn add_tree(&mut self, tree: &TreeId) -> Result<TreeFigures> {
        if let Some(f) = self.trees.get(tree) {
            return Ok(*f);
        }
        let listing = self.browser.tree(tree)?;
        let mut f = TreeFigures::default();
        for node in &listing.nodes {
            match &node.kind {
                NodeKind::File { size, chunks } => {
                    f.files += 1;
                    f.bytes += size;
                    self.chunks.extend(chunks.iter().copied());
                }
                NodeKind::Dir { tree } => {
                    let sub = self.add_tree(tree)?;
                    f.files += sub.files;
                    f.dirs += sub.dirs + 1;
                    f.others += sub.others;
                    f.bytes += sub.bytes;
                }
                _ => f.others += 1,
            }
        }
        self.trees.insert(*tree, f);
        Ok(f)
    }

    /// Unique data of every tree added so far.
    pub fn data(&self) -> DataFigures {
        let index = self.browser.index();
        let mut d = DataFigures::default();
        let mut packs: HashSet<PackId> = HashSet::new();
        // Blobs share frames: each frame's sealed bytes count once.
        let mut frames: HashSet<(PackId, u32)> = HashSet::new();
        let blobs =
            self.chunks.iter().map(|c| BlobId::Chunk(*c)).chain(self.trees.keys().map(|t| BlobId::Tree(*t)));
        for blob in blobs {
            let Some(loc) = index.get(&blob) else {
                d.missing += 1;
                continue;
            };
            let raw = u64::from(loc.entry.raw_length);
            match blob {
                BlobId::Chunk(_) => (d.chunks, d.chunk_bytes) = (d.chunks + 1, d.chunk_bytes + raw),
                BlobId::Tree(_) => (d.trees, d.tree_bytes) = (d.trees + 1, d.tree_bytes + raw),
            }
            if frames.insert((loc.pack, loc.entry.offset)) {
                d.stored_bytes += u64::from(loc.entry.length);
            }
            packs.insert(loc.pack);
        }
        d.packs = packs.len() as u64;
        d
    }
}
