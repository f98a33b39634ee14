//! The inode table of a mounted repository: every folder, link and file the kernel has
//! been shown gets a number, handed out when first listed or looked up and kept until
//! unmount, so a path keeps its inode number while mounted.
//!
//! A folder has one number per path: the same snapshot under ids/ and times/ is two
//! separate trees of numbers, as the kernel allows a folder only one parent. Files that
//! were hard links when backed up (link count above 1, same device and inode) share one
//! number within each such tree, like the links they were.

use super::names::Entry;
use crate::browse::root_node;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::SnapshotId;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The root folder's inode number (FUSE's fixed value).
pub const ROOT: u64 = 1;

/// What an inode number stands for.
#[derive(Debug)]
pub struct Inode {
    /// The folder it was found in (the root's parent is itself).
    pub parent: u64,
    pub kind: Kind,
}

// Most inodes are snapshot entries and each is behind its own Arc already: boxing the
// node would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Kind {
    /// A folder above the snapshots, with its entries and their numbers.
    Virtual(Vec<(Vec<u8>, u64)>),
    /// A symbolic link above the snapshots (`latest`).
    Link(Vec<u8>),
    /// An entry of a snapshot (its root folder too). `top` is the number of the snapshot's
    /// root folder in this path, which scopes hard links.
    Node { top: u64, node: Node },
}

#[derive(Default)]
struct Table {
    /// `inodes[n - 1]` is inode `n`.
    inodes: Vec<Arc<Inode>>,
    /// Numbers already given to entries of snapshot folders: (folder, name) → number.
    children: HashMap<(u64, Vec<u8>), u64>,
    /// Numbers of hard-linked files: (snapshot root, device, inode) → number.
    links: HashMap<(u64, u64, u64), u64>,
}

impl Table {
    fn push(&mut self, inode: Inode) -> u64 {
        self.inodes.push(Arc::new(inode));
        self.inodes.len() as u64
    }
}

pub struct Inodes {
    table: RwLock<Table>,
}

impl Inodes {
    /// The numbers of the folders above the snapshots, from `root` (see
    /// [`super::names::layout`]), whose snapshot indexes point into `snapshots`.
    pub fn new(root: &Entry, snapshots: &[(SnapshotId, Snapshot)]) -> Inodes {
        let mut table = Table::default();
        let root_ino = table.push(Inode { parent: ROOT, kind: Kind::Virtual(Vec::new()) });
        debug_assert_eq!(root_ino, ROOT);
        let entries = add_entries(&mut table, ROOT, root, snapshots);
        table.inodes[0] = Arc::new(Inode { parent: ROOT, kind: Kind::Virtual(entries) });
        Inodes { table: RwLock::new(table) }
    }

    pub fn get(&self, ino: u64) -> Option<Arc<Inode>> {
        let t = self.table.read().expect("inode table lock");
        ino.checked_sub(1).and_then(|i| t.inodes.get(i as usize)).cloned()
    }

    /// The number of `node`, an entry of the snapshot folder `parent` (whose root folder
    /// is `top`): the one it already has, its hard link's, or a new one.
    pub fn child(&self, parent: u64, top: u64, node: &Node) -> u64 {
        let key = (parent, node.name.clone());
        if let Some(&ino) = self.table.read().expect("inode table lock").children.get(&key) {
            return ino;
        }
        let mut t = self.table.write().expect("inode table lock");
        if let Some(&ino) = t.children.get(&key) {
            return ino; // numbered by another thread meanwhile
        }
        let link = (node.links > 1 && matches!(node.kind, NodeKind::File { .. })).then_some((
            top,
            node.device,
            node.inode,
        ));
        let known = link.and_then(|l| t.links.get(&l).copied());
        let ino =
            known.unwrap_or_else(|| t.push(Inode { parent, kind: Kind::Node { top, node: node.clone() } }));
        if let (Some(l), None) = (link, known) {
            t.links.insert(l, ino);
        }
        t.children.insert(key, ino);
        ino
    }

    /// How many numbers have been handed out.
    pub fn len(&self) -> usize {
        self.table.read().expect("inode table lock").inodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Number the entries of a fixed folder (recursively) and return them.
fn add_entries(
    t: &mut Table,
    parent: u64,
    dir: &Entry,
    snapshots: &[(SnapshotId, Snapshot)],
) -> Vec<(Vec<u8>, u64)> {
    let Entry::Dir(entries) = dir else { return Vec::new() };
    let mut out = Vec::with_capacity(entries.len());
    for (name, e) in entries {
        let ino = match e {
            Entry::Link(target) => t.push(Inode { parent, kind: Kind::Link(target.clone()) }),
            Entry::Snapshot(i) => {
                let s = &snapshots[*i].1;
                let top = t.inodes.len() as u64 + 1;
                t.push(Inode { parent, kind: Kind::Node { top, node: root_node(s.tree, s.time) } })
            }
            Entry::Dir(_) => {
                let ino = t.push(Inode { parent, kind: Kind::Virtual(Vec::new()) });
                let children = add_entries(t, ino, e, snapshots);
                t.inodes[ino as usize - 1] = Arc::new(Inode { parent, kind: Kind::Virtual(children) });
                ino
            }
        };
        out.push((name.clone(), ino));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Timespec;
    use crate::id::{ChunkId, TreeId};

    fn file(name: &str, links: u64, inode: u64) -> Node {
        let mut n = root_node(TreeId([0; 32]), Timespec::default());
        n.name = name.as_bytes().to_vec();
        n.kind = NodeKind::File { size: 0, chunks: vec![ChunkId([0; 32])] };
        (n.links, n.inode, n.device) = (links, inode, 7);
        n
    }

    #[test]
    fn fixed_folders_are_numbered_from_the_root() {
        let root = Entry::Dir(vec![
            (b"a".to_vec(), Entry::Dir(vec![(b"x".to_vec(), Entry::Link(b"t".to_vec()))])),
            (b"b".to_vec(), Entry::Link(b"a/x".to_vec())),
        ]);
        let inodes = Inodes::new(&root, &[]);
        let Kind::Virtual(top) = &inodes.get(ROOT).unwrap().kind else { panic!() };
        assert_eq!(top.iter().map(|(n, _)| n.as_slice()).collect::<Vec<_>>(), [b"a", b"b"]);
        let a = inodes.get(top[0].1).unwrap();
        assert_eq!(a.parent, ROOT);
        let Kind::Virtual(inside) = &a.kind else { panic!() };
        let x = inodes.get(inside[0].1).unwrap();
        assert!(matches!(&x.kind, Kind::Link(t) if t == b"t"));
        assert_eq!(x.parent, top[0].1);
        assert!(inodes.get(0).is_none() && inodes.get(99).is_none());
    }

    #[test]
    fn hard_links_share_a_number_within_one_snapshot_path_only() {
        let inodes = Inodes::new(&Entry::Dir(vec![]), &[]);
        let (dir_a, dir_b, dir_c, top1, top2) = (10, 11, 12, 5, 6);
        let one = inodes.child(dir_a, top1, &file("one", 2, 42));
        assert_eq!(inodes.child(dir_a, top1, &file("one", 2, 42)), one, "same entry, same number");
        assert_eq!(inodes.child(dir_b, top1, &file("two", 2, 42)), one, "its hard link");
        assert_ne!(inodes.child(dir_c, top2, &file("two", 2, 42)), one, "another snapshot path");
        assert_ne!(inodes.child(dir_a, top1, &file("alone", 1, 42)), one, "not a link");
        let Kind::Node { node, .. } = &inodes.get(one).unwrap().kind else { panic!() };
        assert_eq!(node.name, b"one");
    }
}
