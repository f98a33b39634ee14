//! References records: for each tree blob, the blobs it names, for a maintenance key that
//! cannot open trees (format-spec/maintenance-key.md, *references records*). Payload of a
//! blob of kind 3: version byte 1, then postcard `References`; named by
//! `KH(references-id key, encoding)`.
//!
//! Chunks are one sorted set per tree blob, not a list per file: the record shows how many
//! distinct chunks a folder holds, not how many each file has.

use super::tree::{NodeKind, TreeBlob};
use super::{decode_versioned, encode_versioned};
use crate::error::{Error, Result};
use crate::id::{ChunkId, RefsId, TreeId};
use serde::{Deserialize, Serialize};

pub const REFERENCES_VERSION: u8 = 1;

/// What one tree blob names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct References {
    /// The tree blob it describes.
    pub tree: TreeId,
    /// The records of the tree blobs it names: a head's parts, or its subfolders' heads.
    /// Strictly increasing.
    pub subtrees: Vec<RefsId>,
    /// Every chunk of its files. Strictly increasing.
    pub chunks: Vec<ChunkId>,
}

impl References {
    /// The record of tree blob `tree` (decoded as `blob`); `record_of` gives the record id
    /// of each tree blob it names (its parts, or its subfolders' heads).
    pub fn of_tree_blob(
        tree: TreeId,
        blob: &TreeBlob,
        mut record_of: impl FnMut(&TreeId) -> Result<RefsId>,
    ) -> Result<References> {
        let mut subtrees = Vec::new();
        let mut chunks = Vec::new();
        for part in &blob.parts {
            subtrees.push(record_of(part)?);
        }
        for node in &blob.nodes {
            match &node.kind {
                NodeKind::File { chunks: c, .. } => chunks.extend_from_slice(c),
                NodeKind::Dir { tree } => subtrees.push(record_of(tree)?),
                _ => {}
            }
        }
        subtrees.sort_unstable();
        subtrees.dedup();
        chunks.sort_unstable();
        chunks.dedup();
        Ok(References { tree, subtrees, chunks })
    }

    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(REFERENCES_VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<References> {
        let r: References = decode_versioned("references record", REFERENCES_VERSION, bytes)?;
        if !r.subtrees.windows(2).all(|w| w[0] < w[1]) || !r.chunks.windows(2).all(|w| w[0] < w[1]) {
            return Err(Error::corrupt("references record is not sorted without duplicates"));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::format::tree::tests::node;
    use crate::format::tree::{Node, Tree};

    fn file(name: &str, chunks: &[u8]) -> Node {
        let chunks = chunks.iter().map(|&c| ChunkId([c; 32])).collect();
        Node { kind: NodeKind::File { size: 0, chunks }, ..node(name.as_bytes()) }
    }

    #[test]
    fn a_record_is_the_sorted_set_of_what_its_tree_blob_names() {
        let dir = Node { kind: NodeKind::Dir { tree: TreeId([5; 32]) }, ..node(b"d") };
        let tree = Tree { nodes: vec![file("a", &[3, 1, 3]), file("b", &[1, 2]), dir] };
        let (id, bytes) = tree.encode_blobs(|_| TreeId([9; 32])).pop().unwrap();
        let blob = TreeBlob::decode(&bytes).unwrap();
        let r = References::of_tree_blob(id, &blob, |t| Ok(RefsId(t.0))).unwrap();
        assert_eq!(r.chunks, [1, 2, 3].map(|c| ChunkId([c; 32])));
        assert_eq!(r.subtrees, vec![RefsId([5; 32])]);
        assert_eq!(References::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn unsorted_duplicated_or_trailing_records_are_refused() {
        let r = References { tree: TreeId([1; 32]), subtrees: vec![], chunks: vec![ChunkId([2; 32])] };
        let mut twice = r.clone();
        twice.chunks.push(ChunkId([2; 32]));
        assert!(References::decode(&twice.encode()).is_err());
        let mut down = r.clone();
        down.subtrees = vec![RefsId([2; 32]), RefsId([1; 32])];
        assert!(References::decode(&down.encode()).is_err());
        let mut trailing = r.encode();
        trailing.push(0);
        assert!(References::decode(&trailing).is_err());
        let mut v2 = r.encode();
        v2[0] = 2;
        assert_eq!(References::decode(&v2).unwrap_err().kind(), ErrorKind::Unsupported);
    }
}
