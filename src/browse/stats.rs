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
    /// Tree blobs: a folder's tree, and each part of a folder stored in parts.
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
    /// The parts of the split folders among `trees`.
    parts: HashSet<TreeId>,
    chunks: HashSet<ChunkId>,
}

impl<'b, 'r> Stats<'b, 'r> {
    pub fn new(browser: &'b Browser<'r>) -> Self {
        Stats { browser, trees: HashMap::new(), parts: HashSet::new(), chunks: HashSet::new() }
    }

    /// The logical figures of the folder `tree`, adding its blobs to the unique set.
    pub fn add_tree(&mut self, tree: &TreeId) -> Result<TreeFigures> {
        if let Some(f) = self.trees.get(tree) {
            return Ok(*f);
        }
        let listing = self.browser.tree(tree)?;
        self.parts.extend(self.browser.tree_parts(tree)?);
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
        let trees = self.trees.keys().chain(&self.parts);
        let blobs = self.chunks.iter().map(|c| BlobId::Chunk(*c)).chain(trees.map(|t| BlobId::Tree(*t)));
        for blob in blobs {
            let Some(loc) = index.get(&blob) else {
                d.missing += 1;
                continue;
            };
            let raw = u64::from(loc.entry.raw_length);
            match blob {
                BlobId::Chunk(_) => (d.chunks, d.chunk_bytes) = (d.chunks + 1, d.chunk_bytes + raw),
                BlobId::Tree(_) => (d.trees, d.tree_bytes) = (d.trees + 1, d.tree_bytes + raw),
                BlobId::References(_) => unreachable!("only chunks and trees are counted"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::backup::tests::back_up;
    use crate::repo::{InitOptions, Repository};

    /// After one backup into a new repository every stored blob is one the snapshot
    /// uses, so the unique data counts every index entry once: the parts of a folder
    /// stored in parts included (they were left out, and the tree figures ran short).
    #[test]
    fn the_parts_of_a_split_folder_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let src = crate::ops::backup::tests::source_with_split_folder(dir.path());
        let loc = dir.path().join("r");
        let repo = Repository::init(loc.to_str().unwrap(), b"pw", &InitOptions::default(), None).unwrap();
        let outcome = back_up(&repo, &src);

        let browser = Browser::open(&repo).unwrap();
        let stored = browser.index().len();
        let mut stats = Stats::new(&browser);
        let figures = stats.add_tree(&outcome.snapshot.tree).unwrap();
        assert_eq!(figures.others, 1100);
        let data = stats.data();
        assert_eq!(data.missing, 0);
        assert!(stats.parts.len() >= 2, "the folder must be stored in parts: {:?}", stats.parts);
        assert_eq!(data.chunks + data.trees, stored as u64, "{data:?}");
    }
}
