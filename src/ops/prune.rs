//! Prune: delete data no snapshot uses. First a plan (pure, so `--dry-run` is free), then
//! its execution in an order that keeps the repository valid if it stops at any point:
//!
//! 1. repack: the used blobs of packs worth repacking go into new packs (with their own
//!    index files);
//! 2. a new index naming every kept pack is written, superseding all old index files;
//! 3. the old index files are deleted;
//! 4. the packs that are wholly unused, repacked, or named by no index are deleted;
//! 5. temporary files that interrupted writes left (untouched for an hour) are deleted.
//!
//! Until step 4 every pack an index names exists; a stop between steps leaves at worst
//! duplicate index entries or packs nothing names, which the next prune removes.

use crate::backend::{FileType, Leftover};
use crate::error::{Error, ErrorKind, Result};
use crate::format::index::IndexFile;
use crate::format::pack::Entry;
use crate::format::tree::NodeKind;
use crate::id::{BlobId, IndexId, PackId, TreeId};
use crate::index::{load_pack_lists, Index, Location};
use crate::pack::{BlobWriter, PackReader};
use crate::repo::Repository;
use crate::tree::load_tree_with_parts;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack a pack when more than this share of its bytes is unused (0.0 ..= 1.0).
    pub max_unused: f64,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { max_unused: 0.10 }
    }
}

/// What prune will do (or did), in packs and bytes.
#[derive(Clone, Debug, Default)]
pub struct PrunePlan {
    pub packs_delete: Vec<PackId>,
    pub packs_repack: Vec<PackId>,
    pub packs_keep: usize,
    /// Packs stored but named by no index file.
    pub packs_orphaned: Vec<PackId>,
    /// Temporary files that interrupted writes left, untouched for `LEFTOVER_AGE`.
    pub leftovers: Vec<Leftover>,
    pub bytes_delete: u64,
    pub bytes_repack_used: u64,
    pub bytes_repack_unused: u64,
    pub bytes_keep: u64,
    pub blobs_used: usize,
    pub blobs_unused: usize,
    /// Entries of the packs that stay, by pack.
    keep: Vec<(PackId, Vec<Entry>)>,
    /// Used blobs to move out of repacked packs.
    moves: Vec<Location>,
    old_index: Vec<IndexId>,
}

/// Every blob id that some snapshot reaches (trees and chunks).
fn used_blobs(repo: &Repository, index: &Index, interrupt: &AtomicBool) -> Result<HashSet<[u8; 32]>> {
    let reader = PackReader::new(repo);
    let mut used = HashSet::new();
    let mut stack: Vec<TreeId> = repo.snapshots()?.into_iter().map(|(_, s)| s.tree).collect();
    while let Some(id) = stack.pop() {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Interrupted, "prune interrupted before deleting anything"));
        }
        if !used.insert(id.0) {
            continue;
        }
        let (tree, parts) = load_tree_with_parts(&reader, index, &id).map_err(|e| {
            e.wrap("a snapshot's tree cannot be read, so prune cannot tell what is used; run `cairn check`")
        })?;
        // A large folder is stored in parts besides its head: they are used too.
        used.extend(parts.iter().map(|p| p.0));
        for node in tree.nodes {
            match node.kind {
                NodeKind::Dir { tree } => stack.push(tree),
                NodeKind::File { chunks, .. } => used.extend(chunks.iter().map(|c| c.0)),
                _ => {}
            }
        }
    }
    Ok(used)
}

