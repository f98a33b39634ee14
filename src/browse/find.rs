//! Searching snapshots for entries. Consecutive snapshots share most of their trees, so
//! the matches below each (tree, path) pair are remembered: a search across a hundred
//! snapshots reads each distinct folder once.

use super::{join, Browser};
use crate::error::Result;
use crate::format::tree::{Node, NodeKind};
use crate::id::TreeId;
use std::collections::HashMap;
use std::sync::Arc;

/// Matches of one subtree: absolute paths and their nodes, in path order.
pub type Matches = Arc<Vec<(Vec<u8>, Node)>>;

/// Whether an entry (absolute path, node) is one the search wants.
pub type Wanted<'b> = Box<dyn Fn(&[u8], &Node) -> bool + 'b>;

pub struct Finder<'b, 'r> {
    browser: &'b Browser<'r>,
    wanted: Wanted<'b>,
    memo: HashMap<(TreeId, Vec<u8>), Matches>,
}

impl<'b, 'r> Finder<'b, 'r> {
    /// A search for entries for which `wanted(path, node)` holds.
    pub fn new(browser: &'b Browser<'r>, wanted: impl Fn(&[u8], &Node) -> bool + 'b) -> Self {
        Finder { browser, wanted: Box::new(wanted), memo: HashMap::new() }
    }

    /// Every wanted entry in the folder `tree` at `path` and below it.
    pub fn search(&mut self, path: &[u8], tree: &TreeId) -> Result<Matches> {
        let key = (*tree, path.to_vec());
        if let Some(found) = self.memo.get(&key) {
            return Ok(found.clone());
        }
        let listing = self.browser.tree(tree)?;
        let mut found = Vec::new();
        for node in &listing.nodes {
            let p = join(path, &node.name);
            if (self.wanted)(&p, node) {
                found.push((p.clone(), node.clone()));
            }
            if let NodeKind::Dir { tree } = &node.kind {
                found.extend(self.search(&p, tree)?.iter().cloned());
            }
        }
        let found = Arc::new(found);
        self.memo.insert(key, found.clone());
        Ok(found)
    }
}
