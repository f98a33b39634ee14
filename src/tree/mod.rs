//! Trees on the filesystem side: reading and applying node metadata (`meta`), and loading
//! and storing trees (a folder may be stored as several blobs: format/tree.rs).

pub mod meta;
pub mod walk;

use crate::crypto::keys::RepoKeys;
use crate::error::{Error, Result};
use crate::format::tree::{Tree, TreeBlob};
use crate::id::{BlobId, TreeId};
use crate::index::Index;
use crate::pack::PackReader;

/// Load and decode a stored tree: the whole folder, from all its blobs.
pub fn load_tree(reader: &PackReader<'_>, index: &Index, id: &TreeId) -> Result<Tree> {
    load_tree_with_parts(reader, index, id).map(|(tree, _)| tree)
}

/// Load a stored tree and name the part blobs it was assembled from (empty for a folder
/// stored in one blob). Whatever counts the blobs a snapshot uses (prune, check, copy)
/// must count these too.
pub fn load_tree_with_parts(
    reader: &PackReader<'_>,
    index: &Index,
    id: &TreeId,
) -> Result<(Tree, Vec<TreeId>)> {
    let head = load_blob(reader, index, id)?;
    if head.parts.is_empty() {
        return Ok((Tree { nodes: head.nodes }, Vec::new()));
    }
    let mut nodes = Vec::new();
    for part in &head.parts {
        let blob = load_blob(reader, index, part).map_err(|e| e.wrap(format!("part of tree {id}")))?;
        if !blob.parts.is_empty() {
            return Err(Error::corrupt(format!("tree {id}: its part {part} has parts of its own")));
        }
        nodes.extend(blob.nodes);
    }
    let tree = Tree { nodes };
    // Each part is sorted; the parts must follow each other too.
    tree.check().map_err(|e| e.wrap(format!("tree {id} (assembled from {} parts)", head.parts.len())))?;
    Ok((tree, head.parts))
}

/// The part blobs a stored tree was split into (empty for a folder stored in one blob),
/// from its head alone.
pub fn tree_parts(reader: &PackReader<'_>, index: &Index, id: &TreeId) -> Result<Vec<TreeId>> {
    Ok(load_blob(reader, index, id)?.parts)
}

fn load_blob(reader: &PackReader<'_>, index: &Index, id: &TreeId) -> Result<TreeBlob> {
    let bytes = reader.read_indexed(index, &BlobId::Tree(*id))?;
    TreeBlob::decode(&bytes).map_err(|e| e.wrap(format!("tree {id} (stored intact but undecodable)")))
}

/// Store a folder: every blob of it through `save` (parts first, then the head).
/// Returns the folder's tree id.
pub fn save_tree<T>(
    tree: &Tree,
    keys: &RepoKeys,
    mut save: impl FnMut(TreeId, &[u8]) -> Result<T>,
) -> Result<TreeId> {
    let blobs = tree.encode_blobs(|bytes| keys.tree_id(bytes));
    for (id, bytes) in &blobs {
        save(*id, bytes)?;
    }
    Ok(blobs.last().expect("a folder has a head blob").0)
}
