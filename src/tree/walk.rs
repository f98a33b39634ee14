//! Walking a stored tree onto a folder: every node with the path it has (or will have)
//! below a base folder, limited to `--include` paths. Restore plans with it, verification
//! compares with it.

use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{Node, NodeKind};
use crate::id::TreeId;
use crate::index::Index;
use crate::pack::PackReader;
use crate::tree::load_tree;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What the walk reports.
pub enum Visit<'a> {
    /// A node and its path; return whether to descend into it (folders only).
    Node(&'a Path, Node),
    /// A folder whose tree cannot be read (damaged or missing): its contents are lost.
    Unreadable(&'a Path, Error),
}

/// Visit every wanted node of `root` placed below `base`. Returns, for each include path,
/// whether the tree holds it. Only damage (`Corrupt`, `NotFound`) is reported as a visit;
/// any other error ends the walk.
pub fn walk(
    reader: &PackReader<'_>,
    index: &Index,
    root: &TreeId,
    base: &Path,
    includes: &[PathBuf],
    visit: &mut dyn FnMut(Visit<'_>) -> Result<bool>,
) -> Result<Vec<bool>> {
    let includes: Vec<Vec<Vec<u8>>> = includes.iter().map(|p| components(p)).collect();
    let mut matched = vec![false; includes.len()];
    let mut at = Vec::new();
    walk_tree(reader, index, root, base, &mut at, &includes, &mut matched, visit)?;
    Ok(matched)
}

#[allow(clippy::too_many_arguments)]
fn walk_tree(
    reader: &PackReader<'_>,
    index: &Index,
    id: &TreeId,
    dir: &Path,
    at: &mut Vec<Vec<u8>>,
    includes: &[Vec<Vec<u8>>],
    matched: &mut [bool],
    visit: &mut dyn FnMut(Visit<'_>) -> Result<bool>,
) -> Result<()> {
    let tree = match load_tree(reader, index, id) {
        Ok(t) => t,
        Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => {
            visit(Visit::Unreadable(dir, e))?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for node in tree.nodes {
        at.push(node.name.clone());
        for (m, inc) in matched.iter_mut().zip(includes) {
            *m |= at == inc;
        }
        if wanted(at, includes) {
            let path = dir.join(OsStr::from_bytes(&node.name));
            let sub = match &node.kind {
                NodeKind::Dir { tree } => Some(*tree),
                _ => None,
            };
            if visit(Visit::Node(&path, node))? {
                if let Some(sub) = sub {
                    walk_tree(reader, index, &sub, &path, at, includes, matched, visit)?;
                }
            }
        }
        at.pop();
    }
    Ok(())
}

fn components(p: &Path) -> Vec<Vec<u8>> {
    p.iter().filter(|c| *c != OsStr::new("/")).map(|c| c.as_bytes().to_vec()).collect()
}

/// Whether the node at `at` is wanted: inside an include, or on the way to one.
fn wanted(at: &[Vec<u8>], includes: &[Vec<Vec<u8>>]) -> bool {
    includes.is_empty() || includes.iter().any(|inc| at.starts_with(inc) || inc.starts_with(at))
}
