//! Comparing two snapshot trees. Both folders' listings are merged by name; a subfolder
//! whose tree id is the same on both sides is identical all the way down and is skipped
//! without being read, so the cost follows the size of the change, not of the tree.

use super::{join, Browser};
use crate::error::Result;
use crate::format::tree::{Node, NodeKind};

/// What happened to one path between the old and the new snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    /// Content differs (a file's data, a symlink's target, a device number).
    Modified,
    /// A file became a folder, a symlink a file, and so on.
    TypeChanged,
    /// Same content; mode, owner, group, modification time or xattrs differ.
    Metadata,
}

impl ChangeKind {
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
            ChangeKind::TypeChanged => "type-changed",
            ChangeKind::Metadata => "metadata",
        }
    }
}

pub struct Change {
    pub path: Vec<u8>,
    pub kind: ChangeKind,
    pub old: Option<Node>,
    pub new: Option<Node>,
    /// For `Modified` and `Metadata`: which metadata fields differ.
    pub fields: Vec<&'static str>,
}

/// Report every change below `old` and `new` (both at `path`) to `report`, in path order.
/// Added and removed folders are reported with everything in them.
pub fn diff(
    browser: &Browser<'_>,
    path: &[u8],
    old: &Node,
    new: &Node,
    report: &mut dyn FnMut(Change) -> Result<()>,
) -> Result<()> {
    match (&old.kind, &new.kind) {
        (NodeKind::Dir { tree: a }, NodeKind::Dir { tree: b }) => {
            let fields = metadata_changes(old, new);
            if !fields.is_empty() {
                report(change(path, ChangeKind::Metadata, old, new, fields))?;
            }
            if a == b {
                return Ok(());
            }
            let (a, b) = (browser.tree(a)?, browser.tree(b)?);
            let (mut i, mut j) = (0, 0);
            while i < a.nodes.len() || j < b.nodes.len() {
                let order = match (a.nodes.get(i), b.nodes.get(j)) {
                    (Some(x), Some(y)) => x.name.cmp(&y.name),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    _ => std::cmp::Ordering::Greater,
                };
                match order {
                    std::cmp::Ordering::Less => {
                        one_side(
                            browser,
                            &join(path, &a.nodes[i].name),
                            &a.nodes[i],
                            ChangeKind::Removed,
                            report,
                        )?;
                        i += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        one_side(
                            browser,
                            &join(path, &b.nodes[j].name),
                            &b.nodes[j],
                            ChangeKind::Added,
                            report,
                        )?;
                        j += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        diff(browser, &join(path, &a.nodes[i].name), &a.nodes[i], &b.nodes[j], report)?;
                        i += 1;
                        j += 1;
                    }
                }
            }
            Ok(())
        }
        (x, y) if std::mem::discriminant(x) != std::mem::discriminant(y) => {
            // Report the type change, then what the old folder held or the new one holds.
            report(change(path, ChangeKind::TypeChanged, old, new, Vec::new()))?;
            for (node, kind) in [(old, ChangeKind::Removed), (new, ChangeKind::Added)] {
                if let NodeKind::Dir { tree } = &node.kind {
                    for child in &browser.tree(tree)?.nodes {
                        one_side(browser, &join(path, &child.name), child, kind, report)?;
                    }
                }
            }
            Ok(())
        }
        (x, y) => {
            let fields = metadata_changes(old, new);
            if x != y {
                report(change(path, ChangeKind::Modified, old, new, fields))
            } else if !fields.is_empty() {
                report(change(path, ChangeKind::Metadata, old, new, fields))
            } else {
                Ok(())
            }
        }
    }
}

/// A path only one side has, with everything below it.
pub fn one_side(
    browser: &Browser<'_>,
    path: &[u8],
    node: &Node,
    kind: ChangeKind,
    report: &mut dyn FnMut(Change) -> Result<()>,
) -> Result<()> {
    browser.walk(path, node, &mut |p, n| {
        let (old, new) = match kind {
            ChangeKind::Removed => (Some(n.clone()), None),
            _ => (None, Some(n.clone())),
        };
        report(Change { path: p.to_vec(), kind, old, new, fields: Vec::new() })?;
        Ok(true)
    })
}

fn change(path: &[u8], kind: ChangeKind, old: &Node, new: &Node, fields: Vec<&'static str>) -> Change {
    Change { path: path.to_vec(), kind, old: Some(old.clone()), new: Some(new.clone()), fields }
}

/// The metadata fields a user cares about that differ. Access and change times and inode
/// numbers change without anyone editing anything, so they are not compared; neither is
/// a folder's modification time, which changes whenever an entry is added or removed.
fn metadata_changes(old: &Node, new: &Node) -> Vec<&'static str> {
    let is_dir = matches!(new.kind, NodeKind::Dir { .. });
    let mut fields = Vec::new();
    if old.mode != new.mode {
        fields.push("mode");
    }
    if old.uid != new.uid || old.user != new.user {
        fields.push("owner");
    }
    if old.gid != new.gid || old.group != new.group {
        fields.push("group");
    }
    if !is_dir && old.mtime != new.mtime {
        fields.push("mtime");
    }
    if old.xattrs != new.xattrs {
        fields.push("xattrs");
    }
    fields
}
