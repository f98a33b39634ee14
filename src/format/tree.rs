//! Trees: one directory's entries, sorted by name, stored as a blob of kind Tree whose id
//! is the keyed hash of this encoding (so identical directories are stored once).
//! Encoding: version byte (1), then postcard `Tree`.

use super::{decode_versioned, encode_versioned, Timespec};
use crate::error::{Error, Result};
use crate::id::{ChunkId, TreeId};
use serde::{Deserialize, Serialize};

pub const TREE_VERSION: u8 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// One directory entry and its metadata, as read from the filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The entry's name: raw bytes, not necessarily UTF-8; never empty, '/', "." or "..".
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (st_mode & 0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    pub mtime: Timespec,
    pub atime: Timespec,
    pub ctime: Timespec,
    pub inode: u64,
    pub device: u64,
    /// Hard link count at backup time; above 1 for files, restore links the copies.
    pub links: u64,
    /// Extended attributes (names and values as raw bytes), sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File { size: u64, chunks: Vec<ChunkId> },
    Dir { tree: TreeId },
    Symlink { target: Vec<u8> },
    Fifo,
    CharDevice { rdev: u64 },
    BlockDevice { rdev: u64 },
    Socket,
}

impl NodeKind {
    /// The kind's name, as JSON output and messages give it.
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::File { .. } => "file",
            NodeKind::Dir { .. } => "dir",
            NodeKind::Symlink { .. } => "symlink",
            NodeKind::Fifo => "fifo",
            NodeKind::CharDevice { .. } => "chardev",
            NodeKind::BlockDevice { .. } => "blockdev",
            NodeKind::Socket => "socket",
        }
    }
}

impl Tree {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(TREE_VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let t: Tree = decode_versioned("tree", TREE_VERSION, bytes)?;
        for pair in t.nodes.windows(2) {
            if pair[0].name >= pair[1].name {
                return Err(Error::corrupt("tree entries are not sorted and unique"));
            }
        }
        for n in &t.nodes {
            if !valid_name(&n.name) {
                return Err(Error::corrupt(format!(
                    "tree holds an unsafe entry name {:?}",
                    String::from_utf8_lossy(&n.name)
                )));
            }
        }
        Ok(t)
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.binary_search_by(|n| n.name.as_slice().cmp(name)).ok().map(|i| &self.nodes[i])
    }
}

/// A name that is safe to join onto a restore target: it must not escape it.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn node(name: &[u8]) -> Node {
        Node {
            name: name.to_vec(),
            kind: NodeKind::Fifo,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: Timespec::default(),
            atime: Timespec::default(),
            ctime: Timespec::default(),
            inode: 1,
            device: 1,
            links: 1,
            xattrs: vec![],
        }
    }

    #[test]
    fn round_trip_and_unsafe_names() {
        let t = Tree { nodes: vec![node(b"a"), node(b"b\xff")] };
        assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
        assert!(t.find(b"b\xff").is_some());
        for bad in [&b".."[..], b"a/b", b"", b"."] {
            let t = Tree { nodes: vec![node(bad)] };
            assert!(Tree::decode(&t.encode()).is_err());
        }
        let unsorted = Tree { nodes: vec![node(b"b"), node(b"a")] };
        assert!(Tree::decode(&unsorted.encode()).is_err());
    }
}
