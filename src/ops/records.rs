//! Walking references records (format-spec/maintenance-key.md): from the root record a
//! snapshot's summary names, every record its records name. Each record is read from the
//! first of its index locations that reads back intact (opened, re-hashed to its id),
//! and decoded; the walk is what a maintenance key knows of what snapshots use.

use crate::error::{Error, ErrorKind, Result};
use crate::format::references::References;
use crate::id::{BlobId, ChunkId, RefsId, SnapshotId, TreeId};
use crate::index::Index;
use crate::pack::records::{make_records, RecordSource};
use crate::pack::PackReader;
use crate::repo::snapshot_file::Summary;
use crate::repo::Repository;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

/// What the records reached from some snapshots name.
#[derive(Debug, Default)]
pub struct Reached {
    pub records: HashSet<RefsId>,
    pub trees: HashSet<TreeId>,
    pub chunks: HashSet<ChunkId>,
    /// Records that were named but did not read back intact, and why.
    pub unreadable: Vec<(RefsId, Error)>,
}

/// The root record each snapshot's summary names: `None` for a snapshot whose file has no
/// valid summary, or one that names no root record.
pub fn root_records(repo: &Repository, snapshots: &[SnapshotId]) -> Vec<(SnapshotId, Option<RefsId>)> {
    snapshots
        .iter()
        .map(|id| {
            let root = repo
                .read_snapshot_file(id, Summary::Verified)
                .ok()
                .and_then(|f| f.summary)
                .and_then(|(s, _)| s.references);
            (*id, root)
        })
        .collect()
}

/// Every record reachable from `roots`, and the trees and chunks they name.
pub fn reach(
    reader: &PackReader<'_>,
    index: &Index,
    roots: impl IntoIterator<Item = RefsId>,
    interrupt: &AtomicBool,
) -> Result<Reached> {
    let mut out = Reached::default();
    let mut stack: Vec<RefsId> = roots.into_iter().collect();
    while let Some(id) = stack.pop() {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Interrupted, "interrupted while reading references records"));
        }
        if !out.records.insert(id) {
            continue;
        }
        let record =
            reader.read_indexed(index, &BlobId::References(id)).and_then(|bytes| References::decode(&bytes));
        match record {
            Ok(r) => {
                out.trees.insert(r.tree);
                out.chunks.extend(r.chunks);
                stack.extend(r.subtrees);
            }
            Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::Interrupted) => {
                return Err(e)
            }
            Err(e) => out.unreadable.push((id, e)),
        }
    }
    Ok(out)
}

/// A check's view for computing records from trees: nothing is stored; trees are read
/// through `reader`; what is made is remembered for the snapshots after.
pub struct Computing<'a, 'r> {
    pub reader: &'a PackReader<'r>,
    pub index: &'a Index,
    made: std::sync::Mutex<HashMap<TreeId, RefsId>>,
}

impl<'a, 'r> Computing<'a, 'r> {
    pub fn new(reader: &'a PackReader<'r>, index: &'a Index) -> Self {
        Computing { reader, index, made: Default::default() }
    }
}

impl RecordSource for Computing<'_, '_> {
    fn known(&self, tree: &TreeId) -> Option<RefsId> {
        self.made.lock().expect("records lock").get(tree).copied()
    }

    fn read(&self, tree: &TreeId) -> Option<Vec<u8>> {
        self.reader.read_indexed(self.index, &BlobId::Tree(*tree)).ok()
    }

    fn made(&self, tree: TreeId, id: RefsId, _: &[u8]) -> Result<()> {
        self.made.lock().expect("records lock").insert(tree, id);
        Ok(())
    }
}

