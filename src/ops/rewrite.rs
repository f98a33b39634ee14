//! Rewriting history: new snapshots whose trees leave out some entries. One mechanism
//! serves two commands: `rewrite --exclude` drops what patterns match (erasure on
//! request), `repair snapshots` drops files whose data is lost. Trees are rebuilt bottom
//! up; an untouched subtree keeps its id and costs nothing. The new snapshot is stored
//! before the old one is deleted, so a crash leaves both, never neither; the data only
//! the old snapshots used goes at the next `prune`.

use crate::browse::stats::Stats;
use crate::browse::Browser;
use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::{SnapshotId, TreeId};
use crate::index::Index;
use crate::ops::exclude::Excludes;
use crate::pack::{BlobWriter, PackReader};
use crate::repo::Repository;
use crate::tree::load_tree;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// One snapshot replaced by a rewrite (or that would be, in a dry run).
#[derive(Debug)]
pub struct SnapshotRewrite {
    pub old: SnapshotId,
    /// The snapshot stored in its place (None in a dry run, or when nothing is left to keep).
    pub new: Option<SnapshotId>,
    /// Absolute paths left out; a folder whose listing was lost ends in '/'.
    pub removed: Vec<String>,
}

/// What a filter does with a folder whose listing cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostFolder {
    /// Keep the folder, empty, and report it removed (repair).
    MakeEmpty,
    /// Stop: nothing can be promised about what it holds (rewrite).
    Fail,
}

/// Rebuilds trees without the entries `drop` names, storing the new trees.
pub struct TreeFilter<'a, 'r> {
    repo: &'r Repository,
    reader: &'a PackReader<'r>,
    index: &'a Index,
    writer: &'a BlobWriter<'r>,
    drop: &'a dyn Fn(&[u8], &Node) -> bool,
    lost: LostFolder,
    /// False in a dry run: new trees are named but not stored.
    store: bool,
    /// Results by (tree, path): consecutive snapshots share most folders.
    memo: HashMap<(TreeId, Vec<u8>), (TreeId, Vec<String>)>,
}

impl<'a, 'r> TreeFilter<'a, 'r> {
    pub fn new(
        repo: &'r Repository,
        reader: &'a PackReader<'r>,
        index: &'a Index,
        writer: &'a BlobWriter<'r>,
        drop: &'a dyn Fn(&[u8], &Node) -> bool,
        lost: LostFolder,
        store: bool,
    ) -> Self {
        TreeFilter { repo, reader, index, writer, drop, lost, store, memo: HashMap::new() }
    }

    /// The tree `id`, found at `path` ("" for a snapshot's root), without the dropped
    /// entries, and the absolute paths left out.
    pub fn filter(&mut self, id: TreeId, path: &[u8]) -> Result<(TreeId, Vec<String>)> {
        let key = (id, path.to_vec());
        if let Some(done) = self.memo.get(&key) {
            return Ok(done.clone());
        }
        let tree = load_tree(self.reader, self.index, &id)?;
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        let mut removed = Vec::new();
        for mut node in tree.nodes {
            let mut child = path.to_vec();
            child.push(b'/');
            child.extend_from_slice(&node.name);
            if (self.drop)(&child, &node) {
                removed.push(String::from_utf8_lossy(&child).into_owned());
                continue;
            }
            if let NodeKind::Dir { tree } = &mut node.kind {
                match self.filter(*tree, &child) {
                    Ok((sub, lost)) => {
                        *tree = sub;
                        removed.extend(lost);
                    }
                    Err(e)
                        if self.lost == LostFolder::MakeEmpty
                            && matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) =>
                    {
                        *tree = self.empty_tree()?;
                        removed.push(format!("{}/", String::from_utf8_lossy(&child)));
                    }
                    Err(e) => return Err(e),
                }
            }
            nodes.push(node);
        }
        let new_id = if removed.is_empty() { id } else { self.save(&Tree { nodes })? };
        self.memo.insert(key, (new_id, removed.clone()));
        Ok((new_id, removed))
    }

    /// An empty folder's tree, stored.
    pub fn empty_tree(&self) -> Result<TreeId> {
        self.save(&Tree::default())
    }

    fn save(&self, tree: &Tree) -> Result<TreeId> {
        crate::tree::save_tree(tree, self.repo.keys(), |id, bytes| match self.store {
            true => self.writer.save_tree_blob(id, bytes).map(|_| ()),
            false => Ok(()),
        })
    }
}

