//! Trees: one directory's entries, sorted by name, stored as blobs of kind Tree whose id
//! is the keyed hash of the encoding (so identical directories are stored once).
//!
//! Encoding version 2 (written): version byte, then postcard `TreeBlob { nodes, parts }`.
//! A folder whose encoding would pass [`SPLIT_BYTES`] is split: its entries go, in
//! order, into part blobs of at most about [`SPLIT_BYTES`] each (`parts` empty), and the
//! folder's own blob (the head, whose id the parent names) lists the parts' ids with no
//! entries of its own. One level only: a part never has parts. So a folder of any
//! number of entries stores under the 64 MiB blob limit. Version 1 (read only): postcard
//! `Vec<Node>`, the whole folder in one blob. format-spec/packs.md has every byte.

use super::{encode_versioned, Timespec};
use crate::error::{Error, ErrorKind, Result};
use crate::id::{ChunkId, TreeId};
use serde::{Deserialize, Serialize};

/// The version this build writes.
pub const TREE_VERSION: u8 = 2;
/// The first version: one blob per folder, no parts.
pub const TREE_VERSION_1: u8 = 1;
/// A folder whose encoding is larger is split into parts of about this size.
pub const SPLIT_BYTES: usize = 4 << 20;

/// A folder's entries, as restore, browse and backup use them (however it was stored).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// [`TreeBlob`] borrowed, to encode runs of a folder's nodes without copying them (the
/// same postcard bytes: a slice encodes as a sequence, like a `Vec`).
#[derive(Serialize)]
struct TreeBlobRef<'a> {
    nodes: &'a [Node],
    parts: &'a [TreeId],
}

/// One stored tree blob (version 2): a whole folder (`parts` empty), a part of one
/// (`parts` empty), or the head of a split folder (`nodes` empty, `parts` its parts in
/// order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeBlob {
    pub nodes: Vec<Node>,
    pub parts: Vec<TreeId>,
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
    /// The blobs that store this folder, each with its id (`id_of` gives a blob's id from
    /// its bytes): the parts first, in order, then the head. The head's id is the
    /// folder's tree id. A folder that fits in [`SPLIT_BYTES`] is one blob.
    pub fn encode_blobs(&self, id_of: impl Fn(&[u8]) -> TreeId) -> Vec<(TreeId, Vec<u8>)> {
        self.encode_blobs_split_at(SPLIT_BYTES, id_of)
    }

    /// [`Tree::encode_blobs`] splitting at `split` bytes instead of [`SPLIT_BYTES`]: public
    /// so that tests can split small folders; what is stored always splits at
    /// [`SPLIT_BYTES`] (it decides tree ids, hence deduplication).
    pub fn encode_blobs_split_at(
        &self,
        split: usize,
        id_of: impl Fn(&[u8]) -> TreeId,
    ) -> Vec<(TreeId, Vec<u8>)> {
        let encode =
            |nodes: &[Node], parts: &[TreeId]| encode_versioned(TREE_VERSION, &TreeBlobRef { nodes, parts });
        // Sized before it is encoded: a folder too large for one blob is never encoded whole.
        let whole_size =
            postcard::experimental::serialized_size(&TreeBlobRef { nodes: &self.nodes, parts: &[] });
        if whole_size.is_ok_and(|n| n < split) {
            let whole = encode(&self.nodes, &[]);
            return vec![(id_of(&whole), whole)];
        }
        let mut blobs = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (i, node) in self.nodes.iter().enumerate() {
            // Postcard's size of the node alone, as it is in the part's node list.
            let size = postcard::experimental::serialized_size(node).unwrap_or(0);
            if i > start && bytes + size > split {
                let enc = encode(&self.nodes[start..i], &[]);
                blobs.push((id_of(&enc), enc));
                (start, bytes) = (i, 0);
            }
            bytes += size;
        }
        let enc = encode(&self.nodes[start..], &[]);
        blobs.push((id_of(&enc), enc));
        let parts: Vec<TreeId> = blobs.iter().map(|(id, _)| *id).collect();
        let head = encode(&[], &parts);
        blobs.push((id_of(&head), head));
        blobs
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.binary_search_by(|n| n.name.as_slice().cmp(name)).ok().map(|i| &self.nodes[i])
    }

    /// Check what a folder assembled from its blobs must satisfy: names strictly
    /// increasing (so unique), each one safe.
    pub fn check(&self) -> Result<()> {
        check_nodes(&self.nodes)
    }
}

