//! Trees on the filesystem side: reading and applying node metadata (`meta`) and loading
//! stored trees.

pub mod meta;
pub mod walk;

use crate::error::Result;
use crate::format::tree::Tree;
use crate::id::{BlobId, TreeId};
use crate::index::Index;
use crate::pack::PackReader;

/// Load and decode a stored tree.
pub fn load_tree(reader: &PackReader<'_>, index: &Index, id: &TreeId) -> Result<Tree> {
    let bytes = reader.read_indexed(index, &BlobId::Tree(*id))?;
    Tree::decode(&bytes).map_err(|e| e.wrap(format!("tree {id} (stored intact but undecodable)")))
}
