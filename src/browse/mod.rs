//! Reading snapshots without restoring them: finding a path in a snapshot's tree, listing
//! folders, walking subtrees and reading a file's bytes, sequentially or at any offset.
//! `ls`, `cat`, `find`, `diff`, `dump` and `mount` all read through a [`Browser`], so every
//! byte they show has been decrypted and re-hashed against its id like a restored one.

pub mod diff;
pub mod file;
pub mod find;
pub mod stats;

use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::format::Timespec;
use crate::id::{BlobId, ChunkId, TreeId};
use crate::index::Index;
use crate::pack::PackReader;
use crate::repo::Repository;
use crate::tree::load_tree;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use file::{FileLayout, FileReader};

/// Decoded trees kept in memory: listings are small and `diff`/`mount` revisit them.
const TREE_CACHE_ENTRIES: usize = 4096;

/// One repository's index and pack reader, shared by everything that reads snapshots.
pub struct Browser<'r> {
    repo: &'r Repository,
    index: Index,
    reader: PackReader<'r>,
    trees: Mutex<HashMap<TreeId, Arc<Tree>>>,
}

impl<'r> Browser<'r> {
    /// Load the repository's index; a snapshot can then be browsed in any order.
    pub fn open(repo: &'r Repository) -> Result<Self> {
        Ok(Browser {
            repo,
            index: Index::load(repo)?,
            reader: PackReader::new(repo),
            trees: Mutex::default(),
        })
    }

    pub fn repo(&self) -> &'r Repository {
        self.repo
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// A decoded tree, from the cache or the repository.
    pub fn tree(&self, id: &TreeId) -> Result<Arc<Tree>> {
        if let Some(t) = self.trees.lock().expect("tree cache lock").get(id) {
            return Ok(t.clone());
        }
        let tree = Arc::new(load_tree(&self.reader, &self.index, id)?);
        let mut cache = self.trees.lock().expect("tree cache lock");
        if cache.len() >= TREE_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(*id, tree.clone());
        Ok(tree)
    }

    /// The part blobs a split folder's tree was stored as (none for a folder in one blob):
    /// blobs a snapshot uses besides its trees.
    pub fn tree_parts(&self, id: &TreeId) -> Result<Vec<TreeId>> {
        crate::tree::tree_parts(&self.reader, &self.index, id)
    }

    /// One chunk's plaintext, verified against its id.
    pub fn chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        self.reader.read_indexed(&self.index, &BlobId::Chunk(*id))
    }

    /// A chunk's plaintext length, from the index (no read).
    pub fn chunk_len(&self, id: &ChunkId) -> Result<u64> {
        self.index.get(&BlobId::Chunk(*id)).map(|l| u64::from(l.entry.raw_length)).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, format!("chunk {id} is not in the index; run `cairn check`"))
        })
    }

    /// The node at `path` (absolute, '/'-separated bytes) in `snap`; "/" is the root folder.
    pub fn lookup(&self, snap: &Snapshot, path: &[u8]) -> Result<Node> {
        let mut node = root_node(snap.tree, snap.time);
        let mut walked = Vec::new();
        for name in components(path) {
            let NodeKind::Dir { tree } = &node.kind else {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("{} is not a folder in this snapshot", display(&walked)),
                ));
            };
            walked.push(b'/');
            walked.extend_from_slice(name);
            node = self.tree(tree)?.find(name).cloned().ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("{} is not in this snapshot; `cairn ls` shows what is", display(&walked)),
                )
            })?;
        }
        Ok(node)
    }

    /// Visit `node` (at `path`) and everything below it, parents before children, names in
    /// order. `visit` returns whether to descend into a folder.
    pub fn walk(
        &self,
        path: &[u8],
        node: &Node,
        visit: &mut dyn FnMut(&[u8], &Node) -> Result<bool>,
    ) -> Result<()> {
        if !visit(path, node)? {
            return Ok(());
        }
        if let NodeKind::Dir { tree } = &node.kind {
            let tree = self.tree(tree)?;
            for child in &tree.nodes {
                self.walk(&join(path, &child.name), child, visit)?;
            }
        }
        Ok(())
    }

    /// Where each chunk of a file starts; needed to read at an offset.
    pub fn layout(&self, chunks: &[ChunkId]) -> Result<FileLayout> {
        FileLayout::new(self, chunks)
    }

    /// The file's bytes in order, chunk after chunk, each verified.
    pub fn reader<'b>(&'b self, chunks: &'b [ChunkId]) -> FileReader<'b, 'r> {
        FileReader::new(self, chunks)
    }
}

/// The snapshot's root folder as a node, so that "/" can be listed like any folder. It
/// has no stored metadata: it takes the snapshot's time and a plain folder's mode.
pub fn root_node(tree: TreeId, time: Timespec) -> Node {
    Node {
        name: b"/".to_vec(),
        kind: NodeKind::Dir { tree },
        mode: 0o755,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime: time,
        atime: time,
        ctime: time,
        inode: 0,
        device: 0,
        links: 1,
        xattrs: Vec::new(),
    }
}

/// The names of a path, skipping empty parts and ".".
pub fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".")
}

/// `dir` + "/" + `name`, with "/" as the root.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// A stored path for messages ("/" for the root).
pub fn display(path: &[u8]) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}