impl TreeBlob {
    /// Decode a stored tree blob of version 1 (as a whole folder) or 2.
    pub fn decode(bytes: &[u8]) -> Result<TreeBlob> {
        let (&version, body) = bytes.split_first().ok_or_else(|| Error::corrupt("empty tree"))?;
        let blob = match version {
            TREE_VERSION_1 => TreeBlob { nodes: take_all::<Vec<Node>>(body)?, parts: Vec::new() },
            TREE_VERSION => take_all::<TreeBlob>(body)?,
            v => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("tree has encoding version {v}; this cairn reads versions 1 and 2"),
                ))
            }
        };
        if !blob.parts.is_empty() && !blob.nodes.is_empty() {
            return Err(Error::corrupt("tree lists both entries and parts"));
        }
        check_nodes(&blob.nodes)?;
        Ok(blob)
    }

    /// This blob's bytes (version 2).
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(TREE_VERSION, self)
    }
}

/// Postcard `T` that uses every byte.
fn take_all<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| Error::corrupt(format!("tree does not decode: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::corrupt(format!("tree has {} trailing bytes", rest.len())));
    }
    Ok(value)
}

fn check_nodes(nodes: &[Node]) -> Result<()> {
    for pair in nodes.windows(2) {
        if pair[0].name >= pair[1].name {
            return Err(Error::corrupt("tree entries are not sorted and unique"));
        }
    }
    for n in nodes {
        if !valid_name(&n.name) {
            return Err(Error::corrupt(format!(
                "tree holds an unsafe entry name {:?}",
                String::from_utf8_lossy(&n.name)
            )));
        }
    }
    Ok(())
}

/// A name that is safe to join onto a restore target: it must not escape it.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn node(name: &[u8]) -> Node {
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

    fn id_of(bytes: &[u8]) -> TreeId {
        TreeId(*blake3::hash(bytes).as_bytes())
    }

    fn decode_whole(bytes: &[u8]) -> Result<Tree> {
        let b = TreeBlob::decode(bytes)?;
        assert!(b.parts.is_empty());
        Ok(Tree { nodes: b.nodes })
    }

    #[test]
    fn round_trip_and_unsafe_names() {
        let t = Tree { nodes: vec![node(b"a"), node(b"b\xff")] };
        let blobs = t.encode_blobs(id_of);
        assert_eq!(blobs.len(), 1, "a small folder is one blob");
        assert_eq!(blobs[0].1[0], TREE_VERSION);
        assert_eq!(decode_whole(&blobs[0].1).unwrap(), t);
        assert!(t.find(b"b\xff").is_some());
        for bad in [&b".."[..], b"a/b", b"", b"."] {
            let t = Tree { nodes: vec![node(bad)] };
            assert!(TreeBlob::decode(&t.encode_blobs(id_of)[0].1).is_err());
        }
        let unsorted = Tree { nodes: vec![node(b"b"), node(b"a")] };
        assert!(TreeBlob::decode(&unsorted.encode_blobs(id_of)[0].1).is_err());
    }

    #[test]
    fn version_1_trees_are_still_read() {
        let nodes = vec![node(b"a"), node(b"b")];
        let v1 = encode_versioned(TREE_VERSION_1, &nodes);
        assert_eq!(decode_whole(&v1).unwrap().nodes, nodes);
        let mut v3 = v1.clone();
        v3[0] = 3;
        assert_eq!(TreeBlob::decode(&v3).unwrap_err().kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn a_large_folder_is_split_into_parts_under_a_head() {
        let nodes: Vec<Node> = (0..1000u32).map(|i| node(format!("{i:05}").as_bytes())).collect();
        let t = Tree { nodes };
        let blobs = t.encode_blobs_split_at(4096, id_of);
        assert!(blobs.len() > 3, "split into several parts");
        assert!(blobs.iter().all(|(_, b)| b.len() <= 4096 + 200), "every part near the split size");
        let (head_id, head) = blobs.last().unwrap();
        assert_eq!(*head_id, id_of(head));
        let head = TreeBlob::decode(head).unwrap();
        assert!(head.nodes.is_empty());
        let mut back = Vec::new();
        for (id, (part_id, bytes)) in head.parts.iter().zip(&blobs) {
            assert_eq!(id, part_id, "the head lists the parts in order");
            let part = TreeBlob::decode(bytes).unwrap();
            assert!(part.parts.is_empty());
            back.extend(part.nodes);
        }
        assert_eq!(back, t.nodes);
        // The same folder always splits the same way (unchanged folders keep their id).
        assert_eq!(t.encode_blobs_split_at(4096, id_of), blobs);
        // A blob with both entries and parts is refused.
        let both = TreeBlob { nodes: vec![node(b"a")], parts: vec![TreeId([1; 32])] };
        assert!(TreeBlob::decode(&both.encode()).is_err());
    }
}
