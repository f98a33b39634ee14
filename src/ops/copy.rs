//! Copy snapshots into another repository, which has its own keys.
//!
//! Blob ids are keyed hashes, so two repositories agree on ids only when they share the
//! id keys (`init --copy-chunker-params-from`, format-spec/keys.md). The copy checks that
//! once, by hashing a probe with both key sets:
//! - **same ids**: every tree of the snapshot is read from the source (metadata only),
//!   and a chunk or tree the destination's index already has is neither read nor written;
//!   only missing blobs are read, re-sealed under the destination's keys and stored;
//! - **different ids**: every chunk must be read and hashed with the destination's key to
//!   learn its id there, and every tree is rewritten with the mapped ids. Blobs the
//!   destination then turns out to have are not stored again.
//!
//! Every blob read from the source is verified end to end (decrypted and re-hashed to its
//! id) before it is written. A snapshot is written only after all its blobs are stored and
//! indexed (one writer run per snapshot), so an interrupted copy leaves no snapshot
//! without data, and the packs it did store are indexed and reused by the next run.
//! A copied snapshot records its source in `original`; snapshots whose copy is already in
//! the destination are skipped, so running the same copy twice copies nothing.

use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{NodeKind, Tree};
use crate::id::{BlobId, ChunkId, SnapshotId, TreeId};
use crate::index::Index;
use crate::pack::{BlobWriter, PackReader};
use crate::repo::Repository;
use crate::tree::load_tree_with_parts;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// What happened to one selected snapshot.
#[derive(Clone, Debug)]
pub struct CopiedSnapshot {
    pub source: SnapshotId,
    /// The snapshot in the destination: new, or the one found from an earlier copy.
    pub copy: SnapshotId,
    pub already_there: bool,
}

#[derive(Clone, Debug, Default)]
pub struct CopyOutcome {
    pub snapshots: Vec<CopiedSnapshot>,
    /// Whether source and destination share id keys (no data read for blobs present).
    pub same_ids: bool,
    /// Trees read from the source (metadata: always every tree of a snapshot copied).
    pub trees_read: u64,
    /// Chunks read from the source (data).
    pub chunks_read: u64,
    /// Blobs the destination lacked and now has.
    pub blobs_new: u64,
    /// Bytes stored in the destination (sealed packs).
    pub bytes_stored: u64,
}

/// Whether two repositories give the same ids to the same content.
pub fn same_ids(src: &Repository, dst: &Repository) -> bool {
    let probe = b"cairn copy: do these repositories share id keys?";
    src.keys().chunk_id(probe) == dst.keys().chunk_id(probe)
        && src.keys().tree_id(probe) == dst.keys().tree_id(probe)
}

/// What identifies a snapshot apart from its id: when it was taken, where, of what, and
/// how it is tagged and labelled.
type Identity = (crate::format::Timespec, String, Vec<Vec<u8>>, Vec<String>, Vec<(String, String)>);

fn identity(s: &Snapshot) -> Identity {
    (s.time, s.host.clone(), s.paths.clone(), s.tags.clone(), s.labels.clone())
}

/// Copy `selected` (snapshots of `src`) into `dst`. Both need full keys: the source's to
/// read its data, the destination's to see which snapshots were copied before.
pub fn copy(
    src: &Repository,
    dst: &Repository,
    selected: &[(SnapshotId, Snapshot)],
    interrupt: &AtomicBool,
) -> Result<CopyOutcome> {
    src.require_full_key("be copied from (reading its data needs a full key)")?;
    dst.require_full_key("receive copies (finding earlier copies reads its snapshots)")?;
    let mut out = CopyOutcome { same_ids: same_ids(src, dst), ..Default::default() };
    let src_index = Index::load(src)?;
    let reader = PackReader::new(src);
    // Copies made earlier, by the source snapshot they came from.
    let mut copied: HashMap<SnapshotId, SnapshotId> = HashMap::new();
    // A key rotation seals the source's snapshots anew under new ids: their copies are
    // still known by what the snapshot says of itself.
    let mut copied_by_identity: HashMap<Identity, SnapshotId> = HashMap::new();
    for (id, s) in dst.snapshots()? {
        if let Some(orig) = s.original {
            copied.insert(orig, id);
            copied_by_identity.insert(identity(&s), id);
        }
    }
    let ids = IdMap::default();
    for (src_id, snap) in selected {
        if let Some(&copy) = copied_by_identity.get(&identity(snap)) {
            copied.entry(*src_id).or_insert(copy);
        }
        if let Some(copy) = copied.get(src_id) {
            out.snapshots.push(CopiedSnapshot { source: *src_id, copy: *copy, already_there: true });
            continue;
        }
        let (tree, stats) = BlobWriter::run(dst, Index::load(dst)?, |writer| {
            let job = Job {
                dst,
                reader: &reader,
                src_index: &src_index,
                writer,
                ids: &ids,
                same_ids: out.same_ids,
                interrupt,
                trees_read: AtomicU64::new(0),
                chunks_read: AtomicU64::new(0),
            };
            let tree = job.copy_tree(&snap.tree);
            (tree, job.trees_read.load(Ordering::Relaxed), job.chunks_read.load(Ordering::Relaxed))
        })?;
        let (tree, trees_read, chunks_read) = tree;
        out.trees_read += trees_read;
        out.chunks_read += chunks_read;
        let tree = tree.map_err(|e| e.wrap(format!("copying snapshot {}", src_id.short())))?;
        out.blobs_new += stats.blobs_new;
        out.bytes_stored += stats.bytes_stored;
        let copy = Snapshot {
            tree,
            original: Some(*src_id),
            // The parent names a source snapshot; its copy, if there is one, takes its place.
            parent: snap.parent.and_then(|p| copied.get(&p).copied()),
            ..snap.clone()
        };
        crate::failpoint::hit("copy:before-snapshot");
        let copy_id = dst.save_snapshot(&copy)?;
        crate::failpoint::hit("copy:after-snapshot");
        copied.insert(*src_id, copy_id);
        out.snapshots.push(CopiedSnapshot { source: *src_id, copy: copy_id, already_there: false });
    }
    Ok(out)
}