pub fn plan(repo: &Repository, opts: &PruneOptions, interrupt: &AtomicBool) -> Result<PrunePlan> {
    if !(0.0..=1.0).contains(&opts.max_unused) {
        return Err(Error::invalid("--max-unused must be between 0% and 100%"));
    }
    let index = Index::load(repo)?;
    let used = used_blobs(repo, &index, interrupt)?;
    let (packs, damaged) = load_pack_lists(repo)?;
    if let Some((name, e)) = damaged.first() {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("index file {name} is damaged ({e}); run `cairn check`"),
        ));
    }
    let mut plan = PrunePlan { old_index: index.files.clone(), ..Default::default() };
    // A blob stored twice counts as used in the first pack seen only.
    let mut placed: HashSet<[u8; 32]> = HashSet::new();
    let mut ids: Vec<&PackId> = packs.keys().collect();
    ids.sort();
    for pack in ids {
        let entries = &packs[pack];
        let mut used_here = Vec::new();
        // Per frame (by offset): sealed length, plaintext bytes, plaintext bytes in use.
        let mut frames: HashMap<u32, (u64, u64, u64)> = HashMap::new();
        for e in entries {
            let live = used.contains(e.id.bytes()) && placed.insert(*e.id.bytes());
            let f = frames.entry(e.offset).or_insert((e.length as u64, 0, 0));
            f.1 += e.raw_length as u64;
            if live {
                f.2 += e.raw_length as u64;
                used_here.push(*e);
            } else {
                plan.blobs_unused += 1;
            }
        }
        plan.blobs_used += used_here.len();
        // A frame's sealed bytes count as unused in the share of its plaintext no
        // snapshot uses: repacking rewrites only the used blobs.
        let total: u64 = frames.values().map(|f| f.0).sum();
        let unused_here: u64 = frames.values().map(|&(len, raw, live)| len * (raw - live) / raw.max(1)).sum();
        let used_bytes = total - unused_here;
        if used_here.is_empty() {
            plan.packs_delete.push(*pack);
            plan.bytes_delete += total;
        } else if unused_here > 0 && unused_here as f64 > opts.max_unused * total as f64 {
            plan.packs_repack.push(*pack);
            plan.bytes_repack_used += used_bytes;
            plan.bytes_repack_unused += unused_here;
            plan.moves.extend(used_here.into_iter().map(|entry| Location { pack: *pack, entry }));
        } else {
            plan.packs_keep += 1;
            plan.bytes_keep += total;
            plan.keep.push((*pack, entries.clone()));
        }
    }
    let missing = used.iter().filter(|id| !placed.contains(*id)).count();
    if missing > 0 {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("{missing} blobs that snapshots use are in no pack; prune stops; run `cairn check`"),
        ));
    }
    for name in repo.backend().list(FileType::Pack)? {
        if let Ok(id) = PackId::from_hex(&name) {
            if !packs.contains_key(&id) {
                plan.packs_orphaned.push(id);
            }
        }
    }
    plan.leftovers = repo.backend().leftovers(LEFTOVER_AGE)?;
    Ok(plan)
}

/// A temporary file is a leftover once it has not changed for this long. Prune holds
/// the exclusive lock, so no write of another cairn is under way; the age also spares the
/// file of a writer that ignored or broke the lock.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

/// Carry out a plan made under the same exclusive lock.
pub fn execute(repo: &Repository, plan: &PrunePlan, interrupt: &AtomicBool) -> Result<()> {
    // 1. Repack. The writer starts from an empty index, so it stores every blob given.
    let reader = PackReader::new(repo);
    let (moved, _) = BlobWriter::run(repo, Index::default(), |w| -> Result<()> {
        for loc in &plan.moves {
            if interrupt.load(Ordering::Relaxed) {
                return Err(Error::new(
                    ErrorKind::Interrupted,
                    "prune interrupted while repacking; nothing deleted",
                ));
            }
            w.save(loc.entry.id, &reader.read_blob(loc)?)?;
        }
        Ok(())
    })?;
    moved?;
    // 2. One index for the packs that stay, superseding every old index file.
    let superseded: Vec<IndexId> = plan.old_index.clone();
    for chunk in plan.keep.chunks(1000) {
        repo.save_index(&IndexFile { supersedes: superseded.clone(), packs: chunk.to_vec() })?;
    }
    // 3. The old index files go (the repacked blobs' new index files are not among them).
    for id in &plan.old_index {
        repo.backend().remove(FileType::Index, &id.to_hex())?;
    }
    // 4. Packs nothing names any more.
    for pack in plan.packs_delete.iter().chain(&plan.packs_repack).chain(&plan.packs_orphaned) {
        match repo.backend().remove(FileType::Pack, &pack.to_hex()) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    // 5. What interrupted writes left.
    for leftover in &plan.leftovers {
        match repo.backend().remove_leftover(&leftover.path) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Blob ids of every pack as its sealed table of contents says (for tests and audits:
/// what is really stored, whatever the index claims).
pub fn stored_blob_ids(repo: &Repository) -> Result<HashMap<PackId, Vec<BlobId>>> {
    let mut out = HashMap::new();
    for name in repo.backend().list(FileType::Pack)? {
        let id = PackId::from_hex(&name)?;
        let bytes = repo.backend().read(FileType::Pack, &name)?;
        let toc = crate::pack::reader::read_toc(repo.keys(), &bytes)?;
        out.insert(id, toc.into_iter().map(|e| e.id).collect());
    }
    Ok(out)
}