/// What a check finds of records: for each snapshot, the root record its summary names
/// against the one its trees give (`computed`: a full key's check only); then whether
/// every record reached reads back intact. Returns what the records reached (with the
/// unreadable ones reported as problems, so left out of `unreadable`).
pub fn check_records(
    repo: &Repository,
    reader: &PackReader<'_>,
    index: &Index,
    snapshots: &[(SnapshotId, Option<TreeId>)],
    problems: &mut Vec<(String, String)>,
    notes: &mut Vec<String>,
    interrupt: &AtomicBool,
) -> Result<Reached> {
    let ids: Vec<SnapshotId> = snapshots.iter().map(|(id, _)| *id).collect();
    let named = root_records(repo, &ids);
    let computing = Computing::new(reader, index);
    let mut bare = 0;
    for ((id, tree), (_, root)) in snapshots.iter().zip(&named) {
        let Some(root) = root else {
            bare += 1;
            continue;
        };
        let Some(tree) = tree else { continue };
        // A tree that does not read is the tree walk's problem, reported there.
        if let Some(computed) = make_records(repo.keys(), &computing, *tree, None)? {
            if computed != *root {
                problems.push((
                    format!("snapshot {}", id.short()),
                    format!("its summary names references record {} but its trees give {}; `cairn repair maintenance` writes them anew", root.short(), computed.short()),
                ));
            }
        }
    }
    if bare > 0 {
        notes.push(format!("{bare} snapshots name no references records (written before them, or by a key without the maintenance public key): a maintenance key cannot prune until `cairn repair maintenance` (a full key) gives them records"));
    }
    let mut reached = reach(reader, index, named.iter().filter_map(|(_, r)| *r), interrupt)?;
    for (record, e) in std::mem::take(&mut reached.unreadable) {
        problems.push((
            format!("references record {}", record.short()),
            format!("{e}; `cairn repair maintenance` writes it again"),
        ));
    }
    Ok(reached)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::FileType;
    use crate::format::tree::NodeKind;
    use crate::ops::backup::tests::back_up;
    use crate::ops::maintenance::tests::with_maintenance;
    use crate::tree::load_tree_with_parts;

    /// What snapshot `id` uses, by its trees (a full key): every tree blob and chunk.
    fn used_by_trees(full: &Repository, id: &SnapshotId) -> (HashSet<TreeId>, HashSet<ChunkId>) {
        let index = Index::load(full).unwrap();
        let reader = PackReader::new(full);
        let (mut trees, mut chunks) = (HashSet::new(), HashSet::new());
        let mut stack = vec![full.load_snapshot(id).unwrap().tree];
        while let Some(t) = stack.pop() {
            if !trees.insert(t) {
                continue;
            }
            let (tree, parts) = load_tree_with_parts(&reader, &index, &t).unwrap();
            trees.extend(parts);
            for n in tree.nodes {
                match n.kind {
                    NodeKind::Dir { tree } => stack.push(tree),
                    NodeKind::File { chunks: c, .. } => chunks.extend(c),
                    _ => {}
                }
            }
        }
        (trees, chunks)
    }

    /// What the maintenance key reaches from snapshot `id`'s summary.
    fn reached_by(keeper: &Repository, id: &SnapshotId) -> Reached {
        let (_, root) = root_records(keeper, &[*id]).pop().unwrap();
        let root = root.unwrap_or_else(|| panic!("snapshot {id} names no root record"));
        reach(&PackReader::new(keeper), &Index::load(keeper).unwrap(), [root], &AtomicBool::new(false))
            .unwrap()
    }

    fn assert_records_exact(full: &Repository, keeper: &Repository) -> usize {
        let names = full.backend().list(FileType::Snapshot).unwrap();
        for name in &names {
            let id = SnapshotId::from_hex(name).unwrap();
            let (trees, chunks) = used_by_trees(full, &id);
            let reached = reached_by(keeper, &id);
            assert!(reached.unreadable.is_empty(), "{:?}", reached.unreadable);
            assert_eq!(reached.trees, trees, "snapshot {name}: trees");
            assert_eq!(reached.chunks, chunks, "snapshot {name}: chunks");
        }
        names.len()
    }

    /// The records a maintenance key reaches from each summary name exactly the trees and
    /// chunks the snapshot's trees name: for a snapshot from before enabling (its records
    /// made then), one of a backup-only key, a full key's of a deeper folder with a
    /// subfolder shared with the others, and after a tag and a rewrite (which keep or
    /// change trees).
    #[test]
    fn records_name_exactly_what_each_snapshot_uses() {
        let dir = tempfile::tempdir().unwrap();
        let (full, _writer, keeper, src) = with_maintenance(dir.path());
        assert_eq!(assert_records_exact(&full, &keeper), 2);
        std::fs::create_dir_all(src.join("groups/a/b")).unwrap();
        std::fs::write(src.join("groups/a/b/policy.xml"), b"<policy/>".repeat(3000)).unwrap();
        std::fs::write(src.join("groups/a/keep.txt"), b"kept").unwrap();
        back_up(&full, &src);
        let full = Repository::open(
            dir.path().join("r").to_str().unwrap(),
            b"full",
            &crate::repo::KeySource::Stored,
        )
        .unwrap();
        assert_eq!(assert_records_exact(&full, &keeper), 3);

        let all = full.snapshots().unwrap();
        let edit = crate::ops::tag::TagEdit { add: vec!["gateway".into()], ..Default::default() };
        crate::ops::tag::tag_snapshots(&full, &all, &edit, |_| {}).unwrap();
        let fresh = Repository::open(
            dir.path().join("r").to_str().unwrap(),
            b"full",
            &crate::repo::KeySource::Stored,
        )
        .unwrap();
        let excludes = crate::ops::exclude::Excludes::new(&crate::ops::exclude::ExcludeOptions {
            patterns: vec!["**/policy.xml".into()],
            ..Default::default()
        })
        .unwrap();
        let all = fresh.snapshots().unwrap();
        let rewritten =
            crate::ops::rewrite::rewrite_snapshots(&fresh, &all, &excludes, false, &AtomicBool::new(false))
                .unwrap();
        assert_eq!(rewritten.len(), 1, "only the newest held policy.xml");
        assert_eq!(assert_records_exact(&fresh, &keeper), 3);
        let (views, damaged) = keeper.snapshots_and_damage().unwrap();
        assert!(damaged.is_empty());
        assert!(views.iter().all(|(_, v)| v.tags.contains(&"gateway".to_string())));
    }
}