/// Source ids to destination ids, learned during this run (only used when ids differ).
#[derive(Default)]
struct IdMap {
    chunks: Mutex<HashMap<ChunkId, ChunkId>>,
    trees: Mutex<HashMap<TreeId, TreeId>>,
    /// Trees copied (same ids) in this run: their subtrees need no second walk.
    done: Mutex<HashSet<TreeId>>,
}

struct Job<'a, 'w> {
    dst: &'a Repository,
    reader: &'a PackReader<'a>,
    src_index: &'a Index,
    writer: &'a BlobWriter<'w>,
    ids: &'a IdMap,
    same_ids: bool,
    interrupt: &'a AtomicBool,
    trees_read: AtomicU64,
    chunks_read: AtomicU64,
}

impl Job<'_, '_> {
    fn check_interrupt(&self) -> Result<()> {
        if self.interrupt.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Interrupted, "copy interrupted; run it again to go on"));
        }
        Ok(())
    }

    /// Read one chunk of the source, verified.
    fn read(&self, id: BlobId) -> Result<Vec<u8>> {
        self.chunks_read.fetch_add(1, Ordering::Relaxed);
        self.read_blob(id)
    }

    /// Read one blob of the source, verified (not counted as a chunk read).
    fn read_blob(&self, id: BlobId) -> Result<Vec<u8>> {
        self.reader.read_indexed(self.src_index, &id).map_err(|e| e.wrap("the source repository"))
    }

    /// Copy a tree and everything below it; returns its id in the destination.
    fn copy_tree(&self, id: &TreeId) -> Result<TreeId> {
        self.check_interrupt()?;
        if self.same_ids && self.ids.done.lock().expect("done lock").contains(id) {
            return Ok(*id);
        }
        if let Some(mapped) = self.ids.trees.lock().expect("tree map lock").get(id) {
            return Ok(*mapped);
        }
        let (mut tree, parts) = load_tree_with_parts(self.reader, self.src_index, id)?;
        self.trees_read.fetch_add(1, Ordering::Relaxed);
        // Chunks of all files of this folder, in parallel.
        let chunks: Vec<ChunkId> = tree
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::File { chunks, .. } => Some(chunks.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        let mapped: HashMap<ChunkId, ChunkId> =
            chunks.par_iter().map(|c| Ok((*c, self.copy_chunk(c)?))).collect::<Result<_>>()?;
        for node in &mut tree.nodes {
            match &mut node.kind {
                NodeKind::File { chunks, .. } => {
                    for c in chunks.iter_mut() {
                        *c = mapped[c];
                    }
                }
                NodeKind::Dir { tree: sub } => *sub = self.copy_tree(sub)?,
                _ => {}
            }
        }
        let new_id = self.save_tree(id, &parts, &tree)?;
        if self.same_ids {
            self.ids.done.lock().expect("done lock").insert(*id);
        } else {
            self.ids.trees.lock().expect("tree map lock").insert(*id, new_id);
        }
        Ok(new_id)
    }

    /// Store the copied folder. With the same ids, the source's blobs (head and parts)
    /// are stored byte for byte, whatever tree version wrote them, so the ids still
    /// match; otherwise the folder is encoded anew under the destination's keys.
    fn save_tree(&self, src_id: &TreeId, parts: &[TreeId], tree: &Tree) -> Result<TreeId> {
        if self.same_ids {
            for tree in parts.iter().chain(std::iter::once(src_id)) {
                if !self.writer.has(&BlobId::Tree(*tree)) {
                    let bytes = self.read_blob(BlobId::Tree(*tree))?;
                    self.writer.save_tree_blob(*tree, &bytes)?;
                }
            }
            return Ok(*src_id);
        }
        crate::tree::save_tree(tree, self.dst.keys(), |id, bytes| self.writer.save_tree_blob(id, bytes))
    }

    /// Make sure the destination has a chunk; returns its id there.
    fn copy_chunk(&self, id: &ChunkId) -> Result<ChunkId> {
        self.check_interrupt()?;
        if self.same_ids {
            if !self.writer.has(&BlobId::Chunk(*id)) {
                let plain = self.read(BlobId::Chunk(*id))?;
                self.writer.save(BlobId::Chunk(*id), &plain)?;
            }
            return Ok(*id);
        }
        if let Some(mapped) = self.ids.chunks.lock().expect("chunk map lock").get(id) {
            return Ok(*mapped);
        }
        let plain = self.read(BlobId::Chunk(*id))?;
        let new_id = self.dst.keys().chunk_id(&plain);
        self.writer.save(BlobId::Chunk(new_id), &plain)?;
        self.ids.chunks.lock().expect("chunk map lock").insert(*id, new_id);
        Ok(new_id)
    }
}

/// Source and destination of a copy must be different repositories.
pub fn check_distinct(src: &Repository, dst: &Repository) -> Result<()> {
    if src.config().repo_id == dst.config().repo_id {
        return Err(Error::invalid("the source and the destination are the same repository"));
    }
    Ok(())
}
