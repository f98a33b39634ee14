//! Trees on the filesystem side: reading and applying node metadata (`meta`) and loading
//! stored trees.

pub mod meta;
pub mod walk;

use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::Tree;
use crate::id::{BlobId, TreeId};
use crate::index::Index;
use crate::pack::PackReader;

/// Load and decode a stored tree.
pub fn load_tree(reader: &PackReader<'_>, index: &Index, id: &TreeId) -> Result<Tree> {
    let loc = index
        .get(&BlobId::Tree(*id))
        .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("tree {id} is not in the index")))?;
    let bytes = reader.read_blob(&loc)?;
    Tree::decode(&bytes).map_err(|e| e.wrap(format!("tree {id} (stored intact but undecodable)")))
}