/// Rewrite `snapshots` without the entries `excludes` matches. Snapshots with nothing to
/// leave out are not touched. Each new snapshot names the old one as its original (or
/// keeps the original the old one named: where its line of edits started) and
/// carries a `rewritten` label; `dry_run` stores nothing.
pub fn rewrite_snapshots(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    excludes: &Excludes,
    dry_run: bool,
    interrupt: &AtomicBool,
) -> Result<Vec<SnapshotRewrite>> {
    let index = Index::load(repo)?;
    let reader = PackReader::new(repo);
    let drop = |path: &[u8], node: &Node| {
        excludes.excludes_path(Path::new(OsStr::from_bytes(path)), matches!(node.kind, NodeKind::Dir { .. }))
    };
    let (planned, _) = BlobWriter::run(repo, Index::load(repo)?, |writer| -> Result<Vec<_>> {
        let mut filter = TreeFilter::new(repo, &reader, &index, writer, &drop, LostFolder::Fail, !dry_run);
        let mut out = Vec::new();
        for (id, snap) in snapshots {
            if interrupt.load(Ordering::Relaxed) {
                return Err(Error::new(ErrorKind::Interrupted, "rewrite interrupted; no snapshot changed"));
            }
            let (tree, removed) = filter.filter(snap.tree, b"")?;
            if removed.is_empty() {
                continue;
            }
            out.push(Planned::new(*id, snap, tree, removed, "rewritten"));
        }
        Ok(out)
    })?;
    replace_all(repo, planned?, dry_run)
}

/// A snapshot to store in place of an old one, with what it leaves out.
pub(crate) struct Planned {
    old: SnapshotId,
    old_tree: TreeId,
    pub new: Snapshot,
    removed: Vec<String>,
}

impl Planned {
    /// `snap` (stored as `id`) with root `tree`, naming where its line of edits started as
    /// its original, and the count of what it lost in label `label`.
    pub(crate) fn new(
        id: SnapshotId,
        snap: &Snapshot,
        tree: TreeId,
        removed: Vec<String>,
        label: &str,
    ) -> Self {
        let mut new = snap.clone();
        new.tree = tree;
        new.original = snap.original.or(Some(id));
        set_label(&mut new, label, format!("{} entries removed", removed.len()));
        Planned { old: id, old_tree: snap.tree, new, removed }
    }
}

/// Store each rewritten snapshot, its summary's counts corrected, in place of its old one.
pub(crate) fn replace_all(
    repo: &Repository,
    planned: Vec<Planned>,
    dry_run: bool,
) -> Result<Vec<SnapshotRewrite>> {
    if dry_run {
        return Ok(planned
            .into_iter()
            .map(|p| SnapshotRewrite { old: p.old, new: None, removed: p.removed })
            .collect());
    }
    crate::failpoint::hit("snapshot-rewrite:after-trees");
    // The index now holds the new trees.
    let browser = Browser::open(repo)?;
    let mut stats = Stats::new(&browser);
    let mut out = Vec::new();
    for Planned { old, old_tree, new: mut snap, removed } in planned {
        // A repaired snapshot's old trees may be lost; then its counts stay as recorded.
        let figures = stats.add_tree(&old_tree).and_then(|b| Ok((b, stats.add_tree(&snap.tree)?)));
        match figures {
            Ok((before, after)) => {
                let s = &mut snap.summary;
                s.files = s.files.saturating_sub(before.files.saturating_sub(after.files));
                s.dirs = s.dirs.saturating_sub(before.dirs.saturating_sub(after.dirs));
                s.others = s.others.saturating_sub(before.others.saturating_sub(after.others));
                s.total_bytes = s.total_bytes.saturating_sub(before.bytes.saturating_sub(after.bytes));
            }
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => {}
            Err(e) => return Err(e),
        }
        let new = repo.replace_snapshot(&old, &snap)?;
        out.push(SnapshotRewrite { old, new: Some(new), removed });
    }
    Ok(out)
}

/// Set label `key` to `value`, keeping labels sorted by key.
pub fn set_label(snap: &mut Snapshot, key: &str, value: String) {
    snap.labels.retain(|(k, _)| k != key);
    snap.labels.push((key.into(), value));
    snap.labels.sort();
}
